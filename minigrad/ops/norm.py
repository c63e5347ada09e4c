"""Normalization layers: BatchNorm, GroupNorm, LayerNorm, InstanceNorm.

All four are one computation, standardize a set of numbers and then scale and
shift them, and differ only in *which* numbers share a mean and a variance:

    x of shape (N, C, H, W)         statistics over             one set per
    batch_norm                      (N, H, W)                   channel
    instance_norm                   (H, W)                      sample and channel
    group_norm(G)                   (C/G, H, W), after viewing  sample and group
                                    x as (N, G, C/G, H, W)
    layer_norm((C, H, W))           (C, H, W)                   sample

So there is one op, `Normalize`, that standardizes over given axes of a view of
x and applies a per-channel (or per-element) affine map; the four public
functions only choose the view, the axes and the shape of weight and bias.
GroupNorm with G = 1 is LayerNorm over (C, H, W) with a per-channel affine, and
with G = C it is InstanceNorm: the tests check both identities.

The paper's eqs. (1)-(2) are the BatchNorm case: x_hat = (x - mu_B) / sigma_B,
r = gamma * x_hat + beta.  `Normalize` computes them with a hand-derived backward;
`minigrad.ops.norm_reference.normalize_reference` composes them from basic ops and
leaves the backward to the engine, and the tests check that the two agree.

While the fast path is on (`minigrad.use_fast`, the default), batch_norm, group_norm
and instance_norm run `minigrad.fast.norm.NormalizeChannelsLast` instead: the same
computation for inputs stored channels-last, as conv2d returns them, where every sum
runs along one contiguous axis.  layer_norm always runs `Normalize`.
"""
import numbers

import numpy as np

from ..autograd import Function, as_tensor, no_grad
from ..fast import is_fast
from ..fast.norm import normalize_channels_last
from .basic import sum_to
from .checks import check_buffer as _check_buffer
from .checks import check_dtypes as _check_dtypes
from .checks import check_momentum as _check_momentum

__all__ = ["batch_norm", "group_norm", "layer_norm", "instance_norm"]


