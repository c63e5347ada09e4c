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
# Before any training, what does each normalization do to the activations of a plain deep network?
# The paper's Fig. 2 (and supplementary Figs. 7-8): an 8-layer net (7 conv layers with ReLU, a
# linear classifier, Kaiming-initialised, no bias) fed 128 samples of N(0, 1); histograms of 8
# channels at conv layers 1, 3, 7 and the classifier. We rebuild it with `wa.models.build("plain8")`
# and `wa.activations`, measure what the histograms show, and (section 5) vary WA's scale factor
# against eq. (8). Symbols: [NOTATION.md](NOTATION.md).
#
# **Stored outputs:** full mode (`WA_QUICK` unset): 64 channels, batch 128 of `3 x 32 x 32`, seed
# 0, float32 on the CPU, training mode, every spec built from the same raw weights. Quick mode
# (`WA_QUICK=1`, the test suite): 16 channels, 32 samples; the numbers the text quotes are checked
# (`quote(...)` cells) only in full mode. A *spec* names the norm: `none`, `bn`, `gn` (with
# `wa.norms.num_groups(C)` groups, printed below), `ln` (one group), `in`, `wa` (eq. 10), `gn+wa`,
# ... A conv layer's values are its outputs after the norm, before the ReLU; the classifier's are
# the logits, one "channel" per class.

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
import _exercises as ex                     # the exercises' checkers (notebooks/_exercises.py)
from _quoted import quote                   # numbers the text quotes, asserted in full mode
from wa import activations, norms, plotstyle

plotstyle.use()

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

# %% [markdown]
# ## Predict first
#
# **Exercise 4.1.** plain8 with WA, $\gamma = 1$ and eq. (9)'s $n/2$: predict
# $\mathrm{Var}[x_7]/\mathrm{Var}[x_1]$, the variance at conv7 over that at conv1 (within 15 %;
# notebook 02, section 4 has what you need).
#
# **Exercise 4.2.** GroupNorm subtracts each group's mean and divides by its std, so a channel keeps
# its mean minus its group's mean. Predict by what factor the spread of the channel means at conv7
# grows when each group holds 4 channels instead of 2 (within 15 %).

# %%
wa_layer7_variance = None   # YOUR CODE: a number
gn_drift_ratio = None       # YOUR CODE: a number

# %%
ex.check("wa_layer7_variance", ex.answer("wa_layer7_variance", wa_layer7_variance))
ex.check("gn_drift_ratio", ex.answer("gn_drift_ratio", gn_drift_ratio))

# %% [markdown]
# The runs behind the checkers (plain8 at 64 channels, a batch of 16). *Answers:* six ReLU layers
# after conv1, each losing $1 - 1/\pi$ through centred filters: $(1-1/\pi)^6$. For $g$ i.i.d.
# channel means of spread $s$, a mean minus its group's mean has variance $s^2(1 - 1/g)$, so
# $\sqrt{(1-\tfrac14)/(1-\tfrac12)} = \sqrt{3/2}$; the measured factor is larger, because GN
# also divides by a group std that includes the spread of the means.

# %%
acts = ex.plain8_at_init("wa")
print(f"WA: Var[x_7] / Var[x_1] = {acts[6].var() / acts[0].var():.3f};  (1 - 1/pi)^6 = {(1 - 1 / np.pi) ** 6:.3f}")
spread = {g: ex.plain8_at_init("gn", g)[6].mean(axis=(0, 2, 3)).std() for g in (2, 4)}
print(f"GN: std(mu_c) at conv7 {spread[2]:.3f} (2 per group), {spread[4]:.3f} (4 per group), "
      f"factor {spread[4] / spread[2]:.3f};  sqrt(3/2) = {np.sqrt(1.5):.3f}")

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
# One row per spec, one column per layer; one curve per channel (the first 8; for the classifier
# the first 8 of the 10 logits): that channel's values over the batch and all positions. The
# x-axis is shared down each column; a narrow spike is a nearly constant channel.
#
# **Caveat for the classifier column.** `plain8` averages the last feature map over all positions
# before its classifier, and that average barely changes between noise inputs, so *every* spec,
# BN included, gives a nearly constant output. The paper's reading (a constant output is the
# baseline's failure) shows only without the averaging (section 4).

# %%
COLORS = plotstyle.COLORS


