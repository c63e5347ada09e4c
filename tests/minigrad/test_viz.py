"""Graph drawing: the DOT text matches the graph node for node and edge for edge."""
import re
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import viz

NODE = re.compile(r"^\s*(\w+) \[label=\"((?:[^\"\\]|\\.)*)\"(.*)\];$")
EDGE = re.compile(r"^\s*(\w+) -> (\w+);$")


def parse(dot):
    """{node id: (label, attributes)} and [(tail, head)] from to_dot's text."""
    lines = dot.strip().splitlines()
    assert lines[0] == "digraph minigrad {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            nodes[m.group(1)] = (m.group(2).replace("\\n", "\n"), m.group(3))
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        else:
            assert re.match(r"^\s*(node|edge) \[.*\];$", line), f"unexpected DOT line: {line!r}"
    for tail, head in edges:
        assert tail in nodes and head in nodes
    return nodes, edges


def ops_of(nodes):
    return sorted(label for label, attrs in nodes.values() if "shape=box" in attrs)


def test_counts_match_the_graph(make):
    x, w, b = make(4, 3), make(3, 2), make(2)
    y = (x @ w + b).relu().sum()
    nodes, edges = parse(viz.to_dot(y))
    # Tensors: x, w, b, x@w, +b, relu, sum (7); ops: MatMul, Add, ReLU, Sum (4).
    assert len(nodes) == 7 + 4
    assert ops_of(nodes) == ["Add", "MatMul", "ReLU", "Sum"]
    # Each op: one arrow per input in, one arrow out: (2 + 2 + 1 + 1) + 4.
    assert len(edges) == 10
    # Arrows alternate tensor -> op -> tensor, in the direction of the data.
    is_op = {k: "shape=box" in a for k, (_, a) in nodes.items()}
    assert all(is_op[t] != is_op[h] for t, h in edges)
    label = {k: lab for k, (lab, _) in nodes.items()}
    into = {label[h]: sorted(label[t] for t, hh in edges if hh == h) for h in label if is_op[h]}
    assert into["MatMul"] == ["(3, 2) float64", "(4, 3) float64"]
    assert into["Add"] == ["(2,) float64", "(4, 2) float64"]


def test_shared_input_is_one_node_with_two_arrows(make):
    x = make(3)
    nodes, edges = parse(viz.to_dot(x * x))
    assert len(nodes) == 3          # x, x*x, Mul
    assert len(edges) == 3          # x -> Mul twice, Mul -> y
    assert len(set(edges)) == 2


def test_leaves_constants_and_output_look_different(make):
    x = make(3)
    c = mg.tensor(np.ones(3), device=x.device)
    y = (x * c).sum()
    nodes, _ = parse(viz.to_dot(y))
    by_label = {lab.split("\n")[0]: attrs for lab, attrs in nodes.values()}
    leaf = [a for lab, a in nodes.values() if "fillcolor=\"#cfe2ff\"" in a]
    const = [a for lab, a in nodes.values() if "dashed" in a]
    assert len(leaf) == 1 and len(const) == 1
    assert "penwidth=2" in by_label["() float64"]            # the output


def test_names_from_tensor_name_and_module(rng):
    nn = pytest.importorskip("minigrad.nn")
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = mg.Tensor(rng.standard_normal((5, 3)).astype(np.float32), name="images")
    nodes, _ = parse(viz.to_dot(model(x).sum(), module=model))
    names = {lab.split("\n")[0] for lab, _ in nodes.values()}
    assert {"images", "0.weight", "0.bias", "2.weight", "2.bias"} <= names
    # Without the module, parameters are drawn by shape alone.
    nodes, _ = parse(viz.to_dot(model(x).sum()))
    assert not any(lab.startswith("0.") for lab, _ in nodes.values())


def test_names_from_a_dict_and_shapes_values_switches(make):
    w = make(2)
    y = (w * 2.0).sum()
    nodes, _ = parse(viz.to_dot(y, module={"my.weight": w}, show_shapes=False))
    labels = {lab for lab, _ in nodes.values()}
    assert "my.weight" in labels and not any("float64" in lab for lab in labels)
    nodes, _ = parse(viz.to_dot(y, show_values=True))
    w0 = float(mg.backend.as_numpy(w.data)[0])
    assert any(f"{w0:.3f}"[:5] in lab for lab, _ in nodes.values())


