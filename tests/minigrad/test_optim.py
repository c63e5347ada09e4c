"""minigrad.optim: update rules by hand and against PyTorch, schedules, state_dict round trips."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn as nn
from minigrad import optim
from minigrad.optim import lr_scheduler
from torch_reference import reference


def _param(values, device="cpu"):
    p = nn.Parameter(np.asarray(values, dtype=np.float64))
    return p if device == "cpu" else nn.Parameter(p.to(device))


def _steps(opt, p, grads):
    """Feed the given gradients one step at a time; return p after each step."""
    out = []
    for g in grads:
        p.grad = np.asarray(g, dtype=np.float64)
        opt.step()
        out.append(p.numpy().copy())
    return out


# ----------------------------------------------------------------------------
# Update rules worked out by hand (no PyTorch needed)
# ----------------------------------------------------------------------------
def test_sgd_plain_and_momentum_by_hand():
    p = _param([1.0])
    # Plain SGD: p -= lr * g.
    assert _steps(optim.SGD([p], lr=0.1), p, [[2.0]])[0] == pytest.approx([0.8])
    # Momentum 0.9, g = 1 each step: buffers 1, 1.9, 2.71; p = 1 - 0.1*(1, 2.9, 5.61).
    p = _param([1.0])
    traj = _steps(optim.SGD([p], lr=0.1, momentum=0.9), p, [[1.0]] * 3)
    np.testing.assert_allclose(np.ravel(traj), [0.9, 0.71, 0.439], rtol=1e-12)


def test_sgd_dampening_weight_decay_nesterov_by_hand():
    # The first buffer is the gradient itself, dampening only applies afterwards:
    # g1 = 1 + 0.5*2 = 2 -> buf 2, p = 2 - 0.1*2 = 1.8
    # g2 = 1 + 0.5*1.8 = 1.9 -> buf 0.9*2 + 0.5*1.9 = 2.75, p = 1.8 - 0.275 = 1.525
    p = _param([2.0])
    traj = _steps(optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.5), p, [[1.0]] * 2)
    np.testing.assert_allclose(np.ravel(traj), [1.8, 1.525], rtol=1e-12)
    # Nesterov: step with g + momentum * buf.  g = 1 twice: buf 1 then 1.9;
    # d = 1 + 0.9 = 1.9, then 1 + 0.9*1.9 = 2.71.
    p = _param([0.0])
    traj = _steps(optim.SGD([p], lr=1.0, momentum=0.9, nesterov=True), p, [[1.0]] * 2)
    np.testing.assert_allclose(np.ravel(traj), [-1.9, -4.61], rtol=1e-12)


def _sgd_reference(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """torch.optim.SGD's documented algorithm, step by step: p after each step."""
    out, b = [], None
    for t, g in enumerate(grads):
        g = g + weight_decay * p
        if momentum != 0:
            b = g if t == 0 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
        out.append(p)
    return out


@pytest.mark.parametrize("settings", [
    dict(lr=0.1, dampening=0.5),                         # no momentum: dampening has no effect
    dict(lr=0.01, momentum=1.0),                         # heavy ball that never forgets
    dict(lr=0.05, momentum=0.9, dampening=1.0),          # the buffer stops taking new gradients
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-4),
], ids=["momentum0-dampening", "momentum1", "dampening1", "dampening-wd", "nesterov"])
def test_sgd_corner_settings_follow_the_update_rule(settings):
    rng = np.random.default_rng(3)
    start, grads = rng.standard_normal(4), rng.standard_normal((5, 4))
    p = _param(start.copy())                  # the update is in place
    opt = optim.SGD([p], **settings)
    traj = _steps(opt, p, grads)
    np.testing.assert_allclose(traj, _sgd_reference(start, grads, **settings), rtol=1e-12)
    assert ("momentum_buffer" in opt.state[p]) == (settings.get("momentum", 0) != 0)


