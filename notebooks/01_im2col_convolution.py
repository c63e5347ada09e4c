# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Convolution as one matrix product: im2col and col2im
#
# WeightAlign starts from eq. (3): one conv output $x = \mathbf w \cdot \mathbf y$, a filter
# $\mathbf w$ dotted with the co-located patch $\mathbf y$ ($k \times k$ pixels of all $C$ input
# channels). Lay every patch out as a row of a matrix (**im2col**) and every filter as a column of a
# weight matrix: their product is the whole conv output, one eq. (3) per entry. A row's length,
# $k^2 C$, is the fan-in $n$ of eqs. (4)-(10), the length of the filter WA centres and scales. The
# backward pass needs the transpose of the layout (**col2im**).
#
# **Names.** Here, as in PyTorch, `x` is the conv input and `y` its output; the paper's eq. (3)
# calls the patch $\mathbf y$ and the output $x$, as notebooks 02-05 do. Symbols:
# [NOTATION.md](NOTATION.md); the kernel-row algorithm and the timings are in the appendix. The
# layout (`minigrad/ops/conv.py`):
#
#     cols = im2col(x)  has shape (N*Ho*Wo, kh*kw*C)
#     row  (n*Ho + ho)*Wo + wo      is output pixel (n, ho, wo): one patch, the paper's y
#     col  (i*kw + j)*C + c         is kernel tap (i, j) of input channel c
#     cols[row, col] = x_pad[n, c, ho*s + i*δ, wo*s + j*δ]     (s stride, δ dilation)
#
# **Stored outputs:** full mode (`WA_QUICK` unset), CPU, one BLAS thread, seed 0, a shared 2-core
# machine (timings depend on the load, printed below). `WA_QUICK=1` (the test suite) runs smaller
# sizes.

# %%
import os
# Timings below are single-threaded: with a multi-threaded BLAS on a machine where other programs
# hold some of the cores, the threads wait for each other and the numbers jump by 10x from run to
# run. Must be set before NumPy is imported; change to compare multi-threaded throughput.
BLAS_THREADS = "1"
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = BLAS_THREADS

import platform
import time

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

import minigrad as mg
import minigrad.functional as F
import _exercises as ex                     # the exercises' checkers (notebooks/_exercises.py)
from _quoted import quote                   # numbers the text quotes, asserted in full mode
from _show import table                     # aligned tables of numbers (notebooks/_show.py)
from wa import plotstyle

plotstyle.use()

QUICK = os.environ.get("WA_QUICK") == "1"   # quick mode: WA_QUICK=1; full mode: unset
SEED = 0
REPEATS = 2 if QUICK else 5
rng = np.random.default_rng(SEED)
load = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"   # other processes' share
print(f"mode: {'QUICK (WA_QUICK=1)' if QUICK else 'full'};  numpy {np.__version__};  "
      f"python {platform.python_version()};  {platform.machine()}, {os.cpu_count()} logical CPUs;  "
      f"load average {load};  BLAS threads {BLAS_THREADS}")
T0 = time.perf_counter()


def best_times(fns, repeats=REPEATS, budget=0.1 if QUICK else 2.0):
    '''Best wall-clock time of each function in the dict `fns`, in seconds.

    The functions are called in turn, round after round (at least `repeats` rounds, then more
    until `budget` seconds have passed, at most 100), so that a burst of load from other
    processes hits all of them alike; the minimum is the least disturbed run.'''
    times, start = {k: [] for k in fns}, time.perf_counter()
    while min(map(len, times.values())) < repeats or (time.perf_counter() - start < budget
                                                      and len(times[next(iter(fns))]) < 100):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


# %% [markdown]
# ## 1. The im2col matrix of a tiny input
#
# A 1x1x4x4 input whose pixels hold their own numbers 1..16 (so every entry of the matrix says which
# pixel it was copied from), and a 3x3 kernel with stride 1 and no padding: the output is 2x2, so the
# matrix has 4 rows (one per output pixel) and 9 columns (one per kernel tap).

