"""conv2d, im2col and col2im: against a naive loop convolution, finite differences and PyTorch."""
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


@pytest.fixture(params=["auto", "rows", "im2col"])
def path(request, monkeypatch):
    """Run a test under each of conv2d's two algorithms (and the automatic choice)."""
    from minigrad.ops import conv_rows
    mode = {"auto": "auto", "rows": "always", "im2col": "never"}[request.param]
    monkeypatch.setattr(conv_rows, "MODE", mode)
    return request.param


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


def test_pooled_buffers_give_the_same_results_as_fresh_ones(rng, monkeypatch, path):
    """Conv2d reuses its im2col matrices and padded inputs between steps (NumPy only).
    Repeated forward/backward passes through layers whose padded inputs share a shape but
    not a padding (6x6 with padding 1, 4x4 with padding 2) must give exactly what fresh
    buffers give."""
    from minigrad.ops import buffer_pool as pool
    cases = [((2, 3, 6, 6), (4, 3, 3, 3), 1), ((2, 3, 4, 4), (4, 3, 5, 5), 2),
             ((2, 3, 6, 6), (4, 3, 3, 3), 1)]
    data = [(rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(
        (xs[0], ws[0], xs[2] + 2 * p - ws[2] + 1, xs[3] + 2 * p - ws[3] + 1)), p)
        for xs, ws, p in cases]

    def run():
        out = []
        for _ in range(2):
            for x, w, g, p in data:
                X, W = mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)
                y = F.conv2d(X, W, padding=p)
                y.backward(g)
                out += [y.numpy(), X.grad, W.grad]
        return out

    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_BYTES", [0])
    pooled = run()
    assert pool._POOL_BYTES[0] > 0
    monkeypatch.setattr(pool, "POOL_LIMIT", 0)
    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_BYTES", [0])
    fresh = run()
    assert pool._POOL_BYTES[0] == 0
    for a, b in zip(pooled, fresh):
        np.testing.assert_array_equal(a, b)


def test_row_path_rule(monkeypatch):
    """'auto' takes the row path for thin stride-1 layers on maps where the padded grid
    wastes little (ResNet-20's first stage), and im2col elsewhere; a bad MODE is named."""
    from minigrad.ops import conv_rows
    monkeypatch.setattr(conv_rows, "MODE", "auto")
    assert conv_rows.row_grid(2, 32, 32, (3, 3), (1, 1), (1, 1)) == (2, 33, 33)   # shared borders
    assert conv_rows.row_grid(2, 8, 8, (3, 3), (0, 0), (1, 1)) == (2, 8, 8)
    assert conv_rows.row_grid(2, 8, 8, (1, 1), (2, 2), (1, 1)) == (2, 12, 12)     # Ho = 12
    assert conv_rows.use_rows(16, (33, 33), (32, 32), 3, (1, 1), 1)
    assert conv_rows.use_rows(32, (17, 17), (16, 16), 3, (1, 1), 1)
    assert not conv_rows.use_rows(64, (9, 9), (8, 8), 3, (1, 1), 1)       # 27% waste
    assert not conv_rows.use_rows(64, (33, 33), (32, 32), 3, (1, 1), 1)     # thick
    assert not conv_rows.use_rows(16, (33, 33), (16, 16), 3, (2, 2), 1)     # stride 2
    assert not conv_rows.use_rows(16, (33, 33), (32, 32), 3, (1, 1), 2)     # groups
    assert not conv_rows.use_rows(16, (33, 33), (32, 32), 3, (1, 1), 1, xp=object())  # not NumPy
    monkeypatch.setattr(conv_rows, "MODE", "always")
    assert conv_rows.use_rows(64, (9, 9), (8, 8), 3, (1, 1), 1)
    monkeypatch.setattr(conv_rows, "MODE", "fast")
    with pytest.raises(ValueError, match="'auto', 'always' or 'never'"):
        conv_rows.use_rows(16, (34, 34), (32, 32), 3, (1, 1), 1)


def test_row_path_is_taken_and_matches_im2col_on_a_32x32_map(make, monkeypatch):
    """At a size where 'auto' picks the row path (on the CPU), its output and gradients
    equal im2col's."""
    from minigrad.ops import conv_rows
    x, w, b = (a.numpy() for a in (make(2, 8, 32, 32), make(6, 8, 3, 3, scale=0.3), make(6)))
    g = make(2, 6, 32, 32).detach()
    device = g.device
    results = {}
    for mode in ("auto", "never"):
        monkeypatch.setattr(conv_rows, "MODE", mode)
        X, W, B = (mg.tensor(a, requires_grad=True, device=device) for a in (x, w, b))
        y = F.conv2d(X, W, B, padding=1)
        assert y.creator.rows == (mode == "auto" and device == "cpu")   # auto: NumPy only
        y.backward(g)
        results[mode] = [y.numpy(), as_numpy(X.grad), as_numpy(W.grad), as_numpy(B.grad)]
    for a, b_ in zip(*results.values()):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)
