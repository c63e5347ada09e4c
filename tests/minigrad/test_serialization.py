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
