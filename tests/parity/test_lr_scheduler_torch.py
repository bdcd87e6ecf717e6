"""numpy_optim.lr_scheduler against torch.optim.lr_scheduler, side by side, bit for bit.

Every test builds the same schedule on both sides (numpy_optim entries = torch parameter
groups; the default setup is the reference's: two groups, lr 0.1 from the optimizer and 0.037
of its own), runs ``optimizer.step()`` then ``scheduler.step()``, and compares with ``float.hex``.
Where /work/shared/reference/torch-lr-scheduler.md measured a value, the test also checks that
torch still produces it, so each quirk is shown to exist and to be reproduced.
"""

from __future__ import annotations

import inspect
import json
import math
import pickle
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import numpy_optim
import numpy_optim.lr_scheduler as ours_lib

theirs_lib = torch.optim.lr_scheduler
LIBS = {"ours": ours_lib, "torch": theirs_lib}
CLASSES = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
           "ExponentialLR", "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler",
           "ReduceLROnPlateau", "CyclicLR", "OneCycleLR", "CosineAnnealingWarmRestarts"]
OPTIMIZERS = {"SGD": (numpy_optim.SGD, torch.optim.SGD), "Adam": (numpy_optim.Adam, torch.optim.Adam),
              "RMSprop": (numpy_optim.RMSprop, torch.optim.RMSprop), "Adamax": (numpy_optim.Adamax, torch.optim.Adamax),
              "Adagrad": (numpy_optim.Adagrad, torch.optim.Adagrad), "NAdam": (numpy_optim.NAdam, torch.optim.NAdam)}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def optimizer(side: str, kind: str = "SGD", lrs: tuple[float | None, ...] = (None, 0.037), lr: float = 0.1,
              dtype: Any = np.float64, **hyper: Any) -> Any:
    """One optimizer: entry/group i has its own lr ``lrs[i]`` unless it is None (then the
    optimizer's ``lr``). Parameters and gradients are the same seeded values on both sides."""
    rng = np.random.default_rng(0)
    values = [(rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)) for _ in lrs]
    ours, theirs = OPTIMIZERS[kind]
    if kind in ("SGD", "RMSprop"):
        hyper.setdefault("momentum", 0.0)  # torch's default is the int 0, numpy_optim's the float 0.0
    own = [{} if x is None else {"lr": x} for x in lrs]
    if side == "ours":
        return ours([{"params": p.copy(), "grad": g.copy(), **o} for (p, g), o in zip(values, own)], lr=lr, **hyper)
    groups = []
    for (p, g), o in zip(values, own):
        t = torch.tensor(p, requires_grad=True)
        t.grad = torch.tensor(g)
        groups.append({"params": [t], **o})
    return theirs(groups, lr=lr, **hyper)


def both(kind: str = "SGD", **options: Any) -> dict[str, Any]:
    return {side: optimizer(side, kind, **options) for side in LIBS}


def hexes(values: Any) -> Any:
    """Exact identity of a value or nested list: float.hex for floats (int and float differ)."""
    if isinstance(values, (list, tuple)):
        return [hexes(v) for v in values]
    if isinstance(values, bool) or values is None:
        return values
    if isinstance(values, float):
        return float.hex(values)
    if isinstance(values, int):
        return ("int", values)
    if isinstance(values, torch.Tensor):
        return float.hex(values.item())
    return repr(values)


def group_values(opt: Any, key: str = "lr") -> list[Any]:
    out = []
    for g in opt.param_groups:
        value = g.get(key, opt.defaults.get(key))
        out.append(value[0] if key == "betas" else value)
    return out


def run(side: str, make: Any, steps: int, kind: str = "SGD", keys: tuple[str, ...] = ("lr",),
        epochs: dict[int, Any] | None = None, metrics: Any = None, **options: Any) -> list[Any]:
    """``make(lib, optimizer)`` on one side, then ``steps`` steps; the observed rows: after
    construction and after every step, each key's value for every entry, get_last_lr() and
    last_epoch (None where the scheduler has none)."""
    opt = optimizer(side, kind, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = make(LIBS[side], opt)
        rows = [_row(opt, scheduler, keys)]
        for t in range(1, steps + 1):
            opt.step()
            args = [] if metrics is None else [metrics(t)]
            if epochs and t in epochs:
                args.append(epochs[t])
            scheduler.step(*args)
            rows.append(_row(opt, scheduler, keys))
    return rows


def _row(opt: Any, scheduler: Any, keys: tuple[str, ...]) -> list[Any]:
    return [hexes(group_values(opt, k)) for k in keys] + [hexes(list(scheduler.get_last_lr())),
                                                          hexes(getattr(scheduler, "last_epoch", None))]


def lr_column(rows: list[Any], entry: int = 0) -> list[float]:
    """Entry ``entry``'s lr per row, back as floats (for checking torch's documented values)."""
    return [float.fromhex(r[0][entry]) for r in rows]


def assert_same(make: Any, steps: int, **options: Any) -> list[Any]:
    """Run ``make`` on both sides; assert every row bit-equal; return torch's rows."""
    ours = run("ours", make, steps, **options)
    theirs = run("torch", make, steps, **options)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"step {t}: ours {a} != torch {b}"
    assert len(ours) == len(theirs)
    return theirs


def caught(fn: Any) -> list[tuple[str, str]]:
    """The warnings ``fn()`` emits (category, text), every one shown."""
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        fn()
    return [(w.category.__name__, str(w.message)) for w in log]


def add_entry(side: str, opt: Any, lr: float | None, **keys: Any) -> None:
    """``opt.add_param_group``: one new entry / group with its own lr (None: the optimizer's)
    and the given keys, its parameter and gradient the same seeded values on both sides."""
    rng = np.random.default_rng(1)
    p, g = rng.standard_normal(3), rng.standard_normal(3)
    own = ({} if lr is None else {"lr": lr}) | keys
    if side == "ours":
        opt.add_param_group({"params": p, "grad": g, **own})
    else:
        t = torch.tensor(p, requires_grad=True)
        t.grad = torch.tensor(g)
        opt.add_param_group({"params": [t], **own})


def error_of(fn: Any) -> tuple[type, str] | None:
    try:
        fn()
    except Exception as error:  # noqa: BLE001 - the type is what is compared
        return type(error), str(error)
    return None


def _exp95(e: float) -> float:
    return 0.95**e


def _half(e: float) -> float:
    return 0.5


class Power:
    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def __call__(self, e: float) -> float:
        return self.gamma**e


# One constructor call per class (for the warnings, the state dicts, the construction step).
BUILDERS: dict[str, Any] = {
    "LambdaLR": lambda L, o: L.LambdaLR(o, _exp95),
    "MultiplicativeLR": lambda L, o: L.MultiplicativeLR(o, _half),
    "StepLR": lambda L, o: L.StepLR(o, 2, gamma=0.5),
    "MultiStepLR": lambda L, o: L.MultiStepLR(o, [3, 1, 1], gamma=0.9),
    "ConstantLR": lambda L, o: L.ConstantLR(o),
    "LinearLR": lambda L, o: L.LinearLR(o),
    "ExponentialLR": lambda L, o: L.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda L, o: L.PolynomialLR(o, total_iters=4, power=2.0),
    "CosineAnnealingLR": lambda L, o: L.CosineAnnealingLR(o, 10, eta_min=1e-3),
    "CyclicLR": lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2),
    "OneCycleLR": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10),
}
CLOSED_FORM = ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
               "CosineAnnealingLR"]


# --------------------------------------------------------------------------------------
# 1. Signatures and defaults
# --------------------------------------------------------------------------------------


def _parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", CLASSES)
def test_constructor_signature_and_defaults_equal_torchs(name: str) -> None:
    ours, theirs = _parameters(getattr(ours_lib, name).__init__), _parameters(getattr(theirs_lib, name).__init__)
    assert ours == theirs
    assert len(ours) >= 2


@pytest.mark.parametrize("name", CLASSES)
def test_step_signature_equals_torchs(name: str) -> None:
    ours, theirs = _parameters(getattr(ours_lib, name).step), _parameters(getattr(theirs_lib, name).step)
    assert ours == theirs


def test_all_sixteen_classes_exported_as_torch_exports_them() -> None:
    assert sorted(ours_lib.__all__) == sorted(theirs_lib.__all__) == sorted(CLASSES)


def test_epoch_deprecation_warning_text_is_torchs() -> None:
    assert ours_lib.EPOCH_DEPRECATION_WARNING == theirs_lib.EPOCH_DEPRECATION_WARNING


# --------------------------------------------------------------------------------------
# 2. Validation
# --------------------------------------------------------------------------------------

