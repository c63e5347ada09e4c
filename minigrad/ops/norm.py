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
r = gamma * x_hat + beta.  `Normalize` is fused for speed and never forms x_hat;
`minigrad.ops.norm_reference.normalize_reference` writes the equations out as
they read, and the tests check that the two agree in values and gradients.

Speed: batch_norm, group_norm and instance_norm run `ChannelNormalize`, the same
computation laid out for channels-last memory (what conv2d returns): all sums are
per (sample or batch, channel) over one contiguous axis, by matmul and einsum, and
the output stays channels-last.  `Normalize` remains the general kernel (layer_norm,
and the reference the tests compare the fast path with; FAST = False routes the
three norms through it).  On ResNet-20 with GN at batch 64 this took the norms from
about 45% of a training step to about 15%.
"""
import numbers

import numpy as np

from ..autograd import Function, as_tensor, no_grad
from .basic import sum_to
from .checks import check_buffer as _check_buffer
from .checks import check_dtypes as _check_dtypes
from .checks import check_momentum as _check_momentum

__all__ = ["batch_norm", "group_norm", "layer_norm", "instance_norm"]


def _sum_of_products(xp, a, b, axes):
    """(a * b).sum(axes, keepdims=True), without making the array a * b (einsum)."""
    letters = "abcdefghijklmnopqrstuvwxyz"[:a.ndim]
    kept = "".join(c for i, c in enumerate(letters) if i not in axes)
    out = xp.einsum(f"{letters},{letters}->{kept}", a, b)
    return out.reshape([1 if i in axes else n for i, n in enumerate(a.shape)])


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
    A plain version that forms x_hat as eqs. (1)-(2) read, one composed op at a
    time, is `minigrad.ops.norm_reference.normalize_reference`; the tests check
    that both give the same values and gradients.

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

    For speed the op keeps d = x - mu and r = 1/s rather than x_hat = d * r:
    every use of x_hat becomes d times a small per-set array, which saves full
    passes over the data; the sums of products use einsum, which makes no temporary.
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
        self.n = int(np.prod([x.shape[a] for a in self.axes]))   # numbers per set

        if self.stats is None:
            mean = x.mean(axis=self.axes, keepdims=True)
            d = x - mean
            var = _sum_of_products(xp, d, d, self.axes) / self.n     # biased, as eq. (1) uses
        else:
            mean, var = self.stats
            d = x - mean
        r = 1.0 / xp.sqrt(var + self.eps)                  # 1/s
        self.mean, self.var, self.d, self.r = mean, var, d, r

        if weight is not None:
            weight = weight.reshape(self.param_shape)
        self.weight = weight
        y = d * (r if weight is None else r * weight)      # = x_hat * weight, in one pass
        if bias is not None:
            y += bias.reshape(self.param_shape)
        return y.reshape(self.in_shape)

    def backward(self, gy):
        xp, d, r, weight, axes, n = self.xp, self.d, self.r, self.weight, self.axes, self.n
        gy = gy.reshape(d.shape)
        need_x = self.needs_input_grad[0]
        need_w = self.has_weight and self.needs_input_grad[1]
        need_b = self.has_bias and self.needs_input_grad[-1]

        # `shared`: the normalized axes along which weight and bias are constant.
        # When that is all of them (BatchNorm, InstanceNorm: one weight per set),
        # weight comes out of the means, mean(gy * weight) = weight * mean(gy),
        # and the sums that dx needs are also the sums for dweight and dbias.
        if self.param_shape is None:
            shared = axes
        else:
            pshape = (1,) * (d.ndim - len(self.param_shape)) + tuple(self.param_shape)
            shared = tuple(a for a in axes if pshape[a] == 1)
        per_set = shared == axes
        if weight is None or per_set:
            h, a = gy, (r if weight is None else r * weight)
        else:
            h, a = gy * weight, r

        gx = gw = gb = sum_h = sum_hd = None
        if need_x:
            if self.stats is None:
                # r * (h - mean(h) - x_hat * mean(h x_hat)) with x_hat = d * r, weight in `a`
                sum_h = h.sum(axis=axes, keepdims=True)
                sum_hd = _sum_of_products(xp, h, d, axes)
                gx = h * a
                gx -= a * (sum_h / n)
                gx -= d * (a * r * r * (sum_hd / n))
            else:
                gx = h * a
            gx = gx.reshape(self.in_shape)
        if need_w:                                   # sum of gy * d * r over the broadcast axes
            t = sum_hd if (per_set and sum_hd is not None) else _sum_of_products(xp, gy, d, shared)
            gw = sum_to(t * r, self.param_shape).reshape(self.weight_shape)
        if need_b:
            t = sum_h if (per_set and sum_h is not None) else gy.sum(axis=shared, keepdims=True)
            gb = sum_to(t, self.param_shape).reshape(self.bias_shape)
        return _input_grads(self, gx, gw, gb)


def _input_grads(op, gx, gw, gb):
    """The gradients in the order of the op's inputs: x, then weight and bias if it had them."""
    return (gx,) + ((gw,) if op.has_weight else ()) + ((gb,) if op.has_bias else ())


