r"""Multiply-adds rounded the way torch's CPU kernels round them.

On AVX2/AVX512 CPUs torch fuses the multiply-add inside ``a.add(b, alpha=s)``,
``lerp`` and ``addcmul`` into one hardware FMA: :math:`a \cdot b + c` is rounded once,
not twice (../shared/reference/torch-numerics.md). Rounded twice, a float32 sum that
nearly cancels (an L2 term ``g + \lambda\theta`` against ``g``, say) keeps the rounding
error of the product, and is measurably less accurate than torch's.

float32 and float16 go through float64: the product of two float32 (float16) numbers is
exact in float64, the sum ``s`` is rounded to float64 and then to the narrow dtype. For
float16 that is the correctly rounded result: a float16 product has 22 significant bits,
so where ``s`` is a float16 tie (halfway between two float16 numbers) the exact sum has
at most 33 and ``s`` is exact, unless the addend (at least 2**-24) was lost beside a
product above 2**28, which overflows float16 anyway. For float32 it is too, except when
``s`` lands exactly halfway between two float32 numbers although the exact sum does not
(a double-rounding tie, about one operation in 2**29). With ``exact=True`` :func:`fma`
rounds those correctly too: ``s`` rounded to odd (one float64 ulp towards the exact sum,
whose error Knuth's TwoSum gives, where ``s`` is inexact and its last bit 0) rounds to
float32 as the exact sum does (Boldo and Melquiond: 53 >= 24 + 2 bits). Rounding to odd
can only change the narrowed result of an ``s`` that is such a tie, so
:func:`_tie_candidates` looks for them (a bit pattern test, plus a test for results below
float32's smallest normal, where the pattern differs) and only those are rounded to odd.
The search costs two passes and two reductions over the block: the price of
``exact=True`` for float32, about 0.8 ns an element (a fifth of a NumPy Adam step, per
call). Plain float32 :func:`fma` skips it.

float64 multiply-adds are rounded twice, except where the caller asks for ``exact=True``:
then :func:`_fma64` computes the correctly rounded result with error-free transformations
(Dekker's product, Knuth's sum, Boldo and Melquiond's rounding to odd); the elements
where Veltkamp's split overflows (a factor above about 2**996) are redone with the split
taken of the factor times 2**-200 (:func:`_split_high`). That takes some 35 NumPy
operations instead of 2, so it is kept for the places where a second rounding gets
amplified: Adam's L2 term ``g + lambda * theta`` and its first-moment ``lerp``, which can
nearly cancel and feed a step that divides by ``sqrt(v)`` (with a small ``beta2``, by
``|g|`` itself). The parity harness found cases where rounding them twice drifted from
torch faster than torch's own rounding spread. SGD, and Adam's ``addcmul`` (a sum of
positive terms), round twice in float64. Not exact: products so small that their
rounding error underflows (below about 1e-292), and results at the edge of overflow (a
product within a factor 1 + 2**-25 of the largest float64, or ``c`` plus the rounded
product beyond it), where an intermediate overflows and the result is rounded twice.

Scalars are cast to the array's dtype first, as torch casts ``alpha`` and ``value``.
"""
from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np


def as_dtype_scalar(value: float, dtype: np.dtype) -> float:
    """``value`` rounded to ``dtype`` (float32 or float64) and back to a Python float."""
    return float(np.float32(value)) if dtype == np.float32 else value


def fma(
    a: Any, b: Any, c: Any, out: np.ndarray | None = None, *, work: np.ndarray | None = None, exact: bool = False,
) -> Any:
    """``a * b + c`` into ``out``: rounded once for float16 and float32 (float32 up to a
    rare double-rounding tie, correctly rounded with ``exact``) and, with ``exact``, for
    float64; see the module docstring.

    ``a`` and ``c`` are arrays (or NumPy scalars) of one dtype, ``b`` an array of that
    dtype or a Python float. ``work`` is scratch of the result's shape: float64 for
    float32 and float16 operands, the operands' dtype otherwise; it may be ``a`` itself,
    not ``c`` or ``out`` unless it is also ``a``. Both are allocated when not given (a
    missing float64 ``work`` of up to 2**18 elements is this thread's reused one).
    """
    dtype = np.result_type(a, c)
    if dtype in _NARROW:
        return _fma_narrow(a, b, c, out, work, dtype, exact)
    if dtype == np.float64 and exact:
        return _fma64(np.asarray(a), b, np.asarray(c), out)
    product = np.multiply(a, b, out=work)
    return np.add(product, c, out=out)


