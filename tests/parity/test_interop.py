"""State interoperability: a run started in torch resumes in numpy_optim, and the reverse.

Every run here trains the same small problem (a separable quadratic per parameter,
gradients computed by each side from its own parameters) over four parameters of shapes
(3, 2), (), (5,) and (1,) in two torch groups, the second with ``weight_decay=0``; the
learning rate is halved before step 5, before the hand-over at step 7. A run handed over
after step 7 and continued for 13 more steps is compared, at every step, parameters and
buffers, with the uninterrupted run by the tolerance model of parity/tolerance.py
(float64: a few ulp per step; float32: no less accurate than torch's own float32 run).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

import numpy_optim
from parity import tolerance
from parity.interop import numpy_to_torch, torch_to_numpy
from parity.registry import OPTIMIZERS

SHAPES = [(3, 2), (), (5,), (1,)]
GROUPS = [[0, 1], [2, 3]]             # torch param groups, as entry indices
GROUP_OVERRIDES = [{}, {"weight_decay": 0.0}]
HANDOVER, MORE = 7, 13                # steps before and after the hand-over
LR_HALVED_BEFORE = 5                  # the learning rate is halved before this step (1-based)

CONFIGS = [
    pytest.param(numpy_optim.SGD, torch.optim.SGD,
                 {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, id="SGD-momentum"),
    pytest.param(numpy_optim.Adam, torch.optim.Adam,
                 {"lr": 0.01, "betas": (0.9, 0.9), "weight_decay": 0.01, "amsgrad": True}, id="Adam-amsgrad"),
    pytest.param(numpy_optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}, id="AdamW"),
    pytest.param(numpy_optim.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
                 id="Adam-decoupled"),
    pytest.param(numpy_optim.Adagrad, torch.optim.Adagrad,
                 {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01}, id="Adagrad"),
    pytest.param(numpy_optim.Adadelta, torch.optim.Adadelta, {"lr": 0.5, "rho": 0.8, "weight_decay": 0.01},
                 id="Adadelta"),
    pytest.param(numpy_optim.Adamax, torch.optim.Adamax, {"lr": 0.01, "weight_decay": 0.01}, id="Adamax"),
    pytest.param(numpy_optim.ASGD, torch.optim.ASGD, {"lr": 0.02, "lambd": 1e-3, "t0": 3.0, "weight_decay": 0.01},
                 id="ASGD-averaging"),
    pytest.param(numpy_optim.NAdam, torch.optim.NAdam, {"lr": 0.01, "weight_decay": 0.01, "momentum_decay": 0.01},
                 id="NAdam"),
    pytest.param(numpy_optim.RAdam, torch.optim.RAdam,
                 {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True}, id="RAdam"),
    pytest.param(numpy_optim.RMSprop, torch.optim.RMSprop,
                 {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.01}, id="RMSprop-centered"),
    pytest.param(numpy_optim.Rprop, torch.optim.Rprop, {"lr": 0.01, "etas": (0.4, 1.3)}, id="Rprop"),
    pytest.param(numpy_optim.Adafactor, torch.optim.Adafactor, {"lr": 0.01, "weight_decay": 0.01}, id="Adafactor"),
]
DTYPES = [pytest.param("float32", id="float32"), pytest.param("float64", id="float64")]
BUFFERS = tuple(dict.fromkeys(name for pair in OPTIMIZERS.values() if not pair.closure for name in pair.buffers))
#: The second group's own hyperparameter, for optimizers without weight decay.
SECOND_GROUP = {numpy_optim.Rprop: {"step_sizes": (1e-5, 10.0)}}


# ----- the problem and the two sides --------------------------------------------------


class Problem:
    """``f_i(x) = sum(c_i * (x - target_i)**2) / 2`` per parameter; starting values representable in ``dtype``."""

    def __init__(self, dtype: str, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.x0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        self.curvature = [rng.uniform(0.1, 1.0, size=s) for s in SHAPES]
        self.target = [rng.standard_normal(s) for s in SHAPES]

    def gradient(self, i: int, x: np.ndarray) -> np.ndarray:
        g = self.curvature[i].astype(x.dtype) * (x - self.target[i].astype(x.dtype))
        return np.asarray(g)  # a 0-d result stays an array


Record = dict[str, list[np.ndarray]]


def group_overrides(cls: type) -> list[dict[str, Any]]:
    """The two groups' own hyperparameters (numpy_optim or torch class)."""
    ours = next((pair.ours for pair in OPTIMIZERS.values() if cls in (pair.ours, pair.theirs)), cls)
    return [{}, SECOND_GROUP[ours]] if ours in SECOND_GROUP else GROUP_OVERRIDES


def make_torch(cls: type, problem: Problem, hyper: dict[str, Any], x: list[np.ndarray] | None = None,
               dtype: str | None = None, **extra: Any) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    tdtype = getattr(torch, dtype or problem.dtype)
    params = [torch.tensor(v, dtype=tdtype, requires_grad=True) for v in (x if x is not None else problem.x0)]
    groups = [{"params": [params[i] for i in members], **o} for members, o in zip(GROUPS, group_overrides(cls))]
    return cls(groups, **hyper, **extra), params


def make_numpy(cls: type, problem: Problem, hyper: dict[str, Any], x: list[np.ndarray] | None = None,
               entry_overrides: list[dict[str, Any]] | None = None) -> numpy_optim.Optimizer:
    arrays = [np.array(v, copy=True) for v in (x if x is not None else problem.x0)]
    overrides = [group_overrides(cls)[g] for g, members in enumerate(GROUPS) for _ in members]
    extra = entry_overrides or [{} for _ in arrays]
    return cls([{"params": a, "grad": np.zeros_like(a), **o, **e} for a, o, e in zip(arrays, overrides, extra)],
               **hyper)


def torch_steps(opt: torch.optim.Optimizer, params: list[torch.Tensor], problem: Problem, steps: range,
                record: Record) -> None:
    """Run steps ``steps`` (1-based numbers) in torch, recording parameters and buffers after each."""
    for t in steps:
        if t == LR_HALVED_BEFORE:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(problem.gradient(i, p.detach().numpy().copy()))
        opt.step()
        for i, p in enumerate(params):
            record.setdefault(f"params[{i}]", []).append(p.detach().numpy().astype(np.float64))
            for name in BUFFERS:
                if opt.state[p].get(name) is not None:
                    record.setdefault(f"{name}[{i}]", []).append(opt.state[p][name].numpy().astype(np.float64))