# Errors torch raises with a clear message: ours raises the same type and message.
SAME_ERRORS: dict[str, Any] = {
    "LambdaLR lr_lambda list length": lambda L, o: L.LambdaLR(o, [_half]),
    "MultiplicativeLR lr_lambda list length": lambda L, o: L.MultiplicativeLR(o, (_half, _half, _half)),
    "MultiplicativeLR lr_lambda not callable": lambda L, o: L.MultiplicativeLR(o, [_half, 0.5]),
    "ConstantLR factor > 1": lambda L, o: L.ConstantLR(o, factor=1.5),
    "ConstantLR factor < 0": lambda L, o: L.ConstantLR(o, factor=-0.1),
    "LinearLR start_factor > 1": lambda L, o: L.LinearLR(o, start_factor=1.5),
    "LinearLR start_factor 0": lambda L, o: L.LinearLR(o, start_factor=0.0),
    "LinearLR end_factor > 1": lambda L, o: L.LinearLR(o, end_factor=1.01),
    "LinearLR end_factor < 0": lambda L, o: L.LinearLR(o, end_factor=-0.5),
    "OneCycleLR total_steps 0": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=0),
    "OneCycleLR total_steps negative": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=-3),
    "OneCycleLR total_steps float": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10.0),
    "OneCycleLR epochs 0": lambda L, o: L.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=5),
    "OneCycleLR epochs float": lambda L, o: L.OneCycleLR(o, 0.1, epochs=2.0, steps_per_epoch=5),
    "OneCycleLR steps_per_epoch 0": lambda L, o: L.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=0),
    "OneCycleLR no total": lambda L, o: L.OneCycleLR(o, 0.1),
    "OneCycleLR epochs without steps_per_epoch": lambda L, o: L.OneCycleLR(o, 0.1, epochs=3),
    "OneCycleLR pct_start < 0": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, pct_start=-0.1),
    "OneCycleLR pct_start > 1": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.1),
    "OneCycleLR pct_start int 0": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, pct_start=0),
    "OneCycleLR pct_start int 1": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, pct_start=1),
    "OneCycleLR anneal_strategy": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="cosine"),
    "OneCycleLR max_lr list length": lambda L, o: L.OneCycleLR(o, [0.1], total_steps=10),
    "OneCycleLR base_momentum list length": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10,
                                                                      base_momentum=[0.8, 0.8, 0.8]),
    "OneCycleLR max_momentum list length": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, max_momentum=[0.9]),
    "CyclicLR base_lr list length": lambda L, o: L.CyclicLR(o, [0.01], 0.1),
    "CyclicLR max_lr list length": lambda L, o: L.CyclicLR(o, 0.01, [0.1, 0.2, 0.3]),
    "CyclicLR mode": lambda L, o: L.CyclicLR(o, 0.01, 0.1, mode="triangle"),
    "CyclicLR base_momentum list length": lambda L, o: L.CyclicLR(o, 0.01, 0.1, base_momentum=[0.8]),
    "CyclicLR max_momentum list length": lambda L, o: L.CyclicLR(o, 0.01, 0.1, max_momentum=(0.9, 0.9, 0.9)),
    "CosineAnnealingWarmRestarts T_0 0": lambda L, o: L.CosineAnnealingWarmRestarts(o, 0),
    "CosineAnnealingWarmRestarts T_0 negative": lambda L, o: L.CosineAnnealingWarmRestarts(o, -1),
    "CosineAnnealingWarmRestarts T_0 float": lambda L, o: L.CosineAnnealingWarmRestarts(o, 2.0),
    "CosineAnnealingWarmRestarts T_mult 0": lambda L, o: L.CosineAnnealingWarmRestarts(o, 2, T_mult=0),
    "CosineAnnealingWarmRestarts T_mult float": lambda L, o: L.CosineAnnealingWarmRestarts(o, 2, T_mult=1.5),
    "CosineAnnealingWarmRestarts eta_min str": lambda L, o: L.CosineAnnealingWarmRestarts(o, 2, eta_min="0"),
    "CosineAnnealingWarmRestarts eta_min None": lambda L, o: L.CosineAnnealingWarmRestarts(o, 2, eta_min=None),
    "CosineAnnealingWarmRestarts step(negative)": lambda L, o: L.CosineAnnealingWarmRestarts(o, 2).step(-1),
    "ReduceLROnPlateau factor 1": lambda L, o: L.ReduceLROnPlateau(o, factor=1.0),
    "ReduceLROnPlateau factor checked before the optimizer": lambda L, o: L.ReduceLROnPlateau(None, factor=2.0),
    "ReduceLROnPlateau min_lr list length": lambda L, o: L.ReduceLROnPlateau(o, min_lr=[0.0]),
    "ReduceLROnPlateau mode": lambda L, o: L.ReduceLROnPlateau(o, mode="minimum"),
    "ReduceLROnPlateau threshold_mode": lambda L, o: L.ReduceLROnPlateau(o, threshold_mode="relative"),
    "ReduceLROnPlateau not an optimizer": lambda L, o: L.ReduceLROnPlateau("optimizer"),
    "StepLR not an optimizer": lambda L, o: L.StepLR(None, 3),
    "CyclicLR not an optimizer": lambda L, o: L.CyclicLR(3, 0.01, 0.1),
    "OneCycleLR not an optimizer": lambda L, o: L.OneCycleLR([], 0.1, total_steps=3),
    "CosineAnnealingWarmRestarts not an optimizer": lambda L, o: L.CosineAnnealingWarmRestarts(None, 3),
    "SequentialLR no schedulers": lambda L, o: L.SequentialLR(o, [], []),
    "SequentialLR member without optimizer": lambda L, o: L.SequentialLR(o, [object()], []),
    "SequentialLR ReduceLROnPlateau member": lambda L, o: L.SequentialLR(
        o, [L.StepLR(o, 2), L.ReduceLROnPlateau(o)], [3]),
    "SequentialLR milestones length": lambda L, o: L.SequentialLR(o, [L.StepLR(o, 2), L.ExponentialLR(o, 0.9)],
                                                                  [1, 2]),
    "ChainedScheduler no schedulers": lambda L, o: L.ChainedScheduler([]),
    "ChainedScheduler member without optimizer": lambda L, o: L.ChainedScheduler([L.StepLR(o, 2), "sched"]),
    "ChainedScheduler ReduceLROnPlateau member": lambda L, o: L.ChainedScheduler([L.ReduceLROnPlateau(o)]),
    "OneCycleLR step past total_steps": lambda L, o: _steps(L.OneCycleLR(o, 0.1, total_steps=3), o, 4),
}


def _steps(scheduler: Any, opt: Any, n: int) -> Any:
    for _ in range(n):
        opt.step()
        scheduler.step()
    return scheduler


@pytest.mark.parametrize("case", list(SAME_ERRORS), ids=list(SAME_ERRORS))
def test_error_type_and_message_equal_torchs(case: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        errors = {side: error_of(lambda side=side: SAME_ERRORS[case](LIBS[side], optimizer(side))) for side in LIBS}
    assert errors["torch"] is not None, "torch accepts this: the case is wrong"
    assert errors["ours"] == errors["torch"]


@pytest.mark.parametrize("name", ["CyclicLR", "OneCycleLR"])
def test_cycle_momentum_needs_momentum_or_betas_as_in_torch(name: str) -> None:
    """Adagrad has neither: refused with torch's message; with cycle_momentum=False it is scheduled."""
    args = {"CyclicLR": (0.01, 0.1), "OneCycleLR": (0.1, 10)}[name]
    errors = {side: error_of(lambda side=side: getattr(LIBS[side], name)(optimizer(side, "Adagrad"), *args))
              for side in LIBS}
    assert errors["torch"] == (ValueError, "optimizer must support momentum or beta1 with `cycle_momentum` "
                                           "option enabled")
    assert errors["ours"] == errors["torch"]
    assert_same(lambda L, o: getattr(L, name)(o, *args, cycle_momentum=False), 9, kind="Adagrad")


@pytest.mark.parametrize("name", ["SequentialLR", "ChainedScheduler"])
def test_members_of_another_optimizer_refused_as_torch_refuses(name: str) -> None:
    for side, L in LIBS.items():
        mine, other = optimizer(side), optimizer(side)
        members = [L.StepLR(mine, 2), L.ExponentialLR(other, 0.9)]
        with pytest.raises(ValueError) as info:
            if name == "SequentialLR":
                L.SequentialLR(mine, members, [2])
            else:
                L.ChainedScheduler(members, optimizer=mine)
        assert str(info.value) == (
            f"{name} expects all schedulers to belong to the same optimizer, but got scheduler ExponentialLR at "
            f"index 1 has {other}, which is different from {type(mine).__name__}.")


def test_resume_without_initial_lr_same_message_as_torchs_keyerror_but_a_valueerror() -> None:
    """torch raises a KeyError (its message quoted by KeyError's repr); ours a ValueError with the same text."""
    torch_error = error_of(lambda: theirs_lib.StepLR(optimizer("torch"), 3, last_epoch=4))
    ours_error = error_of(lambda: ours_lib.StepLR(optimizer("ours"), 3, last_epoch=4))
    assert torch_error is not None and torch_error[0] is KeyError
    assert ours_error is not None and ours_error[0] is ValueError
    text = ("param 'initial_lr' is not specified in param_groups[0] when resuming scheduler with last_epoch >= 0.\n"
            "This typically happens when:\n"
            "1. You're trying to resume training from a checkpoint but haven't properly loaded the optimizer state\n"
            "2. You're using last_epoch >= 0 for a fresh training run (not recommended)")
    assert ours_error[1] == text
    assert torch_error[1] == repr(text)  # str(KeyError(text)) is the repr of its message
    # any last_epoch other than -1 resumes, -2 too (torch's check is `!= -1`)
    assert error_of(lambda: theirs_lib.StepLR(optimizer("torch"), 3, last_epoch=-2))[0] is KeyError
    assert error_of(lambda: ours_lib.StepLR(optimizer("ours"), 3, last_epoch=-2)) == (ValueError, text)


# torch fails unhelpfully (ZeroDivisionError, TypeError from inside, OverflowError, AttributeError) or
# computes NaN; ours raises a clear ValueError/TypeError naming the argument, at construction.
# (id, construction, steps torch survives before failing, torch's error type or "nan", our type, named argument)
UNHELPFUL: list[tuple[str, Any, int, Any, type, str]] = [
    ("OneCycleLR phase 1 of zero steps", lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, pct_start=0.1), 0,
     ZeroDivisionError, ValueError, "pct_start"),
    ("OneCycleLR pct_start 1.0 (fails at the extrapolated step)",
     lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.0), 10, ZeroDivisionError, ValueError, "pct_start"),
    ("OneCycleLR three-phase phase 2 of zero steps",
     lambda L, o: L.OneCycleLR(o, 0.1, total_steps=4, pct_start=0.25, three_phase=True), 4, ZeroDivisionError,
     ValueError, "pct_start"),
    ("OneCycleLR three-phase phase 3 of zero steps",
     lambda L, o: L.OneCycleLR(o, 0.1, total_steps=4, pct_start=0.625, three_phase=True), 4, ZeroDivisionError,
     ValueError, "pct_start"),
    ("OneCycleLR div_factor 0", lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, div_factor=0.0), 0,
     ZeroDivisionError, ValueError, "div_factor"),
    ("OneCycleLR final_div_factor 0", lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, final_div_factor=0), 0,
     ZeroDivisionError, ValueError, "final_div_factor"),
    ("OneCycleLR huge total_steps", lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10**400), 0, OverflowError,
     ValueError, "total_steps"),
    ("OneCycleLR max_lr inf", lambda L, o: L.OneCycleLR(o, math.inf, total_steps=10), 2, "nan", ValueError, "max_lr"),
    ("StepLR step_size 0", lambda L, o: L.StepLR(o, 0), 1, ZeroDivisionError, ValueError, "step_size"),
    ("StepLR gamma nan", lambda L, o: L.StepLR(o, 1, gamma=math.nan), 1, "nan", ValueError, "gamma"),
    ("MultiStepLR gamma inf", lambda L, o: L.MultiStepLR(o, [1], gamma=math.inf), 2, "nan", ValueError, "gamma"),
    ("CosineAnnealingLR T_max 0", lambda L, o: L.CosineAnnealingLR(o, 0), 1, ZeroDivisionError, ValueError, "T_max"),
    ("CosineAnnealingLR eta_min inf", lambda L, o: L.CosineAnnealingLR(o, 10, eta_min=math.inf), 1, "nan",
     ValueError, "eta_min"),
    ("CyclicLR step_size_up 0", lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=0), 0, ZeroDivisionError,
     ValueError, "step_size_up"),
    ("CyclicLR up and down 0", lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=0, step_size_down=0), 0,
     ZeroDivisionError, ValueError, "step_size_up"),
    ("CyclicLR huge step_size_up", lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=10**400), 0, OverflowError,
     ValueError, "step_size_up"),
    ("CyclicLR scale_fn not callable", lambda L, o: L.CyclicLR(o, 0.01, 0.1, scale_fn=3), 0, TypeError, TypeError,
     "scale_fn"),
    ("CyclicLR max_lr nan", lambda L, o: L.CyclicLR(o, 0.01, math.nan), 1, "nan", ValueError, "max_lr"),
    ("ConstantLR factor 0", lambda L, o: L.ConstantLR(o, factor=0.0, total_iters=3), 3, ZeroDivisionError,
     ValueError, "factor"),
    ("ExponentialLR gamma nan", lambda L, o: L.ExponentialLR(o, math.nan), 1, "nan", ValueError, "gamma"),
    ("PolynomialLR negative power", lambda L, o: L.PolynomialLR(o, total_iters=3, power=-1.0), 3, ZeroDivisionError,
     ValueError, "power"),
    ("LambdaLR lr_lambda not callable", lambda L, o: L.LambdaLR(o, 0.5), 0, TypeError, TypeError, "lr_lambda"),
    ("LambdaLR optimizer None", lambda L, o: L.LambdaLR(None, _half), 0, AttributeError, TypeError, "Optimizer"),
    ("MultiplicativeLR optimizer None", lambda L, o: L.MultiplicativeLR(None, _half), 0, AttributeError, TypeError,
     "Optimizer"),
    ("CosineAnnealingWarmRestarts T_0 None", lambda L, o: L.CosineAnnealingWarmRestarts(o, None), 0, TypeError,
     ValueError, "T_0"),
    ("CosineAnnealingWarmRestarts eta_min nan", lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, eta_min=math.nan),
     0, "nan", ValueError, "eta_min"),
    ("ReduceLROnPlateau mode None", lambda L, o: L.ReduceLROnPlateau(o, mode=None), 0, TypeError, ValueError, "mode"),
    ("ReduceLROnPlateau threshold_mode None", lambda L, o: L.ReduceLROnPlateau(o, threshold_mode=None), 0, TypeError,
     ValueError, "threshold mode"),
]


