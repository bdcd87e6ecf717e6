"""numpy_optim.lr_scheduler without torch: hand-computed schedules, entries as parameter
groups, refusals that change nothing, plain state dicts.

The bit-for-bit comparison with torch is in tests/parity/test_lr_scheduler_torch.py and
parity/schedules.py; here every expected value is written out by hand.
"""

from __future__ import annotations

import copy
import fractions
import gc
import math
import pickle
import re
import warnings

import numpy as np
import pytest

import numpy_optim
from numpy_optim import lr_scheduler as S


def entries(*lrs, n=3):
    """One entry per lr; None: the entry has no lr of its own."""
    return [{"params": np.zeros(n), "grad": np.ones(n), **({} if lr is None else {"lr": lr})} for lr in lrs]


def run(optimizer, scheduler, steps):
    """The lrs after construction and after each of ``steps`` (optimizer.step, scheduler.step) pairs."""
    out = [scheduler.get_last_lr()]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        out.append(scheduler.get_last_lr())
    return out


# ----- hand-computed schedules (values exact in binary, or the expression torch evaluates) --------


def test_step_lr_halves_every_two_steps():
    opt = numpy_optim.SGD(entries(1.0, 0.5))
    assert run(opt, S.StepLR(opt, step_size=2, gamma=0.5), 5) == [
        [1.0, 0.5], [1.0, 0.5], [0.5, 0.25], [0.5, 0.25], [0.25, 0.125], [0.25, 0.125]]


def test_multistep_lr_repeated_milestone_applies_gamma_squared_and_zero_decays_at_construction():
    opt = numpy_optim.SGD(entries(1.0))
    lrs = run(opt, S.MultiStepLR(opt, milestones=[3, 0, 3], gamma=0.5), 4)
    assert lrs == [[0.5], [0.5], [0.5], [0.5 * 0.5 ** 2], [0.125]]


def test_constant_lr_default_third_restores_by_division():
    opt = numpy_optim.SGD(entries(0.037))
    lrs = run(opt, S.ConstantLR(opt), 6)
    third = 0.037 * (1.0 / 3)
    assert lrs[:5] == [[third]] * 5
    assert lrs[5] == lrs[6] == [third * (1.0 / (1.0 / 3))]  # torch's restore: 0.03699999999999999
    assert lrs[5] == [0.03699999999999999]


def test_linear_lr_recursion_hand_computed():
    opt = numpy_optim.SGD(entries(1.0))
    lrs = [v[0] for v in run(opt, S.LinearLR(opt, start_factor=0.5, end_factor=1.0, total_iters=2), 4)]
    # e=0: 1 * 0.5; e=1: 0.5 * (1 + 0.5 / (2*0.5 + 0*0.5)) = 0.75; e=2: 0.75 * (1 + 0.5 / (1 + 0.5)) = 1.0
    assert lrs == [0.5, 0.5 * (1.0 + 0.5 / 1.0), 0.75 * (1.0 + 0.5 / 1.5), 1.0, 1.0]


def test_exponential_lr_is_the_recursion_not_the_closed_form():
    opt = numpy_optim.SGD(entries(0.1))
    lrs = [v[0] for v in run(opt, S.ExponentialLR(opt, gamma=0.95), 100)]
    expected = [0.1]
    for _ in range(100):
        expected.append(expected[-1] * 0.95)
    assert lrs == expected
    assert lrs[100] == 0.0005920529220333994 != 0.1 * 0.95 ** 100  # the reference doc's e = 100 values


def test_polynomial_lr_reaches_exactly_zero():
    opt = numpy_optim.SGD(entries(1.0))
    lrs = [v[0] for v in run(opt, S.PolynomialLR(opt, total_iters=4, power=1.0), 6)]
    # factors (1 - e/4) / (1 - (e-1)/4): 3/4, 2/3, 1/2, 0
    assert lrs == [1.0, 0.75, 0.75 * ((0.5) / (0.75)), 0.75 * (0.5 / 0.75) * (0.25 / 0.5), 0.0, 0.0, 0.0]


def test_cosine_annealing_reaches_eta_min_at_t_max_and_rises_again():
    opt = numpy_optim.SGD(entries(1.0))
    lrs = [v[0] for v in run(opt, S.CosineAnnealingLR(opt, T_max=2, eta_min=0.0), 4)]
    # e=1: (1 + cos(pi/2)) / (1 + cos 0) * 1 = 0.5000000000000001 (cos(pi/2) = 6.1e-17)
    assert lrs[1] == (1 + math.cos(math.pi * 1 / 2)) / (1 + math.cos(0.0)) * 1.0
    assert lrs[2] == 0.0  # 1 + cos(pi) is exactly 0
    assert lrs[3] == 0.0 + (1.0 - 0.0) * (1 - math.cos(math.pi / 2)) / 2  # (e - 1 - T) % 2T == 0: rises
    assert lrs[4] > lrs[3]


def test_lambda_lr_one_function_per_entry():
    opt = numpy_optim.SGD(entries(1.0, 2.0))
    lrs = run(opt, S.LambdaLR(opt, [lambda e: 1 / (e + 1), lambda e: 0.5 ** e]), 2)
    assert lrs == [[1.0, 2.0], [0.5, 1.0], [1 / 3, 0.5]]


def test_cyclic_lr_triangle_and_sgd_momentum_switched_on():
    opt = numpy_optim.SGD(entries(None), lr=0.5)  # momentum 0: CyclicLR switches it on, as torch does
    sched = S.CyclicLR(opt, base_lr=0.0, max_lr=1.0, step_size_up=2)
    lrs, momenta = [], []
    for _ in range(5):
        lrs.append(sched.get_last_lr()[0])
        momenta.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    assert lrs == [0.0, 0.5, 1.0, 0.5, 0.0]
    # momentum = 0.9 - (0.9 - 0.8) * scale
    assert momenta == [0.9, 0.9 - (0.9 - 0.8) * 0.5, 0.9 - (0.9 - 0.8) * 1.0, 0.9 - (0.9 - 0.8) * 0.5, 0.9]


def test_one_cycle_lr_writes_its_bounds_into_the_entries_and_cycles_adam_beta1():
    opt = numpy_optim.Adam(entries(None, 0.3), lr=0.01)
    S.OneCycleLR(opt, max_lr=[0.1, 0.2], total_steps=10, anneal_strategy="linear")
    first, second = opt.param_groups
    assert (first["initial_lr"], first["max_lr"], first["min_lr"]) == (0.1 / 25.0, 0.1, 0.1 / 25.0 / 1e4)
    assert second["initial_lr"] == 0.2 / 25.0
    assert first["lr"] == 0.1 / 25.0  # linear at step 0: exactly the initial lr
    assert first["betas"] == (0.95, 0.999)  # beta1 starts at max_momentum (torch's surprise)


