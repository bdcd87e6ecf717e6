"""The optimizer base class: parameter entries, shared state, state dicts, validation.

Every optimizer in numpy_optim takes the specification's contract, a list of dicts::

    [{"params": ndarray, "grad": ndarray}, ...]

and updates each ``"params"`` array in place (the very array object the caller passed).
An entry may also carry hyperparameters of its own (``{"params": b, "grad": gb,
"weight_decay": 0.0}``); they override the constructor's for that entry, as torch's
parameter groups do.

The optimizer keeps the caller's dicts, not copies, and reads ``entry["params"]`` and
``entry["grad"]`` at every :meth:`Optimizer.step`, so a model may either write its
gradients into the arrays in place or put new arrays in the dict.

Everything a call could refuse is checked before any array is touched: a refused
``step()`` or ``load_state_dict()`` changes no parameter and no state.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import numbers
import operator
import os
import signal
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

try:
    import _signal  # CPython's C module under signal
except ImportError:  # pragma: no cover (another Python)
    _signal = signal  # type: ignore[no-redef]

from . import _backend, _blocks

Entry = dict[str, Any]


# --------------------------------------------------------------------------------------
# Validation helpers: ValueError for bad values, TypeError for bad types, messages that
# name the argument and the value.
# --------------------------------------------------------------------------------------


def as_float(name: str, value: Any) -> float:
    """``float(value)`` for a real number, with a ValueError naming ``name`` for one too
    large for a float (a huge int: Python's own OverflowError names nothing)."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(
            f"Invalid {name} value: too large for a float (a {type(value).__name__} above 1.8e308)"
        ) from None


def _real(name: str, value: Any) -> float:
    """Return ``value`` as a Python float, refusing bools, non-numbers, NaN and infinity."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Invalid {name}: {value!r} (expected a real number, got {type(value).__name__})")
    value = as_float(name, value)
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name} value: {value!r} (must be finite)")
    return value


def check_nonnegative(name: str, value: Any) -> float:
    """``0 <= value < inf``; returns the value as a Python float."""
    value = _real(name, value)
    if not value >= 0.0:
        raise ValueError(f"Invalid {name} value: {value!r} (must be >= 0)")
    return value


def check_finite(name: str, value: Any) -> float:
    """Any finite real number; returns it as a Python float."""
    return _real(name, value)


def check_bool(name: str, value: Any) -> bool:
    """A real ``bool`` (``np.bool_`` accepted), not a truthy number or string."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Invalid {name}: {value!r} (expected a bool, got {type(value).__name__})")
    return bool(value)


def check_fused(name: str, value: Any) -> bool:
    """A bool, or None (torch's default: not fused), which is False."""
    return False if value is None else check_bool(name, value)


#: The dtypes ``state_dtype`` may name: wider than float16 and bfloat16 parameters.
STATE_DTYPES = ("float32", "float64")


def check_state_dtype(name: str, value: Any) -> str | None:
    """None (the parameters' dtype), or float32 / float64 in any spelling NumPy accepts
    (``np.float32``, ``"float32"``, ``np.dtype("f4")``); returns the dtype's name."""
    if value is None:
        return None
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"Invalid {name}: {value!r} (expected None, np.float32 or np.float64)") from None
    if dtype.name not in STATE_DTYPES or dtype.byteorder == ">":
        raise ValueError(
            f"Invalid {name}: {value!r} ({dtype}; expected None (the parameters' dtype), np.float32 or np.float64)"
        )
    return dtype.name


#: The validators of the options every elementwise optimizer takes beyond torch's.
LOW_PRECISION_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "state_dtype": check_state_dtype,
    "master_weights": lambda name, value: check_bool(name, value),
}


def check_betas(value: Any) -> tuple[float, float]:
    """A pair ``(beta1, beta2)`` with ``0 <= beta < 1`` each."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"Invalid betas: {value!r} (expected a pair (beta1, beta2))")
    betas = []
    for index, beta in enumerate(value):
        beta = _real(f"beta parameter at index {index}", beta)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta!r} (must be 0 <= beta < 1)")
        betas.append(beta)
    return betas[0], betas[1]


def _describe(array: Any) -> str:
    if isinstance(array, np.ndarray):
        return f"ndarray of shape {array.shape} and dtype {array.dtype}"
    return f"{type(array).__name__} {array!r}"


def check_plain_array(where: str, array: np.ndarray) -> None:
    """Refuse an ndarray subclass (``np.matrix``, masked arrays, ``np.memmap``...): its
    operators are not ndarray's (``*`` is a matrix product for ``np.matrix``, a masked
    array's mask is not updated), so the kernels would compute something else or fail
    halfway. ``x.view(np.ndarray)`` is a plain view of the same memory, updated in place."""
    if type(array) is not np.ndarray:
        raise TypeError(
            f"{where} is a {type(array).__module__}.{type(array).__qualname__}, an ndarray subclass; numpy_optim "
            f"takes plain numpy.ndarray only (pass x.view(np.ndarray): the same memory, updated in place)"
        )


def is_half(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is a 16-bit float: float16, or ml_dtypes' bfloat16 (told by its name,
    so that numpy_optim never imports ml_dtypes)."""
    return dtype == np.float16 or (dtype.name == "bfloat16" and dtype.itemsize == 2)


def check_parameter(where: str, param: Any) -> np.ndarray:
    """A writeable floating-point ndarray (float16, bfloat16, float32 or float64)."""
    if not isinstance(param, np.ndarray):
        raise TypeError(f"{where}['params'] must be a numpy.ndarray, got {_describe(param)}")
    check_plain_array(f"{where}['params']", param)
    if not (param.dtype.kind == "f" and param.dtype.itemsize <= 8 or is_half(param.dtype)):
        raise TypeError(
            f"{where}['params'] must have a floating dtype (float16, bfloat16 (ml_dtypes), float32 or "
            f"float64), got {param.dtype}"
        )
    if not param.flags.writeable:
        raise ValueError(f"{where}['params'] is read-only; the optimizer updates it in place")
    return param


def check_gradient(where: str, param: np.ndarray, grad: Any) -> np.ndarray:
    """An ndarray with exactly the parameter's shape and dtype."""
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{where}['grad'] must be a numpy.ndarray, got {_describe(grad)}")
    check_plain_array(f"{where}['grad']", grad)
    if grad.shape != param.shape:
        raise ValueError(f"{where}['grad'] has shape {grad.shape}, but its parameter has shape {param.shape}")
    if grad.dtype != param.dtype:
        raise TypeError(f"{where}['grad'] has dtype {grad.dtype}, but its parameter has dtype {param.dtype}")
    return grad


#: Keys a learning-rate scheduler keeps in an entry, as torch's schedulers keep them in a
#: parameter group (numpy_optim.lr_scheduler, numpy_optim.swa_utils.SWALR). They are not
#: hyperparameters: the optimizer checks that they are finite numbers, carries them in its
#: state dicts, and otherwise ignores them.
SCHEDULER_KEYS = frozenset({"initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum", "swa_lr"})


def check_scheduler_keys(where: str, entry: Mapping[str, Any]) -> dict[str, float]:
    """An entry's :data:`SCHEDULER_KEYS` values, checked (finite real numbers) and as floats."""
    checked = {}
    for name in SCHEDULER_KEYS.intersection(entry):
        try:
            checked[name] = _real(name, entry[name])
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}{error}") from None
    return checked


#: The keys of a state dict (see :meth:`Optimizer.state_dict`).
STATE_DICT_KEYS = frozenset({"class", "step", "defaults", "param_groups", "state", "initial_lrs"})

#: The largest step a state dict may hold: every optimizer raises its betas to the power
#: ``float(step)``, exact up to 2**53.
MAX_STEP = 2**53


