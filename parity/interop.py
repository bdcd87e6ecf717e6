"""Optimizer state between torch.optim and numpy_optim: start a run on one side, resume it on the other.

(And a torch model's parameters as numpy_optim entries: :func:`entries_from_module`, whose
entries share the parameters' and gradients' memory, and :func:`check_entries`, which
checks that they still do.)

torch's ``optimizer.state_dict()`` (every registry pair but LBFGS, whose state is one flat
history: see :func:`lbfgs_torch_to_numpy`)::

    {"state": {param_id: {"momentum_buffer": tensor}                         # SGD with momentum
                         | {"step": tensor, "exp_avg": tensor, "exp_avg_sq": tensor,
                            "max_exp_avg_sq": tensor}                          # Adam/AdamW (+amsgrad)
                         | {"step": tensor, <buffer>: tensor, ...}},           # the others
     "param_groups": [{"lr": ..., "betas": ..., ..., "foreach": None, "fused": None, ...,
                       "params": [param_id, ...]}, ...]}

numpy_optim's ``optimizer.state_dict()`` (numpy_optim/optimizer.py)::

    {"class": str, "step": int, "defaults": {...}, "param_groups": [{overrides}, ...],
     "state": [{buffer: ndarray}, ...], "initial_lrs": [float, ...]}

with one ``param_groups``, ``state`` and ``initial_lrs`` item per entry. The correspondence:

* ``class`` is the numpy_optim class's name, which torch's state dict does not record:
  :func:`torch_to_numpy` writes the receiving optimizer's (``type(optimizer).__name__``),
  and :func:`numpy_to_torch` refuses a state dict whose class is not the registry's
  counterpart of the torch class (an ``"AdamW"`` state dict into a ``torch.optim.Adam``:
  their weight decays differ).

* Entries are torch's parameters in order, group after group (the order of torch's
  param ids), so a torch optimizer over groups ``[[w, b], [v]]`` corresponds to numpy_optim
  entries ``[w, b, v]``.
* Hyperparameters have the same names on both sides. A torch group's values become the
  overrides of its entries; torch-only keys (``foreach``, ``capturable``,
  ``differentiable``, and ``fused`` where numpy_optim has no fused kernels) have no
  numpy_optim counterpart and are filled from the receiving torch optimizer's own groups.
  ``decoupled_weight_decay`` is a hyperparameter like any other (torch's AdamW groups
  carry ``True``, as numpy_optim's AdamW defaults do).
* ``fused`` (SGD, Adam, AdamW, Adagrad) is a hyperparameter on both sides and crosses both
  ways: torch's ``None`` (its default: not fused on the CPU) becomes ``False``, and a
  ``False`` going back stays ``None`` in a receiving group that has ``None`` (so a torch
  state dict survives the trip unchanged). ``fused=True`` into a torch group with
  ``foreach=True`` or ``differentiable=True`` is refused, as torch's constructor refuses it.
* numpy_optim's own options (the registry's ``beyond_torch``: ``state_dtype`` and
  ``master_weights`` on every elementwise optimizer) have no torch counterpart. Into
  numpy_optim they take the *receiving* optimizer's values, its defaults and its entries'
  own overrides (as the torch-only keys come from the receiving torch optimizer), so
  loading torch's state never reconfigures it; torch's buffers must then have the dtype
  that optimizer keeps them in (nothing is cast: ``state_dtype="float64"`` over float32
  parameters, or ``master_weights`` with its float32 state over float16 ones, refuses
  torch's buffers). Into torch they are dropped, and a state dict that uses a value torch
  cannot represent (``state_dtype`` not None, ``master_weights=True``: state wider than
  the parameters, a float32 master copy) is a ValueError naming the option and the value,
  raised once the dict's keys are known good and before any value or buffer is converted.
* A torch LR scheduler records each group's base rate as ``initial_lr``, which is what
  numpy_optim's ``initial_lrs`` are (the rate a scheduler scales an entry's lr from).
  It is carried over where torch has it: into ``initial_lrs`` always, and back into the
  groups of a torch optimizer that has a scheduler attached (whose groups have the key).
* Buffers have the same names, shapes, dtypes and values; arrays are copied both ways (a
  converted dict shares no memory with its source). Per-parameter scalar state (ASGD's
  ``eta`` and ``mu``, NAdam's ``mu_product``) is a 0-d float32 tensor in torch and a 0-d
  float32 array in numpy_optim; Adafactor's factored ``row_var``/``col_var`` have their own
  shapes. A torch buffer of another dtype than numpy_optim keeps (complex, int, bool, or
  another float width) is a TypeError, never cast.
* numpy_optim keeps one step counter for the optimizer; torch keeps one per parameter (a
  scalar tensor), which must therefore all agree. torch's SGD keeps none (and numpy_optim's
  SGD uses its count for nothing).

Everything is validated before anything is built, with ValueError for bad values and
TypeError for bad types: the structure (counts, shapes, dtypes, names, steps) here, each
hyperparameter value by numpy_optim's own checks (torch's ``load_state_dict`` checks none;
numpy_optim's also checks combinations such as Nesterov's). The inputs are not changed.

Examples
--------
>>> import numpy as np, torch, numpy_optim
>>> w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
>>> theirs = torch.optim.Adam([w], lr=0.1)
>>> w.grad = torch.tensor([0.5, 0.25], dtype=torch.float64); theirs.step()
>>> x = w.detach().numpy().copy()
>>> ours = numpy_optim.Adam([{"params": x, "grad": np.zeros_like(x)}], lr=0.1)
>>> ours.load_state_dict(torch_to_numpy(theirs.state_dict(), ours))
>>> ours.state["step"], ours.state[0]["exp_avg"]
(1, array([0.05 , 0.025]))
>>> theirs.load_state_dict(numpy_to_torch(ours.state_dict(), theirs))
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

import numpy_optim

from .registry import OPTIMIZERS, OptimizerPair

#: Keys of torch's param groups that numpy_optim may have no counterpart for (``fused`` has
#: one on the optimizers with fused kernels: see :func:`_torch_only`).
TORCH_ONLY_KEYS = frozenset({"foreach", "fused", "capturable", "differentiable"})
#: The value of each numpy_optim-only option (the registry's ``beyond_torch``) that means
#: what torch does: state in the parameters' dtype, no master copy.
TORCH_EQUIVALENT = {"state_dtype": None, "master_weights": False}
#: The key torch's LR schedulers add to each group: numpy_optim's ``initial_lrs``.
INITIAL_LR = "initial_lr"

_NUMPY_DTYPES = {torch.float16: np.dtype(np.float16), torch.float32: np.dtype(np.float32),
                 torch.float64: np.dtype(np.float64)}


# ----- small helpers ------------------------------------------------------------------


def _pair_for_numpy(optimizer: Any) -> OptimizerPair:
    if not isinstance(optimizer, numpy_optim.Optimizer):
        raise TypeError(f"optimizer must be a numpy_optim optimizer, got {type(optimizer).__name__}")
    for pair in sorted(OPTIMIZERS.values(), key=lambda p: len(p.ours.__mro__), reverse=True):
        if isinstance(optimizer, pair.ours):
            return pair
    raise TypeError(f"No torch counterpart registered for {type(optimizer).__name__}; "
                    f"expected one of {sorted(p.ours.__name__ for p in OPTIMIZERS.values())}")


def _pair_for_torch(optimizer: Any) -> OptimizerPair:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"torch_optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    for pair in sorted(OPTIMIZERS.values(), key=lambda p: len(p.theirs.__mro__), reverse=True):
        if isinstance(optimizer, pair.theirs):
            return pair
    raise TypeError(f"No numpy_optim counterpart registered for {type(optimizer).__name__}; "
                    f"expected one of {sorted(p.theirs.__name__ for p in OPTIMIZERS.values())}")


def _torch_only(pair: OptimizerPair) -> frozenset[str]:
    """torch's group keys that ``pair``'s numpy_optim class has no hyperparameter for."""
    return TORCH_ONLY_KEYS - set(pair.ours._validators)


def _plain(value: Any) -> Any:
    """A hyperparameter as plain Python: 1-element tensors and NumPy scalars unwrapped."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"expected a number, got a tensor of shape {tuple(value.shape)}")
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value


