"""minigrad.nn: Module bookkeeping, the layers, and minigrad.nn.init.

Most Module tests use small custom modules built from Tensor ops only; layer tests
compare with PyTorch where it is installed, and gradient-check every layer in
float64 (module.double()) on each device.
"""
import math
from collections import OrderedDict

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn as nn
from minigrad.nn import init
from torch_reference import reference


# ----------------------------------------------------------------------------
# Small modules made from Tensor ops only
# ----------------------------------------------------------------------------
class Affine(nn.Module):
    """y = x * scale + shift, with a counter buffer."""

    def __init__(self, n):
        super().__init__()
        self.scale = nn.Parameter(np.ones(n))
        self.shift = nn.Parameter(np.zeros(n))
        self.register_buffer("calls", np.zeros(1))

    def forward(self, x):
        self.calls.data += 1
        return x * self.scale + self.shift


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Affine(3)
        self.gain = nn.Parameter(np.full(3, 2.0))
        self.blocks = nn.Sequential(Affine(3), nn.Sequential(Affine(3), nn.Identity()))

    def forward(self, x):
        return self.blocks(self.first(x) * self.gain)


def test_registration_and_dotted_names_in_order():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "gain", "first.scale", "first.shift", "blocks.0.scale", "blocks.0.shift",
        "blocks.1.0.scale", "blocks.1.0.shift"]
    assert [n for n, _ in net.named_buffers()] == ["first.calls", "blocks.0.calls", "blocks.1.0.calls"]
    assert [n for n, _ in net.named_children()] == ["first", "blocks"]
    assert len(list(net.modules())) == 7  # net, first, blocks, blocks.0, blocks.1, its two
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert not any(b.requires_grad for b in net.buffers())
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["gain"]
    # Attribute access goes through the registries.
    assert net.blocks[1][0].scale is dict(net.named_parameters())["blocks.1.0.scale"]


def test_state_dict_order_is_pytorchs():
    # A module's own parameters, then its own buffers, then each child's entries.
    assert list(Net().state_dict()) == [
        "gain", "first.scale", "first.shift", "first.calls", "blocks.0.scale", "blocks.0.shift",
        "blocks.0.calls", "blocks.1.0.scale", "blocks.1.0.shift", "blocks.1.0.calls"]


def test_shared_parameter_listed_once_and_reassignment():
    a = Affine(2)
    seq = nn.Sequential(a, a)
    assert len(list(seq.parameters())) == 2
    m = Affine(2)
    m.shift = None                      # a declared but absent parameter (like bias=False)
    assert [n for n, _ in m.named_parameters()] == ["scale"]
    with pytest.raises(TypeError, match="nn.Parameter or None"):
        m.scale = mg.Tensor(np.ones(2))  # a plain Tensor in a parameter slot
    m.calls = np.array([5.0])           # assigning to a buffer keeps it a buffer
    assert isinstance(m.calls, mg.Tensor) and "calls" in dict(m.named_buffers())
    m.note = "plain attribute"
    assert "note" not in m.state_dict()
    del m.scale
    assert [n for n, _ in m.named_parameters()] == []


def test_missing_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Bad()


def test_forward_and_backward_through_custom_module():
    net = Net()
    x = mg.Tensor(np.arange(6.0).reshape(2, 3))
    y = net(x)
    np.testing.assert_allclose(y.numpy(), 2 * x.numpy())
    y.sum().backward()
    np.testing.assert_allclose(net.gain.grad, x.numpy().sum(0))
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_train_eval_propagate():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)))
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net[1].train()
    assert not net.training and net[1][0].training and net[1][1].training
    net.train()
    assert all(m.training for m in net.modules())


