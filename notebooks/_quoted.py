"""The numbers a notebook's text quotes, checked against what its code computes.

    from _quoted import quote
    quote("GN std(mu_c) at conv3", measured, "0.39", tol=0.005)

prints one line, `quoted 0.39: GN std(mu_c) at conv3 = 0.3903 (tolerance 0.005, checked)`, and in
full mode (WA_QUICK unset) asserts |measured - 0.39| <= tol. Quick mode (WA_QUICK=1, the test
suite) runs a smaller network whose numbers differ, so there the line ends in "not checked (quick
mode)" and nothing is asserted. A text ending in " %" is a percentage: "47 %" stands for 0.47.

tests/notebooks/test_quoted_numbers.py reads these lines from each notebook's stored full-mode
outputs and fails when a number in the markdown is not among them, so a text left stale after a
change of default fails the tests even before the notebook is re-executed.
"""
import os

QUICK = os.environ.get("WA_QUICK") == "1"


def value_of(text):
    """The number a quoted text stands for: "0.39" -> 0.39, "47 %" -> 0.47."""
    text = text.strip()
    return float(text[:-1].strip()) / 100 if text.endswith("%") else float(text)


def quote(name, measured, text, tol):
    """Print the quoted number with its measured value; in full mode assert they agree."""
    measured = float(measured)
    ok = abs(measured - value_of(text)) <= tol
    status = "not checked (quick mode)" if QUICK else "checked"
    print(f"quoted {text}: {name} = {measured:.4g} (tolerance {tol:g}, {status})")
    if not QUICK:
        assert ok, (f"the text quotes {text} for {name}, the code computes {measured:.4g} "
                    f"(tolerance {tol:g}): rewrite the text from the output")
