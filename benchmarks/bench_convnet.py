"""Speed of minigrad training next to PyTorch's: a small conv net, ResNet-20, and one conv layer.

    python benchmarks/bench_convnet.py [--threads N] [--rounds R] [--no-torch] [--plain]
                                       [--resnet bn,wa,gn+wa] [--resnet-batches 64,2,1]

The small net (float32, input 3x32x32, BatchNorm + ReLU after every conv):

    conv3x3 3->32, conv3x3 32->32, maxpool 2, conv3x3 32->64, conv3x3 64->64, maxpool 2,
    conv3x3 64->128, maxpool 2, global average pool, linear 128->10

ResNet-20 as users train it: `wa.models.build("resnet20", norm=spec)` at full width, for
each spec of --resnet (BN, WA alone (Fixup blocks), GN+WA), and a PyTorch twin built from
it with the same parameter names and values (`torch_resnet`).

Every training step is forward, cross-entropy, backward and an update by SGD with momentum
0.9 and weight decay 5e-4 (wa-train's optimizer).  Printed as a markdown table:
  * training-step throughput in images/s: the small net at batch 64 and 1, ResNet-20 at
    each of --resnet-batches;
  * forward and backward GFLOP/s of conv2d on the small net's largest layer (32->32 at
    32x32, batch 64), whole op and the GEMM alone;
  * this machine's own float32 matmul GFLOP/s (the ceiling for an im2col conv);
  * where PyTorch is importable, the same nets and measurements in PyTorch, run in
    the same process with the same number of threads and the same initial weights (the
    first-step losses are printed and must agree), in alternating blocks (minigrad,
    torch, minigrad, ...) so that a change in machine load hits both; each number is
    the median over the blocks.  Each block starts after --settle seconds of sleep and
    one untimed call, so that it does not share the cores with the other library's
    still-spinning worker threads.

minigrad runs its fast path (`minigrad.fast`) unless --plain turns it off with
`mg.use_fast(False)`, and with freed memory kept in the process
(`mg.fast.keep_freed_memory()`), as wa-train runs.
"""
import argparse
import os
import sys
import time

SETTLE = 0.3   # seconds of sleep before each timed block: see `alternate`

ARGS = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ARGS.add_argument("--threads", type=int, default=os.cpu_count(),
                  help="BLAS / PyTorch threads (default: all cores)")
ARGS.add_argument("--rounds", type=int, default=7, help="alternating blocks per measurement")
ARGS.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
ARGS.add_argument("--resnet", default="bn,wa,gn+wa",
                  help="norm specs of the ResNet-20 rows, comma-separated ('' for none)")
ARGS.add_argument("--resnet-batches", default="64,2,1", help="batch sizes of the ResNet-20 rows")
ARGS.add_argument("--plain", action="store_true",
                  help="run minigrad's plain algorithms (mg.use_fast(False)) instead of its fast path")
ARGS.add_argument("--settle", type=float, default=SETTLE,
                  help="seconds of sleep before each timed block, so that the other library's "
                       "spinning worker threads have gone idle (0 turns it off)")

if __name__ == "__main__":
    _threads = str(ARGS.parse_args().threads)
    # BLAS reads these when it is loaded, so they are set before numpy is imported.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = _threads

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minigrad as mg  # noqa: E402
import minigrad.functional as F  # noqa: E402

PLAN = [(3, 32), (32, 32), "pool", (32, 64), (64, 64), "pool", (64, 128), "pool"]
CLASSES = 10


