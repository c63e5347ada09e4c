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
    # every activation norm alone, wa and wn alone (ws alone is refused), every pair
    assert len(norms.VALID_SPECS) == len(set(norms.VALID_SPECS)) == 6 + 2 + 5 * 3
    for spec in norms.VALID_SPECS:
        assert norms.canonical(spec) == spec


@pytest.mark.parametrize("spec", ["ws", "none+ws", "WS", "ws+none"])
def test_ws_without_an_activation_norm_is_refused_in_one_line(spec):
    with pytest.raises(ValueError, match="WS needs an activation norm after it") as e:
        norms.parse(spec)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="WS needs an activation norm"):
        from wa import models
        models.build("plain8", spec)
    assert norms.canonical("gn+ws") == "gn+ws"       # with a norm after it, WS is fine


@pytest.mark.parametrize("spec,canon,opts", [
    ("wa[center]", "wa[center]", {"center": True, "scale": False}),
    ("WA[ Scale ]", "wa[scale]", {"center": False, "scale": True}),
    ("wa[alpha=0.25]", "wa[alpha=0.25]", {"alpha": 0.25}),
    ("wa[alpha=0.5]", "wa", {}),                       # eq. (10) itself
    ("wa[alpha=2.0]", "wa[alpha=2]", {"alpha": 2.0}),
    ("wa[alpha=1e-1,scale]", "wa[scale,alpha=0.1]", {"center": False, "scale": True, "alpha": 0.1}),
    ("wa[center]+gn", "gn+wa[center]", {"center": True, "scale": False}),
    ("bcn + wa[alpha=3]", "bcn+wa[alpha=3]", {"alpha": 3.0}),
])
def test_wa_variants_parse_to_canonical_spellings_and_options(spec, canon, opts):
    assert norms.canonical(spec) == canon and norms.canonical(canon) == canon
    assert norms.wa_options(spec) == opts
    conv_cls = norms.conv_class(spec)
    assert issubclass(conv_cls, WAConv2d) and conv_cls is norms.conv_class(canon)
    conv = conv_cls(4, 6, 3)
    want = {"center": True, "scale": True, "alpha": 0.5, **opts}
    assert (conv.center, conv.scale, conv.alpha) == (want["center"], want["scale"], want["alpha"])


def test_wa_variant_convs_compute_the_variant(rng):
    """wa[center] = gamma (w - mean), wa[scale] = gamma w / sqrt((n/2) Var + eps), and
    wa[alpha=A] divides by sqrt(A n Var + eps)."""
    w = rng.standard_normal((5, 2, 3, 3))
    rows, n = w.reshape(5, -1), 18
    var = rows.var(axis=1, keepdims=True)
    want = {"wa[center]": rows - rows.mean(axis=1, keepdims=True),
            "wa[scale]": rows / np.sqrt(0.5 * n * var + 1e-5),
            "wa[alpha=2]": (rows - rows.mean(axis=1, keepdims=True)) / np.sqrt(2 * n * var + 1e-5)}
    for spec, ref in want.items():
        conv = norms.conv_class(spec)(2, 5, 3)
        conv.weight.data = w.copy()
        conv.gamma.data = np.ones(5)
        np.testing.assert_allclose(conv.effective_weight().numpy().reshape(5, -1), ref, rtol=1e-10)


@pytest.mark.parametrize("bad,why", [("wa[center,scale]", "one of center or scale"),
                                     ("wa[center,alpha=1]", "wa\\[center\\] leaves out"),
                                     ("wa[alpha=0]", "alpha must be a finite number > 0"),
                                     ("wa[alpha=x]", "alpha must be a number"),
                                     ("wa[foo]", "unknown WA option"),
                                     ("ws[center]", "unknown part"), ("wa[]", "unknown WA option")])
def test_bad_wa_variants_say_why(bad, why):
    with pytest.raises(ValueError, match=why):
        norms.parse(bad)


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


@pytest.mark.parametrize("channels,groups", [(128, 32), (512, 32), (64, 32), (96, 32), (48, 24),
                                             (32, 16), (16, 8), (20, 10), (7, 1), (2, 1), (1, 1),
                                             (33, 11), (34, 17), (6, 3)])
