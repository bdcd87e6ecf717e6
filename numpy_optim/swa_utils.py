r"""Weight averaging: torch.optim.swa_utils for numpy_optim, bit for bit.

:class:`AveragedModel` keeps running averages of a model's arrays: the equal-weight
average of stochastic weight averaging (SWA, the default) or an exponential moving average
(EMA, with :func:`get_ema_multi_avg_fn` or :func:`get_ema_avg_fn`). :class:`SWALR` anneals
every entry's learning rate to a constant ``swa_lr``. With torch 2.13 (CPU) on the same
arrays the averages and the learning rates are torch's to the last bit::

    averaged = AveragedModel(optimizer)                # or a model, entries, or arrays
    swa_scheduler = SWALR(optimizer, swa_lr=0.05)
    for epoch in range(epochs):
        ...                                            # train: optimizer.step() per batch
        if epoch >= swa_start:
            averaged.update_parameters(optimizer)
            swa_scheduler.step()
    averaged.params                                    # the averaged arrays, in order

What is averaged
----------------
A model's arrays, given as any of: an :class:`~numpy_optim.Optimizer` (its entries'
``"params"``), an object with a ``parameters()`` method returning entries
(:class:`numpy_optim.mlp.MLP`), a list of entry dicts (their ``"params"``), one entry
dict, or ndarrays (one, or a list). :class:`AveragedModel` holds deep copies
(``averaged.params``) and never changes the model's arrays; ``update_parameters`` takes
the model again, in any of these forms, with the same number of arrays of the same shapes
and dtypes (float16, float32 or float64).

torch's arithmetic (reference torch-optim-rest.md §5; measured bit for bit)
----------------------------------------------------------------------------
The first ``update_parameters`` copies; each later one, with :math:`n` the number of
models averaged so far (``n_averaged``, a Python int here, an int64 tensor in torch):

* default (no function given; torch's CPU path is :func:`get_swa_avg_fn`'s):
  :math:`a \leftarrow \mathrm{rn}(a + \mathrm{rn}(\mathrm{rn}(c - a) / T(n + 1)))`;
* :func:`get_swa_multi_avg_fn`: ``lerp(a, c, w)`` with :math:`w = \mathrm{rn}_{32}(1 / (n + 1))`
  **rounded to float32 also for float64 arrays** (torch takes ``1 / (n_averaged + 1)`` of
  its int64 tensor, a float32 tensor);
* :func:`get_ema_multi_avg_fn`: ``lerp(a, c, 1 - decay)``;
* :func:`get_ema_avg_fn`: :math:`a \leftarrow \mathrm{rn}(\mathrm{rn}(T(d)\,a) +
  \mathrm{rn}(T(1 - d)\,c))`.

``lerp(a, c, w)`` is torch's fused ``lerp_``: :math:`W = T(w)`, :math:`\delta = \mathrm{rn}(c - a)`,
``fma(W, δ, a)`` if :math:`|W| < 0.5`, else ``fma(W - 1, δ, c)``. :math:`T` is the
arrays' dtype for float32 and float64; float16 arrays compute each operation in float32
(torch's "opmath") and round it to float16, with the scalars (:math:`n + 1`, :math:`w`,
:math:`d`) as float32. A ``multi_avg_fn`` is called once per dtype group, the groups in the
reverse order of their first appearance, as torch groups them.

A measured quirk not reproduced: with ``decay=0`` (EMA weight 1) torch's vectorized body
and scalar tail give zeros of opposite signs where the model holds ``-0.0`` and the average
``+0.0``; numpy_optim gives the body's ``-0.0`` everywhere (the values are equal).

Where numpy_optim differs from torch
------------------------------------
* ``update_bn`` is left out: it recomputes batch-norm statistics, and numpy_optim models
  have no batch-norm layers. ``device`` and ``use_buffers`` are left out too (no devices,
  no buffers).
* ``update_parameters`` refuses a model with another number of arrays, or other shapes or
  dtypes (torch zips with ``strict=False``: a shorter model silently averages only the
  first arrays). Giving both ``avg_fn`` and ``multi_avg_fn`` is a ValueError (torch: an
  AssertionError with the same message); ``decay`` must be a real number (torch lets NaN
  through its range check).
* SWALR validates everything before writing ``swa_lr`` into the entries (torch writes it,
  then checks ``anneal_strategy`` and ``anneal_epochs``), refuses a bool ``anneal_epochs``
  and non-finite ``swa_lr``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from ._fma import lerp_
from .clip_grad import _dtype_groups, _items
from .lr_scheduler import (
    LRScheduler,
    _check_last_epoch,
    _check_optimizer,
    _format_param,
    _integer,
    _refuse_new_entry,
    _scalar,
    _shown,
    _warn_get_lr_called_within_step,
)
from .optimizer import Optimizer

__all__ = [
    "AveragedModel",
    "SWALR",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
]

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

AvgFn = Callable[[np.ndarray, np.ndarray, int], Any]
MultiAvgFn = Callable[[list[np.ndarray], list[np.ndarray], int], None]


# --------------------------------------------------------------------------------------
# torch's elementwise arithmetic
# --------------------------------------------------------------------------------------


def _opmath(dtype: np.dtype) -> np.dtype:
    """The dtype torch computes in: float32 for float16 arrays, the dtype itself otherwise."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """torch's ``start.lerp_(end, weight)`` in place (float16: in float32, then rounded)."""
    if start.dtype == np.float16:
        work = start.astype(np.float32)
        lerp_(work, end.astype(np.float32), weight)
        start[...] = work
    else:
        lerp_(start, end, weight)


