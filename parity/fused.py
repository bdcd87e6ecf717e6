r"""Zero-tolerance parity of numpy_optim's ``fused=True`` with torch's fused CPU kernels.

Pairs (parity/registry.py :data:`~parity.registry.FUSED`): ``SGD+fused``, ``Adam+fused``,
``AdamW+fused`` and ``Adagrad+fused``, each numpy_optim's class built with ``fused=True``
against torch's built with ``fused=True``. A case is a :class:`~parity.strategies.CaseSpec`
as for the other optimizer pairs (hyperparameters with every option, per-entry overrides,
open and closed loop, learning-rate schedules), drawn with the fused kernels' own shapes
(0-d, 1..40 elements, a few hundred, more than 1024: each side of the vector-body / scalar-tail
split of every lane count), dtypes (float64, float32, float16, ml_dtypes' bfloat16; SGD only
the first two: registry.KNOWN_TORCH_DEFECTS) and run lengths (1..100 steps, and 1,000 steps
in about one case of ten).

There is no tolerance: after every step every recorded array (parameters, state buffers and
the step count) must have torch's bits, NaNs included (:func:`parity.tolerance.compare_bits`).
torch keeps a float32 ``step`` tensor per parameter, numpy_optim one ``state["step"]`` for
the optimizer: ``step[i]`` compares the two counts as numbers. Statistics go to
``stats.sides[(name, dtype, "bitwise")]`` as bitwise rows that also carry the most differing
bits in a value and the largest distance in ulps (both 0 when the pair passes).

:func:`check` runs a pair's property; :func:`run_case` one case; :func:`replay` a case from
its JSON (``python -m parity --replay '<json>'`` dispatches here by the case's ``pair``).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

from hypothesis import given

from . import tolerance
from .harness import (
    PairSpec,
    ParityError,
    SideStats,
    Stats,
    _compare_keys,
    _describe_spec,
    load_json,
    parse_case,
)
from .profiles import for_trajectories, seeded
from .registry import FUSED
from .strategies import FUSED_HYPERPARAMETERS, CaseSpec, case_specs, fused_shapes, fused_step_counts
from .trajectories import build_case, run_numpy, run_torch

#: At most this many steps in a drawn case (:data:`parity.strategies.fused_step_counts`).
MAX_STEPS = 1000


def pair_spec(name: str) -> PairSpec:
    """The registry's fused pair ``name``: its numpy_optim class with ``fused=True``."""
    if name not in FUSED:
        raise ValueError(f"Unknown fused pair: {name!r}; expected one of {sorted(FUSED)}")
    return PairSpec.registry(name)


def run_case(spec: CaseSpec, factory: Callable[..., Any], torch_class: type, *, name: str,
             buffers: tuple[str, ...], torch_has_step: bool, stats: Stats | None = None,
             fused: bool = True, closure: bool = False) -> list[tolerance.BitComparison]:
    """Run one case on ``factory(entries, **hyperparameters)`` (numpy_optim's class with
    ``fused=True`` for a registry pair) and on ``torch_class(groups, fused=True, ...)``,
    compare every recorded value bit for bit, record the row in ``stats``; raise
    :class:`ParityError` on any differing bit. (``fused`` and ``closure`` are the
    :meth:`PairSpec.options` of every fused pair, True and False.)"""
    if not fused or closure:
        raise ValueError(f"{name}: a fused pair runs torch with fused=True and no closure")
    case = build_case(spec)
    ours = run_numpy(case, factory, spec.dtype, buffers)
    theirs = run_torch(case, torch_class, spec.dtype, buffers, fused=True, has_step=torch_has_step)
    reproduce = _reproduce(spec, name, factory)
    _compare_keys(name, "fused", spec, ours, theirs, reproduce)
    comparisons = [tolerance.compare_bits(key, ours[key], theirs[key]) for key in sorted(theirs)]
    if stats is not None:
        _record(stats, name, spec, comparisons)
    if any(c.differing for c in comparisons):
        raise ParityError(_failure_message(name, spec, comparisons, reproduce))
    return comparisons


def _record(stats: Stats, name: str, spec: CaseSpec, comparisons: list[tolerance.BitComparison]) -> None:
    side = stats.sides.setdefault((name, spec.dtype, "bitwise"), SideStats(bitwise=True))
    worst = max(comparisons, key=lambda c: (c.ulps, c.bits), default=None)
    # the row's case: its first, until a case differs; then the one furthest from torch (ulps, then bits)
    if worst is not None and (not side.worst_case or worst.differing and (
            not side.differing or (worst.ulps, worst.bits) > (side.ulps, side.bits))):
        side.worst_case = {**json.loads(spec.to_json()), "array": worst.name}
    side.cases += 1
    side.steps += spec.steps
    side.compared += sum(c.compared for c in comparisons)
    side.differing += sum(c.differing for c in comparisons)
    side.bits = max([side.bits, *(c.bits for c in comparisons)])
    side.ulps = max([side.ulps, *(c.ulps for c in comparisons)])


