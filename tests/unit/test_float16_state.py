"""Adam with float16 state against float32 state: where the float16 moments underflow, and what it does.

The oracles are hand derivations from float16's format. Its smallest positive value is
u = 2^-24, and below 2^-14 its values are the multiples of u, so a result of magnitude at
most u/2 = 2^-25 is stored as 0 (u/2 itself is a tie, which goes to the even 0). From that:

* v_1 = (1 - beta2) g^2 is 0 iff (1 - beta2) g^2 <= 2^-25, i.e. |g| <= 5.46e-3 for beta2 = 0.999.
  Every gradient of the problem (1e-4 ... 1e-7) is below this, so v stays 0.
* m in units of u follows m <- round_half_even(m + (k - m) / 10) for a gradient of k units.
  It is 0 for k <= 5 (|g| <= 2^-25 / (1 - beta1) = 2.98e-7), and it stalls 4-5 units short of k.
* With v = 0, the denominator sqrt(v_hat) + eps is eps. torch's eps 1e-8 is 0 in float16, so
  step 1 sends a parameter to -sign(g) inf, or to NaN where m_1 = 0 too. torch's single-tensor
  Adam on float16 (foreach=False) confirms this bit for bit in the one torch test.

The numbers run by numpy_optim.demo's float16_state.png are checked at the end.
"""

import contextlib
from fractions import Fraction

import numpy as np
import pytest

from numpy_optim import Adam, demo
from numpy_optim.verification import (
    FLOAT16_CONFIGS,
    FLOAT16_SCALES,
    FLOAT16_TINY,
    adam_float16_training,
    adam_moments_in_float16,
    float16_underflow_thresholds,
)

U = 2.0**-24  # float16's smallest subnormal
HALF_U = 2.0**-25


def fp16(values):
    return np.asarray(values, dtype=np.float64).astype(np.float16)


def m_in_units(k, steps):
    """m after ``steps`` steps of a constant gradient of k units, from the rounding rule alone:
    Python's round() on a Fraction rounds half to even, as float16 does."""
    m = 0
    for _ in range(steps):
        m = round(m + Fraction(k - m, 10))
    return m


def one_step(gradient, **kwargs):
    """(param, exp_avg, exp_avg_sq) after one Adam step from 0 on float16 parameters."""
    g = fp16(gradient)
    x, grad = np.zeros_like(g), g.copy()
    entries = [{"params": x, "grad": grad}]
    float16_eps = "state_dtype" not in kwargs and not kwargs.get("master_weights")
    if float16_eps and np.float16(kwargs.get("eps", 1e-8)) == 0:  # the library says so
        warned = pytest.warns(RuntimeWarning, match="rounds to 0 in float16")
    else:
        warned = contextlib.nullcontext()
    with warned, np.errstate(all="ignore"):
        optimizer = Adam(entries, **kwargs)
        optimizer.step()
    return x, optimizer.state[0]["exp_avg"], optimizer.state[0]["exp_avg_sq"]


# ----- the thresholds ------------------------------------------------------------------


def test_thresholds_are_half_the_smallest_subnormal_over_the_moment_weights():
    t = float16_underflow_thresholds()
    assert t["exp_avg"] == pytest.approx(2.0**-25 / 0.1, rel=1e-12)  # 2.98e-7 = 5 units
    assert t["exp_avg"] == pytest.approx(5 * U, rel=1e-12)
    assert t["exp_avg_sq"] == pytest.approx((2.0**-25 / 1e-3) ** 0.5, rel=1e-12)
    assert 5.45e-3 < t["exp_avg_sq"] < 5.47e-3
    assert t["squared_gradient"] == pytest.approx(2.0**-12.5, rel=1e-12)  # 1.73e-4: g^2 itself rounds to 0
    assert (t["exp_avg_subnormal"], t["exp_avg_sq_subnormal"]) == (2.0**-14, 2.0**-7)
    other = float16_underflow_thresholds((0.5, 0.99))
    assert other["exp_avg"] == pytest.approx(2.0**-25 / 0.5) and other["exp_avg_sq"] == pytest.approx(
        (2.0**-25 / 0.01) ** 0.5)


@pytest.mark.parametrize("betas, error", [((0.9,), TypeError), ((0.9, 1.0), ValueError), ((-0.1, 0.9), ValueError),
                                          (("0.9", 0.999), TypeError)])
def test_thresholds_refuse_bad_betas_naming_them(betas, error):
    with pytest.raises(error, match="beta"):
        float16_underflow_thresholds(betas)


# ----- where the float16 moments underflow ----------------------------------------------


