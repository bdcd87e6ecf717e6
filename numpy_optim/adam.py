"""Adam (with coupled L2 weight decay, "Adam + L2") and AdamW (decoupled weight decay)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import (
    HALF_TAIL_LANES,
    add_alpha,
    as_dtype_scalar,
    fma,
    half_round,
    half_scalar,
    scalar_fma,
    scalar_fma_exact,
    store_,
    tail_or_fma,
)
from ._fused import body_length, check_compute_dtype, fma_double, lanes
from .optimizer import LOW_PRECISION_VALIDATORS, Optimizer, check_betas, check_bool, check_fused, check_nonnegative


class AdamStep(NamedTuple):
    """The scalars of one Adam / AdamW step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    decoupled: bool  # weight_decay != 0 and AdamW: shrink the parameter
    coupled: bool  # weight_decay != 0 and Adam: L2 folded into the gradient
    low_weight: bool  # 1 - beta1 < 0.5: torch's lerp branch
    amsgrad: bool
    weight_decay: float
    decay: float  # 1 - lr * weight_decay
    weight: float  # 1 - beta1
    weight_minus_one: float  # w - 1, with w rounded to the arrays' dtype first (exact)
    beta2: float
    one_minus_beta2: float  # 1 - beta2
    bias_correction2_sqrt: float  # sqrt(1 - beta2**t)
    eps: float
    neg_step_size: float  # -lr / (1 - beta1**t)
    float16: bool = False  # float16 parameters, computed on float32 copies as torch computes half ops
    bfloat16: bool = False  # (the same for bfloat16; numpy_optim/_fma.py: add_alpha, store_)


def adam_step(
    *, step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
    amsgrad: bool, maximize: bool, decoupled_weight_decay: bool, dtype: np.dtype,
) -> AdamStep:
    """The scalars of step ``step`` (the first is 1), in Python floats as torch computes
    them (bias corrections with Python's ``**``, i.e. libm pow)."""
    weight = 1 - beta1
    bias_correction1 = 1 - beta1 ** float(step)
    bias_correction2 = 1 - beta2 ** float(step)
    return AdamStep(
        maximize=maximize, decoupled=weight_decay != 0 and decoupled_weight_decay,
        coupled=weight_decay != 0 and not decoupled_weight_decay, amsgrad=amsgrad,
        low_weight=abs(as_dtype_scalar(weight, dtype)) < 0.5,  # torch branches on the weight in the arrays' dtype
        weight_decay=weight_decay, decay=1 - lr * weight_decay, weight=weight,
        weight_minus_one=as_dtype_scalar(weight, dtype) - 1, beta2=beta2, one_minus_beta2=1 - beta2,
        bias_correction2_sqrt=bias_correction2**0.5, eps=eps, neg_step_size=-(lr / bias_correction1),
    )


