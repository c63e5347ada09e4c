"""The paper's networks, each buildable with any norm spec (see `wa.norms`).

    model = wa.models.build("resnet20", norm="gn+wa", num_classes=10, width=1.0)   # the defaults
    model = wa.models.build("resnet20", norm="wa", fixup="multiplier")   # WA alone, with Fixup
    wa.models.names()     # ['plain8', 'resnet101', ..., 'vgg16']

Every model is for CIFAR-sized inputs (N, 3, H, W) and ends in global average pooling, so any
H, W works as long as the feature maps do not shrink below 1x1 (VGG halves them five times:
use H, W >= 32; the ResNets three times: H, W >= 8).

Common choices, the same for every spec so that models differ only in their normalization:
  * every conv is built by the spec's conv class (Conv2d, WAConv2d, WSConv2d, WNConv2d), has no
    bias, and is followed by the spec's activation norm (Identity for none); WA is also applied
    to the first conv and to the 1x1 projection shortcuts, never to the final classifier (the
    paper's rule; the classifier is a plain Linear);
  * raw conv weights start as Kaiming normal, N(0, 2/fan_in) (He et al.; the paper's III-C),
    and so does the classifier, whose bias starts at 0; `init="pytorch"` draws every conv and
    linear layer as PyTorch's own layers do instead (weights uniform with variance
    1/(3 fan_in), biases uniform in +-1/sqrt(fan_in)).  Behind a norm (BN, GN, WA, WS, WN) a
    conv's output does not depend on its weight's scale, but the step size does: the
    gradient to w scales as 1/|w|, the relative update as lr/|w|^2, so PyTorch's 6x smaller
    variance is a 6x larger effective rate for those convs until weight decay has shrunk
    them (benchmarks/README.md, `train_vs_pytorch.py`);
  * `width` multiplies every channel count: c -> max(1, round(c * width)); group counts for gn
    and bcn are chosen per layer by `wa.norms.num_groups`, so any width is valid: by default
    the GN paper's 32 groups, never fewer than 2 channels per group (C = 64 -> 32 groups,
    C = 16 -> 8), so no GroupNorm silently becomes InstanceNorm (see `wa.norms`);
  * `norm` may be a WA variant of Table IV / Fig. 6 ("wa[center]", "gn+wa[alpha=2]", ...).

Models:
  plain8     7 conv3x3 (stride 1, 64 channels) + ReLU, global average pooling, a linear
             classifier, no bias anywhere: the network of the paper's Fig. 2.
             `model(x, return_activations=True)` also returns the 8 pre-activations (the output
             of conv layer i after its norm, before the ReLU, for i = 1..7, then the logits).
  vgg11/16   CIFAR VGG: 3x3 convs with a norm and ReLU, 2x2 max pooling after each stage.
  resnet*    CIFAR ResNets: 3x3 stem (stride 1, no max pooling), four stages (64, 128, 256, 512
             channels; strides 1, 2, 2, 2) of basic blocks (18, 34) or bottlenecks (50, 101,
             152, expansion 4), projection shortcuts (1x1 conv + norm) where the shape changes.
  resnet20   He et al. (2016) CIFAR ResNet: three stages of 3 basic blocks, 16/32/64 channels.
             Shortcuts are 1x1 projections too (option B), not the zero-padding of option A.

Fixup (Zhang et al. 2019) replaces normalization in the residual nets whose spec has no
activation norm (none, wa and its variants, wn; ws alone is refused by `wa.norms`), as the
paper's baseline does.  Fixup as published, for plain convs: scalar biases before each conv and
each ReLU and before the classifier (init 0), a scalar multiplier at the end of each residual
branch (init 1), the weights inside a branch of m layers scaled by L^(-1/(2m-2)) for L branches
in the net, the last layer of each branch and the classifier set to 0, and the scalars trained
at a tenth of the learning rate (the authors' code).  A branch whose last conv is 0 still
learns at once: a conv's weight gradient does not depend on its weight, so the last conv gets
a full gradient at the first step and the rest of the branch follows.

The WA paper says only "ResNets are initialized with Fixup" and publishes no code.  What follows
is this project's reading of that sentence for re-parameterized convs, chosen by measurement.
WA (eq. 10) computes h = gamma * G(w), G the centring and scaling of the raw filter w; WN
computes g * v / ||v||.  The filter's length is gamma (g), the raw weight sets only its
direction, and the gradient to the raw weight is proportional to gamma (g).  So "the last conv
= 0", as gamma = 0 (or g = 0), starves the whole branch: the last conv's raw weight gets
gamma x its gradient = 0, the convs before it get nothing through a zero filter, and only
gamma itself moves, along the one fixed direction G(w) per filter, while weight decay pulls it
back.  A zero multiplier starves the branch the same way.  `build(..., fixup=SPEC)` (wa-train
--fixup SPEC, recorded in config.json) chooses how each branch starts:

    closing   "gamma"        the last conv's length (gamma, g, or a plain conv's weight) is 0
              "multiplier"   the branch's scalar multiplier is 0, every length stays 1
              "small-gamma"  the last conv's length is L^(-1/2): the branch is open but small;
                             each of the L blocks adds about 1/L of its input's variance, so
                             the variance grows at most by (1 + 1/L)^L < e over the net
    ",lr/10"  the Fixup scalars train at lr / 10 (else at lr)
    ",scaled" the inner convs' lengths are multiplied by L^(-1/(2m-2)) (else they stay 1)

Defaults: "gamma,lr/10,scaled" (Fixup as published) for plain convs; "small-gamma" for
WAConv2d and WNConv2d, because it is the one closing under which every conv of every branch
learns from the first steps, at the stem's order of gradient (under a zero closing: orders
of magnitude below it for the first tens of steps), and because it trained best.  WA resnet20
on cifar10-sample (1,504 / 360 images), wa-train's short recipe, test accuracy, mean +-
standard error over 3 seeds:

    --fixup                  batch 64, 10 epochs    batch 8, 3 epochs
    small-gamma                  40.4 +- 0.6 %          32.6 +- 1.4 %
    multiplier                   35.3 +- 0.8 %          30.4 +- 1.5 %
    gamma,lr/10,scaled           27.3 +- 1.2 %          27.6 +- 0.8 %   (Fixup as published)
    small-gamma,lr/10            35.0 +- 1.2 %
    small-gamma,scaled           32.8 +- 0.6 %

The scalars train at the full rate (lr / 10 cost 5 points) and the inner convs stay unscaled
(",scaled" cost 8 points; with multiplier 6): under WA the scaling slows the first
conv's learning, its gradient being proportional to its gamma, while the small last gamma
already keeps the branch small at the start.  WN ranks the closings the same way over 3 seeds
(small-gamma 39.9 +- 0.6 %, multiplier 32.6 +- 1.3 %, Fixup as published 29.1 +- 0.2 %).
All runs, the command and the code version: benchmarks/results/fixup_closing/.
"""
from collections import namedtuple

