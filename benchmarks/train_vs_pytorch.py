"""Does `wa-train` with its defaults learn as well as a tuned PyTorch recipe, on held-out images?

    python benchmarks/train_vs_pytorch.py --norms gn+wa,wa --epochs 10 --seeds 0,1,2
    python benchmarks/train_vs_pytorch.py --data-dir ~/.cache/weightalign/cifar-10-batches-py \\
        --train-files data_batch_1 --test-files data_batch_2 --norms gn+wa --seeds 0,1

For each normalization spec and seed, two runs on the same images, batches and augmentation
(wa.data's loaders, same seed):

* ours: `wa-train` with no optimization flag (its defaults: the short recipe, Kaiming init;
  `--our-init pytorch` gives it `--init pytorch`);
* the twin: the PyTorch copy of the same network (`bench_convnet.torch_resnet`), trained with
  the recipe people use for short CIFAR runs: SGD with Nesterov momentum 0.9, weight decay 5e-4
  on every parameter, and `torch.optim.lr_scheduler.OneCycleLR(max_lr=0.05, pct_start=0.15)`
  with PyTorch's defaults (momentum cycling 0.85-0.95 included), stepped per batch.

Three switches take the twin apart, to find where a gap comes from:
  --twin-init pytorch   PyTorch's own layer initialization (default), or `same`: wa-train's
                        initial weights copied (only the recipe and the framework then differ);
  --twin-schedule       `onecycle` (above, default) or `wa-train` (wa-train's one-cycle: warm-up
                        over 30 % of the steps, no momentum cycling);
  --twin-fixup SPEC     how the twin's WA/WN residual branches start (`wa.models`); default:
                        the same as ours.

Data: the bundled sample's split (1,504 train / 360 test images) by default; or any files of an
official-format CIFAR-10 folder (`--data-dir`), e.g. train on `data_batch_1` and test on
`data_batch_2`: the chosen files are written to a temporary official-format folder that both
runs read with `wa-train --dataset cifar10`.

Prints one markdown row per spec with every seed's accuracy, the means +- standard error over
seeds and their difference; `--csv FILE` also appends one line per run as it ends.  With a few
hundred test images one run's accuracy is uncertain by about 2.5 points: pass several seeds
before reading a difference of a few points.  Needs PyTorch (a CPU build is enough).
"""
import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


# ----------------------------------------------------------------------------------------
# Data: the bundled split, or chosen files of an official-format folder
# ----------------------------------------------------------------------------------------
def make_split(folder, train_files, test_files, root):
    """Write the images of `train_files` / `test_files` (files of the official-format folder
    `folder`) as a new official-format CIFAR-10 folder under `root`; returns `root`."""
    from wa import data as wadata
    overlap = set(train_files) & set(test_files)
    if overlap:
        raise SystemExit(f"train_vs_pytorch: {sorted(overlap)} in both --train-files and "
                         "--test-files; a held-out split needs different files")
    files = {**wadata.CIFAR["cifar10"], "train": list(train_files), "test": list(test_files)}
    ds = wadata.read_cifar_folder(folder, files, "cifar10")     # the loader's own checks
    wadata.write_cifar(root, "cifar10", ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.classes)
    return root


def data_flags(args):
    """wa-train's data flags for the split of this comparison."""
    if args.split_root is None:
        return ["--dataset", args.dataset]
    return ["--dataset", "cifar10", "--data-dir", args.split_root, "--no-download"]


def load_data(args):
    from wa import data as wadata
    if args.split_root is None:
        return wadata.load_dataset(args.dataset, None, False)
    return wadata.load_dataset("cifar10", args.split_root, False)


# ----------------------------------------------------------------------------------------
# The two runs
# ----------------------------------------------------------------------------------------
def minigrad_run(spec, args, seed):
    """wa-train with its defaults; returns the final test accuracy."""
    from wa import train
    out = tempfile.mkdtemp(prefix=f"tvp-{spec}-")
    argv = data_flags(args) + [
        "--model", args.model, "--norm", spec, "--epochs", str(args.epochs), "--width",
        str(args.width), "--batch-size", str(args.batch_size), "--seed", str(seed), "--out", out,
        "--progress", "off", "--threads", str(args.threads), "--init", args.our_init]
    with contextlib.redirect_stdout(io.StringIO()):
        code = train.main(argv)
    if code != 0:
        raise SystemExit(f"wa-train failed ({code}) for {spec}")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f][-1]["test_acc"]


def pytorch_init(net, model):
    """PyTorch's default initialization of every conv and of the classifier, except where
    Fixup sets a value that is its method (a plain conv's zero closing, the zero classifier)."""
    import torch
    from wa.nn import WAConv2d, WNConv2d
    reparameterized = any(isinstance(m, (WAConv2d, WNConv2d)) for m in model.modules())
    if model_has_fixup(model) and not reparameterized:
        raise SystemExit("train_vs_pytorch: --twin-init pytorch would undo Fixup's plain-conv "
                         "initialization; use --twin-init same for this spec")
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d) or (name == "fc" and not model_has_fixup(model)):
            m.reset_parameters()


def model_has_fixup(model):
    return bool(getattr(model, "fixup", False))


def twin_scheduler(opt, args, total_steps):
    import torch
    if args.twin_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps,
            pct_start=0.15)
    return torch.optim.lr_scheduler.OneCycleLR(         # wa-train's: see wa.trainer
        opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps,
        pct_start=0.3, cycle_momentum=False)


