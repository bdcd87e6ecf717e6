"""Replays check their JSON before anything runs: ``python -m parity --replay``,
``--replay-schedule``, ``--replay-lr-scheduler`` and ``--replay-function``.

A bad input is a one-line ``error:`` naming the field and its value, exit status 2, no
traceback (the CLI, in subprocesses); the functions behind it raise TypeError or ValueError
(direct calls). Every case the strategies draw passes (Hypothesis), the bounds themselves
pass and one past them does not, and the replay line each failure message prints still
runs (one per kind).
"""

from __future__ import annotations

import copy
import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity import functions, harness, schedules
from parity.harness import (
    MAX_COUNT,
    MAX_DIMS,
    MAX_ELEMENTS,
    MAX_ITEMS,
    MAX_RECORDED,
    MAX_STEPS,
    MAX_WORK,
    ParityError,
    check_schedule,
    parse_case,
)
from parity.registry import OPTIMIZERS, SCHEDULERS
from parity.strategies import HYPERPARAMETERS, CaseSpec, case_specs

ROOT = Path(__file__).resolve().parents[2]

ADAM = {"pair": "Adam", "dtype": "float32",
        "hyperparameters": {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
                            "maximize": False, "decoupled_weight_decay": False},
        "overrides": [{}, {"weight_decay": 0.1}], "shapes": [[3], [2, 2]], "gradient_kinds": ["normal", "sparse"],
        "steps": 4, "seed": 1, "closed_loop": False,
        "schedule": {"name": "CosineScheduler", "kwargs": {"max_lr": 0.01, "min_lr": 0.001, "total_steps": 4}},
        "init_scale": 1.0, "extra": {}}
LBFGS = {"pair": "LBFGS", "dtype": "float64",
         "hyperparameters": {"lr": 1, "max_iter": 5, "max_eval": None, "tolerance_grad": 1e-7,
                             "tolerance_change": 1e-9, "history_size": 4, "line_search_fn": "strong_wolfe"},
         "overrides": [{}], "shapes": [[4]], "gradient_kinds": ["normal"], "steps": 3, "seed": 2, "closed_loop": True,
         "schedule": None, "init_scale": 1.0, "extra": {}}
COSINE = {"max_lr": 0.1, "min_lr": 0.001, "total_steps": 20}
EXPONENTIAL = {"optimizer": "Adam", "hyperparameters": {"lr": 0.1, "betas": [0.9, 0.999]},
               "entries": [{}, {"lr": 0.01, "betas": [0.8, 0.99]}],
               "scheduler": {"class": "ExponentialLR", "kwargs": {"gamma": 0.9}}, "steps": 6, "epochs": [[3, 2]],
               "resume": {"at": 2, "order": "docs"}, "seed": 3}
SEQUENTIAL = {"optimizer": "SGD", "hyperparameters": {"lr": 0.1, "momentum": 0.9}, "entries": [{}],
              "scheduler": {"class": "SequentialLR", "milestones": [3],
                            "schedulers": [{"class": "LinearLR", "kwargs": {"start_factor": 0.1, "end_factor": 1.0,
                                                                            "total_iters": 3}},
                                           {"class": "LambdaLR", "kwargs": {"lr_lambda": "0.95**e"}}]},
              "steps": 8, "seed": 0}
PLATEAU = {"optimizer": "SGD", "hyperparameters": {"lr": 0.1, "momentum": 0.0}, "entries": [{}, {}],
           "scheduler": {"class": "ReduceLROnPlateau",
                         "kwargs": {"mode": "min", "factor": 0.5, "patience": 1, "threshold": 1e-4,
                                    "threshold_mode": "rel", "cooldown": 0, "min_lr": [0, 1e-4], "eps": 1e-8}},
           "metrics": [1.0, math.nan, 0.5], "steps": 3, "epochs": [], "seed": 0}
TWO = {"optimizer": "SGD", "hyperparameters": {"lr": 0.1, "momentum": 0.9}, "entries": [{}],
       "scheduler": {"class": "TwoSchedulers", "first": {"class": "ConstantLR", "kwargs": {"factor": 0.5,
                                                                                          "total_iters": 2}},
                     "second": {"class": "StepLR", "kwargs": {"step_size": 2, "gamma": 0.5}},
                     "second_at": 1, "stepping": "both"},
       "steps": 4, "seed": 0}
CLIP_VALUE = {"seed": 3, "dtypes": ["float32", "float64"], "shapes": [[5], [2, 3]], "scales": [0, 3],
              "specials": [[0, "nan"]], "clip_value": 0.5}