def adam_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: AdamStep) -> None:
    r"""One Adam / AdamW step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, exp_avg, exp_avg_sq(, max_exp_avg_sq)]``, one shape and dtype;
        all but ``grad`` are updated in place.
    scratch : list of ndarray
        Three work arrays ``t``, ``d``, ``u`` of that shape and dtype (contents on entry
        ignored), and for float32 a float64 one more (the work row of
        :func:`numpy_optim._fma.fma`). Whole arrays or blocks of them: the optimizer
        passes blocks (numpy_optim/_blocks.py).
    k : AdamStep
        The step's flags and scalars (:func:`adam_step`).

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it (:math:`t` is
    the step, the first is 1):

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        \theta &\leftarrow (1 - \alpha\lambda)\,\theta \ \text{(AdamW: decoupled decay, before the moments)} \\
        g &\leftarrow g + \lambda \theta \ \text{(Adam: L2 folded into the gradient)} \\
        m_t &\leftarrow m_{t-1} + (1 - \beta_1)(g - m_{t-1})
              \quad (= \beta_1 m_{t-1} + (1 - \beta_1) g) \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        \hat v_t &\leftarrow \max(\hat v_{t-1}, v_t) \ \text{if amsgrad, else } v_t \\
        d &\leftarrow \sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon \\
        \theta &\leftarrow \theta - \frac{\alpha}{1 - \beta_1^t} \, m_t / d

    which is the specification's
    :math:`\theta \leftarrow \theta - \alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon)` with
    :math:`\hat m_t = m_t / (1 - \beta_1^t)`, :math:`\hat v_t = v_t / (1 - \beta_2^t)`.
    The multiply-adds torch fuses (the L2 ``add`` with ``alpha``, ``lerp``, ``addcmul``)
    are rounded once in float32, as torch's FMA rounds them, and so are the L2 term and
    the ``lerp`` in float64, where a near cancellation would otherwise be amplified by the
    division (:mod:`numpy_optim._fma`).
    """
    param, grad, exp_avg, exp_avg_sq = arrays[:4]
    t, d, u = scratch[:3]
    w = scratch[3] if len(scratch) > 3 else t  # fma's work row: float64 for float32 arrays
    half = {"float16": k.float16, "bfloat16": k.bfloat16}  # (float32 copies of half arrays: store_ rounds)
    exact_v = k.float16 or k.bfloat16  # (torch's half addcmul: one float32 FMA, rounded once)
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decoupled:
        store_(np.multiply(param, k.decay, param), **half)  # AdamW: torch shrinks the parameter first
    if k.coupled:  # torch: grad.add(param, alpha=weight_decay)
        grad = add_alpha(grad, param, k.weight_decay, u, work=w, exact=True, **half)
    # m_t: torch's lerp(m, g, w) = fma(w, g - m, m) for w < 0.5, else fma(w - 1, g - m, g),
    # with w (a float32 for float32 arrays) minus 1 exact.
    np.subtract(grad, exp_avg, t)
    if k.low_weight:
        fma(t, k.weight, exp_avg, exp_avg, work=w, exact=True)
    else:
        fma(t, k.weight_minus_one, grad, exp_avg, work=w, exact=True)
    store_(exp_avg, **half)
    # v_t: torch's exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    store_(np.multiply(exp_avg_sq, k.beta2, exp_avg_sq), **half)
    np.multiply(k.one_minus_beta2, grad, t)
    store_(fma(t, grad, exp_avg_sq, exp_avg_sq, work=w, exact=exact_v), **half)
    second_moment = np.maximum(arrays[4], exp_avg_sq, out=arrays[4]) if k.amsgrad else exp_avg_sq
    # torch adds eps AFTER the bias correction: sqrt(v) / sqrt(bc2) + eps.
    store_(np.sqrt(second_moment, d), **half)
    store_(np.divide(d, k.bias_correction2_sqrt, d), **half)
    store_(np.add(d, half_scalar(k.eps, **half), d), **half)  # (add(s) on half: s a half scalar)
    np.multiply(k.neg_step_size, exp_avg, t)  # param += (-step_size * exp_avg) / denom
    np.divide(t, d, t)
    store_(np.add(param, t, param), **half)


