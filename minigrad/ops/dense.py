"""The fully connected layer and dropout: the ops of a classifier head before its loss.

Each is one op with its backward written out; the loss itself is in `minigrad.ops.loss`.
"""
import numbers

from ..autograd import Function, as_tensor

__all__ = ["dropout", "linear"]


class Linear(Function):
    """y = x @ W^T + b, x of shape (*, in), W (out, in), b (out,).

    With X the inputs flattened to rows (M, in) and G = dL/dy as rows (M, out):
    dX = G @ W,  dW = G^T @ X,  db = column sums of G.
    """

    def __init__(self, has_bias=False):
        self.has_bias = has_bias

    def forward(self, x, weight, *bias):
        if weight.ndim != 2:
            raise ValueError(f"linear: weight must have shape (out_features, in_features), "
                             f"got shape {weight.shape}")
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} does not fit weight of shape "
                             f"{weight.shape}: the input's last axis must have "
                             f"in_features = {weight.shape[1]} elements")
        if bias and bias[0].shape != (weight.shape[0],):
            raise ValueError(f"linear: bias has shape {bias[0].shape}, expected "
                             f"({weight.shape[0]},) (one per output feature)")
        self.x_shape = x.shape
        self.x2 = x.reshape(-1, x.shape[-1])   # a view when x is contiguous
        self.weight = weight
        y = self.x2 @ weight.T                 # BLAS reads W^T as a transposed view: no copy
        if bias:
            y += bias[0]
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, gy):
        g = gy.reshape(-1, self.weight.shape[0])
        gx = (g @ self.weight).reshape(self.x_shape) if self.needs_input_grad[0] else None
        gw = g.T @ self.x2 if self.needs_input_grad[1] else None
        if not self.has_bias:
            return gx, gw
        gb = g.sum(axis=0) if self.needs_input_grad[2] else None
        return gx, gw, gb


def linear(x, weight, bias=None):
    """y = x @ weight^T + bias, as `torch.nn.functional.linear` (weight: (out, in))."""
    if bias is None:
        return Linear(False)(x, weight)
    return Linear(True)(x, weight, bias)


class Dropout(Function):
    """Inverted dropout: y = x * mask, mask = keep / (1 - p) with keep ~ Bernoulli(1 - p).

    Dividing by 1 - p during training keeps E[y] = x, so evaluation needs no
    rescaling.  gx = gy * mask.
    """

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        keep = self.xp.random.random_sample(x.shape) >= self.p    # uniform in [0, 1): none for p = 1
        self.mask = keep.astype(x.dtype)
        self.mask *= 1.0 / (1.0 - self.p) if self.p < 1 else 0.0
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training);
    the identity in evaluation.  As `torch.nn.functional.dropout` (p = 1 gives zeros).
    The random mask comes from `numpy.random` (or `cupy.random` for GPU tensors):
    seed it with `numpy.random.seed` for a reproducible mask."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")
    x = as_tensor(x)
    if not training or p == 0:
        return x
    return Dropout(float(p))(x)
