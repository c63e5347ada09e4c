"""A strict CuPy stand-in for the tests: NumPy underneath, CuPy's rules on top.

Used only by the tests (never imported by `minigrad` or `wa`).  Where no GPU exists, the test
suite installs it as `minigrad.backend.cupy` / `cupyx`, so every test parametrized on
`device="cuda"` runs on every machine and trips on exactly the mistakes that break real GPU
runs.  An array of the stand-in:

* is not a `numpy.ndarray`: `np.asarray(x)`, `np.array(x)`, `np.savez(f, x=x)` and every other
  implicit conversion raise CuPy's `TypeError`; `x.get()` and `cupy.asnumpy(x)` copy to the host;
* refuses to meet a NumPy array (ndim > 0) in a ufunc, an operator or a function: CuPy's
  "Unsupported type" `TypeError` (Python and NumPy scalars are fine, as in CuPy);
* gives 0-d arrays, not scalars, from reductions (`x.sum()`), as CuPy does;
* has only the attributes, and its module only the names, that the real CuPy has: the lists
  in `cupy_names.json` were read from the `cupy-cuda12x` wheel (version and date inside).

Not modelled: streams, memory pools, raw kernels, and CuPy's own numerical results (the
numbers are NumPy's).  `install()` puts the stand-in in place; `is_standin(module)` tells it
apart from the real CuPy.
"""
import json
import os
import types

import numpy as np

_NAMES = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy_names.json")))
CUPY_VERSION = _NAMES["cupy_version"]

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                       "Please use `.get()` to construct a NumPy array explicitly.")


def _unsupported(obj):
    return TypeError(f"Unsupported type {type(obj)}")


# ----------------------------------------------------------------------------
# Crossing the boundary: stand-in arrays in, stand-in arrays out
# ----------------------------------------------------------------------------
def _unwrap(obj, strict=True):
    """The NumPy array behind `obj`; a NumPy array with ndim > 0 is refused when `strict`."""
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, np.ndarray):
        if obj.ndim > 0 and strict:
            raise _unsupported(obj)
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, strict) for o in obj)
    return obj


def _unwrap_kwargs(kwargs, strict=True):
    return {k: _unwrap(v, strict) for k, v in kwargs.items()}


def _wrap(obj):
    """NumPy arrays and NumPy scalars become stand-in arrays (CuPy returns 0-d arrays)."""
    if isinstance(obj, np.ndarray):
        return ndarray._of(obj)
    if isinstance(obj, np.generic):
        return ndarray._of(np.asarray(obj))
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _strict(fn):
    """`fn` (a NumPy function) with CuPy's rules on its arguments and results."""
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args), **_unwrap_kwargs(kwargs)))
    call.__name__ = getattr(fn, "__name__", "function")
    call.__doc__ = f"Stand-in for cupy.{call.__name__} (NumPy underneath)."
    return call


