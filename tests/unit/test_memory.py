"""Memory overhead: how many buffers each optimizer keeps, their shapes, and the step counter."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_optim import SGD, Adam, AdamW

SHAPES = [(10, 5), (5,), (3, 3, 3), ()]
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def make_entries(dtype):
    rng = np.random.default_rng(7)
    return [
        {"params": rng.standard_normal(s).astype(dtype), "grad": rng.standard_normal(s).astype(dtype)}
        for s in SHAPES
    ]


def run(cls, kwargs, dtype, steps=3):
    entries = make_entries(dtype)
    opt = cls(entries, **kwargs)
    for _ in range(steps):
        opt.step()
    return opt, entries


def per_parameter_state(opt):
    return {key: value for key, value in opt.state.items() if key != "step"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_without_momentum_keeps_no_buffers(dtype):
    opt, _ = run(SGD, {"lr": 0.1}, dtype)
    assert set(opt.state) == {"step"}
    assert opt.state_dict()["state"] == [{} for _ in SHAPES]


@pytest.mark.parametrize(
    "cls, kwargs, expected",
    [
        pytest.param(SGD, {"momentum": 0.9}, {"momentum_buffer"}, id="SGD-momentum"),
        pytest.param(SGD, {"momentum": 0.9, "nesterov": True}, {"momentum_buffer"}, id="SGD-nesterov"),
        pytest.param(Adam, {}, {"exp_avg", "exp_avg_sq"}, id="Adam"),
        pytest.param(AdamW, {}, {"exp_avg", "exp_avg_sq"}, id="AdamW"),
        pytest.param(Adam, {"amsgrad": True}, {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, id="Adam-amsgrad"),
        pytest.param(AdamW, {"amsgrad": True}, {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, id="AdamW-amsgrad"),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_buffers_per_parameter_exact_count_shape_and_dtype(cls, kwargs, expected, dtype):
    opt, entries = run(cls, kwargs, dtype)
    state = per_parameter_state(opt)
    assert sorted(state) == list(range(len(entries))), "one state slot per parameter, no more"
    for index, entry in enumerate(entries):
        buffers = state[index]
        assert set(buffers) == expected, f"params[{index}]: {sorted(buffers)}"
        assert len(buffers) == len(expected)
        for name, buf in buffers.items():
            assert isinstance(buf, np.ndarray), name
            assert buf.shape == entry["params"].shape and buf.dtype == entry["params"].dtype, name
            assert not np.shares_memory(buf, entry["params"]) and not np.shares_memory(buf, entry["grad"])
    # distinct buffers, not one array shared between names or parameters
    all_buffers = [buf for buffers in state.values() for buf in buffers.values()]
    for i, a in enumerate(all_buffers):
        for b in all_buffers[i + 1 :]:
            assert not np.shares_memory(a, b)
    total = sum(buf.size for buf in all_buffers)
    assert total == len(expected) * sum(e["params"].size for e in entries)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        pytest.param(SGD, {}, id="SGD"),
        pytest.param(SGD, {"momentum": 0.9}, id="SGD-momentum"),
        pytest.param(Adam, {}, id="Adam"),
        pytest.param(AdamW, {"amsgrad": True}, id="AdamW-amsgrad"),
    ],
)
def test_exactly_one_step_counter_an_int_not_per_parameter(cls, kwargs):
    opt, entries = run(cls, kwargs, np.float64, steps=5)
    counters = [key for key in opt.state if key == "step"]
    assert counters == ["step"]
    assert type(opt.state["step"]) is int and opt.state["step"] == 5
    for index in range(len(entries)):
        assert "step" not in opt.state.get(index, {}), f"params[{index}] has its own step counter"
    assert type(opt.state_dict()["step"]) is int


def test_buffers_are_created_lazily_on_first_step():
    entries = make_entries(np.float64)
    opt = Adam(entries)
    assert opt.state == {"step": 0}
    opt.step()
    assert len(per_parameter_state(opt)) == len(entries)
