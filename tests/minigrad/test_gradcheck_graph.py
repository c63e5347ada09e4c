"""The per-op gradient check: it names the op whose backward is wrong, and only that op."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad.gradcheck_graph import check_graph, gradcheck_graph, record, recording


# ----------------------------------------------------------------------------
# Students' ops: the documented way to write one (subclass mg.Function)
# ----------------------------------------------------------------------------
class Cube(mg.Function):
    """y = x^3, gx = 3 x^2 gy (right)."""

    def forward(self, x):
        self.x = x
        return x ** 3

    def backward(self, gy):
        return gy * 3 * self.x ** 2


class OffBy(mg.Function):
    """y = 3x with a backward off by a relative `rel` (right when rel = 0)."""

    def __init__(self, rel):
        self.rel = rel

    def forward(self, x):
        return 3 * x

    def backward(self, gy):
        return gy * 3 * (1 + self.rel)


class WrongCube(Cube):
    """y = x^3 with the classic slip: gx = 3 x gy."""

    def backward(self, gy):
        return gy * 3 * self.x


class Scale(mg.Function):
    """y = factor * x, a setting given to __init__ (right backward)."""

    def __init__(self, factor):
        self.factor = factor

    def forward(self, x):
        return self.factor * x

    def backward(self, gy):
        return gy * self.factor


class ScaleForgetsFactor(Scale):
    def backward(self, gy):
        return gy


class Running(mg.Function):
    """y = 2x, and forward updates a buffer it holds in place (like a running mean)."""

    def __init__(self, buffer):
        self.buffer = buffer

    def forward(self, x):
        self.buffer += x.mean()
        return 2 * x

    def backward(self, gy):
        return 2 * gy


class WrongShape(mg.Function):
    def forward(self, x):
        return x * 1.0

    def backward(self, gy):
        return gy.sum(axis=0)


class Crashes(mg.Function):
    def forward(self, x):
        return x * 1.0

    def backward(self, gy):
        raise IndexError("off by one")


def _site_line(marker):
    """The line number in this file of the line ending with `# <marker>`."""
    with open(__file__) as fh:
        for n, line in enumerate(fh, start=1):
            if line.rstrip().endswith(f"# <{marker}>"):
                return n
    raise AssertionError(marker)


def _student_model(op_cls):
    def model(x, w):
        h = (x @ w).tanh()
        h = op_cls()(h)  # <student-site>
        return (h * h).sum()
    return model


# ----------------------------------------------------------------------------
def test_student_op_is_named_with_its_call_site(make):
    x, w = make(4, 3), make(3, 2)
    report = gradcheck_graph(_student_model(WrongCube), [x, w])
    assert not report and not report.ok
    assert [c.name for c in report.failures] == ["WrongCube"]
    bad = report.failed
    assert bad.site == (__file__, _site_line("student-site"))
    assert bad.input_shapes == [(4, 2)]
    assert bad.worst["input"] == 0 and bad.worst["rel_error"] > 0.01
    text = str(report)
    assert "FAILED: WrongCube.backward" in text
    assert "h = op_cls()(h)" in text             # the user's line is quoted
    # the other ops (MatMul, Tanh, Mul, Sum) are reported fine
    assert {c.name: c.status for c in report.checks if c is not bad} == {
        "MatMul": "ok", "Tanh": "ok", "Mul": "ok", "Sum": "ok"}


def test_correct_graph_passes(make):
    x, w = make(4, 3), make(3, 2)
    report = gradcheck_graph(_student_model(Cube), [x, w])
    assert report.ok and report.failed is None and not report.not_checkable
    assert [c.name for c in report.checks] == ["MatMul", "Tanh", "Cube", "Mul", "Sum"]
    assert "no op's backward disagrees" in str(report)


def test_op_with_settings_is_rerun_with_its_settings(make):
    x = make(5)
    assert gradcheck_graph(lambda x: Scale(3.0)(x).sum(), [x]).ok
    report = gradcheck_graph(lambda x: Scale(3.0)(x).sum(), [x], raise_exception=False)
    assert report.ok
    report = gradcheck_graph(lambda x: ScaleForgetsFactor(3.0)(x).sum(), [x])
    assert report.failed.name == "ScaleForgetsFactor"
    # Projected on a random upstream g: numeric = 3 g_i, the forgetful analytic = g_i.
    worst = report.failed.worst
    assert worst["analytic"] / worst["numeric"] == pytest.approx(1 / 3)


def test_forward_that_rewrites_its_settings(make, device):
    # GetItem turns an index array into one on the input's device in forward: the
    # re-runs must start from the settings as they were before that forward.
    x = make(6, 3)
    idx = np.array([0, 2, 2, 5])
    assert gradcheck_graph(lambda x: (x[idx] * x[idx]).sum(), [x]).ok


def test_gradcheck_per_op_adds_the_blame_to_the_error(make):
    x, w = make(4, 3), make(3, 2)
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(_student_model(WrongCube), [x, w], per_op=True)
    msg = str(info.value)
    assert msg.startswith("gradcheck failed for input")       # the whole-function verdict first
    assert "FAILED: WrongCube.backward" in msg
    assert f"test_gradcheck_graph.py:{_site_line('student-site')}" in msg
    assert info.value.report.failed.name == "WrongCube"


def test_gradcheck_without_per_op_is_unchanged(make):
    x, w = make(4, 3), make(3, 2)
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(_student_model(WrongCube), [x, w])
    assert "per-op" not in str(info.value) and not hasattr(info.value, "report")
    assert mg.gradcheck(_student_model(Cube), [x, w], per_op=True) is True


def test_raise_exception(make):
    x = make(3)
    with pytest.raises(mg.GradcheckError, match="FAILED: WrongCube") as info:
        gradcheck_graph(lambda x: WrongCube()(x).sum(), [x], raise_exception=True)
    assert info.value.report.failed.name == "WrongCube"


def test_relu_at_zero_is_not_checkable_not_wrong(make):
    x, w = make(4, 3), make(3, 2)
    x.data[1, 2] = 0.0                       # exactly on ReLU's kink
    fn = lambda x, w: (x.relu() @ w).tanh().sum()  # noqa: E731
    # The whole-function check stumbles on the kink...
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(fn, [x, w], per_op=True)
    report = info.value.report
    # ...and the per-op check says why, blaming no op.
    assert report.ok and report.failures == []
    assert [c.name for c in report.not_checkable] == ["ReLU"]
    assert "(1, 2)" in report.not_checkable[0].detail
    assert "not checkable here: ReLU" in str(info.value)


def test_wrong_backward_at_a_kink_is_still_wrong(make):
    class BadRelu(mg.Function):           # gives 5 at x = 0: outside the subgradients [0, 1]
        def forward(self, x):
            self.x = x
            return x * (x > 0)

        def backward(self, gy):
            return gy * ((self.x > 0) + 5.0 * (self.x == 0))

    x = make(6)
    x.data[2] = 0.0
    report = gradcheck_graph(lambda x: BadRelu()(x).sum(), [x])
    assert report.failed.name == "BadRelu" and report.failed.worst["index"] == (2,)


def test_max_pool_tie_is_not_checkable(make):
    x = make(1, 2, 4, 4)
    x.data[0, 1, 2, 3] = x.data[0, 1, 3, 2] = x.data.max() + 1.0   # a tie in one window
    report = gradcheck_graph(lambda x: F.max_pool2d(x, 2).tanh().sum(), [x])
    assert report.ok and [c.name for c in report.not_checkable] == ["MaxPool2d"]
    # Max splits a tie's gradient evenly: exactly the central difference, so it checks.
    report = gradcheck_graph(lambda x: x.max(axis=(2, 3)).tanh().sum(), [x])
    assert report.ok and not report.not_checkable


def test_random_forward_is_not_checkable(make):
    x = make(50)
    report = gradcheck_graph(lambda x: F.dropout(x, 0.5).sum(), [x])
    assert report.ok
    assert [c.name for c in report.not_checkable] == ["Dropout"]
    assert "random" in report.not_checkable[0].detail


def test_buffers_updated_in_forward_are_not_corrupted(make, device):
    x = make(5)
    buf = mg.tensor(np.zeros(1), device=device).data
    assert gradcheck_graph(lambda x: Running(buf)(x).sum(), [x]).ok
    # Exactly one update: the recorded forward; the re-runs touched copies.
    assert float(buf[0]) == pytest.approx(float(x.data.mean()))


def test_batch_norm_running_stats_updated_once(make, device):
    x, w, b = make(4, 3), make(3), make(3)
    rm, rv = mg.tensor(np.zeros(3), device=device), mg.tensor(np.ones(3), device=device)
    report = gradcheck_graph(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=True)
                             .tanh().sum(), [x, w, b])
    assert report.ok, report
    mean = mg.backend.as_numpy(x.data).mean(axis=0)
    np.testing.assert_allclose(mg.backend.as_numpy(rm.data), 0.1 * mean, rtol=1e-12)


def test_backward_with_wrong_shape_or_crash_fails_that_op(make):
    x = make(3, 2)
    report = gradcheck_graph(lambda x: WrongShape()(x).sum(), [x])
    assert report.failed.name == "WrongShape" and "shape (2,)" in report.failed.detail
    report = gradcheck_graph(lambda x: Crashes()(x).tanh().sum(), [x])
    assert [c.name for c in report.failures] == ["Crashes"]
    assert "IndexError: off by one" in report.failed.detail


def test_float32_graph_is_checked_in_float64(rng):
    x = mg.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    w = mg.tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
    assert gradcheck_graph(_student_model(Cube), [x, w]).ok
    assert gradcheck_graph(_student_model(WrongCube), [x, w]).failed.name == "WrongCube"


def test_check_graph_of_a_graph_built_elsewhere(make):
    x = make(4)
    with record():
        y = WrongCube()(x).sum()  # <record-site>
    report = check_graph(y)
    assert report.failed.name == "WrongCube"
    assert report.failed.site == (__file__, _site_line("record-site"))
    # Without record(): still checked (from a copy of the op), just without a call site.
    y = WrongCube()(x).sum()
    report = check_graph(y)
    assert report.failed.name == "WrongCube" and report.failed.site is None
    assert "not recorded" in str(report)


def test_recording_only_inside_the_check(make):
    x = make(3)
    y = Cube()(x)
    assert "_recorded" not in y.creator.__dict__ and not recording()
    with pytest.raises(ZeroDivisionError):
        with record():
            assert recording()
            1 / 0
    assert not recording()
    gradcheck_graph(lambda x: Cube()(x).sum(), [x])
    assert not recording()


def test_freed_graph_and_empty_graph_errors(make):
    x = make(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        check_graph(y)
    with pytest.raises(ValueError, match="requires_grad"):
        check_graph(mg.tensor([1.0, 2.0]).sum())


# ----------------------------------------------------------------------------
# The 6-op graph of the issue: conv, WeightAlign, batch norm, ReLU, max pool,
# cross-entropy; a wrong backward planted in each op in turn.
# ----------------------------------------------------------------------------
def _six_op_classes():
    wa_f = pytest.importorskip("wa.functional")
    from minigrad.fast import conv   # the conv2d that F.conv2d runs by default
    from minigrad.fast.norm import NormalizeChannelsLast
    from minigrad.ops import loss, pool
    from minigrad.ops.basic import ReLU
    return [conv.Conv2d, wa_f.WeightAlign, NormalizeChannelsLast, ReLU, pool.MaxPool2d, loss.CrossEntropy]


def _six_op_net(device, rng):
    wa_f = pytest.importorskip("wa.functional")
    t = lambda *s: mg.tensor(rng.standard_normal(s), requires_grad=True, device=device)  # noqa: E731
    x, w, gamma = t(2, 2, 5, 5), t(4, 2, 3, 3), t(4)
    bn_w, bn_b = mg.tensor(1 + 0.2 * rng.standard_normal(4), requires_grad=True, device=device), t(4)
    target = rng.integers(0, 4, size=(2, 1, 1))

    def net(x, w, gamma, bn_w, bn_b):
        h = F.conv2d(x, wa_f.weight_align(w, gamma), padding=0)          # (2, 4, 3, 3)
        h = F.batch_norm(h, None, None, bn_w, bn_b, training=True).relu()
        h = F.max_pool2d(h, 3)                                           # (2, 4, 1, 1)
        return F.cross_entropy(h, target)
    return net, [x, w, gamma, bn_w, bn_b]


def _plant_bug(monkeypatch, cls):
    right = cls.backward

    def wrong(self, gy):
        grads = right(self, gy)
        grads = list(grads) if isinstance(grads, tuple) else [grads]
        i = next(k for k, g in enumerate(grads) if g is not None)
        grads[i] = grads[i] * 1.5
        return tuple(grads)
    monkeypatch.setattr(cls, "backward", wrong)


def test_six_op_graph_correct_passes(device, rng):
    classes = _six_op_classes()
    net, inputs = _six_op_net(device, rng)
    assert mg.gradcheck(net, inputs, per_op=True)
    report = gradcheck_graph(net, inputs)
    assert report.ok and not report.not_checkable, report
    conv, wa, *rest = [c.__name__ for c in classes]
    assert [c.name for c in report.checks] == [wa, conv] + rest   # forward order: WA, then conv


@pytest.mark.parametrize("which", range(6), ids=["conv", "wa", "bn", "relu", "pool", "ce"])
def test_six_op_graph_blames_the_planted_op(which, device, rng, monkeypatch):
    cls = _six_op_classes()[which]
    net, inputs = _six_op_net(device, rng)
    _plant_bug(monkeypatch, cls)
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(net, inputs, per_op=True)
    report = info.value.report
    assert [c.name for c in report.failures] == [cls.__name__]
    assert not report.not_checkable
    assert f"FAILED: {cls.__name__}.backward" in str(info.value)


def test_per_op_pass_rule_is_atol_plus_rtol_times_numeric(rng):
    """As for mg.gradcheck: off by 0.9 of rtol passes, off by 1.1 of it fails."""
    x = mg.Tensor(rng.standard_normal(5), requires_grad=True)

    def report(rel):
        return gradcheck_graph(lambda x: OffBy(rel)(x), [x], atol=0.0, rtol=1e-3)
    assert report(0.0) and report(0.9e-3)
    bad = report(1.1e-3)
    assert not bad and [c.name for c in bad.failures] == ["OffBy"]
