"""Convergence on the specification's test problems: quadratic bowl, Rosenbrock, ill-conditioned quadratic.

Every hyperparameter below is fixed, and every comparison was measured first; the
measured numbers sit in a comment next to each assertion, and the margins leave room
for platform rounding without making the check vacuous.
"""

import numpy as np
import pytest

from numpy_optim import SGD, Adam, AdamW
from numpy_optim.problems import Rosenbrock, ill_conditioned_quadratic, quadratic_bowl, run_optimizer


def sign_changes(values):
    """How many times consecutive nonzero entries of ``values`` change sign."""
    values = np.asarray(values)
    signs = np.sign(values[values != 0])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def step_reversals(trajectory):
    """How many consecutive steps point backwards (negative dot product of successive steps)."""
    steps = np.diff(trajectory, axis=0)
    return int(np.count_nonzero(np.sum(steps[1:] * steps[:-1], axis=1) < 0))


# ----------------------------------------------------------------------------------------
# Quadratic bowl: f(x) = x^T A x / 2, A = diag(linspace(1, 2, 5)), x0 = (1, ..., 1).
# One learning rate for all, 0.01 (the specification's SGD default); momentum 0.9;
# AdamW with its default weight_decay 0.01.
# ----------------------------------------------------------------------------------------

BOWL = quadratic_bowl(5)
BOWL_X0 = np.ones(5)
BOWL_STEPS = 3000
BOWL_TOL = 1e-3

BOWL_OPTIMIZERS = {
    "sgd": lambda e: SGD(e, lr=0.01),
    "momentum": lambda e: SGD(e, lr=0.01, momentum=0.9),
    "nesterov": lambda e: SGD(e, lr=0.01, momentum=0.9, nesterov=True),
    "adam": lambda e: Adam(e, lr=0.01),
    "adamw": lambda e: AdamW(e, lr=0.01, weight_decay=0.01),
}


@pytest.fixture(scope="module")
def bowl_runs():
    return {name: run_optimizer(make, BOWL, BOWL_X0, BOWL_STEPS, BOWL_TOL) for name, make in BOWL_OPTIMIZERS.items()}


@pytest.mark.parametrize("name", BOWL_OPTIMIZERS)
def test_quadratic_bowl_every_optimizer_converges_to_the_minimum(bowl_runs, name):
    run = bowl_runs[name]
    # Measured ||x_3000||: sgd 8.0e-14 (loss ratio 8.6e-28), momentum 4.4e-69, nesterov 5.0e-76,
    # adam 2.8e-66, adamw 3.0e-66.
    assert run.final_distance < 1e-10, f"{name}: ||x - 0|| = {run.final_distance:.3g} after {BOWL_STEPS} steps"
    # Measured iterations to ||x|| < 1e-3: sgd 689, momentum 143, nesterov 126, adam 285, adamw 283.
    assert run.iterations_to_converge is not None, f"{name} never got within {BOWL_TOL} of 0"
    assert run.losses[-1] < 1e-20 * run.losses[0]


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_quadratic_bowl_adam_family_needs_fewer_steps_than_sgd(bowl_runs, name):
    adaptive, sgd = bowl_runs[name].iterations_to_converge, bowl_runs["sgd"].iterations_to_converge
    # Measured: adam 285, adamw 283 vs sgd 689 (ratio 0.41).
    assert adaptive <= 0.6 * sgd, f"{name} needed {adaptive} steps, SGD {sgd}"


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_quadratic_bowl_momentum_needs_fewer_steps_than_sgd(bowl_runs, name):
    momentum, sgd = bowl_runs[name].iterations_to_converge, bowl_runs["sgd"].iterations_to_converge
    # Measured: momentum 143, nesterov 126 vs sgd 689 (ratio 0.21 and 0.18).
    assert momentum <= 0.35 * sgd, f"{name} needed {momentum} steps, SGD {sgd}"


# ----------------------------------------------------------------------------------------
# Rosenbrock from the standard start (-1.5, 2); iterations to ||x - (1, 1)|| < 0.01.
# SGD and momentum: lr 1e-3 (SGD diverges from this start for lr >= 2.5e-3, so 1e-3 is
# about the largest safe rate); momentum 0.9; Adam: lr 1e-2.
# ----------------------------------------------------------------------------------------

