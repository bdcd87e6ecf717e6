"""Adamax, ASGD and Rprop (numpy_optim/adamax.py, asgd.py, rprop.py), without torch.

* hand-computed one-, two- and three-step values (the arithmetic is written in each test,
  in the arrays' dtype, op by op as torch's single-tensor path does it);
* every validation check, each raised before anything changes;
* per-entry overrides (ASGD's eta is per entry; Rprop's step sizes start at the entry's lr);
* torch's quirks we reproduce: ASGD's one-step-late eta, Rprop ignoring lr after the first
  step, Rprop's sign(NaN) == 0, the sign of an underflowed product;
* state_dict round trips that continue bit for bit (ASGD's eta/mu as 0-d float32 arrays);
* the blocked NumPy kernel and the compiled (numba) kernel bitwise equal to the NumPy
  kernel on whole arrays, for every flag combination, float32 and float64, with tiny blocks
  (tests/unit/test_blocked.py's settings) and with special values.

The agreement with torch itself is in tests/parity/test_adamax_asgd_rprop_torch.py.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpy_optim import _blocks, use_backend
from numpy_optim.adamax import Adamax
from numpy_optim.asgd import ASGD
from numpy_optim.rprop import Rprop

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
BUFFERS = {Adamax: ("exp_avg", "exp_inf"), ASGD: ("ax", "eta", "mu"), Rprop: ("prev", "step_size")}


def one_entry(values, dtype, **overrides):
    p = np.array(values, dtype)
    return {"params": p, "grad": np.zeros_like(p), **overrides}


def step_with(optimizer, *grads):
    for entry, g in zip(optimizer.param_groups, grads):
        entry["grad"][...] = g
    optimizer.step()


def bits(a):
    return np.asarray(a).tobytes()


# --------------------------------------------------------------------------------------
# Hand-computed steps
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamax_two_steps_hand_computed_low_weight_branch(dtype):
    d = dtype
    opt = Adamax([one_entry([1.0], d)], lr=0.25, betas=(0.75, 0.5), eps=0.25)
    # step 1, g = 1.75: lerp weight 1 - 0.75 = 0.25 < 0.5, so m = m + 0.25 * (g - m) (exact here)
    step_with(opt, 1.75)
    m1 = d(0.0) + d(0.25) * (d(1.75) - d(0.0))              # 0.4375
    u1 = max(d(0.0) * d(0.5), abs(d(1.75)) + d(0.25))      # max(0, 2) = 2
    clr1 = 0.25 / (1 - 0.75**1.0)                           # 1.0
    p1 = d(1.0) + (d(-clr1) * m1) / u1                      # 1 - 0.21875 = 0.78125
    assert (m1, u1, p1) == (0.4375, 2.0, 0.78125)
    assert bits(opt.state[0]["exp_avg"]) == bits(np.array([m1], d))
    assert bits(opt.state[0]["exp_inf"]) == bits(np.array([u1], d))
    assert bits(opt.param_groups[0]["params"]) == bits(np.array([p1], d))
    # step 2, g = -3.75
    step_with(opt, -3.75)
    m2 = m1 + d(0.25) * (d(-3.75) - m1)                     # 0.4375 - 1.046875 = -0.609375 (exact)
    u2 = max(u1 * d(0.5), abs(d(-3.75)) + d(0.25))         # max(1, 4) = 4
    clr2 = 0.25 / (1 - 0.75**2.0)                           # 0.25 / 0.4375, rounded to the dtype below
    p2 = p1 + (d(-clr2) * m2) / u2                          # three roundings: value * m, / u, +
    assert (m2, u2) == (-0.609375, 4.0)
    assert bits(opt.state[0]["exp_avg"]) == bits(np.array([m2], d))
    assert bits(opt.state[0]["exp_inf"]) == bits(np.array([u2], d))
    assert bits(opt.param_groups[0]["params"]) == bits(np.array([p2], d))
    assert opt.state["step"] == 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamax_one_step_hand_computed_high_weight_branch_with_weight_decay_and_maximize(dtype):
    d = dtype
    opt = Adamax([one_entry([2.0], d)], lr=0.5, betas=(0.25, 0.5), eps=0.0, weight_decay=0.5, maximize=True)
    step_with(opt, 1.5)
    g = -d(1.5) + d(0.5) * d(2.0)                           # maximize, then + wd * p: -0.5
    # lerp weight 0.75 >= 0.5: torch computes m = g + (0.75 - 1) * (g - m)
    m = g + (d(0.75) - d(1.0)) * (g - d(0.0))               # -0.5 + 0.125 = -0.375
    u = max(d(0.0), abs(g) + d(0.0))                        # 0.5
    p = d(2.0) + (d(-(0.5 / (1 - 0.25))) * m) / u           # 2 + (-(2/3) * -0.375) / 0.5
    assert (g, m, u) == (-0.5, -0.375, 0.5)
    assert bits(opt.state[0]["exp_avg"]) == bits(np.array([m], d))
    assert bits(opt.param_groups[0]["params"]) == bits(np.array([p], d))
    assert abs(float(p) - 2.5) < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_asgd_three_steps_hand_computed_eta_one_step_late_and_averaging(dtype):
    d, f32 = dtype, np.float32
    # alpha = 1 and t0 = 0: eta_{t+1} = lr / (1 + lambd * lr * t), mu_{t+1} = 1 / max(1, t)
    opt = ASGD([one_entry([1.0], d)], lr=0.5, lambd=0.25, alpha=1.0, t0=0.0)
    # step 1 uses eta = float32(lr) = 0.5, mu = 1: p = p (1 - lambd eta) - eta g, ax = p
    step_with(opt, 2.0)
    p1 = d(1.0) * d(1 - 0.25 * 0.5) + d(2.0) * d(-0.5)     # 0.875 - 1 = -0.125 (exact)
    assert p1 == -0.125
    assert bits(opt.param_groups[0]["params"]) == bits(np.array([p1], d))
    assert bits(opt.state[0]["ax"]) == bits(np.array([p1], d))
    eta2 = f32(0.5 / (1 + 0.25 * 0.5 * 1.0) ** 1.0)          # 0.5 / 1.125, stored as float32
    assert bits(opt.state[0]["eta"]) == bits(eta2) and opt.state[0]["eta"].shape == ()
    assert bits(opt.state[0]["mu"]) == bits(f32(1.0))         # 1 / max(1, 1 - 0)
    # step 2 (g = -1) uses eta2; mu is still 1, so ax is still a copy
    step_with(opt, -1.0)
    e = float(eta2)
    p2 = d(p1 * d(1 - 0.25 * e)) + d(-1.0) * d(-e)          # the product -1 * -eta is exact: one rounding
    assert bits(opt.param_groups[0]["params"]) == bits(np.array([p2], d))
    assert bits(opt.state[0]["ax"]) == bits(np.array([p2], d))
    assert bits(opt.state[0]["eta"]) == bits(f32(0.5 / (1 + 0.25 * 0.5 * 2.0)))  # 0.4
    assert bits(opt.state[0]["mu"]) == bits(f32(1 / max(1, 2.0 - 0.0)))         # 0.5
    # step 3 (g = 4): mu = 0.5, so ax moves half way to p
    step_with(opt, 4.0)
    e = float(f32(0.4))
    p3 = d(p2 * d(1 - 0.25 * e)) + d(4.0) * d(-e)          # 4 * eta is exact (a power of two times eta)
    ax3 = p2 + (p3 - p2) * d(0.5)
    assert bits(opt.param_groups[0]["params"]) == bits(np.array([p3], d))
    assert bits(opt.state[0]["ax"]) == bits(np.array([ax3], d))
    assert opt.state[0]["ax"][0] != opt.param_groups[0]["params"][0]


def test_asgd_eta_of_a_step_comes_from_the_previous_steps_lr():
    # torch computes eta at the end of a step from that step's lr: a new lr reaches the
    # parameter's step size one step late (step 1 uses float32(lr) itself)
    opt = ASGD([one_entry([0.0], np.float64)], lr=0.1, lambd=1e-3, alpha=0.75)
    step_with(opt, 1.0)
    assert opt.param_groups[0]["params"][0] == -float(np.float32(0.1))
    opt.defaults["lr"] = 0.5
    before = opt.param_groups[0]["params"][0]
    step_with(opt, 1.0)  # uses the eta stored by step 1, made from lr = 0.1
    eta_from_old_lr = float(np.float32(0.1 / (1 + 1e-3 * 0.1 * 1.0) ** 0.75))
    assert opt.param_groups[0]["params"][0] == before * (1 - 1e-3 * eta_from_old_lr) - eta_from_old_lr
    assert opt.state[0]["eta"] == np.float32(0.5 / (1 + 1e-3 * 0.5 * 2.0) ** 0.75)  # the new lr, for step 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_rprop_three_steps_hand_computed(dtype):
    d = dtype
    opt = Rprop([one_entry([1.0, 1.0, 1.0, 1.0], d)], lr=0.5, etas=(0.5, 2.0), step_sizes=(0.125, 1.5))
    # step 1: prev = 0, every product is 0: factor 1, step sizes stay lr; p -= sign(g) * 0.5
    step_with(opt, np.array([1.0, -1.0, 0.0, 3.0]))
    assert opt.param_groups[0]["params"].tolist() == [0.5, 1.5, 1.0, 0.5]
    assert opt.state[0]["step_size"].tolist() == [0.5] * 4
    assert opt.state[0]["prev"].tolist() == [1.0, -1.0, 0.0, 3.0]
    # step 2: products g * prev = [2, -1, 0, -9] -> factors [2, 0.5, 1, 0.5]
    # step sizes [1, 0.25, 0.5, 0.25]; where the sign flipped the gradient is zeroed
    step_with(opt, np.array([2.0, 1.0, 5.0, -3.0]))
    assert opt.state[0]["step_size"].tolist() == [1.0, 0.25, 0.5, 0.25]
    assert opt.state[0]["prev"].tolist() == [2.0, 0.0, 5.0, 0.0]
    assert opt.param_groups[0]["params"].tolist() == [0.5 - 1.0, 1.5, 1.0 - 0.5, 0.5]
    # step 3: products [8, 0, 5, 0] -> factors [2, 1, 2, 1]; 1 * 2 = 2 is clamped to 1.5
    step_with(opt, np.array([4.0, 1.0, 1.0, -1.0]))
    assert opt.state[0]["step_size"].tolist() == [1.5, 0.25, 1.0, 0.25]
    assert opt.param_groups[0]["params"].tolist() == [-0.5 - 1.5, 1.5 - 0.25, 0.5 - 1.0, 0.5 + 0.25]
    assert opt.state[0]["step_size"].dtype == dtype


def test_rprop_step_size_is_clamped_at_the_minimum_and_maximize_flips_the_direction():
    opt = Rprop([one_entry([0.0], np.float64)], lr=0.25, etas=(0.25, 1.5), step_sizes=(0.125, 50), maximize=True)
    step_with(opt, 1.0)  # maximize: g = -1, the parameter moves up by lr
    assert opt.param_groups[0]["params"][0] == 0.25
    step_with(opt, -1.0)  # g = +1: the sign flipped, 0.25 * 0.25 = 0.0625 -> clamped to 0.125; no move
    assert opt.state[0]["step_size"][0] == 0.125
    assert opt.param_groups[0]["params"][0] == 0.25
    assert opt.state[0]["prev"][0] == 0.0


def test_rprop_min_step_size_above_max_gives_max_everywhere():
    # torch does not check step_sizes; clamp(x, 5, 1) is 1 (min first, then max)
    opt = Rprop([one_entry([0.0, 0.0], np.float64)], lr=0.5, step_sizes=(5.0, 1.0))
    step_with(opt, np.array([1.0, -1.0]))
    assert opt.state[0]["step_size"].tolist() == [1.0, 1.0]
    assert opt.param_groups[0]["params"].tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_rprop_sign_of_nan_is_zero_as_in_torch(dtype):
    # torch.sign(NaN) == 0 (np.sign(NaN) is NaN): a NaN gradient neither moves its element
    # nor changes its step size; it is stored in prev, whose NaN product keeps factor 1
    opt = Rprop([one_entry([1.0, 1.0], dtype)], lr=0.5)
    step_with(opt, np.array([1.0, 1.0]))
    step_with(opt, np.array([np.nan, 1.0]))
    params, sizes, prev = opt.param_groups[0]["params"], opt.state[0]["step_size"], opt.state[0]["prev"]
    assert params[0] == 0.5 and sizes[0] == 0.5 and np.isnan(prev[0])
    assert params[1] == dtype(0.5) - dtype(0.5) * dtype(1.2) and sizes[1] == dtype(0.5) * dtype(1.2)
    step_with(opt, np.array([-1.0, 1.0]))  # product with the NaN prev: NaN -> sign 0 -> factor 1
    assert sizes[0] == 0.5 and params[0] == 1.0  # moved by the unchanged step size, against sign(-1)


def test_rprop_product_that_underflows_counts_as_no_sign_change():
    # float32: 1e-30 * -1e-30 rounds to -0.0, whose sign is 0: factor 1, not etaminus
    opt = Rprop([one_entry([0.0], np.float32)], lr=0.5)
    step_with(opt, np.float32(1e-30))
    step_with(opt, np.float32(-1e-30))
    assert opt.state[0]["step_size"][0] == np.float32(0.5)  # unchanged
    assert opt.state[0]["prev"][0] == np.float32(-1e-30)  # not zeroed
    assert opt.param_groups[0]["params"][0] == np.float32(0.0)  # -0.5 + 0.5


def test_rprop_ignores_lr_after_the_first_step():
    # torch reads lr only to fill step_size at the first step; a scheduler changing lr later has no effect
    runs = []
    for new_lr in (None, 3.0):
        opt = Rprop([one_entry(np.linspace(-1, 1, 9), np.float64)], lr=0.1)
        rng = np.random.default_rng(5)
        for step in range(10):
            if step == 4 and new_lr is not None:
                opt.lr = new_lr
            step_with(opt, rng.standard_normal(9))
        runs.append((bits(opt.param_groups[0]["params"]), bits(opt.state[0]["step_size"])))
    assert runs[0] == runs[1]


def test_rprop_step_sizes_start_at_the_entrys_own_lr():
    opt = Rprop([one_entry([0.0], np.float64), one_entry([0.0], np.float64, lr=0.25)], lr=0.5)
    step_with(opt, 1.0, 1.0)
    assert opt.state[0]["step_size"][0] == 0.5 and opt.state[1]["step_size"][0] == 0.25
    assert [e["params"][0] for e in opt.param_groups] == [-0.5, -0.25]


# --------------------------------------------------------------------------------------
# Validation: torch's checks (same exception types) and numpy_optim's own, before anything changes
# --------------------------------------------------------------------------------------

VALIDATION = [
    pytest.param(Adamax, {"lr": -1e-3}, ValueError, "lr", id="Adamax-lr"),
    pytest.param(Adamax, {"eps": -1e-8}, ValueError, "eps", id="Adamax-eps"),
    pytest.param(Adamax, {"betas": (1.0, 0.9)}, ValueError, "beta parameter at index 0: 1.0", id="Adamax-beta1"),
    pytest.param(Adamax, {"betas": (0.9, -0.1)}, ValueError, "beta parameter at index 1: -0.1", id="Adamax-beta2"),
    pytest.param(Adamax, {"betas": (0.9,)}, TypeError, "betas", id="Adamax-betas-not-a-pair"),
    pytest.param(Adamax, {"weight_decay": -0.5}, ValueError, "weight_decay", id="Adamax-weight_decay"),
    pytest.param(Adamax, {"lr": float("nan")}, ValueError, "lr", id="Adamax-lr-nan"),
    pytest.param(Adamax, {"eps": float("inf")}, ValueError, "eps", id="Adamax-eps-inf"),
    pytest.param(Adamax, {"lr": "0.1"}, TypeError, "lr", id="Adamax-lr-str"),
    pytest.param(Adamax, {"maximize": 1}, TypeError, "maximize", id="Adamax-maximize-int"),
    pytest.param(ASGD, {"lr": -0.01}, ValueError, "lr", id="ASGD-lr"),
    pytest.param(ASGD, {"weight_decay": -1.0}, ValueError, "weight_decay", id="ASGD-weight_decay"),
    pytest.param(ASGD, {"lambd": float("nan")}, ValueError, "lambd", id="ASGD-lambd-nan"),
    pytest.param(ASGD, {"alpha": float("inf")}, ValueError, "alpha", id="ASGD-alpha-inf"),
    pytest.param(ASGD, {"t0": -float("inf")}, ValueError, "t0", id="ASGD-t0-inf"),
    pytest.param(ASGD, {"t0": None}, TypeError, "t0", id="ASGD-t0-None"),
    pytest.param(ASGD, {"lambd": True}, TypeError, "lambd", id="ASGD-lambd-bool"),
    pytest.param(ASGD, {"maximize": "no"}, TypeError, "maximize", id="ASGD-maximize-str"),
    pytest.param(Rprop, {"lr": -1.0}, ValueError, "lr", id="Rprop-lr"),
    pytest.param(Rprop, {"etas": (0.0, 1.2)}, ValueError, "Invalid eta values: 0.0, 1.2", id="Rprop-etaminus-0"),
    pytest.param(Rprop, {"etas": (1.0, 1.2)}, ValueError, "Invalid eta values: 1.0, 1.2", id="Rprop-etaminus-1"),
    pytest.param(Rprop, {"etas": (0.5, 1.0)}, ValueError, "Invalid eta values: 0.5, 1.0", id="Rprop-etaplus-1"),
    pytest.param(Rprop, {"etas": (0.5, 0.9)}, ValueError, "Invalid eta values: 0.5, 0.9", id="Rprop-etaplus<1"),
    pytest.param(Rprop, {"etas": (1.2, 0.5)}, ValueError, "Invalid eta values: 1.2, 0.5", id="Rprop-etas-swapped"),
    pytest.param(Rprop, {"etas": (0.5, float("nan"))}, ValueError, "etas", id="Rprop-etaplus-nan"),
    pytest.param(Rprop, {"etas": 0.5}, TypeError, "etas", id="Rprop-etas-not-a-pair"),
    pytest.param(Rprop, {"step_sizes": (1e-6, float("inf"))}, ValueError, "step_sizes", id="Rprop-max-inf"),
    pytest.param(Rprop, {"step_sizes": (1e-6,)}, TypeError, "step_sizes", id="Rprop-step_sizes-not-a-pair"),
    pytest.param(Rprop, {"step_sizes": ("a", 1.0)}, TypeError, "step_sizes", id="Rprop-step_sizes-str"),
    pytest.param(Rprop, {"maximize": None}, TypeError, "maximize", id="Rprop-maximize-None"),
]


@pytest.mark.parametrize("cls, kwargs, error, text", VALIDATION)
def test_bad_hyperparameters_are_refused_in_the_constructor(cls, kwargs, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        cls([one_entry([1.0], np.float64)], **kwargs)


@pytest.mark.parametrize("cls, kwargs, error, text", VALIDATION)
def test_bad_entry_overrides_are_refused_at_step_and_change_nothing(cls, kwargs, error, text):
    good, bad = one_entry([1.0, 2.0], np.float64), one_entry([3.0], np.float64)
    opt = cls([good, bad])
    step_with(opt, np.array([0.5, -0.5]), np.array([1.0]))
    before = [bits(good["params"]), bits(bad["params"])] + [bits(b) for i in (0, 1) for b in opt.state[i].values()]
    bad.update(kwargs)
    with pytest.raises(error, match=r"params\[1\]"):
        step_with(opt, np.array([0.5, -0.5]), np.array([1.0]))
    after = [bits(good["params"]), bits(bad["params"])] + [bits(b) for i in (0, 1) for b in opt.state[i].values()]
    assert after == before and opt.state["step"] == 1


def test_torch_accepts_what_these_constructors_accept():
    # torch checks neither ASGD's lambd, alpha and t0 nor Rprop's step_sizes; neither do we
    # (beyond finite numbers); ints are accepted where torch accepts them
    ASGD([one_entry([1.0], np.float64)], lambd=-5, alpha=-1, t0=-3)
    Rprop([one_entry([1.0], np.float64)], step_sizes=(5, 1), etas=[0.5, 2])
    Adamax([one_entry([1.0], np.float64)], betas=[0, 0.5], lr=0, eps=0)


def test_maximize_is_keyword_only_for_adamax_and_rprop_and_positional_for_asgd():
    entries = [one_entry([1.0], np.float64)]
    with pytest.raises(TypeError):
        Adamax(entries, 1e-3, (0.9, 0.999), 1e-8, 0.0, True)
    with pytest.raises(TypeError):
        Rprop(entries, 1e-2, (0.5, 1.2), (1e-6, 50), True)
    assert ASGD(entries, 1e-2, 1e-4, 0.75, 1e6, 0.0, True).defaults["maximize"] is True


def test_asgd_negative_decay_base_with_fractional_alpha_raises_before_anything_changes():
    # 1 + lambd * lr * t = 1 - 0.5 * 1 * t: 0.5 at t = 1, negative at t = 3; (-0.5) ** 0.75 is complex
    entry = one_entry([1.0, 2.0], np.float64)
    opt = ASGD([entry], lr=1.0, lambd=-0.5, alpha=0.75)
    step_with(opt, np.array([0.1, 0.1]))  # base 0.5 at the end of step 1: eta = 1 / 0.5 ** 0.75
    assert opt.state[0]["eta"] == np.float32(1 / 0.5**0.75)
    before = [bits(entry["params"])] + [bits(b) for b in opt.state[0].values()]
    with pytest.raises(ZeroDivisionError, match="lambd=-0.5"):  # t = 2: base 0, 0 ** 0.75 = 0, lr / 0
        step_with(opt, np.array([0.1, 0.1]))
    assert [bits(entry["params"])] + [bits(b) for b in opt.state[0].values()] == before
    assert opt.state["step"] == 1
    opt.defaults["lambd"] = -0.75  # t = 2: base 1 - 0.75 * 2 = -0.5
    with pytest.raises(ValueError, match="negative and alpha is not an integer"):
        step_with(opt, np.array([0.1, 0.1]))
    assert [bits(entry["params"])] + [bits(b) for b in opt.state[0].values()] == before
    assert opt.state["step"] == 1


def test_asgd_negative_decay_base_with_integer_alpha_is_real_and_accepted():
    opt = ASGD([one_entry([1.0], np.float64)], lr=1.0, lambd=-3.0, alpha=3.0)
    step_with(opt, 0.0)  # base 1 - 3 = -2, (-2) ** 3 = -8: eta = -0.125, a real number
    assert opt.state[0]["eta"] == np.float32(-0.125)


# --------------------------------------------------------------------------------------
# Per-entry overrides
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_asgd_eta_and_mu_are_per_entry_and_each_entry_runs_as_if_alone(dtype):
    shapes, lrs = [(3,), (2, 2), ()], [0.05, 0.2, 0.01]
    together = ASGD([one_entry(np.ones(s), dtype, lr=lr) for s, lr in zip(shapes, lrs)],
                    lambd=0.1, alpha=0.6, t0=2.0, weight_decay=0.01)
    alone = [ASGD([one_entry(np.ones(s), dtype)], lr=lr, lambd=0.1, alpha=0.6, t0=2.0, weight_decay=0.01)
             for s, lr in zip(shapes, lrs)]
    rng = np.random.default_rng(2)
    for _ in range(8):
        grads = [rng.standard_normal(s) for s in shapes]
        step_with(together, *grads)
        for opt, g in zip(alone, grads):
            step_with(opt, g)
    for i, (lr, opt) in enumerate(zip(lrs, alone)):
        assert together.state[i]["eta"] == np.float32(lr / (1 + 0.1 * lr * 8.0) ** 0.6)
        assert together.state[i]["eta"].dtype == np.float32 and together.state[i]["eta"].shape == ()
        assert together.state[i]["mu"] == np.float32(1 / 6.0)  # 1 / max(1, 8 - 2)
        assert bits(together.param_groups[i]["params"]) == bits(opt.param_groups[0]["params"])
        assert bits(together.state[i]["ax"]) == bits(opt.state[0]["ax"])
    assert len({float(together.state[i]["eta"]) for i in range(3)}) == 3


def test_adamax_entry_overrides_betas_and_weight_decay():
    a = one_entry([1.0, -1.0], np.float64)
    b = one_entry([1.0, -1.0], np.float64, betas=(0.3, 0.5), weight_decay=0.1)
    opt = Adamax([a, b])
    alone = Adamax([one_entry([1.0, -1.0], np.float64)], betas=(0.3, 0.5), weight_decay=0.1)
    for g in ([0.5, 2.0], [-1.0, 0.25], [3.0, 3.0]):
        step_with(opt, np.array(g), np.array(g))
        step_with(alone, np.array(g))
    assert bits(b["params"]) == bits(alone.param_groups[0]["params"])
    assert bits(a["params"]) != bits(b["params"])


# --------------------------------------------------------------------------------------
# State dicts
# --------------------------------------------------------------------------------------

ROUND_TRIP = [
    pytest.param(Adamax, {"lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.1}, id="Adamax"),
    pytest.param(ASGD, {"lr": 0.05, "t0": 2.0, "lambd": 0.01, "maximize": True}, id="ASGD"),
    pytest.param(Rprop, {"lr": 0.1, "etas": (0.4, 1.5), "step_sizes": (1e-3, 1.0)}, id="Rprop"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", ROUND_TRIP)
def test_state_dict_round_trip_continues_bitwise(cls, kwargs, dtype):
    shapes = [(), (5,), (3, 4)]
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(10)]
    first = cls([one_entry(np.full(s, 0.5), dtype, **({"lr": 0.02} if i == 1 else {}))
                 for i, s in enumerate(shapes)], **kwargs)
    for g in grads[:5]:
        step_with(first, *g)
    saved = first.state_dict()
    for index in range(len(shapes)):
        assert sorted(saved["state"][index]) == sorted(BUFFERS[cls])
        for name, array in saved["state"][index].items():
            assert array is not first.state[index][name]
            if name in ("eta", "mu"):
                assert array.shape == () and array.dtype == np.float32
    second = cls([one_entry(e["params"].copy(), dtype) for e in first.param_groups], lr=1.0)
    second.load_state_dict(saved)
    assert second.param_groups[1]["lr"] == 0.02 and second.state["step"] == 5
    for g in grads[5:]:
        step_with(first, *g)
        step_with(second, *g)
    for index in range(len(shapes)):
        assert bits(first.param_groups[index]["params"]) == bits(second.param_groups[index]["params"])
        for name in BUFFERS[cls]:
            assert bits(first.state[index][name]) == bits(second.state[index][name]), name


def test_asgd_load_state_dict_refuses_a_float64_eta_and_changes_nothing():
    opt = ASGD([one_entry([1.0], np.float64)])
    step_with(opt, 1.0)
    saved = opt.state_dict()
    saved["state"][0]["eta"] = np.array(0.01)  # float64
    before = opt.state_dict()
    with pytest.raises(ValueError, match="eta"):
        opt.load_state_dict(saved)
    after = opt.state_dict()
    assert bits(after["state"][0]["eta"]) == bits(before["state"][0]["eta"]) and after["step"] == 1


# --------------------------------------------------------------------------------------
# Blocked and compiled kernels are bitwise the NumPy kernel on whole arrays
# --------------------------------------------------------------------------------------

#: As tests/unit/test_blocked.py: around tiny blocks of 256 bytes, batches, threads.
SHAPES = [(), (0,), (1,), (7,), (3, 5), (31,), (32,), (64,), (65,), (257,), (10, 13), (2, 3, 50), (1000,)]
TINY = {
    "block_bytes": 256, "parallel_min_bytes": 0, "threads": 2, "batch_max_fraction": 4,
    "compiled_parallel_min_bytes": 0,
}
SIDES = [pytest.param("blocked", id="numpy-blocked"), pytest.param("compiled", id="numba", marks=pytest.mark.numba)]


@contextlib.contextmanager
def running(side):
    """The reference ("whole": NumPy kernel on whole arrays), "blocked" NumPy or "compiled"."""
    if side == "whole":
        with use_backend("numpy"), _blocks.configured(enabled=False):
            yield
        return
    with use_backend("numba" if side == "compiled" else "numpy"), _blocks.configured(**TINY):
        yield


def flag_configs():
    """Every combination of each optimizer's compile-time flags."""
    for maximize, decay, low in itertools.product((False, True), repeat=3):
        kw = {"maximize": maximize, "weight_decay": 0.1 if decay else 0.0, "betas": (0.9 if low else 0.2, 0.99)}
        yield pytest.param(Adamax, kw, id=f"Adamax-max{maximize:d}-wd{decay:d}-low{low:d}")
    for maximize, decay, averaging in itertools.product((False, True), repeat=3):
        kw = {"maximize": maximize, "weight_decay": 0.1 if decay else 0.0, "t0": 1.0 if averaging else 1e6,
              "lr": 0.05, "lambd": 0.01}
        yield pytest.param(ASGD, kw, id=f"ASGD-max{maximize:d}-wd{decay:d}-avg{averaging:d}")
    for maximize in (False, True):
        yield pytest.param(Rprop, {"maximize": maximize, "lr": 0.05, "step_sizes": (1e-4, 0.2)},
                           id=f"Rprop-max{maximize:d}")


