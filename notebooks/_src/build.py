"""Build a notebook from its source script, and optionally run it to store its outputs.

The sources are plain Python files in the "percent" format (the one Jupytext, VS Code and
Spyder read): a line `# %%` starts a code cell, `# %% [markdown]` a markdown cell whose lines
are comments.  Diffs of a source stay readable; the .ipynb is what readers open.

    python notebooks/_src/build.py 02_weightalign_backward            # write the .ipynb only
    python notebooks/_src/build.py 02_weightalign_backward --execute  # ... and run it (full mode)
    python notebooks/_src/build.py 03_activation_distributions --execute --quick
                        # WA_QUICK=1, written to a temporary file, for a quick test run

The executed notebook runs with notebooks/ as its working directory, like `jupyter lab
notebooks/`.  Needs nbformat (and nbclient + ipykernel to execute): pip install -e ".[notebooks]".
"""
import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent
CELL = re.compile(r"^# %%(.*)$")


def cells_of(source):
    """[(kind, text)] from a percent-format script; kind is 'code' or 'markdown'."""
    cells, kind, lines = [], None, []

    def close():
        text = "\n".join(lines).strip("\n")
        if kind is not None and text.strip():
            cells.append((kind, text))

    for line in source.splitlines():
        m = CELL.match(line)
        if m:
            close()
            kind, lines = ("markdown" if "[markdown]" in m.group(1) else "code"), []
        elif kind == "markdown":
            lines.append(re.sub(r"^# ?", "", line))
        elif kind == "code":
            lines.append(line)
    close()
    return cells


def build(name):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = cells_of((HERE / f"{name}.py").read_text())
    nb = new_notebook(cells=[new_markdown_cell(t) if k == "markdown" else new_code_cell(t)
                             for k, t in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb, quick, timeout=1800):
    from nbclient import NotebookClient

    old = os.environ.get("WA_QUICK")
    if quick:
        os.environ["WA_QUICK"] = "1"
    else:
        os.environ.pop("WA_QUICK", None)
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        return time.perf_counter() - start
    finally:
        if old is None:
            os.environ.pop("WA_QUICK", None)
        else:
            os.environ["WA_QUICK"] = old


def main(argv=None):
    import nbformat

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="source name without .py, e.g. 02_weightalign_backward")
    p.add_argument("--execute", action="store_true", help="run it and store the outputs")
    p.add_argument("--quick", action="store_true",
                   help="run with WA_QUICK=1 and write to a temporary file, not notebooks/")
    args = p.parse_args(argv)
    nb = build(args.name)
    if args.execute:
        seconds = execute(nb, args.quick)
        print(f"{args.name}: executed in {seconds:.1f} s ({'quick' if args.quick else 'full'} mode)")
    if args.quick:
        out = Path(tempfile.gettempdir()) / f"{args.name}.quick.ipynb"
    else:
        out = NOTEBOOKS / f"{args.name}.ipynb"
    nbformat.write(nb, str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