# %%
x = mg.tensor(np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4))
cols = F.im2col(x, kernel_size=3).numpy()
print("input x[0, 0] (each pixel holds its number):\n", x.numpy()[0, 0].astype(int))
print("\nim2col(x, 3): rows = output pixels (ho, wo), columns = taps (i, j)\n", cols.astype(int))
assert cols.shape == (4, 9) and set(cols[0]) == {1, 2, 3, 5, 6, 7, 9, 10, 11}, "im2col layout changed"

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 2]})
colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
ax = axes[0]
ax.imshow(np.zeros((4, 4)), cmap="Greys", vmin=0, vmax=1)
for h in range(4):
    for w in range(4):
        ax.text(w, h, int(x.numpy()[0, 0, h, w]), ha="center", va="center", fontsize=12)
for r, (ho, wo) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    pad = 0.06 * (r + 1)
    ax.add_patch(Rectangle((wo - 0.5 + pad, ho - 0.5 + pad), 3 - 2 * pad, 3 - 2 * pad, fill=False,
                           ec=colors[r], lw=2.5, label=f"window of output ({ho}, {wo}) = row {r}"))
ax.set(title="Input 4x4: the four 3x3 receptive fields", xticks=range(4), yticks=range(4),
       xlabel="w (column)", ylabel="h (row)")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
ax = axes[1]
ax.imshow(np.zeros_like(cols), cmap="Greys", vmin=0, vmax=1, aspect="auto")
for r in range(cols.shape[0]):
    for c in range(cols.shape[1]):
        p = int(cols[r, c]) - 1
        ax.text(c, r, f"{p + 1}\n(h{p // 4},w{p % 4})", ha="center", va="center", fontsize=10,
                color=colors[r])
ax.set(title="im2col matrix (4 x 9): each entry is the input pixel it copies",
       xticks=range(9), xticklabels=[f"({i},{j})" for i in range(3) for j in range(3)],
       yticks=range(4), yticklabels=[f"row {r}: out ({r // 2},{r % 2})" for r in range(4)],
       xlabel="column = kernel tap (i, j)", ylabel="row = output pixel")
plt.tight_layout()
plt.show()

# %% [markdown]
# Pixel 6 (h1, w1) and pixel 11 (h2, w2), in the middle, appear in all four rows: the windows overlap,
# so the matrix holds $k^2 = 9$ entries per output pixel but only 16 distinct numbers. With zero
# padding (`padding=1`, "same" output size) the matrix has one row per input pixel and the entries
# that fall outside the image are zeros (shown as 0 below). With several channels, the channel
# index varies fastest along a row (tap $(i, j)$ of channel $c$ is column $(i k_w + j) C + c$); the
# second example encodes pixel $(c, h, w)$ as the number $100c + 10h + w + 1$:

# %%
print("padding=1: 16 rows x 9 columns (0 = padding)\n", F.im2col(x, 3, padding=1).numpy().astype(int))
c_, h_, w_ = np.meshgrid(np.arange(2), np.arange(3), np.arange(3), indexing="ij")
x2 = mg.tensor((100 * c_ + 10 * h_ + w_ + 1).reshape(1, 2, 3, 3).astype(np.float64))
cols2 = F.im2col(x2, 2).numpy().astype(int)
print("\n2 channels of 3x3, kernel 2x2: 4 rows x (2*2*2) columns; column labels (i, j, c):")
print("   ".join(f"({i},{j},{c})" for i in range(2) for j in range(2) for c in range(2)))
print(cols2)


# %% [markdown]
# **Exercise 1.1.** Write the shape of `F.im2col(x, k, stride, padding, dilation)` for an input of
# shape `(N, C, H, W)` (a `k x k` kernel); the checker compares it with `F.im2col` on five
# geometries, dilation included.

# %%
def im2col_shape(N, C, H, W, k, stride=1, padding=0, dilation=1):
    # YOUR CODE: return (rows, columns)
    raise NotImplementedError


# %%
ex.check("im2col_shape", ex.answer("im2col_shape", im2col_shape))