class Normalize(Function):
    """y = weight * x_hat + bias,  x_hat = (x - mu) / s,  s = sqrt(v + eps),  mu and v over `axes`.

    Settings: `axes` of the view of x to reduce over; `view` a shape to see x as
    first (GroupNorm) or None; `param_shape` the shape weight and bias are seen
    as so that they broadcast against the view; `has_weight`, `has_bias` say
    which of them follow x as inputs; `stats` = (mean, var), arrays that
    broadcast against the view, to use instead of the batch's own (eval mode).
    After the call, `self.mean` and `self.var` (biased, kept dims) hold the
    statistics used, for running-average updates.

    The letters are the ones WeightAlign's op uses for the same kernel applied to
    the n weights of a filter (where alpha * n * v stands under the root): n
    numbers per set, mu their mean, d = x - mu, v = mean(d^2), s = sqrt(v + eps),
    x_hat = d / s, G = dL/dy and h = dL/dx_hat.
    A plain version that forms every quantity of eqs. (1)-(2) as its own tensor is
    `minigrad.ops.norm_reference.normalize_reference`; the tests check that both
    give the same values and gradients.

    Backward.  Take one set of n numbers x_1..x_n that share mu, v, and write
    r = 1/s = 1 / sqrt(v + eps), h = dL/dx_hat = G * weight.  Then

        d mu / dx_i  = 1/n
        d v / dx_i   = 2 (x_i - mu) / n          (the mu term drops: sum_j (x_j - mu) = 0)
        d r / dx_i   = -1/2 r^3 * d v/dx_i = -r^3 (x_i - mu) / n
        d x_hat_j / dx_i = r (delta_ij - 1/n) + (x_j - mu) * d r/dx_i
                         = r (delta_ij - 1/n - x_hat_j x_hat_i / n)

    and summing h_j times this over j gives the closed form (CS231n's
    batchnorm_backward_alt):

        dL/dx_i = (r / n) * (n h_i - sum_j h_j - x_hat_i * sum_j h_j x_hat_j)
                = (1/s) * (h_i - mean(h) - x_hat_i * mean(h * x_hat)),

    WeightAlign's closed form with alpha = 1/n.  With fixed statistics (eval
    mode) mu and s do not depend on x: dL/dx = h / s.  The affine part:
    dL/dweight = sum of G * x_hat and dL/dbias = sum of G, each over the axes
    that weight and bias are broadcast along.
    """

    def __init__(self, axes, eps=1e-5, view=None, param_shape=None, has_weight=False,
                 has_bias=False, stats=None):
        self.axes, self.eps, self.view = tuple(axes), eps, view
        self.param_shape = param_shape
        self.has_weight, self.has_bias, self.stats = has_weight, has_bias, stats

    def forward(self, x, *params):
        xp = self.xp
        self.in_shape = x.shape
        if self.view is not None:
            x = x.reshape(self.view)
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None
        self.weight_shape = None if weight is None else weight.shape
        self.bias_shape = None if bias is None else bias.shape
        self.axes = tuple(sorted(a % x.ndim for a in self.axes))
        if self.param_shape is None and params:      # default: broadcast from the right
            self.param_shape = params[0].shape

        if self.stats is None:
            mean = x.mean(axis=self.axes, keepdims=True)
            d = x - mean
            var = (d * d).mean(axis=self.axes, keepdims=True)      # biased, as eq. (1) uses
        else:
            mean, var = self.stats
            d = x - mean
        self.mean, self.var = mean, var
        self.r = 1.0 / xp.sqrt(var + self.eps)                     # 1/s
        self.x_hat = d * self.r                                    # eq. (1)

        y = self.x_hat
        if weight is not None:                                     # eq. (2)
            self.weight = weight.reshape(self.param_shape)
            y = y * self.weight
        if bias is not None:
            y = y + bias.reshape(self.param_shape)
        return y.reshape(self.in_shape)

    def backward(self, gy):
        x_hat, r, axes = self.x_hat, self.r, self.axes
        gy = gy.reshape(x_hat.shape)
        need_x = self.needs_input_grad[0]
        need_w = self.has_weight and self.needs_input_grad[1]
        need_b = self.has_bias and self.needs_input_grad[-1]

        gx = gw = gb = None
        if need_x:
            h = gy * self.weight if self.has_weight else gy        # dL/dx_hat
            if self.stats is None:
                mean_h = h.mean(axis=axes, keepdims=True)
                mean_hx = (h * x_hat).mean(axis=axes, keepdims=True)
                gx = r * (h - mean_h - x_hat * mean_hx)
            else:
                gx = r * h
            gx = gx.reshape(self.in_shape)
        if need_w:
            gw = sum_to(gy * x_hat, self.param_shape).reshape(self.weight_shape)
        if need_b:
            gb = sum_to(gy, self.param_shape).reshape(self.bias_shape)
        return (gx,) + ((gw,) if self.has_weight else ()) + ((gb,) if self.has_bias else ())


def normalize(x, axes, weight=None, bias=None, eps=1e-5, view=None, param_shape=None,
              stats=None):
    """`Normalize` as a function (the kernel behind the four norms; not exported to F,
    whose `normalize` in PyTorch means Lp normalization).  Returns (y, op)."""
    op = Normalize(axes, eps, view, param_shape, weight is not None, bias is not None, stats)
    inputs = [x] + [p for p in (weight, bias) if p is not None]
    return op(*inputs), op


def _normalize_channels(x, axes, weight, bias, eps, pshape, stats=None, batch=False,
                        groups=None):
    """batch_norm's and instance_norm's kernel: `NormalizeChannelsLast` on the fast path,
    else `Normalize`.  Returns (y, op); op.mean and op.var reshape to one value per
    channel (BatchNorm) or broadcast as (N, C) (InstanceNorm)."""
    if is_fast():
        if stats is not None:
            stats = tuple(a.reshape(-1) for a in stats)
        return normalize_channels_last(x, groups, batch, weight, bias, eps, stats)
    return normalize(x, axes, weight, bias, eps, param_shape=pshape, stats=stats)


