"""The Optimizer base class: parameter groups, per-parameter state, and saving both.

An optimizer holds `param_groups`, a list of dicts, each with its own "params"
and hyperparameters ("lr", "momentum", ...), so that e.g. biases can use another
weight decay than weights.  `state[p]` holds what the update rule remembers per
parameter (momentum buffers, Adam's moments).  Updates work on the raw arrays
(`p.data`, `p.grad`) in place: no graph is recorded, and the same code runs on
NumPy and CuPy because every array it makes comes from the parameter's own.
Each update is an assignment `p.data -= ...`, which moves p's version counter:
a graph recorded before the step refuses to backward after it (see
minigrad/autograd.py), instead of mixing old and new weights.
"""
import numpy as np

from .. import backend
from ..autograd import Tensor


def _host(v):
    """A host NumPy copy of an array; other values unchanged (for state_dict)."""
    if isinstance(v, np.ndarray) or backend.device_of(v) == "cuda":
        return np.array(backend.as_numpy(v), copy=True)
    return v


def to_python(v):
    """Undo what a trip through an .npz file does to a hyperparameter: a 0-d array
    becomes a Python number/bool/str, a 1-d array a tuple (e.g. Adam's betas)."""
    if isinstance(v, np.ndarray):
        return v.item() if v.ndim == 0 else tuple(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


def _ordered(seq_or_dict):
    """A list from a list, or from a dict with integer-like keys "0", "1", ... (an .npz round trip)."""
    if isinstance(seq_or_dict, dict):
        return [seq_or_dict[k] for k in sorted(seq_or_dict, key=int)]
    return list(seq_or_dict)


class Optimizer:
    """Base class.  Subclasses call `super().__init__(params, defaults)` and write
    `_update(p, grad, state, group)`, the rule for one parameter."""

    _scalar_state = ("step",)  # state entries that are numbers, not arrays

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}          # Parameter -> dict of that parameter's state
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or of dicts, got a single Tensor: "
                            "pass model.parameters() or [tensor]")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a dict {"params": [...], optional hyperparameters}; missing ones take the defaults."""
        group = dict(group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in ps:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
        seen = {id(q) for g in self.param_groups for q in g["params"]}
        if len({id(p) for p in ps}) != len(ps) or any(id(p) in seen for p in ps):
            raise ValueError("some parameters appear more than once in the parameter groups")
        group["params"] = ps
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self):
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {})
                self._follow(p, state)
                self._update(p, p.grad, state, group)

    def _update(self, p, grad, state, group):
        raise NotImplementedError

    def _follow(self, p, state):
        """Keep state arrays on the parameter's device and dtype (after model.to(...))."""
        for k, v in state.items():
            if k in self._scalar_state:
                continue
            if backend.device_of(v) != p.device:
                v = backend.to_device(v, p.device)
            state[k] = v.astype(p.dtype, copy=False)

    # -- saving and loading -----------------------------------------------------
    def state_dict(self):
        """{"state": {index: {name: array or number}}, "param_groups": [{..., "params": [indices]}]}.

        Parameters are named by their position across the groups (as PyTorch
        does), arrays are host NumPy copies: the whole dict can go into an .npz
        through `minigrad.save`.
        """
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = {index[id(p)]: {k: _host(v) for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state saved by `state_dict()`.

        The optimizer must have been built on the same parameters in the same
        order; arrays go to each parameter's device and dtype.
        """
        saved_groups = _ordered(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"the state_dict has {len(saved_groups)} parameter groups, this "
                             f"optimizer {len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(saved_groups, self.param_groups)):
            n_saved = len(np.atleast_1d(np.asarray(saved["params"]))) if len(saved["params"]) else 0
            if n_saved != len(own["params"]):
                raise ValueError(f"parameter group {i} has {n_saved} parameters in the state_dict "
                                 f"but {len(own['params'])} in this optimizer: build the optimizer "
                                 f"on the same model")
        params = [p for g in self.param_groups for p in g["params"]]
        for saved, own in zip(saved_groups, self.param_groups):
            own.update({k: to_python(v) for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, s in state_dict.get("state", {}).items():
            p = params[int(i)]
            xp = backend.get_array_module(p.data)
            self.state[p] = {k: (to_python(v) if k in self._scalar_state
                                 else xp.asarray(backend.as_numpy(v)).astype(p.dtype))
                             for k, v in s.items()}

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {g[k]}" for k in sorted(g) if k != "params"]
        return "\n".join(lines + [")"])
