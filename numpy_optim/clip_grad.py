r"""Gradient clipping: torch.nn.utils.clip_grad_norm_ and its family, bit for bit.

``clip_grad_norm_(entries, max_norm)`` scales every gradient in place so that their total
norm is at most ``max_norm`` and returns that norm, as ``torch.nn.utils.clip_grad_norm_``
does (torch 2.13, CPU); ``clip_grad_value_`` clamps every element; ``get_total_norm`` and
``clip_grads_with_norm_`` are the two halves of ``clip_grad_norm_``::

    model.loss_and_gradients(X, y)
    clip_grad_norm_(optimizer, max_norm=1.0)    # between the gradients and the step
    optimizer.step()

What the functions take
-----------------------
``entries`` is what a numpy_optim user holds: an :class:`~numpy_optim.Optimizer` (its
entries), a list of entry dicts ``{"params": ..., "grad": ...}`` (their ``"grad"``; an
entry whose grad is None is skipped, as torch skips ``p.grad is None``), one entry dict,
an object with a ``parameters()`` method returning entries (:class:`numpy_optim.mlp.MLP`),
or ndarrays (one, or a list: they are the gradients themselves). Gradients are float16,
float32 or float64 ndarrays, changed in place (so they must be writeable).

torch's arithmetic (reference torch-optim-rest.md §4; every line measured bit for bit)
----------------------------------------------------------------------------------------
1. One norm per gradient, :func:`numpy_optim._reductions.vector_norm` (torch's
   ``_foreach_norm``): for ``norm_type=2`` the 8/4-lane sum of squares of float32/float64,
   for 1, 0 and other orders the sequential sum (with C's ``pow``), ``max``/``min`` of
   ``|g|`` for ``±inf``.
2. The norms are stacked **by dtype group, the groups in the reverse order of their first
   appearance** (torch groups the tensors by (device, dtype) in a C++ hash map whose
   iteration order, for the float dtypes, is the reverse of insertion), promoted to the
   widest dtype (float32 and float64 gradients give a float64 total), and the total is the
   same norm of that vector.
3. ``coef = max_norm / (total + 1e-6)``: torch's float-divided-by-tensor is
   ``reciprocal() * max_norm``, so :math:`c = \mathrm{rn}(\mathrm{rn}(1 / \mathrm{rn}(t +
   \epsilon)) \cdot m)` in the total's dtype, then ``clamp(max=1.0)`` (NaN stays NaN).
   float16 totals: ``1e-6`` is rounded to float16, each operation runs in float32 and is
   rounded to float16, and ``max_norm`` enters as a float32 (torch's "opmath" scalar).
4. Every gradient is multiplied by the coefficient, **also when it is 1** (exact then):
   ``g = rn(g * T(coef))`` with :math:`T` float32 for float16 and float32 gradients
   (the product rounded to float32, then to float16), float64 for float64.

NaN bits: a float16 NaN norm promoted into a float32 stack becomes the NaN 0x7fffffff, as
torch's scalar conversion makes it, and ``±inf`` norms return the default quiet NaN. One
case is not reproduced: where a NaN gradient element meets a NaN coefficient with another
payload or sign, torch's multiply keeps one NaN or the other depending on the element's
place in its vector loop; numpy_optim keeps the coefficient's. The values are NaN either way.

So a NaN gradient makes every gradient NaN; an infinite one gives total inf, coef 0 and
gradients ``0`` (``inf * 0 = NaN`` where the infinity was). Where torch's norm is its
sequential reduction (orders other than 2 and ``±inf``, and every order of a float16
gradient) it sums gradients of more than 32768 elements in chunks, one per thread:
``threads`` says how many torch uses (``torch.get_num_threads()``; the default 1 is torch
with one thread).

Where numpy_optim is stricter than torch (torch validates nothing)
------------------------------------------------------------------
* ``max_norm`` must be a real number ``>= 0`` (``inf`` allowed: the total norm without
  clipping); torch also takes NaN (every gradient NaN) and negative values (which flip
  every gradient's sign).
* ``norm_type`` must be a real number or a string naming infinity (``"inf"``, as torch
  documents), not NaN.
* ``clip_value`` must be a real number, not NaN; ``±inf`` and negative values behave as in
  torch (a negative ``clip_value`` sets every element to ``clip_value``, NaN kept). One too
  large for a gradient's dtype is refused before any gradient changes (torch refuses it
  at that gradient's group, after clamping the groups before it).
* ``error_if_nonfinite`` must be a bool.
* An empty gradient with ``norm_type`` negative or ``inf``: ValueError naming it (torch
  raises ``RuntimeError`` from ``_foreach_norm``).
* Bad entries and gradients (not dicts or ndarrays, no ``"grad"`` key, not a float
  dtype, read-only): TypeError/ValueError naming the entry, before anything changes.
"""

