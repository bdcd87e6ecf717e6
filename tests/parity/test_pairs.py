"""The parity property on every registry pair, with the loaded Hypothesis profile.

``nox -s tests`` runs these with the light ``ci``/``dev`` profile; ``nox -s parity`` runs the
same checks with the ``parity`` profile and writes the report.
"""

import pytest

import parity
from parity.registry import OPTIMIZERS, SCHEDULERS


@pytest.mark.parametrize("pair", list(OPTIMIZERS))
def test_optimizer_trajectories_track_torch(pair):
    stats = parity.check_pair(pair)
    for dtype in ("float32", "float64"):
        for side in ("default", "fused") if OPTIMIZERS[pair].fused else ("default",):
            s = stats.sides[(pair, dtype, side)]
            assert s.cases > 0 and s.judged > 0, f"{pair} {dtype} {side}: nothing was compared"
            assert s.worst_ratio <= 1.0


@pytest.mark.parametrize("pair", list(SCHEDULERS))
def test_scheduler_learning_rates_track_torch(pair):
    stats = parity.check_scheduler(pair)
    s = stats.sides[(pair, "float64", "schedule")]
    assert s.cases > 0 and s.worst_ratio <= 1.0
