r"""Multiply-adds rounded the way torch's CPU kernels round them.

On AVX2/AVX512 CPUs torch fuses the multiply-add inside ``a.add(b, alpha=s)``,
``lerp`` and ``addcmul`` into one hardware FMA: :math:`a \cdot b + c` is rounded once,
not twice (../shared/reference/torch-numerics.md). Rounded twice, a float32 sum that
nearly cancels (an L2 term ``g + \lambda\theta`` against ``g``, say) keeps the rounding
error of the product, and is measurably less accurate than torch's.

:func:`fma` rounds once for float32: the product of two float32 numbers is exact in
float64, the sum is rounded to float64 and then to float32. That is torch's result except
when the float64 sum lands exactly halfway between two float32 numbers (a double-rounding
tie, about one operation in 2**29). For float64, :func:`_fma64` computes the exact FMA
with error-free transformations (Dekker's product, Knuth's sum, and Boldo and Melquiond's
rounding to odd), a couple of dozen NumPy operations; products so small that their
rounding error underflows (below about 1e-292) are not exact. Other dtypes round twice.

Scalars are cast to the array's dtype first, as torch casts ``alpha`` and ``value``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_dtype_scalar(value: float, dtype: np.dtype) -> float:
    """``value`` rounded to ``dtype`` (float32 or float64) and back to a Python float."""
    return float(np.float32(value)) if dtype == np.float32 else value


def fma(a: Any, b: Any, c: Any, out: np.ndarray | None = None, *, work: np.ndarray | None = None) -> Any:
    """``a * b + c``, rounded once for float32 (see the module docstring), into ``out``.

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
    if dtype == np.float64:
        result = _fma64(np.asarray(a, np.float64), b, np.asarray(c, np.float64))
        if out is None:
            return result
        np.copyto(out, result)
        return out
    product = np.multiply(a, b, out=work)
    return np.add(product, c, out=out)


_SPLITTER = 134217729.0  # 2**27 + 1: Veltkamp's split of a float64 into two 26-bit halves


def _split(x: Any) -> tuple[Any, Any]:
    t = _SPLITTER * x
    high = t - (t - x)
    return high, x - high


def _two_sum(x: Any, y: Any) -> tuple[Any, Any]:
    """``s, e`` with ``s = fl(x + y)`` and ``x + y = s + e`` exactly (Knuth)."""
    s = x + y
    v = s - x
    return s, (x - (s - v)) + (y - v)


def _fma64(a: np.ndarray, b: Any, c: np.ndarray) -> np.ndarray:
    """Correctly rounded ``a * b + c`` in float64 (Boldo & Melquiond, 2008):
    ``(p, e) = a*b exactly``, ``(s, f) = c + p exactly``, result ``RN(s + RO(f + e))``."""
    with np.errstate(all="ignore"):
        p = a * b
        a_high, a_low = _split(a)
        b_high, b_low = _split(np.asarray(b, np.float64))
        e = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low  # a*b = p + e
        s, f = _two_sum(c, p)
        v, r = _two_sum(f, e)
        # Round f + e to odd: when inexact and v's last significand bit is even, step toward r.
        bits = np.asarray(v).view(np.int64)
        to_odd = (r != 0) & ((bits & 1) == 0)
        v = np.where(to_odd, np.nextafter(v, np.where(r > 0, np.inf, -np.inf)), v)
        result = s + v
        exact = np.isfinite(result) & np.isfinite(e)
        return np.where(exact, result, p + c)  # inf / NaN: as the plain expression gives them
