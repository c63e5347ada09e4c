"""A gradient check that says which op is wrong.

`mg.gradcheck` compares the gradient of a whole function with finite differences:
it can tell *that* a backward is wrong, not *where*.  This module checks every op
of the graph on its own -- its backward against central differences of that op
alone, at the inputs it received in the forward pass, in float64, projected on a
random upstream gradient (see gradcheck.py for why random) -- and names the
first op, in forward order, whose backward disagrees, with the line of the
user's code that created it.  The perturbation loop, the pass rule, the failure
message and `GradcheckError` are those of `mg.gradcheck`: both take them from
minigrad/finite_diff.py.  `mg.gradcheck(..., per_op=True)` calls this module;
this module never calls `mg.gradcheck`.

    report = mg.gradcheck_graph(lambda x, w: model_loss(x, w), [x, w])
    print(report)                 # one line per op, then the culprit in detail
    report.failed                 # the first failing OpCheck, or None

or, to keep a normal script as it is:

    with record():                # notes where each op is created
        loss = model(x)
    print(check_graph(loss))

How an op is re-run.  By the Function contract an op keeps its settings in
attributes set by __init__ and overwrites whatever it saves in forward.  While
recording, `record()` puts a wrapper in place of `Function.__call__` that hands
each op to `_note` before its forward runs (the engine itself knows nothing of
this check); `_note` stores a deep copy of the op at that moment (settings only)
and the call site.  Every re-run works on a new deep copy of that pristine copy and on
copies of the inputs.  Deep copy, rather than recording constructor arguments
by wrapping __init__ in an __init_subclass__ hook, because it works for any
subclass whatever its __init__ looks like (or whether it has one), costs
nothing when not recording, and copies the buffers an op holds: in-place
updates during the re-runs (a running statistic kept by the op, or passed
to it as an input) land in the copies, never in the model's buffers.  An op that draws random numbers in
forward (dropout) cannot be re-run: that shows as "not checkable".

Kinks.  At a point where the op is not differentiable (ReLU at 0, a tie in max
pooling) the central difference is the mean of two one-sided slopes, and any
backward picks one subgradient.  An element whose check fails is called a kink
when its two one-sided slopes differ and the analytic value lies between them;
an op whose only failures are kinks is "not checkable here", not wrong.
"""
import contextlib
import copy
import itertools
import linecache
import os
import sys

import numpy as np

from . import backend
from .autograd import Function, Tensor, enable_grad, graph, no_grad
from .finite_diff import (
    GradcheckError,
    compare,
    describe,
    perturb,
    pick_elements,
    worst_element,
)

__all__ = [
    "GraphCheck",
    "OpCheck",
    "check_graph",
    "gradcheck_graph",
    "record",
    "recording",
    "register_library",
]

# Frames in these folders are library code; the call site reported is the first
# frame outside them (the user's line, not `conv2d`'s body).  A package of ops
# built on minigrad adds its own folder with `register_library`.
LIBRARY_DIRS = [os.path.dirname(os.path.abspath(__file__)) + os.sep]


def register_library(path):
    """Treat the folder `path` (or the folder of the file `path`) as library code:
    call sites are reported in the code that calls into it, not inside it."""
    path = os.path.abspath(path)
    folder = (path if os.path.isdir(path) else os.path.dirname(path)) + os.sep
    if folder not in LIBRARY_DIRS:
        LIBRARY_DIRS.append(folder)


# ----------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------
def _call_site():
    caller = sys._getframe(3)  # _call_site <- _note <- _recording_call <- caller
    frame, library = caller, tuple(LIBRARY_DIRS)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(library):
        frame = frame.f_back
    frame = frame or caller    # only library code on the stack: its direct caller
    return frame.f_code.co_filename, frame.f_lineno


def _copy(op):
    """A deep copy of `op`; a shallow one if a setting cannot be copied (it is then shared)."""
    try:
        return copy.deepcopy(op)
    except Exception:
        return copy.copy(op)


def _note(op):
    """Keep the call site and a pristine copy of `op`, just before its forward runs."""
    op.__dict__.pop("_recorded", None)
    pristine = _copy(op)
    op._recorded = (next(_order), _call_site(), pristine)


_order = itertools.count(1)  # creation order of recorded ops
_plain_call = Function.__call__


def _recording_call(op, *inputs):
    """Function.__call__ while recording: note the op, then call it as usual."""
    _note(op)
    return _plain_call(op, *inputs)


@contextlib.contextmanager
def _calls_through(call):
    """Run the block with `call` as Function.__call__, and put the previous one back."""
    previous = Function.__call__
    Function.__call__ = call
    try:
        yield
    finally:
        Function.__call__ = previous


def record():
    """Note, for every op created inside, where it was created and its settings.

    Outside this block ops record nothing of the kind (and cost nothing extra).
    """
    return _calls_through(_recording_call)


def recording():
    """Whether ops are being recorded now (inside `record()`)."""
    return Function.__call__ is _recording_call


