"""Weight averaging without torch: hand-computed SWA and EMA averages, SWALR's schedules,
state dicts, input forms and validation (every refused call changes nothing).

The arithmetic in each test is torch's (torch-optim-rest.md §5, numpy_optim/swa_utils.py's
docstring). Agreement with torch itself is tests/parity/test_swa_utils_torch.py.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from numpy_optim import SGD
from numpy_optim.lr_scheduler import StepLR
from numpy_optim.mlp import MLP
from numpy_optim.swa_utils import (
    SWALR,
    AveragedModel,
    get_ema_avg_fn,
    get_ema_multi_avg_fn,
    get_swa_avg_fn,
    get_swa_multi_avg_fn,
)

f16, f32, f64 = np.float16, np.float32, np.float64


def entries_of(*arrays):
    return [{"params": a, "grad": np.zeros_like(a)} for a in arrays]


# ----- AveragedModel: SWA ------------------------------------------------------------------------------


def test_swa_is_the_running_mean_hand_computed():
    w = np.array([1.0, 10.0])
    averaged = AveragedModel(w)
    assert averaged.n_averaged == 0 and averaged.params[0] is not w
    for value in (1.0, 2.0, 6.0):                      # models [1, 10], [2, 11], [6, 15]
        w[...] = [value, value + 9.0]
        averaged.update_parameters(w)
    # 1 (copy); 1 + (2 - 1) / 2 = 1.5; 1.5 + (6 - 1.5) / 3 = 3.0
    assert averaged.params[0].tolist() == [3.0, 12.0]
    assert averaged.n_averaged == 3
    assert w.tolist() == [6.0, 15.0]                   # the model is never changed


def test_swa_rounds_each_operation_in_float32():
    a0, c = f32(0.1), f32(0.7)
    averaged = AveragedModel(np.array([a0]))
    averaged.update_parameters(np.array([a0]))
    averaged.update_parameters(np.array([c]))
    averaged.update_parameters(np.array([c]))
    first = a0 + (c - a0) / f32(2)                     # n = 1
    second = first + (c - first) / f32(3)              # n = 2: true division by float32(3)
    assert averaged.params[0][0] == second
    assert averaged.params[0].dtype == f32


def test_the_first_update_copies_and_the_copies_are_deep():
    w = np.array([[1.0, 2.0]], f32)
    averaged = AveragedModel(entries_of(w))
    w += 5.0
    assert averaged.params[0].tolist() == [[1.0, 2.0]]  # a copy made at construction
    averaged.update_parameters(entries_of(w))
    assert averaged.params[0].tolist() == [[6.0, 7.0]]  # the first update copies the model
    w += 1.0
    assert averaged.params[0].tolist() == [[6.0, 7.0]]


def test_swa_avg_fn_gives_the_default_average():
    a, c = np.array([0.1, -3.0], f32), np.array([0.7, 2.0], f32)
    expected = a + (c - a) / f32(3)
    assert get_swa_avg_fn()(a, c, 2).tobytes() == expected.tobytes()


def test_swa_multi_avg_fn_weight_is_float32_even_for_float64():
    # torch: 1 / (n_averaged + 1) of an int64 tensor is a float32 tensor: w = f32(1/3), and
    # lerp takes the first branch (|w| < 0.5): fma(w, c - a, a), exact here.
    a, c = np.array([0.0, 1.0]), np.array([3.0, 1.0])
    get_swa_multi_avg_fn()([a], [c], 2)
    w = float(f32(1) / f32(3))
    assert w != 1 / 3
    assert a.tolist() == [w * 3.0, 1.0]


def test_swa_multi_avg_fn_takes_lerps_second_branch_at_one_half():
    # n = 1: w = 0.5, lerp's second branch fma(w - 1, d, c) with d = rn(c - a).
    # a = 1, c = 2**24 + 2: d = rn(2**24 + 1) = 2**24 (tie to even), so
    # c - d / 2 = 2**23 + 2, where the first branch a + d / 2 would give 2**23 + 1.
    a, c = np.array([1.0], f32), np.array([2.0**24 + 2.0], f32)
    get_swa_multi_avg_fn()([a], [c], 1)
    assert a[0] == 2.0**23 + 2.0


# ----- AveragedModel: EMA ------------------------------------------------------------------------------


def test_ema_multi_avg_fn_is_lerp_with_one_minus_decay():
    ema = AveragedModel(np.array([0.0, 8.0]), multi_avg_fn=get_ema_multi_avg_fn(0.75))
    ema.update_parameters(np.array([0.0, 8.0]))
    ema.update_parameters(np.array([4.0, 0.0]))        # 0.75 * [0, 8] + 0.25 * [4, 0]
    assert ema.params[0].tolist() == [1.0, 6.0]
    ema.update_parameters(np.array([4.0, 0.0]))        # 0.75 * [1, 6] + 0.25 * [4, 0]
    assert ema.params[0].tolist() == [1.75, 4.5]


def test_ema_avg_fn_rounds_two_products_and_a_sum():
    d = 0.999
    ema, current = np.array([0.3], f32), np.array([-1.7], f32)
    expected = f32(d) * ema[0] + f32(1 - d) * current[0]
    assert get_ema_avg_fn(d)(ema, current, 5)[0] == expected
    averaged = AveragedModel(ema.copy(), avg_fn=get_ema_avg_fn(d))
    averaged.update_parameters(ema)
    averaged.update_parameters(current)
    assert averaged.params[0][0] == expected


def test_float16_averages_are_computed_in_float32_and_rounded():
    a, c = np.array([0.1], f16), np.array([0.7], f16)
    t = f32
    expected = f16(t(a[0]) + t(f16((t(c[0]) - t(a[0])) / t(3))))  # c - a exact in float32 here
    assert get_swa_avg_fn()(a, c, 2)[0] == expected
    kept, new = f16(t(a[0]) * t(0.9)), f16(t(c[0]) * t(1 - 0.9))   # decay as float32, not float16
    assert get_ema_avg_fn(0.9)(a, c, 1)[0] == f16(t(kept) + t(new))


def test_multi_avg_fn_is_called_once_per_dtype_group_in_torchs_order():
    calls = []

    def record(averaged, current, n):
        calls.append(([a.dtype.name for a in averaged], len(current), n))

    model = [np.zeros(1, f32), np.zeros(2, f64), np.zeros(3, f32)]
    averaged = AveragedModel(model, multi_avg_fn=record)
    averaged.update_parameters(model)                  # copies: no call
    averaged.update_parameters(model)
    assert calls == [(["float64"], 1, 1), (["float32", "float32"], 2, 1)]


def test_avg_fn_receives_the_averaged_array_the_model_array_and_the_count():
    seen = []

    def avg_fn(averaged, current, n):
        seen.append((averaged.tolist(), current.tolist(), n))
        return averaged + current

    averaged = AveragedModel(np.array([1.0]), avg_fn=avg_fn)
    for value in (1.0, 2.0, 3.0):
        averaged.update_parameters(np.array([value]))
    assert seen == [([1.0], [2.0], 1), ([3.0], [3.0], 2)]
    assert averaged.params[0].tolist() == [6.0]


# ----- model forms, state dicts, validation -------------------------------------------------------------


def test_model_forms_optimizer_mlp_entries_and_arrays():
    a, b = np.array([1.0, 2.0]), np.array([3.0])
    optimizer = SGD(entries_of(a, b), lr=0.1)
    for model in (optimizer, optimizer.param_groups, [a, b], (a, b)):
        averaged = AveragedModel(model)
        assert [p.tolist() for p in averaged.params] == [[1.0, 2.0], [3.0]]
    assert AveragedModel({"params": b, "grad": b}).params[0].tolist() == [3.0]
    mlp = MLP([2, 4, 3], seed=0)
    averaged = AveragedModel(mlp)
    assert [p.shape for p in averaged.params] == [(2, 4), (4,), (4, 3), (3,)]
    averaged.update_parameters(mlp)
    averaged.update_parameters(mlp)
    assert all(np.array_equal(p, e["params"]) for p, e in zip(averaged.params, mlp.parameters()))


def test_state_dict_round_trip_and_resume():
    rng = np.random.default_rng(0)
    models = [rng.standard_normal(4).astype(f32) for _ in range(6)]
    whole = AveragedModel(models[0])
    for m in models:
        whole.update_parameters(m)
    first = AveragedModel(models[0])
    for m in models[:3]:
        first.update_parameters(m)
    saved = first.state_dict()
    assert saved["n_averaged"] == 3 and saved["params"][0] is not first.params[0]
    resumed = AveragedModel(np.zeros(4, f32))
    target = resumed.params[0]
    resumed.load_state_dict(saved)
    assert resumed.params[0] is target                 # loaded into the same array
    for m in models[3:]:
        resumed.update_parameters(m)
    assert resumed.n_averaged == 6 and resumed.params[0].tobytes() == whole.params[0].tobytes()


@pytest.mark.parametrize(
    "state, error, message",
    [
        ([], TypeError, "state_dict must be a dict, got list"),
        ({"n_averaged": 1}, ValueError, r"must have the keys \['n_averaged', 'params'\]"),
        ({"n_averaged": -1, "params": [np.zeros(2)]}, ValueError, "n_averaged'] must be an int >= 0, got -1"),
        ({"n_averaged": True, "params": [np.zeros(2)]}, ValueError, "must be an int >= 0, got True"),
        ({"n_averaged": 1, "params": []}, ValueError, "must be a list of 1 ndarrays"),
        ({"n_averaged": 1, "params": [np.zeros(3)]}, ValueError, r"\['params'\]\[0\] must be an ndarray of shape"),
        ({"n_averaged": 1, "params": [np.zeros(2, f32)]}, ValueError, "and dtype float64"),
    ],
    ids=["not-dict", "keys", "negative", "bool", "length", "shape", "dtype"],
)
def test_load_state_dict_validation_changes_nothing(state, error, message):
    averaged = AveragedModel(np.array([1.0, 2.0]))
    with pytest.raises(error, match=message):
        averaged.load_state_dict(state)
    assert averaged.n_averaged == 0 and averaged.params[0].tolist() == [1.0, 2.0]


def test_update_parameters_refuses_another_model_and_changes_nothing():
    averaged = AveragedModel([np.array([1.0]), np.array([2.0, 3.0])])
    averaged.update_parameters([np.array([1.0]), np.array([2.0, 3.0])])
    for model, error, message in [
        ([np.array([5.0])], ValueError, "model has 1 arrays, the averaged model 2"),
        ([np.array([5.0]), np.array([5.0])], ValueError, r"model array 1 has shape \(1,\), its average \(2,\)"),
        ([np.array([5.0]), np.array([5.0, 5.0], f32)], TypeError, "model array 1 has dtype float32"),
        ([np.array([5.0]), [5.0, 5.0]], TypeError, r"model\[1\] must be a numpy.ndarray, got list"),
        ([np.array([5]), np.array([5.0, 5.0])], TypeError, r"model\[0\] must have a floating dtype"),
        ([{"grad": np.zeros(1)}, np.array([5.0, 5.0])], ValueError, r"model\[0\] has no 'params' key"),
        (3.0, TypeError, "model must be an Optimizer, a model with parameters"),
    ]:
        with pytest.raises(error, match=message):
            averaged.update_parameters(model)
    assert averaged.n_averaged == 1 and [p.tolist() for p in averaged.params] == [[1.0], [2.0, 3.0]]


def test_avg_fn_returning_a_wrong_shape_changes_nothing():
    averaged = AveragedModel([np.array([1.0]), np.array([2.0, 3.0])], avg_fn=lambda a, c, n: np.zeros(3))
    averaged.update_parameters([np.array([1.0]), np.array([2.0, 3.0])])
    with pytest.raises(ValueError, match=r"avg_fn returned shape \(3,\) for array 0 of shape \(1,\)"):
        averaged.update_parameters([np.array([1.0]), np.array([2.0, 3.0])])
    assert averaged.n_averaged == 1 and averaged.params[0].tolist() == [1.0]


def test_constructor_and_function_validation():
    with pytest.raises(ValueError, match="Only one of avg_fn and multi_avg_fn should be provided"):
        AveragedModel(np.zeros(1), avg_fn=get_swa_avg_fn(), multi_avg_fn=get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="avg_fn must be callable or None, got int"):
        AveragedModel(np.zeros(1), avg_fn=3)
    for maker in (get_ema_avg_fn, get_ema_multi_avg_fn):
        with pytest.raises(ValueError, match=r"Invalid decay value 1.5 provided. Please provide a value in \[0,1\]"):
            maker(1.5)
        with pytest.raises(ValueError, match="Invalid decay value nan provided"):
            maker(math.nan)                              # torch lets NaN through its range check
        with pytest.raises(TypeError, match="Invalid decay: '0.9'"):
            maker("0.9")
    with pytest.raises(TypeError, match="num_averaged must be an int .AveragedModel.n_averaged., got 1.5"):
        get_swa_multi_avg_fn()([np.zeros(1)], [np.zeros(1)], 1.5)
    with pytest.raises(ValueError, match="num_averaged must be >= 0 .AveragedModel.n_averaged., got -1"):
        get_swa_avg_fn()(np.zeros(1), np.zeros(1), -1)


# ----- SWALR --------------------------------------------------------------------------------------------


def sgd(*lrs):
    entries = [{"params": np.zeros(1), "grad": np.zeros(1)} for _ in lrs]
    for e, lr in zip(entries, lrs):
        if lr is not None:
            e["lr"] = lr
    return SGD(entries, lr=1.0)


def run(scheduler, optimizer, steps):
    lrs = [scheduler.get_last_lr()]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return lrs


def test_swalr_linear_hand_computed():
    # E = 2, lr 1 -> 0.5: step s = 1: prev alpha 0 -> prev lr 1, alpha 1/2: 0.5 * 0.5 + 1 * 0.5
    optimizer = sgd(None, 0.2)
    scheduler = SWALR(optimizer, swa_lr=0.5, anneal_epochs=2, anneal_strategy="linear")
    lrs = run(scheduler, optimizer, 3)
    assert lrs[0] == [1.0, 0.2]
    assert lrs[1] == [0.5 * 0.5 + 1.0 * 0.5, 0.5 * 0.5 + 0.2 * 0.5]
    assert lrs[2] == [0.5, 0.5] and lrs[3] == [0.5, 0.5]   # prev alpha 1/2 undone; alpha = 1
    assert [e["swa_lr"] for e in optimizer.param_groups] == [0.5, 0.5]


def test_swalr_cos_hand_computed():
    optimizer = sgd(0.1)
    scheduler = SWALR(optimizer, swa_lr=0.05, anneal_epochs=3)
    lrs = run(scheduler, optimizer, 2)
    alpha1 = (1 - math.cos(math.pi * (1 / 3))) / 2
    lr1 = 0.05 * alpha1 + 0.1 * (1 - alpha1)
    prev = (lr1 - alpha1 * 0.05) / (1 - alpha1)
    alpha2 = (1 - math.cos(math.pi * (2 / 3))) / 2
    assert lrs == [[0.1], [lr1], [0.05 * alpha2 + prev * (1 - alpha2)]]


def test_swalr_zero_anneal_epochs_switches_at_construction():
    optimizer = sgd(0.1, 0.3)
    scheduler = SWALR(optimizer, swa_lr=[0.01, 0.02], anneal_epochs=0, anneal_strategy="linear")
    assert run(scheduler, optimizer, 2) == [[0.01, 0.02]] * 3


def test_swalr_state_dict_resume_and_anneal_function():
    optimizer = sgd(0.1, 0.3)
    scheduler = SWALR(optimizer, swa_lr=0.05, anneal_epochs=5, anneal_strategy="linear")
    whole = run(scheduler, optimizer, 8)
    optimizer2 = sgd(0.1, 0.3)
    first = SWALR(optimizer2, swa_lr=0.05, anneal_epochs=5, anneal_strategy="linear")
    head = run(first, optimizer2, 3)
    saved_opt, saved = optimizer2.state_dict(), first.state_dict()
    assert "anneal_func" not in saved and saved["_anneal_strategy"] == "linear" and saved["anneal_epochs"] == 5
    optimizer3 = sgd(0.1, 0.3)
    resumed = SWALR(optimizer3, swa_lr=0.05, anneal_epochs=5)   # built as 'cos'; the state says linear
    optimizer3.load_state_dict(saved_opt)
    resumed.load_state_dict(saved)
    assert resumed.anneal_func(0.5) == 0.5
    tail = run(resumed, optimizer3, 5)
    assert head + tail[1:] == whole


def test_swalr_validation_writes_nothing():
    optimizer = sgd(0.1, 0.3)
    for kwargs, message in [
        (dict(swa_lr=[0.1]), "swa_lr must have the same length as optimizer.param_groups. swa_lr has 1 values, "
                             "param_groups has 2."),
        (dict(swa_lr=0.1, anneal_strategy="exp"), "anneal_strategy must be one of 'cos' or 'linear', instead got exp"),
        (dict(swa_lr=0.1, anneal_epochs=-1), "anneal_epochs must be equal or greater than 0, got -1"),
        (dict(swa_lr=0.1, anneal_epochs=2.5), "anneal_epochs must be equal or greater than 0, got 2.5"),
        (dict(swa_lr=0.1, anneal_epochs=True), "anneal_epochs must be equal or greater than 0, got True"),
        (dict(swa_lr=math.nan), "Invalid swa_lr value: nan"),
        (dict(swa_lr=0.1, last_epoch=3), "param 'initial_lr' is not specified in param_groups"),
    ]:
        with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
            SWALR(optimizer, **kwargs)
        assert all("swa_lr" not in e and "initial_lr" not in e for e in optimizer.param_groups), kwargs
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        SWALR([], swa_lr=0.1)


def test_swalr_load_state_dict_refuses_an_unknown_strategy():
    optimizer = sgd(0.1)
    scheduler = SWALR(optimizer, swa_lr=0.05)
    state = scheduler.state_dict()
    state["_anneal_strategy"] = "exp"
    with pytest.raises(ValueError, match="_anneal_strategy'] must be 'cos' or 'linear', got 'exp'"):
        scheduler.load_state_dict(state)
    assert scheduler._anneal_strategy == "cos"


def test_swalr_get_lr_outside_step_warns():
    optimizer = sgd(0.1)
    scheduler = SWALR(optimizer, swa_lr=0.05)
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        scheduler.get_lr()
    optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step()


# ----- SWALR: entries added with add_param_group, plain state dicts, huge ints ------------------------


def _anneal(lr, k, swa_lr=0.05, epochs=6):
    """One SWALR step k of an entry at ``lr``, linear: undo alpha(k - 1), apply alpha(k) (class docstring)."""
    prev_alpha, alpha = max(0, min(1, (k - 1) / epochs)), max(0, min(1, k / epochs))
    prev = swa_lr if prev_alpha == 1 else (lr - prev_alpha * swa_lr) / (1 - prev_alpha)
    return swa_lr * alpha + prev * (1 - alpha)


def _swalr_lrs(add, steps=8, **entry):
    optimizer = sgd(1.0, 0.3)
    scheduler = SWALR(optimizer, swa_lr=0.05, anneal_epochs=6, anneal_strategy="linear")
    lrs = []
    for k in range(1, steps + 1):
        if add and k == 4:
            optimizer.add_param_group({"params": np.zeros(1), "grad": np.zeros(1), "lr": 0.25, **entry})
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return optimizer, scheduler, lrs


def test_swalr_anneals_an_added_entry_from_its_lr_to_swa_lr_and_the_others_are_unaffected():
    optimizer, scheduler, lrs = _swalr_lrs(add=True)
    expected, lr = [], 0.25  # its lr after step 3, when it is added
    for k in range(4, 9):
        lr = _anneal(lr, k)
        expected.append(lr)
    assert [row[2] for row in lrs[3:]] == expected and expected[2:] == [0.05] * 3
    assert [row[:2] for row in lrs] == _swalr_lrs(add=False)[2]
    added = optimizer.param_groups[2]
    assert (added["swa_lr"], added["initial_lr"], scheduler.base_lrs) == (0.05, 0.25, [1.0, 0.3, 0.25])
    kept = _swalr_lrs(add=True, steps=4, swa_lr=0.125)[0].param_groups[2]  # an entry's own swa_lr is kept
    assert kept["swa_lr"] == 0.125 and kept["lr"] == _anneal(0.25, 4, swa_lr=0.125)


def test_swalr_with_one_swa_lr_per_entry_refuses_an_added_entry_and_nothing_changes():
    optimizer = sgd(1.0, 0.3)
    scheduler = SWALR(optimizer, swa_lr=[0.05, 0.01])
    before = (scheduler.state_dict(), [dict(e) for e in optimizer.param_groups], list(optimizer.initial_lrs))
    with pytest.raises(ValueError, match=r"SWALR was given one swa_lr per entry \(a list\), so it has no swa_lr"):
        optimizer.add_param_group({"params": np.zeros(1), "grad": np.zeros(1), "lr": 0.25})
    assert (scheduler.state_dict(), [dict(e) for e in optimizer.param_groups], list(optimizer.initial_lrs)) == before


def test_swalr_refuses_to_step_with_an_entry_appended_directly():
    optimizer = sgd(1.0)
    scheduler = SWALR(optimizer, swa_lr=0.05)
    optimizer.param_groups.append({"params": np.zeros(1), "grad": np.zeros(1), "lr": 0.25})
    before = scheduler.state_dict()
    with pytest.raises(ValueError, match=r"SWALR: params has 2 entries but the scheduler knows 1; add entries with "
                                         r"optimizer\.add_param_group"):
        scheduler.step()
    assert scheduler.state_dict() == before and optimizer.param_groups[0]["lr"] == 1.0


def test_swalr_state_dict_after_add_param_group_resumes_and_records_its_class():
    optimizer, scheduler, _ = _swalr_lrs(add=True, steps=5)
    saved_optimizer, saved = optimizer.state_dict(), scheduler.state_dict()
    assert saved["class"] == "SWALR" and len(saved["base_lrs"]) == 3
    expected = run(scheduler, optimizer, 3)
    resumed_optimizer = sgd(1.0, 0.3)
    resumed = SWALR(resumed_optimizer, swa_lr=0.05, anneal_epochs=6, anneal_strategy="linear")
    resumed_optimizer.add_param_group({"params": np.zeros(1), "grad": np.zeros(1), "lr": 0.25})
    resumed_optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved)
    assert run(resumed, resumed_optimizer, 3) == expected
    other = sgd(1.0, 0.3)
    with pytest.raises(ValueError, match="records class 'SWALR' but this scheduler's class is 'StepLR'"):
        StepLR(other, 2).load_state_dict(saved)


def test_swalr_huge_ints_are_value_errors_naming_them_and_nothing_changes():
    optimizer = sgd(1.0, 0.3)
    for kwargs, name in [(dict(swa_lr=10**400), "swa_lr"), (dict(swa_lr=[0.1, 10**400]), r"swa_lr\[1\]"),
                         (dict(swa_lr=0.1, anneal_epochs=10**400), "anneal_epochs"),
                         (dict(swa_lr=0.1, last_epoch=10**400), "last_epoch")]:
        with pytest.raises(ValueError, match=f"Invalid {name} value: too large for a float"):
            SWALR(optimizer, **kwargs)
        assert all("swa_lr" not in e and "initial_lr" not in e for e in optimizer.param_groups), kwargs
    scheduler = SWALR(optimizer, swa_lr=0.1)
    state = scheduler.state_dict()
    paths = [(k,) for k, v in state.items() if type(v) in (int, float)]
    paths += [(k, i) for k, v in state.items() if type(v) is list for i in range(len(v))]
    assert {p[0] for p in paths} == {"anneal_epochs", "base_lrs", "last_epoch", "_step_count", "_last_lr"}
    for path in paths:
        corrupt = {k: list(v) if type(v) is list else v for k, v in state.items()}
        if len(path) == 1:
            corrupt[path[0]] = 10**400
        else:
            corrupt[path[0]][path[1]] = 10**400
        where = "".join(f"[{k!r}]" for k in path).replace("[", r"\[").replace("]", r"\]")
        with pytest.raises(ValueError, match=rf"Invalid state_dict{where} value: too large for a float"):
            scheduler.load_state_dict(corrupt)
        assert scheduler.state_dict() == state


def test_swalr_fraction_and_numpy_arguments_give_a_plain_state_dict():
    optimizer = sgd(Fraction(1, 2), np.float64(0.3))
    scheduler = SWALR(optimizer, swa_lr=Fraction(1, 20), anneal_epochs=np.int64(3),
                      anneal_strategy=np.str_("linear"), last_epoch=np.int64(-1))
    run(scheduler, optimizer, 2)
    state = scheduler.state_dict()

    def plain(value):
        if type(value) is dict:
            return all(type(k) is str and plain(v) for k, v in value.items())
        if type(value) is list:
            return all(plain(v) for v in value)
        return value is None or type(value) in (bool, int, float, str)

    assert plain(state), state
    assert type(state["anneal_epochs"]) is int and type(state["_anneal_strategy"]) is str
    assert all(type(e["swa_lr"]) is float and type(e["lr"]) is float for e in optimizer.param_groups)
