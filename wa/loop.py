"""The training loop: what one step, one epoch and one evaluation do.

    for epoch in range(epochs):
        totals = {"loss": 0.0, "correct": 0, "seen": 0}
        train_epoch(model, optimizer, train_loader, totals,
                    step=lambda x, y: train_step(model, optimizer, scheduler, x, y))
        test_loss, test_acc = evaluate(model, test_loader)

This is all of the learning; `wa.trainer.Trainer` wraps it with what a long run needs
(building the model and optimizer from a config, checkpoints, resuming, Ctrl-C) and
`wa-train` (`wa.train`) is its command line.
"""
import math

import minigrad as mg
from minigrad import functional as F


class Diverged(ArithmeticError):
    """The loss became NaN or infinite.  The step that saw it made no update (no backward pass,
    no optimizer step), but its forward pass did run: a BatchNorm's running statistics have
    already seen the batch.  The trainer stops without saving, so the checkpoint keeps the
    state from before it."""

    def __init__(self, loss, lr):
        super().__init__(f"loss {loss} at lr {lr}")
        self.loss, self.lr = loss, lr


def count_correct(logits, y):
    """How many rows of `logits` have their largest value at the label in `y`."""
    return int((logits.data.argmax(axis=1) == y.data).sum())


def train_step(model, optimizer, scheduler, x, y, watch=None):
    """One optimizer step on the batch (x, y).  Returns (mean loss, correct predictions);
    a NaN or infinite loss returns at once, before the backward pass and the update.
    `watch` (a `wa.diagnostics.TrainingDiagnostics`, optional) looks at the gradients and
    weights between the backward pass and the update."""
    logits = model(x)                          # forward
    loss = F.cross_entropy(logits, y)          # mean over the batch
    value = float(loss.item())
    if not math.isfinite(value):
        return value, 0
    optimizer.zero_grad()                      # gradients accumulate: clear the last step's
    loss.backward()                            # d loss / d parameter, into each p.grad
    if watch is not None:
        watch.before_update()                  # gradient norms, the weights before the step
    optimizer.step()                           # update every parameter (SGD, momentum)
    scheduler.step()                           # the learning rate of the next step
    return value, count_correct(logits, y)


def train_epoch(model, optimizer, loader, totals, step, after_step=None):
    """Train on the batches `loader` has left in this epoch (a resumed epoch starts mid-way).

    `step(x, y)` makes one optimizer step and returns (loss, correct), usually `train_step`
    with the model, optimizer and scheduler filled in.  Each batch adds its summed loss,
    correct predictions and images to `totals` ("loss", "correct", "seen"; a resumed epoch
    starts from the totals saved with it); totals["lr"] is the rate of the epoch's first step.
    `after_step()`, when given, runs after every step; returning True stops the epoch there.
    Returns True when the epoch is finished, False when `after_step` stopped it; raises
    `Diverged` on a NaN or infinite loss.
    """
    model.train()                              # dropout on, norms use batch statistics
    for x, y in loader:
        lr = optimizer.param_groups[0]["lr"]
        loss, correct = step(x, y)
        if not math.isfinite(loss):
            raise Diverged(loss, lr)
        totals["loss"] += loss * len(y)
        totals["correct"] += correct
        totals["seen"] += len(y)
        totals.setdefault("lr", lr)
        if after_step is not None and after_step():
            return False
    return True


def evaluate(model, loader):
    """Mean loss and accuracy over `loader`, in eval mode and without building a graph."""
    model.eval()                               # dropout off, norms use running statistics
    loss, correct, n = 0.0, 0, 0
    with mg.no_grad():
        for x, y in loader:
            logits = model(x)
            loss += float(F.cross_entropy(logits, y, reduction="sum").item())
            correct += count_correct(logits, y)
            n += len(y)
    return loss / n, correct / n
