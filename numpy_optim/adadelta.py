"""Adadelta: steps scaled by the ratio of running RMS of updates to running RMS of gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import add_alpha, fma, half_scalar, scalar_fma, scalar_fma_exact, store_
from .optimizer import LOW_PRECISION_VALIDATORS, Optimizer, _real, check_bool, check_nonnegative


class AdadeltaStep(NamedTuple):
    """The scalars of one Adadelta step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    decay: bool  # weight_decay != 0
    weight_decay: float
    rho: float
    one_minus_rho: float  # 1 - rho
    eps: float
    neg_lr: float  # -lr
    float16: bool = False  # float16 parameters, computed on float32 copies as torch computes half ops
    bfloat16: bool = False  # (the same for bfloat16; numpy_optim/_fma.py: add_alpha, store_)


def check_rho(name: str, value: Any) -> float:
    """``0 <= rho <= 1`` (torch's check; 1 is accepted); returns it as a Python float."""
    value = _real(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Invalid {name} value: {value!r} (must be 0 <= {name} <= 1)")
    return value


def adadelta_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: AdadeltaStep) -> None:
    r"""One Adadelta step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, square_avg, acc_delta]``, one shape and dtype; all but ``grad``
        are updated in place.
    scratch : list of ndarray
        Three work arrays ``t``, ``d``, ``u`` of that shape and dtype (contents on entry
        ignored), and for float32 a float64 one more (the work row of
        :func:`numpy_optim._fma.fma`). Whole arrays or blocks of them: the optimizer
        passes blocks (numpy_optim/_blocks.py).
    k : AdadeltaStep
        The step's flags and scalars.

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it:

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        g &\leftarrow g + \lambda \theta \ \text{if } \lambda \ne 0 \\
        v_t &\leftarrow \rho v_{t-1} + (1 - \rho) g^2 \\
        \Delta &\leftarrow \sqrt{u_{t-1} + \epsilon} / \sqrt{v_t + \epsilon} \cdot g \\
        u_t &\leftarrow \rho u_{t-1} + (1 - \rho) \Delta^2 \\
        \theta &\leftarrow \theta - \alpha \Delta

    with ``square_avg`` :math:`v` and ``acc_delta`` :math:`u` (eps inside both square
    roots; the update uses the *previous* :math:`u`). The two ``addcmul`` and the final
    ``add`` with ``alpha`` are rounded once in float32 (torch's FMA); in float64 they are
    rounded twice (sums of non-negative terms, and a parameter update nothing divides).
    The L2 term, which can nearly cancel and is then divided by :math:`\sqrt{v_t}`, is
    rounded once in both (``exact=True``).
    """
    param, grad, square_avg, acc_delta = arrays[:4]
    t, d, u = scratch[:3]
    w = scratch[3] if len(scratch) > 3 else t  # fma's work row: float64 for float32 arrays
    half = {"float16": k.float16, "bfloat16": k.bfloat16}
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:
        # torch: grad.add(param, alpha=weight_decay)
        grad = add_alpha(grad, param, k.weight_decay, u, work=w, exact=True, **half)
    # torch: square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
    store_(np.multiply(square_avg, k.rho, square_avg), **half)
    np.multiply(k.one_minus_rho, grad, t)
    store_(fma(t, grad, square_avg, square_avg, work=w), **half)
    eps = half_scalar(k.eps, **half)
    store_(np.add(square_avg, eps, t), **half)  # torch: std = square_avg.add(eps).sqrt_()
    store_(np.sqrt(t, t), **half)
    store_(np.add(acc_delta, eps, d), **half)  # torch: delta = acc_delta.add(eps).sqrt_() (the old acc_delta)
    store_(np.sqrt(d, d), **half)
    store_(np.divide(d, t, d), **half)  # torch: delta.div_(std).mul_(grad)
    store_(np.multiply(d, grad, d), **half)
    # torch: acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    store_(np.multiply(acc_delta, k.rho, acc_delta), **half)
    np.multiply(k.one_minus_rho, d, t)
    store_(fma(t, d, acc_delta, acc_delta, work=w), **half)
    add_alpha(param, d, k.neg_lr, param, work=w, **half)  # torch: param.add_(delta, alpha=-lr)


