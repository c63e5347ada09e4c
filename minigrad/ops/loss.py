"""The loss end of a network: log-softmax and cross-entropy (the linear layer and dropout
before them are in `minigrad.ops.dense`).

Each is one op with its backward written out.  Cross-entropy is fused (softmax
and the loss in one op) because its gradient is then just softmax - target,
with none of the exp/log round trips that make the composed version fragile.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor
from .basic import _normalize_axis

__all__ = ["log_softmax", "cross_entropy"]


class LogSoftmax(Function):
    """y = x - logsumexp(x) along `axis`, computed as z - log(sum(exp(z))) with
    z = x - max(x) so that exp never overflows.

    dy_j/dx_i = delta_ij - softmax_i, so gx = gy - softmax * sum(gy), softmax = exp(y).
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = self.xp
        (self.ax,) = _normalize_axis(self.axis, x.ndim)
        z = x - x.max(axis=self.ax, keepdims=True)
        z -= xp.log(xp.exp(z).sum(axis=self.ax, keepdims=True))
        self.y = z
        return z

    def backward(self, gy):
        return gy - self.xp.exp(self.y) * gy.sum(axis=self.ax, keepdims=True)


def log_softmax(x, axis=-1):
    """log(softmax(x)) along `axis` (PyTorch's `dim`), numerically stable for huge logits."""
    x = as_tensor(x)
    if x.ndim == 0:
        raise ValueError("log_softmax needs a tensor with at least one axis")
    return LogSoftmax(axis)(x)


class CrossEntropy(Function):
    """Mean (or sum, or per-sample) of -sum_c q_c log softmax(x)_c over samples.

    Logits are taken as rows (M, C); `target` holds M class indices t.  The
    target distribution q is the one-hot of t mixed with the uniform one
    (label smoothing eps): q = (1 - eps) onehot(t) + eps / C.  Per row, with
    p = softmax(x) and sum_c q_c = 1,

        loss = -sum_c q_c (x_c - logsumexp(x)) = logsumexp(x) - sum_c q_c x_c
        d loss / dx_c = p_c - q_c,

    so the fused backward is (p - q) times gy, divided by M for reduction="mean".
    """

    def __init__(self, target, reduction="mean", label_smoothing=0.0):
        self.target_shape = target.shape
        self.target, self.reduction, self.eps = target.reshape(-1), reduction, label_smoothing

    def forward(self, logits):
        xp = self.xp
        self.in_shape = logits.shape
        x = _as_rows(logits)                       # (M, C)
        M, C = x.shape
        rows = xp.arange(M)
        z = x - x.max(axis=1, keepdims=True)       # shift: exp(z) <= 1 never overflows
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)
        log_s = xp.log(s)[:, 0]
        loss = log_s - z[rows, self.target]        # -log p_t
        if self.eps:
            smooth = log_s - z.mean(axis=1)        # -mean_c log p_c
            loss = (1.0 - self.eps) * loss + self.eps * smooth
        e /= s
        self.p, self.rows, self.C = e, rows, C     # softmax, kept for backward
        if self.reduction == "none":
            return loss.reshape(self.target_shape)
        total = loss.sum() if self.reduction == "sum" else loss.mean()
        return xp.asarray(total, dtype=x.dtype)

    def backward(self, gy):
        g = self.p.copy()                          # p - q, written into a copy of p
        g[self.rows, self.target] -= 1.0 - self.eps
        if self.eps:
            g -= self.eps / self.C
        if self.reduction == "none":
            g *= gy.reshape(-1, 1)
        else:
            g *= gy / (g.shape[0] if self.reduction == "mean" else 1)
        return _from_rows(g, self.in_shape)


def _as_rows(x):
    """(C,) -> (1, C); (N, C) as is; (N, C, d1, ...) -> (N*d1*..., C) with the class axis last."""
    if x.ndim == 1:
        return x[None, :]
    if x.ndim > 2:
        x = x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))
    return x.reshape(-1, x.shape[-1])


def _from_rows(g, shape):
    """The inverse of `_as_rows`."""
    if len(shape) == 1:
        return g[0]
    if len(shape) > 2:
        g = g.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
        g = g.transpose((0, g.ndim - 1) + tuple(range(1, g.ndim - 1)))
    return g


_REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of integer class targets, as `torch.nn.functional.cross_entropy`.

    logits: (N, C), (N, C, d1, ...) or (C,); target: integer class indices of
    shape (N,), (N, d1, ...) or () (an array or a Tensor; moved to the logits'
    device).  reduction: "mean" (over all targets), "sum" or "none".
    label_smoothing in [0, 1]: the target becomes (1 - eps) one-hot + eps / C.
    """
    logits = as_tensor(logits)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: unknown reduction {reduction!r}; use one of "
                         f"{', '.join(map(repr, _REDUCTIONS))}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be a number in [0, 1], "
                         f"got {label_smoothing!r}")
    if logits.ndim == 0:
        raise ValueError("cross_entropy: logits must have a class axis: shape (N, C), "
                         "(N, C, d1, ...) or (C,)")
    t = target.data if isinstance(target, Tensor) else target
    if isinstance(t, numbers.Integral) or isinstance(t, (list, tuple)):
        t = np.asarray(t)
    if not hasattr(t, "dtype"):
        raise TypeError(f"cross_entropy: target must be an integer array or Tensor, got "
                        f"{type(t).__name__}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype "
                        f"{t.dtype}; convert it with .astype(np.int64) (probability targets "
                        f"are not supported)")
    C = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    expected = () if logits.ndim == 1 else (logits.shape[0],) + tuple(logits.shape[2:])
    if tuple(t.shape) != expected:
        raise ValueError(f"cross_entropy: target has shape {tuple(t.shape)}, but logits of shape "
                         f"{tuple(logits.shape)} need a target of shape {expected} (one class "
                         f"index per sample, without the class axis)")
    t = backend.to_device(t, logits.device)
    if t.size and (int(t.min()) < 0 or int(t.max()) >= C):
        bad = int(t.min()) if int(t.min()) < 0 else int(t.max())
        raise ValueError(f"cross_entropy: target contains class index {bad}, but the logits have "
                         f"{C} classes, so indices must lie in [0, {C - 1}]")
    return CrossEntropy(t, reduction, float(label_smoothing))(logits)
