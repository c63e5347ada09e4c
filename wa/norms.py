"""Norm specs: one string names how a network normalizes, e.g. "gn+wa".

A spec is at most one ACTIVATION norm and at most one WEIGHT re-parameterization, joined by
"+" in either order (case and spaces ignored):

    activation norm   none (default) | bn | gn | ln | in | bcn
    weight re-param   (none)         | wa | ws | wn      (ws only with an activation norm)
    WA variants       wa[center] | wa[scale] | wa[alpha=A] | wa[scale,alpha=A]

    "wa[center]"     the ablation of Table IV: centring only,  gamma * (w - mean(w))
    "wa[scale]"      the ablation of Table IV: scaling only,   gamma * w / sqrt((n/2) Var[w] + eps)
    "wa[alpha=A]"    Fig. 6 / suppl. VIII-A: eq. (10) with the factor A*n in place of n/2, so
                     "wa" == "wa[alpha=0.5]" (canonical spelling "wa"); A > 0
    They combine with an activation norm like "wa" does: "gn+wa[center]", "bn+wa[alpha=2]".

`ws` alone (no activation norm) is refused: Weight Standardization gives every filter unit
variance, a gain of about n/2 per layer (see `wa.functional.WeightStandardize`), so plain8,
vgg16 and resnet20 reach logits of 1e7-1e16 at initialisation; the WS authors pair it with GN
or BCN, which undo that gain.

    "wa"      WeightAlign alone (the paper's "WA")       "gn+wa" == "wa+gn"   GN with WA
    "bn"      BatchNorm alone                            "none"  the baseline, no normalization

`make(spec, channels)` turns a spec into what a conv block needs: the conv class to build the
layer with and a fresh norm layer for `channels` channels:

    conv_cls, norm = make("gn+wa", 128)      # (WAConv2d, GroupNorm(32, 128))
    conv_cls, norm = make(NormConfig("gn+wa", gn_min_channels=4), 64)   # GroupNorm(16, 64)
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
minigrad.nn.Conv2d when there is none; a WA variant gives WAConv2d with center/scale/alpha set.

Group count (gn, bcn).  `num_groups(C, max_groups, min_channels)` is the largest divisor G of C
with G <= max_groups and C / G >= min_channels (at least 1 group).  A `NormConfig` carries the
two numbers along with the spec (`--gn-groups N`, `--gn-min-channels K` on every command line).
The default, gn_groups=32 and gn_min_channels=2, is the GN paper's 32 groups (Wu & He 2018, the
setting the WA paper trains GN and GN+WA with), never fewer than 2 channels per group:

    C        16   32   48   64   128   256   20   7
    groups    8   16   24   32    32    32   10   1

On the paper's nets (C >= 64, multiples of 32) that is exactly 32 groups.  The floor of 2 matters
on narrow nets such as the CIFAR ResNet-20 (16/32/64 channels, or half that at width 0.5):
with one channel per group GN *is* InstanceNorm, which normalizes away each channel's mean over
the image, and after global average pooling the classifier then sees nearly the same features
for every image.  `gn_min_channels=1` gives the plain "32 groups where C allows" (InstanceNorm
on layers with C <= 32); `gn_min_channels=4` at least 4 channels per group.
"""
import math
from collections import namedtuple

from minigrad import nn

from .nn import BatchChannelNorm, WAConv2d, WNConv2d, WSConv2d

__all__ = ["ACTIVATION_NORMS", "WEIGHT_REPARAMS", "VALID_SPECS", "WA_VARIANTS", "Spec",
           "NormLayers", "NormConfig", "parse", "canonical", "make", "conv_class", "norm_layer",
           "num_groups", "wa_options", "split_specs", "GN_GROUPS", "GN_MIN_CHANNELS"]

ACTIVATION_NORMS = ("none", "bn", "gn", "ln", "in", "bcn")
WEIGHT_REPARAMS = ("wa", "ws", "wn")
CONV_CLASSES = {None: nn.Conv2d, "wa": WAConv2d, "ws": WSConv2d, "wn": WNConv2d}
WA_VARIANTS = ("wa[center]", "wa[scale]", "wa[alpha=A]", "wa[scale,alpha=A]")

# Every accepted spec (without WA variants) in its canonical spelling: activation norm first,
# "none" left out when a weight re-parameterization is present.  "ws" alone is refused.
VALID_SPECS = (ACTIVATION_NORMS + ("wa", "wn")
               + tuple(f"{a}+{w}" for a in ACTIVATION_NORMS[1:] for w in WEIGHT_REPARAMS))

