"""Norm specs: parsing, the layers each spec gives, the group-count rule, clear errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from wa import norms
from wa.nn import BatchChannelNorm, WAConv2d, WNConv2d, WSConv2d

CONV = {None: nn.Conv2d, "wa": WAConv2d, "ws": WSConv2d, "wn": WNConv2d}
NORM = {"none": nn.Identity, "bn": nn.BatchNorm2d, "gn": nn.GroupNorm, "ln": nn.GroupNorm,
        "in": nn.InstanceNorm2d, "bcn": BatchChannelNorm}


def test_valid_specs_are_every_combination_once():
    assert len(norms.VALID_SPECS) == len(set(norms.VALID_SPECS)) == 6 + 3 + 5 * 3
    for spec in norms.VALID_SPECS:
        assert norms.canonical(spec) == spec


@pytest.mark.parametrize("spec", norms.VALID_SPECS)
def test_make_gives_the_named_layers(spec):
    activation, weight = norms.parse(spec)
    conv_cls, norm = norms.make(spec, 128)
    assert conv_cls is CONV[weight]
    assert type(norm) is NORM[activation]
    if activation in ("gn", "bcn"):
        assert norm.num_groups == 32
    if activation == "ln":
        assert norm.num_groups == 1
    if activation == "in":
        assert norm.affine


def test_order_case_and_spaces_do_not_matter():
    assert norms.parse("wa+gn") == norms.parse("GN + WA") == norms.Spec("gn", "wa")
    assert norms.parse("none+wa") == norms.parse("wa") == norms.Spec("none", "wa")
    assert norms.parse("bn") == norms.Spec("bn", None)
    assert norms.canonical("ws+bcn") == "bcn+ws"
    assert norms.canonical("wa+none") == "wa"


@pytest.mark.parametrize("bad", ["foo", "gn+bn", "wa+ws", "", "gn+", "gn++wa", "bn+none",
                                 "batchnorm", 3, None])
def test_bad_specs_list_the_valid_ones(bad):
    with pytest.raises(ValueError, match="Valid specs: none, bn, gn") as e:
        norms.make(bad, 16)
    assert "gn+wa" in str(e.value) and repr(bad) in str(e.value)


@pytest.mark.parametrize("channels,groups", [(128, 32), (512, 32), (64, 16), (96, 24), (48, 12),
                                             (32, 8), (16, 4), (20, 5), (7, 1), (1, 1), (33, 3),
                                             (34, 2)])
def test_group_count_rule(channels, groups):
    g = norms.num_groups(channels)
    assert g == groups and channels % g == 0 and g <= 32
    limit = max(1, min(32, channels // 4))
    assert channels // g >= 4 or g == 1                              # >= 4 channels per group
    assert not any(channels % h == 0 for h in range(g + 1, limit + 1))   # the largest such divisor


def test_ln_normalizes_over_channels_and_space(rng):
    """ln on a conv map: one mean and variance per sample over (C, H, W)."""
    _, ln = norms.make("ln", 6)
    x = mg.tensor(rng.standard_normal((3, 6, 4, 4)) * 5 + 2)
    y = ln(x).numpy().reshape(3, -1)
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-3)
    assert ln.weight.shape == (6,)                 # per-channel affine


def test_each_call_gives_a_fresh_layer():
    a, b = norms.norm_layer("bn", 8), norms.norm_layer("bn", 8)
    assert a is not b and a.weight is not b.weight
