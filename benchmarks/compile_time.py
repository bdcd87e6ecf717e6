"""The numba backend's compile cost: first steps in new processes, cold and from the cache.

Usage: ``python benchmarks/compile_time.py reports/compile.json [--repeats 3]``
(``benchmarks/report.py`` puts the results in reports/bench.md when this file is beside
reports/bench.json). Nothing is asserted: the report compares the numbers with the targets.

Every measurement is a new process (``sys.executable``) with ``NUMBA_CACHE_DIR`` set to a
new temporary directory. numba looks for a user-provided cache directory before any
other place (``__pycache__`` beside the source, the user-wide cache), so with it set the
cache lives there and nowhere else: the first process compiles from scratch (*cold*), a
second process with the same directory loads the compiled code (*cached*). The JSON keeps
numba's own cache hit and miss counts of every kernel, which show it, and the CPU other
processes used meanwhile (``benchmarks/report.py`` gives no verdict when that is too much).

In each process one optimizer on a small parameter (1,000 elements, so a step itself takes
microseconds) takes its first steps on the numba backend. A step's *extra* time is its
time minus the median of the later, steady steps; the compile cost is the extra time of
the first three steps together (SGD with momentum compiles two kernels: one for its first
step, which copies the gradient into the buffer, one for the steps after). It includes
numba's one-time set-up in the process, not the imports, which are timed apart.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: (name, optimizer, kwargs, dtype)
CONFIGS = [
    ("AdamW", "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, "float32"),
    ("AdamW", "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, "float64"),
    ("Adam-amsgrad", "Adam", {"lr": 1e-3, "amsgrad": True}, "float32"),
    ("SGD", "SGD", {"lr": 0.01}, "float32"),
    ("SGD-momentum", "SGD", {"lr": 0.01, "momentum": 0.9}, "float64"),
]
ELEMENTS = 1_000
FIRST_STEPS = 3  # steps whose extra time is the compile cost
STEADY_STEPS = 7  # steps after them: the steady step time


def child(optimizer: str, kwargs: dict, dtype: str) -> dict:
    """In the new process: time the imports and the first steps of one optimizer."""
    imports = {}
    start = time.perf_counter()
    import numpy as np

    imports["numpy"] = time.perf_counter() - start
    start = time.perf_counter()
    import numba

    imports["numba"] = time.perf_counter() - start
    start = time.perf_counter()
    import numpy_optim

    imports["numpy_optim"] = time.perf_counter() - start
    start = time.perf_counter()
    from numpy_optim import _compiled  # numba is imported: this is llvmlite and the overloads

    imports["numpy_optim._compiled"] = time.perf_counter() - start

    with numpy_optim.use_backend("numba"):
        param, grad = np.ones(ELEMENTS, dtype), np.full(ELEMENTS, 1e-3, dtype)
        opt = getattr(numpy_optim, optimizer)([{"params": param, "grad": grad}], **kwargs)
        steps = []
        for _ in range(FIRST_STEPS + STEADY_STEPS):
            start = time.perf_counter()
            opt.step()
            steps.append(time.perf_counter() - start)
    steady = statistics.median(steps[FIRST_STEPS:])
    kernels = [kernel.stats for kernel in _compiled._kernels.values()]
    return {
        "numba": numba.__version__,
        "imports_s": imports,
        "steps_s": steps,
        "steady_s": steady,
        "extra_s": sum(t - steady for t in steps[:FIRST_STEPS]),
        "kernels": len(kernels),
        "cache_hits": sum(sum(stats.cache_hits.values()) for stats in kernels),
        "cache_misses": sum(sum(stats.cache_misses.values()) for stats in kernels),
        "cache_paths": sorted({str(stats.cache_path) for stats in kernels}),
    }


def _run_child(config: tuple, cache_dir: str) -> dict:
    _, optimizer, kwargs, dtype = config
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    env.pop("NUMPY_OPTIM_BACKEND", None)
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps([optimizer, kwargs, dtype])],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["cache_in_dir"] = all(path.startswith(cache_dir) for path in result["cache_paths"])
    return result


def measure(repeats: int = 3) -> dict:
    """Per configuration and repeat: a cold process, then a cached one on the same cache."""
    from benchmarks.machine import OTHER_CPU_KEY, busy_ticks, other_cpu

    runs: dict[int, dict[str, list[dict]]] = {i: {"cold": [], "cached": []} for i in range(len(CONFIGS))}
    load_start, ticks_start, start = os.getloadavg(), busy_ticks(), time.perf_counter()
    for _ in range(repeats):
        for index, config in enumerate(CONFIGS):  # configurations interleaved: load spreads evenly
            with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache_dir:
                runs[index]["cold"].append(_run_child(config, cache_dir))
                runs[index]["cached"].append(_run_child(config, cache_dir))
    results = []
    for index, (name, optimizer, kwargs, dtype) in enumerate(CONFIGS):
        row = {"config": name, "optimizer": optimizer, "kwargs": kwargs, "dtype": dtype}
        for kind in ("cold", "cached"):
            extra = [run["extra_s"] for run in runs[index][kind]]
            row[kind] = {
                "median_s": statistics.median(extra),
                "min_s": min(extra),
                "max_s": max(extra),
                "kernels": runs[index][kind][0]["kernels"],
                "cache_hits": [run["cache_hits"] for run in runs[index][kind]],
                "cache_misses": [run["cache_misses"] for run in runs[index][kind]],
                "cache_in_dir": all(run["cache_in_dir"] for run in runs[index][kind]),
                "runs": runs[index][kind],
            }
        results.append(row)
    cpu = other_cpu(ticks_start, time.perf_counter() - start)  # the children's CPU is ours: not counted
    every = [run for by_kind in runs.values() for kind in by_kind.values() for run in kind]
    return {
        "datetime": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "numba": every[0]["numba"],
        "elements": ELEMENTS,
        "repeats": repeats,
        "imports_s": {
            name: statistics.median(run["imports_s"][name] for run in every) for name in every[0]["imports_s"]
        },
        "configs": results,
        "load average (1, 5, 15 min) at start": [round(x, 2) for x in load_start],
        "load average (1, 5, 15 min) at end": [round(x, 2) for x in os.getloadavg()],
        OTHER_CPU_KEY: None if cpu is None else round(cpu, 3),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        optimizer, kwargs, dtype = json.loads(argv[1])
        print(json.dumps(child(optimizer, kwargs, dtype)))
        return 0
    if not argv or argv[0].startswith("-"):
        print("usage: python benchmarks/compile_time.py OUTPUT_JSON [--repeats N]", file=sys.stderr)
        return 2
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 3
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.* when run as a script
    target = Path(argv[0])
    results = measure(repeats)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=1) + "\n")
    for row in results["configs"]:
        print(
            f"{row['config']} {row['dtype']}: cold {row['cold']['median_s']:.3f} s, "
            f"cached {row['cached']['median_s']:.3f} s ({row['cold']['kernels']} kernel(s))"
        )
    print(f"imports: {', '.join(f'{k} {v * 1e3:.0f} ms' for k, v in results['imports_s'].items())}")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
