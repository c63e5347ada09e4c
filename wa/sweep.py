"""wa-sweep: test error against batch size (the paper's Fig. 3) and against depth (Table III)
for several norm specs, over several seeds.

    wa-sweep --norms bn,wa,gn+wa --batch-sizes 64,8,4,2,1 --model resnet20 --seeds 0,1,2
    wa-sweep --norms wa --model resnet18,resnet34,resnet50 --batch-sizes 64,1 --seeds 0,1,2
    wa-sweep --norms wa,wa[center],wa[scale] --model resnet20 --batch-sizes 64 --seeds 0,1,2
    wa-sweep ... (the same command again)     # resumes: finished runs are kept, a cut one continues

Every (model, norm, batch size, seed) is one wa-train run, in
OUT/runs/<model>-<norm>-b<batch>-s<seed>/, trained one after another with the same budget: the
same number of epochs (so the same number of images seen, and more, smaller steps at small
batches), the same data, and the learning rate scaled with the batch size by wa-train's rule
unless --lr fixes it.  The seed changes the initialisation, the shuffling and the augmentation.
Cells where a norm is not defined are skipped and marked n/a: BatchNorm at batch 1 (one sample
has no batch statistics worth the name; the paper's Table II lists it as impossible), and any
run wa-train refuses.

Several seeds, and why: a toy-scale run's test error moves by a point or more from seed to seed,
often more than the differences the paper reports between norms.  Each (model, norm, batch size)
cell is summarised by the mean over its seeds and the standard error of that mean,
s.e. = sd / sqrt(k) (sd with k - 1 in the denominator, k finished seeds).  In the printed table
the best mean of each column is marked "*", and a mean whose difference from the best is less
than twice the standard error of that difference, 2 sqrt(se_best^2 + se^2), is marked "~": with
this many seeds the two cannot be told apart.  With one seed there is no standard error and no
such mark.

Writes OUT/results.csv (one row per run), OUT/summary.csv (one row per cell: runs, mean, s.e.,
min, max of the test error), OUT/results.png (mean test error +- s.e. against batch size, one
line per norm, one panel per model) and prints the table.
"""
import argparse
import csv
import json
import math
import os
import sys

from . import norms, plotstyle
from . import train as T

FIELDS = ("model", "norm", "batch_size", "seed", "status", "epochs_done", "test_error", "test_acc",
          "train_loss", "lr", "seconds", "run_dir")
SUMMARY_FIELDS = ("model", "norm", "batch_size", "runs", "seeds", "test_error_mean",
                  "test_error_se", "test_error_min", "test_error_max", "status")


