"""SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from ._fma import fma, scalar_fma
from .optimizer import Optimizer, check_bool, check_finite, check_nonnegative


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
    (:func:`numpy_optim._fma.fma`).
    """
    param, grad = arrays[:2]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else t  # fma's work row: float64 for float32 arrays
    if k.maximize:
        grad = np.negative(grad, u)
    if k.decay:
        grad = fma(param, k.weight_decay, grad, u, work=w)  # torch: grad.add(param, alpha=weight_decay)
    if k.momentum_on:
        buf = arrays[2]
        if k.first:
            np.copyto(buf, grad)  # torch: the first step copies the gradient; dampening is NOT applied
        else:
            np.multiply(buf, k.momentum, buf)  # torch: buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            fma(grad, k.one_minus_dampening, buf, buf, work=w)
        # torch: grad.add(buf, alpha=momentum) if nesterov else buf
        grad = fma(buf, k.momentum, grad, u, work=w) if k.nesterov else buf
    # lr sits outside the buffer, so a learning rate changed mid-run rescales the whole step.
    fma(grad, k.neg_lr, param, param, work=w)  # torch: param.add_(grad, alpha=-lr)


def sgd_compiled(maximize: bool, decay: bool, momentum_on: bool, first: bool, nesterov: bool) -> Callable[..., None]:
    """The compiled kernel: :func:`sgd_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per combination of
    :class:`SGDStep`'s flags. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad`` and ``momentum_buffer``;
    ``constants`` holds :class:`SGDStep`'s float fields in the arrays' dtype.
    """

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
    _buffer_order = ("momentum_buffer",)
    _validators = {
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
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_combination(self, hyper: dict[str, Any]) -> None:
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening, got "
                f"momentum={hyper['momentum']!r}, dampening={hyper['dampening']!r}"
            )

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"momentum_buffer"} if hyper["momentum"] != 0 else set()

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> SGDStep:
        return SGDStep(
            maximize=hyper["maximize"], decay=hyper["weight_decay"] != 0, momentum_on=hyper["momentum"] != 0,
            first=first, nesterov=hyper["nesterov"], weight_decay=hyper["weight_decay"], momentum=hyper["momentum"],
            one_minus_dampening=1 - hyper["dampening"], neg_lr=-hyper["lr"],
        )
