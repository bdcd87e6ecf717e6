"""Save and resume numpy_optim schedulers in fresh processes (NumPy only: no torch here).

Used by tests/parity/test_lr_scheduler_torch.py::test_fresh_process_resume_continues_torchs_run::

    python resume_schedule.py save STATE.pkl K     # build every case, run K steps, pickle the state dicts
    python resume_schedule.py load STATE.pkl N K   # build afresh, load, run steps K+1 .. K+N, print the lrs

The second command prints JSON ``{case: [[lr.hex() per entry], ...]}``, one row after loading
and one per step. :data:`CASES` builds each case from a scheduler module (``lib``:
numpy_optim.lr_scheduler here, torch.optim.lr_scheduler in the test), so both libraries run
exactly the same schedules.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Callable
from typing import Any

import numpy as np


def warmup(e: float) -> float:
    return min(1.0, (e + 1) / 4)


def decay(e: float) -> float:
    return 0.97


class Power:
    """A callable object: torch saves its ``__dict__`` in the scheduler's state dict."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def __call__(self, e: float) -> float:
        return self.gamma**e


def metric(t: int) -> float:
    """ReduceLROnPlateau's metric at step t: improves, then plateaus."""
    return max(1.0 - 0.1 * t, 0.35) + (0.01 if t % 5 == 0 else 0.0)


#: case -> (optimizer: "SGD" or "Adam", function (lib, optimizer) -> scheduler)
CASES: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "LambdaLR": ("SGD", lambda lib, o: lib.LambdaLR(o, [warmup, Power(0.9)])),
    "MultiplicativeLR": ("SGD", lambda lib, o: lib.MultiplicativeLR(o, decay)),
    "StepLR": ("SGD", lambda lib, o: lib.StepLR(o, 3, gamma=0.7)),
    "MultiStepLR": ("SGD", lambda lib, o: lib.MultiStepLR(o, [5, 2, 2, 9], gamma=0.9)),
    "ConstantLR": ("SGD", lambda lib, o: lib.ConstantLR(o, factor=1 / 3, total_iters=6)),
    "LinearLR": ("SGD", lambda lib, o: lib.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=9)),
    "ExponentialLR": ("SGD", lambda lib, o: lib.ExponentialLR(o, 0.95)),
    "PolynomialLR": ("SGD", lambda lib, o: lib.PolynomialLR(o, total_iters=11, power=2.5)),
    "CosineAnnealingLR": ("SGD", lambda lib, o: lib.CosineAnnealingLR(o, T_max=5, eta_min=1e-3)),
    "CyclicLR": ("Adam", lambda lib, o: lib.CyclicLR(o, 0.01, [0.1, 0.2], step_size_up=3, mode="exp_range",
                                                     gamma=0.99)),
    "OneCycleLR": ("Adam", lambda lib, o: lib.OneCycleLR(o, [0.1, 0.05], total_steps=20, three_phase=True)),
    "CosineAnnealingWarmRestarts": ("SGD", lambda lib, o: lib.CosineAnnealingWarmRestarts(o, 2, T_mult=2)),
    "ReduceLROnPlateau": ("SGD", lambda lib, o: lib.ReduceLROnPlateau(o, patience=1, factor=0.5, cooldown=1)),
    "SequentialLR": ("SGD", lambda lib, o: lib.SequentialLR(
        o, [lib.LinearLR(o, 0.2, total_iters=4), lib.CosineAnnealingLR(o, 6)], milestones=[4])),
    "ChainedScheduler": ("SGD", lambda lib, o: lib.ChainedScheduler(
        [lib.ConstantLR(o, 0.5, total_iters=5), lib.ExponentialLR(o, 0.9)])),
}


def entries() -> list[dict[str, Any]]:
    """Two entries: the first without its own lr (the optimizer's), the second with one."""
    rng = np.random.default_rng(7)
    return [{"params": rng.standard_normal(3), "grad": rng.standard_normal(3)},
            {"params": rng.standard_normal(3), "grad": rng.standard_normal(3), "lr": 0.037}]


def build(name: str, params: list[np.ndarray] | None = None) -> tuple[Any, Any]:
    import numpy_optim
    import numpy_optim.lr_scheduler as lib

    kind, make = CASES[name]
    groups = entries()
    if params is not None:
        for group, p in zip(groups, params):
            group["params"] = p
    optimizer = (numpy_optim.SGD(groups, lr=0.1, momentum=0.9) if kind == "SGD"
                 else numpy_optim.Adam(groups, lr=0.1, betas=(0.9, 0.99)))
    return optimizer, make(lib, optimizer)


def advance(name: str, optimizer: Any, scheduler: Any, t: int) -> None:
    """Step t (1-based): the optimizer, then the scheduler."""
    optimizer.step()
    if name == "ReduceLROnPlateau":
        scheduler.step(metric(t))
    else:
        scheduler.step()


def lrs(optimizer: Any) -> list[str]:
    return [float(group["lr"]).hex() for group in optimizer.param_groups]


def save(path: str, k: int) -> None:
    saved = {}
    for name in CASES:
        optimizer, scheduler = build(name)
        for t in range(1, k + 1):
            advance(name, optimizer, scheduler, t)
        saved[name] = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                       "params": [group["params"].copy() for group in optimizer.param_groups]}
    with open(path, "wb") as f:
        pickle.dump(saved, f)


def load(path: str, k: int, n: int) -> dict[str, list[list[str]]]:
    with open(path, "rb") as f:
        saved = pickle.load(f)
    out = {}
    for name in CASES:
        optimizer, scheduler = build(name, saved[name]["params"])  # build, then load: torch's docs' order
        optimizer.load_state_dict(saved[name]["optimizer"])
        scheduler.load_state_dict(saved[name]["scheduler"])
        rows = [lrs(optimizer)]
        for t in range(k + 1, k + n + 1):
            advance(name, optimizer, scheduler, t)
            rows.append(lrs(optimizer))
        out[name] = rows
    return out


if __name__ == "__main__":
    command, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if command == "save":
        save(path, count)
    else:
        print(json.dumps(load(path, int(sys.argv[4]), count)))
    assert "torch" not in sys.modules, "the fresh processes must not need torch"
