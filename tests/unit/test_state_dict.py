"""state_dict / load_state_dict: snapshots, plain contents, bitwise resumption.

The refusals of load_state_dict (entry count, shapes, dtypes, keys, hyperparameters,
buffer names; nothing changes) are in test_validation.py::test_refused_load_state_dict_changes_nothing.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpy_optim import SGD, Adam, AdamW, WarmupCosineScheduler

CONFIGS = [
    pytest.param(SGD, {"lr": 0.05}, id="SGD"),
    pytest.param(SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, id="SGD-momentum"),
    pytest.param(SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}, id="SGD-nesterov"),
    pytest.param(Adam, {"lr": 0.01}, id="Adam"),
    pytest.param(Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}, id="Adam-amsgrad"),
    pytest.param(AdamW, {"lr": 0.01, "weight_decay": 0.1}, id="AdamW"),
    pytest.param(AdamW, {"lr": 0.01, "amsgrad": True, "maximize": True}, id="AdamW-amsgrad-maximize"),
]
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]
SHAPES = [(4, 3), (5,), ()]


def make_entries(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [{"params": rng.standard_normal(s).astype(dtype), "grad": np.zeros(s, dtype)} for s in SHAPES]


def gradients(dtype, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def run(opt, grads):
    for step_grads in grads:
        for entry, g in zip(opt.param_groups, step_grads):
            entry["grad"][...] = g
        opt.step()


def assert_state_bitwise_equal(a, b, where=""):
    assert a["step"] == b["step"], where
    keys_a = {k for k in a if k != "step" and a[k]}
    keys_b = {k for k in b if k != "step" and b[k]}
    assert keys_a == keys_b, where
    for key in keys_a:
        assert set(a[key]) == set(b[key]), f"{where} state[{key}]"
        for name in a[key]:
            x, y = a[key][name], b[key][name]
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), (
                f"{where} state[{key}][{name!r}] differs"
            )


# ----- snapshot semantics ----------------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_state_dict_is_a_snapshot_unaffected_by_later_steps(cls, kwargs):
    opt = cls(make_entries(np.float64), **kwargs)
    run(opt, gradients(np.float64, 3))
    saved = opt.state_dict()
    frozen = copy.deepcopy(saved)
    for index, buffers in enumerate(saved["state"]):
        for name, array in buffers.items():
            assert not np.shares_memory(array, opt.state[index][name]), f"state[{index}][{name!r}] aliases"
    run(opt, gradients(np.float64, 2, seed=5))
    opt.lr = 0.123
    opt.param_groups[0]["lr"] = 0.5
    assert saved["step"] == frozen["step"] == 3
    assert saved["defaults"] == frozen["defaults"]
    assert saved["param_groups"] == frozen["param_groups"] == [{}, {}, {}]
    for index, buffers in enumerate(frozen["state"]):
        for name, array in buffers.items():
            assert saved["state"][index][name].tobytes() == array.tobytes(), f"state[{index}][{name!r}] changed"


def test_mutating_a_saved_state_dict_does_not_touch_the_optimizer():
    opt = Adam(make_entries(np.float64))
    run(opt, gradients(np.float64, 2))
    live = opt.state[0]["exp_avg"].copy()
    saved = opt.state_dict()
    saved["state"][0]["exp_avg"][...] = 99.0
    saved["defaults"]["betas"][0] = 0.0
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], live)
    assert opt.defaults["betas"] == (0.9, 0.999)


def test_load_state_dict_copies_arrays_so_the_source_stays_independent():
    source = SGD(make_entries(np.float64), momentum=0.9)
    run(source, gradients(np.float64, 2))
    saved = source.state_dict()
    target = SGD(make_entries(np.float64), momentum=0.9)
    target.load_state_dict(saved)
    expected = target.state[0]["momentum_buffer"].copy()
    saved["state"][0]["momentum_buffer"][...] = -1.0
    np.testing.assert_array_equal(target.state[0]["momentum_buffer"], expected)
    assert not np.shares_memory(target.state[1]["momentum_buffer"], saved["state"][1]["momentum_buffer"])


PLAIN_SCALARS = (int, float, bool, str, type(None))


def assert_plain(value, path="state_dict"):
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) in (str, int), f"{path}: key {key!r} of type {type(key).__name__}"
            assert_plain(item, f"{path}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain(item, f"{path}[{index}]")
    elif isinstance(value, np.ndarray):
        assert type(value) is np.ndarray and value.dtype.kind == "f", path
    else:
        assert type(value) in PLAIN_SCALARS, f"{path}: {value!r} is a {type(value).__name__}"


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_state_dict_holds_only_plain_dicts_lists_ndarrays_and_python_scalars(cls, kwargs):
    entries = make_entries(np.float32)
    entries[1]["lr"] = np.float64(0.001)  # NumPy scalars in overrides come out as Python floats
    if cls is not SGD:
        entries[2]["betas"] = (np.float32(0.5), 0.9)
        entries[2]["amsgrad"] = np.bool_(True)
    opt = cls(entries, **kwargs)
    run(opt, gradients(np.float32, 2))
    saved = opt.state_dict()
    assert set(saved) == {"class", "step", "defaults", "param_groups", "state", "initial_lrs"}
    assert type(saved["step"]) is int and saved["step"] == 2
    assert_plain(saved)
    assert len(saved["param_groups"]) == len(saved["state"]) == len(saved["initial_lrs"]) == len(SHAPES)
    assert saved["param_groups"][1] == {"lr": pytest.approx(0.001)}


# ----- save, continue, load, continue: bitwise ---------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 5], ids=lambda k: f"k={k}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_save_continue_load_continue_is_bitwise_identical(cls, kwargs, dtype, k):
    n = 4
    grads = gradients(dtype, k + n)
    original = cls(make_entries(dtype), **kwargs)
    run(original, grads[:k])
    saved = original.state_dict()
    params_at_k = [e["params"].copy() for e in original.param_groups]
    run(original, grads[k:])

    # a fresh optimizer on copies of the parameters at step k, built with other hyperparameters:
    # load_state_dict must restore those too
    fresh_entries = [{"params": p.copy(), "grad": np.zeros_like(p)} for p in params_at_k]
    other = {**kwargs, "lr": 0.9}
    resumed = cls(fresh_entries, **other)
    resumed.load_state_dict(saved)
    assert resumed.defaults == original.defaults
    run(resumed, grads[k:])

    where = f"{cls.__name__} {kwargs} {np.dtype(dtype).name} k={k} n={n}"
    for i, (a, b) in enumerate(zip(original.param_groups, resumed.param_groups)):
        assert a["params"].dtype == b["params"].dtype == dtype
        assert a["params"].tobytes() == b["params"].tobytes(), f"{where}: params[{i}] differ"
    assert_state_bitwise_equal(original.state, resumed.state, where)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_resumption_restores_per_entry_overrides(cls, kwargs):
    grads = gradients(np.float64, 6)
    entries = make_entries(np.float64)
    entries[0]["lr"] = 0.001
    entries[2]["weight_decay"] = 0.0
    original = cls(entries, **kwargs)
    run(original, grads[:3])
    saved = original.state_dict()
    fresh = cls([{"params": e["params"].copy(), "grad": np.zeros_like(e["params"])} for e in entries], **kwargs)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == 0.001 and fresh.param_groups[2]["weight_decay"] == 0.0
    assert "lr" not in fresh.param_groups[1]
    run(original, grads[3:])
    run(fresh, grads[3:])
    for a, b in zip(original.param_groups, fresh.param_groups):
        assert a["params"].tobytes() == b["params"].tobytes()


@given(
    k=st.integers(0, 8),
    n=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    config=st.sampled_from([c.values for c in CONFIGS]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_resumption_is_bitwise_for_random_split_points(k, n, seed, config, dtype):
    cls, kwargs = config
    grads = gradients(dtype, k + n, seed=seed)
    original = cls(make_entries(dtype, seed=seed % 7), **kwargs)
    run(original, grads[:k])
    saved = original.state_dict()
    resumed = cls([{"params": e["params"].copy(), "grad": np.zeros_like(e["params"])}
                   for e in original.param_groups], **kwargs)
    run(original, grads[k:])
    resumed.load_state_dict(saved)
    run(resumed, grads[k:])
    for a, b in zip(original.param_groups, resumed.param_groups):
        assert a["params"].tobytes() == b["params"].tobytes()
    assert_state_bitwise_equal(original.state, resumed.state)


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_state_dict_of_a_loaded_optimizer_equals_what_was_loaded(cls, kwargs):
    source = cls(make_entries(np.float64), **kwargs)
    run(source, gradients(np.float64, 3))
    saved = source.state_dict()
    target = cls(make_entries(np.float64, seed=3), **kwargs)
    target.load_state_dict(saved)
    again = target.state_dict()
    assert again["step"] == saved["step"] and again["defaults"] == saved["defaults"]
    assert again["param_groups"] == saved["param_groups"]
    for a, b in zip(again["state"], saved["state"]):
        assert a.keys() == b.keys()
        assert all(a[name].tobytes() == b[name].tobytes() for name in a)


def test_load_state_dict_without_buffers_resets_sgd_momentum_to_first_step():
    # a snapshot taken before any step has no buffer: the next step copies the gradient
    x = np.array([3.0])
    opt = SGD([{"params": x, "grad": np.array([6.0])}], lr=0.1, momentum=0.9)
    saved = opt.state_dict()
    opt.step()
    opt.load_state_dict(saved)
    assert opt.state == {"step": 0}
    opt.step()
    assert opt.state[0]["momentum_buffer"][0] == 6.0  # v1 = g1, not 0.9 * 6 + 6


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_resumption_with_a_scheduler_and_an_entry_lr_is_bitwise_identical(cls, kwargs):
    # The scheduler scales an entry's own lr relative to its lr when the optimizer was built;
    # a fresh optimizer built without that override must get it back from the snapshot.
    schedule = WarmupCosineScheduler(max_lr=0.05, min_lr=0.001, warmup_steps=3, total_steps=10)
    grads = gradients(np.float64, 10)
    entries = make_entries(np.float64)
    entries[1]["lr"] = 0.002
    original = cls(entries, **kwargs)

    def run_scheduled(opt, steps):
        for t in steps:
            schedule.step(opt, t)
            for entry, g in zip(opt.param_groups, grads[t]):
                entry["grad"][...] = g
            opt.step()

    run_scheduled(original, range(5))
    saved = original.state_dict()
    fresh = cls([{"params": e["params"].copy(), "grad": np.zeros_like(e["params"])} for e in entries], **kwargs)
    fresh.load_state_dict(saved)
    run_scheduled(original, range(5, 10))
    run_scheduled(fresh, range(5, 10))
    assert fresh.param_groups[1]["lr"] == original.param_groups[1]["lr"]
    for a, b in zip(original.param_groups, fresh.param_groups):
        assert a["params"].tobytes() == b["params"].tobytes()


@pytest.mark.parametrize(
    ("make", "drop"),
    [
        (lambda e: Adam(e, lr=0.1), "exp_avg_sq"),
        (lambda e: Adam(e, lr=0.1, amsgrad=True), "max_exp_avg_sq"),
        (lambda e: AdamW(e, lr=0.1), "exp_avg"),
    ],
    ids=["adam-without-exp_avg_sq", "amsgrad-without-max", "adamw-without-exp_avg"],
)
def test_load_state_dict_refuses_an_incomplete_set_of_buffers(make, drop):
    entries = [{"params": np.ones(3), "grad": np.full(3, 0.5)}]
    optimizer = make(entries)
    optimizer.step()
    saved = optimizer.state_dict()
    del saved["state"][0][drop]
    before = optimizer.state_dict()
    with pytest.raises(ValueError, match=drop):
        optimizer.load_state_dict(saved)
    after = optimizer.state_dict()
    for name, array in before["state"][0].items():
        np.testing.assert_array_equal(after["state"][0][name], array)
