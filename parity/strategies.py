"""Hypothesis strategies: dtypes, shapes, gradients, hyperparameters, schedules, whole cases.

A drawn case is a :class:`CaseSpec`: plain JSON-able data (a seed, not arrays), so a
failing case can be printed and replayed exactly with ``python -m parity --replay``.
Arrays are made from the spec by :func:`parity.trajectories.build_case`.

Every draw is labelled (``data.draw(..., label=...)``) so Hypothesis's report of a
failing example names each part.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

#: Gradient kinds per entry: typical, exact zeros, tiny (1e-10), large (1e6), magnitudes
#: mixed element by element from 1e-10 to 1e6, and sparse (mostly zeros).
GRADIENT_KINDS = ("normal", "zeros", "tiny", "large", "mixed", "sparse")
DTYPES = ("float32", "float64")
#: The dtypes of torch's fused CPU kernels (parity/registry.py FUSED); bfloat16 is ml_dtypes'.
FUSED_DTYPES = ("float64", "float32", "float16", "bfloat16")
#: Hyperparameters that may be pairs (tuples on both sides; JSON keeps them as lists):
#: ``betas``, Rprop's ``etas`` and ``step_sizes``, Adafactor's ``eps``.
PAIRED_KEYS = ("betas", "etas", "step_sizes", "eps")


@dataclass
class CaseSpec:
    """One parity case as plain data."""

    pair: str
    dtype: str
    hyperparameters: dict[str, Any]
    overrides: list[dict[str, Any]]
    shapes: list[tuple[int, ...]]
    gradient_kinds: list[str]
    steps: int
    seed: int
    closed_loop: bool = False
    #: {"name": "StepDecayScheduler" | "CosineScheduler" | "WarmupCosineScheduler", "kwargs": {...}}
    schedule: dict[str, Any] | None = None
    init_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CaseSpec:
        """The case :meth:`to_json` wrote, unchecked: for JSON from elsewhere (a replay line,
        a hand edit) use :func:`parity.harness.parse_case` or :func:`parity.replay`, which
        check every field first and call this."""
        data = json.loads(text)
        data["shapes"] = [tuple(s) for s in data["shapes"]]
        for hyper in (data["hyperparameters"], *data["overrides"]):
            for key in PAIRED_KEYS:
                if isinstance(hyper.get(key), list):
                    hyper[key] = tuple(hyper[key])
        return cls(**data)


# ----- shapes -------------------------------------------------------------------------

dims = st.integers(1, 6)
shape = st.one_of(
    st.just(()),                                  # 0-d
    st.just((1,)),
    st.tuples(st.integers(1, 17)),                # vectors (17 > 8: a fused vector body plus a tail)
    st.tuples(dims, dims),                        # matrices
    st.tuples(dims, dims, st.integers(1, 4)),     # 3-d
)
shapes = st.lists(shape, min_size=1, max_size=4)

# ----- hyperparameters ----------------------------------------------------------------

def _sometimes_zero(nonzero: st.SearchStrategy[float], zero_in: int = 10) -> st.SearchStrategy[float]:
    """``0.0`` about once in ``zero_in`` draws, else ``nonzero`` (Hypothesis favours simple
    values such as 0 heavily in a plain ``one_of``; an lr of 0 compares little)."""
    return st.integers(1, zero_in).flatmap(lambda k: st.just(0.0) if k == 1 else nonzero)


def _unit(low: float = 0.0, high: float = 1.0, **kwargs: Any) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_subnormal=False, **kwargs)


lr = _sometimes_zero(st.floats(-5, 0).map(lambda e: 10.0**e))
weight_decay = _sometimes_zero(_unit(), zero_in=3)
beta = st.one_of(
    st.just(0.0),
    _unit(1e-6, 1e-2),                                      # near 0
    _unit(exclude_max=True),                                # anywhere
    st.integers(1, 8).map(lambda k: 1.0 - 10.0**-k),        # near 1: 0.9 ... 1 - 1e-8
    st.sampled_from([0.9, 0.99, 0.999]),                    # the usual ones
)
eps = st.floats(-12, -3).map(lambda e: 10.0**e)
momentum = st.one_of(st.just(0.0), _unit(0.0, 0.99), st.sampled_from([0.5, 0.9, 0.99]))
dampening = _sometimes_zero(_unit(), zero_in=2)


@st.composite
def sgd_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    hyper = {
        "lr": draw(lr, label="lr"),
        "momentum": draw(momentum, label="momentum"),
        "dampening": draw(dampening, label="dampening"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "maximize": draw(st.booleans(), label="maximize"),
    }
    can_nesterov = hyper["momentum"] > 0 and hyper["dampening"] == 0
    hyper["nesterov"] = draw(st.booleans(), label="nesterov") if can_nesterov else False
    return hyper


@st.composite
def adam_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "lr": draw(lr, label="lr"),
        "betas": (draw(beta, label="beta1"), draw(beta, label="beta2")),
        "eps": draw(eps, label="eps"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "amsgrad": draw(st.booleans(), label="amsgrad"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


positive_eps = st.one_of(eps, st.just(0.0))  # torch accepts eps = 0 (0/0 then gives NaN on both sides)
rate = st.floats(-4, 0).map(lambda e: 10.0**e)  # a positive factor in [1e-4, 1]
unit_closed = st.one_of(st.just(0.0), st.just(1.0), _unit(), st.sampled_from([0.9, 0.99]))


@st.composite
def adam_family_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    """Adam's, and torch 2.13's ``decoupled_weight_decay`` switch."""
    return {**draw(adam_hyperparameters()),
            "decoupled_weight_decay": draw(st.booleans(), label="decoupled_weight_decay")}


@st.composite
def adagrad_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "lr": draw(lr, label="lr"),
        "lr_decay": draw(_sometimes_zero(rate, zero_in=2), label="lr_decay"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "initial_accumulator_value": draw(_sometimes_zero(st.floats(-3, 1).map(lambda e: 10.0**e), zero_in=2),
                                          label="initial_accumulator_value"),
        "eps": draw(positive_eps, label="eps"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def adadelta_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "lr": draw(_sometimes_zero(st.floats(-3, 1).map(lambda e: 10.0**e)), label="lr"),
        "rho": draw(unit_closed, label="rho"),
        "eps": draw(positive_eps, label="eps"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def adamax_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "lr": draw(lr, label="lr"),
        "betas": (draw(beta, label="beta1"), draw(beta, label="beta2")),
        "eps": draw(positive_eps, label="eps"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def asgd_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    # torch checks only lr and weight_decay; lambd, alpha and t0 may be anything for which
    # the decay (1 + lambd * lr * t) ** alpha stays real: t0 small enough to start averaging.
    return {
        "lr": draw(lr, label="lr"),
        "lambd": draw(_sometimes_zero(st.floats(-6, 0).map(lambda e: 10.0**e), zero_in=3), label="lambd"),
        "alpha": draw(st.one_of(st.just(0.75), _unit(0.0, 2.0), st.floats(-1.0, 0.0)), label="alpha"),
        "t0": draw(st.one_of(st.just(1e6), st.integers(0, 20).map(float), _unit(0.0, 30.0)), label="t0"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def nadam_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "lr": draw(lr, label="lr"),
        "betas": (draw(beta, label="beta1"), draw(beta, label="beta2")),
        "eps": draw(eps, label="eps"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "momentum_decay": draw(st.one_of(st.just(4e-3), _sometimes_zero(rate, zero_in=3)), label="momentum_decay"),
        "decoupled_weight_decay": draw(st.booleans(), label="decoupled_weight_decay"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def radam_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "lr": draw(lr, label="lr"),
        "betas": (draw(beta, label="beta1"), draw(beta, label="beta2")),
        "eps": draw(eps, label="eps"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "decoupled_weight_decay": draw(st.booleans(), label="decoupled_weight_decay"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def rmsprop_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "lr": draw(lr, label="lr"),
        # torch checks only alpha >= 0 (alpha > 1 is accepted)
        "alpha": draw(st.one_of(st.just(0.99), unit_closed, _unit(1.0, 2.0)), label="alpha"),
        "eps": draw(eps, label="eps"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "momentum": draw(momentum, label="momentum"),
        "centered": draw(st.booleans(), label="centered"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def rprop_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    # torch checks 0 < etaminus < 1 < etaplus; step_sizes are not checked ((5, 1) is accepted)
    etaminus = draw(st.one_of(st.just(0.5), _unit(1e-3, 1.0, exclude_max=True).filter(lambda e: e > 0)),
                    label="etaminus")
    etaplus = draw(st.one_of(st.just(1.2), _unit(1.0, 3.0, exclude_min=True)), label="etaplus")
    low = draw(st.one_of(st.just(1e-6), st.floats(-9, -1).map(lambda e: 10.0**e)), label="min step")
    high = draw(st.one_of(st.just(50.0), st.floats(-2, 2).map(lambda e: 10.0**e)), label="max step")
    return {
        "lr": draw(lr, label="lr"),
        "etas": (etaminus, etaplus),
        "step_sizes": (low, high),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def adafactor_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    eps1 = draw(st.one_of(st.none(), st.just(0.0), st.floats(-30, -3).map(lambda e: 10.0**e)), label="eps1")
    eps2 = draw(st.one_of(st.just(1e-3), st.just(0.0), st.floats(-8, -1).map(lambda e: 10.0**e)), label="eps2")
    return {
        "lr": draw(lr, label="lr"),
        "beta2_decay": draw(st.one_of(st.just(-0.8), _unit(-1.0, 0.0)), label="beta2_decay"),
        "eps": (eps1, eps2),
        "d": draw(st.one_of(st.just(1.0), _unit(1.0, 10.0)), label="d"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "maximize": draw(st.booleans(), label="maximize"),
    }


@st.composite
def lbfgs_hyperparameters(draw: st.DrawFn) -> dict[str, Any]:
    max_iter = draw(st.integers(1, 25), label="max_iter")
    return {
        "lr": draw(st.one_of(st.just(1), _unit(1e-3, 1.0)), label="lr"),
        "max_iter": max_iter,
        "max_eval": draw(st.one_of(st.none(), st.integers(1, 2 * max_iter + 5)), label="max_eval"),
        "tolerance_grad": draw(st.one_of(st.just(1e-7), st.floats(-10, -4).map(lambda e: 10.0**e)),
                               label="tolerance_grad"),
        "tolerance_change": draw(st.one_of(st.just(1e-9), st.floats(-12, -6).map(lambda e: 10.0**e)),
                                 label="tolerance_change"),
        "history_size": draw(st.one_of(st.just(100), st.integers(1, 10)), label="history_size"),
        "line_search_fn": draw(st.sampled_from([None, "strong_wolfe"]), label="line_search_fn"),
    }


HYPERPARAMETERS = {
    "SGD": sgd_hyperparameters(),
    "Adam": adam_family_hyperparameters(),
    "AdamW": adam_hyperparameters(),
    "Adagrad": adagrad_hyperparameters(),
    "Adadelta": adadelta_hyperparameters(),
    "Adamax": adamax_hyperparameters(),
    "ASGD": asgd_hyperparameters(),
    "NAdam": nadam_hyperparameters(),
    "RAdam": radam_hyperparameters(),
    "RMSprop": rmsprop_hyperparameters(),
    "Rprop": rprop_hyperparameters(),
    "Adafactor": adafactor_hyperparameters(),
    "LBFGS": lbfgs_hyperparameters(),
}


def valid_combination(hyper: dict[str, Any]) -> bool:
    """torch's cross-parameter rule: Nesterov needs momentum > 0 and dampening == 0."""
    if hyper.get("nesterov"):
        return hyper.get("momentum", 0) > 0 and hyper.get("dampening", 0) == 0
    return True


