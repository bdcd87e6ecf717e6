r"""Bitwise parity of gradient clipping, weight averaging and SWALR with torch.

Pairs (:data:`PAIRS`, name -> the function that runs one case on both sides):

* ``clip_grad_norm_`` -- ``numpy_optim.clip_grad.clip_grad_norm_`` vs
  ``torch.nn.utils.clip_grad_norm_``: the total norm (bytes and dtype) and every clipped
  gradient; torch's RuntimeError (``error_if_nonfinite``) must come with the same message.
* ``clip_grad_value_`` -- every clamped gradient.
* ``AveragedModel`` (the default SWA average), ``AveragedModel+ema_multi_avg_fn``,
  ``AveragedModel+ema_avg_fn``, ``AveragedModel+swa_multi_avg_fn`` -- every averaged array
  after every update.
* ``SWALR`` -- every entry's lr after construction and after every step (``float.hex``), an
  SGD with 1-3 entries (some with their own lr), optionally resumed through the state dicts
  of a fresh optimizer and scheduler.

A case is a JSON-able dict drawn by Hypothesis (:data:`CASES`): a seed from which the
arrays are made (so the JSON replays it exactly), their dtypes (float32, float64, float16,
or a mix), shapes (0-d, sizes 0..70 for torch's 8/4-lane body and scalar tail, and now and
then 1000..100003), scales from 1e-30 to 1e30 (float16: 1e-4..1e4), NaN / inf / zero
elements, norm types (2, 1, 0, ±inf, others), ``max_norm``, clip values, the number of
updates and the EMA decay. Values are compared with their bytes; for ``clip_grad_norm_``
NaN payloads are not compared (where a NaN gradient element meets a NaN coefficient of
another payload, torch keeps one or the other by the element's place in its vector loop;
numpy_optim/clip_grad.py's docstring).

:func:`check` runs a pair's property with the loaded Hypothesis profile and records
``stats.sides[(name, dtype, "bitwise")]`` (dtype "mixed" for mixed-dtype cases, "float64"
for SWALR's Python floats); :func:`run_case` runs one case; :func:`replay` reruns one from
its JSON (``python -m parity --replay-function NAME '<json>'``), checked first by
:func:`parse_case` (exactly the keys :data:`CASES` draws, bounded sizes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from numpy_optim import SGD, clip_grad, swa_utils

from .harness import (
    MAX_ITEMS,
    MAX_SEED,
    MAX_STEPS,
    MAX_WORK,
    ParityError,
    SideStats,
    Stats,
    check_bool,
    check_budget,
    check_int,
    check_keys,
    check_list,
    check_name,
    check_number,
    check_shapes,
    load_json,
)
from .profiles import for_trajectories, seeded

DTYPE_MODES = ("float32", "float64", "mixed", "float16")
_MIXED = ("float32", "float64", "float16")

# --------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------


class Outcome:
    """What one case compared: counts, the largest difference, the first differences."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.steps = 0
        self.compared = 0
        self.differing = 0
        self.worst_error = 0.0
        self.differences: list[str] = []

    def _differ(self, count: int, error: float, text: str) -> None:
        self.differing += count
        self.worst_error = max(self.worst_error, error)
        if len(self.differences) < 12:
            self.differences.append(text)

    def arrays(self, label: str, ours: np.ndarray, theirs: np.ndarray, *, nan_payloads: bool = True) -> None:
        """Compare two arrays element by element, to the bit (NaN payloads too unless told)."""
        ours, theirs = np.asarray(ours), np.asarray(theirs)
        self.compared += max(theirs.size, 1)
        if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
            self._differ(max(theirs.size, 1), math.inf, f"{label}: ours {ours.dtype}{list(ours.shape)}, "
                                                        f"torch {theirs.dtype}{list(theirs.shape)}")
            return
        if theirs.size == 0:
            return
        a, b = ours.reshape(-1), theirs.reshape(-1)
        same = (a.view(np.uint8).reshape(a.size, -1) == b.view(np.uint8).reshape(b.size, -1)).all(axis=1)
        if not nan_payloads:
            same |= np.isnan(a) & np.isnan(b)
        if same.all():
            return
        bad = np.flatnonzero(~same)
        with np.errstate(all="ignore"):
            errors = np.abs(a[bad].astype(np.float64) - b[bad].astype(np.float64))
        errors[np.isnan(errors)] = math.inf
        errors[errors == 0] = math.ldexp(1.0, -1074)       # equal values, other bits (a zero's sign)
        i = bad[0]
        self._differ(bad.size, float(errors.max()),
                     f"{label}: {bad.size} of {a.size} differ; first at flat index {i}: ours {a[i]!r} "
                     f"({a[i:i + 1].tobytes().hex()}), torch {b[i]!r} ({b[i:i + 1].tobytes().hex()})")

    def floats(self, label: str, ours: list[float], theirs: list[float]) -> None:
        """Compare lists of Python floats with ``float.hex``."""
        self.compared += max(len(theirs), 1)
        if len(ours) != len(theirs):
            self._differ(max(len(theirs), 1), math.inf, f"{label}: ours {ours!r}, torch {theirs!r}")
            return
        for j, (x, y) in enumerate(zip(ours, theirs)):
            if float(x).hex() != float(y).hex() or type(x) is not type(y):
                error = abs(float(x) - float(y))
                self._differ(1, math.inf if math.isnan(error) else error,
                             f"{label}[{j}]: ours {x!r} ({float(x).hex()}), torch {y!r} ({float(y).hex()})")

    def errors(self, label: str, ours: BaseException | None, theirs: BaseException | None) -> None:
        """Both sides must raise the same exception type and message, or neither."""
        self.compared += 1
        describe = [None if e is None else f"{type(e).__name__}: {e}" for e in (ours, theirs)]
        if describe[0] != describe[1]:
            self._differ(1, math.inf, f"{label}: ours {describe[0]}, torch {describe[1]}")


