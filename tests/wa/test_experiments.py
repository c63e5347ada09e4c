"""wa-activations and wa-sweep on tiny settings: they run, write their files, and say sensible
things."""
import csv
import json
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


def test_activations_of_wa_variants_and_group_rule(tmp_path, capsys):
    png = tmp_path / "v.png"
    assert A.main(["--norms", "wa,wa[center],wa[scale,alpha=2],gn+wa[alpha=0.25]", "--width",
                   "0.125", "--batch", "8", "--gn-groups", "2", "--out", str(png)]) == 0
    with open(tmp_path / "v.csv") as f:
        specs = [r["spec"] for r in csv.DictReader(f)]
    assert sorted(set(specs)) == ["gn+wa[alpha=0.25]", "wa", "wa[center]", "wa[scale,alpha=2]"]
    res = A.at_init(["wa", "wa[center]", "wa[alpha=2]"], batch=8, width=0.125)
    s = {k: A.summarize(v[7]) for k, v in res.items()}
    # Fig. 6: the factor 2n in place of n/2 shrinks the activations layer by layer
    assert s["wa[alpha=2]"]["mean_of_stds"] < 0.05 * s["wa"]["mean_of_stds"]
    # centring only keeps the raw He-init scale, which eq. (10) also aims at: same order
    assert 0.1 < s["wa[center]"]["mean_of_stds"] / s["wa"]["mean_of_stds"] < 10
    with pytest.raises(SystemExit) as e:
        A.main(["--norms", "ws", "--out", str(png)])
    assert e.value.code == 2 and "WS needs an activation norm" in capsys.readouterr().err


def test_activations_group_rule_reaches_the_model(monkeypatch):
    seen = []
    real = A.models.build

    def spy(*args, **kwargs):
        m = real(*args, **kwargs)
        seen.append(sorted({g.num_groups for g in m.modules() if hasattr(g, "num_groups")}))
        return m
    monkeypatch.setattr(A.models, "build", spy)
    A.at_init(["gn"], batch=4, width=0.25)                                  # 16 channels
    A.at_init(["gn"], batch=4, width=0.25, gn_min_channels=4)
    A.at_init(["bcn"], batch=4, width=0.25, gn_groups=2)
    assert seen == [[16], [4], [2]]


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
    assert "plain8: error %" in table and "n/a" in table and "one seed per cell" in table
    assert {r["seed"] for r in rows} == {"0"} and {r["model"] for r in rows} == {"plain8"}


