"""Adagrad, Adadelta and RMSprop (numpy_optim/adagrad.py, adadelta.py, rmsprop.py), no torch.

* One and two steps against arithmetic written out here in Python floats (float64; the
  formulas of torch's single-tensor paths, in their order), and one step in float32.
* torch's quirks these reproduce, one test each: Adagrad ignores an entry's own
  ``initial_accumulator_value``; centered RMSprop in float64 turns a parameter into NaN
  at step 3187 under a constant gradient of 1e-3 (the step number is torch's).
* Validation: the exception type, a message naming the argument and the value, and
  nothing changed by a refused call (constructor, entry override at ``step()``).
* Per-entry overrides, buffers present only when their option is on, the state dict
  round trip continuing bit for bit.
* The blocked NumPy kernel and the compiled kernel are bitwise the whole-array NumPy
  kernel (tests/unit/test_blocked.py's sides), float32 and float64, many flag
  combinations, sizes around the block splits.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from test_blocked import SHAPES, SIDES, run_both, running  # the sides of tests/unit/test_blocked.py

from numpy_optim import _blocks
from numpy_optim.adadelta import Adadelta
from numpy_optim.adagrad import Adagrad
from numpy_optim.rmsprop import RMSprop

NAN, INF = math.nan, math.inf
EPS32 = float(np.finfo(np.float32).eps)


def entry(x0, dtype=np.float64):
    x = np.array([x0], dtype=dtype)
    return x, np.zeros(1, dtype), [{"params": x, "grad": np.zeros(1, dtype)}]


def step_with(opt, *grads):
    """Set each entry's gradient, then step."""
    for e, g in zip(opt.param_groups, grads):
        e["grad"][...] = g
    opt.step()


# ----- Adagrad: hand-computed ---------------------------------------------------------------


def test_adagrad_two_steps_with_lr_decay_hand_computed():
    x, _, params = entry(3.0)
    opt = Adagrad(params, lr=0.1, lr_decay=0.5)
    step_with(opt, 6.0)
    # step 1: clr = 0.1 / (1 + 0 * 0.5) = 0.1; sum = 0 + 6 * 6 = 36;
    # x1 = 3 + (-0.1 * 6) / (sqrt(36) + 1e-10) = 3 - 0.6 / 6.0000000001
    x1 = 3.0 + (-0.1 * 6.0) / (math.sqrt(36.0) + 1e-10)
    assert opt.state[0]["sum"][0] == 36.0
    assert x[0] == x1 and x1 == pytest.approx(2.9, abs=1e-10)
    step_with(opt, -2.0)
    # step 2: clr = 0.1 / (1 + 1 * 0.5) = 0.1 / 1.5; sum = 36 + (-2)(-2) = 40;
    # x2 = x1 + (-clr * -2) / (sqrt(40) + 1e-10) = x1 + 0.1333.../6.3245...
    x2 = x1 + (-(0.1 / 1.5) * -2.0) / (math.sqrt(40.0) + 1e-10)
    assert opt.state[0]["sum"][0] == 40.0
    assert x[0] == x2 and x2 == pytest.approx(2.9 + 0.2 / 1.5 / math.sqrt(40.0), rel=1e-10)
    assert opt.state["step"] == 2


def test_adagrad_initial_accumulator_weight_decay_and_maximize_hand_computed():
    x, _, params = entry(2.0)
    opt = Adagrad(params, lr=0.1, weight_decay=0.25, initial_accumulator_value=1.0, maximize=True)
    step_with(opt, 1.0)
    # g = -1 + 0.25 * 2 = -0.5; sum = 1 + 0.25 = 1.25; x = 2 + (-0.1 * -0.5) / (sqrt(1.25) + 1e-10)
    assert opt.state[0]["sum"][0] == 1.25
    assert x[0] == pytest.approx(2.0 + 0.05 / (math.sqrt(1.25) + 1e-10), rel=1e-15)
    assert x[0] == pytest.approx(2.0 + 0.05 / 1.118033988749895, rel=1e-10)  # sqrt(1.25) = 1.1180339887...