ROSENBROCK = Rosenbrock()
ROSENBROCK_X0 = (-1.5, 2.0)
ROSENBROCK_STEPS = 15000
ROSENBROCK_TOL = 1e-2

ROSENBROCK_OPTIMIZERS = {
    "sgd": lambda e: SGD(e, lr=1e-3),
    "momentum": lambda e: SGD(e, lr=1e-3, momentum=0.9),
    "nesterov": lambda e: SGD(e, lr=1e-3, momentum=0.9, nesterov=True),
    "adam": lambda e: Adam(e, lr=1e-2),
}


@pytest.fixture(scope="module")
def rosenbrock_runs():
    return {
        name: run_optimizer(make, ROSENBROCK, ROSENBROCK_X0, ROSENBROCK_STEPS, tol=ROSENBROCK_TOL)
        for name, make in ROSENBROCK_OPTIMIZERS.items()
    }


@pytest.mark.parametrize("name", ROSENBROCK_OPTIMIZERS)
def test_rosenbrock_every_optimizer_reaches_tolerance(rosenbrock_runs, name):
    run = rosenbrock_runs[name]
    # Measured iterations: sgd 11942, momentum 1125, nesterov 1018, adam 2987.
    assert run.iterations_to_converge is not None, f"{name}: ||x - x*|| = {run.final_distance:.3g} at the end"
    # Measured final distances (step 15000): sgd 2.9e-3, momentum 2.1e-15, nesterov 6.0e-15, adam 1.6e-6.
    assert run.final_distance < ROSENBROCK_TOL, f"{name} left the tolerance ball: {run.final_distance:.3g}"


def test_rosenbrock_sgd_struggles_needing_thousands_of_iterations(rosenbrock_runs):
    # Measured: 11942 iterations; its first 200 steps reverse direction 20 times (bouncing across the valley).
    assert rosenbrock_runs["sgd"].iterations_to_converge > 8000
    assert step_reversals(rosenbrock_runs["sgd"].trajectory[:201]) >= 12


def test_rosenbrock_sgd_diverges_at_the_learning_rate_adam_uses():
    # Measured: SGD with lr 1e-2 overflows at step 8; Adam with lr 1e-2 converges (2987 iterations, above).
    sgd = run_optimizer(lambda e: SGD(e, lr=1e-2), ROSENBROCK, ROSENBROCK_X0, 500, tol=ROSENBROCK_TOL)
    assert sgd.diverged


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_rosenbrock_momentum_reaches_tolerance_in_far_fewer_iterations_than_sgd(rosenbrock_runs, name):
    momentum, sgd = rosenbrock_runs[name].iterations_to_converge, rosenbrock_runs["sgd"].iterations_to_converge
    # Measured: momentum 1125, nesterov 1018 vs sgd 11942 (ratio 0.094 and 0.085), same lr.
    assert momentum <= 0.2 * sgd, f"{name}: {momentum} iterations, SGD {sgd}"


def test_rosenbrock_momentum_damps_the_oscillation_across_the_valley(rosenbrock_runs):
    sgd = step_reversals(rosenbrock_runs["sgd"].trajectory[:201])
    momentum = step_reversals(rosenbrock_runs["momentum"].trajectory[:201])
    # Measured step reversals in the first 200 steps: sgd 20, momentum 9.
    assert momentum <= 0.6 * sgd, f"momentum reversed {momentum} times, SGD {sgd}"


def test_rosenbrock_adam_reaches_tolerance_in_fewer_iterations_than_sgd(rosenbrock_runs):
    adam, sgd = rosenbrock_runs["adam"].iterations_to_converge, rosenbrock_runs["sgd"].iterations_to_converge
    # Measured: adam 2987 vs sgd 11942 (ratio 0.25).
    assert adam <= 0.4 * sgd, f"Adam: {adam} iterations, SGD {sgd}"
    # Measured: Adam's steps reverse direction once in its first 200 steps (SGD: 20).
    assert step_reversals(rosenbrock_runs["adam"].trajectory[:201]) <= 3


