r"""Multiply-adds rounded the way torch's CPU kernels round them.

On AVX2/AVX512 CPUs torch fuses the multiply-add inside ``a.add(b, alpha=s)``,
``lerp`` and ``addcmul`` into one hardware FMA: :math:`a \cdot b + c` is rounded once,
not twice (../shared/reference/torch-numerics.md). Rounded twice, a float32 sum that
nearly cancels (an L2 term ``g + \lambda\theta`` against ``g``, say) keeps the rounding
error of the product, and is measurably less accurate than torch's.

:func:`fma` rounds once for float32: the product of two float32 numbers is exact in
float64, the sum is rounded to float64 and then to float32. That is torch's result except
when the float64 sum lands exactly halfway between two float32 numbers (a double-rounding
tie, about one operation in 2**29). float64 multiply-adds are rounded twice, except where
the caller asks for ``exact=True``: then :func:`_fma64` computes the correctly rounded
result with error-free transformations (Dekker's product, Knuth's sum, Boldo and
Melquiond's rounding to odd). That takes some 35 NumPy operations instead of 2, so it is
kept for the places where a second rounding gets amplified: Adam's L2 term
``g + lambda * theta`` and its first-moment ``lerp``, which can nearly cancel and feed a
step that divides by ``sqrt(v)`` (with a small ``beta2``, by ``|g|`` itself). The parity
harness found cases where rounding them twice drifted from torch faster than torch's own
rounding spread. SGD, and Adam's ``addcmul`` (a sum of positive terms), round twice.
Products so small that their rounding error underflows (below about 1e-292) are not
exact. Other dtypes round twice.

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
    """``a * b + c``, rounded once for float32 (and float64 with ``exact``; see the module
    docstring), into ``out``.

    ``a`` and ``c`` are arrays (or NumPy scalars) of one dtype, ``b`` an array of that
    dtype or a Python float. ``work`` is scratch of the result's shape: float64 for
    float32 operands, the operands' dtype otherwise; it may be ``a`` itself, not ``c``
    or ``out`` unless it is also ``a``. Both are allocated when not given.
    """
    dtype = np.result_type(a, c)
    if dtype == np.float32:
        if not isinstance(b, np.ndarray):
            b = as_dtype_scalar(b, dtype)
        if work is None or work.dtype != np.float64:
            work = np.empty(np.broadcast_shapes(np.shape(a), np.shape(c)), np.float64)
        np.multiply(a, b, out=work, dtype=np.float64)  # exact: 24 + 24 significant bits < 53
        np.add(work, c, out=work)                       # one rounding (to float64)...
        if out is None:
            out = np.empty(work.shape, np.float32)
        np.copyto(out, work, casting="same_kind")       # ...and one to float32
        return out
    if dtype == np.float64 and exact:
        return _fma64(np.asarray(a), b, np.asarray(c), out)
    product = np.multiply(a, b, out=work)
    return np.add(product, c, out=out)


_SPLITTER = 134217729.0  # 2**27 + 1: Veltkamp's split of a float64 into two 26-bit halves
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


def _fma64(a: np.ndarray, b: Any, c: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """Correctly rounded ``a * b + c`` in float64, after Boldo & Melquiond (2008):
    ``a*b = p + e`` exactly (Dekker), ``c + p = s + f`` exactly (Knuth), then
    ``RN(s + RO(f + e))`` with ``RO`` rounding to odd. Every step writes into work arrays."""
    shape = np.broadcast_shapes(np.shape(a), np.shape(c))
    size = math.prod(shape)
    floats, ints, flags = _workspace(size)
    p, t, ah, al, e, s, v, r, w = (x[:size].reshape(shape) for x in floats)
    bits, parity = ints[:size].reshape(shape), flags[0][:size].reshape(shape)
    mask, sign = flags[1][:size].reshape(shape), flags[2][:size].reshape(shape)
    with np.errstate(all="ignore"):
        np.multiply(a, b, out=p)
        np.multiply(a, _SPLITTER, out=t)                      # Veltkamp: a = ah + al
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
        # Round v to odd: where r != 0 and v's last significand bit is 0, move v one ulp
        # toward r (in the bits: +1 away from zero when r has v's sign, else -1).
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
        np.add(s, v, out=t)
        np.equal(v, 0, out=mask)  # v == 0: the sum is s exactly, with s's sign of zero (s + 0 would turn -0 into +0)
        np.copyto(t, s, where=mask)
        np.isfinite(t, out=mask)
        np.isfinite(e, out=parity)
        np.logical_and(mask, parity, out=mask)
        if not mask.all():  # inf / NaN / overflow: what the plain sum c + p gives
            np.copyto(t, s, where=~mask)
    if out is None:
        return t.copy()
    np.copyto(out, t)
    return out


# --------------------------------------------------------------------------------------
# Scalar forms, for the compiled kernels. In Python they call the array functions above;
# numpy_optim._compiled registers numba implementations of exactly these two names, so a
# compiled kernel calling them rounds every element the way fma() rounds arrays.
# --------------------------------------------------------------------------------------


def scalar_fma(a: Any, b: Any, c: Any) -> Any:
    """``fma(a, b, c)`` on NumPy scalars of one dtype: rounded once for float32, twice for float64."""
    return fma(np.asarray(a), b, np.asarray(c))[()]


def scalar_fma_exact(a: Any, b: Any, c: Any) -> Any:
    """``fma(a, b, c, exact=True)`` on NumPy scalars of one dtype: rounded once in float32 and float64."""
    return fma(np.asarray(a), b, np.asarray(c), exact=True)[()]
