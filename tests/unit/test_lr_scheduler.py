"""numpy_optim.lr_scheduler without torch: hand-computed schedules, entries as parameter
groups, refusals that change nothing, plain state dicts.

The bit-for-bit comparison with torch is in tests/parity/test_lr_scheduler_torch.py and
parity/schedules.py; here every expected value is written out by hand.
"""

from __future__ import annotations

import copy
import math
import pickle
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
    snapshot = opt.state_dict()
    plain["lr"] = 0.1
    numpy_optim.SGD([{"params": np.ones(2), "grad": np.ones(2)} for _ in range(2)]).load_state_dict(
        {**snapshot, "param_groups": [snapshot["param_groups"][0], {"lr": 0.1}]})