def test_adam_first_step_is_lr_times_sign():
    # After one step m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps).
    g = np.array([3.0, -0.02, 1e-3, -50.0])
    p = _param(np.zeros(4))
    (after,) = _steps(optim.Adam([p], lr=0.01), p, [g])
    np.testing.assert_allclose(after, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_adam_trajectory_by_hand():
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((6, 3))
    lr, b1, b2, eps, wd = 0.05, 0.8, 0.95, 1e-6, 0.1
    p = _param(rng.standard_normal(3))
    w = p.numpy()
    traj = _steps(optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), p, grads)
    m = v = 0.0
    for t, g in enumerate(grads, start=1):          # the textbook formula, step by step
        g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)   # bias correction
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)            # eps outside the root, as PyTorch
        np.testing.assert_allclose(traj[t - 1], w, rtol=1e-12)


def test_adamw_decays_weights_directly():
    # With zero gradients Adam's moments stay zero: AdamW only shrinks p by (1 - lr*wd)
    # each step, while Adam's L2 term goes through the normalized step instead.
    p = _param([2.0, -4.0])
    traj = _steps(optim.AdamW([p], lr=0.1, weight_decay=0.5), p, [[0.0, 0.0]] * 3)
    np.testing.assert_allclose(traj[-1], np.array([2.0, -4.0]) * 0.95 ** 3, rtol=1e-12)
    assert optim.AdamW([p]).defaults["weight_decay"] == 1e-2
    q = _param([2.0, -4.0])
    (after,) = _steps(optim.Adam([q], lr=0.1, weight_decay=0.5), q, [[0.0, 0.0]])
    np.testing.assert_allclose(after, [2.0 - 0.1, -4.0 + 0.1], rtol=1e-6)  # lr * sign(wd * p)


def test_param_groups_and_zero_grad():
    a, b = _param([1.0]), _param([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.0)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 1.0
    a.grad, b.grad = np.ones(1), np.ones(1)
    opt.step()
    assert a.numpy()[0] == pytest.approx(0.9) and b.numpy()[0] == pytest.approx(0.0)
    c = _param([5.0])
    opt.step()                                          # c has no gradient and is not in opt
    opt.zero_grad()
    assert a.grad is None and b.grad is None and c.numpy()[0] == 5.0


def test_optimizer_argument_errors():
    p = _param([1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)


# ----------------------------------------------------------------------------
# Against PyTorch: a small least-squares problem, real gradients, 12 steps
# ----------------------------------------------------------------------------
OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-4)),
    ("SGD", dict(lr=0.1, dampening=0.5)),                    # momentum 0 ignores dampening
    ("SGD", dict(lr=0.01, momentum=1.0)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=1.0)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
]


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((16, 5)), rng.standard_normal((16, 3))
    return X, Y, rng.standard_normal((5, 3)), rng.standard_normal(3)


def _train_ours(make_opt, steps, device="cpu", seed=0):
    X, Y, W0, b0 = _problem(seed)
    w, b = _param(W0, device), _param(b0, device)
    opt = make_opt([{"params": [w]}, {"params": [b], "lr": 0.01}])
    X, Y = mg.tensor(X, device=device), mg.tensor(Y, device=device)
    for _ in range(steps):
        opt.zero_grad()
        (((X @ w + b) - Y) ** 2).mean().backward()
        opt.step()
    return w.numpy(), b.numpy()