def _swa_average(averaged: np.ndarray, current: np.ndarray, n: int) -> np.ndarray:
    """``averaged + (current - averaged) / (n + 1)``, each operation rounded as torch's."""
    t = _opmath(averaged.dtype)
    difference = np.subtract(current, averaged)                                # c - a
    step = np.divide(difference, t.type(n + 1), dtype=t).astype(averaged.dtype)  # / (n_averaged + 1)
    return np.add(averaged, step)                                              # a + ...


def _check_decay(decay: Any) -> float:
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
        raise TypeError(f"Invalid decay: {decay!r} (expected a real number, got {type(decay).__name__})")
    if not 0.0 <= float(decay) <= 1.0:  # NaN fails too (torch lets it through)
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")
    return float(decay)


def _check_count(num_averaged: Any) -> int:
    if isinstance(num_averaged, bool) or not isinstance(num_averaged, numbers.Integral):
        raise TypeError(f"num_averaged must be an int (AveragedModel.n_averaged), got {num_averaged!r}")
    if num_averaged < 0:
        raise ValueError(f"num_averaged must be >= 0 (AveragedModel.n_averaged), got {num_averaged!r}")
    return int(num_averaged)


# --------------------------------------------------------------------------------------
# The averaging functions
# --------------------------------------------------------------------------------------


def get_ema_multi_avg_fn(decay: float = 0.999) -> MultiAvgFn:
    r"""An exponential moving average over lists of arrays, in place: torch's
    ``get_ema_multi_avg_fn``.

    Parameters
    ----------
    decay : float, default 0.999
        :math:`d \in [0, 1]`.

    Returns
    -------
    callable
        ``ema_update(ema_arrays, current_arrays, num_averaged)``, updating ``ema_arrays``.

    Notes
    -----
    :math:`W^{EMA} \leftarrow \mathrm{lerp}(W^{EMA}, W, 1 - d)` = :math:`d\,W^{EMA} + (1 - d)\,W`,
    torch's ``_foreach_lerp_`` (module docstring).

    Examples
    --------
    >>> ema, current = [np.array([0.0, 1.0])], [np.array([1.0, 1.0])]
    >>> get_ema_multi_avg_fn(0.75)(ema, current, 1)
    >>> ema[0].tolist()
    [0.25, 1.0]
    """
    decay = _check_decay(decay)

    def ema_update(ema_param_list: list[np.ndarray], current_param_list: list[np.ndarray], _: int) -> None:
        for ema, current in zip(ema_param_list, current_param_list, strict=True):
            _lerp_(ema, current, 1 - decay)                      # _foreach_lerp_(ema, cur, 1 - decay)

    return ema_update


