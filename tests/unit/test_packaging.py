"""The built wheel ships the PEP 561 markers: ``py.typed`` in numpy_optim and in parity, so
that type checkers read the packages' annotations once installed.

The wheel is built (about 2 s) from a copy of the sources (pyproject.toml, README.md and the
two packages, in a temporary folder: the build writes build/ and *.egg-info beside them),
by pip with the installed setuptools (``--no-build-isolation --no-index``: no network).
"""

import importlib.resources
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("numpy_optim", "parity")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp / "dist"), str(source)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, f"the wheel did not build (needs setuptools installed):\n{result.stderr[-3000:]}"
    (path,) = (tmp / "dist").glob("numpy_optim-*.whl")
    return path


def test_the_wheel_ships_py_typed_in_both_packages(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for package in PACKAGES:
        assert f"{package}/py.typed" in names, f"{package}/py.typed is not in {wheel.name}"
        assert f"{package}/__init__.py" in names


@pytest.mark.parametrize("package", PACKAGES)
def test_the_installed_package_has_its_marker(package):
    marker = importlib.resources.files(package).joinpath("py.typed")
    assert marker.is_file()
    assert marker.read_bytes() == b""  # PEP 561: an empty marker (no "partial")


def test_py_typed_ships_with_every_setuptools_the_build_allows():
    # setuptools includes py.typed by itself from version 69 on; with an older one the file
    # must be declared as package data. Either way every allowed build ships it.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config.get("tool", {}).get("setuptools", {}).get("package-data", {})
    declared = all("py.typed" in package_data.get(package, []) for package in PACKAGES)
    requires = [r for r in config["build-system"]["requires"] if re.match(r"setuptools\b", r)]
    minimum = re.search(r">=\s*(\d+)", requires[0]) if requires else None
    assert declared or (minimum is not None and int(minimum[1]) >= 69), (
        f"pyproject.toml: declare py.typed in [tool.setuptools.package-data] for {PACKAGES} "
        f"(build-system requires {requires})"
    )
