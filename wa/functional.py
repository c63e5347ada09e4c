"""WeightAlign and its relatives as differentiable ops, each with a hand-derived backward.

    import wa.functional as WF
    w_hat = WF.weight_align(conv.weight, conv.gamma)          # eq. (10)

Four ways to keep activations well scaled, side by side:

* `weight_align`        WeightAlign (Shi et al., ICPR 2020), eq. (10): per filter, zero mean
                        (eq. 6) and (n/2) Var = 1 (eq. 9), with a learnable scale gamma.
* `weight_standardize`  Weight Standardization (Qiao et al. 2019): zero mean, unit std.
* `weight_norm`         Weight Normalization (Salimans & Kingma 2016): g * v / ||v||.
* `batch_channel_norm`  Batch-Channel Normalization (Qiao et al. 2019): normalize every channel
                        with running estimates of its statistics, then a group normalization.

The three weight re-parameterizations work on any weight whose axis 0 indexes the output
filters: a conv weight (out, in/groups, kh, kw) or a linear weight (out, in).  The fan-in of a
filter, n, is the product of all the other axes (n = k*k*C_in for a conv, eq. 3).

Notation in the docstrings, for ONE filter (every sum runs over its n weights, and the ops
handle all filters at once):  G = dL/dw_hat is the upstream gradient, "mean" and "sum" are over
the filter, and products are elementwise.
"""

from minigrad.autograd import Function, as_tensor
from minigrad.functional import group_norm
from minigrad.ops.checks import check_buffer, check_dtypes, check_momentum

__all__ = ["weight_align", "weight_standardize", "weight_norm", "batch_channel_norm",
           "WeightAlign", "WeightStandardize", "WeightNorm", "EstimateNorm"]


def _rows(w, what):
    """View a weight as (out, n): one row per output filter."""
    if w.ndim < 2:
        raise ValueError(f"{what} needs a weight with an output axis and at least one more axis "
                         f"(conv (out, in, kh, kw) or linear (out, in)), got shape {w.shape}")
    return w.reshape(w.shape[0], -1)


def _check_scale(p, out, what, name):
    if p is not None and p.shape != (out,):
        raise ValueError(f"{what}: {name} must have shape ({out},), one entry per output filter, "
                         f"got {p.shape}")


