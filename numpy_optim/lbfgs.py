r"""L-BFGS with an optional strong-Wolfe line search, as ``torch.optim.LBFGS`` computes it.

L-BFGS is not elementwise: it works on one flat vector, the concatenation of every
entry's parameters (and of their gradients), keeps a history of the last
``history_size`` steps and gradient changes, and calls a *closure* that re-evaluates the
loss and the gradients, several times per :meth:`LBFGS.step`.

The port follows torch/optim/lbfgs.py (torch 2.13) line by line, with torch's mix of
Python numbers and 0-d tensors kept as it is: a value that torch holds in a 0-d tensor
(``ys``, ``gtd``, ``ro``, ``H_diag``, the step ``t`` of the first iteration, every value
the line search derives from them) is a NumPy scalar of the parameters' dtype here
(``np.float32`` or ``np.float64``); a value torch holds in a Python number (the losses,
``lr``, the later ``t``) is a Python number. NumPy 2's scalar rules then round each
operation where torch rounds it: a Python number meeting a NumPy scalar is cast to the
scalar's dtype first (so ``gtd > -tolerance_change`` compares in float32 for float32
parameters, as torch does), two Python numbers stay in binary64. The one rule NumPy does
not share is torch's ``float / tensor``, which is ``tensor.reciprocal() * float``: it is
spelled out in :func:`_div`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from ._fma import fma
from .optimizer import (
    Optimizer,
    _describe,
    as_float,
    check_disjoint,
    check_gradient,
    check_nonnegative,
    check_parameter,
    check_state_dict_layout,
)

#: What ``state[0]`` may hold, in torch's names (torch keeps them in the state of the first parameter).
STATE_NAMES = ("func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
               "prev_loss", "al")
#: The names every step that ran at least one iteration leaves behind (``al`` comes with the second iteration).
_ITERATION_STATE = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")


# --------------------------------------------------------------------------------------
# Validators (torch checks only lr; see the class docstring)
# --------------------------------------------------------------------------------------


def _check_lr(name: str, value: Any) -> float:
    """torch's ``Invalid learning rate: {lr}`` for a negative (or NaN) lr, naming ``lr`` too;
    numpy_optim also refuses non-numbers and infinity."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Invalid learning rate: {value!r} (lr must be a real number, got {type(value).__name__})")
    lr = as_float("lr", value)
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {value} (lr must be >= 0)")
    if not math.isfinite(lr):
        raise ValueError(f"Invalid learning rate: {value} (lr must be finite)")
    return lr


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Invalid {name}: {value!r} (expected an int >= 1, got {type(value).__name__})")
    if value < 1:
        raise ValueError(f"Invalid {name}: {value!r} (expected an int >= 1)")
    return int(value)


def _check_line_search_fn(name: str, value: Any) -> str | None:
    if value is None or value == "strong_wolfe":
        return value
    if not isinstance(value, str):
        raise TypeError(f"Invalid line_search_fn: {value!r} (expected None or 'strong_wolfe')")
    raise ValueError(f"Invalid line_search_fn: {value!r} (only None and 'strong_wolfe' are supported)")


# --------------------------------------------------------------------------------------
# Scalar arithmetic as torch types it, and the flat-vector primitives
# --------------------------------------------------------------------------------------


def _is_tensor(value: Any) -> bool:
    """A value torch would hold in a 0-d tensor: a NumPy scalar here."""
    return isinstance(value, np.generic)


def _div(a: Any, b: Any) -> Any:
    """``a / b`` as torch computes it: a Python number over a 0-d tensor is
    ``b.reciprocal() * a`` (``Tensor.__rdiv__``: two roundings); anything else is the
    plain IEEE division (of NumPy scalars in their dtype, or of Python floats, which
    raise ZeroDivisionError exactly where torch's Python arithmetic does)."""
    if _is_tensor(b) and not _is_tensor(a):
        return (1 / b) * a
    return a / b


def _dot(a: np.ndarray, b: np.ndarray) -> Any:
    """``a.dot(b)``: a NumPy scalar of the dtype. torch calls MKL's ``?dot``, whose
    summation order we cannot reproduce without MKL; ``np.dot`` (OpenBLAS) sums in another
    order, so the last bits differ (see the class Notes)."""
    return np.dot(a, b)


