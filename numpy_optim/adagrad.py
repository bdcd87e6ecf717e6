"""Adagrad: per-element learning rates from the running sum of squared gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import (
    HALF_TAIL_LANES,
    add_alpha,
    fma,
    half_round,
    half_scalar,
    scalar_fma,
    scalar_fma_exact,
    store_,
    tail_or_fma,
)
from ._fused import body_length, check_compute_dtype, fma_double, lanes, through_half
from .optimizer import LOW_PRECISION_VALIDATORS, Optimizer, check_bool, check_fused, check_nonnegative


class AdagradStep(NamedTuple):
    """The scalars of one Adagrad step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    decay: bool  # weight_decay != 0
    weight_decay: float
    eps: float
    neg_clr: float  # -lr / (1 + (step - 1) * lr_decay)
    float16: bool = False  # float16 parameters, computed on float32 copies as torch computes half ops
    bfloat16: bool = False  # (the same for bfloat16; numpy_optim/_fma.py: add_alpha, store_)


def adagrad_step(
    *, step: int, lr: float, lr_decay: float, weight_decay: float, eps: float, maximize: bool,
) -> AdagradStep:
    """The scalars of step ``step`` (the first is 1), in Python floats as torch computes them."""
    clr = lr / (1 + (step - 1) * lr_decay)  # torch: the first step uses lr itself
    return AdagradStep(
        maximize=maximize, decay=weight_decay != 0, weight_decay=weight_decay, eps=eps, neg_clr=-clr,
    )


def adagrad_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: AdagradStep) -> None:
    r"""One Adagrad step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, sum]``, one shape and dtype; ``param`` and ``sum`` are updated in
        place.
    scratch : list of ndarray
        Two work arrays ``t``, ``u`` of that shape and dtype (contents on entry ignored),
        and for float32 a float64 one more (the work row of :func:`numpy_optim._fma.fma`).
        Whole arrays or blocks of them: the optimizer passes blocks (numpy_optim/_blocks.py).
    k : AdagradStep
        The step's flags and scalars (:func:`adagrad_step`).

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it (:math:`t` is
    the step, the first is 1):

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        g &\leftarrow g + \lambda \theta \ \text{if } \lambda \ne 0 \\
        \eta_t &= \alpha / (1 + (t - 1) \delta) \quad \text{(Python floats)} \\
        s_t &\leftarrow s_{t-1} + g \cdot g \\
        d &\leftarrow \sqrt{s_t} + \epsilon \\
        \theta &\leftarrow \theta + (-\eta_t\, g) / d

    The ``addcmul`` of :math:`s_t` is one rounding in float32 (torch's FMA); in float64
    it is rounded twice (a sum of non-negative terms, no cancellation to amplify). The
    L2 term, which can nearly cancel and is then divided by :math:`\sqrt{s_t}`, is
    rounded once in both (``exact=True``). The last line is torch's ``addcdiv``: three
    roundings (product, quotient, sum), not fused.
    """
    param, grad, state_sum = arrays[:3]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else t  # fma's work row: float64 for float32 arrays
    half = {"float16": k.float16, "bfloat16": k.bfloat16}  # (float32 copies of half arrays: store_ rounds)
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:  # torch: grad.add(param, alpha=weight_decay)
        grad = add_alpha(grad, param, k.weight_decay, u, work=w, exact=True, **half)
    # torch: state_sum.addcmul_(grad, grad, value=1) (on half: one float32 FMA, rounded once)
    store_(fma(grad, grad, state_sum, state_sum, work=w, exact=k.float16 or k.bfloat16), **half)
    store_(np.sqrt(state_sum, t), **half)  # torch: std = state_sum.sqrt().add_(eps) (eps outside the sqrt)
    store_(np.add(t, half_scalar(k.eps, **half), t), **half)  # (add(s) on half: s a half scalar)
    np.multiply(k.neg_clr, grad, u)  # torch: param.addcdiv_(grad, std, value=-clr), three roundings
    np.divide(u, t, u)
    store_(np.add(param, u, param), **half)


