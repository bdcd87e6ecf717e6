"""Every way of running a kernel is bitwise the reference: the NumPy kernel on whole arrays.

Every test runs the same problem twice: once as the reference (the NumPy backend with
``_blocks.settings.enabled = False``: each entry's whole arrays through ``sgd_update_`` /
``adam_update_``) and once on a *side*: the NumPy kernel block by block (numpy_optim/_blocks.py)
or the compiled kernel (numpy_optim/_compiled.py, marked ``numba``), and compares
parameters and every state buffer byte for byte after every step. Tiny blocks
(``block_bytes=256``: 64 float32 or 32 float64 elements) and no minimum size for threads
make small arrays exercise everything: several blocks per parameter with a ragged last
block, batches of small parameters, parameters cut between two threads.
"""

from __future__ import annotations

import contextlib
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpy_optim import SGD, Adam, AdamW, _blocks, use_backend

CONFIGS = [
    pytest.param(SGD, {"lr": 0.1}, id="SGD"),
    pytest.param(SGD, {"lr": 0.1, "weight_decay": 0.01, "maximize": True}, id="SGD-wd-maximize"),
    pytest.param(SGD, {"lr": 0.1, "momentum": 0.9}, id="SGD-momentum"),
    pytest.param(SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}, id="SGD-dampening-wd"),
    pytest.param(SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, id="SGD-nesterov"),
    pytest.param(SGD, {"lr": 0.05, "momentum": 0.5, "nesterov": True, "maximize": True}, id="SGD-nesterov-maximize"),
    pytest.param(Adam, {"lr": 0.01}, id="Adam"),
    pytest.param(Adam, {"lr": 0.01, "weight_decay": 0.1}, id="Adam-L2"),
    pytest.param(Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01, "maximize": True}, id="Adam-amsgrad-L2-max"),
    pytest.param(Adam, {"lr": 0.01, "betas": (0.3, 0.9)}, id="Adam-beta1<0.5"),  # torch's other lerp branch
    pytest.param(AdamW, {"lr": 0.01, "weight_decay": 0.1}, id="AdamW"),
    pytest.param(AdamW, {"lr": 0.01, "amsgrad": True, "maximize": True}, id="AdamW-amsgrad-maximize"),
    pytest.param(AdamW, {"lr": 0.01, "betas": (0.0, 0.99), "eps": 1e-3}, id="AdamW-beta1=0"),
]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]

#: Shapes around the tiny blocks: 0-d, empty, one element, ragged sizes, exact multiples,
#: and a few parameters too large to be batched (> block / batch_max_fraction).
SHAPES = [(), (0,), (1,), (7,), (3, 5), (31,), (32,), (64,), (65,), (257,), (10, 13), (2, 3, 50), (1000,)]

TINY = {
    "block_bytes": 256, "parallel_min_bytes": 0, "threads": 2, "batch_max_fraction": 4,
    "compiled_parallel_min_bytes": 0,
}

SIDES = [pytest.param("blocked", id="numpy-blocked"), pytest.param("compiled", id="numba", marks=pytest.mark.numba)]


@contextlib.contextmanager
def running(side, settings=None):
    """Run the optimizers inside on ``side``: "whole" (the reference), "blocked" or "compiled"."""
    if side == "whole":
        with use_backend("numpy"), _blocks.configured(enabled=False):
            yield
        return
    backend = "numba" if side == "compiled" else "numpy"
    with use_backend(backend), _blocks.configured(**(TINY if settings is None else settings)):
        yield


def make_entries(shapes, dtype, seed, overrides=None):
    rng = np.random.default_rng(seed)
    entries = []
    for index, shape in enumerate(shapes):
        entry = {"params": rng.standard_normal(shape).astype(dtype), "grad": np.zeros(shape, dtype)}
        entry.update((overrides or {}).get(index, {}))
        entries.append(entry)
    return entries


def snapshot(optimizer):
    """Every byte the optimizer owns or updates: parameters, then each entry's buffers."""
    out = []
    for index, entry in enumerate(optimizer.param_groups):
        out.append((f"params[{index}]", entry["params"].tobytes()))
        for name, buf in sorted(optimizer.state.get(index, {}).items()):
            assert buf.shape == entry["params"].shape and buf.dtype == entry["params"].dtype, name
            out.append((f"state[{index}][{name!r}]", buf.tobytes()))
    return out