# --------------------------------------------------------------------------------------
# Making the arrays of a case
# --------------------------------------------------------------------------------------


def _dtype_label(dtypes: list[str]) -> str:
    return dtypes[0] if len(set(dtypes)) == 1 else "mixed"


def make_arrays(case: dict[str, Any]) -> list[np.ndarray]:
    """The case's arrays: normal values times ``10**scale``, specials put in place, from its seed."""
    rng = np.random.default_rng(case["seed"])
    arrays = []
    for shape, dtype, scale in zip(case["shapes"], case["dtypes"], case["scales"]):
        with np.errstate(over="ignore"):
            arrays.append(np.asarray(rng.standard_normal(tuple(shape)) * 10.0**scale).astype(dtype))
    for index, kind in case.get("specials", []):
        a = arrays[index]
        if a.size:
            a.flat[int(rng.integers(0, a.size))] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf,
                                                    "zero": 0.0, "-zero": -0.0}[kind]
    return arrays


def _torch_params(grads: list[np.ndarray]) -> list[torch.Tensor]:
    params = []
    for g in grads:
        p = torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
        p.grad = torch.from_numpy(g.copy())
        params.append(p)
    return params


# --------------------------------------------------------------------------------------
# The pairs
# --------------------------------------------------------------------------------------


def run_clip_grad_norm(case: dict[str, Any]) -> Outcome:
    """``clip_grad_norm_`` on both sides: the total and every gradient."""
    grads = make_arrays(case)
    params = _torch_params(grads)
    out = Outcome(_dtype_label(case["dtypes"]))
    out.steps = 1
    args = (case["max_norm"], case["norm_type"], case["error_if_nonfinite"])
    theirs = ours = None
    torch_error = ours_error = None
    try:
        theirs = torch.nn.utils.clip_grad_norm_(params, *args)
    except RuntimeError as error:
        torch_error = error
    try:
        ours = clip_grad.clip_grad_norm_(grads, *args, threads=torch.get_num_threads())
    except RuntimeError as error:
        ours_error = error
    out.errors("error_if_nonfinite", ours_error, torch_error)
    if theirs is not None and ours is not None:
        out.arrays("total norm", ours, theirs.numpy(), nan_payloads=False)
    for i, (g, p) in enumerate(zip(grads, params)):
        out.arrays(f"grads[{i}]", g, p.grad.numpy(), nan_payloads=False)
    return out


