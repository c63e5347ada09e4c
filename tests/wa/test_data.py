"""Datasets, CIFAR files (reading, checking, downloading), transforms and the DataLoader.

Nothing here touches the network: CIFAR folders are generated in the official format, and
downloads come from file:// URLs."""
import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest

import wa.data as D
from minigrad.data import DataLoader

SHARED = "/work/shared/cifar10-sample/cifar-10-batches-py"


def fake_images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


def write_fake_cifar10(root, n_train=50, n_test=20):
    xtr, ytr = fake_images(n_train, 1)
    xte, yte = fake_images(n_test, 2)
    D.write_cifar(str(root), "cifar10", xtr, ytr, xte, yte, [f"c{i}" for i in range(10)])
    return xtr, ytr, xte, yte


# ---------------------------------------------------------------------------------------
# Bundled and synthetic datasets
# ---------------------------------------------------------------------------------------
def test_bundled_sample_shapes_dtypes_labels():
    ds = D.load_dataset("cifar10-sample")
    assert ds.x_train.shape == (1504, 3, 32, 32) and ds.x_test.shape == (360, 3, 32, 32)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.num_classes == 10 and ds.classes[0] == "airplane"
    for y in (ds.y_train, ds.y_test):
        assert y.min() >= 0 and y.max() <= 9
        assert np.all(np.bincount(y, minlength=10) > 10)   # every class present
    # Real photographs: far from constant, not uniform noise either.
    assert 0.3 < ds.x_train.mean() / 255 < 0.6


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="the shared official-format sample is absent")
def test_bundled_sample_equals_official_files_and_writer_reproduces_them(tmp_path):
    ds = D.load_dataset("cifar10-sample")
    official = D.read_cifar_folder(SHARED, D.CIFAR["cifar10"], "x")
    np.testing.assert_array_equal(ds.x_train, official.x_train)
    np.testing.assert_array_equal(ds.y_test, official.y_test)
    # Our writer produces the official files byte for byte (Python 2 pickle layout).
    folder = D.write_cifar(str(tmp_path), "cifar10", ds.x_train, ds.y_train, ds.x_test, ds.y_test,
                           ds.classes)
    for name in sorted(os.listdir(SHARED)):
        with open(os.path.join(SHARED, name), "rb") as a, open(os.path.join(folder, name), "rb") as b:
            assert a.read() == b.read(), name


def test_synthetic_is_seeded_balanced_and_in_format():
    a, b, c = D.make_synthetic(seed=0), D.make_synthetic(seed=0), D.make_synthetic(seed=1)
    assert a.x_train.shape == (2000, 3, 32, 32) and a.x_train.dtype == np.uint8
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert set(np.unique(a.y_train)) == set(range(10))
    assert np.bincount(a.y_train).min() > 150


def test_limits_keep_the_first_images():
    full = D.load_dataset("synthetic")
    ds = D.load_dataset("synthetic", limit_train=30, limit_test=7)
    assert len(ds.x_train) == 30 and len(ds.y_test) == 7
    np.testing.assert_array_equal(ds.x_train, full.x_train[:30])


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="cifar10-sample"):
        D.load_dataset("mnist")


# ---------------------------------------------------------------------------------------
# CIFAR folders: reading and checking
# ---------------------------------------------------------------------------------------
def test_generated_folder_is_official_format_and_reads_back(tmp_path):
    xtr, ytr, xte, yte = write_fake_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")          # how the official files load
    assert set(raw) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert raw[b"data"].dtype == np.uint8 and raw[b"data"].shape == (10, 3072)
    ds = D.load_cifar("cifar10", str(tmp_path), download=False)
    np.testing.assert_array_equal(ds.x_train, xtr)
    np.testing.assert_array_equal(ds.y_train, ytr)
    np.testing.assert_array_equal(ds.x_test, xte)
    assert ds.classes == tuple(f"c{i}" for i in range(10))
    # --data-dir may also name the dataset folder itself.
    inner = D.load_cifar("cifar10", str(tmp_path / "cifar-10-batches-py"), download=False)
    np.testing.assert_array_equal(inner.x_test, xte)


def test_cifar100_layout_reads_fine_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 100, 12)
    D.write_cifar(str(tmp_path), "cifar100", x, y, x[:4], y[:4], [f"f{i}" for i in range(100)])
    ds = D.load_dataset("cifar100", data_dir=str(tmp_path), download=False)
    assert ds.num_classes == 100
    np.testing.assert_array_equal(ds.y_train, y)
    np.testing.assert_array_equal(ds.x_test, x[:4])


