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
                  test_acc, lr, seconds, images_per_s), accuracies as fractions;
  checkpoint.npz  model, optimizer, scheduler, loader and RNG states plus the metrics so far,
                  in minigrad.save's format, written to a temporary file and renamed, so a kill
                  never leaves half of one (checkpoints of older wa-train versions still load);
  curves.png      loss and accuracy against epoch (skipped, with a note, without matplotlib);
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
and leaves the last good checkpoint untouched.  Bad flags exit with code 2 and one line.
"""
import argparse
import math
import os
import sys

from minigrad import backend
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
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
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


def build_parser(prog="wa-train"):
    p = argparse.ArgumentParser(
        prog=prog, description="Train a model with a chosen normalization (WeightAlign and friends).",
        epilog="Learning rate default: 0.01 * (batch/64)**0.554 (0.01 at 64, 0.001 at 1).")
    a = p.add_argument
    a("--model", default="resnet20", help="architecture (see wa.models.names())")
    a("--norm", default="gn+wa", help="normalization spec of wa.norms, e.g. bn, gn+wa, wa, none, "
      "or a WA variant of Table IV / Fig. 6: wa[center], wa[scale], wa[alpha=A], gn+wa[center]")
    add_group_flags(p)
    a("--fixup", default=None, metavar="SPEC",
      help="resnets without an activation norm: how each residual branch starts (see "
      "wa.models): its last conv's gamma L^-1/2 (small-gamma), 0 (gamma), or its multiplier "
      "0 (multiplier), optionally ',lr/10' (Fixup scalars at lr/10) and ',scaled' (inner "
      "convs times L^-1/2); 'gamma,lr/10,scaled' is Fixup as published [default: "
      "small-gamma for wa and wn, gamma,lr/10,scaled for plain convs]")
    a("--dataset", default="cifar10-sample", choices=wadata.DATASETS)
    a("--data-dir", default=None, help="folder holding (or to receive) cifar-10-batches-py/ or "
      "cifar-100-python/ [default: ~/.cache/weightalign]")
    a("--no-download", action="store_true", help="never touch the network")
    a("--batch-size", type=_positive(int), default=64)
    a("--epochs", type=_positive(int), default=15)
    a("--recipe", default="short", choices=tuple(RECIPES),
      help="short: nesterov, one-cycle, peak lr 0.05 at batch 64 (for runs of 10-20 epochs); "
      "paper: the paper's lr 0.01 at batch 64 / 0.001 at batch 1, cosine [default: short]")
    a("--lr", type=_positive(float), default=None, help="initial (peak) learning rate "
      "[default: the recipe's, scaled with the batch size]")
    a("--momentum", type=_nonneg_float, default=0.9)
    a("--weight-decay", type=_nonneg_float, default=5e-4)
    a("--schedule", default=None, choices=SCHEDULES,
      help="per-step annealing: cosine to 0; step: /10 at 50%% and 75%%; onecycle "
      "[default: the recipe's]")
    a("--nesterov", default=None, action=argparse.BooleanOptionalAction,
      help="Nesterov momentum [default: the recipe's]")
    a("--width", type=_positive(float), default=1.0, help="multiply every channel count")
    a("--limit-train", type=_positive(int), default=None, metavar="N", help="first N training images")
    a("--limit-test", type=_positive(int), default=None, metavar="N", help="first N test images")
    a("--no-augment", action="store_true", help="no random crop / flip")
    a("--device", default="cpu", choices=("cpu", "cuda"))
    a("--seed", type=int, default=0)
    a("--out", default=None, help="run folder [default: runs/DATASET-MODEL-NORM-bBATCH-sSEED]")
    a("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    a("--eval-only", action="store_true", help="evaluate the checkpoint in --out on the test set")
    a("--progress", choices=("auto", "on", "off"), default="auto",
      help="tqdm bars: auto shows them on a terminal only")
    a("--threads", type=_positive(int), default=None,
      help=f"BLAS threads on the CPU [default: 1 below batch {SMALL_BATCH}, else all]")
    a("--record-distributions", action="store_true",
      help="after every epoch (and at the start) store histograms of chosen layers' weights (and "
      "WA's aligned weights) and of one channel's activations in distributions.npz, and plot them")
    a("--record-layers", default=None, metavar="NAMES",
      help="comma-separated module names (as in model.named_modules()) to record [default: the "
      "first, a middle and the last conv]")
    a("--record-channel", type=_nonneg_int, default=0, metavar="C",
      help="the output channel (filter) recorded in each layer [0]")
    a("--diagnostics-every", type=_positive(int), default=None, metavar="N",
      help="every N steps, write each conv layer's activation mean/std, gradient norm, "
      "update-to-weight ratio and WA's gamma to diagnostics.jsonl (wa.diagnostics)")
    return p


def add_group_flags(p):
    """--gn-groups / --gn-min-channels, shared by wa-train, wa-sweep and wa-activations."""
    from . import norms
    p.add_argument("--gn-groups", type=_positive(int), default=norms.GN_GROUPS, metavar="N",
                   help="gn and bcn: at most N groups per layer [default: %(default)s, the GN "
                   "paper's and the WA paper's setting]")
    p.add_argument("--gn-min-channels", type=_positive(int), default=norms.GN_MIN_CHANNELS,
                   metavar="K", help="gn and bcn: at least K channels per group (1 allows "
                   "InstanceNorm-like groups on narrow layers) [default: %(default)s]")


def parse_config(argv=None, prog="wa-train"):
    """Flags -> config dict; usage errors exit with code 2 (argparse's convention)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    # Which flags were given explicitly: parse again with every default suppressed.
    quiet = build_parser(prog)
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    given = set(vars(quiet.parse_args(argv)))
    cfg = vars(args)
    from . import models, norms
    if cfg["model"] not in models.names():
        parser.error(f"unknown --model {cfg['model']!r}; choose one of {', '.join(models.names())}")
    try:
        cfg["norm"] = norms.canonical(cfg["norm"])
    except ValueError as e:
        parser.error(f"--norm: {e}")
    if cfg.get("fixup") is not None:
        try:
            cfg["fixup"] = str(models.parse_fixup(cfg["fixup"]))
        except ValueError as e:
            parser.error(f"--fixup: {e}")
    if cfg["device"] == "cuda" and not backend.is_available("cuda"):
        parser.error("--device cuda: no usable GPU (CuPy missing or no CUDA device); use --device cpu")
    if cfg["out"] is None:
        if cfg["resume"] or cfg["eval_only"]:
            parser.error("--resume and --eval-only need --out DIR (the run folder)")
        cfg["out"] = os.path.join("runs", f"{cfg['dataset']}-{cfg['model']}-{cfg['norm']}"
                                          f"-b{cfg['batch_size']}-s{cfg['seed']}")
    # Resume rules: --resume and --eval-only need a run folder and take its settings; only
    # those in RESUME_MAY_CHANGE may differ.  A new run never overwrites a checkpoint.
    ckpt = os.path.join(cfg["out"], rf.CHECKPOINT)
    if cfg["resume"] or cfg["eval_only"]:
        saved_path = os.path.join(cfg["out"], rf.CONFIG)
        if not os.path.isfile(ckpt) or not os.path.isfile(saved_path):
            parser.error(f"{cfg['out']} holds no {rf.CHECKPOINT} and {rf.CONFIG} to "
                         f"{'resume' if cfg['resume'] else 'evaluate'}")
        saved = rf.read_json(saved_path)["settings"]
        for k in sorted(given - RESUME_MAY_CHANGE):
            if k in saved and saved[k] != cfg[k]:
                parser.error(f"--{k.replace('_', '-')} {cfg[k]} differs from the saved run's "
                             f"{saved[k]}; drop it, or start a new run with another --out")
        cfg = {**saved, **{k: cfg[k] for k in RESUME_MAY_CHANGE
                           if k in given or k in ("resume", "eval_only", "out")}}
    elif os.path.isfile(ckpt):
        parser.error(f"{cfg['out']} already holds a run: add --resume to continue it, "
                     "or choose another --out")
    cfg.setdefault("recipe", "paper")          # run folders from before --recipe existed
    recipe = RECIPES[cfg["recipe"]]
    if cfg["lr"] is None:
        cfg["lr"] = default_lr(cfg["batch_size"], recipe["lr_at_64"])
    if cfg.get("schedule") is None:
        cfg["schedule"] = recipe["schedule"]
    if cfg.get("nesterov") is None:
        cfg["nesterov"] = recipe["nesterov"] and cfg["momentum"] > 0
    if cfg["nesterov"] and cfg["momentum"] == 0:
        parser.error("--nesterov needs momentum: give --momentum > 0, or --no-nesterov")
    if cfg.get("record_layers") and not cfg.get("record_distributions"):
        parser.error("--record-layers needs --record-distributions")
    return cfg, parser


def main(argv=None):
    cfg, parser = parse_config(argv)
    # the command as typed, also when main() is called from Python (a notebook, wa-sweep)
    trainer = Trainer(cfg, command=None if argv is None else ["wa-train", *argv])
    try:
        return trainer.run()
    except ConfigError as e:
        parser.error(str(e))
    except (wadata.DatasetError, CheckpointError) as e:
        print(f"wa-train: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nwa-train: aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