def check_state_dict_layout(state_dict: Any, name: str = "state_dict", cls: str | None = None) -> int:
    """Check that ``state_dict`` is a dict with exactly :data:`STATE_DICT_KEYS`, the class
    name ``cls`` (when given) and an int step in ``[0, MAX_STEP]`` (``name`` is the argument
    named in the messages); return the step."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{name} must be a dict, got {type(state_dict).__name__}")
    if set(state_dict) != STATE_DICT_KEYS:
        raise ValueError(f"{name} has keys {sorted(state_dict)}, expected {sorted(STATE_DICT_KEYS)}")
    saved_class = state_dict["class"]
    if not isinstance(saved_class, str):
        raise TypeError(f"Invalid {name}['class']: {saved_class!r:.80} (expected a class name, a str)")
    if cls is not None and saved_class != cls:
        raise ValueError(
            f"{name} is the state of {saved_class}, and this optimizer is {cls} (their hyperparameters and "
            f"buffers mean different things: load it into {saved_class})"
        )
    step = state_dict["step"]
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"Invalid {name}['step']: {step!r:.80} (expected an int >= 0)")
    step = int(step)
    if not 0 <= step <= MAX_STEP:
        shown = repr(step) if abs(step) < 10**30 else f"an int of {len(str(abs(step)))} digits"
        raise ValueError(f"Invalid {name}['step']: {shown} (expected an int in [0, 2**53])")
    return int(step)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold SIGINT while the body runs (main thread only: Python runs signal handlers
    there), then deliver it to the handler it was meant for."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    try:  # (_signal: signal.signal without its enum conversions, 0.8 us a swap instead of 8)
        previous = _signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    except ValueError:  # not the main interpreter
        yield
        return
    if previous is None:  # a handler not installed from Python: leave it alone
        _signal.signal(signal.SIGINT, signal.SIG_DFL)
        yield
        return
    try:
        yield
    finally:
        _signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, received[0])  # default_int_handler raises KeyboardInterrupt
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)


#: ``byte_bounds(array)``: ``(low, high)``, the addresses of an array's first byte and one
#: past its last (a strided array's gaps included).
byte_bounds = getattr(np.lib, "array_utils", np).byte_bounds  # NumPy 2: np.lib.array_utils; 1.26: np


def check_disjoint(entries: list[Entry], state: Mapping[Any, Any]) -> None:
    """Refuse entries that share memory: every array a step writes (parameters, state
    buffers) must overlap no other array of any entry, except an entry's parameter with its
    own gradient (the plain kernel handles that one); gradients, only read, may share.
    Views, reshapes, transposes and overlapping slices of one array are caught, exactly
    (``np.shares_memory``, tried only on arrays whose byte ranges intersect)."""
    arrays: list[np.ndarray] = []
    owners: list[tuple[int, str]] = []  # (entry index, "params" / "grad" / its buffer's name) of each array
    for index, entry in enumerate(entries):
        arrays += (entry["params"], entry["grad"])
        owners += ((index, "params"), (index, "grad"))
        for name, buffer in state.get(index, _NO_BUFFERS).items():
            if isinstance(buffer, np.ndarray):
                arrays.append(buffer)
                owners.append((index, name))
    # Distinct arrays that own their memory (np.empty & co.) cannot overlap: the common case,
    # checked at C speed. Otherwise only arrays sharing a root array that owns its memory,
    # or whose root is some other buffer, go through the exact check.
    if set(map(id, map(_BASE, arrays))) <= {id(None)} and len(set(map(id, arrays))) == len(arrays):
        return
    by_root: dict[int, list[tuple[np.ndarray, int, str]]] = {}
    candidates = []
    for array, (index, name) in zip(arrays, owners):
        if not array.size:
            continue
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        role = f"['{name}']" if name in ("params", "grad") else f": its state buffer {name!r}"
        if root.base is None:
            by_root.setdefault(id(root), []).append((array, index, role))
        else:
            candidates.append((array, index, role))
    candidates += [item for group in by_root.values() if len(group) > 1 for item in group]
    spans = sorted(((*byte_bounds(a), a, i, role) for a, i, role in candidates), key=operator.itemgetter(0))
    open_spans: list[tuple[int, int, np.ndarray, int, str]] = []
    for span in spans:
        low, _, array, index, role = span
        open_spans = [other for other in open_spans if other[1] > low]
        for _, _, other, other_index, other_role in open_spans:
            read_only = role == other_role == "['grad']"
            own = index == other_index and {role, other_role} == {"['params']", "['grad']"}
            if not (read_only or own) and np.shares_memory(array, other):
                first, second = sorted([(other_index, other_role), (index, role)])
                how = "is the same array as" if array is other else "shares memory with"
                raise ValueError(
                    f"params[{second[0]}]{second[1]} {how} params[{first[0]}]{first[1]}: a step would write "
                    f"one through the other (a view, reshape, transpose or overlapping slice); give each entry "
                    f"arrays of its own"
                )
        open_spans.append(span)


# --------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------


class Optimizer:
    """Base class: owns the parameter entries, the state, state dicts and validation.

    A subclass declares its hyperparameters in ``_validators`` (name -> function that
    checks and normalises one value), its per-parameter buffers in :meth:`_buffer_names`
    and checks combinations in :meth:`_check_combination`. An elementwise optimizer
    (sgd.py is the model to copy) then names its two kernels, ``_kernel`` (NumPy) and
    ``_kernel_factory`` (compiled), its ``_buffer_order`` and ``_n_scratch``, and turns
    hyperparameters into one step's flags and constants in :meth:`_scalars`; this class
    does the rest (validation, buffers, grouping, the backends, the reused plan). A
    subclass that overrides :meth:`_update` gets every entry through it, one at a time.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray, <optional hyperparameter overrides>}, ...]``.
        May be empty, in which case :meth:`step` does nothing.
    defaults : dict
        The constructor's hyperparameters, used by every entry that does not override them.

    Attributes
    ----------
    param_groups : list of dict
        The caller's entries themselves (not copies).
    defaults : dict
        Optimizer-wide hyperparameters; a scheduler changes ``defaults["lr"]``.
    state : dict
        ``state["step"]`` is the single optimizer-level step counter (an int, the number
        of completed steps); ``state[i]`` holds entry ``i``'s buffers, named as torch names
        them (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``), and
        exists only once the entry has a buffer.
    """

    _validators: dict[str, Callable[[str, Any], Any]] = {}

    def __init__(self, params: Any, defaults: Mapping[str, Any]) -> None:
        if isinstance(params, dict) or not isinstance(params, (list, tuple)):
            raise TypeError(
                "params must be a list of dicts {'params': ndarray, 'grad': ndarray}, "
                f"got {type(params).__name__}"
            )
        self.defaults = self._check_hyperparameters("", dict(defaults))
        self._check_combination(self.defaults)
        self._default_names = frozenset(self.defaults)  # a step refuses defaults with one deleted
        self.state: dict[Any, Any] = {"step": 0}
        self._plan: _Plan | None = None
        self._lock = threading.RLock()  # one call at a time (see _exclusive)
        self._schedulers: list[weakref.ref[Any]] = []  # told of add_param_group (numpy_optim.lr_scheduler)
        self._created: list[tuple[int, str]] | None = None  # buffers the running step created
        self._wrote = False  # whether the running step has begun writing
        self._pending_scalar_state: list[dict[str, Any]] | None = None  # stored once a step is done
        entries = list(params)
        self._check_entries(entries)
        self.param_groups: list[Entry] = entries
        # Each entry's lr at construction: a scheduler scales entries that carry their own
        # lr by the same factor it applies to the optimizer's lr (see schedulers.py).
        self.initial_lrs: list[float] = [self._hyperparameters(i)["lr"] for i in range(len(entries))]

    def __getstate__(self) -> dict[str, Any]:  # copy.deepcopy and pickle: a lock is neither
        state = self.__dict__.copy()
        state.update(_lock=None, _schedulers=[], _plan=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.RLock())

    def __repr__(self) -> str:
        """One line: the class, the optimizer-wide hyperparameters (:attr:`defaults`), the
        number of entries (and of those with hyperparameters of their own) and the step count::

            Adam(lr=0.001, betas=(0.9, 0.999), ...; 3 entries (1 with overrides), step 0)

        Arrays are never printed (an array put into ``defaults`` shows as its shape and dtype).
        """

        def shown(value: Any) -> str:
            if isinstance(value, np.ndarray):
                return f"<ndarray {value.shape} {value.dtype}>"
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, tuple):
                return f"({', '.join(map(shown, value))}{',' if len(value) == 1 else ''})"
            if isinstance(value, list):
                return f"[{', '.join(map(shown, value))}]"
            return repr(value)

        defaults = getattr(self, "defaults", {})  # (getattr: a repr while __init__ fails)
        entries = getattr(self, "param_groups", [])
        hyper = ", ".join(f"{name}={shown(value)}" for name, value in defaults.items()
                          if not (name in _QUIET_DEFAULTS and value is _QUIET_DEFAULTS[name]))
        count = f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}"
        overriding = sum(isinstance(e, dict) and any(k not in _NOT_HYPERPARAMETERS for k in e) for e in entries)
        if overriding:
            count += f" ({overriding} with overrides)"
        step = getattr(self, "state", {}).get("step")
        return f"{type(self).__name__}({hyper}; {count}, step {step})"

    @contextlib.contextmanager
    def _exclusive(self, call: str, hold_sigint: bool = True) -> Iterator[None]:
        """Run ``call`` (step, load_state_dict...) alone: a second thread entering any of them
        while it runs gets a RuntimeError (the two would interleave their writes into the same
        arrays: different results, silently). In the main thread, a SIGINT (Ctrl-C) that
        arrives meanwhile is held until the call has finished, then delivered: a step is never
        left half done by a KeyboardInterrupt, and no worker thread writes after it returns."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(
                f"{type(self).__name__}.{call}() was called while another thread is in a call of this optimizer "
                f"(step, load_state_dict, state_dict or add_param_group): one optimizer is not stepped from "
                f"two threads at once; serialize the calls, or give each thread its own optimizer"
            )
        try:
            with _sigint_held() if hold_sigint else contextlib.nullcontext():
                yield
        finally:
            self._lock.release()

    # ----- hyperparameters --------------------------------------------------------------

    @property
    def lr(self) -> float:
        """The optimizer-wide learning rate (entries may override it)."""
        return float(self.defaults["lr"])

    @lr.setter
    def lr(self, value: Any) -> None:
        self.defaults["lr"] = check_nonnegative("lr", value)

    def _check_hyperparameters(self, where: str, values: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise a dict of hyperparameters (all, or an entry's overrides)."""
        checked = {}
        for name, value in values.items():
            if name not in self._validators:
                raise ValueError(
                    f"{where}Unknown hyperparameter {name!r} for {type(self).__name__}; "
                    f"expected one of {sorted(self._validators)}"
                )
            try:
                checked[name] = self._validators[name](name, value)
            except (TypeError, ValueError) as error:
                raise type(error)(f"{where}{error}") from None
        return checked

    def _hyperparameters(self, index: int) -> dict[str, Any]:
        """Entry ``index``'s effective hyperparameters: defaults overlaid by its overrides."""
        return self._resolve(self.param_groups[index], f"params[{index}]: ")

    def _check_overrides(self, where: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        """An entry's hyperparameter overrides, checked. The lr of an entry a scheduler drives
        (one holding ``initial_lr``) may be any finite number: torch steps with whatever its
        scheduler writes, and some of torch's schedules end a hair below 0 (LinearLR to 0
        reaches -4.7e-18); every other lr is checked by the optimizer's own rule."""
        overrides = {k: v for k, v in entry.items() if k not in _NOT_HYPERPARAMETERS}
        scheduled = "initial_lr" in entry and "lr" in overrides
        lr = overrides.pop("lr") if scheduled else None
        checked = self._check_hyperparameters(where, overrides)
        if scheduled:
            try:
                checked["lr"] = check_finite("lr", lr)
            except (TypeError, ValueError) as error:
                raise type(error)(f"{where}{error}") from None
        return checked

    def _resolve(self, entry: Entry | None, where: str, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        overrides = self._check_overrides(where, entry or {})
        merged = {**(self.defaults if defaults is None else defaults), **overrides}
        try:
            self._check_combination(merged)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}{error}") from None
        return merged

    def _check_combination(self, hyperparameters: dict[str, Any]) -> None:
        """Checks that involve several hyperparameters (e.g. Nesterov needs momentum)."""

    # ----- entries ----------------------------------------------------------------------

    def _check_entries(self, entries: list[Any]) -> list[dict[str, Any]]:
        """Validate every entry (arrays, overrides, buffers); return effective hyperparameters."""
        # ``defaults`` is a public dict (a caller may set ``defaults["lr"]`` as in torch's
        # ``param_groups[0]["lr"]``): re-check it too, so a bad value is refused up front.
        defaults = self._checked_defaults()
        resolved = []
        for index, entry in enumerate(entries):
            where = f"params[{index}]"
            if not isinstance(entry, dict):
                raise TypeError(
                    f"{where} must be a dict {{'params': ndarray, 'grad': ndarray}}, "
                    f"got {type(entry).__name__}"
                )
            for key in ("params", "grad"):
                if key not in entry:
                    raise ValueError(f"{where} has no {key!r} key; every entry needs 'params' and 'grad'")
            param = check_parameter(where, entry["params"])
            check_gradient(where, param, entry["grad"])
            hyper = self._resolve(entry, f"{where}: ", defaults)
            try:
                self._check_dtype(hyper, param.dtype)
            except (TypeError, ValueError) as error:
                raise type(error)(f"{where}: {error}") from None
            check_scheduler_keys(f"{where}: ", entry)
            for name, buffer in self.state.get(index, {}).items():
                if isinstance(buffer, np.ndarray):
                    check_plain_array(f"{where}: its state buffer {name!r}", buffer)
                    if not buffer.flags.writeable:
                        raise ValueError(f"{where}: its state buffer {name!r} is read-only; the optimizer updates it")
                shape, dtype = self._buffer_layout(name, param, hyper)
                if buffer.shape != shape or buffer.dtype != dtype:
                    raise ValueError(
                        f"{where}['params'] has shape {param.shape} and dtype {param.dtype}, so its state "
                        f"buffer {name!r} must have shape {shape} and dtype {dtype}, got shape {buffer.shape} "
                        f"and dtype {buffer.dtype}"
                    )
            resolved.append(hyper)
        check_disjoint(entries, self.state)
        for index, (entry, hyper) in enumerate(zip(entries, resolved)):
            dtype = entry["params"].dtype  # eps is added in the state's dtype (fused: in float32 opmath)
            eps_dtype = self._compute_dtype(hyper, dtype) if hyper.get("fused") else state_dtype_of(hyper, dtype)
            _warn_if_eps_underflows(f"params[{index}]", hyper, eps_dtype)
        return resolved

    def _checked_defaults(self) -> dict[str, Any]:
        """``defaults`` checked (a caller may change it, as torch's ``param_groups[0]``): every
        value valid, and no name deleted or added."""
        if not isinstance(self.defaults, dict):
            raise TypeError(f"defaults must be a dict, got {type(self.defaults).__name__}")
        missing = self._default_names - set(self.defaults)
        if missing:
            raise ValueError(
                f"defaults has no {sorted(missing)}: a hyperparameter was deleted from {type(self).__name__}"
                f".defaults (it needs all of {sorted(self._default_names)})"
            )
        return self._check_hyperparameters("defaults: ", self.defaults)

    # ----- the public interface ---------------------------------------------------------

    def step(self) -> None:
        """Update every parameter in place from its gradient (one optimizer step).

        All or nothing for the optimizer's bookkeeping: every check and every new state
        buffer comes before the first write, and the step counter and scalar state advance
        only once every entry has been updated. If the update itself fails, the step
        counter, the scalar state and the set of state buffers are left as they were (the
        buffers it created are dropped, so ``state_dict()`` still loads back) and the error
        carries a note naming the entry. Under ``np.errstate(all="raise")`` (or ``"call"``)
        it is all or nothing for the arrays too: the step first copies every parameter and
        buffer, and a FloatingPointError puts them back. A SIGINT is held until the step is
        done (see :meth:`_exclusive`).
        """
        with self._exclusive("step"):
            compiled = _backend.compiled() if self._elementwise() else None  # may refuse: before anything
            if self.state["step"] >= MAX_STEP:
                raise ValueError(f"{type(self).__name__} has taken 2**53 steps, the most a state dict holds")
            self._adopt_appended()
            self._created = []
            try:
                work = self._prepare(compiled)  # every check and every new buffer, before any write
                step = self.state["step"] + 1
                saved = self._copies() if _backend.errors_raise() else None
                try:
                    self._run(work, step, compiled)
                except BaseException as error:
                    if saved is not None:
                        for array, copy in saved:
                            np.copyto(array, copy)
                    error.add_note(
                        f"numpy_optim: {type(self).__name__}.step() was undone: "
                        + ("no parameter or state buffer changed" if saved is not None or not self._wrote else
                           "the step counter and the set of state buffers are unchanged, but the parameters "
                           "and buffers of the entries it updated before the failure are partly updated")
                    )
                    raise
                self._commit_scalar_state()
                self.state["step"] = step
            except BaseException:
                for index, name in self._created:  # (a failed step adds no buffer)
                    buffers = self.state.get(index, {})
                    buffers.pop(name, None)
                    if not buffers:
                        self.state.pop(index, None)
                self._pending_scalar_state = None
                self._plan = None
                raise
            finally:
                self._created = None

    def _copies(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every parameter and state buffer with a copy of its contents (to undo a step)."""
        arrays = [entry["params"] for entry in self.param_groups]
        arrays += [buffer for index, buffers in self.state.items() if index != "step" for buffer in
                   (buffers.values() if isinstance(buffers, dict) else ()) if isinstance(buffer, np.ndarray)]
        return [(array, array.copy()) for array in arrays]

    def add_param_group(self, param_group: Any) -> None:
        """Add an entry ``{"params": ndarray, "grad": ndarray, <overrides>}``, as torch's
        ``Optimizer.add_param_group`` adds a parameter group.

        It is checked as the constructor checks its entries (arrays, hyperparameters, no
        memory shared with the other entries), and every scheduler of this optimizer checks
        that it can schedule it; then it is appended, its lr joins :attr:`initial_lrs`, and
        the schedulers take it on (numpy_optim.lr_scheduler: its ``initial_lr`` is its lr,
        and from their next step they compute its lr as for the other entries). State dicts
        then have one more entry. A refused call changes nothing.
        """
        with self._exclusive("add_param_group"):
            entries = [*self.param_groups, param_group]
            hyper = self._check_entries(entries)[-1]
            self._check_can_add("add_param_group")
            schedulers = [s for s in (ref() for ref in self._schedulers) if s is not None]
            for scheduler in schedulers:
                scheduler._check_new_entry(param_group)
            self.param_groups.append(param_group)
            self.initial_lrs.append(hyper["lr"])
            self._plan = None
            for scheduler in schedulers:
                scheduler._add_entry(param_group)

    def _adopt_appended(self) -> None:
        """Entries appended to :attr:`param_groups` directly (torch allows it): checked, and
        their lrs added to :attr:`initial_lrs`, as :meth:`add_param_group` does (but the
        schedulers are not told: they refuse to step until they are)."""
        if len(self.initial_lrs) < len(self.param_groups):
            hyperparameters = self._check_entries(self.param_groups)
            self._check_can_add("an entry appended to param_groups")
            self.initial_lrs.extend(hyper["lr"] for hyper in hyperparameters[len(self.initial_lrs):])

    #: Whether the update depends on the step count (bias corrections, decays): then an entry
    #: added after the first step would take the step count of the others, where torch's
    #: new group starts at step 1 (torch counts steps per parameter, numpy_optim per
    #: optimizer), so that is refused.
    _counts_steps = False

    def _check_can_add(self, what: str) -> None:
        if self._counts_steps and self.state["step"] > 0:
            raise ValueError(
                f"{what}: {type(self).__name__} counts its steps per optimizer (state['step'] = "
                f"{self.state['step']}), so a new entry would take the bias corrections of step "
                f"{self.state['step'] + 1}, where torch's new group starts at step 1; add entries before the first "
                f"step, or give them an optimizer of their own"
            )

    def _register_scheduler(self, scheduler: Any) -> None:
        """Tell ``scheduler`` (weakly referenced) of every later :meth:`add_param_group`."""
        self._schedulers = [ref for ref in self._schedulers if ref() is not None] + [weakref.ref(scheduler)]

    # ----- elementwise optimizers: one kernel applied to (param, grad, buffers) ----------
    #
    # An elementwise optimizer (sgd.py is the model to copy) sets ``_kernel`` (the NumPy
    # kernel, ``kernel(arrays, scratch, k)``), ``_kernel_factory`` (its compiled twin,
    # ``factory(*flags)``), ``_n_scratch`` (the work arrays its NumPy kernel needs) and
    # ``_buffer_order`` (its buffer names in kernel order), and implements ``_scalars``.
    # The base class validates, groups entries with equal hyperparameters and dtype, and
    # runs each group on the active backend (numpy_optim/_backend.py). Overriding
    # ``_update`` (one entry at a time) is honoured: every entry then goes through it.

    _kernel: Callable[[list[np.ndarray], list[np.ndarray], Any], None] | None = None
    _kernel_factory: Callable[..., Callable[..., None]] | None = None
    _n_scratch = 0
    _buffer_order: tuple[str, ...] = ()

    # Per-entry scalar state (ASGD's ``eta`` and ``mu``, NAdam's ``mu_product``): 0-d
    # float32 arrays, as torch keeps them (0-d tensors of its default float32 dtype, so
    # float64 parameters too see float32 values). An optimizer that has some names them
    # in ``_scalar_state`` and implements :meth:`_step_scalar_state`; their values of the
    # step reach :meth:`_scalars` as ``hyper[name]`` and group the entries, and the new
    # values are stored once every entry has been updated.
    _scalar_state: tuple[str, ...] = ()

    def _step_scalar_state(
        self, hyper: dict[str, Any], step: int, stored: dict[str, float] | None,
    ) -> tuple[dict[str, float], dict[str, float]]:
        """``(used, new)``: the scalar state step ``step`` uses, and what to store after it
        (float32 values as Python floats). ``stored`` is None before the entry's first step."""
        raise NotImplementedError(f"{type(self).__name__} must implement _step_scalar_state")

    def _buffer_fill(self, name: str, hyper: dict[str, Any]) -> float:
        """The value a new buffer starts at (zeros unless an optimizer says otherwise:
        Adagrad's ``sum`` starts at ``initial_accumulator_value``, Rprop's ``step_size`` at ``lr``)."""
        return 0.0

    @classmethod
    def _buffer_layout(
        cls, name: str, param: Any, hyper: Mapping[str, Any] | None = None,
    ) -> tuple[tuple[int, ...], np.dtype]:
        """The shape and dtype state buffer ``name`` of an entry with parameter ``param`` has
        (``param``: anything with a ``shape`` and a ``dtype``; ``hyper``: the entry's
        hyperparameters, whose ``state_dtype`` and ``master_weights`` set the dtype)."""
        if name in cls._scalar_state:
            return (), np.dtype(np.float32)
        if name == "master_param":
            return param.shape, np.dtype(np.float32)
        return param.shape, state_dtype_of(hyper or {}, param.dtype)

    # ----- low precision: which dtype an entry's state is kept and computed in -----------

    def _check_dtype(self, hyper: Mapping[str, Any], dtype: np.dtype) -> None:
        """Refuse the options that do not fit parameters of ``dtype`` (a ValueError that says
        why): master weights for float32 / float64 parameters, or with float64 state, and a
        ``state_dtype`` narrower than the parameters."""
        state_dtype, master = hyper.get("state_dtype"), hyper.get("master_weights", False)
        if master and not is_half(dtype):
            raise ValueError(
                f"master_weights=True keeps a float32 master copy of float16 / bfloat16 parameters, and these are "
                f"{dtype} (they are their own master copy): drop master_weights"
            )
        if master and state_dtype == "float64":
            raise ValueError(
                "master_weights=True updates a float32 master copy with float32 state; state_dtype='float64' "
                "does not fit it (use state_dtype=None or np.float32)"
            )
        if state_dtype is not None and np.dtype(state_dtype).itemsize < dtype.itemsize:
            raise ValueError(
                f"state_dtype={state_dtype!r} is narrower than the parameters ({dtype}); state_dtype keeps the "
                f"state wider than float16 / bfloat16 parameters, never narrower"
            )

    def _compute_dtype(self, hyper: Mapping[str, Any], dtype: np.dtype) -> np.dtype:
        """The dtype an entry with parameters of ``dtype`` is updated in: the state's (float32
        with master weights), and torch's float32 "opmath" for ``fused=True`` on float16 /
        bfloat16 parameters (whose state stays in their dtype)."""
        state = state_dtype_of(hyper, dtype)
        if state == dtype and is_half(dtype) and (hyper.get("fused") or self._half_opmath):
            return np.dtype(np.float32)
        return state

    #: Whether the single-tensor kernels follow torch's half ops on float16 / bfloat16
    #: parameters (float32 copies, each op's result rounded to half: their step tuple has
    #: ``float16`` and ``bfloat16`` flags). Without it a half entry runs NumPy's own half
    #: arithmetic (each ufunc rounds to half, its scalars rounded to half first).
    _half_opmath = False
    #: Whether the compiled kernels round to half too (SGD, Adam, AdamW, Adagrad); the
    #: others' half entries take their NumPy kernel on the numba backend.
    _half_compiled = False

    def _kernels(self, hyper: Mapping[str, Any]) -> tuple[Any, Any, int]:
        """``(NumPy kernel, compiled kernel factory, work arrays)`` of an entry: the fused
        ones for ``fused=True`` (SGD, Adam, AdamW, Adagrad), else the single-tensor ones."""
        if hyper.get("fused"):
            return self._fused_kernel, self._fused_kernel_factory, self._fused_n_scratch
        return self._kernel, self._kernel_factory, self._n_scratch

    #: The fused kernels (torch's ``fused=True`` arithmetic), where an optimizer has them.
    _fused_kernel: Any = None
    _fused_kernel_factory: Any = None
    _fused_n_scratch = 0

    def _fused_scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype,
                       half: np.dtype | None) -> tuple[Any, ...]:
        """The fused kernels' ``k`` (as :meth:`_scalars`; ``half``: the parameters' dtype when
        it is float16 / bfloat16, whose step computes in float32)."""
        raise NotImplementedError(f"{type(self).__name__} has no fused kernels")

    def _prepare_scalar_state(self, hyperparameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each entry's hyperparameters with its scalar state of the coming step added (and
        the values to store after it kept for :meth:`_commit_scalar_state`, in 0-d arrays
        made now, before the first write)."""
        step = self.state["step"] + 1
        pending, result = [], []
        for index, hyper in enumerate(hyperparameters):
            buffers = self.state.get(index, {})
            stored = {name: float(buffers[name]) for name in self._scalar_state} if self._scalar_state[0] in buffers \
                else None
            used, new = self._step_scalar_state(hyper, step, stored)
            # (a buffer the entry has not got yet: made now, before the first write)
            pending.append({name: np.array(value, np.float32) if name not in buffers else value
                            for name, value in new.items()})
            result.append({**hyper, **used})
        self._pending_scalar_state = pending
        return result

    def _commit_scalar_state(self) -> None:
        pending = self._pending_scalar_state
        if not pending:
            return
        self._pending_scalar_state = None
        for index, values in enumerate(pending):
            buffers = self.state.setdefault(index, {})
            for name, value in values.items():
                if name in buffers:
                    buffers[name][...] = value
                else:
                    buffers[name] = value

    def _scalars(self, hyper: dict[str, Any], step: int, first: bool, dtype: np.dtype) -> tuple[Any, ...]:
        """The NamedTuple ``k`` both kernels read for one step of one group: its bool fields
        are the compiled kernel's flags (in order), its float fields the constants (in
        order, cast to the arrays' dtype). ``first``: the buffers were created this step."""
        raise NotImplementedError(f"{type(self).__name__} must implement _scalars")

    def _buffers(self, index: int, param: np.ndarray, hyper: dict[str, Any]) -> tuple[tuple[np.ndarray, ...], bool]:
        """Entry ``index``'s buffers in kernel order (created as zeros if missing), and
        whether any was created now."""
        buffers, first = [], False
        for name in self._kernel_buffers(hyper):
            buffer, created = self._buffer(index, name, param, hyper)
            buffers.append(buffer)
            first = first or created
        if hyper.get("master_weights"):
            first = self._buffer(index, "master_param", param, hyper)[1] or first
        return tuple(buffers), first

    def _kernel_buffers(self, hyper: dict[str, Any]) -> tuple[str, ...]:
        """The names of the buffers an entry with these hyperparameters passes to the kernels."""
        used = self._buffer_names(hyper)
        return tuple(name for name in self._buffer_order if name in used)

    def _update(self, index: int, param: np.ndarray, grad: np.ndarray, hyper: dict[str, Any], step: int) -> None:
        """One entry, through the NumPy kernel on its whole arrays."""
        buffers, first = self._buffers(index, param, hyper)
        self._whole((param, grad, *buffers), self._scalars(hyper, step, first, param.dtype))

    def _whole(self, arrays: tuple[np.ndarray, ...], k: Any, scratch: list[np.ndarray] | None = None) -> None:
        assert self._kernel is not None, f"{type(self).__name__} has no _kernel"
        param = arrays[0]
        if scratch is None:
            scratch = _blocks.whole_scratch(param.shape, param.dtype, self._n_scratch)
        self._kernel(list(arrays), scratch, k)

    def _elementwise(self) -> bool:
        return self._kernel is not None and type(self)._update is Optimizer._update

    def _prepare(self, compiled: Any) -> Any:
        """Validate everything and create missing buffers; return what :meth:`_run` needs.

        For elementwise optimizers that is the groups of entries that share one kernel
        call. A :class:`_Plan` of the step is kept and reused while every entry holds the
        same arrays (same objects, shapes, dtypes and flags), the same number of keys and
        the same state buffers; hyperparameters are checked at every step, and entries
        that carry their own are regrouped by them.
        """
        if not self._elementwise():
            hyperparameters = self._check_entries(self.param_groups)
            return self._prepare_scalar_state(hyperparameters) if self._scalar_state else hyperparameters
        work = self._prepare_from_plan(compiled) if self._plan is not None else None
        if work is not None:
            return work
        hyperparameters = self._check_entries(self.param_groups)
        if self._scalar_state:
            hyperparameters = self._prepare_scalar_state(hyperparameters)
        arrays, firsts = [], []
        for index, (entry, hyper) in enumerate(zip(self.param_groups, hyperparameters)):
            buffers, first = self._buffers(index, entry["params"], hyper)
            arrays.append((entry["params"], entry["grad"], *buffers))
            firsts.append(first)
        # A step that creates buffers changes the state (and SGD's first step differs from
        # the next one): plan from the next step on.
        # An entry's scalar state is part of its group's constants: no plan (its groups) then.
        plan = self._plan = None if any(firsts) or self._scalar_state else _Plan(self, arrays, hyperparameters)
        blockable = plan.blockable if plan is not None else [_blocks.blockable(items) for items in arrays]
        groups: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        whole = []
        for index, (entry, hyper, items, first) in enumerate(zip(self.param_groups, hyperparameters, arrays, firsts)):
            if blockable[index]:
                # (hyper, first, arrays, address rows: the plan's, or None to read them at the call, cuts)
                scalar_state = tuple(hyper[name] for name in self._scalar_state)
                group = groups.setdefault(
                    _blocks.group_key(entry, hyper, first, scalar_state),
                    (hyper, first, [], [] if plan is not None else None, None),
                )
                group[2].append(items)
                if plan is not None:
                    group[3].append(plan.rows[index])
            else:
                whole.append((items, hyper, first))
        return list(groups.values()), whole

    def _prepare_from_plan(self, compiled: Any) -> Any:
        """:meth:`_prepare` through the kept plan, or None when it no longer holds."""
        plan = self._plan
        assert plan is not None
        arrays = plan.arrays(self, compiled.address if compiled is not None else None)
        if arrays is None:
            return None
        defaults = self._checked_defaults()
        # Entries without overrides: the defaults, checked once (with the first one's name).
        plain = self._resolve(self.param_groups[plan.plain[0]], f"params[{plan.plain[0]}]: ", defaults) \
            if plan.plain else defaults
        if plan.plain and self._kernel_buffers(plain) != plan.names[plan.plain[0]]:
            return None  # the defaults changed which buffers the entries have
        groups = [
            (plain, False, [arrays[i] for i in indices], table, parts)
            for indices, table, parts in zip(plan.plain_groups, plan.tables, plan.parts)
        ]
        whole = [(arrays[i], plain, False) for i in plan.plain_whole]
        regrouped: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        # Entries with the same overrides (a scheduler gives them all the same lr) are resolved once.
        resolved: dict[tuple[Any, ...], tuple[dict[str, Any], tuple[str, ...], tuple[Any, ...]]] = {}
        for index in plan.overriding:
            entry = self.param_groups[index]
            memo_key = (entry["params"].dtype, _overrides_key(entry))  # the group key holds the dtype
            if memo_key in resolved:
                hyper, names, key = resolved[memo_key]
            else:
                hyper = self._resolve(entry, f"params[{index}]: ", defaults)
                names, key = self._kernel_buffers(hyper), _blocks.group_key(entry, hyper, False)
                resolved[memo_key] = hyper, names, key
            if names != plan.names[index]:
                return None  # its hyperparameters changed which buffers the entry has
            if plan.blockable[index]:
                group = regrouped.setdefault(key, (hyper, False, [], [], None))
                group[2].append(arrays[index])
                group[3].append(plan.rows[index])
            else:
                whole.append((arrays[index], hyper, False))
        return groups + list(regrouped.values()), whole

    def _run(self, work: Any, step: int, compiled: Any) -> None:
        """Apply the update (``work`` from :meth:`_prepare`; ``compiled``: the numba
        backend's module, or None for NumPy). An error gets a note naming its entry."""
        if not self._elementwise():
            self._wrote = True  # (its _update may write at once)
            for index, (entry, hyper) in enumerate(zip(self.param_groups, work)):
                with self._naming([entry["params"]]):
                    self._update(index, entry["params"], entry["grad"], hyper, step)
            return
        groups, whole = work
        raising = _backend.errors_raise()
        if raising:  # only NumPy raises FloatingPointError; one entry at a time, to name it
            compiled = None
            groups = [(hyper, first, [items], None, None) for hyper, first, group, _, _ in groups for items in group]
        # Everything the calls need (constants, address tables, work arrays, the wider copies
        # of low-precision entries) is made before the first write, so that an allocation that
        # fails changes nothing.
        self._wrote = False
        calls: list[tuple[list[np.ndarray], Callable[[], None]]] = []
        plain_whole = []
        for items, hyper, first in whole:
            if self._compute_dtype(hyper, items[0].dtype) == items[0].dtype and not hyper.get("fused"):
                plain_whole.append((items, hyper, first))
            else:  # through C-contiguous copies: a group of one
                groups = [*groups, (hyper, first, [items], None, None)]
        sizes: dict[np.dtype, int] = {}
        for items, _, _ in plain_whole:
            sizes[items[0].dtype] = max(sizes.get(items[0].dtype, 0), items[0].size)
        scratch = {dtype: _blocks.whole_scratch((size,), dtype, self._n_scratch) for dtype, size in sizes.items()}
        for items, hyper, first in plain_whole:
            param = items[0]
            rows = [row[: param.size].reshape(param.shape) for row in scratch[param.dtype]]
            with self._naming([param]):
                k = self._scalars(hyper, step, first, param.dtype)
            calls.append(([param], functools.partial(self._whole, items, k, rows)))
        for hyper, first, items, rows, parts in groups:
            params = [arrays[0] for arrays in items]
            with self._naming(params):
                call = self._group_call(hyper, first, items, rows, parts, step, compiled)
            calls.append((params, call))
        self._wrote = True
        for params, call in calls:
            with self._naming(params):
                call()

    def _group_call(
        self, hyper: dict[str, Any], first: bool, items: list[tuple[np.ndarray, ...]], rows: Any, parts: Any,
        step: int, compiled: Any,
    ) -> Callable[[], None]:
        """The call that updates one group of entries (equal hyperparameters and dtype), with
        everything it needs made now. An entry computed in another dtype than its parameters'
        (``state_dtype``, master weights, ``fused=True`` on float16 / bfloat16) goes through
        C-contiguous copies in that dtype, which the call rounds back once updated (the master
        copy, a state buffer, is updated in place)."""
        storage = items[0][0].dtype
        dtype = self._compute_dtype(hyper, storage)
        fused = bool(hyper.get("fused"))
        back: list[tuple[np.ndarray, np.ndarray]] = []  # (array, its copy): rounded back after the kernel
        if dtype != storage or (fused and not all(map(_blocks.blockable, items))):
            indices = self._indices(items) if hyper.get("master_weights") else [None] * len(items)
            widened = []
            for index, arrays in zip(indices, items):
                copies = []
                for position, array in enumerate(arrays):
                    if position == 0 and index is not None:  # the master copy, updated in place
                        copy = self.state[index]["master_param"].reshape(-1)
                        back.append((array, copy))
                    elif position > 1 and array.dtype == dtype and array.flags.c_contiguous:
                        copy = array.reshape(-1)  # a state buffer kept in the compute dtype: in place
                    else:
                        copy = np.array(array, dtype=dtype, order="C").reshape(-1)  # a fresh copy
                        if position != 1:  # (the gradient is only read)
                            back.append((array, copy))
                    copies.append(copy)
                widened.append(tuple(copies))
            items, rows, parts = widened, None, None
        kernel, factory, n_scratch = self._kernels(hyper)
        if fused:
            k = self._fused_scalars(hyper, step, first, dtype, storage if is_half(storage) else None)
        else:
            k = self._scalars(hyper, step, first, dtype)
        half_ops = not fused and is_half(storage) and dtype != storage and state_dtype_of(hyper, storage) == storage
        if half_ops:  # torch's half ops on float32 copies: every op's result rounded to half
            k = k._replace(**{storage.name: True})  # type: ignore[attr-defined]  # (a NamedTuple)
            if not self._half_compiled:
                factory = None  # (its compiled kernel does not round to half: the NumPy kernel)
        if compiled is not None and factory is not None and _backend.covers(items[0]):
            flags = tuple(value for value in k if isinstance(value, bool))
            constants = np.array([value for value in k if not isinstance(value, bool)], dtype)
            if rows is None:  # no plan: the addresses from the arrays themselves
                arity = 2 + len(self._buffer_order)
                table = np.array([_blocks.table_row(arrays, arity) for arrays in items], np.int64)
            else:
                table = rows if isinstance(rows, np.ndarray) else np.array(rows, np.int64)
            update = functools.partial(_blocks.run_compiled, compiled.kernel(factory, flags), table, constants, parts)
        else:
            assert kernel is not None
            _blocks.reserve(items, n_scratch)  # the calling thread's work rows
            written = tuple(i for i in range(len(items[0])) if i != 1)  # all but the gradient
            update = functools.partial(_blocks.run, kernel, items, k, written=written, n_scratch=n_scratch,
                                       aligned=fused or half_ops)
        if not back:
            return update

        def update_and_round_back(copies: list[tuple[np.ndarray, ...]] = items) -> None:
            # (``copies``: kept alive while the call exists; the compiled table holds only addresses)
            update()
            for array, copy in back:
                np.copyto(array, copy.reshape(array.shape), casting="unsafe")  # rounded to nearest, ties to even

        return update_and_round_back

    def _indices(self, items: list[tuple[np.ndarray, ...]]) -> list[int]:
        """The entry indices of a group's arrays (found by their parameters)."""
        where = {id(entry["params"]): index for index, entry in enumerate(self.param_groups)}
        return [where[id(arrays[0])] for arrays in items]

    @contextlib.contextmanager
    def _naming(self, params: list[np.ndarray]) -> Iterator[None]:
        """Add a note naming the entries of ``params`` to an error raised in the body."""
        try:
            yield
        except BaseException as error:
            ids = {id(param) for param in params}
            indices = [i for i, entry in enumerate(self.param_groups) if id(entry["params"]) in ids]
            named = f"params[{indices[0]}]" if len(indices) == 1 else f"one of params{indices}"
            error.add_note(f"numpy_optim: {type(self).__name__}.step() failed while updating {named}")
            raise

    def _buffer(
        self, index: int, name: str, like: np.ndarray, hyper: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, bool]:
        """Entry ``index``'s buffer ``name``, created at its fill value (zeros unless the
        optimizer says otherwise) if missing; ``(buffer, created)``. ``hyper``: the entry's
        hyperparameters, when the caller has resolved them already."""
        buffers = self.state.get(index, _NO_BUFFERS)
        created = name not in buffers
        if created:
            hyper = hyper if hyper is not None else self._hyperparameters(index)
            fill = self._buffer_fill(name, hyper)
            shape, dtype = self._buffer_layout(name, like, hyper)
            if name == "master_param":
                buffer = like.astype(dtype)  # exact: float16 and bfloat16 widen to float32 exactly
            else:
                # (torch fills a half tensor with the float32 value, rounded: float32 first)
                buffer = np.zeros(shape, dtype) if fill == 0.0 else np.full(shape, _opmath(fill, dtype), dtype)
            buffers = self.state.setdefault(index, {})  # (after the allocation: it may fail)
            buffers[name] = buffer
            if self._created is not None:
                self._created.append((index, name))
        return buffers[name], created

    def state_bytes(self) -> int:
        """The bytes of the arrays this optimizer holds now: its state buffers, master copies
        and scalar state (:func:`numpy_optim.memory.state_bytes`; compare
        :func:`numpy_optim.memory.estimate_training_memory`)."""
        from .memory import state_bytes

        return state_bytes(self)

    def zero_grad(self) -> None:
        """Set every gradient to zero in place (same arrays, same shapes)."""
        for index, entry in enumerate(self.param_groups):
            grad = entry.get("grad")
            if not isinstance(grad, np.ndarray) or not grad.flags.writeable:
                raise TypeError(f"params[{index}]['grad'] must be a writeable numpy.ndarray, got {_describe(grad)}")
        for entry in self.param_groups:
            entry["grad"][...] = 0

    # ----- state dicts ------------------------------------------------------------------

    def _buffer_names(self, hyperparameters: dict[str, Any]) -> set[str]:
        """The buffers an entry with these hyperparameters may hold."""
        return set()

    def _entry_state_names(self, hyperparameters: dict[str, Any], param: np.ndarray) -> set[str]:
        """The buffers an entry with these hyperparameters and this parameter holds once it has
        taken a step (Adafactor's depend on the parameter's dimensions too; ``master_param``
        with master weights)."""
        master = {"master_param"} if hyperparameters.get("master_weights") else set()
        return self._buffer_names(hyperparameters) | master

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the optimizer: deep copies, nothing aliased to live buffers.

        Returns
        -------
        dict
            ``{"class": str, "step": int, "defaults": {...}, "param_groups": [{overrides},
            ...], "state": [{buffer name: ndarray}, ...], "initial_lrs": [float, ...]}``:
            plain dicts, lists, ndarrays and Python scalars (``betas`` as a list), one
            ``param_groups``, ``state`` and ``initial_lrs`` item per entry (``initial_lrs``
            is what a scheduler scales an entry's own lr from). ``class`` is the
            optimizer's class name: :meth:`load_state_dict` refuses another class's (Adam's
            and AdamW's buffers have the same names, but weight decay means different things).
        """
        with self._exclusive("state_dict", hold_sigint=False):
            self._adopt_appended()
            # The values as checked: Python floats, ints and bools (a Fraction or NumPy lr
            # becomes a float), betas as a list.
            defaults = self._checked_defaults()
            groups = []
            for index, entry in enumerate(self.param_groups):
                where = f"params[{index}]: "
                groups.append({**self._check_overrides(where, entry), **check_scheduler_keys(where, entry)})
            return {
                "class": type(self).__name__,
                "step": int(self.state["step"]),
                "defaults": {k: _plain(v) for k, v in defaults.items()},
                "param_groups": [{k: _plain(v) for k, v in group.items()} for group in groups],
                "state": [
                    {name: np.array(buf, copy=True) for name, buf in self.state.get(i, {}).items()}
                    for i in range(len(self.param_groups))
                ],
                "initial_lrs": [float(lr) for lr in self.initial_lrs],
            }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` snapshot; continuing is then bitwise identical.

        Everything is validated first (keys, entry count, hyperparameters, buffer names,
        shapes and dtypes); nothing changes unless all of it is valid. The arrays are
        copied, so the snapshot stays independent of the optimizer.
        """
        with self._exclusive("load_state_dict"):
            self._load_state_dict(state_dict)

    def _load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        step = check_state_dict_layout(state_dict, cls=type(self).__name__)
        groups, buffers = state_dict["param_groups"], state_dict["state"]
        initial_lrs = state_dict["initial_lrs"]
        for name, value in (("param_groups", groups), ("state", buffers), ("initial_lrs", initial_lrs)):
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"state_dict[{name!r}] must be a list, got {type(value).__name__}")
            if len(value) != len(self.param_groups):
                raise ValueError(
                    f"state_dict[{name!r}] must be a list with one item per entry "
                    f"({len(self.param_groups)}), got {value!r:.80}"
                )
        if not isinstance(state_dict["defaults"], Mapping):
            raise TypeError(f"state_dict['defaults'] must be a dict, got {type(state_dict['defaults']).__name__}")
        if set(state_dict["defaults"]) != set(self.defaults):
            raise ValueError(
                f"state_dict['defaults'] must have the keys {sorted(self.defaults)}, "
                f"got {state_dict['defaults']!r:.200}"
            )
        defaults = self._check_hyperparameters("state_dict['defaults']: ", dict(state_dict["defaults"]))
        initial_lrs = [check_nonnegative(f"state_dict['initial_lrs'][{i}]", lr) for i, lr in enumerate(initial_lrs)]
        try:
            self._check_combination(defaults)
        except (TypeError, ValueError) as error:
            raise type(error)(f"state_dict['defaults']: {error}") from None
        new_state: dict[Any, Any] = {"step": int(step)}
        new_overrides = []
        for index, (overrides, saved) in enumerate(zip(groups, buffers)):
            where = f"state_dict['param_groups'][{index}]: "
            if not isinstance(overrides, Mapping):
                raise TypeError(f"{where}expected a dict, got {type(overrides).__name__}")
            arrays = sorted({"params", "grad"}.intersection(overrides))
            if arrays:
                raise ValueError(f"{where}has {arrays}: a state dict holds hyperparameters, not the entry's arrays")
            scheduler_keys = check_scheduler_keys(where, overrides)
            overrides = self._check_overrides(where, overrides)
            hyper = {**defaults, **overrides}
            try:
                self._check_combination(hyper)
            except (TypeError, ValueError) as error:
                raise type(error)(f"{where}{error}") from None
            if not isinstance(saved, Mapping):
                raise TypeError(f"state_dict['state'][{index}]: expected a dict, got {type(saved).__name__}")
            param = self.param_groups[index]["params"]
            allowed = self._entry_state_names(hyper, param)
            for name, array in saved.items():
                where = f"state_dict['state'][{index}][{name!r}]"
                if name not in allowed:
                    raise ValueError(
                        f"{where}: unexpected buffer for these hyperparameters; allowed: {sorted(allowed)}"
                    )
                if not isinstance(array, np.ndarray):
                    raise TypeError(f"{where} must be a numpy.ndarray, got {_describe(array)}")
                check_plain_array(where, array)
                shape, dtype = self._buffer_layout(name, param, hyper)
                if array.shape != shape or array.dtype != dtype:
                    raise ValueError(
                        f"{where} has shape {array.shape} and dtype {array.dtype}, but params[{index}] "
                        f"has shape {param.shape} and dtype {param.dtype}, so it must have shape {shape} "
                        f"and dtype {dtype}"
                    )
            if saved and set(saved) != allowed:
                raise ValueError(
                    f"state_dict['state'][{index}] has the buffers {sorted(saved)}; an entry that has "
                    f"taken a step with these hyperparameters has all of {sorted(allowed)}"
                )
            if saved:
                new_state[index] = {name: np.array(array, copy=True) for name, array in saved.items()}
            new_overrides.append({**overrides, **scheduler_keys})
        # Every check passed: apply.
        self.defaults = defaults
        for entry, overrides in zip(self.param_groups, new_overrides):
            for key in [k for k in entry if k not in ("params", "grad")]:
                del entry[key]
            entry.update(overrides)
        self.state = new_state
        self.initial_lrs = initial_lrs
        self._plan = None


def _opmath(value: float, dtype: np.dtype) -> Any:
    """A Python float as torch hands it to a kernel of ``dtype``: through float32 for
    float16 / bfloat16 (its "opmath" type), unchanged otherwise."""
    return np.float32(value) if is_half(dtype) else value


def state_dtype_of(hyper: Mapping[str, Any], dtype: np.dtype) -> np.dtype:
    """The dtype of the state buffers of an entry with parameters of ``dtype``: its
    ``state_dtype``, float32 with ``master_weights``, else the parameters' own."""
    if hyper.get("state_dtype") is not None:
        return np.dtype(hyper["state_dtype"])
    return np.dtype(np.float32) if hyper.get("master_weights") else dtype


def _warn_if_eps_underflows(where: str, hyper: Mapping[str, Any], dtype: np.dtype) -> None:
    """Warn when a positive ``eps`` rounds to zero in the parameters' dtype: Adam's default
    1e-8 is 0 in float16 (whose smallest subnormal is 6e-8), so ``sqrt(v) + eps`` no longer
    keeps the division from 0 / 0, as in torch, which rounds it the same way."""
    eps = hyper.get("eps")
    if isinstance(eps, float) and 0 < eps < 1 and dtype.type(eps) == 0:
        warnings.warn(
            f"{where}: eps={eps!r} rounds to 0 in {dtype} (the parameters' dtype), so it no longer keeps "
            f"the denominator from 0; use eps >= {float(np.finfo(dtype).smallest_subnormal):.3g}, or "
            f"float32 parameters",
            RuntimeWarning, stacklevel=4,
        )


_META = operator.attrgetter("shape", "dtype", "flags.num")  # flags: contiguity, writeability, ...


class _Plan:
    """What one step validated, kept to check cheaply that the next step may reuse it.

    It records every entry's number of keys, buffer names, and its arrays (parameter,
    gradient, buffers): their ids, shapes, dtypes and flags (contiguity, writeability),
    and whether they can go through the blocked and compiled paths; and, for the entries
    without overrides, their groups. It holds weak references only, so it keeps no array
    alive; when one of its arrays dies it is stale (so an id is never mistaken for a
    new array's).
    """

    def __init__(
        self, optimizer: Optimizer, arrays: list[tuple[np.ndarray, ...]], hyperparameters: list[dict[str, Any]],
    ) -> None:
        entries, state = optimizer.param_groups, optimizer.state
        self.stale = [False]  # set when one of the arrays dies (the callback holds no plan: no cycle)
        self.n_keys = [len(entry) for entry in entries]
        self.names = [optimizer._kernel_buffers(hyper) for hyper in hyperparameters]  # in kernel order
        shared = self.names[0] if self.names else ()
        self.shared_names = shared if all(names == shared for names in self.names) else None
        self.n_state = [len(state.get(index, _NO_BUFFERS)) for index in range(len(entries))]
        flat = [array for items in arrays for array in items]
        self.ids = [id(array) for array in flat]
        self.meta = [_META(array) for array in flat]
        stale = self.stale
        self.refs = [weakref.ref(array, lambda ref: stale.__setitem__(0, True)) for array in flat]
        self.blockable = [_blocks.blockable(items) for items in arrays]
        self.overriding = [index for index, n in enumerate(self.n_keys) if n != 2]
        self.plain = [index for index, n in enumerate(self.n_keys) if n == 2]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index in self.plain:
            if self.blockable[index]:
                groups.setdefault(_blocks.group_key(entries[index], hyperparameters[index], False), []).append(index)
        self.plain_groups = list(groups.values())
        self.plain_whole = [index for index in self.plain if not self.blockable[index]]
        # The compiled kernels' address tables. NumPy refuses to resize an array with a
        # weak reference, but ndarray.__setstate__ can still move a live array's data
        # without changing its id, shape, dtype or flags: on the compiled path every
        # step also compares the addresses (numba reads them in ~0.15 us an array).
        arity = 2 + len(optimizer._buffer_order)
        self.rows = [_blocks.table_row(items, arity) for items in arrays]
        self.tables = [np.array([self.rows[i] for i in indices], np.int64) for indices in self.plain_groups]
        self.parts: list[dict[int, Any]] = [{} for _ in self.plain_groups]  # their cuts over threads
        self.addressed = [i for i, items in enumerate(arrays) if self.blockable[i] and _backend.covers(items)]
        self.addresses = [a for index in self.addressed for a in self.rows[index][1 : 1 + len(arrays[index])]]

    def arrays(
        self, optimizer: Optimizer, address: Callable[[np.ndarray], int] | None,
    ) -> list[tuple[np.ndarray, ...]] | None:
        """Every entry's arrays if nothing the plan rests on changed, else None (``address``:
        the compiled backend's reader of data addresses, which then are checked too).

        (The checks run as ``map`` over built-in functions: a few hundred nanoseconds an
        entry, the Python a step costs with many small parameters.)
        """
        entries, state = optimizer.param_groups, optimizer.state
        n = len(entries)
        if self.stale[0] or list(map(len, entries)) != self.n_keys:
            return None
        if list(map(len, map(state.get, range(n), itertools.repeat(_NO_BUFFERS, n)))) != self.n_state:
            return None
        try:
            arrays = list(map(_PARAMS_AND_GRAD, entries))
            if self.shared_names is not None:  # every entry has the same buffers (or none)
                if self.shared_names:
                    buffers: Any = map(operator.itemgetter(*self.shared_names), map(state.__getitem__, range(n)))
                    if len(self.shared_names) == 1:  # itemgetter of one name gives the buffer, not a tuple
                        buffers = ((buffer,) for buffer in buffers)
                    arrays = list(map(operator.add, arrays, buffers))
            else:
                arrays = [(*items, *map(state[index].__getitem__, names)) if names else items
                          for index, (items, names) in enumerate(zip(arrays, self.names))]
        except KeyError:  # a key the plan expects is gone
            return None
        flat = list(itertools.chain.from_iterable(arrays))
        if list(map(id, flat)) != self.ids or list(map(_META, flat)) != self.meta:
            return None
        if address is not None and self.addresses:  # the compiled kernels will use them
            used = itertools.chain.from_iterable(arrays[index] for index in self.addressed)
            if list(map(address, used)) != self.addresses:
                return None
        return arrays


def _plain(value: Any) -> Any:
    """A state dict's value as plain Python: tuples as lists, NumPy scalars as Python's."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


#: Options a repr leaves out at their default value (fused=False, state_dtype=None,
#: master_weights=False: the arithmetic of torch's default path).
_QUIET_DEFAULTS = {"fused": False, "state_dtype": None, "master_weights": False}
_PARAMS_AND_GRAD = operator.itemgetter("params", "grad")
_BASE = operator.attrgetter("base")
_NOT_HYPERPARAMETERS = SCHEDULER_KEYS | {"params", "grad"}


def _overrides_key(entry: Entry) -> tuple[Any, ...]:
    """An entry's overrides as a key that tells apart every pair of values the validators or
    the arithmetic tell apart: types (``True`` against ``1``), and ``-0.0`` against ``0.0``
    (floats by their hex digits, anything but a plain int, bool, str or None by its repr)."""
    return ("initial_lr" in entry, *(  # a scheduled entry's lr is checked by another rule
        (name, type(value), value.hex() if type(value) is float
         else value if value is None or type(value) in (int, bool, str) else repr(value))
        for name, value in entry.items() if name not in _NOT_HYPERPARAMETERS
    ))
_NO_BUFFERS: dict[str, np.ndarray] = {}
