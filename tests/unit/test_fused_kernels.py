"""The kernels of ``fused=True`` (numpy_optim/sgd.py, adam.py, adagrad.py, _fused.py)
against torch's fused CPU kernels, bit for bit.

* Trajectories: the ``*_fused_step`` / ``*_fused_update_`` pairs, driven directly (one call
  per parameter and step, as the optimizers will call them), against
  ``torch.optim.SGD / Adam / AdamW / Adagrad(fused=True)`` over 300 steps, in float64,
  float32, float16 and bfloat16 (SGD: float32 and float64), on one parameter of every size
  in :data:`SIZES` (0-d to 1027 elements: all-tail, body only, body and tail), parameters
  and every state buffer compared byte for byte after every step. float16 / bfloat16
  parameters go through float32 copies, rounded back after each step (torch's opmath:
  rounded only when stored).
* torch's defect, pinned: fused SGD on float16 / bfloat16 parameters updates only the last
  ``n % 16`` elements of each.
* The compiled factories (numba) give the NumPy kernels' bits, on whole parameters and on
  parameters cut into parts at multiples of 64 elements; they have no fast-math and
  vectorize.
* The double-precision scalars (a correctly rounded ``fma`` in double, the contracted
  AdamW decay and Adagrad ``clr``), the lane counts and the half-rounded Adagrad
  constants, hand-computed; bad arguments refused.
* The scalar tail's own C++, against torch on given states, NumPy and compiled kernels:
  Adam's lerp with ``1 - beta1 = 1`` (a zero's sign), its high-weight branch on random
  tails over steps, amsgrad's ``std::max`` where ``v`` is NaN; SGD's and Adagrad's tails
  on signed zeros.

The torch tests need torch (and ml_dtypes for bfloat16); the compiled ones numba.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from numpy_optim import _blocks
from numpy_optim._fused import body_length, fma_double, lanes, through_half
from numpy_optim.adagrad import (
    ADAGRAD_FUSED_SCRATCH,
    adagrad_fused_compiled,
    adagrad_fused_step,
    adagrad_fused_update_,
)
from numpy_optim.adam import ADAM_FUSED_SCRATCH, adam_fused_compiled, adam_fused_step, adam_fused_update_
from numpy_optim.sgd import SGD_FUSED_SCRATCH, sgd_fused_compiled, sgd_fused_step, sgd_fused_update_

#: One parameter of each: 0-d and 1 (all tail), 8 and 16 (body only for float32 / half), 1027.
SIZES = [(), (1,), (7,), (8,), (15,), (16,), (17,), (35,), (100,), (1027,)]
STEPS = 300

ADAM_BUFFERS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
KERNELS = {  # optimizer: (NumPy kernel, compiled factory, scratch rows, arrays, state buffers in torch's names)
    "SGD": (sgd_fused_update_, sgd_fused_compiled, SGD_FUSED_SCRATCH, 3, ("momentum_buffer",)),
    "Adam": (adam_fused_update_, adam_fused_compiled, ADAM_FUSED_SCRATCH, 5, ADAM_BUFFERS),
    "AdamW": (adam_fused_update_, adam_fused_compiled, ADAM_FUSED_SCRATCH, 5, ADAM_BUFFERS),
    "Adagrad": (adagrad_fused_update_, adagrad_fused_compiled, ADAGRAD_FUSED_SCRATCH, 3, ("sum",)),
}


def storage_dtype(name: str) -> np.dtype:
    """The parameters' dtype; bfloat16 is ml_dtypes' (skipped without it)."""
    if name == "bfloat16":
        return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    return np.dtype(name)


def is_half(dtype: np.dtype) -> bool:
    return dtype.itemsize == 2


def fused_step(optimizer: str, group: dict, step: int, compute: np.dtype, half: np.dtype | None):
    """The step's scalars from torch's param group (its hyperparameters, defaults included)."""
    if optimizer == "SGD":
        return sgd_fused_step(
            lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
            weight_decay=group["weight_decay"], nesterov=group["nesterov"], maximize=group["maximize"],
            first=step == 1, dtype=compute,
        )
    if optimizer in ("Adam", "AdamW"):
        beta1, beta2 = group["betas"]
        return adam_fused_step(
            step=step, lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], amsgrad=group["amsgrad"], maximize=group["maximize"],
            decoupled_weight_decay=optimizer == "AdamW", dtype=compute, half=half,
        )
    return adagrad_fused_step(
        step=step, lr=group["lr"], lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
        eps=group["eps"], maximize=group["maximize"], dtype=compute, half=half,
    )


def buffer_names(optimizer: str, group: dict) -> tuple[str, ...]:
    names = KERNELS[optimizer][4]
    if optimizer == "SGD":
        return names if group["momentum"] != 0 else ()
    if optimizer in ("Adam", "AdamW"):
        return names if group["amsgrad"] else names[:2]
    return names


# --------------------------------------------------------------------------------------
# torch <-> NumPy (bfloat16 by its bits)
# --------------------------------------------------------------------------------------


def to_torch(torch, array: np.ndarray):
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(array.copy())


def to_numpy(torch, tensor, dtype: np.dtype) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(dtype).copy()
    return tensor.numpy().copy()


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def first_difference(ours: np.ndarray, theirs: np.ndarray) -> str:
    """Where two same-dtype arrays first differ in their bits, and the two values."""
    a, b = ours.reshape(-1), theirs.reshape(-1)
    index = int(np.flatnonzero(a.view(f"u{a.itemsize}") != b.view(f"u{b.itemsize}"))[0])
    return f"index {index}: ours {a[index]!r} torch {b[index]!r}"


def gradient(rng, shape, dtype: np.dtype) -> np.ndarray:
    """Gradients whose scale changes from step to step (1e-3 to 10), a tenth exact zeros."""
    g = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 2)
    g = np.where(rng.random(shape) < 0.1, 0.0, g)
    return np.asarray(g).astype(dtype)


def run_against_torch(torch, optimizer: str, kwargs: dict, dtype_name: str, lr_decay_per_step: float = 1.0) -> None:
    """``STEPS`` steps of torch's ``optimizer(fused=True, **kwargs)`` and of the fused kernels
    on the same parameters and gradients, compared bit for bit after every step."""
    dtype = storage_dtype(dtype_name)
    half = dtype if is_half(dtype) else None
    compute = np.dtype(np.float32) if half is not None else dtype
    update, _, n_scratch, _, _ = KERNELS[optimizer]
    rng = np.random.default_rng(13)
    params = [np.asarray(rng.standard_normal(shape)).astype(dtype) for shape in SIZES]
    tensors = [torch.nn.Parameter(to_torch(torch, p)) for p in params]
    opt = getattr(torch.optim, optimizer)(tensors, fused=True, **kwargs)
    group = opt.param_groups[0]
    names = buffer_names(optimizer, group)
    # torch: full_like(p, initial_accumulator_value), through float for half; else zeros
    # (SGD's momentum buffer is the first gradient, copied: the initial zeros are never read).
    fill = group["initial_accumulator_value"] if optimizer == "Adagrad" else 0.0
    fill_value = np.float32(fill).astype(dtype) if half is not None else fill
    buffers = [[np.full(p.shape, fill_value, dtype) for _ in names] for p in params]
    base_lr = group["lr"]
    where = f"{optimizer}(fused=True, **{kwargs}) {dtype_name}"
    for step in range(1, STEPS + 1):
        group["lr"] = base_lr * lr_decay_per_step ** (step - 1)
        grads = [gradient(rng, shape, dtype) for shape in SIZES]
        for tensor, g in zip(tensors, grads):
            tensor.grad = to_torch(torch, g)
        opt.step()
        k = fused_step(optimizer, group, step, compute, half)
        for p, g, bufs in zip(params, grads, buffers):
            if half is None:  # 1-d views: updated in place
                arrays = [a.reshape(-1) for a in (p, g, *bufs)]
            else:  # float32 copies, rounded back to the half dtype after the step
                arrays = [a.reshape(-1).astype(np.float32) for a in (p, g, *bufs)]
            grad_before = arrays[1].copy()
            rows = _blocks.whole_scratch((p.size,), compute, n_scratch)
            scratch = [np.full(p.size, np.nan, row.dtype) for row in rows]  # contents on entry are ignored
            with np.errstate(invalid="ignore", divide="ignore"):  # float16 Adagrad: 0 / 0 where torch's is NaN too
                update(arrays, scratch, k)
            assert arrays[1].tobytes() == grad_before.tobytes(), f"{where}: step {step} wrote into the gradient"
            if half is not None:
                for target, array in zip((p, g, *bufs), arrays):
                    target[...] = array.reshape(target.shape).astype(dtype)
        for i, (p, bufs) in enumerate(zip(params, buffers)):
            theirs = to_numpy(torch, tensors[i], dtype)
            assert p.tobytes() == theirs.tobytes(), (
                f"{where}: step {step}, parameter {i} of shape {SIZES[i]}: {first_difference(p, theirs)}"
            )
            for name, buf in zip(names, bufs):
                theirs = to_numpy(torch, opt.state[tensors[i]][name], dtype)
                assert buf.tobytes() == theirs.tobytes(), (
                    f"{where}: step {step}, {name} of parameter {i} of shape {SIZES[i]}: "
                    f"{first_difference(buf, theirs)}"
                )


# Each case: optimizer, torch kwargs, lr factor per step (a schedule) and an id.
CASES = [
    ("SGD", dict(lr=0.1), 1.0, "plain"),
    ("SGD", dict(lr=0.05, weight_decay=0.1, maximize=True), 1.0, "wd-maximize"),
    ("SGD", dict(lr=0.01, momentum=0.9), 0.995, "momentum-schedule"),
    ("SGD", dict(lr=0.01, momentum=0.9, dampening=0.3, weight_decay=0.1), 1.0, "momentum-dampening-wd"),
    ("SGD", dict(lr=0.01, momentum=0.8, nesterov=True, weight_decay=0.05, maximize=True), 1.0, "nesterov-wd-maximize"),
    ("Adam", dict(lr=0.01), 1.0, "plain"),
    ("Adam", dict(lr=0.01, weight_decay=0.1), 0.995, "L2-schedule"),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True), 1.0, "L2-amsgrad-maximize"),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.2), eps=1e-12), 1.0, "beta1-0.3-lerp-other-branch"),
    ("Adam", dict(lr=0.003, betas=(0.5, 0.99), eps=1e-6, amsgrad=True), 1.0, "beta1-0.5-amsgrad"),
    # lr * weight_decay = 0.0469: fma(-lr, wd, 1) differs from 1 - lr * wd in double
    ("AdamW", dict(lr=0.1, weight_decay=0.469), 1.0, "decay-fma"),
    ("AdamW", dict(lr=0.01, betas=(0.3, 0.5), weight_decay=0.1, amsgrad=True, maximize=True), 0.995,
     "beta1-0.3-amsgrad-maximize-schedule"),
    ("Adagrad", dict(lr=0.1), 1.0, "plain"),
    # lr_decay 0.0711: fma(t - 1, lr_decay, 1) differs from 1 + (t - 1) * lr_decay at some steps
    ("Adagrad", dict(lr=0.1, lr_decay=0.0711, weight_decay=0.1, initial_accumulator_value=0.1), 1.0,
     "lr_decay-wd-initial"),
    ("Adagrad", dict(lr=0.05, eps=1e-6, maximize=True, initial_accumulator_value=1.0), 0.995,
     "eps-maximize-initial-schedule"),
]
DTYPES = ["float64", "float32", "float16", "bfloat16"]


def _trajectory_params():
    for optimizer, kwargs, schedule, name in CASES:
        for dtype in DTYPES:
            if optimizer == "SGD" and dtype in ("float16", "bfloat16"):
                continue  # torch's defect (below): numpy_optim refuses fused SGD on half parameters
            yield pytest.param(optimizer, kwargs, schedule, dtype, id=f"{optimizer}-{name}-{dtype}")


@pytest.mark.parametrize("optimizer, kwargs, schedule, dtype", list(_trajectory_params()))
def test_fused_kernels_are_bitwise_torch_fused_over_300_steps(torch, optimizer, kwargs, schedule, dtype):
    run_against_torch(torch, optimizer, kwargs, dtype, schedule)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kwargs", [dict(lr=0.1), dict(lr=0.1, momentum=0.9, weight_decay=0.1)],
                         ids=["plain", "momentum-wd"])
def test_torch_defect_fused_sgd_on_half_parameters_updates_only_the_last_n_mod_16(torch, kwargs, dtype):
    # torch 2.13's half sgd_math vector loop never stores the parameter: of a 35-element
    # tensor only the last 3 elements change. When this fails, torch has fixed it: offer
    # SGD(fused=True) on float16 / bfloat16 parameters (and compare the buffers too).
    dtype_ = storage_dtype(dtype)
    rng = np.random.default_rng(5)
    params = [np.asarray(rng.standard_normal(shape)).astype(dtype_) for shape in SIZES]
    tensors = [torch.nn.Parameter(to_torch(torch, p)) for p in params]
    opt = torch.optim.SGD(tensors, fused=True, **kwargs)
    for _ in range(5):
        for tensor, shape in zip(tensors, SIZES):
            tensor.grad = to_torch(torch, np.asarray(rng.uniform(1.0, 2.0, shape)).astype(dtype_))  # no zeros
        opt.step()
    for p, tensor in zip(params, tensors):
        before, after = p.reshape(-1), to_numpy(torch, tensor, dtype_).reshape(-1)
        n = before.size
        body = n - n % 16
        changed = np.flatnonzero(before.view(np.uint16) != after.view(np.uint16))
        assert changed.tolist() == list(range(body, n)), (
            f"torch SGD(fused=True, **{kwargs}) {dtype}, {n} elements: changed {changed.tolist()}, "
            f"the defect says exactly the last {n % 16} ({list(range(body, n))}): has torch fixed it?"
        )


def test_torch_quirk_fused_adagrad_float16_body_eps_is_zero_so_a_zero_gradient_on_a_zero_sum_is_nan(torch):
    # The body's eps is float16(1e-10) = 0: 0 / (sqrt(0) + 0) is NaN in the 16 body
    # elements; the tail's eps is float32(1e-10), and its element stays 0. numpy_optim
    # reproduces it (fused=True is torch's arithmetic).
    param = np.zeros(17, np.float16)
    tensor = torch.nn.Parameter(to_torch(torch, param))
    tensor.grad = to_torch(torch, np.zeros(17, np.float16))
    torch.optim.Adagrad([tensor], lr=0.1, fused=True).step()
    theirs = to_numpy(torch, tensor, np.dtype(np.float16))
    assert np.isnan(theirs[:16]).all() and theirs[16] == 0, f"torch: {theirs}"
    arrays = [np.zeros(17, np.float32) for _ in range(3)]  # param, grad, sum
    k = adagrad_fused_step(step=1, lr=0.1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False,
                           dtype=np.float32, half=np.float16)
    with np.errstate(invalid="ignore"):
        adagrad_fused_update_(arrays, _blocks.whole_scratch((17,), np.dtype(np.float32), ADAGRAD_FUSED_SCRATCH), k)
    ours = arrays[0].astype(np.float16)
    assert ours.tobytes() == theirs.tobytes(), f"ours {ours} torch {theirs}"


# --------------------------------------------------------------------------------------
# The compiled factories give the NumPy kernels' bits
# --------------------------------------------------------------------------------------


#: Configurations of the step functions' arguments for the compiled and parts tests.
CONFIGS = {
    "SGD": [
        dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False),
        dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.1, nesterov=False, maximize=True),
        dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True, maximize=False),
    ],
    "Adam": [
        dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
             decoupled_weight_decay=False),
        dict(lr=0.01, beta1=0.3, beta2=0.5, eps=1e-8, weight_decay=0.1, amsgrad=True, maximize=True,
             decoupled_weight_decay=True),
        dict(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-6, weight_decay=0.1, amsgrad=False, maximize=False,
             decoupled_weight_decay=False),
    ],
    "Adagrad": [
        dict(lr=0.1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False),
        dict(lr=0.1, lr_decay=0.0711, weight_decay=0.1, eps=1e-6, maximize=True),
    ],
}


def _compiled_params():
    for optimizer, configs in CONFIGS.items():
        for i, config in enumerate(configs):
            for dtype in ["float64", "float32"] + (["float16"] if optimizer != "SGD" else []):
                yield pytest.param(optimizer, config, dtype, id=f"{optimizer}-{i}-{dtype}")


def _arrays(rng, optimizer: str, config: dict, n: int, dtype: np.dtype) -> list[np.ndarray]:
    """A parameter's arrays (param, grad, buffers) of ``n`` elements, values over four
    orders of magnitude; second moments and sums non-negative."""
    count = {"SGD": 3, "Adam": 5 if config.get("amsgrad") else 4, "Adagrad": 3}[optimizer]
    arrays = [(rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 1, n)).astype(dtype) for _ in range(count)]
    for buffer in arrays[{"SGD": count, "Adam": 3, "Adagrad": 2}[optimizer]:]:
        np.abs(buffer, out=buffer)
    return arrays


def _scalars(optimizer: str, config: dict, step: int, dtype: np.dtype):
    half = dtype if is_half(dtype) else None
    compute = np.dtype(np.float32) if half is not None else dtype
    if optimizer == "SGD":
        return sgd_fused_step(**config, first=step == 1, dtype=compute)
    if optimizer == "Adam":
        return adam_fused_step(step=step, **config, dtype=compute, half=half)
    return adagrad_fused_step(step=step, **config, dtype=compute, half=half)


@pytest.mark.numba
@pytest.mark.parametrize("optimizer, config, dtype", list(_compiled_params()))
def test_compiled_fused_kernels_are_bitwise_the_numpy_fused_kernels(optimizer, config, dtype):
    pytest.importorskip("numba")
    from numpy_optim import _compiled

    dtype = np.dtype(dtype)
    compute = np.dtype(np.float32) if is_half(dtype) else dtype
    update, factory, n_scratch, arity, _ = KERNELS[optimizer]
    rng = np.random.default_rng(7)
    # Every size, and a 200-element parameter the compiled side gets as two rows cut at 128
    # (a multiple of 64: the body of the first part ends where a body would).
    sizes = [int(np.prod(s)) for s in SIZES] + [200]
    ours = [_arrays(rng, optimizer, config, n, compute) for n in sizes]
    theirs = [[a.copy() for a in arrays] for arrays in ours]
    for step in range(1, 4):
        k = _scalars(optimizer, config, step, dtype)
        for arrays in ours:  # the NumPy kernel, on whole arrays
            update(arrays, _blocks.whole_scratch(arrays[0].shape, compute, n_scratch), k)
        flags = tuple(value for value in k if isinstance(value, bool))
        constants = np.array([value for value in k if not isinstance(value, bool)], compute)
        rows = [_blocks.table_row(arrays, arity) for arrays in theirs[:-1]]
        rows += [_blocks.table_row([a[cut] for a in theirs[-1]], arity) for cut in (slice(0, 128), slice(128, None))]
        _blocks.run_compiled(_compiled.kernel(factory, flags), rows, constants)
        for n, a_arrays, b_arrays in zip(sizes, ours, theirs):
            for position, (a, b) in enumerate(zip(a_arrays, b_arrays)):
                assert a.tobytes() == b.tobytes(), (
                    f"{optimizer}{flags} {dtype}, step {step}, {n} elements, array {position}: "
                    f"compiled differs from NumPy at {first_difference(b, a)}"
                )


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "Adagrad"])
def test_a_numpy_fused_kernel_on_parts_cut_at_multiples_of_64_gives_the_whole_arrays_bits(optimizer):
    # The caller's obligation made concrete: parts that start at multiples of 64 elements
    # (only the last holding the tail: 1003 = 125 * 8 + 3) give the bits of one call on
    # the whole parameter.
    config = CONFIGS[optimizer][1]
    update, _, n_scratch, _, _ = KERNELS[optimizer]
    dtype = np.dtype(np.float32)
    whole = _arrays(np.random.default_rng(3), optimizer, config, 1003, dtype)
    parts = [a.copy() for a in whole]
    for step in (1, 2):
        k = _scalars(optimizer, config, step, dtype)
        update(whole, _blocks.whole_scratch((1003,), dtype, n_scratch), k)
        for start, stop in ((0, 64), (64, 576), (576, 1003)):
            update([a[start:stop] for a in parts], _blocks.whole_scratch((stop - start,), dtype, n_scratch), k)
        for position, (a, b) in enumerate(zip(whole, parts)):
            assert a.tobytes() == b.tobytes(), f"{optimizer} step {step}, array {position}: {first_difference(b, a)}"


_FAST_MATH = re.compile(
    r"\b(?:fadd|fsub|fmul|fdiv|frem|fneg|fcmp|call|select|phi)\b"
    r"(?:\s+(?:fast|contract|reassoc|nnan|ninf|nsz|arcp|afn)\b)+"
)


@pytest.mark.numba
@pytest.mark.parametrize("factory, flags, arity, n_constants", [
    (sgd_fused_compiled, (False, True, True, False, True), 3, 4),
    (adam_fused_compiled, (False, True, False, True, False, False), 5, 10),
    (adam_fused_compiled, (True, False, True, False, True, True), 5, 10),
    (adagrad_fused_compiled, (False, True, True), 3, 6),
], ids=["SGD-nesterov-wd", "AdamW", "Adam-L2-amsgrad-half", "Adagrad-wd-half"])
def test_compiled_fused_kernels_have_no_fast_math_or_hardware_fma_and_vectorize(factory, flags, arity, n_constants):
    numba = pytest.importorskip("numba")
    from numpy_optim import _compiled

    assert "fastmath" not in _compiled.JIT_OPTIONS
    for dtype in (np.float32, np.float64):
        # A fresh, uncached dispatcher: numba refuses to inspect code loaded from its cache.
        dispatcher = numba.njit(**{**_compiled.JIT_OPTIONS, "cache": False})(factory(*flags))
        arrays = [np.full(64, 0.5, dtype) for _ in range(arity)]
        dispatcher(np.array([_blocks.table_row(arrays, arity)], np.int64), np.full(n_constants, 0.25, dtype))
        (llvm,) = dispatcher.inspect_llvm().values()
        where = f"{factory.__name__}{flags} {np.dtype(dtype)}"
        fast = [line.strip() for line in llvm.splitlines() if _FAST_MATH.search(line)]
        assert not fast, f"{where}: fast-math flags: {fast[:5]}"
        fused = [line.strip() for line in llvm.splitlines() if re.search(r"@llvm\.(fma|fmuladd)\.", line)]
        assert not fused, f"{where}: hardware fma: {fused[:5]}"
        vector = r"float" if dtype == np.float32 else r"double"
        assert re.search(rf"= f(?:add|mul|div) <(?:2|4|8|16) x {vector}>", llvm), f"{where}: the body did not vectorize"


# --------------------------------------------------------------------------------------
# Scalars, lanes, arguments
# --------------------------------------------------------------------------------------


def test_fma_double_rounds_once_hand_computed():
    # 0.1 is 3602879701896397 / 2**55: 0.1 * 10 - 1 is exactly 2 / 2**55 = 2**-54, which the
    # rounded product (exactly 1.0) loses.
    assert 0.1 * 10.0 - 1.0 == 0.0
    assert fma_double(0.1, 10.0, -1.0) == 2.0**-54
    # 1 + 2**-30 squared is 1 + 2**-29 + 2**-60: the 2**-60 survives the subtraction of 1.
    x = 1.0 + 2.0**-30
    assert fma_double(x, x, -1.0) == 2.0**-29 + 2.0**-60
    assert x * x - 1.0 == 2.0**-29
    assert math.copysign(1.0, fma_double(1.0, 1.0, -1.0)) == 1.0  # an exactly cancelled sum is +0
    assert math.copysign(1.0, fma_double(-0.0, 1.0, -0.0)) == -1.0  # -0 * 1 + -0 is -0
    assert fma_double(1e308, 10.0, 0.0) == math.inf  # overflow
    assert fma_double(math.inf, 1.0, 1.0) == math.inf and math.isnan(fma_double(math.nan, 1.0, 1.0))


def test_the_contracted_scalars_differ_from_the_plain_ones_in_the_torch_cases():
    # The trajectories above would miss a plain `1 - lr * wd` or `1 + (t - 1) * lr_decay`
    # if these cases did not tell the two apart.
    k = adam_fused_step(step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.469, amsgrad=False,
                        maximize=False, decoupled_weight_decay=True, dtype=np.float64, half=None)
    assert k.decay == fma_double(-0.1, 0.469, 1.0) != 1 - 0.1 * 0.469
    steps = [t for t in range(1, STEPS + 1) if fma_double(t - 1.0, 0.0711, 1.0) != 1 + (t - 1) * 0.0711]
    assert steps, "lr_decay 0.0711 never distinguishes the contracted clr"
    t = steps[0]
    k = adagrad_fused_step(step=t, lr=0.1, lr_decay=0.0711, weight_decay=0.0, eps=1e-10, maximize=False,
                           dtype=np.float64, half=None)
    assert k.neg_clr == -(0.1 / fma_double(t - 1.0, 0.0711, 1.0))


def test_adam_fused_scalars_hand_computed():
    k = adam_fused_step(step=2, lr=0.1, beta1=0.5, beta2=0.75, eps=1e-8, weight_decay=0.0, amsgrad=False,
                        maximize=False, decoupled_weight_decay=False, dtype=np.float32, half=None)
    assert k.neg_step_size == -(0.1 / 0.75)  # 1 - 0.5**2
    assert k.bias_correction2_sqrt == math.sqrt(1 - 0.75**2)
    assert not k.low_weight and k.weight_minus_one == -0.5 and not k.half  # |1 - 0.5| is not < 0.5


@pytest.mark.parametrize("dtype, half, expected", [
    (np.float64, False, 4), (np.float32, False, 8), (np.float32, True, 16),
])
def test_lanes_and_the_body_tail_split(dtype, half, expected):
    assert lanes(np.dtype(dtype), half) == expected
    assert [body_length(n, expected) for n in (0, 1, expected - 1, expected, 35, 1027)] == [
        0, 0, 0, expected, 35 - 35 % expected, 1027 - 1027 % expected]


def test_adagrad_half_body_constants_go_through_the_half_dtype():
    # float16(1e-10) underflows to 0; float16(0.1) = 0.0999755859375, bfloat16(0.1) = 0.10009765625.
    assert through_half(1e-10, np.dtype(np.float16)) == 0.0
    assert through_half(0.1, np.dtype(np.float16)) == 0.0999755859375
    k = adagrad_fused_step(step=1, lr=0.1, lr_decay=0.0, weight_decay=0.1, eps=1e-10, maximize=False,
                           dtype=np.float32, half=np.float16)
    assert (k.body_weight_decay, k.body_eps, k.body_neg_clr) == (0.0999755859375, 0.0, -0.0999755859375)
    assert (k.weight_decay, k.eps, k.neg_clr, k.half) == (0.1, 1e-10, -0.1, True)  # the tail: float32(x)
    bfloat16 = storage_dtype("bfloat16")
    assert through_half(0.1, bfloat16) == 0.10009765625
    k = adagrad_fused_step(step=1, lr=0.1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False,
                           dtype=np.float64, half=None)
    assert (k.body_weight_decay, k.body_eps, k.body_neg_clr, k.half) == (0.0, 1e-10, -0.1, False)


ADAM = dict(step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
            decoupled_weight_decay=False)
ADAGRAD = dict(step=1, lr=0.1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False)
SGD_ = dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, first=True)


@pytest.mark.parametrize("make, kwargs, error, message", [
    (sgd_fused_step, dict(SGD_, dtype=np.float16), ValueError, "Invalid dtype: float16"),
    (sgd_fused_step, dict(SGD_, dtype="no such dtype"), TypeError, "Invalid dtype: 'no such dtype'"),
    (adam_fused_step, dict(ADAM, dtype=np.float64, half=np.float16), ValueError, "Invalid dtype: float64 with half"),
    (adam_fused_step, dict(ADAM, dtype=np.float32, half=np.float32), ValueError, "Invalid half: float32"),
    (adam_fused_step, dict(ADAM, dtype=np.float32, half=True), TypeError, "Invalid half: True"),
    (adagrad_fused_step, dict(ADAGRAD, dtype=np.int32, half=None), ValueError, "Invalid dtype: int32"),
    (adagrad_fused_step, dict(ADAGRAD, dtype=np.float32, half="no such dtype"), TypeError, "Invalid half"),
], ids=["sgd-half", "sgd-bad-dtype", "adam-half-float64", "adam-half-float32", "adam-half-bool",
        "adagrad-int", "adagrad-bad-half"])
def test_fused_step_arguments_are_checked(make, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make(**kwargs)


# --------------------------------------------------------------------------------------
# The scalar tail's own C++ (torch's one-element loop): Adam's lerp for W = 1 and
# amsgrad's std::max; SGD's and Adagrad's tails on signed zeros
# --------------------------------------------------------------------------------------

BACKENDS = ["numpy", pytest.param("compiled", marks=pytest.mark.numba)]


def run_fused(optimizer: str, backend: str, arrays: list[np.ndarray], k) -> list[np.ndarray]:
    """One fused step of ``optimizer``'s NumPy kernel or compiled kernel on one parameter's
    arrays (its dtype; float16 / bfloat16 through float32 copies, rounded back after)."""
    dtype = arrays[0].dtype
    compute = np.dtype(np.float32) if is_half(dtype) else dtype
    update, factory, n_scratch, arity, _ = KERNELS[optimizer]
    work = [a.reshape(-1).astype(compute) for a in arrays]
    with np.errstate(invalid="ignore", divide="ignore"):
        if backend == "numpy":
            update(work, _blocks.whole_scratch((work[0].size,), compute, n_scratch), k)
        else:
            pytest.importorskip("numba")
            from numpy_optim import _compiled

            flags = tuple(value for value in k if isinstance(value, bool))
            constants = np.array([value for value in k if not isinstance(value, bool)], compute)
            _blocks.run_compiled(_compiled.kernel(factory, flags), [_blocks.table_row(work, arity)], constants)
    return [a.astype(dtype) for a in work]


def torch_fused_adam(torch, arrays: list[np.ndarray], step: int, *, decoupled: bool, **kwargs) -> list[np.ndarray]:
    """torch's ``Adam / AdamW(fused=True)`` step ``step`` on one parameter whose state is
    given: ``arrays`` is ``[param, grad, exp_avg, exp_avg_sq(, max_exp_avg_sq)]``."""
    dtype = arrays[0].dtype
    tensor = torch.nn.Parameter(to_torch(torch, arrays[0]))
    opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)([tensor], fused=True, **kwargs)
    names = ADAM_BUFFERS[:len(arrays) - 2]
    opt.state[tensor] = {"step": torch.tensor(float(step - 1)), **{
        name: to_torch(torch, a) for name, a in zip(names, arrays[2:])}}
    tensor.grad = to_torch(torch, arrays[1])
    opt.step()
    return [to_numpy(torch, tensor, dtype), arrays[1]] + [to_numpy(torch, opt.state[tensor][n], dtype) for n in names]


def adam_config(dtype: np.dtype, beta1: float, beta2: float = 0.5, *, step: int = 1, lr: float = 0.01,
                eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
                decoupled: bool = True):
    """torch's keyword arguments and the matching :class:`AdamFusedStep` for ``dtype`` parameters."""
    kwargs = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
    half = dtype if is_half(dtype) else None
    k = adam_fused_step(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled,
                        dtype=np.float32 if half is not None else dtype, half=half)
    return kwargs, k


