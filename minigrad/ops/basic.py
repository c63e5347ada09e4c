"""Elementwise arithmetic, reductions and shape ops, each with its backward.

Notation in the docstrings: y is the op's output, gy = dL/dy the upstream
gradient, gx = dL/dx what backward returns.  Every op takes its array module
(`self.xp`, numpy or cupy) from its inputs.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor


def sum_to(g, shape):
    """Sum `g` down to `shape`: the adjoint of NumPy broadcasting.

    Broadcasting copies x along new leading axes and along axes of length 1;
    the gradient of a copy is the sum of the copies' gradients.
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    g = g.sum(axis=axes, keepdims=True)
    if lead:
        g = g.reshape(g.shape[lead:])
    return g


def _operands(a, b):
    """Two operands as Tensors; a number takes the other's device, and its dtype when that is
    floating point (an integer tensor times 0.5 is float64, as in NumPy: see `as_tensor`)."""
    if isinstance(a, numbers.Number) and isinstance(b, Tensor):
        return as_tensor(a, like=b), b
    if isinstance(b, numbers.Number) and isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    return as_tensor(a), as_tensor(b)


# ----------------------------------------------------------------------------
# Binary arithmetic (with broadcasting)
# ----------------------------------------------------------------------------
class Add(Function):
    """y = a + b;  ga = gy, gb = gy (each summed back to its own shape)."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(Function):
    """y = a - b;  ga = gy, gb = -gy."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(Function):
    """y = a * b;  ga = gy * b, gb = gy * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = sum_to(gy * self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  ga = gy / b, gb = -gy * a / b^2 = -gy * y / b."""

    def forward(self, a, b):
        self.a_shape, self.b = a.shape, b
        self.y = a / b
        return self.y

    def backward(self, gy):
        ga = sum_to(gy / self.b, self.a_shape) if self.needs_input_grad[0] else None
        gb = sum_to(-gy * self.y / self.b, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """y = a ** b;  ga = gy * b * a^(b-1), gb = gy * y * log(a) (a > 0 where gb is needed)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy * self.b * self.a ** (self.b - 1), self.a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(gy * self.y * self.xp.log(self.a), self.b.shape)
        return ga, gb


class MatMul(Function):
    """y = a @ b (2-D, or batched over leading axes);  ga = gy @ b^T, gb = a^T @ gy."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs tensors with at least one dimension; use * for scalars")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape} (the last axis of the "
                             f"left operand must equal the {'second-to-last' if b.ndim > 1 else 'only'} "
                             f"axis of the right one)")
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        a, b, xp = self.a, self.b, self.xp
        # Treat 1-D operands as a row (left) or a column (right) vector.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        gy2 = gy.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy2 @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(xp.swapaxes(a2, -1, -2) @ gy2, b2.shape).reshape(b.shape)
        return ga, gb


# ----------------------------------------------------------------------------
# Unary elementwise
# ----------------------------------------------------------------------------
class Neg(Function):
    """y = -x;  gx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    """y = exp(x);  gx = gy * y."""

    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = log(x);  gx = gy / x."""

    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    """y = sqrt(x);  gx = gy / (2 y)."""

    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Tanh(Function):
    """y = tanh(x);  gx = gy * (1 - y^2)."""

    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x));  gx = gy * y * (1 - y).

    Computed as 0.5 * tanh(x / 2) + 0.5, which never overflows.
    """

    def forward(self, x):
        self.y = self.xp.tanh(x * 0.5) * 0.5 + 0.5
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class ReLU(Function):
    """y = max(x, 0);  gx = gy where x > 0, else 0 (the subgradient 0 at x = 0)."""

    def forward(self, x):
        self.mask = x > 0
        return self.xp.maximum(x, 0)

    def backward(self, gy):
        return gy * self.mask


class Abs(Function):
    """y = |x|;  gx = gy * sign(x)."""

    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, gy):
        return gy * self.xp.sign(self.x)


class Cast(Function):
    """y = x converted to another float dtype;  gx = gy converted back."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


# ----------------------------------------------------------------------------
# Reductions
# ----------------------------------------------------------------------------
def _normalize_axis(axis, ndim):
    """axis as a sorted tuple of non-negative ints (None means every axis)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, numbers.Integral):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


def _expand_reduced(g, in_shape, axes, keepdims):
    """Reshape a reduced gradient so that it broadcasts against the input again."""
    if not keepdims:
        shape = list(in_shape)
        for a in axes:
            shape[a] = 1
        g = g.reshape(shape)
    return g


class Sum(Function):
    """y = sum of x over `axis`;  gx = gy broadcast back over the summed axes."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim)
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        g = _expand_reduced(gy, self.in_shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(g, self.in_shape).copy()


class Mean(Function):
    """y = mean of x over `axis` (m elements each);  gx = gy / m, broadcast back."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim)
        self.in_shape = x.shape
        self.m = int(np.prod([x.shape[a] for a in self.axes]))
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        g = _expand_reduced(gy, self.in_shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(g / self.m, self.in_shape).copy()


class Max(Function):
    """y = max of x over `axis`;  gx = gy at the maximal entries, 0 elsewhere.

    Ties share the gradient equally (the subgradient that is symmetric in the
    tied entries, as `torch.amax` does).
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim)
        self.x = x
        self.y = x.max(axis=self.axes, keepdims=True)
        return self.y if self.keepdims else self.y.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        mask = self.x == self.y
        count = mask.sum(axis=self.axes, keepdims=True)
        g = _expand_reduced(gy, self.x.shape, self.axes, self.keepdims)
        return mask * (g / count)


