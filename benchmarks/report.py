"""Turn pytest-benchmark's JSON into reports/bench.md: ratios, the bandwidth floor, targets.

Usage: ``python benchmarks/report.py reports/bench.json reports/bench.md [reports/compile.json]``
(``nox -s bench`` runs it after the benchmarks and ``benchmarks/compile_time.py``). The
compile times come from the third file, by default ``compile.json`` beside the benchmark
JSON, and are left out when it does not exist. The timing tables come from the JSON only;
the memory section is measured when this script runs (bytes, not seconds: deterministic).

Ratios are of medians taken in the same run, numpy_optim (numba backend) / torch: below 1,
numpy_optim is faster. Each target's verdict is *met* or *missed*, or *no verdict* for
every timed target when the load check fails (:func:`load_check`: other processes used
more than LOADED_CPU cores during the run): the times of a loaded machine say nothing
about the targets.

>>> format_time(0.0123)
'12.3 ms'
>>> format_ratio(0.456)
'0.46×'
>>> step_bytes("Adam-amsgrad", "float32", 10), step_bytes("SGD-momentum", "float64", 10)
(360, 400)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SIDES = ["numpy_optim", "numpy_optim-numpy", "torch-default", "torch-foreach", "torch-fused"]
DISTURBED = 2.0  # median / min above this: most rounds were slowed by something else
#: The load check: other processes' CPU (cores) above this, over the run, while a group ran
#: or over the compile times, and the run gives no verdict (a quiet 2-core run: below 0.07).
LOADED_CPU = 0.2
#: The verdicts a target can get (and "–": not in this run).
MET, MISSED, NO_VERDICT = "met", "**missed**", "no verdict"
MAIN_SIZES = ("1e7", "model200", "tiny1000")

#: Arrays a step reads and writes per element (in-place: no write-allocate), by configuration.
STREAMS = {
    "SGD": (2, 1),  # read param, grad; write param
    "SGD-momentum": (3, 2),  # read param, grad, buf; write param, buf
    "SGD-nesterov": (3, 2),
    "Adam": (4, 3),  # read param, grad, exp_avg, exp_avg_sq; write param, exp_avg, exp_avg_sq
    "AdamW": (4, 3),
    "Adam-amsgrad": (5, 4),  # and max_exp_avg_sq
    "Adagrad": (3, 2),  # param, grad, sum
    "Adadelta": (4, 3),  # param, grad, square_avg, acc_delta
    "Adamax": (4, 3),  # param, grad, exp_avg, exp_inf
    "ASGD": (3, 2),  # param, grad, ax
    "NAdam": (4, 3),  # param, grad, exp_avg, exp_avg_sq
    "RAdam": (4, 3),
    "RMSprop": (3, 2),  # param, grad, square_avg
    "RMSprop-centered-momentum": (5, 4),  # and grad_avg, momentum_buffer
    "Rprop": (4, 3),  # param, grad, prev, step_size
}
ITEMSIZE = {"float32": 4, "float64": 8}

#: The speed targets of the issue: (what, groups, torch side, limit on numpy_optim / that side).
SPEED_TARGETS: list[tuple[str, list[str], str, float]] = [
    ("Adam, AdamW float32 ≤ 1.0× torch fused", [
        f"{c} float32 {s}" for c in ("AdamW", "Adam") for s in ("1e7", "model200")], "torch-fused", 1.0),
    ("Adam, AdamW float32 ≤ 0.3× torch default", [
        f"{c} float32 {s}" for c in ("AdamW", "Adam") for s in ("1e7", "model200")], "torch-default", 0.3),
    ("SGD, plain and with momentum, ≤ 1.0× torch fused", [
        f"{c} float32 {s}" for c in ("SGD", "SGD-momentum", "SGD-nesterov") for s in ("1e7", "model200")],
     "torch-fused", 1.0),
    ("float64 ≤ 1.1× torch fused", [
        f"{c} float64 {s}" for c in ("AdamW", "Adam", "SGD", "SGD-momentum") for s in ("1e7", "model200")],
     "torch-fused", 1.1),
    ("1,000 parameters of 100 elements ≤ 1.0× torch fused", [
        f"{c} float32 tiny1000" for c in ("AdamW", "Adam", "SGD")], "torch-fused", 1.0),
]
TRANSIENT_MIB, COLD_S, CACHED_S = 4.0, 1.0, 0.2

COMPARE = """\
## Comparing two runs