# ----------------------------------------------------------------------------
# Checks and running statistics
# ----------------------------------------------------------------------------
def _check_param(p, name, shape, fn):
    if p is None:
        return None
    p = as_tensor(p)
    if tuple(p.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} has shape {tuple(p.shape)}, expected {tuple(shape)} "
                         f"(one value per {'normalized element' if fn == 'layer_norm' else 'channel'})")
    return p


def _update_running(buf, batch_stat, momentum):
    """buf <- (1 - momentum) * buf + momentum * batch_stat, in place (PyTorch's rule)."""
    if buf is None:
        return
    stat = batch_stat.reshape(buf.shape).astype(buf.dtype, copy=False)
    buf *= 1.0 - momentum
    buf += momentum * stat


def _fixed_stats(running_mean, running_var, pshape, dtype):
    """Copies of the running buffers, shaped to broadcast per channel, for an eval-mode
    forward: copies, because a train-mode forward before this graph's backward updates
    the buffers in place, and the backward must see the values this forward used."""
    return tuple(b.reshape(pshape).astype(dtype, copy=True) for b in (running_mean, running_var))


def _channel_param_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _check_ndim(x, least, fn, layout):
    if x.ndim < least:
        raise ValueError(f"{fn}: expected an input of shape {layout}, got shape {tuple(x.shape)}")


def _per_channel_args(x, running_mean, running_var, weight, bias, momentum, fn, least, layout):
    """The checks batch_norm and instance_norm share: one buffer entry and one affine
    parameter per channel (axis 1).  Returns x, the raw buffers, weight, bias and the
    broadcast shape (1, C, 1, ...) of per-channel values."""
    x = as_tensor(x)
    _check_ndim(x, least, fn, layout)
    _check_momentum(momentum, fn)
    C = x.shape[1]
    rm = _check_buffer(running_mean, "running_mean", x, C, fn)
    rv = _check_buffer(running_var, "running_var", x, C, fn)
    weight = _check_param(weight, "weight", (C,), fn)
    bias = _check_param(bias, "bias", (C,), fn)
    _check_dtypes(fn, x, weight=weight, bias=bias, running_mean=rm, running_var=rv)
    return x, rm, rv, weight, bias, _channel_param_shape(x)