def _sqrt(x: Any) -> Any:
    """``x.sqrt()`` of a 0-d tensor: torch's is MKL's (1 ulp off for ~0.5% of inputs);
    ``np.sqrt`` is correctly rounded."""
    return np.sqrt(x)


def _sum(v: np.ndarray) -> Any:
    """``v.sum()``: torch's cascade sum; ``np.sum`` (pairwise) adds in another order."""
    return np.sum(v)


def _max_abs(v: np.ndarray) -> Any:
    """``v.abs().max()`` (0 for an empty vector, where torch raises)."""
    return np.abs(v).max(initial=v.dtype.type(0))


def _add(p: np.ndarray, update: np.ndarray, alpha: Any) -> None:
    """``p.add_(update, alpha=alpha)``: one fused multiply-add, rounded once, as torch's."""
    fma(update, alpha, p, p, exact=p.dtype == np.float64)


# --------------------------------------------------------------------------------------
# The line search: torch's _cubic_interpolate and _strong_wolfe, op for op
# --------------------------------------------------------------------------------------


def _cubic_interpolate(x1: Any, f1: Any, g1: Any, x2: Any, f2: Any, g2: Any, bounds: Any = None) -> Any:
    r"""The minimizer of the cubic through :math:`(x_1, f_1, g_1)` and :math:`(x_2, f_2, g_2)`,
    clamped to ``bounds`` (default: the interval between the points); its midpoint when
    the cubic has no real minimizer.

    .. math::

        d_1 = g_1 + g_2 - 3 \frac{f_1 - f_2}{x_1 - x_2}, \quad d_2 = \sqrt{d_1^2 - g_1 g_2}, \quad
        x = x_2 - (x_2 - x_1) \frac{g_2 + d_2 - d_1}{g_2 - g_1 + 2 d_2}

    (for :math:`x_1 \le x_2`; the mirror image otherwise). The ``g`` are NumPy scalars (torch's
    0-d tensors), the ``f`` Python floats, the ``x`` either.
    """
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - _div(3 * (f1 - f2), x1 - x2)  # torch: 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2  # torch: d1**2 (pow(t, 2) is the product d1*d1, rounded once)
    if d2_square >= 0:
        d2 = _sqrt(d2_square)  # torch: d2_square.sqrt()
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(
    obj_func: Callable[[Any, Any, np.ndarray], tuple[float, np.ndarray]], x: Any, t: Any, d: np.ndarray, f: float,
    g: np.ndarray, gtd: Any, c1: float = 1e-4, c2: float = 0.9, tolerance_change: float = 1e-9, max_ls: int = 25,
) -> tuple[float, np.ndarray, Any, int]:
    r"""A step length ``t`` along ``d`` satisfying the strong Wolfe conditions

    .. math::

        f(x + t d) \le f(x) + c_1 t\, g^\top d, \qquad |g(x + t d)^\top d| \le -c_2\, g^\top d

    found by bracketing (cubic extrapolation between ``t + 0.01 (t - t_prev)`` and
    ``10 t``) and then zooming (cubic interpolation, kept a tenth of the bracket away from
    its ends), with at most ``max_ls`` evaluations ``obj_func(x, t, d) -> (loss, grad)``.
    Returns ``(loss, grad, t, evaluations)`` of the best point found. Torch's
    ``_strong_wolfe`` (after Schmidt's minFunc ``lswolfe``), line for line; torch clones the
    gradient vectors it keeps, which is not needed here (nothing writes into them).
    """
    d_norm = _max_abs(d)
    # evaluate objective and gradient using initial step
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = _dot(g_new, d)

    # bracket an interval containing a point satisfying the Wolfe criteria
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        # check conditions
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break

        if abs(gtd_new) <= -c2 * gtd:
            bracket = [t]
            bracket_f = [f_new]
            bracket_g = [g_new]
            done = True
            break

        if gtd_new >= 0:
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break

        # interpolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))

        # next step
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1

    # reached max number of iterations?
    if ls_iter == max_ls:
        bracket = [0, t]
        bracket_f = [f, f_new]
        bracket_g = [g, g_new]

    # zoom phase: we now have a point satisfying the criteria, or a bracket around it.
    # We refine the bracket until we find the exact point satisfying the criteria.
    insuf_progress = False
    # find high and low points in bracket
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        # line-search bracket is so small
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break

        # compute new trial value
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])

        # test that we are making sufficient progress: if `t` is so close to a boundary
        # that we made insufficient progress in the last step too, or `t` is at a
        # boundary, move `t` to 0.1 * len(bracket) away from the nearest boundary point.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            # interpolation close to boundary
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                # evaluate at 0.1 away from boundary
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        # Evaluate new point
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not satisfied or not lower than lowest point
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                # Wolfe conditions satisfied
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # old high becomes new low
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]

            # new point becomes new low
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new
            bracket_gtd[low_pos] = gtd_new

    # return stuff
    t = bracket[low_pos]
    f_new = bracket_f[low_pos]
    g_new = bracket_g[low_pos]
    return f_new, g_new, t, ls_func_evals


