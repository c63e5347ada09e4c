"""minigrad.save / minigrad.load: .npz checkpoints, written atomically."""
import os

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn as nn


def _model():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def test_save_module_load_state_dict(tmp_path):
    src = _model()
    src[1].running_mean.data[...] = np.arange(4)
    path = tmp_path / "model.npz"
    mg.save(src, path)
    sd = mg.load(path)
    assert list(sd) == list(src.state_dict())
    for k, v in src.state_dict().items():
        assert type(sd[k]) is np.ndarray and sd[k].dtype == v.dtype
        np.testing.assert_array_equal(sd[k], v)
    dst = _model()
    dst.load_state_dict(sd)
    np.testing.assert_array_equal(dst[1].running_mean.numpy(), np.arange(4))
    with np.load(path) as z:                 # a plain .npz that NumPy itself reads
        assert sorted(z.files) == sorted(sd)


def test_nested_dict_round_trip(tmp_path):
    ckpt = {"model": {"fc.weight": np.ones((2, 3), np.float32)},
            "optimizer": {"state": {0: {"step": 3, "momentum_buffer": np.arange(3.0)}},
                          "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "nesterov": True,
                                            "params": [0]}]},
            "epoch": 7, "name": "run-1", "tensor": mg.Tensor(np.full(2, 5.0))}
    mg.save(ckpt, tmp_path / "ckpt.npz")
    out = mg.load(tmp_path / "ckpt.npz")
    np.testing.assert_array_equal(out["model"]["fc.weight"], np.ones((2, 3)))
    assert int(out["epoch"]) == 7 and str(out["name"]) == "run-1"
    state = out["optimizer"]["state"][0]                    # digit keys come back as ints
    assert int(state["step"]) == 3
    np.testing.assert_array_equal(state["momentum_buffer"], np.arange(3.0))
    group = out["optimizer"]["param_groups"][0]
    assert float(group["lr"]) == 0.1 and bool(group["nesterov"]) is True
    np.testing.assert_array_equal(group["betas"], [0.9, 0.999])
    np.testing.assert_array_equal(out["tensor"], [5.0, 5.0])


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "ckpt.npz"
    mg.save({"a": np.zeros(2)}, path)
    mg.save({"a": np.ones(2)}, path)                        # overwrite
    np.testing.assert_array_equal(mg.load(path)["a"], np.ones(2))
    with pytest.raises(TypeError, match="'b'"):
        mg.save({"a": np.full(2, 9.0), "b": object()}, path)  # fails before writing anything
    with pytest.raises(TypeError, match="'c'"):
        mg.save({"a": np.full(2, 9.0), "c": [1, [2, 3]]}, path)
    np.testing.assert_array_equal(mg.load(path)["a"], np.ones(2))   # the old file is intact
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_save_and_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        mg.load(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mg.save({"a": np.zeros(1)}, tmp_path / "no" / "such" / "dir.npz")
    with pytest.raises(ValueError, match="may not contain"):
        mg.save({"a/b": np.zeros(1)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="Module or a dict"):
        mg.save([np.zeros(1)], tmp_path / "x.npz")
    (tmp_path / "junk.npz").write_text("not a zip file")
    with pytest.raises(ValueError, match="not an .npz file"):
        mg.load(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        mg.load(tmp_path / "single.npy")


def test_save_from_device(device, tmp_path):
    model = _model().to(device)
    mg.save(model, tmp_path / "m.npz")
    sd = mg.load(tmp_path / "m.npz")
    assert all(type(v) is np.ndarray for v in sd.values())
    fresh = _model().to(device)
    fresh.load_state_dict(sd)
    assert fresh[0].weight.device == device
    np.testing.assert_array_equal(fresh[0].weight.numpy(), model[0].weight.numpy())


def test_save_on_device_load_on_cpu_and_back(tmp_path, device):
    """A model trained on the GPU saves host arrays; they load on the CPU and on the GPU."""
    src = _model().to(device)
    src[1].running_mean.data[...] = src[1].running_mean.data + 3.0
    path = tmp_path / "model.npz"
    mg.save(src, path)
    sd = mg.load(path)
    assert all(type(v) is np.ndarray for v in sd.values())
    on_cpu, back = _model(), _model().to(device)
    on_cpu.load_state_dict(sd)
    back.load_state_dict(sd)
    for (k, a), b, c in zip(src.state_dict().items(), on_cpu.state_dict().values(),
                            back.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
        np.testing.assert_array_equal(a, c, err_msg=k)
    assert all(p.device == device for p in back.parameters())


def test_plain_values_round_trip_with_their_types(tmp_path):
    """What a training checkpoint holds beside arrays comes back as it went in."""
    gen = np.random.default_rng(5)
    gen.random(3)
    ckpt = {"rng": {"init": gen.bit_generator.state,          # 128-bit Python ints inside
                    "numpy": np.random.get_state()},          # ("MT19937", array, int, int, float)
            3: {"step": 4, "buffer": np.arange(3, dtype=np.float32)},
            "3": "a str key beside the int key",
            "history": [{"epoch": 1, "loss": 0.5, "lr": float("nan")}, {"epoch": 2, "loss": 0.25}],
            "mixed": [1, 2.5, None, "x", True, np.float32(1.5), np.arange(2)],
            "betas": (0.9, 0.999), "params": [0, 1, 2], "empty": {"l": [], "t": (), "d": {}},
            "scalars": {"f32": np.float32(0.1), "i8": np.int8(-3), "f64": np.float64(0.2),
                        "c": 1 + 2j, "big": 2 ** 100, "inf": -float("inf")},
            "tensor": mg.Tensor(np.full((2, 2), 5.0))}
    mg.save(ckpt, tmp_path / "ckpt.npz")
    out = mg.load(tmp_path / "ckpt.npz")
    assert out["rng"]["init"] == gen.bit_generator.state
    numpy_state = out["rng"]["numpy"]
    assert type(numpy_state) is tuple and numpy_state[0] == "MT19937"
    np.testing.assert_array_equal(numpy_state[1], ckpt["rng"]["numpy"][1])
    assert numpy_state[1].dtype == ckpt["rng"]["numpy"][1].dtype
    assert numpy_state[2:] == ckpt["rng"]["numpy"][2:]
    np.random.set_state(numpy_state)
    assert list(out) == ["rng", 3, "3", "history", "mixed", "betas", "params", "empty", "scalars",
                         "tensor"]
    assert out[3]["step"] == 4 and out["3"] == ckpt["3"]
    np.testing.assert_array_equal(out[3]["buffer"], np.arange(3))
    assert out[3]["buffer"].dtype == np.float32
    h = out["history"]
    assert type(h) is list and h[1] == {"epoch": 2, "loss": 0.25} and np.isnan(h[0]["lr"])
    m = out["mixed"]
    assert m[:5] == [1, 2.5, None, "x", True] and type(m[4]) is bool and type(m[0]) is int
    assert type(m[5]) is np.float32 and m[5] == np.float32(1.5)
    np.testing.assert_array_equal(m[6], [0, 1])
    assert out["betas"] == (0.9, 0.999) and out["params"] == [0, 1, 2]
    assert out["empty"] == {"l": [], "t": (), "d": {}}
    s = out["scalars"]
    assert type(s["f32"]) is np.float32 and s["f32"] == np.float32(0.1)
    assert type(s["i8"]) is np.int8 and s["i8"] == -3
    assert type(s["f64"]) is np.float64 and s["f64"] == 0.2
    assert s["c"] == 1 + 2j and s["big"] == 2 ** 100 and s["inf"] == -float("inf")
    assert type(out["tensor"]) is np.ndarray
    np.testing.assert_array_equal(out["tensor"], np.full((2, 2), 5.0))
    with np.load(tmp_path / "ckpt.npz") as z:            # arrays stay plain members
        assert "3/buffer" in z.files and "mixed/6" in z.files and "rng/numpy/1" in z.files


def test_keys_and_values_that_cannot_be_saved(tmp_path):
    path = tmp_path / "x.npz"
    with pytest.raises(ValueError, match="name the same member"):
        mg.save({1: np.zeros(1), "1": np.ones(1)}, path)
    with pytest.raises(ValueError, match="reserved"):
        mg.save({"__tree__": np.zeros(1), "n": 1}, path)
    with pytest.raises(TypeError, match="keys must be strings or ints"):
        mg.save({"a": {(1, 2): 3}}, path)
    with pytest.raises(TypeError, match="'a/b'.*array of Python objects"):
        mg.save({"a": {"b": np.array([1, "x", None], dtype=object)}}, path)
    with pytest.raises(ValueError, match="empty"):
        mg.save({"a": {"": 1}}, path)
    assert not os.listdir(tmp_path)


def test_files_without_a_tree_still_load(tmp_path):
    """Files from before the tree existed: nested at the "/"s, numbers as 0-d arrays."""
    np.savez(tmp_path / "old.npz", **{"model/w": np.ones(2), "optimizer/state/0/step": np.array(3),
                                      "epoch": np.array(7)})
    out = mg.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(out["model"]["w"], np.ones(2))
    assert int(out["optimizer"]["state"][0]["step"]) == 3 and int(out["epoch"]) == 7


def test_damaged_tree_is_reported(tmp_path):
    np.savez(tmp_path / "bad.npz", __tree__=np.array("{not json"))
    with pytest.raises(ValueError, match="damaged layout"):
        mg.load(tmp_path / "bad.npz")


def test_save_fsyncs_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    mg.save({"a": np.zeros(2), "n": 1}, tmp_path / "c.npz")
    assert events == ["fsync", "replace"]


def test_nested_device_arrays_come_back_on_the_host(tmp_path, device):
    from minigrad import backend
    x = backend.to_device(np.arange(3.0), device)
    mg.save({"opt": {"state": {0: {"buf": x}}}, "pair": (x, 1)}, tmp_path / "c.npz")
    out = mg.load(tmp_path / "c.npz")
    for a in (out["opt"]["state"][0]["buf"], out["pair"][0]):
        assert type(a) is np.ndarray
        np.testing.assert_array_equal(a, np.arange(3.0))
    assert out["pair"][1] == 1


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], ids=["022", "077", "002"])
def test_saved_files_get_the_mode_the_umask_gives(tmp_path, umask):
    """As open() and np.savez: 0o666 minus the umask (a temporary file would be 0o600)."""
    previous = os.umask(umask)
    try:
        mg.save({"a": np.zeros(2)}, tmp_path / "new.npz")
        mg.save({"a": np.zeros(2)}, tmp_path / "new.npz")         # and when it replaces a file
        np.savez(tmp_path / "numpy.npz", a=np.zeros(2))
    finally:
        os.umask(previous)
    mode = os.stat(tmp_path / "new.npz").st_mode & 0o777
    assert mode == 0o666 & ~umask == os.stat(tmp_path / "numpy.npz").st_mode & 0o777
