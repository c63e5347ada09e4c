# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · From BatchNorm to WeightAlign, one equation at a time
#
# BatchNorm keeps every channel at mean 0 and variance 1 by *measuring* the mini-batch. WeightAlign
# (WA) gets the same from the **weights alone**: write the channel's mean and variance as functions
# of the filter, and choose the filter so they come out right. We follow eqs. (1)-(14) and check
# each step by Monte Carlo. Symbols: [NOTATION.md](NOTATION.md); im2col: notebook 01.
#
# Two settings are kept apart, because they do not always agree: **the paper's model**, in which
# weights are random, independent of the inputs, and expectations run over both (eqs. (4)-(8));
# and **the network**, in which each channel has *one fixed filter*, exactly centred by WA, and
# statistics run over images and pixels.
#
# **In short** (stored full run): in the paper's model every equation holds. In the network WA
# centres every channel (drift 0.01-0.04 std, against 0.5-1 for Kaiming), but eq. (8)'s "variance
# kept" becomes "variance times $1-1/\pi\approx0.68$ per layer" (section 4), plus a per-channel
# correlation term (7c) and a small skew per channel (8). $\gamma$ starts at 1, so at
# initialisation the factor compounds from layer to layer; section 9 shows what offsets it.
#
# **Stored outputs:** full mode (`WA_QUICK` unset), CPU, seed 0; `WA_QUICK=1` (the test suite)
# uses fewer samples and smaller inputs.

# %%
import math
import os
import time

import numpy as np
import matplotlib.pyplot as plt

import minigrad as mg
import minigrad.functional as F
import wa
import wa.functional as WF
import _exercises as ex                     # the exercises' checkers (notebooks/_exercises.py)
from _quoted import quote                   # numbers the text quotes, asserted in full mode
from _show import table                     # aligned tables of numbers (notebooks/_show.py)
from wa import plotstyle

plotstyle.use()

QUICK = os.environ.get("WA_QUICK") == "1"   # quick mode: WA_QUICK=1; full mode: unset
SEED = 0
S_MC = 20_000 if QUICK else 200_000      # Monte Carlo draws for the one-unit checks (eqs. 3-8)
N_FAN = 64 if QUICK else 144             # fan-in n of one filter there (144 = 3*3*16)
S_DENSE = 200 if QUICK else 1_000        # samples through the paper's model of a deep net
N_DENSE = 64 if QUICK else 128           # its width (= fan-in of every layer)
N_NET, HW = (8, 16) if QUICK else (64, 32)   # plain8 (Fig. 2's net) on N(0,1) input of N x 3 x HW x HW
LAYERS = 7                               # conv layers in plain8

rng = np.random.default_rng(SEED)
print(f"mode: {'QUICK (WA_QUICK=1)' if QUICK else 'full'};  numpy {np.__version__};  seed {SEED}")
print(f"one-unit Monte Carlo: {S_MC} draws, fan-in n = {N_FAN}")
print(f"paper's model of a deep net: {S_DENSE} samples, width {N_DENSE}, {LAYERS} layers")
print(f"plain8: input {N_NET} x 3 x {HW} x {HW} of N(0, 1), 64 channels, {LAYERS} conv layers")
T0 = time.perf_counter()


def skew(a, axis=None):
    "Sample skewness E[(a - mean)^3] / std^3 (0 for a symmetric distribution)."
    d = a - a.mean(axis=axis, keepdims=True)
    return (d ** 3).mean(axis=axis) / (d ** 2).mean(axis=axis) ** 1.5


# %% [markdown]
# ## 1. BatchNorm, eqs. (1)-(2)
#
# For one channel $x$ of a conv layer, BatchNorm takes the mini-batch mean $\mu_B$ and (biased)
# standard deviation $\sigma_B$ over the batch and all pixels, and returns
#
# $$\hat x = \frac{x-\mu_B}{\sigma_B} \quad (1), \qquad r = \gamma\,\hat x + \beta \quad (2).$$
#
# Below: a conv layer with non-centred filters applied to ReLU outputs gives channels with their own
# offsets and scales; `F.batch_norm` (with `eps=0`, so that it is eq. (1) exactly) puts each at mean
# $\beta$ and standard deviation $\gamma$. BN gets this *exactly*, for every batch, because it measures.
# The price is the dependence on the batch: the rest of the notebook asks how much of it the
# weights alone can deliver.

# %%
y = F.relu(mg.tensor(rng.standard_normal((16, 8, 8, 8))))        # inputs after a ReLU: all >= 0
w = mg.tensor(rng.normal(0.05, 0.1, (4, 8, 3, 3)))                # filters with a nonzero mean
x = F.conv2d(y, w, padding=1)                                      # 4 channels, each with an offset
gamma = mg.tensor([1.0, 2.0, 0.5, 1.5], dtype=np.float64)          # the input's dtype, as
beta = mg.tensor([0.0, 1.0, -1.0, 0.5], dtype=np.float64)          # every norm requires
r = F.batch_norm(x, None, None, gamma, beta, training=True, eps=0.0)

xa = x.numpy()
mu_B, sigma_B = xa.mean(axis=(0, 2, 3)), xa.std(axis=(0, 2, 3))
x_hat = (xa - mu_B[:, None, None]) / sigma_B[:, None, None]        # eq. (1), by hand
r_hand = gamma.numpy()[:, None, None] * x_hat + beta.numpy()[:, None, None]   # eq. (2)
print("max |F.batch_norm - eqs. (1)-(2) by hand| =", np.abs(r.numpy() - r_hand).max())
table(["channel", "mu_B", "sigma_B", "mean x_hat", "std x_hat", "mean r", "beta", "std r", "gamma"],
      [[c, mu_B[c], sigma_B[c], x_hat[:, c].mean(), x_hat[:, c].std(), r.numpy()[:, c].mean(),
        beta.numpy()[c], r.numpy()[:, c].std(), gamma.numpy()[c]] for c in range(4)])
assert np.abs(r.numpy() - r_hand).max() < 1e-12, "F.batch_norm != eqs. (1)-(2) (float64 rounding)"
assert np.allclose(r.numpy().mean(axis=(0, 2, 3)), beta.numpy(), atol=1e-12) and \
    np.allclose(r.numpy().std(axis=(0, 2, 3)), gamma.numpy(), rtol=1e-12), "BN: mean beta, std gamma"

# %% [markdown]
# ## 2. A conv output is a dot product, eq. (3)
#
# One output value of a conv layer is the dot product of the filter with the patch of inputs it
# covers, $x = \mathbf w\cdot\mathbf y = \sum_{i=1}^{n} w_i y_i$, with $n = k\cdot k\cdot C_{in}$ the
# fan-in (3). `F.im2col` lays out every such patch as one row of a matrix (notebook 01 draws it), so a
# whole conv layer is one matrix product. Everything below is about the mean and variance of such a
# sum.

# %%
cols = F.im2col(y, 3, padding=1).numpy()               # (N*H*W, n): one row per output pixel
w_rows = w.numpy().transpose(0, 2, 3, 1).reshape(4, -1)  # each filter in im2col's (i, j, c) order
n_img, ho, wo, o = 3, 2, 5, 1
row = (n_img * 8 + ho) * 8 + wo
print(f"n = {cols.shape[1]} inputs per output;  conv2d output x[{n_img},{o},{ho},{wo}] = "
      f"{xa[n_img, o, ho, wo]:.6f},  patch . filter = {cols[row] @ w_rows[o]:.6f}")