from __future__ import annotations

import math
import numbers
import types
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._reductions import vector_norm
from .optimizer import Optimizer, as_float, check_bool

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

#: torch's scalar float16 -> float32 conversion (a 0-d norm copied into the stack) turns
#: every NaN into this one (bits 0x7fffffff); NumPy keeps the payload (0x7fc00000).
_HALF_NAN_AS_FLOAT32 = np.array(0x7FFFFFFF, np.uint32).view(np.float32)


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape} and dtype {value.dtype}"
    return type(value).__name__


def _check_gradient(where: str, grad: Any, writeable: bool) -> np.ndarray:
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{where} must be a numpy.ndarray, got {_describe(grad)}")
    if grad.dtype not in _FLOATS:
        raise TypeError(f"{where} must have a floating dtype (float16, float32 or float64), got {grad.dtype}")
    if writeable and not grad.flags.writeable:
        raise ValueError(f"{where} is read-only; clipping changes the gradients in place")
    return grad


def _items(given: Any, name: str, expected: str) -> tuple[list[Any], str]:
    """``(items, name)``: the entries or arrays a user gave (an Optimizer's entries, a model's
    ``parameters()``, one entry dict or ndarray, or an iterable of them), and the name to
    index them by in messages (``expected`` says what else ``given`` may be)."""
    if isinstance(given, Optimizer):
        return list(given.param_groups), "optimizer.param_groups"
    if isinstance(given, (np.ndarray, dict)):
        return [given], name
    if callable(getattr(given, "parameters", None)):
        return list(given.parameters()), f"{type(given).__name__}.parameters()"
    if isinstance(given, Iterable) and not isinstance(given, (str, bytes)):
        return list(given), name
    raise TypeError(f"{name} must be an Optimizer, {expected}, got {_describe(given)}")


def _gradients(entries: Any, name: str, writeable: bool) -> list[tuple[str, np.ndarray]]:
    """``(where, gradient)`` for every gradient of ``entries`` (see the module docstring),
    in order, entries whose grad is None left out."""
    items, name = _items(entries, name, "entry dicts {'params': ..., 'grad': ...} or gradient ndarrays")
    grads = []
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if isinstance(item, dict):
            if "grad" not in item:
                raise ValueError(f"{where} has no 'grad' key (an entry without a gradient has 'grad': None)")
            if item["grad"] is None:
                continue                                           # torch: p.grad is None, skipped
            grads.append((f"{where}['grad']", _check_gradient(f"{where}['grad']", item["grad"], writeable)))
        elif isinstance(item, np.ndarray):
            grads.append((where, _check_gradient(where, item, writeable)))
        else:
            raise TypeError(f"{where} must be an entry dict or a gradient ndarray, got {_describe(item)}")
    return grads


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Invalid {name}: {value!r} (expected a real number, got {type(value).__name__})")
    value = as_float(name, value)
    if math.isnan(value):
        raise ValueError(f"Invalid {name} value: nan")
    return value


def _check_norm_type(norm_type: Any) -> float:
    """torch's ``float(norm_type)``: a real number, or a string naming ±infinity."""
    if isinstance(norm_type, str):
        try:
            value = float(norm_type)
        except ValueError:
            value = math.nan
        if math.isinf(value):
            return value
        raise ValueError(f"Invalid norm_type: {norm_type!r} (a string must name infinity: 'inf' or '-inf')")
    return _real("norm_type", norm_type)


