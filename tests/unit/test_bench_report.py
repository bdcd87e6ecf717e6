"""benchmarks/report.py's verdicts and its load check, on hand-made benchmark JSON.

A run gives a verdict (met or missed) on a timed target only when the load check passes:
other processes used at most LOADED_CPU cores over the benchmark run, while every group
ran, and over the compile times. Otherwise every timed target reads "no verdict", and the
report says the machine was loaded and what the check measured. The medians below are
chosen by hand, and so are the verdicts they must give:

=======================  ===========  ===========  =====================  ==================
group                    numpy_optim  torch side   ratio                  target: verdict
=======================  ===========  ===========  =====================  ==================
AdamW float32 1e7        6 ms         fused 4 ms   1.5                    ≤ 1.0: missed
AdamW float32 1e7        6 ms         default 40   0.15                   ≤ 0.3: met
Adam float32 model200    2 ms         fused 2.5    0.8                    ≤ 1.0: met
Adam float32 model200    2 ms         default 5    0.4                    ≤ 0.3: missed
SGD float64 1e7          2.1 ms       fused 2      1.05                   ≤ 1.1: met
=======================  ===========  ===========  =====================  ==================

Memory (bytes, not times: a verdict under any load): 100,000 B ≤ 4 MiB met; 5 MiB missed.
Compile: cold 0.5 s ≤ 1 s met; cached 0.25 s ≤ 0.2 s missed (with the 0.1 s numba
import, 0.35 s: missed). In all 9 targets, 5 met and 4 missed, of which 7 are timed; the
other 20 of the 25 speed targets have no group in the data.
"""

from __future__ import annotations

import re

import pytest

from benchmarks import machine, report
from benchmarks.machine import OTHER_CPU_KEY

MS = 1e-3
#: group -> side -> median (s); each side's fastest round is 0.9 × its median.
MEDIANS = {
    ("AdamW", "float32", "1e7"): {"numpy_optim": 6 * MS, "torch-default": 40 * MS, "torch-fused": 4 * MS},
    ("Adam", "float32", "model200"): {"numpy_optim": 2 * MS, "torch-default": 5 * MS, "torch-fused": 2.5 * MS},
    ("SGD", "float64", "1e7"): {"numpy_optim": 2.1 * MS, "torch-fused": 2 * MS},
}
TRANSIENT = {"numba": 100_000, "numpy": 5 * 2**20}
EXPECTED = {  # (target, case) -> verdict on a quiet machine
    ("Adam, AdamW float32 ≤ 1.0× torch fused", "AdamW float32 1e7"): "**missed**",
    ("Adam, AdamW float32 ≤ 0.3× torch default", "AdamW float32 1e7"): "met",
    ("Adam, AdamW float32 ≤ 1.0× torch fused", "Adam float32 model200"): "met",
    ("Adam, AdamW float32 ≤ 0.3× torch default", "Adam float32 model200"): "**missed**",
    ("float64 ≤ 1.1× torch fused", "SGD float64 1e7"): "met",
    ("first call of a kernel configuration ≤ 1 s of JIT", "AdamW float32 (1 kernel(s))"): "met",
    ("cached on disk: a new process pays ≤ 0.2 s", "AdamW float32 (1 kernel(s))"):
        "**missed** (with the numba import: 0.35 s, **missed**)",
}
MEMORY = {
    ("transient memory ≤ 4 MiB per steady-state step", "AdamW float32 1e7, numba backend"): "met",
    ("transient memory ≤ 4 MiB per steady-state step", "AdamW float32 1e7, numpy backend"): "**missed**",
}


def bench_json(whole: float | None, group_cpu: float | None, loaded_group_cpu: float | None = None) -> dict:
    """pytest-benchmark's JSON of a run: ``whole`` is the run's other-process CPU (None: not
    recorded), ``group_cpu`` every side's, ``loaded_group_cpu`` that of SGD float64 1e7's sides."""
    benchmarks = []
    for (config, dtype, size), sides in MEDIANS.items():
        group = f"{config} {dtype} {size}"
        for side, median in sides.items():
            cpu = loaded_group_cpu if loaded_group_cpu is not None and config == "SGD" else group_cpu
            benchmarks.append({
                "group": group, "name": f"test_step[{config}-{dtype}-{size}-{side}]",
                "extra_info": {"config": config, "dtype": dtype, "size": size, "side": side,
                               "elements": 10_000_000, "parameters": 1, "other_cpu": cpu},
                "stats": {"median": median, "min": 0.9 * median},
            })
    info = {"load average (1, 5, 15 min) at start": [3.1, 2.0, 1.2],
            "load average (1, 5, 15 min) at end": [3.4, 2.6, 1.5]}
    if whole is not None:
        info[OTHER_CPU_KEY] = whole
    return {"benchmarks": benchmarks, "machine_info": {"numpy_optim": info}}


def compile_json(cpu: float | None) -> dict:
    """compile_time.py's JSON: one configuration; ``cpu`` is the other-process CPU (None: not recorded)."""
    cold = {"median_s": 0.5, "min_s": 0.45, "max_s": 0.6, "kernels": 1, "cache_misses": [1], "cache_hits": [0]}
    cached = {"median_s": 0.25, "min_s": 0.2, "max_s": 0.3, "kernels": 1, "cache_misses": [0], "cache_hits": [1]}
    data = {
        "numba": "0.68.1", "python": "3.11.7", "repeats": 1, "elements": 1000,
        "imports_s": {"numpy": 0.05, "numba": 0.1, "numpy_optim": 0.02, "numpy_optim._compiled": 0.0},
        "configs": [{"config": "AdamW", "dtype": "float32", "cold": cold, "cached": cached}],
    }
    if cpu is not None:
        data[OTHER_CPU_KEY] = cpu
    return data


