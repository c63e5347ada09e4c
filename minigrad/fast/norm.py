"""The channels-last fast path of `Normalize` (minigrad/ops/norm.py).

batch_norm, group_norm and instance_norm run `NormalizeChannelsLast` while the fast path is
on (`minigrad.use_fast`).  It computes what the general `Normalize` computes, with the same
two-pass statistics, for inputs stored as conv2d returns them, channels-last: every sum is
over the positions of one (sample or batch, channel), which is then one contiguous axis and
is done by a matmul with ones or an einsum, and the output stays channels-last.  The tests
check the two kernels equal in values and float64 gradients, and this one's float32 error
against a float64 computation.
"""
import math

import numpy as np

from ..autograd import Function

__all__ = ["NormalizeChannelsLast", "normalize_channels_last"]

#: Rows of the wide view summed in the input's dtype before the partial sums are added in
#: float64 (`channel_sums`).
BLOCK = 256
#: About how many numbers a row of the wide view holds (`NormalizeChannelsLast`).
WIDTH = 256


class NormalizeChannelsLast(Function):
    """`Normalize` for the per-channel norms, on x of shape (N, C, *spatial) seen channels-last:
    y = weight_c * (x - mu) * s + bias_c with s = 1 / sqrt(var + eps).

    x is seen as x3 of shape (Nb, P, C): (N, P, C) for the per-sample norms, (1, N*P, C) for
    BatchNorm (`batch=True`), with P the positions of one sample.  Within each of the Nb rows
    the C channels fall into `groups` consecutive groups of Cg = C/G; one set of statistics
    per (row, group), over its m = P * Cg numbers (BatchNorm and InstanceNorm: G = C).

    Forward, in two passes as eq. (1) reads.  A first mean K of each set is the shift; then
    d = x - K, and mu = K + mean(d), var = mean(d^2) - mean(d)^2 (biased), which hold for any
    K and lose no digits when K is close to mu.  The output is y = (d - mean(d)) * a + bias_c
    with a = s * weight_c.  (The one-pass var = mean(x^2) - mu^2, and y = x * a + (bias_c - mu a),
    each subtract two numbers of size mu^2 or mu * a, and lose the digits of the difference
    when mu is large next to the standard deviation, as it is for un-centred inputs.)

    Backward: the closed form of `Normalize`, dL/dx = s (g - mean(g) - x_hat mean(g x_hat))
    with g = gy * weight and x_hat = (x - mu) s.  Its set sums come from per-(row, channel) sums
        A_c = sum_p gy,   B_c = sum_p gy (x - mu),   sum_set g = sum_c w_c A_c,
        sum_set g (x - mu) = sum_c w_c B_c,
    and dL/dx is one affine map of gy and x - mu per (row, channel):
        dL/dx = gy * a + (x - mu) * beta - s sum_set(g) / m,    beta = -s^3 sum_set(g (x - mu)) / m.
    dL/dweight_c = sum over rows of s B_c, dL/dbias_c = sum over rows of A_c.  With fixed
    statistics (`stats` = per-channel (mean, var), eval mode) dL/dx = gy * a.

    Layout.  Every full-size array is handled as a wide view (Nb, P/k, k*C), k positions per
    row, whose column j holds channel j % C: a per-channel array is laid along a row once
    (`_along_row`), and the elementwise passes then run over rows of about WIDTH numbers
    instead of C, where NumPy's cost per row would dominate.  The statistics and the per-channel
    coefficients are computed in float64 (they are small) and rounded to x's dtype before
    they meet a full-size array.
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
        k = math.gcd(P, max(1, WIDTH // C))             # positions per row of the wide view
        xw = x3.reshape(Nb, P // k, k * C)
        G = C if (self.batch or self.groups is None) else self.groups
        Cg = C // G
        self.G, self.m, self.k = G, P * Cg, k
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None

        if self.stats is None:
            K = (_group_sum(channel_sums(xp, xw, C), G) / self.m).astype(x.dtype)  # per (row, group)
            shift = _per_channel(K, Cg)                                            # per (row, channel)
            d = xw - _along_row(shift, k)
            mean_d = _group_sum(channel_sums(xp, d, C), G) / self.m
            var = _group_sum(channel_sums(xp, d, C, d), G) / self.m - mean_d * mean_d
            self.mean, self.var = K + mean_d, var
            delta = _per_channel(mean_d, Cg)                                       # mu - K
            s_c = 1.0 / xp.sqrt(_per_channel(var, Cg) + self.eps)
        else:
            shift, delta = self.stats[0].reshape(1, C), 0.0
            d = xw - _along_row(shift, k)
            s_c = 1.0 / xp.sqrt(self.stats[1].reshape(1, C) + self.eps)
        a = s_c if weight is None else s_c * weight
        b = -delta * a if bias is None else bias - delta * a           # y = (d - delta) a + bias
        self.a = a.astype(x.dtype)
        y = d                                    # a fresh array: the output takes its memory
        y *= _along_row(self.a, k)
        y += _along_row(b.astype(x.dtype), k)
        self.xw, self.shift, self.delta, self.s_c, self.weight = xw, shift, delta, s_c, weight
        return _from_channels_last(y.reshape(x.shape[0], -1, C), x.shape)

    def backward(self, gy):
        xp, xw, m, G, k = self.xp, self.xw, self.m, self.G, self.k
        C = xw.shape[2] // k
        Cg = C // G
        gyw = _channels_last(gy).reshape(xw.shape)
        need_x = self.needs_input_grad[0]
        need_w = self.has_weight and self.needs_input_grad[1]
        need_b = self.has_bias and self.needs_input_grad[-1]
        train = self.stats is None

        if need_b or need_w or (need_x and train):
            A = channel_sums(xp, gyw, C)                          # sum_p gy, per (row, channel)
        if need_w or (need_x and train):
            d = xw - _along_row(self.shift, k)     # recomputed: no second array kept alive
            B = channel_sums(xp, gyw, C, d) - self.delta * A     # sum_p gy (x - mu)

        gx = gw = gb = None
        if need_x:
            gxw = gyw * _along_row(self.a, k)
            if train:
                w = 1.0 if self.weight is None else self.weight
                s = self.s_c
                sum_g = _per_channel(_group_sum(A * w, G), Cg)
                sum_gxc = _per_channel(_group_sum(B * w, G), Cg)
                beta = -(s * s * s) * sum_gxc / m
                d *= _along_row(beta.astype(xw.dtype), k)
                gxw += d
                gxw += _along_row((-s * sum_g / m - beta * self.delta).astype(xw.dtype), k)
            gx = _from_channels_last(gxw.reshape(self.in_shape[0], -1, C), self.in_shape)
        if need_w:
            gw = (B * self.s_c).sum(axis=0).astype(xw.dtype)
        if need_b:
            gb = A.sum(axis=0).astype(xw.dtype)
        return (gx,) + ((gw,) if self.has_weight else ()) + ((gb,) if self.has_bias else ())


def normalize_channels_last(x, groups=None, batch=False, weight=None, bias=None, eps=1e-5,
                            stats=None):
    """`NormalizeChannelsLast` as a function.  Returns (y, op)."""
    op = NormalizeChannelsLast(groups, batch, eps, weight is not None, bias is not None, stats)
    inputs = [x] + [p for p in (weight, bias) if p is not None]
    return op(*inputs), op


def channel_sums(xp, aw, C, bw=None):
    """Per-(row, channel) sums of a wide view aw (Nb, R, k*C), or of aw * bw: -> (Nb, C), in
    float64.

    A float32 sum of many terms loses digits, each addition rounding to the precision of the
    running total (BatchNorm sums N*H*W of them).  So blocks of at most BLOCK rows are summed
    in the input's dtype, and the block sums are added in float64.  Within a block the sum is
    a matmul with ones (several times faster than aw.sum(axis=1), which reduces along a
    strided axis), or an einsum, which makes no array aw * bw."""
    Nb, R, width = aw.shape
    if R > BLOCK:
        whole = R - R % BLOCK                      # the rows of the whole blocks, then the rest
        blocks = [None if a is None else a[:, :whole].reshape(-1, BLOCK, width) for a in (aw, bw)]
        rest = [None if a is None else a[:, whole:] for a in (aw, bw)]
        # Each block is a row of its own in the call on `blocks`; its sums are added here.
        total = channel_sums(xp, blocks[0], C, blocks[1]).reshape(Nb, -1, C).sum(axis=1)
        if whole < R:
            total += channel_sums(xp, rest[0], C, rest[1])
        return total
    if bw is None:
        s = xp.matmul(xp.ones((1, R), dtype=aw.dtype), aw)
    else:
        s = xp.einsum("nrc,nrc->nc", aw, bw)
    return s.reshape(Nb, -1, C).sum(axis=1, dtype=np.float64)     # the k columns of a channel


def _along_row(v, k):
    """A per-(row, channel) array (Nb, C) laid along a row of the wide view: (Nb, 1, k*C)."""
    Nb, C = v.shape
    return v[:, None, :] if k == 1 else v[:, None, :].repeat(k, axis=1).reshape(Nb, 1, k * C)


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
