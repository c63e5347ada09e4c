"""linear, dropout, log_softmax, cross_entropy: gradient checks on both devices,
direct formulas, numerical stability, errors, and PyTorch where installed."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import backend
from torch_reference import reference


def _softmax_np(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------
# linear
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(4, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear(x_shape, with_bias, make):
    x, w = make(*x_shape), make(3, 5)
    b = make(3) if with_bias else None
    y = F.linear(x, w, b).numpy()
    expect = x.numpy() @ w.numpy().T + (b.numpy() if with_bias else 0)
    np.testing.assert_allclose(y, expect, rtol=1e-12)
    assert y.shape == x_shape[:-1] + (3,)
    inputs = [x, w] + ([b] if with_bias else [])
    assert mg.gradcheck(lambda *t: F.linear(*t), inputs)


def test_linear_errors(make):
    with pytest.raises(ValueError, match="in_features = 5"):
        F.linear(make(4, 6), make(3, 5))
    with pytest.raises(ValueError, match=r"weight must have shape \(out_features, in_features\)"):
        F.linear(make(4, 5), make(5))
    with pytest.raises(ValueError, match=r"bias has shape \(4,\), expected \(3,\)"):
        F.linear(make(4, 5), make(3, 5), make(4))


# ----------------------------------------------------------------------------
# log_softmax
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape,axis", [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1), ((6,), 0)])
def test_log_softmax(shape, axis, make):
    x = make(*shape, scale=3.0)
    y = F.log_softmax(x, axis).numpy()
    np.testing.assert_allclose(y, np.log(_softmax_np(x.numpy(), axis)), rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda x: F.log_softmax(x, axis), [x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_is_stable_for_huge_logits(dtype, device):
    big = 1e4 if dtype == np.float32 else 1e300 / 4
    x = mg.tensor(np.array([[big, 0.0, -big], [big, big, 0.0]], dtype), requires_grad=True,
                  device=device)
    y = F.log_softmax(x)
    out = y.numpy()
    assert np.all(np.isfinite(out))
    expect = np.array([[0.0, -big, -2 * big], [-np.log(2.0), -np.log(2.0), -big - np.log(2.0)]])
    np.testing.assert_allclose(out, expect.astype(dtype), rtol=1e-6)
    y.backward(mg.tensor(np.ones((2, 3), dtype), device=device))
    # d/dx of sum_j y_j = 1 - n * softmax: (1 - 3 p).
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(backend.as_numpy(x.grad), 1 - 3 * p, atol=1e-6)
    assert y.dtype == dtype


@pytest.mark.parametrize("dtype,low", [(np.float64, -1000.0), (np.float32, -200.0)])
def test_log_softmax_of_rows_far_apart(dtype, low, device):
    """Each row is shifted by its own maximum: a row far below the others (exp of the
    difference underflows: beyond 745 in float64, 104 in float32) stays finite."""
    x = np.array([[0.0, 1.0, 2.0], [low, low - 1, low - 2]], dtype)
    for axis, a in ((-1, x), (0, x.T.copy())):
        t = mg.tensor(a, requires_grad=True, device=device)
        y = F.log_softmax(t, axis)
        expect = np.log(_softmax_np(a.astype(np.float64), axis))
        assert np.all(np.isfinite(y.numpy()))
        np.testing.assert_allclose(y.numpy(), expect, rtol=1e-5)
        y.backward(mg.tensor(np.ones(a.shape, dtype), device=device))
        p = _softmax_np(a.astype(np.float64), axis)
        np.testing.assert_allclose(backend.as_numpy(t.grad), 1 - 3 * p, atol=1e-6)


# ----------------------------------------------------------------------------
# cross_entropy
# ----------------------------------------------------------------------------
def _direct_cross_entropy(logits, target, reduction, ls):
    """-sum_c q_c log p_c with q = (1 - ls) onehot + ls / C, from its definition."""
    x = np.moveaxis(logits, 1, -1) if logits.ndim > 1 else logits[None]
    x = x.reshape(-1, x.shape[-1])
    t = np.asarray(target).reshape(-1)
    C = x.shape[1]
    q = (1 - ls) * np.eye(C)[t] + ls / C
    per = -(q * np.log(_softmax_np(x, 1))).sum(axis=1)
    if reduction == "none":
        return per.reshape(np.shape(target))
    return per.sum() if reduction == "sum" else per.mean()


CE_SHAPES = [((6, 4), (6,)), ((2, 5, 3, 2), (2, 3, 2)), ((5,), ())]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ls", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("shapes", CE_SHAPES, ids=["NC", "NCHW", "C"])
def test_cross_entropy_matches_direct_formula_and_gradcheck(shapes, ls, reduction, make, rng):
    x_shape, t_shape = shapes
    C = x_shape[0] if len(x_shape) == 1 else x_shape[1]
    x = make(*x_shape, scale=2.0)
    target = rng.integers(0, C, size=t_shape)
    loss = F.cross_entropy(x, target, reduction, ls)
    expect = _direct_cross_entropy(x.numpy(), target, reduction, ls)
    np.testing.assert_allclose(loss.numpy(), expect, rtol=1e-12, atol=1e-14)
    assert loss.shape == np.shape(expect)
    assert mg.gradcheck(lambda x: F.cross_entropy(x, target, reduction, ls), [x])


def test_cross_entropy_gradient_is_softmax_minus_smoothed_onehot(make, rng):
    x = make(8, 5)
    target = rng.integers(0, 5, size=8)
    F.cross_entropy(x, mg.Tensor(target), label_smoothing=0.2).backward()
    q = 0.8 * np.eye(5)[target] + 0.2 / 5
    np.testing.assert_allclose(backend.as_numpy(x.grad), (_softmax_np(x.numpy(), 1) - q) / 8,
                               rtol=1e-12, atol=1e-15)


def test_cross_entropy_target_forms(make, device):
    x = make(3, 4)
    t = np.array([0, 3, 1])
    want = F.cross_entropy(x, t).item()
    for form in (t.astype(np.int32), t.astype(np.uint8), mg.Tensor(t), mg.tensor(t, device=device),
                 mg.tensor(t, device=device).data, [0, 3, 1]):
        assert F.cross_entropy(x, form).item() == pytest.approx(want, rel=1e-15)


def test_cross_entropy_is_stable_for_huge_logits(device):
    x = mg.tensor(np.array([[1000.0, 0.0], [0.0, 1000.0]]), requires_grad=True, device=device)
    loss = F.cross_entropy(x, np.array([0, 0]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0.0, 1000.0])
    loss.sum().backward()
    np.testing.assert_allclose(backend.as_numpy(x.grad), [[0.0, 0.0], [-1.0, 1.0]], atol=1e-300)
    x32 = mg.tensor(np.array([[1e38, -1e38, 0.0]], np.float32), device=device)
    l32 = F.cross_entropy(x32, np.array([1]))       # exp(1e38) would overflow float32
    assert l32.dtype == np.float32
    assert l32.item() == pytest.approx(2e38, rel=1e-6)


def test_cross_entropy_of_rows_far_apart(device):
    """Rows whose maxima differ by 1000: each row's shift is its own maximum, the losses
    and gradients are finite."""
    x = np.array([[0.0, 1.0, 2.0], [-1000.0, -1001.0, -1002.0]])
    t = mg.tensor(x, requires_grad=True, device=device)
    loss = F.cross_entropy(t, np.array([2, 0]), reduction="none")
    expect = -np.log(_softmax_np(x, -1))[[0, 1], [2, 0]]
    np.testing.assert_allclose(loss.numpy(), expect, rtol=1e-12)
    loss.sum().backward()
    np.testing.assert_allclose(backend.as_numpy(t.grad), _softmax_np(x, -1) - np.eye(3)[[2, 0]],
                               atol=1e-15)


def test_cross_entropy_errors(make):
    x = make(3, 4)
    with pytest.raises(TypeError, match="integer class indices.*astype"):
        F.cross_entropy(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"target has shape \(3, 1\).*need a target of shape \(3,\)"):
        F.cross_entropy(x, np.zeros((3, 1), int))
    with pytest.raises(ValueError, match=r"class index 4.*4 classes.*\[0, 3\]"):
        F.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"class index -1"):
        F.cross_entropy(x, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="unknown reduction 'avg'.*'mean', 'sum', 'none'"):
        F.cross_entropy(x, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be a number in"):
        F.cross_entropy(x, np.array([0, 1, 2]), label_smoothing=1.5)


# ----------------------------------------------------------------------------
# dropout
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p, device):
    x = mg.tensor(np.ones((400, 500)), requires_grad=True, device=device)
    y = F.dropout(x, p)
    out = y.numpy()
    n = out.size
    zero = np.mean(out == 0)
    # Binomial fraction: five standard deviations.
    assert abs(zero - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-12)   # survivors scaled
    assert abs(out.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)           # mean preserved
    y.backward(mg.tensor(np.full(x.shape, 2.0), device=device))
    np.testing.assert_allclose(backend.as_numpy(x.grad), 2.0 * out)       # same mask


def test_dropout_eval_and_p0_are_identity(make):
    x = make(4, 5)
    for y in (F.dropout(x, 0.5, training=False), F.dropout(x, 0.0)):
        np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert mg.gradcheck(lambda x: F.dropout(x, 0.5, training=False), [x])


def test_dropout_gradcheck_with_a_fixed_mask(make):
    x = make(5, 6)
    xp = mg.get_array_module(x.data)

    def fn(x):
        xp.random.seed(7)           # the same mask in every evaluation
        return F.dropout(x, 0.4)
    assert mg.gradcheck(fn, [x])


def test_dropout_keeps_float32(device):
    x = mg.tensor(np.ones((10, 10), np.float32), requires_grad=True, device=device)
    y = F.dropout(x, 0.3)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", None])
def test_dropout_rejects_bad_p(p, make):
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        F.dropout(make(3), p)


def test_dropout_p1_gives_zeros_as_in_pytorch(make):
    x = make(4, 5)
    y = F.dropout(x, 1.0)
    y.backward(mg.tensor(np.ones((4, 5)), device=x.device))
    assert np.all(y.numpy() == 0) and np.all(backend.as_numpy(x.grad) == 0)


def test_float32_stays_float32(device, rng):
    x = mg.tensor(rng.standard_normal((4, 5)).astype(np.float32), requires_grad=True, device=device)
    w = mg.tensor(rng.standard_normal((3, 5)).astype(np.float32), requires_grad=True, device=device)
    b = mg.tensor(np.zeros(3, np.float32), requires_grad=True, device=device)
    h = F.log_softmax(F.linear(x, w, b))
    loss = F.cross_entropy(h, np.array([0, 1, 2, 0]), label_smoothing=0.1)
    loss.backward()
    assert h.dtype == loss.dtype == np.float32
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


# ----------------------------------------------------------------------------
# PyTorch: live where installed, else its answers stored in tests/golden/ (float64, 1e-10 relative)
# ----------------------------------------------------------------------------
def _compare(name, ours_fn, torch_fn, arrays, rng, constants=None):
    """ours_fn(*tensors) against torch_fn(torch, *tensors): values and the gradient of each input
    for a random upstream gradient (PyTorch's answer from tests/golden/NAME.npz without torch).
    constants: other arrays the two functions read (a target), stored with the inputs."""
    ours = [mg.tensor(a.copy(), requires_grad=True) for a in arrays]
    y = ours_fn(*ours)
    g = rng.standard_normal(y.shape)
    y.backward(g)

    def torch_answer(torch, g, **named):
        theirs = [torch.tensor(named[f"a{i}"], requires_grad=True) for i in range(len(arrays))]
        ty = torch_fn(torch, *theirs)
        ty.backward(torch.tensor(g))
        return {"y": ty} | {f"a{i}.grad": t.grad for i, t in enumerate(theirs)}

    inputs = {"g": g} | {f"a{i}": a for i, a in enumerate(arrays)} | (constants or {})
    theirs = reference(name, inputs, torch_answer)
    np.testing.assert_allclose(y.numpy(), theirs["y"], rtol=1e-10, atol=1e-12)
    for i, o in enumerate(ours):
        np.testing.assert_allclose(o.grad, theirs[f"a{i}.grad"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x_shape", [(4, 5), (2, 3, 5), (5,)])
def test_linear_matches_pytorch(x_shape, rng):
    arrays = [rng.standard_normal(s) for s in (x_shape, (3, 5), (3,))]
    name = "linear/x" + "x".join(map(str, x_shape))
    linear = lambda torch, *a: torch.nn.functional.linear(*a)  # noqa: E731
    _compare(name, F.linear, linear, arrays, rng)
    _compare(name + "-no_bias", F.linear, linear, arrays[:2], rng)


@pytest.mark.parametrize("shape,axis", [((4, 5), -1), ((2, 3, 4), 1), ((7,), 0)])
def test_log_softmax_matches_pytorch(shape, axis, rng):
    _compare(f"log_softmax/x{'x'.join(map(str, shape))}-axis{axis}",
             lambda x: F.log_softmax(x, axis), lambda torch, x: torch.log_softmax(x, axis),
             [rng.standard_normal(shape) * 3], rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ls", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("shapes", CE_SHAPES, ids=["NC", "NCHW", "C"])
def test_cross_entropy_matches_pytorch(shapes, ls, reduction, rng):
    x_shape, t_shape = shapes
    C = x_shape[0] if len(x_shape) == 1 else x_shape[1]
    target = rng.integers(0, C, size=t_shape)
    layout = {1: "C", 2: "NC", 4: "NCHW"}[len(x_shape)]
    _compare(f"cross_entropy/{layout}-ls{ls}-{reduction}",
             lambda x: F.cross_entropy(x, target, reduction, ls),
             lambda torch, x: torch.nn.functional.cross_entropy(
                 x, torch.tensor(target), reduction=reduction, label_smoothing=ls),
             [rng.standard_normal(x_shape) * 2], rng, constants={"target": target})