# ----------------------------------------------------------------------------
# The net, written with minigrad.functional
# ----------------------------------------------------------------------------
class MinigradNet:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.convs = []  # (weight, bn weight, bn bias, running mean, running var)
        for item in PLAN:
            if item == "pool":
                continue
            cin, cout = item
            w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))  # Kaiming
            self.convs.append((mg.tensor(w.astype(np.float32), requires_grad=True),
                               mg.tensor(np.ones(cout, np.float32), requires_grad=True),
                               mg.tensor(np.zeros(cout, np.float32), requires_grad=True),
                               np.zeros(cout, np.float32), np.ones(cout, np.float32)))
        self.fc_w = mg.tensor((rng.standard_normal((CLASSES, 128)) / np.sqrt(128)).astype(np.float32),
                              requires_grad=True)
        self.fc_b = mg.tensor(np.zeros(CLASSES, np.float32), requires_grad=True)

    def parameters(self):
        return [p for conv in self.convs for p in conv[:3]] + [self.fc_w, self.fc_b]

    def loss(self, x, target):
        h, convs = x, iter(self.convs)
        for item in PLAN:
            if item == "pool":
                h = F.max_pool2d(h, 2)
            else:
                w, gamma, beta, rm, rv = next(convs)
                h = F.conv2d(h, w, padding=1)
                h = F.relu(F.batch_norm(h, rm, rv, gamma, beta, training=True))
        h = F.adaptive_avg_pool2d(h, 1).reshape(x.shape[0], -1)
        return F.cross_entropy(F.linear(h, self.fc_w, self.fc_b), target)

    def step(self, x, target):
        if not hasattr(self, "opt"):      # wa-train's optimizer: momentum 0.9, weight decay 5e-4
            self.opt = mg.optim.SGD(self.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        self.opt.zero_grad()
        loss = self.loss(x, target)
        loss.backward()
        self.opt.step()
        return loss.item()


def torch_net(net):
    """The same net in PyTorch, with the same initial weights."""
    import torch
    nn = torch.nn
    layers, convs = [], iter(net.convs)
    for item in PLAN:
        if item == "pool":
            layers.append(nn.MaxPool2d(2))
            continue
        w, gamma, beta, _, _ = next(convs)
        conv, bn = nn.Conv2d(item[0], item[1], 3, padding=1, bias=False), nn.BatchNorm2d(item[1])
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w.numpy()))
            bn.weight.copy_(torch.from_numpy(gamma.numpy()))
            bn.bias.copy_(torch.from_numpy(beta.numpy()))
        layers += [conv, bn, nn.ReLU()]
    fc = nn.Linear(128, CLASSES)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(net.fc_w.numpy()))
        fc.bias.copy_(torch.from_numpy(net.fc_b.numpy()))
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step(x, target):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        return loss.item()
    return step


# ----------------------------------------------------------------------------
# ResNet-20 (wa.models) and its PyTorch twin
# ----------------------------------------------------------------------------
def torch_resnet(model):
    """A PyTorch copy of a minigrad `wa.models` CIFAR ResNet (BasicBlock or its Fixup
    version; norm bn, gn or none; conv Conv2d or WAConv2d), with the same parameter
    names and values."""
    import torch

    from minigrad import nn as mnn
    from wa import models as wm
    from wa.nn import WAConv2d
    tnn, tF = torch.nn, torch.nn.functional

    class TWAConv2d(tnn.Conv2d):
        def __init__(self, m):
            super().__init__(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                             bias=False)
            self.eps, self.alpha = m.eps, m.alpha
            self.gamma = tnn.Parameter(torch.ones(m.out_channels))

        def forward(self, x):
            w = self.weight.reshape(self.out_channels, -1)
            d = w - w.mean(dim=1, keepdim=True)
            v = (d * d).mean(dim=1, keepdim=True)
            w_hat = self.gamma[:, None] * d / torch.sqrt(self.alpha * w.shape[1] * v + self.eps)
            return tF.conv2d(x, w_hat.reshape(self.weight.shape), None, self.stride, self.padding)

    def conv(m):
        if isinstance(m, WAConv2d):
            return TWAConv2d(m)
        return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                          bias=False)

    def norm(m):
        if isinstance(m, mnn.BatchNorm2d):
            return tnn.BatchNorm2d(m.num_features)
        if isinstance(m, mnn.GroupNorm):
            return tnn.GroupNorm(m.num_groups, m.num_channels)
        return tnn.Identity()

    def scalar():
        return tnn.Parameter(torch.zeros(1))

    class Block(tnn.Module):
        def __init__(self, b):
            super().__init__()
            self.fixup = isinstance(b, wm.FixupBasicBlock)
            self.conv1, self.conv2 = conv(b.conv1), conv(b.conv2)
            if self.fixup:
                self.bias1a, self.bias1b, self.bias2a, self.bias2b, self.scale = (
                    scalar() for _ in range(5))
                self.shortcut = None if b.shortcut is None else conv(b.shortcut)
            else:
                self.n1, self.n2 = norm(b.n1), norm(b.n2)
                self.shortcut = (tnn.Identity() if isinstance(b.shortcut, mnn.Identity) else
                                 tnn.Sequential(conv(b.shortcut[0]), norm(b.shortcut[1])))

        def forward(self, x):
            if self.fixup:
                out = tF.relu(self.conv1(x + self.bias1a) + self.bias1b)
                out = self.conv2(out + self.bias2a) * self.scale + self.bias2b
                identity = x if self.shortcut is None else self.shortcut(x + self.bias1a)
                return tF.relu(out + identity)
            out = tF.relu(self.n1(self.conv1(x)))
            return tF.relu(self.n2(self.conv2(out)) + self.shortcut(x))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fixup = model.fixup
            self.conv1, self.n1 = conv(model.conv1), norm(model.n1)
            self.layers = tnn.Sequential(*[tnn.Sequential(*[Block(b) for b in stage])
                                           for stage in model.layers])
            self.fc = tnn.Linear(model.fc.in_features, model.fc.out_features)
            if self.fixup:
                self.bias1, self.bias2 = scalar(), scalar()

        def forward(self, x):
            out = self.n1(self.conv1(x))
            out = tF.relu(out + self.bias1 if self.fixup else out)
            out = tF.adaptive_avg_pool2d(self.layers(out), 1).flatten(1)
            return self.fc(out + self.bias2 if self.fixup else out)

    net = Net()
    theirs = dict(net.named_parameters())
    ours = dict(model.named_parameters())
    if set(theirs) != set(ours):
        raise RuntimeError(f"parameter names differ: {sorted(set(theirs) ^ set(ours))}")
    with torch.no_grad():
        for name, p in ours.items():
            theirs[name].copy_(torch.from_numpy(np.array(p.data)).reshape(theirs[name].shape))
    return net


