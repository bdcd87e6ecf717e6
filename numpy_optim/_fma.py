r"""Multiply-adds rounded the way torch's CPU kernels round them.

On AVX2/AVX512 CPUs torch fuses the multiply-add inside ``a.add(b, alpha=s)``,
``lerp`` and ``addcmul`` into one hardware FMA: :math:`a \cdot b + c` is rounded once,
not twice (../shared/reference/torch-numerics.md). Rounded twice, a float32 sum that
nearly cancels (an L2 term ``g + \lambda\theta`` against ``g``, say) keeps the rounding
error of the product, and is measurably less accurate than torch's.

:func:`fma` rounds once for float32: the product of two float32 numbers is exact in
float64, the sum is rounded to float64 and then to float32. That is torch's result except
when the float64 sum lands exactly halfway between two float32 numbers (a double-rounding
tie, about one operation in 2**29). Other dtypes keep two roundings (for float64 an exact
FMA needs error-free transformations, several times the work; float64 stays within a few
ulp of torch either way).

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
    product = np.multiply(a, b, out=work)
    return np.add(product, c, out=out)
