"""Hypothesis profiles, chosen in one place.

* ``dev`` (default): few examples, fast local runs.
* ``ci`` (when the environment variable ``CI`` is set, as on CI): derandomized, more examples.
* ``parity`` (``nox -s parity`` selects it via ``HYPOTHESIS_PROFILE``): derandomized, many examples.

Select one explicitly with ``HYPOTHESIS_PROFILE=name``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "parity", max_examples=300, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
