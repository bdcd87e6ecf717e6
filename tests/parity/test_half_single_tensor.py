"""float16 and bfloat16 parameters with the default ``fused=False``: numpy_optim against torch's
single-tensor path (``foreach=False, fused=False``), bit for bit.

torch 2.13 runs each op of a single-tensor step on half tensors as one CPU kernel: load half,
compute in float32 ("opmath"), round to half when storing. The rules below were measured on
this machine (torch 2.13.0+cpu, capability AVX512) and the first group of tests pins each
of them against torch, on vector bodies and on scalar tails. ``f32(s)`` is a Python float
rounded to float32; ``h(x)`` is a float32 rounded to the half dtype (nearest, ties to even);
``fma32`` is a float32 multiply-add rounded once.

* ``a.mul_(s)``, ``a.div(s)`` with a Python scalar: ``h(a * f32(s))``, ``h(a / f32(s))``.
  NumPy's ``a * s`` rounds ``s`` to half first (0.999 -> 0.99902 in float16, 0.9 ->
  0.8984 in bfloat16).
* ``a.add(s)`` with a Python scalar: ``s`` rounded to half first, as NumPy does.
* ``a.add(b, alpha=s)``: ``alpha`` rounded to half first. The vector body (the first
  ``n - n % 32`` elements of the flattened tensor: torch's ``cpu_kernel_vec`` takes two
  16-half vectors per iteration) is ``h(fma32(b, alpha, a))``, two roundings (float32,
  then half); the scalar tail (the last ``n % 32``) is ``c10::Half`` arithmetic,
  ``h(a + h(alpha * b))``.
* ``a.lerp_(b, w)``: ``W = f32(w)``, ``d = f32(b) - f32(a)`` in float32, one float32 FMA:
  ``h(fma32(W, d, a))`` for ``|W| < 0.5``, else ``h(fma32(W - 1, d, b))``.
* ``a.addcmul_(b, c, value=v)``: ``h(fma32(f32(v) * b, c, a))`` (the product ``v * b``
  rounded to float32, then one FMA).
* ``a.addcdiv_(b, c, value=v)``: ``h((f32(v) * b) / c + a)``, each operation in float32.
* ``s / a`` (RAdam's adaptive factor): ``a.reciprocal() * s``, ``h(h(1 / a) * f32(s))``.
* ``sqrt``, ``a * b``, ``a / b``, ``a - b``, ``a + b``, ``maximum``, ``abs``, ``sign``:
  correctly rounded, as NumPy's half ufuncs.
* A Python float turned into half (``alpha``, ``add(s)``, ``full_like``, ``x[mask] = s``)
  goes through float32 (``c10::Half(float)``), NumPy's conversion is direct.

The tail position holds for tensors below 32768 elements (TensorIterator's grain): above
that torch splits the loop over threads and each chunk has its own tail.

The second group runs numpy_optim on float16 and bfloat16 parameters next to torch for 100
steps and compares parameters and state buffers after steps 1 and 100; the third isolates
one rule each through the smallest optimizer configuration that shows it. Where numpy_optim
did not follow a rule, the case names it. All eleven elementwise optimizers follow every rule
now (bit for bit, parameters and state), on both backends (RMSprop, Adadelta, Adamax, NAdam,
RAdam and ASGD through their NumPy kernels: their compiled kernels do not round to half).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import numpy_optim  # noqa: E402

CAPABILITY = torch.backends.cpu.get_cpu_capability()
pytestmark = [
    pytest.mark.skipif(
        CAPABILITY not in ("AVX2", "AVX512"),
        reason=f"torch fuses no multiply-adds on this CPU (capability {CAPABILITY}); the bitwise claim is for FMA CPUs",
    ),
    pytest.mark.filterwarnings("ignore:.*rounds to 0 in:RuntimeWarning"),
]

TAIL = 32  # torch's cpu_kernel_vec: 2 x Vectorized<Half> (16 lanes) per vector iteration


def _bfloat16() -> np.dtype:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    return np.dtype(ml_dtypes.bfloat16)


DTYPES = [pytest.param("float16", id="float16"), pytest.param("bfloat16", id="bfloat16")]


def half_dtype(name: str) -> np.dtype:
    return np.dtype(np.float16) if name == "float16" else _bfloat16()


# --------------------------------------------------------------------------------------
# Conversions and the rules as NumPy expressions
# --------------------------------------------------------------------------------------


def to_torch(array: np.ndarray) -> torch.Tensor:
    array = np.ascontiguousarray(array)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(array.copy())


def to_numpy(tensor: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(dtype).copy()
    if tensor.dtype == torch.float16:
        return tensor.numpy().copy()
    return tensor.numpy().astype(np.float32) if tensor.dim() == 0 else tensor.numpy().copy()


def f32(x: object) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


def h(x: object, dtype: np.dtype) -> np.ndarray:
    return np.asarray(x, np.float32).astype(dtype)


def scalar_to_half(s: float, dtype: np.dtype) -> np.float32:
    """torch's double -> half: through float32."""
    return np.float32(np.float32(s).astype(dtype))


