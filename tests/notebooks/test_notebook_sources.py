"""Every notebook matches its paired py:percent source (notebooks/NAME.ipynb <-> notebooks/NAME.py).

The pairs are kept by jupytext (notebooks/jupytext.toml); `python notebooks/sync.py` syncs them.
Only the cells are compared (their types and sources): outputs and metadata are ignored, since the
.ipynb alone stores outputs. The comparison is notebooks/sync.py's own (`sync.py --check`), so the
test and the command agree; the tests below also show that it catches a difference.
Skipped, with the reason, when jupytext or nbformat is not installed (`pip install -e ".[dev]"`).
"""
import importlib.util
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("notebooks_sync", REPO / "notebooks" / "sync.py")
sync = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync)
PAIRS = sync.pairs()


@pytest.fixture(autouse=True)
def _jupytext():
    for module in ("jupytext", "nbformat"):
        pytest.importorskip(module, reason=f"{module} is not installed; the notebook sources are "
                                           f"checked with the dev extra: pip install -e \".[dev]\"")


def test_pairs_are_found():
    assert len(PAIRS) >= 5, PAIRS
    assert all(ipynb.parent == REPO / "notebooks" for ipynb, _ in PAIRS)


@pytest.mark.parametrize("ipynb,py", PAIRS, ids=[ipynb.stem for ipynb, _ in PAIRS])
def test_notebook_matches_its_source(ipynb, py):
    assert (REPO / "notebooks" / "jupytext.toml").exists()
    problem = sync.differences(ipynb, py)
    assert not problem, problem


@pytest.fixture
def pair(tmp_path):
    """A copy of the first pair, to be edited."""
    ipynb, py = PAIRS[0]
    return Path(shutil.copy(ipynb, tmp_path)), Path(shutil.copy(py, tmp_path))


def _edit(path, change):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    change(nb)
    nbformat.write(nb, path)


def test_outputs_and_metadata_are_ignored(pair):
    def strip(nb):
        nb.metadata = {}
        for cell in nb.cells:
            cell.metadata = {"tags": ["x"]}
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    _edit(pair[0], strip)
    assert sync.differences(*pair) == ""


@pytest.mark.parametrize("change", ["code", "markdown", "insert", "delete"])
def test_a_difference_is_caught(pair, change):
    def edit(nb):
        import nbformat

        kind = "markdown" if change == "markdown" else "code"
        i = next(i for i, c in enumerate(nb.cells) if c.cell_type == kind)
        if change == "insert":
            nb.cells.insert(i, nbformat.v4.new_code_cell("x = 1"))
        elif change == "delete":
            del nb.cells[i]
        else:
            nb.cells[i].source += "\n# an edit made in Jupyter"
    _edit(pair[0], edit)
    problem = sync.differences(*pair)
    assert "differ" in problem and pair[0].name in problem, problem


def test_a_missing_source_is_caught(pair):
    pair[1].unlink()
    assert f"{pair[1].name} missing" in sync.differences(*pair)
