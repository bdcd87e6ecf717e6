"""The test problems: analytic gradients against finite differences, minimizers, conditioning, run_optimizer."""

import numpy as np
import pytest

from numpy_optim import SGD
from numpy_optim.problems import Quadratic, Rosenbrock, ill_conditioned_quadratic, quadratic_bowl, run_optimizer
from numpy_optim.verification import gradient_check

PROBLEMS = {
    "bowl-2": quadratic_bowl(2),
    "bowl-7": quadratic_bowl(7),
    "ill-2": ill_conditioned_quadratic(),
    "ill-5": ill_conditioned_quadratic(dim=5, condition_number=1000.0),
    "ill-4-rotated": ill_conditioned_quadratic(dim=4, rotation_seed=3),
    "rosenbrock": Rosenbrock(),
    "rosenbrock-a2-b10": Rosenbrock(a=2.0, b=10.0),
}


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("seed", range(5))
def test_analytic_gradient_matches_central_differences(name, seed):
    problem = PROBLEMS[name]
    x = np.random.default_rng(seed).uniform(-2.0, 2.0, problem.minimizer.shape)
    # A quadratic's central difference has no truncation error (its third derivative is 0), only
    # rounding, ~eps * |f| / h: so a wider step for them. At h = 1e-6 ill-5 (seed 1: a small
    # gradient component next to a large f) measured 1.4e-7 on one machine and 1.06e-6 on
    # another (its BLAS sums x @ A @ x in another order); at 1e-3 the quadratics measure 7e-13 .. 3.6e-10.
    # A wrong gradient shows up at 1e-3 or more (see the next test).
    error = gradient_check(problem, x, h=1e-3 if isinstance(problem, Quadratic) else 1e-6)
    assert error < 1e-6, f"{problem.name}: gradient check at x={x!r} has relative error {error:.3g}"


def test_gradient_check_detects_a_wrong_gradient():
    class WrongRosenbrock(Rosenbrock):
        def gradient(self, x):
            return super().gradient(x) * np.array([1.0, 1.001])  # 0.1% off in y

    error = gradient_check(WrongRosenbrock(), [-1.5, 2.0])
    assert error > 5e-4, f"a 0.1% gradient error went unnoticed: relative error {error:.3g}"


@pytest.mark.parametrize("name", PROBLEMS)
def test_minimizer_has_zero_value_and_zero_gradient(name):
    problem = PROBLEMS[name]
    assert problem.value(problem.minimizer) == 0.0
    np.testing.assert_array_equal(problem.gradient(problem.minimizer), np.zeros_like(problem.minimizer))


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_keeps_shape_and_dtype_of_the_point(name, dtype):
    problem = PROBLEMS[name]
    x = np.linspace(-1.0, 1.0, problem.minimizer.size).astype(dtype)
    g = problem.gradient(x)
    assert isinstance(g, np.ndarray) and g.shape == x.shape and g.dtype == dtype
    assert isinstance(problem.value(x), float)


def test_rosenbrock_value_and_gradient_at_a_hand_computed_point():
    # f(-1, 1) = (1 - (-1))^2 + 100 (1 - 1)^2 = 4; grad = (-2 * 2 - 400 * (-1) * 0, 200 * 0) = (-4, 0)
    r = Rosenbrock()
    assert r.value(np.array([-1.0, 1.0])) == 4.0
    np.testing.assert_array_equal(r.gradient(np.array([-1.0, 1.0])), [-4.0, 0.0])
    np.testing.assert_array_equal(r.minimizer, [1.0, 1.0])


def test_quadratic_bowl_is_well_conditioned_and_axis_aligned():
    bowl = quadratic_bowl(5)
    np.testing.assert_array_equal(bowl.eigenvalues, np.linspace(1.0, 2.0, 5))
    np.testing.assert_array_equal(bowl.A, np.diag(bowl.eigenvalues))
    assert bowl.condition_number == 2.0


