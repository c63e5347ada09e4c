"""The channels-last fast path of `Normalize` (minigrad/ops/norm.py).

batch_norm, group_norm and instance_norm run `NormalizeChannelsLast` while the fast path is
on (`minigrad.use_fast`).  It computes what the general `Normalize` computes, with the same
two-pass statistics, for inputs stored as conv2d returns them, channels-last: every sum is
over the positions of one (sample or batch, channel), which is then one contiguous axis and
is done by a matmul with ones or an einsum, and the output stays channels-last.  The tests
check the two kernels equal in values and float64 gradients, and this one's float32 error
against a float64 computation.
"""
import numpy as np

from ..autograd import Function

__all__ = ["NormalizeChannelsLast", "normalize_channels_last"]

#: Positions summed in the input's dtype before the partial sums are added in float64
#: (`position_sums`).
BLOCK = 256


class NormalizeChannelsLast(Function):
    """`Normalize` for the per-channel norms, on x of shape (N, C, *spatial) seen channels-last:
    y = weight_c * (x - mu) * s + bias_c with s = 1 / sqrt(var + eps).

    x is seen as x3 of shape (Nb, P, C): (N, P, C) for the per-sample norms, (1, N*P, C) for
    BatchNorm (`batch=True`), with P the positions of one sample.  Within each of the Nb rows
    the C channels fall into `groups` consecutive groups of Cg = C/G; one set of statistics
    per (row, group), over its m = P * Cg numbers (BatchNorm and InstanceNorm: G = C).

    Forward, in two passes as eq. (1) reads: mu = sum(x) / m, then d = x - mu and
    var = sum(d^2) / m, and y = d * a + bias_c with a = s * weight_c.  (The one-pass
    var = sum(x^2)/m - mu^2, and y = x * a + (bias_c - mu * a), each subtract two numbers of
    size mu^2 or mu * a and lose the digits of the difference when mu is large next to the
    standard deviation, as un-centred inputs have.)

    Backward: the closed form of `Normalize`, dL/dx = s (g - mean(g) - x_hat mean(g x_hat))
    with g = gy * weight and x_hat = d * s.  Its set sums come from per-(row, channel) sums
        A_c = sum_p gy,   B_c = sum_p gy d,   sum_set g = sum_c w_c A_c,   sum_set g d = sum_c w_c B_c,
    and dL/dx is one affine map of gy and d per (row, channel):
        dL/dx = gy * a + d * beta - s sum_set(g) / m,    beta = -s^3 sum_set(g d) / m.
    dL/dweight_c = sum over rows of s B_c, dL/dbias_c = sum over rows of A_c.  With fixed
    statistics (`stats` = per-channel (mean, var), eval mode) dL/dx = gy * a.

    The statistics and the per-channel coefficients are computed in float64 (they are small)
    and rounded to x's dtype before they touch a full-size array.
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
        G = C if (self.batch or self.groups is None) else self.groups
        Cg = C // G
        self.G, self.m = G, x3.shape[1] * Cg
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None

        if self.stats is None:
            # Two passes: a first mean as the shift K, then mu and var from d = x - K.
            K = (_group_sum(position_sums(xp, x3), G) / self.m).astype(x.dtype)  # per (row, group)
            shift = _per_channel(K, Cg)                                        # per (row, channel)
            d = x3 - shift[:, None, :]
            mean_d = _group_sum(position_sums(xp, d), G) / self.m
            var = _group_sum(position_sums(xp, d, d), G) / self.m - mean_d * mean_d  # biased
            self.mean, self.var = K + mean_d, var
            delta = _per_channel(mean_d, Cg)                                  # mu - K
            s_c = 1.0 / xp.sqrt(_per_channel(var, Cg) + self.eps)
        else:
            shift, delta = self.stats[0].reshape(1, C), 0.0
            d = x3 - shift[:, None, :]
            s_c = 1.0 / xp.sqrt(self.stats[1].reshape(1, C) + self.eps)
        a = s_c if weight is None else s_c * weight
        b = -delta * a if bias is None else bias - delta * a                  # y = (d - delta) a + bias
        y3 = d                               # a fresh array: the output takes its memory
        y3 *= a.astype(x.dtype)[:, None, :]
        y3 += b.astype(x.dtype)[:, None, :]
        self.x3, self.shift, self.delta, self.s_c = x3, shift, delta, s_c
        self.a, self.weight = a.astype(x.dtype), weight
        return _from_channels_last(y3.reshape(x.shape[0], -1, C), x.shape)

    def backward(self, gy):
        xp, x3, m, G = self.xp, self.x3, self.m, self.G
        C = x3.shape[2]
        Cg = C // G
        gy3 = _channels_last(gy).reshape(x3.shape)
        need_x = self.needs_input_grad[0]
        need_w = self.has_weight and self.needs_input_grad[1]
        need_b = self.has_bias and self.needs_input_grad[-1]
        train = self.stats is None

        if need_b or need_w or (need_x and train):
            A = position_sums(xp, gy3)                       # sum_p gy, per (row, channel)
        if need_w or (need_x and train):
            d = x3 - self.shift[:, None, :]                  # recomputed: cheaper than keeping it
            B = position_sums(xp, gy3, d) - self.delta * A   # sum_p gy (x - mu)

        gx = gw = gb = None
        if need_x:
            gx3 = gy3 * self.a[:, None, :]
            if train:
                w = 1.0 if self.weight is None else self.weight
                s = self.s_c
                sum_g = _per_channel(_group_sum(A * w, G), Cg)
                sum_gxc = _per_channel(_group_sum(B * w, G), Cg)
                beta = -(s * s * s) * sum_gxc / m
                d *= beta.astype(x3.dtype)[:, None, :]
                gx3 += d
                gx3 += (-s * sum_g / m - beta * self.delta).astype(x3.dtype)[:, None, :]
            gx = _from_channels_last(gx3.reshape(self.in_shape[0], -1, C), self.in_shape)
        if need_w:
            gw = (B * self.s_c).sum(axis=0).astype(x3.dtype)
        if need_b:
            gb = A.sum(axis=0).astype(x3.dtype)
        return (gx,) + ((gw,) if self.has_weight else ()) + ((gb,) if self.has_bias else ())


def normalize_channels_last(x, groups=None, batch=False, weight=None, bias=None, eps=1e-5,
                            stats=None):
    """`NormalizeChannelsLast` as a function.  Returns (y, op)."""
    op = NormalizeChannelsLast(groups, batch, eps, weight is not None, bias is not None, stats)
    inputs = [x] + [p for p in (weight, bias) if p is not None]
    return op(*inputs), op


def position_sums(xp, a3, b3=None):
    """Per-(row, channel) sums over the positions of a3, or of a3 * b3: (Nb, P, C) -> (Nb, C),
    in float64.

    A float32 sum of many terms loses digits, each addition rounding to the precision of the
    running total (BatchNorm sums N*H*W of them).  So blocks of BLOCK positions are summed in
    the input's dtype, and the block sums are added in float64.  Within a block the sum is a
    matmul with ones (several times faster than a3.sum(axis=1), which reduces along a strided
    axis), or an einsum, which makes no array a3 * b3."""
    Nb, P, C = a3.shape
    total = xp.zeros((Nb, C), dtype=np.float64)
    whole = P - P % BLOCK
    for part in (slice(0, whole), slice(whole, P)):       # the whole blocks, then the rest
        n = part.stop - part.start
        if n == 0:
            continue
        size = min(n, BLOCK)
        a = a3[:, part].reshape(Nb, n // size, size, C)
        if b3 is None:
            s = xp.matmul(xp.ones((1, size), dtype=a3.dtype), a)
        else:
            s = xp.einsum("nkpc,nkpc->nkc", a, b3[:, part].reshape(a.shape))
        total += s.reshape(Nb, -1, C).sum(axis=1, dtype=np.float64)
    return total


def _group_sum(a, G):
    """(Nb, C) per-channel sums -> (Nb, G) per-group sums (no-op for one channel per group)."""
    Nb, C = a.shape
    return a if G == C else a.reshape(Nb, G, C // G).sum(axis=2)


def _per_channel(a, Cg):
    """(Nb, G) per-group values -> (Nb, G*Cg), each repeated for the Cg channels of its group."""
    return a if Cg == 1 else a.repeat(Cg, axis=1)


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
