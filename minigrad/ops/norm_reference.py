"""A readable normalize: eqs. (1)-(2) of the paper written out, one composed op at a time.

    x_hat = (x - mu_B) / sigma_B                 eq. (1), sigma_B = sqrt(var_B + eps)
    r     = gamma * x_hat + beta                 eq. (2)

`Normalize` (minigrad/ops/norm.py) computes the same thing as one op with a
hand-derived backward.  This module forms every quantity of the equations as its
own tensor, from the basic ops (mean, subtract, square, sqrt, divide, multiply,
add), and leaves the backward to the autograd engine.  It is slower and uses
more memory, and it is here to be read, and to check the hand-derived kernel against:
tests/minigrad/test_norm_reference.py asserts that both give the same outputs
and the same gradients for every norm built on them.

The arguments are those of `minigrad.ops.norm.normalize`, so that any of
batch_norm, instance_norm, group_norm and layer_norm can be replayed here.
"""
from ..autograd import Tensor, as_tensor

__all__ = ["normalize_reference"]


def normalize_reference(x, axes, weight=None, bias=None, eps=1e-5, view=None, param_shape=None,
                        stats=None):
    """weight * (x - mu) / sqrt(var + eps) + bias, mu and var over `axes`, composed of basic ops.

    x:            the input Tensor; seen as `view` first when given (GroupNorm).
    axes:         the axes of that view that share one mean and one variance.
    weight, bias: Tensors or None, seen as `param_shape` (default: their own shape,
                  broadcast from the right) so that they broadcast against the view.
    stats:        (mean, var) arrays to use instead of the batch's own (evaluation
                  mode); they are constants, so no gradient flows through them.
    Returns the output Tensor, of x's shape.
    """
    x = as_tensor(x)
    in_shape = x.shape
    if view is not None:
        x = x.reshape(view)
    axes = tuple(a % x.ndim for a in axes)

    if stats is None:
        mu = x.mean(axis=axes, keepdims=True)                      # mu_B
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)       # sigma_B^2, biased
    else:
        mu, var = (Tensor(a) for a in stats)                       # running estimates
    sigma = (var + eps).sqrt()                                     # sigma_B
    x_hat = (x - mu) / sigma                                       # eq. (1)

    r = x_hat
    if weight is not None:                                         # eq. (2): gamma * x_hat
        r = as_tensor(weight).reshape(param_shape or weight.shape) * r
    if bias is not None:                                           # ... + beta
        r = r + as_tensor(bias).reshape(param_shape or bias.shape)
    return r.reshape(in_shape)