def numpy_steps(opt: numpy_optim.Optimizer, problem: Problem, steps: range, record: Record) -> None:
    """Run steps ``steps`` (1-based numbers) in numpy_optim, recording as :func:`torch_steps`."""
    for t in steps:
        if t == LR_HALVED_BEFORE:
            opt.lr = opt.lr * 0.5
        for i, entry in enumerate(opt.param_groups):
            entry["grad"][...] = problem.gradient(i, entry["params"])
        opt.step()
        for i, entry in enumerate(opt.param_groups):
            record.setdefault(f"params[{i}]", []).append(entry["params"].astype(np.float64))
            for name in BUFFERS:
                if name in opt.state.get(i, {}):
                    record.setdefault(f"{name}[{i}]", []).append(opt.state[i][name].astype(np.float64))


def uninterrupted_torch(cls: type, problem: Problem, hyper: dict[str, Any], dtype: str | None = None,
                        resumed: bool = False, **extra: Any) -> Record:
    """torch's run of every step; ``resumed``: handed over from torch to torch at the same
    step (its ``load_state_dict`` casts 0-d scalar state such as NAdam's ``mu_product`` and
    ASGD's ``eta`` to the parameter's dtype, so a float64 run resumed in torch continues
    differently from an uninterrupted one, whichever side made the state dict)."""
    opt, params = make_torch(cls, problem, hyper, dtype=dtype, **extra)
    record: Record = {}
    if not resumed:
        torch_steps(opt, params, problem, range(1, HANDOVER + MORE + 1), record)
        return record
    torch_steps(opt, params, problem, range(1, HANDOVER + 1), record)
    again, again_params = make_torch(cls, problem, hyper, x=[p.detach().numpy() for p in params], dtype=dtype,
                                     **extra)
    again.load_state_dict(opt.state_dict())
    torch_steps(again, again_params, problem, range(HANDOVER + 1, HANDOVER + MORE + 1), record)
    return record


def assert_tracks(label: str, problem: Problem, resumed: Record, cls: type, hyper: dict[str, Any],
                  in_torch: bool = False, **extra: Any) -> None:
    """``resumed`` (both sides' steps) is within the tolerance model of the uninterrupted torch
    run (``in_torch``: resumed in torch, of torch resumed in torch at the same step)."""
    theirs = uninterrupted_torch(cls, problem, hyper, resumed=in_torch, **extra)
    reference = None
    if problem.dtype == "float32":
        reference = uninterrupted_torch(cls, problem, hyper, dtype="float64", resumed=in_torch, **extra)
    assert sorted(resumed) == sorted(theirs)
    for key in sorted(theirs):
        ours_k, theirs_k = np.stack(resumed[key]), np.stack(theirs[key])
        assert ours_k.shape == (HANDOVER + MORE, *theirs_k.shape[1:])
        initial = float(np.abs(problem.x0[int(key.split("[")[1][:-1])]).max()) if key.startswith("params") else 0.0
        if reference is None:
            c = tolerance.compare_float64(key, ours_k, theirs_k, initial=initial)
        else:
            c = tolerance.compare_float32(key, ours_k, theirs_k, np.stack(reference[key]), initial=initial)
        assert c.violation is None, f"{label}: {c.violation}"
        assert c.steps == HANDOVER + MORE


# ----- resuming -----------------------------------------------------------------------


#: fused=True on both sides (a hyperparameter of both): the run is handed over fused.
FUSED_CONFIGS = [
    pytest.param(numpy_optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
                 {"fused": True}, id="SGD-fused"),
    pytest.param(numpy_optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}, {"fused": True},
                 id="AdamW-fused"),
    pytest.param(numpy_optim.Adagrad, torch.optim.Adagrad, {"lr": 0.05, "lr_decay": 0.01}, {"fused": True},
                 id="Adagrad-fused"),
]
RESUME_CONFIGS = [pytest.param(*c.values, {}, id=c.id) for c in CONFIGS] + FUSED_CONFIGS


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("ours", "theirs", "hyper", "extra"), RESUME_CONFIGS)
def test_torch_run_resumed_in_numpy_optim_tracks_the_uninterrupted_run(ours, theirs, hyper, extra, dtype):
    problem = Problem(dtype)
    opt, params = make_torch(theirs, problem, hyper, **extra)
    record: Record = {}
    torch_steps(opt, params, problem, range(1, HANDOVER + 1), record)

    resumed = make_numpy(ours, problem, hyper, x=[p.detach().numpy() for p in params])  # not fused
    resumed.load_state_dict(torch_to_numpy(opt.state_dict(), resumed))
    assert resumed.lr == hyper["lr"] * 0.5  # the halved rate came with the state
    if "fused" in resumed.defaults:
        assert resumed.defaults["fused"] is extra.get("fused", False)  # and fused (torch's None: False)
    numpy_steps(resumed, problem, range(HANDOVER + 1, HANDOVER + MORE + 1), record)

    assert_tracks(f"{theirs.__name__} -> {ours.__name__}", problem, record, theirs, hyper, **extra)
    if ours is not numpy_optim.SGD:
        assert resumed.state["step"] == HANDOVER + MORE


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("ours", "theirs", "hyper", "extra"), RESUME_CONFIGS)
def test_numpy_optim_run_resumed_in_torch_tracks_the_uninterrupted_run(ours, theirs, hyper, extra, dtype):
    problem = Problem(dtype)
    opt = make_numpy(ours, problem, {**hyper, **extra})
    record: Record = {}
    numpy_steps(opt, problem, range(1, HANDOVER + 1), record)

    resumed, params = make_torch(theirs, problem, hyper, x=[e["params"] for e in opt.param_groups])  # not fused
    resumed.load_state_dict(numpy_to_torch(opt.state_dict(), resumed))
    assert [g["lr"] for g in resumed.param_groups] == [hyper["lr"] * 0.5] * len(GROUPS)
    if extra:
        assert [g["fused"] for g in resumed.param_groups] == [True] * len(GROUPS)  # fused came with the state
    torch_steps(resumed, params, problem, range(HANDOVER + 1, HANDOVER + MORE + 1), record)

    assert_tracks(f"{ours.__name__} -> {theirs.__name__}", problem, record, theirs, hyper, in_torch=True, **extra)
    if ours is not numpy_optim.SGD:
        assert {float(resumed.state[p]["step"]) for p in params} == {HANDOVER + MORE}


# ----- round trips --------------------------------------------------------------------


def typed(value: Any) -> Any:
    """``value`` with the type of every leaf spelled out, so that 1 and 1.0 compare unequal."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


def assert_numpy_state_dicts_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Equal plain values of equal types, and arrays equal bit for bit (dtype, shape and bytes)."""
    assert sorted(a) == sorted(b)
    for key in ("step", "defaults", "param_groups", "initial_lrs"):
        assert typed(a[key]) == typed(b[key]), key
    assert [sorted(s) for s in a["state"]] == [sorted(s) for s in b["state"]]
    for i, (x, y) in enumerate(zip(a["state"], b["state"])):
        for name in x:
            assert x[name].dtype == y[name].dtype and x[name].shape == y[name].shape, (i, name)
            assert x[name].tobytes() == y[name].tobytes(), (i, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("ours", "theirs", "hyper"), CONFIGS)