def _csv_list(kind):
    def parse(text):
        try:
            items = [kind(t.strip()) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
        if not items:
            raise argparse.ArgumentTypeError("empty list")
        return items
    return parse


def _split_specs(text):
    items = norms.split_specs(text)
    if not items:
        raise argparse.ArgumentTypeError("empty list")
    return items


def build_parser():
    p = argparse.ArgumentParser(prog="wa-sweep", description="Test error against batch size "
                                "(Fig. 3) or depth (Table III) for several norm specs and seeds.")
    a = p.add_argument
    a("--norms", type=_split_specs, default=["bn", "wa", "gn+wa"],
      help="comma-separated norm specs, e.g. bn,wa,gn+wa,wa[center]")
    a("--batch-sizes", type=_csv_list(int), default=[64, 8, 4, 2, 1])
    a("--model", "--models", dest="models", type=_csv_list(str), default=["resnet20"],
      help="one model or several, comma-separated (e.g. resnet18,resnet34,resnet50: Table III)")
    a("--dataset", default="cifar10-sample")
    a("--epochs", type=int, default=15, help="the budget, the same for every run")
    a("--lr", type=float, default=None, help="fixed lr [default: wa-train's batch-size rule]")
    a("--schedule", default="cosine")
    a("--width", type=float, default=1.0)
    a("--limit-train", type=int, default=None)
    a("--limit-test", type=int, default=None)
    a("--seeds", type=_csv_list(int), default=None,
      help="comma-separated seeds, one run per seed in every cell [default: --seed]")
    a("--seed", type=int, default=0, help="the one seed when --seeds is not given")
    T.add_group_flags(p)
    a("--device", default="cpu")
    a("--data-dir", default=None)
    a("--no-download", action="store_true")
    a("--out", default=None, help="sweep folder [default: sweeps/DATASET-MODEL]")
    return p


def defined(norm, batch_size):
    """False where the paper calls a setting impossible: BatchNorm at batch 1."""
    return not (batch_size == 1 and norms.parse(norm).activation == "bn")


def run_dir_for(args, model, norm, bs, seed):
    """OUT/runs/<model>-<norm>-b<bs>-s<seed>; a sweep folder from before seeds, with its runs in
    OUT/runs/<norm>-b<bs>, keeps using those where model and seed match."""
    legacy = os.path.join(args.out, "runs", f"{norm}-b{bs}")
    try:
        with open(os.path.join(legacy, "config.json")) as f:
            s = json.load(f)["settings"]
        if s["model"] == model and s["seed"] == seed:
            return legacy
    except (OSError, ValueError, KeyError):
        pass
    return os.path.join(args.out, "runs", f"{model}-{norm}-b{bs}-s{seed}")


def run_one(args, model, norm, bs, seed, run_dir):
    """Train (or resume, or just read) one run; returns its results row."""
    row = {"model": model, "norm": norm, "batch_size": bs, "seed": seed, "run_dir": run_dir}
    if not defined(norm, bs):
        return {**row, "status": "n/a: BatchNorm needs more than one sample"}
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    done = _read_metrics(metrics_path)
    if len(done) < args.epochs:
        argv = ["--model", model, "--norm", norm, "--dataset", args.dataset,
                "--batch-size", str(bs), "--epochs", str(args.epochs), "--schedule", args.schedule,
                "--width", str(args.width), "--seed", str(seed), "--device", args.device,
                "--gn-groups", str(args.gn_groups), "--gn-min-channels", str(args.gn_min_channels),
                "--out", run_dir]
        argv += ["--lr", str(args.lr)] if args.lr is not None else []
        argv += ["--limit-train", str(args.limit_train)] if args.limit_train else []
        argv += ["--limit-test", str(args.limit_test)] if args.limit_test else []
        argv += ["--data-dir", args.data_dir] if args.data_dir else []
        argv += ["--no-download"] if args.no_download else []
        if os.path.isfile(os.path.join(run_dir, "checkpoint.npz")):
            argv.append("--resume")
        cfg, _ = T.parse_config(argv, prog="wa-sweep")
        try:
            code = T.Trainer(cfg).run()
        except T.ConfigError as e:
            return {**row, "status": f"n/a: {e}"}
        if code == 130:
            raise KeyboardInterrupt
        done = _read_metrics(metrics_path)
        if code != 0:
            return {**row, "status": "diverged" if code == 1 else f"failed ({code})",
                    "epochs_done": len(done)}
    last = done[-1]
    with open(os.path.join(run_dir, "config.json")) as f:
        lr = json.load(f)["settings"]["lr"]
    return {**row, "status": "done", "epochs_done": len(done), "test_acc": last["test_acc"],
            "test_error": 1 - last["test_acc"], "train_loss": last["train_loss"], "lr": lr,
            "seconds": sum(r["seconds"] for r in done)}


def _read_metrics(path):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _write(rows, path, fields):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def write_csv(rows, path):
    _write(rows, path, FIELDS)


def mean_se(values):
    """(mean, standard error of the mean) of a list; se is None for fewer than 2 values."""
    k = len(values)
    if k == 0:
        return None, None
    m = sum(values) / k
    if k < 2:
        return m, None
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (k - 1))
    return m, sd / math.sqrt(k)


def summarize(rows):
    """One row per (model, norm, batch size) cell, in the order the cells first appear."""
    cells = {}
    for r in rows:
        cells.setdefault((r["model"], r["norm"], r["batch_size"]), []).append(r)
    out = []
    for (model, norm, bs), runs in cells.items():
        errs = [r["test_error"] for r in runs if r.get("test_error") is not None]
        m, se = mean_se(errs)
        statuses = sorted({r["status"] for r in runs if r["status"] != "done"})
        out.append({"model": model, "norm": norm, "batch_size": bs, "runs": len(errs),
                    "seeds": " ".join(str(r["seed"]) for r in runs if r.get("test_error") is not None),
                    "test_error_mean": m, "test_error_se": se,
                    "test_error_min": min(errs) if errs else None,
                    "test_error_max": max(errs) if errs else None,
                    "status": "done" if not statuses else "; ".join(statuses)})
    return out


def write_summary(summary, path):
    _write(summary, path, SUMMARY_FIELDS)


def marks(summary):
    """{(model, norm, batch size): "*" (best mean of its column), "~" (within 2 s.e. of the
    difference from the best: not distinguishable) or ""}."""
    out = {}
    columns = {}
    for s in summary:
        if s["test_error_mean"] is not None:
            columns.setdefault((s["model"], s["batch_size"]), []).append(s)
    for cells in columns.values():
        best = min(cells, key=lambda s: s["test_error_mean"])
        for s in cells:
            key = (s["model"], s["norm"], s["batch_size"])
            if s is best:
                out[key] = "*" if len(cells) > 1 else ""
            elif s["test_error_se"] is not None and best["test_error_se"] is not None:
                diff_se = math.sqrt(s["test_error_se"] ** 2 + best["test_error_se"] ** 2)
                gap = s["test_error_mean"] - best["test_error_mean"]
                out[key] = "~" if gap < 2 * diff_se else ""
            else:
                out[key] = ""
    return out


