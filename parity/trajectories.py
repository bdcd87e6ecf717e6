"""Run both sides of a parity case on the same inputs and record everything, every step.

* Open loop: one recorded gradient sequence (made from the case's seed) is fed to both
  sides, so any difference comes from the optimizers alone.
* Closed loop: each side computes its gradients from its own parameters on a test
  problem (a separable quadratic ``f(x) = sum(c * (x - target)**2) / 2`` per entry, with
  curvatures ``c`` in [0.1, 1]), so differences feed back as they would in training.
* Closure optimizers (LBFGS): always closed loop; each recorded step is one
  ``step(closure)``, and the closure, the same NumPy code on both sides
  (:func:`closed_loop_loss`, :func:`closed_loop_gradient`), computes the loss and the
  gradients from that side's own parameters as often as the optimizer calls it.

A :class:`Trajectory` maps names such as ``"params[0]"``, ``"exp_avg[2]"`` and
``"step[1]"`` to an array stacked over steps (row ``t`` is the value after step ``t + 1``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import numpy_optim

from .strategies import CaseSpec

Trajectory = dict[str, np.ndarray]

_KIND_SCALE = {"normal": 1.0, "zeros": 0.0, "tiny": 1e-10, "large": 1e6}
#: float16 (largest 65504, smallest subnormal 6e-8) would turn "large" into inf and "tiny"
#: into 0: its gradients are scaled within its range instead (bfloat16 has float32's range).
_FLOAT16_SCALE = {"tiny": 1e-5, "large": 1e2}
_FLOAT16_MIXED = [-6, -3, 0, 2, 4]


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype named ``name``: float16, float32, float64, or ``"bfloat16"``, which is
    ml_dtypes' (imported only then)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def to_torch(a: np.ndarray) -> torch.Tensor:
    """A copy of ``a`` as a torch tensor of the same dtype and bits (bfloat16 through its
    uint16 bit patterns: torch.from_numpy knows no ml_dtypes)."""
    a = np.array(a, copy=True)
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A copy of tensor ``t`` as a NumPy array of the same dtype and bits (bfloat16: an
    ml_dtypes.bfloat16 array, through the uint16 bit patterns)."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy().view(numpy_dtype("bfloat16")).copy()
    return t.numpy().copy()


@dataclass
class Case:
    """A :class:`CaseSpec` made concrete: float64 starting values, gradients or a problem."""

    spec: CaseSpec
    x0: list[np.ndarray]                       # float64; exactly representable in spec.dtype
    gradients: list[list[np.ndarray]] | None   # open loop: [step][entry], float64 values
    curvature: list[np.ndarray]                # closed loop: the quadratic's c per entry
    target: list[np.ndarray]                   # closed loop: the quadratic's minimizer per entry


def _gradient(rng: np.random.Generator, kind: str, shape: tuple[int, ...], dtype: str = "float64") -> np.ndarray:
    values = rng.standard_normal(shape)
    if kind == "mixed":
        return values * 10.0 ** rng.choice(_FLOAT16_MIXED if dtype == "float16" else [-10, -3, 0, 3, 6], size=shape)
    if kind == "sparse":
        return values * (rng.random(shape) < 0.2)
    return values * (_FLOAT16_SCALE if dtype == "float16" else _KIND_SCALE).get(kind, _KIND_SCALE[kind])


def build_case(spec: CaseSpec) -> Case:
    """Make the arrays of a case from its spec (deterministic in ``spec.seed``)."""
    rng = np.random.default_rng(spec.seed)
    dtype = numpy_dtype(spec.dtype)

    def representable(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=dtype).astype(np.float64)

    x0 = [representable(spec.init_scale * rng.standard_normal(s)) for s in spec.shapes]
    curvature = [rng.uniform(0.1, 1.0, size=s) for s in spec.shapes]
    target = [rng.standard_normal(s) for s in spec.shapes]
    gradients = None
    if not spec.closed_loop:
        gradients = [
            [representable(_gradient(rng, kind, s, spec.dtype)) for kind, s in zip(spec.gradient_kinds, spec.shapes)]
            for _ in range(spec.steps)
        ]
    return Case(spec, x0, gradients, curvature, target)


def closed_loop_gradient(case: Case, index: int, x: np.ndarray) -> np.ndarray:
    """The quadratic's gradient ``c * (x - target)``, computed in ``x``'s dtype.

    An entry that maximizes gets the gradient of ``-f`` instead, so that it too converges.
    """
    c = case.curvature[index].astype(x.dtype)
    sign = -1 if {**case.spec.hyperparameters, **case.spec.overrides[index]}.get("maximize") else 1
    return sign * c * (x - case.target[index].astype(x.dtype))


def closed_loop_loss(case: Case, xs: list[np.ndarray]) -> float:
    """The quadratic's value ``sum over entries of sum(c * (x - target)**2) / 2``, each
    entry's sum computed in its ``x``'s dtype, added up in Python floats."""
    total = 0.0
    for index, x in enumerate(xs):
        r = x - case.target[index].astype(x.dtype)
        total += float(np.sum(case.curvature[index].astype(x.dtype) * r * r)) / 2
    return total


def make_scheduler(spec: CaseSpec) -> numpy_optim.LRScheduler | None:
    if spec.schedule is None:
        return None
    return getattr(numpy_optim, spec.schedule["name"])(**spec.schedule["kwargs"])


OptimizerFactory = Callable[..., Any]


def run_numpy(case: Case, factory: OptimizerFactory, dtype: str, buffers: tuple[str, ...], *,
              closure: bool = False) -> Trajectory:
    """Run the numpy_optim side (``factory(entries, **hyperparameters)``) in ``dtype``;
    ``closure``: an optimizer whose ``step`` takes a closure (:func:`run_numpy_closure`)."""
    if closure:
        return run_numpy_closure(case, factory, dtype, buffers)
    spec = case.spec
    params = [x.astype(numpy_dtype(dtype)) for x in case.x0]
    entries = [{"params": p, "grad": np.zeros_like(p), **o} for p, o in zip(params, spec.overrides)]
    optimizer = factory(entries, **spec.hyperparameters)
    scheduler = make_scheduler(spec)
    record: dict[str, list[np.ndarray]] = {}
    for t in range(spec.steps):
        if scheduler is not None:
            scheduler.step(optimizer, t)
        for i, entry in enumerate(entries):
            g = case.gradients[t][i] if case.gradients is not None else closed_loop_gradient(case, i, entry["params"])
            entry["grad"][...] = g
        with np.errstate(all="ignore"):  # a diverging case overflows silently, as torch does
            optimizer.step()
        for i, entry in enumerate(entries):
            record.setdefault(f"params[{i}]", []).append(entry["params"].copy())
            state = getattr(optimizer, "state", {})
            for name in buffers:
                if name in state.get(i, {}):
                    record.setdefault(f"{name}[{i}]", []).append(np.array(state[i][name], copy=True))
            if "step" in state:
                record.setdefault(f"step[{i}]", []).append(np.array(float(state["step"])))
    return {name: np.stack(values) for name, values in record.items()}


def run_torch(
    case: Case, torch_class: type, dtype: str, buffers: tuple[str, ...], *, fused: bool = False,
    has_step: bool = True, nudged: int = 0, closure: bool = False,
) -> Trajectory:
    """Run the torch side in ``dtype``: default CPU path, or ``fused=True``.

    ``nudged`` (1 or 2: the probe runs) moves every gradient by one ulp before torch sees
    it, in the pattern of :func:`nudge` (2: every direction the other way round).
    ``closure``: a torch optimizer whose ``step`` takes a closure (:func:`run_torch_closure`).

    A schedule sets each group's lr before each step to exactly the rate the numpy_optim
    side's scheduler gives its entry (the optimizer's, or for an entry with its own lr,
    that lr times the same factor): both sides then step with the same lr bits. (torch's
    LambdaLR would multiply its own initial lr by the factor, one more rounding; the
    schedules themselves are compared with torch's schedulers in their own pairs.)
    """
    if closure:
        return run_torch_closure(case, torch_class, dtype, buffers, has_step=has_step, nudged=nudged)
    spec = case.spec
    params = [to_torch(x.astype(numpy_dtype(dtype))).requires_grad_() for x in case.x0]
    groups = [{"params": [p], **o} for p, o in zip(params, spec.overrides)]
    optimizer = torch_class(groups, **spec.hyperparameters, **({"fused": True} if fused else {}))
    schedule = make_scheduler(spec)
    record: dict[str, list[np.ndarray]] = {}
    for t in range(spec.steps):
        if schedule is not None:
            lr = schedule.get_lr(t)  # numpy_optim/schedulers.py: LRScheduler.step
            factor = lr / schedule.reference_lr if schedule.reference_lr > 0 else 0.0
            for group, overrides in zip(optimizer.param_groups, spec.overrides):
                group["lr"] = overrides["lr"] * factor if "lr" in overrides else lr
        for i, p in enumerate(params):
            if case.gradients is not None:
                g = case.gradients[t][i].astype(numpy_dtype(dtype))
            else:
                g = closed_loop_gradient(case, i, to_numpy(p))
            g = nudge(g, dtype, t + i + nudged) if nudged else g
            p.grad = to_torch(np.asarray(g, dtype=numpy_dtype(dtype)))
        optimizer.step()
        for i, p in enumerate(params):
            record.setdefault(f"params[{i}]", []).append(to_numpy(p))
            state = optimizer.state.get(p, {})
            for name in buffers:
                if name in state and state[name] is not None:
                    record.setdefault(f"{name}[{i}]", []).append(to_numpy(state[name]))
            if has_step:
                record.setdefault(f"step[{i}]", []).append(np.array(float(state["step"])))
    return {name: np.stack(values) for name, values in record.items()}


# ----- closure optimizers ------------------------------------------------------------------


def _check_closure_case(case: Case) -> None:
    spec = case.spec
    if not spec.closed_loop or spec.schedule is not None or any(spec.overrides):
        raise ValueError(
            f"a closure optimizer runs closed loop only, without schedules or per-entry overrides; got "
            f"closed_loop={spec.closed_loop}, schedule={spec.schedule}, overrides={spec.overrides}"
        )


def _recorded(name: str, value: Any) -> np.ndarray:
    """One recorded value as an array: a tensor or array copied, a NumPy or Python number
    as a 0-d array (float64 for Python numbers, its own dtype for a NumPy scalar)."""
    if isinstance(value, torch.Tensor):
        return value.detach().numpy().copy()
    if isinstance(value, (np.ndarray, np.generic)):
        return np.array(value, copy=True)
    if isinstance(value, numbers.Real):
        return np.array(float(value))
    raise TypeError(f"state {name!r} is a {type(value).__name__}; only arrays and numbers are recorded per step")


def _stack(rows: list[dict[str, np.ndarray]]) -> Trajectory:
    """Stack per-step records; a name missing at some step (the state a step had not yet
    made) is recorded there as NaN of its shape, so both sides' rows stay aligned."""
    trajectory = {}
    for name in {name for row in rows for name in row}:
        like = next(row[name] for row in rows if name in row)
        missing = np.full(like.shape, np.nan)
        trajectory[name] = np.stack([row.get(name, missing) for row in rows])
    return trajectory


def _record_state(row: dict[str, np.ndarray], state: Any, index: int, buffers: tuple[str, ...]) -> None:
    for name in buffers:
        if name in state and state[name] is not None:
            row[f"{name}[{index}]"] = _recorded(name, state[name])


def run_numpy_closure(case: Case, factory: OptimizerFactory, dtype: str, buffers: tuple[str, ...]) -> Trajectory:
    """The numpy_optim side of a closure optimizer: ``spec.steps`` calls of ``step(closure)``."""
    _check_closure_case(case)
    spec = case.spec
    params = [x.astype(dtype) for x in case.x0]
    entries = [{"params": p, "grad": np.zeros_like(p)} for p in params]
    optimizer = factory(entries, **spec.hyperparameters)

    def closure() -> float:
        for i, entry in enumerate(entries):
            entry["grad"][...] = closed_loop_gradient(case, i, entry["params"])
        return closed_loop_loss(case, params)

    rows = []
    for _ in range(spec.steps):
        with np.errstate(all="ignore"):  # a diverging case overflows silently, as torch does
            optimizer.step(closure)
        row = {f"params[{i}]": p.copy() for i, p in enumerate(params)}
        state = getattr(optimizer, "state", {})
        for i in range(len(params)):
            _record_state(row, state.get(i, {}), i, buffers)
            if "step" in state:
                row[f"step[{i}]"] = np.array(float(state["step"]))
        rows.append(row)
    return _stack(rows)


def run_torch_closure(
    case: Case, torch_class: type, dtype: str, buffers: tuple[str, ...], *, has_step: bool = False,
    nudged: int = 0,
) -> Trajectory:
    """The torch side of a closure optimizer: every parameter in one group (LBFGS allows
    no other), ``spec.steps`` calls of ``step(closure)``. ``nudged`` (1 or 2): a probe run,
    every gradient and every loss the closure returns moved by one ulp of ``dtype`` (the
    pattern changing with each call; 2: the other way round). The loss matters as much as
    the gradient here: the line search branches on comparisons of losses."""
    _check_closure_case(case)
    spec = case.spec
    tdtype = getattr(torch, dtype)
    params = [torch.tensor(x, dtype=tdtype, requires_grad=True) for x in case.x0]
    optimizer = torch_class(params, **spec.hyperparameters)
    calls = 0

    def closure() -> float:
        nonlocal calls
        calls += 1
        xs = [p.detach().numpy() for p in params]
        for i, (p, x) in enumerate(zip(params, xs)):
            g = closed_loop_gradient(case, i, x)
            g = nudge(g, dtype, calls + i + nudged) if nudged else g
            p.grad = torch.from_numpy(np.array(g, dtype=dtype, copy=True))
        loss = closed_loop_loss(case, xs)
        return float(nudge(np.array(loss), dtype, calls + nudged)) if nudged else loss

    rows = []
    for _ in range(spec.steps):
        with np.errstate(all="ignore"):
            optimizer.step(closure)
        row = {f"params[{i}]": p.detach().numpy().copy() for i, p in enumerate(params)}
        for i, p in enumerate(params):
            state = optimizer.state.get(p, {})
            _record_state(row, state, i, buffers)
            if has_step:
                row[f"step[{i}]"] = np.array(float(state["step"]))
        rows.append(row)
    return _stack(rows)


def nudge(values: np.ndarray, dtype: str, step: int) -> np.ndarray:
    """Move every nonzero element of ``values`` (taken in ``dtype``) by one ulp, up or down
    in a fixed alternating pattern that changes with ``step``; zeros stay zero."""
    x = np.asarray(values, dtype=dtype)
    up = (np.arange(x.size).reshape(x.shape) + step) % 2 == 0
    moved = np.nextafter(x, np.where(up, np.inf, -np.inf).astype(dtype))
    return np.where(x == 0, x, moved)


def perturbed(case: Case, dtype: str, probe: int = 1) -> Case:
    """The same case with every nonzero starting value moved by one ulp of ``dtype``
    (``probe`` 2: every one the other way round).

    Running torch on it, with ``nudged=probe`` so that every gradient is moved by one ulp
    too, probes how strongly the case amplifies rounding differences made at any step
    (see parity/tolerance.py: where torch's run and this probe part, nothing is judged).
    """
    x0 = [nudge(x, dtype, probe - 1).astype(np.float64) for x in case.x0]
    return Case(case.spec, x0, case.gradients, case.curvature, case.target)
