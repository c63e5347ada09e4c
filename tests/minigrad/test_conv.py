"""conv2d, im2col and col2im: against a naive loop convolution, finite differences and PyTorch,
on the plain algorithm and on each algorithm of the fast path; and the fast path's buffer pool."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad.backend import as_numpy
from torch_reference import reference


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """The definition, one output pixel and one filter at a time (the reference; slow)."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    xp_ = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((N, O, Ho, Wo))
    Og = O // groups
    for o in range(O):
        g = o // Og
        for ho in range(Ho):
            for wo in range(Wo):
                patch = xp_[:, g * Cg:(g + 1) * Cg, ho * sh:ho * sh + dh * (kh - 1) + 1:dh,
                            wo * sw:wo * sw + dw * (kw - 1) + 1:dw]
                y[:, o, ho, wo] = (patch * w[o]).sum(axis=(1, 2, 3))
        if b is not None:
            y[:, o] += b[o]
    return y


def naive_im2col(x, k, s=1, p=0, d=1):
    """cols[(n*Ho + ho)*Wo + wo, (i*kw + j)*C + c] = x_pad[n, c, ho*s + i*d, wo*s + j*d], literally."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _pair(k), _pair(s), _pair(p), _pair(d)
    N, C, H, W = x.shape
    xp_ = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((N * Ho * Wo, kh * kw * C))
    for n in range(N):
        for ho in range(Ho):
            for wo in range(Wo):
                for i in range(kh):
                    for j in range(kw):
                        for c in range(C):
                            cols[(n * Ho + ho) * Wo + wo, (i * kw + j) * C + c] = \
                                xp_[n, c, ho * sh + i * dh, wo * sw + j * dw]
    return cols


# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
CASES = {
    "3x3": (2, 3, 6, 5, 4, 3, 1, 0, 1, 1, True),
    "stride2_pad1": (2, 3, 7, 6, 4, 3, 2, 1, 1, 1, True),
    "padding2_nobias": (1, 2, 5, 5, 3, 3, 1, 2, 1, 1, False),
    "dilation2": (2, 2, 9, 8, 3, 3, 1, 1, 2, 1, True),
    "groups2": (2, 4, 6, 6, 6, 3, 1, 1, 1, 2, True),
    "depthwise": (2, 4, 6, 5, 4, 3, 1, 1, 1, 4, False),
    "depthwise_multiplier2": (1, 3, 5, 5, 6, 3, 2, 1, 1, 3, True),
    "1x1": (2, 5, 4, 3, 3, 1, 1, 0, 1, 1, True),
    "1x1_stride2": (2, 3, 5, 5, 2, 1, 2, 0, 1, 1, False),
    "1x1_pad1": (2, 3, 4, 3, 2, 1, 1, 1, 1, 1, True),     # padding beyond the kernel
    "5x5_odd": (1, 2, 9, 7, 3, 5, 1, 2, 1, 1, True),
    "5x5_stride3": (2, 2, 11, 10, 2, 5, 3, 1, 1, 1, True),
    "pairs": (2, 4, 7, 9, 4, (3, 2), (2, 1), (1, 0), (1, 2), 2, True),
    "stride_larger_than_kernel": (1, 2, 8, 8, 2, 2, 3, 0, 1, 1, True),
}


# How each path is selected: the plain algorithm, and the fast path with its automatic
# choice, with the kernel-row algorithm wherever it applies, and with im2col only.
PATHS = {"plain": dict(enabled=False), "fast": dict(enabled=True, kernel_rows="auto"),
         "kernel_rows": dict(enabled=True, kernel_rows="always"),
         "fast_im2col": dict(enabled=True, kernel_rows="never")}


@pytest.fixture(params=sorted(PATHS))
def path(request):
    """Run a test under each of conv2d's algorithms."""
    with mg.use_fast(**PATHS[request.param]):
        yield request.param


def _inputs(make, case):
    N, C, H, W, O, k, s, p, d, g, bias = case
    kh, kw = _pair(k)
    x, w = make(N, C, H, W), make(O, C // g, kh, kw, scale=0.5)
    b = make(O) if bias else None
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=g)


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv2d_matches_naive_loops(name, make, path):
    x, w, b, kw = _inputs(make, CASES[name])
    y = F.conv2d(x, w, b, **kw)
    ref = naive_conv2d(x.numpy(), w.numpy(), None if b is None else b.numpy(), **kw)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv2d_gradcheck(name, make, path):
    x, w, b, kw = _inputs(make, CASES[name])
    inputs = [x, w] + ([b] if b is not None else [])
    assert mg.gradcheck(lambda *a: F.conv2d(*a, **kw), inputs)