CLIP_NORM = {"seed": 4, "dtypes": ["float16"], "shapes": [[]], "scales": [2], "specials": [],
             "norm_type": math.inf, "max_norm": 1.0, "error_if_nonfinite": False}
EMA = {"seed": 5, "dtypes": ["float64"], "shapes": [[4]], "scales": [0], "updates": 3, "decay": 0.9}
SWALR = {"default_lr": 0.1, "lrs": [None, 0.01], "swa_lr": [0.05, 0.02], "anneal_epochs": 3, "strategy": "cos",
         "steps": 5, "resume_at": 2}


def changed(base: dict[str, Any], *path_and_value: Any, delete: bool = False) -> dict[str, Any]:
    """A deep copy of ``base`` with the item at ``path`` set to ``value`` (or deleted)."""
    *path, value = path_and_value
    result = copy.deepcopy(base)
    target = result
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return result


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


# ----- the CLI: a bad input is one line naming the field, exit status 2 ------------------

CLI_REFUSALS = [
    pytest.param(["--replay", json.dumps(changed(ADAM, "pair", "NoSuchOptimizer"))],
                 "case['pair'] = 'NoSuchOptimizer' is not one of", id="unknown-optimizer-pair"),
    pytest.param(["--replay-function", "os.system", json.dumps(CLIP_VALUE)], "PAIR = 'os.system' is not one of",
                 id="function-pair-os.system"),
    pytest.param(["--replay-lr-scheduler", "ExponentialLR",
                  json.dumps(changed(EXPONENTIAL, "scheduler", "class", "os.system"))],
                 "case['scheduler']['class'] = 'os.system' is not one of ['ExponentialLR']", id="class-os.system"),
    pytest.param(["--replay", json.dumps(changed(ADAM, "schedule", "name", "os.system"))],
                 "case['schedule']['name'] = 'os.system' is not one of", id="schedule-os.system"),
    pytest.param(["--replay-lr-scheduler", "LambdaLR",
                  json.dumps(changed(SEQUENTIAL, "scheduler", {"class": "LambdaLR", "kwargs": {"lr_lambda": "eval"}}))],
                 "case['scheduler']['kwargs']['lr_lambda'] = 'eval' is not one of", id="lambda-not-in-menu"),
    pytest.param(["--replay", json.dumps(changed(ADAM, "evil", "__import__('os')"))],
                 "case has the unknown key 'evil'", id="unknown-key"),
    pytest.param(["--replay", json.dumps(changed(ADAM, "steps", 10**9))],
                 "case['steps'] = 1000000000 is out of range: expected an int in [1, 100000]", id="steps-1e9"),
    pytest.param(["--replay-function", "clip_grad_value_",
                  json.dumps(changed(CLIP_VALUE, "shapes", [[1000, 1000, 1000], [2, 3]]))],
                 "case['shapes'] has more than 1000000 elements (at case['shapes'][0] = [1000, 1000, 1000])",
                 id="shape-of-1e9-elements"),
    pytest.param(["--replay", json.dumps(changed(ADAM, "shapes", 1, [2, -3]))],
                 "case['shapes'][1][1] = -3 is out of range", id="negative-size"),
    pytest.param(["--replay-schedule", "CosineScheduler", json.dumps(COSINE | {"total_steps": True})],
                 "kwargs['total_steps'] must be an int, got True (a bool)", id="bool-for-int"),
    pytest.param(["--replay-lr-scheduler", "ExponentialLR", '{"optimizer": "SGD", '],
                 "case is not valid JSON: Expecting", id="malformed-json"),
    pytest.param(["--replay", ""], "case is not valid JSON", id="empty-json"),
]


@pytest.mark.parametrize(("args", "message"), CLI_REFUSALS)
def test_the_cli_refuses_a_bad_replay_with_one_line_and_status_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # nothing ran
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"python -m parity: error: {args[0]}: ")
    assert message in lines[0]


# ----- the functions behind it: TypeError and ValueError naming the field ----------------

