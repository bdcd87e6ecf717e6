"""Rprop: resilient backpropagation, a step size per element adapted from gradient signs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._backend import view
from .optimizer import LOW_PRECISION_VALIDATORS, Optimizer, _real, check_bool, check_nonnegative


class RpropStep(NamedTuple):
    """The scalars of one Rprop step: flags (bools) first, then the constants (floats)."""

    maximize: bool
    etaminus: float
    etaplus: float
    step_size_min: float
    step_size_max: float
    one: float  # 1.0: torch's sign[sign == 0] = 1
    zero: float  # 0.0: torch's grad[sign == etaminus] = 0


def check_etas(name: str, value: Any) -> tuple[float, float]:
    """A pair ``(etaminus, etaplus)`` with ``0 < etaminus < 1 < etaplus`` (torch's check)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"Invalid etas: {value!r} (expected a pair (etaminus, etaplus))")
    etaminus, etaplus = _real("etas[0]", value[0]), _real("etas[1]", value[1])
    if not 0.0 < etaminus < 1.0 < etaplus:
        raise ValueError(f"Invalid eta values: {value[0]}, {value[1]}")
    return etaminus, etaplus


def check_step_sizes(name: str, value: Any) -> tuple[float, float]:
    """A pair ``(min, max)`` of finite numbers (torch checks nothing: ``(5, 1)`` is
    accepted, and then every step size is ``max``)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"Invalid step_sizes: {value!r} (expected a pair (min, max))")
    return _real("step_sizes[0]", value[0]), _real("step_sizes[1]", value[1])


def _mask(row: np.ndarray) -> np.ndarray:
    """A bool array of ``row``'s shape in ``row``'s memory (``row``: a C-contiguous scratch
    array whose contents are not needed), for the kernel's comparisons."""
    return row.reshape(-1).view(np.bool_)[: row.size].reshape(row.shape)


def _sign(x: np.ndarray, out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """torch's ``sign``: 1, -1, or +0 for zeros of either sign **and for NaN** (``np.sign``
    keeps NaN). ``out`` may be ``x``."""
    np.less(x, 0, out=mask)
    np.greater(x, 0, out=out)  # 1.0 where x > 0, else 0.0
    return np.subtract(out, mask, out=out)  # minus 1 where x < 0


def rprop_update_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: RpropStep) -> None:
    r"""One Rprop step, in place: the NumPy kernel (the reference).

    Parameters
    ----------
    arrays : list of ndarray
        ``[param, grad, prev, step_size]``, one shape and dtype; all but ``grad`` are
        updated in place.
    scratch : list of ndarray
        Three work arrays ``t``, ``u``, ``m`` of that shape and dtype (contents on entry
        ignored; ``m``'s memory holds a bool mask). Whole arrays or blocks of them
        (numpy_optim/_blocks.py).
    k : RpropStep
        The step's flags and scalars.

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it:

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        s &\leftarrow \operatorname{sign}(g \cdot g_{prev}) \quad \text{(of the rounded product)} \\
        s &\leftarrow \eta_+ \text{ where } s > 0, \ \text{then } \eta_- \text{ where } s < 0,
              \ \text{then } 1 \text{ where } s = 0 \\
        \Delta &\leftarrow \operatorname{clamp}(\Delta \cdot s, \Delta_{min}, \Delta_{max}) \\
        g &\leftarrow 0 \text{ where } s = \eta_- \\
        \theta &\leftarrow \theta - \operatorname{sign}(g)\, \Delta \\
        g_{prev} &\leftarrow g

    ``sign`` is torch's: 0 for NaN, so an element whose gradient (or previous gradient)
    is NaN keeps its step size and does not move, and a product that underflows to 0
    counts as "no sign change". Every operation is exact or rounded once, as in torch
    (the product ``sign(g) * step_size`` is exact), so the result is bit for bit torch's,
    float32 and float64.
    """
    param, grad, prev, step_size = arrays[:4]
    t, u = scratch[:2]
    mask = _mask(scratch[2])
    if k.maximize:
        grad = np.negative(grad, u)
    np.multiply(grad, prev, t)  # torch: sign = grad.mul(prev).sign()
    _sign(t, t, mask)
    np.copyto(t, k.etaplus, where=np.greater(t, 0, out=mask))  # torch: sign[sign.gt(0)] = etaplus
    np.copyto(t, k.etaminus, where=np.less(t, 0, out=mask))  # sign[sign.lt(0)] = etaminus
    np.copyto(t, k.one, where=np.equal(t, 0, out=mask))  # sign[sign.eq(0)] = 1
    np.multiply(step_size, t, step_size)  # torch: step_size.mul_(sign).clamp_(min, max)
    np.clip(step_size, k.step_size_min, k.step_size_max, out=step_size)
    np.copyto(prev, grad)  # torch: grad = grad.clone(); grad[sign.eq(etaminus)] = 0; ...; prev.copy_(grad)
    np.copyto(prev, k.zero, where=np.equal(t, k.etaminus, out=mask))
    _sign(prev, t, mask)  # torch: param.addcmul_(grad.sign(), step_size, value=-1)
    np.negative(t, t)
    np.multiply(t, step_size, t)  # exact: step_size times 1, -1 or 0
    np.add(param, t, param)


def rprop_compiled(maximize: bool) -> Callable[..., None]:
    """The compiled kernel: :func:`rprop_update_`'s lines as one loop over the elements.

    ``numpy_optim._compiled`` compiles it with numba, once per value of
    :class:`RpropStep`'s flag. ``table`` has a row per parameter (or part of one): its
    length, then the addresses of ``param``, ``grad``, ``prev`` and ``step_size``;
    ``constants`` holds :class:`RpropStep`'s float fields in the arrays' dtype.
    """

    def kernel(table: Any, constants: Any) -> None:
        etaminus, etaplus, low, high = constants[0], constants[1], constants[2], constants[3]
        one, zero = constants[4], constants[5]
        for row in range(table.shape[0]):
            n = table[row, 0]
            param, grad = view(table[row, 1], n, constants), view(table[row, 2], n, constants)
            prev, step_size = view(table[row, 3], n, constants), view(table[row, 4], n, constants)
            for i in range(n):
                g = grad[i]
                if maximize:
                    g = -g  # np.negative(grad)
                r = g * prev[i]  # np.multiply(grad, prev)
                s = one if r > 0 else (-one if r < 0 else zero)  # _sign: NaN -> 0
                if s > 0:
                    s = etaplus  # copyto(t, etaplus, where=t > 0)
                if s < 0:
                    s = etaminus  # copyto(t, etaminus, where=t < 0)
                if s == 0:
                    s = one  # copyto(t, 1, where=t == 0)
                size = step_size[i] * s  # np.multiply(step_size, t)
                if size < low:
                    size = low  # np.clip: NaN stays, a tie keeps the value, max wins over min
                if size > high:
                    size = high
                step_size[i] = size
                if s == etaminus:
                    g = zero  # copyto(prev, 0, where=t == etaminus)
                prev[i] = g  # np.copyto(prev, grad)
                sg = one if g > 0 else (-one if g < 0 else zero)  # _sign(prev)
                param[i] = param[i] + (-sg) * size  # np.negative; np.multiply(t, step_size); np.add

    return kernel


class Rprop(Optimizer):
    r"""Rprop: resilient backpropagation (full-batch; a step size per element).

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 0.01
        The initial step size :math:`\Delta_0` of every element. As in torch it is read
        only when the entry's step sizes are created (its first step): a learning rate
        changed later (a scheduler) has no effect.
    etas : (float, float), default (0.5, 1.2)
        :math:`(\eta_-, \eta_+)`, with :math:`0 < \eta_- < 1 < \eta_+`: the factors a step
        size is multiplied by when the gradient's sign flips or stays.
    step_sizes : (float, float), default (1e-6, 50)
        :math:`(\Delta_{min}, \Delta_{max})`, the bounds of the step sizes (any finite
        numbers, as torch checks nothing; with min > max every step size is max).
    maximize : bool, default False
        Maximize the objective instead of minimizing it (keyword only, as in torch).

    Notes
    -----
    .. math::

        s_t &= \operatorname{sign}(g_t \, g_{t-1}) \\
        \Delta_t &= \operatorname{clamp}(\Delta_{t-1} \cdot
            \{\eta_+, \eta_-, 1\}_{s_t > 0,\ s_t < 0,\ s_t = 0}, \Delta_{min}, \Delta_{max}) \\
        g_t &\leftarrow 0 \ \text{where } s_t < 0 \\
        \theta_t &= \theta_{t-1} - \operatorname{sign}(g_t)\, \Delta_t

    (the variant without weight backtracking, torch's). The kernels are
    :func:`rprop_update_` (NumPy) and :func:`rprop_compiled` (numba), bit for bit torch's
    single-tensor path in float32 and float64. State: ``state[i]["prev"]`` (the last
    gradient, zeros where it was reset) and ``state[i]["step_size"]`` per entry, and the
    optimizer-level ``state["step"]``.

    References
    ----------
    Riedmiller & Braun, "A direct adaptive method for faster backpropagation learning:
    the RPROP algorithm" (1993). Mirrors ``torch.optim.Rprop``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0, -1.0]); g = np.array([6.0, -2.0])
    >>> opt = Rprop([{"params": x, "grad": g}], lr=0.1)
    >>> opt.step(); x                                   # each element moves by lr against its gradient's sign
    array([ 2.9, -0.9])
    >>> opt.step(); x                                   # same signs: the step sizes grow by 1.2
    array([ 2.78, -0.78])
    """

    _kernel = staticmethod(rprop_update_)
    _kernel_factory = staticmethod(rprop_compiled)
    _n_scratch = 3
    _buffer_order = ("prev", "step_size")
    _validators = {
        **LOW_PRECISION_VALIDATORS,
        "lr": check_nonnegative,
        "etas": check_etas,
        "step_sizes": check_step_sizes,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        maximize: bool = False,
        state_dtype: Any = None,
        master_weights: bool = False,
    ) -> None:
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, maximize=maximize)
        defaults.update(state_dtype=state_dtype, master_weights=master_weights)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"prev", "step_size"}

    def _buffer_fill(self, name: str, hyper: dict[str, Any]) -> float:
        return hyper["lr"] if name == "step_size" else 0.0  # torch: step_size = full_like(grad, lr)

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> RpropStep:
        etaminus, etaplus = hyper["etas"]
        low, high = hyper["step_sizes"]
        return RpropStep(
            maximize=hyper["maximize"], etaminus=etaminus, etaplus=etaplus, step_size_min=low,
            step_size_max=high, one=1.0, zero=0.0,
        )