def run_both(cls, kwargs, shapes, dtype, side, *, steps=6, seed=0, overrides=None, settings=None, between=None):
    """Run the reference and ``side`` on the same gradients; assert bitwise equality every step."""
    plain_entries = make_entries(shapes, dtype, seed, overrides)
    blocked_entries = make_entries(shapes, dtype, seed, overrides)
    plain, blocked = cls(plain_entries, **kwargs), cls(blocked_entries, **kwargs)
    originals = [entry["params"] for entry in blocked_entries]
    rng = np.random.default_rng(seed + 1)
    for step in range(steps):
        for a, b in zip(plain_entries, blocked_entries):
            grad = (rng.standard_normal(a["grad"].shape) * 3).astype(dtype)
            a["grad"][...] = grad
            b["grad"][...] = grad
        if between is not None:
            between(step, plain, blocked)
        with np.errstate(all="ignore"):
            with running("whole"):
                plain.step()
            with running(side, settings):
                blocked.step()
        for (where, x), (_, y) in zip(snapshot(plain), snapshot(blocked)):
            assert x == y, f"{side}: {cls.__name__}({kwargs}) {np.dtype(dtype)} step {step + 1}: {where} differs"
        assert [entry["params"] for entry in blocked_entries] == originals  # same objects, in place
    return plain, blocked


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_blocked_threaded_and_compiled_trajectories_are_bitwise_the_reference(cls, kwargs, dtype, side):
    run_both(cls, kwargs, SHAPES, dtype, side)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_single_thread_default_blocks_ragged_large_parameter(cls, kwargs, dtype, side):
    # Default block size, one thread: 3 blocks and a ragged tail, plus a batch of small ones.
    block = _blocks.settings.block_bytes // np.dtype(dtype).itemsize
    shapes = [(2 * block + 12_345,), (5,), (40, 3), ()]
    run_both(cls, kwargs, shapes, dtype, side, steps=3, settings={"threads": 1})


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_many_small_parameters_with_per_entry_overrides(cls, kwargs, side):
    shapes = [(int(n),) for n in np.random.default_rng(3).integers(1, 90, size=60)] + [(4, 4), ()]
    extra = {"maximize": True} if "nesterov" not in kwargs else {}
    if cls is SGD:
        per_entry = [{"lr": 0.02}, {"weight_decay": 0.0}, {"weight_decay": 0}, extra, {"lr": 0.1}]
    else:
        per_entry = [{"lr": 0.02}, {"weight_decay": 0.0}, {"betas": (0.8, 0.99)}, {"amsgrad": True}, extra]
    overrides = {i: per_entry[i % len(per_entry)] for i in range(0, len(shapes), 2)}
    run_both(cls, kwargs, shapes, np.float32, side, overrides=overrides)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls", [SGD, Adam])
