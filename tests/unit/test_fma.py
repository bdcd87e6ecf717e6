"""numpy_optim._fma.fma against exact arithmetic: the multiply-adds torch rounds once.

Every expected value is ``rn(a*b + c)``: the exact rational result (``Fraction``) rounded
to nearest, ties to even, in the dtype (``rn`` below, subnormals and overflow included).
The cases that matter are built by hand: float32 double-rounding ties, where rounding the
exact sum to float64 first lands exactly halfway between two float32 numbers, and float64
operands above 2**996, where Veltkamp's split overflows. That the numba ports give the same
bits is tests/unit/test_backend.py (``test_numba_scalar_fma_ports_are_bitwise_the_numpy_fma``).
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

from numpy_optim._fma import fma, scalar_fma, scalar_fma_exact

#: significand bits and smallest normal exponent
FORMATS = {np.dtype(np.float16): (11, -14), np.dtype(np.float32): (24, -126), np.dtype(np.float64): (53, -1022)}
U = 2.0**-23  # float32's ulp of 1


def rn(x: Fraction, dtype) -> float:
    """``x`` rounded to nearest, ties to even, to ``dtype`` (subnormals; overflow is +-inf)."""
    bits, emin = FORMATS[np.dtype(dtype)]
    if x == 0:
        return 0.0
    sign, a = (-1 if x < 0 else 1), abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2**e <= a < 2**(e+1) after the fix below
    if Fraction(2) ** e > a:
        e -= 1
    quantum = Fraction(2) ** (max(e, emin) - bits + 1)
    q, r = divmod(a / quantum, 1)
    q = int(q)
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and q % 2 == 1):
        q += 1
    if q * quantum > Fraction(float(np.finfo(dtype).max)):
        return sign * math.inf
    return sign * float(q * quantum)


def exact(a, b, c) -> Fraction:
    return Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))


def data(rng, shape, dtype):
    """Values over six orders of magnitude."""
    return (rng.standard_normal(shape) * np.exp(rng.uniform(-7, 7, shape))).astype(dtype)


def ties(rng, n, t):
    """float32 ``(a, b, c)`` with ``a * b = h (1 - t**2 u**2)`` exactly, ``h`` half an ulp of
    ``c`` (u = 2**-23): ``c + a*b`` rounds in float64 to the float32 midpoint ``c + h``
    (or ``c - h``) although it lies just inside it. ``b`` is one scalar."""
    c = (rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-30, 30, n)).astype(np.float32)
    half = np.ldexp(1.0, np.frexp(c)[1] - 25)  # c = m 2**k with 0.5 <= |m| < 1: h = 2**(k - 25)
    a = ((1 + t * U) * half * 2.0**12 * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    return a, np.float32((1 - t * U) * 2.0**-12), c


DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


# ----- float32: the double-rounding tie ------------------------------------------------------


def test_hand_built_tie_is_rounded_once_with_exact():
    # a*b = 2**-24 + 4688 * 2**-70 exactly ((1 + 2896 u)(1 - 2895 u) = 1 + 4688 u**2, u = 2**-23,
    # times 2**-24); + 1 lies just above the float32 midpoint 1 + 2**-24, so the correctly
    # rounded result is 1 + 2**-23. Rounded to float64 first (4688 * 2**-70 is below half a
    # float64 ulp of 1), the sum is the midpoint itself, which then rounds to even: 1.
    a = np.array([(1 + 2896 * U) * 2**-12], np.float32)
    b = np.array([(1 - 2895 * U) * 2**-12], np.float32)
    c = np.array([1.0], np.float32)
    x = exact(a[0], b[0], c[0])
    assert x > 1 + Fraction(2) ** -24  # just above the midpoint...
    assert float(np.float64(a[0]) * np.float64(b[0]) + 1.0) == 1 + 2.0**-24  # ...which float64 rounds it to
    assert fma(a, b, c, exact=True)[0] == np.float32(1 + U) == rn(x, np.float32)
    assert fma(a, b, c)[0] == np.float32(1.0)  # the plain route: the rare tie, rounded to even
    assert scalar_fma_exact(a[0], b[0], c[0]) == np.float32(1 + U)
    assert scalar_fma(a[0], b[0], c[0]) == np.float32(1.0)


def test_tie_below_the_smallest_normal_is_rounded_once_with_exact():
    # a*b = 2**-150 (1 - 2**-46) exactly; c = 2**-127 + 2**-149 (subnormal). The exact sum
    # 2**-127 + 3 * 2**-150 - 2**-196 needs 70 bits; float64 rounds it to the float32 midpoint
    # 2**-127 + 3 * 2**-150, which ties to even (up); the exact sum rounds down.
    a = np.array([2.0**-75 * (1 + U)], np.float32)
    b = np.array([2.0**-75 * (1 - U)], np.float32)
    c = np.array([2.0**-127 + 2**-149], np.float32)
    assert rn(exact(a[0], b[0], c[0]), np.float32) == 2.0**-127 + 2**-149
    assert fma(a, b, c, exact=True)[0] == np.float32(2.0**-127 + 2**-149)
    assert fma(a, b, c)[0] == np.float32(2.0**-127 + 2**-148)


@pytest.mark.parametrize("t", [1, 7, 100, 361])
def test_constructed_ties_are_rounded_once_with_exact(t):
    rng = np.random.default_rng(t)
    a, b, c = ties(rng, 400, t)
    ours, plain = fma(a, b, c, exact=True), fma(a, b, c)
    expected = np.array([rn(exact(a[i], b, c[i]), np.float32) for i in range(400)], np.float32)
    assert ours.tobytes() == expected.tobytes()
    wrong = np.flatnonzero(plain != expected)
    assert 100 < wrong.size < 300  # c's last bit even or odd: the plain route misses about half
    assert (plain == np.float32(np.float64(a) * np.float64(b) + np.float64(c))).all()  # it is the float64 route


def test_exact_keeps_infinities_nans_and_signed_zeros_where_it_rounds_to_odd():
    # one tie in the block makes fma round the whole block to odd; the special values must not move
    a, b, c = ties(np.random.default_rng(3), 1, 7)
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, 3.0e38], np.float32)
    a = np.concatenate([a, specials, specials])
    c = np.concatenate([c, specials[::-1], -specials])
    with np.errstate(all="ignore"):
        ours, plain = fma(a, b, c, exact=True), fma(a, b, c)
    assert ours[0] != plain[0]  # the tie
    assert ours[1:].tobytes() == plain[1:].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_matches_the_exact_result(dtype):
    rng = np.random.default_rng(9)
    a, b, c = (data(rng, 2000, dtype) for _ in range(3))
    ours = fma(a, b, c, exact=True)
    for i in range(0, 2000, 7):
        assert float(ours[i]) == rn(exact(a[i], b[i], c[i]), dtype), i
    scalar = fma(a, 0.1, c, exact=True)  # a Python float is first rounded to the dtype
    for i in range(0, 2000, 7):
        assert float(scalar[i]) == rn(exact(a[i], dtype(0.1), c[i]), dtype), i


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_near_cancellation(dtype):
    # c = -(a*b) rounded and nudged a few ulps: the result is the product's rounding error and the nudge
    rng = np.random.default_rng(11)
    a, b = data(rng, 1000, dtype), dtype(0.37)
    c = -(a * b)
    ints = np.uint32 if dtype == np.float32 else np.uint64
    c = (c.view(ints) + rng.integers(-3, 4, 1000).astype(ints)).view(dtype)
    ours = fma(a, float(b), c, exact=True)
    for i in range(1000):
        assert float(ours[i]) == rn(exact(a[i], b, c[i]), dtype), i


def test_exact_float32_block_writes_into_work_arrays():
    # a block of 131072 elements with a tie (the round-to-odd path) allocates nothing of its size
    rng = np.random.default_rng(5)
    n = 131072
    a, c = data(rng, n, np.float32), data(rng, n, np.float32)
    ta, tb, tc = ties(rng, 1, 7)
    a[17], c[17] = ta[0], tc[0]
    out, work = np.empty(n, np.float32), np.empty(n)
    fma(a, float(tb), c, out, work=work, exact=True)  # first call: the thread's workspace
    tracemalloc.start()
    try:
        fma(a, float(tb), c, out, work=work, exact=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n  # bytes: far below one float32 block (4n)
    assert float(out[17]) == rn(exact(ta[0], tb, tc[0]), np.float32)


# ----- float16: the float64 route is already correctly rounded --------------------------------


def test_float16_is_correctly_rounded():
    rng = np.random.default_rng(12)
    finite = np.arange(0x7C00, dtype=np.uint16).view(np.float16)  # every non-negative finite float16
    n = 6000
    a = rng.choice(finite, n) * rng.choice([-1, 1], n).astype(np.float16)
    b = rng.choice(finite, n)
    c = rng.choice(finite, n) * rng.choice([-1, 1], n).astype(np.float16)
    with np.errstate(all="ignore"):
        near = (-(a[: n // 2].astype(np.float64) * b[: n // 2])).astype(np.float16)  # near cancellations
    near = (near.view(np.uint16) + rng.integers(-2, 3, n // 2).astype(np.uint16)).view(np.float16)
    c[: n // 2] = np.where(np.isfinite(near), near, 0)
    with np.errstate(all="ignore"):
        ours, also = fma(a, b, c), fma(a, b, c, exact=True)
    assert ours.tobytes() == also.tobytes()
    for i in range(n):
        assert float(ours[i]) == rn(exact(a[i], b[i], c[i]), np.float16), i


# ----- float64: operands above 2**996 ---------------------------------------------------------


def test_exact_float64_is_exact_near_overflow():
    # above about 2**996 Veltkamp's split (a * (2**27 + 1)) overflows; split scaled by 2**-200,
    # the result is still rounded once
    rng = np.random.default_rng(13)
    a = rng.standard_normal(500) * 10.0 ** rng.uniform(280, 307, 500)
    c = rng.standard_normal(500) * 10.0 ** rng.uniform(250, 307, 500)
    for b in (0.5743491774985174 - 1, rng.standard_normal(500) * 0.9):
        ours = fma(a, b, c, exact=True)
        for i in range(500):
            bi = b[i] if isinstance(b, np.ndarray) else b
            assert float(ours[i]) == rn(exact(a[i], bi, c[i]), np.float64), i


def test_exact_float64_huge_factor_with_small_product_and_addend():
    # a above 2**996, b tiny: a*b and c near 1 or far below; nothing may be scaled away
    rng = np.random.default_rng(14)
    a = rng.choice([-1.0, 1.0], 300) * 2.0**1000 * rng.uniform(1, 1.9, 300)
    c = rng.standard_normal(300) * 10.0 ** rng.uniform(-300, 5, 300)
    for b in (0.0, 3.1e-301, -(2.0**-1000) * 1.37, 5e-324):
        ours = fma(a, b, c, exact=True)
        for i in range(300):
            assert float(ours[i]) == rn(exact(a[i], b, c[i]), np.float64), (b, i)
    # and b huge, a the smaller factor
    ours = fma(c, -(2.0**1010), a * 2.0**-30, exact=True)
    for i in range(300):
        assert float(ours[i]) == rn(exact(c[i], -(2.0**1010), a[i] * 2.0**-30), np.float64), i
