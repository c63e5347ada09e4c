"""One wa-train run: build it from a config, drive `wa.loop` over the epochs, keep the run
folder (`wa.run_folder`) and the checkpoint in step, stop and resume exactly.

    cfg, _ = wa.train.parse_config(["--model", "plain8", "--norm", "wa", "--out", "runs/x"])
    exit_code = Trainer(cfg).run()

Determinism: the seed fixes initialisation (minigrad's generator), dropout masks (NumPy's
global generator) and the loader's shuffling and augmentation; all of these states go into
the checkpoint, so a resumed run reproduces the uninterrupted one exactly (on the CPU; CuPy's
own generator, used by dropout on the GPU, is reseeded but not checkpointed).
"""
import functools
import os
import platform
import subprocess
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim
from . import data as wadata
from . import cli, loop, process
from . import run_folder as rf


class ConfigError(ValueError):
    """A combination of settings that cannot run (reported as a usage error, exit code 2)."""


# ----------------------------------------------------------------------------------------
# Building a run from its config
# ----------------------------------------------------------------------------------------
def build_model(cfg, num_classes):
    """wa.models.build, with unknown names and bad widths turned into ConfigError."""
    from . import models
    problem = cli.model_name_error("--model", cfg["model"])
    if problem:
        raise ConfigError(problem)
    from .norms import GN_GROUPS, LEGACY_GN_MIN_CHANNELS
    try:
        # A run folder written before the flags existed used the >= 4 channels rule.
        return models.build(cfg["model"], norm=cfg["norm"], num_classes=num_classes,
                            width=cfg["width"], gn_groups=cfg.get("gn_groups", GN_GROUPS),
                            gn_min_channels=cfg.get("gn_min_channels", LEGACY_GN_MIN_CHANNELS),
                            # run folders without the key were built with Fixup as published
                            fixup=cfg.get("fixup", models.FIXUP_PUBLISHED),
                            init=cfg.get("init", "kaiming"))   # runs from before --init
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


FIXUP_SCALAR_LR_FACTOR = 0.1     # Fixup's scalars with ",lr/10" in --fixup (its authors' code)


def param_groups(model, lr):
    """The optimizer's parameter groups: everything at `lr`, except Fixup's scalar biases and
    multipliers (`wa.models.fixup_scalars`), which get lr times the model's
    `wa.models.fixup_scalar_lr_factor` (1, or 1/10 as in the Fixup authors' code).
    Group 0 is always the main one; the scalar group exists only for Fixup models."""
    from .models import fixup_scalar_lr_factor, fixup_scalars
    scalars = fixup_scalars(model)
    ids = {id(p) for p in scalars}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids], "lr": lr}]
    if scalars:
        groups.append({"params": scalars, "lr": lr * fixup_scalar_lr_factor(model)})
    return groups


