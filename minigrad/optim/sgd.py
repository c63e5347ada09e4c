"""Stochastic gradient descent with momentum, exactly PyTorch's rule."""
from .optimizer import Optimizer


class SGD(Optimizer):
    """For each parameter p with gradient g, at step t (PyTorch's formulation):

        g   = g + weight_decay * p                       (L2 penalty, folded into g)
        buf = g                          at the first step
        buf = momentum * buf + (1 - dampening) * g       afterwards
        d   = g + momentum * buf   if nesterov   else   buf
        p   = p - lr * d

    Note the buffer starts as the first gradient itself (not (1 - dampening) g),
    and lr multiplies the whole buffer: this is the "PyTorch" momentum, not
    Sutskever's, and the two differ when lr changes during training.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        if lr < 0:
            raise ValueError(f"invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"invalid momentum value: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, p, grad, state, group):
        momentum = group["momentum"]
        d = grad
        if group["weight_decay"] != 0:
            d = d + group["weight_decay"] * p.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= momentum
                buf += d if group["dampening"] == 0 else (1 - group["dampening"]) * d
            d = d + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * d
