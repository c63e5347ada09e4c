"""The shape of the package: imports inside minigrad point one way, and minigrad knows nothing
of the packages built on it."""
import ast
import pathlib
import re

import minigrad

ROOT = pathlib.Path(minigrad.__file__).parent

# The one import that closes a cycle on purpose: at the end of autograd.py, so that
# Tensor's operators can call the ops of ops/basic.py, which are built on Function.
CLOSING = ("minigrad.autograd", "minigrad.ops.basic")


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports():
    """{module: set of minigrad modules it imports}, from the source text."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n, path + [n])
                if found:
                    return found
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return None


def test_no_import_cycle_inside_minigrad():
    graph = _imports()
    assert CLOSING[1] in graph[CLOSING[0]]
    # Package __init__ files gather their submodules for the user; leave them out, and
    # the one documented closing import.
    inner = {m: {n for n in deps if n not in ("minigrad", "minigrad.ops", "minigrad.nn",
                                              "minigrad.optim")}
             for m, deps in graph.items()}
    inner[CLOSING[0]].discard(CLOSING[1])
    assert _cycle(inner) is None, " -> ".join(_cycle(inner))


def test_checking_layer_points_down():
    graph = _imports()
    assert "minigrad.gradcheck_graph" in graph["minigrad.gradcheck"]
    assert "minigrad.gradcheck" not in graph["minigrad.gradcheck_graph"]
    assert graph["minigrad.finite_diff"] == set()
    assert not {"minigrad.gradcheck", "minigrad.gradcheck_graph"} & graph["minigrad.autograd"]


def test_minigrad_does_not_name_its_clients():
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "wa" for a in node.names), path
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                assert node.module.split(".")[0] != "wa", path
        assert re.search(r"(?<![\w.])wa\b", path.read_text()) is None, path


def test_plain_conv_knows_nothing_of_the_fast_path():
    """ops/conv.py is the plain algorithm: the fast path builds on it, never the reverse."""
    graph = _imports()
    assert not {m for m in graph["minigrad.ops.conv"] if m.split(".")[:2] == ["minigrad", "fast"]}
    assert "minigrad.ops.conv" in graph["minigrad.fast.conv"]


def test_import_sets_no_process_wide_state():
    """Importing minigrad calls no malloc tuning (it is the opt-in minigrad.fast.keep_freed_memory)."""
    for path in ROOT.rglob("*.py"):
        if path.name != "memory.py":
            assert "mallopt" not in path.read_text(), path
    assert not hasattr(minigrad, "MALLOC_TUNED")