def test_conv2d_grad_of_input_only_and_weight_only(make):
    x, w, _, kw = _inputs(make, CASES["stride2_pad1"])
    assert mg.gradcheck(lambda x: F.conv2d(x, w.detach(), **kw), [x])
    assert mg.gradcheck(lambda w: F.conv2d(x.detach(), w, **kw), [w])


@pytest.mark.parametrize("stride", [1, 2])   # the two input-gradient paths
def test_conv2d_float32_stays_float32(stride, make, path):
    x, w = make(2, 3, 8, 8, dtype=np.float32), make(4, 3, 3, 3, dtype=np.float32)
    b = make(4, dtype=np.float32)
    y = F.conv2d(x, w, b, stride=stride, padding=1)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_chained_convs_through_channels_last_memory(make, path):
    """conv2d returns channels-last memory; a second conv must not care (values and grads)."""
    x, w1, w2 = make(2, 3, 6, 6), make(4, 3, 3, 3), make(5, 4, 3, 3)
    y = F.conv2d(F.conv2d(x, w1, padding=1), w2, stride=2)
    ref = naive_conv2d(naive_conv2d(x.numpy(), w1.numpy(), padding=1), w2.numpy(), stride=2)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda x, w1, w2: F.conv2d(F.conv2d(x, w1, padding=1), w2, stride=2),
                        [x, w1, w2])


# ----------------------------------------------------------------------------
# im2col / col2im
# ----------------------------------------------------------------------------
GEOMETRIES = [(3, 1, 0, 1), (3, 2, 1, 1), (2, 3, 0, 1), (3, 1, 2, 2), ((3, 2), (1, 2), (1, 0), (2, 1))]


@pytest.mark.parametrize("k,s,p,d", GEOMETRIES)
def test_im2col_layout_is_the_documented_one(k, s, p, d, make):
    x = make(2, 3, 7, 6)
    np.testing.assert_array_equal(F.im2col(x, k, s, p, d).numpy(), naive_im2col(x.numpy(), k, s, p, d))


@pytest.mark.parametrize("k,s,p,d", GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(k, s, p, d, make):
    """<col2im(c), x> == <c, im2col(x)> for random x and c."""
    x = make(2, 3, 7, 6, requires_grad=False)
    cols = F.im2col(x, k, s, p, d)
    c = make(*cols.shape, requires_grad=False)
    lhs = float((F.col2im(c, x.shape, k, s, p, d).data * x.data).sum())
    rhs = float((c.data * cols.data).sum())
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + abs(rhs))


def test_col2im_adds_overlaps(device):
    """With a 3x3 window, stride 1, no padding, col2im(ones) counts how many windows cover each pixel."""
    x_shape = (1, 1, 4, 5)
    cols = mg.tensor(np.ones((2 * 3, 9)), device=device)
    counts = as_numpy(F.col2im(cols, x_shape, 3).data)[0, 0]
    # pixel i is covered by the windows starting at max(0, i - 2) ... min(i, n - 3)
    per_axis = lambda n: np.array([min(i, n - 3) - max(0, i - 2) + 1 for i in range(n)])  # noqa: E731
    np.testing.assert_array_equal(counts, np.outer(per_axis(4), per_axis(5)))


@pytest.mark.parametrize("k,s,p,d", GEOMETRIES[:3])
def test_im2col_and_col2im_gradcheck(k, s, p, d, make):
    x = make(1, 2, 6, 5)
    assert mg.gradcheck(lambda x: F.im2col(x, k, s, p, d), [x])
    cols = make(*F.im2col(x, k, s, p, d).shape)
    assert mg.gradcheck(lambda c: F.col2im(c, x.shape, k, s, p, d), [cols])


def test_conv2d_is_im2col_times_weight_matrix(make):
    """The module docstring's identity: conv2d(x, w) == im2col(x) @ w_mat, reshaped."""
    x, w = make(2, 3, 5, 6), make(4, 3, 3, 3)
    w_mat = w.transpose(2, 3, 1, 0).reshape(27, 4)
    y = (F.im2col(x, 3, padding=1) @ w_mat).reshape(2, 5, 6, 4).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y.numpy(), F.conv2d(x, w, padding=1).numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------
