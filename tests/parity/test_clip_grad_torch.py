"""Gradient clipping against torch.nn.utils (torch 2.13, CPU), bit for bit.

Every test runs torch's function on copies of the same arrays and compares the total norm
(bytes and dtype) and every clipped gradient with ``tobytes()`` (NaN payloads aside, see
:func:`bits`; the NaN tests compare them too): float16, float32 and
float64; sizes 0..70 (the 8/4-lane body and the scalar tail of torch's 2-norm) and 100003;
norm types 2, 1, 0, ±inf and general p; huge and tiny scales; NaN and infinite gradients;
mixed dtypes; torch with one and with two threads.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from numpy_optim._reductions import vector_norm  # noqa: E402
from numpy_optim.clip_grad import (  # noqa: E402
    _dtype_groups,
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
)

INF, NAN = math.inf, math.nan
DTYPES = [pytest.param(np.float16, id="float16"), pytest.param(np.float32, id="float32"),
          pytest.param(np.float64, id="float64")]
NORMS = [2.0, 1.0, 0.0, INF, -INF, 3.0, 0.5, 1.5, -1.0, -2.5, 7.3]
needs_fma = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="torch's 2-norm tail is an FMA only on AVX2/AVX512 CPUs; the bitwise claim is for those",
)
pytestmark = needs_fma


@contextlib.contextmanager
def torch_threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every comparison runs torch with one thread, which numpy_optim's default
    ``threads=1`` reproduces (torch splits sums of other orders than 2 and ±inf over
    more than 32768 elements by its thread count); the two-thread tests set their own."""
    with torch_threads(1):
        yield


def params_with_grads(grads):
    """torch parameters whose .grad are copies of ``grads`` (None stays None)."""
    params = []
    for g in grads:
        if g is None:
            params.append(torch.zeros(1, requires_grad=True))
            continue
        p = torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
        p.grad = torch.from_numpy(g.copy())
        params.append(p)
    return params


def bits(a):
    """``a``'s bytes with every NaN made the default quiet NaN: where a NaN element meets a NaN
    coefficient of another payload or sign, torch's multiply keeps one or the other depending
    on the element's place in its vector loop (numpy_optim keeps the coefficient's); NaN
    payloads are not compared, everything else is (signed zeros included)."""
    a = np.array(a, copy=True)
    a[np.isnan(a)] = np.nan
    return a.tobytes()


def assert_same_grads(ours_grads, params, case):
    for index, (g, p) in enumerate(zip(ours_grads, params)):
        t = p.grad.numpy()
        if bits(g) != bits(t):
            bad = np.flatnonzero(~((g == t) & (np.signbit(g) == np.signbit(t)) | (np.isnan(g) & np.isnan(t))))
            raise AssertionError(f"{case}: grad {index} differs at {bad[:5]}: ours {g.ravel()[bad[:3]]}, "
                                 f"torch {t.ravel()[bad[:3]]}")


def assert_same(ours_total, theirs_total, ours_grads, params, case):
    theirs = theirs_total.numpy()
    assert ours_total.dtype == theirs.dtype, f"{case}: total dtype {ours_total.dtype} vs torch {theirs.dtype}"
    assert bits(ours_total) == bits(theirs), f"{case}: total {ours_total!r} vs torch {theirs!r}"
    assert_same_grads(ours_grads, params, case)


def random_grad(rng, dtype, size, scale=None):
    if scale is None:
        scale = 10.0 ** rng.uniform(-3, 3) if dtype == np.float16 else 10.0 ** rng.uniform(-25, 25)
    return np.asarray(rng.standard_normal(size) * scale).astype(dtype)


