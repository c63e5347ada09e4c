# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Activation distributions at initialisation (the paper's Fig. 2, supplementary Figs. 7–8)
#
# Before any training, what does each normalization do to the activations of a plain deep
# network? The paper answers with one picture (its Fig. 2, and Figs. 7–8 of the supplementary):
# an 8-layer network, 7 conv layers with ReLU and a linear classifier, Kaiming-initialised
# without bias, fed one mini-batch of 128 samples of a standard normal; histograms of 8 channels
# at conv layers 1, 3, 7 and at the classifier. This notebook rebuilds that experiment with
# `wa.models.build("plain8", ...)` and `wa.activations` (the code behind the `wa-activations`
# command), draws the histograms, and measures what they show.
#
# **Settings of the stored outputs** (full mode, `WA_QUICK` unset): `plain8` with 64 channels
# per conv layer, input a batch of 128 samples of shape `3 x 32 x 32` drawn from N(0, 1), seed 0,
# float32 on the CPU, every model in training mode (BN uses the batch's statistics, as at the
# first training step) and built from the same seed, so all specs start from the same raw
# weights. `WA_QUICK=1` (the test suite) uses 16 channels and 32 samples instead (GroupNorm
# then has 4 groups of 4 channels). The first code cell prints the settings in force.
#
# Terms: a *spec* names the normalization (`none` is the baseline; `bn`, `gn`, `ln`, `in` are
# BatchNorm, GroupNorm, LayerNorm (as GroupNorm with one group, the GN paper's convention) and
# InstanceNorm; `wa` is WeightAlign, eq. (10); `gn+wa` is both). GroupNorm's group count is
# `wa.norms.num_groups(C)`: GN's usual 32 groups where that leaves at least 4 channels per group,
# fewer otherwise, so at 64 channels 16 groups of 4. The values shown for a conv layer are its
# outputs after the norm and before the ReLU; for the classifier they are the logits, one
# "channel" per class.

# %%
import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    import wa
except ImportError:  # a checkout without `pip install -e .`: use the repository next door
    sys.path.insert(0, str(next(p for p in [Path.cwd(), *Path.cwd().parents]
                                if (p / "wa").is_dir() and (p / "minigrad").is_dir())))
    import wa
import matplotlib.pyplot as plt

import minigrad as mg
import minigrad.functional as F
from wa import activations, norms

QUICK = os.environ.get("WA_QUICK") == "1"   # quick mode: WA_QUICK=1; full mode: unset
SEED = 0
BATCH = 32 if QUICK else 128
WIDTH = 0.25 if QUICK else 1.0           # plain8's 64 channels times WIDTH
CHANNELS_SHOWN = 8
SPECS_FIG2 = ["none", "bn", "gn", "wa", "gn+wa"]              # the paper's Fig. 2
SPECS_SUPP = ["ln", "in", "bn+wa", "ln+wa", "in+wa"]          # and the rest of Figs. 7-8
SPECS = SPECS_FIG2 + SPECS_SUPP
C = max(1, round(64 * WIDTH))
print(f"mode: {'QUICK (WA_QUICK=1)' if QUICK else 'full'}; plain8 with {C} channels, "
      f"batch {BATCH} x 3 x 32 x 32 of N(0, 1), seed {SEED}, specs {SPECS}")
print(f"GroupNorm at {C} channels: {norms.num_groups(C)} groups of "
      f"{C // norms.num_groups(C)} channels")
plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 10, "axes.labelsize": 9,
                     "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8})

# %% [markdown]
# ## 1. Record the activations
#
# `activations.at_init` builds `plain8` for each spec with the same seed, puts it in training
# mode, feeds the same batch, and returns, for conv layers 1, 3, 7 and the classifier (layer 8),
# the values of each channel over the batch and all positions. We ask for every channel (the
# statistics below use all of them) and draw the first 8.

# %%
t0 = time.perf_counter()
results = activations.at_init(SPECS, batch=BATCH, width=WIDTH, seed=SEED, channels=C)
print(f"{len(SPECS)} specs recorded in {time.perf_counter() - t0:.1f} s")
LAYERS = list(next(iter(results.values())))
for layer in LAYERS:
    print(f"  {activations.layer_name(layer):<10} values per spec: {results['none'][layer].shape} "
          f"(channels, samples x positions)")

