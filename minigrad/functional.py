"""Every differentiable op as a plain function, PyTorch-style: `import minigrad.functional as F`.

The ops themselves (a Function class each, forward and backward side by side)
live in `minigrad.ops`; this module only gathers their public functions.
"""
from .ops.basic import (abs, add, cast, concatenate, div, exp, getitem, log, matmul, max, mean,
                        mul, neg, pad, pow, relu, reshape, sigmoid, sqrt, stack, sub, sum, tanh,
                        transpose, var)
from .ops.conv import *  # noqa: F401,F403  im2col, col2im, conv2d
from .ops.pool import *  # noqa: F401,F403  max_pool2d, avg_pool2d, adaptive_avg_pool2d
from .ops.dense import *  # noqa: F401,F403  linear, dropout
from .ops.loss import *  # noqa: F401,F403  log_softmax, cross_entropy
from .ops.norm import *  # noqa: F401,F403  batch_norm, group_norm, layer_norm, instance_norm

import numpy as np


# ----------------------------------------------------------------------------
# Parameter dtypes of the norms, checked against the input's (as PyTorch does)
# ----------------------------------------------------------------------------
def check_dtypes(fn, x, **params):
    """A TypeError naming both dtypes and the fix when a parameter or buffer of a norm has
    another dtype than the input (None entries are skipped), as conv2d and PyTorch refuse it.

    Without it a float32 input with a float64 weight silently computes in float64 and hands
    float64 on to the next layer; a float64 input through float32 parameters would quietly
    run a float32 layer in double precision."""
    xd = getattr(x, "dtype", None)
    for name, p in params.items():
        pd = getattr(p, "dtype", None)
        if p is None or xd is None or pd is None or pd == xd:
            continue
        raise TypeError(f"{fn}: input is {xd} but {name} is {pd}; cast one of them so both match: "
                        f"module.to(np.{xd}) casts a layer's parameters and buffers, "
                        f"x.astype('{pd}') the input")


def _dtype_checked(op, names):
    import functools
    import inspect
    sig = inspect.signature(op)
    first = next(iter(sig.parameters))

    @functools.wraps(op)
    def checked(*args, **kwargs):
        bound = sig.bind(*args, **kwargs).arguments
        check_dtypes(op.__name__, bound[first], **{n: bound.get(n) for n in names})
        return op(*args, **kwargs)
    return checked


batch_norm = _dtype_checked(batch_norm, ("weight", "bias", "running_mean", "running_var"))  # noqa: F405
instance_norm = _dtype_checked(instance_norm, ("weight", "bias", "running_mean",  # noqa: F405
                                               "running_var"))
group_norm = _dtype_checked(group_norm, ("weight", "bias"))  # noqa: F405
layer_norm = _dtype_checked(layer_norm, ("weight", "bias"))  # noqa: F405