def test_missing_folder_offline_says_url_layout_and_flag(tmp_path):
    with pytest.raises(D.DatasetError) as e:
        D.load_dataset("cifar10", data_dir=str(tmp_path), download=False)
    msg = str(e.value)
    assert D.CIFAR["cifar10"]["url"] in msg and "cifar-10-batches-py" in msg
    assert "data_batch_1" in msg and "--data-dir" in msg and str(tmp_path) in msg


def test_truncated_batch_file_is_reported_not_half_read(tmp_path):
    write_fake_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(D.DatasetError, match="data_batch_3 is truncated or corrupt"):
        D.load_cifar("cifar10", str(tmp_path), download=False)


@pytest.mark.parametrize("bad, match", [
    ({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, "shape"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, "labels"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]}, "outside"),
    ({b"labels": [0]}, "no 'data'"),
])
def test_malformed_batch_files_are_named(tmp_path, bad, match):
    write_fake_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(bad, f, protocol=2)
    with pytest.raises(D.DatasetError, match=match):
        D.load_cifar("cifar10", str(tmp_path), download=False)


def test_missing_batch_file_is_reported(tmp_path):
    write_fake_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_5")
    with pytest.raises(D.DatasetError, match="missing file .*data_batch_5"):
        D.load_cifar("cifar10", str(tmp_path), download=False)


def test_pickles_cannot_run_code(tmp_path):
    write_fake_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f, protocol=2)
    with pytest.raises(D.DatasetError, match="refusing to load"):
        D.load_cifar("cifar10", str(tmp_path), download=False)


# ---------------------------------------------------------------------------------------
# Download: from a file:// URL, with MD5 and extraction checks
# ---------------------------------------------------------------------------------------
def make_archive(tmp_path):
    src = tmp_path / "src"
    data = write_fake_cifar10(src)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest(), data


def test_download_verify_extract_then_offline(tmp_path, monkeypatch):
    archive, md5, (xtr, *_) = make_archive(tmp_path)
    monkeypatch.setitem(D.CIFAR["cifar10"], "url", archive.as_uri())
    monkeypatch.setitem(D.CIFAR["cifar10"], "md5", md5)
    cache = tmp_path / "cache"
    ds = D.load_dataset("cifar10", data_dir=str(cache))
    np.testing.assert_array_equal(ds.x_train, xtr)
    assert (cache / "cifar-10-batches-py" / "test_batch").is_file()
    assert [p for p in os.listdir(cache) if p.startswith(".extract") or p.endswith(".part")] == []

    def no_network(url):
        raise AssertionError("network used although the folder exists")
    monkeypatch.setattr(D, "_fetch", no_network)
    np.testing.assert_array_equal(D.load_dataset("cifar10", data_dir=str(cache)).x_train, xtr)


