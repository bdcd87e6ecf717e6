"""The refusals of issue 11: every one raises ValueError or TypeError and changes nothing.

* corrupted state dicts (a Hypothesis test over every elementwise optimizer and corruption kind);
* ndarray subclasses (``np.matrix``, masked arrays, ``np.memmap``, a user subclass);
* memory shared between entries (views, reshapes, transposes, overlapping slices, buffers);
* the class a state dict records; its step bounded by 2**53;
* ``defaults`` with a key deleted or added; non-plain values in state dicts;
* ``numpy_optim._blocks.settings`` and ``NUMPY_OPTIM_THREADS``; eps that rounds to 0 in float16;
* ``add_param_group`` and entries appended to ``param_groups`` directly; huge integers.

"Nothing changed" is checked bitwise: parameters, gradients, buffers, step, defaults,
overrides and ``initial_lrs`` (see :func:`frozen`), and a step after the refusal equals the
step of a twin optimizer that never saw the refused call.
"""

from __future__ import annotations

import collections
import copy
import math
import os
import re
import subprocess
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import numpy_optim
from numpy_optim import (
    ASGD,
    LBFGS,
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    RAdam,
    RMSprop,
    Rprop,
    _blocks,
)

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

OPTIMIZER_NAMES = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD",
                   "Rprop", "Adafactor", "LBFGS"]


# ----- helpers ---------------------------------------------------------------------------


def _bits(value):
    """A value as something ``==`` compares bit for bit (arrays: type, dtype, shape, bytes)."""
    if isinstance(value, np.ndarray):
        return type(value).__name__, value.dtype.str, value.shape, np.array(value).tobytes()
    if isinstance(value, float):
        return "float", value.hex()
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_bits(v) for v in value]
    if isinstance(value, dict):
        return "dict", {k: _bits(v) for k, v in value.items()}
    return type(value).__name__, repr(value)


def frozen(opt):
    """Everything a refused call must leave alone: the entries (parameters, gradients,
    overrides), the state (step, buffers), ``defaults`` and ``initial_lrs``."""
    return _bits({
        "entries": [dict(entry) for entry in opt.param_groups],
        "state": dict(opt.state),
        "defaults": dict(opt.defaults),
        "initial_lrs": list(opt.initial_lrs),
    })


