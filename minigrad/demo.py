"""A one-screen tour: build a small graph, run backward, check it against finite differences.

    python -m minigrad.demo
"""
import numpy as np

import minigrad as mg


def main():
    rng = np.random.default_rng(0)
    x = mg.Tensor(rng.standard_normal((4, 3)), requires_grad=True, name="x")
    w = mg.Tensor(rng.standard_normal((3, 2)), requires_grad=True, name="w")
    b = mg.Tensor(rng.standard_normal(2), requires_grad=True, name="b")

    def model(x, w, b):
        h = (x @ w + b).tanh()                   # a tiny layer
        return (h - h.mean(axis=0)).var(axis=0)  # a per-column statistic

    y = model(x, w, b)
    y.sum().backward()
    print("y        =", y.numpy())
    print("dL/dw    =\n", w.grad)
    ok = mg.gradcheck(model, [x, w, b])
    print("gradcheck (float64, random upstream gradient):", "passed" if ok else "FAILED")


if __name__ == "__main__":
    main()
