"""Hypothesis profiles for the whole project, chosen in one place.

* ``dev``: few examples, fast local runs (the default outside CI).
* ``ci``: derandomized, more examples; chosen when the environment variable ``CI`` is set.
* ``parity``: derandomized, many examples; ``nox -s parity`` / ``python -m parity``.

Select one explicitly with ``HYPOTHESIS_PROFILE=name``. tests/conftest.py loads
:func:`load`; ``python -m parity`` loads ``parity`` unless told otherwise.

Whatever profile is loaded (Hypothesis's own default in a plain script), the parity
properties run under :func:`for_trajectories`: no deadline (a case runs whole
trajectories on several torch paths, hundreds of milliseconds) and no health check that a
slow or large draw trips; and, given a seed, each pair draws from its own (:func:`pair_seed`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, seed, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("dev", max_examples=15, deadline=None, suppress_health_check=_QUIET)
# derandomize: the same draws every run (and no example database: nothing carried between runs).
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "parity", max_examples=400, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=_QUIET,
)


def default_profile() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")


def load(name: str | None = None) -> str:
    """Load profile ``name`` (default: $HYPOTHESIS_PROFILE, else ``ci`` under CI, else ``dev``)."""
    name = name or default_profile()
    settings.load_profile(name)
    return name


def for_trajectories(max_examples: int | None = None) -> settings:
    """The loaded profile's settings with no deadline and the slow-data health checks off
    (``max_examples`` overrides the profile's count)."""
    current = settings()
    quiet = sorted({*current.suppress_health_check, *_QUIET}, key=lambda check: check.value)
    extra: dict[str, Any] = {} if max_examples is None else {"max_examples": max_examples}
    return settings(current, deadline=None, suppress_health_check=quiet, **extra)


def pair_seed(name: str, base: int) -> int:
    """The seed pair ``name`` draws from in a run seeded ``base`` (``python -m parity --seed``):
    a stable hash of both, so pairs draw different cases and a run is reproducible."""
    return zlib.crc32(f"{base}:{name}".encode())


def seeded(name: str, base: int | None) -> Callable[[Any], Any]:
    """``hypothesis.seed(pair_seed(name, base))``, or no decorator when ``base`` is None
    (the profile decides: derandomized, or fresh random draws)."""
    return (lambda test: test) if base is None else seed(pair_seed(name, base))
