"""The fast path: which algorithms minigrad runs, chosen in one place.

minigrad has two implementations of its two hottest ops.  The plain ones are the
algorithms as the textbooks and the paper write them, and the ones to read first:

- convolution: im2col, one GEMM, col2im (`minigrad/ops/conv.py`; the fast one is
  `conv.py` here, with `kernel_rows.py` and `buffer_pool.py`);
- normalization: `Normalize`, one kernel for every norm (`minigrad/ops/norm.py`).

The fast ones compute the same numbers (the tests check values and float64
gradients on every geometry they use) with less memory traffic: the kernel-row
convolution, a pool of reused work arrays, and a channels-last normalize kernel.
They live in this package.  The fast path is on by default; turn it off for a
whole program, or for a block:

    import minigrad as mg
    mg.use_fast(False)                   # from here on, the plain algorithms
    with mg.use_fast(False):             # only inside this block
        loss = model(x)

`keep_freed_memory()` is a separate, process-wide opt-in: it changes how the C
library's malloc returns freed memory (see `memory.py`), so a library never calls it
on import; a training program opts in (the benchmark scripts do).  `clear_pool()`
drops the arrays the fast conv2d keeps for reuse, and `set_pool_limit(bytes)` bounds
them (see `buffer_pool.py`).
"""

from . import buffer_pool, memory
from .buffer_pool import set_pool_limit
from .memory import keep_freed_memory

__all__ = ["use_fast", "is_fast", "kernel_rows_mode", "keep_freed_memory", "clear_pool",
           "set_pool_limit"]

_KERNEL_ROWS_MODES = ("auto", "always", "never")
_state = {"enabled": True, "kernel_rows": "auto"}


class use_fast:
    """Turn the fast path on or off (PyTorch's `set_grad_enabled` pattern).

    Called, the setting holds until the next call; used in a `with` statement, it holds
    inside the block and the previous setting comes back after it.

    `kernel_rows` chooses when conv2d takes the kernel-row algorithm: "auto" (where it was
    measured faster), "always" (every stride-1 convolution with one group: the tests use
    it to run that algorithm on small inputs) or "never"; None keeps the current choice."""

    def __init__(self, enabled=True, kernel_rows=None):
        if not isinstance(enabled, bool):
            raise TypeError(f"use_fast: enabled must be True or False, got {enabled!r}")
        if kernel_rows is not None and kernel_rows not in _KERNEL_ROWS_MODES:
            raise ValueError(f"use_fast: kernel_rows must be one of {', '.join(_KERNEL_ROWS_MODES)}"
                             f" or None, got {kernel_rows!r}")
        self._previous = dict(_state)
        _state["enabled"] = enabled
        if kernel_rows is not None:
            _state["kernel_rows"] = kernel_rows

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.update(self._previous)
        return False


def is_fast():
    """Whether the fast path is on (see `use_fast`)."""
    return _state["enabled"]


def kernel_rows_mode():
    """conv2d's rule for the kernel-row algorithm: "auto", "always" or "never"."""
    return _state["kernel_rows"]


def clear_pool():
    """Drop every array the conv buffer pool holds (between runs of different models)."""
    buffer_pool.clear()
