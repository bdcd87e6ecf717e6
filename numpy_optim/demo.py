r"""The README's figures: optimizer paths, loss curves, schedules, Adam + L2 vs AdamW, parity.

Run ``python -m numpy_optim.demo --out docs/figures`` (``nox -s demo``; ``--parity-json PATH``
picks the parity report, by default ``reports/parity.json`` if present, else the committed
``docs/results/parity.json``; ``--only FILE ...`` some figures). matplotlib is an optional
extra (``numpy_optim[demo]``) and is imported only inside the plotting functions, with the
Agg backend (without it the command says what to install and exits with status 2); torch,
when installed, only overlays the schedules. ``import numpy_optim`` does not import this
module. The figures hold nothing that changes from run to run (no times, no dates, no
software version in the PNG): rendering again gives the same bytes.

Each figure has two halves: a function that measures (``rosenbrock_paths``,
``ill_conditioned_paths``, ``loss_curves``, ``rest_of_torch_optim``, ``schedule_curves``,
``weight_distribution``, ``weight_decay_quantization_runs``, ``float16_state``, ``load_parity``)
and returns plain numbers, and a ``plot_*`` function that draws those numbers and returns
the Figure (:func:`build_figures` makes them all, :func:`render_all` writes them). The
measuring functions use the settings of the unit tests (tests/unit/test_convergence.py,
test_mlp.py, test_adam_vs_adamw.py, test_float16_state.py), so a figure shows what a test
asserts, and the iteration counts in the legends come from
:func:`numpy_optim.problems.run_optimizer`, the code the tests use.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .lbfgs import LBFGS
from .mlp import MLP, make_classification_data, train
from .nadam import NAdam
from .optimizer import Optimizer
from .problems import Problem, Rosenbrock, Run, ill_conditioned_quadratic, quadratic_bowl, run_optimizer
from .quantization import DecayReport, weight_decay_quantization
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedulers import CosineScheduler, LRScheduler, StepDecayScheduler, WarmupCosineScheduler
from .sgd import SGD
from .verification import (
    FLOAT16_SCALES,
    FLOAT16_TINY,
    adam_float16_training,
    adam_moments_in_float16,
    float16_underflow_thresholds,
    train_on_gradient_noise,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Resolution of every PNG; widths are 8 in (960 px), which reads well scaled to a README's ~800 px.
DPI = 120
#: File name -> figure size in inches (the PNG is exactly size * DPI pixels).
FIGURES: dict[str, tuple[float, float]] = {
    "rosenbrock_paths.png": (8.0, 5.0),
    "ill_conditioned_paths.png": (8.0, 5.0),
    "loss_curves.png": (8.0, 4.5),
    "rest_of_torch_optim.png": (8.0, 7.5),
    "schedules.png": (8.0, 4.0),
    "lr_schedulers.png": (12.0, 11.0),
    "adam_l2_vs_adamw.png": (8.0, 4.0),
    "weight_decay_quantization.png": (12.0, 7.0),
    "float16_state.png": (8.0, 8.0),
    "parity.png": (8.0, 5.5),
}

#: One colour per optimizer, the same in every figure.
COLORS = {
    "sgd": "C0", "momentum": "C1", "nesterov": "C2", "adam": "C3", "adamw": "C4",
    "adagrad": "C9", "adadelta": "C5", "rmsprop": "C6", "adamax": "C8", "asgd": "navy", "rprop": "teal",
    "nadam": "darkgoldenrod", "radam": "darkviolet", "adafactor": "C7", "lbfgs": "0.45", "lbfgs_wolfe": "k",
}
NAMES = {
    "sgd": "SGD", "momentum": "SGD + momentum", "nesterov": "Nesterov", "adam": "Adam", "adamw": "AdamW",
    "adagrad": "Adagrad", "adadelta": "Adadelta", "rmsprop": "RMSprop", "adamax": "Adamax", "asgd": "ASGD",
    "rprop": "Rprop", "nadam": "NAdam", "radam": "RAdam", "adafactor": "Adafactor",
    "lbfgs": "LBFGS", "lbfgs_wolfe": "LBFGS, strong Wolfe",
}

MakeOptimizer = Callable[[list[dict[str, Any]]], Optimizer]

#: What ``python -m numpy_optim.demo`` says (on stderr, exit status 2) when matplotlib does not import.
MISSING_MATPLOTLIB = 'numpy_optim.demo needs matplotlib (the demo extra): pip install "numpy_optim[demo]"'


@dataclass(frozen=True)
class Setting:
    """An optimizer configuration: how to build it and how the legend describes it."""

    make: MakeOptimizer
    hyper: str  # e.g. "lr 1e-3, momentum 0.9"


# ---------------------------------------------------------------------------------------
# Settings (those of the unit tests)
# ---------------------------------------------------------------------------------------

# tests/unit/test_convergence.py: Rosenbrock from (-1.5, 2); SGD family lr 1e-3 (SGD diverges
# from this start for lr >= 2.5e-3), Adam lr 1e-2. AdamW (not in that test) takes Adam's lr
# and its default weight_decay 0.01.
ROSENBROCK = Rosenbrock()
ROSENBROCK_X0 = (-1.5, 2.0)
ROSENBROCK_STEPS = 15000
ROSENBROCK_TOL = 1e-2
ROSENBROCK_SETTINGS: dict[str, Setting] = {
    "sgd": Setting(lambda e: SGD(e, lr=1e-3), "lr 1e-3"),
    "momentum": Setting(lambda e: SGD(e, lr=1e-3, momentum=0.9), "lr 1e-3, β 0.9"),
    "nesterov": Setting(lambda e: SGD(e, lr=1e-3, momentum=0.9, nesterov=True), "lr 1e-3, β 0.9"),
    "adam": Setting(lambda e: Adam(e, lr=1e-2), "lr 1e-2"),
    "adamw": Setting(lambda e: AdamW(e, lr=1e-2, weight_decay=0.01), "lr 1e-2, λ 0.01"),
}

# tests/unit/test_convergence.py: A = diag(1, 100), x0 = (1, 1), tolerance 1e-3; SGD and
# momentum at lr 2 / (1 + kappa), the best constant step for gradient descent; Adam lr 0.05.
# Nesterov diverges at that rate (its stability limit on a quadratic is
# lr * lambda_max < 2 (1 + beta) / (1 + 2 beta) = 1.36 for beta 0.9; 2/(1+kappa) * 100 = 1.98),
# so it runs at lr 1 / lambda_max = 0.01 and the divergence is reported in the figure.
ILL_KAPPA = 100.0
ILL = ill_conditioned_quadratic(2, ILL_KAPPA)
ILL_X0 = (1.0, 1.0)
ILL_STEPS = 2000
ILL_TOL = 1e-3
ILL_LR = 2.0 / (1.0 + ILL_KAPPA)
ILL_NESTEROV_LR = 1.0 / ILL_KAPPA
ILL_SETTINGS: dict[str, Setting] = {
    "sgd": Setting(lambda e: SGD(e, lr=ILL_LR), f"lr 2/(1+κ) = {ILL_LR:.4f}"),
    "momentum": Setting(lambda e: SGD(e, lr=ILL_LR, momentum=0.9), f"lr {ILL_LR:.4f}, β 0.9"),
    "nesterov": Setting(
        lambda e: SGD(e, lr=ILL_NESTEROV_LR, momentum=0.9, nesterov=True), f"lr {ILL_NESTEROV_LR:g}, β 0.9"
    ),
    "adam": Setting(lambda e: Adam(e, lr=0.05), "lr 0.05"),
    "adamw": Setting(lambda e: AdamW(e, lr=0.05, weight_decay=0.01), "lr 0.05, λ 0.01"),
}
ILL_NESTEROV_AT_SGD_LR: MakeOptimizer = lambda e: SGD(e, lr=ILL_LR, momentum=0.9, nesterov=True)

# tests/unit/test_convergence.py: the bowl A = diag(linspace(1, 2, 5)) from x0 = (1, ..., 1), lr 0.01 for all.
BOWL = quadratic_bowl(5)
BOWL_X0 = np.ones(5)
BOWL_STEPS = 3000
BOWL_TOL = 1e-3
BOWL_SETTINGS: dict[str, Setting] = {
    "sgd": Setting(lambda e: SGD(e, lr=0.01), "lr 0.01"),
    "momentum": Setting(lambda e: SGD(e, lr=0.01, momentum=0.9), "lr 0.01, β 0.9"),
    "nesterov": Setting(lambda e: SGD(e, lr=0.01, momentum=0.9, nesterov=True), "lr 0.01, β 0.9"),
    "adam": Setting(lambda e: Adam(e, lr=0.01), "lr 0.01"),
    "adamw": Setting(lambda e: AdamW(e, lr=0.01, weight_decay=0.01), "lr 0.01, λ 0.01"),
}

# tests/unit/test_mlp.py: three spirals (300 points, 0.75 turns, noise 0.2), MLP [2, 32, 32, 3]
# tanh, batches of 32 (10 steps an epoch), 100 epochs, seed 0.
MLP_DATA_ARGS: dict[str, Any] = {"n_samples": 300, "seed": 0, "turns": 0.75, "noise": 0.2}
MLP_SIZES = [2, 32, 32, 3]
MLP_EPOCHS, MLP_BATCH, MLP_SEED = 100, 32, 0
MLP_SETTINGS: dict[str, Setting] = {
    "sgd": Setting(lambda p: SGD(p, lr=0.3), "lr 0.3"),
    "momentum": Setting(lambda p: SGD(p, lr=0.03, momentum=0.9), "lr 0.03, β 0.9"),
    "nesterov": Setting(lambda p: SGD(p, lr=0.03, momentum=0.9, nesterov=True), "lr 0.03, β 0.9"),
    "adam": Setting(lambda p: Adam(p, lr=0.01), "lr 0.01"),
    "adamw": Setting(lambda p: AdamW(p, lr=0.01, weight_decay=0.01), "lr 0.01, λ 0.01"),
}

# tests/unit/test_adam_vs_adamw.py: 200 parameters in 10 groups whose data gradient is pure
# zero-mean noise of std 0.01 ... 10, all starting at 1; lr 1e-3, lambda 0.1, 2000 steps, seed 0.
NOISE_LEVELS, NOISE_REPLICAS = 10, 20
NOISE_SIGMAS = np.repeat(np.logspace(-2, 1, NOISE_LEVELS), NOISE_REPLICAS)
NOISE_LR, NOISE_WEIGHT_DECAY, NOISE_STEPS, NOISE_SEED = 1e-3, 0.1, 2000, 0

# The rest of torch.optim (rest_of_torch_optim.png; tests/unit/test_convergence.py checks the
# numbers): the problems above, with Adam at its settings there as the reference. On the two
# small problems each optimizer runs at torch's defaults where they reach the tolerance within
# the budget, otherwise at the learning rate nearest the default on the ladder
# default x {1/3, 3, 1/10, 10, 1/30, 30} that does (measured). On the MLP, those hopeless at
# their defaults (loss >= 0.84 after 100 epochs, from 1.13) take a borrowed lr: Adagrad its
# 0.1 from the small problems, Adamax and RAdam Adam's 0.01, ASGD SGD's 0.3 (loss_curves.png).
# The legend names every lr that is not the default. On diag(1, 100) from (1, 1) the
# per-coordinate methods are scale invariant (up to eps): both coordinates follow nearly one path.
REST = ("adagrad", "adadelta", "rmsprop", "adamax", "asgd", "rprop", "nadam", "radam", "adafactor")
REST_ROSENBROCK_SETTINGS: dict[str, Setting] = {
    "adam": ROSENBROCK_SETTINGS["adam"],
    "adagrad": Setting(lambda e: Adagrad(e, lr=0.1), "lr 0.1"),  # default 0.01: ends 1.9 away
    "adadelta": Setting(lambda e: Adadelta(e, lr=0.03), "lr 0.03"),  # 1, 0.1: end 0.75, 0.053 away
    "rmsprop": Setting(lambda e: RMSprop(e, lr=3e-3), "lr 3e-3"),  # default 1e-2: ends 0.036 away
    "adamax": Setting(lambda e: Adamax(e), "default"),
    "asgd": Setting(lambda e: ASGD(e, lr=1e-3), "lr 1e-3"),  # default 1e-2 diverges, as SGD's does
    "rprop": Setting(lambda e: Rprop(e), "default"),
    "nadam": Setting(lambda e: NAdam(e), "default"),
    "radam": Setting(lambda e: RAdam(e), "default"),
    # no lr reaches 1e-2 in 15000 steps: Adafactor's step is min(lr, 1/sqrt(t)) * RMS(x)
    "adafactor": Setting(lambda e: Adafactor(e), "default"),
}
REST_ILL_SETTINGS: dict[str, Setting] = {
    "adam": ILL_SETTINGS["adam"],
    "adagrad": Setting(lambda e: Adagrad(e, lr=0.1), "lr 0.1"),  # default 0.01: ends 0.42 away
    "adadelta": Setting(lambda e: Adadelta(e), "default"),
    "rmsprop": Setting(lambda e: RMSprop(e), "default"),
    "adamax": Setting(lambda e: Adamax(e), "default"),
    "asgd": Setting(lambda e: ASGD(e), "default"),
    "rprop": Setting(lambda e: Rprop(e), "default"),
    "nadam": Setting(lambda e: NAdam(e), "default"),
    "radam": Setting(lambda e: RAdam(e, lr=3e-3), "lr 3e-3"),  # default 1e-3: ends 0.19 away
    "adafactor": Setting(lambda e: Adafactor(e, lr=0.03), "lr 0.03"),  # default 1e-2: ends 1.9e-3 away
}
REST_MLP_SETTINGS: dict[str, Setting] = {
    "adam": MLP_SETTINGS["adam"],
    "adagrad": Setting(lambda p: Adagrad(p, lr=0.1), "lr 0.1"),  # default 0.01: loss 0.85
    "adadelta": Setting(lambda p: Adadelta(p), "default"),
    "rmsprop": Setting(lambda p: RMSprop(p), "default"),
    "adamax": Setting(lambda p: Adamax(p, lr=0.01), "lr 0.01"),  # default 2e-3: loss 0.84
    "asgd": Setting(lambda p: ASGD(p, lr=0.3), "lr 0.3"),  # default 1e-2: loss 0.87
    "rprop": Setting(lambda p: Rprop(p), "default, full batch"),  # on batches of 32: loss 0.87
    "nadam": Setting(lambda p: NAdam(p), "default"),
    "radam": Setting(lambda p: RAdam(p, lr=0.01), "lr 0.01"),  # default 1e-3: loss 0.86
    "adafactor": Setting(lambda p: Adafactor(p), "default"),
}
#: Rprop is a full-batch method (sign of the gradient, step sizes grown while it keeps its sign):
#: it takes one step per epoch on the whole set.
REST_MLP_FULL_BATCH = ("rprop",)
# LBFGS at torch's defaults (lr 1, max_iter 20, history_size 100), with and without the line
# search; on the MLP only with it, full batch: one closure call is one pass over the data,
# as one epoch of mini-batches is, so evaluations and epochs share the x axis.
LBFGS_SETTINGS: dict[str, Setting] = {
    "lbfgs": Setting(lambda e: LBFGS(e), "default: no line search"),
    "lbfgs_wolfe": Setting(lambda e: LBFGS(e, line_search_fn="strong_wolfe"), "default lr 1, max_iter 20"),
}
LBFGS_MLP = ("lbfgs_wolfe",)

# The schedules drawn (a 100-step run from lr 0.1).
SCHEDULE_STEPS = 100
SCHEDULES: dict[str, tuple[LRScheduler, str]] = {
    "StepDecayScheduler": (StepDecayScheduler(initial_lr=0.1, decay_factor=0.5, step_size=25), "StepLR"),
    "CosineScheduler": (CosineScheduler(max_lr=0.1, min_lr=0.001, total_steps=SCHEDULE_STEPS), "CosineAnnealingLR"),
    "WarmupCosineScheduler": (
        WarmupCosineScheduler(max_lr=0.1, min_lr=0.001, warmup_steps=10, total_steps=SCHEDULE_STEPS),
        "SequentialLR(\nLambdaLR t/10,\nCosineAnnealingLR)",
    ),
}


# ---------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------


def _runs(settings: dict[str, Setting], problem: Any, x0: Any, steps: int, tol: float) -> dict[str, Run]:
    return {name: run_optimizer(s.make, problem, x0, steps, tol=tol) for name, s in settings.items()}


def rosenbrock_paths() -> dict[str, Run]:
    """Every optimizer on Rosenbrock from (-1.5, 2), ``ROSENBROCK_STEPS`` steps, tolerance 0.01."""
    return _runs(ROSENBROCK_SETTINGS, ROSENBROCK, ROSENBROCK_X0, ROSENBROCK_STEPS, ROSENBROCK_TOL)


def ill_conditioned_paths() -> dict[str, Run]:
    """Every optimizer on diag(1, 100) from (1, 1), ``ILL_STEPS`` steps, tolerance 1e-3.

    Also ``"nesterov_at_sgd_lr"``: Nesterov at SGD's rate 2 / (1 + kappa), which diverges.
    """
    runs = _runs(ILL_SETTINGS, ILL, ILL_X0, ILL_STEPS, ILL_TOL)
    runs["nesterov_at_sgd_lr"] = run_optimizer(ILL_NESTEROV_AT_SGD_LR, ILL, ILL_X0, ILL_STEPS, tol=ILL_TOL)
    return runs


def bowl_runs() -> dict[str, Run]:
    """Every optimizer on the 5-dimensional quadratic bowl, ``BOWL_STEPS`` steps at lr 0.01."""
    return _runs(BOWL_SETTINGS, BOWL, BOWL_X0, BOWL_STEPS, BOWL_TOL)


def mlp_losses(settings: dict[str, Setting] | None = None, full_batch: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Full-set training loss of the spiral MLP before training and after each epoch, per optimizer.

    ``settings`` defaults to ``MLP_SETTINGS``; the optimizers named in ``full_batch`` train
    on the whole set at each step (one step per epoch), the others on batches of ``MLP_BATCH``.
    """
    X, y = make_classification_data(**MLP_DATA_ARGS)
    out = {}
    for name, setting in (MLP_SETTINGS if settings is None else settings).items():
        model = MLP(MLP_SIZES, seed=MLP_SEED)
        batch = len(X) if name in full_batch else MLP_BATCH
        history = train(model, setting.make(model.parameters()), X, y, MLP_EPOCHS, batch, MLP_SEED)
        out[name] = np.asarray(history.losses)
    return out


