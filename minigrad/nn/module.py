"""Module and Parameter: how a network keeps track of its weights.

A `Module` is a Python object whose attributes may be

* `Parameter`s  -- tensors the optimizer trains (weights, biases, affine scales);
* buffers       -- tensors that belong to the model but are never trained, such as
                   BatchNorm's running mean and variance (`register_buffer`);
* other Modules -- its children, so a network is a tree of modules.

Assigning an attribute files it in the right one of three ordered dicts
(`_parameters`, `_buffers`, `_modules`); everything else -- `parameters()`,
`state_dict()`, `.to(device)`, `train()` -- walks that tree.  Names are dotted paths
through the tree, as in PyTorch: "layer1.0.conv1.weight".
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..autograd import Tensor, increment_version


class Parameter(Tensor):
    """A Tensor that is a trainable weight of a Module (requires_grad=True by default).

    Assigning one to a Module attribute registers it: it then appears in
    `module.parameters()` and in the `state_dict()`.
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


# What load_state_dict returns when strict=False (PyTorch's name and fields).
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _HookHandle:
    """What `register_forward_hook` returns: `remove()` unregisters the hook."""

    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


def _is_device(arg):
    return isinstance(arg, str) and arg.lower().startswith(("cpu", "cuda"))


class Module:
    """Base class of every layer and network.  Subclasses set attributes in
    `__init__` (after calling `super().__init__()`) and define `forward`.

    >>> class TwoLayer(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1 = nn.Linear(4, 8)
    ...         self.fc2 = nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.fc2(self.fc1(x).relu())
    >>> [name for name, _ in TwoLayer().named_parameters()]
    ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    """

    def __init__(self):
        # object.__setattr__ because our own __setattr__ expects these dicts to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(): define forward(self, x) "
                                  f"in the subclass")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        for hook in self.__dict__.get("_forward_hooks", {}).values():
            result = hook(self, args, out)
            if result is not None:       # a hook may replace the output, as in PyTorch
                out = result
        return out

    def register_forward_hook(self, hook):
        """Call `hook(module, inputs, output)` after every forward (PyTorch's name and order).

        Returns a handle whose `remove()` takes the hook off again.  Used to look at
        activations while a network trains without changing the model."""
        hooks = self.__dict__["_forward_hooks"]
        key = object()
        hooks[key] = hook
        return _HookHandle(hooks, key)

    # -- registration -----------------------------------------------------------
    def _check_init(self, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call: call "
                                 f"super().__init__() first in {type(self).__name__}.__init__")

    def register_parameter(self, name, param):
        """Add a Parameter (or None, a declared but absent one, e.g. bias=False)."""
        self._check_init("parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter '{name}': wrap it "
                            f"as nn.Parameter(...) or use register_buffer for untrained state")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a tensor that is saved and moved with the module but never trained.

        `tensor` may be a Tensor, an array, or None.  Non-persistent buffers are
        left out of `state_dict()`.
        """
        self._check_init("buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        if isinstance(tensor, Parameter):
            raise TypeError(f"buffer '{name}' is a Parameter; buffers are never trained: pass "
                            f"a plain Tensor or array")
        self._forget(name)
        self._buffers[name] = tensor
        (self._non_persistent.add if not persistent else self._non_persistent.discard)(name)

    def add_module(self, name, module):
        self._check_init("child modules")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if "." in name or name == "":
            raise KeyError(f"module name {name!r} must be non-empty and contain no '.'")
        self._forget(name)
        self._modules[name] = module

    def _forget(self, name):
        """Remove `name` from every place it could have been filed before."""
        for store in (self.__dict__, self._parameters, self._buffers, self._modules):
            store.pop(name, None)

    def __setattr__(self, name, value):
        d = self.__dict__
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif "_parameters" in d and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' "
                                f"(nn.Parameter or None expected)")
            self._parameters[name] = None
        elif "_buffers" in d and name in self._buffers:
            self._buffers[name] = value if value is None or isinstance(value, Tensor) else Tensor(value)
        elif "_modules" in d and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module '{name}' "
                                f"(Module or None expected)")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the three registries.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    # -- walking the tree -------------------------------------------------------
    def named_modules(self, prefix="", memo=None):
        """(dotted name, module) for this module and every descendant, pre-order."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(prefix + ("." if prefix else "") + name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, store, recurse):
        seen = set()  # a tensor shared by two layers is listed once
        walk = self.named_modules() if recurse else [("", self)]
        for prefix, module in walk:
            for name, t in getattr(module, store).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield prefix + ("." if prefix else "") + name, t

    def named_parameters(self, recurse=True):
        """(dotted name, Parameter) pairs, in registration order, each parameter once."""
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse=True):
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse):
            yield b

    def apply(self, fn):
        """Call fn(module) on every descendant, then on self (PyTorch's order)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ----------------------------------------------------
    def train(self, mode=True):
        """Training mode (BatchNorm uses batch statistics, Dropout drops) for the whole tree."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode) expects a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        """Evaluation mode: the same as train(False)."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        """Drop every parameter's gradient (or fill it with zeros)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    # -- devices and dtypes -----------------------------------------------------
    def to(self, *args, device=None, dtype=None):
        """Move (`.to('cuda')`) and/or cast (`.to(np.float64)`) parameters and buffers IN PLACE.

        The Parameter objects stay the same -- only their `.data` and `.grad`
        arrays are replaced -- so an optimizer built before the call keeps working.
        Casting touches only floating-point tensors (not e.g. integer counters).
        """
        for a in args:
            if _is_device(a):
                device = a
                continue
            try:
                dtype = np.dtype(a)
            except TypeError:
                raise ValueError(f"unknown device or dtype {a!r}: use 'cpu', 'cuda' or a float "
                                 f"dtype such as np.float64") from None
        if device is not None:
            backend._check_name(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"Module.to only casts to floating dtypes, got {dtype}")

        def convert(a):
            if device is not None:
                a = backend.to_device(a, device)
            if dtype is not None and a.dtype.kind == "f" and a.dtype != dtype:
                a = a.astype(dtype)
            return a

        for t in list(self.parameters()) + list(self.buffers()):
            t.data = convert(t.data)
            if t.grad is not None:
                t.grad = convert(t.grad)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def double(self):
        """Cast floating parameters and buffers to float64 (for gradient checks)."""
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # -- saving and loading -----------------------------------------------------
    def _state_items(self, prefix=""):
        # PyTorch's order: a module's own parameters, its own buffers, then each child's.
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                yield prefix + name, b
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_items(prefix + name + ".")

    def state_dict(self):
        """OrderedDict: dotted name -> host NumPy copy, for every parameter and persistent buffer."""
        return OrderedDict((k, np.array(backend.as_numpy(t.data), copy=True))
                           for k, t in self._state_items())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from `state_dict` into the parameters and buffers, in place.

        Values may be NumPy/CuPy arrays, Tensors or numbers; they are cast to each
        tensor's dtype and device.  A key of the wrong shape is always an error;
        missing and unexpected keys are errors only when strict=True.  Nothing is
        copied unless the whole dict fits.  Returns (missing_keys, unexpected_keys).
        """
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched, arrays = [], {}
        for k, t in own.items():
            if k in state_dict:
                v = state_dict[k]
                a = backend.as_numpy(v.data if isinstance(v, Tensor) else v)
                a = np.asarray(a)
                if a.shape != t.shape:
                    mismatched.append(f"{k}: checkpoint has shape {a.shape}, the model {t.shape}")
                arrays[k] = a
        problems = []
        if mismatched:
            problems.append("size mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys (in the model, not in the state_dict): "
                            + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys (in the state_dict, not in the model): "
                            + ", ".join(unexpected))
        if problems:
            hint = ("" if mismatched or not (missing or unexpected)
                    else "\n  (pass strict=False to load the keys that do match)")
            raise RuntimeError(f"error(s) in loading state_dict for {type(self).__name__}:\n  "
                               + "\n  ".join(problems) + hint)
        for k, a in arrays.items():
            t = own[k]
            xp = backend.get_array_module(t.data)
            t.data[...] = xp.asarray(a.astype(t.dtype, copy=False))
            increment_version(t)       # an in-place change (see minigrad/autograd.py)
        return IncompatibleKeys(missing, unexpected)

    # -- printing ---------------------------------------------------------------
    def extra_repr(self):
        """The settings shown inside the parentheses of repr(module); override in layers."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")  # indent the child's own lines
            child_lines.append(f"({name}): {text}")
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"


# ----------------------------------------------------------------------------
# Containers
# ----------------------------------------------------------------------------
class Sequential(Module):
    """Modules applied one after another: Sequential(conv, bn, ReLU()).

    Also accepts one OrderedDict of name -> module.  Indexable (an int gives a
    module, a slice a new Sequential sharing the modules), iterable, has len().
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[_check_index(index, len(items))][1]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules that registers them (a plain Python list would hide their parameters)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        values = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(values[index])
        return values[_check_index(index, len(values))]


def _check_index(index, n):
    if not -n <= index < n:
        raise IndexError(f"index {index} is out of range for a container of {n} modules")
    return index % n