def test_conv2d_errors_are_clear(make):
    x, w = make(2, 4, 6, 6), make(6, 4, 3, 3)
    with pytest.raises(ValueError, match="4-D input"):
        F.conv2d(make(4, 6, 6), w)
    with pytest.raises(ValueError, match="4-D weight"):
        F.conv2d(x, make(6, 4, 3))
    with pytest.raises(ValueError, match="input has 4 channels.*must have 4 input channels.*"
                                         r"shape \(6, 3, 3, 3\)"):
        F.conv2d(x, make(6, 3, 3, 3))
    with pytest.raises(ValueError, match="must have 2 input channels"):
        F.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        F.conv2d(x, make(6, 1, 3, 3), groups=3)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        F.conv2d(x, w, groups=0)
    with pytest.raises(ValueError, match=r"smaller than the dilated kernel 5x5"):
        F.conv2d(make(1, 4, 4, 4), w, dilation=2)
    with pytest.raises(ValueError, match="bias must have shape"):
        F.conv2d(x, w, make(4))
    with pytest.raises(TypeError, match="stride must be an int or a pair"):
        F.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="padding must be at least 0"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(TypeError, match="input is float32 but weight is float64"):
        F.conv2d(make(2, 4, 6, 6, dtype=np.float32), w)


def test_col2im_wrong_matrix_shape_is_clear(make):
    with pytest.raises(ValueError, match=r"must have shape \(N\*Ho\*Wo, kh\*kw\*C\) = \(32, 27\)"):
        F.col2im(make(32, 26), (2, 3, 4, 4), 3, padding=1)


# ----------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_conv2d_matches_torch(name, make, path):
    x, w, b, kw = _inputs(make, CASES[name])
    y = F.conv2d(x, w, b, **kw)
    gy = np.random.default_rng(7).standard_normal(y.shape)
    y.backward(mg.tensor(gy, device=y.device))   # the upstream gradient lives where y does
    inputs = {"x": x.numpy(), "w": w.numpy(), "gy": gy} | ({} if b is None else {"b": b.numpy()})

    def torch_conv(torch, x, w, gy, b=None):
        tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
        tb = None if b is None else torch.tensor(b, requires_grad=True)
        ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
        ty.backward(torch.tensor(gy))
        return {"y": ty, "x.grad": tx.grad, "w.grad": tw.grad} | ({} if b is None else {"b.grad": tb.grad})

    theirs = reference(f"conv2d/{name}", inputs, torch_conv)
    pairs = [(y.numpy(), theirs["y"]), (as_numpy(x.grad), theirs["x.grad"]),
             (as_numpy(w.grad), theirs["w.grad"])]
    if b is not None:
        pairs.append((as_numpy(b.grad), theirs["b.grad"]))
    for ours, theirs in pairs:
        assert np.abs(ours - theirs).max() <= 1e-10 * np.abs(theirs).max()




# ----------------------------------------------------------------------------
# The fast path against the plain algorithm
# ----------------------------------------------------------------------------
# The other geometries of this file's tests: the pool tests' layers, the float32 test's,
# the chained convs' second layer, and a 32x32 map where "auto" takes the kernel rows.
MORE_CASES = {
    "pool_3x3_pad1": (2, 3, 6, 6, 4, 3, 1, 1, 1, 1, False),
    "pool_5x5_pad2": (2, 3, 4, 4, 4, 5, 1, 2, 1, 1, False),
    "float32_stride1": (2, 3, 8, 8, 4, 3, 1, 1, 1, 1, True),
    "float32_stride2": (2, 3, 8, 8, 4, 3, 2, 1, 1, 1, True),
    "chained_second": (2, 4, 6, 6, 5, 3, 2, 0, 1, 1, False),
    "32x32": (2, 8, 32, 32, 6, 3, 1, 1, 1, 1, True),
}
ALL_CASES = {**CASES, **MORE_CASES}


def _step(x, w, b, kw, g, settings):
    """Output and gradients of conv2d on fresh leaves, for the upstream gradient g."""
    with mg.use_fast(**settings):
        X, W = (mg.tensor(as_numpy(t.data), requires_grad=True, device=t.device) for t in (x, w))
        B = None if b is None else mg.tensor(as_numpy(b.data), requires_grad=True, device=b.device)
        y = F.conv2d(X, W, B, **kw)
        y.backward(mg.tensor(g, device=y.device))
    return [y.numpy(), as_numpy(X.grad), as_numpy(W.grad)] + ([] if B is None else [as_numpy(B.grad)])