def assert_same(a, b, path="state_dict"):
    """Two state dicts equal bit for bit: same types, arrays by bytes, dtype and shape,
    floats by ``float.hex``."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{index}]")
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()), f"{path} differs"
    elif isinstance(a, float):
        assert a.hex() == b.hex(), f"{path}: {a!r} != {b!r}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def give_gradients(opt, rng):
    for entry in opt.param_groups:
        entry["grad"][...] = rng.standard_normal(entry["grad"].shape)


def run(opt, steps, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        give_gradients(opt, rng)
        opt.step()


def make_entries(shapes=((2, 3), (4,)), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [{"params": rng.standard_normal(s).astype(dtype), "grad": np.zeros(s, dtype)} for s in shapes]


def assert_names(info, *fragments):
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ----- 1. corrupted state dicts (Hypothesis) -----------------------------------------------

# (id, class, constructor arguments, the override of entry 1)
CONFIGS = [
    ("SGD", SGD, {"lr": 0.05}, {"lr": 0.03}),
    ("SGD-momentum", SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
     {"weight_decay": 0.0, "dampening": 0.0}),
    ("SGD-nesterov", SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}, {"momentum": 0.5}),
    ("Adam", Adam, {"lr": 0.01}, {"amsgrad": True}),
    ("Adam-amsgrad", Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}, {"betas": (0.5, 0.75)}),
    ("AdamW", AdamW, {"lr": 0.01, "weight_decay": 0.1}, {"weight_decay": 0.0}),
    ("Adagrad", Adagrad, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}, {"eps": 1e-6}),
    ("RMSprop", RMSprop, {}, {"centered": True}),
    ("RMSprop-centered-momentum", RMSprop, {"centered": True, "momentum": 0.5}, {"momentum": 0.0}),
    ("Adadelta", Adadelta, {}, {"rho": 0.5}),
    ("Adamax", Adamax, {}, {"betas": (0.8, 0.99)}),
    ("NAdam", NAdam, {}, {"momentum_decay": 0.01}),
    ("RAdam", RAdam, {}, {"lr": 0.003}),
    ("ASGD", ASGD, {"t0": 1.0}, {"lambd": 0.001}),
    ("Rprop", Rprop, {}, {"etas": (0.25, 1.5)}),
    ("Adafactor", Adafactor, {}, {"eps": (1e-30, 1e-3)}),  # eps[0]: a float leaf that may also be None
]

#: Every hyperparameter of every optimizer, with a value valid for it (in some optimizer).
KNOWN_HYPERPARAMETERS = {}
for _, _cls, _kwargs, _ in CONFIGS:
    _opt = _cls([], **_kwargs)
    for _name, _value in _opt.defaults.items():
        KNOWN_HYPERPARAMETERS.setdefault(_name, _value)
KNOWN_HYPERPARAMETERS.update(history_size=10, line_search_fn=None, bogus=0.1)  # LBFGS's, and a made-up one
KNOWN_BUFFERS = ["momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "sum", "square_avg", "grad_avg",
                 "acc_delta", "exp_inf", "mu_product", "ax", "eta", "mu", "prev", "step_size", "row_var", "col_var",
                 "variance", "step", "bogus"]  # ("step": torch keeps one per parameter; numpy_optim does not)

KINDS = ["top-level key deleted", "top-level key added", "defaults key added", "entry key added", "buffer added",
         "defaults key deleted", "buffer deleted", "class", "step", "float leaf", "bool leaf", "array leaf",
         "list", "dict"]
FLOAT_BAD = [math.nan, math.inf, -math.inf, 10**400, -(10**400), "0.1", None, [0.1]]
BOOL_BAD = [1, 0, 1.0, "True", None]
STEP_BAD = [-1, 10**400, -(10**400), 2**53 + 1, 1.5, 2.0, True, False, "2", None]
ARRAY_BAD = ["shape", "dtype", "int", "bool", "complex", "0-d", "matrix", "masked", "list"]
ATTEMPTS = collections.Counter()  # (kind, what was drawn) -> examples tried
CONFIG_ATTEMPTS = collections.Counter()  # configuration id -> examples tried
EXAMPLES = 150


def _short(value):
    """A drawn value as a short label (``10**400`` rather than its 401 digits)."""
    if type(value) is int and abs(value) > 10**20:
        return f"{'-' if value < 0 else ''}10**{len(str(abs(value))) - 1}"
    return repr(value)


def _leaves(sd, leaf_type):
    """{path: (container, key)} of every leaf of exactly ``leaf_type`` in the hyperparameter
    parts of a state dict (defaults, param_groups items, initial_lrs; inside pairs too)."""
    found = {}

    def walk(container, key, path):
        value = container[key]
        if isinstance(value, list):
            for index in range(len(value)):
                walk(value, index, f"{path}[{index}]")
        elif type(value) is leaf_type:
            found[path] = container, key

    for name in sd["defaults"]:
        walk(sd["defaults"], name, f"defaults[{name!r}]")
    for index, item in enumerate(sd["param_groups"]):
        for name in item:
            walk(item, name, f"param_groups[{index}][{name!r}]")
    for index in range(len(sd["initial_lrs"])):
        walk(sd["initial_lrs"], index, f"initial_lrs[{index}]")
    return found


def _bad_array(how, array):
    if how == "shape":
        return np.zeros(array.shape + (2,), array.dtype)
    if how == "dtype":
        return array.astype(np.float16 if array.dtype == np.float32 else np.float32)
    if how in ("int", "bool", "complex"):
        return array.astype({"int": np.int64, "bool": np.bool_, "complex": np.complex128}[how])
    if how == "0-d":
        return np.array(array.flat[0], array.dtype)
    if how == "matrix":
        return np.matrix(array)
    if how == "masked":
        return np.ma.masked_array(array.copy())
    assert how == "list"
    return array.tolist()


def corrupt(kind, sd, opt, data):
    """A deep copy of ``sd`` with one corruption of this kind, and what was drawn."""
    bad = copy.deepcopy(sd)
    draw = data.draw
    if kind == "top-level key deleted":
        key = draw(st.sampled_from(sorted(bad)))
        del bad[key]
        return bad, key
    if kind == "top-level key added":
        key = draw(st.sampled_from(["bogus", "Step", "params", "lr", "version", "optimizer"]))
        bad[key] = draw(st.sampled_from([0, None, {}, "x"]))
        return bad, key
    if kind == "defaults key added":  # the name of another optimizer's hyperparameter, with a value valid there
        key = draw(st.sampled_from(sorted(set(KNOWN_HYPERPARAMETERS) - set(bad["defaults"]))))
        bad["defaults"][key] = copy.deepcopy(KNOWN_HYPERPARAMETERS[key])
        return bad, key
    if kind == "entry key added":
        # Scheduler keys (initial_lr, swa_lr, ...) are valid in an entry; "params" and "grad" have
        # a test of their own (test_a_param_groups_item_with_params_or_grad_is_refused).
        key = draw(st.sampled_from(sorted(set(KNOWN_HYPERPARAMETERS) - set(bad["defaults"]))))
        index = draw(st.integers(0, len(bad["param_groups"]) - 1))
        bad["param_groups"][index][key] = copy.deepcopy(KNOWN_HYPERPARAMETERS[key])
        return bad, key
    if kind == "buffer added":
        # Every entry has taken steps, so each item already holds every buffer it may hold:
        # any other name, even one valid for other hyperparameters, is refused.
        index = draw(st.integers(0, len(bad["state"]) - 1))
        name = draw(st.sampled_from([n for n in KNOWN_BUFFERS if n not in bad["state"][index]]))
        param = opt.param_groups[index]["params"]
        bad["state"][index][name] = np.zeros(param.shape, param.dtype)
        return bad, name
    if kind == "defaults key deleted":
        key = draw(st.sampled_from(sorted(bad["defaults"])))
        del bad["defaults"][key]
        return bad, key
    if kind == "buffer deleted":
        # (An item with one buffer emptied is valid: the entry starts afresh, as in torch.)
        full = [index for index, item in enumerate(bad["state"]) if len(item) >= 2]
        assume(full)
        index = draw(st.sampled_from(full))
        name = draw(st.sampled_from(sorted(bad["state"][index])))
        del bad["state"][index][name]
        return bad, name
    if kind == "class":
        others = [name for name in OPTIMIZER_NAMES if name != bad["class"]]
        value = draw(st.sampled_from([*others, "Optimizer", bad["class"].lower(), f"{bad['class']} ", "", None, 1,
                                      bad["class"].encode(), [bad["class"]]]))
        bad["class"] = value
        return bad, "another name" if isinstance(value, str) else type(value).__name__
    if kind == "step":
        value = draw(st.sampled_from(STEP_BAD))
        bad["step"] = value
        return bad, _short(value)
    if kind == "float leaf":
        leaves = _leaves(bad, float)
        path = draw(st.sampled_from(sorted(leaves)))
        # Adafactor's eps[0] may be None (the dtype's machine epsilon): valid, so not drawn there.
        options = [v for v in FLOAT_BAD if not (v is None and path.endswith("['eps'][0]"))]
        value = draw(st.sampled_from(options))
        container, key = leaves[path]
        container[key] = value
        return bad, _short(value)
    if kind == "bool leaf":
        leaves = _leaves(bad, bool)
        path = draw(st.sampled_from(sorted(leaves)))
        # (fused=None is torch's default, and valid: not fused)
        value = draw(st.sampled_from([v for v in BOOL_BAD if v is not None or not path.endswith("['fused']")]))
        container, key = leaves[path]
        container[key] = value
        return bad, repr(value)
    if kind == "array leaf":
        how = draw(st.sampled_from(ARRAY_BAD))
        # A 0-d array replacing a 0-d buffer (eta, mu, mu_product) is that buffer's layout;
        # np.matrix is 2-D only.
        leaves = [(index, name) for index, item in enumerate(bad["state"]) for name, array in sorted(item.items())
                  if (how != "0-d" or array.ndim > 0) and (how != "matrix" or array.ndim == 2)]
        assume(leaves)
        index, name = draw(st.sampled_from(leaves))
        bad["state"][index][name] = _bad_array(how, bad["state"][index][name])
        return bad, how
    if kind == "list":
        key = draw(st.sampled_from(["param_groups", "state", "initial_lrs"]))
        how = draw(st.sampled_from(["shortened", "emptied", "lengthened", "dict", "str", "None"]))
        value = bad[key]
        bad[key] = {"shortened": value[:-1], "emptied": [], "lengthened": [*value, copy.deepcopy(value[-1])],
                    "dict": dict(enumerate(value)), "str": repr(value), "None": None}[how]
        return bad, f"{key} {how}"
    assert kind == "dict"
    where = draw(st.sampled_from(["state_dict", "defaults", "param_groups item", "state item"]))
    how = draw(st.sampled_from(["list", "None"]))
    replace = (lambda d: list(d.items())) if how == "list" else (lambda d: None)
    if where == "state_dict":
        return replace(bad), f"{where} {how}"
    if where == "defaults":
        bad["defaults"] = replace(bad["defaults"])
    else:
        key = "param_groups" if where == "param_groups item" else "state"
        index = draw(st.integers(0, len(bad[key]) - 1))
        bad[key][index] = replace(bad[key][index])
    return bad, f"{where} {how}"


def build(config, shapes, dtypes, seed):
    _, cls, kwargs, override = config
    rng = np.random.default_rng(seed)
    entries = [{"params": rng.standard_normal(s).astype(d), "grad": np.zeros(s, d)} for s, d in zip(shapes, dtypes)]
    entries[1].update(override)
    return cls(entries, **kwargs)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=EXAMPLES, deadline=None)
@given(
    config=st.sampled_from(CONFIGS),
    shapes=st.tuples(st.sampled_from([(3, 2), (2, 4)]),
                     st.lists(st.sampled_from([(), (1,), (4,), (2, 3), (5, 1)]), min_size=2, max_size=2, unique=True))
    .map(lambda drawn: (drawn[0], *drawn[1])),
    dtypes=st.tuples(*[st.sampled_from([np.float32, np.float64])] * 3),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_a_corrupted_state_dict_is_refused_and_changes_nothing(kind, config, shapes, dtypes, seed, data):
    opt, twin = build(config, shapes, dtypes, seed), build(config, shapes, dtypes, seed)
    run(opt, 2, seed)
    run(twin, 2, seed)
    sd = opt.state_dict()
    before = frozen(opt)
    bad, drawn = corrupt(kind, sd, opt, data)
    ATTEMPTS[kind, drawn] += 1
    CONFIG_ATTEMPTS[config[0]] += 1
    event(f"{kind}: {drawn}")
    with pytest.raises((ValueError, TypeError)) as info:
        opt.load_state_dict(bad)
    assert type(info.value) in (ValueError, TypeError), f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert message.strip() and len(message) < 1000, message
    assert_same(opt.state_dict(), sd)
    assert frozen(opt) == before
    rng = np.random.default_rng(seed + 1)
    give_gradients(opt, rng)
    for entry, twin_entry in zip(opt.param_groups, twin.param_groups):
        twin_entry["grad"][...] = entry["grad"]
    opt.step()
    twin.step()
    assert frozen(opt) == frozen(twin)


def test_every_corruption_kind_was_tried(request, capsys):
    """Runs after the Hypothesis test (file order): every kind it ran was tried often; the
    counts, by kind and by what was drawn, are printed."""
    ran = [item.callspec.params["kind"] for item in request.session.items
           if getattr(item, "originalname", None) == "test_a_corrupted_state_dict_is_refused_and_changes_nothing"]
    by_kind = collections.Counter()
    for (kind, _), count in ATTEMPTS.items():
        by_kind[kind] += count
    if ran:
        with capsys.disabled():
            print(f"\ncorrupted state dicts refused: {sum(by_kind.values())} examples")
            for kind in KINDS:
                drawn = ", ".join(f"{d} {n}" for (k, d), n in sorted(ATTEMPTS.items()) if k == kind)
                print(f"  {kind}: {by_kind[kind]} ({drawn})")
            print("  by optimizer: " + ", ".join(f"{name} {n}" for name, n in sorted(CONFIG_ATTEMPTS.items())))
    for kind in ran:
        assert by_kind[kind] >= EXAMPLES // 2, f"{kind}: only {by_kind[kind]} examples"


@pytest.mark.parametrize("key", ["params", "grad"])
def test_a_param_groups_item_with_params_or_grad_is_refused(key):
    opt = Adam(make_entries())
    run(opt, 1)
    bad = opt.state_dict()
    bad["param_groups"][0][key] = np.zeros(3)
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        opt.load_state_dict(bad)


# ----- 2. ndarray subclasses ----------------------------------------------------------------


class UserArray(np.ndarray):
    pass


SUBCLASSES = ["matrix", "masked", "memmap", "user"]


def as_subclass(kind, array, tmp_path):
    """An instance of the subclass ``kind`` holding ``array``'s values (2-D)."""
    if kind == "matrix":
        return np.matrix(array)
    if kind == "masked":
        return np.ma.masked_array(array.copy())
    if kind == "memmap":
        mapped = np.memmap(tmp_path / f"{len(os.listdir(tmp_path))}.dat", array.dtype, "w+", shape=array.shape)
        mapped[...] = array
        return mapped
    return array.copy().view(UserArray)