CASE_REFUSALS = [
    # JSON and its top level
    pytest.param(b"{}", TypeError, "case must be a JSON string, got bytes", id="bytes"),
    pytest.param("[" * 100000 + "]" * 100000, ValueError, "case is nested too deeply", id="deep-nesting"),
    pytest.param('{"steps": ' + "9" * 5000 + "}", ValueError, "case is not valid JSON: Exceeds the limit",
                 id="int-of-5000-digits"),
    pytest.param("[]", TypeError, "case must be an object, got [] (a list)", id="a-list"),
    pytest.param(changed(ADAM, "seed", None, delete=True), ValueError, "case lacks the key 'seed'", id="no-seed"),
    # types
    pytest.param(changed(ADAM, "steps", True), TypeError, "case['steps'] must be an int, got True (a bool)",
                 id="bool-steps"),
    pytest.param(changed(ADAM, "steps", 4.0), TypeError, "case['steps'] must be an int, got 4.0 (a float)",
                 id="float-steps"),
    pytest.param(changed(ADAM, "seed", "1"), TypeError, "case['seed'] must be an int, got '1' (a string)",
                 id="string-seed"),
    pytest.param(changed(ADAM, "closed_loop", 1), TypeError, "case['closed_loop'] must be a bool, got 1 (an int)",
                 id="int-for-bool"),
    pytest.param(changed(ADAM, "init_scale", math.nan), ValueError, "case['init_scale'] = nan is out of range",
                 id="nan-init-scale"),
    pytest.param(changed(ADAM, "init_scale", 10**400), ValueError, "case['init_scale'] = 1000000000",
                 id="huge-int-init-scale"),
    pytest.param(changed(ADAM, "hyperparameters", "lr", "0.1"), TypeError,
                 "case['hyperparameters']['lr'] must be a number, got '0.1' (a string)", id="string-lr"),
    pytest.param(changed(ADAM, "hyperparameters", "betas", [0.9, 0.99, 0.9]), ValueError,
                 "case['hyperparameters']['betas'] has 3 items, expected 2", id="three-betas"),
    pytest.param(changed(ADAM, "hyperparameters", "betas", [0.9, {"a": 1}]), TypeError,
                 "case['hyperparameters']['betas'][1] must be a number", id="object-in-betas"),
    # names: allowlists only
    pytest.param(changed(ADAM, "dtype", "complex128"), ValueError,
                 "case['dtype'] = 'complex128' is not one of ['float32', 'float64']", id="dtype"),
    pytest.param(changed(ADAM, "gradient_kinds", 1, "os.system"), ValueError,
                 "case['gradient_kinds'][1] = 'os.system' is not one of", id="gradient-kind"),
    pytest.param(changed(ADAM, "hyperparameters", "momentum", 0.9), ValueError,
                 "case['hyperparameters'] has the unknown key 'momentum'", id="hyperparameter-of-another-pair"),
    pytest.param(changed(ADAM, "overrides", 1, "__class__", 1), ValueError,
                 "case['overrides'][1] has the unknown key '__class__'", id="override-name"),
    pytest.param(changed(LBFGS, "hyperparameters", "line_search_fn", "os.system"), ValueError,
                 "case['hyperparameters']['line_search_fn'] = 'os.system' is not one of ['strong_wolfe']",
                 id="line-search-name"),
    pytest.param(changed(ADAM, "schedule", "kwargs", "T_max", 3), ValueError,
                 "case['schedule']['kwargs'] has the unknown key 'T_max'", id="schedule-kwarg"),
    pytest.param(changed(ADAM, "extra", {"anything": 1}), ValueError, "case['extra'] has the unknown key 'anything'",
                 id="extra"),
    # sizes and counts
    pytest.param(changed(ADAM, "gradient_kinds", ["normal"]), ValueError,
                 "case['gradient_kinds'] has 1 items, expected 2", id="kinds-per-entry"),
    pytest.param(changed(ADAM, "overrides", [{}, {}, {}]), ValueError, "case['overrides'] has 3 items, expected 2",
                 id="overrides-per-entry"),
    pytest.param(changed(ADAM, "shapes", [[]] * (MAX_ITEMS + 1)), ValueError,
                 f"case['shapes'] has {MAX_ITEMS + 1} items, expected 1 to {MAX_ITEMS}", id="too-many-entries"),
    pytest.param(changed(ADAM, "shapes", [[1] * (MAX_DIMS + 1), [2]]), ValueError,
                 f"case['shapes'][0] has {MAX_DIMS + 1} items, expected 0 to {MAX_DIMS}", id="too-many-dims"),
    pytest.param(changed(ADAM, "shapes", [[10**7], [2]]), ValueError,
                 f"case['shapes'][0][0] = 10000000 is out of range: expected an int in [0, {MAX_ELEMENTS}]",
                 id="size-1e7"),
    pytest.param(changed(ADAM, "shapes", 0, 0, 2.0), TypeError, "case['shapes'][0][0] must be an int", id="float-size"),
    pytest.param(changed(ADAM, "shapes", [[1000, 999], [4]]) | {"steps": 11}, ValueError,
                 f"case: steps x elements is 10989044, at most {MAX_RECORDED}", id="steps-times-elements"),
    pytest.param(changed(LBFGS, "hyperparameters", "max_eval", 10**4) | {"shapes": [[10**4]]}, ValueError,
                 f"case: steps x elements x closure evaluations per step is 300000000, at most {MAX_WORK}",
                 id="lbfgs-evaluations"),
    pytest.param(changed(LBFGS, "closed_loop", False), ValueError, "case: LBFGS cases run closed loop",
                 id="lbfgs-open-loop"),
    pytest.param(changed(ADAM, "seed", -1), ValueError, "case['seed'] = -1 is out of range", id="negative-seed"),
    pytest.param(changed(ADAM, "steps", 0), ValueError, "case['steps'] = 0 is out of range", id="no-steps"),
    # values: numpy_optim's own checks
    pytest.param(changed(ADAM, "hyperparameters", "lr", -0.1), ValueError,
                 "case['hyperparameters'] or case['overrides']: numpy_optim.Adam refuses them: Invalid lr value: "
                 "-0.1", id="negative-lr"),
    pytest.param(changed(ADAM, "schedule", "kwargs", "total_steps", 10**5 + 1), ValueError,
                 "case['schedule']['kwargs']['total_steps'] = 100001 is out of range", id="schedule-total-steps"),
    pytest.param(changed(ADAM, "schedule", "kwargs", "min_lr", 0.5), ValueError,
                 "case['schedule']['kwargs']: numpy_optim.CosineScheduler refuses them: ", id="schedule-min-above-max"),
]


