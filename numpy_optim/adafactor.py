r"""Adafactor: factored second moments, relative step sizes, update clipping.

Not elementwise: every step reduces (norms of rows, columns and whole arrays, a mean over
rows), so the class overrides :meth:`Optimizer._update` and uses, instead of a kernel
pair, torch's reductions written in NumPy, in torch's order of additions
(numpy_optim/_reductions.py, shared with gradient clipping). Together
with torch's scalar math (Python floats) and its fused multiply-adds (rounded once), a
float32 or float64 trajectory is then bit for bit torch's single-tensor CPU path
(``tests/parity/test_adafactor_torch.py``); torch uses no MKL ``sqrt`` here (its norms
take the IEEE square root, ``rsqrt`` is ``1 / sqrt``).

The reductions (reference: torch-optim-rest.md §1.3 and Appendix A; torch 2.13, CPU):

* :func:`norm_rows` -- ``x.norm(2)`` and ``torch.norm(x, dim=-1)``: 8 float32 / 4
  float64 lanes, each summing the squares of its elements in order (squares rounded, no
  FMA); the lanes added in order; float32 only: 4 more elements if at least 4 remain;
  then ``s = fma(x, x, s)`` for each remaining element; the IEEE square root. The norm
  of one element is ``|x|`` (measured: no underflow of ``x*x`` below 1e-19 in float32).
* :func:`norm_columns` -- ``torch.norm(x, dim=-2)``: per column, the squares added
  sequentially over the rows (no FMA); :func:`norm_rows` when there is one column,
  ``|x|`` when there is one row.
* :func:`torch_sum` -- ``x.sum(dim=-1)``: torch's cascade sum (SumKernel.cpp).

Every one of them works on all rows at once: per-lane and per-column work is
``np.add.reduce`` along an axis that is not the innermost one, which NumPy adds in order
(its pairwise summation applies only along the innermost axis); :func:`_sequential_sum`
makes sure of that.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._fma import fma, lerp_
from ._reductions import (  # noqa: F401  (the private two are re-exported for tests/unit/test_adafactor.py)
    _sequential_sum,
    _sum_of_squares_rows,
    norm_all,
    norm_columns,
    norm_rows,
    torch_sum,
)
from .optimizer import Optimizer, _real, as_float, check_bool

# --------------------------------------------------------------------------------------
# Rounding helpers
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Validation (torch's messages; numpy_optim also refuses NaN, infinity and non-numbers)
# --------------------------------------------------------------------------------------


def _checked(name: str, value: Any, ok: Any, message: str) -> float:
    if not isinstance(value, bool) and isinstance(value, numbers.Real) and not ok(as_float(name, value)):
        raise ValueError(message.format(value))  # torch's range check and message first
    return _real(name, value)


def _check_lr(name: str, value: Any) -> float:
    return _checked(name, value, lambda v: 0.0 <= v, "Learning rate should be >= 0 but is: {}")


def _check_beta2_decay(name: str, value: Any) -> float:
    return _checked(name, value, lambda v: 0.0 >= v, "beta2_decay should be <= 0 but is: {}")


def _check_d(name: str, value: Any) -> float:
    return _checked(name, value, lambda v: 1.0 <= v, "Clipping threshold d should be >= 1 but is: {}")


def _check_weight_decay(name: str, value: Any) -> float:
    return _checked(name, value, lambda v: 0.0 <= v, "weight_decay should be >= 0 but is: {}")


def _check_eps(name: str, value: Any) -> tuple[float | None, float]:
    """``(eps1, eps2)``: eps1 None (the dtype's machine epsilon) or >= 0, eps2 >= 0."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"Invalid eps: {value!r} (expected a pair (eps1 or None, eps2))")
    eps1, eps2 = value
    if eps1 is not None:
        eps1 = _checked("eps[0] (epsilon1)", eps1, lambda v: 0.0 <= v, "epsilon1 should be >= 0 but is: {}")
    eps2 = _checked("eps[1] (epsilon2)", eps2, lambda v: 0.0 <= v, "epsilon2 should be >= 0 but is: {}")
    return eps1, eps2


# --------------------------------------------------------------------------------------
# The optimizer
# --------------------------------------------------------------------------------------

_FACTORED = frozenset({"row_var", "col_var"})
_UNFACTORED = frozenset({"variance"})


class Adafactor(Optimizer):
    r"""Adafactor (torch's variant): factored second moments and relative step sizes.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself. Each entry is one torch parameter group.
    lr : float, default 0.01
        Upper bound of the relative step size :math:`\rho_t = \min(lr, 1/\sqrt t)`.
    beta2_decay : float, default -0.8
        :math:`c \le 0`: the second moments' weight of the new gradient is :math:`t^c`.
    eps : (float or None, float), default (None, 1e-3)
        :math:`(\epsilon_1, \epsilon_2)`. :math:`\epsilon_1` floors the second-moment
        estimate (squared) and the row mean; None takes the machine epsilon of the
        entry's dtype. :math:`\epsilon_2` floors the parameter's RMS in the step size.
    d : float, default 1.0
        Clipping threshold (>= 1) on the RMS of the update.
    weight_decay : float, default 0.0
        Decoupled decay :math:`\lambda`: the parameter shrinks by :math:`1 - lr \lambda`.
    maximize : bool, default False
        Maximize the objective instead of minimizing it (keyword only).

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it (:math:`t` is
    the step, the first is 1; :math:`n` the number of columns, :math:`m` of rows):

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        \beta_t &= t^{c}, \quad \rho_t = \min(lr, 1/\sqrt t), \quad
            \alpha_t = \max(\epsilon_2, \|\theta\|_2 / \sqrt{N})\, \rho_t \\
        \theta &\leftarrow (1 - lr\,\lambda)\, \theta \\
        R &\leftarrow \mathrm{lerp}(R, \|g_{i,:}\|^2 / n, \beta_t), \quad
        C \leftarrow \mathrm{lerp}(C, \|g_{:,j}\|^2 / m, \beta_t) \\
        \hat V &= R\, C / \max(\mathrm{mean}_i R, \epsilon_1)
            \quad \text{(2-d and more; 0-d and 1-d: } V \leftarrow \mathrm{lerp}(V, g^2, \beta_t),
            \ \hat V = V) \\
        u &= g / \sqrt{\max(\hat V, \epsilon_1^2)} \\
        \theta &\leftarrow \theta - \frac{\alpha_t}{\max(1, \mathrm{RMS}(u) / d)}\, u

    with :math:`\|\theta\|_2` taken before the decay. Arrays of 2 or more dimensions are
    factored over their last two axes (the leading ones are batch axes): state
    ``row_var`` of shape ``shape[:-1] + (1,)`` and ``col_var`` of shape
    ``shape[:-2] + (1, shape[-1])``; 0-d and 1-d ones keep ``variance`` (their shape).
    The scalar math is torch's, in Python floats (``**``, ``max``, ``min``: a NaN norm
    is replaced by :math:`\epsilon_2`, as Python's ``max`` does); the reductions are
    torch's (:func:`norm_rows`, :func:`norm_columns`, :func:`torch_sum`); ``lerp`` and
    the final update are rounded once, as torch's FMA rounds them.

    torch fixes :math:`\epsilon_1 = None` once per parameter group, from the dtype of its
    first parameter with a gradient (a float64 parameter after a float32 one gets float32's
    epsilon). An entry here is a group of one, so each entry takes its own dtype's.

    Beside the step count, :math:`\mathrm{mean}_i R` over more than 32768 rows of a single
    matrix is the one result of torch's that depends on its number of threads (it splits
    the sum, see :func:`torch_sum`); numpy_optim sums it whole, as torch does with one
    thread (``_sum_threads``).

    References
    ----------
    Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost"
    (2018). Mirrors ``torch.optim.Adafactor`` (whose default ``weight_decay`` is 0.0,
    though its docstring says 1e-2).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0, -4.0]); g = np.array([1.0, 1.0])
    >>> opt = Adafactor([{"params": x, "grad": g}])
    >>> opt.step(); x                   # alpha = max(1e-3, 5 / sqrt(2)) * 0.01; u = g / |g|
    array([ 2.96464466, -4.03535534])
    """

    _counts_steps = True  # (bias corrections / decays of the step count: see Optimizer._check_can_add)
    _kernel = None
    _validators = {
        "lr": _check_lr,
        "beta2_decay": _check_beta2_decay,
        "eps": _check_eps,
        "d": _check_d,
        "weight_decay": _check_weight_decay,
        "maximize": check_bool,
    }
    #: torch's ``get_num_threads()`` assumed by the row mean (see :func:`torch_sum`).
    _sum_threads = 1

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    # ----- buffers: which ones depends on the parameter's number of dimensions -----------

    @staticmethod
    def _entry_buffer_names(param: Any) -> frozenset[str]:
        """``row_var`` and ``col_var`` for a parameter of 2 or more dimensions, else ``variance``."""
        return _FACTORED if len(param.shape) >= 2 else _UNFACTORED

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return set(_FACTORED | _UNFACTORED)  # every name an entry may hold; which ones: below

    def _entry_state_names(self, hyper: dict[str, Any], param: Any) -> set[str]:
        return set(self._entry_buffer_names(param))  # depends on the parameter's dimensions

    @classmethod
    def _buffer_layout(cls, name: str, param: Any, hyper: Any = None) -> tuple[tuple[int, ...], np.dtype]:
        shape = tuple(param.shape)
        if name not in cls._entry_buffer_names(param):
            raise ValueError(
                f"Adafactor keeps {sorted(cls._entry_buffer_names(param))} for a parameter of shape {shape}, "
                f"not {name!r}"
            )
        if name == "row_var":
            return shape[:-1] + (1,), param.dtype
        if name == "col_var":
            return shape[:-2] + (1, shape[-1]), param.dtype
        return shape, param.dtype

    # ----- the step ----------------------------------------------------------------------

    def _prepare(self, compiled: Any) -> Any:
        work = super()._prepare(compiled)
        for index, entry in enumerate(self.param_groups):
            if entry["params"].size == 0:  # torch: ZeroDivisionError mid-step; here before any write
                raise ZeroDivisionError(
                    f"params[{index}]['params'] is empty (shape {entry['params'].shape}): Adafactor divides by "
                    "its number of elements (torch: float division by zero)"
                )
        for index, entry in enumerate(self.param_groups):  # its state, before the first write
            param = entry["params"]
            for name in sorted(self._entry_buffer_names(param)):
                if name not in self.state.get(index, {}):
                    self.state.setdefault(index, {})[name] = np.zeros(*self._buffer_layout(name, param))
                    if self._created is not None:
                        self._created.append((index, name))
        return work

    def _update(self, index: int, param: np.ndarray, grad: np.ndarray, hyper: dict[str, Any], step: int) -> None:
        """One torch single-tensor Adafactor step of entry ``index`` (its state created by :meth:`_prepare`)."""
        dtype = param.dtype
        dt = dtype.type
        buffers = self.state[index]
        lr, weight_decay, d = hyper["lr"], hyper["weight_decay"], hyper["d"]
        eps1, eps2 = hyper["eps"]
        if eps1 is None:
            eps1 = float(np.finfo(dtype).eps)  # torch: per group, from its first parameter
        g = np.negative(grad) if hyper["maximize"] else grad

        # Python floats, as torch: step_t.item() is the float32 step count (exact integers).
        s = float(step)
        one_minus_beta2_t = s ** hyper["beta2_decay"]
        rho_t = min(lr, 1 / (s**0.5))
        alpha = max(eps2, norm_all(param) / (param.size**0.5)) * rho_t  # the norm before the decay

        if weight_decay != 0:
            np.multiply(param, dt(1 - lr * weight_decay), out=param)  # torch: param.mul_(1 - lr * wd)

        if g.ndim > 1:
            row_var, col_var = buffers["row_var"], buffers["col_var"]
            n_rows, n_cols = g.shape[-2], g.shape[-1]
            r = norm_rows(g)[..., None]                              # torch.norm(grad, dim=-1, keepdim=True)
            row_mean = np.divide(r * r, dt(n_cols))                   # .square_().div_(grad.size(-1))
            lerp_(row_var, row_mean, one_minus_beta2_t)               # row_var.lerp_(row_mean, beta2_t)
            c = norm_columns(g)[..., None, :]                         # torch.norm(grad, dim=-2, keepdim=True)
            col_mean = np.divide(c * c, dt(n_rows))                   # .square_().div_(grad.size(-2))
            lerp_(col_var, col_mean, one_minus_beta2_t)               # col_var.lerp_(col_mean, beta2_t)
            var_estimate = np.multiply(row_var, col_var)              # row_var @ col_var: exact products
            rows = np.ascontiguousarray(row_var).reshape(-1, n_rows)
            row_sum = torch_sum(rows, self._sum_threads if rows.shape[0] == 1 else 1)
            row_var_mean = np.divide(row_sum, dt(n_rows)).reshape(row_var.shape[:-2] + (1, 1))  # .mean(dim=-2)
            np.divide(var_estimate, np.maximum(row_var_mean, dt(eps1)), out=var_estimate)  # .div_(....clamp_(eps1))
        else:
            variance = buffers["variance"]
            lerp_(variance, np.multiply(g, g), one_minus_beta2_t)     # variance.lerp_(grad * grad, beta2_t)
            var_estimate = variance.copy()                            # variance.clone()

        update = np.empty_like(param)
        np.maximum(var_estimate, dt(eps1 * eps1), out=update)         # clamp_(min=eps1 * eps1)
        np.sqrt(update, out=update)                                   # rsqrt_(): 1 / IEEE sqrt, two roundings
        with np.errstate(divide="ignore"):                            # rsqrt(0) = inf, as torch
            np.divide(dt(1), update, out=update)
        np.multiply(update, g, out=update)                            # update.mul_(grad)
        denom = max(1.0, norm_all(update) / ((update.size**0.5) * d))
        fma(update, -alpha / denom, param, param, exact=True)         # param.add_(update, alpha=-alpha / denom)
