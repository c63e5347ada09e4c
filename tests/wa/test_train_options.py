"""wa-train's issue-14 options on tiny runs: the GroupNorm group rule, WA variants as specs,
ws without a norm as a usage error, Fixup's scalars at lr / 10, --record-distributions."""
import json
import os
import sys

import numpy as np
import pytest

import wa.distributions as D
import wa.train as T

TINY = ["--dataset", "synthetic", "--model", "plain8", "--width", "0.0625", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "16"]


class Killed(Exception):
    """Stands in for SIGKILL."""


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def config(out):
    with open(os.path.join(out, "config.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------
# Group rule
# ---------------------------------------------------------------------------------------
def test_group_rule_defaults_to_32_groups_and_is_recorded(tmp_path):
    out = tmp_path / "run"
    # plain8 at width 0.5: 32 channels -> the GN paper's 32 groups, but never fewer than 2
    # channels per group: 16 groups of 2 (one channel per group would be InstanceNorm)
    assert T.main(TINY + ["--width", "0.5", "--norm", "gn+wa", "--epochs", "1", "--out", str(out)]) == 0
    cfg = config(out)
    assert cfg["settings"]["gn_groups"] == 32 and cfg["settings"]["gn_min_channels"] == 2
    assert cfg["gn_groups_per_layer"] == {"32": 16}


def test_group_rule_options_reach_the_model_and_config(tmp_path):
    out = tmp_path / "run"
    assert T.main(TINY + ["--width", "0.5", "--norm", "bcn+ws", "--gn-min-channels", "4",
                          "--gn-groups", "4", "--epochs", "1", "--out", str(out)]) == 0
    cfg = config(out)
    assert cfg["settings"]["gn_groups"] == 4 and cfg["settings"]["gn_min_channels"] == 4
    assert cfg["gn_groups_per_layer"] == {"32": 4}
    out2 = tmp_path / "run2"
    assert T.main(TINY + ["--width", "0.5", "--gn-min-channels", "4", "--epochs", "1",
                          "--out", str(out2)]) == 0
    assert config(out2)["gn_groups_per_layer"] == {"32": 8}


def test_a_run_folder_from_before_the_flags_resumes_with_the_old_rule(tmp_path):
    out = tmp_path / "run"
    assert T.main(TINY + ["--width", "0.5", "--epochs", "1", "--out", str(out)]) == 0
    doc = config(out)
    del doc["settings"]["gn_groups"], doc["settings"]["gn_min_channels"]
    with open(out / "config.json", "w") as f:
        json.dump(doc, f)
    cfg, _ = T.parse_config(["--out", str(out), "--resume"])
    model = T.build_model(cfg, 10)
    assert {m.num_groups for m in model.modules() if hasattr(m, "num_groups")} == {8}  # >= 4 each


@pytest.mark.parametrize("flags, reason", [
    (["--norm", "ws"], "WS needs an activation norm after it"),
    (["--norm", "none+ws"], "WS needs an activation norm after it"),
    (["--norm", "wa[center,alpha=2]"], "leaves out"),
    (["--gn-groups", "0"], "must be positive"),
    (["--gn-min-channels", "x"], "expected an integer"),
    (["--record-layers", "convs.0"], "--record-layers needs --record-distributions"),
    (["--record-distributions", "--record-layers", "nope"], "no module named nope"),
    (["--record-distributions", "--record-channel", "99"], "has only 4 output channels"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, flags, reason):
    with pytest.raises(SystemExit) as e:
        T.main(TINY + ["--epochs", "1", "--out", str(tmp_path / "r")] + flags)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("wa-train: error: ") and reason in err[-1], err
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("spec", ["wa[center]", "wa[scale]", "wa[alpha=0.25]", "gn+wa[center]"])
def test_wa_variants_train_from_the_command_line(tmp_path, spec):
    out = tmp_path / "run"
    assert T.main(TINY + ["--norm", spec, "--epochs", "1", "--out", str(out)]) == 0
    assert config(out)["settings"]["norm"] == spec


# ---------------------------------------------------------------------------------------
# Fixup's scalars at lr / 10
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["cosine", "step", "onecycle"])
def test_fixup_scalars_train_at_a_tenth_of_the_rate(tmp_path, schedule):
    import wa.models
    cfg, _ = T.parse_config(TINY + ["--model", "resnet20", "--width", "0.25", "--norm", "wa",
                                    "--fixup", "gamma,lr/10,scaled",
                                    "--epochs", "2", "--schedule", schedule, "--lr", "0.05",
                                    "--out", str(tmp_path / "r")])
    tr = T.Trainer(cfg)
    tr.setup()
    main, scalars = tr.optimizer.param_groups
    assert {id(p) for p in scalars["params"]} == {id(p) for p in wa.models.fixup_scalars(tr.model)}
    assert len(scalars["params"]) == 9 * 5 + 2
    n_all = len(list(tr.model.parameters()))
    assert len(main["params"]) + len(scalars["params"]) == n_all
    for _ in range(tr.total_steps):               # the ratio holds along the whole schedule
        assert scalars["lr"] == pytest.approx(main["lr"] * 0.1, rel=1e-9, abs=1e-15)
        tr.scheduler.step()


def test_a_fixup_scalar_moves_a_tenth_as_far(tmp_path):
    """Two trainers from the same seed, one with the scalars' group put back at the full rate:
    the scalars' updates differ by the factor 10 (step 2: at step 1 Fixup's zero classifier
    gives everything below it a zero gradient)."""
    cfg, _ = T.parse_config(TINY + ["--model", "resnet20", "--width", "0.25", "--norm", "wa",
                                    "--fixup", "gamma,lr/10,scaled",
                                    "--epochs", "2", "--lr", "0.05", "--schedule", "cosine",
                                    "--out", str(tmp_path / "r")])
    tenth, full = T.Trainer(cfg), T.Trainer(cfg)
    tenth.setup()
    full.setup()
    g0, g1 = full.optimizer.param_groups
    g1["lr"] = g1["initial_lr"] = full.scheduler.base_lrs[1] = g0["initial_lr"]
    batches = list(zip(range(2), tenth.train_loader))
    before = [[p.numpy().copy() for p in t.optimizer.param_groups[1]["params"]] for t in (tenth, full)]
    for t in (tenth, full):
        for _, (x, y) in batches:
            t.train_step(x, y)
    moved = [[p.numpy() - b for p, b in zip(t.optimizer.param_groups[1]["params"], bs)]
             for t, bs in zip((tenth, full), before)]
    d_tenth, d_full = np.concatenate(moved[0]), np.concatenate(moved[1])
    assert np.abs(d_full).max() > 0
    # (1 % slack: step 1 already moved the multipliers by weight decay, by 0.1x vs 1x)
    np.testing.assert_allclose(d_tenth, 0.1 * d_full, rtol=1e-2, atol=1e-9)


def test_fixup_groups_in_config_and_none_without_fixup(tmp_path):
    out = tmp_path / "run"
    assert T.main(TINY + ["--model", "resnet20", "--width", "0.25", "--norm", "none",
                          "--epochs", "1", "--lr", "0.02", "--out", str(out)]) == 0
    groups = config(out)["param_groups"]
    assert [g["name"] for g in groups] == ["main", "fixup scalars"]
    assert groups[0]["lr"] == pytest.approx(0.02) and groups[1]["lr"] == pytest.approx(0.002)
    assert groups[1]["parameters"] == 47
    assert T.main(TINY + ["--model", "resnet20", "--width", "0.25", "--norm", "gn+wa",
                          "--epochs", "1", "--out", str(tmp_path / "r2")]) == 0
    assert [g["name"] for g in config(tmp_path / "r2")["param_groups"]] == ["main"]


# ---------------------------------------------------------------------------------------
# --record-distributions
# ---------------------------------------------------------------------------------------
def test_record_distributions_writes_npz_and_plot(tmp_path):
    out = tmp_path / "run"
    assert T.main(TINY + ["--norm", "gn+wa", "--epochs", "2", "--record-distributions",
                          "--record-channel", "1", "--out", str(out)]) == 0
    d = D.load(out / "distributions.npz")
    assert list(d["epochs"]) == [0, 1, 2] and int(d["channel"]) == 1
    layers = [str(x) for x in d["layers"]]
    assert layers == ["convs.0", "convs.3", "convs.6"]          # first, middle, last conv
    for name in layers:
        for kind in ("weight", "effective", "activation"):
            counts, edges = d[f"{name}/{kind}/counts"], d[f"{name}/{kind}/edges"]
            assert counts.shape == (3, D.BINS) and edges.shape == (3, D.BINS + 1)
        # the raw weight histogram counts the filter's n = 9 * C_in weights
        c_in = 3 if name == "convs.0" else 4
        assert (d[f"{name}/weight/counts"].sum(axis=1) == 9 * c_in).all()
        # WA's aligned filter: zero mean, (n/2) Var = 1 times gamma (= 1 at the start)
        assert abs(d[f"{name}/effective/mean"][0]) < 1e-6
        assert d[f"{name}/effective/std"][0] == pytest.approx(np.sqrt(2 / (9 * c_in)), rel=1e-3)
        # the activations of one channel over the 32 test images x 32 x 32 positions
        assert (d[f"{name}/activation/counts"].sum(axis=1) == 32 * 32 * 32).all()
    # training changed the weights between epochs
    assert d["convs.3/weight/std"][2] != d["convs.3/weight/std"][0]
    assert not any(f.endswith(".tmp") for f in os.listdir(out))
    assert (out / "distributions.png").is_file() == _has_matplotlib()


def test_record_distributions_of_chosen_layers_of_a_plain_conv(tmp_path):
    out = tmp_path / "run"
    assert T.main(TINY + ["--norm", "bn", "--epochs", "1", "--record-distributions",
                          "--record-layers", "convs.2,classifier", "--out", str(out)]) == 0
    d = D.load(out / "distributions.npz")
    assert [str(x) for x in d["layers"]] == ["convs.2", "classifier"]
    assert "convs.2/effective/counts" not in d                     # a plain Conv2d
    assert d["classifier/activation/counts"].shape == (2, D.BINS)


def test_record_distributions_without_matplotlib_skips_the_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "run"
    assert T.main(TINY + ["--epochs", "1", "--record-distributions", "--out", str(out)]) == 0
    assert "skipping distributions.png" in capsys.readouterr().out
    assert (out / "distributions.npz").is_file() and not (out / "distributions.png").exists()


def test_record_distributions_survive_a_kill_and_resume(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    args = TINY + ["--epochs", "3", "--record-distributions"]
    assert T.main(args + ["--out", str(ref)]) == 0
    out = tmp_path / "run"
    original = T.Trainer.save

    def die_at_the_second_epochs_checkpoint(self):
        if self.epoch == 2:             # its histograms are on disk, its checkpoint is not
            raise Killed
        return original(self)
    with monkeypatch.context() as m:
        m.setattr(T.Trainer, "save", die_at_the_second_epochs_checkpoint)
        with pytest.raises(Killed):
            T.main(args + ["--out", str(out)])
    assert list(D.load(out / "distributions.npz")["epochs"]) == [0, 1, 2]
    assert T.main(["--out", str(out), "--resume"]) == 0
    a, b = D.load(ref / "distributions.npz"), D.load(out / "distributions.npz")
    assert list(b["epochs"]) == [0, 1, 2, 3]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
