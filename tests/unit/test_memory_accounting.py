"""Memory accounting (issue 13, point 4): the specification's tables, measured state bytes, validation.

Oracles: the specification's numbers ("Why it matters": 7B float32 -> 28 GB momentum, 56 GB
Adam state; 70B float32 -> 280 / 560 / 280 / 1120 GB, GB = 1e9 bytes), hand-computed byte
counts, and the bytes real numpy_optim optimizers hold after a step.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

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
    Optimizer,
    RAdam,
    RMSprop,
    Rprop,
)
from numpy_optim.memory import (
    OPTIMIZERS,
    ROW_HEADER,
    MemoryEstimate,
    estimate_training_memory,
    format_bytes,
    main,
    memory_table,
    state_bytes,
)

GB = 10**9
SHAPES = [(10, 5), (5,), (3, 3, 3), ()]
N = sum(int(np.prod(s)) for s in SHAPES)  # 83 elements in 4 arrays

# (class, constructor kwargs, estimate name): every elementwise numpy_optim optimizer and option
# that changes its buffers.
CASES = [
    (SGD, {"lr": 0.1}, "sgd"),
    (SGD, {"lr": 0.1, "momentum": 0.9}, "sgd+momentum"),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}, "sgd+momentum+nesterov"),
    (Adam, {}, "adam"),
    (AdamW, {}, "adamw"),
    (Adam, {"amsgrad": True}, "adam+amsgrad"),
    (AdamW, {"amsgrad": True}, "adamw+amsgrad"),
    (Adagrad, {}, "adagrad"),
    (RMSprop, {}, "rmsprop"),
    (RMSprop, {"momentum": 0.9}, "rmsprop+momentum"),
    (RMSprop, {"centered": True}, "rmsprop+centered"),
    (RMSprop, {"centered": True, "momentum": 0.9}, "rmsprop+centered+momentum"),
    (Adadelta, {}, "adadelta"),
    (Adamax, {}, "adamax"),
    (NAdam, {}, "nadam"),
    (RAdam, {}, "radam"),
    (ASGD, {}, "asgd"),
    (Rprop, {}, "rprop"),
]
CASE_PARAMS = [pytest.param(cls, kwargs, name, id=name) for cls, kwargs, name in CASES]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def make_entries(dtype, shapes=SHAPES):
    rng = np.random.default_rng(13)
    return [
        {"params": rng.standard_normal(s).astype(dtype), "grad": rng.standard_normal(s).astype(dtype)}
        for s in shapes
    ]


def stepped(cls, kwargs, dtype, shapes=SHAPES):
    """The optimizer after one step (low-precision steps warn that eps rounds to 0: not tested here)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        opt = cls(make_entries(dtype, shapes), **kwargs)
        opt.step()
    return opt


# --------------------------------------------------------------------------------------
# The specification's tables, exactly
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected_gb",
    [("sgd", 0), ("sgd+momentum", 28), ("adam", 56), ("adamw", 56)],
)
def test_spec_overhead_table_7b_float32(name, expected_gb):
    e = estimate_training_memory(7 * GB, name)
    assert e.optimizer_state == expected_gb * GB, f"{name}: {e.optimizer_state} bytes"
    assert e.master_weights == 0


def test_spec_training_table_70b_float32_adam():
    e = estimate_training_memory(70 * GB, "adam")
    assert e.params == 280 * GB  # 70B x 4 bytes
    assert e.optimizer_state == 560 * GB  # 70B x 4 bytes x 2
    assert e.grads == 280 * GB
    assert e.total == 1120 * GB
    assert e.inference == 280 * GB
    assert e.total == 4 * e.inference  # "Training requires 4x the memory of inference"


def test_memory_table_overhead_rows_print_the_spec_numbers():
    lines = memory_table("overhead")
    assert lines[0] == "| Optimizer | Extra state per parameter | Total state for 7B model (float32) |"
    assert lines[2:] == [
        "| SGD (no momentum) | 0 | 0 GB |",
        "| SGD + Momentum | 1 buffer (momentum_buffer) | 28 GB |",
        "| Adam / AdamW | 2 buffers (exp_avg, exp_avg_sq) | 56 GB |",
    ]


