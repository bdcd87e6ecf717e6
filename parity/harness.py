"""Run parity cases, judge them with the tolerance model, collect statistics, explain failures."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

import numpy_optim

from . import tolerance
from .profiles import for_trajectories, seeded
from .registry import FUSED, OPTIMIZERS, SCHEDULERS, torch_learning_rates
from .strategies import DTYPES, GRADIENT_KINDS, HYPERPARAMETERS, PAIRED_KEYS, CaseSpec, case_specs, shapes
from .trajectories import build_case, numpy_dtype, perturbed, run_numpy, run_torch

ALL_BUFFERS = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

# ----- replay input: JSON from the command line, checked before anything runs ------------
#
# Bounds on a replayed case, far above what the strategies draw (in brackets): they stop a
# hand-edited case from running for hours or filling the memory, never a drawn one.

#: Steps of a case, updates of an averaging case, steps of a schedule's horizon [3000].
MAX_STEPS = 10**5
#: Entries, arrays, list items (milestones, specials, epoch calls, ...) [8].
MAX_ITEMS = 1000
#: Dimensions of one shape [3].
MAX_DIMS = 8
#: Elements of a case, summed over its arrays, each counted as at least 1 [500015].
MAX_ELEMENTS = 10**6
#: Optimizer cases: steps x elements, the values each recorded trajectory keeps [172800].
MAX_RECORDED = 10**7
#: steps x elements x closure evaluations per step (LBFGS: max_eval), or updates x elements
#: of an averaging case: the work of a case [3.2e7].
MAX_WORK = 10**8
#: A count a scheduler argument or an epoch may hold: a period, a milestone, ``step(epoch)``'s epoch [6005].
MAX_COUNT = 10 * MAX_STEPS
#: A seed: NumPy's ``default_rng`` takes any int >= 0 [2**32 - 1].
MAX_SEED = 2**64 - 1


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _kind(value: Any) -> str:
    """A JSON value's kind as JSON names it."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a bool", int: "an int", float: "a float"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


