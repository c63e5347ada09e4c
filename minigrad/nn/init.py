"""Weight initialisation, as `torch.nn.init`: every function fills `tensor.data` in place.

Random numbers come from one module-level NumPy Generator, `default_generator`,
so `minigrad.manual_seed(seed)` makes every initialisation reproducible.  The
numbers are drawn on the host and copied to the tensor's device: the same seed
gives the same weights on CPU and GPU.

Why the Kaiming ("He") scale: for y = w . x with n = fan_in independent terms,
Var[y] = n Var[w] E[x^2]; after a ReLU, E[x^2] is half the variance of the
previous pre-activation, so Var[w] = 2 / n keeps the variance constant from layer
to layer (the paper's eqs. (7)-(9)).  In general std = gain / sqrt(fan), where the
gain undoes the non-linearity's shrinking of the signal.
"""
import math

import numpy as np

from .. import backend
from ..autograd import increment_version

# One Generator object for the whole library; manual_seed reseeds it in place, so
# `from minigrad.nn.init import default_generator` never holds a stale copy.
default_generator = np.random.Generator(np.random.PCG64())


def manual_seed(seed):
    """Seed all of minigrad's random numbers: initialisation (`default_generator`), and the
    global `numpy.random` and `cupy.random` states that dropout masks are drawn from."""
    default_generator.bit_generator.state = np.random.PCG64(seed).state
    np.random.seed(seed)
    if backend.is_available("cuda"):
        backend.cupy.random.seed(seed)
    return default_generator


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a non-linearity (PyTorch's table).

    linear, conv*, sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);  selu: 3/4;
    leaky_relu with negative slope a (default 0.01): sqrt(2 / (1 + a^2)).
    """
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}: use one of linear, conv2d, "
                     f"sigmoid, tanh, relu, leaky_relu, selu")


def calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: for a (out, in, kh, kw) conv weight,
    fan_in = in * kh * kw (the inputs of one output unit) and fan_out = out * kh * kw;
    a (out, in) Linear weight is the kh = kw = 1 case."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape "
                         f"{tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out  # PyTorch's private spelling


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} is not supported: use 'fan_in' or 'fan_out'")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    """Write host `values` into tensor.data in place, on its device and in its dtype.

    An in-place change: it moves the tensor's version counter, so a graph that
    saw the old values refuses to backward (see minigrad/autograd.py).
    """
    xp = backend.get_array_module(tensor.data)
    tensor.data[...] = xp.asarray(np.asarray(values).astype(tensor.dtype, copy=False))
    increment_version(tensor)
    return tensor


# -- the initialisers --------------------------------------------------------
def uniform_(tensor, a=0.0, b=1.0):
    """Fill with U(a, b)."""
    return _fill(tensor, default_generator.uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with N(mean, std^2)."""
    return _fill(tensor, default_generator.normal(mean, std, size=tensor.shape))


def constant_(tensor, val):
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """Fill with U(-bound, bound), bound = gain * sqrt(3 / fan), so that std = gain / sqrt(fan).

    (A uniform variable on [-b, b] has variance b^2 / 3.)  `a` is the leaky-ReLU
    slope used by the gain.  Conv2d and Linear call this with a = sqrt(5), which
    gives bound = 1 / sqrt(fan_in), PyTorch's default.
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """Fill with N(0, std^2), std = gain / sqrt(fan): He et al.'s initialisation."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor, gain=1.0):
    """Fill with U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """Fill with N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))
