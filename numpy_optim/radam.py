"""RAdam: Adam with the variance of its adaptive learning rate rectified, as torch.optim.RAdam."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import add_alpha, as_dtype_scalar, fma, half_scalar, scalar_fma_exact, store_
from .optimizer import LOW_PRECISION_VALIDATORS, Optimizer, check_betas, check_bool, check_nonnegative


class RAdamStep(NamedTuple):
    """The scalars of one RAdam step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    decoupled: bool  # weight_decay != 0 and decoupled_weight_decay: shrink the parameter
    coupled: bool  # weight_decay != 0, not decoupled: L2 folded into the gradient
    low_weight: bool  # 1 - beta1 (in the arrays' dtype) < 0.5: torch's lerp branch
    rectified: bool  # rho_t > 5: the adaptive, rectified step (else plain momentum)
    weight_decay: float
    decay: float  # 1 - lr * weight_decay
    weight: float  # 1 - beta1
    weight_minus_one: float  # w - 1, with w rounded to the arrays' dtype first (exact)
    beta2: float
    one_minus_beta2: float  # 1 - beta2
    bias_correction1: float  # 1 - beta1**t
    lr: float
    eps: float
    one: float  # 1.0: the numerator of the reciprocal (a constant, so it has the arrays' dtype)
    bias_correction2_sqrt: float  # (1 - beta2**t) ** 0.5
    rect: float  # the rectification term r_t (1.0 when not rectified; unused then)
    float16: bool = False  # float16 parameters, computed on float32 copies as torch computes half ops
    bfloat16: bool = False  # (the same for bfloat16; numpy_optim/_fma.py: add_alpha, store_)


def radam_step(
    *, step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
    maximize: bool, decoupled_weight_decay: bool, dtype: np.dtype,
) -> RAdamStep:
    """The scalars of step ``step`` (the first is 1), in Python floats as torch computes them
    (``**`` as libm pow, the SMA lengths left to right)."""
    t = float(step)  # torch: step_t.item(), a float
    weight = 1 - beta1
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    rho_inf = 2 / (1 - beta2) - 1  # the maximum length of the approximated SMA
    rho_t = rho_inf - 2 * t * (beta2**t) / bias_correction2  # its length at step t
    rectified = rho_t > 5.0
    rect = 1.0
    if rectified:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
    return RAdamStep(
        maximize=maximize, decoupled=weight_decay != 0 and decoupled_weight_decay,
        coupled=weight_decay != 0 and not decoupled_weight_decay,
        low_weight=as_dtype_scalar(weight, dtype) < 0.5, rectified=rectified,
        weight_decay=weight_decay, decay=1 - lr * weight_decay, weight=weight,
        weight_minus_one=as_dtype_scalar(weight, dtype) - 1, beta2=beta2, one_minus_beta2=1 - beta2,
        bias_correction1=bias_correction1, lr=lr, eps=eps, one=1.0,
        bias_correction2_sqrt=bias_correction2**0.5, rect=rect,
    )