# ----------------------------------------------------------------------------
# state_dict / load_state_dict
# ----------------------------------------------------------------------------
def test_state_dict_is_host_copies_and_round_trips():
    src, dst = Net(), Net()
    rng = np.random.default_rng(0)
    for p in src.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    src.first.calls.data[...] = 7
    sd = src.state_dict()
    assert all(type(v) is np.ndarray for v in sd.values())
    sd["gain"][...] = 99.0                      # a copy: the model is unaffected
    assert not np.any(src.gain.numpy() == 99.0)
    sd = src.state_dict()
    kept = [p for p in dst.parameters()]
    out = dst.load_state_dict(sd)
    assert out.missing_keys == [] and out.unexpected_keys == []
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
    assert kept == list(dst.parameters())          # loaded in place: the same Parameter objects


def test_load_state_dict_errors_name_every_bad_key():
    model = Net()
    sd = model.state_dict()
    del sd["first.shift"]
    sd["extra.weight"] = np.zeros(2)
    sd["gain"] = np.zeros(4)
    before = model.gain.numpy()
    with pytest.raises(RuntimeError) as e:
        model.load_state_dict(sd)
    msg = str(e.value)
    assert "first.shift" in msg and "missing" in msg
    assert "extra.weight" in msg and "unexpected" in msg
    assert "gain" in msg and "(4,)" in msg and "(3,)" in msg
    np.testing.assert_array_equal(model.gain.numpy(), before)   # nothing was copied


def test_load_state_dict_non_strict():
    model = Net()
    sd = model.state_dict()
    del sd["first.shift"]
    sd["extra"] = np.zeros(1)
    sd["gain"] = np.full(3, 5.0)
    out = model.load_state_dict(sd, strict=False)
    assert out.missing_keys == ["first.shift"] and out.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model.gain.numpy(), np.full(3, 5.0))
    sd["gain"] = np.zeros((1, 3))
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(sd, strict=False)   # a shape mismatch is never ignored


def test_load_state_dict_casts_to_the_models_dtype():
    m = nn.Linear(3, 2)                            # float32
    sd = {k: v.astype(np.float64) + 1 for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    assert m.weight.dtype == np.float32
    np.testing.assert_allclose(m.weight.numpy(), sd["weight"], rtol=1e-6)


# ----------------------------------------------------------------------------
# .to(device) / .double(): in place, same Parameter objects
# ----------------------------------------------------------------------------
def test_double_and_to_keep_parameter_identity():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    params = list(model.parameters())
    opt = mg.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    x = mg.Tensor(rng.standard_normal((5, 3)).astype(np.float32))
    (model(x) * mg.Tensor(rng.standard_normal((5, 4)).astype(np.float32))).sum().backward()
    assert model.double() is model
    assert list(model.parameters()) == params and all(p.dtype == np.float64 for p in params)
    assert all(p.grad.dtype == np.float64 for p in params)
    assert model[1].running_var.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64   # integer buffers are not cast
    assert model.to("cpu") is model and list(model.parameters()) == params
    before = model[0].weight.numpy()
    opt.step()                                   # the optimizer built earlier still updates them
    assert not np.allclose(model[0].weight.numpy(), before)
    model.float()
    assert all(p.dtype == np.float32 for p in params)
    with pytest.raises(ValueError, match="unknown device"):
        model.to("tpu")


def test_to_device_moves_params_grads_and_buffers(device):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    params = list(model.parameters())
    x = mg.Tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    model(x).sum().backward()
    model.to(device)
    assert list(model.parameters()) == params
    for t in list(model.parameters()) + list(model.buffers()):
        assert t.device == device
    assert all(p.grad is None or mg.backend.device_of(p.grad) == device for p in params)
    y = model(x.to(device))
    assert y.device == device
    y.sum().backward()
    assert all(type(v) is np.ndarray for v in model.state_dict().values())


# ----------------------------------------------------------------------------
# Containers and repr
# ----------------------------------------------------------------------------
def test_sequential_container():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == layers[1:]
    with pytest.raises(IndexError):
        seq[3]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    seq.append(nn.Identity())
    assert len(seq) == 4
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(ml.parameters())) == 6 and len(ml) == 3 and ml[1] is list(ml)[1]


def test_repr_nests_like_pytorch():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(),
                        nn.Sequential(nn.Flatten(), nn.Linear(8, 2)))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Linear(in_features=8, out_features=2, bias=True)\n"
        "  )\n"
        ")")