def _channels_last(x):
    """(N, C, *spatial) -> an (N, P, C) array with P = prod(spatial): free when x is stored
    channels-last (as conv2d returns it), one copy otherwise."""
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    return x.transpose(perm).reshape(x.shape[0], -1, x.shape[1])


def _from_channels_last(y3, shape):
    """The inverse of `_channels_last`: (N, P, C) -> (N, C, *spatial), a free view."""
    nd = len(shape)
    y = y3.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return y.transpose((0, nd - 1) + tuple(range(1, nd - 1)))


class ChannelNormalize(Function):
    """The fast path of `Normalize` for the per-channel norms (BatchNorm, GroupNorm,
    InstanceNorm, and LayerNorm of a conv map as GroupNorm with one group):
    y = weight_c * (x - mu) * s + bias_c with s = 1 / sqrt(var + eps).

    x (N, C, *spatial) is seen channels-last, as x3 of shape (Nb, P, C): (N, P, C)
    for the per-sample norms, (1, N*P, C) for BatchNorm (`batch=True`).  Within each
    of the Nb rows the C channels fall into `groups` consecutive groups of Cg = C/G;
    one set of statistics per (row, group), over its m = P * Cg numbers (BatchNorm
    and InstanceNorm: G = C).  Everything then reduces to per-(row, channel) sums
    over the contiguous P axis, done by one matmul or einsum each, and to passes of
    the form x3 * a + b with small per-(row, channel) arrays a, b: no strided
    reductions, no transposes, and the output stays channels-last like conv2d's.

    Forward: S1 = sum_p x, S2 = sum_p x^2 per (row, channel); summed over each group
    they give mu = S1/m and var = S2/m - mu^2 (biased).  When var is small next to
    mu^2 the difference loses digits, so then var is recomputed as mean((x - mu)^2).

    Backward: the closed form of `Normalize`, dL/dx = s (g - mean(g) - x_hat mean(g x_hat))
    with g = gy * weight, x_hat = (x - mu) s.  Its set sums come from per-channel sums,
        A_c = sum_p gy,  B_c = sum_p gy x,  sum_set g = sum_c w_c A_c,
        sum_set g (x - mu) = sum_c w_c (B_c - mu A_c),
    and dL/dx is one affine map of gy and x per (row, channel):
        dL/dx = gy * (s w_c) + x * beta + (-s mean(g) - beta mu),
        beta = -s^3 sum_set(g (x - mu)) / m.
    dL/dweight_c = sum over rows of s (B_c - mu A_c), dL/dbias_c = sum over rows of A_c.
    With fixed statistics (`stats` = per-channel (mean, var), eval mode) dL/dx = gy s w_c.
    """

    def __init__(self, groups=None, batch=False, eps=1e-5, has_weight=False, has_bias=False,
                 stats=None):
        self.groups, self.batch, self.eps = groups, batch, eps
        self.has_weight, self.has_bias, self.stats = has_weight, has_bias, stats

    def forward(self, x, *params):
        xp = self.xp
        self.in_shape = x.shape
        C = x.shape[1]
        x3 = _channels_last(x)
        if self.batch:
            x3 = x3.reshape(1, -1, C)
        Nb, P = x3.shape[:2]
        G = C if (self.batch or self.groups is None) else self.groups
        Cg = C // G
        self.G, self.m = G, P * Cg
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None

        if self.stats is None:
            S1 = _group_sum(_sum_positions(xp, x3), G)
            S2 = _group_sum(xp.einsum("npc,npc->nc", x3, x3), G)
            mean = S1 / self.m
            var = xp.maximum(S2 / self.m - mean * mean, 0)
            if bool((mean * mean > 100 * (var + self.eps)).any()):   # cancellation: redo it
                xc = x3 - _per_channel(mean, Cg)[:, None, :]
                var = _group_sum(xp.einsum("npc,npc->nc", xc, xc), G) / self.m
                del xc
            self.mean, self.var = mean, var                  # per (row, group)
            mean_c = _per_channel(mean, Cg)                  # per (row, channel)
            s_c = 1.0 / xp.sqrt(_per_channel(var, Cg) + self.eps)
        else:
            mean_c = self.stats[0].reshape(1, C)
            s_c = 1.0 / xp.sqrt(self.stats[1].reshape(1, C) + self.eps)
        mean_c, s_c = mean_c.astype(x.dtype, copy=False), s_c.astype(x.dtype, copy=False)
        a = s_c if weight is None else s_c * weight
        b = -mean_c * a
        if bias is not None:
            b += bias
        y3 = x3 * a[:, None, :]
        y3 += b[:, None, :]
        self.x3, self.mean_c, self.s_c, self.a, self.weight = x3, mean_c, s_c, a, weight
        return _from_channels_last(y3.reshape(x.shape[0], -1, C), x.shape)

    def backward(self, gy):
        xp, x3, m, G = self.xp, self.x3, self.m, self.G
        Nb, _, C = x3.shape
        Cg = C // G
        gy3 = _channels_last(gy).reshape(x3.shape)
        need_x = self.needs_input_grad[0]
        need_w = self.has_weight and self.needs_input_grad[1]
        need_b = self.has_bias and self.needs_input_grad[-1]
        train = self.stats is None

        A = Bc = None
        if need_b or need_w or (need_x and train):
            A = _sum_positions(xp, gy3)
        if need_w or (need_x and train):
            Bc = xp.einsum("npc,npc->nc", gy3, x3) - self.mean_c * A    # sum_p gy (x - mu)

        gx = gw = gb = None
        if need_x:
            gx3 = gy3 * self.a[:, None, :]
            if train:
                w = 1 if self.weight is None else self.weight
                sum_g = _per_channel(_group_sum(A * w, G), Cg)
                sum_gxc = _per_channel(_group_sum(Bc * w, G), Cg)
                s = self.s_c
                beta = -(s * s * s) * sum_gxc / m
                const = -s * sum_g / m - beta * self.mean_c
                tmp = x3 * beta[:, None, :]
                gx3 += tmp
                del tmp
                gx3 += const[:, None, :]
            gx = _from_channels_last(gx3.reshape(self.in_shape[0], -1, C), self.in_shape)
        if need_w:
            gw = (Bc * self.s_c).sum(axis=0)
        if need_b:
            gb = A.sum(axis=0)
        return _input_grads(self, gx, gw, gb)


