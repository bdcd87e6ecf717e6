r"""What the kernels of ``fused=True`` share: torch's vector body and scalar tail, and its
double-precision scalars.

torch 2.13's fused CPU kernels (SGD, Adam/AdamW, Adagrad) run each flattened tensor as a
256-bit vector body followed by a scalar tail (../shared/reference/torch-fused-kernels.md,
measured to the bit):

* lanes: 4 float64, 8 float32, 16 float16 / bfloat16 (the AVX2 ``Vectorized``, also on
  AVX512 CPUs); the first ``n - n % lanes`` elements are the body, the last ``n % lanes``
  the tail. A 0-d tensor, or one of fewer than ``lanes`` elements, is all tail;
* the body and the tail group some multiply-adds differently (an SGD momentum buffer, an
  Adam second moment), and for float16 / bfloat16 the Adagrad body rounds its constants
  through the parameter's dtype: so the kernels run each part with its own lines;
* the step's scalars are computed once, in double; two of them are contracted by the C
  compiler into one fused multiply-add (:func:`fma_double`).

torch splits a tensor over threads in 64-byte cache lines (at most 16 elements), so every
thread's chunk starts at a multiple of the lane count and only the last holds the tail:
the split does not depend on threads, and a caller may cut a parameter into parts that
start at multiples of 64 elements, as long as only its last part holds its end.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .optimizer import is_half


def lanes(dtype: np.dtype, half: bool) -> int:
    """torch's vector width in elements: 16 for float16 / bfloat16 parameters (``half``,
    computed in float32), else 8 for float32 and 4 for float64."""
    return 16 if half else 8 if np.dtype(dtype) == np.float32 else 4


def body_length(n: int, width: int) -> int:
    """The elements of the vector body of ``n``: ``n - n % width`` (the rest is the tail)."""
    return n - n % width


def fma_double(a: float, b: float, c: float) -> float:
    """C's ``fma(a, b, c)`` in double: ``a * b + c`` rounded once (Python 3.11 has no
    ``math.fma``). Exact in rationals, then one correct rounding (``Fraction`` to float
    divides two integers, which CPython rounds correctly). An exactly zero sum of non-zero
    terms is +0, as IEEE rounds it; inf, NaN and overflow give the plain ``a * b + c``."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        return a * b + c if a == 0 or b == 0 else 0.0  # with a zero product the plain sum is exact, sign and all
    try:
        return float(exact)
    except OverflowError:
        return a * b + c


def check_compute_dtype(dtype: object, half: object) -> tuple[np.dtype, np.dtype | None]:
    """``dtype`` (what the kernel computes in: float32 or float64) and ``half`` (the
    parameters' dtype if float16 / bfloat16, computed in float32, else None), checked:
    a TypeError or ValueError naming the argument."""
    try:
        compute = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"Invalid dtype: {dtype!r} (expected np.float32 or np.float64)") from None
    if compute not in (np.float32, np.float64):
        raise ValueError(f"Invalid dtype: {compute} (the fused kernels compute in float32 or float64)")
    if half is None:
        return compute, None
    if isinstance(half, bool):
        raise TypeError(f"Invalid half: {half!r} (expected None or the parameters' float16 / bfloat16 dtype)")
    try:
        storage = np.dtype(half)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"Invalid half: {half!r} (expected None or a float16 / bfloat16 dtype)") from None
    if not is_half(storage):
        raise ValueError(f"Invalid half: {storage} (expected None or a float16 / bfloat16 dtype)")
    if compute != np.float32:
        raise ValueError(f"Invalid dtype: {compute} with half={storage} (torch computes those in float32)")
    return compute, storage


def through_half(value: float, storage: np.dtype) -> float:
    """``float32(half(float32(value)))``: torch's ``fVec(scalar_t(x))`` for a double ``x``
    (double to half goes through float, as ``c10::Half(float)`` does), as a Python float."""
    return float(np.float32(value).astype(storage).astype(np.float32))