# ----- vector_norm: torch.linalg.vector_norm for every order, size and dtype ---------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", NORMS)
def test_vector_norm_sizes_0_to_70(dtype, p):
    rng = np.random.default_rng(NORMS.index(p))
    compared = 0
    for size in range(0, 71):
        if size == 0 and (p < 0 or p == INF):
            continue
        for _ in range(3):
            x = random_grad(rng, dtype, size, scale=10.0 ** rng.uniform(-3, 3))
            if size > 2 and rng.random() < 0.3:
                x[rng.integers(0, size)] = 0
            with np.errstate(all="ignore"):
                ours = vector_norm(x, p)
            theirs = torch.linalg.vector_norm(torch.from_numpy(x), p).numpy()
            assert ours.tobytes() == theirs.tobytes() and ours.dtype == theirs.dtype, (size, ours, theirs)
            compared += 1
    print(f"BITWISE vector_norm {np.dtype(dtype).name} p={p}: {compared} arrays")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [2.0, 1.0, 0.0, INF, 3.0])
@pytest.mark.parametrize("threads", [1, 2])
def test_vector_norm_large_arrays_with_one_and_two_threads(dtype, p, threads):
    rng = np.random.default_rng(5)
    for size in (32768, 40001, 100003):
        x = random_grad(rng, dtype, size, scale=10.0 ** rng.uniform(-2, 2))
        with torch_threads(threads):
            theirs = torch.linalg.vector_norm(torch.from_numpy(x), p).numpy()
        assert vector_norm(x, p, threads=threads).tobytes() == theirs.tobytes(), size


def test_the_thread_count_matters_for_the_one_norm():
    # the quirk behind ``threads``: torch's own result changes with its thread count
    x = np.random.default_rng(6).standard_normal(100003).astype(np.float32)
    with torch_threads(1):
        one = torch.linalg.vector_norm(torch.from_numpy(x), 1).numpy()
    with torch_threads(2):
        two = torch.linalg.vector_norm(torch.from_numpy(x), 1).numpy()
    assert one.tobytes() != two.tobytes()
    assert vector_norm(x, 1, threads=1).tobytes() == one.tobytes()
    assert vector_norm(x, 1, threads=2).tobytes() == two.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_norm_nan_inf_and_memory_order(dtype):
    for p in NORMS:
        for x in (np.array([1.0, NAN, 2.0]), np.array([1.0, INF, -2.0]), np.array([-INF, 0.0]),
                  np.arange(12.0).reshape(3, 4).T, np.asfortranarray(np.arange(1.0, 13.0).reshape(3, 4)),
                  np.array(-3.5), np.array([[0.0]])):
            x = x.astype(dtype)
            with np.errstate(all="ignore"):
                ours = vector_norm(x, p)
            theirs = torch.linalg.vector_norm(torch.from_numpy(x), p).numpy()
            assert ours.tobytes() == theirs.tobytes(), (p, x, ours, theirs)


# ----- clip_grad_norm_: one array of every size, then random multi-array cases ----------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [2.0, 1.0, INF, 3.0])
def test_clip_grad_norm_one_array_sizes_1_to_70_and_100003(dtype, p):
    rng = np.random.default_rng(7)
    for size in list(range(1, 71)) + [100003]:
        g = random_grad(rng, dtype, size)
        max_norm = float(10.0 ** rng.uniform(-3, 3))
        params = params_with_grads([g])
        theirs = torch.nn.utils.clip_grad_norm_(params, max_norm, p)
        ours = clip_grad_norm_(g, max_norm, p)
        assert_same(ours, theirs, [g], params, f"size {size}, max_norm {max_norm}")


