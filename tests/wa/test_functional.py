"""The ops of wa.functional: gradient checks, the hand-derived backward against the same formula
built from Tensor ops, the properties eq. (6) and eq. (9) promise, and NumPy references."""
import itertools

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
import wa.functional as WF
from torch_reference import reference

# Filter shapes (out, in, kh, kw) or (out, in): 1x1, 3x3 and 7x7 kernels, fan-in 1 to 576.
SHAPES = [(4, 1, 1, 1), (3, 3, 1, 1), (2, 1, 3, 3), (2, 3, 7, 7), (2, 64, 3, 3), (3, 5)]
FLAGS = list(itertools.product([True, False], [True, False]))   # (center, scale)


def fan_in(shape):
    return int(np.prod(shape[1:]))


def wa_composed(w, gamma=None, eps=1e-5, alpha=0.5, center=True, scale=True):
    """Eq. (10) spelled with Tensor ops, so that autograd derives its backward."""
    out, n = w.shape[0], fan_in(w.shape)
    rows = w.reshape(out, n)
    u = rows - rows.mean(axis=1, keepdims=True) if center else rows
    if scale:
        u = u / F.sqrt(F.var(rows, axis=1, keepdims=True) * (alpha * n) + eps)
    if gamma is not None:
        u = u * gamma.reshape(out, 1)
    return u.reshape(w.shape)


# ----------------------------------------------------------------------------
# WeightAlign
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("center,scale", FLAGS)
@pytest.mark.parametrize("alpha", [0.5, 2.0])
@pytest.mark.parametrize("with_gamma", [False, True])
def test_weight_align_gradcheck(shape, center, scale, alpha, with_gamma, make):
    w = make(*shape)
    inputs = [w, make(shape[0])] if with_gamma else [w]
    fn = lambda w, g=None: WF.weight_align(w, g, alpha=alpha, center=center, scale=scale)
    assert mg.gradcheck(fn, inputs)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("center,scale", FLAGS)
def test_weight_align_matches_composed_formula(shape, center, scale, make, rng):
    alpha, eps = 0.7, 1e-4
    w, gamma = make(*shape), make(shape[0])
    w2 = mg.tensor(w.data.copy(), requires_grad=True, device=w.device)
    g2 = mg.tensor(gamma.data.copy(), requires_grad=True, device=w.device)
    y = WF.weight_align(w, gamma, eps, alpha, center, scale)
    ref = wa_composed(w2, g2, eps, alpha, center, scale)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    up = mg.tensor(rng.standard_normal(shape), device=w.device)
    y.backward(up)
    ref.backward(up)
    np.testing.assert_allclose(mg.backend.as_numpy(w.grad), mg.backend.as_numpy(w2.grad),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mg.backend.as_numpy(gamma.grad), mg.backend.as_numpy(g2.grad),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda s: "x".join(map(str, s)))
def test_weight_align_gives_zero_mean_and_eq9_variance(shape, device, rng):
    """After WA each filter has mean 0 (eq. 6) and (n/2) Var = 1 (eq. 9), up to eps."""
    n, eps = fan_in(shape), 1e-5
    data = rng.standard_normal(shape) * 3.0 + 1.5          # far from aligned on purpose
    y = WF.weight_align(mg.tensor(data, device=device), eps=eps).numpy().reshape(shape[0], -1)
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-12)
    v = data.reshape(shape[0], -1).var(axis=1)
    exact = (n / 2 * v) / (n / 2 * v + eps)                 # what eps leaves of the 1
    np.testing.assert_allclose(n / 2 * y.var(axis=1), exact, rtol=1e-10)
    np.testing.assert_allclose(n / 2 * y.var(axis=1), 1.0, rtol=1e-5)
    # gamma scales each filter's std: (n/2) Var[w_hat] = gamma^2.
    gamma = np.arange(1, shape[0] + 1, dtype=np.float64) * 0.5
    y = WF.weight_align(mg.tensor(data, device=device), mg.tensor(gamma, device=device)).numpy()
    np.testing.assert_allclose(n / 2 * y.reshape(shape[0], -1).var(axis=1), gamma ** 2, rtol=1e-5)


