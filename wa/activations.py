"""wa-activations: per-channel activation histograms, the paper's Fig. 2 and supplementary
Figs. 7-8.

    wa-activations                                   # plain8 at initialisation, 10 norm specs
    wa-activations --norms none,bn,gn,wa,gn+wa       # the five panels of Fig. 2
    wa-activations --checkpoint runs/my-plain8-run   # a trained plain8, fed a test batch

At initialisation the network is `plain8` (7 conv3x3 layers with ReLU and a linear classifier,
Kaiming init, no bias), in training mode, fed one batch of 128 samples of N(0, 1): what a
normalization does before any learning.  For each norm spec it records, at conv layers 1, 3, 7
(after the norm, before the ReLU) and at the classifier's outputs, the values of 8 channels over
the batch and all positions, and draws one histogram per channel.  Without any normalization
the channels drift apart layer by layer and the classifier's outputs become nearly constant
(one class wins for every input); BN, GN, ... and WA keep them centred and of similar spread
(section III of the paper: eqs. (4)-(9) for why zero-mean filters with (n/2) Var[w] = 1 keep
the activations centred and their variance constant).

Specs may be WA variants (wa[center], wa[scale], wa[alpha=A]: Table IV and Fig. 6), and
--gn-groups / --gn-min-channels set the group rule of gn and bcn as in wa-train (with
--checkpoint the run's own rule from its config.json is used instead).

The printed table gives, per spec and layer, the mean and the std across the channels of the
per-channel means (drift shows as channel means far from 0 and from each other) and of the
per-channel stds (exploding or vanishing scale).  The same numbers go to a .csv next to the PNG.
"""
import argparse
import csv
import json
import os
import sys

import numpy as np

import minigrad as mg
from minigrad import backend
from . import data as wadata
from . import models, norms, plotstyle

DEFAULT_NORMS = ("none", "bn", "gn", "ln", "in", "wa", "bn+wa", "gn+wa", "ln+wa", "in+wa")
LAYERS = (1, 3, 7, 8)          # conv layers 1, 3, 7 and the classifier (the 8th layer)


def layer_name(layer):
    return "classifier" if layer == 8 else f"conv{layer}"


def record(model, x, channels=8):
    """{layer: (values of `channels` channels, shape (channels, N*H*W))} for LAYERS."""
    with mg.no_grad():
        _, acts = model(x, return_activations=True)
    out = {}
    for layer in LAYERS:
        a = backend.as_numpy(acts[layer - 1].data)
        k = min(channels, a.shape[1])
        # (N, C, ...) -> (C, N * positions): one row of samples per channel.
        out[layer] = np.moveaxis(a[:, :k], 1, 0).reshape(k, -1).astype(np.float64)
    return out


def summarize(values):
    """Mean and std across channels of the per-channel means and stds."""
    m, s = values.mean(axis=1), values.std(axis=1)
    return {"mean_of_means": m.mean(), "std_of_means": m.std(),
            "mean_of_stds": s.mean(), "std_of_stds": s.std()}


def at_init(specs, batch=128, width=1.0, seed=0, channels=8, device="cpu",
            gn_groups=norms.GN_GROUPS, gn_min_channels=norms.GN_MIN_CHANNELS):
    """{spec: record(...)} for plain8 at initialisation, all fed the same N(0, 1) batch
    (gn_groups, gn_min_channels: the group rule of gn and bcn, see `wa.norms`)."""
    x = np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    x = backend.to_device(x, device)
    result = {}
    for spec in specs:
        mg.nn.init.manual_seed(seed)          # the same raw weights for every spec
        model = models.build("plain8", norm=spec, width=width, gn_groups=gn_groups,
                             gn_min_channels=gn_min_channels).to(device)
        model.train()                         # batch statistics, as at the first training step
        result[spec] = record(model, x, channels)
    return result


def from_checkpoint(run_dir, batch=128, channels=8, device="cpu", data_dir=None):
    """record(...) for the trained plain8 of a wa-train run folder, fed its first test images."""
    from .run_folder import load_checkpoint
    with open(os.path.join(run_dir, "config.json")) as f:
        cfg = json.load(f)["settings"]
    if cfg["model"] != "plain8":
        raise ValueError(f"{run_dir} trained {cfg['model']}; activations are recorded for "
                         "plain8 only (its forward returns them)")
    ds = wadata.load_dataset(cfg["dataset"], data_dir or cfg.get("data_dir"), False,
                             cfg.get("limit_train"), batch)
    # The run's own group rule; a run folder from before the flags used >= 4 channels per group.
    model = models.build("plain8", norm=cfg["norm"], num_classes=ds.num_classes, width=cfg["width"],
                         gn_groups=cfg.get("gn_groups", norms.GN_GROUPS),
                         gn_min_channels=cfg.get("gn_min_channels", norms.LEGACY_GN_MIN_CHANNELS))
    model.load_state_dict(load_checkpoint(os.path.join(run_dir, "checkpoint.npz"))["model"])
    model.to(device).eval()
    _, test = wadata.make_loaders(ds, cfg["batch_size"], device=device, test_batch_size=batch)
    x, _ = next(iter(test))
    return {cfg["norm"]: record(model, x, channels)}


