"""Save a description of the machine, and its load before and after the run, in the JSON."""

from __future__ import annotations

import os
import time
from pathlib import Path

_START: dict[str, object] = {}


def pytest_configure(config):
    target = config.getoption("benchmark_json", None)
    if target is not None:  # pytest-benchmark writes the file but does not make its folder
        Path(target).parent.mkdir(parents=True, exist_ok=True)


def pytest_sessionstart(session):
    _START["loadavg"] = os.getloadavg()
    _START["time"] = time.time()


def pytest_benchmark_update_machine_info(config, machine_info):
    from benchmarks.machine import describe

    info = describe()
    info["load average (1, 5, 15 min) at start"] = [round(x, 2) for x in _START.get("loadavg", ())]
    info["load average (1, 5, 15 min) at end"] = [round(x, 2) for x in os.getloadavg()]
    info["wall time of the run (s)"] = round(time.time() - float(_START.get("time", time.time())), 1)  # type: ignore[arg-type]
    machine_info["numpy_optim"] = info
