"""Library steps against hand-written references, the specification's worked examples, finite-difference tools.

The references in ``numpy_optim.verification`` transcribe the specification's formulas
literally (on float64 copies); the library computes them in torch's order (lerp for
the first moment, eps after the bias correction, AdamW's decay before the moments), so
the two agree to rounding, not bitwise: rtol = atol = 1e-12 in float64.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numpy_optim import SGD, Adam, AdamW
from numpy_optim.problems import Rosenbrock, quadratic_bowl
from numpy_optim.verification import (
    adam_reference_step,
    compare_adam_l2_and_adamw,
    gradient_check,
    numerical_gradient,
    relative_error,
    sgd_reference_step,
)

RTOL = ATOL = 1e-12

# ----- strategies -----------------------------------------------------------------------

finite = st.floats(-10.0, 10.0, allow_nan=False, allow_subnormal=False)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


@st.composite
def start_and_gradients(draw, max_steps=4):
    """A float64 start point and 1..max_steps gradients of its shape."""
    shape = draw(shapes, label="shape")
    x0 = draw(hnp.arrays(np.float64, shape, elements=finite), label="x0")
    steps = draw(st.integers(1, max_steps), label="steps")
    grads = [draw(hnp.arrays(np.float64, shape, elements=finite), label=f"grad[{k}]") for k in range(steps)]
    return x0, grads


lrs = st.floats(1e-4, 1.0)
# beta1 in (0, 0.01) is left out on purpose. torch (and so the library) forms the first moment as
# lerp(m, g, 1 - beta1), which for 1 - beta1 >= 0.5 multiplies m by 1 - (1 - beta1): that factor is
# beta1 with an absolute rounding error of ~1e-16, i.e. a relative error of 1e-16 / beta1. Where
# v_hat << eps (beta2 = 0 and a zero gradient) the step m_hat / eps then amplifies it: beta1 = 3.75e-9
# gave a 1.7e-9 difference in the parameter. A faithful-to-torch rounding effect, not a bug.
betas = st.tuples(st.one_of(st.just(0.0), st.floats(0.01, 0.99)), st.floats(0.0, 0.9999))
epsilons = st.sampled_from([1e-8, 1e-6, 1e-10])
weight_decays = st.floats(0.0, 0.5)


class SyncedLibrary:
    """One library optimizer on one array, re-synced to the reference before every step.

    Each call sets the parameter and the state buffers to the reference's values, writes
    the gradient and takes one library step, so every step is a *single-step* comparison
    from identical inputs (as torch's own optimizer tests re-sync). Without the re-sync,
    steps where the Adam direction is ill conditioned (a gradient near eps, sensitivity
    1/eps) would amplify the previous step's last-bit rounding difference.
    """

    def __init__(self, optimizer_class, x0, **hyper):
        self.x = x0.copy()
        self.g = np.zeros_like(self.x)
        self.optimizer = optimizer_class([{"params": self.x, "grad": self.g}], **hyper)

    def step(self, point, grad, buffers):
        self.x[...] = point
        self.g[...] = grad
        for name, value in buffers.items():
            self.optimizer.state[0][name][...] = value
        self.optimizer.step()
        return self.x.copy(), {name: buf.copy() for name, buf in self.optimizer.state.get(0, {}).items()}


# ----- library vs references, several random inputs, several consecutive steps --------


@given(data=start_and_gradients(), lr=lrs)
def test_sgd_steps_match_the_reference(data, lr):
    x0, grads = data
    library, x = SyncedLibrary(SGD, x0, lr=lr), x0
    for k, grad in enumerate(grads):
        got, state = library.step(x, grad, {})
        x, _ = sgd_reference_step(x, grad, lr)
        assert state == {}, "plain SGD keeps no buffer"
        np.testing.assert_allclose(got, x, rtol=RTOL, atol=ATOL, err_msg=f"SGD lr={lr} step {k + 1}")


@given(data=start_and_gradients(), lr=lrs, momentum=st.floats(0.01, 0.99))
def test_sgd_momentum_steps_match_the_reference(data, lr, momentum):
    x0, grads = data
    library, x, v = SyncedLibrary(SGD, x0, lr=lr, momentum=momentum), x0, None
    for k, grad in enumerate(grads):
        got, state = library.step(x, grad, {} if v is None else {"momentum_buffer": v})
        x, v = sgd_reference_step(x, grad, lr, momentum=momentum, velocity=v)
        where = f"SGD lr={lr} momentum={momentum} step {k + 1}"
        np.testing.assert_allclose(state["momentum_buffer"], v, rtol=RTOL, atol=ATOL, err_msg=f"{where}: velocity")
        np.testing.assert_allclose(got, x, rtol=RTOL, atol=ATOL, err_msg=f"{where}: params")


@pytest.mark.parametrize(
    "optimizer_class, decoupled, with_decay",
    [(Adam, False, False), (Adam, False, True), (AdamW, True, True)],
    ids=["adam", "adam+l2", "adamw"],
)
@given(data=start_and_gradients(), lr=lrs, b=betas, eps=epsilons, wd=weight_decays)
def test_adam_family_steps_match_the_reference(optimizer_class, decoupled, with_decay, data, lr, b, eps, wd):
    x0, grads = data
    wd = wd if with_decay else 0.0
    library = SyncedLibrary(optimizer_class, x0, lr=lr, betas=b, eps=eps, weight_decay=wd)
    x, m, v = x0, np.zeros_like(x0), np.zeros_like(x0)
    for k, grad in enumerate(grads):
        got, state = library.step(x, grad, {} if k == 0 else {"exp_avg": m, "exp_avg_sq": v})
        x, m, v = adam_reference_step(x, grad, m, v, k + 1, lr, b[0], b[1], eps, wd, decoupled=decoupled)
        where = f"{optimizer_class.__name__} lr={lr} betas={b} eps={eps} weight_decay={wd} step {k + 1}"
        np.testing.assert_allclose(state["exp_avg"], m, rtol=RTOL, atol=ATOL, err_msg=f"{where}: exp_avg")
        np.testing.assert_allclose(state["exp_avg_sq"], v, rtol=RTOL, atol=ATOL, err_msg=f"{where}: exp_avg_sq")
        np.testing.assert_allclose(got, x, rtol=RTOL, atol=ATOL, err_msg=f"{where}: params")


@pytest.mark.parametrize("seed", range(5))
def test_adam_l2_and_adamw_references_differ_exactly_where_the_decay_enters(seed):
    # Not a tautology: with the same lambda, the two single steps differ unless lambda * theta == 0.
    rng = np.random.default_rng(seed)
    x, g = rng.normal(size=6), rng.normal(size=6)
    l2 = adam_reference_step(x, g, 0.0, 0.0, 1, lr=0.01, weight_decay=0.1)
    w = adam_reference_step(x, g, 0.0, 0.0, 1, lr=0.01, weight_decay=0.1, decoupled=True)
    np.testing.assert_array_equal(w[1], (1 - 0.9) * g)  # AdamW's moment sees the data gradient only
    np.testing.assert_array_equal(l2[1], (1 - 0.9) * (g + 0.1 * x))  # Adam+L2's sees g + lambda x
    assert np.all(l2[0] != w[0])


# ----- the specification's worked examples -------------------------------------------


def test_spec_sgd_basic_step_on_x_squared():
    x1, _ = sgd_reference_step(3.0, 6.0, lr=0.1)
    assert float(x1) == pytest.approx(2.4, abs=1e-15)
    x = np.array([3.0])
    SGD([{"params": x, "grad": 2 * x.copy()}], lr=0.1).step()
    assert x[0] == pytest.approx(2.4, abs=1e-15)


def test_spec_sgd_momentum_two_steps_on_x_squared():
    x1, v1 = sgd_reference_step(3.0, 6.0, lr=0.1, momentum=0.9)
    x2, v2 = sgd_reference_step(x1, 2 * x1, lr=0.1, momentum=0.9, velocity=v1)
    assert (float(v1), float(x1)) == pytest.approx((6.0, 2.4), abs=1e-14)
    assert (float(v2), float(x2)) == pytest.approx((10.2, 1.38), abs=1e-14)
    x, g = np.array([3.0]), np.zeros(1)
    opt = SGD([{"params": x, "grad": g}], lr=0.1, momentum=0.9)
    for expected_v, expected_x in [(6.0, 2.4), (10.2, 1.38)]:
        g[...] = 2 * x
        opt.step()
        assert opt.state[0]["momentum_buffer"][0] == pytest.approx(expected_v, abs=1e-14)
        assert x[0] == pytest.approx(expected_x, abs=1e-14)


def test_spec_adam_single_step_and_bias_correction():
    x1, m1, v1 = adam_reference_step(3.0, 6.0, 0.0, 0.0, t=1, lr=0.001)
    assert float(m1) == pytest.approx(0.6, abs=1e-15) and float(v1) == pytest.approx(0.036, abs=1e-15)
    # m_hat = m / 0.1 = 6, v_hat = v / 0.001 = 36, x1 = 3 - 0.001 * 6 / (6 + 1e-8)
    assert float(x1) == pytest.approx(3.0 - 0.001 * 6.0 / (6.0 + 1e-8), abs=1e-15)
    x = np.array([3.0])
    opt = Adam([{"params": x, "grad": np.array([6.0])}], lr=0.001)
    opt.step()
    assert x[0] == pytest.approx(2.999, abs=1e-11)
    assert opt.state[0]["exp_avg"][0] / (1 - 0.9) == pytest.approx(6.0, rel=1e-14)
    assert opt.state[0]["exp_avg_sq"][0] / (1 - 0.999) == pytest.approx(36.0, rel=1e-12)


def test_spec_adamw_decay_is_applied_on_top_of_the_adam_step_not_folded_into_the_gradient():
    adam = adam_reference_step(3.0, 6.0, 0.0, 0.0, t=1, lr=0.001)[0]
    adamw, m, _ = adam_reference_step(3.0, 6.0, 0.0, 0.0, t=1, lr=0.001, weight_decay=0.1, decoupled=True)
    assert float(adam - adamw) == pytest.approx(0.001 * 0.1 * 3.0, abs=1e-15)  # alpha * lambda * theta = 0.0003
    assert float(m) == pytest.approx(0.6, abs=1e-15)  # the moment did not see lambda * theta
    x = np.array([3.0])
    AdamW([{"params": x, "grad": np.array([6.0])}], lr=0.001, weight_decay=0.1).step()
    assert x[0] == pytest.approx(float(adamw), abs=1e-15)


# ----- finite differences ------------------------------------------------------------


def test_numerical_gradient_is_exact_to_rounding_for_a_quadratic_and_restores_the_point():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    A = A @ A.T
    x = rng.normal(size=4)
    before = x.copy()
    numeric = numerical_gradient(lambda z: 0.5 * z @ A @ z, x)
    np.testing.assert_array_equal(x, before)  # restored bit for bit
    assert relative_error(A @ x, numeric) < 1e-8  # measured ~1e-10: no truncation error for a quadratic


def test_numerical_gradient_perturbs_the_array_in_place_so_closures_may_read_it():
    W = np.arange(6.0).reshape(2, 3)
    numeric = numerical_gradient(lambda _: float(np.sum(W**2)), W)  # f ignores its argument, reads W
    np.testing.assert_allclose(numeric, 2 * np.arange(6.0).reshape(2, 3), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    "x, error",
    [(np.zeros(3, dtype=np.float32), TypeError), (np.zeros((3, 4))[:, ::2], ValueError)],
    ids=["float32", "non-contiguous"],
)
def test_numerical_gradient_refuses_arrays_it_cannot_perturb_exactly(x, error):
    with pytest.raises(error):
        numerical_gradient(lambda z: 0.0, x)


def test_relative_error_uses_the_larger_magnitude_and_the_floor():
    assert relative_error([2.0, 0.0], [2.5, 0.0]) == pytest.approx(0.2)
    assert relative_error([0.0], [1e-12], floor=1e-8) == pytest.approx(1e-4)
    assert relative_error(np.zeros(0), np.zeros(0)) == 0.0


def test_gradient_check_is_small_for_a_correct_gradient():
    # Measured: 2.7e-10 at (-1.5, 2) on Rosenbrock.
    assert gradient_check(Rosenbrock(), [-1.5, 2.0]) < 1e-7


# ----- compare_adam_l2_and_adamw: contract -----------------------------------------------


def test_compare_adam_l2_and_adamw_returns_both_trajectories_from_the_same_start():
    out = compare_adam_l2_and_adamw(Rosenbrock(), [-1.5, 2.0], lr=0.01, weight_decay=0.1, steps=20)
    assert out["adam_l2"].shape == out["adamw"].shape == (21, 2)
    np.testing.assert_array_equal(out["adam_l2"][0], [-1.5, 2.0])
    np.testing.assert_array_equal(out["adamw"][0], [-1.5, 2.0])
    assert out["adam_l2_losses"][0] == out["adamw_losses"][0] == Rosenbrock().value(np.array([-1.5, 2.0]))
    np.testing.assert_allclose(out["distances"], np.linalg.norm(out["adam_l2"] - out["adamw"], axis=1))
    assert out["max_distance"] == out["distances"].max()


def test_compare_adam_l2_and_adamw_accepts_a_loss_and_grad_callable():
    bowl = quadratic_bowl(3)
    from_problem = compare_adam_l2_and_adamw(bowl, np.ones(3), lr=0.05, weight_decay=0.1, steps=30)
    from_callable = compare_adam_l2_and_adamw(
        lambda x: (bowl.value(x), bowl.gradient(x)), np.ones(3), lr=0.05, weight_decay=0.1, steps=30
    )
    np.testing.assert_array_equal(from_problem["adam_l2"], from_callable["adam_l2"])
    np.testing.assert_array_equal(from_problem["adamw"], from_callable["adamw"])


def test_compare_adam_l2_and_adamw_matches_the_references_step_by_step():
    problem = Rosenbrock()
    out = compare_adam_l2_and_adamw(problem, [-1.5, 2.0], lr=0.01, weight_decay=0.1, steps=10)
    for key, decoupled in (("adam_l2", False), ("adamw", True)):
        x, m, v = np.array([-1.5, 2.0]), np.zeros(2), np.zeros(2)
        for t in range(1, 11):
            x, m, v = adam_reference_step(x, problem.gradient(x), m, v, t, 0.01, weight_decay=0.1, decoupled=decoupled)
            np.testing.assert_allclose(out[key][t], x, rtol=1e-12, atol=1e-12, err_msg=f"{key} step {t}")
