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

from . import backend, finite_diff
from .autograd import Tensor, no_grad
from .finite_diff import GradcheckError
from .gradcheck_graph import gradcheck_graph

__all__ = ["GradcheckError", "gradcheck"]


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
              The defaults are PyTorch's (Chainer's check_backward uses rtol=1e-4); a
              test of a hand-derived backward can pass a tighter rtol to catch subtler
              slips.
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
        picks = finite_diff.pick_elements(x.size, max_elements, rng)
        up, down = finite_diff.perturb(loss, x.data, picks, eps)
        numeric = (up - down) / (2 * eps)
        analytic_at = backend.as_numpy(analytic.reshape(-1))[picks]
        ratio = finite_diff.compare(analytic_at, numeric, atol, rtol)
        failing = ~(ratio <= 1)
        if not failing.any():
            continue
        if not raise_exception:
            return False
        worst = finite_diff.worst_element(analytic_at, numeric, ratio, failing, picks, x.shape)
        name = f" '{x.name}'" if x.name else ""
        msg = (f"gradcheck failed for input {i}{name} (shape {x.shape}):\n  "
               + finite_diff.describe(worst, atol, rtol))
        if per_op:
            report = gradcheck_graph(fn, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)
            error = GradcheckError(msg + "\n" + str(report))
            error.report = report
            raise error
        raise GradcheckError(msg)
    return True