print("all outputs at once, max |im2col @ filters - conv2d| =",
      np.abs(cols @ w_rows.T - xa.transpose(0, 2, 3, 1).reshape(-1, 4)).max())
assert np.abs(cols @ w_rows.T - xa.transpose(0, 2, 3, 1).reshape(-1, 4)).max() < 1e-12, "eq. (3)"


# %% [markdown]
# ## 3. Mean and variance through the weights, eqs. (4)-(5), under the paper's model
#
# If the $n$ weights $w_i$ are i.i.d., the $n$ inputs $y_i$ are i.i.d., and weights and inputs are
# independent, then $E[w_i y_i] = E[w]E[y]$ and $E[(w_i y_i)^2] = E[w^2]E[y^2]$, and the $n$ terms of
# (3) are independent, so
#
# $$\mu = E[x] = n\,E[w]\,E[y] \quad (4),\qquad
# \sigma^2 = \mathrm{Var}[x] = n\left(E[w^2]E[y^2] - E[w]^2E[y]^2\right) \quad (5).$$
#
# Monte Carlo in exactly that model: every draw $s$ gets its *own* filter $\mathbf w_s$ and its own
# inputs $\mathbf y_s$ (ReLU of a standard normal, as a ReLU network feeds its layers), and
# $x_s = \mathbf w_s\cdot\mathbf y_s$ is one batched `F.matmul`. The predictions use the moments of
# the drawn $w$ and $y$; "s.e." is the Monte Carlo standard error of the measured value.

# %%
def dot_fresh(w, y):
    "x_s = w_s . y_s for every draw s (eq. 3), a fresh filter per draw: one batched matmul."
    return F.matmul(mg.tensor(w[:, None, :]), mg.tensor(y[:, :, None])).numpy()[:, 0, 0]


def se_mean(x):
    return x.std() / np.sqrt(x.size)


def se_var(x):
    return ((x - x.mean()) ** 2).std() / np.sqrt(x.size)


y = F.relu(mg.tensor(rng.standard_normal((S_MC, N_FAN)))).numpy()
Ey, Ey2, Vy = y.mean(), (y ** 2).mean(), y.var()
print(f"inputs y = relu(N(0,1)): E[y] = {Ey:.4f} (1/sqrt(2 pi) = {1/np.sqrt(2*np.pi):.4f}),  "
      f"E[y^2] = {Ey2:.4f} (1/2),  Var[y] = {Vy:.4f}\n")
rows = []
for mu_w, sd_w in [(0.05, 0.10), (-0.02, 0.05), (0.0, np.sqrt(2 / N_FAN))]:
    w = rng.normal(mu_w, sd_w, (S_MC, N_FAN))
    x = dot_fresh(w, y)
    Ew, Ew2 = w.mean(), (w ** 2).mean()
    rows.append([f"N({mu_w:g}, {sd_w:.3f}^2)", x.mean(), se_mean(x), N_FAN * Ew * Ey,
                 x.var(), se_var(x), N_FAN * (Ew2 * Ey2 - Ew ** 2 * Ey ** 2)])
table(["w_i ~", "E[x] meas.", "s.e.", "eq. (4)", "Var[x] meas.", "s.e.", "eq. (5)"], rows)
for _, m, se_m, eq4, var, se_v, eq5 in rows:   # "within the Monte Carlo error": 4 s.e.
    assert abs(m - eq4) < 4 * se_m and abs(var - eq5) < 4 * se_v, (m, eq4, var, eq5)
assert abs(rows[2][6] - 1) < 0.02, "Kaiming: 2 E[y^2] = 1 (E[y^2] and Var[w] are sample moments)"

# %% [markdown]
# Both equations hold to within the Monte Carlo error in the model they were derived in. The last row
# is the Kaiming/He initialisation, $E[w]=0$ and $n\mathrm{Var}[w] = 2$: then (4) gives $E[x]=0$
# (this is condition (6), $E[w]=0$) and (5) reduces to
#
# $$\mathrm{Var}[x] = n\,\mathrm{Var}[w]\,E[y^2] \quad (7),$$
#
# here $2\cdot E[y^2] = 1$.

# %% [markdown]
# ## 4. The same sum for ONE fixed filter
#
# In a network, a channel is produced by one filter $\mathbf w$ that stays the same for every image
# and pixel. Conditioning on it, with i.i.d. inputs:
#
# $$E[x\mid\mathbf w] = E[y]\sum_i w_i = n\,\bar w\,E[y], \qquad
# \mathrm{Var}[x\mid\mathbf w] = \mathrm{Var}[y]\sum_i w_i^2 ,$$
#
# with $\bar w$ the filter's own mean. So (4) still holds if $E[w]$ is read as the filter's mean. But
# (5), evaluated with the filter's own moments $\bar w$, $\overline{w^2}$, gives
# $\sum w_i^2\,E[y^2] - (\sum w_i)^2E[y]^2/n$, which exceeds the true variance by exactly
#
# $$E[y]^2\Big(\sum_i w_i^2 - \tfrac1n\big(\textstyle\sum_i w_i\big)^2\Big) = n\,v\,E[y]^2,
# \qquad v = \text{the filter's variance}.$$
#
# In the paper's model the filter is redrawn, so the conditional mean $E[y]\sum_i w_i$ spreads
# from draw to draw, and eq. (5) counts that spread as variance. In a network the filter is drawn
# once: the same quantity is a fixed offset of the channel's mean (a drift). WA sets
# $\sum_i w_i = 0$ exactly: the offset is gone, and so is the term. With
# $\sum \hat w_i^2 = n\mathrm{Var}[\hat w] = 2$ (condition (9), $\gamma=1$), eq. (7) predicts
# $2E[y^2]$ but the fixed, centred filter gives $2\mathrm{Var}[y]$, smaller by the factor
# $\mathrm{Var}[y]/E[y^2]$.
#
# **Exercise 2.1** (derive, then run). Derive that factor for $y = \mathrm{relu}(x)$,
# $x \sim N(0, 1)$, as a number, before the next cells measure it (a Monte Carlo estimate good to
# 0.5 % also passes; 2/3 does not).

# %%
relu_var_fraction = None   # YOUR CODE

# %%
ex.check("relu_var_fraction", ex.answer("relu_var_fraction", relu_var_fraction))

# %% [markdown]
# *Answer:* $E[y] = 1/\sqrt{2\pi}$ and $E[y^2] = \tfrac12$, so
# $\mathrm{Var}[y]/E[y^2] = (\tfrac12 - \tfrac1{2\pi})/\tfrac12 = 1 - 1/\pi \approx 0.682$. Measured:

