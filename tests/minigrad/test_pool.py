"""max_pool2d, avg_pool2d, adaptive_avg_pool2d: against naive loops, finite differences and PyTorch."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import backend
from minigrad.backend import as_numpy
from torch_reference import reference


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_pool(x, k, s=None, p=0, reduce=np.max, fill=-np.inf):
    """One window at a time (the reference).  avg: reduce=np.sum then / (kh*kw), fill=0."""
    (kh, kw), (ph, pw) = _pair(k), _pair(p)
    sh, sw = (kh, kw) if s is None else _pair(s)
    xp_ = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    Ho, Wo = (xp_.shape[2] - kh) // sh + 1, (xp_.shape[3] - kw) // sw + 1
    y = np.empty(x.shape[:2] + (Ho, Wo))
    for ho in range(Ho):
        for wo in range(Wo):
            y[:, :, ho, wo] = reduce(xp_[:, :, ho * sh:ho * sh + kh, wo * sw:wo * sw + kw], axis=(2, 3))
    return y


def naive_adaptive_avg(x, size):
    """PyTorch's bins: [floor(i*H/Ho), ceil((i+1)*H/Ho)), one output cell at a time."""
    (Ho, Wo), (H, W) = _pair(size), x.shape[2:]
    y = np.empty(x.shape[:2] + (Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            r = slice(i * H // Ho, -(-(i + 1) * H // Ho))
            c = slice(j * W // Wo, -(-(j + 1) * W // Wo))
            y[:, :, i, j] = x[:, :, r, c].mean(axis=(2, 3))
    return y


def distinct(device, *shape, spacing=1e-2, seed=0):
    """A float64 input without ties: a shuffled grid of values spaced far beyond gradcheck's eps."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))) * spacing
    return mg.tensor(values.reshape(shape) - values.mean(), requires_grad=True, device=device)


# (kernel, stride, padding): windows that overlap along both axes (stride < kernel), along
# neither, and along one axis only (the last two: a pixel shared by two windows of one
# column, or of one row, must get the sum of their gradients)
POOLS = [(2, None, 0), (3, 2, 1), (3, 1, 1), ((3, 2), (2, 1), (1, 0)), (2, 1, 0), (3, 3, 0),
         ((3, 2), (1, 2), (1, 0)), ((2, 3), (2, 1), (0, 1))]


@pytest.mark.parametrize("k,s,p", POOLS)
def test_max_pool2d_matches_naive_and_gradcheck(k, s, p, device):
    x = distinct(device, 2, 3, 7, 6)
    np.testing.assert_array_equal(F.max_pool2d(x, k, s, p).numpy(), naive_pool(x.numpy(), k, s, p))
    assert mg.gradcheck(lambda x: F.max_pool2d(x, k, s, p), [x])


@pytest.mark.parametrize("k,s,p", POOLS)
def test_avg_pool2d_matches_naive_and_gradcheck(k, s, p, make):
    x = make(2, 3, 7, 6)
    kh, kw = _pair(k)
    ref = naive_pool(x.numpy(), k, s, p, reduce=np.sum, fill=0.0) / (kh * kw)  # padding counts
    np.testing.assert_allclose(F.avg_pool2d(x, k, s, p).numpy(), ref, rtol=1e-12, atol=1e-14)
    assert mg.gradcheck(lambda x: F.avg_pool2d(x, k, s, p), [x])


def test_max_pool2d_ties_go_to_the_first_maximum_in_row_major_order(device):
    x = np.array([[0., 5., 5.],
                  [5., 1., 5.],
                  [2., 5., 0.]])[None, None]
    t = mg.tensor(x, requires_grad=True, device=device)
    F.max_pool2d(t, 2, stride=1).sum().backward()
    # first 5 of each window, reading its rows top-down, left to right:
    # window (0,0) -> pixel (0,1); (0,1) -> (0,1); (1,0) -> (1,0); (1,1) -> (1,2)
    expected = np.array([[0., 2., 0.],
                         [1., 0., 1.],
                         [0., 0., 0.]])
    np.testing.assert_array_equal(as_numpy(t.grad)[0, 0], expected)


def test_max_pool2d_propagates_nan(device):
    x = mg.tensor(np.array([[[[1.0, np.nan], [3.0, 2.0]]]]), requires_grad=True, device=device)
    y = F.max_pool2d(x, 2)
    assert np.isnan(y.numpy()).all()
    y.sum().backward()
    np.testing.assert_array_equal(as_numpy(x.grad)[0, 0], [[0.0, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize("size", [1, (1, 1), 2, (3, 2), (4, None), 5, (7, 6)])
def test_adaptive_avg_pool2d_matches_naive_and_gradcheck(size, make):
    x = make(2, 3, 7, 6)
    target = tuple(n if o is None else o for o, n in zip(_pair(size) if size is not None else (None,) * 2,
                                                         (7, 6)))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, size).numpy(), naive_adaptive_avg(x.numpy(), target),
                               rtol=1e-12, atol=1e-14)
    assert mg.gradcheck(lambda x: F.adaptive_avg_pool2d(x, size), [x])


def test_global_average_is_the_mean(make):
    x = make(3, 4, 5, 6)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1).numpy(),
                               x.numpy().mean(axis=(2, 3), keepdims=True), rtol=1e-12)


def test_pools_keep_float32(make):
    x = make(2, 3, 6, 6, dtype=np.float32)
    for y in (F.max_pool2d(x, 2), F.avg_pool2d(x, 3, 1, 1), F.adaptive_avg_pool2d(x, 1)):
        assert y.dtype == np.float32
        x.grad = None
        y.sum().backward()
        assert x.grad.dtype == np.float32


def test_pool_errors_are_clear(make):
    x = make(2, 3, 6, 6)
    with pytest.raises(ValueError, match="4-D input"):
        F.max_pool2d(make(3, 6, 6), 2)
    with pytest.raises(ValueError, match="padding .* must be at most half the kernel size"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="smaller than the kernel 7x7"):
        F.avg_pool2d(x, 7)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        F.avg_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match="output_size must be positive"):
        F.adaptive_avg_pool2d(x, 0)
    with pytest.raises(TypeError, match="output_size must be an int or a pair"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))


# ----------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------
def _compare_with_torch(name, ours, theirs, x):
    """ours(x) against theirs(torch.nn.functional, x): values and the input gradient for a random
    upstream gradient (PyTorch's answer from tests/golden/NAME.npz without torch)."""
    y = ours(x)
    gy = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(mg.tensor(gy, device=y.device))   # the upstream gradient lives where y does

    def torch_pool(torch, x, gy):
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(torch.nn.functional, tx)
        ty.backward(torch.tensor(gy))
        return {"y": ty, "x.grad": tx.grad}

    answer = reference(name, {"x": x.numpy(), "gy": gy}, torch_pool)
    for a, b in ((y.numpy(), answer["y"]), (as_numpy(x.grad), answer["x.grad"])):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-10 * np.abs(b).max()


def _name(*args):
    """A file name for a pooling geometry: (3, 2), None, 1 -> '3x2-None-1'."""
    return "-".join("x".join(map(str, a)) if isinstance(a, tuple) else str(a) for a in args)


@pytest.mark.parametrize("k,s,p", POOLS)
def test_max_and_avg_pool2d_match_torch(k, s, p, make, device):
    _compare_with_torch(f"pool/max-{_name(k, s, p)}", lambda x: F.max_pool2d(x, k, s, p),
                        lambda tf, x: tf.max_pool2d(x, k, s, p), make(2, 3, 7, 6))
    _compare_with_torch(f"pool/avg-{_name(k, s, p)}", lambda x: F.avg_pool2d(x, k, s, p),
                        lambda tf, x: tf.avg_pool2d(x, k, s, p), make(2, 3, 7, 6))


def test_max_pool2d_ties_match_torch(device):
    x = mg.tensor(np.random.default_rng(0).integers(0, 3, (2, 3, 7, 6)).astype(np.float64),
                  requires_grad=True, device=device)          # many ties
    _compare_with_torch("pool/max-ties", lambda x: F.max_pool2d(x, 3, 1, 1),
                        lambda tf, x: tf.max_pool2d(x, 3, 1, 1), x)


@pytest.mark.parametrize("size", [1, (3, 2), (4, None), 5])
def test_adaptive_avg_pool2d_matches_torch(size, make):
    _compare_with_torch(f"pool/adaptive_avg-{_name(size)}", lambda x: F.adaptive_avg_pool2d(x, size),
                        lambda tf, x: tf.adaptive_avg_pool2d(x, size), make(2, 3, 7, 6))


def test_global_average_of_a_channels_last_input(make, rng):
    """The fast path for output size 1 on channels-last memory (what conv2d returns) gives
    the values and gradients of the general path and passes gradcheck; its gradient
    stays channels-last."""
    x = make(2, 5, 4, 3)
    xp = backend.get_array_module(x.data)
    x_cl = mg.tensor(xp.ascontiguousarray(x.data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
                     requires_grad=True)
    g = mg.tensor(rng.standard_normal((2, 5, 1, 1)), device=x.device)
    ys, grads = [], []
    for t in (x, x_cl):
        y = F.adaptive_avg_pool2d(t, 1)
        y.backward(g)
        ys.append(backend.as_numpy(y.data))
        grads.append(backend.as_numpy(t.grad))
    np.testing.assert_allclose(ys[1], ys[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-14)
    op = F.adaptive_avg_pool2d(x_cl, 1).creator
    assert op.backward(g.data).transpose(0, 2, 3, 1).flags.c_contiguous
    assert mg.gradcheck(lambda t: F.adaptive_avg_pool2d(t, 1), [x_cl])