def assert_subclass_refused(info, where):
    assert type(info.value) is TypeError
    assert_names(info, where, "subclass")


@pytest.mark.parametrize("role", ["params", "grad"])
@pytest.mark.parametrize("kind", SUBCLASSES)
@pytest.mark.parametrize("cls", [SGD, Adam, LBFGS])
def test_an_ndarray_subclass_is_refused_at_construction(cls, kind, role, tmp_path):
    entries = make_entries(((2, 3), (2, 3)))
    entries[1][role] = as_subclass(kind, entries[1][role], tmp_path)
    with pytest.raises(TypeError) as info:
        cls(entries)
    assert_subclass_refused(info, f"params[1][{role!r}]")


@pytest.mark.parametrize("role", ["params", "grad"])
@pytest.mark.parametrize("kind", SUBCLASSES)
def test_an_ndarray_subclass_swapped_into_an_entry_is_refused_at_step(kind, role, tmp_path):
    opt, twin = Adam(make_entries(((2, 3), (2, 3)))), Adam(make_entries(((2, 3), (2, 3))))
    run(opt, 2)  # the reused plan: the swap must be seen anyway
    run(twin, 2)
    original = opt.param_groups[1][role]
    opt.param_groups[1][role] = as_subclass(kind, original, tmp_path)
    before = frozen(opt)
    with pytest.raises(TypeError) as info:
        opt.step()
    assert_subclass_refused(info, f"params[1][{role!r}]")
    assert frozen(opt) == before
    opt.param_groups[1][role] = original
    run(opt, 1, seed=3)
    run(twin, 1, seed=3)
    assert frozen(opt) == frozen(twin)


@pytest.mark.parametrize("role", ["params", "grad"])
@pytest.mark.parametrize("kind", SUBCLASSES)
def test_an_ndarray_subclass_is_refused_by_add_param_group(kind, role, tmp_path):
    opt = RMSprop(make_entries())
    run(opt, 1)
    before = frozen(opt)
    entry = make_entries(((2, 3),), seed=4)[0]
    entry[role] = as_subclass(kind, entry[role], tmp_path)
    with pytest.raises(TypeError) as info:
        opt.add_param_group(entry)
    assert_subclass_refused(info, f"params[2][{role!r}]")
    assert frozen(opt) == before


@pytest.mark.parametrize("kind", SUBCLASSES)
def test_an_ndarray_subclass_put_by_hand_as_a_state_buffer_is_refused_at_step(kind, tmp_path):
    opt = Adam(make_entries(((2, 3), (2, 3))))
    run(opt, 2)
    opt.state[1]["exp_avg"] = as_subclass(kind, opt.state[1]["exp_avg"], tmp_path)
    before = frozen(opt)
    with pytest.raises(TypeError) as info:
        opt.step()
    assert_subclass_refused(info, "params[1]: its state buffer 'exp_avg'")
    assert frozen(opt) == before


@pytest.mark.parametrize("kind", SUBCLASSES)
def test_an_ndarray_subclass_in_a_state_dict_is_refused(kind, tmp_path):
    opt = Adam(make_entries(((2, 3), (2, 3))))
    run(opt, 2)
    sd = opt.state_dict()
    before = frozen(opt)
    bad = opt.state_dict()
    bad["state"][1]["exp_avg_sq"] = as_subclass(kind, bad["state"][1]["exp_avg_sq"], tmp_path)
    with pytest.raises(TypeError) as info:
        opt.load_state_dict(bad)
    assert_subclass_refused(info, "state_dict['state'][1]['exp_avg_sq']")
    assert frozen(opt) == before
    assert_same(opt.state_dict(), sd)


