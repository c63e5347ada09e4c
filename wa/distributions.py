"""Weight and activation distributions of one channel over the epochs (the paper's Figs. 4-5
and supplementary Figs. 9-12), recorded by `wa-train --record-distributions`.

    wa-train --model plain8 --norm wa --record-distributions --record-layers convs.0,convs.6

At the start (epoch 0) and after every epoch, for each chosen layer (a module name of
`model.named_modules()`; by default the first, a middle and the last conv) and one output
channel c (`--record-channel`, default 0), a histogram of

  weight     the raw weights of filter c (the parameter the optimizer updates);
  effective  the weights the convolution uses, for a re-parameterized conv (WAConv2d: the
             aligned filter of eq. (10); WSConv2d, WNConv2d likewise); absent for a plain conv;
  activation the layer's output channel c over a fixed probe batch (the first test images), in
             evaluation mode and without a graph, so recording never changes the training run
             (BatchNorm uses its running statistics here, not the probe's).

Each histogram has `BINS` bins spanning that epoch's range of the values; the run folder gets
`distributions.npz` with, per layer name L and kind K,

  "L/K/counts"  (E, BINS) int64     "L/K/edges"  (E, BINS + 1) float64
  "L/K/mean", "L/K/std"  (E,)       "epochs"  (E,) the epoch of each row (0 = initialisation)

plus "layers" (the names) and "channel".  The file is written to a temporary name and renamed
(atomic), after every epoch; a resumed run keeps the rows up to its checkpoint's epoch.
`distributions.png` draws one panel per (layer, kind), one curve per epoch, coloured from dark
(start) to light (end).
"""
import os

import numpy as np

import minigrad as mg
from minigrad import backend, nn

from . import plotstyle

__all__ = ["BINS", "KINDS", "default_layers", "Recorder", "load", "plot"]

BINS = 60
KINDS = ("weight", "effective", "activation")


def default_layers(model):
    """Names of the first, a middle and the last Conv2d of `model` (fewer if it has fewer)."""
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the model has no Conv2d layer to record")
    picks = sorted({0, len(convs) // 2, len(convs) - 1})
    return [convs[i] for i in picks]


def _histogram(values, bins=BINS):
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:                      # a constant (e.g. a zero-initialised Fixup filter)
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return counts.astype(np.int64), edges, values.mean(), values.std()


class Recorder:
    """Collects the histograms of `layers` (module names) of `model`, channel `channel`, with
    `probe` (an input batch, a Tensor or array on the model's device) for the activations."""

    def __init__(self, model, layers, channel, probe, bins=BINS):
        modules = dict(model.named_modules())
        unknown = [name for name in layers if name not in modules]
        if unknown:
            convs = [n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
            raise ValueError(f"--record-layers: no module named {', '.join(unknown)} in the model; "
                             f"conv and linear layers are: {', '.join(convs)}")
        for name in layers:
            w = getattr(modules[name], "weight", None)
            if w is None or w.ndim < 2:
                raise ValueError(f"--record-layers: {name} ({type(modules[name]).__name__}) has "
                                 "no weight with an output axis to record")
            if channel >= w.shape[0]:
                raise ValueError(f"--record-channel {channel}: layer {name} has only "
                                 f"{w.shape[0]} output channels")
        self.model, self.layers, self.channel, self.probe, self.bins = (
            model, list(layers), int(channel), probe, bins)
        self.modules = modules
        self.rows = {}                   # key -> list of per-epoch arrays
        self.epochs = []

    def _capture(self):
        """Run the probe through the model in eval mode; {layer name: its output array}."""
        outputs = {}
        handles = [self.modules[name].register_forward_hook(
                       lambda m, inputs, out, name=name: outputs.__setitem__(name, out))
                   for name in self.layers]
        was_training = self.model.training
        try:
            self.model.eval()
            with mg.no_grad():
                self.model(self.probe)
        finally:
            for h in handles:
                h.remove()
            self.model.train(was_training)
        return outputs

    def record(self, epoch):
        """Add the histograms of the model as it is now, labelled `epoch`."""
        c = self.channel
        acts = self._capture()
        values = {}
        for name in self.layers:
            m = self.modules[name]
            values[(name, "weight")] = backend.as_numpy(m.weight.data)[c]
            if hasattr(m, "effective_weight"):
                with mg.no_grad():
                    values[(name, "effective")] = backend.as_numpy(m.effective_weight().data)[c]
            a = acts.get(name)
            if a is not None:
                a = backend.as_numpy(a.data)
                values[(name, "activation")] = a[:, c] if a.ndim >= 2 else a
        for (name, kind), v in values.items():
            counts, edges, mean, std = _histogram(v, self.bins)
            for field, x in (("counts", counts), ("edges", edges), ("mean", mean), ("std", std)):
                self.rows.setdefault(f"{name}/{kind}/{field}", []).append(x)
        self.epochs.append(int(epoch))

    def arrays(self):
        out = {k: np.stack([np.asarray(x) for x in v]) for k, v in self.rows.items()}
        out["epochs"] = np.asarray(self.epochs, dtype=np.int64)
        out["layers"] = np.asarray(self.layers)
        out["channel"] = np.asarray(self.channel)
        return out

    def save(self, path):
        """Write all rows so far to `path` atomically (temporary file, fsync, rename)."""
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **self.arrays())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def restore(self, path, upto_epoch):
        """Take back the rows of `path` with epoch <= upto_epoch (a resumed run)."""
        if not os.path.isfile(path):
            return
        data = load(path)
        if list(data["layers"]) != self.layers or int(data["channel"]) != self.channel:
            return                       # recorded with other settings: start afresh
        keep = data["epochs"] <= upto_epoch
        self.epochs = [int(e) for e in data["epochs"][keep]]
        self.rows = {k: list(v[keep]) for k, v in data.items()
                     if k not in ("epochs", "layers", "channel")}


def load(path):
    """{name: array} of a distributions.npz."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def plot(path, png, title=""):
    """distributions.png from distributions.npz: rows = layers, columns = kinds; returns False
    (and says why) without matplotlib."""
    plt = plotstyle.pyplot(os.path.basename(str(png)))
    if plt is None:
        return False
    data = load(path)
    layers, epochs = [str(x) for x in data["layers"]], data["epochs"]
    kinds = [k for k in KINDS if any(f"{name}/{k}/counts" in data for name in layers)]
    fig, axes = plt.subplots(len(layers), len(kinds), squeeze=False,
                             figsize=(4.2 * len(kinds), 2.9 * len(layers)))
    cmap = plt.get_cmap("viridis")
    for i, name in enumerate(layers):
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            key = f"{name}/{kind}"
            if f"{key}/counts" not in data:
                ax.set_axis_off()
                continue
            counts, edges = data[f"{key}/counts"], data[f"{key}/edges"]
            for e in range(len(epochs)):
                width = np.diff(edges[e])
                dens = counts[e] / max(counts[e].sum(), 1) / width
                ax.stairs(dens, edges[e], color=cmap(e / max(len(epochs) - 1, 1)), linewidth=1,
                          label=f"epoch {epochs[e]}" if e in (0, len(epochs) - 1) else None)
            ax.set_yticks([])
            ax.set_title(f"{name}: {kind}")
            if i == 0 and j == 0:
                ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return True
