"""Stride-1 convolution with im2col over the kernel's columns only (conv2d's "row path").

conv.py's im2col copies every input pixel kh*kw times.  In thin layers (16-32
channels) that copying, and the GEMM reading the big matrix back, run at memory
speed, not at arithmetic speed.  For stride 1, kw copies per pixel are enough.

Flatten the zero-padded input (N, Hp, Wp, C) into one long list of pixels, pixel
t = (n*Hp + h)*Wp + w.  Output pixel (n, h, w) reads, through kernel tap (i, j),
padded pixel (h + i*d, w + j*d): list entry t + i*d*Wp + j*d.  Let

    R[t] = (x_flat[t], x_flat[t + d], ..., x_flat[t + (kw-1)*d])     (kw*C numbers)

be what kernel row 0 reads (one copy of a strided view).  Kernel row i reads the
same thing i*d image rows further on, R[t + i*d*Wp], so with L = N*Hp*Wp

    Y = sum_i R[i*d*Wp : i*d*Wp + L] @ w_rows[i],    w_rows[i][j*C + c, o] = weight[o, c, i, j]

is kh GEMMs on row ranges of one matrix: no copy per kernel row.  Y has a row for
every pixel t of the padded grid; rows with h >= Ho or w >= Wo read pixels that wrap
into the next image row or image, and are thrown away.  That waste is
Hp*Wp / (Ho*Wo) - 1 of the arithmetic (13% at 32x32 with padding 1, 27% at 16x16,
56% at 8x8), which is why conv2d only takes this path where it measured faster
(`use_rows`).

Backward: the weight gradient of kernel row i is R[i*d*Wp : i*d*Wp + L]^T @ gY_full,
where gY_full is the output gradient placed on the padded grid, zero on the rows
that were thrown away.  The input gradient of a stride-1 convolution is itself a
stride-1 convolution (Conv2d._input_grad), so it takes this path too.
"""
from ..backend import get_array_module
from .buffer_pool import give, take

__all__ = ["use_rows", "row_patches", "conv_rows", "weight_grad_rows"]

#: "auto": the rule in `use_rows`; "always": every stride-1 convolution with one group;
#: "never": conv2d uses im2col only.  (The tests run conv2d under all three.)
MODE = "auto"


def use_rows(in_channels, padded_size, out_size, kw, s, groups):
    """Whether conv2d takes the row path.  It needs stride 1 and one group; under "auto"
    also a kernel at least 2 wide, a thin input (<= 32 channels), and a padded grid that
    wastes at most 15% (32x32 maps with padding 1 waste 13%, 16x16 ones 27%).
    Measured (benchmarks/bench_convnet.py and a per-layer sweep, batch 64, 2 threads):
    about 10% faster than im2col for 16 and 32 channels on 32x32 maps, no faster for
    64, slower on 16x16 and 8x8 maps."""
    if MODE not in ("auto", "always", "never"):
        raise ValueError(f"conv_rows.MODE must be 'auto', 'always' or 'never', got {MODE!r}")
    if MODE == "never" or s != (1, 1) or groups != 1:
        return False
    grid, outputs = padded_size[0] * padded_size[1], out_size[0] * out_size[1]
    return MODE == "always" or (kw > 1 and in_channels <= 32 and grid <= 1.15 * outputs)


def row_patches(x, k, p, d):
    """x (N, H, W, C), any strides -> R (N*Hp*Wp + (kh-1)*d*Wp, kw*C), C-contiguous.

    R[t] holds padded pixels t, t+d, ..., t+(kw-1)*d of the flattened padded input
    (see the module docstring).  R comes from the buffer pool: hand it back with
    give(R, "rows")."""
    xp = get_array_module(x)
    N, H, W, C = x.shape
    Hp, Wp = H + 2 * p[0], W + 2 * p[1]
    L = N * Hp * Wp
    rows = L + (k[0] - 1) * d[0] * Wp
    # The padded input as one list of pixels, with a zero tail for the last rows' reads.
    flat = take(xp, ("pad", "flat", p), (rows + (k[1] - 1) * d[1], C), x.dtype)
    flat[:L].reshape(N, Hp, Wp, C)[:, p[0]:p[0] + H, p[1]:p[1] + W] = x
    it = flat.itemsize
    view = xp.lib.stride_tricks.as_strided(flat, shape=(rows, k[1], C),
                                           strides=(C * it, d[1] * C * it, it))
    R = take(xp, ("rows",), (rows, k[1] * C), x.dtype)
    R.reshape(rows, k[1], C)[...] = view
    give(flat, ("pad", "flat", p))
    return R


def conv_rows(R, w_rows, grid, k, d, out):
    """y (N, Ho, Wo, O), C-contiguous: the convolution from `row_patches`' R.

    w_rows (kh, kw*C, O); grid = (N, Hp, Wp) the padded input; out = (Ho, Wo)."""
    N, Hp, Wp = grid
    L = N * Hp * Wp
    Y = R[:L] @ w_rows[0]
    for i in range(1, k[0]):                     # kernel rows: kh GEMMs, no copies
        shift = i * d[0] * Wp
        Y += R[shift:shift + L] @ w_rows[i]
    y = Y.reshape(N, Hp, Wp, -1)[:, :out[0], :out[1]]    # drop the wrapped rows
    return get_array_module(Y).ascontiguousarray(y)


def weight_grad_rows(R, gy, grid, k, d):
    """dL/dw_rows (kh, kw*C, O) from R and the output gradient gy (N, Ho, Wo, O)."""
    xp = get_array_module(R)
    N, Hp, Wp = grid
    L = N * Hp * Wp
    Ho, Wo, O = gy.shape[1:]
    # gy on the padded grid, zeros on the thrown-away rows (they did not reach the loss).
    kind = ("pad", "grid", Ho, Wo)
    g_full = take(xp, kind, (N, Hp, Wp, O), gy.dtype)
    g_full[:, :Ho, :Wo] = gy
    G = g_full.reshape(L, O)
    gw = xp.empty((k[0], R.shape[1], O), dtype=R.dtype)
    for i in range(k[0]):
        shift = i * d[0] * Wp
        gw[i] = R[shift:shift + L].T @ G
    give(g_full, kind)
    return gw