def adagrad_compiled(maximize: bool, decay: bool, float16: bool = False, bfloat16: bool = False) -> Callable[..., None]:
    """The compiled kernel: :func:`adagrad_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`AdagradStep`'s flags. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad`` and ``sum``; ``constants`` holds
    :class:`AdagradStep`'s float fields in the arrays' dtype.
    """

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, eps, neg_clr = constants[0], constants[1], constants[2]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            state_sum = view(table[row, 3], n, constants)
            for i in range(n):
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decay:
                    g = scalar_fma_exact(p, weight_decay, g)  # fma(param, weight_decay, grad, exact=True)
                s = scalar_fma(g, g, state_sum[i])  # fma(grad, grad, state_sum)
                state_sum[i] = s
                std = np.sqrt(s) + eps  # np.sqrt(state_sum); np.add(t, eps)
                param[i] = p + (neg_clr * g) / std  # np.multiply(-clr, grad); np.divide; np.add

    def half_kernel(table: Any, constants: Any) -> None:  # float16 / bfloat16: every store rounded (store_)
        alpha = half_round(constants[0], float16, bfloat16)  # add's alpha and add(eps): half scalars
        eps, neg_clr = half_round(constants[1], float16, bfloat16), constants[2]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            state_sum = view(table[row, 3], n, constants)
            body = n - n % HALF_TAIL_LANES
            for i in range(n):
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g
                if decay:  # add_alpha(grad, param, weight_decay)
                    g = half_round(tail_or_fma(i >= body, p, alpha, g, float16, bfloat16), float16, bfloat16)
                s = half_round(scalar_fma_exact(g, g, state_sum[i]), float16, bfloat16)
                state_sum[i] = s
                std = half_round(half_round(np.sqrt(s), float16, bfloat16) + eps, float16, bfloat16)
                param[i] = half_round(p + (neg_clr * g) / std, float16, bfloat16)

    return half_kernel if float16 or bfloat16 else kernel


# --------------------------------------------------------------------------------------
# fused=True: torch's fused CPU kernel (../shared/reference/torch-fused-kernels.md)
# --------------------------------------------------------------------------------------

#: Work arrays :func:`adagrad_fused_update_` needs (and for float32 one float64 row more).
ADAGRAD_FUSED_SCRATCH = 2


class AdagradFusedStep(NamedTuple):
    """The scalars of one fused Adagrad step: flags (bools) first, then the constants
    (floats, in double: the caller casts them to the arrays' dtype, as torch does). The
    vector body has its own constants: for float16 / bfloat16 parameters torch rounds
    them through the parameters' dtype there (``float32(half(float32(x)))``)."""

    maximize: bool
    decay: bool  # weight_decay != 0
    half: bool  # float16 / bfloat16 parameters (computed in float32): 16 lanes
    weight_decay: float  # the scalar tail's constants
    eps: float
    neg_clr: float  # -lr / fma(step - 1, lr_decay, 1.0)
    body_weight_decay: float  # the vector body's
    body_eps: float
    body_neg_clr: float


def adagrad_fused_step(
    *, step: int, lr: float, lr_decay: float, weight_decay: float, eps: float, maximize: bool,
    dtype: np.dtype, half: np.dtype | None,
) -> AdagradFusedStep:
    """The scalars of fused step ``step`` (the first is 1), in double as torch computes
    them: ``clr = lr / (1 + (t - 1) * lr_decay)`` with the denominator contracted into one
    fma (as GCC compiles it). ``dtype`` is the arrays' (float32 or float64); ``half`` the
    parameters' dtype when it is float16 / bfloat16 (then ``dtype`` is float32), else None."""
    _, storage = check_compute_dtype(dtype, half)
    clr = lr / fma_double(float(step - 1), lr_decay, 1.0)

    def body(x: float) -> float:  # torch's fVec(scalar_t(x)): through the parameters' dtype
        return x if storage is None else through_half(x, storage)

    return AdagradFusedStep(
        maximize=maximize, decay=weight_decay != 0, half=storage is not None,
        weight_decay=weight_decay, eps=eps, neg_clr=-clr,
        body_weight_decay=body(weight_decay), body_eps=body(eps), body_neg_clr=-body(clr),
    )