def resnet_steps(spec, batch, lr=0.01, seed=0, with_torch=True):
    """Training-step closures (minigrad, PyTorch) for ResNet-20 normalized by `spec`, same
    weights, same data, SGD with momentum 0.9 and weight decay 5e-4 (wa-train's defaults),
    and a line with both first-step losses.  with_torch=False: (minigrad step, None, None)."""
    from minigrad import optim
    from wa import models
    model = models.build("resnet20", norm=spec)
    model.train()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    t = rng.integers(0, CLASSES, batch)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    X, T = mg.tensor(x), mg.tensor(t)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(X), T)
        loss.backward()
        opt.step()
        return loss.item()

    if not with_torch:
        return step, None, None
    import torch
    tmodel = torch_resnet(model)
    tmodel.train()
    topt = torch.optim.SGD(tmodel.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)

    def tstep():
        topt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(tmodel(tx), tt)
        loss.backward()
        topt.step()
        return loss.item()

    losses = step(), tstep()
    return step, tstep, f"first-step loss: minigrad {losses[0]:.6f}, PyTorch {losses[1]:.6f}"


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
def alternate(tasks, steps, rounds, settle=SETTLE):
    """Median seconds per call of each task, timed in alternating blocks of `steps` calls.

    Each block starts after `settle` seconds of sleep and one untimed call.  Both libraries'
    worker threads (OpenBLAS's, PyTorch's OpenMP ones) keep spinning on the cores for up to
    ~0.1 s after their last parallel call; a block started right after the other library's
    would share the cores with them.  Measured without the pause: PyTorch's ResNet-20 BN step
    at batch 1 took 13.9 ms between minigrad blocks and 7.2 ms on its own."""
    for fn in tasks.values():       # warm-up: allocator, BLAS buffers, first-call costs
        fn()
    times = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, fn in tasks.items():
            time.sleep(settle)
            fn()                    # wakes this library's threads, warms the caches
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: float(np.median(t)) for name, t in times.items()}


def matmul_tasks(torch, n=1024):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    tasks = {"minigrad": lambda: a @ b}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tasks["torch"] = lambda: ta @ tb
    return tasks, 2.0 * n ** 3