# ----------------------------------------------------------------------------
# WeightAlign
# ----------------------------------------------------------------------------
class WeightAlign(Function):
    r"""w_hat = gamma * (w - mu) / sqrt(alpha * n * v + eps), per output filter  (eq. 10).

    Forward, for one filter w of n weights, staged through named intermediates:

        mu    = mean(w)                          E[w], driven to 0 by eq. (6)
        d     = w - mu
        v     = mean(d * d)                      Var[w], the population variance
        s     = sqrt(alpha * n * v + eps)        alpha = 1/2 gives eq. (9): (n/2) Var = 1
        x_hat = d / s                            the aligned filter before its scale
        w_hat = gamma * x_hat                    eq. (10); no shift term (suppl. VII, eq. 15)

    These are the letters of `minigrad.ops.norm.Normalize`, the same kernel over a set of
    activations (there alpha * n = 1 and the affine is weight, bias): n numbers per set, mu,
    d, v, s, x_hat, G = dL/d(output) and h = dL/dx_hat.

    The ablations of Table IV drop one stage: `center=False` uses u = w in place of d in the
    numerator (x_hat = w / s; s still comes from the centred variance v, because the variance of a
    filter is always taken about its mean), and `scale=False` drops the division (x_hat = d).

    Backward, by the chain rule through the same stages.  Let G = dL/dw_hat.

      (a) dL/dgamma = sum(G * x_hat)
      (b) h := dL/dx_hat = gamma * G
      (c) dL/ds = sum(h * d * (-1/s^2))                 = -(1/s) sum(h * x_hat)
      (d) dL/dv = dL/ds * ds/dv = dL/ds * alpha n / (2 s)
      (e) v = (1/n) sum(d_j^2) gives dv/dd_i = 2 d_i / n, so
          dL/dd_i = h_i / s + dL/dv * 2 d_i / n
                  = h_i / s - alpha * d_i * sum(h * x_hat) / s^2
                  = (1/s) [h_i - alpha * x_hat_i * sum(h * x_hat)]
      (f) d_i = w_i - mu with dmu/dw_j = 1/n, so a change of w_j moves every d_i by -1/n:
          dL/dw_i = dL/dd_i - mean_j(dL/dd_j)
          Since mean(x_hat) = mean(d)/s = 0, the mean of the second term of (e) vanishes and
          mean(dL/dd) = mean(h) / s.

    Closed form (what `backward` computes; note sum(h * x_hat) = gamma * dL/dgamma):

        dL/dw = (1/s) [h - mean(h) - alpha * x_hat * sum(h * x_hat)]

    (With alpha = 1/n this is the familiar BatchNorm backward, with the filter's n weights in
    the role of the batch.)  The ablations follow from the same stages:

        center=False:  dL/dw = (1/s) [h - alpha * (d/s) * sum(h * x_hat)]    with x_hat = w/s
                       (the mean(h) term came from (f), which is gone; v still depends on w
                       through d, so the variance term keeps d/s, not x_hat)
        scale=False:   dL/dw = h - mean(h),   dL/dgamma = sum(G * d)
        neither:       dL/dw = h

    A remark on eqs. (7)-(9): they treat E[w] = 0 as a property of the weight distribution.
    WA makes every filter's SAMPLE mean exactly 0, which also removes the E[y]^2 part of
    E[y^2] from eq. (7): for independent ReLU inputs Var[x] = n Var[w] Var[y], and
    Var[relu(x)] = (1/2 - 1/(2 pi)) Var[x], so at initialisation each aligned layer scales the
    variance by 1 - 1/pi ~ 0.68 instead of 1 (tests/wa/test_models.py measures it on plain8).
    The learnable gamma is there to absorb such constant factors.

    A filter with zero variance (all weights equal, e.g. fan-in n = 1) has d = 0 and
    s = sqrt(eps): the aligned filter is exactly 0 and, for n = 1, so is its gradient.  eps keeps
    every number finite; the output channel is then dead, which is the honest answer, as eq. (10)
    is undefined (0/0) there.  With scale only, such a filter is multiplied by 1/sqrt(eps).
    """

    def __init__(self, eps=1e-5, alpha=0.5, center=True, scale=True):
        if alpha <= 0:
            raise ValueError(f"weight_align: alpha must be > 0 (0.5 is eq. 9's n/2), got {alpha}")
        if eps < 0:
            raise ValueError(f"weight_align: eps must be >= 0, got {eps}")
        self.eps, self.alpha, self.center, self.scale = eps, alpha, center, scale

    def forward(self, w, gamma=None):
        xp, rows = self.xp, _rows(w, "weight_align")
        out, n = rows.shape
        _check_scale(gamma, out, "weight_align", "gamma")
        # Few numpy calls per filter bank: the weights are small, so the call count, not
        # the arithmetic, sets the time (sums times 1/n instead of mean, one reciprocal).
        d = rows - rows.sum(axis=1, keepdims=True) * (1.0 / n)
        if self.scale:
            v = xp.einsum("ij,ij->i", d, d).reshape(out, 1) * (1.0 / n)
            self.s = xp.sqrt(self.alpha * n * v + self.eps)
            inv_s = 1.0 / self.s
            self.d_over_s = d * inv_s
            x_hat = self.d_over_s if self.center else rows * inv_s
        else:
            x_hat = d if self.center else rows
        self.x_hat = x_hat                    # saved apart from gamma: gamma may be 0 (Fixup)
        self.gamma = None if gamma is None else gamma.reshape(out, 1)
        y = x_hat if gamma is None else self.gamma * x_hat
        return y.reshape(w.shape)

    def backward(self, gy):
        xp, G = self.xp, _rows(gy, "weight_align")
        gw = g_gamma = sum_gx = None
        if self.gamma is not None and (self.needs_input_grad[1] or self.scale):
            sum_gx = xp.einsum("ij,ij->i", G, self.x_hat)            # (a): sum(G * x_hat)
            if self.needs_input_grad[1]:
                g_gamma = sum_gx
        if self.needs_input_grad[0]:
            h = G if self.gamma is None else G * self.gamma
            n = h.shape[1]
            gw = h - h.sum(axis=1, keepdims=True) * (1.0 / n) if self.center else h
            if self.scale:
                # sum(h * x_hat) = gamma * sum(G * x_hat): no pass over h when gamma is there
                hx = (xp.einsum("ij,ij->i", h, self.x_hat).reshape(-1, 1) if self.gamma is None
                      else self.gamma * sum_gx.reshape(-1, 1))
                gw = gw - (self.alpha * hx) * self.d_over_s
                gw *= 1.0 / self.s
            gw = gw.reshape(gy.shape)
        return (gw,) if self.gamma is None else (gw, g_gamma)