def _all_layers(torch_nn):
    """The same list of layers in either library (their argument lists are identical)."""
    return [torch_nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2, groups=2),
            torch_nn.Conv2d(8, 8, (1, 3), bias=False), torch_nn.Linear(5, 3),
            torch_nn.Linear(5, 3, bias=False), torch_nn.BatchNorm2d(8),
            torch_nn.BatchNorm1d(3, momentum=None, affine=False), torch_nn.GroupNorm(2, 8, eps=1e-3),
            torch_nn.LayerNorm([4, 5]), torch_nn.InstanceNorm2d(8),
            torch_nn.InstanceNorm2d(8, affine=True, track_running_stats=True), torch_nn.ReLU(),
            torch_nn.MaxPool2d(3, 2, 1), torch_nn.MaxPool2d(2), torch_nn.AvgPool2d(2),
            torch_nn.AdaptiveAvgPool2d(1), torch_nn.Flatten(), torch_nn.Dropout(0.2),
            torch_nn.Identity()]


def test_layer_repr_and_state_dict_keys_match_pytorch():
    def torch_layers(torch):
        theirs = _all_layers(torch.nn)
        answer = {"Sequential": repr(torch.nn.Sequential(*theirs))}
        for i, b in enumerate(theirs):
            answer[f"{i}.repr"] = repr(b)
            answer[f"{i}.state_dict"] = " ".join(f"{k}{tuple(v.shape)}" for k, v in b.state_dict().items())
        return answer

    theirs = reference("nn/layer_reprs", {}, torch_layers)
    ours = _all_layers(nn)
    for i, a in enumerate(ours):
        assert repr(a) == str(theirs[f"{i}.repr"])
        keys = " ".join(f"{k}{tuple(v.shape)}" for k, v in a.state_dict().items())
        assert keys == str(theirs[f"{i}.state_dict"]), repr(a)
    assert repr(nn.Sequential(*ours)) == str(theirs["Sequential"])


# ----------------------------------------------------------------------------
# Initialisation
# ----------------------------------------------------------------------------
def test_fan_in_and_fan_out():
    assert init.calculate_fan_in_and_fan_out(mg.Tensor(np.empty((16, 8, 3, 5)))) == (120, 240)
    assert init.calculate_fan_in_and_fan_out(mg.Tensor(np.empty((10, 4)))) == (4, 10)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.calculate_fan_in_and_fan_out(mg.Tensor(np.empty(5)))


def test_gains():
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_kaiming_statistics_and_in_place():
    mg.manual_seed(0)
    w = mg.Tensor(np.empty((128, 64, 3, 3), np.float32))   # fan_in 576, fan_out 1152
    array = w.data
    init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
    assert w.data is array and w.dtype == np.float32          # filled in place
    target = math.sqrt(2 / 576)                                # the paper's sqrt(2/n)
    assert abs(w.data.std() / target - 1) < 0.02 and abs(w.data.mean()) < 0.02 * target
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.data.std() / math.sqrt(2 / 1152) - 1) < 0.02
    init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(3) * target
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound
    assert abs(w.data.std() / target - 1) < 0.02
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_normal_(w, mode="fan_avg")


def test_simple_initialisers():
    mg.manual_seed(0)
    t = mg.Tensor(np.empty((200, 300)))
    init.normal_(t, mean=1.0, std=3.0)
    assert abs(t.data.mean() - 1) < 0.05 and abs(t.data.std() - 3) < 0.05
    init.uniform_(t, -2.0, 4.0)
    assert t.data.min() >= -2 and t.data.max() <= 4 and abs(t.data.mean() - 1) < 0.05
    init.constant_(t, 0.25)
    assert np.all(t.data == 0.25)
    init.ones_(t)
    assert np.all(t.data == 1)
    init.zeros_(t)
    assert np.all(t.data == 0)
    init.xavier_uniform_(t)
    assert np.abs(t.data).max() <= math.sqrt(6 / 500)