def test_reduce_lr_on_plateau_patience_cooldown_and_eps():
    opt = numpy_optim.SGD(entries(1.0, 1e-7))
    sched = S.ReduceLROnPlateau(opt, patience=1, cooldown=1, eps=1e-8)
    seen = []
    for metric in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]:
        sched.step(metric)
        seen.append(sched.get_last_lr())
    # bad steps 2, 3 -> reduce at the 3rd metric (patience + 1 bad); cooldown discards the 4th;
    # bad again at 5, 6 -> reduce at the 6th. 1e-7 -> 1e-8 once; then 9e-9 < eps: kept.
    assert [lr[0] for lr in seen] == [1.0, 1.0, 0.1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1]
    assert [lr[1] for lr in seen] == [1e-7, 1e-7, 1e-7 * 0.1, 1e-7 * 0.1, 1e-7 * 0.1, 1e-7 * 0.1, 1e-7 * 0.1]


def test_warm_restarts_period_doubles():
    opt = numpy_optim.SGD(entries(1.0))
    lrs = [v[0] for v in run(opt, S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2), 7)]
    # (T_cur, T_i) per step: (0,2) (1,2) restart (0,4) (1,4) (2,4) (3,4) restart (0,8) (1,8)
    cur = [(0, 2), (1, 2), (0, 4), (1, 4), (2, 4), (3, 4), (0, 8), (1, 8)]
    assert lrs == [(1 + math.cos(math.pi * t / period)) / 2 for t, period in cur]
    assert lrs[0] == lrs[2] == lrs[6] == 1.0


def test_sequential_lr_restarts_the_second_scheduler_at_its_milestone():
    opt = numpy_optim.SGD(entries(1.0))
    sched = S.SequentialLR(opt, [S.ConstantLR(opt, factor=0.5, total_iters=10), S.ExponentialLR(opt, 0.5)],
                           milestones=[2])
    assert [v[0] for v in run(opt, sched, 4)] == [0.5, 0.5, 1.0, 0.5, 0.25]  # closed form at 0 = base, then ×0.5


def test_chained_scheduler_compounds_its_members():
    opt = numpy_optim.SGD(entries(1.0))
    sched = S.ChainedScheduler([S.LinearLR(opt, 0.5, total_iters=2), S.ConstantLR(opt, 0.5, total_iters=2)])
    assert sched.get_last_lr() == [0.25]  # both construction steps applied (torch's compounding)


# ----- entries are parameter groups ---------------------------------------------------------------


def test_an_entry_without_lr_starts_from_the_optimizer_and_gets_its_own():
    es = entries(None, 0.5)
    opt = numpy_optim.SGD(es, lr=0.2)
    sched = S.ExponentialLR(opt, 0.5)
    assert es[0]["lr"] == 0.2 and es[0]["initial_lr"] == 0.2 and es[1]["initial_lr"] == 0.5
    assert sched.get_last_lr() == [0.2, 0.5]
    opt.step()
    sched.step()
    assert [e["lr"] for e in es] == [0.1, 0.25] and opt.defaults["lr"] == 0.2


def test_each_entry_steps_with_its_scheduled_lr():
    es = entries(1.0, 0.25)
    opt = numpy_optim.SGD(es)
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    opt.step()  # lr 1.0 and 0.25, grad 1
    sched.step()
    opt.step()  # lr 0.5 and 0.125
    assert es[0]["params"].tolist() == [-1.5] * 3 and es[1]["params"].tolist() == [-0.375] * 3


def test_scheduler_keys_round_trip_through_the_optimizer_state_dict():
    es = entries(None)
    opt = numpy_optim.SGD(es, lr=0.1, momentum=0.9)
    S.OneCycleLR(opt, max_lr=0.1, total_steps=20)
    opt.step()
    snapshot = opt.state_dict()
    assert set(snapshot["param_groups"][0]) >= {"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"}
    fresh = numpy_optim.SGD(entries(None), lr=0.1, momentum=0.9)
    fresh.load_state_dict(snapshot)
    loaded = {k: v for k, v in fresh.param_groups[0].items() if k not in ("params", "grad")}
    assert loaded == snapshot["param_groups"][0]


def test_optimizer_refuses_a_non_number_scheduler_key():
    es = entries(0.1)
    es[0]["max_lr"] = "big"
    with pytest.raises(TypeError, match=r"params\[0\]: Invalid max_lr: 'big'"):
        numpy_optim.SGD(es)


def test_lbfgs_is_refused():
    opt = numpy_optim.LBFGS(entries(None))
    with pytest.raises(TypeError, match="LBFGS cannot be scheduled"):
        S.StepLR(opt, 2)


# ----- refusals: clear errors, nothing changed -----------------------------------------------------


def snapshot(opt):
    return copy.deepcopy([{k: v for k, v in e.items() if k not in ("params", "grad")} for e in opt.param_groups])


@pytest.mark.parametrize("build, error, match", [
    (lambda o: S.StepLR(o, step_size=0), ValueError, "step_size"),
    (lambda o: S.StepLR(o, step_size=2, gamma=float("nan")), ValueError, "gamma"),
    (lambda o: S.StepLR(o, step_size=2, gamma=10**400), ValueError, "gamma"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: S.ConstantLR(o, factor=0), ValueError, "factor"),
    (lambda o: S.PolynomialLR(o, power=-1.0), ValueError, "power"),
    (lambda o: S.LambdaLR(o, 0.5), TypeError, "lr_lambda should be a function, but got float"),
    (lambda o: S.CyclicLR(o, 0.01, [0.1, 0.2, 0.3]), ValueError, "max_lr must have the same length"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=0), ValueError, "step_size_up"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, pct_start=0.1), ValueError, "pct_start=0.1"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=100, pct_start=1.0), ValueError, "step 100"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, div_factor=0), ValueError, "div_factor"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, pct_start=1), ValueError, "pct_start, but got 1"),
    (lambda o: S.ReduceLROnPlateau(o, mode=None), ValueError, "mode None is unknown"),
    (lambda o: S.StepLR(o, 2, last_epoch=4), ValueError, "initial_lr"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=None), ValueError, "positive integer T_0"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_refused_construction_changes_nothing(build, error, match):
    opt = numpy_optim.SGD(entries(None, 0.5), lr=0.1, momentum=0.9)
    before = snapshot(opt)
    with pytest.raises(error, match=match):
        build(opt)
    assert snapshot(opt) == before
    assert not hasattr(opt.step, "_wrapped_by_lr_sched")