def every_array(optimizer):
    out = [("step", str(optimizer.state["step"]).encode())]
    for index, entry in enumerate(optimizer.param_groups):
        out.append((f"params[{index}]", entry["params"]))
        for name, buf in sorted(optimizer.state.get(index, {}).items()):
            out.append((f"state[{index}][{name!r}]", buf))
    return out


def assert_same_bits(reference, other, where, *, nan_bits=True):
    """Byte for byte; with ``nan_bits=False`` elements NaN on both sides may differ in the
    sign and payload of the NaN (which NaN NumPy's loops return is not fixed)."""
    ref, oth = every_array(reference), every_array(other)
    assert [n for n, _ in ref] == [n for n, _ in oth], where
    for (name, x), (_, y) in zip(ref, oth):
        if isinstance(x, bytes):
            assert x == y, f"{where}: {name}"
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, f"{where}: {name}"
        if x.tobytes() == y.tobytes():
            continue
        xf, yf = x.reshape(-1), y.reshape(-1)
        ints = {4: np.uint32, 8: np.uint64}[x.dtype.itemsize]
        differ = xf.view(ints) != yf.view(ints)
        if not nan_bits and (np.isnan(xf[differ]) & np.isnan(yf[differ])).all():
            continue
        i = int(np.flatnonzero(differ)[0])
        pytest.fail(f"{where}: {name} differs at flat index {i}: {xf[i]!r} vs {yf[i]!r}")


