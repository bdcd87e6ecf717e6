"""The numba backend: compiled twins of the NumPy kernels, bitwise equal to them.

Imported only when a step runs on the numba backend (:mod:`numpy_optim._backend` imports
it lazily), so ``import numpy_optim`` needs NumPy alone.

Each optimizer's file holds, beside its NumPy kernel, a *kernel factory*: a plain Python
function ``factory(*flags)`` returning ``kernel(table, constants)``, the NumPy kernel's
lines as one scalar loop over the elements of every row of ``table`` (a row per
parameter: its length, then the addresses of its arrays, which
:func:`numpy_optim._backend.view` turns into arrays). One call updates a whole group, so
many small parameters cost one call, not one each. :func:`kernel` compiles one per flag
combination (the flags are closure constants, so every branch is decided at compile
time and the loop vectorizes). The rules that keep the compiled bits equal to NumPy's
(../shared/reference/compiled-kernels.md):

* no ``fastmath``, ever: it contracts ``a * b + c`` into hardware FMAs (other bits);
* ``error_model="numpy"``: division by zero gives inf/NaN as in NumPy, and no
  early-exit check stops the loop from vectorizing;
* constants arrive cast to the arrays' dtype (``constants`` is an array of that dtype), as
  NumPy casts Python scalars; a float64 literal inside a float32 loop would promote it;
* :func:`numpy_optim._fma.scalar_fma` and :func:`~numpy_optim._fma.scalar_fma_exact` get
  the implementations below: float32 through float64 (exact: the float64 sum rounded to
  odd first, on every element, where the NumPy version looks for the ties it matters
  for), and the float64 exact fma as the same error-free emulation as
  :func:`numpy_optim._fma._fma64`, operation by operation (``llvm.fma.f64`` differs from
  it on special values), with its scaled split on every factor above 2**990 (NumPy
  redoes only the elements whose split overflowed; below 2**996 the halves are the same);
* ``cache=True``: compiled code is kept on disk (``__pycache__`` beside the optimizer's
  file, or ``$NUMBA_CACHE_DIR``); the closures capture only bools, so the cache hits in a
  new process.

The kernels release the GIL (``nogil``): numpy_optim runs large groups over its own
thread pool (:mod:`numpy_optim._blocks`), not numba's threading layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from . import _backend, _fma

#: How every kernel is compiled. Never add fastmath.
JIT_OPTIONS: dict[str, Any] = {"nogil": True, "cache": True, "error_model": "numpy"}


@numba.njit(**JIT_OPTIONS)
def address(array: Any) -> int:
    """The address of an array's first element (a plan's check that its tables still hold)."""
    return array.ctypes.data


@intrinsic
def _bits(typingctx: Any, x: Any) -> Any:
    """The int64 bit pattern of a float64 (a reinterpreting cast)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx: Any, x: Any) -> Any:
    """The float64 with this int64 bit pattern."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _select(typingctx: Any, condition: Any, x: Any, y: Any) -> Any:
    """``x if condition else y`` as one LLVM ``select``: no branch, so the loop around it
    still vectorizes."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.select(args[0], args[1], args[2])

    return x(types.boolean, x, x), codegen


@intrinsic
def _pointer(typingctx: Any, address: Any, like: Any) -> Any:
    """The int64 ``address`` as a pointer to ``like``'s dtype."""
    pointer = types.CPointer(like.dtype)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(address, like), codegen


@overload(_backend.view, jit_options=JIT_OPTIONS)  # type: ignore[arg-type]
def _view(address, length, like):  # unannotated: numba compares these parameters with the implementation's
    def view(address, length, like):
        return numba.carray(_pointer(address, like), (length,))

    return view


@overload(_fma.scalar_fma, jit_options=JIT_OPTIONS)  # type: ignore[arg-type]
def _scalar_fma(a, b, c):
    if a == types.float32:

        def fma32(a, b, c):  # fma(): float64 product (exact), float64 sum, float32
            return np.float32(np.float64(a) * np.float64(b) + np.float64(c))

        return fma32

    def fma64(a, b, c):  # fma(): np.multiply, then np.add
        return a * b + c

    return fma64


