"""Float64 gradient checks of every basic op, on both devices."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
}
# Pairs of shapes that broadcast on either side, with and without new leading axes.
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((2, 1, 4), (3, 1)), ((1,), (2, 3))]


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary_broadcast(op, sa, sb, make):
    a, b = make(*sa), make(*sb)
    assert mg.gradcheck(BINARY[op], [a, b])


def test_binary_with_python_scalars_both_sides(make):
    a = make(3, 2)
    assert mg.gradcheck(lambda a: 2.0 * a + 1.0 - a / 3.0 + (5.0 - a) * 0.5 + 1.0 / (a * a + 2.0), [a])


SCALAR_OPS = {
    "t*n": lambda t, n: t * n, "n*t": lambda t, n: n * t, "t+n": lambda t, n: t + n,
    "n-t": lambda t, n: n - t, "t/n": lambda t, n: t / n, "n/t": lambda t, n: n / t,
    "t**n": lambda t, n: t ** n,
}


# bool ** 2 is left out: NumPy has no bool power loop and picks int8 for it, while
# here the number becomes an int64 array before the op (bool powers are not the point).
SCALAR_CASES = [(op, dtype) for op in sorted(SCALAR_OPS)
                for dtype in (np.int64, np.int32, np.uint8, np.bool_, np.float32, np.float64)
                if not (op == "t**n" and dtype is np.bool_)]


@pytest.mark.parametrize("op,dtype", SCALAR_CASES)
def test_python_numbers_follow_numpy_promotion(op, dtype, device):
    """A float tensor keeps its dtype next to a Python number (float32 * 0.5 is float32);
    an integer or bool tensor follows NumPy: int64 * 0.5 is float64 [0.5 1. 1.5], not a
    0.5 truncated to int64 0."""
    a = np.array([1, 2, 3]).astype(dtype)
    t = mg.tensor(a, device=device)
    for number in (0.5, 0.7, 2, 3):
        ours, numpys = SCALAR_OPS[op](t, number), SCALAR_OPS[op](a, number)
        assert ours.dtype == numpys.dtype, (number, ours.dtype, numpys.dtype)
        np.testing.assert_array_equal(ours.numpy(), numpys)
    if dtype in (np.float32, np.float64):
        assert SCALAR_OPS[op](t, 0.5).dtype == dtype


def test_integer_labels_times_a_float(device):
    """Labels from the DataLoader are int64 tensors: scaling them must not floor to 0."""
    from minigrad.data import DataLoader
    _, y = next(iter(DataLoader((np.zeros((4, 2), np.float32), np.array([1, 2, 3, 4])), batch_size=4)))
    np.testing.assert_allclose((y * 0.1).numpy(), [0.1, 0.2, 0.3, 0.4], rtol=1e-15)


def test_pow(make):
    a = make(3, 4)
    assert mg.gradcheck(lambda a: a ** 3, [a])
    pos = mg.tensor(np.abs(a.numpy()) + 0.5, requires_grad=True, device=a.device)
    e = make(3, 4)
    assert mg.gradcheck(lambda p, e: p ** e, [pos, e])
    assert mg.gradcheck(lambda e: 2.0 ** e, [e])


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)),
                                   ((3, 4), (4,)), ((2, 3, 4), (2, 4, 5)), ((4,), (4,))])
def test_matmul(sa, sb, make):
    assert mg.gradcheck(lambda a, b: a @ b, [make(*sa), make(*sb)])


def test_matmul_shape_error_is_clear(make):
    with pytest.raises(ValueError, match="matmul shape mismatch"):
        make(3, 4) @ make(5, 2)


UNARY = {
    "neg": (lambda x: -x, None),
    "exp": (F.exp, None),
    "log": (F.log, "positive"),
    "sqrt": (F.sqrt, "positive"),
    "tanh": (F.tanh, None),
    "sigmoid": (F.sigmoid, None),
    "relu": (F.relu, "away_from_zero"),
    "abs": (F.abs, "away_from_zero"),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, make):
    fn, domain = UNARY[name]
    x = make(4, 5)
    data = x.numpy()
    if domain == "positive":
        data = np.abs(data) + 0.1
    elif domain == "away_from_zero":
        data = np.where(np.abs(data) < 0.05, 0.3, data)   # no kink within eps
    x = mg.tensor(data, requires_grad=True, device=x.device)
    assert mg.gradcheck(fn, [x])
    # Method and function give the same values.
    if name not in ("neg",):
        np.testing.assert_allclose(getattr(x, name)().numpy(), fn(x).numpy())


def test_sigmoid_does_not_overflow():
    y = F.sigmoid(mg.tensor(np.array([-1000.0, 0.0, 1000.0])))
    np.testing.assert_allclose(y.numpy(), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "var"])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), (-1, -3)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(reduce, axis, keepdims, make):
    x = make(3, 4, 5)
    fn = lambda x: getattr(x, reduce)(axis=axis, keepdims=keepdims)  # noqa: E731
    assert mg.gradcheck(fn, [x])
    ref = getattr(np, reduce)(x.numpy(), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(fn(x).numpy(), ref, rtol=1e-12)


def test_var_ddof_matches_numpy(make):
    x = make(6, 3)
    np.testing.assert_allclose(x.var(axis=0, ddof=1).numpy(), np.var(x.numpy(), axis=0, ddof=1))
    assert mg.gradcheck(lambda x: x.var(axis=0, ddof=1), [x])


def test_max_ties_share_gradient(device):
    x = mg.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]]), requires_grad=True, device=device)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(mg.backend.as_numpy(x.grad), [[0, 0.5, 0.5], [1, 0, 0]])


def test_reduction_bad_axis_is_clear(make):
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        make(2, 3).sum(axis=3)


def test_reshape_transpose(make):
    x = make(2, 3, 4)
    assert mg.gradcheck(lambda x: x.reshape(4, 6) * x.reshape(-1)[:6], [x])
    assert mg.gradcheck(lambda x: x.transpose(2, 0, 1).reshape(4, 6) @ x.T.reshape(6, 4), [x])
    assert x.T.shape == (4, 3, 2)
    with pytest.raises(ValueError, match="cannot reshape"):
        x.reshape(5, 5)


def test_non_contiguous_inputs(make):
    base = make(6, 8)
    strided = mg.tensor(base.data[::2, 1::3], requires_grad=True)   # a non-contiguous view
    assert not strided.data.flags.c_contiguous
    assert mg.gradcheck(lambda x: (x.T @ x).tanh().sum(axis=0), [strided])


@pytest.mark.parametrize("key", [(slice(1, 4), slice(None, None, 2)), 2, (Ellipsis, 1),
                                 (slice(None), [0, 2, 2]), ([1, 1, 0],), (np.array([0, 3]), np.array([1, 1]))])
def test_getitem_scatters(key, make):
    x = make(5, 4)
    assert mg.gradcheck(lambda x: x[key] * x[key], [x])


def test_getitem_repeated_index_accumulates(device):
    x = mg.tensor(np.arange(4.0), requires_grad=True, device=device)
    x[[0, 0, 3]].sum().backward()
    np.testing.assert_allclose(mg.backend.as_numpy(x.grad), [2, 0, 0, 1])


def test_concatenate_stack_pad(make):
    a, b = make(2, 3), make(4, 3)
    assert mg.gradcheck(lambda a, b: F.concatenate([a, b, a], axis=0) ** 2, [a, b])
    c = make(2, 3)
    assert mg.gradcheck(lambda a, c: F.stack([a, c, a], axis=1) ** 2, [a, c])
    assert mg.gradcheck(lambda a: F.pad(a, ((1, 2), (0, 3))) ** 2, [a])
    assert F.pad(a, 1).shape == (4, 5)


def test_cast_roundtrip(make):
    x = make(3, 3)
    y = x.astype(np.float32)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float64
