"""SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize."""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, check_bool, check_finite, check_nonnegative


def sgd_update_(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    first: bool,
) -> None:
    r"""One SGD step on one array, in place (``param`` and ``momentum_buffer``).

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
    weight decay :math:`\lambda`. ``momentum_buffer`` is ignored (may be None) when
    ``momentum == 0``.
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum != 0:
        assert momentum_buffer is not None
        if first:
            # torch: the first step copies the gradient; dampening is NOT applied.
            momentum_buffer[...] = grad
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    # lr sits outside the buffer, so a learning rate changed mid-run rescales the whole step.
    param += -lr * grad


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

    The kernel is :func:`sgd_update_`. State: ``state[i]["momentum_buffer"]`` per entry
    when momentum is on, and the optimizer-level ``state["step"]``.

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

    def _update(self, index: int, param: np.ndarray, grad: np.ndarray, hyper: dict[str, Any], step: int) -> None:
        buf, first = self._buffer(index, "momentum_buffer", param) if hyper["momentum"] != 0 else (None, False)
        sgd_update_(
            param, grad, buf,
            lr=hyper["lr"], momentum=hyper["momentum"], dampening=hyper["dampening"],
            weight_decay=hyper["weight_decay"], nesterov=hyper["nesterov"],
            maximize=hyper["maximize"], first=first,
        )
