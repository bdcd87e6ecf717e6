"""Rounding float32 to float16 / bfloat16 precision (numpy_optim/_fma.py, numpy_optim/_compiled.py).

* The reference scalar forms ``round_to_float16`` / ``round_to_bfloat16`` against hand-computed
  values and NumPy's / ml_dtypes' casts; ``round_half_`` (arrays, in place, through a work
  array) against the casts, and its refusals.
* The numba implementations (integer rounding of the float32 bits) against the casts bit for
  bit: on a strided sweep of 2**26 float32 bit patterns over every exponent, and on every
  tie at every float16 / bfloat16 exponent (subnormal ties too), their float32 neighbours,
  the overflow edge, zeros, infinities and NaNs. NaNs are compared by NaN-ness and sign
  (the casts' payloads differ: NumPy can keep a signaling one); the numba result is
  the quiet NaN 0x7FC00000 with the sign, as the reference scalar forms give.
* The compiled loop has no fast-math and vectorizes.

Tests marked ``numba`` need numba; bfloat16 cases need ml_dtypes.
"""

from __future__ import annotations

import functools
import re
import tracemalloc

import numpy as np
import pytest

from numpy_optim import _fma

FLOAT16, BFLOAT16 = "float16", "bfloat16"
STORAGES = [pytest.param(FLOAT16, id=FLOAT16), pytest.param(BFLOAT16, id=BFLOAT16)]


def _storage_dtype(storage: str) -> np.dtype:
    if storage == BFLOAT16:
        ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes (the optional extra)")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(np.float16)


def _reference(storage: str):
    return {FLOAT16: _fma.round_to_float16, BFLOAT16: _fma.round_to_bfloat16}[storage]


def f32(bits) -> np.ndarray:
    """float32 values from (a list or array of) bit patterns."""
    return np.asarray(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)


def bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def cast(x: np.ndarray, storage: str) -> np.ndarray:
    """The oracle: NumPy's / ml_dtypes' cast to the storage dtype and back."""
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(_storage_dtype(storage)).astype(np.float32)