# %%
w_raw = rng.normal(0.05, 0.10, N_FAN)                          # one filter, drawn once
w_wa = WF.weight_align(mg.tensor(w_raw[None, :])).numpy()[0]  # the same filter after WA (eq. 10)
rows = []
for name, wf in [("raw N(0.05, 0.1^2)", w_raw), ("WA-aligned", w_wa)]:
    x = F.matmul(mg.tensor(y), mg.tensor(wf[:, None])).numpy()[:, 0]   # the SAME filter on every input
    m_w, m_w2 = wf.mean(), (wf ** 2).mean()
    # E[x|w] = n mean(w) E[y] and Var[x|w] = sum w^2 Var[y], within 4 Monte Carlo s.e.
    assert abs(x.mean() - N_FAN * m_w * Ey) < 4 * se_mean(x), (name, x.mean())
    assert abs(x.var() - (wf ** 2).sum() * Vy) < 4 * se_var(x), (name, x.var())
    # (5) with the filter's own moments exceeds the exact variance by exactly n v E[y]^2
    assert np.isclose(N_FAN * (m_w2 * Ey2 - m_w ** 2 * Ey ** 2) - (wf ** 2).sum() * Vy,
                      N_FAN * wf.var() * Ey ** 2, rtol=1e-9), name
    rows.append([name, x.mean(), N_FAN * m_w * Ey, x.var(), se_var(x),
                 N_FAN * (m_w2 * Ey2 - m_w ** 2 * Ey ** 2), (wf ** 2).sum() * Vy,
                 N_FAN * wf.var() * Ey ** 2])
table(["filter", "E[x] meas.", "eq. (4)", "Var[x] meas.", "s.e.", "eq. (5)", "sum w^2 Var[y]",
       "(5) - exact"], rows)
print(f"\nWA filter: sum w = {w_wa.sum():.1e},  n Var[w] = {N_FAN * w_wa.var():.5f} (eq. 9: 2)")
print(f"measured Var[x] / eq. (7) = {rows[1][3] / rows[1][5]:.4f};  Var[y]/E[y^2] = {Vy / Ey2:.4f};"
      f"  1 - 1/pi = {1 - 1/np.pi:.4f}")
assert abs(w_wa.sum()) < 1e-12 and abs(N_FAN * w_wa.var() - 2) < 1e-3, "WA: sum 0, n Var = 2 (up to eps)"
assert abs(rows[1][3] / rows[1][5] - (1 - 1 / np.pi)) < 4 * rows[1][4] / rows[1][5], "1 - 1/pi, 4 s.e."
assert abs(Vy / Ey2 - (1 - 1 / np.pi)) < 0.01, "Var[y]/E[y^2] of relu(N(0,1)): s.e. ~0.002 at 20k x 64"

# %% [markdown]
# ## 5. The ReLU halving, and eq. (8)
#
# The input of layer $l$ is $y = \max(0, x_{l-1})$. If $x_{l-1}$ has a density symmetric around 0,
# the positive half carries exactly half of $E[x_{l-1}^2]$, so $E[y^2] = \tfrac12\mathrm{Var}[x_{l-1}]$
# (He et al.). With (7):
#
# $$\mathrm{Var}[x_l] = \tfrac12\, n\,\mathrm{Var}[w_l]\,\mathrm{Var}[x_{l-1}] \quad (8).$$
#
# Two things are needed: symmetry **and** a symmetry centre at 0. The variance of $y$ (what the
# fixed, centred filter of section 4 passes on) is smaller:
# $\mathrm{Var}[y] = \tfrac12\mathrm{Var}[x] - \tfrac14 E[|x|]^2$, which depends on the shape of the
# distribution (Gaussian: $\tfrac12 - \tfrac1{2\pi} = 0.3408$). Measured, all with $\mathrm{Var}[x]=1$:

# %%
S = S_MC * 5
dists = {   # name: (sample with variance 1, E|x| if symmetric around 0 else None)
    "Gaussian": (rng.standard_normal(S), np.sqrt(2 / np.pi)),
    "Laplace": (rng.laplace(0, 1 / np.sqrt(2), S), 1 / np.sqrt(2)),
    "uniform": (rng.uniform(-np.sqrt(3), np.sqrt(3), S), np.sqrt(3) / 2),
    "Exp(1) - 1 (skewed)": (rng.exponential(1.0, S) - 1, None),
    "N(0.2, 1) (off-centre)": (rng.normal(0.2, 1.0, S), None),
}
rows = []
for name, (xs, e_abs) in dists.items():
    ys = F.relu(mg.tensor(xs)).numpy()
    rows.append([name, skew(xs), (ys ** 2).mean() / xs.var(), 0.5 if e_abs else "-",
                 ys.var() / xs.var(), 0.5 - e_abs ** 2 / 4 if e_abs else "-"])
table(["x ~", "skew", "E[y^2]/Var[x]", "(8): 1/2", "Var[y]/Var[x]", "1/2 - E|x|^2/4"], rows)
tol = 6 / np.sqrt(S)   # ~4 s.e. for the heaviest tail here (Laplace: sd of y^2 about 1.7)
for name, _, half, half8, var_y, var_pred in rows:
    if half8 == "-":   # skewed / off-centre: more than half of the second moment on the positive side
        assert half > 0.55, name
    else:              # symmetric: the halving, and Var[y] = 1/2 - E|x|^2/4
        assert abs(half - 0.5) < tol and abs(var_y - var_pred) < tol, (name, half, var_y, var_pred)

# %% [markdown]
# The halving holds for every symmetric distribution, and fails for the skewed and the off-centre one
# (here both put more than half of the second moment on the positive side). The variance of $y$, on
# the other hand, depends on the shape even for symmetric distributions, and matches
# $\tfrac12 - \tfrac14E[|x|]^2$. A network's pre-activations are symmetric only approximately;
# section 8 measures how far.

# %% [markdown]
# ## 6. The WA conditions (6) and (9), and eq. (10)
#
# Eq. (6) asks for $E[w]=0$, so that (4) gives a zero-mean output whatever $E[y]$ is; eq. (9) asks for
# $\tfrac12 n\mathrm{Var}[w] = 1$, so that (8) keeps the variance from layer to layer. WeightAlign
# enforces both on **each filter's own $n$ weights**, on every forward pass:
#
# $$\hat{\mathbf w} = \gamma\,\frac{\mathbf w - E[\mathbf w]}{\sqrt{\tfrac n2\,\mathrm{Var}[\mathbf w]}}
# \quad (10)$$
#
# with a learnable per-filter scale $\gamma$ and no shift (a shift $\beta$ on the weights would add
# $\beta\sum y_i$ to the output, the drift WA removes; supplementary eq. (15)). The package adds
# $\epsilon = 10^{-5}$ inside the root. Check on raw filters with arbitrary means and scales: every
# aligned filter has mean 0 and $\tfrac n2\mathrm{Var}[\hat w] = \gamma^2\cdot
# \frac{(n/2)v}{(n/2)v+\epsilon}$, i.e. $\gamma^2$ unless the raw filter is tiny.

# %%
out_ch, n = 6, 16 * 9
offset = np.array([0.0, 1.0, -3.0, 0.1, 0.0, 0.5])[:, None, None, None]
scale = np.array([1.0, 0.1, 5.0, 0.02, 1e-3, 2.0])[:, None, None, None]
raw = mg.tensor(rng.standard_normal((out_ch, 16, 3, 3)) * scale + offset)
g = mg.tensor(np.array([1.0, 1.0, 0.5, 2.0, 1.0, 1.5]))
w_hat = WF.weight_align(raw, g).numpy().reshape(out_ch, -1)
r_raw = raw.numpy().reshape(out_ch, -1)
v = r_raw.var(axis=1)
table(["filter", "raw mean", "raw (n/2)Var", "WA mean", "WA (n/2)Var", "gamma^2",
       "gamma^2 (n/2)v/((n/2)v+eps)"],
      [[k, r_raw[k].mean(), n / 2 * v[k], w_hat[k].mean(), n / 2 * w_hat[k].var(), g.numpy()[k] ** 2,
        g.numpy()[k] ** 2 * (n / 2 * v[k]) / (n / 2 * v[k] + 1e-5)] for k in range(out_ch)])