def make_scheduler(cfg, opt, total_steps):
    """The --schedule, annealed per step over the whole run."""
    sched = optim.lr_scheduler
    if cfg["schedule"] == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=total_steps)
    if cfg["schedule"] == "step":
        return sched.MultiStepLR(opt, milestones=[total_steps // 2, (3 * total_steps) // 4], gamma=0.1)
    return sched.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps)


def seed_everything(seed):
    """minigrad's initialisation generator, and NumPy's global one that F.dropout draws its
    masks from (`seed` in [0, 2**32), which wa-train's --seed checks)."""
    mg.manual_seed(seed)


def rng_states():
    return {"init": nn.init.default_generator.bit_generator.state, "numpy": np.random.get_state()}


def set_rng_states(s):
    nn.init.default_generator.bit_generator.state = s["init"]
    np.random.set_state(s["numpy"])


def versions():
    """Package versions, and the git commit of the code when it runs from a checkout (with
    "+dirty" when it has uncommitted changes): the code version a run folder records."""
    from . import __version__
    return {"weightalign": __version__, "minigrad": mg.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "git_commit": _git_commit()}


@functools.lru_cache(maxsize=None)
def _git_commit():
    """Asked once per process: the code a process runs is the code it imported, however the
    checkout moves on while it trains (a sweep's later runs would otherwise record a commit
    they never ran)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=here, capture_output=True, text=True,
                                        timeout=10)
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return None                       # an installed copy, not a checkout
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None                           # no git on this machine


# ----------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------
class Trainer:
    """One run: data, model, optimizer, schedule, and the loop.  `run()` returns an exit code.

    Tests and wa-sweep drive it directly: Trainer(cfg).run()."""

    def __init__(self, cfg, log=print, command=None):
        self.cfg, self.log = dict(cfg), log
        self.command = list(sys.argv if command is None else command)   # for config.json
        self.out = cfg["out"]
        self.ckpt_path = os.path.join(self.out, rf.CHECKPOINT)
        self.stop = process.StopSignals(log)   # .requested after Ctrl-C / SIGTERM
        self.diverged = None                   # (epoch, batch, loss, lr) when the loss blew up
        self.history = []
        self.epoch, self.batch = 0, 0          # finished epochs; finished batches of the next one
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.diagnostics, self.diagnostic_rows = None, []   # --diagnostics-every
        self.initial = None                    # test loss and accuracy before the first step
        self.saved_at = None                   # (epoch, batch) of the checkpoint on disk

    # -- setup ----------------------------------------------------------------------------
    def setup(self):
        c = self.cfg
        ds = wadata.load_dataset(c["dataset"], c["data_dir"], not c["no_download"],
                                 c["limit_train"], c["limit_test"])
        self.dataset = ds
        check_trainable(c, ds.num_classes, len(ds.x_train))
        seed_everything(c["seed"])
        self.model = build_model(c, ds.num_classes).to(c["device"])
        self.train_loader, self.test_loader = wadata.make_loaders(
            ds, c["batch_size"], seed=c["seed"], device=c["device"], augment=not c["no_augment"])
        self.optimizer = optim.SGD(param_groups(self.model, c["lr"]), lr=c["lr"],
                                   momentum=c["momentum"], weight_decay=c["weight_decay"],
                                   nesterov=c["nesterov"])
        self.total_steps = c["epochs"] * len(self.train_loader)
        self.scheduler = make_scheduler(c, self.optimizer, self.total_steps)
        if c.get("diagnostics_every"):
            from .diagnostics import TrainingDiagnostics
            self.diagnostics = TrainingDiagnostics(self.model, every=c["diagnostics_every"])
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

    # -- the run folder -------------------------------------------------------------------
    def state(self):
        return {"model": dict(self.model.state_dict()), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "loader": self.train_loader.state_dict(),
                "rng": rng_states(), "epoch": self.epoch, "batch": self.batch,
                "partial": dict(self.partial), "history": list(self.history),
                "diagnostics": list(self.diagnostic_rows), "initial": self.initial}

    def load_state(self, s):
        self.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        self.train_loader.load_state_dict(s["loader"])
        set_rng_states(s["rng"])
        self.epoch, self.batch = int(s["epoch"]), int(s["batch"])
        self.saved_at = (self.epoch, self.batch)
        self.partial, self.history = dict(s["partial"]), list(s["history"])
        self.diagnostic_rows = list(s.get("diagnostics", []))
        self.initial = s.get("initial")

    def save(self):
        rf.save_checkpoint(self.ckpt_path, self.state())
        self.saved_at = (self.epoch, self.batch)
        if self.diagnostics is not None:   # after the checkpoint, which holds the same rows
            rf.write_jsonl(os.path.join(self.out, rf.DIAGNOSTICS), self.diagnostic_rows)

    def write_config(self):
        """config.json for a new run; a resumed run keeps it and notes the resume."""
        os.makedirs(self.out, exist_ok=True)
        path = os.path.join(self.out, rf.CONFIG)
        settings = {k: v for k, v in self.cfg.items() if k not in ("resume", "eval_only")}
        if self.cfg.get("resume") and os.path.isfile(path):
            doc = rf.read_json(path)
            doc["settings"]["device"] = settings["device"]
            doc.setdefault("resumed", []).append({"epoch": self.epoch, "batch": self.batch,
                                                  "command": self.command, "versions": versions()})
        else:
            ds, tf = self.dataset, self.train_loader.transform
            doc = {"settings": settings, "versions": versions(), "command": self.command,
                   "data": {"train_images": len(ds.x_train), "test_images": len(ds.x_test),
                            "classes": list(ds.classes), "mean": tf.mean.ravel().tolist(),
                            "std": tf.std.ravel().tolist()},
                   "steps_per_epoch": len(self.train_loader),
                   "parameters": int(sum(p.size for p in self.model.parameters())),
                   "param_groups": [{"name": "fixup scalars" if i else "main",
                                     "parameters": int(sum(p.size for p in g["params"])),
                                     # the group's peak rate (one-cycle starts below it)
                                     "lr": g.get("max_lr", g.get("initial_lr", g["lr"]))}
                                    for i, g in enumerate(self.optimizer.param_groups)],
                   "gn_groups_per_layer": self._group_counts(),
                   # how the Fixup net's branches started (null: the net has an activation norm)
                   "fixup": None if getattr(self.model, "fixup_config", None) is None
                   else str(self.model.fixup_config)}
        rf.write_json(path, doc)

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
        rf.write_metrics(self.out, self.history)

    def append_metrics(self, rec):
        rf.append_metrics(self.out, rec)

    def plot(self):
        """curves.png: loss and accuracy against epoch (and distributions.png when recorded)."""
        c = self.cfg
        if self.recorder is not None and os.path.isfile(self.distributions_path):
            from . import distributions
            distributions.plot(self.distributions_path, os.path.join(self.out, "distributions.png"),
                               f"{c['model']} + {c['norm']}: channel {self.recorder.channel}, "
                               f"epochs {self.recorder.epochs[0]}-{self.recorder.epochs[-1]}")
        if self.history:
            rf.plot_curves(os.path.join(self.out, rf.CURVES), self.history,
                           f"{c['model']} + {c['norm']}, width {c['width']:g}, {c['dataset']} "
                           f"({len(self.dataset.x_train)} images), batch {c['batch_size']}, "
                           f"lr {c['lr']:.3g}, seed {c['seed']}",
                           self.log, self.initial, self.dataset.num_classes)

    # -- the loop -------------------------------------------------------------------------
    def train_step(self, x, y):
        if self.diagnostics is None:
            return loop.train_step(self.model, self.optimizer, self.scheduler, x, y)
        self.diagnostics.begin(self.epoch * len(self.train_loader) + self.batch)
        result = loop.train_step(self.model, self.optimizer, self.scheduler, x, y,
                                 watch=self.diagnostics)
        self.diagnostic_rows += [{"epoch": self.epoch + 1, **row} for row in self.diagnostics.end()]
        return result

    def evaluate(self):
        return loop.evaluate(self.model, self.test_loader)

    def train_epoch(self):
        """Train from batch self.batch to the end of epoch self.epoch + 1.  Returns "done",
        "stopped" (Ctrl-C, checkpoint saved mid-epoch) or "diverged"."""
        e, p = self.epoch + 1, self.partial
        t0 = time.perf_counter()
        with process.ProgressBar(self.cfg.get("progress", "auto"), len(self.train_loader),
                                 self.batch, f"epoch {e}/{self.cfg['epochs']}", self.log) as bar:
            def after_step():
                self.batch += 1
                bar.update(p, p["seconds"] + time.perf_counter() - t0)
                return self.stop.requested
            try:
                # A diverging run overflows before its loss turns NaN; the NaN check reports it
                # in one line, so NumPy's overflow warnings would only repeat it.
                with np.errstate(over="ignore", invalid="ignore"):
                    finished = loop.train_epoch(self.model, self.optimizer, self.train_loader, p,
                                                self.train_step, after_step)
            except loop.Diverged as d:
                self.diverged = (e, self.batch + 1, d.loss, d.lr)
                return "diverged"
            p["seconds"] += time.perf_counter() - t0
            if not finished:
                self.save()
                return "stopped"
        return "done"

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
        # elapsed: this run's epochs so far (across resumes); eta: their mean per epoch left
        elapsed = sum(r["seconds"] for r in self.history)
        eta = elapsed / len(self.history) * (self.cfg["epochs"] - self.epoch)
        self.log(f"epoch {rec['epoch']:>3}/{self.cfg['epochs']}  train loss {rec['train_loss']:.4f} "
                 f"acc {rec['train_acc']:.4f}  test loss {test_loss:.4f} acc {test_acc:.4f}  "
                 f"lr@start {rec['lr']:.4g}  {rec['seconds']:.1f} s  {rec['images_per_s']:.0f} img/s  "
                 f"elapsed {process.format_seconds(elapsed)}  eta {process.format_seconds(eta)}")

    # -- the whole run --------------------------------------------------------------------
    def run(self):
        """Train (or evaluate) as configured; returns the process exit code."""
        with process.limit_blas_threads(process.blas_threads(self.cfg)):
            if self.cfg.get("eval_only"):
                return self._run()           # reads the folder, writes nothing
            with rf.RunLock(self.out):       # one process per run folder (rf.FolderBusy)
                return self._run()

    def _run(self):
        c = self.cfg
        self.setup()
        if c.get("resume") or c.get("eval_only"):
            self.load_state(rf.load_checkpoint(self.ckpt_path))
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
        resumed = self.epoch > 0 or self.batch > 0
        if not resumed:
            if self.initial is None:  # epoch 0 of curves.png: the model before any step
                loss, acc = self.evaluate()
                self.initial = {"test_loss": loss, "test_acc": acc}
            self.save()               # a resumable starting point, before any step
        self.log(f"{c['model']} with {c['norm']} on {c['dataset']} ({len(self.dataset.x_train)} "
                 f"train / {len(self.dataset.x_test)} test images), batch {c['batch_size']}, "
                 f"lr {c['lr']:.4g}, {c['schedule']}, {cli.count(c['epochs'], 'epoch')}, {c['device']} -> {self.out}")
        if resumed:
            self.log(f"resumed from {self.ckpt_path} at {self._where()}")
        if c["batch_size"] == 1 and c["norm"].split("+")[0] == "bn":   # canonical: norm first
            self.log("note: at batch 1, BatchNorm normalizes each image by its own statistics in "
                     "training but by running averages in evaluation; the paper calls BN at "
                     "batch 1 impossible (Table II)")
        with self.stop:
            while self.epoch < c["epochs"]:
                status = self.train_epoch()
                if status == "diverged":
                    e, b, value, lr = self.diverged
                    self.log(f"wa-train: loss became {value} at epoch {e}, batch {b} (lr {lr:.4g}): "
                             f"training diverged and stopped; the last good checkpoint "
                             f"({self._where(*self.saved_at)}) is kept in {self.ckpt_path}. Start a new run "
                             f"with a smaller --lr (this one used {c['lr']:.4g}) and another "
                             f"--out; --resume keeps the run's settings, so it would diverge again.")
                    return 1
                if status == "stopped":
                    self.plot()
                    self.log(f"interrupted: saved {self.ckpt_path} at {self._where()}; continue "
                             f"with:  wa-train --out {self.out} --resume")
                    return 130
                self.finish_epoch()
                if self.stop.requested:
                    self.plot()
                    self.log(f"interrupted after epoch {self.epoch}; continue with:  "
                             f"wa-train --out {self.out} --resume")
                    return 130
        self.plot()
        return 0

    def _where(self, epoch=None, batch=None):
        """Where the run stands (or the position `epoch` finished epochs and `batch` finished
        batches of the next), epochs and batches counted from 1 as in every message."""
        epoch, batch = (self.epoch, self.batch) if epoch is None else (epoch, batch)
        if batch:
            return f"epoch {epoch + 1}, after batch {batch} of {len(self.train_loader)}"
        if epoch:
            return f"the end of epoch {epoch}"
        return "the start, before the first step"