def run_clip_grad_value(case: dict[str, Any]) -> Outcome:
    """``clip_grad_value_`` on both sides: every gradient."""
    grads = make_arrays(case)
    params = _torch_params(grads)
    out = Outcome(_dtype_label(case["dtypes"]))
    out.steps = 1
    torch.nn.utils.clip_grad_value_(params, case["clip_value"])
    clip_grad.clip_grad_value_(grads, case["clip_value"])
    for i, (g, p) in enumerate(zip(grads, params)):
        out.arrays(f"grads[{i}]", g, p.grad.numpy())
    return out


class _TorchModel(torch.nn.Module):
    def __init__(self, arrays: list[np.ndarray]) -> None:
        super().__init__()
        self.ps = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays])


def _averaging(kind: str, decay: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """torch's and numpy_optim's AveragedModel keyword arguments for one kind."""
    if kind == "swa":
        return {}, {}
    key, maker = {"ema_multi": ("multi_avg_fn", "get_ema_multi_avg_fn"), "ema_avg": ("avg_fn", "get_ema_avg_fn"),
                  "swa_multi": ("multi_avg_fn", "get_swa_multi_avg_fn")}[kind]
    args = (decay,) if kind.startswith("ema") else ()
    return ({key: getattr(torch.optim.swa_utils, maker)(*args)},
            {key: getattr(swa_utils, maker)(*args)})


def _run_averaged_model(kind: str, case: dict[str, Any]) -> Outcome:
    """``AveragedModel`` on both sides over ``case["updates"]`` random models."""
    arrays = make_arrays(case)
    theirs_kwargs, ours_kwargs = _averaging(kind, case.get("decay", 0.999))
    model = _TorchModel(arrays)
    theirs = torch.optim.swa_utils.AveragedModel(model, **theirs_kwargs)
    current = [a.copy() for a in arrays]
    ours = swa_utils.AveragedModel(current, **ours_kwargs)
    rng = np.random.default_rng(case["seed"] + 1)
    out = Outcome(_dtype_label(case["dtypes"]))
    for update in range(case["updates"]):
        for c, scale in zip(current, case["scales"]):
            scale = scale + float(rng.uniform(-1, 1))
            with np.errstate(over="ignore"):
                c[...] = np.asarray(rng.standard_normal(c.shape) * 10.0**scale).astype(c.dtype)
        with torch.no_grad():
            for p, c in zip(model.ps, current):
                p.copy_(torch.from_numpy(c))
        theirs.update_parameters(model)
        ours.update_parameters(current)
        out.steps += 1
        for i, (p, a) in enumerate(zip(theirs.module.ps, ours.params)):
            out.arrays(f"update {update}: params[{i}]", a, p.detach().numpy())
    return out


def _sgd_pair(case: dict[str, Any]) -> tuple[torch.optim.SGD, SGD]:
    tensors = [torch.zeros(2, requires_grad=True) for _ in case["lrs"]]
    groups = [{"params": [t]} if lr is None else {"params": [t], "lr": lr} for t, lr in zip(tensors, case["lrs"])]
    entries = [{"params": np.zeros(2, np.float32), "grad": np.zeros(2, np.float32)} for _ in case["lrs"]]
    for e, lr in zip(entries, case["lrs"]):
        if lr is not None:
            e["lr"] = lr
    return (torch.optim.SGD(groups, lr=case["default_lr"], momentum=0.9),
            SGD(entries, lr=case["default_lr"], momentum=0.9))


def run_swalr(case: dict[str, Any]) -> Outcome:
    """``SWALR`` on both sides: every lr after construction and every step (resume optional)."""
    theirs_opt, ours_opt = _sgd_pair(case)
    kwargs = dict(swa_lr=case["swa_lr"], anneal_epochs=case["anneal_epochs"], anneal_strategy=case["strategy"])
    theirs = torch.optim.swa_utils.SWALR(theirs_opt, **kwargs)
    ours = swa_utils.SWALR(ours_opt, **kwargs)
    out = Outcome("float64")
    out.floats("construction: get_last_lr()", ours.get_last_lr(), theirs.get_last_lr())
    for t in range(1, case["steps"] + 1):
        if case.get("resume_at") == t - 1:               # a fresh optimizer and scheduler, loaded
            saved_opt, saved = ours_opt.state_dict(), ours.state_dict()
            _, ours_opt = _sgd_pair(case)
            ours = swa_utils.SWALR(ours_opt, **kwargs)
            ours_opt.load_state_dict(saved_opt)
            ours.load_state_dict(saved)
        theirs_opt.step()
        ours_opt.step()
        theirs.step()
        ours.step()
        out.steps += 1
        out.floats(f"step {t}: get_last_lr()", ours.get_last_lr(), theirs.get_last_lr())
        out.floats(f"step {t}: entry lrs", [e["lr"] for e in ours_opt.param_groups],
                   [g["lr"] for g in theirs_opt.param_groups])
    return out


PAIRS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "clip_grad_norm_": run_clip_grad_norm,
    "clip_grad_value_": run_clip_grad_value,
    "AveragedModel": lambda case: _run_averaged_model("swa", case),
    "AveragedModel+ema_multi_avg_fn": lambda case: _run_averaged_model("ema_multi", case),
    "AveragedModel+ema_avg_fn": lambda case: _run_averaged_model("ema_avg", case),
    "AveragedModel+swa_multi_avg_fn": lambda case: _run_averaged_model("swa_multi", case),
    "SWALR": run_swalr,
}