affine = WF.weight_align(mg.tensor(3.7 * raw.numpy() - 0.4), g, eps=0.0).numpy()
print("\nWA forgets the raw filter's offset and scale (eps = 0): max |WA(3.7 w - 0.4) - WA(w)| =",
      np.abs(affine - WF.weight_align(raw, g, eps=0.0).numpy()).max())
assert np.abs(w_hat.mean(axis=1)).max() < 1e-12, "WA: every filter has mean 0"
assert np.allclose(n / 2 * w_hat.var(axis=1), g.numpy() ** 2 * (n / 2 * v) / (n / 2 * v + 1e-5), rtol=1e-9)
assert 0.85 < n / 2 * w_hat[4].var() < 0.9, "filter 4: about 87 % of the target (eps)"
quote("filter 4: n/2 Var[w_hat] against the target 1", n / 2 * w_hat[4].var(), "87 %", 0.01)
assert np.abs(affine - WF.weight_align(raw, g, eps=0.0).numpy()).max() < 1e-12


# %% [markdown]
# Filter 4 (raw std $10^{-3}$) shows the $\epsilon$: its $\tfrac n2 v = 7\cdot10^{-5}$ is comparable
# to $\epsilon$, so it comes out at about 87 % of the target. With the paper's initialisation
# ($\tfrac n2 v\approx 1$) the effect is $10^{-5}$.

# %% [markdown]
# ## 7. Through a stack of layers: the paper's model against the network
#
# ### 7a. The paper's model, literally
#
# A deep net in which every layer draws **fresh weights for every sample**, independent of the inputs:
# $x_l = W_{l,s}\,y_{l-1}$ with $W_{l,s}$ an i.i.d. $N(0, 2/n)$ matrix per sample $s$ (so $E[w]=0$ and
# $\tfrac12 n\mathrm{Var}[w]=1$ in distribution), $y_0 \sim N(0,1)$ and $y_l=\mathrm{relu}(x_l)$.
# Next to it, the same with each fresh filter passed through WA (every row exactly centred). Eq. (8)
# with (9) predicts the variance ratio $\mathrm{Var}[x_l]/\mathrm{Var}[x_{l-1}] = 1$; section 4
# predicts $1 - 1/\pi$ for the centred filters.

# %%
def fresh_layer(y, align, chunk=100):
    "One layer of the paper's model: a fresh N(0, 2/n) weight matrix per sample (optionally WA'd)."
    S, n = y.shape
    out = np.empty_like(y)
    for c in range(0, S, chunk):
        m = min(chunk, S - c)
        w = rng.normal(0.0, np.sqrt(2 / n), (m * n, n))       # m samples x n filters, n weights each
        if align:
            w = WF.weight_align(mg.tensor(w)).numpy()          # eq. (10) on every filter, gamma = 1
        out[c:c + m] = F.matmul(mg.tensor(w.reshape(m, n, n)), mg.tensor(y[c:c + m, :, None])).numpy()[..., 0]
    return out


dense = {}
for align in (False, True):
    y, xs = rng.standard_normal((S_DENSE, N_DENSE)), []
    for l in range(LAYERS):
        xs.append(fresh_layer(y, align))
        y = F.relu(mg.tensor(xs[-1])).numpy()
    dense[align] = xs
rows = []
for l in range(1, LAYERS):
    row = [l + 1]
    for align in (False, True):
        xs = dense[align]
        yl = np.maximum(xs[l - 1], 0)
        row += [xs[l].var(), xs[l].var() / xs[l - 1].var(), (yl ** 2).mean() / xs[l - 1].var(),
                skew(xs[l].ravel())]
    rows.append(row)
table(["layer", "iid: Var[x]", "ratio", "E[y^2]/Var", "skew", "WA: Var[x]", "ratio", "E[y^2]/Var", "skew"],
      rows)
print(f"\npredicted ratio: eq. (8) = 1 (iid weights);  centred filters: 1 - 1/pi = {1 - 1/np.pi:.4f}")
# per layer: quick mode's 200 samples of width 64 move the ratios by ~2-3 % (full: < 1 %)
tol_r, tol_h, tol_sk = (0.07, 0.04, 0.2) if QUICK else (0.02, 0.01, 0.05)
for r in rows:
    assert abs(r[2] - 1) < tol_r and abs(r[6] - (1 - 1 / np.pi)) < tol_r, ("ratios", r)
    assert abs(r[3] - 0.5) < tol_h and abs(r[7] - 0.5) < tol_h, ("halving", r)
    assert abs(r[4]) < tol_sk and abs(r[8]) < tol_sk, ("symmetric", r)

# %% [markdown]
# Under the paper's own model eq. (8) holds: ratio 1, symmetric pre-activations, halving 0.5. The
# same model with **exactly centred** filters loses $1-1/\pi$ per layer: section 4 is about
# centring, not about the filter being fixed (the random sum $\sum_i w_i$ times $E[y]$ is what adds
# $n\mathrm{Var}[w]E[y]^2$).
#
# ### 7b. The network: plain8 at initialisation
#
# Now the real thing: the 8-layer net of the paper's Fig. 2 (`wa.models.build("plain8", spec)`;
# 7 conv3x3 layers of 64 channels with ReLU, Kaiming init, no bias) on a batch of $N(0,1)$ images,
# once with plain convolutions (`"none"`) and once with WA (`"wa"`, $\gamma = 1$). Per layer:
# the variance pooled over the whole layer, the variance *within* a channel (averaged over channels),
# and the drift $|E[x_c]|/\mathrm{std}(x_c)$ of the channel means (averaged over channels).

# %%
x_in = mg.tensor(rng.standard_normal((N_NET, 3, HW, HW)).astype(np.float32))


def run_plain8(spec):
    "plain8 at initialisation (seeded), the 7 pre-activations as float64 arrays, and the model."
    mg.manual_seed(SEED)
    model = wa.models.build("plain8", spec)
    with mg.no_grad():
        _, acts = model(x_in, return_activations=True)
    return model, [a.numpy().astype(np.float64) for a in acts[:LAYERS]]


def layer_stats(a):
    "pooled variance, mean within-channel variance, mean channel drift |E[x_c]| / std(x_c)"
    m, v = a.mean(axis=(0, 2, 3)), a.var(axis=(0, 2, 3))
    return a.var(), v.mean(), (np.abs(m) / np.sqrt(v)).mean()


t = time.perf_counter()
net = {spec: run_plain8(spec) for spec in ("none", "wa")}
rows = []
for l in range(LAYERS):
    row = [l + 1]
    for spec in ("none", "wa"):
        acts = net[spec][1]
        pooled, within, drift = layer_stats(acts[l])
        row += [pooled, within, drift] + ([acts[l].var() / acts[l - 1].var()] if l else ["-"])
    rows.append(row)