def test_manual_seed_makes_initialisation_reproducible():
    mg.manual_seed(3)
    a = nn.Conv2d(3, 4, 3).weight.numpy()
    b = nn.Conv2d(3, 4, 3).weight.numpy()
    mg.manual_seed(3)
    assert np.array_equal(nn.Conv2d(3, 4, 3).weight.numpy(), a)
    assert not np.array_equal(a, b)


def test_default_init_of_conv_and_linear():
    mg.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3, groups=2)        # fan_in = 16/2 * 9 = 72
    lin = nn.Linear(300, 200)
    for w, b, fan_in in [(conv.weight, conv.bias, 72), (lin.weight, lin.bias, 300)]:
        bound = 1 / math.sqrt(fan_in)            # kaiming_uniform_(a=sqrt(5)) gives 1/sqrt(fan_in)
        assert w.dtype == np.float32 and b.dtype == np.float32
        assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.95 * bound
        assert np.abs(b.data).max() <= bound
    assert abs(lin.weight.data.std() * math.sqrt(3 * 300) - 1) < 0.02  # U(-b, b): std b/sqrt(3)
    bn = nn.BatchNorm2d(5)
    assert np.all(bn.weight.data == 1) and np.all(bn.bias.data == 0)
    assert np.all(bn.running_mean.data == 0) and np.all(bn.running_var.data == 1)
    assert nn.InstanceNorm2d(4).weight is None and nn.InstanceNorm2d(4).running_mean is None


def test_default_init_matches_pytorch_statistics():
    makes = (lambda m: m.Conv2d(64, 128, 3), lambda m: m.Linear(512, 256))

    def torch_init(torch):
        torch.manual_seed(0)
        answer = {}
        for i, make in enumerate(makes):
            for name, q in make(torch.nn).named_parameters():
                q = q.detach().double().numpy()
                answer[f"{i}.{name}.max_abs"], answer[f"{i}.{name}.std"] = np.abs(q).max(), q.std()
        return answer

    theirs = reference("nn/default_init", {}, torch_init)
    mg.manual_seed(0)
    for i, make in enumerate(makes):
        ours = make(nn)
        for name, p in ours.named_parameters():   # the same U(-b, b): same max |value| ...
            assert abs(np.abs(p.data).max() / theirs[f"{i}.{name}.max_abs"] - 1) < 0.05, name
        # ... and, on many samples, std
        assert abs(ours.weight.data.std() / theirs[f"{i}.weight.std"] - 1) < 0.02


# ----------------------------------------------------------------------------
# Layers: checks, forward/backward against PyTorch, gradient checks
# ----------------------------------------------------------------------------
def test_layer_argument_checks():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 8, 3, groups=2)
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(3, 8)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(3, 8, (3, 3, 3))


def test_adaptive_avg_pool_any_output_size(rng):
    x = mg.Tensor(rng.standard_normal((2, 3, 6, 4)))
    y = nn.AdaptiveAvgPool2d(2)(x)
    assert y.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(y.numpy()[:, :, 0, 0], x.numpy()[:, :, :3, :2].mean(axis=(2, 3)))


def test_layer_input_errors_name_the_layer():
    x = mg.Tensor(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*expects 3 channels"):
        nn.Conv2d(3, 8, 3)(x)
    with pytest.raises(ValueError, match="4-D input"):
        nn.Conv2d(4, 8, 3)(x[0])
    with pytest.raises(ValueError, match="last dim is 3"):
        nn.Linear(3, 2)(mg.Tensor(np.zeros((2, 4), np.float32)))
    with pytest.raises(ValueError, match="BatchNorm2d.*4-D input"):
        nn.BatchNorm2d(4)(mg.Tensor(np.zeros((2, 4), np.float32)))
    with pytest.raises(ValueError, match="expects 5 channels"):
        nn.GroupNorm(1, 5)(x)
    with pytest.raises(ValueError, match="ending in"):
        nn.LayerNorm(4)(x)


def test_conv2d_subclass_can_transform_its_weight():
    class DoubledConv(nn.Conv2d):  # the pattern a weight re-parameterization uses
        def forward(self, x):
            return self._conv_forward(x, self.weight * 2.0, self.bias)

    a = DoubledConv(3, 4, 3, padding=1, bias=False)
    b = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    b.weight.data[...] = 2 * a.weight.data
    x = mg.Tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32))
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), rtol=1e-5, atol=1e-6)
    a(x).sum().backward()
    assert a.weight.grad.shape == a.weight.shape


