"""Learning-rate schedules, as `torch.optim.lr_scheduler`.

Call `scheduler.step()` once per epoch (or per batch for OneCycleLR), after
`optimizer.step()`.  Each scheduler computes the learning rate in closed form
from the step count `last_epoch` and the groups' initial rates `base_lrs`, so its
whole state is a few numbers, and a run resumed from a checkpoint continues on
exactly the same curve.  (PyTorch updates most schedules multiplicatively from
the current lr; the values agree up to rounding.)
"""
import bisect
import math

from .optimizer import Optimizer, to_python


class LRScheduler:
    """Base class.  Subclasses define `get_lr()`: the rates at step `self.last_epoch`."""

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param_groups[{i}] has no 'initial_lr', needed to resume a scheduler "
                               f"at last_epoch={last_epoch}: load the optimizer's state_dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()  # step 0 (or the resumed step): set the groups' first rates

    def get_lr(self):
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self):
        """The rates set by the latest step(), one per parameter group."""
        return list(self._last_lr)

    def state_dict(self):
        """Every attribute except the optimizer: numbers, strings and lists of numbers."""
        return {k: (list(v) if isinstance(v, (list, tuple)) else v)
                for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        for k, v in state_dict.items():
            v = to_python(v)
            setattr(self, k, list(v) if isinstance(v, tuple) else v)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (last_epoch // step_size): decay by gamma every step_size epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones <= last_epoch)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        passed = bisect.bisect_right(self.milestones, self.last_epoch)
        return [base * self.gamma ** passed for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2.

    Half a cosine from base_lr down to eta_min over T_max steps (SGDR without
    restarts); past T_max it climbs back up, as PyTorch's does.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        c = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith and Topin), stepped once per batch, total_steps times.

    Starts at max_lr / div_factor, rises to max_lr over the first pct_start of the
    steps, then anneals to max_lr / (div_factor * final_div_factor); with
    three_phase=True it first comes back down to the start and only then anneals
    to the minimum.  anneal_strategy "cos" or "linear".  Unlike PyTorch's, it does
    not cycle the momentum (PyTorch's cycle_momentum=False).
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4,
                 three_phase=False, last_epoch=-1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR needs total_steps, or both epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"expected a positive integer total_steps, got {total_steps!r}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"pct_start must lie in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps, self.pct_start = total_steps, float(pct_start)
        self.anneal_strategy, self.three_phase = anneal_strategy, bool(three_phase)
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"expected {len(groups)} values for max_lr, got {len(max_lrs)}")
        if last_epoch == -1:  # the group keeps its three anchor rates (so they are checkpointed)
            for group, top in zip(groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        super().__init__(optimizer, last_epoch)

    def _phases(self):
        """(last step of the phase, start key, end key) for each phase (PyTorch's boundaries)."""
        up = self.pct_start * self.total_steps - 1
        if self.three_phase:
            return [(up, "initial_lr", "max_lr"),
                    (2 * self.pct_start * self.total_steps - 2, "max_lr", "initial_lr"),
                    (self.total_steps - 1, "initial_lr", "min_lr")]
        return [(up, "initial_lr", "max_lr"), (self.total_steps - 1, "max_lr", "min_lr")]

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"tried to step {t} times, but total_steps is {self.total_steps}: "
                             f"OneCycleLR is stepped once per batch")
        phases, lrs = self._phases(), []
        for group in self.optimizer.param_groups:
            begin = 0.0
            for i, (end, start_key, end_key) in enumerate(phases):
                if t <= end or i == len(phases) - 1:
                    pct = (t - begin) / (end - begin)
                    lrs.append(self._anneal(group[start_key], group[end_key], pct))
                    break
                begin = end
        return lrs
