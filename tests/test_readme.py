"""The README's Python examples run as shown, as scripts, and print what their comments claim.

Each ```python block is written to a file in a temporary directory outside the repository and
run there with this interpreter in a fresh process: no pytest, no tests/conftest.py (no
Hypothesis profile), no repository on the path but the installed packages, as a user runs it.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run_example(block: str, directory: Path, name: str) -> list[str]:
    """Run ``block`` as the script ``directory/name``; return its printed lines."""
    script = directory / name
    script.write_text(block)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYPOTHESIS_PROFILE")}
    # A hang guard only (minutes): the examples take seconds, more on a loaded machine.
    result = subprocess.run([sys.executable, script.name], cwd=directory, env=env, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout.splitlines()


def claims(block: str) -> list[str]:
    """What the block's comments say it prints: ``print(...)  # <the line printed>``."""
    return re.findall(r"print\(.*\)\s*# (.+?)\s*$", block, flags=re.M)


def test_the_readme_has_examples_and_each_claims_its_output():
    assert len(BLOCKS) >= 5
    assert all(claims(block) for block in BLOCKS), "an example without a `# printed` claim checks nothing"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_as_a_script_outside_the_repository(index, tmp_path):
    directory = tmp_path / "user"
    directory.mkdir()
    assert not str(directory).startswith(str(README.parent))
    block = BLOCKS[index]
    printed = run_example(block, directory, f"example_{index}.py")
    assert printed == claims(block), f"README example {index} printed {printed}, its comments claim {claims(block)}"
