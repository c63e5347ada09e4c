"""benchmarks/gpu_check.py runs end to end in its dry mode (the CuPy stand-in, small sizes)."""
import importlib.util
import os

from minigrad import backend

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_check_dry_run_writes_every_section(tmp_path, capsys, monkeypatch):
    for name in ("cupy", "cupyx"):            # the dry run installs the stand-in: undo it after
        monkeypatch.setattr(backend, name, getattr(backend, name))
    spec = importlib.util.spec_from_file_location(
        "gpu_check", os.path.join(ROOT, "benchmarks", "gpu_check.py"))
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "results.md"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    text = out.read_text()
    for section in ("## Machine", "## CuPy", "## `cuda` tests (stand-in sample): exit 0",
                    "## wa-train ResNet-20 GN+WA, 2 epochs on cuda: exit 0",
                    "## Training-step throughput", "| ResNet-20 gn+wa, batch 8 (images/s) |"):
        assert section in text, section
    assert "epoch   2/2" in text and not os.path.exists(str(out) + ".tmp")
