"""Norm specs: one string names how a network normalizes, e.g. "gn+wa".

A spec is at most one ACTIVATION norm and at most one WEIGHT re-parameterization, joined by
"+" in either order (case and spaces ignored):

    activation norm   none (default) | bn | gn | ln | in | bcn
    weight re-param   (none)         | wa | ws | wn

    "wa"      WeightAlign alone (the paper's "WA")       "gn+wa" == "wa+gn"   GN with WA
    "bn"      BatchNorm alone                            "none"  the baseline, no normalization

`make(spec, channels)` turns a spec into what a conv block needs: the conv class to build the
layer with and a fresh norm layer for `channels` channels:

    conv_cls, norm = make("gn+wa", 64)       # (WAConv2d, GroupNorm(32, 64))
    block = Sequential(conv_cls(3, 64, 3, padding=1, bias=False), norm, ReLU())

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

Group count (gn, bcn): `num_groups(C)` is the largest divisor of C that is at most 32.  So the
usual 32 groups whenever 32 divides C (all the paper's widths), and always a valid count for the
odd widths that `width=` scaling produces (C = 48 -> 24, C = 20 -> 20, C = 7 -> 7).  When
C <= 32 every channel is its own group and GN coincides with IN.
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


def num_groups(channels, max_groups=32):
    """The largest divisor of `channels` that is at most `max_groups` (GN's 32 when it divides)."""
    return max(g for g in range(1, min(channels, max_groups) + 1) if channels % g == 0)


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
