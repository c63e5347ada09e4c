"""Every norm checks its parameters' (and running buffers') dtype against its input's, as
PyTorch does: a float32 input with a float64 weight is a TypeError naming both dtypes and the
fix, on cpu and on cuda, for the functional ops and for the layers.  (Unlike PyTorch, a float64
input through float32 parameters is accepted: the result keeps the input's dtype.)"""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
import wa.functional as WF
from minigrad import nn
from wa.nn import BatchChannelNorm, WAConv2d, WNConv2d

C = 4


def _layers():
    return {
        "BatchNorm2d": (lambda: nn.BatchNorm2d(C), (2, C, 3, 3)),
        "BatchNorm1d": (lambda: nn.BatchNorm1d(C), (3, C)),
        "InstanceNorm2d": (lambda: nn.InstanceNorm2d(C, affine=True, track_running_stats=True),
                           (2, C, 3, 3)),
        "GroupNorm": (lambda: nn.GroupNorm(2, C), (2, C, 3, 3)),
        "LayerNorm": (lambda: nn.LayerNorm((3, 3)), (2, C, 3, 3)),
        "BatchChannelNorm": (lambda: BatchChannelNorm(2, C), (2, C, 3, 3)),
        "WAConv2d": (lambda: WAConv2d(C, 3, 3, padding=1), (2, C, 3, 3)),
        "WNConv2d": (lambda: WNConv2d(C, 3, 3, padding=1), (2, C, 3, 3)),
    }


LAYERS = _layers()


def _input(shape, dtype, device, rng):
    return mg.tensor(rng.standard_normal(shape).astype(dtype), device=device)


@pytest.mark.parametrize("name", list(LAYERS))
def test_each_norm_layer_refuses_a_parameter_of_another_dtype(name, device, rng):
    build, shape = LAYERS[name]
    for x_dtype, p_dtype in ((np.float32, np.float64), (np.float16, np.float32)):
        layer = build().to(device).to(x_dtype)
        x = _input(shape, x_dtype, device, rng)
        # one parameter in the other dtype (the last one: gamma, weight_g, bias, ...)
        pname, p = list(layer.named_parameters())[-1]
        p.data = p.data.astype(p_dtype)
        with pytest.raises(TypeError) as e:
            layer(x)
        msg = str(e.value)
        assert np.dtype(x_dtype).name in msg and np.dtype(p_dtype).name in msg, msg
        assert f" {pname.replace('weight_g', 'g')}" in msg, msg
        assert "module.to(np." in msg and "astype" in msg and "\n" not in msg
        # the fix the message gives works
        if x_dtype == np.float32:
            layer.to(x_dtype)
            assert layer(x).dtype == x_dtype


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_narrower_parameter_is_refused_too(name, device, rng):
    """float64 input through a float32 parameter: refused as well, as conv2d and PyTorch do
    (accepting it would quietly run a float32 layer in float64)."""
    build, shape = LAYERS[name]
    layer = build().to(device).to(np.float64)
    pname, p = list(layer.named_parameters())[-1]
    p.data = p.data.astype(np.float32)
    with pytest.raises(TypeError, match=r"input is float64 but \w+ is float32"):
        layer(_input(shape, np.float64, device, rng))


@pytest.mark.parametrize("name", ["BatchNorm2d", "InstanceNorm2d", "BatchChannelNorm"])
def test_running_buffers_of_another_dtype_are_refused(name, device, rng):
    build, shape = LAYERS[name]
    layer = build().to(device)
    layer.running_var.data = layer.running_var.data.astype(np.float64)
    with pytest.raises(TypeError, match="input is float32 but running_var is float64"):
        layer(_input(shape, np.float32, device, rng))


@pytest.mark.parametrize("op", ["batch_norm", "instance_norm", "group_norm", "layer_norm",
                                "batch_channel_norm", "weight_align", "weight_norm"])
def test_functional_norms_refuse_mixed_dtypes(op, device, rng):
    x = _input((2, C, 3, 3), np.float32, device, rng)
    w64 = mg.tensor(np.ones(C), device=device)                        # float64
    w32 = mg.tensor(np.ones(C, np.float32), device=device)
    calls = {
        "batch_norm": lambda w: F.batch_norm(x, None, None, w, None, True),
        "instance_norm": lambda w: F.instance_norm(x, weight=w),
        "group_norm": lambda w: F.group_norm(x, 2, w),
        "layer_norm": lambda w: F.layer_norm(x, (3,), w[:3]),
        "batch_channel_norm": lambda w: WF.batch_channel_norm(
            x, 2, mg.tensor(np.zeros(C, np.float32), device=device),
            mg.tensor(np.ones(C, np.float32), device=device), w),
        "weight_align": lambda w: WF.weight_align(x, w[:2]),
        "weight_norm": lambda w: WF.weight_norm(x, w[:2]),
    }
    with pytest.raises(TypeError, match=f"{op}: input is float32 but .* is float64"):
        calls[op](w64)
    assert calls[op](w32).dtype == np.float32