def adam_compiled(
    maximize: bool, decoupled: bool, coupled: bool, low_weight: bool, amsgrad: bool, float16: bool = False,
    bfloat16: bool = False,
) -> Callable[..., None]:
    """The compiled kernel: :func:`adam_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`AdamStep`'s flags. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad``, ``exp_avg``, ``exp_avg_sq`` and
    ``max_exp_avg_sq``; ``constants`` holds :class:`AdamStep`'s float fields in the arrays'
    dtype.
    """

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, decay, weight, weight_minus_one = constants[0], constants[1], constants[2], constants[3]
        beta2, one_minus_beta2, bias_correction2_sqrt = constants[4], constants[5], constants[6]
        eps, neg_step_size = constants[7], constants[8]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            exp_avg, exp_avg_sq = view(table[row, 3], n, constants), view(table[row, 4], n, constants)
            max_exp_avg_sq = view(table[row, 5], n, constants)
            for i in range(n):
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decoupled:
                    p = p * decay  # np.multiply(param, decay, param)
                if coupled:
                    g = scalar_fma_exact(p, weight_decay, g)  # fma(param, weight_decay, grad, exact=True)
                m = exp_avg[i]
                t = g - m  # np.subtract(grad, exp_avg)
                if low_weight:
                    m = scalar_fma_exact(t, weight, m)  # fma(t, weight, exp_avg, exact=True)
                else:
                    m = scalar_fma_exact(t, weight_minus_one, g)  # fma(t, weight - 1, grad, exact=True)
                v = exp_avg_sq[i] * beta2  # np.multiply(exp_avg_sq, beta2)
                v = scalar_fma(one_minus_beta2 * g, g, v)  # np.multiply(1 - beta2, grad); fma(t, grad, exp_avg_sq)
                exp_avg[i] = m
                exp_avg_sq[i] = v
                if amsgrad:
                    vmax = max_exp_avg_sq[i]
                    v = vmax if vmax > v or vmax != vmax else v  # np.maximum: NaN first, on a tie the second
                    max_exp_avg_sq[i] = v
                d = np.sqrt(v) / bias_correction2_sqrt + eps  # np.sqrt; np.divide; np.add
                param[i] = p + (neg_step_size * m) / d  # np.multiply(-step_size, exp_avg); np.divide; np.add

    def half_kernel(table: Any, constants: Any) -> None:  # float16 / bfloat16: every store rounded (store_)
        weight_decay, decay, weight, weight_minus_one = constants[0], constants[1], constants[2], constants[3]
        beta2, one_minus_beta2, bias_correction2_sqrt = constants[4], constants[5], constants[6]
        eps, neg_step_size = half_round(constants[7], float16, bfloat16), constants[8]  # add(eps): a half scalar
        alpha = half_round(weight_decay, float16, bfloat16)  # add's alpha: a half scalar
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            exp_avg, exp_avg_sq = view(table[row, 3], n, constants), view(table[row, 4], n, constants)
            max_exp_avg_sq = view(table[row, 5], n, constants)
            body = n - n % HALF_TAIL_LANES
            for i in range(n):
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g
                if decoupled:
                    p = half_round(p * decay, float16, bfloat16)
                if coupled:  # add_alpha(grad, param, weight_decay)
                    g = half_round(tail_or_fma(i >= body, p, alpha, g, float16, bfloat16), float16, bfloat16)
                m = exp_avg[i]
                t = g - m
                if low_weight:
                    m = half_round(scalar_fma_exact(t, weight, m), float16, bfloat16)
                else:
                    m = half_round(scalar_fma_exact(t, weight_minus_one, g), float16, bfloat16)
                v = half_round(exp_avg_sq[i] * beta2, float16, bfloat16)
                v = half_round(scalar_fma_exact(one_minus_beta2 * g, g, v), float16, bfloat16)
                exp_avg[i] = m
                exp_avg_sq[i] = v
                if amsgrad:
                    vmax = max_exp_avg_sq[i]
                    v = vmax if vmax > v or vmax != vmax else v
                    max_exp_avg_sq[i] = v
                d = half_round(np.sqrt(v), float16, bfloat16)
                d = half_round(d / bias_correction2_sqrt, float16, bfloat16)
                d = half_round(d + eps, float16, bfloat16)
                param[i] = half_round(p + (neg_step_size * m) / d, float16, bfloat16)

    return half_kernel if float16 or bfloat16 else kernel


# --------------------------------------------------------------------------------------
# fused=True: torch's fused CPU kernel (../shared/reference/torch-fused-kernels.md)
# --------------------------------------------------------------------------------------

#: Work arrays :func:`adam_fused_update_` needs (and for float32 one float64 row more).
ADAM_FUSED_SCRATCH = 3


class AdamFusedStep(NamedTuple):
    """The scalars of one fused Adam / AdamW step: flags (bools) first, then the constants
    (floats, in double: the caller casts them to the arrays' dtype, as torch does)."""

    maximize: bool
    decoupled: bool  # weight_decay != 0 and AdamW: shrink the parameter
    coupled: bool  # weight_decay != 0 and Adam: L2 folded into the gradient
    low_weight: bool  # |D(1 - beta1)| < 0.5: torch's lerp branch
    amsgrad: bool
    half: bool  # float16 / bfloat16 parameters (computed in float32): 16 lanes
    weight_decay: float
    decay: float  # fma(-lr, weight_decay, 1.0) in double, rounded once
    weight: float  # 1 - beta1
    weight_minus_one: float  # D(1 - beta1) - 1 (exact)
    beta2: float
    one_minus_beta2: float  # 1 - beta2
    bias_correction2_sqrt: float  # sqrt(1 - beta2**t)
    eps: float
    neg_step_size: float  # -lr / (1 - beta1**t)
    tail_weight_minus_one: float  # -(1 - D(1 - beta1)): W - 1, but -0 where W = 1 (the scalar tail's)


