"""wa-sweep: test error against batch size for several norm specs, the paper's Fig. 3.

    wa-sweep --norms bn,wa,gn+wa --batch-sizes 64,8,4,2,1 --model resnet20 --epochs 15
    wa-sweep ... (the same command again)     # resumes: finished runs are kept, a cut one continues

Every (norm, batch size) pair is one wa-train run, in OUT/runs/<norm>-b<batch>/, trained one
after another with the same budget: the same number of epochs (so the same number of images
seen, and more, smaller steps at small batches), the same data and seed, and the learning rate
scaled with the batch size by wa-train's rule unless --lr fixes it.  Pairs where a norm is not
defined are skipped and marked n/a: BatchNorm at batch 1 (one sample has no batch statistics
worth the name; the paper's Table II lists it as impossible), and any pair wa-train refuses.

Writes OUT/results.csv (one row per pair), OUT/results.png (test error against batch size,
one line per norm) and prints the table of test errors.
"""
import argparse
import csv
import json
import os
import sys

from . import norms
from . import train as T

FIELDS = ("norm", "batch_size", "status", "epochs_done", "test_error", "test_acc", "train_loss",
          "lr", "seconds", "run_dir")


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


def build_parser():
    p = argparse.ArgumentParser(prog="wa-sweep", description="Test error against batch size "
                                "for several norm specs (the paper's Fig. 3).")
    a = p.add_argument
    a("--norms", type=_csv_list(str), default=["bn", "wa", "gn+wa"])
    a("--batch-sizes", type=_csv_list(int), default=[64, 8, 4, 2, 1])
    a("--model", default="resnet20")
    a("--dataset", default="cifar10-sample")
    a("--epochs", type=int, default=15, help="the budget, the same for every run")
    a("--lr", type=float, default=None, help="fixed lr [default: wa-train's batch-size rule]")
    a("--schedule", default="cosine")
    a("--width", type=float, default=1.0)
    a("--limit-train", type=int, default=None)
    a("--limit-test", type=int, default=None)
    a("--seed", type=int, default=0)
    a("--device", default="cpu")
    a("--data-dir", default=None)
    a("--no-download", action="store_true")
    a("--out", default=None, help="sweep folder [default: sweeps/DATASET-MODEL]")
    return p


def defined(norm, batch_size):
    """False where the paper calls a setting impossible: BatchNorm at batch 1."""
    return not (batch_size == 1 and norms.parse(norm).activation == "bn")


def run_one(args, norm, bs, run_dir):
    """Train (or resume, or just read) one pair; returns its results row."""
    row = {"norm": norm, "batch_size": bs, "run_dir": run_dir}
    if not defined(norm, bs):
        return {**row, "status": "n/a: BatchNorm needs more than one sample"}
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    done = _read_metrics(metrics_path)
    if len(done) < args.epochs:
        argv = ["--model", args.model, "--norm", norm, "--dataset", args.dataset,
                "--batch-size", str(bs), "--epochs", str(args.epochs), "--schedule", args.schedule,
                "--width", str(args.width), "--seed", str(args.seed), "--device", args.device,
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


def write_csv(rows, path):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def format_table(rows, norms_, batch_sizes):
    cell = {(r["norm"], r["batch_size"]): r for r in rows}
    head = f"{'test error %':<12}" + "".join(f"{'b' + str(b):>9}" for b in batch_sizes)
    lines = [head, "-" * len(head)]
    for n in norms_:
        out = f"{n:<12}"
        for b in batch_sizes:
            r = cell.get((n, b), {})
            out += f"{100 * r['test_error']:>9.2f}" if r.get("test_error") is not None else f"{'n/a':>9}"
        lines.append(out)
    return "\n".join(lines)


def plot(rows, norms_, batch_sizes, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from wa import plotstyle
        plotstyle.use()
    except ImportError:
        print("matplotlib is not installed: skipping the PNG (pip install matplotlib)")
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    pos = {b: i for i, b in enumerate(batch_sizes)}
    for n in norms_:
        pts = [(pos[r["batch_size"]], 100 * r["test_error"]) for r in rows
               if r["norm"] == n and r.get("test_error") is not None]
        if pts:
            ax.plot(*zip(*sorted(pts)), "o-", label=n)
    ax.set_xticks(range(len(batch_sizes)), [str(b) for b in batch_sizes])
    ax.set(xlabel="batch size", ylabel="test error (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.norms = [norms.canonical(n) for n in args.norms]
    except ValueError as e:
        parser.error(f"--norms: {e}")
    if any(b < 1 for b in args.batch_sizes) or args.epochs < 1:
        parser.error("batch sizes and --epochs must be positive")
    args.out = args.out or os.path.join("sweeps", f"{args.dataset}-{args.model}")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    try:
        for n in args.norms:
            for b in args.batch_sizes:
                run_dir = os.path.join(args.out, "runs", f"{n}-b{b}")
                print(f"\n=== {n} at batch {b} ===")
                rows.append(run_one(args, n, b, run_dir))
                write_csv(rows, os.path.join(args.out, "results.csv"))   # a kill keeps the rest
    except KeyboardInterrupt:
        print(f"\nwa-sweep: interrupted; run the same command again to resume ({args.out})")
        return 130
    title = f"{args.model} on {args.dataset}, {args.epochs} epochs"
    print("\n" + title + "\n" + format_table(rows, args.norms, args.batch_sizes))
    png = os.path.join(args.out, "results.png")
    plot(rows, args.norms, args.batch_sizes, png, title)
    print(f"wrote {os.path.join(args.out, 'results.csv')}" + (f" and {png}" if os.path.isfile(png) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