def weight_align(weight, gamma=None, eps=1e-5, alpha=0.5, center=True, scale=True):
    """WeightAlign, eq. (10): gamma * (w - mean(w)) / sqrt(alpha * n * Var[w] + eps) per filter.

    weight: (out, ...) Tensor, one filter per index of axis 0; n = prod(shape[1:]).
    gamma:  (out,) Tensor or None (= 1), the per-filter learnable scale of eq. (10).
    eps:    added inside the square root, so a constant filter gives 0, not NaN.
    alpha:  the scale factor; 0.5 is the paper's n/2 (eq. 9); supplementary VIII-A varies it.
    center, scale: switch off the two components, as in the ablation of Table IV.

    Var is always the population variance (divide by n) of the filter about its mean, also
    when center=False.  See `WeightAlign` for the derivation of the backward pass.
    """
    check_dtypes("weight_align", weight, gamma=gamma)
    fn = WeightAlign(eps, alpha, center, scale)
    return fn(weight) if gamma is None else fn(weight, gamma)


# ----------------------------------------------------------------------------
# Weight Standardization
# ----------------------------------------------------------------------------
class WeightStandardize(Function):
    r"""w_hat = (w - mu) / (sigma + eps), sigma the UNBIASED std of the filter (Qiao et al.).

    This is the authors' released code (`weight.std(dim=1) + 1e-5`), not their paper's formula
    with eps inside the root.  Forward for one filter of n >= 2 weights:

        mu    = mean(w);   d = w - mu
        sigma = sqrt(sum(d * d) / (n - 1))        Bessel-corrected (unbiased variance)
        t     = sigma + eps                       eps OUTSIDE the root
        w_hat = d / t

    How it differs from WeightAlign (eq. 10, which divides by sqrt((n/2) v + eps)):
      * scale: WS gives a filter of unit variance, WA one of variance 2/n (eq. 9).  For
        eps -> 0,  WA(w) = sqrt(2 / (n - 1)) * WS(w)  exactly: a factor sqrt(2/n) from the
        target variance and sqrt(n/(n-1)) from the estimator.  So WS multiplies the activation
        variance by about n/2 per layer, and needs an activation norm (GN, BCN) after it.
      * estimator: WS divides by n - 1, WA by n.
      * eps: WS adds it to the std, WA to the (scaled) variance under the root.
      * no learnable scale: WS has no gamma (a following norm layer supplies the affine).

    Backward.  Let G = dL/dw_hat.
      (a) dL/dt     = -sum(G * d) / t^2 = -(1/t) sum(G * w_hat);  dL/dsigma = dL/dt
      (b) dsigma/dd_i = d_i / ((n - 1) sigma)
      (c) dL/dd_i   = G_i / t + dL/dsigma * d_i / ((n - 1) sigma)
      (d) dL/dw     = dL/dd - mean(dL/dd)          (as for WA; mean(d) = 0 kills the 2nd term)
    Closed form, with d/sigma = w_hat * t / sigma:

        dL/dw = (1/t) [G - mean(G) - w_hat * sum(G * w_hat) * t / ((n - 1) sigma)]

    For a constant filter (sigma = 0) the square root has no derivative; we take the term as 0
    (d = 0 there), which keeps the gradient finite.  n = 1 is refused: the unbiased std of one
    number is 0/0.
    """

    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, w):
        xp, rows = self.xp, _rows(w, "weight_standardize")
        n = rows.shape[1]
        if n < 2:
            raise ValueError(f"weight_standardize: each filter has fan-in 1 (weight shape "
                             f"{w.shape}); the unbiased std needs at least 2 weights per filter")
        d = rows - rows.mean(axis=1, keepdims=True)
        self.sigma = xp.sqrt((d * d).sum(axis=1, keepdims=True) / (n - 1))
        self.t = self.sigma + self.eps
        self.y = d / self.t
        return self.y.reshape(w.shape)

    def backward(self, gy):
        xp, G, y = self.xp, _rows(gy, "weight_standardize"), self.y
        n = y.shape[1]
        safe = xp.where(self.sigma > 0, self.sigma, 1.0)
        coef = (G * y).sum(axis=1, keepdims=True) * self.t / ((n - 1) * safe)
        gw = (G - G.mean(axis=1, keepdims=True) - y * coef) / self.t
        return gw.reshape(gy.shape)