table(["layer", "none: pooled Var", "within-ch.", "drift", "ratio", "wa: pooled Var", "within-ch.",
       "drift", "ratio"], rows)
for r in rows[1:]:   # the reading below; WA drift < 0.05 std (quick: 8 images of 16x16, < 0.06)
    assert 0.7 < r[4] < 1.1 and r[3] > 0.45, ("Kaiming: pooled Var roughly kept, drift >= ~0.5", r)
    assert r[7] < (0.06 if QUICK else 0.05) and abs(r[8] - (1 - 1 / np.pi)) < 0.04, ("WA", r)
assert all(a[2] > b[2] for a, b in zip(rows, rows[1:])), "Kaiming: within-channel variance shrinks"
quote("smallest drift, Kaiming, layers 2-7", min(r[3] for r in rows[1:]), "0.5", 0.05)
quote("smallest drift, WA, layers 2-7", min(r[7] for r in rows[1:]), "0.01", 0.005)
quote("largest drift, WA, layers 2-7", max(r[7] for r in rows[1:]), "0.04", 0.005)
quote("smallest ratio, WA, layers 2-7", min(r[8] for r in rows[1:]), "0.66", 0.005)
quote("largest ratio, WA, layers 2-7", max(r[8] for r in rows[1:]), "0.68", 0.005)
print(f"({time.perf_counter() - t:.1f} s)")

# %% [markdown]
# Section 4 at network scale: Kaiming keeps the *pooled* variance, but a growing part of it is
# the drift of the channel means (each filter's random $\sum_i w_i$), so the variance *within* a
# channel shrinks. WA removes the drift and that part with it: the ratio is close to $1-1/\pi$.
# (Layer 1 sees the raw input, no ReLU, so $n\mathrm{Var}[w] = 2$ doubles its variance.)
#
# ### 7c. Where exactly the WA net's variance goes
#
# For one fixed filter $\hat{\mathbf w}$ and the patch vector $\mathbf y$ that im2col gives, the
# within-channel variance is *exactly* $\mathrm{Var}[x] = \hat{\mathbf w}^\top\mathrm{Cov}(\mathbf y)
# \,\hat{\mathbf w}$. Splitting that identity step by step, from eq. (8) down to the measurement
# (every column is averaged over the 64 channels of the layer):
#
# | column | formula | what it assumes |
# |---|---|---|
# | eq. (8) | $\tfrac12\, n\mathrm{Var}[\hat w]\,\mathrm{Var}[x_{l-1}]$ | (7) and the ReLU halving |
# | eq. (7) | $n\mathrm{Var}[\hat w]\,E[y^2]$ | i.i.d. inputs, random filter |
# | centred | $\sum_i\hat w_i^2\,\mathrm{Var}[y]$ | i.i.d. inputs, fixed centred filter (section 4) |
# | per input | $\sum_i \hat w_i^2\,\mathrm{Var}[y_i]$ | uncorrelated inputs, each with its own variance |
# | measured | $\hat{\mathbf w}^\top\mathrm{Cov}(\mathbf y)\hat{\mathbf w}$ | nothing |
#
# The step from "per input" to "measured" is the correlation term
# $\sum_{i\neq j}\hat w_i\hat w_j\mathrm{Cov}(y_i,y_j)$: neighbouring pixels of a conv output share
# 6 of their 9 input pixels, so they are correlated, and the next filter weighs them together.

# %%
model_wa, acts_wa = net["wa"]
rows, corr_terms, nb_corr, mean_rows = [], {}, [], []
for l in range(1, LAYERS):
    y_prev = F.relu(mg.tensor(acts_wa[l - 1]))
    cols = F.im2col(y_prev, 3, padding=1).numpy()               # (N*H*W, n = 576): the patches y
    w_hat = model_wa.convs[l].effective_weight().numpy().astype(np.float64)
    w_hat = w_hat.transpose(0, 2, 3, 1).reshape(w_hat.shape[0], -1)    # rows in im2col's order
    nvar_w = (w_hat ** 2).sum(1) - w_hat.sum(1) ** 2 / w_hat.shape[1]  # n Var[w_hat] per filter
    yv = y_prev.numpy()
    measured = acts_wa[l].var(axis=(0, 2, 3))
    per_input = (w_hat ** 2 * cols.var(axis=0)).sum(1)
    # the average covariance of two different inputs of a patch, from Var[sum_i y_i] = sum_ij C_ij
    n_in = cols.shape[1]
    c_bar = (cols.sum(axis=1).var() - cols.var(axis=0).sum()) / (n_in * (n_in - 1))
    rows.append([l + 1, (0.5 * nvar_w * acts_wa[l - 1].var()).mean(), (nvar_w * (yv ** 2).mean()).mean(),
                 ((w_hat ** 2).sum(1) * yv.var()).mean(), per_input.mean(), measured.mean(),
                 (measured / per_input - 1).mean(), (measured / per_input - 1).std(),
                 -c_bar / cols.var(axis=0).mean()])
    corr_terms[l + 1] = measured / per_input - 1
    # correlation of horizontally neighbouring pixels of the same input channel, per channel
    a, b = yv[..., :-1] - yv.mean(axis=(0, 2, 3), keepdims=True), yv[..., 1:] - yv.mean(axis=(0, 2, 3), keepdims=True)
    nb_corr.append((a * b).mean(axis=(0, 2, 3)) / yv.var(axis=(0, 2, 3)))
    # eq. (4) per channel: E[x_c] = sum_i w_i E[y_i] is exact; with one shared E[y] it would be 0
    ch_means = yv.mean(axis=(0, 2, 3))
    assert np.abs(acts_wa[l].mean(axis=(0, 2, 3)) - w_hat @ cols.mean(axis=0)).max() < 1e-4, \
        "E[x_c] = sum_i w_i E[y_i] (exact up to float32 rounding of the activations)"
    mean_rows.append([l + 1, (np.abs(acts_wa[l].mean(axis=(0, 2, 3)))).mean(),
                      np.abs(w_hat @ cols.mean(axis=0)).mean(), 0.0, ch_means.std() / ch_means.mean(),
                      np.sqrt(measured).mean()])
table(["layer", "eq. (8)", "eq. (7)", "centred", "per input", "measured", "corr. term: mean",
       "std over ch.", "-c_bar/Var[y_i]"], rows)
# the reading below; quick mode's 16x16 input has more padding, hence its looser "centred vs per input"
for _, e8, e7, cen, per, meas, cmean, cstd, cbar in rows:
    assert abs(e8 / e7 - 1) < 0.03 and abs(cen / e7 - (1 - 1 / np.pi)) < 0.02, "(8) ~ (7); 1 - 1/pi"
    assert abs(cen / per - 1) < (0.03 if QUICK else 0.02), "centred vs per input: a percent or two"
    assert -0.04 < cmean < 0 and 0.03 < cstd < 0.15 and cbar < 0, "correlation term"
