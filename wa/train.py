"""wa-train: train a model with a chosen normalization on CIFAR-sized images.

    wa-train --dataset cifar10-sample --model resnet20 --norm gn+wa --epochs 15
    wa-train --out runs/x --resume          # continue a killed or interrupted run
    python -m wa.train --help

The run folder (--out) gets
  config.json     every setting, the seed, package and library versions;
  metrics.jsonl   one JSON object per finished epoch (epoch, train_loss, train_acc, test_loss,
                  test_acc, lr, seconds, images_per_s), accuracies as fractions;
  checkpoint.npz  model, optimizer, scheduler, loader and RNG states plus the metrics so far,
                  written to a temporary file and renamed, so a kill never leaves half of one;
  curves.png      loss and accuracy against epoch (skipped, with a note, without matplotlib);
  distributions.npz, distributions.png   with --record-distributions: per-epoch histograms of
                  chosen layers' weights (raw and, for WA/WS/WN, effective) and of one channel's
                  activations (see `wa.distributions`; the paper's Figs. 4-5 and 9-12).

Group norms (gn, bcn): --gn-groups N (default 32, the GN paper's and the WA paper's setting) and
--gn-min-channels K (default 1; 4 is the rule that lets narrow nets such as resnet20 learn) set
the group count per layer, see `wa.norms`.  Fixup models (resnets without an activation norm)
train their scalar biases and multipliers at lr / 10, as the Fixup authors' code does;
config.json lists the parameter groups and the group count per GroupNorm width.

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

Determinism: the seed fixes initialisation (minigrad's generator), dropout masks (NumPy's
global generator) and the loader's shuffling and augmentation; all of these states go into
the checkpoint, so a resumed run reproduces the uninterrupted one exactly (on the CPU; CuPy's
own generator, used by dropout on the GPU, is reseeded but not checkpointed).

Stopping: Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint at that exact
batch and exits (code 130); a second one aborts at once.  A NaN or infinite loss stops the run (code 1)
and leaves the last good checkpoint untouched.  Bad flags exit with code 2 and one line.
"""
import argparse
import json
import math
import os
import platform
import signal
import sys
import time

import numpy as np
import threadpoolctl

import minigrad as mg
from minigrad import backend, nn, optim
from minigrad import functional as F
from . import data as wadata

SCHEDULES = ("cosine", "step", "onecycle")
# Settings a resumed run may change; every other one must match the saved config.
RESUME_MAY_CHANGE = {"device", "data_dir", "no_download", "resume", "eval_only", "out", "progress",
                     "threads"}

# Below this batch size the GEMMs are small and BLAS threads cost more than they give: measured
# on a 2-core VM, a ResNet-20 step at batch 2 took 25 ms on one OpenBLAS thread and 200-700 ms
# on two, whenever any other process wanted a core (the threads spin while they wait).
SMALL_BATCH = 16


def blas_threads(cfg):
    """The BLAS thread count for a run: --threads, else 1 for small batches, else BLAS's own."""
    if cfg.get("threads"):
        return cfg["threads"]
    return 1 if cfg["batch_size"] < SMALL_BATCH else None


class ConfigError(ValueError):
    """A combination of settings that cannot run (reported as a usage error, exit code 2)."""


class CheckpointError(RuntimeError):
    """An unreadable checkpoint."""


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
    return p