def _for_numpy(hyper: dict[str, Any]) -> dict[str, Any]:
    """numpy_optim's state-dict spelling: tuples (betas) as lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in hyper.items()}


def _scalar_dtype(fused: bool) -> torch.dtype:
    """The dtype torch gives Adam's ``step`` tensors (as ``torch.optim.optimizer._get_scalar_dtype``)."""
    if fused:
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _check_groups(torch_state_dict: Any) -> tuple[list[Mapping[str, Any]], list[Any]]:
    """torch's ``param_groups`` and the param ids in entry order, after structural checks."""
    if not isinstance(torch_state_dict, Mapping):
        raise TypeError(f"torch_state_dict must be a dict, got {type(torch_state_dict).__name__}")
    for key in ("state", "param_groups"):
        if key not in torch_state_dict:
            raise ValueError(f"torch_state_dict has no {key!r} key (keys: {sorted(torch_state_dict)}); "
                             "expected a torch.optim optimizer's state_dict()")
    groups = torch_state_dict["param_groups"]
    if not isinstance(groups, (list, tuple)):
        raise TypeError(f"torch_state_dict['param_groups'] must be a list, got {type(groups).__name__}")
    if not isinstance(torch_state_dict["state"], Mapping):
        raise TypeError(f"torch_state_dict['state'] must be a dict, got {type(torch_state_dict['state']).__name__}")
    ids: list[Any] = []
    for g, group in enumerate(groups):
        if not isinstance(group, Mapping):
            raise TypeError(f"torch_state_dict['param_groups'][{g}] must be a dict, got {type(group).__name__}")
        params = group.get("params")
        if not isinstance(params, (list, tuple)):
            raise ValueError(f"torch_state_dict['param_groups'][{g}] has no 'params' list of param ids")
        ids.extend(params)
    if len(set(ids)) != len(ids):
        raise ValueError(f"torch_state_dict['param_groups'] lists a param id twice: {ids}")
    return list(groups), ids


def _steps_agree(steps: dict[int, float]) -> int:
    """The one step count numpy_optim keeps, from torch's per-parameter counts."""
    values = set(steps.values())
    if len(values) != 1:
        detail = ", ".join(f"params[{i}]: {s:g}" for i, s in sorted(steps.items()))
        raise ValueError(f"torch's per-parameter steps disagree ({detail}); numpy_optim keeps one step "
                         "count for all entries")
    (value,) = values
    if not (value >= 0 and value == int(value)):
        raise ValueError(f"Invalid torch step: {value!r} (expected a whole number >= 0)")
    return int(value)


# ----- torch -> numpy_optim -----------------------------------------------------------


# ----- LBFGS: one flat history, in the first parameter's state ------------------------


