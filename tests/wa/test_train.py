"""wa-train end to end, on tiny models and a few images: files, resume after kills and Ctrl-C,
divergence, usage errors, data errors.  Nothing is downloaded."""
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
import wa.data as D
import wa.models
import wa.train as T

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--dataset", "synthetic", "--model", "plain8", "--width", "0.0625", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "16", "--norm", "gn+wa"]
TIMING = ("seconds", "images_per_s")


class Killed(Exception):
    """Stands in for SIGKILL: the process stops at that point, nothing after it runs."""


def train(out, *extra, epochs=2):
    return T.main(TINY + ["--epochs", str(epochs), "--out", str(out), *extra])


def metrics(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def final_weights(out):
    return T.load_checkpoint(os.path.join(out, "checkpoint.npz"))["model"]


def assert_same_run(a, b):
    assert without_timing(metrics(a)) == without_timing(metrics(b))
    wa_, wb = final_weights(a), final_weights(b)
    assert wa_.keys() == wb.keys()
    for k in wa_:
        np.testing.assert_array_equal(wa_[k], wb[k], err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted 3-epoch run that the resume tests compare against."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert train(out, epochs=3) == 0
    return out


# ---------------------------------------------------------------------------------------
def test_default_lr_hits_the_papers_two_settings():
    assert T.default_lr(64) == pytest.approx(0.01)
    assert T.default_lr(1) == pytest.approx(0.001)
    assert T.default_lr(1) < T.default_lr(2) < T.default_lr(8) < T.default_lr(64)


def test_short_run_writes_the_run_folder(reference, capsys):
    files = set(os.listdir(reference))
    assert {"config.json", "metrics.jsonl", "checkpoint.npz"} <= files
    if _has_matplotlib():
        assert "curves.png" in files
    cfg = json.load(open(reference / "config.json"))
    s = cfg["settings"]
    assert s["seed"] == 0 and s["momentum"] == 0.9 and s["weight_decay"] == 5e-4
    assert s["recipe"] == "short" and s["schedule"] == "onecycle" and s["nesterov"] is True
    assert s["lr"] == pytest.approx(T.default_lr(16, 0.05)) and s["norm"] == "gn+wa"
    assert cfg["versions"]["weightalign"] and cfg["data"]["train_images"] == 64
    assert cfg["command"] == ["wa-train", *TINY, "--epochs", "3", "--out", str(reference)]
    commit = cfg["versions"]["git_commit"]           # None outside a git checkout
    assert commit is None or len(commit.split("+")[0]) == 40
    rows = metrics(reference)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert set(r) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                          "seconds", "images_per_s"}
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["test_acc"] <= 1
        assert math.isfinite(r["train_loss"]) and r["images_per_s"] > 0
    # one-cycle: the first epoch starts at peak / 25, warms up, then anneals
    assert rows[0]["lr"] == pytest.approx(T.default_lr(16, 0.05) / 25)
    assert rows[1]["lr"] > rows[0]["lr"] and rows[2]["lr"] < rows[1]["lr"]
    state = T.load_checkpoint(str(reference / "checkpoint.npz"))
    assert state["epoch"] == 3 and state["batch"] == 0 and len(state["history"]) == 3


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def test_paper_recipe_and_overrides_are_recorded(tmp_path, capsys):
    cfg, _ = T.parse_config(TINY + ["--recipe", "paper", "--out", str(tmp_path / "a")])
    assert (cfg["lr"], cfg["schedule"], cfg["nesterov"]) == (pytest.approx(T.default_lr(16)),
                                                             "cosine", False)
    assert T.default_lr(64) == pytest.approx(0.01) and T.default_lr(1) == pytest.approx(0.001)
    cfg, _ = T.parse_config(TINY + ["--schedule", "step", "--no-nesterov", "--lr", "0.2",
                                    "--out", str(tmp_path / "b")])
    assert (cfg["recipe"], cfg["lr"], cfg["schedule"], cfg["nesterov"]) == ("short", 0.2, "step",
                                                                            False)
    cfg, _ = T.parse_config(TINY + ["--momentum", "0", "--out", str(tmp_path / "c")])
    assert cfg["nesterov"] is False                     # no momentum, so no Nesterov step
    with pytest.raises(SystemExit) as e:
        T.parse_config(TINY + ["--momentum", "0", "--nesterov", "--out", str(tmp_path / "d")])
    assert e.value.code == 2 and "--nesterov needs momentum" in capsys.readouterr().err


def test_summary_line_per_epoch_and_eval_only(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, epochs=1) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert len(lines) == 1 and "test loss" in lines[0] and "img/s" in lines[0]
    assert T.main(["--out", str(out), "--eval-only"]) == 0
    printed = capsys.readouterr().out
    assert f"test acc {metrics(out)[0]['test_acc']:.4f}" in printed


def test_without_matplotlib_the_plot_is_skipped_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import now fails
    out = tmp_path / "run"
    assert train(out, epochs=1) == 0
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not (out / "curves.png").exists() and (out / "metrics.jsonl").is_file()


def test_killed_after_an_epoch_then_resumed_equals_uninterrupted(reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = []

    def die_after_checkpoint(self, rec):     # epoch 1's checkpoint is on disk, its line is not
        calls.append(rec)
        raise Killed
    with monkeypatch.context() as m:
        m.setattr(T.Trainer, "append_metrics", die_after_checkpoint)
        with pytest.raises(Killed):
            train(out, epochs=3)
    assert len(calls) == 1 and T.load_checkpoint(str(out / "checkpoint.npz"))["epoch"] == 1
    assert T.main(["--out", str(out), "--resume", "--norm", "WA + GN"]) == 0   # same spec
    assert_same_run(reference, out)
    assert json.load(open(out / "config.json"))["resumed"][0]["epoch"] == 1


def train_until_killed_at_step_6(out, monkeypatch, *flags, epochs):
    """Start a run that dies without saving at its 6th step (epoch 2, batch 2: only epoch 1 is
    saved), as a process killed by the system does."""
    original, steps = T.Trainer.train_step, []

    def dies_at_step_6(self, x, y):
        steps.append(1)
        if len(steps) == 6:
            raise Killed
        return original(self, x, y)
    with monkeypatch.context() as m:
        m.setattr(T.Trainer, "train_step", dies_at_step_6)
        with pytest.raises(Killed):
            train(out, *flags, epochs=epochs)


def test_killed_mid_epoch_without_saving_then_resumed(reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_until_killed_at_step_6(out, monkeypatch, epochs=3)
    assert len(metrics(out)) == 1
    assert T.main(["--out", str(out), "--resume"]) == 0
    assert_same_run(reference, out)


def test_ctrl_c_saves_mid_epoch_and_resume_is_exact(reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    original, steps = T.Trainer.train_step, []
    # The handlers found before the run come back after it: Python's default for Ctrl-C, or
    # SIG_IGN when pytest was started as a background job (which inherits SIGINT ignored).
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def ctrl_c_at_step_7(self, x, y):
        steps.append(1)
        if len(steps) == 7:                    # epoch 2, batch 3 of 4
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, x, y)
    with monkeypatch.context() as m:
        m.setattr(T.Trainer, "train_step", ctrl_c_at_step_7)
        assert train(out, epochs=3) == 130
    printed = capsys.readouterr().out
    assert "--resume" in printed and "at epoch 2, after batch 3 of 4" in printed   # 1-based
    state = T.load_checkpoint(str(out / "checkpoint.npz"))
    assert (state["epoch"], state["batch"]) == (1, 3)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert T.main(["--out", str(out), "--resume"]) == 0
    assert f"resumed from {out / 'checkpoint.npz'} at epoch 2, after batch 3 of 4" in capsys.readouterr().out
    assert_same_run(reference, out)


def test_sigterm_from_outside_stops_cleanly_with_a_checkpoint(tmp_path):
    """A real separate process, killed politely as a job scheduler would."""
    import time
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "wa.train", *TINY, "--epochs", "1000",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        log = out / "metrics.jsonl"
        while not (log.is_file() and log.read_text().endswith("\n")) and time.time() < deadline:
            time.sleep(0.05)                  # until the first epoch's line is complete
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "SIGTERM" in stdout and "--resume" in stdout and "Traceback" not in stderr
    state = T.load_checkpoint(str(out / "checkpoint.npz"))
    assert state["epoch"] >= 1 and len(state["history"]) == state["epoch"]


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = T.main(TINY[:-2] + ["--norm", "none", "--lr", "1e30", "--epochs", "2", "--out", str(out)])
    assert code == 1
    msg = capsys.readouterr().out
    assert "diverged" in msg and "--lr" in msg
    state = T.load_checkpoint(str(out / "checkpoint.npz"))
    assert state["epoch"] == 0 and state["batch"] == 0         # the starting point, untouched
    assert metrics(out) == []


def test_learns_the_synthetic_set(tmp_path):
    out = tmp_path / "run"
    assert T.main(["--dataset", "synthetic", "--model", "plain8", "--width", "0.125",
                   "--limit-train", "128", "--limit-test", "64", "--batch-size", "16",
                   "--norm", "bn", "--lr", "0.05", "--epochs", "4", "--no-augment",
                   "--out", str(out)]) == 0
    rows = metrics(out)
    assert rows[-1]["train_loss"] < 0.8 * rows[0]["train_loss"]
    assert rows[-1]["test_acc"] > 0.3                          # chance is 0.1

# ---------------------------------------------------------------------------------------
# Usage errors: exit code 2, one line, no traceback
# ---------------------------------------------------------------------------------------
@pytest.fixture
def tiny_bn_on_1x1(monkeypatch):
    """A model whose BatchNorm sees a 1x1 map, registered as 'pooled_bn'."""
    def build(**kw):
        nn = mg.nn
        norm = nn.BatchNorm2d(3) if "bn" in kw["norm"] else nn.Identity()
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), norm, nn.Flatten(), nn.Linear(3, kw["num_classes"]))
    monkeypatch.setitem(wa.models._MODELS, "pooled_bn", build)


@pytest.mark.parametrize("flags, reason", [
    (["--model", "nope"], "unknown --model 'nope'"),
    (["--norm", "xn"], "invalid norm spec"),
    (["--batch-size", "0"], "must be positive"),
    (["--epochs", "-1"], "must be positive"),
    (["--dataset", "mnist"], "invalid choice"),
    (["--lr", "abc"], "expected a number"),
    (["--batch-size", "100"], "exceeds the 64 training images"),
    (["--model", "pooled_bn", "--norm", "bn", "--batch-size", "1"], "cannot train pooled_bn at --batch-size 1"),
    (["--resume"], "holds no checkpoint"),
    (["--seed", "-1"], "must be >= 0"),
    (["--seed", "4294967296"], "must be below 2**32"),
    (["--norm", "gnwa"], "--norm gnwa (did you mean 'gn+wa'?)"),
    (["--model", "resnet-20"], "unknown --model 'resnet-20' (did you mean 'resnet20'?)"),
    (["--model", "resnet-20"], "resnet18, resnet20, resnet34, resnet50, resnet101"),  # natural order
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, flags, reason, tiny_bn_on_1x1):
    with pytest.raises(SystemExit) as e:
        T.main(TINY + ["--epochs", "1", "--out", str(tmp_path / "r")] + flags)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err                                   # no usage block before it
    assert err[0].startswith("wa-train: error: ") and reason in err[0]
    assert err[0].endswith("(see wa-train --help)")
    assert not (tmp_path / "r").exists()                        # nothing left behind


def test_seed_at_the_top_of_its_range_trains(tmp_path):
    assert train(tmp_path / "r", "--seed", str(2 ** 32 - 1), epochs=1) == 0


def test_model_names_are_case_folded(tmp_path):
    cfg, _ = T.parse_config(TINY + ["--model", "PLAIN8", "--out", str(tmp_path / "r")])
    assert cfg["model"] == "plain8"


def _one_line_error(capsys, *argv, prog="wa-train", main=None):
    with pytest.raises(SystemExit) as e:
        (main or T.main)(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith(f"{prog}: error: "), err
    return err[0]


def test_out_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, reason in ((afile, "is a file, not a folder"), (afile / "run", "is a file, not a folder"),
                        ("/proc/wa-run", "cannot write there")):
        msg = _one_line_error(capsys, *TINY, "--epochs", "1", "--out", str(out))
        assert reason in msg and "choose another --out" in msg
    # a read-only file system (root writes through chmod, so the error is made to happen)
    import errno

    def read_only(path, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", path)
    monkeypatch.setattr(os, "mkdir", read_only)
    msg = _one_line_error(capsys, *TINY, "--epochs", "1", "--out", str(tmp_path / "ro" / "run"))
    assert "cannot write there (read-only file system)" in msg
    assert not (tmp_path / "ro").exists()


def test_version_and_help_show_every_default(capsys):
    import wa
    with pytest.raises(SystemExit) as e:
        T.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"wa-train {wa.__version__}"
    help_text = T.build_parser().format_help()
    flat = " ".join(help_text.split())
    for default in ("[default: resnet20]", "[default: gn+wa]", "[default: cifar10-sample]",
                    "[default: 64]", "[default: 15]", "[default: 1.0]", "[default: 0]",
                    "[default: cpu]", "[default: 0.9]", "[default: 0.0005]"):
        assert default in flat, default
    assert "plain8, resnet18, resnet20" in flat and "synthetic: 2,000 + 500 generated" in flat
    assert "0.05 for --recipe short (the default" in flat            # the epilog's lr is true
    for action in T.build_parser()._actions:                         # every option explains itself
        assert action.help, action.dest


def test_cuda_message_says_which_cause_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(mg.backend, "cupy", None)
    msg = _one_line_error(capsys, *TINY, "--device", "cuda", "--out", str(tmp_path / "r"))
    assert 'CuPy is not installed (pip install -e ".[gpu]")' in msg
    monkeypatch.undo()
    monkeypatch.setattr(mg.backend, "is_available", lambda device="cuda": device == "cpu")
    if mg.backend.cupy is not None:
        msg = _one_line_error(capsys, *TINY, "--device", "cuda", "--out", str(tmp_path / "r"))
        assert "no CUDA device" in msg


def test_batch_one_is_fine_where_the_norm_is_defined(tmp_path, tiny_bn_on_1x1):
    assert T.main(TINY + ["--model", "pooled_bn", "--norm", "gn", "--batch-size", "1",
                          "--limit-train", "4", "--epochs", "1", "--out", str(tmp_path / "r")]) == 0


def test_existing_run_and_conflicting_resume_flags_are_refused(reference, capsys):
    with pytest.raises(SystemExit) as e:
        train(reference, epochs=3)
    assert e.value.code == 2 and "--resume" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        T.main(["--out", str(reference), "--resume", "--batch-size", "8"])
    assert e.value.code == 2 and "differs from the saved run" in capsys.readouterr().err


def test_cuda_without_gpu_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(mg.backend, "cupy", None)        # as on a machine without CuPy
    with pytest.raises(SystemExit) as e:
        train(tmp_path / "r", "--device", "cuda")
    assert e.value.code == 2 and "--device cuda" in capsys.readouterr().err


def test_cuda_run_gives_the_cpu_losses_and_evaluates_on_the_cpu(reference, tmp_path, capsys):
    """Same seed on 'cuda' (a GPU, or the strict CuPy stand-in): the cpu run's numbers to float32
    rounding; its checkpoint holds host arrays, which the CPU reads back."""
    out = tmp_path / "gpu"
    assert train(out, "--device", "cuda", epochs=3) == 0
    on_cuda, on_cpu = metrics(out), metrics(reference)
    assert len(on_cuda) == len(on_cpu) == 3
    for a, b in zip(on_cuda, on_cpu):
        for k in ("train_loss", "test_loss", "train_acc", "test_acc", "lr"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), (k, a, b)
    weights = final_weights(out)
    assert all(type(v) is np.ndarray for v in weights.values())
    capsys.readouterr()
    assert T.main(["--out", str(out), "--eval-only", "--device", "cpu"]) == 0
    assert f"test acc {on_cuda[-1]['test_acc']:.4f}" in capsys.readouterr().out


def test_command_line_entry_point_exits_2_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "wa.train", "--model", "nope", "--out",
                        str(tmp_path / "r")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith("wa-train: error:")


def test_console_scripts_point_at_callables():
    import importlib
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert {"wa-train", "wa-activations", "wa-sweep"} <= set(scripts)
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func))


# ---------------------------------------------------------------------------------------
# Real-format CIFAR folders
# ---------------------------------------------------------------------------------------
def make_cifar_dir(root):
    ds = D.load_dataset("cifar10-sample", limit_train=80, limit_test=40)
    D.write_cifar(str(root), "cifar10", ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.classes)
    return root


def test_trains_from_an_official_format_folder_offline(tmp_path, monkeypatch):
    def no_network(url):
        raise AssertionError("network used")
    monkeypatch.setattr(D, "_fetch", no_network)
    data = make_cifar_dir(tmp_path / "data")
    out = tmp_path / "run"
    assert T.main(TINY + ["--dataset", "cifar10", "--data-dir", str(data), "--no-download",
                          "--epochs", "1", "--out", str(out)]) == 0
    assert json.load(open(out / "config.json"))["data"]["classes"][0] == "airplane"
    assert T.main(["--out", str(out), "--eval-only"]) == 0     # finds the data via the config


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
    code = T.main(TINY + ["--dataset", "cifar10", "--data-dir", str(tmp_path / "empty"),
                          "--no-download", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and D.CIFAR["cifar10"]["url"] in err and "--data-dir" in err
    assert "Traceback" not in err


def test_corrupt_batch_file_is_a_clear_error(tmp_path, capsys):
    data = make_cifar_dir(tmp_path / "data")
    batch = data / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:1000])
    code = T.main(TINY + ["--dataset", "cifar10", "--data-dir", str(data), "--no-download",
                          "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and "data_batch_2 is truncated or corrupt" in err


# ---------------------------------------------------------------------------------------
# Checkpoint format
# ---------------------------------------------------------------------------------------
def test_checkpoint_round_trip_keeps_types(tmp_path):
    state = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), 3: {"momentum_buffer": np.ones(2)},
             "rng": np.random.default_rng(1).bit_generator.state, "legacy": np.random.get_state(),
             "list": [1, 2.5, None, "x"], "np": np.float32(1.5)}
    path = str(tmp_path / "c.npz")
    T.save_checkpoint(path, state)
    back = T.load_checkpoint(path)
    np.testing.assert_array_equal(back["a"], state["a"])
    assert back["a"].dtype == np.float32 and 3 in back and back["rng"] == state["rng"]
    assert isinstance(back["legacy"], tuple)
    np.random.set_state(back["legacy"])
    assert back["list"] == [1, 2.5, None, "x"] and back["np"] == 1.5
    assert not os.path.exists(path + ".tmp")


def test_checkpoints_are_minigrad_files(reference):
    """One format: minigrad.load reads what wa-train writes, the same as load_checkpoint."""
    path = str(reference / "checkpoint.npz")
    state, via_mg = T.load_checkpoint(path), mg.load(path)
    assert list(state) == list(via_mg) and state["history"] == via_mg["history"]
    assert state["rng"]["init"] == via_mg["rng"]["init"] and type(state["rng"]["numpy"]) is tuple
    for k, v in state["model"].items():
        np.testing.assert_array_equal(v, via_mg["model"][k], err_msg=k)


def test_checkpoints_of_the_old_wa_format_still_load(tmp_path):
    """wa-train's own .npz before it used minigrad.save: arrays a0, a1, ... and a JSON __meta__."""
    meta = {"__dict__": [["model", {"__dict__": [["w", {"__array__": "a0"}]]}], ["epoch", 2],
                         [3, {"__tuple__": ["MT19937", {"__array__": "a1"}, 624]}],
                         ["history", [{"__dict__": [["loss", 0.5]]}]]]}
    path = tmp_path / "old.npz"
    np.savez(path, __meta__=np.array(json.dumps(meta)), a0=np.ones(2, np.float32),
             a1=np.arange(3, dtype=np.uint32))
    back = T.load_checkpoint(str(path))
    assert list(back) == ["model", "epoch", 3, "history"] and back["epoch"] == 2
    assert back["model"]["w"].dtype == np.float32 and back["history"] == [{"loss": 0.5}]
    assert back[3][0] == "MT19937" and back[3][2] == 624 and type(back[3]) is tuple
    np.testing.assert_array_equal(back[3][1], [0, 1, 2])


def test_damaged_checkpoint_is_reported(tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(b"not an npz")
    with pytest.raises(T.CheckpointError, match="cannot read checkpoint"):
        T.load_checkpoint(str(path))


def test_blas_thread_rule():
    from wa.train import SMALL_BATCH, blas_threads
    assert blas_threads({"threads": None, "batch_size": 2}) == 1       # small GEMMs: one thread
    assert blas_threads({"threads": None, "batch_size": SMALL_BATCH}) is None   # BLAS decides
    assert blas_threads({"threads": 3, "batch_size": 2}) == 3          # the flag wins


def test_threads_flag_limits_blas_during_the_run(tmp_path, monkeypatch):
    import threadpoolctl
    import wa.train as train
    seen = []
    original = train.Trainer._run

    def spy(self):
        seen.extend(p["num_threads"] for p in threadpoolctl.threadpool_info()
                    if p["user_api"] == "blas")
        return original(self)
    monkeypatch.setattr(train.Trainer, "_run", spy)
    code = train.main(["--dataset", "synthetic", "--model", "plain8", "--width", "0.0625",
                       "--norm", "wa", "--epochs", "1", "--batch-size", "4", "--limit-train",
                       "8", "--limit-test", "8", "--progress", "off", "--out",
                       str(tmp_path / "run")])
    assert code == 0
    assert seen and all(n == 1 for n in seen)


# ---------------------------------------------------------------------------------------
# Resume without dead ends
# ---------------------------------------------------------------------------------------
def test_resume_of_a_finished_run_says_so_and_what_to_do(reference, capsys):
    config_before = (reference / "config.json").read_text()
    msg = _one_line_error(capsys, "--out", str(reference), "--resume")
    assert "is finished (3/3 epochs)" in msg and "--eval-only" in msg and "new --out" in msg
    assert (reference / "config.json").read_text() == config_before     # no "resumed" entry


def test_a_longer_run_is_refused_with_the_reason(reference, capsys):
    msg = _one_line_error(capsys, "--out", str(reference), "--resume", "--epochs", "5")
    assert "--epochs 5 differs from the saved run's 3" in msg
    assert "schedule is laid out over its 3 epochs" in msg and "another --out" in msg


@pytest.mark.filterwarnings("error")          # no NumPy warning leaks past the one-line report
def test_divergence_advice_can_be_followed(tmp_path, capsys):
    out = tmp_path / "run"
    code = T.main(TINY[:-2] + ["--norm", "none", "--lr", "1e30", "--epochs", "2", "--out", str(out)])
    msg = capsys.readouterr().out
    assert code == 1 and "loss became nan at epoch 1, batch " in msg
    assert "the start, before the first step" in msg
    assert "new run with a smaller --lr (this one used 1e+30) and another --out" in msg
    # the advice works: a new folder with a smaller rate trains
    assert train(tmp_path / "smaller", "--norm", "none", "--lr", "0.01", epochs=1) == 0


@pytest.fixture
def dropout_net(monkeypatch):
    """A small conv net with Dropout, registered as 'dropnet': its masks come from NumPy's
    global generator, so a resume is exact only if the checkpoint restores that state."""
    def build(**kw):
        nn = mg.nn
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.5),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, kw["num_classes"]))
    monkeypatch.setitem(wa.models._MODELS, "dropnet", build)