def mismatches(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Indices where ``got`` is not ``want`` bit for bit; NaNs agree when both are NaN of one sign."""
    nan = np.isnan(want)
    same = np.where(nan, np.isnan(got) & (np.signbit(got) == np.signbit(want)), bits(got) == bits(want))
    return np.flatnonzero(~same)


def describe(x, got, want, where: str) -> str:
    bad = mismatches(got, want)
    if not bad.size:
        return ""
    lines = [
        f"  x=0x{int(bits(x)[i]):08x} ({x[i]!r}): got 0x{int(bits(got)[i]):08x} ({got[i]!r}), "
        f"want 0x{int(bits(want)[i]):08x} ({want[i]!r})"
        for i in bad[:8]
    ]
    return f"{where}: {bad.size} of {x.size} differ:\n" + "\n".join(lines)


# --------------------------------------------------------------------------------------
# The boundary cases
# --------------------------------------------------------------------------------------


def _neighbours(patterns: list[int]) -> list[int]:
    """Each pattern, its float32 neighbours (one ulp either way) and the negatives of all."""
    out = [p + k for p in patterns for k in (-1, 0, 1)]
    return [p for p in out if 0 <= p <= 0x7FFFFFFF] + [p | 0x80000000 for p in out if 0 <= p <= 0x7FFFFFFF]


def float16_boundaries() -> np.ndarray:
    """Every float16 tie (halfway between two float16 numbers) at every exponent, first and
    last of each binade: for 2**k, k = -14..15, with spacing s = 2**(k-10), the ties 2**k + s/2
    (to even: down), 2**k + 3s/2 (up) and 2**(k+1) - s/2 (up, carrying into the exponent);
    every subnormal tie (j + 1/2) 2**-24, j = 0..1023; the overflow edge 65504, 65519.99,
    65520; the smallest subnormals of float32 and float16; all with their float32 neighbours
    and negatives."""
    values = [2.0**k + f * 2.0 ** (k - 10) for k in range(-14, 16) for f in (0.5, 1.5)]
    values += [2.0 ** (k + 1) - 2.0 ** (k - 11) for k in range(-14, 16)]
    values += [(j + 0.5) * 2.0**-24 for j in range(1024)]
    values += [65504.0, 65519.99, 65520.0, 65536.0, 2.0**-24, 2.0**-25, 2.0**-26, 2.0**-14, 2.0**-149, 2.0**-126]
    patterns = [int(bits(v)) for v in values] + [0, 1, 0x7F7FFFFF]
    return f32(_neighbours(patterns))


def bfloat16_boundaries() -> np.ndarray:
    """At every float32 exponent (subnormals' too), the bfloat16 ties ``...8000`` with an even
    (down) and an odd (up) kept part and the binade's last tie ``...7F8000`` (up, carrying),
    with neighbours and negatives; the largest finite float32s, which round to inf."""
    patterns = [e << 23 | low for e in range(255) for low in (0x8000, 0x18000, 0x7F8000, 0x10000)]
    return f32(_neighbours(patterns + [0, 1, 0x7F7F7FFF, 0x7F7FFFFF]))


SPECIALS = f32([0x7F800000, 0xFF800000, 0x00000000, 0x80000000, 0x7FC00000, 0xFFC00000, 0x7F800001,
                0xFF800001, 0x7FBFFFFF, 0xFFA00123, 0x7FFFFFFF, 0xFFFFFFFF])


def boundaries(storage: str) -> np.ndarray:
    cases = float16_boundaries() if storage == FLOAT16 else bfloat16_boundaries()
    return np.concatenate([cases, SPECIALS])


# Hand-computed: x, float16(x), bfloat16(x).
HAND = [
    pytest.param(1.0 + 2.0**-11, 1.0, 1.0, id="float16-tie-to-even-down"),
    pytest.param(1.0 + 3 * 2.0**-11, 1.0 + 2.0**-9, 1.0, id="float16-tie-to-even-up"),
    pytest.param(2.0 - 2.0**-11, 2.0, 2.0, id="float16-carry-into-exponent"),
    pytest.param(65504.0, 65504.0, 65536.0, id="float16-max"),
    pytest.param(65519.99, 65504.0, 65536.0, id="below-the-float16-overflow-tie"),
    pytest.param(65520.0, np.inf, 65536.0, id="float16-overflow-tie"),
    pytest.param(-65520.0, -np.inf, -65536.0, id="negative-float16-overflow"),
    pytest.param(2.0**-25, 0.0, 2.0**-25, id="float16-smallest-subnormal-tie-to-zero"),
    pytest.param(-(2.0**-25), -0.0, -(2.0**-25), id="negative-tie-to-minus-zero"),
    pytest.param(2.0**-25 * (1 + 2.0**-23), 2.0**-24, 2.0**-25, id="just-above-half-the-smallest-subnormal"),
    pytest.param(3 * 2.0**-25, 2.0**-23, 3 * 2.0**-25, id="float16-subnormal-tie-to-even-up"),
    pytest.param(5 * 2.0**-25, 2.0**-23, 5 * 2.0**-25, id="float16-subnormal-tie-to-even-down"),
    pytest.param(2.0**-14 - 2.0**-25, 2.0**-14, 2.0**-14, id="subnormal-carry-to-smallest-normal"),
    pytest.param(1.0 + 2.0**-8, 1.0 + 2.0**-8, 1.0, id="bfloat16-tie-to-even-down"),
    pytest.param(1.0 + 3 * 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-6, id="bfloat16-tie-to-even-up"),
    pytest.param(float(f32(0x00010000 | 0x8000)), 0.0, float(f32(0x00010000 * 2)), id="bfloat16-subnormal-tie-up"),
    pytest.param(float(f32(0x00008000)), 0.0, 0.0, id="bfloat16-subnormal-tie-to-zero"),
    pytest.param(float(f32(0x7F7FFFFF)), np.inf, np.inf, id="float32-max-overflows-bfloat16"),
    pytest.param(-0.0, -0.0, -0.0, id="minus-zero"),
    pytest.param(-np.inf, -np.inf, -np.inf, id="minus-inf"),
]


# --------------------------------------------------------------------------------------
# 1. The reference scalar forms and round_half_
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("x, want16, want_bf16", HAND)
@pytest.mark.parametrize("storage", STORAGES)
def test_reference_rounding_matches_hand_computed_values(storage, x, want16, want_bf16):
    _storage_dtype(storage)
    want = np.float32(want16 if storage == FLOAT16 else want_bf16)
    got = _reference(storage)(np.float32(x))
    assert isinstance(got, np.float32), f"{storage}({x!r}) returned {type(got).__name__}"
    assert bits(got) == bits(want), f"{storage}({x!r}): got {got!r} (0x{int(bits(got)):08x}), want {want!r}"


@pytest.mark.parametrize("storage", STORAGES)
def test_reference_rounding_is_the_cast_on_every_boundary_case(storage):
    x = boundaries(storage)
    got = np.array([_reference(storage)(v) for v in x], np.float32)
    message = describe(x, got, cast(x, storage), f"_fma.round_to_{storage}")
    assert not message, message
    nan = np.isnan(x)
    assert nan.sum() == 8 and (bits(got[nan]) & 0x7FFFFFFF == 0x7FC00000).all(), (
        f"NaNs are not the quiet NaN 0x7FC00000: {[hex(int(b)) for b in bits(got[nan])]}"
    )


@pytest.mark.parametrize("storage", STORAGES)
def test_round_half_rounds_in_place_through_the_work_array_as_the_cast(storage):
    dtype = _storage_dtype(storage)
    x = boundaries(storage)
    want = cast(x, storage)
    work = np.empty(x.shape, dtype)
    y = x.copy()
    _fma.round_half_(y, dtype, work)
    message = describe(x, y, want, f"round_half_(storage={storage})")
    assert not message, message
    assert bits(work.astype(np.float32)).tolist() == bits(y).tolist(), "work does not hold the rounded values"

    big = np.random.default_rng(0).standard_normal((256, 1024)).astype(np.float32)
    want_big = cast(big, storage)
    work = np.empty(big.shape, dtype)
    tracemalloc.start()
    try:
        _fma.round_half_(big, dtype, work)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not mismatches(big.reshape(-1), want_big.reshape(-1)).size, "a 256x1024 array is not the cast"
    assert peak < big.nbytes // 8, f"round_half_ allocated {peak} bytes for a {big.nbytes}-byte array"


@pytest.mark.parametrize(
    "make, error, match",
    [
        pytest.param(lambda d: (np.ones(3, np.float32), np.float32, np.empty(3, np.float32)), ValueError,
                     "Invalid storage dtype: float32", id="storage-float32"),
        pytest.param(lambda d: (np.ones(3, np.float64), d, np.empty(3, d)), TypeError,
                     "x must be a float32 ndarray, got ndarray float64", id="x-float64"),
        pytest.param(lambda d: ([1.0, 2.0, 3.0], d, np.empty(3, d)), TypeError,
                     "x must be a float32 ndarray, got list", id="x-list"),
        pytest.param(lambda d: (np.ones(3, np.float32), d, np.empty(4, d)), ValueError,
                     r"Invalid work array: \w+ \(4,\) \(expected \w+ \(3,\)\)", id="work-shape"),
        pytest.param(lambda d: (np.ones(3, np.float32), d, np.empty(3, np.float32)), ValueError,
                     r"Invalid work array: float32 \(3,\)", id="work-dtype"),
        pytest.param(lambda d: (np.ones(3, np.float32), d, None), ValueError,
                     "Invalid work array: NoneType", id="work-missing"),
    ],
)
@pytest.mark.parametrize("storage", STORAGES)
def test_round_half_refuses_bad_arguments_before_touching_x(storage, make, error, match):
    x, dtype, work = make(_storage_dtype(storage))
    if isinstance(x, np.ndarray):
        x[...] = 1.0 + 2.0**-12  # would round to 1.0 in either half type
    before = np.array(x, np.float64)
    with pytest.raises(error, match=match):
        _fma.round_half_(x, dtype, work)
    assert np.array_equal(np.array(x, np.float64), before), "a refused call modified x"


# --------------------------------------------------------------------------------------
# 2. The numba implementations
# --------------------------------------------------------------------------------------


@functools.cache
def _loops():
    """njit loops applying the scalar forms elementwise (compiled once per session)."""
    import numba

    from numpy_optim import _compiled  # registers the numba implementations

    assert "fastmath" not in _compiled.JIT_OPTIONS
    round_to_float16, round_to_bfloat16 = _fma.round_to_float16, _fma.round_to_bfloat16

    def loop16(x, out):
        for i in range(x.size):
            out[i] = round_to_float16(x[i])

    def loop_bf16(x, out):
        for i in range(x.size):
            out[i] = round_to_bfloat16(x[i])

    return {FLOAT16: loop16, BFLOAT16: loop_bf16}, numba.njit(error_model="numpy")


@functools.cache
def compiled(storage: str):
    python_loops, njit = _loops()
    return njit(python_loops[storage])


STRIDE = 63  # odd: the sweep meets every residue of the low bits, ties included
CHUNK = 1 << 22


@pytest.mark.numba
@pytest.mark.parametrize("storage", STORAGES)
def test_numba_rounding_is_the_cast_on_a_sweep_of_2_26_bit_patterns(storage):
    _storage_dtype(storage)
    loop = compiled(storage)
    index = np.arange(CHUNK, dtype=np.uint64) * STRIDE
    got = np.empty(CHUNK, np.float32)
    exponents = np.zeros(512, np.int64)  # sign and biased exponent of every pattern swept
    total, failures = 0, []
    for start in range(0, 2**32, CHUNK * STRIDE):  # patterns start, start + 63, ... below 2**32
        patterns = index + start
        patterns = patterns[: np.searchsorted(patterns, 2**32)].astype(np.uint32)
        x = patterns.view(np.float32)
        out = got[: x.size]
        loop(x, out)
        message = describe(x, out, cast(x, storage), f"numba round_to_{storage}, patterns from 0x{start:08x}")
        if message:
            failures.append(message)
        exponents += np.bincount(patterns >> 23, minlength=512)
        total += x.size
    assert not failures, "\n".join(failures[:4])
    assert total >= 2**26, f"only {total} bit patterns swept"
    assert exponents.min() > 2**16, "some sign and exponent were barely swept"


@pytest.mark.numba
@pytest.mark.parametrize("storage", STORAGES)
def test_numba_rounding_is_the_cast_and_the_reference_on_every_boundary_case(storage):
    _storage_dtype(storage)
    x = boundaries(storage)
    got = np.empty_like(x)
    compiled(storage)(x, got)
    message = describe(x, got, cast(x, storage), f"numba round_to_{storage} against the cast")
    assert not message, message
    reference = np.array([_reference(storage)(v) for v in x], np.float32)
    differ = np.flatnonzero(bits(got) != bits(reference))  # NaNs too: both give 0x7FC00000 with the sign
    assert not differ.size, f"numba round_to_{storage} differs from _fma.round_to_{storage} bitwise at " + ", ".join(
        f"x=0x{int(bits(x)[i]):08x}: 0x{int(bits(got)[i]):08x} vs 0x{int(bits(reference)[i]):08x}" for i in differ[:8]
    )


@pytest.mark.numba
@pytest.mark.parametrize("storage", STORAGES)
def test_numba_rounding_has_no_fast_math_and_vectorizes(storage):
    import numba

    from numpy_optim import _compiled

    python_loops, _ = _loops()
    # A fresh, uncached dispatcher with the kernels' options: numba cannot inspect cached code.
    dispatcher = numba.njit(**{**_compiled.JIT_OPTIONS, "cache": False})(python_loops[storage])
    x = np.linspace(-2, 2, 64, dtype=np.float32)
    out = np.empty_like(x)
    dispatcher(x, out)
    (llvm,) = dispatcher.inspect_llvm().values()
    fast = [line.strip() for line in llvm.splitlines() if re.search(r"\b(?:fast|contract|reassoc|nnan|ninf)\b", line)
            and re.search(r"\b(?:fadd|fsub|fmul|fcmp|select|call)\b", line)]
    assert not fast, f"round_to_{storage}: fast-math flags in the compiled loop: {fast[:5]}"
    assert re.search(r"= (?:and|add|lshr|select) <(?:4|8|16) x i(?:32|64)>", llvm), (
        f"round_to_{storage}: the loop did not vectorize (no vector integer arithmetic in the IR)"
    )


@pytest.mark.numba
def test_numba_rounding_refuses_float64():
    import numba

    from numpy_optim import _compiled  # noqa: F401  (registers the implementations)

    round_to_float16 = _fma.round_to_float16

    @numba.njit
    def call(x):
        return round_to_float16(x)

    with pytest.raises(numba.core.errors.TypingError):
        call(1.0)