def run_sides(cls, kwargs, shapes, dtype, side, *, steps=7, seed=0, grads=None, between=None, nan_bits=True):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(dtype) for s in shapes]
    reference = cls([{"params": x.copy(), "grad": np.zeros_like(x)} for x in inits], **kwargs)
    other = cls([{"params": x.copy(), "grad": np.zeros_like(x)} for x in inits], **kwargs)
    originals = [e["params"] for e in other.param_groups]
    for step in range(steps):
        for a, b in zip(reference.param_groups, other.param_groups):
            g = grads(rng, a["grad"].shape) if grads is not None else rng.standard_normal(a["grad"].shape) * 3
            with np.errstate(over="ignore"):  # huge values overflow float32 to inf
                a["grad"][...] = g
                b["grad"][...] = g
        if between is not None:
            between(step, reference, other)
        with np.errstate(all="ignore"):
            with running("whole"):
                reference.step()
            with running(side):
                other.step()
        assert_same_bits(reference, other, f"{side}: {cls.__name__}({kwargs}) {np.dtype(dtype)} step {step + 1}",
                         nan_bits=nan_bits)
    assert [e["params"] for e in other.param_groups] == originals  # updated in place


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", list(flag_configs()))
def test_blocked_and_compiled_are_bitwise_the_whole_array_kernel(cls, kwargs, dtype, side):
    run_sides(cls, kwargs, SHAPES, dtype, side)


