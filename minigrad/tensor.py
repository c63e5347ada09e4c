"""Tensor and Function: the two halves of reverse-mode automatic differentiation.

A `Tensor` holds an array (`.data`, NumPy or CuPy) and, once a backward pass has
reached it, the gradient of the loss with respect to it (`.grad`, same kind and
shape).  A `Function` is one differentiable operation: `forward` maps raw arrays
to a raw array, `backward` maps the upstream gradient dL/dy to the gradients
dL/dx_i of its inputs.  Calling a Function on tensors records, on the output, a
link to the Function (`creator`), and the Function keeps its inputs: that chain
of links is the computation graph, walked backwards by `Tensor.backward`.

Only gradients of the leaves (tensors made by the user, such as parameters) are
kept after a backward pass, as in PyTorch; call `retain_grad()` on an
intermediate tensor to keep its gradient too.
"""
import contextlib
import numbers

import numpy as np

from . import backend

# ----------------------------------------------------------------------------
# Grad mode
# ----------------------------------------------------------------------------
_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Context manager: ops inside it record no graph (evaluation, optimizer steps)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Context manager: turn graph recording back on inside a `no_grad` block."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


# ----------------------------------------------------------------------------
# Tensor
# ----------------------------------------------------------------------------
def _as_array(data, dtype=None):
    """Turn user data into an ndarray; Python scalars and lists become float32."""
    xp = backend.get_array_module(data)
    if isinstance(data, (np.ndarray, np.generic)) or xp is not np:
        return data if dtype is None else data.astype(dtype, copy=False)
    return np.asarray(data, dtype=np.float32 if dtype is None else dtype)


class Tensor:
    """An array with an optional gradient and the op that created it.

    >>> x = Tensor([[1., 2.], [3., 4.]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, name=None, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        self.data = _as_array(data, dtype)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None        # the Function that produced this tensor, if any
        self.name = name
        self._retain_grad = False

    # -- array facts ---------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self.creator is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = repr(backend.as_numpy(self.data)).replace("array(", "tensor(", 1)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"grad_fn={type(self.creator).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        if extras:
            body = body[:-1] + ", " + ", ".join(extras) + ")"
        return body

    # -- conversions ---------------------------------------------------------
    def numpy(self):
        """A host NumPy copy of the data (never a view into the graph)."""
        return np.array(backend.as_numpy(self.data), copy=True)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.reshape(-1)[0].item()

    def detach(self):
        """The same data, cut from the graph (shares memory, requires no grad)."""
        return Tensor(self.data)

    def to(self, device):
        """A copy on `device` ("cpu" or "cuda"); the same tensor when already there.

        Moving a leaf keeps `requires_grad` and makes a new leaf (as PyTorch's
        `.to` on a parameter would after `.detach()`): moving is not recorded.
        """
        if backend._check_name(device) == self.device:
            return self
        out = Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad,
                     name=self.name)
        if self.grad is not None:
            out.grad = backend.to_device(self.grad, device)
        return out

    def astype(self, dtype):
        from .ops import basic
        return basic.cast(self, dtype)

    def zero_grad(self):
        self.grad = None

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient after backward."""
        self._retain_grad = True
        return self

    # -- backward ------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf), weighted by `grad`, into every leaf's `.grad`.

        `grad` defaults to 1 for a one-element tensor.  The graph is freed
        afterwards unless `retain_graph=True`.
        """
        backward(self, grad, retain_graph)

    # -- operators (the ops themselves live in minigrad.ops.basic) ------------
    def __add__(self, other):
        return _basic().add(self, other)

    def __radd__(self, other):
        return _basic().add(other, self)

    def __sub__(self, other):
        return _basic().sub(self, other)

    def __rsub__(self, other):
        return _basic().sub(other, self)

    def __mul__(self, other):
        return _basic().mul(self, other)

    def __rmul__(self, other):
        return _basic().mul(other, self)

    def __truediv__(self, other):
        return _basic().div(self, other)

    def __rtruediv__(self, other):
        return _basic().div(other, self)

    def __pow__(self, other):
        return _basic().pow(self, other)

    def __rpow__(self, other):
        return _basic().pow(other, self)

    def __matmul__(self, other):
        return _basic().matmul(self, other)

    def __rmatmul__(self, other):
        return _basic().matmul(other, self)

    def __neg__(self):
        return _basic().neg(self)

    def __getitem__(self, key):
        return _basic().getitem(self, key)

    # Comparisons give plain arrays (they have no gradient).
    def __gt__(self, other):
        return self.data > _raw(other)

    def __lt__(self, other):
        return self.data < _raw(other)

    def __ge__(self, other):
        return self.data >= _raw(other)

    def __le__(self, other):
        return self.data <= _raw(other)

    __hash__ = object.__hash__

    # -- methods that mirror minigrad.functional ------------------------------
    def exp(self):
        return _basic().exp(self)

    def log(self):
        return _basic().log(self)

    def sqrt(self):
        return _basic().sqrt(self)

    def tanh(self):
        return _basic().tanh(self)

    def sigmoid(self):
        return _basic().sigmoid(self)

    def relu(self):
        return _basic().relu(self)

    def abs(self):
        return _basic().abs(self)

    def sum(self, axis=None, keepdims=False):
        return _basic().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _basic().mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _basic().max(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return _basic().var(self, axis, keepdims, ddof)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _basic().reshape(self, shape)

    def flatten(self, start_dim=0):
        return self.reshape(self.shape[:start_dim] + (-1,))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _basic().transpose(self, axes or None)

    @property
    def T(self):
        return _basic().transpose(self, None)


def _basic():
    from .ops import basic  # late import: ops.basic imports this module
    return basic


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def as_tensor(x, like=None):
    """`x` as a Tensor; Python scalars take the dtype and device of `like`."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, numbers.Number):
        xp = backend.get_array_module(like.data)
        return Tensor(xp.asarray(x, dtype=like.dtype))
    return Tensor(x)


