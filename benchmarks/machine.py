"""Describe the machine a benchmark ran on (saved in pytest-benchmark's JSON by conftest.py),
and measure the CPU other processes use while it runs (the report's load check).

>>> info = describe()
>>> sorted(info)[:3]
['blas', 'caches', 'cores']
>>> other_cpu(None, 10.0) is None, other_cpu(busy_ticks(), 0.1) is None  # nothing to say
(True, True)
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "ATEN_CPU_CAPABILITY", "NUMPY_OPTIM_THREADS", "NUMPY_OPTIM_BACKEND",
    "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "NUMBA_CACHE_DIR",
)


#: The key of a run's load measurement (``other_cpu`` over the whole run): in
#: machine_info["numpy_optim"] of the benchmarks' JSON, at the top level of compile_time.py's.
OTHER_CPU_KEY = "other processes' CPU during the run (cores)"
#: Windows shorter than this say nothing: /proc/stat counts in ticks of 10 ms per core.
MIN_WINDOW_S = 0.25


def busy_ticks() -> tuple[int, int] | None:
    """(CPU ticks all processes have spent busy, ticks this process and its waited-for
    children have spent), from /proc/stat and /proc/self/stat; None off Linux.

    Busy is every tick but idle and iowait: steal (a hypervisor running other machines on
    this one's cores) counts as busy, since it slows a run as much as another process.
    """
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        with open("/proc/self/stat") as f:
            own = [int(x) for x in f.read().rsplit(")", 1)[1].split()[11:15]]  # utime stime cutime cstime
    except OSError:
        return None
    return sum(ticks) - ticks[3] - ticks[4], sum(own)


def other_cpu(before: tuple[int, int] | None, seconds: float) -> float | None:
    """Cores' worth of CPU that other processes used since ``before`` (``busy_ticks()`` taken
    ``seconds`` ago); None when that is unknown or the window is shorter than MIN_WINDOW_S."""
    after = busy_ticks()
    if before is None or after is None or seconds < MIN_WINDOW_S:
        return None
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, other / os.sysconf("SC_CLK_TCK") / seconds)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _caches() -> dict[str, str]:
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        caches[f"L{level} {kind}"] = size
    return caches


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _blas() -> dict[str, Any]:
    blas: dict[str, Any] = {}
    try:
        config = np.show_config(mode="dicts")  # type: ignore[func-returns-value]
        dependency = config["Build Dependencies"]["blas"]
        blas["numpy"] = f"{dependency.get('name')} {dependency.get('version')}"
        blas["numpy SIMD"] = config.get("SIMD Extensions", {})
    except Exception as error:  # older NumPy: no dict mode
        blas["numpy"] = f"unknown ({error})"
    try:
        import threadpoolctl

        blas["threadpools"] = [
            {k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads")}
            for pool in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        blas["threadpools"] = "threadpoolctl not installed"
    return blas


def _backend() -> dict[str, Any]:
    """The backend numpy_optim's "numba" side runs on, and the settings its kernels use."""
    import numpy_optim
    from numpy_optim import _blocks

    backend: dict[str, Any] = {}
    try:
        with numpy_optim.use_backend("numba"):
            backend["backend in use_backend('numba')"] = numpy_optim.backend()
        import numba

        backend["numba"] = numba.__version__
    except ImportError as error:
        backend["backend in use_backend('numba')"] = f"unavailable ({error})"
    backend["threads"] = _blocks.settings.threads
    backend["compiled_parallel_min_bytes"] = _blocks.settings.compiled_parallel_min_bytes
    return backend


def describe() -> dict[str, Any]:
    """CPU, cores, caches, memory, versions, BLAS, thread settings, numpy_optim's backend
    and blocking."""
    from numpy_optim import _blocks

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": {"logical": os.cpu_count(), "usable by this process": usable},
        "caches": _caches(),
        "memory": _memory(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "environment variables": {name: os.environ.get(name, "(unset)") for name in THREAD_VARIABLES},
        "numpy_optim backend": _backend(),
        "numpy_optim blocks (NumPy backend)": {
            "enabled": _blocks.settings.enabled,
            "block_bytes": _blocks.settings.block_bytes,
            "threads": _blocks.settings.threads,
            "parallel_min_bytes": _blocks.settings.parallel_min_bytes,
            "batch_max_fraction": _blocks.settings.batch_max_fraction,
        },
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch threads"] = {"intra-op": torch.get_num_threads(), "inter-op": torch.get_num_interop_threads()}
        info["torch parallel"] = [line.strip() for line in torch.__config__.parallel_info().splitlines()[:6]]
    except ImportError:
        info["torch"] = "not installed"
    return info