def _torch_outcome(make: Any, steps: int) -> Any:
    """Build with torch and step ``steps`` times: its exception type, or "nan" if an lr is not finite."""
    opt = optimizer("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scheduler = make(theirs_lib, opt)
            for _ in range(steps):
                opt.step()
                scheduler.step(1.0) if isinstance(scheduler, theirs_lib.ReduceLROnPlateau) else scheduler.step()
        except Exception as error:  # noqa: BLE001
            return type(error)
    return "nan" if not all(math.isfinite(g["lr"]) for g in opt.param_groups) else None


@pytest.mark.parametrize("case", UNHELPFUL, ids=[c[0] for c in UNHELPFUL])
def test_ours_refuses_clearly_at_construction_where_torch_fails_unhelpfully(case: tuple) -> None:
    _, make, steps, torch_outcome, our_type, named = case
    assert _torch_outcome(make, steps) == torch_outcome
    opt = optimizer("ours")
    before = [dict((k, v) for k, v in e.items() if k not in ("params", "grad")) for e in opt.param_groups]
    with pytest.raises(our_type) as info:
        make(ours_lib, opt)
    assert named in str(info.value)
    after = [dict((k, v) for k, v in e.items() if k not in ("params", "grad")) for e in opt.param_groups]
    assert after == before, "a refused construction changed the entries"


@pytest.mark.parametrize("name", ["PolynomialLR", "LinearLR"])
def test_closed_form_with_total_iters_0_refused_at_step_epoch(name: str) -> None:
    """total_iters=0: the recursion never changes lr (both sides); torch's step(epoch) then divides
    by zero, ours refuses with a ValueError and leaves the schedule as it was."""
    make = lambda L, o: getattr(L, name)(o, total_iters=0)  # noqa: E731
    assert_same(make, 4)
    assert _torch_outcome(lambda L, o: _epoch_step(make(L, o), o, 2), 0) is ZeroDivisionError
    opt = optimizer("ours")
    scheduler = make(ours_lib, opt)
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="total_iters"):
            scheduler.step(2)
    assert scheduler.last_epoch == 0 and scheduler.get_last_lr() == group_values(opt)


def _epoch_step(scheduler: Any, opt: Any, epoch: Any) -> Any:
    opt.step()
    scheduler.step(epoch)
    return scheduler


def test_onecycle_step_past_total_refused_before_anything_changes() -> None:
    """Both raise torch's ValueError; torch has already counted the step (last_epoch 4), ours has not."""
    sides = {}
    for side, L in LIBS.items():
        opt = optimizer(side)
        scheduler = _steps(L.OneCycleLR(opt, 0.1, total_steps=3), opt, 3)
        opt.step()
        with pytest.raises(ValueError, match="^Tried to step 4 times. The specified number of total steps is 3$"):
            scheduler.step()
        sides[side] = (scheduler.last_epoch, hexes(group_values(opt)))
    assert sides["torch"][0] == 4 and sides["ours"][0] == 3
    assert sides["ours"][1] == sides["torch"][1]


# Arguments torch accepts that ours refuses (its policy for huge ints and NaN): each shows what torch does.
def test_ours_refuses_huge_ints_and_nans_that_torch_takes_silently() -> None:
    # StepLR with step_size 10**400: torch never decays; ours: "too large for a float"
    rows = run("torch", lambda L, o: L.StepLR(o, 10**400), 3)
    assert lr_column(rows) == [0.1] * 4
    with pytest.raises(ValueError, match="step_size"):
        ours_lib.StepLR(optimizer("ours"), 10**400)
    # ReduceLROnPlateau threshold NaN: torch never sees an improvement, so it reduces every patience+1 steps
    rows = run("torch", lambda L, o: L.ReduceLROnPlateau(o, threshold=math.nan, patience=0), 2,
               metrics=lambda t: 1.0 / t)
    assert lr_column(rows) == [0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1]
    with pytest.raises(ValueError, match="threshold"):
        ours_lib.ReduceLROnPlateau(optimizer("ours"), threshold=math.nan)


# --------------------------------------------------------------------------------------
# 3. Warnings
# --------------------------------------------------------------------------------------

DETECTED = ("UserWarning", "Detected call of `lr_scheduler.step()` before `optimizer.step()`. In PyTorch 1.1.0 and "
            "later, you should call them in the opposite order: `optimizer.step()` before `lr_scheduler.step()`.  "
            "Failure to do this will result in PyTorch skipping the first value of the learning rate schedule. See "
            "more details at https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate")
OVERRIDDEN = ("UserWarning", "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
              "initialization. Please, make sure to call `optimizer.step()` before `lr_scheduler.step()`. See more "
              "details at https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate")
DEPRECATED = ("UserWarning", theirs_lib.EPOCH_DEPRECATION_WARNING)
GET_LR = ("UserWarning", "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.")


def _warnings_of(make: Any, action: Any, kind: str = "SGD") -> dict[str, list[tuple[str, str]]]:
    """The warnings ``action(scheduler, optimizer)`` emits on each side (construction not included)."""
    out = {}
    for side, L in LIBS.items():
        opt = optimizer(side, kind)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = make(L, opt)
        out[side] = caught(lambda s=scheduler, o=opt: action(s, o))
    return out


@pytest.mark.parametrize("name", list(BUILDERS))
def test_step_before_optimizer_step_warns_once_as_torch(name: str) -> None:
    def twice(s: Any, o: Any) -> None:
        s.step()
        s.step()

    seen = _warnings_of(BUILDERS[name], twice)
    assert seen["torch"] == [DETECTED]
    assert seen["ours"] == seen["torch"]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_step_after_optimizer_step_replaced_warns_as_torch(name: str) -> None:
    def replaced(s: Any, o: Any) -> None:
        o.step = lambda *a, **k: None
        o.step()
        s.step()

    seen = _warnings_of(BUILDERS[name], replaced)
    assert seen["torch"] == [OVERRIDDEN]
    assert seen["ours"] == seen["torch"]


def test_step_warnings_point_at_the_caller_as_torchs() -> None:
    for side, L in LIBS.items():
        scheduler = L.StepLR(optimizer(side), 3)
        with warnings.catch_warnings(record=True) as log:
            warnings.simplefilter("always")
            scheduler.step(2)
        assert [w.filename for w in log] == [__file__, __file__], side


@pytest.mark.parametrize("name", list(BUILDERS))
def test_step_with_epoch_warns_deprecation_as_torch(name: str) -> None:
    def with_epoch(s: Any, o: Any) -> None:
        o.step()
        s.step(3)
        o.step()
        s.step()  # no epoch: no warning

    seen = _warnings_of(BUILDERS[name], with_epoch)
    assert seen["torch"] == [DEPRECATED]
    assert seen["ours"] == seen["torch"]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_get_lr_outside_step_warns_and_computes_as_torch(name: str) -> None:
    """It still computes from the current state: a recursive schedule applies its factor again
    (and CyclicLR/OneCycleLR write the momentum), without changing the lr."""
    results = {}
    for side, L in LIBS.items():
        opt = optimizer(side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = _steps(BUILDERS[name](L, opt), opt, 3)
        values: list[Any] = []
        results[side] = (caught(lambda v=values, s=scheduler: v.append(s.get_lr())), hexes(values[0]),
                         hexes(group_values(opt)), hexes(group_values(opt, "momentum")))
    assert results["torch"][0] == [GET_LR]
    assert results["ours"] == results["torch"]


def test_cosine_warm_restarts_never_warns_as_torch() -> None:
    def everything(s: Any, o: Any) -> None:
        s.step()          # before optimizer.step()
        s.step(2.5)       # an epoch: not deprecated here
        o.step()
        s.step()

    seen = _warnings_of(lambda L, o: L.CosineAnnealingWarmRestarts(o, 3), everything)
    assert seen == {"ours": [], "torch": []}


def test_reduce_on_plateau_warns_only_for_an_epoch_as_torch() -> None:
    def everything(s: Any, o: Any) -> None:
        s.step(1.0)       # before optimizer.step(): no warning
        o.step()
        s.step(0.5, 7)    # the epoch is deprecated

    seen = _warnings_of(lambda L, o: L.ReduceLROnPlateau(o), everything)
    assert seen["torch"] == [DEPRECATED]
    assert seen["ours"] == seen["torch"]


def test_chained_scheduler_warns_once_per_member_as_torch() -> None:
    seen = _warnings_of(lambda L, o: L.ChainedScheduler([L.StepLR(o, 2), L.ExponentialLR(o, 0.9)]),
                        lambda s, o: s.step())
    assert seen["torch"] == [DETECTED, DETECTED]
    assert seen["ours"] == seen["torch"]


def test_sequential_lr_warns_through_its_active_member_as_torch() -> None:
    seen = _warnings_of(lambda L, o: L.SequentialLR(o, [L.StepLR(o, 2), L.ExponentialLR(o, 0.9)], [5]),
                        lambda s, o: s.step())
    assert seen["torch"] == [DETECTED]
    assert seen["ours"] == seen["torch"]


CONSTRUCTION_WARNINGS = [
    # a ChainedScheduler first: SequentialLR's initial step is the chain's step(), which steps
    # each member before any optimizer.step(): one warning per member
    (lambda L, o: L.SequentialLR(o, [L.ChainedScheduler([L.StepLR(o, 2), L.ExponentialLR(o, 0.9)]),
                                     L.ConstantLR(o)], [2]), [DETECTED, DETECTED]),
    # a nested SequentialLR first whose milestone is reached by that step: _update_lr(0), no warning
    (lambda L, o: L.SequentialLR(o, [L.SequentialLR(o, [L.StepLR(o, 2), L.ExponentialLR(o, 0.9)], [1]),
                                     L.ConstantLR(o)], [2]), []),
    (lambda L, o: L.ChainedScheduler([L.StepLR(o, 2), L.ExponentialLR(o, 0.9)]), []),
]


@pytest.mark.parametrize("case", CONSTRUCTION_WARNINGS, ids=["chain first", "nested first", "chain"])
def test_construction_warns_as_torch(case: tuple) -> None:
    make, expected = case
    seen = {side: caught(lambda side=side, L=L: make(L, optimizer(side))) for side, L in LIBS.items()}
    assert seen["torch"] == expected
    assert seen["ours"] == seen["torch"]


# --------------------------------------------------------------------------------------
# 4. State dicts
# --------------------------------------------------------------------------------------

STATEFUL = {
    **BUILDERS,
    "LambdaLR callable object": lambda L, o: L.LambdaLR(o, [_exp95, Power(0.9)]),
    "CyclicLR custom scale_fn": lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2, scale_fn=Power(0.99)),
    "CyclicLR without momentum": lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2, cycle_momentum=False),
    "OneCycleLR linear without momentum": lambda L, o: L.OneCycleLR(o, 0.1, total_steps=10, cycle_momentum=False,
                                                                    anneal_strategy="linear"),
    "CosineAnnealingWarmRestarts": lambda L, o: L.CosineAnnealingWarmRestarts(o, 2, T_mult=2),
    "ReduceLROnPlateau": lambda L, o: L.ReduceLROnPlateau(o, mode="max", min_lr=[0.0, 0.01]),
    "ReduceLROnPlateau scalar min_lr": lambda L, o: L.ReduceLROnPlateau(o),
    "SequentialLR": lambda L, o: L.SequentialLR(o, [L.ConstantLR(o), L.MultiStepLR(o, [1, 1])], [2]),
    "ChainedScheduler": lambda L, o: L.ChainedScheduler([L.LambdaLR(o, Power(0.8)), L.ExponentialLR(o, 0.9)]),
}