@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES)
def test_optimizer_trajectories_match_pytorch(name, kwargs):
    def torch_trajectory(torch, X, Y, W0, b0):
        X, Y = torch.tensor(X), torch.tensor(Y)
        w, b = torch.nn.Parameter(torch.tensor(W0)), torch.nn.Parameter(torch.tensor(b0))
        opt = getattr(torch.optim, name)([{"params": [w]}, {"params": [b], "lr": 0.01}], **kwargs)
        for _ in range(12):
            opt.zero_grad()
            (((X @ w + b) - Y) ** 2).mean().backward()
            opt.step()
        return {"w": w, "b": b}

    options = "-".join(f"{k}{v}" for k, v in kwargs.items()).replace(" ", "")
    theirs = reference(f"optim/{name}-{options}", dict(zip(("X", "Y", "W0", "b0"), _problem())),
                       torch_trajectory)
    ours = _train_ours(lambda groups: getattr(optim, name)(groups, **kwargs), 12)
    np.testing.assert_allclose(ours[0], theirs["w"], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ours[1], theirs["b"], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name,kwargs", [OPTIMIZER_CASES[3], OPTIMIZER_CASES[5], OPTIMIZER_CASES[8]])
def test_optimizers_on_device_match_cpu(name, kwargs, device):
    make = lambda groups: getattr(optim, name)(groups, **kwargs)  # noqa: E731
    on_device, on_cpu = _train_ours(make, 5, device), _train_ours(make, 5, "cpu")
    for a, b in zip(on_device, on_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_optimizer_follows_module_moved_after_steps(device):
    model = nn.Linear(3, 2).double()
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = mg.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    for step in range(2):
        if step == 1:
            model.to(device)          # moves params in place; the Adam moments follow lazily
            x = x.to(device)
        opt.zero_grad()
        (model(x) ** 2).sum().backward()
        opt.step()
    for p in model.parameters():
        assert p.device == device and mg.backend.device_of(opt.state[p]["exp_avg"]) == device


# ----------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------
def _lrs(make_sched, n, lr=1.0, groups=1):
    ps = [_param([0.0]) for _ in range(groups)]
    opt = optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr)
    sched = make_sched(opt)
    out = [sched.get_last_lr()]
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == out[-1]
    return np.array(out)


def test_schedules_by_hand():
    np.testing.assert_allclose(_lrs(lambda o: lr_scheduler.StepLR(o, 2, 0.1), 5)[:, 0],
                               [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-12)
    np.testing.assert_allclose(_lrs(lambda o: lr_scheduler.MultiStepLR(o, [3, 1], 0.5), 4)[:, 0],
                               [1, 0.5, 0.5, 0.25, 0.25], rtol=1e-12)
    cos = _lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.2), 4)[:, 0]
    np.testing.assert_allclose(cos[[0, 2, 4]], [1.0, 0.6, 0.2], rtol=1e-12)  # halfway: the midpoint
    one = _lrs(lambda o: lr_scheduler.OneCycleLR(o, max_lr=2.0, total_steps=10), 9)[:, 0]
    assert one[0] == pytest.approx(2.0 / 25)          # starts at max_lr / div_factor
    assert one[2] == pytest.approx(2.0)               # the peak at step pct_start * total - 1
    assert one[-1] == pytest.approx(2.0 / 25 / 1e4)   # ends at the minimum
    assert np.all(np.diff(one[:3]) > 0) and np.all(np.diff(one[2:]) < 0)


def test_onecycle_errors():
    opt = optim.SGD([_param([0.0])], lr=0.1)
    with pytest.raises(ValueError, match="total_steps"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, epochs=2, steps_per_epoch=2)
    for _ in range(4):
        sched.step()
    with pytest.raises(ValueError, match="once per batch"):
        sched.step()


def _no_momentum_cycling(m):
    """Ours never cycles momentum; PyTorch's OneCycleLR must be told not to."""
    return {} if m is lr_scheduler else {"cycle_momentum": False}


SCHEDULE_CASES = {
    "step": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
    "onecycle": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=20,
                                          **_no_momentum_cycling(m)),
    "onecycle_linear3": lambda m, o: m.OneCycleLR(
        o, max_lr=0.8, total_steps=20, pct_start=0.25, anneal_strategy="linear", div_factor=10.0,
        final_div_factor=100.0, three_phase=True, **_no_momentum_cycling(m)),
}


