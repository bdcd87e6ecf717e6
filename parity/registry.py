"""Which numpy_optim class pairs with which torch class: data only.

Hyperparameter names are the same on both sides (numpy_optim uses torch's names), so one
kwargs dict drives both; ``translate`` lists the rare renamings (none today). Documented
differences between the constructors' defaults are listed in ``default_differences`` and
checked by a meta-test; any other difference in names or defaults fails it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import numpy_optim

from . import trajectories


@dataclass(frozen=True)
class OptimizerPair:
    """A numpy_optim optimizer and its torch.optim counterpart."""

    name: str
    ours: type
    theirs: type
    #: Hyperparameters the parity strategies draw for this pair (names shared by both sides).
    hyperparameters: tuple[str, ...]
    #: Buffers compared after every step (torch's names).
    buffers: tuple[str, ...]
    #: Whether torch keeps a per-parameter "step" in its state (compared with ours).
    torch_has_step: bool
    #: Whether torch supports ``fused=True`` on the CPU for this class.
    fused: bool
    #: Whether ``step`` takes a closure (LBFGS): such pairs run closed loop only, one
    #: ``step(closure)`` per recorded step.
    closure: bool = False
    #: {name: (ours, torch)}: defaults that differ on purpose.
    default_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: {our name: torch name}: renamed hyperparameters (none today).
    translate: dict[str, str] = field(default_factory=dict)
    #: numpy_optim's own keywords, which torch's class does not have (not drawn: no torch
    #: side to compare with; tests/unit covers them).
    beyond_torch: tuple[str, ...] = ()


@dataclass(frozen=True)
class SchedulerPair:
    """A numpy_optim scheduler and a function building the torch scheduler that reproduces it.

    ``torch_factory(torch_optimizer, **our_kwargs)`` returns a torch LR scheduler whose
    learning rate after ``t`` calls of ``scheduler.step()`` equals our ``get_lr(t)``; the
    torch optimizer must be built with ``lr = ours.reference_lr``.
    """

    name: str
    ours: type
    torch_factory: Callable[..., Any]
    #: Steps for which the pair is expected to agree ("within total_steps" for cosine).
    horizon: Callable[[Any], int]


def _step_lr(optimizer: Any, *, initial_lr: float, decay_factor: float, step_size: int) -> Any:
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=decay_factor)


def _cosine_lr(optimizer: Any, *, max_lr: float, min_lr: float, total_steps: int) -> Any:
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)


def _warmup_cosine_lr(optimizer: Any, *, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> Any:
    """SequentialLR: a LambdaLR warmup t / warmup_steps (torch's LinearLR cannot start from 0),
    then CosineAnnealingLR over the remaining total_steps - warmup_steps."""
    scheduler = torch.optim.lr_scheduler
    cosine = scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=min_lr)
    if warmup_steps == 0:
        return cosine
    warmup = scheduler.LambdaLR(optimizer, lambda t: t / warmup_steps)
    return scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def torch_learning_rates(pair: str, kwargs: dict[str, Any], steps: int) -> list[float]:
    """torch's learning rate at steps 0 .. ``steps`` for the scheduler pair ``pair`` built
    with our constructor's ``kwargs``: a torch SGD starting at the schedule's reference lr,
    read after ``t`` calls of ``scheduler.step()``."""
    import warnings

    ours = SCHEDULERS[pair].ours(**kwargs)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=ours.reference_lr)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about scheduler.step() before optimizer.step()
        scheduler = SCHEDULERS[pair].torch_factory(optimizer, **kwargs)
        for _ in range(steps + 1):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return lrs


def torch_lr_scheduler_curve(name: str) -> Any:
    """torch's curve for the demo figure's scheduler ``name`` (numpy_optim.demo.LR_SCHEDULERS):
    the same construction on a torch SGD with lr 0.1 and momentum 0.9."""
    import warnings

    from numpy_optim.demo import lr_scheduler_curve

    optimizer = torch.optim.SGD([torch.zeros(4, requires_grad=True)], lr=0.1, momentum=0.9)
    optimizer.param_groups[0]["params"][0].grad = torch.full((4,), 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lr_scheduler_curve(torch.optim.lr_scheduler, torch.optim.swa_utils, optimizer, name)


#: The low-precision keywords of every elementwise numpy_optim optimizer.
LOW_PRECISION = ("state_dtype", "master_weights")
#: torch's ``fused=None`` means "not fused" on the CPU, as numpy_optim's ``fused=False``.
FUSED_DEFAULT = {"fused": (False, None)}

OPTIMIZERS: dict[str, OptimizerPair] = {
    "SGD": OptimizerPair(
        name="SGD",
        ours=numpy_optim.SGD,
        theirs=torch.optim.SGD,
        hyperparameters=("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
        buffers=("momentum_buffer",),
        torch_has_step=False,
        fused=True,
        default_differences={"lr": (0.01, 0.001), **FUSED_DEFAULT},  # the specification's default lr is 0.01
        beyond_torch=LOW_PRECISION,
    ),
    "Adam": OptimizerPair(
        name="Adam",
        ours=numpy_optim.Adam,
        theirs=torch.optim.Adam,
        hyperparameters=("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"),
        buffers=("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
        torch_has_step=True,
        fused=True,
        default_differences=FUSED_DEFAULT,
        beyond_torch=LOW_PRECISION,
    ),
    "AdamW": OptimizerPair(
        name="AdamW",
        ours=numpy_optim.AdamW,
        theirs=torch.optim.AdamW,
        hyperparameters=("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
        buffers=("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
        torch_has_step=True,
        fused=True,
        default_differences=FUSED_DEFAULT,
        beyond_torch=LOW_PRECISION,
    ),
    "Adagrad": OptimizerPair(
        name="Adagrad", ours=numpy_optim.Adagrad, theirs=torch.optim.Adagrad,
        hyperparameters=("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
        buffers=("sum",), torch_has_step=True, fused=True, default_differences=FUSED_DEFAULT,
        beyond_torch=LOW_PRECISION,
    ),
    "Adadelta": OptimizerPair(
        name="Adadelta", ours=numpy_optim.Adadelta, theirs=torch.optim.Adadelta,
        hyperparameters=("lr", "rho", "eps", "weight_decay", "maximize"),
        buffers=("square_avg", "acc_delta"), torch_has_step=True, fused=False,
        beyond_torch=LOW_PRECISION,
    ),
    "Adamax": OptimizerPair(
        name="Adamax", ours=numpy_optim.Adamax, theirs=torch.optim.Adamax,
        hyperparameters=("lr", "betas", "eps", "weight_decay", "maximize"),
        buffers=("exp_avg", "exp_inf"), torch_has_step=True, fused=False,
        beyond_torch=LOW_PRECISION,
    ),
    "ASGD": OptimizerPair(
        name="ASGD", ours=numpy_optim.ASGD, theirs=torch.optim.ASGD,
        hyperparameters=("lr", "lambd", "alpha", "t0", "weight_decay", "maximize"),
        buffers=("eta", "mu", "ax"), torch_has_step=True, fused=False,
        beyond_torch=LOW_PRECISION,
    ),
    "NAdam": OptimizerPair(
        name="NAdam", ours=numpy_optim.NAdam, theirs=torch.optim.NAdam,
        hyperparameters=("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay",
                         "maximize"),
        buffers=("exp_avg", "exp_avg_sq", "mu_product"), torch_has_step=True, fused=False,
        beyond_torch=LOW_PRECISION,
    ),
    "RAdam": OptimizerPair(
        name="RAdam", ours=numpy_optim.RAdam, theirs=torch.optim.RAdam,
        hyperparameters=("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"),
        buffers=("exp_avg", "exp_avg_sq"), torch_has_step=True, fused=False,
        beyond_torch=LOW_PRECISION,
    ),
    "RMSprop": OptimizerPair(
        name="RMSprop", ours=numpy_optim.RMSprop, theirs=torch.optim.RMSprop,
        hyperparameters=("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
        buffers=("square_avg", "momentum_buffer", "grad_avg"), torch_has_step=True, fused=False,
        beyond_torch=LOW_PRECISION,
    ),
    "Rprop": OptimizerPair(
        name="Rprop", ours=numpy_optim.Rprop, theirs=torch.optim.Rprop,
        hyperparameters=("lr", "etas", "step_sizes", "maximize"),
        buffers=("prev", "step_size"), torch_has_step=True, fused=False,
        beyond_torch=LOW_PRECISION,
    ),
    "Adafactor": OptimizerPair(
        name="Adafactor", ours=numpy_optim.Adafactor, theirs=torch.optim.Adafactor,
        hyperparameters=("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize"),
        buffers=("row_var", "col_var", "variance"), torch_has_step=True, fused=False,
    ),
    "LBFGS": OptimizerPair(
        name="LBFGS", ours=numpy_optim.LBFGS, theirs=torch.optim.LBFGS,
        hyperparameters=("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size",
                         "line_search_fn"),
        # LBFGS keeps its history in the first entry's state; compared per step: the step
        # size t and the iteration and evaluation counts (the history itself is compared
        # through the parameters it moves)
        buffers=("t", "n_iter", "func_evals"), torch_has_step=False, fused=False, closure=True,
    ),
}

SCHEDULERS: dict[str, SchedulerPair] = {
    "StepDecayScheduler": SchedulerPair(
        name="StepDecayScheduler",
        ours=numpy_optim.StepDecayScheduler,
        torch_factory=_step_lr,
        horizon=lambda s: 10 * s.step_size,
    ),
    "CosineScheduler": SchedulerPair(
        name="CosineScheduler",
        ours=numpy_optim.CosineScheduler,
        torch_factory=_cosine_lr,
        horizon=lambda s: s.total_steps,  # past total_steps torch's cosine rises again; ours stays at min_lr
    ),
    "WarmupCosineScheduler": SchedulerPair(
        name="WarmupCosineScheduler",
        ours=numpy_optim.WarmupCosineScheduler,
        torch_factory=_warmup_cosine_lr,
        horizon=lambda s: s.total_steps,
    ),
}


# ----- torch's fused CPU kernels, bit for bit ---------------------------------------------


@dataclass(frozen=True)
class FusedPair:
    """``fused=True`` on both sides of a registry optimizer pair, judged with zero tolerance
    (parity/fused.py): every value of every step must have torch's bits."""

    name: str
    #: The OPTIMIZERS pair it runs (its classes, hyperparameters and buffers).
    optimizer: str
    dtypes: tuple[str, ...]


FUSED: dict[str, FusedPair] = {
    # float16 / bfloat16 left out on purpose: KNOWN_TORCH_DEFECTS (numpy_optim refuses them)
    "SGD+fused": FusedPair("SGD+fused", "SGD", ("float64", "float32")),
    "Adam+fused": FusedPair("Adam+fused", "Adam", ("float64", "float32", "float16", "bfloat16")),
    "AdamW+fused": FusedPair("AdamW+fused", "AdamW", ("float64", "float32", "float16", "bfloat16")),
    "Adagrad+fused": FusedPair("Adagrad+fused", "Adagrad", ("float64", "float32", "float16", "bfloat16")),
}


@dataclass(frozen=True)
class TorchDefect:
    """A torch behaviour that numpy_optim refuses to copy: listed in the parity report, with
    ``probe()``, which measures on the installed torch whether it is still there."""

    name: str
    torch: str          # what torch does
    numpy_optim: str    # what numpy_optim does instead
    pinned_by: str      # the test that fails the day torch fixes it
    probe: Callable[[], dict[str, Any]]


def probe_fused_sgd_half() -> dict[str, Any]:
    """torch fused SGD, 3 steps (lr 0.5, momentum 0 and 0.9) on a float16 and a bfloat16
    tensor of 35 elements, ones with gradient ones: which elements changed. The defect is
    ``present`` when, in every run, exactly the scalar tail (the last 35 % 16 = 3) did. Also
    what numpy_optim says when asked for the same (``SGD(fused=True)`` on those dtypes)."""
    changed: dict[str, list[int]] = {}
    for dtype in ("float16", "bfloat16"):
        for momentum in (0.0, 0.9):
            p = torch.ones(35, dtype=getattr(torch, dtype), requires_grad=True)
            optimizer = torch.optim.SGD([p], lr=0.5, momentum=momentum, fused=True)
            for _ in range(3):
                p.grad = torch.ones_like(p)
                optimizer.step()
            changed[f"{dtype}, momentum {momentum}"] = torch.nonzero(p.detach() != 1).flatten().tolist()
    present = all(indices == [32, 33, 34] for indices in changed.values())
    refusals: dict[str, str] = {}
    for dtype in ("float16", "bfloat16"):
        try:
            x = np.ones(35, dtype=trajectories.numpy_dtype(dtype))
            numpy_optim.SGD([{"params": x, "grad": np.ones_like(x)}], lr=0.5, momentum=0.9, fused=True)
            refusals[dtype] = "accepted"
        except (TypeError, ValueError) as error:
            refusals[dtype] = f"{type(error).__name__}: {error}"
    runs = sorted(set(map(str, changed.values())))
    summary = (f"35-element float16 and bfloat16 tensors, 3 steps at momentum 0 and 0.9: the elements that "
               f"changed were {' / '.join(runs)} (the defect: [32, 33, 34] only); numpy_optim.SGD(fused=True) on "
               f"them: " + ", ".join(f"{dtype} {text.split(':')[0]}" for dtype, text in refusals.items()))
    return {"present": present, "summary": summary, "changed": changed, "numpy_optim": refusals}


KNOWN_TORCH_DEFECTS: tuple[TorchDefect, ...] = (
    TorchDefect(
        name="fused SGD on float16/bfloat16 never updates the parameters' vector body",
        torch=("torch.optim.SGD(fused=True) on float16 or bfloat16 parameters changes only the last n % 16 "
               "elements of each tensor (the scalar tail); the first n - n % 16 (the 16-lane vector body) "
               "never move, for any lr and momentum (the half sgd_math vector loop stores no parameter, and "
               "reads the momentum buffer as float from half memory)"),
        numpy_optim=("numpy_optim.SGD(fused=True) refuses float16 and bfloat16 parameters with a ValueError "
                     "that says why; the SGD+fused pair runs float64 and float32 only"),
        pinned_by="tests/parity/test_fused_pairs.py::test_torch_fused_sgd_half_defect_is_still_present",
        probe=probe_fused_sgd_half,
    ),
)
