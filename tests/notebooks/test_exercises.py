"""The notebooks' exercises (notebooks/_exercises.py): every checker passes on the reference
answer, fails on a wrong one, and reports an open exercise as not attempted; every notebook has
at least two exercises, each with a checker cell.

The notebooks themselves run with WA_SOLUTIONS=1 in tests/notebooks/test_notebooks.py, where each
checker cell checks the reference answer (and raises if it does not pass)."""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("_exercises", REPO / "notebooks" / "_exercises.py")
ex = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ex)


def _flip_free_grad(g, w, padding):           # forgets to flip the kernel
    k = w.shape[2]
    w_t = np.ascontiguousarray(w.transpose(1, 0, 2, 3))
    return ex.F.conv2d(ex.mg.tensor(g), ex.mg.tensor(w_t), padding=k - 1 - padding).numpy()


def _centred_backward(G, w, gamma, alpha=0.5, eps=1e-5):   # the centred WA's backward
    d = w - w.mean(axis=1, keepdims=True)
    rho = np.sqrt(alpha * w.shape[1] * (d * d).mean(axis=1, keepdims=True) + eps)
    h = gamma[:, None] * G
    u = d / rho
    return (h - h.mean(axis=1, keepdims=True) - alpha * u * (h * u).sum(axis=1, keepdims=True)) / rho


WRONG = {   # a plausible mistake for each exercise
    "im2col_shape": lambda N, C, H, W, k, stride=1, padding=0, dilation=1:
        (N * ((H + 2 * padding - k) // stride + 1) * ((W + 2 * padding - k) // stride + 1), k * k * C),
    "conv_input_grad": _flip_free_grad,
    "relu_var_fraction": 0.5,
    "centred_variance_ratio": lambda alpha: 1 / (2 * alpha),            # eq. (8) without centring
    "wa_backward": ex.wa_backward_nocenter,                             # forgets the mean's path
    "wa_backward_nocenter": _centred_backward,
    "zero_grad_update_ratio": lambda lr, momentum, weight_decay: lr * weight_decay,   # no momentum
    "wa_layer7_variance": 1.0,                                           # eq. (9)'s promise
    "gn_drift_ratio": 2.0,                                               # proportional to g
    "frozen_at_start": lambda layer: layer.endswith("conv2"),             # only the closing convs
    "se_of_difference": lambda p1, p2, n: np.sqrt(p1 * (1 - p1) / n),    # one error only
}


def _forgets_v_path(G, w, gamma, alpha=0.5, eps=1e-5):    # treats rho as a constant
    d = w - w.mean(axis=1, keepdims=True)
    rho = np.sqrt(alpha * w.shape[1] * (d * d).mean(axis=1, keepdims=True) + eps)
    h = gamma[:, None] * G
    return (h - h.mean(axis=1, keepdims=True)) / rho


NEAR_MISSES = {   # wrong answers close to the right one: each checker rejects them
    "wa_backward": [_forgets_v_path, lambda G, w, gamma, alpha=0.5, eps=1e-5:   # eps left out
                    ex.wa_backward(G, w, gamma, alpha, 0.0) * (1 + 1e-6)],
    "zero_grad_update_ratio": [lambda lr, momentum, weight_decay:            # momentum buf not summed
                               lr * weight_decay * momentum / (1 - momentum) if momentum else 0.0],
    "frozen_at_start": [lambda layer: layer != "conv1",                  # the shortcuts too
                        lambda layer: layer.startswith("layers."),           # the same, by stage
                        lambda layer: ".conv" in layer and not layer.startswith("layers.0.0"),
                        lambda layer: False],                                # nothing frozen
    "wa_layer7_variance": [(1 - 1 / np.pi) ** 7, 0.5 ** 6],               # one layer too many; halving
    "gn_drift_ratio": [1.0, np.sqrt(4 / 2) * 1.2],
    "relu_var_fraction": [2 / 3, 0.69],
    "centred_variance_ratio": [lambda alpha: 1 / (3 * alpha),             # 1/3 for 1/2 - 1/(2 pi)
                               lambda alpha: (1 - 1 / np.pi) / (2 * alpha) * 1.01],
}


@pytest.fixture(autouse=True)
def _reader_mode(monkeypatch):
    monkeypatch.setattr(ex, "SOLUTIONS", False)


def test_every_exercise_has_a_reference_and_a_wrong_answer():
    assert set(ex.EXERCISES) == set(ex.REFERENCE) == set(WRONG)


@pytest.mark.parametrize("name", sorted(ex.EXERCISES))
def test_checker_passes_on_the_reference(name, capsys):
    assert ex.check(name, ex.REFERENCE[name]) is True
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(ex.EXERCISES))
def test_checker_fails_on_a_wrong_answer(name, capsys, monkeypatch):
    assert ex.check(name, WRONG[name]) is False
    out = capsys.readouterr().out
    assert "not yet" in out and "Where to look" in out, out
    monkeypatch.setattr(ex, "SOLUTIONS", True)             # the test run's mode: a failure raises
    with pytest.raises(AssertionError, match=name):
        ex.check(name, WRONG[name])


@pytest.mark.parametrize("name", sorted(ex.EXERCISES))
def test_an_open_exercise_is_not_attempted(name, capsys):
    def still_open(*args, **kwargs):
        raise NotImplementedError

    assert ex.check(name, None) is None
    assert ex.check(name, still_open) is None
    assert capsys.readouterr().out.count("not attempted yet") == 2


def test_answer_switches_to_the_reference(monkeypatch):
    assert ex.answer("relu_var_fraction", None) is None
    monkeypatch.setattr(ex, "SOLUTIONS", True)
    assert ex.answer("relu_var_fraction", None) == ex.REFERENCE["relu_var_fraction"]
    with pytest.raises(KeyError):
        ex.answer("no_such_exercise", None)


NOTEBOOK_SOURCES = sorted((REPO / "notebooks").glob("0*.py"))


@pytest.mark.parametrize("path", NOTEBOOK_SOURCES, ids=[p.stem for p in NOTEBOOK_SOURCES])
def test_every_notebook_has_two_open_exercises_with_checkers(path):
    text = path.read_text()
    answered = re.findall(r'ex\.answer\("(\w+)"', text)
    checked = re.findall(r'ex\.check\("(\w+)"', text)
    assert len(set(answered)) >= 2, f"{path.name}: fewer than two exercises"
    assert set(answered) == set(checked) and set(answered) <= set(ex.EXERCISES), (answered, checked)
    assert text.count("# YOUR CODE") >= len(set(answered))


def test_every_exercise_is_used():
    used = {n for p in NOTEBOOK_SOURCES for n in re.findall(r'ex\.check\("(\w+)"', p.read_text())}
    assert used == set(ex.EXERCISES)


@pytest.mark.parametrize("name,wrong", [(n, w) for n, ws in NEAR_MISSES.items() for w in ws])
def test_checker_rejects_a_near_miss(name, wrong):
    assert ex.check(name, wrong, quiet=True) is False