def test_memory_table_training_rows_print_the_spec_numbers():
    lines = memory_table("training")
    assert lines[2:] == [
        "| Model weights | 280 GB |",
        "| Optimizer state (exp_avg + exp_avg_sq) | 560 GB |",
        "| Gradients | 280 GB |",
        "| **Total training** | **1120 GB** |",
        "| **Total inference** | **280 GB** (weights only) |",
    ]


def test_memory_table_mixed_precision_hand_computed():
    # 70B: bfloat16 weights and grads 140 GB each; state 2 x 70B x 2 (bfloat16) or x 4 (float32);
    # master weights 70B x 4.
    rows = memory_table("mixed")[2:]
    assert rows == [
        "| float32 | 280 GB | 280 GB | 560 GB | 0 GB | 1120 GB |",
        "| bfloat16, bfloat16 state | 140 GB | 140 GB | 280 GB | 0 GB | 560 GB |",
        "| bfloat16, float32 state | 140 GB | 140 GB | 560 GB | 0 GB | 840 GB |",
        "| bfloat16, float32 state + master weights | 140 GB | 140 GB | 560 GB | 280 GB | 1120 GB |",
    ]


def test_memory_table_other_sizes_and_bad_names():
    assert memory_table("overhead", 10**6)[-1] == "| Adam / AdamW | 2 buffers (exp_avg, exp_avg_sq) | 0.008 GB |"
    assert "1M model" in memory_table("overhead", 10**6)[0]
    with pytest.raises(ValueError, match="table must be one of .* got 'memory'"):
        memory_table("memory")
    with pytest.raises(ValueError, match="n_params must be an integer >= 0, got -5"):
        memory_table("training", -5)


def test_cli_prints_every_table_and_one_estimate(capsys):
    main([])
    out = capsys.readouterr().out
    for line in [*memory_table("overhead"), *memory_table("training"), *memory_table("mixed")]:
        assert line in out
    main(["--params", "7e9", "--optimizer", "sgd+momentum"])
    assert capsys.readouterr().out.strip() == (
        "sgd+momentum, 7B float32 parameters: params 28 GB + grads 28 GB + state 28 GB (float32) = 84 GB"
    )
    main(["--params", "70000000000", "--param-dtype", "bfloat16", "--master-weights", "--table", "mixed"])
    assert "+ master 280 GB (float32) = 1120 GB" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--params", "7e9", "--param-dtype", "int8"])
    assert exit_info.value.code == 2
    assert "param_dtype must be float16, bfloat16, float32 or float64, got int8" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Hand-computed estimates
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        pytest.param("adam", dict(param_dtype="float32"), 2 * 83 * 4, id="adam-float32"),
        pytest.param("rmsprop+centered+momentum", dict(param_dtype="float64"), 3 * 83 * 8, id="rmsprop-all-float64"),
        # mu_product: a float32 0-d buffer per array, whatever the dtype
        pytest.param("nadam", dict(param_dtype="float64", n_tensors=4), 2 * 83 * 8 + 4 * 4, id="nadam-float64"),
        # eta and mu: two float32 0-d buffers per array
        pytest.param("asgd", dict(param_dtype="float32", n_tensors=4), 83 * 4 + 2 * 4 * 4, id="asgd-float32"),
        pytest.param("adam", dict(param_dtype="float16"), 2 * 83 * 2, id="adam-float16"),
        pytest.param("adam", dict(param_dtype="float16", state_dtype="float32"), 2 * 83 * 4, id="adam-f16-f32state"),
        pytest.param("sgd+momentum", dict(param_dtype="bfloat16", master_weights=True), 83 * 4, id="sgd-bf16-master"),
    ],
)
def test_estimate_state_hand_computed(name, kwargs, expected):
    assert estimate_training_memory(83, name, **kwargs).optimizer_state == expected


