"""Adamax: Adam with the infinity norm in place of the second moment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import add_alpha, as_dtype_scalar, fma, half_scalar, scalar_fma_exact, store_
from .optimizer import LOW_PRECISION_VALIDATORS, Optimizer, check_betas, check_bool, check_nonnegative


class AdamaxStep(NamedTuple):
    """The scalars of one Adamax step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    decay: bool  # weight_decay != 0: L2 folded into the gradient
    low_weight: bool  # 1 - beta1, rounded to the arrays' dtype, < 0.5: torch's lerp branch
    weight_decay: float
    weight: float  # 1 - beta1
    weight_minus_one: float  # w - 1, with w rounded to the arrays' dtype first (exact)
    beta2: float
    eps: float
    neg_clr: float  # -lr / (1 - beta1**t)
    float16: bool = False  # float16 parameters, computed on float32 copies as torch computes half ops
    bfloat16: bool = False  # (the same for bfloat16; numpy_optim/_fma.py: add_alpha, store_)


def adamax_step(
    *, step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, maximize: bool,
    dtype: np.dtype,
) -> AdamaxStep:
    """The scalars of step ``step`` (the first is 1), in Python floats as torch computes
    them (the bias correction with Python's ``**``)."""
    weight = 1 - beta1
    rounded = as_dtype_scalar(weight, dtype)  # torch's lerp casts the weight, then branches on it
    clr = lr / (1 - beta1 ** float(step))
    return AdamaxStep(
        maximize=maximize, decay=weight_decay != 0, low_weight=abs(rounded) < 0.5, weight_decay=weight_decay,
        weight=weight, weight_minus_one=rounded - 1, beta2=beta2, eps=eps, neg_clr=-clr,
    )


def adamax_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: AdamaxStep) -> None:
    r"""One Adamax step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, exp_avg, exp_inf]``, one shape and dtype; all but ``grad`` are
        updated in place.
    scratch : list of ndarray
        Two work arrays ``t``, ``u`` of that shape and dtype (contents on entry ignored),
        and for float32 a float64 one more (the work row of :func:`numpy_optim._fma.fma`).
        Whole arrays or blocks of them (numpy_optim/_blocks.py).
    k : AdamaxStep
        The step's flags and scalars (:func:`adamax_step`).

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it (:math:`t` is
    the step, the first is 1):

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        g &\leftarrow g + \lambda \theta \ \text{if } \lambda \ne 0 \\
        m_t &\leftarrow m_{t-1} + (1 - \beta_1)(g - m_{t-1}) \\
        u_t &\leftarrow \max(\beta_2 u_{t-1}, |g| + \epsilon) \\
        \theta &\leftarrow \theta + \left(-\frac{\alpha}{1 - \beta_1^t} m_t\right) / u_t

    torch has no sqrt here, so the result is bit for bit torch's, float32 and float64:
    the multiply-adds torch fuses (the L2 ``add`` with ``alpha``, ``lerp``) are rounded
    once in both dtypes (float64 through the exact :func:`numpy_optim._fma.fma`); eps is
    added to :math:`|g|` inside the maximum, and :math:`u` is not bias-corrected. The
    maximum propagates NaN, as ``torch.maximum`` does.
    """
    param, grad, exp_avg, exp_inf = arrays[:4]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else t  # fma's work row: float64 for float32 arrays
    half = {"float16": k.float16, "bfloat16": k.bfloat16}
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:
        # torch: grad.add(param, alpha=weight_decay)
        grad = add_alpha(grad, param, k.weight_decay, u, work=w, exact=True, **half)
    # m_t: torch's exp_avg.lerp_(grad, 1 - beta1) = fma(w, g - m, m) for w < 0.5, else fma(w - 1, g - m, g)
    np.subtract(grad, exp_avg, t)
    if k.low_weight:
        fma(t, k.weight, exp_avg, exp_avg, work=w, exact=True)
    else:
        fma(t, k.weight_minus_one, grad, exp_avg, work=w, exact=True)
    store_(exp_avg, **half)
    # u_t: torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps), out=exp_inf)
    store_(np.multiply(exp_inf, k.beta2, exp_inf), **half)
    np.abs(grad, t)
    store_(np.add(t, half_scalar(k.eps, **half), t), **half)
    np.maximum(exp_inf, t, out=exp_inf)
    # torch: param.addcdiv_(exp_avg, exp_inf, value=-clr), three roundings
    np.multiply(k.neg_clr, exp_avg, t)
    np.divide(t, exp_inf, t)
    store_(np.add(param, t, param), **half)


