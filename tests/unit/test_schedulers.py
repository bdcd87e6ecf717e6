"""Learning-rate schedules: the specification's formulas, continuity, and optimizer integration."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpy_optim import SGD, Adam, CosineScheduler, StepDecayScheduler, WarmupCosineScheduler


def schedule(s, steps):
    return np.array([s.get_lr(t) for t in range(steps)])


# ----- linear warmup -------------------------------------------------------------------------


@pytest.mark.parametrize("warmup", [1, 4, 10, 100], ids=lambda w: f"warmup={w}")
def test_linear_warmup_rises_from_zero_to_max_in_equal_increments(warmup):
    max_lr = 3e-4
    s = WarmupCosineScheduler(max_lr=max_lr, min_lr=1e-6, warmup_steps=warmup, total_steps=warmup + 50)
    lrs = schedule(s, warmup + 1)
    assert lrs[0] == 0.0
    assert lrs[warmup] == max_lr
    np.testing.assert_allclose(lrs[:warmup], max_lr * np.arange(warmup) / warmup, rtol=1e-15, atol=0)
    increments = np.diff(lrs)
    np.testing.assert_allclose(increments, max_lr / warmup, rtol=1e-9)  # equal steps of max_lr / warmup
    assert np.all(increments > 0)


def test_linear_warmup_hand_computed_values():
    s = WarmupCosineScheduler(max_lr=1.0, min_lr=0.0, warmup_steps=4, total_steps=20)
    assert [s.get_lr(t) for t in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


# ----- cosine --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "max_lr, min_lr, total", [(1.0, 0.0, 100), (0.1, 0.001, 1000), (3e-4, 3e-5, 7), (0.5, 0.5, 10)],
    ids=["1-to-0-T100", "0.1-to-0.001-T1000", "3e-4-to-3e-5-T7", "constant"],
)
def test_cosine_endpoints_monotone_and_smooth(max_lr, min_lr, total):
    s = CosineScheduler(max_lr=max_lr, min_lr=min_lr, total_steps=total)
    lrs = schedule(s, total + 1)
    assert lrs[0] == max_lr
    assert lrs[total] == min_lr
    assert np.all(np.diff(lrs) <= 1e-16 * max_lr), "not monotone non-increasing"
    assert np.all(lrs >= min_lr) and np.all(lrs <= max_lr)
    # smooth: |first difference| <= A pi / T and |second difference| <= A (pi / T)^2,
    # with A = (max - min) / 2 the cosine's amplitude
    amplitude = (max_lr - min_lr) / 2
    slack = 4e-16 * max_lr
    assert np.max(np.abs(np.diff(lrs))) <= amplitude * math.pi / total + slack
    assert np.max(np.abs(np.diff(lrs, 2)), initial=0.0) <= amplitude * (math.pi / total) ** 2 + slack


def test_cosine_hand_computed_points():
    s = CosineScheduler(max_lr=1.0, min_lr=0.2, total_steps=100)
    assert s.get_lr(50) == pytest.approx(0.6, rel=1e-15)  # halfway: (max + min) / 2
    assert s.get_lr(25) == pytest.approx(0.2 + 0.8 * (1 + math.cos(math.pi / 4)) / 2, rel=1e-15)
    assert s.get_lr(75) == pytest.approx(0.2 + 0.8 * (1 - math.cos(math.pi / 4)) / 2, rel=1e-15)


@given(
    max_lr=st.floats(1e-6, 10.0),
    fraction=st.floats(0.0, 1.0),
    total=st.integers(1, 5000),
)
def test_cosine_properties_for_random_schedules(max_lr, fraction, total):
    min_lr = max_lr * fraction
    s = CosineScheduler(max_lr=max_lr, min_lr=min_lr, total_steps=total)
    ts = sorted({0, total // 3, total // 2, total - 1, total})
    lrs = [s.get_lr(t) for t in ts]
    assert lrs[0] == max_lr and lrs[-1] == min_lr
    assert all(b <= a + 1e-15 * max_lr for a, b in zip(lrs, lrs[1:]))
    for t, lr in zip(ts, lrs):
        assert lr == pytest.approx(min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * t / total)) / 2,
                                   rel=1e-12, abs=1e-15 * max_lr)


def test_cosine_starts_exactly_at_max_lr_even_when_min_plus_range_rounds_away():
    # min + (max - min) is 6.827727701296746 here, one ulp above max: the start must be max itself
    max_lr = 6.827727701296745
    min_lr = 0.375 * max_lr
    assert min_lr + (max_lr - min_lr) != max_lr
    assert CosineScheduler(max_lr, min_lr, total_steps=1).get_lr(0) == max_lr
    assert WarmupCosineScheduler(max_lr, min_lr, warmup_steps=3, total_steps=5).get_lr(3) == max_lr


@given(
    max_lr=st.floats(1e-6, 10.0),
    fraction=st.floats(0.0, 1.0),
    warmup=st.integers(0, 500),
    extra=st.integers(1, 500),
)
def test_warmup_cosine_peaks_exactly_at_max_lr_at_the_end_of_warmup(max_lr, fraction, warmup, extra):
    s = WarmupCosineScheduler(max_lr, max_lr * fraction, warmup, warmup + extra)
    assert s.get_lr(warmup) == max_lr
    assert s.get_lr(warmup + extra) == max_lr * fraction
    if warmup:
        assert s.get_lr(0) == 0.0 and s.get_lr(warmup - 1) < max_lr


# ----- warmup then cosine: continuity ----------------------------------------------------------------


@pytest.mark.parametrize("warmup, total", [(10, 100), (1, 10), (100, 1000), (3, 4)], ids=str)
def test_warmup_to_cosine_transition_has_no_jump(warmup, total):
    max_lr, min_lr = 1e-3, 1e-5
    s = WarmupCosineScheduler(max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup, total_steps=total)
    lrs = schedule(s, total + 1)
    increment = max_lr / warmup
    assert lrs[warmup] == max_lr  # the peak is reached exactly at t = warmup
    assert lrs[warmup] - lrs[warmup - 1] == pytest.approx(increment, rel=1e-9)  # one warmup increment
    cosine_step = (max_lr - min_lr) / 2 * math.pi / (total - warmup)
    if warmup < total:
        assert 0 <= lrs[warmup] - lrs[warmup + 1] <= cosine_step  # and no jump on the way down
    assert np.max(np.abs(np.diff(lrs))) <= max(increment, cosine_step) * (1 + 1e-12)
    assert np.argmax(lrs) == warmup
    assert lrs[total] == min_lr
    # after the warmup it is exactly the cosine over the remaining steps
    rest = CosineScheduler(max_lr=max_lr, min_lr=min_lr, total_steps=total - warmup)
    np.testing.assert_allclose(lrs[warmup:], schedule(rest, total - warmup + 1), rtol=1e-15)


def test_warmup_zero_is_plain_cosine():
    a = WarmupCosineScheduler(max_lr=0.1, min_lr=0.01, warmup_steps=0, total_steps=50)
    b = CosineScheduler(max_lr=0.1, min_lr=0.01, total_steps=50)
    np.testing.assert_array_equal(schedule(a, 60), schedule(b, 60))


# ----- step decay ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma, step_size", [(0.1, 10), (0.5, 3), (0.9, 1)], ids=str)
def test_step_decay_drops_by_gamma_at_each_boundary_and_is_constant_between(gamma, step_size):
    initial = 0.2
    s = StepDecayScheduler(initial_lr=initial, decay_factor=gamma, step_size=step_size)
    lrs = schedule(s, 5 * step_size + 1)
    for t in range(1, len(lrs)):
        if t % step_size == 0:
            assert lrs[t] / lrs[t - 1] == pytest.approx(gamma, rel=1e-14), f"t={t}"
        else:
            assert lrs[t] == lrs[t - 1], f"t={t}: changed inside a block"
    np.testing.assert_allclose(lrs, initial * gamma ** (np.arange(len(lrs)) // step_size), rtol=1e-15)


def test_step_decay_hand_computed_values():
    s = StepDecayScheduler(initial_lr=0.1, decay_factor=0.1, step_size=10)
    assert s.get_lr(0) == s.get_lr(9) == 0.1
    assert s.get_lr(10) == pytest.approx(0.01, rel=1e-15) and s.get_lr(19) == s.get_lr(10)
    assert s.get_lr(20) == pytest.approx(0.001, rel=1e-15)


# ----- past total_steps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: CosineScheduler(max_lr=0.1, min_lr=0.002, total_steps=50), id="cosine"),
        pytest.param(lambda: WarmupCosineScheduler(max_lr=0.1, min_lr=0.002, warmup_steps=5, total_steps=50),
                     id="warmup-cosine"),
    ],
)
def test_cosine_schedules_stay_at_min_lr_past_total_steps(make):
    s = make()
    # documented in schedulers.py: clamped at min_lr (torch's CosineAnnealingLR would rise again)
    for t in (50, 51, 75, 99, 100, 1000, 10**9):
        assert s.get_lr(t) == 0.002, f"t={t}"


def test_step_decay_has_no_end_and_keeps_decaying():
    s = StepDecayScheduler(initial_lr=1.0, decay_factor=0.5, step_size=1)
    assert s.get_lr(30) == pytest.approx(0.5**30, rel=1e-15)
    assert s.get_lr(10_000) == 0.0  # underflows to zero, never negative or NaN


# ----- integration with an optimizer --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: StepDecayScheduler(initial_lr=0.1, decay_factor=0.5, step_size=3), id="step-decay"),
        pytest.param(lambda: CosineScheduler(max_lr=0.1, min_lr=0.01, total_steps=8), id="cosine"),
        pytest.param(lambda: WarmupCosineScheduler(max_lr=0.1, min_lr=0.01, warmup_steps=3, total_steps=8),
                     id="warmup-cosine"),
    ],
)
def test_scheduler_step_sets_the_lr_the_optimizer_then_uses(make):
    s = make()
    x = np.array([0.0])
    opt = SGD([{"params": x, "grad": np.array([1.0])}], lr=123.0)
    for t in range(10):
        before = x[0]
        returned = s.step(opt, t)
        assert returned == s.get_lr(t) == opt.lr
        opt.step()
        # SGD with g = 1 moves by exactly the lr in force
        assert before - x[0] == pytest.approx(s.get_lr(t), rel=1e-12, abs=1e-300), f"t={t}"


def test_scheduler_scales_entries_with_their_own_lr_by_the_same_factor():
    # schedulers.py: entry lr = entry's lr at construction * get_lr(t) / max_lr
    s = WarmupCosineScheduler(max_lr=0.1, min_lr=0.0, warmup_steps=4, total_steps=20)
    x, y = np.array([0.0]), np.array([0.0])
    opt = SGD(
        [{"params": x, "grad": np.array([1.0])}, {"params": y, "grad": np.array([1.0]), "lr": 0.02}],
        lr=0.1,
    )
    expected_y = 0.0
    for t in range(20):
        s.step(opt, t)
        factor = s.get_lr(t) / 0.1
        assert opt.param_groups[1]["lr"] == pytest.approx(0.02 * factor, rel=1e-15, abs=1e-300)
        opt.step()
        expected_y -= 0.02 * factor
    assert y[0] == pytest.approx(expected_y, rel=1e-13)
    assert x[0] == pytest.approx(5 * y[0], rel=1e-13)  # the 0.1 vs 0.02 ratio is kept throughout
    s.step(opt, 2)  # halfway through the warmup
    assert opt.lr == pytest.approx(0.05) and opt.param_groups[1]["lr"] == pytest.approx(0.01)


def test_scheduler_drives_adam_lr():
    s = CosineScheduler(max_lr=0.01, min_lr=0.001, total_steps=10)
    x = np.array([5.0])
    opt = Adam([{"params": x, "grad": np.array([2.0])}])
    s.step(opt, 10)
    opt.step()
    # first Adam step moves by lr * g / (|g| + eps) with the scheduled lr = min_lr
    assert 5.0 - x[0] == pytest.approx(0.001 * 2.0 / (2.0 + 1e-8), rel=1e-12)


def test_an_entry_added_with_add_param_group_is_scaled_from_its_own_lr():
    # schedulers.py: entry lr = its lr when added (optimizer.initial_lrs) * get_lr(t) / max_lr
    s = StepDecayScheduler(initial_lr=0.1, decay_factor=0.5, step_size=2)
    opt = SGD([{"params": np.zeros(1), "grad": np.ones(1), "lr": 0.2}], lr=0.1)
    for t in range(3):
        s.step(opt, t)
        opt.step()
    opt.add_param_group({"params": np.zeros(1), "grad": np.ones(1), "lr": 0.04})
    s.step(opt, 4)  # get_lr(4) = 0.1 * 0.5 ** 2
    assert [e["lr"] for e in opt.param_groups] == [0.2 * (0.1 * 0.5**2 / 0.1), 0.04 * (0.1 * 0.5**2 / 0.1)]


# ----- arguments: huge ints and other numbers ---------------------------------------------------------


HUGE = 10**400


@pytest.mark.parametrize("make, name", [
    (lambda: StepDecayScheduler(initial_lr=HUGE, decay_factor=0.5, step_size=1), "initial_lr"),
    (lambda: StepDecayScheduler(initial_lr=0.1, decay_factor=HUGE, step_size=1), "decay_factor"),
    (lambda: StepDecayScheduler(initial_lr=0.1, decay_factor=0.5, step_size=HUGE), "step_size"),
    (lambda: CosineScheduler(max_lr=HUGE, min_lr=0.0, total_steps=10), "max_lr"),
    (lambda: CosineScheduler(max_lr=1.0, min_lr=HUGE, total_steps=10), "min_lr"),
    (lambda: CosineScheduler(max_lr=1.0, min_lr=0.0, total_steps=HUGE), "total_steps"),
    (lambda: WarmupCosineScheduler(max_lr=1.0, min_lr=0.0, warmup_steps=HUGE, total_steps=HUGE * 10), "warmup_steps"),
    (lambda: WarmupCosineScheduler(max_lr=1.0, min_lr=0.0, warmup_steps=1, total_steps=HUGE), "total_steps"),
    (lambda: StepDecayScheduler(0.1, 0.5, 2).get_lr(HUGE), "step"),
    (lambda: CosineScheduler(1.0, 0.0, 10).get_lr(HUGE), "step"),
    (lambda: WarmupCosineScheduler(1.0, 0.0, 2, 10).step(SGD([{"params": np.zeros(1), "grad": np.ones(1)}]), HUGE),
     "step"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_huge_int_is_a_value_error_naming_the_argument(make, name):
    with pytest.raises(ValueError, match=rf"Invalid {name} value: too large for a float"):
        make()


def test_fractions_and_numpy_numbers_become_python_numbers():
    s = WarmupCosineScheduler(max_lr=Fraction(1, 10), min_lr=np.float32(0.0), warmup_steps=np.int64(2),
                              total_steps=np.int16(10))
    assert [type(v) for v in (s.max_lr, s.min_lr, s.warmup_steps, s.total_steps)] == [float, float, int, int]
    assert type(s.get_lr(np.int64(5))) is float
    s = StepDecayScheduler(initial_lr=np.float64(0.1), decay_factor=Fraction(1, 2), step_size=np.uint8(3))
    assert [type(v) for v in (s.initial_lr, s.decay_factor, s.step_size)] == [float, float, int]
    assert s.get_lr(3) == 0.1 * 0.5