def format_table(summary, models, norms_, batch_sizes):
    """Mean test error % +- s.e. per cell, one block per model."""
    cell = {(s["model"], s["norm"], s["batch_size"]): s for s in summary}
    mark = marks(summary)
    width = max(16, max(len(n) for n in norms_) + 2)
    seeds = max((s["runs"] for s in summary), default=0)
    lines = []
    for model in models:
        head = f"{model + ': error %':<{width}}" + "".join(f"{'b' + str(b):>15}" for b in batch_sizes)
        lines += [head, "-" * len(head)]
        for n in norms_:
            out = f"{n:<{width}}"
            for b in batch_sizes:
                s = cell.get((model, n, b))
                if s is None or s["test_error_mean"] is None:
                    out += f"{'n/a':>15}"
                    continue
                text = f"{100 * s['test_error_mean']:.2f}"
                if s["test_error_se"] is not None:
                    text += f" +-{100 * s['test_error_se']:.2f}"
                out += f"{text + (mark.get((model, n, b)) or ' '):>15}"
            lines.append(out)
        lines.append("")
    if seeds >= 2:
        lines.append("mean +- standard error over the seeds; * best in its column; ~ within 2 "
                     "s.e. of the difference from the best (not distinguishable at this many seeds)")
    else:
        lines.append("one seed per cell: no standard error, so no difference can be called real "
                     "(use --seeds 0,1,2)")
    return "\n".join(lines)


def plot(summary, models, norms_, batch_sizes, path, title):
    plt = plotstyle.pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.5), squeeze=False)
    pos = {b: i for i, b in enumerate(batch_sizes)}
    for ax, model in zip(axes[0], models):
        for n in norms_:
            pts = sorted((pos[s["batch_size"]], 100 * s["test_error_mean"],
                          100 * (s["test_error_se"] or 0.0)) for s in summary
                         if s["model"] == model and s["norm"] == n
                         and s["test_error_mean"] is not None)
            if pts:
                x, y, e = zip(*pts)
                ax.errorbar(x, y, yerr=e, fmt="o-", capsize=3, label=n)
        ax.set_xticks(range(len(batch_sizes)), [str(b) for b in batch_sizes])
        ax.set(xlabel="batch size", ylabel="test error (%), mean +- s.e.",
               title=model if len(models) > 1 else title)
        ax.grid(alpha=0.3)
        ax.legend()
    if len(models) > 1:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.norms = [norms.canonical(n) for n in args.norms]
    except ValueError as e:
        parser.error(f"--norms: {e}")
    from . import models as M
    unknown = [m for m in args.models if m not in M.names()]
    if unknown:
        parser.error(f"unknown --model {', '.join(unknown)}; choose among {', '.join(M.names())}")
    if any(b < 1 for b in args.batch_sizes) or args.epochs < 1:
        parser.error("batch sizes and --epochs must be positive")
    seeds = args.seeds if args.seeds is not None else [args.seed]
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds: each seed once, got {','.join(map(str, seeds))}")
    args.out = args.out or os.path.join("sweeps", f"{args.dataset}-{'-'.join(args.models)}")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    try:
        for model in args.models:
            for n in args.norms:
                for b in args.batch_sizes:
                    for seed in seeds:
                        run_dir = run_dir_for(args, model, n, b, seed)
                        print(f"\n=== {model} {n} at batch {b}, seed {seed} ===")
                        rows.append(run_one(args, model, n, b, seed, run_dir))
                        write_csv(rows, os.path.join(args.out, "results.csv"))  # a kill keeps the rest
    except KeyboardInterrupt:
        print(f"\nwa-sweep: interrupted; run the same command again to resume ({args.out})")
        return 130
    summary = summarize(rows)
    write_summary(summary, os.path.join(args.out, "summary.csv"))
    title = (f"{', '.join(args.models)} on {args.dataset}, {args.epochs} epochs, "
             f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}")
    print("\n" + title + "\n" + format_table(summary, args.models, args.norms, args.batch_sizes))
    png = os.path.join(args.out, "results.png")
    plot(summary, args.models, args.norms, args.batch_sizes, png, title)
    written = ", ".join(os.path.join(args.out, f) for f in ("results.csv", "summary.csv"))
    print(f"wrote {written}" + (f" and {png}" if os.path.isfile(png) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