@pytest.mark.parametrize("flags", [["--norm", "bn"], ["--model", "dropnet", "--norm", "none"]],
                         ids=["batchnorm-buffers", "dropout-rng"])
def test_resume_restores_bn_buffers_and_the_dropout_generator(tmp_path, monkeypatch, flags,
                                                               dropout_net):
    ref = tmp_path / "ref"
    assert train(ref, *flags, epochs=2) == 0
    out = tmp_path / "run"
    train_until_killed_at_step_6(out, monkeypatch, *flags, epochs=2)
    np.random.seed(12345)                     # whatever the process did since, the run's own state
    assert T.main(["--out", str(out), "--resume"]) == 0
    assert_same_run(ref, out)
    if flags[1] == "bn":                      # the buffers were part of what was compared
        assert any(k.endswith("running_mean") for k in final_weights(out))


# ---------------------------------------------------------------------------------------
# Progress, curves, the Python API
# ---------------------------------------------------------------------------------------
def test_epoch_lines_show_elapsed_eta_and_a_labelled_lr(tmp_path, capsys, monkeypatch):
    import wa.process
    monkeypatch.setattr(wa.process, "PLAIN_PROGRESS_SECONDS", 0.0)   # every batch, for the test
    assert train(tmp_path / "run", epochs=2) == 0
    lines = capsys.readouterr().out.splitlines()
    epochs = [l for l in lines if l.startswith("epoch")]
    assert len(epochs) == 2 and all("lr@start" in l and "elapsed " in l for l in epochs)
    assert epochs[0].endswith(epochs[0].split("eta ")[1]) and epochs[1].endswith("eta 0:00")
    # not a terminal (pytest captures): plain progress lines within each epoch, no tqdm frames
    plain = [l for l in lines if l.strip().startswith("epoch 1/2  batch")]
    assert [l.split("batch ")[1].split()[0] for l in plain] == ["1/4", "2/4", "3/4"]


