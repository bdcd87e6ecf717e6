"""Adam + L2 versus AdamW: different trajectories, and how each spreads weight decay over parameters.

Both optimizers get the same data gradients and the same lambda; they differ only in
where lambda * theta enters (the gradient, for Adam + L2; the parameter, for AdamW).
"""

import numpy as np
import pytest

from numpy_optim import Adam, AdamW, verification
from numpy_optim.problems import Rosenbrock, quadratic_bowl
from numpy_optim.verification import compare_adam_l2_and_adamw

# ----------------------------------------------------------------------------------------
# Trajectories: Rosenbrock from (-1.5, 2), lr 0.01, lambda 0.1, 500 steps.
# ----------------------------------------------------------------------------------------

X0 = np.array([-1.5, 2.0])


@pytest.fixture(scope="module")
def rosenbrock_comparison():
    return compare_adam_l2_and_adamw(Rosenbrock(), X0, lr=0.01, weight_decay=0.1, steps=500)


def test_after_one_step_the_trajectories_differ_by_exactly_the_decoupled_decay_term(rosenbrock_comparison):
    # At t = 1 both Adam directions are sign(g) (m_hat / sqrt(v_hat) = g / |g|), and lambda * theta does
    # not flip the sign of g = (-155, -50), so the only difference is AdamW's alpha * lambda * theta_0.
    difference = rosenbrock_comparison["adam_l2"][1] - rosenbrock_comparison["adamw"][1]
    np.testing.assert_allclose(difference, 0.01 * 0.1 * X0, rtol=1e-9)  # measured (-0.0015, 0.002), to 7e-15


def test_trajectories_from_the_same_start_diverge_over_many_steps(rosenbrock_comparison):
    d = rosenbrock_comparison["distances"]
    # Measured ||theta_L2 - theta_W||: step 1 2.5e-3, step 10 2.6e-2, step 100 0.244, step 500 0.740 (x296),
    # growing at every step.
    assert d[500] >= 0.5, f"distance after 500 steps: {d[500]:.3g}"
    assert d[500] >= 100 * d[1], f"distance grew only from {d[1]:.3g} to {d[500]:.3g}"
    assert np.all(np.diff(d) >= 0), "the gap between the trajectories should widen at every step"


@pytest.mark.parametrize(
    "problem, x0", [(Rosenbrock(), X0), (quadratic_bowl(4), np.ones(4))], ids=["rosenbrock", "bowl"]
)
def test_trajectories_are_identical_without_weight_decay(problem, x0):
    out = compare_adam_l2_and_adamw(problem, x0, lr=0.01, weight_decay=0.0, steps=300)
    np.testing.assert_array_equal(out["adam_l2"], out["adamw"])
    assert out["max_distance"] == 0.0


# ----------------------------------------------------------------------------------------
# Weight distribution.
# ----------------------------------------------------------------------------------------

LEVELS, REPLICAS = 10, 20  # 10 gradient-noise levels, 20 parameters each
SIGMAS = np.repeat(np.logspace(-2, 1, LEVELS), REPLICAS)  # gradient std 0.01 ... 10 (three decades)
LR, WEIGHT_DECAY, STEPS, SEED = 1e-3, 0.1, 2000, 0
UNIFORM_SHRINK = (1 - LR * WEIGHT_DECAY) ** STEPS  # AdamW's shrink factor, 0.8187


def train_on_gradient_noise(optimizer_class):
    """Final weights and measured gradient variances after STEPS steps on pure gradient noise
    (numpy_optim.verification.train_on_gradient_noise: every weight starts at 1, its data
    gradient is zero-mean noise of std SIGMAS[i], the same draws for both optimizers)."""
    return verification.train_on_gradient_noise(
        optimizer_class, SIGMAS, lr=LR, weight_decay=WEIGHT_DECAY, steps=STEPS, seed=SEED
    )


def effective_decay(w):
    """Mean per-step log-shrink of |w| from its start at 1: -log|w_T| / T."""
    return -np.log(np.abs(w)) / STEPS


def coefficient_of_variation(values):
    return float(np.std(values) / np.mean(values))


