"""Check a backward pass against central finite differences.

For a function y = f(x_1, ..., x_k) we draw a random upstream gradient g with
the shape of y and compare, for every input x_i that requires grad,

    analytic:  dL/dx_i from backward(g)            where L = sum(g * y)
    numeric:   (L(x_i + eps e_j) - L(x_i - eps e_j)) / (2 eps)   per element j

Why random g and not ones: for a normalization layer, sum(y) does not depend on
x at all (the output of BatchNorm sums to the constant beta), so with g = 1 the
true gradient is 0 and a backward that returns zeros would pass.  A random g
projects the Jacobian on a direction that sees every mistake.

Everything runs in float64: in float32, eps = 1e-6 would lose the difference
in rounding noise.
"""
import numpy as np

from . import backend
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree; the message names the worst element."""


def _evaluate(fn, inputs):
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, max_elements=256, seed=0,
              raise_exception=True, per_op=False):
    """Compare the backward of `fn` with central differences, input by input.

    fn:       a function of the `inputs` returning one Tensor.
    inputs:   a sequence; Tensors with requires_grad=True are checked, anything
              else is passed through unchanged.  Checked tensors must be float64.
    eps:      the finite-difference step.
    atol, rtol: an element passes when |analytic - numeric| <= atol + rtol * |numeric|.
    max_elements: inputs with more elements are checked on this many random ones.
    seed:     seeds the upstream gradient and the element subset (reproducible reports).

    Returns True, or raises `GradcheckError` with the worst element of the first
    failing input: its index, the analytic and numeric values, the relative error.
    With raise_exception=False, returns False instead of raising.
    per_op:   on failure, also check every op of the graph on its own and add to
              the message which op is wrong and where it was created (see
              minigrad/gradcheck_graph.py; the error's `.report` holds the details).
    """
    inputs = list(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need "
                            f"float64 inputs (make them with dtype=np.float64 or .astype('float64'))")
    rng = np.random.default_rng(seed)

    out = _evaluate(fn, inputs)
    xp = backend.get_array_module(out.data)
    g = xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)
    for i in checked:
        inputs[i].grad = None
    out.backward(g)

    def loss():
        with no_grad():
            return float((_evaluate(fn, inputs).data * g).sum())

    for i in checked:
        x = inputs[i]
        analytic = x.grad if x.grad is not None else xp.zeros_like(x.data)
        if x.size > max_elements:
            picks = np.sort(rng.choice(x.size, size=max_elements, replace=False))
        else:
            picks = np.arange(x.size)
        numeric = np.empty(len(picks))
        for k, j in enumerate(picks):
            # Index by position, not through a flat view: x.data may be non-contiguous.
            at = np.unravel_index(int(j), x.shape)
            old = float(x.data[at])
            x.data[at] = old + eps
            up = loss()
            x.data[at] = old - eps
            down = loss()
            x.data[at] = old
            numeric[k] = (up - down) / (2 * eps)
        analytic_at = backend.as_numpy(analytic.reshape(-1))[picks]
        err = np.abs(analytic_at - numeric)
        bound = atol + rtol * np.abs(numeric)
        if np.all(err <= bound) and np.all(np.isfinite(analytic_at)):
            continue
        bad = np.where(np.isfinite(analytic_at), err / bound, np.inf)
        w = int(np.argmax(bad))
        index = np.unravel_index(int(picks[w]), x.shape)
        rel = err[w] / max(abs(numeric[w]), 1e-12)
        n_bad = int(np.sum(~(err <= bound)))
        name = f" '{x.name}'" if x.name else ""
        msg = (f"gradcheck failed for input {i}{name} (shape {x.shape}): {n_bad} of {len(picks)} "
               f"checked elements disagree.\n"
               f"  worst element {tuple(int(t) for t in index)}: analytic {analytic_at[w]:.10g}, "
               f"numeric {numeric[w]:.10g}, abs error {err[w]:.3g}, rel error {rel:.3g} "
               f"(allowed: atol={atol} + rtol={rtol} * |numeric|)")
        if not raise_exception:
            return False
        if per_op:
            from .gradcheck_graph import gradcheck_graph  # late import: it imports this module
            report = gradcheck_graph(fn, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)
            error = GradcheckError(msg + "\n" + str(report))
            error.report = report
            raise error
        raise GradcheckError(msg)
    return True
