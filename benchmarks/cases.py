"""What the benchmarks time: optimizer configurations, problem sizes, and the sides compared.

A *case* is one configuration (optimizer, hyperparameters, dtype) on one problem (a list
of parameter sizes) for one *side*: numpy_optim on its numba backend (``numpy_optim``),
numpy_optim on its NumPy backend (``numpy_optim-numpy``: the blocked NumPy kernels),
torch's default CPU path (``foreach=None, fused=None``: the single-tensor loop),
``foreach=True`` and ``fused=True``. :func:`build` makes the optimizer, its parameters and
gradients and takes two warm-up steps (so every state buffer exists and every kernel is
compiled); only the returned ``step`` is timed, inside :func:`backend` of the same side.

>>> [len(sizes) for sizes in SIZES.values()]
[1, 1, 1, 200]
>>> [len(cases) for cases in (CONFIGS, SIDES, REST_CONFIGS, SCHEDULED_CONFIGS)]
[10, 5, 9, 2]
>>> int(model_sizes().min()) >= 64 and int(model_sizes().max()) <= 65_536
True
>>> with backend("numpy_optim-numpy"):
...     numpy_optim.backend()
'numpy'
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import numpy_optim


def model_sizes(count: int = 200, low: int = 64, high: int = 65_536, seed: int = 0) -> np.ndarray:
    """``count`` parameter sizes spread log-uniformly between ``low`` and ``high`` elements."""
    rng = np.random.default_rng(seed)
    return np.round(np.exp(rng.uniform(np.log(low), np.log(high), count))).astype(np.int64)


@dataclass(frozen=True)
class Config:
    """One optimizer configuration: the same kwargs drive numpy_optim and torch."""

    name: str
    optimizer: str  # "SGD" | "Adam" | "AdamW", in numpy_optim and in torch.optim
    kwargs: dict[str, Any]
    dtype: str
    #: A learning-rate scheduler stepped after every optimizer step: (class name in
    #: lr_scheduler, its kwargs). numpy_optim's gives every entry its own lr (an entry is a
    #: parameter group); torch's side keeps its one group of all the tensors.
    scheduler: tuple[str, dict[str, Any]] | None = None


CONFIGS = [
    Config("SGD", "SGD", {"lr": 0.01}, "float32"),
    Config("SGD-momentum", "SGD", {"lr": 0.01, "momentum": 0.9}, "float32"),
    Config("SGD-nesterov", "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}, "float32"),
    Config("Adam", "Adam", {"lr": 1e-3}, "float32"),
    Config("Adam-amsgrad", "Adam", {"lr": 1e-3, "amsgrad": True}, "float32"),
    Config("AdamW", "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, "float32"),
    Config("SGD", "SGD", {"lr": 0.01}, "float64"),
    Config("SGD-momentum", "SGD", {"lr": 0.01, "momentum": 0.9}, "float64"),
    Config("Adam", "Adam", {"lr": 1e-3}, "float64"),
    Config("AdamW", "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, "float64"),
]

#: The rest of torch.optim's elementwise optimizers (float32, torch's defaults unless a
#: switch adds a buffer): timed on REST_SIZES only, against torch default and foreach (and
#: fused for Adagrad, the only one of them torch has a fused CPU kernel for).
REST_CONFIGS = [
    Config("Adagrad", "Adagrad", {"lr": 1e-2}, "float32"),
    Config("Adadelta", "Adadelta", {"lr": 1.0}, "float32"),
    Config("Adamax", "Adamax", {"lr": 2e-3}, "float32"),
    Config("ASGD", "ASGD", {"lr": 1e-2, "t0": 1.0}, "float32"),  # averaging on from the third step
    Config("NAdam", "NAdam", {"lr": 2e-3}, "float32"),
    Config("RAdam", "RAdam", {"lr": 1e-3}, "float32"),
    Config("RMSprop", "RMSprop", {"lr": 1e-2}, "float32"),
    Config("RMSprop-centered-momentum", "RMSprop", {"lr": 1e-2, "centered": True, "momentum": 0.9}, "float32"),
    Config("Rprop", "Rprop", {"lr": 1e-2}, "float32"),
]
REST_SIZES = ["1e5", "1e7", "model200"]

#: A step and a scheduler step together: what a schedule costs each side per step.
SCHEDULED_CONFIGS = [
    Config("AdamW+OneCycleLR", "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, "float32",
           scheduler=("OneCycleLR", {"max_lr": 1e-3, "total_steps": 10**6})),
    Config("SGD-momentum+CosineAnnealingLR", "SGD", {"lr": 0.01, "momentum": 0.9}, "float32",
           scheduler=("CosineAnnealingLR", {"T_max": 10**6})),
]
SCHEDULED_SIZES = ["1e5", "model200"]
REST_SIDES = {name: ["numpy_optim", "numpy_optim-numpy", "torch-default", "torch-foreach"]
              + (["torch-fused"] if name == "Adagrad" else []) for name in {c.optimizer for c in REST_CONFIGS}}

#: Problem name -> parameter sizes (elements).
SIZES: dict[str, list[int]] = {
    "1e3": [1_000],
    "1e5": [100_000],
    "1e7": [10_000_000],
    "model200": [int(n) for n in model_sizes()],
}

#: Beyond the grid: 1,000 parameters of 100 elements (where per-parameter overhead
#: matters most), for the float32 configurations the targets name.
EXTRA_SIZES: dict[str, list[int]] = {"tiny1000": [100] * 1000}
EXTRA_CASES = [("SGD", "float32", "tiny1000"), ("Adam", "float32", "tiny1000"), ("AdamW", "float32", "tiny1000")]

#: Timed rounds per problem. The whole suite (215 cases and the bandwidth floor) should take
#: 2-3 minutes on the quiet 2-core reference machine (about 55 s of timed rounds, estimated
#: from an earlier run, plus ~0.3 s of setup per case and the first run's numba compiles);
#: other load makes torch's multi-threaded rounds, and so the run, much slower.
ROUNDS = {"1e3": 300, "1e5": 100, "1e7": 15, "model200": 50, "tiny1000": 50}

#: The sides of every comparison, in the order they run (back to back, per group).
SIDES = ["numpy_optim", "numpy_optim-numpy", "torch-default", "torch-foreach", "torch-fused"]

#: numpy_optim's backend for each of its sides.
BACKENDS = {"numpy_optim": "numba", "numpy_optim-numpy": "numpy"}


def problem_sizes(size: str) -> list[int]:
    return SIZES[size] if size in SIZES else EXTRA_SIZES[size]


def group_name(config: Config, size: str) -> str:
    return f"{config.name} {config.dtype} {size}"


def _arrays(sizes: list[int], dtype: str, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n, dtype=np.float32).astype(dtype) for n in sizes]
    grads = [(rng.standard_normal(n, dtype=np.float32) * 1e-2).astype(dtype) for n in sizes]
    return params, grads


def backend(side: str) -> contextlib.AbstractContextManager[Any]:
    """The context a side's steps run in: numpy_optim's backend for its sides (entered once
    around the warm-up and the timed rounds, so the switch is not timed), nothing for torch."""
    if side in BACKENDS:
        return numpy_optim.use_backend(BACKENDS[side])
    return contextlib.nullcontext()


def build(config: Config, size: str, side: str) -> Callable[[], None]:
    """Make the optimizer for one case, take two warm-up steps, return its ``step``.

    Call it, and the ``step`` it returns, inside ``backend(side)``.
    """
    params, grads = _arrays(problem_sizes(size), config.dtype)
    if side in BACKENDS:
        cls = getattr(numpy_optim, config.optimizer)
        optimizer = cls([{"params": p, "grad": g} for p, g in zip(params, grads)], **config.kwargs)
        schedulers: Any = numpy_optim.lr_scheduler
    else:
        import torch

        tensors = []
        for p, g in zip(params, grads):
            tensor = torch.from_numpy(p)
            tensor.grad = torch.from_numpy(g)
            tensors.append(tensor)
        cls = getattr(torch.optim, config.optimizer)
        flags = {
            # the default path; only SGD, Adam, AdamW and Adagrad have a ``fused`` argument
            "torch-default": {"foreach": None, **({"fused": None} if "fused" in inspect.signature(cls).parameters
                                                  else {})},
            "torch-foreach": {"foreach": True},
            "torch-fused": {"fused": True},
        }[side]
        optimizer = cls(tensors, **config.kwargs, **flags)
        schedulers = torch.optim.lr_scheduler
    step = optimizer.step
    if config.scheduler is not None:
        name, kwargs = config.scheduler
        scheduler = getattr(schedulers, name)(optimizer, **kwargs)

        def step() -> None:
            optimizer.step()
            scheduler.step()

    for _ in range(2):  # SGD with momentum compiles two kernels: its first step and the others
        step()
    return step