# %% [markdown]
# ## 2. The histograms
#
# One row per spec, one column per layer; in each panel one curve per channel (the first 8
# channels; for the classifier, the first 8 of the 10 class logits): the distribution of that
# channel's values over the batch and all positions. The x-axis is shared down each column so
# that the specs can be compared; a curve that is a narrow spike means that channel is nearly
# constant.

# %%
COLORS = plt.get_cmap("tab10").colors


def histogram_grid(specs, title, bins=80):
    """Rows: specs; columns: layers; one step histogram per channel."""
    fig, axes = plt.subplots(len(specs), len(LAYERS), figsize=(12, 2.1 * len(specs) + 0.9),
                             squeeze=False)
    for j, layer in enumerate(LAYERS):
        values = np.concatenate([results[s][layer][:CHANNELS_SHOWN].ravel() for s in specs])
        # conv layers: clip the far tails; the classifier has few values, show them all
        lo, hi = np.percentile(values, [0.2, 99.8]) if layer != 8 else (values.min(), values.max())
        pad = 0.03 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        edges = np.linspace(lo, hi, bins + 1)
        for i, spec in enumerate(specs):
            ax = axes[i, j]
            for c, values in enumerate(results[spec][layer][:CHANNELS_SHOWN]):
                counts, _ = np.histogram(values, edges, density=True)
                ax.stairs(counts, edges, color=COLORS[c], linewidth=1.1, label=f"channel {c}")
            ax.set_xlim(lo, hi)
            ax.axvline(0.0, color="black", linewidth=0.5, linestyle=":")
            if i == 0:
                ax.set_title(activations.layer_name(layer))
            if j == 0:
                ax.set_ylabel(f"{spec}\ndensity")
            if i == len(specs) - 1:
                ax.set_xlabel("activation value")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=CHANNELS_SHOWN, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    return fig


histogram_grid(SPECS_FIG2, f"Fig. 2: plain8 at initialisation, {BATCH} samples of N(0, 1) — "
                           f"baseline, BN, GN, WA, GN+WA")
plt.show()

# %%
histogram_grid(SPECS_SUPP, "Supplementary Figs. 7-8: LN, IN, and BN/LN/IN with WA")
plt.show()

# %% [markdown]
# ## 3. Per-layer statistics
#
# For each spec and layer, over **all** channels: the mean and the standard deviation across
# channels of the per-channel means $\mu_c$, and the same for the per-channel standard
# deviations $\sigma_c$ (`wa.activations.table`). Drift shows as a large `std(mu_c)` — channels
# centred at different places; a scale problem as `mean(sd_c)` far from 1; unequal channels as a
# large `std(sd_c)`.

# %%
rows, text = activations.table(results)
print(text)


# %% [markdown]
# The same statistics at every conv layer, 1 to 7, as curves. `at_init` records only the four
# layers of the figure, so here the models are called directly (`plain8` returns all eight
# pre-activations with `return_activations=True`); the four shared layers are checked to
# agree with the table. A third panel gives the root mean square of all values,
# $\sqrt{E[x^2]}$, which counts both the spread of the channel means and the spread within
# channels.