@pytest.mark.parametrize(("case", "error", "message"), CASE_REFUSALS)
def test_parse_case_refuses(case, error, message):
    text = case if isinstance(case, (str, bytes)) else json.dumps(case)
    with pytest.raises(error) as caught:
        parse_case(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


SCHEDULE_REFUSALS = [
    pytest.param("Cosine", COSINE, ValueError, "pair = 'Cosine' is not one of", id="unknown-pair"),
    pytest.param(["CosineScheduler"], COSINE, TypeError, "pair must be a name (a string)", id="list-pair"),
    pytest.param("CosineScheduler", [0.1], TypeError, "kwargs must be an object", id="list-kwargs"),
    pytest.param("CosineScheduler", COSINE | {"eta_min": 0}, ValueError, "kwargs has the unknown key 'eta_min'",
                 id="unknown-key"),
    pytest.param("CosineScheduler", {"max_lr": 0.1, "min_lr": 0.0}, ValueError, "kwargs lacks the key 'total_steps'",
                 id="missing-key"),
    pytest.param("StepDecayScheduler", {"initial_lr": 0.1, "decay_factor": 0.5, "step_size": 10**4 + 1}, ValueError,
                 "kwargs['step_size'] = 10001 is out of range: expected an int in [0, 10000]", id="horizon"),
    pytest.param("CosineScheduler", COSINE | {"max_lr": math.inf}, ValueError, "kwargs['max_lr'] = inf is out of",
                 id="infinite-lr"),
    pytest.param("WarmupCosineScheduler", COSINE | {"warmup_steps": 20}, ValueError,
                 "kwargs: numpy_optim.WarmupCosineScheduler refuses them: Invalid warmup_steps value: 20",
                 id="warmup-past-total"),
]


@pytest.mark.parametrize(("pair", "kwargs", "error", "message"), SCHEDULE_REFUSALS)
def test_check_schedule_and_compare_schedule_refuse(pair, kwargs, error, message):
    for call in (check_schedule, harness.compare_schedule):
        with pytest.raises(error) as caught:
            call(pair, kwargs)
        assert message in str(caught.value)


LR_SCHEDULER_REFUSALS = [
    pytest.param("NoSuchLR", EXPONENTIAL, ValueError, "PAIR = 'NoSuchLR' is not one of", id="unknown-pair"),
    pytest.param("StepLR", EXPONENTIAL, ValueError, "case['scheduler']['class'] = 'ExponentialLR' is not one of "
                 "['StepLR']", id="class-is-not-the-pair"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "optimizer", "LBFGS"), ValueError,
                 "case['optimizer'] = 'LBFGS' is not one of", id="optimizer"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "hyperparameters", "momentum", 0.9), ValueError,
                 "case['hyperparameters'] has the unknown key 'momentum'", id="hyperparameter-of-another-optimizer"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "entries", 1, "betas", [0.9]), ValueError,
                 "case['entries'][1]['betas'] has 1 items, expected 2", id="one-beta"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "scheduler", "kwargs", "gamma", "0.9"), TypeError,
                 "case['scheduler']['kwargs']['gamma'] must be a number", id="string-gamma"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "scheduler", "kwargs", "verbose", True), ValueError,
                 "case['scheduler']['kwargs'] has the unknown key 'verbose'", id="unknown-kwarg"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "scheduler", "kwargs", {}), ValueError,
                 "case['scheduler']['kwargs'] lacks the key 'gamma'", id="missing-kwarg"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "steps", MAX_STEPS + 1), ValueError,
                 f"case['steps'] = {MAX_STEPS + 1} is out of range", id="steps"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "epochs", 0, [7, 1]), ValueError,
                 "case['epochs'][0][0] = 7 is out of range: expected an int in [1, 6]", id="epoch-call-past-the-run"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "epochs", 0, [3, MAX_COUNT + 1]), ValueError,
                 f"case['epochs'][0][1] = {MAX_COUNT + 1} is out of range", id="huge-epoch"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "resume", "at", 6), ValueError,
                 "case['resume']['at'] = 6 is out of range: expected an int in [0, 5]", id="resume-past-the-run"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "resume", "order", "never"), ValueError,
                 "case['resume']['order'] = 'never' is not one of ['docs', 'late']", id="resume-order"),
    pytest.param("ExponentialLR", changed(EXPONENTIAL, "metrics", [1.0] * 6), ValueError,
                 "case has the unknown key 'metrics'", id="metrics-without-plateau"),
    pytest.param("ReduceLROnPlateau", changed(PLATEAU, "metrics", None, delete=True), ValueError,
                 "case lacks the key 'metrics'", id="plateau-without-metrics"),
    pytest.param("ReduceLROnPlateau", changed(PLATEAU, "metrics", [1.0]), ValueError,
                 "case['metrics'] has 1 items, expected 3", id="metric-per-step"),
    pytest.param("ReduceLROnPlateau", changed(PLATEAU, "scheduler", "kwargs", "min_lr", [0.0]), ValueError,
                 "case['scheduler']['kwargs']['min_lr'] has 1 items, expected 2", id="per-entry-list"),
    pytest.param("ReduceLROnPlateau", changed(PLATEAU, "scheduler", "kwargs", "mode", "os.system"), ValueError,
                 "case['scheduler']['kwargs']['mode'] = 'os.system' is not one of ['max', 'min']", id="mode"),
    pytest.param("ReduceLROnPlateau", changed(PLATEAU, "scheduler", "kwargs", "patience", -1), ValueError,
                 "case['scheduler']['kwargs']['patience'] = -1 is out of range", id="negative-count"),
    pytest.param("SequentialLR", changed(SEQUENTIAL, "scheduler", "schedulers", 0, "class", "ReduceLROnPlateau"),
                 ValueError, "case['scheduler']['schedulers'][0]['class'] = 'ReduceLROnPlateau' is not one of",
                 id="plateau-in-a-sequence"),
    pytest.param("SequentialLR", changed(SEQUENTIAL, "scheduler", "milestones", [3, 4]), ValueError,
                 "case['scheduler']['milestones'] has 2 items, expected 1", id="milestones-per-scheduler"),
    pytest.param("SequentialLR", changed(SEQUENTIAL, "scheduler", "schedulers", [SEQUENTIAL["scheduler"]["schedulers"]
                                                                                 [1]] * 9),
                 ValueError, "case['scheduler']['schedulers'] has 9 items, expected 1 to 8", id="too-many-schedulers"),
    pytest.param("SequentialLR", changed(SEQUENTIAL, "scheduler", "schedulers", 1, "kwargs", "lr_lambda",
                                         ["0.95**e", "0.5"]), ValueError,
                 "case['scheduler']['schedulers'][1]['kwargs']['lr_lambda'] has 2 items, expected 1",
                 id="lambda-per-entry"),
    pytest.param("SequentialLR", changed(SEQUENTIAL, "scheduler", "schedulers", 1, "kwargs", "lr_lambda", "0.95"),
                 ValueError, "['lr_lambda'] = '0.95' is not one of ['0.5', '0.95**e', '1/(e+1)', 'Power(0.9)', "
                 "'cos(pi*e/10)', 'min(1,(e+1)/5)']", id="multiplier-is-not-a-lambda"),
    pytest.param("TwoSchedulers", changed(TWO, "scheduler", "second_at", 4), ValueError,
                 "case['scheduler']['second_at'] = 4 is out of range: expected an int in [0, 3]", id="second-at"),
    pytest.param("TwoSchedulers", changed(TWO, "scheduler", "first", SEQUENTIAL["scheduler"]), ValueError,
                 "case['scheduler']['first']['class'] = 'SequentialLR' is not one of", id="two-of-a-composition"),
    pytest.param("OneCycleLR", changed(EXPONENTIAL, "scheduler", {"class": "OneCycleLR", "kwargs": {
        "max_lr": 0.1, "three_phase": False, "pct_start": 0.3, "anneal_strategy": "cos", "cycle_momentum": True,
        "base_momentum": 0.85, "max_momentum": 0.95, "div_factor": 25.0, "final_div_factor": 1e4, "epochs": 2}}),
        ValueError, "case['scheduler']['kwargs'] needs 'total_steps', or 'epochs' and 'steps_per_epoch'",
        id="one-cycle-length"),
    pytest.param("CyclicLR", changed(EXPONENTIAL, "scheduler", {"class": "CyclicLR", "kwargs": {
        "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2, "step_size_down": None, "mode": "triangular",
        "gamma": 1.0, "scale_fn": "lambda x: x", "scale_mode": "cycle", "cycle_momentum": False,
        "base_momentum": 0.8, "max_momentum": 0.9}}),
        ValueError, "case['scheduler']['kwargs']['scale_fn'] = 'lambda x: x' is not one of", id="scale-fn"),
]


