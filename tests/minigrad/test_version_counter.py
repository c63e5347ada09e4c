"""The version counter: an in-place change of a tensor a graph saved is caught by backward.

Every op keeps what its backward needs, some as views of their inputs (Linear's
weight, a 1x1 convolution's weight matrix) and some as copies (a 3x3 convolution's
im2col weights).  Without a check, an optimizer step between forward and backward
would change the gradients of the first kind and not of the second; with it, every
op refuses alike, with one line that names the op and the tensor.
"""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn as nn
from minigrad import optim

LAYERS = {
    "conv1x1": (lambda: nn.Conv2d(4, 6, 1), (2, 4, 5, 5)),
    "conv3x3": (lambda: nn.Conv2d(4, 6, 3, padding=1), (2, 4, 5, 5)),
    "linear": (lambda: nn.Linear(5, 3), (4, 5)),
    "batchnorm": (lambda: nn.BatchNorm2d(4), (2, 4, 5, 5)),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), (2, 4, 5, 5)),
    "layernorm": (lambda: nn.LayerNorm((5, 5)), (2, 4, 5, 5)),
}


def _layer_and_output(name, rng, device):
    build, shape = LAYERS[name]
    mg.manual_seed(0)
    layer = build().to(device)
    x = mg.tensor(rng.standard_normal(shape).astype(np.float32), device=device)
    y = layer(x)
    g = mg.tensor(rng.standard_normal(y.shape).astype(np.float32), device=device)
    return layer, y, g


def _changes(layer):
    """The in-place changes a user makes between forward and backward, one per name."""
    return {
        "SGD.step": lambda: optim.SGD(layer.parameters(), lr=0.1, momentum=0.9).step(),
        "Adam.step": lambda: optim.Adam(layer.parameters(), lr=0.1).step(),
        "hand-written step": lambda: [p.__setattr__("data", p.data - 0.1 * p.grad)
                                      for p in layer.parameters()],
        "init": lambda: nn.init.normal_(layer.weight),
        "load_state_dict": lambda: layer.load_state_dict(layer.state_dict()),
    }


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_step_between_backward_and_a_second_backward_raises(name, fast, rng, device):
    with mg.use_fast(fast):
        layer, y, g = _layer_and_output(name, rng, device)
        op = type(y.creator).__name__
        y.backward(g, retain_graph=True)
        v = layer.weight._version             # initialisers have counted already
        optim.SGD(layer.parameters(), lr=0.1).step()
        with pytest.raises(RuntimeError) as info:
            y.backward(g)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{op}.backward needs its input 1, a Parameter of shape "
                          f"{tuple(layer.weight.shape)},")
    assert "changed in place" in msg and f"(version {v} then, {v + 1} now;" in msg
    assert "do not step() the optimizer or change a tensor in place between forward and backward" in msg


@pytest.mark.parametrize("change", sorted(_changes(nn.Linear(1, 1))))
def test_every_kind_of_in_place_change_is_caught(change, rng, device):
    layer, y, g = _layer_and_output("conv3x3", rng, device)
    y.backward(g, retain_graph=True)          # gradients for the steps to use
    _changes(layer)[change]()
    with pytest.raises(RuntimeError, match=r"Conv2d\.backward needs its input 1, a Parameter"):
        y.backward(g)


def test_changes_that_are_not_in_place_changes_of_data_are_allowed(rng, device):
    """zero_grad touches .grad, not .data; a no_grad forward changes nothing saved."""
    layer, y, g = _layer_and_output("linear", rng, device)
    y.backward(g, retain_graph=True)
    first = layer.weight.grad.copy()
    opt = optim.SGD(layer.parameters(), lr=0.1)
    opt.zero_grad(set_to_none=False)
    with mg.no_grad():
        layer(mg.tensor(rng.standard_normal((4, 5)).astype(np.float32), device=device))
    y.backward(g)
    np.testing.assert_array_equal(mg.backend.as_numpy(layer.weight.grad), mg.backend.as_numpy(first))


def test_versions_count_in_place_changes(device):
    layer = nn.Linear(3, 2).to(device)
    w = layer.weight
    assert mg.Tensor(np.ones(2))._version == 0
    v = w._version                            # the constructor's initialiser counted already
    nn.init.zeros_(w)
    assert w._version == v + 1
    layer.load_state_dict(layer.state_dict())
    assert w._version == v + 2
    w.grad = mg.backend.to_device(np.ones(w.shape, np.float32), device)
    opt = optim.SGD([w], lr=0.1)
    opt.step()
    assert w._version == v + 3
    opt.zero_grad(set_to_none=False)
    opt.zero_grad()
    assert w._version == v + 3
    w.data[...] = 0                           # a write through an index is invisible ...
    assert w._version == v + 3
    mg.autograd.increment_version(w)          # ... unless the writer says so
    assert w._version == v + 4


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_a_training_loop_never_raises(fast, rng, device):
    """forward, backward, step, repeated; also with retain_graph=True on graphs never reused."""
    mg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 1), nn.GroupNorm(2, 4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).to(device)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = mg.tensor(rng.standard_normal((8, 3, 6, 6)).astype(np.float32), device=device)
    target = rng.integers(0, 3, 8)
    losses = []
    with mg.use_fast(fast):
        for step in range(4):
            opt.zero_grad()
            loss = mg.functional.cross_entropy(model(x), target)
            loss.backward(retain_graph=step % 2 == 1)
            opt.step()
            losses.append(loss.item())
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
