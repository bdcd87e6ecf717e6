r"""torch.optim.lr_scheduler for numpy_optim optimizers, bit for bit.

Every class of torch 2.13's ``torch.optim.lr_scheduler``, with torch's constructor
signatures, defaults, validation, warnings, state dicts and arithmetic, so that the
sequence of learning rates (and momenta) equals torch's to the last bit::

    optimizer = numpy_optim.SGD(entries, lr=0.1, momentum=0.9)
    scheduler = numpy_optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=1000)
    for _ in range(1000):
        ...                      # compute the gradients
        optimizer.step()
        scheduler.step()         # after optimizer.step(), as in torch

How numpy_optim's entries map to torch's parameter groups
-------------------------------------------------------------
Each entry ``{"params": ..., "grad": ..., <overrides>}`` plays the part of one torch
parameter group holding one array. A scheduler reads and writes each entry's own
``"lr"``; an entry without one starts from the optimizer's (``optimizer.defaults["lr"]``),
which the scheduler copies into the entry when it is built. ``get_last_lr()`` has one value
per entry, and per-group arguments (``max_lr=[...]``, ``min_lr=[...]``, ``lr_lambda=[...]``)
take one value per entry. CyclicLR and OneCycleLR cycle each entry's ``"momentum"`` (SGD,
RMSprop) or ``"betas"[0]`` (Adam, AdamW, Adamax, NAdam, RAdam). Bookkeeping keys torch keeps
in a group (``initial_lr``, ``max_lr``, ``min_lr``, ``base_momentum``, ``max_momentum``) live
in the entry too, so the optimizer's state dict carries them, as torch's does.

Arithmetic
----------
Learning rates are Python floats computed with the ``math`` module and with torch's
operand order, never NumPy ufuncs (``np.power`` and ``np.log`` differ from libm in the last
bit). The recursive ("chainable") schedulers multiply the *current* lr at every step, as
torch does; their closed forms (``step(epoch)``, deprecated in torch) differ from the
recursion in the last bits, which is why both are kept.

Entries added later: ``optimizer.add_param_group(entry)``
---------------------------------------------------------
Every scheduler registers with its optimizer, which asks it first whether it can schedule
the new entry (:meth:`LRScheduler._check_new_entry`; a refusal changes nothing) and then
tells it (:meth:`LRScheduler._add_entry`). The new entry gets its own ``"lr"`` (unchanged:
the optimizer's when it has none), ``initial_lr`` = that lr unless it has one, and the keys
the scheduler writes into its entries at construction; ``base_lrs`` and every per-entry
list grow by one. From the next ``step()`` its lr follows the class's formula exactly as the
other entries' do: a closed form from its base lr (LambdaLR, CyclicLR, OneCycleLR,
CosineAnnealingWarmRestarts, and ``step(epoch)``), or the recursion from its current lr
(the others). A scheduler given one value per entry (a list of ``lr_lambda``, ``base_lr``,
``max_lr``, momenta or ``min_lr``) has no value for a new entry and refuses it. torch
applies the same formulas but, zipping per-group lists, skips or fails on a group added
later (the recursive classes apart, whose results ours equal). An entry appended to
``optimizer.param_groups`` directly is not scheduled: ``step()`` refuses to run until
the counts agree.

Where numpy_optim differs from torch
------------------------------------
Only in refusing, with a clear ``ValueError`` or ``TypeError`` raised before anything
changes, arguments with which torch fails later or unhelpfully (a ``ZeroDivisionError``, an
``AttributeError``, a ``KeyError``, an ``OverflowError``, a NaN learning rate), in
state dicts that hold plain values only (MultiStepLR's milestones as a sorted list,
not a ``Counter``; NumPy scalars and Fractions as Python numbers) and record their class
(``state_dict()["class"]``, the only key torch has not), and in adding entries (above).
Each class's docstring says which arguments. Everything torch accepts and computes,
including its surprises, is reproduced; the docstrings list them. An LBFGS optimizer
cannot be scheduled (its entries cannot carry their own lr).

State dicts
-----------
``state_dict()`` is ``{"class": class name, attribute: value, ...}``: torch's keys and
values (every attribute but the optimizer), as plain Python values (dict, list, str,
int, float, bool, None). ``load_state_dict`` checks the whole dict before changing
anything: the class, the keys, every value plain and of the kind this scheduler holds
(number, str, bool, None, list, dict), ints that fit a float, and one item per entry in
the per-entry lists (``base_lrs``, ``_last_lr``, ``min_lrs``...); SequentialLR's and
ChainedScheduler's ``_schedulers`` hold their members' state dicts, each checked so. The
attributes of a user's callable ``lr_lambda`` or ``scale_fn`` (torch saves its
``__dict__``) are the user's: saved as they are (NumPy scalars as Python numbers) and
restored into it, only their form checked (a dict for a callable object, None for a
function).
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial, wraps
from typing import Any
from weakref import ref

import numpy as np

from .optimizer import Optimizer, as_float

__all__ = [
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "SequentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
    "CyclicLR",
    "OneCycleLR",
    "CosineAnnealingWarmRestarts",
]

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)

# --------------------------------------------------------------------------------------
# Argument checks: torch's where torch has them, clear errors where torch fails later
# --------------------------------------------------------------------------------------


def _number(name: str, value: Any) -> Any:
    """A finite real number (not a bool) that fits a float, as a plain Python number: ints
    (NumPy's too) as ``int``, so the arithmetic is exactly torch's, other reals (NumPy
    scalars, Fractions) as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Invalid {name}: {value!r} (expected a real number, got {type(value).__name__})")
    converted = as_float(name, value)  # a ValueError naming ``name`` for a huge int
    if not math.isfinite(converted):
        raise ValueError(f"Invalid {name} value: {value!r} (must be finite)")
    if isinstance(value, numbers.Integral):
        return int(value)
    return converted


def _integer(name: str, value: Any) -> int:
    """A Python int (not a bool) that fits a float (torch's counts are ints)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Invalid {name}: {value!r} (expected an int, got {type(value).__name__})")
    return _number(name, value)


def _check_optimizer(optimizer: Any) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
    if not getattr(optimizer, "_entries_are_groups", True):
        raise TypeError(
            f"{type(optimizer).__name__} cannot be scheduled: its entries cannot carry their own lr "
            "(torch's LBFGS has a single parameter group); set optimizer.lr between steps instead"
        )
    for index, entry in enumerate(optimizer.param_groups):
        if not isinstance(entry, dict):
            raise TypeError(f"params[{index}] must be a dict, got {type(entry).__name__}")
        _number(f"params[{index}]['lr']", entry.get("lr", optimizer.defaults["lr"]))
        if "initial_lr" in entry:
            _number(f"params[{index}]['initial_lr']", entry["initial_lr"])
    return optimizer


def _own_lr(optimizer: Optimizer, entry: dict[str, Any], index: int) -> Any:
    """Give ``entry`` its own ``"lr"`` (the optimizer's when it has none), as a plain number
    (the same value: a Fraction or NumPy lr as a float), and return it."""
    entry["lr"] = _number(f"params[{index}]['lr']", entry.get("lr", optimizer.defaults["lr"]))
    return entry["lr"]


def _check_last_epoch(optimizer: Optimizer, last_epoch: Any) -> int:
    last_epoch = _integer("last_epoch", last_epoch)
    if last_epoch != -1:
        for i, group in enumerate(optimizer.param_groups):
            if "initial_lr" not in group:
                # torch raises a KeyError with this message
                raise ValueError(
                    f"param 'initial_lr' is not specified in param_groups[{i}] when resuming scheduler with "
                    "last_epoch >= 0.\n"
                    "This typically happens when:\n"
                    "1. You're trying to resume training from a checkpoint but haven't properly loaded the "
                    "optimizer state\n"
                    "2. You're using last_epoch >= 0 for a fresh training run (not recommended)"
                )
    return last_epoch


def _format_param(name: str, optimizer: Optimizer, param: Any) -> list[Any]:
    """One value per entry: a list or tuple of that length, or one value repeated."""
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(param)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return [_number(f"{name}[{i}]", value) for i, value in enumerate(param)]
    return [_number(name, param)] * len(optimizer.param_groups)


def _check_momentum_support(optimizer: Optimizer) -> bool:
    """Whether the optimizer cycles ``betas[0]`` (True) or ``momentum`` (False)."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
    return "betas" in optimizer.defaults


def _materialize(optimizer: Optimizer, key: str, entries: Iterable[dict[str, Any]] | None = None) -> None:
    """Give every entry (of ``entries``, by default all) its own ``key`` (the optimizer's value
    when it has none), as every torch parameter group has one."""
    for entry in optimizer.param_groups if entries is None else entries:
        if key not in entry:
            value = optimizer.defaults[key]
            entry[key] = tuple(value) if isinstance(value, list) else value


def _scalar(name: str, param: Any) -> Any:
    """The one value given for every entry, or None for a list of one value per entry (then a
    scheduler has no value for an entry added later)."""
    return None if isinstance(param, (list, tuple)) else _number(name, param)


def _refuse_new_entry(scheduler: Any, name: str) -> None:
    raise ValueError(
        f"{type(scheduler).__name__} was given one {name} per entry (a list), so it has no {name} for a new entry: "
        f"add_param_group is refused (build the scheduler again, with a value for every entry)"
    )


def _set_momentum(group: dict[str, Any], use_beta1: bool, momentum: float) -> None:
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


def _lrs(optimizer: Optimizer) -> list[Any]:
    return [group["lr"] for group in optimizer.param_groups]


#: The per-entry lists of a scheduler's state: one item per entry.
_PER_ENTRY = frozenset({"base_lrs", "_last_lr", "max_lrs", "base_momentums", "max_momentums", "min_lrs"})


def _kind(value: Any) -> str | None:
    """What a plain state value is ("number": an int or a float); None for a non-plain one."""
    if value is None:
        return "None"
    return {bool: "bool", int: "number", float: "number", str: "str", list: "list", tuple: "list",
            dict: "dict"}.get(type(value))


_ANY = object()  # no reference value: any plain value


def _check_like(where: str, value: Any, like: Any, per_entry: bool = False) -> None:
    """``value`` (loaded at ``where``) is plain, of the kind of ``like`` (the scheduler's own
    value there, or _ANY), with every int within a float's range; a ``per_entry`` list has
    ``like``'s length; items and dict values are checked against ``like``'s (its last item,
    for a list of another length; any plain value, for a dict with other keys)."""
    kind = _kind(value)
    if kind is None:
        raise TypeError(f"Invalid {where}: {value!r:.80} (a {type(value).__module__}.{type(value).__qualname__}; a "
                        f"scheduler's state holds plain values: dict, list, str, int, float, bool, None)")
    if like is not _ANY and kind != _kind(like):
        raise TypeError(f"Invalid {where}: {value!r:.80} (expected a {_kind(like)}, as this scheduler holds, "
                        f"got a {type(value).__name__})")
    if type(value) is int:
        as_float(where, value)
    elif kind == "list":
        if per_entry and len(value) != len(like):
            raise ValueError(f"Invalid {where}: {len(value)} items, but the scheduler knows {len(like)} entries "
                             f"(one item per entry; add entries to both with optimizer.add_param_group)")
        for i, item in enumerate(value):
            _check_like(f"{where}[{i}]", item, like[min(i, len(like) - 1)] if like is not _ANY and like else _ANY)
    elif kind == "dict":
        same = like is not _ANY and set(value) == set(like)
        for key, item in value.items():
            if _kind(key) not in ("str", "number", "bool", "None"):
                raise TypeError(f"Invalid {where}: a key {key!r:.80} (keys are str, int, float, bool or None)")
            _check_like(f"{where}[{key!r}]", item, like[key] if same else _ANY)


def _check_state_dict(scheduler: Any, state_dict: Any, current: dict[str, Any]) -> None:
    """Refuse a state dict that is not a state of ``scheduler`` (``current`` is its own
    ``state_dict()``): another class's, other keys, or values of :func:`_check_like`'s
    refusals (but for the keys in ``scheduler._own_checks``)."""
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
    name = current["class"]
    saved = state_dict.get("class", name)
    if not isinstance(saved, str):
        raise TypeError(f"Invalid state_dict['class']: {saved!r:.80} (expected a class name, a str)")
    if saved != name:
        raise ValueError(f"state_dict records class {saved!r} but this scheduler's class is {name!r} (another class's "
                         f"state means something else: build a {saved} to load it)")
    if set(state_dict) != set(current):
        raise ValueError(f"state_dict for {name} must have the keys {sorted(current)}, got {sorted(state_dict)}")
    for key, value in state_dict.items():
        if key not in scheduler._own_checks:
            _check_like(f"state_dict[{key!r}]", value, current[key], per_entry=key in _PER_ENTRY)


def _check_attributes(where: str, saved: Any, fn: Any) -> None:
    """``saved`` restores the attributes of a user's callable ``fn`` (torch's state of an
    ``lr_lambda`` or ``scale_fn``): None for a function (torch saves none), else a dict (its
    ``__dict__``, whatever it holds)."""
    if isinstance(fn, types.FunctionType) or fn is None:
        if saved is not None:
            raise TypeError(f"Invalid {where}: {saved!r:.80} (expected None: {fn!r:.80} is a function, whose "
                            "attributes a state dict does not hold)")
    elif not isinstance(saved, dict):
        raise TypeError(f"Invalid {where}: {saved!r:.80} (expected the dict of {fn!r:.80}'s attributes)")
    elif saved and not hasattr(fn, "__dict__"):
        raise ValueError(f"Invalid {where}: {saved!r:.80} ({fn!r:.80} has no attributes to restore)")


def _attributes(fn: Any) -> dict[str, Any] | None:
    """torch's state of a user's callable (see :func:`_check_attributes`), NumPy scalars as
    Python numbers."""
    return None if fn is None or isinstance(fn, types.FunctionType) else _plain(dict(getattr(fn, "__dict__", {})))


def _shown(value: Any) -> str:
    """``value`` as a scheduler's repr shows it: an optimizer by its class name, a function
    (or any callable with a name) by its name, an array by its shape and dtype, a NumPy
    scalar as the Python number, a list or tuple of more than 4 items cut short, and an
    iterator, a callable without a name or an object with no repr of its own (one with an
    address) as ``<its class object>``; anything else by its repr."""
    if isinstance(value, Optimizer):
        return type(value).__name__
    if isinstance(value, np.ndarray):
        return f"<ndarray {value.shape} {value.dtype}>"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        items = [_shown(item) for item in value[:4]] + ([f"... {len(value)} items"] if len(value) > 4 else [])
        if isinstance(value, list):
            return f"[{', '.join(items)}]"
        return f"({', '.join(items)}{',' if len(value) == 1 else ''})"
    name = getattr(value, "__name__", None) if callable(value) else None
    if isinstance(name, str):
        return name
    if callable(value) or isinstance(value, Iterator) or type(value).__repr__ is object.__repr__:
        return f"<{type(value).__name__} object>"
    return repr(value)


class _RecordsArguments:
    """Records the constructor's arguments (as :func:`_shown` shows them, all but
    ``last_epoch``) in ``_arguments``, for :meth:`LRScheduler.__repr__`. It is done in
    ``__new__``, which sees the arguments of every subclass's ``__init__``; ``_arguments``
    is no part of the state dicts. (A base class of its own: ``inspect.signature`` of the
    schedulers still finds their ``__init__``.)"""

    _arguments: list[tuple[str, str]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(self, *args, **kwargs)
        except TypeError:  # refused by __init__ in a moment; or copy / pickle re-creating it
            self._arguments = []
        else:
            bound.apply_defaults()
            self._arguments = [(name, _shown(value)) for name, value in list(bound.arguments.items())[1:]
                               if name != "last_epoch"]
        return self


# --------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------


class LRScheduler(_RecordsArguments):
    r"""Base class of torch's schedulers: construction performs the initial step.

    A subclass implements :meth:`get_lr`, the learning rate of every entry at
    ``self.last_epoch`` (read the entries' current ``"lr"`` for a recursive schedule, or
    ``self.base_lrs`` for a closed-form one), and optionally ``_get_closed_form_lr``, used
    by the deprecated ``step(epoch)``.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
        Its entries are the parameter groups.
    last_epoch : int, default -1
        ``-1`` starts the schedule (every entry gets ``initial_lr``, its lr now). Any other
        value resumes: the entries must hold ``initial_lr`` already, and construction steps to
        ``last_epoch + 1``, as torch does (to continue after K steps pass ``K - 1``, or better,
        build with the default and use :meth:`load_state_dict`).

    Notes
    -----
    ``step()`` warns, as torch does, when it is called for the first time before
    ``optimizer.step()`` (the optimizer's ``step`` is wrapped once to notice), or after
    ``optimizer.step`` was replaced. ``step(epoch)`` warns that the epoch is deprecated and
    uses the closed form where the class has one. ``step()`` refuses to run when the
    optimizer has entries the scheduler was not told of (appended to ``param_groups``
    directly: use ``optimizer.add_param_group``).

    A built scheduler registers with its optimizer, which calls :meth:`_check_new_entry`
    and :meth:`_add_entry` in ``add_param_group`` (module docstring).
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False
    #: Attributes that configure the scheduler rather than record where it is (torch has no
    #: such attributes): left out of :meth:`state_dict` and kept by :meth:`load_state_dict`.
    _config: tuple[str, ...] = ("optimizer",)
    #: State keys whose values the class checks itself (the base class checks all the others).
    _own_checks: tuple[str, ...] = ()
    _last_lr: list[Any]

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        last_epoch = _check_last_epoch(optimizer, last_epoch)
        self.optimizer = optimizer
        for index, group in enumerate(optimizer.param_groups):
            _own_lr(optimizer, group, index)
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[Any] = [_number(f"params[{i}]['initial_lr']", group["initial_lr"])
                                    for i, group in enumerate(optimizer.param_groups)]
        self.last_epoch = last_epoch
        _patch_track_step_called(optimizer)
        self._initial_step()
        optimizer._register_scheduler(self)

    def _initial_step(self) -> None:
        """Reset the step count and perform a step."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    # ----- state dicts ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """``{"class": the class name, attribute: value, ...}``: every attribute but the
        optimizer (and the repr's record of the arguments), as torch's, plain values only
        (copies), and the class name."""
        state = {"class": type(self).__name__}
        state.update((key, _plain(value)) for key, value in self.__dict__.items()
                     if key not in self._config and key != "_arguments")
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s snapshot (the optimizer's lrs come from the optimizer's
        own state dict, as in torch). It is checked whole before anything changes (module
        docstring: its class, keys and values); the caller's dict is not modified."""
        self._apply_state(self._checked_state(state_dict))

    def _checked_state(self, state_dict: Any) -> dict[str, Any]:
        """``state_dict`` checked (nothing changed yet): the attributes to set, copied."""
        _check_state_dict(self, state_dict, self.state_dict())
        return {key: _plain(value) for key, value in state_dict.items() if key != "class"}

    def _apply_state(self, state: dict[str, Any]) -> None:
        """Set what :meth:`_checked_state` returned (it cannot fail)."""
        self.__dict__.update(state)

    # ----- entries added by optimizer.add_param_group -------------------------------------

    def _check_new_entry(self, entry: dict[str, Any]) -> None:
        """Refuse (ValueError) an entry that ``optimizer.add_param_group`` is about to append
        and this scheduler cannot schedule; the optimizer has checked the entry itself. Every
        entry is accepted here; a scheduler given one value per entry refuses."""

    def _add_entry(self, entry: dict[str, Any]) -> None:
        """Take on ``entry``, just appended by ``optimizer.add_param_group``: its own lr
        (unchanged), ``initial_lr`` (its lr unless it has one), one more base lr and last lr."""
        lr = _own_lr(self.optimizer, entry, len(self.optimizer.param_groups) - 1)
        entry.setdefault("initial_lr", lr)
        self.base_lrs = [*self.base_lrs, self._new_base_lr(entry)]
        self._last_lr = [*self._last_lr, lr]  # a new list: SequentialLR's may be this one

    def _new_base_lr(self, entry: dict[str, Any]) -> Any:
        """The base lr of an entry added later: its ``initial_lr``."""
        return _number("initial_lr", entry["initial_lr"])

    def _check_entries_known(self) -> None:
        """Refuse to step when the optimizer's entries are not the ones this scheduler knows."""
        entries, known = len(self.optimizer.param_groups), len(self._last_lr)
        if entries != known:
            raise ValueError(
                f"{type(self).__name__}: params has {entries} entries but the scheduler knows {known}; add entries "
                f"with optimizer.add_param_group(...) (an entry appended to param_groups directly is not scheduled)"
            )

    # ----- repr -------------------------------------------------------------------------

    def __repr__(self) -> str:
        """One line: the class, the constructor's arguments as they were given (defaults
        filled in; the optimizer by its class name, functions by name, no arrays), then where
        the schedule is (:meth:`_repr_state`)::

            StepLR(optimizer=SGD, step_size=3, gamma=0.1; last_epoch 0, last_lr [0.1])
        """
        arguments = ", ".join(f"{name}={text}" for name, text in self._repr_arguments())
        return f"{type(self).__name__}({arguments}; {', '.join(self._repr_state())})"

    def _repr_arguments(self) -> list[tuple[str, str]]:
        """The constructor's arguments, ``(name, text)``, as :meth:`__repr__` shows them."""
        return getattr(self, "_arguments", [])

    def _repr_state(self) -> list[str]:
        """Where the schedule is: ``last_epoch`` and ``last_lr`` (those it has)."""
        state = [f"last_epoch {self.last_epoch!r}"] if hasattr(self, "last_epoch") else []
        if hasattr(self, "_last_lr"):
            state.append(f"last_lr {_shown(self._last_lr)}")
        return state

    # ----- the schedule -----------------------------------------------------------------

    def get_last_lr(self) -> list[Any]:
        """The learning rates of the last step, one per entry (a new list each step)."""
        return self._last_lr

    def get_lr(self) -> list[Any]:
        """The learning rate of every entry at ``last_epoch`` (use :meth:`get_last_lr` to
        read the current ones: outside ``step()`` this warns, and a recursive schedule applies
        its factor once more, as torch's does)."""
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance the schedule by one step (call it after ``optimizer.step()``).

        ``epoch`` (deprecated in torch, with its warning) sets ``last_epoch`` instead and uses
        the closed form where the class has one.
        """
        if not self._is_initial:
            self._check_entries_known()
        if epoch is not None:
            epoch = _number("epoch", epoch)
            if hasattr(self, "_get_closed_form_lr"):
                self._check_closed_form()
        if self._step_count == 1:
            if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
                warnings.warn(
                    "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
                    "initialization. Please, make sure to call `optimizer.step()` before "
                    "`lr_scheduler.step()`. See more details at "
                    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
                    UserWarning,
                    stacklevel=2,
                )
            elif not getattr(self.optimizer, "_opt_called", False):
                warnings.warn(
                    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
                    "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
                    "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
                    "will result in PyTorch skipping the first value of the learning rate schedule. "
                    "See more details at "
                    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
                    UserWarning,
                    stacklevel=2,
                )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _check_closed_form(self) -> None:
        """Refuse ``step(epoch)`` where the closed form would divide by zero."""

    def _update_lr(self, epoch: Any = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = _lrs(self.optimizer)


def _warn_get_lr_called_within_step(scheduler: LRScheduler) -> None:
    if not scheduler._get_lr_called_within_step:
        warnings.warn(
            "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
            UserWarning,
            stacklevel=3,
        )


def _patch_track_step_called(optimizer: Optimizer) -> None:
    """Wrap ``optimizer.step`` once so that schedulers can tell it was called (torch's
    ``_opt_called``, set and never reset)."""
    if hasattr(optimizer.step, "_wrapped_by_lr_sched"):
        return
    opt_ref = ref(optimizer)
    func = optimizer.step.__func__  # type: ignore[attr-defined]

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opt = opt_ref()
        opt._opt_called = True  # type: ignore[union-attr]
        return func.__get__(opt, opt.__class__)(*args, **kwargs)

    wrapper._wrapped_by_lr_sched = True  # type: ignore[attr-defined]
    optimizer.step = wrapper  # type: ignore[method-assign]


def _plain(value: Any) -> Any:
    """A state-dict value as plain data, copied (nothing aliased to the scheduler):
    MultiStepLR's Counter as the sorted milestones, a NumPy scalar (an lr a user's
    ``lr_lambda`` made one) as a Python number (an array, in a user's callable's
    attributes, copied)."""
    if isinstance(value, Counter):
        return sorted(value.elements())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.copy()
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------------------
# Closed-form schedules of a function: LambdaLR and MultiplicativeLR
# --------------------------------------------------------------------------------------


class _LambdaScheduler(LRScheduler):
    """What LambdaLR and MultiplicativeLR share: one function per entry, and torch's state
    dict of them (functions left out as None; other callables saved as a copy of their
    ``__dict__``). An entry added later gets the function, if one was given for all."""

    _config = ("optimizer", "lr_lambdas", "_one_lambda")
    _own_checks = ("lr_lambdas",)

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if not isinstance(lr_lambda, (list, tuple)):
            lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        else:
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
            lr_lambdas = list(lr_lambda)
        for fn in lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        self.lr_lambdas: list[Callable[[int], float]] = lr_lambdas
        self._one_lambda = None if isinstance(lr_lambda, (list, tuple)) else lr_lambda
        super().__init__(optimizer, last_epoch)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [_attributes(fn) for fn in self.lr_lambdas]
        return state

    def _checked_state(self, state_dict: Any) -> dict[str, Any]:
        state = super()._checked_state(state_dict)
        saved = state["lr_lambdas"]
        if not isinstance(saved, list) or len(saved) != len(self.lr_lambdas):
            raise ValueError(f"Invalid state_dict['lr_lambdas']: {saved!r:.80} (expected a list of "
                             f"{len(self.lr_lambdas)} items, one per entry)")
        for i, (fn, attributes) in enumerate(zip(self.lr_lambdas, saved)):
            _check_attributes(f"state_dict['lr_lambdas'][{i}]", attributes, fn)
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        saved = state.pop("lr_lambdas")
        super()._apply_state(state)
        for fn, attributes in zip(self.lr_lambdas, saved):
            if attributes:
                fn.__dict__.update(attributes)

    def _check_new_entry(self, entry: dict[str, Any]) -> None:
        if self._one_lambda is None:
            _refuse_new_entry(self, "lr_lambda")

    def _add_entry(self, entry: dict[str, Any]) -> None:
        super()._add_entry(entry)
        self.lr_lambdas = [*self.lr_lambdas, self._one_lambda]  # type: ignore[list-item]


class LambdaLR(_LambdaScheduler):
    r"""Each entry's lr is its initial lr times a function of the epoch.

    .. math:: \eta_e = \eta_{base} \cdot \lambda(e)

    Mirrors ``torch.optim.lr_scheduler.LambdaLR`` (closed form; no recursion). A single
    function is called once per entry per step. ``state_dict()`` leaves functions out
    (None) and saves other callables' ``__dict__``, as torch does.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    lr_lambda : callable or list of callables
        ``lr_lambda(epoch) -> factor``, or one per entry.
    last_epoch : int, default -1

    Notes
    -----
    Stricter than torch: a non-callable ``lr_lambda`` is refused at construction with a
    TypeError (torch fails in the construction step with ``'float' object is not callable``).
    An entry added later (``optimizer.add_param_group``) gets the function given for all
    entries (as MultiplicativeLR's); given a list, such an entry is refused.

    Examples
    --------
    >>> import numpy as np, numpy_optim
    >>> opt = numpy_optim.SGD([{"params": np.zeros(2), "grad": np.zeros(2)}], lr=0.1)
    >>> s = LambdaLR(opt, lambda e: 0.5 ** e)
    >>> s.get_last_lr(), (opt.step(), s.step(), s.get_last_lr())[2]
    ([0.1], [0.05])
    """

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        return [base_lr * lmbda(self.last_epoch) for lmbda, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]


class MultiplicativeLR(_LambdaScheduler):
    r"""Multiply each entry's current lr by a function of the epoch, every step.

    .. math:: \eta_e = \eta_{e-1} \cdot \lambda(e) \quad (e \ge 1)

    Mirrors ``torch.optim.lr_scheduler.MultiplicativeLR``: the product is accumulated left
    to right, one rounding a step (it differs from ``base * λ**e`` in the last bits).
    The construction step leaves the lr unchanged; the deprecated ``step(epoch)`` applies
    one factor ``λ(epoch)`` whatever the jump, as torch's does.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    lr_lambda : callable or list of callables
    last_epoch : int, default -1
    """

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        if not self._is_initial:
            return [group["lr"] * lmbda(self.last_epoch)
                    for lmbda, group in zip(self.lr_lambdas, self.optimizer.param_groups, strict=True)]
        return _lrs(self.optimizer)


# --------------------------------------------------------------------------------------
# Recursive ("chainable") schedules: each step multiplies the current lr
# --------------------------------------------------------------------------------------


class StepLR(LRScheduler):
    r"""Decay each entry's lr by ``gamma`` every ``step_size`` epochs.

    .. math::
        \eta_e = \eta_{e-1} \cdot \gamma \ \text{if } e > 0 \text{ and } e \bmod S = 0,
        \text{ else } \eta_{e-1}

    Mirrors ``torch.optim.lr_scheduler.StepLR``: the recursion (closed form
    ``base * gamma ** (e // step_size)`` only for ``step(epoch)``). torch's surprise: after
    many decays the recursion and ``base * gamma**k`` differ in the last bits (gamma 0.1:
    from the 4th decay on); this is the recursion.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    step_size : int
        Period of the decay. Stricter than torch: 0 is refused here (torch fails with
        ``ZeroDivisionError: integer modulo by zero`` at the first step).
    gamma : float, default 0.1
    last_epoch : int, default -1

    Examples
    --------
    >>> import numpy as np, numpy_optim
    >>> opt = numpy_optim.SGD([{"params": np.zeros(2), "grad": np.zeros(2)}], lr=0.1)
    >>> s = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for _ in range(5):
    ...     opt.step(); s.step(); lrs.append(s.get_last_lr()[0])
    >>> lrs
    [0.1, 0.05, 0.05, 0.025, 0.025]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        step_size = _number("step_size", step_size)
        if step_size == 0:
            raise ValueError(f"Invalid step_size value: {step_size!r} (must be nonzero: the lr decays every "
                             "step_size epochs)")
        self.step_size = step_size
        self.gamma = _number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    r"""Decay each entry's lr by ``gamma`` at each milestone (``gamma**k`` for a milestone
    listed k times).

    Mirrors ``torch.optim.lr_scheduler.MultiStepLR``. The milestones may be unsorted and
    repeated; a milestone 0 decays at construction, as in torch. ``state_dict()`` holds
    them as a sorted list (torch holds a ``Counter``).

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    milestones : iterable of int
    gamma : float, default 0.1
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise TypeError(f"Invalid milestones: {milestones!r} (expected an iterable of epochs)")
        milestones = [_number(f"milestones[{i}]", m) for i, m in enumerate(milestones)]
        self.milestones = Counter(milestones)
        self.gamma = _number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def _checked_state(self, state_dict: Any) -> dict[str, Any]:
        state = super()._checked_state(state_dict)
        state["milestones"] = Counter(state["milestones"])
        return state

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        if self.last_epoch not in self.milestones:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch] for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch) for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    r"""Multiply each entry's lr by ``factor`` until epoch ``total_iters``, then restore it.

    .. math:: \eta_0 = \eta \cdot f,\quad \eta_T = \eta_{T-1} \cdot (1 / f)

    Mirrors ``torch.optim.lr_scheduler.ConstantLR``. torch's surprises: the restore divides,
    so the lr after ``total_iters`` need not be the initial one (0.037 becomes
    0.03699999999999999 with the default 1/3); building the scheduler *after* loading the
    optimizer's state dict multiplies the loaded lr by ``factor`` once more (build it first,
    then load both state dicts).

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    factor : float, default 1/3
        In (0, 1]. Stricter than torch: 0 is refused (torch divides by it at ``total_iters``).
    total_iters : int, default 5
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        factor = _number("factor", factor)
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        if factor == 0:
            raise ValueError("Invalid factor value: 0 (ConstantLR restores the lr by dividing by factor)")
        self.factor = factor
        self.total_iters = _number("total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return _lrs(self.optimizer)
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    r"""Ramp each entry's lr linearly from ``start_factor`` to ``end_factor`` times its
    initial lr over ``total_iters`` epochs.

    .. math::
        \eta_0 = \eta \cdot s,\quad
        \eta_e = \eta_{e-1}\left(1 + \frac{t - s}{T s + (e - 1)(t - s)}\right) \ (1 \le e \le T)

    Mirrors ``torch.optim.lr_scheduler.LinearLR``'s recursion (from the second step on it
    differs from ``base * (s + (t - s) e / T)`` in the last bits; after T the defaults give
    0.037000000000000005 for 0.037). As in torch, building it *after* loading the
    optimizer's state dict multiplies the loaded lr by ``start_factor`` once more.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    start_factor : float, default 1/3
        In (0, 1].
    end_factor : float, default 1.0
        In [0, 1].
    total_iters : int, default 5
        With 0 the recursion stays at ``start_factor`` times the lr, as in torch; the
        deprecated ``step(epoch)`` is then refused with a ValueError (torch: ZeroDivisionError).
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        start_factor, end_factor = _number("start_factor", start_factor), _number("end_factor", end_factor)
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = _number("total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _lrs(self.optimizer)
        s, t, T = self.start_factor, self.end_factor, self.total_iters
        return [group["lr"] * (1.0 + (t - s) / (T * s + (self.last_epoch - 1) * (t - s)))
                for group in self.optimizer.param_groups]

    def _check_closed_form(self) -> None:
        if self.total_iters == 0:
            raise ValueError("LinearLR with total_iters=0 has no closed form: step(epoch) would divide by zero")

    def _get_closed_form_lr(self) -> list[Any]:
        s, t, T = self.start_factor, self.end_factor, self.total_iters
        return [base_lr * (s + (t - s) * min(T, self.last_epoch) / T) for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""Multiply each entry's lr by ``gamma`` every epoch.

    .. math:: \eta_e = \eta_{e-1} \cdot \gamma

    Mirrors ``torch.optim.lr_scheduler.ExponentialLR``: the recursion, which differs from
    ``base * gamma**e`` in the last bits (up to 13 ulp with gamma 0.99 over 300 steps).

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    gamma : float
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.gamma = _number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        if self._is_initial:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    r"""Decay each entry's lr polynomially to 0 over ``total_iters`` epochs.

    .. math::
        \eta_e = \eta_{e-1}\left(\frac{1 - e/T}{1 - (e-1)/T}\right)^{p} \ (1 \le e \le T)

    Mirrors ``torch.optim.lr_scheduler.PolynomialLR``'s recursion (the factor with Python
    ``**``); the lr is exactly 0 from epoch T on.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    total_iters : int, default 5
        With 0 the lr never decays, as in torch; the deprecated ``step(epoch)`` is then
        refused with a ValueError (torch: ZeroDivisionError).
    power : float, default 1.0
        Stricter than torch: a negative power is refused (torch raises ZeroDivisionError
        from ``0.0 ** power`` at epoch T).
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.total_iters = _number("total_iters", total_iters)
        power = _number("power", power)
        if power < 0:
            raise ValueError(f"Invalid power value: {power!r} (must be >= 0: the lr reaches 0 ** power at total_iters)")
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        if self._is_initial or self.last_epoch > self.total_iters:
            return _lrs(self.optimizer)
        T, e = self.total_iters, self.last_epoch
        decay_factor = ((1.0 - e / T) / (1.0 - (e - 1) / T)) ** self.power
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]

    def _check_closed_form(self) -> None:
        if self.total_iters == 0:
            raise ValueError("PolynomialLR with total_iters=0 has no closed form: step(epoch) would divide by zero")

    def _get_closed_form_lr(self) -> list[Any]:
        return [base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
                for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Anneal each entry's lr along a cosine from its initial lr to ``eta_min`` over
    ``T_max`` epochs, in torch's recursive form.

    .. math::
        \eta_e = \frac{1 + \cos(\pi e / T)}{1 + \cos(\pi (e-1) / T)} (\eta_{e-1} - \eta_{min}) + \eta_{min},
        \quad \eta_e = \eta_{e-1} + \frac{(\eta_{base} - \eta_{min})(1 - \cos(\pi / T))}{2}
        \ \text{if } (e - 1 - T) \bmod 2T = 0

    Mirrors ``torch.optim.lr_scheduler.CosineAnnealingLR``. torch's surprises, reproduced:
    the schedule is periodic with period ``2 T_max`` (the lr rises again after ``T_max``);
    it reaches ``eta_min`` exactly at ``T_max`` but does not return exactly to the initial
    lr at ``2 T_max``; the recursion differs from the closed form in the last bits (up to
    39 ulp).

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    T_max : int
        Half period. Stricter than torch: 0 is refused (torch fails with
        ``ZeroDivisionError: integer modulo by zero`` at the first step).
    eta_min : float, default 0.0
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        T_max = _number("T_max", T_max)
        if T_max == 0:
            raise ValueError("Invalid T_max value: 0 (the half period of the cosine must be nonzero)")
        self.T_max = T_max
        self.eta_min = _number("eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        e, T, m = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if self._is_initial:
            return _lrs(self.optimizer)
        if self._step_count == 1 and e > 0:  # get_lr() called directly after a resume construction
            return [m + (base_lr - m) * (1 + math.cos(e * math.pi / T)) / 2 for base_lr in self.base_lrs]
        if (e - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base_lr - m) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, group in zip(self.base_lrs, groups, strict=True)]
        return [(1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (group["lr"] - m) + m
                for group in groups]

    def _get_closed_form_lr(self) -> list[Any]:
        m = self.eta_min
        return [m + (base_lr - m) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


# --------------------------------------------------------------------------------------
# Compositions
# --------------------------------------------------------------------------------------


def _check_schedulers(owner: str, optimizer: Any, schedulers: Any) -> None:
    for index, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{owner} at index {index} should have `optimizer` as its attribute.")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(
                f"{owner} does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be "
                f"specified when calling `step`, but got one at index {index} in the given schedulers sequence."
            )
        if optimizer != scheduler.optimizer:
            raise ValueError(
                f"{owner} expects all schedulers to belong to the same optimizer, but got scheduler "
                f"{scheduler.__class__.__name__} at index {index} has {scheduler.optimizer}, which is different "
                f"from {optimizer.__class__.__name__}."
            )


class _Composite(LRScheduler):
    """What SequentialLR and ChainedScheduler share: their state dict (``_schedulers``: the
    members' state dicts, checked whole before anything is loaded) and, for an entry added
    later, only their own last lrs (each member is told of it as a scheduler of the optimizer)."""

    _config = ("optimizer", "_schedulers")
    _own_checks = ("_schedulers",)
    _schedulers: Sequence[LRScheduler]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def _checked_state(self, state_dict: Any) -> dict[str, Any]:
        state = super()._checked_state(state_dict)
        saved = state_dict["_schedulers"]
        if not isinstance(saved, list) or len(saved) != len(self._schedulers):
            raise ValueError(f"state_dict['_schedulers'] must be a list of {len(self._schedulers)} state dicts")
        members = []
        for i, (sub, sub_state) in enumerate(zip(self._schedulers, saved)):
            try:
                members.append(sub._checked_state(sub_state))
            except (TypeError, ValueError) as error:
                raise type(error)(f"state_dict['_schedulers'][{i}]: {error}") from None
        state["_schedulers"] = members
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        members = state.pop("_schedulers")
        super()._apply_state(state)
        for sub, sub_state in zip(self._schedulers, members):
            sub._apply_state(sub_state)

    def _add_entry(self, entry: dict[str, Any]) -> None:
        lr = _own_lr(self.optimizer, entry, len(self.optimizer.param_groups) - 1)
        self._last_lr = [*self._last_lr, lr]

    def _repr_arguments(self) -> list[tuple[str, str]]:
        """The members as they are now (their own reprs, every one), not as they were built."""
        members = f"[{', '.join(map(repr, getattr(self, '_schedulers', [])))}]"
        return [(name, members if name == "schedulers" else text) for name, text in super()._repr_arguments()]


class SequentialLR(_Composite):
    r"""Run ``schedulers[i]`` between ``milestones[i-1]`` and ``milestones[i]``.

    Mirrors ``torch.optim.lr_scheduler.SequentialLR``. Construction resets every entry's lr
    to its ``initial_lr``, undoes the sub-schedulers' construction steps, and performs the
    first one's initial step. At a milestone the next scheduler restarts at epoch 0: its
    closed form at 0 if it has one, else its ``get_lr()`` applied once more to the current
    lr (torch's "double step": a MultiplicativeLR second applies ``λ(0)``). torch's
    surprises, reproduced: a ChainedScheduler first applies its members' factors at epoch 0
    (a double step); a ChainedScheduler later than first raises NotImplementedError at its
    milestone; a nested SequentialLR first switches one epoch early; a CyclicLR second jumps
    to its own base lr.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    schedulers : list of LRScheduler
    milestones : list of int
        One fewer than ``schedulers``.
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, schedulers: list[LRScheduler], milestones: list[int],
                 last_epoch: int = -1) -> None:
        if len(schedulers) < 1:
            raise ValueError(f"{self.__class__.__name__} expects at least one scheduler, but got no scheduler.")
        _check_schedulers(self.__class__.__name__, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the number of "
                f"milestone points, but got number of schedulers {len(schedulers)} and the number of milestones "
                f"to be equal to {len(milestones)}"
            )
        milestones = [_number(f"milestones[{i}]", m) for i, m in enumerate(milestones)]
        last_epoch = _integer("last_epoch", last_epoch)
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self.recursive_undo()
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = schedulers[idx].get_last_lr()
        optimizer._register_scheduler(self)

    def recursive_undo(self, sched: Any = None) -> None:
        """Undo the sub-schedulers' construction steps (``last_epoch -= 1`` on each leaf)."""
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self.recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def step(self) -> None:  # type: ignore[override]
        """Advance the active scheduler; at a milestone, restart the next one at epoch 0."""
        self._check_entries_known()
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    r"""Step several schedulers on one optimizer, in list order, every step.

    Mirrors ``torch.optim.lr_scheduler.ChainedScheduler``: each recursive member multiplies
    the current lr and each closed-form member overwrites it, so the order of the members
    changes the last bits (as in torch). Construction performs no step (the members stepped
    when they were built, which compounds: LinearLR(0.5) then ConstantLR(0.5) start at a
    quarter of the lr).

    Parameters
    ----------
    schedulers : sequence of LRScheduler
    optimizer : numpy_optim.Optimizer, optional
        Defaults to ``schedulers[0].optimizer``.
    """

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None) -> None:
        if len(schedulers) < 1:
            raise ValueError(
                f"{self.__class__.__name__} expects at least one scheduler to be chained, but got no scheduler."
            )
        optimizer = optimizer or schedulers[0].optimizer
        _check_schedulers(self.__class__.__name__, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = _lrs(self._schedulers[-1].optimizer)
        optimizer._register_scheduler(self)

    def step(self) -> None:  # type: ignore[override]
        """Step every member, in order."""
        self._check_entries_known()
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _lrs(self._schedulers[-1].optimizer)


# --------------------------------------------------------------------------------------
# ReduceLROnPlateau: driven by a metric
# --------------------------------------------------------------------------------------


class ReduceLROnPlateau(LRScheduler):
    r"""Reduce each entry's lr by ``factor`` when a metric has stopped improving.

    ``step(metrics)`` after each evaluation. ``metrics`` improves on ``best`` if (mode min,
    threshold_mode rel) ``metrics < best * (1 - threshold)``; (min, abs) ``metrics < best -
    threshold``; (max, rel) ``metrics > best * (threshold + 1)``; (max, abs) ``metrics > best
    + threshold``. After more than ``patience`` bad steps, each lr becomes ``max(lr * factor,
    min_lr)`` unless that changes it by ``eps`` or less; then ``cooldown`` steps discard bad
    steps.

    Mirrors ``torch.optim.lr_scheduler.ReduceLROnPlateau``, with its surprises: the
    reduction comes on the (patience + 1)-th bad step; a NaN metric is always bad; with
    negative metrics in min/rel mode slightly worse values count as improvements; an lr
    below ``min_lr`` is left alone; there is no initial step and no ``initial_lr``.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    mode : {"min", "max"}, default "min"
    factor : float, default 0.1
        ``< 1``, checked before the optimizer, as torch does.
    patience : int, default 10
    threshold : float, default 1e-4
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
    min_lr : float or list of float, default 0
        An entry added later (``optimizer.add_param_group``) gets the one given for all;
        given one per entry, such an entry is refused (torch raises a RuntimeError at the
        next reduction).
    eps : float, default 1e-8
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: list[float] | float = 0, eps: float = 1e-8) -> None:
        factor = _number("factor", factor)
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        _check_optimizer(optimizer)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            default_min_lr = None
            min_lrs = [_number(f"min_lr[{i}]", m) for i, m in enumerate(min_lr)]
        else:
            default_min_lr = _number("min_lr", min_lr)
            min_lrs = [default_min_lr] * len(optimizer.param_groups)
        _check_modes(mode, threshold_mode)
        patience, cooldown = _number("patience", patience), _number("cooldown", cooldown)  # torch compares them
        threshold, eps = _number("threshold", threshold), _number("eps", eps)
        self.factor = factor
        self.optimizer = optimizer
        self.default_min_lr = default_min_lr
        self.min_lrs = min_lrs
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = [_own_lr(optimizer, group, i) for i, group in enumerate(optimizer.param_groups)]
        self._init_is_better(mode=str(mode), threshold=threshold, threshold_mode=str(threshold_mode))
        self._reset()
        optimizer._register_scheduler(self)

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: Any, epoch: Any = None) -> None:  # type: ignore[override]
        """Record one evaluation of the metric; reduce the lrs after a plateau."""
        self._check_entries_known()
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(f"Invalid metrics: {metrics!r} (expected a number)") from None
        except OverflowError:
            raise ValueError(f"Invalid metrics value: {metrics!r:.80} (too large for a float)") from None
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            epoch = _number("epoch", epoch)
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        # torch's bookkeeping, on copies: committed once nothing can fail
        best, bad, cooldown_counter = self.best, self.num_bad_epochs, self.cooldown_counter
        if self._is_better(current, best):
            best, bad = current, 0
        else:
            bad += 1
        if cooldown_counter > 0:
            cooldown_counter -= 1
            bad = 0
        reduce = bad > self.patience
        self.last_epoch = epoch
        self.best, self.num_bad_epochs, self.cooldown_counter = best, bad, cooldown_counter
        if reduce:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _lrs(self.optimizer)

    def _reduce_lr(self, epoch: Any) -> None:
        for i, param_group in enumerate(self.optimizer.param_groups):
            old_lr = float(param_group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                param_group["lr"] = new_lr

    def _repr_state(self) -> list[str]:
        """``last_epoch``, ``last_lr``, the best metric, the bad epochs and cooldown steps counted."""
        state = super()._repr_state()
        if hasattr(self, "best"):
            state += [f"best {_shown(self.best)}", f"num_bad_epochs {self.num_bad_epochs}",
                      f"cooldown_counter {self.cooldown_counter}"]
        return state

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            rel_epsilon = 1.0 - self.threshold
            return a < best * rel_epsilon
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            rel_epsilon = self.threshold + 1.0
            return a > best * rel_epsilon
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        _check_modes(mode, threshold_mode)
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def _checked_state(self, state_dict: Any) -> dict[str, Any]:
        state = super()._checked_state(state_dict)
        _check_modes(state["mode"], state["threshold_mode"])
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        super()._apply_state(state)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)

    def _check_new_entry(self, entry: dict[str, Any]) -> None:
        if self.default_min_lr is None:
            _refuse_new_entry(self, "min_lr")

    def _add_entry(self, entry: dict[str, Any]) -> None:
        """An entry added later: its own lr (unchanged), the ``min_lr`` given for all."""
        self.min_lrs = [*self.min_lrs, self.default_min_lr]
        self._last_lr = [*self._last_lr, _own_lr(self.optimizer, entry, len(self.optimizer.param_groups) - 1)]


def _check_modes(mode: Any, threshold_mode: Any) -> None:
    if not isinstance(mode, str) or mode not in {"min", "max"}:
        # torch: "mode ... is unknown!" (a TypeError from str concatenation for a non-str)
        raise ValueError(f"mode {mode} is unknown!")
    if not isinstance(threshold_mode, str) or threshold_mode not in {"rel", "abs"}:
        raise ValueError(f"threshold mode {threshold_mode} is unknown!")


# --------------------------------------------------------------------------------------
# Cyclical schedules: CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts
# --------------------------------------------------------------------------------------


class CyclicLR(LRScheduler):
    r"""Cycle each entry's lr between ``base_lr`` and ``max_lr`` (and its momentum between
    ``max_momentum`` and ``base_momentum``), the cyclical learning rate policy.

    .. math::
        c = \lfloor 1 + e / (u + d) \rfloor,\quad x = 1 + e / (u + d) - c,\quad
        s = x / r \text{ if } x \le r \text{ else } (x - 1) / (r - 1),\ r = u / (u + d) \\
        \eta = \eta_{base} + (\eta_{max} - \eta_{base}) s \cdot \text{scale}(c \text{ or } e),\quad
        \mu = \mu_{max} - (\mu_{max} - \mu_{base}) s \cdot \text{scale}(\cdot)

    with scale ``1`` (triangular), ``1 / 2**(c - 1)`` (triangular2) or ``gamma**e``
    (exp_range). Mirrors ``torch.optim.lr_scheduler.CyclicLR`` (Smith, "Cyclical Learning
    Rates for Training Neural Networks", 2017), with torch's surprises: momentum cycling is
    on by default, so SGD with ``momentum=0`` gets momentum 0.9, and Adam's ``beta1`` cycles
    0.9 → 0.8; if the entries already have ``initial_lr`` (an earlier scheduler), the
    construction step uses it, not ``base_lr``; ``scale_mode`` other than "cycle" means
    "iterations".

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    base_lr, max_lr : float or list of float
    step_size_up : int, default 2000
        Stricter than torch: must be > 0 (torch divides by zero at construction).
    step_size_down : int, optional
        Defaults to ``step_size_up``; must be >= 0.
    mode : {"triangular", "triangular2", "exp_range"}, default "triangular"
    gamma : float, default 1.0
    scale_fn : callable, optional
        Overrides ``mode``; ``scale_mode`` then says what it is applied to.
    scale_mode : {"cycle", "iterations"}, default "cycle"
    cycle_momentum : bool, default True
    base_momentum, max_momentum : float or list of float, default 0.8, 0.9
    last_epoch : int, default -1

    Notes
    -----
    ``state_dict()`` leaves a plain-function ``scale_fn`` out, as torch does. Unlike torch,
    ``load_state_dict`` does not remove ``_scale_fn_custom`` from the caller's dict (torch's
    does, so loading the same dict twice raises KeyError there). Stricter than torch:
    ``mode`` and ``scale_mode`` must be strings (torch stores anything in its state dict).
    An entry added later (``optimizer.add_param_group``) cycles between ``base_lr`` and
    ``max_lr`` (and the momenta) given for all entries; given one per entry, it is refused.
    """

    _config = ("optimizer", "_scale_fn_ref", "_new_entry")
    _own_checks = ("_scale_fn_custom",)

    def __init__(self, optimizer: Optimizer, base_lr: float | list[float], max_lr: float | list[float],
                 step_size_up: int = 2000, step_size_down: int | None = None, mode: str = "triangular",
                 gamma: float = 1.0, scale_fn: Callable[[float], float] | None = None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum: float = 0.8, max_momentum: float = 0.9,
                 last_epoch: int = -1) -> None:
        # Every check first (torch writes the lrs before checking the rest).
        _check_optimizer(optimizer)
        last_epoch = _check_last_epoch(optimizer, last_epoch)
        base_lrs = _format_param("base_lr", optimizer, base_lr)
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        up = _number("step_size_up", step_size_up)
        down = _number("step_size_down", step_size_down) if step_size_down is not None else up
        if up <= 0:
            raise ValueError(f"Invalid step_size_up value: {step_size_up!r} (must be > 0)")
        if down < 0:
            raise ValueError(f"Invalid step_size_down value: {step_size_down!r} (must be >= 0)")
        if mode not in ["triangular", "triangular2", "exp_range"] and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        for name, value in (("mode", mode), ("scale_mode", scale_mode)):
            if not isinstance(value, str):
                raise TypeError(f"Invalid {name}: {value!r:.80} (expected a str)")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn should be a function, but got {type(scale_fn).__name__}")
        gamma = _number("gamma", gamma)
        if not isinstance(cycle_momentum, bool):
            raise TypeError(f"Invalid cycle_momentum: {cycle_momentum!r} (expected a bool)")
        new_entry = {"base_lr": _scalar("base_lr", base_lr), "max_lr": _scalar("max_lr", max_lr)}
        if cycle_momentum:
            use_beta1 = _check_momentum_support(optimizer)
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            new_entry.update(base_momentum=_scalar("base_momentum", base_momentum),
                             max_momentum=_scalar("max_momentum", max_momentum))
        # Then torch's construction.
        self.optimizer = optimizer
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups, strict=True):
                group["lr"] = lr
        self.max_lrs = max_lrs
        up, down = float(up), float(down)
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode = str(mode)
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = str(scale_mode)
        self._new_entry = new_entry
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = use_beta1
            self.base_momentums = base_momentums
            self.max_momentums = max_momentums
            if last_epoch == -1:
                _materialize(optimizer, "betas" if use_beta1 else "momentum")
                for m_momentum, b_momentum, group in zip(max_momentums, base_momentums, optimizer.param_groups,
                                                         strict=True):
                    _set_momentum(group, use_beta1, m_momentum)
                    group["max_momentum"] = m_momentum
                    group["base_momentum"] = b_momentum
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        if self._scale_fn_custom is not None:
            return
        if self.mode == "triangular":
            self._scale_fn_ref: Callable[[float], float] = self._triangular_scale_fn
            self.scale_mode = "cycle"
        elif self.mode == "triangular2":
            self._scale_fn_ref = self._triangular2_scale_fn
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self._scale_fn_ref = partial(self._exp_range_scale_fn, self.gamma)
            self.scale_mode = "iterations"

    def scale_fn(self, x: Any) -> float:
        """The amplitude's scale at cycle or iteration ``x``."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        return self._scale_fn_ref(x)

    @staticmethod
    def _triangular_scale_fn(x: float) -> float:
        return 1.0

    @staticmethod
    def _triangular2_scale_fn(x: float) -> float:
        return 1 / 2.0 ** (x - 1)

    @staticmethod
    def _exp_range_scale_fn(gamma: float, x: float) -> float:
        return gamma ** x

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        at = cycle if self.scale_mode == "cycle" else self.last_epoch
        lrs = []
        for base_lr, max_lr in zip(self.base_lrs, self.max_lrs, strict=True):
            base_height = (max_lr - base_lr) * scale_factor
            lrs.append(base_lr + base_height * self.scale_fn(at))
        if self.cycle_momentum:
            momentums = []
            for base_momentum, max_momentum in zip(self.base_momentums, self.max_momentums, strict=True):
                base_height = (max_momentum - base_momentum) * scale_factor
                momentums.append(max_momentum - base_height * self.scale_fn(at))
            for group, momentum in zip(self.optimizer.param_groups, momentums, strict=True):
                _set_momentum(group, self.use_beta1, momentum)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        state = {key: value for key, value in super().state_dict().items() if key != "_scale_fn_custom"}
        state["_scale_fn_custom"] = _attributes(self._scale_fn_custom)
        return state

    def _checked_state(self, state_dict: Any) -> dict[str, Any]:
        state = super()._checked_state(state_dict)
        _check_attributes("state_dict['_scale_fn_custom']", state["_scale_fn_custom"], self._scale_fn_custom)
        if self._scale_fn_custom is None and state["mode"] not in ("triangular", "triangular2", "exp_range"):
            raise ValueError(f"Invalid state_dict['mode']: {state['mode']!r:.80} (expected 'triangular', "
                             "'triangular2' or 'exp_range')")
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        fn = state.pop("_scale_fn_custom")
        super()._apply_state(state)
        if fn:
            self._scale_fn_custom.__dict__.update(fn)
        self._init_scale_fn()

    def _check_new_entry(self, entry: dict[str, Any]) -> None:
        for name, value in self._new_entry.items():
            if value is None:
                _refuse_new_entry(self, name)

    def _add_entry(self, entry: dict[str, Any]) -> None:
        """An entry added later: the ``base_lr`` and ``max_lr`` (and momenta) given for all,
        its lr (and momentum) unchanged until the next step."""
        super()._add_entry(entry)
        self.max_lrs = [*self.max_lrs, self._new_entry["max_lr"]]
        if self.cycle_momentum:
            _materialize(self.optimizer, "betas" if self.use_beta1 else "momentum", [entry])
            entry["max_momentum"] = self._new_entry["max_momentum"]
            entry["base_momentum"] = self._new_entry["base_momentum"]
            self.max_momentums = [*self.max_momentums, entry["max_momentum"]]
            self.base_momentums = [*self.base_momentums, entry["base_momentum"]]

    def _new_base_lr(self, entry: dict[str, Any]) -> Any:
        return self._new_entry["base_lr"]


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy: each entry's lr rises from ``max_lr / div_factor`` to ``max_lr``,
    then anneals to ``initial_lr / final_div_factor`` (momentum moves the other way).

    The phases end at ``pct_start * T - 1`` and ``T - 1`` (three_phase: ``pct_start * T - 1``,
    ``2 pct_start * T - 2``, ``T - 1``); within a phase from ``a`` to ``b`` at fraction ``p``:
    cos ``b + (a - b) / 2 * (cos(π p) + 1)``, linear ``(b - a) p + a``.

    Mirrors ``torch.optim.lr_scheduler.OneCycleLR`` (Smith and Topin, "Super-Convergence",
    2017), with its surprises: the first lr with cos is not exactly ``max_lr / div_factor``
    (0.0040000000000000036 for 0.1); the peak is ``max_lr`` exactly only when ``pct_start * T``
    is an integer; step ``T - 1`` gives the minimum and ``total_steps`` steps are allowed, the
    last one extrapolating (cos rises again, linear goes below 0: an optimizer refuses such an
    lr if it is stepped with it); Adam's ``beta1`` starts at ``max_momentum`` 0.95. The
    values ``initial_lr``, ``max_lr``, ``min_lr`` (and momenta) live in the entries, so the
    optimizer's state dict carries them, as in torch.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    max_lr : float or list of float
    total_steps : int, optional
        Or ``epochs * steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
    pct_start : float, default 0.3
        A float in [0, 1] (the ints 0 and 1 are refused, as torch refuses them). Stricter than
        torch: a ``pct_start`` that makes a phase of zero steps which some step falls into is
        refused at construction (torch raises ZeroDivisionError then, e.g. total_steps=10 with
        pct_start=0.1, or pct_start=1.0 at the last step).
    anneal_strategy : {"cos", "linear"}, default "cos"
    cycle_momentum : bool, default True
    base_momentum, max_momentum : float or list of float, default 0.85, 0.95
    div_factor : float, default 25.0
    final_div_factor : float, default 1e4
        Both nonzero (stricter than torch, which divides by them).
    three_phase : bool, default False
    last_epoch : int, default -1

    Notes
    -----
    An entry added later (``optimizer.add_param_group``) keeps its lr as its ``initial_lr``
    (unless it has one) and gets the ``max_lr`` given for all entries, ``min_lr = initial_lr /
    final_div_factor`` and the momenta given for all, unless it carries them; from the next
    step it follows the schedule from them. Given one ``max_lr`` (or momentum) per entry,
    such an entry is refused.
    """

    _config = ("optimizer", "_new_entry")

    def __init__(self, optimizer: Optimizer, max_lr: float | list[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | list[float] = 0.85, max_momentum: float | list[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        last_epoch = _check_last_epoch(optimizer, last_epoch)
        if total_steps is not None:
            if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            total = _integer("total_steps", total_steps)  # fits a float
        elif epochs is not None and steps_per_epoch is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            _integer("epochs", epochs)
            _integer("steps_per_epoch", steps_per_epoch)
            total = _integer("total_steps (epochs * steps_per_epoch)", epochs * steps_per_epoch)
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not (0 <= pct_start <= 1):  # NaN fails the range
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        if not isinstance(three_phase, bool):
            raise TypeError(f"Invalid three_phase: {three_phase!r} (expected a bool)")
        phases = self._phases(total, pct_start, three_phase)
        _check_phases(phases, total, pct_start)
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        div_factor, final_div_factor = _number("div_factor", div_factor), _number("final_div_factor", final_div_factor)
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if value == 0:
                raise ValueError(f"Invalid {name} value: 0 (OneCycleLR divides by it)")
        if not isinstance(cycle_momentum, bool):
            raise TypeError(f"Invalid cycle_momentum: {cycle_momentum!r} (expected a bool)")
        new_entry = {"max_lr": _scalar("max_lr", max_lr), "final_div_factor": final_div_factor}
        if cycle_momentum:
            use_beta1 = _check_momentum_support(optimizer)
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            new_entry.update(max_momentum=_scalar("max_momentum", max_momentum),
                             base_momentum=_scalar("base_momentum", base_momentum))
        # Then torch's construction.
        self.optimizer = optimizer
        self.total_steps = total
        self._schedule_phases = phases
        self._anneal_func_type = str(anneal_strategy)
        self._new_entry = new_entry
        if last_epoch == -1:
            for idx, group in enumerate(self.optimizer.param_groups):
                group["initial_lr"] = max_lrs[idx] / div_factor
                group["max_lr"] = max_lrs[idx]
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = use_beta1
            if last_epoch == -1:
                _materialize(optimizer, "betas" if use_beta1 else "momentum")
                for m_momentum, b_momentum, group in zip(max_momentums, base_momentums, optimizer.param_groups,
                                                         strict=True):
                    _set_momentum(group, use_beta1, m_momentum)
                    group["max_momentum"] = m_momentum
                    group["base_momentum"] = b_momentum
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _phases(total: int, pct_start: float, three_phase: bool) -> list[dict[str, Any]]:
        if three_phase:
            return [
                {"end_step": float(pct_start * total) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": float(2 * pct_start * total) - 2, "start_lr": "max_lr", "end_lr": "initial_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
                {"end_step": total - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"},
            ]
        return [
            {"end_step": float(pct_start * total) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
             "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
            {"end_step": total - 1, "start_lr": "max_lr", "end_lr": "min_lr",
             "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
        ]

    def _anneal_func(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return self._annealing_cos(start, end, pct)
        return self._annealing_linear(start, end, pct)

    @staticmethod
    def _annealing_cos(start: float, end: float, pct: float) -> float:
        """Cosine anneal from ``start`` to ``end`` as ``pct`` goes from 0.0 to 1.0."""
        cos_out = math.cos(math.pi * pct) + 1
        return end + (start - end) / 2.0 * cos_out

    @staticmethod
    def _annealing_linear(start: float, end: float, pct: float) -> float:
        """Linear anneal from ``start`` to ``end`` as ``pct`` goes from 0.0 to 1.0."""
        return (end - start) * pct + start

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        lrs = []
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(f"Tried to step {step_num} times. The specified number of total steps is "
                             f"{self.total_steps}")
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step_num <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step_num - start_step) / (end_step - start_step)
                    computed_lr = self._anneal_func(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        computed_momentum = self._anneal_func(
                            group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                    break
                start_step = phase["end_step"]
            lrs.append(computed_lr)
            if self.cycle_momentum:
                _set_momentum(group, self.use_beta1, computed_momentum)
        return lrs

    def step(self, epoch: int | None = None) -> None:
        """Advance one step; refused, before anything changes, past ``total_steps``."""
        next_epoch = self.last_epoch + 1 if epoch is None else epoch
        if next_epoch > self.total_steps:
            raise ValueError(f"Tried to step {next_epoch} times. The specified number of total steps is "
                             f"{self.total_steps}")
        super().step(epoch)

    def _checked_state(self, state_dict: Any) -> dict[str, Any]:
        state = super()._checked_state(state_dict)
        if state["_anneal_func_type"] not in ("cos", "linear"):
            raise ValueError(f"Invalid state_dict['_anneal_func_type']: {state['_anneal_func_type']!r:.80} "
                             "(expected 'cos' or 'linear')")
        return state

    def _check_new_entry(self, entry: dict[str, Any]) -> None:
        for name, value in self._new_entry.items():
            if value is None:
                _refuse_new_entry(self, name)

    def _add_entry(self, entry: dict[str, Any]) -> None:
        """An entry added later: ``initial_lr`` its lr, and the ``max_lr``, ``min_lr`` and
        momenta of the class docstring, unless it has them."""
        super()._add_entry(entry)
        entry.setdefault("max_lr", self._new_entry["max_lr"])
        entry.setdefault("min_lr", entry["initial_lr"] / self._new_entry["final_div_factor"])
        if self.cycle_momentum:
            _materialize(self.optimizer, "betas" if self.use_beta1 else "momentum", [entry])
            entry.setdefault("max_momentum", self._new_entry["max_momentum"])
            entry.setdefault("base_momentum", self._new_entry["base_momentum"])


def _check_phases(phases: list[dict[str, Any]], total: int, pct_start: float) -> None:
    """Refuse a schedule in which some step 0..total falls in a phase of zero length
    (torch divides by zero there). Phase i is used by the integer steps s with s > end_j for
    every earlier phase j and s <= end_i (any s up to ``total`` for the last phase)."""
    start = 0.0
    lower = 0
    for i, phase in enumerate(phases):
        end = phase["end_step"]
        upper = total if i == len(phases) - 1 else math.floor(end)
        if end - start == 0 and lower <= upper:
            raise ValueError(
                f"pct_start={pct_start} with total_steps={total} makes phase {i + 1} of OneCycleLR zero steps long "
                f"(it ends at step {end} where it starts), which step {lower} falls in: choose another pct_start"
            )
        lower = max(lower, math.floor(end) + 1)
        start = end


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR): restart every ``T_i`` epochs, with
    ``T_0`` first and each period ``T_mult`` times longer.

    .. math::
        \eta = \eta_{min} + \frac{(\eta_{base} - \eta_{min})(1 + \cos(\pi T_{cur} / T_i))}{2}

    Mirrors ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`` (Loshchilov and Hutter,
    "SGDR", 2017). ``step(epoch)`` takes a float epoch (not deprecated). torch's surprises,
    reproduced: it never warns about the step order; with ``T_mult > 1``, ``step(epoch)`` at a
    restart epoch where ``math.log`` comes out just below the integer (T_0=1, T_mult=3, epoch
    121) gives ``eta_min`` instead of the restart value.

    Parameters
    ----------
    optimizer : numpy_optim.Optimizer
    T_0 : int
        First period, a positive int.
    T_mult : int, default 1
    eta_min : float, default 0.0
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        if isinstance(T_0, bool) or not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if isinstance(T_mult, bool) or not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.T_0 = _integer("T_0", T_0)
        self.T_i = self.T_0
        self.T_mult = _integer("T_mult", T_mult)
        self.eta_min = _number("eta_min", eta_min)  # a NumPy float as a float
        self.T_cur = _integer("last_epoch", last_epoch)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        _warn_get_lr_called_within_step(self)
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch: Any = None) -> None:
        """Advance one epoch, or go to epoch ``epoch`` (a float is allowed)."""
        if not self._is_initial:
            self._check_entries_known()
        if epoch is not None:
            epoch = _number("epoch", epoch)
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult**n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = _lrs(self.optimizer)
