"""One plot style for every figure of the project: the notebooks and the PNGs of the CLIs.

    from wa import plotstyle
    plotstyle.use()              # sets matplotlib's rcParams for the rest of the process
    with plotstyle.style():      # or only inside a block
        ...
    plt = plotstyle.pyplot("curves.png")   # for files: pyplot on Agg, styled; None without
                                           # matplotlib (after saying what is skipped)

Readable at a glance: 11-point text (titles 12) at 100 dpi on screen and 150 dpi in saved
files, a default figure of 7.5 x 4.2 inches, and the Okabe-Ito colour cycle (eight colours that
stay distinct for colour-blind readers and in greyscale print). Plots that need more than eight
series should be split into panels rather than reuse colours.
"""
import contextlib
import sys

FONT_SIZE = 11
FIGSIZE = (7.5, 4.2)
DPI = 100
SAVE_DPI = 150
# Okabe & Ito (2008), "Color Universal Design": black first, then the seven hues.
COLORS = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442"]

RC = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 1,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE - 1,
    "ytick.labelsize": FONT_SIZE - 1,
    "legend.fontsize": FONT_SIZE - 1,
    "figure.titlesize": FONT_SIZE + 2,
    "figure.figsize": FIGSIZE,
    "figure.dpi": DPI,
    "savefig.dpi": SAVE_DPI,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
}


def _rc():
    from cycler import cycler
    return {**RC, "axes.prop_cycle": cycler(color=COLORS)}


def use():
    """Apply the style to matplotlib for the rest of the process (imports matplotlib)."""
    import matplotlib
    matplotlib.rcParams.update(_rc())


@contextlib.contextmanager
def style():
    """The style inside a `with` block only."""
    import matplotlib
    with matplotlib.rc_context(_rc()):
        yield


def pyplot(what="the PNG", log=print):
    """matplotlib.pyplot with the style applied, for the command lines' PNGs; None, after `log`
    says that `what` is skipped, where matplotlib is missing.  A process that has not drawn yet
    gets the file-only Agg backend (no window, no display needed); one that already uses pyplot
    (a notebook calling wa.train.main) keeps its backend."""
    try:
        import matplotlib
        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log(f"matplotlib is not installed: skipping {what} (pip install matplotlib)")
        return None
    use()
    return plt
