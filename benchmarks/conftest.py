"""Save a description of the machine, and its load during the run, in the JSON."""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.machine import OTHER_CPU_KEY, busy_ticks, other_cpu

_START: dict[str, object] = {}


def pytest_configure(config):
    target = config.getoption("benchmark_json", None)
    if target is not None:  # pytest-benchmark writes the file but does not make its folder
        Path(target).parent.mkdir(parents=True, exist_ok=True)


def pytest_sessionstart(session):
    _START["loadavg"] = os.getloadavg()
    _START["time"] = time.perf_counter()
    _START["ticks"] = busy_ticks()


def pytest_benchmark_update_machine_info(config, machine_info):
    from benchmarks.machine import describe

    info = describe()
    seconds = time.perf_counter() - float(_START.get("time", time.perf_counter()))  # type: ignore[arg-type]
    info["load average (1, 5, 15 min) at start"] = [round(x, 2) for x in _START.get("loadavg", ())]
    info["load average (1, 5, 15 min) at end"] = [round(x, 2) for x in os.getloadavg()]
    info["wall time of the run (s)"] = round(seconds, 1)
    cpu = other_cpu(_START.get("ticks"), seconds)  # type: ignore[arg-type]
    info[OTHER_CPU_KEY] = None if cpu is None else round(cpu, 3)
    machine_info["numpy_optim"] = info
