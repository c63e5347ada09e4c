"""PyTorch as a reference, with or without PyTorch installed.

A test that compares minigrad with PyTorch asks for PyTorch's answer through `reference`:

    theirs = reference("conv2d/3x3", {"x": x, "w": w, "gy": gy}, torch_conv)

`torch_conv(torch, x=..., w=..., gy=...)` computes, with PyTorch, everything the test compares
(outputs, gradients, buffers) and returns it as a dict of NumPy arrays (or of strings).  Its
answer is stored with the inputs in a small golden file, `tests/golden/conv2d/3x3.npz`, written
by `python tests/golden/make_golden.py` on a machine where torch is installed.  Then:

- without torch (CI installs none) `reference` returns the stored answer, so the comparison with
  PyTorch runs everywhere instead of being skipped;
- with torch it returns PyTorch's live answer, after checking that it agrees with the stored one
  (a newer PyTorch that computes something else fails, and the message says how to regenerate);
- either way the test's inputs must equal the stored inputs exactly: a golden file says what
  PyTorch gives for *these* inputs, not for inputs that look alike;
- a missing golden file fails the test with the command that writes it; it never skips.

PyTorch stays out of the product and out of CI's install: only this module imports it, and only
when it is there.  Set MINIGRAD_GOLDEN_ONLY=1 to use the golden files even where torch is
installed (what CI sees).  make_golden.py sets MINIGRAD_WRITE_GOLDEN=1, which makes `reference`
write each file from torch's live answer.
"""
import io
import os
import pathlib
import zipfile

import numpy as np
import pytest

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent / "golden"
REGENERATE = "python tests/golden/make_golden.py  (where torch is installed)"

# Two computations of the same formula by two PyTorch builds may differ in the last bits
# (another summation order); more than this, relative to the array's largest value, is a
# different answer.
AGREE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

_written = set()     # the files written in this process (each case runs on several devices)


def _torch():
    """The torch module, or None where it is not installed or MINIGRAD_GOLDEN_ONLY is set."""
    if os.environ.get("MINIGRAD_GOLDEN_ONLY"):
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def reference(name, inputs, compute_with_torch):
    """PyTorch's answer for `inputs`: live where torch imports, else from tests/golden/NAME.npz.

    inputs: dict of NumPy arrays, the exact values the computation reads.
    compute_with_torch(torch, **inputs) -> dict of arrays or strings (the answer).
    Returns the answer as a dict of NumPy arrays (strings become 0-d str arrays: use str()).
    """
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    path = GOLDEN_DIR / f"{name}.npz"
    torch = _torch()
    if os.environ.get("MINIGRAD_WRITE_GOLDEN") and name not in _written:
        if torch is None:
            pytest.fail("MINIGRAD_WRITE_GOLDEN is set but torch does not import: golden files "
                        "are written from PyTorch's answers")
        _write(path, inputs, _live(torch, compute_with_torch, inputs), torch.__version__)
        _written.add(name)
    if not path.exists():
        pytest.fail(f"golden file {path.relative_to(GOLDEN_DIR.parent.parent)} is missing; "
                    f"write it with: {REGENERATE}", pytrace=False)
    stored_inputs, stored, made_with = _read(path)
    _check_inputs(name, inputs, stored_inputs)
    if torch is None:
        return stored
    live = _live(torch, compute_with_torch, inputs)
    _check_agree(name, live, stored, made_with, torch.__version__)
    return live


def _live(torch, compute_with_torch, inputs):
    answer = compute_with_torch(torch, **{k: v.copy() for k, v in inputs.items()})
    out = {}
    for k, v in answer.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        out[k] = np.array(v)
    return out


def _write(path, inputs, outputs, torch_version):
    """An .npz (np.load reads it) whose bytes depend on the arrays only: np.savez stamps each
    member with the current time, and a regenerated file that did not change should not show
    up in `git status`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"input/{k}": v for k, v in inputs.items()}
    arrays.update({f"output/{k}": v for k, v in outputs.items()})
    arrays["torch_version"] = np.array(torch_version)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, v, allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                       buffer.getvalue(), zipfile.ZIP_DEFLATED)


def _read(path):
    with np.load(path, allow_pickle=False) as z:
        inputs = {k[len("input/"):]: z[k] for k in z.files if k.startswith("input/")}
        outputs = {k[len("output/"):]: z[k] for k in z.files if k.startswith("output/")}
        return inputs, outputs, str(z["torch_version"])


def _check_inputs(name, inputs, stored):
    if sorted(inputs) != sorted(stored):
        pytest.fail(f"{name}: the test passes inputs {sorted(inputs)}, the golden file holds "
                    f"{sorted(stored)}; the test changed, regenerate: {REGENERATE}", pytrace=False)
    for k, v in inputs.items():
        s = stored[k]
        if v.shape != s.shape or v.dtype != s.dtype or not np.array_equal(v, s):
            pytest.fail(f"{name}: input {k!r} ({v.dtype}{list(v.shape)}) is not the one the golden "
                        f"file holds ({s.dtype}{list(s.shape)}); the test changed, regenerate: "
                        f"{REGENERATE}", pytrace=False)


def _check_agree(name, live, stored, made_with, version):
    where = f"torch {version} now, torch {made_with} when the golden file was written"
    if sorted(live) != sorted(stored):
        pytest.fail(f"{name}: PyTorch answers {sorted(live)}, the golden file holds "
                    f"{sorted(stored)} ({where}); regenerate: {REGENERATE}", pytrace=False)
    for k, v in live.items():
        s = stored[k]
        same_kind = v.shape == s.shape and v.dtype.kind == s.dtype.kind
        if same_kind and v.dtype.kind in "fc":
            tol = AGREE.get(s.dtype, 1e-3)
            agree = np.abs(v - s).max(initial=0) <= tol * np.abs(s).max(initial=0)
        else:
            agree = same_kind and np.array_equal(v, s)
        if not agree:
            pytest.fail(f"{name}: PyTorch's {k!r} differs from the golden file's ({where}); "
                        f"if the new answer is right, regenerate: {REGENERATE}", pytrace=False)
