"""Gradient clipping without torch: hand-computed norms, coefficients and clipped gradients,
the input forms, torch's quirks, and validation (every refused call changes nothing).

The arithmetic written in each test is torch's (torch-optim-rest.md §4, numpy_optim/clip_grad.py's
docstring): NumPy scalars of one dtype round every operation to that dtype. Agreement with
torch itself is tests/parity/test_clip_grad_torch.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import warnings

import numpy as np
import pytest

from numpy_optim import SGD
from numpy_optim._reductions import GRAIN_SIZE, vector_norm
from numpy_optim.clip_grad import (
    _dtype_groups,
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
)
from numpy_optim.mlp import MLP

f16, f32, f64 = np.float16, np.float32, np.float64
NAN, INF = math.nan, math.inf


def entry(grad, params=None):
    return {"params": np.zeros_like(grad) if params is None else params, "grad": grad}


# ----- vector_norm: each order's reduction, written out ----------------------------------------


def test_vector_norm_one_is_sequential_in_float32():
    # 2**24 + 1 rounds back to 2**24 (ties to even), so adding ones one at a time never moves
    # the sum; a pairwise sum (np.sum) would add 1 + 1 = 2 first and get 2**24 + 2.
    x = np.array([2.0**24, 1.0, 1.0], f32)
    assert vector_norm(x, 1) == f32(2.0**24)
    assert f32(2.0**24) + (f32(1.0) + f32(1.0)) == f32(2.0**24 + 2)  # what another order gives
    y = np.array([2.0**24] + [1.0] * 15, f32)
    assert vector_norm(y, 1) == f32(2.0**24)             # still sequential: 15 ties, each to even


def test_vector_norm_one_split_among_threads_adds_the_chunk_sums():
    # 70000 elements, 2 threads: chunks of 35000. First chunk: 2**24 followed by ones that
    # each round away (ties to even); second chunk: 35000 ones, exactly 35000. Total
    # 2**24 + 35000 (even, representable). One thread: the ones never count.
    x = np.ones(70000, f32)
    x[0] = 2.0**24
    assert vector_norm(x, 1, threads=1) == f32(2.0**24)
    assert vector_norm(x, 1, threads=2) == f32(2.0**24 + 35000)
    # at most GRAIN_SIZE elements: one chunk whatever the thread count
    assert vector_norm(x[:GRAIN_SIZE], 1, threads=2) == f32(2.0**24)


def test_vector_norm_zero_counts_nonzeros_and_nan():
    x = np.array([0.0, -0.0, 3.0, NAN, -2.0, INF], f32)
    assert vector_norm(x, 0) == f32(4.0)                 # 3, nan, -2, inf
    assert vector_norm(np.array([0.0], f32), 0) == 0.0   # no |x| shortcut for p = 0
    assert vector_norm(np.array([5.0], f32), 0) == 1.0


def test_vector_norm_of_one_element_is_its_magnitude_for_every_other_order():
    for p in (1.0, 2.0, 3.0, 0.5, -1.0, INF, -INF):
        assert vector_norm(np.array([-2.5], f32), p) == f32(2.5), p
        assert vector_norm(np.array(1e-30, f32), p) == f32(1e-30), p  # pow(1e-30, 3) would underflow


def test_vector_norm_inf_and_minus_inf():
    x = np.array([1.0, -7.0, 0.5], f64)
    assert vector_norm(x, INF) == 7.0
    assert vector_norm(x, -INF) == 0.5
    nan = vector_norm(np.array([1.0, NAN], f64), INF)
    assert nan.tobytes() == np.array(NAN, f64).tobytes()  # the default quiet NaN


def _c_pow(dtype):
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    fn = libm.powf if dtype == f32 else libm.pow
    c = ctypes.c_float if dtype == f32 else ctypes.c_double
    fn.restype, fn.argtypes = c, [c, c]
    return lambda b, e: dtype(fn(float(b), float(e)))


@pytest.mark.parametrize("dtype", [f32, f64], ids=["float32", "float64"])
@pytest.mark.parametrize("p", [3.0, 0.5, 1.5, -1.0, 7.3])
def test_vector_norm_general_order_is_pow_of_the_sequential_sum_of_pows(dtype, p):
    # NormOps: acc = acc + pow(|x|, T(p)) in order, then pow(acc, T(1) / T(p)); C's pow/powf
    pw = _c_pow(dtype)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(37) * 3).astype(dtype)
    acc = dtype(0)
    for v in x:
        acc = dtype(acc + pw(abs(v), dtype(p)))
    expected = pw(acc, dtype(1) / dtype(p))               # float32: 1 / f32(p) rounded to float32
    assert vector_norm(x, p).tobytes() == np.asarray(expected, dtype).tobytes()


def test_vector_norm_two_of_float16_is_the_sequential_float32_sum_of_squares():
    x = np.array([3.0, 4.0, 12.0], f16)
    assert vector_norm(x).dtype == f16
    assert vector_norm(x) == f16(13.0)
    rng = np.random.default_rng(2)
    y = (rng.standard_normal(100) * 10).astype(f16)
    s = f32(0)
    for v in y.astype(f32):
        s = f32(s + v * v)                                # float16 squares are exact in float32
    assert vector_norm(y).tobytes() == np.sqrt(s).astype(f16).tobytes()


def test_vector_norm_of_an_empty_array():
    for p in (2.0, 1.0, 0.0, 3.0):
        assert vector_norm(np.zeros(0, f32), p) == 0.0
    for p in (INF, -INF, -1.0):
        with pytest.raises(ValueError, match="cannot compute the .* norm on an empty tensor"):
            vector_norm(np.zeros((0, 3), f32), p)


# ----- get_total_norm / clip_grad_norm_: hand-computed --------------------------------------------


def test_total_norm_float64_three_four_five():
    total = get_total_norm([np.array([3.0]), np.array([4.0])])
    assert total.shape == () and total.dtype == f64 and total == 5.0


def test_clip_grad_norm_float32_coefficient_is_reciprocal_times_max_norm():
    # total = 5 (lane norm of [3, 4]: fma tail, exact); coef = rn(rn(1 / rn(5 + 1e-6)) * 2.5).
    # Here the reciprocal form and IEEE division 2.5 / (5 + 1e-6) differ in the last bit.
    g = np.array([3.0, 4.0], f32)
    denominator = f32(5.0) + f32(1e-6)
    coef = (f32(1) / denominator) * f32(2.5)
    assert coef != f32(2.5) / denominator
    total = clip_grad_norm_(g, 2.5)
    assert total.dtype == f32 and total == f32(5.0)
    assert g.tobytes() == (np.array([3.0, 4.0], f32) * coef).tobytes()


def test_clip_grad_norm_float64_coefficient_is_reciprocal_times_max_norm():
    g = np.array([-3.0])                                  # one element: total |g| = 3
    coef = (1.0 / (3.0 + 1e-6)) * 0.3                     # Python floats are float64, IEEE
    assert coef != 0.3 / (3.0 + 1e-6)
    assert clip_grad_norm_([entry(g)], 0.3) == 3.0
    assert g[0] == -3.0 * coef


def test_clip_grad_norm_multiplies_by_one_when_below_max_norm():
    g = np.array([3.0, -4.0, -0.0], f32)
    before = g.copy()
    total = clip_grad_norm_(g, 100.0)
    assert total == 5.0
    assert g.tobytes() == before.tobytes()                # coef = 1: exact, -0.0 kept


def test_clip_grad_norm_float16_rounds_each_operation_to_float16_with_float32_max_norm():
    g = np.array([3.0, 4.0], f16)
    total = clip_grad_norm_(g, 0.1)
    assert total.dtype == f16 and total == f16(5.0)
    denominator = f16(f32(f16(5.0)) + f32(f16(1e-6)))     # 1e-6 rounded to float16, sum in float32
    reciprocal = f16(f32(1) / f32(denominator))
    coef = f16(f32(reciprocal) * f32(0.1))                # max_norm as float32, not float16
    expected = (np.array([3.0, 4.0], f32) * f32(coef)).astype(f16)
    assert g.tobytes() == expected.tobytes()


def test_mixed_float32_and_float64_gradients_give_a_float64_total():
    a, b = np.array([3.0], f32), np.array([4.0], f64)
    total = clip_grad_norm_([a, b], 1.0)
    assert total.dtype == f64 and total == 5.0
    coef = (1.0 / (5.0 + 1e-6)) * 1.0
    assert a[0] == f32(3.0) * f32(coef)                   # coef cast to float32 first
    assert b[0] == 4.0 * coef


def test_norms_are_stacked_in_reverse_order_of_first_dtype_appearance():
    grads = [np.zeros(1, f32), np.zeros(1, f64), np.zeros(1, f32), np.zeros(1, f16)]
    assert _dtype_groups(grads) == [[3], [1], [0, 2]]


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, INF])
def test_total_norm_is_the_norm_of_the_norms(p):
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(n) for n in (5, 17, 1)]
    expected = vector_norm(np.array([vector_norm(g, p) for g in grads]), p)
    assert get_total_norm(grads, p).tobytes() == expected.tobytes()


def test_norm_type_zero_counts_gradients_with_a_nonzero_element():
    # per-gradient norms are counts (2, 0, 1); the total counts the nonzero counts: 2
    grads = [np.array([1.0, 2.0]), np.array([0.0, 0.0]), np.array([0.0, 5.0])]
    assert get_total_norm(grads, 0) == 2.0


def test_norm_type_inf_as_a_string():
    grads = [np.array([1.0, -9.0]), np.array([4.0])]
    assert get_total_norm(grads, "inf") == 9.0
    assert get_total_norm(grads, "-inf") == 1.0


def test_a_nan_gradient_makes_every_gradient_nan():
    a, b = np.array([1.0, NAN]), np.array([2.0])
    total = clip_grad_norm_([a, b], 1.0)
    assert np.isnan(total) and np.isnan(a).all() and np.isnan(b).all()


def test_an_infinite_gradient_zeroes_the_others_and_makes_itself_nan():
    a, b = np.array([1.0, INF, -2.0]), np.array([3.0])
    total = clip_grad_norm_([a, b], 1.0)
    assert total == INF                                   # coef = 1 / inf * 1 = 0
    assert a[0] == 0.0 and np.isnan(a[1]) and a[2] == 0.0 and np.signbit(a[2])
    assert b[0] == 0.0


def test_error_if_nonfinite_raises_torchs_runtime_error_and_changes_nothing():
    g = np.array([1.0, INF])
    with pytest.raises(RuntimeError) as info:
        clip_grad_norm_(g, 1.0, error_if_nonfinite=True)
    assert str(info.value) == (
        "The total norm of order 2.0 for gradients from `parameters` is non-finite, so it cannot be clipped. "
        "To disable this error and scale the gradients by the non-finite norm anyway, set "
        "`error_if_nonfinite=False`"
    )
    assert g[1] == INF and g[0] == 1.0
    with pytest.raises(RuntimeError, match="of order inf for"):
        get_total_norm(np.array([NAN]), INF, error_if_nonfinite=True)


def test_no_gradient_gives_a_float32_zero_and_changes_nothing():
    g = np.array([3.0])
    entries = [{"params": np.zeros(1), "grad": None}, {"params": np.zeros(1), "grad": None}]
    for given in ([], entries):
        total = clip_grad_norm_(given, 1.0)
        assert total.dtype == f32 and total.shape == () and total == 0.0
    assert get_total_norm([]).dtype == f32
    clip_grads_with_norm_([], 1.0, np.float64(5.0))
    assert g[0] == 3.0


def test_entries_whose_grad_is_none_are_skipped():
    g = np.array([6.0, 8.0])
    entries = [{"params": np.zeros(2), "grad": None}, entry(g)]
    assert clip_grad_norm_(entries, 5.0) == 10.0
    coef = (1.0 / (10.0 + 1e-6)) * 5.0
    assert g.tolist() == [6.0 * coef, 8.0 * coef]


def test_empty_gradients_have_norm_zero_but_not_for_inf():
    e, g = np.zeros(0), np.array([3.0, 4.0])
    assert clip_grad_norm_([e, g], 1.0) == 5.0
    g2 = np.array([3.0, 4.0])
    with pytest.raises(ValueError, match=r"entries\[0\] is empty .*inf norm"):
        clip_grad_norm_([np.zeros((2, 0)), g2], 1.0, INF)
    assert g2.tolist() == [3.0, 4.0]


def test_an_empty_generator_warns_as_torch_does():
    with pytest.warns(UserWarning, match="`parameters` is an empty generator, no gradient clipping will occur."):
        total = clip_grad_norm_((g for g in []), 1.0)
    assert total == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clip_grad_norm_([], 1.0)                          # a list: no warning, as in torch


def test_clip_grads_with_norm_uses_the_given_total_and_its_dtype():
    g = np.array([3.0, 4.0])
    clip_grads_with_norm_(g, 1.0, np.float32(10.0))       # coefficient in float32
    coef = (f32(1) / (f32(10.0) + f32(1e-6))) * f32(1.0)
    assert g.tolist() == [3.0 * float(coef), 4.0 * float(coef)]
    h = np.array([3.0, 4.0])
    clip_grads_with_norm_(h, 1.0, 10.0)                   # a Python float: float64
    assert h.tolist() == [3.0 * ((1.0 / (10.0 + 1e-6)) * 1.0), 4.0 * ((1.0 / (10.0 + 1e-6)) * 1.0)]


def test_max_norm_inf_measures_without_clipping():
    g = np.array([3.0, 4.0])
    assert clip_grad_norm_(g, INF) == 5.0
    assert g.tolist() == [3.0, 4.0]


def test_max_norm_zero_zeroes_the_gradients():
    g = np.array([3.0, -4.0])
    clip_grad_norm_(g, 0.0)
    assert g.tolist() == [0.0, 0.0] and np.signbit(g[1])


# ----- input forms ------------------------------------------------------------------------------------


def test_an_optimizer_an_entry_a_model_and_arrays_are_all_accepted():
    def fresh():
        return np.array([3.0, 4.0]), np.array([12.0])

    a, b = fresh()
    optimizer = SGD([entry(a), entry(b)], lr=0.1)
    assert clip_grad_norm_(optimizer, 1.0) == 13.0
    reference = (a.copy(), b.copy())
    for form in ("entries", "arrays", "tuple"):
        a, b = fresh()
        given = {"entries": [entry(a), entry(b)], "arrays": [a, b], "tuple": (a, b)}[form]
        assert clip_grad_norm_(given, 1.0) == 13.0, form
        assert a.tobytes() == reference[0].tobytes() and b.tobytes() == reference[1].tobytes(), form
    c = np.array([3.0, 4.0])
    assert clip_grad_norm_(entry(c), 1.0) == 5.0          # one entry dict
    model = MLP([2, 3, 2], seed=0)
    model.loss_and_gradients(np.array([[1.0, 2.0]]), np.array([1]))
    expected = get_total_norm([e["grad"] for e in model.parameters()])
    assert clip_grad_norm_(model, 1e-3) == expected       # an object with parameters()
    assert get_total_norm(model) <= 1e-3 * (1 + 1e-9)


# ----- clip_grad_value_ -------------------------------------------------------------------------------


def test_clip_grad_value_clamps_and_keeps_nan():
    g = np.array([-3.0, 0.5, 2.0, NAN, -INF], f32)
    clip_grad_value_([entry(g)], 1.0)
    assert g[:3].tolist() == [-1.0, 0.5, 1.0] and np.isnan(g[3]) and g[4] == -1.0


def test_clip_grad_value_negative_sets_every_element_to_it():
    g = np.array([-3.0, 0.5, 2.0, NAN])
    clip_grad_value_(g, -0.25)                            # clamp_min(0.25) then clamp_max(-0.25)
    assert g[:3].tolist() == [-0.25, -0.25, -0.25] and np.isnan(g[3])


def test_clip_grad_value_zero_keeps_the_sign_of_zeros():
    g = np.array([0.0, -0.0, INF, -INF, 2.0, -2.0])
    clip_grad_value_(g, 0.0)
    assert g.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert np.signbit(g).tolist() == [False, True, False, True, False, True]


def test_clip_grad_value_casts_the_bound_to_the_dtype():
    g = np.array([0.2, -0.2], f16)
    clip_grad_value_(g, 0.1)
    assert g.tolist() == [float(f16(0.1)), float(f16(-0.1))]


def test_clip_grad_value_too_large_for_float16_is_refused_before_anything_changes():
    a, b = np.array([5.0], f32), np.array([5.0], f16)
    with pytest.raises(ValueError, match=r"clip_value 70000.0 for entries\[1\] of dtype float16"):
        clip_grad_value_([a, b], 70000.0)
    assert a[0] == 5.0
    clip_grad_value_([a, b], 65504.0)                     # the largest float16 is fine
    clip_grad_value_([a, b], INF)                         # and so is infinity
    assert a[0] == 5.0 and b[0] == 5.0


# ----- validation: clear errors, nothing changed --------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(max_norm=NAN), ValueError, "Invalid max_norm value: nan"),
        (dict(max_norm=-1.0), ValueError, "Invalid max_norm value: -1.0 .must be >= 0"),
        (dict(max_norm="1"), TypeError, "Invalid max_norm: '1' .expected a real number, got str"),
        (dict(max_norm=True), TypeError, "Invalid max_norm: True"),
        (dict(max_norm=1.0, norm_type=NAN), ValueError, "Invalid norm_type value: nan"),
        (dict(max_norm=1.0, norm_type="two"), ValueError, "Invalid norm_type: 'two' .a string must name infinity"),
        (dict(max_norm=1.0, norm_type=None), TypeError, "Invalid norm_type: None"),
        (dict(max_norm=1.0, error_if_nonfinite=1), TypeError, "Invalid error_if_nonfinite: 1 .expected a bool"),
        (dict(max_norm=1.0, threads=0), ValueError, "Invalid threads: 0 .expected an int >= 1"),
        (dict(max_norm=1.0, threads=2.0), TypeError, "Invalid threads: 2.0 .expected an int"),
    ],
    ids=["nan-max-norm", "negative-max-norm", "str-max-norm", "bool-max-norm", "nan-norm-type",
         "str-norm-type", "none-norm-type", "int-error-flag", "zero-threads", "float-threads"],
)
def test_clip_grad_norm_validation(kwargs, error, message):
    g = np.array([3.0, 4.0])
    with pytest.raises(error, match=message):
        clip_grad_norm_([g], **kwargs)
    assert g.tolist() == [3.0, 4.0]


@pytest.mark.parametrize(
    "entries, error, message",
    [
        (None, TypeError, "entries must be an Optimizer, entry dicts .* got NoneType"),
        ("grads", TypeError, "entries must be an Optimizer"),
        ([np.array([1.0]), 3.0], TypeError, r"entries\[1\] must be an entry dict or a gradient ndarray, got float"),
        ([{"params": np.zeros(1)}], ValueError, r"entries\[0\] has no 'grad' key"),
        ([{"params": np.zeros(1), "grad": [1.0]}], TypeError, r"entries\[0\]\['grad'\] must be a numpy.ndarray"),
        ([np.array([1, 2])], TypeError, r"entries\[0\] must have a floating dtype .* got int64"),
    ],
    ids=["none", "str", "float-item", "no-grad-key", "list-grad", "int-dtype"],
)
def test_entries_validation(entries, error, message):
    with pytest.raises(error, match=message):
        clip_grad_norm_(entries, 1.0)


def test_a_read_only_gradient_is_refused_before_any_gradient_changes():
    a, b = np.array([3.0, 4.0]), np.array([1.0])
    b.flags.writeable = False
    for call in (lambda: clip_grad_norm_([a, b], 1.0), lambda: clip_grad_value_([a, b], 0.5),
                 lambda: clip_grads_with_norm_([a, b], 1.0, 5.0)):
        with pytest.raises(ValueError, match=r"entries\[1\] is read-only"):
            call()
        assert a.tolist() == [3.0, 4.0]
    assert get_total_norm([a, b]) == math.sqrt(26.0)      # reading a read-only gradient is fine


def test_clip_grad_value_and_with_norm_validation():
    g = np.array([3.0])
    with pytest.raises(ValueError, match="Invalid clip_value value: nan"):
        clip_grad_value_(g, NAN)
    with pytest.raises(TypeError, match="Invalid clip_value: None"):
        clip_grad_value_(g, None)
    with pytest.raises(TypeError, match="total_norm must be a 0-d float array"):
        clip_grads_with_norm_(g, 1.0, np.array([5.0]))
    with pytest.raises(ValueError, match="Invalid total_norm value: nan"):
        clip_grads_with_norm_(g, 1.0, NAN)
    assert g[0] == 3.0
