"""Validation: bad hyperparameters, bad entries, bad state dicts, bad schedules.

ValueError for bad values, TypeError for bad types; every message names the argument and
the value. A refused call changes nothing: no parameter, no buffer, no step counter.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from numpy_optim import SGD, Adam, AdamW, CosineScheduler, StepDecayScheduler, WarmupCosineScheduler

NAN, INF = math.nan, math.inf


def entries(n=1, shape=(3,), dtype=np.float64):
    rng = np.random.default_rng(8)
    return [
        {"params": rng.standard_normal(shape).astype(dtype), "grad": rng.standard_normal(shape).astype(dtype)}
        for _ in range(n)
    ]


def assert_message_names(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in message {message!r}"


# ----- constructor hyperparameters --------------------------------------------------------

# (argument, bad value, expected error); the message must contain the argument and repr(value)
COMMON_BAD = [
    ("lr", -1.0, ValueError),
    ("lr", NAN, ValueError),
    ("lr", INF, ValueError),
    ("lr", -INF, ValueError),
    ("lr", "0.1", TypeError),
    ("lr", None, TypeError),
    ("lr", True, TypeError),
    ("lr", [0.1], TypeError),
    ("weight_decay", -0.1, ValueError),
    ("weight_decay", NAN, ValueError),
    ("weight_decay", INF, ValueError),
    ("weight_decay", "0", TypeError),
    ("weight_decay", False, TypeError),
    ("maximize", 1, TypeError),
    ("maximize", "yes", TypeError),
    ("maximize", None, TypeError),
]
SGD_BAD = [
    ("momentum", -0.5, ValueError),
    ("momentum", NAN, ValueError),
    ("momentum", INF, ValueError),
    ("momentum", "0.9", TypeError),
    ("momentum", None, TypeError),
    ("momentum", True, TypeError),
    ("dampening", NAN, ValueError),
    ("dampening", INF, ValueError),
    ("dampening", "0", TypeError),
    ("nesterov", 1, TypeError),
    ("nesterov", "True", TypeError),
    ("nesterov", None, TypeError),
]
ADAM_BAD = [
    ("eps", -1e-8, ValueError),
    ("eps", NAN, ValueError),
    ("eps", INF, ValueError),
    ("eps", "1e-8", TypeError),
    ("eps", None, TypeError),
    ("amsgrad", 1, TypeError),
    ("amsgrad", "no", TypeError),
    ("amsgrad", None, TypeError),
]


def hyper_cases():
    for cls, specific in ((SGD, SGD_BAD), (Adam, ADAM_BAD), (AdamW, ADAM_BAD)):
        for name, value, error in COMMON_BAD + specific:
            yield pytest.param(cls, name, value, error, id=f"{cls.__name__}-{name}={value!r}")


@pytest.mark.parametrize("cls, name, value, error", list(hyper_cases()))
def test_constructor_refuses_bad_hyperparameter(cls, name, value, error):
    with pytest.raises(error) as info:
        cls(entries(), **{name: value})
    assert_message_names(info, name, repr(value) if not isinstance(value, float) else repr(float(value)))


@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
@pytest.mark.parametrize(
    "betas, error, fragments",
    [
        ((1.0, 0.999), ValueError, ["beta parameter at index 0", "1.0"]),
        ((-0.1, 0.999), ValueError, ["beta parameter at index 0", "-0.1"]),
        ((0.9, 1.0), ValueError, ["beta parameter at index 1", "1.0"]),
        ((0.9, 1.5), ValueError, ["beta parameter at index 1", "1.5"]),
        ((NAN, 0.999), ValueError, ["beta parameter at index 0", "nan"]),
        ((0.9, INF), ValueError, ["beta parameter at index 1", "inf"]),
        (("0.9", 0.999), TypeError, ["beta parameter at index 0", "'0.9'"]),
        ((0.9, None), TypeError, ["beta parameter at index 1", "None"]),
        ((True, 0.999), TypeError, ["beta parameter at index 0", "True"]),
        ((0.9,), TypeError, ["betas", "(0.9,)"]),
        ((0.9, 0.99, 0.999), TypeError, ["betas", "(0.9, 0.99, 0.999)"]),
        (0.9, TypeError, ["betas", "0.9"]),
        (None, TypeError, ["betas", "None"]),
        ("ab", TypeError, ["betas", "'ab'"]),
    ],
    ids=lambda v: repr(v) if not isinstance(v, list) else "",
)
def test_constructor_refuses_bad_betas(cls, betas, error, fragments):
    with pytest.raises(error) as info:
        cls(entries(), betas=betas)
    assert_message_names(info, *fragments)


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        ({"nesterov": True}, ["Nesterov", "momentum=0.0"]),
        ({"nesterov": True, "momentum": 0.0}, ["Nesterov", "momentum=0.0"]),
        ({"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ["Nesterov", "dampening=0.1"]),
    ],
    ids=["momentum-default-0", "momentum-0", "dampening-0.1"],
)
def test_sgd_nesterov_requires_momentum_and_zero_dampening(kwargs, fragments):
    with pytest.raises(ValueError) as info:
        SGD(entries(), **kwargs)
    assert_message_names(info, *fragments)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        pytest.param(SGD, {"lr": 0.0, "momentum": 0.0, "dampening": -1.0, "weight_decay": 0.0}, id="SGD-zeros"),
        pytest.param(SGD, {"lr": np.float32(0.1), "momentum": np.float64(0.5)}, id="SGD-numpy-scalars"),
        pytest.param(SGD, {"momentum": 1.5, "nesterov": np.bool_(True)}, id="SGD-momentum>1"),
        pytest.param(Adam, {"lr": 0, "eps": 0.0, "betas": [0.0, 0.0]}, id="Adam-zeros"),
        pytest.param(AdamW, {"betas": (np.float64(0.5), 0.9), "weight_decay": 0}, id="AdamW-numpy-beta"),
    ],
)
def test_constructor_accepts_boundary_values_like_torch(cls, kwargs):
    opt = cls(entries(), **kwargs)
    opt.step()
    assert opt.state["step"] == 1


# ----- the params argument and its entries ----------------------------------------------------


def test_params_not_a_list_is_a_type_error():
    x = np.zeros(3)
    for bad in ({"params": x, "grad": x.copy()}, None, x, "params", 3):
        with pytest.raises(TypeError) as info:
            SGD(bad)
        assert_message_names(info, "params", type(bad).__name__)


@pytest.mark.parametrize(
    "bad_entry, error, fragments",
    [
        (np.zeros(3), TypeError, ["params[1]", "dict", "ndarray"]),
        ([np.zeros(3), np.zeros(3)], TypeError, ["params[1]", "dict", "list"]),
        ({"grad": np.zeros(3)}, ValueError, ["params[1]", "'params'"]),
        ({"params": np.zeros(3)}, ValueError, ["params[1]", "'grad'"]),
        ({"params": np.zeros(3, dtype=np.int64), "grad": np.zeros(3, dtype=np.int64)}, TypeError,
         ["params[1]['params']", "int64"]),
        ({"params": np.zeros(3, dtype=np.complex128), "grad": np.zeros(3, dtype=np.complex128)}, TypeError,
         ["params[1]['params']", "complex128"]),
        ({"params": [1.0, 2.0], "grad": np.zeros(2)}, TypeError, ["params[1]['params']", "list"]),
        ({"params": 1.0, "grad": 0.0}, TypeError, ["params[1]['params']", "float"]),
        ({"params": np.zeros(3), "grad": np.zeros(4)}, ValueError, ["params[1]['grad']", "(4,)", "(3,)"]),
        ({"params": np.zeros(3), "grad": np.zeros((3, 1))}, ValueError, ["params[1]['grad']", "(3, 1)", "(3,)"]),
        ({"params": np.zeros(3), "grad": np.zeros(3, dtype=np.float32)}, TypeError,
         ["params[1]['grad']", "float32", "float64"]),
        ({"params": np.zeros(3), "grad": None}, TypeError, ["params[1]['grad']", "None"]),
        ({"params": np.zeros(3), "grad": [0.0, 0.0, 0.0]}, TypeError, ["params[1]['grad']", "list"]),
        ({"params": np.zeros(3), "grad": np.zeros(3), "lr": -1.0}, ValueError, ["params[1]", "lr", "-1.0"]),
        ({"params": np.zeros(3), "grad": np.zeros(3), "lr": "fast"}, TypeError, ["params[1]", "lr", "'fast'"]),
        ({"params": np.zeros(3), "grad": np.zeros(3), "weight_decay": NAN}, ValueError,
         ["params[1]", "weight_decay", "nan"]),
        ({"params": np.zeros(3), "grad": np.zeros(3), "momentum": -0.9}, ValueError,
         ["params[1]", "momentum", "-0.9"]),
        ({"params": np.zeros(3), "grad": np.zeros(3), "nesterov": True}, ValueError,
         ["params[1]", "Nesterov", "momentum=0.0"]),
        ({"params": np.zeros(3), "grad": np.zeros(3), "betas": (0.9, 0.999)}, ValueError,
         ["params[1]", "'betas'"]),  # not an SGD hyperparameter
        ({"params": np.zeros(3), "grad": np.zeros(3), "momentun": 0.9}, ValueError, ["params[1]", "'momentun'"]),
    ],
    ids=[
        "entry-is-array", "entry-is-list", "no-params-key", "no-grad-key", "int-params", "complex-params",
        "params-is-list", "params-is-float", "grad-shape", "grad-shape-2d", "grad-dtype", "grad-None",
        "grad-is-list", "override-lr-negative", "override-lr-string", "override-wd-nan",
        "override-momentum-negative", "override-nesterov-without-momentum", "override-unknown-betas",
        "override-typo",
    ],
)
def test_sgd_constructor_refuses_bad_entry(bad_entry, error, fragments):
    good = entries(1)[0]
    with pytest.raises(error) as info:
        SGD([good, bad_entry])
    assert_message_names(info, *fragments)


def test_read_only_parameter_is_refused():
    x = np.zeros(3)
    x.flags.writeable = False
    with pytest.raises(ValueError) as info:
        Adam([{"params": x, "grad": np.zeros(3)}])
    assert_message_names(info, "params[0]['params']", "read-only")


def test_same_parameter_array_twice_is_refused():
    x = np.zeros(3)
    with pytest.raises(ValueError) as info:
        Adam([{"params": x, "grad": np.zeros(3)}, {"params": x, "grad": np.zeros(3)}])
    assert_message_names(info, "params[1]['params']", "params[0]")


@pytest.mark.parametrize(
    "override, error, fragments",
    [
        ({"betas": (0.9, 1.0)}, ValueError, ["params[0]", "beta parameter at index 1", "1.0"]),
        ({"betas": 0.9}, TypeError, ["params[0]", "betas", "0.9"]),
        ({"eps": -1.0}, ValueError, ["params[0]", "eps", "-1.0"]),
        ({"amsgrad": "yes"}, TypeError, ["params[0]", "amsgrad", "'yes'"]),
        ({"momentum": 0.9}, ValueError, ["params[0]", "'momentum'"]),  # not an Adam hyperparameter
    ],
    ids=["betas-1.0", "betas-scalar", "eps-negative", "amsgrad-string", "unknown-momentum"],
)
@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
def test_adam_constructor_refuses_bad_override(cls, override, error, fragments):
    entry = entries(1)[0]
    with pytest.raises(error) as info:
        cls([{**entry, **override}])
    assert_message_names(info, *fragments)


def test_lr_setter_validates_and_leaves_lr_unchanged_on_refusal():
    opt = Adam(entries(), lr=0.01)
    for bad, error in ((-1.0, ValueError), (NAN, ValueError), ("x", TypeError), (None, TypeError)):
        with pytest.raises(error):
            opt.lr = bad
        assert opt.lr == 0.01


# ----- a refused step() changes nothing ----------------------------------------------------------


def snapshot(opt):
    """Bitwise copy of every parameter, gradient, buffer and hyperparameter."""
    return {
        "params": [
            e["params"].tobytes() if isinstance(e, dict) and isinstance(e.get("params"), np.ndarray) else None
            for e in opt.param_groups
        ],
        "state": {
            key: (value if key == "step" else {n: (b.dtype, b.shape, b.tobytes()) for n, b in value.items()})
            for key, value in opt.state.items()
        },
        "defaults": copy.deepcopy(opt.defaults),
    }


def corrupt_grad_shape(opt):
    opt.param_groups[2]["grad"] = np.zeros(5)


def corrupt_grad_dtype(opt):
    opt.param_groups[2]["grad"] = opt.param_groups[2]["grad"].astype(np.float32)


def corrupt_grad_none(opt):
    opt.param_groups[2]["grad"] = None


def corrupt_grad_missing(opt):
    del opt.param_groups[2]["grad"]


def corrupt_override_lr(opt):
    opt.param_groups[1]["lr"] = -1.0


def corrupt_override_type(opt):
    opt.param_groups[2]["weight_decay"] = "0.1"


def corrupt_override_unknown(opt):
    opt.param_groups[1]["learning_rate"] = 0.1


def corrupt_defaults_lr(opt):
    opt.defaults["lr"] = NAN  # the public dict edited directly, bypassing the lr setter


def corrupt_defaults_type(opt):
    opt.defaults["lr"] = "0.1"


def corrupt_params_int(opt):
    opt.param_groups[2]["params"] = np.zeros(opt.param_groups[2]["params"].shape, dtype=np.int64)
    opt.param_groups[2]["grad"] = np.zeros(opt.param_groups[2]["params"].shape, dtype=np.int64)


def corrupt_params_shape(opt):
    # a new parameter whose shape no longer matches the buffers kept for the entry
    opt.param_groups[2]["params"] = np.zeros(5)
    opt.param_groups[2]["grad"] = np.zeros(5)


def corrupt_params_read_only(opt):
    opt.param_groups[2]["params"].flags.writeable = False


def corrupt_entry_not_dict(opt):
    opt.param_groups.append(np.zeros(3))


def corrupt_duplicate_param(opt):
    opt.param_groups[2]["params"] = opt.param_groups[0]["params"]


CORRUPTIONS = [
    corrupt_grad_shape, corrupt_grad_dtype, corrupt_grad_none, corrupt_grad_missing, corrupt_override_lr,
    corrupt_override_type, corrupt_override_unknown, corrupt_defaults_lr, corrupt_defaults_type,
    corrupt_params_int, corrupt_params_shape, corrupt_params_read_only, corrupt_entry_not_dict,
    corrupt_duplicate_param,
]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.removeprefix("corrupt_"))
@pytest.mark.parametrize(
    "cls, kwargs",
    [
        pytest.param(SGD, {"momentum": 0.9, "weight_decay": 0.01}, id="SGD-momentum"),
        pytest.param(Adam, {"amsgrad": True}, id="Adam-amsgrad"),
        pytest.param(AdamW, {}, id="AdamW"),
    ],
)
def test_refused_step_changes_no_parameter_and_no_state(cls, kwargs, corrupt):
    opt = cls(entries(3), **kwargs)
    opt.step()
    opt.step()
    corrupt(opt)
    before = snapshot(opt)
    groups_before = [dict(e) if isinstance(e, dict) else e for e in opt.param_groups]
    with pytest.raises((TypeError, ValueError)) as info:
        opt.step()
    assert "params[" in str(info.value) or "defaults" in str(info.value)
    after = snapshot(opt)
    assert after == before, f"{cls.__name__}: refused step after {corrupt.__name__} changed something"
    assert opt.state["step"] == 2
    for old, new in zip(groups_before, opt.param_groups):
        if isinstance(old, dict):
            assert old.keys() == new.keys() and all(old[k] is new[k] for k in old)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW], ids=["SGD", "Adam", "AdamW"])
def test_step_works_again_once_the_bad_entry_is_fixed(cls):
    opt = cls(entries(3))
    good_grad = opt.param_groups[2]["grad"]
    opt.param_groups[2]["grad"] = np.zeros(7)
    with pytest.raises(ValueError):
        opt.step()
    opt.param_groups[2]["grad"] = good_grad
    before = opt.param_groups[2]["params"].copy()
    opt.step()
    assert opt.state["step"] == 1
    assert not np.array_equal(before, opt.param_groups[2]["params"])


def test_zero_grad_refusal_changes_no_gradient():
    opt = SGD(entries(3))
    grads = [e["grad"].copy() for e in opt.param_groups]
    opt.param_groups[2]["grad"] = None
    with pytest.raises(TypeError) as info:
        opt.zero_grad()
    assert_message_names(info, "params[2]['grad']")
    for g, e in zip(grads[:2], opt.param_groups[:2]):
        np.testing.assert_array_equal(e["grad"], g)


# ----- a refused load_state_dict changes nothing -----------------------------------------------


def trained(cls, kwargs, n=3):
    opt = cls(entries(n), **kwargs)
    for _ in range(3):
        opt.step()
    return opt


def bad_state_dicts(cls):
    """(id, mutate(sd), error, message fragment) for optimizer class cls."""
    bufname = "momentum_buffer" if cls is SGD else "exp_avg"
    wrong_buffer = "exp_avg" if cls is SGD else "momentum_buffer"
    cases = [
        ("not-a-dict", lambda sd: [sd], TypeError, "state_dict"),
        ("missing-step", lambda sd: {k: v for k, v in sd.items() if k != "step"}, ValueError, "step"),
        ("extra-key", lambda sd: {**sd, "extra": 1}, ValueError, "extra"),
        ("step-negative", lambda sd: {**sd, "step": -1}, ValueError, "-1"),
        ("step-float", lambda sd: {**sd, "step": 3.0}, TypeError, "3.0"),
        ("step-bool", lambda sd: {**sd, "step": True}, TypeError, "True"),
        ("too-few-entries", lambda sd: {**sd, "param_groups": sd["param_groups"][:2], "state": sd["state"][:2]},
         ValueError, "param_groups"),
        ("too-many-states", lambda sd: {**sd, "state": sd["state"] + [{}]}, ValueError, "'state'"),
        ("state-not-list", lambda sd: {**sd, "state": {0: sd["state"][0]}}, TypeError, "'state'"),
        ("defaults-missing-key", lambda sd: {**sd, "defaults": {k: v for k, v in sd["defaults"].items() if k != "lr"}},
         ValueError, "defaults"),
        ("defaults-bad-lr", lambda sd: {**sd, "defaults": {**sd["defaults"], "lr": -0.5}}, ValueError, "-0.5"),
        ("defaults-not-dict", lambda sd: {**sd, "defaults": None}, TypeError, "defaults"),
        ("group-bad-lr", lambda sd: {**sd, "param_groups": [{}, {}, {"lr": NAN}]}, ValueError, "nan"),
        ("group-unknown-key", lambda sd: {**sd, "param_groups": [{}, {"foo": 1.0}, {}]}, ValueError, "'foo'"),
        ("group-not-dict", lambda sd: {**sd, "param_groups": [{}, {}, 0.1]}, TypeError, "param_groups"),
        ("buffer-shape", lambda sd: _set_buffer(sd, 2, bufname, np.zeros(4)), ValueError, "(4,)"),
        ("buffer-dtype", lambda sd: _set_buffer(sd, 2, bufname, np.zeros(3, np.float32)), ValueError, "float32"),
        ("buffer-not-array", lambda sd: _set_buffer(sd, 2, bufname, [0.0, 0.0, 0.0]), TypeError, bufname),
        ("buffer-unknown-name", lambda sd: _set_buffer(sd, 1, wrong_buffer, np.zeros(3)), ValueError, wrong_buffer),
        ("state-entry-not-dict", lambda sd: {**sd, "state": sd["state"][:2] + [None]}, TypeError, "state"),
        ("initial-lrs-missing", lambda sd: {k: v for k, v in sd.items() if k != "initial_lrs"}, ValueError,
         "initial_lrs"),
        ("initial-lrs-short", lambda sd: {**sd, "initial_lrs": sd["initial_lrs"][:2]}, ValueError, "initial_lrs"),
        ("initial-lrs-not-list", lambda sd: {**sd, "initial_lrs": 0.1}, TypeError, "initial_lrs"),
        ("initial-lr-negative", lambda sd: {**sd, "initial_lrs": [0.1, -0.1, 0.1]}, ValueError, "-0.1"),
        ("initial-lr-string", lambda sd: {**sd, "initial_lrs": [0.1, 0.1, "0.1"]}, TypeError, "initial_lrs'][2]"),
    ]
    if cls is SGD:
        cases.append(("defaults-nesterov-no-momentum",
                      lambda sd: {**sd, "defaults": {**sd["defaults"], "nesterov": True, "momentum": 0.0}},
                      ValueError, "Nesterov"))
    else:
        cases.append(("amsgrad-buffer-without-amsgrad",
                      lambda sd: _set_buffer(sd, 2, "max_exp_avg_sq", np.zeros(3)), ValueError, "max_exp_avg_sq"))
        cases.append(("defaults-bad-betas", lambda sd: {**sd, "defaults": {**sd["defaults"], "betas": [0.9, 1.0]}},
                      ValueError, "index 1"))
    return cases


def _set_buffer(sd, index, name, value):
    sd = copy.deepcopy(sd)
    sd["state"][index][name] = value
    return sd


def load_cases():
    for cls, kwargs in ((SGD, {"momentum": 0.9}), (Adam, {}), (AdamW, {})):
        for case_id, mutate, error, fragment in bad_state_dicts(cls):
            yield pytest.param(cls, kwargs, mutate, error, fragment, id=f"{cls.__name__}-{case_id}")


@pytest.mark.parametrize("cls, kwargs, mutate, error, fragment", list(load_cases()))
def test_refused_load_state_dict_changes_nothing(cls, kwargs, mutate, error, fragment):
    source = trained(cls, kwargs)
    target = trained(cls, {**kwargs, "lr": 0.5})
    target.param_groups[0]["weight_decay"] = 0.0  # an override that must survive the refusal
    before = snapshot(target)
    initial_lrs_before = list(target.initial_lrs)
    groups_before = copy.deepcopy([{k: v for k, v in e.items() if k not in ("params", "grad")}
                                   for e in target.param_groups])
    bad = mutate(source.state_dict())
    with pytest.raises(error) as info:
        target.load_state_dict(bad)
    assert_message_names(info, fragment)
    assert snapshot(target) == before
    assert target.initial_lrs == initial_lrs_before
    assert [{k: v for k, v in e.items() if k not in ("params", "grad")} for e in target.param_groups] == groups_before
    # and the target still works as before
    target.step()
    assert target.state["step"] == 4


# ----- schedulers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, fragments",
    [
        (lambda: StepDecayScheduler(0.1, 0.5, 0), ValueError, ["step_size", "0"]),
        (lambda: StepDecayScheduler(0.1, 0.5, -3), ValueError, ["step_size", "-3"]),
        (lambda: StepDecayScheduler(0.1, 0.5, 2.5), TypeError, ["step_size", "2.5"]),
        (lambda: StepDecayScheduler(0.1, 0.5, True), TypeError, ["step_size", "True"]),
        (lambda: StepDecayScheduler(-0.1, 0.5, 10), ValueError, ["initial_lr", "-0.1"]),
        (lambda: StepDecayScheduler(NAN, 0.5, 10), ValueError, ["initial_lr", "nan"]),
        (lambda: StepDecayScheduler(0.1, -0.5, 10), ValueError, ["decay_factor", "-0.5"]),
        (lambda: StepDecayScheduler(0.1, INF, 10), ValueError, ["decay_factor", "inf"]),
        (lambda: StepDecayScheduler(0.1, "0.5", 10), TypeError, ["decay_factor", "'0.5'"]),
        (lambda: CosineScheduler(1.0, 0.0, 0), ValueError, ["total_steps", "0"]),
        (lambda: CosineScheduler(1.0, 0.0, -10), ValueError, ["total_steps", "-10"]),
        (lambda: CosineScheduler(1.0, 0.0, 10.0), TypeError, ["total_steps", "10.0"]),
        (lambda: CosineScheduler(1.0, 2.0, 10), ValueError, ["min_lr", "2.0"]),
        (lambda: CosineScheduler(-1.0, 0.0, 10), ValueError, ["max_lr", "-1.0"]),
        (lambda: CosineScheduler(1.0, None, 10), TypeError, ["min_lr", "None"]),
        (lambda: WarmupCosineScheduler(1.0, 0.0, 10, 10), ValueError, ["warmup_steps", "10"]),
        (lambda: WarmupCosineScheduler(1.0, 0.0, 11, 10), ValueError, ["warmup_steps", "11"]),
        (lambda: WarmupCosineScheduler(1.0, 0.0, -1, 10), ValueError, ["warmup_steps", "-1"]),
        (lambda: WarmupCosineScheduler(1.0, 0.0, 5, 0), ValueError, ["total_steps", "0"]),
        (lambda: WarmupCosineScheduler(1.0, 0.0, 2.0, 10), TypeError, ["warmup_steps", "2.0"]),
        (lambda: WarmupCosineScheduler(NAN, 0.0, 2, 10), ValueError, ["max_lr", "nan"]),
    ],
    ids=[
        "step-size-0", "step-size-negative", "step-size-float", "step-size-bool", "initial-lr-negative",
        "initial-lr-nan", "decay-negative", "decay-inf", "decay-string", "cosine-total-0", "cosine-total-negative",
        "cosine-total-float", "cosine-min-above-max", "cosine-max-negative", "cosine-min-None",
        "warmup-equals-total", "warmup-above-total", "warmup-negative", "warmup-total-0", "warmup-float",
        "warmup-max-nan",
    ],
)
def test_scheduler_constructor_refuses_bad_arguments(make, error, fragments):
    with pytest.raises(error) as info:
        make()
    assert_message_names(info, *fragments)


SCHEDULERS = [
    pytest.param(lambda: StepDecayScheduler(0.1, 0.5, 10), id="step-decay"),
    pytest.param(lambda: CosineScheduler(0.1, 0.001, 100), id="cosine"),
    pytest.param(lambda: WarmupCosineScheduler(0.1, 0.001, 10, 100), id="warmup-cosine"),
]


@pytest.mark.parametrize("make", SCHEDULERS)
@pytest.mark.parametrize(
    "step, error", [(-1, ValueError), (-100, ValueError), (1.5, TypeError), ("3", TypeError), (None, TypeError)],
    ids=["-1", "-100", "1.5", "string", "None"],
)
def test_scheduler_refuses_bad_step_and_leaves_optimizer_lr_unchanged(make, step, error):
    scheduler = make()
    with pytest.raises(error) as info:
        scheduler.get_lr(step)
    assert_message_names(info, "step", repr(step))
    opt = SGD(entries(2), lr=0.05)
    opt.param_groups[1]["lr"] = 0.2
    with pytest.raises(error):
        scheduler.step(opt, step)
    assert opt.lr == 0.05 and opt.param_groups[1]["lr"] == 0.2


@pytest.mark.parametrize("make", SCHEDULERS)
def test_scheduler_step_refuses_something_that_is_not_an_optimizer(make):
    with pytest.raises(TypeError) as info:
        make().step({"lr": 0.1}, 0)
    assert_message_names(info, "optimizer", "dict")


# ----- huge integers and the threads variable (issue 11's review) -------------------------


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "ASGD", "NAdam", "RAdam",
                                  "RMSprop", "Rprop", "Adafactor", "LBFGS"])
def test_a_huge_integer_lr_is_a_value_error_naming_lr(name):
    import numpy_optim

    with pytest.raises(ValueError, match=r"lr value: too large for a float"):
        getattr(numpy_optim, name)([{"params": np.zeros(2), "grad": np.zeros(2)}], lr=10**400)


def test_a_huge_integer_in_betas_or_a_clip_argument_is_a_value_error_naming_it():
    import numpy_optim

    with pytest.raises(ValueError, match=r"beta parameter at index 0 value: too large for a float"):
        numpy_optim.Adam([{"params": np.zeros(2), "grad": np.zeros(2)}], betas=(10**400, 0.9))
    grad = np.ones(2)
    with pytest.raises(ValueError, match=r"max_norm value: too large for a float"):
        numpy_optim.clip_grad_norm_(grad, 10**400)
    assert grad.tolist() == [1.0, 1.0]


def test_a_non_integer_threads_variable_names_itself_at_import():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import numpy_optim"], capture_output=True, text=True,
                            env={**__import__("os").environ, "NUMPY_OPTIM_THREADS": "abc"})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "ValueError: NUMPY_OPTIM_THREADS must be an integer >= 1 (the threads a step may use), got 'abc'")