@pytest.mark.parametrize("fast", ["fast", "kernel_rows", "fast_im2col"])
@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_fast_path_equals_plain_algorithm(name, fast, make, rng):
    """Output and float64 gradients (on a random upstream gradient) of each fast
    algorithm equal the plain im2col conv's."""
    x, w, b, kw = _inputs(make, ALL_CASES[name])
    with mg.use_fast(False):
        shape = F.conv2d(x.detach(), w.detach(), **kw).shape
    g = rng.standard_normal(shape)
    plain = _step(x, w, b, kw, g, PATHS["plain"])
    for a, b_ in zip(_step(x, w, b, kw, g, PATHS[fast]), plain):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


def test_use_fast_picks_the_conv_function():
    from minigrad.fast import conv as fast_conv
    from minigrad.ops import conv as plain_conv
    x, w = mg.tensor(np.ones((1, 2, 5, 5)), requires_grad=True), mg.tensor(np.ones((3, 2, 3, 3)))
    assert type(F.conv2d(x, w).creator) is fast_conv.Conv2d
    with mg.use_fast(False):
        assert type(F.conv2d(x, w).creator) is plain_conv.Conv2d
    assert type(F.conv2d(x, w).creator) is fast_conv.Conv2d


def test_kernel_row_rule():
    """'auto' takes the kernel-row algorithm for thin stride-1 layers on maps where the
    grid wastes little (ResNet-20's first stages), and im2col elsewhere."""
    from minigrad.fast.kernel_rows import kernel_row_grid, use_kernel_rows
    assert kernel_row_grid(2, 32, 32, (3, 3), (1, 1), (1, 1)) == (2, 33, 33)   # shared borders
    assert kernel_row_grid(2, 8, 8, (3, 3), (0, 0), (1, 1)) == (2, 8, 8)
    assert kernel_row_grid(2, 8, 8, (1, 1), (2, 2), (1, 1)) == (2, 12, 12)     # Ho = 12

    def rule(C, grid, out, kw=3, stride=(1, 1), groups=1, xp=np):
        return use_kernel_rows(C, grid, out, kernel_width=kw, stride=stride, groups=groups, xp=xp)

    with mg.use_fast(True, kernel_rows="auto"):
        assert rule(16, (2, 33, 33), (32, 32))
        assert rule(32, (2, 17, 17), (16, 16))
        assert not rule(64, (2, 9, 9), (8, 8))                   # 27% waste
        assert not rule(64, (2, 33, 33), (32, 32))               # thick
        assert not rule(16, (2, 33, 33), (16, 16), stride=(2, 2))
        assert not rule(16, (2, 33, 33), (32, 32), groups=2)
        assert not rule(16, (2, 33, 33), (32, 32), kw=1)         # 1x1 kernel
        assert not rule(16, (2, 33, 33), (32, 32), xp=object())  # not NumPy
    with mg.use_fast(True, kernel_rows="always"):
        assert rule(64, (2, 9, 9), (8, 8))
        assert not rule(64, (2, 9, 9), (8, 8), stride=(2, 2))
    with mg.use_fast(True, kernel_rows="never"):
        assert not rule(16, (2, 33, 33), (32, 32))


def test_kernel_rows_are_taken_on_a_32x32_map(make):
    """At a size where 'auto' picks the kernel-row algorithm (NumPy only), it is taken."""
    x, w = make(2, 8, 32, 32), make(6, 8, 3, 3, scale=0.3)
    with mg.use_fast(True, kernel_rows="auto"):
        assert F.conv2d(x, w, padding=1).creator.uses_kernel_rows == (x.device == "cpu")
    with mg.use_fast(True, kernel_rows="never"):
        assert not F.conv2d(x, w, padding=1).creator.uses_kernel_rows


# ----------------------------------------------------------------------------
# The fast path's buffer pool
# ----------------------------------------------------------------------------
from minigrad.fast import buffer_pool  # noqa: E402


@pytest.fixture
def empty_pool():
    """An empty pool with its default limit, emptied again afterwards."""
    mg.fast.clear_pool()
    yield
    mg.fast.clear_pool()


def _pooled_count(name):
    return sum(n for (kind, _), n in buffer_pool.contents().items() if kind == name)