def test_numpy_state_dict_survives_a_trip_through_torch_bitwise(ours, theirs, hyper, dtype):
    problem = Problem(dtype)
    # Entry 0 also carries an override equal to the default: it must come back as an override.
    key = "weight_decay" if "weight_decay" in hyper else "etas"
    opt = make_numpy(ours, problem, hyper, entry_overrides=[{key: hyper[key]}, {}, {}, {}])
    numpy_steps(opt, problem, range(1, HANDOVER + 1), {})
    saved = opt.state_dict()
    before = copy.deepcopy(saved)

    torch_opt, _ = make_torch(theirs, problem, hyper)
    torch_opt.load_state_dict(numpy_to_torch(saved, torch_opt))
    back = torch_to_numpy(torch_opt.state_dict(), opt)

    assert_numpy_state_dicts_identical(back, saved)
    assert_numpy_state_dicts_identical(saved, before)  # the source is untouched
    opt.load_state_dict(back)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("ours", "theirs", "hyper"), CONFIGS)
def test_torch_state_dict_survives_a_trip_through_numpy_optim(ours, theirs, hyper, dtype):
    problem = Problem(dtype)
    torch_opt, params = make_torch(theirs, problem, hyper)
    torch_steps(torch_opt, params, problem, range(1, HANDOVER + 1), {})
    saved = torch_opt.state_dict()

    opt = make_numpy(ours, problem, hyper)
    back = numpy_to_torch(torch_to_numpy(saved, opt), torch_opt)

    assert back["param_groups"] == saved["param_groups"]
    assert sorted(back["state"]) == sorted(saved["state"])
    for param_id, buffers in saved["state"].items():
        assert sorted(back["state"][param_id]) == sorted(buffers)
        for name, value in buffers.items():
            assert back["state"][param_id][name].dtype == value.dtype, (param_id, name)
            assert torch.equal(back["state"][param_id][name], value), (param_id, name)
            assert back["state"][param_id][name].data_ptr() != value.data_ptr()


# ----- how groups, steps and torch-only keys are mapped -------------------------------


def test_torch_groups_become_numpy_defaults_and_per_entry_overrides():
    problem = Problem("float64")
    hyper = {"lr": 0.01, "weight_decay": 0.1}
    torch_opt, params = make_torch(torch.optim.AdamW, problem, hyper)
    torch_steps(torch_opt, params, problem, range(1, HANDOVER + 1), {})
    opt = make_numpy(numpy_optim.AdamW, problem, hyper)

    converted = torch_to_numpy(torch_opt.state_dict(), opt)

    assert converted["step"] == HANDOVER
    assert converted["defaults"] == {"lr": 0.005, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.1,
                                     "amsgrad": False, "maximize": False, "decoupled_weight_decay": True,
                                     "fused": False,                                 # torch's None
                                     "state_dtype": None, "master_weights": False}   # the optimizer's own
    assert converted["param_groups"] == [{}, {}, {"weight_decay": 0.0}, {"weight_decay": 0.0}]
    assert converted["initial_lrs"] == opt.initial_lrs == [0.01] * 4
    assert [sorted(s) for s in converted["state"]] == [["exp_avg", "exp_avg_sq"]] * 4
    for x, p in zip(converted["state"], params):
        np.testing.assert_array_equal(x["exp_avg"], torch_opt.state[p]["exp_avg"].numpy(), strict=True)
        assert not np.shares_memory(x["exp_avg"], torch_opt.state[p]["exp_avg"].numpy())


def test_a_torch_schedulers_initial_lr_maps_to_initial_lrs_both_ways():
    problem = Problem("float64")
    hyper = {"lr": 0.1, "momentum": 0.9}
    torch_opt, params = make_torch(torch.optim.SGD, problem, hyper)
    scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=3, gamma=0.5)
    for _ in range(HANDOVER):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(problem.gradient(i, p.detach().numpy().copy()))
        torch_opt.step()
        scheduler.step()
    opt = make_numpy(numpy_optim.SGD, problem, {**hyper, "lr": 0.3})

    converted = torch_to_numpy(torch_opt.state_dict(), opt, step=HANDOVER)
    assert converted["initial_lrs"] == [0.1] * 4          # the groups' initial_lr, not the optimizer's 0.3
    assert converted["defaults"]["lr"] == 0.1 * 0.5**2    # the decayed rate
    assert converted["step"] == HANDOVER

    converted["initial_lrs"] = [0.2] * 4
    back = numpy_to_torch(converted, torch_opt)
    assert [g["initial_lr"] for g in back["param_groups"]] == [0.2, 0.2]
    bare, _ = make_torch(torch.optim.SGD, problem, hyper)  # no scheduler: no initial_lr key is added
    assert all("initial_lr" not in g for g in numpy_to_torch(converted, bare)["param_groups"])


@pytest.mark.parametrize(
    ("extra", "fused", "step_dtype"),
    [({}, False, torch.float32), ({"foreach": True}, False, torch.float32), ({}, True, torch.float32)],
    ids=["default", "foreach", "fused"],
)
def test_numpy_to_torch_keeps_the_torch_only_keys_and_torchs_step_dtype(extra, fused, step_dtype):
    problem = Problem("float32")
    hyper = {"lr": 0.01, "weight_decay": 0.1}
    opt = make_numpy(numpy_optim.AdamW, problem, {**hyper, "fused": fused})
    numpy_steps(opt, problem, range(1, 4), {})
    torch_opt, params = make_torch(torch.optim.AdamW, problem, hyper, **extra)
    own = [{k: g[k] for k in ("foreach", "capturable", "differentiable", "decoupled_weight_decay")}
           for g in torch_opt.param_groups]

    converted = numpy_to_torch(opt.state_dict(), torch_opt)

    assert [{k: g[k] for k in own[0]} for g in converted["param_groups"]] == own
    assert [g["fused"] for g in converted["param_groups"]] == [True if fused else None] * len(GROUPS)
    assert [g["params"] for g in converted["param_groups"]] == GROUPS
    for buffers in converted["state"].values():
        assert buffers["step"].dtype == step_dtype and buffers["step"].shape == () and float(buffers["step"]) == 3
    torch_opt.load_state_dict(converted)
    torch_steps(torch_opt, params, problem, range(4, 6), {})
    assert {float(torch_opt.state[p]["step"]) for p in params} == {5}