def test_one_cycle_refuses_a_step_past_total_steps_before_changing_anything():
    opt = numpy_optim.SGD(entries(0.1))
    sched = S.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    for _ in range(2):
        opt.step()
        sched.step()
    before, epoch = snapshot(opt), sched.last_epoch
    with pytest.raises(ValueError, match="Tried to step 3 times. The specified number of total steps is 2"):
        sched.step()
    assert snapshot(opt) == before and sched.last_epoch == epoch


def test_non_optimizer_is_refused_with_torchs_message():
    for cls in (S.LambdaLR, S.StepLR):
        with pytest.raises(TypeError, match="NoneType is not an Optimizer"):
            cls(None, 1)


# ----- state dicts and warnings --------------------------------------------------------------------


def test_state_dict_is_plain_unaliased_and_loads_without_changing_the_callers_dict():
    opt = numpy_optim.SGD(entries(0.1))
    sched = S.MultiStepLR(opt, milestones=[4, 2, 4])
    sd = sched.state_dict()
    assert sd["milestones"] == [2, 4, 4]  # a sorted list, not torch's Counter
    pickle.loads(pickle.dumps(sd))
    sd["base_lrs"].append(99.0)
    assert sched.base_lrs == [0.1]
    sd = sched.state_dict()
    frozen = copy.deepcopy(sd)
    other = S.MultiStepLR(numpy_optim.SGD(entries(0.1)), milestones=[1])
    other.load_state_dict(sd)
    other.load_state_dict(sd)  # twice (torch's CyclicLR refuses a second load of one dict)
    assert sd == frozen and other.milestones == sched.milestones


def test_state_dict_leaves_plain_functions_out():
    opt = numpy_optim.SGD(entries(0.1))
    assert S.LambdaLR(opt, lambda e: 1.0).state_dict()["lr_lambdas"] == [None]


def test_state_dict_with_other_keys_is_refused():
    opt = numpy_optim.SGD(entries(0.1))
    sched = S.StepLR(opt, 2)
    with pytest.raises(ValueError, match="must have the keys"):
        sched.load_state_dict({"gamma": 0.5})


def test_resume_from_state_dict_continues_bit_for_bit():
    def build():
        opt = numpy_optim.SGD(entries(0.1, 0.037), momentum=0.9)
        return opt, S.CyclicLR(opt, 0.01, [0.1, 0.2], step_size_up=3, mode="exp_range", gamma=0.97)

    opt, sched = build()
    whole = run(opt, sched, 20)
    opt, sched = build()
    part = run(opt, sched, 8)
    saved_opt, saved_sched = pickle.dumps(opt.state_dict()), pickle.dumps(sched.state_dict())
    opt2, sched2 = build()
    opt2.load_state_dict(pickle.loads(saved_opt))
    sched2.load_state_dict(pickle.loads(saved_sched))
    assert part + run(opt2, sched2, 12)[1:] == whole


