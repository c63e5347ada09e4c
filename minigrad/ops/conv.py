"""2-D convolution as one matrix product: im2col, col2im and conv2d.

Notation (PyTorch's)
--------------------
    x       input, NCHW: N images, C channels, H x W pixels
    weight  (O, C/G, kh, kw): O filters, G groups, a kh x kw kernel
    s, p, d stride, zero padding, dilation (each a (height, width) pair)
    Ho      = (H + 2p - d(kh - 1) - 1) // s + 1      (and Wo likewise)

The im2col matrix
-----------------
    cols = im2col(x)  has shape  (N*Ho*Wo, kh*kw*C)

    a ROW is one output pixel (n, ho, wo):      row = (n*Ho + ho)*Wo + wo
    a COLUMN is one tap (i, j, c) of the kernel: col = (i*kw + j)*C + c
    cols[row, col] = x_pad[n, c, ho*s + i*d, wo*s + j*d]

so a row is the receptive field of one output pixel, flattened kernel-row
first and channel last ("channels-last patches").  With the weight flattened
the same way, w_mat[(i*kw + j)*C + c, o] = weight[o, c, i, j], convolution is

    y[row, o] = sum_col cols[row, col] * w_mat[col, o],   i.e.  Y = cols @ w_mat,

one GEMM whose (N*Ho*Wo, O) result is the output in NHWC order.

col2im is the adjoint of im2col
-------------------------------
im2col is linear, and every entry of its matrix is a copy of one input pixel
(or of a zero from the padding).  Its adjoint (transpose) therefore sends each
entry of a matrix back to the pixel it was copied from and ADDS the entries
that share a pixel (windows overlap when s < kh):

    <col2im(c), x> == <c, im2col(x)>   for every x and c.

That is the backward pass of im2col: dL/dx = col2im(dL/dcols).

How they are built: offset (i, j) of the kernel reads the strided grid
x_pad[:, :, i*d : ... : s, j*d : ... : s] of Ho x Wo pixels.  im2col is one
copy of a strided *view* that lays these grids side by side (no data moves
until the copy); col2im loops over the kh*kw offsets and adds each column block
back onto its grid, one whole-array add per offset (overlapping windows must
add, which a view cannot do).  Neither loops over pixels, channels or images.

Memory layout
-------------
The public API is NCHW, as in PyTorch; inside, conv2d works channels-last: a
patch row of im2col is then contiguous in the input (c varies fastest), the GEMM
needs no transposed copies, and its result (N*Ho*Wo, O) *is* the output in NHWC
memory.  conv2d returns that memory as an NCHW-shaped strided view (PyTorch's
"channels_last" memory format): elementwise ops that follow keep the layout, and
the next conv2d finds its input already channels-last.

This module is the plain algorithm.  `minigrad.fast.conv` computes the same numbers
with less memory traffic; `minigrad.functional.conv2d` chooses between the two.
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from .checks import pair as _pair

__all__ = ["im2col", "col2im", "conv2d"]


# ----------------------------------------------------------------------------
# Argument checking
# ----------------------------------------------------------------------------
def _geometry(x_shape, kernel_size, stride, padding, dilation, who):
    """Checked (k, s, p, d) pairs and the output size (Ho, Wo) for an NCHW input shape."""
    if len(x_shape) != 4:
        raise ValueError(f"{who} expects a 4-D input (N, C, H, W), got shape {tuple(x_shape)}; "
                         f"for a single image add a batch axis: x.reshape(1, *x.shape)")
    k = _pair(kernel_size, "kernel_size", 1)
    s = _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    d = _pair(dilation, "dilation", 1)
    H, W = x_shape[2:]
    out = tuple((n + 2 * p_ - d_ * (k_ - 1) - 1) // s_ + 1
                for n, k_, s_, p_, d_ in zip((H, W), k, s, p, d))
    if min(out) <= 0:
        eff = tuple(d_ * (k_ - 1) + 1 for k_, d_ in zip(k, d))
        raise ValueError(f"{who}: the input is {H}x{W} (with padding {H + 2 * p[0]}x{W + 2 * p[1]}), "
                         f"smaller than the dilated kernel {eff[0]}x{eff[1]}, so the output would be "
                         f"{out[0]}x{out[1]}: use a larger input, more padding or a smaller kernel")
    return k, s, p, d, out


# ----------------------------------------------------------------------------
# The array-level kernels (channels-last, with an optional group axis)
# ----------------------------------------------------------------------------
def _pad_nhwc(x, p, xp):
    """x (N, H, W, C), any strides -> zero-padded (N, H+2ph, W+2pw, C), C-contiguous.
    Without padding the input is used as it is (no copy)."""
    if p == (0, 0):
        return x
    N, H, W, C = x.shape
    out = xp.zeros((N, H + 2 * p[0], W + 2 * p[1], C), dtype=x.dtype)
    out[:, p[0]:p[0] + H, p[1]:p[1] + W] = x
    return out


def _windows(x_pad, k, s, d, out):
    """The im2col matrix as a zero-copy strided view of shape (N, Ho, Wo, kh, kw, C).

    Element [n, ho, wo, i, j, c] is x_pad[n, ho*s + i*d, wo*s + j*d, c]: moving one
    step along ho moves s rows of the input, along i moves d rows, and so on, so
    the view's strides are linear combinations of the input's.  Works for any
    input strides (channels-last or not).
    """
    xp = get_array_module(x_pad)
    sn, sh, sw, sc = x_pad.strides
    shape = (x_pad.shape[0], out[0], out[1], k[0], k[1], x_pad.shape[3])
    strides = (sn, s[0] * sh, s[1] * sw, d[0] * sh, d[1] * sw, sc)
    return xp.lib.stride_tricks.as_strided(x_pad, shape=shape, strides=strides)


def _im2col_nhwc(x, k, s, p, d, out, groups=1):
    """x (N, H, W, C) -> cols (G, N*Ho*Wo, kh*kw*C/G), C-contiguous (one copy).

    The group axis comes first so that one batched matmul multiplies every
    group's columns by that group's filters."""
    xp = get_array_module(x)
    N, C = x.shape[0], x.shape[3]
    view = _group_windows(_windows(_pad_nhwc(x, p, xp), k, s, d, out), groups)
    return xp.ascontiguousarray(view).reshape(groups, N * out[0] * out[1], k[0] * k[1] * (C // groups))


def _group_windows(view, groups):
    """(N, Ho, Wo, kh, kw, C) -> (G, N, Ho, Wo, kh, kw, C/G), a view: C = (G, C/G)."""
    view = view.reshape(view.shape[:5] + (groups, view.shape[5] // groups))
    return view.transpose(5, 0, 1, 2, 3, 4, 6)


def _col2im_nhwc(cols, x_shape, k, s, p, d, out):
    """The adjoint of `_im2col_nhwc`: cols (G, N, Ho, Wo, kh, kw, C/G), any strides -> dx (N, H, W, C).

    For each kernel offset (i, j) the slice cols[..., i, j, :] holds the
    gradients of the Ho x Wo input pixels that offset read; add them back
    onto that strided grid of the padded input.  The loop has kh*kw steps.
    """
    xp = get_array_module(cols)
    N, H, W, C = x_shape
    G = cols.shape[0]
    dx = xp.zeros((N, H + 2 * p[0], W + 2 * p[1], G, C // G), dtype=cols.dtype)
    for i in range(k[0]):
        image_rows = slice(i * d[0], i * d[0] + s[0] * (out[0] - 1) + 1, s[0])
        for j in range(k[1]):
            image_columns = slice(j * d[1], j * d[1] + s[1] * (out[1] - 1) + 1, s[1])
            dx[:, image_rows, image_columns] += cols[:, :, :, :, i, j, :].transpose(1, 2, 3, 0, 4)
    return dx[:, p[0]:p[0] + H, p[1]:p[1] + W].reshape(N, H, W, C)


# ----------------------------------------------------------------------------
# im2col / col2im as differentiable ops (each is the other's backward)
# ----------------------------------------------------------------------------
class Im2Col(Function):
    """cols = im2col(x), shape (N*Ho*Wo, kh*kw*C);  gx = col2im(gcols) (the adjoint)."""

    def __init__(self, kernel_size, stride=1, padding=0, dilation=1):
        self.args = kernel_size, stride, padding, dilation

    def forward(self, x):
        self.x_shape = x.shape
        self.k, self.s, self.p, self.d, self.out = _geometry(x.shape, *self.args, who="im2col")
        return _im2col_nhwc(x.transpose(0, 2, 3, 1), self.k, self.s, self.p, self.d, self.out)[0]

    def backward(self, gcols):
        return _col2im_array(gcols, self.x_shape, self.k, self.s, self.p, self.d, self.out)


class Col2Im(Function):
    """x = col2im(cols) of shape x_shape;  gcols = im2col(gx) (the adjoint of the adjoint)."""

    def __init__(self, x_shape, kernel_size, stride=1, padding=0, dilation=1):
        self.x_shape = tuple(x_shape)
        self.k, self.s, self.p, self.d, self.out = _geometry(self.x_shape, kernel_size, stride,
                                                             padding, dilation, who="col2im")

    def forward(self, cols):
        N, C = self.x_shape[:2]
        expected = (N * self.out[0] * self.out[1], self.k[0] * self.k[1] * C)
        if cols.shape != expected:
            raise ValueError(f"col2im: for x_shape {self.x_shape} the matrix must have shape "
                             f"(N*Ho*Wo, kh*kw*C) = {expected}, got {cols.shape}")
        return _col2im_array(cols, self.x_shape, self.k, self.s, self.p, self.d, self.out)

    def backward(self, gx):
        return _im2col_nhwc(gx.transpose(0, 2, 3, 1), self.k, self.s, self.p, self.d, self.out)[0]


def _col2im_array(cols, x_shape, k, s, p, d, out):
    """Public layout (N*Ho*Wo, kh*kw*C) -> NCHW array."""
    N, C, H, W = x_shape
    cols7 = cols.reshape(1, N, out[0], out[1], k[0], k[1], C)
    return _col2im_nhwc(cols7, (N, H, W, C), k, s, p, d, out).transpose(0, 3, 1, 2)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """The (N*Ho*Wo, kh*kw*C) patch matrix of an NCHW input (see the module docstring).

    Row (n*Ho + ho)*Wo + wo is the receptive field of output pixel (n, ho, wo),
    ordered (kernel row i, kernel column j, channel c).  Differentiable."""
    return Im2Col(kernel_size, stride, padding, dilation)(x)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """The adjoint of im2col: add each entry of `cols` back onto the pixel of an
    input of shape `x_shape` (NCHW) it was copied from.  Differentiable."""
    return Col2Im(x_shape, kernel_size, stride, padding, dilation)(cols)


# ----------------------------------------------------------------------------
# conv2d
# ----------------------------------------------------------------------------
class Conv2d(Function):
    """y = conv2d(x, weight, bias), as torch.nn.functional.conv2d (a cross-correlation).

    Per group g, with cols = im2col(x) (M = N*Ho*Wo rows, K = kh*kw*C/G columns) and
    w_mat the weight as a (K, O/G) matrix, w_mat[(i*kw + j)*C/G + c, o] = weight[o, c, i, j]:
        Y       = cols @ w_mat + b                  (forward: one GEMM)
        g_w_mat = cols^T @ gY                       (each weight sees every patch it multiplied)
        g_b     = sum of gY over the rows           (the bias is added to every output pixel)
        g_cols  = gY @ w_mat^T,  gx = col2im(g_cols)  (each pixel gets back what its copies got)
    All groups at once: a batched matmul over a leading group axis.
    """

    def __init__(self, stride=1, padding=0, dilation=1, groups=1):
        self.stride, self.padding, self.dilation = stride, padding, dilation
        if not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"groups must be a positive int, got {groups!r}")
        self.groups = int(groups)

    def forward(self, x, weight, bias=None):
        G = self.groups
        check_conv2d_args(x, weight, bias, G)
        O, Cg, kh, kw = weight.shape
        self.geometry = _geometry(x.shape, (kh, kw), self.stride, self.padding, self.dilation,
                                  who="conv2d")
        k, s, p, d, out = self.geometry
        self.x_shape, self.w_shape = x.shape, weight.shape
        self.cols = _im2col_nhwc(x.transpose(0, 2, 3, 1), k, s, p, d, out, G)   # (G, M, K)
        self.w_mat = weight_matrix(weight, G)                                 # (G, K, O/G)
        Y = self.xp.matmul(self.cols, self.w_mat)                             # (G, M, O/G)
        if bias is not None:
            Y += bias.reshape(G, 1, O // G)
        return output_from_matrix(Y, x.shape[0], out)

    def backward(self, gy):
        G = self.groups
        k, s, p, d, out = self.geometry
        N, C, H, W = self.x_shape
        O, Cg, kh, kw = self.w_shape
        gY = gy.transpose(0, 2, 3, 1).reshape(-1, G, O // G).transpose(1, 0, 2)   # (G, M, O/G)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            g_cols = self.xp.matmul(gY, self.w_mat.transpose(0, 2, 1))            # (G, M, K)
            g_cols = g_cols.reshape(G, N, out[0], out[1], kh, kw, Cg)
            gx = _col2im_nhwc(g_cols, (N, H, W, C), k, s, p, d, out).transpose(0, 3, 1, 2)
        if self.needs_input_grad[1]:
            gw = weight_from_matrix(self.xp.matmul(self.cols.transpose(0, 2, 1), gY), self.w_shape)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = gY.sum(axis=1).reshape(O)
        return gx, gw, gb


def weight_matrix(weight, groups):
    """weight (O, C/G, kh, kw) -> w_mat (G, kh*kw*C/G, O/G), rows ordered as im2col's columns:
    w_mat[g, (i*kw + j)*C/G + c, o] = weight[g*O/G + o, c, i, j]  (a small copy)."""
    O, Cg, kh, kw = weight.shape
    return weight.reshape(groups, O // groups, Cg, kh, kw).transpose(0, 3, 4, 2, 1) \
                 .reshape(groups, kh * kw * Cg, O // groups)


def weight_from_matrix(g_wmat, w_shape):
    """The inverse of `weight_matrix`: (G, kh*kw*C/G, O/G) -> (O, C/G, kh, kw)."""
    O, Cg, kh, kw = w_shape
    G = g_wmat.shape[0]
    return g_wmat.reshape(G, kh, kw, Cg, O // G).transpose(0, 4, 3, 1, 2).reshape(O, Cg, kh, kw)


def output_from_matrix(Y, N, out):
    """The GEMM's (G, N*Ho*Wo, O/G) result as the (N, O, Ho, Wo) output, channels-last in
    memory (a view for one group)."""
    G, _, Og = Y.shape
    return Y.transpose(1, 0, 2).reshape(N, out[0], out[1], G * Og).transpose(0, 3, 1, 2)


def check_conv2d_args(x, weight, bias, groups):
    """A one-line error for each kind of wrong input to conv2d."""
    G = groups
    if x.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D input (N, C, H, W), got shape {x.shape}; "
                         f"for a single image add a batch axis: x.reshape(1, *x.shape)")
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D weight (out_channels, in_channels/groups, kh, kw), "
                         f"got shape {weight.shape}")
    C, (O, Cg) = x.shape[1], weight.shape[:2]
    if C % G or O % G:
        raise ValueError(f"conv2d: groups={G} must divide both the input channels ({C}) and the "
                         f"output channels ({O})")
    if Cg != C // G:
        raise ValueError(f"conv2d: the input has {C} channels, so with groups={G} the weight must "
                         f"have {C // G} input channels (weight.shape[1]), but weight has shape "
                         f"{weight.shape}, which expects {Cg * G} input channels")
    if bias is not None and bias.shape != (O,):
        raise ValueError(f"conv2d: bias must have shape ({O},) (one per output channel), "
                         f"got {bias.shape}")
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None and a.dtype != x.dtype:
            raise TypeError(f"conv2d: input is {x.dtype} but {name} is {a.dtype}; cast one of "
                            f"them (e.g. x.astype('{a.dtype}')) so both match")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of an NCHW input, as torch.nn.functional.conv2d, by the plain
    algorithm (`minigrad.functional.conv2d` is the one to call: it picks this or the fast one).

    x: (N, C, H, W); weight: (O, C/groups, kh, kw); bias: (O,) or None.
    stride, padding, dilation: int or (height, width) pair.  Returns (N, O, Ho, Wo),
    stored channels-last (see the module docstring)."""
    op = Conv2d(stride, padding, dilation, groups)
    return op(x, weight) if bias is None else op(x, weight, bias)
