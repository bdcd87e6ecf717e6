"""Teeth: the parity harness must catch deliberately wrong optimizers.

Each mutant is a numpy_optim class with one thing in its update changed, the kind of
slip that is easy to make when transcribing an optimizer from a paper: eps inside the
square root, eps before the bias correction, dampening on the first momentum step, the
learning rate folded into the momentum buffer, AdamW's decay at the wrong place, a bias
correction missing. Each is fed to :func:`parity.check` with the registry's own
strategy and must be reported as a :class:`parity.ParityError` whose message names the
pair, the dtype, the step and a case that fails again when replayed, and that the true
optimizer passes.

Positive controls run the same settings and see the same cases (the checks here are
derandomized): the true numpy_optim classes pass, and so does an SGD written from
scratch to the numpy_optim interface (not subclassing it).

A harness that lets any of these mutants through is broken.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

import numpy_optim
import parity
from parity.harness import run_case
from parity.registry import OPTIMIZERS
from parity.strategies import HYPERPARAMETERS, CaseSpec

#: Cases per check. Derandomized (see :func:`_teeth_profile`), the mutants below are caught
#: at cases 3 to 87 of this sequence; a mutant costs only the cases until it is caught.
MAX_EXAMPLES = 200
#: Cases run at most this many steps (the harness's default is 300). Every mutant shows
#: within a few steps (the schedule-only one at the first change of the learning rate), so
#: a short horizon keeps the file fast without hiding anything.
MAX_STEPS = 30


# ----- Adam / AdamW mutants -----------------------------------------------------------


def adam_mutant_update_(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    max_exp_avg_sq: np.ndarray | None,
    *,
    mutation: str,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """:func:`numpy_optim.adam_update_` with one deliberate mistake, named by ``mutation``."""
    if maximize:
        grad = -grad
    decay_param_after_step = False
    if weight_decay != 0:
        if decoupled_weight_decay and mutation == "decay_on_gradient":
            grad = grad + weight_decay * param              # AdamW turned into Adam + L2
        elif decoupled_weight_decay and mutation == "decay_after_step":
            decay_param_after_step = True                   # decays the updated parameter
        elif decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    weight = 1 - beta1
    if weight < 0.5:
        exp_avg += weight * (grad - exp_avg)
    else:
        exp_avg[...] = grad - (grad - exp_avg) * (1 - weight)
    exp_avg_sq *= beta2
    exp_avg_sq += ((1 - beta2) * grad) * grad
    bias_correction1 = 1 - beta1 ** float(step)
    bias_correction2 = 1 - beta2 ** float(step)
    if mutation in ("no_bias_correction", "no_bias_correction1"):
        bias_correction1 = 1.0
    if mutation in ("no_bias_correction", "no_bias_correction2"):
        bias_correction2 = 1.0
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    if amsgrad:
        assert max_exp_avg_sq is not None
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second_moment = max_exp_avg_sq
    else:
        second_moment = exp_avg_sq
    if mutation == "eps_in_sqrt":
        denom = np.sqrt(second_moment / bias_correction2 + eps)            # sqrt(v_hat + eps)
    elif mutation == "eps_before_bias_correction":
        denom = (np.sqrt(second_moment) + eps) / bias_correction2_sqrt     # (sqrt(v) + eps) / sqrt(bc2)
    else:
        denom = np.sqrt(second_moment) / bias_correction2_sqrt + eps
    param += (-step_size * exp_avg) / denom
    if decay_param_after_step:
        param *= 1 - lr * weight_decay


def adam_mutant(base: type, mutation: str) -> type:
    """A subclass of ``base`` (Adam or AdamW) whose ``_update`` runs the mutated kernel."""

    def _update(self: Any, index: int, param: np.ndarray, grad: np.ndarray, hyper: dict[str, Any], step: int) -> None:
        exp_avg, _ = self._buffer(index, "exp_avg", param)
        exp_avg_sq, _ = self._buffer(index, "exp_avg_sq", param)
        max_exp_avg_sq = self._buffer(index, "max_exp_avg_sq", param)[0] if hyper["amsgrad"] else None
        beta1, beta2 = hyper["betas"]
        adam_mutant_update_(
            param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, mutation=mutation,
            step=step, lr=hyper["lr"], beta1=beta1, beta2=beta2, eps=hyper["eps"],
            weight_decay=hyper["weight_decay"], amsgrad=hyper["amsgrad"],
            maximize=hyper["maximize"], decoupled_weight_decay=hyper["decoupled_weight_decay"],
        )

    return type(f"{base.__name__}_{mutation}", (base,), {"_update": _update})


# ----- SGD mutants --------------------------------------------------------------------


def sgd_mutant_update_(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None,
    *,
    mutation: str,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    first: bool,
) -> None:
    """:func:`numpy_optim.sgd_update_` with one deliberate mistake, named by ``mutation``."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum == 0:
        param += -lr * grad
        return
    assert momentum_buffer is not None
    scale = lr if mutation == "lr_in_buffer" else 1.0       # b = mu b + lr g, then param -= b
    if first and mutation == "dampened_first_step":
        momentum_buffer[...] = (1 - dampening) * grad          # torch: b_1 = g_1, undampened
    elif first:
        momentum_buffer[...] = scale * grad
    else:
        momentum_buffer *= momentum
        momentum_buffer += (1 - dampening) * (scale * grad)
    direction = scale * grad + momentum * momentum_buffer if nesterov else momentum_buffer
    if mutation == "lr_in_buffer":
        param -= direction                                     # lr is already inside
    else:
        param += -lr * direction