def adam_fused_step(
    *, step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, amsgrad: bool,
    maximize: bool, decoupled_weight_decay: bool, dtype: np.dtype, half: np.dtype | None,
) -> AdamFusedStep:
    """The scalars of fused step ``step`` (the first is 1), in double as torch computes
    them: ``1 - beta**t`` with ``t`` the float step (libm pow), ``sqrt`` of the second bias
    correction, and AdamW's ``1 - lr * weight_decay`` contracted into one fma (as GCC
    compiles it). ``dtype`` is the arrays' (float32 or float64); ``half`` the parameters'
    dtype when it is float16 / bfloat16 (then ``dtype`` is float32), else None."""
    compute, storage = check_compute_dtype(dtype, half)
    weight = 1 - beta1
    bias_correction1 = 1 - beta1 ** float(step)
    bias_correction2 = 1 - beta2 ** float(step)
    return AdamFusedStep(
        maximize=maximize, decoupled=weight_decay != 0 and decoupled_weight_decay,
        coupled=weight_decay != 0 and not decoupled_weight_decay,
        low_weight=abs(as_dtype_scalar(weight, compute)) < 0.5, amsgrad=amsgrad, half=storage is not None,
        weight_decay=weight_decay, decay=fma_double(-lr, weight_decay, 1.0), weight=weight,
        weight_minus_one=as_dtype_scalar(weight, compute) - 1, beta2=beta2, one_minus_beta2=1 - beta2,
        bias_correction2_sqrt=math.sqrt(bias_correction2), eps=eps, neg_step_size=-(lr / bias_correction1),
        tail_weight_minus_one=-(1 - as_dtype_scalar(weight, compute)),
    )


def adam_fused_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: AdamFusedStep) -> None:
    r"""One Adam / AdamW step as torch's fused CPU kernel computes it (``fused=True``), in place.

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, exp_avg, exp_avg_sq(, max_exp_avg_sq)]``: 1-d, C-contiguous, one
        length and dtype (float32 or float64; for float16 / bfloat16 parameters float32
        copies, rounded back by the caller after the call); all but ``grad`` are updated
        in place. The vector body is the first ``n - n % lanes`` elements (16 for
        ``k.half``, else 8 float32, 4 float64), so a part of a parameter must start a
        multiple of 64 elements from its start, and only its last part may hold its tail.
    scratch : list of ndarray
        :data:`ADAM_FUSED_SCRATCH` work arrays ``t``, ``d``, ``u`` of that length and
        dtype, and for float32 a float64 one more (the work row of
        :func:`numpy_optim._fma.fma`).
    k : AdamFusedStep
        The step's flags and scalars (:func:`adam_fused_step`).

    Notes
    -----
    With :math:`D(x)` the double :math:`x` cast to the arrays' dtype, every fma rounded
    once, :math:`W = D(1 - \beta_1)`, :math:`c_2 = D(1 - \beta_2)`:

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        \theta &\leftarrow \theta\, D(\operatorname{fma}(-\alpha, \lambda, 1)) \ \text{(AdamW)} \\
        g &\leftarrow \operatorname{fma}(\theta, D(\lambda), g) \ \text{(Adam with L2)} \\
        m &\leftarrow \operatorname{fma}(W, g - m, m) \ \text{if } |W| < 0.5,
             \text{ else body } \operatorname{fma}(W - 1, g - m, g), \
             \text{tail } \operatorname{fma}(-(1 - W), g - m, g) \\
        v &\leftarrow \text{body } \operatorname{fma}(g\,c_2, g, v\,D(\beta_2)), \
             \text{tail } \operatorname{fma}(v, D(\beta_2), (c_2 g) g) \\
        \hat v &\leftarrow \text{body } \max(\hat v, v) \ \text{(NaN if either is)}, \
             \text{tail } v \text{ if } \hat v < v \text{ else } \hat v \ \text{(if amsgrad, else } v) \\
        \theta &\leftarrow \theta + D(-\alpha / (1 - \beta_1^t))\, m \,/\,
             (\sqrt{\hat v} / D(\sqrt{1 - \beta_2^t}) + D(\epsilon))

    For float16 / bfloat16 parameters every value stays float32 within the step (torch's
    opmath) and is rounded to the parameters' dtype only when stored.

    The tail's two differences from the body are torch's C++ for one element:
    ``g - (g - m) * (1 - W)``, contracted, is the body's multiply-add but for the sign of a
    zero product (:math:`1 - W = +0` where :math:`W = 1`, i.e. ``beta1 = 0``: a zero
    gradient on a zero moment makes ``m`` +0 there and -0 in the body), and
    ``std::max(max_exp_avg_sq, v)`` keeps the old maximum where ``v`` is NaN.
    """
    n = len(arrays[0])
    body = body_length(n, lanes(arrays[0].dtype, k.half))
    for part, tail in ((slice(0, body), False), (slice(body, n), True)):
        if part.start < part.stop:
            _adam_fused_part([a[part] for a in arrays], [s[part] for s in scratch], k, tail)