def test_estimate_components_hand_computed():
    e = estimate_training_memory(1000, "adamw", param_dtype="float16", grad_dtype="float32", master_weights=True)
    assert (e.params, e.grads, e.optimizer_state, e.master_weights) == (2000, 4000, 8000, 4000)
    assert e.total == 18000 and e.state_dtype == "float32"  # float32 state by default with master weights
    assert e.buffers == ("exp_avg", "exp_avg_sq")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.params = 0  # type: ignore[misc]
    assert str(e) == ("adamw, 1000 float16 parameters: params 2 kB + grads 4 kB + state 8 kB (float32) "
                      "+ master 4 kB (float32) = 18 kB")
    assert e.row() == "| adamw | 1000 | float16 | float32 | float32 | yes | 2 kB | 4 kB | 8 kB | 4 kB | 18 kB |"
    assert ROW_HEADER[0].count("|") == e.row().count("|")


def test_estimate_adafactor_factored_state_hand_computed():
    # (10, 5): row_var 10 + col_var 5; (5,): variance 5; (3, 3, 3): row_var 9 + col_var 3 * 3; (): 1;
    # (2, 3, 4, 5): row_var 24 + col_var 6 * 5
    shapes = [(10, 5), (5,), (3, 3, 3), (), (2, 3, 4, 5)]
    e = estimate_training_memory(None, "adafactor", shapes=shapes, param_dtype="float32")
    assert e.n_params == 83 + 120
    assert e.optimizer_state == (15 + 5 + 18 + 1 + 54) * 4


def test_estimate_lbfgs_full_history_hand_computed():
    # (2h + 2) N vector elements and 2h + 1 scalars, h = 3, N = 5, float64
    e = estimate_training_memory(5, "lbfgs", param_dtype="float64", history_size=3)
    assert e.optimizer_state == (8 * 5 + 7) * 8
    assert estimate_training_memory(5, "lbfgs").optimizer_state == (202 * 5 + 201) * 4  # LBFGS's default h = 100


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(param_dtype=np.float16),
        dict(param_dtype=np.dtype("float16")),
        dict(param_dtype="f2"),
        dict(param_dtype="half"),
    ],
    ids=["type", "dtype", "code", "alias"],
)
def test_dtype_spellings_accepted(kwargs):
    assert estimate_training_memory(10, "adam", **kwargs).param_dtype == "float16"


def test_bfloat16_dtype_object_and_other_spellings():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 is the optional ml_dtypes extra")
    assert estimate_training_memory(10, param_dtype=ml_dtypes.bfloat16).params == 20
    assert estimate_training_memory(10, param_dtype=np.dtype(ml_dtypes.bfloat16)).param_dtype == "bfloat16"
    assert estimate_training_memory(10, param_dtype=float).param_dtype == "float64"
    assert estimate_training_memory(7e9).n_params == 7 * GB
    assert estimate_training_memory(np.int64(7)).n_params == 7
    spellings = ["rmsprop+momentum+centered", "RMSprop + Centered + Momentum", "rmsprop+centered+momentum"]
    assert {estimate_training_memory(1, s).optimizer for s in spellings} == {"rmsprop+centered+momentum"}


# --------------------------------------------------------------------------------------
# Against the bytes real optimizers hold
# --------------------------------------------------------------------------------------


def test_every_exported_optimizer_is_covered():
    exported = {getattr(numpy_optim, name) for name in numpy_optim.__all__}
    classes = {c for c in exported if isinstance(c, type) and issubclass(c, Optimizer) and c is not Optimizer}
    covered = {cls for cls, _, _ in CASES} | {Adafactor, LBFGS}
    assert classes <= covered, f"no memory case for {sorted(c.__name__ for c in classes - covered)}"
    assert {name for _, _, name in CASES} == set(OPTIMIZERS)


@pytest.mark.parametrize("cls, kwargs, name", CASE_PARAMS)
def test_table_names_are_the_classes_buffer_names(cls, kwargs, name):
    opt = cls(make_entries(np.float32), **kwargs)
    buffers, scalars = OPTIMIZERS[name]
    assert set(opt._buffer_names(opt.defaults)) == set(buffers) | set(scalars)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs, name", CASE_PARAMS)