def _stepped_state(side: str, make: Any, steps: int = 3) -> tuple[Any, dict[str, Any]]:
    opt = optimizer(side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = make(LIBS[side], opt)
        for t in range(steps):
            opt.step()
            scheduler.step(1.0 / (t + 1)) if "ReduceLROnPlateau" in type(scheduler).__name__ else scheduler.step()
    return scheduler, scheduler.state_dict()


def _normalized(value: Any) -> Any:
    """torch's state values in our plain form: a Counter (MultiStepLR's milestones) as the sorted milestones."""
    if isinstance(value, Counter):
        return sorted(value.elements())
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_normalized(v) for v in value)
    return value


def _exact(value: Any) -> Any:
    """A value with every float as its hex (so 0.1 and 0.1 + 1 ulp differ, int 0 and 0.0 differ)."""
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_exact(v) for v in value])
    return hexes(value)


def _torch_keys(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Our state dict without "class", after checking that "class" is the one key torch's has
    not and that it names torch's class (a composite's members' state dicts too)."""
    assert set(ours) - set(theirs) == {"class"} and set(theirs) < set(ours)
    out = {key: value for key, value in ours.items() if key != "class"}
    if "_schedulers" in out:
        out["_schedulers"] = [_torch_keys(a, b) for a, b in zip(out["_schedulers"], theirs["_schedulers"],
                                                                strict=True)]
    return out


@pytest.mark.parametrize("name", list(STATEFUL))
def test_state_dict_keys_and_values_equal_torchs(name: str) -> None:
    """torch's keys in torch's order and the same values, but for the one key ours adds,
    "class" (the class name, which load_state_dict checks; in a composite's members' state
    dicts too), and MultiStepLR's Counter (ours holds the sorted milestones; see
    test_multistep_state_holds_sorted_milestones_not_a_counter)."""
    scheduler, ours = _stepped_state("ours", STATEFUL[name])
    torch_scheduler, theirs = _stepped_state("torch", STATEFUL[name])
    assert ours["class"] == type(scheduler).__name__ == type(torch_scheduler).__name__
    members = zip(getattr(scheduler, "_schedulers", []), getattr(torch_scheduler, "_schedulers", []),
                  ours.get("_schedulers", []))
    for ours_member, torch_member, state in members:
        assert state["class"] == type(ours_member).__name__ == type(torch_member).__name__
    same = _torch_keys(ours, theirs)
    assert list(same) == list(theirs)
    assert _exact(same) == _exact(_normalized(theirs))


def _plain(value: Any) -> bool:
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is dict:
        return all(_plain(k) and _plain(v) for k, v in value.items())
    if type(value) in (list, tuple):
        return all(_plain(v) for v in value)
    return False


@pytest.mark.parametrize("name", list(STATEFUL))
def test_state_dict_is_plain_values_only(name: str) -> None:
    """dict/list/tuple/str/int/float/bool/None (no Counter, no callable, no NumPy scalar), and the
    pickle names nothing of numpy_optim, so another process loads it without our classes."""
    _, state = _stepped_state("ours", STATEFUL[name])
    assert _plain(state), state
    assert b"numpy_optim" not in pickle.dumps(state)


def test_multistep_state_holds_sorted_milestones_not_a_counter() -> None:
    scheduler, ours = _stepped_state("ours", lambda L, o: L.MultiStepLR(o, [4, 2, 4, 0]))
    _, theirs = _stepped_state("torch", lambda L, o: L.MultiStepLR(o, [4, 2, 4, 0]))
    assert theirs["milestones"] == Counter({4: 2, 2: 1, 0: 1}) and type(theirs["milestones"]) is Counter
    assert ours["milestones"] == [0, 2, 4, 4] and type(ours["milestones"]) is list
    assert scheduler.milestones == Counter({4: 2, 2: 1, 0: 1})  # the attribute is torch's Counter


def test_lambda_state_saves_callable_objects_dicts_and_restores_them_as_torch() -> None:
    for side in LIBS:
        scheduler, state = _stepped_state(side, lambda L, o: L.LambdaLR(o, [_exp95, Power(0.9)]))
        assert state["lr_lambdas"] == [None, {"gamma": 0.9}]
        fresh_fn = Power(0.5)
        fresh = LIBS[side].LambdaLR(optimizer(side), [_exp95, fresh_fn])
        snapshot = pickle.loads(pickle.dumps(state))
        fresh.load_state_dict(snapshot)
        assert fresh_fn.gamma == 0.9, side          # __dict__ restored into the new callable
        assert snapshot == state, side              # the caller's dict is left as it was
        assert fresh.last_epoch == 3, side


def test_lambda_state_of_a_builtin() -> None:
    """torch's state_dict() fails on a builtin lr_lambda (it has no __dict__); ours saves {}."""
    for side, L in LIBS.items():
        scheduler = L.LambdaLR(optimizer(side), math.exp)
        if side == "torch":
            with pytest.raises(AttributeError, match="__dict__"):
                scheduler.state_dict()
        else:
            assert scheduler.state_dict()["lr_lambdas"] == [{}, {}]


def test_cyclic_state_drops_scale_fn_ref_and_saves_custom_dict_as_torch() -> None:
    for side in LIBS:
        _, state = _stepped_state(side, lambda L, o: L.CyclicLR(o, 0.01, 0.1, scale_fn=Power(0.99)))
        assert "_scale_fn_ref" not in state and state["_scale_fn_custom"] == {"gamma": 0.99}
        _, state = _stepped_state(side, lambda L, o: L.CyclicLR(o, 0.01, 0.1, scale_fn=_half))
        assert state["_scale_fn_custom"] is None and list(state)[-1] == "_scale_fn_custom"


def test_cyclic_load_twice_torch_keyerror_ours_loads() -> None:
    """torch's CyclicLR.load_state_dict pops _scale_fn_custom from the caller's dict (reference
    §3.10), so a second load raises KeyError; ours leaves the dict intact and loads it again."""
    for side, L in LIBS.items():
        _, state = _stepped_state(side, lambda L, o: L.CyclicLR(o, 0.01, 0.1))
        fresh = L.CyclicLR(optimizer(side), 0.01, 0.1)
        fresh.load_state_dict(state)
        if side == "torch":
            assert "_scale_fn_custom" not in state
            with pytest.raises(KeyError, match="_scale_fn_custom"):
                fresh.load_state_dict(state)
        else:
            assert "_scale_fn_custom" in state
            fresh.load_state_dict(state)
            assert fresh.last_epoch == 3


def test_onecycle_keeps_its_schedule_in_the_entries_as_torch_in_its_groups() -> None:
    """base_lrs are the initial_lr values; max_lr, min_lr and the momenta live in the groups
    (the optimizer's state dict carries them)."""
    seen = {}
    for side in LIBS:
        scheduler, state = _stepped_state(side, lambda L, o: L.OneCycleLR(o, [0.1, 0.2], total_steps=10))
        opt = scheduler.optimizer
        seen[side] = (hexes(state["base_lrs"]), [hexes(group_values(opt, k)) for k in
                                                 ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")])
        assert not any(k in state for k in ("max_lrs", "min_lrs", "max_momentum"))
    assert seen["ours"] == seen["torch"]
    assert seen["torch"][0] == hexes([0.1 / 25.0, 0.2 / 25.0])


def test_reduce_on_plateau_state_keeps_int_min_lr_and_infinite_mode_worse_as_torch() -> None:
    for side in LIBS:
        _, state = _stepped_state(side, lambda L, o: L.ReduceLROnPlateau(o))
        assert state["min_lrs"] == [0, 0] and type(state["min_lrs"][0]) is int
        assert state["mode_worse"] == math.inf and state["default_min_lr"] == 0


def test_state_dict_resume_continues_torchs_run_bitwise() -> None:
    """Build afresh, load the optimizer's then the scheduler's state (torch's docs' order): the
    continuation equals torch's uninterrupted run, for every class."""
    for name, make in STATEFUL.items():
        theirs = run("torch", make, 10, keys=("lr", "momentum"), metrics=_metric if "Plateau" in name else None)
        opt = optimizer("ours")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = make(ours_lib, opt)
            for t in range(1, 6):
                opt.step()
                scheduler.step(*([_metric(t)] if "Plateau" in name else []))
            saved = pickle.loads(pickle.dumps((opt.state_dict(), scheduler.state_dict())))
            opt = optimizer("ours")
            scheduler = make(ours_lib, opt)
            opt.load_state_dict(saved[0])
            scheduler.load_state_dict(saved[1])
            rows = [_row(opt, scheduler, ("lr", "momentum"))]
            for t in range(6, 11):
                opt.step()
                scheduler.step(*([_metric(t)] if "Plateau" in name else []))
                rows.append(_row(opt, scheduler, ("lr", "momentum")))
        assert rows == theirs[5:], name


def _metric(t: int) -> float:
    return [1.0, 0.9, 0.9, 0.95, 0.9, 0.89999, 0.8][t % 7]


def _resume_helper() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("resume_schedule", Path(__file__).with_name("resume_schedule.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fresh_process_resume_continues_torchs_run(tmp_path: Path) -> None:
    """One process (NumPy only) runs 7 steps and pickles the state dicts; a second builds afresh,
    loads them and runs 8 more; every lr equals torch's uninterrupted 15-step run bit for bit."""
    helper = _resume_helper()
    script, state = str(Path(__file__).with_name("resume_schedule.py")), str(tmp_path / "state.pkl")
    subprocess.run([sys.executable, script, "save", state, "7"], check=True, cwd=tmp_path)
    out = subprocess.run([sys.executable, script, "load", state, "8", "7"], check=True, cwd=tmp_path,
                         capture_output=True, text=True)
    continued = json.loads(out.stdout)
    assert set(continued) == set(helper.CASES)
    for name, (kind, make) in helper.CASES.items():
        groups = []
        for e in helper.entries():
            t = torch.tensor(e["params"], requires_grad=True)
            t.grad = torch.tensor(e["grad"])
            groups.append({"params": [t], **({"lr": e["lr"]} if "lr" in e else {})})
        opt = (torch.optim.SGD(groups, lr=0.1, momentum=0.9) if kind == "SGD"
               else torch.optim.Adam(groups, lr=0.1, betas=(0.9, 0.99)))
        scheduler = make(theirs_lib, opt)
        rows = []
        for t in range(1, 16):
            helper.advance(name, opt, scheduler, t)
            if t >= 7:
                rows.append([float(g["lr"]).hex() for g in opt.param_groups])
        assert continued[name] == rows, name


# --------------------------------------------------------------------------------------
# 5. torch's surprises, reproduced (reference §0, §2, §3)
# --------------------------------------------------------------------------------------


def _closed_mismatches(rows: list[Any], closed: Any) -> int:
    """How many (step, entry) lrs of torch's recursion differ from ``closed(e, base)``."""
    bases = (0.1, 0.037)
    return sum(float.fromhex(h) != closed(e, b) for e, r in enumerate(rows) for h, b in zip(r[0], bases))


# §0.3: construction performs one step, which may change the lr
CONSTRUCTION = [
    ("LambdaLR base*λ(0)", lambda L, o: L.LambdaLR(o, lambda e: 0.5 + e), [0.05, 0.0185]),
    ("MultiplicativeLR unchanged (guard)", lambda L, o: L.MultiplicativeLR(o, _half), [0.1, 0.037]),
    ("StepLR unchanged", lambda L, o: L.StepLR(o, 1), [0.1, 0.037]),
    ("MultiStepLR milestone 0 decays", lambda L, o: L.MultiStepLR(o, [0, 3]), [0.010000000000000002, 0.0037]),
    ("ConstantLR lr*factor", lambda L, o: L.ConstantLR(o, 0.5), [0.05, 0.0185]),
    ("LinearLR lr*start_factor", lambda L, o: L.LinearLR(o, 0.25), [0.025, 0.00925]),
    ("ExponentialLR unchanged (guard)", lambda L, o: L.ExponentialLR(o, 0.5), [0.1, 0.037]),
    ("PolynomialLR unchanged (guard)", lambda L, o: L.PolynomialLR(o), [0.1, 0.037]),
    ("CosineAnnealingLR unchanged (guard)", lambda L, o: L.CosineAnnealingLR(o, 3), [0.1, 0.037]),
    ("CyclicLR base_lr", lambda L, o: L.CyclicLR(o, [0.01, 0.02], 0.1), [0.01, 0.02]),
    ("OneCycleLR max_lr/div_factor with cos rounding", lambda L, o: L.OneCycleLR(o, 0.1, total_steps=100),
     [0.0040000000000000036, 0.0040000000000000036]),
    ("CosineAnnealingWarmRestarts base", lambda L, o: L.CosineAnnealingWarmRestarts(o, 3), [0.1, 0.037]),
    ("ReduceLROnPlateau no initial step", lambda L, o: L.ReduceLROnPlateau(o), [0.1, 0.037]),
]


@pytest.mark.parametrize("case", CONSTRUCTION, ids=[c[0] for c in CONSTRUCTION])
def test_construction_step_as_torch(case: tuple) -> None:
    _, make, expected = case
    rows = assert_same(make, 0)
    assert [float.fromhex(h) for h in rows[0][0]] == expected
    for side, L in LIBS.items():  # last_epoch 0 and _step_count 1 (0 for CAWR, none for ReduceLROnPlateau)
        scheduler = make(L, optimizer(side))
        assert scheduler.last_epoch == 0
        assert getattr(scheduler, "_step_count", None) == {"CosineAnnealingWarmRestarts": 0,
                                                           "ReduceLROnPlateau": None}.get(type(scheduler).__name__, 1)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_entry_gets_the_keys_torch_puts_in_its_groups(name: str) -> None:
    """An entry without its own lr gets one at construction (every torch group has one), and
    the scheduler keys torch adds (initial_lr; CyclicLR/OneCycleLR: max_lr, min_lr, momenta)."""
    keys = {}
    for side, L in LIBS.items():
        o = optimizer(side)
        BUILDERS[name](L, o)
        cycled = ("momentum",) if name in ("CyclicLR", "OneCycleLR") else ()  # else in optimizer.defaults
        keys[side] = [sorted(k for k in g if k in ("lr", *SCHEDULER_KEYS, *cycled)) for g in o.param_groups]
    assert keys["ours"] == keys["torch"]
    assert all("lr" in k and "initial_lr" in k for k in keys["ours"])


SCHEDULER_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum")


def test_later_scheduler_takes_base_lrs_from_initial_lr_as_torch() -> None:
    """§0.4: ``setdefault``: a scheduler built after another uses the first one's initial_lr, not
    the lr as it stands; its closed form (step(epoch)) starts from there."""
    def make(L: Any, o: Any) -> Any:
        first = _steps(L.ExponentialLR(o, 0.5), o, 3)
        return L.StepLR(o, 2, gamma=0.1) if first else None

    rows = assert_same(make, 4, epochs={2: 1, 4: 2})
    assert lr_column(rows)[0] == 0.1 * 0.5**3
    assert lr_column(rows)[2] == 0.1 and lr_column(rows)[4] == 0.1 * 0.1 ** 1
    for side, L in LIBS.items():
        o = optimizer(side)
        _steps(L.ExponentialLR(o, 0.5), o, 3)
        assert L.StepLR(o, 2).base_lrs == [0.1, 0.037]


def test_onecycle_overwrites_initial_lr_as_torch() -> None:
    def make(L: Any, o: Any) -> Any:
        _steps(L.ExponentialLR(o, 0.5), o, 2)
        return L.OneCycleLR(o, 0.2, total_steps=8, div_factor=4.0)

    assert_same(make, 8, keys=("lr", "initial_lr", "momentum"))
    for side, L in LIBS.items():
        o = optimizer(side)
        make(L, o)
        assert group_values(o, "initial_lr") == [0.05, 0.05]


def test_multiplicative_step_epoch_applies_one_factor_whatever_the_jump_as_torch() -> None:
    """§2.2: step(10) on a fresh MultiplicativeLR(λ=0.5) gives 0.05: one factor λ(10)."""
    rows = assert_same(lambda L, o: L.MultiplicativeLR(o, _half), 2, epochs={1: 10})
    assert lr_column(rows)[1:] == [0.05, 0.025]


def test_epoch_reaches_the_lambda_as_given_as_torch() -> None:
    """§2.2/§3.1: a float epoch reaches the lambda unchanged; one function is called once per group per step."""
    calls: dict[str, list[Any]] = {"ours": [], "torch": []}
    for side in LIBS:
        def lam(e: Any, log: list[Any] = calls[side]) -> float:
            log.append((type(e).__name__, e))
            return 1.0 / (1.0 + e)

        rows = run(side, lambda L, o: L.LambdaLR(o, lam), 3, epochs={2: 2.5})
        calls[side].append(rows)
    assert calls["ours"] == calls["torch"]
    assert calls["torch"][:8] == [("int", 0)] * 2 + [("int", 1)] * 2 + [("float", 2.5)] * 2 + [("float", 3.5)] * 2


# §2.3: resuming with the last_epoch argument (optimizer state loaded, scheduler state not)
def _resume_by_argument(side: str, make: Any, k: int, last_epoch: int, steps: int) -> list[Any]:
    L = LIBS[side]
    o = optimizer(side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _steps(make(L, o, -1), o, k)
        saved = pickle.loads(pickle.dumps(o.state_dict()))
        fresh = optimizer(side)
        fresh.load_state_dict(saved)
        scheduler = make(L, fresh, last_epoch)
        rows = [_row(fresh, scheduler, ("lr",))]
        for _ in range(steps):
            fresh.step()
            scheduler.step()
            rows.append(_row(fresh, scheduler, ("lr",)))
    return rows


RESUMED = {
    "StepLR(3)": (lambda L, o, e: L.StepLR(o, 3, gamma=0.5, last_epoch=e), 0.0125, 0.025),
    "MultiStepLR([2,6])": (lambda L, o, e: L.MultiStepLR(o, [2, 6], gamma=0.5, last_epoch=e), 0.0125, 0.025),
    "ConstantLR(0.5, 6)": (lambda L, o, e: L.ConstantLR(o, 0.5, total_iters=6, last_epoch=e), 0.2, 0.1),
    "ExponentialLR": (lambda L, o, e: L.ExponentialLR(o, 0.9, last_epoch=e), None, None),
    "CosineAnnealingLR": (lambda L, o, e: L.CosineAnnealingLR(o, 5, last_epoch=e), None, None),
    "LinearLR": (lambda L, o, e: L.LinearLR(o, 0.2, total_iters=8, last_epoch=e), None, None),
    "CyclicLR": (lambda L, o, e: L.CyclicLR(o, 0.01, 0.1, step_size_up=3, last_epoch=e), None, None),
    "OneCycleLR": (lambda L, o, e: L.OneCycleLR(o, 0.1, total_steps=20, last_epoch=e), None, None),
    "CosineAnnealingWarmRestarts": (lambda L, o, e: L.CosineAnnealingWarmRestarts(o, 4, last_epoch=e), None, None),
}


@pytest.mark.parametrize("name", list(RESUMED))
@pytest.mark.parametrize("offset", [0, -1], ids=["last_epoch=K", "last_epoch=K-1"])
def test_resume_with_last_epoch_argument_as_torch(name: str, offset: int) -> None:
    """last_epoch=K is one step ahead; K-1 continues, except that a decay/restore epoch K of a
    class without the _is_initial guard applies its factor twice (StepLR, MultiStepLR, ConstantLR)."""
    make, doubled, right = RESUMED[name]
    ours, theirs = (_resume_by_argument(side, make, 6, 6 + offset, 6) for side in LIBS)
    assert ours == theirs
    if doubled is not None and offset == -1:
        assert lr_column(theirs)[0] == doubled
        uninterrupted = run("torch", lambda L, o: make(L, o, -1), 6)
        assert lr_column(uninterrupted)[6] == right


@pytest.mark.parametrize("name", ["ConstantLR", "LinearLR", "ExponentialLR", "MultiStepLR with 0", "SequentialLR"])
def test_optimizer_state_loaded_before_building_the_scheduler_as_torch(name: str) -> None:
    """§2.3 and torch's class docstring: loading the optimizer's state *before* building the
    scheduler (then loading the scheduler's) lets the construction step apply its factor again:
    wrong for ConstantLR, LinearLR (and a milestone-0 MultiStepLR, a SequentialLR), right for the
    classes whose construction leaves the lr alone."""
    make = {"ConstantLR": lambda L, o: L.ConstantLR(o, 0.5, total_iters=8),
            "LinearLR": lambda L, o: L.LinearLR(o, 0.5, total_iters=8),
            "ExponentialLR": lambda L, o: L.ExponentialLR(o, 0.9),
            "MultiStepLR with 0": lambda L, o: L.MultiStepLR(o, [0, 5], gamma=0.5),
            "SequentialLR": lambda L, o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), L.StepLR(o, 2)], [5])}[name]
    results = {}
    for side, L in LIBS.items():
        o = optimizer(side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = _steps(make(L, o), o, 3)
            saved = pickle.loads(pickle.dumps((o.state_dict(), scheduler.state_dict())))
            fresh = optimizer(side)
            fresh.load_state_dict(saved[0])
            late = make(L, fresh)
            late.load_state_dict(saved[1])
            results[side] = [hexes(group_values(fresh))] + [hexes(group_values(_steps(late, fresh, 1).optimizer))
                                                            for _ in range(6)]
    assert results["ours"] == results["torch"]
    uninterrupted = run("torch", make, 9)
    assert (results["torch"] == [r[0] for r in uninterrupted[3:]]) == (name == "ExponentialLR")


def test_get_last_lr_is_one_list_until_the_next_step_as_torch() -> None:
    """§2.4: the same list object until the next step, a new one every step; SequentialLR hands
    out its active member's list itself; ChainedScheduler a list of its own."""
    for side, L in LIBS.items():
        o = optimizer(side)
        scheduler = L.StepLR(o, 2)
        first = scheduler.get_last_lr()
        assert scheduler.get_last_lr() is first
        o.step()
        scheduler.step()
        assert scheduler.get_last_lr() is not first and scheduler.get_last_lr() == first
        a, b = L.ExponentialLR(o, 0.9), L.StepLR(o, 2)
        sequential = L.SequentialLR(o, [a, b], [2])
        assert sequential.get_last_lr() is a.get_last_lr()
        _steps(sequential, o, 2)
        assert sequential.get_last_lr() is b.get_last_lr()
        chained = L.ChainedScheduler([L.ExponentialLR(o, 0.9), L.StepLR(o, 2)])
        _steps(chained, o, 1)
        assert chained.get_last_lr() is not chained._schedulers[-1].get_last_lr()
        assert chained.get_last_lr() == group_values(o)


@pytest.mark.parametrize("name", ["SequentialLR", "ChainedScheduler"])
def test_compositions_step_takes_no_epoch_and_have_no_get_lr_as_torch(name: str) -> None:
    errors = {}
    for side, L in LIBS.items():
        o = optimizer(side)
        members = [L.ExponentialLR(o, 0.9), L.StepLR(o, 2)]
        scheduler = L.SequentialLR(o, members, [2]) if name == "SequentialLR" else L.ChainedScheduler(members)
        errors[side] = (error_of(lambda s=scheduler: s.step(3)), error_of(lambda s=scheduler: s.get_lr())[0])
    assert errors["torch"][0][0] is TypeError and errors["torch"][1] is NotImplementedError
    assert errors["ours"] == errors["torch"]


def test_multiplicative_recursion_not_its_closed_form_as_torch() -> None:
    """§3.2: λ=0.95 over 90 steps: torch's product differs from b*0.95**e in 130 of 182 values."""
    rows = assert_same(lambda L, o: L.MultiplicativeLR(o, lambda e: 0.95), 90)
    assert _closed_mismatches(rows, lambda e, b: b * 0.95**e) == 130


def test_step_lr_recursion_drifts_from_its_closed_form_as_torch() -> None:
    """§3.3: step 10, γ 0.1 over 1000 steps: 1252 of 2002 differ from b*γ**(e//10), first at e=40."""
    rows = assert_same(lambda L, o: L.StepLR(o, 10, gamma=0.1), 1000)
    closed = lambda e, b: b * 0.1 ** (e // 10)  # noqa: E731
    assert _closed_mismatches(rows, closed) == 1252
    assert _closed_mismatches(rows[:40], closed) == 0 and _closed_mismatches(rows[:41], closed) > 0
    rows = assert_same(lambda L, o: L.StepLR(o, 2.5), 6)  # a float step_size is accepted
    assert lr_column(rows)[5] == 0.1 * 0.1


def test_multistep_repeated_milestone_is_gamma_squared_then_gamma_as_torch() -> None:
    """§3.4: [3,3,8], γ 0.9: γ**2 then *γ is not γ**3: 17 of 50 values differ from e = 8 on."""
    rows = assert_same(lambda L, o: L.MultiStepLR(o, [8, 3, 3], gamma=0.9), 24)
    closed = lambda e, b: b * 0.9 ** ((e >= 3) * 2 + (e >= 8))  # noqa: E731
    assert _closed_mismatches(rows, closed) == 17 and _closed_mismatches(rows[:8], closed) == 0


def test_constant_lr_restores_by_dividing_as_torch() -> None:
    """§3.5: after T the 0.037 group is 0.03699999999999999; with total_iters=0 the recursion
    stays at b*factor while the closed form (step(epoch)) gives b."""
    rows = assert_same(lambda L, o: L.ConstantLR(o), 15)
    assert lr_column(rows, 1)[5] == 0.03699999999999999
    assert _closed_mismatches(rows, lambda e, b: b * (1 / 3 + (e >= 5) * (1 - 1 / 3))) == 11
    rows = assert_same(lambda L, o: L.ConstantLR(o, 0.5, total_iters=0), 3, epochs={3: 3})
    assert lr_column(rows)[1:] == [0.05, 0.05, 0.1]


def test_linear_lr_recursion_ends_off_by_one_ulp_as_torch() -> None:
    """§3.6: after T the defaults give 0.037000000000000005; total_iters=0 stays at b*start."""
    rows = assert_same(lambda L, o: L.LinearLR(o), 8)
    assert lr_column(rows, 1)[5:] == [0.037000000000000005] * 4
    rows = assert_same(lambda L, o: L.LinearLR(o, 0.5, total_iters=0), 3)
    assert lr_column(rows) == [0.05] * 4


def test_linear_lr_to_zero_ends_slightly_negative_as_torch() -> None:
    """end_factor=0: torch's recursion reaches -4.7e-18, not 0 (a quarter of such configs end below 0);
    torch's optimizers step with it, and so do ours, which also save and load it."""
    rows = assert_same(lambda L, o: L.LinearLR(o, 0.6389533500505029, 0.0, total_iters=6), 6)
    assert lr_column(rows)[6] == -4.729204805916306e-18
    rows = assert_same(lambda L, o: L.LinearLR(o, 1 / 3, 0.0, total_iters=4), 9)
    assert lr_column(rows)[4:] == [-1.8503717077085946e-18] * 6
    o = optimizer("ours")
    _steps(ours_lib.LinearLR(o, 1 / 3, 0.0, total_iters=4), o, 4)
    o.step()
    fresh = optimizer("ours")
    fresh.load_state_dict(o.state_dict())
    assert group_values(fresh) == group_values(o) and group_values(o)[0] < 0


def test_exponential_recursion_and_closed_form_at_100_as_torch() -> None:
    """§3.7: γ 0.95 at e = 100: the recursion gives 0.0005920529220333994, step(100) the closed form
    0.0005920529220333997."""
    rows = assert_same(lambda L, o: L.ExponentialLR(o, 0.95), 101, epochs={101: 100})
    assert lr_column(rows)[100] == 0.0005920529220333994
    assert lr_column(rows)[101] == 0.0005920529220333997


def test_polynomial_reaches_zero_and_stays_as_torch() -> None:
    rows = assert_same(lambda L, o: L.PolynomialLR(o, total_iters=30, power=3.0), 35)
    assert lr_column(rows)[30:] == [0.0] * 6 and lr_column(rows)[29] > 0


def test_cosine_annealing_periodic_with_exact_minimum_as_torch() -> None:
    """§3.9: exactly eta_min at T, 3T; rises again after T; at 2T 0.10000000000000044 and 0.03700000000000016."""
    rows = assert_same(lambda L, o: L.CosineAnnealingLR(o, 10), 40)
    assert lr_column(rows)[10] == 0.0 == lr_column(rows)[30]
    assert lr_column(rows)[20] == 0.10000000000000044 and lr_column(rows, 1)[20] == 0.03700000000000016
    assert lr_column(rows)[11] > 0 and _closed_mismatches(rows[:31], lambda e, b: (b * (1 + math.cos(math.pi * e / 10))
                                                                                 ) / 2) == 48


def test_cosine_annealing_direct_get_lr_after_resume_construction_is_its_closed_form_as_torch() -> None:
    """§3.9 branch 2: right after a construction with last_epoch=K, get_lr() (called directly)
    returns the closed form at K+1."""
    values = {}
    for side, L in LIBS.items():
        o = optimizer(side)
        L.ExponentialLR(o, 1.0)  # gives the entries their initial_lr
        scheduler = L.CosineAnnealingLR(o, 10, eta_min=1e-3, last_epoch=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values[side] = hexes(scheduler.get_lr())
    assert values["ours"] == values["torch"]
    assert values["torch"] == hexes([1e-3 + (b - 1e-3) * (1 + math.cos(4 * math.pi / 10)) / 2 for b in (0.1, 0.037)])


def test_cyclic_stale_base_at_construction_as_torch() -> None:
    """§3.10: with initial_lr already set (an earlier scheduler), the construction step uses those
    bases: lr [0.1, 0.037] right after CyclicLR(base_lr=0.01); base_lrs become [0.01, 0.01] after."""
    def make(L: Any, o: Any) -> Any:
        L.ExponentialLR(o, 0.9)
        return L.CyclicLR(o, 0.01, 0.1, step_size_up=4)

    rows = assert_same(make, 6, keys=("lr", "momentum"))
    assert [float.fromhex(h) for h in rows[0][0]] == [0.1, 0.037]
    for side, L in LIBS.items():
        assert make(L, optimizer(side)).base_lrs == [0.01, 0.01]


def test_cyclic_switches_sgd_momentum_on_and_cycles_adams_beta1_as_torch() -> None:
    """§3.10: SGD with momentum 0 gets 0.9, cycling to 0.8; Adam's beta1 is 0.8500000000000001
    after one step with step_size_up=2 (beta2 kept)."""
    rows = assert_same(lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2), 8, keys=("lr", "momentum"))
    assert [float.fromhex(r[1][0]) for r in rows[:3]] == [0.9, 0.8500000000000001, 0.8]
    rows = assert_same(lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2), 8, kind="Adam", keys=("lr", "betas"))
    assert float.fromhex(rows[1][1][0]) == 0.8500000000000001
    for side, L in LIBS.items():
        o = optimizer(side, "Adam", betas=(0.9, 0.99))
        L.CyclicLR(o, 0.01, 0.1)
        assert [tuple(g["betas"]) for g in o.param_groups] == [(0.9, 0.99), (0.9, 0.99)]


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize("scale_mode", ["cycle", "iterations", "anything else"])
def test_cyclic_modes_force_their_scale_mode_unless_scale_fn_as_torch(mode: str, scale_mode: str) -> None:
    """A mode fixes scale_mode (triangular/triangular2: cycle, exp_range: iterations) when scale_fn is
    None; with a scale_fn, scale_mode is used as given, anything but "cycle" meaning iterations."""
    assert_same(lambda L, o: L.CyclicLR(o, [0.01, 0.02], 0.1, step_size_up=3, step_size_down=2, mode=mode,
                                        gamma=0.97, scale_mode=scale_mode), 25, keys=("lr", "momentum"))
    assert_same(lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=3, mode=mode, scale_fn=Power(0.9),
                                        scale_mode=scale_mode), 25, keys=("lr", "momentum"))


def test_cyclic_triangular2_overflows_after_1024_cycles_as_torch() -> None:
    """1 / 2.0 ** (cycle - 1) overflows at cycle 1025: both raise OverflowError at step 2048."""
    for side, L in LIBS.items():
        o = optimizer(side)
        scheduler = L.CyclicLR(o, 0.01, 0.1, step_size_up=1, mode="triangular2")
        _steps(scheduler, o, 2047)
        with pytest.raises(OverflowError):
            _steps(scheduler, o, 1)


def test_onecycle_first_last_and_extrapolated_steps_as_torch() -> None:
    """§3.11: step 0 is 0.0040000000000000036 (cos) / 0.004 (linear); step T-1 is min_lr
    (4e-07 / 3.999999999976245e-07); step T extrapolates: cos rises to 5.07e-05, linear goes negative."""
    cos = assert_same(lambda L, o: L.OneCycleLR(o, 0.1, total_steps=100), 100, keys=("lr", "momentum"))
    lin = assert_same(lambda L, o: L.OneCycleLR(o, 0.1, total_steps=100, anneal_strategy="linear"), 100,
                      keys=("lr", "momentum"))
    assert lr_column(cos)[0] == 0.0040000000000000036 and lr_column(lin)[0] == 0.004
    assert lr_column(cos)[99] == 4e-07 and lr_column(lin)[99] == 3.999999999976245e-07
    assert math.isclose(lr_column(cos)[100], 5.07e-05, rel_tol=1e-3)
    assert math.isclose(lr_column(lin)[100], -0.00143, rel_tol=1e-2)


def test_onecycle_peak_is_max_lr_only_when_pct_times_total_is_whole_as_torch() -> None:
    rows = assert_same(lambda L, o: L.OneCycleLR(o, 0.1, total_steps=37, pct_start=0.4), 37)
    assert max(lr_column(rows)) == 0.09997997543601467  # below max_lr (the reference's 0.0986 is not what 2.13 gives)
    rows = assert_same(lambda L, o: L.OneCycleLR(o, 0.1, total_steps=40, pct_start=0.4), 40)
    assert max(lr_column(rows)) == 0.1


def test_onecycle_single_step_and_three_phases_as_torch() -> None:
    rows = assert_same(lambda L, o: L.OneCycleLR(o, 0.1, total_steps=1), 1)
    assert lr_column(rows)[0] == 0.1 / 25.0 / 1e4
    assert_same(lambda L, o: L.OneCycleLR(o, [0.1, 0.3], epochs=4, steps_per_epoch=7, three_phase=True,
                                          anneal_strategy="linear"), 28, keys=("lr", "momentum"))


@pytest.mark.parametrize("kind", ["Adam", "RMSprop", "NAdam"])
def test_onecycle_momentum_starts_at_max_momentum_as_torch(kind: str) -> None:
    """Adam's beta1 starts at 0.95 (max_momentum), not 0.9; RMSprop's momentum becomes 0.95."""
    key = "momentum" if kind == "RMSprop" else "betas"
    rows = assert_same(lambda L, o: L.OneCycleLR(o, 0.1, total_steps=20), 20, kind=kind, keys=("lr", key))
    assert float.fromhex(rows[0][1][0]) == 0.95


def partial_cawr(t0: int, mult: int) -> Any:
    return lambda L, o: L.CosineAnnealingWarmRestarts(o, t0, T_mult=mult)


def test_warm_restarts_epoch_log_truncation_as_torch() -> None:
    """§3.12: step(epoch) takes n = int(log(...)); where math.log comes out just below an integer
    the restart lr is eta_min instead of the base: T_0=1,T_mult=3 at 121; T_0=2,T_mult=3 at 242;
    T_0=1,T_mult=10 at 111."""
    for t0, mult, epoch in [(1, 3, 121), (2, 3, 242), (1, 10, 111)]:
        make = partial_cawr(t0, mult)
        rows = assert_same(make, 1, epochs={1: epoch})
        assert lr_column(rows)[1] == 0.0
        plain = assert_same(make, epoch)
        assert lr_column(plain)[epoch] == 0.1  # step() restarts at the base


def test_warm_restarts_float_epoch_carries_over_as_torch() -> None:
    """step(7.5) with T_0=5: T_cur 2.5, last_epoch 7; the next step() gives T_cur 3.5."""
    seen = {}
    for side, L in LIBS.items():
        o = optimizer(side)
        scheduler = L.CosineAnnealingWarmRestarts(o, 5)
        scheduler.step(7.5)
        first = (scheduler.T_cur, scheduler.last_epoch)
        o.step()
        scheduler.step()
        seen[side] = (first, scheduler.T_cur, scheduler._step_count, hexes(group_values(o)))
    assert seen["torch"][:3] == ((2.5, 7), 3.5, 0)
    assert seen["ours"] == seen["torch"]
    assert_same(lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, T_mult=2, eta_min=1e-3), 60,
                epochs={5: 4.25, 9: 30, 20: 0, 33: 2.0, 40: 100.5})


PLATEAUS = [
    ("patience 2 drops at steps 4 and 7", dict(patience=2), lambda t: 1.0, [4, 7]),
    ("cooldown discards bad epochs", dict(patience=1, cooldown=2), lambda t: 1.0, [3, 7]),
    ("NaN is always bad", dict(patience=1), lambda t: math.nan if t > 2 else 1.0 / t, [4, 6, 8]),
    ("a NaN first metric with patience 0 reduces at once (until eps)", dict(patience=0), lambda t: math.nan,
     list(range(1, 8))),
    ("negative metrics: worse values improve (min, rel)", dict(patience=0, threshold=1e-4),
     lambda t: [-1.0, -0.99995, -0.9999, -0.99989][(t - 1) % 4], []),
    ("max mode, abs threshold", dict(mode="max", threshold_mode="abs", threshold=0.1, patience=0),
     lambda t: [1.0, 1.05, 1.2, 1.25][(t - 1) % 4], [2, 4, 5, 6, 7, 8]),
]


@pytest.mark.parametrize("case", PLATEAUS, ids=[c[0] for c in PLATEAUS])
def test_reduce_on_plateau_surprises_as_torch(case: tuple) -> None:
    """§3.13: the reduction comes on the (patience+1)-th bad step; cooldown keeps updating best but
    discards bad epochs; NaN is never an improvement."""
    _, kwargs, metric, drops = case
    rows = assert_same(lambda L, o: L.ReduceLROnPlateau(o, **kwargs), 8, metrics=metric)
    lrs = lr_column(rows)
    assert [t for t in range(1, 9) if lrs[t] < lrs[t - 1]] == drops


def test_reduce_on_plateau_eps_and_min_lr_as_torch() -> None:
    """eps stops a reduction smaller than itself (1e-7 -> 1e-8, then 9e-9 < eps is skipped); an lr
    already below min_lr is left alone (0.037 with min_lr 0.05)."""
    rows = assert_same(lambda L, o: L.ReduceLROnPlateau(o, patience=0), 3, metrics=lambda t: 1.0, lr=1e-7, lrs=(None,))
    assert lr_column(rows) == [1e-7, 1e-7, 1e-7 * 0.1, 1e-7 * 0.1]  # the first metric is an improvement
    rows = assert_same(lambda L, o: L.ReduceLROnPlateau(o, patience=0, min_lr=0.05), 2, metrics=lambda t: 1.0)
    assert lr_column(rows) == [0.1, 0.1, 0.05] and lr_column(rows, 1) == [0.037] * 3


def test_reduce_on_plateau_with_an_added_entry_as_torch() -> None:
    """add_param_group: with a scalar min_lr the new entry is reduced with the others, as in
    torch. With a list, torch raises a RuntimeError at the first reduction; ours refuses
    add_param_group itself (it has no min_lr for the entry), changing nothing."""
    outcome = {}
    for side, L in LIBS.items():
        o = optimizer(side)
        scheduler = L.ReduceLROnPlateau(o, patience=0, min_lr=0.0)
        _metric_steps(scheduler, o, 1)
        add_entry(side, o, 0.5)
        _metric_steps(scheduler, o, 3)
        outcome[side] = (hexes(group_values(o)), hexes(scheduler.min_lrs), hexes(scheduler.get_last_lr()))
    assert outcome["ours"] == outcome["torch"]
    assert outcome["torch"][0] == hexes([0.1 * 0.1 * 0.1 * 0.1, 0.037 * 0.1 * 0.1 * 0.1, 0.5 * 0.1 * 0.1 * 0.1])
    for side, L in LIBS.items():
        o = optimizer(side)
        scheduler = L.ReduceLROnPlateau(o, patience=0, min_lr=[0.0, 0.0])
        if side == "torch":
            add_entry(side, o, 0.5)
            with pytest.raises(RuntimeError, match="differs from when `ReduceLROnPlateau` was initialized"):
                _metric_steps(scheduler, o, 3)
        else:
            before = (scheduler.state_dict(), len(o.param_groups), list(o.initial_lrs))
            with pytest.raises(ValueError, match="one min_lr per entry"):
                add_entry(side, o, 0.5)
            assert (scheduler.state_dict(), len(o.param_groups), list(o.initial_lrs)) == before


def _metric_steps(scheduler: Any, opt: Any, n: int) -> None:
    for _ in range(n):
        opt.step()
        scheduler.step(1.0)


# Classes whose step() computes every group's lr from the group itself (no per-group list zipped): torch
# schedules a group added later, chained from its own lr, as ours does (numpy_optim.lr_scheduler's docstring).
ADDED_LATER = {
    "StepLR": lambda L, o: L.StepLR(o, 2, gamma=0.9),
    "MultiStepLR": lambda L, o: L.MultiStepLR(o, [2, 5, 5, 7], gamma=0.9),
    "ConstantLR": lambda L, o: L.ConstantLR(o, total_iters=6),
    "LinearLR": lambda L, o: L.LinearLR(o, total_iters=7),
    "ExponentialLR": lambda L, o: L.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda L, o: L.PolynomialLR(o, total_iters=8, power=2.0),
    "CosineAnnealingLR until T_max": lambda L, o: L.CosineAnnealingLR(o, 10, eta_min=1e-3),
    "ChainedScheduler": lambda L, o: L.ChainedScheduler([L.ExponentialLR(o, 0.9), L.StepLR(o, 3, gamma=0.5)]),
}


def _added_later_rows(side: str, make: Any, steps: int, at: int = 3, kind: str = "SGD", keys: tuple[str, ...] = ("lr",),
                      lr: float | None = 0.25, entry_keys: dict[str, Any] | None = None, **options: Any) -> list[Any]:
    """``steps`` steps, ``add_param_group`` before step ``at + 1``; each key's value for every entry and
    get_last_lr() after each step."""
    opt = optimizer(side, kind, **options)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = make(LIBS[side], opt)
        for t in range(steps):
            if t == at:
                add_entry(side, opt, lr, **(entry_keys or {}))
            opt.step()
            scheduler.step()
            rows.append([hexes(group_values(opt, k)) for k in keys] + [hexes(list(scheduler.get_last_lr()))])
    return rows


@pytest.mark.parametrize("name", list(ADDED_LATER))
def test_an_entry_added_later_follows_torchs_recursion(name: str) -> None:
    """add_param_group after 3 steps, then 7 more: every entry's lr equals torch's, bit for bit, the
    new one's included (its lr at the addition, 0.25, then the recursion's factors)."""
    ours = _added_later_rows("ours", ADDED_LATER[name], 10)
    theirs = _added_later_rows("torch", ADDED_LATER[name], 10)
    assert ours == theirs
    assert len(theirs[2][0]) == 2 and len(theirs[3][0]) == 3
    assert any(row[0][2] != hexes(0.25) for row in theirs[3:])  # the new entry is scheduled


def test_cosine_annealing_added_entry_where_torch_zips_its_base_lrs() -> None:
    """At e = T_max + 1 torch's recursion adds ``(base - eta_min)(1 - cos(pi / T)) / 2``, zipping base_lrs
    with the groups (strict): torch raises there for a group added later, ours uses its base lr (its lr at
    the addition), the formula torch applies to the other groups."""
    make = ADDED_LATER["CosineAnnealingLR until T_max"]
    with pytest.raises(ValueError, match="zip"):
        _added_later_rows("torch", make, 11)
    ours = _added_later_rows("ours", make, 11)
    assert ours[:10] == _added_later_rows("torch", make, 10)
    before = float.fromhex(ours[9][0][2])
    assert ours[10][0][2] == hexes(before + (0.25 - 1e-3) * (1 - math.cos(math.pi / 10)) / 2)


def test_onecycle_added_entry_is_torchs_formula_over_its_keys() -> None:
    """torch's OneCycleLR reads each group's initial_lr, max_lr, min_lr and momenta: a group added with them
    is scheduled by its formula. Ours gives an added entry these keys itself (initial_lr its lr, the max_lr
    and momenta given, min_lr = initial_lr / final_div_factor): the lrs and momenta of a torch group added
    with those keys."""
    make = lambda L, o: L.OneCycleLR(o, 0.1, total_steps=12, final_div_factor=100.0)
    keys = {"initial_lr": 0.05, "max_lr": 0.1, "min_lr": 0.05 / 100.0, "max_momentum": 0.95, "base_momentum": 0.85}
    ours = _added_later_rows("ours", make, 12, keys=("lr", "momentum"), lr=0.05, momentum=0.9)
    theirs = _added_later_rows("torch", make, 12, keys=("lr", "momentum"), lr=0.05, entry_keys=keys, momentum=0.9)
    assert ours == theirs
    opt = optimizer("ours", momentum=0.9)
    scheduler = ours_lib.OneCycleLR(opt, 0.1, total_steps=12, final_div_factor=100.0)
    add_entry("ours", opt, 0.05)
    assert {k: opt.param_groups[2][k] for k in keys} == keys and scheduler.base_lrs[2] == 0.05


def test_swalr_added_entry_is_torchs_formula_over_its_swa_lr() -> None:
    """torch's SWALR anneals each group from its lr to its "swa_lr": ours gives an added entry the swa_lr
    given for all, the values of a torch group added with it."""
    swa = {"ours": numpy_optim.swa_utils, "torch": torch.optim.swa_utils}
    rows = {}
    for side in LIBS:
        make = lambda _, o, side=side: swa[side].SWALR(o, 0.05, anneal_epochs=6)
        rows[side] = _added_later_rows(side, make, 9, entry_keys={} if side == "ours" else {"swa_lr": 0.05})
    assert rows["ours"] == rows["torch"]


# §3.14 SequentialLR, (a)-(l)
def test_sequential_constant_schedulers_threestudio_226_as_torch() -> None:
    """(a): [Const(1), Const(0.1), Const(0.5)] at [3, 6]: 0.1 x3, 0.01 x3, then 0.05."""
    rows = assert_same(lambda L, o: L.SequentialLR(o, [L.ConstantLR(o, 1.0), L.ConstantLR(o, 0.1),
                                                       L.ConstantLR(o, 0.5)], [3, 6]), 8)
    assert lr_column(rows)[:7] == [0.1] * 3 + [0.010000000000000002] * 3 + [0.05]


def test_sequential_warmup_then_cosine_as_torch() -> None:
    """(b): LinearLR(0.1, 5) -> CosineAnnealingLR(10) at 5: 13 of the 21 epochs differ from the
    piecewise closed form; ours follows torch's recursion."""
    rows = assert_same(lambda L, o: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=5),
                                                       L.CosineAnnealingLR(o, 10)], [5]), 40)
    closed = [0.1 * (0.1 + 0.9 * e / 5) if e < 5 else 0.1 * (1 + math.cos(math.pi * (e - 5) / 10)) / 2
              for e in range(21)]
    assert sum(a != b for a, b in zip(lr_column(rows)[:21], closed)) == 13


