"""Single-step correctness: the specification's hand-computed values.

The oracle is arithmetic done by hand (the specification's numbers), never the library's
own output. f(x) = x**2 throughout, so the gradient is 2x.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpy_optim import SGD, Adam, AdamW

DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def one_entry(x0: float, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    x = np.array([x0], dtype=dtype)
    g = 2 * x  # f(x) = x**2
    return x, g, [{"params": x, "grad": g}]


# ----- SGD ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_basic_step_hand_computed(dtype):
    x, g, params = one_entry(3.0, dtype)
    SGD(params, lr=0.1).step()
    # x1 = 3.0 - 0.1 * 6 = 2.4
    assert x[0] == pytest.approx(2.4, rel=4 * float(np.finfo(dtype).eps))
    assert x.dtype == dtype


def test_sgd_basic_step_is_exactly_x_minus_lr_g():
    x, g, params = one_entry(3.0)
    SGD(params, lr=0.1).step()
    assert x[0] == 3.0 - 0.1 * 6.0  # one rounding, as IEEE x - lr*g


def test_sgd_momentum_two_steps_hand_computed():
    x, g, params = one_entry(3.0)
    opt = SGD(params, lr=0.1, momentum=0.9)

    opt.step()
    # Step 1: v1 = 0 + 6 = 6, x1 = 3.0 - 0.1 * 6 = 2.4
    assert opt.state[0]["momentum_buffer"][0] == 6.0
    assert x[0] == pytest.approx(2.4, rel=1e-15)

    g[...] = 2 * x  # g2 = 4.8
    assert g[0] == pytest.approx(4.8, rel=1e-15)
    opt.step()
    # Step 2: v2 = 0.9 * 6 + 4.8 = 10.2, x2 = 2.4 - 0.1 * 10.2 = 1.38
    assert opt.state[0]["momentum_buffer"][0] == pytest.approx(10.2, rel=1e-15)
    assert x[0] == pytest.approx(1.38, rel=1e-14)


def test_sgd_momentum_first_step_skips_dampening_like_torch():
    # torch copies the first gradient into the buffer; dampening applies from step 2 on.
    x, g, params = one_entry(3.0)
    opt = SGD(params, lr=0.1, momentum=0.9, dampening=0.5)
    opt.step()
    assert opt.state[0]["momentum_buffer"][0] == 6.0  # not 0.5 * 6
    g[...] = 4.8
    opt.step()
    # v2 = 0.9 * 6 + (1 - 0.5) * 4.8 = 7.8
    assert opt.state[0]["momentum_buffer"][0] == pytest.approx(7.8, rel=1e-15)
    assert x[0] == pytest.approx(2.4 - 0.78, rel=1e-14)


def test_sgd_nesterov_two_steps_hand_computed():
    x, g, params = one_entry(3.0)
    opt = SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    opt.step()
    # v1 = 6; update direction g + mu v1 = 6 + 5.4 = 11.4; x1 = 3 - 1.14 = 1.86
    assert x[0] == pytest.approx(1.86, rel=1e-15)
    g[...] = 2 * x  # 3.72
    opt.step()
    # v2 = 0.9 * 6 + 3.72 = 9.12; direction 3.72 + 0.9 * 9.12 = 11.928; x2 = 1.86 - 1.1928
    assert opt.state[0]["momentum_buffer"][0] == pytest.approx(9.12, rel=1e-14)
    assert x[0] == pytest.approx(0.6672, rel=1e-13)


def test_sgd_weight_decay_and_maximize_hand_computed():
    x, g, params = one_entry(3.0)
    SGD(params, lr=0.1, weight_decay=0.5, maximize=True).step()
    # g' = -6 + 0.5 * 3 = -4.5; x1 = 3 + 0.45 = 3.45
    assert x[0] == pytest.approx(3.45, rel=1e-15)


# ----- Adam ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_single_step_hand_computed(dtype):
    x = np.array([3.0], dtype=dtype)
    g = np.array([6.0], dtype=dtype)
    opt = Adam([{"params": x, "grad": g}], lr=0.001, betas=(0.9, 0.999), eps=1e-8)
    opt.step()
    tol = 8 * float(np.finfo(dtype).eps)
    # m1 = 0.1 * 6 = 0.6; v1 = 0.001 * 36 = 0.036
    assert opt.state[0]["exp_avg"][0] == pytest.approx(0.6, rel=tol)
    assert opt.state[0]["exp_avg_sq"][0] == pytest.approx(0.036, rel=tol)
    # m_hat = 6, v_hat = 36; x1 = 3 - 0.001 * 6 / (6 + 1e-8) = 2.999 (to ~2e-12)
    assert x[0] == pytest.approx(3.0 - 0.001 * 6.0 / (6.0 + 1e-8), rel=tol)
    assert x[0] == pytest.approx(2.999, abs=1e-11 if dtype == np.float64 else 4e-7)
    assert opt.state["step"] == 1


@pytest.mark.parametrize(
    "betas", [(0.9, 0.999), (0.5, 0.9), (0.0, 0.99), (0.99, 0.999)], ids=lambda b: f"betas={b}"
)
def test_adam_bias_correction_at_t1_divides_by_one_minus_beta(betas):
    beta1, beta2 = betas
    x = np.array([3.0, -0.25, 1e-3])
    x0 = x.copy()
    g = np.array([6.0, 0.5, -2.0])
    lr, eps = 0.001, 1e-8
    opt = Adam([{"params": x, "grad": g}], lr=lr, betas=betas, eps=eps)
    opt.step()
    m, v = opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"]
    np.testing.assert_allclose(m, (1 - beta1) * g, rtol=1e-15)
    np.testing.assert_allclose(v, (1 - beta2) * g * g, rtol=1e-15)
    # m_hat = m / (1 - beta1), v_hat = v / (1 - beta2): for betas (0.9, 0.999), m/0.1 and v/0.001.
    m_hat = m / (1 - beta1)
    v_hat = v / (1 - beta2)
    np.testing.assert_allclose(m_hat, g, rtol=1e-14)
    np.testing.assert_allclose(v_hat, g * g, rtol=1e-14)
    expected_step = lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(x0 - x, expected_step, rtol=1e-12)
    # Without the correction the step would be lr * m / (sqrt(v) + eps), off by the factor
    # (1 - beta1) / sqrt(1 - beta2) (0.1 / 0.0316 = 3.16 for the defaults): visibly different.
    uncorrected = lr * m / (np.sqrt(v) + eps)
    factor = (1 - beta1) / math.sqrt(1 - beta2)
    np.testing.assert_allclose(uncorrected, factor * expected_step, rtol=1e-5)  # eps aside
    assert abs(factor - 1) > 0.5


def test_adam_bias_correction_default_betas_factors_0_1_and_0_001():
    x = np.array([3.0])
    g = np.array([6.0])
    opt = Adam([{"params": x, "grad": g}])
    opt.step()
    m, v = opt.state[0]["exp_avg"][0], opt.state[0]["exp_avg_sq"][0]
    assert m / 0.1 == pytest.approx(6.0, rel=1e-14)  # m_hat_1 = m_1 / 0.1
    assert v / 0.001 == pytest.approx(36.0, rel=1e-12)  # v_hat_1 = v_1 / 0.001
    assert 3.0 - x[0] == pytest.approx(0.001 * (m / 0.1) / (math.sqrt(v / 0.001) + 1e-8), rel=1e-12)


def test_adam_two_steps_hand_computed():
    x = np.array([3.0])
    g = np.array([6.0])
    opt = Adam([{"params": x, "grad": g}], lr=0.01)
    opt.step()
    x1 = 3.0 - 0.01 * 6.0 / (6.0 + 1e-8)
    g[...] = -2.0
    opt.step()
    m2 = 0.9 * 0.6 + 0.1 * -2.0  # 0.34
    v2 = 0.999 * 0.036 + 0.001 * 4.0  # 0.039964
    m_hat = m2 / (1 - 0.9**2)
    v_hat = v2 / (1 - 0.999**2)
    assert opt.state[0]["exp_avg"][0] == pytest.approx(m2, rel=1e-14)
    assert opt.state[0]["exp_avg_sq"][0] == pytest.approx(v2, rel=1e-14)
    assert x[0] == pytest.approx(x1 - 0.01 * m_hat / (math.sqrt(v_hat) + 1e-8), rel=1e-14)


@given(
    x0=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False).filter(lambda v: abs(v) > 1e-3),
    g=st.floats(-1e3, 1e3).filter(lambda v: abs(v) > 1e-6),
    lr=st.floats(1e-5, 1.0),
    beta1=st.floats(0.0, 0.999),
    beta2=st.floats(0.0, 0.9999),
)
def test_adam_first_step_is_lr_times_sign_of_gradient(x0, g, lr, beta1, beta2):
    # At t = 1, m_hat = g and v_hat = g**2 for any betas, so the step is lr * g / (|g| + eps).
    x = np.array([x0])
    Adam([{"params": x, "grad": np.array([g])}], lr=lr, betas=(beta1, beta2)).step()
    expected = x0 - lr * g / (abs(g) + 1e-8)
    assert x[0] == pytest.approx(expected, rel=1e-12, abs=1e-12 * lr)


# ----- AdamW: decoupled decay ---------------------------------------------------------


def test_adamw_decay_term_0_0003_applied_to_parameter_on_top_of_adam_update():
    lam, lr = 0.1, 0.001
    xw = np.array([3.0])
    adamw = AdamW([{"params": xw, "grad": np.array([6.0])}], lr=lr, weight_decay=lam)
    adamw.step()
    xa = np.array([3.0])
    Adam([{"params": xa, "grad": np.array([6.0])}], lr=lr).step()  # no decay at all
    # decay term: lr * lambda * theta = 0.001 * 0.1 * 3 = 0.0003, on top of the Adam step
    assert xa[0] - xw[0] == pytest.approx(0.0003, rel=1e-9)
    # x1 = 3 - 0.0003 - 0.001 * 6 / (6 + 1e-8) = 2.9987
    assert xw[0] == pytest.approx(3.0 - 0.0003 - 0.001 * 6.0 / (6.0 + 1e-8), rel=1e-15)
    assert xw[0] == pytest.approx(2.9987, abs=1e-11)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_decay_not_folded_into_gradient_moments_see_data_gradient_only(dtype):
    g = np.array([6.0], dtype=dtype)
    x = np.array([3.0], dtype=dtype)
    opt = AdamW([{"params": x, "grad": g}], weight_decay=0.1)
    opt.step()
    reference = Adam([{"params": np.array([3.0], dtype=dtype), "grad": g.copy()}])  # weight_decay 0
    reference.step()
    # exp_avg = 0.1 * g exactly as without decay: the decay never enters the moments.
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], reference.state[0]["exp_avg"])
    np.testing.assert_array_equal(opt.state[0]["exp_avg_sq"], reference.state[0]["exp_avg_sq"])
    assert opt.state[0]["exp_avg"][0] == pytest.approx(0.6, rel=8 * float(np.finfo(dtype).eps))


def test_adam_l2_folds_decay_into_gradient_unlike_adamw():
    # Adam + L2 with the same lambda: g' = 6 + 0.1 * 3 = 6.3 goes into both moments.
    x = np.array([3.0])
    opt = Adam([{"params": x, "grad": np.array([6.0])}], weight_decay=0.1)
    opt.step()
    assert opt.state[0]["exp_avg"][0] == pytest.approx(0.1 * 6.3, rel=1e-15)
    assert opt.state[0]["exp_avg_sq"][0] == pytest.approx(0.001 * 6.3**2, rel=1e-13)
    # ...and the adaptive normalisation swallows it: the first step is lr * 6.3 / 6.3.
    assert x[0] == pytest.approx(3.0 - 0.001 * 6.3 / (6.3 + 1e-8), rel=1e-15)
    xw = np.array([3.0])
    AdamW([{"params": xw, "grad": np.array([6.0])}], weight_decay=0.1).step()
    assert x[0] - xw[0] == pytest.approx(0.0003, rel=1e-6)


@given(
    theta=st.floats(-100, 100).filter(lambda v: abs(v) > 1e-3),
    g=st.floats(-100, 100).filter(lambda v: abs(v) > 1e-3),
    lr=st.floats(1e-4, 0.1),
    lam=st.floats(0.0, 1.0),
)
def test_adamw_first_step_equals_spec_formula(theta, g, lr, lam):
    # theta1 = theta0 - lr * (m_hat / (sqrt(v_hat) + eps) + lambda * theta0)
    x = np.array([theta])
    AdamW([{"params": x, "grad": np.array([g])}], lr=lr, weight_decay=lam).step()
    expected = theta - lr * (g / (abs(g) + 1e-8) + lam * theta)
    assert x[0] == pytest.approx(expected, rel=1e-12, abs=1e-13)


def test_adam_lerp_branch_follows_the_weight_rounded_to_the_dtype():
    # torch's lerp branches on |w| < 0.5 with w = 1 - beta1 already in the tensor's dtype:
    # 1 - (0.5 + 1e-9) is below 0.5 as a Python float but rounds to exactly 0.5 in float32.
    from numpy_optim.adam import adam_step

    kwargs = dict(step=1, lr=1e-3, beta1=0.5 + 1e-9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False,
                  maximize=False, decoupled_weight_decay=False)
    assert np.float32(1 - kwargs["beta1"]) == np.float32(0.5)
    assert adam_step(**kwargs, dtype=np.dtype(np.float32)).low_weight is False
    assert adam_step(**kwargs, dtype=np.dtype(np.float64)).low_weight is True