def pytorch_run(spec, args, seed):
    """The PyTorch twin, trained with the twin's recipe; returns the final test accuracy."""
    import torch
    import minigrad as mg
    from bench_convnet import torch_resnet
    from wa import data as wadata
    from wa import models
    torch.manual_seed(seed)
    mg.manual_seed(seed)                      # the same initial weights as wa-train's run
    model = models.build(args.model, norm=spec, num_classes=10, width=args.width,
                         fixup=args.twin_fixup)
    net = torch_resnet(model)
    if args.twin_init == "pytorch":
        pytorch_init(net, model)
    train, test = wadata.make_loaders(load_data(args), args.batch_size, seed=seed)
    # Fixup's scalars get lr times the closing's factor, as in wa-train (wa.trainer.param_groups)
    scalars = {id(p) for p in models.fixup_scalars(model)}
    names = [n for n, p in model.named_parameters() if id(p) in scalars]
    params = dict(net.named_parameters())
    groups = [{"params": [p for n, p in params.items() if n not in names], "lr": args.lr}]
    if names:
        groups.append({"params": [params[n] for n in names],
                       "lr": args.lr * models.fixup_scalar_lr_factor(model)})
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = twin_scheduler(opt, args, args.epochs * len(train))
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


# ----------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------
def mean_se(values):
    """'mean +- standard error' in percent (the s.e. only with two values or more)."""
    m = 100 * statistics.mean(values)
    if len(values) < 2:
        return f"{m:.1f}"
    return f"{m:.1f} +- {100 * statistics.stdev(values) / math.sqrt(len(values)):.1f}"


def cell(values):
    """'mean +- s.e. (each seed)' in percent, or '-' for a side not trained."""
    if not values:
        return "-"
    return f"{mean_se(values)} ({' / '.join(f'{100 * a:.1f}' for a in values)})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--norms", default="bn,wa,gn+wa")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--dataset", default="cifar10-sample", help="without --data-dir")
    p.add_argument("--data-dir", default=None, help="an official-format CIFAR-10 folder "
                   "(cifar-10-batches-py); with --train-files and --test-files")
    p.add_argument("--train-files", default="data_batch_1,data_batch_2,data_batch_3,"
                   "data_batch_4,data_batch_5")
    p.add_argument("--test-files", default="test_batch")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="wa-train's default")
    p.add_argument("--lr", type=float, default=0.05, help="the twin's OneCycleLR max_lr "
                   "(wa-train's default at batch 64)")
    p.add_argument("--twin-init", choices=("pytorch", "same"), default="pytorch")
    p.add_argument("--our-init", choices=("kaiming", "pytorch"), default="kaiming",
                   help="wa-train's --init (kaiming: its default)")
    p.add_argument("--twin-schedule", choices=("onecycle", "wa-train"), default="onecycle")
    p.add_argument("--twin-fixup", default=None, metavar="SPEC")
    p.add_argument("--seeds", default="0")
    p.add_argument("--threads", type=int, default=1, help="BLAS / torch threads per run")
    p.add_argument("--skip-ours", action="store_true", help="train the twin only")
    p.add_argument("--skip-twin", action="store_true", help="train ours only")
    p.add_argument("--csv", default=None, help="append one line per run to this file")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]

    import torch
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="tvp-split-") as tmp:
        args.split_root = None
        if args.data_dir is not None:
            args.split_root = make_split(os.path.expanduser(args.data_dir),
                                         args.train_files.split(","),
                                         args.test_files.split(","), tmp)
        ds = load_data(args)
        print(f"{args.model} width {args.width:g}, {len(ds.x_train)} train / {len(ds.x_test)} "
              f"test images ({args.data_dir or args.dataset}), {args.epochs} epochs, batch "
              f"{args.batch_size}, seeds {seeds}; twin: init {args.twin_init}, schedule "
              f"{args.twin_schedule}, fixup {args.twin_fixup or 'as ours'}\n")
        rows = []
        for spec in args.norms.split(","):
            ours, theirs = [], []
            for s in seeds:
                for who, run, acc in (("ours", minigrad_run, ours), ("twin", pytorch_run, theirs)):
                    if (who == "ours" and args.skip_ours) or (who == "twin" and args.skip_twin):
                        continue
                    acc.append(run(spec, args, s))
                    if args.csv:      # spec, side, seed, init, schedule, fixup, images, ...
                        how = ((args.our_init, "wa-train", "") if who == "ours" else
                               (args.twin_init, args.twin_schedule, args.twin_fixup or ""))
                        with open(args.csv, "a") as f:
                            f.write(f"{spec},{who},{s},{','.join(how)},{len(ds.x_train)},"
                                    f"{args.epochs},{acc[-1]:.4f}\n")
            rows.append((spec, ours, theirs))
    print("| norm | seeds | wa-train defaults | PyTorch twin | difference |")
    print("|---|---|---:|---:|---:|")
    for spec, ours, theirs in rows:
        diff = (f"{100 * (statistics.mean(ours) - statistics.mean(theirs)):+.1f}"
                if ours and theirs else "")
        print(f"| {spec} | {','.join(map(str, seeds))} | {cell(ours)} | {cell(theirs)} | {diff} |",
              flush=True)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
