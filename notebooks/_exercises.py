"""Exercises of the notebooks: the checkers, and a reference answer for each.

A notebook leaves every exercise open: the reader writes a function or a number in the cell
marked `# YOUR CODE`, and the next cell calls `check(name, answer)`, which compares the answer
with the true value on a few cases and prints one line: PASS, how far off and where to look, or
"not attempted yet" while the answer is still None or raises NotImplementedError.

    import _exercises as ex
    answer = ex.answer("im2col_shape", my_function)   # the reference when WA_SOLUTIONS=1
    ex.check("im2col_shape", answer)

With the environment variable WA_SOLUTIONS=1 (the test suite sets it), `answer` hands back the
reference answer, so every checker runs on every test run, and a checker that does not pass
raises. tests/notebooks/test_exercises.py shows that each checker fails on a wrong answer.
The true values come from the package itself (autograd, F.im2col, F.group_norm, ...) wherever
they can, not from the reference answers.
"""
import functools
import os

import numpy as np

import minigrad as mg
import minigrad.functional as F
import wa.functional as WF

SOLUTIONS = os.environ.get("WA_SOLUTIONS") == "1"


# --- reference answers --------------------------------------------------------------------
def im2col_shape(N, C, H, W, k, stride=1, padding=0, dilation=1):
    ho = (H + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    wo = (W + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    return (N * ho * wo, k * k * C)


def conv_input_grad(g, w, padding):
    """dL/dx of a stride-1 conv2d(x, w, padding): conv2d of g with w flipped, in/out swapped."""
    k = w.shape[2]
    w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return F.conv2d(mg.tensor(g), mg.tensor(w_flip), padding=k - 1 - padding).numpy()


def centred_variance_ratio(alpha):
    """Var[x_l] / Var[x_(l-1)] of exactly centred filters with alpha * n * Var[w_hat] = 1."""
    return (1 - 1 / np.pi) / (2 * alpha)


def wa_backward(G, w, gamma, alpha=0.5, eps=1e-5):
    """dL/dw of WA (eq. 10) on (out, n) rows: (1/rho) [h - mean(h) - alpha u sum(h u)], h = gamma G."""
    n = w.shape[1]
    d = w - w.mean(axis=1, keepdims=True)
    rho = np.sqrt(alpha * n * (d * d).mean(axis=1, keepdims=True) + eps)
    u = d / rho
    h = gamma[:, None] * G
    return (h - h.mean(axis=1, keepdims=True) - alpha * u * (h * u).sum(axis=1, keepdims=True)) / rho


def wa_backward_nocenter(G, w, gamma, alpha=0.5, eps=1e-5):
    """dL/dw of w_hat = gamma * w / rho, rho = sqrt(alpha n v + eps), v = Var of each row."""
    n = w.shape[1]
    d = w - w.mean(axis=1, keepdims=True)
    rho = np.sqrt(alpha * n * (d * d).mean(axis=1, keepdims=True) + eps)
    h = gamma[:, None] * G
    return (h - alpha * (d / rho) * (h * w / rho).sum(axis=1, keepdims=True)) / rho


def zero_grad_update_ratio(lr, momentum, weight_decay):
    """||step|| / ||w|| per step, at steady state, of SGD on a weight whose loss gradient is 0:
    the buffer settles at weight_decay * w / (1 - momentum), and the step is lr times it."""
    return lr * weight_decay / (1 - momentum)


# notebook 04's predictions: plain8 at initialisation, WA with gamma = 1 and eq. (9)'s n/2 loses
# 1 - 1/pi per ReLU layer, six times from conv1 to conv7; GroupNorm leaves each channel's mean
# minus its group's mean, whose spread grows as sqrt(1 - 1/g) with g channels per group
wa_layer7_variance = (1 - 1 / np.pi) ** 6
gn_drift_ratio = np.sqrt((1 - 1 / 4) / (1 - 1 / 2))


def frozen_at_start(layer):
    """Notebook 05: under Fixup as published mapped onto WA's gamma (the last conv of each branch
    at gamma = 0), does this conv's raw weight get exactly zero loss gradient once the classifier
    has moved? h = gamma G(w): the closing conv's raw weight gets gamma times its gradient, and
    the branch's first conv sends its output through a zero filter. The stem and the 1x1
    shortcuts sit on the path that skips the branches."""
    return ".conv" in layer


def se_of_difference(p1, p2, n):
    return np.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)


REFERENCE = {
    "im2col_shape": im2col_shape,
    "conv_input_grad": conv_input_grad,
    "relu_var_fraction": 1 - 1 / np.pi,
    "centred_variance_ratio": centred_variance_ratio,
    "wa_backward": wa_backward,
    "wa_backward_nocenter": wa_backward_nocenter,
    "zero_grad_update_ratio": zero_grad_update_ratio,
    "wa_layer7_variance": wa_layer7_variance,
    "gn_drift_ratio": gn_drift_ratio,
    "frozen_at_start": frozen_at_start,
    "se_of_difference": se_of_difference,
}


# --- the true values each checker compares with --------------------------------------------
def _rng():
    return np.random.default_rng(1234)


def _cases_im2col_shape():
    for geo in [(2, 3, 8, 8, 3, 1, 0, 1), (1, 4, 9, 7, 3, 2, 1, 1), (2, 2, 10, 10, 3, 1, 2, 2),
                (1, 5, 6, 6, 1, 2, 0, 1), (3, 1, 7, 7, 2, 3, 1, 1)]:
        x = mg.tensor(np.zeros(geo[:4]))
        truth = F.im2col(x, geo[4], geo[5], geo[6], geo[7]).shape
        yield f"N,C,H,W,k,s,p,d = {geo}", (geo, {}), np.array(truth)


def _cases_conv_input_grad():
    rng = _rng()
    for C, O, H, k, p in [(3, 4, 6, 3, 1), (2, 5, 7, 3, 0), (2, 3, 8, 5, 2), (1, 2, 5, 1, 0)]:
        x = mg.tensor(rng.standard_normal((2, C, H, H)), requires_grad=True)
        w = rng.standard_normal((O, C, k, k))
        y = F.conv2d(x, mg.tensor(w), padding=p)
        g = rng.standard_normal(y.shape)
        y.backward(mg.tensor(g))
        yield f"C={C} O={O} {H}x{H} k={k} padding={p}", ((g, w, p), {}), np.asarray(x.grad)


def _cases_relu_var_fraction():
    y = np.maximum(np.random.default_rng(0).standard_normal(2_000_000), 0)
    yield "Var[y]/E[y^2] for y = relu(N(0,1)), by 2e6-draw Monte Carlo", None, y.var() / (y * y).mean()


def _relu_moments():
    """E[y] and E[y^2] of y = relu(z), z ~ N(0, 1), by quadrature of the Gaussian density."""
    z = np.linspace(0.0, 40.0, 2_000_001)
    phi = np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    return np.trapezoid(z * phi, z), np.trapezoid(z * z * phi, z)


def _cases_centred_variance_ratio():
    # x = sum_i w_i y_i with i.i.d. y_i = relu(N(0, 1)) and a filter with an exactly zero sum:
    # Var[x] = Var[y] * sum_i w_i^2 exactly (the E[y]^2 part cancels), and alpha n Var[w] = 1
    # makes sum_i w_i^2 = 1 / alpha; Var[y] by quadrature, so the tolerance can be tight
    m1, m2 = _relu_moments()
    for alpha in (0.5, 0.25, 1.0, 1 / 3):
        yield f"alpha = {alpha:.3g}", ((alpha,), {}), (m2 - m1 * m1) / alpha


def _cases_wa_backward_nocenter():
    rng = _rng()
    for out, n, alpha, eps in [(4, 27, 0.5, 1e-5), (6, 72, 0.25, 1e-5), (3, 9, 0.5, 0.0)]:
        w = rng.normal(0.1, 0.3, (out, n))                       # a nonzero mean on purpose
        gamma = rng.uniform(0.5, 1.5, out)
        G = rng.standard_normal((out, n))
        W = mg.Tensor(w.copy(), requires_grad=True)
        WF.weight_align(W, mg.Tensor(gamma), eps=eps, alpha=alpha, center=False).backward(G)
        yield (f"out={out} n={n} alpha={alpha} eps={eps}", ((G, w, gamma), dict(alpha=alpha, eps=eps)),
               np.asarray(W.grad))


def _cases_wa_backward():
    # the package's op, itself gradient-checked (tests/wa), on rows with a nonzero mean; and
    # central differences of L = sum(G * w_hat) on a small case, from the forward pass alone
    rng = _rng()
    for out, n, alpha, eps in [(4, 27, 0.5, 1e-5), (6, 72, 0.25, 1e-5), (3, 9, 0.5, 0.0)]:
        w = rng.normal(0.1, 0.3, (out, n))
        gamma = rng.uniform(0.5, 1.5, out)
        G = rng.standard_normal((out, n))
        W = mg.Tensor(w.copy(), requires_grad=True)
        WF.weight_align(W, mg.Tensor(gamma), eps=eps, alpha=alpha).backward(G)
        yield (f"out={out} n={n} alpha={alpha} eps={eps}", ((G, w, gamma), dict(alpha=alpha, eps=eps)),
               np.asarray(W.grad))
    w = rng.normal(0.2, 0.5, (2, 6))
    gamma = rng.uniform(0.5, 1.5, 2)
    G = rng.standard_normal((2, 6))
    loss = lambda v: float((WF.weight_align(mg.Tensor(v), mg.Tensor(gamma)).numpy() * G).sum())
    fd = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[i] = 1e-6
        fd[i] = (loss(w + e) - loss(w - e)) / 2e-6
    yield "out=2 n=6, central differences", ((G, w, gamma), {}), fd


def _cases_zero_grad_update_ratio():
    # minigrad's SGD on a weight whose loss gradient is exactly 0, run to steady state
    for lr, momentum, wd in [(0.1, 0.9, 5e-4), (0.05, 0.0, 1e-3), (0.02, 0.5, 5e-4)]:
        p = mg.Tensor(_rng().standard_normal(50), requires_grad=True)
        opt = mg.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=wd)
        for _ in range(300):
            before = p.numpy().copy()
            p.grad = np.zeros_like(before)
            opt.step()
        ratio = np.linalg.norm(p.numpy() - before) / np.linalg.norm(before)
        yield f"lr={lr} momentum={momentum} weight_decay={wd}", ((lr, momentum, wd), {}), ratio