def test_adagrad_eps_is_added_outside_the_square_root():
    x, _, params = entry(0.0)
    opt = Adagrad(params, lr=1.0, eps=0.75)
    step_with(opt, 0.5)
    # sum = 0.25, std = sqrt(0.25) + 0.75 = 1.25 (inside, sqrt(0.25 + 0.75) = 1) -> x = -0.5 / 1.25 = -0.4
    assert x[0] == pytest.approx(-0.4, rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_adagrad_one_step_keeps_the_dtype(dtype):
    x, _, params = entry(3.0, dtype)
    opt = Adagrad(params, lr=0.1)
    step_with(opt, 6.0)
    assert x.dtype == opt.state[0]["sum"].dtype == dtype
    assert x[0] == pytest.approx(2.9, rel=4 * EPS32)  # 3 - 0.1 * 6 / 6


def test_adagrad_entry_initial_accumulator_value_is_ignored_like_torch():
    # torch.optim.Adagrad fills every sum from its constructor's initial_accumulator_value,
    # never from a group's own (tests/parity/test_adagrad_adadelta_rmsprop_torch.py shows it).
    a, b = np.array([1.0]), np.array([1.0])
    opt = Adagrad([{"params": a, "grad": np.array([2.0])},
                   {"params": b, "grad": np.array([2.0]), "initial_accumulator_value": 5.0}],
                  initial_accumulator_value=0.5)
    opt.step()
    assert opt.state[0]["sum"][0] == opt.state[1]["sum"][0] == 0.5 + 4.0
    assert a.tobytes() == b.tobytes()


def test_adagrad_initial_accumulator_value_is_read_at_the_first_step_only():
    x, _, params = entry(1.0)
    opt = Adagrad(params, initial_accumulator_value=2.0)
    step_with(opt, 1.0)
    opt.defaults["initial_accumulator_value"] = 100.0
    step_with(opt, 1.0)
    assert opt.state[0]["sum"][0] == 2.0 + 1.0 + 1.0


# ----- Adadelta: hand-computed --------------------------------------------------------------


def test_adadelta_two_steps_hand_computed():
    x, _, params = entry(3.0)
    opt = Adadelta(params, lr=1.0, rho=0.5, eps=1e-6)
    step_with(opt, 6.0)
    # v1 = 0.5 * 0 + (0.5 * 6) * 6 = 18; delta1 = sqrt(0 + 1e-6) / sqrt(18 + 1e-6) * 6;
    # u1 = 0.5 * 0 + (0.5 * delta1) * delta1; x1 = 3 - 1.0 * delta1
    d1 = math.sqrt(0.0 + 1e-6) / math.sqrt(18.0 + 1e-6) * 6.0
    u1 = 0.0 * 0.5 + (0.5 * d1) * d1
    x1 = 3.0 + d1 * -1.0
    assert opt.state[0]["square_avg"][0] == 18.0
    assert opt.state[0]["acc_delta"][0] == u1
    assert x[0] == x1 and d1 == pytest.approx(6e-3 / math.sqrt(18.0), rel=1e-6)
    step_with(opt, 2.0)
    # v2 = 0.5 * 18 + (0.5 * 2) * 2 = 11; delta2 = sqrt(u1 + 1e-6) / sqrt(11 + 1e-6) * 2 (the OLD u);
    # u2 = 0.5 * u1 + (0.5 * delta2) * delta2; x2 = x1 - delta2
    d2 = math.sqrt(u1 + 1e-6) / math.sqrt(11.0 + 1e-6) * 2.0
    assert opt.state[0]["square_avg"][0] == 11.0
    assert opt.state[0]["acc_delta"][0] == pytest.approx(u1 * 0.5 + (0.5 * d2) * d2, rel=1e-15)
    assert x[0] == pytest.approx(x1 - d2, rel=1e-15)


def test_adadelta_lr_weight_decay_and_maximize_hand_computed():
    x, _, params = entry(2.0)
    opt = Adadelta(params, lr=0.5, rho=0.5, eps=1e-6, weight_decay=0.25, maximize=True)
    step_with(opt, 1.0)
    # g = -1 + 0.25 * 2 = -0.5; v = 0.5 * 0.25 = 0.125; delta = sqrt(1e-6) / sqrt(0.125 + 1e-6) * -0.5;
    # x = 2 - 0.5 * delta
    d = math.sqrt(1e-6) / math.sqrt(0.125 + 1e-6) * -0.5
    assert opt.state[0]["square_avg"][0] == 0.125
    assert x[0] == pytest.approx(2.0 - 0.5 * d, rel=1e-15)
    assert x[0] > 2.0  # maximize: uphill


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_adadelta_one_step_keeps_the_dtype(dtype):
    x, _, params = entry(3.0, dtype)
    opt = Adadelta(params)
    step_with(opt, 6.0)
    # v = 0.1 * 36 = 3.6; x = 3 - sqrt(1e-6) / sqrt(3.6 + 1e-6) * 6
    assert x.dtype == opt.state[0]["acc_delta"].dtype == dtype
    assert x[0] == pytest.approx(3.0 - 1e-3 / math.sqrt(3.600001) * 6.0, rel=4 * EPS32)


def test_adadelta_rho_one_never_moves_and_rho_zero_forgets():
    x, _, params = entry(1.0)
    opt = Adadelta(params, rho=1.0)
    step_with(opt, 3.0)
    # rho = 1: v = 1 * 0 + 0 * 9 = 0, u stays 0: delta = sqrt(1e-6) / sqrt(1e-6) * 3 = 3, x = 1 - 3
    assert opt.state[0]["square_avg"][0] == 0.0 and opt.state[0]["acc_delta"][0] == 0.0
    assert x[0] == -2.0


# ----- RMSprop: hand-computed ---------------------------------------------------------------


def test_rmsprop_two_steps_hand_computed():
    x, _, params = entry(3.0)
    opt = RMSprop(params, lr=0.01, alpha=0.5)
    step_with(opt, 6.0)
    # v1 = 0.5 * 0 + (0.5 * 6) * 6 = 18; x1 = 3 + (-0.01 * 6) / (sqrt(18) + 1e-8)
    x1 = 3.0 + (-0.01 * 6.0) / (math.sqrt(18.0) + 1e-8)
    assert opt.state[0]["square_avg"][0] == 18.0
    assert x[0] == x1
    step_with(opt, 2.0)
    # v2 = 0.5 * 18 + (0.5 * 2) * 2 = 11; x2 = x1 + (-0.01 * 2) / (sqrt(11) + 1e-8)
    assert opt.state[0]["square_avg"][0] == 11.0
    assert x[0] == x1 + (-0.01 * 2.0) / (math.sqrt(11.0) + 1e-8)
    assert set(opt.state[0]) == {"square_avg"}


def test_rmsprop_centered_momentum_two_steps_hand_computed():
    x, _, params = entry(3.0)
    opt = RMSprop(params, lr=0.01, alpha=0.5, momentum=0.9, centered=True)
    step_with(opt, 6.0)
    # w = 1 - 0.5 = 0.5 (not < 0.5: torch's lerp is g + (w - 1)(g - ga)): ga1 = 6 - 0.5 * 6 = 3;
    # v1 = 18; avg1 = sqrt(18 - 3 * 3) + 1e-8 = 3 + 1e-8; buf1 = 0.9 * 0 + 6 / avg1;
    # x1 = 3 - 0.01 * buf1
    buf1 = 0.0 * 0.9 + 6.0 / (3.0 + 1e-8)
    x1 = 3.0 + buf1 * -0.01
    state = opt.state[0]
    assert (state["grad_avg"][0], state["square_avg"][0]) == (3.0, 18.0)
    assert state["momentum_buffer"][0] == buf1 and x[0] == x1
    step_with(opt, 2.0)
    # ga2 = 2 - 0.5 * (2 - 3) = 2.5; v2 = 9 + 2 = 11; avg2 = sqrt(11 - 6.25) + 1e-8;
    # buf2 = 0.9 * buf1 + 2 / avg2; x2 = x1 - 0.01 * buf2
    buf2 = buf1 * 0.9 + 2.0 / (math.sqrt(4.75) + 1e-8)
    assert (state["grad_avg"][0], state["square_avg"][0]) == (2.5, 11.0)
    assert state["momentum_buffer"][0] == buf2
    assert x[0] == x1 + buf2 * -0.01


def test_rmsprop_centered_small_weight_lerp_branch_hand_computed():
    x, _, params = entry(1.0)
    opt = RMSprop(params, lr=0.01, alpha=0.75, centered=True)  # w = 0.25 < 0.5: ga + w (g - ga)
    step_with(opt, 4.0)
    step_with(opt, 2.0)
    # ga1 = 0 + 0.25 * 4 = 1, v1 = 0.25 * 16 = 4; ga2 = 1 + 0.25 * (2 - 1) = 1.25,
    # v2 = 0.75 * 4 + 0.25 * 4 = 4; x2 = x1 - 0.01 * 2 / (sqrt(4 - 1.5625) + 1e-8)
    x1 = 1.0 + (-0.01 * 4.0) / (math.sqrt(4.0 - 1.0) + 1e-8)
    assert (opt.state[0]["grad_avg"][0], opt.state[0]["square_avg"][0]) == (1.25, 4.0)
    assert x[0] == pytest.approx(x1 + (-0.01 * 2.0) / (math.sqrt(2.4375) + 1e-8), rel=1e-15)


def test_rmsprop_weight_decay_and_maximize_hand_computed():
    x, _, params = entry(2.0)
    opt = RMSprop(params, lr=0.1, alpha=0.5, weight_decay=0.25, maximize=True)
    step_with(opt, 1.0)
    # g = -1 + 0.25 * 2 = -0.5; v = 0.5 * 0.25 = 0.125; x = 2 + (-0.1 * -0.5) / (sqrt(0.125) + 1e-8)
    assert opt.state[0]["square_avg"][0] == 0.125
    assert x[0] == pytest.approx(2.0 + 0.05 / (math.sqrt(0.125) + 1e-8), rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_rmsprop_one_step_keeps_the_dtype(dtype):
    x, _, params = entry(3.0, dtype)
    opt = RMSprop(params, momentum=0.5, centered=True)
    step_with(opt, 6.0)
    # ga = 0.01 * 6 = 0.06, v = 0.01 * 36 = 0.36, avg = sqrt(0.36 - 0.0036) + 1e-8 = sqrt(0.3564);
    # buf = 6 / avg; x = 3 - 0.01 * buf
    assert x.dtype == opt.state[0]["grad_avg"].dtype == opt.state[0]["momentum_buffer"].dtype == dtype
    assert x[0] == pytest.approx(3.0 - 0.06 / math.sqrt(0.3564), rel=8 * EPS32)


@pytest.mark.parametrize("kwargs, names", [
    ({}, {"square_avg"}),
    ({"momentum": 0.9}, {"square_avg", "momentum_buffer"}),
    ({"centered": True}, {"square_avg", "grad_avg"}),
    ({"momentum": 0.5, "centered": True}, {"square_avg", "momentum_buffer", "grad_avg"}),
], ids=["plain", "momentum", "centered", "both"])
def test_rmsprop_keeps_a_buffer_only_when_its_option_is_on(kwargs, names):
    _, _, params = entry(1.0)
    opt = RMSprop(params, **kwargs)
    step_with(opt, 1.0)
    assert set(opt.state[0]) == names


@pytest.mark.parametrize("side", [pytest.param("whole", id="numpy"), SIDES[1]])
def test_rmsprop_centered_float64_constant_gradient_nan_at_step_3187_like_torch(side):
    # torch: v - ga**2 (one rounding) rounds below zero at step 3187 -> sqrt -> NaN parameter
    # (torch-optim-rest.md §3.7; tests/parity/... checks the step against torch itself).
    x, g, params = entry(0.0)
    opt = RMSprop(params, centered=True)
    first_nan = None
    with running(side), np.errstate(invalid="ignore"):
        for t in range(1, 3191):
            step_with(opt, 1e-3)
            if first_nan is None and np.isnan(x[0]):
                first_nan = t
    assert first_nan == 3187


# ----- validation ---------------------------------------------------------------------------

COMMON_BAD = [
    ("lr", -1.0, ValueError), ("lr", NAN, ValueError), ("lr", INF, ValueError), ("lr", "0.1", TypeError),
    ("lr", None, TypeError), ("lr", True, TypeError), ("eps", -1e-8, ValueError), ("eps", NAN, ValueError),
    ("weight_decay", -0.1, ValueError), ("weight_decay", INF, ValueError), ("weight_decay", "0", TypeError),
    ("maximize", 1, TypeError), ("maximize", "yes", TypeError), ("maximize", None, TypeError),
]
BAD = (
    [pytest.param(Adagrad, *case, id=f"Adagrad-{case[0]}={case[1]!r}") for case in COMMON_BAD + [
        ("lr_decay", -0.5, ValueError), ("lr_decay", NAN, ValueError), ("lr_decay", "0", TypeError),
        ("initial_accumulator_value", -1.0, ValueError), ("initial_accumulator_value", INF, ValueError),
        ("initial_accumulator_value", [0.1], TypeError),
    ]]
    + [pytest.param(Adadelta, *case, id=f"Adadelta-{case[0]}={case[1]!r}") for case in COMMON_BAD + [
        ("rho", 1.5, ValueError), ("rho", -0.1, ValueError), ("rho", NAN, ValueError), ("rho", INF, ValueError),
        ("rho", "0.9", TypeError), ("rho", False, TypeError),
    ]]
    + [pytest.param(RMSprop, *case, id=f"RMSprop-{case[0]}={case[1]!r}") for case in COMMON_BAD + [
        ("alpha", -0.1, ValueError), ("alpha", NAN, ValueError), ("alpha", INF, ValueError),
        ("alpha", "0.99", TypeError), ("momentum", -0.5, ValueError), ("momentum", INF, ValueError),
        ("momentum", None, TypeError), ("centered", 1, TypeError), ("centered", "yes", TypeError),
    ]]
)


def two_entries(dtype=np.float64):
    rng = np.random.default_rng(8)
    return [{"params": rng.standard_normal(3).astype(dtype), "grad": rng.standard_normal(3).astype(dtype)}
            for _ in range(2)]


def snapshot(opt):
    return ([e["params"].tobytes() for e in opt.param_groups], opt.state["step"],
            [{k: v.tobytes() for k, v in opt.state.get(i, {}).items()} for i in range(len(opt.param_groups))])


@pytest.mark.parametrize("cls, name, value, error", BAD)
def test_bad_constructor_hyperparameter_is_refused_with_its_name_and_value(cls, name, value, error):
    params = two_entries()
    before = [e["params"].copy() for e in params]
    with pytest.raises(error) as info:
        cls(params, **{name: value})
    assert name in str(info.value) and repr(value) in str(info.value), str(info.value)
    assert all(e["params"].tobytes() == b.tobytes() for e, b in zip(params, before))


@pytest.mark.parametrize("cls, name, value, error", BAD)
def test_bad_entry_override_is_refused_at_step_and_changes_nothing(cls, name, value, error):
    opt = cls(two_entries())
    opt.step()
    before = snapshot(opt)
    opt.param_groups[1][name] = value
    with pytest.raises(error) as info:
        opt.step()
    assert "params[1]" in str(info.value) and name in str(info.value) and repr(value) in str(info.value)
    assert snapshot(opt) == before


@pytest.mark.parametrize("cls, kwargs", [
    (Adagrad, {"lr": 0.0, "lr_decay": 0.0, "eps": 0.0, "initial_accumulator_value": 0.0}),
    (Adadelta, {"rho": 0.0}), (Adadelta, {"rho": 1.0}), (Adadelta, {"lr": 0.0, "eps": 0.0}),
    (RMSprop, {"alpha": 0.0}), (RMSprop, {"alpha": 5.0}), (RMSprop, {"momentum": 0.0, "eps": 0.0}),
], ids=lambda v: v.__name__ if isinstance(v, type) else repr(v))
def test_boundary_values_torch_accepts_are_accepted(cls, kwargs):
    opt = cls(two_entries(), **kwargs)
    with np.errstate(all="ignore"):
        opt.step()
    assert opt.state["step"] == 1


#: numpy_optim's low-precision options (issue 13), after torch's arguments.
LOW_PRECISION = [("state_dtype", None), ("master_weights", False)]


@pytest.mark.parametrize("cls, expected", [
    (Adagrad, [("lr", 0.01), ("lr_decay", 0), ("weight_decay", 0), ("initial_accumulator_value", 0),
               ("eps", 1e-10), ("maximize", False), ("fused", False), *LOW_PRECISION]),
    (Adadelta, [("lr", 1.0), ("rho", 0.9), ("eps", 1e-6), ("weight_decay", 0), ("maximize", False), *LOW_PRECISION]),
    (RMSprop, [("lr", 0.01), ("alpha", 0.99), ("eps", 1e-8), ("weight_decay", 0), ("momentum", 0),
               ("centered", False), ("maximize", False), *LOW_PRECISION]),
], ids=["Adagrad", "Adadelta", "RMSprop"])
def test_signature_is_torchs_without_its_switches(cls, expected):
    parameters = list(inspect.signature(cls).parameters.values())
    assert parameters[0].name == "params"
    assert [(p.name, p.default) for p in parameters[1:]] == expected
    keyword_only = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
    ours = {"state_dtype", "master_weights"}  # numpy_optim's own options, keyword-only
    assert keyword_only == {Adagrad: {"maximize", "fused"} | ours, Adadelta: {"maximize"} | ours, RMSprop: ours}[cls]


def test_torch_only_switches_are_refused():
    with pytest.raises(TypeError, match="foreach"):
        Adagrad(two_entries(), foreach=True)
    with pytest.raises(ValueError, match="'foreach'"):
        Adagrad([{**two_entries()[0], "foreach": True}])
    with pytest.raises(TypeError, match="capturable"):
        RMSprop(two_entries(), capturable=False)


def test_rmsprop_positional_order_is_torchs():
    e = two_entries()
    opt = RMSprop(e, 0.02, 0.9, 1e-6, 0.1, 0.5, True, True)
    assert opt.defaults == {"lr": 0.02, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1, "momentum": 0.5,
                            "centered": True, "maximize": True, "state_dtype": None, "master_weights": False}


# ----- per-entry overrides, state dicts -----------------------------------------------------

OVERRIDE_CASES = [
    pytest.param(Adagrad, {"lr": 0.1}, {"lr": 0.5, "lr_decay": 0.1, "weight_decay": 0.2, "maximize": True},
                 id="Adagrad"),
    pytest.param(Adadelta, {}, {"lr": 0.3, "rho": 0.5, "eps": 1e-4, "weight_decay": 0.1, "maximize": True},
                 id="Adadelta"),
    pytest.param(RMSprop, {}, {"momentum": 0.9, "centered": True, "alpha": 0.3, "weight_decay": 0.1}, id="RMSprop"),
    pytest.param(RMSprop, {"momentum": 0.5, "centered": True}, {"momentum": 0.0, "centered": False, "eps": 1e-3},
                 id="RMSprop-options-off"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cls, kwargs, override", OVERRIDE_CASES)
def test_entry_override_equals_an_optimizer_built_with_it(cls, kwargs, override, dtype):
    mixed = two_entries(dtype)
    alone = [{"params": e["params"].copy(), "grad": e["grad"]} for e in mixed]
    mixed[1].update(override)
    a = cls(mixed, **kwargs)
    plain, overridden = cls(alone[:1], **kwargs), cls(alone[1:], **{**kwargs, **override})
    rng = np.random.default_rng(2)
    for _ in range(4):
        for e in mixed:
            e["grad"][...] = rng.standard_normal(3)
        a.step(), plain.step(), overridden.step()
    assert mixed[0]["params"].tobytes() == alone[0]["params"].tobytes()
    assert mixed[1]["params"].tobytes() == alone[1]["params"].tobytes()
    assert set(a.state[1]) == set(overridden.state[0])
    for name, buf in a.state[1].items():
        assert buf.tobytes() == overridden.state[0][name].tobytes(), name


STATE_CASES = [
    pytest.param(Adagrad, {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.3}, id="Adagrad"),
    pytest.param(Adadelta, {"rho": 0.8, "weight_decay": 0.01}, id="Adadelta"),
    pytest.param(RMSprop, {"momentum": 0.9, "centered": True, "weight_decay": 0.01}, id="RMSprop-centered-momentum"),
    pytest.param(RMSprop, {"alpha": 0.9, "maximize": True}, id="RMSprop"),
]


@pytest.mark.parametrize("k", [0, 3], ids=lambda k: f"k={k}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cls, kwargs", STATE_CASES)
def test_save_continue_load_continue_is_bitwise_identical(cls, kwargs, dtype, k):
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal((2, 3)).astype(dtype) for _ in range(k + 4)]
    original = cls(two_entries(dtype), **kwargs)
    for g in grads[:k]:
        step_with(original, *g)
    saved = original.state_dict()
    resumed = cls([{"params": e["params"].copy(), "grad": np.zeros(3, dtype)} for e in original.param_groups],
                  lr=0.9)  # other hyperparameters: load_state_dict restores them
    resumed.load_state_dict(saved)
    assert resumed.defaults == original.defaults and resumed.state["step"] == k
    for g in grads[k:]:
        step_with(original, *g)
        step_with(resumed, *g)
    assert snapshot(original) == snapshot(resumed)
    assert set(resumed.state[0]) == set(original.state[0])


# ----- compiled and blocked kernels are bitwise the whole-array NumPy kernel -------------------

KERNEL_CONFIGS = [
    pytest.param(Adagrad, {"lr": 0.1}, id="Adagrad"),
    pytest.param(Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.5,
                           "maximize": True}, id="Adagrad-decay-wd-init-max"),
    pytest.param(Adadelta, {}, id="Adadelta"),
    pytest.param(Adadelta, {"lr": 0.5, "rho": 0.5, "weight_decay": 0.1, "maximize": True}, id="Adadelta-wd-max"),
    pytest.param(RMSprop, {}, id="RMSprop"),
    pytest.param(RMSprop, {"centered": True}, id="RMSprop-centered"),
    pytest.param(RMSprop, {"momentum": 0.9, "weight_decay": 0.01}, id="RMSprop-momentum-wd"),
    pytest.param(RMSprop, {"momentum": 0.9, "centered": True, "weight_decay": 0.1, "maximize": True},
                 id="RMSprop-momentum-centered-wd-max"),
    pytest.param(RMSprop, {"alpha": 0.3, "centered": True, "momentum": 0.5}, id="RMSprop-centered-small-weight"),
    pytest.param(RMSprop, {"alpha": 1.7, "centered": True}, id="RMSprop-alpha>1"),  # NaNs, bitwise too
]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", KERNEL_CONFIGS)
def test_blocked_threaded_and_compiled_trajectories_are_bitwise_the_reference(cls, kwargs, dtype, side):
    run_both(cls, kwargs, SHAPES, dtype, side)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", [KERNEL_CONFIGS[1], KERNEL_CONFIGS[3], KERNEL_CONFIGS[7]])
def test_single_thread_default_blocks_ragged_large_parameter(cls, kwargs, dtype, side):
    block = _blocks.settings.block_bytes // np.dtype(dtype).itemsize
    run_both(cls, kwargs, [(2 * block + 12_345,), (5,), (40, 3), ()], dtype, side, steps=3, settings={"threads": 1})


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls, kwargs, override", OVERRIDE_CASES)
def test_many_small_parameters_with_per_entry_overrides(cls, kwargs, override, side):
    shapes = [(int(n),) for n in np.random.default_rng(3).integers(1, 90, size=40)] + [(4, 4), ()]
    keys = sorted(override)
    overrides = {i: {keys[i % len(keys)]: override[keys[i % len(keys)]]} for i in range(0, len(shapes), 2)}
    run_both(cls, kwargs, shapes, np.float32, side, overrides=overrides)
