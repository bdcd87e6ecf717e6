"""docs/porting-from-torch.md: every Python block runs as a script and prints what its comments claim.

Each ```python block is run on its own, as a user would paste it into a file: in a fresh
interpreter (``sys.executable``), in a temporary directory outside the repository, with
no PYTHONPATH (numpy_optim and parity are installed). Its printed lines must be the
``print(...)  # expected output`` comments of the block, in order, as in the README's
examples (tests/test_readme.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the guide is about torch loops: most blocks import it

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "porting-from-torch.md"
TEXT = GUIDE.read_text()
BLOCKS = [(TEXT.count("\n", 0, match.start()) + 2, match.group(1))  # (line of its first code line, code)
          for match in re.finditer(r"```python\n(.*?)```", TEXT, flags=re.S)]
CLAIM = re.compile(r"^\s*print\(.*\)\s*# (.+?)\s*$", flags=re.M)


def test_the_guide_has_python_blocks_that_claim_their_output():
    assert len(BLOCKS) >= 5, f"{GUIDE.name} has {len(BLOCKS)} python blocks"
    for line, code in BLOCKS:
        assert CLAIM.search(code), f"{GUIDE.name}: the block at line {line} prints nothing it claims"


@pytest.mark.parametrize("line, code", [pytest.param(line, code, id=f"line{line}") for line, code in BLOCKS])
def test_block_runs_as_a_script_and_prints_what_it_claims(line, code, tmp_path):
    script = tmp_path / "block.py"
    script.write_text(code)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{GUIDE.name}, block at line {line} failed:\n{result.stderr}"
    claimed = CLAIM.findall(code)
    printed = result.stdout.splitlines()
    assert printed == claimed, f"{GUIDE.name}, block at line {line} printed {printed}, its comments claim {claimed}"
