"""``python -m parity`` and ``parity.check`` as a user meets them, outside this repository.

* a failure's ``reproduce:`` line runs as printed and fails the same way, for a user's
  optimizer in a module of its own (the CLI, ``--ours``/``--theirs``/``--options``) and in a
  script (a ``parity.replay`` call);
* ``--workers`` gives the same rows as one process; every pair draws from its own seed;
* a line per pair as it finishes, and a summary;
* without Hypothesis or torch, the CLI and ``parity.check`` say which extra to install.

Every run is a subprocess whose working directory is a temporary directory, not the repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import parity
from parity import harness, profiles

ROOT = Path(__file__).resolve().parents[2]
#: Hang guards only: these runs take seconds to a minute, more under load.
TIMEOUT = 1800

# A user's optimizer with a bug: it steps twice as far as SGD does.
BUGGY = """
class TwiceSGD:                        # plain SGD but for a factor 2: parity must catch it
    def __init__(self, entries, lr):
        self.entries, self.lr, self.state = entries, lr, {}

    def step(self):
        for entry in self.entries:
            entry["params"] -= 2 * entry.get("lr", self.lr) * entry["grad"]
"""
CHECK = """
import torch
from hypothesis import strategies as st
import parity
from parity import harness

try:
    parity.check(TwiceSGD, torch.optim.SGD, name="TwiceSGD", max_examples=5, seed=3,
                 hyperparameters=st.fixed_dictionaries({"lr": st.floats(0.1, 1.0)}))
except parity.ParityError as error:
    print(error)
else:
    raise SystemExit("no failure")
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYPOTHESIS_PROFILE")}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)


def run_script(directory: Path, name: str, text: str) -> subprocess.CompletedProcess[str]:
    (directory / name).write_text(text)
    return run([sys.executable, name], directory)


def _failure_lines(message: str) -> list[str]:
    """The lines naming what failed (pair, path, dtype, array, step, values, bound), without the replay line."""
    lines = [line.strip() for line in message.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("Parity failure:"))
    return [line for line in lines[start:start + 3]]


def _reproduce_line(message: str) -> str:
    found = re.findall(r"reproduce: (.+)$", message, flags=re.M)
    assert found, message
    return found[-1]


def test_a_user_module_failure_replays_from_the_cli_as_printed(tmp_path):
    (tmp_path / "user_optim.py").write_text(BUGGY)
    first = run_script(tmp_path, "check_it.py", "from user_optim import TwiceSGD\n" + CHECK)
    assert first.returncode == 0, first.stderr
    line = _reproduce_line(first.stdout)
    argv = shlex.split(line)
    assert argv[:4] == ["python", "-m", "parity", "--replay"]
    assert argv[argv.index("--ours") + 1] == "user_optim:TwiceSGD"
    assert argv[argv.index("--theirs") + 1] == "torch.optim:SGD"   # the public name, not torch.optim.sgd.SGD
    options = json.loads(argv[argv.index("--options") + 1])
    assert options == {"buffers": list(harness.ALL_BUFFERS), "closure": False, "fused": True,
                       "torch_has_step": False}
    again = run([sys.executable, *argv[1:]], tmp_path)
    assert again.returncode == 1, again.stderr
    assert _failure_lines(again.stdout) == _failure_lines(first.stdout)


def test_a_script_failure_replays_as_printed_where_the_class_is_defined(tmp_path):
    first = run_script(tmp_path, "check_it.py", BUGGY + CHECK)
    assert first.returncode == 0, first.stderr
    line = _reproduce_line(first.stdout)
    prefix = "(in Python, where TwiceSGD is defined) "
    assert line.startswith(prefix), line
    again = run_script(tmp_path, "replay_it.py", BUGGY + line[len(prefix):] + "\n")
    assert again.returncode == 1
    assert "parity.harness.ParityError: Parity failure: TwiceSGD" in again.stderr
    replayed = again.stderr[again.stderr.index("Parity failure:"):]
    assert _failure_lines(replayed) == _failure_lines(first.stdout)


