"""The layers: thin Modules that hold parameters and call `minigrad.functional`.

Names, argument order, defaults, initialisation and repr follow PyTorch, so that
`nn.Conv2d(3, 16, 3, padding=1)` means the same thing in both libraries.  The
arithmetic (and its backward) lives in `minigrad.functional`; a layer only owns
the weights, the mode (train/eval) and the running statistics.
"""
import math

import numpy as np

from .. import functional as F
from ..ops.checks import pair
from . import init
from .module import Module, Parameter


def _empty(*shape):
    return Parameter(np.empty(shape, dtype=np.float32))


def _check_input(layer, x, ndims, channels=None, axis=1):
    """A clear error when x has the wrong number of dims or of channels for `layer`."""
    if x.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{layer!r} expects a {want} input, got shape {tuple(x.shape)}")
    if channels is not None and x.shape[axis] != channels:
        raise ValueError(f"{layer!r} expects {channels} channels in dim {axis}, got input of shape "
                         f"{tuple(x.shape)}")


def _bias_bound(weight):
    fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _reset_weight_and_bias(weight, bias):
    """PyTorch's default for Conv2d and Linear: kaiming_uniform_(a=sqrt(5)) for the weight,
    uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        b = _bias_bound(weight)
        init.uniform_(bias, -b, b)


# ----------------------------------------------------------------------------
# Convolution and linear
# ----------------------------------------------------------------------------
class Conv2d(Module):
    """2-D convolution over NCHW input; weight (out_channels, in_channels/groups, kh, kw).

    Weights start as kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    and so does the bias.  To convolve with a transformed weight (weight
    standardization, WeightAlign), subclass and override `forward` as
    `return self._conv_forward(x, transform(self.weight), self.bias)`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must "
                             f"both be divisible by groups ({groups})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        self.padding = pair(padding, "padding")
        self.dilation = pair(dilation, "dilation", 1)
        self.groups = groups
        self.weight = _empty(out_channels, in_channels // groups, *self.kernel_size)
        self.bias = _empty(out_channels) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        _reset_weight_and_bias(self.weight, self.bias)

    def _conv_forward(self, x, weight, bias):
        _check_input(self, x, (4,), self.in_channels)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x):
        return self._conv_forward(x, self.weight, self.bias)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features); PyTorch's initialisation."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty(out_features, in_features)
        self.bias = _empty(out_features) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        _reset_weight_and_bias(self.weight, self.bias)

    def forward(self, x):
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expects inputs whose last dim is {self.in_features}, got "
                             f"shape {tuple(x.shape)}")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


# ----------------------------------------------------------------------------
# Normalization layers
# ----------------------------------------------------------------------------
def _affine_parameters(layer, shape, affine, bias):
    """gamma = 1 and beta = 0 (eq. (2)) when `affine`; beta left out when bias=False."""
    layer.register_parameter("weight", Parameter(np.ones(shape, dtype=np.float32)) if affine else None)
    layer.register_parameter("bias", Parameter(np.zeros(shape, dtype=np.float32))
                             if affine and bias else None)


class _NormBase(Module):
    """Shared set-up of BatchNorm and InstanceNorm: affine gamma/beta and running statistics."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        _affine_parameters(self, (num_features,), affine, bias)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
            self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def _momentum(self):
        """The running-average factor for this step (momentum=None: a cumulative average)."""
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                return 1.0 / float(self.num_batches_tracked.item())
        return 0.0 if self.momentum is None else self.momentum

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _ndims = (4,)

    def forward(self, x):
        _check_input(self, x, self._ndims, self.num_features)
        momentum = self._momentum()
        # Batch statistics in training, or always when no running statistics are kept.
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch, momentum, self.eps)


class BatchNorm2d(_BatchNorm):
    """BatchNorm over (N, C, H, W): per channel, statistics over N, H, W (the paper's eqs. (1)-(2)).

    In training it normalizes with the batch's (biased) variance and updates the
    running buffers with the unbiased one; in eval it uses the running buffers.
    """
    _ndims = (4,)


class BatchNorm1d(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, L): per channel, statistics over N (and L)."""
    _ndims = (2, 3)


class InstanceNorm2d(_NormBase):
    """Per sample and channel, statistics over H, W.  By default no affine and no running stats."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias)

    def forward(self, x):
        _check_input(self, x, (4,), self.num_features)
        # Unlike BatchNorm, PyTorch's InstanceNorm never counts batches (momentum=None acts as 0).
        momentum = 0.0 if self.momentum is None else self.momentum
        use_input_stats = self.training or not self.track_running_stats
        return F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               use_input_stats, momentum, self.eps)


class GroupNorm(Module):
    """Per sample, statistics over each group of num_channels/num_groups channels (and H, W);
    then a per-channel affine.  num_groups=1 is LayerNorm over (C, H, W), num_groups=C is
    InstanceNorm."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, *, bias=True):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        _affine_parameters(self, (num_channels,), affine, bias)

    def forward(self, x):
        _check_input(self, x, (2, 3, 4), self.num_channels)
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LayerNorm(Module):
    """Per sample, statistics over the trailing dims `normalized_shape`; elementwise affine."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias)

    def forward(self, x):
        k = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - k:]) != self.normalized_shape or x.ndim < k:
            raise ValueError(f"{self!r} expects inputs ending in {self.normalized_shape}, got "
                             f"shape {tuple(x.shape)}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


# ----------------------------------------------------------------------------
# Parameter-free layers
# ----------------------------------------------------------------------------
class ReLU(Module):
    """max(x, 0).  `inplace` is accepted for PyTorch compatibility; minigrad never writes in place."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class _Pool2d(Module):
    """Shared by the pooling layers: a window, a stride (default: the window) and padding."""

    pool = None   # the functional op, set by each subclass

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x):
        _check_input(self, x, (4,))
        return self.pool(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over kernel_size windows; stride defaults to kernel_size (non-overlapping)."""

    pool = staticmethod(F.max_pool2d)

    def extra_repr(self):
        return super().extra_repr() + ", dilation=1, ceil_mode=False"


class AvgPool2d(_Pool2d):
    """Mean over kernel_size windows (zero padding counted in the mean, PyTorch's default)."""

    pool = staticmethod(F.avg_pool2d)


class AdaptiveAvgPool2d(Module):
    """Average to a fixed output size (PyTorch's bins); output_size=1 is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        _check_input(self, x, (4,))
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Flatten(Module):
    """Merge dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        if start > end:
            raise ValueError(f"{self!r}: start_dim comes after end_dim for a {x.ndim}-D input")
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1/(1-p);
    the identity in eval.  `inplace` is accepted for PyTorch compatibility and ignored."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Identity(Module):
    """Returns its input; takes (and ignores) any arguments, as PyTorch's does."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