def conv_tasks(torch, N=64, C=32, O=32, H=32):
    """Forward and backward of conv2d on the net's largest layer, and its GEMMs alone."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((O, C, 3, 3)) * 0.1).astype(np.float32)
    gy = rng.standard_normal((N, O, H, H)).astype(np.float32)
    flops = 2.0 * N * H * H * O * C * 9
    X, Wt = mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)
    # A channels-last input and gradient, as the net feeds them (output of a previous conv).
    X.data = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    gy_cl = np.ascontiguousarray(gy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    # The GEMM operands of the im2col algorithm: (1, M, K) and (1, K, O).  (conv2d may take
    # its kernel-row algorithm on this layer, which runs three smaller GEMMs instead; see
    # minigrad/fast/kernel_rows.py.)
    cols = F.im2col(X, 3, 1, 1).numpy()[None]
    w_mat = w.transpose(2, 3, 1, 0).reshape(1, 9 * C, O)   # row (i*3 + j)*C + c, as in cols
    g = np.ascontiguousarray(gy.transpose(0, 2, 3, 1)).reshape(1, -1, O)

    def forward():      # as in a training step, the op is released after use (its buffers
        F.conv2d(X, Wt, padding=1).creator.release()        # go back to conv's pool)

    def backward():     # the conv's own backward (dx and dw), as in a training step
        op = F.conv2d(X, Wt, padding=1).creator
        op.backward(gy_cl)
        op.release()

    tasks = {"fwd": forward, "fwd+bwd": backward,
             "gemm_fwd": lambda: np.matmul(cols, w_mat),
             "gemm_dw": lambda: np.matmul(cols.transpose(0, 2, 1), g)}
    if torch is not None:
        tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
        tgy = torch.from_numpy(gy)
        tasks["torch_fwd"] = lambda: torch.nn.functional.conv2d(tx, tw, padding=1)
        tasks["torch_fwd+bwd"] = lambda: torch.nn.functional.conv2d(tx, tw, padding=1).backward(tgy)
    return tasks, flops


def main():
    args = ARGS.parse_args()
    mg.fast.keep_freed_memory()
    mg.use_fast(not args.plain)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("(PyTorch is not installed: minigrad numbers only)\n")

    rows, checks = [], []
    net = MinigradNet()
    torch_step = torch_net(net) if torch is not None else None
    rng = np.random.default_rng(2)
    for batch, steps in ((64, 2), (1, 40)):
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        t = rng.integers(0, CLASSES, batch)
        tasks = {"minigrad": lambda: net.step(x, t)}
        if torch is not None:
            tx, tt = torch.from_numpy(x), torch.from_numpy(t)
            tasks["torch"] = lambda: torch_step(tx, tt)
            if batch == 64:     # same weights, same data: the first losses must agree
                losses = net.step(x, t), torch_step(tx, tt)
                checks.append(f"conv net: first-step loss: minigrad {losses[0]:.6f}, "
                              f"PyTorch {losses[1]:.6f}")
        sec = alternate(tasks, steps, args.rounds, args.settle)
        ips = {k: batch / v for k, v in sec.items()}
        rows.append((f"training step, batch {batch} (images/s)", ips["minigrad"], ips.get("torch")))

    for spec in filter(None, args.resnet.split(",")):
        for batch in (int(b) for b in args.resnet_batches.split(",")):
            step, tstep, first = resnet_steps(spec, batch, with_torch=torch is not None)
            tasks = {"minigrad": step} if tstep is None else {"minigrad": step, "torch": tstep}
            sec = alternate(tasks, max(1, 16 // batch), args.rounds, args.settle)
            rows.append((f"ResNet-20 {spec}, training step, batch {batch} (images/s)",
                         batch / sec["minigrad"], batch / sec["torch"] if "torch" in sec else None))
            if batch == 64 and first:
                checks.append(f"ResNet-20 {spec}: {first}")

    tasks, flops = conv_tasks(torch)
    sec = alternate(tasks, 2, args.rounds, args.settle)
    gf = {k: flops * (3 if "bwd" in k else 1) / v / 1e9 for k, v in sec.items()}
    rows.append(("conv2d 32->32 3x3, 32x32, batch 64: forward (GFLOP/s)", gf["fwd"], gf.get("torch_fwd")))
    rows.append(("same conv: forward + backward (GFLOP/s)", gf["fwd+bwd"], gf.get("torch_fwd+bwd")))

    tasks_mm, flops_mm = matmul_tasks(torch)
    sec = alternate(tasks_mm, 5, args.rounds, args.settle)
    mm = {k: flops_mm / v / 1e9 for k, v in sec.items()}
    rows.append(("float32 matmul 1024x1024x1024 (GFLOP/s)", mm["minigrad"], mm.get("torch")))
    rows.append(("conv forward GEMM alone, (65536x288)@(288x32) (GFLOP/s)", gf["gemm_fwd"], None))
    rows.append(("conv weight-gradient GEMM alone, (288x65536)@(65536x32) (GFLOP/s)", gf["gemm_dw"], None))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"minigrad {mg.__version__} ({'plain' if args.plain else 'fast'} path), NumPy {np.__version__}"
          + (f", PyTorch {torch.__version__}" if torch is not None else "")
          + f"; {args.threads} threads; {os.cpu_count()} cores; load average {load:.2f}; "
          f"medians of {args.rounds} alternating blocks, each after {args.settle} s of quiet")
    for line in checks:
        print(line)
    print()
    print("| measurement | minigrad (NumPy) | PyTorch | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        ref = f"{theirs:.1f}" if theirs is not None else "-"
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        print(f"| {name} | {ours:.1f} | {ref} | {ratio} |")
    mm_rate = mm["minigrad"]
    # Forward + backward runs three GEMMs of this layer's size (forward, weight
    # gradient, input gradient; for C == O the last has the forward's shape).
    gemms_alone = 3 * flops / (2 * flops / gf["gemm_fwd"] + flops / gf["gemm_dw"])
    print(f"\nconv2d forward runs at {gf['fwd'] / gf['gemm_fwd']:.0%} of the rate of its GEMM alone, "
          f"forward + backward at {gf['fwd+bwd'] / gemms_alone:.0%} of its three GEMMs alone; "
          f"those GEMMs reach {gf['gemm_fwd'] / mm_rate:.0%} (forward) and {gf['gemm_dw'] / mm_rate:.0%} "
          f"(weight gradient) of the square matmul rate ({mm_rate:.0f} GFLOP/s).")


if __name__ == "__main__":
    main()