def _check_max_norm(max_norm: Any) -> float:
    value = _real("max_norm", max_norm)
    if value < 0:
        raise ValueError(f"Invalid max_norm value: {max_norm!r} (must be >= 0; torch would flip every gradient)")
    return value


def _check_threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"Invalid threads: {threads!r} (expected an int, torch.get_num_threads())")
    if threads < 1:
        raise ValueError(f"Invalid threads: {threads!r} (expected an int >= 1, torch.get_num_threads())")
    return int(threads)


def _check_total_norm(total_norm: Any) -> np.ndarray:
    """A 0-d float16/32/64 array (what :func:`get_total_norm` returns; a NumPy float keeps
    its dtype, a Python real number is taken as float64)."""
    if isinstance(total_norm, (np.ndarray, np.generic)):
        total = np.asarray(total_norm)
        if total.shape != () or total.dtype not in _FLOATS:
            raise TypeError(f"total_norm must be a 0-d float array (get_total_norm's result), got {_describe(total)}")
        return total
    return np.asarray(_real("total_norm", total_norm), dtype=np.float64)


def _dtype_groups(arrays: list[np.ndarray]) -> list[list[int]]:
    """The indices of ``arrays`` grouped by dtype, the groups in the reverse order of their
    first appearance: the order in which torch's ``_group_tensors_by_device_and_dtype`` (a
    C++ ``unordered_map``) hands them out, measured for every order of float16, float32 and
    float64. It decides the order of the norms in the stacked vector, so it matters for
    mixed dtypes."""
    groups: dict[np.dtype, list[int]] = {}
    for index, array in enumerate(arrays):
        groups.setdefault(array.dtype, []).append(index)
    return list(reversed(groups.values()))


# --------------------------------------------------------------------------------------
# The two halves
# --------------------------------------------------------------------------------------


def _total_norm(grads: list[tuple[str, np.ndarray]], p: float, error_if_nonfinite: bool,
                threads: int) -> np.ndarray:
    """The total norm of validated gradients (refusing empty ones where torch cannot)."""
    if not grads:
        return np.zeros((), np.float32)                          # torch.tensor(0.0)
    if p < 0 or p == math.inf:
        for where, grad in grads:
            if grad.size == 0:
                raise ValueError(f"{where} is empty (shape {grad.shape}): its {p} norm is undefined (torch's "
                                 "linalg.vector_norm refuses it: the operation has no identity)")
    with np.errstate(all="ignore"):
        arrays = [grad for _, grad in grads]
        norms = [vector_norm(arrays[i], p, threads=threads) for group in _dtype_groups(arrays) for i in group]
        stacked = np.stack(norms)                                  # torch.stack promotes to the widest
        if stacked.dtype == np.float32:                            # torch converts a float16 NaN to float32
            stacked[[n.dtype == np.float16 and bool(np.isnan(n)) for n in norms]] = _HALF_NAN_AS_FLOAT32
        total = vector_norm(stacked, p, threads=threads)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    return total


def _clip_coefficient(total: np.ndarray, max_norm: float) -> np.generic:
    """``clamp(max_norm / (total + 1e-6), max=1.0)`` as torch rounds it (module docstring, 3.)."""
    with np.errstate(all="ignore"):
        if total.dtype == np.float16:
            f16, f32 = np.float16, np.float32
            denominator = f16(f32(total) + f32(f16(1e-6)))         # total + 1e-6, 1e-6 as float16
            reciprocal = f16(f32(1) / f32(denominator))            # Tensor.__rdiv__: reciprocal() ...
            coef = f16(f32(reciprocal) * f32(max_norm))            # ... * max_norm (a float32 scalar)
        else:
            t = total.dtype.type
            denominator = total[()] + t(1e-6)                      # total + 1e-6
            coef = (t(1) / denominator) * t(max_norm)              # reciprocal() * max_norm
        return np.minimum(coef, coef.dtype.type(1))                # torch.clamp(coef, max=1.0)