def histogram_grid(specs, title, bins=80):
    """Rows: specs; columns: layers; one step histogram per channel."""
    fig, axes = plt.subplots(len(specs), len(LAYERS), figsize=(14, 2.4 * len(specs) + 1.0),
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
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.045, 1, 1))
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
# channels of the per-channel means $\mu_c$ and standard deviations $\sigma_c$
# (`wa.activations.table`). Drift shows as a large `std(mu_c)`, a scale problem as `mean(sd_c)`
# far from 1, unequal channels as a large `std(sd_c)`. Values of $10^{-6}$ to $10^{-8}$ where a norm
# makes a statistic exactly 0 or 1 are **float32 rounding**, not an effect.

# %%
rows, text = activations.table(results)
print(text)
for spec in ("bn", "in", "bn+wa", "in+wa"):     # standardized per channel, to float32 rounding
    for layer in (1, 3, 7):
        s_ = activations.summarize(results[spec][layer])
        assert s_["std_of_means"] < 1e-5 and abs(s_["mean_of_stds"] - 1) < 1e-4, (spec, layer, s_)


# %% [markdown]
# The same statistics at every conv layer, one panel per spec, with the root mean square
# $\sqrt{E[x^2]}$ of all values (the models called directly, checked against the table).

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
conv_layers = np.arange(1, 8)                 # the classifier's logits are compared in section 4
FLOAT32 = 1e-5                                # below this, a statistic a norm fixes is rounding
panels = [(1, "std over c of $\\mu_c$ (drift)", "o-"), (2, "mean over c of $\\sigma_c$", "s-"),
          (3, "$\\sqrt{E[x^2]}$ (all values)", "^-")]
fig, axes = plt.subplots(2, 5, figsize=(16, 7), sharex=True, sharey=True)
for ax, spec in zip(axes.ravel(), SPECS):
    for k, label, style in panels:
        ax.plot(conv_layers, np.maximum(depth[spec][:7, k], 1e-9), style, color=plotstyle.COLORS[k],
                label=label)
    ax.axhspan(1e-9, FLOAT32, color="grey", alpha=0.15, lw=0,
               label="float32 rounding level ($<10^{-5}$)")
    ax.set(title=spec, yscale="log", ylim=(1e-9, 5), xticks=conv_layers)
for ax in axes[1]:
    ax.set_xlabel("conv layer")
for ax in axes[:, 0]:
    ax.set_ylabel("after the norm, before the ReLU")
fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=4, frameon=False)
fig.suptitle(f"plain8 at initialisation, one panel per spec ({C} channels, batch {BATCH})")
fig.tight_layout(rect=(0, 0.06, 1, 1))
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
# The classifier (the caveat under section 2's figure): the share of the batch that goes to the
# most frequent class, each logit's spread over the batch (`sd over batch`, mean over classes) and
# the spread of the class means, for plain8's average-pooled features and for the features at one
# position (the centre).

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
# ## 5. WA's scale factor and its two components, at initialisation
#
# Supplementary VIII-A trains with scale factors other than eq. (9)'s $\tfrac n2$ (larger or
# smaller multiples of $n$ train worse or fail; factors near $\tfrac n2$ are similar), and Table IV
# trains centring only and scaling only (ResNet-18 on CIFAR-100: 28.23 % error without WA, 27.97
# centring only, 28.03 scaling only, 24.92 both). Training is notebook 05's business; at
# initialisation we can see in seconds what each variant does to the variance. Eq. (8) predicts
# $\mathrm{Var}[x_l] = \tfrac12 n\mathrm{Var}[\hat w_l]\,\mathrm{Var}[x_{l-1}]$ from each layer's
# actual weights; for exactly centred filters notebook 02 adds the factor $1 - 1/\pi$.
# The *drift* column is the mean over channels of $|\mu_c|/\sigma_c$. The variants are `plain8` with `wa` whose layers get other settings of
# `wa.functional.weight_align` (`alpha`, `center`, `scale`), all from the same seed and batch:

# %%
VARIANTS = {   # name: (alpha, center, scale); None = no WA (the Kaiming baseline)
    "none": None, "wa (n/2)": (0.5, True, True), "wa, n/4": (0.25, True, True),
    "wa, n": (1.0, True, True), "wa, (1-1/pi) n/2": ((1 - 1 / np.pi) / 2, True, True),
    "centring only": (0.5, True, False), "scaling only": (0.5, False, True),
}
t0 = time.perf_counter()
init = {}
for name, setting in VARIANTS.items():
    mg.manual_seed(SEED)
    model = wa.models.build("plain8", norm="none" if setting is None else "wa", width=WIDTH)
    if setting is not None:
        for conv in model.convs:
            conv.alpha, conv.center, conv.scale = setting
    with mg.no_grad():
        _, acts = model(mg.Tensor(x), return_activations=True)
        weights = [(conv.effective_weight() if setting else conv.weight).numpy().astype(np.float64)
                   for conv in model.convs]
    a = [v.numpy().astype(np.float64) for v in acts[:7]]
    factor = [0.5 * w_[0].size * w_.reshape(len(w_), -1).var(axis=1).mean() for w_ in weights]
    init[name] = dict(var=np.array([v.var() for v in a]), factor=np.array(factor),
                      drift=np.array([(np.abs(v.mean(axis=(0, 2, 3))) / v.std(axis=(0, 2, 3))).mean()
                                      for v in a]), centred=setting is not None and setting[1])