def adadelta_compiled(
    maximize: bool, decay: bool, float16: bool = False, bfloat16: bool = False,
) -> Callable[..., None]:
    """The compiled kernel: :func:`adadelta_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`AdadeltaStep`'s flags. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad``, ``square_avg`` and ``acc_delta``;
    ``constants`` holds :class:`AdadeltaStep`'s float fields in the arrays' dtype.
    """

    def kernel(table: Any, constants: Any) -> None:
        weight_decay, rho, one_minus_rho = constants[0], constants[1], constants[2]
        eps, neg_lr = constants[3], constants[4]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            square_avg, acc_delta = view(table[row, 3], n, constants), view(table[row, 4], n, constants)
            for i in range(n):
                g = grad[i]
                p = param[i]
                if maximize:
                    g = -g  # np.negative(grad)
                if decay:
                    g = scalar_fma_exact(p, weight_decay, g)  # fma(param, weight_decay, grad, exact=True)
                v = scalar_fma(one_minus_rho * g, g, square_avg[i] * rho)  # multiply; multiply; fma
                square_avg[i] = v
                std = np.sqrt(v + eps)  # np.add(square_avg, eps); np.sqrt
                a = acc_delta[i]
                delta = np.sqrt(a + eps) / std * g  # np.add(acc_delta, eps); np.sqrt; np.divide; np.multiply
                acc_delta[i] = scalar_fma(one_minus_rho * delta, delta, a * rho)  # multiply; multiply; fma
                param[i] = scalar_fma(delta, neg_lr, p)  # fma(delta, -lr, param)

    return kernel


class Adadelta(Optimizer):
    r"""Adadelta: an adaptive step from running averages of squared gradients and updates.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 1.0
        Learning rate :math:`\alpha`, a factor on the update :math:`\Delta`.
    rho : float, default 0.9
        Decay rate :math:`\rho` of both running averages, ``0 <= rho <= 1``.
    eps : float, default 1e-6
        :math:`\epsilon`, added inside both square roots.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda` added to the gradient.
    maximize : bool, default False
        Maximize the objective instead of minimizing it.

    Notes
    -----
    .. math::

        g_t &= \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        v_t &= \rho v_{t-1} + (1 - \rho) g_t^2 \\
        \Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} \, g_t \\
        u_t &= \rho u_{t-1} + (1 - \rho) \Delta_t^2 \\
        \theta_t &= \theta_{t-1} - \alpha \Delta_t

    The kernels are :func:`adadelta_update_` (NumPy) and :func:`adadelta_compiled`
    (numba). State: ``state[i]["square_avg"]`` (:math:`v`) and ``state[i]["acc_delta"]``
    (:math:`u`) per entry, both starting at zero, and the optimizer-level ``state["step"]``
    (torch keeps a step it does not use).

    References
    ----------
    Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (2012). Mirrors
    ``torch.optim.Adadelta``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = Adadelta([{"params": x, "grad": g}])
    >>> opt.step(); x.round(6)                          # 3 - sqrt(1e-6) / sqrt(3.6 + 1e-6) * 6
    array([2.996838])
    """

    _kernel = staticmethod(adadelta_update_)
    _half_opmath = True  # float16 / bfloat16: torch's per-op rounding (numpy_optim/_fma.py: store_)
    _kernel_factory = staticmethod(adadelta_compiled)
    _n_scratch = 3
    _buffer_order = ("square_avg", "acc_delta")
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "lr": check_nonnegative,
        "rho": check_rho,
        "eps": check_nonnegative,
        "weight_decay": check_nonnegative,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        defaults.update(state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"square_avg", "acc_delta"}

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> AdadeltaStep:
        return AdadeltaStep(
            maximize=hyper["maximize"], decay=hyper["weight_decay"] != 0, weight_decay=hyper["weight_decay"],
            rho=hyper["rho"], one_minus_rho=1 - hyper["rho"], eps=hyper["eps"], neg_lr=-hyper["lr"],
        )