def test_order_warning_once_and_not_after_optimizer_step():
    opt = numpy_optim.SGD(entries(0.1))
    sched = S.StepLR(opt, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched.step()
        sched.step()
    assert [str(w.message)[:40] for w in caught] == ["Detected call of `lr_scheduler.step()` b"]
    opt = numpy_optim.SGD(entries(0.1))
    sched = S.StepLR(opt, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()


def test_a_scheduled_entry_steps_with_a_negative_lr_as_torch_does_and_others_are_still_refused():
    """torch's schedules can end a hair below 0 (LinearLR to 0); torch steps with that lr.
    Only entries a scheduler drives (they hold ``initial_lr``) get that latitude."""
    scheduled = {"params": np.ones(2), "grad": np.ones(2), "lr": 0.1}
    plain = {"params": np.ones(2), "grad": np.ones(2), "lr": 0.1}
    opt = numpy_optim.SGD([scheduled, plain])
    opt.step()
    opt.step()  # the reused plan from here on
    scheduled.update(initial_lr=0.1, lr=-0.25)
    opt.step()
    assert scheduled["params"].tolist() == [1.0 - 0.1 - 0.1 + 0.25] * 2  # a step up the gradient
    plain["lr"] = -1e-17  # the same overrides but for initial_lr: refused, and nothing moved
    before = [e["params"].copy() for e in (scheduled, plain)]
    with pytest.raises(ValueError, match=r"params\[1\]: Invalid lr value: -1e-17 \(must be >= 0\)"):
        opt.step()
    assert all((e["params"] == b).all() for e, b in zip((scheduled, plain), before))
    with pytest.raises(ValueError, match=r"params\[1\]: Invalid lr value: -1e-17"):
        opt.state_dict()  # a snapshot that load_state_dict would refuse is refused here
    plain["lr"] = 0.1
    snapshot = opt.state_dict()
    numpy_optim.SGD([{"params": np.ones(2), "grad": np.ones(2)} for _ in range(2)]).load_state_dict(
        {**snapshot, "param_groups": [snapshot["param_groups"][0], {"lr": 0.1}]})


# ----- optimizer.add_param_group: an entry added later is scheduled like the others -----------------
#
# Two entries (lrs 1.0 and 0.5), 3 steps, add_param_group with an entry of lr L = 0.25 (so at epoch 3 its
# lr is L), then steps to epoch 8. Its lrs from epoch 4 on are the class's formula (hand-written below):
# a closed form from its base lr L, or the recursion from its current lr (L at epoch 3).

L = 0.25  # the added entry's lr
ADD_AT = 3  # the epoch at which it is added
EPOCHS = range(ADD_AT + 1, 9)  # the epochs it is scheduled


class Halving(S.LRScheduler):
    """The base class's defaults (no _check_new_entry or _add_entry of its own): lr = base / 2**e."""

    def get_lr(self):
        return [base_lr / 2 ** self.last_epoch for base_lr in self.base_lrs]


def new_entry(lr=L, **keys):
    return {"params": np.zeros(3), "grad": np.ones(3), **({} if lr is None else {"lr": lr}), **keys}


def _plateau_metric(scheduler):
    return (1.0,) if isinstance(scheduler, S.ReduceLROnPlateau) else ()


def scheduled_lrs(build, add=True):
    """Every entry's lr at epochs 1..8, the third entry added after epoch ADD_AT."""
    opt = numpy_optim.SGD(entries(1.0, 0.5))
    scheduler = build(opt)
    rows = []
    for e in range(1, EPOCHS[-1] + 1):
        if add and e == ADD_AT + 1:
            opt.add_param_group(new_entry())
            assert opt.param_groups[2]["lr"] == L and scheduler.get_last_lr()[2] == L  # not changed by the addition
        opt.step()
        scheduler.step(*_plateau_metric(scheduler))
        rows.append([entry["lr"] for entry in opt.param_groups])
    return rows


def _recursion(factor):
    """lr_e = lr_{e-1} * factor(e), from L at ADD_AT: the recursive classes, one rounding a step."""
    out, lr = [], L
    for e in EPOCHS:
        lr = lr * factor(e)
        out.append(lr)
    return out


def _cosine_annealing_t4():
    """CosineAnnealingLR(T_max=4, eta_min=0) from L at epoch 3: torch's recursion (reference §3.9)."""
    out, lr = [], L
    for e in EPOCHS:
        if (e - 1 - 4) % 8 == 0:  # the rising step, from the base lr L
            lr = lr + (L - 0.0) * (1 - math.cos(math.pi / 4)) / 2
        else:
            lr = (1 + math.cos(math.pi * e / 4)) / (1 + math.cos(math.pi * (e - 1) / 4)) * (lr - 0.0) + 0.0
        out.append(lr)
    return out


def _triangle(e):  # CyclicLR 0 -> 1 -> 0 over 4 epochs
    return [0.0, 0.5, 1.0, 0.5][e % 4]


#: name: (build, the added entry's lrs at epochs 4..8)
ADDED = {
    "LRScheduler (the base class's defaults)": (Halving, [L / 2 ** e for e in EPOCHS]),
    "LambdaLR": (lambda o: S.LambdaLR(o, lambda e: 0.5 ** e), [L * 0.5 ** e for e in EPOCHS]),
    "MultiplicativeLR": (lambda o: S.MultiplicativeLR(o, lambda e: 0.5), [L * 0.5 ** (e - 3) for e in EPOCHS]),
    "StepLR": (lambda o: S.StepLR(o, 2, gamma=0.5), [L * 0.5 ** (e // 2 - 3 // 2) for e in EPOCHS]),
    "MultiStepLR": (lambda o: S.MultiStepLR(o, [2, 5, 5, 7], gamma=0.5),
                    [L * 0.5 ** sum(3 < m <= e for m in [2, 5, 5, 7]) for e in EPOCHS]),
    # the recursion restores by dividing the current lr by factor at total_iters: the new entry doubles
    "ConstantLR": (lambda o: S.ConstantLR(o, factor=0.5, total_iters=6), [L if e < 6 else L * (1.0 / 0.5)
                                                                          for e in EPOCHS]),
    "LinearLR": (lambda o: S.LinearLR(o, start_factor=0.5, end_factor=1.0, total_iters=6),
                 _recursion(lambda e: 1.0 + (1.0 - 0.5) / (6 * 0.5 + (e - 1) * (1.0 - 0.5)) if e <= 6 else 1.0)),
    "ExponentialLR": (lambda o: S.ExponentialLR(o, 0.5), [L * 0.5 ** (e - 3) for e in EPOCHS]),
    # ConstantLR until the milestone 5, where ExponentialLR restarts from its closed form at 0: the base lr L
    "SequentialLR": (lambda o: S.SequentialLR(o, [S.ConstantLR(o, 0.5, total_iters=10), S.ExponentialLR(o, 0.5)],
                                              milestones=[5]), [L if e <= 5 else L * 0.5 ** (e - 5) for e in EPOCHS]),
    "PolynomialLR": (lambda o: S.PolynomialLR(o, total_iters=8, power=1.0),
                     _recursion(lambda e: ((1.0 - e / 8) / (1.0 - (e - 1) / 8)) ** 1.0)),
    "CosineAnnealingLR": (lambda o: S.CosineAnnealingLR(o, T_max=4), _cosine_annealing_t4()),
    "ChainedScheduler": (lambda o: S.ChainedScheduler([S.ExponentialLR(o, 0.5), S.StepLR(o, 2, gamma=0.5)]),
                         [L * 0.5 ** (e - 3) * 0.5 ** (e // 2 - 1) for e in EPOCHS]),
    # a constant metric: an improvement at epoch 1, then a reduction at every epoch (patience 0)
    "ReduceLROnPlateau": (lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=0), [L * 0.5 ** (e - 3)
                                                                                    for e in EPOCHS]),
    "CyclicLR": (lambda o: S.CyclicLR(o, base_lr=0.0, max_lr=1.0, step_size_up=2), [_triangle(e) for e in EPOCHS]),
    # initial_lr L, max_lr 1.0, min_lr L / 4; phases end at 0.3 * 10 - 1 = 2.0 and 9: max -> min linearly
    "OneCycleLR": (lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="linear",
                                          final_div_factor=4.0),
                   [(L / 4.0 - 1.0) * ((e - 2.0) / (9 - 2.0)) + 1.0 for e in EPOCHS]),
    "CosineAnnealingWarmRestarts": (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3),
                                    [0.0 + (L - 0.0) * (1 + math.cos(math.pi * (e % 3) / 3)) / 2 for e in EPOCHS]),
}
ADDED_IDS = list(ADDED)


@pytest.mark.parametrize("name", ADDED_IDS)
def test_an_added_entry_follows_the_formula_from_its_lr_and_the_others_are_unaffected(name):
    build, expected = ADDED[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # OneCycleLR and CyclicLR switch SGD's momentum on
        rows = scheduled_lrs(build)
        without = scheduled_lrs(build, add=False)
    assert [row[2] for row in rows[ADD_AT:]] == expected
    assert [row[:2] for row in rows] == without


def test_an_added_entry_gets_initial_lr_and_the_keys_the_scheduler_writes():
    opt = numpy_optim.SGD(entries(1.0, 0.5), momentum=0.9)
    one_cycle = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, final_div_factor=4.0, max_momentum=0.97)
    opt.add_param_group(new_entry())
    added = {k: v for k, v in opt.param_groups[2].items() if k not in ("params", "grad")}
    assert added == {"lr": L, "initial_lr": L, "max_lr": 1.0, "min_lr": L / 4.0, "momentum": 0.9,
                     "max_momentum": 0.97, "base_momentum": 0.85}
    assert one_cycle.base_lrs == [1.0 / 25.0, 1.0 / 25.0, L] and len(one_cycle.get_last_lr()) == 3
    opt = numpy_optim.Adam(entries(1.0, 0.5))
    cyclic = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, base_momentum=0.7)
    opt.add_param_group(new_entry(lr=None))  # no lr of its own: the optimizer's
    added = {k: v for k, v in opt.param_groups[2].items() if k not in ("params", "grad")}
    assert added == {"lr": 1e-3, "initial_lr": 1e-3, "betas": (0.9, 0.999), "max_momentum": 0.9,
                     "base_momentum": 0.7}
    assert cyclic.base_lrs == [0.1] * 3 and cyclic.max_lrs == [1.0] * 3 and cyclic.base_momentums == [0.7] * 3
    assert opt.initial_lrs == [1.0, 0.5, 1e-3]
    opt.step()
    cyclic.step()
    assert opt.param_groups[2]["lr"] == opt.param_groups[0]["lr"] != 0.1  # base_lr and max_lr as given for all
    assert opt.param_groups[2]["betas"] == opt.param_groups[0]["betas"] != (0.9, 0.999)


def test_an_added_entry_keeps_the_scheduler_keys_it_carries():
    opt = numpy_optim.SGD(entries(1.0, 0.5))
    scheduler = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, cycle_momentum=False)
    opt.add_param_group(new_entry(initial_lr=0.125, max_lr=2.0))
    assert opt.param_groups[2]["initial_lr"] == 0.125 and opt.param_groups[2]["max_lr"] == 2.0
    assert opt.param_groups[2]["min_lr"] == 0.125 / 1e4 and scheduler.base_lrs[2] == 0.125


def _state(opt, *schedulers):
    """Everything add_param_group could change: entries (but arrays), initial_lrs, the schedulers' states."""
    return snapshot(opt), len(opt.param_groups), list(opt.initial_lrs), [s.state_dict() for s in schedulers]


@pytest.mark.parametrize("build, argument", [
    (lambda o: S.LambdaLR(o, [lambda e: 1.0, lambda e: 0.5]), "lr_lambda"),
    (lambda o: S.MultiplicativeLR(o, (lambda e: 1.0, lambda e: 0.5)), "lr_lambda"),
    (lambda o: S.CyclicLR(o, [0.01, 0.02], 0.1), "base_lr"),
    (lambda o: S.CyclicLR(o, 0.01, [0.1, 0.2]), "max_lr"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, base_momentum=[0.8, 0.7]), "base_momentum"),
    (lambda o: S.OneCycleLR(o, [0.1, 0.2], total_steps=10), "max_lr"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, max_momentum=(0.95, 0.9)), "max_momentum"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.0, 0.01]), "min_lr"),
], ids=["LambdaLR", "MultiplicativeLR", "CyclicLR base_lr", "CyclicLR max_lr", "CyclicLR base_momentum",
        "OneCycleLR max_lr", "OneCycleLR max_momentum", "ReduceLROnPlateau"])
