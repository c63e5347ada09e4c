"""Keep freed memory in the process, so that a training step does not pay page faults.

Why: a training step allocates the same arrays every time (activations, their
gradients, temporaries), many of them megabytes large.  glibc's malloc serves a
block above its "mmap threshold" with fresh pages from the kernel and gives them
back on free.  The kernel zero-fills each 4 KiB page at its first touch, so writing
into a new 4 MB array costs a thousand page faults: more than the arithmetic of a
ReLU over it.  glibc raises the threshold by itself as blocks are freed, but how far
depends on what else the process has done (benchmarks/README.md has the measurements).

The fix is two malloc settings: serve blocks up to 32 MiB (glibc's largest allowed
threshold) from the heap, and do not hand the heap's freed top back to the kernel.
Freed blocks are then reused by the next step's allocations.  The cost: the process
keeps the memory of its largest step until it exits, as a GPU framework's memory
pool does.

The settings apply to every allocation of the process, not only minigrad's, so
nothing calls `keep_freed_memory()` on import: a program opts in (a training command
and the benchmark scripts do).  It only acts where the C library is glibc (Linux); elsewhere
it does nothing.  The environment variable MINIGRAD_DEFAULT_MALLOC=1 turns the call
into a no-op, for running those programs with the C library's defaults.
"""
import ctypes
import os

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # mallopt parameter numbers (malloc.h)
_MMAP_THRESHOLD = 32 << 20                         # glibc's maximum (64-bit)
_TRIM_THRESHOLD = (1 << 31) - 1                    # "never trim" (an int)


def keep_freed_memory():
    """Tune glibc's malloc to reuse freed blocks, for the whole process (see the module
    docstring).

    Returns True if the settings were applied, False where there is no glibc or
    MINIGRAD_DEFAULT_MALLOC=1 is set."""
    if os.environ.get("MINIGRAD_DEFAULT_MALLOC", "") not in ("", "0"):
        return False
    try:
        # The symbols already loaded into this process, the C library's among them
        # (ctypes.util.find_library would run ldconfig).
        mallopt = ctypes.CDLL(None).mallopt        # glibc (musl's is a stub that returns 0)
    except (OSError, AttributeError, TypeError):   # no mallopt: macOS; Windows
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
