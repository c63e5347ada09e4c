"""wa.diagnostics: per-layer statistics while training, checked against direct computation."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from wa.diagnostics import COLUMNS, TrainingDiagnostics
from wa.nn import WAConv2d


def _model():
    mg.manual_seed(0)
    return nn.Sequential(WAConv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_rows_every_n_steps_match_direct_computation(device, rng):
    model = _model().to(device)
    opt = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.0)
    diag = TrainingDiagnostics(model, every=2)
    x = mg.tensor(rng.standard_normal((5, 3, 6, 6)).astype(np.float32), device=device)
    t = mg.tensor(np.array([0, 1, 2, 0, 1]), device=device)
    recorded = []
    for step in range(4):
        diag.begin(step)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), t)
        loss.backward()
        diag.before_update()
        w0 = model[0].weight.numpy().astype(np.float64)
        g0 = model[0].weight.grad
        g0 = mg.backend.as_numpy(g0).astype(np.float64)
        opt.step()
        rows = diag.end()
        if step % 2:
            assert rows == []
            continue
        recorded.append(step)
        assert [r["layer"] for r in rows] == ["0", "2"] and set(rows[0]) == set(COLUMNS)
        first = rows[0]
        with mg.no_grad():
            out = model[0](x).numpy().astype(np.float64)     # the weights have moved: recompute
        assert first["grad_norm"] == pytest.approx(np.linalg.norm(g0), rel=1e-5)
        # plain SGD: the step is lr * grad, so the update ratio is lr ||g|| / ||w||
        assert first["update_ratio"] == pytest.approx(0.1 * np.linalg.norm(g0) / np.linalg.norm(w0),
                                                      rel=1e-4)
        assert first["gamma_mean"] == pytest.approx(model[0].gamma.numpy().mean(), rel=1e-6)
        assert rows[1]["gamma_mean"] is None                 # a plain Conv2d has no gamma
        assert np.isfinite(first["act_std"]) and first["act_std"] > 0
        assert abs(first["act_mean"] - out.mean()) < 0.5 and out.std() > 0
    assert recorded == [0, 2]


def test_activation_statistics_are_the_layers_output(rng):
    model = _model()
    diag = TrainingDiagnostics(model, every=1)
    x = mg.tensor(rng.standard_normal((4, 3, 6, 6)).astype(np.float32))
    diag.begin(0)
    with mg.no_grad():
        out = model[0](x).numpy().astype(np.float64)
        model(x)
    diag.before_update()
    rows = diag.end()
    assert rows[0]["act_mean"] == pytest.approx(out.mean(), abs=1e-6)
    assert rows[0]["act_std"] == pytest.approx(out.std(), rel=1e-6)
    assert rows[0]["grad_norm"] is None                       # no backward ran


def test_remove_takes_the_hooks_off_and_bad_arguments_are_named():
    model = _model()
    diag = TrainingDiagnostics(model, every=1)
    diag.remove()
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="positive number of steps"):
        TrainingDiagnostics(model, every=0)
    with pytest.raises(ValueError, match="no Conv2d"):
        TrainingDiagnostics(nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------
# wa-train --diagnostics-every
# ---------------------------------------------------------------------------------------
TINY = ["--dataset", "synthetic", "--model", "plain8", "--width", "0.0625", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "16", "--norm", "wa", "--epochs", "3",
        "--diagnostics-every", "3", "--progress", "off"]


def _rows(out):
    import json
    with open(out / "diagnostics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_wa_train_writes_diagnostics_and_a_resumed_run_writes_the_same(tmp_path, monkeypatch):
    import os
    import signal

    import wa.train as T
    ref = tmp_path / "ref"
    assert T.main(TINY + ["--out", str(ref)]) == 0
    rows = _rows(ref)
    steps = sorted({r["step"] for r in rows})
    assert steps == [0, 3, 6, 9]                                # 3 epochs x 4 steps, every 3rd
    assert len(rows) == 4 * 7 and {r["layer"] for r in rows} == {f"convs.{i}" for i in range(7)}
    assert all(r["gamma_mean"] is not None and r["update_ratio"] > 0 for r in rows)
    assert [r["epoch"] for r in rows if r["step"] == 9][0] == 3
    # Ctrl-C in epoch 2, then --resume: the same rows as the uninterrupted run
    out, calls = tmp_path / "run", []
    original = T.Trainer.train_step

    def ctrl_c_at_step_7(self, x, y):
        calls.append(1)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, x, y)
    with monkeypatch.context() as m:
        m.setattr(T.Trainer, "train_step", ctrl_c_at_step_7)
        assert T.main(TINY + ["--out", str(out)]) == 130
    assert max(r["step"] for r in _rows(out)) == 6
    assert T.main(["--out", str(out), "--resume", "--progress", "off"]) == 0
    assert _rows(out) == rows