def get_swa_multi_avg_fn() -> MultiAvgFn:
    r"""The equal-weight running average over lists of arrays, in place: torch's
    ``get_swa_multi_avg_fn``.

    Returns
    -------
    callable
        ``swa_update(averaged_arrays, current_arrays, num_averaged)``; ``num_averaged`` is
        the int :class:`AveragedModel` passes (its ``n_averaged``).

    Notes
    -----
    :math:`a \leftarrow \mathrm{lerp}(a, c, w)`, :math:`w = \mathrm{rn}_{32}(1 / (n + 1))`:
    torch computes ``1 / (num_averaged + 1)`` of AveragedModel's int64 tensor, which is a
    float32 tensor, so the weight is rounded to float32 for float64 arrays too.

    Examples
    --------
    >>> averaged, current = [np.array([0.0])], [np.array([3.0])]
    >>> get_swa_multi_avg_fn()(averaged, current, 2)
    >>> float(averaged[0][0]) == float(np.float32(1 / 3)) * 3
    True
    """

    def swa_update(averaged_param_list: list[np.ndarray], current_param_list: list[np.ndarray],
                   num_averaged: int) -> None:
        n = _check_count(num_averaged)
        weight = float(np.float32(1) / np.float32(n + 1))        # 1 / (num_averaged + 1): a float32 tensor
        for averaged, current in zip(averaged_param_list, current_param_list, strict=True):
            _lerp_(averaged, current, weight)                    # _foreach_lerp_(avg, cur, weight)

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> AvgFn:
    r"""An exponential moving average of one array: torch's ``get_ema_avg_fn``.

    Parameters
    ----------
    decay : float, default 0.999
        :math:`d \in [0, 1]`.

    Returns
    -------
    callable
        ``ema_update(ema, current, num_averaged)`` returning the new average (a new array).

    Notes
    -----
    :math:`\mathrm{rn}(\mathrm{rn}(d \cdot W^{EMA}) + \mathrm{rn}((1 - d) \cdot W))`, the
    scalars :math:`d` and :math:`1 - d` (computed in Python) cast to the arrays' dtype.

    Examples
    --------
    >>> get_ema_avg_fn(0.75)(np.array([0.0, 1.0]), np.array([1.0, 1.0]), 1).tolist()
    [0.25, 1.0]
    """
    decay = _check_decay(decay)

    def ema_update(ema_param: np.ndarray, current_param: np.ndarray, num_averaged: int) -> np.ndarray:
        t = _opmath(ema_param.dtype)
        kept = np.multiply(ema_param, t.type(decay), dtype=t).astype(ema_param.dtype)           # decay * ema
        new = np.multiply(current_param, t.type(1 - decay), dtype=t).astype(ema_param.dtype)    # (1 - decay) * cur
        return np.add(kept, new)

    return ema_update


def get_swa_avg_fn() -> AvgFn:
    r"""The equal-weight running average of one array: torch's ``get_swa_avg_fn``.

    Returns
    -------
    callable
        ``swa_update(averaged, current, num_averaged)`` returning the new average.

    Notes
    -----
    :math:`\mathrm{rn}(a + \mathrm{rn}(\mathrm{rn}(c - a) / T(n + 1)))`, true division by
    :math:`n + 1` converted to the arrays' dtype (float32 for float16 arrays).

    Examples
    --------
    >>> get_swa_avg_fn()(np.array([1.0]), np.array([4.0]), 2).tolist()
    [2.0]
    """

    def swa_update(averaged_param: np.ndarray, current_param: np.ndarray, num_averaged: int) -> np.ndarray:
        return _swa_average(averaged_param, current_param, _check_count(num_averaged))

    return swa_update