def test_a_plain_view_of_a_matrix_is_accepted_and_updates_the_matrix():
    matrix = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    opt = SGD([{"params": matrix.view(np.ndarray), "grad": np.array([[1.0, -1.0], [0.5, 2.0]])}], lr=0.5)
    opt.step()
    assert type(matrix) is np.matrix
    assert matrix.tolist() == [[0.5, 2.5], [2.75, 3.0]]  # p - 0.5 * g


# ----- 3. shared memory ---------------------------------------------------------------------


def aliasing(case):
    """(param 0, grad 0, param 1, grad 1, the two arrays the message names) for a case of
    two entries that share memory."""
    base = np.arange(12.0).reshape(3, 4) / 8
    ones = np.ones_like
    if case == "same array":
        return base, ones(base), base, ones(base), ("params[0]['params']", "params[1]['params']")
    if case == "view":
        return base, ones(base), base.view(), ones(base), ("params[0]['params']", "params[1]['params']")
    if case == "reshape":
        return base, ones(base), base.reshape(12), np.ones(12), ("params[0]['params']", "params[1]['params']")
    if case == "transpose":
        return base, ones(base), base.T, ones(base.T), ("params[0]['params']", "params[1]['params']")
    if case == "overlapping slices":
        flat = np.arange(10.0)
        return flat[0:6], np.ones(6), flat[4:10], np.ones(6), ("params[0]['params']", "params[1]['params']")
    if case == "a param is another's grad":
        other = base.copy()
        return base, ones(base), other, base, ("params[0]['params']", "params[1]['grad']")
    assert case == "a param is a view of another's grad"
    grad = np.ones(12)
    return base.copy(), grad.reshape(3, 4), grad[2:8], np.ones(6), ("params[0]['grad']", "params[1]['params']")


ALIASING = ["same array", "view", "reshape", "transpose", "overlapping slices", "a param is another's grad",
            "a param is a view of another's grad"]


def assert_shared_memory_refused(info, names):
    assert type(info.value) is ValueError
    assert_names(info, *names)
    message = str(info.value)
    assert "shares memory" in message or "same array" in message, message


@pytest.mark.parametrize("case", ALIASING)
@pytest.mark.parametrize("cls", [SGD, Adam, LBFGS])
def test_entries_sharing_memory_are_refused_at_construction(cls, case):
    p0, g0, p1, g1, names = aliasing(case)
    saved = [a.copy() for a in (p0, g0, p1, g1)]
    with pytest.raises(ValueError) as info:
        cls([{"params": p0, "grad": g0}, {"params": p1, "grad": g1}], lr=0.1)
    assert_shared_memory_refused(info, names)
    assert all(np.array_equal(a, b) for a, b in zip((p0, g0, p1, g1), saved))


@pytest.mark.parametrize("case", ALIASING)
def test_arrays_sharing_memory_swapped_into_an_entry_are_refused_at_step(case):
    p0, g0, p1, g1, names = aliasing(case)
    entries = [{"params": p0, "grad": g0}, {"params": p1.copy(), "grad": g1.copy()}]  # disjoint at first
    opt = SGD(entries, lr=0.1, momentum=0.9)
    opt.step()
    opt.step()  # the reused plan
    entries[1]["params"], entries[1]["grad"] = p1, g1
    before = frozen(opt)
    with pytest.raises(ValueError) as info:
        opt.step()
    assert_shared_memory_refused(info, names)
    assert frozen(opt) == before


@pytest.mark.parametrize("case", ALIASING)
def test_an_entry_sharing_memory_is_refused_by_add_param_group(case):
    p0, g0, p1, g1, names = aliasing(case)
    opt = RMSprop([{"params": p0, "grad": g0}], momentum=0.5)  # (Adam refuses any entry after its first step)
    opt.step()
    before = frozen(opt)
    with pytest.raises(ValueError) as info:
        opt.add_param_group({"params": p1, "grad": g1})
    assert_shared_memory_refused(info, names)
    assert frozen(opt) == before


@pytest.mark.parametrize("target, names", [
    ((0, "params"), ("params[1]: its state buffer 'exp_avg'", "params[0]['params']")),
    ((0, "grad"), ("params[1]: its state buffer 'exp_avg'", "params[0]['grad']")),
    ((1, "params"), ("params[1]: its state buffer 'exp_avg'", "params[1]['params']")),  # its own parameter
    ((0, "exp_avg_sq"), ("params[1]: its state buffer 'exp_avg'", "params[0]: its state buffer 'exp_avg_sq'")),
])
@pytest.mark.parametrize("view", [False, True])
def test_a_state_buffer_put_by_hand_that_aliases_another_array_is_refused_at_step(target, names, view):
    opt = Adam(make_entries(((2, 3), (2, 3))))
    run(opt, 2)
    index, name = target
    aliased = opt.param_groups[index][name] if name in ("params", "grad") else opt.state[index][name]
    opt.state[1]["exp_avg"] = aliased[::-1, ::-1] if view else aliased
    before = frozen(opt)
    with pytest.raises(ValueError) as info:
        opt.step()
    assert_shared_memory_refused(info, names)
    assert frozen(opt) == before


@pytest.mark.parametrize("cls, kwargs", [(SGD, {"lr": 0.1, "momentum": 0.9}), (Adam, {"lr": 0.1})])
def test_interleaved_slices_share_no_memory_and_step_as_copies_do(cls, kwargs):
    base = np.linspace(-1.0, 1.0, 12)
    grads = np.linspace(0.5, -0.3, 12)
    sliced = [{"params": base[::2], "grad": grads[::2].copy()}, {"params": base[1::2], "grad": grads[1::2].copy()}]
    copies = [{"params": entry["params"].copy(), "grad": entry["grad"].copy()} for entry in sliced]
    opt, reference = cls(sliced, **kwargs), cls(copies, **kwargs)
    for _ in range(3):
        opt.step()
        reference.step()
    assert base[::2].tobytes() == copies[0]["params"].tobytes()
    assert base[1::2].tobytes() == copies[1]["params"].tobytes()
    assert_same(opt.state_dict(), reference.state_dict())


@pytest.mark.parametrize("cls, kwargs", [(SGD, {"lr": 0.1, "momentum": 0.9}), (Adam, {"lr": 0.1})])
def test_entries_sharing_one_gradient_array_step_as_with_copies(cls, kwargs):
    grad = np.linspace(0.5, -0.3, 6)
    shared = make_entries(((6,), (6,)))
    copies = copy.deepcopy(shared)
    for entry in shared:
        entry["grad"] = grad
    for entry in copies:
        entry["grad"] = grad.copy()
    opt, reference = cls(shared, **kwargs), cls(copies, **kwargs)
    for _ in range(3):
        opt.step()
        reference.step()
    assert grad.tolist() == np.linspace(0.5, -0.3, 6).tolist()  # read only
    assert_same(opt.state_dict(), reference.state_dict())
    for a, b in zip(shared, copies):
        assert a["params"].tobytes() == b["params"].tobytes()


def test_an_entry_whose_gradient_is_its_own_parameter_is_accepted():
    # (A gradient overlapping its own parameter, a reversed view, is compared with the
    # whole-array reference in test_blocked.py; here the very same array.)
    param = np.array([1.0, 2.0, -4.0])
    SGD([{"params": param, "grad": param}], lr=0.25).step()
    assert param.tolist() == [0.75, 1.5, -3.0]  # p - 0.25 * p