Every run saves pytest-benchmark's JSON. To look for regressions, keep the JSON of a
baseline run and compare a new run against it:

```bash
nox -s bench -- --benchmark-save=baseline      # also stores the run: .benchmarks/<machine>/0001_baseline.json
cp reports/bench.json reports/bench-baseline.json
# ... change the code ...
nox -s bench -- -k numpy_optim --benchmark-compare=0001 --benchmark-compare-fail=median:10%
pytest-benchmark compare reports/bench-baseline.json reports/bench.json --columns=median,iqr --sort=name
```

`--benchmark-compare=NNNN` (a run saved with `--benchmark-save` or `--benchmark-autosave`
under `.benchmarks/`; without a number, the latest) prints the saved medians beside the new
ones, group by group; `--benchmark-compare-fail=median:10%` fails the run if a median of a
benchmark that ran got 10% slower. `-k numpy_optim` runs numpy_optim's own rows only (both
backends; their test ids end in `numpy_optim` or `numpy_optim-numpy`), so the gate is on
them alone: torch's rows are the reference, and their noise must not fail it. That run's
report has no ratios; use the gate on a quiet machine only (this report never asserts a time).
`pytest-benchmark compare FILE FILE ...` compares any saved JSON files, such as two
`reports/bench.json` kept from different commits. Compare ratios (numpy_optim / torch,
same run) rather than raw times across machines or across runs on a shared machine.
"""


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    for unit, factor in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def format_percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} %"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def step_bytes(config: str, dtype: str, elements: int) -> int:
    """Bytes one step must move at least: every array read once, every written one once."""
    reads, writes = STREAMS[config]
    return (reads + writes) * ITEMSIZE[dtype] * elements


# --------------------------------------------------------------------------------------
# Reading the JSON
# --------------------------------------------------------------------------------------


class Run:
    """The optimizer benchmarks of one JSON, by group and side, and the bandwidth floor."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.median: dict[str, dict[str, float]] = {}
        self.min: dict[str, dict[str, float]] = {}
        self.info: dict[str, dict[str, Any]] = {}  # group -> extra_info of its first side
        self.load: dict[str, float] = {}  # group -> most CPU other processes used during a side
        self.order: list[str] = []
        self.floor_rows: list[dict[str, Any]] = []
        for bench in data["benchmarks"]:
            extra = bench.get("extra_info", {})
            if "shape" in extra:
                self.floor_rows.append(bench)
                continue
            side = extra.get("side")
            if side is None:
                continue
            group = bench["group"]
            if group not in self.median:
                self.median[group], self.min[group], self.info[group] = {}, {}, extra
                self.order.append(group)
            self.median[group][side] = bench["stats"]["median"]
            self.min[group][side] = bench["stats"]["min"]
            if extra.get("other_cpu") is not None:
                self.load[group] = max(self.load.get(group, 0.0), extra["other_cpu"])

    def get(self, group: str, side: str) -> float | None:
        return self.median.get(group, {}).get(side)

    def bandwidth(self, shape: str) -> float | None:
        """Bytes per second of the in-place stream of this shape on fresh arrays (median)."""
        for bench in self.floor_rows:
            extra = bench["extra_info"]
            if extra["shape"] == shape and extra["sets"] > 1:
                return extra["bytes"] / bench["stats"]["median"]
        return None

    def floor(self, group: str) -> tuple[int, float | None] | None:
        """(bytes a step of this group moves, the time that takes at the floor's rate)."""
        info = self.info.get(group)
        if info is None or info.get("config") not in STREAMS:
            return None
        moved = step_bytes(info["config"], info["dtype"], info["elements"])
        reads, writes = STREAMS[info["config"]]
        rate = self.bandwidth(f"R{reads}W{writes}")
        return moved, None if rate is None else moved / rate

    def disturbed(self, group: str) -> list[str]:
        """Sides whose median is more than DISTURBED× their fastest round: preempted rounds."""
        medians, minima = self.median[group], self.min[group]
        return [side for side in SIDES if side in medians and medians[side] > DISTURBED * minima[side]]


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------