# --------------------------------------------------------------------------------------
# AveragedModel
# --------------------------------------------------------------------------------------


def _model_arrays(model: Any, name: str) -> list[np.ndarray]:
    """The arrays of ``model`` (module docstring, "What is averaged"), in order."""
    items, name = _items(model, name, "a model with parameters(), entry dicts or ndarrays")
    arrays = []
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if isinstance(item, dict):
            if "params" not in item:
                raise ValueError(f"{where} has no 'params' key")
            item, where = item["params"], f"{where}['params']"
        if not isinstance(item, np.ndarray):
            raise TypeError(f"{where} must be a numpy.ndarray, got {type(item).__name__}")
        if item.dtype not in _FLOATS:
            raise TypeError(f"{where} must have a floating dtype (float16, float32 or float64), got {item.dtype}")
        arrays.append(item)
    return arrays


class AveragedModel:
    r"""Running averages (SWA or EMA) of a model's arrays: torch's ``AveragedModel``.

    Parameters
    ----------
    model : Optimizer, model with ``parameters()``, entry dicts, entry dict or ndarrays
        The arrays to average (module docstring); deep-copied.
    avg_fn : callable, optional
        ``avg_fn(averaged, current, num_averaged) -> new averaged array``, per array
        (:func:`get_ema_avg_fn`, :func:`get_swa_avg_fn`).
    multi_avg_fn : callable, optional
        ``multi_avg_fn(averaged_arrays, current_arrays, num_averaged)``, in place, once per
        dtype group (:func:`get_ema_multi_avg_fn`, :func:`get_swa_multi_avg_fn`). At most one
        of the two; with neither, the equal-weight average (SWA).

    Attributes
    ----------
    params : list of ndarray
        The averaged arrays, in the model's order (updated in place).
    n_averaged : int
        How many models have been averaged.

    Notes
    -----
    ``update_parameters(model)``, with :math:`n` = ``n_averaged``:

    .. math::

        a \leftarrow \begin{cases} c & n = 0 \\ a + (c - a) / (n + 1) & \text{default (SWA)} \\
        \text{avg\_fn}(a, c, n) \text{ or multi\_avg\_fn} & \text{otherwise} \end{cases}, \qquad
        n \leftarrow n + 1

    rounded as torch rounds them (module docstring).

    References
    ----------
    Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization"
    (UAI 2018); torch.optim.swa_utils.AveragedModel.

    Examples
    --------
    >>> w = np.array([1.0, 2.0])
    >>> averaged = AveragedModel(w)
    >>> averaged.update_parameters(w)
    >>> w += 2.0
    >>> averaged.update_parameters(w)
    >>> averaged.params[0].tolist(), averaged.n_averaged
    ([2.0, 3.0], 2)
    """

    def __init__(self, model: Any, avg_fn: AvgFn | None = None, multi_avg_fn: MultiAvgFn | None = None) -> None:
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("Only one of avg_fn and multi_avg_fn should be provided")
        for name, fn in (("avg_fn", avg_fn), ("multi_avg_fn", multi_avg_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        self.params: list[np.ndarray] = [np.array(a, copy=True) for a in _model_arrays(model, "model")]
        self.n_averaged = 0
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn

    def __repr__(self) -> str:
        """The functions by name, the number of arrays and ``n_averaged``::

            AveragedModel(avg_fn=None, multi_avg_fn=None; 2 arrays, n_averaged 0)
        """
        count = f"{len(self.params)} {'array' if len(self.params) == 1 else 'arrays'}"
        return (f"{type(self).__name__}(avg_fn={_shown(self.avg_fn)}, multi_avg_fn={_shown(self.multi_avg_fn)}; "
                f"{count}, n_averaged {self.n_averaged})")

    def _check_model(self, model: Any) -> list[np.ndarray]:
        arrays = _model_arrays(model, "model")
        if len(arrays) != len(self.params):
            raise ValueError(f"model has {len(arrays)} arrays, the averaged model {len(self.params)}")
        for index, (averaged, current) in enumerate(zip(self.params, arrays)):
            if current.shape != averaged.shape:
                raise ValueError(f"model array {index} has shape {current.shape}, its average {averaged.shape}")
            if current.dtype != averaged.dtype:
                raise TypeError(f"model array {index} has dtype {current.dtype}, its average {averaged.dtype}")
        return arrays

    def update_parameters(self, model: Any) -> None:
        """Average ``model``'s arrays into :attr:`params` (the first call copies them)."""
        current = self._check_model(model)
        n = self.n_averaged
        if n == 0:
            for averaged, c in zip(self.params, current):
                np.copyto(averaged, c)                                   # p_averaged.copy_(p_model)
        elif self.multi_avg_fn is not None or self.avg_fn is None:
            for group in _dtype_groups(self.params):                     # per (device, dtype) group
                averages, models = [self.params[i] for i in group], [current[i] for i in group]
                if self.multi_avg_fn is not None:
                    self.multi_avg_fn(averages, models, n)
                else:
                    for a, b in zip(averages, models):
                        a[...] = _swa_average(a, b, n)                   # get_swa_avg_fn on CPU
        else:
            results = [np.asarray(self.avg_fn(a, c, n)) for a, c in zip(self.params, current)]
            for index, (a, result) in enumerate(zip(self.params, results)):
                if np.broadcast_shapes(result.shape, a.shape) != a.shape:
                    raise ValueError(f"avg_fn returned shape {result.shape} for array {index} of shape {a.shape}")
            for a, result in zip(self.params, results):
                a[...] = result                                          # p_averaged.copy_(avg_fn(...))
        self.n_averaged = n + 1

    def state_dict(self) -> dict[str, Any]:
        """``{"n_averaged": int, "params": [ndarray, ...]}``, copies (the functions are left
        out, as torch leaves them out)."""
        return {"n_averaged": self.n_averaged, "params": [a.copy() for a in self.params]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into the same arrays; nothing changes unless all is valid."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        if set(state_dict) != {"n_averaged", "params"}:
            raise ValueError(f"state_dict must have the keys ['n_averaged', 'params'], got {sorted(state_dict)}")
        n, params = state_dict["n_averaged"], state_dict["params"]
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"state_dict['n_averaged'] must be an int >= 0, got {n!r}")
        if not isinstance(params, (list, tuple)) or len(params) != len(self.params):
            raise ValueError(f"state_dict['params'] must be a list of {len(self.params)} ndarrays")
        for index, (mine, saved) in enumerate(zip(self.params, params)):
            if not isinstance(saved, np.ndarray) or saved.shape != mine.shape or saved.dtype != mine.dtype:
                raise ValueError(f"state_dict['params'][{index}] must be an ndarray of shape {mine.shape} and "
                                 f"dtype {mine.dtype}, got {saved!r:.80}")
        for mine, saved in zip(self.params, params):
            np.copyto(mine, saved)
        self.n_averaged = int(n)


# --------------------------------------------------------------------------------------
# SWALR
# --------------------------------------------------------------------------------------


class SWALR(LRScheduler):
    r"""Anneal every entry's learning rate to ``swa_lr``: torch's ``SWALR``.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
        Its entries are the parameter groups (an entry without ``"lr"`` starts from
        ``optimizer.defaults["lr"]``).
    swa_lr : float or list of float
        The final learning rate, one for all entries or one per entry (stored as
        ``entry["swa_lr"]``).
    anneal_epochs : int, default 10
        Steps of the annealing, ``>= 0`` (0: ``swa_lr`` at once).
    anneal_strategy : {"cos", "linear"}, default "cos"
    last_epoch : int, default -1
        As for every scheduler (:class:`numpy_optim.lr_scheduler.LRScheduler`).

    Notes
    -----
    torch's recursion, in Python floats: with :math:`s` = ``_step_count - 1`` (at least 1
    when :math:`E = 0`), :math:`f(t) = (1 - \cos \pi t) / 2` ('cos') or :math:`t`, and
    :math:`\eta` the entry's current lr,

    .. math::

        \alpha' = f(\mathrm{clip}((s - 1) / \max(1, E), 0, 1)), \quad
        \eta' = \begin{cases} \eta_{swa} & \alpha' = 1 \\ (\eta - \alpha' \eta_{swa}) / (1 - \alpha')
        & \text{otherwise} \end{cases}, \\
        \alpha = f(\mathrm{clip}(s / \max(1, E), 0, 1)), \quad
        \eta \leftarrow \eta_{swa} \alpha + \eta' (1 - \alpha)

    (:math:`\eta'` undoes the previous step, so another scheduler may change the lr in
    between). Construction performs the first step, as every scheduler's does.

    An entry added later (``optimizer.add_param_group``) gets the ``swa_lr`` given for all
    entries (unless it has one) and anneals from its current lr from the next step on;
    given one ``swa_lr`` per entry, such an entry is refused. ``state_dict()`` is torch's
    plus ``"class"``.

    Examples
    --------
    >>> from numpy_optim import SGD
    >>> optimizer = SGD([{"params": np.zeros(1), "grad": np.zeros(1)}], lr=1.0)
    >>> scheduler = SWALR(optimizer, swa_lr=0.5, anneal_epochs=2, anneal_strategy="linear")
    >>> for _ in range(3):
    ...     optimizer.step()
    ...     scheduler.step()
    ...     print(scheduler.get_last_lr())
    [0.75]
    [0.5]
    [0.5]
    """

    _config = ("optimizer", "anneal_func", "_swa_lr")

    def __init__(self, optimizer: Optimizer, swa_lr: float | list[float], anneal_epochs: int = 10,
                 anneal_strategy: str = "cos", last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        swa_lrs = _format_param("swa_lr", optimizer, swa_lr)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        if isinstance(anneal_epochs, bool) or not isinstance(anneal_epochs, numbers.Integral) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        anneal_epochs = _integer("anneal_epochs", anneal_epochs)
        _check_last_epoch(optimizer, last_epoch)                 # before anything is written
        for lr, group in zip(swa_lrs, optimizer.param_groups, strict=True):
            group["swa_lr"] = lr
        self._swa_lr: float | None = _scalar("swa_lr", swa_lr)  # for entries added later
        self._set_anneal_func(str(anneal_strategy))
        self.anneal_epochs: int = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy: str) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def get_lr(self) -> list[Any]:
        """The annealed lr of every entry (module docstring; torch's ``SWALR.get_lr``)."""
        _warn_get_lr_called_within_step(self)
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        groups = self.optimizer.param_groups
        prev_lrs = [self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha) for group in groups]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [group["swa_lr"] * alpha + lr * (1 - alpha) for group, lr in zip(groups, prev_lrs, strict=True)]

    def _checked_state(self, state_dict: Any) -> dict[str, Any]:
        """:meth:`state_dict`'s snapshot checked (the anneal function it names too)."""
        state = super()._checked_state(state_dict)
        if state["_anneal_strategy"] not in ("cos", "linear"):
            raise ValueError(f"state_dict['_anneal_strategy'] must be 'cos' or 'linear', "
                             f"got {state['_anneal_strategy']!r}")
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        super()._apply_state(state)
        self._set_anneal_func(self._anneal_strategy)

    def _check_new_entry(self, entry: dict[str, Any]) -> None:
        if self._swa_lr is None:
            _refuse_new_entry(self, "swa_lr")

    def _add_entry(self, entry: dict[str, Any]) -> None:
        super()._add_entry(entry)
        entry.setdefault("swa_lr", self._swa_lr)