# --------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------

_SIZES = st.one_of(st.integers(0, 70), st.integers(0, 70), st.integers(0, 70), st.integers(0, 9))
_LARGE = st.sampled_from([1000, 4099, 40001, 100003])


@st.composite
def array_specs(draw: st.DrawFn, max_arrays: int = 5, nonempty: bool = False) -> dict[str, Any]:
    """Seed, dtypes, shapes and scales of 1..``max_arrays`` arrays."""
    count = draw(st.integers(1, max_arrays), label="arrays")
    mode = draw(st.sampled_from(DTYPE_MODES), label="dtype mode")
    dtypes = [draw(st.sampled_from(_MIXED), label="dtype") if mode == "mixed" else mode for _ in range(count)]
    shapes = []
    for _ in range(count):
        kind = draw(st.integers(0, 19), label="shape kind")
        if kind == 0:
            shape: list[int] = []                                        # 0-d
        elif kind == 1:
            shape = [draw(_LARGE, label="large size")]
        elif kind <= 4:
            shape = [draw(st.integers(1, 9), label="rows"), draw(st.integers(0, 12), label="columns")]
        else:
            shape = [draw(_SIZES, label="size")]
        if nonempty:
            shape = [max(1, n) for n in shape]
        shapes.append(shape)
    scales = [draw(st.sampled_from([-4, -2, 0, 0, 2, 4]) if d == "float16"
                   else st.sampled_from([-30, -20, -8, -3, 0, 0, 3, 8, 20, 30]), label="scale exponent")
              for d in dtypes]
    return {"seed": draw(st.integers(0, 2**32 - 1), label="seed"), "dtypes": dtypes, "shapes": shapes,
            "scales": scales}


def _specials(draw: st.DrawFn, count: int, kinds: tuple[str, ...]) -> list[list[Any]]:
    if draw(st.integers(0, 3), label="with specials") != 0:
        return []
    return draw(st.lists(st.tuples(st.integers(0, count - 1), st.sampled_from(kinds)).map(list),
                         min_size=1, max_size=3), label="specials")