_CACHED = 1 << 17  # workspaces up to this many elements are kept per thread and reused
_local = threading.local()


def _workspace(size: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Flat float64, int64 and bool work arrays of at least ``size`` elements: this
    thread's reused ones for block-sized work, fresh ones for larger arrays."""
    cached = getattr(_local, "workspace", None)
    if size > _CACHED:
        cached = None
    elif cached is None or len(cached[1]) < size:
        cached = _local.workspace = (list(np.empty((9, _CACHED))), np.empty(_CACHED, np.int64),
                                     list(np.empty((3, _CACHED), bool)))
    if cached is None:
        return list(np.empty((9, size))), np.empty(size, np.int64), list(np.empty((3, size), bool))
    return cached


def _wide_work(shape: tuple[int, ...]) -> np.ndarray:
    """A float64 work array of ``shape``: this thread's reused one for up to 2**18 elements
    (float16 blocks, whose kernels have no float64 scratch row), else a fresh one."""
    size = math.prod(shape)
    if size > 2 * _CACHED:
        return np.empty(shape)
    row = getattr(_local, "wide", None)
    if row is None:
        row = _local.wide = np.empty(2 * _CACHED)
    return row[:size].reshape(shape)


def _round_to_odd(v: np.ndarray, r: np.ndarray, bits: np.ndarray, flags: list[np.ndarray]) -> None:
    """Where ``r != 0`` and ``v``'s last significand bit is 0, move ``v`` one ulp toward
    ``r`` (in the bits: +1 away from zero when ``r`` has ``v``'s sign, else -1), in place.

    ``v + r`` is an exact sum with ``v = RN(v + r)``; afterwards ``v`` is that sum rounded
    to odd. ``bits`` (int64) and the three ``flags`` (bool) are work arrays of ``v``'s shape.
    """
    parity, mask, sign = flags
    v_bits = v.view(np.int64)
    np.bitwise_and(v_bits, 1, out=bits)
    np.equal(bits, 0, out=parity)
    np.not_equal(r, 0, out=mask)
    np.logical_and(mask, parity, out=mask)
    if mask.any():
        np.greater(r, 0, out=parity)
        np.greater(v, 0, out=sign)
        np.equal(parity, sign, out=sign)
        np.multiply(sign, 2, out=bits)
        np.subtract(bits, 1, out=bits)
        np.multiply(bits, mask, out=bits)
        np.add(v_bits, bits, out=v_bits)


# --------------------------------------------------------------------------------------
# float32 and float16: through float64 (float32 with exact=True: rounded to odd if a tie is possible)
# --------------------------------------------------------------------------------------

_NARROW = (np.dtype(np.float32), np.dtype(np.float16))
_DROPPED = 29  # the float64 significand bits that rounding a normal number to float32 drops
_TINY = 2.0**-126  # float32's smallest normal number


def _fma_narrow(
    a: Any, b: Any, c: Any, out: np.ndarray | None, work: np.ndarray | None, dtype: np.dtype, exact: bool,
) -> Any:
    """float32 / float16 ``a * b + c``: ``s = RN64(a*b + c)`` (the product is exact),
    for float32 with ``exact`` rounded to odd instead if some ``s`` may be a tie, narrowed."""
    if not isinstance(b, np.ndarray):
        b = float(dtype.type(b))  # torch casts the scalar first
    if work is None or work.dtype != np.float64:
        work = _wide_work(np.broadcast_shapes(np.shape(a), np.shape(c)))
    np.multiply(a, b, out=work, dtype=np.float64)  # exact: 24 + 24 significant bits < 53
    np.add(work, c, out=work)                       # s: one rounding (to float64)...
    if exact and dtype == np.float32:
        index = _tie_candidates(work)
        if index is not None:
            _round_sum_to_odd(a, b, c, work, index)  # ...or s rounded to odd where that matters
    if out is None:
        out = np.empty(work.shape, dtype)
    np.copyto(out, work, casting="same_kind")       # ...and one to the narrow dtype
    return out


def _tie_candidates(s: np.ndarray) -> np.ndarray | None:
    """The flat indices of the float64 ``s`` that could lie halfway between two float32
    numbers (None if there are none).

    A tie in float32's normal range has the 29 dropped bits ``100...0``: shifted to the
    top of an int64, the smallest int64. In float32's subnormal range more bits are
    dropped, so there any ``0 < |s| < 2**-126`` counts. Two passes and two reductions
    through one work array when there are none (a few more where ``s`` has zeros).
    """
    size = s.size
    _, ints, flags = _workspace(size)
    key = ints[:size].reshape(s.shape)
    candidates, small, nonzero = (f[:size].reshape(s.shape) for f in flags)
    np.left_shift(s.view(np.int64), 64 - _DROPPED, out=key)
    found = bool(key.min(initial=0) == np.iinfo(np.int64).min)
    if found:
        np.equal(key, np.iinfo(np.int64).min, out=candidates)
    magnitude = np.abs(s, out=key.view(np.float64))
    if np.fmin.reduce(magnitude, axis=None, initial=math.inf) < _TINY:  # fmin: NaN is no minimum
        np.less(magnitude, _TINY, out=small)  # zeros, or values below float32's smallest normal
        np.greater(magnitude, 0, out=nonzero)
        np.logical_and(small, nonzero, out=small)
        if found:
            np.logical_or(candidates, small, out=candidates)
        else:
            candidates, found = small, bool(small.any())
    return np.flatnonzero(candidates) if found else None


def _round_sum_to_odd(a: Any, b: Any, c: Any, s: np.ndarray, index: np.ndarray) -> None:
    """``s = RN64(a*b + c)`` (``a * b`` exact in float64) rounded to odd at the flat
    ``index`` instead, in place: with TwoSum's exact error ``e``, ``s`` truncated toward
    zero (one ulp down in magnitude where ``e`` has the other sign) and its last bit set
    where ``e != 0``. A NaN ``e`` (inf / NaN operands) compares false: ``s`` stays."""
    def pick(x: Any) -> np.ndarray:
        return np.broadcast_to(x, s.shape).flat[index].astype(np.float64)

    with np.errstate(all="ignore"):  # a few elements: temporaries are fine
        p, q, t = pick(a) * pick(b), pick(c), s.flat[index]
        v = t - p                                   # TwoSum: p + q = t + e
        e = (p - (t - v)) + (q - v)
        inexact = (e < 0) | (e > 0)
        bits = (t.view(np.int64) - (inexact & ((e > 0) != (t > 0)))) | inexact
        s.flat[index] = bits.view(np.float64)


# --------------------------------------------------------------------------------------
# float64, exact=True
# --------------------------------------------------------------------------------------

_SPLITTER = 134217729.0  # 2**27 + 1: Veltkamp's split of a float64 into two 26-bit halves
_HUGE_FACTOR = 2.0**990  # a factor above this is split times 2**-200 (where needed: above about 2**996)
_SCALE, _UNSCALE = 2.0**-200, 2.0**200


def _fma64(a: np.ndarray, b: Any, c: np.ndarray, out: np.ndarray | None, split_scaled: bool = False) -> np.ndarray:
    """Correctly rounded ``a * b + c`` in float64, after Boldo & Melquiond (2008):
    ``a*b = p + e`` exactly (Dekker), ``c + p = s + f`` exactly (Knuth), then
    ``RN(s + RO(f + e))`` with ``RO`` rounding to odd. Every step writes into work arrays.
    Where an intermediate overflows, the plain sum ``c + p``; but where ``a``, ``b`` and
    ``c`` are finite, those elements are first redone with ``split_scaled``: Veltkamp's
    split of a factor above 2**990 taken of it times 2**-200 (:func:`_split_high`)."""
    shape = np.broadcast_shapes(np.shape(a), np.shape(c))
    size = math.prod(shape)
    floats, ints, flags = _workspace(size)
    p, t, ah, al, e, s, v, r, w = (x[:size].reshape(shape) for x in floats)
    bits = ints[:size].reshape(shape)
    flag_views = [f[:size].reshape(shape) for f in flags]
    parity, mask, _ = flag_views
    with np.errstate(all="ignore"):
        np.multiply(a, b, out=p)
        if split_scaled:  # only for the few elements redone below: temporaries are fine
            np.copyto(ah, _split_high(a))
            np.subtract(a, ah, out=al)
            bh = _split_high(b)
            bl = b - bh
        else:
            np.multiply(a, _SPLITTER, out=t)                  # Veltkamp: a = ah + al
            np.subtract(t, a, out=ah)
            np.subtract(t, ah, out=ah)
            np.subtract(a, ah, out=al)
            if isinstance(b, np.ndarray):
                bh, bl = np.multiply(b, _SPLITTER, out=w), np.empty(shape)
                np.subtract(bh, b, out=bl)
                np.subtract(bh, bl, out=bh)
                np.subtract(b, bh, out=bl)
            else:
                big = _SPLITTER * b
                bh = big - (big - b)
                bl = b - bh
        np.multiply(ah, bh, out=e)                            # e = ((ah bh - p) + ah bl + al bh) + al bl
        np.subtract(e, p, out=e)
        np.multiply(ah, bl, out=t)
        np.add(e, t, out=e)
        np.multiply(al, bh, out=t)
        np.add(e, t, out=e)
        np.multiply(al, bl, out=t)
        np.add(e, t, out=e)
        np.add(c, p, out=s)                                   # TwoSum: c + p = s + f, f into ah
        np.subtract(s, c, out=t)
        np.subtract(s, t, out=ah)
        np.subtract(c, ah, out=ah)
        np.subtract(p, t, out=al)
        np.add(ah, al, out=ah)
        np.add(ah, e, out=v)                                  # TwoSum: f + e = v + r
        np.subtract(v, ah, out=t)
        np.subtract(v, t, out=al)
        np.subtract(ah, al, out=al)
        np.subtract(e, t, out=r)
        np.add(al, r, out=r)
        _round_to_odd(v, r, bits, flag_views)                 # RO(f + e)
        np.add(s, v, out=t)
        np.equal(v, 0, out=mask)  # v == 0: the sum is s exactly, with s's sign of zero (s + 0 would turn -0 into +0)
        np.copyto(t, s, where=mask)
        np.isfinite(t, out=mask)
        np.isfinite(e, out=parity)
        np.logical_and(mask, parity, out=mask)
        if not mask.all():  # an overflow, or inf / NaN operands
            np.logical_not(mask, out=mask)
            np.copyto(t, s, where=mask)  # what the plain sum c + p gives
            if not split_scaled:
                redo = mask & np.isfinite(a) & np.isfinite(b) & np.isfinite(c)  # rare: temporaries are fine
                if redo.any():  # Veltkamp's split of a factor above about 2**996 overflowed
                    ra, rb, rc = (np.broadcast_to(x, shape)[redo] for x in (a, b, c))
                    t = t.copy()  # the call below reuses this thread's workspace
                    t[redo] = _fma64(ra, rb, rc, None, split_scaled=True)
    if out is None:
        return t.copy()
    np.copyto(out, t)
    return out


def _split_high(x: np.ndarray) -> np.ndarray:
    """The high half of Veltkamp's split of ``x``, taken of ``x * 2**-200`` (and scaled
    back) where ``|x| > 2**990``: the same halves, without the overflow of ``x * (2**27 + 1)``."""
    huge = np.abs(x) > _HUGE_FACTOR
    scaled = x * np.where(huge, _SCALE, 1.0)
    t = scaled * _SPLITTER
    high = t - (t - scaled)
    return high * np.where(huge, _UNSCALE, 1.0)


# --------------------------------------------------------------------------------------
# Scalar forms, for the compiled kernels. In Python they call the array functions above;
# numpy_optim._compiled registers numba implementations of exactly these two names, so a
# compiled kernel calling them rounds every element the way fma() rounds arrays.
# --------------------------------------------------------------------------------------


def scalar_fma(a: Any, b: Any, c: Any) -> Any:
    """``fma(a, b, c)`` on NumPy scalars of one dtype: float32 through float64, float64 rounded twice."""
    return fma(np.asarray(a), b, np.asarray(c))[()]


def scalar_fma_exact(a: Any, b: Any, c: Any) -> Any:
    """``fma(a, b, c, exact=True)`` on NumPy scalars of one dtype: correctly rounded in float32 and float64."""
    return fma(np.asarray(a), b, np.asarray(c), exact=True)[()]


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """torch's ``start.lerp_(end, weight)`` with a Python float weight, in place.

    ``W = dt(weight)``, ``d = end - start``; ``fma(W, d, start)`` if ``|W| < 0.5``,
    else ``fma(W - 1, d, end)`` (``W - 1`` is exact).
    """
    w = start.dtype.type(weight)
    d = np.subtract(end, start)
    if abs(w) < 0.5:
        fma(d, w, start, start, exact=True)
    else:
        fma(d, w - start.dtype.type(1), end, start, exact=True)


# --------------------------------------------------------------------------------------
# Rounding float32 to float16 / bfloat16 precision ("opmath" results stored to half types).
# The scalar forms are the reference; numpy_optim._compiled registers numba implementations
# of exactly these two names (integer rounding on the float32 bits: numba has no float16 or
# bfloat16 type on the CPU). Arrays go through round_half_.
# --------------------------------------------------------------------------------------


def round_to_float16(x: Any) -> np.float32:
    """``float32(float16(float32(x)))``: round to nearest, ties to even, with float16's
    subnormals (spacing 2**-24) and its overflow (``|x| >= 65520`` is inf); zeros keep their
    sign. A NaN gives the quiet NaN ``0x7FC00000`` with its sign (NumPy's own cast can keep a
    signaling payload).

    >>> [float(round_to_float16(v)) for v in (1 + 2**-11, 65519.99, 65520.0, 3 * 2**-25)]
    [1.0, 65504.0, inf, 1.1920928955078125e-07]
    """
    x = np.float32(x)
    with np.errstate(over="ignore"):
        r = np.float32(np.float16(x))
    return np.copysign(np.float32(np.nan), x) if np.isnan(r) else r


def round_to_bfloat16(x: Any) -> np.float32:
    """``float32(ml_dtypes.bfloat16(float32(x)))``: the float32 bits rounded to nearest, ties
    to even, at bit 16, subnormals by the same bit rule (ml_dtypes flushes none), overflow to
    inf; a NaN gives ``0x7FC00000`` with its sign (ml_dtypes drops the payload). Needs ml_dtypes."""
    import ml_dtypes

    return np.float32(ml_dtypes.bfloat16(np.float32(x)))


_HALF_STORAGE = ("float16", "bfloat16")


def round_half_(x: np.ndarray, storage: Any, work: np.ndarray) -> None:
    """Round the float32 array ``x`` in place to the precision of ``storage`` (``np.float16``
    or ml_dtypes' ``bfloat16``) through ``work``, a preallocated array of that dtype and
    ``x``'s shape: ``work = storage(x)``, ``x = float32(work)``; nothing is allocated.
    Overflow gives inf without a warning. NaNs stay NaNs of their sign (payloads: the casts').

    >>> x = np.array([1 + 2**-11, 7e4], np.float32)
    >>> round_half_(x, np.float16, np.empty(2, np.float16))
    >>> x
    array([ 1., inf], dtype=float32)
    """
    storage = np.dtype(storage)
    if storage.name not in _HALF_STORAGE:
        raise ValueError(f"Invalid storage dtype: {storage} (expected float16 or bfloat16)")
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"x must be a float32 ndarray, got {type(x).__name__} {getattr(x, 'dtype', '')}".rstrip())
    if not isinstance(work, np.ndarray) or work.dtype != storage or work.shape != x.shape:
        raise ValueError(
            f"Invalid work array: {getattr(work, 'dtype', type(work).__name__)} {getattr(work, 'shape', '')} "
            f"(expected {storage} {x.shape})"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        np.copyto(work, x, casting="unsafe")  # the one rounding
    np.copyto(x, work)  # exact


# --------------------------------------------------------------------------------------
# torch's single-tensor ops on float16 / bfloat16 tensors: each op loads half, computes in
# float32 ("opmath") and rounds its result to half when it stores it
# (tests/parity/test_half_single_tensor.py pins every rule against torch). The kernels run
# on float32 copies of the half arrays with a ``float16`` or ``bfloat16`` flag, and round
# where torch stores: store_() for arrays, half_round() in the compiled kernels.
# --------------------------------------------------------------------------------------

#: torch's vectorized CPU loop takes two 16-half vectors an iteration: the last ``n % 32``
#: elements of a tensor (below 32,768 elements, TensorIterator's grain) run its scalar loop.
HALF_TAIL_LANES = 32


def half_round(x: Any, float16: bool, bfloat16: bool) -> Any:
    """A float32 scalar rounded to float16 or bfloat16 precision (neither flag: unchanged)."""
    if float16:
        return round_to_float16(x)
    return round_to_bfloat16(x) if bfloat16 else x


def half_scalar(value: float, float16: bool, bfloat16: bool) -> float:
    """A Python float as torch makes it a half scalar (``alpha``, ``add(s)``): through
    float32 (``c10::Half(float)``), as a Python float."""
    return float(half_round(np.float32(value), float16, bfloat16)) if float16 or bfloat16 else value


def store_(x: np.ndarray, float16: bool, bfloat16: bool) -> np.ndarray:
    """Round the float32 array ``x`` in place to float16 or bfloat16 precision, as torch
    stores an op's result in a half tensor (neither flag: nothing). Returns ``x``."""
    if float16 or bfloat16:
        with np.errstate(over="ignore", invalid="ignore"):
            np.copyto(x, x.astype(np.float16 if float16 else "bfloat16"))
    return x


def add_alpha(
    a: np.ndarray, b: np.ndarray, alpha: float, out: np.ndarray, *, work: np.ndarray | None, exact: bool = False,
    float16: bool = False, bfloat16: bool = False,
) -> np.ndarray:
    """torch's ``a.add(b, alpha=alpha)`` into ``out``: :func:`fma` ``(b, alpha, a)``. On half
    tensors (a flag set; the arrays are the float32 copies of one tensor's elements, or its
    last block) ``alpha`` is a half scalar, the vector body is the float32 FMA rounded to
    half, and the scalar tail (the last ``n % 32`` elements) is ``h(a + h(alpha * b))``."""
    if not (float16 or bfloat16):
        return fma(b, alpha, a, out, work=work, exact=exact)
    alpha = half_scalar(alpha, float16, bfloat16)
    tail = out.size % HALF_TAIL_LANES
    if tail:  # (before ``out``, which may be ``a`` or ``b``, is written)
        scalar = store_(np.multiply(b[-tail:], np.float32(alpha)), float16, bfloat16)
        store_(np.add(scalar, a[-tail:], out=scalar), float16, bfloat16)
    store_(fma(b, alpha, a, out, work=work, exact=True), float16, bfloat16)
    if tail:
        out[-tail:] = scalar
    return out


def tail_or_fma(tail: bool, b: Any, alpha: Any, a: Any, float16: bool, bfloat16: bool) -> Any:
    """:func:`add_alpha` on one float32 element, before its final rounding to half:
    ``a + h(alpha * b)`` in the scalar tail, else the FMA ``b * alpha + a`` rounded once
    (the compiled kernels' form)."""
    if tail:
        return np.float32(a) + half_round(np.float32(alpha) * np.float32(b), float16, bfloat16)
    return scalar_fma_exact(np.float32(b), np.float32(alpha), np.float32(a))
