r"""Bitwise parity of ``numpy_optim.lr_scheduler`` with ``torch.optim.lr_scheduler``.

A *case* is a JSON-describable dict: an optimizer (SGD with momentum, RMSprop, Adam, Adamax or
NAdam, the same class on both sides) with 1-3 entries (= torch parameter groups holding one
tensor each; some with their own lr, some without), a scheduler (a class name and
Hypothesis-drawn torch-valid arguments; lambdas and scale functions by their name in a fixed
menu), a number of steps, and optionally explicit ``step(epoch)`` arguments, the metrics of
ReduceLROnPlateau and a resume point. Both sides run the case: each step calls
``optimizer.step()`` then ``scheduler.step()``, and after construction and after every step
every observed value must equal torch's to the last bit (``float.hex``):

* each entry's effective lr, momentum or betas (where the optimizer has them) and the scheduler
  keys torch keeps in the group (``initial_lr``, ``max_lr``, ``min_lr``, ``base_momentum``,
  ``max_momentum``);
* every scheduler's ``get_last_lr()`` and ``last_epoch`` (each sub-scheduler of SequentialLR and
  ChainedScheduler too), CosineAnnealingWarmRestarts' ``T_cur`` / ``T_i``, ReduceLROnPlateau's
  ``best`` / ``num_bad_epochs`` / ``cooldown_counter``;
* the warnings the step emitted (category and text).

An int and a float of equal value count as different (torch's ``T_cur`` is an int until a
float epoch makes it a float; ours must follow). Where ours raises, torch must raise the same
exception with the same message at the same step (CyclicLR's triangular2 overflows after 1024
cycles; OneCycleLR past ``total_steps``); the case ends there.

torch's own schedules can make an lr slightly negative (LinearLR ending at 0 reaches -4.7e-18;
OneCycleLR's linear extrapolation at ``total_steps``; a cosine below a member's eta_min in a
chain); torch's optimizers step with it, and so must ours (and load it from a state dict).

Resume: at a drawn step our ``scheduler.state_dict()`` and ``optimizer.state_dict()`` are taken
(they must be plain values: no callables, no objects), a fresh optimizer and scheduler are built
and both are loaded, and the run continues:

* ``order "docs"``: build the scheduler, load the optimizer's state, then the scheduler's (what
  torch's docs prescribe). torch runs uninterrupted: the continuation must equal it.
* ``order "late"``: load the optimizer's state *before* building the scheduler, then load the
  scheduler's. torch's ConstantLR / LinearLR (and every class whose construction step changes lr)
  then apply their construction factor again; torch resumes the same way, and ours must do what
  torch does.

Entry points: :data:`PAIRS` (name -> a function returning the Hypothesis strategy of its
cases), :func:`check` (the property, with statistics), :func:`run_case` and :func:`replay`
(one case from its JSON, checked first by :func:`parse_case`: names from this module's
tables only, no unknown key, bounded counts).
"""

from __future__ import annotations

import importlib
import json
import math
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

import numpy_optim

from .harness import (
    MAX_COUNT,
    MAX_ITEMS,
    MAX_SEED,
    MAX_STEPS,
    ParityError,
    SideStats,
    Stats,
    check_bool,
    check_int,
    check_keys,
    check_list,
    check_name,
    check_number,
    load_json,
)
from .profiles import for_trajectories, seeded

# --------------------------------------------------------------------------------------
# Menus: the callables a case names (the same objects run on both sides)
# --------------------------------------------------------------------------------------


