"""wa-activations and wa-sweep on tiny settings: they run, write their files, and say sensible
things."""
import csv
import os
import signal

import numpy as np
import pytest

import wa.activations as A
import wa.sweep as S
import wa.train as T

TINY_RUN = ["--dataset", "synthetic", "--limit-train", "32", "--limit-test", "32",
            "--batch-size", "16", "--epochs", "1"]


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


# ---------------------------------------------------------------------------------------
# wa-activations
# ---------------------------------------------------------------------------------------
def test_activations_at_init_writes_png_csv_and_table(tmp_path, capsys):
    png = tmp_path / "figs" / "act.png"
    assert A.main(["--norms", "none,bn,wa,gn+wa", "--width", "0.125", "--batch", "16",
                   "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "conv7" in out and "classifier" in out and "gn+wa" in out
    assert (tmp_path / "figs" / "act.csv").is_file()
    assert png.is_file() == _has_matplotlib()
    with open(tmp_path / "figs" / "act.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 4                                        # specs x layers


def test_activation_statistics_show_what_the_paper_shows():
    res = A.at_init(["none", "bn", "gn+wa", "wa"], batch=16, width=0.125, channels=8)
    stats = {s: {l: A.summarize(v) for l, v in layers.items()} for s, layers in res.items()}
    for spec in ("bn", "gn+wa"):                  # normalized activations: centred, unit scale
        for layer in (1, 3, 7):
            assert abs(stats[spec][layer]["mean_of_means"]) < 1e-3
            assert stats[spec][layer]["mean_of_stds"] == pytest.approx(1, abs=1e-2)
    # Without normalization, channel means at layer 7 drift apart far more than with WA,
    # whose zero-mean filters keep every channel centred (eqs. (4), (6)).
    assert stats["none"][7]["std_of_means"] > 5 * stats["wa"][7]["std_of_means"]
    assert res["none"][8].shape == (8, 16)                           # 8 of 10 classes, 16 samples


def test_activations_of_a_trained_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert T.main(TINY_RUN + ["--model", "plain8", "--width", "0.0625", "--norm", "wa",
                              "--out", str(run)]) == 0
    png = tmp_path / "trained.png"
    assert A.main(["--checkpoint", str(run), "--batch", "8", "--out", str(png)]) == 0
    assert "trained plain8" in capsys.readouterr().out
    with open(tmp_path / "trained.csv") as f:
        assert {r["spec"] for r in csv.DictReader(f)} == {"wa"}


def test_activations_usage_errors(tmp_path, capsys):
    run = tmp_path / "run"
    assert T.main(TINY_RUN + ["--model", "resnet20", "--width", "0.125", "--out", str(run)]) == 0
    capsys.readouterr()
    for argv, reason in ((["--norms", "bn,xx"], "invalid norm spec"),
                         (["--checkpoint", str(tmp_path / "nothing")], "no checkpoint.npz"),
                         (["--checkpoint", str(run)], "plain8 only"),
                         (["--batch", "1", "--norms", "bn"], "more than one sample")):
        with pytest.raises(SystemExit) as e:
            A.main(argv + ["--out", str(tmp_path / "x.png")])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and err[-1].startswith("wa-activations: error:") and reason in err[-1]


# ---------------------------------------------------------------------------------------
# wa-sweep
# ---------------------------------------------------------------------------------------
SWEEP = ["--norms", "bn,gn+wa", "--batch-sizes", "16,1", "--model", "plain8", "--width", "0.0625",
         "--dataset", "synthetic", "--limit-train", "16", "--limit-test", "16", "--epochs", "2"]


def read_results(out):
    with open(os.path.join(out, "results.csv")) as f:
        return list(csv.DictReader(f))


def test_sweep_writes_csv_png_table_and_skips_undefined(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert S.main(SWEEP + ["--out", str(out)]) == 0
    rows = read_results(out)
    assert [(r["norm"], r["batch_size"]) for r in rows] == [("bn", "16"), ("bn", "1"),
                                                             ("gn+wa", "16"), ("gn+wa", "1")]
    status = {(r["norm"], r["batch_size"]): r["status"] for r in rows}
    assert status[("bn", "1")].startswith("n/a") and status[("gn+wa", "1")] == "done"
    for r in rows:
        if r["status"] == "done":
            assert 0 <= float(r["test_error"]) <= 1 and r["epochs_done"] == "2"
    assert (out / "results.png").is_file() == _has_matplotlib()
    table = capsys.readouterr().out
    assert "test error %" in table and "n/a" in table


def test_sweep_resumes_after_an_interruption(tmp_path, monkeypatch, capsys):
    ref = tmp_path / "ref"
    assert S.main(SWEEP + ["--out", str(ref)]) == 0
    out = tmp_path / "sweep"
    original, steps = T.Trainer.train_step, []

    def ctrl_c_during_the_third_run(self, x, y):
        steps.append(1)
        # The first call below trains bn-b16 and gn+wa-b16 (2 steps each); the second one
        # skips them and is interrupted at the 15th of gn+wa-b1's 32 steps.
        if len(steps) == 4 + 15:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, x, y)
    with monkeypatch.context() as m:
        m.setattr(T.Trainer, "train_step", ctrl_c_during_the_third_run)
        S.main(SWEEP + ["--norms", "bn,gn+wa", "--batch-sizes", "16", "--out", str(out)])
        assert S.main(SWEEP + ["--out", str(out)]) == 130
    first = os.path.getmtime(out / "runs" / "bn-b16" / "checkpoint.npz")
    assert S.main(SWEEP + ["--out", str(out)]) == 0                   # resume
    assert os.path.getmtime(out / "runs" / "bn-b16" / "checkpoint.npz") == first   # not retrained
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in rows]
    assert strip(read_results(out)) == strip(read_results(ref))


def test_sweep_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        S.main(["--norms", "qq", "--out", str(tmp_path)])
    assert e.value.code == 2 and "invalid norm spec" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# Both command lines on 'cuda' (a GPU, or the strict CuPy stand-in): the cpu numbers
# ---------------------------------------------------------------------------------------
def test_activations_on_cuda_match_cpu():
    on = {d: A.at_init(["bn", "gn+wa"], batch=8, width=0.0625, channels=4, device=d)
          for d in ("cpu", "cuda")}
    for spec in on["cpu"]:
        for layer, a in on["cpu"][spec].items():
            b = on["cuda"][spec][layer]
            assert type(b) is np.ndarray                      # results come back to the host
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=f"{spec} layer {layer}")


def test_activations_and_sweep_command_lines_on_cuda(tmp_path, capsys):
    run = tmp_path / "run"
    assert T.main(TINY_RUN + ["--model", "plain8", "--width", "0.0625", "--norm", "wa",
                              "--device", "cuda", "--out", str(run)]) == 0
    assert A.main(["--checkpoint", str(run), "--batch", "8", "--device", "cuda",
                   "--out", str(tmp_path / "trained.png")]) == 0
    assert A.main(["--norms", "wa", "--width", "0.0625", "--batch", "8", "--device", "cuda",
                   "--out", str(tmp_path / "init.png")]) == 0
    sweep = ["--norms", "gn+wa", "--batch-sizes", "8", "--model", "plain8", "--width", "0.0625",
             "--dataset", "synthetic", "--limit-train", "16", "--limit-test", "16", "--epochs", "1"]
    assert S.main(sweep + ["--device", "cuda", "--out", str(tmp_path / "gpu")]) == 0
    assert S.main(sweep + ["--out", str(tmp_path / "cpu")]) == 0
    gpu, cpu = read_results(tmp_path / "gpu"), read_results(tmp_path / "cpu")
    assert [r["status"] for r in gpu] == ["done"]
    assert float(gpu[0]["test_error"]) == pytest.approx(float(cpu[0]["test_error"]), abs=1e-6)
