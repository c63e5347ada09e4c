"""How should a WA (or WN) residual branch start closed?  Train resnet20 with each Fixup spec.

    python benchmarks/fixup_closing.py                       # every job, two at a time
    python benchmarks/fixup_closing.py --jobs 1 --runs /tmp/fixup-runs
    python benchmarks/fixup_closing.py --summarize           # only rebuild the tables
    git archive HEAD | tar -x -C /tmp/fixup-code             # a frozen copy of the code,
    git rev-parse HEAD > /tmp/fixup-code/COMMIT               # its version, then
    python benchmarks/fixup_closing.py --code /tmp/fixup-code   # to keep editing meanwhile

Each job is one `wa-train` run (defaults otherwise: the short recipe, cifar10-sample's 1,504
training and 360 test images, full-width resnet20) with a `--fixup` spec (see `wa.models`),
a batch size, an epoch count and a seed; `--threads 1` each.  Run folders go to --runs
(outside the repository: no checkpoints are kept here); a finished run is not run again.
The summary -- one row per run in fixup_closing.csv, and the mean +- standard error over
seeds in fixup_closing.md, with the command and the code version -- goes to --results.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = ROOT     # the code the runs import: --code, a frozen copy, lets you edit ROOT meanwhile
SEEDS = (0, 1, 2)

# The runs, (norm, fixup spec, batch size, epochs), in the order of the table.
MAIN = ("gamma,lr/10,scaled", "multiplier", "gamma", "small-gamma")
ABLATIONS = ("multiplier,lr/10", "multiplier,scaled", "small-gamma,lr/10", "small-gamma,scaled")
PLAN = ([("wa", f, 64, 10) for f in MAIN + ABLATIONS] + [("wa", f, 8, 3) for f in MAIN]
        + [("wn", f, 64, 10) for f in ("gamma,lr/10,scaled", "multiplier", "small-gamma")])
# The order they run in: every seed of the three main candidates at batch 64, one seed of the
# small batch and of the other specs, the scalars' rate and the small batch over seeds, one
# seed of WN, then the further seeds of the rest, WN's last.
JOBS = ([(PLAN[i], s) for i in (0, 1, 3) for s in SEEDS]
        + [(PLAN[i], 0) for i in (8, 9, 11, 2, 6, 7, 4, 5)]
        + [(PLAN[6], s) for s in SEEDS[1:]]
        + [(PLAN[i], s) for s in SEEDS[1:] for i in (8, 9, 11)]
        + [(c, 0) for c in PLAN[12:]]
        + [(PLAN[10], 0)] + [(PLAN[i], s) for i in (2, 7, 4, 5) for s in SEEDS[1:]]
        + [(PLAN[10], s) for s in SEEDS[1:]]
        + [(c, s) for s in SEEDS[1:] for c in PLAN[12:]])


def run_name(norm, fixup, batch, epochs, seed):
    return f"{norm}-{fixup.replace(',', '+').replace('/', '')}-b{batch}-e{epochs}-s{seed}"


def command(norm, fixup, batch, epochs, seed, out):
    return [sys.executable, "-m", "wa.train", "--model", "resnet20", "--norm", norm,
            "--fixup", fixup, "--batch-size", str(batch), "--epochs", str(epochs),
            "--seed", str(seed), "--threads", "1", "--progress", "off", "--no-download",
            "--out", out]


def read_metrics(out):
    path = os.path.join(out, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_one(job, runs):
    norm, fixup, batch, epochs, seed = job
    out = os.path.join(runs, run_name(*job))
    if len(read_metrics(out)) >= epochs:
        return out
    cmd = command(*job, out)
    if os.path.isfile(os.path.join(out, "checkpoint.npz")):
        cmd.append("--resume")
    env = {**os.environ, "PYTHONPATH": CODE}
    with open(out + ".log", "w") as log:
        subprocess.run(cmd, cwd=CODE, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    with open(os.path.join(out, "code_version.txt"), "w") as f:   # a frozen copy has no .git
        f.write(version_of(CODE))
    print("done", out, flush=True)
    return out


def version_of(code):
    """`git rev-parse HEAD` of a checkout, or the COMMIT file of a frozen copy."""
    path = os.path.join(code, "COMMIT")
    if os.path.isfile(path):
        return open(path).read().strip()
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=code, capture_output=True,
                          text=True).stdout.strip()


def code_versions(runs, names):
    """'COMMIT (k runs), ...': each run's code version, from its code_version.txt (or, for
    runs from before that file, the one --runs' code_version.txt recorded at the start)."""
    count = {}
    for name in names:
        path = os.path.join(runs, name, "code_version.txt")
        if not os.path.isfile(path):
            path = os.path.join(runs, "code_version.txt")
        commit = open(path).read().strip() if os.path.isfile(path) else "unknown"
        count[commit] = count.get(commit, 0) + 1
    return ", ".join(f"`{c}` ({k} runs)" for c, k in count.items())


