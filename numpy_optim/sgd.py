"""SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import HALF_TAIL_LANES, add_alpha, fma, half_round, scalar_fma, scalar_fma_exact, store_, tail_or_fma
from ._fused import body_length, check_compute_dtype, lanes
from .optimizer import (
    LOW_PRECISION_VALIDATORS,
    Optimizer,
    check_bool,
    check_finite,
    check_fused,
    check_nonnegative,
    is_half,
)


class SGDStep(NamedTuple):
    """The scalars of one SGD step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    decay: bool  # weight_decay != 0
    momentum_on: bool  # momentum != 0
    first: bool  # the momentum buffer was created this step
    nesterov: bool
    weight_decay: float
    momentum: float
    one_minus_dampening: float  # 1 - dampening
    neg_lr: float  # -lr
    float16: bool = False  # float16 parameters, computed on float32 copies as torch computes half ops
    bfloat16: bool = False  # (the same for bfloat16; numpy_optim/_fma.py: add_alpha, store_)


def sgd_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: SGDStep) -> None:
    r"""One SGD step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad(, momentum_buffer)]``, one shape and dtype; ``param`` and the
        buffer are updated in place.
    scratch : list of ndarray
        Two work arrays ``t``, ``u`` of that shape and dtype (contents on entry ignored),
        and for float32 a float64 one more (the work row of :func:`numpy_optim._fma.fma`).
        Whole arrays or blocks of them: the optimizer passes blocks (numpy_optim/_blocks.py).
    k : SGDStep
        The step's flags and scalars.

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it:

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        g &\leftarrow g + \lambda \theta \ \text{if } \lambda \ne 0 \\
        b_t &\leftarrow g \ \text{at the first step, else } \mu b_{t-1} + (1 - \tau) g \\
        g &\leftarrow g + \mu b_t \ \text{if Nesterov, else } b_t \\
        \theta &\leftarrow \theta - \alpha g

    with learning rate :math:`\alpha`, momentum :math:`\mu`, dampening :math:`\tau` and
    weight decay :math:`\lambda`. The multiply-adds torch fuses (each ``add`` with
    ``alpha``) are rounded once in float32, as torch's FMA rounds them
    (:func:`numpy_optim._fma.fma`). For float16 / bfloat16 parameters (``k.float16``,
    ``k.bfloat16``) the arrays are float32 copies and every op's result is rounded to half
    where torch stores it (:func:`numpy_optim._fma.add_alpha`, :func:`~numpy_optim._fma.store_`).
    """
    param, grad = arrays[:2]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else t  # fma's work row: float64 for float32 arrays
    half = {"float16": k.float16, "bfloat16": k.bfloat16}
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:
        grad = add_alpha(grad, param, k.weight_decay, u, work=w, **half)  # torch: grad.add(param, alpha=weight_decay)
    if k.momentum_on:
        buf = arrays[2]
        if k.first:
            np.copyto(buf, grad)  # torch: the first step copies the gradient; dampening is NOT applied
        else:
            # torch: buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            store_(np.multiply(buf, k.momentum, buf), **half)
            add_alpha(buf, grad, k.one_minus_dampening, buf, work=w, **half)
        # torch: grad.add(buf, alpha=momentum) if nesterov else buf
        grad = add_alpha(grad, buf, k.momentum, u, work=w, **half) if k.nesterov else buf
    # lr sits outside the buffer, so a learning rate changed mid-run rescales the whole step.
    add_alpha(param, grad, k.neg_lr, param, work=w, **half)  # torch: param.add_(grad, alpha=-lr)


