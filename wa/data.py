"""Datasets for the experiments: CIFAR-10, CIFAR-100, a bundled real CIFAR-10 sample, and a
synthetic set; plus the image transforms (normalization, random crop + flip).

    ds = load_dataset("cifar10-sample")            # offline, 1,504 train + 360 test real images
    train, test = make_loaders(ds, batch_size=64, seed=0, device="cpu")

Split of responsibilities: the generic batching (`minigrad.data.DataLoader`: seeded shuffling,
drop_last, device transfer, resumable RNG state) knows nothing about images; everything here
is about images and where they come from (as torchvision sits beside torch).

CIFAR on disk.  The official "python version" archives hold pickled dicts written by Python 2:
keys such as b'data' (uint8, N x 3072, each row the R, G, B planes of a 32x32 image) and
b'labels' (CIFAR-10) or b'fine_labels' (CIFAR-100).  They are read without a network from
`DIR/cifar-10-batches-py/` or `DIR/cifar-100-python/`; otherwise the archive is downloaded into
DIR (default ~/.cache/weightalign), its published MD5 checked, and extracted.  Every file is
checked (keys, dtype, shape, label range) before any of it is used, and the pickles are read
with an unpickler that only admits NumPy's array reconstruction (a pickle can run code).

Images are kept as uint8 NCHW arrays until a batch is drawn; `transform` turns a batch into
normalized float32.
"""
import codecs
import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.error
import urllib.request
from importlib import resources

import numpy as np

from minigrad.data import DataLoader

__all__ = ["DATASETS", "CIFAR", "Dataset", "DatasetError", "load_dataset", "make_synthetic",
           "load_sample", "default_data_dir", "channel_stats", "Transform", "random_crop_flip",
           "make_loaders", "download_url", "write_cifar"]

DATASETS = ("cifar10", "cifar100", "cifar10-sample", "synthetic")

# Official sources (https://www.cs.toronto.edu/~kriz/cifar.html) and the layout inside them.
CIFAR = {
    "cifar10": dict(
        title="CIFAR-10", url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a", folder="cifar-10-batches-py",
        train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"],
        meta="batches.meta", label_key="labels", names_key="label_names", classes=10),
    "cifar100": dict(
        title="CIFAR-100", url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85", folder="cifar-100-python",
        train=["train"], test=["test"],
        meta="meta", label_key="fine_labels", names_key="fine_label_names", classes=100),
}


class DatasetError(RuntimeError):
    """Data missing, incomplete or corrupt; the message says what to do."""


@dataclasses.dataclass
class Dataset:
    """Images as uint8 (N, 3, 32, 32), labels as int64 (N,)."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple

    @property
    def num_classes(self):
        return len(self.classes)


def default_data_dir():
    """$XDG_CACHE_HOME/weightalign, else ~/.cache/weightalign."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "weightalign")


def load_dataset(name, data_dir=None, download=True, limit_train=None, limit_test=None):
    """One of DATASETS; `limit_*` keep the first N images of each split (toy runs)."""
    if name in CIFAR:
        ds = load_cifar(name, data_dir, download)
    elif name == "cifar10-sample":
        ds = load_sample()
    elif name == "synthetic":
        ds = make_synthetic()
    else:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if limit_train is not None or limit_test is not None:
        ds = dataclasses.replace(ds, x_train=ds.x_train[:limit_train], y_train=ds.y_train[:limit_train],
                                 x_test=ds.x_test[:limit_test], y_test=ds.y_test[:limit_test])
    return ds


# ----------------------------------------------------------------------------------------
# Bundled sample and synthetic data
# ----------------------------------------------------------------------------------------
def load_sample():
    """1,504 train + 360 test real CIFAR-10 images shipped in wa/_data/cifar10_sample.npz.

    Made from the official-format folder with
    `python -c "import wa.data as d; d.bundle_sample('.../cifar-10-batches-py')"`."""
    with resources.files("wa").joinpath("_data/cifar10_sample.npz").open("rb") as f:
        z = np.load(f, allow_pickle=False)
        return Dataset("cifar10-sample", z["x_train"], z["y_train"].astype(np.int64),
                       z["x_test"], z["y_test"].astype(np.int64), tuple(z["classes"].tolist()))


def bundle_sample(folder, out=None):
    """Convert an official-format cifar-10-batches-py folder into the bundled .npz."""
    ds = read_cifar_folder(folder, CIFAR["cifar10"], "cifar10-sample")
    out = out or os.path.join(os.path.dirname(__file__), "_data", "cifar10_sample.npz")
    np.savez_compressed(out, x_train=ds.x_train, y_train=ds.y_train.astype(np.uint8),
                        x_test=ds.x_test, y_test=ds.y_test.astype(np.uint8),
                        classes=np.array(ds.classes))
    return out