# ----------------------------------------------------------------------------------------
# Ill-conditioned quadratic, axis aligned: A = diag(1, kappa), x0 = (1, 1); coordinate 1
# is the high-curvature direction. SGD and momentum use lr = 2 / (1 + kappa), the best
# constant step for gradient descent on a quadratic (both eigen-directions then contract
# by (kappa - 1) / (kappa + 1) per step); momentum 0.9; Adam lr 0.05.
# "Oscillation rate": sign changes of the high-curvature coordinate per iteration, over
# the iterations before ||x|| < 1e-3.
# ----------------------------------------------------------------------------------------

ILL_TOL = 1e-3
ILL_STEPS = 2000


def ill_run(kappa, optimizer):
    lr = 2.0 / (1.0 + kappa)
    make = {
        "sgd": lambda e: SGD(e, lr=lr),
        "momentum": lambda e: SGD(e, lr=lr, momentum=0.9),
        "adam": lambda e: Adam(e, lr=0.05),
    }[optimizer]
    return run_optimizer(make, ill_conditioned_quadratic(2, kappa), [1.0, 1.0], ILL_STEPS, tol=ILL_TOL)


def oscillation_rate(run):
    k = run.iterations_to_converge
    return sign_changes(run.trajectory[: k + 1, 1]) / k


@pytest.fixture(scope="module")
def ill_runs():
    return {name: ill_run(100.0, name) for name in ("sgd", "momentum", "adam")}


def test_ill_conditioned_sgd_oscillates_along_the_high_curvature_direction(ill_runs):
    run = ill_runs["sgd"]
    k = run.iterations_to_converge
    # Measured: 363 iterations; the high-curvature coordinate changes sign at every one of them
    # (363 sign changes), the low-curvature coordinate never (0).
    assert k is not None
    assert oscillation_rate(run) >= 0.95, f"high-curvature sign changes: {sign_changes(run.trajectory[:k + 1, 1])}/{k}"
    assert sign_changes(run.trajectory[: k + 1, 0]) == 0


def test_ill_conditioned_momentum_reduces_but_does_not_eliminate_the_oscillation(ill_runs):
    sgd, momentum = oscillation_rate(ill_runs["sgd"]), oscillation_rate(ill_runs["momentum"])
    # Measured oscillation rates: sgd 1.00 (363/363), momentum 0.51 (65/127).
    assert momentum <= 0.75 * sgd, f"momentum rate {momentum:.2f} vs SGD {sgd:.2f}"
    assert momentum >= 0.25, f"momentum rate {momentum:.2f}: the oscillation should remain"
    # Measured: momentum converges in 127 iterations vs SGD 363.
    assert ill_runs["momentum"].iterations_to_converge <= 0.5 * ill_runs["sgd"].iterations_to_converge


def test_ill_conditioned_adam_neither_oscillates_nor_slows_down(ill_runs):
    adam = ill_runs["adam"]
    # Measured: 82 iterations, 2 sign changes of the high-curvature coordinate (rate 0.024).
    assert oscillation_rate(adam) <= 0.1
    assert adam.iterations_to_converge <= 0.4 * ill_runs["sgd"].iterations_to_converge  # 82 vs 363


def test_ill_conditioned_adam_iterations_do_not_grow_with_the_condition_number():
    # Measured iterations to ||x|| < 1e-3, kappa = 10 -> 100:
    #   SGD (lr 2/(1+kappa)): 37 -> 363 (x9.8, the classic O(kappa) growth)
    #   Adam (lr 0.05): 82 -> 82 (per-coordinate scaling undoes an axis-aligned conditioning)
    sgd_10, sgd_100 = ill_run(10.0, "sgd").iterations_to_converge, ill_run(100.0, "sgd").iterations_to_converge
    adam_10, adam_100 = ill_run(10.0, "adam").iterations_to_converge, ill_run(100.0, "adam").iterations_to_converge
    assert sgd_100 >= 5 * sgd_10, f"SGD: {sgd_10} -> {sgd_100}"
    assert adam_100 <= 1.1 * adam_10, f"Adam: {adam_10} -> {adam_100}"


