"""The numba backend (numpy_optim/_backend.py, numpy_optim/_compiled.py) against the NumPy one.

* The compiled kernels give bit for bit the NumPy kernels' results (a Hypothesis property
  over optimizers, flags, dtypes, shapes, special values and schedules), and so do the
  numba ports of the multiply-adds of numpy_optim/_fma.py; the compiled code has no
  fast-math and vectorizes.
* Arrays the compiled kernels do not cover (float16, non-contiguous, a gradient aliasing
  its parameter) and steps under ``np.errstate(...="raise"/"call")`` take the NumPy kernel.
* Choosing the backend: ``$NUMPY_OPTIM_BACKEND``, :func:`numpy_optim.use_backend` (per
  thread, restored on exit), a numba that cannot be imported, ``import numpy_optim``
  without numba, fork and threads.
* The step plan (``Optimizer._plan``) notices every change to entries, arrays,
  hyperparameters and buffers, and holds no array alive.

Tests marked ``numba`` need numba; the others pass without it (``pytest -m "not numba"``).
Every bitwise comparison of a parameter or buffer is counted; the module reports the
total on stderr at teardown (:func:`bitwise_comparisons`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import math
import multiprocessing
import os
import queue
import re
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpy_optim import SGD, Adagrad, Adam, AdamW, _backend, _blocks, _fma, backend, use_backend
from numpy_optim.adam import adam_compiled
from numpy_optim.sgd import sgd_compiled

VARIABLE = "NUMPY_OPTIM_BACKEND"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Seconds a thread, barrier or child process may take before the test calls it hung: a
#: guard against hangs, never a timing the test relies on (a loaded machine stays far below).
HANG_S = 300

#: The backend a test's optimizer runs on; the reference always runs on NumPy.
SIDES = [pytest.param("numpy", id="numpy"), pytest.param("numba", id="numba", marks=pytest.mark.numba)]

# --------------------------------------------------------------------------------------
# Counting bitwise comparisons
# --------------------------------------------------------------------------------------

_COUNTS = {"compared": 0, "differing": 0, "nan_bits_only": 0, "fma_elements": 0}


def bitwise_comparisons() -> dict[str, int]:
    """How many parameter / buffer arrays were compared byte for byte so far, how many
    differed (a failure), how many differed only in the bits of NaNs (elements NaN on both
    sides; allowed where noted), and how many single fma results were compared bit for bit."""
    return dict(_COUNTS)


@pytest.fixture(scope="module", autouse=True)
def _report_bitwise_comparisons(request):
    yield
    counts = bitwise_comparisons()
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        sys.stderr.write(
            f"\nbitwise backend comparisons: {counts['compared']}, differing: {counts['differing']}\n"
            f"(arrays equal but for NaN sign/payload bits: {counts['nan_bits_only']}; "
            f"fma results compared bit for bit: {counts['fma_elements']})\n"
        )
        sys.stderr.flush()


def _describe_difference(x: np.ndarray, y: np.ndarray) -> str:
    """Where two arrays of one shape and dtype differ: the first difference (one that is not
    NaN against NaN, if any), with both values and bits, and whether only NaN bits differ."""
    if x.shape != y.shape or x.dtype != y.dtype:
        return f"shape/dtype {x.shape} {x.dtype} vs {y.shape} {y.dtype}"
    ints = {2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize]
    xf, yf = x.reshape(-1), y.reshape(-1)
    bad = np.flatnonzero(xf.view(ints) != yf.view(ints))
    both_nan = np.isnan(xf[bad]) & np.isnan(yf[bad])
    i = int(bad[~both_nan][0] if not both_nan.all() else bad[0])
    width = 2 * x.dtype.itemsize
    kind = "only NaN sign/payload bits differ" if both_nan.all() else f"{int((~both_nan).sum())} not NaN in both"
    return (
        f"{bad.size} of {x.size} elements differ ({kind}), e.g. at flat index {i}: "
        f"{xf[i]!r} (0x{int(xf.view(ints)[i]):0{width}x}) vs {yf[i]!r} (0x{int(yf.view(ints)[i]):0{width}x})"
    )


def arrays_of(optimizer) -> list[tuple[str, np.ndarray]]:
    """Every array the optimizer updates or owns: each parameter, then its buffers by name."""
    out = []
    for index, entry in enumerate(optimizer.param_groups):
        out.append((f"params[{index}]", entry["params"]))
        for name, buf in sorted(optimizer.state.get(index, {}).items()):
            out.append((f"state[{index}][{name!r}]", buf))
    return out


def snapshot(optimizer) -> list[tuple[str, bytes]]:
    """Copies of every byte the optimizer updates or owns, and its step counter."""
    return [("step", str(optimizer.state["step"]).encode())] + [(n, a.tobytes()) for n, a in arrays_of(optimizer)]


def assert_bitwise(reference, other, where: str, *, nan_bits: bool = True) -> None:
    """``other``'s parameters and buffers are byte for byte ``reference``'s (counted).

    ``nan_bits=False``: an element that is NaN on both sides may differ in its sign and
    payload bits (which NaN an operation on two NaNs returns, or the sign of NaN under a
    negation, is not the same in NumPy's own loops from one array length to another);
    every other element, and where the NaNs are, must still be bitwise equal.
    """
    ref_arrays, other_arrays = arrays_of(reference), arrays_of(other)
    assert [n for n, _ in ref_arrays] == [n for n, _ in other_arrays], (
        f"{where}: different arrays: {[n for n, _ in ref_arrays]} vs {[n for n, _ in other_arrays]}"
    )
    assert reference.state["step"] == other.state["step"], f"{where}: step counters differ"
    for (name, x), (_, y) in zip(ref_arrays, other_arrays):
        _COUNTS["compared"] += 1
        if x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes():
            continue
        if not nan_bits and x.shape == y.shape and x.dtype == y.dtype:
            ints = {2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize]
            xf, yf = x.reshape(-1), y.reshape(-1)
            bad = xf.view(ints) != yf.view(ints)
            if (np.isnan(xf[bad]) & np.isnan(yf[bad])).all():
                _COUNTS["nan_bits_only"] += 1
                continue
        _COUNTS["differing"] += 1
        pytest.fail(f"{where}: {name} differs: {_describe_difference(x, y)}")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def on(side: str, **settings):
    """Run the optimizers inside on backend ``side`` ("numpy" or "numba"), with ``settings``."""
    with use_backend(side), _blocks.configured(**settings):
        yield


def reference_step(optimizer) -> None:
    """A step computed from scratch: no plan reused, NumPy kernel on whole arrays."""
    optimizer._plan = None
    with use_backend("numpy"), _blocks.configured(enabled=False):
        optimizer.step()
    optimizer._plan = None


def make_entries(shapes, dtype, seed, overrides=None):
    rng = np.random.default_rng(seed)
    entries = []
    for index, shape in enumerate(shapes):
        entry = {"params": rng.standard_normal(shape).astype(dtype), "grad": rng.standard_normal(shape).astype(dtype)}
        entry.update((overrides or {}).get(index, {}))
        entries.append(entry)
    return entries


def twins(cls, kwargs, shapes, dtype=np.float64, seed=0, overrides=None):
    """Two identical optimizers on two identical sets of entries."""
    return (
        cls(make_entries(shapes, dtype, seed, overrides), **kwargs),
        cls(make_entries(shapes, dtype, seed, overrides), **kwargs),
    )


def new_gradients(rng, *optimizers) -> None:
    """The same fresh gradient values, written in place into each optimizer's gradients."""
    for entries in zip(*(o.param_groups for o in optimizers)):
        grad = entries[0]["grad"]
        values = rng.standard_normal(grad.shape).astype(grad.dtype)
        for entry in entries:
            entry["grad"][...] = values


@pytest.fixture
def compiled_calls(monkeypatch):
    """Every call of ``_blocks.run_compiled`` (the compiled path): the addresses of its parameters."""
    calls: list[list[int]] = []
    real = _blocks.run_compiled

    def counting(kernel, rows, constants, parts=None):
        calls.append([int(row[1]) for row in rows])
        return real(kernel, rows, constants, parts)

    monkeypatch.setattr(_blocks, "run_compiled", counting)
    return calls


@pytest.fixture
def numba_missing(monkeypatch):
    """numba as if it could not be imported (whether or not it is installed)."""
    monkeypatch.setattr(_backend, "_numba", None)
    monkeypatch.setattr(_backend, "_numba_error", ImportError("No module named 'numba'"))


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != VARIABLE}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S, cwd=REPO, env=environment
    )
    assert result.returncode == 0, f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


# --------------------------------------------------------------------------------------
# 1. Property: the numba backend is bitwise the NumPy backend
# --------------------------------------------------------------------------------------

