"""The layers of wa.nn: each re-parameterized conv against F.conv2d with the transformed weight,
gradient checks through the modules, initialisation, and BatchChannelNorm's running estimates."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
import wa.functional as WF
from wa.nn import BatchChannelNorm, WAConv2d, WNConv2d, WSConv2d


def _x(rng, device, *shape):
    return mg.tensor(rng.standard_normal(shape), requires_grad=True, device=device)


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2, padding=1),
                                    dict(groups=2, padding=2, dilation=2)])
def test_waconv2d_equals_conv2d_of_aligned_weight(kwargs, device, rng):
    conv = WAConv2d(4, 6, 3, **kwargs).double().to(device)
    conv.gamma.data[...] = conv.gamma.data * mg.backend.to_device(rng.uniform(0.5, 2, 6), device)
    x = _x(rng, device, 2, 4, 7, 7)
    want = F.conv2d(x, WF.weight_align(conv.weight, conv.gamma), None, conv.stride, conv.padding,
                    conv.dilation, conv.groups)
    np.testing.assert_allclose(conv(x).numpy(), want.numpy(), rtol=1e-12, atol=1e-12)


def test_waconv2d_defaults_and_init(rng):
    conv = WAConv2d(64, 32, 3, padding=1)
    assert conv.bias is None and isinstance(conv, nn.Conv2d)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "gamma"]
    np.testing.assert_array_equal(conv.gamma.numpy(), np.ones(32))
    # The paper's init (III-C): N(0, 2/n), n = 64*3*3, so WA starts close to the identity:
    # each filter's s = sqrt((n/2) Var[w]) is 1 up to sampling (std 1/sqrt(2n) ~ 0.03), its mean
    # 0 up to sampling (std sqrt(2/n)/sqrt(n), a 1/sqrt(n) ~ 0.04 fraction of the weights' std),
    # so WA changes the weights by a fraction sqrt(1/(2n) + 1/n) ~ 0.05 of their norm.
    n = 64 * 9
    w = conv.weight.numpy().reshape(32, n)
    assert abs(w.std() / np.sqrt(2 / n) - 1) < 0.03
    s = np.sqrt(n / 2 * w.var(axis=1))
    assert np.all(np.abs(s - 1) < 5 / np.sqrt(2 * n)), s
    aligned = conv.effective_weight().numpy().reshape(32, n)
    change = np.linalg.norm(aligned - w) / np.linalg.norm(w)
    assert change < 0.08, change
    assert "alpha" not in repr(conv)
    assert "alpha=1.0" in repr(WAConv2d(2, 2, 1, alpha=1.0))
    assert WAConv2d(2, 2, 1, bias=True).bias is not None


def test_waconv2d_gradcheck_through_module(device, rng):
    conv = WAConv2d(3, 4, 3, padding=1, bias=True).double().to(device)
    x = _x(rng, device, 2, 3, 5, 5)
    assert mg.gradcheck(lambda x, w, g, b: conv(x), [x, conv.weight, conv.gamma, conv.bias])


def test_waconv2d_ablation_flags_reach_the_op(rng):
    conv = WAConv2d(3, 4, 3, center=False).double()
    want = WF.weight_align(conv.weight, conv.gamma, center=False)
    np.testing.assert_allclose(conv.effective_weight().numpy(), want.numpy())
    assert "center=False" in repr(conv)


def test_wsconv2d_is_conv2d_with_standardized_weight(device, rng):
    conv = WSConv2d(4, 6, 3, padding=1).double().to(device)
    assert conv.bias is not None                      # Conv2d's default, as the authors' code
    x = _x(rng, device, 2, 4, 5, 5)
    want = F.conv2d(x, WF.weight_standardize(conv.weight), conv.bias, 1, 1)
    np.testing.assert_allclose(conv(x).numpy(), want.numpy(), rtol=1e-12)
    assert mg.gradcheck(lambda x, w, b: conv(x), [x, conv.weight, conv.bias])


def test_wnconv2d_starts_as_its_plain_weight_and_checks(device, rng):
    conv = WNConv2d(4, 6, 3, padding=1).double().to(device)
    np.testing.assert_allclose(conv.effective_weight().numpy(), conv.weight.numpy(), rtol=1e-6)
    x = _x(rng, device, 2, 4, 5, 5)
    assert mg.gradcheck(lambda x, v, g, b: conv(x), [x, conv.weight, conv.weight_g, conv.bias])
    conv.weight.data *= 3.0                           # the direction's length does not matter
    y = conv(x).numpy()
    conv.reset_g()                                    # ... until g is reset from it
    assert not np.allclose(conv(x).numpy(), y)


def test_batch_channel_norm_module(device, rng):
    bcn = BatchChannelNorm(2, 4, momentum=0.25).double().to(device)
    assert sorted(n for n, _ in bcn.named_parameters()) == ["bias", "bias_bc", "weight", "weight_bc"]
    assert sorted(bcn.state_dict()) == ["bias", "bias_bc", "running_mean", "running_var",
                                        "weight", "weight_bc"]
    x = _x(rng, device, 3, 4, 5, 5)
    data = x.numpy()
    y = bcn(x)
    mu = data.mean(axis=(0, 2, 3))
    s2 = (data ** 2).mean(axis=(0, 2, 3))             # about the old estimate, which is 0
    np.testing.assert_allclose(bcn.running_mean.numpy(), 0.25 * mu, rtol=1e-12)
    np.testing.assert_allclose(bcn.running_var.numpy(), 0.75 + 0.25 * s2, rtol=1e-12)
    # GroupNorm at the end: each (sample, group) of the output has mean 0 and variance ~1.
    out = y.numpy().reshape(3, 2, -1)
    np.testing.assert_allclose(out.mean(axis=2), 0, atol=1e-10)
    np.testing.assert_allclose(out.var(axis=2), 1, rtol=1e-3)
    bcn.eval()
    before = bcn.running_mean.numpy()
    bcn(x)
    np.testing.assert_array_equal(bcn.running_mean.numpy(), before)
    assert mg.gradcheck(lambda x, *p: bcn(x), [x] + list(bcn.parameters()))


def test_batch_channel_norm_works_at_batch_one_and_1x1(rng):
    """BCN's point: a micro-batch of one sample with 1x1 maps still trains (unlike BatchNorm)."""
    bcn = BatchChannelNorm(2, 4).double()
    x = mg.tensor(rng.standard_normal((1, 4, 1, 1)), requires_grad=True)
    bcn(x).sum().backward()
    assert np.all(np.isfinite(x.grad))


def test_batch_channel_norm_errors():
    with pytest.raises(ValueError, match="divisible"):
        BatchChannelNorm(3, 4)
    with pytest.raises(ValueError, match="4 channels"):
        BatchChannelNorm(2, 4)(mg.tensor(np.ones((2, 3, 2, 2))))
    assert BatchChannelNorm(2, 4, affine=False).weight is None


def test_wnconv2d_reset_g_counts_as_an_in_place_change(rng):
    """reset_g writes into weight_g's array: a graph recorded before it must refuse to backward
    (minigrad's version counter), as after any other in-place change of a parameter."""
    conv = WNConv2d(2, 3, 3)
    x = mg.tensor(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    y = conv(x).sum()
    conv.reset_g()
    with pytest.raises(RuntimeError, match="changed in place"):
        y.backward()