def add_group_flags(p):
    """--gn-groups / --gn-min-channels, shared by wa-train, wa-sweep and wa-activations."""
    from . import norms
    p.add_argument("--gn-groups", type=_positive(int), default=norms.GN_GROUPS, metavar="N",
                   help="gn and bcn: at most N groups per layer [default: %(default)s, the GN "
                   "paper's and the WA paper's setting]")
    p.add_argument("--gn-min-channels", type=_positive(int), default=norms.GN_MIN_CHANNELS,
                   metavar="K", help="gn and bcn: at least K channels per group (4 is the rule "
                   "that lets narrow nets such as resnet20 learn) [default: %(default)s]")


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
    if cfg["device"] == "cuda" and not backend.is_available("cuda"):
        parser.error("--device cuda: no usable GPU (CuPy missing or no CUDA device); use --device cpu")
    if cfg["out"] is None:
        if cfg["resume"] or cfg["eval_only"]:
            parser.error("--resume and --eval-only need --out DIR (the run folder)")
        cfg["out"] = os.path.join("runs", f"{cfg['dataset']}-{cfg['model']}-{cfg['norm']}"
                                          f"-b{cfg['batch_size']}-s{cfg['seed']}")
    ckpt = os.path.join(cfg["out"], "checkpoint.npz")
    if cfg["resume"] or cfg["eval_only"]:
        saved_path = os.path.join(cfg["out"], "config.json")
        if not os.path.isfile(ckpt) or not os.path.isfile(saved_path):
            parser.error(f"{cfg['out']} holds no checkpoint.npz and config.json to "
                         f"{'resume' if cfg['resume'] else 'evaluate'}")
        with open(saved_path) as f:
            saved = json.load(f)["settings"]
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


# ----------------------------------------------------------------------------------------
# Checkpoints: nested dicts of arrays and plain values in one .npz
# ----------------------------------------------------------------------------------------
def _pack(obj, arrays):
    """Arrays go to `arrays` under a generated key; the rest becomes JSON (dict keys keep
    their type, tuples stay tuples: RNG states and optimizer states need both)."""
    if isinstance(obj, np.ndarray) or backend.device_of(obj) == "cuda":
        key = f"a{len(arrays)}"
        arrays[key] = backend.as_numpy(obj)
        return {"__array__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _pack(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_pack(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _unpack(obj, arrays):
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__tuple__" in obj:
            return tuple(_unpack(v, arrays) for v in obj["__tuple__"])
        return {k: _unpack(v, arrays) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


def save_checkpoint(path, state):
    """Write to PATH.tmp, flush to disk, then rename over PATH (atomic on POSIX and Windows)."""
    arrays = {}
    meta = json.dumps(_pack(state, arrays))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, __meta__=np.array(meta), **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return _unpack(json.loads(str(arrays.pop("__meta__"))), arrays)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path} ({type(e).__name__}: {e}); "
                              "it is not one wa-train wrote, or the disk is damaged") from None


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------
def _seed_everything(seed):
    (getattr(mg, "manual_seed", None) or nn.init.manual_seed)(seed)
    np.random.seed(seed % 2 ** 32)   # F.dropout draws its masks from NumPy's global generator


def _rng_states():
    return {"init": nn.init.default_generator.bit_generator.state, "numpy": np.random.get_state()}


def _set_rng_states(s):
    nn.init.default_generator.bit_generator.state = s["init"]
    np.random.set_state(s["numpy"])


def build_model(cfg, num_classes):
    """wa.models.build, with unknown names and bad widths turned into ConfigError."""
    from . import models
    if cfg["model"] not in models.names():
        raise ConfigError(f"unknown --model {cfg['model']!r}; choose one of {', '.join(models.names())}")
    from .norms import GN_GROUPS, LEGACY_GN_MIN_CHANNELS
    try:
        # A run folder written before the flags existed used the >= 4 channels rule.
        return models.build(cfg["model"], norm=cfg["norm"], num_classes=num_classes,
                            width=cfg["width"], gn_groups=cfg.get("gn_groups", GN_GROUPS),
                            gn_min_channels=cfg.get("gn_min_channels", LEGACY_GN_MIN_CHANNELS))
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--model {cfg['model']} --norm {cfg['norm']} --width {cfg['width']}: "
                          + " ".join(str(e).split())) from None