def test_sequential_docstring_example_as_torch() -> None:
    """(c): ConstantLR(0.1, 20) -> ExponentialLR(0.9) at 20: 0.01 up to e=19, then 0.1, 0.09, 0.081."""
    rows = assert_same(lambda L, o: L.SequentialLR(o, [L.ConstantLR(o, 0.1, total_iters=20),
                                                       L.ExponentialLR(o, 0.9)], [20]), 22)
    assert lr_column(rows)[19] == 0.1 * 0.1 and lr_column(rows)[20] == 0.1
    assert [round(x, 12) for x in lr_column(rows)[21:]] == [0.09, 0.081]


SEQUENTIAL_SURPRISES = {
    "(d) double step: MultiplicativeLR applies λ(0) to the previous lr": (
        lambda L, o: L.SequentialLR(o, [L.LinearLR(o, 0.5, total_iters=4), L.MultiplicativeLR(o, lambda e: 0.9)], [4]),
        {3: 0.0875, 4: 0.07875}),
    "(d2) a warm-up cut short jumps to the base": (
        lambda L, o: L.SequentialLR(o, [L.LinearLR(o, 0.5, total_iters=10), L.ExponentialLR(o, 0.9)], [4]),
        {3: 0.065, 4: 0.1}),
    "(e) StepLR second": (
        lambda L, o: L.SequentialLR(o, [L.ConstantLR(o, 0.5), L.StepLR(o, 2)], [3]),
        {3: 0.1, 4: 0.1, 5: 0.1 * 0.1}),
    "(f) CosineAnnealingWarmRestarts second": (
        lambda L, o: L.SequentialLR(o, [L.ConstantLR(o, 0.5), L.CosineAnnealingWarmRestarts(o, 4)], [3]),
        {3: 0.1}),
    "(g) CyclicLR second jumps to its base_lr": (
        lambda L, o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), L.CyclicLR(o, 0.01, 0.1, step_size_up=3)], [3]),
        {3: 0.01}),
    "(h) ChainedScheduler first: a double step": (
        lambda L, o: L.SequentialLR(o, [L.ChainedScheduler([L.ConstantLR(o, 0.5), L.ExponentialLR(o, 0.9)]),
                                        L.StepLR(o, 3)], [4]),
        {0: 0.045}),
    "(j) a nested SequentialLR first switches one epoch early": (
        lambda L, o: L.SequentialLR(o, [L.SequentialLR(o, [L.ConstantLR(o, 0.5), L.ExponentialLR(o, 0.9)], [2]),
                                        L.StepLR(o, 3)], [5]), {}),
    "milestones [0] start with the second scheduler": (
        lambda L, o: L.SequentialLR(o, [L.ConstantLR(o, 0.5), L.ExponentialLR(o, 0.9)], [0]),
        {0: 0.1, 1: 0.09000000000000001}),
    "unsorted and repeated milestones": (
        lambda L, o: L.SequentialLR(o, [L.LinearLR(o), L.ExponentialLR(o, 0.9), L.StepLR(o, 2), L.ConstantLR(o)],
                                    [6, 2, 2]), {}),
    "OneCycleLR second": (
        lambda L, o: L.SequentialLR(o, [L.LinearLR(o), L.OneCycleLR(o, 0.2, total_steps=30)], [4]), {}),
}


