"""Time one optimizer step: numpy_optim against torch.optim, in the same run.

Every configuration × problem size is one pytest-benchmark group; its sides
(numpy_optim, numpy_optim with the plain kernels, torch default, foreach, fused) run back
to back, so they share the machine's conditions. Setup (arrays, optimizer, two warm-up
steps) is outside the timed call; only ``step()`` is timed. Nothing here asserts a time:
``benchmarks/report.py`` turns the JSON into ratios.

Run: ``nox -s bench`` (or ``pytest benchmarks --benchmark-only``); one group:
``pytest benchmarks --benchmark-only -k "AdamW and float32 and 1e7"``.
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest

from benchmarks.cases import CONFIGS, EXTRA_CASES, ROUNDS, SIDES, SIZES, build, group_name, problem_sizes


def _busy_ticks() -> tuple[int, int] | None:
    """(CPU ticks all processes spent busy, ticks this process spent), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(ticks) - ticks[3] - ticks[4], int(own[11]) + int(own[12])  # minus idle, iowait


def _other_cpu(before: tuple[int, int] | None, seconds: float) -> float | None:
    """Cores' worth of CPU that other processes used since ``before``; None when the window
    is too short for /proc/stat's 10 ms ticks to say anything."""
    after = _busy_ticks()
    if before is None or after is None or seconds < 0.25:
        return None
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, other / os.sysconf("SC_CLK_TCK") / seconds)

CASES = [
    pytest.param(config, size, side, id=f"{config.name}-{config.dtype}-{size}-{side}")
    for config in CONFIGS
    for size in SIZES
    for side in SIDES
] + [
    pytest.param(config, size, side, id=f"{config.name}-{config.dtype}-{size}-{side}")
    for name, dtype, size in EXTRA_CASES
    for config in CONFIGS
    if (config.name, config.dtype) == (name, dtype)
    for side in SIDES
]


@pytest.mark.parametrize("config, size, side", CASES)
def test_step(benchmark, config, size, side):
    step = build(config, size, side)
    benchmark.group = group_name(config, size)
    benchmark.extra_info.update(
        config=config.name, dtype=config.dtype, size=size, side=side,
        elements=sum(problem_sizes(size)), parameters=len(problem_sizes(size)),
    )
    before, start = _busy_ticks(), time.perf_counter()
    benchmark.pedantic(step, rounds=ROUNDS[size], iterations=1, warmup_rounds=1)
    benchmark.extra_info["other_cpu"] = _other_cpu(before, time.perf_counter() - start)
    del step
    gc.collect()


N = 10_000_000


@pytest.mark.parametrize("operation", ["copyto", "add", "add-inplace", "multiply-inplace"])
def test_bandwidth_reference(benchmark, operation):
    """Plain NumPy passes over 10M float32 arrays: the machine's practical bandwidth."""
    a, b, c = (np.ones(N, np.float32) for _ in range(3))
    call, streams = {
        "copyto": (lambda: np.copyto(a, b), 2),
        "add": (lambda: np.add(a, b, out=c), 3),
        "add-inplace": (lambda: np.add(a, b, out=a), 3),
        "multiply-inplace": (lambda: np.multiply(a, 1.0, out=a), 2),
    }[operation]
    benchmark.group = "reference: one NumPy pass over 10M float32"
    benchmark.extra_info.update(operation=operation, bytes=streams * N * 4)
    benchmark.pedantic(call, rounds=20, iterations=1, warmup_rounds=2)
