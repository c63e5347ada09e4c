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


@pytest.mark.parametrize("path", ["wa/run_folder.py", "wa/sweep.py", "wa/activations.py",
                                  "wa/distributions.py",
                                  *sorted(str(p.relative_to(REPO)) for p in
                                          (REPO / "notebooks").glob("0*.py"))])
def test_every_plot_uses_the_style(path):
    text = (REPO / path).read_text()
    if "matplotlib" not in text:
        pytest.skip(f"{path} draws nothing")
    assert "plotstyle.use()" in text, f"{path} draws figures without wa.plotstyle.use()"
    # no hand-set small fonts or low dpi left behind
    assert not re.search(r"fontsize\s*=\s*[1-8]\b|labelsize\"?\s*:\s*[1-8]\b|dpi\"?\s*[:=]\s*[1-8]\d\b",
                         text), path
