"""Save and load checkpoints as .npz files (a zip of .npy arrays: no pickle, readable by NumPy).

    mg.save(model, "model.npz")                       # a Module: its state_dict
    mg.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "epoch": 7,
             "rng": np.random.get_state()}, "ckpt.npz")
    ckpt = mg.load("ckpt.npz")
    model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])

`load` gives back what `save` was given: nested dicts (keys str or int), lists and tuples (which
stay lists and tuples), Python numbers of any size, bools, strings and None, NumPy scalars with
their dtype, and arrays as host NumPy arrays (a Tensor or a CuPy array comes back as a NumPy
array).  That covers an optimizer's and a scheduler's state, NumPy's RNG states (a Generator's
`bit_generator.state` dict, the `np.random.get_state()` tuple) and a list of metric records.

The file: every array is one .npy member named by its path of keys joined by "/"
("optimizer/state/0/momentum_buffer"), so `np.load` lists them; everything else is one JSON
document in the member "__tree__" (a string array), which says where each array goes.  A dict
of arrays with string keys -- a state_dict -- needs no tree: its file is the plain .npz that
`np.savez` would write.  Files without a tree (such a dict, or files from before the tree
existed) load as a dict of arrays, nested at the "/"s, digit keys as ints, every number a 0-d
array.  The file is written to a temporary name, flushed to disk and renamed over `path`,
so a crash mid-write never leaves a truncated checkpoint.

Two restrictions keep the file plain: a key may not be empty or contain "/", and a list or
tuple may not hold another list or tuple (nested numbers are a matrix: save np.array(...)).
"""
import json
import numbers
import os
import secrets
import zipfile
from collections.abc import Mapping

import numpy as np

from . import backend
from .autograd import Tensor

SEP = "/"
TREE = "__tree__"       # the member holding the JSON tree


def _array(value, key, arrays):
    """Store a host copy of an array (or of a NumPy scalar, kept as a 0-d array) as member `key`."""
    a = backend.as_numpy(value) if backend.device_of(value) == "cuda" else np.asarray(value)
    if a.dtype == object:
        raise TypeError(f"cannot save {key!r}: an array of Python objects needs pickle "
                        f"(convert it to a numeric array first)")
    if key == TREE:
        raise ValueError(f"cannot save key {TREE!r}: the name is reserved for the file's layout")
    if key in arrays:
        raise ValueError(f"cannot save {key!r} twice: the int key and the str key {key.split(SEP)[-1]!r} "
                         f"name the same member of the file")
    arrays[key] = a


def _encode(value, key, arrays):
    """The JSON tree of `value`; its arrays go to `arrays` under their path `key`."""
    if isinstance(value, np.generic) or (isinstance(value, numbers.Number)
                                         and not isinstance(value, (bool, int, float))):
        _array(value, key, arrays)           # a NumPy scalar keeps its dtype; complex too
        return {"scalar": key}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray) or backend.device_of(value) == "cuda":
        _array(value, key, arrays)
        return {"array": key}
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"cannot save key {k!r} in {key or 'the dict'!r}: keys must be "
                                f"strings or ints")
            if SEP in str(k) or not str(k):
                raise ValueError(f"cannot save key {_join(key, str(k))!r}: keys must be non-empty "
                                 f"and may not contain {SEP!r}, which separates nesting levels "
                                 f"in the file")
            items.append([k, _encode(v, _join(key, str(k)), arrays)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if isinstance(v, (list, tuple)):
                raise TypeError(f"cannot save {key!r}: item {i} is a list or tuple inside a list "
                                f"or tuple (save nested numbers as an array: np.array(...))")
        items = [_encode(v, _join(key, str(i)), arrays) for i, v in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    raise TypeError(f"cannot save {key!r}: a {type(value).__name__} is not an array, Tensor, "
                    f"number, string, None, dict, list or tuple (drop it or convert it first)")


def _join(prefix, key):
    return prefix + SEP + key if prefix else key


def _is_array(v):
    return isinstance(v, (np.ndarray, Tensor)) or backend.device_of(v) == "cuda"


def _new_temporary_file(folder):
    """(fd, path) of a new empty file in `folder`, open for writing, with the mode the user's
    umask gives, as `open(path, "wb")` or `np.savez` would (0644 under the usual umask 022).

    `tempfile.mkstemp` would make it 0600, and the rename would keep that: a checkpoint
    the user's group could not read.  O_EXCL makes the name ours alone.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}.npz")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def save(obj, path):
    """Write a Module's state_dict, or a (nested) dict of arrays and plain values, to an .npz
    file, atomically (a temporary file, flushed to disk, renamed over `path`)."""
    if not isinstance(obj, Mapping) and hasattr(obj, "state_dict"):
        obj = obj.state_dict()  # a Module (or an optimizer / scheduler)
    if not isinstance(obj, Mapping):
        raise TypeError(f"save expects a Module or a dict, got {type(obj).__name__}")
    arrays = {}
    tree = _encode(obj, "", arrays)
    if not all(isinstance(k, str) and _is_array(v) for k, v in obj.items()):
        arrays[TREE] = np.array(json.dumps(tree))     # more than a state_dict: say how to rebuild it
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path!r}: the folder {folder!r} does not exist "
                                f"(create it with os.makedirs first)")
    fd, tmp = _new_temporary_file(folder)
    try:
        # What np.savez does, written out: one .npy member per key, never pickled.
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
                for key, a in arrays.items():
                    with zf.open(key + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())      # on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _decode(node, arrays):
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    (kind, body), = node.items()
    if kind == "array":
        return arrays[body]
    if kind == "scalar":
        return arrays[body][()]
    if kind == "tuple":
        return tuple(_decode(v, arrays) for v in body)
    return {k: _decode(v, arrays) for k, v in body}


def _unflatten(flat):
    """A file without a tree: nest at the "/"s, digit keys as ints."""
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
    """Read a file written by `save`: what was saved, arrays as host NumPy arrays."""
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
    if TREE not in flat:
        return _unflatten(flat)
    try:
        return _decode(json.loads(str(flat.pop(TREE))), flat)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path!r} has a damaged layout member {TREE!r} "
                         f"({type(e).__name__}: {e})") from None