def _adam_fused_part(arrays: list[np.ndarray], scratch: list[np.ndarray], k: AdamFusedStep, tail: bool) -> None:
    """:func:`adam_fused_update_` on the vector body, or (``tail``) on the scalar tail."""
    param, grad, exp_avg, exp_avg_sq = arrays[:4]
    t, d, u = scratch[:3]
    w = scratch[3] if len(scratch) > 3 else None  # fma's float64 work row for float32
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decoupled:
        np.multiply(param, k.decay, param)  # AdamW: the parameter shrinks first, before the moments
    if k.coupled:
        grad = fma(param, k.weight_decay, grad, u, work=w, exact=True)  # grad.add(param, alpha=wd): one fma
    np.subtract(grad, exp_avg, t)  # m: torch's lerp(m, g, W)
    if k.low_weight:
        fma(t, k.weight, exp_avg, exp_avg, work=w, exact=True)
    elif tail:  # the scalar tail: g - (g - m) * (1 - W), contracted: fma(-(1 - W), g - m, g)
        fma(t, k.tail_weight_minus_one, grad, exp_avg, work=w, exact=True)
    else:  # the vector body: fma(W - 1, g - m, g)
        fma(t, k.weight_minus_one, grad, exp_avg, work=w, exact=True)
    if tail:  # the scalar tail: fma(v, beta2, ((1 - beta2) * g) * g)
        np.multiply(k.one_minus_beta2, grad, t)
        np.multiply(t, grad, t)
        fma(exp_avg_sq, k.beta2, t, exp_avg_sq, work=w, exact=True)
    else:  # the vector body: fma(g * (1 - beta2), g, v * beta2)
        np.multiply(exp_avg_sq, k.beta2, exp_avg_sq)
        np.multiply(k.one_minus_beta2, grad, t)
        fma(t, grad, exp_avg_sq, exp_avg_sq, work=w, exact=True)
    second_moment = exp_avg_sq
    if k.amsgrad and tail:  # the scalar tail: std::max(max, v), i.e. v where max < v (not where v is NaN)
        second_moment = arrays[4]
        np.copyto(second_moment, exp_avg_sq, where=np.less(second_moment, exp_avg_sq))
    elif k.amsgrad:  # the vector body: maximum(max, v), NaN where either is
        second_moment = np.maximum(arrays[4], exp_avg_sq, out=arrays[4])
    np.sqrt(second_moment, d)  # sqrt(v) / sqrt(bc2) + eps: eps after the bias correction
    np.divide(d, k.bias_correction2_sqrt, d)
    np.add(d, k.eps, d)
    np.multiply(k.neg_step_size, exp_avg, t)  # param += (-step_size * m) / denom
    np.divide(t, d, t)
    np.add(param, t, param)