import numpy as np

import minigrad.functional as F
from minigrad import nn
from minigrad.nn import init

from . import norms
from .nn import WAConv2d, WNConv2d

__all__ = ["build", "names", "fixup_scalars", "fixup_scalar_lr_factor", "parse_fixup",
           "default_fixup", "FixupConfig", "FIXUP_CLOSINGS", "FIXUP_DEFAULT", "FIXUP_PUBLISHED",
           "Plain8", "VGG", "ResNet", "BasicBlock", "Bottleneck", "FixupBasicBlock",
           "FixupBottleneck"]


def _ch(c, width):
    return max(1, int(round(c * width)))


INITS = ("kaiming", "pytorch")


def _init_weights(module, scheme="kaiming"):
    """Every conv and linear in `module`: Kaiming normal with zero biases ("kaiming"), or
    PyTorch's default layer init ("pytorch": minigrad's own Conv2d and Linear init, which is
    PyTorch's; called on the base class, since WAConv2d's override draws Kaiming weights)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "pytorch":
                (nn.Linear if isinstance(m, nn.Linear) else nn.Conv2d).reset_parameters(m)
            else:
                init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    init.zeros_(m.bias)
        if isinstance(m, WNConv2d):
            m.reset_g()                      # keep the effective weight = the drawn weight


def _conv_norm(spec, c_in, c_out, k, stride=1):
    conv_cls, norm = norms.make(spec, c_out)
    return conv_cls(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), norm


# ----------------------------------------------------------------------------
# Plain networks
# ----------------------------------------------------------------------------
class Plain8(nn.Module):
    """The 8-layer net of Fig. 2: 7 x (conv3x3 -> norm -> ReLU), global average pool, linear."""

    def __init__(self, norm="none", num_classes=10, width=1.0, in_channels=3, channels=64,
                 init="kaiming"):
        super().__init__()
        c = _ch(channels, width)
        pairs = [_conv_norm(norm, in_channels if i == 0 else c, c, 3) for i in range(7)]
        self.convs = nn.ModuleList([p[0] for p in pairs])
        self.norms = nn.ModuleList([p[1] for p in pairs])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes, bias=False)
        _init_weights(self, init)

    def forward(self, x, return_activations=False):
        acts = []
        for conv, norm in zip(self.convs, self.norms):
            x = norm(conv(x))
            acts.append(x)                   # the pre-activation the histograms of Fig. 2 show
            x = F.relu(x)
        x = self.classifier(self.pool(x).flatten(1))
        acts.append(x)
        return (x, acts) if return_activations else x


VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
}


class VGG(nn.Module):
    """CIFAR VGG: `cfg` lists conv widths and "M" (2x2 max pool); then a linear classifier."""

    def __init__(self, cfg, norm="none", num_classes=10, width=1.0, in_channels=3,
                 init="kaiming"):
        super().__init__()
        layers, c_in = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                c = _ch(v, width)
                layers += [*_conv_norm(norm, c_in, c, 3), nn.ReLU()]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)
        _init_weights(self, init)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


# ----------------------------------------------------------------------------
# Residual blocks with an activation norm
# ----------------------------------------------------------------------------
def _normed_shortcut(norm, c_in, c_out, stride):
    """The identity when shapes match, else a strided 1x1 conv + norm (projection, option B)."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(*_conv_norm(norm, c_in, c_out, 1, stride))