assert 0.5 < np.mean([r[6] for r in rows]) / np.mean([r[8] for r in rows]) < 2, "-c_bar: the mean's size"
quote("correlation term, mean over channels, smallest in size", min(-r[6] for r in rows), "0.5 %", 0.001)
quote("correlation term, mean over channels, largest in size", max(-r[6] for r in rows), "3 %", 0.005)
quote("correlation term, std over channels, smallest", min(r[7] for r in rows), "4 %", 0.005)
quote("correlation term, std over channels, largest", max(r[7] for r in rows), "12 %", 0.005)
quote("correlation term, largest in size at layer 2", np.abs(corr_terms[2]).max(), "35 %", 0.005)
quote("correlation term, largest in size at layer 7", np.abs(corr_terms[7]).max(), "11 %", 0.005)
print("\ncorrelation of neighbouring pixels of one input channel, layers 2..7:")
print("  mean over channels:", np.round([c.mean() for c in nb_corr], 3))
print("  std over channels: ", np.round([c.std() for c in nb_corr], 3))
print("\nchannel means (mean |E[x_c]| over channels):")
table(["layer", "measured", "sum_i w_i E[y_i]", "E[y] sum_i w_i", "spread of E[y_c] (std/mean)",
       "std(x_c)"], mean_rows)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
ax = axes[0]
for l in (2, 4, 7):
    ax.hist(100 * corr_terms[l], bins=20, histtype="step", lw=2, label=f"layer {l}")
ax.axvline(0, color="k", lw=0.8)
ax.set(title="Correlation term per channel (WA net, plain8)",
       xlabel="measured / per-input prediction - 1  (%)", ylabel="channels")
ax.legend()
ax = axes[1]
ls = np.arange(1, LAYERS + 1)
var_rows = np.array(rows)
ax.plot(ls[1:], var_rows[:, 1], "o-", label="eq. (8): 1/2 n Var[w] Var[x_(l-1)]")
ax.plot(ls[1:], var_rows[:, 2], "s--", label="eq. (7): n Var[w] E[y^2]")
ax.plot(ls[1:], var_rows[:, 4], "^-", label="per input: sum w_i^2 Var[y_i]")
ax.plot(ls[1:], var_rows[:, 5], "kx-", ms=9, label="measured (within channel)")
ax.set(yscale="log", title="Predicted vs measured Var[x_l], WA net", xlabel="conv layer l",
       ylabel="variance of the pre-activation")