def spearman(a, b):
    """Rank correlation (no ties expected among continuous values)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def noise_runs():
    return {"adam_l2": train_on_gradient_noise(Adam), "adamw": train_on_gradient_noise(AdamW)}


def test_adamw_leaves_weight_magnitudes_more_uniform_than_adam_l2(noise_runs):
    """AdamW spreads weight decay uniformly; Adam + L2 lets it depend on the gradient noise.

    Design: 200 parameters in 10 groups whose data gradient is pure zero-mean noise with
    standard deviation 0.01 ... 10 (three decades), all starting at 1; lr 1e-3, lambda 0.1,
    2000 steps, seed 0, same noise for both optimizers. AdamW shrinks every parameter by
    (1 - lr * lambda)^T = 0.819 whatever its noise (its Adam direction is scale invariant,
    so the noise moves every group alike). Adam + L2 divides lambda * theta by
    sqrt(v_hat) ~ sigma: quiet parameters are decayed hard, noisy ones hardly at all.
    Measure of uniformity: coefficient of variation (std / mean) of the final |w|.
    """
    cv_l2 = coefficient_of_variation(np.abs(noise_runs["adam_l2"][0]))
    cv_w = coefficient_of_variation(np.abs(noise_runs["adamw"][0]))
    # Measured: adam_l2 0.761, adamw 0.051 (x15); seeds 0-5: adam_l2 0.761-0.764, adamw 0.044-0.054.
    assert cv_w <= 0.1, f"AdamW CV {cv_w:.3f}"
    assert cv_l2 >= 0.5, f"Adam+L2 CV {cv_l2:.3f}"
    assert cv_l2 >= 5 * cv_w, f"CV Adam+L2 {cv_l2:.3f} vs AdamW {cv_w:.3f}"


def test_adamw_shrinks_every_noise_level_by_the_same_factor(noise_runs):
    per_level = np.abs(noise_runs["adamw"][0]).reshape(LEVELS, REPLICAS).mean(axis=1)
    # Measured: group means 0.799 ... 0.836 around (1 - 1e-4)^2000 = 0.819 (within 2.5%).
    np.testing.assert_allclose(per_level, UNIFORM_SHRINK, rtol=0.06)


def test_adam_l2_decays_quiet_parameters_hard_and_noisy_ones_hardly(noise_runs):
    per_level = np.abs(noise_runs["adam_l2"][0]).reshape(LEVELS, REPLICAS).mean(axis=1)
    # Measured group means of |w|: sigma 0.01 -> 0.022, sigma 10 -> 0.979 (AdamW: 0.814 and 0.819).
    assert per_level[0] <= 0.1, f"quietest group kept |w| = {per_level[0]:.3f}"
    assert per_level[-1] >= 0.9, f"noisiest group kept |w| = {per_level[-1]:.3f}"
    assert np.all(np.diff(per_level) > 0), f"|w| should grow with the noise level: {np.round(per_level, 3)}"


def test_adam_l2_effective_decay_is_negatively_correlated_with_gradient_variance(noise_runs):
    """Parameters with high gradient variance get less effective decay under Adam + L2, not under AdamW.

    Effective decay per parameter: its realised mean per-step log-shrink, -log|w_T| / T.
    Gradient variance: measured from the gradients each parameter actually received.
    Correlation: Spearman (rank), plus Pearson against log-variance.
    """
    w_l2, var_l2 = noise_runs["adam_l2"]
    w_w, var_w = noise_runs["adamw"]
    rho_l2 = spearman(var_l2, effective_decay(w_l2))
    rho_w = spearman(var_w, effective_decay(w_w))
    pearson_l2 = float(np.corrcoef(np.log(var_l2), effective_decay(w_l2))[0, 1])
    # Measured Spearman: adam_l2 -0.977 (seeds 0-5: -0.974 ... -0.983); adamw -0.120 (seeds 0-5: -0.12 ... +0.01).
    assert rho_l2 <= -0.9, f"Adam+L2 rank correlation {rho_l2:.3f}"
    assert abs(rho_w) <= 0.3, f"AdamW rank correlation {rho_w:.3f}: its decay should not track the noise"
    # Measured Pearson(log variance, effective decay): adam_l2 -0.931.
    assert pearson_l2 <= -0.8, f"Adam+L2 Pearson correlation {pearson_l2:.3f}"