def test_step_follows_torchs_float64_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        problem = Problem("float64")
        opt = make_numpy(numpy_optim.Adam, problem, {"lr": 0.01})
        numpy_steps(opt, problem, range(1, 3), {})
        torch_opt, _ = make_torch(torch.optim.Adam, problem, {"lr": 0.01})
        converted = numpy_to_torch(opt.state_dict(), torch_opt)
    finally:
        torch.set_default_dtype(previous)
    assert {b["step"].dtype for b in converted["state"].values()} == {torch.float64}


def test_sgd_keeps_the_numpy_step_count_which_torch_does_not_record():
    problem = Problem("float64")
    hyper = {"lr": 0.05, "momentum": 0.9}
    torch_opt, params = make_torch(torch.optim.SGD, problem, hyper)
    torch_steps(torch_opt, params, problem, range(1, 4), {})
    opt = make_numpy(numpy_optim.SGD, problem, hyper)
    assert torch_to_numpy(torch_opt.state_dict(), opt)["step"] == 0          # the optimizer's own count
    converted = torch_to_numpy(torch_opt.state_dict(), opt, step=3)
    assert converted["step"] == 3
    back = numpy_to_torch(converted, torch_opt)["state"]
    assert [sorted(s) for s in back.values()] == [["momentum_buffer"]] * 4   # and torch gets no step


# ----- fused, and numpy_optim's own options (state_dtype, master_weights) ------------------


@pytest.mark.parametrize("torch_fused", [None, False, True], ids=lambda v: f"torch-{v}")
def test_torch_fused_becomes_numpy_optims_with_none_as_false(torch_fused):
    problem = Problem("float32")
    torch_opt, params = make_torch(torch.optim.Adam, problem, {"lr": 0.01}, fused=torch_fused)
    torch_steps(torch_opt, params, problem, range(1, 3), {})
    assert [g["fused"] for g in torch_opt.state_dict()["param_groups"]] == [torch_fused] * len(GROUPS)
    opt = make_numpy(numpy_optim.Adam, problem, {"lr": 0.01, "fused": not torch_fused})  # the state dict decides

    converted = torch_to_numpy(torch_opt.state_dict(), opt)

    assert converted["defaults"]["fused"] is bool(torch_fused)
    assert converted["param_groups"] == [{}, {}, {"weight_decay": 0.0}, {"weight_decay": 0.0}]
    opt.load_state_dict(converted)
    assert opt.defaults["fused"] is bool(torch_fused)


@pytest.mark.parametrize(
    ("torch_fused", "numpy_fused", "expected"),
    [(None, False, None),    # torch's own spelling of "not fused" is kept
     (None, True, True), (False, True, True),
     (False, False, False), (True, False, False), (True, True, True)],
    ids=lambda v: str(v),
)
def test_numpy_optims_fused_becomes_the_torch_groups(torch_fused, numpy_fused, expected):
    problem = Problem("float32")
    hyper = {"lr": 0.05, "lr_decay": 0.01}
    opt = make_numpy(numpy_optim.Adagrad, problem, {**hyper, "fused": numpy_fused})
    numpy_steps(opt, problem, range(1, 4), {})
    torch_opt, params = make_torch(torch.optim.Adagrad, problem, hyper, fused=torch_fused)

    converted = numpy_to_torch(opt.state_dict(), torch_opt)

    assert [g["fused"] for g in converted["param_groups"]] == [expected] * len(GROUPS)
    assert {b["step"].dtype for b in converted["state"].values()} == {torch.float32}
    torch_opt.load_state_dict(converted)
    torch_steps(torch_opt, params, problem, range(4, 6), {})
    assert {float(torch_opt.state[p]["step"]) for p in params} == {5}


@pytest.mark.parametrize("clash", ["foreach", "differentiable"])
def test_numpy_to_torch_refuses_fused_into_a_group_torch_cannot_fuse(clash):
    problem = Problem("float32")
    opt = make_numpy(numpy_optim.AdamW, problem, {"lr": 0.01, "fused": True})
    numpy_steps(opt, problem, range(1, 3), {})
    torch_opt, _ = make_torch(torch.optim.AdamW, problem, {"lr": 0.01}, **{clash: True})
    before = copy.deepcopy(torch_opt.state_dict())

    with pytest.raises(ValueError) as caught:
        numpy_to_torch(opt.state_dict(), torch_opt)

    assert str(caught.value) == (f"numpy_state_dict['param_groups'][0]: fused=True, but torch param group 0 has "
                                 f"{clash}=True, which torch does not run fused (its constructor refuses them "
                                 "together)")
    assert torch_opt.state_dict() == before


def test_torch_to_numpy_keeps_the_receiving_optimizers_own_options():
    # torch has no state_dtype or master_weights: the receiving optimizer's values stay,
    # defaults and entries' overrides alike (as torch-only keys come from the torch side).
    problem = Problem("float32")
    hyper = {"lr": 0.01, "weight_decay": 0.01}
    torch_opt, params = make_torch(torch.optim.Adam, problem, hyper)
    torch_steps(torch_opt, params, problem, range(1, 3), {})
    opt = make_numpy(numpy_optim.Adam, problem, {**hyper, "state_dtype": np.float32},
                     entry_overrides=[{"master_weights": False}, {}, {}, {"state_dtype": None}])

    converted = torch_to_numpy(torch_opt.state_dict(), opt)

    assert {k: converted["defaults"][k] for k in ("state_dtype", "master_weights")} == {
        "state_dtype": "float32", "master_weights": False}
    assert converted["param_groups"] == [{"master_weights": False}, {}, {"weight_decay": 0.0},
                                         {"weight_decay": 0.0, "state_dtype": None}]
    opt.load_state_dict(converted)
    for i, p in enumerate(params):
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(opt.state[i][name], torch_opt.state[p][name].numpy(), strict=True)


HALF_SAFE = {"lr": 0.01, "eps": 1e-4}  # an eps float16 represents


