"""Build a notebook from a list of cells, and optionally execute it in place (full mode).

    from nbbuild import md, code, build
    build("01_x.ipynb", [md("# Title"), code("print(1)")], execute=True)

The notebooks are generated from the build scripts next to this file so that their text can be
reviewed and diffed as plain Python; the .ipynb files in notebooks/ are the build outputs, executed
in full mode (WA_QUICK unset) to store the committed outputs.
"""
import os
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


def md(text):
    return nbformat.v4.new_markdown_cell(_dedent(text))


def code(text):
    return nbformat.v4.new_code_cell(_dedent(text))


def _dedent(text):
    import textwrap
    return textwrap.dedent(text).strip("\n")


def build(name, cells, execute=True, timeout=1800):
    """Write notebooks/<name>; with execute=True run it top to bottom (full mode) and store outputs."""
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = NOTEBOOKS / name
    if execute:
        from nbclient import NotebookClient
        env = {k: v for k, v in os.environ.items() if k != "WA_QUICK"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.pop("MPLBACKEND", None)           # the inline backend, so that figures are stored
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            start = time.perf_counter()
            NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                           resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
            print(f"{name}: executed in full mode in {time.perf_counter() - start:.1f} s")
        finally:
            os.environ.clear()
            os.environ.update(old)
    nbformat.write(nb, path)
    print(f"wrote {path}")
    return nb


def main(name, cells):
    build(name, cells, execute="--no-execute" not in sys.argv)