def load_json(text: Any, what: str) -> Any:
    """``json.loads(text)``; a ValueError naming ``what`` when ``text`` is not JSON."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a JSON string, got {type(text).__name__}")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, or an int of more than 4300 digits
        raise ValueError(f"{what} is not valid JSON: {error}") from None


def check_keys(where: str, value: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """``value`` as a JSON object holding every ``required`` key and no key outside ``optional``."""
    if type(value) is not dict:
        raise TypeError(f"{where} must be an object, got {_show(value)} ({_kind(value)})")
    known = (*required, *optional)
    unknown = [key for key in value if key not in known]
    if unknown:
        raise ValueError(f"{where} has the unknown key {unknown[0]!r}; known keys: {sorted(known)}")
    missing = [key for key in required if key not in value]
    if missing:
        raise ValueError(f"{where} lacks the key {missing[0]!r}")
    return value


def check_name(where: str, value: Any, allowed: Any) -> str:
    """``value``, a string among ``allowed`` (an allowlist: a registry's or a table's keys)."""
    if type(value) is not str:
        raise TypeError(f"{where} must be a name (a string), got {_show(value)} ({_kind(value)})")
    if value not in allowed:
        raise ValueError(f"{where} = {_show(value)} is not one of {sorted(allowed)}")
    return value


def check_bool(where: str, value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError(f"{where} must be a bool, got {_show(value)} ({_kind(value)})")
    return value


def check_int(where: str, value: Any, low: int, high: int) -> int:
    """``value``, an int (not a bool) in ``[low, high]``."""
    if type(value) is not int:
        raise TypeError(f"{where} must be an int, got {_show(value)} ({_kind(value)})")
    if not low <= value <= high:
        raise ValueError(f"{where} = {_show(value)} is out of range: expected an int in [{low}, {high}]")
    return value


def check_number(where: str, value: Any, low: float = -math.inf, high: float = math.inf,
                 nonfinite: bool = False) -> float:
    """``value``, an int or float (not a bool) in ``[low, high]`` that a float holds; NaN and
    infinities only with ``nonfinite`` (data such as metrics, or norm orders that may be inf)."""
    if type(value) not in (int, float):
        raise TypeError(f"{where} must be a number, got {_show(value)} ({_kind(value)})")
    if nonfinite and type(value) is float and not math.isfinite(value):
        return value
    if not (low <= value <= high and abs(value) <= sys.float_info.max):
        raise ValueError(f"{where} = {_show(value)} is out of range: expected a finite number in [{low}, {high}]")
    return value


def check_list(where: str, value: Any, low: int, high: int) -> list[Any]:
    """``value``, a list of ``low`` to ``high`` items."""
    if type(value) is not list:
        raise TypeError(f"{where} must be a list, got {_show(value)} ({_kind(value)})")
    if not low <= len(value) <= high:
        expected = f"{low}" if low == high else f"{low} to {high}"
        raise ValueError(f"{where} has {len(value)} items, expected {expected}")
    return value


def check_shapes(where: str, value: Any) -> int:
    """``value``, a list of 1 to :data:`MAX_ITEMS` shapes (lists of at most :data:`MAX_DIMS`
    sizes >= 0) of at most :data:`MAX_ELEMENTS` elements in all; return that count (each
    array counted as at least 1: an empty one costs a step too)."""
    total = 0
    for i, shape in enumerate(check_list(where, value, 1, MAX_ITEMS)):
        size = 1
        for j, n in enumerate(check_list(f"{where}[{i}]", shape, 0, MAX_DIMS)):
            size *= check_int(f"{where}[{i}][{j}]", n, 0, MAX_ELEMENTS)
        total += max(size, 1)
        if total > MAX_ELEMENTS:
            raise ValueError(f"{where} has more than {MAX_ELEMENTS} elements (at {where}[{i}] = {shape})")
    return total


def check_budget(where: str, what: str, amount: int, limit: int) -> None:
    if amount > limit:
        raise ValueError(f"{where}: {what} is {amount}, at most {limit}")


def _check_hyperparameters(where: str, value: Any, names: tuple[str, ...] | None) -> None:
    """Names the registry lists for the pair (``names``; None: a user pair, any names);
    values null, bools, finite numbers, pairs of them (``PAIRED_KEYS``) or
    ``line_search_fn``'s one name. Their ranges are the optimizer's to check
    (:func:`parse_case` builds it)."""
    if names is None and type(value) is dict:
        names = tuple(value)
    for key, item in check_keys(where, value, (), names or ()).items():
        at = f"{where}[{key!r}]"
        if key == "line_search_fn":
            if item is not None:
                check_name(at, item, ("strong_wolfe",))
            continue
        items = check_list(at, item, 2, 2) if key in PAIRED_KEYS and type(item) is list else [item]
        for j, x in enumerate(items):
            at_j = at if len(items) == 1 else f"{at}[{j}]"
            if x is not None and type(x) is not bool:
                check_number(at_j, x)


@dataclass(frozen=True)
class PairSpec:
    """What a case runs on: the two optimizers and :func:`run_case`'s options. A registry
    pair's (:meth:`registry`), or a user's (:func:`check`'s arguments)."""

    name: str
    ours: Callable[..., Any]
    theirs: type
    buffers: tuple[str, ...] = ALL_BUFFERS
    fused: bool = True
    torch_has_step: bool = True
    closure: bool = False
    #: The hyperparameter names a case may hold (the registry's list); None: any.
    hyperparameters: tuple[str, ...] | None = None

    @classmethod
    def registry(cls, name: str) -> PairSpec:
        """An OPTIMIZERS pair, or a FUSED pair: its optimizer's, numpy_optim's class called
        with ``fused=True`` (judged by parity/fused.py, bit for bit)."""
        if name in FUSED:
            p = OPTIMIZERS[FUSED[name].optimizer]
            return cls(name, _fused(p.ours), p.theirs, p.buffers, True, p.torch_has_step, False, p.hyperparameters)
        p = OPTIMIZERS[name]
        return cls(p.name, p.ours, p.theirs, p.buffers, p.fused, p.torch_has_step, p.closure, p.hyperparameters)

    @classmethod
    def user(cls, name: str, ours: Callable[..., Any], theirs: type, *, buffers: tuple[str, ...] | None = None,
             fused: bool | None = None, torch_has_step: bool | None = None, closure: bool | None = None) -> PairSpec:
        """:func:`check`'s defaults for what is not given."""
        if not callable(ours):
            raise TypeError(f"ours must be a callable (an optimizer class or factory), got {_show(ours)}")
        if not (isinstance(theirs, type) and issubclass(theirs, torch.optim.Optimizer)):
            raise TypeError(f"theirs must be a torch.optim.Optimizer subclass, got {_show(theirs)}")
        return cls(
            name, ours, theirs, tuple(ALL_BUFFERS if buffers is None else buffers),
            _supports_fused(theirs) if fused is None else bool(fused),
            theirs not in (torch.optim.SGD, torch.optim.LBFGS) if torch_has_step is None else bool(torch_has_step),
            takes_closure(theirs, name) if closure is None else bool(closure),
        )

    def options(self) -> dict[str, Any]:
        """:func:`run_case`'s keyword options, as ``--options`` JSON takes them."""
        return {"buffers": list(self.buffers), "fused": self.fused, "torch_has_step": self.torch_has_step,
                "closure": self.closure}


@functools.cache
def _fused(cls: type) -> Callable[..., Any]:
    """``cls`` with ``fused=True`` (one object per class: registry PairSpecs compare equal)."""
    return functools.partial(cls, fused=True)


def parse_case(text: str, pair: PairSpec | None = None, dtypes: tuple[str, ...] = DTYPES) -> CaseSpec:
    """A :class:`CaseSpec` from the JSON a failure message prints (``python -m parity --replay``),
    every field checked first: ``pair`` a registry pair (OPTIMIZERS or FUSED; or, given ``pair``,
    a user pair's name: any hyperparameter names), ``dtype`` one of ``dtypes`` (a FUSED pair's own),
    the hyperparameter names the registry lists for the pair (overrides too), the gradient
    kinds :data:`GRADIENT_KINDS`, a schedule the registry's, no unknown key; the counts and
    sizes within the bounds above, types as :func:`CaseSpec.to_json` writes them; then the
    values by the optimizer's own checks (it is built on zeros of the case's shapes).

    Raises
    ------
    TypeError, ValueError
        Naming the field (``case['steps']``, ``case['shapes'][1][0]``, ...) and its value.
    """
    data = check_keys("case", load_json(text, "case"),
                      ("pair", "dtype", "hyperparameters", "overrides", "shapes", "gradient_kinds", "steps", "seed"),
                      ("closed_loop", "schedule", "init_scale", "extra"))
    if pair is None:
        pair = PairSpec.registry(check_name("case['pair']", data["pair"], [*OPTIMIZERS, *FUSED]))
        dtypes = FUSED[pair.name].dtypes if pair.name in FUSED else dtypes
    elif type(data["pair"]) is not str:
        raise TypeError(f"case['pair'] must be a name (a string), got {_show(data['pair'])} ({_kind(data['pair'])})")
    dtype = check_name("case['dtype']", data["dtype"], dtypes)
    steps = check_int("case['steps']", data["steps"], 1, MAX_STEPS)
    check_int("case['seed']", data["seed"], 0, MAX_SEED)
    closed_loop = check_bool("case['closed_loop']", data.get("closed_loop", False))
    check_number("case['init_scale']", data.get("init_scale", 1.0))
    check_keys("case['extra']", data.get("extra", {}), ())
    elements = check_shapes("case['shapes']", data["shapes"])
    n = len(data["shapes"])
    for i, kind in enumerate(check_list("case['gradient_kinds']", data["gradient_kinds"], n, n)):
        check_name(f"case['gradient_kinds'][{i}]", kind, GRADIENT_KINDS)
    _check_hyperparameters("case['hyperparameters']", data["hyperparameters"], pair.hyperparameters)
    overrides = check_list("case['overrides']", data["overrides"], n, n)
    for i, entry in enumerate(overrides):
        _check_hyperparameters(f"case['overrides'][{i}]", entry, pair.hyperparameters)
    schedule = data.get("schedule")
    if schedule is not None:
        check_keys("case['schedule']", schedule, ("name", "kwargs"))
        name = check_name("case['schedule']['name']", schedule["name"], SCHEDULERS)
        _check_schedule_kwargs("case['schedule']['kwargs']", name, schedule["kwargs"])
    if pair.closure and (not closed_loop or schedule is not None or any(overrides)):
        raise ValueError(f"case: {pair.name} cases run closed loop (closed_loop true) without a schedule or "
                         f"overrides; got closed_loop={closed_loop}, schedule={schedule}, overrides={overrides}")
    check_budget("case", "steps x elements", steps * elements, MAX_RECORDED)
    spec = CaseSpec.from_json(text)
    entries = [{"params": np.zeros(shape, numpy_dtype(dtype)), "grad": np.zeros(shape, numpy_dtype(dtype)), **entry}
               for shape, entry in zip(spec.shapes, spec.overrides)]
    try:
        optimizer = pair.ours(entries, **spec.hyperparameters)
    except (TypeError, ValueError) as error:
        raise type(error)(f"case['hyperparameters'] or case['overrides']: {_qualified(pair.ours)} "
                          f"refuses them: {error}") from None
    defaults = getattr(optimizer, "defaults", None)
    evaluations = defaults.get("max_eval") or 1 if pair.closure and isinstance(defaults, dict) else 1
    check_budget("case", "steps x elements x closure evaluations per step", steps * elements * evaluations, MAX_WORK)
    return spec


def _qualified(obj: Any) -> str:
    """``numpy_optim.Adam`` for numpy_optim's classes, else the object's own name."""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"numpy_optim.{name}" if str(getattr(obj, "__module__", "")).startswith("numpy_optim") else str(name)


def resolve(path: Any, what: str) -> Any:
    """The object a ``"module:name"`` path names (``torch.optim:SGD``, ``mypackage.optim:MySGD``);
    imports the module. ValueError naming ``what`` if it does not resolve."""
    if type(path) is not str or path.count(":") != 1:
        raise ValueError(f"{what} must be 'module:name' (e.g. torch.optim:SGD), got {_show(path)}")
    module, name = path.split(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as error:
        raise ValueError(f"{what} = {path!r}: cannot import {module!r} ({error})") from None
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what} = {path!r}: {module!r} has no attribute {name!r}")
        obj = getattr(obj, part)
    return obj


def importable_path(obj: Any) -> str | None:
    """A ``"module:name"`` path that :func:`resolve` turns back into ``obj``: the shortest
    public module that exports it (``torch.optim:SGD``, not ``torch.optim.sgd:SGD``). None for
    objects of ``__main__`` (a script, a notebook) or of a function's locals."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str) or module == "__main__" or "<locals>" in name:
        return None
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        path = f"{'.'.join(parts[:i])}:{name}"
        try:
            if resolve(path, "path") is obj:
                return path
        except ValueError:
            continue
    return None


def parse_options(text: Any) -> dict[str, Any]:
    """``--options`` JSON: any of ``buffers`` (a list of names), ``fused``, ``torch_has_step``, ``closure`` (bools)."""
    options = check_keys("options", load_json(text, "options"), (), ("buffers", "fused", "torch_has_step", "closure"))
    for key in ("fused", "torch_has_step", "closure"):
        if key in options:
            check_bool(f"options[{key!r}]", options[key])
    if "buffers" in options:
        for i, name in enumerate(check_list("options['buffers']", options["buffers"], 0, MAX_ITEMS)):
            if type(name) is not str:
                raise TypeError(f"options['buffers'][{i}] must be a string, got {_show(name)} ({_kind(name)})")
        options["buffers"] = tuple(options["buffers"])
    return options


def replay_case(text: str, ours: Callable[..., Any] | None = None, theirs: type | None = None,
                **options: Any) -> tuple[CaseSpec, PairSpec]:
    """The checked case and the pair :func:`replay` runs it on (TypeError or ValueError first)."""
    if ours is None:
        if theirs is not None or options:
            raise TypeError("replay: theirs and options come with ours (a registry pair takes neither)")
        spec = parse_case(text)
        return spec, PairSpec.registry(spec.pair)
    if theirs is None:
        raise TypeError("replay: a user pair needs theirs, the torch.optim class")
    data = load_json(text, "case")
    pair = PairSpec.user(str(data.get("pair") if type(data) is dict else None), ours, theirs, **options)
    return parse_case(text, pair), pair


def replay(text: str, ours: Callable[..., Any] | None = None, theirs: type | None = None,
           **options: Any) -> dict[str, list[tolerance.Comparison]]:
    """Run one case again from its JSON (the ``reproduce:`` line of a failure); raise
    :class:`ParityError` as the first run did.

    Without ``ours`` the case's ``pair`` names a registry pair; with ``ours`` and ``theirs``
    (an optimizer factory and a torch.optim class) it is a user pair, run with ``options``
    (``buffers``, ``fused``, ``torch_has_step``, ``closure``: :func:`check`'s defaults for those not
    given). The JSON is checked first (:func:`replay_case`, :func:`parse_case`: TypeError or ValueError).
    """
    spec, pair = replay_case(text, ours, theirs, **options)
    return runner(pair)(spec, pair.ours, pair.theirs, name=pair.name, **pair.options())


def runner(pair: PairSpec) -> Callable[..., Any]:
    """The function that runs ``pair``'s cases: :func:`run_case` (the tolerance model), or
    for a registry FUSED pair parity.fused.run_case (zero tolerance)."""
    if pair.name in FUSED and pair == PairSpec.registry(pair.name):
        from . import fused

        return fused.run_case
    return run_case


class ParityError(AssertionError):
    """A numpy_optim trajectory left its tolerance bound against torch."""


@dataclass
class SideStats:
    """What one (pair, dtype, torch side) saw over all its cases."""

    cases: int = 0
    steps: int = 0                # optimizer steps run
    judged: int = 0               # (array, step) comparisons judged against a bound (schedules: lr values)
    unjudged: int = 0             # (array, step) comparisons skipped: torch's own paths disagree
    worst_ratio: float = 0.0      # the largest error / bound, over every case
    worst_case: dict[str, Any] = field(default_factory=dict)   # the case (and array) of worst_ratio
    worst_case_error: float = 0.0  # that case's error and bound where the ratio peaked
    worst_case_bound: float = 0.0
    #: The largest absolute error judged, over every case (not the worst case's: an array of
    #: values near 1e12 has large absolute errors well inside its bound). Bitwise rows: the
    #: largest difference.
    worst_error: float = 0.0
    # Bitwise rows (torch's schedulers, clipping, averaging): every compared value must
    # equal torch's to the last bit; ``compared`` values were checked, ``differing`` were not equal.
    bitwise: bool = False
    compared: int = 0
    differing: int = 0
    # Fused pairs (parity/fused.py), bitwise too: the most bits in which a value differed
    # (popcount of the XOR of the bit patterns) and the largest distance in ulps.
    bits: int = 0
    ulps: float = 0.0


@dataclass
class Stats:
    """Accumulated per ``(pair, dtype, side)``; side is "default" or "fused" (or "schedule")."""

    sides: dict[tuple[str, str, str], SideStats] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, key: tuple[str, str, str], steps: int, comparisons: list[tolerance.Comparison],
            spec: dict[str, Any]) -> None:
        side = self.sides.setdefault(key, SideStats())
        side.cases += 1
        side.steps += steps
        for c in comparisons:
            side.judged += c.steps
            side.unjudged += c.unjudged
            side.worst_error = max(side.worst_error, c.worst_error)
            if c.worst_ratio > side.worst_ratio or not side.worst_case:
                side.worst_ratio = max(side.worst_ratio, c.worst_ratio)
                side.worst_case = {**spec, "array": c.name}
                side.worst_case_error, side.worst_case_bound = c.ratio_error, c.ratio_bound


def _describe_spec(spec: CaseSpec) -> str:
    loop = "closed loop (quadratic)" if spec.closed_loop else f"open loop, gradients {spec.gradient_kinds}"
    schedule = f"; schedule {spec.schedule}" if spec.schedule else ""
    return (f"hyperparameters {spec.hyperparameters}; overrides {spec.overrides}; shapes {spec.shapes}; "
            f"{spec.steps} steps; {loop}; init scale {spec.init_scale}{schedule}")


def _reproduce(spec: CaseSpec, pair: PairSpec) -> str:
    """A line that replays exactly this case, as printed: ``python -m parity --replay`` for a
    registry pair run with the registry's options, or for a user pair whose optimizer a module
    exports (``--ours``/``--theirs`` paths and ``--options``); else a Python call to run where
    the optimizer is defined (a script's own class)."""
    case = spec.to_json()
    if (pair.name in OPTIMIZERS or pair.name in FUSED) and pair == PairSpec.registry(pair.name):
        return f"python -m parity --replay {shlex.quote(case)}"
    ours, theirs = importable_path(pair.ours), importable_path(pair.theirs)
    options = json.dumps(pair.options(), sort_keys=True)
    if ours is not None and theirs is not None:
        return (f"python -m parity --replay {shlex.quote(case)} --ours {shlex.quote(ours)} "
                f"--theirs {shlex.quote(theirs)} --options {shlex.quote(options)}")
    ours_name = getattr(pair.ours, "__qualname__", None) or getattr(pair.ours, "__name__", repr(pair.ours))
    theirs_name = theirs.replace(":", ".") if theirs is not None else pair.theirs.__qualname__
    arguments = ", ".join(f"{k}={tuple(v) if k == 'buffers' else v!r}" for k, v in pair.options().items())
    return (f"(in Python, where {ours_name} is defined) import parity, torch; "
            f"parity.replay({case!r}, {ours_name}, {theirs_name}, {arguments})")


def _failure_message(name: str, side: str, spec: CaseSpec, v: tolerance.Violation, reproduce: str) -> str:
    flat = int(np.ravel_multi_index(v.index, spec.shapes[int(v.name.split("[")[1].rstrip("]"))])) if v.index else 0
    reference = "" if v.reference is None else f", float64 reference={v.reference!r}"
    rule = "float64: ulp-per-step bound" if spec.dtype == "float64" else "float32: no less accurate than torch"
    return (
        f"Parity failure: {name} vs torch ({side} path), {spec.dtype}\n"
        f"  {v.name} after step {v.step}, index {v.index} (flat {flat}): ours={v.ours!r}, torch={v.theirs!r}"
        f"{reference}\n"
        f"  error {v.error:.3e} > bound {v.bound:.3e} ({rule}; see parity/tolerance.py)\n"
        f"  {_describe_spec(spec)}\n"
        f"  reproduce: {reproduce}"
    )


def _compare_keys(name: str, side: str, spec: CaseSpec, ours: dict[str, Any], theirs: dict[str, Any],
                  reproduce: str) -> None:
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(k for k in set(ours) - set(theirs) if not k.startswith("step["))
    if missing or extra:
        raise ParityError(
            f"Parity failure: {name} vs torch ({side} path), {spec.dtype}: state differs in kind: "
            f"missing {missing}, extra {extra}\n  {_describe_spec(spec)}\n"
            f"  reproduce: {reproduce}"
        )


def _supports_fused(torch_class: type) -> bool:
    p = torch.zeros(1, requires_grad=True)
    try:
        torch_class([p], fused=True)
    except (TypeError, RuntimeError, ValueError):
        return False
    return True


def takes_closure(torch_class: type, name: str | None = None) -> bool:
    """Whether the pair's ``step`` takes a closure: the registry's ``closure`` flag for a
    registry pair, else whether torch's ``step`` requires one (``LBFGS.step(closure)``)."""
    pair = OPTIMIZERS.get(name) if name is not None else None
    if pair is not None and pair.theirs is torch_class:
        return pair.closure
    parameter = inspect.signature(torch_class.step).parameters.get("closure")  # type: ignore[attr-defined]
    return parameter is not None and parameter.default is inspect.Parameter.empty


#: Run lengths of closure cases: one step is up to ``max_iter`` iterations (and more
#: closure calls), so they are shorter than ``strategies.step_counts``.
closure_step_counts = st.one_of(st.integers(1, 4), st.integers(5, 12), st.integers(13, 30))


@st.composite
def closure_case_specs(
    draw: st.DrawFn, pair: str, hyperparameters: st.SearchStrategy[dict[str, Any]],
    dtypes: tuple[str, ...] = DTYPES, max_steps: int = 300,
) -> CaseSpec:
    """A case for a closure optimizer: closed loop only, no per-entry overrides (LBFGS
    has one parameter group), no schedules; the rest drawn as :func:`case_specs` draws it."""
    dtype = draw(st.sampled_from(dtypes), label="dtype")
    hyper = draw(hyperparameters, label="hyperparameters")
    entry_shapes = draw(shapes, label="shapes")
    steps = min(draw(closure_step_counts, label="steps"), max_steps)
    return CaseSpec(
        pair=pair,
        dtype=dtype,
        hyperparameters=hyper,
        overrides=[{} for _ in entry_shapes],
        shapes=[tuple(s) for s in entry_shapes],
        gradient_kinds=["normal" for _ in entry_shapes],  # unused: the closure computes the gradients
        steps=steps,
        seed=draw(st.integers(0, 2**32 - 1), label="seed"),
        closed_loop=True,
        schedule=None,
        init_scale=draw(st.sampled_from([1.0, 1e-3, 1e3]), label="init scale"),
    )


def run_case(
    spec: CaseSpec,
    factory: Callable[..., Any],
    torch_class: type,
    *,
    name: str,
    buffers: tuple[str, ...] = ALL_BUFFERS,
    fused: bool = True,
    torch_has_step: bool = True,
    stats: Stats | None = None,
    closure: bool | None = None,
) -> dict[str, list[tolerance.Comparison]]:
    """Run one case on every side, compare every array after every step; raise ParityError.

    ``closure``: each recorded step is one ``step(closure)`` (LBFGS); by default
    :func:`takes_closure`.
    """
    if closure is None:
        closure = takes_closure(torch_class, name)
    case = build_case(spec)
    ours = run_numpy(case, factory, spec.dtype, buffers, closure=closure)
    sides = {"default": run_torch(case, torch_class, spec.dtype, buffers, has_step=torch_has_step, closure=closure)}
    if fused:
        sides["fused"] = run_torch(case, torch_class, spec.dtype, buffers, fused=True, has_step=torch_has_step,
                                   closure=closure)
    # torch's own spread: one-ulp probes; a pair without a fused path gets a second probe
    # (every nudge the other way round) in its place, so every pair has as many samples.
    probes = [
        run_torch(perturbed(case, spec.dtype, probe), torch_class, spec.dtype, buffers, has_step=torch_has_step,
                  nudged=probe, closure=closure)
        for probe in ((1,) if fused else (1, 2))
    ]
    reference = None
    if spec.dtype == "float32":
        reference = run_torch(case, torch_class, "float64", buffers, has_step=torch_has_step, closure=closure)
    results: dict[str, list[tolerance.Comparison]] = {}
    reproduce = _reproduce(spec, PairSpec(name, factory, torch_class, tuple(buffers), fused, torch_has_step, closure,
                                          OPTIMIZERS[name].hyperparameters if name in OPTIMIZERS else None))
    for side, theirs in sides.items():
        _compare_keys(name, side, spec, ours, theirs, reproduce)
        comparisons = []
        for key in sorted(theirs):
            initial = _initial_scale(case, key)
            samples = [probe[key] for probe in probes] + ([sides["fused"][key]] if fused else [])
            spread = tolerance.spread(sides["default"][key], samples)
            if reference is not None:
                others = tuple(run[key] for s, run in sides.items() if s != side) + tuple(p[key] for p in probes)
                comparisons.append(
                    tolerance.compare_float32(key, ours[key], theirs[key], reference[key], spread, initial, others)
                )
            else:
                comparisons.append(tolerance.compare_float64(key, ours[key], theirs[key], spread, initial))
        if stats is not None:
            stats.add((name, spec.dtype, side), spec.steps, comparisons, _json_spec(spec))
        for c in comparisons:
            if c.violation is not None:
                raise ParityError(_failure_message(name, side, spec, c.violation, reproduce))
        results[side] = comparisons
    return results


def _initial_scale(case: Any, key: str) -> float:
    """The parameter's starting max |value| for "params[i]" (buffers start at zero)."""
    if not key.startswith("params["):
        return 0.0
    x0 = case.x0[int(key[len("params["):-1])]
    return float(np.abs(x0).max(initial=0.0))


def _json_spec(spec: CaseSpec) -> dict[str, Any]:
    return json.loads(spec.to_json())


def check(
    optimizer_factory: Callable[..., Any],
    torch_optimizer_class: type,
    *,
    name: str | None = None,
    hyperparameters: st.SearchStrategy[dict[str, Any]] | None = None,
    buffers: tuple[str, ...] = ALL_BUFFERS,
    dtypes: tuple[str, ...] = DTYPES,
    fused: bool | None = None,
    torch_has_step: bool | None = None,
    max_examples: int | None = None,
    max_steps: int = 300,
    closed_loop: bool = True,
    schedules: bool | None = None,
    stats: Stats | None = None,
    closure: bool | None = None,
    seed: int | None = None,
) -> Stats:
    """Property-test an optimizer written to the numpy_optim interface against torch.

    Parameters
    ----------
    optimizer_factory : callable
        ``optimizer_factory(entries, **hyperparameters)`` returns an object with ``step()``
        (and, to compare buffers, ``state[i][buffer_name]`` as numpy_optim keeps it).
    torch_optimizer_class : type
        The torch.optim class it should track, built as ``cls(groups, **hyperparameters)``.
    hyperparameters : hypothesis strategy of dict, optional
        What to draw; defaults to the registry's strategy when ``name`` is a registry pair
        ("SGD", "Adam", "AdamW"). A fixed dict may be given as ``st.just({...})``.
    fused : bool, optional
        Also compare with ``fused=True``; by default, whenever torch supports it.
    max_examples : int, optional
        Overrides the loaded Hypothesis profile's number of cases. The rest of the profile
        applies (Hypothesis's default outside one), but for the deadline and the slow-data
        health checks, which are off (:func:`parity.profiles.for_trajectories`).
    seed : int, optional
        Draw the cases from this seed (with ``name``: :func:`parity.profiles.pair_seed`); by
        default the profile decides (derandomized, or fresh random draws).
    schedules : bool, optional
        Draw learning-rate schedules that change lr mid-run. They are applied with
        numpy_optim's schedulers, so by default only when ``optimizer_factory`` is a
        numpy_optim ``Optimizer`` subclass.
    closure : bool, optional
        The optimizer's ``step`` takes a closure (LBFGS): every case is closed loop, one
        ``step(closure)`` per recorded step, without overrides or schedules. By default
        :func:`takes_closure`.

    Returns
    -------
    Stats
        Cases, steps and worst errors per dtype and torch side.

    Raises
    ------
    ParityError
        With the shrunk failing case: the pair, hyperparameters, dtype, step, array, index,
        ours vs torch, the bound, and a line that replays the case (:func:`replay`).
    """
    name = str(name or getattr(optimizer_factory, "__name__", "optimizer"))
    if hyperparameters is None:
        if name not in HYPERPARAMETERS:
            raise ValueError(f"no default hyperparameter strategy for {name!r}; pass hyperparameters=")
        hyperparameters = HYPERPARAMETERS[name]
    if schedules is None:
        schedules = isinstance(optimizer_factory, type) and issubclass(optimizer_factory, numpy_optim.Optimizer)
    pair = PairSpec.user(name, optimizer_factory, torch_optimizer_class, buffers=buffers, fused=fused,
                         torch_has_step=torch_has_step, closure=closure)  # the options' defaults, in one place
    fused, torch_has_step, closure = pair.fused, pair.torch_has_step, pair.closure
    stats = stats if stats is not None else Stats()
    cases = (closure_case_specs(name, hyperparameters, dtypes, max_steps) if closure
             else case_specs(name, hyperparameters, dtypes, max_steps, closed_loop, schedules))

    @for_trajectories(max_examples)
    @seeded(name, seed)
    @given(spec=cases)
    def property_(spec: CaseSpec) -> None:
        run_case(spec, optimizer_factory, torch_optimizer_class, name=name, buffers=buffers, fused=fused,
                 torch_has_step=torch_has_step, stats=stats, closure=closure)

    property_()
    return stats


def check_pair(pair: str, *, stats: Stats | None = None, **kwargs: Any) -> Stats:
    """:func:`check` on a registry pair (``parity.registry.OPTIMIZERS``)."""
    p = OPTIMIZERS[pair]
    return check(p.ours, p.theirs, name=p.name, buffers=p.buffers, fused=p.fused,
                 torch_has_step=p.torch_has_step, closure=p.closure, stats=stats, **kwargs)


def check_scheduler(pair: str, *, stats: Stats | None = None, max_examples: int | None = None,
                    seed: int | None = None) -> Stats:
    """Property-test a registry scheduler pair: our ``get_lr(t)`` against torch's lr after t steps."""
    if pair not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler pair: {pair!r}; expected one of {sorted(SCHEDULERS)}")
    stats = stats if stats is not None else Stats()

    @for_trajectories(max_examples)
    @seeded(pair, seed)
    @given(kwargs=scheduler_kwargs(pair))
    def property_(kwargs: dict[str, Any]) -> None:
        compare_schedule(pair, kwargs, stats)

    property_()
    return stats


def run_pair(name: str, profile: str, seed: int, max_examples: int | None) -> tuple[str, Any, float]:
    """Run pair ``name`` (any kind) under ``profile`` with its own seed; return its name, its
    Stats (failure included) and the seconds it took. A worker process's task."""
    from . import functions, fused, profiles, schedules

    profiles.load(profile)
    stats = Stats()
    t0 = time.perf_counter()
    try:
        if name in OPTIMIZERS:
            check_pair(name, stats=stats, seed=seed, max_examples=max_examples)
        elif name in FUSED:
            fused.check(name, stats=stats, seed=seed, max_examples=max_examples)
        elif name in SCHEDULERS:
            check_scheduler(name, stats=stats, seed=seed, max_examples=max_examples)
        elif name in schedules.PAIRS:
            schedules.check(name, stats=stats, seed=seed, max_examples=max_examples)
        else:
            functions.check(name, stats=stats, seed=seed, max_examples=max_examples)
    except AssertionError as error:  # ParityError, or Hypothesis's report of one
        stats.failures.append(f"{name}: {error}")
    return name, stats, time.perf_counter() - t0


def scheduler_kwargs(pair: str) -> st.SearchStrategy[dict[str, Any]]:
    peak = st.floats(-5, 0).map(lambda e: 10.0**e)
    fraction = st.one_of(st.just(0.0), st.floats(0.0, 1.0))
    if pair == "StepDecayScheduler":
        return st.fixed_dictionaries({
            "initial_lr": peak,
            "decay_factor": st.one_of(st.sampled_from([0.1, 0.5, 0.9]), st.floats(0.0, 1.0)),
            "step_size": st.integers(1, 50),
        })

    @st.composite
    def cosine(draw: st.DrawFn) -> dict[str, Any]:
        max_lr = draw(peak, label="max_lr")
        kwargs = {"max_lr": max_lr, "min_lr": max_lr * draw(fraction, label="min fraction"),
                  "total_steps": draw(st.integers(1, 1000), label="total_steps")}
        if pair == "WarmupCosineScheduler":
            kwargs["warmup_steps"] = draw(st.integers(0, kwargs["total_steps"] - 1), label="warmup_steps")
        return kwargs

    return cosine()


#: The constructor arguments of the registry's schedules (:func:`scheduler_kwargs` draws all of them).
SCHEDULE_KWARGS = {
    "StepDecayScheduler": ("initial_lr", "decay_factor", "step_size"),
    "CosineScheduler": ("max_lr", "min_lr", "total_steps"),
    "WarmupCosineScheduler": ("max_lr", "min_lr", "warmup_steps", "total_steps"),
}
#: Their int arguments and bounds: :func:`compare_schedule` runs 10 * step_size or total_steps steps.
_SCHEDULE_STEPS = {"step_size": MAX_STEPS // 10, "warmup_steps": MAX_STEPS, "total_steps": MAX_STEPS}


def _check_schedule_kwargs(where: str, pair: str, kwargs: Any) -> None:
    for key, value in check_keys(where, kwargs, SCHEDULE_KWARGS[pair]).items():
        if key in _SCHEDULE_STEPS:
            check_int(f"{where}[{key!r}]", value, 0, _SCHEDULE_STEPS[key])
        else:
            check_number(f"{where}[{key!r}]", value)
    try:
        SCHEDULERS[pair].ours(**kwargs)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: numpy_optim.{pair} refuses them: {error}") from None


def check_schedule(pair: Any, kwargs: Any) -> None:
    """Check :func:`compare_schedule`'s arguments (``python -m parity --replay-schedule PAIR
    KWARGS``): ``pair`` a registry schedule, ``kwargs`` exactly its constructor's arguments,
    ints for the step counts (bounded: the horizon is at most :data:`MAX_STEPS`), finite
    numbers for the rates, values the constructor accepts. TypeError or ValueError."""
    _check_schedule_kwargs("kwargs", check_name("pair", pair, SCHEDULERS), kwargs)


def compare_schedule(pair: str, kwargs: dict[str, Any], stats: Stats | None = None) -> float:
    """Compare one schedule with torch over its horizon; return the worst error / bound.
    The arguments are checked first (:func:`check_schedule`)."""
    check_schedule(pair, kwargs)
    ours = SCHEDULERS[pair].ours(**kwargs)
    horizon = SCHEDULERS[pair].horizon(ours)
    worst_ratio, worst_error, at_worst = 0.0, 0.0, (0.0, 0.0)
    for t, theirs in enumerate(torch_learning_rates(pair, kwargs, horizon)):
        mine = ours.get_lr(t)
        bound = tolerance.schedule_bound(t, ours.reference_lr)
        error = abs(mine - theirs)
        worst_error = max(worst_error, error)
        ratio = error / bound if bound else (math.inf if error else 0.0)
        if ratio > worst_ratio:
            worst_ratio, at_worst = ratio, (error, bound)
        if error > bound:
            raise ParityError(
                f"Parity failure: {pair} vs torch: lr at step {t}: ours={mine!r}, torch={theirs!r}, "
                f"error {error:.3e} > bound {bound:.3e}\n  kwargs {kwargs}\n"
                f"  reproduce: python -m parity --replay-schedule {pair} '{json.dumps(kwargs)}'"
            )
    if stats is not None:
        side = stats.sides.setdefault((pair, "float64", "schedule"), SideStats())
        side.cases += 1
        side.steps += horizon + 1
        side.judged += horizon + 1   # one learning rate per step, every one judged
        side.worst_error = max(side.worst_error, worst_error)
        if worst_ratio >= side.worst_ratio:
            side.worst_ratio, side.worst_case = worst_ratio, dict(kwargs)
            side.worst_case_error, side.worst_case_bound = at_worst
    return worst_ratio