# ----- 4. the class a state dict records ----------------------------------------------------


def _make(name, entries=None):
    entries = make_entries(((3,), (2,))) if entries is None else entries
    return getattr(numpy_optim, name)(entries)


def _advance(opt, steps=2):
    """Steps of any optimizer; LBFGS's on the loss sum(p**2 - p) of its parameters."""
    if isinstance(opt, LBFGS):
        def closure():
            for entry in opt.param_groups:
                entry["grad"][...] = 2 * entry["params"] - 1
            return float(sum((entry["params"] ** 2 - entry["params"]).sum() for entry in opt.param_groups))

        for _ in range(steps):
            opt.step(closure)
    else:
        run(opt, steps)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_a_state_dict_records_its_class(name):
    opt = _make(name)
    _advance(opt)
    assert opt.state_dict()["class"] == type(opt).__name__ == name


@pytest.mark.parametrize("saved, loading", [("Adam", "AdamW"), ("AdamW", "Adam"), ("SGD", "LBFGS"),
                                            ("LBFGS", "SGD"), ("NAdam", "RAdam")])
def test_another_class_state_dict_is_refused_naming_both(saved, loading):
    source, target = _make(saved), _make(loading)
    _advance(source)
    _advance(target)
    sd, before = target.state_dict(), frozen(target)
    with pytest.raises(ValueError) as info:
        target.load_state_dict(source.state_dict())
    message = str(info.value)
    assert re.search(rf"\b{saved}\b", message) and re.search(rf"\b{loading}\b", message), message
    assert_same(target.state_dict(), sd)
    assert frozen(target) == before


# ----- 5. the step of a state dict ----------------------------------------------------------


@pytest.mark.parametrize("name", ["Adam", "SGD", "LBFGS"])
@pytest.mark.parametrize("step", [10**400, -(10**400)])
def test_a_huge_state_dict_step_is_refused_without_printing_it(name, step):
    opt = _make(name)
    _advance(opt)
    sd = opt.state_dict()
    bad = {**opt.state_dict(), "step": step}
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(bad)
    assert_names(info, "step")
    assert len(str(info.value)) < 300 and "0" * 30 not in str(info.value)
    assert_same(opt.state_dict(), sd)


@pytest.mark.parametrize("name", ["Adam", "SGD", "LBFGS"])
def test_a_state_dict_step_of_2_to_the_53_is_accepted(name):
    opt = _make(name)
    _advance(opt)
    opt.load_state_dict({**opt.state_dict(), "step": 2**53})
    assert opt.state["step"] == 2**53
    assert type(opt.state_dict()["step"]) is int and opt.state_dict()["step"] == 2**53


def test_a_step_at_the_largest_step_leaves_a_state_dict_that_loads_back():
    opt = Adam(make_entries())
    run(opt, 1)
    opt.load_state_dict({**opt.state_dict(), "step": 2**53})
    before = frozen(opt)
    try:
        run(opt, 1)
    except ValueError:
        assert frozen(opt) == before  # refused, nothing changed
        return
    opt.load_state_dict(opt.state_dict())


# ----- 6. defaults with a key deleted or added --------------------------------------------


@pytest.mark.parametrize("warm", [0, 2])  # 2: steps first, so the next one may reuse its plan
@pytest.mark.parametrize("cls, kwargs, key", [
    (Adam, {}, "eps"), (Adam, {"amsgrad": True}, "betas"), (SGD, {"momentum": 0.9}, "lr"),
    (SGD, {"momentum": 0.9}, "momentum"), (Adagrad, {}, "eps"), (Rprop, {}, "etas"), (Adafactor, {}, "d"),
    (ASGD, {}, "t0"), (NAdam, {}, "momentum_decay"),
])
def test_a_key_deleted_from_defaults_is_refused_at_step_until_restored(cls, kwargs, key, warm):
    entries = make_entries()
    entries[1]["lr"] = 0.003  # an entry with an override too
    opt, twin = cls(entries, **kwargs), cls(copy.deepcopy(entries), **kwargs)
    run(opt, warm)
    run(twin, warm)
    value = opt.defaults.pop(key)
    before = frozen(opt)
    with pytest.raises(ValueError) as info:
        opt.step()
    assert_names(info, repr(key), "defaults")
    with pytest.raises(ValueError) as info:
        opt.state_dict()  # (a state dict without the key would not load back)
    assert_names(info, repr(key))
    assert frozen(opt) == before
    opt.defaults[key] = value
    run(opt, 1, seed=7)
    run(twin, 1, seed=7)
    assert frozen(opt) == frozen(twin)


@pytest.mark.parametrize("warm", [0, 2])
@pytest.mark.parametrize("cls, key", [(Adam, "momentum"), (SGD, "betas"), (AdamW, "bogus"), (RMSprop, "initial_lr")])
def test_an_unknown_key_added_to_defaults_is_refused_at_step_until_removed(cls, key, warm):
    opt, twin = cls(make_entries()), cls(make_entries())
    run(opt, warm)
    run(twin, warm)
    opt.defaults[key] = 0.5
    before = frozen(opt)
    with pytest.raises(ValueError) as info:
        opt.step()
    assert_names(info, repr(key))
    assert frozen(opt) == before
    del opt.defaults[key]
    run(opt, 1, seed=7)
    run(twin, 1, seed=7)
    assert frozen(opt) == frozen(twin)


def test_lbfgs_refuses_a_step_with_a_key_deleted_from_defaults():
    opt = LBFGS(make_entries(), max_iter=3)
    _advance(opt, 1)
    del opt.defaults["history_size"]
    calls = []
    sd_before = [e["params"].copy() for e in opt.param_groups]
    with pytest.raises(ValueError) as info:
        opt.step(lambda: calls.append(1) or 1.0)
    assert_names(info, "'history_size'")
    assert calls == []
    assert all(np.array_equal(e["params"], p) for e, p in zip(opt.param_groups, sd_before))


# ----- 7. plain values in state dicts -------------------------------------------------------


def assert_plain(value, path="state_dict"):
    """Only Python float, int, bool, str, None, list, dict (str or int keys) and plain ndarrays."""
    if isinstance(value, dict):
        assert type(value) is dict, path
        for key, item in value.items():
            assert type(key) in (str, int), f"{path}: key {key!r}"
            assert_plain(item, f"{path}[{key!r}]")
    elif isinstance(value, list):
        assert type(value) is list, path
        for index, item in enumerate(value):
            assert_plain(item, f"{path}[{index}]")
    elif isinstance(value, np.ndarray):
        assert type(value) is np.ndarray, path
    else:
        assert type(value) in (float, int, bool, str, type(None)), f"{path}: {value!r} is a {type(value).__name__}"


