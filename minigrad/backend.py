"""Where arrays live: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every CuPy import of the project sits in this file.  Ops never consult a global
"current device": they ask `get_array_module` which library owns their inputs,
exactly as DeZero and Chainer do, so the same op code runs on both.
"""
import numpy as np

try:  # CuPy is optional (extra "gpu"); its absence is only an error when cuda is asked for.
    import cupy
    import cupyx
except Exception:  # ImportError, or a broken CUDA install raising at import
    cupy = None
    cupyx = None

_INSTALL_HINT = ('install CuPy for CUDA 12 with  pip install -e ".[gpu]"  '
                 '(or  pip install cupy-cuda12x) on a machine with an NVIDIA GPU')


def is_available(device="cuda"):
    """True if `device` ("cpu" or "cuda") can hold arrays on this machine."""
    device = _check_name(device)
    if device == "cpu":
        return True
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _check_name(device):
    name = str(device).lower()
    if name.startswith("cuda"):  # accept "cuda" and "cuda:0"
        return "cuda"
    if name == "cpu":
        return "cpu"
    raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def require_cuda():
    """Raise a clear error unless CuPy and a GPU are both present."""
    if cupy is None:
        raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed: {_INSTALL_HINT}")
    if not is_available("cuda"):
        raise RuntimeError("device 'cuda' was asked for, but CuPy finds no usable GPU "
                           "(check the NVIDIA driver with nvidia-smi), or use device 'cpu'")


def get_array_module(*arrays):
    """numpy, or cupy when any of `arrays` is a CuPy array."""
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


def device_of(array):
    """'cuda' for a CuPy array, else 'cpu'."""
    return "cuda" if (cupy is not None and isinstance(array, cupy.ndarray)) else "cpu"


def to_device(array, device):
    """Copy `array` to `device` ("cpu" or "cuda"); no copy when it is already there."""
    device = _check_name(device)
    if device == "cpu":
        if cupy is not None and isinstance(array, cupy.ndarray):
            return cupy.asnumpy(array)
        return np.asarray(array)
    require_cuda()
    return cupy.asarray(array)


def as_numpy(array):
    """A host (NumPy) copy or view of `array`."""
    return to_device(array, "cpu")


def scatter_add(target, index, values):
    """target[index] += values, with repeated indices adding up (unbuffered)."""
    if cupy is not None and isinstance(target, cupy.ndarray):
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)