def sgd_mutant(mutation: str) -> type:
    """A subclass of numpy_optim.SGD whose ``_update`` runs the mutated kernel."""

    def _update(self: Any, index: int, param: np.ndarray, grad: np.ndarray, hyper: dict[str, Any], step: int) -> None:
        buf, first = self._buffer(index, "momentum_buffer", param) if hyper["momentum"] != 0 else (None, False)
        sgd_mutant_update_(
            param, grad, buf, mutation=mutation,
            lr=hyper["lr"], momentum=hyper["momentum"], dampening=hyper["dampening"],
            weight_decay=hyper["weight_decay"], nesterov=hyper["nesterov"],
            maximize=hyper["maximize"], first=first,
        )

    return type(f"SGD_{mutation}", (numpy_optim.SGD,), {"_update": _update})


class SGDLrInBufferHidden(numpy_optim.SGD,):
    r"""The learning rate folded into the momentum buffer, disguised as torch's buffer.

    The update is the folded one, :math:`B_t = \mu B_{t-1} + (1-\tau)\alpha_t g_t`,
    :math:`\theta_t = \theta_{t-1} - B_t`, but what is stored (and compared) is
    :math:`b_t = B_t / \alpha_t`, which obeys
    :math:`b_t = \mu (\alpha_{t-1} / \alpha_t) b_{t-1} + (1-\tau) g_t`,
    :math:`\theta_t = \theta_{t-1} - \alpha_t b_t`. While the learning rate is constant the
    ratio is exactly 1.0 and every operation is torch's, bit for bit: parameters and
    buffers alike. Only a learning rate that changes mid-run (a schedule) tells it apart.
    Implemented by handing the true kernel the momentum :math:`\mu \alpha_{t-1} / \alpha_t`
    (Nesterov's look-ahead sees the same factor; where either rate is 0 the factor is 1).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.previous_lr: dict[int, float] = {}

    def _update(self, index: int, param: np.ndarray, grad: np.ndarray, hyper: dict[str, Any], step: int) -> None:
        lr, previous = hyper["lr"], self.previous_lr.get(index, hyper["lr"])
        self.previous_lr[index] = lr
        momentum = hyper["momentum"]
        if momentum != 0 and lr != 0 and previous != 0:
            momentum *= previous / lr
        super()._update(index, param, grad, {**hyper, "momentum": momentum}, step)


# ----- running the harness ------------------------------------------------------------


def run_check(factory: Any, pair: str, name: str, hyperparameters: Any) -> parity.Stats:
    """``parity.check`` on ``factory`` against the registry pair's torch class, as check_pair does."""
    p = OPTIMIZERS[pair]
    return parity.check(
        factory, p.theirs, name=name, hyperparameters=hyperparameters,
        buffers=p.buffers, fused=p.fused, torch_has_step=p.torch_has_step,
        max_examples=MAX_EXAMPLES, max_steps=MAX_STEPS,
    )