_NORM_TYPES = st.one_of(st.sampled_from([2.0, 2.0, 1.0, 0.0, math.inf, -math.inf, 3.0, 0.5, -1.0]),
                        st.floats(0.25, 8.0))


@st.composite
def clip_norm_cases(draw: st.DrawFn) -> dict[str, Any]:
    norm_type = draw(_NORM_TYPES, label="norm_type")
    # torch (and numpy_optim) refuse an empty gradient for negative orders and inf
    case = draw(array_specs(nonempty=norm_type < 0 or norm_type == math.inf), label="arrays")
    case["specials"] = _specials(draw, len(case["dtypes"]), ("nan", "inf", "-inf", "zero", "-zero"))
    case["norm_type"] = norm_type
    case["max_norm"] = draw(st.one_of(st.sampled_from([0.0, 1.0, math.inf]),
                                      st.floats(-6, 6).map(lambda e: 10.0**e)), label="max_norm")
    case["error_if_nonfinite"] = draw(st.booleans(), label="error_if_nonfinite")
    return case


@st.composite
def clip_value_cases(draw: st.DrawFn) -> dict[str, Any]:
    case = draw(array_specs(), label="arrays")
    case["specials"] = _specials(draw, len(case["dtypes"]), ("nan", "inf", "-inf", "zero", "-zero"))
    limit = 65504.0 if "float16" in case["dtypes"] else 1e30        # torch refuses more for float16
    case["clip_value"] = draw(st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, 1e-45]),
                                        st.floats(-limit, limit)), label="clip_value")
    return case


@st.composite
def averaging_cases(draw: st.DrawFn, ema: bool) -> dict[str, Any]:
    case = draw(array_specs(max_arrays=4), label="arrays")
    # finite sequences: no scale near the dtype's overflow (each update varies it by 10**±1)
    case["scales"] = [max(-20, min(3 if d == "float16" else 20, s)) for s, d in zip(case["scales"], case["dtypes"])]
    case["updates"] = draw(st.one_of(st.integers(1, 10), st.integers(50, 80)), label="updates")
    if ema:  # decay 0 is a documented quirk (zero signs in torch's tail), not drawn
        case["decay"] = draw(st.one_of(st.sampled_from([0.5, 0.9, 0.99, 0.999, 0.9999, 1.0]),
                                       st.floats(0.001, 0.999)), label="decay")
    return case


@st.composite
def swalr_cases(draw: st.DrawFn) -> dict[str, Any]:
    entries = draw(st.integers(1, 3), label="entries")
    lr = st.floats(-4, 0).map(lambda e: 10.0**e)
    lrs = [draw(st.one_of(st.none(), lr), label="entry lr") for _ in range(entries)]
    swa_lr: Any = draw(st.one_of(lr, st.lists(lr, min_size=entries, max_size=entries)), label="swa_lr")
    steps = draw(st.integers(1, 40), label="steps")
    return {
        "default_lr": draw(lr, label="default lr"),
        "lrs": lrs,
        "swa_lr": swa_lr,
        "anneal_epochs": draw(st.one_of(st.sampled_from([0, 1, 3, 10]), st.integers(0, 25)), label="anneal_epochs"),
        "strategy": draw(st.sampled_from(["cos", "linear"]), label="anneal_strategy"),
        "steps": steps,
        "resume_at": draw(st.one_of(st.none(), st.integers(0, steps - 1)), label="resume at"),
    }


CASES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "clip_grad_norm_": clip_norm_cases(),
    "clip_grad_value_": clip_value_cases(),
    "AveragedModel": averaging_cases(ema=False),
    "AveragedModel+ema_multi_avg_fn": averaging_cases(ema=True),
    "AveragedModel+ema_avg_fn": averaging_cases(ema=True),
    "AveragedModel+swa_multi_avg_fn": averaging_cases(ema=False),
    "SWALR": swalr_cases(),
}

# --------------------------------------------------------------------------------------
# Running and recording
# --------------------------------------------------------------------------------------