@pytest.mark.parametrize("case", sorted(SCHEDULE_CASES))
def test_schedules_match_pytorch(case):
    make = SCHEDULE_CASES[case]

    def torch_schedule(torch):
        w = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
        opt = torch.optim.SGD([{"params": [w[0]]}, {"params": [w[1]], "lr": 0.2}], lr=0.1)
        sched = make(torch.optim.lr_scheduler, opt)
        lrs = [sched.get_last_lr()]
        for _ in range(19):   # past T_max for the cosine: it climbs back, in both libraries
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr())
        return {"lrs": np.array(lrs, dtype=np.float64)}

    theirs = reference(f"optim/schedule-{case}", {}, torch_schedule)
    ours = _lrs(lambda o: make(lr_scheduler, o), 19, lr=0.1, groups=2)
    np.testing.assert_allclose(ours, theirs["lrs"], rtol=1e-10, atol=1e-15)


# ----------------------------------------------------------------------------
# state_dict round trips: stop, save, rebuild, load, continue == never stopped
# ----------------------------------------------------------------------------
def _setup(make_opt, make_sched):
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    opt = make_opt(model.parameters())
    return model, opt, make_sched(opt)


def _run(model, opt, sched, steps, rng):
    for _ in range(steps):
        x = mg.tensor(rng.standard_normal((8, 4)))
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
        sched.step()


ROUND_TRIP_CASES = {
    "sgd_step": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
                 lambda o: lr_scheduler.StepLR(o, 3, 0.5)),
    "sgd_multistep": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1),
                      lambda o: lr_scheduler.MultiStepLR(o, [2, 7], 0.1)),
    "adam_cosine": (lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
                    lambda o: lr_scheduler.CosineAnnealingLR(o, 10, 1e-4)),
    "adamw_onecycle": (lambda ps: optim.AdamW(ps, lr=0.01, betas=(0.8, 0.9)),
                       lambda o: lr_scheduler.OneCycleLR(o, 0.05, total_steps=12)),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIP_CASES))
@pytest.mark.parametrize("through_file", [False, True])
def test_resume_equals_uninterrupted(case, through_file, tmp_path):
    make_opt, make_sched = ROUND_TRIP_CASES[case]
    straight = _setup(make_opt, make_sched)
    _run(*straight, 10, np.random.default_rng(1))

    first = _setup(make_opt, make_sched)
    rng = np.random.default_rng(1)
    _run(*first, 4, rng)
    ckpt = {"model": first[0].state_dict(), "optimizer": first[1].state_dict(),
            "scheduler": first[2].state_dict()}
    if through_file:
        mg.save(ckpt, tmp_path / "ckpt.npz")
        ckpt = mg.load(tmp_path / "ckpt.npz")

    mg.manual_seed(123)                                    # a fresh start with other weights
    model, opt, sched = _setup(make_opt, make_sched)
    for p in model.parameters():
        p.data[...] = 0.0
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    assert sched.get_last_lr() == first[2].get_last_lr()
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in first[1].param_groups]
    _run(model, opt, sched, 6, rng)
    for a, b in zip(model.parameters(), straight[0].parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert sched.get_last_lr() == straight[2].get_last_lr()


def test_optimizer_state_dict_contents_are_plain():
    p = _param([1.0, 2.0])
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(2)
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"] == [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                                   "amsgrad": False, "params": [0]}]
    assert sd["state"][0]["step"] == 1 and type(sd["state"][0]["exp_avg"]) is np.ndarray
    sd["state"][0]["exp_avg"][...] = 42.0        # a copy: the optimizer is unaffected
    assert not np.any(opt.state[p]["exp_avg"] == 42.0)


def test_optimizer_load_state_dict_checks_groups():
    a, b = _param([1.0]), _param([2.0])
    sd = optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="2 parameters in the state_dict but 1"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)


def test_scheduler_resume_needs_initial_lr():
    opt = optim.SGD([_param([0.0])], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, 2, last_epoch=3)
