"""RMSprop, optionally centered and with momentum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import add_alpha, as_dtype_scalar, fma, half_scalar, scalar_fma, scalar_fma_exact, store_
from .optimizer import LOW_PRECISION_VALIDATORS, Optimizer, check_bool, check_nonnegative


class RMSpropStep(NamedTuple):
    """The scalars of one RMSprop step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    decay: bool  # weight_decay != 0
    centered: bool
    low_weight: bool  # |1 - alpha| < 0.5 (in the arrays' dtype): torch's lerp branch
    momentum_on: bool  # momentum > 0
    weight_decay: float
    alpha: float
    weight: float  # 1 - alpha
    weight_minus_one: float  # w - 1, with w rounded to the arrays' dtype first (exact)
    eps: float
    momentum: float
    neg_lr: float  # -lr
    float16: bool = False  # float16 parameters, computed on float32 copies as torch computes half ops
    bfloat16: bool = False  # (the same for bfloat16; numpy_optim/_fma.py: add_alpha, store_)


def rmsprop_step(
    *, lr: float, alpha: float, eps: float, weight_decay: float, momentum: float, centered: bool,
    maximize: bool, dtype: np.dtype,
) -> RMSpropStep:
    """The scalars of one step, in Python floats as torch computes them."""
    weight = 1 - alpha
    return RMSpropStep(
        maximize=maximize, decay=weight_decay != 0, centered=centered,
        low_weight=abs(as_dtype_scalar(weight, dtype)) < 0.5, momentum_on=momentum > 0,
        weight_decay=weight_decay, alpha=alpha, weight=weight,
        weight_minus_one=as_dtype_scalar(weight, dtype) - 1, eps=eps, momentum=momentum, neg_lr=-lr,
    )


def rmsprop_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: RMSpropStep) -> None:
    r"""One RMSprop step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, square_avg(, momentum_buffer)(, grad_avg)]`` (the buffer with
        momentum, the average with centered), one shape and dtype; all but ``grad`` are
        updated in place.
    scratch : list of ndarray
        Two work arrays ``t``, ``u`` of that shape and dtype (contents on entry ignored),
        and for float32 a float64 one more (the work row of :func:`numpy_optim._fma.fma`).
        Whole arrays or blocks of them: the optimizer passes blocks (numpy_optim/_blocks.py).
    k : RMSpropStep
        The step's flags and scalars (:func:`rmsprop_step`).

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it:

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        g &\leftarrow g + \lambda \theta \ \text{if } \lambda \ne 0 \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g^2 \\
        \bar g_t &\leftarrow \bar g_{t-1} + (1 - \alpha)(g - \bar g_{t-1}) \ \text{if centered} \\
        d &\leftarrow \sqrt{v_t - \bar g_t^2} + \epsilon \ \text{if centered, else } \sqrt{v_t} + \epsilon \\
        b_t &\leftarrow \mu b_{t-1} + g / d, \quad \theta \leftarrow \theta - \alpha_{lr} b_t
              \ \text{if } \mu > 0 \\
        \theta &\leftarrow \theta + (-\alpha_{lr} g) / d \ \text{otherwise}

    The multiply-adds torch fuses (the L2 ``add`` with ``alpha``, ``addcmul``, ``lerp``,
    the momentum step's ``add`` with ``alpha``) are rounded once in float32, as torch's FMA
    rounds them. In float64 the ones that can nearly cancel, or feed a cancellation, are
    rounded once too (``exact=True``): the L2 term, the momentum step's ``add`` (the
    parity harness found closed-loop cases, centered or not, where its second rounding
    drifted from torch) and, centered, the ``lerp`` of :math:`\bar g`,
    :math:`v_t - \bar g_t^2` (which feeds a square root) and the ``addcmul`` of
    :math:`v_t` (whose rounding error that difference amplifies). Not centered, the
    ``addcmul`` of :math:`v_t` (a sum of non-negative terms) is rounded twice.
    ``buf.mul_(momentum).addcdiv_`` and ``addcdiv`` are not fused (each operation rounded).
    """
    param, grad, square_avg = arrays[:3]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else t  # fma's work row: float64 for float32 arrays
    half = {"float16": k.float16, "bfloat16": k.bfloat16}
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:
        # torch: grad.add(param, alpha=weight_decay)
        grad = add_alpha(grad, param, k.weight_decay, u, work=w, exact=True, **half)
    # torch: square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha); centered, v's
    # rounding error is amplified by the cancellation v - ga**2 below: rounded once then.
    store_(np.multiply(square_avg, k.alpha, square_avg), **half)
    np.multiply(k.weight, grad, t)
    store_(fma(t, grad, square_avg, square_avg, work=w, exact=k.centered), **half)
    if k.centered:
        grad_avg = arrays[-1]
        # torch: grad_avg.lerp_(grad, 1 - alpha) = fma(w, g - ga, ga) for |w| < 0.5, else
        # fma(w - 1, g - ga, g)
        np.subtract(grad, grad_avg, t)
        if k.low_weight:
            fma(t, k.weight, grad_avg, grad_avg, work=w, exact=True)
        else:
            fma(t, k.weight_minus_one, grad, grad_avg, work=w, exact=True)
        store_(grad_avg, **half)
        # torch: avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_(); one rounding,
        # which in float64 can round v - ga**2 below zero: a NaN, as in torch.
        np.negative(grad_avg, t)
        store_(fma(t, grad_avg, square_avg, t, work=w, exact=True), **half)
        store_(np.sqrt(t, t), **half)
    else:
        store_(np.sqrt(square_avg, t), **half)  # torch: avg = square_avg.sqrt()
    # torch: avg.add_(eps) (outside the sqrt, no bias correction)
    store_(np.add(t, half_scalar(k.eps, **half), t), **half)
    if k.momentum_on:
        buf = arrays[3]
        store_(np.multiply(buf, k.momentum, buf), **half)  # torch: buf.mul_(momentum).addcdiv_(grad, avg)
        np.divide(grad, t, u)
        store_(np.add(buf, u, buf), **half)
        add_alpha(param, buf, k.neg_lr, param, work=w, exact=True, **half)  # torch: param.add_(buf, alpha=-lr)
    else:
        np.multiply(k.neg_lr, grad, u)  # torch: param.addcdiv_(grad, avg, value=-lr), three roundings
        np.divide(u, t, u)
        store_(np.add(param, u, param), **half)


