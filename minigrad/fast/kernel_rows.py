"""Stride-1 convolution with im2col over one kernel row only: the kernel-row algorithm.

im2col (minigrad/ops/conv.py) copies every input pixel kh*kw times.  In thin layers
(16-32 channels) that copying, and the GEMM reading the big matrix back, run at
memory speed, not at arithmetic speed.  For stride 1, kw copies per pixel are enough.

The grid.  Lay the input out as one long list of pixels on a grid of Hq x Wq pixels
per image, Hq = H + border and Wq = W + border: every image row is followed by
`border` zero pixels and every image by `border` zero rows (border = p, the padding,
for the usual convolutions).  The zeros after a row are the right padding of that
row and the left padding of the next, the zero rows after an image the bottom
padding of that image and the top padding of the next, so one border of zeros serves
both sides.  Pixel (n, h, w) sits at list entry `first_pixel` + t, with
t = (n*Hq + h)*Wq + w and first_pixel = p*Wq + p leading zeros (the top-left padding
of image 0).  Output pixel t reads, through kernel tap (i, j), list entry
t + i*d*Wq + j*d.

The patch matrix.  Let

    patches[t] = (x_flat[t], x_flat[t + d], ..., x_flat[t + (kw-1)*d])     (kw*C numbers)

be what kernel row 0 reads (one copy of a strided view).  Kernel row i reads the
same thing i*d grid rows further on, patches[t + i*d*Wq], so with L = N*Hq*Wq

    Y = sum_i patches[i*d*Wq : i*d*Wq + L] @ w_rows[i],   w_rows[i][j*C + c, o] = weight[o, c, i, j]

is kh GEMMs on row ranges of one matrix: no copy per kernel row.  Y has a row for
every grid position; those with h >= Ho or w >= Wo fall on the zero borders, read
pixels of the next row or image, and are thrown away.  That waste is
Hq*Wq / (Ho*Wo) - 1 of the arithmetic (3x3 "same" convolutions: 6% at 32x32, 13% at
16x16, 27% at 8x8), which is why conv2d only takes this algorithm where it measured
faster (`use_kernel_rows`).

Backward: the weight gradient of kernel row i is patches[i*d*Wq : i*d*Wq + L]^T @ gY_grid,
where gY_grid is the output gradient placed on the grid, zero at the thrown-away
positions.  The input gradient of a stride-1 convolution is itself a stride-1
convolution (minigrad/fast/conv.py), so it takes this algorithm too.
"""
import numpy as np

from ..backend import get_array_module
from . import kernel_rows_mode
from .buffer_pool import Kind, give, take

__all__ = ["kernel_row_grid", "use_kernel_rows", "kernel_row_patches", "conv_kernel_rows",
           "weight_grad_kernel_rows", "PATCHES"]

#: The pool kind of the patch matrices (handed back by their users once used).
PATCHES = Kind("kernel-row patches")


def kernel_row_grid(N, H, W, k, p, d):
    """(N, Hq, Wq): the grid of the kernel-row algorithm for an N x H x W input (see the
    module docstring).

    The zero border after each row (and image) must hold the padding of both sides
    (border >= p) and leave room for every output row (H + border >= Ho = H + 2p - d(k-1))."""
    border = [max(p_, 2 * p_ - d_ * (k_ - 1)) for k_, p_, d_ in zip(k, p, d)]
    return N, H + border[0], W + border[1]


def use_kernel_rows(in_channels, grid, out_size, *, kernel_width, stride, groups, xp=np):
    """Whether conv2d takes the kernel-row algorithm, by `minigrad.fast.kernel_rows_mode()`.

    It needs stride 1 and one group.  Under "auto" also NumPy arrays, a kernel at least 2
    wide, a thin input (<= 32 channels), and a grid (N, Hq, Wq) whose positions outnumber
    the output pixels by at most 15% (3x3 "same" convolutions on 32x32 and 16x16 maps):
    where a per-layer sweep and benchmarks/bench_convnet.py measured it faster than
    im2col.  It has not been measured on a GPU, so CuPy arrays keep im2col under "auto"."""
    mode = kernel_rows_mode()
    if mode == "never" or tuple(stride) != (1, 1) or groups != 1:
        return False
    grid_positions, outputs = grid[1] * grid[2], out_size[0] * out_size[1]
    return mode == "always" or (xp is np and kernel_width > 1 and in_channels <= 32
                                and grid_positions <= 1.15 * outputs)