@pytest.mark.numba
def test_the_compiled_path_is_taken(monkeypatch):
    calls = []
    real = _blocks.run_compiled

    def counting(kernel, rows, constants, parts=None):
        calls.append(len(rows))
        return real(kernel, rows, constants, parts)

    monkeypatch.setattr(_blocks, "run_compiled", counting)
    for cls in (Adamax, ASGD, Rprop):
        opt = cls([one_entry(np.ones(5), np.float32), one_entry(np.ones(3), np.float32)])
        with use_backend("numba"):
            step_with(opt, np.ones(5), np.ones(3))
    assert calls == [2, 2, 2]  # one compiled call per optimizer, both entries in it


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_asgd_entries_with_their_own_lr_and_an_lr_schedule_stay_bitwise(dtype, side):
    overrides = {1: {"lr": 0.3}, 4: {"lr": 0.001, "weight_decay": 0.5}}

    def schedule(step, *optimizers):
        for opt in optimizers:
            opt.defaults["lr"] = 0.05 / (1 + step)
            for index, extra in overrides.items():
                opt.param_groups[index].update(extra)

    run_sides(ASGD, {"lr": 0.05, "t0": 2.0, "lambd": 0.1}, SHAPES[:8], dtype, side, between=schedule)


def _special_grads(kinds):
    def draw(rng, shape):
        g = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, size=shape)
        special = rng.random(shape) < 0.3
        choice = rng.choice(np.array(kinds), size=shape)
        table = {"zero": 0.0 * g, "-zero": -0.0 * np.abs(g), "nan": np.full(shape, np.nan),
                 "inf": np.full(shape, np.inf), "-inf": np.full(shape, -np.inf), "tiny": g * 1e-38, "huge": g * 1e36}
        for kind in kinds:
            g = np.where(special & (choice == kind), table[kind], g)
        return g
    return draw