def test_quotes_in_names_are_escaped(make):
    x = make(2)
    x.name = 'say "hi" \\ there'
    nodes, _ = parse(viz.to_dot((x * x).sum()))
    assert any(lab.startswith('say \\"hi\\" \\\\ there') for lab, _ in nodes.values())


def test_wa_block_graph_names_its_parameters(rng):
    wa_nn = pytest.importorskip("wa.nn")
    nn = pytest.importorskip("minigrad.nn")
    block = nn.Sequential(wa_nn.WAConv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    x = mg.tensor(rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    nodes, edges = parse(viz.to_dot(block(x), module=block))
    assert {"WeightAlign", "Conv2d", "ReLU"} <= set(ops_of(nodes))
    names = {lab.split("\n")[0] for lab, _ in nodes.values()}
    assert "0.weight" in names and "1.weight" in names


def test_long_chain_has_no_recursion_limit(make):
    y = make(2)
    for _ in range(3000):
        y = y * 1.0
    nodes, edges = parse(viz.to_dot(y))
    assert len(ops_of(nodes)) == 3000


def test_freed_graph_says_retain_graph(make):
    x = make(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        viz.to_dot(y)


def test_trace_gives_forward_order(make):
    x = make(3)
    a = x.exp()
    b = (a * x).tanh()
    y = (a + b).sum()
    tensors, ops = viz.trace(y)
    names = [type(f).__name__ for f, _ in ops]
    assert names.index("Exp") < names.index("Mul") < names.index("Tanh") < names.index("Add") \
        < names.index("Sum")
    assert tensors[0] is y and all(out.creator is f for f, out in ops)


# ----------------------------------------------------------------------------
# draw(): through the graphviz package and the dot program
# ----------------------------------------------------------------------------
needs_dot = pytest.mark.skipif(not viz.dot_available(),
                               reason="Graphviz is not installed (pip install graphviz, and "
                                      "apt-get install graphviz for the dot program)")


def cpu_leaf(n):
    """The tests of the graphviz rendering draw a CPU graph: rendering reads only to_dot's
    text, which the tests above check on both devices."""
    return mg.tensor(np.arange(1.0, n + 1.0), requires_grad=True)


@needs_dot
def test_draw_svg_and_png(tmp_path):
    x = cpu_leaf(3)
    y = (x * x).sum()
    svg = viz.draw(y, tmp_path / "g.svg")
    text = (tmp_path / "g.svg").read_text()
    assert svg == tmp_path / "g.svg" and "<svg" in text and "Mul" in text
    viz.draw(y, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    source = viz.draw(y)           # no path: a graphviz.Source a notebook displays inline
    assert "Mul" in source.source


def test_draw_dot_text_needs_nothing(make, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)      # as if not installed
    y = (make(2) * 2.0).sum()
    viz.draw(y, tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == viz.to_dot(y)
    with pytest.raises(ValueError, match=".svg"):
        viz.draw(y, tmp_path / "g")


def test_draw_without_graphviz_package_says_how_to_install(make, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    assert not viz.dot_available()
    with pytest.raises(RuntimeError) as info:
        viz.draw((make(2) * 2.0).sum(), tmp_path / "g.svg")
    msg = str(info.value)
    assert "\n" not in msg and "pip install graphviz" in msg and "apt-get install graphviz" in msg


def test_draw_without_dot_program_says_how_to_install(tmp_path, monkeypatch):
    pytest.importorskip("graphviz")      # in the dev extra; the dot program is not
    monkeypatch.setenv("PATH", str(tmp_path))               # no `dot` anywhere on it
    assert not viz.dot_available()
    with pytest.raises(RuntimeError) as info:
        viz.draw((cpu_leaf(2) * 2.0).sum(), tmp_path / "g.svg")
    msg = str(info.value)
    assert "\n" not in msg
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz"):
        assert hint in msg
    assert info.value.__context__ is None or info.value.__suppress_context__   # no chained trace