def test_dropout_layer_modes():
    d = nn.Dropout(0.5)
    x = mg.Tensor(np.ones((100, 100)))
    y = d(x).numpy()
    assert 0.45 < np.mean(y == 0) < 0.55 and set(np.unique(y)) <= {0.0, 2.0}
    d.eval()
    assert np.array_equal(d(x).numpy(), x.numpy())


def test_batchnorm_buffers_update_only_in_training():
    bn = nn.BatchNorm2d(3).double()
    x = mg.Tensor(np.random.default_rng(0).normal(2.0, 3.0, (4, 3, 5, 5)))
    bn(x)
    assert int(bn.num_batches_tracked.item()) == 1
    m = x.data.mean(axis=(0, 2, 3))
    v = x.data.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * m)
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * v)
    bn.eval()
    before = bn.running_mean.numpy()
    y = bn(x)
    np.testing.assert_array_equal(bn.running_mean.data, before)
    expected = (x.data - before[:, None, None]) / np.sqrt(bn.running_var.data[:, None, None] + 1e-5)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)


LAYER_CASES = {   # small shapes: PyTorch's answers are stored in tests/golden/nn/layers/
    "conv": (lambda m: m.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2), (2, 4, 7, 6)),
    "depthwise": (lambda m: m.Conv2d(4, 4, 5, padding=2, groups=4, bias=False), (2, 4, 5, 5)),
    "linear": (lambda m: m.Linear(5, 3), (4, 5)),
    "bn2d": (lambda m: m.BatchNorm2d(4), (2, 4, 3, 3)),
    "bn1d": (lambda m: m.BatchNorm1d(4), (6, 4)),
    "bn1d_3d": (lambda m: m.BatchNorm1d(4, momentum=None), (3, 4, 5)),
    "bn_no_stats": (lambda m: m.BatchNorm2d(4, track_running_stats=False), (2, 4, 3, 3)),
    "gn": (lambda m: m.GroupNorm(2, 4), (2, 4, 3, 3)),
    "gn_no_bias": (lambda m: m.GroupNorm(4, 4, eps=1e-3, bias=False), (2, 4, 3, 3)),
    "ln_no_bias": (lambda m: m.LayerNorm(5, elementwise_affine=True, bias=False), (3, 4, 5)),
    "ln": (lambda m: m.LayerNorm([4, 3]), (2, 3, 4, 3)),
    "in": (lambda m: m.InstanceNorm2d(4), (2, 4, 3, 3)),
    "in_stats": (lambda m: m.InstanceNorm2d(4, affine=True, track_running_stats=True), (2, 4, 3, 3)),
    "maxpool": (lambda m: m.MaxPool2d(3, 2, 1), (2, 2, 7, 7)),
    "avgpool": (lambda m: m.AvgPool2d(2), (2, 2, 6, 6)),
    "gap": (lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 4, 4)),
    "flatten": (lambda m: m.Flatten(), (2, 3, 4, 5)),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layers_match_pytorch_forward_backward_and_buffers(case):
    """Three steps (train, eval, train) of the same float64 layer in both libraries: outputs,
    gradients and buffers after each step.  The parameters come from a seed, not from either
    library's initialisation, so both start from the same numbers."""
    make_layer, shape = LAYER_CASES[case]
    modes = ("train", "eval", "train")
    ours = make_layer(nn).double()
    init_rng = np.random.default_rng(0)
    for p in ours.parameters():
        p.data[...] = init_rng.standard_normal(p.shape)
    inputs = {name: np.array(p.numpy()) for name, p in ours.named_parameters()}
    rng = np.random.default_rng(1)
    steps = []
    for i, mode in enumerate(modes):
        getattr(ours, mode)()
        inputs[f"x{i}"] = rng.normal(0.5, 2.0, shape)
        x = mg.tensor(inputs[f"x{i}"], requires_grad=True)
        y = ours(x)
        inputs[f"g{i}"] = rng.standard_normal(y.shape)
        y.backward(inputs[f"g{i}"])
        steps.append({"y": y.numpy(), "x.grad": np.array(x.grad),
                      "grads": {name: np.array(p.grad) for name, p in ours.named_parameters()},
                      "state": {k: np.array(v) for k, v in ours.state_dict().items()}})
        ours.zero_grad()

    def torch_layer(torch, **a):
        theirs = make_layer(torch.nn).double()
        with torch.no_grad():
            for name, q in theirs.named_parameters():
                q.copy_(torch.tensor(a[name]))
        answer = {}
        for i, mode in enumerate(modes):
            getattr(theirs, mode)()
            xt = torch.tensor(a[f"x{i}"], requires_grad=True)
            yt = theirs(xt)
            yt.backward(torch.tensor(a[f"g{i}"]))
            answer[f"{i}.y"], answer[f"{i}.x.grad"] = yt, xt.grad
            answer |= {f"{i}.grad.{name}": q.grad.clone() for name, q in theirs.named_parameters()}
            answer |= {f"{i}.state.{k}": v.clone() for k, v in theirs.state_dict().items()}
            theirs.zero_grad()
        return answer

    theirs = reference(f"nn/layers/{case}", inputs, torch_layer)
    for i, step in enumerate(steps):
        np.testing.assert_allclose(step["y"], theirs[f"{i}.y"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(step["x.grad"], theirs[f"{i}.x.grad"], rtol=1e-9, atol=1e-11)
        for name, grad in step["grads"].items():
            np.testing.assert_allclose(grad, theirs[f"{i}.grad.{name}"], rtol=1e-9, atol=1e-11,
                                       err_msg=name)
        assert sorted(step["state"]) == sorted(k[len(f"{i}.state."):] for k in theirs
                                               if k.startswith(f"{i}.state."))
        for k, v in step["state"].items():  # running statistics and batch counters
            np.testing.assert_allclose(v, theirs[f"{i}.state.{k}"], rtol=1e-12, err_msg=k)


GRAD_CASES = {
    "conv": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 7, 6)),
    "linear": (lambda: nn.Linear(5, 3), (4, 5)),
    "bn2d": (lambda: nn.BatchNorm2d(3), (4, 3, 3, 3)),
    "gn": (lambda: nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    "ln": (lambda: nn.LayerNorm(6), (3, 6)),
    "in": (lambda: nn.InstanceNorm2d(3, affine=True), (2, 3, 4, 4)),
    "net": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
                                  nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 2)), (2, 3, 4, 4)),
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_layer_gradcheck_float64(case, device, make):
    make_layer, shape = GRAD_CASES[case]
    layer = make_layer().double().to(device)
    rng = np.random.default_rng(2)
    for p in layer.parameters():   # move affine parameters off 1 and 0
        p.data[...] = mg.backend.to_device(rng.uniform(0.5, 1.5, p.shape), device)
    x = make(*shape)
    assert mg.gradcheck(lambda x, *params: layer(x), [x, *layer.parameters()])


def test_forward_hook_sees_inputs_and_output_can_replace_it_and_is_removable():
    layer, seen = nn.Linear(3, 2), []
    handle = layer.register_forward_hook(lambda m, inputs, out: seen.append((m, inputs, out)))
    x = mg.Tensor(np.ones((4, 3), np.float32))
    y = layer(x)
    assert len(seen) == 1 and seen[0][0] is layer and seen[0][1][0] is x and seen[0][2] is y
    h2 = layer.register_forward_hook(lambda m, inputs, out: out * 0)   # replaces the output
    assert np.all(layer(x).numpy() == 0)
    handle.remove()
    h2.remove()
    np.testing.assert_array_equal(layer(x).numpy(), y.numpy())
    assert len(seen) == 2