ax.legend(fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# Reading the table from left to right:
#
# * **eq. (8) vs eq. (7)**: equal up to the ReLU halving, which holds to a percent or two.
# * **eq. (7) vs centred**: the factor $1-1/\pi$ of section 4, at every layer; this alone
#   explains the 0.68.
# * **centred vs per input**: a percent or two, from the zero padding and unequal channels.
# * **per input vs measured**: the correlation term. Its mean over channels is small (-0.5 % to
#   -3 %); per channel it reaches $\pm$35 % at layer 2 and $\pm$11 % at layer 7 (left plot).
#   Neighbouring pixels share 6 of 9 inputs, and the channels at a pixel share a patch, so inputs
#   are correlated, and a filter amplifies or cancels them depending on how its weights line up.
#   If every pair of inputs had the same covariance $\bar c$, a centred filter would give
#   $\sum_{i\neq j}\hat w_i\hat w_j\bar c = -\bar c\sum_i \hat w_i^2$, a relative change of
#   $-\bar c/\mathrm{Var}[y_i]$: the last column, with the sign and size of the measured mean.
# * **channel means**: $E[x_c] = \sum_i \hat w_i E[y_i]$ matches exactly; it is not 0 because the
#   inputs do not share one mean (unequal channel variances, padding zeros), hence a drift of a
#   few percent of a std, against ~0.5 for Kaiming.

# %% [markdown]
# ## 8. Symmetry: the supplementary's argument (VI, eqs. (11)-(14)) and where it stops
#
# Eq. (8) needs $x_{l-1}$ symmetric around 0. The supplementary argues: for independent $X$, $Y$ and
# $Z = XY$,
#
# $$f_Z(z) = \int f_X(x)\, f_Y(z/x)\,\frac{1}{|x|}\,dx \quad (11\text{-}13),$$
#
# and if $f_X(-x) = f_X(x)$ then substituting $x\to -x$ gives $f_Z(-z) = f_Z(z)$ (14): the product
# of a symmetric weight with *any* input, however skewed, is symmetric, and so is a sum of such
# independent products. Below, $X$ is a symmetric weight distribution ($N(0,1)$) and $Y$ a skewed
# positive input (a Gamma(3) variable, skewness $2/\sqrt3$); the density of $Z$ from the integral (with the roles of $X$ and $Y$
# swapped, $f_Z(z) = \int_0^\infty f_Y(y) f_X(z/y)/y\,dy$, which is the same formula) against the
# histogram of $Z$ and of its mirror image $-Z$.

# %%
S = S_MC * 5
X = mg.tensor(rng.standard_normal(S))                 # symmetric "weights"
Y = mg.tensor(rng.gamma(3.0, 1.0, S))                 # positive, skewed "inputs"
Z = (X * Y).numpy()


def f_Z(z, f_X, f_Y, y_grid):
    "Density of Z = XY for positive Y, eqs. (11)-(13): integral of f_Y(y) f_X(z/y) / y dy."
    integrand = f_Y(y_grid)[None, :] * f_X(z[:, None] / y_grid[None, :]) / y_grid[None, :]
    trapezoid = getattr(np, "trapezoid", None) or np.trapz     # numpy >= 2 renamed it
    return trapezoid(integrand, y_grid, axis=1)


f_normal = lambda u: np.exp(-u ** 2 / 2) / np.sqrt(2 * np.pi)
f_gamma3 = lambda u: u ** 2 * np.exp(-u) / 2
z_grid = np.linspace(-12, 12, 481)
dens = f_Z(z_grid, f_normal, f_gamma3, np.linspace(1e-4, 40, 8000))

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
ax = axes[0]
bins = np.linspace(-12, 12, 97)
ax.hist(Z, bins=bins, density=True, alpha=0.4, label="Z = XY")
ax.hist(-Z, bins=bins, density=True, histtype="step", lw=1.5, label="-Z (mirror image)")
ax.plot(z_grid, dens, "k", lw=1, label="f_Z from eqs. (11)-(13)")
ax.set(title="X ~ N(0,1) (symmetric) times Y ~ Gamma(3) (skewed)", xlabel="z", ylabel="density")
ax.legend()

Xs = mg.tensor(rng.exponential(1.0, S) - 1.0)      # a zero-mean but skewed "weight"
Zs = (Xs * Y).numpy()
ax = axes[1]
ax.hist(Zs, bins=bins, density=True, alpha=0.4, label="Z = XY, X = Exp(1) - 1")
ax.hist(-Zs, bins=bins, density=True, histtype="step", lw=1.5, label="-Z (mirror image)")
ax.set(title="The same with a skewed X: no symmetry", xlabel="z", ylabel="density")
ax.legend()
plt.tight_layout()
plt.show()
table(["X", "Y", "skew(X)", "skew(Y)", "skew(Z)", "max |f_Z(z) - f_Z(-z)| (eq. 14)"],
      [["N(0, 1)", "Gamma(3)", skew(X.numpy()), skew(Y.numpy()), skew(Z), np.abs(dens - dens[::-1]).max()],
       ["Exp(1) - 1", "Gamma(3)", skew(Xs.numpy()), skew(Y.numpy()), skew(Zs), "-"]])
# eq. (14): the density is symmetric to rounding; skew(Z) within 4 s.e. (sqrt(E[Z^6]/E[Z^2]^3 / S))
assert np.abs(dens - dens[::-1]).max() < 1e-12 and abs(skew(Z)) < 4 * np.sqrt(175 / S) < skew(Zs)

# %% [markdown]
# The argument needs the weight to be a **random variable, independent of the input**. In a network,
# a channel's pre-activation is $x = \sum_i \hat w_i y_i$ with the *same* numbers $\hat w_i$ for every
# image and pixel; the randomness is in the $y_i$ only, and a fixed linear combination of skewed
# variables is skewed. For independent $y_i$ with third central moment $\kappa_3$:
#
# $$\mathrm{skew}(x\mid\hat{\mathbf w}) = \frac{\sum_i \hat w_i^3\,\kappa_3}{\big(\sum_i\hat w_i^2\,\mathrm{Var}[y]\big)^{3/2}},$$
#
# which is nonzero for a given filter and averages to 0 over filters drawn from a symmetric
# distribution: the supplementary's symmetry holds *across* channels, not *within* one. **How big
# is it?** For such filters $\sum_i \hat w_i^3$ is a sum of $n$ zero-mean terms, of order
# $\sqrt n$, while $(\sum_i \hat w_i^2)^{3/2}$ is of order $n^{3/2}$: the skew is of order
# $1/n$, not $1/\sqrt n$. For Gaussian filters, centred as WA centres them,
# $\mathrm{Var}[\sum_i d_i^3] \approx 6n\,\mathrm{Var}[w]^3$ (15 without the centring), so the
# root mean square over filters is $\sqrt6\,\mathrm{skew}(y)/n$ to leading order. The table checks
# the formula filter by filter (Monte Carlo, 8 filters per $n$) and the $1/n$ law over 4000
# filters, asserting both:

# %%
S_SK = min(S_MC // 4, 40_000)
y1 = F.relu(mg.tensor(rng.standard_normal(4_000_000 // (10 if QUICK else 1)))).numpy()
skew_y = skew(y1)                                          # skew of relu(N(0, 1)), about 1.64
rows = []
for n_in in (9, 36, 144, 576):
    y = F.relu(mg.tensor(rng.standard_normal((S_SK, n_in)))).numpy()
    k3 = ((y - y.mean()) ** 3).mean()                      # third central moment of the inputs
    u = WF.weight_align(mg.tensor(rng.standard_normal((8, n_in)))).numpy()   # 8 fixed WA filters
    x = F.matmul(mg.tensor(y), mg.tensor(u.T)).numpy()     # (S_SK, 8): each filter on every input
    measured = skew(x, axis=0)
    formula = (u ** 3).sum(1) * k3 / ((u ** 2).sum(1) * y.var()) ** 1.5
    assert np.abs(measured - formula).max() < 5 * np.sqrt(6 / S_SK), (n_in, measured, formula)
    d = rng.standard_normal((4000, n_in))
    d -= d.mean(axis=1, keepdims=True)                     # centred Gaussian filters
    rms = np.sqrt((((d ** 3).sum(1) / ((d ** 2).sum(1)) ** 1.5 * skew_y) ** 2).mean())
    predicted = np.sqrt(6) * skew_y / n_in
    assert 0.6 < rms / predicted < 1.1 and (n_in < 36 or abs(rms / predicted - 1) < 0.1), (n_in, rms)
    rows.append([n_in, np.abs(measured - formula).max(), np.sqrt((measured ** 2).mean()),
                 np.sqrt((formula ** 2).mean()), rms, predicted, n_in * rms])
table(["n", "max |meas. - formula|", "rms skew, 8 filters", "formula, same 8", "rms, 4000 filters",
       "sqrt(6) skew(y)/n", "n * rms"], rows)
quote("leading order over rms, n = 9, minus 1", rows[0][5] / rows[0][4] - 1, "40 %", 0.01)
quote("leading order over rms, n = 36, minus 1", rows[1][5] / rows[1][4] - 1, "8 %", 0.005)
print(f"skew(y) = {skew_y:.3f};  Monte Carlo s.e. of one skewness ({S_SK} draws): {np.sqrt(6 / S_SK):.4f}")

# %% [markdown]
# The formula matches each filter to within three Monte Carlo standard errors here (the assert
# allows five, for the largest of 32) (at $n = 576$ the
# skew itself is below that error), and $n\cdot\mathrm{rms}$ settles to a constant: the $1/n$ law,
# whose leading order is 40 % high at $n = 9$ and 8 % high at $n = 36$. In the WA network each
# channel therefore has its own small skew, and the ReLU halving holds per channel only
# approximately. Both measured at layer 3 of the plain8 WA net (the layer Fig. 2 shows):

# %%
l = 2                                                    # index 2 = conv layer 3
a = acts_wa[l]
sk = skew(a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1), axis=1)
half = (np.maximum(a, 0) ** 2).mean(axis=(0, 2, 3)) / a.var(axis=(0, 2, 3))
off = a.mean(axis=(0, 2, 3)) / a.std(axis=(0, 2, 3))
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].hist(sk, bins=20)
axes[0].set(title="Skewness of each channel, WA plain8, conv layer 3", xlabel="skewness over (N, H, W)",
            ylabel="channels")
sc = axes[1].scatter(sk, half, c=off, cmap="coolwarm", label="one channel")
axes[1].axhline(0.5, color="k", lw=0.8, label="eq. (8): 1/2")
axes[1].set(title="ReLU halving per channel, conv layer 3", xlabel="skewness of the channel",
            ylabel="E[relu(x)^2] / Var[x]")
fig.colorbar(sc, ax=axes[1], label="channel mean / std")
axes[1].legend()
plt.tight_layout()
plt.show()
print(f"layer 3: pooled skew {skew(a.ravel()):.3f};  per-channel skew mean {sk.mean():.3f}, std {sk.std():.3f}"
      f" (sampling s.e. {np.sqrt(6 / a[:, 0].size):.3f});\n"
      f"E[y^2]/Var[x] per channel: mean {half.mean():.3f}, range [{half.min():.3f}, {half.max():.3f}];"
      f"  correlation with the channel's mean/std: {np.corrcoef(half, off)[0, 1]:.2f}, with its skew: "
      f"{np.corrcoef(half, sk)[0, 1]:.2f}")
se_sk = np.sqrt(6 / a[:, 0].size)   # quick mode's 8 images: the spread is closer to the sampling s.e.
assert abs(skew(a.ravel())) < 0.05 and abs(half.mean() - 0.51) < 0.01, "pooled: symmetric, halving 0.51"
assert sk.std() > (1 if QUICK else 2) * se_sk and np.abs(half - 0.5).max() < 0.15, "per channel"
assert np.corrcoef(half, off)[0, 1] > 0.9 > abs(np.corrcoef(half, sk)[0, 1]), "the mean drives it"
quote("halving E[y^2]/Var[x], mean over channels, layer 3", half.mean(), "0.51", 0.005)
quote("halving, smallest channel, layer 3", half.min(), "0.44", 0.005)
quote("halving, largest channel, layer 3", half.max(), "0.61", 0.005)
mu_ = 0.1                           # a N(0.1, 1) channel: E[relu(x)^2] = (1 + mu^2) Phi(mu) + mu phi(mu)
Phi, phi = 0.5 * (1 + math.erf(mu_ / math.sqrt(2))), math.exp(-mu_ ** 2 / 2) / math.sqrt(2 * math.pi)
quote("E[relu(x)^2] / Var[x] of N(0.1, 1)", (1 + mu_ ** 2) * Phi + mu_ * phi, "58 %", 0.005)

# %% [markdown]
# The per-channel skew here is about five times the $\sqrt6\,\mathrm{skew}(y)/n$ that the table
# above gives at $n = 576$. That formula assumes independent inputs; the 576 inputs of a patch are
# not (neighbouring pixels share inputs, section 7c). Shuffle each column of the patch matrix on
# its own, which keeps every input's distribution and makes them independent, and the skew of each
# channel falls to the formula's size, with each input's own $\kappa_3$ and variance:

# %%
cols3 = F.im2col(F.relu(mg.tensor(acts_wa[l - 1])), 3, padding=1).numpy()    # the patches of layer 3
w3 = model_wa.convs[l].effective_weight().numpy().astype(np.float64)
w3 = w3.transpose(0, 2, 3, 1).reshape(w3.shape[0], -1)                      # rows in im2col's order
assert np.abs(cols3 @ w3.T - a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])).max() < 1e-4, "eq. (3)"
sk_indep = skew(np.random.default_rng(SEED).permuted(cols3, axis=0) @ w3.T, axis=0)
centred = cols3 - cols3.mean(axis=0)
k3_i, var_i = (centred ** 3).mean(axis=0), (centred ** 2).mean(axis=0)
del centred
formula_indep = (w3 ** 3 * k3_i).sum(1) / ((w3 ** 2 * var_i).sum(1)) ** 1.5
table(["per-channel skew, layer 3", "std over channels"],
      [["measured (correlated inputs)", sk.std()], ["inputs shuffled (independent)", sk_indep.std()],
       ["formula with each input's kappa_3, Var", formula_indep.std()], ["sampling s.e.", se_sk]])
del cols3
# independent inputs: the formula, within a sampling error; the correlation makes the rest
assert np.sqrt(np.mean((sk_indep - formula_indep) ** 2)) < 2 * se_sk
assert QUICK or sk.std() > 2 * sk_indep.std(), "full mode: the correlation makes most of the skew"

# %% [markdown]
# So the gap is the correlation between the inputs of a patch, not a flaw of the $1/n$ law.
# Pooled over the layer, the pre-activation is symmetric (skew near 0) and the halving holds on
# average (0.51), as the supplementary says. Per channel, the skew is a few hundredths (larger than
# the sampling error), and the halving ranges from 0.44 to 0.61 over channels. The colour shows
# what drives most of that spread: the small leftover channel mean of section 7c (a channel at
# $+0.1$ std keeps 58 % of its second moment after the ReLU instead of 50 %), more than the skew. The symmetric
# model of eq. (8) is right for the layer as a whole and only approximately right for each channel.

# %% [markdown]
# ## 9. What it means for a deep WA network
#
# WA's $\gamma$ starts at 1, so at initialisation, under eq. (9)'s $\tfrac n2$, every WA layer
# multiplies the variance by about $1-1/\pi$: $0.68^{L}$ over $L$ layers, $7\cdot10^{-3}$ after
# 13 (VGG16), $10^{-8}$ after 48. What offsets it: a $\gamma$ *started* at
# $1/\sqrt{1-1/\pi}\approx 1.21$ (or $\alpha = \tfrac12(1-1/\pi)$ in (9)); a following
# activation norm (GN+WA); and, for the argmax only, the positive homogeneity of a bias-free ReLU
# net. Whether training grows a $\gamma$ started at 1 to make up for it is notebook 05's
# measurement, not assumed here.
#
# Notebook 04 runs plain8 with these (its sections 4-5).

# %%
assert 6e-3 < (1 - 1 / np.pi) ** 13 < 8e-3 and 0.5e-8 < (1 - 1 / np.pi) ** 48 < 1.5e-8     # the text above
quote("1 / sqrt(1 - 1/pi)", 1 / np.sqrt(1 - 1 / np.pi), "1.21", 0.005)
quote("1 - 1/pi", 1 - 1 / np.pi, "0.682", 0.0005)
quote("1/2 - 1/(2 pi)", 0.5 - 0.5 / np.pi, "0.3408", 0.00005)


# %% [markdown]
# **Exercise 2.2.** Supplementary VIII-A replaces eq. (9)'s $\tfrac n2$ by other multiples of $n$:
# WA then sets $\alpha n\mathrm{Var}[\hat w] = 1$. Write the per-layer variance ratio
# $\mathrm{Var}[x_l]/\mathrm{Var}[x_{l-1}]$ of exactly centred filters as a function of $\alpha$
# (ReLU inputs from a symmetric $x_{l-1}$); the checker computes it from the ReLU's moments by
# quadrature, so a near miss fails. Notebook 04 runs plain8 with several $\alpha$.

# %%
def centred_variance_ratio(alpha):
    # YOUR CODE
    raise NotImplementedError


# %%
ex.check("centred_variance_ratio", ex.answer("centred_variance_ratio", centred_variance_ratio))

# %% [markdown]
# ## Summary
#
# | eq. | statement | paper's model (random weights) | the WA network (one fixed, centred filter) |
# |---|---|---|---|
# | (1)-(2) | BN: $\hat x = (x-\mu_B)/\sigma_B$, $r = \gamma\hat x+\beta$ | exact | exact (it measures) |
# | (3) | $x = \mathbf w\cdot\mathbf y$ | exact | exact (im2col row $\cdot$ filter) |
# | (4) | $E[x] = nE[w]E[y]$ | holds | holds with the filter's own mean; with WA $E[x_c]=\sum \hat w_iE[y_i]$, small but $\neq 0$ because inputs do not share one mean |
# | (5), (7) | $\mathrm{Var}[x] = n\mathrm{Var}[w]E[y^2]$ | holds | over-predicts: its $n\mathrm{Var}[w]E[y]^2$ part is the spread of the channel *means*; with WA the variance is $\sum\hat w_i^2\mathrm{Var}[y]$, i.e. $\times(1-1/\pi)$, plus a per-channel correlation term (std 4 % to 12 % over channels, mean -0.5 % to -3 %) |
# | (6) | $E[w]=0$ | in distribution | exactly, per filter; removes the drift (0.01-0.04 std, against 0.5-1 for Kaiming) |
# | (8) | ReLU halving, variance kept | holds (ratio 1, symmetric $x$) | ratio $\approx 0.66$-$0.68$ per layer; halving holds on average, per channel only approximately |
# | (9)-(10) | $\tfrac n2\mathrm{Var}[\hat w]=\gamma^2$ | - | exact up to $\epsilon$ |
# | (11)-(14) | symmetric weight $\Rightarrow$ symmetric $x$ | holds | across channels; within a channel $\mathrm{skew} = \sum\hat w_i^3\kappa_3/(\dots)^{3/2}\neq 0$, of order $1/n$ for independent inputs, larger for the correlated inputs of a patch (section 8) |
#
# WA centres every channel by construction, with no batch statistics; eq. (8)'s variance is off by
# $1-1/\pi$ per layer at initialisation ($\gamma = 1$), which section 9's remedies remove.

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s ({'QUICK' if QUICK else 'full'} mode)")