@st.composite
def overrides_for(draw: st.DrawFn, pair: str, defaults: dict[str, Any], count: int,
                  hyperparameters: st.SearchStrategy[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-entry overrides: most entries none, some a few keys (e.g. weight_decay=0 on a bias)."""
    result: list[dict[str, Any]] = []
    for index in range(count):
        if not draw(st.booleans(), label=f"entry {index} overrides?"):
            result.append({})
            continue
        other = draw(hyperparameters, label=f"entry {index} hyperparameters")
        keys = draw(st.sets(st.sampled_from(sorted(other)), min_size=1, max_size=3), label=f"entry {index} keys")
        chosen = {k: other[k] for k in sorted(keys)}
        assume(valid_combination({**defaults, **chosen}))
        result.append(chosen)
    return result


@st.composite
def schedules(draw: st.DrawFn, base_lr: float, steps: int) -> dict[str, Any] | None:
    """A scheduler changing the lr mid-run (its peak/initial lr is the optimizer's lr)."""
    if base_lr == 0.0 or not draw(st.booleans(), label="schedule?"):
        return None
    name = draw(st.sampled_from(["StepDecayScheduler", "CosineScheduler", "WarmupCosineScheduler"]), label="schedule")
    total = draw(st.integers(1, max(1, steps)), label="schedule total_steps")
    if name == "StepDecayScheduler":
        kwargs = {"initial_lr": base_lr, "decay_factor": draw(_unit(0.05, 1.0), label="decay_factor"),
                  "step_size": draw(st.integers(1, max(1, steps // 2 + 1)), label="step_size")}
    elif name == "CosineScheduler":
        kwargs = {"max_lr": base_lr, "min_lr": base_lr * draw(_unit(), label="min fraction"),
                  "total_steps": total}
    else:
        kwargs = {"max_lr": base_lr, "min_lr": base_lr * draw(_unit(), label="min fraction"),
                  "warmup_steps": draw(st.integers(0, total - 1), label="warmup_steps"), "total_steps": total}
    return {"name": name, "kwargs": kwargs}


#: Run lengths: mostly short, sometimes a few hundred steps.
step_counts = st.one_of(st.integers(1, 12), st.integers(13, 60), st.integers(61, 300))

# ----- torch's fused kernels (parity/fused.py) ------------------------------------------------
#
# Sizes straddle the kernels' lane counts (4 float64, 8 float32, 16 float16/bfloat16: a vector
# body of n - n % lanes elements, then a scalar tail): 0-d and 1..40 elements (all tail, one
# body and a tail, ...), a few hundred, and more than 1024; matrices are flattened.

fused_shape = st.one_of(
    st.just(()),
    st.tuples(st.integers(1, 40)),
    st.tuples(st.integers(1, 40)),
    st.tuples(st.integers(1, 6), st.integers(1, 12)),
    st.tuples(st.integers(100, 400)),
    st.tuples(st.integers(1025, 1100)),
)
fused_shapes = st.lists(fused_shape, min_size=1, max_size=3)
#: One case in about ten runs 1,000 steps; the rest 1 to 100 (a failure shrinks towards them).
fused_step_counts = st.integers(1, 10).flatmap(
    lambda k: st.just(1000) if k == 10 else st.one_of(st.integers(1, 12), st.integers(13, 100)))
#: Adam's betas, with 1 - beta1 >= 0.5 drawn often (the fused first moment's other branch:
#: ``m = fma(W - 1, g - m, g)`` for ``W = 1 - beta1 >= 0.5``), its edge 0.5 included.
fused_beta = st.one_of(beta, st.sampled_from([0.5, 0.3, 0.2]), _unit(0.0, 0.5))


@st.composite
def fused_adam_hyperparameters(draw: st.DrawFn, decoupled: bool = True) -> dict[str, Any]:
    """Adam's (and ``decoupled_weight_decay`` when ``decoupled``), betas from ``fused_beta``."""
    hyper = {
        "lr": draw(lr, label="lr"),
        "betas": (draw(fused_beta, label="beta1"), draw(fused_beta, label="beta2")),
        "eps": draw(eps, label="eps"),
        "weight_decay": draw(weight_decay, label="weight_decay"),
        "amsgrad": draw(st.booleans(), label="amsgrad"),
        "maximize": draw(st.booleans(), label="maximize"),
    }
    if decoupled:
        hyper["decoupled_weight_decay"] = draw(st.booleans(), label="decoupled_weight_decay")
    return hyper


FUSED_HYPERPARAMETERS = {
    "SGD": sgd_hyperparameters(),
    "Adam": fused_adam_hyperparameters(),
    "AdamW": fused_adam_hyperparameters(decoupled=False),
    "Adagrad": adagrad_hyperparameters(),
}


@st.composite
def case_specs(
    draw: st.DrawFn,
    pair: str,
    hyperparameters: st.SearchStrategy[dict[str, Any]] | None = None,
    dtypes: tuple[str, ...] = DTYPES,
    max_steps: int = 300,
    closed_loop: bool = True,
    schedules_too: bool = True,
    shape_lists: st.SearchStrategy[list[tuple[int, ...]]] = shapes,
    run_lengths: st.SearchStrategy[int] = step_counts,
) -> CaseSpec:
    """A whole case for ``pair`` (a registry name, or any label for user-supplied pairs).

    ``schedules_too`` draws learning-rate schedules (numpy_optim schedulers need a
    numpy_optim optimizer to drive); ``shape_lists`` and ``run_lengths`` draw the shapes
    and the number of steps (the fused pairs: :data:`fused_shapes`, :data:`fused_step_counts`).
    """
    hyperparameters = hyperparameters if hyperparameters is not None else HYPERPARAMETERS[pair]
    dtype = draw(st.sampled_from(dtypes), label="dtype")
    hyper = draw(hyperparameters, label="hyperparameters")
    entry_shapes = draw(shape_lists, label="shapes")
    steps = min(draw(run_lengths, label="steps"), max_steps)
    closed = closed_loop and draw(st.booleans(), label="closed loop?")
    kinds = [draw(st.sampled_from(GRADIENT_KINDS), label=f"entry {i} gradient kind") for i in range(len(entry_shapes))]
    return CaseSpec(
        pair=pair,
        dtype=dtype,
        hyperparameters=hyper,
        overrides=draw(overrides_for(pair, hyper, len(entry_shapes), hyperparameters), label="overrides"),
        shapes=[tuple(s) for s in entry_shapes],
        gradient_kinds=kinds,
        steps=steps,
        seed=draw(st.integers(0, 2**32 - 1), label="seed"),
        closed_loop=closed,
        schedule=draw(schedules(hyper.get("lr", 0.0), steps), label="schedule") if schedules_too else None,
        init_scale=draw(st.sampled_from([1.0, 1e-3, 1e3]), label="init scale"),
    )
