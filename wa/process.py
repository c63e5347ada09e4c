"""What the wa-train process does around the loop: a clean stop on Ctrl-C or SIGTERM, tqdm
progress bars, and the number of BLAS threads.  None of it changes what is learned."""
import contextlib
import signal
import sys
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


PLAIN_PROGRESS_SECONDS = 30.0   # a plain progress line this often when the output is no terminal


def format_seconds(seconds):
    """3725 -> '1:02:05', 42 -> '0:42'."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """Progress within an epoch, with the running loss, accuracy and images/s.

    mode "on": a tqdm bar; "off": nothing; "auto": a tqdm bar on a terminal, and otherwise (a
    log file, a pipe) a plain line through `log` every PLAIN_PROGRESS_SECONDS, so that a log
    shows signs of life within a long epoch.  Without tqdm, "on" falls back to plain lines."""

    def __init__(self, mode, total, initial, desc, log=print, stream=None):
        self.bar, self.log, self.total, self.desc = None, log, total, desc
        self.done, self.plain, self._last = initial, False, 0.0
        show = {"on": True, "off": False, "auto": None}[mode]
        if show is False:
            return
        stream = sys.stderr if stream is None else stream
        terminal = hasattr(stream, "isatty") and stream.isatty()
        if show is None and not terminal:
            self.plain = True
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self.plain = True
            return
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False,
                        disable=False, dynamic_ncols=True, file=stream)

    def update(self, totals, seconds):
        """One batch more; `totals` as in wa.loop.train_epoch, `seconds` spent on them."""
        self.done += 1
        loss, acc = totals["loss"] / totals["seen"], totals["correct"] / totals["seen"]
        rate = totals["seen"] / max(seconds, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", img_s=f"{rate:.0f}")
            self.bar.update(1)
        elif self.plain and seconds - self._last >= PLAIN_PROGRESS_SECONDS and self.done < self.total:
            self._last = seconds
            self.log(f"  {self.desc}  batch {self.done}/{self.total}  train loss {loss:.4f} "
                     f"acc {acc:.4f}  {rate:.0f} img/s  {format_seconds(seconds)} into the epoch")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.bar is not None:
            self.bar.close()