@pytest.mark.parametrize("side", SIDES)
@given(
    cls=st.sampled_from([Adamax, ASGD, Rprop]),
    dtype=st.sampled_from([np.float32, np.float64]),
    kinds=st.lists(st.sampled_from(["zero", "-zero", "nan", "inf", "-inf", "tiny", "huge"]), min_size=1,
                   max_size=4, unique=True),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    extreme=st.sampled_from([0.0, 1e-6, 0.5, 0.999]),
    seed=st.integers(0, 2**32 - 1),
)
def test_special_values_give_the_same_bits_on_every_side(side, cls, dtype, kinds, flags, extreme, seed):
    maximize, decay, other = flags
    if cls is Adamax:
        kwargs = {"betas": (extreme, 0.9 if other else extreme), "eps": 0.0 if other else 1e-8,
                  "weight_decay": 0.2 if decay else 0.0}
    elif cls is ASGD:
        kwargs = {"lambd": extreme, "t0": 0.0 if other else 1e6, "weight_decay": 0.2 if decay else 0.0, "lr": 0.1}
    else:
        kwargs = {"etas": (max(extreme, 0.1) if other else 0.5, 1.2), "step_sizes": (0.0 if decay else 1e-6, 50.0),
                  "lr": 0.0 if extreme == 0.0 else 0.1}
    run_sides(cls, {**kwargs, "maximize": maximize}, [(), (7,), (40,), (3, 9)], dtype, side, steps=6, seed=seed,
              grads=_special_grads(kinds), nan_bits=False)