@pytest.mark.parametrize(
    ("dtype", "options", "entry_overrides", "fragment"),
    [
        pytest.param("float32", {"state_dtype": "float64"}, None,
                     "torch_state_dict['state'][0] (params[0])['exp_avg'] has dtype torch.float32, but params[0] "
                     "(shape (3, 2), dtype float32) keeps it in float64 with state_dtype='float64' (the receiving "
                     "optimizer's own options; torch keeps the state in the parameters' dtype, and nothing is cast)",
                     id="state_dtype-float64"),
        pytest.param("float16", {"master_weights": True}, None,
                     "['exp_avg'] has dtype torch.float16, but params[0] (shape (3, 2), dtype float16) keeps it in "
                     "float32 with master_weights=True (the receiving", id="master_weights"),
        pytest.param("float16", {}, [{}, {}, {"state_dtype": np.float32}, {}],
                     "torch_state_dict['state'][2] (params[2])['exp_avg'] has dtype torch.float16, but params[2] "
                     "(shape (5,), dtype float16) keeps it in float32 with state_dtype='float32'",
                     id="entry-state_dtype"),
    ],
)
def test_torch_to_numpy_refuses_buffers_narrower_than_the_receiving_optimizer_keeps(dtype, options, entry_overrides,
                                                                                    fragment):
    problem = Problem(dtype)
    torch_opt, params = make_torch(torch.optim.Adam, problem, HALF_SAFE)
    torch_steps(torch_opt, params, problem, range(1, 3), {})
    opt = make_numpy(numpy_optim.Adam, problem, {**HALF_SAFE, **options}, entry_overrides=entry_overrides)
    saved = torch_opt.state_dict()
    numpy_before = opt.state_dict()

    with pytest.raises(TypeError) as caught:
        torch_to_numpy(saved, opt)

    assert fragment in str(caught.value)
    assert_numpy_state_dicts_identical(opt.state_dict(), numpy_before)
    assert all(torch.equal(saved["state"][i]["exp_avg"], torch_opt.state[p]["exp_avg"]) for i, p in enumerate(params))


NOT_REPRESENTABLE = [
    pytest.param("float32", {"state_dtype": "float64"}, None, "['defaults']", "state_dtype", "float64",
                 id="state_dtype-float64"),
    pytest.param("float32", {"state_dtype": np.float32}, None, "['defaults']", "state_dtype", "float32",
                 id="state_dtype-float32"),  # the same buffers here, but not torch's rule (state in the params' dtype)
    pytest.param("float16", {"master_weights": True}, None, "['defaults']", "master_weights", True,
                 id="master_weights"),
    pytest.param("float16", {}, [{}, {}, {"state_dtype": "float32"}, {}], "['param_groups'][2]", "state_dtype",
                 "float32", id="entry-state_dtype"),
    pytest.param("float16", {}, [{}, {"master_weights": True}, {}, {}], "['param_groups'][1]", "master_weights", True,
                 id="entry-master_weights"),
]


@pytest.mark.parametrize(("dtype", "options", "entry_overrides", "where", "option", "value"), NOT_REPRESENTABLE)
def test_numpy_to_torch_refuses_what_torch_cannot_represent(dtype, options, entry_overrides, where, option, value):
    problem = Problem(dtype)
    opt = make_numpy(numpy_optim.Adam, problem, {**HALF_SAFE, **options}, entry_overrides=entry_overrides)
    numpy_steps(opt, problem, range(1, 3), {})
    saved = opt.state_dict()
    before = copy.deepcopy(saved)
    torch_opt, _ = make_torch(torch.optim.Adam, problem, HALF_SAFE)
    torch_before = copy.deepcopy(torch_opt.state_dict())

    with pytest.raises(ValueError) as caught:
        numpy_to_torch(saved, torch_opt)

    torch_value = {"state_dtype": None, "master_weights": False}[option]  # what torch does
    assert str(caught.value) == (
        f"numpy_state_dict{where} has {option}={value!r}, which torch.optim.Adam cannot represent (torch keeps "
        f"an entry's state in its parameter's dtype and no float32 master copy; it has no {option} option): only "
        f"{option}={torch_value!r} converts"
    )
    assert_numpy_state_dicts_identical(saved, before)
    assert torch_opt.state_dict() == torch_before  # no state yet: plain values compare


ELEMENTWISE = [pytest.param(pair, id=name) for name, pair in OPTIMIZERS.items() if pair.beyond_torch]


@pytest.mark.parametrize("pair", ELEMENTWISE)
def test_every_elementwise_optimizer_refuses_state_dtype_into_torch_and_drops_the_torch_value(pair):
    problem = Problem("float32")
    wide = make_numpy(pair.ours, problem, {"state_dtype": "float64"})
    numpy_steps(wide, problem, range(1, 3), {})
    torch_opt, _ = make_torch(pair.theirs, problem, {})
    with pytest.raises(ValueError, match=rf"^numpy_state_dict\['defaults'\] has state_dtype='float64', which "
                                         rf"torch\.optim\.{pair.theirs.__name__} cannot represent"):
        numpy_to_torch(wide.state_dict(), torch_opt)

    # torch's own behaviour, spelled out as overrides, converts and is dropped
    plain = make_numpy(pair.ours, problem, {}, entry_overrides=[{"state_dtype": None, "master_weights": False}] * 4)
    numpy_steps(plain, problem, range(1, 3), {})
    converted = numpy_to_torch(plain.state_dict(), torch_opt)
    assert all(k not in g for g in converted["param_groups"] for k in pair.beyond_torch)
    assert set(converted["param_groups"][0]) == set(torch_opt.param_groups[0])
    torch_opt.load_state_dict(converted)


# ----- refusals -----------------------------------------------------------------------


def _adam_pair(dtype: str = "float64", steps: int = 2) -> tuple[Any, Any, list[torch.Tensor]]:
    problem = Problem(dtype)
    hyper = {"lr": 0.01, "weight_decay": 0.01}
    torch_opt, params = make_torch(torch.optim.Adam, problem, hyper)
    torch_steps(torch_opt, params, problem, range(1, steps + 1), {})
    return make_numpy(numpy_optim.Adam, problem, hyper), torch_opt, params


def _set_step(sd: dict[str, Any], param_id: int, value: float) -> None:
    sd["state"][param_id]["step"] = torch.tensor(value)