def test_add_param_group_refused_when_a_value_was_given_per_entry_and_nothing_changes(build, argument):
    opt = numpy_optim.SGD(entries(1.0, 0.5), momentum=0.9)
    other = S.StepLR(opt, 2)  # a scheduler that would take the entry: it is not told of it either
    scheduler = build(opt)
    for _ in range(2):
        opt.step()
        other.step()
        scheduler.step(*_plateau_metric(scheduler))
    before, entry = _state(opt, other, scheduler), new_entry()
    with pytest.raises(ValueError, match=rf"was given one {argument} per entry \(a list\), so it has no {argument} "
                                         "for a new entry"):
        opt.add_param_group(entry)
    assert _state(opt, other, scheduler) == before
    assert set(entry) == {"params", "grad", "lr"}
    opt.step()
    other.step()  # still steps: nothing was appended
    scheduler.step(*_plateau_metric(scheduler))


def test_one_function_in_a_list_is_one_per_entry():
    opt = numpy_optim.SGD(entries(1.0))
    scheduler = S.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="one lr_lambda per entry"):
        opt.add_param_group(new_entry())
    assert len(scheduler.lr_lambdas) == len(opt.param_groups) == 1


def test_only_live_schedulers_are_told_of_an_added_entry():
    """The optimizer holds its schedulers weakly: one no longer referenced neither refuses nor takes it."""
    opt = numpy_optim.SGD(entries(1.0))
    S.LambdaLR(opt, [lambda e: 1.0])  # dropped at once
    gc.collect()
    opt.add_param_group(new_entry())
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize("name", ADDED_IDS)
def test_an_entry_appended_directly_is_refused_at_the_next_step_with_nothing_changed(name):
    opt = numpy_optim.SGD(entries(1.0, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = ADDED[name][0](opt)
        opt.step()
        scheduler.step(*_plateau_metric(scheduler))
    opt.param_groups.append(new_entry())
    before = _state(opt, scheduler)
    with pytest.raises(ValueError, match=re.escape(
            f"{type(scheduler).__name__}: params has 3 entries but the scheduler knows 2; add entries with "
            "optimizer.add_param_group(...)")):
        scheduler.step(*_plateau_metric(scheduler))
    assert _state(opt, scheduler) == before


@pytest.mark.parametrize("name", ADDED_IDS)
def test_state_dicts_after_add_param_group_resume_bit_for_bit(name):
    """A fresh optimizer and scheduler that did the same add_param_group load both state dicts and
    continue exactly; one that did not refuses the scheduler's, changing nothing."""
    build = ADDED[name][0]

    def run(opt, scheduler, epochs):
        rows = []
        for _ in range(epochs):
            opt.step()
            scheduler.step(*_plateau_metric(scheduler))
            rows.append([float(e["lr"]).hex() for e in opt.param_groups] + [e["params"].tobytes()
                                                                           for e in opt.param_groups])
        return rows

    def fresh(add):
        opt = numpy_optim.SGD(entries(1.0, 0.5), momentum=0.5)
        scheduler = build(opt)
        if add:
            opt.add_param_group(new_entry())
        return opt, scheduler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt, scheduler = fresh(add=False)
        run(opt, scheduler, 3)
        opt.add_param_group(new_entry())
        run(opt, scheduler, 2)
        saved = pickle.dumps((opt.state_dict(), scheduler.state_dict(), [e["params"] for e in opt.param_groups]))
        expected = run(opt, scheduler, 3)

        opt, scheduler = fresh(add=True)
        opt_state, state, params = pickle.loads(saved)
        opt.load_state_dict(opt_state)
        scheduler.load_state_dict(state)
        for entry, p in zip(opt.param_groups, params):  # the model's arrays are not in the state dicts
            entry["params"][...] = p
        assert run(opt, scheduler, 3) == expected

        opt, scheduler = fresh(add=False)
        before = scheduler.state_dict()
        with pytest.raises(ValueError, match=r"3 items, but the scheduler knows 2 entries"):
            scheduler.load_state_dict(pickle.loads(saved)[1])
        assert scheduler.state_dict() == before


# ----- state dicts: their class, plain values, huge ints ------------------------------------------


def _stepped(name, epochs=3):
    opt = numpy_optim.SGD(entries(1.0, 0.5), momentum=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = ADDED[name][0](opt)
        for _ in range(epochs):
            opt.step()
            scheduler.step(*_plateau_metric(scheduler))
    return opt, scheduler


def _numbers(state, path=()):
    """The paths (tuples of keys and indices) to every int and float (not bool) in a state dict."""
    if isinstance(state, dict):
        return [p for k, v in state.items() for p in _numbers(v, (*path, k))]
    if isinstance(state, list):
        return [p for i, v in enumerate(state) for p in _numbers(v, (*path, i))]
    return [path] if type(state) in (int, float) else []


def _replaced(state, path, value):
    state = copy.deepcopy(state)
    container = state
    for key in path[:-1]:
        container = container[key]
    container[path[-1]] = value
    return state


def _where(path):
    """How the refusal names the value at ``path``: a composite's member's state dict is named first."""
    if path[0] == "_schedulers":
        return f"state_dict['_schedulers'][{path[1]}]: Invalid {_where(path[2:])[8:]}"
    return "Invalid state_dict" + "".join(f"[{k!r}]" for k in path)


def _plain_only(value):
    if isinstance(value, dict):
        return all(type(k) is str and _plain_only(v) for k, v in value.items()) and type(value) is dict
    if type(value) is list:
        return all(_plain_only(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


@pytest.mark.parametrize("name", ADDED_IDS)
def test_state_dict_records_the_class_and_another_class_is_refused(name):
    opt, scheduler = _stepped(name)
    state = scheduler.state_dict()
    assert state["class"] == type(scheduler).__name__ and list(state)[0] == "class"
    for member, member_state in zip(getattr(scheduler, "_schedulers", []), state.get("_schedulers", [])):
        assert member_state["class"] == type(member).__name__
    other = "StepLR" if state["class"] != "StepLR" else "ExponentialLR"
    with pytest.raises(ValueError, match=rf"state_dict records class '{other}' but this scheduler's class is "
                                         rf"'{state['class']}'"):
        scheduler.load_state_dict({**state, "class": other})
    with pytest.raises(TypeError, match=r"Invalid state_dict\['class'\]: 3"):
        scheduler.load_state_dict({**state, "class": 3})
    without = {k: v for k, v in state.items() if k != "class"}
    with pytest.raises(ValueError, match="must have the keys"):
        scheduler.load_state_dict(without)
    assert scheduler.state_dict() == state


def test_state_dict_of_a_subclass_is_not_its_base_classs():
    class Slower(S.ExponentialLR):
        pass

    opt = numpy_optim.SGD(entries(1.0))
    state = S.ExponentialLR(opt, 0.5).state_dict()
    with pytest.raises(ValueError, match="records class 'ExponentialLR' but this scheduler's class is 'Slower'"):
        Slower(numpy_optim.SGD(entries(1.0)), 0.5).load_state_dict(state)


@pytest.mark.parametrize("name", ADDED_IDS)
def test_huge_ints_non_plain_and_wrong_kinds_in_a_state_dict_are_refused_with_nothing_changed(name):
    opt, scheduler = _stepped(name)
    state = scheduler.state_dict()
    paths = _numbers(state)
    assert len(paths) >= 4
    for path in paths:
        for value, error, message in [
                (10**400, ValueError, " value: too large for a float"),
                (np.float64(0.5), TypeError, ": np.float64(0.5) (a numpy.float64; a scheduler's state holds plain"),
                ("3", TypeError, ": '3' (expected a number, as this scheduler holds, got a str)")]:
            with pytest.raises(error, match=re.escape(_where(path) + message)):
                scheduler.load_state_dict(_replaced(state, path, value))
            assert scheduler.state_dict() == state
    opt.step()
    scheduler.step(*_plateau_metric(scheduler))  # still works


def test_a_composites_state_is_checked_whole_before_any_member_loads():
    def build(opt):
        return S.SequentialLR(opt, [S.ConstantLR(opt, 0.5, total_iters=2), S.ExponentialLR(opt, 0.5)], [2])

    opt = numpy_optim.SGD(entries(1.0))
    scheduler = build(opt)
    for _ in range(3):
        opt.step()
        scheduler.step()
    state = scheduler.state_dict()
    state["_schedulers"][1]["gamma"] = "half"  # the second member's
    fresh = build(numpy_optim.SGD(entries(1.0)))
    before = fresh.state_dict()
    with pytest.raises(TypeError, match=re.escape("state_dict['_schedulers'][1]: Invalid state_dict['gamma']")):
        fresh.load_state_dict(state)
    assert fresh.state_dict() == before  # the first member's last_epoch included
    state["_schedulers"][1]["gamma"] = 0.5
    state["_schedulers"][0]["class"] = "LinearLR"
    with pytest.raises(ValueError, match=re.escape("state_dict['_schedulers'][0]: state_dict records class "
                                                   "'LinearLR' but this scheduler's class is 'ConstantLR'")):
        fresh.load_state_dict(state)
    assert fresh.state_dict() == before


F = fractions.Fraction


#: Every class built with Fractions and NumPy scalars wherever torch takes a number.
ODD_NUMBERS = {
    "LRScheduler": lambda o: Halving(o, last_epoch=np.int64(-1)),
    "LambdaLR": lambda o: S.LambdaLR(o, lambda e: np.float64(0.5) ** e),  # a NumPy factor: a NumPy lr
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda e: F(1, 2)),
    "StepLR": lambda o: S.StepLR(o, step_size=np.int64(2), gamma=F(1, 2), last_epoch=np.int32(-1)),
    "MultiStepLR": lambda o: S.MultiStepLR(o, [np.int64(2), F(3)], gamma=np.float32(0.5)),
    "ConstantLR": lambda o: S.ConstantLR(o, factor=F(1, 2), total_iters=np.int64(3)),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=np.float64(0.5), end_factor=F(1), total_iters=np.int16(3)),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=np.float64(0.5)),
    "SequentialLR": lambda o: S.SequentialLR(o, [S.ConstantLR(o, F(1, 2), np.int64(2)),
                                                 S.ExponentialLR(o, np.float32(0.5))], milestones=[np.int64(2)]),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=np.int64(4), power=F(2)),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=np.int64(4), eta_min=F(1, 100)),
    "ChainedScheduler": lambda o: S.ChainedScheduler([S.StepLR(o, np.int64(2), F(1, 2)),
                                                      S.ExponentialLR(o, np.float64(0.9))]),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, factor=F(1, 2), patience=np.int64(0), threshold=F(1, 10**4),
                                                       cooldown=np.int8(1), min_lr=[F(1, 1000), np.float64(0.0)],
                                                       eps=np.float32(1e-8)),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=F(1, 100), max_lr=[np.float64(0.1), F(1, 5)], step_size_up=np.int64(2),
                                     step_size_down=F(3), mode=np.str_("exp_range"), gamma=np.float64(0.99),
                                     base_momentum=F(4, 5), max_momentum=np.float32(0.9)),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=np.float64(0.1), total_steps=10, pct_start=np.float64(0.3),
                                         anneal_strategy=np.str_("linear"), div_factor=F(25),
                                         final_div_factor=np.int64(10**4), base_momentum=F(85, 100),
                                         max_momentum=np.float64(0.95)),
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, eta_min=np.float64(0.001)),
}