def kernel_row_patches(x, k, p, d, grid):
    """x (N, H, W, C), any strides -> patches (N*Hq*Wq + (kh-1)*d*Wq, kw*C), C-contiguous.

    patches[t] holds list entries t, t+d, ..., t+(kw-1)*d of the input laid out on
    grid = (N, Hq, Wq) from `kernel_row_grid` (see the module docstring).  The matrix
    comes from the buffer pool: hand it back with give(patches, PATCHES)."""
    xp = get_array_module(x)
    N, H, W, C = x.shape
    _, Hq, Wq = grid
    L, first_pixel = N * Hq * Wq, p[0] * Wq + p[1]
    n_rows = L + (k[0] - 1) * d[0] * Wq
    # The input as one list of pixels: zero borders, leading zeros, and a zero tail for
    # the last rows' reads.  Only the pixels are written, so a pooled list keeps its zeros.
    kind = Kind("kernel-row input", zero_border=True, interior=(first_pixel, grid, H, W))
    flat = take(xp, kind, (max(n_rows + (k[1] - 1) * d[1], first_pixel + L), C), x.dtype)
    flat[first_pixel:first_pixel + L].reshape(N, Hq, Wq, C)[:, :H, :W] = x
    it = flat.itemsize
    # Entry [t, j, c] of the view is flat[t + j*d, c]: the kw taps of kernel row 0.
    view = xp.lib.stride_tricks.as_strided(flat, shape=(n_rows, k[1], C),
                                           strides=(C * it, d[1] * C * it, it))
    patches = take(xp, PATCHES, (n_rows, k[1] * C), x.dtype)
    patches.reshape(n_rows, k[1], C)[...] = view
    give(flat, kind)
    return patches


def conv_kernel_rows(patches, w_rows, grid, k, d, out):
    """y (N, Ho, Wo, O), C-contiguous: the convolution from `kernel_row_patches`' matrix.

    w_rows (kh, kw*C, O); grid = (N, Hq, Wq) from `kernel_row_grid`; out = (Ho, Wo)."""
    N, Hq, Wq = grid
    L = N * Hq * Wq
    Y = patches[:L] @ w_rows[0]
    for i in range(1, k[0]):                     # kernel rows: kh GEMMs, no copies
        shift = i * d[0] * Wq
        Y += patches[shift:shift + L] @ w_rows[i]
    y = Y.reshape(N, Hq, Wq, -1)[:, :out[0], :out[1]]    # drop the border positions
    return get_array_module(Y).ascontiguousarray(y)


def weight_grad_kernel_rows(patches, gy, grid, k, d):
    """dL/dw_rows (kh, kw*C, O) from the patch matrix and the output gradient gy (N, Ho, Wo, O)."""
    xp = get_array_module(patches)
    N, Hq, Wq = grid
    L = N * Hq * Wq
    Ho, Wo, O = gy.shape[1:]
    # gy on the grid, zeros at the thrown-away positions (they did not reach the loss).
    kind = Kind("kernel-row output gradient", zero_border=True, interior=(Ho, Wo))
    g_grid = take(xp, kind, (N, Hq, Wq, O), gy.dtype)
    g_grid[:, :Ho, :Wo] = gy
    g_flat = g_grid.reshape(L, O)
    gw = xp.empty((k[0], patches.shape[1], O), dtype=patches.dtype)
    for i in range(k[0]):
        shift = i * d[0] * Wq
        gw[i] = patches[shift:shift + L].T @ g_flat
    give(g_grid, kind)
    return gw