def _array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    """cupy.array: host data (NumPy arrays, lists, scalars) is copied to the device."""
    if isinstance(obj, ndarray):
        return ndarray._of(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    return ndarray._of(np.array(_unwrap(obj, strict=False), dtype=dtype, copy=True, order=order,
                                ndmin=ndmin))


def _asarray(obj, dtype=None, order=None, *, blocking=False):
    """cupy.asarray: a device array passes through; host data is copied, never aliased."""
    if isinstance(obj, ndarray):
        a = np.asarray(obj._a, dtype=dtype, order=order)
        return obj if a is obj._a else ndarray._of(a)
    return ndarray._of(np.array(_unwrap(obj, strict=False), dtype=dtype, order=order, copy=True))


class _Ufunc:
    """A NumPy ufunc under CuPy's rules (`cupy.add`, `cupy.maximum`, ...)."""

    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        return _wrap(self._uf(*_unwrap(args), **_unwrap_kwargs(kwargs)))

    def __getattr__(self, name):
        if name in ("reduce", "accumulate", "reduceat", "outer", "at"):
            return _strict(getattr(self._uf, name))
        if name in ("nin", "nout", "nargs", "ntypes", "types", "identity"):
            return getattr(self._uf, name)
        raise AttributeError(f"'cupy.ufunc' object has no attribute {name!r}")

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


# ----------------------------------------------------------------------------
# The array
# ----------------------------------------------------------------------------
_ARRAY_ATTRS = set(_NAMES["cupy.ndarray"])
# Methods whose index-like arguments CuPy copies from the host (it calls cupy.array on them).
_HOST_INDEX_OK = {"take", "put", "compress", "choose"}
_PROPERTIES = {"shape", "dtype", "ndim", "size", "strides", "nbytes", "itemsize", "flags"}


class ndarray:
    """A device array of the stand-in: a NumPy array kept out of NumPy's reach."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a):
        out = object.__new__(cls)
        out._a = a
        return out

    # -- what CuPy refuses ---------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT_CONVERSION)

    @property
    def __array_interface__(self):
        raise AttributeError("cupy.ndarray has no __array_interface__ (it lives on the GPU)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = tuple(_unwrap(o) if isinstance(o, ndarray) else _raise_out(o)
                                  for o in kwargs["out"])
        result = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap_kwargs(kwargs))
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        # CuPy dispatches a NumPy function to its own function of the same name.
        mine = _MODULE_FUNCS.get(func.__name__)
        if mine is None:
            return NotImplemented
        return mine(*args, **kwargs)

    # -- attributes ----------------------------------------------------------
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    mT = property(lambda self: ndarray._of(np.swapaxes(self._a, -1, -2)))
    real = property(lambda self: ndarray._of(self._a.real))
    imag = property(lambda self: ndarray._of(self._a.imag))
    base = property(lambda self: None if self._a.base is None else ndarray._of(self._a.base))
    device = property(lambda self: _Device(0))

    def __getattr__(self, name):
        # Only reached for names not defined above: the rest of CuPy's ndarray methods.
        if name not in _ARRAY_ATTRS or not hasattr(np.ndarray, name):
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        method = getattr(self._a, name)
        strict = name not in _HOST_INDEX_OK

        def call(*args, **kwargs):
            return _wrap(method(*_unwrap(args, strict), **_unwrap_kwargs(kwargs, strict)))
        return call

    def get(self, stream=None, order="C", out=None, blocking=True):
        """Copy to the host: a new NumPy array."""
        host = np.array(self._a, copy=True, order=order)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, arr, stream=None):
        """Copy a host array into this device array."""
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        self._a[...] = arr

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def copy(self, order="C"):
        return ndarray._of(self._a.copy(order=order))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        return ndarray._of(self._a.astype(dtype, order=order, copy=copy))

    def view(self, dtype=None):
        return ndarray._of(self._a.view() if dtype is None else self._a.view(dtype))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        # CuPy arrays pickle (through the host); the stand-in does the same.
        return (ndarray._of, (self._a.copy(),))

    # -- indexing ------------------------------------------------------------
    def __getitem__(self, index):
        # CuPy copies host (NumPy, list) indices to the device: allowed.
        return _wrap(self._a[_unwrap(index, strict=False)])

    def __setitem__(self, index, value):
        index = _unwrap(index, strict=False)
        if isinstance(value, np.ndarray) and value.ndim > 0 and not _is_advanced(index):
            # CuPy fills a basic-indexed view with `fill`, which refuses arrays.
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a[index] = _unwrap(value, strict=False)

    # -- Python protocol -----------------------------------------------------
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __complex__(self):
        return complex(self._a)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __dlpack__(self, *args, **kwargs):
        raise TypeError("the stand-in has no DLPack export (a real CuPy array would go to the GPU)")


def _raise_out(o):
    raise _unsupported(o)


def _is_advanced(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, list)) for p in parts)


def _binary(ufunc, reflected=False, inplace=False):
    def op(self, other):
        if isinstance(other, np.ndarray) and other.ndim > 0:
            raise _unsupported(other)
        if not isinstance(other, (ndarray, np.ndarray, np.generic, int, float, complex, bool)):
            return NotImplemented
        a, b = (other, self) if reflected else (self, other)
        if inplace:
            ufunc(_unwrap(a), _unwrap(b), out=self._a)
            return self
        return _wrap(ufunc(_unwrap(a), _unwrap(b)))
    return op


for _name, _uf in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("floordiv", np.floor_divide), ("mod", np.remainder),
                   ("pow", np.power), ("matmul", np.matmul), ("and", np.bitwise_and),
                   ("or", np.bitwise_or), ("xor", np.bitwise_xor), ("lshift", np.left_shift),
                   ("rshift", np.right_shift)]:
    setattr(ndarray, f"__{_name}__", _binary(_uf))
    setattr(ndarray, f"__r{_name}__", _binary(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", _binary(_uf, inplace=True))
for _name, _uf in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(ndarray, f"__{_name}__", _binary(_uf))
for _name, _uf in [("neg", np.negative), ("pos", np.positive), ("abs", np.absolute),
                   ("invert", np.invert)]:
    setattr(ndarray, f"__{_name}__", lambda self, _uf=_uf: _wrap(_uf(self._a)))
del _name, _uf


# ----------------------------------------------------------------------------
# Modules: cupy, cupy.random, cupy.linalg, cupy.fft, cupy.lib.stride_tricks, cupy.cuda, cupyx
# ----------------------------------------------------------------------------
class _Namespace(types.ModuleType):
    """A module exposing only the names the real CuPy namespace `name` has."""

    def __init__(self, name, allowed, source, extra=None):
        super().__init__(name)
        self._allowed = set(allowed)
        self._source = source
        self._extra = dict(extra or {})

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._allowed:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        if name in self._extra:
            return self._extra[name]
        target = getattr(self._source, name, None)
        if target is None:
            raise NotImplementedError(f"the CuPy stand-in does not model {self.__name__}.{name}")
        if isinstance(target, np.ufunc):
            return _Ufunc(target)
        if isinstance(target, type) or not callable(target):
            return target                       # dtypes (cupy.float32 is numpy.float32), constants
        return _strict(target)

    def __dir__(self):
        return sorted(self._allowed)


class _Device:
    def __init__(self, device_id=0):
        self.id = device_id

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id} (stand-in)>"


class _Stream:
    def synchronize(self):
        pass


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1


class _MemoryPool:
    def free_all_blocks(self):
        pass

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0


_cuda = types.SimpleNamespace(runtime=_Runtime(), Device=_Device, Stream=types.SimpleNamespace(null=_Stream()),
                              get_current_stream=lambda: _Stream())


class _Generator:
    """cupy.random.Generator: only the methods CuPy's Generator has."""

    def __init__(self, seed=None):
        self._g = np.random.default_rng(_unwrap(seed))

    def __getattr__(self, name):
        if name not in _NAMES["cupy.random.Generator"]:
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r}")
        return _strict(getattr(self._g, name))