def _nested(depth: int) -> dict[str, Any]:
    leaf = {"class": "ExponentialLR", "kwargs": {"gamma": 0.9}}
    spec = leaf
    for _ in range(depth):
        spec = {"class": "ChainedScheduler", "schedulers": [spec], "pass_optimizer": False}
    return spec


LR_SCHEDULER_REFUSALS.append(pytest.param(
    "ChainedScheduler", changed(EXPONENTIAL, "scheduler", _nested(schedules.MAX_NESTING + 1)), ValueError,
    "['schedulers'][0]['class'] = 'ChainedScheduler' is not one of", id="nesting"))


@pytest.mark.parametrize(("name", "case", "error", "message"), LR_SCHEDULER_REFUSALS)
def test_lr_scheduler_replays_refuse(name, case, error, message):
    for call in (schedules.parse_case, schedules.replay):
        with pytest.raises(error) as caught:
            call(name, json.dumps(case))
        assert message in str(caught.value)


def test_lr_scheduler_nesting_up_to_its_bound_is_accepted():
    schedules.check_case("ChainedScheduler", changed(EXPONENTIAL, "scheduler", _nested(schedules.MAX_NESTING)))


FUNCTION_REFUSALS = [
    pytest.param("clip_grad_norm", CLIP_VALUE, ValueError, "PAIR = 'clip_grad_norm' is not one of", id="pair"),
    pytest.param("clip_grad_value_", changed(CLIP_VALUE, "dtypes", 1, "complex128"), ValueError,
                 "case['dtypes'][1] = 'complex128' is not one of ['float16', 'float32', 'float64']", id="dtype"),
    pytest.param("clip_grad_value_", changed(CLIP_VALUE, "dtypes", ["float32"]), ValueError,
                 "case['dtypes'] has 1 items, expected 2", id="dtype-per-array"),
    pytest.param("clip_grad_value_", changed(CLIP_VALUE, "scales", 0, 400), ValueError,
                 "case['scales'][0] = 400 is out of range: expected a finite number in [-300, 300]", id="scale"),
    pytest.param("clip_grad_value_", changed(CLIP_VALUE, "specials", 0, [2, "nan"]), ValueError,
                 "case['specials'][0][0] = 2 is out of range: expected an int in [0, 1]", id="special-index"),
    pytest.param("clip_grad_value_", changed(CLIP_VALUE, "specials", 0, [0, "os.system"]), ValueError,
                 "case['specials'][0][1] = 'os.system' is not one of", id="special-kind"),
    pytest.param("clip_grad_value_", changed(CLIP_VALUE, "clip_value", "inf"), TypeError,
                 "case['clip_value'] must be a number, got 'inf' (a string)", id="string-clip-value"),
    pytest.param("clip_grad_value_", changed(CLIP_VALUE, "norm_type", 2.0), ValueError,
                 "case has the unknown key 'norm_type'", id="key-of-another-pair"),
    pytest.param("clip_grad_norm_", changed(CLIP_NORM, "error_if_nonfinite", 0), TypeError,
                 "case['error_if_nonfinite'] must be a bool, got 0 (an int)", id="int-for-bool"),
    pytest.param("clip_grad_norm_", changed(CLIP_NORM, "shapes", 0, [-1]), ValueError,
                 "case['shapes'][0][0] = -1 is out of range", id="negative-size"),
    pytest.param("AveragedModel+ema_avg_fn", changed(EMA, "updates", MAX_STEPS + 1), ValueError,
                 f"case['updates'] = {MAX_STEPS + 1} is out of range", id="updates"),
    pytest.param("AveragedModel+ema_avg_fn", changed(EMA, "shapes", [[MAX_ELEMENTS]]) | {"updates": 101},
                 ValueError, f"case: updates x elements is 101000000, at most {MAX_WORK}", id="updates-times-elements"),
    pytest.param("AveragedModel", EMA, ValueError, "case has the unknown key 'decay'", id="decay-without-ema"),
    pytest.param("AveragedModel+ema_multi_avg_fn", changed(EMA, "decay", None, delete=True), ValueError,
                 "case lacks the key 'decay'", id="ema-without-decay"),
    pytest.param("SWALR", changed(SWALR, "strategy", "os.system"), ValueError,
                 "case['strategy'] = 'os.system' is not one of ['cos', 'linear']", id="strategy"),
    pytest.param("SWALR", changed(SWALR, "swa_lr", [0.1]), ValueError, "case['swa_lr'] has 1 items, expected 2",
                 id="swa-lr-per-entry"),
    pytest.param("SWALR", changed(SWALR, "resume_at", 5), ValueError,
                 "case['resume_at'] = 5 is out of range: expected an int in [0, 4]", id="resume-past-the-run"),
    pytest.param("SWALR", changed(SWALR, "steps", 10**9), ValueError, "case['steps'] = 1000000000 is out of range",
                 id="steps"),
    pytest.param("SWALR", changed(SWALR, "lrs", 0, False), TypeError, "case['lrs'][0] must be a number",
                 id="bool-lr"),
]


