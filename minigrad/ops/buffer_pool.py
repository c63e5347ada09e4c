"""Large work arrays reused from one training step to the next (NumPy only).

A training step makes the same large arrays every step: conv2d's patch matrices
and zero-padded inputs.  Even with freed memory kept in the heap (minigrad/memory.py),
blocks above 32 MiB come fresh from the kernel, whose page faults on first touch cost
more than the copy into them (measured: Conv2d forward of ResNet-20 at batch 64 went
from 290 to 120 ms when the pool came in).  So conv2d takes these arrays from here
and hands them back when the engine releases it after backward.  CuPy has its own
memory pool: there `take` allocates and `give` keeps nothing.

    a = take(xp, kind, shape, dtype)     # a pooled array, or a new one
    give(a, kind)                        # back into the pool (dropped when it is full)

`kind` says what the array is used for; arrays of one kind, shape and dtype are
interchangeable.  Kinds whose first entry is "pad" are zero-bordered buffers: new ones
are zeros, and their users only ever write the same interior region, which the rest
of the kind names, so a reused one still has its zero border.
"""
import numpy as np

__all__ = ["take", "give", "clear", "POOL_LIMIT"]

_POOL = {}
_POOL_BYTES = [0]
POOL_LIMIT = 1 << 30          # bytes kept at most; 0 turns the pool off


def take(xp, kind, shape, dtype):
    """A C-contiguous array of `shape`: a pooled one when there is one, else a new one
    (zeros for a "pad" kind, see the module docstring)."""
    lst = _POOL.get((kind, shape, dtype)) if xp is np else None
    if lst:
        a = lst.pop()
        _POOL_BYTES[0] -= a.nbytes
        return a
    return xp.zeros(shape, dtype=dtype) if kind[0] == "pad" else xp.empty(shape, dtype=dtype)


def give(a, kind):
    """Hand back an array from `take` (NumPy only; dropped when the pool is full)."""
    if isinstance(a, np.ndarray) and _POOL_BYTES[0] + a.nbytes <= POOL_LIMIT:
        _POOL.setdefault((kind, a.shape, a.dtype), []).append(a)
        _POOL_BYTES[0] += a.nbytes


def clear():
    """Drop every pooled array."""
    _POOL.clear()
    _POOL_BYTES[0] = 0
