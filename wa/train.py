"""wa-train: train a model with a chosen normalization on CIFAR-sized images.

    wa-train --dataset cifar10-sample --model resnet20 --norm gn+wa --epochs 15
    wa-train --out runs/x --resume          # continue a killed or interrupted run
    python -m wa.train --help

This module is the command line: the flags, the two recipes and the learning-rate rule, and the
rules for resuming a run folder.  The code behind it, one module per concern:

    wa.loop        the training loop a student reads: train_step, train_epoch, evaluate
    wa.trainer     Trainer: one run built from a config, epochs, checkpoints, exact resume
    wa.run_folder  the files of --out: config.json, metrics.jsonl, checkpoint.npz, curves.png
    wa.process     Ctrl-C / SIGTERM, progress bars, BLAS threads

The run folder (--out) gets
  config.json     every setting, the seed, package and library versions;
  metrics.jsonl   one JSON object per finished epoch (epoch, train_loss, train_acc, test_loss,
                  test_acc, lr, seconds, images_per_s), accuracies as fractions, epochs counted
                  from 1; lr is the rate of the epoch's first step ("lr@start" on screen);
  checkpoint.npz  model, optimizer, scheduler, loader and RNG states plus the metrics so far
                  and the test loss and accuracy before the first step,
                  in minigrad.save's format, written to a temporary file and renamed, so a kill
                  never leaves half of one (checkpoints of older wa-train versions still load);
  curves.png      loss and accuracy against epoch, from the evaluation before training
                  (epoch 0), with chance drawn dotted;
  distributions.npz, distributions.png   with --record-distributions: per-epoch histograms of
                  chosen layers' weights (raw and, for WA/WS/WN, effective) and of one channel's
                  activations (see `wa.distributions`; the paper's Figs. 4-5 and 9-12).
  diagnostics.jsonl   with --diagnostics-every N: each conv layer's activation mean/std, gradient
                  norm, update-to-weight ratio and WA's gamma every N steps (`wa.diagnostics`).

Group norms (gn, bcn): --gn-groups N (default 32, the GN paper's and the WA paper's setting) and
--gn-min-channels K (default 2: never one channel per group, which would be InstanceNorm) set
the group count per layer, see `wa.norms`.  Fixup models (resnets without an activation norm)
start their residual branches as --fixup says (see `wa.models`; ",lr/10" trains the scalar
biases and multipliers at lr / 10, as the Fixup authors' code does); config.json lists the
Fixup spec, the parameter groups and the group count per GroupNorm width.

Two recipes (`--recipe`; config.json records which one ran).  Both use SGD with momentum 0.9
and weight decay 5e-4, the paper's section IV.

* `short` (the default): made for what this tool is used for, a few thousand images for 10-20
  epochs.  Nesterov momentum, a one-cycle schedule (warm-up, then annealing to ~0), peak rate
  0.05 at batch 64.
* `paper`: the paper's rate, 0.01 at batch 64 and 0.001 at batch 1, cosine annealing, plain
  momentum.  Meant for the paper's long schedules; on short runs it underfits.

Unless --lr is given, the rate follows the batch size B as

    lr = LR64 * (B / 64) ** (log 10 / log 64)   (exponent ~0.554; LR64 = 0.05 or 0.01)

which for `paper` hits both of the paper's settings -- 0.01 at batch 64 and 0.001 at batch 1 --
and in between lies between square-root and linear scaling (batch 8: 0.0032, batch 2: 0.0015).
--schedule and --nesterov/--no-nesterov override the recipe's choice.  The schedule is
annealed per step over the whole run.

Determinism: the checkpoint holds every random state, so a resumed run reproduces the
uninterrupted one exactly on the CPU (see `wa.trainer`).

Stopping: Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint at that exact
batch and exits (code 130); a second one aborts at once.  A NaN or infinite loss stops the run (code 1)
and leaves the last good checkpoint untouched.  Bad flags exit with code 2 and one line
("wa-train: error: ... (see wa-train --help)"), an --out that cannot be written included.

Resuming: --resume continues from the checkpoint and says where.  A run's settings cannot change
on resume (only where it runs and how it reports: RESUME_MAY_CHANGE); in particular --epochs
cannot, since the learning-rate schedule is laid out over the whole run, so a finished run is
not extended: --resume on it says so, and a longer run is a new --out.

Progress: each epoch line gives the elapsed time of the run and an estimate of the time left;
within an epoch a bar on a terminal, and a plain line every PLAIN_PROGRESS_SECONDS (wa.process)
when the output goes to a file.
"""
import argparse
import math
import os
import sys

