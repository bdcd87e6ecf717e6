"""``python -m parity``: run every registry pair with Hypothesis, write the report, exit 1 on failure.

Usage::

    python -m parity                      # all pairs, profile "parity", reports/ in the cwd
    python -m parity --pairs Adam,AdamW --profile dev --workers 2
    python -m parity --seed 7             # other draws (every pair its own seed, derived from 7)
    python -m parity --replay '<case json from a failure message>'
    python -m parity --replay '<case json>' --ours mypackage.optim:MySGD --theirs torch.optim:SGD \\
        --options '{"buffers": [], "fused": true, "torch_has_step": false, "closure": false}'
    python -m parity --replay-schedule CosineScheduler '{"max_lr": 0.1, ...}'
    python -m parity --replay-lr-scheduler OneCycleLR '<case json from a failure message>'
    python -m parity --replay-function clip_grad_norm_ '<case json from a failure message>'

The pairs: every optimizer (parity/registry.py OPTIMIZERS), the four with ``fused=True`` on
both sides (FUSED: SGD+fused, Adam+fused, AdamW+fused, Adagrad+fused, parity/fused.py), the
specification's three schedules (SCHEDULERS), torch's schedulers (parity/schedules.py PAIRS)
and clipping and averaging (parity/functions.py PAIRS); the last three kinds compare bit for
bit. The report also lists the known torch defects (registry.KNOWN_TORCH_DEFECTS), each
re-measured on the installed torch. A line is printed
as each pair finishes, then a summary. Each pair draws its cases from its own seed
(parity.profiles.pair_seed(pair, --seed)): a run is reproducible, whatever --workers and
--pairs, and pairs do not all draw the same sequence.

A replay's JSON is checked before anything runs (parity.harness.parse_case and
check_schedule, parity.schedules.parse_case, parity.functions.parse_case): names from the
registry's and the modules' tables only, no unknown key, ints and bools as such, counts and
sizes bounded (parity/harness.py MAX_STEPS, MAX_ELEMENTS, ...). A bad one exits with
status 2 and one line, ``python -m parity: error: <option>: <field> ...``. A replayed case
that fails prints the failure and exits with status 1.

parity needs Hypothesis and torch: ``pip install "numpy_optim[parity]"``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NoReturn

INSTALL = 'pip install "numpy_optim[parity]"'


def missing_dependencies() -> list[str]:
    """The modules parity needs that do not import here (Hypothesis, torch)."""
    missing = []
    for name in ("hypothesis", "torch"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m parity", description=__doc__.splitlines()[0],
        epilog=f"parity needs Hypothesis and torch (torch==2.13.0, the CPU build): {INSTALL}",
    )
    parser.add_argument("--profile", default=None, help="Hypothesis profile (default: parity, or $HYPOTHESIS_PROFILE)")
    parser.add_argument("--pairs", default=None, help="comma-separated registry names (default: all)")
    parser.add_argument("--out", default="reports", help="directory for parity.md and parity.json")
    parser.add_argument("--seed", type=int, default=0,
                        help="base seed: each pair draws from its own seed derived from it (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="pairs run in this many processes (default 1)")
    parser.add_argument("--max-examples", type=int, default=None, help="cases per pair (default: the profile's)")
    parser.add_argument("--replay", default=None, help="replay one optimizer case (its JSON)")
    parser.add_argument("--ours", default=None, help="with --replay: a user pair's optimizer, 'module:name'")
    parser.add_argument("--theirs", default=None, help="with --replay: a user pair's torch class, e.g. torch.optim:SGD")
    parser.add_argument("--options", default=None,
                        help="with --ours: JSON of buffers, fused, torch_has_step, closure (parity.check's)")
    parser.add_argument("--replay-schedule", nargs=2, metavar=("PAIR", "KWARGS"), default=None)
    parser.add_argument("--replay-lr-scheduler", nargs=2, metavar=("PAIR", "CASE"), default=None,
                        help="replay one torch-scheduler case (parity/schedules.py)")
    parser.add_argument("--replay-function", nargs=2, metavar=("PAIR", "CASE"), default=None,
                        help="replay one clipping or averaging case (parity/functions.py)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    missing = missing_dependencies()
    if missing:
        parser.exit(2, f"{parser.prog}: needs {' and '.join(missing)}, which do not import here: {INSTALL}\n")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.max_examples is not None and args.max_examples < 1:
        parser.error(f"--max-examples must be >= 1, got {args.max_examples}")
    if (args.ours is None) != (args.theirs is None) or (args.options is not None and args.ours is None):
        parser.error("--ours and --theirs go together (and --options with them)")
    if args.ours is not None and args.replay is None:
        parser.error("--ours, --theirs and --options are for --replay")

    from . import profiles

    profile = profiles.load(args.profile or os.environ.get("HYPOTHESIS_PROFILE") or "parity")
    from . import functions, harness, report, schedules
    from .registry import FUSED, OPTIMIZERS, SCHEDULERS

    def refuse(option: str, error: Exception) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {option}: {error}\n")

    if args.replay is not None:
        try:
            ours = theirs = None
            options: dict[str, Any] = {}
            if args.ours is not None:
                ours, theirs = harness.resolve(args.ours, "--ours"), harness.resolve(args.theirs, "--theirs")
                options = harness.parse_options(args.options) if args.options is not None else {}
            spec, pair = harness.replay_case(args.replay, ours, theirs, **options)
        except (TypeError, ValueError) as error:
            refuse("--replay", error)
        try:
            results = harness.runner(pair)(spec, pair.ours, pair.theirs, name=pair.name, **pair.options())
        except harness.ParityError as error:
            print(error)
            return 1
        if isinstance(results, list):  # a fused pair: bit for bit
            for c in results:
                print(f"fused    {c.name:20s} {c.compared} values compared, {c.differing} differing, "
                      f"most differing bits {c.bits}, largest ulps {c.ulps:g}")
            return 0
        for side, comparisons in results.items():
            for c in comparisons:
                print(f"{side:8s} {c.name:20s} worst error {c.worst_error:.3e}  error/bound {c.worst_ratio:.3f}  "
                      f"judged {c.steps}  not judged {c.unjudged}")
        return 0
    if args.replay_schedule is not None:
        pair, text = args.replay_schedule
        try:
            kwargs = harness.load_json(text, "kwargs")
            harness.check_schedule(pair, kwargs)
        except (TypeError, ValueError) as error:
            refuse("--replay-schedule", error)
        try:
            ratio = harness.compare_schedule(pair, kwargs)
        except harness.ParityError as error:
            print(error)
            return 1
        print(f"worst error / bound {ratio:.3f}")
        return 0

    for flag, option, module in (("--replay-lr-scheduler", args.replay_lr_scheduler, schedules),
                                 ("--replay-function", args.replay_function, functions)):
        if option is not None:
            try:
                module.parse_case(option[0], option[1])
            except (TypeError, ValueError) as error:
                refuse(flag, error)
            side = module.replay(option[0], option[1])
            print(f"{option[0]}: {side.cases} case(s), {side.compared} values compared, {side.differing} differing "
                  f"from torch, largest difference {side.worst_error:.3g}")
            return 0 if side.differing == 0 else 1

    known = [*OPTIMIZERS, *FUSED, *SCHEDULERS, *schedules.PAIRS, *functions.PAIRS]
    names = args.pairs.split(",") if args.pairs else known
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown pair(s) {unknown}; expected some of {sorted(known)}")
    stats = harness.Stats()
    start = time.perf_counter()
    jobs = [(name, profile, args.seed, args.max_examples) for name in names]
    if args.workers == 1:
        outcomes = (harness.run_pair(*job) for job in jobs)
        _collect(outcomes, stats)
    else:  # spawn: a fresh interpreter per worker (torch and numpy_optim's threads do not survive fork well)
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(harness.run_pair, *job) for job in jobs]
            _collect((future.result() for future in as_completed(futures)), stats)
    # Failures in the order of the pairs, whatever order the workers finished in.
    stats.failures.sort(key=lambda failure: names.index(failure.split(":", 1)[0]))
    data = report.to_json(stats, profile, time.perf_counter() - start, seed=args.seed)
    md, js = report.write(data, Path(args.out))
    print(report.markdown_table(data))
    print(summary(data, names))
    print(f"wrote {md} and {js}")
    return 0 if data["passed"] else 1


def pair_line(name: str, stats: Any, seconds: float) -> str:
    """One line for a finished pair: its cases, steps, worst error / bound (or differing values), time."""
    from .registry import FUSED

    rows = [side for (pair, _, _), side in stats.sides.items() if pair == name]
    # Every torch side of an optimizer pair runs the same cases: count one side per dtype.
    counted = [side for (pair, _, which), side in stats.sides.items() if pair == name and which != "fused"]
    cases, steps = sum(side.cases for side in counted), sum(side.steps for side in counted)
    status = "FAILED" if stats.failures else "passed"
    if rows and all(side.bitwise for side in rows):
        compared, differing = sum(side.compared for side in rows), sum(side.differing for side in rows)
        result = f"{compared} values compared, {differing} differing (bitwise)"
        if name in FUSED:
            result += f", most differing bits {max(side.bits for side in rows)}"
    else:
        result = f"worst error / bound {max((side.worst_ratio for side in rows), default=0.0):.3f}"
    return f"{name}: {status}: {cases} cases, {steps} steps, {result}, {seconds:.1f} s"


def _collect(outcomes: Any, stats: Any) -> None:
    for name, pair_stats, seconds in outcomes:
        stats.sides.update(pair_stats.sides)
        stats.failures.extend(pair_stats.failures)
        print(pair_line(name, pair_stats, seconds), flush=True)
        for failure in pair_stats.failures:
            print(failure, flush=True)


def summary(data: dict[str, Any], names: list[str]) -> str:
    failed = sorted({failure.split(":", 1)[0] for failure in data["failures"]}, key=names.index)
    verdict = "all passed" if not failed else f"{len(failed)} failed: {', '.join(failed)}"
    return (f"parity: {len(names)} pairs, {verdict}; {data['seconds']} s, profile {data['profile']}, "
            f"seed {data['seed']}")


if __name__ == "__main__":
    sys.exit(main())