def load_check(run: Run, compile_times: dict[str, Any] | None) -> tuple[str, list[str], list[str]]:
    """(what the load check measured, as sentences; the measurements over the limit; those
    missing).

    The check: the CPU other processes used (cores' worth, from /proc/stat, steal
    included) over the whole benchmark run, while each group ran, and over the compile
    times must each stay at most LOADED_CPU; a measurement that is missing fails it too.
    Nothing over the limit and nothing missing: the machine was quiet, and the times give
    verdicts.
    """
    from benchmarks.machine import OTHER_CPU_KEY

    info = run.data.get("machine_info", {}).get("numpy_optim", {})
    parts, loaded, missing = [], [], []
    whole = info.get(OTHER_CPU_KEY)
    if whole is not None:
        parts.append(f"{whole:.2f} on average over the benchmark run")
        if whole > LOADED_CPU:
            loaded.append(f"{whole:.2f} cores of other processes over the benchmark run")
    if run.load:
        worst = max(run.load, key=run.load.__getitem__)
        above = sum(cpu > LOADED_CPU for cpu in run.load.values())
        parts.append(f"at most {run.load[worst]:.2f} while one group ran ({worst}; {above} of "
                     f"{len(run.load)} measured groups above the limit)")
        if above:
            loaded.append(f"up to {run.load[worst]:.2f} cores while a group ran, {above} of {len(run.load)} "
                           "groups above the limit")
    if whole is None and not run.load:
        parts.append("not measured during the benchmark run (no /proc/stat, or a JSON from before the check)")
        missing.append("the benchmark run's load was not measured")
    if compile_times is not None:
        cpu = compile_times.get(OTHER_CPU_KEY)
        if cpu is None:
            parts.append("not measured during the compile times (a compile.json from before the check)")
            missing.append("the compile times' load was not measured")
        else:
            parts.append(f"{cpu:.2f} during the compile times")
            if cpu > LOADED_CPU:
                loaded.append(f"{cpu:.2f} cores of other processes during the compile times")
    loads = [info.get(f"load average (1, 5, 15 min) at {when}") for when in ("start", "end")]
    loads_text = ["?" if load is None else ", ".join(map(str, load)) for load in loads]
    sentences = (
        f"Load check (the CPU other processes used, in cores, from /proc/stat; limit {LOADED_CPU:g} each): "
        f"{'; '.join(parts)}. Load average (1, 5, 15 min), which counts the benchmarks themselves: "
        f"{loads_text[0]} at the start, {loads_text[1]} at the end."
    )
    return sentences, loaded, missing


def _verdict(value: float | None, limit: float, quiet: bool = True) -> str:
    """A target's verdict: MET, MISSED, NO_VERDICT (the times of a loaded run), or ``–``
    (not in this run)."""
    if value is None:
        return "–"
    if not quiet:
        return NO_VERDICT
    return MET if value <= limit else MISSED