def test_weight_align_alpha_sets_the_variance(rng):
    data = rng.standard_normal((3, 4, 3, 3))
    for alpha in (0.25, 0.5, 1.0):
        y = WF.weight_align(mg.tensor(data), alpha=alpha, eps=0.0).numpy().reshape(3, -1)
        np.testing.assert_allclose(alpha * 36 * y.var(axis=1), 1.0, rtol=1e-12)


def test_weight_align_ablation_components(rng):
    """center only = gamma (w - mean); scale only = gamma w / sqrt((n/2) Var + eps)."""
    data, gamma = rng.standard_normal((3, 2, 3, 3)) + 0.7, rng.standard_normal(3)
    rows, n, eps = data.reshape(3, -1), 18, 1e-5
    mu, v = rows.mean(axis=1, keepdims=True), rows.var(axis=1, keepdims=True)
    g = gamma[:, None]
    cases = {(True, False): g * (rows - mu),
             (False, True): g * rows / np.sqrt(n / 2 * v + eps),
             (False, False): g * rows,
             (True, True): g * (rows - mu) / np.sqrt(n / 2 * v + eps)}
    for (center, scale), want in cases.items():
        y = WF.weight_align(mg.tensor(data), mg.tensor(gamma), center=center, scale=scale)
        np.testing.assert_allclose(y.numpy().reshape(3, -1), want, rtol=1e-12)


def test_weight_align_fan_in_one_is_finite_and_dead(device):
    """n = 1: Var = 0, eps keeps the root at sqrt(eps); the centred filter is 0, its gradient too."""
    w = mg.tensor(np.array([[[[2.0]]], [[[-3.0]]]]), requires_grad=True, device=device)
    gamma = mg.tensor(np.array([1.5, 2.0]), requires_grad=True, device=device)
    y = WF.weight_align(w, gamma)
    assert np.all(y.numpy() == 0.0)
    y.backward(mg.tensor(np.ones((2, 1, 1, 1)), device=device))
    assert np.all(mg.backend.as_numpy(w.grad) == 0.0)
    assert np.all(mg.backend.as_numpy(gamma.grad) == 0.0)
    # Scaling alone divides by sqrt(eps): large but finite.
    y = WF.weight_align(w.detach(), center=False, eps=1e-4).numpy()
    np.testing.assert_allclose(y.reshape(-1), [200.0, -300.0])


def test_weight_align_zero_gamma_still_has_gamma_gradient():
    """Fixup zero-initialises gamma: the gradient must not divide by it."""
    w = mg.tensor(np.random.default_rng(0).standard_normal((2, 3, 3, 3)), requires_grad=True)
    gamma = mg.tensor(np.zeros(2), requires_grad=True)
    up = np.random.default_rng(1).standard_normal((2, 3, 3, 3))
    WF.weight_align(w, gamma).backward(up)
    assert np.all(np.isfinite(gamma.grad)) and np.all(gamma.grad != 0)
    assert np.all(w.grad == 0)
    assert mg.gradcheck(lambda w, g: WF.weight_align(w, g), [w, gamma])


def test_weight_align_float32_keeps_dtype(rng):
    w = mg.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    g = mg.tensor(np.ones(4, np.float32), requires_grad=True)
    y = WF.weight_align(w, g)
    y.backward(np.ones(y.shape, np.float32))
    assert y.dtype == w.grad.dtype == g.grad.dtype == np.float32


def test_weight_align_bad_input_is_clear():
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\)"):
        WF.weight_align(mg.tensor(np.ones((4, 3))), mg.tensor(np.ones(3)))
    with pytest.raises(ValueError, match="at least one more axis"):
        WF.weight_align(mg.tensor(np.ones(4)))
    with pytest.raises(ValueError, match="alpha must be > 0"):
        WF.weight_align(mg.tensor(np.ones((4, 3))), alpha=0)


# ----------------------------------------------------------------------------
# Weight Standardization
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda s: "x".join(map(str, s)))
def test_weight_standardize_gradcheck(shape, make):
    assert mg.gradcheck(WF.weight_standardize, [make(*shape)])
    assert mg.gradcheck(lambda w: WF.weight_standardize(w, eps=0.3), [make(*shape)])


