r"""torch's CPU reductions in NumPy, bit for bit: the norms and the sum.

Shared by Adafactor (its row, column and whole-array norms and its row mean) and gradient
clipping (:func:`vector_norm` of every gradient, then of the stacked norms). Reference:
torch-optim-rest.md §1.3 and Appendix A (torch 2.13, CPU), and ATen's
``ReduceOpsKernel.cpp`` / ``SharedReduceOps.h``; every rule below was measured.

* :func:`norm_rows` -- ``x.norm(2)`` and ``torch.norm(x, dim=-1)`` for float32 and float64
  (the vectorized path): 8 float32 / 4 float64 lanes, each summing the squares of its
  elements in order (squares rounded, no FMA); the lanes added in order; float32 only: 4
  more elements if at least 4 remain; then ``s = fma(x, x, s)`` for each remaining
  element; the IEEE square root. The norm of one element is ``|x|`` (measured: no
  underflow of ``x*x`` below 1e-19 in float32).
* :func:`norm_columns` -- ``torch.norm(x, dim=-2)``: per column, the squares added
  sequentially over the rows (no FMA); :func:`norm_rows` when there is one column,
  ``|x|`` when there is one row.
* :func:`torch_sum` -- ``x.sum(dim=-1)``: torch's cascade sum (SumKernel.cpp).
* :func:`vector_norm` -- ``torch.linalg.vector_norm(x, ord)`` of a whole array, for every
  ``ord``: the lane 2-norm above for float32/float64 ``ord=2``; ``max |x|`` / ``min |x|``
  for ``±inf``; otherwise torch's scalar reduction (``binary_kernel_reduce``): the terms
  (``x != 0``, ``|x|``, ``x*x`` or ``|x|**ord``) added one after the other in the
  accumulation type (float32 for float16 and float32, float64 for float64), then the
  projection (``sqrt``, ``acc ** (1/ord)``). Only this scalar reduction depends on torch's
  thread count: over :data:`GRAIN_SIZE` elements it is split among the threads.

Every one of them works on all rows at once: per-lane and per-column work is
``np.add.reduce`` along an axis that is not the innermost one, which NumPy adds in order
(its pairwise summation applies only along the innermost axis); :func:`_sequential_sum`
makes sure of that. The scalar reduction adds with ``np.add.accumulate``, which is
sequential by definition.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Any

import numpy as np

from ._fma import fma

__all__ = ["GRAIN_SIZE", "norm_all", "norm_columns", "norm_rows", "torch_sum", "vector_norm"]


def _lanes(dtype: np.dtype) -> int:
    """The vector width of torch's reductions: 256 bits (8 float32, 4 float64 lanes)."""
    return 4 if np.dtype(dtype) == np.float64 else 8


def _sequential_sum(x: np.ndarray, axis: int) -> np.ndarray:
    """``0 + x[0] + x[1] + ...`` along ``axis``, each addition rounded, in order.

    ``np.add.reduce`` adds in order along any axis but the innermost one (which it may
    sum pairwise); the axes after ``axis`` must hold more than one element, or the loop
    runs in Python over ``axis``.
    """
    axis = axis % x.ndim
    if math.prod(x.shape[axis + 1:]) > 1:
        return np.add.reduce(x, axis=axis)
    total = np.zeros(x.shape[:axis] + x.shape[axis + 1:], x.dtype)
    for i in range(x.shape[axis]):
        total += np.take(x, i, axis=axis)
    return total