def _failure_message(name: str, spec: CaseSpec, comparisons: list[tolerance.BitComparison], reproduce: str) -> str:
    compared, differing = sum(c.compared for c in comparisons), sum(c.differing for c in comparisons)
    lines = [f"Parity failure: {name} vs torch (fused=True), {spec.dtype}, zero tolerance: {differing} of "
             f"{compared} values differ from torch's bits"]
    for c in comparisons:
        if c.differing and c.first is not None:
            f = c.first
            lines.append(
                f"  {c.name}: {c.differing} of {c.compared} differ, at most {c.bits} bit(s) and {c.ulps:g} ulp(s); "
                f"first after step {f.step}, index {f.index}: ours={f.ours!r} ({f.ours_bits}), "
                f"torch={f.theirs!r} ({f.theirs_bits}), {f.bits} bit(s), {f.ulps:g} ulp(s)"
            )
    lines += [f"  {_describe_spec(spec)}", f"  reproduce: {reproduce}"]
    return "\n".join(lines)


def _reproduce(spec: CaseSpec, name: str, factory: Callable[..., Any]) -> str:
    case = spec.to_json()
    if name in FUSED and factory is PairSpec.registry(name).ours:
        return f"python -m parity --replay {shlex.quote(case)}"
    ours = getattr(factory, "__qualname__", None) or repr(factory)
    return f"(in Python, where {ours} is defined) import parity.fused; parity.fused.replay({case!r}, ours={ours})"


def check(name: str, *, ours: Callable[..., Any] | None = None, stats: Stats | None = None,
          max_examples: int | None = None, seed: int | None = None, max_steps: int = MAX_STEPS,
          schedules: bool | None = None, dtypes: tuple[str, ...] | None = None) -> Stats:
    """Property-test the fused pair ``name`` (a :data:`~parity.registry.FUSED` key) with the
    loaded Hypothesis profile (``max_examples`` overrides its count; ``seed``:
    :func:`parity.profiles.seeded`).

    ``ours`` replaces numpy_optim's side (default: its class with ``fused=True``): any
    ``ours(entries, **hyperparameters)`` keeping torch's buffer names in ``state[i]``.
    ``schedules``: draw learning-rate schedules (numpy_optim's schedulers drive a
    numpy_optim optimizer: by default only when ``ours`` is not given). ``dtypes``: some of
    the pair's (default: all of them).

    Raises
    ------
    ParityError
        On any value whose bits differ from torch's: the arrays, the first differing value
        of each (step, index, both values and bit patterns, bits and ulps apart), the case
        and a line that replays it.
    """
    pair = pair_spec(name)
    factory = pair.ours if ours is None else ours
    stats = stats if stats is not None else Stats()
    optimizer = FUSED[name].optimizer
    dtypes = FUSED[name].dtypes if dtypes is None else dtypes
    if not set(dtypes) <= set(FUSED[name].dtypes):
        raise ValueError(f"{name} runs {FUSED[name].dtypes}, got dtypes={dtypes}")
    cases = case_specs(name, FUSED_HYPERPARAMETERS[optimizer], dtypes, max_steps, closed_loop=True,
                       schedules_too=ours is None if schedules is None else schedules, shape_lists=fused_shapes,
                       run_lengths=fused_step_counts)

    @for_trajectories(max_examples)
    @seeded(name, seed)
    @given(spec=cases)
    def property_(spec: CaseSpec) -> None:
        run_case(spec, factory, pair.theirs, name=name, buffers=pair.buffers, torch_has_step=pair.torch_has_step,
                 stats=stats)

    property_()
    return stats


def replay(text: str, ours: Callable[..., Any] | None = None) -> list[tolerance.BitComparison]:
    """Run one fused case again from its JSON, checked first (:func:`parity.harness.parse_case`:
    TypeError or ValueError); raise :class:`ParityError` as the first run did."""
    data = load_json(text, "case")
    name = data.get("pair") if isinstance(data, dict) else None
    pair = pair_spec(name if isinstance(name, str) else repr(name))
    spec = parse_case(text, pair, FUSED[pair.name].dtypes)
    return run_case(spec, pair.ours if ours is None else ours, pair.theirs, name=pair.name, buffers=pair.buffers,
                    torch_has_step=pair.torch_has_step)