_SCALE, _UNSCALE, _HUGE_FACTOR = _fma._SCALE, _fma._UNSCALE, _fma._HUGE_FACTOR  # 2**-200, 2**200, 2**990


# Without branches (_select, & and | on bools): LLVM inlines these bodies into the kernel's
# loop and vectorizes it. (A larger body is not inlined, and a call per element does not
# vectorize: check with test_backend.py's vectorization test after any change.)
@overload(_fma.scalar_fma_exact, jit_options=JIT_OPTIONS)  # type: ignore[arg-type]
def _scalar_fma_exact(a, b, c):
    if a == types.float32:

        def fma32_exact(a, b, c):  # _fma._fma_narrow with exact: s rounded to odd (everywhere), then float32
            p = np.float64(a) * np.float64(b)  # exact
            q = np.float64(c)
            s = p + q
            v = s - p  # _round_sum_to_odd, line by line: TwoSum p + q = s + e
            e = (p - (s - v)) + (q - v)
            inexact = (e < 0) | (e > 0)  # NaN e (inf / NaN operands): s stays
            s = _float((_bits(s) - (inexact & ((e > 0) != (s > 0)))) | inexact)  # truncated toward zero, last bit set
            return np.float32(s)

        return fma32_exact

    def fma64_exact(a, b, c):  # _fma._fma64, line by line
        # Veltkamp's split of a factor above 2**990 is taken of it times 2**-200, always
        # (_fma64 redoes so only the elements whose split overflowed, above about 2**996:
        # below that, the scaled split has the same halves).
        p = a * b
        huge_a = abs(a) > _HUGE_FACTOR  # _split_high: Veltkamp's split of a * 2**-200
        a_scaled = a * _select(huge_a, _SCALE, 1.0)
        t = a_scaled * 134217729.0  # Veltkamp: a = ah + al
        ah = t - a_scaled
        ah = t - ah
        ah = ah * _select(huge_a, _UNSCALE, 1.0)
        al = a - ah
        huge_b = abs(b) > _HUGE_FACTOR  # b is a scalar: the Python-float split of _fma64
        b_scaled = b * _select(huge_b, _SCALE, 1.0)
        big = 134217729.0 * b_scaled
        bh = big - (big - b_scaled)
        bh = bh * _select(huge_b, _UNSCALE, 1.0)
        bl = b - bh
        e = ah * bh  # e = ((ah bh - p) + ah bl + al bh) + al bl
        e = e - p
        e = e + ah * bl
        e = e + al * bh
        e = e + al * bl
        s = c + p  # TwoSum: c + p = s + f
        t = s - c
        f = s - t
        f = c - f
        f = f + (p - t)
        v = f + e  # TwoSum: f + e = v + r
        t = v - f
        r = v - t
        r = f - r
        r = r + (e - t)
        v_bits = _bits(v)  # round v to odd: one ulp toward r where r != 0 and v is even
        v = _select((r != 0) & ((v_bits & 1) == 0), _float(v_bits + 2 * ((r > 0) == (v > 0)) - 1), v)
        result = _select(v != 0, s + v, s)  # v == 0: the sum is s exactly, with s's sign of zero (-0 + -0 is -0)
        result = _select(np.isfinite(result) & np.isfinite(e), result, s)  # overflow, inf, NaN: the plain sum c + p
        return result

    return fma64_exact


_kernels: dict[tuple[Callable[..., Any], tuple[bool, ...]], Any] = {}


def kernel(factory: Callable[..., Callable[..., None]], flags: tuple[bool, ...]) -> Any:
    """The compiled kernel ``factory(*flags)`` (compiled at its first call, then kept)."""
    key = (factory, flags)
    compiled = _kernels.get(key)
    if compiled is None:
        compiled = _kernels[key] = numba.njit(**JIT_OPTIONS)(factory(*flags))
    return compiled