@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda s: "x".join(map(str, s)))
def test_weight_standardize_matches_numpy_ddof1(shape, device, rng):
    data = rng.standard_normal(shape) * 2 + 1
    rows = data.reshape(shape[0], -1)
    want = (rows - rows.mean(axis=1, keepdims=True)) / (rows.std(axis=1, ddof=1, keepdims=True) + 1e-5)
    got = WF.weight_standardize(mg.tensor(data, device=device)).numpy().reshape(shape[0], -1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_weight_standardize_torch_formula():
    data = np.random.default_rng(3).standard_normal((8, 4, 3, 3))
    up = np.random.default_rng(4).standard_normal(data.shape)

    def authors_code(torch, data, up):
        t = torch.tensor(data, requires_grad=True)
        d = t - t.mean(dim=(1, 2, 3), keepdim=True)
        ref = d / (d.view(8, -1).std(dim=1).view(-1, 1, 1, 1) + 1e-5)   # the authors' code
        ref.backward(torch.tensor(up))
        return {"y": ref, "grad": t.grad}

    theirs = reference("wa/weight_standardize", {"data": data, "up": up}, authors_code)
    w = mg.tensor(data, requires_grad=True)
    y = WF.weight_standardize(w)
    y.backward(up)
    np.testing.assert_allclose(y.numpy(), theirs["y"], rtol=1e-12)
    np.testing.assert_allclose(w.grad, theirs["grad"], rtol=1e-9, atol=1e-12)


def test_weight_standardize_relates_to_weight_align(rng):
    """With eps = 0: WA(w) = sqrt(2 / (n - 1)) * WS(w)  (target variance and estimator)."""
    data = rng.standard_normal((5, 3, 3, 3))
    n = 27
    wa = WF.weight_align(mg.tensor(data), eps=0.0).numpy()
    ws = WF.weight_standardize(mg.tensor(data), eps=0.0).numpy()
    np.testing.assert_allclose(wa, np.sqrt(2 / (n - 1)) * ws, rtol=1e-12)


def test_weight_standardize_edge_cases():
    with pytest.raises(ValueError, match="fan-in 1"):
        WF.weight_standardize(mg.tensor(np.ones((4, 1, 1, 1))))
    w = mg.tensor(np.ones((2, 3, 3, 3)), requires_grad=True)     # constant filters: sigma = 0
    y = WF.weight_standardize(w)
    y.backward(np.random.default_rng(0).standard_normal(y.shape))
    assert np.all(y.numpy() == 0) and np.all(np.isfinite(w.grad))


# ----------------------------------------------------------------------------
# Weight Normalization
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_norm_gradcheck(shape, make):
    assert mg.gradcheck(WF.weight_norm, [make(*shape), make(shape[0])])


def test_weight_norm_values_and_scale_invariance(device, rng):
    data, g = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    v = mg.tensor(data, requires_grad=True, device=device)
    y = WF.weight_norm(v, mg.tensor(g, device=device))
    rows = data.reshape(4, -1)
    want = g[:, None] * rows / np.linalg.norm(rows, axis=1, keepdims=True)
    np.testing.assert_allclose(y.numpy().reshape(4, -1), want, rtol=1e-12)
    y2 = WF.weight_norm(mg.tensor(data * 7.0, device=device), mg.tensor(g, device=device))
    np.testing.assert_allclose(y2.numpy(), y.numpy(), rtol=1e-12)
    # The gradient of v is orthogonal to v, filter by filter (scaling v changes nothing).
    y.backward(mg.tensor(rng.standard_normal(y.shape), device=device))
    gv = mg.backend.as_numpy(v.grad).reshape(4, -1)
    np.testing.assert_allclose((gv * rows).sum(axis=1), 0.0, atol=1e-12)


def test_weight_norm_bad_g_shape():
    with pytest.raises(ValueError, match=r"g must have shape \(4,\)"):
        WF.weight_norm(mg.tensor(np.ones((4, 3))), mg.tensor(np.ones((4, 1))))


# ----------------------------------------------------------------------------
# Batch-Channel Normalization
# ----------------------------------------------------------------------------
def bcn_numpy(x, G, rm, rv, wb, bb, wg, bg, training, r, eps=1e-5):
    """The micro-batch BCN algorithm, step by step in NumPy; returns (out, new rm, new rv)."""
    rm, rv = rm.copy(), rv.copy()
    if training:
        mu = x.mean(axis=(0, 2, 3))
        s2 = ((x - rm[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
        rm = rm + r * (mu - rm)
        rv = rv + r * (s2 - rv)
    c = lambda a: a[None, :, None, None]
    y = c(wb) * (x - c(rm)) / np.sqrt(c(rv) + eps) + c(bb)
    N, C, H, W = x.shape
    yg = y.reshape(N, G, -1)
    yg = (yg - yg.mean(axis=2, keepdims=True)) / np.sqrt(yg.var(axis=2, keepdims=True) + eps)
    return c(wg) * yg.reshape(x.shape) + c(bg), rm, rv


def _bcn_inputs(rng, device, N=3, C=4, H=3, W=2):
    t = lambda a: mg.tensor(a, requires_grad=True, device=device)
    x = rng.standard_normal((N, C, H, W)) * 2 + 1
    params = [rng.standard_normal(C) for _ in range(4)]
    return x, params, [t(x)] + [t(p) for p in params]


@pytest.mark.parametrize("training", [True, False])
def test_batch_channel_norm_matches_numpy_algorithm(training, device, rng):
    x, params, tensors = _bcn_inputs(rng, device)
    rm0, rv0 = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    rm = mg.tensor(rm0.copy(), device=device)
    rv = mg.tensor(rv0.copy(), device=device)
    out = WF.batch_channel_norm(tensors[0], 2, rm, rv, *tensors[1:], training=training, momentum=0.3)
    want, want_rm, want_rv = bcn_numpy(x, 2, rm0, rv0, *params, training, 0.3)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), want_rm, rtol=1e-12)   # updated in place
    np.testing.assert_allclose(rv.numpy(), want_rv, rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 4, 3, 3), (1, 6, 1, 1), (1, 4, 5, 5)])
