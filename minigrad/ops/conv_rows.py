"""Stride-1 convolution with im2col over the kernel's columns only (conv2d's "row path").

conv.py's im2col copies every input pixel kh*kw times.  In thin layers (16-32
channels) that copying, and the GEMM reading the big matrix back, run at memory
speed, not at arithmetic speed.  For stride 1, kw copies per pixel are enough.

Lay the input out as one long list of pixels on a grid of Hq x Wq pixels per image,
Hq = H + S and Wq = W + S: every image row is followed by S zero pixels and every
image by S zero rows (S = p, the padding, for the usual convolutions).  The zeros
after a row are the right padding of that row and the left padding of the next, the
zero rows after an image the bottom padding of that image and the top padding of the
next, so one border of zeros serves both sides.  Pixel (n, h, w) sits at list entry
lead + t with t = (n*Hq + h)*Wq + w, after lead = p*Wq + p leading zeros (the top-left
padding of image 0).  Output pixel t reads, through kernel tap (i, j), list entry
t + i*d*Wq + j*d.  Let

    R[t] = (x_flat[t], x_flat[t + d], ..., x_flat[t + (kw-1)*d])     (kw*C numbers)

be what kernel row 0 reads (one copy of a strided view).  Kernel row i reads the
same thing i*d grid rows further on, R[t + i*d*Wq], so with L = N*Hq*Wq

    Y = sum_i R[i*d*Wq : i*d*Wq + L] @ w_rows[i],    w_rows[i][j*C + c, o] = weight[o, c, i, j]

is kh GEMMs on row ranges of one matrix: no copy per kernel row.  Y has a row for
every grid position; those with h >= Ho or w >= Wo fall on the zero borders, read
pixels of the next row or image, and are thrown away.  That waste is
Hq*Wq / (Ho*Wo) - 1 of the arithmetic (3x3 "same" convolutions: 6% at 32x32, 13% at
16x16, 27% at 8x8), which is why conv2d only takes this path where it measured
faster (`use_rows`).

Backward: the weight gradient of kernel row i is R[i*d*Wq : i*d*Wq + L]^T @ gY_grid,
where gY_grid is the output gradient placed on the grid, zero at the thrown-away
positions.  The input gradient of a stride-1 convolution is itself a stride-1
convolution (Conv2d._input_grad), so it takes this path too.
"""
import numpy as np

from ..backend import get_array_module
from .buffer_pool import give, take

__all__ = ["row_grid", "use_rows", "row_patches", "conv_rows", "weight_grad_rows"]

#: "auto": the rule in `use_rows`; "always": every stride-1 convolution with one group;
#: "never": conv2d uses im2col only.  (The tests run conv2d under all three.)
MODE = "auto"


def row_grid(N, H, W, k, p, d):
    """(N, Hq, Wq): the grid of the row path for an N x H x W input (module docstring).

    The zero border S after each row (and image) must hold the padding of both sides
    (S >= p) and leave room for every output row (H + S >= Ho = H + 2p - d(k-1))."""
    S = [max(p_, 2 * p_ - d_ * (k_ - 1)) for k_, p_, d_ in zip(k, p, d)]
    return N, H + S[0], W + S[1]


def use_rows(in_channels, grid, out_size, kw, s, groups, xp=np):
    """Whether conv2d takes the row path.  It needs stride 1 and one group; under "auto"
    also NumPy arrays, a kernel at least 2 wide, a thin input (<= 32 channels), and a grid
    (Hq, Wq) that wastes at most 15% (3x3 "same" convolutions: 32x32 and 16x16 maps).
    Measured with a per-layer sweep and benchmarks/bench_convnet.py (batch 64, 2 threads):
    faster than im2col there, slower for 64 channels or on 8x8 maps.  It has not been
    measured on a GPU, so CuPy arrays keep im2col unless MODE is "always"."""
    if MODE not in ("auto", "always", "never"):
        raise ValueError(f"conv_rows.MODE must be 'auto', 'always' or 'never', got {MODE!r}")
    if MODE == "never" or s != (1, 1) or groups != 1:
        return False
    cells, outputs = grid[0] * grid[1], out_size[0] * out_size[1]
    return MODE == "always" or (xp is np and kw > 1 and in_channels <= 32
                                and cells <= 1.15 * outputs)


def row_patches(x, k, p, d, grid):
    """x (N, H, W, C), any strides -> R (N*Hq*Wq + (kh-1)*d*Wq, kw*C), C-contiguous.

    R[t] holds list entries t, t+d, ..., t+(kw-1)*d of the input laid out on
    grid = (N, Hq, Wq) from `row_grid` (see the module docstring).  R comes from the
    buffer pool: hand it back with give(R, ("rows",))."""
    xp = get_array_module(x)
    N, H, W, C = x.shape
    _, Hq, Wq = grid
    L, lead = N * Hq * Wq, p[0] * Wq + p[1]
    rows = L + (k[0] - 1) * d[0] * Wq
    # The input as one list of pixels: zero borders, leading zeros, and a zero tail for
    # the last rows' reads.  Only the pixels are written, so a pooled list keeps its zeros.
    kind = ("pad", "flat", lead, grid, H, W)
    flat = take(xp, kind, (max(rows + (k[1] - 1) * d[1], lead + L), C), x.dtype)
    flat[lead:lead + L].reshape(N, Hq, Wq, C)[:, :H, :W] = x
    it = flat.itemsize
    view = xp.lib.stride_tricks.as_strided(flat, shape=(rows, k[1], C),
                                           strides=(C * it, d[1] * C * it, it))
    R = take(xp, ("rows",), (rows, k[1] * C), x.dtype)
    R.reshape(rows, k[1], C)[...] = view
    give(flat, kind)
    return R


def conv_rows(R, w_rows, grid, k, d, out):
    """y (N, Ho, Wo, O), C-contiguous: the convolution from `row_patches`' R.

    w_rows (kh, kw*C, O); grid = (N, Hq, Wq) from `row_grid`; out = (Ho, Wo)."""
    N, Hq, Wq = grid
    L = N * Hq * Wq
    Y = R[:L] @ w_rows[0]
    for i in range(1, k[0]):                     # kernel rows: kh GEMMs, no copies
        shift = i * d[0] * Wq
        Y += R[shift:shift + L] @ w_rows[i]
    y = Y.reshape(N, Hq, Wq, -1)[:, :out[0], :out[1]]    # drop the border positions
    return get_array_module(Y).ascontiguousarray(y)


def weight_grad_rows(R, gy, grid, k, d):
    """dL/dw_rows (kh, kw*C, O) from R and the output gradient gy (N, Ho, Wo, O)."""
    xp = get_array_module(R)
    N, Hq, Wq = grid
    L = N * Hq * Wq
    Ho, Wo, O = gy.shape[1:]
    # gy on the grid, zeros at the thrown-away positions (they did not reach the loss).
    kind = ("pad", "grid", Ho, Wo)
    g_grid = take(xp, kind, (N, Hq, Wq, O), gy.dtype)
    g_grid[:, :Ho, :Wo] = gy
    G = g_grid.reshape(L, O)
    gw = xp.empty((k[0], R.shape[1], O), dtype=R.dtype)
    for i in range(k[0]):
        shift = i * d[0] * Wq
        gw[i] = R[shift:shift + L].T @ G
    give(g_grid, kind)
    return gw
