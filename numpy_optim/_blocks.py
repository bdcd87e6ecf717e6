"""How the optimizers run their kernels: blocked, batched and threaded NumPy, or compiled.

An optimizer update is elementwise: element ``k`` of every output depends only on element
``k`` of the inputs. Each optimizer has one NumPy kernel (``sgd_update_``,
``adam_update_``: ``kernel(arrays, scratch, k)``, whole arrays or blocks of them, work
arrays passed in) and its compiled twin (numpy_optim/_compiled.py). :func:`run` applies
the NumPy kernel to a group of parameters with equal hyperparameters

* into scratch buffers (``out=``) that belong to the thread and are reused from step to
  step, so a steady-state step allocates nothing the size of a parameter;
* block by block (:attr:`Settings.block_bytes` per array), so the dozen passes of an
  Adam update over one block hit cache instead of memory;
* over threads for large parameters, contiguous runs of blocks per thread (NumPy
  releases the GIL inside ufunc loops);
* with small parameters gathered into one block-sized batch (exact copies), so the ~14
  ufunc calls of an Adam update are paid once per batch instead of once per parameter.

Every element goes through the same IEEE operations as the kernel on whole arrays, so
the results are bitwise identical (``tests/unit/test_blocked.py``); ``settings.enabled =
False`` (or ``with configured(enabled=False):``) runs the NumPy kernel on whole arrays,
the reference. :func:`run_compiled` calls a compiled kernel once for a whole group, on a
table of the arrays' addresses (numba releases the GIL), cutting large groups into equal
parts over the same threads.

Floating-point errors behave as NumPy's: workers run in a copy of the caller's context,
so ``np.errstate`` applies to them too. Under ``np.errstate(all="raise")`` a step that
raises leaves its arrays partly updated, as NumPy would, though not at the same point.
(The compiled kernels cannot raise: numpy_optim/_backend.py keeps such steps on NumPy.)

``NUMPY_OPTIM_THREADS`` (default: the cores this process may run on) sets
:attr:`Settings.threads`, for both backends.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np

Kernel = Callable[[list[np.ndarray], list[np.ndarray], Any], None]


def _default_threads() -> int:
    """``$NUMPY_OPTIM_THREADS`` if set, else the number of cores this process may run on."""
    configured = os.environ.get("NUMPY_OPTIM_THREADS", "").strip()
    if configured:
        try:
            threads = int(configured)
            if threads < 1:
                raise ValueError
            return threads
        except ValueError:
            raise ValueError(
                f"NUMPY_OPTIM_THREADS must be an integer >= 1 (the threads a step may use), got {configured!r}"
            ) from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Settings:
    """How the optimizers run their kernels (module-level: ``numpy_optim._blocks.settings``).

    Attributes
    ----------
    enabled : bool
        False: the NumPy backend runs each parameter's whole arrays through its kernel,
        allocating its work arrays (the reference). The compiled backend ignores it.
    block_bytes : int
        Bytes per array in one block (512 KiB: 131,072 float32 elements). Smaller blocks
        keep the seven arrays an Adam block touches in L2 (2 MiB on the reference machine),
        but every ufunc call then ends sooner, and with two threads each call end is a
        chance to wait for the GIL: measured on the reference machine, AdamW on 10M
        float32 took 32 / 23 / 20 / 22 ms with 128 / 256 / 512 / 1024 KiB blocks.
    threads : int
        Threads a step may use (the calling thread plus ``threads - 1`` pool workers).
        Defaults to ``$NUMPY_OPTIM_THREADS``, else the number of cores this process may
        run on.
    parallel_min_bytes : int
        A group of parameters smaller than this (per array) runs in the calling thread
        only. Every ufunc call releases and re-takes the GIL, and each time the other
        thread holds it the wait costs a thread wake-up: measured on a 2-core VM, a second
        thread pays off for one 10M-element parameter (40 MB) but not for 2.4M elements
        spread over 200 parameters.
    batch_max_fraction : int
        Parameters of at most ``block / batch_max_fraction`` elements are gathered into
        block-sized batches; larger ones are processed in place, block by block.
        (Gathering larger ones too, to give threads longer ufunc calls, was measured
        slower: the copies cost more than the threads win.)
    compiled_parallel_min_bytes : int
        On the compiled backend, a group smaller than this (per array, 1 MiB: 262,144
        float32 elements) runs in the calling thread; a larger one is cut into
        ``4 * threads`` parts of equal size, which the threads take in turn.
    """

    enabled: bool = True
    block_bytes: int = 512 * 1024
    threads: int = _default_threads()
    parallel_min_bytes: int = 16 * 1024 * 1024
    batch_max_fraction: int = 32
    compiled_parallel_min_bytes: int = 1024 * 1024

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, check_setting(name, value))


#: Each integer setting's smallest value (a block holds at least one float64).
_MINIMUM = {"block_bytes": 8, "threads": 1, "parallel_min_bytes": 0, "batch_max_fraction": 1,
            "compiled_parallel_min_bytes": 0}


def check_setting(name: str, value: Any) -> Any:
    """A valid value of setting ``name``: ``enabled`` a bool, the others ints at least
    their :data:`_MINIMUM` (a TypeError or ValueError naming the setting otherwise)."""
    if name == "enabled":
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"Invalid setting enabled: {value!r} (expected a bool)")
        return bool(value)
    if name not in _MINIMUM:
        raise TypeError(f"Unknown setting {name!r}; expected one of {sorted(['enabled', *_MINIMUM])}")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Invalid setting {name}: {value!r:.80} (expected an int)")
    if not _MINIMUM[name] <= value < 2**62:
        raise ValueError(f"Invalid setting {name}: {value!r:.80} (expected an int in [{_MINIMUM[name]}, 2**62))")
    return int(value)


settings = Settings()


@contextlib.contextmanager
def configured(**changes: Any) -> Iterator[Settings]:
    """Temporarily change :data:`settings` (e.g. ``configured(enabled=False)``)."""
    names = {f.name for f in fields(Settings)}
    unknown = set(changes) - names
    if unknown:
        raise TypeError(f"Unknown setting(s) {sorted(unknown)}; expected some of {sorted(names)}")
    changes = {name: check_setting(name, value) for name, value in changes.items()}  # all, before any is set
    saved = {name: getattr(settings, name) for name in changes}
    for name, value in changes.items():
        setattr(settings, name, value)
    try:
        yield settings
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


def blockable(arrays: Sequence[np.ndarray]) -> bool:
    """Whether these arrays can go through the blocked path (else: the plain kernel).

    Every array must be C-contiguous (so a flat view lines up element ``k`` of each), and
    the parameter may not overlap its gradient (the plain kernel writes the parameter
    before it has finished reading the gradient; blocks would interleave differently).
    (Overlaps between entries, or with state buffers put in by hand, are not checked.)
    """
    for array in arrays:
        if not array.flags.c_contiguous:
            return False
    param, grad = arrays[0], arrays[1]
    if param.base is None and grad.base is None:  # two arrays that own their memory
        return param is not grad
    return not np.may_share_memory(param, grad)


def group_key(entry: dict[str, Any], hyper: dict[str, Any], *extra: Any) -> tuple[Any, ...]:
    """Entries with equal keys may share one kernel call: same dtype, same hyperparameters.

    Equal means bit for bit (``repr``: ``0.0`` and ``-0.0`` are equal as dict keys, but
    ``-lr * g`` tells them apart in the sign of a zero). An entry with no overrides of its
    own (only ``params`` and ``grad``) has exactly the optimizer's defaults.
    """
    overrides = repr(tuple(hyper.values())) if len(entry) > 2 else None
    return (entry["params"].dtype, overrides, *extra)


# --------------------------------------------------------------------------------------
# Per-thread scratch, reused across steps
# --------------------------------------------------------------------------------------

_local = threading.local()


def reserve(items: Sequence[Sequence[np.ndarray]], n_scratch: int) -> None:
    """Allocate now the calling thread's work rows that :func:`run` will use on ``items``
    (a step calls it before its first write, so a MemoryError there changes nothing; a
    pool worker allocates its own rows on its first task, once per dtype)."""
    if not items or not settings.enabled:
        return
    dtype = items[0][0].dtype
    block = max(1, settings.block_bytes // dtype.itemsize)
    _work_rows(dtype, n_scratch, block)
    if len(items) > 1 and any(arrays[0].size <= block // max(1, settings.batch_max_fraction) for arrays in items):
        _scratch_rows(dtype, len(items[0]), block, "gather")


def _work_rows(dtype: np.dtype, rows: int, block: int) -> list[np.ndarray]:
    """The kernel's ``rows`` scratch rows, and for float32 one float64 row more (the work
    row of :func:`numpy_optim._fma.fma`, which rounds float32 multiply-adds once)."""
    work = _scratch_rows(dtype, rows, block, "kernel")[:rows]
    if dtype == np.float32:
        work = [*work, _scratch_rows(np.dtype(np.float64), 1, block, "wide")[0]]
    return work


def _scratch_rows(dtype: np.dtype, rows: int, block: int, purpose: str) -> list[np.ndarray]:
    """This thread's work rows for ``purpose`` ("kernel" or "gather"): ``rows`` arrays of
    ``block`` elements of ``dtype``, allocated on first use and reused by every later step."""
    cache: dict[tuple[np.dtype, str], list[np.ndarray]] | None = getattr(_local, "scratch", None)
    if cache is None:
        cache = _local.scratch = {}
    key = (dtype, purpose)
    views = cache.get(key)
    if views is None or len(views) < rows or len(views[0]) != block:
        cache.pop(key, None)  # drop the old one before allocating
        views = cache[key] = list(np.empty((max(rows, 1), block), dtype))
    return views


# --------------------------------------------------------------------------------------
# Tasks: a block of one large parameter, or a batch of small ones
# --------------------------------------------------------------------------------------


class _Task(NamedTuple):
    """A unit of work: elements ``[start, stop)`` of one parameter's flat arrays, updated in
    place (``batch`` empty), or several small parameters gathered into scratch rows,
    updated there and scattered back (``batch`` their array tuples, ``arrays`` unused)."""

    size: int
    arrays: list[np.ndarray]
    start: int
    stop: int
    batch: list[Sequence[np.ndarray]]


def _flat(array: np.ndarray) -> np.ndarray:
    return array if array.ndim == 1 else array.reshape(-1)  # a view: the array is C-contiguous


def _plan(items: Sequence[Sequence[np.ndarray]], block: int, batch_max: int) -> list[_Task]:
    """Blocks of the large parameters, block-sized batches of the small ones."""
    tasks: list[_Task] = []
    batch: list[Sequence[np.ndarray]] = []
    batch_size = 0

    def close_batch() -> None:
        if len(batch) == 1:  # nothing to gather: update it in place
            tasks.append(_Task(batch_size, [_flat(a) for a in batch[0]], 0, batch_size, []))
        elif batch:
            tasks.append(_Task(batch_size, [], 0, 0, batch))

    for arrays in items:
        n = arrays[0].size
        if n <= batch_max:
            if batch_size + n > block:
                close_batch()
                batch, batch_size = [], 0
            batch.append(arrays)
            batch_size += n
        else:
            flat = [_flat(a) for a in arrays]
            for start in range(0, n, block):
                stop = min(n, start + block)
                tasks.append(_Task(stop - start, flat, start, stop, []))
    close_batch()
    return tasks


class _Job(NamedTuple):
    """What every task of one :func:`run` call shares."""

    kernel: Kernel
    constants: Any
    written: tuple[int, ...]
    n_arrays: int
    n_scratch: int
    dtype: np.dtype
    block: int


def _run_tasks(tasks: Sequence[_Task], job: _Job) -> None:
    kernel, constants = job.kernel, job.constants
    scratch_rows = _work_rows(job.dtype, job.n_scratch, job.block)
    gather_rows: list[np.ndarray] = []
    for n, arrays, start, stop, batch in tasks:
        scratch = [row[:n] for row in scratch_rows]
        if not batch:
            if start or stop != arrays[0].size:
                arrays = [a[start:stop] for a in arrays]
            kernel(arrays, scratch, constants)
            continue
        # A batch: gather (exact copies), update the gathered rows, scatter what was written.
        if not gather_rows:
            gather_rows = _scratch_rows(job.dtype, job.n_arrays, job.block, "gather")[: job.n_arrays]
        gathered = [row[:n] for row in gather_rows]
        for i, row in enumerate(gathered):
            np.concatenate([item[i] for item in batch], axis=None, out=row)
        kernel(gathered, scratch, constants)
        offset = 0
        for item in batch:
            end = offset + item[0].size
            for i in job.written:
                np.copyto(_flat(item[i]), gathered[i][offset:end])
            offset = end


# --------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)


def _forget_pool_in_child() -> None:
    """After a fork: the parent's threads are gone, and its lock may have been held."""
    global _pool_lock, _pool
    _pool_lock, _pool = threading.Lock(), None