# --------------------------------------------------------------------------------------
# Rounding float32 to float16 / bfloat16 precision: _fma.round_to_float16, round_to_bfloat16
# --------------------------------------------------------------------------------------
# numba has no float16 or bfloat16 type on the CPU, so these round the float32 bit pattern
# as an integer: with m = |x|'s bits and d the number of significand bits dropped,
# RNE(m) = (m + 2**(d-1) - 1 + bit d of m) with the low d bits cleared (round to nearest,
# ties to the even kept part; a carry moves into the exponent, as it should). numba widens
# the int32 pattern to int64 for the arithmetic; no branches (_select), so loops vectorize.


@intrinsic
def _bits32(typingctx: Any, x: Any) -> Any:
    """The int32 bit pattern of a float32 (a reinterpreting cast)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _float32(typingctx: Any, x: Any) -> Any:
    """The float32 with this int32 bit pattern."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


_F32_INF, _F32_QNAN = 0x7F800000, 0x7FC00000
_F16_OVERFLOW = 0x47800000  # 2**16: a float16 rounding at or above it (|x| >= 65520) is inf
_F16_HALF_SPACING, _F16_SPACING = 0x33000000, 0x33800000  # 2**-25, 2**-24 (float16's smallest subnormal)


@overload(_fma.round_to_float16, jit_options=JIT_OPTIONS)  # type: ignore[arg-type]
def _round_to_float16(x):
    if x != types.float32:
        return None

    def round_to_float16(x):
        bits = _bits32(x)
        m = bits & 0x7FFFFFFF
        sign = bits ^ m  # the sign bit (sign-extended)
        e = m >> 23  # the biased exponent: |x| in [2**(e-127), 2**(e-126))
        # d: 13 where float16 is normal (|x| >= 2**-14, e >= 113: 23 - 10 fraction bits);
        # 126 - e on float16's subnormal grid (spacing 2**-24 = bit d's weight 2**(e-150+d)),
        # down to |x| >= 2**-24 (e = 103, d = 23: the implicit bit is kept, it is odd)
        d = _select(e > 113, 13, _select(e < 103, 23, 126 - e))
        r = (m + ((1 << (d - 1)) - 1) + ((m >> d) & 1)) & -(1 << d)  # RNE(m) at bit d
        # |x| < 2**-24 (e <= 102, float32 subnormals and zero too): 2**-24 above 2**-25, else 0 (the tie is even)
        r = _select(e <= 102, _select(m > _F16_HALF_SPACING, _F16_SPACING, 0), r)
        r = _select(r >= _F16_OVERFLOW, _F32_INF, r)  # beyond 65504: inf (inf stays inf)
        r = _select(m > _F32_INF, _F32_QNAN, r)  # NaN: the quiet NaN
        return _float32(np.int32(r | sign))

    return round_to_float16


@overload(_fma.round_to_bfloat16, jit_options=JIT_OPTIONS)  # type: ignore[arg-type]
def _round_to_bfloat16(x):
    if x != types.float32:
        return None

    def round_to_bfloat16(x):  # ml_dtypes' rule: RNE at bit 16 for every finite x, subnormals too
        bits = _bits32(x)
        m = bits & 0x7FFFFFFF
        sign = bits ^ m
        r = (m + 0x7FFF + ((m >> 16) & 1)) & -0x10000  # RNE(m) at bit 16; past 0x7F7F7FFF it carries to inf
        r = _select(m > _F32_INF, _F32_QNAN, r)  # NaN: the quiet NaN, as ml_dtypes gives
        return _float32(np.int32(r | sign))

    return round_to_bfloat16


@overload(_fma.half_round, jit_options=JIT_OPTIONS)  # type: ignore[arg-type]
def _half_round(x, float16, bfloat16):
    def half_round(x, float16, bfloat16):  # (the flags are the kernels' compile-time constants)
        if float16:
            return _fma.round_to_float16(x)
        if bfloat16:
            return _fma.round_to_bfloat16(x)
        return x

    return half_round


@overload(_fma.tail_or_fma, jit_options=JIT_OPTIONS)  # type: ignore[arg-type]
def _tail_or_fma(tail, b, alpha, a, float16, bfloat16):
    def tail_or_fma(tail, b, alpha, a, float16, bfloat16):
        if tail:
            return a + _fma.half_round(alpha * b, float16, bfloat16)
        return _fma.scalar_fma_exact(b, alpha, a)

    return tail_or_fma