def width_of(dtype: np.dtype) -> int:
    return lanes(np.dtype(np.float32) if is_half(dtype) else dtype, is_half(dtype))


def assert_same_bits(ours: list[np.ndarray], theirs: list[np.ndarray], names: tuple[str, ...], where: str) -> None:
    for name, a, b in zip(names, ours, theirs):
        assert a.tobytes() == b.tobytes(), f"{where}, {name}: {first_difference(a, b)}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_fused_adam_lerp_of_weight_one_gives_plus_zero_in_the_tail_minus_zero_in_the_body_as_torch(
        torch, dtype_name, backend):
    # beta1 = 0 (and 1e-9 in float32: W = float32(1 - 1e-9) = 1): torch's body computes
    # m = fma(W - 1, g - m, g) and its tail g - (g - m) * (1 - W), contracted to
    # fma(-(1 - W), g - m, g): with 1 - W = +0 the zero products have opposite signs, so a
    # zero gradient on a zero moment gives m = -0 in the body and +0 in the tail when
    # g - m is -0 (the parity harness's find: beta1 = 0, maximize, zero gradients). The
    # parameter (-0, with lr 0.01) shows m's sign: -0 - step * m / d.
    dtype = storage_dtype(dtype_name)
    width = width_of(dtype)
    zeros = [0.0, -0.0]
    for beta1 in (0.0, 1e-9):
        for maximize in (False, True):
            kwargs, k = adam_config(dtype, beta1, maximize=maximize)
            for g, m in [(g, m) for g in zeros + [1.0, -3.0] for m in zeros + [0.5]]:
                # p, g, m, v: a body, then a 3-element tail
                arrays = [np.full(width + 3, value, dtype) for value in (-0.0, g, m, 0.0)]
                theirs = torch_fused_adam(torch, arrays, 1, decoupled=True, **kwargs)
                ours = run_fused("AdamW", backend, arrays, k)
                where = f"{dtype_name} {backend}: beta1={beta1} maximize={maximize} g={g} m={m}"
                assert_same_bits(ours, theirs, ("param", "grad", "exp_avg", "exp_avg_sq"), where)
    # torch's quirk pinned, hand-computed: float64 beta1 = 0, g = -0, m = +0: d = -0 - 0 = -0.
    kwargs, k = adam_config(dtype, 0.0)
    arrays = [np.full(width + 1, value, dtype) for value in (1.0, -0.0, 0.0, 0.0)]
    theirs = torch_fused_adam(torch, arrays, 1, decoupled=True, **kwargs)
    m = theirs[2].astype(np.float32)
    assert np.signbit(m[:width]).all() and not np.signbit(m[width]), f"torch's exp_avg {m}: has torch changed?"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_fused_adam_high_weight_branch_tails_match_torch_over_steps(torch, dtype_name, backend):
    # 1 - beta1 >= 0.5 (torch's lerp "else" branch) on tensors that are all tail, body and
    # tail, or body only; gradients a third exact zeros of both signs; 12 steps each, every
    # array compared bit for bit after every step.
    dtype = storage_dtype(dtype_name)
    width = width_of(dtype)
    sizes = [1, width - 1, width, width + 1, 3 * width - 1, 67]
    rng = np.random.default_rng(11)
    for beta1, decoupled, amsgrad, maximize, weight_decay in [
        (0.0, True, False, True, 0.0), (0.0, False, True, False, 0.1), (0.2, True, True, False, 0.3),
        (0.5, False, False, True, 0.0), (0.3, True, True, True, 0.1),
    ]:
        states = [[np.asarray(rng.standard_normal(n)).astype(dtype)] + [np.zeros(n, dtype)] * (4 if amsgrad else 3)
                  for n in sizes]
        for step in range(1, 13):
            kwargs, k = adam_config(dtype, beta1, 0.9, step=step, weight_decay=weight_decay, amsgrad=amsgrad,
                                    maximize=maximize, decoupled=decoupled)
            for i, arrays in enumerate(states):
                n = arrays[0].size
                g = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 2)
                r = rng.random(n)
                arrays[1] = np.where(r < 0.15, 0.0, np.where(r < 0.3, -0.0, g)).astype(dtype)
                theirs = torch_fused_adam(torch, arrays, step, decoupled=decoupled, **kwargs)
                ours = run_fused("AdamW" if decoupled else "Adam", backend, arrays, k)
                where = (f"{dtype_name} {backend}: beta1={beta1} decoupled={decoupled} amsgrad={amsgrad} "
                         f"maximize={maximize} wd={weight_decay}, step {step}, {n} elements")
                assert_same_bits(ours, theirs, ("param", "grad") + ADAM_BUFFERS, where)
                states[i] = ours


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_fused_amsgrad_tail_keeps_the_old_maximum_where_v_is_nan_as_torch(torch, dtype_name, backend):
    # The body's maximum(max, v) is NaN where either is; the tail's std::max(max, v)
    # = (max < v ? v : max) keeps the old maximum where v is NaN, and divides by it: the
    # tail's parameter stays finite. (The NaNs' own bits are not torch's: compared as NaN.)
    dtype = storage_dtype(dtype_name)
    width = width_of(dtype)
    n = width + 2
    for beta1 in (0.9, 0.0):
        kwargs, k = adam_config(dtype, beta1, amsgrad=True)
        arrays = [np.full(n, value, dtype) for value in (1.0, 0.5, 0.25, np.nan, 2.0)]  # v is NaN, max 2
        theirs = torch_fused_adam(torch, arrays, 1, decoupled=True, **kwargs)
        ours = run_fused("AdamW", backend, arrays, k)
        maximum = theirs[4].astype(np.float32)
        assert np.isnan(maximum[:width]).all() and (maximum[width:] == 2.0).all(), f"torch's max_exp_avg_sq {maximum}"
        for name, a, b in zip(("param", "grad") + ADAM_BUFFERS, ours, theirs):
            where = f"{dtype_name} {backend} beta1={beta1} {name}: ours {a} torch {b}"
            a32, b32 = a.astype(np.float32), b.astype(np.float32)
            assert (np.isnan(a32) == np.isnan(b32)).all(), where
            finite = ~np.isnan(b32)
            assert a[finite].tobytes() == b[finite].tobytes(), where
        assert np.isfinite(ours[0][width:].astype(np.float32)).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer, dtype_name", [
    ("SGD", "float64"), ("SGD", "float32"),
    ("Adagrad", "float64"), ("Adagrad", "float32"), ("Adagrad", "float16"), ("Adagrad", "bfloat16"),
])
def test_fused_sgd_and_adagrad_signed_zeros_in_body_and_tail_match_torch(torch, optimizer, dtype_name, backend):
    # Their tails' C++ differs from the body in form only (p -= g * lr against
    # p += g * -lr, buf * mom + g * (1 - d) against fma(1 - d, g, buf * mom), -g against
    # g * -1): the same bits, zeros' signs included, measured here on every combination of
    # signed zeros in the parameter, the gradient and the buffer.
    dtype = storage_dtype(dtype_name)
    width = width_of(dtype)
    values = [0.0, -0.0, 1.0]
    combos = [(p, g, b) for p in values for g in values for b in values]
    if optimizer == "SGD":
        configs = [dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov,
                        maximize=maximize)
                   for lr in (0.1, 0.0) for momentum, dampening, nesterov in ((0.0, 0.0, False), (0.9, 1.0, False),
                                                                               (0.5, 0.0, True))
                   for wd in (0.0, 0.1) for maximize in (False, True)]
    else:
        configs = [dict(lr=lr, weight_decay=wd, eps=eps, maximize=maximize)
                   for lr in (0.1, 0.0) for wd in (0.0, 0.1) for eps in (1e-10, 1e-3) for maximize in (False, True)]
    for config in configs:
        for first in ((True, False) if optimizer == "SGD" and config["momentum"] else (True,)):
            tensors, arrays_list = [], []
            for p, g, b in combos:
                arrays = [np.full(width + 3, value, dtype) for value in (p, g, b)]  # body, then a 3-element tail
                arrays_list.append(arrays)
                tensors.append(torch.nn.Parameter(to_torch(torch, arrays[0])))
                tensors[-1].grad = to_torch(torch, arrays[1])
            if optimizer == "SGD":
                opt = torch.optim.SGD(tensors, fused=True, **config)
                if not first:  # a momentum buffer that exists: torch's is_first_step is False
                    for tensor, arrays in zip(tensors, arrays_list):
                        opt.state[tensor] = {"momentum_buffer": to_torch(torch, arrays[2])}
                k = sgd_fused_step(**config, first=first, dtype=dtype)
                names = ("param", "grad", "momentum_buffer")
            else:
                opt = torch.optim.Adagrad(tensors, fused=True, **config)
                for tensor, arrays in zip(tensors, arrays_list):
                    opt.state[tensor]["sum"] = to_torch(torch, arrays[2])
                half = dtype if is_half(dtype) else None
                k = adagrad_fused_step(step=1, lr_decay=0.0, **config, dtype=np.float32 if half else dtype, half=half)
                names = ("param", "grad", "sum")
            opt.step()
            for tensor, arrays, combo in zip(tensors, arrays_list, combos):
                theirs = [to_numpy(torch, tensor, dtype), arrays[1]]
                buffer = opt.state[tensor].get(names[2])
                if buffer is not None:
                    theirs.append(to_numpy(torch, buffer, dtype))
                ours = run_fused(optimizer, backend, arrays, k)
                where = f"{optimizer} {dtype_name} {backend} {config} first={first}, (p, g, buf) = {combo}"
                assert_same_bits(ours, theirs, names, where)