from . import cli, process
from . import data as wadata
from . import run_folder as rf
# Also the names that wa-sweep, tests and notebooks use as wa.train.X:
from .process import SMALL_BATCH, blas_threads  # noqa: F401
from .run_folder import CheckpointError, load_checkpoint, save_checkpoint  # noqa: F401
from .trainer import (FIXUP_SCALAR_LR_FACTOR, ConfigError, Trainer, build_model,  # noqa: F401
                      check_trainable, param_groups)

SCHEDULES = ("cosine", "step", "onecycle")
# Settings a resumed run may change; every other one must match the saved config.
RESUME_MAY_CHANGE = {"device", "data_dir", "no_download", "resume", "eval_only", "out", "progress",
                     "threads"}

LR_AT_64 = 0.01                                  # the paper's rate at batch 64 (section IV)
LR_EXPONENT = math.log(10) / math.log(64)        # so that batch 1 gets LR_AT_64 / 10

# What each --recipe sets unless --lr, --schedule or --nesterov say otherwise.
RECIPES = {
    "short": {"lr_at_64": 0.05, "schedule": "onecycle", "nesterov": True},
    "paper": {"lr_at_64": LR_AT_64, "schedule": "cosine", "nesterov": False},
}


def default_lr(batch_size, lr_at_64=LR_AT_64):
    """`lr_at_64` at batch 64 and a tenth of it at batch 1, a power law between (by default the
    paper's two settings, 0.01 and 0.001)."""
    return lr_at_64 * (batch_size / 64) ** LR_EXPONENT


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------
def _positive(kind):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return v
    parse.__name__ = kind.__name__
    return parse


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def _nonneg_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


SEED_LIMIT = 2 ** 32          # NumPy's legacy generator, seeded alongside minigrad's, takes [0, 2^32)


def seed_value(text):
    """A --seed: an integer in [0, 2^32)."""
    v = _nonneg_int(text)
    if v >= SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be below 2**32 = {SEED_LIMIT}, got {text}")
    return v


DATASET_HELP = ("cifar10-sample: 1,504 train + 360 test real CIFAR-10 images shipped with the "
                "package (offline); synthetic: 2,000 + 500 generated gratings, learnable in a few "
                "epochs (offline); cifar10, cifar100: the full sets, 50,000 + 10,000 images, "
                "downloaded once (about 170 MB) into --data-dir")

LR_EPILOG = ("Learning rate, unless --lr is given: LR64 * (batch/64)**0.554, where LR64 is the "
             "recipe's rate at batch 64 -- 0.05 for --recipe short (the default; 0.005 at batch 1) "
             "and 0.01 for --recipe paper (the paper's 0.01 at batch 64 and 0.001 at batch 1). "
             "With the short recipe's one-cycle schedule this is the peak rate; the first steps "
             "start at a 25th of it.")


