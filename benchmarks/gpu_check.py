"""The GPU check: everything a GPU machine should confirm, in one command, in under 8 minutes.

    python benchmarks/gpu_check.py                    # on a machine with an NVIDIA GPU
    python benchmarks/gpu_check.py --dry-run          # anywhere: the same steps on the CuPy stand-in

Steps, each recorded in one results file (default `gpu_check_results.md`, written atomically):

1. CuPy: imported if present, else `pip install -e ".[gpu]"` (cupy-cuda12x); `nvidia-smi` and
   CuPy's version.
2. The test suite's `cuda` tests on the real GPU (test ids `[cuda-gpu]`).
3. `wa-train` ResNet-20 GN+WA on the bundled CIFAR-10 sample for 2 epochs with `--device cuda`.
4. Training-step throughput of ResNet-20 with BN and with GN+WA at batch 128, minigrad on CuPy
   next to PyTorch on CUDA where PyTorch is importable: same weights, same data, SGD momentum
   0.9 and weight decay 5e-4, alternating blocks, medians, the GPU synchronized around every
   block.

`--dry-run` runs the same steps on a machine without a GPU: CuPy is the strict stand-in of
`tests/cupy_standin.py`, PyTorch (if present) runs on the CPU, and every size is cut down, so
the script itself is tested end to end before a GPU is ever lent.
"""
import argparse
import contextlib
import importlib.util
import io
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def sh(cmd, timeout=None):
    """Run `cmd`; return (exit code, its output) without raising."""
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        return r.returncode, (r.stdout + r.stderr).strip()
    except FileNotFoundError as e:
        return 127, f"{cmd[0]}: not found ({e.strerror})"
    except subprocess.TimeoutExpired as e:
        return 124, f"timed out after {timeout} s\n{(e.stdout or '')!s}"