def weight_standardize(weight, eps=1e-5):
    """Weight Standardization: (w - mean) / (unbiased std + eps) per output filter.

    As the authors' code defines it; see `WeightStandardize` for how it differs from
    WeightAlign and for the backward pass.
    """
    return WeightStandardize(eps)(weight)


# ----------------------------------------------------------------------------
# Weight Normalization
# ----------------------------------------------------------------------------
class WeightNorm(Function):
    r"""w_hat = g * v / ||v||, per output filter (Salimans & Kingma 2016).

    Forward:  r = sqrt(sum(v * v)),  x = v / r,  w_hat = g * x.  No centring, no eps (as in the
    original and in PyTorch's weight_norm): an all-zero v gives NaN.

    Backward.  Let G = dL/dw_hat.
      (a) dL/dg = sum(G * x)
      (b) h := dL/dx = g * G
      (c) dL/dr = -sum(h * v) / r^2 = -(1/r) sum(h * x),   dr/dv = v / r = x
      (d) dL/dv = h / r + dL/dr * x
    Closed form:   dL/dv = (g / r) [G - x * dL/dg]
    (the component of G along the filter's direction is removed: scaling v changes nothing).
    """

    def forward(self, v, g):
        rows = _rows(v, "weight_norm")
        out = rows.shape[0]
        _check_scale(g, out, "weight_norm", "g")
        self.r = self.xp.sqrt((rows * rows).sum(axis=1, keepdims=True))
        self.x = rows / self.r
        self.g = g.reshape(out, 1)
        return (self.g * self.x).reshape(v.shape)

    def backward(self, gy):
        G = _rows(gy, "weight_norm")
        gg = (G * self.x).sum(axis=1, keepdims=True)
        gv = (self.g / self.r) * (G - self.x * gg) if self.needs_input_grad[0] else None
        return (None if gv is None else gv.reshape(gy.shape)), gg.reshape(-1)


def weight_norm(v, g):
    """Weight Normalization: g * v / ||v|| with one norm and one g per output filter.

    v: (out, ...) direction; g: (out,) length.  See `WeightNorm` for the backward.
    """
    check_dtypes("weight_norm", v, g=g)
    return WeightNorm()(v, g)


# ----------------------------------------------------------------------------
# Batch-Channel Normalization
# ----------------------------------------------------------------------------
class EstimateNorm(Function):
    r"""The first half of BCN: y = weight * (x - m) / sqrt(s2 + eps) + bias, per channel (axis 1).

    m and s2 are running ESTIMATES of the channel's mean and variance, given to the constructor
    as constant arrays: the loss is not differentiated through them (they are updated towards
    the batch statistics outside the graph, see `batch_channel_norm`).  So the op is an affine
    map of x, and unlike BatchNorm's backward there are no mean/variance terms:

        xn = (x - m) * k,   k = 1 / sqrt(s2 + eps)
        dL/dx      = G * weight * k
        dL/dweight = sum over (N, H, W) of G * xn
        dL/dbias   = sum over (N, H, W) of G
    """

    def __init__(self, mean, var, eps=1e-5):
        self.mean, self.var, self.eps = mean, var, eps

    def forward(self, x, weight=None, bias=None):
        xp = self.xp
        shape = (1, -1) + (1,) * (x.ndim - 2)
        self.k = (1.0 / xp.sqrt(self.var + self.eps)).reshape(shape).astype(x.dtype)
        self.xn = (x - self.mean.reshape(shape)) * self.k
        self.shape, self.axes = shape, (0,) + tuple(range(2, x.ndim))
        self.weight = None if weight is None else weight.reshape(shape)
        y = self.xn if weight is None else self.xn * self.weight
        return y if bias is None else y + bias.reshape(shape)

    def backward(self, gy):
        k = self.k if self.weight is None else self.k * self.weight
        grads = [gy * k if self.needs_input_grad[0] else None]
        if self.weight is not None:
            grads.append((gy * self.xn).sum(axis=self.axes))
        if len(self.inputs) > len(grads):   # bias given
            grads.append(gy.sum(axis=self.axes))
        return tuple(grads)