def adam_fused_compiled(
    maximize: bool, decoupled: bool, coupled: bool, low_weight: bool, amsgrad: bool, half: bool,
) -> Callable[..., None]:
    """The compiled kernel: :func:`adam_fused_update_`'s lines as a loop over the vector
    body, then one over the scalar tail, of every row of ``table`` (length, then the
    addresses of ``param``, ``grad``, ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq``).
    ``constants`` holds :class:`AdamFusedStep`'s float fields in the arrays' dtype, and
    every row starts a multiple of 64 elements from its parameter's start."""

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, decay, weight, weight_minus_one = constants[0], constants[1], constants[2], constants[3]
        beta2, one_minus_beta2, bias_correction2_sqrt = constants[4], constants[5], constants[6]
        eps, neg_step_size, tail_weight_minus_one = constants[7], constants[8], constants[9]
        width = 16 if half else 8 if constants.itemsize == 4 else 4  # lanes(dtype, half)
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            exp_avg, exp_avg_sq = view(table[row, 3], n, constants), view(table[row, 4], n, constants)
            max_exp_avg_sq = view(table[row, 5], n, constants)
            body = n - n % width  # body_length(n, lanes)
            for i in range(body):  # the vector body
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decoupled:
                    p = p * decay  # np.multiply(param, decay, param)
                if coupled:
                    g = scalar_fma_exact(p, weight_decay, g)  # fma(param, weight_decay, grad)
                t = g - exp_avg[i]  # np.subtract(grad, exp_avg)
                if low_weight:
                    m = scalar_fma_exact(t, weight, exp_avg[i])  # fma(t, weight, exp_avg)
                else:
                    m = scalar_fma_exact(t, weight_minus_one, g)  # fma(t, weight - 1, grad)
                v = scalar_fma_exact(one_minus_beta2 * g, g, exp_avg_sq[i] * beta2)  # multiply, multiply, fma
                exp_avg[i] = m
                exp_avg_sq[i] = v
                if amsgrad:
                    vmax = max_exp_avg_sq[i]
                    v = vmax if vmax > v or vmax != vmax else v  # np.maximum: NaN first, on a tie the second
                    max_exp_avg_sq[i] = v
                d = np.sqrt(v) / bias_correction2_sqrt + eps  # np.sqrt; np.divide; np.add
                param[i] = p + (neg_step_size * m) / d  # np.multiply(-step_size, exp_avg); np.divide; np.add
            for i in range(body, n):  # the scalar tail: the same lines but m's (W = 1), v's and max's (NaN)
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g
                if decoupled:
                    p = p * decay
                if coupled:
                    g = scalar_fma_exact(p, weight_decay, g)
                t = g - exp_avg[i]
                if low_weight:
                    m = scalar_fma_exact(t, weight, exp_avg[i])
                else:
                    m = scalar_fma_exact(t, tail_weight_minus_one, g)  # fma(t, -(1 - W), grad)
                v = scalar_fma_exact(exp_avg_sq[i], beta2, (one_minus_beta2 * g) * g)  # multiply, multiply, fma
                exp_avg[i] = m
                exp_avg_sq[i] = v
                if amsgrad:
                    vmax = max_exp_avg_sq[i]
                    v = v if vmax < v else vmax  # std::max(max, v): the old max where v is NaN
                    max_exp_avg_sq[i] = v
                d = np.sqrt(v) / bias_correction2_sqrt + eps
                param[i] = p + (neg_step_size * m) / d

    return kernel