def add_training_flags(p):
    """The flags of how to train, shared by wa-train and wa-sweep (which copies them from
    wa-train's parser): same names, choices and defaults."""
    from . import models
    a = p.add_argument
    add_group_flags(p)
    a("--fixup", default=None, metavar="SPEC",
      help="resnets without an activation norm: how each residual branch starts (see "
      "wa.models): its last conv's gamma L^-1/2 (small-gamma), 0 (gamma), or its multiplier "
      "0 (multiplier), optionally ',lr/10' (Fixup scalars at lr/10) and ',scaled' (inner "
      "convs times L^-1/2); 'gamma,lr/10,scaled' is Fixup as published [default: "
      "small-gamma for wa and wn, gamma,lr/10,scaled for plain convs]")
    a("--init", default="kaiming", choices=models.INITS,
      help="how conv and linear weights start: kaiming (the paper's, N(0, 2/fan_in)) or pytorch "
      "(PyTorch's default layers: variance 1/(3 fan_in), which behind a norm trains faster "
      "in short runs; see wa.models)")
    a("--dataset", default="cifar10-sample", choices=wadata.DATASETS, help=DATASET_HELP)
    a("--data-dir", default=None, help="folder holding (or to receive) cifar-10-batches-py/ or "
      "cifar-100-python/; used by cifar10 and cifar100 only [default: ~/.cache/weightalign]")
    a("--no-download", action="store_true", help="never touch the network")
    a("--epochs", type=_positive(int), default=15, help="epochs to train")
    a("--recipe", default="short", choices=tuple(RECIPES),
      help="short: nesterov, one-cycle, peak lr 0.05 at batch 64 (for runs of 10-20 epochs); "
      "paper: the paper's lr 0.01 at batch 64 / 0.001 at batch 1, cosine, plain momentum")
    a("--lr", type=_positive(float), default=None, help="initial (peak) learning rate "
      "[default: the recipe's, scaled with the batch size; see below]")
    a("--momentum", type=_nonneg_float, default=0.9, help="SGD momentum")
    a("--weight-decay", type=_nonneg_float, default=5e-4, help="SGD weight decay (L2)")
    a("--schedule", default=None, choices=SCHEDULES,
      help="per-step annealing: cosine to 0; step: /10 at 50%% and 75%%; onecycle: warm-up, then "
      "annealing [default: the recipe's: onecycle for short, cosine for paper]")
    a("--nesterov", default=None, action=argparse.BooleanOptionalAction,
      help="Nesterov momentum [default: the recipe's: on for short, off for paper]")
    a("--width", type=_positive(float), default=1.0, help="multiply every channel count "
      "(0.25 for quick CPU runs)")
    a("--limit-train", type=_positive(int), default=None, metavar="N",
      help="train on the first N training images [default: all]")
    a("--limit-test", type=_positive(int), default=None, metavar="N",
      help="test on the first N test images [default: all]")
    a("--no-augment", action="store_true", help="no random crop / flip")
    a("--device", default="cpu", choices=("cpu", "cuda"), help="where to compute")
    a("--progress", choices=("auto", "on", "off"), default="auto",
      help="progress within an epoch: auto shows a bar on a terminal and a plain line every "
      f"{process.PLAIN_PROGRESS_SECONDS:.0f} s otherwise; on: always the bar; off: none")
    a("--threads", type=_positive(int), default=None,
      help=f"BLAS threads on the CPU [default: 1 below batch {SMALL_BATCH}, else all]")