def _lbfgs_value(value: Any, to_numpy: bool) -> Any:
    """One LBFGS state value across: tensors <-> arrays (0-d: NumPy scalars of the dtype,
    which numpy_optim's LBFGS keeps where torch keeps 0-d tensors), lists item by item,
    Python numbers and None as they are."""
    if isinstance(value, list):
        return [_lbfgs_value(v, to_numpy) for v in value]
    if to_numpy and isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy().copy()
        return array[()] if array.ndim == 0 else array
    if not to_numpy and isinstance(value, (np.ndarray, np.generic)):
        return torch.from_numpy(np.array(value, copy=True))
    return value


def _lbfgs_torch_to_numpy(torch_state_dict: Mapping[str, Any], optimizer: Any, step: int | None) -> dict[str, Any]:
    groups, ids = _check_groups(torch_state_dict)
    if len(groups) != 1 or len(ids) != len(optimizer.param_groups):
        raise ValueError(f"torch_state_dict must have one param group (LBFGS allows no other) with "
                         f"{len(optimizer.param_groups)} parameters, got {len(groups)} groups and "
                         f"{len(ids)} parameters")
    names = list(optimizer.defaults)
    missing = [k for k in names if k not in groups[0]]
    if missing:
        raise ValueError(f"torch_state_dict['param_groups'][0] lacks {missing}; "
                         "expected a torch.optim.LBFGS state dict")
    defaults = optimizer._check_hyperparameters("torch_state_dict['param_groups'][0]: ",
                                                {k: _plain(groups[0][k]) for k in names})
    saved = torch_state_dict["state"]
    unknown = [param_id for param_id in saved if param_id != ids[0]]
    if any(saved[param_id] for param_id in unknown):
        raise ValueError(f"torch_state_dict['state'] has LBFGS state for param ids {unknown}; torch keeps it all "
                         f"in the first parameter's ({ids[0]!r})")
    first = saved.get(ids[0], {})
    if not isinstance(first, Mapping):
        raise TypeError(f"torch_state_dict['state'][{ids[0]!r}] must be a dict, got {type(first).__name__}")
    expected = optimizer.param_groups[0]["params"].dtype  # numpy_optim's LBFGS keeps all of it in this dtype
    for name, value in first.items():
        for k, item in enumerate(value if isinstance(value, list) else [value]):
            dtype = _NUMPY_DTYPES.get(item.dtype) if isinstance(item, torch.Tensor) else expected
            if dtype is None or dtype != expected:  # (np.dtype("float64") == None holds: test None first)
                at = f"[{name!r}][{k}]" if isinstance(value, list) else f"[{name!r}]"
                raise TypeError(f"torch_state_dict['state'][{ids[0]!r}]{at} has dtype {item.dtype}, but "
                                f"numpy_optim's LBFGS over these parameters keeps it in {expected}")
    first = {name: _lbfgs_value(value, True) for name, value in first.items()}
    count = optimizer.state["step"] if step is None else step
    return {
        "class": type(optimizer).__name__,
        "step": count,
        "defaults": _for_numpy(defaults),
        "param_groups": [{} for _ in optimizer.param_groups],
        "state": [first] + [{} for _ in optimizer.param_groups[1:]],
        "initial_lrs": [float(_plain(groups[0].get(INITIAL_LR, lr))) for lr in optimizer.initial_lrs],
    }


def _lbfgs_numpy_to_torch(numpy_state_dict: Mapping[str, Any], torch_optimizer: Any) -> dict[str, Any]:
    numpy_optim.optimizer.check_state_dict_layout(numpy_state_dict, "numpy_state_dict", cls="LBFGS")
    params = [p for group in torch_optimizer.param_groups for p in group["params"]]
    saved = numpy_state_dict["state"]
    if not isinstance(saved, (list, tuple)) or len(saved) != len(params):
        raise ValueError(f"numpy_state_dict['state'] must have one item per parameter ({len(params)})")
    if any(saved[1:]):
        raise ValueError("numpy_state_dict['state']: numpy_optim's LBFGS keeps its state in entry 0 only")
    defaults = numpy_state_dict["defaults"]
    if not isinstance(defaults, Mapping) or set(defaults) != set(torch_optimizer.defaults):
        raise ValueError(f"numpy_state_dict['defaults'] must have torch.optim.LBFGS's hyperparameters "
                         f"{sorted(torch_optimizer.defaults)}, got {defaults!r:.200}")
    group = {**torch_optimizer.param_groups[0], **{k: _plain(v) for k, v in defaults.items()},
             "params": list(range(len(params)))}
    state = {0: {name: _lbfgs_value(value, False) for name, value in saved[0].items()}} if saved[0] else {}
    return {"state": state, "param_groups": [group]}