def check_trainable(cfg, num_classes, n_train):
    """Fail early (ConfigError) on combinations that cannot train."""
    if cfg["batch_size"] > n_train:
        raise ConfigError(f"--batch-size {cfg['batch_size']} exceeds the {n_train} training images "
                          "(the last partial batch is dropped, so no step would run)")
    if cfg["batch_size"] == 1:
        # A batch of one may leave BatchNorm a single value per channel (e.g. on a 1x1 map):
        # try one training-mode forward on a throwaway model.
        model = build_model(cfg, num_classes)
        try:
            model.train()
            with mg.no_grad():
                model(np.zeros((1, 3, 32, 32), np.float32))
        except (ValueError, RuntimeError) as e:
            raise ConfigError(f"--norm {cfg['norm']} cannot train {cfg['model']} at --batch-size 1: "
                              + " ".join(str(e).split())) from None


FIXUP_SCALAR_LR_FACTOR = 0.1     # Fixup's scalar biases and multipliers: lr / 10 (its authors' code)


def param_groups(model, lr):
    """The optimizer's parameter groups: everything at `lr`, except Fixup's scalar biases and
    multipliers (`wa.models.fixup_scalars`), which get lr / 10 as in the Fixup authors' code.
    Group 0 is always the main one; the scalar group exists only for Fixup models."""
    from .models import fixup_scalars
    scalars = fixup_scalars(model)
    ids = {id(p) for p in scalars}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids], "lr": lr}]
    if scalars:
        groups.append({"params": scalars, "lr": lr * FIXUP_SCALAR_LR_FACTOR})
    return groups