Spec = namedtuple("Spec", ["activation", "weight"])
Spec.__doc__ = """A parsed spec: activation in ACTIVATION_NORMS; weight None, "ws", "wn", "wa" or a
canonical WA variant such as "wa[center]" or "wa[alpha=0.25]" (see `wa_options`)."""
NormLayers = namedtuple("NormLayers", ["conv", "norm"])
NormLayers.__doc__ = """What `make` returns: the conv class (or factory) and a norm layer instance."""

GN_GROUPS = 32           # the GN paper's default group count
GN_MIN_CHANNELS = 2      # never one channel per group, which would be InstanceNorm
LEGACY_GN_MIN_CHANNELS = 4   # what run folders whose config.json lacks gn_min_channels used


class NormConfig(namedtuple("NormConfig", ["spec", "gn_groups", "gn_min_channels"])):
    """A spec plus the group rule for gn/bcn: what the models pass down to `make`.

    NormConfig("gn+wa")                       32 groups, at least 2 channels each (the default)
    NormConfig("gn+wa", gn_min_channels=4)    32 groups, at least 4 channels each
    `str(cfg)` is the canonical spec; parse, conv_class, norm_layer and make accept either.
    """
    __slots__ = ()

    def __new__(cls, spec, gn_groups=GN_GROUPS, gn_min_channels=GN_MIN_CHANNELS):
        if isinstance(spec, NormConfig):
            spec = spec.spec
        for name, v in (("gn_groups", gn_groups), ("gn_min_channels", gn_min_channels)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        return super().__new__(cls, canonical(spec), int(gn_groups), int(gn_min_channels))

    def __str__(self):
        return self.spec

    def num_groups(self, channels):
        return num_groups(channels, self.gn_groups, self.gn_min_channels)


def _invalid(spec, why):
    return ValueError(f"invalid norm spec {spec!r}: {why}. Valid specs: {', '.join(VALID_SPECS)} "
                      f"(the two parts may come in either order), and WA variants "
                      f"{', '.join(WA_VARIANTS)} in place of wa")


def _format_alpha(a):
    short = f"{a:g}"
    return short if float(short) == a else repr(a)


def _parse_wa(spec, part):
    """'wa[center]' -> the canonical variant spelling; ValueError for bad options."""
    inner = part[3:-1]
    opts = [o.strip() for o in inner.split(",")]
    center = scale = None
    alpha = None
    for o in opts:
        if o in ("center", "scale"):
            if center is not None:
                raise _invalid(spec, "wa[...] takes one of center or scale")
            center, scale = o == "center", o == "scale"
        elif o.startswith("alpha="):
            if alpha is not None:
                raise _invalid(spec, "alpha given twice")
            try:
                alpha = float(o[6:])
            except ValueError:
                raise _invalid(spec, f"alpha must be a number, got {o[6:]!r}") from None
            if not (math.isfinite(alpha) and alpha > 0):
                raise _invalid(spec, f"alpha must be a finite number > 0, got {o[6:]}")
        else:
            raise _invalid(spec, f"unknown WA option {o!r} (center, scale or alpha=A)")
    if alpha is not None and center:
        raise _invalid(spec, "alpha sets the scaling, which wa[center] leaves out")
    words = ["center"] if center else ["scale"] if scale else []
    if alpha is not None and alpha != 0.5:
        words.append(f"alpha={_format_alpha(alpha)}")
    return "wa" if not words else f"wa[{','.join(words)}]"


def parse(spec):
    """'wa+gn' -> Spec(activation='gn', weight='wa'); a ValueError listing valid specs otherwise.

    Accepts a NormConfig too (its spec is parsed).  WA variants keep their canonical spelling
    in `weight`: parse('gn+WA[alpha=0.50]') == Spec('gn', 'wa').
    """
    if isinstance(spec, NormConfig):
        spec = spec.spec
    if not isinstance(spec, str):
        raise _invalid(spec, f"expected a string, got {type(spec).__name__}")
    parts = [p.strip().lower().replace(" ", "") for p in spec.split("+")]
    activation, weight = [], []
    for p in parts:
        if p in ACTIVATION_NORMS:
            activation.append(p)
        elif p in WEIGHT_REPARAMS:
            weight.append(p)
        elif p.startswith("wa[") and p.endswith("]"):
            weight.append(_parse_wa(spec, p))
        else:
            raise _invalid(spec, f"unknown part {p!r}" if p else "empty part")
    if len(activation) > 1 or len(weight) > 1:
        raise _invalid(spec, "at most one activation norm and one weight re-parameterization")
    result = Spec(activation[0] if activation else "none", weight[0] if weight else None)
    if result == ("none", "ws"):
        raise ValueError(f"invalid norm spec {spec!r}: WS needs an activation norm after it "
                         f"(as the WS authors advise: gn+ws, bcn+ws, ...); alone its unit-variance "
                         f"filters make the logits explode at initialisation")
    return result


def canonical(spec):
    """The canonical spelling: canonical('WA + GN') == 'gn+wa', canonical('wa[alpha=.5]') == 'wa'."""
    a, w = parse(spec)
    return a if w is None else (w if a == "none" else f"{a}+{w}")


def split_specs(text):
    """'bn,gn+wa,wa[scale,alpha=2]' -> ['bn', 'gn+wa', 'wa[scale,alpha=2]']: specs separated by
    commas, where a comma inside [...] belongs to a WA variant (for --norms lists)."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return [t.strip() for t in items + [cur] if t.strip()]


def wa_options(spec):
    """The WAConv2d keyword arguments of the spec's WA part: {} for plain wa or no WA.

    wa_options('gn+wa[center]') == {'center': True, 'scale': False}
    wa_options('wa[alpha=2]') == {'alpha': 2.0}
    """
    w = parse(spec).weight
    if w is None or not w.startswith("wa["):
        return {}
    out = {}
    for o in w[3:-1].split(","):
        if o in ("center", "scale"):
            out.update(center=o == "center", scale=o == "scale")
        else:
            out["alpha"] = float(o[6:])
    return out


def num_groups(channels, max_groups=GN_GROUPS, min_per_group=GN_MIN_CHANNELS):
    """The largest divisor G of `channels` with G <= max_groups and channels / G >= min_per_group.

    (1 when no such divisor exists: a layer narrower than `min_per_group` is one group.)
    The defaults are the GN paper's 32 groups with at least 2 channels each (see the module
    docstring): num_groups(16) == 8, num_groups(64) == 32, num_groups(256) == 32.
    """
    limit = max(1, min(max_groups, channels // min_per_group))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


def conv_class(spec):
    """The conv class for the spec's weight re-parameterization (Conv2d when none).

    For a WA variant, a subclass of WAConv2d whose center/scale/alpha default to the variant's
    (so `conv_class(spec)(c_in, c_out, k)` builds the right layer and isinstance checks hold).
    """
    w = parse(spec).weight
    if w is None or not w.startswith("wa["):
        return CONV_CLASSES[w]
    return _wa_variant_class(w)


_VARIANT_CLASSES = {}


def _wa_variant_class(weight):
    if weight not in _VARIANT_CLASSES:
        opts = wa_options(weight)

        def __init__(self, *args, **kwargs):
            for k, v in opts.items():
                kwargs.setdefault(k, v)
            WAConv2d.__init__(self, *args, **kwargs)
        name = f"WAConv2d[{weight[3:-1]}]"
        _VARIANT_CLASSES[weight] = type(name, (WAConv2d,), {
            "__init__": __init__, "__module__": __name__,
            "__doc__": f"WAConv2d with {opts} (the norm spec {weight!r})."})
    return _VARIANT_CLASSES[weight]


def norm_layer(spec, channels):
    """A fresh activation-norm layer for `channels` channels (Identity for none).

    `spec` is a spec string (the default group rule) or a NormConfig (its group rule).
    """
    cfg = spec if isinstance(spec, NormConfig) else None
    a = parse(spec).activation
    groups = (cfg or NormConfig("none")).num_groups(channels)
    if a == "bn":
        return nn.BatchNorm2d(channels)
    if a == "gn":
        return nn.GroupNorm(groups, channels)
    if a == "ln":
        return nn.GroupNorm(1, channels)
    if a == "in":
        return nn.InstanceNorm2d(channels, affine=True)
    if a == "bcn":
        return BatchChannelNorm(groups, channels)
    return nn.Identity()


def make(spec, channels):
    """NormLayers(conv=<conv class>, norm=<norm layer for `channels` channels>) for a spec
    (a string, or a NormConfig carrying the group rule)."""
    return NormLayers(conv_class(spec), norm_layer(spec, channels))
