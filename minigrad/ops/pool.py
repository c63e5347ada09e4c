"""Pooling: max_pool2d, avg_pool2d and adaptive_avg_pool2d on NCHW inputs.

Notation as in ops/conv.py: x is (N, C, H, W), a k = (kh, kw) window moves with
stride s (default: s = k, non-overlapping) over the input padded by p, and
Ho = (H + 2p - kh) // s + 1 (floor, PyTorch's default ceil_mode=False).

Like im2col, max and average pooling loop over the kh*kw window offsets
(i, j): offset (i, j) sees the strided grid x_pad[:, :, i::s, j::s] of Ho x Wo
pixels, one whole-array operation per offset.  The backward adds each
offset's share of the gradient back onto the same grid.  The arrays are
handled through a channels-last view (N, H, W, C), so an input that a conv2d
stored channels-last keeps that memory layout (see ops/conv.py).

adaptive_avg_pool2d needs no loop at all: its bins are rectangles, so it is an
average over rows followed by an average over columns, two small matrix products.
"""
import numpy as np

from ..autograd import Function
from .checks import pair as _pair

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]


def _pool_geometry(x, kernel_size, stride, padding, who):
    if x.ndim != 4:
        raise ValueError(f"{who} expects a 4-D input (N, C, H, W), got shape {x.shape}; "
                         f"for a single image add a batch axis: x.reshape(1, *x.shape)")
    k = _pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        # PyTorch's rule: otherwise a window could lie entirely in the padding.
        raise ValueError(f"{who}: padding {p} must be at most half the kernel size {k}")
    H, W = x.shape[2:]
    out = ((H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1)
    if min(out) <= 0:
        raise ValueError(f"{who}: the input is {H}x{W} (with padding {H + 2 * p[0]}x{W + 2 * p[1]}), "
                         f"smaller than the kernel {k[0]}x{k[1]}: use a smaller kernel or more padding")
    return k, s, p, out


def _offsets(k, s, out):
    """(rows, columns) of every window offset (i, j), in row-major order: the strided
    grid of Ho x Wo pixels that offset reads."""
    for i in range(k[0]):
        for j in range(k[1]):
            yield slice(i, i + s[0] * (out[0] - 1) + 1, s[0]), slice(j, j + s[1] * (out[1] - 1) + 1, s[1])


def _padded(x_nhwc, p, value, xp):
    if p == (0, 0):
        return x_nhwc
    N, H, W, C = x_nhwc.shape
    out = xp.full((N, H + 2 * p[0], W + 2 * p[1], C), value, dtype=x_nhwc.dtype)
    out[:, p[0]:p[0] + H, p[1]:p[1] + W] = x_nhwc
    return out


class MaxPool2d(Function):
    """y = the maximum of each window (padding counts as -inf; a NaN wins and propagates).

    gx: each window's gradient goes to the one element that was its maximum.
    Ties go to the FIRST maximum in row-major order within the window (top row
    first, left to right), as in PyTorch's CPU kernel.  Overlapping windows
    (s < k) can pick the same pixel, whose gradient is then the sum.

    The forward keeps only the running maximum; the backward finds the winner
    again by scanning the offsets in the same order and taking, per window, the
    first element equal to the maximum (a `pending` mask stops later ties).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.args = kernel_size, stride, padding

    def forward(self, x):
        k, s, p, out = _pool_geometry(x, *self.args, who="max_pool2d")
        self.xt = _padded(x.transpose(0, 2, 3, 1), p, -np.inf, self.xp)   # channels-last view
        windows = (self.xt[:, rows, cols] for rows, cols in _offsets(k, s, out))
        best = next(windows).copy(order="K")       # "K": keep x's memory layout
        for window in windows:
            self.xp.maximum(best, window, out=best)
        self.best, self.geometry, self.x_shape = best, (k, s, p, out), x.shape
        return best.transpose(0, 3, 1, 2)

    def backward(self, gy):
        xp, (k, s, p, out), (N, C, H, W) = self.xp, self.geometry, self.x_shape
        gyt, best = gy.transpose(0, 2, 3, 1), self.best
        gx = xp.zeros((N, H + 2 * p[0], W + 2 * p[1], C), dtype=gy.dtype)
        has_nan = bool(xp.isnan(best).any())
        overlapping = s[0] < k[0] or s[1] < k[1]
        pending = None   # windows whose maximum has not been found yet
        for rows, cols in _offsets(k, s, out):
            window = self.xt[:, rows, cols]
            hit = window == best
            if has_nan:
                hit |= window != window                   # a NaN is the maximum
            if pending is None:
                pending = ~hit
            else:
                hit &= pending                            # a later tie loses
                pending ^= hit
            if overlapping:
                gx[:, rows, cols] += gyt * hit
            else:       # each pixel is in one window: write in place, no temporary
                xp.multiply(gyt, hit, out=gx[:, rows, cols])
        return gx[:, p[0]:p[0] + H, p[1]:p[1] + W].transpose(0, 3, 1, 2)


class AvgPool2d(Function):
    """y = the mean of each kh x kw window, padding counted as zeros
    (PyTorch's count_include_pad=True: always divide by kh*kw).

    gx: every element of a window receives gy / (kh*kw); overlapping windows add up.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.args = kernel_size, stride, padding

    def forward(self, x):
        k, s, p, out = _pool_geometry(x, *self.args, who="avg_pool2d")
        xt = _padded(x.transpose(0, 2, 3, 1), p, 0, self.xp)
        windows = (xt[:, rows, cols] for rows, cols in _offsets(k, s, out))
        total = next(windows).copy(order="K")
        for window in windows:
            total += window
        total /= k[0] * k[1]
        self.geometry, self.x_shape = (k, s, p, out), x.shape
        return total.transpose(0, 3, 1, 2)

    def backward(self, gy):
        k, s, p, out = self.geometry
        N, C, H, W = self.x_shape
        share = gy.transpose(0, 2, 3, 1) / (k[0] * k[1])
        gx = self.xp.zeros((N, H + 2 * p[0], W + 2 * p[1], C), dtype=gy.dtype)
        for rows, cols in _offsets(k, s, out):
            gx[:, rows, cols] += share
        return gx[:, p[0]:p[0] + H, p[1]:p[1] + W].transpose(0, 3, 1, 2)


def _adaptive_matrix(n_in, n_out, dtype, xp):
    """A[i, h] = 1 / |bin i| for the pixels h of bin i, else 0.

    Bin i covers [floor(i*n_in/n_out), ceil((i+1)*n_in/n_out)), PyTorch's rule;
    bins may overlap by a pixel when n_out does not divide n_in."""
    i = np.arange(n_out)
    start = (i * n_in) // n_out
    end = -((-(i + 1) * n_in) // n_out)  # ceil division
    h = np.arange(n_in)
    inside = (h >= start[:, None]) & (h < end[:, None])
    return xp.asarray(inside / (end - start)[:, None], dtype=dtype)


class AdaptiveAvgPool2d(Function):
    """y[n, c] = A_h @ x[n, c] @ A_w^T, where A_h (Ho, H) and A_w (Wo, W) average
    the rows and the columns of each bin (a bin is a rectangle, so averaging
    over it separates into rows then columns).  Output size 1 is the global
    average.  gx[n, c] = A_h^T @ gy[n, c] @ A_w (the transpose of a linear map).
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"adaptive_avg_pool2d expects a 4-D input (N, C, H, W), got shape "
                             f"{x.shape}; for a single image add a batch axis: x.reshape(1, *x.shape)")
        H, W = x.shape[2:]
        size = self.output_size
        size = (size, size) if size is None or isinstance(size, (int, np.integer)) else tuple(size)
        if len(size) != 2:
            raise TypeError(f"output_size must be an int or a pair (height, width), got {self.output_size!r}")
        # None keeps that dimension, as in PyTorch.
        size = tuple(n if o is None else o for o, n in zip(size, (H, W)))
        if min(size) < 1:
            raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {self.output_size!r}")
        self.a_h = _adaptive_matrix(H, size[0], x.dtype, self.xp)
        self.a_w = _adaptive_matrix(W, size[1], x.dtype, self.xp)
        self.x_shape = x.shape
        # Global average of a channels-last input (a conv's or a norm's output): the bin is
        # all of (H, W), so y = mean over the contiguous H*W rows of each sample, one
        # matmul with a row of 1/(H W), and gx = gy / (H W) everywhere, kept channels-last.
        self.global_cl = size == (1, 1) and x.transpose(0, 2, 3, 1).flags.c_contiguous
        if self.global_cl:
            N, C = x.shape[:2]
            avg = self.xp.full((1, 1, H * W), 1.0 / (H * W), dtype=x.dtype)
            return self.xp.matmul(avg, x.transpose(0, 2, 3, 1).reshape(N, H * W, C)) \
                .reshape(N, C, 1, 1)
        return self.a_h @ x @ self.a_w.T       # (Ho, H) @ (N, C, H, W) @ (W, Wo)

    def backward(self, gy):
        if self.global_cl:
            N, C, H, W = self.x_shape
            gx = self.xp.empty((N, H, W, C), dtype=gy.dtype)
            gx[...] = gy.reshape(N, 1, 1, C) * (1.0 / (H * W))
            return gx.transpose(0, 3, 1, 2)
        return self.a_h.T @ gy @ self.a_w


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over kernel_size windows of an NCHW input, as torch.nn.functional.max_pool2d.

    stride defaults to kernel_size; padding (at most half the kernel) is -inf."""
    return MaxPool2d(kernel_size, stride, padding)(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kernel_size windows, as torch.nn.functional.avg_pool2d
    (count_include_pad=True: zero padding counts in the mean)."""
    return AvgPool2d(kernel_size, stride, padding)(x)


def adaptive_avg_pool2d(x, output_size):
    """Average over output_size bins, as torch.nn.functional.adaptive_avg_pool2d;
    output_size=1 is the global average pool.  Any output size is supported."""
    return AdaptiveAvgPool2d(output_size)(x)