def rmsprop_compiled(
    maximize: bool, decay: bool, centered: bool, low_weight: bool, momentum_on: bool,
    float16: bool = False, bfloat16: bool = False,
) -> Callable[..., None]:
    """The compiled kernel: :func:`rmsprop_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`RMSpropStep`'s flags. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad``, ``square_avg`` and the buffers the
    flags use, in the order ``momentum_buffer``, ``grad_avg``; ``constants`` holds
    :class:`RMSpropStep`'s float fields in the arrays' dtype.
    """
    buf_column = 4  # the table's columns: length, param, grad, square_avg, then the buffers used
    grad_avg_column = 5 if momentum_on else 4

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, alpha, weight, weight_minus_one = constants[0], constants[1], constants[2], constants[3]
        eps, momentum, neg_lr = constants[4], constants[5], constants[6]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            square_avg = view(table[row, 3], n, constants)
            buf = view(table[row, buf_column], n, constants)
            grad_avg = view(table[row, grad_avg_column], n, constants)
            for i in range(n):
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decay:
                    g = scalar_fma_exact(p, weight_decay, g)  # fma(param, weight_decay, grad, exact=True)
                if centered:  # multiply; multiply; fma(t, grad, square_avg, exact=centered)
                    v = scalar_fma_exact(weight * g, g, square_avg[i] * alpha)
                else:
                    v = scalar_fma(weight * g, g, square_avg[i] * alpha)
                square_avg[i] = v
                if centered:
                    ga = grad_avg[i]
                    d = g - ga  # np.subtract(grad, grad_avg)
                    if low_weight:
                        ga = scalar_fma_exact(d, weight, ga)  # fma(t, weight, grad_avg, exact=True)
                    else:
                        ga = scalar_fma_exact(d, weight_minus_one, g)  # fma(t, weight - 1, grad, exact=True)
                    grad_avg[i] = ga
                    avg = np.sqrt(scalar_fma_exact(-ga, ga, v))  # np.negative; fma(-ga, ga, v, exact=True); sqrt
                else:
                    avg = np.sqrt(v)  # np.sqrt(square_avg)
                avg = avg + eps  # np.add(t, eps)
                if momentum_on:
                    b = buf[i] * momentum + g / avg  # np.multiply(buf, momentum); np.divide; np.add
                    buf[i] = b
                    param[i] = scalar_fma_exact(b, neg_lr, p)  # fma(buf, -lr, param, exact=True)
                else:
                    param[i] = p + (neg_lr * g) / avg  # np.multiply(-lr, grad); np.divide; np.add

    return kernel


