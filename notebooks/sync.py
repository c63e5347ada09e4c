"""Sync every notebook with its paired py:percent source, and optionally run it to store its outputs.

Each notebook in notebooks/ is a Jupytext pair (see jupytext.toml): NAME.ipynb, which readers open
and which holds the outputs of a full run, and NAME.py, the same cells in the "percent" format
(`# %%` starts a code cell, `# %% [markdown]` a markdown cell), which is the file to review and diff.
Edit either one; then, from the repository root:

    python notebooks/sync.py                    # sync every pair: the newer file's cells go to the
                                                #   other one; the .ipynb keeps its stored outputs
    python notebooks/sync.py --from py 02       # force the direction (.py -> .ipynb) for notebook 02*
    python notebooks/sync.py --check            # only report pairs whose cells differ (exit status 1)
    python notebooks/sync.py --execute 03       # sync, then run 03* in full mode and store the outputs
    python notebooks/sync.py --execute --quick  # run all in quick mode (WA_QUICK=1) into a temporary
                                                #   folder; notebooks/ is not written

Jupyter with jupytext installed saves both files of a pair itself. Full mode (WA_QUICK unset) is the
one the committed outputs come from; quick mode (WA_QUICK=1) is what the test suite runs. A notebook
runs with notebooks/ as its working directory, like `jupyter lab notebooks/`, and imports this
checkout's packages. Needs `pip install -e ".[notebooks]"` (jupytext; nbclient + ipykernel to run).
"""
import argparse
import difflib
import os
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent


def pairs(prefixes=()):
    """The (NAME.ipynb, NAME.py) paths in notebooks/ whose name starts with one of prefixes (all if none).

    A pair may miss one of its files (differences() reports that); this script and the
    modules named _*.py (the exercises' checkers) are not notebooks."""
    names = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    names |= {p.stem for p in NOTEBOOKS.glob("*.py")
              if p.name != Path(__file__).name and not p.name.startswith("_")}   # _exercises.py: a module
    names = sorted(n for n in names if not prefixes or n.startswith(tuple(prefixes)))
    return [(NOTEBOOKS / f"{n}.ipynb", NOTEBOOKS / f"{n}.py") for n in names]


def differences(ipynb, py):
    """How the cells of a pair differ ('' when they match): cell types and sources only, outputs and
    metadata ignored; the .py is read by jupytext, as `jupytext --sync` reads it."""
    import jupytext
    import nbformat

    missing = [p.name for p in (ipynb, py) if not p.exists()]
    if missing:
        return f"{ipynb.stem}: {' and '.join(missing)} missing (run python notebooks/sync.py)"
    a = [(c.cell_type, c.source) for c in nbformat.read(ipynb, as_version=4).cells]
    b = [(c.cell_type, c.source) for c in jupytext.read(py).cells]
    if a == b:
        return ""
    diff = difflib.unified_diff(_lines(a), _lines(b), ipynb.name, py.name, n=1)
    return (f"{ipynb.stem}: the cells of {ipynb.name} ({len(a)}) and {py.name} ({len(b)}) differ "
            f"(run python notebooks/sync.py):\n" + "".join(list(diff)[:60]))


def _lines(cells):
    return [f"{line}\n" for kind, source in cells for line in [f"# %% [{kind}]", *source.split("\n")]]


def sync(ipynb, py, source="newer"):
    """Bring the pair's cells into agreement with jupytext; the .ipynb keeps the outputs of the cells
    whose source is unchanged. source: 'newer' (the more recently modified file), 'py' or 'ipynb'."""
    from jupytext.cli import jupytext as jupytext_cli

    if source == "py" or (source == "newer" and not ipynb.exists()):
        jupytext_cli(["--quiet", "--to", "ipynb", "--update", str(py)])
    elif source == "ipynb" or not py.exists():
        jupytext_cli(["--quiet", "--to", "py:percent", str(ipynb)])
    else:
        jupytext_cli(["--quiet", "--sync", str(ipynb)])


def execute(ipynb, quick, timeout=3600):
    """Run a notebook top to bottom; full mode writes it back with its outputs, quick mode writes
    a copy to a temporary folder. Returns the path written."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ipynb, as_version=4)
    env = {k: v for k, v in os.environ.items() if k not in ("WA_QUICK", "MPLBACKEND")}
    if quick:               # MPLBACKEND unset in full mode: the inline backend, so figures are stored
        env.update(WA_QUICK="1", MPLBACKEND="Agg")
    if quick:               # quick runs check the reference answers, as the test suite does
        env["WA_SOLUTIONS"] = "1"
    else:                   # the committed notebooks leave every exercise open
        env.pop("WA_SOLUTIONS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(NOTEBOOKS), env.get("PYTHONPATH")]))
    old = dict(os.environ)  # the kernel inherits this process's environment
    os.environ.clear()
    os.environ.update(env)
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        seconds = time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(old)
    out = Path(tempfile.gettempdir()) / f"{ipynb.stem}.quick.ipynb" if quick else ipynb
    nbformat.write(nb, out)
    print(f"{ipynb.name}: ran in {seconds:.1f} s ({'quick' if quick else 'full'} mode), wrote {out}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="notebook name prefixes, e.g. 02 (default: all)")
    p.add_argument("--from", dest="source", choices=["newer", "py", "ipynb"], default="newer",
                   help="which file of a pair gives the cells (default: the newer one)")
    p.add_argument("--check", action="store_true", help="only report pairs that differ")
    p.add_argument("--execute", action="store_true", help="after syncing, run the notebooks")
    p.add_argument("--quick", action="store_true",
                   help="with --execute: WA_QUICK=1, output to a temporary folder")
    args = p.parse_args(argv)
    if args.quick and not args.execute:
        p.error("--quick only goes with --execute")
    selected = pairs(args.names)
    if not selected:
        p.error(f"no notebook in {NOTEBOOKS} starts with {' or '.join(args.names)}")
    if not args.check:
        for ipynb, py in selected:
            sync(ipynb, py, args.source)
    report = [d for d in (differences(ipynb, py) for ipynb, py in selected) if d]
    if report:
        print("\n".join(report), file=sys.stderr)
        return 1
    print(f"{len(selected)} notebook(s) match their py:percent source")
    if args.execute and not args.check:
        for ipynb, _ in selected:
            execute(ipynb, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