LRS = [0.0, -0.0, 1e-3, 0.01, 0.1, 1.0, 3.0]
SPECIALS = ("zero", "tiny", "huge", "nan", "inf", "-inf")


@st.composite
def optimizer_configs(draw):
    kind = draw(st.sampled_from(["SGD", "Adam", "AdamW"]))
    maximize = draw(st.booleans())
    weight_decay = draw(st.sampled_from([0.0, 1e-2, 0.5]))
    if kind == "SGD":
        momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
        nesterov = momentum > 0 and draw(st.booleans())
        dampening = 0.0 if nesterov else draw(st.sampled_from([0.0, 0.3, -0.5]))
        kwargs = dict(momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay)
        override_choices = {
            "lr": st.sampled_from(LRS),
            "weight_decay": st.sampled_from([0.0, 0.1]),
            "maximize": st.booleans(),
        }
        if not nesterov:
            override_choices["momentum"] = st.sampled_from([0.0, 0.9])
            override_choices["dampening"] = st.sampled_from([0.0, 0.5])
    else:
        betas = (draw(st.sampled_from([0.0, 0.3, 0.5, 0.9, 0.999])), draw(st.sampled_from([0.0, 0.5, 0.99, 0.999])))
        eps = draw(st.sampled_from([0.0, 1e-8, 1e-3]))
        kwargs = dict(betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=draw(st.booleans()))
        override_choices = {
            "lr": st.sampled_from(LRS),
            "betas": st.sampled_from([(0.2, 0.9), (0.9, 0.999), (0.0, 0.0)]),
            "eps": st.sampled_from([0.0, 1e-6]),
            "weight_decay": st.sampled_from([0.0, 0.1]),
            "amsgrad": st.booleans(),
            "maximize": st.booleans(),
        }
    kwargs["maximize"] = maximize
    return kind, kwargs, override_choices


_shapes = st.one_of(
    st.just(()),
    st.just((0,)),
    st.integers(1, 300).map(lambda n: (n,)),
    st.tuples(st.integers(1, 17), st.integers(1, 17)),
)


def special_values(rng, shape, dtype, fraction, kinds, scale):
    """Normal values times ``scale``, a ``fraction`` of them replaced by specials of ``kinds``."""
    n = math.prod(shape)
    normal = rng.standard_normal(n) * scale
    choice = rng.integers(0, len(kinds), n)
    special = rng.random(n) < fraction
    table = {
        "zero": np.copysign(0.0, normal),
        "tiny": normal * 1e-10,
        "huge": normal * 1e30,
        "nan": np.full(n, np.nan),
        "inf": np.full(n, np.inf),
        "-inf": np.full(n, -np.inf),
    }
    out = normal.copy()
    for index, kind in enumerate(kinds):
        where = special & (choice == index)
        out[where] = table[kind][where]
    with np.errstate(all="ignore"):
        return out.astype(dtype).reshape(shape)


