"""Argument checks shared by several ops and layers, so that each is written (and worded) once.

* `pair`: an int or a pair of ints as a (height, width) pair: kernel sizes, strides,
  paddings and dilations of conv2d and the pooling ops, and of the layers that store them.
* `check_buffer`, `check_momentum`: the running-statistics buffers (C numbers, updated in
  place) and their update rate, for batch_norm, instance_norm and any norm built on them.
* `check_dtypes`: a norm's parameters and buffers in the input's dtype, as PyTorch asks.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Tensor

__all__ = ["check_buffer", "check_dtypes", "check_momentum", "pair"]


def pair(value, name, minimum=0):
    """An int or a pair of ints as a (height, width) pair of ints, each at least `minimum`.
    A value of the wrong kind is a TypeError; a sequence of another length than 2, or too small
    a value, a ValueError."""
    both = (value, value) if isinstance(value, (int, np.integer)) else value
    if not isinstance(both, (tuple, list)) or not all(isinstance(v, (int, np.integer)) for v in both):
        raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    if len(both) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    if min(both) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(both[0]), int(both[1])


def check_buffer(buf, name, x, C, fn):
    """A running-statistics buffer (array or Tensor of C numbers on x's device) as its raw
    array, which the caller updates in place; None stays None."""
    if buf is None:
        return None
    arr = buf.data if isinstance(buf, Tensor) else buf
    xp = backend.get_array_module(x.data)
    if not isinstance(arr, (np.ndarray, xp.ndarray)):
        raise TypeError(f"{fn}: {name} must be an array or a Tensor (it is updated in place), "
                        f"got {type(arr).__name__}")
    if backend.device_of(arr) != x.device:
        raise RuntimeError(f"{fn}: {name} is on '{backend.device_of(arr)}' but the input is on "
                           f"'{x.device}': move the buffer with .to('{x.device}')")
    if arr.size != C:
        raise ValueError(f"{fn}: {name} should contain {C} elements (one per channel, shape "
                         f"({C},)), not {arr.size}")
    return arr


def check_momentum(momentum, fn):
    """The update rate of running statistics: a number in [0, 1]."""
    if not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{fn}: momentum must be a number in [0, 1], got {momentum!r}")


def check_dtypes(fn, x, **params):
    """A TypeError naming both dtypes and the fix when a parameter or buffer of a norm has
    another dtype than the input x (None entries are skipped), as conv2d and PyTorch refuse it.

    Without it a float32 input with a float64 weight silently computes in float64 and hands
    float64 on to the next layer; a float64 input through float32 parameters would quietly
    run a float32 layer in double precision."""
    xd = x.dtype
    for name, p in params.items():
        pd = getattr(p, "dtype", None)
        if pd is None or pd == xd:
            continue
        raise TypeError(f"{fn}: input is {xd} but {name} is {pd}; cast one of them so both match: "
                        f"module.to(np.{xd}) casts a layer's parameters and buffers, "
                        f"x.astype('{pd}') the input")