@functools.lru_cache(maxsize=None)
def plain8_at_init(norm, gn_min_channels=1, batch=16, seed=0):
    """The 7 conv layers' outputs (float64) of plain8 at initialisation on N(0, 1) input, as in
    notebook 04 (64 channels, training mode) but with a batch of 16: its statistics barely move."""
    import wa
    from wa.norms import NormConfig
    mg.manual_seed(seed)
    model = wa.models.build("plain8", norm=NormConfig(norm, gn_min_channels=gn_min_channels))
    model.train()
    x = np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    with mg.no_grad():
        _, acts = model(mg.Tensor(x), return_activations=True)
    return tuple(a.numpy().astype(np.float64) for a in acts[:7])


def _cases_wa_layer7_variance():
    acts = plain8_at_init("wa")
    yield "plain8 with WA, Var[x_7] / Var[x_1] (batch 16)", None, acts[6].var() / acts[0].var()


def _cases_gn_drift_ratio():
    spread = [plain8_at_init("gn", g)[6].mean(axis=(0, 2, 3)).std() for g in (4, 2)]
    yield "plain8 with GN, std(mu_c) at conv7, 4 / 2 channels per group (batch 16)", None, spread[0] / spread[1]


@functools.lru_cache(maxsize=None)
def _zero_gradient_convs(fixup="gamma,lr/10,scaled", seed=0):
    """{conv name: its raw weight's loss gradient is exactly 0} for resnet20 (WA, width 0.25) at
    initialisation, with the classifier's weight (which Fixup starts at 0) made random: the state
    after the first step, when only the classifier has moved."""
    import wa
    mg.manual_seed(seed)
    model = wa.models.build("resnet20", norm="wa", width=0.25, fixup=fixup)
    rng = np.random.default_rng(seed)
    model.fc.weight.data[...] = 0.1 * rng.standard_normal(model.fc.weight.shape)
    x = mg.Tensor(rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    F.cross_entropy(model(x), mg.Tensor(rng.integers(0, 10, 4))).backward()
    return {name: float(np.all(np.asarray(m.weight.grad) == 0)) for name, m in model.named_modules()
            if isinstance(m, mg.nn.Conv2d)}


def _cases_frozen_at_start():
    for name, frozen in _zero_gradient_convs().items():
        yield f"layer {name}", ((name,), {}), frozen


def _cases_se_of_difference():
    rng = _rng()
    for p1, p2, n in [(0.631, 0.703, 360), (0.3, 0.3, 1000), (0.05, 0.1, 10_000)]:
        # the standard deviation of the difference of two independent binomial error rates,
        # by simulation (1e5 repeats): the checker's tolerance allows its noise
        e1 = rng.binomial(n, p1, 100_000) / n
        e2 = rng.binomial(n, p2, 100_000) / n
        yield f"p1={p1} p2={p2} n={n} (simulated)", ((p1, p2, n), {}), (e1 - e2).std()


EXERCISES = {   # name: (cases, relative tolerance, where to look)
    "im2col_shape": (_cases_im2col_shape, 0.0,
                     "the output size (H + 2p - d(k-1) - 1)//s + 1, section 2's formula; "
                     "one row per output pixel, one column per kernel tap and channel"),
    "conv_input_grad": (_cases_conv_input_grad, 1e-8,
                        "section 3: flip the kernel in both spatial axes, swap in/out channels "
                        "(transpose(1, 0, 2, 3)), padding k - 1 - p"),
    "relu_var_fraction": (_cases_relu_var_fraction, 5e-3,
                          "section 4: Var[y] = E[y^2] - E[y]^2 with E[y] = 1/sqrt(2 pi), E[y^2] = 1/2"),
    "centred_variance_ratio": (_cases_centred_variance_ratio, 1e-6,
                               "eq. (8) with alpha n Var[w] = 1 instead of (9), times section 4's "
                               "factor Var[y]/E[y^2] for a centred filter"),
    "wa_backward": (_cases_wa_backward, 1e-7,
                    "walk the stages backwards: (a) h = gamma G; (b)-(c) through rho and v; d "
                    "reaches L through u and through v, w through d and through mu (two paths each)"),
    "wa_backward_nocenter": (_cases_wa_backward_nocenter, 1e-8,
                             "section 1's stages with d = w - mu replaced by w in x = w / s: "
                             "v still uses the centred d, so the mean path of v vanishes; "
                             "no '- mean(h)' term"),
    "zero_grad_update_ratio": (_cases_zero_grad_update_ratio, 0.01,
                               "with g = 0 the buffer obeys buf = momentum buf + wd w; at a fixed "
                               "point buf = wd w / (1 - momentum), and the step is lr buf"),
    "wa_layer7_variance": (_cases_wa_layer7_variance, 0.15,
                           "gamma = 1 and alpha = 1/2: each of the 6 layers after conv1 sees "
                           "ReLU inputs through a centred filter (notebook 02, section 4)"),
    "gn_drift_ratio": (_cases_gn_drift_ratio, 0.15,
                       "GN subtracts the group's mean: what is left of channel c's mean is "
                       "m_c - mean of the group's m; its variance for g i.i.d. means, as a function of g"),
    "frozen_at_start": (_cases_frozen_at_start, 0.0,
                        "h = gamma G(w) with gamma = 0 at each branch's last conv: what reaches that "
                        "conv's raw weight, and what passes backwards through a zero filter? "
                        "Which convs sit on the path that skips the branches?"),
    "se_of_difference": (_cases_se_of_difference, 0.02,
                         "two independent errors: variances p(1-p)/n add, then the square root"),
}


def answer(name, mine):
    """The reader's answer, or the reference answer when WA_SOLUTIONS=1."""
    if name not in REFERENCE:
        raise KeyError(f"no exercise {name!r}; there are {sorted(REFERENCE)}")
    return REFERENCE[name] if SOLUTIONS else mine


def _rel_error(mine, truth):
    mine = np.asarray(mine, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if mine.shape != truth.shape:
        return np.inf, f"shape {mine.shape}, expected {truth.shape}"
    scale = max(np.linalg.norm(truth), 1e-300)
    err = np.linalg.norm(mine - truth) / scale
    return err, f"{np.asarray(mine).ravel()[:4]} vs {np.asarray(truth).ravel()[:4]}"


def check(name, mine, quiet=False):
    """Check an answer: True (pass), False (wrong) or None (not attempted). Prints one line.

    With WA_SOLUTIONS=1 a checker that does not pass raises AssertionError."""
    cases, tol, hint = EXERCISES[name]
    say = (lambda s: None) if quiet else print
    if mine is None:
        say(f"[{name}] not attempted yet: replace None in the cell above")
        return None
    worst = (0.0, "", "")
    try:
        for label, args, truth in cases():
            if args is None:
                value = mine() if callable(mine) else mine
            else:
                value = mine(*args[0], **args[1])
            err, detail = _rel_error(value, truth)
            if not err <= tol:
                worst = (err, label, detail)
                break
    except NotImplementedError:
        say(f"[{name}] not attempted yet: the function above still raises NotImplementedError")
        return None
    except Exception as e:                     # a wrong answer may fail in any way
        worst = (np.inf, "", f"{type(e).__name__}: {e}")
    if worst[1] == "" and worst[2] == "":
        say(f"[{name}] PASS (relative error within {tol:g} on every case)")
        return True
    err, label, detail = worst
    msg = (f"[{name}] not yet: relative error {err:.3g} (tolerance {tol:g})"
           f"{' at ' + label if label else ''}; {detail}. Where to look: {hint}")
    if SOLUTIONS:
        raise AssertionError(msg)
    say(msg)
    return False
