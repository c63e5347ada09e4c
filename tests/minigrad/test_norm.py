"""BatchNorm, GroupNorm, LayerNorm, InstanceNorm: the hand-derived backward of the
shared `Normalize` op against (a) the same norm composed from Tensor ops, whose
gradient comes from the engine, and (b) finite differences; running statistics;
errors; where PyTorch is installed, PyTorch itself; and the fast path
(`NormalizeChannelsLast`) against `Normalize`, in values, float64 gradients and
float32 error."""
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
# The channels-last fast path (NormalizeChannelsLast) against the general Normalize
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
    # Rows of the wide view (see NormalizeChannelsLast): 323 rows of 2 positions (a whole block
    # of channel_sums and a rest), and 551 rows of 1 position (two blocks and a rest).
    "bn-long": ((2, 2, 17, 19), _bn),
    "in-long": ((1, 1, 19, 29), _in),
}


def _channels_last_copy(x):
    """x with the same values, stored channels-last (as conv2d returns it)."""
    xp = backend.get_array_module(x.data)
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    inv = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
    x.data = xp.ascontiguousarray(x.data.transpose(perm)).transpose(inv)
    return x


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("case", sorted(FAST_CASES))
def test_fast_path_matches_general_normalize(case, affine, channels_last, make, rng):
    """batch_norm, group_norm and instance_norm run NormalizeChannelsLast; with the fast path
    off they run the general Normalize.  Both must agree on values and all gradients, for
    NCHW inputs and for channels-last ones (what conv2d returns), and the fast path passes
    gradcheck on a random upstream gradient."""
    shape, fn = FAST_CASES[case]
    x = make(*shape)
    if channels_last and x.ndim > 2:
        _channels_last_copy(x)
    w, b = _params(make, (shape[1],), affine)
    inputs = [t for t in (x, w, b) if t is not None]
    g = mg.tensor(rng.standard_normal(shape), device=x.device)
    y1, grads1 = _value_and_grads(fn, inputs, g)
    assert mg.gradcheck(fn, inputs)
    with mg.use_fast(False):
        y2, grads2 = _value_and_grads(fn, inputs, g)
    np.testing.assert_allclose(y1, y2, rtol=1e-10, atol=1e-12)
    for g1, g2 in zip(grads1, grads2):
        np.testing.assert_allclose(g1, g2, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("rows,k,C", [(20000, 1, 2), (1000, 1, 3), (700, 4, 16), (256, 2, 5),
                                      (40, 8, 2)])
def test_channel_sums_are_exact_to_a_short_float32_sum(rows, k, C):
    """Sums per (row, channel) of a wide view (Nb, rows, k*C) whose column j holds channel
    j % C, of a float32 array and of a product of two: within 3e-7 of the float64 sums,
    however long the axis (one float32 matmul with ones over the 20000 numbers near 10 is
    off by 4.5e-6)."""
    from minigrad.fast.norm import channel_sums
    rng = np.random.default_rng(0)
    a, b = (10 + rng.standard_normal((3, rows, k * C))).astype(np.float32), \
        rng.standard_normal((3, rows, k * C)).astype(np.float32)
    exact = a.astype(np.float64).reshape(3, rows * k, C).sum(axis=1)
    exact_ab = (a.astype(np.float64) * b).reshape(3, rows * k, C).sum(axis=1)
    got, got_ab = channel_sums(np, a, C), channel_sums(np, a, C, b)
    assert got.dtype == got_ab.dtype == np.float64
    np.testing.assert_allclose(got, exact, rtol=3e-7)
    np.testing.assert_allclose(got_ab, exact_ab, rtol=0, atol=3e-7 * np.abs(a * b).sum())


def test_use_fast_chooses_the_kernel(make):
    from minigrad.fast.norm import NormalizeChannelsLast
    from minigrad.ops.norm import Normalize
    x = make(2, 4, 3, 3)
    channel_norms = [lambda: _bn(x), lambda: _in(x), lambda: F.group_norm(x, 2)]
    for norm in channel_norms:
        assert type(norm().creator) is NormalizeChannelsLast
        with mg.use_fast(False):
            assert type(norm().creator) is Normalize
        assert type(norm().creator) is NormalizeChannelsLast
    assert type(F.layer_norm(x, (4, 3, 3)).creator) is Normalize


def _shifted_input_norms():
    """name -> (fast-path call, general-path call) of the four norms."""
    return {"bn": (_bn, _bn), "in": (_in, _in),
            "gn": (_gn(2)[0], _gn(2)[0]),
            # LayerNorm over (C, H, W) of a conv map is group_norm with one group.
            "ln": (lambda x, w=None, b=None: F.group_norm(x, 1),
                   lambda x, w=None, b=None: F.layer_norm(x, x.shape[1:]))}


@pytest.mark.parametrize("name", ["bn", "gn", "in", "ln"])
def test_fast_path_float64_gradients_of_an_uncentred_input(name, make, rng):
    """Inputs 4 * randn + 10, as un-centred activations are: the fast path's values and
    gradients equal the general kernel's to 1e-12."""
    fast, general = _shifted_input_norms()[name]
    x = make(4, 6, 7, 9, scale=4.0)
    x.data += 10.0
    w, b = ((None, None) if name == "ln" else
            (make(6), make(6)))
    inputs = [t for t in (x, w, b) if t is not None]
    g = mg.tensor(rng.standard_normal(x.shape), device=x.device)
    y1, grads1 = _value_and_grads(fast, inputs, g)
    with mg.use_fast(False):
        y2, grads2 = _value_and_grads(general, inputs, g)
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-12)
    for g1, g2 in zip(grads1, grads2):
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("name", ["bn", "in"])
def test_eval_forward_keeps_its_statistics_until_its_backward(name, fast, make, rng, device):
    """An eval-mode forward, then a train-mode forward of the same layer, which updates the
    running buffers in place, then the first graph's backward: the gradients are those of the
    statistics the eval forward used (the kernel keeps their values, not views of the buffers)."""
    x, w, b = make(4, 3, 5, 5), make(3), make(3)
    g = mg.tensor(rng.standard_normal(x.shape), device=device)
    other = make(4, 3, 5, 5, requires_grad=False, scale=3.0)
    eval_forward = {"bn": lambda rm, rv: F.batch_norm(x, rm, rv, w, b, training=False),
                    "in": lambda rm, rv: F.instance_norm(x, rm, rv, w, b, use_input_stats=False)}
    train_forward = {"bn": lambda rm, rv: F.batch_norm(other, rm, rv, training=True, momentum=1.0),
                     "in": lambda rm, rv: F.instance_norm(other, rm, rv, momentum=1.0)}

    def gradients(train_forward_in_between):
        rm, rv = (mg.tensor(a, device=device).data for a in (np.linspace(-1, 1, 3), np.ones(3)))
        with mg.use_fast(fast):
            y = eval_forward[name](rm, rv)
            if train_forward_in_between:
                train_forward[name](rm, rv)
                assert abs(float(rv[0]) - 1.0) > 1.0          # the buffers did change
            _, grads = _value_and_grads(lambda *_: y, [x, w, b], g)
        return grads

    expect, got = gradients(False), gradients(True)
    for e, o in zip(expect, got):
        np.testing.assert_allclose(o, e, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------
# float32 error against a float64 computation: the fast path is as exact as Normalize
# ----------------------------------------------------------------------------
# name -> (shape, call).  BatchNorm's sets are 32768 numbers along one axis: a float32
# sum over them loses digits unless it is done in pieces.
NORMS_F32 = {"bn": ((32, 8, 32, 32), lambda t: F.batch_norm(t, None, None, training=True)),
             "gn": ((8, 16, 32, 32), lambda t: F.group_norm(t, 2)),
             "in": ((8, 8, 64, 64), F.instance_norm)}


def _exact_norm(x64, name):
    """The norm of the float32 input, computed in float64."""
    v = x64.reshape(x64.shape[0], 2, -1) if name == "gn" else x64
    axes = {"bn": (0, 2, 3), "in": (2, 3), "gn": (2,)}[name]
    mu = v.mean(axis=axes, keepdims=True)
    var = ((v - mu) ** 2).mean(axis=axes, keepdims=True)
    return ((v - mu) / np.sqrt(var + EPS)).reshape(x64.shape)


def _float32_error(name, mean, std, fast):
    """Largest |y - exact| of the float32 norm of mean + std * randn."""
    shape, fn = NORMS_F32[name]
    x = (mean + std * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
    with mg.use_fast(fast):
        y = fn(mg.tensor(x)).numpy()
    assert y.dtype == np.float32
    return float(np.abs(y - _exact_norm(x.astype(np.float64), name)).max())


# (mean, std) with mean^2 / var from 0 to 1e4.
MEANS_STDS = [(0.0, 1.0), (2.0, 1.0), (5.0, 0.6), (9.0, 1.0), (3.0, 0.3), (30.0, 1.0),
              (100.0, 1.0), (-50.0, 0.5)]


@pytest.mark.parametrize("mean,std", MEANS_STDS)
@pytest.mark.parametrize("name", sorted(NORMS_F32))
def test_fast_path_float32_is_as_exact_as_the_general_kernel(name, mean, std):
    """Training mode, float32: the fast path's largest error is at most twice the general
    kernel's, whatever mean^2 / var (a one-pass variance sum(x^2)/m - mu^2, or y = x * a + b,
    would lose digits as it grows; a float32 sum along BatchNorm's long axis loses them at any
    mean)."""
    fast, general = _float32_error(name, mean, std, True), _float32_error(name, mean, std, False)
    assert fast <= 2 * general, f"fast path {fast:.2e}, general kernel {general:.2e}"


@pytest.mark.parametrize("mean", [7.1, 8.0, 9.0, 9.9])        # mean^2 / var = 50 ... 98
@pytest.mark.parametrize("name", sorted(NORMS_F32))
def test_fast_path_float32_with_mean2_over_var_50_to_99(name, mean):
    """Where a one-pass variance loses two to three digits but mean^2 / var stays below a
    guard at 100: the output is exact to a few float32 rounding steps of its size (about 4)."""
    assert _float32_error(name, mean, 1.0, True) < 1.5e-6


@pytest.mark.parametrize("mean", [0.0, 9.0, 100.0])
@pytest.mark.parametrize("name", sorted(NORMS_F32))
def test_fast_path_float32_gradients_are_exact_to_float32(name, mean):
    """Training mode, float32, with weight and bias: the gradients of x, weight and bias are
    within 1e-6 of the float64 ones, relative to their largest entry, as the general kernel's
    are (the sums over positions and sum(gy * (x - mu)) keep their digits)."""
    shape, _ = NORMS_F32[name]
    C = shape[1]
    call = {"bn": lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
            "gn": lambda x, w, b: F.group_norm(x, 2, w, b),
            "in": lambda x, w, b: F.instance_norm(x, weight=w, bias=b)}[name]
    rng = np.random.default_rng(1)
    arrays = [mean + rng.standard_normal(shape), 1 + 0.2 * rng.standard_normal(C),
              rng.standard_normal(C)]
    g = rng.standard_normal(shape)
    grads = {}
    for dtype in (np.float32, np.float64):
        inputs = [mg.tensor(a.astype(np.float32).astype(dtype), requires_grad=True) for a in arrays]
        call(*inputs).backward(g.astype(dtype))
        grads[dtype] = [t.grad for t in inputs]
    for got, exact in zip(grads[np.float32], grads[np.float64]):
        assert got.dtype == np.float32
        assert np.abs(got - exact).max() <= 1e-6 * np.abs(exact).max()