def test_default_group_count_is_32_with_at_least_2_channels_per_group(channels, groups):
    """The default: the GN paper's 32 groups (the paper's nets, C >= 64, get exactly 32), but
    never one channel per group -- that would be InstanceNorm -- where C allows 2."""
    g = norms.num_groups(channels)
    assert g == groups and channels % g == 0 and g <= 32
    assert channels // g >= 2 or channels == 1                       # never InstanceNorm
    limit = max(1, min(32, channels // 2))
    assert not any(channels % h == 0 for h in range(g + 1, limit + 1))   # the largest such divisor
    _, gn = norms.make("gn", channels)
    _, bcn = norms.make("bcn", channels)
    assert gn.num_groups == bcn.num_groups == groups
    assert norms.NormConfig("gn").num_groups(channels) == groups


@pytest.mark.parametrize("channels,groups", [(128, 32), (64, 32), (48, 24), (32, 32), (16, 16),
                                             (20, 20), (7, 7), (1, 1), (33, 11), (34, 17)])
def test_group_count_with_one_channel_allowed_is_32_where_the_channels_allow(channels, groups):
    """gn_min_channels=1: the GN paper's 32 groups where C allows, InstanceNorm for C <= 32."""
    g = norms.num_groups(channels, 32, 1)
    assert g == groups and channels % g == 0 and g <= 32
    assert not any(channels % h == 0 for h in range(g + 1, min(32, channels) + 1))  # the largest
    assert norms.make(norms.NormConfig("gn", 32, 1), channels).norm.num_groups == groups


@pytest.mark.parametrize("channels,groups", [(128, 32), (512, 32), (64, 16), (96, 24), (48, 12),
                                             (32, 8), (16, 4), (20, 5), (7, 1), (1, 1), (33, 3),
                                             (34, 2)])
def test_group_count_with_at_least_4_channels_per_group(channels, groups):
    """The option gn_min_channels=4 (--gn-min-channels 4): at least 4 channels per group."""
    g = norms.num_groups(channels, 32, 4)
    assert g == groups and channels % g == 0 and g <= 32
    limit = max(1, min(32, channels // 4))
    assert channels // g >= 4 or g == 1                              # >= 4 channels per group
    assert not any(channels % h == 0 for h in range(g + 1, limit + 1))   # the largest such divisor
    cfg = norms.NormConfig("gn+wa", gn_min_channels=4)
    assert norms.make(cfg, channels).norm.num_groups == groups
    assert norms.make(norms.NormConfig("bcn", 32, 4), channels).norm.num_groups == groups


@pytest.mark.parametrize("groups,min_ch,channels,want", [(8, 1, 64, 8), (8, 1, 12, 6), (1, 1, 64, 1),
                                                         (32, 16, 64, 4), (64, 1, 64, 64)])
def test_group_count_options(groups, min_ch, channels, want):
    assert norms.NormConfig("gn", groups, min_ch).num_groups(channels) == want


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_group_options_must_be_positive_integers(bad):
    with pytest.raises(ValueError, match="positive integer"):
        norms.NormConfig("gn", gn_groups=bad)
    with pytest.raises(ValueError, match="positive integer"):
        norms.NormConfig("gn", gn_min_channels=bad)


def test_ln_normalizes_over_channels_and_space(rng):
    """ln on a conv map: one mean and variance per sample over (C, H, W)."""
    _, ln = norms.make("ln", 6)
    x = mg.tensor((rng.standard_normal((3, 6, 4, 4)) * 5 + 2).astype(np.float32))
    y = ln(x).numpy().reshape(3, -1)
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-3)
    assert ln.weight.shape == (6,)                 # per-channel affine


def test_each_call_gives_a_fresh_layer():
    a, b = norms.norm_layer("bn", 8), norms.norm_layer("bn", 8)
    assert a is not b and a.weight is not b.weight


def test_split_specs_keeps_commas_inside_brackets():
    assert norms.split_specs("bn, gn+wa,wa[scale,alpha=2],,wa[center]") == [
        "bn", "gn+wa", "wa[scale,alpha=2]", "wa[center]"]
    assert norms.split_specs(" ") == []


@pytest.mark.parametrize("spec", ["wa", "wa[center]", "wa[scale]", "wa[alpha=0.25]",
                                  "wa[scale,alpha=3]", "gn+wa[center]"])
def test_wa_variant_specs_backward_gradchecks_in_float64(spec, make, device):
    """The conv a spec builds differentiates through the variant's hand-derived backward
    (wa.functional.WeightAlign): float64 central differences on a random upstream gradient,
    for the raw weight, gamma and the input of the convolution."""
    conv = norms.conv_class(spec)(3, 4, 3, padding=1).to(device, np.float64)
    conv.gamma.data = make(4).data                       # a random gamma, not all ones
    x = make(2, 3, 5, 5)
    # gradcheck perturbs the conv's own Parameters in place: conv(x) sees every change
    assert mg.gradcheck(lambda x, w, g: conv(x), [x, conv.weight, conv.gamma])