class BasicBlock(nn.Module):
    """relu(n2(conv3x3(relu(n1(conv3x3(x))))) + shortcut(x))."""
    expansion, depth = 1, 2

    def __init__(self, c_in, planes, stride, norm):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1, self.n1 = _conv_norm(norm, c_in, planes, 3, stride)
        self.conv2, self.n2 = _conv_norm(norm, planes, c_out, 3)
        self.shortcut = _normed_shortcut(norm, c_in, c_out, stride)

    def forward(self, x):
        out = F.relu(self.n1(self.conv1(x)))
        return F.relu(self.n2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """relu(n3(conv1x1(relu(n2(conv3x3(relu(n1(conv1x1(x))))))) + shortcut(x)), expansion 4."""
    expansion, depth = 4, 3

    def __init__(self, c_in, planes, stride, norm):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1, self.n1 = _conv_norm(norm, c_in, planes, 1)
        self.conv2, self.n2 = _conv_norm(norm, planes, planes, 3, stride)
        self.conv3, self.n3 = _conv_norm(norm, planes, c_out, 1)
        self.shortcut = _normed_shortcut(norm, c_in, c_out, stride)

    def forward(self, x):
        out = F.relu(self.n1(self.conv1(x)))
        out = F.relu(self.n2(self.conv2(out)))
        return F.relu(self.n3(self.conv3(out)) + self.shortcut(x))


# ----------------------------------------------------------------------------
# Fixup residual blocks (no activation norm)
# ----------------------------------------------------------------------------
def _scalar(value):
    return nn.Parameter(np.full(1, value, dtype=np.float32))


def _fixup_shortcut(norm, c_in, c_out, stride):
    if stride == 1 and c_in == c_out:
        return None
    return norms.conv_class(norm)(c_in, c_out, 1, stride=stride, bias=False)


class FixupBasicBlock(nn.Module):
    """Fixup's basic block: scalar biases around each conv and ReLU, a scalar multiplier."""
    expansion, depth = 1, 2

    def __init__(self, c_in, planes, stride, norm):
        super().__init__()
        conv_cls, c_out = norms.conv_class(norm), planes * self.expansion
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = (_scalar(0.0) for _ in range(4))
        self.scale = _scalar(1.0)
        self.conv1 = conv_cls(c_in, planes, 3, stride=stride, padding=1, bias=False)
        self.conv2 = conv_cls(planes, c_out, 3, padding=1, bias=False)
        self.shortcut = _fixup_shortcut(norm, c_in, c_out, stride)

    def branch_convs(self):
        return [self.conv1, self.conv2]

    def forward(self, x):
        out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = self.conv2(out + self.bias2a) * self.scale + self.bias2b
        identity = x if self.shortcut is None else self.shortcut(x + self.bias1a)
        return F.relu(out + identity)


class FixupBottleneck(nn.Module):
    """Fixup's bottleneck block (1x1, 3x3, 1x1 convs, expansion 4)."""
    expansion, depth = 4, 3

    def __init__(self, c_in, planes, stride, norm):
        super().__init__()
        conv_cls, c_out = norms.conv_class(norm), planes * self.expansion
        self.bias1a, self.bias1b, self.bias2a, self.bias2b, self.bias3a, self.bias3b = (
            _scalar(0.0) for _ in range(6))
        self.scale = _scalar(1.0)
        self.conv1 = conv_cls(c_in, planes, 1, bias=False)
        self.conv2 = conv_cls(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.conv3 = conv_cls(planes, c_out, 1, bias=False)
        self.shortcut = _fixup_shortcut(norm, c_in, c_out, stride)

    def branch_convs(self):
        return [self.conv1, self.conv2, self.conv3]

    def forward(self, x):
        out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = F.relu(self.conv2(out + self.bias2a) + self.bias2b)
        out = self.conv3(out + self.bias3a) * self.scale + self.bias3b
        identity = x if self.shortcut is None else self.shortcut(x + self.bias1a)
        return F.relu(out + identity)


FIXUP_CLOSINGS = ("multiplier", "gamma", "small-gamma")
FIXUP_OPTIONS = ("lr/10", "scaled")
FIXUP_PUBLISHED = "gamma,lr/10,scaled"     # Fixup as published, mapped onto gamma / g
FIXUP_DEFAULT = "small-gamma"              # WAConv2d and WNConv2d (see the module docstring)


class FixupConfig(namedtuple("FixupConfig", ["closing", "scalar_lr_factor", "scale_inner"])):
    """How a Fixup ResNet starts its residual branches (see the module docstring).

    closing           "multiplier", "gamma" or "small-gamma": what makes each branch start
                      closed (or nearly so)
    scalar_lr_factor  the Fixup scalars' learning rate as a fraction of the main one (1 or 0.1)
    scale_inner       whether the inner convs of a branch get Fixup's L^(-1/(2m-2))
    `str(cfg)` is the spec that `parse_fixup` reads back: "multiplier", "gamma,lr/10,scaled".
    """
    __slots__ = ()

    def __str__(self):
        opts = (["lr/10"] if self.scalar_lr_factor != 1 else []) + (
            ["scaled"] if self.scale_inner else [])
        return ",".join([self.closing] + opts)


def parse_fixup(spec):
    """'gamma,lr/10,scaled' -> FixupConfig('gamma', 0.1, True); a ValueError naming the valid
    closings and options otherwise.  A FixupConfig passes through."""
    if isinstance(spec, FixupConfig):
        return spec
    valid = (f"valid: one of {', '.join(FIXUP_CLOSINGS)}, optionally followed by "
             f"',lr/10' and/or ',scaled' (e.g. {FIXUP_PUBLISHED!r})")
    if not isinstance(spec, str):
        raise ValueError(f"invalid fixup spec {spec!r}: expected a string; {valid}")
    closing, *opts = [p.strip().lower() for p in spec.split(",")]
    if closing not in FIXUP_CLOSINGS:
        raise ValueError(f"invalid fixup spec {spec!r}: unknown closing {closing!r}; {valid}")
    for o in opts:
        if o not in FIXUP_OPTIONS or opts.count(o) > 1:
            raise ValueError(f"invalid fixup spec {spec!r}: bad option {o!r}; {valid}")
    return FixupConfig(closing, 0.1 if "lr/10" in opts else 1.0, "scaled" in opts)


def default_fixup(norm):
    """The Fixup spec `build` uses for `norm` when none is given: FIXUP_DEFAULT for WA and WN
    convs, Fixup as published (FIXUP_PUBLISHED) for plain convs."""
    if issubclass(norms.conv_class(norm), (WAConv2d, WNConv2d)):
        return FIXUP_DEFAULT
    return FIXUP_PUBLISHED


def _scale_filters_(conv, factor):
    """Multiply the effective weight of a conv by `factor`: its gamma (WA), g (WN) or raw
    weight (Conv2d) -- the parameter that carries the filter's length (module docstring)."""
    if isinstance(conv, WAConv2d):
        conv.gamma.data *= factor
    elif isinstance(conv, WNConv2d):
        conv.weight_g.data *= factor
    else:
        conv.weight.data *= factor


def fixup_scalars(model):
    """The Fixup scalar biases and multipliers of `model` ([] for a model without Fixup).

    Fixup's authors train these at lr/10 (their CIFAR script puts every parameter whose name
    holds "bias" or "scale" in groups with lr/10; that name filter also catches the
    classifier's bias, which here stays at the full rate: it is not one of Fixup's scalars).
    """
    out = []
    for m in model.modules():
        if isinstance(m, (FixupBasicBlock, FixupBottleneck)):
            out += [p for name, p in m.named_parameters(recurse=False)
                    if name.startswith("bias") or name == "scale"]
        elif isinstance(m, ResNet) and m.fixup:
            out += [m.bias1, m.bias2]
    return out


def fixup_scalar_lr_factor(model):
    """The Fixup scalars' learning rate as a fraction of the main rate (1.0 without Fixup)."""
    cfg = getattr(model, "fixup_config", None)
    return 1.0 if cfg is None else cfg.scalar_lr_factor


# ----------------------------------------------------------------------------
# ResNet
# ----------------------------------------------------------------------------
class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem, stages of `block`s, global average pooling, linear classifier.

    With an activation norm in `norm` the blocks are `block`; without one they are its Fixup
    version and the network is initialised by Fixup (`self.fixup` is True).
    """

    def __init__(self, block, num_blocks, stage_widths, norm="none", num_classes=10, width=1.0,
                 in_channels=3, fixup=None, init="kaiming"):
        super().__init__()
        self.fixup = norms.parse(norm).activation == "none"
        # The Fixup spec this net was built with (None when it has an activation norm).
        self.fixup_config = (parse_fixup(default_fixup(norm) if fixup is None else fixup)
                             if self.fixup else None)
        if self.fixup:
            block = {BasicBlock: FixupBasicBlock, Bottleneck: FixupBottleneck}[block]
        c = _ch(stage_widths[0], width)
        self.conv1, self.n1 = _conv_norm(norm, in_channels, c, 3)
        stages = []
        for i, (w, n) in enumerate(zip(stage_widths, num_blocks)):
            planes = _ch(w, width)
            blocks = []
            for j in range(n):
                blocks.append(block(c, planes, 2 if (i > 0 and j == 0) else 1, norm))
                c = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        if self.fixup:
            self.bias1, self.bias2 = _scalar(0.0), _scalar(0.0)
        _init_weights(self, init)
        if self.fixup:
            self._fixup_init(block, sum(num_blocks))

    def _fixup_init(self, block, num_branches):
        """Fixup's initialisation as `self.fixup_config` reads it (see the module docstring)."""
        cfg = self.fixup_config
        inner_factor = num_branches ** (-1.0 / (2 * block.depth - 2))
        for m in self.modules():
            if isinstance(m, (FixupBasicBlock, FixupBottleneck)):
                *inner, last = m.branch_convs()
                if cfg.scale_inner:
                    for conv in inner:
                        _scale_filters_(conv, inner_factor)
                if cfg.closing == "multiplier":
                    init.zeros_(m.scale)
                else:   # "gamma": the last conv's length 0; "small-gamma": L^(-1/2)
                    _scale_filters_(last, 0.0 if cfg.closing == "gamma" else num_branches ** -0.5)
        init.zeros_(self.fc.weight)
        init.zeros_(self.fc.bias)

    def forward(self, x):
        out = self.n1(self.conv1(x))
        out = F.relu(out + self.bias1 if self.fixup else out)
        out = self.pool(self.layers(out)).flatten(1)
        return self.fc(out + self.bias2 if self.fixup else out)


# ----------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------
_IMAGENET_WIDTHS = (64, 128, 256, 512)
_MODELS = {
    "plain8": lambda **kw: Plain8(**kw),
    "vgg11": lambda **kw: VGG(VGG_CONFIGS["vgg11"], **kw),
    "vgg16": lambda **kw: VGG(VGG_CONFIGS["vgg16"], **kw),
    "resnet18": lambda **kw: ResNet(BasicBlock, (2, 2, 2, 2), _IMAGENET_WIDTHS, **kw),
    "resnet34": lambda **kw: ResNet(BasicBlock, (3, 4, 6, 3), _IMAGENET_WIDTHS, **kw),
    "resnet50": lambda **kw: ResNet(Bottleneck, (3, 4, 6, 3), _IMAGENET_WIDTHS, **kw),
    "resnet101": lambda **kw: ResNet(Bottleneck, (3, 4, 23, 3), _IMAGENET_WIDTHS, **kw),
    "resnet152": lambda **kw: ResNet(Bottleneck, (3, 8, 36, 3), _IMAGENET_WIDTHS, **kw),
    "resnet20": lambda **kw: ResNet(BasicBlock, (3, 3, 3), (16, 32, 64), **kw),
}


def names():
    """The model names `build` accepts, sorted."""
    return sorted(_MODELS)


def build(name, norm="gn+wa", num_classes=10, width=1.0, in_channels=3,
          gn_groups=norms.GN_GROUPS, gn_min_channels=norms.GN_MIN_CHANNELS, fixup=None,
          init="kaiming"):
    """Build model `name` normalized by the spec `norm` (see `wa.norms`), weights initialised.

    name:        one of `names()`.
    norm:        a norm spec such as "gn+wa" (the default, as in wa-train), "wa", "bn", "none",
                 "wa[center]" (or a `wa.norms.NormConfig`, whose group rule then wins over the
                 two below).
    num_classes: outputs of the linear classifier.
    width:       multiplies every channel count (0.25 for quick CPU runs).
    gn_groups, gn_min_channels: the group rule of gn and bcn (`wa.norms.num_groups`); the
                 defaults are the GN paper's 32 groups, never fewer than 2 channels per group.
    fixup:       how a ResNet without an activation norm starts its residual branches, a spec
                 of `parse_fixup` such as "multiplier" or "gamma,lr/10,scaled"; None picks
                 `default_fixup(norm)`.  Checked always, used only by Fixup nets; the net's
                 `fixup_config` holds what it was built with.
    init:        "kaiming" (the paper's) or "pytorch" (PyTorch's default layer init); Fixup's
                 own values (zeros, scalings) are set after it.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(names())}")
    if not isinstance(norm, norms.NormConfig):   # a bad spec fails here, with the valid ones
        norm = norms.NormConfig(norm, gn_groups, gn_min_channels)
    if not width > 0:
        raise ValueError(f"width must be > 0 (it multiplies every channel count), got {width!r}")
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}: choose one of {', '.join(INITS)}")
    kwargs = dict(norm=norm, num_classes=int(num_classes), width=width, in_channels=in_channels,
                  init=init)
    if fixup is not None:
        fixup = parse_fixup(fixup)
        if name.startswith("resnet"):
            kwargs["fixup"] = fixup
    return _MODELS[name](**kwargs)
