"""torch_reference.reference: live answer, stored answer, and the failures that keep them honest.

A stand-in for the torch module (a version string and a Tensor class) lets every branch run
without PyTorch; the golden files go to a temporary folder.
"""
import types

import numpy as np
import pytest

import torch_reference
from torch_reference import reference


class _FakeTensor:
    def __init__(self, a):
        self.a = np.asarray(a)

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a


FAKE_TORCH = types.SimpleNamespace(__version__="9.9-fake", Tensor=_FakeTensor)


def _double(torch, x):
    return {"y": torch.Tensor(2 * x), "name": "doubled"}


@pytest.fixture
def golden(tmp_path, monkeypatch):
    """Golden files in tmp_path; golden(torch_or_None, write=False) sets what reference sees."""
    monkeypatch.setattr(torch_reference, "GOLDEN_DIR", tmp_path)
    monkeypatch.setattr(torch_reference, "_written", set())

    def use(torch, write=False):
        monkeypatch.setattr(torch_reference, "_torch", lambda: torch)
        if write:
            monkeypatch.setenv("MINIGRAD_WRITE_GOLDEN", "1")
        else:
            monkeypatch.delenv("MINIGRAD_WRITE_GOLDEN", raising=False)
    return use


X = np.arange(6.0).reshape(2, 3)


def test_write_then_read_without_torch(golden, tmp_path):
    golden(FAKE_TORCH, write=True)
    live = reference("case/a", {"x": X}, _double)
    assert (tmp_path / "case" / "a.npz").exists()
    golden(None)
    stored = reference("case/a", {"x": X}, _double)
    assert stored["y"].dtype == np.float64
    np.testing.assert_array_equal(stored["y"], 2 * X)
    np.testing.assert_array_equal(live["y"], stored["y"])
    assert str(stored["name"]) == "doubled"


def test_rewriting_gives_the_same_bytes(golden, tmp_path, monkeypatch):
    golden(FAKE_TORCH, write=True)
    reference("a", {"x": X}, _double)
    first = (tmp_path / "a.npz").read_bytes()
    monkeypatch.setattr(torch_reference, "_written", set())
    reference("a", {"x": X}, _double)
    assert (tmp_path / "a.npz").read_bytes() == first


def test_missing_golden_file_fails_and_says_how_to_regenerate(golden):
    for torch in (None, FAKE_TORCH):      # with torch too: CI would lack the file
        golden(torch)
        with pytest.raises(pytest.fail.Exception,
                           match=r"golden file .*nothing\.npz is missing.*make_golden\.py"):
            reference("nothing", {"x": X}, _double)


def test_other_inputs_than_the_stored_ones_fail(golden):
    golden(FAKE_TORCH, write=True)
    reference("a", {"x": X}, _double)
    golden(None)
    changed = X.copy()
    changed[1, 2] += 1e-15
    for inputs, problem in [({"x": changed}, "input 'x'"), ({"x": X.astype(np.float32)}, "input 'x'"),
                            ({"x": X[:1]}, "input 'x'"), ({"z": X}, "passes inputs")]:
        with pytest.raises(pytest.fail.Exception, match=f"{problem}.*regenerate"):
            reference("a", inputs, _double)


def test_live_answer_that_differs_from_the_stored_one_fails(golden):
    golden(FAKE_TORCH, write=True)
    reference("a", {"x": X}, _double)
    golden(FAKE_TORCH)
    assert reference("a", {"x": X}, _double)["y"][1, 2] == 10.0     # the same: live answer
    off = lambda torch, x: {"y": torch.Tensor(2 * x * (1 + 1e-10)), "name": "doubled"}  # noqa: E731
    with pytest.raises(pytest.fail.Exception, match="'y' differs.*9.9-fake now.*regenerate"):
        reference("a", {"x": X}, off)
    renamed = lambda torch, x: {"y": torch.Tensor(2 * x), "name": "twice"}  # noqa: E731
    with pytest.raises(pytest.fail.Exception, match="'name' differs"):
        reference("a", {"x": X}, renamed)
    fewer = lambda torch, x: {"y": torch.Tensor(2 * x)}  # noqa: E731
    with pytest.raises(pytest.fail.Exception, match="PyTorch answers"):
        reference("a", {"x": X}, fewer)


def test_last_bit_differences_of_a_live_answer_pass(golden):
    golden(FAKE_TORCH, write=True)
    reference("a", {"x": X}, _double)
    golden(FAKE_TORCH)
    near = lambda torch, x: {"y": torch.Tensor(2 * x * (1 + 1e-14)), "name": "doubled"}  # noqa: E731
    reference("a", {"x": X}, near)


def test_the_computation_cannot_change_the_callers_inputs(golden):
    def in_place(torch, x):
        x += 1
        return {"y": torch.Tensor(x)}

    golden(FAKE_TORCH, write=True)
    x = X.copy()
    reference("a", {"x": x}, in_place)
    np.testing.assert_array_equal(x, X)


def test_writing_without_torch_fails(golden):
    golden(None, write=True)
    with pytest.raises(pytest.fail.Exception, match="torch does not import"):
        reference("a", {"x": X}, _double)


def test_golden_only_hides_an_installed_torch(monkeypatch):
    monkeypatch.setenv("MINIGRAD_GOLDEN_ONLY", "1")
    assert torch_reference._torch() is None