# ----------------------------------------------------------------------------------------
# The rest of torch.optim (docs/figures/rest_of_torch_optim.png): the same problems, budgets
# and tolerances. Each optimizer at torch's defaults where they reach the tolerance, else at a
# tuned lr (numpy_optim/demo.py, REST_*_SETTINGS). Each run is cut at the bound it asserts,
# about 10% above the measured count, so the check fails if convergence is slower.
# ----------------------------------------------------------------------------------------

from numpy_optim.adadelta import Adadelta  # noqa: E402
from numpy_optim.adafactor import Adafactor  # noqa: E402
from numpy_optim.adagrad import Adagrad  # noqa: E402
from numpy_optim.adamax import Adamax  # noqa: E402
from numpy_optim.asgd import ASGD  # noqa: E402
from numpy_optim.lbfgs import LBFGS  # noqa: E402
from numpy_optim.mlp import MLP, make_classification_data, train  # noqa: E402
from numpy_optim.nadam import NAdam  # noqa: E402
from numpy_optim.radam import RAdam  # noqa: E402
from numpy_optim.rmsprop import RMSprop  # noqa: E402
from numpy_optim.rprop import Rprop  # noqa: E402

ILL_QUADRATIC = ill_conditioned_quadratic(2, 100.0)

# name: (make, step bound); measured iterations to ||x|| < 1e-3 in the comment.
REST_ILL = {
    "adagrad": (lambda e: Adagrad(e, lr=0.1), 240),  # 215 (default lr 0.01: ends 0.42 away)
    "adadelta": (lambda e: Adadelta(e), 430),  # 388
    "rmsprop": (lambda e: RMSprop(e), 165),  # 149
    "adamax": (lambda e: Adamax(e), 1640),  # 1489
    "asgd": (lambda e: ASGD(e), 760),  # 688
    "rprop": (lambda e: Rprop(e), 36),  # 32
    "nadam": (lambda e: NAdam(e), 1720),  # 1562
    "radam": (lambda e: RAdam(e, lr=3e-3), 2000),  # 1874 (default lr 1e-3: ends 0.19 away)
    "adafactor": (lambda e: Adafactor(e, lr=0.03), 1140),  # 1031 (default lr 1e-2: ends 1.9e-3 away)
}
# Measured iterations to ||x - (1, 1)|| < 1e-2 from (-1.5, 2) in the comment (Adam, lr 1e-2: 2987).
# Adafactor is not here: it does not reach 1e-2 in 15000 steps at any lr (ends 0.019 away, 7.7 s
# to run); test_rest_adafactor_step_shrinks_as_one_over_sqrt_t checks why.
REST_ROSENBROCK = {
    "adagrad": (lambda e: Adagrad(e, lr=0.1), 13000),  # 12032 (default: ends 1.9 away)
    "adadelta": (lambda e: Adadelta(e, lr=0.03), 12000),  # 11107 (default lr 1: ends 0.75 away)
    "rmsprop": (lambda e: RMSprop(e, lr=3e-3), 5200),  # 4752 (default lr 1e-2: ends 0.036 away)
    "adamax": (lambda e: Adamax(e), 6700),  # 6113
    "asgd": (lambda e: ASGD(e, lr=1e-3), 13000),  # 12026 (default lr 1e-2 diverges)
    "rprop": (lambda e: Rprop(e), 3100),  # 2792
    "nadam": (lambda e: NAdam(e), 7900),  # 7179
    "radam": (lambda e: RAdam(e), 11200),  # 10207
}


@pytest.mark.parametrize("name", REST_ILL)
def test_rest_ill_conditioned_every_optimizer_reaches_tolerance(name):
    make, bound = REST_ILL[name]
    run = run_optimizer(make, ILL_QUADRATIC, [1.0, 1.0], bound, tol=ILL_TOL)
    assert run.iterations_to_converge is not None, f"{name}: ||x|| = {run.final_distance:.3g} after {bound} steps"