class Var(Function):
    """y = sum((x - mean)^2) / (m - ddof) over `axis`;  gx = gy * 2 (x - mean) / (m - ddof).

    (The mean's own dependence on x drops out because sum(x - mean) = 0.)
    """

    def __init__(self, axis=None, keepdims=False, ddof=0):
        self.axis, self.keepdims, self.ddof = axis, keepdims, ddof

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim)
        m = int(np.prod([x.shape[a] for a in self.axes]))
        if m - self.ddof <= 0:
            raise ValueError(f"var over {m} element(s) with ddof={self.ddof} is undefined")
        self.denom = m - self.ddof
        self.xc = x - x.mean(axis=self.axes, keepdims=True)
        return (self.xc * self.xc).sum(axis=self.axes, keepdims=self.keepdims) / self.denom

    def backward(self, gy):
        g = _expand_reduced(gy, self.xc.shape, self.axes, self.keepdims)
        return g * (2.0 / self.denom) * self.xc


# ----------------------------------------------------------------------------
# Shape ops
# ----------------------------------------------------------------------------
class Reshape(Function):
    """y = x viewed with a new shape;  gx = gy reshaped back."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                             f"into shape {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    """y = x with axes permuted by `axes` (reversed if None);  gx = gy permuted back."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        axes = tuple(range(x.ndim))[::-1] if self.axes is None else tuple(a % x.ndim for a in self.axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"axes {self.axes} are not a permutation of the {x.ndim} axes")
        self.inverse = tuple(np.argsort(axes))
        return x.transpose(axes)

    def backward(self, gy):
        return gy.transpose(self.inverse)


def _device_key(key, xp):
    """Index arrays (and Tensors) inside `key` moved to the module `xp`."""
    def conv(k):
        if isinstance(k, Tensor):
            k = k.data
        if isinstance(k, (list, np.ndarray)) or backend.get_array_module(k) is not np:
            return xp.asarray(k)
        return k
    return tuple(conv(k) for k in key) if isinstance(key, tuple) else conv(key)


class GetItem(Function):
    """y = x[key] (slices, integers, integer or boolean arrays);  gx = gy scattered back.

    Entries picked several times (repeated integer indices) add up their gradients.
    """

    def __init__(self, key):
        self.key = key

    def forward(self, x):
        self.key = _device_key(self.key, self.xp)
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.key]

    def backward(self, gy):
        gx = self.xp.zeros(self.in_shape, dtype=gy.dtype)
        if _is_basic_index(self.key):
            gx[self.key] = gy         # a view: no entry is hit twice
        else:
            backend.scatter_add(gx, self.key, gy)
        return gx


def _is_basic_index(key):
    keys = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (slice, numbers.Integral)) for k in keys)


class Concatenate(Function):
    """y = the inputs joined along `axis`;  each gx is its slice of gy."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return self.xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        cuts = np.cumsum(self.sizes)[:-1].tolist()   # host offsets as a list: CuPy takes no NumPy array
        return tuple(self.xp.split(gy, cuts, axis=self.axis))


class Stack(Function):
    """y = the inputs stacked along a new `axis`;  each gx is gy taken at its index."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        return self.xp.stack(xs, axis=self.axis)

    def backward(self, gy):
        n = gy.shape[self.axis]
        return tuple(self.xp.take(gy, i, axis=self.axis) for i in range(n))


class Pad(Function):
    """y = x padded with a constant (NumPy's `pad_width` format);  gx = the unpadded middle of gy."""

    def __init__(self, pad_width, value=0.0):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        width = np.broadcast_to(np.asarray(self.pad_width, dtype=int), (x.ndim, 2))
        self.window = tuple(slice(lo, lo + n) for (lo, _), n in zip(width, x.shape))
        return self.xp.pad(x, [tuple(w) for w in width], mode="constant", constant_values=self.value)

    def backward(self, gy):
        return gy[self.window]


# ----------------------------------------------------------------------------
# Functional wrappers (exported through minigrad.functional)
# ----------------------------------------------------------------------------
def add(a, b):
    return Add()(*_operands(a, b))


def sub(a, b):
    return Sub()(*_operands(a, b))


def mul(a, b):
    return Mul()(*_operands(a, b))


def div(a, b):
    return Div()(*_operands(a, b))


def pow(a, b):
    return Pow()(*_operands(a, b))


def matmul(a, b):
    return MatMul()(as_tensor(a), as_tensor(b))


def neg(x):
    return Neg()(x)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    return Sigmoid()(x)


def relu(x):
    return ReLU()(x)


def abs(x):
    return Abs()(x)


def cast(x, dtype):
    return Cast(dtype)(x)


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims)(x)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance over `axis`; ddof=0 is the population (biased) variance, as in NumPy."""
    return Var(axis, keepdims, ddof)(x)


def reshape(x, shape):
    return Reshape(shape)(x)


def transpose(x, axes=None):
    return Transpose(axes)(x)


def getitem(x, key):
    return GetItem(key)(x)


def concatenate(tensors, axis=0):
    return Concatenate(axis)(*tensors)


def stack(tensors, axis=0):
    return Stack(axis)(*tensors)


def pad(x, pad_width, value=0.0):
    """Constant padding; `pad_width` as in `numpy.pad` (int, (before, after), or one pair per axis)."""
    return Pad(pad_width, value)(x)