def sgd_compiled(
    maximize: bool, decay: bool, momentum_on: bool, first: bool, nesterov: bool, float16: bool = False,
    bfloat16: bool = False,
) -> Callable[..., None]:
    """The compiled kernel: :func:`sgd_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`SGDStep`'s flags. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad`` and ``momentum_buffer``;
    ``constants`` holds :class:`SGDStep`'s float fields in the arrays' dtype.
    """

    if float16 or bfloat16:
        return _sgd_half_compiled(maximize, decay, momentum_on, first, nesterov, float16, bfloat16)

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, momentum, one_minus_dampening, neg_lr = constants[0], constants[1], constants[2], constants[3]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            buf = view(table[row, 3], n, constants)
            for i in range(n):
                g = grad[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decay:
                    g = scalar_fma(param[i], weight_decay, g)  # fma(param, weight_decay, grad)
                if momentum_on:
                    if first:
                        b = g  # np.copyto(buf, grad)
                    else:
                        b = scalar_fma(g, one_minus_dampening, buf[i] * momentum)  # multiply, then fma
                    buf[i] = b
                    g = scalar_fma(b, momentum, g) if nesterov else b  # fma(buf, momentum, grad) or buf
                param[i] = scalar_fma(g, neg_lr, param[i])  # fma(grad, -lr, param)

    return kernel


def _sgd_half_compiled(
    maximize: bool, decay: bool, momentum_on: bool, first: bool, nesterov: bool, float16: bool, bfloat16: bool,
) -> Callable[..., None]:
    """:func:`sgd_compiled` for float16 / bfloat16 parameters (float32 copies): every op
    rounded to half where torch stores it; an ``add`` with ``alpha`` takes a half ``alpha``,
    and in a tensor's last ``n % 32`` elements (torch's scalar loop) rounds its product
    first (:func:`numpy_optim._fma.add_alpha`)."""

    def kernel(table: Any, constants: Any) -> None:
        weight_decay = half_round(constants[0], float16, bfloat16)  # add's alpha: a half scalar
        momentum = constants[1]  # mul_'s scalar: float32
        nesterov_alpha = half_round(constants[1], float16, bfloat16)
        one_minus_dampening = half_round(constants[2], float16, bfloat16)
        neg_lr = half_round(constants[3], float16, bfloat16)
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            buf = view(table[row, 3], n, constants)
            body = n - n % HALF_TAIL_LANES
            for i in range(n):
                tail = i >= body
                g = grad[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decay:  # add_alpha(grad, param, weight_decay)
                    g = half_round(tail_or_fma(tail, param[i], weight_decay, g, float16, bfloat16), float16, bfloat16)
                if momentum_on:
                    if first:
                        b = g  # np.copyto(buf, grad)
                    else:
                        b = half_round(buf[i] * momentum, float16, bfloat16)  # store_(multiply)
                        b = half_round(tail_or_fma(tail, g, one_minus_dampening, b, float16, bfloat16),
                                       float16, bfloat16)  # add_alpha(buf, grad, 1 - dampening)
                    buf[i] = b
                    if nesterov:  # add_alpha(grad, buf, momentum)
                        g = half_round(tail_or_fma(tail, b, nesterov_alpha, g, float16, bfloat16), float16, bfloat16)
                    else:
                        g = b
                param[i] = half_round(tail_or_fma(tail, g, neg_lr, param[i], float16, bfloat16), float16, bfloat16)

    return kernel


# --------------------------------------------------------------------------------------
# fused=True: torch's fused CPU kernel (../shared/reference/torch-fused-kernels.md)
# --------------------------------------------------------------------------------------

#: Work arrays :func:`sgd_fused_update_` needs (and for float32 one float64 row more).
SGD_FUSED_SCRATCH = 2


class SGDFusedStep(NamedTuple):
    """The scalars of one fused SGD step: flags (bools) first, then the constants (floats,
    in double: the caller casts them to the arrays' dtype, as torch does)."""

    maximize: bool
    decay: bool  # weight_decay != 0
    momentum_on: bool  # momentum != 0
    first: bool  # the momentum buffers were created this step
    nesterov: bool
    weight_decay: float
    momentum: float
    one_minus_dampening: float  # 1 - dampening
    neg_lr: float  # -lr


def sgd_fused_step(
    *, lr: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool, maximize: bool,
    first: bool, dtype: np.dtype,
) -> SGDFusedStep:
    """The scalars of a fused SGD step, in double as torch computes them (``1 - dampening``
    and ``-lr``, nothing contracted). ``dtype`` is the arrays' (float32 or float64): torch's
    fused SGD on float16 / bfloat16 parameters is defective (module notes) and not offered."""
    check_compute_dtype(dtype, None)
    return SGDFusedStep(
        maximize=maximize, decay=weight_decay != 0, momentum_on=momentum != 0, first=first, nesterov=nesterov,
        weight_decay=weight_decay, momentum=momentum, one_minus_dampening=1 - dampening, neg_lr=-lr,
    )


def sgd_fused_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: SGDFusedStep) -> None:
    r"""One SGD step as torch's fused CPU kernel computes it (``fused=True``), in place.

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad(, momentum_buffer)]``: 1-d, C-contiguous, one length and dtype
        (float32 or float64); ``param`` and the buffer are updated in place. The vector
        body is the first ``n - n % lanes`` elements (8 float32, 4 float64), so a part
        of a parameter must start a multiple of 64 elements from its start, and only its
        last part may hold its tail.
    scratch : list of ndarray
        :data:`SGD_FUSED_SCRATCH` work arrays of that length and dtype, and for float32 a
        float64 one more (the work row of :func:`numpy_optim._fma.fma`).
    k : SGDFusedStep
        The step's flags and scalars (:func:`sgd_fused_step`).

    Notes
    -----
    With :math:`D(x)` the double :math:`x` cast to the arrays' dtype and every fma rounded
    once (torch's hardware FMA):

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        g &\leftarrow \operatorname{fma}(\theta, D(\lambda), g) \ \text{if } \lambda \ne 0 \\
        b &\leftarrow g \ \text{at the first step; else body }
             \operatorname{fma}(D(1 - \tau), g, b\,D(\mu)), \
             \text{tail } \operatorname{fma}(b, D(\mu), g\,D(1 - \tau)) \\
        g &\leftarrow \operatorname{fma}(b, D(\mu), g) \ \text{if Nesterov, else } b \\
        \theta &\leftarrow \operatorname{fma}(g, D(-\alpha), \theta)

    torch's float16 / bfloat16 kernel never stores the body's parameters (the defect
    tests/unit/test_fused_kernels.py pins), so numpy_optim offers float32 and float64 only.
    """
    n = len(arrays[0])
    body = body_length(n, lanes(arrays[0].dtype, False))
    for part, tail in ((slice(0, body), False), (slice(body, n), True)):
        if part.start < part.stop:
            _sgd_fused_part([a[part] for a in arrays], [s[part] for s in scratch], k, tail)


def _sgd_fused_part(arrays: list[np.ndarray], scratch: list[np.ndarray], k: SGDFusedStep, tail: bool) -> None:
    """:func:`sgd_fused_update_` on the vector body, or (``tail``) on the scalar tail."""
    param, grad = arrays[:2]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else None  # fma's float64 work row for float32
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:
        grad = fma(param, k.weight_decay, grad, u, work=w, exact=True)  # grad.add(param, alpha=wd): one fma
    if k.momentum_on:
        buf = arrays[2]
        if k.first:
            np.copyto(buf, grad)  # the first step copies the gradient; dampening is NOT applied
        elif tail:  # the scalar tail: fma(buf, momentum, grad * (1 - dampening))
            np.multiply(grad, k.one_minus_dampening, t)
            fma(buf, k.momentum, t, buf, work=w, exact=True)
        else:  # the vector body: fma(1 - dampening, grad, buf * momentum)
            np.multiply(buf, k.momentum, buf)
            fma(grad, k.one_minus_dampening, buf, buf, work=w, exact=True)
        grad = fma(buf, k.momentum, grad, u, work=w, exact=True) if k.nesterov else buf
    fma(grad, k.neg_lr, param, param, work=w, exact=True)  # param.add_(grad, alpha=-lr): one fma


def sgd_fused_compiled(
    maximize: bool, decay: bool, momentum_on: bool, first: bool, nesterov: bool,
) -> Callable[..., None]:
    """The compiled kernel: :func:`sgd_fused_update_`'s lines as a loop over the vector
    body, then one over the scalar tail, of every row of ``table`` (length, then the
    addresses of ``param``, ``grad`` and ``momentum_buffer``). ``constants`` holds
    :class:`SGDFusedStep`'s float fields in the arrays' dtype (float32 or float64), and
    every row starts a multiple of 64 elements from its parameter's start."""

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, momentum, one_minus_dampening, neg_lr = constants[0], constants[1], constants[2], constants[3]
        width = 8 if constants.itemsize == 4 else 4  # lanes(dtype, False)
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            buf = view(table[row, 3], n, constants)
            body = n - n % width  # body_length(n, lanes)
            for i in range(body):  # the vector body
                g = grad[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decay:
                    g = scalar_fma_exact(param[i], weight_decay, g)  # fma(param, weight_decay, grad)
                if momentum_on:
                    if first:
                        b = g  # np.copyto(buf, grad)
                    else:
                        b = scalar_fma_exact(g, one_minus_dampening, buf[i] * momentum)  # multiply, then fma
                    buf[i] = b
                    g = scalar_fma_exact(b, momentum, g) if nesterov else b  # fma(buf, momentum, grad) or buf
                param[i] = scalar_fma_exact(g, neg_lr, param[i])  # fma(grad, -lr, param)
            for i in range(body, n):  # the scalar tail: the same lines but the buffer's
                g = grad[i]
                if maximize:
                    g = -g
                if decay:
                    g = scalar_fma_exact(param[i], weight_decay, g)
                if momentum_on:
                    if first:
                        b = g
                    else:
                        b = scalar_fma_exact(buf[i], momentum, g * one_minus_dampening)  # multiply, then fma
                    buf[i] = b
                    g = scalar_fma_exact(b, momentum, g) if nesterov else b
                param[i] = scalar_fma_exact(g, neg_lr, param[i])

    return kernel


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 0.01
        Learning rate :math:`\alpha`. The specification's default is 0.01; torch's is
        1e-3 (the one deliberate difference from ``torch.optim.SGD``).
    momentum : float, default 0.0
        Momentum factor :math:`\mu`; 0 keeps no buffer.
    dampening : float, default 0.0
        Dampening :math:`\tau` for momentum (not applied on the first step, as in torch).
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda` added to the gradient.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    maximize : bool, default False
        Maximize the objective instead of minimizing it.

    Notes
    -----
    .. math::

        g_t &= \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        b_t &= \mu b_{t-1} + (1 - \tau) g_t \quad (b_1 = g_1) \\
        \theta_t &= \theta_{t-1} - \alpha (g_t + \mu b_t) \ \text{(Nesterov) or }
                    \theta_{t-1} - \alpha b_t

    The kernels are :func:`sgd_update_` (NumPy) and :func:`sgd_compiled` (numba). State:
    ``state[i]["momentum_buffer"]`` per entry when momentum is on, and the optimizer-level
    ``state["step"]``.

    References
    ----------
    Sutskever et al., "On the importance of initialization and momentum in deep
    learning" (2013). Mirrors ``torch.optim.SGD``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = 2 * x                  # f(x) = x**2
    >>> opt = SGD([{"params": x, "grad": g}], lr=0.1)
    >>> opt.step(); x
    array([2.4])
    """

    _kernel = staticmethod(sgd_update_)
    _kernel_factory = staticmethod(sgd_compiled)
    _n_scratch = 2
    _fused_kernel = staticmethod(sgd_fused_update_)
    _fused_kernel_factory = staticmethod(sgd_fused_compiled)
    _fused_n_scratch = SGD_FUSED_SCRATCH
    _half_opmath = True
    _half_compiled = True
    _buffer_order = ("momentum_buffer",)
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "fused": check_fused,
        "lr": check_nonnegative,
        "momentum": check_nonnegative,
        "dampening": check_finite,
        "weight_decay": check_nonnegative,
        "nesterov": check_bool,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
        *,
        fused: bool = False,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
        )
        defaults.update(fused=fused, state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _check_combination(self, hyper: dict[str, Any]) -> None:
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening, got "
                f"momentum={hyper['momentum']!r}, dampening={hyper['dampening']!r}"
            )

    def _check_dtype(self, hyper: Mapping[str, Any], dtype: np.dtype) -> None:
        super()._check_dtype(hyper, dtype)
        if hyper["fused"] and is_half(dtype) and hyper["state_dtype"] is None and not hyper["master_weights"]:
            raise ValueError(
                f"SGD(fused=True) is refused for {dtype} parameters: torch 2.13's fused CPU SGD never updates "
                f"the vector body of float16 / bfloat16 parameters (only the last n % 16 elements of each "
                f"change), a defect numpy_optim does not copy; use fused=False (torch's single-tensor "
                f"arithmetic), or master_weights=True (fused arithmetic on a float32 master copy)"
            )

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"momentum_buffer"} if hyper["momentum"] != 0 else set()

    def _fused_scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype,
                       half: np.dtype | None) -> SGDFusedStep:
        return sgd_fused_step(
            lr=hyper["lr"], momentum=hyper["momentum"], dampening=hyper["dampening"],
            weight_decay=hyper["weight_decay"], nesterov=hyper["nesterov"], maximize=hyper["maximize"], first=first,
            dtype=dtype,
        )

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> SGDStep:
        return SGDStep(
            maximize=hyper["maximize"], decay=hyper["weight_decay"] != 0, momentum_on=hyper["momentum"] != 0,
            first=first, nesterov=hyper["nesterov"], weight_decay=hyper["weight_decay"], momentum=hyper["momentum"],
            one_minus_dampening=1 - hyper["dampening"], neg_lr=-hyper["lr"],
        )
