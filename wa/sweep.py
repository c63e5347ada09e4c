"""wa-sweep: test error against batch size (the paper's Fig. 3) and against depth (Table III)
for several norm specs, over several seeds.

    wa-sweep --norms bn,wa,gn+wa --batch-sizes 64,8,4,2,1 --model resnet20 --seeds 0,1,2
    wa-sweep --norms wa --model resnet18,resnet34,resnet50 --batch-sizes 64,1 --seeds 0,1,2
    wa-sweep --norms wa,wa[center],wa[scale] --model resnet20 --batch-sizes 64 --seeds 0,1,2
    wa-sweep ... (the same command again)     # resumes: finished runs are kept, a cut one continues

Every (model, norm, batch size, seed) is one wa-train run, in
OUT/runs/<model>-<norm>-b<batch>-s<seed>/, trained one after another with the same budget: the
same number of epochs (so the same number of images seen, and more, smaller steps at small
batches), the same data, and wa-train's recipe (the same flags, defaults included: a sweep cell is the
wa-train run with the same flags), the learning rate scaled with the batch size by wa-train's
rule unless --lr fixes it.  The seed changes the initialisation, the shuffling and the augmentation.
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

from . import cli, norms, plotstyle, process
from . import data as wadata
from . import run_folder as rf
from . import train as T

FIELDS = ("model", "norm", "batch_size", "seed", "status", "epochs_done", "test_error", "test_acc",
          "train_loss", "lr", "seconds", "run_dir")
SUMMARY_FIELDS = ("model", "norm", "batch_size", "runs", "seeds", "test_error_mean",
                  "test_error_se", "test_error_min", "test_error_max", "status")


def _csv_list(kind):
    def parse(text):
        items = []
        for t in text.split(","):
            if t.strip():
                try:
                    items.append(kind(t.strip()))
                except (ValueError, argparse.ArgumentTypeError) as e:
                    why = f" ({e})" if isinstance(e, argparse.ArgumentTypeError) else ""
                    raise argparse.ArgumentTypeError(
                        f"expected a comma-separated list, got {text!r}{why}") from None
        if not items:
            raise argparse.ArgumentTypeError("empty list")
        return items
    return parse


def _split_specs(text):
    items = norms.split_specs(text)
    if not items:
        raise argparse.ArgumentTypeError("empty list")
    return items


# wa-train's flags that a sweep sets per cell (from its lists) or does not take; every other
# wa-train flag is copied into wa-sweep's parser, with its name, choices and default.
PER_CELL = {"model", "norm", "batch_size", "seed", "out", "resume", "eval_only"}
NOT_IN_SWEEP = {"record_distributions", "record_layers", "record_channel", "diagnostics_every",
                "help", "version"}
# Copied flags that do not change what is learned (so not in the default folder name).
NOT_RESULTS = {"data_dir", "no_download", "device", "progress", "threads"}


def training_actions():
    """wa-train's parser's actions for the flags a sweep passes on to every run."""
    return [a for a in T.build_parser()._actions if a.dest not in PER_CELL | NOT_IN_SWEEP]


def build_parser():
    p = cli.Parser(prog="wa-sweep", allow_abbrev=False, description="Test error against batch "
                   "size (Fig. 3) or depth (Table III) for several norm specs and seeds: one "
                   "wa-train run per (model, norm, batch size, seed), trained the same way.",
                   epilog=T.LR_EPILOG)
    a = p.add_argument
    a("--norms", "--norm", type=_split_specs, default="bn,wa,gn+wa",
      help="comma-separated norm specs, e.g. bn,wa,gn+wa,wa[center]")
    a("--batch-sizes", "--batch-size", type=_csv_list(T._positive(int)), default="64,8,4,2,1",
      help="comma-separated batch sizes, one column of the table each")
    a("--models", "--model", dest="models", type=_csv_list(str.lower), default="resnet20",
      help="one model or several, comma-separated (e.g. resnet18,resnet34,resnet50: Table III)")
    a("--seeds", type=_csv_list(T.seed_value), default=None,
      help="comma-separated seeds, one run per seed in every cell [default: --seed]")
    a("--seed", type=T.seed_value, default=0, help="the one seed when --seeds is not given")
    a("--out", default=None, help="sweep folder [default: sweeps/DATASET-MODELS-wWIDTH-eEPOCHS, "
      "followed by every other flag that changes results and is not at its default]")
    training = p.add_argument_group("training, for every run (wa-train's flags, same defaults)")
    for action in training_actions():
        training._add_action(action)
    return p


def cell_argv(args, model, norm, bs, seed, run_dir):
    """The wa-train flags of one cell: the cell's own, and every training flag spelled out (so
    that the saved run is compared with all of them, not only those typed)."""
    argv = ["--model", model, "--norm", norm, "--batch-size", str(bs), "--seed", str(seed),
            "--out", run_dir]
    for action in training_actions():
        value, flag = getattr(args, action.dest), action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            argv += [] if value is None else [flag if value else "--no-" + flag[2:]]
        elif action.nargs == 0:                       # store_true
            argv += [flag] if value else []
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def default_out(args):
    """sweeps/DATASET-MODELS-wWIDTH-eEPOCHS plus every other result-changing flag not at its
    default: two sweeps that would train differently never share a folder by default."""
    parts = [args.dataset, "-".join(args.models), f"w{args.width:g}", f"e{args.epochs}"]
    for action in training_actions():
        if action.dest in NOT_RESULTS | {"dataset", "width", "epochs"}:
            continue
        value, name = getattr(args, action.dest), action.option_strings[0][2:]
        if value != action.default:
            parts.append(name if value is True else f"no-{name}" if value is False
                         else f"{name}{value:g}" if isinstance(value, float) else f"{name}{value}")
    return os.path.join("sweeps", "-".join(parts))


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


def plan_cell(args, model, norm, bs, seed, dataset, error):
    """Check one cell before anything trains: its wa-train config, and a saved run there
    compared setting by setting with the request.  Returns a dict with the row to report,
    the config and whether it is finished (or "n/a" in its status)."""
    run_dir = run_dir_for(args, model, norm, bs, seed)
    row = {"model": model, "norm": norm, "batch_size": bs, "seed": seed, "run_dir": run_dir}
    if not defined(norm, bs):
        return {"row": {**row, "status": "n/a: BatchNorm needs more than one sample"}}
    argv = cell_argv(args, model, norm, bs, seed, run_dir)
    if os.path.isfile(os.path.join(run_dir, "checkpoint.npz")):
        argv.append("--resume")
    try:
        cfg, _ = T.parse_config(argv, prog="wa-sweep", raise_errors=True, compare_all=True)
    except T.SettingMismatch as e:
        flag = "--" + e.key.replace("_", "-")
        error(f"{run_dir} was trained with {flag} {e.saved} (asked {e.asked}); choose another "
              f"--out, or delete that run folder to train it again")
    except cli.UsageError as e:
        error(str(e))
    try:
        T.check_trainable(cfg, dataset.num_classes, len(dataset.x_train))
    except T.ConfigError as e:
        return {"row": {**row, "status": f"n/a: {e}"}}
    done = _read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    return {"row": row, "cfg": cfg, "argv": argv, "finished": len(done) >= cfg["epochs"]}


def run_one(plan):
    """Train (or resume, or just read) one planned cell; returns its results row."""
    row = plan["row"]
    if "cfg" not in plan:
        return row
    run_dir = row["run_dir"]
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if not plan["finished"]:
        import minigrad as mg
        mg.fast.clear_pool()          # the last run's conv buffers are of other shapes
        argv = [a for a in plan["argv"] if a != "--resume"]
        try:
            code = T.Trainer(plan["cfg"], command=["wa-train", *argv]).run()
        except T.ConfigError as e:
            return {**row, "status": f"n/a: {e}"}
        except rf.FolderBusy as e:
            print(f"skipped: {e}", flush=True)
            return {**row, "status": "busy: another process trains it"}
        if code == 130:
            raise KeyboardInterrupt
        done = _read_metrics(metrics_path)
        if code != 0:
            return {**row, "status": "diverged" if code == 1 else f"failed ({code})",
                    "epochs_done": len(done)}
    done = _read_metrics(metrics_path)
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


def chance_error(num_classes, n_test):
    """(the test error of guessing, 1 - 1/K; the error above which a cell is not better than
    guessing: within 2 binomial standard errors of it on n_test images)."""
    p = 1 / num_classes
    return 1 - p, 1 - p - 2 * math.sqrt(p * (1 - p) / n_test)


def marks(summary, chance_threshold=None):
    """{(model, norm, batch size): "*" (best mean of its column), "~" (within 2 s.e. of the
    difference from the best: not distinguishable), "c" (not better than chance: mean error at
    or above `chance_threshold`; never the best) or ""}."""
    out = {}
    columns = {}
    for s in summary:
        if s["test_error_mean"] is None:
            continue
        key = (s["model"], s["norm"], s["batch_size"])
        if chance_threshold is not None and s["test_error_mean"] >= chance_threshold:
            out[key] = "c"
            continue
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


def format_table(summary, models, norms_, batch_sizes, chance=None):
    """Mean test error % +- s.e. per cell, one block per model; `chance`: the pair of
    `chance_error`, marked in the table and its legend."""
    cell = {(s["model"], s["norm"], s["batch_size"]): s for s in summary}
    mark = marks(summary, chance[1] if chance else None)
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
                     "(use --seeds 0,1,2)" + ("; * best in its column" if "*" in mark.values() else ""))
    if chance:
        lines.append(f"chance (guessing) is {100 * chance[0]:.1f} % error; c: at or above "
                     f"{100 * chance[1]:.1f} %, not better than chance on this many test images "
                     "(never marked best)")
    reasons = {}
    for s in summary:
        if s["test_error_mean"] is None and s["status"].startswith("n/a"):
            reasons.setdefault(s["status"], []).append(f"{s['model']} {s['norm']} b{s['batch_size']}")
    for status, where in reasons.items():
        lines.append(f"{status} ({', '.join(where)})")
    return "\n".join(lines)


def plot(summary, models, norms_, batch_sizes, path, title, chance=None):
    plt = plotstyle.pyplot()
    if plt is None:
        return False
    import textwrap
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.5), squeeze=False)
    title = textwrap.fill(title, 50 * len(models))        # the title from the runs is long
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
        if chance:
            ax.axhline(100 * chance[0], color="grey", linestyle=":", label="chance")
        ax.set_xticks(range(len(batch_sizes)), [str(b) for b in batch_sizes])
        ax.set(xlabel="batch size", ylabel="test error (%), mean +- s.e.",
               title=model if len(models) > 1 else title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if len(models) > 1:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def title_from_runs(rows, fallback):
    """The table's title from the finished runs' own config.json: what was trained, not what
    was asked (after the checks they agree; a value that differs between runs is listed)."""
    docs = []
    for r in rows:
        if r.get("status") == "done":
            with open(os.path.join(r["run_dir"], "config.json")) as f:
                docs.append(json.load(f))
    if not docs:
        return fallback

    def one(get):
        values = list(dict.fromkeys(str(get(d)) for d in docs))
        return "/".join(values)
    s = lambda k: (lambda d: d["settings"].get(k))
    seeds = len({r["seed"] for r in rows if r.get("status") == "done"})
    epochs = one(s("epochs"))
    return (f"{one(s('model'))} on {one(s('dataset'))} ({one(lambda d: d['data']['train_images'])} "
            f"train / {one(lambda d: d['data']['test_images'])} test images), width {one(s('width'))}, "
            f"{epochs} epoch{'' if epochs == '1' else 's'}, {one(s('recipe'))} recipe ({one(s('schedule'))}), "
            f"{seeds} seed{'s' if seeds > 1 else ''}")


def _estimate(plans, k, seconds_per_epoch):
    """Seconds left for the cells from k on: per (model, batch size) seconds per epoch seen in
    this sweep, else the mean over all seen."""
    if not seconds_per_epoch:
        return None
    mean = sum(seconds_per_epoch.values()) / len(seconds_per_epoch)
    left = 0.0
    for plan in plans[k:]:
        if "cfg" in plan and not plan["finished"]:
            r = plan["row"]
            left += seconds_per_epoch.get((r["model"], r["batch_size"]), mean) * plan["cfg"]["epochs"]
    return left


def _time_note(plans, to_train, seconds_per_epoch):
    if not to_train:
        return ""
    left = _estimate(plans, 0, seconds_per_epoch)
    if left is None:
        return "; the time left is estimated after the first run"
    return f"; about {process.format_seconds(left)} of training, from the runs already here"


def main(argv=None):
    import minigrad as mg
    mg.fast.keep_freed_memory()       # a training process: keep freed buffers for the next step
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.norms = [norms.canonical(n) for n in args.norms]
    except ValueError as e:
        bad = next(n for n in args.norms if not _valid_spec(n))
        parser.error(cli.norm_spec_error("--norms", bad, e))
    for m in args.models:
        problem = cli.model_name_error("--model", m)
        if problem:
            parser.error(problem)
    seeds = args.seeds if args.seeds is not None else [args.seed]
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds: each seed once, got {','.join(map(str, seeds))}")
    cli.check_device(args.device, parser.error)
    args.out = args.out or default_out(args)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out} is a file, not a folder; choose another --out")
    try:
        dataset = wadata.load_dataset(args.dataset, args.data_dir, not args.no_download,
                                      args.limit_train, args.limit_test)
    except wadata.DatasetError as e:
        print(f"wa-sweep: error: {e}", file=sys.stderr)
        return 1
    # Every cell is checked before the first run: a bad flag or a saved run trained with
    # other settings stops the sweep here, with nothing trained and nothing written.
    cells = [(m, n, b, seed) for m in args.models for n in args.norms for b in args.batch_sizes
             for seed in seeds]
    plans = [plan_cell(args, *cell, dataset, parser.error) for cell in cells]
    problem = cli.unwritable_folder(args.out)
    if problem:
        parser.error(problem)
    # seconds per epoch of the runs already here, for the estimate of the time left
    seconds_per_epoch = {}
    for plan in plans:
        done = _read_metrics(os.path.join(plan["row"]["run_dir"], "metrics.jsonl")) if "cfg" in plan else []
        if done:
            r = plan["row"]
            seconds_per_epoch[(r["model"], r["batch_size"])] = sum(d["seconds"] for d in done) / len(done)
    to_train = sum("cfg" in p and not p["finished"] for p in plans)
    kept = sum("cfg" in p and p["finished"] for p in plans)
    c = cli.count
    print(f"wa-sweep: {c(len(cells), 'run')} ({c(len(args.models), 'model')} x "
          f"{c(len(args.norms), 'norm')} x {c(len(args.batch_sizes), 'batch size')} x "
          f"{c(len(seeds), 'seed')}), {c(args.epochs, 'epoch')} each: {to_train} to train, "
          f"{kept} finished and kept, "
          f"{len(cells) - to_train - kept} n/a -> {args.out}"
          + _time_note(plans, to_train, seconds_per_epoch))
    rows = []
    try:
        for k, plan in enumerate(plans):
            r = plan["row"]
            label = f"[{k + 1}/{len(plans)}] {r['model']} {r['norm']} at batch {r['batch_size']}, seed {r['seed']}"
            if "cfg" not in plan:
                print(f"{label}: {r['status']}")
            elif plan["finished"]:
                print(f"{label}: finished, kept ({r['run_dir']})")
            else:
                left = _estimate(plans, k, seconds_per_epoch)
                eta = f", about {process.format_seconds(left)} left" if left is not None else ""
                print(f"\n=== {label}{eta} ===")
            row = run_one(plan)
            if "cfg" in plan and not plan["finished"] and row.get("seconds"):
                seconds_per_epoch[(r["model"], r["batch_size"])] = row["seconds"] / row["epochs_done"]
            rows.append(row)
            write_csv(rows, os.path.join(args.out, "results.csv"))  # a kill keeps the rest
    except KeyboardInterrupt:
        print(f"\nwa-sweep: interrupted; run the same command again to resume ({args.out})")
        return 130
    summary = summarize(rows)
    write_summary(summary, os.path.join(args.out, "summary.csv"))
    chance = chance_error(dataset.num_classes, len(dataset.x_test))
    title = title_from_runs(rows, f"{', '.join(args.models)} on {args.dataset}")
    print("\n" + title + "\n" + format_table(summary, args.models, args.norms, args.batch_sizes,
                                              chance))
    png = os.path.join(args.out, "results.png")
    plot(summary, args.models, args.norms, args.batch_sizes, png, title, chance)
    written = ", ".join(os.path.join(args.out, f) for f in ("results.csv", "summary.csv"))
    print(f"wrote {written}" + (f" and {png}" if os.path.isfile(png) else ""))
    return 0


def _valid_spec(spec):
    try:
        norms.canonical(spec)
        return True
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