def table(results):
    rows = [{"spec": spec, "layer": layer_name(layer), **summarize(v)}
            for spec, layers in results.items() for layer, v in layers.items()]
    w = max([8] + [len(r["spec"]) for r in rows])
    head = f"{'spec':<{w}} {'layer':<10} {'mean(mu_c)':>11} {'std(mu_c)':>10} {'mean(sd_c)':>11} {'std(sd_c)':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['spec']:<{w}} {r['layer']:<10} {r['mean_of_means']:>11.3g} "
                     f"{r['std_of_means']:>10.3g} {r['mean_of_stds']:>11.3g} {r['std_of_stds']:>10.3g}")
    return rows, "\n".join(lines)


def plot(results, path, bins=60, title=""):
    """One row per spec, one column per layer; in each panel one histogram per channel."""
    plt = plotstyle.pyplot()
    if plt is None:
        return False
    specs = list(results)
    layers = list(next(iter(results.values())))
    fig, axes = plt.subplots(len(specs), len(layers), figsize=(3 * len(layers), 1.9 * len(specs)),
                             squeeze=False)
    for i, spec in enumerate(specs):
        for j, layer in enumerate(layers):
            ax, v = axes[i, j], results[spec][layer]
            lo, hi = np.percentile(v, [0.5, 99.5])
            if hi <= lo:
                lo, hi = lo - 1, hi + 1
            edges = np.linspace(lo, hi, bins + 1)
            for c in range(len(v)):
                counts, _ = np.histogram(v[c], edges, density=True)
                ax.stairs(counts, edges, linewidth=1)
            ax.set_yticks([])
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(layer_name(layer), fontsize=9)
            if j == 0:
                ax.set_ylabel(spec, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if title else None)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path)
    plt.close(fig)
    return True


def build_parser():
    p = argparse.ArgumentParser(prog="wa-activations", description=__doc__.split("\n\n")[0])
    p.add_argument("--norms", default=",".join(DEFAULT_NORMS),
                   help="comma-separated norm specs, WA variants included (wa[center], wa[scale], "
                   "wa[alpha=A]) [default: %(default)s]")
    from .train import add_group_flags
    add_group_flags(p)
    p.add_argument("--checkpoint", metavar="RUN_DIR", default=None,
                   help="a wa-train run folder of plain8: its trained weights, fed test images")
    p.add_argument("--batch", type=int, default=128, help="samples in the batch [128]")
    p.add_argument("--channels", type=int, default=8, help="channels per layer [8]")
    p.add_argument("--width", type=float, default=1.0, help="plain8 width multiplier [1.0 = 64 channels]")
    p.add_argument("--bins", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="activations.png", help="PNG path; the .csv goes beside it")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("batch", "channels", "bins"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not args.width > 0:
        parser.error("--width must be positive")
    if args.device == "cuda" and not backend.is_available("cuda"):
        parser.error("--device cuda: no usable GPU; use --device cpu")
    if args.checkpoint:
        if not os.path.isfile(os.path.join(args.checkpoint, "checkpoint.npz")):
            parser.error(f"--checkpoint {args.checkpoint}: no checkpoint.npz there")
        try:
            results = from_checkpoint(args.checkpoint, args.batch, args.channels, args.device,
                                      args.data_dir)
        except (ValueError, wadata.DatasetError) as e:
            parser.error(" ".join(str(e).split()))
        title = f"trained plain8 ({args.checkpoint}), {args.batch} test images"
    else:
        try:
            specs = [norms.canonical(s) for s in norms.split_specs(args.norms)]
        except ValueError as e:
            parser.error(f"--norms: {e}")
        if args.batch == 1 and any(norms.parse(s).activation == "bn" for s in specs):
            parser.error("--batch 1 with a bn spec: BatchNorm needs more than one sample")
        results = at_init(specs, args.batch, args.width, args.seed, args.channels, args.device,
                          args.gn_groups, args.gn_min_channels)
        title = f"plain8 at initialisation, {args.batch} samples of N(0, 1)"
    rows, text = table(results)
    print(title)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    csv_path = os.path.splitext(args.out)[0] + ".csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if plot(results, args.out, args.bins, title):
        print(f"wrote {args.out} and {csv_path}")
    else:
        print(f"wrote {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
