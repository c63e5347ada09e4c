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


def test_cuda_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    assert not mg.is_available("cuda")
    with pytest.raises(RuntimeError, match=r"needs CuPy, which is not installed: .*pip install"):
        mg.Tensor([1.0]).to("cuda")


def test_cuda_without_a_device_says_so(monkeypatch):
    class NoDevice:                      # CuPy installed, but no GPU (or a broken driver)
        ndarray = type("ndarray", (), {})
        class cuda:
            class runtime:
                @staticmethod
                def getDeviceCount():
                    raise RuntimeError("cudaErrorInsufficientDriver")
    monkeypatch.setattr(backend, "cupy", NoDevice)
    assert not mg.is_available("cuda")
    with pytest.raises(RuntimeError, match="finds no usable GPU"):
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
    a = mg.Tensor(np.ones(2))
    b = mg.Tensor(np.ones(2)).to("cuda")
    with pytest.raises(RuntimeError, match="'cpu' and 'cuda'"):
        a + b