class Adam(Optimizer):
    r"""Adam, with optional L2 weight decay folded into the gradient ("Adam + L2").

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 0.001
        Learning rate :math:`\alpha`.
    betas : (float, float), default (0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)` of the first and second moments.
    eps : float, default 1e-8
        :math:`\epsilon`, added to :math:`\sqrt{\hat v_t}` (after the bias correction).
    weight_decay : float, default 0.0
        L2 coefficient :math:`\lambda`, added to the gradient *before* the moments, so it
        is scaled by the adaptive step: the coupling AdamW removes.
    amsgrad : bool, default False
        Use the running maximum of :math:`v_t` (AMSGrad).
    maximize : bool, default False
        Maximize the objective instead of minimizing it.
    decoupled_weight_decay : bool, default False
        Decouple the weight decay from the gradient (AdamW), as torch 2.13's
        ``Adam(decoupled_weight_decay=True)``; ``Adam(..., decoupled_weight_decay=True)``
        computes exactly what :class:`AdamW` computes.

    Notes
    -----
    .. math::

        g_t &= \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t), \quad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &= \theta_{t-1} - \alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    The kernels are :func:`adam_update_` (NumPy) and :func:`adam_compiled` (numba). State: ``state[i]["exp_avg"]``,
    ``state[i]["exp_avg_sq"]`` (and ``"max_exp_avg_sq"`` with amsgrad) per entry, and
    the optimizer-level ``state["step"]`` (:math:`t`).

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization" (2015); Reddi et al.,
    "On the Convergence of Adam and Beyond" (2018). Mirrors ``torch.optim.Adam``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = Adam([{"params": x, "grad": g}])
    >>> opt.step(); x.round(12)
    array([2.999])
    """

    _counts_steps = True  # (bias corrections / decays of the step count: see Optimizer._check_can_add)
    _kernel = staticmethod(adam_update_)
    _kernel_factory = staticmethod(adam_compiled)
    _n_scratch = 3
    _fused_kernel = staticmethod(adam_fused_update_)
    _fused_kernel_factory = staticmethod(adam_fused_compiled)
    _fused_n_scratch = ADAM_FUSED_SCRATCH
    _half_opmath = True
    _half_compiled = True
    _buffer_order = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "fused": check_fused,
        "lr": check_nonnegative,
        "betas": lambda name, value: check_betas(value),
        "eps": check_nonnegative,
        "weight_decay": check_nonnegative,
        "amsgrad": check_bool,
        "maximize": check_bool,
        "decoupled_weight_decay": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
        *,
        decoupled_weight_decay: bool = False,
        fused: bool = False,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        defaults.update(fused=fused, state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if hyper["amsgrad"] else set())

    def _fused_scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype,
                       half: np.dtype | None) -> AdamFusedStep:
        beta1, beta2 = hyper["betas"]
        return adam_fused_step(
            step=step, lr=hyper["lr"], beta1=beta1, beta2=beta2, eps=hyper["eps"],
            weight_decay=hyper["weight_decay"], amsgrad=hyper["amsgrad"], maximize=hyper["maximize"],
            decoupled_weight_decay=hyper["decoupled_weight_decay"], dtype=dtype, half=half,
        )

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> AdamStep:
        beta1, beta2 = hyper["betas"]
        return adam_step(
            step=step, lr=hyper["lr"], beta1=beta1, beta2=beta2, eps=hyper["eps"],
            weight_decay=hyper["weight_decay"], amsgrad=hyper["amsgrad"], maximize=hyper["maximize"],
            decoupled_weight_decay=hyper["decoupled_weight_decay"], dtype=dtype,
        )


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself (the everyday use: ``"weight_decay": 0.0`` on
        biases and norms).
    lr : float, default 0.001
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0.01
        Decoupled decay :math:`\lambda`: the parameter shrinks by :math:`(1 - \alpha\lambda)`
        each step, independently of the gradient statistics.
    amsgrad : bool, default False
    maximize : bool, default False

    Notes
    -----
    .. math::

        \theta &\leftarrow (1 - \alpha \lambda)\, \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &= \theta - \alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    equal to the specification's
    :math:`\theta_t = \theta_{t-1} - \alpha(\hat m_t / (\sqrt{\hat v_t} + \epsilon) + \lambda\theta_{t-1})`.
    The moments see the data gradient only. Kernels: :func:`adam_update_` and
    :func:`adam_compiled`, with the decoupled decay.

    References
    ----------
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (2019). Mirrors
    ``torch.optim.AdamW``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = AdamW([{"params": x, "grad": g}], weight_decay=0.1)
    >>> opt.step(); x.round(12)                         # 3 - 0.0003 (decay) - 0.001 (Adam)
    array([2.9987])
    """

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
        maximize: bool = False,
        *,
        fused: bool = False,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=True, fused=fused,
            state_dtype=state_dtype, master_weights=master_weights,
        )