def test_v_is_zero_after_one_step_exactly_when_one_minus_beta2_g_squared_is_at_most_2_to_minus_25():
    g = fp16(np.concatenate([np.logspace(-7, -1, 400), [5.45e-3, 5.455e-3, 5.46e-3, 5.47e-3]]))
    _, _, v = one_step(g)
    expected_zero = 1e-3 * g.astype(np.float64) ** 2 <= HALF_U
    wrong = np.flatnonzero((v == 0) != expected_zero)
    assert wrong.size == 0, (f"v_1 == 0 should hold exactly for |g| <= 5.46e-3; wrong at g = {g[wrong][:5]}, "
                             f"v = {v[wrong][:5]}")
    # just above the threshold, v_1 is one unit (0.001 * 5.47e-3^2 = 2.99e-8 is just above u/2)
    assert v[-1] == np.float16(U)


def test_v_stays_zero_for_every_gradient_of_the_problem_and_float32_state_holds_it():
    grads = FLOAT16_SCALES  # 1e-4 ... 1e-7
    half = adam_moments_in_float16(grads, steps=300)
    assert np.all(half["exp_avg_sq"] == 0), "v must stay 0: beta2 * 0 + (1 - beta2) g^2 rounds to 0 again"
    full = adam_moments_in_float16(grads, steps=300, state_dtype=np.float32)
    assert np.all(full["exp_avg_sq"] > 0) and np.all(full["exp_avg"] != 0)
    # float32 state: the exact EMA of a constant gradient, to float32 rounding
    np.testing.assert_allclose(full["exp_avg_sq"], (1 - 0.999**300) * full["gradient"] ** 2, rtol=1e-5)
    np.testing.assert_allclose(full["exp_avg"], (1 - 0.9**300) * full["gradient"], rtol=1e-5)
    np.testing.assert_allclose(full["exact_exp_avg_sq"], (1 - 0.999**300) * full["gradient"] ** 2, rtol=1e-15)


@pytest.mark.parametrize("steps", [1, 2, 3, 200])
def test_m_in_subnormal_units_follows_the_rounding_rule_and_is_zero_up_to_five_units(steps):
    ks = np.arange(1, 61)
    out = adam_moments_in_float16(ks * U, steps=steps)
    assert np.array_equal(out["gradient"], ks * U), "k units are exact float16 values"
    got = out["exp_avg"] / U
    expected = np.array([m_in_units(int(k), steps) for k in ks])
    wrong = np.flatnonzero(got != expected)
    assert wrong.size == 0, (f"after {steps} step(s), m of a gradient of k units: k = {ks[wrong][:6]}, "
                             f"got {got[wrong][:6]} units, the rounding rule gives {expected[wrong][:6]}")
    assert np.all(got[:5] == 0), "m stays 0 for |g| <= 5 units = 2^-25 / (1 - beta1)"
    if steps == 200:  # m stalls where the increment (k - m) / 10 falls to half a unit
        assert np.all((ks - got)[5:] >= 4) and np.all((ks - got)[5:] <= 5)


def test_fractions_of_zero_and_subnormal_moments_over_the_problems_gradients():
    grads = np.logspace(-7, -4, 61)
    out = adam_moments_in_float16(grads, steps=1000)
    m, v = out["exp_avg"], out["exp_avg_sq"]
    assert np.mean(v == 0) == 1.0
    # m = 0 exactly where |g| <= 5 units (after rounding g to float16)
    np.testing.assert_array_equal(m == 0, out["gradient"] <= 5 * U)
    subnormal = (m != 0) & (np.abs(m) < 2.0**-14)
    assert np.mean(m == 0) == pytest.approx(11 / 61) and np.mean(subnormal) == pytest.approx(45 / 61)


# ----- what it does to training ---------------------------------------------------------


def test_first_step_with_float16_state_is_inf_where_m_is_not_zero_and_nan_where_it_is():
    g = -fp16(FLOAT16_SCALES)  # the problem's first gradients, -s
    x, m, v = one_step(g)
    assert np.all(v == 0)
    m_zero = -g.astype(np.float64) <= 5 * U
    assert np.array_equal(m == 0, m_zero)
    assert np.all(x[~m_zero] == np.inf), f"-(lr / bc1) m / 0 = +inf for g < 0; got {x[~m_zero]}"
    assert np.all(np.isnan(x[m_zero])), f"0 / 0 = NaN where m_1 = 0; got {x[m_zero]}"