@pytest.mark.parametrize("name", list(ODD_NUMBERS))
def test_fractions_and_numpy_scalars_become_python_numbers_in_state_dicts_and_entries(name):
    opt = numpy_optim.SGD([{**e, "lr": lr} for e, lr in zip(entries(0, 0), [F(1, 10), np.float64(0.037)])],
                          momentum=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = ODD_NUMBERS[name](opt)
        states = [scheduler.state_dict()]
        for _ in range(4):
            opt.step()
            scheduler.step(*_plateau_metric(scheduler))
            states.append(scheduler.state_dict())
    assert all(_plain_only(state) for state in states), states
    assert b"numpy" not in pickle.dumps(states) and b"fractions" not in pickle.dumps(states)
    for entry in opt.param_groups:  # (LambdaLR's lr is base * lr_lambda(e): a NumPy float there, as in torch)
        for key in ("lr", "initial_lr", "max_lr", "min_lr", "momentum", "max_momentum", "base_momentum"):
            assert type(entry.get(key, 0.0)) in (int, float) or (name, key) == ("LambdaLR", "lr"), (key, entry[key])


def test_an_int_argument_stays_an_int_as_in_torch():
    opt = numpy_optim.SGD(entries(1.0))
    scheduler = S.StepLR(opt, step_size=np.int64(2), gamma=np.int64(1))
    assert type(scheduler.step_size) is int and type(scheduler.gamma) is int
    state = S.ReduceLROnPlateau(opt, min_lr=np.int64(0)).state_dict()
    assert type(state["min_lrs"][0]) is int and type(state["default_min_lr"]) is int


HUGE = 10**400
#: (the argument's name in the message, a build with it 10**400)
HUGE_ARGUMENTS = [
    ("last_epoch", lambda o: S.LambdaLR(o, lambda e: 1.0, last_epoch=HUGE)),
    ("last_epoch", lambda o: S.MultiplicativeLR(o, lambda e: 1.0, last_epoch=HUGE)),
    ("step_size", lambda o: S.StepLR(o, step_size=HUGE)),
    ("gamma", lambda o: S.StepLR(o, 2, gamma=HUGE)),
    ("last_epoch", lambda o: S.StepLR(o, 2, last_epoch=HUGE)),
    ("milestones[1]", lambda o: S.MultiStepLR(o, [2, HUGE])),
    ("gamma", lambda o: S.MultiStepLR(o, [2], gamma=HUGE)),
    ("factor", lambda o: S.ConstantLR(o, factor=HUGE)),
    ("total_iters", lambda o: S.ConstantLR(o, total_iters=HUGE)),
    ("start_factor", lambda o: S.LinearLR(o, start_factor=HUGE)),
    ("end_factor", lambda o: S.LinearLR(o, end_factor=HUGE)),
    ("total_iters", lambda o: S.LinearLR(o, total_iters=HUGE)),
    ("gamma", lambda o: S.ExponentialLR(o, HUGE)),
    ("total_iters", lambda o: S.PolynomialLR(o, total_iters=HUGE)),
    ("power", lambda o: S.PolynomialLR(o, power=HUGE)),
    ("T_max", lambda o: S.CosineAnnealingLR(o, T_max=HUGE)),
    ("eta_min", lambda o: S.CosineAnnealingLR(o, 4, eta_min=HUGE)),
    ("factor", lambda o: S.ReduceLROnPlateau(o, factor=HUGE)),
    ("patience", lambda o: S.ReduceLROnPlateau(o, patience=HUGE)),
    ("threshold", lambda o: S.ReduceLROnPlateau(o, threshold=HUGE)),
    ("cooldown", lambda o: S.ReduceLROnPlateau(o, cooldown=HUGE)),
    ("min_lr", lambda o: S.ReduceLROnPlateau(o, min_lr=HUGE)),
    ("min_lr[1]", lambda o: S.ReduceLROnPlateau(o, min_lr=[0.0, HUGE])),
    ("eps", lambda o: S.ReduceLROnPlateau(o, eps=HUGE)),
    ("base_lr", lambda o: S.CyclicLR(o, HUGE, 0.1)),
    ("max_lr[0]", lambda o: S.CyclicLR(o, 0.01, [HUGE, 0.1])),
    ("step_size_up", lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=HUGE)),
    ("step_size_down", lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_down=HUGE)),
    ("gamma", lambda o: S.CyclicLR(o, 0.01, 0.1, gamma=HUGE)),
    ("base_momentum", lambda o: S.CyclicLR(o, 0.01, 0.1, base_momentum=HUGE)),
    ("max_momentum", lambda o: S.CyclicLR(o, 0.01, 0.1, max_momentum=HUGE)),
    ("last_epoch", lambda o: S.CyclicLR(o, 0.01, 0.1, last_epoch=HUGE)),
    ("max_lr", lambda o: S.OneCycleLR(o, HUGE, total_steps=10)),
    ("total_steps", lambda o: S.OneCycleLR(o, 0.1, total_steps=HUGE)),
    ("epochs", lambda o: S.OneCycleLR(o, 0.1, epochs=HUGE, steps_per_epoch=1)),
    ("steps_per_epoch", lambda o: S.OneCycleLR(o, 0.1, epochs=1, steps_per_epoch=HUGE)),
    ("total_steps (epochs * steps_per_epoch)", lambda o: S.OneCycleLR(o, 0.1, epochs=10**200, steps_per_epoch=10**200)),
    ("pct_start", lambda o: S.OneCycleLR(o, 0.1, total_steps=10, pct_start=HUGE)),
    ("div_factor", lambda o: S.OneCycleLR(o, 0.1, total_steps=10, div_factor=HUGE)),
    ("final_div_factor", lambda o: S.OneCycleLR(o, 0.1, total_steps=10, final_div_factor=HUGE)),
    ("base_momentum", lambda o: S.OneCycleLR(o, 0.1, total_steps=10, base_momentum=HUGE)),
    ("max_momentum[1]", lambda o: S.OneCycleLR(o, 0.1, total_steps=10, max_momentum=[0.9, HUGE])),
    ("last_epoch", lambda o: S.OneCycleLR(o, 0.1, total_steps=10, last_epoch=HUGE)),
    ("T_0", lambda o: S.CosineAnnealingWarmRestarts(o, T_0=HUGE)),
    ("T_mult", lambda o: S.CosineAnnealingWarmRestarts(o, 2, T_mult=HUGE)),
    ("eta_min", lambda o: S.CosineAnnealingWarmRestarts(o, 2, eta_min=HUGE)),
    ("last_epoch", lambda o: S.CosineAnnealingWarmRestarts(o, 2, last_epoch=HUGE)),
]