def test_estimate_equals_measured_state_bytes(cls, kwargs, name, dtype):
    opt = stepped(cls, kwargs, dtype)
    estimate = estimate_training_memory(N, name, param_dtype=dtype, n_tensors=len(SHAPES))
    assert state_bytes(opt) == estimate.optimizer_state, (
        f"{cls.__name__}({kwargs}) {np.dtype(dtype).name} on shapes {SHAPES}: measured {state_bytes(opt)}, "
        f"estimated {estimate.optimizer_state}"
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("cls, kwargs, name", CASE_PARAMS)
def test_estimate_equals_measured_state_bytes_low_precision(cls, kwargs, name, dtype):
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes", reason="bfloat16 is the optional ml_dtypes extra").bfloat16
    opt = stepped(cls, kwargs, dtype)
    estimate = estimate_training_memory(N, name, param_dtype=dtype, n_tensors=len(SHAPES))
    assert state_bytes(opt) == estimate.optimizer_state, f"{cls.__name__}({kwargs}) {np.dtype(dtype).name}"


LOW_PRECISION_SETUPS = [
    pytest.param({"state_dtype": np.float32}, id="state_float32"),
    pytest.param({"state_dtype": np.float64}, id="state_float64"),
    pytest.param({"master_weights": True}, id="master"),
    pytest.param({"master_weights": True, "state_dtype": np.float32}, id="master-state_float32"),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("options", LOW_PRECISION_SETUPS)
@pytest.mark.parametrize("cls, kwargs, name", CASE_PARAMS)
def test_estimate_equals_measured_with_state_dtype_and_master_weights(cls, kwargs, name, options, dtype):
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes", reason="bfloat16 is the optional ml_dtypes extra").bfloat16
    opt = stepped(cls, {**kwargs, **options}, dtype)
    e = estimate_training_memory(N, name, param_dtype=dtype, n_tensors=len(SHAPES), **options)
    assert state_bytes(opt) == e.optimizer_state + e.master_weights, (
        f"{cls.__name__}({kwargs}, {options}) {np.dtype(dtype).name}: measured {state_bytes(opt)}, "
        f"estimated state {e.optimizer_state} + master {e.master_weights}; state keys "
        f"{ {k: sorted(v) for k, v in opt.state.items() if k != 'step'} }"
    )


@pytest.mark.parametrize("master", [False, True], ids=["", "master"])
@pytest.mark.parametrize("state_dtype", [None, "float32", "float64"], ids=lambda v: f"state_{v}")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_estimate_refuses_exactly_the_combinations_the_optimizers_refuse(dtype, state_dtype, master):
    options = {"state_dtype": state_dtype, "master_weights": master}
    param_dtype = pytest.importorskip("ml_dtypes").bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    try:
        stepped(Adam, options, param_dtype)
    except ValueError as error:
        with pytest.raises(ValueError):
            estimate_training_memory(N, "adam", param_dtype=dtype, **options)
        assert str(error), "the optimizer's refusal says why"
        return
    e = estimate_training_memory(N, "adam", param_dtype=dtype, n_tensors=4, **options)  # accepted, as by Adam
    assert e.state_dtype == (state_dtype or ("float32" if master else dtype))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize(
    "cls, kwargs, name",
    [
        pytest.param(SGD, {"lr": 0.1, "momentum": 0.9}, "sgd+momentum", id="sgd+momentum"),
        pytest.param(Adam, {"amsgrad": True}, "adam+amsgrad", id="adam+amsgrad"),
        pytest.param(AdamW, {}, "adamw", id="adamw"),
        pytest.param(Adagrad, {}, "adagrad", id="adagrad"),
    ],
)
def test_fused_keeps_the_same_state_bytes(cls, kwargs, name, dtype):
    if cls is SGD and dtype == "float16":  # refused: torch 2.13's fused SGD defect (test_fused_torch.py)
        with pytest.raises(ValueError, match="never updates the vector body"):
            stepped(cls, {**kwargs, "fused": True}, np.dtype(dtype))
        return
    opt = stepped(cls, {**kwargs, "fused": True}, np.dtype(dtype))
    assert state_bytes(opt) == estimate_training_memory(N, name, param_dtype=dtype).optimizer_state


@pytest.mark.parametrize("dtype", DTYPES)
def test_adafactor_estimate_equals_measured(dtype):
    shapes = [(10, 5), (5,), (3, 3, 3), (), (2, 3, 4, 5)]
    opt = stepped(Adafactor, {}, dtype, shapes)
    estimate = estimate_training_memory(None, "adafactor", shapes=shapes, param_dtype=dtype)
    assert state_bytes(opt) == estimate.optimizer_state


def _rosenbrock_lbfgs(dtype, line_search_fn):
    entries = make_entries(dtype, [(2,), (3,)])

    def closure():
        v = np.concatenate([e["params"] for e in entries]).astype(np.float64)
        grad = np.zeros_like(v)
        grad[:-1] += -400 * v[:-1] * (v[1:] - v[:-1] ** 2) - 2 * (1 - v[:-1])
        grad[1:] += 200 * (v[1:] - v[:-1] ** 2)
        entries[0]["grad"][...] = grad[:2]
        entries[1]["grad"][...] = grad[2:]
        return float(np.sum(100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2))

    opt = LBFGS(entries, lr=1.0 if line_search_fn else 1e-3, history_size=3, max_iter=20, line_search_fn=line_search_fn)
    opt.step(closure)
    assert len(opt.state[0]["old_dirs"]) == 3, "the history must be full for the full-history estimate"
    return opt


@pytest.mark.parametrize("dtype", DTYPES)
def test_lbfgs_estimate_equals_measured_at_full_history(dtype):
    estimate = estimate_training_memory(5, "lbfgs", param_dtype=dtype, history_size=3).optimizer_state
    assert state_bytes(_rosenbrock_lbfgs(dtype, None)) == estimate  # t: a Python float
    # after a line search t may be a NumPy scalar too (not in the estimate)
    assert state_bytes(_rosenbrock_lbfgs(dtype, "strong_wolfe")) in (estimate, estimate + np.dtype(dtype).itemsize)


# --------------------------------------------------------------------------------------
# state_bytes
# --------------------------------------------------------------------------------------


def test_state_bytes_hand_computed_and_step_counter_not_counted():
    opt = SGD(make_entries(np.float32), lr=0.1)
    opt.step()
    assert state_bytes(opt) == 0 and opt.state["step"] == 1  # the int step holds no array
    opt = Adam([{"params": np.zeros((10, 5), np.float32), "grad": np.ones((10, 5), np.float32)}])
    assert state_bytes(opt) == 0  # no buffer before the first step
    opt.step()
    assert state_bytes(opt) == 2 * 50 * 4
    opt = NAdam([{"params": np.zeros(3), "grad": np.ones(3)}])
    opt.step()
    assert state_bytes(opt) == 2 * 3 * 8 + 4  # mu_product: a float32 0-d array


def test_state_bytes_counts_shared_objects_once_and_walks_lists():
    class Holder:
        pass

    holder = Holder()
    shared = np.zeros(10)
    holder.state = {"step": 3, 0: {"a": shared, "b": shared}, 1: {"h": [np.zeros(2, np.float32), np.float64(1.0)]}}
    assert state_bytes(holder) == 80 + 8 + 8


@pytest.mark.parametrize("bad", [None, [1, 2], {"state": {}}], ids=["None", "list", "dict"])
def test_state_bytes_refuses_what_has_no_state(bad):
    with pytest.raises(TypeError, match="optimizer must have a dict 'state'"):
        state_bytes(bad)


def test_optimizer_state_bytes_method_agrees():
    opt = stepped(Adam, {"amsgrad": True}, np.float64)
    assert opt.state_bytes() == state_bytes(opt) == 3 * N * 8


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((-1,), {}, ValueError, "n_params must be an integer >= 0, got -1"),
        ((1.5,), {}, ValueError, "n_params must be an integer >= 0, got 1.5"),
        ((float("inf"),), {}, ValueError, "n_params must be an integer >= 0, got inf"),
        ((float("nan"),), {}, ValueError, "n_params must be an integer >= 0, got nan"),
        (("7e9",), {}, TypeError, "n_params must be an integer >= 0, got '7e9'"),
        ((True,), {}, TypeError, "n_params must be an integer >= 0, got True"),
        ((None,), {}, TypeError, r"n_params must be an integer >= 0 \(None only with shapes=\), got None"),
        ((10, 3), {}, TypeError, "optimizer must be a str"),
        ((10, "lion"), {}, ValueError, "optimizer must be one of sgd, .*; got 'lion'"),
        ((10, "adam+centered"), {}, ValueError, "got 'adam\\+centered'"),
        ((10, "sgd+momentum+momentum"), {}, ValueError, "got 'sgd\\+momentum\\+momentum'"),
        ((10,), dict(param_dtype="int8"), ValueError, "param_dtype must be float16, bfloat16, float32 or float64, "
                                                      "got int8"),
        ((10,), dict(param_dtype=np.int32), ValueError, "param_dtype must be .* got int32"),
        ((10,), dict(param_dtype="float8"), ValueError, "param_dtype must be .* got 'float8'"),
        ((10,), dict(param_dtype=None), TypeError, "param_dtype must be a dtype or its name .* got None"),
        ((10,), dict(param_dtype=4), TypeError, "param_dtype must be a dtype or its name .* got 4"),
        ((10,), dict(grad_dtype="complex64"), ValueError, "grad_dtype must be .* got complex64"),
        ((10,), dict(param_dtype="float16", master_weights=True, state_dtype="float64"), ValueError,
         "master_weights=True updates the float32 master copy with float32 state; state_dtype=float64"),
        ((10,), dict(param_dtype="float16", state_dtype="float16"), ValueError,
         "state_dtype must be None, float32 or float64, got float16"),
        ((10,), dict(param_dtype="float64", state_dtype="float32"), ValueError,
         "state_dtype=float32 is narrower than param_dtype=float64"),
        ((10,), dict(master_weights=1), TypeError, "master_weights must be a bool, got 1"),
        ((10,), dict(master_weights="yes"), TypeError, "master_weights must be a bool, got 'yes'"),
        ((10,), dict(master_weights=True), ValueError, "master_weights=True keeps a float32 copy of float16/bfloat16 "
                                                       "parameters; param_dtype=float32 needs none"),
        ((10,), dict(master_weights=True, param_dtype="float64"), ValueError, "param_dtype=float64 needs none"),
        ((10,), dict(shapes="ab"), TypeError, "shapes must be a sequence of shapes"),
        ((10,), dict(shapes=[5, 5]), TypeError, "shapes\\[0\\] must be a tuple of ints, got 5"),
        ((10,), dict(shapes=[(2, -5)]), ValueError, "shapes\\[0\\]\\[1\\] must be an integer >= 0, got -5"),
        ((10,), dict(shapes=[(2, 3)]), ValueError, "shapes hold 6 elements, not n_params=10"),
        ((10,), dict(n_tensors=-1), ValueError, "n_tensors must be an integer >= 0, got -1"),
        ((10,), dict(n_tensors=0), ValueError, "n_tensors=0 cannot hold n_params=10"),
        ((10,), dict(n_tensors=2, shapes=[(10,)]), ValueError, "n_tensors=2 but shapes= lists 1 arrays"),
        ((10, "adam"), dict(history_size=5), ValueError, "history_size=5 applies to 'lbfgs' only, not 'adam'"),
        ((10, "lbfgs"), dict(history_size=0), ValueError, "history_size must be >= 1, got 0"),
        ((10, "lbfgs"), dict(history_size=2.5), ValueError, "history_size must be an integer >= 0, got 2.5"),
        ((10, "lbfgs"), dict(param_dtype="float16", master_weights=True), ValueError,
         "'lbfgs' has no state_dtype or master_weights"),
        ((10, "adafactor"), {}, ValueError, "'adafactor' needs shapes="),
        ((10, "adafactor"), dict(shapes=[(10,)], state_dtype="float64"), ValueError,
         "'adafactor' has no state_dtype or master_weights"),
    ],
    ids=lambda v: None,
)
def test_estimate_refuses_bad_arguments_naming_them(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        estimate_training_memory(*args, **kwargs)


def test_format_bytes_units():
    assert format_bytes(0) == "0 B" and format_bytes(999) == "999 B" and format_bytes(28 * GB) == "28 GB"
    assert format_bytes(1500, "MB") == "0.0015 MB"
    with pytest.raises(ValueError, match="unit must be one of GB, MB, kB, B, got 'GiB'"):
        format_bytes(1, "GiB")


def test_memory_estimate_is_a_frozen_dataclass():
    assert dataclasses.is_dataclass(MemoryEstimate)
    assert MemoryEstimate.__dataclass_params__.frozen
