"""Sessions: `nox -s parity` (the main job), `nox -s tests`, `nox -s bench`, `nox -s demo`, `nox -s lint`.

torch is installed once, into `.nox/_torch` (a `pip install --target` directory), and every
session that needs it reads it from there through a `.pth` file in its virtualenv: one copy
of torch, not one per session. Where it comes from (`torch_source`):

* `NUMPY_OPTIM_TORCH`, if set: a local wheel file, or any pip requirement;
* else PyTorch's CPU wheel index (`NUMPY_OPTIM_TORCH_INDEX`, default
  https://download.pytorch.org/whl/cpu), if it answers: the CPU build, not the CUDA build
  with its ~20 NVIDIA packages that the public index gives for `torch==2.13.0`;
* else the plain pin `torch==2.13.0` from the configured registry (on a machine whose
  registry holds the CPU build).

Set `NUMPY_OPTIM_TORCH_INDEX=` (empty) to skip the index. Delete `.nox/_torch` to reinstall;
it is reinstalled by itself when the source changes.
"""

import json
import os
import shutil
import urllib.request
from pathlib import Path

import nox

nox.options.sessions = ["parity", "tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"  # the reference torch, pinned: the CPU build (an unpinned torch pulls a newer CUDA one)
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SHARED_TORCH = Path(".nox") / "_torch"


def torch_source() -> list[str]:
    """pip's arguments for installing torch (see the module docstring)."""
    local = os.environ.get("NUMPY_OPTIM_TORCH")
    if local:
        return [local]
    index = os.environ.get("NUMPY_OPTIM_TORCH_INDEX", CPU_INDEX)
    if index:
        try:
            with urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=10):
                return ["--index-url", index, TORCH]
        except (OSError, ValueError):
            pass  # unreachable (no internet, only a registry): the plain pin
    return [TORCH]


def install_torch(session: nox.Session) -> None:
    """Make torch importable in the session's virtualenv from the shared `.nox/_torch`,
    installing it there first if it is missing or came from another source."""
    source = torch_source()
    marker = SHARED_TORCH / "installed-from.json"
    if not marker.is_file() or json.loads(marker.read_text()) != source:
        staging = SHARED_TORCH.with_name("_torch.partial")
        shutil.rmtree(staging, ignore_errors=True)
        session.run("python", "-m", "pip", "install", "--target", str(staging / "site"), *source)
        (staging / "installed-from.json").write_text(json.dumps(source))
        shutil.rmtree(SHARED_TORCH, ignore_errors=True)
        staging.rename(SHARED_TORCH)  # whole or absent: an interrupted install leaves only the staging copy
    purelib = session.run("python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", silent=True)
    site = Path(str(purelib).strip())
    (site / "_numpy_optim_shared_torch.pth").write_text(f"{(SHARED_TORCH / 'site').resolve()}\n")


@nox.session
@nox.parametrize("backend", ["numba", "numpy"])
def tests(session: nox.Session, backend: str) -> None:
    """Run the whole test suite twice: on the numba backend, and in a virtualenv without numba."""
    install_torch(session)
    if backend == "numba":
        session.install("-e", ".[test,fast]")
        session.run("pytest", *session.posargs, env={"NUMPY_OPTIM_BACKEND": "numba"})
    else:  # numba absent: "auto" falls back to NumPy; the tests that need numba are left out
        session.install("-e", ".[test]")
        session.run("python", "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('numba') is not None)")
        session.run("pytest", "-m", "not numba", *session.posargs, env={"NUMPY_OPTIM_BACKEND": "auto"})


@nox.session
def parity(session: nox.Session) -> None:
    """Run the torch.optim parity harness (profile "parity", numba backend); write reports/parity.md, .json."""
    install_torch(session)
    session.install("-e", ".[test,fast]")
    session.run(
        "python", "-m", "parity", "--profile", "parity", "--workers", str(os.cpu_count() or 1), "--out", "reports",
        *session.posargs, env={"NUMPY_OPTIM_BACKEND": "numba"},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Time numpy_optim against torch (pytest-benchmark), and the JIT; write reports/bench.md and .json."""
    install_torch(session)
    session.install("-e", ".[bench,fast]")
    session.run(
        "pytest", "benchmarks", "-p", "no:cacheprovider", "--benchmark-only",
        "--benchmark-json", "reports/bench.json", *session.posargs,
    )
    session.run("python", "benchmarks/compile_time.py", "reports/compile.json")
    session.run("python", "benchmarks/report.py", "reports/bench.json", "reports/bench.md", "reports/compile.json")


@nox.session
def demo(session: nox.Session) -> None:
    """Render the README's figures (matplotlib; torch overlays the schedules) into docs/figures."""
    install_torch(session)
    session.install("-e", ".[demo]")
    session.run("python", "-m", "numpy_optim.demo", "--out", "docs/figures", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style, imports, no torch in numpy_optim) and mypy on the library."""
    session.install("-e", ".[lint,fast]")
    session.run("ruff", "check", ".")
    session.run("mypy")