def test_progress_off_prints_no_progress_lines(tmp_path, capsys, monkeypatch):
    import wa.process
    monkeypatch.setattr(wa.process, "PLAIN_PROGRESS_SECONDS", 0.0)
    assert train(tmp_path / "run", "--progress", "off", epochs=1) == 0
    assert not any("batch 1/4" in l for l in capsys.readouterr().out.splitlines())


def test_curves_show_the_start_markers_integer_ticks_and_chance(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    figures = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    out = tmp_path / "run"
    assert train(out, epochs=1) == 0
    initial = T.load_checkpoint(str(out / "checkpoint.npz"))["initial"]
    assert 0 <= initial["test_acc"] <= 1 and initial["test_loss"] > 0
    loss_ax, acc_ax = figures[-1].axes
    test_line = [l for l in acc_ax.get_lines() if l.get_label() == "test"][0]
    assert list(test_line.get_xdata()) == [0, 1] and test_line.get_marker() == "o"
    assert test_line.get_ydata()[0] == initial["test_acc"]
    chance = [l for l in acc_ax.get_lines() if l.get_label() == "chance"][0]
    assert chance.get_ydata()[0] == pytest.approx(0.1)
    ticks = [t for t in acc_ax.get_xticks() if acc_ax.get_xlim()[0] <= t <= acc_ax.get_xlim()[1]]
    assert ticks == [0, 1]


def test_main_keeps_freed_memory_for_the_process(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(mg.fast, "keep_freed_memory", lambda *a, **k: calls.append(1))
    assert train(tmp_path / "run", epochs=1) == 0
    assert calls == [1]


def test_import_wa_reaches_data_loop_and_load_run(reference):
    import wa
    assert wa.data.load_dataset is D.load_dataset and callable(wa.loop.evaluate)
    model, config = wa.load_run(str(reference))
    assert config["settings"]["norm"] == "gn+wa" and not model.training
    weights = final_weights(reference)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(mg.backend.as_numpy(getattr(v, "data", v)), weights[k])
    ds = D.load_dataset("synthetic", limit_train=64, limit_test=32)
    _, test = D.make_loaders(ds, 16)
    assert wa.loop.evaluate(model, test)[1] == pytest.approx(metrics(reference)[-1]["test_acc"])


def test_matplotlib_is_a_core_dependency():
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    assert any(d.startswith("matplotlib") for d in deps)


def test_resume_of_a_finished_run_killed_before_its_last_line_completes_the_metrics(
        tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:          # the last epoch's checkpoint is written, its line not
        original = T.Trainer.append_metrics
        m.setattr(T.Trainer, "append_metrics",
                  lambda self, rec: (_ for _ in ()).throw(Killed) if rec["epoch"] == 2
                  else original(self, rec))
        with pytest.raises(Killed):
            train(out, epochs=2)
    assert len(metrics(out)) == 1
    assert "is finished (2/2 epochs)" in _one_line_error(capsys, "--out", str(out), "--resume")
    assert [r["epoch"] for r in metrics(out)] == [1, 2]


def test_a_folder_another_process_trains_into_is_refused(tmp_path, capsys, another_process_holding):
    out = tmp_path / "run"
    with another_process_holding(out) as pid:
        msg = _one_line_error(capsys, *TINY, "--epochs", "1", "--out", str(out))
        assert f"in use by another training process (pid {pid})" in msg
        assert "choose another --out" in msg
        assert not (out / "metrics.jsonl").exists() and (out / "run.lock").exists()
    # the holder is gone (as after a SIGKILL, its lock file left behind): the lock is taken
    # over, the run trains, and the lock is removed when the run ends
    assert (out / "run.lock").exists()
    assert train(out, epochs=1) == 0
    assert len(metrics(out)) == 1 and not (out / "run.lock").exists()


def test_the_lock_is_held_while_training_and_released_on_error(tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = []
    real = T.Trainer.train_epoch

    def look(self):
        seen.append((out / "run.lock").read_text().split()[0])
        return real(self)
    monkeypatch.setattr(T.Trainer, "train_epoch", look)
    assert train(out, epochs=1) == 0
    assert seen == [str(os.getpid())] and not (out / "run.lock").exists()

    def boom(self):
        raise RuntimeError("boom")
    monkeypatch.setattr(T.Trainer, "train_epoch", boom)
    with pytest.raises(RuntimeError, match="boom"):
        train(tmp_path / "other", epochs=1)
    assert not (tmp_path / "other" / "run.lock").exists()


def test_the_code_version_is_the_one_the_process_started_with(monkeypatch):
    """A sweep's runs record the commit of the code they imported, even when the checkout
    moves on while they train."""
    import wa.trainer as trainer
    trainer._git_commit.cache_clear()
    heads = iter(["aaaa", "bbbb"])

    def fake_git(cmd, **kw):
        out = next(heads) if cmd[1] == "rev-parse" else ""
        return subprocess.CompletedProcess(cmd, 0, stdout=out + "\n", stderr="")
    monkeypatch.setattr(trainer.subprocess, "run", fake_git)
    try:
        assert trainer.versions()["git_commit"] == "aaaa"
        assert trainer.versions()["git_commit"] == "aaaa"      # HEAD moved to bbbb meanwhile
    finally:
        trainer._git_commit.cache_clear()


def test_init_flag_builds_and_records_its_scheme(tmp_path):
    """--init pytorch reaches the model (its classifier gets a drawn bias, which Kaiming
    leaves at 0) and config.json; a run folder from before the flag resumes as kaiming."""
    for scheme in ("kaiming", "pytorch"):
        out = tmp_path / scheme
        assert T.main(TINY + ["--model", "resnet20", "--norm", "bn", "--init", scheme,
                              "--epochs", "1", "--out", str(out)]) == 0
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["settings"]["init"] == scheme
    mg.manual_seed(0)
    built = {s: T.build_model({"model": "resnet20", "norm": "bn", "width": 0.25, "init": s}, 10)
             for s in ("kaiming", "pytorch")}
    assert not np.asarray(built["kaiming"].fc.bias.data).any()
    assert np.asarray(built["pytorch"].fc.bias.data).any()
    old = T.build_model({"model": "resnet20", "norm": "bn", "width": 0.25}, 10)
    assert not np.asarray(old.fc.bias.data).any()
