"""The fast conv2d: the same numbers as minigrad/ops/conv.py, with less memory traffic.

Read `minigrad.ops.conv.Conv2d` first: this Function computes the same equations.
Three choices make it faster, each tested against the plain one:

- the kernel-row algorithm (kernel_rows.py) for thin stride-1 layers on large maps,
  which copies each input pixel kw times instead of kh*kw times;
- for stride 1 the input gradient computed as a convolution of gy with the flipped
  kernel, which writes its big matrix in the order its GEMM reads it (col2im's adds
  read with a stride);
- the large work arrays (patch matrices, padded inputs) taken from the buffer pool
  (buffer_pool.py) and handed back once used, so no step pays the page faults of
  fresh memory.
"""
from functools import lru_cache

from ..backend import get_array_module
from ..ops import conv as plain
from .buffer_pool import Kind, give, take
from .kernel_rows import (PATCHES, conv_kernel_rows, kernel_row_grid, kernel_row_patches,
                          use_kernel_rows, weight_grad_kernel_rows)

__all__ = ["Conv2d", "conv2d"]

#: The pool kind of im2col matrices.
COLS = Kind("im2col matrix")


@lru_cache(maxsize=None)
def _padded_input_kind(p):
    return Kind("padded input", zero_border=True, interior=p)


