"""parity.schedules: every scheduler pair bit for bit against torch, and the check can fail.

A few examples per pair (the loaded Hypothesis profile decides the rest); ``python -m parity``
runs them with the ``parity`` profile's hundreds of cases.
"""

from __future__ import annotations

import json
import re

import pytest

import numpy_optim.lr_scheduler as ours_lib
from parity import schedules
from parity.harness import ParityError, Stats

EXAMPLES = 5


@pytest.mark.parametrize("name", list(schedules.PAIRS))
def test_pair_bitwise_equal_to_torch(name: str) -> None:
    stats = schedules.check(name, max_examples=EXAMPLES)
    row = stats.sides[(name, "float64", "bitwise")]
    assert row.bitwise and row.cases >= 1 and row.steps >= row.cases
    assert row.compared > row.steps  # every step compares several values
    assert row.differing == 0 and row.worst_error == 0.0
    assert json.loads(json.dumps(row.worst_case))["scheduler"]  # a JSON-able case


def test_pairs_cover_every_class_and_the_compositions() -> None:
    expected = set(ours_lib.__all__) - {"LRScheduler"} | {"TwoSchedulers"}
    assert set(schedules.PAIRS) == expected


def _closed_form_exponential(self: ours_lib.ExponentialLR) -> list[float]:
    """The mutant: ExponentialLR as ``base * gamma ** e`` instead of torch's recursion."""
    return [base * self.gamma**self.last_epoch for base in self.base_lrs]


def test_check_fails_on_a_closed_form_exponential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ours_lib.ExponentialLR, "get_lr", _closed_form_exponential)
    stats = Stats()
    with pytest.raises(ParityError) as info:
        schedules.check("ExponentialLR", stats=stats, max_examples=60)
    message = str(info.value)
    assert "python -m parity --replay-lr-scheduler ExponentialLR '" in message
    assert stats.sides[("ExponentialLR", "float64", "bitwise")].differing > 0
    # the replay hint reruns exactly that case: still differing with the mutant, equal without it
    case = re.search(r"--replay-lr-scheduler ExponentialLR '(.*)'", message).group(1)
    assert schedules.replay("ExponentialLR", case).differing > 0
    monkeypatch.undo()
    result = schedules.replay("ExponentialLR", case)
    assert result.differing == 0 and result.compared > 0


def test_check_fails_when_resuming_loses_the_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A load_state_dict that keeps the fresh scheduler's epoch: caught by the resume cases."""
    original = ours_lib.StepLR.load_state_dict

    def forgetful(self: ours_lib.StepLR, state_dict: dict) -> None:
        original(self, {**state_dict, "last_epoch": 0})

    monkeypatch.setattr(ours_lib.StepLR, "load_state_dict", forgetful)
    with pytest.raises(ParityError, match="last_epoch"):
        schedules.check("StepLR", max_examples=60)


def test_check_fails_on_a_missing_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ReduceLROnPlateau that forgets the epoch deprecation warning."""
    original = ours_lib.ReduceLROnPlateau.step

    def silent(self: ours_lib.ReduceLROnPlateau, metrics: float, epoch: int | None = None) -> None:
        original(self, metrics)
        if epoch is not None:
            self.last_epoch = epoch

    monkeypatch.setattr(ours_lib.ReduceLROnPlateau, "step", silent)
    with pytest.raises(ParityError, match="warnings"):
        schedules.check("ReduceLROnPlateau", max_examples=60)
