"""The strict CuPy stand-in raises where CuPy raises, and the suite really runs on it."""
import json
import os

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import backend
from minigrad.ops import basic

import cupy_standin as S     # loaded by conftest.py

cp = S.cupy
IMPLICIT = "Implicit conversion to a NumPy array is not allowed"


def test_arrays_are_not_numpy_arrays_and_do_not_convert_implicitly():
    x = cp.arange(6.0).reshape(2, 3)
    assert not isinstance(x, np.ndarray)
    for convert in (np.asarray, np.array, np.asanyarray, lambda a: np.float64(a[0])):
        with pytest.raises(TypeError, match=IMPLICIT):
            convert(x)
    host = x.get()
    assert type(host) is np.ndarray and type(cp.asnumpy(x)) is np.ndarray
    np.testing.assert_array_equal(host, np.arange(6.0).reshape(2, 3))
    host[0, 0] = 7                                        # a copy, not a view of the device array
    assert float(x[0, 0]) == 0.0


@pytest.mark.parametrize("mix", [
    lambda x, h: x + h, lambda x, h: h + x, lambda x, h: x * h, lambda x, h: h @ x.T,
    lambda x, h: cp.maximum(x, h), lambda x, h: np.maximum(h, x), lambda x, h: cp.concatenate([x, h]),
    lambda x, h: np.concatenate([x, h]), lambda x, h: cp.where(x > 0, h, x), lambda x, h: x.dot(h.T),
], ids=["add", "radd", "mul", "rmatmul", "cp.maximum", "np.maximum", "cp.concatenate",
        "np.concatenate", "where", "dot"])
def test_numpy_arrays_do_not_mix_in(mix):
    x, h = cp.ones((2, 3)), np.ones((2, 3))
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        mix(x, h)


def test_scalars_host_indices_and_explicit_copies_are_fine():
    x = cp.arange(6.0).reshape(2, 3)
    y = x * 2.0 + np.float32(1.0) - np.array(0.5)          # Python, NumPy and 0-d scalars
    assert isinstance(y, cp.ndarray) and float(y[1, 2]) == 10.5
    assert isinstance(x.sum(), cp.ndarray) and x.sum().ndim == 0   # reductions give 0-d arrays
    np.testing.assert_array_equal(x[np.array([1, 0])].get(), [[3, 4, 5], [0, 1, 2]])
    z = cp.asarray(np.ones(3))                              # host -> device: a copy
    z[...] = cp.asarray(np.arange(3.0))
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        z[...] = np.arange(3.0)
    t = cp.zeros(3)
    S.cupyx.scatter_add(t, cp.asarray(np.array([0, 0, 2])), 1.0)
    np.testing.assert_array_equal(t.get(), [2, 0, 1])


def test_only_names_of_the_real_cupy_exist():
    names = json.load(open(os.path.join(os.path.dirname(__file__), "cupy_names.json")))
    assert names["cupy_version"] == S.CUPY_VERSION and "date" in names
    assert "asnumpy" in names["cupy"] and "add" in names["cupy"] and "scatter_add" in names["cupyx"]
    for absent in ("asmatrix", "insert", "errstate", "nditer"):   # NumPy has them, CuPy does not
        assert hasattr(np, absent)
        with pytest.raises(AttributeError):
            getattr(cp, absent)
    with pytest.raises(AttributeError):
        cp.ones(2).itemset                                   # not a cupy.ndarray method
    with pytest.raises(AttributeError):
        cp.random.default_rng(0).normal                      # CuPy's Generator has no normal()
    assert cp.cuda.runtime.getDeviceCount() == 1
    assert cp.get_array_module(cp.ones(1)) is cp and cp.get_array_module(np.ones(1)) is np
    assert S.is_standin(cp) and not S.is_standin(np)


def test_the_suite_runs_cuda_on_the_standin_or_a_gpu():
    assert mg.is_available("cuda")
    x = mg.tensor(np.ones(3), device="cuda")
    assert isinstance(x.data, backend.cupy.ndarray) and backend.get_array_module(x.data) is backend.cupy


def test_a_planted_host_conversion_in_an_op_fails_on_cuda(monkeypatch):
    """The kind of bug the stand-in is for: an op that quietly goes through NumPy."""
    def forward_via_numpy(self, x):
        self.y = self.xp.exp(x)
        return np.asarray(self.y)                            # the planted mistake
    monkeypatch.setattr(basic.Exp, "forward", forward_via_numpy)
    F.exp(mg.tensor(np.ones(3)))                             # on the CPU nothing shows
    with pytest.raises(TypeError, match=IMPLICIT):
        F.exp(mg.tensor(np.ones(3), device="cuda"))