# ----------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------
class OpCheck:
    """The verdict on one op: status is "ok", "failed" or "not checkable"."""

    def __init__(self, index, op, site, input_shapes, status, detail=""):
        self.index, self.op, self.site = index, op, site
        self.name = type(op).__name__
        self.input_shapes, self.status, self.detail = input_shapes, status, detail
        self.worst = None  # for "failed": dict(input, index, analytic, numeric, rel_error)

    @property
    def where(self):
        if self.site is None:
            return "(call site not recorded: build the graph inside gradcheck_graph.record())"
        path, line = self.site
        rel = os.path.relpath(path)
        return f"{path if rel.startswith('..') else rel}:{line}"

    def __repr__(self):
        return f"OpCheck({self.index}: {self.name} {self.status} at {self.where})"


class GraphCheck:
    """Per-op verdicts in forward order; true when no op failed."""

    def __init__(self, checks):
        self.checks = checks

    @property
    def failures(self):
        return [c for c in self.checks if c.status == "failed"]

    @property
    def failed(self):
        """The first failing op in forward order, or None."""
        failures = self.failures
        return failures[0] if failures else None

    @property
    def not_checkable(self):
        return [c for c in self.checks if c.status == "not checkable"]

    @property
    def ok(self):
        return self.failed is None

    def __bool__(self):
        return self.ok

    def __str__(self):
        width = max([len(c.name) for c in self.checks] + [2])
        lines = [f"per-op gradient check of {len(self.checks)} ops, in forward order:"]
        for c in self.checks:
            status = "FAILED" if c.status == "failed" else c.status
            lines.append(f"  {c.index:>3}  {c.name:<{width}}  {status:<13}  {c.where}")
        bad = self.failed
        if bad is not None:
            shapes = ", ".join(str(s) for s in bad.input_shapes)
            lines += [f"FAILED: {bad.name}.backward disagrees with central differences of "
                      f"{bad.name}.forward.",
                      f"  created at {bad.where}"]
            if bad.site is not None:
                code = linecache.getline(bad.site[0], bad.site[1]).strip()
                if code:
                    lines.append(f"      {code}")
            lines += [f"  input shapes: {shapes}", f"  {bad.detail}"]
            if len(self.failures) > 1:
                lines.append("  later ops that fail too: " + ", ".join(
                    f"{c.name} ({c.where})" for c in self.failures[1:]))
        else:
            lines.append("no op's backward disagrees with its forward" +
                         (" (but see below)." if self.not_checkable else "."))
        for c in self.not_checkable:
            lines.append(f"not checkable here: {c.name} at {c.where}: {c.detail}")
        return "\n".join(lines)

    __repr__ = __str__


# ----------------------------------------------------------------------------
# Checking one op
# ----------------------------------------------------------------------------
def _float64(a):
    """A float64 copy of a floating array (an own copy of anything else)."""
    xp = backend.get_array_module(a)
    a = xp.asarray(a)
    return a.astype(np.float64) if a.dtype.kind == "f" else a.copy()


def _pristine(op):
    """(call site or None, a copy of `op` holding its settings and none of the graph)."""
    recorded = op.__dict__.get("_recorded")
    if recorded is not None:
        return recorded[1], recorded[2]
    # Made outside record(): a copy of its present state, cut from the graph.  Forward
    # overwrites what an earlier forward saved, so this re-runs just as well.
    pristine = copy.copy(op)
    for graph_link in ("inputs", "xp", "needs_input_grad", "_called"):
        pristine.__dict__.pop(graph_link, None)
    return None, _copy(pristine)


def _judge(analytic, central, left, right, atol, rtol):
    """Masks (wrong, kink) and the error ratio; an element passes with ratio <= 1."""
    bound = atol + rtol * np.abs(central)
    ratio = compare(analytic, central, atol, rtol)
    bad = ~(ratio <= 1)
    # A kink: the one-sided slopes differ, and the analytic value is one of the
    # subgradients between them.  Anything else that fails is a wrong backward.
    kink = (bad & (np.abs(right - left) > bound)
            & (analytic >= np.minimum(left, right) - bound)
            & (analytic <= np.maximum(left, right) + bound))
    return bad & ~kink, kink, ratio