@pytest.mark.parametrize("name", ["adadelta", "rmsprop"])
def test_rest_ill_conditioned_constant_steps_leave_the_tolerance_ball_again(name):
    # Measured ||x_2000||: Adadelta 2.0e-2, RMSprop 7.0e-3 (a limit cycle of size ~ lr); both got
    # inside 1e-3 first (388 and 149 iterations, above).
    run = run_optimizer(REST_ILL[name][0], ILL_QUADRATIC, [1.0, 1.0], ILL_STEPS, tol=ILL_TOL)
    assert run.final_distance > 3 * ILL_TOL, f"{name}: ends {run.final_distance:.3g} away"


@pytest.mark.parametrize("name", REST_ROSENBROCK)
def test_rest_rosenbrock_every_optimizer_reaches_tolerance(name):
    make, bound = REST_ROSENBROCK[name]
    run = run_optimizer(make, ROSENBROCK, ROSENBROCK_X0, bound, tol=ROSENBROCK_TOL)
    assert run.iterations_to_converge is not None, f"{name}: {run.final_distance:.3g} away after {bound} steps"


def test_rest_asgd_diverges_on_rosenbrock_at_its_default_lr():
    # Measured: overflow within the first 20 steps at lr 1e-2, like SGD at lr 1e-2 (above).
    assert run_optimizer(lambda e: ASGD(e), ROSENBROCK, ROSENBROCK_X0, 100, tol=ROSENBROCK_TOL).diverged


def test_rest_adafactor_step_shrinks_as_one_over_sqrt_t():
    # torch's Adafactor: alpha_t = max(eps2, RMS(x)) * min(lr, 1 / sqrt(t)) and the update is
    # clipped to RMS <= d = 1, so RMS(x_t - x_{t-1}) <= max(1e-3, RMS(x_{t-1})) * min(0.01, t**-0.5):
    # past t = 1e4 the cap falls below lr, and Adafactor ends 0.019 from Rosenbrock's minimum after
    # 15000 steps (measured; too slow to run here). Measured ratio step / cap: 0.39 at t = 300.
    run = run_optimizer(lambda e: Adafactor(e), ROSENBROCK, ROSENBROCK_X0, 300, tol=ROSENBROCK_TOL)
    x = run.trajectory
    t = np.arange(1, len(x))
    rms_step = np.sqrt(np.mean(np.diff(x, axis=0) ** 2, axis=1))
    alpha = np.maximum(1e-3, np.sqrt(np.mean(x[:-1] ** 2, axis=1))) * np.minimum(0.01, t**-0.5)
    assert np.all(rms_step <= alpha * (1 + 1e-12))
    assert np.all(rms_step > 0)  # it does move


def lbfgs_calls(line_search_fn, problem, x0, tol, max_calls):
    """LBFGS (torch's defaults) until ``max_calls`` closure calls; (calls before the first point
    within ``tol`` or None, distance at the end, the optimizer, every point the closure saw)."""
    x = np.array(x0, dtype=np.float64)
    g = np.zeros_like(x)
    optimizer = LBFGS([{"params": x, "grad": g}], line_search_fn=line_search_fn)
    seen = []

    def closure():
        seen.append(x.copy())
        g[...] = problem.gradient(x)
        return problem.value(x)

    while len(seen) < max_calls:
        optimizer.step(closure)
    distances = np.linalg.norm(np.array(seen) - problem.minimizer, axis=1)
    inside = np.flatnonzero(distances < tol)
    return (int(inside[0]) if inside.size else None), float(np.linalg.norm(x - problem.minimizer)), optimizer, seen


def test_rest_lbfgs_strong_wolfe_needs_far_fewer_evaluations_on_rosenbrock_than_adam_needs_steps():
    # Measured: the closure is first called within 1e-2 of (1, 1) after 46 calls (no line search:
    # 86); Adam (lr 1e-2) needs 2987 steps, one gradient each. LBFGS ends at max|g| <= 1e-7.
    wolfe, wolfe_end, optimizer, seen = lbfgs_calls("strong_wolfe", ROSENBROCK, ROSENBROCK_X0, ROSENBROCK_TOL, 100)
    assert optimizer.state[0]["func_evals"] == len(seen)  # torch's own count is the closure calls
    plain, plain_end, _, _ = lbfgs_calls(None, ROSENBROCK, ROSENBROCK_X0, ROSENBROCK_TOL, 120)
    assert wolfe is not None and wolfe <= 50, wolfe
    assert plain is not None and plain <= 95, plain
    assert wolfe_end < 1e-4 and plain_end < 1e-4
    adam = run_optimizer(ROSENBROCK_OPTIMIZERS["adam"], ROSENBROCK, ROSENBROCK_X0, 3300, tol=ROSENBROCK_TOL)
    assert 40 * wolfe < adam.iterations_to_converge, (wolfe, adam.iterations_to_converge)