TORCH_TO_NUMPY_REFUSALS = [
    pytest.param(lambda sd, opt: ([1, 2], opt), TypeError, "must be a dict", id="not-a-dict"),
    pytest.param(lambda sd, opt: ({"state": sd["state"]}, opt), ValueError, "no 'param_groups'", id="no-groups"),
    pytest.param(lambda sd, opt: (sd, object()), TypeError, "numpy_optim optimizer", id="not-numpy-optim"),
    pytest.param(lambda sd, opt: (sd, numpy_optim.Adam(opt.param_groups[:3])), ValueError, "holds 4 parameters",
                 id="parameter-count"),
    pytest.param(lambda sd, opt: (_set_step(sd, 2, 5.0) or sd, opt), ValueError, "steps disagree",
                 id="steps-disagree"),
    pytest.param(lambda sd, opt: (sd["state"].pop(3) and sd, opt), ValueError, "none for params[3]",
                 id="a-parameter-without-state"),
    pytest.param(lambda sd, opt: (sd["state"][0].pop("exp_avg_sq") is not None and sd, opt), ValueError,
                 "lacks the buffers ['exp_avg_sq']", id="missing-buffer"),
    pytest.param(lambda sd, opt: (sd["state"][0].update(exp_avg=torch.zeros(3, dtype=torch.float64)) or sd, opt),
                 ValueError, "['exp_avg'] has shape (3,), but params[0] (shape (3, 2), dtype float64) keeps it with "
                 "shape (3, 2)", id="buffer-shape"),
    pytest.param(lambda sd, opt: (sd["state"][1].update(exp_avg=torch.zeros((), dtype=torch.float32)) or sd, opt),
                 TypeError, "torch_state_dict['state'][1] (params[1])['exp_avg'] has dtype torch.float32, but "
                 "params[1] (shape (), dtype float64) keeps it in float64", id="buffer-dtype"),
    pytest.param(lambda sd, opt: (sd["state"][2].update(step=torch.tensor(True)) or sd, opt), TypeError,
                 "torch_state_dict['state'][2] (params[2])['step'] has dtype torch.bool", id="bool-step"),
    pytest.param(lambda sd, opt: (sd["state"][2].update(step=torch.tensor(2 + 0j)) or sd, opt), TypeError,
                 "['step'] has dtype torch.complex64", id="complex-step"),
    pytest.param(lambda sd, opt: (sd["state"][0].update(momentum_buffer=torch.zeros(3, 2, dtype=torch.float64))
                                  or sd, opt), ValueError, "has buffer 'momentum_buffer'", id="foreign-buffer"),
    pytest.param(lambda sd, opt: (sd, numpy_optim.SGD([dict(e) for e in opt.param_groups])), ValueError,
                 "missing ['momentum', 'dampening', 'nesterov']", id="adam-into-sgd"),
    pytest.param(lambda sd, opt: (sd["param_groups"][1].update(lr=-1.0) or sd, opt), ValueError,
                 "torch_state_dict['param_groups'][1]: Invalid lr value: -1.0", id="invalid-lr"),
    pytest.param(lambda sd, opt: (sd["param_groups"][0].update(my_flag=True) or sd, opt), ValueError,
                 "unknown ['my_flag']", id="unknown-group-key"),
    pytest.param(lambda sd, opt: (sd["param_groups"][1].update(fused="yes") or sd, opt), TypeError,
                 "torch_state_dict['param_groups'][1]: Invalid fused: 'yes'", id="invalid-fused"),
    pytest.param(lambda sd, opt: ((sd["param_groups"][1].pop("fused"), sd)[1], opt), ValueError,
                 "missing ['fused']", id="no-fused"),
    pytest.param(lambda sd, opt: (sd["param_groups"][1].update(master_weights=False) or sd, opt), ValueError,
                 "unknown ['master_weights']", id="a-numpy-only-option-in-torchs-group"),
    pytest.param(lambda sd, opt: (sd["state"].update({9: {}}) or sd, opt), ValueError, "param id 9",
                 id="unknown-param-id"),
]


@pytest.mark.parametrize(("corrupt", "error", "fragment"), TORCH_TO_NUMPY_REFUSALS)
def test_torch_to_numpy_refuses_what_does_not_fit(corrupt, error, fragment):
    opt, torch_opt, _ = _adam_pair()
    saved, target = corrupt(torch_opt.state_dict(), opt)
    with pytest.raises(error) as caught:
        torch_to_numpy(saved, target)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64, torch.int64, torch.int32, torch.bool,
                                   torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("buffer", ["exp_avg", "exp_avg_sq"])
