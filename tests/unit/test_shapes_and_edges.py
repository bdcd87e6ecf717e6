"""Shapes and edge cases: empty lists, 0-d parameters, mixed shapes, zero_grad, views, dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_optim import SGD, Adam, AdamW

CONFIGS = [
    pytest.param(SGD, {"lr": 0.1}, id="SGD"),
    pytest.param(SGD, {"lr": 0.1, "momentum": 0.9}, id="SGD-momentum"),
    pytest.param(SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, id="SGD-nesterov"),
    pytest.param(Adam, {"lr": 0.01}, id="Adam"),
    pytest.param(Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}, id="Adam-amsgrad-L2"),
    pytest.param(AdamW, {"lr": 0.01, "weight_decay": 0.1}, id="AdamW"),
]
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def gradient_sequence(shape, dtype, steps, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


# ----- empty parameter list ---------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_empty_parameter_list_constructs_and_steps(cls, kwargs):
    opt = cls([], **kwargs)
    for _ in range(3):
        opt.step()
    opt.zero_grad()
    assert opt.state == {"step": 3}
    assert opt.param_groups == []
    assert opt.state_dict()["state"] == []


# ----- a single 0-d parameter ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_scalar_0d_parameter_updated_in_place_and_matches_1_element_array(cls, kwargs, dtype):
    x = np.array(1.5, dtype=dtype)
    g = np.array(0.0, dtype=dtype)
    entry = {"params": x, "grad": g}
    opt = cls([entry], **kwargs)
    y = np.array([1.5], dtype=dtype)  # the same problem as a 1-element array
    gy = np.zeros(1, dtype=dtype)
    reference = cls([{"params": y, "grad": gy}], **kwargs)
    for step, value in enumerate([0.5, -1.25, 2.0, 0.0, 3.5]):
        g[...] = value
        gy[...] = value
        opt.step()
        reference.step()
        assert entry["params"] is x, f"step {step}: the parameter array was replaced"
        assert isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype == dtype
        assert x.tobytes() == y[0].tobytes(), f"step {step}: 0-d {x!r} vs 1-element {y!r}"
        for name, buf in opt.state.get(0, {}).items():
            assert isinstance(buf, np.ndarray) and buf.shape == () and buf.dtype == dtype, name
            assert buf.tobytes() == reference.state[0][name].tobytes(), name
    assert float(x) != 1.5


def test_scalar_parameter_sgd_hand_computed():
    x = np.array(3.0)
    SGD([{"params": x, "grad": np.array(6.0)}], lr=0.1).step()
    assert x.shape == () and float(x) == pytest.approx(2.4, rel=1e-15)


# ----- several shapes in one step ----------------------------------------------------------------

SHAPES = [(10, 5), (5,), (3, 3, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_shapes_10x5_5_3x3x3_updated_in_one_step_like_separate_optimizers(cls, kwargs, dtype):
    rng = np.random.default_rng(3)
    inits = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [gradient_sequence(s, dtype, 4, seed=10 + i) for i, s in enumerate(SHAPES)]
    together = [{"params": p.copy(), "grad": np.zeros_like(p)} for p in inits]
    alone = [[{"params": p.copy(), "grad": np.zeros_like(p)}] for p in inits]
    opt = cls(together, **kwargs)
    singles = [cls(entries, **kwargs) for entries in alone]
    for step in range(4):
        for i in range(len(SHAPES)):
            together[i]["grad"][...] = grads[i][step]
            alone[i][0]["grad"][...] = grads[i][step]
        opt.step()
        for single in singles:
            single.step()
        for i, shape in enumerate(SHAPES):
            p = together[i]["params"]
            assert p.shape == shape and p.dtype == dtype
            np.testing.assert_array_equal(
                p, alone[i][0]["params"], err_msg=f"{cls.__name__} {kwargs} step {step} shape {shape}"
            )
    for i in range(len(SHAPES)):
        assert not np.array_equal(together[i]["params"], inits[i])


def test_shapes_sgd_each_entry_hand_computed():
    params = [np.full(s, 2.0) for s in SHAPES]
    grads = [np.full(s, float(i + 1)) for i, s in enumerate(SHAPES)]
    SGD([{"params": p, "grad": g} for p, g in zip(params, grads)], lr=0.1).step()
    for i, p in enumerate(params):
        np.testing.assert_allclose(p, 2.0 - 0.1 * (i + 1), rtol=1e-15)


# ----- zero_grad ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_zero_grad_zeros_every_gradient_in_place(cls, kwargs, dtype):
    rng = np.random.default_rng(4)
    entries = [
        {"params": rng.standard_normal(s).astype(dtype), "grad": rng.standard_normal(s).astype(dtype)}
        for s in SHAPES + [()]
    ]
    grads = [e["grad"] for e in entries]
    params_before = [e["params"].copy() for e in entries]
    opt = cls(entries, **kwargs)
    opt.zero_grad()
    for entry, grad, before in zip(entries, grads, params_before):
        assert entry["grad"] is grad  # same array object
        assert grad.shape == before.shape and grad.dtype == dtype
        np.testing.assert_array_equal(grad, 0)
        np.testing.assert_array_equal(entry["params"], before)  # parameters untouched


def test_zero_grad_reaches_gradients_seen_through_views():
    flat = np.arange(1.0, 13.0)
    grad_view = flat[:6].reshape(2, 3)
    opt = SGD([{"params": np.zeros((2, 3)), "grad": grad_view}])
    opt.zero_grad()
    np.testing.assert_array_equal(flat[:6], 0)
    np.testing.assert_array_equal(flat[6:], np.arange(7.0, 13.0))


# ----- in-place updates through views -------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
@pytest.mark.parametrize(
    "make_view",
    [
        pytest.param(lambda big: big[1:4, 2], id="strided-column"),
        pytest.param(lambda big: big.T, id="transposed"),
        pytest.param(lambda big: big[::-1, ::2], id="reversed-every-other"),
        pytest.param(lambda big: big[2, 3, ...], id="0d-element"),
    ],
)
def test_update_is_visible_through_a_view_of_other_memory(cls, kwargs, make_view):
    rng = np.random.default_rng(5)
    big = rng.standard_normal((5, 6))
    view = make_view(big)
    assert np.shares_memory(view, big)
    mask = np.zeros(big.shape, dtype=bool)
    make_view(mask)[...] = True
    outside = big[~mask].copy()
    original = view.copy()
    contiguous = view.copy()
    grad = rng.standard_normal(view.shape)
    opt = cls([{"params": view, "grad": grad}], **kwargs)
    reference = cls([{"params": contiguous, "grad": grad.copy()}], **kwargs)
    opt.step()
    reference.step()
    np.testing.assert_array_equal(make_view(big), contiguous)  # the owner sees the update
    np.testing.assert_array_equal(big[~mask], outside)  # and nothing else moved
    assert np.all(make_view(big) != original)  # it did move


# ----- dtypes are preserved ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_dtype_of_parameters_and_state_is_preserved(cls, kwargs, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2)).astype(dtype)
    g = np.zeros_like(x)
    # hyperparameters given as NumPy float64 scalars must not promote float32 arrays (NumPy 2)
    np_kwargs = {k: (np.float64(v) if isinstance(v, float) else v) for k, v in kwargs.items()}
    entry_override = {"lr": np.float64(0.001)}
    y = rng.standard_normal(4).astype(dtype)
    opt = cls([{"params": x, "grad": g}, {"params": y, "grad": np.ones_like(y), **entry_override}], **np_kwargs)
    for _ in range(3):
        g[...] = rng.standard_normal(x.shape)
        opt.step()
    assert x.dtype == dtype and y.dtype == dtype
    for index in (0, 1):
        for name, buf in opt.state.get(index, {}).items():
            assert buf.dtype == dtype, f"state[{index}][{name!r}] is {buf.dtype}"
    for entry in opt.state_dict()["state"]:
        for name, buf in entry.items():
            assert buf.dtype == dtype, name