@pytest.mark.parametrize("name", list(SEQUENTIAL_SURPRISES))
def test_sequential_surprises_as_torch(name: str) -> None:
    make, expected = SEQUENTIAL_SURPRISES[name]
    rows = assert_same(make, 24, keys=("lr", "momentum"))
    for e, value in expected.items():
        assert math.isclose(lr_column(rows)[e], value, rel_tol=1e-15), (e, lr_column(rows)[e], value)


def test_sequential_chained_later_raises_not_implemented_at_the_milestone_as_torch() -> None:
    """(i): a ChainedScheduler as a later member: at the milestone _update_lr reaches LRScheduler.get_lr."""
    for side, L in LIBS.items():
        o = optimizer(side)
        s = L.SequentialLR(o, [L.ConstantLR(o), L.ChainedScheduler([L.ExponentialLR(o, 0.9)])], [2])
        _steps(s, o, 1)
        with pytest.raises(NotImplementedError):
            _steps(s, o, 1)


def test_sequential_bookkeeping_after_construction_as_torch() -> None:
    """(k): member 0 has last_epoch 0, the others -1; all have _step_count 1; SequentialLR itself
    has no base_lrs and no _step_count. (l): the reset uses initial_lr, not the current lr."""
    seen = {}
    for side, L in LIBS.items():
        o = optimizer(side)
        members = [L.ConstantLR(o, 0.5), L.ExponentialLR(o, 0.9), L.StepLR(o, 2)]
        for g in o.param_groups:
            g["lr"] = 0.7
        s = L.SequentialLR(o, members, [2, 4])
        seen[side] = ([(m.last_epoch, m._step_count) for m in members], hasattr(s, "base_lrs"),
                      hasattr(s, "_step_count"), s.last_epoch, hexes(group_values(o)))
    assert seen["torch"][:4] == ([(0, 1), (-1, 1), (-1, 1)], False, False, 0)
    assert seen["torch"][4] == hexes([0.05, 0.0185])
    assert seen["ours"] == seen["torch"]


