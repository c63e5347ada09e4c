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