class _RandomState:
    """cupy.random.RandomState: only the methods CuPy's RandomState has."""

    def __init__(self, seed=None):
        self._r = np.random.RandomState(seed)

    def __getattr__(self, name):
        if name not in _NAMES["cupy.random.RandomState"]:
            raise AttributeError(f"'cupy.random.RandomState' object has no attribute {name!r}")
        return _strict(getattr(self._r, name))


_global_state = _RandomState()


def _random_function(name):
    def call(*args, **kwargs):
        return getattr(_global_state, name)(*args, **kwargs)
    call.__name__ = name
    return call


def _random_extra():
    extra = {name: _random_function(name) for name in _NAMES["cupy.random.RandomState"]}
    extra.update(default_rng=_Generator, Generator=_Generator, RandomState=_RandomState,
                 get_random_state=lambda: _global_state,
                 random=_random_function("random_sample"),
                 reset_states=lambda: _global_state.seed(None))
    return extra


def get_array_module(*args):
    """The stand-in module when any argument is a stand-in array, else numpy."""
    return cupy if any(isinstance(a, ndarray) for a in args) else np


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """Copy a stand-in array to the host (a NumPy array passes through)."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def _scatter_add(a, slices, value):
    """cupyx.scatter_add: a[slices] += value with repeated indices adding up."""
    if not isinstance(a, ndarray):
        raise TypeError(f"scatter_add needs a cupy.ndarray, got {type(a)}")
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise _unsupported(value)
    np.add.at(a._a, _unwrap(slices, strict=False), _unwrap(value))


random = _Namespace("cupy.random", _NAMES["cupy.random"], np.random, _random_extra())
linalg = _Namespace("cupy.linalg", _NAMES["cupy.linalg"], np.linalg)
fft = _Namespace("cupy.fft", _NAMES["cupy.fft"], np.fft)
_stride_tricks = _Namespace("cupy.lib.stride_tricks", _NAMES["cupy.lib.stride_tricks"],
                            np.lib.stride_tricks)
lib = types.SimpleNamespace(stride_tricks=_stride_tricks)

cupy = _Namespace("cupy", _NAMES["cupy"], np, {
    "ndarray": ndarray, "array": _array, "asarray": _asarray, "asanyarray": _asarray, "asnumpy": asnumpy,
    "get_array_module": get_array_module, "random": random, "linalg": linalg, "fft": fft,
    "lib": lib, "cuda": _cuda, "get_default_memory_pool": _MemoryPool,
    "get_default_pinned_memory_pool": _MemoryPool, "__version__": CUPY_VERSION,
})
cupy.__version__ = CUPY_VERSION
cupy.__file__ = __file__
cupy._standin = True
cupyx = _Namespace("cupyx", _NAMES["cupyx"], types.SimpleNamespace(), {"scatter_add": _scatter_add})
cupyx._standin = True

class _FuncTable(dict):
    def get(self, name, default=None):
        try:
            return getattr(cupy, name)
        except (AttributeError, NotImplementedError):
            return default


# NumPy functions called on stand-in arrays are routed to cupy's by __array_function__.
_MODULE_FUNCS = _FuncTable()


def is_standin(module):
    """True for this stand-in's modules, False for the real CuPy."""
    return getattr(module, "_standin", False)


def install(backend):
    """Make `backend` (minigrad.backend) use the stand-in as its CuPy."""
    backend.cupy = cupy
    backend.cupyx = cupyx