def radam_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: RAdamStep) -> None:
    r"""One RAdam step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, exp_avg, exp_avg_sq]``, one shape and dtype; all but ``grad`` are
        updated in place.
    scratch : list of ndarray
        Three work arrays ``t``, ``d``, ``u`` of that shape and dtype (contents on entry
        ignored), and for float32 a float64 one more (the work row of
        :func:`numpy_optim._fma.fma`). Whole arrays or blocks of them.
    k : RAdamStep
        The step's flags and scalars (:func:`radam_step`).

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it (:math:`t` is the
    step, the first is 1):

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        \theta &\leftarrow (1 - \alpha\lambda)\,\theta \ \text{(decoupled decay, before the moments)} \\
        g &\leftarrow g + \lambda \theta \ \text{(L2 folded into the gradient)} \\
        m_t &\leftarrow m_{t-1} + (1 - \beta_1)(g - m_{t-1}) \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        \hat m_t &\leftarrow m_t / (1 - \beta_1^t) \\
        u &\leftarrow ((\hat m_t \alpha) \cdot (\tfrac{1}{\sqrt{v_t} + \epsilon} \sqrt{1 - \beta_2^t})) \cdot r_t
            \ \text{if } \rho_t > 5, \text{ else } \hat m_t \alpha \\
        \theta &\leftarrow \theta - u

    each product rounded in that order. torch computes the adaptive factor as a Python
    float over a tensor, ``(1 - beta2**t) ** 0.5 / (sqrt(v) + eps)``, which is
    ``Tensor.__rdiv__``: the reciprocal, then a multiplication. The multiply-adds torch
    fuses (the L2 ``add``, ``lerp``, ``addcmul``) are rounded once, in float32 and in
    float64, as in :func:`numpy_optim.nadam.nadam_update_` (Adam's float64 ``addcmul``
    rounds twice; here a small ``beta2`` can amplify that second rounding).
    """
    param, grad, exp_avg, exp_avg_sq = arrays[:4]
    t, d, u = scratch[:3]
    w = scratch[3] if len(scratch) > 3 else t  # fma's work row: float64 for float32 arrays
    half = {"float16": k.float16, "bfloat16": k.bfloat16}
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decoupled:
        store_(np.multiply(param, k.decay, param), **half)  # torch: param.mul_(1 - lr * weight_decay)
    if k.coupled:  # torch: grad.add(param, alpha=weight_decay)
        grad = add_alpha(grad, param, k.weight_decay, u, work=w, exact=True, **half)
    # m_t: torch's exp_avg.lerp_(grad, 1 - beta1) = fma(w, g - m, m) for w < 0.5, else fma(w - 1, g - m, g)
    np.subtract(grad, exp_avg, t)
    if k.low_weight:
        fma(t, k.weight, exp_avg, exp_avg, work=w, exact=True)
    else:
        fma(t, k.weight_minus_one, grad, exp_avg, work=w, exact=True)
    store_(exp_avg, **half)
    # v_t: torch's exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    store_(np.multiply(exp_avg_sq, k.beta2, exp_avg_sq), **half)
    np.multiply(k.one_minus_beta2, grad, t)
    store_(fma(t, grad, exp_avg_sq, exp_avg_sq, work=w, exact=True), **half)
    # torch: bias_corrected_exp_avg = exp_avg / bias_correction1
    store_(np.divide(exp_avg, k.bias_correction1, t), **half)
    store_(np.multiply(t, k.lr, t), **half)  # torch: bias_corrected_exp_avg * lr
    if k.rectified:
        store_(np.sqrt(exp_avg_sq, d), **half)  # torch: exp_avg_sq.sqrt().add_(eps)
        store_(np.add(d, half_scalar(k.eps, **half), d), **half)
        # torch: bias_correction2**0.5 / d = d.reciprocal() * bias_correction2**0.5
        store_(np.divide(k.one, d, d), **half)
        store_(np.multiply(d, k.bias_correction2_sqrt, d), **half)
        store_(np.multiply(t, d, t), **half)  # torch: (... * lr) * adaptive_lr
        store_(np.multiply(t, k.rect, t), **half)  # torch: (...) * rect
    store_(np.subtract(param, t, param), **half)  # torch: param.add_(update, alpha=-1.0) (exact alpha: no tail rule)


