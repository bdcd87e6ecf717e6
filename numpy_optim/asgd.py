"""ASGD: averaged stochastic gradient descent with a decaying step size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import add_alpha, scalar_fma_exact, store_
from .optimizer import LOW_PRECISION_VALIDATORS, Optimizer, check_bool, check_finite, check_nonnegative


class ASGDStep(NamedTuple):
    """The scalars of one ASGD step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    decay: bool  # weight_decay != 0: L2 folded into the gradient
    averaging: bool  # mu != 1: ax moves towards the parameter (else it is a copy of it)
    weight_decay: float
    shrink: float  # 1 - lambd * eta
    neg_eta: float  # -eta
    mu: float
    float16: bool = False  # float16 parameters, computed on float32 copies as torch computes half ops
    bfloat16: bool = False  # (the same for bfloat16; numpy_optim/_fma.py: add_alpha, store_)


def float32(value: float) -> float:
    """``value`` stored in a 0-d float32 tensor and read back with ``.item()`` (torch's
    ``eta`` and ``mu``: 0-d tensors of its default dtype, float32)."""
    with np.errstate(over="ignore"):  # torch stores an overflowing eta as inf, silently
        return float(np.float32(value))


def asgd_schedule(*, lr: float, lambd: float, alpha: float, t0: float, step: int) -> tuple[float, float]:
    """``(eta, mu)`` as torch stores them at the end of step ``step``, for the next step.

    In Python floats, as torch writes them, then rounded to float32:
    ``eta = lr / ((1 + lambd * lr * step) ** alpha)``, ``mu = 1 / max(1, step - t0)``.

    Raises
    ------
    ValueError
        If the decay base ``1 + lambd * lr * step`` is negative and ``alpha`` is not an
        integer: Python's ``**`` then gives a complex number (torch would go on with its
        real part, and warn).
    ZeroDivisionError, OverflowError
        Where Python's arithmetic raises them (a zero base or denominator, an overflowing
        power), as torch's does, but with the values named.
    """
    base = 1 + lambd * lr * step
    what = f"(1 + lambd * lr * step) ** alpha with lambd={lambd!r}, lr={lr!r}, step={step}, alpha={alpha!r}"
    if base < 0 and not float(alpha).is_integer():
        raise ValueError(
            f"ASGD step size decay: {what}: the base {base!r} is negative and alpha is not an integer, "
            "so the decay would be a complex number"
        )
    try:
        eta = lr / (base**alpha)
    except (ZeroDivisionError, OverflowError) as error:
        raise type(error)(f"ASGD step size decay: lr / {what} (base {base!r}): {error}") from None
    return float32(eta), float32(1 / max(1, float(step) - t0))


def asgd_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: ASGDStep) -> None:
    r"""One ASGD step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, ax]``, one shape and dtype; ``param`` and ``ax`` are updated in place.
    scratch : list of ndarray
        Two work arrays ``t``, ``u`` of that shape and dtype (contents on entry ignored),
        and for float32 a float64 one more (the work row of :func:`numpy_optim._fma.fma`).
        Whole arrays or blocks of them (numpy_optim/_blocks.py).
    k : ASGDStep
        The step's flags and scalars; ``eta`` and ``mu`` are the float32 values stored by
        the previous step (:func:`asgd_schedule`).

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it:

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        g &\leftarrow g + \lambda_{wd} \theta \ \text{if } \lambda_{wd} \ne 0 \\
        \theta &\leftarrow (1 - \lambda \eta)\, \theta \\
        \theta &\leftarrow \theta - \eta g \\
        \bar\theta &\leftarrow \bar\theta + \mu (\theta - \bar\theta) \ \text{if } \mu \ne 1,
            \text{ else } \theta

    torch has no sqrt here, so the result is bit for bit torch's, float32 and float64:
    the multiply-adds torch fuses (the L2 ``add`` and the step ``add`` with ``alpha``) are
    rounded once in both dtypes (float64 through the exact :func:`numpy_optim._fma.fma`).
    """
    param, grad, ax = arrays[:3]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else t  # fma's work row: float64 for float32 arrays
    half = {"float16": k.float16, "bfloat16": k.bfloat16}
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:
        # torch: grad.add(param, alpha=weight_decay)
        grad = add_alpha(grad, param, k.weight_decay, u, work=w, exact=True, **half)
    store_(np.multiply(param, k.shrink, param), **half)  # torch: param.mul_(1 - lambd * eta)
    add_alpha(param, grad, k.neg_eta, param, work=w, exact=True, **half)  # torch: param.add_(grad, alpha=-eta)
    if k.averaging:
        store_(np.subtract(param, ax, t), **half)  # torch: ax.add_(param.sub(ax).mul_(mu))
        store_(np.multiply(t, k.mu, t), **half)
        store_(np.add(ax, t, ax), **half)
    else:
        np.copyto(ax, param)  # torch: ax.copy_(param) while mu == 1


def asgd_compiled(
    maximize: bool, decay: bool, averaging: bool, float16: bool = False, bfloat16: bool = False,
) -> Callable[..., None]:
    """The compiled kernel: :func:`asgd_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`ASGDStep`'s flags. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad`` and ``ax``; ``constants`` holds
    :class:`ASGDStep`'s float fields in the arrays' dtype.
    """

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, shrink, neg_eta, mu = constants[0], constants[1], constants[2], constants[3]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            ax = view(table[row, 3], n, constants)
            for i in range(n):
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decay:
                    g = scalar_fma_exact(p, weight_decay, g)  # fma(param, weight_decay, grad, exact=True)
                p = p * shrink  # np.multiply(param, 1 - lambd * eta)
                p = scalar_fma_exact(g, neg_eta, p)  # fma(grad, -eta, param, exact=True)
                param[i] = p
                if averaging:
                    a = ax[i]
                    ax[i] = a + (p - a) * mu  # np.subtract(param, ax); np.multiply(t, mu); np.add(ax, t)
                else:
                    ax[i] = p  # np.copyto(ax, param)

    return kernel