def adamax_compiled(
    maximize: bool, decay: bool, low_weight: bool, float16: bool = False, bfloat16: bool = False,
) -> Callable[..., None]:
    """The compiled kernel: :func:`adamax_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`AdamaxStep`'s flags. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad``, ``exp_avg`` and ``exp_inf``;
    ``constants`` holds :class:`AdamaxStep`'s float fields in the arrays' dtype.
    """

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, weight, weight_minus_one = constants[0], constants[1], constants[2]
        beta2, eps, neg_clr = constants[3], constants[4], constants[5]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            exp_avg, exp_inf = view(table[row, 3], n, constants), view(table[row, 4], n, constants)
            for i in range(n):
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decay:
                    g = scalar_fma_exact(p, weight_decay, g)  # fma(param, weight_decay, grad, exact=True)
                m = exp_avg[i]
                d = g - m  # np.subtract(grad, exp_avg)
                if low_weight:
                    m = scalar_fma_exact(d, weight, m)  # fma(t, weight, exp_avg, exact=True)
                else:
                    m = scalar_fma_exact(d, weight_minus_one, g)  # fma(t, weight - 1, grad, exact=True)
                v = exp_inf[i] * beta2  # np.multiply(exp_inf, beta2)
                a = abs(g) + eps  # np.abs(grad); np.add(t, eps)
                v = v if v > a or v != v else a  # np.maximum: NaN first, on a tie the second
                exp_avg[i] = m
                exp_inf[i] = v
                param[i] = p + (neg_clr * m) / v  # np.multiply(-clr, exp_avg); np.divide; np.add

    return kernel


class Adamax(Optimizer):
    r"""Adamax: Adam with the infinity norm of the gradients in place of the second moment.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 0.002
        Learning rate :math:`\alpha`.
    betas : (float, float), default (0.9, 0.999)
        :math:`\beta_1`, the decay of the first moment, and :math:`\beta_2`, the decay of
        the infinity norm.
    eps : float, default 1e-8
        :math:`\epsilon`, added to :math:`|g|` inside the maximum.
    weight_decay : float, default 0.0
        L2 coefficient :math:`\lambda`, added to the gradient.
    maximize : bool, default False
        Maximize the objective instead of minimizing it (keyword only, as in torch).

    Notes
    -----
    .. math::

        g_t &= \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        u_t &= \max(\beta_2 u_{t-1}, |g_t| + \epsilon) \\
        \theta_t &= \theta_{t-1} - \frac{\alpha}{1 - \beta_1^t} \, m_t / u_t

    The kernels are :func:`adamax_update_` (NumPy) and :func:`adamax_compiled` (numba),
    bit for bit torch's single-tensor path in float32 and float64. State:
    ``state[i]["exp_avg"]`` and ``state[i]["exp_inf"]`` per entry, and the
    optimizer-level ``state["step"]`` (:math:`t`).

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization" (2015), section 7.1.
    Mirrors ``torch.optim.Adamax``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = Adamax([{"params": x, "grad": g}])
    >>> opt.step(); x.round(12)                         # 3 - (0.002 / 0.1) * 0.6 / (6 + 1e-8)
    array([2.998])
    """

    _counts_steps = True  # (bias corrections / decays of the step count: see Optimizer._check_can_add)
    _kernel = staticmethod(adamax_update_)
    _half_opmath = True  # float16 / bfloat16: torch's per-op rounding (numpy_optim/_fma.py: store_)
    _kernel_factory = staticmethod(adamax_compiled)
    _n_scratch = 2
    _buffer_order = ("exp_avg", "exp_inf")
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "lr": check_nonnegative,
        "betas": lambda name, value: check_betas(value),
        "eps": check_nonnegative,
        "weight_decay": check_nonnegative,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        # (in torch's order of checks: lr, eps, betas, weight_decay)
        defaults = dict(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay, maximize=maximize)
        defaults.update(state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"exp_avg", "exp_inf"}

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> AdamaxStep:
        beta1, beta2 = hyper["betas"]
        return adamax_step(
            step=step, lr=hyper["lr"], beta1=beta1, beta2=beta2, eps=hyper["eps"],
            weight_decay=hyper["weight_decay"], maximize=hyper["maximize"], dtype=dtype,
        )