def _train_step(x, w, padding=1):
    X, W = mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)
    F.conv2d(X, W, padding=padding).sum().backward()


@pytest.mark.parametrize("kernel_rows", ["always", "auto"])
def test_kernel_row_step_hands_back_both_patch_matrices(kernel_rows, rng, empty_pool):
    """After a step by the kernel-row algorithm the pool holds two patch matrices: the
    forward's and the input gradient's (which takes that algorithm too), and no im2col one."""
    shape = ((2, 3, 6, 6), (4, 3, 3, 3)) if kernel_rows == "always" else ((2, 8, 32, 32), (6, 8, 3, 3))
    with mg.use_fast(True, kernel_rows=kernel_rows):
        _train_step(rng.standard_normal(shape[0]), rng.standard_normal(shape[1]))
    assert _pooled_count("kernel-row patches") == 2
    assert _pooled_count("im2col matrix") == 0


def test_clear_pool_empties_it(rng, empty_pool):
    for mode in ("always", "never"):
        with mg.use_fast(True, kernel_rows=mode):
            _train_step(rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)))
    assert buffer_pool.nbytes() > 0 and _pooled_count("im2col matrix") > 0
    mg.fast.clear_pool()
    assert buffer_pool.nbytes() == 0 and buffer_pool.contents() == {}


@pytest.mark.parametrize("kernel_rows", ["always", "never"])
def test_forward_without_graph_leaves_the_pool_as_it_was(kernel_rows, rng, empty_pool):
    """A forward that records no graph (under no_grad, or with no input that needs a
    gradient) hands back every array it took, since no backward will."""
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    with mg.use_fast(True, kernel_rows=kernel_rows):
        _train_step(x, w)
        before = (buffer_pool.nbytes(), buffer_pool.contents())
        assert before[0] > 0
        with mg.no_grad():
            F.conv2d(mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True), padding=1)
        assert (buffer_pool.nbytes(), buffer_pool.contents()) == before
        F.conv2d(mg.tensor(x), mg.tensor(w), padding=1)
        assert (buffer_pool.nbytes(), buffer_pool.contents()) == before


def test_full_pool_evicts_the_oldest_shapes(empty_pool):
    F64 = np.dtype(np.float64)
    kinds = [buffer_pool.Kind(name) for name in "abcd"]
    previous = mg.fast.set_pool_limit(3 * 8000)
    try:
        arrays = [np.empty(1000) for _ in kinds]            # 8000 bytes each
        for a, kind in zip(arrays[:3], kinds):
            buffer_pool.give(a, kind)
        assert buffer_pool.take(np, kinds[0], (1000,), F64) is arrays[0]   # "a" used last
        buffer_pool.give(arrays[0], kinds[0])
        buffer_pool.give(arrays[3], kinds[3])               # full: "b" was used longest ago
        assert list(buffer_pool.contents()) == [("c", (1000,)), ("a", (1000,)), ("d", (1000,))]
        assert buffer_pool.nbytes() == 3 * 8000
        assert buffer_pool.take(np, kinds[3], (1000,), F64) is arrays[3]
        assert buffer_pool.take(np, kinds[1], (1000,), F64) is not arrays[1]
        buffer_pool.give(np.empty(4000), kinds[0])           # larger than the limit: not kept
        assert buffer_pool.nbytes() == 2 * 8000
        assert mg.fast.set_pool_limit(8000) == 3 * 8000      # shrinking evicts, oldest first
        assert list(buffer_pool.contents()) == [("a", (1000,))]
    finally:
        mg.fast.set_pool_limit(previous)
    with pytest.raises(ValueError, match="number of bytes >= 0"):
        mg.fast.set_pool_limit(-1)


def test_a_new_model_replaces_an_old_one_in_a_full_pool(rng, empty_pool):
    small = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    large = rng.standard_normal((2, 3, 12, 12)), rng.standard_normal((4, 3, 3, 3))
    with mg.use_fast(True, kernel_rows="never"):
        _train_step(*large)
        limit = buffer_pool.nbytes()
        mg.fast.clear_pool()
        _train_step(*small)
        previous = mg.fast.set_pool_limit(limit)
        try:
            _train_step(*large)
        finally:
            mg.fast.set_pool_limit(previous)
    kept = buffer_pool.contents()
    assert ("im2col matrix", (1, 2, 12, 12, 3, 3, 3)) in kept       # the large model's
    assert ("im2col matrix", (1, 2, 6, 6, 3, 3, 3)) not in kept      # the small one's: evicted
    assert buffer_pool.nbytes() <= limit