def _scale_(grad: np.ndarray, coef: np.generic) -> None:
    """``grad.mul_(coef)``: the product in float32 for float16 and float32 gradients, float64
    for float64, of the gradient and the coefficient cast to that type, rounded to the grad.
    The coefficient is the first operand, as in torch's kernel: where both are NaN, the
    coefficient's NaN is the result."""
    with np.errstate(all="ignore"):
        if grad.dtype == np.float16:
            grad[...] = np.multiply(np.float32(coef), grad, dtype=np.float32)
        else:
            np.multiply(grad.dtype.type(coef), grad, out=grad)


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def get_total_norm(grads: Any, norm_type: float | str = 2.0, error_if_nonfinite: bool = False, *,
                   threads: int = 1) -> np.ndarray:
    r"""The norm of all gradients together: torch's ``torch.nn.utils.get_total_norm``.

    Parameters
    ----------
    grads : Optimizer, entry dicts, entry dict or ndarrays
        The gradients (module docstring); read, never changed.
    norm_type : float or str, default 2.0
        The order :math:`p` of the norm: any real number, ``inf``/``-inf`` or ``"inf"``.
    error_if_nonfinite : bool, default False
        Raise RuntimeError (torch's message) when the total is NaN or infinite.
    threads : int, default 1
        torch's ``get_num_threads()`` to match (keyword only; matters for orders other than
        2 and ±inf and gradients of more than 32768 elements).

    Returns
    -------
    ndarray
        0-d, of the widest gradient dtype (float32 0.0 when there is no gradient, as torch's
        ``torch.tensor(0.0)``).

    Notes
    -----
    :math:`\|(\|g_1\|_p, \ldots, \|g_k\|_p)\|_p`, each norm as torch's
    ``linalg.vector_norm`` computes it, the norms stacked in torch's order (module
    docstring, 1. and 2.).

    Examples
    --------
    >>> float(get_total_norm([np.array([3.0]), np.array([4.0])]))
    5.0
    """
    gradients = _gradients(grads, "grads", writeable=False)
    p = _check_norm_type(norm_type)
    error_if_nonfinite = check_bool("error_if_nonfinite", error_if_nonfinite)
    return _total_norm(gradients, p, error_if_nonfinite, _check_threads(threads))


def clip_grads_with_norm_(entries: Any, max_norm: float, total_norm: Any) -> None:
    r"""Scale every gradient in place by :math:`\min(m / (t + 10^{-6}), 1)` for a given total norm.

    torch's ``torch.nn.utils.clip_grads_with_norm_``: the second half of
    :func:`clip_grad_norm_`.

    Parameters
    ----------
    entries : Optimizer, entry dicts, entry dict or ndarrays
        The gradients to scale (module docstring).
    max_norm : float
        :math:`m \ge 0`.
    total_norm : 0-d ndarray or float
        :math:`t`, usually :func:`get_total_norm`'s result; the coefficient is computed in
        its dtype (a Python number counts as float64).

    Notes
    -----
    .. math::

        c = \min(\mathrm{rn}(\mathrm{rn}(1 / \mathrm{rn}(t + 10^{-6})) \cdot m),\ 1), \qquad
        g \leftarrow \mathrm{rn}(g \cdot c)

    for every gradient, also when :math:`c = 1`.

    Examples
    --------
    >>> g = np.array([3.0, 4.0])
    >>> clip_grads_with_norm_(g, 1.0, np.float64(5.0))
    >>> g.round(6).tolist()
    [0.6, 0.8]
    """
    gradients = _gradients(entries, "entries", writeable=True)
    max_norm = _check_max_norm(max_norm)
    total = _check_total_norm(total_norm)
    if not gradients:
        return
    coef = _clip_coefficient(total, max_norm)
    for _, grad in gradients:
        _scale_(grad, coef)