def _record(stats: Stats, name: str, outcome: Outcome, case: dict[str, Any]) -> None:
    side = stats.sides.setdefault((name, outcome.dtype, "bitwise"), SideStats(bitwise=True))
    side.bitwise = True
    side.cases += 1
    side.steps += outcome.steps
    side.compared += outcome.compared
    side.differing += outcome.differing
    if outcome.worst_error > side.worst_error or not side.worst_case:
        side.worst_case = dict(case, pair=name)
    side.worst_error = max(side.worst_error, outcome.worst_error)


def _failure(name: str, outcome: Outcome, case: dict[str, Any]) -> str:
    blob = json.dumps(case)
    shown = "\n  ".join(outcome.differences)
    return (f"Parity failure: {name} vs torch ({outcome.dtype}): {outcome.differing} of {outcome.compared} "
            f"values differ, largest difference {outcome.worst_error:.3g}\n  {shown}\n  case: {blob}\n"
            f"  reproduce: python -m parity --replay-function {name} '{blob}'")


def run_case(name: str, case: dict[str, Any], *, stats: Stats | None = None,
             raise_on_difference: bool = True) -> Outcome:
    """Run one case of pair ``name``; record it in ``stats``; raise ParityError on a difference."""
    if name not in PAIRS:
        raise ValueError(f"Unknown function pair: {name!r}; expected one of {sorted(PAIRS)}")
    outcome = PAIRS[name](case)
    if stats is not None:
        _record(stats, name, outcome, case)
    if outcome.differing and raise_on_difference:
        raise ParityError(_failure(name, outcome, case))
    return outcome


def check(name: str, stats: Stats | None = None, max_examples: int | None = None,
          seed: int | None = None) -> Stats:
    """Property-test pair ``name`` (a :data:`PAIRS` key) against torch, bit for bit.

    Runs Hypothesis with the loaded profile's ``settings()`` (``max_examples`` overrides it;
    no deadline: :func:`parity.profiles.for_trajectories`; ``seed``: :func:`parity.profiles.seeded`)
    on :data:`CASES` ``[name]`` and records ``stats.sides[(name, dtype, "bitwise")]``.

    Raises
    ------
    ParityError
        On any differing value, with the differences, the case as JSON and a replay command.
    """
    if name not in PAIRS:
        raise ValueError(f"Unknown function pair: {name!r}; expected one of {sorted(PAIRS)}")
    stats = stats if stats is not None else Stats()

    @for_trajectories(max_examples)
    @seeded(name, seed)
    @given(case=CASES[name])
    def property_(case: dict[str, Any]) -> None:
        run_case(name, case, stats=stats)

    property_()
    return stats


# --------------------------------------------------------------------------------------
# Replaying: a case from its JSON, every field checked first
# --------------------------------------------------------------------------------------

_ARRAYS = ("seed", "dtypes", "shapes", "scales")
#: Every key :data:`CASES` draws, per pair: a case's only keys.
KEYS: dict[str, tuple[str, ...]] = {
    "clip_grad_norm_": (*_ARRAYS, "specials", "norm_type", "max_norm", "error_if_nonfinite"),
    "clip_grad_value_": (*_ARRAYS, "specials", "clip_value"),
    "AveragedModel": (*_ARRAYS, "updates"),
    "AveragedModel+ema_multi_avg_fn": (*_ARRAYS, "updates", "decay"),
    "AveragedModel+ema_avg_fn": (*_ARRAYS, "updates", "decay"),
    "AveragedModel+swa_multi_avg_fn": (*_ARRAYS, "updates"),
    "SWALR": ("default_lr", "lrs", "swa_lr", "anneal_epochs", "strategy", "steps", "resume_at"),
}
#: :func:`make_arrays` scales by ``10.0 ** scale``, a Python float: 10**308 is the largest.
MAX_SCALE = 300
SPECIALS = ("nan", "inf", "-inf", "zero", "-zero")