def test_lr_zero_and_negative_zero_are_different_groups(cls, side):
    # -lr * g is -0.0 or +0.0 depending on the sign of lr = 0.0 and of g; added to a -0.0
    # parameter only a -0.0 keeps it negative. Entries with 0.0 and -0.0 must not share a call.
    overrides = {0: {"lr": 0.0}, 1: {"lr": -0.0}, 2: {"lr": 0.0}, 3: {"lr": -0.0}}

    def negative_zero_parameters(step, *optimizers):
        if step == 0:
            for optimizer in optimizers:
                for entry in optimizer.param_groups:
                    entry["params"][...] = -0.0

    run_both(cls, {}, [(50,)] * 4, np.float64, side, overrides=overrides, between=negative_zero_parameters)
    x, g = np.zeros(3), np.zeros(3)
    keys = {_blocks.group_key({"params": x, "grad": g, "lr": lr}, {"lr": lr}) for lr in (0.0, -0.0)}
    assert len(keys) == 2


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls, kwargs", [CONFIGS[4], CONFIGS[8], CONFIGS[10]])
def test_schedule_changes_and_state_dict_reload_mid_run(cls, kwargs, side):
    def between(step, plain, blocked):
        for optimizer in (plain, blocked):
            optimizer.lr = 0.01 * (0.5 ** (step // 2))  # a scheduler changing the lr
        if step == 3:  # buffers replaced by copies: the blocked path must not care
            blocked.load_state_dict(blocked.state_dict())
            plain.load_state_dict(plain.state_dict())

    run_both(cls, kwargs, SHAPES, np.float32, side, steps=7, between=between)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls, kwargs", [CONFIGS[4], CONFIGS[8]])
def test_non_contiguous_and_aliased_arrays_fall_back_to_the_whole_array_kernel(cls, kwargs, side):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((40, 30))
    shared = rng.standard_normal(50)

    def make():
        entries = [
            {"params": base.copy().T, "grad": np.ones((30, 40))},  # F-ordered parameter
            {"params": base.copy()[::2, 1:], "grad": np.ones((20, 29))},  # strided view
            {"params": shared.copy(), "grad": np.ones(50)},
        ]
        entries[2]["grad"] = entries[2]["params"][::-1]  # the gradient overlaps its parameter
        return entries

    plain_entries, blocked_entries = make(), make()
    plain, blocked = cls(plain_entries, **kwargs), cls(blocked_entries, **kwargs)
    for _ in range(3):
        with running("whole"):
            plain.step()
        with running(side):
            blocked.step()
        assert snapshot(plain) == snapshot(blocked)


_hyper = st.fixed_dictionaries(
    {
        "lr": st.sampled_from([0.0, 1e-4, 0.01, 0.5]),
        "weight_decay": st.sampled_from([0.0, 1e-2, 0.5]),
        "maximize": st.booleans(),
    }
)


@given(
    kind=st.sampled_from(["SGD", "SGD-momentum", "SGD-nesterov", "Adam", "AdamW", "amsgrad"]),
    hyper=_hyper,
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=8),
    dtype=st.sampled_from([np.float32, np.float64]),
    block=st.sampled_from([8, 96, 1000]),
    threads=st.integers(1, 3),
    fraction=st.sampled_from([1, 4, 1000]),
    seed=st.integers(0, 2**16),
)
def test_any_block_size_thread_count_and_batching_is_bitwise_the_reference(
    kind, hyper, sizes, dtype, block, threads, fraction, seed
):
    cls, extra = {
        "SGD": (SGD, {}),
        "SGD-momentum": (SGD, {"momentum": 0.9, "dampening": 0.1}),
        "SGD-nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
        "Adam": (Adam, {}),
        "AdamW": (AdamW, {}),
        "amsgrad": (AdamW, {"amsgrad": True, "betas": (0.5, 0.9)}),
    }[kind]
    settings = {"block_bytes": block, "threads": threads, "parallel_min_bytes": 0, "batch_max_fraction": fraction}
    run_both(cls, {**hyper, **extra}, [(n,) for n in sizes], dtype, "blocked", steps=3, seed=seed, settings=settings)


@pytest.mark.parametrize("side", SIDES)
def test_threaded_step_really_uses_a_worker_thread(side):
    entries = make_entries([(5000,)], np.float32, 0)
    opt = AdamW(entries)
    with running(side, {"block_bytes": 1024, "parallel_min_bytes": 0, "threads": 2, "compiled_parallel_min_bytes": 0}):
        opt.step()
    assert any(thread.name.startswith("numpy_optim") for thread in threading.enumerate())


def test_worker_threads_see_the_callers_errstate():
    # np.errstate is a context variable: the workers run in a copy of the caller's context.
    def make():
        return SGD([{"params": np.full(4096, 3e38, np.float32), "grad": np.full(4096, -3e38, np.float32)}], lr=10.0)

    with running("blocked"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with np.errstate(all="ignore"):
                make().step()  # overflows silently, in every thread
        with np.errstate(over="raise"), pytest.raises(FloatingPointError):
            make().step()


@pytest.mark.parametrize("side", SIDES)
def test_steady_state_adamw_step_allocates_no_parameter_sized_temporaries(side):
    n = 2_000_000  # 8 MB of float32 per array
    rng = np.random.default_rng(0)
    entries = [{"params": rng.standard_normal(n).astype(np.float32), "grad": rng.standard_normal(n).astype(np.float32)}]
    opt = AdamW(entries)

    def transient_peak():
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
            opt.step()
            return tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()

    with running(side, {}):
        opt.step()
        opt.step()  # buffers, scratch and worker threads exist from now on
        blocked = transient_peak()
    with running("whole"):
        plain = transient_peak()
    param_bytes = entries[0]["params"].nbytes
    assert plain >= param_bytes, f"tracemalloc must see NumPy's buffers: plain step peaked at {plain} bytes"
    assert blocked < 512 * 1024, f"a {side} step allocated {blocked} bytes (one parameter: {param_bytes})"


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("base", [SGD, Adam, AdamW], ids=lambda c: c.__name__)
def test_a_subclass_overriding_update_is_honoured_on_the_batched_path(base, side):
    # _update is the documented extension point: the batched path must not go around it.
    calls = []

    class Counting(base):
        def _update(self, index, param, grad, hyper, step):
            calls.append(index)
            super()._update(index, param, grad, hyper, step)

    entries = [{"params": np.ones(n, np.float32), "grad": np.full(n, 0.5, np.float32)} for n in (3, 5, 300_000)]
    with running(side):
        Counting(entries, lr=0.1).step()
    assert calls == [0, 1, 2]