os.register_at_fork(after_in_child=_forget_pool_in_child)


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared worker pool (recreated after a fork or a change of ``settings.threads``)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != workers:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)
            _pool = (os.getpid(), workers, ThreadPoolExecutor(workers, thread_name_prefix="numpy_optim"))
        return _pool[2]


def _split(tasks: list[_Task], parts: int) -> list[list[_Task]]:
    """Contiguous runs of tasks with about equal numbers of elements."""
    total = sum(task.size for task in tasks)
    chunks: list[list[_Task]] = [[] for _ in range(parts)]
    done = 0
    for task in tasks:
        chunks[min(parts - 1, done * parts // total)].append(task)
        done += task.size
    return [chunk for chunk in chunks if chunk]


def run(
    kernel: Kernel,
    items: Sequence[Sequence[np.ndarray]],
    constants: Any,
    *,
    written: Sequence[int],
    n_scratch: int,
    aligned: bool = False,
) -> None:
    """Apply ``kernel`` to every element of every tuple of arrays in ``items``, in place.

    Parameters
    ----------
    kernel : callable
        ``kernel(arrays, scratch, constants)``, see the module docstring.
    items : list of tuples of ndarray
        One tuple per parameter (parameter, gradient, buffers...); all arrays of all
        tuples have one dtype, each tuple one shape, and all pass :func:`blockable`.
    constants : object
        Passed to every kernel call unchanged.
    written : sequence of int
        Positions in a tuple that the kernel writes (copied back after a batch).
    n_scratch : int
        Work arrays the kernel needs.
    aligned : bool
        For the fused kernels, whose arithmetic depends on where an element sits in its
        parameter (torch's vector body and scalar tail, numpy_optim/_fused.py): every block
        starts at a multiple of :data:`ALIGN` elements from its parameter's start, and no
        parameter is gathered into a batch.
    """
    if not items:
        return
    if not settings.enabled:  # the reference: each parameter's whole arrays, one kernel call
        for arrays in items:
            kernel(list(arrays), whole_scratch(arrays[0].shape, arrays[0].dtype, n_scratch), constants)
        return
    dtype = items[0][0].dtype
    block = max(1, settings.block_bytes // dtype.itemsize)
    if aligned:
        block += -block % ALIGN
    n = items[0][0].size
    if len(items) == 1 and n <= block:  # one small parameter: one kernel call, nothing to plan
        rows = _work_rows(dtype, n_scratch, block)
        kernel([_flat(a) for a in items[0]], [row[:n] for row in rows], constants)
        return
    tasks = _plan(items, block, -1 if aligned else block // max(1, settings.batch_max_fraction))
    job = _Job(kernel, constants, tuple(written), len(items[0]), n_scratch, dtype, block)
    total = sum(task.size for task in tasks)
    threads = min(settings.threads, len(tasks))
    if threads <= 1 or total * dtype.itemsize < settings.parallel_min_bytes:
        _run_tasks(tasks, job)
        return
    _fan_out(_run_tasks, _split(tasks, threads), job)


#: The fused kernels' blocks and parts start at multiples of this many elements from their
#: parameter's start (a multiple of every lane count: 4 float64, 8 float32, 16 float16).
ALIGN = 64


def whole_scratch(shape: tuple[int, ...], dtype: np.dtype, n_scratch: int) -> list[np.ndarray]:
    """Fresh work arrays for a kernel applied to whole arrays of this shape and dtype."""
    rows = [np.empty(shape, dtype) for _ in range(n_scratch)]
    return rows + [np.empty(shape, np.float64)] if dtype == np.float32 else rows


def _fan_out(function: Callable[..., None], chunks: Sequence[Any], *args: Any) -> None:
    """``function(chunk, *args)`` for every chunk, on the calling thread and up to
    ``settings.threads - 1`` pool workers, each taking the next chunk nobody has taken.

    Taking chunks in turn, rather than one fixed share each, means a worker that wakes
    late (or shares a core for a while) just takes fewer: the calling thread never waits
    idle for a share that has not started.
    """
    tickets = itertools.count()  # next() on a count is atomic under the GIL

    def take_chunks() -> None:
        for ticket in tickets:
            if ticket >= len(chunks):
                return
            function(chunks[ticket], *args)

    pool = _executor(settings.threads - 1)
    # Each worker runs in a copy of the caller's context, so np.errstate applies there too.
    futures: list[Future[None]] = [
        pool.submit(contextvars.copy_context().run, take_chunks) for _ in range(min(len(chunks), settings.threads) - 1)
    ]
    try:
        take_chunks()
    finally:
        # Never return (or raise) while a worker may still be writing into the arrays.
        errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


# --------------------------------------------------------------------------------------
# The compiled kernels (numpy_optim/_compiled.py): one call per group, or per part of one
# over threads for a large group
# --------------------------------------------------------------------------------------


def address(array: np.ndarray) -> int:
    """The address of an array's first element."""
    return int(array.__array_interface__["data"][0])


def table_row(arrays: Sequence[np.ndarray], arity: int) -> tuple[int, ...]:
    """A compiled kernel's table row for one parameter: its length, then the addresses of
    its ``arity`` arrays (parameter, gradient, buffers). A parameter with fewer buffers
    (no momentum, no amsgrad) puts its own address in the places left over, which the
    kernel, compiled without that option, never touches."""
    addresses = [address(a) for a in arrays]
    return (arrays[0].size, *addresses, *addresses[:1] * (arity - len(addresses)))


def run_compiled(kernel: Any, rows: Any, constants: np.ndarray, parts: dict[int, Any] | None = None) -> None:
    """Apply a compiled ``kernel(table, constants)`` to a group's parameters, in place.

    ``rows`` is the group's table (an int64 array, or a list of :func:`table_row` rows).
    The arrays must be alive, C-contiguous, of ``constants``' dtype, and stay where the
    rows say: the optimizers' plan keeps weak references to them, and NumPy refuses to
    resize an array that has one. A group of at least
    :attr:`Settings.compiled_parallel_min_bytes` per array is cut into four parts of
    equal size per thread, one table (one compiled call) each, which the threads take in
    turn; the kernels release the GIL. ``parts``, if given, keeps those cuts for the next
    step with the same table (the plan's, one dict per group).
    """
    table = rows if isinstance(rows, np.ndarray) else np.array(rows, np.int64)
    threads = settings.threads
    if threads > 1:
        total = int(table[:, 0].sum())
        if total * constants.dtype.itemsize >= settings.compiled_parallel_min_bytes:
            cut = parts.get(threads) if parts is not None else None
            if cut is None:
                cut = _parts(table, 4 * threads, total, constants.dtype.itemsize)
                if parts is not None:
                    parts[threads] = cut
            _fan_out(kernel, cut, constants)
            return
    kernel(table, constants)


def _parts(table: np.ndarray, parts: int, total: int, itemsize: int) -> list[np.ndarray]:
    """``table`` cut into ``parts`` tables of about ``total / parts`` elements each; a
    parameter that straddles a cut is cut there too (its addresses moved on by the
    elements before the cut), at a multiple of :data:`ALIGN` elements from its start (for
    the fused kernels: then every part of a parameter but its last has no tail). The other
    updates are elementwise, so the cuts change no result."""
    share = max(1, -(-total // parts))
    share += -share % ALIGN
    ends = np.cumsum(table[:, 0])
    starts = ends - table[:, 0]
    cuts = []
    for cut in range(share, total, share):  # moved up to a multiple of ALIGN within its row
        row = int(np.searchsorted(ends, cut, side="right"))
        cuts.append(min(int(ends[row]), int(starts[row]) + -(-(cut - int(starts[row])) // ALIGN) * ALIGN))
    bounds = sorted(set([0, *cuts, total]))
    out = []
    for low, high in zip(bounds, bounds[1:]):
        first = int(np.searchsorted(ends, low, side="right"))  # the row holding element `low`
        last = int(np.searchsorted(ends, high, side="left"))  # the row holding element `high - 1`
        chunk = table[first : last + 1].copy()
        before = low - int(ends[first] - table[first, 0])  # elements of the first row before the cut
        chunk[0, 0] -= before
        chunk[0, 1:] += before * itemsize
        chunk[-1, 0] -= int(ends[last]) - high  # elements of the last row after the cut
        out.append(chunk)
    return out
