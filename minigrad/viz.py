"""Draw the computation graph behind a tensor: DOT text, or a picture through Graphviz.

    from minigrad import viz
    print(viz.to_dot(loss, module=model))   # Graphviz DOT text: pure Python, no dependency
    viz.draw(loss, "graph.svg", module=model)   # a picture: needs `pip install graphviz`
                                            # and Graphviz's `dot` program

The picture has one node per tensor and one per op, with arrows in the direction
the data flows (input tensor -> op -> output tensor), so it reads top to bottom
like the forward pass; backward walks the same arrows the other way.

* op:       a box with its Function class name (`Conv2d`, `WeightAlign`, ...);
* tensor:   an ellipse with its name (if any), shape and dtype;
* leaves that require grad (parameters, inputs being differentiated) are filled
  blue -- they receive a `.grad`; constants are grey and dashed; the output is bold.

Tensor names come from `Tensor.name`, or from `module.named_parameters()` when a
module is passed (parameters themselves carry no name: a layer's weight is
called "weight" in its layer and "layer1.0.conv1.weight" in the network).
"""
import os
import shutil

import numpy as np

from . import backend
from .autograd import graph

__all__ = ["to_dot", "draw", "dot_available", "trace"]

_INSTALL_DOT = ("install Graphviz's `dot` program: apt-get install graphviz (Debian/Ubuntu), "
                "brew install graphviz (macOS) or conda install graphviz; to_dot() works without it")


def trace(output):
    """The graph that produced `output`: (tensors, ops), `output` first and ops in
    forward order; the engine's own walk, `minigrad.autograd.graph`."""
    return graph(output)


def _names(module):
    """{id(tensor): name} from a Module, a {name: tensor} dict, or (name, tensor) pairs."""
    if module is None:
        return {}
    if hasattr(module, "named_parameters"):
        pairs = list(module.named_parameters())
        if hasattr(module, "named_buffers"):
            pairs += list(module.named_buffers())
    elif isinstance(module, dict):
        pairs = module.items()
    else:
        pairs = module
    return {id(t): name for name, t in pairs}


def _quote(text):
    """A DOT string literal (newlines become DOT's centred line breaks)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _values(t):
    a = backend.as_numpy(t.data)
    if a.size <= 8:
        return np.array2string(a.reshape(-1), precision=3, separator=", ", suppress_small=True)
    return f"min {a.min():.3g}, max {a.max():.3g}"


def to_dot(output, show_shapes=True, show_values=False, module=None):
    """Graphviz DOT text for the graph that produced `output`.

    show_shapes: print each tensor's shape and dtype.
    show_values: print each tensor's values (up to 8 of them; else min and max).
    module:      a Module (or a {name: tensor} dict) whose `named_parameters()`
                 and buffers name the tensors they contain.
    """
    names = _names(module)
    tensors, ops = trace(output)
    tid = {id(t): f"t{i}" for i, t in enumerate(tensors)}
    lines = ["digraph minigrad {",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555"];']
    for t in tensors:
        name = t.name or names.get(id(t))
        label = [name] if name else []
        if show_shapes:
            label.append(f"{tuple(t.shape)} {t.dtype}")
        if show_values:
            label.append(_values(t))
        if not label:
            label = [" "]
        if t.creator is None and t.requires_grad:
            style = 'style=filled, fillcolor="#cfe2ff"'          # a leaf that gets a .grad
        elif t.creator is None:
            style = 'style="filled,dashed", fillcolor="#eeeeee"'   # a constant
        else:
            style = 'style=solid'
        if t is output:
            style += ", penwidth=2"
        lines.append(f"  {tid[id(t)]} [label={_quote(chr(10).join(label))}, shape=ellipse, {style}];")
    for i, (f, out) in enumerate(ops):
        fid = f"f{i}"
        lines.append(f'  {fid} [label={_quote(type(f).__name__)}, shape=box, '
                     f'style="rounded,filled", fillcolor="#fff3cd"];')
        for x in f.inputs:
            lines.append(f"  {tid[id(x)]} -> {fid};")
        lines.append(f"  {fid} -> {tid[id(out)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_available():
    """True when both the `graphviz` Python package and the `dot` program are installed."""
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def draw(output, path=None, **options):
    """Render the graph of `output` with Graphviz; `options` go to `to_dot`.

    path: where to write; the suffix picks the format (.svg, .png, .pdf; .dot or
          .gv write the DOT text and need nothing installed).  Returns the path.
    Without a path, returns a `graphviz.Source`, which a notebook displays inline.
    """
    text = to_dot(output, **options)
    fmt = os.path.splitext(str(path))[1].lstrip(".").lower() if path is not None else None
    if path is not None and not fmt:
        raise ValueError(f"cannot tell the picture format of {str(path)!r}: end the path with "
                         f".svg, .png or .pdf (or .dot for the DOT text)")
    if fmt in ("dot", "gv"):
        with open(path, "w") as fh:
            fh.write(text)
        return path
    try:
        import graphviz
    except ImportError:
        raise RuntimeError("draw() needs the `graphviz` Python package: pip install graphviz "
                           "(or pip install -e '.[notebooks]'), and " + _INSTALL_DOT) from None
    if shutil.which("dot") is None:
        raise RuntimeError("draw() found no `dot` program on the PATH: " + _INSTALL_DOT)
    source = graphviz.Source(text)
    if path is None:
        return source
    try:
        picture = source.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise RuntimeError("draw() could not run `dot`: " + _INSTALL_DOT) from None
    except ValueError as e:  # graphviz rejects a format it does not know
        raise ValueError(f"cannot draw to {str(path)!r}: {e}; use .svg, .png or .pdf") from None
    with open(path, "wb") as fh:
        fh.write(picture)
    return path
