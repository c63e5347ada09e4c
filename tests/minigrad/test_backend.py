"""Devices: CuPy stays optional, and asking for what is missing says what to install."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import backend


def test_cpu_always_available():
    assert mg.is_available("cpu")


def test_unknown_device_name():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        mg.Tensor([1.0]).to("tpu")


@pytest.mark.skipif(mg.is_available("cuda"), reason="this machine has a GPU; the error path is for machines without")
def test_cuda_without_gpu_says_what_to_install():
    with pytest.raises(RuntimeError, match="cupy|CuPy"):
        mg.Tensor([1.0]).to("cuda")


def test_get_array_module_numpy():
    assert backend.get_array_module(np.ones(2)) is np
    assert backend.get_array_module(1.0) is np


def test_round_trip_and_module(device):
    x = mg.Tensor(np.arange(4.0), requires_grad=True)
    y = x.to(device)
    assert y.device == device and y.requires_grad
    assert backend.get_array_module(y.data) is (np if device == "cpu" else backend.cupy)
    np.testing.assert_array_equal(y.to("cpu").numpy(), np.arange(4.0))
    (y * y).sum().backward()
    assert backend.device_of(y.grad) == device


def test_mixed_devices_error_names_both():
    if not mg.is_available("cuda"):
        pytest.skip("no GPU: CuPy is not installed or finds no CUDA device")
    a = mg.Tensor(np.ones(2))
    b = mg.Tensor(np.ones(2)).to("cuda")
    with pytest.raises(RuntimeError, match="'cpu' and 'cuda'"):
        a + b