def make_synthetic(n_train=2000, n_test=500, num_classes=10, seed=0):
    """A learnable 10-class image set, generated in a blink: class k is a sinusoidal grating
    at orientation k*pi/K with its own colour, at a random phase (so position alone does not
    tell the class), plus pixel noise.  Deterministic for a given seed.

    Orientation survives every normalization (BN, GN, LN, IN remove means and scales, not
    directions): a 7-layer, 16-channel conv net with BN or GN reaches near 100% test accuracy
    within four epochs of the 2,000 images, while chance is 10%."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0.3, 1.0, size=(num_classes, 3))
    angle = np.pi * np.arange(num_classes) / num_classes
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)

    def split(n):
        y = rng.integers(0, num_classes, size=n)
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        along = xx * np.cos(angle[y])[:, None, None] + yy * np.sin(angle[y])[:, None, None]
        wave = np.sin(2 * np.pi * along / 8.0 + phase)                    # (n, 32, 32)
        img = 128 + 90 * colours[y][:, :, None, None] * wave[:, None]     # (n, 3, 32, 32)
        img += rng.normal(0, 20, size=img.shape)
        return np.clip(img, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_tr, y_tr = split(n_train)
    x_te, y_te = split(n_test)
    return Dataset("synthetic", x_tr, y_tr, x_te, y_te,
                   tuple(f"grating{k}" for k in range(num_classes)))


# ----------------------------------------------------------------------------------------
# CIFAR: find, download, verify, extract, read
# ----------------------------------------------------------------------------------------
def load_cifar(name, data_dir=None, download=True):
    """Read DIR/<folder>; else extract DIR/<archive>; else download it (unless download=False)."""
    src = CIFAR[name]
    root = os.path.abspath(os.path.expanduser(data_dir or default_data_dir()))
    folder = os.path.join(root, src["folder"])
    if os.path.basename(root) == src["folder"] and not os.path.isdir(folder):
        folder = root          # --data-dir pointed at the dataset folder itself: fine too
    archive = os.path.join(root, os.path.basename(src["url"]))
    if not os.path.isdir(folder):
        if os.path.isfile(archive) and md5sum(archive) != src["md5"]:
            if not download:
                raise DatasetError(f"{archive} is truncated or corrupt (its MD5 is not the "
                                   f"published {src['md5']}); delete it, or drop --no-download "
                                   "to have it fetched again")
            os.remove(archive)
        if not os.path.isfile(archive):
            if not download:
                raise DatasetError(_missing_message(src, root, "downloading is off (--no-download)"))
            try:
                download_url(src["url"], archive, src["md5"])
            except (urllib.error.URLError, OSError) as e:
                raise DatasetError(_missing_message(src, root, f"the download failed ({e})")) from None
        extract(archive, root, src["folder"])
    return read_cifar_folder(folder, src, name)


def _missing_message(src, root, why):
    files = ", ".join(src["train"] + src["test"] + [src["meta"]])
    return (f"{src['title']} is not in {root} and {why}.\n"
            f"  Get {src['url']} (MD5 {src['md5']}) on a machine with internet and either put\n"
            f"  the archive in {root}/ or extract it so that these files exist:\n"
            f"    {os.path.join(root, src['folder'])}/{{{files}}}\n"
            f"  Use --data-dir DIR to read DIR/{src['folder']}/ instead of the cache folder.\n"
            f"  For an offline run on real images: --dataset cifar10-sample.")


def md5sum(path, chunk=1 << 20):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url):
    """Open `url` for streaming (a separate function so tests can substitute it)."""
    return urllib.request.urlopen(url, timeout=60)


def download_url(url, dest, md5=None):
    """Stream `url` to `dest` with a progress bar, through a .part file renamed only after the
    MD5 matched, so an interrupted or damaged download never looks complete."""
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    part, h = dest + ".part", hashlib.md5()
    try:
        with _fetch(url) as r, open(part, "wb") as f, _progress(r, os.path.basename(dest)) as bar:
            for block in iter(lambda: r.read(1 << 16), b""):
                f.write(block)
                h.update(block)
                bar.update(len(block))
    except BaseException:  # network error or Ctrl-C: leave no partial file behind
        if os.path.exists(part):
            os.remove(part)
        raise
    if md5 is not None and h.hexdigest() != md5:
        os.remove(part)
        raise DatasetError(f"download of {url} is damaged: MD5 {h.hexdigest()}, expected {md5} "
                           "(a truncated transfer?); run again")
    os.replace(part, dest)
    return dest


def _progress(response, desc):
    total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    try:
        from tqdm import tqdm
    except ImportError:  # a download still works, just without the bar
        import contextlib
        return contextlib.nullcontext(type("Bar", (), {"update": lambda self, n: None})())
    return tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc=desc)


def extract(archive, root, folder):
    """Extract `archive` next to itself; the folder appears (by rename) only when complete."""
    tmp = tempfile.mkdtemp(prefix=".extract-", dir=root)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, **kw)
        if not os.path.isdir(os.path.join(tmp, folder)):
            raise DatasetError(f"{archive} does not contain the folder {folder}/; "
                               "is it the right archive? Delete it and run again")
        os.replace(os.path.join(tmp, folder), os.path.join(root, folder))
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise DatasetError(f"{archive} is truncated or corrupt ({type(e).__name__}: {e}); "
                           "delete it and run again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# NumPy's own array-rebuilding function, whatever module it lives in this NumPy version.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]


class _ArrayUnpickler(pickle.Unpickler):
    """Admit only what a CIFAR pickle needs: NumPy arrays and dtypes (and `_codecs.encode`,
    with which Python 3 writes bytes in protocol 2).  Anything else is refused."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
               ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
               ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return self.ALLOWED[(module, name)]