def _sum_of_squares_rows(x: np.ndarray) -> np.ndarray:
    """Each row's sum of squares as torch's 2-norm adds it (before the square root).

    ``x`` has shape ``(rows, n)``; float32 and float64 (float16 is squared in float32).
    """
    if x.dtype == np.float16:
        return _sum_of_squares_rows(x.astype(np.float32))
    rows, n = x.shape
    lanes = _lanes(x.dtype)
    body = n - n % lanes
    squares = np.multiply(x[:, :body], x[:, :body])                       # rn(x*x), no FMA
    acc = _sequential_sum(squares.reshape(rows, body // lanes, lanes), axis=1)  # lane j, in order
    s = acc[:, 0].copy()
    for j in range(1, lanes):                                              # lanes combined in order
        s += acc[:, j]
    done = body
    if x.dtype == np.float32 and n - done >= 4:                            # float32: 4-element epilogue
        for i in range(done, done + 4):
            s += x[:, i] * x[:, i]
        done += 4
    for i in range(done, n):                                               # tail: s = fma(x, x, s)
        s = fma(x[:, i], x[:, i], s, exact=True)
    return s


def norm_rows(x: np.ndarray) -> np.ndarray:
    """torch's ``torch.norm(x, dim=-1)`` (and, on ``x.reshape(1, -1)``, ``x.norm(2)``).

    Returns an array of shape ``x.shape[:-1]`` and ``x``'s dtype: each row's
    :func:`_sum_of_squares_rows`, then the IEEE square root. A reduction over one element
    is ``|x|`` in torch (no square to underflow or overflow).
    """
    x = np.ascontiguousarray(x)
    if x.shape[-1] == 1:
        return np.abs(x[..., 0])
    s = _sum_of_squares_rows(x.reshape(-1, x.shape[-1]))
    return np.sqrt(s).astype(x.dtype, copy=False).reshape(x.shape[:-1])


def norm_all(x: np.ndarray) -> float:
    """``x.norm(2).item()``: the 2-norm of all of ``x`` (any shape, 0-d too) as a Python float."""
    return float(norm_rows(np.reshape(x, (1, -1)))[0])


def norm_columns(x: np.ndarray) -> np.ndarray:
    """torch's ``torch.norm(x, dim=-2)`` for ``x`` of shape ``(..., m, n)``.

    With ``n > 1`` each column's squares are added sequentially over the rows (no FMA);
    with ``n == 1`` the reduced axis is contiguous and torch takes the lane algorithm
    (:func:`norm_rows`); over one row, ``|x|``. Returns shape ``x.shape[:-2] + (n,)``.
    """
    x = np.ascontiguousarray(x)
    if x.shape[-1] == 1:
        return norm_rows(x[..., 0])[..., None]
    if x.shape[-2] == 1:
        return np.abs(x[..., 0, :])
    work = x.astype(np.float32) if x.dtype == np.float16 else x
    s = _sequential_sum(np.multiply(work, work), axis=-2)                # s = rn(s + rn(x*x)) over rows
    return np.sqrt(s).astype(x.dtype, copy=False)


def _ceil_log2(value: int) -> int:
    return 0 if value <= 1 else int(value - 1).bit_length()


def _multi_row_sum(v: np.ndarray) -> np.ndarray:
    """SumKernel.cpp ``multi_row_sum`` over axis 1 of ``v`` (``(rows, size, *lanes)``).

    Four accumulator levels: level 0 adds ``step = 2**max(4, ceil_log2(size) // 4)``
    loads in order and passes its sum to level 1; level 1 passes its sum on every ``step``
    chunks, level 2 every ``step**2``; level 3 keeps everything. At the end the loads left
    over go to level 0, and level 0 + level 1 + level 2 + level 3, in that order.
    """
    rows, size, rest = v.shape[0], v.shape[1], v.shape[2:]
    step = 1 << max(4, _ceil_log2(size) // 4)
    chunks = size // step
    level0 = _sequential_sum(v[:, : chunks * step].reshape(rows, chunks, step, *rest), axis=2)
    groups1 = chunks // step
    level1 = _sequential_sum(level0[:, : groups1 * step].reshape(rows, groups1, step, *rest), axis=2)
    groups2 = groups1 // step
    level2 = _sequential_sum(level1[:, : groups2 * step].reshape(rows, groups2, step, *rest), axis=2)
    acc0 = _sequential_sum(v[:, chunks * step:], axis=1)                  # the loads after the last chunk
    acc1 = _sequential_sum(level0[:, groups1 * step:], axis=1)            # chunks not yet passed on
    acc2 = _sequential_sum(level1[:, groups2 * step:], axis=1)
    acc3 = _sequential_sum(level2, axis=1)
    return ((acc0 + acc1) + acc2) + acc3


def _row_sum(v: np.ndarray) -> np.ndarray:
    """SumKernel.cpp ``row_sum`` (4 interleaved streams) over axis 1 of ``v`` (``(rows, size, *lanes)``)."""
    rows, size, rest = v.shape[0], v.shape[1], v.shape[2:]
    quads = size // 4
    streams = _multi_row_sum(v[:, : 4 * quads].reshape(rows, quads, 4, *rest))  # stream k: loads 4i + k
    total = streams[:, 0].copy()
    for i in range(4 * quads, size):                                           # leftover loads to stream 0
        total += v[:, i]
    for k in range(1, 4):
        total += streams[:, k]
    return total


#: torch splits a reduction to a single value over more elements than this among its threads.
GRAIN_SIZE = 32768


def torch_sum(x: np.ndarray, threads: int = 1) -> np.ndarray:
    """torch's ``x.sum(dim=-1)`` of a C-contiguous ``x`` (``(rows, n)`` -> ``(rows,)``).

    The cascade sum of SumKernel.cpp: with ``n`` below the lane count, the scalar
    :func:`_row_sum`; else :func:`_row_sum` of the ``n // L`` vectors of ``L`` lanes, then
    ``final = 0 + the scalar tail`` in order, ``+ lane[0] + ... + lane[L-1]``, and the
    output ``0 + final``.

    ``threads``: torch's ``get_num_threads()``. When the result is one value (one row)
    of more than :data:`GRAIN_SIZE` elements, torch splits it into
    ``min(threads, ceil(n / GRAIN_SIZE))`` chunks of ``ceil(n / chunks)`` elements and
    adds the chunk sums in order; with several rows every row is summed whole.
    """
    rows, n = x.shape
    if rows == 1 and threads > 1 and n > GRAIN_SIZE:
        parts = min(threads, -(-n // GRAIN_SIZE))
        size = -(-n // parts)
        total = np.zeros(1, x.dtype)
        for begin in range(0, n, size):
            total += torch_sum(x[:, begin: begin + size])
        return total
    lanes = _lanes(x.dtype)
    zero = x.dtype.type(0)
    if n < lanes:
        return _row_sum(x) + zero
    vectors = n // lanes
    lane_sums = _row_sum(x[:, : vectors * lanes].reshape(rows, vectors, lanes))
    final = np.zeros(rows, x.dtype)
    for k in range(vectors * lanes, n):                                        # the scalar tail first
        final += x[:, k]
    for k in range(lanes):                                                     # then the lanes, in order
        final += lane_sums[:, k]
    return final + zero


# --------------------------------------------------------------------------------------
# torch.linalg.vector_norm, every order
# --------------------------------------------------------------------------------------


def _c_pow_functions() -> dict[np.dtype, Any] | None:
    """C's ``powf`` (float32) and ``pow`` (float64) from the platform's math library, as
    ufuncs; None where none can be loaded. Loaded once, on first use."""
    if not _C_POW:
        try:
            libm = ctypes.CDLL(ctypes.util.find_library("m"))
            powf, pow64 = libm.powf, libm.pow
        except (OSError, AttributeError, TypeError):
            _C_POW.append(None)
        else:
            powf.restype, powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
            pow64.restype, pow64.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]
            _C_POW.append({np.dtype(np.float32): np.frompyfunc(powf, 2, 1),
                           np.dtype(np.float64): np.frompyfunc(pow64, 2, 1)})
    return _C_POW[0]


_C_POW: list[dict[np.dtype, Any] | None] = []


def c_pow(base: np.ndarray, exponent: Any) -> np.ndarray:
    """``std::pow(base, exponent)`` elementwise, in ``base``'s dtype (float32 or float64).

    torch's scalar norm kernel calls C's ``powf``/``pow`` (glibc's on Linux), which are not
    correctly rounded, and neither ``np.power`` (SIMD code) nor ``pow`` in float64 rounded
    to float32 gives their bits (measured: 79% and 99.9% of float32 results agree). So this
    calls the C library itself, one element at a time (about 1 µs an element). Where no C
    math library can be loaded it falls back to ``np.power``, which is not bit-exact.
    """
    base = np.asarray(base)
    e = base.dtype.type(exponent)  # torch: acc_t(ord)
    functions = _c_pow_functions()
    if functions is None:
        return np.power(base, e)
    return np.asarray(functions[base.dtype](base, e), dtype=base.dtype)


def _scalar_sum(terms: np.ndarray, threads: int) -> Any:
    """The sum of ATen's ``binary_kernel_reduce``: ``0 + t[0] + t[1] + ...``, each addition
    rounded, in order. With ``threads > 1`` and at least :data:`GRAIN_SIZE` terms, torch
    splits them into ``min(threads, ceil(n / GRAIN_SIZE))`` chunks of ``ceil(n / chunks)``,
    sums each so, and adds the chunk sums in order to 0."""
    n = terms.size
    zero = terms.dtype.type(0)
    if threads == 1 or n < GRAIN_SIZE:
        return zero + np.add.accumulate(terms)[-1]
    chunks = min(threads, -(-n // GRAIN_SIZE))
    size = -(-n // chunks)
    total = zero
    for begin in range(0, n, size):
        total = total + (zero + np.add.accumulate(terms[begin: begin + size])[-1])
    return total


def _order_name(ord: float) -> str:
    """``ord`` as torch prints it in its messages (``-1``, ``inf``, ``-0.5``)."""
    return str(int(ord)) if math.isfinite(ord) and ord == int(ord) else str(ord)


def vector_norm(x: Any, ord: float = 2.0, *, threads: int = 1) -> np.ndarray:
    r"""torch's ``torch.linalg.vector_norm(x, ord)`` of a whole array, bit for bit.

    Parameters
    ----------
    x : ndarray
        float16, float32 or float64, any shape (0-d too). Its elements are reduced in
        memory order (C or Fortran order, as torch reduces a tensor that views the array).
    ord : float, default 2.0
        The order :math:`p`: any real number or ``±inf``.
    threads : int, default 1
        torch's ``get_num_threads()``: the scalar reduction (every ``ord`` but 2 and
        ``±inf`` for float32/float64, every ``ord`` for float16) splits arrays of more than
        :data:`GRAIN_SIZE` elements among the threads.

    Returns
    -------
    ndarray
        0-d, of ``x``'s dtype.

    Notes
    -----
    With :math:`T` the accumulation type (float32 for float16 and float32, float64 for
    float64), :math:`\oplus` an addition rounded to :math:`T` and ``pow`` C's ``powf``/``pow``
    (:func:`c_pow`):

    .. math::

        \|x\|_p = \begin{cases}
        |x_0| & n = 1,\ p \ne 0 \\
        \text{lane 2-norm of :func:`norm_rows`} & p = 2,\ \text{float32/float64} \\
        \max_i |x_i|,\ \min_i |x_i| & p = \infty,\ -\infty \\
        0 \oplus [x_0 \ne 0] \oplus [x_1 \ne 0] \oplus \cdots & p = 0 \\
        0 \oplus |x_0| \oplus |x_1| \oplus \cdots & p = 1 \\
        \sqrt{0 \oplus x_0^2 \oplus x_1^2 \oplus \cdots} & p = 2,\ \text{float16 (squares exact in float32)} \\
        \mathrm{pow}(0 \oplus \mathrm{pow}(|x_0|, p) \oplus \cdots,\ T(1) / T(p)) & \text{otherwise}
        \end{cases}

    then rounded to ``x``'s dtype. NaN propagates (``p = 0`` counts it as nonzero; for
    ``±inf`` the result is the default quiet NaN, whatever NaN was in ``x``). An
    empty array has norm 0; torch refuses ``p < 0`` and ``p = inf`` there (no identity),
    and so does this (ValueError, torch's message).

    Examples
    --------
    >>> float(vector_norm(np.array([3.0, -4.0])))
    5.0
    >>> float(vector_norm(np.array([3.0, -4.0, 0.0], np.float32), 0))
    2.0
    """
    x = np.asarray(x)
    dtype = x.dtype
    if x.size == 0:
        if ord < 0 or ord == math.inf:
            raise ValueError(f"linalg.vector_norm cannot compute the {_order_name(ord)} norm on an empty tensor "
                             "because the operation does not have an identity")
        return np.zeros((), dtype)
    flat = np.ravel(x, order="K")                                  # memory order
    if flat.size == 1 and ord != 0:
        return np.abs(flat).reshape(())                            # one element: |x|, no pow
    if ord == 2 and dtype != np.float16:
        return norm_rows(flat.reshape(1, -1)).reshape(())          # the vectorized lane path
    acc = np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)
    magnitudes = np.abs(flat).astype(acc, copy=False)              # acc_t(|x|)
    if ord == math.inf or ord == -math.inf:
        result = np.max(magnitudes) if ord > 0 else np.min(magnitudes)  # AbsMaxOps / AbsMinOps
        if np.isnan(result):
            result = acc.type(math.nan)                            # any NaN gives the default quiet NaN
    elif ord == 0:
        result = _scalar_sum((flat != 0).astype(acc), threads)     # NormZeroOps: acc + (x != 0)
    elif ord == 1:
        result = _scalar_sum(magnitudes, threads)                  # NormOneOps: acc + |x|
    elif ord == 2:
        result = np.sqrt(_scalar_sum(np.multiply(magnitudes, magnitudes), threads))  # NormTwoOps (float16)
    else:
        total = _scalar_sum(c_pow(magnitudes, ord), threads)       # NormOps: acc + pow(|x|, p)
        result = c_pow(total, acc.type(1) / acc.type(ord))         # project: pow(acc, acc_t(1) / p)
    with np.errstate(over="ignore"):                               # float16: beyond 65504 is inf, as in torch
        return np.asarray(result).astype(dtype)
