r"""Training memory: what an optimizer holds (measured) and what training needs (estimated).

The specification ("Why it matters", section 2) counts the memory of training as
parameters + gradients + optimizer state, activations not counted. For 70B float32
parameters trained with Adam: 280 GB of weights, 280 GB of gradients and 560 GB of state
(:math:`m` and :math:`v`), about 1120 GB, against 280 GB to serve the weights. Its table
"Memory overhead per optimizer" gives the state alone for 7B float32 parameters: 0 for SGD,
28 GB for SGD with momentum, 56 GB for Adam/AdamW. Here GB is :math:`10^9` bytes, as in
the specification.

* :func:`state_bytes` measures: the ``nbytes`` of every array in ``optimizer.state``.
* :func:`estimate_training_memory` computes, for :math:`N` parameters in :math:`A` arrays,

  .. math::

      \text{params} &= N\, b(\text{param\_dtype}) \qquad
      \text{grads} = N\, b(\text{grad\_dtype}) \\
      \text{state} &= k\, N\, b(\text{state\_dtype}) + 4\, s\, A \\
      \text{master} &= 4 N \ \text{(master\_weights)}, \qquad
      \text{total} = \text{params} + \text{grads} + \text{state} + \text{master}

  with :math:`b` the bytes of one element, :math:`k` the optimizer's buffers per element
  and :math:`s` its float32 0-d buffers per array (NAdam's ``mu_product``, ASGD's ``eta``
  and ``mu``), both read off :data:`OPTIMIZERS`. Adafactor's factored state depends on the
  shapes (pass ``shapes=``); L-BFGS keeps a history of flat vectors (``history_size``).
* :func:`memory_table` prints the specification's tables from it, and
  ``python -m numpy_optim.memory`` prints them all.

Examples
--------
>>> print(estimate_training_memory(70 * 10**9, "adam"))
adam, 70B float32 parameters: params 280 GB + grads 280 GB + state 560 GB (float32) = 1120 GB
>>> estimate_training_memory(7 * 10**9, "sgd+momentum").optimizer_state / 1e9
28.0
"""

from __future__ import annotations

import argparse
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Bytes of one element of each floating dtype numpy_optim trains (bfloat16: ml_dtypes').
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}