@pytest.mark.parametrize(("name", "case", "error", "message"), FUNCTION_REFUSALS)
def test_function_replays_refuse(name, case, error, message):
    for call in (functions.parse_case, functions.replay):
        with pytest.raises(error) as caught:
            call(name, json.dumps(case))
        assert message in str(caught.value)


# ----- what is accepted: the bounds themselves, and every drawn case ---------------------


def test_the_bounds_themselves_are_accepted():
    at_bounds = changed(ADAM, "steps", MAX_STEPS) | {"shapes": [[10], [10, 9]], "closed_loop": True}
    assert parse_case(json.dumps(at_bounds)).steps == MAX_STEPS  # steps x elements = 10**7 = MAX_RECORDED
    with pytest.raises(ValueError, match="steps x elements is 10100000"):
        parse_case(json.dumps(at_bounds | {"shapes": [[10], [10, 9], [1]], "gradient_kinds": ["normal"] * 3,
                                           "overrides": [{}] * 3}))
    huge = changed(ADAM, "steps", 1) | {"shapes": [[1] * MAX_DIMS, [MAX_ELEMENTS - 1]]}
    assert parse_case(json.dumps(huge)).shapes == [(1,) * MAX_DIMS, (MAX_ELEMENTS - 1,)]
    check_schedule("StepDecayScheduler", {"initial_lr": 0.1, "decay_factor": 0.5, "step_size": MAX_STEPS // 10})
    check_schedule("CosineScheduler", COSINE | {"total_steps": MAX_STEPS})
    functions.check_case("AveragedModel+ema_avg_fn", changed(EMA, "shapes", [[MAX_ELEMENTS]]) | {"updates": 100})
    schedules.check_case("ExponentialLR", changed(EXPONENTIAL, "steps", MAX_STEPS))


def test_a_parsed_case_is_the_spec_that_wrote_it():
    spec = parse_case(json.dumps(ADAM))
    assert spec == CaseSpec.from_json(json.dumps(ADAM))
    assert spec.hyperparameters["betas"] == (0.9, 0.999) and spec.shapes == [(3,), (2, 2)]
    assert parse_case(spec.to_json()) == spec
    minimal = {k: v for k, v in ADAM.items() if k not in ("closed_loop", "schedule", "init_scale", "extra")}
    assert parse_case(json.dumps(minimal)) == CaseSpec(**{**minimal, "shapes": [(3,), (2, 2)], "hyperparameters": {
        **ADAM["hyperparameters"], "betas": (0.9, 0.999)}})


DRAWN = settings(max_examples=40, deadline=None)


@pytest.mark.parametrize("pair", list(OPTIMIZERS))
@DRAWN
@given(data=st.data())
def test_every_drawn_optimizer_case_replays(pair, data):
    p = OPTIMIZERS[pair]
    cases = (harness.closure_case_specs(pair, HYPERPARAMETERS[pair]) if p.closure
             else case_specs(pair))
    spec = data.draw(cases)
    assert parse_case(spec.to_json()) == spec


@pytest.mark.parametrize("pair", list(SCHEDULERS))
@DRAWN
@given(data=st.data())
def test_every_drawn_schedule_replays(pair, data):
    kwargs = data.draw(harness.scheduler_kwargs(pair))
    check_schedule(pair, json.loads(json.dumps(kwargs)))


@pytest.mark.parametrize("name", list(schedules.PAIRS))
@DRAWN
@given(data=st.data())
def test_every_drawn_lr_scheduler_case_replays(name, data):
    case = data.draw(schedules.PAIRS[name]())
    text = json.dumps(case)
    assert json.dumps(schedules.parse_case(name, text)) == text


@pytest.mark.parametrize("name", list(functions.PAIRS))
@DRAWN
@given(data=st.data())
def test_every_drawn_function_case_replays(name, data):
    case = data.draw(functions.CASES[name])
    text = json.dumps(case)
    assert json.dumps(functions.parse_case(name, text)) == text


# ----- the replay line each failure message prints still runs ----------------------------


def _command(message: str) -> list[str]:
    """The ``reproduce:`` line of a failure message, as the argv to run."""
    line = re.search(r"reproduce: (python -m parity .*)$", message, re.MULTILINE)
    assert line is not None, message
    argv = shlex.split(line.group(1))
    assert argv[:3] == ["python", "-m", "parity"]
    return argv[3:]


def _schedule_message(monkeypatch: pytest.MonkeyPatch) -> str:
    """compare_schedule's failure message, with every bound made negative so that it fails."""
    monkeypatch.setattr(harness.tolerance, "schedule_bound", lambda t, reference: -1.0)
    with pytest.raises(ParityError) as caught:
        harness.compare_schedule("CosineScheduler", COSINE)
    return str(caught.value)


def _optimizer_message() -> str:
    spec = CaseSpec.from_json(json.dumps(ADAM))
    return f"reproduce: {harness._reproduce(spec, harness.PairSpec.registry(spec.pair))}"


def _function_message() -> str:
    outcome = functions.Outcome("mixed")
    outcome.differing, outcome.compared = 1, 1
    return functions._failure("clip_grad_value_", outcome, CLIP_VALUE)


@pytest.mark.parametrize(("make", "expected"), [
    pytest.param(lambda mp: _optimizer_message(), "default  params[0]", id="optimizer"),
    pytest.param(_schedule_message, "worst error / bound", id="schedule"),
    pytest.param(lambda mp: schedules._describe("ExponentialLR", EXPONENTIAL, ["step 1: ..."]),
                 "ExponentialLR: 1 case(s)", id="lr-scheduler"),
    pytest.param(lambda mp: _function_message(), "clip_grad_value_: 1 case(s)", id="function"),
])
def test_the_replay_line_of_a_failure_message_runs(make, expected, monkeypatch):
    argv = _command(make(monkeypatch))
    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr  # bitwise kinds: 1 if any value differed from torch
    assert expected in result.stdout


@pytest.mark.parametrize(("name", "case"), [("SequentialLR", SEQUENTIAL), ("ReduceLROnPlateau", PLATEAU),
                                            ("TwoSchedulers", TWO)])
def test_valid_lr_scheduler_cases_replay_equal_to_torch(name, case):
    assert schedules.replay(name, json.dumps(case)).differing == 0


@pytest.mark.parametrize(("name", "case"), [("clip_grad_norm_", CLIP_NORM), ("AveragedModel+ema_avg_fn", EMA),
                                            ("SWALR", SWALR)])
def test_valid_function_cases_replay_equal_to_torch(name, case):
    assert functions.replay(name, json.dumps(case)).differing == 0


def test_a_valid_lbfgs_case_replays():
    spec = parse_case(json.dumps(LBFGS))
    p = OPTIMIZERS["LBFGS"]
    assert harness.run_case(spec, p.ours, p.theirs, name="LBFGS", buffers=p.buffers, fused=p.fused,
                            torch_has_step=p.torch_has_step)