def test_torch_to_numpy_refuses_a_buffer_of_another_dtype_than_numpy_optim_keeps(dtype, buffer):
    # Before, complex, int and bool buffers of a float64 parameter were cast silently (the
    # imaginary part dropped): NumPy takes np.dtype("float64") == None as true.
    opt, torch_opt, params = _adam_pair("float64")
    saved = torch_opt.state_dict()
    changed = saved["state"][2][buffer].to(dtype)
    saved["state"][2][buffer] = changed + 1j if dtype.is_complex else changed  # an imaginary part a cast would drop
    before = copy.deepcopy(saved)
    numpy_before = opt.state_dict()

    with pytest.raises(TypeError) as caught:
        torch_to_numpy(saved, opt)

    assert str(caught.value) == (f"torch_state_dict['state'][2] (params[2])[{buffer!r}] has dtype {dtype}, but "
                                 "params[2] (shape (5,), dtype float64) keeps it in float64")
    assert torch.equal(saved["state"][2][buffer], before["state"][2][buffer])  # nothing changed
    assert saved["param_groups"] == before["param_groups"]
    assert_numpy_state_dicts_identical(opt.state_dict(), numpy_before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_to_numpy_keeps_every_float_buffer_of_the_parameters_dtype(dtype):
    opt, torch_opt, params = _adam_pair(str(dtype).removeprefix("torch."))
    converted = torch_to_numpy(torch_opt.state_dict(), opt)
    for x, p in zip(converted["state"], params):
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch_opt.state[p][name].dtype == dtype
            np.testing.assert_array_equal(x[name], torch_opt.state[p][name].numpy(), strict=True)


def test_torch_to_numpy_refuses_a_step_argument_that_disagrees_with_torch():
    opt, torch_opt, _ = _adam_pair(steps=2)
    with pytest.raises(ValueError, match="step=3 disagrees with torch's per-parameter step 2"):
        torch_to_numpy(torch_opt.state_dict(), opt, step=3)


def _numpy_saved(steps: int = 2) -> tuple[dict[str, Any], torch.optim.Optimizer]:
    opt, torch_opt, _ = _adam_pair(steps=0)
    numpy_steps(opt, Problem("float64"), range(1, steps + 1), {})
    return opt.state_dict(), torch_opt


NUMPY_TO_TORCH_REFUSALS = [
    pytest.param(lambda sd, t: ([1], t), TypeError, "must be a dict", id="not-a-dict"),
    pytest.param(lambda sd, t: (sd, object()), TypeError, "torch.optim.Optimizer", id="not-torch"),
    pytest.param(lambda sd, t: ({k: v for k, v in sd.items() if k != "initial_lrs"}, t), ValueError,
                 "has keys", id="missing-key"),
    pytest.param(lambda sd, t: ({**sd, "step": True}, t), TypeError, "Invalid numpy_state_dict['step']",
                 id="bool-step"),
    pytest.param(lambda sd, t: ({**sd, "step": -1}, t), ValueError, "Invalid numpy_state_dict['step']",
                 id="negative-step"),
    pytest.param(lambda sd, t: ({**sd, "state": sd["state"][:3]}, t), ValueError, "has 3 entries", id="entry-count"),
    pytest.param(lambda sd, t: ({**sd, "defaults": {k: v for k, v in sd["defaults"].items() if k != "master_weights"}},
                                t), ValueError,
                 "numpy_state_dict['defaults'] has the hyperparameters ['amsgrad', 'betas', 'decoupled_weight_decay', "
                 "'eps', 'fused', 'lr', 'maximize', 'state_dtype', 'weight_decay'], but numpy_optim.Adam (for "
                 "torch.optim.Adam) has ['amsgrad', 'betas', 'decoupled_weight_decay', 'eps', 'fused', 'lr', "
                 "'master_weights', 'maximize', 'state_dtype', 'weight_decay']", id="no-master_weights"),
    pytest.param(lambda sd, t: ({**sd, "param_groups": [{}, {}, {"state_dtype": "float16"}, {}]}, t), ValueError,
                 "numpy_state_dict['param_groups'][2]: Invalid state_dtype: 'float16'", id="invalid-state_dtype"),
    pytest.param(lambda sd, t: ({**sd, "param_groups": [{}, {}, {"fused": "yes"}, {}]}, t), TypeError,
                 "numpy_state_dict['param_groups'][2]: Invalid fused: 'yes'", id="invalid-fused"),
    pytest.param(lambda sd, t: ({**sd, "param_groups": [{"weight_decay": 0.5}, {}, {}, {}]}, t), ValueError,
                 "entries 0 and 1 share torch param group 0 but differ in ['weight_decay']", id="group-split"),
    pytest.param(lambda sd, t: ({**sd, "param_groups": [{}, {}, {"lr": -2.0}, {}]}, t), ValueError,
                 "numpy_state_dict['param_groups'][2]: Invalid lr value: -2.0", id="invalid-lr"),
    pytest.param(lambda sd, t: ({**sd, "param_groups": [{}, {}, {"momentum": 0.9}, {}]}, t), ValueError,
                 "unknown hyperparameters ['momentum']", id="foreign-hyperparameter"),
    pytest.param(lambda sd, t: (sd, torch.optim.SGD([p for g in t.param_groups for p in g["params"]])), ValueError,
                 "is the state of Adam, and this optimizer is SGD", id="adam-into-sgd"),
    pytest.param(lambda sd, t: ({**sd, "state": [{**sd["state"][0], "exp_avg": np.zeros(3)}, *sd["state"][1:]]}, t),
                 ValueError, "has shape (3,) and dtype float64, but torch parameter 0 (shape (3, 2), "
                 "dtype torch.float64) keeps it",
                 id="buffer-shape"),
    pytest.param(lambda sd, t: ({**sd, "state": [{**sd["state"][0], "exp_avg": sd["state"][0]["exp_avg"]
                                                  .astype(np.float32)}, *sd["state"][1:]]}, t),
                 ValueError, "dtype float32, but torch parameter 0 (shape (3, 2), dtype torch.float64) keeps it "
                 "with shape (3, 2) and dtype float64",
                 id="buffer-dtype"),
    pytest.param(lambda sd, t: ({**sd, "state": [{**sd["state"][0], "exp_avg": [0.0]}, *sd["state"][1:]]}, t),
                 TypeError, "must be a numpy.ndarray", id="buffer-type"),
    pytest.param(lambda sd, t: ({**sd, "state": [{**sd["state"][0], "momentum_buffer": sd["state"][0]["exp_avg"]},
                                                 *sd["state"][1:]]}, t),
                 ValueError, "has buffer 'momentum_buffer'", id="foreign-buffer"),
    pytest.param(lambda sd, t: ({**sd, "state": [{}, *sd["state"][1:]]}, t), ValueError,
                 "has no buffers, but the step count is 2", id="adam-entry-without-buffers"),
]


@pytest.mark.parametrize(("corrupt", "error", "fragment"), NUMPY_TO_TORCH_REFUSALS)
def test_numpy_to_torch_refuses_what_does_not_fit(corrupt, error, fragment):
    saved, torch_opt = _numpy_saved()
    before = copy.deepcopy(torch_opt.state_dict())
    sd, target = corrupt(saved, torch_opt)
    with pytest.raises(error) as caught:
        numpy_to_torch(sd, target)
    assert fragment in str(caught.value)
    assert torch_opt.state_dict()["param_groups"] == before["param_groups"]  # the torch optimizer is untouched


# ----- LBFGS: one flat history in the first parameter's state ------------------------------

LBFGS_CONFIGS = [
    pytest.param({"lr": 0.5, "max_iter": 4, "history_size": 3}, id="no-line-search"),
    pytest.param({"lr": 1.0, "max_iter": 5, "history_size": 4, "line_search_fn": "strong_wolfe"}, id="strong_wolfe"),
]
LBFGS_CALLS = 3  # step(closure) calls before and after the hand-over


def lbfgs_loss(problem: Problem, xs: list[np.ndarray]) -> float:
    return sum(float(np.sum(problem.curvature[i] * (x - problem.target[i]) ** 2)) / 2 for i, x in enumerate(xs))


def lbfgs_numpy(problem: Problem, hyper: dict[str, Any], x: list[np.ndarray]) -> tuple[Any, Any]:
    arrays = [np.array(v, dtype=np.float64, copy=True) for v in x]
    entries = [{"params": a, "grad": np.zeros_like(a)} for a in arrays]
    opt = numpy_optim.LBFGS(entries, **hyper)

    def closure() -> float:
        for i, e in enumerate(entries):
            e["grad"][...] = problem.gradient(i, e["params"])
        return lbfgs_loss(problem, arrays)

    return opt, closure


def lbfgs_torch(problem: Problem, hyper: dict[str, Any], x: list[np.ndarray]) -> tuple[Any, Any, list[Any]]:
    params = [torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for v in x]
    opt = torch.optim.LBFGS(params, **hyper)

    def closure() -> float:
        xs = [p.detach().numpy() for p in params]
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(problem.gradient(i, xs[i].copy()))
        return lbfgs_loss(problem, xs)

    return opt, closure, params


@pytest.mark.parametrize("hyper", LBFGS_CONFIGS)
def test_lbfgs_runs_resume_across_torch_and_numpy_optim(hyper):
    problem = Problem("float64")
    theirs, closure, params = lbfgs_torch(problem, hyper, problem.x0)
    for _ in range(2 * LBFGS_CALLS):
        theirs.step(closure)
    uninterrupted = [p.detach().numpy().copy() for p in params]

    # torch -> numpy_optim
    first, closure, params = lbfgs_torch(problem, hyper, problem.x0)
    for _ in range(LBFGS_CALLS):
        first.step(closure)
    ours, our_closure = lbfgs_numpy(problem, hyper, [p.detach().numpy() for p in params])
    ours.load_state_dict(torch_to_numpy(first.state_dict(), ours))
    assert ours.state[0]["n_iter"] == first.state[params[0]]["n_iter"]
    for _ in range(LBFGS_CALLS):
        ours.step(our_closure)
    for a, b in zip((e["params"] for e in ours.param_groups), uninterrupted):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)  # np.dot vs MKL's dot only

    # numpy_optim -> torch
    ours, our_closure = lbfgs_numpy(problem, hyper, problem.x0)
    for _ in range(LBFGS_CALLS):
        ours.step(our_closure)
    resumed, closure, params = lbfgs_torch(problem, hyper, [e["params"] for e in ours.param_groups])
    resumed.load_state_dict(numpy_to_torch(ours.state_dict(), resumed))
    assert resumed.state[params[0]]["func_evals"] == ours.state[0]["func_evals"]
    for _ in range(LBFGS_CALLS):
        resumed.step(closure)
    for a, b in zip((p.detach().numpy() for p in params), uninterrupted):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("hyper", LBFGS_CONFIGS)
