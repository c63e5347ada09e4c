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

Changing a tensor in place between forward and backward
-------------------------------------------------------
A Function's backward uses what its forward saw: Linear's input gradient is
gy @ W with the W of the forward pass.  Many ops keep those arrays without a
copy (a copy per op would double the memory of a training step), so if W is
changed in place after the forward -- an optimizer step, an initialiser,
`load_state_dict` -- a later backward would silently mix the old graph with the
new values, and only for the ops that happened to keep a view.  PyTorch guards
against this with a version counter, and so does minigrad:

* every Tensor has `_version`, a count of the in-place changes made to it.
  Assigning to `t.data` counts (and `t.data -= lr * g` is such an assignment:
  Python runs it as `t.data = t.data.__isub__(lr * g)`), which covers the
  optimizers; code that writes into the array through an index
  (`t.data[...] = v`, as `nn.init` and `load_state_dict` do) calls
  `increment_version(t)`.  `.grad` is not data: `zero_grad` does not count.
  (In PyTorch, `.data` is the way around the check; here it is the only way
  to change a tensor, so it counts.)
* `Function.__call__` records the versions of the op's inputs when it records
  the op in the graph;
* `backward` compares them with the inputs' versions now, just before it calls
  the op's backward, and raises an error naming the op and the tensor when one
  changed.