def _im2col_pooled(x, k, s, p, d, out, groups):
    """As `ops.conv._im2col_nhwc`, with the padded input and the (G, M, K) matrix from
    the pool (hand back cols.base with give(cols.base, COLS))."""
    xp = get_array_module(x)
    N, H, W, C = x.shape
    x_pad = x
    if p != (0, 0):
        x_pad = take(xp, _padded_input_kind(p), (N, H + 2 * p[0], W + 2 * p[1], C), x.dtype)
        x_pad[:, p[0]:p[0] + H, p[1]:p[1] + W] = x       # only the interior: the border stays 0
    view = plain._group_windows(plain._windows(x_pad, k, s, d, out), groups)
    cols = take(xp, COLS, view.shape, x.dtype)
    cols[...] = view
    if x_pad is not x:
        give(x_pad, _padded_input_kind(p))
    return cols.reshape(groups, N * out[0] * out[1], k[0] * k[1] * (C // groups))


class Conv2d(plain.Conv2d):
    """The fast conv2d (see the module docstring).

    `uses_kernel_rows` says which algorithm the forward took.  Saved for backward: with
    the kernel-row algorithm its patch matrix `patches` and the `grid` it lies on (see
    kernel_rows.py), otherwise the im2col matrix `cols`; both go back to the pool in
    `release`."""

    def forward(self, x, weight, bias=None):
        xp, G = self.xp, self.groups
        plain.check_conv2d_args(x, weight, bias, G)
        O, Cg, kh, kw = weight.shape
        self.geometry = plain._geometry(x.shape, (kh, kw), self.stride, self.padding,
                                        self.dilation, who="conv2d")
        k, s, p, d, out = self.geometry
        self.x_shape, self.w_shape = x.shape, weight.shape
        x_nhwc = x.transpose(0, 2, 3, 1)     # free when x came out of another conv2d
        self.w_mat = plain.weight_matrix(weight, G)                       # (G, K, O/G)
        self.grid = kernel_row_grid(x.shape[0], x.shape[2], x.shape[3], k, p, d)
        self.uses_kernel_rows = use_kernel_rows(Cg, self.grid, out, kernel_width=kw, stride=s,
                                                groups=G, xp=xp)
        if self.uses_kernel_rows:
            self.patches = kernel_row_patches(x_nhwc, k, p, d, self.grid)
            y = conv_kernel_rows(self.patches, self.w_mat.reshape(kh, kw * Cg, O), self.grid,
                                 k, d, out)
            if bias is not None:
                y += bias
            return y.transpose(0, 3, 1, 2)
        self.cols = _im2col_pooled(x_nhwc, k, s, p, d, out, G)          # (G, M, K)
        Y = xp.matmul(self.cols, self.w_mat)                             # (G, M, O/G)
        if bias is not None:
            Y += bias.reshape(G, 1, O // G)
        return plain.output_from_matrix(Y, x.shape[0], out)

    def backward(self, gy):
        xp, G = self.xp, self.groups
        k, s, p, d, out = self.geometry
        O = self.w_shape[0]
        # gY (G, M, O/G): free when gy is channels-last, as it is behind BN and ReLU.
        gy_nhwc = gy.transpose(0, 2, 3, 1)
        gY = gy_nhwc.reshape(-1, G, O // G).transpose(1, 0, 2)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gx = self._input_grad(gy_nhwc, gY).transpose(0, 3, 1, 2)
        if self.needs_input_grad[1]:
            g_wmat = (weight_grad_kernel_rows(self.patches, gy_nhwc, self.grid, k, d)
                      if self.uses_kernel_rows
                      else xp.matmul(self.cols.transpose(0, 2, 1), gY))      # (G, K, O/G)
            gw = plain.weight_from_matrix(g_wmat.reshape(G, -1, O // G), self.w_shape)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = gY.sum(axis=1).reshape(O)
        return gx, gw, gb

    def _input_grad(self, gy_nhwc, gY):
        """dL/dx, channels-last (N, H, W, C).

        In general: g_cols = gY @ w_mat^T, then gx = col2im(g_cols), as in the plain Conv2d.

        With stride 1 the same sums form a convolution, computed that way because it
        writes the big matrix once in the order the GEMM reads it.  Output pixel ho read
        input pixel a = ho + i*d - p through tap i, so input pixel a receives
        gy[a + p - i*d] * w[i].  Substituting i' = k-1-i:  gx[a] = sum_i' gy_pad[a + i'*d]
        * w[k-1-i'], with gy zero-padded by `grad_padding` = d(k-1) - p: a stride-1
        convolution of gy with the kernel flipped in both axes and its in/out channels
        swapped (it needs grad_padding >= 0, i.e. p <= d(k-1)).
        """
        xp, G = self.xp, self.groups
        k, s, p, d, out = self.geometry
        N, C, H, W = self.x_shape
        O, Cg, kh, kw = self.w_shape
        grad_padding = tuple(d_ * (k_ - 1) - p_ for k_, p_, d_ in zip(k, p, d))
        if s != (1, 1) or min(grad_padding) < 0:
            g_cols = xp.matmul(gY, self.w_mat.transpose(0, 2, 1))             # (G, M, K)
            g_cols = g_cols.reshape(G, N, out[0], out[1], kh, kw, Cg)
            return plain._col2im_nhwc(g_cols, (N, H, W, C), k, s, p, d, out)
        # w_flip[g, (i'*kw + j')*Og + o, c] = weight[g*Og + o, c, kh-1-i', kw-1-j']
        w_flip = self.w_mat.reshape(G, kh, kw, Cg, O // G)[:, ::-1, ::-1] \
                           .transpose(0, 1, 2, 4, 3).reshape(G, kh * kw * (O // G), Cg)
        grid = kernel_row_grid(N, out[0], out[1], k, grad_padding, d)
        if use_kernel_rows(O // G, grid, (H, W), kernel_width=kw, stride=s, groups=G, xp=xp):
            g_patches = kernel_row_patches(gy_nhwc, k, grad_padding, d, grid)
            gx = conv_kernel_rows(g_patches, w_flip.reshape(kh, kw * O, C), grid, k, d, (H, W))
            give(g_patches, PATCHES)
            return gx
        g_cols = _im2col_pooled(gy_nhwc, k, (1, 1), grad_padding, d, (H, W), G)  # (G, N*H*W, kh*kw*Og)
        gx = xp.matmul(g_cols, w_flip)                                        # (G, N*H*W, Cg)
        give(g_cols.base, COLS)
        return gx.transpose(1, 0, 2).reshape(N, H, W, C)

    def release(self):
        """Once its work arrays are no longer needed: they go back to the pool."""
        cols, patches = self.__dict__.get("cols"), self.__dict__.get("patches")
        if cols is not None:
            give(cols.base, COLS)
        if patches is not None:
            give(patches, PATCHES)
        super().release()


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """As `minigrad.ops.conv.conv2d`, by the fast Conv2d."""
    op = Conv2d(stride, padding, dilation, groups)
    y = op(x, weight) if bias is None else op(x, weight, bias)
    if y.creator is None:    # no graph recorded (no_grad, or no input needs a gradient):
        op.release()         # no backward will release the work arrays, so give them back now
    return y
