"""Which implementation runs the kernels: NumPy (the reference) or numba (compiled).

``NUMPY_OPTIM_BACKEND=auto|numpy|numba`` (default ``auto``) chooses for the process;
:func:`use_backend` changes it for a block of code (per thread and context, like
``np.errstate``); :func:`backend` says which one a step would use now.

* ``auto``: numba when it imports (``pip install "numpy_optim[fast]"``), else NumPy.
* ``numpy``: always the NumPy kernels.
* ``numba``: the compiled kernels; an error if numba cannot be imported.

numba is imported at the first step that could use it, never by ``import numpy_optim``.
Even on the numba backend a group of arrays takes the NumPy kernel when the compiled one
does not cover it: a dtype other than float32 and float64 (float16 and bfloat16 entries
of SGD, Adam, AdamW and Adagrad, and every entry with ``state_dtype`` or master weights,
run on float32 copies, which it covers), an array that is not
C-contiguous or a parameter overlapping its gradient, and any step run under
``np.errstate`` set to ``"raise"`` or ``"call"`` (the compiled code cannot raise
FloatingPointError; with ``"warn"``, the default, or ``"print"`` and ``"log"`` it is
silent where NumPy would report). The
results are bitwise the same either way (``tests/unit/test_backend.py``), but for the
sign and payload of NaNs, which NumPy's own vector and scalar loops do not agree on.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

BACKENDS = ("auto", "numpy", "numba")
_VARIABLE = "NUMPY_OPTIM_BACKEND"
_choice: contextvars.ContextVar[str | None] = contextvars.ContextVar("numpy_optim_backend", default=None)
_numba: ModuleType | None = None
_numba_error: BaseException | None = None


def _check(name: Any, what: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in BACKENDS:
        raise ValueError(f"Invalid {what}: {name!r} (expected one of {', '.join(BACKENDS)})")
    return name.strip().lower()


def _chosen() -> str:
    """The backend asked for: :func:`use_backend`'s, else ``$NUMPY_OPTIM_BACKEND``, else auto."""
    choice = _choice.get()
    if choice is None:
        choice = _check(os.environ.get(_VARIABLE, "auto") or "auto", f"environment variable {_VARIABLE}")
    return choice


def compiled() -> ModuleType | None:
    """:mod:`numpy_optim._compiled` if the chosen backend is numba (or auto and numba
    imports), else None. Raises ImportError when numba was asked for and cannot be had."""
    global _numba, _numba_error
    choice = _chosen()
    if choice == "numpy":
        return None
    if _numba is None and _numba_error is None:
        try:
            from . import _compiled

            _numba = _compiled
        except Exception as error:  # not installed, or broken against this NumPy / Python
            _numba_error = error
    if _numba is None and choice == "numba":
        raise ImportError(
            f"The numba backend was asked for ({_VARIABLE}=numba or use_backend('numba')), but numba "
            f"cannot be imported ({type(_numba_error).__name__}: {_numba_error}); "
            "install it with: pip install 'numpy_optim[fast]'"
        ) from _numba_error
    return _numba


def backend() -> str:
    """The backend a step would use here and now: ``"numba"`` or ``"numpy"``.

    >>> with use_backend("numpy"):
    ...     backend()
    'numpy'
    """
    return "numba" if compiled() is not None else "numpy"


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run the optimizers inside the block on ``name`` (``"auto"``, ``"numpy"`` or ``"numba"``).

    Raises ValueError for another name and ImportError for ``"numba"`` when numba cannot
    be imported, before the block runs. Yields the backend that is then active.

    >>> import numpy as np, numpy_optim
    >>> x = np.array([1.0], np.float32)
    >>> with numpy_optim.use_backend("numpy"):
    ...     numpy_optim.SGD([{"params": x, "grad": np.ones(1, np.float32)}], lr=0.5).step()
    >>> x
    array([0.5], dtype=float32)
    """
    token = _choice.set(_check(name, "backend"))
    try:
        active = backend()
    except BaseException:
        _choice.reset(token)
        raise
    try:
        yield active
    finally:
        _choice.reset(token)


def covers(arrays: tuple[np.ndarray, ...]) -> bool:
    """Whether the compiled kernels cover these arrays' dtype (native float32 and float64)."""
    return arrays[0].dtype in _COVERED


_COVERED = (np.dtype(np.float32), np.dtype(np.float64))


def view(address: int, length: int, like: np.ndarray) -> np.ndarray:
    """The 1-d array of ``length`` elements of ``like``'s dtype at ``address``.

    A compiled kernel receives a table of addresses and builds its arrays with this
    (numpy_optim/_compiled.py compiles it to a pointer cast); called from Python it
    makes the same view with ctypes.
    """
    buffer = (ctypes.c_char * (int(length) * like.dtype.itemsize)).from_address(int(address))
    return np.frombuffer(memoryview(buffer), like.dtype)


def errors_raise() -> bool:
    """Whether ``np.errstate`` asks for FloatingPointError (or a callback) on some error."""
    return any(mode in ("raise", "call") for mode in np.geterr().values())
