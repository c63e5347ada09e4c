"""minigrad: a small, readable autograd engine on NumPy (CPU) and CuPy (GPU).

    import minigrad as mg
    x = mg.Tensor([[1., 2.], [3., 4.]], requires_grad=True)
    (x * x).sum().backward()
    x.grad            # [[2, 4], [6, 8]]
"""
__version__ = "0.1.0"

from . import backend
from .backend import get_array_module, is_available, to_device
from .autograd import Function, Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad
from . import functional
from .gradcheck import GradcheckError, gradcheck
from . import nn, optim
from .nn.init import manual_seed
from .serialization import load, save
from .gradcheck_graph import gradcheck_graph
from . import fast
from .fast import use_fast


def tensor(data, requires_grad=False, dtype=None, device="cpu"):
    """A new leaf Tensor on `device` (PyTorch's `torch.tensor`)."""
    t = Tensor(data, dtype=dtype)
    if device != "cpu":
        t = t.to(device)
    t.requires_grad = requires_grad
    return t
