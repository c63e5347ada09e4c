"""Printing helpers the notebooks share (`from _show import table`)."""
import numpy as np


def table(header, rows):
    "Print rows under a header, columns aligned (numbers with 4 significant digits)."
    def f(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
        return str(v)
    cells = [[str(h) for h in header]] + [[f(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, r in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