def test_non_plain_hyperparameters_come_out_of_state_dict_as_python_values():
    entries = make_entries(((2, 3), (4,), (3,)))
    entries[1].update(lr=np.float32(0.1), betas=(np.float64(0.5), Fraction(3, 4)), amsgrad=np.bool_(False))
    opt = Adam(entries, lr=Fraction(1, 3), betas=(np.float64(0.5), np.float64(0.75)), amsgrad=np.bool_(True),
               eps=np.float16(1e-3))
    run(opt, 1)
    sd = opt.state_dict()
    assert_plain(sd)
    assert sd["defaults"]["lr"].hex() == (1 / 3).hex() and sd["defaults"]["betas"] == [0.5, 0.75]
    assert sd["defaults"]["amsgrad"] is True and sd["defaults"]["eps"] == float(np.float16(1e-3))
    assert sd["param_groups"][1] == {"lr": float(np.float32(0.1)), "betas": [0.5, 0.75], "amsgrad": False}
    assert sd["initial_lrs"] == [1 / 3, float(np.float32(0.1)), 1 / 3]
    # set later, into defaults and into an entry
    opt.defaults.update(lr=Fraction(1, 7), betas=(Fraction(1, 2), np.float32(0.5)), maximize=np.bool_(True))
    opt.param_groups[2].update(lr=np.float64(0.25), weight_decay=Fraction(1, 10), amsgrad=np.bool_(True))
    run(opt, 1)
    sd = opt.state_dict()
    assert_plain(sd)
    assert sd["defaults"]["lr"].hex() == (1 / 7).hex() and sd["defaults"]["betas"] == [0.5, 0.5]
    assert sd["defaults"]["maximize"] is True
    assert sd["param_groups"][2] == {"lr": 0.25, "weight_decay": 0.1, "amsgrad": True}
    assert type(sd["param_groups"][2]["weight_decay"]) is float
    twin = Adam(make_entries(((2, 3), (4,), (3,))))
    twin.load_state_dict(sd)
    assert_same(twin.state_dict(), sd)


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Rprop", "ASGD", "Adafactor", "LBFGS"])
def test_non_plain_lr_in_other_optimizers_comes_out_as_a_float(name):
    opt = getattr(numpy_optim, name)(make_entries(), lr=Fraction(1, 4))
    opt.defaults["lr"] = np.float32(0.125)
    _advance(opt, 1)
    sd = opt.state_dict()
    assert type(sd["defaults"]["lr"]) is float and sd["defaults"]["lr"] == 0.125
    assert all(type(lr) is float and lr == 0.25 for lr in sd["initial_lrs"])
    assert all(type(value) in (float, int, bool, str, list, type(None)) for value in sd["defaults"].values())


# ----- 8. _blocks.settings and NUMPY_OPTIM_THREADS ----------------------------------------


@pytest.fixture
def saved_settings():
    saved = {name: getattr(_blocks.settings, name) for name in vars(_blocks.settings)}
    yield saved
    for name, value in saved.items():
        object.__setattr__(_blocks.settings, name, value)  # (even if a refusal failed to hold)


@pytest.mark.parametrize("name, value, error", [
    ("threads", 0, ValueError), ("threads", -1, ValueError), ("threads", "2", TypeError),
    ("threads", True, TypeError), ("threads", 2.0, TypeError), ("threads", 10**400, ValueError),
    ("block_bytes", 0, ValueError), ("block_bytes", 4, ValueError), ("block_bytes", 1.5, TypeError),
    ("block_bytes", None, TypeError), ("parallel_min_bytes", -1, ValueError), ("batch_max_fraction", 0, ValueError),
    ("compiled_parallel_min_bytes", "1", TypeError), ("enabled", 1, TypeError), ("enabled", "True", TypeError),
    ("enabled", None, TypeError),
])
def test_a_bad_setting_is_refused_and_left_unchanged(saved_settings, name, value, error):
    with pytest.raises(error) as info:
        setattr(_blocks.settings, name, value)
    assert type(info.value) is error
    assert_names(info, name)
    assert len(str(info.value)) < 300
    assert {n: getattr(_blocks.settings, n) for n in saved_settings} == saved_settings


def test_an_unknown_setting_is_refused(saved_settings):
    with pytest.raises(TypeError) as info:
        _blocks.settings.thread = 2  # a typo of threads
    assert_names(info, "'thread'")
    assert not hasattr(_blocks.settings, "thread")
    assert vars(_blocks.settings) == saved_settings


def test_valid_settings_are_stored_as_python_values(saved_settings):
    _blocks.settings.threads = np.int64(2)
    _blocks.settings.enabled = np.bool_(False)
    assert type(_blocks.settings.threads) is int and _blocks.settings.threads == 2
    assert _blocks.settings.enabled is False


@pytest.mark.parametrize("changes", [{"threads": 2, "block_bytes": -1}, {"enabled": False, "threads": "2"},
                                     {"block_bytes": 64, "bogus": 1}])
def test_configured_refuses_a_bad_change_and_changes_nothing(saved_settings, changes):
    with pytest.raises((TypeError, ValueError)) as info:
        with _blocks.configured(**changes):
            pytest.fail("configured() entered")
    bad = [name for name, value in changes.items() if name == "bogus" or value in (-1, "2")]
    assert_names(info, *bad)
    assert vars(_blocks.settings) == saved_settings


@pytest.mark.parametrize("value", ["abc", "2.5", "1e3", "two"])
def test_a_bad_threads_variable_fails_the_import_naming_it(value):
    result = subprocess.run([sys.executable, "-c", "import numpy_optim"], capture_output=True, text=True,
                            env={**os.environ, "NUMPY_OPTIM_THREADS": value})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError:") and "NUMPY_OPTIM_THREADS" in last and repr(value) in last, last


def test_a_good_threads_variable_sets_the_threads():
    result = subprocess.run([sys.executable, "-c", "import numpy_optim._blocks as b; print(b.settings.threads)"],
                            capture_output=True, text=True, env={**os.environ, "NUMPY_OPTIM_THREADS": " 3 "})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_threads_variable_below_1_fails_the_import_naming_it(value):
    result = subprocess.run([sys.executable, "-c", "import numpy_optim"], capture_output=True, text=True,
                            env={**os.environ, "NUMPY_OPTIM_THREADS": value})
    assert result.returncode != 0 and "NUMPY_OPTIM_THREADS" in result.stderr


# ----- 9. eps that rounds to 0 in float16 ---------------------------------------------------


def float_entries(dtype):
    return [{"params": np.linspace(-1, 1, 6).astype(dtype), "grad": np.full(6, 0.5, dtype)}]


@pytest.mark.parametrize("cls", [Adam, AdamW, Adagrad, RMSprop, NAdam, RAdam, Adamax])
def test_a_default_eps_that_rounds_to_zero_in_float16_warns(cls):
    eps = cls([]).defaults["eps"]
    assert np.float16(eps) == 0  # the premise (1e-8, 1e-10: below float16's smallest subnormal, 6e-8)
    with pytest.warns(RuntimeWarning, match=r"eps=.*float16") as record:
        opt = cls(float_entries(np.float16))
    assert "params[0]" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        opt.step()  # still steps, as torch does


