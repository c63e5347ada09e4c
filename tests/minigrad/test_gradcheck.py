"""The gradient checker itself: it passes right backward passes and names wrong ones."""
import numpy as np
import pytest

import minigrad as mg


class WrongSquare(mg.Function):
    """y = x^2 with a deliberately wrong backward (misses the factor 2)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * self.x


class ZeroCentre(mg.Function):
    """y = x - mean(x) with a backward that returns zeros: wrong for almost every upstream.

    Under an all-ones upstream gradient, though, the true input gradient is
    ones - mean(ones) = 0, so this wrong backward would agree with it there.
    """

    def forward(self, x):
        return x - x.mean()

    def backward(self, gy):
        return self.xp.zeros_like(gy)


def test_wrong_backward_fails_with_readable_report(rng):
    x = mg.Tensor(rng.standard_normal((3, 4)), requires_grad=True, name="x")
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(lambda x: WrongSquare()(x), [x])
    msg = str(info.value)
    assert "input 0 'x'" in msg and "worst element" in msg
    assert "analytic" in msg and "numeric" in msg and "rel error" in msg


class Off(mg.Function):
    """y = 3x with a backward off by a relative `rel` and an absolute `add` (in the
    direction of the upstream gradient)."""

    def __init__(self, rel=0.0, add=0.0):
        self.rel, self.add = rel, add

    def forward(self, x):
        return 3 * x

    def backward(self, gy):
        return gy * 3 * (1 + self.rel) + self.add * np.sign(gy)


@pytest.mark.parametrize("atol,rtol,error", [(0.0, 1e-3, "rel"), (1e-4, 0.0, "add")])
def test_the_pass_rule_is_atol_plus_rtol_times_numeric(atol, rtol, error, rng):
    """An element passes when |analytic - numeric| <= atol + rtol |numeric|: a backward
    off by 0.9 of the allowance passes, one off by 1.1 of it fails (so a checker whose
    tolerances were doubled, or halved, would be caught)."""
    x = mg.Tensor(rng.standard_normal(5), requires_grad=True)
    allowed = rtol if error == "rel" else atol

    def check(factor):        # a new Off per call: a Function object is one node of the graph
        off = {error: factor * allowed}
        return mg.gradcheck(lambda x: Off(**off)(x), [x], atol=atol, rtol=rtol,
                            raise_exception=False)
    assert check(0.0) and check(0.9)
    assert not check(1.1)


def test_worst_element_reports_the_right_numbers():
    from minigrad import finite_diff
    a, n = np.array([1.0, 5.0, -2.0]), np.array([3.0, 5.0, -2.5])
    ratio = finite_diff.compare(a, n, 0.0, 1e-3)
    np.testing.assert_allclose(ratio, [2.0 / 3e-3, 0.0, 0.5 / 2.5e-3], rtol=1e-15)
    w = finite_diff.worst_element(a, n, ratio, ~(ratio <= 1), np.array([4, 7, 9]), (2, 5))
    assert (w["index"], w["analytic"], w["numeric"], w["n_bad"], w["n"]) == ((0, 4), 1.0, 3.0, 2, 3)
    assert w["abs_error"] == 2.0 and w["rel_error"] == 2.0 / 3.0
    text = finite_diff.describe(w, 0.0, 1e-3)
    assert "2 of 3 checked elements disagree; worst element (0, 4): analytic 1, numeric 3," in text
    assert "abs error 2, rel error 0.667" in text


def test_the_failure_message_of_gradcheck_has_the_worst_elements_numbers(rng):
    """WrongSquare's backward is half the true gradient: abs error |x|, rel error 0.5."""
    x = mg.Tensor(rng.standard_normal(4), requires_grad=True)
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(lambda x: WrongSquare()(x), [x], seed=0)
    msg = str(info.value)
    analytic, numeric, abs_error, rel_error = (
        float(msg.split(f"{word} ")[1].split(",")[0].split(" ")[0])
        for word in ("analytic", "numeric", "abs error", "rel error"))
    assert abs_error == pytest.approx(abs(analytic - numeric), rel=5e-3)   # printed to 3 digits
    assert abs_error == pytest.approx(abs(analytic), rel=5e-3)
    assert rel_error == pytest.approx(0.5, rel=5e-3)


def test_wrong_backward_returns_false_when_asked(rng):
    x = mg.Tensor(rng.standard_normal(5), requires_grad=True)
    assert mg.gradcheck(lambda x: WrongSquare()(x), [x], raise_exception=False) is False


def test_random_upstream_catches_what_ones_would_miss(rng):
    x = mg.Tensor(rng.standard_normal(6), requires_grad=True)
    # An all-ones upstream gradient cannot tell this wrong backward from the right one...
    ZeroCentre()(x).backward(np.ones(6))
    right = mg.Tensor(x.data, requires_grad=True)
    (right - right.mean()).backward(np.ones(6))
    np.testing.assert_allclose(x.grad, right.grad, atol=1e-12)
    # ...the checker's random upstream gradient can.
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(lambda x: ZeroCentre()(x), [x])
    assert mg.gradcheck(lambda x: x - x.mean(), [x])


def test_needs_float64(rng):
    x = mg.Tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        mg.gradcheck(lambda x: x * 2, [x])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        mg.gradcheck(lambda x: x * 2, [mg.Tensor(np.ones(2))])


def test_large_inputs_checked_on_a_subset(rng):
    x = mg.Tensor(rng.standard_normal((40, 40)), requires_grad=True)
    assert mg.gradcheck(lambda x: (x * x).sum(axis=1), [x], max_elements=50)
    y = mg.Tensor(rng.standard_normal((40, 40)), requires_grad=True)
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(lambda y: WrongSquare()(y), [y], max_elements=50)


def test_non_tensor_arguments_pass_through(rng):
    x = mg.Tensor(rng.standard_normal(4), requires_grad=True)
    assert mg.gradcheck(lambda x, k: x * k, [x, 3.0])
