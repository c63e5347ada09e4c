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
