"""Layers for WeightAlign and its relatives: drop-in convolutions and Batch-Channel Normalization.

    conv = WAConv2d(64, 128, 3, padding=1)     # instead of minigrad.nn.Conv2d(..., bias=False)

`WAConv2d`, `WSConv2d` and `WNConv2d` subclass `ReparamConv2d`, a `minigrad.nn.Conv2d`, take its
arguments in its order, and keep the raw weight in `.weight`.  On every forward the raw weight goes through the
re-parameterization first, so the optimizer updates the raw weight and the gradient flows back
through the hand-derived backward of `wa.functional`.  `effective_weight()` returns the weight
the convolution actually uses.
"""
import numpy as np

from minigrad import backend
from minigrad.autograd import increment_version
from minigrad.nn import Conv2d, Module, Parameter, init

from . import functional as WF

__all__ = ["ReparamConv2d", "WAConv2d", "WSConv2d", "WNConv2d", "BatchChannelNorm"]


class ReparamConv2d(Conv2d):
    """A Conv2d that convolves with `effective_weight()`, a differentiable function of its raw
    parameters, instead of with `.weight` itself.  Subclasses write `effective_weight`."""

    def effective_weight(self):
        raise NotImplementedError

    def forward(self, x):
        return self._conv_forward(x, self.effective_weight(), self.bias)


class WAConv2d(ReparamConv2d):
    """Conv2d whose weight is re-parameterized by WeightAlign, eq. (10), on every forward.

    Extra parameter `gamma` (out_channels,), the per-filter scale of eq. (10), starts at 1.
    No bias by default: a bias is the shift eq. (15) rules out (supplementary VII), and WA is
    meant to replace the mean-centring of a norm layer.  The raw weight starts as the paper's
    initialisation (III-C): N(0, 2/n) with n the fan-in, so at the start s = sqrt((n/2) Var + eps)
    is close to 1 and the re-parameterization is close to the identity.

    eps, alpha, center, scale: as in `wa.functional.weight_align` (alpha = 1/2 is eq. 9;
    center/scale switch off the components for the ablation of Table IV).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=False, eps=1e-5, alpha=0.5, center=True, scale=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        self.eps, self.alpha, self.center, self.scale = eps, alpha, center, scale
        self.gamma = Parameter(np.ones(out_channels, dtype=np.float32))

    def reset_parameters(self):
        init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        if self.bias is not None:
            init.zeros_(self.bias)
        if "gamma" in self._parameters:      # absent while Conv2d.__init__ runs
            init.ones_(self.gamma)

    def effective_weight(self):
        return WF.weight_align(self.weight, self.gamma, self.eps, self.alpha, self.center,
                               self.scale)

    def extra_repr(self):
        s = super().extra_repr()
        if self.alpha != 0.5:
            s += f", alpha={self.alpha}"
        if not (self.center and self.scale):
            s += f", center={self.center}, scale={self.scale}"
        return s


class WSConv2d(ReparamConv2d):
    """Conv2d with Weight Standardization (Qiao et al.): (w - mean) / (unbiased std + eps).

    Arguments, defaults (bias=True) and initialisation are Conv2d's, as in the authors' code.
    WS has no learnable scale: pair it with an activation norm (gn+ws, bcn+ws), which supplies
    the affine and brings the activation variance back (WS alone gives unit-variance filters,
    a gain of about n/2 per layer; see `wa.functional.WeightStandardize`).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, eps=1e-5):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        self.eps = eps

    def effective_weight(self):
        return WF.weight_standardize(self.weight, self.eps)


class WNConv2d(ReparamConv2d):
    """Conv2d with Weight Normalization (Salimans & Kingma): weight_g * weight / ||weight||.

    `weight` is the direction v, `weight_g` (out_channels,) the length g.  As in PyTorch's
    weight_norm, g starts at ||v|| so the layer starts as the plain Conv2d it replaces; after
    re-initialising `weight` yourself, call `reset_g()` to keep that property.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        self.weight_g = Parameter(np.ones(out_channels, dtype=np.float32))
        self.reset_g()

    def reset_g(self):
        """weight_g <- ||weight|| per filter, so that the effective weight equals `weight`."""
        xp = backend.get_array_module(self.weight.data)
        rows = self.weight.data.reshape(self.out_channels, -1)
        self.weight_g.data[...] = xp.sqrt((rows * rows).sum(axis=1)).astype(self.weight_g.dtype)
        increment_version(self.weight_g)     # an in-place change (see minigrad/autograd.py)

    def effective_weight(self):
        return WF.weight_norm(self.weight, self.weight_g)


class BatchChannelNorm(Module):
    """Batch-Channel Normalization (micro-batch version), arguments in GroupNorm's order.

    Per channel: normalize with running estimates of the mean and variance (updated towards
    the batch statistics in training, never differentiated through), apply a per-channel
    affine (`weight_bc`, `bias_bc`), then GroupNorm with `num_groups` groups and its own
    per-channel affine (`weight`, `bias`).  See `wa.functional.batch_channel_norm` for the
    update rule.  In eval mode the estimates are used as they are and not updated.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.momentum, self.affine = eps, momentum, affine
        # Affine of the estimate step (gamma_b, beta_b), then of the group norm (gamma_c, beta_c).
        for name, value in (("weight_bc", 1.0), ("bias_bc", 0.0), ("weight", 1.0), ("bias", 0.0)):
            if affine:
                setattr(self, name, Parameter(np.full(num_channels, value, np.float32)))
            else:
                self.register_parameter(name, None)
        self.register_buffer("running_mean", np.zeros(num_channels, np.float32))
        self.register_buffer("running_var", np.ones(num_channels, np.float32))

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{self!r} expects an input with {self.num_channels} channels in "
                             f"dim 1, got shape {tuple(x.shape)}")
        return WF.batch_channel_norm(x, self.num_groups, self.running_mean, self.running_var,
                                     self.weight_bc, self.bias_bc, self.weight, self.bias,
                                     self.training, self.momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.affine}")
