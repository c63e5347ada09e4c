"""The run folder of wa-train (--out): its files and how each one is written.

  config.json     every setting, the seed, package and library versions (`Trainer.write_config`);
  metrics.jsonl   one JSON object per finished epoch (epoch, train_loss, train_acc, test_loss,
                  test_acc, lr, seconds, images_per_s), accuracies as fractions;
  checkpoint.npz  model, optimizer, scheduler, loader and RNG states plus the metrics so far,
                  in `minigrad.save`'s format (`minigrad.load` reads it);
  curves.png      loss and accuracy against epoch, epoch 0 being the evaluation before training,
                  and chance (skipped, with a note, where matplotlib is missing);
  distributions.npz, distributions.png   with --record-distributions (`wa.distributions`);
  diagnostics.jsonl   with --diagnostics-every N: per-layer statistics every N steps
                  (`wa.diagnostics`), one JSON object per layer and recorded step;
  run.lock        while a process trains into the folder: its process id (`RunLock`).

Files are written to a temporary name and renamed over the old one, so a kill leaves the old
file or the new one, never half of one (metrics.jsonl also grows by appending a line, which a
resume rewrites from the checkpoint's history).  `load_run(folder)` gives back the trained model
and its config.
"""
import contextlib
import json
import os
import socket

import minigrad as mg

from . import plotstyle

CONFIG, METRICS, CHECKPOINT, CURVES = "config.json", "metrics.jsonl", "checkpoint.npz", "curves.png"
DIAGNOSTICS, LOCK = "diagnostics.jsonl", "run.lock"


class FolderBusy(RuntimeError):
    """Another living process trains into the same run folder."""


class RunLock:
    """`with RunLock(folder):` -- one training process per run folder.

    Two processes writing the same checkpoint and metrics would each overwrite the other's
    files, and the folder would hold a run that neither of them trained.  The lock is a file
    created only if it does not exist yet (O_EXCL, atomic on a local disk) holding the
    owner's process id.  A lock left by a process that no longer runs (killed with SIGKILL,
    or a machine that rebooted) is taken over; a lock from another machine (a shared folder)
    is trusted as long as it is there."""

    def __init__(self, folder):
        self.path = os.path.join(folder, LOCK)
        self.owner = f"{os.getpid()} {socket.gethostname()}"

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def acquire(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(2):          # a second try after removing a dead process's lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None:
                    raise FolderBusy(f"{os.path.dirname(self.path)} is in use by another "
                                     f"training process ({holder}); wait for it to end, or "
                                     f"choose another --out") from None
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(self.owner + "\n")
            return self
        raise FolderBusy(f"could not lock {self.path}: another process keeps creating it")

    def release(self):
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)

    def _holder(self):
        """'pid P on HOST' of a lock whose process may still run; None if it is gone."""
        try:
            with open(self.path) as f:
                pid, host = f.read().split()[:2]
            pid = int(pid)
        except (OSError, ValueError):
            return None               # unreadable or half written: treat as abandoned
        if host != socket.gethostname():
            return f"pid {pid} on {host}"
        try:
            os.kill(pid, 0)           # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return None
        except PermissionError:
            pass                      # exists, but belongs to another user
        return f"pid {pid}"


class CheckpointError(RuntimeError):
    """An unreadable checkpoint."""


def save_checkpoint(path, state):
    """`minigrad.save`: arrays, nested dicts, lists, tuples and plain values, atomically."""
    mg.save(state, path)


def load_checkpoint(path):
    """What `save_checkpoint` wrote (or wa-train's format before it used minigrad.save)."""
    try:
        state = mg.load(path)
        return _read_wa_npz(state) if "__meta__" in state else state
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path} ({type(e).__name__}: {e}); "
                              "it is not one wa-train wrote, or the disk is damaged") from None


def _read_wa_npz(flat):
    """A checkpoint from wa-train before it used minigrad.save: arrays "a0", "a1", ... and a
    JSON "__meta__" with {"__array__": key}, {"__dict__": [[k, v], ...]}, {"__tuple__": [...]}."""
    def unpack(node):
        if isinstance(node, list):
            return [unpack(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "__array__" in node:
            return flat[node["__array__"]]
        if "__tuple__" in node:
            return tuple(unpack(v) for v in node["__tuple__"])
        return {k: unpack(v) for k, v in node["__dict__"]}
    return unpack(json.loads(str(flat["__meta__"])))


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_jsonl(path, records):
    """Rewrite a .jsonl file, one JSON object a line, atomically."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    os.replace(tmp, path)


def write_metrics(out, history):
    """Rewrite metrics.jsonl from the history (after a resume it may hold a line too many
    or too few, depending on when the run died)."""
    write_jsonl(os.path.join(out, METRICS), history)


def append_metrics(out, rec):
    with open(os.path.join(out, METRICS), "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()


def saved_position(out):
    """(finished epochs, finished batches of the next one) of the checkpoint in `out`, or None
    when there is none or it cannot be read (the run reports that when it loads it).  A
    metrics.jsonl that lags the checkpoint (a kill between the two writes) is completed from
    the checkpoint's history on the way."""
    try:
        state = load_checkpoint(os.path.join(out, CHECKPOINT))
    except CheckpointError:
        return None
    path = os.path.join(out, METRICS)
    lines = 0
    if os.path.isfile(path):
        with open(path) as f:
            lines = sum(1 for line in f if line.strip())
    if lines != len(state["history"]):
        write_metrics(out, state["history"])
    return int(state["epoch"]), int(state["batch"])


def load_run(folder, device="cpu"):
    """(model, config) of a wa-train run folder: the model rebuilt from config.json's settings
    with the checkpoint's weights, in eval mode, and config.json as a dict ("settings" holds the
    flags, "data" the data set's size and classes).

        model, config = wa.load_run("runs/first")
        print(config["settings"]["norm"], wa.loop.evaluate(model, test_loader))
    """
    from .trainer import build_model
    config = read_json(os.path.join(folder, CONFIG))
    model = build_model(config["settings"], len(config["data"]["classes"]))
    model.load_state_dict(load_checkpoint(os.path.join(folder, CHECKPOINT))["model"])
    return model.to(device).eval(), config


def plot_curves(path, history, title, log=print, initial=None, num_classes=None):
    """Loss and accuracy against epoch, train dashed and test solid, into `path`.

    `initial`: the test loss and accuracy before training ({"test_loss", "test_acc"}), drawn
    at epoch 0; `num_classes`: draws chance (accuracy 1/K, loss log K) as a dotted line."""
    import math
    plt = plotstyle.pyplot(os.path.basename(path), log)
    if plt is None:
        return
    from matplotlib.ticker import MaxNLocator
    ep = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, style in (("train", "o--"), ("test", "o-")):
        x, loss, acc = ep, [r[f"{key}_loss"] for r in history], [r[f"{key}_acc"] for r in history]
        if key == "test" and initial is not None:     # the evaluation before any step
            x, loss, acc = [0] + x, [initial["test_loss"]] + loss, [initial["test_acc"]] + acc
        ax1.plot(x, loss, style, label=key)
        ax2.plot(x, acc, style, label=key)
    if num_classes:
        ax1.axhline(math.log(num_classes), color="grey", linestyle=":", label="chance")
        ax2.axhline(1 / num_classes, color="grey", linestyle=":", label="chance")
    ax1.set(xlabel="epoch", ylabel="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(-0.3 if initial is not None else 0.7, max(ep) + 0.3)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
