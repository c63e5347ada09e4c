"""Norm specs: one string names how a network normalizes, e.g. "gn+wa".

A spec is at most one ACTIVATION norm and at most one WEIGHT re-parameterization, joined by
"+" in either order (case and spaces ignored):

    activation norm   none (default) | bn | gn | ln | in | bcn
    weight re-param   (none)         | wa | ws | wn

    "wa"      WeightAlign alone (the paper's "WA")       "gn+wa" == "wa+gn"   GN with WA
    "bn"      BatchNorm alone                            "none"  the baseline, no normalization

`make(spec, channels)` turns a spec into what a conv block needs: the conv class to build the
layer with and a fresh norm layer for `channels` channels:

    conv_cls, norm = make("gn+wa", 128)      # (WAConv2d, GroupNorm(32, 128))
    block = Sequential(conv_cls(3, 128, 3, padding=1, bias=False), norm, ReLU())

The activation norms, for (N, C, H, W) maps:
    bn   BatchNorm2d(C)                           statistics over (N, H, W), per channel
    gn   GroupNorm(num_groups(C), C)              per sample, over groups of channels and (H, W)
    ln   GroupNorm(1, C)                          per sample, over (C, H, W); per-channel affine
                                                  (LayerNorm of a conv map as the GN paper and
                                                  the WA paper use it)
    in   InstanceNorm2d(C, affine=True)           per sample and channel, over (H, W)
    bcn  BatchChannelNorm(num_groups(C), C)       running estimates per channel, then GN
    none Identity()
The weight re-parameterizations: wa -> WAConv2d, ws -> WSConv2d, wn -> WNConv2d, and plain
minigrad.nn.Conv2d when there is none.

Group count (gn, bcn): `num_groups(C)` is the largest divisor of C that is at most 32 and
leaves at least 4 channels in every group (G <= C / 4; at least 1 group).  Wide layers
(C >= 128, divisible by 32) get GroupNorm's usual 32 groups; the narrow layers of CIFAR nets
and of `width=` scaling get fewer: C = 64 -> 16, 32 -> 8, 16 -> 4, 48 -> 12, 20 -> 5, 7 -> 1.
Why the floor of 4 channels: with one channel per group GN *is* InstanceNorm, and IN followed
by global average pooling hands the classifier nearly the same features for every image
(notebook 05 measures it: ResNet-20 with "gn+wa" and single-channel groups stayed at chance,
with 4 or more channels per group it learned).
"""
from collections import namedtuple

from minigrad import nn

from .nn import BatchChannelNorm, WAConv2d, WNConv2d, WSConv2d

__all__ = ["ACTIVATION_NORMS", "WEIGHT_REPARAMS", "VALID_SPECS", "Spec", "NormLayers", "parse",
           "canonical", "make", "conv_class", "norm_layer", "num_groups"]

ACTIVATION_NORMS = ("none", "bn", "gn", "ln", "in", "bcn")
WEIGHT_REPARAMS = ("wa", "ws", "wn")
CONV_CLASSES = {None: nn.Conv2d, "wa": WAConv2d, "ws": WSConv2d, "wn": WNConv2d}

# Every accepted spec in its canonical spelling: activation norm first, "none" left out when a
# weight re-parameterization is present.
VALID_SPECS = (ACTIVATION_NORMS + WEIGHT_REPARAMS
               + tuple(f"{a}+{w}" for a in ACTIVATION_NORMS[1:] for w in WEIGHT_REPARAMS))

Spec = namedtuple("Spec", ["activation", "weight"])
Spec.__doc__ = "A parsed spec: activation in ACTIVATION_NORMS, weight in WEIGHT_REPARAMS or None."
NormLayers = namedtuple("NormLayers", ["conv", "norm"])
NormLayers.__doc__ = """What `make` returns: the conv class and a norm layer instance."""


def _invalid(spec, why):
    return ValueError(f"invalid norm spec {spec!r}: {why}. Valid specs: {', '.join(VALID_SPECS)} "
                      f"(the two parts may come in either order)")


def parse(spec):
    """'wa+gn' -> Spec(activation='gn', weight='wa'); a ValueError listing valid specs otherwise."""
    if not isinstance(spec, str):
        raise _invalid(spec, f"expected a string, got {type(spec).__name__}")
    parts = [p.strip().lower() for p in spec.split("+")]
    activation, weight = [], []
    for p in parts:
        if p in ACTIVATION_NORMS:
            activation.append(p)
        elif p in WEIGHT_REPARAMS:
            weight.append(p)
        else:
            raise _invalid(spec, f"unknown part {p!r}" if p else "empty part")
    if len(activation) > 1 or len(weight) > 1:
        raise _invalid(spec, "at most one activation norm and one weight re-parameterization")
    return Spec(activation[0] if activation else "none", weight[0] if weight else None)


def canonical(spec):
    """The spelling of `spec` in VALID_SPECS: canonical('WA + GN') == 'gn+wa'."""
    a, w = parse(spec)
    return a if w is None else (w if a == "none" else f"{a}+{w}")


MIN_CHANNELS_PER_GROUP = 4


def num_groups(channels, max_groups=32, min_per_group=MIN_CHANNELS_PER_GROUP):
    """The largest divisor G of `channels` with G <= max_groups and channels / G >= min_per_group.

    (1 when no such divisor exists: a layer narrower than `min_per_group` is one group.)
    """
    limit = max(1, min(max_groups, channels // min_per_group))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


def conv_class(spec):
    """The conv class for the spec's weight re-parameterization (Conv2d when none)."""
    return CONV_CLASSES[parse(spec).weight]


def norm_layer(spec, channels):
    """A fresh activation-norm layer for `channels` channels (Identity for none)."""
    a = parse(spec).activation
    if a == "bn":
        return nn.BatchNorm2d(channels)
    if a == "gn":
        return nn.GroupNorm(num_groups(channels), channels)
    if a == "ln":
        return nn.GroupNorm(1, channels)
    if a == "in":
        return nn.InstanceNorm2d(channels, affine=True)
    if a == "bcn":
        return BatchChannelNorm(num_groups(channels), channels)
    return nn.Identity()


def make(spec, channels):
    """NormLayers(conv=<conv class>, norm=<norm layer for `channels` channels>) for a spec."""
    return NormLayers(conv_class(spec), norm_layer(spec, channels))