# %% [markdown]
# ## 2. The naive loop against im2col
#
# The definition of a (cross-correlation) convolution, one output value at a time:
#
# $$y[n, o, h_o, w_o] = b_o + \sum_{c, i, j} x_{pad}[n, c,\; h_o s + i \delta,\; w_o s + j \delta]\; w[o, c, i, j].$$
#
# With the filters flattened in the same $(i, j, c)$ order, $W_{mat}[(i k_w + j)C + c,\, o] =
# w[o, c, i, j]$, the sum over $(c, i, j)$ for every output pixel at once is
# `cols @ W_mat`, an $(N H_o W_o) \times (k_h k_w C)$ times $(k_h k_w C) \times O$ product whose rows are
# the output in NHWC order. Below: the loop, the explicit product, and `F.conv2d` on a few geometries
# (stride, padding, dilation).

# %%
def conv2d_naive(x, w, b=None, stride=1, padding=0, dilation=1):
    "The definition, one output value at a time (loops over n, o, ho, wo): the reference."
    N, _, H, W = x.shape
    O, _, kh, kw = w.shape
    s, p, d = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    Ho, Wo = (H + 2 * p - d * (kh - 1) - 1) // s + 1, (W + 2 * p - d * (kw - 1) - 1) // s + 1
    y = np.zeros((N, O, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for o in range(O):
            for ho in range(Ho):
                for wo in range(Wo):
                    patch = xp[n, :, ho * s:ho * s + d * (kh - 1) + 1:d, wo * s:wo * s + d * (kw - 1) + 1:d]
                    y[n, o, ho, wo] = (patch * w[o]).sum() + (0.0 if b is None else b[o])
    return y


def conv2d_by_hand(x, w, b, stride, padding, dilation):
    "im2col, one matrix product, reshape: what F.conv2d does (for groups = 1)."
    N, O, kh = x.shape[0], w.shape[0], w.shape[2]
    cols = F.im2col(mg.tensor(x), kh, stride, padding, dilation).numpy()
    w_mat = w.transpose(2, 3, 1, 0).reshape(-1, O)           # row (i*kw + j)*C + c, column o
    y = cols @ w_mat + b                                      # (N*Ho*Wo, O): NHWC order
    Ho = int(round(np.sqrt(y.shape[0] // N)))  # square inputs below  # noqa: RUF046 (NumPy 1: a float)
    return y.reshape(N, Ho, Ho, O).transpose(0, 3, 1, 2)


rows = []
for stride, padding, dilation in [(1, 0, 1), (1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 2)]:
    xa = rng.standard_normal((2, 3, 9, 9))
    wa_ = rng.standard_normal((4, 3, 3, 3))
    ba = rng.standard_normal(4)
    ref = conv2d_naive(xa, wa_, ba, stride, padding, dilation)
    hand = conv2d_by_hand(xa, wa_, ba, stride, padding, dilation)
    lib = F.conv2d(mg.tensor(xa), mg.tensor(wa_), mg.tensor(ba), stride, padding, dilation).numpy()
    rows.append([f"s={stride} p={padding} d={dilation}", str(ref.shape), np.abs(hand - ref).max(),
                 np.abs(lib - ref).max()])
table(["geometry", "output shape", "max |cols @ W_mat - loop|", "max |F.conv2d - loop|"], rows)
assert max(max(r[2], r[3]) for r in rows) < 1e-12, "im2col conv != loop (float64 rounding is ~1e-15)"

# %% [markdown]
# Identical to rounding. `F.conv2d` does the same product channels-last (a patch row is contiguous,
# and the result already *is* the output in NHWC memory), one batched product per group.
#
# ## 3. col2im is the adjoint of im2col
#
# im2col is linear: $\mathrm{cols} = A\,x$, where $A$ is a 0/1 matrix with one 1 per row-and-column
# entry of cols (the pixel it copies), or none (a padding zero). Its adjoint $A^\top$ sends every
# entry of a matrix back to the pixel it came from and **adds** the entries that share a pixel:
# that is `F.col2im`. The defining identity of the adjoint,
#
# $$\langle \mathrm{col2im}(c),\, x\rangle = \langle c,\, \mathrm{im2col}(x)\rangle
# \quad\text{for every } x \text{ and } c,$$
#
# checked with random $x$ and $c$ on several geometries:

# %%
rows = []
for (N, C, H, k, s, p, d) in [(2, 3, 7, 3, 1, 0, 1), (2, 3, 7, 3, 1, 1, 1), (1, 4, 8, 3, 2, 1, 1),
                              (2, 2, 9, 2, 3, 0, 1), (1, 3, 9, 3, 1, 2, 2)]:
    xr = rng.standard_normal((N, C, H, H))
    cr = rng.standard_normal(F.im2col(mg.tensor(xr), k, s, p, d).shape)
    lhs = (F.col2im(mg.tensor(cr), xr.shape, k, s, p, d).numpy() * xr).sum()
    rhs = (cr * F.im2col(mg.tensor(xr), k, s, p, d).numpy()).sum()
    rows.append([f"{N}x{C}x{H}x{H}", f"k={k} s={s} p={p} d={d}", lhs, rhs, abs(lhs - rhs) / abs(rhs)])
table(["input", "geometry", "<col2im(c), x>", "<c, im2col(x)>", "relative difference"], rows)
assert max(r[4] for r in rows) < 1e-12, "col2im is not the adjoint of im2col (float64 rounding)"

# %% [markdown]
# The matrix $A$ itself, for the 4x4 example of section 1, built by applying im2col to the 16 unit
# images (column $p$ of $A$ is `im2col` of the image that is 1 at pixel $p$). `col2im` agrees with
# multiplying by $A^\top$, and `col2im` of an all-ones matrix counts, for every pixel, how many
# windows contain it:

# %%
basis = np.eye(16).reshape(16, 1, 1, 4, 4)
A = np.stack([F.im2col(mg.tensor(e), 3).numpy().ravel() for e in basis], axis=1)   # (4*9, 16)
c = rng.standard_normal((4, 9))
print("A is", A.shape, "with", int(A.sum()), "ones;  max |col2im(c) - A^T c| =",
      np.abs(F.col2im(mg.tensor(c), (1, 1, 4, 4), 3).numpy().ravel() - A.T @ c.ravel()).max())
counts = F.col2im(mg.tensor(np.ones((4, 9))), (1, 1, 4, 4), 3).numpy()[0, 0]
counts_pad = F.col2im(mg.tensor(np.ones((16, 9))), (1, 1, 4, 4), 3, padding=1).numpy()[0, 0]
assert A.sum() == 36 and np.abs(F.col2im(mg.tensor(c), (1, 1, 4, 4), 3).numpy().ravel() - A.T @ c.ravel()).max() < 1e-12
assert counts[1, 1] == counts[2, 2] == 4 and counts[0, 0] == 1, "pixels 6 and 11 are in all four windows"

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [2.2, 1, 1]})
axes[0].imshow(A, cmap="Greys", aspect="auto")
axes[0].set(title="A: im2col as a 0/1 matrix (36 x 16)", xlabel="input pixel p = 4h + w",
            ylabel="entry of cols (row-major, 4 x 9)")
for ax, cnt, name in [(axes[1], counts, "padding 0"), (axes[2], counts_pad, "padding 1")]:
    im = ax.imshow(cnt, cmap="viridis", vmin=0, vmax=9)
    for h in range(4):
        for w in range(4):
            ax.text(w, h, int(cnt[h, w]), ha="center", va="center", color="w", fontsize=12)
    ax.set(title=f"col2im(ones), {name}", xlabel="w", ylabel="h", xticks=range(4), yticks=range(4))
fig.colorbar(im, ax=axes[2], label="windows containing the pixel")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Why that makes col2im the backward pass.** For any linear map $\mathrm{cols} = A x$ and a loss $L$,
# the chain rule gives $\partial L/\partial x_p = \sum_r (\partial L/\partial \mathrm{cols}_r)\,A_{rp}$,
# i.e. $\nabla_x L = A^\top \nabla_{\mathrm{cols}} L = \mathrm{col2im}(\nabla_{\mathrm{cols}} L)$: every
# pixel collects the gradients of all its copies. For conv2d, $Y = \mathrm{cols}\,W_{mat}$ gives
#
# $$\nabla_{W_{mat}} L = \mathrm{cols}^\top \nabla_Y L, \qquad
# \nabla_x L = \mathrm{col2im}\big(\nabla_Y L\; W_{mat}^\top\big),$$
#
# two more matrix products and one col2im. For stride 1 the input gradient is also a *convolution*:
# input pixel $a$ was read by output pixel $a + p - i\delta$ through tap $i$, so it receives
# $\sum_i g[a + p - i\delta]\,w[i]$, a stride-1 convolution of the upstream gradient with the kernel
# flipped in both spatial axes and its input/output channels swapped, with padding $\delta(k-1) - p$.
# `F.conv2d` computes it that way for stride 1 (reading memory in order is faster than col2im's
# scattered adds), and with col2im otherwise (Exercise 1.2). Checked against the autograd of
# `F.conv2d`, and with `mg.gradcheck` (float64 finite differences) on im2col and col2im:

# %%
N, C, H, O, k = 2, 3, 6, 4, 3
xt = mg.tensor(rng.standard_normal((N, C, H, H)), requires_grad=True)
wt = mg.tensor(rng.standard_normal((O, C, k, k)), requires_grad=True)
y = F.conv2d(xt, wt, padding=1)
g = rng.standard_normal(y.shape)                         # an upstream gradient dL/dy
y.backward(mg.tensor(g))

cols = F.im2col(mg.tensor(xt.numpy()), k, padding=1).numpy()
w_mat = wt.numpy().transpose(2, 3, 1, 0).reshape(-1, O)
g_rows = g.transpose(0, 2, 3, 1).reshape(-1, O)          # dL/dY in the product's (NHWC) row order
gx = F.col2im(mg.tensor(g_rows @ w_mat.T), xt.shape, k, padding=1).numpy()
gw = (cols.T @ g_rows).reshape(k, k, C, O).transpose(3, 2, 0, 1)
print("max |x.grad - col2im(dL/dY W_mat^T)| =", np.abs(np.asarray(xt.grad) - gx).max())
print("max |w.grad - cols^T dL/dY|          =", np.abs(np.asarray(wt.grad) - gw).max())
assert max(np.abs(np.asarray(xt.grad) - gx).max(), np.abs(np.asarray(wt.grad) - gw).max()) < 1e-10, \
    "conv2d backward != col2im / cols^T products (float64 rounding)"
for name, fn, inp in [("im2col", lambda t: F.im2col(t, 3, 2, 1), rng.standard_normal((2, 3, 5, 5))),
                      ("col2im", lambda t: F.col2im(t, (2, 3, 5, 5), 3, 2, 1), rng.standard_normal((18, 27)))]:
    mg.gradcheck(fn, [mg.tensor(inp, requires_grad=True)])
    print(f"mg.gradcheck({name}) passed")

# %% [markdown]
# **Exercise 1.2.** Write the input gradient of a stride-1 `F.conv2d(x, w, padding=p)` as one
# `F.conv2d` of the upstream gradient `g` (NumPy arrays in, a NumPy array out); the checker
# compares it with autograd on four geometries.

# %%
def conv_input_grad(g, w, padding):
    # YOUR CODE: flip w, swap its channel axes, choose the padding; one F.conv2d
    raise NotImplementedError


# %%
ex.check("conv_input_grad", ex.answer("conv_input_grad", conv_input_grad))

# %% [markdown]
# ## 4. What it costs in memory
#
# The matrix copies every pixel once per window that contains it:
#
# $$\mathrm{bytes(cols)} = N H_o W_o \cdot k_h k_w C \cdot \text{itemsize}, \qquad
# \frac{\mathrm{bytes(cols)}}{\mathrm{bytes}(x)} = k_h k_w\,\frac{H_o W_o}{H W}
# \;\approx\; \frac{k_h k_w}{s^2}.$$
#
# So a 3x3 "same" convolution holds a matrix 9 times the size of its input, and `conv2d` **keeps** it
# until the backward pass, because the weight gradient $\mathrm{cols}^\top\nabla_Y L$ needs it. A 1x1
# convolution with stride 1 costs nothing extra (the matrix is the input, seen channels-last).
# Formula and measurement (`.nbytes` of the `F.im2col` result, and of the matrix that the `Conv2d`
# op saved for backward), float32, for layers of the CIFAR ResNets at batch 128:

# %%
layers = [  # (name, N, C, H, k, stride, padding)
    ("resnet20 stage 1, 3x3", 128, 16, 32, 3, 1, 1),
    ("resnet20 stage 3, 3x3", 128, 64, 8, 3, 1, 1),
    ("stride-2 3x3 (downsampling)", 128, 32, 32, 3, 2, 1),
    ("1x1 projection, stride 2", 128, 32, 32, 1, 2, 0),
    ("1x1 conv, stride 1", 128, 64, 16, 1, 1, 0),
]
if QUICK:
    layers = [(name, 8, C, H, k, s, p) for name, _, C, H, k, s, p in layers]
rows = []
for name, N, C, H, k, s, p in layers:
    xm = mg.tensor(rng.standard_normal((N, C, H, H)).astype(np.float32), requires_grad=True)
    Ho = (H + 2 * p - k) // s + 1
    predicted = N * Ho * Ho * k * k * C * 4
    measured = F.im2col(xm, k, s, p).numpy().nbytes
    y = F.conv2d(xm, mg.tensor(rng.standard_normal((C, C, k, k)).astype(np.float32)), stride=s, padding=p)
    op = y.creator                                        # the Conv2d op, which keeps a matrix for backward
    rows_path = getattr(op, "uses_kernel_rows", False)    # the fast path's choice (appendix A.1)
    if rows_path:   # kw taps per grid position, plus (kh-1) grid rows
        Hq = H + p                                        # one shared zero border per row and image
        formula_saved, saved = (N * Hq * Hq + (k - 1) * Hq) * k * C * 4, op.patches.nbytes
    else:
        formula_saved, saved = predicted, op.cols.nbytes
    rows.append([name, f"{N}x{C}x{H}x{H}", xm.data.nbytes / 2 ** 20, predicted / 2 ** 20,
                 measured / 2 ** 20, "rows" if rows_path else "im2col", saved / 2 ** 20,
                 measured / xm.data.nbytes, k * k * Ho * Ho / (H * H)])
    assert saved == formula_saved, (name, saved, formula_saved)
    del xm, y, op
table(["layer", "input", "input MiB", "cols MiB (formula)", "cols MiB (measured)", "conv2d path",
       "saved by conv2d MiB", "ratio", "k^2 HoWo/(HW)"], rows)
for r in rows:   # exact byte counts: formula = measured; ratio = k^2 HoWo/(HW)
    assert r[3] == r[4] and abs(r[7] - r[8]) < 1e-12, r
    assert r[5] == "rows" or r[6] == r[4], r   # on the im2col path conv2d saves exactly cols

# %% [markdown]
# For a whole network the saved matrices add up: each 3x3 conv keeps about $9\times$ its input
# until backward. This is the classic price of im2col (Chellapilla et al. 2006; Caffe); the
# alternatives avoid the copy (direct or implicit-GEMM convolutions that index the input inside the
# matrix-product kernel, FFT and Winograd algorithms), at the cost of far more code than a reference
# implementation wants.


# %% [markdown]
# ## Appendix: the kernel-row path, and what im2col costs in time
#
# Symbols: $N$ images of $C$ channels and $H \times W$ pixels; $O$ filters of $k_h \times k_w$
# ($k \times k$) taps; stride $s$, padding $p$, dilation $\delta$; output $H_o \times W_o$;
# $W_q = W + p$ the length of a padded image row; $L$ the number of output positions the row path
# computes; $R$ its matrix of $k_w$ taps per position; $W_i$ kernel row $i$ of the weights as a
# $(k_w C \times O)$ matrix; GFLOP/s: $10^9$ floating point operations per second, where a conv
# costs $2 N H_o W_o \cdot O \cdot k_h k_w C$ (one multiply and one add per term of eq. 3).
#
# ### A.1. A third of the copy: the kernel-row path
#
# In the first row of section 4's table `conv2d` saved about a third of the matrix. For thin
# stride-1 layers it takes a second algorithm (`minigrad/fast/kernel_rows.py`): lay the input out
# as one long list of pixels, each image row followed by $p$ zeros and each image by $p$ zero rows
# (one border serves as the right padding of a row and the left padding of the next). Output pixel $t$ then reads, through kernel row
# $i$, the $k_w$ pixels that start at $t + i\,W_q$ (with $W_q = W + p$ the row length). So one matrix $R$
# with the $k_w$ taps of kernel row 0 per pixel serves all $k_h$ kernel rows, shifted by $i\,W_q$ rows:
# $Y = \sum_i R[iW_q : iW_q + L]\, W_i$, $k_h$ GEMMs on slices and a third of im2col's copying.
# The price: $Y$ also gets rows for the border positions, computed and thrown away (6 % extra
# work at 32x32, 27 % at 8x8, $(H+p)(W+p)/(HW) - 1$), so `conv2d` uses it only where it measured
# faster (`mg.use_fast(kernel_rows=...)` forces a choice). The tests check both paths against the
# naive loop.

# %%
for size, text in [(32, "6 %"), (8, "27 %")]:      # the border rows the row path computes, p = 1
    quote(f"extra rows of the row path at {size}x{size}", (size + 1) ** 2 / size ** 2 - 1, text, 0.005)


# %% [markdown]
# ### A.2. The naive loop against im2col
#
# The loop of section 2 performs the same $2 N H_o W_o\cdot O\cdot k_h k_w C$ floating point
# operations, but one small dot product per Python iteration; the im2col version hands them all to
# one BLAS matrix product.

# %%
sizes = [(1, 8, 8, 8), (2, 16, 16, 16), (4, 32, 16, 32)] if not QUICK else [(1, 4, 8, 4), (2, 8, 8, 8)]
rows = []
for N, C, H, O in sizes:
    xa = rng.standard_normal((N, C, H, H)).astype(np.float32)
    wa_ = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
    xt, wt = mg.tensor(xa), mg.tensor(wa_)
    with mg.no_grad():
        t = best_times({"naive": lambda: conv2d_naive(xa, wa_, padding=1),
                        "lib": lambda: F.conv2d(xt, wt, padding=1)}, budget=0.0 if QUICK else 1.0)
    t_naive, t_lib = t["naive"], t["lib"]
    flops = 2 * N * H * H * O * 9 * C
    rows.append([f"{N}x{C}x{H}x{H}, {O} filters 3x3", N * O * H * H, t_naive * 1e3, t_lib * 1e3,
                 t_naive / t_lib, flops / t_naive / 1e9, flops / t_lib / 1e9])
table(["layer", "loop iterations", "naive ms", "F.conv2d ms", "speed-up", "naive GFLOP/s",
       "conv2d GFLOP/s"], rows)
# "tens to hundreds of times faster", the loop below 1 GFLOP/s (quick: tiny layers, 2 repeats, >= 3x)
assert min(r[4] for r in rows) > (3 if QUICK else 10) and max(r[5] for r in rows) < 1, [r[4:6] for r in rows]
print(f"(load average after the measurement: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
      if hasattr(os, "getloadavg") else "")

# %% [markdown]
# ### A.3. F.conv2d against a plain matrix product of the same shape
#
# The best im2col can do is the speed of its matrix product. Below, `F.conv2d` (forward, and forward
# plus backward) against `F.matmul` of the matrices with the same shapes,
# $(N H_o W_o \times k^2 C)\,@\,(k^2 C \times O)$, i.e. the same number of floating point operations,
# $2 N H_o W_o\, k^2 C\, O$. The difference is the cost of building the im2col matrix (a strided copy),
# timed alone in the last column. Float32, 3x3 "same" convolutions, shapes of CIFAR layers; the
# four timings of a row are taken in interleaved rounds, so that they see the same machine load.

# %%
shapes = [(32, 16, 32, 16), (32, 32, 16, 32), (32, 64, 8, 64), (64, 64, 16, 64)]
if QUICK:
    shapes = [(4, 16, 16, 16), (4, 32, 8, 32)]
rows, bars = [], []
for N, C, H, O in shapes:
    xt = mg.tensor(rng.standard_normal((N, C, H, H)).astype(np.float32))
    wt = mg.tensor(rng.standard_normal((O, C, 3, 3)).astype(np.float32))
    M, K = N * H * H, 9 * C
    a = mg.tensor(rng.standard_normal((M, K)).astype(np.float32))
    b = mg.tensor(rng.standard_normal((K, O)).astype(np.float32))
    flops = 2 * M * K * O
    xg = mg.tensor(xt.numpy(), requires_grad=True)
    wg = mg.tensor(wt.numpy(), requires_grad=True)

    def fwd_bwd():
        F.conv2d(xg, wg, padding=1).sum().backward()

    def no_grad(fn):
        def run():
            with mg.no_grad():
                fn()
        return run

    t = best_times({"conv": no_grad(lambda: F.conv2d(xt, wt, padding=1)), "mm": no_grad(lambda: F.matmul(a, b)),
                    "cols": no_grad(lambda: F.im2col(xt, 3, padding=1)), "fb": fwd_bwd})
    t_conv, t_mm, t_cols, t_fb = t["conv"], t["mm"], t["cols"], t["fb"]
    name = f"{N}x{C}x{H}x{H} -> {O}"
    rows.append([name, f"{M}x{K} @ {K}x{O}", flops / t_conv / 1e9, flops / t_mm / 1e9,
                 3 * flops / t_fb / 1e9, t_conv * 1e3, t_mm * 1e3, t_cols * 1e3])
    bars.append((name, flops / t_conv / 1e9, flops / t_mm / 1e9, 3 * flops / t_fb / 1e9))
table(["conv (N x C x H x W -> O)", "GEMM shape", "conv2d GFLOP/s", "matmul GFLOP/s",
       "conv2d fwd+bwd GFLOP/s", "conv2d ms", "matmul ms", "im2col ms"], rows)
# the readings below, with wide bounds: timings on a shared machine move by tens of percent, and
# quick mode's small layers pay relatively more for the copy and the Python overhead
for r in rows:                   # timings: checked on the full run only (the tests run quick mode
    if not QUICK:                # on machines whose load nobody controls)
        assert 0.4 < r[2] / r[3] < 1.5 and 0.3 < r[4] / r[2] < 3, (r[0], r[2] / r[3])
print(f"(load average after the measurement: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
      if hasattr(os, "getloadavg") else "")

fig, ax = plt.subplots(figsize=(10, 4.5))
pos = np.arange(len(bars))
for k, (label, off) in enumerate([("F.conv2d forward", -0.27), ("F.matmul, same shape", 0.0),
                                  ("F.conv2d forward + backward (3x the flops)", 0.27)]):
    ax.bar(pos + off, [bar[k + 1] for bar in bars], width=0.27, label=label)
ax.set(xticks=pos, title="Throughput of conv2d against a plain matrix product",
       xlabel="layer (input N x C x H x W -> O filters, 3x3, padding 1)", ylabel="GFLOP/s")
ax.set_xticklabels([bar[0] for bar in bars], rotation=15)
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Reading the numbers (the stored output; they depend on the machine and its load):
#
# * the Python loop stays below a GFLOP/s; im2col makes the same arithmetic one BLAS call, tens to
#   hundreds of times faster, more so for larger layers;
# * `F.conv2d` comes close to a bare matrix product of the same shape. On the im2col path (the last
#   two rows) its time is about *matrix product + im2col*: the copy moves $k^2 = 9$ times the
#   input's bytes at memory speed. Where that copy dominates (few channels, the first two rows)
#   `conv2d` takes the kernel-row path of A.1, which copies a third as much;
# * forward plus backward runs at about the forward rate per flop: the backward pass is two products
#   of the same size (weight gradient, and for stride 1 the flipped-kernel convolution of
#   section 3).

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s ({'QUICK' if QUICK else 'full'} mode)")