def batch_channel_norm(x, num_groups, running_mean, running_var, weight_bc=None, bias_bc=None,
                       weight_gn=None, bias_gn=None, training=True, momentum=0.1, eps=1e-5):
    r"""Batch-Channel Normalization, micro-batch version (Qiao et al. 2019, their Algorithm 1).

    x:                      (N, C, *spatial) activations.
    num_groups:             groups of the channel normalization (GroupNorm) that follows.
    running_mean, running_var: (C,) Tensors (or arrays) of the estimates; UPDATED IN PLACE
                            when training, like BatchNorm's buffers.
    weight_bc, bias_bc:     (C,) affine of the estimate-based step (gamma_b, beta_b), or None.
    weight_gn, bias_gn:     (C,) per-channel affine of the group normalization, or None.
    momentum:               the update rate r of the estimates (PyTorch's convention:
                            new = (1 - r) * old + r * batch).
    eps:                    added to the variance inside the root, in both steps.

    In training, for every channel c, with the statistics taken over (N, H, W) and with no
    gradient flowing through any of them:

        1.  mu_c   = mean(x_c)                          the batch mean
        2.  s2_c   = mean((x_c - m_c)^2)                second moment about the OLD estimate m_c
        3.  m_c   <- m_c   + r * (mu_c - m_c)
        4.  v_c   <- v_c   + r * (s2_c - v_c)
        5.  y_c    = weight_bc * (x_c - m_c) / sqrt(v_c + eps) + bias_bc     (new estimates)
        6.  out    = group_norm(y, num_groups, weight_gn, bias_gn, eps)

    Step 2 follows the authors' released code (EstBN): the squared deviation is taken about the
    current estimate, not about the batch mean, so s2_c = Var_batch + (mu_c - m_c)^2; it exceeds
    the batch variance while the mean estimate lags.  The estimates are updated BEFORE they are
    used (steps 3-4 before 5).  In evaluation (`training=False`) steps 1-4 are skipped.

    Step 5 is an affine map with constant statistics (`EstimateNorm`); the sample dependence
    (and its full backward) is in step 6, minigrad's group_norm.  Unlike the authors' code,
    whose channel step has one affine per GROUP, ours has the usual per-CHANNEL GroupNorm affine.
    """
    x = as_tensor(x)
    check_dtypes("batch_channel_norm", x, running_mean=running_mean, running_var=running_var,
                 weight_bc=weight_bc, bias_bc=bias_bc, weight_gn=weight_gn, bias_gn=bias_gn)
    if x.ndim < 2:
        raise ValueError(f"batch_channel_norm needs (N, C, ...) input, got shape {x.shape}")
    C = x.shape[1]
    if running_mean is None or running_var is None:
        raise ValueError(f"batch_channel_norm: running_mean and running_var must both be given, "
                         f"shape ({C},), one estimate per channel of the input {x.shape}")
    fn = "batch_channel_norm"
    rm = check_buffer(running_mean, "running_mean", x, C, fn).reshape(C)   # views: updated in place
    rv = check_buffer(running_var, "running_var", x, C, fn).reshape(C)
    check_momentum(momentum, fn)
    if training:
        axes = (0,) + tuple(range(2, x.ndim))
        xd = x.data
        batch_mean = xd.mean(axis=axes)
        second = ((xd - rm.reshape((1, C) + (1,) * (x.ndim - 2))) ** 2).mean(axis=axes)
        rm += momentum * (batch_mean - rm).astype(rm.dtype)     # in place: the caller's buffer
        rv += momentum * (second - rv).astype(rv.dtype)
    fn = EstimateNorm(rm.copy(), rv.copy(), eps)
    if weight_bc is None and bias_bc is not None:
        raise ValueError("batch_channel_norm: give weight_bc together with bias_bc "
                         "(pass ones for weight_bc to use a shift alone)")
    args = [a for a in (x, weight_bc, bias_bc) if a is not None]
    y = fn(*args)
    return group_norm(y, num_groups, weight_gn, bias_gn, eps)
