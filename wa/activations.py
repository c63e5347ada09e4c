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
import csv
import json
import os
import sys

import numpy as np

import minigrad as mg
from minigrad import backend
from . import data as wadata
from . import cli, models, norms, plotstyle
from .train import add_group_flags, seed_value

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
    """One row per spec, one column per layer; in each panel one histogram per channel (the same
    colour is the same channel everywhere).  The panels of a column share their x range, so a
    spread that shrinks or grows from one norm to the next shows as a narrower or wider curve."""
    plt = plotstyle.pyplot()
    if plt is None:
        return False
    specs = list(results)
    layers = list(next(iter(results.values())))
    fig, axes = plt.subplots(len(specs), len(layers), figsize=(3 * len(layers), 1.9 * len(specs) + 0.8),
                             squeeze=False, sharex="col")
    for j, layer in enumerate(layers):
        # the column's range: the central 99 % of every spec's values at this layer
        lo = min(np.percentile(results[spec][layer], 0.5) for spec in specs)
        hi = max(np.percentile(results[spec][layer], 99.5) for spec in specs)
        if hi <= lo:
            lo, hi = lo - 1, hi + 1
        edges = np.linspace(lo, hi, bins + 1)
        for i, spec in enumerate(specs):
            ax, v = axes[i, j], results[spec][layer]
            for c in range(len(v)):
                counts, _ = np.histogram(v[c], edges)
                ax.stairs(counts / max(counts.sum(), 1), edges, linewidth=1, label=f"channel {c}")
            ax.set_yticks([])
            ax.tick_params(labelsize=9)
            ax.xaxis.set_major_locator(plt.MaxNLocator(4))
            if i == 0:
                ax.set_title(layer_name(layer), fontsize=10)
            if j == 0:
                ax.set_ylabel(spec, fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    top = 1 - 0.9 / fig.get_figheight()          # room for the title and the legend
    fig.supxlabel("activation value (x ranges shared within a column); y: share of the values "
                  "in each bin", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, top),
               ncol=min(len(labels), 8), fontsize=9, frameon=False,
               title="colour = one output channel (the same in every panel)", title_fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11, y=0.998)
    fig.savefig(path)
    plt.close(fig)
    return True


def build_parser():
    p = cli.Parser(prog="wa-activations", allow_abbrev=False, description="Per-channel activation "
                   "histograms of plain8 under several norms: the paper's Fig. 2 and supplementary "
                   "Figs. 7-8.")
    p.add_argument("--norms", "--norm", default=None,
                   help="comma-separated norm specs, WA variants included (wa[center], wa[scale], "
                   f"wa[alpha=A]) [default: {','.join(DEFAULT_NORMS)}]")
    add_group_flags(p)
    p.add_argument("--checkpoint", metavar="RUN_DIR", default=None,
                   help="a wa-train run folder of plain8: its trained weights (and its own norm "
                   "and group rule), fed test images [default: plain8 at initialisation]")
    p.add_argument("--batch-size", "--batch", dest="batch", type=int, default=128,
                   help="samples fed through the network")
    p.add_argument("--channels", type=int, default=8,
                   help="channels drawn (and summarised) per layer")
    p.add_argument("--width", type=float, default=1.0,
                   help="plain8 width multiplier (1.0 = 64 channels per conv)")
    p.add_argument("--bins", type=int, default=60, help="histogram bins per panel")
    p.add_argument("--seed", type=seed_value, default=0, help="the weights and the N(0, 1) batch")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to compute")
    p.add_argument("--data-dir", default=None, help="where the run's data set is, with "
                   "--checkpoint only [default: the run's own]")
    p.add_argument("--out", default="activations.png",
                   help="PNG path (a folder, or a path ending in /, gets activations.png in it); "
                   "the .csv goes beside it")
    return p


def output_paths(out):
    """(png, csv) for --out: a folder (existing, or ending in a separator) gets activations.png
    in it; a name without an extension gets .png."""
    if out.endswith(("/", os.sep)) or os.path.isdir(out):
        out = os.path.join(out, "activations.png")
    root, ext = os.path.splitext(out)
    return (out if ext else root + ".png"), root + ".csv"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("batch", "channels", "bins"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('batch', 'batch-size')} must be at least 1")
    if not args.width > 0:
        parser.error("--width must be positive")
    cli.check_device(args.device, parser.error)
    png, csv_path = output_paths(args.out)
    # before the computation: a figure that cannot be written is known now, not in a minute
    problem = cli.unwritable_folder(os.path.dirname(os.path.abspath(png)), "--out")
    if problem:
        parser.error(problem)
    if args.checkpoint:
        if args.norms is not None:
            parser.error("--norms does not go with --checkpoint: the run's own norm is used")
        if not os.path.isfile(os.path.join(args.checkpoint, "checkpoint.npz")):
            parser.error(f"--checkpoint {args.checkpoint}: no checkpoint.npz there")
        try:
            results = from_checkpoint(args.checkpoint, args.batch, args.channels, args.device,
                                      args.data_dir)
        except (ValueError, wadata.DatasetError) as e:
            parser.error(" ".join(str(e).split()))
        title = f"trained plain8 ({args.checkpoint}), {args.batch} test images"
    else:
        specs = []
        for spec in norms.split_specs(args.norms or ",".join(DEFAULT_NORMS)):
            try:
                specs.append(norms.canonical(spec))
            except ValueError as e:
                parser.error(cli.norm_spec_error("--norms", spec, e))
        if args.batch == 1 and any(norms.parse(s).activation == "bn" for s in specs):
            parser.error("--batch-size 1 with a bn spec: BatchNorm needs more than one sample")
        with np.errstate(invalid="ignore", divide="ignore"):   # one sample: norms of 0 / 0
            results = at_init(specs, args.batch, args.width, args.seed, args.channels, args.device,
                              args.gn_groups, args.gn_min_channels)
        title = f"plain8 at initialisation, {args.batch} samples of N(0, 1)"
    rows, text = table(results)
    print(title)
    print(text)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if plot(results, png, args.bins, title):
        print(f"wrote {png} and {csv_path}")
    else:
        print(f"wrote {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