def torch_to_numpy(torch_state_dict: Mapping[str, Any], optimizer: numpy_optim.Optimizer, *,
                   step: int | None = None) -> dict[str, Any]:
    """Convert a torch optimizer's ``state_dict()`` into a state dict for ``optimizer``.

    Parameters
    ----------
    torch_state_dict : dict
        ``torch_optimizer.state_dict()`` of the registry's torch counterpart of ``optimizer``
        over the parameters that ``optimizer``'s entries hold, in the same order.
    optimizer : numpy_optim.Optimizer
        The optimizer the result is meant for (the registry's counterpart of the torch
        class). Its entries give the count, shapes and dtypes; its defaults and the
        override keys its entries carry give the result's shape (below). It is not changed.
    step : int, optional
        The step count, for torch optimizers that keep none (SGD). By default the
        optimizer's own count is kept: numpy_optim's SGD uses it for nothing. The others
        take it from torch and refuse this argument when it disagrees.

    Returns
    -------
    dict
        ``{"class", "step", "defaults", "param_groups", "state", "initial_lrs"}`` for
        ``optimizer.load_state_dict``: plain Python values (``betas`` as a list) and fresh
        ndarrays. ``defaults[k]`` is the optimizer's default when an entry that does not
        override ``k`` has that value in torch, else the value of the first such entry; an
        entry overrides ``k`` when it did before or when its torch group's value differs
        from ``defaults[k]`` (so a state dict of ``optimizer`` survives a trip through torch
        unchanged). ``fused`` is torch's (its ``None``: ``False``); numpy_optim's own
        options (``state_dtype``, ``master_weights``) are the receiving optimizer's, defaults
        and overrides as they are. ``initial_lrs`` are the groups' ``initial_lr`` where a
        torch scheduler set one, else the optimizer's own.

    Raises
    ------
    TypeError
        ``optimizer`` is not a registered numpy_optim optimizer, a value has the wrong type, a
        buffer's dtype is not the one numpy_optim keeps it in (complex, int, bool or another
        float width, also one that the receiving optimizer's ``state_dtype`` or
        ``master_weights`` asks for: named with the entry, the buffer, both dtypes and those
        options; nothing is cast).
    ValueError
        The dict is not a state dict of the counterpart torch class over these parameters
        (parameter count, hyperparameter names, buffer names, shapes), torch's per-parameter
        steps disagree, or a value is invalid.
    """
    pair = _pair_for_numpy(optimizer)
    if pair.closure:  # LBFGS
        return _lbfgs_torch_to_numpy(torch_state_dict, optimizer, step)
    groups, ids = _check_groups(torch_state_dict)
    entries = optimizer.param_groups
    if len(ids) != len(entries):
        raise ValueError(f"torch_state_dict holds {len(ids)} parameters, but the optimizer has "
                         f"{len(entries)} entries")
    names = list(optimizer.defaults)
    shared = [k for k in names if k not in pair.beyond_torch]  # the ones torch's groups hold

    # Hyperparameters: each torch group's values, validated by numpy_optim's own checks;
    # numpy_optim's own options: the receiving optimizer's, entry by entry.
    per_entry: list[dict[str, Any]] = []
    initial_lrs: list[float] = []
    for g, group in enumerate(groups):
        where = f"torch_state_dict['param_groups'][{g}]"
        missing = [k for k in shared if k not in group]
        unknown = sorted(str(k) for k in group if k not in {*shared, *TORCH_ONLY_KEYS, INITIAL_LR, "params"})
        if missing or unknown:
            raise ValueError(f"{where} does not hold {type(optimizer).__name__}'s hyperparameters: missing "
                             f"{missing}, unknown {unknown}; expected a torch.optim.{pair.theirs.__name__} state dict")
        try:
            values = {k: _plain(group[k]) for k in shared}
        except TypeError as error:
            raise TypeError(f"{where}: {error}") from None
        hyper = optimizer._check_hyperparameters(f"{where}: ", values)  # fused: torch's None is False
        for i in range(len(per_entry), len(per_entry) + len(group["params"])):
            ours = optimizer._hyperparameters(i)
            per_entry.append({**hyper, **{k: ours[k] for k in pair.beyond_torch}})
            initial_lrs.append(float(_plain(group[INITIAL_LR])) if INITIAL_LR in group else optimizer.initial_lrs[i])

    defaults: dict[str, Any] = {}
    overrides: list[dict[str, Any]] = [{} for _ in entries]
    for k in names:
        free = [hyper[k] for entry, hyper in zip(entries, per_entry) if k not in entry]
        own = optimizer.defaults[k]
        defaults[k] = own if (own in free or not free) else free[0]
        for i, (entry, hyper) in enumerate(zip(entries, per_entry)):
            if k in entry or hyper[k] != defaults[k]:
                overrides[i][k] = hyper[k]

    # Buffers and steps.
    position = {param_id: i for i, param_id in enumerate(ids)}
    state: list[dict[str, tuple[torch.Tensor, np.dtype]]] = [{} for _ in entries]  # converted once all is checked
    steps: dict[int, float] = {}
    for param_id, saved in torch_state_dict["state"].items():
        if param_id not in position:
            raise ValueError(f"torch_state_dict['state'] has param id {param_id!r}, which no param group lists")
        i = position[param_id]
        where = f"torch_state_dict['state'][{param_id!r}] (params[{i}])"
        if not isinstance(saved, Mapping):
            raise TypeError(f"{where} must be a dict, got {type(saved).__name__}")
        param = entries[i]["params"]
        hyper = {**defaults, **overrides[i]}
        allowed = optimizer._entry_state_names(hyper, param)
        for name, value in saved.items():
            if name == "step":
                if not isinstance(value, (torch.Tensor, numbers.Real)) or isinstance(value, bool):
                    raise TypeError(f"{where}['step'] must be a number or a scalar tensor, got {type(value).__name__}")
                if isinstance(value, torch.Tensor) and (value.dtype == torch.bool or value.is_complex()):
                    raise TypeError(f"{where}['step'] has dtype {value.dtype}, expected a real number (torch keeps "
                                    "float32 or float64)")
                try:
                    steps[i] = float(_plain(value))
                except TypeError as error:
                    raise TypeError(f"{where}['step']: {error}") from None
                continue
            if value is None:  # torch's SGD may record an absent momentum buffer as None
                continue
            if name not in allowed:
                raise ValueError(f"{where} has buffer {name!r}, which {type(optimizer).__name__} does not keep "
                                 f"with these hyperparameters; it keeps {sorted(allowed)}")
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{where}[{name!r}] must be a torch.Tensor, got {type(value).__name__}")
            dtype = _NUMPY_DTYPES.get(value.dtype)  # None: complex, int, bool, bfloat16, ...
            shape, expected = optimizer._buffer_layout(name, param, hyper)  # 0-d float32: eta, mu, mu_product
            if name in optimizer._scalar_state and value.shape == () and value.dtype == torch.float64:
                # torch's load_state_dict casts 0-d scalar state to the parameter's dtype; as
                # long as torch has not stepped since, the value is still a float32 number.
                if float(np.float32(value.item())) != value.item():
                    raise ValueError(
                        f"{where}[{name!r}] is the float64 number {value.item()!r}, which numpy_optim (like "
                        f"torch before a load_state_dict cast it to float64) keeps in float32"
                    )
                dtype = np.dtype(np.float32)
            if dtype is None or dtype != expected:  # (np.dtype("float64") == None holds: test None first)
                chosen = {k: hyper[k] for k in pair.beyond_torch if hyper[k] != TORCH_EQUIVALENT[k]}
                why = (f" with {', '.join(f'{k}={v!r}' for k, v in chosen.items())} (the receiving optimizer's "
                       f"own options; torch keeps the state in the parameters' dtype, and nothing is cast)"
                       if chosen else "")
                raise TypeError(f"{where}[{name!r}] has dtype {value.dtype}, but params[{i}] (shape {param.shape}, "
                                f"dtype {param.dtype}) keeps it in {expected}{why}")
            if tuple(value.shape) != shape:
                raise ValueError(f"{where}[{name!r}] has shape {tuple(value.shape)}, but params[{i}] (shape "
                                 f"{param.shape}, dtype {param.dtype}) keeps it with shape {shape}")
            state[i][name] = (value, expected)
        missing = sorted(allowed - set(state[i]))
        if state[i] and missing:
            raise ValueError(f"{where} lacks the buffers {missing}")

    if pair.torch_has_step:
        if steps and len(steps) != len(entries):
            lacking = [i for i in range(len(entries)) if i not in steps]
            raise ValueError(f"torch has steps for some parameters but none for params{lacking}; numpy_optim "
                             "keeps one step count for all entries")
        count = _steps_agree(steps) if steps else 0
        if step is not None and step != count:
            raise ValueError(f"step={step!r} disagrees with torch's per-parameter step {count}")
        if count > 0 and not all(state):
            raise ValueError(f"torch's step is {count} but params{[i for i, s in enumerate(state) if not s]} "
                             "have no buffers")
    elif step is not None:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"Invalid step: {step!r} (expected an int >= 0)")
        if step < 0:
            raise ValueError(f"Invalid step: {step!r} (expected an int >= 0)")
        count = int(step)
    else:
        count = optimizer.state["step"]

    return {
        "class": type(optimizer).__name__,
        "step": int(count),
        "defaults": _for_numpy(defaults),
        "param_groups": [_for_numpy(o) for o in overrides],
        "state": [{name: np.array(value.detach().cpu().numpy(), dtype=dtype, copy=True)
                   for name, (value, dtype) in buffers.items()} for buffers in state],
        "initial_lrs": initial_lrs,
    }