def test_first_step_with_eps_two_to_minus_24_is_m_hat_over_eps():
    g = -fp16(FLOAT16_SCALES)
    x, m, v = one_step(g, eps=FLOAT16_TINY)
    m1 = -np.array([m_in_units(k, 1) for k in np.rint(-g.astype(np.float64) / U).astype(int)]) * U
    normal = -g.astype(np.float64) >= 2.0**-14
    m1[normal] = fp16(0.1 * g[normal].astype(np.float64))  # (m of a normal g: one rounding of 0.1 g)
    np.testing.assert_array_equal(m.astype(np.float64), m1)
    expected = fp16(-1e-3 * (m1 / 0.1) / FLOAT16_TINY)  # sqrt(0) / sqrt(bc2) + eps = eps exactly
    ulp = np.spacing(np.abs(expected)).astype(np.float64)
    assert np.all(np.abs(x.astype(np.float64) - expected) <= ulp), (x, expected)
    assert x[0] > 1.6, "s = 1e-4: the step is lr * 2^24 * 1e-4 = 1.68, not lr"


def test_first_step_with_float32_state_or_master_weights_is_lr_times_g_over_g_plus_eps():
    g = -fp16(FLOAT16_SCALES)
    magnitude = -g.astype(np.float64)
    expected = fp16(1e-3 * magnitude / (magnitude + 1e-8))  # m_hat = g, v_hat = g^2 at step 1
    for kwargs in ({"state_dtype": np.float32}, {"master_weights": True}):
        x, m, v = one_step(g, **kwargs)
        assert m.dtype == v.dtype == np.float32
        ulp = np.spacing(expected).astype(np.float64)
        assert np.all(np.abs(x.astype(np.float64) - expected) <= ulp), (kwargs, x, expected)


@pytest.fixture(scope="module")
def short_runs():
    return adam_float16_training(steps=300)


def test_float32_state_trains_and_stays_finite_where_float16_state_does_not(short_runs):
    s = FLOAT16_SCALES
    for name in ("float32_state", "master_weights", "float32"):
        run = short_runs[name]
        assert run["first_nonfinite"] is None and np.all(np.isfinite(run["distances"])), name
        assert run["losses"][-1] < 0.6 * run["losses"][0], name
        assert np.all(np.diff(run["losses"]) <= 0), f"{name}: the loss rises somewhere"
        x = 1 - run["distances"][-1]
        # Adam moves each coordinate by about lr a step whatever its scale: 300 steps of at most lr
        assert np.all(x <= 0.3 + 2.0**-12), (name, x)
        assert np.all(x[s >= 1e-6] >= 0.25), (name, x)
        assert np.all(run["zero_exp_avg_sq"] == 0) and np.all(run["zero_exp_avg"] == 0), name
    half = short_runs["float16_state"]
    assert half["first_nonfinite"] == 1
    at_1e5 = np.flatnonzero(np.isclose(s, 1e-5))[0]
    assert not np.isfinite(half["distances"][1, at_1e5]), "at g ~ 1e-5 float16 state leaves the finite numbers"
    assert half["zero_exp_avg_sq"][0] == 1.0, "after step 1 every v is 0"
    assert half["zero_exp_avg"][0] == pytest.approx(np.mean(fp16(s).astype(np.float64) <= 5 * U))


def test_float16_state_with_a_representable_eps_freezes_the_smallest_gradients(short_runs):
    run = short_runs["float16_state_tiny_eps"]
    assert run["first_nonfinite"] is None
    frozen = fp16(FLOAT16_SCALES).astype(np.float64) <= 5 * U  # m = 0 at every step: no step at all
    assert frozen.sum() == 6
    assert np.all(run["distances"][:, frozen] == 1.0)
    assert np.all(run["zero_exp_avg_sq"] == 1.0), "v is 0 at every step"


def test_float32_state_loses_steps_below_half_an_ulp_and_master_weights_keep_them():
    # lr 1e-4 near x = 0.25: float16's spacing above 0.25 is 2^-12, so x + step rounds back to
    # 0.25 for any step below 2^-13 = 1.22e-4, and Adam's steps are about lr = 1e-4.
    finals = {}
    for name, kwargs in (("float32_state", {"state_dtype": np.float32}), ("master_weights", {"master_weights": True})):
        x, grad = np.array([0.24], np.float16), np.zeros(1, np.float16)
        optimizer = Adam([{"params": x, "grad": grad}], lr=1e-4, **kwargs)
        for _ in range(300):
            grad[...] = 1e-4 * (x.astype(np.float64) - 1)
            optimizer.step()
        finals[name] = float(x[0])
    assert finals["float32_state"] == 0.25
    assert finals["master_weights"] > 0.26  # 0.24 + ~300 * 1e-4, rounded
    assert 0.2 < 1e-4 / 2.0**-13 < 1, "the premise: lr below half the spacing"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"steps": 0}, ValueError, "steps"),
    ({"steps": True}, ValueError, "steps"),
    ({"scales": [1e-4, -1e-5]}, ValueError, "scales"),
    ({"scales": []}, ValueError, "scales"),
    ({"lr": 0.0}, ValueError, "lr"),
    ({"lr": float("nan")}, ValueError, "lr"),
])
def test_training_refuses_bad_arguments_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        adam_float16_training(**kwargs)