# --------------------------------------------------------------------------------------
# The optimizer
# --------------------------------------------------------------------------------------


class LBFGS(Optimizer):
    r"""L-BFGS (limited-memory BFGS), with an optional strong-Wolfe line search.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``, all of one dtype, treated as one
        flat vector; no entry may carry hyperparameters of its own.
    lr : float, default 1
        Learning rate: the step length tried first (the first iteration ever scales it by
        :math:`\min(1, 1/\lVert g\rVert_1)`).
    max_iter : int, default 20
        Iterations per :meth:`step`.
    max_eval : int, optional
        Closure evaluations per :meth:`step`; default ``max_iter * 5 // 4``.
    tolerance_grad : float, default 1e-7
        Stop when :math:`\max_i |g_i| \le` ``tolerance_grad``.
    tolerance_change : float, default 1e-9
        Stop when the step, the loss change or the directional derivative falls below it.
    history_size : int, default 100
        Number of (step, gradient change) pairs kept.
    line_search_fn : {None, "strong_wolfe"}, default None
        None: a fixed step ``lr`` per iteration; ``"strong_wolfe"``: torch's line search.

    Notes
    -----
    One :meth:`step` evaluates ``loss = closure()`` and :math:`g`, returns at once if
    :math:`\max|g| \le` ``tolerance_grad``, then runs up to ``max_iter`` iterations of, in
    the order of the code (:math:`s_k, y_k, \rho_k` the stored steps, gradient changes and
    :math:`1 / y_k^\top s_k`):

    .. math::

        y &= g - g_{\text{prev}}, \quad s = t\, d, \quad \text{store } (y, s, 1 / y^\top s)
              \text{ and } H_0 = y^\top s / y^\top y \text{ if } y^\top s > 10^{-10} \\
        q &= -g; \quad \text{newest to oldest: } a_k = \rho_k s_k^\top q, \ q \leftarrow q - a_k y_k \\
        d &= H_0\, q; \quad \text{oldest to newest: } b_k = \rho_k y_k^\top d, \
              d \leftarrow d + (a_k - b_k) s_k \\
        t &= \min(1, 1 / \lVert g\rVert_1)\, \text{lr} \ \text{(first iteration ever), else lr} \\
        &\text{stop if } g^\top d > -\text{tolerance\_change} \\
        x &\leftarrow x + t\, d \quad (t \text{ from the line search, if any}),
              \text{ then re-evaluate loss and } g

    (the first iteration ever has :math:`d = -g`, :math:`H_0 = 1`), and stops early on
    ``max_eval`` evaluations, :math:`\max|g| \le` ``tolerance_grad``,
    :math:`\max|t d| \le` ``tolerance_change`` or :math:`|\Delta\text{loss}| <`
    ``tolerance_change``. The last of ``max_iter`` iterations without line search moves
    the parameters without re-evaluating the closure, as torch does.

    **The closure** recomputes the loss at the current parameters, writes the gradients
    into the entries' ``"grad"`` arrays (in place, or by putting a new array in the dict)
    and returns the loss as a real number. :meth:`step` returns the closure's first
    return value. The parameters are updated in place (the caller's arrays).

    **State**, in torch's names, in ``state[0]`` (torch keeps it in the state of the first
    parameter): ``func_evals`` and ``n_iter`` (ints, over all steps), ``d``, ``t``,
    ``old_dirs``, ``old_stps`` (lists of flat vectors), ``ro`` (list), ``H_diag``,
    ``prev_flat_grad``, ``prev_loss``, and, from the second iteration on, ``al`` (a list of
    ``history_size``, ``None`` where never written). Values torch keeps in 0-d tensors are
    NumPy scalars of the parameters' dtype, values it keeps as Python numbers are Python
    numbers (``t`` is one or the other, as in torch). ``state["step"]`` counts the
    :meth:`step` calls. :meth:`state_dict` and :meth:`load_state_dict` carry all of it.

    **Arithmetic.** Vector operations round as torch's do (``add`` with ``alpha`` is one
    fused multiply-add, :func:`numpy_optim._fma.fma`); scalar operations are typed as
    torch types them (module docstring). Three things differ in the last bits: torch's dot
    products are MKL's ``?dot`` (``np.dot`` sums in another order), the square root in the
    cubic interpolation is MKL's (1 ulp off for some inputs; ``np.sqrt`` is correctly
    rounded), and the sum in :math:`\lVert g\rVert_1` is NumPy's pairwise sum, not torch's
    cascade sum (used once, on the first iteration ever). Results therefore agree with
    torch to rounding, not bit for bit, and where a comparison (a line-search test, a
    tolerance) is decided by the last bit, the two can take different branches.

    **Differences from torch (validation).** torch checks only ``lr`` and the number of
    parameter groups. numpy_optim also requires: ``max_iter``, ``max_eval`` and
    ``history_size`` ints >= 1 (torch crashes in the line search when ``max_eval`` leaves no
    evaluation), non-negative finite tolerances, a finite lr, ``line_search_fn`` None or
    ``"strong_wolfe"`` at construction (torch raises ``RuntimeError`` only inside the first
    iteration, after one closure call), one dtype for all entries, and a non-empty entry
    list (torch: ``optimizer got an empty parameter list``). A step that raises (a refused
    gradient, an exception in the closure) restores the parameters and leaves the state as
    it was. If ``history_size`` is changed between steps, the next step first drops the
    oldest pairs down to it and resizes ``al`` to it (torch then fails with an IndexError:
    it never shrinks a history longer than ``history_size``, and ``al`` keeps the length
    it was made with).

    References
    ----------
    Nocedal, "Updating quasi-Newton matrices with limited storage" (1980); Liu & Nocedal,
    "On the limited memory BFGS method for large scale optimization" (1989); Nocedal &
    Wright, "Numerical Optimization" (2006), Algorithms 3.5-3.6 (strong Wolfe line search)
    and 7.4 (two-loop recursion); Schmidt's minFunc. Mirrors ``torch.optim.LBFGS``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([2.0]); g = np.zeros(1)            # f(x) = 2 x**2, f'(x) = 4 x
    >>> def closure():
    ...     g[...] = 4 * x
    ...     return float(2 * x[0] ** 2)
    >>> opt = LBFGS([{"params": x, "grad": g}])
    >>> opt.step(closure), x                            # t = 1/8: 2 - 8/8, then the secant step to 0
    (8.0, array([0.]))
    """

    #: Its entries are not torch parameter groups (torch's LBFGS has one group): they cannot
    #: carry their own lr, so numpy_optim.lr_scheduler refuses an LBFGS optimizer.
    _entries_are_groups = False

    _validators = {
        "lr": _check_lr,
        "max_iter": _check_positive_int,
        "max_eval": _check_positive_int,
        "tolerance_grad": check_nonnegative,
        "tolerance_change": check_nonnegative,
        "history_size": _check_positive_int,
        "line_search_fn": _check_line_search_fn,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        _check_lr("lr", lr)  # torch checks lr first
        if max_eval is None:
            max_eval = _check_positive_int("max_iter", max_iter) * 5 // 4
        defaults = dict(
            lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults)

    # ----- entries ----------------------------------------------------------------------

    def _check_entries(self, entries: list[Any]) -> list[dict[str, Any]]:
        """Every entry valid, none with hyperparameters of its own, one dtype; the state
        (if any) shaped for these parameters. Returns each entry's hyperparameters."""
        defaults = self._checked_defaults()
        if not entries:
            raise ValueError("LBFGS got an empty parameter list; it needs at least one entry")
        for index, entry in enumerate(entries):
            where = f"params[{index}]"
            if not isinstance(entry, dict):
                raise TypeError(
                    f"{where} must be a dict {{'params': ndarray, 'grad': ndarray}}, got {type(entry).__name__}"
                )
            for key in ("params", "grad"):
                if key not in entry:
                    raise ValueError(f"{where} has no {key!r} key; every entry needs 'params' and 'grad'")
            extra = sorted(k for k in entry if k not in ("params", "grad"))
            if extra:
                raise ValueError(
                    f"LBFGS doesn't support per-parameter options (parameter groups): {where} sets {extra}"
                )
            param = check_parameter(where, entry["params"])
            check_gradient(where, param, entry["grad"])
            first = entries[0]["params"]
            if param.dtype != first.dtype:
                raise TypeError(
                    f"LBFGS needs all parameters in one dtype (it works on one flat vector): params[0] is "
                    f"{first.dtype}, {where} is {param.dtype}"
                )
        check_disjoint(entries, {})  # (its state is flat vectors of its own)
        self._check_state(self.state.get(0, {}), defaults, entries, "state[0]")
        return [defaults] * len(entries)

    @staticmethod
    def _layout(entries: list[dict[str, Any]]) -> tuple[int, np.dtype]:
        """The flat vector's length and dtype."""
        return sum(e["params"].size for e in entries), entries[0]["params"].dtype

    def _check_state(self, state: Any, hyper: dict[str, Any], entries: list[dict[str, Any]], where: str) -> None:
        """Refuse a ``state[0]`` that is not what a step leaves for these parameters and
        hyperparameters (names, types, vector lengths and dtypes, list lengths)."""
        if not isinstance(state, dict):
            raise TypeError(f"{where} must be a dict, got {type(state).__name__}")
        n, dtype = self._layout(entries)
        unknown = sorted(set(state) - set(STATE_NAMES), key=str)
        if unknown:
            raise ValueError(f"{where} has unexpected keys {unknown}; allowed: {list(STATE_NAMES)}")
        if not state:
            return
        for key in ("func_evals", "n_iter"):
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{where}[{key!r}] must be an int >= 0 (every step sets it), got {value!r}")
        missing = [k for k in _ITERATION_STATE if k not in state]
        if missing and (state["n_iter"] > 0 or len(missing) < len(_ITERATION_STATE)):
            raise ValueError(
                f"{where} lacks {missing}; a step that ran an iteration leaves all of {list(_ITERATION_STATE)}"
            )
        if missing:  # no iteration yet (the first closure call found a zero gradient)
            if "al" in state:
                raise ValueError(f"{where} has 'al' but no {list(_ITERATION_STATE)}")
            return

        def vector(name: str, value: Any) -> None:
            if not isinstance(value, np.ndarray) or value.shape != (n,) or value.dtype != dtype:
                raise ValueError(
                    f"{name} must be a flat ndarray of shape ({n},) and dtype {dtype} (the parameters "
                    f"concatenated), got {_describe(value)}"
                )

        def scalar(name: str, value: Any, python_ok: bool) -> None:
            if isinstance(value, np.generic) and value.dtype == dtype:
                return
            if python_ok and not isinstance(value, (bool, np.generic)) and isinstance(value, numbers.Real):
                return
            kinds = "a Python number or " if python_ok else ""
            raise ValueError(f"{name} must be {kinds}a NumPy {dtype} scalar, got {value!r} ({type(value).__name__})")

        vector(f"{where}['d']", state["d"])
        vector(f"{where}['prev_flat_grad']", state["prev_flat_grad"])
        scalar(f"{where}['t']", state["t"], python_ok=True)
        scalar(f"{where}['H_diag']", state["H_diag"], python_ok=True)
        scalar(f"{where}['prev_loss']", state["prev_loss"], python_ok=True)
        lists = {name: state[name] for name in ("old_dirs", "old_stps", "ro")}
        for name, value in lists.items():
            if not isinstance(value, list):
                raise ValueError(f"{where}[{name!r}] must be a list, got {type(value).__name__}")
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise ValueError(
                f"{where}: old_dirs, old_stps and ro must have one length, got "
                f"{[len(v) for v in lists.values()]}"
            )
        for name in ("old_dirs", "old_stps"):
            for k, value in enumerate(state[name]):
                vector(f"{where}[{name!r}][{k}]", value)
        for k, value in enumerate(state["ro"]):
            scalar(f"{where}['ro'][{k}]", value, python_ok=False)
        if "al" in state:
            al = state["al"]
            if not isinstance(al, list):
                raise ValueError(f"{where}['al'] must be a list, got {type(al).__name__}")
            for k, value in enumerate(al):
                if value is not None:
                    scalar(f"{where}['al'][{k}]", value, python_ok=False)

    # ----- the flat vector --------------------------------------------------------------

    @staticmethod
    def _gather_flat_grad(entries: list[dict[str, Any]], params: list[np.ndarray]) -> np.ndarray:
        """``cat`` of every gradient, flattened (a new array); each is checked first, as the
        closure may have put a new array in the entry."""
        grads = [check_gradient(f"params[{i}]", p, e["grad"]) for i, (e, p) in enumerate(zip(entries, params))]
        return np.concatenate([g.ravel() for g in grads])

    @staticmethod
    def _add_grad(params: list[np.ndarray], step_size: Any, update: np.ndarray) -> None:
        """``p.add_(update[view], alpha=step_size)`` for every parameter."""
        offset = 0
        for p in params:
            _add(p, update[offset:offset + p.size].reshape(p.shape), step_size)
            offset += p.size

    @staticmethod
    def _set_param(params: list[np.ndarray], values: list[np.ndarray]) -> None:
        for p, value in zip(params, values):
            np.copyto(p, value)

    @staticmethod
    def _evaluate(closure: Callable[[], Any]) -> tuple[Any, float]:
        """``closure()`` and its value as a Python float (torch: ``float(closure())``)."""
        value = closure()
        try:
            return value, float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"the closure must return the loss as a real number, got {value!r:.80} ({type(value).__name__})"
            ) from None

    # ----- the step ---------------------------------------------------------------------

    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations, calling ``closure`` to re-evaluate.

        Parameters
        ----------
        closure : callable
            ``closure() -> loss``: recomputes the loss at the current parameters, writes
            the gradients into the entries' ``"grad"`` arrays and returns the loss.

        Returns
        -------
        The closure's first return value (the loss before the step), as torch returns it.
        """
        # One call at a time (no SIGINT held: the closure may run for long, and a step that
        # raises, a KeyboardInterrupt included, puts the parameters back).
        with self._exclusive("step", hold_sigint=False):
            return self._step(closure)

    def _step(self, closure: Callable[[], Any]) -> Any:
        if not callable(closure):
            raise TypeError(f"LBFGS.step() needs a closure (a callable returning the loss), got {closure!r}")
        hyper = self._check_entries(self.param_groups)[0]  # before anything is touched
        entries = list(self.param_groups)
        params = [entry["params"] for entry in entries]
        saved = [p.copy() for p in params]
        try:
            orig_loss, state = self._lbfgs(closure, entries, params, hyper, self.state.get(0, {}))
        except BaseException:
            self._set_param(params, saved)  # a step that raises changes no parameter and no state
            raise
        self.state[0] = state
        self.state["step"] += 1
        return orig_loss

    def _lbfgs(
        self, closure: Callable[[], Any], entries: list[dict[str, Any]], params: list[np.ndarray],
        hyper: dict[str, Any], stored: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        """torch's ``LBFGS.step`` body, line for line, on a copy of the state (returned)."""
        lr = hyper["lr"]
        max_iter = hyper["max_iter"]
        max_eval = hyper["max_eval"]
        tolerance_grad = hyper["tolerance_grad"]
        tolerance_change = hyper["tolerance_change"]
        line_search_fn = hyper["line_search_fn"]
        history_size = hyper["history_size"]

        # The step works on a copy: lists copied, arrays replaced rather than written into.
        state: dict[str, Any] = {name: list(value) if isinstance(value, list) else value
                                 for name, value in stored.items()}
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        # evaluate initial f(x) and df/dx
        orig_loss, loss = self._evaluate(closure)
        current_evals = 1
        state["func_evals"] += 1

        flat_grad = self._gather_flat_grad(entries, params)
        opt_cond = _max_abs(flat_grad) <= tolerance_grad

        # optimal condition
        if opt_cond:
            return orig_loss, state

        # values cached in state
        d: Any = state.get("d")
        t: Any = state.get("t")
        old_dirs: Any = state.get("old_dirs")
        old_stps: Any = state.get("old_stps")
        ro: Any = state.get("ro")
        H_diag: Any = state.get("H_diag")
        prev_flat_grad: Any = state.get("prev_flat_grad")
        prev_loss: Any = state.get("prev_loss")
        if old_dirs is not None and len(old_dirs) > history_size:  # history_size was lowered (torch: IndexError)
            del old_dirs[:-history_size], old_stps[:-history_size], ro[:-history_size]
        if "al" in state and len(state["al"]) != history_size:  # ... or changed (not in torch)
            state["al"] = (state["al"] + [None] * history_size)[:history_size]

        n_iter = 0
        # optimize for a max of max_iter iterations
        while n_iter < max_iter:
            # keep track of nb of iterations
            n_iter += 1
            state["n_iter"] += 1

            # ---- compute gradient descent direction ----
            if state["n_iter"] == 1:
                d = np.negative(flat_grad)
                old_dirs = []
                old_stps = []
                ro = []
                H_diag = 1
            else:
                # do lbfgs update (update memory)
                y = np.subtract(flat_grad, prev_flat_grad)
                s = np.multiply(d, t)
                ys = _dot(y, s)  # y*s
                if ys > 1e-10:
                    # updating memory
                    if len(old_dirs) == history_size:
                        # shift history by one (limited-memory)
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)

                    # store new direction/step
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(_div(1.0, ys))

                    # update scale of initial Hessian approximation
                    H_diag = ys / _dot(y, y)  # (y*y)

                # compute the approximate (L-BFGS) inverse Hessian multiplied by the gradient
                num_old = len(old_dirs)

                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]

                # iteration in L-BFGS loop collapsed to use just one buffer
                q = np.negative(flat_grad)
                for i in range(num_old - 1, -1, -1):
                    al[i] = _dot(old_stps[i], q) * ro[i]
                    _add(q, old_dirs[i], -al[i])  # q.add_(old_dirs[i], alpha=-al[i])

                # multiply by initial Hessian; r/d is the final direction
                d = r = np.multiply(q, H_diag)
                for i in range(num_old):
                    be_i = _dot(old_dirs[i], r) * ro[i]
                    _add(r, old_stps[i], al[i] - be_i)  # r.add_(old_stps[i], alpha=al[i] - be_i)

            prev_flat_grad = flat_grad.copy()  # torch: clone, or copy_ into the old one
            prev_loss = loss

            # ---- compute step length ----
            # reset initial guess for step size
            if state["n_iter"] == 1:
                t = min(1.0, _div(1.0, _sum(np.abs(flat_grad)))) * lr
            else:
                t = lr

            # directional derivative
            gtd = _dot(flat_grad, d)  # g * d

            # directional derivative is below tolerance
            if gtd > -tolerance_change:
                break

            # optional line search: user function
            ls_func_evals = 0
            if line_search_fn is not None:
                # perform line search, using user function (only "strong_wolfe" passes validation)
                x_init = [p.copy() for p in params]

                def obj_func(x: list[np.ndarray], t: Any, d: np.ndarray) -> tuple[float, np.ndarray]:
                    return self._directional_evaluate(closure, entries, params, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals
                )
                self._add_grad(params, t, d)
                opt_cond = _max_abs(flat_grad) <= tolerance_grad
            else:
                # no line search, simply move with fixed-step
                self._add_grad(params, t, d)
                if n_iter != max_iter:
                    # re-evaluate function only if not in last iteration (in a stochastic
                    # setting there is no use re-evaluating it)
                    loss = self._evaluate(closure)[1]
                    flat_grad = self._gather_flat_grad(entries, params)
                    opt_cond = _max_abs(flat_grad) <= tolerance_grad
                    ls_func_evals = 1

            # update func eval
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # ---- check conditions ----
            if n_iter == max_iter:
                break

            if current_evals >= max_eval:
                break

            # optimal condition
            if opt_cond:
                break

            # lack of progress
            if _max_abs(np.multiply(d, t)) <= tolerance_change:
                break

            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss, state

    def _directional_evaluate(
        self, closure: Callable[[], Any], entries: list[dict[str, Any]], params: list[np.ndarray],
        x: list[np.ndarray], t: Any, d: np.ndarray,
    ) -> tuple[float, np.ndarray]:
        """Loss and flat gradient at ``x + t d``; the parameters are then put back to ``x``."""
        self._add_grad(params, t, d)
        loss = self._evaluate(closure)[1]
        flat_grad = self._gather_flat_grad(entries, params)
        self._set_param(params, x)
        return loss, flat_grad

    # ----- state dicts ------------------------------------------------------------------

    @staticmethod
    def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
        """A deep copy: arrays copied, lists rebuilt; NumPy and Python scalars are immutable."""

        def copy(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value.copy()
            if isinstance(value, list):
                return [copy(v) for v in value]
            return value

        return {name: copy(value) for name, value in state.items()}

    def state_dict(self) -> dict[str, Any]:
        """A snapshot: ``{"class", "step", "defaults", "param_groups", "state", "initial_lrs"}`` as
        every numpy_optim optimizer has it, with ``state[0]`` holding the L-BFGS state in
        torch's names (deep copies: arrays, lists of arrays, NumPy scalars of the
        parameters' dtype, Python numbers) and every other ``state[i]`` empty."""
        return {
            "class": type(self).__name__,
            "step": int(self.state["step"]),
            "defaults": self._checked_defaults(),
            "param_groups": [{} for _ in self.param_groups],
            "state": [self._copy_state(self.state.get(0, {})) if i == 0 else {} for i in range(len(self.param_groups))],
            "initial_lrs": [float(lr) for lr in self.initial_lrs],
        }

    def load_state_dict(self, state_dict: Any) -> None:
        """Restore a :meth:`state_dict` snapshot; continuing is then bitwise identical.

        Everything is validated first (keys, entry count, hyperparameters, no per-entry
        options, the state's names, types, vector shapes and dtypes, list lengths against
        ``history_size``); nothing changes unless all of it is valid. Arrays are copied.
        """
        with self._exclusive("load_state_dict"):
            self._load_state_dict(state_dict)

    def _load_state_dict(self, state_dict: Any) -> None:
        step = check_state_dict_layout(state_dict, cls=type(self).__name__)
        for name in ("param_groups", "state", "initial_lrs"):
            value = state_dict[name]
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"state_dict[{name!r}] must be a list, got {type(value).__name__}")
            if len(value) != len(self.param_groups):
                raise ValueError(
                    f"state_dict[{name!r}] must be a list with one item per entry "
                    f"({len(self.param_groups)}), got {value!r:.80}"
                )
        saved_defaults = state_dict["defaults"]
        if not isinstance(saved_defaults, dict):
            raise TypeError(f"state_dict['defaults'] must be a dict, got {type(saved_defaults).__name__}")
        if set(saved_defaults) != set(self.defaults):
            raise ValueError(
                f"state_dict['defaults'] must have the keys {sorted(self.defaults)}, got {saved_defaults!r:.200}"
            )
        defaults = self._check_hyperparameters("state_dict['defaults']: ", dict(saved_defaults))
        for index, overrides in enumerate(state_dict["param_groups"]):
            if not isinstance(overrides, dict):
                raise TypeError(f"state_dict['param_groups'][{index}]: expected a dict, got {type(overrides).__name__}")
            if overrides:
                raise ValueError(
                    f"LBFGS doesn't support per-parameter options (parameter groups): "
                    f"state_dict['param_groups'][{index}] sets {sorted(overrides)}"
                )
        initial_lrs = [_check_lr(f"state_dict['initial_lrs'][{i}]", lr)
                       for i, lr in enumerate(state_dict["initial_lrs"])]
        saved = state_dict["state"]
        for index, value in enumerate(saved):
            if not isinstance(value, dict):
                raise TypeError(f"state_dict['state'][{index}]: expected a dict, got {type(value).__name__}")
            if index > 0 and value:
                raise ValueError(
                    f"state_dict['state'][{index}] must be empty: LBFGS keeps its state in state[0], got keys "
                    f"{sorted(value, key=str)}"
                )
        first = dict(saved[0]) if saved else {}
        first = {name: (np.asarray(v)[()] if isinstance(v, np.ndarray) and v.ndim == 0 else v)
                 for name, v in first.items()}  # a 0-d array is taken as the scalar it holds
        for name in ("ro", "al"):
            if isinstance(first.get(name), list):
                first[name] = [np.asarray(v)[()] if isinstance(v, np.ndarray) and v.ndim == 0 else v
                               for v in first[name]]
        self._check_state(first, defaults, self.param_groups, "state_dict['state'][0]")
        if "d" in first:
            if len(first["old_dirs"]) > defaults["history_size"]:
                raise ValueError(
                    f"state_dict['state'][0] has {len(first['old_dirs'])} history pairs, more than "
                    f"history_size={defaults['history_size']}"
                )
            if "al" in first and len(first["al"]) != defaults["history_size"]:
                raise ValueError(
                    f"state_dict['state'][0]['al'] must have history_size={defaults['history_size']} items, "
                    f"got {len(first['al'])}"
                )
        # Every check passed: apply.
        self.defaults = defaults
        self.state = {"step": int(step)}
        if first:
            self.state[0] = self._copy_state(first)
        self.initial_lrs = initial_lrs
