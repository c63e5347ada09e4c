"""Run every notebook in notebooks/ top to bottom, in quick mode, on a copy.

Each notebook is one test (parametrized by file name), so a notebook added to notebooks/ is picked
up without editing this file.  The committed notebooks keep their full-mode outputs: the test
executes the copy it read into memory, with a temporary directory as the working directory, and
never writes it back.

Environment of the kernel:
  WA_QUICK=1       the notebooks' quick mode (fewer samples, smaller sizes, fewer epochs)
  WA_SOLUTIONS=1   every exercise gets its reference answer, so every checker cell runs (and
                   raises if it does not pass); the test also counts the checkers' PASS lines
  MPLBACKEND=Agg   no display needed; figures are drawn but not shown
  PYTHONPATH       the repository root first, so the notebooks import this checkout's packages
The kernel runs on the interpreter that runs pytest (sys.executable): the test writes a kernel
spec pointing at it into a temporary directory, instead of using whatever "python3" kernel the
machine has installed (which may belong to another Python, without the package or its deps).

Timeout: WA_NOTEBOOK_TIMEOUT seconds per notebook (default 600), kernel start included.
Skipped, with the reason, when nbclient, nbformat or ipykernel is not installed
(`pip install -e ".[dev]"` installs them).
"""
import importlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TIMEOUT = float(os.environ.get("WA_NOTEBOOK_TIMEOUT", "600"))


def _require(module):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        pytest.skip(f"{module} is not importable ({err}); the notebooks are run only with the dev "
                    f"extra: pip install -e \".[dev]\"")


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A directory holding a 'python3' kernel spec that runs sys.executable in quick mode."""
    _require("ipykernel")
    _require("matplotlib")          # every notebook draws figures
    root = tmp_path_factory.mktemp("kernels")
    (root / "python3").mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor} (pytest)",
        "language": "python",
        "env": {
            "WA_QUICK": "1",
            "WA_SOLUTIONS": "1",
            "MPLBACKEND": "Agg",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(REPO / "notebooks"),   # _exercises
                                                         os.environ.get("PYTHONPATH")])),
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",    # silences a debugger warning at start-up
        },
    }
    (root / "python3" / "kernel.json").write_text(json.dumps(spec))
    return root


def test_notebooks_are_found():
    assert NOTEBOOKS, f"no notebooks in {REPO / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, kernel_dir, tmp_path):
    nbformat = _require("nbformat")
    nbclient = _require("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class QuickKernelManager(AsyncKernelManager):
        """Finds kernel specs only in kernel_dir: 'python3' is then our quick-mode sys.executable."""
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self):
            return KernelSpecManager(kernel_dirs=[str(kernel_dir)])

    assert QuickKernelManager(kernel_name="python3").kernel_spec.argv[0] == sys.executable
    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + TIMEOUT
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", kernel_manager_class=QuickKernelManager,
        # every cell may use what is left of the notebook's budget: a per-notebook timeout
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        resources={"metadata": {"path": str(tmp_path)}},   # the kernel's working directory
    )
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except nbclient.exceptions.CellTimeoutError:
        failure = (f"{path.name} did not finish within {TIMEOUT:.0f} s in quick mode (WA_QUICK=1); "
                   f"make its quick mode smaller or raise WA_NOTEBOOK_TIMEOUT")
    except nbclient.exceptions.CellExecutionError as err:
        failure = f"{path.name} raised in quick mode (WA_QUICK=1):\n{err}"
    if failure:
        pytest.fail(failure, pytrace=False)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s in quick mode")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    checks = sum(c.source.count("ex.check(") for c in nb.cells if c.cell_type == "code")
    passes = sum(o.get("text", "").count("] PASS") for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
    assert checks >= 2 and passes == checks, f"{path.name}: {passes} of {checks} exercise checks passed"