def test_lbfgs_state_dict_survives_a_trip_through_torch(hyper):
    problem = Problem("float64")
    ours, closure = lbfgs_numpy(problem, hyper, problem.x0)
    for _ in range(LBFGS_CALLS):
        ours.step(closure)
    saved = ours.state_dict()
    theirs, _, _ = lbfgs_torch(problem, hyper, problem.x0)
    theirs.load_state_dict(numpy_to_torch(saved, theirs))
    back = torch_to_numpy(theirs.state_dict(), ours)
    assert back["defaults"] == saved["defaults"] and back["step"] == saved["step"]
    assert sorted(back["state"][0]) == sorted(saved["state"][0])
    for name, value in saved["state"][0].items():
        if isinstance(value, list):
            assert len(back["state"][0][name]) == len(value), name
            pairs = list(zip(back["state"][0][name], value))
        else:
            pairs = [(back["state"][0][name], value)]
        for x, y in pairs:
            assert type(x) is type(y), (name, type(x), type(y))
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), name
    ours.load_state_dict(back)


@pytest.mark.parametrize(("name", "k"), [("d", None), ("prev_flat_grad", None), ("H_diag", None), ("ro", 0),
                                         ("old_dirs", 1)])
@pytest.mark.parametrize("dtype", [torch.complex128, torch.int64, torch.bool, torch.float32], ids=str)
def test_lbfgs_torch_to_numpy_refuses_state_of_another_dtype(name, k, dtype):
    problem = Problem("float64")
    hyper = LBFGS_CONFIGS[0].values[0]
    theirs, closure, _ = lbfgs_torch(problem, hyper, problem.x0)
    for _ in range(LBFGS_CALLS):
        theirs.step(closure)
    ours, _ = lbfgs_numpy(problem, hyper, problem.x0)
    saved = theirs.state_dict()
    state = saved["state"][0]
    if k is None:
        state[name] = state[name].to(dtype)
    else:
        state[name][k] = state[name][k].to(dtype)
    at = f"[{name!r}]" if k is None else f"[{name!r}][{k}]"
    with pytest.raises(TypeError) as caught:
        torch_to_numpy(saved, ours)
    assert str(caught.value) == (f"torch_state_dict['state'][0]{at} has dtype {dtype}, but numpy_optim's LBFGS over "
                                 "these parameters keeps it in float64")


# ----- the class a numpy_optim state dict records -------------------------------------


class MyAdam(numpy_optim.Adam):
    """A user's subclass: the registry maps it to torch's Adam."""


@pytest.mark.parametrize(("ours", "theirs", "hyper"), [*CONFIGS, pytest.param(MyAdam, torch.optim.Adam, {"lr": 0.01},
                                                                               id="Adam-subclass")])
def test_torch_to_numpy_records_the_receiving_optimizers_class(ours, theirs, hyper):
    problem = Problem("float64")
    torch_opt, params = make_torch(theirs, problem, hyper)
    torch_steps(torch_opt, params, problem, range(1, 3), {})
    opt = make_numpy(ours, problem, hyper)

    converted = torch_to_numpy(torch_opt.state_dict(), opt)

    assert converted["class"] == ours.__name__
    assert list(converted) == ["class", "step", "defaults", "param_groups", "state", "initial_lrs"]
    opt.load_state_dict(converted)  # the class numpy_optim's load_state_dict checks


def test_lbfgs_torch_to_numpy_records_the_class():
    problem = Problem("float64")
    theirs, closure, _ = lbfgs_torch(problem, LBFGS_CONFIGS[0].values[0], problem.x0)
    theirs.step(closure)
    ours, _ = lbfgs_numpy(problem, LBFGS_CONFIGS[0].values[0], problem.x0)
    converted = torch_to_numpy(theirs.state_dict(), ours)
    assert converted["class"] == "LBFGS"
    ours.load_state_dict(converted)


@pytest.mark.parametrize(("source", "torch_class", "saved_class", "expected"), [
    pytest.param(numpy_optim.AdamW, torch.optim.Adam, "AdamW", "Adam", id="AdamW-into-torch-Adam"),
    pytest.param(numpy_optim.Adam, torch.optim.AdamW, "Adam", "AdamW", id="Adam-into-torch-AdamW"),
    pytest.param(numpy_optim.Adam, torch.optim.Adam, "MyAdam", "Adam", id="subclass-into-torch-Adam"),
    pytest.param(numpy_optim.Adam, torch.optim.Adam, "RAdam", "Adam", id="relabelled"),
])
def test_numpy_to_torch_refuses_another_class(source, torch_class, saved_class, expected):
    # AdamW and Adam state dicts have the same keys and buffers; the class tells them apart
    # (Adam's weight decay is L2, AdamW's decoupled).
    problem = Problem("float64")
    hyper = {"lr": 0.01, "weight_decay": 0.1}
    opt = make_numpy(source, problem, hyper)
    numpy_steps(opt, problem, range(1, 3), {})
    saved = {**opt.state_dict(), "class": saved_class}
    torch_opt, _ = make_torch(torch_class, problem, hyper)
    before = copy.deepcopy(torch_opt.state_dict())

    with pytest.raises(ValueError) as caught:
        numpy_to_torch(saved, torch_opt)

    assert f"numpy_state_dict is the state of {saved_class}, and this optimizer is {expected}" in str(caught.value)
    assert torch_opt.state_dict() == before  # nothing changed (no state yet: plain values compare)


def test_lbfgs_numpy_to_torch_refuses_another_class():
    problem = Problem("float64")
    ours, closure = lbfgs_numpy(problem, LBFGS_CONFIGS[0].values[0], problem.x0)
    ours.step(closure)
    theirs, _, _ = lbfgs_torch(problem, LBFGS_CONFIGS[0].values[0], problem.x0)
    with pytest.raises(ValueError, match="numpy_state_dict is the state of Adam, and this optimizer is LBFGS"):
        numpy_to_torch({**ours.state_dict(), "class": "Adam"}, theirs)
    with pytest.raises(TypeError, match=r"Invalid numpy_state_dict\['class'\]: None"):
        numpy_to_torch({**ours.state_dict(), "class": None}, theirs)