def adagrad_fused_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: AdagradFusedStep) -> None:
    r"""One Adagrad step as torch's fused CPU kernel computes it (``fused=True``), in place.

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, sum]``: 1-d, C-contiguous, one length and dtype (float32 or
        float64; for float16 / bfloat16 parameters float32 copies, rounded back by the
        caller after the call); ``param`` and ``sum`` are updated in place. The vector
        body is the first ``n - n % lanes`` elements (16 for ``k.half``, else 8 float32,
        4 float64), so a part of a parameter must start a multiple of 64 elements from
        its start, and only its last part may hold its tail.
    scratch : list of ndarray
        :data:`ADAGRAD_FUSED_SCRATCH` work arrays ``t``, ``u`` of that length and dtype,
        and for float32 a float64 one more (the work row of :func:`numpy_optim._fma.fma`).
    k : AdagradFusedStep
        The step's flags and scalars (:func:`adagrad_fused_step`).

    Notes
    -----
    With :math:`D(x)` the double :math:`x` cast to the arrays' dtype (in the vector body
    of float16 / bfloat16 parameters: through their dtype) and every fma rounded once:

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        g &\leftarrow \operatorname{fma}(\theta, D(\lambda), g) \ \text{if } \lambda \ne 0 \\
        s &\leftarrow \operatorname{fma}(g, g, s) \\
        \theta &\leftarrow \theta + D(-\eta_t)\, g \,/\, (\sqrt{s} + D(\epsilon)),
             \quad \eta_t = \alpha / \operatorname{fma}(t - 1, \delta, 1)

    A float16 body's ``eps`` of 1e-10 is 0 (float16's smallest is 6e-8), as in torch.
    """
    n = len(arrays[0])
    body = body_length(n, lanes(arrays[0].dtype, k.half))
    for part, tail in ((slice(0, body), False), (slice(body, n), True)):
        if part.start < part.stop:
            _adagrad_fused_part([a[part] for a in arrays], [s[part] for s in scratch], k, tail)


def _adagrad_fused_part(arrays: list[np.ndarray], scratch: list[np.ndarray], k: AdagradFusedStep, tail: bool) -> None:
    """:func:`adagrad_fused_update_` on the vector body, or (``tail``) on the scalar tail:
    the same lines, each part with its own constants."""
    param, grad, state_sum = arrays[:3]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else None  # fma's float64 work row for float32
    weight_decay, eps, neg_clr = (k.weight_decay, k.eps, k.neg_clr) if tail else (
        k.body_weight_decay, k.body_eps, k.body_neg_clr)
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:
        grad = fma(param, weight_decay, grad, u, work=w, exact=True)  # grad.add(param, alpha=wd): one fma
    fma(grad, grad, state_sum, state_sum, work=w, exact=True)  # state_sum.addcmul_(grad, grad): one fma
    np.sqrt(state_sum, t)  # std = sqrt(sum) + eps (eps outside the sqrt)
    np.add(t, eps, t)
    np.multiply(neg_clr, grad, u)  # param.addcdiv_(grad, std, value=-clr): three roundings
    np.divide(u, t, u)
    np.add(param, u, param)


def adagrad_fused_compiled(maximize: bool, decay: bool, half: bool) -> Callable[..., None]:
    """The compiled kernel: :func:`adagrad_fused_update_`'s lines as one loop over the
    vector body, then over the scalar tail (each with its constants), of every row of
    ``table`` (length, then the addresses of ``param``, ``grad`` and ``sum``).
    ``constants`` holds :class:`AdagradFusedStep`'s float fields in the arrays' dtype, and
    every row starts a multiple of 64 elements from its parameter's start."""

    def kernel(table: Any, constants: Any) -> None:
        width = 16 if half else 8 if constants.itemsize == 4 else 4  # lanes(dtype, half)
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            state_sum = view(table[row, 3], n, constants)
            body = n - n % width  # body_length(n, lanes)
            for tail in range(2):  # the vector body [0, body), then the scalar tail [body, n)
                start, stop, c = (body, n, 0) if tail else (0, body, 3)  # c: where the part's constants start
                weight_decay, eps, neg_clr = constants[c], constants[c + 1], constants[c + 2]
                for i in range(start, stop):
                    g = grad[i]
                    p = param[i]
                    if maximize:
                        g = -g  # np.negative(grad)
                    if decay:
                        g = scalar_fma_exact(p, weight_decay, g)  # fma(param, weight_decay, grad)
                    s = scalar_fma_exact(g, g, state_sum[i])  # fma(grad, grad, state_sum)
                    state_sum[i] = s
                    std = np.sqrt(s) + eps  # np.sqrt(state_sum); np.add(t, eps)
                    param[i] = p + (neg_clr * g) / std  # np.multiply(-clr, grad); np.divide; np.add

    return kernel