def clip_grad_norm_(entries: Any, max_norm: float, norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                    *, threads: int = 1) -> np.ndarray:
    r"""Clip the gradients' total norm to ``max_norm``, in place: ``torch.nn.utils.clip_grad_norm_``.

    Parameters
    ----------
    entries : Optimizer, entry dicts, entry dict or ndarrays
        The gradients (module docstring); entries whose grad is None are skipped.
    max_norm : float
        The largest total norm :math:`m \ge 0` (``inf``: measure, do not clip).
    norm_type : float or str, default 2.0
        The order :math:`p`: any real number, ``inf``/``-inf`` or ``"inf"``.
    error_if_nonfinite : bool, default False
        Raise RuntimeError (torch's message, nothing changed) when the total is NaN or
        infinite, instead of scaling by it.
    threads : int, default 1
        torch's ``get_num_threads()`` to match (keyword only, see :func:`get_total_norm`).

    Returns
    -------
    ndarray
        The total norm before clipping, 0-d, of the widest gradient dtype.

    Notes
    -----
    :func:`get_total_norm` then :func:`clip_grads_with_norm_`:

    .. math::

        t = \|(\|g_1\|_p, \ldots, \|g_k\|_p)\|_p, \qquad
        c = \min(m / (t + 10^{-6}), 1), \qquad g_i \leftarrow g_i \cdot c

    rounded as torch rounds them (module docstring). An empty generator warns, as torch's
    does.

    Examples
    --------
    >>> entries = [{"params": np.zeros(2), "grad": np.array([3.0, 4.0])},
    ...            {"params": np.zeros(1), "grad": None}]
    >>> float(clip_grad_norm_(entries, max_norm=1.0))
    5.0
    >>> entries[0]["grad"].round(6).tolist()
    [0.6, 0.8]
    """
    if isinstance(entries, types.GeneratorType):
        entries = list(entries)
        if not entries:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=2)
    gradients = _gradients(entries, "entries", writeable=True)
    max_norm = _check_max_norm(max_norm)
    p = _check_norm_type(norm_type)
    error_if_nonfinite = check_bool("error_if_nonfinite", error_if_nonfinite)
    total = _total_norm(gradients, p, error_if_nonfinite, _check_threads(threads))
    if gradients:
        coef = _clip_coefficient(total, max_norm)
        for _, grad in gradients:
            _scale_(grad, coef)
    return total


def clip_grad_value_(entries: Any, clip_value: float) -> None:
    r"""Clamp every gradient element to ``[-clip_value, clip_value]`` in place: torch's
    ``torch.nn.utils.clip_grad_value_``.

    Parameters
    ----------
    entries : Optimizer, entry dicts, entry dict or ndarrays
        The gradients (module docstring); entries whose grad is None are skipped.
    clip_value : float
        :math:`v`, any real number but NaN.

    Notes
    -----
    torch's foreach path: :math:`g \leftarrow \min(\max(g, -v), v)` (``clamp_min_`` then
    ``clamp_max_``, :math:`v` cast to the gradient's dtype), exact; NaN elements stay NaN,
    and an element equal to a bound stays itself (so ``clip_value=0`` keeps the sign of a
    zero, and turns ``inf`` into ``+0``, ``-inf`` into ``-0``). A negative :math:`v` sets
    every other element to :math:`v`, as in torch. A finite :math:`v` beyond a gradient's
    dtype (above 65504 for float16) is refused, as torch refuses it.

    Examples
    --------
    >>> g = np.array([-3.0, 0.5, 2.0])
    >>> clip_grad_value_(g, 1.0)
    >>> g.tolist()
    [-1.0, 0.5, 1.0]
    """
    gradients = _gradients(entries, "entries", writeable=True)
    v = _real("clip_value", clip_value)
    for where, grad in gradients:
        if math.isfinite(v) and abs(v) > float(np.finfo(grad.dtype).max):
            raise ValueError(
                f"Invalid clip_value {clip_value!r} for {where} of dtype {grad.dtype}: beyond its largest value "
                f"{float(np.finfo(grad.dtype).max)!r} (torch: value cannot be converted without overflow)"
            )
    for _, grad in gradients:
        low, high = grad.dtype.type(-v), grad.dtype.type(v)       # the scalar cast to the grad's dtype
        np.copyto(grad, low, where=grad < low)                     # _foreach_clamp_min_(grads, -v): ties keep g
        np.copyto(grad, high, where=grad > high)                   # _foreach_clamp_max_(grads, v)
