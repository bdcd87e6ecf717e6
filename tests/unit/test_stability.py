"""Numerical stability: tiny and huge gradients, 10,000 steps, zero gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numpy_optim import SGD, Adam, AdamW

DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]
ADAMS = [
    pytest.param(Adam, {}, id="Adam"),
    pytest.param(Adam, {"amsgrad": True}, id="Adam-amsgrad"),
    pytest.param(AdamW, {"weight_decay": 0.1}, id="AdamW"),
    pytest.param(Adam, {"weight_decay": 0.1}, id="Adam-L2"),
]


# ----- very small and very large gradients ---------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("magnitude", [1e-10, 1e6], ids=["g=1e-10", "g=1e6"])
@pytest.mark.parametrize("cls, kwargs", ADAMS)
def test_adam_extreme_gradients_stay_finite_and_step_at_most_lr(cls, kwargs, magnitude, dtype):
    rng = np.random.default_rng(0)
    lr = 1e-3
    x = rng.uniform(-1, 1, size=(4, 6)).astype(dtype)
    g = np.zeros_like(x)
    opt = cls([{"params": x, "grad": g}], lr=lr, **kwargs)
    lam = opt.defaults["weight_decay"]
    decoupled = cls is AdamW
    for step in range(1, 51):
        # constant magnitude, random signs: |m_hat| <= |g| and v_hat = g**2, so |step| <= lr
        g[...] = magnitude * rng.choice([-1.0, 1.0], size=x.shape)
        before = x.astype(np.float64)
        opt.step()
        assert np.all(np.isfinite(x)), f"{cls.__name__} {kwargs} step {step}: non-finite parameter"
        for name, buf in opt.state[0].items():
            assert np.all(np.isfinite(buf)), f"{cls.__name__} step {step}: non-finite {name}"
        adam_part = x.astype(np.float64) - (before * (1 - lr * lam) if decoupled else before)
        bound = lr * (1 + 1e-5) + 4 * float(np.finfo(dtype).eps) * np.max(np.abs(before))
        if not (lam and not decoupled):  # Adam + L2 adds lam*theta to g: no clean bound
            assert np.max(np.abs(adam_part)) <= bound, f"{cls.__name__} {kwargs} step {step}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_tiny_gradient_step_is_damped_by_eps(dtype):
    x = np.array([1.0], dtype=dtype)
    Adam([{"params": x, "grad": np.array([1e-10], dtype=dtype)}], lr=1e-3).step()
    # m_hat = 1e-10, sqrt(v_hat) = 1e-10: step = 1e-3 * 1e-10 / (1e-10 + 1e-8) = 1e-3 / 101
    assert 1.0 - float(x[0]) == pytest.approx(1e-3 / 101, rel=1e-4 if dtype == np.float64 else 1e-2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_huge_gradient_step_is_limited_to_lr(dtype):
    x = np.array([1.0], dtype=dtype)
    Adam([{"params": x, "grad": np.array([1e6], dtype=dtype)}], lr=1e-3).step()
    # SGD would move by lr * 1e6 = 1000; Adam's normalisation gives lr * 1e6 / (1e6 + 1e-8).
    assert 1.0 - float(x[0]) == pytest.approx(1e-3, rel=1e-6 if dtype == np.float64 else 1e-4)


# ----- 10,000 steps ----------------------------------------------------------------------


def test_bias_correction_factors_approach_one_after_10000_steps():
    beta1, beta2 = 0.9, 0.999
    g_value, lr = 0.5, 1e-3
    x = np.array([10.0, -10.0])
    g = np.full(2, g_value)
    opt = Adam([{"params": x, "grad": g}], lr=lr, betas=(beta1, beta2))
    steps = []
    for _ in range(10_000):
        before = x.copy()
        opt.step()
        steps.append(before - x)
    t = opt.state["step"]
    assert t == 10_000
    # With a constant gradient m_t = g (1 - beta1^t) and v_t = g^2 (1 - beta2^t): the stored
    # moments reveal the bias-correction factors, which must be close to 1 by now.
    m, v = opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"]
    bc1, bc2 = m / g_value, v / g_value**2
    np.testing.assert_allclose(bc1, 1 - beta1**t, rtol=1e-12)
    np.testing.assert_allclose(bc2, 1 - beta2**t, rtol=1e-9)
    assert np.all(np.abs(bc1 - 1) < 1e-12)
    assert np.all(np.abs(bc2 - 1) < 5e-5)  # 0.999**10000 = 4.5e-5
    # Early on the factors are far from 1 (0.1 and 0.001 at t = 1)...
    assert 1 - beta1**1 == pytest.approx(0.1) and 1 - beta2**1 == pytest.approx(0.001)
    # ...and the correction then matters: uncorrected, the first step would be 3.16 lr.
    # At t = 10000 the uncorrected step lr * m / sqrt(v) is within 3e-5 of the corrected one.
    uncorrected = lr * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(uncorrected, lr, rtol=3e-5)
    # Every step on a constant gradient is lr * g / (|g| + eps) ~ lr, the last one included.
    np.testing.assert_allclose(steps[-1], lr, rtol=1e-7)
    np.testing.assert_allclose(np.array(steps), lr, rtol=1e-6)
    assert np.all(np.isfinite(x))


# ----- zero gradient -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"momentum": 0.9, "dampening": 0.3}],
    ids=["plain", "momentum", "nesterov", "dampening"],
)
def test_sgd_zero_gradient_produces_no_update_bitwise(kwargs, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)).astype(dtype)
    x0 = x.copy()
    g = np.zeros_like(x)
    opt = SGD([{"params": x, "grad": g}], lr=0.1, **kwargs)
    for _ in range(5):
        opt.step()
    np.testing.assert_array_equal(x, x0)
    if "momentum" in kwargs:
        np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
def test_adam_moments_decay_toward_zero_under_zero_gradient(cls, dtype):
    beta1, beta2 = 0.9, 0.999
    rng = np.random.default_rng(2)
    x = rng.standard_normal(8).astype(dtype)
    g = rng.standard_normal(8).astype(dtype)
    opt = cls([{"params": x, "grad": g}], betas=(beta1, beta2), weight_decay=0.0)
    for _ in range(3):
        opt.step()
    g[...] = 0
    rtol = 4 * float(np.finfo(dtype).eps)
    m_start = opt.state[0]["exp_avg"].astype(np.float64)
    v_start = opt.state[0]["exp_avg_sq"].astype(np.float64)
    norms = []
    for _ in range(20):
        m_prev = opt.state[0]["exp_avg"].copy()
        v_prev = opt.state[0]["exp_avg_sq"].copy()
        opt.step()
        # m_t = beta1 m_{t-1}, v_t = beta2 v_{t-1} when g = 0
        np.testing.assert_allclose(opt.state[0]["exp_avg"], beta1 * m_prev, rtol=rtol)
        np.testing.assert_allclose(opt.state[0]["exp_avg_sq"], beta2 * v_prev, rtol=rtol)
        norms.append(np.abs(opt.state[0]["exp_avg"]).max())
    assert all(b < a for a, b in zip(norms, norms[1:]))
    np.testing.assert_allclose(opt.state[0]["exp_avg"], beta1**20 * m_start, rtol=20 * rtol)
    np.testing.assert_allclose(opt.state[0]["exp_avg_sq"], beta2**20 * v_start, rtol=20 * rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_still_applies_weight_decay_with_zero_gradient(dtype):
    lr, lam = 0.01, 0.1
    x = np.array([3.0, -2.0, 0.5], dtype=dtype)
    x0 = x.astype(np.float64)
    g = np.zeros_like(x)
    opt = AdamW([{"params": x, "grad": g}], lr=lr, weight_decay=lam)
    opt.step()
    # moments are zero, so the Adam part is 0 and theta shrinks by exactly (1 - lr * lam)
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], 0)
    np.testing.assert_array_equal(opt.state[0]["exp_avg_sq"], 0)
    expected_one = (x0 * (1 - lr * lam)).astype(dtype)
    np.testing.assert_array_equal(x, expected_one)  # one rounding of theta * 0.999
    for _ in range(99):
        opt.step()
    np.testing.assert_allclose(x, x0 * (1 - lr * lam) ** 100, rtol=100 * float(np.finfo(dtype).eps))
    assert np.all(np.abs(x) < np.abs(x0))


@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
def test_adam_without_decay_zero_gradient_from_start_moves_nothing(cls):
    x = np.array([3.0, -2.0])
    opt = cls([{"params": x, "grad": np.zeros(2)}], weight_decay=0.0)
    for _ in range(10):
        opt.step()
    np.testing.assert_array_equal(x, [3.0, -2.0])
    assert math.isfinite(float(opt.state[0]["exp_avg_sq"].sum()))
