"""``python -m parity``: run every registry pair with Hypothesis, write the report, exit 1 on failure.

Usage::

    python -m parity                      # all pairs, profile "parity", reports/ in the cwd
    python -m parity --pairs Adam,AdamW --profile dev
    python -m parity --replay '<case json from a failure message>'
    python -m parity --replay-schedule CosineScheduler '{"max_lr": 0.1, ...}'
    python -m parity --replay-lr-scheduler OneCycleLR '<case json from a failure message>'
    python -m parity --replay-function clip_grad_norm_ '<case json from a failure message>'

The pairs: every optimizer (parity/registry.py OPTIMIZERS), the specification's three
schedules (SCHEDULERS), torch's schedulers (parity/schedules.py PAIRS) and clipping and
averaging (parity/functions.py PAIRS); the last two compare bit for bit.

A replay's JSON is checked before anything runs (parity.harness.parse_case and
check_schedule, parity.schedules.parse_case, parity.functions.parse_case): names from the
registry's and the modules' tables only, no unknown key, ints and bools as such, counts and
sizes bounded (parity/harness.py MAX_STEPS, MAX_ELEMENTS, ...). A bad one exits with
status 2 and one line, ``python -m parity: error: <option>: <field> ...``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NoReturn

from . import profiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="Hypothesis profile (default: parity, or $HYPOTHESIS_PROFILE)")
    parser.add_argument("--pairs", default=None, help="comma-separated registry names (default: all)")
    parser.add_argument("--out", default="reports", help="directory for parity.md and parity.json")
    parser.add_argument("--replay", default=None, help="replay one optimizer case (its JSON)")
    parser.add_argument("--replay-schedule", nargs=2, metavar=("PAIR", "KWARGS"), default=None)
    parser.add_argument("--replay-lr-scheduler", nargs=2, metavar=("PAIR", "CASE"), default=None,
                        help="replay one torch-scheduler case (parity/schedules.py)")
    parser.add_argument("--replay-function", nargs=2, metavar=("PAIR", "CASE"), default=None,
                        help="replay one clipping or averaging case (parity/functions.py)")
    args = parser.parse_args(argv)

    import os

    profile = profiles.load(args.profile or os.environ.get("HYPOTHESIS_PROFILE") or "parity")
    from . import functions, harness, report, schedules
    from .registry import OPTIMIZERS, SCHEDULERS

    def refuse(option: str, error: Exception) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {option}: {error}\n")

    if args.replay is not None:
        try:
            spec = harness.parse_case(args.replay)
        except (TypeError, ValueError) as error:
            refuse("--replay", error)
        p = OPTIMIZERS[spec.pair]
        results = harness.run_case(spec, p.ours, p.theirs, name=p.name, buffers=p.buffers, fused=p.fused,
                                   torch_has_step=p.torch_has_step)
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
        ratio = harness.compare_schedule(pair, kwargs)
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

    names = args.pairs.split(",") if args.pairs else [*OPTIMIZERS, *SCHEDULERS, *schedules.PAIRS, *functions.PAIRS]
    known = {*OPTIMIZERS, *SCHEDULERS, *schedules.PAIRS, *functions.PAIRS}
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown pair(s) {unknown}; expected some of {sorted(known)}")
    stats = harness.Stats()
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        try:
            if name in OPTIMIZERS:
                harness.check_pair(name, stats=stats)
            elif name in SCHEDULERS:
                harness.check_scheduler(name, stats=stats)
            elif name in schedules.PAIRS:
                schedules.check(name, stats=stats)
            else:
                functions.check(name, stats=stats)
            print(f"{name}: passed ({time.perf_counter() - t0:.1f} s)", flush=True)
        except AssertionError as error:  # ParityError, or Hypothesis's report of one
            stats.failures.append(f"{name}: {error}")
            print(f"{name}: FAILED\n{error}", flush=True)
    data = report.to_json(stats, profile, time.perf_counter() - start)
    md, js = report.write(data, Path(args.out))
    print(report.markdown_table(data))
    print(f"wrote {md} and {js}")
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