def _check_op(index, op, out, eps, atol, rtol, max_elements, rng):
    site, pristine = _pristine(op)
    needs = op.needs_input_grad
    arrays = [_float64(x.data) for x in op.inputs]
    shapes = [tuple(a.shape) for a in arrays]

    def verdict(status, detail=""):
        return OpCheck(index, op, site, shapes, status, detail)

    def run(grad=False):
        fresh = _copy(pristine)
        ins = [Tensor(a.copy(), requires_grad=grad and n) for a, n in zip(arrays, needs)]
        with (enable_grad() if grad else no_grad()):
            return fresh, fresh(*ins).data

    # 1. Forward once with the graph on, so that backward finds what forward saved.
    try:
        fresh, y = run(grad=True)
    except Exception as e:
        return verdict("not checkable", f"re-running its forward raised {type(e).__name__}: {e}")
    if y.dtype != np.float64:
        return verdict("not checkable", f"it computes in {y.dtype} even on float64 inputs, too "
                                        f"coarse for finite differences")
    before = backend.as_numpy(out.data).astype(np.float64)
    tol = 1e-7 if out.dtype == np.float64 else 1e-3
    scale = max(1.0, float(np.abs(before).max())) if before.size else 1.0
    if y.shape != before.shape or not np.allclose(backend.as_numpy(y), before, rtol=tol,
                                                  atol=tol * scale):
        return verdict("not checkable", "re-running its forward on the same inputs gives another "
                                        "output (a random op such as dropout, or one that depends "
                                        "on state outside its settings and inputs)")
    # 2. Its backward, on a random upstream gradient g.
    xp = backend.get_array_module(y)
    g = xp.asarray(rng.standard_normal(y.shape))
    try:
        with no_grad():
            grads = fresh.backward(g)
    except Exception as e:
        return verdict("failed", f"its backward raised {type(e).__name__}: {e}")
    grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
    grads += (None,) * (len(arrays) - len(grads))

    # 3. Central differences of L = sum(g * op(inputs)), input by input.
    def loss():
        return float((run()[1] * g).sum())

    base = loss()
    worst, kinks = None, []
    for i, (a, need, gx) in enumerate(zip(arrays, needs, grads)):
        if not need or a.dtype.kind != "f":
            continue
        gx = xp.zeros_like(a) if gx is None else gx
        if tuple(gx.shape) != a.shape:
            return verdict("failed", f"its backward returned a gradient of shape {tuple(gx.shape)} "
                                     f"for input {i} of shape {a.shape}")
        picks = pick_elements(a.size, max_elements, rng)
        up, down = perturb(loss, a, picks, eps)
        central, left, right = (up - down) / (2 * eps), (base - down) / eps, (up - base) / eps
        analytic = backend.as_numpy(gx).astype(np.float64).reshape(-1)[picks]
        wrong, kink, ratio = _judge(analytic, central, left, right, atol, rtol)
        kinks += [(i, np.unravel_index(int(picks[k]), a.shape)) for k in np.flatnonzero(kink)]
        if wrong.any():
            w = worst_element(analytic, central, ratio, wrong, picks, a.shape)
            if worst is None or w["ratio"] > worst["ratio"]:
                worst = dict(w, input=i)
    if worst is not None:
        c = verdict("failed", f"input {worst['input']}: " + describe(worst, atol, rtol))
        c.worst = worst
        return c
    if kinks:
        i, at = kinks[0]
        return verdict("not checkable", f"{len(kinks)} element(s) sit at a kink, where the slopes "
                                        f"from left and right differ (e.g. input {i} at "
                                        f"{tuple(int(t) for t in at)}: a ReLU input at 0, a tie in a "
                                        f"max); the other elements agree")
    return verdict("ok")


# ----------------------------------------------------------------------------
# Checking a graph
# ----------------------------------------------------------------------------
def check_graph(output, eps=1e-6, atol=1e-5, rtol=1e-3, max_elements=64, seed=0):
    """Check every op of the graph behind `output` on its own; returns a `GraphCheck`.

    The graph must not have been freed by backward().  Ops made inside `record()`
    report their call site and are re-run from a copy taken before their forward;
    other ops are re-run from a copy of their present state.
    """
    rng = np.random.default_rng(seed)
    _, ops = graph(output)
    if not ops:
        raise ValueError("check_graph: this tensor was made by no op that needs a gradient, so "
                         "there is nothing to check (does any input have requires_grad=True?)")
    # Creation order where recorded (the order the user wrote), else graph order.
    ops.sort(key=lambda pair: pair[0].__dict__.get("_recorded", (0,))[0])
    with _calls_through(_plain_call):   # the re-runs record nothing
        checks = [_check_op(n, f, out, eps, atol, rtol, max_elements, rng)
                  for n, (f, out) in enumerate(ops, start=1)]
    return GraphCheck(checks)


def gradcheck_graph(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, max_elements=64, seed=0,
                    raise_exception=False):
    """Run `fn(*inputs)` once, recording its graph, and check each op on its own.

    Arguments as in `mg.gradcheck`; inputs may be float32 (each op is checked in
    float64 anyway).  `fn` runs once more than usual, so a layer in training mode
    updates its running statistics once.  Returns a `GraphCheck` (true when no op
    failed; print it for the report), or with raise_exception=True raises
    `GradcheckError` with the report when an op failed.
    """
    with record():
        out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck_graph: fn must return a Tensor, got {type(out).__name__}")
    report = check_graph(out, eps=eps, atol=atol, rtol=rtol, max_elements=max_elements, seed=seed)
    if raise_exception and not report.ok:
        err = GradcheckError(str(report))
        err.report = report
        raise err
    return report
