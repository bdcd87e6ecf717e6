"""Memory the optimizers use: persistent state per parameter, and a step's transient peak.

Both are measured on real optimizer objects (the arrays in ``optimizer.state``; NumPy's
own buffers as ``tracemalloc`` sees them, on every thread), not computed from a formula.
The numba kernels allocate nothing; what a step on that backend allocates is NumPy's
(the constants array, flat views).

>>> rows = state_bytes(sizes=[10, 20])
>>> [(row["config"], row["bytes per parameter"]) for row in rows][:2]
[('SGD', 0.0), ('SGD-momentum', 4.0)]
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np

import numpy_optim
from numpy_optim import _blocks

#: (name, optimizer, kwargs), float32, as in the specification's memory table and beyond.
STATE_CONFIGS = [
    ("SGD", "SGD", {}),
    ("SGD-momentum", "SGD", {"momentum": 0.9}),
    ("SGD-nesterov", "SGD", {"momentum": 0.9, "nesterov": True}),
    ("Adam", "Adam", {}),
    ("Adam-amsgrad", "Adam", {"amsgrad": True}),
    ("AdamW", "AdamW", {}),
]


def _optimizer(name: str, kwargs: dict[str, Any], sizes: list[int], dtype: Any = np.float32) -> Any:
    entries = [{"params": np.zeros(n, dtype), "grad": np.ones(n, dtype)} for n in sizes]
    optimizer = getattr(numpy_optim, name)(entries, **kwargs)
    optimizer.step()
    return optimizer


def _state_nbytes(optimizer: Any) -> int:
    return sum(buf.nbytes for key, buffers in optimizer.state.items() if key != "step" for buf in buffers.values())


def state_bytes(sizes: list[int], scale_to: float = 7e9) -> list[dict[str, Any]]:
    """State bytes per parameter of each configuration on a model with these ``sizes``,
    and scaled to a model of ``scale_to`` float32 parameters."""
    rows = []
    parameters = sum(sizes)
    for config, name, kwargs in STATE_CONFIGS:
        total = _state_nbytes(_optimizer(name, kwargs, sizes))
        per_parameter = total / parameters
        rows.append(
            {"config": config, "measured bytes": total, "parameters": parameters,
             "bytes per parameter": per_parameter, "scaled bytes": per_parameter * scale_to}
        )
    return rows


def transient_step_bytes(elements: int = 10_000_000, backend: str = "numba") -> int:
    """Peak bytes allocated during one steady-state AdamW step on ``elements`` float32, on
    numpy_optim's ``backend`` ("numba" or "numpy").

    >>> transient_step_bytes(1000, "numpy") < 2**20
    True
    """
    with numpy_optim.use_backend(backend):
        optimizer = _optimizer("AdamW", {}, [elements])
        optimizer.step()  # kernels compiled; scratch and worker threads exist from here on
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
            optimizer.step()
            return tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()


def scratch_bytes_per_thread() -> int:
    """Work arrays a thread keeps per dtype: 3 kernel rows, plus 5 gather rows once it has
    batched small AMSGrad parameters."""
    return 8 * _blocks.settings.block_bytes
