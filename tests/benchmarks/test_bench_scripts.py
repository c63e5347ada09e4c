"""The CPU benchmark scripts run end to end at tiny sizes and print their tables."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(script, *args):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize("path", ["fast", "plain"])
def test_bench_convnet_without_pytorch_prints_every_row(path):
    text = _run("bench_convnet.py", "--no-torch", "--rounds", "1", "--threads", "1", "--settle", "0",
                "--resnet", "gn+wa", "--resnet-batches", "2", *(["--plain"] if path == "plain" else []))
    assert f"({path} path)" in text
    for row in ("| training step, batch 64 (images/s) |",
                "| ResNet-20 gn+wa, training step, batch 2 (images/s) |",
                "| conv2d 32->32 3x3, 32x32, batch 64: forward (GFLOP/s) |",
                "| float32 matmul 1024x1024x1024 (GFLOP/s) |"):
        assert row in text, row
    assert "| - | - |" in text          # no PyTorch column without PyTorch


def test_profile_resnet_tables_both_libraries():
    pytest.importorskip("torch", reason="profile_resnet.py compares against PyTorch")
    text = _run("profile_resnet.py", "--batch", "2", "--steps", "1", "--threads", "1")
    assert "| Conv2d.forward |" in text and "aten::" in text
    first = next(line for line in text.splitlines() if "first-step loss" in line)
    ours, theirs = (float(v) for v in first.replace(",", "").split()[-3::2])
    assert abs(ours - theirs) < 1e-4 * abs(theirs), first


def _official_folder(root, n_train=50, n_test=10, seed=0):
    """A small official-format CIFAR-10 folder (5 training files of 10 images, a test file)."""
    from wa import data as wadata
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8)
    y_train, y_test = rng.integers(0, 10, n_train), rng.integers(0, 10, n_test)
    classes = [f"class{i}" for i in range(10)]
    folder = wadata.write_cifar(str(root), "cifar10", x_train, y_train, x_test, y_test, classes)
    return folder, x_train, y_train, x_test, y_test


def test_train_vs_pytorch_holds_out_the_chosen_files(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import train_vs_pytorch as tvp
    from wa import data as wadata
    folder, x_train, y_train, x_test, y_test = _official_folder(tmp_path / "src")
    root = tvp.make_split(folder, ["data_batch_1", "data_batch_3"], ["test_batch", "data_batch_2"],
                          str(tmp_path / "split"))
    ds = wadata.load_dataset("cifar10", root, download=False)
    first, third, second = slice(0, 10), slice(20, 30), slice(10, 20)
    np.testing.assert_array_equal(ds.x_train, np.concatenate([x_train[first], x_train[third]]))
    np.testing.assert_array_equal(ds.y_train, np.concatenate([y_train[first], y_train[third]]))
    np.testing.assert_array_equal(ds.x_test, np.concatenate([x_test, x_train[second]]))
    np.testing.assert_array_equal(ds.y_test, np.concatenate([y_test, y_train[second]]))
    with pytest.raises(SystemExit, match="data_batch_1.*held-out"):
        tvp.make_split(folder, ["data_batch_1"], ["data_batch_1"], str(tmp_path / "bad"))


def test_train_vs_pytorch_runs_both_sides_on_a_split(tmp_path):
    pytest.importorskip("torch", reason="train_vs_pytorch.py trains a PyTorch twin")
    folder = _official_folder(tmp_path / "src", n_train=100, n_test=20)[0]
    text = _run("train_vs_pytorch.py", "--norms", "wa", "--width", "0.25", "--epochs", "1",
                "--seeds", "0,1", "--batch-size", "16", "--data-dir", folder, "--train-files", "data_batch_1,data_batch_2",
                "--test-files", "test_batch", "--csv", str(tmp_path / "runs.csv"))
    assert "40 train / 20 test images" in text
    row = next(line for line in text.splitlines() if line.startswith("| wa |"))
    assert row.count("+-") == 2, row         # a mean +- s.e. for each side over the two seeds
    assert len((tmp_path / "runs.csv").read_text().splitlines()) == 4
