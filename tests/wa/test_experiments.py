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
    A.at_init(["gn"], batch=4, width=0.25)                    # 16 channels: 8 groups of 2
    A.at_init(["gn"], batch=4, width=0.25, gn_min_channels=4)
    A.at_init(["bcn"], batch=4, width=0.25, gn_groups=2)
    assert seen == [[8], [4], [2]]


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
    (["--model", "plain8,resnet19"], "unknown --model 'resnet19'"),
    (["--seeds", "0,0"], "each seed once"),
    (["--seeds", "a"], "comma-separated list"),
    (["--gn-groups", "0"], "must be positive"),
    (["--norms", "bn,gnwa"], "--norms gnwa (did you mean 'gn+wa'?)"),
    (["--model", "resnet-20"], "(did you mean 'resnet20'?)"),
    (["--seeds", "0,-1"], "must be >= 0"),
    (["--width", "0"], "must be positive"),
    (["--schedule", "cosin"], "invalid choice"),
    (["--dataset", "cifar10sample"], "invalid choice"),
    (["--batch-sizes", "64,0"], "must be positive"),
    # checked for every cell before the first run: wa-train's own rules
    (SWEEP + ["--momentum", "0", "--nesterov"], "--nesterov needs momentum"),
])
def test_sweep_usage_errors(tmp_path, capsys, argv, reason):
    with pytest.raises(SystemExit) as e:
        S.main(argv + ["--out", str(tmp_path / "sweep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and reason in err[0], err
    assert err[0].startswith("wa-sweep: error:") and not (tmp_path / "sweep").exists()


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


# ---------------------------------------------------------------------------------------
# wa-sweep: the same runs as wa-train, and no stale results
# ---------------------------------------------------------------------------------------
ONE_CELL = ["--norms", "gn+wa", "--batch-sizes", "16", "--model", "plain8", "--width", "0.0625",
            "--dataset", "synthetic", "--limit-train", "32", "--limit-test", "16", "--epochs", "2"]


def _metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "images_per_s")}
                for line in f]


def test_a_sweep_cell_trains_exactly_as_wa_train_with_the_same_flags(tmp_path):
    flags = ["--momentum", "0.8", "--weight-decay", "1e-3", "--no-augment", "--recipe", "paper"]
    assert S.main(ONE_CELL + flags + ["--out", str(tmp_path / "sweep")]) == 0
    run = tmp_path / "run"
    assert T.main(["--norm", "gn+wa", "--batch-size", "16", "--model", "plain8", "--width", "0.0625",
                   "--dataset", "synthetic", "--limit-train", "32", "--limit-test", "16",
                   "--epochs", "2", *flags, "--out", str(run)]) == 0
    cell = read_results(tmp_path / "sweep")[0]["run_dir"]
    assert _metrics(cell) == _metrics(run)
    with open(os.path.join(cell, "config.json")) as f:
        s_cell = json.load(f)["settings"]
    with open(run / "config.json") as f:
        s_run = json.load(f)["settings"]
    assert {k: v for k, v in s_cell.items() if k != "out"} == {k: v for k, v in s_run.items() if k != "out"}


def test_sweep_takes_every_training_flag_of_wa_train():
    sweep = {a.dest: a for a in S.build_parser()._actions}
    for action in T.build_parser()._actions:
        if action.dest in S.PER_CELL | S.NOT_IN_SWEEP:
            continue
        copy = sweep[action.dest]
        same = lambda a: (a.option_strings, a.choices, a.default, getattr(a.type, "__name__", None),
                          a.help)
        assert same(copy) == same(action), action.dest
    for flag in ("recipe", "momentum", "weight_decay", "nesterov", "no_augment", "progress", "threads"):
        assert flag in sweep


@pytest.mark.parametrize("change, flag", [
    (["--width", "0.125"], "--width 0.0625 (asked 0.125)"),
    (["--dataset", "cifar10-sample"], "--dataset synthetic (asked cifar10-sample)"),
    (["--epochs", "1"], "--epochs 2 (asked 1)"),
    (["--epochs", "3"], "--epochs 2 (asked 3)"),
    (["--limit-train", "48"], "--limit-train 32 (asked 48)"),
    (["--schedule", "cosine"], "--schedule onecycle (asked cosine)"),
    (["--recipe", "paper"], "(asked paper)"),
])
def test_sweep_refuses_saved_runs_with_other_settings_before_training(tmp_path, capsys, change, flag):
    out = tmp_path / "sweep"
    assert S.main(ONE_CELL + ["--out", str(out)]) == 0
    run = out / "runs" / "plain8-gn+wa-b16-s0"
    stamps = {f: os.path.getmtime(run / f) for f in os.listdir(run)}
    results = (out / "results.csv").read_text()
    capsys.readouterr()
    argv = [a for a in ONE_CELL]
    for i in range(0, len(change), 2):          # replace the flag's value, or add it
        if change[i] in argv:
            argv[argv.index(change[i]) + 1] = change[i + 1]
        else:
            argv += change[i:i + 2]
    with pytest.raises(SystemExit) as e:
        S.main(argv + ["--out", str(out)])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and flag in err[0] and str(run) in err[0], err
    assert "wa-sweep: " not in captured.out and "===" not in captured.out      # nothing started
    assert {f: os.path.getmtime(run / f) for f in os.listdir(run)} == stamps
    assert (out / "results.csv").read_text() == results