rows = []
for name, r in init.items():
    measured = r["var"][1:] / r["var"][:-1]
    rows.append([name, r["factor"][1:].mean(), measured.mean(),
                 (1 - 1 / np.pi) * r["factor"][1:].mean() if r["centred"] else "-", r["drift"][1:].mean()])
print(f"{'variant':<18} {'eq. (8) factor':>15} {'measured ratio':>15} {'x (1-1/pi)':>11} {'drift':>7}")
for name, f8, m, fc, d in rows:
    print(f"{name:<18} {f8:>15.3f} {m:>15.3f} {fc if fc == '-' else f'{fc:.3f}':>11} {d:>7.3f}")
print(f"(layers 2-7, pooled variance; {time.perf_counter() - t0:.1f} s)")

fig, axes = plt.subplots(1, len(VARIANTS), figsize=(17, 3.8), sharey=True)
layers = np.arange(1, 8)
for ax, (name, r) in zip(axes, init.items()):
    chain = r["var"][0] * np.concatenate([[1.0], np.cumprod(r["factor"][1:])])
    ax.plot(layers, r["var"], "o-", color=plotstyle.COLORS[0], label="measured")
    ax.plot(layers, chain, "--", color=plotstyle.COLORS[4], label="eq. (8), from layer 1")
    if r["centred"]:
        ax.plot(layers, chain * (1 - 1 / np.pi) ** (layers - 1), ":", color=plotstyle.COLORS[5],
                lw=2.5, label="eq. (8) x (1-1/pi) per layer")
    ax.set(title=name, yscale="log", xticks=layers, xlabel="conv layer")
axes[0].set_ylabel("Var[$x_l$] (pooled)")
fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=3, frameon=False)
fig.tight_layout(rect=(0, 0.1, 1, 1))
plt.show()

# %%
ratio = {name: (r["var"][1:] / r["var"][:-1]).mean() for name, r in init.items()}
drift = {name: r["drift"][1:].mean() for name, r in init.items()}
quote("ratio per layer, wa n/4", ratio["wa, n/4"], "1.34", 0.01)
quote("ratio per layer, wa n", ratio["wa, n"], "0.34", 0.01)
quote("ratio per layer, wa (1-1/pi) n/2", ratio["wa, (1-1/pi) n/2"], "0.99", 0.01)
quote("drift, centring only", drift["centring only"], "0.09", 0.005)
quote("drift, none", drift["none"], "0.84", 0.005)
quote("ratio per layer, scaling only", ratio["scaling only"], "0.99", 0.01)
quote("drift, scaling only", drift["scaling only"], "0.97", 0.005)

# %% [markdown]
# The scale factor sets the ratio as eq. (8) says, times $1-1/\pi$ for centred filters: $n/4$
# gives 1.34 per layer, $n$ gives 0.34, and only $\alpha = \tfrac12(1-1/\pi)$ keeps a centred
# net's variance about constant (0.99). **Centring only** removes most of the drift (0.09 against
# the baseline's 0.84) and loses $1-1/\pi$ per layer; **scaling only** keeps eq. (8)'s ratio
# (0.99) and the baseline's drift (0.97). Neither alone gives centred channels at a constant
# scale; whether that is why each helps less in Table IV needs training.

# %% [markdown]
# ## 6. What the numbers show
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

# %%
def top_share(logits):
    return classifier_stats(logits)[2]


quote("std(mu_c) none conv1", stat("none", 1, "std_of_means"), "0.002", 0.0005)
for spec, t3, t7 in [("none", "0.94", "0.96"), ("gn", "0.39", "0.42"), ("ln", "0.68", "0.79"),
                     ("wa", "0.037", "0.021"), ("gn+wa", "0.024", "0.015"), ("ln+wa", "0.040", "0.051")]:
    tol = 0.005 if float(t3) > 0.1 else 0.0005
    quote(f"std(mu_c) {spec} conv3", stat(spec, 3, "std_of_means"), t3, tol)
    quote(f"std(mu_c) {spec} conv7", stat(spec, 7, "std_of_means"), t7, tol)
