"""Shared fixtures: every device test runs on NumPy and on CuPy.

"cuda" means the real CuPy where a GPU exists, and the strict stand-in of `cupy_standin.py`
elsewhere, so the CuPy path is exercised on every machine.  The test id says which one ran:
`[cpu]`, `[cuda-gpu]` or `[cuda-standin]`.
"""
import importlib.util
import os
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend


def _load_standin():
    """Import tests/cupy_standin.py as `cupy_standin` (the tests folder stays off sys.path:
    its `minigrad/` subfolder would shadow the package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy_standin.py")
    spec = importlib.util.spec_from_file_location("cupy_standin", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cupy_standin"] = module
    spec.loader.exec_module(module)
    return module


cupy_standin = _load_standin()

# `from torch_reference import reference`: PyTorch's answers, live or from tests/golden/.
_spec = importlib.util.spec_from_file_location(
    "torch_reference", os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.py"))
sys.modules["torch_reference"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sys.modules["torch_reference"])

REAL_GPU = mg.is_available("cuda")
if not REAL_GPU:
    cupy_standin.install(backend)
CUDA_ID = "cuda-gpu" if REAL_GPU else "cuda-standin"


@pytest.fixture(params=["cpu", pytest.param("cuda", id=CUDA_ID)])
def device(request):
    """'cpu', then 'cuda' (a real GPU, or the strict CuPy stand-in where there is none)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def make(device, rng):
    """make(shape, requires_grad=True) -> a float64 leaf Tensor of N(0, 1) on the device."""
    def _make(*shape, requires_grad=True, scale=1.0, dtype=np.float64):
        data = (rng.standard_normal(shape) * scale).astype(dtype)
        return mg.tensor(data, requires_grad=requires_grad, device=device)
    return _make