def _read_pickle(path):
    fix = "delete the folder (or the whole data directory) and run again to re-extract/download"
    if not os.path.isfile(path):
        raise DatasetError(f"missing file {path}: the dataset folder is incomplete; {fix}")
    try:
        with open(path, "rb") as f:
            # latin1 turns Python 2 strings into str and leaves array bytes intact.
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as e:
        raise DatasetError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); {fix}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path} is not a CIFAR batch (it holds a {type(obj).__name__}); {fix}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(path, label_key, num_classes):
    d = _read_pickle(path)
    fix = "delete the folder and run again to re-extract/download"
    for key in ("data", label_key):
        if key not in d:
            raise DatasetError(f"{path} has no {key!r} entry (keys: {sorted(d)}); corrupt? {fix}")
    x, y = d["data"], np.asarray(d[label_key])
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3072):
        raise DatasetError(f"{path}: 'data' should be uint8 of shape (N, 3072), got "
                           f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}; {fix}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: {len(x)} images but labels of shape {y.shape}, dtype "
                           f"{y.dtype}; {fix}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(f"{path}: labels outside [0, {num_classes}); {fix}")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def read_cifar_folder(folder, src, name):
    """Read and check every file of an official-format folder, then assemble the Dataset."""
    k = src["classes"]
    parts = {s: [_read_batch(os.path.join(folder, f), src["label_key"], k) for f in src[s]]
             for s in ("train", "test")}
    meta = _read_pickle(os.path.join(folder, src["meta"]))
    names = meta.get(src["names_key"])
    if not isinstance(names, list) or len(names) != k:
        raise DatasetError(f"{os.path.join(folder, src['meta'])}: expected {k} class names "
                           f"under {src['names_key']!r}; delete the folder and run again")
    names = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
    cat = {s: (np.concatenate([p[0] for p in parts[s]]), np.concatenate([p[1] for p in parts[s]]))
           for s in parts}
    return Dataset(name, *cat["train"], *cat["test"], names)


class _Py2Pickler(pickle._Pickler):
    """Pickle as Python 2's cPickle wrote the CIFAR files: str/bytes as Python 2 strings
    (which Python 3 loads as bytes, or str with encoding='latin1'), no memo, NumPy 1 paths."""
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        obj = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
    dispatch[bytes] = dispatch[str] = _save_py2_str

    def reducer_override(self, obj):
        if isinstance(obj, np.dtype):  # Python 2 NumPy wrote the dtype flags as ints
            f, args, state = obj.__reduce__()
            return f, (args[0], int(args[1]), int(args[2])), state
        return NotImplemented

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
        else:
            super().save_global(obj, name)