def test_pooled_buffers_give_the_same_results_as_fresh_ones(rng, path, empty_pool):
    """The fast conv2d reuses its work arrays between steps (NumPy only).  Forward and
    backward passes through layers whose padded inputs share a shape but not a padding
    (6x6 with padding 1, 4x4 with padding 2), also interleaved (two forwards, then their
    backwards; a no_grad forward between a forward and its backward; backward with
    retain_graph=True, then again), give exactly what fresh arrays give."""
    cases = [((2, 3, 6, 6), (4, 3, 3, 3), 1), ((2, 3, 4, 4), (4, 3, 5, 5), 2),
             ((2, 3, 6, 6), (4, 3, 3, 3), 1)]
    data = [(rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(
        (xs[0], ws[0], xs[2] + 2 * p - ws[2] + 1, xs[3] + 2 * p - ws[3] + 1)), p)
        for xs, ws, p in cases]

    def leaves(x, w):
        return mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)

    def run():
        out = []
        for _ in range(2):
            for x, w, g, p in data:                          # one step after another
                X, W = leaves(x, w)
                y = F.conv2d(X, W, padding=p)
                y.backward(g)
                out += [y.numpy(), X.grad, W.grad]
            (x1, w1, g1, p1), (x2, w2, g2, p2) = data[:2]
            X1, W1 = leaves(x1, w1)                          # two forwards, then backward
            X2, W2 = leaves(x2, w2)
            y1, y2 = F.conv2d(X1, W1, padding=p1), F.conv2d(X2, W2, padding=p2)
            y2.backward(g2)
            y1.backward(g1)
            out += [y1.numpy(), y2.numpy(), X1.grad, W1.grad, X2.grad, W2.grad]
            X1, W1 = leaves(x1, w1)                          # a no_grad forward in between
            y1 = F.conv2d(X1, W1, padding=p1)
            with mg.no_grad():
                z = F.conv2d(mg.tensor(x2), mg.tensor(w2), padding=p2)
            y1.backward(g1)
            out += [z.numpy(), y1.numpy(), X1.grad, W1.grad]
            X1, W1 = leaves(x1, w1)                          # backward twice on one graph
            y1 = F.conv2d(X1, W1, padding=p1)
            y1.backward(g1, retain_graph=True)
            first = X1.grad.copy(), W1.grad.copy()
            y1.backward(g1)
            np.testing.assert_allclose(X1.grad, 2 * first[0], rtol=1e-15)
            out += [*first, X1.grad, W1.grad]
        return out

    pooled = run()
    if path != "plain":
        assert buffer_pool.nbytes() > 0
    mg.fast.clear_pool()
    previous = mg.fast.set_pool_limit(0)
    try:
        fresh = run()
        assert buffer_pool.nbytes() == 0
    finally:
        mg.fast.set_pool_limit(previous)
    assert len(pooled) == len(fresh)
    for a, b in zip(pooled, fresh):
        np.testing.assert_array_equal(a, b)


def test_a_training_run_on_the_plain_path_gives_the_fast_paths_numbers(rng):
    """Five SGD steps of a float32 conv net (thin stride-1 layers that take the kernel-row
    algorithm, a stride-2 one, a grouped one) end at the same weights on both paths, to
    float32 rounding."""
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    t = rng.integers(0, 5, 4)

    def train(fast):
        mg.manual_seed(0)
        net = mg.nn.Sequential(mg.nn.Conv2d(3, 8, 3, padding=1), mg.nn.ReLU(),
                               mg.nn.Conv2d(8, 8, 3, padding=1), mg.nn.ReLU(),
                               mg.nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), mg.nn.ReLU(),
                               mg.nn.AdaptiveAvgPool2d(1), mg.nn.Flatten(), mg.nn.Linear(16, 5))
        opt = mg.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        with mg.use_fast(fast):
            for _ in range(5):
                opt.zero_grad()
                F.cross_entropy(net(mg.tensor(x)), t).backward()
                opt.step()
        return [p.numpy() for p in net.parameters()]

    w = mg.tensor(rng.standard_normal((8, 8, 3, 3)).astype(np.float32), requires_grad=True)
    assert F.conv2d(mg.tensor(np.ones((4, 8, 16, 16), np.float32)), w, padding=1).creator.uses_kernel_rows
    for a, b in zip(train(True), train(False)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
