"""Hypothesis profiles for the whole project, chosen in one place.

* ``dev``: few examples, fast local runs (the default outside CI).
* ``ci``: derandomized, more examples; chosen when the environment variable ``CI`` is set.
* ``parity``: derandomized, many examples; ``nox -s parity`` / ``python -m parity``.

Select one explicitly with ``HYPOTHESIS_PROFILE=name``. tests/conftest.py loads
:func:`load`; ``python -m parity`` loads ``parity`` unless told otherwise.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("dev", max_examples=15, deadline=None, suppress_health_check=_QUIET)
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, print_blob=True, suppress_health_check=_QUIET
)
settings.register_profile(
    "parity", max_examples=400, deadline=None, derandomize=True, print_blob=True, suppress_health_check=_QUIET
)


def default_profile() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")


def load(name: str | None = None) -> str:
    """Load profile ``name`` (default: $HYPOTHESIS_PROFILE, else ``ci`` under CI, else ``dev``)."""
    name = name or default_profile()
    settings.load_profile(name)
    return name