def targets_section(run: Run, transient: dict[str, int] | None, compile_times: dict[str, Any] | None) -> list[str]:
    measured, loaded, missing = load_check(run, compile_times)
    quiet = not loaded and not missing
    lines = [
        "## Targets",
        "",
        "Each target of the issue, with this run's value. Speed: numpy_optim on the numba backend "
        "/ the torch side, ratio of the medians in the same run; *fastest rounds* is the same "
        "ratio of each side's fastest round, less sensitive to other load. The issue names the "
        "problems (one 10M parameter, the 200-parameter model) for Adam and AdamW; the SGD and "
        "float64 targets are checked on the same two. The compile targets are per configuration, "
        "in new processes (compile times section).",
        "",
    ]
    if quiet:
        lines += [f"The machine was quiet: the load check passed. {measured}", ""]
    else:
        lines += [
            f"**No verdict: {'the machine was loaded' if loaded else 'the load was not measured'}** "
            f"({'; '.join(loaded + missing)}). {measured} Other work on the cores makes torch's "
            "multi-threaded sides wait for a core and slows each side by a different amount, so the "
            "ratios and compile times of a loaded run (or of one whose load is unknown) can neither "
            "meet nor miss a target: every timed target reads *no verdict*. The memory targets keep "
            "theirs (bytes, measured when this report was written). Rerun `nox -s bench` on a quiet "
            "machine.",
            "",
        ]
    lines += [
        "| target | case | measured | fastest rounds | verdict |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    verdicts: dict[str, list[str]] = {"timed": [], "memory": []}  # every measured target's verdict
    for what, groups, side, limit in SPEED_TARGETS:
        for group in groups:
            ratio = _ratio(run.get(group, "numpy_optim"), run.get(group, side))
            fastest = _ratio(run.min.get(group, {}).get("numpy_optim"), run.min.get(group, {}).get(side))
            verdict = _verdict(ratio, limit, quiet)
            if ratio is not None:
                verdicts["timed"].append(verdict)
            lines.append(f"| {what} | {group} | {format_ratio(ratio)} | {format_ratio(fastest)} | {verdict} |")
    if transient is not None:
        for backend, peak in transient.items():
            verdict = _verdict(peak / 2**20, TRANSIENT_MIB)  # bytes: load does not change them
            verdicts["memory"].append(verdict)
            lines.append(
                f"| transient memory ≤ {TRANSIENT_MIB:g} MiB per steady-state step | AdamW float32 1e7, "
                f"{backend} backend | {peak / 2**20:.3f} MiB | | {verdict} |"
            )
    if compile_times is not None:
        imports = compile_times["imports_s"]
        numba_import = imports.get("numba", 0.0) + imports.get("numpy_optim._compiled", 0.0)
        for row in compile_times["configs"]:
            case = f"{row['config']} {row['dtype']} ({row['cold']['kernels']} kernel(s))"
            cold, cached = row["cold"]["median_s"], row["cached"]["median_s"]
            for what, value, limit, note in (
                (f"first call of a kernel configuration ≤ {COLD_S:g} s of JIT", cold, COLD_S, ""),
                (f"cached on disk: a new process pays ≤ {CACHED_S:g} s", cached, CACHED_S,
                 f" (with the numba import: {cached + numba_import:.2f} s"
                 + (f", {_verdict(cached + numba_import, CACHED_S)})" if quiet else ")")),
            ):
                verdict = _verdict(value, limit, quiet)
                verdicts["timed"].append(verdict)
                lines.append(f"| {what} | {case} | {value:.2f} s | | {verdict}{note} |")
    missing = sum(len(groups) for _, groups, _, _ in SPEED_TARGETS) - sum(
        _ratio(run.get(g, "numpy_optim"), run.get(g, side)) is not None for _, groups, side, _ in SPEED_TARGETS
        for g in groups
    )
    every = verdicts["timed"] + verdicts["memory"]
    if quiet:
        summary = f"**{every.count(MET)} of {len(every)} measured targets met, {every.count(MISSED)} missed**"
    else:
        memory = verdicts["memory"]
        summary = (f"**No verdict on the {len(verdicts['timed'])} timed targets: "
                   f"{'the machine was loaded' if loaded else 'the load was not measured'}**"
                   + (f"; memory: {memory.count(MET)} of {len(memory)} met" if memory else ""))
    lines += ["", summary + (f"; {missing} speed targets not in this run." if missing else ".")]
    lines.append("")
    if compile_times is None:
        lines += ["No compile times: run `python benchmarks/compile_time.py reports/compile.json` first.", ""]
    return lines


def main_section(run: Run) -> list[str]:
    """The large cases: both backends, torch default and fused, and the bandwidth floor."""
    lines = [
        "## Large problems and the bandwidth floor",
        "",
        "numba and NumPy are numpy_optim's two backends (`use_backend(\"numba\")`, "
        "`use_backend(\"numpy\")`: the blocked NumPy kernels). *bytes* is what a step must move "
        "at least, every array read once and every written array written once: per element 12 B "
        "for SGD (read p, g; write p), 20 B with momentum, 28 B for Adam and AdamW (read p, g, m, "
        "v; write p, m, v), 36 B with amsgrad; twice that in float64. *floor* is the time those "
        "bytes take at this machine's in-place bandwidth, measured in the same run by the "
        "stream of the same shape (bandwidth section); *% of floor* is floor / median step time.",
        "",
        "1e7 is one parameter of 10M elements; model200 is 200 parameters of 64 to 65,536 "
        "elements (log-uniform), 2.44M elements in all; tiny1000 is 1,000 parameters of 100 "
        "elements. The floor is DRAM-level (streams over a working set larger than the "
        "machine's caches), while a benchmark round reuses its arrays: model200 (68 MB for "
        "AdamW float32) can stay in a large L3, so it may exceed 100 %, and tiny1000 (2.8 MB) "
        "is decided by per-call overhead, not bandwidth.",
        "",
        "| case | numba | NumPy | torch default | torch fused | numba / default | numba / fused "
        "| bytes | floor | numba % of floor | fused % of floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for group in run.order:
        if group.split()[-1] not in MAIN_SIZES:
            continue
        ours, fused = run.get(group, "numpy_optim"), run.get(group, "torch-fused")
        default = run.get(group, "torch-default")
        floor = run.floor(group)
        moved, floor_time = floor if floor is not None else (None, None)
        lines.append(
            f"| {group} | {format_time(ours)} | {format_time(run.get(group, 'numpy_optim-numpy'))} | "
            f"{format_time(default)} | {format_time(fused)} | {format_ratio(_ratio(ours, default))} | "
            f"{format_ratio(_ratio(ours, fused))} | {'–' if moved is None else f'{moved / 1e6:.3g} MB'} | "
            f"{format_time(floor_time)} | "
            f"{format_percent(None if floor_time is None or not ours else 100 * floor_time / ours)} | "
            f"{format_percent(None if floor_time is None or not fused else 100 * floor_time / fused)} |"
        )
    lines.append("")
    return lines


def all_groups_section(run: Run) -> list[str]:
    lines = [
        "## Every group: median step times and ratios",
        "",
        "One row per benchmark group (configuration, dtype, problem), its sides run back to back. "
        "Ratios are numba / torch; *NumPy / numba* is the speed-up of the numba backend over the "
        "NumPy one.",
        "",
        f"A time marked † had a median more than {DISTURBED:g}× its fastest round: most of its rounds "
        "were slowed by something else (typically torch's OpenMP parallel regions waiting for a "
        "core that another process holds); its ratios say little. *other load* is the CPU other "
        "processes used while the group's sides were set up and timed (cores, from /proc/stat, the "
        "most of its sides; – when every side took less than 0.25 s, too short for its 10 ms ticks): "
        f"above {LOADED_CPU:g} the machine was shared, and the run gives no verdict (targets section).",
        "",
        "| group | numba | NumPy | torch default | torch foreach | torch fused "
        "| numba/default | numba/foreach | numba/fused | NumPy/numba | other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    disturbed_groups = 0
    for group in run.order:
        sides = run.median[group]
        ours = sides.get("numpy_optim")
        marked = run.disturbed(group)
        disturbed_groups += bool(marked)
        cells = [(format_time(sides[s]) + (" †" if s in marked else "")) if s in sides else "–" for s in SIDES]
        ratios = [_ratio(ours, sides.get(s)) for s in ("torch-default", "torch-foreach", "torch-fused")]
        ratios.append(_ratio(sides.get("numpy_optim-numpy"), ours))
        load = run.load.get(group)
        lines.append(
            f"| {group} | " + " | ".join(cells) + " | " + " | ".join(format_ratio(r) for r in ratios)
            + f" | {'–' if load is None else f'{load:.2f}'} |"
        )
    lines += ["", f"Groups with a † time: {disturbed_groups} of {len(run.order)}.", ""]
    return lines


def bandwidth_section(run: Run) -> list[str]:
    if not run.floor_rows:
        return []
    first = run.floor_rows[0]["extra_info"]
    lines = [
        "## Bandwidth floor",
        "",
        f"In-place streams over {first['elements'] / 1e6:g}M-element float32 arrays "
        "(`benchmarks/stream.py`): numba loops (`nogil`, `error_model=\"numpy\"`), each call split "
        f"in {first['threads']} contiguous parts run on {first['threads']} Python threads, as the "
        "numba backend splits a large parameter. R*r*W*w reads *r* arrays and writes *w* of them "
        "back: R2W1 is SGD's traffic (`p += s*g`), R3W2 SGD with momentum, R4W3 Adam and AdamW, "
        "R5W4 Adam with amsgrad. bytes = (r + w) × 4 × elements (writes go to arrays just read: "
        "no write-allocate). With 8 sets, each call streams the next of 8 independent sets of "
        "arrays, so its data was last touched more than 1 GB of traffic earlier and comes from "
        "memory, not from the (large, shared) L3 of a VM's host: these rates (medians) are the "
        "floor. With 1 set the arrays are reused every call, as a benchmark round reuses an "
        "optimizer's. On a shared machine these rates move with the other load (the memory bus "
        "is shared too): compare them with the *other load* column.",
        "",
        "| stream | sets | bytes per call | median | GB/s (median) | GB/s (fastest) | other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for bench in run.floor_rows:
        extra, stats = bench["extra_info"], bench["stats"]
        other = extra.get("other_cpu")
        lines.append(
            f"| {extra['shape']} | {extra['sets']} | {extra['bytes'] / 1e6:.0f} MB | {format_time(stats['median'])} | "
            f"{extra['bytes'] / stats['median'] / 1e9:.1f} | {extra['bytes'] / stats['min'] / 1e9:.1f} | "
            f"{'–' if other is None else f'{other:.2f}'} |"
        )
    lines.append("")
    return lines


def compile_section(compile_times: dict[str, Any] | None) -> list[str]:
    if compile_times is None:
        return []
    imports = compile_times["imports_s"]
    lines = [
        "## Compile times (numba backend)",
        "",
        f"From `benchmarks/compile_time.py` ({compile_times.get('datetime', '?')}; numba "
        f"{compile_times['numba']}, Python {compile_times['python']}; median of "
        f"{compile_times['repeats']} repeats, range in brackets). Each number is a new process with "
        "its own empty `NUMBA_CACHE_DIR`, which numba then uses instead of any other cache: "
        f"one optimizer on {compile_times['elements']:,} elements takes its first steps on the "
        "numba backend; the cost is the time of the first three steps minus three steady steps. "
        "*Cold* compiles the kernels (numba's cache misses); *cached* is a second new process on "
        "the same cache directory (cache hits). Both include numba's one-time set-up in a "
        "process, not the imports:",
        f"`import numpy` {imports['numpy'] * 1e3:.0f} ms, `import numba` {imports['numba'] * 1e3:.0f} ms, "
        f"`import numpy_optim` {imports['numpy_optim'] * 1e3:.0f} ms, then `numpy_optim._compiled` "
        f"{imports['numpy_optim._compiled'] * 1e3:.0f} ms (numpy_optim imports numba at the first step "
        "that uses it, so a new process's first step pays the numba import too).",
        "",
        "| configuration | kernels | cold | cached | cache misses (cold) | cache hits (cached) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in compile_times["configs"]:
        cold, cached = row["cold"], row["cached"]
        lines.append(
            f"| {row['config']} {row['dtype']} | {cold['kernels']} | {cold['median_s']:.2f} s "
            f"({cold['min_s']:.2f}–{cold['max_s']:.2f}) | {cached['median_s']:.3f} s "
            f"({cached['min_s']:.3f}–{cached['max_s']:.3f}) | {', '.join(map(str, cold['cache_misses']))} | "
            f"{', '.join(map(str, cached['cache_hits']))} |"
        )
    loads = [compile_times.get(f"load average (1, 5, 15 min) at {when}") for when in ("start", "end")]
    lines += ["", f"Load average (1, 5, 15 min) at start and end: {loads[0]}, {loads[1]}.", ""]
    return lines


def memory_section(transient: dict[str, int]) -> list[str]:
    from benchmarks.cases import model_sizes
    from benchmarks.memory import state_bytes

    model = [int(n) for n in model_sizes()]
    scaled = state_bytes(model)
    direct = {row["config"]: row for row in state_bytes([10_000_000])}
    lines = [
        "## Memory",
        "",
        "Optimizer state (the arrays in `optimizer.state`, float32), measured on real optimizer "
        f"objects after one step: on the 200-parameter model ({sum(model):,} parameters), scaled to "
        "a 7B-parameter model (GB = 10^9 bytes), and measured directly on one 10,000,000-element "
        "parameter.",
        "",
        "| optimizer | bytes / parameter | 7B model (fp32) | measured: 10M parameters |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in scaled:
        lines.append(
            f"| {row['config']} | {row['bytes per parameter']:g} | {row['scaled bytes'] / 1e9:.0f} GB | "
            f"{direct[row['config']]['measured bytes'] / 1e6:.0f} MB |"
        )
    lines += [
        "",
        "Transient memory of one steady-state AdamW step on 10M float32 parameters (peak of the "
        "allocations during `step()` on every thread, as `tracemalloc` sees them; the parameter "
        f"is 40 MB; target ≤ {TRANSIENT_MIB:g} MiB):",
        "",
    ]
    lines += [f"- {backend} backend: **{peak / 2**20:.3f} MiB**" for backend, peak in transient.items()]
    lines += [
        "",
        "The numba kernels allocate nothing. The NumPy backend's blocks work in per-thread "
        "scratch rows allocated at a thread's first step and reused by every later one, so "
        "they are not part of a steady step's peak.",
        "",
    ]
    return lines


def machine_section(data: dict[str, Any]) -> list[str]:
    info = data.get("machine_info", {})
    ours = info.get("numpy_optim", {})
    lines = ["## Machine", ""]
    if not ours:
        lines.append(f"- {info.get('cpu', {}).get('brand_raw', info.get('processor', 'unknown CPU'))}")
    for key, value in ours.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        lines.append(f"- **{key}**: {value}")
    lines += [
        f"- **benchmark run**: {data.get('datetime', '?')}, pytest-benchmark {data.get('version', '?')}, "
        f"commit {data.get('commit_info', {}).get('id', '?')}"
        f"{' (dirty)' if data.get('commit_info', {}).get('dirty') else ''}",
        "",
        "The load average shows other work on the machine during the run: on a shared machine "
        "every time is noisy, the ratios within one group (run back to back) less so.",
        "",
    ]
    return lines


def transient_bytes() -> dict[str, int]:
    """Transient peak of a steady AdamW float32 10M step, per backend (measured now)."""
    from benchmarks.memory import transient_step_bytes

    return {backend: transient_step_bytes(backend=backend) for backend in ("numba", "numpy")}


def render(data: dict[str, Any], compile_times: dict[str, Any] | None = None, memory: bool = True) -> str:
    run = Run(data)
    transient = transient_bytes() if memory else None
    lines = [
        "# numpy_optim vs torch.optim: step time, bandwidth floor, memory, compile time",
        "",
        "Written by `benchmarks/report.py` from pytest-benchmark's JSON; reproduce with "
        "`nox -s bench`. Median of the timed rounds; only `step()` is timed (parameters, "
        "gradients and optimizer are built, and two warm-up steps taken, which also compile the "
        "numba kernels, outside the timing). *numba* is numpy_optim on its numba backend, *NumPy* "
        "on its NumPy backend; torch default is `foreach=None, fused=None` (the single-tensor "
        "loop on the CPU).",
        "",
    ]
    lines += targets_section(run, transient, compile_times)
    lines += main_section(run)
    lines += bandwidth_section(run)
    lines += compile_section(compile_times)
    lines += all_groups_section(run)
    if transient is not None:
        lines += memory_section(transient)
    lines += machine_section(data)
    lines += COMPARE.splitlines()
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python benchmarks/report.py BENCH_JSON OUTPUT_MD [COMPILE_JSON]", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.* when run as a script
    source, target = Path(argv[0]), Path(argv[1])
    compile_path = Path(argv[2]) if len(argv) == 3 else source.with_name("compile.json")
    compile_times = json.loads(compile_path.read_text()) if compile_path.exists() else None
    if compile_times is None:
        print(f"note: no {compile_path}; the report has no compile times", file=sys.stderr)
    data = json.loads(source.read_text())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(data, compile_times))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