def _make_scheduler(cfg, opt, total_steps):
    sched = optim.lr_scheduler
    if cfg["schedule"] == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=total_steps)
    if cfg["schedule"] == "step":
        return sched.MultiStepLR(opt, milestones=[total_steps // 2, (3 * total_steps) // 4], gamma=0.1)
    return sched.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps)


def _versions():
    from . import __version__
    return {"weightalign": __version__, "minigrad": mg.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


class Trainer:
    """One run: data, model, optimizer, schedule, and the loop.  `run()` returns an exit code.

    Tests and wa-sweep drive it directly: Trainer(cfg).run()."""

    def __init__(self, cfg, log=print):
        self.cfg, self.log = dict(cfg), log
        self.out = cfg["out"]
        self.ckpt_path = os.path.join(self.out, "checkpoint.npz")
        self.stop_requested = False
        self.diverged = None                   # (epoch, batch, loss, lr) when the loss blew up
        self.history = []
        self.epoch, self.batch = 0, 0          # finished epochs; finished batches of the next one
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}

    # -- setup ----------------------------------------------------------------------------
    def setup(self):
        c = self.cfg
        ds = wadata.load_dataset(c["dataset"], c["data_dir"], not c["no_download"],
                                 c["limit_train"], c["limit_test"])
        self.dataset = ds
        check_trainable(c, ds.num_classes, len(ds.x_train))
        _seed_everything(c["seed"])
        self.model = build_model(c, ds.num_classes).to(c["device"])
        self.train_loader, self.test_loader = wadata.make_loaders(
            ds, c["batch_size"], seed=c["seed"], device=c["device"], augment=not c["no_augment"])
        self.optimizer = optim.SGD(param_groups(self.model, c["lr"]), lr=c["lr"],
                                   momentum=c["momentum"], weight_decay=c["weight_decay"],
                                   nesterov=c["nesterov"])
        self.total_steps = c["epochs"] * len(self.train_loader)
        self.scheduler = _make_scheduler(c, self.optimizer, self.total_steps)
        self.recorder = None
        if c.get("record_distributions"):
            from . import distributions
            layers = ([n.strip() for n in c["record_layers"].split(",") if n.strip()]
                      if c.get("record_layers") else distributions.default_layers(self.model))
            probe, _ = next(iter(self.test_loader))
            try:
                self.recorder = distributions.Recorder(self.model, layers,
                                                       c.get("record_channel", 0), probe)
            except ValueError as e:
                raise ConfigError(str(e)) from None

    @property
    def distributions_path(self):
        return os.path.join(self.out, "distributions.npz")

    def record_distributions(self):
        """Histograms of the model as it is after self.epoch epochs, saved at once."""
        if self.recorder is not None:
            self.recorder.record(self.epoch)
            self.recorder.save(self.distributions_path)

    def state(self):
        return {"model": dict(self.model.state_dict()), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "loader": self.train_loader.state_dict(),
                "rng": _rng_states(), "epoch": self.epoch, "batch": self.batch,
                "partial": dict(self.partial), "history": list(self.history)}

    def load_state(self, s):
        self.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        self.train_loader.load_state_dict(s["loader"])
        _set_rng_states(s["rng"])
        self.epoch, self.batch = int(s["epoch"]), int(s["batch"])
        self.partial, self.history = dict(s["partial"]), list(s["history"])

    def write_config(self):
        """config.json for a new run; a resumed run keeps it and notes the resume."""
        os.makedirs(self.out, exist_ok=True)
        path = os.path.join(self.out, "config.json")
        settings = {k: v for k, v in self.cfg.items() if k not in ("resume", "eval_only")}
        if self.cfg.get("resume") and os.path.isfile(path):
            with open(path) as f:
                doc = json.load(f)
            doc["settings"]["device"] = settings["device"]
            doc.setdefault("resumed", []).append({"epoch": self.epoch, "batch": self.batch,
                                                  "command": sys.argv, "versions": _versions()})
        else:
            ds, tf = self.dataset, self.train_loader.transform
            doc = {"settings": settings, "versions": _versions(), "command": sys.argv,
                   "data": {"train_images": len(ds.x_train), "test_images": len(ds.x_test),
                            "classes": list(ds.classes), "mean": tf.mean.ravel().tolist(),
                            "std": tf.std.ravel().tolist()},
                   "steps_per_epoch": len(self.train_loader),
                   "parameters": int(sum(p.size for p in self.model.parameters())),
                   "param_groups": [{"name": "fixup scalars" if i else "main",
                                     "parameters": int(sum(p.size for p in g["params"])),
                                     "lr": g["lr"]}
                                    for i, g in enumerate(self.optimizer.param_groups)],
                   "gn_groups_per_layer": self._group_counts()}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=2)
        os.replace(tmp, path)

    def _group_counts(self):
        """{"C channels": G groups} of the model's GroupNorm / BCN layers (what gn_groups and
        gn_min_channels gave)."""
        from .nn import BatchChannelNorm
        out = {}
        for m in self.model.modules():
            if isinstance(m, (nn.GroupNorm, BatchChannelNorm)):
                out[str(m.num_channels)] = m.num_groups
        return out

    def write_metrics(self):
        """Rewrite metrics.jsonl from the history (after a resume it may hold a line too many
        or too few, depending on when the run died)."""
        tmp = os.path.join(self.out, "metrics.jsonl.tmp")
        with open(tmp, "w") as f:
            for rec in self.history:
                f.write(json.dumps(rec) + "\n")
        os.replace(tmp, os.path.join(self.out, "metrics.jsonl"))

    def append_metrics(self, rec):
        with open(os.path.join(self.out, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()

    def save(self):
        save_checkpoint(self.ckpt_path, self.state())

    # -- loop -----------------------------------------------------------------------------
    def evaluate(self):
        """Mean loss and accuracy on the test set, in eval mode without a graph."""
        self.model.eval()
        loss, correct, n = 0.0, 0, 0
        with mg.no_grad():
            for x, y in self.test_loader:
                logits = self.model(x)
                loss += float(F.cross_entropy(logits, y, reduction="sum").item())
                correct += int((logits.data.argmax(axis=1) == y.data).sum())
                n += len(y)
        return loss / n, correct / n

    def train_step(self, x, y):
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        value = float(loss.item())
        if not math.isfinite(value):
            return value, 0
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return value, int((logits.data.argmax(axis=1) == y.data).sum())

    def _bar(self, total, initial, desc):
        show = {"on": True, "off": False, "auto": None}[self.cfg.get("progress", "auto")]
        if show is False:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False,
                    disable=None if show is None else False, dynamic_ncols=True)

    def train_epoch(self):
        """Train from batch self.batch to the end of epoch self.epoch + 1.  Returns "done",
        "stopped" (Ctrl-C, checkpoint saved mid-epoch) or "diverged"."""
        self.model.train()
        e = self.epoch + 1
        p = self.partial
        bar = self._bar(len(self.train_loader), self.batch, f"epoch {e}/{self.cfg['epochs']}")
        t0 = time.perf_counter()
        try:
            for x, y in self.train_loader:
                lr = self.optimizer.param_groups[0]["lr"]
                value, correct = self.train_step(x, y)
                if not math.isfinite(value):
                    self.diverged = (e, self.batch + 1, value, lr)
                    return "diverged"
                self.batch += 1
                p["loss"] += value * len(y)
                p["correct"] += correct
                p["seen"] += len(y)
                if self.batch == 1:
                    p["lr"] = lr
                if bar is not None:
                    rate = p["seen"] / max(p["seconds"] + time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{p['loss'] / p['seen']:.3f}",
                                    acc=f"{p['correct'] / p['seen']:.3f}", img_s=f"{rate:.0f}")
                    bar.update(1)
                if self.stop_requested:
                    p["seconds"] += time.perf_counter() - t0
                    self.save()
                    return "stopped"
        finally:
            if bar is not None:
                bar.close()
        p["seconds"] += time.perf_counter() - t0
        return "done"

    def run(self):
        """Train (or evaluate) as configured; returns the process exit code."""
        threads = blas_threads(self.cfg)
        if threads is None:
            return self._run()
        with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
            return self._run()

    def _run(self):
        c = self.cfg
        self.setup()
        if c.get("resume") or c.get("eval_only"):
            self.load_state(load_checkpoint(self.ckpt_path))
        if c.get("eval_only"):
            loss, acc = self.evaluate()
            self.log(f"{c['model']} {c['norm']} (epoch {self.epoch}): test loss {loss:.4f}  "
                     f"test acc {acc:.4f}")
            return 0
        self.write_config()
        self.write_metrics()
        if self.recorder is not None:
            self.recorder.restore(self.distributions_path, self.epoch)
            if not self.recorder.epochs and self.epoch == 0 and self.batch == 0:
                self.record_distributions()       # epoch 0: the initialisation
        if self.epoch == 0 and self.batch == 0:
            self.save()               # a resumable starting point, before any step
        self.log(f"{c['model']} with {c['norm']} on {c['dataset']} ({len(self.dataset.x_train)} "
                 f"train / {len(self.dataset.x_test)} test images), batch {c['batch_size']}, "
                 f"lr {c['lr']:.4g}, {c['schedule']}, {c['epochs']} epochs, {c['device']} -> {self.out}")
        if c["batch_size"] == 1 and c["norm"].split("+")[0] == "bn":   # canonical: norm first
            self.log("note: at batch 1, BatchNorm normalizes each image by its own statistics in "
                     "training but by running averages in evaluation; the paper calls BN at "
                     "batch 1 impossible (Table II)")
        previous = self._install_signal_handlers()
        try:
            while self.epoch < c["epochs"]:
                status = self.train_epoch()
                if status == "diverged":
                    e, b, value, lr = self.diverged
                    self.log(f"wa-train: loss became {value} at epoch {e}, batch {b} (lr {lr:.4g}): "
                             f"training diverged and stopped. The last good checkpoint "
                             f"({self._where()}) is kept in {self.ckpt_path}. Try a smaller --lr.")
                    return 1
                if status == "stopped":
                    self.plot()
                    self.log(f"interrupted: saved {self.ckpt_path} at epoch {self.epoch + 1}, batch "
                             f"{self.batch}; continue with:  wa-train --out {self.out} --resume")
                    return 130
                self.finish_epoch()
                if self.stop_requested:
                    self.plot()
                    self.log(f"interrupted after epoch {self.epoch}; continue with:  "
                             f"wa-train --out {self.out} --resume")
                    return 130
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.plot()
        return 0

    def _where(self):
        return f"epoch {self.epoch}" + (f", batch {self.batch}" if self.batch else "")

    def finish_epoch(self):
        t0 = time.perf_counter()
        test_loss, test_acc = self.evaluate()
        p = self.partial
        rec = {"epoch": self.epoch + 1, "train_loss": p["loss"] / p["seen"],
               "train_acc": p["correct"] / p["seen"], "test_loss": test_loss, "test_acc": test_acc,
               "lr": p["lr"], "seconds": p["seconds"] + time.perf_counter() - t0,
               "images_per_s": p["seen"] / max(p["seconds"], 1e-9)}
        self.history.append(rec)
        self.epoch, self.batch = self.epoch + 1, 0
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.record_distributions()    # before the checkpoint: a resume drops rows past it
        self.save()                    # first the checkpoint (it holds the history) ...
        self.append_metrics(rec)       # ... then the line; a resume rewrites the file anyway
        self.log(f"epoch {rec['epoch']:>3}/{self.cfg['epochs']}  train loss {rec['train_loss']:.4f} "
                 f"acc {rec['train_acc']:.4f}  test loss {test_loss:.4f} acc {test_acc:.4f}  "
                 f"lr {rec['lr']:.4g}  {rec['seconds']:.1f} s  {rec['images_per_s']:.0f} img/s")

    def _install_signal_handlers(self):
        """Ctrl-C (SIGINT) and SIGTERM (kill, a scheduler's preemption) ask for a clean stop at
        the next batch boundary; a second one aborts at once.  Returns the previous handlers."""
        import threading
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self.stop_requested:    # the second signal: give up at once
                raise KeyboardInterrupt
            self.stop_requested = True
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self.log(f"\n{name}: finishing this step and saving a checkpoint (again to abort)")
        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def plot(self):
        """curves.png: loss and accuracy against epoch (and distributions.png when recorded)."""
        if self.recorder is not None and os.path.isfile(self.distributions_path):
            from . import distributions
            c = self.cfg
            distributions.plot(self.distributions_path, os.path.join(self.out, "distributions.png"),
                               f"{c['model']} + {c['norm']}: channel {self.recorder.channel}, "
                               f"epochs {self.recorder.epochs[0]}-{self.recorder.epochs[-1]}")
        if not self.history:
            return
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from wa import plotstyle
            plotstyle.use()
        except ImportError:
            self.log("matplotlib is not installed: skipping curves.png (pip install matplotlib)")
            return
        ep = [r["epoch"] for r in self.history]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
        for key, style in (("train", "--"), ("test", "-")):
            ax1.plot(ep, [r[f"{key}_loss"] for r in self.history], style, label=key)
            ax2.plot(ep, [r[f"{key}_acc"] for r in self.history], style, label=key)
        ax1.set(xlabel="epoch", ylabel="loss")
        ax2.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
        for ax in (ax1, ax2):
            ax.legend()
            ax.grid(alpha=0.3)
        c = self.cfg
        fig.suptitle(f"{c['model']} + {c['norm']}, {c['dataset']}, batch {c['batch_size']}")
        fig.tight_layout()
        fig.savefig(os.path.join(self.out, "curves.png"))
        plt.close(fig)


def main(argv=None):
    cfg, parser = parse_config(argv)
    trainer = Trainer(cfg)
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