def test_rest_lbfgs_on_the_quadratic_line_search_changes_nothing():
    # Measured: 7 calls before the first point within 1e-3, with and without the line search, and
    # the same points: the strong Wolfe search accepts the first trial step t = 1 at every iteration.
    wolfe, _, _, wolfe_seen = lbfgs_calls("strong_wolfe", ILL_QUADRATIC, [1.0, 1.0], ILL_TOL, 12)
    plain, _, _, plain_seen = lbfgs_calls(None, ILL_QUADRATIC, [1.0, 1.0], ILL_TOL, 12)
    assert wolfe == plain and wolfe <= 8, (wolfe, plain)
    assert np.array_equal(np.array(wolfe_seen[:10]), np.array(plain_seen[:10]))


# The spiral MLP of tests/unit/test_mlp.py (300 points, [2, 32, 32, 3] tanh, 100 epochs of batches
# of 32, seed 0); Adam at lr 0.01 ends at 0.030. Measured final full-set losses in the comments.
REST_MLP = {
    "adagrad": (lambda p: Adagrad(p, lr=0.1), 0.08),  # 0.068 (default lr 0.01: 0.85)
    "adadelta": (lambda p: Adadelta(p), 0.30),  # 0.262
    "rmsprop": (lambda p: RMSprop(p), 0.03),  # 0.023
    "adamax": (lambda p: Adamax(p, lr=0.01), 0.20),  # 0.176 (default lr 2e-3: 0.84)
    "asgd": (lambda p: ASGD(p, lr=0.3), 0.40),  # 0.331 (default lr 1e-2: 0.87)
    "nadam": (lambda p: NAdam(p), 0.37),  # 0.329
    "radam": (lambda p: RAdam(p, lr=0.01), 0.08),  # 0.069 (default lr 1e-3: 0.86)
    "adafactor": (lambda p: Adafactor(p), 0.17),  # 0.146
}


@pytest.fixture(scope="module")
def spirals():
    return make_classification_data(300, seed=0, turns=0.75, noise=0.2)


def mlp_final_loss(make, spirals, batch_size=32):
    X, y = spirals
    model = MLP([2, 32, 32, 3], seed=0)
    return train(model, make(model.parameters()), X, y, 100, batch_size, 0).losses[-1]


@pytest.mark.parametrize("name", REST_MLP)
def test_rest_mlp_every_optimizer_trains(spirals, name):
    make, bound = REST_MLP[name]
    loss = mlp_final_loss(make, spirals)
    assert loss < bound, f"{name}: loss {loss:.4f} after 100 epochs (start 1.13)"


def test_rest_rprop_trains_the_mlp_full_batch_only(spirals):
    # Measured: full batch (one step per epoch) 0.0112; batches of 32: 0.866 (the start is 1.13).
    assert mlp_final_loss(lambda p: Rprop(p), spirals, batch_size=300) < 0.013
    assert mlp_final_loss(lambda p: Rprop(p), spirals, batch_size=32) > 0.8


def test_rest_lbfgs_trains_the_mlp_full_batch_in_100_evaluations(spirals):
    # Measured: loss 0.0110 after 100 closure calls (each a full pass over the 300 points, as one
    # epoch of batches is): below Adam's 0.030 after 100 epochs.
    X, y = spirals
    model = MLP([2, 32, 32, 3], seed=0)
    optimizer = LBFGS(model.parameters(), line_search_fn="strong_wolfe")
    losses = []

    def closure():
        losses.append(model.loss_and_gradients(X, y))
        return losses[-1]

    while len(losses) < 101:
        optimizer.step(closure)
    assert losses[0] == pytest.approx(1.1253, abs=1e-4)
    assert losses[100] < 0.013, losses[100]
