"""The README's Python examples run as shown, and print what their comments claim."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run_and_print_what_they_claim(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
        claimed = re.findall(r"print\(.*\)\s*# (.+?)\s*$", block, flags=re.M)
        printed = capsys.readouterr().out.splitlines()
        assert printed == claimed, f"README example printed {printed}, its comments claim {claimed}"
