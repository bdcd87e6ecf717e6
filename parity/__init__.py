"""parity: prove numpy_optim's optimizers and schedulers track torch.optim.

Public entry points (importing them imports torch):

* :func:`check` runs the Hypothesis parity property on any optimizer written to the
  numpy_optim interface against a torch.optim class; :func:`check_pair` and
  :func:`check_scheduler` run it on the registry's pairs.
* ``python -m parity`` (= ``nox -s parity``) runs every pair and writes reports/parity.md
  and reports/parity.json.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check", "check_pair", "check_scheduler", "ParityError", "Stats", "run_case", "CaseSpec"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `parity.profiles` can be imported without importing torch.
    if name == "CaseSpec":
        from .strategies import CaseSpec

        return CaseSpec
    if name in __all__:
        from . import harness

        return getattr(harness, name)
    raise AttributeError(f"module 'parity' has no attribute {name!r}")