class ASGD(Optimizer):
    r"""Averaged stochastic gradient descent (Polyak-Ruppert averaging, decaying step).

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 0.01
        Learning rate :math:`\alpha`, the step size :math:`\eta` of the first step.
    lambd : float, default 1e-4
        Decay term :math:`\lambda`: the parameter shrinks by :math:`(1 - \lambda\eta)` each
        step, and :math:`\eta` decays as :math:`(1 + \lambda \alpha t)^{-a}`. Any finite
        number (torch does not check it).
    alpha : float, default 0.75
        Power :math:`a` of the step size decay. Any finite number.
    t0 : float, default 1e6
        The step after which averaging starts. Any finite number.
    weight_decay : float, default 0.0
        L2 coefficient, added to the gradient.
    maximize : bool, default False
        Maximize the objective instead of minimizing it.

    Notes
    -----
    .. math::

        g_t &= \nabla f(\theta_{t-1}) + \lambda_{wd} \theta_{t-1} \\
        \theta_t &= (1 - \lambda \eta_t)\, \theta_{t-1} - \eta_t g_t \\
        \bar\theta_t &= \bar\theta_{t-1} + \mu_t (\theta_t - \bar\theta_{t-1}) \\
        \eta_{t+1} &= \alpha / (1 + \lambda \alpha t)^{a}, \quad
        \mu_{t+1} = 1 / \max(1, t - t_0)

    with :math:`\eta_1 = \alpha` and :math:`\mu_1 = 1`. As in torch, :math:`\eta` and
    :math:`\mu` are computed at the end of a step from that step's ``lr`` and used by the
    next one, so a learning rate changed between steps reaches the decay factor one step
    late, and they are float32 numbers (0-d float32 arrays in the state, as torch keeps
    them, for float64 parameters too). Averaging starts at the first :math:`t > t_0 + 2`;
    until then :math:`\bar\theta` is a copy of :math:`\theta`.

    A step whose decay base :math:`1 + \lambda \alpha t` is negative while :math:`a` is not
    an integer (possible only with a negative ``lambd``) raises ValueError before
    anything changes: Python's ``**`` gives a complex number there, of which torch keeps
    the real part. A zero base (ZeroDivisionError) or an overflowing power
    (OverflowError) raise as in torch, but also before anything changes (torch has
    already updated the parameter when Python raises).

    The kernels are :func:`asgd_update_` (NumPy) and :func:`asgd_compiled` (numba), bit for
    bit torch's single-tensor path in float32 and float64 (torch's ``foreach=True`` path
    computes other bits). State: ``state[i]["ax"]`` (:math:`\bar\theta`),
    ``state[i]["eta"]`` and ``state[i]["mu"]`` per entry, and the optimizer-level
    ``state["step"]`` (:math:`t`).

    References
    ----------
    Polyak & Juditsky, "Acceleration of stochastic approximation by averaging" (1992);
    Bottou, "Stochastic Gradient Descent Tricks" (2012). Mirrors ``torch.optim.ASGD``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = ASGD([{"params": x, "grad": g}], lr=0.1)
    >>> opt.step(); x.round(6)                          # eta = float32(0.1): 3 (1 - 1e-4 eta) - 6 eta
    array([2.39997])
    """

    _counts_steps = True  # (bias corrections / decays of the step count: see Optimizer._check_can_add)
    _kernel = staticmethod(asgd_update_)
    _half_opmath = True  # float16 / bfloat16: torch's per-op rounding (numpy_optim/_fma.py: store_)
    _kernel_factory = staticmethod(asgd_compiled)
    _n_scratch = 2
    _buffer_order = ("ax",)
    _scalar_state = ("eta", "mu")
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "lr": check_nonnegative,
        "lambd": check_finite,
        "alpha": check_finite,
        "t0": check_finite,
        "weight_decay": check_nonnegative,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0.0,
        maximize: bool = False,
        *,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
        defaults.update(state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"ax", "eta", "mu"}

    def _step_scalar_state(
        self, hyper: dict[str, Any], step: int, stored: dict[str, float] | None,
    ) -> tuple[dict[str, float], dict[str, float]]:
        # torch: eta starts at float32(lr) and mu at 1; each step uses the values the
        # previous step stored, then stores those of the next step.
        used = {"eta": float32(hyper["lr"]), "mu": 1.0} if stored is None else stored
        eta, mu = asgd_schedule(lr=hyper["lr"], lambd=hyper["lambd"], alpha=hyper["alpha"], t0=hyper["t0"],
                                step=step)
        return used, {"eta": eta, "mu": mu}

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> ASGDStep:
        eta, mu = hyper["eta"], hyper["mu"]
        return ASGDStep(
            maximize=hyper["maximize"], decay=hyper["weight_decay"] != 0, averaging=mu != 1,
            weight_decay=hyper["weight_decay"], shrink=1 - hyper["lambd"] * eta, neg_eta=-eta, mu=mu,
        )
