"""BatchNorm, GroupNorm, LayerNorm, InstanceNorm: the hand-derived backward of the
shared `Normalize` op against (a) the same norm composed from Tensor ops, whose
gradient comes from the engine, and (b) finite differences; running statistics;
errors; and, where PyTorch is installed, PyTorch itself."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import backend
from torch_reference import reference

EPS = 1e-5


# ----------------------------------------------------------------------------
# Reference norms composed from Tensor ops (mean, var, sqrt, ...): no hand derivative
# ----------------------------------------------------------------------------
def composed_standardize(x, axes):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)           # biased, ddof=0
    return (x - mean) / (var + EPS).sqrt()


def composed_affine(y, weight, bias, shape):
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def composed_batch_norm(x, weight=None, bias=None):
    y = composed_standardize(x, (0,) + tuple(range(2, x.ndim)))
    return composed_affine(y, weight, bias, channel_shape(x))


def composed_instance_norm(x, weight=None, bias=None):
    y = composed_standardize(x, tuple(range(2, x.ndim)))
    return composed_affine(y, weight, bias, channel_shape(x))


def composed_group_norm(x, G, weight=None, bias=None):
    y = composed_standardize(x.reshape(x.shape[0], G, -1), (2,)).reshape(x.shape)
    return composed_affine(y, weight, bias, channel_shape(x))


def composed_layer_norm(x, normalized_shape, weight=None, bias=None):
    k = len(normalized_shape)
    y = composed_standardize(x, tuple(range(x.ndim - k, x.ndim)))
    return composed_affine(y, weight, bias, normalized_shape)


# ----------------------------------------------------------------------------
# Cases: (name, x shape, parameter shape, hand-derived fn, composed fn)
# ----------------------------------------------------------------------------
def _bn(x, w=None, b=None):
    return F.batch_norm(x, None, None, w, b, training=True)


def _in(x, w=None, b=None):
    return F.instance_norm(x, weight=w, bias=b)


def _gn(G):
    return (lambda x, w=None, b=None: F.group_norm(x, G, w, b),
            lambda x, w=None, b=None: composed_group_norm(x, G, w, b))


def _ln(ns):
    return (lambda x, w=None, b=None: F.layer_norm(x, ns, w, b),
            lambda x, w=None, b=None: composed_layer_norm(x, ns, w, b))


CASES = {
    "bn-NC": ((6, 4), (4,), _bn, composed_batch_norm),
    "bn-NCL": ((3, 4, 5), (4,), _bn, composed_batch_norm),
    "bn-NCHW": ((3, 4, 3, 3), (4,), _bn, composed_batch_norm),
    "bn-NCHW-odd": ((2, 3, 5, 3), (3,), _bn, composed_batch_norm),
    "in-NCL": ((2, 3, 6), (3,), _in, composed_instance_norm),
    "in-NCHW": ((2, 3, 4, 3), (3,), _in, composed_instance_norm),
    "gn-G1": ((2, 6, 3, 3), (6,)) + _gn(1),
    "gn-G2": ((2, 6, 3, 3), (6,)) + _gn(2),
    "gn-G3": ((2, 6, 3, 3), (6,)) + _gn(3),
    "gn-G6": ((2, 6, 3, 3), (6,)) + _gn(6),
    "gn-NCL-G2": ((3, 4, 5), (4,)) + _gn(2),
    "gn-NC-G2": ((3, 8), (8,)) + _gn(2),
    "ln-last": ((4, 6), (6,)) + _ln((6,)),
    "ln-CHW": ((2, 3, 4, 4), (3, 4, 4)) + _ln((3, 4, 4)),
    "ln-HW": ((2, 3, 4, 4), (4, 4)) + _ln((4, 4)),
    "ln-3d": ((2, 3, 5), (5,)) + _ln((5,)),
}
AFFINE = ["both", "weight", "none"]


def _params(make, pshape, affine):
    w = make(*pshape) if affine in ("both", "weight") else None
    b = make(*pshape) if affine == "both" else None
    return w, b


def _value_and_grads(fn, inputs, g):
    for t in inputs:
        t.grad = None
    y = fn(*inputs)
    y.backward(g)
    return y.numpy(), [backend.as_numpy(t.grad) for t in inputs]


@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("case", sorted(CASES))
def test_hand_derived_matches_composed_and_finite_differences(case, affine, make, rng):
    shape, pshape, hand, composed = CASES[case]
    x = make(*shape)
    w, b = _params(make, pshape, affine)
    inputs = [t for t in (x, w, b) if t is not None]
    g = mg.tensor(rng.standard_normal(shape), device=x.device)
    y1, grads1 = _value_and_grads(hand, inputs, g)
    y2, grads2 = _value_and_grads(composed, inputs, g)
    np.testing.assert_allclose(y1, y2, rtol=1e-10, atol=1e-12)
    for g1, g2 in zip(grads1, grads2):
        np.testing.assert_allclose(g1, g2, rtol=1e-8, atol=1e-10)
    assert mg.gradcheck(hand, inputs)
    assert mg.gradcheck(composed, inputs)


@pytest.mark.parametrize("shape", [(2, 6, 3, 3), (3, 4, 5)])
def test_group_norm_is_layer_norm_and_instance_norm_at_the_extremes(shape, make, rng):
    x = make(*shape)
    g = mg.tensor(rng.standard_normal(shape), device=x.device)
    C = shape[1]
    gn1, grad_gn1 = _value_and_grads(lambda x: F.group_norm(x, 1), [x], g)
    ln, grad_ln = _value_and_grads(lambda x: F.layer_norm(x, shape[1:]), [x], g)
    np.testing.assert_allclose(gn1, ln, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_gn1[0], grad_ln[0], rtol=1e-10, atol=1e-12)
    gnc, grad_gnc = _value_and_grads(lambda x: F.group_norm(x, C), [x], g)
    inn, grad_in = _value_and_grads(lambda x: F.instance_norm(x), [x], g)
    np.testing.assert_allclose(gnc, inn, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_gnc[0], grad_in[0], rtol=1e-10, atol=1e-12)


def test_output_is_standardized(make):
    y = F.group_norm(make(4, 6, 5, 5, scale=3.0), 3).numpy().reshape(4, 3, -1)
    np.testing.assert_allclose(y.mean(axis=2), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=2), 1, atol=1e-5)   # var / (var + eps) with var ~ 9


# ----------------------------------------------------------------------------
# Running statistics and evaluation mode
# ----------------------------------------------------------------------------
def _buffers(rng, C, device, as_tensor):
    rm = mg.tensor(rng.standard_normal(C), device=device)
    rv = mg.tensor(rng.uniform(0.5, 2.0, C), device=device)
    return (rm, rv) if as_tensor else (rm.data, rv.data)


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("shape,momentum", [((8, 3), 0.1), ((4, 3, 5, 5), 0.3), ((3, 2, 7), 1.0)])
def test_batch_norm_updates_running_stats_in_place_with_unbiased_variance(
        shape, momentum, as_tensor, make, rng, device):
    x = make(*shape)
    rm, rv = _buffers(rng, shape[1], device, as_tensor)
    rm_array, rv_array = (rm.data, rv.data) if as_tensor else (rm, rv)
    rm0, rv0 = backend.as_numpy(rm_array).copy(), backend.as_numpy(rv_array).copy()
    F.batch_norm(x, rm, rv, training=True, momentum=momentum)

    xs = np.moveaxis(x.numpy(), 1, 0).reshape(shape[1], -1)   # (C, everything else)
    expect_mean = (1 - momentum) * rm0 + momentum * xs.mean(axis=1)
    expect_var = (1 - momentum) * rv0 + momentum * xs.var(axis=1, ddof=1)
    # Updated in place: the caller's very arrays hold the new values.
    rm_after = rm.data if as_tensor else rm
    assert rm_after is rm_array
    np.testing.assert_allclose(backend.as_numpy(rm_array), expect_mean, rtol=1e-12)
    np.testing.assert_allclose(backend.as_numpy(rv_array), expect_var, rtol=1e-12)


def test_batch_norm_training_normalizes_with_the_biased_variance(make, rng, device):
    x = make(5, 3)
    rm, rv = _buffers(rng, 3, device, False)
    y = F.batch_norm(x, rm, rv, training=True).numpy()
    xn = x.numpy()
    expect = (xn - xn.mean(0)) / np.sqrt(xn.var(0) + EPS)
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 4), (1, 3), (1, 3, 1, 1)])
def test_batch_norm_eval_uses_running_stats_and_leaves_them(shape, make, rng, device):
    x, w, b = make(*shape), make(shape[1]), make(shape[1])
    rm, rv = _buffers(rng, shape[1], device, False)
    rm0, rv0 = backend.as_numpy(rm).copy(), backend.as_numpy(rv).copy()
    y = F.batch_norm(x, rm, rv, w, b, training=False).numpy()
    cs = channel_shape(x)
    expect = ((x.numpy() - rm0.reshape(cs)) / np.sqrt(rv0.reshape(cs) + EPS)
              * w.numpy().reshape(cs) + b.numpy().reshape(cs))
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(backend.as_numpy(rm), rm0)
    np.testing.assert_array_equal(backend.as_numpy(rv), rv0)

    # Fixed statistics: the gradient is the plain affine one; check against the
    # composed formula and finite differences.
    def composed(x, w, b):
        rmt, rvt = mg.Tensor(rm).reshape(cs), mg.Tensor(rv).reshape(cs)
        return (x - rmt) / (rvt + EPS).sqrt() * w.reshape(cs) + b.reshape(cs)

    g = mg.tensor(rng.standard_normal(shape), device=device)
    hand = lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False)  # noqa: E731
    _, grads1 = _value_and_grads(hand, [x, w, b], g)
    _, grads2 = _value_and_grads(composed, [x, w, b], g)
    for g1, g2 in zip(grads1, grads2):
        np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)
    assert mg.gradcheck(hand, [x, w, b])


def test_instance_norm_running_stats(make, rng, device):
    x = make(3, 2, 4, 5)
    rm, rv = _buffers(rng, 2, device, True)
    rm0, rv0 = rm.numpy(), rv.numpy()
    F.instance_norm(x, rm, rv, momentum=0.2)
    xs = x.numpy().reshape(3, 2, -1)
    # The batch average of each instance's mean and unbiased variance.
    np.testing.assert_allclose(rm.numpy(), 0.8 * rm0 + 0.2 * xs.mean(2).mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.8 * rv0 + 0.2 * xs.var(2, ddof=1).mean(0), rtol=1e-12)

    # use_input_stats=False normalizes with the buffers instead.
    y = F.instance_norm(x, rm, rv, use_input_stats=False).numpy()
    expect = (x.numpy() - rm.numpy()[:, None, None]) / np.sqrt(rv.numpy()[:, None, None] + EPS)
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda x: F.instance_norm(x, rm, rv, use_input_stats=False), [x])


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1, 1), (1, 3, 1)])
def test_batch_norm_one_value_per_channel_is_an_error_in_training(shape, make):
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"
                                         r".*larger batch.*group_norm, layer_norm, or WeightAlign"):
        F.batch_norm(make(*shape), None, None, training=True)


def test_clear_errors(make, device, rng):
    x = make(2, 6, 3, 3)
    with pytest.raises(ValueError, match="running_mean and running_var must be given"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"divisible by num_groups \(4\)"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match="trailing shape of the input"):
        F.layer_norm(x, (6, 3))
    with pytest.raises(ValueError, match=r"weight has shape \(5,\), expected \(6,\)"):
        F.batch_norm(x, None, None, make(5), training=True)
    with pytest.raises(ValueError, match="should contain 6 elements"):
        rm, rv = _buffers(rng, 5, device, False)
        F.batch_norm(x, rm, rv, training=True)
    with pytest.raises(ValueError, match="Expected more than 1 spatial element"):
        F.instance_norm(make(2, 3, 1, 1))
    with pytest.raises(ValueError, match="momentum"):
        F.batch_norm(x, None, None, training=True, momentum=2.0)
    with pytest.raises(TypeError, match="array or a Tensor"):
        F.batch_norm(x, [0.0] * 6, [1.0] * 6, training=True)


# ----------------------------------------------------------------------------
# float32 stays float32 (speed), buffers included
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bn", "gn", "ln", "in"])
def test_float32_stays_float32(name, make, rng, device):
    x = make(4, 6, 3, 3, dtype=np.float32)
    w, b = make(6, dtype=np.float32), make(6, dtype=np.float32)
    rm = mg.tensor(np.zeros(6, np.float32), device=device).data
    rv = mg.tensor(np.ones(6, np.float32), device=device).data
    if name == "ln":
        w, b = make(6, 3, 3, dtype=np.float32), make(6, 3, 3, dtype=np.float32)
    y = {"bn": lambda: F.batch_norm(x, rm, rv, w, b, training=True),
         "gn": lambda: F.group_norm(x, 3, w, b),
         "ln": lambda: F.layer_norm(x, (6, 3, 3), w, b),
         "in": lambda: F.instance_norm(x, rm, rv, w, b)}[name]()
    y.backward(mg.tensor(rng.standard_normal(y.shape).astype(np.float32), device=device))
    assert y.dtype == np.float32
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    assert rm.dtype == rv.dtype == np.float32


# ----------------------------------------------------------------------------
# PyTorch: live where installed, else its answers stored in tests/golden/ (float64, 1e-10 relative)
# ----------------------------------------------------------------------------
def _torch_cases():
    return {
        "bn-NC": ((6, 4), (4,), "bn"), "bn-NCL": ((3, 4, 5), (4,), "bn"),
        "bn-NCHW": ((3, 4, 5, 5), (4,), "bn"),
        "in-NCL": ((2, 3, 6), (3,), "in"), "in-NCHW": ((2, 3, 4, 5), (3,), "in"),
        "gn-1": ((2, 6, 3, 3), (6,), ("gn", 1)), "gn-2": ((2, 6, 3, 3), (6,), ("gn", 2)),
        "gn-3": ((2, 6, 3, 3), (6,), ("gn", 3)), "gn-6": ((2, 6, 3, 3), (6,), ("gn", 6)),
        "gn-NCL": ((3, 4, 7), (4,), ("gn", 2)),
        "ln-last": ((4, 6), (6,), "ln"), "ln-CHW": ((2, 3, 4, 4), (3, 4, 4), "ln"),
        "ln-HW": ((2, 3, 4, 4), (4, 4), "ln"),
    }


TORCH_RUNS = [(case, training) for case, (_, _, kind) in sorted(_torch_cases().items())
              for training in ((True, False) if kind in ("bn", "in") else (True,))]


@pytest.mark.parametrize("case,training", TORCH_RUNS)
def test_matches_pytorch(case, training, rng):
    shape, pshape, kind = _torch_cases()[case]
    C = shape[1]
    x0, w0, b0 = (rng.standard_normal(s) for s in (shape, pshape, pshape))
    g0 = rng.standard_normal(shape)
    rm0, rv0 = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    ours = [mg.tensor(a.copy(), requires_grad=True) for a in (x0, w0, b0)]
    rm, rv = rm0.copy(), rv0.copy()
    if kind == "bn":
        y = F.batch_norm(*ours[:1], rm, rv, *ours[1:], training=training, momentum=0.2)
    elif kind == "in":
        y = F.instance_norm(ours[0], rm, rv, *ours[1:], use_input_stats=training, momentum=0.2)
    elif kind == "ln":
        y = F.layer_norm(ours[0], pshape, *ours[1:])
    else:
        y = F.group_norm(ours[0], kind[1], *ours[1:])
    y.backward(g0)

    def torch_norm(torch, x, w, b, g, running_mean, running_var):
        tF = torch.nn.functional
        theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        trm, trv = torch.tensor(running_mean), torch.tensor(running_var)
        if kind == "bn":
            ty = tF.batch_norm(theirs[0], trm, trv, *theirs[1:], training=training, momentum=0.2)
        elif kind == "in":
            ty = tF.instance_norm(theirs[0], trm, trv, *theirs[1:], use_input_stats=training,
                                  momentum=0.2)
        elif kind == "ln":
            ty = tF.layer_norm(theirs[0], pshape, *theirs[1:])
        else:
            ty = tF.group_norm(theirs[0], kind[1], *theirs[1:])
        ty.backward(torch.tensor(g))
        return {"y": ty, "x.grad": theirs[0].grad, "w.grad": theirs[1].grad,
                "b.grad": theirs[2].grad, "running_mean": trm, "running_var": trv}

    theirs = reference(f"norm/{case}-{'train' if training else 'eval'}",
                       dict(x=x0, w=w0, b=b0, g=g0, running_mean=rm0, running_var=rv0), torch_norm)

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)

    close(y.numpy(), theirs["y"])
    for o, k in zip(ours, ("x", "w", "b")):
        close(o.grad, theirs[f"{k}.grad"])
    close(rm, theirs["running_mean"])
    close(rv, theirs["running_var"])


# ----------------------------------------------------------------------------
# The channels-last fast path (ChannelNormalize) against the general Normalize
# ----------------------------------------------------------------------------
def _bn_eval(x, w=None, b=None):
    C = x.shape[1]
    rm = np.linspace(-0.5, 0.5, C)
    rv = np.linspace(0.5, 2.0, C)
    if x.device == "cuda":
        rm, rv = (mg.tensor(a).to("cuda").data for a in (rm, rv))
    return F.batch_norm(x, rm.astype(x.dtype), rv.astype(x.dtype), w, b, training=False)


FAST_CASES = {
    "bn": ((3, 4, 5, 3), _bn),
    "bn-NC": ((6, 4), _bn),
    "bn-eval": ((3, 4, 5, 3), _bn_eval),
    "in": ((2, 3, 4, 3), _in),
    "gn-G1": ((2, 6, 3, 3), _gn(1)[0]),
    "gn-G3": ((2, 6, 3, 3), _gn(3)[0]),
    "gn-NCL": ((3, 4, 5), _gn(2)[0]),
}


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("case", sorted(FAST_CASES))
def test_fast_path_matches_general_normalize(case, affine, channels_last, make, rng,
                                             monkeypatch):
    """batch_norm, group_norm and instance_norm run ChannelNormalize; with FAST off they run
    the general Normalize.  Both must agree on values and all gradients, for NCHW inputs
    and for channels-last ones (what conv2d returns), and the fast path passes gradcheck
    on a random upstream gradient."""
    from minigrad.ops import norm
    shape, fn = FAST_CASES[case]
    x = make(*shape)
    if channels_last and x.ndim > 2:
        xp = backend.get_array_module(x.data)
        perm = (0,) + tuple(range(2, x.ndim)) + (1,)
        inv = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
        x.data = xp.ascontiguousarray(x.data.transpose(perm)).transpose(inv)
    w, b = _params(make, (shape[1],), affine)
    inputs = [t for t in (x, w, b) if t is not None]
    g = mg.tensor(rng.standard_normal(shape), device=x.device)
    monkeypatch.setattr(norm, "FAST", True)
    y1, grads1 = _value_and_grads(fn, inputs, g)
    assert mg.gradcheck(fn, inputs)
    monkeypatch.setattr(norm, "FAST", False)
    y2, grads2 = _value_and_grads(fn, inputs, g)
    np.testing.assert_allclose(y1, y2, rtol=1e-10, atol=1e-12)
    for g1, g2 in zip(grads1, grads2):
        np.testing.assert_allclose(g1, g2, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["bn", "gn"])
def test_fast_path_float32_with_a_large_mean(name, make, monkeypatch):
    """The fast path's one-pass variance S2/m - mean^2 would lose every digit for data
    far from 0; it falls back to mean((x - mean)^2) there and matches the general path."""
    from minigrad.ops import norm
    x = make(4, 8, 6, 6, requires_grad=False, dtype=np.float32)
    x.data += 1000
    fn = (lambda t: F.batch_norm(t, None, None, training=True)) if name == "bn" else \
        (lambda t: F.group_norm(t, 2))
    monkeypatch.setattr(norm, "FAST", True)
    y1 = fn(x).numpy()
    monkeypatch.setattr(norm, "FAST", False)
    y2 = fn(x).numpy()
    assert y1.dtype == np.float32
    np.testing.assert_allclose(y1, y2, atol=2e-3)
    assert abs(float(y1.std()) - 1) < 1e-2