def test_moments_refuse_non_finite_gradients_and_bad_steps():
    with pytest.raises(ValueError, match="gradient"):
        adam_moments_in_float16([1e-5, np.nan])
    with pytest.raises(ValueError, match="steps"):
        adam_moments_in_float16([1e-5], steps=0)


# ----- torch, the oracle for "-inf after one step" ---------------------------------------


@pytest.mark.parametrize("eps", [1e-8, FLOAT16_TINY], ids=["eps=1e-8", "eps=2^-24"])
def test_one_float16_state_step_is_torchs_single_tensor_step_bit_for_bit(eps):
    torch = pytest.importorskip("torch")
    g = np.concatenate([-fp16(FLOAT16_SCALES), fp16(FLOAT16_SCALES)])
    x, m, v = one_step(g, eps=eps)
    t = torch.zeros(len(g), dtype=torch.float16, requires_grad=True)
    optimizer = torch.optim.Adam([t], eps=eps, foreach=False)
    t.grad = torch.from_numpy(g.copy())
    optimizer.step()
    theirs = t.detach().numpy()
    state = optimizer.state[t]
    if eps == 1e-8:  # what torch does: +-inf, NaN where m = 0
        assert np.all(np.isinf(theirs) | np.isnan(theirs))
        assert np.all(theirs[np.abs(state["exp_avg"].numpy()) > 0] == -np.sign(g[np.abs(state["exp_avg"].numpy()) > 0])
                      * np.inf)
    for what, ours, torch_value in (("param", x, theirs), ("exp_avg", m, state["exp_avg"].numpy()),
                                    ("exp_avg_sq", v, state["exp_avg_sq"].numpy())):
        differ = np.flatnonzero(ours.view(np.uint16) != torch_value.view(np.uint16))
        assert differ.size == 0, (f"{what}, eps={eps}: {differ.size} of {len(g)} differ from torch.optim.Adam("
                                  f"foreach=False); g = {g[differ][:4]}, ours {ours[differ][:4]}, torch "
                                  f"{torch_value[differ][:4]}")


# ----- the figure: float16_state.png --------------------------------------------------


@pytest.fixture(scope="module")
def figure_data():
    return demo.float16_state()


def test_figure_data_master_weights_stop_where_the_float16_gradient_rounds_to_zero(figure_data):
    run = figure_data["training"]["master_weights"]
    d = run["distances"][-1]
    limit = HALF_U / FLOAT16_SCALES  # s |x - 1| <= 2^-25: the gradient is 0 in float16
    small = FLOAT16_SCALES <= 1e-6
    assert np.all(d[small] <= limit[small] * (1 + 2.0**-10)), (d[small], limit[small])
    assert np.all(d[small] >= 0.85 * limit[small]), (d[small], limit[small])
    # with float32 parameters no such floor: far closer
    assert np.all(figure_data["training"]["float32"]["distances"][-1][small] < 0.1 * limit[small])


def test_figure_data_final_losses_order_the_configurations(figure_data):
    final = {name: run["losses"][-1] / run["losses"][0] for name, run in figure_data["training"].items()}
    assert np.isnan(final["float16_state"])
    assert final["float32"] < final["master_weights"] < final["float32_state"] < 1e-2
    assert final["float16_state_tiny_eps"] < 1e-2
    # float32 state stalls short of 1: the large scales stop 0.03 - 0.05 away
    stall = figure_data["training"]["float32_state"]["distances"][-1][FLOAT16_SCALES >= 1e-5]
    assert np.all((stall > 0.02) & (stall < 0.06)), stall
    assert np.all(figure_data["training"]["master_weights"]["distances"][-1][FLOAT16_SCALES >= 1e-5] < 5e-3)


def test_figure_shows_the_thresholds_and_the_blow_up(figure_data):
    import matplotlib.pyplot as plt

    assert demo.FIGURES["float16_state.png"] == (8.0, 8.0)
    fig = demo.plot_float16_state(figure_data)
    try:
        moments_ax, step_ax, loss_ax, distance_ax = fig.axes
        texts = [t.get_text() for t in moments_ax.texts]
        assert "m ≡ 0 for |g| ≤ 3e-07" in texts and "v ≡ 0 for\n|g| ≤ 0.0055" in texts
        assert [line.get_xdata()[0] for line in moments_ax.lines if line.get_linestyle() == ":"] == pytest.approx(
            [5 * U, float16_underflow_thresholds()["exp_avg_sq"]])
        assert any("after step 1" in t.get_text() for t in loss_ax.texts)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels == [label for label, _, _ in demo.FLOAT16_STYLES.values()]
        assert list(demo.FLOAT16_STYLES) == list(FLOAT16_CONFIGS)
    finally:
        plt.close(fig)
