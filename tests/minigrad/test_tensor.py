"""The Tensor object and the graph: construction, accumulation, no_grad, freeing, devices."""
import numpy as np
import pytest

import minigrad as mg


def test_issue_example():
    x = mg.Tensor([[1., 2.], [3., 4.]], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2, 4], [6, 8]])


def test_dtypes():
    assert mg.Tensor([1, 2]).dtype == np.float32            # lists become float32
    assert mg.Tensor(3.0).dtype == np.float32
    assert mg.Tensor(np.zeros(2)).dtype == np.float64       # arrays keep theirs
    assert mg.Tensor(np.zeros(2, np.float32)).dtype == np.float32


def test_attributes_and_conversions():
    x = mg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.device == "cpu" and x.grad is None
    host = x.numpy()
    host[0, 0] = 99
    assert x.data[0, 0] == 0                                 # numpy() is a copy
    d = x.detach()
    assert not d.requires_grad and d.creator is None and d.data is x.data
    assert mg.Tensor([[5.0]]).item() == 5.0
    with pytest.raises(ValueError, match="one element"):
        x.item()
    assert x.to("cpu") is x
    assert "requires_grad=True" in repr(x)


def test_gradients_accumulate_until_zeroed():
    x = mg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6, 6])
    x.zero_grad()
    assert x.grad is None


def test_node_used_twice_accumulates():
    x = mg.Tensor(np.array([2.0]), requires_grad=True)
    h = x * x            # used by two consumers below
    y = h * x + h        # dy/dx = 3x^2 + 2x
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3 * 4 + 4])


def test_diamond_gradcheck(rng):
    x = mg.Tensor(rng.standard_normal((3, 3)), requires_grad=True)
    def f(x):
        a = x.tanh()
        b = a * x
        return (a @ b + b.exp()) * a
    assert mg.gradcheck(f, [x])


def test_no_grad_builds_nothing():
    x = mg.Tensor(np.ones(3), requires_grad=True)
    with mg.no_grad():
        y = x * 2 + 1
    assert y.creator is None and not y.requires_grad
    assert mg.is_grad_enabled()
    z = mg.Tensor(np.ones(3)) * 2          # no input requires grad: no graph either
    assert z.creator is None


def test_backward_needs_grad_for_non_scalar():
    x = mg.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element output"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(4))


def test_backward_without_graph_is_clear():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.Tensor(np.ones(1)).backward()


def test_chain_of_20000_ops():
    x = mg.Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(20000):
        y = y * 1.0 + 0.0
    y.backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_graph_freed_unless_retained():
    x = mg.Tensor(np.array([3.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [12.0])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_function_instance_cannot_be_called_twice():
    # A second call would overwrite what the first call saved for backward, and the
    # first output's backward would then fill the second input's .grad.
    from minigrad.ops.basic import Tanh
    a = mg.tensor([0.5, -1.0], requires_grad=True)
    b = mg.tensor([2.0, 3.0], requires_grad=True)
    op = Tanh()
    y = op(a)
    with pytest.raises(RuntimeError, match="already been called.*new one for each call"):
        op(b)
    y.sum().backward()
    np.testing.assert_allclose(a.grad, 1 - np.tanh([0.5, -1.0]) ** 2, rtol=1e-6)
    assert b.grad is None
    with pytest.raises(RuntimeError, match="already been called"):   # also after backward
        op(b)
    with mg.no_grad():                                                # and without a graph
        op2 = Tanh()
        op2(a)
        with pytest.raises(RuntimeError, match="already been called"):
            op2(a)


def test_graph_lists_ops_in_forward_order():
    from minigrad.autograd import graph
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h + h.exp()).sum()
    tensors, ops = graph(y)
    assert tensors[0] is y and x in tensors
    names = [type(f).__name__ for f, _ in ops]
    assert names[0] == "Mul" and names[-1] == "Sum" and names.index("Exp") < names.index("Add")
    assert all(out.creator is f for f, out in ops)


def test_retain_grad_on_intermediate():
    x = mg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = (x * 2).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, [4.0, 8.0])
    np.testing.assert_allclose(x.grad, [8.0, 16.0])


def test_wrong_gradient_shape_from_custom_op_is_reported():
    class Bad(mg.Function):
        def forward(self, x):
            return x * 2
        def backward(self, gy):
            return gy.sum()
    x = mg.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="Bad.backward returned a gradient of shape"):
        Bad()(x).sum().backward()


def test_numpy_array_on_the_left():
    x = mg.Tensor(np.ones(3), requires_grad=True)
    y = np.arange(3.0) * x
    assert isinstance(y, mg.Tensor)


def test_gradient_has_the_dtype_of_its_tensor(device):
    """A float64 operand makes a float64 graph, but a float32 parameter still gets a float32
    gradient (PyTorch's guarantee p.grad.dtype == p.dtype), so SGD keeps float32 state."""
    p = mg.nn.Parameter(mg.backend.to_device(np.ones(3, np.float32), device))
    h = (p * 2.0).retain_grad()                                     # float32
    y = h * mg.backend.to_device(np.array([1.0, 2.0, 3.0]), device)  # float64
    assert y.dtype == np.float64
    y.sum().backward()
    assert p.grad.dtype == np.float32 and h.grad.dtype == np.float32
    np.testing.assert_array_equal(mg.backend.as_numpy(p.grad), [2, 4, 6])
    opt = mg.optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    assert opt.state[p]["momentum_buffer"].dtype == np.float32
    assert p.dtype == np.float32


def test_numpy_scalars_are_stored_as_writable_0d_arrays(device):
    p = mg.nn.Parameter(np.float32(1.5))
    assert type(p.data) is np.ndarray and p.data.shape == () and p.dtype == np.float32
    mg.nn.init.ones_(p)                                   # writes in place
    assert p.item() == 1.0
    m = mg.nn.Module()
    m.scale = p
    m.load_state_dict({"scale": np.float64(3.0)})
    assert p.item() == 3.0 and type(p.data) is np.ndarray
    m.to(device)
    (m.scale * 2.0).backward()
    assert m.scale.grad.shape == () and m.scale.grad.dtype == np.float32
    opt = mg.optim.SGD(m.parameters(), lr=0.1)
    opt.zero_grad(set_to_none=False)                      # writes zeros in place
    assert float(mg.backend.as_numpy(m.scale.grad)) == 0.0
    x = mg.tensor(np.arange(4.0), device=device)
    for reduced in (x.sum(), x.mean(), x.max(), x.var(), x[1]):
        assert reduced.shape == () and not isinstance(reduced.data, np.generic)
    t = mg.Tensor(np.zeros(2))
    t.data = np.float64(2.0)                              # assigning a scalar keeps an array too
    assert type(t.data) is np.ndarray