# ----- numpy_optim -> torch -----------------------------------------------------------


def _refuse_beyond_torch(numpy_state_dict: Mapping[str, Any], pair: OptimizerPair) -> None:
    """ValueError if the state dict's defaults or an entry's overrides give a numpy_optim-only
    option (``pair.beyond_torch``) another value than the one that means torch's behaviour."""
    places = [("numpy_state_dict['defaults']", numpy_state_dict["defaults"])]
    for i, overrides in enumerate(numpy_state_dict["param_groups"]):
        if not isinstance(overrides, Mapping):
            raise TypeError(f"numpy_state_dict['param_groups'][{i}] must be a dict, got {type(overrides).__name__}")
        places.append((f"numpy_state_dict['param_groups'][{i}]", overrides))
    for where, values in places:
        for k in pair.beyond_torch:
            if k not in values:
                continue
            try:
                value = pair.ours._validators[k](k, _plain(values[k]))
            except (TypeError, ValueError) as error:
                raise type(error)(f"{where}: {error}") from None
            if value != TORCH_EQUIVALENT[k]:
                raise ValueError(
                    f"{where} has {k}={value!r}, which torch.optim.{pair.theirs.__name__} cannot represent (torch "
                    f"keeps an entry's state in its parameter's dtype and no float32 master copy; it has no {k} "
                    f"option): only {k}={TORCH_EQUIVALENT[k]!r} converts"
                )