class Adagrad(Optimizer):
    r"""Adagrad: each element's step shrinks with its accumulated squared gradients.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 0.01
        Learning rate :math:`\alpha`.
    lr_decay : float, default 0.0
        :math:`\delta`: step :math:`t` uses :math:`\alpha / (1 + (t - 1)\delta)`.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda` added to the gradient.
    initial_accumulator_value : float, default 0.0
        The value the sum of squares :math:`s` starts at (the optimizer's value only:
        an entry's own is accepted and ignored, as torch ignores a group's; see Notes).
    eps : float, default 1e-10
        :math:`\epsilon`, added to :math:`\sqrt{s_t}` (outside the square root).
    maximize : bool, default False
        Maximize the objective instead of minimizing it.

    Notes
    -----
    .. math::

        g_t &= \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        s_t &= s_{t-1} + g_t^2 \quad (s_0 = \text{initial\_accumulator\_value}) \\
        \theta_t &= \theta_{t-1} - \frac{\alpha}{1 + (t - 1)\delta} \, \frac{g_t}{\sqrt{s_t} + \epsilon}

    The kernels are :func:`adagrad_update_` (NumPy) and :func:`adagrad_compiled` (numba).
    State: ``state[i]["sum"]`` per entry and the optimizer-level ``state["step"]``.

    ``sum`` starts at the optimizer's ``initial_accumulator_value``, for every entry: an
    entry may carry its own ``initial_accumulator_value`` but, as in torch, it has no
    effect (torch fills every ``sum`` from its constructor's argument, and a group added
    later from ``defaults``, never from the group's value). torch creates ``sum`` in its
    constructor; numpy_optim creates it at the entry's first step, from the optimizer's
    value as it is then (``defaults["initial_accumulator_value"]``). It is read only then:
    changing it later changes nothing, as in torch. (Until the first step ``state`` has
    no ``sum``, where torch's has one.)

    References
    ----------
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization" (JMLR 2011). Mirrors ``torch.optim.Adagrad``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = Adagrad([{"params": x, "grad": g}], lr=0.1)
    >>> opt.step(); x.round(9)                          # 3 - 0.1 * 6 / (sqrt(36) + 1e-10)
    array([2.9])
    """

    _counts_steps = True  # (bias corrections / decays of the step count: see Optimizer._check_can_add)
    _kernel = staticmethod(adagrad_update_)
    _kernel_factory = staticmethod(adagrad_compiled)
    _n_scratch = 2
    _fused_kernel = staticmethod(adagrad_fused_update_)
    _fused_kernel_factory = staticmethod(adagrad_fused_compiled)
    _fused_n_scratch = ADAGRAD_FUSED_SCRATCH
    _half_opmath = True
    _half_compiled = True
    _buffer_order = ("sum",)
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "fused": check_fused,
        "lr": check_nonnegative,
        "lr_decay": check_nonnegative,
        "weight_decay": check_nonnegative,
        "initial_accumulator_value": check_nonnegative,
        "eps": check_nonnegative,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 0.01,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        fused: bool = False,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize,
        )
        defaults.update(fused=fused, state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"sum"}

    def _buffer_fill(self, name: str, hyper: dict[str, Any]) -> float:
        # torch: state["sum"] = full_like(p, initial_accumulator_value), the constructor's
        # argument, for every group (a group's own value is ignored).
        return self.defaults["initial_accumulator_value"] if name == "sum" else 0.0

    def _fused_scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype,
                       half: np.dtype | None) -> AdagradFusedStep:
        return adagrad_fused_step(
            step=step, lr=hyper["lr"], lr_decay=hyper["lr_decay"], weight_decay=hyper["weight_decay"],
            eps=hyper["eps"], maximize=hyper["maximize"], dtype=dtype, half=half,
        )

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> AdagradStep:
        return adagrad_step(
            step=step, lr=hyper["lr"], lr_decay=hyper["lr_decay"], weight_decay=hyper["weight_decay"],
            eps=hyper["eps"], maximize=hyper["maximize"],
        )