# %%
def all_layers(spec, x):
    """plain8 at init: per-layer (mean of mu_c, std of mu_c, mean of sd_c, rms) for all 8
    layers, and the logits the classifier gives at one position of the last feature map."""
    mg.manual_seed(SEED)                         # as at_init: the same raw weights for every spec
    model = wa.models.build("plain8", norm=spec, width=WIDTH)
    model.train()
    with mg.no_grad():
        _, acts = model(mg.Tensor(x), return_activations=True)
        h, w = acts[6].shape[2:]
        one_position = model.classifier(F.relu(acts[6])[:, :, h // 2, w // 2]).numpy()
    stats = []
    for a in acts:
        v = np.moveaxis(a.numpy(), 1, 0).reshape(a.shape[1], -1).astype(np.float64)
        s = activations.summarize(v)
        stats.append((s["mean_of_means"], s["std_of_means"], s["mean_of_stds"],
                      float(np.sqrt((v * v).mean()))))
    return np.array(stats), one_position.T.astype(np.float64)      # logits as (classes, batch)


x = np.random.default_rng(SEED).standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
direct = {spec: all_layers(spec, x) for spec in SPECS}
depth = {spec: direct[spec][0] for spec in SPECS}
one_position = {spec: direct[spec][1] for spec in SPECS}
for spec in SPECS:                      # the same numbers as the table, where both exist
    for layer in LAYERS:
        s = activations.summarize(results[spec][layer])
        assert np.allclose(depth[spec][layer - 1][[0, 1, 2]],
                           [s["mean_of_means"], s["std_of_means"], s["mean_of_stds"]],
                           rtol=1e-6, atol=1e-9), (spec, layer)
print("the direct calls reproduce at_init's statistics at layers", LAYERS)

# %%
STYLE = {"none": ("black", "-"), "bn": ("tab:blue", "-"), "gn": ("tab:orange", "-"),
         "ln": ("tab:green", "-"), "in": ("tab:purple", "-"), "wa": ("tab:red", "-"),
         "bn+wa": ("tab:blue", "--"), "gn+wa": ("tab:orange", "--"), "ln+wa": ("tab:green", "--"),
         "in+wa": ("tab:purple", "--")}
conv_layers = np.arange(1, 8)                 # the classifier's logits are compared in section 4
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
panels = [(1, "spread of channel means: std over c of $\\mu_c$", "std of $\\mu_c$ (log scale)"),
          (2, "scale within channels: mean over c of $\\sigma_c$", "mean of $\\sigma_c$"),
          (3, "root mean square of all values", "$\\sqrt{E[x^2]}$")]
for ax, (k, title, ylabel) in zip(axes, panels):
    for spec in SPECS:
        color, ls = STYLE[spec]
        ax.plot(conv_layers, np.maximum(depth[spec][:7, k], 1e-10), color=color, linestyle=ls,
                marker="o", markersize=3, label=spec)
    ax.set_title(title)
    ax.set_xlabel("conv layer (after its norm, before the ReLU)")
    ax.set_ylabel(ylabel)
    ax.set_xticks(conv_layers)
    ax.grid(alpha=0.3)
axes[0].set_yscale("log")
axes[1].set_ylim(bottom=0)
axes[2].set_ylim(bottom=0)
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=len(SPECS), frameon=False, title="spec")
fig.suptitle(f"plain8 at initialisation, layer by layer ({C} channels, batch {BATCH})",
             fontsize=12)
fig.tight_layout(rect=(0, 0.1, 1, 1))
plt.show()

# %% [markdown]
# ## 4. The variance from layer to layer, and the classifier
#
# WA aims at eq. (9), $\tfrac n2 \operatorname{Var}[w] = 1$, to keep the variance equal from
# layer to layer. The ratio of the mean square of conv layer $l$ to that of layer $l-1$
# (averaged over $l = 2..7$) measures how close that comes at initialisation.

# %%
print(f"{'spec':<7} {'E[x_l^2] / E[x_(l-1)^2], mean over l = 2..7':>44}")
for spec in SPECS:
    ms = depth[spec][:7, 3] ** 2
    print(f"{spec:<7} {np.mean(ms[1:] / ms[:-1]):>44.3f}")
print(f"\nfor filters with an exactly zero sum and ReLU inputs: 1 - 1/pi = {1 - 1 / np.pi:.3f} "
      f"(see notebook 02 and wa.functional.WeightAlign)")


# %% [markdown]
# The paper reads its baseline's classifier as a *constant output*: one class wins for every
# input. Measured here by the share of the batch that goes to the most frequent class, with the
# per-class logit's spread over the batch (`sd over batch`, mean over classes) next to the
# spread of the class logits' means (`sd of class means`). `plain8` averages the last feature
# map over all $32 \times 32$ positions before its classifier; to see what that averaging does,
# the same classifier is also applied to the features at one position (the centre) instead.

# %%
def classifier_stats(logits):
    """(mean over classes of each logit's sd over the batch, sd of the class means, top share)."""
    counts = np.bincount(logits.argmax(axis=0), minlength=logits.shape[0])
    return logits.std(axis=1).mean(), logits.mean(axis=1).std(), counts.max() / counts.sum()


print(f"{'':<7} {'---- average-pooled features (plain8) ----':>44}   "
      f"{'-------- features at one position --------':>44}")
head = f"{'sd over batch':>14} {'sd of class means':>18} {'top share':>10}"
print(f"{'spec':<7} {head}   {head}")
for spec in SPECS:
    a = classifier_stats(results[spec][8])
    b = classifier_stats(one_position[spec])
    print(f"{spec:<7} {a[0]:>14.3f} {a[1]:>18.3f} {a[2]:>10.2f}   "
          f"{b[0]:>14.3f} {b[1]:>18.3f} {b[2]:>10.2f}")


# %% [markdown]
# ## 5. What the numbers show
#
# The key numbers, over all channels, gathered from the outputs above:

# %%
def stat(spec, layer, key):
    return activations.summarize(results[spec][layer])[key]


print(f"{'spec':<7} {'std(mu_c) at conv1 / conv3 / conv7':>36} {'mean(sd_c) +- std(sd_c) at conv7':>34}")
for spec in SPECS:
    means = " / ".join(f"{stat(spec, l, 'std_of_means'):.2g}" for l in (1, 3, 7))
    print(f"{spec:<7} {means:>36} {stat(spec, 7, 'mean_of_stds'):>26.3f} +- "
          f"{stat(spec, 7, 'std_of_stds'):.3f}")

# %% [markdown]
# Read off the full-mode outputs (64 channels, 128 samples; the quick mode's smaller network
# gives numbers of the same kind but not these):
#
# * **Baseline (`none`).** The channel means, all near 0 after conv1 (`std(mu_c)` 0.002), have
#   spread apart by conv3 (0.94) and stay apart (0.96 at conv7), which is more than the spread
#   within a channel there (`mean(sd_c)` 0.73). Kaiming initialisation does keep the overall
#   scale ($\sqrt{E[x^2]}$ stays between 1.2 and 1.43 over the 7 layers; the mean square changes by a
#   factor 0.95 per layer on average), but a growing share of it sits in per-channel offsets rather
#   than in variation between inputs: the drift of the paper's Fig. 2(a).
# * **BN and IN** make every channel zero-mean and unit-std at every conv layer, up to float32
#   rounding (`std(mu_c)` and `std(sd_c)` at $10^{-6}$ or below): BN over the batch and
#   positions, IN per sample over the positions.
# * **GN** (16 groups of 4 channels) standardizes each *group*, not each channel: the channel
#   means still spread (0.51 at conv3, 0.58 at conv7), a little over half as much as in the
#   baseline.
#   That fits the paper's "GN can also reduce ICS to some extent".
# * **LN** (one group of all 64 channels) fixes the scale per sample and nothing per channel: the
#   channel means drift almost as in the baseline (0.68 and 0.79).
# * **WA** keeps the channel means near 0 at every depth **without any batch statistics**
#   (`std(mu_c)` 0.037 at conv3 and 0.021 at conv7, against 0.94 and 0.96 for the baseline), and
#   the channels of a layer at nearly the same scale (`std(sd_c)` 0.009 at conv7). What it does
#   not do at initialisation is keep the variance constant: the mean square falls by a factor
#   0.67 per layer, close to $1 - 1/\pi \approx 0.68$ and not the 1 that eq. (9) aims for, so
#   the std within a channel is down to 0.42 at conv7. The reason (notebook 02 and the
#   docstring of `wa.functional.WeightAlign` go through it in detail):
#   eq. (7) counts the inputs' full second moment $E[y^2]$, but a filter whose weights sum to
#   exactly zero cancels the constant part $E[y]$ of its inputs, so only
#   $\operatorname{Var}[y] = E[y^2] - E[y]^2$ passes; for the ReLU of a zero-mean Gaussian that
#   is $(1 - 1/\pi)\, E[y^2]$. The learnable $\gamma$ of eq. (10) can absorb such a constant
#   factor once training starts.
# * **With WA added.** BN+WA and IN+WA are standardized exactly, as BN and IN. WA supplies what
#   GN and LN lack: GN+WA has `std(mu_c)` 0.030 / 0.020 at conv3 / conv7 and channel stds of
#   1.00 ± 0.03, LN+WA 0.040 / 0.051 and 1.00 ± 0.04, against 0.51 / 0.58 for GN alone and
#   0.68 / 0.79 for LN alone.
# * **The classifier.** Here our `plain8` does *not* reproduce the paper's reading. With its
#   global average pooling, every spec gives a constant output at initialisation: each logit
#   varies over the batch by 0.03 or less while the class logits' means spread by 0.2 to 1.1, and
#   one class takes the whole batch (top share 1.00) for every spec, BN included. The average
#   over 1024 positions of features computed from independent noise is nearly the same for
#   every input. Without the averaging (the classifier applied at one position) the picture is
#   the paper's: the baseline's class offsets (1.24) dominate the per-input variation (0.67) and
#   one class takes 48 % of the batch; BN 37 %, IN 35 %, LN 48 %, GN 24 %; WA alone 25 %, and
#   every combination with WA 20-25 %. GN and the WA specs come closest to the 10 % of a uniform
#   split.
