"""The README's index from each of the paper's equations to its code, test and notebook stays true.

Every row of the table under "## From the paper to the code" names a function or class
(`path.py:Name` or `path.py:Class.method`), a test (`tests/...py::test_name`) and a notebook
section (`02 §6`: notebook 02's heading `## 6. ...`).  A renamed function, a deleted test or a
renumbered section fails here, so the index cannot point at something that is not there.
"""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEADING = "## From the paper to the code"


def index_rows():
    text = (REPO / "README.md").read_text()
    assert HEADING in text, f"README.md has no section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines()
            if line.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line)]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:]]   # rows[0]: header


def names_defined(path):
    """Every `Name` and `Class.method` defined at the top level of a Python file."""
    tree = ast.parse((REPO / path).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update(f"{node.name}.{m.name}" for m in node.body
                             if isinstance(m, ast.FunctionDef))
    return names


def code_refs(cell):
    return re.findall(r"`([\w/]+\.py):([\w.]+)`", cell)


def named_tests(cell):
    return re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", cell)


def notebook_refs(cell):
    return re.findall(r"`(\d\d) §(\d+)`", cell)


def test_the_index_has_every_equation_and_a_reference_in_each_column():
    rows = index_rows()
    eqs = set()
    for r in rows:
        for first, last in re.findall(r"\((\d+)\)(?:-\((\d+)\))?", r[0]):   # (11)-(14): a range
            eqs.update(str(n) for n in range(int(first), int(last or first) + 1))
    assert {str(n) for n in range(1, 16)} <= eqs, f"equations missing: {set(map(str, range(1, 16))) - eqs}"
    assert any("Table IV" in r[0] for r in rows), "Table IV's ablations are not indexed"
    for r in rows:
        assert code_refs(r[2]) and named_tests(r[3]) and notebook_refs(r[4]), f"incomplete row: {r}"


@pytest.mark.parametrize("row", index_rows(), ids=lambda r: r[0])
def test_every_reference_exists(row):
    for path, name in code_refs(row[2]):
        assert (REPO / path).is_file(), f"{row[0]}: {path} does not exist"
        assert name in names_defined(path), f"{row[0]}: {path} defines no {name}"
    for path, name in named_tests(row[3]):
        assert (REPO / path).is_file(), f"{row[0]}: {path} does not exist"
        assert name in names_defined(path), f"{row[0]}: {path} has no test {name}"
    for nb, section in notebook_refs(row[4]):
        sources = sorted((REPO / "notebooks").glob(f"{nb}_*.py"))
        assert sources, f"{row[0]}: no notebook {nb}_*.py"
        headings = re.findall(r"^# ##\s+(\d+)\s*[.·]", sources[0].read_text(), flags=re.M)
        assert section in headings, f"{row[0]}: {sources[0].name} has no section {section}"