def install_standin():
    """Make minigrad use the strict CuPy stand-in (what --dry-run tests the script with)."""
    from minigrad import backend
    module = sys.modules.get("cupy_standin")          # already loaded by the test suite
    if module is None:
        spec = importlib.util.spec_from_file_location(
            "cupy_standin", os.path.join(ROOT, "tests", "cupy_standin.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["cupy_standin"] = module
        spec.loader.exec_module(module)
    module.install(backend)
    return module.cupy


class Report:
    """Markdown sections, rewritten to disk (atomically) after each step."""

    def __init__(self, path):
        self.path, self.parts = path, []

    def add(self, title, body, fenced=True):
        self.parts.append(f"## {title}\n\n" + (f"```\n{body}\n```\n" if fenced else body + "\n"))
        print(f"\n## {title}\n{body}", flush=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("# GPU check\n\n" + "\n".join(self.parts))
        os.replace(tmp, self.path)


# ----------------------------------------------------------------------------
# Step 1: CuPy and the GPU
# ----------------------------------------------------------------------------
def get_cupy(dry, report):
    if dry:
        cp = install_standin()
        report.add("CuPy", f"dry run: the strict CuPy stand-in (names of CuPy {cp.__version__}); no GPU")
        return cp
    lines = []
    try:
        import cupy
    except ImportError:
        code, out = sh([sys.executable, "-m", "pip", "install", "-q", "-e", ".[gpu]"], timeout=300)
        lines.append(f"pip install -e .[gpu]: exit {code}\n{out[-2000:]}")
        import cupy
    import minigrad as mg
    if not mg.is_available("cuda"):
        raise SystemExit("CuPy is installed but finds no GPU: run with --dry-run on this machine")
    props = cupy.cuda.runtime.getDeviceProperties(0)
    lines.append(f"CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
                 f"device 0: {props['name'].decode()}")
    report.add("CuPy", "\n".join(lines))
    return cupy


# ----------------------------------------------------------------------------
# Steps 2 and 3: the cuda tests, a short training run
# ----------------------------------------------------------------------------
def cuda_tests(dry, report):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda",
           "tests/minigrad", "tests/wa", "tests/test_cupy_standin.py"]
    if dry:
        cmd += ["-x", "tests/minigrad/test_norm.py"]      # a sample: CI runs them all
        cmd.remove("tests/minigrad")
        cmd.remove("tests/wa")
    code, out = sh(cmd, timeout=420)
    tail = "\n".join(out.splitlines()[-15:])
    report.add(f"`cuda` tests ({'stand-in sample' if dry else 'real GPU'}): exit {code}",
               "$ " + " ".join(cmd[2:]) + "\n" + tail)
    return code


def short_training(dry, report):
    from wa import train
    out_dir = tempfile.mkdtemp(prefix="gpu_check_run_")
    argv = ["--dataset", "cifar10-sample", "--model", "resnet20", "--norm", "gn+wa", "--epochs", "2",
            "--device", "cuda", "--out", out_dir, "--progress", "off"]
    if dry:
        argv += ["--width", "0.25", "--limit-train", "128", "--limit-test", "64"]
    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        code = train.main(argv)
    report.add(f"wa-train ResNet-20 GN+WA, 2 epochs on cuda: exit {code}, "
               f"{time.perf_counter() - t0:.1f} s",
               "$ wa-train " + " ".join(argv) + "\n" + buf.getvalue().strip())
    return code


# ----------------------------------------------------------------------------
# Step 4: training-step throughput against PyTorch
# ----------------------------------------------------------------------------
def step_pairs(spec, batch, cp, dry):
    """(minigrad step, PyTorch step or None, note) for ResNet-20 with `spec` on the GPU."""
    import numpy as np

    import minigrad as mg
    import minigrad.functional as F
    from wa import models
    mg.manual_seed(0)
    model = models.build("resnet20", norm=spec, width=0.25 if dry else 1.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    t = rng.integers(0, 10, batch)
    torch_model = None
    try:
        import torch
        from bench_convnet import torch_resnet
        torch_model = torch_resnet(model)           # copied before the minigrad model moves
    except ImportError as e:
        note = f"PyTorch comparison skipped: {e}"
    model.to("cuda").train()
    opt = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    X, T = mg.tensor(x, device="cuda"), mg.tensor(t, device="cuda")
    sync = cp.cuda.Device().synchronize

    def ours():
        opt.zero_grad()
        loss = F.cross_entropy(model(X), T)
        loss.backward()
        opt.step()
        sync()
        return float(loss.item())

    if torch_model is None:
        return ours, None, note
    dev = "cuda" if (not dry and torch.cuda.is_available()) else "cpu"
    torch_model.to(dev).train()
    topt = torch.optim.SGD(torch_model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    tx, tt = torch.from_numpy(x).to(dev), torch.from_numpy(t).to(dev)

    def theirs():
        topt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(torch_model(tx), tt)
        loss.backward()
        topt.step()
        if dev == "cuda":
            torch.cuda.synchronize()
        return float(loss.item())

    first = ours(), theirs()
    note = (f"PyTorch {torch.__version__} on {dev}; first-step loss minigrad {first[0]:.5f}, "
            f"PyTorch {first[1]:.5f}")
    return ours, theirs, note


def throughput(cp, dry, report, batch, steps, rounds):
    rows, notes = [], []
    for spec in ("bn", "gn+wa"):
        ours, theirs, note = step_pairs(spec, batch, cp, dry)
        notes.append(f"{spec}: {note}")
        tasks = {"ours": ours} if theirs is None else {"ours": ours, "theirs": theirs}
        from bench_convnet import alternate      # blocks after a pause (idle worker threads)
        sec = alternate(tasks, steps, rounds, settle=0.0 if dry else 0.3)
        ips = {k: batch / v for k, v in sec.items()}
        ratio = f"{ips['ours'] / ips['theirs']:.2f}x" if "theirs" in ips else "-"
        rows.append(f"| ResNet-20 {spec}, batch {batch} (images/s) | {ips['ours']:.0f} | "
                    f"{ips['theirs']:.0f} | {ratio} |" if "theirs" in ips else
                    f"| ResNet-20 {spec}, batch {batch} (images/s) | {ips['ours']:.0f} | - | - |")
    table = ("| training step | minigrad (CuPy) | PyTorch | ratio |\n|---|---:|---:|---:|\n"
             + "\n".join(rows) + f"\n\nmedians of {rounds} alternating blocks of {steps} steps; "
             + "; ".join(notes))
    report.add("Training-step throughput" + (" (dry run: stand-in and CPU numbers)" if dry else ""),
               table, fenced=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU: run every step on the CuPy stand-in, at small sizes")
    p.add_argument("--out", default="gpu_check_results.md", help="the results file (markdown)")
    p.add_argument("--batch", type=int, default=None, help="benchmark batch (default 128; dry 8)")
    args = p.parse_args(argv)
    dry = args.dry_run
    report = Report(args.out)
    code, smi = sh(["nvidia-smi"], timeout=30)
    report.add("Machine", f"{platform.platform()}, Python {platform.python_version()}\n"
               f"$ nvidia-smi (exit {code})\n{smi}")
    cp = get_cupy(dry, report)
    failures = 0
    failures += cuda_tests(dry, report) != 0
    failures += short_training(dry, report) != 0
    batch = args.batch or (8 if dry else 128)
    throughput(cp, dry, report, batch, steps=2 if dry else 10, rounds=2 if dry else 5)
    print(f"\nresults written to {args.out}" + (f"; {failures} step(s) failed" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