def _teeth_profile(shrink: bool) -> Any:
    """The loaded Hypothesis profile, derandomized (and without shrinking unless ``shrink``),
    for the duration of a test; the loaded profile is restored afterwards.

    Derandomized, every check below draws the same cases in the same order under any
    profile (``dev`` or ``ci``): whether a mutant is caught, and at which case, is a fact
    about the harness, not luck. The positive controls see exactly the cases that caught
    the mutants. Without shrinking, the first failing case ends the run and Hypothesis
    re-raises that case's ParityError itself (while shrinking it keeps looking for further
    distinct failures and may raise an ExceptionGroup of them), in a fraction of the time.
    """
    from hypothesis import Phase, settings

    from parity import profiles

    name = profiles.default_profile()
    phases = [p for p in Phase if shrink or p is not Phase.shrink]
    settings.register_profile("teeth", parent=settings.get_profile(name), derandomize=True, database=None,
                              phases=phases)
    settings.load_profile("teeth")
    try:
        yield
    finally:
        profiles.load(name)


@pytest.fixture
def teeth() -> Any:
    """Derandomized, no shrinking: for the mutants (see :func:`_teeth_profile`)."""
    yield from _teeth_profile(shrink=False)


@pytest.fixture
def same_cases() -> Any:
    """Derandomized, shrinking on: for the positive controls (see :func:`_teeth_profile`)."""
    yield from _teeth_profile(shrink=True)


MUTANTS = [
    pytest.param("Adam", adam_mutant(numpy_optim.Adam, "eps_in_sqrt"), id="Adam-eps-inside-sqrt"),
    pytest.param("Adam", adam_mutant(numpy_optim.Adam, "eps_before_bias_correction"),
                 id="Adam-eps-before-bias-correction"),
    pytest.param("Adam", adam_mutant(numpy_optim.Adam, "no_bias_correction"), id="Adam-no-bias-correction"),
    pytest.param("Adam", adam_mutant(numpy_optim.Adam, "no_bias_correction1"), id="Adam-no-bias-correction1"),
    pytest.param("Adam", adam_mutant(numpy_optim.Adam, "no_bias_correction2"), id="Adam-no-bias-correction2"),
    pytest.param("AdamW", adam_mutant(numpy_optim.AdamW, "no_bias_correction"), id="AdamW-no-bias-correction"),
    pytest.param("AdamW", adam_mutant(numpy_optim.AdamW, "decay_after_step"), id="AdamW-decay-after-step"),
    pytest.param("AdamW", adam_mutant(numpy_optim.AdamW, "decay_on_gradient"), id="AdamW-decay-on-gradient"),
    pytest.param("SGD", sgd_mutant("dampened_first_step"), id="SGD-dampened-first-step"),
    pytest.param("SGD", sgd_mutant("lr_in_buffer"), id="SGD-lr-in-buffer"),
    pytest.param("SGD", SGDLrInBufferHidden, id="SGD-lr-in-buffer-hidden"),
]


def assert_names_the_case(message: str, name: str) -> CaseSpec:
    """The failure message names the pair, dtype, step, array and index, and replays; return its case."""
    first = message.splitlines()[0]
    assert first.startswith(f"Parity failure: {name} vs torch ("), message
    assert first.endswith((", float32", ", float64")), message
    where = r"^  \w+\[\d+\] after step \d+, index \([\d, ]*\) \(flat \d+\): ours=.+, torch="
    assert re.search(where, message, re.M), message
    assert re.search(r"^  error \S+ > bound \S+", message, re.M), message
    assert "hyperparameters {" in message, message
    replay = re.search(  # the CLI (a registry pair, or --ours for a module's class), or parity.replay
        r"^  reproduce: (?:python -m parity --replay '(.+?)'(?: --ours .*)?$"
        r"|\(in Python, where \w+ is defined\) import parity, torch; parity\.replay\('(.+?)', )",
        message, re.M,
    )
    assert replay is not None, message
    spec = CaseSpec.from_json(replay.group(1) or replay.group(2))
    assert spec.pair == name and spec.dtype == first.rsplit(", ", 1)[1]
    return spec


#: A case on which every mutant's parameters visibly leave the true optimizer's (numpy only).
PLAIN_CASE = {
    "SGD": {"lr": 0.1, "momentum": 0.9, "dampening": 0.5},
    "Adam": {"lr": 0.1, "betas": (0.9, 0.99), "eps": 1e-3, "weight_decay": 0.1},
    "AdamW": {"lr": 0.1, "betas": (0.9, 0.99), "eps": 1e-3, "weight_decay": 0.1},
}