def test_sweep_over_seeds_gives_mean_and_standard_error(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = SWEEP + ["--norms", "gn+wa,wa[center],bn", "--batch-sizes", "16", "--epochs", "1",
                    "--seeds", "0,1,2", "--out", str(out)]
    assert S.main(argv) == 0
    rows = read_results(out)
    assert [(r["norm"], r["seed"]) for r in rows] == [(n, s) for n in ("gn+wa", "wa[center]", "bn")
                                                      for s in ("0", "1", "2")]
    assert len({r["run_dir"] for r in rows}) == 9
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [s["norm"] for s in summary] == ["gn+wa", "wa[center]", "bn"]
    for s in summary:
        errs = [float(r["test_error"]) for r in rows if r["norm"] == s["norm"]]
        assert s["runs"] == "3" and s["seeds"] == "0 1 2"
        assert float(s["test_error_mean"]) == pytest.approx(np.mean(errs))
        assert float(s["test_error_se"]) == pytest.approx(np.std(errs, ddof=1) / np.sqrt(3))
    table = capsys.readouterr().out
    assert "+-" in table and "standard error" in table
    # the seeds give different runs (different initialisation and shuffling)
    losses = {r["train_loss"] for r in rows if r["norm"] == "gn+wa"}
    assert len(losses) == 3
    # the same command again trains nothing and reports the same numbers
    before = {r["run_dir"]: os.path.getmtime(os.path.join(r["run_dir"], "checkpoint.npz"))
              for r in rows}
    assert S.main(argv) == 0
    assert {d: os.path.getmtime(os.path.join(d, "checkpoint.npz")) for d in before} == before
    with open(out / "summary.csv") as f:
        assert list(csv.DictReader(f)) == summary


def test_sweep_marks_differences_within_the_noise():
    cell = lambda norm, m, se: {"model": "m", "norm": norm, "batch_size": 8, "runs": 3,
                                "test_error_mean": m, "test_error_se": se}
    summary = [cell("a", 0.30, 0.01), cell("b", 0.32, 0.01), cell("c", 0.40, 0.01)]
    assert S.marks(summary) == {("m", "a", 8): "*", ("m", "b", 8): "~", ("m", "c", 8): ""}
    assert S.mean_se([1.0, 2.0, 3.0]) == (2.0, pytest.approx(1 / np.sqrt(3)))
    assert S.mean_se([1.0]) == (1.0, None) and S.mean_se([]) == (None, None)


def test_sweep_over_models_and_group_rule(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert S.main(["--norms", "gn+wa", "--batch-sizes", "8", "--model", "plain8,resnet20",
                   "--width", "0.125", "--dataset", "synthetic", "--limit-train", "16",
                   "--limit-test", "16", "--epochs", "1", "--gn-min-channels", "4",
                   "--out", str(out)]) == 0
    rows = read_results(out)
    assert [r["model"] for r in rows] == ["plain8", "resnet20"]
    for r in rows:
        with open(os.path.join(r["run_dir"], "config.json")) as f:
            assert json.load(f)["settings"]["gn_min_channels"] == 4
    table = capsys.readouterr().out
    assert "plain8: error %" in table and "resnet20: error %" in table


def test_sweep_resumes_a_folder_from_before_seeds(tmp_path):
    """Runs in the old layout OUT/runs/<norm>-b<bs> are found, not retrained."""
    out = tmp_path / "sweep"
    argv = SWEEP + ["--norms", "gn+wa", "--batch-sizes", "16", "--out", str(out)]
    assert S.main(argv) == 0
    (out / "runs" / "plain8-gn+wa-b16-s0").rename(out / "runs" / "gn+wa-b16")
    stamp = os.path.getmtime(out / "runs" / "gn+wa-b16" / "checkpoint.npz")
    assert S.main(argv) == 0
    assert os.path.getmtime(out / "runs" / "gn+wa-b16" / "checkpoint.npz") == stamp
    assert read_results(out)[0]["run_dir"].endswith("gn+wa-b16")


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
    first = os.path.getmtime(out / "runs" / "plain8-bn-b16-s0" / "checkpoint.npz")
    assert S.main(SWEEP + ["--out", str(out)]) == 0                   # resume
    assert os.path.getmtime(out / "runs" / "plain8-bn-b16-s0" / "checkpoint.npz") == first  # kept
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in rows]
    assert strip(read_results(out)) == strip(read_results(ref))


@pytest.mark.parametrize("argv, reason", [
    (["--norms", "qq"], "invalid norm spec"),
    (["--norms", "ws"], "WS needs an activation norm after it"),
    (["--model", "plain8,resnet19"], "unknown --model resnet19"),
    (["--seeds", "0,0"], "each seed once"),
    (["--seeds", "a"], "comma-separated list"),
    (["--gn-groups", "0"], "must be positive"),
])
def test_sweep_usage_errors(tmp_path, capsys, argv, reason):
    with pytest.raises(SystemExit) as e:
        S.main(argv + ["--out", str(tmp_path)])
    assert e.value.code == 2 and reason in capsys.readouterr().err


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
            # float32, and the CPU convolves thin layers by conv2d's row path where the GPU
            # uses im2col: the sums run in another order, so rounding differs (~1e-5 relative)
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=f"{spec} layer {layer}")


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
