"""Sessions: `nox -s parity` (the main job), `nox -s tests`, `nox -s bench`, `nox -s demo`, `nox -s lint`."""

import nox

nox.options.sessions = ["parity", "tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"  # the reference torch; a CPU build, pinned (a newer one pulls CUDA)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (unit, doctests, torch comparisons) in its own virtualenv."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def parity(session: nox.Session) -> None:
    """Run the torch.optim parity harness (profile "parity") and write reports/parity.md and .json."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("python", "-m", "parity", "--profile", "parity", "--out", "reports", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Time numpy_optim against torch (pytest-benchmark) and write reports/bench.md and .json."""
    session.install(TORCH)
    session.install("-e", ".[bench]")
    session.run(
        "pytest", "benchmarks", "-p", "no:cacheprovider", "--benchmark-only",
        "--benchmark-json", "reports/bench.json", *session.posargs,
    )
    session.run("python", "benchmarks/report.py", "reports/bench.json", "reports/bench.md")


@nox.session
def demo(session: nox.Session) -> None:
    """Render the README's figures (matplotlib; torch overlays the schedules) into docs/figures."""
    session.install(TORCH)
    session.install("-e", ".[demo]")
    session.run("python", "-m", "numpy_optim.demo", "--out", "docs/figures", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style, imports, no torch in numpy_optim) and mypy on the library."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("mypy")