def mlp_steps_per_epoch() -> int:
    return math.ceil(MLP_DATA_ARGS["n_samples"] / MLP_BATCH)


def loss_curves(rosenbrock: dict[str, Run] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Loss per step on the bowl, Rosenbrock (``rosenbrock`` if given) and the MLP (per epoch)."""
    rosenbrock = rosenbrock_paths() if rosenbrock is None else rosenbrock
    return {
        "bowl": {name: run.losses for name, run in bowl_runs().items()},
        "rosenbrock": {name: run.losses for name, run in rosenbrock.items()},
        "mlp": mlp_losses(),
    }


def _lbfgs(optimizer: Optimizer) -> LBFGS:
    if not isinstance(optimizer, LBFGS):
        raise TypeError(f"expected an LBFGS optimizer (its step takes a closure), got {type(optimizer).__name__}")
    return optimizer


def lbfgs_run(make_optimizer: MakeOptimizer, problem: Problem, x0: Any, max_evaluations: int, tol: float) -> Run:
    """LBFGS on ``problem``, recorded per closure evaluation: row ``k`` is the point after ``k`` evaluations.

    LBFGS calls its closure (the gradient written into the entry, the loss returned)
    several times per step: in the line search and once at the start of every step. Its
    cost is counted in evaluations, each of which a gradient method's step also needs one
    of: row 0 of the trajectory is ``x0``, row ``k`` the point of the closure's call
    ``k + 1`` (line-search trial points included), the last row where the parameters are
    after the last step; ``iterations_to_converge`` therefore counts evaluations. Steps of
    ``make_optimizer``'s ``max_iter`` run until ``max_evaluations`` calls (the record is
    cut there) or until a step leaves the point unchanged (converged: torch returns at
    once when max |g| <= ``tolerance_grad``).
    """
    x = np.array(x0, dtype=np.float64)
    grad = np.zeros_like(x)
    optimizer = _lbfgs(make_optimizer([{"params": x, "grad": grad}]))
    points: list[np.ndarray] = []

    def closure() -> float:
        points.append(x.copy())
        grad[...] = problem.gradient(x)
        return problem.value(x)

    with np.errstate(over="ignore", invalid="ignore"):
        while len(points) < max_evaluations:
            before = x.copy()
            optimizer.step(closure)
            if np.array_equal(x, before) or not np.all(np.isfinite(x)):
                break
        rows = points[: max_evaluations + 1] if len(points) > max_evaluations else [*points, x.copy()]
        trajectory = np.array(rows)
        losses = np.array([problem.value(p) for p in trajectory])
        diverged = not (np.all(np.isfinite(trajectory)) and np.all(np.isfinite(losses)))
        distances = np.linalg.norm(trajectory - np.asarray(problem.minimizer, dtype=np.float64), axis=1)
    inside = np.flatnonzero(distances < tol)
    return Run(trajectory, losses, int(inside[0]) if inside.size else None, distances, float(tol), diverged)


def lbfgs_mlp_losses(make_optimizer: MakeOptimizer, evaluations: int = MLP_EPOCHS) -> np.ndarray:
    """Full-set loss of the spiral MLP trained full batch by LBFGS, after 0, 1, ..., ``evaluations`` closure calls.

    One call is one pass over the data (loss and gradients of all points), as one epoch of
    mini-batches is. Entry ``k`` is the loss at the point of call ``k + 1`` (line-search
    trial points included), the last entry the loss where the parameters are after the
    last step; the steps stop once the calls reach ``evaluations`` (cut there) or a step
    leaves the parameters unchanged.
    """
    X, y = make_classification_data(**MLP_DATA_ARGS)
    model = MLP(MLP_SIZES, seed=MLP_SEED)
    optimizer = _lbfgs(make_optimizer(model.parameters()))
    params = [entry["params"] for entry in model.parameters()]
    losses: list[float] = []

    def closure() -> float:
        losses.append(model.loss_and_gradients(X, y))
        return losses[-1]

    while len(losses) < evaluations:
        before = [p.copy() for p in params]
        optimizer.step(closure)
        if all(np.array_equal(p, b) for p, b in zip(params, before)):
            break
    if len(losses) > evaluations:
        return np.asarray(losses[: evaluations + 1])
    return np.asarray([*losses, model.loss(X, y)])


def rest_of_torch_optim(rosenbrock: dict[str, Run] | None = None) -> dict[str, dict[str, Any]]:
    """Adagrad ... Adafactor and LBFGS, with Adam as the reference, on Rosenbrock, diag(1, 100) and the MLP.

    Returns ``{"rosenbrock": {name: Run}, "ill": {name: Run}, "mlp": {name: losses}}`` with
    the settings ``REST_ROSENBROCK_SETTINGS``, ``REST_ILL_SETTINGS``, ``REST_MLP_SETTINGS``
    (the problems, budgets and tolerances of :func:`rosenbrock_paths`,
    :func:`ill_conditioned_paths`, :func:`mlp_losses`); LBFGS's entries (``LBFGS_SETTINGS``)
    are per closure evaluation (:func:`lbfgs_run`, :func:`lbfgs_mlp_losses`). Adam's
    Rosenbrock run is taken from ``rosenbrock`` (:func:`rosenbrock_paths`) when given.
    """
    settings = dict(REST_ROSENBROCK_SETTINGS)
    ros = {}
    if rosenbrock is not None and "adam" in rosenbrock:
        ros["adam"] = rosenbrock["adam"]
        del settings["adam"]
    ros.update(_runs(settings, ROSENBROCK, ROSENBROCK_X0, ROSENBROCK_STEPS, ROSENBROCK_TOL))
    ill = _runs(REST_ILL_SETTINGS, ILL, ILL_X0, ILL_STEPS, ILL_TOL)
    for name, setting in LBFGS_SETTINGS.items():
        ros[name] = lbfgs_run(setting.make, ROSENBROCK, ROSENBROCK_X0, ROSENBROCK_STEPS, ROSENBROCK_TOL)
        ill[name] = lbfgs_run(setting.make, ILL, ILL_X0, ILL_STEPS, ILL_TOL)
    mlp = mlp_losses(REST_MLP_SETTINGS, full_batch=REST_MLP_FULL_BATCH)
    for name in LBFGS_MLP:
        mlp[name] = lbfgs_mlp_losses(LBFGS_SETTINGS[name].make)
    return {"rosenbrock": ros, "ill": ill, "mlp": mlp}


def torch_schedule_curves(steps: int = SCHEDULE_STEPS) -> dict[str, np.ndarray] | None:
    """torch's learning rate at steps 0 .. ``steps`` for each of ``SCHEDULES``; None without torch.

    The torch constructions are the parity registry's (``parity.registry.SCHEDULERS``),
    which imports torch; numpy_optim itself never does.
    """
    try:
        from parity.registry import torch_learning_rates
    except ImportError:  # torch is not installed
        return None
    out = {}
    for name, (ours, _) in SCHEDULES.items():
        kwargs = {key: getattr(ours, key) for key in inspect.signature(type(ours)).parameters}
        out[name] = np.array(torch_learning_rates(type(ours).__name__, kwargs, steps), dtype=np.float64)
    return out


def schedule_curves(steps: int = SCHEDULE_STEPS, with_torch: bool = True) -> dict[str, Any]:
    """``{"ours": {name: lrs}, "torch": {name: lrs} or None}`` for steps 0 .. ``steps``."""
    ours = {name: np.array([s.get_lr(t) for t in range(steps + 1)]) for name, (s, _) in SCHEDULES.items()}
    return {"ours": ours, "torch": torch_schedule_curves(steps) if with_torch else None}


#: torch.optim.lr_scheduler's schedulers (and swa_utils.SWALR) as lr_schedulers.png draws them:
#: name -> build(lr_scheduler, swa_utils, optimizer). The same function builds ours
#: (numpy_optim.lr_scheduler, numpy_optim.swa_utils) and torch's (torch.optim.lr_scheduler,
#: torch.optim.swa_utils): the APIs are the same. The optimizer is SGD with lr 0.1 and momentum 0.9.
LR_SCHEDULER_STEPS = 100
LR_SCHEDULERS: dict[str, Callable[[Any, Any, Any], Any]] = {
    "LambdaLR": lambda S, A, o: S.LambdaLR(o, lambda e: 1 / (1 + 0.05 * e)),
    "MultiplicativeLR": lambda S, A, o: S.MultiplicativeLR(o, lambda e: 0.97),
    "StepLR": lambda S, A, o: S.StepLR(o, step_size=20, gamma=0.5),
    "MultiStepLR": lambda S, A, o: S.MultiStepLR(o, milestones=[30, 60, 80], gamma=0.5),
    "ConstantLR": lambda S, A, o: S.ConstantLR(o, factor=0.5, total_iters=40),
    "LinearLR": lambda S, A, o: S.LinearLR(o, start_factor=0.1, total_iters=50),
    "ExponentialLR": lambda S, A, o: S.ExponentialLR(o, gamma=0.97),
    "PolynomialLR": lambda S, A, o: S.PolynomialLR(o, total_iters=80, power=2.0),
    "CosineAnnealingLR": lambda S, A, o: S.CosineAnnealingLR(o, T_max=40, eta_min=0.01),
    "SequentialLR": lambda S, A, o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=20), S.CosineAnnealingLR(o, T_max=80)], milestones=[20]),
    "ChainedScheduler": lambda S, A, o: S.ChainedScheduler(
        [S.ExponentialLR(o, gamma=0.98), S.StepLR(o, step_size=25, gamma=0.5)]),
    "ReduceLROnPlateau": lambda S, A, o: S.ReduceLROnPlateau(o, patience=5, factor=0.5),
    "CyclicLR": lambda S, A, o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=10, mode="triangular2"),
    "OneCycleLR": lambda S, A, o: S.OneCycleLR(o, max_lr=0.1, total_steps=LR_SCHEDULER_STEPS),
    "CosineAnnealingWarmRestarts": lambda S, A, o: S.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001),
    "SWALR": lambda S, A, o: A.SWALR(o, swa_lr=0.02, anneal_epochs=30),
}


def plateau_metric(step: int) -> float:
    """The validation loss ReduceLROnPlateau sees in the figure: improving, then flat from step 30."""
    return 1.0 / (1 + min(step, 30))


def lr_scheduler_curve(lr_scheduler: Any, swa_utils: Any, optimizer: Any, name: str,
                       steps: int = LR_SCHEDULER_STEPS) -> np.ndarray:
    """The learning rate (first entry or group) at steps 0 .. ``steps - 1`` of
    ``LR_SCHEDULERS[name]``, built on ``optimizer`` from the given modules (numpy_optim's or
    torch's): ``optimizer.step()`` then ``scheduler.step()``, as a training loop does."""
    scheduler = LR_SCHEDULERS[name](lr_scheduler, swa_utils, optimizer)
    lrs = []
    for step in range(steps):
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        if name == "ReduceLROnPlateau":
            scheduler.step(plateau_metric(step))
        else:
            scheduler.step()
    return np.array(lrs)


def lr_scheduler_curves(with_torch: bool = True) -> dict[str, Any]:
    """``{"ours": {name: lrs}, "torch": {name: lrs} or None}`` for every scheduler of
    :data:`LR_SCHEDULERS` (torch's through ``parity.registry``; numpy_optim never imports torch)."""
    from . import lr_scheduler, swa_utils

    ours = {}
    for name in LR_SCHEDULERS:
        entries = [{"params": np.zeros(4), "grad": np.full(4, 0.1)}]
        ours[name] = lr_scheduler_curve(lr_scheduler, swa_utils, SGD(entries, lr=0.1, momentum=0.9), name)
    theirs = None
    if with_torch:
        try:
            from parity.registry import torch_lr_scheduler_curve
        except ImportError:  # torch is not installed
            pass
        else:
            theirs = {name: torch_lr_scheduler_curve(name) for name in LR_SCHEDULERS}
    return {"ours": ours, "torch": theirs}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def weight_distribution() -> dict[str, Any]:
    """Adam + L2 and AdamW after ``NOISE_STEPS`` steps on pure gradient noise (test_adam_vs_adamw.py).

    Returns, per optimizer (``"adam_l2"``, ``"adamw"``): final weights ``w``, measured
    gradient ``variance``, ``effective_decay`` = -log|w_T| / T (mean per-step log-shrink),
    ``cv`` (std / mean of |w|) and ``spearman`` (rank correlation of variance and effective
    decay); and ``uniform_shrink`` = (1 - lr lambda)^T, AdamW's nominal factor.
    """
    out: dict[str, Any] = {"uniform_shrink": (1 - NOISE_LR * NOISE_WEIGHT_DECAY) ** NOISE_STEPS}
    for key, cls in (("adam_l2", Adam), ("adamw", AdamW)):
        w, variance = train_on_gradient_noise(
            cls, NOISE_SIGMAS, lr=NOISE_LR, weight_decay=NOISE_WEIGHT_DECAY, steps=NOISE_STEPS, seed=NOISE_SEED
        )
        decay = -np.log(np.abs(w)) / NOISE_STEPS
        out[key] = {
            "w": w,
            "variance": variance,
            "effective_decay": decay,
            "cv": float(np.std(np.abs(w)) / np.mean(np.abs(w))),
            "spearman": _spearman(variance, decay),
        }
    return out


#: weight_decay_quantization.png (tests/unit/test_quantization.py checks its numbers): the
#: spiral MLP trained by AdamW at each numpy_optim.quantization.WEIGHT_DECAYS, from these seeds
#: (initialisation and batch order; the data are the same), quantized to int8 and int4.
QUANT_SEEDS = (0, 1, 2, 3, 4)


def weight_decay_quantization_runs() -> dict[int, list[DecayReport]]:
    """``{seed: weight_decay_quantization(seed=seed)}`` for each of ``QUANT_SEEDS`` (int8 and int4, ~1 s a seed)."""
    return {seed: weight_decay_quantization(seed=seed) for seed in QUANT_SEEDS}


#: float16_state.png (tests/unit/test_float16_state.py checks its numbers): Adam (lr 1e-3) for
#: FLOAT16_STEPS steps on verification.adam_float16_training's problem, whose gradients start at
#: 1e-4 ... 1e-7, in each of verification.FLOAT16_CONFIGS; and the moments Adam stores after
#: FLOAT16_PROBE_STEPS steps of each constant gradient of FLOAT16_PROBE, float16 and float32 state.
FLOAT16_STEPS = 3000
FLOAT16_PROBE = np.logspace(-7, -1, 121)
FLOAT16_PROBE_STEPS = 1000
FLOAT16_STYLES: dict[str, tuple[str, str, str]] = {  # name -> (label, colour, line style)
    "float16_state": ("float16 state (torch's default)", "C3", "-"),
    "float16_state_tiny_eps": ("float16 state, eps = 2⁻²⁴", "C1", "-"),
    "float32_state": ("state_dtype=np.float32", "C0", "-"),
    "master_weights": ("master_weights=True", "C2", "--"),
    "float32": ("float32 parameters and state", "k", ":"),
}


def float16_state() -> dict[str, Any]:
    """Adam's float16 moments against float32 ones: ``{"thresholds", "moments", "training"}``.

    ``"thresholds"``: :func:`~numpy_optim.verification.float16_underflow_thresholds`;
    ``"moments"``: ``{"float16": ..., "float32": ...}``, what
    :func:`~numpy_optim.verification.adam_moments_in_float16` stores for ``FLOAT16_PROBE``
    after ``FLOAT16_PROBE_STEPS`` steps with each state dtype; ``"training"``:
    :func:`~numpy_optim.verification.adam_float16_training` for ``FLOAT16_STEPS`` steps.
    """
    return {
        "thresholds": float16_underflow_thresholds(),
        "moments": {
            "float16": adam_moments_in_float16(FLOAT16_PROBE, FLOAT16_PROBE_STEPS),
            "float32": adam_moments_in_float16(FLOAT16_PROBE, FLOAT16_PROBE_STEPS, state_dtype=np.float32),
        },
        "training": adam_float16_training(steps=FLOAT16_STEPS),
    }


#: Where the parity figure looks for the report, in order: the latest ``nox -s parity`` run's
#: output, then the copy committed with the figures.
PARITY_JSONS = (Path("reports/parity.json"), Path("docs/results/parity.json"))


def find_parity_json(paths: Sequence[Path | str] = PARITY_JSONS) -> Path | None:
    """The first of ``paths`` that is a file, or None."""
    return next((Path(path) for path in paths if Path(path).is_file()), None)


def load_parity(path: Path | str) -> dict[str, Any] | None:
    """The parity report written by ``python -m parity`` (its rows), or None if ``path`` does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    report: dict[str, Any] = json.loads(path.read_text())
    return report


# ---------------------------------------------------------------------------------------
# Plotting
# ---------------------------------------------------------------------------------------


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, with the README's font sizes."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(MISSING_MATPLOTLIB) from error

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.titlesize": 12}
    )
    return plt


def _figure(name: str, **kwargs: Any) -> Any:
    return _pyplot().figure(figsize=FIGURES[name], dpi=DPI, layout="constrained", **kwargs)


def convergence_label(name: str, hyper: str, run: Run) -> str:
    """``"SGD: 11942 iterations\\n(lr 1e-3)"``, or ``"not reached in 15000"`` (with ``"diverged, "`` if it did)."""
    steps = len(run.trajectory) - 1
    if run.iterations_to_converge is not None:
        outcome = f"{run.iterations_to_converge} iterations"
    elif run.diverged:
        outcome = f"diverged, not reached in {steps}"
    else:
        outcome = f"not reached in {steps}"
    return f"{NAMES[name]}: {outcome}\n({hyper})"


def _plot_paths(
    fig_name: str,
    runs: dict[str, Run],
    settings: dict[str, Setting],
    value: Callable[[np.ndarray, np.ndarray], np.ndarray],
    extent: tuple[float, float, float, float],
    levels: np.ndarray,
    minimizer: Sequence[float] | np.ndarray,
    title: str,
    tol: float,
    widths: Sequence[float] | np.ndarray,
    bottom: float = 0.1,
    equal_aspect: bool = True,
) -> Figure:
    """Contours, one path per optimizer, the legend (with iteration counts) to the right."""
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    fig = plt.figure(figsize=FIGURES[fig_name], dpi=DPI)
    ax = fig.add_axes((0.1, bottom, 0.52, 0.88 - bottom))  # a fixed layout: no tight box, so the PNG size is exact
    x0, x1, y0, y1 = extent
    X, Y = np.meshgrid(np.linspace(x0, x1, 400), np.linspace(y0, y1, 400))
    contours = ax.contour(X, Y, value(X, Y), levels=levels, norm=LogNorm(levels[0], levels[-1]), cmap="Greys_r",
                          linewidths=0.6, alpha=0.7)
    ax.clabel(contours, contours.levels[::3], fmt="%.3g", fontsize=9, colors="0.35")
    for width, (name, setting) in zip(widths, settings.items()):
        run = runs[name]
        path = run.trajectory[np.all(np.isfinite(run.trajectory), axis=1)]
        ax.plot(path[:, 0], path[:, 1], "--" if name == "adamw" else "-", color=COLORS[name], lw=width, alpha=0.9,
                label=convergence_label(name, setting.hyper, run))
    start = next(iter(runs.values())).trajectory[0]
    ax.plot(*start, "ks", ms=7, label=f"start ({start[0]:g}, {start[1]:g})")
    ax.plot(*minimizer, "k*", ms=12, label=f"minimum ({minimizer[0]:g}, {minimizer[1]:g})")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if equal_aspect:
        ax.set_aspect("equal", anchor="W")
    ax.set_xlabel("x (parameter 1, no unit)")
    ax.set_ylabel("y (parameter 2, no unit)")
    fig.text(0.02, 0.97, title, fontsize=12, ha="left", va="top")
    ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0,
              title=f"iterations to ‖x − x*‖ < {tol:g}\n(contours: log-spaced levels of f)", title_fontsize=9)
    return fig


def plot_rosenbrock(runs: dict[str, Run]) -> Figure:
    """Rosenbrock contours (log-spaced levels) and each optimizer's path from (-1.5, 2)."""
    a, b = ROSENBROCK.a, ROSENBROCK.b
    return _plot_paths(
        "rosenbrock_paths.png", runs, ROSENBROCK_SETTINGS,
        lambda x, y: (a - x) ** 2 + b * (y - x**2) ** 2,
        (-2.0, 2.0, -1.0, 3.0), np.logspace(-1, 3.5, 13), ROSENBROCK.minimizer,
        f"Rosenbrock f = (1 − x)² + 100 (y − x²)²: paths from (−1.5, 2), {ROSENBROCK_STEPS} steps each",
        ROSENBROCK_TOL,
        widths=np.linspace(4.0, 1.2, len(ROSENBROCK_SETTINGS)),  # the valley is shared: widest drawn first
    )


def plot_ill_conditioned(runs: dict[str, Run]) -> Figure:
    """Contours of f = (x² + 100 y²) / 2 and each optimizer's path from (1, 1)."""
    A = np.asarray(ILL.A)
    fig = _plot_paths(
        "ill_conditioned_paths.png", runs, ILL_SETTINGS,
        lambda x, y: 0.5 * (A[0, 0] * x * x + 2 * A[0, 1] * x * y + A[1, 1] * y * y),
        (-0.35, 1.15, -1.05, 1.05), np.logspace(-3, 2, 11), ILL.minimizer,
        f"Ill-conditioned quadratic f = (x² + {ILL_KAPPA:g} y²) / 2 (κ = {ILL.condition_number:g}): paths from "
        f"(1, 1), {ILL_STEPS} steps each", ILL_TOL, widths=[1.0, 1.3, 1.8, 1.8, 1.8], bottom=0.2, equal_aspect=False,
    )
    bad = runs.get("nesterov_at_sgd_lr")
    if bad is not None:
        finite = np.flatnonzero(np.all(np.isfinite(bad.trajectory), axis=1))
        if bad.diverged:
            what = f"overflows at step {finite[-1] + 1}"
        else:
            what = f"ends at ‖x‖ = {bad.final_distance:.3g}"
        note = (
            f"Nesterov at SGD's lr {ILL_LR:.4f} {what}: lr·λmax = {ILL_LR * ILL_KAPPA:.2f} exceeds its stability "
            f"limit\n2(1 + β)/(1 + 2β) = 1.36, so it is shown at lr 1/λmax = {ILL_NESTEROV_LR:g}."
        )
        fig.text(0.01, 0.01, note, fontsize=9, ha="left", va="bottom")
    return fig


def plot_loss_curves(curves: dict[str, dict[str, np.ndarray]]) -> Figure:
    """Loss against step (log scale) on the bowl, Rosenbrock and the MLP, one panel each."""
    fig = _figure("loss_curves.png")
    axes = fig.subplots(1, 3)
    floor = 1e-30  # the bowl's losses reach 1e-138: the view stops at 1e-30
    panels = [
        ("bowl", "Quadratic bowl (d = 5, κ = 2)", "step", "all lr 0.01"),
        ("rosenbrock", "Rosenbrock", "step (log scale)", "SGD family lr 1e-3,\nAdam family lr 1e-2"),
        ("mlp", "MLP on 3 spirals", f"step ({mlp_steps_per_epoch()} per epoch)",
         "lr: SGD 0.3,\nmomentum 0.03,\nAdam 0.01"),
    ]
    for ax, (key, title, xlabel, note) in zip(axes, panels):
        for name, losses in curves[key].items():
            losses = np.asarray(losses)
            if key == "mlp":
                steps = np.arange(len(losses)) * mlp_steps_per_epoch()
            else:
                steps = np.arange(len(losses))
            if key == "rosenbrock":  # log x: start at step 1
                steps, losses = steps[1:], losses[1:]
            ax.plot(steps, np.maximum(losses, floor * 1e-3), color=COLORS[name], lw=1.4,
                    label=NAMES[name], ls="--" if name == "adamw" else "-")
        ax.set_yscale("log")
        if key == "rosenbrock":
            ax.set_xscale("log")
        if key != "mlp":
            ax.set_ylim(floor, None)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        corner = (0.97, 0.97, "right", "top") if key == "bowl" else (0.03, 0.03, "left", "bottom")
        ax.text(corner[0], corner[1], note, transform=ax.transAxes, ha=corner[2], va=corner[3], fontsize=9,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    axes[0].set_ylabel("loss f(x) (log scale)")
    axes[2].set_ylabel("cross-entropy, full set (log scale)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=5)
    fig.suptitle("Loss against optimizer step")
    return fig


def _outcome(run: Run) -> str:
    """``"2987"`` (iterations, or LBFGS's evaluations, to the tolerance), ``"not reached"`` or ``"diverged"``."""
    if run.iterations_to_converge is not None:
        return str(run.iterations_to_converge)
    return "diverged" if run.diverged else "not reached"


def rest_label(name: str, data: dict[str, dict[str, Any]]) -> str:
    """``"RMSprop: 4752 · 149 · 0.023\\n(lr 3e-3 · default · default)"``: Rosenbrock, quadratic, MLP.

    The numbers are the iterations (LBFGS: closure evaluations) to the tolerance on
    Rosenbrock and on diag(1, 100), and the MLP's loss after the last epoch ("—" where the
    optimizer is not in that panel); the second line the settings, once if all three agree.
    """
    mlp = data["mlp"].get(name)
    numbers = [_outcome(data["rosenbrock"][name]), _outcome(data["ill"][name]),
               "—" if mlp is None else f"{mlp[-1]:.3f}"]
    if name in LBFGS_SETTINGS:
        hypers = [LBFGS_SETTINGS[name].hyper]
    else:
        hypers = [REST_ROSENBROCK_SETTINGS[name].hyper, REST_ILL_SETTINGS[name].hyper, REST_MLP_SETTINGS[name].hyper]
    hyper = hypers[0] if len(set(hypers)) == 1 else " · ".join(hypers)
    return f"{NAMES[name]}: {' · '.join(numbers)}\n({hyper})"


REST_NOTE = (
    "Settings: torch's defaults where they reach\n"
    "the tolerance (on the MLP: where they train),\n"
    "else a tuned lr, named in the legend.\n"
    "On diag(1, 100) the per-coordinate methods\n"
    "undo the axis-aligned κ, and both LBFGS runs\n"
    "coincide (the line search accepts t = 1).\n"
    "Flat ends are limit cycles of constant steps;\n"
    "Adafactor's step decays as 1/√t."
)


def plot_rest_of_torch_optim(data: dict[str, dict[str, Any]]) -> Figure:
    """Distance to the minimum on Rosenbrock and diag(1, 100), MLP loss per epoch; Adagrad ... LBFGS vs Adam.

    Log-log axes on the two small problems (LBFGS's x is closure evaluations), log loss
    against epochs on the MLP, one above the other; one legend, to the right, with each optimizer's
    iterations to tolerance, final MLP loss and settings.
    """
    fig = _figure("rest_of_torch_optim.png")
    grid = fig.add_gridspec(3, 2, width_ratios=(1.6, 1.0))
    ros_ax, ill_ax, mlp_ax = (fig.add_subplot(grid[row, 0]) for row in range(3))
    legend_ax = fig.add_subplot(grid[:, 1])
    names = ["adam", *REST, *LBFGS_SETTINGS]

    def style(name: str) -> dict[str, Any]:
        reference = name == "adam"
        return {"color": COLORS[name], "lw": 2.2 if reference else 1.3, "zorder": 3 if reference else 2,
                "ls": "--" if name == "lbfgs" else "-", "alpha": 1.0 if reference or name in LBFGS_SETTINGS else 0.9}

    floor = {"rosenbrock": 1e-7, "ill": 1e-12}  # exact zeros, 1e-100s and limit cycles far below tol: cut
    for ax, key in ((ros_ax, "rosenbrock"), (ill_ax, "ill")):
        for name in names:
            run = data[key][name]
            steps = np.arange(len(run.distances))[1:]  # log x: from step (or evaluation) 1
            ax.plot(steps, np.maximum(run.distances[1:], floor[key] * 1e-3), **style(name))
        tol = ROSENBROCK_TOL if key == "rosenbrock" else ILL_TOL
        ax.axhline(tol, color="k", lw=0.8, ls=":")
        ax.text(1.2, tol * 1.4, f"tolerance {tol:g}", fontsize=9, va="bottom")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(floor[key], None)
        ax.set_xlabel("iteration (LBFGS: closure evaluation), log scale", labelpad=1)
        ax.set_ylabel("‖x − x*‖ (log scale)")
    ros_ax.set_title(f"Rosenbrock from (−1.5, 2), {ROSENBROCK_STEPS} steps")
    ill_ax.set_title(f"Quadratic diag(1, {ILL_KAPPA:g}) from (1, 1), {ILL_STEPS} steps")
    for name in names:
        losses = data["mlp"].get(name)
        if losses is not None:
            mlp_ax.plot(np.arange(len(losses)), losses, **style(name))
    mlp_ax.set_yscale("log")
    mlp_ax.set_title(f"MLP on 3 spirals, {MLP_EPOCHS} epochs")
    mlp_ax.set_xlabel(f"epoch ({mlp_steps_per_epoch()} steps of {MLP_BATCH}; Rprop: 1 full-batch step; "
                      "LBFGS: 1 evaluation)", labelpad=1)
    mlp_ax.set_ylabel("cross-entropy,\nfull set (log scale)")
    legend_ax.axis("off")
    handles = [matplotlib_line(style(name)) for name in names]
    legend_ax.legend(handles, [rest_label(name, data) for name in names], loc="upper left", borderaxespad=0.0,
                     title="Rosenbrock · quadratic: iterations to tolerance\n(LBFGS: evaluations) · MLP: final loss",
                     title_fontsize=9, fontsize=9, labelspacing=0.35, handlelength=1.8, frameon=False)
    legend_ax.text(0.0, 0.0, REST_NOTE, transform=legend_ax.transAxes, fontsize=9, ha="left", va="bottom")
    fig.suptitle("The rest of torch.optim against Adam (thick red)")
    return fig


def matplotlib_line(style: dict[str, Any]) -> Any:
    """A legend handle: a line of ``style``."""
    from matplotlib.lines import Line2D

    return Line2D([], [], **style)


def plot_schedules(curves: dict[str, Any]) -> Figure:
    """The three schedules' learning rates per step, torch's overlaid when available."""
    fig = _figure("schedules.png")
    axes = fig.subplots(1, 3, sharey=True)
    theirs = curves["torch"]
    for ax, (name, (schedule, torch_name)) in zip(axes, SCHEDULES.items()):
        ours = curves["ours"][name]
        steps = np.arange(len(ours))
        style = "steps-post" if isinstance(schedule, StepDecayScheduler) else "default"
        ax.plot(steps, ours, "-", color="C0", lw=2.6, drawstyle=style, label="numpy_optim")
        if theirs is not None:
            ax.plot(steps, theirs[name], ":", color="C3", lw=2.2, drawstyle=style, label="torch.optim.lr_scheduler")
            worst = float(np.max(np.abs(theirs[name] - ours)))
            ax.text(0.96, 0.96, f"torch: {torch_name}\nmax |ours − torch|\n= {worst:.1e}", transform=ax.transAxes,
                    ha="right", va="top", fontsize=9)
        ax.set_title(f"{name}\n{_schedule_title(schedule)}", fontsize=10)
        ax.set_xlabel("step")
    axes[0].set_ylabel("learning rate")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    if theirs is None:
        fig.suptitle("Learning-rate schedules (torch not installed: no overlay)")
    else:
        fig.suptitle("Learning-rate schedules, with torch's schedulers overlaid")
    return fig


def plot_lr_schedulers(curves: dict[str, Any]) -> Figure:
    """Every torch scheduler's lr curve from numpy_optim.lr_scheduler, torch's overlaid, with the
    number of steps whose lr differs from torch's in any bit."""
    fig = _figure("lr_schedulers.png")
    axes = fig.subplots(4, 4).ravel()
    theirs = curves["torch"]
    for index, (ax, name) in enumerate(zip(axes, LR_SCHEDULERS)):
        ours = curves["ours"][name]
        steps = np.arange(len(ours))
        ax.plot(steps, ours, "-", color="C0", lw=2.4, label="numpy_optim.lr_scheduler")
        if theirs is not None:
            ax.plot(steps, theirs[name], ":", color="C3", lw=2.0, label="torch.optim.lr_scheduler")
            differ = int(np.count_nonzero(ours.view(np.int64) != theirs[name].view(np.int64)))
            ax.text(0.97, 0.93, f"{differ} of {len(ours)} differ", transform=ax.transAxes, ha="right", va="top",
                    fontsize=9)
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=9)
        ax.set_xlabel("step", fontsize=9)
        if index % 4 == 0:
            ax.set_ylabel("learning rate", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    if theirs is None:
        fig.suptitle("torch.optim.lr_scheduler in numpy_optim (torch not installed: no overlay)")
    else:
        fig.suptitle("torch.optim.lr_scheduler in numpy_optim, torch's overlaid (SGD, lr 0.1, momentum 0.9)")
    return fig


def _schedule_title(schedule: LRScheduler) -> str:
    if isinstance(schedule, StepDecayScheduler):
        return f"×{schedule.decay_factor:g} every {schedule.step_size} steps"
    if isinstance(schedule, WarmupCosineScheduler):
        return f"{schedule.warmup_steps} warmup, cosine to step {schedule.total_steps}"
    if isinstance(schedule, CosineScheduler):
        return f"{schedule.max_lr:g} → {schedule.min_lr:g} over {schedule.total_steps} steps"
    return type(schedule).__name__


def plot_weight_distribution(data: dict[str, Any]) -> Figure:
    """Histogram of final |w| and effective decay against gradient variance, Adam + L2 vs AdamW."""
    fig = _figure("adam_l2_vs_adamw.png")
    hist_ax, decay_ax = fig.subplots(1, 2)
    labels = {"adam_l2": "Adam + L2", "adamw": "AdamW"}
    colors = {"adam_l2": "C3", "adamw": "C4"}
    bins = np.linspace(0.0, 1.05, 43)
    for key in ("adam_l2", "adamw"):
        d = data[key]
        hist_ax.hist(np.abs(d["w"]), bins=bins, color=colors[key], alpha=0.65,
                     label=f"{labels[key]}: CV = {d['cv']:.3f}")
        decay_ax.scatter(d["variance"], d["effective_decay"], s=10, color=colors[key], alpha=0.7,
                         label=f"{labels[key]}: ρ = {d['spearman']:+.2f}")
    shrink = data["uniform_shrink"]
    hist_ax.axvline(shrink, color="k", ls="--", lw=1, label=f"(1 − lr·λ)^T = {shrink:.3f}")
    hist_ax.set_xlabel("final |w| (started at 1)")
    hist_ax.set_ylabel("number of parameters")
    hist_ax.set_title(f"Weight magnitudes after {NOISE_STEPS} steps")
    hist_ax.legend(loc="upper left")
    nominal = -math.log(1 - NOISE_LR * NOISE_WEIGHT_DECAY)
    decay_ax.axhline(nominal, color="k", ls="--", lw=1, label=f"AdamW nominal: {nominal:.1e}")
    decay_ax.axhline(0.0, color="0.5", lw=0.8)
    decay_ax.set_xscale("log")
    # symlog: parameters that noise pushed above |w| = 1 have a negative effective decay
    decay_ax.set_yscale("symlog", linthresh=1e-5)
    decay_ax.set_xlabel("gradient variance (log scale)")
    decay_ax.set_ylabel("effective decay per step, −log|w_T| / T\n(symmetric log scale)")
    decay_ax.set_title("Effective decay vs gradient noise")
    decay_ax.set_ylim(-3e-4, 0.3)
    decay_ax.legend(loc="upper right", title="Spearman ρ(var, decay)", title_fontsize=9)
    fig.suptitle(f"Adam + L2 vs AdamW on pure gradient noise (σ 0.01–10, lr {NOISE_LR:g}, λ {NOISE_WEIGHT_DECAY:g})")
    return fig


def plot_weight_decay_quantization(runs: dict[int, list[DecayReport]]) -> Figure:
    """Range, crest factor, int8 / int4 errors and held-out accuracy against λ: the seeds' median, min–max band."""
    fig = _figure("weight_decay_quantization.png")
    (range_ax, crest_ax, accuracy_ax), (absolute_ax, relative_ax, lost_ax) = fig.subplots(2, 3)
    per_seed = list(runs.values())
    decays = [report.weight_decay for report in per_seed[0]]
    x = np.arange(len(decays))  # λ = 0 has no place on a log axis: one tick per value swept

    def band(ax: Any, get: Callable[[DecayReport], float], label: str, **style: Any) -> None:
        values = np.array([[get(report) for report in reports] for reports in per_seed])  # (seeds, decays)
        (line,) = ax.plot(x, np.median(values, axis=0), marker="o", ms=4, label=label, **style)
        ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.15, lw=0)

    def error(bits: int, field: str) -> Callable[[DecayReport], float]:  # "rms" or "rms_relative"
        return lambda r: float(getattr(r.overall.errors[bits], field))

    def accuracy(key: str) -> Callable[[DecayReport], float]:
        return lambda r: r.evaluations[key].test_accuracy

    def lost(key: str) -> Callable[[DecayReport], float]:  # in points
        return lambda r: 100 * (r.evaluations["float"].test_accuracy - r.evaluations[key].test_accuracy)

    band(range_ax, lambda r: r.overall.max_abs, "max |w|", color="C0")
    band(range_ax, lambda r: r.overall.rms, "RMS(w)", color="C1")
    range_ax.set_ylabel("|w|, all weight matrices")
    range_ax.set_title("Dynamic range")
    band(crest_ax, lambda r: r.overall.crest, "max |w| / RMS(w)", color="C4")
    crest_ax.set_ylabel("crest factor")
    crest_ax.set_title("Range in units of the typical weight")
    colors = {"float": "k", "int8": "C2", "int4": "C3"}
    for key, style in (("float", "-"), ("int8", "--"), ("int4", "-")):
        band(accuracy_ax, accuracy(key), key, color=colors[key], ls=style)
    accuracy_ax.set_ylabel("accuracy, 300 held-out points")
    accuracy_ax.set_title("Accuracy")
    for bits in (8, 4):
        key = f"int{bits}"
        band(absolute_ax, error(bits, "rms"), key, color=colors[key])
        band(relative_ax, error(bits, "rms_relative"), key, color=colors[key])
        band(lost_ax, lost(key), key, color=colors[key])
    for ax, title in ((absolute_ax, "Error: RMS(ŵ − w)"), (relative_ax, "Relative error: RMS(ŵ − w) / RMS(w)")):
        ax.set_yscale("log")
        ax.set_ylabel("RMS quantization error\n(log scale)")
        ax.set_title(title)
    lost_ax.axhline(0.0, color="0.5", lw=0.8)
    lost_ax.set_ylabel("held-out accuracy lost\nto quantization (points)")
    lost_ax.set_title("Accuracy lost: float − quantized")
    for ax in (range_ax, crest_ax, accuracy_ax, absolute_ax, relative_ax, lost_ax):
        ax.set_xticks(x, [f"{d:g}" for d in decays])
        ax.set_xlabel("AdamW weight decay λ")
        ax.legend(loc="best")
    fig.suptitle(f"Weight decay and per-tensor symmetric int8 / int4 quantization of the spiral MLP "
                 f"({len(per_seed)} seeds: median, min–max band)")
    return fig


def plot_float16_state(data: dict[str, Any]) -> Figure:
    """Stored / exact moments against |g|; per configuration the first step, the loss and where each coordinate ends."""
    fig = _figure("float16_state.png")
    (moments_ax, step_ax), (loss_ax, distance_ax) = fig.subplots(2, 2)
    thresholds, training = data["thresholds"], data["training"]
    low, high = float(FLOAT16_SCALES.min()), float(FLOAT16_SCALES.max())
    # (a) what Adam stores for a constant gradient, over the exact moment
    for state, color in (("float32", "C0"), ("float16", "C3")):
        probe = data["moments"][state]
        for key, ls, what in (("exp_avg", "-", "m"), ("exp_avg_sq", "--", "v")):
            ratio = probe[key] / probe[f"exact_{key}"]
            label: str | None
            if state == "float16":
                label = f"{what}, float16 state"
            else:
                label = "m and v, float32 state" if what == "m" else None
            moments_ax.plot(probe["gradient"], ratio, ls, color=color, lw=1.5, label=label)
    moments_ax.axvspan(low, high, color="0.9", zorder=0)
    moments_ax.text(np.sqrt(low * high), 1.45, "this problem's gradients", ha="center", va="center", fontsize=9)
    m_at, v_at = thresholds["exp_avg"], thresholds["exp_avg_sq"]
    moments_ax.axvline(m_at, color="0.3", lw=0.9, ls=":")
    moments_ax.axvline(v_at, color="0.3", lw=0.9, ls=":")
    moments_ax.text(m_at * 1.3, 0.12, f"m ≡ 0 for |g| ≤ {m_at:.2g}", fontsize=9, va="center")
    moments_ax.text(v_at / 1.3, 0.75, f"v ≡ 0 for\n|g| ≤ {v_at:.2g}", fontsize=9, va="center", ha="right")
    moments_ax.set_xscale("log")
    moments_ax.set_ylim(-0.05, 2.1)
    moments_ax.set_xlabel("constant gradient |g| (log scale)")
    moments_ax.set_ylabel(f"stored / exact moment\nafter {FLOAT16_PROBE_STEPS} steps")
    moments_ax.set_title("Where the float16 moments underflow")
    moments_ax.legend(loc="upper right", fontsize=9)
    # (b) the first step, in units of the learning rate; inf / NaN drawn at the top, 0 at the bottom
    top, bottom = 3e4, 0.3
    for name, run in training.items():
        _, color, ls = FLOAT16_STYLES[name]
        step = run["step1"]
        shown = np.isfinite(step) & (step > 0)
        step_ax.plot(FLOAT16_SCALES[shown], step[shown], ls, color=color, lw=1.5, marker=".", ms=4)
        step_ax.plot(FLOAT16_SCALES[~shown], np.where(step[~shown] == 0, bottom, top), "o", color=color, ms=4)
    step_ax.text(np.sqrt(low * high), top / 2.2, "float16 state: ±inf (NaN where m = 0)", ha="center", va="top",
                 fontsize=9, color="C3")
    step_ax.text(4e-7, bottom, "0 (m = 0)", va="center", fontsize=9, color="C1")
    step_ax.text(2e-6, 900, "v = 0: m̂ / 2⁻²⁴,\nlr × 2²⁴ × |g|", ha="center", fontsize=9, color="C1")
    step_ax.text(np.sqrt(low * high), 1.6, "≈ 1: float32 moments", ha="center", fontsize=9)
    step_ax.set_xscale("log")
    step_ax.set_yscale("log")
    step_ax.set_ylim(bottom / 1.6, top * 1.6)
    step_ax.set_xlabel("gradient scale s (log scale)")
    step_ax.set_ylabel("|x₁ − x₀| / lr (log scale)")
    step_ax.set_title("The first step")
    # (c) the loss
    for name, run in training.items():
        _, color, ls = FLOAT16_STYLES[name]
        losses = run["losses"] / run["losses"][0]
        finite = np.isfinite(losses)
        loss_ax.plot(np.arange(len(losses))[finite], losses[finite], ls, color=color, lw=1.5)
        if run["first_nonfinite"] is not None:
            loss_ax.plot(run["first_nonfinite"], 1.0, "x", color=color, ms=9, mew=2)
            loss_ax.annotate(f"float16 state:\n±inf / NaN after step {run['first_nonfinite']}",
                             (run["first_nonfinite"], 1.0), xytext=(80, 1e-5), fontsize=9, color=color,
                             arrowprops={"arrowstyle": "->", "color": color})
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("loss / initial loss (log scale)")
    loss_ax.set_title("Training")
    # (d) where each coordinate ends (exactly 1 drawn at the floor)
    floor = 1e-5
    for name, run in training.items():
        _, color, ls = FLOAT16_STYLES[name]
        final = run["distances"][-1]
        finite = np.isfinite(final)
        distance_ax.plot(FLOAT16_SCALES[finite], np.maximum(final[finite], floor), ls, color=color, lw=1.5, marker=".",
                         ms=4)
    # with float32 moments, a coordinate stops where its float16 gradient s |x - 1| rounds to 0
    distance_ax.plot(FLOAT16_SCALES, FLOAT16_TINY / 2 / FLOAT16_SCALES, color="0.5", lw=0.9, ls="-.")
    distance_ax.text(1.15e-7, 2e-5, "dash-dot: s |x − 1| = 2⁻²⁵,\nwhere the float16\ngradient rounds to 0", fontsize=9,
                     color="0.35")
    distance_ax.text(2e-5, 0.065, "steps < ½ ulp(x) lost", fontsize=9, color="C0", ha="center")
    distance_ax.set_xscale("log")
    distance_ax.set_yscale("log")
    distance_ax.set_ylim(floor / 2, 2.0)
    distance_ax.set_xlabel("gradient scale s (log scale)")
    distance_ax.set_ylabel(f"|x − 1| after {FLOAT16_STEPS} steps\n(log scale; 0 at the bottom)")
    distance_ax.set_title("Where each coordinate ends")
    handles = [matplotlib_line({"color": c, "ls": ls, "lw": 1.5}) for _, c, ls in FLOAT16_STYLES.values()]
    fig.legend(handles, [label for label, _, _ in FLOAT16_STYLES.values()], loc="outside lower center", ncols=3)
    fig.suptitle("Adam on float16 parameters: f = ½ Σ s (x − 1)² from x = 0, s from 1e-4 to 1e-7, lr 1e-3")
    return fig


def plot_parity(report: dict[str, Any]) -> Figure:
    """Worst error / bound per pair, dtype and torch path (log scale), bound at 1."""
    from matplotlib.patches import Patch

    fig = _figure("parity.png")
    ax = fig.add_subplot()
    order = {"SGD": 0, "Adam": 1, "AdamW": 2, "StepDecayScheduler": 3, "CosineScheduler": 4, "WarmupCosineScheduler": 5}
    tolerance_rows = [r for r in report["rows"] if not r.get("bitwise")]
    bitwise = [r for r in report["rows"] if r.get("bitwise")]
    rows = sorted(tolerance_rows, key=lambda r: (order.get(r["pair"], 9), r["pair"], r["dtype"], r["torch_side"]))
    ratios = [r.get("worst_ratio") for r in rows]
    finite = [x for x in ratios if x is not None and math.isfinite(x) and x > 0]
    floor = 10 ** math.floor(math.log10(min(finite + [1.0]) / 3))
    top = 10 ** math.ceil(math.log10(max(finite + [1.0]) * 3))
    dtype_colors = {"float32": "C1", "float64": "C0"}
    y = np.arange(len(rows))[::-1]
    for yi, row, ratio in zip(y, rows, ratios):
        failed = ratio is not None and ratio > 1
        if ratio is None or ratio <= 0:  # nothing judged, or exact agreement: no bar on a log axis
            value, text = floor, "not judged" if ratio is None else "0 (exact)"
        elif math.isinf(ratio):  # an error where the bound is 0
            value, text = top, "∞"
        else:
            value, text = ratio, f"{ratio:.3g}"
        ax.barh(yi, value - floor, left=floor, color=dtype_colors.get(row["dtype"], "C2"),
                hatch="//" if row["torch_side"] == "fused" else None, edgecolor="red" if failed else "white",
                linewidth=1.5 if failed else 0.5)
        inside = value * 1.15 > top / 1.5
        ax.text(value / 1.15 if inside else value * 1.15, yi, text, va="center", ha="right" if inside else "left",
                fontsize=9, color="red" if failed and not inside else "black")
    ax.axvline(1.0, color="red", lw=1.5, label="bound: error / bound = 1")
    ax.set_xscale("log")
    ax.set_xlim(floor, top)
    ax.set_yticks(y, [f"{r['pair'].replace('Scheduler', '')} · {r['dtype']} · {r['torch_side']} ({r['cases']})"
                      for r in rows], fontsize=9)
    ax.set_ylabel("pair · dtype · torch path (cases)")
    ax.set_xlabel("worst error / bound (log scale; ≤ 1 passes)")
    status = "passed" if report.get("passed") else f"FAILED ({len(report.get('failures', []))} pair(s))"
    versions = report.get("versions", {})
    # (not the run's time: the figure must not change when nothing but the time does)
    title = f"Parity with torch {versions.get('torch', '?')} (profile {report.get('profile', '?')}): {status}"
    if bitwise:
        title += (f"\n{len(bitwise)} bitwise rows (fused kernels, schedulers, clipping, averaging):\n"
                  f"{sum(r['differing'] for r in bitwise)} of {sum(r['compared'] for r in bitwise):,} values differ")
    ax.set_title(title)
    handles = [Patch(color="C0", label="float64"), Patch(color="C1", label="float32"),
               Patch(facecolor="grey", hatch="//", edgecolor="white", label="torch fused path")]
    handles.append(ax.get_lines()[0])
    fig.legend(handles=handles, loc="outside lower center", ncols=4)
    return fig


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``DPI`` (exact size: no tight bounding box) and close it.

    The PNG carries no "Software" text (matplotlib's version): the bytes depend on the
    figure alone, so an unchanged figure rendered again is byte for byte the same file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    _pyplot().close(fig)
    return path


def build_figures(
    parity_json: Path | str | Sequence[Path | str] | None = PARITY_JSONS,
    with_torch: bool = True,
    only: Sequence[str] | None = None,
) -> dict[str, Figure]:
    """Measure and draw the figures: ``{file name: Figure}``, in the order of ``FIGURES``.

    ``only`` restricts the set to some file names (all by default). ``parity_json`` is the
    parity report, or a sequence of paths of which the first that exists is read (by
    default :data:`PARITY_JSONS`). The parity figure is left out, with a printed note, when
    ``parity_json`` is None or no report exists. The
    Rosenbrock runs are measured once and feed the paths, the loss curves and (when measured
    already) Adam's line in ``rest_of_torch_optim.png``.
    """
    wanted = list(FIGURES) if only is None else list(only)
    unknown = sorted(set(wanted) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; expected some of {list(FIGURES)}")
    cache: dict[str, dict[str, Run]] = {}

    def rosenbrock() -> dict[str, Run]:
        if "runs" not in cache:
            cache["runs"] = rosenbrock_paths()
        return cache["runs"]

    builders: dict[str, Callable[[], Figure]] = {
        "rosenbrock_paths.png": lambda: plot_rosenbrock(rosenbrock()),
        "ill_conditioned_paths.png": lambda: plot_ill_conditioned(ill_conditioned_paths()),
        "loss_curves.png": lambda: plot_loss_curves(loss_curves(rosenbrock())),
        "rest_of_torch_optim.png": lambda: plot_rest_of_torch_optim(rest_of_torch_optim(cache.get("runs"))),
        "schedules.png": lambda: plot_schedules(schedule_curves(with_torch=with_torch)),
        "lr_schedulers.png": lambda: plot_lr_schedulers(lr_scheduler_curves(with_torch=with_torch)),
        "adam_l2_vs_adamw.png": lambda: plot_weight_distribution(weight_distribution()),
        "weight_decay_quantization.png": lambda: plot_weight_decay_quantization(weight_decay_quantization_runs()),
        "float16_state.png": lambda: plot_float16_state(float16_state()),
    }
    figures = {name: builders[name]() for name in FIGURES if name in wanted and name in builders}
    if "parity.png" in wanted:
        candidates: list[Path | str] = []
        if isinstance(parity_json, (str, Path)):
            candidates = [parity_json]
        elif parity_json is not None:
            candidates = list(parity_json)
        found = find_parity_json(candidates)
        report = None if found is None else load_parity(found)
        if report is None:
            tried = " or ".join(map(str, candidates)) or "None"
            print(f"note: no parity report at {tried}; skipping parity.png (run `nox -s parity` first)")
        else:
            figures["parity.png"] = plot_parity(report)
    return figures


def render_all(
    out: Path | str,
    parity_json: Path | str | Sequence[Path | str] | None = PARITY_JSONS,
    with_torch: bool = True,
    only: Sequence[str] | None = None,
) -> list[Path]:
    """Measure, draw and write the figures into ``out`` (see :func:`build_figures`); returns the paths."""
    out = Path(out)
    return [save(fig, out / name) for name, fig in build_figures(parity_json, with_torch, only).items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m numpy_optim.demo", description="Render the README's figures.")
    parser.add_argument("--out", type=Path, default=Path("docs/figures"), help="output folder (default docs/figures)")
    parser.add_argument("--parity-json", type=Path, default=None,
                        help="parity report to plot (default: reports/parity.json if present, else "
                             "docs/results/parity.json; the figure is skipped if there is none)")
    parser.add_argument("--no-torch", action="store_true", help="do not overlay torch's schedules")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), metavar="FILE",
                        help=f"render only these figures (of {', '.join(FIGURES)})")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401  (before the minutes of measuring, not after)
    except ImportError as error:
        print(f"{MISSING_MATPLOTLIB}\n({type(error).__name__}: {error})", file=sys.stderr)
        return 2
    for path in render_all(args.out, args.parity_json or PARITY_JSONS, with_torch=not args.no_torch, only=args.only):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