@pytest.mark.parametrize("argument, build", HUGE_ARGUMENTS, ids=[f"{i}-{a}" for i, (a, _) in
                                                                  enumerate(HUGE_ARGUMENTS)])
def test_a_huge_int_argument_is_a_value_error_naming_it_and_nothing_changes(argument, build):
    opt = numpy_optim.SGD(entries(None, 0.5), lr=0.1, momentum=0.9)
    before = snapshot(opt)
    with pytest.raises(ValueError, match=re.escape(argument)):
        build(opt)
    assert snapshot(opt) == before
    assert not hasattr(opt.step, "_wrapped_by_lr_sched")


@pytest.mark.parametrize("milestone, last_epoch, argument", [(HUGE, -1, "milestones[0]"), (2, HUGE, "last_epoch")])
def test_a_huge_int_argument_of_sequential_lr_is_a_value_error_naming_it(milestone, last_epoch, argument):
    opt = numpy_optim.SGD(entries(None, 0.5), lr=0.1)
    schedulers = [S.ConstantLR(opt), S.ExponentialLR(opt, 0.5)]
    before = snapshot(opt), [s.state_dict() for s in schedulers]
    with pytest.raises(ValueError, match=re.escape(f"Invalid {argument} value: too large")):
        S.SequentialLR(opt, schedulers, [milestone], last_epoch=last_epoch)
    assert (snapshot(opt), [s.state_dict() for s in schedulers]) == before