def fma32(a: np.ndarray, b: object, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` (float32 operands) rounded to float32: the product is exact in float64
    and, for the data below (addends within 2**18 of the product), so is the sum."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(np.float32)


def rule_add_alpha(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """torch's ``a.add(b, alpha=alpha)`` on a flat half tensor."""
    al = scalar_to_half(alpha, a.dtype)
    out = h(fma32(f32(b), al, f32(a)), a.dtype)
    k = a.size - a.size % TAIL
    out[k:] = h(f32(a[k:]) + f32(h(al * f32(b[k:]), a.dtype)), a.dtype)
    return out


def rule_lerp(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    W, d = np.float32(w), f32(b) - f32(a)
    if abs(W) < 0.5:
        return h(fma32(d, W, f32(a)), a.dtype)
    return h(fma32(d, W - np.float32(1), f32(b)), a.dtype)


def rule_addcmul(a: np.ndarray, b: np.ndarray, c: np.ndarray, v: float) -> np.ndarray:
    return h(fma32(np.float32(v) * f32(b), f32(c), f32(a)), a.dtype)


def rule_addcdiv(a: np.ndarray, b: np.ndarray, c: np.ndarray, v: float) -> np.ndarray:
    return h((np.float32(v) * f32(b)) / f32(c) + f32(a), a.dtype)


def bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).view(np.uint16 if array.dtype.itemsize == 2 else np.uint32)


def assert_bits_equal(ours: np.ndarray, theirs: np.ndarray, where: str) -> None:
    """Bitwise equality (NaN equal to NaN, the zeros' signs told apart), or a message naming
    the first differing flat indices with both values and bits."""
    ours, theirs = np.asarray(ours).reshape(-1), np.asarray(theirs).reshape(-1)
    assert ours.dtype == theirs.dtype, f"{where}: dtype {ours.dtype} vs torch {theirs.dtype}"
    nan = np.isnan(ours.astype(np.float32)) & np.isnan(theirs.astype(np.float32))
    differ = np.flatnonzero((bits(ours) != bits(theirs)) & ~nan)
    if differ.size:
        shown = ", ".join(
            f"[{i}] ours {ours[i]} ({bits(ours)[i]:#06x}) torch {theirs[i]} ({bits(theirs)[i]:#06x})"
            for i in differ[:5]
        )
        raise AssertionError(f"{where}: {differ.size} of {ours.size} elements differ (n={ours.size}): {shown}")


def random_half(rng: np.random.Generator, n: int, dtype: np.dtype, positive: bool = False) -> np.ndarray:
    x = rng.standard_normal(n).astype(np.float32)
    return (np.abs(x) + np.float32(1e-3) if positive else x).astype(dtype)


# --------------------------------------------------------------------------------------
# 1. torch's rules, pinned against torch (body: 32 * 40 elements, tail: 31-element tensors)
# --------------------------------------------------------------------------------------

N_BODY = TAIL * 40


def body_and_tail(op, arrays: list[np.ndarray], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """torch's ``op`` on one tensor of N_BODY elements (all body) and on the same data cut
    into tensors of 31 elements (all tail), concatenated."""
    body = to_numpy(op(*[to_torch(a) for a in arrays]), dtype)
    tail = np.concatenate([
        to_numpy(op(*[to_torch(a[s:s + TAIL - 1]) for a in arrays]), dtype) for s in range(0, N_BODY, TAIL - 1)
    ])
    return body, tail


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("alpha", [0.9, 0.01, -0.001, 1 / 3])
def test_torch_half_add_alpha_body_fma_float32_tail_half_arithmetic(dtype_name: str, alpha: float) -> None:
    dtype = half_dtype(dtype_name)
    rng = np.random.default_rng(0)
    b = random_half(rng, N_BODY, dtype)
    # a near -alpha * b: the sum cancels, and the rounding of the product shows
    a = h(-(scalar_to_half(alpha, dtype) * f32(b)) * (1 + np.float32(2**-6) * rng.standard_normal(N_BODY)), dtype)
    body, tail = body_and_tail(lambda x, y: x.add(y, alpha=alpha), [a, b], dtype)
    al = scalar_to_half(alpha, dtype)
    assert_bits_equal(h(fma32(f32(b), al, f32(a)), dtype), body, "add(alpha) body = h(fma32(b, h(alpha), a))")
    assert_bits_equal(h(f32(a) + f32(h(al * f32(b), dtype)), dtype), tail, "add(alpha) tail = h(a + h(h(alpha) * b))")
    assert not np.array_equal(bits(body), bits(tail)), "the two rules must differ on this data"


def test_torch_half_add_alpha_body_rounds_twice() -> None:
    """1 + 2**-10 plus (2**-11 (1 + 3 * 2**-10)) (1 - 3 * 2**-10) = 1 + 3 * 2**-11 - 9 * 2**-31:
    just below a float16 tie, so it rounds once to 1 + 2**-10, but float32 rounds it onto the
    tie, which float16 then rounds to even, 1 + 2**-9: torch's vector body gives the latter."""
    a = np.full(TAIL, 1 + 2**-10, np.float16)
    b = np.full(TAIL, 1 - 3 * 2**-10, np.float16)
    alpha = 2**-11 * (1 + 3 * 2**-10)
    out = to_numpy(to_torch(a).add(to_torch(b), alpha=alpha), np.dtype(np.float16))
    assert float(out[0]) == 1 + 2**-9
    assert float(np.float16(float(a[0]) + alpha * float(b[0]))) == 1 + 2**-10  # the correctly rounded sum


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("s", [0.999, 0.9, 0.1, 1 - 0.01 * 0.1])
def test_torch_half_mul_and_div_by_python_scalar_use_float32_scalar(dtype_name: str, s: float) -> None:
    dtype = half_dtype(dtype_name)
    a = random_half(np.random.default_rng(1), N_BODY, dtype)
    for name, op, rule in [
        ("mul_", lambda x: x.mul_(s), h(f32(a) * np.float32(s), dtype)),
        ("div", lambda x: x.div(s), h(f32(a) / np.float32(s), dtype)),
    ]:
        body, tail = body_and_tail(op, [a], dtype)
        assert_bits_equal(rule, body, f"{name}({s}) body = h(a op f32(s))")
        assert_bits_equal(rule, tail, f"{name}({s}) tail = h(a op f32(s))")


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_torch_half_mul_by_python_scalar_differs_from_numpy_half_scalar(dtype_name: str) -> None:
    dtype = half_dtype(dtype_name)
    a = random_half(np.random.default_rng(2), N_BODY, dtype)
    out = to_numpy(to_torch(a).mul_(0.9), dtype)
    assert (bits(out) != bits(a * 0.9)).any()  # NumPy: 0.9 rounded to half first


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("s", [1e-3, 0.9, 1e-8])
def test_torch_half_add_python_scalar_rounds_scalar_to_half(dtype_name: str, s: float) -> None:
    dtype = half_dtype(dtype_name)
    a = random_half(np.random.default_rng(3), N_BODY, dtype, positive=True)
    body, tail = body_and_tail(lambda x: x.add(s), [a], dtype)
    rule = h(f32(a) + scalar_to_half(s, dtype), dtype)
    assert_bits_equal(rule, body, f"add({s}) body")
    assert_bits_equal(rule, tail, f"add({s}) tail")


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("w", [0.1, 0.001, 0.01, 0.7, 0.5])
def test_torch_half_lerp_float32_weight_difference_and_fma(dtype_name: str, w: float) -> None:
    dtype = half_dtype(dtype_name)
    rng = np.random.default_rng(4)
    a = random_half(rng, N_BODY, dtype)
    b = h(f32(a) + f32(random_half(rng, N_BODY, dtype)) * np.float32(0.125), dtype)
    body, tail = body_and_tail(lambda x, y: x.lerp_(y, w), [a, b], dtype)
    rule = rule_lerp(a, b, w)
    assert_bits_equal(rule, body, f"lerp({w}) body")
    assert_bits_equal(rule, tail, f"lerp({w}) tail")


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("w", [0.1, 0.7])
def test_torch_half_lerp_differs_from_half_weight_and_half_difference(dtype_name: str, w: float) -> None:
    dtype = half_dtype(dtype_name)
    rng = np.random.default_rng(4)
    a, b = random_half(rng, N_BODY, dtype), random_half(rng, N_BODY, dtype)
    out = to_numpy(to_torch(a).lerp_(to_torch(b), w), dtype)
    d, W = f32(h(f32(b) - f32(a), dtype)), scalar_to_half(w, dtype)
    halfway = h(fma32(d, W, f32(a)) if W < 0.5 else fma32(d, W - 1, f32(b)), dtype)
    assert (bits(halfway) != bits(out)).any()


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("v", [1.0, -1.0, 0.001, 1 - 0.999, 0.1])
def test_torch_half_addcmul_product_float32_then_one_fma(dtype_name: str, v: float) -> None:
    dtype = half_dtype(dtype_name)
    rng = np.random.default_rng(5)
    b, c = random_half(rng, N_BODY, dtype), random_half(rng, N_BODY, dtype)
    a = h(-(np.float32(v) * f32(b) * f32(c)) * (1 + np.float32(2**-8) * rng.standard_normal(N_BODY)), dtype)
    body, tail = body_and_tail(lambda x, y, z: x.addcmul_(y, z, value=v), [a, b, c], dtype)
    rule = rule_addcmul(a, b, c, v)
    assert_bits_equal(rule, body, f"addcmul(value={v}) body = h(fma32(f32(v) * b, c, a))")
    assert_bits_equal(rule, tail, f"addcmul(value={v}) tail")


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("v", [1.0, -0.001, 0.3, -1e-4])
def test_torch_half_addcdiv_float32_product_quotient_sum(dtype_name: str, v: float) -> None:
    dtype = half_dtype(dtype_name)
    rng = np.random.default_rng(6)
    b, c = random_half(rng, N_BODY, dtype), random_half(rng, N_BODY, dtype, positive=True)
    a = h(-((np.float32(v) * f32(b)) / f32(c)) * (1 + np.float32(2**-8) * rng.standard_normal(N_BODY)), dtype)
    body, tail = body_and_tail(lambda x, y, z: x.addcdiv_(y, z, value=v), [a, b, c], dtype)
    rule = rule_addcdiv(a, b, c, v)
    assert_bits_equal(rule, body, f"addcdiv(value={v}) body = h((f32(v) * b) / c + a)")
    assert_bits_equal(rule, tail, f"addcdiv(value={v}) tail")
    assert (bits(rule) != bits(a + (b * v) / c)).any()  # NumPy half ops, v rounded to half, differ


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("s", [0.999**0.5, 0.3])
def test_torch_half_python_scalar_over_tensor_is_reciprocal_times_scalar(dtype_name: str, s: float) -> None:
    dtype = half_dtype(dtype_name)
    a = random_half(np.random.default_rng(7), N_BODY, dtype, positive=True)
    body, tail = body_and_tail(lambda x: s / x, [a], dtype)
    rule = h(f32(h(np.float32(1) / f32(a), dtype)) * np.float32(s), dtype)
    assert_bits_equal(rule, body, f"{s} / a body = h(h(1 / a) * f32(s))")
    assert_bits_equal(rule, tail, f"{s} / a tail")


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_torch_half_unary_and_binary_ops_correctly_rounded(dtype_name: str) -> None:
    dtype = half_dtype(dtype_name)
    rng = np.random.default_rng(8)
    a, b = random_half(rng, N_BODY, dtype), random_half(rng, N_BODY, dtype)
    p = random_half(rng, N_BODY, dtype, positive=True)
    for name, op, rule in [
        ("sqrt", lambda: to_torch(p).sqrt(), h(np.sqrt(f32(p)), dtype)),
        ("mul", lambda: to_torch(a) * to_torch(b), h(f32(a) * f32(b), dtype)),
        ("div", lambda: to_torch(a) / to_torch(p), h(f32(a) / f32(p), dtype)),
        ("sub", lambda: to_torch(a) - to_torch(b), h(f32(a) - f32(b), dtype)),
        ("maximum", lambda: torch.maximum(to_torch(a), to_torch(b)), np.maximum(a, b)),
    ]:
        assert_bits_equal(rule, to_numpy(op(), dtype), name)


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_torch_half_python_float_to_half_goes_through_float32(dtype_name: str) -> None:
    dtype = half_dtype(dtype_name)
    s = 1 + (2**-11 if dtype == np.float16 else 2**-8) + 2**-40  # just above a half tie; float32 rounds it onto the tie
    assert float(np.asarray(s).astype(dtype)) > 1  # direct rounding: up
    zeros = to_torch(np.zeros(3, dtype))
    assert float(to_numpy(zeros.add(s), dtype)[0]) == 1.0
    assert float(to_numpy(torch.full_like(zeros, s), dtype)[0]) == 1.0
    assert float(to_numpy(zeros.add(to_torch(np.ones(3, dtype)), alpha=s), dtype)[0]) == 1.0


# --------------------------------------------------------------------------------------
# 2. numpy_optim trajectories against torch: parameters and state after steps 1 and 100
# --------------------------------------------------------------------------------------

#: The rules, one each (numpy_optim's kernels follow all of them; a case names the ones it exercises).
MUL = "mul_(s) on half: h(a * f32(s)), the scalar in float32 (numpy_optim rounds s to half)"
DIV = "div(s) on half: h(a / f32(s)), the scalar in float32 (numpy_optim rounds s to half)"
ADD_TAIL = "add(b, alpha) on float16: the last n % 32 elements are h(a + h(h(alpha) * b)) (numpy_optim: one fma)"
ADD_BODY_BF16 = ("add(b, alpha) on bfloat16: the first n - n % 32 elements are h(fma32(b, h(alpha), a)) "
                 "(numpy_optim's fma rounds the product to bfloat16 first)")
ADD_BODY_TWICE = "add(b, alpha) on float16: body h(fma32(...)), two roundings, float32 then half (numpy_optim: one)"
LERP = "lerp_ on half: f32 weight, f32 difference, one fma32, one rounding (numpy_optim: half weight, half difference)"
ADDCMUL = "addcmul_ on half: h(fma32(f32(v) * b, c, a)) (numpy_optim rounds v and v * b to half)"
ADDCDIV = "addcdiv_ on half: h((f32(v) * b) / c + a) in float32 (numpy_optim: three half roundings, v in half)"
RDIV = "s / a on half: h(h(1 / a) * f32(s)) (numpy_optim: s rounded to half)"

#: Sizes with a vector body, a scalar tail, or both (0-d and n < 32 are all tail).
SHAPES = [(), (1,), (7,), (31,), (32,), (33,), (4, 25), (1000,)]
STEPS = 100


def _config(optimizer: str, hyper: dict, dtype_name: str, reasons: dict) -> pytest.param:
    """A trajectory case; ``reasons`` maps a dtype name to the rules that still break it."""
    label = ",".join(f"{k}={v}" for k, v in hyper.items())  # (reasons: the rules the case exercises)
    return pytest.param(optimizer, hyper, dtype_name, id=f"{optimizer}-{label}-{dtype_name}")


def _both(*rules: str, f16: tuple = (), bf16: tuple = ()) -> dict:
    return {"float16": (*rules, *f16), "bfloat16": (*rules, *bf16)}


TRAJECTORIES = [
    _config(name, hyper, dtype_name, reasons)
    for name, hyper, reasons in [
        ("SGD", {"lr": 0.01}, {}),
        ("SGD", {"lr": 0.01, "momentum": 0.9}, {}),
        ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}, {}),
        ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, {}),
        ("SGD", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}, {}),
        ("Adam", {"lr": 1e-3, "eps": 1e-4}, {}),
        ("Adam", {"lr": 1e-2, "eps": 1e-3, "weight_decay": 0.01, "amsgrad": True}, {}),
        ("Adam", {"lr": 1e-3, "betas": (0.8, 0.99), "eps": 1e-4, "maximize": True}, {}),
        ("AdamW", {"lr": 1e-3, "eps": 1e-4}, {}),
        ("AdamW", {"lr": 1e-2, "eps": 1e-3, "weight_decay": 0.1, "amsgrad": True}, {}),
        ("Adagrad", {"lr": 0.01}, {}),
        ("Adagrad", {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1,
                     "eps": 1e-4}, {}),
        ("RMSprop", {"lr": 1e-3, "eps": 1e-4}, _both(MUL, ADDCMUL, ADDCDIV)),
        ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "eps": 1e-4, "centered": True, "momentum": 0.9, "weight_decay": 0.01},
         _both(MUL, LERP, ADDCMUL, ADDCDIV, f16=(ADD_TAIL, ADD_BODY_TWICE), bf16=(ADD_BODY_BF16,))),
        ("Adadelta", {"lr": 1.0, "eps": 1e-4}, _both(MUL, ADDCMUL)),
        ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-3, "weight_decay": 0.01},
         _both(MUL, ADDCMUL, f16=(ADD_TAIL,), bf16=(ADD_BODY_BF16,))),
        ("Adamax", {"lr": 2e-3}, _both(LERP, ADDCDIV, f16=(MUL,))),
        ("Adamax", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.01},
         _both(MUL, LERP, ADDCDIV, bf16=(ADD_BODY_BF16,))),
        ("NAdam", {"lr": 2e-3, "eps": 1e-4}, _both(DIV, LERP, ADDCMUL, ADDCDIV, f16=(MUL,))),
        ("NAdam", {"lr": 2e-3, "eps": 1e-4, "weight_decay": 0.01, "decoupled_weight_decay": True},
         _both(DIV, LERP, ADDCMUL, ADDCDIV, f16=(MUL,))),
        ("RAdam", {"lr": 1e-3, "eps": 1e-4}, _both(MUL, DIV, LERP, ADDCMUL, RDIV)),
        ("RAdam", {"lr": 1e-3, "eps": 1e-4, "weight_decay": 0.01}, _both(MUL, DIV, LERP, ADDCMUL, RDIV)),
        ("ASGD", {"lr": 0.01}, _both(f16=(ADD_TAIL,), bf16=(ADD_BODY_BF16,))),
        ("ASGD", {"lr": 0.01, "lambd": 1e-2, "t0": 10.0, "weight_decay": 0.01},
         _both(f16=(ADD_TAIL, ADD_BODY_TWICE), bf16=(ADD_BODY_BF16,))),
        ("Rprop", {"lr": 0.01}, {}),
        ("Rprop", {"lr": 0.001, "etas": (0.3, 1.5), "step_sizes": (1e-4, 0.1)}, {}),
    ]
    for dtype_name in ("float16", "bfloat16")
]

_FUSED_KEYWORD = {"SGD", "Adam", "AdamW", "Adagrad"}


def torch_optimizer(name: str, tensors: list, hyper: dict):
    keywords = {"foreach": False, **({"fused": False} if name in _FUSED_KEYWORD else {})}
    return getattr(torch.optim, name)(tensors, **hyper, **keywords)


def run_pair(name: str, hyper: dict, dtype: np.dtype, shapes: list, steps: int, seed: int, check_at: tuple):
    """Both optimizers on the same half parameters and gradients (drawn per step, open loop);
    at each step in ``check_at`` every parameter and state buffer compared bit for bit."""
    rng = np.random.default_rng(seed)
    params = [random_half(rng, int(np.prod(s)), dtype).reshape(s) for s in shapes]
    grads = [np.zeros_like(p) for p in params]
    tensors = [to_torch(p) for p in params]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # eps rounding to 0 in float16: torch does the same
        ours = getattr(numpy_optim, name)([{"params": p, "grad": g} for p, g in zip(params, grads)], **hyper)
    theirs = torch_optimizer(name, tensors, hyper)
    for step in range(1, steps + 1):
        for g, t in zip(grads, tensors):
            g[...] = random_half(rng, g.size, dtype).reshape(g.shape)
            t.grad = to_torch(g)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow / 0 / 0 in float16, as in torch
            ours.step()
        theirs.step()
        if step not in check_at:
            continue
        for i, (p, t) in enumerate(zip(params, tensors)):
            where = f"{name}({hyper}) {dtype} step {step} params[{i}] shape {p.shape} seed {seed}"
            assert_bits_equal(p, to_numpy(t, dtype), where)
            for key, value in theirs.state[t].items():
                if key == "step" or key not in ours.state[i]:
                    continue
                mine = np.asarray(ours.state[i][key])
                assert_bits_equal(mine, to_numpy(value, mine.dtype), f"{where} state[{key!r}]")


@pytest.mark.parametrize(("name", "hyper", "dtype_name"), TRAJECTORIES)
def test_half_trajectory_bitwise_torch_single_tensor(name: str, hyper: dict, dtype_name: str) -> None:
    run_pair(name, hyper, half_dtype(dtype_name), SHAPES, STEPS, seed=0, check_at=(1, STEPS))


# --------------------------------------------------------------------------------------
# 3. One rule each, through the smallest optimizer configuration that shows it (SGD, Adam,
#    AdamW and Adagrad follow every rule; ASGD and Adamax not yet)
# --------------------------------------------------------------------------------------


def one_step(name: str, hyper: dict, dtype: np.dtype, shapes: list, steps: int = 1, seed: int = 0):
    run_pair(name, hyper, dtype, shapes, steps, seed, check_at=(steps,))


def _dtypes_for(rule: str, *dtypes: str) -> list:
    """Both dtypes (``rule``, ``dtypes``: the rule the test isolates, and where it showed before
    numpy_optim followed it)."""
    return [pytest.param(d, id=d) for d in ("float16", "bfloat16")]


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_sgd_step_vector_body_is_fma32_then_half(dtype_name: str) -> None:
    """``param.add_(grad, alpha=-lr)`` on 1024-element tensors: vector body only."""
    one_step("SGD", {"lr": 0.01}, half_dtype(dtype_name), [(1024,), (32, 8)])


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_sgd_step_scalar_tail_is_half_arithmetic(dtype_name: str) -> None:
    """``param.add_(grad, alpha=-lr)`` on tensors of 31 elements (and 0-d): scalar tail only."""
    one_step("SGD", {"lr": 0.01}, half_dtype(dtype_name), [(31,)] * 20 + [()] * 8)


def test_sgd_step_float16_body_rounds_twice() -> None:
    """The case of test_torch_half_add_alpha_body_rounds_twice through SGD: param 1 + 2**-10,
    grad -(1 - 3 * 2**-10), lr 2**-11 (1 + 3 * 2**-10); torch gives 1 + 2**-9."""
    param = np.full(TAIL, 1 + 2**-10, np.float16)
    grad = np.full(TAIL, -(1 - 3 * 2**-10), np.float16)
    lr = 2**-11 * (1 + 3 * 2**-10)
    numpy_optim.SGD([{"params": param, "grad": grad}], lr=lr).step()
    assert (param == np.float16(1 + 2**-9)).all(), param[0]


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_sgd_momentum_buffer_mul_by_float32_momentum(dtype_name: str) -> None:
    """Step 2's ``buf.mul_(0.9).add_(grad)`` (alpha 1: exact-rounded in both): the momentum
    buffer shows ``mul_`` alone (parameters compared too, 1024 elements: body only)."""
    one_step("SGD", {"lr": 0.01, "momentum": 0.9}, half_dtype(dtype_name), [(1024,)], steps=2)


@pytest.mark.parametrize("dtype_name", _dtypes_for(LERP, "float16", "bfloat16"))
def test_adamax_first_moment_lerp_float32(dtype_name: str) -> None:
    """Adamax after one step with ``lr=0``: ``exp_avg = lerp(0, g, 0.1)`` in float32 with
    the float32 weight, the parameters unchanged (the update is 0)."""
    one_step("Adamax", {"lr": 0.0}, half_dtype(dtype_name), [(1024,)])


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_adam_second_moment_addcmul_float32(dtype_name: str) -> None:
    """Adam (``betas=(0, 0.999)``, ``lr=0``) after one step: ``exp_avg = g`` exactly (lerp
    with weight 1), ``exp_avg_sq = h(fma32(f32(0.001) * g, g, 0))`` (``mul_(beta2)`` of zeros
    is 0 either way) and the parameters unchanged: only addcmul can differ."""
    one_step("Adam", {"lr": 0.0, "betas": (0.0, 0.999), "eps": 1e-3}, half_dtype(dtype_name), [(1024,)])


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_adagrad_sum_addcmul_value_one(dtype_name: str) -> None:
    """Adagrad's ``sum.addcmul_(g, g, value=1)`` from 0.1, with ``lr=0`` (parameters unchanged)."""
    one_step("Adagrad", {"lr": 0.0, "initial_accumulator_value": 0.1}, half_dtype(dtype_name), [(1024,)])


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_adagrad_param_addcdiv_float32(dtype_name: str) -> None:
    """Adagrad's ``param.addcdiv_(g, std, value=-lr)`` (its sum agrees in float16)."""
    one_step("Adagrad", {"lr": 0.01}, half_dtype(dtype_name), [(1024,)])


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_adamw_decay_mul_by_float32_factor(dtype_name: str) -> None:
    """AdamW's ``param.mul_(1 - lr * wd)`` alone: ``lr=0.5``, ``wd=0.2``, zero gradients
    (exp_avg stays 0, so the Adam update is 0 / (0 + eps) = 0)."""
    dtype = half_dtype(dtype_name)
    param = random_half(np.random.default_rng(9), 1024, dtype)
    grad = np.zeros_like(param)
    tensor = to_torch(param)
    tensor.grad = to_torch(grad)
    hyper = {"lr": 0.5, "weight_decay": 0.2, "eps": 1e-3}
    numpy_optim.AdamW([{"params": param, "grad": grad}], **hyper).step()
    torch_optimizer("AdamW", [tensor], hyper).step()
    assert_bits_equal(param, to_numpy(tensor, dtype), "AdamW decay 0.9")


@pytest.mark.parametrize("dtype_name", _dtypes_for(ADD_TAIL, "float16"))
def test_asgd_step_scalar_tail_is_half_arithmetic(dtype_name: str) -> None:
    """ASGD's ``param.add_(grad, alpha=-eta)`` (``lambd=0``: no shrinking) on tensors of 31
    elements: scalar tail only (numpy_optim's bfloat16 fma, two roundings, is the tail rule)."""
    one_step("ASGD", {"lr": 0.01, "lambd": 0.0}, half_dtype(dtype_name), [(31,)] * 20)


@pytest.mark.parametrize("dtype_name", _dtypes_for(ADD_BODY_BF16, "bfloat16"))
def test_asgd_step_vector_body_is_fma32_then_half(dtype_name: str) -> None:
    """The same on 1024 elements: vector body only."""
    one_step("ASGD", {"lr": 0.01, "lambd": 0.0}, half_dtype(dtype_name), [(1024,)])


def test_rprop_half_matches_torch_bitwise_over_seeds() -> None:
    """Rprop has no rounded scalar and every product is exact: bit for bit in both dtypes, more seeds."""
    for dtype_name in ("float16", "bfloat16"):
        for seed in (1, 2):
            run_pair("Rprop", {"lr": 0.01}, half_dtype(dtype_name), [(33,), (100,)], 50, seed, check_at=(1, 50))