@pytest.mark.numba
@given(
    config=optimizer_configs(),
    dtype=st.sampled_from([np.float32, np.float64]),
    shapes=st.lists(_shapes, min_size=1, max_size=4),
    big=st.sampled_from([None, None, None, 70_001, 140_003]),
    overrides=st.data(),
    fraction=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    kinds=st.lists(st.sampled_from(SPECIALS), min_size=1, max_size=6, unique=True),
    param_fraction=st.sampled_from([0.0, 0.0, 0.05]),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    steps=st.integers(5, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_numba_backend_is_bitwise_the_numpy_backend_for_any_configuration(
    config, dtype, shapes, big, overrides, fraction, kinds, param_fraction, scale, steps, seed
):
    kind, kwargs, override_choices = config
    cls = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}[kind]
    if big is not None:
        shapes = [*shapes, (big,)]
    per_entry = [
        overrides.draw(st.fixed_dictionaries({}, optional=override_choices), label=f"overrides[{i}]")
        for i in range(len(shapes))
    ]
    rng = np.random.default_rng(seed)

    def make():
        init = np.random.default_rng(seed + 1)
        return [
            {
                "params": special_values(init, shape, dtype, param_fraction, kinds, 1.0),
                "grad": np.zeros(shape, dtype),
                **per_entry[i],
            }
            for i, shape in enumerate(shapes)
        ]

    reference, compiled = cls(make(), lr=0.01, **kwargs), cls(make(), lr=0.01, **kwargs)
    where = f"{kind}({kwargs}) {np.dtype(dtype)} shapes {shapes} overrides {per_entry}"
    with np.errstate(all="ignore"), _blocks.configured(threads=2, compiled_parallel_min_bytes=0):
        for step in range(1, steps + 1):
            lr, entry_lr = LRS[rng.integers(len(LRS))], LRS[rng.integers(len(LRS))]
            for optimizer in (reference, compiled):
                optimizer.defaults["lr"] = lr  # a schedule: a new lr every step
            for a, b in zip(reference.param_groups, compiled.param_groups):
                grad = special_values(rng, a["grad"].shape, dtype, fraction, kinds, scale)
                a["grad"][...] = grad
                b["grad"][...] = grad
                if "lr" in a:
                    a["lr"] = b["lr"] = entry_lr
            with use_backend("numpy"):
                reference.step()
            with use_backend("numba") as active:
                assert active == "numba"
                compiled.step()
            assert_bitwise(reference, compiled, f"{where}, step {step} (lr={lr})", nan_bits=False)


# --------------------------------------------------------------------------------------
# 2. The numba ports of the multiply-adds
# --------------------------------------------------------------------------------------


@functools.cache
def _fma_loops():
    """njit loops applying the scalar fma forms elementwise (compiled once per session)."""
    import numba

    from numpy_optim import _compiled  # registers the numba implementations of the scalar forms

    assert "fastmath" not in _compiled.JIT_OPTIONS
    scalar_fma, scalar_fma_exact = _fma.scalar_fma, _fma.scalar_fma_exact

    @numba.njit(error_model="numpy")
    def loop(a, b, c, out):
        for i in range(a.size):
            out[i] = scalar_fma(a[i], b, c[i])

    @numba.njit(error_model="numpy")
    def loop_exact(a, b, c, out):
        for i in range(a.size):
            out[i] = scalar_fma_exact(a[i], b, c[i])

    return loop, loop_exact


def _specials(dtype) -> np.ndarray:
    info = np.finfo(dtype)
    ints = {np.float32: np.uint32, np.float64: np.uint64}[dtype]
    nan_payloads = {
        np.float32: [0x7FC00001, 0xFFC00000, 0x7F800001, 0xFFA00123],
        np.float64: [0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001, 0xFFF4000000000123],
    }[dtype]
    values = [
        0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, 3.0, 134217729.0, 4097.0,
        info.smallest_subnormal, -info.smallest_subnormal, info.smallest_normal, -info.smallest_normal,
        info.max, -info.max, info.eps, 1.0 + info.eps, 1 / 3,
    ]
    with np.errstate(all="ignore"):
        normal = np.array(values).astype(dtype)
    return np.concatenate([normal, np.array(nan_payloads, ints).view(dtype)])


def _fma_cases(dtype, rng):
    """(name, a, scalar b, c) cases: random bit patterns, magnitudes, cancellations, extremes, specials."""
    ints = {np.float32: np.uint32, np.float64: np.uint64}[dtype]
    bits = 8 * np.dtype(dtype).itemsize
    n = 4096
    specials = _specials(dtype)

    def random_bits(size):
        return rng.integers(0, 2**bits, size=size, dtype=ints).view(dtype)

    def magnitudes(size, low, high):
        signs = rng.choice([-1.0, 1.0], size)
        with np.errstate(all="ignore"):
            return (signs * 10.0 ** rng.uniform(low, high, size)).astype(dtype)

    # 50 scalars b: random bit patterns and the specials (the kernels pass b as a scalar).
    for b in [*random_bits(50 - len(specials)), *specials]:
        yield "random bit patterns", random_bits(n), b, random_bits(n)
    for _ in range(8):
        b = magnitudes(1, -12, 6)[0]
        yield "magnitudes 1e-12..1e6", magnitudes(n, -12, 6), b, magnitudes(n, -12, 6)
        a = magnitudes(n, -12, 6)
        with np.errstate(all="ignore"):
            c = -(a * b)  # c close to -a*b: the product's rounding error is all that is left
        c = (c.view(ints) + rng.integers(-3, 4, n).astype(ints)).view(dtype)
        yield "near cancellations", a, b, c
        low, high = (-300, 300) if dtype == np.float64 else (-44, 38)
        b = magnitudes(1, low, high)[0]
        yield "extremes", magnitudes(n, low, high), b, magnitudes(n, low, high)
    a_grid, c_grid = (x.reshape(-1) for x in np.meshgrid(specials, specials))
    for b in specials:
        yield "grid of specials", a_grid.copy(), b, c_grid.copy()
    if dtype == np.float32:
        # Double-rounding ties: a * b = h (1 - t**2 u**2) exactly (u = 2**-23, a = (1 + t u) h 2**12,
        # b = (1 - t u) 2**-12), h half an ulp of c; c + a*b rounds in float64 to the float32
        # midpoint c + h, but lies just inside it. Both signs of a, c's significand odd or even.
        u = 2.0**-23
        for t in (1, 7, 100, 361):
            c = magnitudes(n, -30, 30)
            half = np.ldexp(1.0, np.frexp(c)[1] - 25)  # c = m 2**e with 0.5 <= |m| < 1: h = 2**(e - 25)
            a = ((1 + t * u) * half * 2.0**12 * rng.choice([-1.0, 1.0], n)).astype(dtype)
            yield "float32 double-rounding ties", a, dtype((1 - t * u) * 2.0**-12), c
    if dtype == np.float64:
        # Above about 2**996 Veltkamp's split (a * (2**27 + 1)) overflows: the exact fma splits
        # the factor times 2**-200 (NumPy: redoing those elements; numba: every factor above
        # 2**990). Products near and beyond the largest float64 too (both round twice there).
        for b in (0.5743491774985174 - 1, 3.0, 1e10, -(2.0**511)):
            yield "operands above 2**900", magnitudes(n, 270, 308), b, magnitudes(n, 250, 308)
        for b in (1e300, -(2.0**1000), 1.7e308):
            yield "b above 2**900", magnitudes(n, -320, 8), b, magnitudes(n, -310, 10)


def test_exact_float64_fma_gives_ieee_signs_of_zero():
    # IEEE 754 fma: an exact zero sum of two zeros keeps their sign if they agree (-0 + -0 = -0),
    # otherwise, like any exact cancellation (2 * 3 - 6), it is +0 in round-to-nearest.
    a = np.array([-0.0, 0.0, -0.0, 2.0, -2.0])
    c = np.array([-0.0, -0.0, 0.0, -6.0, 6.0])
    got = np.concatenate([_fma.fma(a[:3], 1.0, c[:3], exact=True), _fma.fma(a[3:], 3.0, c[3:], exact=True)])
    assert np.signbit(got).tolist() == [True, False, False, False, False]
    assert (got == 0).all()


@pytest.mark.numba
@pytest.mark.parametrize("exact", [False, True], ids=["fma", "fma-exact"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_numba_scalar_fma_ports_are_bitwise_the_numpy_fma(dtype, exact):
    loop = _fma_loops()[exact]
    ints = {np.float32: np.uint32, np.float64: np.uint64}[dtype]
    rng = np.random.default_rng(2024 + exact)
    total, failures = 0, []
    for name, a, b, c in _fma_cases(dtype, rng):
        with np.errstate(all="ignore"):
            want = _fma.fma(a, float(b), c, exact=exact)  # numpy_optim passes Python floats
        got = np.empty_like(a)
        loop(a, b, c, got)
        total += a.size
        _COUNTS["fma_elements"] += a.size
        bad = np.flatnonzero(got.view(ints) != want.view(ints))
        if bad.size:
            i = int(bad[0])
            hexes = ", ".join(f"0x{int(np.asarray(x, dtype).view(ints)):x}" for x in (a[i], b, c[i]))
            nan_only = bool(np.isnan(got[bad]).all() and np.isnan(want[bad]).all())
            failures.append(
                f"{name}: {bad.size} of {a.size} differ{' (all NaN in both: NaN bits only)' if nan_only else ''}; "
                f"first: a={a[i]!r}, b={b!r}, c={c[i]!r} (bits {hexes}): numba 0x{int(got.view(ints)[i]):x}, "
                f"NumPy 0x{int(want.view(ints)[i]):x}"
            )
    assert not failures, f"{np.dtype(dtype)} fma(exact={exact}): numba differs from NumPy in {len(failures)} " + (
        "cases:\n" + "\n".join(failures[:10])
    )
    assert total >= 200_000, f"only {total} fma results compared"


# --------------------------------------------------------------------------------------
# 3. The compiled kernels: no fast-math, vectorized
# --------------------------------------------------------------------------------------

_FAST_MATH = re.compile(
    r"\b(?:fadd|fsub|fmul|fdiv|frem|fneg|fcmp|call|select|phi)\b"
    r"(?:\s+(?:fast|contract|reassoc|nnan|ninf|nsz|arcp|afn)\b)+"
)


def _flags_and_constants(optimizer, dtype) -> tuple[tuple[bool, ...], int]:
    """The compiled kernel's flags for the optimizer's first entry, as optimizer.py derives
    them, and how many constants the kernel reads."""
    k = optimizer._scalars(optimizer._hyperparameters(0), 2, False, np.dtype(dtype))
    flags = tuple(value for value in k if isinstance(value, bool))
    return flags, len(k) - len(flags)


def _sample(cls, **kwargs):
    return cls([{"params": np.zeros(1), "grad": np.zeros(1)}], **kwargs)


KERNEL_COMBOS = [
    pytest.param(sgd_compiled, _sample(SGD), False, id="SGD-plain"),
    pytest.param(
        sgd_compiled, _sample(SGD, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True), False,
        id="SGD-nesterov-wd-maximize",
    ),
    pytest.param(adam_compiled, _sample(AdamW), True, id="AdamW-plain"),
    pytest.param(
        adam_compiled, _sample(Adam, betas=(0.3, 0.9), weight_decay=0.1, amsgrad=True, maximize=True), False,
        id="Adam-L2-amsgrad-maximize-beta1<0.5",
    ),
]


@pytest.mark.numba
@pytest.mark.parametrize("factory, optimizer, vector", KERNEL_COMBOS)
def test_compiled_kernels_have_no_fast_math_and_the_plain_adamw_vectorizes(factory, optimizer, vector):
    import numba

    from numpy_optim import _compiled

    assert "fastmath" not in _compiled.JIT_OPTIONS
    for dtype in (np.float32, np.float64):
        flags, n_constants = _flags_and_constants(optimizer, dtype)
        # A fresh, uncached dispatcher: numba refuses to inspect code loaded from its cache.
        dispatcher = numba.njit(**{**_compiled.JIT_OPTIONS, "cache": False})(factory(*flags))
        arity = {sgd_compiled: 3, adam_compiled: 5}[factory]  # param, grad and the buffers
        arrays = [np.full(64, 0.5, dtype) for _ in range(arity)]
        dispatcher(np.array([_blocks.table_row(arrays, arity)], np.int64), np.full(n_constants, 0.25, dtype))
        (llvm,) = [text for sig, text in dispatcher.inspect_llvm().items() if dtype.__name__ in str(sig)]
        where = f"{factory.__name__}{flags} {np.dtype(dtype)}"
        assert re.search(r"= fmul ", llvm) and re.search(r"= fadd ", llvm), f"{where}: no fp instructions in the IR"
        fast = [line.strip() for line in llvm.splitlines() if _FAST_MATH.search(line)]
        assert not fast, f"{where}: fast-math flags in the compiled kernel: {fast[:5]}"
        fused = [line.strip() for line in llvm.splitlines() if re.search(r"@llvm\.(fma|fmuladd)\.", line)]
        assert not fused, f"{where}: hardware fma in the compiled kernel: {fused[:5]}"
        if vector and dtype == np.float32:
            assert re.search(r"= f(?:add|mul|div) <(?:4|8|16) x float>", llvm), (
                f"{where}: the loop did not vectorize (no <N x float> arithmetic): are the flags constants?"
            )


@pytest.mark.numba
def test_the_fast_math_check_sees_fast_math_when_it_is_there():
    import numba

    @numba.njit(fastmath=True, cache=False)
    def contracted(a, b, c):
        return a * b + c

    contracted(1.0, 2.0, 3.0)
    (llvm,) = contracted.inspect_llvm().values()
    assert any(_FAST_MATH.search(line) for line in llvm.splitlines()), "the check would miss fastmath=True"


# --------------------------------------------------------------------------------------
# 4. Fallbacks to the NumPy kernel on the numba backend
# --------------------------------------------------------------------------------------


def _fallback_entries(case: str, rng):
    base = rng.standard_normal((40, 30))
    if case == "float16":
        return [{"params": base.astype(np.float16), "grad": rng.standard_normal((40, 30)).astype(np.float16)}]
    if case == "transposed":
        return [{"params": base.T.copy().T, "grad": rng.standard_normal((40, 30))}]  # F-ordered
    if case == "strided-view":
        return [{"params": base[::2, 1:], "grad": rng.standard_normal((20, 29))}]
    if case == "grad-is-param":
        return [{"params": base, "grad": base}]
    if case == "grad-views-param":
        return [{"params": base, "grad": base.view()}]
    if case == "big-endian":  # float64, but not in the machine's byte order
        return [{"params": base.astype(">f8"), "grad": rng.standard_normal((40, 30)).astype(">f8")}]
    raise AssertionError(case)


FALLBACKS = ["transposed", "strided-view", "grad-is-param", "grad-views-param", "big-endian"]


@pytest.mark.numba
@pytest.mark.parametrize("cls, kwargs", [(SGD, {"lr": 0.1, "momentum": 0.9}), (AdamW, {"lr": 0.01})],
                         ids=["SGD-momentum", "AdamW"])
@pytest.mark.parametrize("case", FALLBACKS)
def test_arrays_the_compiled_kernels_do_not_cover_take_the_numpy_kernel(case, cls, kwargs, compiled_calls):
    numpy_side = cls(_fallback_entries(case, np.random.default_rng(1)), **kwargs)
    numba_side = cls(_fallback_entries(case, np.random.default_rng(1)), **kwargs)
    for step in range(1, 4):
        with np.errstate(divide="ignore", invalid="ignore"):  # float16: eps underflows to 0
            with use_backend("numpy"):
                numpy_side.step()
            with use_backend("numba"):
                numba_side.step()
        assert_bitwise(numpy_side, numba_side, f"{case} {cls.__name__} step {step}")
    assert compiled_calls == [], f"{case}: the compiled kernel ran ({len(compiled_calls)} calls)"


@pytest.mark.numba
@pytest.mark.parametrize("kwargs", [{"fused": False}, {"fused": True}, {"state_dtype": np.float32},
                                    {"master_weights": True}], ids=["single-tensor", "fused", "state_dtype", "master"])
@pytest.mark.parametrize("cls, hyper", [(SGD, {"lr": 0.1, "momentum": 0.9}), (AdamW, {"lr": 0.01, "eps": 1e-3}),
                                        (Adagrad, {"lr": 0.1, "weight_decay": 0.1})],
                         ids=["SGD", "AdamW", "Adagrad"])
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_parameters_take_the_compiled_kernel_on_float32_copies(half, cls, hyper, kwargs, compiled_calls):
    """float16 / bfloat16 entries run on float32 copies (torch's half ops, the fused kernels,
    float32 state, master copies): compiled there, bitwise equal to the NumPy kernels."""
    if cls is SGD and kwargs == {"fused": True}:
        kwargs = {"fused": True, "master_weights": True}  # (SGD fused on half itself is refused)
    dtype = np.dtype(np.float16) if half == "float16" else np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    rng = np.random.default_rng(3)
    base, grads = rng.standard_normal(1331), rng.standard_normal((3, 1331))
    sides = [cls([{"params": base.astype(dtype), "grad": np.zeros(1331, dtype)}], **hyper, **kwargs) for _ in "ab"]
    for step in range(3):
        for side, name in zip(sides, ("numpy", "numba")):
            side.param_groups[0]["grad"][...] = grads[step].astype(dtype)
            with use_backend(name):
                side.step()
        assert_bitwise(sides[0], sides[1], f"{half} {cls.__name__} {kwargs} step {step + 1}")
    assert compiled_calls, "the compiled kernel did not run"


@pytest.mark.numba
def test_covered_arrays_take_the_compiled_kernel_beside_ones_that_fall_back(compiled_calls):
    rng = np.random.default_rng(2)
    plain = rng.standard_normal(100).astype(np.float32)
    entries = [
        {"params": plain, "grad": np.ones(100, np.float32)},
        {"params": rng.standard_normal((8, 9)).astype(np.float32).T, "grad": np.ones((9, 8), np.float32)},
        {"params": np.ones(5, np.float64).astype(">f8"), "grad": np.ones(5).astype(">f8")},  # not native
    ]
    with use_backend("numba"):
        AdamW(entries).step()
    assert len(compiled_calls) == 1, f"expected one compiled call (the contiguous float32 group): {compiled_calls}"
    assert compiled_calls[0] == [_blocks.address(plain)], "the compiled call got other arrays"


@pytest.mark.numba
@pytest.mark.parametrize("mode", ["over-raise", "over-call", "under-raise-and-no-underflow"])
def test_errstate_raise_or_call_takes_the_numpy_kernel(mode, compiled_calls):
    overflow = mode != "under-raise-and-no-underflow"

    def make():
        value = 3e38 if overflow else 1.5
        return SGD([{"params": np.full(64, value, np.float32), "grad": np.full(64, -value, np.float32)}], lr=10.0)

    seen: dict[str, list[str]] = {"numpy": [], "numba": []}
    results = {}
    for side in ("numpy", "numba"):
        optimizer = make()
        record = functools.partial(lambda calls, err, flag: calls.append(err), seen[side])
        errstate = {
            "over-raise": {"over": "raise"},
            "over-call": {"over": "call", "call": record},
            "under-raise-and-no-underflow": {"under": "raise"},
        }[mode]
        with use_backend(side), np.errstate(**errstate):
            if mode == "over-raise":
                with pytest.raises(FloatingPointError, match="overflow"):
                    optimizer.step()
            else:
                optimizer.step()
        results[side] = optimizer
    assert compiled_calls == [], f"errstate {mode}: the compiled kernel ran"
    if mode == "over-call":
        assert seen["numba"] and seen["numba"] == seen["numpy"], f"the errstate callback saw {seen}"
    assert_bitwise(results["numpy"], results["numba"], f"errstate {mode}")


@pytest.mark.numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_plain_contiguous_arrays_take_the_compiled_kernel(dtype, compiled_calls):
    entries = make_entries([(100,), (3, 4)], dtype, 3)
    with use_backend("numba"):
        Adam(entries).step()
    assert len(compiled_calls) == 1 and len(compiled_calls[0]) == 2, f"compiled calls: {compiled_calls}"
    with use_backend("numpy"):
        Adam(make_entries([(100,)], dtype, 3)).step()
    assert len(compiled_calls) == 1, "the NumPy backend called the compiled kernel"


# --------------------------------------------------------------------------------------
# 5. Choosing the backend
# --------------------------------------------------------------------------------------


def _small_sgd():
    return SGD([{"params": np.ones(4, np.float32), "grad": np.ones(4, np.float32)}], lr=0.5)


@pytest.mark.parametrize("value", ["numpy", "NumPy", " numpy "])
def test_environment_variable_numpy_selects_numpy(value, monkeypatch):
    monkeypatch.setenv(VARIABLE, value)
    assert backend() == "numpy"
    assert _backend.compiled() is None


@pytest.mark.numba
@pytest.mark.parametrize("value", ["numba", "auto", "", "AUTO"])
def test_environment_variable_numba_or_auto_selects_numba_when_it_imports(value, monkeypatch):
    monkeypatch.setenv(VARIABLE, value)
    assert backend() == "numba"


@pytest.mark.parametrize("value", ["auto", ""])
def test_auto_falls_back_to_numpy_when_numba_cannot_be_imported(value, monkeypatch, numba_missing, compiled_calls):
    monkeypatch.setenv(VARIABLE, value)
    assert backend() == "numpy"
    optimizer = _small_sgd()
    optimizer.step()
    assert optimizer.param_groups[0]["params"].tolist() == [0.5] * 4
    assert compiled_calls == []
    with use_backend("auto") as active:
        assert active == "numpy"


def test_asking_for_numba_when_it_cannot_be_imported_raises_importerror(monkeypatch, numba_missing):
    monkeypatch.setenv(VARIABLE, "numba")
    with pytest.raises(ImportError, match="pip install"):
        backend()
    with pytest.raises(ImportError, match=r"pip install.*numpy_optim\[fast\]"):
        _small_sgd().step()
    monkeypatch.setenv(VARIABLE, "numpy")
    with pytest.raises(ImportError, match="pip install") as error, use_backend("numba"):
        pytest.fail("the block ran although numba cannot be imported")
    assert "No module named 'numba'" in str(error.value)


@pytest.mark.parametrize("outer", [None, "numpy", "auto"])
def test_a_refused_use_backend_numba_leaves_the_previous_choice(outer, monkeypatch, numba_missing):
    monkeypatch.setenv(VARIABLE, "numpy")
    with use_backend(outer) if outer else contextlib.nullcontext():
        with pytest.raises(ImportError):
            with use_backend("numba"):
                pass
        assert _backend._choice.get() == outer
        assert backend() == "numpy"
        with pytest.raises(ValueError, match="'fortran'"):
            with use_backend("fortran"):
                pass
        assert _backend._choice.get() == outer


def test_an_invalid_environment_variable_raises_valueerror_naming_it(monkeypatch):
    monkeypatch.setenv(VARIABLE, "fortran")
    with pytest.raises(ValueError, match=rf"{VARIABLE}.*'fortran'"):
        backend()
    with pytest.raises(ValueError, match=rf"{VARIABLE}.*'fortran'"):
        _small_sgd().step()
    with use_backend("numpy") as active:  # use_backend overrides the environment
        assert active == "numpy" and backend() == "numpy"
        _small_sgd().step()
    with pytest.raises(ValueError, match="fortran"):  # and the environment is back
        backend()


@pytest.mark.parametrize("name", ["fortran", "", "NUMBA!", None, 3])
def test_use_backend_refuses_an_invalid_name_naming_it(name):
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        with use_backend(name):
            pytest.fail("the block ran")
    assert _backend._choice.get() is None


@pytest.mark.parametrize("case", ["invalid-environment", "numba-missing"])
def test_a_step_refused_for_its_backend_changes_nothing(case, monkeypatch, request):
    # optimizer.py's contract: "a refused step() changes no parameter and no state".
    if case == "invalid-environment":
        monkeypatch.setenv(VARIABLE, "fortran")
        expected = ValueError
    else:
        request.getfixturevalue("numba_missing")
        monkeypatch.setenv(VARIABLE, "numba")
        expected = ImportError
    rng = np.random.default_rng(4)
    entries = [
        {"params": rng.standard_normal(10), "grad": rng.standard_normal(10)},
        {"params": rng.standard_normal((5, 4)).T, "grad": rng.standard_normal((4, 5))},  # the whole-array path
    ]
    optimizer = Adam(entries)
    before = snapshot(optimizer)
    with pytest.raises(expected):
        optimizer.step()
    assert optimizer.state["step"] == 0, f"{case}: the refused step counted ({optimizer.state['step']})"
    assert set(optimizer.state) == {"step"}, f"{case}: the refused step created buffers {set(optimizer.state)}"
    assert snapshot(optimizer) == before, f"{case}: the refused step changed a parameter"


def test_use_backend_overrides_the_environment_and_restores_it_even_after_an_exception(monkeypatch):
    monkeypatch.setenv(VARIABLE, "fortran")  # reading the environment would raise
    with pytest.raises(KeyError):
        with use_backend("numpy"):
            assert backend() == "numpy"
            with use_backend("NUMPY"):
                assert _backend._choice.get() == "numpy"
            assert backend() == "numpy"
            raise KeyError("inside the block")
    assert _backend._choice.get() is None
    with pytest.raises(ValueError, match="fortran"):
        backend()


@pytest.mark.numba
def test_use_backend_overrides_the_environment_for_numba(monkeypatch):
    monkeypatch.setenv(VARIABLE, "numpy")
    with use_backend("numba") as active:
        assert active == "numba" and backend() == "numba"
        with use_backend("numpy"):
            assert backend() == "numpy"
        assert backend() == "numba"
    assert backend() == "numpy"
    monkeypatch.setenv(VARIABLE, "numba")
    with use_backend("numpy"):
        assert backend() == "numpy"
    assert backend() == "numba"


def _in_thread(function):
    """Run ``function`` in a new thread; return its result or raise its exception."""
    out: dict[str, object] = {}

    def target():
        try:
            out["value"] = function()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            out["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(HANG_S)
    assert not thread.is_alive(), "the thread hung"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_use_backend_is_per_thread(monkeypatch):
    monkeypatch.setenv(VARIABLE, "fortran")  # a thread without a use_backend of its own raises
    entered, checked = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def holder():
        with use_backend("numpy"):
            seen["holder"] = backend()
            entered.set()
            seen["released"] = checked.wait(HANG_S)  # inside its use_backend until the checks are done
            seen["holder after"] = backend()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert entered.wait(HANG_S), "the thread did not enter use_backend"
        with pytest.raises(ValueError, match="fortran"):
            backend()  # the other thread's use_backend("numpy") is not ours
        with use_backend("numpy"):
            # ...and ours is not seen by a third thread
            with pytest.raises(ValueError, match="fortran"):
                _in_thread(backend)
        assert _in_thread(lambda: _backend._choice.get()) is None
    finally:
        checked.set()
        thread.join(HANG_S)
    assert not thread.is_alive(), "the holder thread hung"
    assert seen == {"holder": "numpy", "released": True, "holder after": "numpy"}


@pytest.mark.numba
def test_use_backend_numba_and_numpy_in_two_threads_at_once(monkeypatch):
    monkeypatch.setenv(VARIABLE, "numpy")
    barrier = threading.Barrier(2, timeout=HANG_S)
    seen: dict[str, list[str]] = {"numba": [], "numpy": []}

    def hold(name):
        with use_backend(name):
            for _ in range(3):
                barrier.wait()
                seen[name].append(backend())

    thread = threading.Thread(target=hold, args=("numpy",))
    thread.start()
    hold("numba")
    thread.join(HANG_S)
    assert not thread.is_alive(), "the numpy thread hung"
    assert seen == {"numba": ["numba"] * 3, "numpy": ["numpy"] * 3}


# --------------------------------------------------------------------------------------
# 6. Importing numpy_optim does not import numba
# --------------------------------------------------------------------------------------


def test_importing_numpy_optim_does_not_import_numba():
    code = "import numpy_optim, sys; assert 'numba' not in sys.modules, 'import numpy_optim imported numba'"
    for value in ("auto", "numba", "numpy"):
        run_python(code, **{VARIABLE: value})


def test_a_step_with_numba_unimportable_runs_on_numpy_in_a_fresh_process():
    code = """if True:
        import sys
        sys.modules["numba"] = None  # import numba now raises ImportError
        import numpy as np, numpy_optim
        assert numpy_optim.backend() == "numpy"
        x = np.ones(3, np.float32)
        numpy_optim.SGD([{"params": x, "grad": np.ones(3, np.float32)}], lr=0.5).step()
        assert x.tolist() == [0.5] * 3, x
        try:
            with numpy_optim.use_backend("numba"):
                raise SystemExit("use_backend('numba') entered its block")
        except ImportError as error:
            assert "pip install" in str(error), error
        assert numpy_optim.backend() == "numpy"
    """
    run_python(code, **{VARIABLE: "auto"})


@pytest.mark.numba
def test_a_step_on_the_numba_backend_imports_numba():
    code = """if True:
        import sys
        import numpy as np, numpy_optim
        assert "numba" not in sys.modules
        numpy_optim.SGD([{"params": np.ones(3), "grad": np.ones(3)}]).step()
        assert "numba" in sys.modules, "a step on the numba backend did not import numba"
    """
    run_python(code, **{VARIABLE: "numba"})


# --------------------------------------------------------------------------------------
# 7. fork, 8. threads
# --------------------------------------------------------------------------------------


def _digest(optimizer) -> str:
    h = hashlib.sha256()
    for name, data in snapshot(optimizer):
        h.update(name.encode() + data)
    return h.hexdigest()


def _fork_child(optimizer, results):
    try:
        with use_backend("numba"), _blocks.configured(threads=2, compiled_parallel_min_bytes=0):
            optimizer.step()
        results.put(("ok", _digest(optimizer)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        results.put(("error", repr(error)))


@pytest.mark.numba
def test_a_threaded_compiled_step_works_in_a_forked_child():
    n = 10**6
    optimizer, copy = twins(AdamW, {"lr": 0.01}, [(n,)], np.float32, seed=7)
    with use_backend("numba"), _blocks.configured(threads=2, compiled_parallel_min_bytes=0):
        optimizer.step()  # the parent's worker threads now exist
        copy.step()
    assert any(t.name.startswith("numpy_optim") for t in threading.enumerate()), "the step used no worker thread"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_fork_child, args=(optimizer, results))
    child.start()
    try:
        status, value = results.get(timeout=HANG_S)
    except queue.Empty:
        pytest.fail(f"the forked child's step hung (no result within {HANG_S} s)")
    finally:
        child.join(HANG_S)
        if child.is_alive():
            child.kill()
            child.join()
            pytest.fail(f"the forked child did not exit within {HANG_S} s")
    assert status == "ok", f"the step in the forked child raised {value}"
    assert child.exitcode == 0
    with use_backend("numba"), _blocks.configured(threads=2, compiled_parallel_min_bytes=0):
        copy.step()
    assert value == _digest(copy), "the forked child's step differs from the same step in the parent"


@pytest.mark.parametrize("side", SIDES)
def test_two_optimizers_stepping_in_two_threads_at_once_are_bitwise_sequential(side):
    settings = dict(threads=2, parallel_min_bytes=0, compiled_parallel_min_bytes=0, block_bytes=16 * 1024)
    configs = [
        (AdamW, {"lr": 0.01, "amsgrad": True}, [(60_000,), (17,), (3, 5), ()], np.float32),
        (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, [(40_000,), (7, 3)], np.float64),
    ]
    steps = 6
    gradients = [
        [[np.random.default_rng(100 * i + s).standard_normal(shape).astype(dtype) for shape in shapes]
         for s in range(steps)]
        for i, (_, _, shapes, dtype) in enumerate(configs)
    ]

    def run(index, optimizer, barrier=None):
        trajectory = []
        with on(side):
            for step in range(steps):
                for entry, grad in zip(optimizer.param_groups, gradients[index][step]):
                    entry["grad"][...] = grad
                if barrier is not None:
                    barrier.wait()
                optimizer.step()
                trajectory.append(snapshot(optimizer))
        return trajectory

    def build():
        return [cls(make_entries(shapes, dtype, i), **kw) for i, (cls, kw, shapes, dtype) in enumerate(configs)]

    with _blocks.configured(**settings):
        sequential = [run(i, optimizer) for i, optimizer in enumerate(build())]
        concurrent: list[object] = [None, None]
        barrier = threading.Barrier(2, timeout=HANG_S)
        optimizers = build()

        def target(i):
            try:
                concurrent[i] = run(i, optimizers[i], barrier)
            except BaseException as error:  # noqa: BLE001 - reported below
                concurrent[i] = error

        threads = [threading.Thread(target=target, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG_S)
        assert not any(thread.is_alive() for thread in threads), "a stepping thread hung"
    for i, (cls, _, _, _) in enumerate(configs):
        assert not isinstance(concurrent[i], BaseException), f"{cls.__name__} thread raised {concurrent[i]!r}"
        for step, (x, y) in enumerate(zip(sequential[i], concurrent[i]), 1):
            for (name, a), (_, b) in zip(x, y):
                _COUNTS["compared"] += 1
                if a != b:
                    _COUNTS["differing"] += 1
                    pytest.fail(f"{side}: {cls.__name__} in a thread, step {step}: {name} differs from sequential")


# --------------------------------------------------------------------------------------
# 9. The step plan notices every change and holds no array alive
# --------------------------------------------------------------------------------------

#: Every config has buffers in entry 0; entry 1 carries an lr override, entry 2 one that
#: switches a buffer off (flipped on by a scenario).
PLAN_CONFIGS = [
    pytest.param(SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
                 {1: {"lr": 0.02}, 2: {"momentum": 0.0}}, id="SGD-momentum"),
    pytest.param(Adam, {"lr": 0.01, "weight_decay": 0.1}, {1: {"lr": 0.02}, 2: {"amsgrad": False}}, id="Adam-L2"),
    pytest.param(AdamW, {"lr": 0.01, "betas": (0.3, 0.9)}, {1: {"lr": 0.02}, 2: {"amsgrad": False}}, id="AdamW"),
]
PLAN_SHAPES = [(6, 10), (5,), ()]


def _buffer_name(optimizer) -> str:
    return "momentum_buffer" if isinstance(optimizer, SGD) else "exp_avg"


def _warm_up(side, opt, ref, rng, steps=3):
    for step in range(1, steps + 1):
        new_gradients(rng, opt, ref)
        with on(side):
            opt.step()
        reference_step(ref)
        assert_bitwise(ref, opt, f"warm-up step {step}")
    assert opt._plan is not None, "no plan after the warm-up steps: the tests below would test nothing"


# Scenarios that a step must follow: change(optimizer, k) is applied to both the optimizer
# and the reference before each of three steps (k = 0, 1, 2), before the new gradients.


def _replace_grad(o, k):
    if k == 0:
        o.param_groups[0]["grad"] = np.zeros_like(o.param_groups[0]["grad"])


def _replace_grad_every_step(o, k):
    for entry in o.param_groups:
        entry["grad"] = np.empty_like(entry["grad"])


def _reshape_entry_in_place(o, k):
    shape = [(60,), (3, 20), (2, 5, 6)][k]
    for array in (o.param_groups[0]["params"], o.param_groups[0]["grad"], *o.state[0].values()):
        array.shape = shape


def _view_entry_as_float32_in_place(o, k):
    if k == 0:  # every array of entry 0 reinterpreted in place: float64 (6, 10) -> float32 (6, 20)
        for array in (o.param_groups[0]["params"], o.param_groups[0]["grad"], *o.state[0].values()):
            array.dtype = np.float32
        o.param_groups[0]["params"][...] = np.linspace(-1, 1, 120, dtype=np.float32).reshape(6, 20)
        for array in o.state[0].values():
            array[...] = np.linspace(0, 1, 120, dtype=np.float32).reshape(6, 20)


def _add_lr_override(o, k):
    if k == 0:
        o.param_groups[0]["lr"] = 0.3


def _change_overrides_every_step(o, k):
    o.param_groups[1]["lr"] = [0.3, 0.0, 0.003][k]
    o.param_groups[0]["weight_decay"] = [0.0, 0.5, 0.05][k]
    o.param_groups[0]["maximize"] = [True, False, True][k]


def _change_defaults_every_step(o, k):
    o.defaults["lr"] = [0.5, 0.05, -0.0][k]
    o.defaults["maximize"] = [True, False, True][k]
    o.defaults["weight_decay"] = [0.0, 0.2, 0.01][k]


def _replace_buffers_with_copies(o, k):
    if k == 0:
        for name in list(o.state[0]):
            o.state[0][name] = o.state[0][name].copy()


def _delete_buffers(o, k):
    if k == 0:
        del o.state[0]


def _load_a_state_dict(o, k):
    if k == 0:
        state = o.state_dict()
        for buffers in state["state"]:
            for name in buffers:
                buffers[name] = np.array(buffers[name] * 0.5)
        state["defaults"]["lr"] = 0.2
        state["param_groups"][1]["lr"] = 0.04
        o.load_state_dict(state)


def _turn_buffer_override_on(o, k):
    if k == 0:  # entry 2 had its buffer switched off: a new buffer must be created and used
        key, value = ("momentum", 0.5) if isinstance(o, SGD) else ("amsgrad", True)
        o.param_groups[2][key] = value


def _add_buffer_override(o, k):
    if k == 0:  # a new key: entry 0 gets the extra buffer (Adam) or drops it (SGD)
        key, value = ("momentum", 0.0) if isinstance(o, SGD) else ("amsgrad", True)
        o.param_groups[0][key] = value


def _append_entry(o, k):
    if k == 0:
        o.param_groups.append(make_entries([(9,)], np.float64, 99)[0])


def _remove_entry(o, k):
    if k == 0:
        o.param_groups.pop()


FOLLOWED = [
    _replace_grad, _replace_grad_every_step, _reshape_entry_in_place, _view_entry_as_float32_in_place,
    _add_lr_override, _change_overrides_every_step, _change_defaults_every_step, _replace_buffers_with_copies,
    _delete_buffers, _load_a_state_dict, _turn_buffer_override_on, _add_buffer_override, _append_entry,
    _remove_entry,
]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls, kwargs, overrides", PLAN_CONFIGS)
@pytest.mark.parametrize("change", FOLLOWED, ids=lambda f: f.__name__.strip("_"))
def test_a_change_between_steps_gives_the_result_of_a_step_without_a_plan(change, cls, kwargs, overrides, side):
    opt, ref = twins(cls, kwargs, PLAN_SHAPES, overrides=overrides)
    rng = np.random.default_rng(11)
    _warm_up(side, opt, ref, rng)
    if change is _append_entry and cls._counts_steps:  # Adam's step count is the optimizer's: refused
        before = snapshot(opt)
        change(opt, 0)
        with on(side), pytest.raises(ValueError, match="counts its steps per optimizer"):
            opt.step()
        assert snapshot(opt)[: len(before)] == before
        return
    for k in range(3):
        change(opt, k)
        change(ref, k)
        new_gradients(rng, opt, ref)
        with np.errstate(all="ignore"):
            with on(side):
                opt.step()
            reference_step(ref)
        assert_bitwise(ref, opt, f"{side}: {cls.__name__} after {change.__name__.strip('_')}, step {k + 1}")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls, kwargs, overrides", PLAN_CONFIGS)
def test_the_plan_is_reused_while_nothing_changes(cls, kwargs, overrides, side):
    opt, ref = twins(cls, kwargs, PLAN_SHAPES, overrides=overrides)
    rng = np.random.default_rng(12)
    _warm_up(side, opt, ref, rng)
    plan = opt._plan
    for step in range(3):
        new_gradients(rng, opt, ref)
        with on(side):
            opt.step()
        reference_step(ref)
        assert opt._plan is plan, f"step {step + 1}: the plan was rebuilt although nothing changed"
        assert_bitwise(ref, opt, f"{side}: {cls.__name__} reusing the plan, step {step + 1}")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "cls, kwargs, key, value",
    [(SGD, {"lr": 0.1}, "momentum", 0.9), (Adam, {"lr": 0.01}, "amsgrad", True), (AdamW, {}, "amsgrad", True)],
    ids=["SGD-momentum", "Adam-amsgrad", "AdamW-amsgrad"],
)
def test_turning_a_buffer_on_in_the_defaults_creates_and_uses_it(cls, kwargs, key, value, side):
    # The defaults apply to every entry without overrides of its own: the plan must see
    # that they now need a buffer (momentum_buffer, max_exp_avg_sq) the plan has not.
    opt, ref = twins(cls, kwargs, [(8,), (2, 3)])
    rng = np.random.default_rng(13)
    _warm_up(side, opt, ref, rng)
    for k in range(2):
        for o in (opt, ref):
            o.defaults[key] = value
        new_gradients(rng, opt, ref)
        with on(side):
            opt.step()
        reference_step(ref)
        assert_bitwise(ref, opt, f"{side}: {cls.__name__} after defaults[{key!r}] = {value!r}, step {k + 1}")


# Changes a step must refuse (ValueError / TypeError, nothing changed): applied to the
# optimizer only, then undone, after which the steps go on as the reference's.


def _refused_cases():
    def other_shape(o):
        entry = o.param_groups[0]
        saved = entry["params"], entry["grad"]
        entry["params"], entry["grad"] = np.zeros(7), np.zeros(7)
        return lambda: entry.update(params=saved[0], grad=saved[1])

    def param_reshaped(o):
        param = o.param_groups[0]["params"]
        param.shape = (10, 6)
        return lambda: setattr(param, "shape", (6, 10))

    def param_and_grad_reshaped(o):
        arrays = o.param_groups[0]["params"], o.param_groups[0]["grad"]
        for array in arrays:
            array.shape = (60,)
        return lambda: [setattr(array, "shape", (6, 10)) for array in arrays]

    def read_only(o):
        param = o.param_groups[0]["params"]
        param.flags.writeable = False
        return lambda: setattr(param.flags, "writeable", True)

    def param_dtype_int(o):
        param = o.param_groups[0]["params"]
        param.dtype = np.int64
        return lambda: setattr(param, "dtype", np.float64)

    def param_dtype_float32(o):
        param = o.param_groups[0]["params"]
        param.dtype = np.float32  # (6, 10) float64 -> (6, 20) float32
        return lambda: setattr(param, "dtype", np.float64)

    def grad_dtype_float32(o):
        entry = o.param_groups[0]
        saved = entry["grad"]
        entry["grad"] = saved.astype(np.float32)
        return lambda: entry.update(grad=saved)

    def grad_removed(o):
        entry = o.param_groups[0]
        saved = entry.pop("grad")
        return lambda: entry.update(grad=saved)

    def buffer_wrong_shape(o):
        buffers = o.state[0]
        name = _buffer_name(o)
        saved = buffers[name]
        buffers[name] = np.zeros(3)
        return lambda: buffers.update({name: saved})

    def bad_override(o):
        o.param_groups[1]["lr"] = -1.0
        return lambda: o.param_groups[1].update(lr=0.02)

    def bad_default(o):
        saved = o.defaults["weight_decay"]
        o.defaults["weight_decay"] = float("nan")
        return lambda: o.defaults.update(weight_decay=saved)

    def same_param_twice(o):
        entry = o.param_groups[1]
        saved = entry["params"], entry["grad"]
        entry["params"], entry["grad"] = o.param_groups[0]["params"], o.param_groups[0]["grad"]
        return lambda: entry.update(params=saved[0], grad=saved[1])

    return [
        pytest.param(other_shape, ValueError, r"params\[0\].*state buffer '(momentum_buffer|exp_avg)'",
                     id="params-replaced-by-another-shape"),
        pytest.param(param_reshaped, ValueError, r"params\[0\]\['grad'\] has shape", id="param-shape-set-in-place"),
        pytest.param(param_and_grad_reshaped, ValueError, r"params\[0\].*state buffer", id="param-and-grad-reshaped"),
        pytest.param(read_only, ValueError, r"params\[0\]\['params'\] is read-only", id="param-made-read-only"),
        pytest.param(param_dtype_int, TypeError, r"params\[0\]\['params'\] must have a floating dtype",
                     id="param-dtype-set-to-int64"),
        pytest.param(param_dtype_float32, ValueError, r"params\[0\]", id="param-dtype-set-to-float32"),
        pytest.param(grad_dtype_float32, TypeError, r"params\[0\]\['grad'\] has dtype float32", id="grad-dtype"),
        pytest.param(grad_removed, ValueError, r"params\[0\] has no 'grad' key", id="grad-removed"),
        pytest.param(buffer_wrong_shape, ValueError, r"state buffer", id="buffer-replaced-by-another-shape"),
        pytest.param(bad_override, ValueError, r"params\[1\].*lr", id="invalid-override"),
        pytest.param(bad_default, ValueError, r"defaults.*weight_decay", id="invalid-default"),
        pytest.param(same_param_twice, ValueError, r"same array|state buffer", id="same-param-in-two-entries"),
    ]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls, kwargs, overrides", PLAN_CONFIGS)
@pytest.mark.parametrize("change, error, message", _refused_cases())
def test_a_change_the_step_must_refuse_is_refused_and_changes_nothing(change, error, message, cls, kwargs,
                                                                      overrides, side):
    opt, ref = twins(cls, kwargs, PLAN_SHAPES, overrides=overrides)
    rng = np.random.default_rng(14)
    _warm_up(side, opt, ref, rng)
    new_gradients(rng, opt, ref)
    before = snapshot(opt)
    undo = change(opt)
    with on(side), pytest.raises(error, match=message):
        opt.step()
    undo()
    assert snapshot(opt) == before, f"{side}: {cls.__name__}: the refused step changed something"
    for step in range(2):
        with on(side):
            opt.step()
        reference_step(ref)
        assert_bitwise(ref, opt, f"{side}: {cls.__name__} after an undone refused change, step {step + 1}")
        new_gradients(rng, opt, ref)


@pytest.mark.parametrize("side", SIDES)
def test_a_new_param_array_is_updated_and_the_old_one_left_alone(side):
    opt, ref = twins(Adam, {"lr": 0.01}, PLAN_SHAPES)
    rng = np.random.default_rng(15)
    _warm_up(side, opt, ref, rng)
    old_param, old_buffer = opt.param_groups[0]["params"], opt.state[0]["exp_avg"]
    old_bytes = old_param.tobytes(), old_buffer.tobytes()
    for o in (opt, ref):
        o.param_groups[0]["params"] = o.param_groups[0]["params"].copy()
        o.state[0]["exp_avg"] = o.state[0]["exp_avg"].copy()
    new_gradients(rng, opt, ref)
    with on(side):
        opt.step()
    reference_step(ref)
    assert_bitwise(ref, opt, f"{side}: after replacing params[0] and its exp_avg")
    assert (old_param.tobytes(), old_buffer.tobytes()) == old_bytes, "the step wrote into the replaced arrays"


@pytest.mark.parametrize("side", SIDES)
def test_an_in_place_resize_is_either_refused_by_numpy_or_noticed(side):
    opt, ref = twins(SGD, {"lr": 0.1}, [(6,), (4,)])
    rng = np.random.default_rng(16)
    _warm_up(side, opt, ref, rng)

    def resize(o):
        for key in ("params", "grad"):
            o.param_groups[0][key].resize((9,), refcheck=False)

    try:
        resize(opt)
    except ValueError as error:
        # NumPy refuses to resize an array that has weak references (the plan's), even with
        # refcheck=False: the arrays keep their shape and the optimizer goes on as before.
        assert "referenced" in str(error)
        assert opt.param_groups[0]["params"].shape == (6,)
    else:
        resize(ref)
    for step in range(2):
        new_gradients(rng, opt, ref)
        with on(side):
            opt.step()
        reference_step(ref)
        assert_bitwise(ref, opt, f"{side}: after an attempted in-place resize, step {step + 1}")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls", [SGD, Adam], ids=["SGD", "Adam"])
def test_the_plan_keeps_no_array_alive(cls, side):
    kwargs = {"momentum": 0.9} if cls is SGD else {}
    entries = make_entries([(50,), (3, 4), ()], np.float64, 17)
    opt = cls(entries, **kwargs)
    with on(side):
        for _ in range(3):
            opt.step()
    assert opt._plan is not None
    buffer = _buffer_name(opt)
    old = {
        "params[0]['grad']": entries[0]["grad"],
        "params[1]['params']": entries[1]["params"],
        "params[2]['grad']": entries[2]["grad"],
        f"state[0][{buffer!r}]": opt.state[0][buffer],
    }
    refs = {name: weakref.ref(array) for name, array in old.items()}
    entries[0]["grad"] = entries[0]["grad"].copy()
    entries[1]["params"] = entries[1]["params"].copy()
    entries[2]["grad"] = np.ones_like(entries[2]["grad"])
    opt.state[0][buffer] = opt.state[0][buffer].copy()
    del old
    gc.collect()
    alive = [name for name, ref in refs.items() if ref() is not None]
    assert not alive, f"replaced arrays kept alive before the next step: {alive}"
    with on(side):
        opt.step()
    assert opt._plan is not None, "no plan was built for the replaced arrays"
    gc.collect()
    alive = [name for name, ref in refs.items() if ref() is not None]
    assert not alive, f"replaced arrays kept alive after the next step: {alive}"
    # Dropping the optimizer and the entries frees every array.
    with on(side):
        opt.step()
    refs = [weakref.ref(a) for _, a in arrays_of(opt)] + [weakref.ref(e["grad"]) for e in entries]
    del opt, entries
    gc.collect()
    assert all(ref() is None for ref in refs), "an array outlived its optimizer and entries"



# --------------------------------------------------------------------------------------
# 10. The compiled kernels' source, run by CPython, is the NumPy kernel too
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (SGD, {"lr": 0.1}),
        (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True}),
        (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
        (Adam, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "betas": (0.3, 0.9)}),
        (AdamW, {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ],
    ids=["SGD", "SGD-nesterov-wd-maximize", "SGD-dampening", "Adam-L2-amsgrad-beta1<0.5", "AdamW-maximize"],
)
def test_the_kernel_factory_run_as_plain_python_is_bitwise_the_numpy_kernel(cls, kwargs, dtype):
    # No numba here: the factory's kernel runs element by element on NumPy scalars, with
    # numpy_optim._backend.view (ctypes) and _fma's scalar forms. It must give the NumPy
    # kernel's bits, so the compiled twin is checked against the same source of truth.
    rng = np.random.default_rng(11)
    n = 9
    optimizer = cls([{"params": rng.standard_normal(n).astype(dtype), "grad": np.zeros(n, dtype)}], **kwargs)
    hyper = optimizer._hyperparameters(0)
    names = optimizer._kernel_buffers(hyper)
    arity = 2 + len(optimizer._buffer_order)
    ours = [rng.standard_normal(n).astype(dtype)] + [np.zeros(n, dtype) for _ in names]
    reference = [a.copy() for a in ours]
    with np.errstate(all="ignore"):
        for step in range(1, 5):
            grad = (rng.standard_normal(n) * 3).astype(dtype)
            k = optimizer._scalars(hyper, step, step == 1, np.dtype(dtype))
            flags = tuple(value for value in k if isinstance(value, bool))
            constants = np.array([value for value in k if not isinstance(value, bool)], dtype)
            arrays = [ours[0], grad, *ours[1:]]
            cls._kernel_factory(*flags)(np.array([_blocks.table_row(arrays, arity)], np.int64), constants)
            ref_arrays = [reference[0], grad.copy(), *reference[1:]]
            cls._kernel(ref_arrays, _blocks.whole_scratch(ref_arrays[0].shape, ref_arrays[0].dtype, cls._n_scratch), k)
            for name, x, y in zip(["params", *names], ours, reference):
                assert x.tobytes() == y.tobytes(), f"{cls.__name__}({kwargs}) {np.dtype(dtype)} step {step}: {name}"


# --------------------------------------------------------------------------------------
# 11. What the review found: moved data, read-only buffers, a fork under the pool's lock
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
def test_data_moved_by_setstate_is_followed_not_written_through_the_old_address(side):
    # ndarray.__setstate__ gives a live array new data without changing its id, shape,
    # dtype or flags (here a view: no OWNDATA to lose); the plan must notice.
    base = np.ones(4096)
    param = base[:]
    optimizer = SGD([{"params": param, "grad": np.ones(4096)}], lr=0.5)
    with use_backend(side):
        optimizer.step()
        optimizer.step()
        assert optimizer._plan is not None
        old = _blocks.address(param)
        param.__setstate__(np.full(4096, 10.0).__reduce__()[2])
        assert _blocks.address(param) != old and param.flags.num == optimizer._plan.meta[0][2]
        optimizer.step()
    assert (param == 9.5).all(), f"{side}: the step did not update the array's new data: {param[:3]}"
    assert (base == 0.0).all(), f"{side}: the step wrote into the array's old data: {base[:3]}"


@pytest.mark.parametrize("side", SIDES)
def test_a_read_only_state_buffer_is_refused_before_anything_changes(side):
    entries = [{"params": np.ones(4), "grad": np.ones(4)}, {"params": np.ones(4), "grad": np.ones(4)}]
    optimizer = SGD(entries, lr=0.5, momentum=0.9)
    with use_backend(side):
        optimizer.step()
        optimizer.state[1]["momentum_buffer"] = np.frombuffer(np.full(4, 2.0).tobytes())
        before = [entry["params"].copy() for entry in entries]
        with pytest.raises(ValueError, match=r"params\[1\].*'momentum_buffer' is read-only"):
            optimizer.step()
    assert optimizer.state["step"] == 1
    assert all((entry["params"] == b).all() for entry, b in zip(entries, before)), f"{side}: a parameter changed"


def test_a_dropped_optimizer_lets_its_arrays_be_resized_at_once():
    param = np.ones(8)
    optimizer = SGD([{"params": param, "grad": np.ones(8)}], lr=0.1)
    for _ in range(3):
        optimizer.step()
    assert optimizer._plan is not None
    with pytest.raises(ValueError, match="resize"):
        param.resize(16)  # NumPy refuses: the plan holds a weak reference
    del optimizer  # no reference cycle: the plan and its weak references go with it
    param.resize(16, refcheck=False)
    assert param.shape == (16,)


@pytest.mark.numba
def test_a_child_forked_while_the_pool_lock_is_held_can_step():
    # The pool's lock may be held by another thread at the fork; the child gets a new one.
    entries = [{"params": np.ones(1 << 20, np.float32), "grad": np.ones(1 << 20, np.float32)}]
    optimizer = AdamW(entries)
    settings = {"threads": 2, "compiled_parallel_min_bytes": 0}
    with use_backend("numba"), _blocks.configured(**settings):
        optimizer.step()
        context = multiprocessing.get_context("fork")
        done = context.Queue()

        def child():
            with use_backend("numba"), _blocks.configured(**settings):
                optimizer.step()
            done.put(float(entries[0]["params"][0]))

        with _blocks._pool_lock:
            process = context.Process(target=child)
            process.start()
        process.join(HANG_S)
        alive = process.is_alive()
        if alive:
            process.kill()
        assert not alive, "the forked child hung in its step"
        assert process.exitcode == 0
        assert done.get(timeout=HANG_S) < 1.0


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls, kwargs", [(SGD, {"lr": 0.05, "momentum": 0.9}), (Adam, {"lr": 0.05}),
                                         (AdamW, {"lr": 0.05, "amsgrad": True})], ids=["SGD", "Adam", "AdamW"])
def test_entries_of_two_dtypes_with_the_same_overrides_keep_their_own_groups_on_the_plan(side, cls, kwargs):
    """A scheduler gives float64 and float32 entries the same lr: on the reused plan they were
    resolved once by their overrides, and the float32 ones joined the float64 group (its
    float64 constants and kernel on float32 memory: NaNs, then heap corruption). Regression
    test: the group key is resolved per dtype."""
    shapes = [(4, 3), (5,), (7,), (2, 2)]
    dtypes = [np.float64, np.float32, np.float32, np.float64]
    pair = []
    for _ in range(2):
        rng = np.random.default_rng(21)
        entries = [{"params": rng.standard_normal(s).astype(d), "grad": rng.standard_normal(s).astype(d), "lr": 0.05}
                   for s, d in zip(shapes, dtypes)]
        pair.append(cls(entries, **kwargs))
    opt, ref = pair
    for step in range(6):
        if step == 2:
            for o in (opt, ref):
                for entry in o.param_groups:
                    entry["lr"] = 0.025
        with on(side):
            opt.step()
        reference_step(ref)
        assert_bitwise(ref, opt, f"{side}: {cls.__name__} step {step + 1}")
