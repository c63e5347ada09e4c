"""The CPU benchmark scripts run end to end at tiny sizes and print their tables."""
import os
import subprocess
import sys

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
