"""What the wa-train process does around the loop: a clean stop on Ctrl-C or SIGTERM, tqdm
progress bars, and the number of BLAS threads.  None of it changes what is learned."""
import contextlib
import signal
import threading

import threadpoolctl

# Below this batch size the GEMMs are small and BLAS threads cost more than they give: measured
# on a 2-core VM, a ResNet-20 step at batch 2 took 25 ms on one OpenBLAS thread and 200-700 ms
# on two, whenever any other process wanted a core (the threads spin while they wait).
SMALL_BATCH = 16


def blas_threads(cfg):
    """The BLAS thread count for a run: --threads, else 1 for small batches, else BLAS's own."""
    if cfg.get("threads"):
        return cfg["threads"]
    return 1 if cfg["batch_size"] < SMALL_BATCH else None


def limit_blas_threads(threads):
    """A context in which BLAS uses `threads` threads (None: leave BLAS alone)."""
    if threads is None:
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


class StopSignals:
    """Inside `with StopSignals(log) as stop:` (on the main thread), Ctrl-C (SIGINT) and SIGTERM
    (kill, a scheduler's preemption) set `stop.requested`, for the loop to stop cleanly at the
    next batch boundary; a second one raises KeyboardInterrupt at once.  The previous handlers
    come back when the block ends."""

    def __init__(self, log=print):
        self.log, self.requested, self._previous = log, False, {}

    def _handler(self, signum, frame):
        if self.requested:             # the second signal: give up at once
            raise KeyboardInterrupt
        self.requested = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.log(f"\n{name}: finishing this step and saving a checkpoint (again to abort)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handler)
                              for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc_info):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


class ProgressBar:
    """A tqdm bar over an epoch's batches with the running loss, accuracy and images/s.
    mode "on", "off", or "auto" (only on a terminal); without tqdm there is no bar."""

    def __init__(self, mode, total, initial, desc):
        self.bar = None
        show = {"on": True, "off": False, "auto": None}[mode]
        if show is False:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False,
                        disable=None if show is None else False, dynamic_ncols=True)

    def update(self, totals, seconds):
        """One batch more; `totals` as in wa.loop.train_epoch, `seconds` spent on them."""
        if self.bar is None:
            return
        self.bar.set_postfix(loss=f"{totals['loss'] / totals['seen']:.3f}",
                             acc=f"{totals['correct'] / totals['seen']:.3f}",
                             img_s=f"{totals['seen'] / max(seconds, 1e-9):.0f}")
        self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.bar is not None:
            self.bar.close()