@pytest.mark.parametrize("dim", [2, 3, 6])
@pytest.mark.parametrize("kappa", [1.0, 10.0, 100.0])
def test_ill_conditioned_quadratic_has_eigenvalues_one_and_kappa_at_the_ends(dim, kappa):
    q = ill_conditioned_quadratic(dim=dim, condition_number=kappa)
    assert q.A[0, 0] == 1.0 and q.A[-1, -1] == kappa, "the axis-aligned matrix's ends must be exactly 1 and kappa"
    assert q.eigenvalues[0] == 1.0 and q.eigenvalues[-1] == kappa
    np.testing.assert_array_equal(q.A, np.diag(np.diag(q.A)))
    assert q.condition_number == kappa


def test_rotated_ill_conditioned_quadratic_keeps_its_spectrum_but_not_its_axes():
    q = ill_conditioned_quadratic(dim=3, condition_number=100.0, rotation_seed=0)
    np.testing.assert_allclose(q.eigenvalues, [1.0, 10.0, 100.0], rtol=1e-12)
    off_diagonal = q.A - np.diag(np.diag(q.A))
    assert np.abs(off_diagonal).max() > 1.0, "a rotated quadratic should not be diagonal"
    # The last eigenvector is the high-curvature direction: f grows as 100/2 along it.
    u = q.eigenvectors[:, -1]
    assert q.value(u) == pytest.approx(50.0, rel=1e-12)


@pytest.mark.parametrize(
    "A, message",
    [
        ([[1.0, 2.0], [0.0, 1.0]], "not symmetric"),
        ([[1.0, 0.0], [0.0, -1.0]], "not positive definite"),
        ([[1.0, 0.0, 0.0]], "square"),
    ],
    ids=["asymmetric", "indefinite", "not-square"],
)
def test_quadratic_refuses_matrices_that_are_not_symmetric_positive_definite(A, message):
    with pytest.raises(ValueError, match=message):
        Quadratic(A)


def test_run_optimizer_records_every_step_and_the_first_iterate_within_tol():
    # Gradient descent with lr=0.5 on diag(1, 2): x_k = (0.5^k, 0^k) -> ||x_k|| = 0.5^k after step 1.
    run = run_optimizer(lambda entries: SGD(entries, lr=0.5), quadratic_bowl(2), [1.0, 1.0], steps=12, tol=1e-3)
    assert run.trajectory.shape == (13, 2) and run.losses.shape == (13,) and run.distances.shape == (13,)
    np.testing.assert_array_equal(run.trajectory[0], [1.0, 1.0])
    np.testing.assert_array_equal(run.trajectory[3], [0.125, 0.0])
    assert run.iterations_to_converge == 10  # 0.5^9 = 1.95e-3 >= 1e-3 > 0.5^10 = 9.8e-4
    assert run.losses[3] == pytest.approx(0.5 * 0.125**2)
    assert not run.diverged


def test_run_optimizer_reports_none_when_tol_is_never_reached_and_flags_divergence():
    slow = run_optimizer(lambda e: SGD(e, lr=1e-3), quadratic_bowl(2), [1.0, 1.0], steps=10)
    assert slow.iterations_to_converge is None and not slow.diverged
    # lr = 1.5 > 2 / lambda_max = 1 on the bowl: |1 - 1.5 * 2| = 2, the iterate doubles until it overflows.
    blown = run_optimizer(lambda e: SGD(e, lr=1.5), quadratic_bowl(2), [1.0, 1.0], steps=2000)
    assert blown.diverged and blown.iterations_to_converge is None
    assert np.isnan(blown.trajectory[-1]).all()


def test_run_optimizer_does_not_modify_the_starting_point():
    x0 = np.array([-1.5, 2.0])
    run_optimizer(lambda e: SGD(e, lr=1e-3), Rosenbrock(), x0, steps=5)
    np.testing.assert_array_equal(x0, [-1.5, 2.0])