#: Optimizer name -> (its buffers with one element per parameter element, its float32 0-d
#: buffers, one per parameter array), in torch's names, as each class's ``_buffer_names``
#: gives them. A name is the class's lower-cased, with ``+option`` for an option that
#: adds a buffer (``sgd+momentum`` is also Nesterov's; any order: ``rmsprop+momentum+centered``).
OPTIMIZERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sgd": ((), ()),
    "sgd+momentum": (("momentum_buffer",), ()),
    "sgd+momentum+nesterov": (("momentum_buffer",), ()),
    "adam": (("exp_avg", "exp_avg_sq"), ()),
    "adamw": (("exp_avg", "exp_avg_sq"), ()),
    "adam+amsgrad": (("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), ()),
    "adamw+amsgrad": (("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), ()),
    "adagrad": (("sum",), ()),
    "rmsprop": (("square_avg",), ()),
    "rmsprop+momentum": (("square_avg", "momentum_buffer"), ()),
    "rmsprop+centered": (("square_avg", "grad_avg"), ()),
    "rmsprop+centered+momentum": (("square_avg", "momentum_buffer", "grad_avg"), ()),
    "adadelta": (("square_avg", "acc_delta"), ()),
    "adamax": (("exp_avg", "exp_inf"), ()),
    "nadam": (("exp_avg", "exp_avg_sq"), ("mu_product",)),
    "radam": (("exp_avg", "exp_avg_sq"), ()),
    "asgd": (("ax",), ("eta", "mu")),
    "rprop": (("prev", "step_size"), ()),
}
#: Optimizers whose state is not a fixed number of buffers per element (see estimate_training_memory).
SHAPED = ("adafactor", "lbfgs")

_GB = 10**9


# --------------------------------------------------------------------------------------
# Measured
# --------------------------------------------------------------------------------------


def state_bytes(optimizer: Any) -> int:
    """The bytes an optimizer holds in its state: the ``nbytes`` of every array in it.

    Counts every ``ndarray`` (0-d ones too: NAdam's ``mu_product``) and NumPy scalar
    (L-BFGS's ``ro``, ``al``, ``H_diag``) in ``optimizer.state``, through its per-entry
    dicts and lists; Python numbers (``state["step"]``, an int) hold no array and count 0.
    An object held twice counts once; arrays that are views of one another count each
    at its own size (numpy_optim's buffers are never views).

    Parameters
    ----------
    optimizer : Optimizer
        Anything with a ``state`` dict (a numpy_optim optimizer).

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> from numpy_optim import Adam
    >>> opt = Adam([{"params": np.zeros((10, 5), np.float32), "grad": np.ones((10, 5), np.float32)}])
    >>> opt.step(); state_bytes(opt)          # exp_avg and exp_avg_sq: 2 x 50 x 4 bytes
    400
    """
    state = getattr(optimizer, "state", None)
    if not isinstance(state, dict):
        raise TypeError(f"optimizer must have a dict 'state' (a numpy_optim Optimizer), got {type(optimizer).__name__}")
    total, seen, todo = 0, set(), list(state.values())
    while todo:
        value = todo.pop()
        if isinstance(value, (np.ndarray, np.generic)):
            if id(value) not in seen:
                seen.add(id(value))
                total += value.nbytes
        elif isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, (list, tuple)):
            todo.extend(value)
    return int(total)


# --------------------------------------------------------------------------------------
# Estimated
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training setup, by component (:func:`estimate_training_memory`).

    ``params``, ``grads``, ``optimizer_state`` (what :func:`state_bytes` measures, less the
    master copy) and ``master_weights`` are bytes; ``total`` is their sum and ``inference``
    the weights alone. ``buffers`` names the state buffers of one element per parameter
    element (for L-BFGS and Adafactor, in words).
    """

    optimizer: str
    n_params: int
    param_dtype: str
    grad_dtype: str
    state_dtype: str
    params: int
    grads: int
    optimizer_state: int
    master_weights: int
    buffers: tuple[str, ...]

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer_state + self.master_weights

    @property
    def inference(self) -> int:
        return self.params

    def __str__(self) -> str:
        master = f" + master {format_bytes(self.master_weights)} (float32)" if self.master_weights else ""
        return (
            f"{self.optimizer}, {format_count(self.n_params)} {self.param_dtype} parameters: "
            f"params {format_bytes(self.params)} + grads {format_bytes(self.grads)} "
            f"+ state {format_bytes(self.optimizer_state)} ({self.state_dtype}){master} = {format_bytes(self.total)}"
        )

    def row(self) -> str:
        """A markdown row under :data:`ROW_HEADER`."""
        cells = (self.optimizer, format_count(self.n_params), self.param_dtype, self.grad_dtype, self.state_dtype,
                 "yes" if self.master_weights else "no", *(format_bytes(n) for n in (
                     self.params, self.grads, self.optimizer_state, self.master_weights, self.total)))
        return "| " + " | ".join(cells) + " |"


#: The header of :meth:`MemoryEstimate.row`'s rows.
ROW_HEADER = (
    "| Optimizer | Parameters | Param dtype | Grad dtype | State dtype | Master weights "
    "| Params | Grads | State | Master | Total |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
)


def estimate_training_memory(
    n_params: int | None,
    optimizer: str = "adam",
    *,
    param_dtype: Any = "float32",
    grad_dtype: Any = None,
    state_dtype: Any = None,
    master_weights: bool = False,
    n_tensors: int | None = None,
    shapes: Sequence[Sequence[int]] | None = None,
    history_size: int | None = None,
) -> MemoryEstimate:
    r"""The memory of training ``n_params`` parameters: weights, gradients, optimizer state.

    Activations, temporaries of a step and the framework's own overhead are not counted.

    Parameters
    ----------
    n_params : int
        Number of parameter elements :math:`N` (an integral float such as ``7e9`` is
        taken too). May be None when ``shapes`` is given.
    optimizer : str, default "adam"
        A name of :data:`OPTIMIZERS` (``"sgd"``, ``"sgd+momentum"``, ``"adam+amsgrad"``,
        ``"rmsprop+centered+momentum"``, ...), ``"adafactor"`` or ``"lbfgs"``.
    param_dtype : dtype or str, default "float32"
        float16, bfloat16, float32 or float64.
    grad_dtype : dtype or str, optional
        Defaults to ``param_dtype`` (numpy_optim takes gradients of the parameters' dtype).
    state_dtype : dtype or str, optional
        None, float32 or float64, as the optimizers' ``state_dtype``: not narrower than the
        parameters, float32 with ``master_weights``. None keeps the state in ``param_dtype``,
        or in float32 with ``master_weights``.
    master_weights : bool, default False
        A float32 copy of every float16/bfloat16 parameter (4 bytes per element, in the
        optimizer's state as ``master_param``); refused for float32/float64 parameters.
    n_tensors : int, optional
        Number of parameter arrays :math:`A` (counts only for NAdam's and ASGD's float32
        0-d buffers). Defaults to ``len(shapes)``, else 1 (the parameters as one array).
    shapes : sequence of shapes, optional
        The parameter arrays' shapes; required for Adafactor, whose state is factored:
        ``row_var`` (``prod(shape[:-1])`` elements) and ``col_var``
        (``prod(shape[:-2]) * shape[-1]``) for 2 or more dimensions, ``variance`` (the
        shape) for 0 and 1. Their sizes must add up to ``n_params``.
    history_size : int, optional
        L-BFGS only (default 100, LBFGS's): the state at full history,
        :math:`(2h + 2) N` elements (``old_dirs``, ``old_stps``, ``d``,
        ``prev_flat_grad``) and :math:`2h + 1` NumPy scalars (``ro``, ``al``, ``H_diag``),
        in ``param_dtype``. Not counted: ``t``, a Python float or, after some line
        searches, one more NumPy scalar.

    Returns
    -------
    MemoryEstimate

    Raises
    ------
    TypeError, ValueError
        For a bad argument or combination, naming the argument and the value.

    Examples
    --------
    >>> e = estimate_training_memory(70e9, "adamw", param_dtype="bfloat16", master_weights=True)
    >>> e.params, e.grads, e.optimizer_state, e.master_weights, e.total
    (140000000000, 140000000000, 560000000000, 280000000000, 1120000000000)
    >>> print(e)  # doctest: +NORMALIZE_WHITESPACE
    adamw, 70B bfloat16 parameters: params 140 GB + grads 140 GB + state 560 GB (float32)
    + master 280 GB (float32) = 1120 GB
    """
    if shapes is not None:
        shapes = _check_shapes(shapes)
        size = sum(math.prod(shape) for shape in shapes)
        if n_params is None:
            n_params = size
    if n_params is None:
        raise TypeError("n_params must be an integer >= 0 (None only with shapes=), got None")
    n = _check_count("n_params", n_params)
    if shapes is not None and n != size:
        raise ValueError(f"shapes hold {size} elements, not n_params={n_params!r}")
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a str such as 'adam' or 'sgd+momentum', got {type(optimizer).__name__}")
    name = _optimizer_name(optimizer)
    param = _dtype_name("param_dtype", param_dtype)
    grad = param if grad_dtype is None else _dtype_name("grad_dtype", grad_dtype)
    if not isinstance(master_weights, (bool, np.bool_)):
        raise TypeError(f"master_weights must be a bool, got {master_weights!r}")
    if master_weights and DTYPE_BYTES[param] >= 4:
        raise ValueError(
            f"master_weights=True keeps a float32 copy of float16/bfloat16 parameters; "
            f"param_dtype={param} needs none"
        )
    if master_weights and state_dtype is not None and _dtype_name("state_dtype", state_dtype) != "float32":
        raise ValueError(f"master_weights=True updates the float32 master copy with float32 state; "
                         f"state_dtype={_dtype_name('state_dtype', state_dtype)} does not fit it")
    if state_dtype is None:
        state = "float32" if master_weights else param
    else:
        state = _dtype_name("state_dtype", state_dtype)
        if state not in ("float32", "float64"):
            raise ValueError(f"state_dtype must be None, float32 or float64, got {state}")
        if DTYPE_BYTES[state] < DTYPE_BYTES[param]:
            raise ValueError(f"state_dtype={state} is narrower than param_dtype={param}")
    if n_tensors is None:
        arrays = len(shapes) if shapes is not None else min(n, 1)
    else:
        arrays = _check_count("n_tensors", n_tensors)
        if shapes is not None and arrays != len(shapes):
            raise ValueError(f"n_tensors={n_tensors!r} but shapes= lists {len(shapes)} arrays")
        if arrays == 0 and n > 0:
            raise ValueError(f"n_tensors=0 cannot hold n_params={n_params!r} parameters")
    if history_size is not None and name != "lbfgs":
        raise ValueError(f"history_size={history_size!r} applies to 'lbfgs' only, not {name!r}")
    if name in SHAPED and (state_dtype is not None or master_weights):
        raise ValueError(f"{name!r} has no state_dtype or master_weights (it is not an elementwise optimizer)")
    width = DTYPE_BYTES[state]

    if name == "adafactor":
        if shapes is None:
            raise ValueError("'adafactor' needs shapes=: its factored state depends on the parameters' shapes")
        elements = sum(_adafactor_elements(shape) for shape in shapes)
        buffers: tuple[str, ...] = ("row_var + col_var (2-d+)", "variance (0-d, 1-d)")
        optimizer_state = elements * width
    elif name == "lbfgs":
        h = 100 if history_size is None else _check_count("history_size", history_size)
        if h < 1:
            raise ValueError(f"history_size must be >= 1, got {history_size!r}")
        # old_dirs, old_stps: h vectors each; d, prev_flat_grad; scalars ro, al (h each), H_diag
        optimizer_state = ((2 * h + 2) * n + 2 * h + 1) * width
        buffers = (f"old_dirs, old_stps ({h} each)", "d", "prev_flat_grad")
    else:
        buffers, scalars = OPTIMIZERS[name]
        optimizer_state = len(buffers) * n * width + 4 * len(scalars) * arrays  # the 0-d ones are float32
    return MemoryEstimate(
        optimizer=name, n_params=n, param_dtype=param, grad_dtype=grad, state_dtype=state,
        params=n * DTYPE_BYTES[param], grads=n * DTYPE_BYTES[grad], optimizer_state=optimizer_state,
        master_weights=4 * n if master_weights else 0, buffers=buffers,
    )


def _adafactor_elements(shape: tuple[int, ...]) -> int:
    """Elements of Adafactor's state for one parameter (numpy_optim.Adafactor._buffer_layout)."""
    if len(shape) >= 2:
        return math.prod(shape[:-1]) + math.prod(shape[:-2]) * shape[-1]  # row_var, col_var
    return math.prod(shape)  # variance


def _check_count(name: str, value: Any) -> int:
    """An int >= 0; an integral float (7e9) is taken as its int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer >= 0, got {value!r} ({type(value).__name__})")
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)  # type: ignore[call-overload]  # (an Integral, or a float that is one)


def _check_shapes(shapes: Any) -> list[tuple[int, ...]]:
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Sequence):
        raise TypeError(f"shapes must be a sequence of shapes (tuples of ints), got {type(shapes).__name__}")
    checked = []
    for index, shape in enumerate(shapes):
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
            raise TypeError(f"shapes[{index}] must be a tuple of ints, got {shape!r}")
        checked.append(tuple(_check_count(f"shapes[{index}][{axis}]", d) for axis, d in enumerate(shape)))
    return checked


def _optimizer_name(optimizer: str) -> str:
    """The canonical name: lower case, options after the base in alphabetical order."""
    base, *options = [part.strip() for part in optimizer.lower().split("+")]
    name = "+".join([base, *sorted(options)])
    if len(set(options)) != len(options) or (name not in OPTIMIZERS and name not in SHAPED):
        raise ValueError(f"optimizer must be one of {', '.join([*OPTIMIZERS, *SHAPED])}; got {optimizer!r}")
    return name


def _dtype_name(name: str, value: Any) -> str:
    """float16, bfloat16, float32 or float64, from a name or anything numpy.dtype takes."""
    if isinstance(value, str) and value in DTYPE_BYTES:
        return value
    if value is None or isinstance(value, (bool, numbers.Number)):
        raise TypeError(f"{name} must be a dtype or its name (float16, bfloat16, float32, float64), got {value!r}")
    try:
        dtype = np.dtype(value)
    except TypeError:
        if isinstance(value, str):
            raise ValueError(f"{name} must be float16, bfloat16, float32 or float64, got {value!r}") from None
        raise TypeError(f"{name} must be a dtype or its name (float16, bfloat16, float32, float64), "
                        f"got {value!r}") from None
    if dtype.name not in DTYPE_BYTES:
        raise ValueError(f"{name} must be float16, bfloat16, float32 or float64, got {dtype.name}")
    return dtype.name


# --------------------------------------------------------------------------------------
# The specification's tables
# --------------------------------------------------------------------------------------


def format_bytes(n: int, unit: str | None = None) -> str:
    """``28 GB`` (GB = 1e9 bytes); ``unit`` one of GB, MB, kB, B (default: the largest below ``n``)."""
    units = {"GB": 10**9, "MB": 10**6, "kB": 10**3, "B": 1}
    if unit is None:
        unit = next((u for u, size in units.items() if n >= size), "B")
    if unit not in units:
        raise ValueError(f"unit must be one of {', '.join(units)}, got {unit!r}")
    return f"{n / units[unit]:g} {unit}"


def format_count(n: int) -> str:
    """``7B`` for 7e9, ``125M`` for 1.25e8; other counts as digits."""
    for suffix, size in (("B", 10**9), ("M", 10**6)):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


#: The tables :func:`memory_table` prints: two of the specification's and one beyond it.
TABLES = ("overhead", "training", "mixed")


def memory_table(table: str = "training", n_params: int | None = None) -> list[str]:
    """One of the specification's memory tables, as markdown lines, computed.

    Parameters
    ----------
    table : {"overhead", "training", "mixed"}
        ``"overhead"``: the specification's "Memory overhead per optimizer" (state of SGD,
        SGD with momentum and Adam/AdamW for 7B float32 parameters: 0, 28, 56 GB).
        ``"training"``: its "Training memory vs inference memory" (70B float32 parameters
        with Adam: weights 280, state 560, gradients 280, training 1120, inference 280 GB).
        ``"mixed"``: not in the specification; its section 3 in numbers (70B parameters,
        AdamW): float32, bfloat16 with bfloat16 state, with float32 state, and with float32
        state and master weights.
    n_params : int, optional
        Defaults to the specification's 7B (overhead) or 70B (the others).

    Examples
    --------
    >>> print("\\n".join(memory_table("overhead")))
    | Optimizer | Extra state per parameter | Total state for 7B model (float32) |
    |---|---|---|
    | SGD (no momentum) | 0 | 0 GB |
    | SGD + Momentum | 1 buffer (momentum_buffer) | 28 GB |
    | Adam / AdamW | 2 buffers (exp_avg, exp_avg_sq) | 56 GB |
    """
    if not isinstance(table, str) or table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}, got {table!r}")
    n = _check_count("n_params", (7 * _GB if table == "overhead" else 70 * _GB) if n_params is None else n_params)
    label = format_count(n)
    if table == "overhead":
        lines = [f"| Optimizer | Extra state per parameter | Total state for {label} model (float32) |",
                 "|---|---|---|"]
        for title, names in (("SGD (no momentum)", ("sgd",)), ("SGD + Momentum", ("sgd+momentum",)),
                             ("Adam / AdamW", ("adam", "adamw"))):
            (estimate, *others) = [estimate_training_memory(n, name) for name in names]
            assert all(other.optimizer_state == estimate.optimizer_state for other in others), names
            k = len(estimate.buffers)
            extra = f"{k} buffer{'s' if k > 1 else ''} ({', '.join(estimate.buffers)})" if k else "0"
            lines.append(f"| {title} | {extra} | {format_bytes(estimate.optimizer_state, 'GB')} |")
        return lines
    if table == "training":
        e = estimate_training_memory(n, "adam")
        return [
            f"| Component ({label} parameters, float32, Adam) | Size |", "|---|---|",
            f"| Model weights | {format_bytes(e.params, 'GB')} |",
            f"| Optimizer state ({' + '.join(e.buffers)}) | {format_bytes(e.optimizer_state, 'GB')} |",
            f"| Gradients | {format_bytes(e.grads, 'GB')} |",
            f"| **Total training** | **{format_bytes(e.total, 'GB')}** |",
            f"| **Total inference** | **{format_bytes(e.inference, 'GB')}** (weights only) |",
        ]
    setups = (
        ("float32", dict(param_dtype="float32")),
        ("bfloat16, bfloat16 state", dict(param_dtype="bfloat16")),
        ("bfloat16, float32 state", dict(param_dtype="bfloat16", state_dtype="float32")),
        ("bfloat16, float32 state + master weights", dict(param_dtype="bfloat16", master_weights=True)),
    )
    lines = [f"| AdamW, {label} parameters | Weights | Gradients | State | Master weights | Total training |",
             "|---|---|---|---|---|---|"]
    for title, options in setups:
        e = estimate_training_memory(n, "adamw", **options)
        sizes = (e.params, e.grads, e.optimizer_state, e.master_weights, e.total)
        lines.append(f"| {title} | " + " | ".join(format_bytes(s, "GB") for s in sizes) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m numpy_optim.memory``: the tables, or one estimate given ``--params``."""
    parser = argparse.ArgumentParser(prog="python -m numpy_optim.memory", description=main.__doc__)
    parser.add_argument("--table", choices=TABLES, help="print this table only (default: all)")
    parser.add_argument("--params", help="estimate for this many parameters (e.g. 7e9) instead")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--param-dtype", default="float32")
    parser.add_argument("--grad-dtype")
    parser.add_argument("--state-dtype")
    parser.add_argument("--master-weights", action="store_true")
    args = parser.parse_args(argv)
    if args.params is not None:
        try:
            count: Any = float(args.params) if any(c in args.params for c in ".eE") else int(args.params)
            estimate = estimate_training_memory(
                count, args.optimizer, param_dtype=args.param_dtype, grad_dtype=args.grad_dtype,
                state_dtype=args.state_dtype, master_weights=args.master_weights,
            )
        except (TypeError, ValueError) as error:
            parser.error(str(error))
        print(estimate)
        return
    print("\n\n".join("\n".join(memory_table(name)) for name in ([args.table] if args.table else TABLES)))


if __name__ == "__main__":
    main()