def _sum_positions(xp, a3):
    """(Nb, P, C) -> (Nb, C): the sum over the middle axis, as a matmul with a row of ones
    (several times faster than a3.sum(axis=1), which reduces along a strided axis)."""
    Nb, P, C = a3.shape
    return xp.matmul(xp.ones((1, 1, P), dtype=a3.dtype), a3).reshape(Nb, C)


def _group_sum(a, G):
    """(Nb, C) per-channel sums -> (Nb, G) per-group sums (no-op for one channel per group)."""
    Nb, C = a.shape
    return a if G == C else a.reshape(Nb, G, C // G).sum(axis=2)


def _per_channel(a, Cg):
    """(Nb, G) per-group values -> (Nb, G*Cg), each repeated for the Cg channels of its group."""
    return a if Cg == 1 else a.repeat(Cg, axis=1)


def channel_normalize(x, groups=None, batch=False, weight=None, bias=None, eps=1e-5,
                      stats=None):
    """`ChannelNormalize` as a function.  Returns (y, op)."""
    op = ChannelNormalize(groups, batch, eps, weight is not None, bias is not None, stats)
    inputs = [x] + [p for p in (weight, bias) if p is not None]
    return op(*inputs), op


def normalize(x, axes, weight=None, bias=None, eps=1e-5, view=None, param_shape=None,
              stats=None):
    """`Normalize` as a function (the kernel behind the four norms; not exported to F,
    whose `normalize` in PyTorch means Lp normalization).  Returns (y, op)."""
    op = Normalize(axes, eps, view, param_shape, weight is not None, bias is not None, stats)
    inputs = [x] + [p for p in (weight, bias) if p is not None]
    return op(*inputs), op


#: Use `ChannelNormalize` for batch_norm, group_norm and instance_norm.  False routes
#: them through the general `Normalize` (the reference the tests compare against).
FAST = True


def _normalize_channels(x, axes, weight, bias, eps, pshape, stats=None, batch=False,
                        groups=None):
    """batch_norm's and instance_norm's call: `ChannelNormalize` when FAST, else `Normalize`.
    Returns (y, op); op.mean and op.var reshape to one value per channel (BatchNorm) or
    broadcast as (N, C) (InstanceNorm)."""
    if FAST:
        if stats is not None:
            stats = tuple(a.reshape(-1) for a in stats)
        return channel_normalize(x, groups, batch, weight, bias, eps, stats)
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
        stats = tuple(b.reshape(pshape).astype(x.dtype, copy=False) for b in (rm, rv))
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
        stats = tuple(b.reshape(pshape).astype(x.dtype, copy=False) for b in (rm, rv))
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
    if FAST:
        y, _ = channel_normalize(x, G, False, weight, bias, eps)
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