@pytest.mark.parametrize(("pair", "mutant"), MUTANTS)
def test_mutant_really_computes_something_else(pair, mutant):
    # Guards the premise of the next test: the mistake is reached (not routed around) and shows.
    rng = np.random.default_rng(0)
    x0 = [rng.standard_normal(s) for s in [(17,), (), (3, 2)]]
    gradients = [[rng.standard_normal(x.shape) for x in x0] for _ in range(3)]
    finals = []
    for cls in (OPTIMIZERS[pair].ours, mutant):
        entries = [{"params": x.copy(), "grad": np.zeros_like(x)} for x in x0]
        opt = cls(entries, **PLAIN_CASE[pair])
        for t, grads in enumerate(gradients):
            if t == 2:
                opt.lr = opt.lr / 2  # the learning rate changes before the third step
            for entry, g in zip(entries, grads):
                entry["grad"][...] = g
            opt.step()
        finals.append([e["params"] for e in entries])
    true, wrong = finals
    assert all(np.all(np.isfinite(w)) for w in wrong)
    assert not all(np.array_equal(a, b) for a, b in zip(true, wrong))


def hyperparameters_for(pair: str) -> Any:
    return HYPERPARAMETERS[pair]


@pytest.mark.parametrize(("pair", "mutant"), MUTANTS)
def test_mutant_is_caught_with_a_message_that_replays(pair, mutant, teeth):
    name = mutant.__name__
    with pytest.raises(parity.ParityError) as caught:
        run_check(mutant, pair, name, hyperparameters_for(pair))
    assert type(caught.value) is parity.ParityError
    spec = assert_names_the_case(str(caught.value), name)
    # The case in the message fails again when replayed, deterministically, and the true
    # optimizer passes it: the mistake, not the harness, made it fail.
    p = OPTIMIZERS[pair]
    sides = {"buffers": p.buffers, "fused": p.fused, "torch_has_step": p.torch_has_step}
    with pytest.raises(parity.ParityError):
        run_case(spec, mutant, p.theirs, name=name, **sides)
    run_case(spec, p.ours, p.theirs, name=p.name, **sides)
    if mutant is SGDLrInBufferHidden:
        # Invisible at a constant learning rate: only a case with a schedule can show it.
        assert spec.schedule is not None
        assert any({**spec.hyperparameters, **o}["momentum"] != 0 for o in spec.overrides)


# ----- the learning rate folded into the buffer, disguised ------------------------------

HIDDEN_CASE = CaseSpec(
    pair="SGDLrInBufferHidden", dtype="float64",
    hyperparameters={"lr": 0.1, "momentum": 0.9, "dampening": 0.25, "weight_decay": 0.01,
                     "nesterov": False, "maximize": False},
    overrides=[{}, {"momentum": 0.5, "dampening": 0.0, "nesterov": True}, {"lr": 0.03}],
    shapes=[(3, 2), (), (5,)], gradient_kinds=["normal", "mixed", "normal"], steps=20, seed=7,
)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("closed_loop", [False, True], ids=["open-loop", "closed-loop"])
def test_lr_in_buffer_hidden_is_bitwise_torch_order_at_a_constant_lr(dtype, closed_loop):
    from parity.trajectories import build_case, run_numpy

    spec = dataclasses.replace(HIDDEN_CASE, dtype=dtype, closed_loop=closed_loop)
    case = build_case(spec)
    buffers = OPTIMIZERS["SGD"].buffers
    mutant = run_numpy(case, SGDLrInBufferHidden, dtype, buffers)
    true = run_numpy(case, numpy_optim.SGD, dtype, buffers)
    assert sorted(mutant) == sorted(true)
    for key in true:
        np.testing.assert_array_equal(mutant[key], true[key], err_msg=key, strict=True)
    # ... so the harness must pass it on this case (parameters and buffers alike).
    p = OPTIMIZERS["SGD"]
    run_case(spec, SGDLrInBufferHidden, p.theirs, name=spec.pair, buffers=p.buffers, fused=p.fused,
             torch_has_step=p.torch_has_step)


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "StepDecayScheduler", "kwargs": {"initial_lr": 0.1, "decay_factor": 0.5, "step_size": 5}},
        {"name": "CosineScheduler", "kwargs": {"max_lr": 0.1, "min_lr": 0.01, "total_steps": 20}},
    ],
    ids=["step-decay", "cosine"],
)
def test_lr_in_buffer_hidden_is_caught_once_the_lr_changes(schedule):
    spec = dataclasses.replace(HIDDEN_CASE, schedule=schedule)
    p = OPTIMIZERS["SGD"]
    with pytest.raises(parity.ParityError) as caught:
        run_case(spec, SGDLrInBufferHidden, p.theirs, name=spec.pair, buffers=p.buffers, fused=p.fused,
                 torch_has_step=p.torch_has_step)
    step = int(re.search(r"after step (\d+)", str(caught.value)).group(1))
    # Step t uses get_lr(t - 1): the first step with a new rate is the first one that can differ.
    ours = getattr(numpy_optim, schedule["name"])(**schedule["kwargs"])
    first_change = next(t for t in range(1, spec.steps) if ours.get_lr(t) != ours.get_lr(t - 1)) + 1
    assert step == first_change, str(caught.value)