def summarize(runs, results):
    rows = []
    for norm, fixup, batch, epochs in PLAN:
        for seed in SEEDS:
            m = read_metrics(os.path.join(runs, run_name(norm, fixup, batch, epochs, seed)))
            if len(m) >= epochs:
                rows.append({"name": run_name(norm, fixup, batch, epochs, seed), "norm": norm, "fixup": fixup, "batch_size": batch, "epochs": epochs,
                             "seed": seed, "test_acc": m[-1]["test_acc"],
                             "train_acc": m[-1]["train_acc"], "train_loss": m[-1]["train_loss"]})
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "fixup_closing.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, extrasaction="ignore", fieldnames=["norm", "fixup", "batch_size", "epochs", "seed",
                                          "test_acc", "train_acc", "train_loss"])
        w.writeheader()
        w.writerows(rows)
    head = code_versions(runs, [r["name"] for r in rows])
    lines = ["# Fixup closing for re-parameterized convs: resnet20 on cifar10-sample", "",
             "wa-train defaults otherwise (short recipe: Nesterov, one-cycle to 0.05 x (B/64)^0.554, "
             "weight decay 5e-4, augmentation), 1,504 training / 360 test images, full width. "
             "Test accuracy (%) after the last epoch: mean +- standard error over the seeds "
             "(n = number of seeds), then each seed.", "",
             f"Code version: {head}", "",
             "Command: `python benchmarks/fixup_closing.py --runs /tmp/fixup-runs` (each run: "
             "`python -m wa.train --model resnet20 --norm NORM --fixup SPEC --batch-size B "
             "--epochs E --seed S --threads 1 --no-download --out DIR`)", "",
             "| norm | --fixup | batch | epochs | test acc. (%) | n | seeds | train acc. (%) |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for norm, fixup, batch, epochs in PLAN:
        got = [r for r in rows if (r["norm"], r["fixup"], r["batch_size"], r["epochs"])
               == (norm, fixup, batch, epochs)]
        if not got:
            continue
        acc = [100 * r["test_acc"] for r in got]
        mean = sum(acc) / len(acc)
        se = (f" +- {math.sqrt(sum((a - mean) ** 2 for a in acc) / (len(acc) - 1) / len(acc)):.1f}"
              if len(acc) > 1 else "")
        train = sum(100 * r["train_acc"] for r in got) / len(got)
        lines.append(f"| {norm} | `{fixup}` | {batch} | {epochs} | {mean:.1f}{se} | "
                     f"{len(acc)} | {' / '.join(f'{a:.1f}' for a in acc)} | {train:.1f} |")
    with open(os.path.join(results, "fixup_closing.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, os.path.join(results, "fixup_closing.png"))


def plot(rows, path):
    """Test accuracy per spec, each seed a dot, the mean a bar; one panel per (norm, batch)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: skipped", path)
        return
    panels = sorted({(r["norm"], r["batch_size"], r["epochs"]) for r in rows},
                    key=lambda p: (p[0] != "wa", -p[1]))
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (norm, batch, epochs) in zip(axes[0], panels):
        specs = [f for n, f, b, e in PLAN if (n, b, e) == (norm, batch, epochs)]
        specs = [f for f in specs if any(r["fixup"] == f and r["norm"] == norm
                                         and r["batch_size"] == batch for r in rows)]
        for i, f in enumerate(specs):
            acc = [100 * r["test_acc"] for r in rows
                   if (r["norm"], r["fixup"], r["batch_size"]) == (norm, f, batch)]
            ax.bar(i, sum(acc) / len(acc), color="C0" if f == "small-gamma" else "C7")
            ax.plot([i] * len(acc), acc, "k.")
        ax.set_xticks(range(len(specs)), specs, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{norm} resnet20, batch {batch}, {epochs} epochs", fontsize=9)
        ax.set_ylabel("test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="/tmp/fixup-runs", help="run folders (outside the repo)")
    p.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "fixup_closing"))
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument("--code", default=ROOT, help="the repository copy the runs import "
                   "(e.g. `git archive HEAD | tar -x -C DIR`) [default: this one]")
    p.add_argument("--summarize", action="store_true", help="only rebuild the tables")
    args = p.parse_args()
    global CODE
    CODE = os.path.abspath(args.code)
    if not args.summarize:
        os.makedirs(args.runs, exist_ok=True)
        if not os.path.isfile(os.path.join(args.runs, "code_version.txt")):
            with open(os.path.join(args.runs, "code_version.txt"), "w") as f:
                f.write(version_of(CODE))
        jobs = [(*config, seed) for config, seed in JOBS]
        with ThreadPoolExecutor(args.jobs) as pool:
            for _ in pool.map(lambda j: run_one(j, args.runs), jobs):
                summarize(args.runs, args.results)
    summarize(args.runs, args.results)


if __name__ == "__main__":
    main()