@pytest.mark.parametrize("mode", ["float16", "float32", "float64", "mixed"])
def test_clip_grad_norm_random_cases(mode):
    rng = np.random.default_rng({"float16": 1, "float32": 2, "float64": 3, "mixed": 4}[mode])
    dtypes = [np.float16, np.float32, np.float64]
    cases = 0
    for case in range(400):
        k = int(rng.integers(1, 6))
        grads = []
        for _ in range(k):
            dtype = dtypes[int(rng.integers(0, 3))] if mode == "mixed" else np.dtype(mode).type
            size = int(rng.integers(0, 71)) if rng.random() < 0.9 else int(rng.integers(71, 5000))
            shape = (size,) if rng.random() < 0.7 or size == 0 else (1, size)
            g = random_grad(rng, dtype, shape)
            r = rng.random()
            if size and r < 0.05:
                g.flat[rng.integers(0, size)] = NAN
            elif size and r < 0.1:
                g.flat[rng.integers(0, size)] = INF * (1 if rng.random() < 0.5 else -1)
            grads.append(g)
        p = NORMS[int(rng.integers(0, len(NORMS)))]
        if p < 0 or p == INF:
            grads = [g if g.size else np.ones(1, g.dtype) for g in grads]
        max_norm = float(rng.choice([10.0 ** rng.uniform(-6, 6), 1.0, 0.0, INF]))
        params = params_with_grads(grads)
        theirs = torch.nn.utils.clip_grad_norm_(params, max_norm, p)
        ours = clip_grad_norm_(grads, max_norm, p)
        assert_same(ours, theirs, grads, params, f"case {case}: p={p}, max_norm={max_norm}, "
                                                 f"dtypes {[g.dtype.name for g in grads]}")
        cases += 1
    print(f"BITWISE clip_grad_norm_ {mode}: {cases} cases")


@pytest.mark.parametrize("order", list(itertools.permutations(["float16", "float32", "float64"])),
                         ids=lambda o: "-".join(o))
def test_mixed_dtypes_in_every_order(order):
    rng = np.random.default_rng(8)
    for _ in range(30):
        grads = [random_grad(rng, np.dtype(name).type, int(rng.integers(1, 40)), scale=10.0 ** rng.uniform(-2, 2))
                 for name in order for _ in range(int(rng.integers(1, 3)))]
        params = params_with_grads(grads)
        theirs = torch.nn.utils.clip_grad_norm_(params, 0.5)
        ours = clip_grad_norm_(grads, 0.5)
        assert_same(ours, theirs, grads, params, f"order {order}")


def test_the_dtype_group_order_changes_the_total():
    # the quirk: torch stacks the norms group by group, groups in reverse first appearance;
    # the same norms in the entries' order give another float64 total in some cases
    rng = np.random.default_rng(9)
    differ = 0
    for _ in range(200):
        grads = [random_grad(rng, dt, 5, scale=10.0 ** rng.uniform(-1, 1)) for dt in (np.float32, np.float64) * 3]
        theirs = torch.nn.utils.clip_grad_norm_(params_with_grads(grads), 1.0).numpy()
        in_order = vector_norm(np.array([vector_norm(g) for g in grads], np.float64))
        grouped = [grads[i] for group in _dtype_groups(grads) for i in group]
        assert vector_norm(np.array([vector_norm(g) for g in grouped], np.float64)).tobytes() == theirs.tobytes()
        differ += in_order.tobytes() != theirs.tobytes()
    assert differ > 0


def test_a_float16_nan_norm_becomes_nan_0x7fffffff_in_a_float32_stack():
    grads = [np.array([1.0, NAN], np.float16), np.array([2.0], np.float32)]
    params = params_with_grads(grads)
    theirs = torch.nn.utils.clip_grad_norm_(params, 1.0)
    assert theirs.numpy().view(np.uint32) == 0x7FFFFFFF      # torch's scalar float16 -> float32 of a NaN
    ours = clip_grad_norm_(grads, 1.0)
    assert ours.tobytes() == theirs.numpy().tobytes()         # NaN payloads compared here
    assert [g.tobytes() for g in grads] == [p.grad.numpy().tobytes() for p in params]


@pytest.mark.parametrize("p", [2.0, INF, 1.0])
def test_error_if_nonfinite_has_torchs_message_and_changes_nothing(p):
    for bad in (INF, NAN):
        grads = [np.array([1.0, bad], np.float32), np.array([2.0], np.float64)]
        with pytest.raises(RuntimeError) as theirs:
            torch.nn.utils.clip_grad_norm_(params_with_grads(grads), 1.0, p, error_if_nonfinite=True)
        with pytest.raises(RuntimeError) as ours:
            clip_grad_norm_(grads, 1.0, p, error_if_nonfinite=True)
        assert str(ours.value) == str(theirs.value)
        assert grads[0][0] == 1.0 and grads[1][0] == 2.0