# ----------------------------------------------------------------------------
# The public functions
# ----------------------------------------------------------------------------
def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """BatchNorm over (N, C), (N, C, L) or (N, C, H, W), as `torch.nn.functional.batch_norm`.

    training=True: normalize each channel with the batch's mean and biased
    variance (eqs. (1)-(2)), and update the running buffers in place with
    running = (1 - momentum) * running + momentum * batch statistic, where the
    variance statistic is the unbiased one (m / (m - 1) times the biased).
    training=False: normalize with the running buffers (both required).
    Buffers are arrays or Tensors of C numbers; None skips the update.
    """
    x, rm, rv, weight, bias, pshape = _per_channel_args(
        x, running_mean, running_var, weight, bias, momentum, "batch_norm", 2,
        "(N, C), (N, C, L) or (N, C, H, W)")
    axes = (0,) + tuple(range(2, x.ndim))

    if not training:
        if rm is None or rv is None:
            raise ValueError("batch_norm: running_mean and running_var must be given in "
                             "evaluation mode (training=False); pass training=True to use "
                             "the batch's own statistics")
        stats = _fixed_stats(rm, rv, pshape, x.dtype)
        y, _ = _normalize_channels(x, axes, weight, bias, eps, pshape, stats=stats, batch=True)
        return y

    m = x.size // x.shape[1]          # values per channel
    if m <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{tuple(x.shape)}: the batch variance of a single value is 0. Use a "
                         f"larger batch (or more pixels), or a normalization that does not "
                         f"use the batch: group_norm, layer_norm, or WeightAlign")
    y, op = _normalize_channels(x, axes, weight, bias, eps, pshape, batch=True)
    with no_grad():
        _update_running(rm, op.mean, momentum)
        _update_running(rv, op.var * (m / (m - 1)), momentum)
    return y


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """InstanceNorm over (N, C, L) or (N, C, H, W), as `torch.nn.functional.instance_norm`.

    Each sample's channel is normalized over its own spatial positions.  With
    use_input_stats=True the running buffers, if given, move towards the batch
    average of the per-instance mean and unbiased variance; with
    use_input_stats=False the running buffers are used instead.
    """
    x, rm, rv, weight, bias, pshape = _per_channel_args(
        x, running_mean, running_var, weight, bias, momentum, "instance_norm", 3,
        "(N, C, L) or (N, C, H, W)")
    axes = tuple(range(2, x.ndim))

    if not use_input_stats:
        if rm is None or rv is None:
            raise ValueError("instance_norm: use_input_stats=False needs running_mean and "
                             "running_var")
        stats = _fixed_stats(rm, rv, pshape, x.dtype)
        y, _ = _normalize_channels(x, axes, weight, bias, eps, pshape, stats=stats,
                                   groups=x.shape[1])
        return y

    m = int(np.prod(x.shape[2:]))
    if m <= 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                         f"{tuple(x.shape)}: instance statistics need at least 2 positions per "
                         f"channel; use group_norm or layer_norm for 1x1 inputs")
    y, op = _normalize_channels(x, axes, weight, bias, eps, pshape, groups=x.shape[1])
    with no_grad():
        _update_running(rm, op.mean.mean(axis=0), momentum)
        _update_running(rv, (op.var * (m / (m - 1))).mean(axis=0), momentum)
    return y


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """GroupNorm, as `torch.nn.functional.group_norm`: x of shape (N, C, *) is seen
    as (N, G, C/G, *) and each (sample, group) normalized over its C/G channels and
    all positions; weight and bias are per channel."""
    x = as_tensor(x)
    fn = "group_norm"
    _check_ndim(x, 2, fn, "(N, C, *)")
    N, C, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
    if not isinstance(num_groups, numbers.Integral) or num_groups <= 0 or C % num_groups:
        raise ValueError(f"group_norm: the number of channels ({C}) must be divisible by "
                         f"num_groups ({num_groups!r}); choose num_groups among the divisors "
                         f"of {C}")
    G = int(num_groups)
    weight = _check_param(weight, "weight", (C,), fn)
    bias = _check_param(bias, "bias", (C,), fn)
    _check_dtypes(fn, x, weight=weight, bias=bias)
    view = (N, G, C // G) + spatial
    axes = tuple(range(2, len(view)))
    pshape = (1, G, C // G) + (1,) * len(spatial)
    if is_fast():
        y, _ = normalize_channels_last(x, G, False, weight, bias, eps)
    else:
        y, _ = normalize(x, axes, weight, bias, eps, view=view, param_shape=pshape)
    return y


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """LayerNorm, as `torch.nn.functional.layer_norm`: normalize over the trailing
    axes given by `normalized_shape`; weight and bias have that shape."""
    x = as_tensor(x)
    fn = "layer_norm"
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (normalized_shape,)
    ns = tuple(int(n) for n in normalized_shape)
    k = len(ns)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k:]) != ns:
        raise ValueError(f"layer_norm: normalized_shape={ns} must be the trailing shape of the "
                         f"input, i.e. an input of shape (*, {', '.join(map(str, ns))}), but "
                         f"got an input of shape {tuple(x.shape)}")
    weight = _check_param(weight, "weight", ns, fn)
    bias = _check_param(bias, "bias", ns, fn)
    _check_dtypes(fn, x, weight=weight, bias=bias)
    axes = tuple(range(x.ndim - k, x.ndim))
    y, _ = normalize(x, axes, weight, bias, eps, param_shape=ns)
    return y
