"""Central differences and how a mismatch is reported: the ground both gradient checks stand on.

`minigrad.gradcheck` (a whole function) and `minigrad.gradcheck_graph` (each op on
its own) ask the same question of a backward pass: does dL/da agree with

    (L(a + eps e_j) - L(a - eps e_j)) / (2 eps)

element by element, where L = sum(g * y) for a random upstream gradient g?  This
module holds the parts they share: which elements to check, the perturbation
loop, the pass/fail rule and the failure message, and the error they raise.
It depends on nothing else in minigrad, so both checks import it and neither
imports the other's internals.
"""
import numpy as np

__all__ = ["GradcheckError", "compare", "describe", "perturb", "pick_elements", "worst_element"]


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree; the message names the worst element.

    Raised by `gradcheck` and `gradcheck_graph`; when a per-op check ran, `.report`
    holds its `GraphCheck`.
    """


def pick_elements(size, max_elements, rng):
    """Flat indices of the elements to check: all of them, or `max_elements` drawn by `rng`."""
    if size <= max_elements:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_elements, replace=False))


def perturb(loss, a, picks, eps):
    """loss() with each picked element of the array `a` moved by +eps and by -eps: (up, down).

    `a` is changed in place and restored after each element, so `loss` must read
    it (an input's `.data`, or the array an op is re-run on).  Elements are indexed
    by position, not through a flat view, because `a` may be non-contiguous.
    """
    up, down = np.empty(len(picks)), np.empty(len(picks))
    for k, j in enumerate(picks):
        at = np.unravel_index(int(j), a.shape)
        old = float(a[at])
        a[at] = old + eps
        up[k] = loss()
        a[at] = old - eps
        down[k] = loss()
        a[at] = old
    return up, down


def compare(analytic, numeric, atol, rtol):
    """The error ratio |analytic - numeric| / (atol + rtol |numeric|) per element.

    An element passes when its ratio is at most 1; a NaN or infinite analytic
    value gets ratio inf, so it always fails.
    """
    bound = atol + rtol * np.abs(numeric)
    return np.nan_to_num(np.abs(analytic - numeric) / bound, nan=np.inf)


def worst_element(analytic, numeric, ratio, failing, picks, shape):
    """A dict describing the failing element with the largest ratio (for `describe`)."""
    k = int(np.argmax(np.where(failing, ratio, -1.0)))
    return dict(index=tuple(int(t) for t in np.unravel_index(int(picks[k]), shape)),
                analytic=float(analytic[k]), numeric=float(numeric[k]),
                abs_error=float(abs(analytic[k] - numeric[k])),
                rel_error=float(abs(analytic[k] - numeric[k]) / max(abs(numeric[k]), 1e-12)),
                ratio=float(ratio[k]), n_bad=int(np.sum(failing)), n=len(picks))


def describe(worst, atol, rtol):
    """'3 of 12 checked elements disagree; worst element (1, 2): analytic ..., numeric ...'."""
    return (f"{worst['n_bad']} of {worst['n']} checked elements disagree; worst element "
            f"{worst['index']}: analytic {worst['analytic']:.10g}, numeric {worst['numeric']:.10g}, "
            f"abs error {worst['abs_error']:.3g}, rel error {worst['rel_error']:.3g} "
            f"(allowed: atol={atol} + rtol={rtol} * |numeric|)")