def test_download_with_wrong_md5_keeps_nothing(tmp_path, monkeypatch):
    archive, md5, _ = make_archive(tmp_path)
    monkeypatch.setitem(D.CIFAR["cifar10"], "url", archive.as_uri())
    monkeypatch.setitem(D.CIFAR["cifar10"], "md5", "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(D.DatasetError, match="MD5"):
        D.load_dataset("cifar10", data_dir=str(cache))
    assert os.listdir(cache) == []


def test_failed_download_gives_the_offline_instructions(tmp_path, monkeypatch):
    monkeypatch.setitem(D.CIFAR["cifar10"], "url", (tmp_path / "nowhere.tar.gz").as_uri())
    with pytest.raises(D.DatasetError, match="download failed") as e:
        D.load_dataset("cifar10", data_dir=str(tmp_path / "cache"))
    assert "--data-dir" in str(e.value)


def test_truncated_archive_is_detected(tmp_path, monkeypatch):
    archive, md5, _ = make_archive(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    cut = archive.read_bytes()[: archive.stat().st_size // 2]
    (cache / archive.name).write_bytes(cut)
    monkeypatch.setitem(D.CIFAR["cifar10"], "md5", md5)
    with pytest.raises(D.DatasetError, match="truncated or corrupt"):   # MD5 differs
        D.load_dataset("cifar10", data_dir=str(cache), download=False)
    # Even if the checksum were to match, extraction refuses it and leaves no folder behind.
    monkeypatch.setitem(D.CIFAR["cifar10"], "md5", hashlib.md5(cut).hexdigest())
    with pytest.raises(D.DatasetError, match="truncated or corrupt"):
        D.load_dataset("cifar10", data_dir=str(cache), download=False)
    assert sorted(os.listdir(cache)) == [archive.name]


# ---------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------
def test_channel_stats_match_direct_computation():
    x, _ = fake_images(40, 3)
    mean, std = D.channel_stats(x, chunk=7)
    f = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, f.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, f.std(axis=(0, 2, 3)), rtol=1e-5)


def test_crop_flip_keeps_shape_and_takes_real_windows():
    x, _ = fake_images(64, 4)
    out = D.random_crop_flip(x, np.random.default_rng(0), padding=4)
    assert out.shape == x.shape and out.dtype == np.uint8
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    for i in range(0, 64, 9):  # a slow reference on a few samples: some window, maybe mirrored
        windows = [padded[i, :, a:a + 32, b:b + 32] for a in range(9) for b in range(9)]
        assert any(np.array_equal(out[i], w) or np.array_equal(out[i], w[..., ::-1]) for w in windows)


def test_flip_happens_half_the_time():
    n = 20000
    x = np.zeros((n, 1, 2, 2), np.uint8)
    x[:, :, :, 0] = 255                             # left column white
    out = D.random_crop_flip(x, np.random.default_rng(5), padding=0)
    flipped = (out[:, 0, 0, 1] == 255).mean()
    assert abs(flipped - 0.5) < 4.5 * np.sqrt(0.25 / n)
    assert np.array_equal(out[:, :, :, ::-1][out[:, 0, 0, 1] == 255], x[out[:, 0, 0, 1] == 255])


def test_no_padding_no_flip_is_identity():
    x, _ = fake_images(8, 6)
    np.testing.assert_array_equal(D.random_crop_flip(x, np.random.default_rng(0), 0, flip=False), x)


def test_normalized_training_set_has_zero_mean_unit_std_per_channel():
    ds = D.load_dataset("cifar10-sample")
    train, _ = D.make_loaders(ds, batch_size=len(ds.x_train), augment=False)
    x, y = next(iter(train))
    assert x.dtype == np.float32 and x.shape == (1504, 3, 32, 32)
    np.testing.assert_allclose(x.data.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(x.data.std(axis=(0, 2, 3)), 1, atol=1e-4)


# ---------------------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------------------
def test_loader_batches_cover_every_sample_once():
    x = np.arange(10)
    loader = DataLoader((x, x * 2), batch_size=4, shuffle=True, seed=0)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[0]) for b in batches] == [4, 4, 2]
    seen = np.concatenate([b[0].data for b in batches])
    assert sorted(seen) == list(range(10)) and not np.array_equal(seen, x)
    assert all(np.array_equal(b[1].data, b[0].data * 2) for b in batches)
    assert len(DataLoader((x,), 4, drop_last=True)) == 2
    assert [len(b[0]) for b in DataLoader((x,), 4, drop_last=True)] == [4, 4]


def test_loader_seeded_and_epochs_differ():
    x = np.arange(50)
    a = [b[0].data for b in DataLoader((x,), 10, shuffle=True, seed=3)]
    b = [b[0].data for b in DataLoader((x,), 10, shuffle=True, seed=3)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    loader = DataLoader((x,), 50, shuffle=True, seed=3)
    assert not np.array_equal(next(iter(loader))[0].data, next(iter(loader))[0].data)


def test_loader_rejects_misaligned_arrays():
    with pytest.raises(ValueError, match="different lengths"):
        DataLoader((np.zeros(3), np.zeros(4)))


def test_loader_state_dict_resumes_mid_epoch_exactly():
    ds = D.make_synthetic(n_train=64, n_test=8)
    make = lambda: D.make_loaders(ds, batch_size=8, seed=11)[0]
    ref = make()
    uninterrupted = [x.data for _ in range(2) for x, _ in ref]      # two epochs
    first = make()
    it = iter(first)
    got = [next(it)[0].data for _ in range(3)]                     # killed after batch 3
    state = first.state_dict()
    assert state["batch"] == 3
    resumed = make()
    resumed.generator = np.random.default_rng(999)                  # state must come from the dict
    resumed.load_state_dict(state)
    got += [x.data for x, _ in resumed]                             # rest of epoch 1
    got += [x.data for x, _ in resumed]                             # epoch 2
    assert len(got) == len(uninterrupted)
    for a, b in zip(got, uninterrupted):
        np.testing.assert_array_equal(a, b)


def test_loader_moves_batches_to_the_device(device):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    xb, = next(iter(DataLoader((x,), 3, device=device)))
    assert xb.device == device