def test_sweep_without_limits_refuses_runs_made_with_them(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert S.main(ONE_CELL + ["--out", str(out)]) == 0
    argv = [a for a in ONE_CELL]
    del argv[argv.index("--limit-test"):argv.index("--limit-test") + 2]
    with pytest.raises(SystemExit):
        S.main(argv + ["--out", str(out)])
    assert "--limit-test 16 (asked None)" in capsys.readouterr().err


def test_default_sweep_folder_names_the_settings_that_change_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert S.main(ONE_CELL) == 0
    assert S.main([a if a != "0.0625" else "0.125" for a in ONE_CELL] + ["--schedule", "cosine"]) == 0
    assert sorted(os.listdir(tmp_path / "sweeps")) == [
        "synthetic-plain8-w0.0625-e2-limit-train32-limit-test16",
        "synthetic-plain8-w0.125-e2-schedulecosine-limit-train32-limit-test16"]


def test_sweep_prints_a_plan_and_counts_its_runs(tmp_path, capsys, monkeypatch):
    import minigrad as mg
    cleared = []
    monkeypatch.setattr(mg.fast, "clear_pool", lambda: cleared.append(1))
    out = tmp_path / "sweep"
    argv = SWEEP + ["--epochs", "1", "--out", str(out)]
    assert S.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("wa-sweep: 4 runs (1 model x 2 norms x 2 batch "
                                              "sizes x 1 seed), 1 epoch each: 3 to train, 0 finished")
    assert "=== [1/4] plain8 bn at batch 16, seed 0 ===" in printed
    assert "[2/4] plain8 bn at batch 1, seed 0: n/a: BatchNorm needs more than one sample" in printed
    assert "=== [3/4] plain8 gn+wa at batch 16, seed 0, about " in printed      # an estimate
    assert len(cleared) == 3                                            # before every run
    # the title comes from the runs' configs; the n/a reason is under the table
    assert "plain8 on synthetic (16 train / 16 test images), width 0.0625, 1 epoch, short recipe " \
        "(onecycle), 1 seed" in printed
    assert "n/a: BatchNorm needs more than one sample (plain8 bn b1)" in printed
    assert "chance (guessing) is 90.0 % error" in printed
    assert S.main(argv) == 0
    again = capsys.readouterr().out
    assert "0 to train, 3 finished and kept" in again and "[1/4] plain8 bn at batch 16, seed 0: finished, kept" in again


def test_an_all_chance_cell_is_never_the_best():
    cell = lambda norm, m, se: {"model": "m", "norm": norm, "batch_size": 8, "runs": 3,
                                "test_error_mean": m, "test_error_se": se, "status": "done"}
    chance = S.chance_error(10, 128)
    assert chance[0] == pytest.approx(0.9) and chance[1] == pytest.approx(0.9 - 2 * np.sqrt(0.09 / 128))
    summary = [cell("a", 0.90, 0.0), cell("b", 0.91, 0.01)]
    assert S.marks(summary, chance[1]) == {("m", "a", 8): "c", ("m", "b", 8): "c"}
    summary.append(cell("d", 0.70, 0.01))
    assert S.marks(summary, chance[1])[("m", "d", 8)] == ""             # alone above chance
    table = S.format_table(summary, ["m"], ["a", "b", "d"], [8], chance)
    assert "90.00 +-0.00c" in table and "*" not in table.split("\n")[2]


def test_sweep_plot_marks_chance(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    figures = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    summary = [{"model": "m", "norm": "a", "batch_size": 8, "test_error_mean": 0.5,
                "test_error_se": None}]
    S.plot(summary, ["m"], ["a"], [8], str(tmp_path / "r.png"), "t", S.chance_error(10, 100))
    lines = {l.get_label(): l for l in figures[0].axes[0].get_lines()}
    assert lines["chance"].get_ydata()[0] == pytest.approx(90.0)


@pytest.mark.filterwarnings("error")
def test_sweep_with_no_finished_cell_warns_nothing(tmp_path, capsys):
    assert S.main(["--norms", "bn", "--batch-sizes", "1", "--model", "plain8", "--width", "0.0625",
                   "--dataset", "synthetic", "--limit-train", "16", "--limit-test", "16",
                   "--epochs", "1", "--out", str(tmp_path / "s")]) == 0
    assert "n/a" in capsys.readouterr().out


def test_sweep_out_that_is_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(SystemExit) as e:
        S.main(ONE_CELL + ["--out", str(afile / "sweep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "is a file, not a folder" in err[0]


# ---------------------------------------------------------------------------------------
# wa-activations: where it writes, and what its figure says
# ---------------------------------------------------------------------------------------
QUICK = ["--norms", "bn,wa", "--width", "0.0625", "--batch-size", "4", "--channels", "2", "--bins", "8"]


def test_activations_out_as_a_folder_or_without_extension(tmp_path, capsys):
    assert A.main(QUICK + ["--out", str(tmp_path / "newdir") + "/"]) == 0
    assert (tmp_path / "newdir" / "activations.csv").is_file()
    assert (tmp_path / "newdir" / "activations.png").is_file() == _has_matplotlib()
    capsys.readouterr()
    assert A.main(QUICK + ["--out", str(tmp_path / "fig")]) == 0
    printed = capsys.readouterr().out
    if _has_matplotlib():
        assert f"wrote {tmp_path / 'fig.png'} and {tmp_path / 'fig.csv'}" in printed
        assert (tmp_path / "fig.png").is_file()


def test_activations_refuse_an_unwritable_out_before_computing(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setattr(A, "at_init", lambda *a, **k: pytest.fail("computed first"))
    with pytest.raises(SystemExit) as e:
        A.main(QUICK + ["--out", str(afile / "fig.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "is a file, not a folder" in err[0]


def test_activations_norms_do_not_go_with_a_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert T.main(TINY_RUN + ["--model", "plain8", "--width", "0.0625", "--norm", "wa",
                              "--out", str(run)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        A.main(["--checkpoint", str(run), "--norms", "bn", "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "--norms does not go with --checkpoint" in capsys.readouterr().err


@pytest.mark.filterwarnings("error")
def test_activations_at_batch_one_warn_nothing(tmp_path):
    assert A.main(["--norms", "wa", "--width", "0.0625", "--batch-size", "1", "--channels", "2",
                   "--out", str(tmp_path / "a.png")]) == 0


def test_activations_figure_has_a_legend_labels_and_shared_columns(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    figures = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    res = A.at_init(["none", "wa"], batch=4, width=0.0625, channels=2)
    A.plot(res, str(tmp_path / "a.png"), bins=8)
    fig = figures[0]
    axes = np.array(fig.axes).reshape(2, 4)
    for j in range(4):                        # one x range per column, shared by the norms
        assert axes[0, j].get_xlim() == axes[1, j].get_xlim()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["channel 0", "channel 1"]
    assert "activation value" in fig._supxlabel.get_text()


def test_the_three_tools_say_their_version(capsys):
    import wa
    for main, prog in ((T.main, "wa-train"), (S.main, "wa-sweep"), (A.main, "wa-activations")):
        with pytest.raises(SystemExit) as e:
            main(["--version"])
        assert e.value.code == 0 and capsys.readouterr().out.strip() == f"{prog} {wa.__version__}"


def test_activations_suggest_the_closest_norm(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        A.main(["--norm", "bn,gnwa", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert "--norms gnwa (did you mean 'gn+wa'?): invalid norm spec 'gnwa'" in err[0]
    assert "Valid specs" not in err[0]


def test_sweep_plan_estimates_the_time_from_the_runs_already_there(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert S.main(ONE_CELL + ["--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert S.main(ONE_CELL + ["--epochs", "1", "--norms", "gn+wa,bn", "--out", str(out)]) == 0
    plan = capsys.readouterr().out.splitlines()[0]
    assert "1 to train, 1 finished and kept" in plan and "of training, from the runs already here" in plan


def test_sweep_skips_a_cell_another_process_trains(tmp_path, capsys, another_process_holding):
    out = tmp_path / "sweep"
    argv = SWEEP + ["--norms", "gn+wa,wa", "--batch-sizes", "16", "--epochs", "1", "--out", str(out)]
    with another_process_holding(out / "runs" / "plain8-wa-b16-s0") as pid:
        assert S.main(argv) == 0
    status = {r["norm"]: r["status"] for r in read_results(out)}
    assert status == {"gn+wa": "done", "wa": "busy: another process trains it"}
    assert f"in use by another training process (pid {pid})" in capsys.readouterr().out