def targets(data: dict, compile_times: dict | None) -> tuple[dict[tuple[str, str], str], str]:
    """(target, case) -> verdict cell of the targets table, and the whole section's text."""
    lines = report.targets_section(report.Run(data), TRANSIENT, compile_times)
    verdicts = {}
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("target", "---"):
            verdicts[(cells[0], cells[1])] = cells[4]
    return verdicts, "\n".join(lines)


def test_a_quiet_run_gives_every_target_its_verdict():
    # 0.2 cores over the compile times: at the limit, which is allowed ("at most").
    verdicts, text = targets(bench_json(whole=0.05, group_cpu=0.03), compile_json(0.2))
    assert {key: verdicts[key] for key in EXPECTED} == EXPECTED
    assert {key: verdicts[key] for key in MEMORY} == MEMORY
    measured = {**EXPECTED, **MEMORY}
    assert all(verdict == "–" for key, verdict in verdicts.items() if key not in measured)
    assert len(verdicts) - len(measured) == 20
    assert "**5 of 9 measured targets met, 4 missed**; 20 speed targets not in this run." in text
    assert "The machine was quiet: the load check passed." in text
    assert "0.05 on average over the benchmark run" in text and "0.20 during the compile times" in text
    assert "no verdict" not in text.lower()


@pytest.mark.parametrize("data, compile_times, why", [
    (bench_json(whole=1.5, group_cpu=1.4), compile_json(0.05), "1.50 cores of other processes over the benchmark run"),
    (bench_json(whole=0.1, group_cpu=0.02, loaded_group_cpu=0.9), compile_json(0.05),
     "up to 0.90 cores while a group ran, 1 of 3 groups above the limit"),
    (bench_json(whole=0.05, group_cpu=0.03), compile_json(0.21), "0.21 cores of other processes during the compile"),
], ids=["whole-run", "one-group", "compile-times"])
def test_a_loaded_run_gives_no_verdict_on_any_timed_target(data, compile_times, why):
    verdicts, text = targets(data, compile_times)
    for key in EXPECTED:
        assert verdicts[key].startswith("no verdict"), (key, verdicts[key])
        assert "met" not in verdicts[key] and "missed" not in verdicts[key], (key, verdicts[key])
    assert verdicts[("cached on disk: a new process pays ≤ 0.2 s", "AdamW float32 (1 kernel(s))")] == (
        "no verdict (with the numba import: 0.35 s)")
    assert {key: verdicts[key] for key in MEMORY} == MEMORY  # bytes: load does not change them
    assert "**No verdict: the machine was loaded**" in text and why in text
    assert "Load average (1, 5, 15 min), which counts the benchmarks themselves: 3.1, 2.0, 1.2 at the start" in text
    assert ("**No verdict on the 7 timed targets: the machine was loaded**; memory: 1 of 2 met; "
            "20 speed targets not in this run.") in text
    assert "measured targets met" not in text


def test_a_run_whose_load_was_not_measured_gives_no_verdict():
    verdicts, text = targets(bench_json(whole=None, group_cpu=None), compile_json(0.01))
    assert all(verdicts[key].startswith("no verdict") for key in EXPECTED)
    assert "**No verdict: the load was not measured** (the benchmark run's load was not measured)" in text
    verdicts, text = targets(bench_json(whole=0.01, group_cpu=0.01), compile_json(None))
    assert all(verdicts[key].startswith("no verdict") for key in EXPECTED)
    assert "the compile times' load was not measured" in text


def test_groups_alone_measure_a_json_without_the_whole_run_figure():
    # A JSON from before the whole-run figure: the groups' own measurements decide.
    verdicts, text = targets(bench_json(whole=None, group_cpu=0.04), compile_json(0.01))
    assert {key: verdicts[key] for key in EXPECTED} == EXPECTED
    assert "at most 0.04 while one group ran" in text


def test_the_whole_report_under_load_has_no_met_or_missed_in_its_targets():
    text = report.render(bench_json(whole=1.2, group_cpu=1.1), compile_json(0.9), memory=False)
    section = text[text.index("## Targets"):text.index("## Large problems")]
    assert not re.search(r"\b(met|missed)\b", section), section
    assert section.count("| no verdict") == 7


def test_other_cpu_counts_the_ticks_of_other_processes(monkeypatch):
    # 250 busy ticks on the machine, 100 of them this process's: 150 ticks of others in 1 s.
    monkeypatch.setattr(machine, "busy_ticks", lambda: (1250, 600))
    monkeypatch.setattr(machine.os, "sysconf", lambda name: 100)
    assert machine.other_cpu((1000, 500), 1.0) == pytest.approx(1.5)
    assert machine.other_cpu((1000, 500), 0.1) is None  # shorter than /proc/stat's ticks can resolve
    assert machine.other_cpu(None, 1.0) is None  # no /proc/stat
    assert machine.other_cpu((1000, 300), 1.0) == 0.0  # (never negative: ticks counted at different moments)