CHAINS = {
    "LinearLR(0.5) + ConstantLR(0.5) compound at construction": (
        lambda L, o: L.ChainedScheduler([L.LinearLR(o, 0.5), L.ConstantLR(o, 0.5)]), {0: 0.025}),
    "ConstantLR(0.1, 20) + ExponentialLR(0.9)": (
        lambda L, o: L.ChainedScheduler([L.ConstantLR(o, 0.1, total_iters=20), L.ExponentialLR(o, 0.9)]),
        {19: 0.0013508517176729932, 20: 0.01215766545905694, 21: 0.010941898913151246}),
    "[ExponentialLR, LambdaLR] gives LambdaLR's value": (
        lambda L, o: L.ChainedScheduler([L.ExponentialLR(o, 0.9), L.LambdaLR(o, _exp95)]),
        {e: 0.1 * 0.95**e for e in range(1, 30)}),
    "[LambdaLR, ExponentialLR] gives b*λ(e)*γ": (
        lambda L, o: L.ChainedScheduler([L.LambdaLR(o, _exp95), L.ExponentialLR(o, 0.9)]),
        {e: 0.1 * 0.95**e * 0.9 for e in range(1, 30)}),
    "closed-form members overwrite": (
        lambda L, o: L.ChainedScheduler([L.StepLR(o, 3), L.CyclicLR(o, 0.01, 0.1, step_size_up=4),
                                         L.ExponentialLR(o, 0.99)], optimizer=o), {}),
    "OneCycleLR and CosineAnnealingWarmRestarts": (
        lambda L, o: L.ChainedScheduler([L.OneCycleLR(o, 0.1, total_steps=40), L.CosineAnnealingWarmRestarts(o, 5),
                                         L.MultiplicativeLR(o, lambda e: 0.99)]), {}),
}


