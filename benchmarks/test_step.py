"""Time one optimizer step: numpy_optim against torch.optim, in the same run.

Every configuration × problem size is one pytest-benchmark group; its sides
(numpy_optim on the numba backend, numpy_optim on the NumPy backend, torch default,
foreach, fused) run back to back, so they share the machine's conditions. Setup (arrays,
optimizer, two warm-up steps, which also compile the numba kernels) is outside the timed
call; only ``step()`` is timed. The bandwidth floor (:mod:`benchmarks.stream`) runs in the
same session. Nothing here asserts a time: ``benchmarks/report.py`` turns the JSON into
ratios and percentages of the floor.

Run: ``nox -s bench`` (or ``pytest benchmarks --benchmark-only``); one group:
``pytest benchmarks --benchmark-only -k "AdamW and float32 and 1e7"``; the floor alone:
``-k bandwidth``.
"""

from __future__ import annotations

import gc
import time

import pytest

from benchmarks.cases import (
    CONFIGS,
    EXTRA_CASES,
    REST_CONFIGS,
    REST_SIDES,
    REST_SIZES,
    ROUNDS,
    SCHEDULED_CONFIGS,
    SCHEDULED_SIZES,
    SIDES,
    SIZES,
    backend,
    build,
    group_name,
    problem_sizes,
)
from benchmarks.machine import busy_ticks, other_cpu
from benchmarks.stream import Stream

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
] + [
    pytest.param(config, size, side, id=f"{config.name}-{config.dtype}-{size}-{side}")
    for config in REST_CONFIGS
    for size in REST_SIZES
    for side in REST_SIDES[config.optimizer]
] + [
    pytest.param(config, size, side, id=f"{config.name}-{config.dtype}-{size}-{side}")
    for config in SCHEDULED_CONFIGS
    for size in SCHEDULED_SIZES
    for side in SIDES
]


@pytest.mark.parametrize("config, size, side", CASES)
def test_step(benchmark, config, size, side):
    benchmark.group = group_name(config, size)
    benchmark.extra_info.update(
        config=config.name, dtype=config.dtype, size=size, side=side,
        elements=sum(problem_sizes(size)), parameters=len(problem_sizes(size)),
    )
    # other_cpu: the CPU other processes used while this side was set up and timed (the
    # set-up too: a longer window than the rounds alone, which /proc/stat's ticks can resolve)
    before, start = busy_ticks(), time.perf_counter()
    with backend(side):  # numpy_optim's sides: use_backend("numba") or ("numpy")
        step = build(config, size, side)
        benchmark.pedantic(step, rounds=ROUNDS[size], iterations=1, warmup_rounds=1)
    benchmark.extra_info["other_cpu"] = other_cpu(before, time.perf_counter() - start)
    del step
    gc.collect()


#: (shape, array sets) of the bandwidth floor: every optimizer shape, cycling through 8 sets
#: of arrays so that each call streams from memory, not from a large shared L3 (up to 1.6 GB
#: in all); and AdamW's shape on one reused set, as an optimizer's rounds reuse its arrays.
FLOOR = [("R2W1", 8), ("R3W2", 8), ("R4W3", 8), ("R5W4", 8), ("R4W3", 1)]


@pytest.mark.parametrize("shape, sets", FLOOR, ids=[f"{shape}-{sets}sets" for shape, sets in FLOOR])
def test_bandwidth_floor(benchmark, shape, sets):
    """In-place streams over 10M float32 arrays on numpy_optim's threads: the memory floor."""
    with Stream(shape, n=10_000_000, sets=sets) as stream:
        benchmark.group = "bandwidth floor: in-place streams over 10M float32"
        benchmark.extra_info.update(
            shape=shape, sets=sets, elements=stream.n, threads=stream.threads, bytes=stream.bytes,
        )
        before, start = busy_ticks(), time.perf_counter()
        benchmark.pedantic(stream, rounds=50, iterations=1, warmup_rounds=2 * sets)
        benchmark.extra_info["other_cpu"] = other_cpu(before, time.perf_counter() - start)
    del stream
    gc.collect()
