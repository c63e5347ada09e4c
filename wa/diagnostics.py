"""Look inside a network while it trains: per-layer statistics over the steps.

A loss curve says *that* training works; these numbers say *where* it does not.  For every
convolution of the model, on every `every`-th step:

    act_mean, act_std   the layer's output over the batch: with WA and no activation norm this
                        is where eqs. (4) and (9) promise zero mean and a controlled scale
    grad_norm           ||dL/dW|| of the raw weight W
    update_ratio        ||W_after - W_before|| / ||W_before||: how far one optimizer step moves
                        the weights relative to their size (around 1e-3 is the usual healthy
                        range; much smaller learns slowly, much larger thrashes)
    gamma_mean, gamma_std   WA's per-filter gain gamma of eq. (10) (WAConv2d only).  Each ReLU
                        halves the second moment, and WA's n/2 only undoes that on average: in a
                        real net the variance shrinks by about 1 - 1/pi per layer, which gamma
                        (or the next norm) has to absorb; these columns show whether it does.

Usage, around a training step (`wa-train --diagnostics-every N` does this for you):

    diag = TrainingDiagnostics(model, every=10)
    diag.begin(step)                 # arms the forward hooks on recorded steps
    loss = criterion(model(x), y); loss.backward()
    diag.before_update()             # gradient norms and a copy of the weights
    opt.step()
    rows = diag.end()                # one dict per layer on recorded steps, else []
"""
from minigrad import nn
from minigrad.backend import get_array_module

from .nn import WAConv2d

COLUMNS = ("step", "layer", "act_mean", "act_std", "grad_norm", "update_ratio", "gamma_mean",
           "gamma_std")


def _norm(a):
    xp = get_array_module(a)
    return float(xp.sqrt((a.astype(xp.float64) ** 2).sum()))


class TrainingDiagnostics:
    """Per-layer activation, gradient, update and gamma statistics (see the module docstring)."""

    def __init__(self, model, every=10):
        if int(every) < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.every = int(every)
        self.layers = [(name, m) for name, m in model.named_modules()
                       if isinstance(m, nn.Conv2d)]
        if not self.layers:
            raise ValueError("TrainingDiagnostics: the model has no Conv2d layer to watch")
        self._acts, self._before, self._grads = {}, {}, {}
        self.step, self.recording = None, False
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.layers]

    def _hook(self, name):
        def record(module, inputs, out):
            if self.recording:
                a = out.data
                xp = get_array_module(a)
                a64 = a.astype(xp.float64)
                self._acts[name] = (float(a64.mean()), float(a64.std()))
        return record

    def begin(self, step):
        """Start step `step`; the forward pass that follows is recorded every `every` steps."""
        self.step = step
        self.recording = step % self.every == 0
        self._acts.clear()

    def before_update(self):
        """After backward, before the optimizer step: gradient norms, a copy of each weight."""
        if not self.recording:
            return
        for name, m in self.layers:
            self._grads[name] = None if m.weight.grad is None else _norm(m.weight.grad)
            self._before[name] = m.weight.data.copy()

    def end(self):
        """After the optimizer step: the rows of a recorded step (one per layer), else []."""
        if not self.recording:
            return []
        rows = []
        for name, m in self.layers:
            before = self._before.pop(name)
            mean, std = self._acts.get(name, (None, None))
            row = {"step": self.step, "layer": name, "act_mean": mean, "act_std": std,
                   "grad_norm": self._grads.pop(name),
                   "update_ratio": _norm(m.weight.data - before) / max(_norm(before), 1e-30),
                   "gamma_mean": None, "gamma_std": None}     # None: not measured (JSON null)
            if isinstance(m, WAConv2d):
                g = m.gamma.data.astype(get_array_module(m.gamma.data).float64)
                row["gamma_mean"], row["gamma_std"] = float(g.mean()), float(g.std())
            rows.append(row)
        self.recording = False
        return rows

    def remove(self):
        """Take the hooks off the model."""
        for h in self._handles:
            h.remove()
        self._handles = []