class RMSprop(Optimizer):
    r"""RMSprop: steps divided by a running root mean square of the gradients.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 0.01
        Learning rate :math:`\alpha_{lr}`.
    alpha : float, default 0.99
        Smoothing constant :math:`\alpha` of the running averages; torch checks only
        ``alpha >= 0`` (so values above 1 are accepted here too).
    eps : float, default 1e-8
        :math:`\epsilon`, added to the root mean square (outside the square root).
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda` added to the gradient.
    momentum : float, default 0.0
        Momentum factor :math:`\mu`; 0 keeps no buffer.
    centered : bool, default False
        Divide by an estimate of the gradient's standard deviation (subtract the square
        of the running mean gradient :math:`\bar g`) instead of its root mean square.
    maximize : bool, default False
        Maximize the objective instead of minimizing it.

    Notes
    -----
    .. math::

        g_t &= \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        v_t &= \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1 - \alpha) g_t \quad \text{(centered)} \\
        d_t &= \sqrt{v_t - \bar g_t^2} + \epsilon \ \text{(centered), else } \sqrt{v_t} + \epsilon \\
        b_t &= \mu b_{t-1} + g_t / d_t, \quad \theta_t = \theta_{t-1} - \alpha_{lr} b_t \ \text{if } \mu > 0,
        \text{ else } \theta_t = \theta_{t-1} - \alpha_{lr} g_t / d_t

    The kernels are :func:`rmsprop_update_` (NumPy) and :func:`rmsprop_compiled` (numba).
    State: ``state[i]["square_avg"]``, ``"momentum_buffer"`` (when ``momentum > 0``) and
    ``"grad_avg"`` (when centered) per entry, all starting at zero, and the
    optimizer-level ``state["step"]``. The parameter order is torch's without its
    ``capturable``, ``foreach`` and ``differentiable`` switches, so ``maximize`` is the
    seventh positional argument here (the ninth in torch).

    torch's centered variant can turn a parameter into NaN: :math:`v_t - \bar g_t^2` is
    rounded once, and where the gradient hardly varies it is a cancellation that can
    round below zero (float64, a constant gradient of 1e-3, default ``alpha``: at step
    3187). numpy_optim computes the same rounding and gets the same NaN.

    References
    ----------
    Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning", lecture 6e
    (2012); Graves, "Generating Sequences With Recurrent Neural Networks" (2013) for the
    centered variant. Mirrors ``torch.optim.RMSprop``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = RMSprop([{"params": x, "grad": g}])
    >>> opt.step(); x.round(6)                          # 3 - 0.01 * 6 / (sqrt(0.01 * 36) + 1e-8)
    array([2.9])
    """

    _kernel = staticmethod(rmsprop_update_)
    _half_opmath = True  # float16 / bfloat16: torch's per-op rounding (numpy_optim/_fma.py: store_)
    _kernel_factory = staticmethod(rmsprop_compiled)
    _n_scratch = 2
    _buffer_order = ("square_avg", "momentum_buffer", "grad_avg")
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "lr": check_nonnegative,
        "alpha": check_nonnegative,
        "eps": check_nonnegative,
        "weight_decay": check_nonnegative,
        "momentum": check_nonnegative,
        "centered": check_bool,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
        *,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
            maximize=maximize,
        )
        defaults.update(state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return ({"square_avg"} | ({"momentum_buffer"} if hyper["momentum"] > 0 else set())
                | ({"grad_avg"} if hyper["centered"] else set()))

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> RMSpropStep:
        return rmsprop_step(
            lr=hyper["lr"], alpha=hyper["alpha"], eps=hyper["eps"], weight_decay=hyper["weight_decay"],
            momentum=hyper["momentum"], centered=hyper["centered"], maximize=hyper["maximize"], dtype=dtype,
        )
