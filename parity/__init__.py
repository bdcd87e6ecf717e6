"""parity: prove numpy_optim's optimizers and schedulers track torch.optim.

Public entry points (importing them imports torch):

* :func:`check` runs the Hypothesis parity property on any optimizer written to the
  numpy_optim interface against a torch.optim class; :func:`check_pair` and
  :func:`check_scheduler` run it on the registry's pairs.
* ``python -m parity`` (= ``nox -s parity``) runs every pair and writes reports/parity.md
  and reports/parity.json.

parity needs Hypothesis and torch: ``pip install "numpy_optim[parity]"``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check", "check_pair", "check_scheduler", "replay", "ParityError", "Stats", "run_case", "CaseSpec"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import parity` works without torch (and says what to install).
    if name in __all__:
        from .__main__ import INSTALL, missing_dependencies

        missing = missing_dependencies()
        if missing:
            raise ImportError(f"parity.{name} needs {' and '.join(missing)}, which do not import here: {INSTALL}")
    if name == "CaseSpec":
        from .strategies import CaseSpec

        return CaseSpec
    if name in __all__:
        from . import harness

        return getattr(harness, name)
    raise AttributeError(f"module 'parity' has no attribute {name!r}")