def test_a_huge_int_at_step_time_is_a_value_error_naming_it():
    opt = numpy_optim.SGD(entries(1.0))
    for scheduler, args, name in [(S.StepLR(opt, 2), (HUGE,), "epoch"),
                                  (S.CosineAnnealingWarmRestarts(opt, 2), (HUGE,), "epoch"),
                                  (S.ReduceLROnPlateau(opt), (HUGE,), "metrics"),
                                  (S.ReduceLROnPlateau(opt), (1.0, HUGE), "epoch")]:
        before = (scheduler.state_dict(), snapshot(opt))
        with warnings.catch_warnings(), pytest.raises(ValueError, match=f"Invalid {name} value: .*too large"):
            warnings.simplefilter("ignore")
            scheduler.step(*args)
        assert (scheduler.state_dict(), snapshot(opt)) == before
    opt.param_groups[0]["lr"] = HUGE  # set by hand between steps: a new scheduler refuses it
    with pytest.raises(ValueError, match=re.escape("Invalid params[0]['lr'] value: too large")):
        S.ExponentialLR(opt, 0.5)


class Scaled:
    """A callable object: its attributes are in state dicts (torch saves its __dict__)."""

    def __init__(self):
        self.factor, self.table = np.float64(0.5), np.array([1.0, 2.0])

    def __call__(self, e):
        return float(self.factor) ** e


def test_a_callables_attributes_are_saved_and_restored_as_the_users_and_only_their_form_checked():
    opt = numpy_optim.SGD(entries(1.0, 0.5))
    scheduler = S.LambdaLR(opt, [Scaled(), lambda e: 1.0])
    state = scheduler.state_dict()
    saved = state["lr_lambdas"][0]
    assert type(saved["factor"]) is float and saved["table"] is not scheduler.lr_lambdas[0].table
    fresh_fn = Scaled()
    fresh_fn.factor = 0.25
    fresh = S.LambdaLR(numpy_optim.SGD(entries(1.0, 0.5)), [fresh_fn, lambda e: 1.0])
    fresh.load_state_dict(state)
    assert fresh_fn.factor == 0.5 and fresh_fn.table.tolist() == [1.0, 2.0]
    before = fresh.state_dict()
    for lambdas, error, message in [
            ([None, None], TypeError, r"\['lr_lambdas'\]\[0\]: None \(expected the dict of"),
            ([saved, {}], TypeError, r"\['lr_lambdas'\]\[1\]: \{\} \(expected None: .* is a function"),
            ([saved], ValueError, r"\['lr_lambdas'\]: .* \(expected a list of 2 items, one per entry\)")]:
        with pytest.raises(error, match=message):
            fresh.load_state_dict({**state, "lr_lambdas": lambdas})
        assert fresh.state_dict()["last_epoch"] == before["last_epoch"] and fresh_fn.factor == 0.5
    cyclic = S.CyclicLR(numpy_optim.SGD(entries(1.0), momentum=0.9), 0.1, 1.0, scale_fn=Scaled())
    with pytest.raises(TypeError, match=r"Invalid state_dict\['_scale_fn_custom'\]: None \(expected the dict of"):
        cyclic.load_state_dict({**cyclic.state_dict(), "_scale_fn_custom": None})
