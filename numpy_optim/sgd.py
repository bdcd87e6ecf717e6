"""SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _blocks
from ._fma import fma
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
    ``momentum == 0``. The multiply-adds torch fuses (each ``add`` with ``alpha``) are
    rounded once in float32, as torch's FMA rounds them (:func:`numpy_optim._fma.fma`).

    This is the plain reference, one whole-array NumPy expression per line (each
    allocates a temporary). The optimizer classes run the very same operations through
    :func:`_sgd_block_` instead: block by block into reused scratch buffers, small parameters
    batched, large ones over threads (``numpy_optim/_blocks.py``), with bitwise the same
    results; ``numpy_optim._blocks.settings.enabled = False`` makes them call this
    function.
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = fma(param, weight_decay, grad)  # torch: grad.add(param, alpha=weight_decay)
    if momentum != 0:
        assert momentum_buffer is not None
        if first:
            # torch: the first step copies the gradient; dampening is NOT applied.
            momentum_buffer[...] = grad
        else:
            momentum_buffer *= momentum  # torch: buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            fma(grad, 1 - dampening, momentum_buffer, out=momentum_buffer)
        # torch: grad.add(buf, alpha=momentum) if nesterov else buf
        grad = fma(momentum_buffer, momentum, grad) if nesterov else momentum_buffer
    # lr sits outside the buffer, so a learning rate changed mid-run rescales the whole step.
    fma(grad, -lr, param, out=param)  # torch: param.add_(grad, alpha=-lr)


# --------------------------------------------------------------------------------------
# The same update, block by block, without temporaries (see numpy_optim/_blocks.py).
# --------------------------------------------------------------------------------------


class _SGDScalars(NamedTuple):
    """The Python-float scalars of one step of :func:`sgd_update_`."""

    maximize: bool
    weight_decay: float
    momentum: float
    one_minus_dampening: float  # 1 - dampening
    nesterov: bool
    first: bool
    neg_lr: float  # -lr


def _sgd_block_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: _SGDScalars) -> None:
    """:func:`sgd_update_` on one block of 1-d arrays, writing into ``scratch`` (``out=``).

    The same ufuncs with the same operands in the same order as :func:`sgd_update_` (each
    line names the expression it replaces), so every element is bitwise the same.
    ``arrays`` is ``[param, grad(, momentum_buffer)]``; ``scratch`` holds ``t`` and ``u``
    (and, for float32 blocks, a float64 row for :func:`numpy_optim._fma.fma`).
    """
    param, grad = arrays[:2]
    t, u = scratch[:2]
    w = scratch[2] if len(scratch) > 2 else t  # fma's work row: float64 for float32 blocks
    if k.maximize:
        grad = np.negative(grad, u)  # grad = -grad
    if k.weight_decay != 0:
        grad = fma(param, k.weight_decay, grad, u, work=w)  # grad = fma(param, weight_decay, grad)
    if k.momentum != 0:
        buf = arrays[2]
        if k.first:
            np.copyto(buf, grad)  # momentum_buffer[...] = grad
        else:
            np.multiply(buf, k.momentum, buf)  # momentum_buffer *= momentum
            fma(grad, k.one_minus_dampening, buf, buf, work=w)  # fma(grad, 1 - dampening, momentum_buffer, ...)
        if k.nesterov:
            grad = fma(buf, k.momentum, grad, u, work=w)  # grad = fma(momentum_buffer, momentum, grad)
        else:
            grad = buf
    fma(grad, k.neg_lr, param, param, work=w)  # fma(grad, -lr, param, out=param)


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
        self._plain(param, grad, buf, first, hyper)

    @staticmethod
    def _plain(param: np.ndarray, grad: np.ndarray, buf: np.ndarray | None, first: bool, hyper: dict[str, Any]) -> None:
        sgd_update_(
            param, grad, buf,
            lr=hyper["lr"], momentum=hyper["momentum"], dampening=hyper["dampening"],
            weight_decay=hyper["weight_decay"], nesterov=hyper["nesterov"],
            maximize=hyper["maximize"], first=first,
        )

    def _update_entries(self, hyperparameters: list[dict[str, Any]], step: int) -> None:
        """All entries at once: those with equal hyperparameters, dtype and first-step flag
        go through :func:`_sgd_block_` together (blocked, batched, threaded); the rest, and
        everything when ``_blocks.settings.enabled`` is False or a subclass overrides
        :meth:`_update`, through :meth:`_update`."""
        if not _blocks.settings.enabled or type(self)._update is not SGD._update:
            # A subclass that overrides the per-entry _update gets exactly that, entry by entry.
            super()._update_entries(hyperparameters, step)
            return
        groups: dict[tuple[Any, ...], tuple[dict[str, Any], bool, list[tuple[np.ndarray, ...]]]] = {}
        for index, (entry, hyper) in enumerate(zip(self.param_groups, hyperparameters)):
            param, grad = entry["params"], entry["grad"]
            arrays: tuple[np.ndarray, ...] = (param, grad)
            first = False
            if hyper["momentum"] != 0:
                buf, first = self._buffer(index, "momentum_buffer", param)
                arrays += (buf,)
            if _blocks.blockable(arrays):
                groups.setdefault(_blocks.group_key(entry, hyper, first), (hyper, first, []))[2].append(arrays)
            else:
                self._plain(param, grad, arrays[2] if len(arrays) > 2 else None, first, hyper)
        for hyper, first, items in groups.values():
            scalars = _SGDScalars(
                maximize=hyper["maximize"], weight_decay=hyper["weight_decay"], momentum=hyper["momentum"],
                one_minus_dampening=1 - hyper["dampening"], nesterov=hyper["nesterov"], first=first,
                neg_lr=-hyper["lr"],
            )
            written = (0, 2) if hyper["momentum"] != 0 else (0,)
            _blocks.run(_sgd_block_, items, scalars, written=written, n_scratch=2)
