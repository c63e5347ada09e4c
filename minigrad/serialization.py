"""Save and load checkpoints as .npz files (a zip of .npy arrays: no pickle, readable by NumPy).

    mg.save(model, "model.npz")                       # a Module: its state_dict
    mg.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "epoch": 7}, "ckpt.npz")
    ckpt = mg.load("ckpt.npz")
    model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])

Nested dicts (and lists of dicts, such as an optimizer's param_groups) are
stored under keys joined by "/": {"optimizer": {"state": {0: ...}}} becomes
"optimizer/state/0/...".  `load` rebuilds the nesting (digit keys come back as
ints, lists of dicts as dicts keyed 0, 1, ...); every leaf comes back as a NumPy
array (a number as a 0-d array: use int(...) / float(...) on it).
"""
import numbers
import os
import tempfile
import zipfile
from collections.abc import Mapping

import numpy as np

from . import backend
from .autograd import Tensor

SEP = "/"


def _leaf(value, key):
    """`value` as a host NumPy array that needs no pickle."""
    if isinstance(value, Tensor):
        value = value.data
    if backend.device_of(value) == "cuda":
        value = backend.as_numpy(value)
    if not isinstance(value, (np.ndarray, np.generic, numbers.Number, str, list, tuple)):
        raise TypeError(f"cannot save {key!r}: a {type(value).__name__} is not an array, Tensor, "
                        f"number, string or list of numbers (drop it or convert it first)")
    try:
        a = np.asarray(value)
    except ValueError:  # a ragged list
        a = np.empty(0, dtype=object)
    if a.dtype == object:
        raise TypeError(f"cannot save {key!r}: it does not convert to a plain numeric array "
                        f"(ragged lists, None inside a list?)")
    return a


def _flatten(obj, prefix, out):
    items = obj.items() if isinstance(obj, Mapping) else enumerate(obj)
    for k, v in items:
        k = str(k)
        if SEP in k or not k:
            raise ValueError(f"cannot save key {prefix + k!r}: keys must be non-empty and may not "
                             f"contain {SEP!r}, which separates nesting levels in the file")
        key = prefix + k
        if isinstance(v, Mapping) or (isinstance(v, (list, tuple))
                                      and any(isinstance(e, Mapping) for e in v)):
            _flatten(v, key + SEP, out)
        else:
            out[key] = _leaf(v, key)
    return out


def save(obj, path):
    """Write a Module's state_dict, or a (nested) dict of arrays and numbers, to an .npz file.

    The file is written to a temporary name in the same folder and then renamed
    over `path`, so a crash mid-write never leaves a truncated checkpoint.
    """
    if not isinstance(obj, Mapping) and hasattr(obj, "state_dict"):
        obj = obj.state_dict()  # a Module (or an optimizer / scheduler)
    if not isinstance(obj, Mapping):
        raise TypeError(f"save expects a Module or a dict, got {type(obj).__name__}")
    flat = _flatten(obj, "", {})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path!r}: the folder {folder!r} does not exist "
                                f"(create it with os.makedirs first)")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        # What np.savez does, written out: one .npy member per key, never pickled.
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            for key, a in flat.items():
                with zf.open(key + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _unflatten(flat):
    if not any(SEP in k for k in flat):
        return flat
    root = {}
    for key, a in flat.items():
        *parents, last = [int(p) if p.isdigit() else p for p in key.split(SEP)]
        node = root
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = a
    return root


def load(path):
    """Read a file written by `save`: a dict of NumPy arrays (nested where the saved dict was)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r} (check the path; files are "
                                f"written by minigrad.save)")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path!r} is not an .npz file written by minigrad.save: {e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} holds a single array (.npy), not the dict of arrays that "
                         f"minigrad.save writes")
    with z:
        flat = {k: z[k] for k in z.files}
    return _unflatten(flat)
