"""wa.plotstyle: one readable style for every figure (notebooks and CLI PNGs)."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_use_sets_a_readable_style():
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib import font_manager
    from wa import plotstyle

    with matplotlib.rc_context():
        plotstyle.use()
        rc = matplotlib.rcParams
        assert rc["font.size"] >= 10 and rc["figure.dpi"] >= 100 and rc["savefig.dpi"] >= 100
        assert min(float(font_manager.FontProperties(size=rc[k]).get_size_in_points())
                   for k in ("xtick.labelsize", "legend.fontsize", "axes.labelsize")) >= 9
        assert [c["color"] for c in rc["axes.prop_cycle"]] == plotstyle.COLORS


def test_style_is_scoped():
    matplotlib = pytest.importorskip("matplotlib")
    from wa import plotstyle

    before = matplotlib.rcParams["font.size"]
    with plotstyle.style():
        assert matplotlib.rcParams["font.size"] == plotstyle.FONT_SIZE
    assert matplotlib.rcParams["font.size"] == before


SMALL_TEXT_OR_LOW_DPI = r"fontsize\s*=\s*[1-8]\b|labelsize\"?\s*:\s*[1-8]\b|dpi\"?\s*[:=]\s*[1-8]\d\b"
CLI_PLOTS = sorted(str(p.relative_to(REPO)) for p in (REPO / "wa").glob("*.py")
                   if "plt." in p.read_text() and p.name != "plotstyle.py")
NOTEBOOK_PLOTS = sorted(str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("0*.py")
                        if "matplotlib" in p.read_text())


def test_the_plots_were_found():
    assert {"wa/run_folder.py", "wa/sweep.py", "wa/activations.py",
            "wa/distributions.py"} <= set(CLI_PLOTS)
    assert len(NOTEBOOK_PLOTS) >= 3


@pytest.mark.parametrize("path", CLI_PLOTS)
def test_every_cli_plot_gets_pyplot_from_plotstyle(path):
    text = (REPO / path).read_text()
    assert "plotstyle.pyplot(" in text and "import matplotlib" not in text, \
        f"{path} draws figures without wa.plotstyle.pyplot()"
    assert not re.search(SMALL_TEXT_OR_LOW_DPI, text), path


@pytest.mark.parametrize("path", NOTEBOOK_PLOTS)
def test_every_notebook_plot_uses_the_style(path):
    text = (REPO / path).read_text()
    assert "plotstyle.use()" in text, f"{path} draws figures without wa.plotstyle.use()"
    assert not re.search(SMALL_TEXT_OR_LOW_DPI, text), path


def test_pyplot_keeps_the_backend_of_a_process_that_already_draws():
    pytest.importorskip("matplotlib")
    import matplotlib
    import matplotlib.pyplot as plt            # a notebook has pyplot imported already
    from wa import plotstyle

    before = matplotlib.get_backend()
    plt.switch_backend("svg")                  # stands in for a notebook's inline backend
    try:
        assert plotstyle.pyplot() is plt
        assert matplotlib.get_backend() == "svg"   # not switched to Agg
    finally:
        plt.switch_backend(before)
