"""parity/functions.py: every pair passes a short Hypothesis run with a bitwise row, and
each pair's check catches a deliberately wrong implementation (a check that cannot fail is
a defect)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

import numpy_optim.clip_grad as clip_grad  # noqa: E402
import numpy_optim.swa_utils as swa_utils  # noqa: E402
from parity import functions  # noqa: E402
from parity.harness import ParityError, Stats  # noqa: E402


@pytest.mark.parametrize("name", list(functions.PAIRS))
def test_pair_passes_with_a_bitwise_row(name):
    stats = functions.check(name, max_examples=10)
    rows = {key: side for key, side in stats.sides.items() if key[0] == name}
    assert rows, name
    assert all(key[2] == "bitwise" and side.bitwise for key, side in rows.items())
    assert sum(side.cases for side in rows.values()) >= 10
    assert sum(side.compared for side in rows.values()) > 0
    assert all(side.steps >= side.cases for side in rows.values())
    assert sum(side.differing for side in rows.values()) == 0
    assert all(side.worst_case.get("pair") == name and side.worst_error == 0.0 for side in rows.values())


def numpy_linalg_norm(x, ord=2.0, *, threads=1):
    """The wrong norm: NumPy's (pairwise summation, its own order)."""
    x = np.asarray(x)
    if x.size == 0:
        return np.zeros((), x.dtype)
    return np.asarray(np.linalg.norm(x.reshape(-1).astype(x.dtype), ord), x.dtype)


def swa_with_reciprocal(averaged, current, n):
    """The wrong SWA average: multiply by 1/(n+1) instead of dividing by n+1."""
    return averaged + (current - averaged) * averaged.dtype.type(1 / (n + 1))


def lerp_rounded_twice(start, end, weight):
    """The wrong lerp: start + w * (end - start) with the product rounded (no FMA)."""
    start[...] = start + start.dtype.type(weight) * (end - start)


def ema_avg_algebraic(decay=0.999):
    """The wrong EMA avg_fn: ema + (1 - decay) * (current - ema), algebraically the same."""
    def update(ema, current, n):
        return ema + ema.dtype.type(1 - decay) * (current - ema)
    return update


def swa_multi_with_a_float64_weight():
    """The wrong SWA multi fn: the Python-float weight 1/(n+1), not torch's float32 tensor."""
    def update(averaged, current, n):
        for a, c in zip(averaged, current):
            swa_utils._lerp_(a, c, 1 / (n + 1))
    return update


def clip_value_without_the_lower_bound(entries, clip_value):
    """The wrong clip_grad_value_: forgets clamp_min."""
    for _, g in clip_grad._gradients(entries, "entries", writeable=True):
        np.minimum(g, g.dtype.type(clip_value), out=g)


def swalr_lerp_form(self):
    """The wrong SWALR.get_lr: lr + (swa_lr - lr) * alpha instead of torch's two products."""
    step = self._step_count - 1
    if self.anneal_epochs == 0:
        step = max(1, step)
    prev_alpha = self.anneal_func(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
    groups = self.optimizer.param_groups
    prev = [self._get_initial_lr(g["lr"], g["swa_lr"], prev_alpha) for g in groups]
    alpha = self.anneal_func(max(0, min(1, step / max(1, self.anneal_epochs))))
    return [lr + (g["swa_lr"] - lr) * alpha for g, lr in zip(groups, prev)]


MUTANTS = {
    "clip_grad_norm_": (clip_grad, "vector_norm", numpy_linalg_norm),
    "clip_grad_value_": (clip_grad, "clip_grad_value_", clip_value_without_the_lower_bound),
    "AveragedModel": (swa_utils, "_swa_average", swa_with_reciprocal),
    "AveragedModel+ema_multi_avg_fn": (swa_utils, "_lerp_", lerp_rounded_twice),
    "AveragedModel+ema_avg_fn": (swa_utils, "get_ema_avg_fn", ema_avg_algebraic),
    "AveragedModel+swa_multi_avg_fn": (swa_utils, "get_swa_multi_avg_fn", swa_multi_with_a_float64_weight),
    "SWALR": (swa_utils.SWALR, "get_lr", swalr_lerp_form),
}


def test_every_pair_has_a_mutant():
    assert set(MUTANTS) == set(functions.PAIRS)


@pytest.mark.parametrize("name", list(functions.PAIRS))
def test_a_wrong_implementation_is_caught(name, monkeypatch):
    owner, attribute, wrong = MUTANTS[name]
    monkeypatch.setattr(owner, attribute, wrong)
    stats = Stats()
    with pytest.raises(ParityError) as info:
        functions.check(name, stats=stats, max_examples=40)
    message = str(info.value)
    assert f"Parity failure: {name} vs torch" in message
    case = json.loads(message.split("\n  case: ", 1)[1].split("\n", 1)[0])   # the case, as JSON
    assert functions.run_case(name, case, raise_on_difference=False).differing > 0
    assert sum(side.differing for key, side in stats.sides.items() if key[0] == name) > 0
    assert any(side.worst_error > 0 for side in stats.sides.values())
    monkeypatch.undo()
    assert functions.run_case(name, case).differing == 0                  # the real one passes it


def test_outcome_counts_a_zero_of_the_wrong_sign_and_ignores_only_nan_payloads_when_told():
    out = functions.Outcome("float32")
    out.arrays("zeros", np.array([0.0, 1.0], np.float32), np.array([-0.0, 1.0], np.float32))
    assert (out.compared, out.differing) == (2, 1) and 0 < out.worst_error < 1e-300
    nan_a = np.array([np.nan], np.float32)
    nan_b = np.array([0x7FFFFFFF], np.uint32).view(np.float32)
    out.arrays("nan payload", nan_a, nan_b)
    assert out.differing == 2 and out.worst_error == math.inf
    out.arrays("nan payload ignored", nan_a, nan_b, nan_payloads=False)
    assert out.differing == 2
    out.floats("lrs", [0.1, 0.2], [0.1, 0.2 + 2**-55])
    assert out.differing == 3
