"""The hand-derived Normalize kernel, and the four norms on either path, against the readable
reference (eqs. (1)-(2) composed of basic ops): same outputs, same gradients, for each of the
four norms and for fixed statistics."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad.ops.norm import normalize
from minigrad.ops.norm_reference import normalize_reference

N, C, H, W, G = 3, 4, 5, 2, 2

# name -> (axes, view, param_shape, weight/bias shape); as batch_norm, instance_norm,
# group_norm and layer_norm call the kernel for an input of shape (N, C, H, W).
CASES = {
    "batch": ((0, 2, 3), None, (1, C, 1, 1), (C,)),
    "instance": ((2, 3), None, (1, C, 1, 1), (C,)),
    "group": ((2, 3, 4), (N, G, C // G, H, W), (1, G, C // G, 1, 1), (C,)),
    "layer": ((1, 2, 3), None, None, (C, H, W)),
}


def _as_numpy(a):
    return mg.backend.as_numpy(a)


def _run(fn, x, weight, bias, **settings):
    """Output and the gradients of x, weight, bias for a random upstream gradient."""
    leaves = [t for t in (x, weight, bias) if t is not None]
    for t in leaves:
        t.grad = None
    y = fn(x, weight=weight, bias=bias, **settings)
    up = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(mg.tensor(up, device=x.device))
    return [_as_numpy(y.data)] + [_as_numpy(t.grad) for t in leaves]


@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("case", list(CASES))
def test_fused_equals_reference(case, affine, make):
    axes, view, pshape, wshape = CASES[case]
    x = make(N, C, H, W, scale=3.0)
    x.data += 2.0                                   # a mean far from 0, as activations have
    weight = make(*wshape) if affine != "none" else None
    bias = make(*wshape) if affine == "both" else None
    settings = {"axes": axes, "view": view, "param_shape": pshape, "eps": 1e-5}
    hand = _run(lambda x, **kw: normalize(x, **kw)[0], x, weight, bias, **settings)
    plain = _run(normalize_reference, x, weight, bias, **settings)
    assert len(hand) == len(plain)
    for a, b in zip(hand, plain):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_fused_equals_reference_with_fixed_statistics(make, rng):
    axes, view, pshape, wshape = CASES["batch"]
    x, weight, bias = make(N, C, H, W), make(*wshape), make(*wshape)
    xp = mg.backend.get_array_module(x.data)
    stats = tuple(xp.asarray(a.reshape(pshape)) for a in
                  (rng.standard_normal(C), 0.5 + rng.random(C)))
    settings = {"axes": axes, "view": view, "param_shape": pshape, "eps": 1e-5, "stats": stats}
    hand = _run(lambda x, **kw: normalize(x, **kw)[0], x, weight, bias, **settings)
    plain = _run(normalize_reference, x, weight, bias, **settings)
    for a, b in zip(hand, plain):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


# name -> the public function, called as the reference is called with CASES[name]'s settings.
PUBLIC = {
    "batch": lambda x, weight, bias: F.batch_norm(x, None, None, weight, bias, training=True),
    "instance": lambda x, weight, bias: F.instance_norm(x, weight=weight, bias=bias),
    "group": lambda x, weight, bias: F.group_norm(x, G, weight, bias),
    "layer": lambda x, weight, bias: F.layer_norm(x, (C, H, W), weight, bias),
}


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("case", list(CASES))
def test_each_norm_on_either_path_equals_the_reference(case, fast, make):
    axes, view, pshape, wshape = CASES[case]
    x = make(N, C, H, W, scale=3.0)
    x.data += 2.0
    weight, bias = make(*wshape), make(*wshape)
    with mg.use_fast(fast):
        public = _run(lambda x, weight, bias: PUBLIC[case](x, weight, bias), x, weight, bias)
    plain = _run(normalize_reference, x, weight, bias, axes=axes, view=view, param_shape=pshape)
    for a, b in zip(public, plain):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_reference_is_eq_1_and_2(rng):
    # x_hat = (x - mu_B) / sigma_B, r = gamma * x_hat + beta, by NumPy on one channel set.
    x = rng.standard_normal((6, 3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    r = normalize_reference(mg.tensor(x), (0,), mg.tensor(gamma), mg.tensor(beta), eps=1e-5)
    mu, var = x.mean(axis=0), x.var(axis=0)
    np.testing.assert_allclose(r.numpy(), gamma * (x - mu) / np.sqrt(var + 1e-5) + beta,
                               rtol=1e-12)
