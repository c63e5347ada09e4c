"""Write the golden files: PyTorch's answers for the tests that compare minigrad with PyTorch.

Run from the repository root where torch is installed (it is no dependency of the project):

    python tests/golden/make_golden.py              # all of them, after deleting the old ones
    python tests/golden/make_golden.py -k conv2d    # only the tests pytest selects

It runs the test files that use `torch_reference.reference` with MINIGRAD_WRITE_GOLDEN=1: each
call writes tests/golden/NAME.npz (the inputs and torch's answer, float64 where the test is),
and the test then runs as usual against it.  Commit the files; CI, without torch, compares
against them.  Inputs come from fixed seeds, so a rerun with the same PyTorch rewrites the same
numbers.
"""
import os
import pathlib
import subprocess
import sys

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent
ROOT = GOLDEN_DIR.parent.parent


def main(pytest_args):
    try:
        import torch
    except ImportError:
        sys.exit("make_golden.py: torch does not import here; golden files are PyTorch's "
                 "answers, so run this where torch is installed (pip install torch)")
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "torch_reference" in p.read_text())
    if not pytest_args:                      # a full run: files no test asks for disappear
        for old in GOLDEN_DIR.rglob("*.npz"):
            old.unlink()
    env = dict(os.environ, MINIGRAD_WRITE_GOLDEN="1", PYTHONPATH=str(ROOT))
    env.pop("MINIGRAD_GOLDEN_ONLY", None)
    print(f"torch {torch.__version__}; writing golden files from {len(tests)} test files")
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *tests, *pytest_args], cwd=ROOT, env=env)
    files = sorted(GOLDEN_DIR.rglob("*.npz"))
    size = sum(f.stat().st_size for f in files)
    print(f"{len(files)} golden files, {size / 1024:.0f} KiB in all, under {GOLDEN_DIR.relative_to(ROOT)}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