class Power:
    """A callable object ``e -> gamma ** e``: torch saves its ``__dict__`` in state dicts."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def __call__(self, e: float) -> float:
        return self.gamma**e


def _exp95(e: float) -> float:
    return 0.95**e


def _inverse(e: float) -> float:
    return 1 / (e + 1)


def _half(e: float) -> float:
    return 0.5


def _warmup5(e: float) -> float:
    return min(1.0, (e + 1) / 5)


def _cosine10(e: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * e / 10))


def _one(e: float) -> float:
    return 1.0


def _every3(e: float) -> float:
    return 0.9 if e % 3 == 0 else 1.0


def _halving(x: float) -> float:
    return 1 / (2.0 ** (x - 1))


def _decay99(x: float) -> float:
    return 0.99**x


#: LambdaLR's lr_lambda menu: factor on the base lr at epoch e.
LAMBDAS: dict[str, Callable[[float], float]] = {
    "0.95**e": _exp95, "1/(e+1)": _inverse, "0.5": _half, "min(1,(e+1)/5)": _warmup5,
    "cos(pi*e/10)": _cosine10, "Power(0.9)": Power(0.9),
}
#: MultiplicativeLR's lr_lambda menu: factor on the current lr at epoch e.
MULTIPLIERS: dict[str, Callable[[float], float]] = {
    "0.95": lambda e: 0.95, "0.5": _half, "1.0": _one, "0.9 every 3rd": _every3,
    "Power(0.999)": Power(0.999), "1/(e+1)": _inverse,
}
#: CyclicLR's scale_fn menu (its argument is the cycle or the iteration).
SCALE_FNS: dict[str, Callable[[float], float]] = {
    "1/2**(x-1)": _halving, "0.99**x": _decay99, "1.0": _one, "Power(0.9999)": Power(0.9999),
}

#: name -> (numpy_optim class, torch class, the hyperparameter cycled: "momentum" or "betas")
OPTIMIZERS: dict[str, tuple[type, type, str]] = {
    "SGD": (numpy_optim.SGD, torch.optim.SGD, "momentum"),
    "RMSprop": (numpy_optim.RMSprop, torch.optim.RMSprop, "momentum"),
    "Adam": (numpy_optim.Adam, torch.optim.Adam, "betas"),
    "Adamax": (numpy_optim.Adamax, torch.optim.Adamax, "betas"),
    "NAdam": (numpy_optim.NAdam, torch.optim.NAdam, "betas"),
}

#: The classes built from a name and kwargs (everything but the two compositions).
SIMPLE = ("LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
          "PolynomialLR", "CosineAnnealingLR", "CyclicLR", "OneCycleLR", "CosineAnnealingWarmRestarts")
#: Classes whose ``step(epoch)`` is the deprecated closed-form path (they warn), plus the classes
#: whose ``step(epoch)`` is ``get_lr()`` at that epoch (LambdaLR, MultiplicativeLR, CyclicLR, OneCycleLR).
EPOCH_STEPPED = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
                 "CosineAnnealingLR", "LambdaLR", "MultiplicativeLR", "CyclicLR", "OneCycleLR")
#: The scheduler keys torch keeps in a parameter group.
GROUP_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum")

# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------

lrs = st.one_of(st.sampled_from([0.1, 0.037, 0.01, 1.0, 1e-3]), st.floats(1e-4, 1.0))
momenta = st.one_of(st.sampled_from([0.9, 0.8, 0.85, 0.95]), st.floats(0.5, 0.98))
gammas = st.one_of(st.sampled_from([0.1, 0.5, 0.9, 0.95, 0.99, 1.0]), st.floats(0.01, 1.0))


def step_counts(long: bool = True) -> st.SearchStrategy[int]:
    """Mostly short runs, some a few hundred steps, and (``long``) some thousands: last-bit
    drift of the recursive schedulers grows with the number of steps."""
    counts = [st.integers(1, 30), st.integers(31, 300)]
    if long:
        counts.append(st.integers(1000, 3000))
    return st.one_of(*counts)


def _per_entry(draw: st.DrawFn, values: st.SearchStrategy[Any], n: int, label: str) -> Any:
    """One value for every entry, or (torch's ``_format_param`` list form) a list of n."""
    if draw(st.booleans(), label=f"{label} per entry"):
        return [draw(values, label=f"{label}[{i}]") for i in range(n)]
    return draw(values, label=label)


@st.composite
def optimizer_setups(draw: st.DrawFn) -> dict[str, Any]:
    """An optimizer class, its hyperparameters and 1-3 entries' overrides (lr, momentum/betas)."""
    name = draw(st.sampled_from(sorted(OPTIMIZERS)), label="optimizer")
    kind = OPTIMIZERS[name][2]
    hyper: dict[str, Any] = {"lr": draw(lrs, label="lr")}
    betas = st.tuples(momenta, st.one_of(st.sampled_from([0.999, 0.99]), st.floats(0.9, 0.999))).map(list)
    if name == "SGD":
        hyper["momentum"] = draw(st.one_of(st.just(0.0), momenta), label="momentum")
    elif name == "RMSprop":
        hyper["momentum"] = draw(momenta, label="momentum")  # > 0: torch's RMSprop makes its buffer at step 1 only
    else:
        hyper["betas"] = draw(betas, label="betas")
    entries = []
    for i in range(draw(st.integers(1, 3), label="entries")):
        overrides: dict[str, Any] = {}
        if draw(st.booleans(), label=f"entry {i} has its own lr"):
            overrides["lr"] = draw(lrs, label=f"entry {i} lr")
        if draw(st.integers(0, 3), label=f"entry {i} has its own {kind}") == 0:
            overrides[kind] = draw(betas if kind == "betas" else momenta, label=f"entry {i} {kind}")
        entries.append(overrides)
    return {"optimizer": name, "hyperparameters": hyper, "entries": entries}


def _onecycle_degenerate(total: int, pct: float, three_phase: bool) -> bool:
    """Whether two of OneCycleLR's phase boundaries coincide: torch divides by a zero-width
    phase there (``ZeroDivisionError``); ours refuses such arguments."""
    ends = [float(pct * total) - 1] + ([float(2 * pct * total) - 2] if three_phase else []) + [total - 1]
    bounds = [0.0, *ends]
    return any(a == b for a, b in zip(bounds, bounds[1:]))


@st.composite
def scheduler_specs(draw: st.DrawFn, name: str, n: int, horizon: int) -> dict[str, Any]:
    """``{"class": name, "kwargs": {...}}`` with torch-valid arguments for ``n`` entries; the
    scheduler is stepped at most ``horizon`` times (OneCycleLR's total is at least that)."""
    kw: dict[str, Any] = {}
    period = st.one_of(st.integers(1, 12), st.integers(1, max(1, horizon)))
    if name in ("LambdaLR", "MultiplicativeLR"):
        menu = sorted(LAMBDAS if name == "LambdaLR" else MULTIPLIERS)
        kw["lr_lambda"] = _per_entry(draw, st.sampled_from(menu), n, "lr_lambda")
    elif name == "StepLR":
        kw["step_size"] = draw(period, label="step_size")
        kw["gamma"] = draw(gammas, label="gamma")
    elif name == "MultiStepLR":
        kw["milestones"] = draw(st.lists(st.integers(0, horizon + 1), max_size=6), label="milestones")
        kw["gamma"] = draw(gammas, label="gamma")
    elif name == "ConstantLR":
        kw["factor"] = draw(st.one_of(st.sampled_from([1 / 3, 0.5, 0.1, 1.0]), st.floats(0.01, 1.0)), label="factor")
        kw["total_iters"] = draw(period, label="total_iters")
    elif name == "LinearLR":
        kw["start_factor"] = draw(st.one_of(st.sampled_from([1 / 3, 0.1, 1e-3, 1.0]), st.floats(1e-3, 1.0)),
                                  label="start_factor")
        kw["end_factor"] = draw(st.one_of(st.sampled_from([1.0, 0.0, 0.1, 0.5]), st.floats(0.0, 1.0)),
                                label="end_factor")
        kw["total_iters"] = draw(period, label="total_iters")
    elif name == "ExponentialLR":
        kw["gamma"] = draw(st.one_of(st.sampled_from([0.9, 0.95, 0.99, 0.5, 1.0]), st.floats(0.5, 1.0)),
                           label="gamma")
    elif name == "PolynomialLR":
        kw["total_iters"] = draw(period, label="total_iters")
        kw["power"] = draw(st.one_of(st.sampled_from([1.0, 2.0, 0.5, 3.0]), st.floats(0.1, 4.0)), label="power")
    elif name == "CosineAnnealingLR":
        kw["T_max"] = draw(period, label="T_max")
        kw["eta_min"] = draw(st.one_of(st.sampled_from([0.0, 1e-3, 1e-5]), st.floats(0.0, 0.05)), label="eta_min")
    elif name == "CyclicLR":
        kw["base_lr"] = _per_entry(draw, lrs.map(lambda x: x / 10), n, "base_lr")
        kw["max_lr"] = _per_entry(draw, lrs, n, "max_lr")
        kw["step_size_up"] = draw(st.one_of(st.integers(1, 20), st.integers(1, 2000)), label="step_size_up")
        kw["step_size_down"] = draw(st.one_of(st.none(), st.integers(1, 30)), label="step_size_down")
        kw["mode"] = draw(st.sampled_from(["triangular", "triangular2", "exp_range"]), label="mode")
        kw["gamma"] = draw(st.one_of(st.sampled_from([1.0, 0.99, 0.9999]), st.floats(0.9, 1.0)), label="gamma")
        kw["scale_fn"] = draw(st.one_of(st.none(), st.sampled_from(sorted(SCALE_FNS))), label="scale_fn")
        kw["scale_mode"] = draw(st.sampled_from(["cycle", "iterations"]), label="scale_mode")
        kw["cycle_momentum"] = draw(st.booleans(), label="cycle_momentum")
        kw["base_momentum"] = _per_entry(draw, momenta, n, "base_momentum")
        kw["max_momentum"] = _per_entry(draw, momenta, n, "max_momentum")
    elif name == "OneCycleLR":
        kw["max_lr"] = _per_entry(draw, lrs, n, "max_lr")
        total = draw(st.integers(max(1, horizon), max(1, horizon) + 20), label="total steps")
        if draw(st.booleans(), label="epochs x steps_per_epoch"):
            divisors = [d for d in range(1, total + 1) if total % d == 0]
            kw["epochs"] = draw(st.sampled_from(divisors), label="epochs")
            kw["steps_per_epoch"] = total // kw["epochs"]
        else:
            kw["total_steps"] = total
        kw["three_phase"] = draw(st.booleans(), label="three_phase")
        pct = st.one_of(st.sampled_from([0.3, 0.25, 0.5, 0.1, 0.4, 0.0]), st.floats(0.0, 1.0))
        kw["pct_start"] = draw(pct.filter(lambda p: not _onecycle_degenerate(total, p, kw["three_phase"])),
                               label="pct_start")
        kw["anneal_strategy"] = draw(st.sampled_from(["cos", "linear"]), label="anneal_strategy")
        kw["cycle_momentum"] = draw(st.booleans(), label="cycle_momentum")
        kw["base_momentum"] = _per_entry(draw, momenta, n, "base_momentum")
        kw["max_momentum"] = _per_entry(draw, momenta, n, "max_momentum")
        kw["div_factor"] = draw(st.one_of(st.sampled_from([25.0, 10.0, 1.0]), st.floats(1.0, 1000.0)),
                                label="div_factor")
        kw["final_div_factor"] = draw(st.one_of(st.sampled_from([1e4, 100.0, 1.0]), st.floats(1.0, 1e5)),
                                      label="final_div_factor")
    elif name == "CosineAnnealingWarmRestarts":
        kw["T_0"] = draw(st.one_of(st.integers(1, 12), st.integers(1, 200)), label="T_0")
        kw["T_mult"] = draw(st.integers(1, 3), label="T_mult")
        kw["eta_min"] = draw(st.one_of(st.sampled_from([0.0, 1e-3]), st.floats(0.0, 0.05)), label="eta_min")
    else:
        raise ValueError(f"no kwargs strategy for {name!r}")
    return {"class": name, "kwargs": kw}


@st.composite
def epoch_calls(draw: st.DrawFn, name: str, steps: int, kwargs: dict[str, Any]) -> list[list[Any]]:
    """Sparse ``[[step, epoch], ...]``: at these steps ``scheduler.step(epoch)`` is called instead
    of ``scheduler.step()`` (ints; CosineAnnealingWarmRestarts also floats)."""
    wanted = draw(st.integers(0, 2), label="epochs?") > 0  # in two cases of three
    if not wanted or name not in (*EPOCH_STEPPED, "CosineAnnealingWarmRestarts"):
        return []
    epochs: st.SearchStrategy[Any] = st.integers(0, 2 * steps + 5)
    if name == "CosineAnnealingWarmRestarts":
        epochs = st.one_of(epochs, st.floats(0.0, 2 * steps + 5.0), st.integers(0, 20).map(lambda k: k / 4))
    where = draw(st.lists(st.integers(1, steps), max_size=min(steps, 8), unique=True), label="epoch steps")
    return [[t, draw(epochs, label=f"epoch at step {t}")] for t in sorted(where)]


@st.composite
def metric_sequences(draw: st.DrawFn, steps: int) -> list[float]:
    """ReduceLROnPlateau metrics: a repeated pattern (plateaus), a decay that flattens, or raw
    draws; with NaN, infinities, negative values and near-ties."""
    special = st.sampled_from([1.0, 0.5, 0.9999, 1.0001, -1.0, -0.99995, math.nan, math.inf, -math.inf, 0.0])
    value = st.one_of(special, st.floats(-2.0, 2.0))
    kind = draw(st.sampled_from(["pattern", "decay", "raw"]), label="metrics kind")
    if kind == "pattern":
        pattern = draw(st.lists(value, min_size=1, max_size=8), label="pattern")
        return [pattern[t % len(pattern)] for t in range(steps)]
    if kind == "decay":
        start, ratio = draw(st.floats(0.1, 10.0), label="start"), draw(st.floats(0.5, 1.0), label="ratio")
        floor = draw(st.floats(0.0, 1.0), label="floor")
        return [max(start * ratio**t, floor) for t in range(steps)]
    return draw(st.lists(value, min_size=steps, max_size=steps), label="metrics")


@st.composite
def plateau_specs(draw: st.DrawFn, n: int) -> dict[str, Any]:
    kw = {
        "mode": draw(st.sampled_from(["min", "max"]), label="mode"),
        "factor": draw(st.one_of(st.sampled_from([0.1, 0.5, 0.0]), st.floats(0.0, 0.99)), label="factor"),
        "patience": draw(st.integers(0, 5), label="patience"),
        "threshold": draw(st.one_of(st.sampled_from([1e-4, 0.0, 0.01]), st.floats(0.0, 0.1)), label="threshold"),
        "threshold_mode": draw(st.sampled_from(["rel", "abs"]), label="threshold_mode"),
        "cooldown": draw(st.integers(0, 3), label="cooldown"),
        "min_lr": _per_entry(draw, st.one_of(st.sampled_from([0, 0.0, 1e-4, 0.05]), st.floats(0.0, 1e-3)), n,
                             "min_lr"),
        "eps": draw(st.sampled_from([1e-8, 0.0, 1e-3]), label="eps"),
    }
    return {"class": "ReduceLROnPlateau", "kwargs": kw}


def _leaf_kinds() -> st.SearchStrategy[str]:
    return st.sampled_from(SIMPLE)


@st.composite
def sequential_specs(draw: st.DrawFn, n: int, horizon: int, depth: int = 0) -> dict[str, Any]:
    """SequentialLR: 2-3 sub-schedulers (recursive and closed-form), milestones with 0 and
    duplicates, sometimes unsorted; rarely a nested SequentialLR or ChainedScheduler first."""
    count = draw(st.integers(2, 3), label="sub-schedulers")
    subs = []
    for i in range(count):
        if i == 0 and depth == 0 and draw(st.integers(0, 7), label="nested first") == 0:
            nested = draw(st.sampled_from(["SequentialLR", "ChainedScheduler"]), label="nested kind")
            subs.append(draw(sequential_specs(n, horizon, 1) if nested == "SequentialLR"
                             else chained_specs(n, horizon, 1), label="nested"))
        else:
            subs.append(draw(scheduler_specs(draw(_leaf_kinds(), label=f"sub {i}"), n, horizon), label=f"sub {i}"))
    milestones = sorted(draw(st.lists(st.integers(0, horizon), min_size=count - 1, max_size=count - 1),
                             label="milestones"))
    if draw(st.integers(0, 9), label="unsorted milestones") == 0:
        milestones.reverse()
    return {"class": "SequentialLR", "schedulers": subs, "milestones": milestones}


@st.composite
def chained_specs(draw: st.DrawFn, n: int, horizon: int, depth: int = 0) -> dict[str, Any]:
    """ChainedScheduler: 2-3 sub-schedulers in drawn order; ``optimizer=`` given or not."""
    count = draw(st.integers(2, 3), label="sub-schedulers")
    subs = [draw(scheduler_specs(draw(_leaf_kinds(), label=f"sub {i}"), n, horizon), label=f"sub {i}")
            for i in range(count)]
    return {"class": "ChainedScheduler", "schedulers": subs, "pass_optimizer": draw(st.booleans(), label="optimizer=")}


@st.composite
def two_scheduler_specs(draw: st.DrawFn, n: int, steps: int) -> dict[str, Any]:
    """Two schedulers on one optimizer: the first (usually a LinearLR warmup) built with the
    optimizer, the second after ``second_at`` steps (it finds ``initial_lr`` already set); then
    both step (first, then second) or only the second."""
    first_kind = draw(st.one_of(st.just("LinearLR"), _leaf_kinds()), label="first")
    second_kind = draw(_leaf_kinds(), label="second")
    return {
        "class": "TwoSchedulers",
        "first": draw(scheduler_specs(first_kind, n, steps), label="first spec"),
        "second": draw(scheduler_specs(second_kind, n, steps), label="second spec"),
        "second_at": draw(st.integers(0, steps - 1), label="second built after step"),
        "stepping": draw(st.sampled_from(["both", "second"]), label="stepping"),
    }


def _cheap_long(name: str) -> bool:
    return name not in ("SequentialLR", "ChainedScheduler", "TwoSchedulers", "ReduceLROnPlateau")


def case_strategy(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """The Hypothesis strategy of ``name``'s cases (a class name, or SequentialLR,
    ChainedScheduler, TwoSchedulers)."""

    @st.composite
    def cases(draw: st.DrawFn) -> dict[str, Any]:
        case = draw(optimizer_setups(), label="optimizer setup")
        n = len(case["entries"])
        steps = draw(step_counts(long=_cheap_long(name)), label="steps")
        if name == "SequentialLR":
            spec = draw(sequential_specs(n, steps), label="scheduler")
        elif name == "ChainedScheduler":
            spec = draw(chained_specs(n, steps), label="scheduler")
        elif name == "TwoSchedulers":
            spec = draw(two_scheduler_specs(n, steps), label="scheduler")
        elif name == "ReduceLROnPlateau":
            spec = draw(plateau_specs(n), label="scheduler")
            case["metrics"] = draw(metric_sequences(steps), label="metrics")
        else:
            spec = draw(scheduler_specs(name, n, steps), label="scheduler")
        case["scheduler"] = spec
        case["steps"] = steps
        if name == "ReduceLROnPlateau":
            case["epochs"] = [[t, t + 100] for t in draw(st.lists(st.integers(1, steps), max_size=3, unique=True),
                                                          label="epoch steps")]
        elif spec["class"] in SIMPLE:
            case["epochs"] = draw(epoch_calls(spec["class"], steps, spec["kwargs"]), label="epochs")
        if spec["class"] == "OneCycleLR":  # step(epoch) past total_steps raises in torch
            total = spec["kwargs"].get("total_steps") or spec["kwargs"]["epochs"] * spec["kwargs"]["steps_per_epoch"]
            case["epochs"] = [[t, min(e, total)] for t, e in case.get("epochs", [])]
        if draw(st.integers(0, 2), label="resume?") == 0:
            case["resume"] = {"at": draw(st.integers(0, steps - 1), label="resume at"),
                              "order": draw(st.sampled_from(["docs", "late"]), label="resume order")}
        case["seed"] = draw(st.integers(0, 2**32 - 1), label="seed")
        return case

    return cases()


#: name -> function returning the Hypothesis strategy of that pair's cases.
PAIRS: dict[str, Callable[[], st.SearchStrategy[dict[str, Any]]]] = {
    name: (lambda name=name: case_strategy(name))
    for name in (*SIMPLE, "ReduceLROnPlateau", "SequentialLR", "ChainedScheduler", "TwoSchedulers")
}

# --------------------------------------------------------------------------------------
# Running one side
# --------------------------------------------------------------------------------------


def _callables(spec: dict[str, Any]) -> dict[str, Any]:
    """A simple spec's kwargs with menu names replaced by the menu's callables."""
    kw = dict(spec["kwargs"])
    if spec["class"] in ("LambdaLR", "MultiplicativeLR"):
        menu = LAMBDAS if spec["class"] == "LambdaLR" else MULTIPLIERS
        f = kw["lr_lambda"]
        kw["lr_lambda"] = [menu[x] for x in f] if isinstance(f, list) else menu[f]
    if kw.get("scale_fn") is not None:
        kw["scale_fn"] = SCALE_FNS[kw["scale_fn"]]
    return kw


def _plain(value: Any, where: str = "state_dict") -> None:
    """Raise ParityError unless ``value`` is built of dict/list/tuple/str/int/float/bool/None."""
    if value is None or type(value) in (bool, int, float, str):
        return
    if type(value) is dict:
        for k, v in value.items():
            _plain(k, f"{where} key")
            _plain(v, f"{where}[{k!r}]")
        return
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            _plain(v, f"{where}[{i}]")
        return
    if type(value) is np.ndarray and where.startswith("optimizer"):  # the optimizer's buffers
        return
    raise ParityError(f"{where} is not a plain value: {type(value).__name__} {value!r:.80}")


class Side:
    """One side of a case: ``lib`` "numpy" (numpy_optim) or "torch"."""

    def __init__(self, case: dict[str, Any], lib: str) -> None:
        self.case, self.lib = case, lib
        self.L = importlib.import_module("numpy_optim.lr_scheduler") if lib == "numpy" else torch.optim.lr_scheduler
        self.kind = OPTIMIZERS[case["optimizer"]][2]
        rng = np.random.default_rng(case["seed"])
        n = len(case["entries"])
        self.grads = [rng.standard_normal(3) for _ in range(n)]
        self.params = [rng.standard_normal(3) for _ in range(n)]
        self.epochs = {t: e for t, e in case.get("epochs", [])}
        self._new_optimizer(self.params)
        self.roots: list[Any] = []  # the schedulers built on the optimizer (not as sub-schedulers)
        self.top: list[Any] = []  # the ones the loop steps
        self.all: list[tuple[str, Any]] = []  # every scheduler built, with its label, for observation
        self.warnings: list[str] = []
        spec = case["scheduler"]
        with self._recording():
            two = spec["class"] == "TwoSchedulers"
            self.roots = [self._build(spec["first"], "first") if two else self._build(spec, "scheduler")]
        self.top = list(self.roots)

    # ----- construction ---------------------------------------------------------------

    def _new_optimizer(self, params: list[np.ndarray]) -> None:
        ours, theirs, _ = OPTIMIZERS[self.case["optimizer"]]
        hyper = {k: tuple(v) if k == "betas" else v for k, v in self.case["hyperparameters"].items()}
        overrides = [{k: tuple(v) if k == "betas" else v for k, v in e.items()} for e in self.case["entries"]]
        if self.lib == "numpy":
            entries = [{"params": p.copy(), "grad": g.copy(), **o} for p, g, o in zip(params, self.grads, overrides)]
            self.optimizer = ours(entries, **hyper)
        else:
            tensors = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
            for t, g in zip(tensors, self.grads):
                t.grad = torch.tensor(g, dtype=torch.float64)
            self.optimizer = theirs([{"params": [t], **o} for t, o in zip(tensors, overrides)], **hyper)

    def current_params(self) -> list[np.ndarray]:
        if self.lib == "numpy":
            return [e["params"].copy() for e in self.optimizer.param_groups]
        return [g["params"][0].detach().numpy().copy() for g in self.optimizer.param_groups]

    def _build(self, spec: dict[str, Any], label: str) -> Any:
        cls = spec["class"]
        if cls == "SequentialLR":
            subs = [self._build(s, f"{label}.{i}") for i, s in enumerate(spec["schedulers"])]
            scheduler = self.L.SequentialLR(self.optimizer, subs, milestones=list(spec["milestones"]))
        elif cls == "ChainedScheduler":
            subs = [self._build(s, f"{label}.{i}") for i, s in enumerate(spec["schedulers"])]
            scheduler = self.L.ChainedScheduler(subs, optimizer=self.optimizer if spec["pass_optimizer"] else None)
        else:
            kwargs = _callables(spec)
            scheduler = getattr(self.L, cls)(self.optimizer, **kwargs)
        self.all.append((label, scheduler))
        return scheduler

    # ----- running ----------------------------------------------------------------------

    def _recording(self) -> Any:
        """Record the warnings emitted inside the block (category and text) into ``self.warnings``."""
        return _Recorder(self.warnings)

    def step(self, t: int) -> None:
        """Step ``t`` (1-based): the optimizer, then the scheduler(s)."""
        spec = self.case["scheduler"]
        with self._recording():
            if spec["class"] == "TwoSchedulers" and t - 1 == spec["second_at"]:
                self.roots.append(self._build(spec["second"], "second"))
                self.top = self.roots[1:] if spec["stepping"] == "second" else list(self.roots)
            self.optimizer.step()
            for scheduler in self.top:
                args: list[Any] = []
                if spec["class"] == "ReduceLROnPlateau":
                    args.append(self.case["metrics"][t - 1])
                if t in self.epochs:
                    args.append(self.epochs[t])
                scheduler.step(*args)

    def resume(self, order: str) -> None:
        """Replace optimizer and scheduler(s) by fresh ones loaded from their state dicts."""
        spec = self.case["scheduler"]
        optimizer_state = self.optimizer.state_dict()
        scheduler_states = [s.state_dict() for s in self.roots]
        if self.lib == "numpy":
            _plain(optimizer_state, "optimizer state_dict")
            for s in scheduler_states:
                _plain(s, f"{spec['class']} state_dict")
        optimizer_state, scheduler_states = pickle.loads(pickle.dumps((optimizer_state, scheduler_states)))
        params = self.current_params()
        two = spec["class"] == "TwoSchedulers"
        specs = [spec["first"], spec["second"]][:len(self.roots)] if two else [spec]
        labels = ("first", "second") if two else ("scheduler",)
        self.all = []
        with self._recording():
            self._new_optimizer(params)
            if order == "late":
                self.optimizer.load_state_dict(optimizer_state)
            self.roots = [self._build(s, label) for s, label in zip(specs, labels)]
            if order == "docs":
                self.optimizer.load_state_dict(optimizer_state)
            for scheduler, state in zip(self.roots, scheduler_states):
                scheduler.load_state_dict(state)
        self.top = self.roots[1:] if two and len(self.roots) == 2 and spec["stepping"] == "second" else list(self.roots)

    # ----- observing --------------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        """Every value compared with the other side, by label."""
        seen: dict[str, Any] = {}
        defaults = self.optimizer.defaults
        for i, group in enumerate(self.optimizer.param_groups):
            seen[f"entries[{i}]['lr']"] = group.get("lr", defaults["lr"])
            if self.kind == "betas":
                betas = group.get("betas", defaults["betas"])
                seen[f"entries[{i}]['betas'][0]"], seen[f"entries[{i}]['betas'][1]"] = betas[0], betas[1]
            else:
                seen[f"entries[{i}]['momentum']"] = group.get("momentum", defaults["momentum"])
            for key in GROUP_KEYS:
                if key in group:
                    seen[f"entries[{i}][{key!r}]"] = group[key]
        for label, scheduler in self.all:
            seen[f"{label}.get_last_lr()"] = list(scheduler.get_last_lr())
            for attribute in ("last_epoch", "T_cur", "T_i", "best", "num_bad_epochs", "cooldown_counter"):
                if hasattr(scheduler, attribute):
                    seen[f"{label}.{attribute}"] = getattr(scheduler, attribute)
        seen["warnings"] = self.warnings
        self.warnings = []
        return seen


# --------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------


class _Recorder(warnings.catch_warnings):
    """``catch_warnings(record=True)`` with every warning shown, appended to ``log`` on exit."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(record=True)
        self.into = log

    def __enter__(self) -> Any:
        self.caught = super().__enter__()
        warnings.simplefilter("always")
        return self.caught

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self.into.extend(f"{w.category.__name__}: {w.message}" for w in self.caught)


def _bits(value: Any) -> Any:
    """A value's exact identity: ``float.hex`` for floats (an int and a float differ)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float):
        return ("float", float.hex(float(value)))
    if isinstance(value, int):
        return ("int", int(value))
    return ("other", repr(value))


def _show(value: Any) -> str:
    return f"{value!r} ({float.hex(float(value))})" if isinstance(value, float) else repr(value)


def _compare(ours: dict[str, Any], theirs: dict[str, Any], step: int, result: SideStats,
             differences: list[str]) -> None:
    """Compare two observations value by value; count into ``result``, describe into ``differences``."""
    for label in sorted(set(ours) | set(theirs)):
        if label not in ours or label not in theirs:
            result.compared += 1
            result.differing += 1
            side = "ours" if label not in ours else "torch's"
            differences.append(f"step {step}: {label}: missing from {side} side "
                               f"(ours={ours.get(label, '<missing>')!r}, torch={theirs.get(label, '<missing>')!r})")
            continue
        a, b = ours[label], theirs[label]
        if label == "warnings":
            result.compared += 1
            if a != b:
                result.differing += 1
                differences.append(f"step {step}: warnings: ours={a!r}, torch={b!r}")
            continue
        a_items, b_items = (a, b) if isinstance(a, list) and isinstance(b, list) else ([a], [b])
        if len(a_items) != len(b_items):
            result.compared += 1
            result.differing += 1
            differences.append(f"step {step}: {label}: ours={a!r}, torch={b!r}")
            continue
        for j, (x, y) in enumerate(zip(a_items, b_items)):
            result.compared += 1
            if _bits(x) != _bits(y):
                result.differing += 1
                where = f"{label}[{j}]" if isinstance(a, list) else label
                differences.append(f"step {step}: {where}: ours={_show(x)}, torch={_show(y)}")
                if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
                    error = abs(float(x) - float(y))
                    result.worst_error = max(result.worst_error, error if not math.isnan(error) else math.inf)


def _describe(name: str, case: dict[str, Any], differences: list[str]) -> str:
    blob = json.dumps(case)
    shown = "\n  ".join(differences[:12]) + (f"\n  ... {len(differences) - 12} more" if len(differences) > 12 else "")
    return (f"Parity failure: numpy_optim.lr_scheduler.{name} vs torch: {len(differences)} differing value(s)\n"
            f"  {shown}\n  case: {blob}\n"
            f"  reproduce: python -m parity --replay-lr-scheduler {name} '{blob}'")


def run_case(name: str, case: dict[str, Any], *, stats: Stats | None = None,
             raise_on_difference: bool = True, ours: str = "numpy") -> tuple[SideStats, list[str]]:
    """Run ``case`` on both sides; return its statistics and the differences found.

    ``ours="torch"`` runs torch against itself (a check of the harness: resuming, observing).

    With ``stats`` the case is added to ``stats.sides[(name, "float64", "bitwise")]``. Raises
    :class:`ParityError` on any differing value unless ``raise_on_difference`` is False.
    """
    result = SideStats(bitwise=True, cases=1, steps=case["steps"], worst_case=case)
    differences: list[str] = []
    resume = case.get("resume")
    try:
        ours_side: Side | None = Side(case, ours)
    except Exception as error:  # a torch-valid case that ours refuses is a difference
        differences.append(f"construction: ours raised {type(error).__name__}: {error}")
        result.compared += 1
        result.differing += 1
        ours_side = None
    if ours_side is not None:
        theirs = Side(case, "torch")
        _compare(ours_side.observe(), theirs.observe(), 0, result, differences)
        for t in range(1, case["steps"] + 1):
            if resume is not None and resume["at"] == t - 1:
                ours_side.resume(resume["order"])
                if resume["order"] == "late":
                    theirs.resume("late")
                else:  # torch runs on uninterrupted: nothing to hold our rebuild's warnings against
                    ours_side.warnings.clear()
                _compare(ours_side.observe(), theirs.observe(), t - 1, result, differences)
            try:
                ours_side.step(t)
            except Exception as error:  # torch must raise the same (e.g. triangular2's 2.0 ** 1024 overflows)
                result.compared += 1
                try:
                    theirs.step(t)
                except Exception as torch_error:
                    if (type(torch_error), str(torch_error)) == (type(error), str(error)):
                        result.steps = t
                        break
                result.differing += 1
                differences.append(f"step {t}: ours raised {type(error).__name__}: {error}")
                break
            try:
                theirs.step(t)
            except Exception as torch_error:
                result.compared += 1
                result.differing += 1
                differences.append(f"step {t}: torch raised {type(torch_error).__name__}: {torch_error}; ours did not")
                break
            _compare(ours_side.observe(), theirs.observe(), t, result, differences)
    if stats is not None:
        _add(stats, name, result)
    if differences and raise_on_difference:
        raise ParityError(_describe(name, case, differences))
    return result, differences


def _add(stats: Stats, name: str, result: SideStats) -> None:
    side = stats.sides.setdefault((name, "float64", "bitwise"), SideStats(bitwise=True))
    side.cases += result.cases
    side.steps += result.steps
    side.compared += result.compared
    side.differing += result.differing
    if result.worst_error > side.worst_error or not side.worst_case or (
            result.worst_error == side.worst_error == 0 and result.steps > side.worst_case.get("steps", 0)):
        side.worst_case = result.worst_case
    side.worst_error = max(side.worst_error, result.worst_error)


def check(name: str, stats: Stats | None = None, max_examples: int | None = None,
          seed: int | None = None) -> Stats:
    """Property-test ``numpy_optim.lr_scheduler`` pair ``name`` (a :data:`PAIRS` key) against torch.

    Runs Hypothesis with the loaded profile's ``settings()`` (``max_examples`` overrides it;
    no deadline: :func:`parity.profiles.for_trajectories`; ``seed``: :func:`parity.profiles.seeded`)
    and records the row ``stats.sides[(name, "float64", "bitwise")]``.

    Raises
    ------
    ParityError
        On any differing bit, with the case as JSON and a replay command.
    """
    if name not in PAIRS:
        raise ValueError(f"Unknown lr_scheduler pair: {name!r}; expected one of {sorted(PAIRS)}")
    stats = stats if stats is not None else Stats()
    stats.sides.setdefault((name, "float64", "bitwise"), SideStats(bitwise=True))

    @for_trajectories(max_examples)
    @seeded(name, seed)
    @given(case=PAIRS[name]())
    def property_(case: dict[str, Any]) -> None:
        run_case(name, case, stats=stats)

    property_()
    return stats


# --------------------------------------------------------------------------------------
# Replaying: a case from its JSON, every field checked first
# --------------------------------------------------------------------------------------


def _number(where: str, value: Any, n: int) -> None:
    check_number(where, value)


def _count(where: str, value: Any, n: int) -> None:
    check_int(where, value, 0, MAX_COUNT)


def _flag(where: str, value: Any, n: int) -> None:
    check_bool(where, value)


def _choice(*names: str) -> Callable[[str, Any, int], None]:
    def check(where: str, value: Any, n: int) -> None:
        check_name(where, value, names)

    return check


def _optional(check: Callable[[str, Any, int], None]) -> Callable[[str, Any, int], None]:
    def optional(where: str, value: Any, n: int) -> None:
        if value is not None:
            check(where, value, n)

    return optional


def _each(check: Callable[[str, Any, int], None]) -> Callable[[str, Any, int], None]:
    """One value for every entry, or a list of one per entry (:func:`_per_entry`)."""
    def each(where: str, value: Any, n: int) -> None:
        if type(value) is list:
            for i, item in enumerate(check_list(where, value, n, n)):
                check(f"{where}[{i}]", item, n)
        else:
            check(where, value, n)

    return each


def _menu(menu: dict[str, Any]) -> Callable[[str, Any, int], None]:
    return _each(_choice(*menu))


def _milestones(where: str, value: Any, n: int) -> None:
    for i, item in enumerate(check_list(where, value, 0, MAX_ITEMS)):
        check_int(f"{where}[{i}]", item, 0, MAX_COUNT)


_CYCLED = {"cycle_momentum": _flag, "base_momentum": _each(_number), "max_momentum": _each(_number)}
#: Every argument :func:`scheduler_specs` and :func:`plateau_specs` draw, per class: the case's
#: only keys, and names only from the menus (:data:`LAMBDAS`, :data:`MULTIPLIERS`, :data:`SCALE_FNS`).
KWARGS: dict[str, dict[str, Callable[[str, Any, int], None]]] = {
    "LambdaLR": {"lr_lambda": _menu(LAMBDAS)},
    "MultiplicativeLR": {"lr_lambda": _menu(MULTIPLIERS)},
    "StepLR": {"step_size": _count, "gamma": _number},
    "MultiStepLR": {"milestones": _milestones, "gamma": _number},
    "ConstantLR": {"factor": _number, "total_iters": _count},
    "LinearLR": {"start_factor": _number, "end_factor": _number, "total_iters": _count},
    "ExponentialLR": {"gamma": _number},
    "PolynomialLR": {"total_iters": _count, "power": _number},
    "CosineAnnealingLR": {"T_max": _count, "eta_min": _number},
    "CyclicLR": {"base_lr": _each(_number), "max_lr": _each(_number), "step_size_up": _count,
                 "step_size_down": _optional(_count), "mode": _choice("triangular", "triangular2", "exp_range"),
                 "gamma": _number, "scale_fn": _optional(_choice(*SCALE_FNS)),
                 "scale_mode": _choice("cycle", "iterations"), **_CYCLED},
    "OneCycleLR": {"max_lr": _each(_number), "total_steps": _count, "epochs": _count, "steps_per_epoch": _count,
                   "three_phase": _flag, "pct_start": _number, "anneal_strategy": _choice("cos", "linear"),
                   **_CYCLED, "div_factor": _number, "final_div_factor": _number},
    "CosineAnnealingWarmRestarts": {"T_0": _count, "T_mult": _count, "eta_min": _number},
    "ReduceLROnPlateau": {"mode": _choice("min", "max"), "factor": _number, "patience": _count,
                          "threshold": _number, "threshold_mode": _choice("rel", "abs"), "cooldown": _count,
                          "min_lr": _each(_number), "eps": _number},
}
#: OneCycleLR's length: ``total_steps``, or ``epochs`` and ``steps_per_epoch``.
_ONE_CYCLE_LENGTH = ("total_steps", "epochs", "steps_per_epoch")
#: Sub-schedulers of a SequentialLR or ChainedScheduler, and how deep they nest (drawn: 3 and 2).
MAX_SUBSCHEDULERS = 8
MAX_NESTING = 3


def _check_scheduler(where: str, spec: Any, n: int, allowed: tuple[str, ...], depth: int = 1) -> None:
    """A scheduler spec: a class from ``allowed``, its keys and arguments (:data:`KWARGS`),
    sub-schedulers checked in turn."""
    if type(spec) is not dict:
        check_keys(where, spec, ())  # raises: not an object
    cls = check_name(f"{where}['class']", spec.get("class"), allowed)
    if cls in ("SequentialLR", "ChainedScheduler"):
        check_keys(where, spec, ("class", "schedulers", "milestones" if cls == "SequentialLR" else "pass_optimizer"))
        subs = check_list(f"{where}['schedulers']", spec["schedulers"], 1, MAX_SUBSCHEDULERS)
        inner = SIMPLE + (("SequentialLR", "ChainedScheduler") if depth < MAX_NESTING else ())
        for i, sub in enumerate(subs):
            _check_scheduler(f"{where}['schedulers'][{i}]", sub, n, inner, depth + 1)
        if cls == "SequentialLR":
            check_list(f"{where}['milestones']", spec["milestones"], len(subs) - 1, len(subs) - 1)
            _milestones(f"{where}['milestones']", spec["milestones"], n)
        else:
            check_bool(f"{where}['pass_optimizer']", spec["pass_optimizer"])
        return
    check_keys(where, spec, ("class", "kwargs"))
    arguments = KWARGS[cls]
    optional = _ONE_CYCLE_LENGTH if cls == "OneCycleLR" else ()
    kwargs = check_keys(f"{where}['kwargs']", spec["kwargs"], tuple(k for k in arguments if k not in optional),
                        optional)
    if cls == "OneCycleLR" and "total_steps" not in kwargs and not {"epochs", "steps_per_epoch"} <= set(kwargs):
        raise ValueError(f"{where}['kwargs'] needs 'total_steps', or 'epochs' and 'steps_per_epoch'")
    for key, value in kwargs.items():
        arguments[key](f"{where}['kwargs'][{key!r}]", value, n)


def check_case(name: Any, case: Any) -> None:
    """Check a case of pair ``name`` as :data:`PAIRS` draws it: the keys, the optimizer and
    scheduler classes and menu names from this module's tables (the top class is ``name``),
    one value per entry where a list is given, counts within ``parity.harness``'s bounds
    (``steps`` at most MAX_STEPS, arguments and epochs at most MAX_COUNT, at most MAX_ITEMS
    entries), ints as ints, bools as bools, finite numbers (metrics may be NaN or infinite).

    Raises
    ------
    TypeError, ValueError
        Naming the field (``case['scheduler']['kwargs']['gamma']``, ...) and its value.
    """
    check_name("PAIR", name, PAIRS)
    plateau = name == "ReduceLROnPlateau"
    check_keys("case", case, ("optimizer", "hyperparameters", "entries", "scheduler", "steps", "seed")
               + (("metrics",) if plateau else ()), ("epochs", "resume"))
    kind = OPTIMIZERS[check_name("case['optimizer']", case["optimizer"], OPTIMIZERS)][2]
    steps = check_int("case['steps']", case["steps"], 1, MAX_STEPS)
    check_int("case['seed']", case["seed"], 0, MAX_SEED)
    n = len(check_list("case['entries']", case["entries"], 1, MAX_ITEMS))
    for i, entry in enumerate([case["hyperparameters"], *case["entries"]]):
        where = "case['hyperparameters']" if i == 0 else f"case['entries'][{i - 1}]"
        for key, value in check_keys(where, entry, ("lr", kind) if i == 0 else (), ("lr", kind)).items():
            if key == "betas":
                for j, beta in enumerate(check_list(f"{where}['betas']", value, 2, 2)):
                    check_number(f"{where}['betas'][{j}]", beta)
            else:
                check_number(f"{where}[{key!r}]", value)
    spec = case["scheduler"]
    if name == "TwoSchedulers":
        check_keys("case['scheduler']", spec, ("class", "first", "second", "second_at", "stepping"))
        check_name("case['scheduler']['class']", spec["class"], (name,))
        for key in ("first", "second"):
            _check_scheduler(f"case['scheduler'][{key!r}]", spec[key], n, SIMPLE)
        check_int("case['scheduler']['second_at']", spec["second_at"], 0, steps - 1)
        check_name("case['scheduler']['stepping']", spec["stepping"], ("both", "second"))
    else:
        _check_scheduler("case['scheduler']", spec, n, (name,))
    if plateau:
        for t, metric in enumerate(check_list("case['metrics']", case["metrics"], steps, steps)):
            check_number(f"case['metrics'][{t}]", metric, nonfinite=True)
    for i, call in enumerate(check_list("case['epochs']", case.get("epochs", []), 0, min(steps, MAX_ITEMS))):
        check_list(f"case['epochs'][{i}]", call, 2, 2)
        check_int(f"case['epochs'][{i}][0]", call[0], 1, steps)
        check_number(f"case['epochs'][{i}][1]", call[1], 0, MAX_COUNT)
    if "resume" in case:
        resume = check_keys("case['resume']", case["resume"], ("at", "order"))
        check_int("case['resume']['at']", resume["at"], 0, steps - 1)
        check_name("case['resume']['order']", resume["order"], ("docs", "late"))


def parse_case(name: Any, json_string: Any) -> dict[str, Any]:
    """The case of ``python -m parity --replay-lr-scheduler NAME '<json>'``, checked (:func:`check_case`)."""
    case = load_json(json_string, "case")
    check_case(name, case)
    return case


def replay(name: str, json_string: str) -> SideStats:
    """Rerun one case from its JSON (``python -m parity --replay-lr-scheduler NAME '<json>'``),
    checked first (:func:`parse_case`: TypeError or ValueError); print every difference and
    return the case's statistics."""
    result, differences = run_case(name, parse_case(name, json_string), raise_on_difference=False)
    for line in differences:
        print(line)
    return result
