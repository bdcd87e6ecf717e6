"""Sessions: `nox -s parity` (the main job), `nox -s tests`, `nox -s bench`, `nox -s demo`, `nox -s lint`."""

import nox

nox.options.sessions = ["parity", "tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"  # the reference torch; a CPU build, pinned (a newer one pulls CUDA)


@nox.session
@nox.parametrize("backend", ["numba", "numpy"])
def tests(session: nox.Session, backend: str) -> None:
    """Run the whole test suite twice: on the numba backend, and in a virtualenv without numba."""
    session.install(TORCH)
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
    session.install(TORCH)
    session.install("-e", ".[test,fast]")
    session.run(
        "python", "-m", "parity", "--profile", "parity", "--out", "reports", *session.posargs,
        env={"NUMPY_OPTIM_BACKEND": "numba"},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Time numpy_optim against torch (pytest-benchmark), and the JIT; write reports/bench.md and .json."""
    session.install(TORCH)
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
    session.install(TORCH)
    session.install("-e", ".[demo]")
    session.run("python", "-m", "numpy_optim.demo", "--out", "docs/figures", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style, imports, no torch in numpy_optim) and mypy on the library."""
    session.install("-e", ".[lint,fast]")
    session.run("ruff", "check", ".")
    session.run("mypy")
