"""Shared fixtures: every device test runs on NumPy and, where a GPU is present, on CuPy."""
import numpy as np
import pytest

import minigrad as mg


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """'cpu', and 'cuda' where CuPy and a GPU exist (skipped with a reason elsewhere)."""
    if request.param == "cuda" and not mg.is_available("cuda"):
        pytest.skip("no GPU: CuPy is not installed or finds no CUDA device")
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
