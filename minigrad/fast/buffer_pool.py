"""Large work arrays reused from one training step to the next (NumPy only).

A training step makes the same large arrays every step: the fast conv2d's patch
matrices and zero-padded inputs.  Fresh arrays of that size come from the kernel as
new pages, and the page faults of their first touch cost more than the copy into
them, so the fast conv2d takes these arrays from here and hands them back once it
no longer needs them (after backward, or at the end of a forward that recorded no
graph).  CuPy has its own memory pool: there `take` allocates and `give` keeps nothing.

    a = take(xp, kind, shape, dtype)     # a pooled array, or a new one
    give(a, kind)                        # back into the pool

Arrays of one kind, shape and dtype are interchangeable.  The pool keeps at most
`pool_limit()` bytes: a `give` beyond it evicts the shapes used longest ago, so a new
model's shapes replace an earlier model's.  Not thread-safe (minigrad runs one step
at a time).
"""
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

__all__ = ["Kind", "take", "give", "clear", "nbytes", "contents", "pool_limit", "set_pool_limit"]


class Kind(NamedTuple):
    """What a pooled array is used for.

    zero_border: new arrays are zeros, and their users only ever write the region that
    `interior` names (a padding, a grid), so a reused array still has its zero border."""
    name: str
    zero_border: bool = False
    interior: tuple = ()


class _Pool:
    """The pooled arrays, least recently used shapes first, and their total size."""

    def __init__(self, limit):
        self.arrays = OrderedDict()          # (kind, shape, dtype) -> list of arrays
        self.nbytes = 0
        self.limit = limit

    def evict_to(self, limit):
        """Drop the shapes used longest ago until at most `limit` bytes are kept."""
        while self.nbytes > limit:
            _, lst = self.arrays.popitem(last=False)
            self.nbytes -= sum(a.nbytes for a in lst)


_pool = _Pool(limit=1 << 30)


def take(xp, kind, shape, dtype):
    """A C-contiguous array of `shape` (a tuple) and `dtype` (a np.dtype): a pooled one
    when there is one, else a new one (zeros for a kind with a zero border)."""
    key = (kind, shape, dtype)        # shape a tuple and dtype a np.dtype, as a.shape and a.dtype
    lst = _pool.arrays.get(key) if xp is np else None
    if lst:
        a = lst.pop()
        if not lst:
            del _pool.arrays[key]
        _pool.nbytes -= a.nbytes
        return a
    return xp.zeros(shape, dtype=dtype) if kind.zero_border else xp.empty(shape, dtype=dtype)


def give(a, kind):
    """Hand back an array from `take` (NumPy only; arrays of other libraries are ignored)."""
    if not isinstance(a, np.ndarray) or a.nbytes > _pool.limit:
        return
    key = (kind, a.shape, a.dtype)
    _pool.arrays.setdefault(key, []).append(a)
    _pool.arrays.move_to_end(key)
    _pool.nbytes += a.nbytes
    if _pool.nbytes > _pool.limit:
        _pool.evict_to(_pool.limit)


def clear():
    """Drop every pooled array."""
    _pool.arrays.clear()
    _pool.nbytes = 0


def nbytes():
    """The bytes the pool holds now."""
    return _pool.nbytes


def contents():
    """{(kind name, shape): number of pooled arrays}, least recently used first."""
    counts = {}
    for (kind, shape, _), lst in _pool.arrays.items():
        if lst:
            counts[kind.name, shape] = counts.get((kind.name, shape), 0) + len(lst)
    return counts


def pool_limit():
    """The most bytes the pool keeps."""
    return _pool.limit


def set_pool_limit(limit):
    """Keep at most `limit` bytes (0 turns the pool off); returns the previous limit.
    Arrays beyond the new limit are dropped, the longest unused first."""
    if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"set_pool_limit: the limit must be a number of bytes >= 0, got {limit!r}")
    previous, _pool.limit = _pool.limit, int(limit)
    _pool.evict_to(_pool.limit)
    return previous