def check_case(name: Any, case: Any) -> None:
    """Check a case of pair ``name`` as :data:`CASES` draws it: exactly its keys (:data:`KEYS`),
    dtypes from ``float32``, ``float64``, ``float16``, special kinds and the anneal strategy
    from their lists, one dtype and scale per shape, sizes and counts within
    ``parity.harness``'s bounds (shapes, elements, updates x elements, steps), scales in
    ``[-MAX_SCALE, MAX_SCALE]``, ints as ints, bools as bools, finite numbers (the norm
    order, ``max_norm`` and the clip value may be infinite or NaN).

    Raises
    ------
    TypeError, ValueError
        Naming the field (``case['shapes'][0][1]``, ...) and its value.
    """
    check_name("PAIR", name, PAIRS)
    check_keys("case", case, KEYS[name])
    if name == "SWALR":
        steps = check_int("case['steps']", case["steps"], 1, MAX_STEPS)
        check_number("case['default_lr']", case["default_lr"])
        n = len(check_list("case['lrs']", case["lrs"], 1, MAX_ITEMS))
        for i, lr in enumerate(case["lrs"]):
            if lr is not None:
                check_number(f"case['lrs'][{i}]", lr)
        swa_lr = case["swa_lr"]
        for i, lr in enumerate(check_list("case['swa_lr']", swa_lr, n, n) if type(swa_lr) is list else [swa_lr]):
            check_number("case['swa_lr']" + (f"[{i}]" if type(swa_lr) is list else ""), lr)
        check_int("case['anneal_epochs']", case["anneal_epochs"], 0, MAX_STEPS)
        check_name("case['strategy']", case["strategy"], ("cos", "linear"))
        if case["resume_at"] is not None:
            check_int("case['resume_at']", case["resume_at"], 0, steps - 1)
        return
    check_int("case['seed']", case["seed"], 0, MAX_SEED - 1)  # averaging also seeds with seed + 1
    elements = check_shapes("case['shapes']", case["shapes"])
    n = len(case["shapes"])
    for i, dtype in enumerate(check_list("case['dtypes']", case["dtypes"], n, n)):
        check_name(f"case['dtypes'][{i}]", dtype, _MIXED)
    for i, scale in enumerate(check_list("case['scales']", case["scales"], n, n)):
        check_number(f"case['scales'][{i}]", scale, -MAX_SCALE, MAX_SCALE)
    if "specials" in case:
        for i, special in enumerate(check_list("case['specials']", case["specials"], 0, MAX_ITEMS)):
            check_list(f"case['specials'][{i}]", special, 2, 2)
            check_int(f"case['specials'][{i}][0]", special[0], 0, n - 1)
            check_name(f"case['specials'][{i}][1]", special[1], SPECIALS)
    for key in ("norm_type", "max_norm", "clip_value"):
        if key in case:
            check_number(f"case[{key!r}]", case[key], nonfinite=True)
    if "error_if_nonfinite" in case:
        check_bool("case['error_if_nonfinite']", case["error_if_nonfinite"])
    if "updates" in case:
        updates = check_int("case['updates']", case["updates"], 1, MAX_STEPS)
        check_budget("case", "updates x elements", updates * elements, MAX_WORK)
    if "decay" in case:
        check_number("case['decay']", case["decay"])


def parse_case(name: Any, json_string: Any) -> dict[str, Any]:
    """The case of ``python -m parity --replay-function NAME '<json>'``, checked (:func:`check_case`)."""
    case = load_json(json_string, "case")
    check_case(name, case)
    return case


def replay(name: str, json_string: str) -> SideStats:
    """Rerun one case from its JSON (``python -m parity --replay-function NAME '<json>'``),
    checked first (:func:`parse_case`: TypeError or ValueError); print every difference and
    return the case's statistics."""
    stats = Stats()
    outcome = run_case(name, parse_case(name, json_string), stats=stats, raise_on_difference=False)
    for line in outcome.differences:
        print(line)
    return stats.sides[(name, outcome.dtype, "bitwise")]
