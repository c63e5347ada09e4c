"""Does `wa-train` with its defaults learn as well as PyTorch's usual short-run recipe?

    python benchmarks/train_vs_pytorch.py [--norms bn,wa,gn+wa] [--epochs 15] [--seeds 0]

For each normalization spec and seed, two runs on the same images, batches and augmentation
(wa.data's loaders, same seed) from the same initial weights:

* minigrad: `wa-train` with no optimization flag (its default recipe);
* PyTorch: the twin network of `bench_convnet.torch_resnet`, trained with the recipe people
  use for short CIFAR runs: SGD with Nesterov momentum 0.9, weight decay 5e-4, and
  `torch.optim.lr_scheduler.OneCycleLR(max_lr=0.05)` with PyTorch's own defaults (momentum
  cycling included), stepped per batch.

It prints a markdown table of final test accuracies and their difference.  With a few hundred
test images one run's accuracy has a standard error of about 2.5 points, so pass several
--seeds before reading a difference of a few points.  Needs PyTorch (CPU build is enough).
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def minigrad_run(spec, args, seed):
    """wa-train with its defaults; returns the final test accuracy."""
    from wa import train
    out = tempfile.mkdtemp(prefix=f"tvp-{spec}-")
    argv = ["--dataset", args.dataset, "--model", args.model, "--norm", spec, "--epochs",
            str(args.epochs), "--width", str(args.width), "--seed", str(seed), "--out", out,
            "--progress", "off"]
    if args.limit_train:
        argv += ["--limit-train", str(args.limit_train)]
    with contextlib.redirect_stdout(io.StringIO()):
        code = train.main(argv)
    if code != 0:
        raise SystemExit(f"wa-train failed ({code}) for {spec}")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f][-1]["test_acc"]


def pytorch_run(spec, args, seed):
    """The PyTorch twin from the same initial weights, trained with nesterov + OneCycleLR."""
    import torch
    import minigrad as mg
    from bench_convnet import torch_resnet
    from wa import data as wadata
    from wa import models
    torch.manual_seed(seed)
    mg.manual_seed(seed)                      # the same initial weights as wa-train's run
    model = models.build(args.model, norm=spec, num_classes=10, width=args.width)
    net = torch_resnet(model)
    ds = wadata.load_dataset(args.dataset, None, False, limit_train=args.limit_train)
    train, test = wadata.make_loaders(ds, args.batch_size, seed=seed)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr,
                                                total_steps=args.epochs * len(train))
    for _ in range(args.epochs):
        net.train()
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x.numpy())),
                                                     torch.from_numpy(y.numpy()))
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in test:
            pred = net(torch.from_numpy(x.numpy())).argmax(1).numpy()
            correct += int((pred == y.numpy()).sum())
            total += len(pred)
    return correct / total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--norms", default="bn,wa,gn+wa")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--dataset", default="cifar10-sample")
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64, help="wa-train's default")
    p.add_argument("--lr", type=float, default=0.05, help="PyTorch's OneCycleLR max_lr")
    p.add_argument("--seeds", default="0")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.model} width {args.width} on {args.dataset}, {args.epochs} epochs, batch "
          f"{args.batch_size}, seeds {seeds}\n")
    print("| norm | wa-train defaults | PyTorch nesterov + OneCycleLR(0.05) | difference |")
    print("|---|---:|---:|---:|")
    for spec in args.norms.split(","):
        ours = [minigrad_run(spec, args, s) for s in seeds]
        theirs = [pytorch_run(spec, args, s) for s in seeds]
        a, b = 100 * statistics.mean(ours), 100 * statistics.mean(theirs)
        print(f"| {spec} | {a:.1f}% | {b:.1f}% | {a - b:+.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