def test_batch_channel_norm_gradcheck(shape, make, device, rng):
    """The statistics are constants of the graph: check with momentum 0 in training (so the
    estimates do not move with the finite-difference probes) and in evaluation mode."""
    C = shape[1]
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    for training, r in ((True, 0.0), (False, 0.5)):
        def fn(x, wb, bb, wg, bg):
            buf = [mg.tensor(a.copy(), device=device) for a in (rm, rv)]
            return WF.batch_channel_norm(x, 2, *buf, wb, bb, wg, bg, training=training, momentum=r)
        assert mg.gradcheck(fn, [make(*shape), make(C), make(C), make(C), make(C)])
    assert mg.gradcheck(lambda x: WF.batch_channel_norm(
        x, 2, mg.tensor(rm.copy(), device=device), mg.tensor(rv.copy(), device=device),
        training=False), [make(*shape)])


def test_batch_channel_norm_does_not_differentiate_through_the_estimates(device, rng):
    """The training-mode gradient equals the gradient with the updated estimates held fixed."""
    x, params, tensors = _bcn_inputs(rng, device)
    rm = mg.tensor(np.zeros(4), device=device)
    rv = mg.tensor(np.ones(4), device=device)
    up = mg.tensor(rng.standard_normal(x.shape), device=device)
    WF.batch_channel_norm(tensors[0], 2, rm, rv, *tensors[1:], training=True, momentum=0.5).backward(up)
    _, _, fixed = _bcn_inputs(np.random.default_rng(0), device)
    for a, b in zip(fixed, tensors):
        a.data[...] = b.data
    out = WF.batch_channel_norm(fixed[0], 2, rm, rv, *fixed[1:], training=False)
    out.backward(up)
    for a, b in zip(fixed, tensors):
        np.testing.assert_allclose(mg.backend.as_numpy(a.grad), mg.backend.as_numpy(b.grad),
                                   rtol=1e-12)


def test_batch_channel_norm_errors(rng):
    x = mg.tensor(rng.standard_normal((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        WF.batch_channel_norm(x, 2, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="divisible"):
        WF.batch_channel_norm(x, 3, np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="momentum"):
        WF.batch_channel_norm(x, 2, np.zeros(4), np.ones(4), momentum=2.0)