# ----------------------------------------------------------------------------
# Function
# ----------------------------------------------------------------------------
# Set by minigrad.gradcheck_graph.record() and None otherwise: called with each op
# just before its forward, to note the user's call site and a fresh copy of the op.
# Normal runs pay one global lookup for it.
_call_hook = None


class Function:
    """One differentiable op.  Subclass it and write `forward` and `backward`.

    * `forward(*arrays)` gets the input arrays (plus keyword settings given to
      the constructor) and returns one array.  Save on `self` what backward needs.
    * `backward(gy)` gets dL/dy as an array and returns one gradient per input
      (a tuple, or a single array for one input); `None` for an input that needs
      none.  `self.needs_input_grad[i]` says whether input i wants a gradient.
    * `self.xp` is numpy or cupy, taken from the inputs.

    Use it as `MyOp(**settings)(x, y)`, which returns a Tensor.
    """

    def __call__(self, *inputs):
        if _call_hook is not None:  # only while minigrad.gradcheck_graph records a graph
            _call_hook(self)
        inputs = [as_tensor(x) for x in inputs]
        arrays = [x.data for x in inputs]
        self.xp = _common_module(inputs)
        y = self.forward(*arrays)
        out = Tensor(y)
        if _grad_enabled:
            needs = tuple(x.requires_grad for x in inputs)
            if any(needs):
                self.inputs = inputs
                self.needs_input_grad = needs
                out.requires_grad = True
                out.creator = self
        return out

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def release(self):
        """Drop everything saved for backward (called once backward has used it)."""
        self.__dict__.clear()
        self.freed = True


def _common_module(inputs):
    """numpy or cupy for `inputs`; an error naming both devices when they differ."""
    first = inputs[0].device
    for x in inputs[1:]:
        if x.device != first:
            raise RuntimeError(
                f"expected all tensors on one device, but found tensors on '{first}' and "
                f"'{x.device}': move them together with .to('{first}') or .to('{x.device}')")
    return backend.get_array_module(inputs[0].data)


# ----------------------------------------------------------------------------
# The backward pass
# ----------------------------------------------------------------------------
def _topological_order(root):
    """Functions reachable from `root`, each after every function that uses its output.

    Iterative depth-first search (no recursion), so a chain of 20,000 ops does
    not hit Python's recursion limit.
    """
    order, visited = [], set()
    if root.creator is None:
        return order
    stack = [(root.creator, False)]
    while stack:
        f, expanded = stack.pop()
        if expanded:
            order.append(f)
            continue
        if id(f) in visited:
            continue
        visited.add(id(f))
        if getattr(f, "freed", False):
            raise RuntimeError(
                "trying to backward through the graph a second time, but its saved values were "
                "freed by the first backward: pass retain_graph=True to the first backward()")
        stack.append((f, True))
        for x in f.inputs:
            if x.creator is not None and id(x.creator) not in visited:
                stack.append((x.creator, False))
    order.reverse()  # outputs first
    return order


def backward(tensor, grad=None, retain_graph=False):
    if not tensor.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                           "graph has requires_grad=True (or it was computed under no_grad())")
    xp = backend.get_array_module(tensor.data)
    if grad is None:
        if tensor.data.size != 1:
            raise RuntimeError(f"backward() without a gradient needs a one-element output, got "
                               f"shape {tensor.shape}: pass grad= of that shape")
        grad = xp.ones_like(tensor.data)
    else:
        grad = _raw(grad)
        if backend.device_of(grad) != tensor.device:
            raise RuntimeError(f"grad is on '{backend.device_of(grad)}' but the tensor is on "
                               f"'{tensor.device}'")
        grad = xp.asarray(grad, dtype=tensor.dtype)
        if grad.shape != tensor.shape:
            raise ValueError(f"grad has shape {grad.shape}, but the tensor has shape {tensor.shape}")

    # Gradients of non-leaf tensors, keyed by id of their creator (each Function
    # has exactly one output, so the creator names the tensor).
    grads = {id(tensor.creator): grad} if tensor.creator is not None else {}
    _deliver(tensor, grad)
    with no_grad():
        for f in _topological_order(tensor):
            # The output of f is the one tensor whose creator is f; its grad sits in `grads`.
            gy = grads.pop(id(f), None)
            if gy is not None:
                gxs = f.backward(gy)
                if not isinstance(gxs, tuple):
                    gxs = (gxs,)
                for x, gx, need in zip(f.inputs, gxs, f.needs_input_grad):
                    if need and gx is not None:
                        if gx.shape != x.shape:
                            raise RuntimeError(
                                f"{type(f).__name__}.backward returned a gradient of shape "
                                f"{gx.shape} for an input of shape {x.shape}")
                        key = id(x.creator) if x.creator is not None else None
                        if key is not None:
                            grads[key] = grads[key] + gx if key in grads else gx
                        _deliver(x, gx)
            if not retain_graph:
                f.release()


def _deliver(x, g):
    """Accumulate into `.grad` for leaves and for tensors that asked to keep theirs."""
    if x.creator is None or x._retain_grad:
        if x.grad is None:
            x.grad = g.copy()
        else:
            x.grad = x.grad + g