So the rule is: forward, backward, then step() -- never step() while a graph you
will still backward is alive.  The check is generic (it knows nothing of any
op), so it holds alike for an op that saved a view and one that saved a copy.
It is conservative: it counts every input as saved, even for ops such as
addition whose backward does not read its inputs.  The counter belongs to the
Tensor object, not to the memory: a change made through another Tensor or array
that shares the memory (`t.detach()`, a NumPy view of `t.data`) is not seen.
DeZero has no such check; PyTorch shares the counter between views.
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
    """Turn user data into an ndarray; Python scalars and lists become float32.

    A NumPy scalar (np.float32(1.5), or what a NumPy reduction returns) becomes a
    0-d array: a scalar is immutable, so in-place initialisers, `load_state_dict`
    and `zero_grad(set_to_none=False)` could not write into it, and CuPy's
    reductions give 0-d arrays too.
    """
    xp = backend.get_array_module(data)
    if isinstance(data, np.generic):
        data = np.asarray(data)
    if isinstance(data, np.ndarray) or xp is not np:
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
        self._data = _as_array(data, dtype)
        self._version = 0          # in-place changes so far (see the module docstring)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None        # the Function that produced this tensor, if any
        self.name = name
        self._retain_grad = False

    # -- the data and its version ----------------------------------------------
    @property
    def data(self):
        """The array (NumPy or CuPy) this tensor holds."""
        return self._data

    @data.setter
    def data(self, value):
        """Replace the array, or update it in place (`t.data -= lr * g` ends in this
        assignment): either way the values a graph saw may have changed, so the
        version counter moves on."""
        self._data = _as_array(value)
        self._version += 1

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
        return _ops.cast(self, dtype)

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
        afterwards unless `retain_graph=True`.  Each gradient has the dtype of
        its tensor (a float32 parameter gets a float32 `.grad`, as in PyTorch).
        It raises if a tensor the graph saved was changed in place since the
        forward pass (see the module docstring).

        Not supported: gradients of gradients (double backward, PyTorch's
        `create_graph=True`, needed for gradient penalties and Hessian-vector
        products).  Every backward here is written with array arithmetic, runs
        under `no_grad()` and stores `.grad` as a plain array, so the backward
        pass records no graph of its own that a second backward could walk.
        Supporting it would mean writing every backward with differentiable
        Tensor ops instead, as DeZero does from its step 33 on.
        """
        backward(self, grad, retain_graph)

    # -- operators (the ops themselves live in minigrad.ops.basic, imported as
    #    `_ops` at the end of this module) ---------------------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __getitem__(self, key):
        return _ops.getitem(self, key)

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
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def abs(self):
        return _ops.abs(self)

    def sum(self, axis=None, keepdims=False):
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops.max(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return _ops.var(self, axis, keepdims, ddof)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape)

    def flatten(self, start_dim=0):
        return self.reshape(self.shape[:start_dim] + (-1,))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    @property
    def T(self):
        return _ops.transpose(self, None)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def increment_version(tensor):
    """Count one in-place change of `tensor` made by writing into its array
    (`tensor.data[...] = v`), which the `data` property cannot see.  PyTorch's
    name: torch.autograd.graph.increment_version."""
    tensor._version += 1


def as_tensor(x, like=None):
    """`x` as a Tensor; a number next to a Tensor `like` takes its device, and its dtype
    when `like` is floating point.

    A float32 tensor times 0.5 stays float32 (as in PyTorch and NumPy 2).  For an
    integer or bool tensor NumPy's promotion decides: `int64 tensor * 0.5` is
    float64 and `int32 tensor + 1` stays int32 (NumPy 2 treats a Python number as
    "weak": it adopts the array's kind when it fits), never a float truncated to
    the tensor's integer dtype.
    """
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, numbers.Number):
        xp = backend.get_array_module(like.data)
        dtype = like.dtype if like.dtype.kind == "f" else np.result_type(like.dtype, x)
        return Tensor(xp.asarray(x, dtype=dtype))
    return Tensor(x)


# ----------------------------------------------------------------------------
# Function
# ----------------------------------------------------------------------------
class Function:
    """One differentiable op.  Subclass it and write `forward` and `backward`.

    * `forward(*arrays)` gets the input arrays (plus keyword settings given to
      the constructor) and returns one array.  Save on `self` what backward needs.
    * `backward(gy)` gets dL/dy as an array and returns one gradient per input
      (a tuple, or a single array for one input); `None` for an input that needs
      none.  `self.needs_input_grad[i]` says whether input i wants a gradient.
    * `self.xp` is numpy or cupy, taken from the inputs.

    Use it as `MyOp(**settings)(x, y)`, which returns a Tensor.  An instance is
    one node of the graph: it holds the inputs and saved values of one call, so
    it can be called once.  A second call raises, instead of overwriting what the
    first call's backward needs; make a new instance for each call.

    The call also notes the version of each input (`input_versions`), so that
    `backward` can refuse to run this op's backward if an input was changed in
    place in between (see the module docstring): a subclass need do nothing.
    """

    def __call__(self, *inputs):
        if self.__dict__.get("_called"):
            raise RuntimeError(
                f"this {type(self).__name__} instance has already been called: a Function object "
                f"is one node of the graph and keeps what its backward needs, so a second call "
                f"would overwrite the first one's; make a new one for each call, "
                f"e.g. {type(self).__name__}(...)(x)")
        self._called = True
        inputs = [as_tensor(x) for x in inputs]
        arrays = [x.data for x in inputs]
        self.xp = _common_module(inputs)
        y = self.forward(*arrays)
        out = Tensor(y)
        if _grad_enabled:
            needs = tuple(x.requires_grad for x in inputs)
            if any(needs):
                self.inputs = inputs
                self.input_versions = tuple(x._version for x in inputs)   # checked by backward
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
        self._called = self.freed = True


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
# The graph and the backward pass
# ----------------------------------------------------------------------------
def graph(output):
    """The graph that produced `output`: (tensors, ops).

    `tensors` lists every tensor of the graph once, `output` first.  `ops` lists
    (op, its output tensor) pairs in forward order: every op after the ops that
    made its inputs, so the reversed list is the order backward visits them.
    Iterative depth-first search (no recursion), so a chain of 20,000 ops does
    not hit Python's recursion limit.  The one walk of the graph: backward, the
    drawing (`minigrad.viz`) and the per-op check (`minigrad.gradcheck_graph`)
    all use it.
    """
    tensors, ops, seen = [], [], set()
    stack = [(output, False)]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:            # all of t's inputs have been placed: now its op
            ops.append((t.creator, t))
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        tensors.append(t)
        f = t.creator
        if f is None:
            continue
        if getattr(f, "freed", False) or not hasattr(f, "inputs"):
            raise RuntimeError(
                f"the graph behind this tensor was freed by a backward() (its op "
                f"{type(f).__name__} no longer holds its inputs and saved values): pass "
                f"retain_graph=True to the first backward() to backward, draw or check the "
                f"graph again")
        stack.append((t, True))
        stack.extend((x, False) for x in reversed(f.inputs))
    return tensors, ops


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

    # Gradients of non-leaf tensors, keyed by id of the tensor.
    _, ops = graph(tensor)
    grads = {id(tensor): grad}
    _deliver(tensor, grad)
    with no_grad():
        for f, out in reversed(ops):   # outputs first: each op after all ops that use its output
            gy = grads.pop(id(out), None)
            if gy is not None:
                _check_unchanged(f)
                gxs = f.backward(gy)
                if not isinstance(gxs, tuple):
                    gxs = (gxs,)
                for x, gx, need in zip(f.inputs, gxs, f.needs_input_grad):
                    if need and gx is not None:
                        # The gradient of x has x's dtype (a float64 operand must not turn a
                        # float32 parameter's gradient, and then SGD's momentum, into float64),
                        # and is an array even where NumPy arithmetic gave a 0-d scalar.
                        if gx.dtype != x.dtype or isinstance(gx, np.generic):
                            gx = xp.asarray(gx, dtype=x.dtype)
                        if gx.shape != x.shape:
                            raise RuntimeError(
                                f"{type(f).__name__}.backward returned a gradient of shape "
                                f"{gx.shape} for an input of shape {x.shape}")
                        if x.creator is not None:
                            key = id(x)
                            grads[key] = grads[key] + gx if key in grads else gx
                        _deliver(x, gx)
            if not retain_graph:
                f.release()


def _check_unchanged(f):
    """Raise if an input of op `f` was changed in place after f's forward pass."""
    for i, x in enumerate(f.inputs):
        seen = f.input_versions[i]
        if x._version != seen:
            name = f" '{x.name}'" if x.name else ""
            raise RuntimeError(
                f"{type(f).__name__}.backward needs its input {i}{name}, a {type(x).__name__} of "
                f"shape {tuple(x.shape)}, as it was in the forward pass, but it was changed in "
                f"place since (version {seen} then, {x._version} now; an optimizer step, an "
                f"initialiser or load_state_dict does that): do not step() the optimizer or "
                f"change a tensor in place between forward and backward; call backward() "
                f"first, or run the forward pass again after the change")


def _deliver(x, g):
    """Accumulate into `.grad` for leaves and for tensors that asked to keep theirs."""
    if x.creator is None or x._retain_grad:
        if x.grad is None:
            x.grad = g.copy()
        else:
            x.grad = x.grad + g


# The operators of Tensor call the ops of minigrad.ops.basic, and those ops are
# Functions returning Tensors: the one place where the two modules meet.  The
# import sits here, after Tensor and Function exist, so that ops.basic can take
# them from this module while it loads.
from .ops import basic as _ops  # noqa: E402