def _py2_dump(obj, path):
    buf = io.BytesIO()
    p = _Py2Pickler(buf, protocol=2)
    p.fast = True
    p.dump(obj)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def write_cifar(root, name, x_train, y_train, x_test, y_test, classes, batches=5, first_id=0):
    """Write arrays as an official-format folder ROOT/<folder>/ (tests, subsets, exports).

    CIFAR-10 gets `batches` training batches of (almost) equal size; file names inside are
    sample_NNNNN.png numbered from `first_id`.  Returns the folder."""
    src = CIFAR[name]
    folder = os.path.join(root, src["folder"])
    os.makedirs(folder, exist_ok=True)
    names = lambda start, n: [b"sample_%05d.png" % i for i in range(start, start + n)]
    flat = lambda x: np.ascontiguousarray(x.reshape(len(x), 3072), dtype=np.uint8)
    if name == "cifar10":
        splits = np.array_split(np.arange(len(x_train)), batches)
        for i, idx in enumerate(splits):
            _py2_dump({b"batch_label": b"training batch %d of %d" % (i + 1, batches),
                       b"labels": [int(v) for v in y_train[idx]], b"data": flat(x_train[idx]),
                       b"filenames": names(first_id + int(idx[0]) if len(idx) else 0, len(idx))},
                      os.path.join(folder, src["train"][i]))
        _py2_dump({b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in y_test],
                   b"data": flat(x_test), b"filenames": names(first_id + len(x_train), len(x_test))},
                  os.path.join(folder, "test_batch"))
        _py2_dump({b"num_cases_per_batch": 10000, b"label_names": [c.encode() for c in classes],
                   b"num_vis": 3072}, os.path.join(folder, "batches.meta"))
    else:
        for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            _py2_dump({b"filenames": names(first_id, len(x)), b"batch_label": split.encode(),
                       b"fine_labels": [int(v) for v in y], b"coarse_labels": [int(v) // 5 for v in y],
                       b"data": flat(x)}, os.path.join(folder, split))
        _py2_dump({b"fine_label_names": [c.encode() for c in classes],
                   b"coarse_label_names": [b"coarse%d" % i for i in range(20)]},
                  os.path.join(folder, "meta"))
    return folder


# ----------------------------------------------------------------------------------------
# Transforms and loaders
# ----------------------------------------------------------------------------------------
def channel_stats(x, chunk=4096):
    """Per-channel mean and std of uint8 images (N, C, H, W) on the [0, 1] scale.

    Sums in float64 over chunks of images, so 50,000 CIFAR images never become one 1.2 GB
    float64 copy."""
    n, c, h, w = x.shape
    s, s2 = np.zeros(c), np.zeros(c)
    for i in range(0, n, chunk):
        b = x[i:i + chunk].astype(np.float64) / 255.0
        s += b.sum(axis=(0, 2, 3))
        s2 += (b * b).sum(axis=(0, 2, 3))
    mean = s / (n * h * w)
    std = np.sqrt(np.maximum(s2 / (n * h * w) - mean ** 2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def random_crop_flip(x, rng, padding=4, flip=True):
    """Random 32x32 crop of the zero-padded image and random horizontal flip, for a whole
    uint8 batch (N, C, H, W) at once: the crops are one fancy-indexing gather from a
    sliding-window view, the flips one `where` -- no loop over samples."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
    dy = rng.integers(0, 2 * padding + 1, size=n)           # windows: (n, c, 2p+1, 2p+1, h, w)
    dx = rng.integers(0, 2 * padding + 1, size=n)
    out = windows[np.arange(n), :, dy, dx]                   # -> (n, c, h, w)
    if flip:
        mirror = rng.random(n) < 0.5
        out = np.where(mirror[:, None, None, None], out[..., ::-1], out)
    return out


class Transform:
    """(images uint8, labels) -> (normalized float32 images, int64 labels), optionally with
    crop + flip augmentation first.  Black padding (pixel 0) as torchvision's RandomCrop."""

    def __init__(self, mean, std, augment=False, padding=4):
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
        self.augment, self.padding = augment, padding

    def __call__(self, batch, rng):
        x, y = batch
        if self.augment:
            x = random_crop_flip(x, rng, self.padding)
        x = (x.astype(np.float32) * np.float32(1 / 255.0) - self.mean) / self.std
        return x, y

    def __repr__(self):
        return (f"Transform(mean={self.mean.ravel().round(4).tolist()}, std="
                f"{self.std.ravel().round(4).tolist()}, augment={self.augment})")


def make_loaders(ds, batch_size, seed=0, device="cpu", augment=True, test_batch_size=None):
    """Training loader (shuffled, augmented, drop_last) and test loader (in order, whole).
    Normalization uses the training images' per-channel mean and std."""
    mean, std = channel_stats(ds.x_train)
    train = DataLoader((ds.x_train, ds.y_train), batch_size, shuffle=True, drop_last=True,
                       transform=Transform(mean, std, augment), device=device, seed=seed)
    test = DataLoader((ds.x_test, ds.y_test), test_batch_size or max(batch_size, 256),
                      transform=Transform(mean, std, False), device=device)
    return train, test