def radam_compiled(
    maximize: bool, decoupled: bool, coupled: bool, low_weight: bool, rectified: bool,
    float16: bool = False, bfloat16: bool = False,
) -> Callable[..., None]:
    """The compiled kernel: :func:`radam_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`RAdamStep`'s flags (so the rectified and the plain step are two kernels).
    ``table`` has a row per parameter (or part of one): its length, then the addresses
    of ``param``, ``grad``, ``exp_avg`` and ``exp_avg_sq``; ``constants`` holds
    :class:`RAdamStep`'s float fields in the arrays' dtype.
    """

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, decay, weight, weight_minus_one = constants[0], constants[1], constants[2], constants[3]
        beta2, one_minus_beta2, bias_correction1, lr = constants[4], constants[5], constants[6], constants[7]
        eps, one, bias_correction2_sqrt, rect = constants[8], constants[9], constants[10], constants[11]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            exp_avg, exp_avg_sq = view(table[row, 3], n, constants), view(table[row, 4], n, constants)
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
                v = scalar_fma_exact(one_minus_beta2 * g, g, v)  # np.multiply(1 - beta2, g); fma(.., exact=True)
                exp_avg[i] = m
                exp_avg_sq[i] = v
                u = (m / bias_correction1) * lr  # np.divide(exp_avg, bc1); np.multiply(t, lr)
                if rectified:
                    d = one / (np.sqrt(v) + eps)  # np.sqrt; np.add(d, eps); np.divide(1, d)
                    u = (u * (d * bias_correction2_sqrt)) * rect  # np.multiply(d, bc2 ** 0.5); (t, d); (t, rect)
                param[i] = p - u  # np.subtract(param, t, param)

    return kernel


class RAdam(Optimizer):
    r"""RAdam: Adam with a rectified adaptive learning rate (plain momentum while its variance is undefined).

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
        :math:`\epsilon`, added to :math:`\sqrt{v_t}` (before the bias correction).
    weight_decay : float, default 0.0
        Weight decay :math:`\lambda`: L2 folded into the gradient, or with
        ``decoupled_weight_decay`` a shrink of the parameter by :math:`(1 - \alpha\lambda)`.
    decoupled_weight_decay : bool, default False
        Decoupled weight decay (RAdamW), as torch 2.13's ``RAdam(decoupled_weight_decay=True)``.
    maximize : bool, default False
        Maximize the objective instead of minimizing it (keyword only).

    Notes
    -----
    With :math:`\rho_\infty = 2 / (1 - \beta_2) - 1` and
    :math:`\rho_t = \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t)`:

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,
            \quad \hat m_t = m_t / (1 - \beta_1^t) \\
        r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}} \\
        \theta_t &= \theta_{t-1} - \alpha \hat m_t \, r_t \sqrt{1 - \beta_2^t} / (\sqrt{v_t} + \epsilon)
            \ \text{if } \rho_t > 5, \text{ else } \theta_{t-1} - \alpha \hat m_t

    With ``betas[1]`` 0.9, 0.99 or 0.999 steps 1 to 5 take the plain momentum step and
    step 6 on the rectified one; with ``betas[1] <= 2/3`` (:math:`\rho_\infty \le 5`) it
    never rectifies. The kernels are :func:`radam_update_` (NumPy) and
    :func:`radam_compiled` (numba). State: ``state[i]["exp_avg"]``,
    ``state[i]["exp_avg_sq"]`` per entry, and the optimizer-level ``state["step"]``.

    References
    ----------
    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (ICLR 2020).
    Mirrors ``torch.optim.RAdam``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = RAdam([{"params": x, "grad": g}])
    >>> opt.step(); x.round(12)                         # step 1 is not rectified: 3 - lr * m_1 / (1 - beta1)
    array([2.994])
    """

    _counts_steps = True  # (bias corrections / decays of the step count: see Optimizer._check_can_add)
    _kernel = staticmethod(radam_update_)
    _half_opmath = True  # float16 / bfloat16: torch's per-op rounding (numpy_optim/_fma.py: store_)
    _kernel_factory = staticmethod(radam_compiled)
    _n_scratch = 3
    _buffer_order = ("exp_avg", "exp_avg_sq")
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "lr": check_nonnegative,
        "betas": lambda name, value: check_betas(value),
        "eps": check_nonnegative,
        "weight_decay": check_nonnegative,
        "decoupled_weight_decay": check_bool,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        )
        defaults.update(state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"exp_avg", "exp_avg_sq"}

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> RAdamStep:
        beta1, beta2 = hyper["betas"]
        return radam_step(
            step=step, lr=hyper["lr"], beta1=beta1, beta2=beta2, eps=hyper["eps"],
            weight_decay=hyper["weight_decay"], maximize=hyper["maximize"],
            decoupled_weight_decay=hyper["decoupled_weight_decay"], dtype=dtype,
        )
