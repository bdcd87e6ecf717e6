"""What the benchmarks time: optimizer configurations, problem sizes, and the sides compared.

A *case* is one configuration (optimizer, hyperparameters, dtype) on one problem (a list
of parameter sizes) for one *side*: numpy_optim (the default, blocked path), numpy_optim
with the plain kernels (the allocating NumPy baseline), torch's default CPU path
(``foreach=None, fused=None``: the single-tensor loop), ``foreach=True`` and ``fused=True``.
:func:`build` makes the optimizer, its parameters and gradients and takes two warm-up
steps (so every state buffer exists); only the returned ``step`` is timed.

>>> [len(sizes) for sizes in SIZES.values()]
[1, 1, 1, 200]
>>> [len(cases) for cases in (CONFIGS, SIDES)]
[8, 5]
>>> int(model_sizes().min()) >= 64 and int(model_sizes().max()) <= 65_536
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import numpy_optim
from numpy_optim import _blocks


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


CONFIGS = [
    Config("SGD", "SGD", {"lr": 0.01}, "float32"),
    Config("SGD-momentum", "SGD", {"lr": 0.01, "momentum": 0.9}, "float32"),
    Config("SGD-nesterov", "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}, "float32"),
    Config("Adam", "Adam", {"lr": 1e-3}, "float32"),
    Config("Adam-amsgrad", "Adam", {"lr": 1e-3, "amsgrad": True}, "float32"),
    Config("AdamW", "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, "float32"),
    Config("AdamW", "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, "float64"),
    Config("SGD-momentum", "SGD", {"lr": 0.01, "momentum": 0.9}, "float64"),
]

#: Problem name -> parameter sizes (elements).
SIZES: dict[str, list[int]] = {
    "1e3": [1_000],
    "1e5": [100_000],
    "1e7": [10_000_000],
    "model200": [int(n) for n in model_sizes()],
}

#: Beyond the grid: 1,000 parameters of 100 elements (where batching small parameters
#: matters most), for AdamW only.
EXTRA_SIZES: dict[str, list[int]] = {"tiny1000": [100] * 1000}
EXTRA_CASES = [("AdamW", "float32", "tiny1000")]

#: Timed rounds per problem (few for 1e7, so the whole run stays a few minutes on 2 cores).
ROUNDS = {"1e3": 300, "1e5": 100, "1e7": 7, "model200": 30, "tiny1000": 30}

#: The sides of every comparison, in the order they run (back to back, per group).
SIDES = ["numpy_optim", "numpy_optim-plain", "torch-default", "torch-foreach", "torch-fused"]


def problem_sizes(size: str) -> list[int]:
    return SIZES[size] if size in SIZES else EXTRA_SIZES[size]


def group_name(config: Config, size: str) -> str:
    return f"{config.name} {config.dtype} {size}"


def _arrays(sizes: list[int], dtype: str, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n, dtype=np.float32).astype(dtype) for n in sizes]
    grads = [(rng.standard_normal(n, dtype=np.float32) * 1e-2).astype(dtype) for n in sizes]
    return params, grads


@contextlib.contextmanager
def _plain() -> Iterator[None]:
    with _blocks.configured(enabled=False):
        yield


def build(config: Config, size: str, side: str) -> Callable[[], None]:
    """Make the optimizer for one case, take two warm-up steps, return its ``step``."""
    params, grads = _arrays(problem_sizes(size), config.dtype)
    if side.startswith("numpy_optim"):
        cls = getattr(numpy_optim, config.optimizer)
        optimizer = cls([{"params": p, "grad": g} for p, g in zip(params, grads)], **config.kwargs)
        if side == "numpy_optim-plain":

            def step() -> None:
                with _plain():
                    optimizer.step()

        else:
            step = optimizer.step
    else:
        import torch

        tensors = []
        for p, g in zip(params, grads):
            tensor = torch.from_numpy(p)
            tensor.grad = torch.from_numpy(g)
            tensors.append(tensor)
        flags = {
            "torch-default": {"foreach": None, "fused": None},
            "torch-foreach": {"foreach": True},
            "torch-fused": {"fused": True},
        }[side]
        step = getattr(torch.optim, config.optimizer)(tensors, **config.kwargs, **flags).step
    for _ in range(2):
        step()
    return step
