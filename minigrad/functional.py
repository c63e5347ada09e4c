"""Every differentiable op as a plain function, PyTorch-style: `import minigrad.functional as F`.

The ops themselves (a Function class each, forward and backward side by side)
live in `minigrad.ops`; this module only gathers their public functions.
"""
from .ops.basic import (abs, add, cast, concatenate, div, exp, getitem, log, matmul, max, mean,
                        mul, neg, pad, pow, relu, reshape, sigmoid, sqrt, stack, sub, sum, tanh,
                        transpose, var)
from . import fast as _fast
from .fast import conv as _fast_conv
from .ops import conv as _plain_conv
from .ops.conv import col2im, im2col
from .ops.pool import *  # noqa: F401,F403  max_pool2d, avg_pool2d, adaptive_avg_pool2d
from .ops.dense import *  # noqa: F401,F403  linear, dropout
from .ops.loss import *  # noqa: F401,F403  log_softmax, cross_entropy
from .ops.norm import *  # noqa: F401,F403  batch_norm, group_norm, layer_norm, instance_norm


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of an NCHW input, as torch.nn.functional.conv2d.

    x: (N, C, H, W); weight: (O, C/groups, kh, kw); bias: (O,) or None.
    stride, padding, dilation: int or (height, width) pair.  Returns (N, O, Ho, Wo),
    stored channels-last (see minigrad/ops/conv.py).

    The one place that picks the algorithm: the fast one (minigrad/fast/conv.py) unless
    `minigrad.use_fast(False)` chose the plain im2col one (minigrad/ops/conv.py); both
    give the same numbers up to float rounding."""
    conv = _fast_conv.conv2d if _fast.is_fast() else _plain_conv.conv2d
    return conv(x, weight, bias, stride, padding, dilation, groups)