@pytest.mark.parametrize("cls, kwargs, dtype", [
    (Adam, {}, np.float32), (Adam, {}, np.float64), (AdamW, {}, np.float32), (Adagrad, {}, np.float32),
    (RMSprop, {}, np.float64), (Adam, {"eps": 1e-4}, np.float16), (AdamW, {"eps": 1e-4}, np.float16),
    (Adagrad, {"eps": 1e-4}, np.float16), (RMSprop, {"eps": 1e-4}, np.float16), (Adam, {"eps": 0.0}, np.float16),
    (Adadelta, {}, np.float16),  # 1e-6 is a float16 subnormal, not 0
])
def test_an_eps_that_does_not_round_to_zero_does_not_warn(cls, kwargs, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt = cls(float_entries(dtype), **kwargs)
        opt.step()
        opt.step()


def test_a_float16_entry_added_to_a_float32_adam_warns():
    opt = Adam(float_entries(np.float32))
    with pytest.warns(RuntimeWarning, match=r"params\[1\].*eps=1e-08.*float16"):
        opt.add_param_group(float_entries(np.float16)[0])
    assert len(opt.param_groups) == 2


# ----- 10. add_param_group -------------------------------------------------------------------


def bad_new_entries():
    good = make_entries(((3,),), seed=9)[0]
    read_only = np.zeros(3)
    read_only.flags.writeable = False
    return [
        ("no grad", {"params": good["params"]}, ValueError, ["params[2]", "'grad'"]),
        ("no params", {"grad": good["grad"]}, ValueError, ["params[2]", "'params'"]),
        ("int params", {"params": np.zeros(3, np.int64), "grad": np.zeros(3, np.int64)}, TypeError,
         ["params[2]['params']", "int64"]),
        ("grad dtype", {"params": good["params"], "grad": np.zeros(3, np.float32)}, TypeError,
         ["params[2]['grad']", "float32"]),
        ("grad shape", {"params": good["params"], "grad": np.zeros(4)}, ValueError, ["params[2]['grad']", "(4,)"]),
        ("read-only", {"params": read_only, "grad": good["grad"]}, ValueError, ["read-only"]),
        ("unknown hyperparameter", {**good, "bogus": 0.1}, ValueError, ["params[2]", "'bogus'"]),
        ("bad lr", {**good, "lr": -1.0}, ValueError, ["params[2]", "lr", "-1.0"]),
        ("nan lr", {**good, "lr": math.nan}, ValueError, ["params[2]", "lr", "nan"]),
        ("huge lr", {**good, "lr": 10**400}, ValueError, ["params[2]", "lr", "too large"]),
        ("str lr", {**good, "lr": "0.1"}, TypeError, ["params[2]", "lr", "'0.1'"]),
        ("bad scheduler key", {**good, "initial_lr": "x"}, TypeError, ["params[2]", "initial_lr"]),
        ("not a dict", [good["params"], good["grad"]], TypeError, ["params[2]", "list"]),
        ("a tuple", (good["params"], good["grad"]), TypeError, ["params[2]", "tuple"]),
        ("None", None, TypeError, ["params[2]", "NoneType"]),
    ]


# (RMSprop, not Adam: Adam refuses any entry after its first step, see the Adam test below)
@pytest.mark.parametrize("cls, kwargs", [(SGD, {"momentum": 0.9}), (RMSprop, {"momentum": 0.5})])
@pytest.mark.parametrize("case, entry, error, fragments", bad_new_entries(), ids=[c[0] for c in bad_new_entries()])
def test_add_param_group_refuses_a_bad_entry_and_changes_nothing(cls, kwargs, case, entry, error, fragments):
    opt, twin = cls(make_entries(), **kwargs), cls(make_entries(), **kwargs)
    run(opt, 2)
    run(twin, 2)
    before = frozen(opt)
    with pytest.raises(error) as info:
        opt.add_param_group(entry)
    assert type(info.value) is error
    assert_names(info, *fragments)
    assert frozen(opt) == before
    run(opt, 1, seed=5)
    run(twin, 1, seed=5)
    assert frozen(opt) == frozen(twin)


@pytest.mark.parametrize("cls, kwargs", [(SGD, {"momentum": 0.9}), (RMSprop, {"momentum": 0.5})])
def test_add_param_group_refuses_an_entry_already_there(cls, kwargs):
    opt = cls(make_entries(), **kwargs)
    run(opt, 1)
    before = frozen(opt)
    with pytest.raises(ValueError) as info:
        opt.add_param_group(opt.param_groups[0])
    assert_names(info, "params[2]['params']", "params[0]['params']", "same array")
    assert frozen(opt) == before


@pytest.mark.parametrize("override", [{}, {"lr": 0.3}, {"lr": 0.3, "weight_decay": 0.01}])
@pytest.mark.parametrize("cls, kwargs", [(SGD, {"lr": 0.05, "momentum": 0.9}), (Adam, {"lr": 0.01})])
def test_an_added_entry_steps_as_one_given_to_the_constructor(cls, kwargs, override):
    opt = cls(make_entries(), **kwargs)
    new = {**make_entries(((2, 2),), seed=3)[0], **override}
    opt.add_param_group(new)
    assert opt.param_groups[-1] is new
    assert opt.initial_lrs[-1] == override.get("lr", kwargs["lr"])
    twin = cls([*make_entries(), {**make_entries(((2, 2),), seed=3)[0], **override}], **kwargs)
    assert opt.initial_lrs == twin.initial_lrs
    run(opt, 4)
    run(twin, 4)
    assert frozen(opt) == frozen(twin)
    assert_same(opt.state_dict(), twin.state_dict())


def test_an_sgd_entry_added_after_steps_starts_its_momentum_afresh():
    opt = SGD(make_entries(), lr=0.05, momentum=0.9)
    run(opt, 3)
    new = make_entries(((2, 2),), seed=3)[0]
    alone = SGD([copy.deepcopy(new)], lr=0.05, momentum=0.9)  # SGD's update does not depend on the step number
    opt.add_param_group(new)
    rng = np.random.default_rng(11)
    for _ in range(3):
        give_gradients(opt, rng)
        alone.param_groups[0]["grad"][...] = new["grad"]
        opt.step()
        alone.step()
    assert new["params"].tobytes() == alone.param_groups[0]["params"].tobytes()
    assert opt.state[2]["momentum_buffer"].tobytes() == alone.state[0]["momentum_buffer"].tobytes()


def test_an_adam_entry_added_after_steps_is_refused_rather_than_given_another_steps_bias_corrections():
    """torch counts steps per parameter: a group added after k steps starts at step 1.
    numpy_optim counts them per optimizer, so the entry would take the bias corrections of
    step k + 1 (hand-computed, torch 2.13: [2.9, -1.1] after one step, numpy_optim would
    give [2.936..., -1.063...]); it is refused, with nothing changed."""
    opt = Adam(make_entries(), lr=0.1)
    run(opt, 2)
    before = frozen(opt)
    with pytest.raises(ValueError, match=r"counts its steps per optimizer.*step 3.*starts at step 1"):
        opt.add_param_group({"params": np.array([3.0, -1.0]), "grad": np.array([0.125, 0.75])})
    assert frozen(opt) == before and len(opt.param_groups) == len(make_entries())
    # Before the first step it is the step torch takes: -lr * g / (|g| + eps).
    fresh = Adam(make_entries(), lr=0.1)
    param, grad = np.array([3.0, -1.0]), np.array([0.125, 0.75])
    fresh.add_param_group({"params": param, "grad": grad})
    fresh.step()
    np.testing.assert_allclose(param, [3.0, -1.0] - 0.1 * grad / (np.abs(grad) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("cls, kwargs", [(SGD, {"momentum": 0.9}), (RMSprop, {"momentum": 0.5})])
def test_a_state_dict_after_add_param_group_loads_only_where_the_same_entry_was_added(cls, kwargs):
    opt = cls(make_entries(), **kwargs)
    run(opt, 2)
    opt.add_param_group({**make_entries(((2, 2),), seed=3)[0], "lr": 0.2})
    run(opt, 2)
    sd = opt.state_dict()
    assert len(sd["param_groups"]) == len(sd["state"]) == len(sd["initial_lrs"]) == 3
    assert sd["param_groups"][2] == {"lr": 0.2} and sd["initial_lrs"][2] == 0.2
    same = cls(make_entries(), **kwargs)
    same.add_param_group({**make_entries(((2, 2),), seed=3)[0], "lr": 0.2})
    same.load_state_dict(sd)
    assert_same(same.state_dict(), sd)
    for a, b in zip(opt.param_groups, same.param_groups):
        b["params"][...] = a["params"]
    run(opt, 1, seed=8)
    run(same, 1, seed=8)
    assert frozen(opt) == frozen(same)
    other = cls(make_entries(), **kwargs)
    before = frozen(other)
    with pytest.raises(ValueError) as info:
        other.load_state_dict(sd)
    assert_names(info, "one item per entry (2)")
    assert frozen(other) == before


def test_an_entry_appended_to_param_groups_directly_is_adopted():
    param, grad = np.array([1.0, 2.0]), np.array([0.5, 1.0])
    opt = SGD(make_entries(), lr=0.05)
    opt.step()
    opt.param_groups.append({"params": param, "grad": grad, "lr": 0.5})
    opt.step()
    assert param.tolist() == [0.75, 1.5]  # p - 0.5 * g
    assert opt.initial_lrs == [0.05, 0.05, 0.5]
    sd = opt.state_dict()
    assert sd["param_groups"][2] == {"lr": 0.5} and len(sd["state"]) == 3
    opt.load_state_dict(sd)
    assert_same(opt.state_dict(), sd)


def test_an_entry_appended_to_param_groups_directly_adopted_by_state_dict():
    opt = RMSprop(make_entries(), lr=0.001)
    run(opt, 1)
    opt.param_groups.append(make_entries(((2, 2),), seed=3)[0])
    sd = opt.state_dict()
    assert opt.initial_lrs == [0.001] * 3 and sd["initial_lrs"] == [0.001] * 3
    opt.load_state_dict(sd)


@pytest.mark.parametrize("bad", [
    {"params": np.zeros(3, np.int64), "grad": np.zeros(3, np.int64)},
    {"params": np.zeros(3), "grad": np.zeros(3), "lr": -1.0},
    {"params": np.zeros(3)},
])
def test_a_bad_entry_appended_to_param_groups_directly_is_refused_at_step(bad):
    opt, twin = SGD(make_entries(), momentum=0.9), SGD(make_entries(), momentum=0.9)
    run(opt, 2)
    run(twin, 2)
    opt.param_groups.append(bad)
    before = frozen(opt)
    with pytest.raises((TypeError, ValueError)) as info:
        opt.step()
    assert_names(info, "params[2]")
    assert frozen(opt) == before and opt.initial_lrs == twin.initial_lrs
    opt.param_groups.pop()
    run(opt, 1, seed=4)
    run(twin, 1, seed=4)
    assert frozen(opt) == frozen(twin)


# ----- 11. huge integers as hyperparameters -------------------------------------------------


@pytest.mark.parametrize("name, kwargs, named", [
    ("SGD", {"momentum": 10**400}, "momentum"), ("SGD", {"momentum": 0.9, "dampening": -(10**400)}, "dampening"),
    ("SGD", {"weight_decay": 10**400}, "weight_decay"),
    ("Adam", {"eps": 10**400}, "eps"), ("Adam", {"weight_decay": 10**400}, "weight_decay"),
    ("Adam", {"betas": (0.9, 10**400)}, "beta parameter at index 1"),
    ("AdamW", {"betas": (10**400, 0.9)}, "beta parameter at index 0"), ("AdamW", {"eps": 10**400}, "eps"),
    ("Adagrad", {"lr_decay": 10**400}, "lr_decay"), ("Adagrad", {"initial_accumulator_value": 10**400},
                                                     "initial_accumulator_value"),
    ("Adagrad", {"eps": 10**400}, "eps"), ("RMSprop", {"momentum": 10**400}, "momentum"),
    ("RMSprop", {"alpha": 10**400}, "alpha"), ("RMSprop", {"eps": 10**400}, "eps"),
    ("Adadelta", {"rho": 10**400}, "rho"), ("Adadelta", {"eps": 10**400}, "eps"),
    ("Adamax", {"betas": (0.9, 10**400)}, "beta parameter at index 1"), ("Adamax", {"eps": 10**400}, "eps"),
    ("NAdam", {"momentum_decay": 10**400}, "momentum_decay"), ("NAdam", {"weight_decay": 10**400}, "weight_decay"),
    ("RAdam", {"eps": 10**400}, "eps"), ("ASGD", {"t0": 10**400}, "t0"), ("ASGD", {"lambd": -(10**400)}, "lambd"),
    ("Rprop", {"etas": (0.5, 10**400)}, "etas[1]"), ("Rprop", {"step_sizes": (1e-6, 10**400)}, "step_sizes[1]"),
    ("Adafactor", {"beta2_decay": -(10**400)}, "beta2_decay"), ("Adafactor", {"d": 10**400}, "d"),
    ("Adafactor", {"eps": (None, 10**400)}, "eps[1]"), ("Adafactor", {"weight_decay": 10**400}, "weight_decay"),
    ("LBFGS", {"tolerance_grad": 10**400}, "tolerance_grad"),
    ("LBFGS", {"tolerance_change": 10**400}, "tolerance_change"),
])
def test_a_huge_integer_hyperparameter_is_a_value_error_naming_it(name, kwargs, named):
    entries = make_entries()
    saved = _bits(entries)
    with pytest.raises(ValueError) as info:
        getattr(numpy_optim, name)(entries, **kwargs)
    assert type(info.value) is ValueError
    assert_names(info, named, "too large for a float")
    assert "0" * 30 not in str(info.value)
    assert _bits(entries) == saved


@pytest.mark.parametrize("where", ["entry", "defaults"])
@pytest.mark.parametrize("cls, key", [(Adam, "eps"), (SGD, "momentum"), (AdamW, "weight_decay"), (RMSprop, "alpha")])
def test_a_huge_integer_set_later_is_refused_at_step(cls, key, where):
    opt = cls(make_entries())
    run(opt, 2)
    (opt.param_groups[1] if where == "entry" else opt.defaults)[key] = 10**400
    before = frozen(opt)
    with pytest.raises(ValueError) as info:
        opt.step()
    assert_names(info, key, "too large for a float", "params[1]" if where == "entry" else "defaults")
    assert frozen(opt) == before