quote("mean(sd_c) none conv7", stat("none", 7, "mean_of_stds"), "0.73", 0.005)
quote("mean square ratio per layer, none", np.mean(depth["none"][1:7, 3] ** 2 / depth["none"][:6, 3] ** 2),
      "0.95", 0.005)
quote("mean square ratio per layer, wa", np.mean(depth["wa"][1:7, 3] ** 2 / depth["wa"][:6, 3] ** 2),
      "0.67", 0.005)
quote("std(sd_c) wa conv7", stat("wa", 7, "std_of_stds"), "0.009", 0.0005)
quote("mean(sd_c) wa conv7", stat("wa", 7, "mean_of_stds"), "0.42", 0.005)
quote("std(sd_c) gn+wa conv7", stat("gn+wa", 7, "std_of_stds"), "0.015", 0.0005)
quote("std(sd_c) ln+wa conv7", stat("ln+wa", 7, "std_of_stds"), "0.02", 0.005)
quote("largest sd over batch of a pooled logit", max(classifier_stats(results[s_][8])[0] for s_ in SPECS),
      "0.03", 0.005)
quote("none at one position: sd of class means", classifier_stats(one_position["none"])[1], "1.24", 0.005)
quote("none at one position: sd over batch", classifier_stats(one_position["none"])[0], "0.67", 0.005)
for spec, share in [("none", "48 %"), ("bn", "37 %"), ("in", "35 %"), ("ln", "48 %"), ("gn", "47 %"),
                    ("wa", "25 %")]:
    quote(f"top share at one position, {spec}", top_share(one_position[spec]), share, 0.005)
with_wa = [top_share(one_position[s_]) for s_ in SPECS if s_.endswith("+wa")]
quote("top share at one position, lowest with WA", min(with_wa), "20 %", 0.005)
quote("top share at one position, highest with WA", max(with_wa), "25 %", 0.005)

# %% [markdown]
# Read off the full-mode outputs (each number is one of the `quoted` lines above):
#
# * **Baseline (`none`).** The channel means, near 0 after conv1 (`std(mu_c)` 0.002), spread
#   apart by conv3 (0.94) and stay apart (0.96 at conv7), more than the spread within a channel
#   (`mean(sd_c)` 0.73). Kaiming keeps the overall scale (mean square 0.95 times the previous
#   layer's), but a growing share of it sits in per-channel offsets: the drift of Fig. 2(a).
# * **BN and IN** make every channel zero-mean and unit-std at every conv layer, up to float32
#   rounding (asserted in section 3).
# * **GN** (32 groups of 2 channels) standardizes each *group*: the channel means still spread
#   (0.39 at conv3, 0.42 at conv7), under half the baseline's: the paper's "GN can also reduce
#   ICS to some extent". **LN** (one group) drifts almost as the baseline (0.68 and 0.79).
# * **WA** keeps the channel means near 0 **without batch statistics** (0.037 at conv3, 0.021 at
#   conv7) and the channels of a layer at one scale (`std(sd_c)` 0.009 at conv7). Its $\gamma$
#   starts at 1, so at initialisation eq. (9)'s $n/2$ does not keep the variance: the mean square
#   shrinks by 0.67 per layer, $1 - 1/\pi$ for centred filters (notebook 02, section 4), and the
#   std within a channel is 0.42 at conv7. A $\gamma$ that grew to $1/\sqrt{1-1/\pi}$, or
#   section 5's $\alpha$, would undo it; whether training does is notebook 05's question.
# * **With WA added**, GN+WA has `std(mu_c)` 0.024 / 0.015 at conv3 / conv7 and LN+WA
#   0.040 / 0.051, with channel stds 1 ± 0.015 and 1 ± 0.02; BN+WA and IN+WA are exact.
# * **The classifier**: after global average pooling every spec gives a constant output (each
#   logit varies over the batch by 0.03 or less). At one position the picture is the paper's: the
#   baseline's class offsets (1.24) dominate the per-input variation (0.67) and one class takes
#   48 % of the batch; BN 37 %, IN 35 %, LN 48 %, GN 47 %, WA 25 %, every combination with WA
#   20 % to 25 % (10 % would be a uniform split). GN, with 2 channels per group, sits with the
#   baseline here, not with WA.