def test_empty_inputs():
    for grads in ([], [None, None]):
        params = params_with_grads(grads)
        theirs = torch.nn.utils.clip_grad_norm_(params, 1.0)
        entries = [{"params": np.zeros(1), "grad": g} for g in grads]
        assert_same(clip_grad_norm_(entries, 1.0), theirs, [], [], f"{grads}")
    for p in (2.0, 1.0, 0.0, 3.0):
        grads = [np.zeros(0, np.float32), np.zeros((3, 0), np.float64), np.array([3.0, 4.0], np.float32)]
        params = params_with_grads(grads)
        theirs = torch.nn.utils.clip_grad_norm_(params, 1.0, p)
        assert_same(clip_grad_norm_(grads, 1.0, p), theirs, grads, params, f"empty arrays, p={p}")
    with pytest.raises(RuntimeError, match="cannot compute the inf.* norm on an empty tensor"):
        torch.nn.utils.clip_grad_norm_(params_with_grads([np.zeros(0, np.float32)]), 1.0, INF)
    with pytest.raises(ValueError, match="is empty"):
        clip_grad_norm_([np.zeros(0, np.float32)], 1.0, INF)


@pytest.mark.parametrize("p", [1.0, 3.0, 0.0])
def test_clip_grad_norm_with_two_torch_threads(p):
    rng = np.random.default_rng(10)
    grads = [random_grad(rng, np.float32, 100003, scale=1.0), random_grad(rng, np.float64, 70000, scale=1.0),
             random_grad(rng, np.float16, 50000, scale=1.0)]
    params = params_with_grads(grads)
    with torch_threads(2):
        theirs = torch.nn.utils.clip_grad_norm_(params, 0.1, p)
    ours = clip_grad_norm_(grads, 0.1, p, threads=2)
    assert_same(ours, theirs, grads, params, f"two threads, p={p}")


def test_get_total_norm_and_clip_grads_with_norm_are_torchs_halves():
    rng = np.random.default_rng(11)
    for dtype in (np.float16, np.float32, np.float64):
        grads = [random_grad(rng, dtype, n, scale=3.0) for n in (7, 33, 1)]
        tensors = [torch.from_numpy(g.copy()) for g in grads]
        theirs = torch.nn.utils.get_total_norm(tensors, 2.0)
        ours = get_total_norm(grads)
        assert ours.tobytes() == theirs.numpy().tobytes()
        for total_dtype in (torch.float16, torch.float32, torch.float64):
            params = params_with_grads(grads)
            copies = [g.copy() for g in grads]
            torch.nn.utils.clip_grads_with_norm_(params, 0.3, theirs.to(total_dtype))
            clip_grads_with_norm_(copies, 0.3, theirs.to(total_dtype).numpy())
            assert_same_grads(copies, params, f"{dtype.__name__} grads, total {total_dtype}")


# ----- clip_grad_value_ ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_value(dtype):
    rng = np.random.default_rng(12)
    values = [0.0, -0.0, 1.0, -1.0, 0.1, 1e-3, 2.5, -2.5, INF, -INF, 1e-45, 65504.0]
    for clip_value in values:
        for size in (1, 7, 8, 9, 16, 33, 100):
            g = (rng.standard_normal(size) * 3).astype(dtype)
            specials = [0.0, -0.0, NAN, INF, -INF]
            g[: min(size, 5)] = specials[: min(size, 5)]
            params = params_with_grads([g])
            torch.nn.utils.clip_grad_value_(params, clip_value)
            clip_grad_value_(g, clip_value)
            assert g.tobytes() == params[0].grad.numpy().tobytes(), (clip_value, size, g, params[0].grad)


def test_clip_value_too_large_for_float16_is_refused_by_both():
    with pytest.raises(RuntimeError, match="cannot be converted to type c10::Half without overflow"):
        torch.nn.utils.clip_grad_value_(params_with_grads([np.ones(3, np.float16)]), 70000.0)
    with pytest.raises(ValueError, match="beyond its largest value"):
        clip_grad_value_(np.ones(3, np.float16), 70000.0)
