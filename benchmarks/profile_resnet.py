"""Where a training step of ResNet-20 spends its time, op by op, in minigrad and in PyTorch.

    python benchmarks/profile_resnet.py [--norm gn+wa] [--batch 64] [--steps 5] [--threads N]

minigrad: every `Function` subclass's forward and backward is wrapped in a timer for the run
(the wrappers are removed afterwards); the table lists the total per step of each.  PyTorch:
`torch.profiler` over the same number of steps of the same network (same weights and data,
SGD with momentum 0.9 and weight decay 5e-4), self CPU time per step of each aten op.  Each
library runs one block of steps after a pause, so that it has the cores to itself (worker
threads of the library that ran last keep spinning for a while; see bench_convnet.alternate).
"""
import argparse
import collections
import os
import sys
import time

ARGS = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ARGS.add_argument("--norm", default="gn+wa")
ARGS.add_argument("--batch", type=int, default=64)
ARGS.add_argument("--steps", type=int, default=5)
ARGS.add_argument("--threads", type=int, default=os.cpu_count())
ARGS.add_argument("--top", type=int, default=14, help="rows of each table")

if __name__ == "__main__":
    _threads = str(ARGS.parse_args().threads)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = _threads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_convnet as bench  # noqa: E402

from minigrad.autograd import Function  # noqa: E402


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


class OpTimer:
    """Context manager: times forward/backward of every Function subclass by class name."""

    def __init__(self):
        self.times, self._saved = collections.defaultdict(float), []

    def __enter__(self):
        for cls in set(_subclasses(Function)):
            for meth in ("forward", "backward"):
                if meth in cls.__dict__:
                    self._saved.append((cls, meth, cls.__dict__[meth]))
                    setattr(cls, meth, self._wrap(cls.__dict__[meth], f"{cls.__name__}.{meth}"))
        return self

    def _wrap(self, fn, key):
        times = self.times

        def timed(op, *args):
            start = time.perf_counter()
            out = fn(op, *args)
            times[key] += time.perf_counter() - start
            return out
        return timed

    def __exit__(self, *exc):
        for cls, meth, fn in self._saved:
            setattr(cls, meth, fn)


def main():
    args = ARGS.parse_args()
    bench.mg.fast.keep_freed_memory()     # as bench_convnet.py and wa-train run
    import torch
    from torch.profiler import ProfilerActivity, profile
    torch.set_num_threads(args.threads)
    step, tstep, check = bench.resnet_steps(args.norm, args.batch)
    for _ in range(2):
        step(), tstep()
    # One block each, after a pause: worker threads of the library that ran last keep
    # spinning on the cores for up to ~0.1 s (see bench_convnet.alternate).
    time.sleep(bench.SETTLE)
    step()
    with OpTimer() as timer:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        ours = time.perf_counter() - start
    time.sleep(bench.SETTLE)
    tstep()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            tstep()
        theirs = time.perf_counter() - start
    n = args.steps
    print(f"ResNet-20 {args.norm}, batch {args.batch}, {args.threads} threads, {n} steps each, "
          f"one block each after {bench.SETTLE} s of quiet; {check}")
    print(f"step: minigrad {ours / n * 1e3:.1f} ms, PyTorch {theirs / n * 1e3:.1f} ms "
          "(PyTorch's under its profiler)\n")
    print("| minigrad op | ms/step | | PyTorch op (self CPU) | ms/step |")
    print("|---|---:|---|---|---:|")
    mine = sorted(timer.times.items(), key=lambda kv: -kv[1])[:args.top]
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events = sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]
    for i in range(max(len(mine), len(events))):
        a = f"{mine[i][0]} | {mine[i][1] / n * 1e3:.1f}" if i < len(mine) else " | "
        b = f"{events[i].key} | {events[i].self_cpu_time_total / n / 1e3:.1f}" \
            if i < len(events) else " | "
        print(f"| {a} | | {b} |")
    print(f"| all timed ops | {sum(timer.times.values()) / n * 1e3:.1f} | | all ops | "
          f"{sum(e.self_cpu_time_total for e in prof.key_averages()) / n / 1e3:.1f} |")


if __name__ == "__main__":
    main()