def test_a_correct_user_module_replays_and_passes(tmp_path):
    (tmp_path / "user_optim.py").write_text(BUGGY.replace("2 * entry", "entry"))
    case = {"pair": "PlainSGD", "dtype": "float64", "hyperparameters": {"lr": 0.5}, "overrides": [{}],
            "shapes": [[3]], "gradient_kinds": ["normal"], "steps": 4, "seed": 1}
    result = run([sys.executable, "-m", "parity", "--replay", json.dumps(case), "--ours", "user_optim:TwiceSGD",
                  "--theirs", "torch.optim:SGD", "--options", '{"torch_has_step": false}'], tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^default\s+params\[0\]\s+worst error", result.stdout, flags=re.M), result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--ours", "user_optim:Nope", "--theirs", "torch.optim:SGD"], "'user_optim' has no attribute 'Nope'"),
    (["--ours", "no_such_module:X", "--theirs", "torch.optim:SGD"], "cannot import 'no_such_module'"),
    (["--ours", "user_optim:TwiceSGD", "--theirs", "user_optim:TwiceSGD"], "theirs must be a torch.optim.Optimizer"),
    (["--ours", "user_optim:TwiceSGD", "--theirs", "torch.optim.SGD"], "must be 'module:name'"),
    (["--ours", "user_optim:TwiceSGD", "--theirs", "torch.optim:SGD", "--options", '{"fused": 1}'],
     "options['fused'] must be a bool"),
    (["--ours", "user_optim:TwiceSGD", "--theirs", "torch.optim:SGD", "--options", '{"lr": 1}'],
     "unknown key 'lr'"),
])
def test_a_bad_user_pair_replay_is_one_error_line(tmp_path, args, message):
    (tmp_path / "user_optim.py").write_text(BUGGY)
    case = {"pair": "TwiceSGD", "dtype": "float64", "hyperparameters": {"lr": 0.5}, "overrides": [{}],
            "shapes": [[3]], "gradient_kinds": ["normal"], "steps": 4, "seed": 1}
    result = run([sys.executable, "-m", "parity", "--replay", json.dumps(case), *args], tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_workers_give_the_same_rows_as_one_process_and_a_line_per_pair(tmp_path):
    pairs = "SGD,Rprop,StepDecayScheduler,ExponentialLR,clip_grad_norm_"
    rows = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        result = run([sys.executable, "-m", "parity", "--pairs", pairs, "--profile", "dev", "--max-examples", "4",
                      "--workers", str(workers), "--out", str(out)], tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        for name in pairs.split(","):
            assert re.search(rf"^{name}: passed: \d+ cases, \d+ steps, .*, [\d.]+ s$", result.stdout, flags=re.M), \
                result.stdout
        assert re.search(r"^parity: 5 pairs, all passed; [\d.]+ s, profile dev, seed 0$", result.stdout, flags=re.M)
        rows[workers] = json.loads((out / "parity.json").read_text())["rows"]
    assert rows[1] == rows[2]
    assert {row["pair"] for row in rows[1]} == set(pairs.split(","))


def _drawn(name: str, seed: int) -> list[tuple[object, ...]]:
    """The cases ``parity.check`` draws for a pair called ``name`` (a correct SGD), in order."""
    import torch
    from hypothesis import strategies as st

    import numpy_optim

    seen = []

    def factory(entries, **hyperparameters):
        seen.append((tuple(e["params"].shape for e in entries), tuple(sorted(hyperparameters.items()))))
        return numpy_optim.SGD(entries, **hyperparameters)

    parity.check(factory, torch.optim.SGD, name=name, max_examples=6, seed=seed,
                 hyperparameters=st.fixed_dictionaries({"lr": st.floats(0.0, 1.0)}), schedules=False)
    return seen


def test_each_pair_draws_from_its_own_seed_and_a_seed_repeats():
    assert profiles.pair_seed("SGD", 0) != profiles.pair_seed("Adam", 0)
    assert profiles.pair_seed("SGD", 0) != profiles.pair_seed("SGD", 1)
    first = _drawn("pair_a", 0)
    assert _drawn("pair_a", 0) == first            # the same seed draws the same cases
    assert _drawn("pair_b", 0) != first            # another pair, other cases


BLOCK = textwrap.dedent("""
    import sys
    class Block:                     # as if Hypothesis and torch were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "hypothesis"):
                raise ModuleNotFoundError(f"No module named {name!r}")
    sys.meta_path.insert(0, Block())
    for name in [m for m in sys.modules if m.split(".")[0] in ("torch", "hypothesis")]:
        del sys.modules[name]
""")


@pytest.mark.parametrize("args", [[], ["--pairs", "SGD"], ["--replay", "{}"]])
def test_without_hypothesis_and_torch_the_cli_names_the_extra(tmp_path, args):
    code = BLOCK + f"import runpy; sys.argv = ['parity', *{args!r}]; runpy.run_module('parity', run_name='__main__')"
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 2
    assert 'needs hypothesis and torch, which do not import here: pip install "numpy_optim[parity]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_without_them_help_still_prints_and_names_the_extra(tmp_path):
    code = BLOCK + "import runpy; sys.argv = ['parity', '--help']; runpy.run_module('parity', run_name='__main__')"
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--replay" in result.stdout and '"numpy_optim[parity]"' in " ".join(result.stdout.split())


def test_without_them_parity_check_names_the_extra(tmp_path):
    result = run([sys.executable, "-c", BLOCK + "import parity\nparity.check"], tmp_path)
    assert result.returncode == 1
    assert 'ImportError: parity.check needs hypothesis and torch, which do not import here: pip install ' \
           '"numpy_optim[parity]"' in result.stderr


def test_check_runs_without_a_deadline_whatever_profile_is_loaded():
    from hypothesis import settings

    settings.register_profile("tight_deadline_for_test", deadline=1, max_examples=3)
    previous = settings._current_profile
    settings.load_profile("tight_deadline_for_test")
    try:
        chosen = profiles.for_trajectories()
        assert chosen.deadline is None and chosen.max_examples == 3
        _drawn("deadline", 0)        # 1 ms per case would fail here with DeadlineExceeded
    finally:
        settings.load_profile(previous)