@pytest.mark.parametrize("name", list(CHAINS))
def test_chained_scheduler_as_torch(name: str) -> None:
    """§3.15: members step in list order, each recursive one multiplying the current lr."""
    make, expected = CHAINS[name]
    rows = assert_same(make, 30, keys=("lr", "momentum"))
    for e, value in expected.items():
        assert lr_column(rows)[e] == value, (e, lr_column(rows)[e], value)


def test_chained_scheduler_order_changes_last_bits_as_torch() -> None:
    """Exp(0.9) + Mult(0.97) against the reverse order: 370 of 402 values differ (200 steps)."""
    a = assert_same(lambda L, o: L.ChainedScheduler([L.ExponentialLR(o, 0.9), L.MultiplicativeLR(o, lambda e: 0.97)]),
                    200)
    b = assert_same(lambda L, o: L.ChainedScheduler([L.MultiplicativeLR(o, lambda e: 0.97), L.ExponentialLR(o, 0.9)]),
                    200)
    assert sum(x != y for ra, rb in zip(a, b) for x, y in zip(ra[0], rb[0])) == 370


# --------------------------------------------------------------------------------------
# 6. The step each entry then takes uses exactly that lr and momentum
# --------------------------------------------------------------------------------------


def _trajectory(side: str, kind: str, make: Any, steps: int, dtype: Any, **hyper: Any) -> list[list[bytes]]:
    """Parameters (bytes) after every step of ``kind`` under ``make``'s schedule, with fresh seeded
    gradients each step, two entries (one with its own lr)."""
    opt = optimizer(side, kind, dtype=dtype, **hyper)
    scheduler = make(LIBS[side], opt)
    rng = np.random.default_rng(1)
    out = []
    for _ in range(steps):
        grads = [rng.standard_normal(3).astype(dtype) for _ in opt.param_groups]
        for group, g in zip(opt.param_groups, grads):
            if side == "ours":
                group["grad"][...] = g
            else:
                group["params"][0].grad = torch.from_numpy(g.copy())
        opt.step()
        scheduler.step()
        params = [g["params"] if side == "ours" else g["params"][0].detach().numpy() for g in opt.param_groups]
        assert all(p.dtype == dtype for p in params)
        out.append([p.tobytes() for p in params])
    return out


TRAJECTORIES = [
    ("SGD momentum, CyclicLR", "SGD", lambda L, o: L.CyclicLR(o, [0.01, 0.02], 0.1, step_size_up=5, mode="triangular2",
                                                                 base_momentum=0.7, max_momentum=0.95), 60,
     np.float32, {"momentum": 0.9}),
    ("SGD nesterov, CyclicLR exp_range", "SGD", lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=4, mode="exp_range",
                                                                        gamma=0.99), 60, np.float32,
     {"momentum": 0.9, "nesterov": True}),
    ("SGD momentum, OneCycleLR", "SGD", lambda L, o: L.OneCycleLR(o, [0.1, 0.05], total_steps=60), 60, np.float32,
     {"momentum": 0.9, "weight_decay": 1e-2}),
    ("SGD momentum, OneCycleLR three-phase linear", "SGD",  # SGD is bitwise with torch in float32 only
     lambda L, o: L.OneCycleLR(o, 0.1, total_steps=50, three_phase=True, anneal_strategy="linear"), 50, np.float32,
     {"momentum": 0.9}),
    ("Adamax betas cycling, OneCycleLR", "Adamax", lambda L, o: L.OneCycleLR(o, 0.05, total_steps=60), 60, np.float64,
     {}),
    ("Adamax betas cycling, OneCycleLR, float32", "Adamax",
     lambda L, o: L.OneCycleLR(o, [0.05, 0.02], total_steps=60, three_phase=True, base_momentum=0.8), 60, np.float32,
     {}),
]


@pytest.mark.parametrize("case", TRAJECTORIES, ids=[c[0] for c in TRAJECTORIES])
def test_parameters_follow_torchs_under_the_schedule_bitwise(case: tuple) -> None:
    _, kind, make, steps, dtype, hyper = case
    ours = _trajectory("ours", kind, make, steps, dtype, **hyper)
    theirs = _trajectory("torch", kind, make, steps, dtype, **hyper)
    for t, (a, b) in enumerate(zip(ours, theirs), start=1):
        assert a == b, f"parameters differ after step {t}"
    assert ours[0] != ours[-1]