# ----- positive controls --------------------------------------------------------------


@pytest.mark.parametrize("pair", sorted(OPTIMIZERS))
def test_true_optimizer_passes_the_same_check(pair, same_cases, monkeypatch):
    """The true optimizer passes the check that caught its mutants. LBFGS runs with torch's
    dot, 0-d sqrt and sum swapped in (test_lbfgs_torch.py's patch): torch's are MKL's, whose
    last bits a closed-loop LBFGS case can amplify past the tolerance model (its known gap,
    which ``nox -s parity`` reports on the unpatched LBFGS); a mutant is still caught through
    the rest of the arithmetic, and this control must pass it."""
    if pair == "LBFGS":
        from test_lbfgs_torch import patch_torch_primitives  # (tests/parity, on the path as the test modules are)

        patch_torch_primitives(monkeypatch)
    p = OPTIMIZERS[pair]
    stats = run_check(p.ours, pair, p.name, hyperparameters_for(pair))
    cases = {dtype: stats.sides[(pair, dtype, "default")].cases for dtype in ("float32", "float64")}
    assert sum(cases.values()) >= MAX_EXAMPLES, cases


class HandWrittenSGD:
    """SGD with momentum written from scratch to the numpy_optim interface (no numpy_optim code).

    ``entries`` are ``{"params": ndarray, "grad": ndarray, <overrides>}`` dicts, updated in
    place; ``state[i]["momentum_buffer"]`` as numpy_optim keeps it. Defaults are torch's.
    """

    def __init__(self, entries: list[dict[str, Any]], lr: float = 1e-3, momentum: float = 0.0) -> None:
        self.param_groups, self.defaults, self.state = entries, {"lr": lr, "momentum": momentum}, {}

    def step(self) -> None:
        for i, entry in enumerate(self.param_groups):
            hyper = {**self.defaults, **{k: v for k, v in entry.items() if k in self.defaults}}
            direction = entry["grad"]
            if hyper["momentum"] != 0:
                if i in self.state:                     # b = mu b + g
                    direction = self.state[i]["momentum_buffer"]
                    direction *= hyper["momentum"]
                    direction += entry["grad"]
                else:                                   # b_1 = g_1
                    direction = self.state.setdefault(i, {})["momentum_buffer"] = entry["grad"].copy()
            entry["params"] += -hyper["lr"] * direction


def test_hand_written_sgd_passes_check_at_torchs_default_lr(same_cases):
    # Only "momentum" is drawn, so both sides run at their default lr (1e-3), and the
    # strategies draw no schedule (they schedule only a drawn, non-zero "lr").
    stats = parity.check(
        HandWrittenSGD, torch.optim.SGD, name="HandWrittenSGD",
        hyperparameters=st.fixed_dictionaries({"momentum": st.one_of(st.just(0.0), st.floats(0.0, 0.99))}),
        buffers=("momentum_buffer",), fused=True, torch_has_step=False,
        max_examples=MAX_EXAMPLES, max_steps=MAX_STEPS,
    )
    assert sum(s.cases for s in stats.sides.values()) >= MAX_EXAMPLES


def test_hand_written_sgd_passes_check_with_drawn_lr(same_cases):
    # A drawn lr but no schedules: check() applies schedules through numpy_optim's schedulers,
    # which only drive numpy_optim optimizers, so for this class it draws none.
    stats = parity.check(
        HandWrittenSGD, torch.optim.SGD, name="HandWrittenSGD",
        hyperparameters=st.fixed_dictionaries({
            "lr": st.one_of(st.just(0.0), st.floats(-5, 0).map(lambda e: 10.0**e)),
            "momentum": st.one_of(st.just(0.0), st.floats(0.0, 0.99)),
        }),
        buffers=("momentum_buffer",), fused=True, torch_has_step=False,
        max_examples=MAX_EXAMPLES, max_steps=MAX_STEPS,
    )
    assert sum(s.cases for s in stats.sides.values()) >= MAX_EXAMPLES