def numpy_to_torch(numpy_state_dict: Mapping[str, Any], torch_optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Convert a numpy_optim ``state_dict()`` into a dict ``torch_optimizer.load_state_dict`` accepts.

    Parameters
    ----------
    numpy_state_dict : dict
        ``optimizer.state_dict()`` of a registered numpy_optim optimizer whose entries are
        ``torch_optimizer``'s parameters in order (group after group).
    torch_optimizer : torch.optim.Optimizer
        The receiving torch optimizer. Its groups say which entries share a group and
        supply the torch-only keys (``foreach``, ``capturable``, ``differentiable``, and
        ``fused`` where numpy_optim has none); a group that has an ``initial_lr`` (a
        scheduler is attached) gets its entries' ``initial_lrs``. Its parameters give the
        shapes and dtypes. It is not changed.

    Returns
    -------
    dict
        ``{"state": {param_id: {...}}, "param_groups": [...]}`` with fresh tensors. Where torch
        keeps a step (all but SGD), every parameter with buffers gets ``"step"``, a scalar tensor of the dtype
        torch itself uses (float32, or the default dtype when that is float64 and not fused).
        ``fused`` is the state dict's (``False`` stays ``None`` in a group that has ``None``);
        numpy_optim's own options are dropped.

    Raises
    ------
    TypeError
        ``torch_optimizer`` is not a registered torch optimizer, a value has the wrong type.
    ValueError
        The dict is not a numpy_optim state dict for these parameters (keys, entry count,
        hyperparameter names and values, buffer names, shapes, dtypes), entries that share a
        torch group have different hyperparameters, or (where torch keeps a step) an entry has
        no buffers although the step count is positive, or its ``class`` is not the numpy_optim
        counterpart of the torch class (an AdamW state dict into a torch Adam); or it uses a
        numpy_optim-only option with a value torch cannot represent (``state_dtype`` not
        None, ``master_weights=True``, in its defaults or an entry's overrides: named with the
        value, checked before the other values and the buffers), or ``fused=True`` where the torch group
        has ``foreach=True`` or ``differentiable=True``.
    """
    pair = _pair_for_torch(torch_optimizer)
    if pair.closure:  # LBFGS
        return _lbfgs_numpy_to_torch(numpy_state_dict, torch_optimizer)
    step = numpy_optim.optimizer.check_state_dict_layout(numpy_state_dict, "numpy_state_dict", cls=pair.ours.__name__)
    defaults = numpy_state_dict["defaults"]
    if not isinstance(defaults, Mapping):
        raise TypeError(f"numpy_state_dict['defaults'] must be a dict, got {type(defaults).__name__}")
    params = [p for group in torch_optimizer.param_groups for p in group["params"]]
    for key in ("param_groups", "state", "initial_lrs"):
        value = numpy_state_dict[key]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"numpy_state_dict[{key!r}] must be a list, got {type(value).__name__}")
        if len(value) != len(params):
            raise ValueError(f"numpy_state_dict[{key!r}] has {len(value)} entries, but the torch optimizer has "
                             f"{len(params)} parameters")
    names = set(torch_optimizer.defaults) - _torch_only(pair)  # the hyperparameters both sides have
    ours = names | set(pair.beyond_torch)
    if set(defaults) != ours:
        raise ValueError(f"numpy_state_dict['defaults'] has the hyperparameters {sorted(defaults)}, but "
                         f"numpy_optim.{pair.ours.__name__} (for torch.optim.{type(torch_optimizer).__name__}) "
                         f"has {sorted(ours)}")
    _refuse_beyond_torch(numpy_state_dict, pair)

    new_groups = []
    index = 0
    for g, group in enumerate(torch_optimizer.param_groups):
        shared: dict[str, Any] | None = None
        for i in range(index, index + len(group["params"])):
            overrides = numpy_state_dict["param_groups"][i]
            if not set(overrides) <= ours:
                raise ValueError(f"numpy_state_dict['param_groups'][{i}] has unknown hyperparameters "
                                 f"{sorted(set(overrides) - ours)}")
            where = f"numpy_state_dict['param_groups'][{i}]"
            hyper = {}
            for k, v in {**defaults, **overrides}.items():
                if k in pair.beyond_torch:  # torch's behaviour: _refuse_beyond_torch checked it
                    continue
                try:
                    hyper[k] = pair.ours._validators[k](k, _plain(v))
                except (TypeError, ValueError) as error:
                    raise type(error)(f"{where}: {error}") from None
            if shared is not None and hyper != shared:
                differ = sorted(k for k in names if hyper[k] != shared[k])
                raise ValueError(f"entries {index} and {i} share torch param group {g} but differ in {differ}: "
                                 f"{ {k: shared[k] for k in differ} } vs { {k: hyper[k] for k in differ} }")
            shared = hyper
        if shared is not None and "fused" in shared:  # (None: an empty torch group)
            if shared["fused"]:
                clash = [k for k in ("foreach", "differentiable") if group.get(k)]
                if clash:
                    raise ValueError(f"numpy_state_dict['param_groups'][{index}]: fused=True, but torch param group "
                                     f"{g} has {', '.join(f'{k}=True' for k in clash)}, which torch does not run "
                                     f"fused (its constructor refuses them together)")
            elif group.get("fused") is None:
                shared["fused"] = None  # torch's own spelling of "not fused" (its default), kept
        kept = {k: v for k, v in group.items() if k != "params" and k not in names}
        if INITIAL_LR in group:
            rates = {_plain(lr) for lr in numpy_state_dict["initial_lrs"][index:index + len(group["params"])]}
            if len(rates) > 1:
                raise ValueError(f"entries {index}..{index + len(group['params']) - 1} share torch param group {g} "
                                 f"but differ in initial_lrs: {sorted(rates)}")
            if rates:
                (rate,) = rates
                kept[INITIAL_LR] = pair.ours._validators["lr"]("initial_lrs", rate)
        new_groups.append({**(shared or {}), **kept, "params": list(range(index, index + len(group["params"])))})
        index += len(group["params"])

    state: dict[int, dict[str, Any]] = {}
    for i, (param, saved) in enumerate(zip(params, numpy_state_dict["state"])):
        where = f"numpy_state_dict['state'][{i}]"
        if not isinstance(saved, Mapping):
            raise TypeError(f"{where} must be a dict, got {type(saved).__name__}")
        dtype = _NUMPY_DTYPES.get(param.dtype)
        buffers = {}
        for name, array in saved.items():
            if name not in pair.buffers:
                raise ValueError(f"{where} has buffer {name!r}; torch.optim.{type(torch_optimizer).__name__} "
                                 f"keeps {list(pair.buffers)}")
            if not isinstance(array, np.ndarray):
                raise TypeError(f"{where}[{name!r}] must be a numpy.ndarray, got {type(array).__name__}")
            like = np.broadcast_to(np.zeros((), dtype), tuple(param.shape))  # the parameter, as numpy_optim sees it
            shape, expected = pair.ours._buffer_layout(name, like)
            if array.shape != shape or array.dtype != expected:
                raise ValueError(f"{where}[{name!r}] has shape {array.shape} and dtype {array.dtype}, but torch "
                                 f"parameter {i} (shape {tuple(param.shape)}, dtype {param.dtype}) keeps it with "
                                 f"shape {shape} and dtype {expected}")
            buffers[name] = torch.from_numpy(np.array(array, copy=True)).to(param.device)
        if pair.torch_has_step and step > 0:
            if not buffers:
                raise ValueError(f"{where} has no buffers, but the step count is {step}: torch.optim."
                                 f"{type(torch_optimizer).__name__} would restart this parameter at step 1")
            fused = next(bool(grp.get("fused")) for grp in new_groups if i in grp["params"])
            buffers = {"step": torch.tensor(float(step), dtype=_scalar_dtype(fused)), **buffers}
        if buffers:
            state[i] = buffers
    return {"state": state, "param_groups": new_groups}


# ----- a torch.nn.Module's parameters as numpy_optim entries ---------------------------


def _trainable(module: Any) -> list[tuple[str, torch.nn.Parameter]]:
    """``module``'s parameters with ``requires_grad``, named, in ``module.parameters()`` order."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def _shares(array: Any, tensor: torch.Tensor) -> bool:
    """Whether ``array`` is a view of exactly ``tensor``'s memory (address, shape, strides, dtype)."""
    dtype = _NUMPY_DTYPES.get(tensor.dtype)
    if dtype is None or not isinstance(array, np.ndarray):  # (np.dtype("float64") == None holds: test None first)
        return False
    if array.dtype != dtype or array.shape != tuple(tensor.shape):
        return False
    if array.size == 0:  # no element to share (torch may keep no address for it)
        return True
    strides = tuple(s * tensor.element_size() for s in tensor.stride())
    return array.__array_interface__["data"][0] == tensor.data_ptr() and array.strides == strides


def entries_from_module(module: torch.nn.Module) -> list[dict[str, np.ndarray]]:
    """numpy_optim entries over ``module``'s trainable parameters, sharing their memory.

    One entry per parameter with ``requires_grad``, in ``module.parameters()`` order:
    ``{"params": array, "grad": array}``, where ``params`` is a NumPy view of the
    parameter's data and ``grad`` one of ``param.grad``. A parameter whose ``grad`` is None
    gets a zero gradient tensor first (``param.grad = torch.zeros_like(param)``); an
    existing ``grad`` is kept, values and all. So ``loss.backward()`` accumulates into the
    arrays numpy_optim reads, and a numpy_optim step updates the module's parameters in
    place::

        entries = entries_from_module(model)
        optimizer = numpy_optim.SGD(entries, lr=0.1)
        optimizer.zero_grad()            # in place, never None
        loss_fn(model(x), y).backward()  # torch accumulates into entries[i]["grad"]
        optimizer.step()                 # writes model's parameters

    **Zeroing gradients: never to None.** torch's ``optimizer.zero_grad()`` and
    ``module.zero_grad()`` default to ``set_to_none=True``: they set every ``param.grad`` to
    None, and the next ``backward()`` allocates a *new* gradient tensor, which the entry's
    ``grad`` array does not see; numpy_optim would silently keep stepping with the old
    gradient. ``backward(create_graph=True)`` and assigning ``param.grad = ...`` replace the
    tensor too, and ``module.to(...)``, ``module.double()`` & co. replace the parameters'
    data. Zero the gradients in place instead, with numpy_optim's ``optimizer.zero_grad()``
    (or ``entry["grad"][...] = 0``) or ``module.zero_grad(set_to_none=False)``, and call
    :func:`check_entries` (a few microseconds a parameter) before a step to catch the
    mistake: it raises ValueError when an entry no longer shares memory with its
    parameter or gradient. Run a step after ``backward()``, as in torch: numpy_optim's writes
    bypass autograd's version counters, so a step between the forward pass and its
    backward pass would go unnoticed by torch (its own optimizer's step raises there).

    Tied parameters (one ``Parameter`` used by two layers) get one entry, as
    ``module.parameters()`` lists them once: both uses accumulate into its one gradient, as
    in torch. Distinct parameters whose memory overlaps are refused by the numpy_optim
    optimizer (its entries may not share memory). Frozen parameters (``requires_grad=False``)
    get no entry and keep no gradient. Every entry has a gradient (numpy_optim's contract):
    a parameter that a forward pass leaves unused gets a zero gradient and still moves under
    momentum or weight decay, as in torch with ``zero_grad(set_to_none=False)``, whereas
    torch's default (``None`` gradients) skips it.

    There are no per-entry hyperparameters here: the optimizer's keyword arguments apply to
    every entry, and an entry's own (torch's parameter groups) go into that entry, e.g. by
    name: ``names = [n for n, p in model.named_parameters() if p.requires_grad]``, then
    ``entry["weight_decay"] = 0.0`` for the entries whose name ends in ``"bias"``.

    Raises
    ------
    TypeError
        ``module`` is not a ``torch.nn.Module``, or a parameter's dtype is not float16,
        float32 or float64 (NumPy has no bfloat16; numpy_optim takes real floats only).
    ValueError
        A trainable parameter (named, with its index) is not on the CPU, not a dense
        contiguous tensor, not yet initialized (a lazy module before its first forward pass),
        or has a ``grad`` that is not a dense contiguous CPU tensor; or the module has no
        trainable parameter at all (as ``torch.optim`` refuses an empty parameter list:
        the loop would train nothing). Nothing is changed (no ``grad`` is allocated) then.
    """
    trainable = _trainable(module)
    for i, (name, param) in enumerate(trainable):
        where = f"module parameter {name!r} (params[{i}])"
        if torch.nn.parameter.is_lazy(param):
            raise ValueError(f"{where} is not initialized yet (a lazy module): run a forward pass first")
        if param.dtype not in _NUMPY_DTYPES:
            raise TypeError(f"{where} has dtype {param.dtype}; numpy_optim takes float16, float32 and float64 "
                            f"only (NumPy has no bfloat16, numpy_optim no complex): convert the module first, e.g. "
                            f"module.float()")
        for what, tensor in (("", param), (".grad", param.grad)):
            if tensor is None:
                continue
            if tensor.device.type != "cpu":
                raise ValueError(f"{where}{what} is on device {tensor.device}; NumPy views CPU tensors only "
                                 f"(module.cpu() first)")
            if tensor.layout != torch.strided:
                raise ValueError(f"{where}{what} has layout {tensor.layout}; numpy_optim takes dense tensors only")
            if not tensor.is_contiguous():
                fix = "param.data = param.data.contiguous()" if not what else "param.grad = None"
                raise ValueError(f"{where}{what} is not contiguous (shape {tuple(tensor.shape)}, strides "
                                 f"{tensor.stride()}); make it so first ({fix})")
    if not trainable:
        raise ValueError(f"module ({type(module).__name__}) has no parameter with requires_grad=True: nothing to "
                         "optimize (torch.optim refuses an empty parameter list too)")
    for _, param in trainable:
        if param.grad is None:
            param.grad = torch.zeros_like(param, memory_format=torch.contiguous_format)
    return [{"params": param.detach().numpy(), "grad": param.grad.detach().numpy()} for _, param in trainable]


def check_entries(module: torch.nn.Module, entries: Any) -> None:
    """Check that ``entries`` (from :func:`entries_from_module`, or the optimizer's
    ``param_groups``) still share memory with ``module``'s parameters and gradients.

    Call it between ``backward()`` and ``optimizer.step()`` to catch gradients that torch no
    longer writes where numpy_optim reads (see :func:`entries_from_module`).

    Raises
    ------
    TypeError
        ``module`` is not a ``torch.nn.Module``, or ``entries`` is not a list of dicts.
    ValueError
        The module's trainable parameters are not the entries' in count; a parameter's
        ``grad`` is None (``zero_grad()`` with torch's default ``set_to_none=True``); or an
        entry's ``params`` or ``grad`` is not a view of its parameter's data or gradient (a
        new gradient tensor: set to None and recomputed by ``backward()``, made by
        ``backward(create_graph=True)``, or assigned; new parameter data: ``module.to()``,
        ``module.double()``, ``load_state_dict(assign=True)``, ``param.data = ...``).
    """
    trainable = _trainable(module)
    if not isinstance(entries, (list, tuple)) or not all(isinstance(entry, dict) for entry in entries):
        raise TypeError(f"entries must be a list of dicts {{'params': ndarray, 'grad': ndarray}}, "
                        f"got {type(entries).__name__}")
    if len(entries) != len(trainable):
        raise ValueError(f"module has {len(trainable)} parameters with requires_grad=True but entries has "
                         f"{len(entries)}: parameters were added or (un)frozen since entries_from_module")
    rebuild = "build the entries again (entries_from_module) and a new optimizer, loading the old one's state_dict()"
    for i, ((name, param), entry) in enumerate(zip(trainable, entries)):
        where = f"module parameter {name!r} (params[{i}])"
        if param.grad is None:
            raise ValueError(
                f"{where} has grad None (zero_grad() with torch's default set_to_none=True?): the next backward() "
                f"makes a new gradient tensor that entries[{i}]['grad'] does not see. Zero gradients in place: "
                f"numpy_optim's optimizer.zero_grad() or module.zero_grad(set_to_none=False)"
            )
        if not _shares(entry.get("params"), param):
            raise ValueError(f"entries[{i}]['params'] no longer shares memory with {where}: its data was "
                             f"replaced (module.to(), module.double(), load_state_dict(assign=True), "
                             f"param.data = ...); {rebuild}")
        if not _shares(entry.get("grad"), param.grad):
            raise ValueError(
                f"entries[{i}]['grad'] no longer shares memory with {where}.grad: torch made a new gradient "
                f"tensor (grad set to None by zero_grad() with set_to_none=True, then backward(); "
                f"backward(create_graph=True); or param.grad = ...), so numpy_optim would step with a stale "
                f"gradient. Zero gradients in place (numpy_optim's optimizer.zero_grad() or "
                f"module.zero_grad(set_to_none=False)); to recover, copy this gradient into the entry's array "
                f"and set param.grad = torch.from_numpy(entries[{i}]['grad'])"
            )