def build_parser(prog="wa-train", raise_errors=False):
    from . import models
    p = cli.Parser(
        prog=prog, raise_errors=raise_errors, epilog=LR_EPILOG,
        description="Train a model with a chosen normalization (WeightAlign and friends) and "
        "write a run folder (config.json, metrics.jsonl, checkpoint.npz, curves.png).")
    a = p.add_argument
    a("--model", default="resnet20", type=str.lower, metavar="MODEL",
      help=f"architecture, one of {', '.join(cli.natural_order(models.names()))}")
    a("--norm", default="gn+wa", help="normalization spec of wa.norms, e.g. bn, gn+wa, wa, none, "
      "or a WA variant of Table IV / Fig. 6: wa[center], wa[scale], wa[alpha=A], gn+wa[center]")
    a("--batch-size", type=_positive(int), default=64, help="images per step")
    a("--seed", type=seed_value, default=0, help="initialisation, shuffling, augmentation and "
      "dropout; an integer in [0, 2**32)")
    add_training_flags(p)
    a("--out", default=None, help="run folder [default: runs/DATASET-MODEL-NORM-bBATCH-wWIDTH-"
      "eEPOCHS-sSEED]")
    a("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    a("--eval-only", action="store_true", help="evaluate the checkpoint in --out on the test set")
    a("--record-distributions", action="store_true",
      help="after every epoch (and at the start) store histograms of chosen layers' weights (and "
      "WA's aligned weights) and of one channel's activations in distributions.npz, and plot them")
    a("--record-layers", default=None, metavar="NAMES",
      help="comma-separated module names (as in model.named_modules()) to record [default: the "
      "first, a middle and the last conv]")
    a("--record-channel", type=_nonneg_int, default=0, metavar="C",
      help="the output channel (filter) recorded in each layer")
    a("--diagnostics-every", type=_positive(int), default=None, metavar="N",
      help="every N steps, write each conv layer's activation mean/std, gradient norm, "
      "update-to-weight ratio and WA's gamma to diagnostics.jsonl (wa.diagnostics) [default: off]")
    return p


def add_group_flags(p):
    """--gn-groups / --gn-min-channels, shared by wa-train, wa-sweep and wa-activations."""
    from . import norms
    p.add_argument("--gn-groups", type=_positive(int), default=norms.GN_GROUPS, metavar="N",
                   help="gn and bcn: at most N groups per layer (32: the GN paper's and the WA "
                   "paper's setting)")
    p.add_argument("--gn-min-channels", type=_positive(int), default=norms.GN_MIN_CHANNELS,
                   metavar="K", help="gn and bcn: at least K channels per group (1 allows "
                   "InstanceNorm-like groups on narrow layers)")


class SettingMismatch(cli.UsageError):
    """A flag of --resume (or a wa-sweep cell) that differs from the run folder's saved setting."""

    def __init__(self, message, key, asked, saved):
        super().__init__(message)
        self.key, self.asked, self.saved = key, asked, saved


def check_model_and_norm(cfg, error):
    """Model name and norm spec (canonical spelling), each with a closest-match suggestion."""
    from . import models, norms
    problem = cli.model_name_error("--model", cfg["model"])
    if problem:
        error(problem)
    try:
        cfg["norm"] = norms.canonical(cfg["norm"])
    except ValueError as e:
        error(cli.norm_spec_error("--norm", cfg["norm"], e))
    if cfg.get("fixup") is not None:
        try:
            cfg["fixup"] = str(models.parse_fixup(cfg["fixup"]))
        except ValueError as e:
            error(f"--fixup: {e}")


def resolve_recipe(cfg, error):
    """Fill in what the recipe sets unless --lr, --schedule or --nesterov say otherwise."""
    cfg.setdefault("recipe", "paper")          # run folders from before --recipe existed
    recipe = RECIPES[cfg["recipe"]]
    if cfg["lr"] is None:
        cfg["lr"] = default_lr(cfg["batch_size"], recipe["lr_at_64"])
    if cfg.get("schedule") is None:
        cfg["schedule"] = recipe["schedule"]
    if cfg.get("nesterov") is None:
        cfg["nesterov"] = recipe["nesterov"] and cfg["momentum"] > 0
    if cfg["nesterov"] and cfg["momentum"] == 0:
        error("--nesterov needs momentum: give --momentum > 0, or --no-nesterov")


def default_out(cfg):
    """runs/DATASET-MODEL-NORM-bBATCH-wWIDTH-eEPOCHS-sSEED: two runs that differ in these get
    two folders."""
    return os.path.join("runs", f"{cfg['dataset']}-{cfg['model']}-{cfg['norm']}-b{cfg['batch_size']}"
                                f"-w{cfg['width']:g}-e{cfg['epochs']}-s{cfg['seed']}")


def parse_config(argv=None, prog="wa-train", *, raise_errors=False, compare_all=False):
    """Flags -> (config dict, parser); a usage error prints one line and exits with code 2
    (argparse's convention), or raises cli.UsageError with raise_errors=True.

    With --resume or --eval-only the run folder's saved settings are taken; a flag given that
    differs from them is an error (SettingMismatch).  compare_all=True (wa-sweep) compares every
    setting that changes the result, given or not: the cell must be the run that is there."""
    parser = build_parser(prog, raise_errors)
    args = parser.parse_args(argv)
    # Which flags were given explicitly: parse again with every default suppressed.
    quiet = build_parser(prog, raise_errors)
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    given = set(vars(quiet.parse_args(argv)))
    cfg = vars(args)
    check_model_and_norm(cfg, parser.error)
    cli.check_device(cfg["device"], parser.error)
    if cfg["out"] is None:
        if cfg["resume"] or cfg["eval_only"]:
            parser.error("--resume and --eval-only need --out DIR (the run folder)")
        cfg["out"] = default_out(cfg)
    # Resume rules: --resume and --eval-only need a run folder and take its settings; only
    # those in RESUME_MAY_CHANGE may differ.  A new run never overwrites a checkpoint.
    out = cfg["out"]
    ckpt = os.path.join(out, rf.CHECKPOINT)
    if os.path.exists(out) and not os.path.isdir(out):
        parser.error(f"--out {out} is a file, not a folder; choose another --out")
    if cfg["resume"] or cfg["eval_only"]:
        saved_path = os.path.join(out, rf.CONFIG)
        if not os.path.isfile(ckpt) or not os.path.isfile(saved_path):
            parser.error(f"{out} holds no {rf.CHECKPOINT} and {rf.CONFIG} to "
                         f"{'resume' if cfg['resume'] else 'evaluate'}")
        saved = rf.read_json(saved_path)["settings"]
        if compare_all:
            resolve_recipe(cfg, parser.error)
        # the recipe's own settings first: a rate that differs because the recipe does is
        # reported as the recipe
        derived = ("lr", "schedule", "nesterov")
        for k in sorted((set(cfg) if compare_all else given) - RESUME_MAY_CHANGE,
                        key=lambda k: (k in derived, k)):
            if k in saved and saved[k] != cfg[k]:
                flag = f"--{k.replace('_', '-')}"
                why = "drop it, or start a new run with another --out"
                if k == "epochs":
                    why = (f"a run cannot be lengthened or shortened, since its learning-rate "
                           f"schedule is laid out over its {saved[k]} epochs; start a new run with "
                           f"{flag} {cfg[k]} and another --out")
                error = SettingMismatch(f"{flag} {cfg[k]} differs from the saved run's {saved[k]}; "
                                        f"{why}", k, cfg[k], saved[k])
                if raise_errors:
                    raise error
                parser.error(str(error))
        cfg = {**saved, **{k: cfg[k] for k in RESUME_MAY_CHANGE
                           if k in given or k in ("resume", "eval_only", "out")}}
    elif os.path.isfile(ckpt):
        parser.error(f"{out} already holds a run: add --resume to continue it, "
                     "or choose another --out")
    resolve_recipe(cfg, parser.error)
    if cfg.get("record_layers") and not cfg.get("record_distributions"):
        parser.error("--record-layers needs --record-distributions")
    return cfg, parser


def main(argv=None):
    import minigrad as mg
    mg.fast.keep_freed_memory()       # a training process: keep freed buffers for the next step
    cfg, parser = parse_config(argv)
    out = cfg["out"]
    existed = os.path.isdir(out)
    if not cfg["eval_only"]:
        problem = cli.unwritable_folder(out)
        if problem:
            parser.error(problem)
    if cfg["resume"]:
        done = rf.saved_position(out)
        if done is not None and done[0] >= cfg["epochs"] and done[1] == 0:
            parser.error(f"{out} is finished ({done[0]}/{cfg['epochs']} epochs): nothing to "
                         f"resume; --eval-only evaluates it, and a longer run needs a new --out "
                         f"(its learning-rate schedule ended with epoch {cfg['epochs']})")
    # the command as typed, also when main() is called from Python (a notebook, wa-sweep)
    trainer = Trainer(cfg, command=None if argv is None else ["wa-train", *argv])
    try:
        return trainer.run()
    except ConfigError as e:
        if not existed:
            cli.remove_if_empty(out)
        parser.error(str(e))
    except rf.FolderBusy as e:
        parser.error(str(e))
    except (wadata.DatasetError, CheckpointError) as e:
        if not existed:
            cli.remove_if_empty(out)
        print(f"wa-train: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nwa-train: aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
