"""Adafactor without torch: hand-computed steps, torch's reductions against scalar
references, validation, per-entry overrides, state dicts and buffer shapes.

The reductions are checked against plain Python transcriptions of torch's algorithms
(reference torch-optim-rest.md §1.3 and Appendix A), one element at a time, with every
rounding explicit (``rn``: exact rational arithmetic rounded to the dtype); the vectorized
NumPy versions in numpy_optim/adafactor.py must give the same bits. Agreement with torch
itself is tests/parity/test_adafactor_torch.py.
"""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import numpy as np
import pytest

from numpy_optim.adafactor import (
    Adafactor,
    _sequential_sum,
    _sum_of_squares_rows,
    lerp_,
    norm_all,
    norm_columns,
    norm_rows,
    torch_sum,
)

NAN, INF = math.nan, math.inf
BITS = {np.float32: 24, np.float64: 53}


# ----- exact scalar references ---------------------------------------------------------------


def rn(x: Fraction, dtype) -> Fraction:
    """``x`` rounded to nearest, ties to even, to ``dtype``'s precision (normal range)."""
    if x == 0:
        return Fraction(0)
    bits = BITS[dtype]
    sign, a = (-1 if x < 0 else 1), abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2**e <= a < 2**(e+1), after the fix below
    if Fraction(2) ** e > a:
        e -= 1
    scale = Fraction(2) ** (bits - 1 - e)
    q, r = divmod(a * scale, 1)
    q = int(q)
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and q % 2 == 1):
        q += 1
    return sign * Fraction(q) / scale


def ref_sum_of_squares(row, dtype) -> Fraction:
    """torch's 2-norm accumulation, element by element (before the square root)."""
    x = [Fraction(float(v)) for v in row]
    lanes = 8 if dtype == np.float32 else 4
    n = len(x)
    body = n - n % lanes
    acc = [Fraction(0)] * lanes
    for i in range(body):                       # lane i % L: rn(acc + rn(x*x)), no FMA
        acc[i % lanes] = rn(acc[i % lanes] + rn(x[i] * x[i], dtype), dtype)
    s = acc[0]
    for j in range(1, lanes):                   # lanes combined in order
        s = rn(s + acc[j], dtype)
    done = body
    if dtype == np.float32 and n - done >= 4:   # float32: the next 4, rounded squares
        for i in range(done, done + 4):
            s = rn(s + rn(x[i] * x[i], dtype), dtype)
        done += 4
    for i in range(done, n):                    # tail: fma(x, x, s), one rounding
        s = rn(s + x[i] * x[i], dtype)
    return s


def ref_torch_sum(row, dtype):
    """Appendix A's torch_sum, a scalar at a time (NumPy scalars of one dtype round each addition)."""
    dt = np.dtype(dtype).type
    x = [dt(v) for v in row]
    n = len(x)
    width = 8 if dtype == np.float32 else 4

    def multi_row_sum(load, size, nrows):
        def ceil_log2(v):
            return 0 if v <= 1 else int(v - 1).bit_length()

        lp = max(4, ceil_log2(size) // 4)
        step, mask = 1 << lp, (1 << lp) - 1
        acc = [[dt(0)] * nrows for _ in range(4)]
        i = 0
        while i + step <= size:
            for _ in range(step):
                for k in range(nrows):
                    acc[0][k] = acc[0][k] + load(i, k)
                i += 1
            for j in range(1, 4):
                for k in range(nrows):
                    acc[j][k] = acc[j][k] + acc[j - 1][k]
                    acc[j - 1][k] = dt(0)
                if i & (mask << (j * lp)):
                    break
        while i < size:
            for k in range(nrows):
                acc[0][k] = acc[0][k] + load(i, k)
            i += 1
        for j in range(1, 4):
            for k in range(nrows):
                acc[0][k] = acc[0][k] + acc[j][k]
        return acc[0]

    def row_sum(load, size):
        q = size // 4
        ps = multi_row_sum(lambda i, k: load(4 * i + k), q, 4)
        for i in range(4 * q, size):
            ps[0] = ps[0] + load(i)
        for k in range(1, 4):
            ps[0] = ps[0] + ps[k]
        return ps[0]

    if n < width:
        return dt(0) + row_sum(lambda i: x[i], n)
    nv = n // width
    lanes = [row_sum(lambda i, j=j: x[width * i + j], nv) for j in range(width)]
    final = dt(0)
    for k in range(nv * width, n):
        final = final + x[k]
    for k in range(width):
        final = final + lanes[k]
    return dt(0) + final


def data(rng, shape, dtype):
    """Values over six orders of magnitude, so that the order of additions shows."""
    return (rng.standard_normal(shape) * np.exp(rng.uniform(-7, 7, shape))).astype(dtype)


DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


# ----- the reductions ------------------------------------------------------------------------


def test_lane_norm_worked_example_float32():
    # 16 float32 squares: 2**24 and fifteen 1s. Lanes: lane 0 holds 2**24 and 1 ->
    # 2**24 + 1 = 2**24 (a tie, to even); lanes 1..7 hold 1 + 1 = 2 each; combined in
    # order: 2**24 + 2 + 2 + ... = 2**24 + 14 (exact: spacing 2). Adding in sequence
    # would lose every 1 (2**24); the exact sum is 2**24 + 15.
    x = np.array([[4096.0] + [1.0] * 15], np.float32)
    assert _sum_of_squares_rows(x)[0] == 2**24 + 14
    assert norm_rows(x)[0] == np.float32(math.sqrt(2**24 + 14))
    # 12 elements: 8 in lanes (2**24, then 1s, each in its own lane), lanes combined:
    # 2**24 + 1 = 2**24 seven times; the epilogue adds the next 4 as 2**24 + 1 = 2**24.
    assert _sum_of_squares_rows(np.array([[4096.0] + [1.0] * 11], np.float32))[0] == 2**24


def test_lane_norm_worked_example_float64():
    # float64: 4 lanes. Squares 2**54 and eleven 1s (spacing 4 at 2**54): lane 0 holds
    # 2**54, 1, 1 -> each 1 lost: 2**54; lanes 1..3 hold 1 + 1 + 1 = 3; combined in order:
    # 2**54 + 3 -> 2**54 + 4; + 3 -> 2**54 + 8 (7 rounds up); + 3 -> 2**54 + 12 (11 rounds up).
    # In sequence every 1 would be lost (2**54).
    x = np.array([[2.0**27] + [1.0] * 11])
    assert _sum_of_squares_rows(x)[0] == 2.0**54 + 12
    # a 13th element takes the FMA tail: 2**54 + 12 + 1 -> 2**54 + 12
    assert _sum_of_squares_rows(np.array([[2.0**27] + [1.0] * 12]))[0] == 2.0**54 + 12


@pytest.mark.parametrize("dtype", DTYPES)
def test_lane_norm_matches_the_scalar_reference_for_every_length(dtype):
    rng = np.random.default_rng(1)
    for n in list(range(1, 45)) + [67, 100]:
        x = data(rng, (3, n), dtype)
        ours = _sum_of_squares_rows(x)
        for r in range(3):
            assert Fraction(float(ours[r])) == ref_sum_of_squares(x[r], dtype), f"n={n} row {r}"
        np.testing.assert_array_equal(norm_rows(x), np.sqrt(ours).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_all_is_the_lane_norm_of_the_flattened_array(dtype):
    rng = np.random.default_rng(2)
    for shape in [(), (1,), (13,), (3, 5), (2, 3, 7)]:
        x = data(rng, shape, dtype)
        expected = float(np.sqrt(dtype(float(ref_sum_of_squares(np.ravel(x), dtype)))))
        assert norm_all(x) == expected, shape
    assert norm_all(np.array([3.0, 4.0])) == 5.0
    assert math.isnan(norm_all(np.array([1.0, NAN])))


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_norm_over_one_element_is_its_absolute_value(dtype):
    # torch does not square a lone element: 1e-20 stays 1e-20 in float32, where
    # sqrt(rn(1e-20**2)) would lose bits to the subnormal square (and 1e20 would overflow)
    tiny, huge = (dtype(1e-20), dtype(1e20)) if dtype == np.float32 else (dtype(1e-160), dtype(1e160))
    for value in (tiny, huge, dtype(3.0)):
        assert norm_all(np.array(-value)) == float(value)
        assert norm_all(np.array([[value]])) == float(value)
        np.testing.assert_array_equal(norm_rows(np.full((3, 1), -value)), np.full(3, value))
        np.testing.assert_array_equal(norm_columns(np.full((2, 1, 4), -value)), np.full((2, 4), value))
    with np.errstate(under="ignore"):
        assert norm_all(np.array([tiny, 0], dtype)) != float(tiny)  # two elements: squared


def test_column_norm_adds_in_row_order_worked_example():
    # column [4096, 1, 1, 1] in float32: 2**24 + 1 = 2**24 (a tie, to even) three times ->
    # norm exactly 4096, where the exact norm sqrt(2**24 + 3) rounds to 4096 + 1 ulp
    x = np.array([[4096.0, 3.0], [1.0, 0.0], [1.0, 4.0], [1.0, 0.0]], np.float32)
    np.testing.assert_array_equal(norm_columns(x), np.array([4096.0, 5.0], np.float32))
    assert np.float32(math.sqrt(2**24 + 3)) == np.nextafter(np.float32(4096), np.float32(5000))


@pytest.mark.parametrize("dtype", DTYPES)
def test_column_norm_matches_the_sequential_reference(dtype):
    rng = np.random.default_rng(3)
    for shape in [(1, 2), (2, 2), (5, 3), (17, 8), (40, 9), (3, 6, 5), (2, 2, 9, 2)]:
        x = data(rng, shape, dtype)
        expected = np.zeros(shape[:-2] + shape[-1:], dtype)
        for i in range(shape[-2]):  # s = rn(s + rn(x*x)) over the rows, in order
            expected = (expected + x[..., i, :] * x[..., i, :]).astype(dtype)
        np.testing.assert_array_equal(norm_columns(x), np.sqrt(expected).astype(dtype), err_msg=str(shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_column_norm_of_one_column_is_the_lane_norm(dtype):
    # torch: with one column the reduced axis is contiguous and takes the lane algorithm
    rng = np.random.default_rng(4)
    for shape in [(1, 1), (9, 1), (13, 1), (2, 21, 1)]:
        x = data(rng, shape, dtype)
        np.testing.assert_array_equal(norm_columns(x), norm_rows(x[..., 0])[..., None], err_msg=str(shape))
        first = x[..., 0].reshape(-1, shape[-2])[0]
        assert norm_columns(x).reshape(-1)[0] == np.sqrt(dtype(float(ref_sum_of_squares(first, dtype))))


def test_sum_worked_examples_float32():
    f32 = np.float32
    # n = 9: the scalar tail (2**24) is added first, then the 8 lanes (1 each, all lost);
    # tail last would give 8 + 2**24.
    x = np.array([[1.0] * 8 + [2.0**24]], f32)
    assert torch_sum(x)[0] == 2**24
    # n = 16: lane 0 = 2**24 + 1 = 2**24, lanes 1..7 = 2: 2**24 + 14 (as the norm above)
    assert torch_sum(np.array([[2.0**24] + [1.0] * 15], f32))[0] == 2**24 + 14
    # n = 3 (< 8 lanes): scalar path, in order
    assert torch_sum(np.array([[2.0**24, 1.0, 1.0]], f32))[0] == 2**24
    assert torch_sum(np.array([[1.0, 2.0, 3.0]], f32))[0] == 6.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_cascade_sum_matches_the_scalar_reference(dtype):
    # lengths through every branch: scalar (< lanes), leftover vectors, one chunk of the
    # multi-row sum (16 groups of 4 vectors), level 1 (16 chunks) and for float64 level 2
    rng = np.random.default_rng(5)
    lengths = list(range(1, 40)) + [63, 64, 65, 255, 256, 257, 511, 512, 513, 600, 2047, 2049, 9000, 20000]
    if dtype == np.float64:
        lengths.append(66000)  # 16**3 groups of 4 vectors of 4: multi_row_sum's level 2 and 3
    for n in lengths:
        x = np.abs(data(rng, (2, n), dtype))
        ours = torch_sum(x)
        for r in range(2):
            assert ours[r] == ref_torch_sum(x[r], dtype), f"n={n} row {r}"


def test_cascade_sum_differs_from_numpy_and_from_sequential():
    rng = np.random.default_rng(6)
    x = np.abs(data(rng, (1, 5000), np.float32))
    ours = torch_sum(x)[0]
    sequential = np.float32(0)
    for v in x[0]:
        sequential = sequential + v
    assert ours != sequential or ours != np.sum(x[0])  # the order of additions is torch's own


def test_cascade_sum_split_over_threads():
    # torch sums one value over more than 32768 elements in min(threads, ceil(n/32768))
    # chunks of ceil(n/chunks), added in order (a row of several outputs is never split)
    rng = np.random.default_rng(7)
    x = np.abs(data(rng, (1, 70001), np.float32))
    two = torch_sum(x[:, :35001])[0] + torch_sum(x[:, 35001:])[0]
    assert torch_sum(x, threads=2)[0] == two
    three = (torch_sum(x[:, :23334])[0] + torch_sum(x[:, 23334:46668])[0]) + torch_sum(x[:, 46668:])[0]
    assert torch_sum(x, threads=3)[0] == three
    assert torch_sum(x[:, :30000], threads=2)[0] == torch_sum(x[:, :30000])[0]  # below the grain: whole
    rows = np.abs(data(rng, (2, 40000), np.float32))
    np.testing.assert_array_equal(torch_sum(rows, threads=2), torch_sum(rows))


@pytest.mark.parametrize("shape, axis", [((3, 50, 8), 1), ((1, 30, 4), 1), ((7, 20, 4, 8), 1), ((5, 40, 2), 1),
                                         ((2, 3, 17, 2), 2), ((30, 5), 0), ((4, 25, 1), 1), ((25,), 0)])
def test_sequential_sum_adds_in_order(shape, axis):
    rng = np.random.default_rng(8)
    x = data(rng, shape, np.float32)
    expected = np.zeros(shape[:axis] + shape[axis + 1:], np.float32)
    for i in range(shape[axis]):
        expected = expected + np.take(x, i, axis=axis)
    assert _sequential_sum(x, axis).tobytes() == expected.tobytes()


def test_lerp_branches_on_the_weight():
    # |w| < 0.5: start + w (end - start); else end + (w - 1)(end - start); both rounded once
    start, end = np.array([1.0, -2.0]), np.array([2.0, 6.0])
    lerp_(start, end, 0.25)
    np.testing.assert_array_equal(start, [1.25, 0.0])
    start = np.array([1.0, -2.0])
    lerp_(start, end, 0.75)
    np.testing.assert_array_equal(start, [1.75, 4.0])
    start = np.array([5.0])
    lerp_(start, np.array([7.0]), 1.0)  # the weight of the first step: exactly end
    assert start[0] == 7.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight", [0.1, 0.4999, 0.5, 0.574349177498517, 0.9, 1.0])
def test_lerp_matches_the_exact_reference(dtype, weight):
    # d = rn(end - start); |W| < 0.5: rn(W d + start), else rn((W - 1) d + end) (W = dt(weight))
    rng = np.random.default_rng(10)
    start, end = data(rng, 300, dtype), data(rng, 300, dtype)
    ours = start.copy()
    lerp_(ours, end, weight)
    w = Fraction(float(dtype(weight)))
    for i in range(300):
        a, b = Fraction(float(start[i])), Fraction(float(end[i]))
        d = rn(b - a, dtype)
        expected = rn(w * d + a, dtype) if abs(w) < Fraction(1, 2) else rn((w - 1) * d + b, dtype)
        assert Fraction(float(ours[i])) == expected, i


# ----- hand-computed steps -------------------------------------------------------------------


def test_one_dimensional_first_two_steps_hand_computed():
    x, g = np.array([3.0, -4.0]), np.array([1.0, 1.0])
    opt = Adafactor([{"params": x, "grad": g}])  # lr 0.01, beta2_decay -0.8, eps (None, 1e-3), d 1
    # step 1: beta2_t = 1**-0.8 = 1; rho = min(0.01, 1/1) = 0.01; alpha = max(1e-3, 5/sqrt(2)) * 0.01
    # variance = g**2 = [1, 1]; u = g / sqrt(variance) = [1, 1]; RMS(u) = 1 -> denom = 1
    opt.step()
    alpha1 = 5 / math.sqrt(2) * 0.01
    np.testing.assert_allclose(x, [3 - alpha1, -4 - alpha1], rtol=1e-15)
    np.testing.assert_array_equal(opt.state[0]["variance"], [1.0, 1.0])
    # step 2: g = [2, 0.5]; w = 2**-0.8; variance = 1 + w (g**2 - 1) = [1 + 3w, 1 - 0.75w]
    g[...] = [2.0, 0.5]
    opt.step()
    w = 2**-0.8
    variance = [1 + 3 * w, 1 - 0.75 * w]
    x1 = [3 - alpha1, -4 - alpha1]
    alpha2 = math.hypot(*x1) / math.sqrt(2) * min(0.01, 1 / math.sqrt(2))
    u = [2 / math.sqrt(variance[0]), 0.5 / math.sqrt(variance[1])]  # [1.2120, 0.6627]
    denom = max(1.0, math.hypot(*u) / math.sqrt(2))                # RMS 0.977 -> 1
    assert denom == 1.0
    np.testing.assert_allclose(opt.state[0]["variance"], variance, rtol=1e-15)
    np.testing.assert_allclose(x, [x1[0] - alpha2 * u[0], x1[1] - alpha2 * u[1]], rtol=1e-14)


def test_two_by_three_first_two_steps_hand_computed():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    g = np.array([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]])
    opt = Adafactor([{"params": x, "grad": g}], lr=0.1)
    # step 1 (weight 1): row norms 3, 5 -> row_var = [9/3, 25/3]; column norms**2 / 2 rows:
    # [1/2, 13/2, 20/2]; mean(row_var) = (3 + 25/3) / 2 = 17/3; V = r_i c_j / (17/3)
    opt.step()
    r, c = np.array([3.0, 25 / 3]), np.array([0.5, 6.5, 10.0])
    np.testing.assert_allclose(opt.state[0]["row_var"], r[:, None], rtol=1e-15)
    np.testing.assert_allclose(opt.state[0]["col_var"], c[None, :], rtol=1e-15)
    x0 = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    v = np.outer(r, c) / (17 / 3)
    u = np.array([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]]) / np.sqrt(v)
    alpha = math.sqrt(91) / math.sqrt(6) * 0.1           # |x| = sqrt(1+4+9+16+25+36); rho = min(0.1, 1)
    denom = max(1.0, math.sqrt((u**2).sum()) / math.sqrt(6))  # RMS(u) = 1.1476 > 1: clipped
    assert denom > 1
    x1 = x0 - alpha / denom * u
    np.testing.assert_allclose(x, x1, rtol=1e-14)
    # step 2: g = [[2, 0, 1], [1, 1, 1]]: rows 5/3, 3/3; columns [5/2, 1/2, 2/2]; w = 2**-0.8
    g[...] = [[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    opt.step()
    w = 2**-0.8
    r2 = r + w * (np.array([5 / 3, 1.0]) - r)
    c2 = c + w * (np.array([2.5, 0.5, 1.0]) - c)
    np.testing.assert_allclose(opt.state[0]["row_var"][:, 0], r2, rtol=1e-15)
    np.testing.assert_allclose(opt.state[0]["col_var"][0], c2, rtol=1e-15)
    v2 = np.outer(r2, c2) / r2.mean()
    u2 = np.array([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]) / np.sqrt(v2)
    alpha2 = math.sqrt((x1**2).sum()) / math.sqrt(6) * min(0.1, 1 / math.sqrt(2))
    denom2 = max(1.0, math.sqrt((u2**2).sum()) / math.sqrt(6))
    np.testing.assert_allclose(x, x1 - alpha2 / denom2 * u2, rtol=1e-14)


def test_zero_dimensional_weight_decay_and_maximize_hand_computed():
    x, g = np.array(2.0), np.array(-0.5)
    opt = Adafactor([{"params": x, "grad": g}], lr=0.1, weight_decay=0.5, maximize=True)
    # maximize: g = 0.5; alpha = max(1e-3, |2| / 1) * 0.1 = 0.2 (norm before the decay);
    # decay: x = 2 * (1 - 0.1 * 0.5) = 1.9; variance = 0.25; u = 0.5 / 0.5 = 1; x = 1.9 - 0.2
    opt.step()
    assert x == pytest.approx(1.7, rel=1e-15)
    assert opt.state[0]["variance"] == 0.25


def test_eps2_floors_the_parameter_scale_and_eps1_the_variance():
    x, g = np.zeros(3), np.array([1e-20, 0.0, 0.0])
    Adafactor([{"params": x, "grad": g}], eps=(1e-10, 1e-3)).step()
    # alpha = max(1e-3, 0) * 0.01 = 1e-5; variance = [1e-40, 0, 0] -> clamp to eps1**2 = 1e-20
    # -> u = [1e-20 / 1e-10, 0, 0] = [1e-10, 0, 0]; RMS tiny -> denom 1
    np.testing.assert_allclose(x, [-1e-5 * 1e-10, 0.0, 0.0], rtol=1e-14)


def test_nan_parameter_norm_is_replaced_by_eps2_as_pythons_max_does():
    # torch: max(eps2, nan) is eps2 (Python's max keeps its first argument against NaN)
    x, g = np.array([NAN, 1.0]), np.array([1.0, 1.0])
    Adafactor([{"params": x, "grad": g}], eps=(None, 0.5), lr=0.1).step()
    assert math.isnan(x[0]) and x[1] == pytest.approx(1.0 - 0.5 * 0.1, rel=1e-15)


# ----- buffers, overrides, state dicts -------------------------------------------------------


@pytest.mark.parametrize("shape, expected", [
    ((), {"variance": ()}),
    ((5,), {"variance": (5,)}),
    ((3, 4), {"row_var": (3, 1), "col_var": (1, 4)}),
    ((6, 1), {"row_var": (6, 1), "col_var": (1, 1)}),
    ((2, 3, 4), {"row_var": (2, 3, 1), "col_var": (2, 1, 4)}),
    ((2, 1, 5, 3), {"row_var": (2, 1, 5, 1), "col_var": (2, 1, 1, 3)}),
], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_buffer_shapes(shape, expected, dtype):
    x = np.ones(shape, dtype)
    opt = Adafactor([{"params": x, "grad": np.ones(shape, dtype)}])
    assert opt.state.get(0) is None  # created at the first step
    opt.step()
    assert {k: v.shape for k, v in opt.state[0].items()} == expected
    assert all(v.dtype == dtype for v in opt.state[0].values())
    assert opt.state["step"] == 1


def test_buffer_names_depend_on_the_parameter():
    opt = Adafactor([{"params": np.zeros((2, 3)), "grad": np.zeros((2, 3))}])
    assert opt._entry_state_names({}, np.zeros((2, 3))) == {"row_var", "col_var"}
    assert opt._entry_state_names({}, np.zeros(3)) == opt._entry_state_names({}, np.zeros(())) == {"variance"}
    assert opt._buffer_names({}) == {"row_var", "col_var", "variance"}  # every name an entry may hold
    like = np.broadcast_to(np.zeros((), np.float32), (4, 2, 5))  # anything with a shape and a dtype
    assert Adafactor._buffer_layout("row_var", like) == ((4, 2, 1), np.dtype(np.float32))
    assert Adafactor._buffer_layout("col_var", like) == ((4, 1, 5), np.dtype(np.float32))
    with pytest.raises(ValueError, match="not 'variance'"):
        Adafactor._buffer_layout("variance", like)


def run(entries_spec, steps=4, **kwargs):
    rng = np.random.default_rng(11)
    entries = [{"params": rng.standard_normal(s).astype(dt), "grad": np.zeros(s, dt), **o} for s, dt, o in entries_spec]
    opt = Adafactor(entries, **kwargs)
    for _ in range(steps):
        for e in entries:
            e["grad"][...] = rng.standard_normal(e["grad"].shape)
        opt.step()
    return entries, opt


def test_per_entry_overrides_equal_separate_optimizers():
    overrides = {"lr": 0.3, "eps": (1e-6, 1e-2), "d": 2.0, "weight_decay": 0.1, "maximize": True, "beta2_decay": -0.5}
    spec = [((3, 4), np.float64, {}), ((5,), np.float64, overrides)]
    together, _ = run(spec)
    rng = np.random.default_rng(11)
    alone = [{"params": rng.standard_normal(s).astype(dt), "grad": np.zeros(s, dt)} for s, dt, _ in spec]
    first, second = Adafactor([alone[0]]), Adafactor([alone[1]], **overrides)
    for _ in range(4):
        for e in alone:
            e["grad"][...] = rng.standard_normal(e["grad"].shape)
        first.step()
        second.step()
    for a, b in zip(together, alone):
        assert a["params"].tobytes() == b["params"].tobytes()


def test_eps1_none_is_each_entrys_own_dtype_epsilon():
    # torch fixes eps1 from the first parameter of a group; an entry is a group of one here,
    # so a float64 entry after a float32 one still uses float64's epsilon (2.2e-16).
    x32, x64 = np.zeros(2, np.float32), np.zeros(2)
    g32, g64 = np.full(2, 1e-9, np.float32), np.full(2, 1e-9)
    Adafactor([{"params": x32, "grad": g32}, {"params": x64, "grad": g64}]).step()
    # float64: variance 1e-18 > eps64**2 -> u = 1 -> x = -alpha = -1e-3 * 0.01
    np.testing.assert_allclose(x64, [-1e-5, -1e-5], rtol=1e-14)
    # float32: 1e-18 < eps32**2 = 1.42e-14 -> u = 1e-9 / eps32 = 8.4e-3
    np.testing.assert_allclose(x32, -1e-5 * 1e-9 / np.finfo(np.float32).eps, rtol=1e-6)


def test_state_dict_round_trip_continues_bitwise():
    spec = [((), np.float32, {}), ((7,), np.float64, {"lr": 0.2}), ((4, 3), np.float32, {}),
            ((2, 3, 5), np.float64, {"weight_decay": 0.1})]
    entries, opt = run(spec, steps=3)
    saved = opt.state_dict()
    twin_entries = [{"params": e["params"].copy(), "grad": e["grad"].copy()} for e in entries]
    twin = Adafactor(twin_entries)
    twin.load_state_dict(copy.deepcopy(saved))
    assert twin.state["step"] == 3 and twin.param_groups[1]["lr"] == 0.2
    rng = np.random.default_rng(12)
    for _ in range(3):
        for e, t in zip(entries, twin_entries):
            e["grad"][...] = rng.standard_normal(e["grad"].shape)
            t["grad"][...] = e["grad"]
        opt.step()
        twin.step()
    for e, t in zip(entries, twin_entries):
        assert e["params"].tobytes() == t["params"].tobytes()
    for i in range(len(entries)):
        assert opt.state[i].keys() == twin.state[i].keys()
        for name in opt.state[i]:
            assert opt.state[i][name].tobytes() == twin.state[i][name].tobytes()
    assert saved["defaults"]["eps"] == [None, 1e-3]  # plain lists, as for betas


@pytest.mark.parametrize("change, message", [
    (lambda s: s["state"][0].update(variance=np.zeros((3, 4))), "allowed: ['col_var', 'row_var']"),
    (lambda s: s["state"][0].pop("col_var"), "has all of ['col_var', 'row_var']"),
    (lambda s: s["state"][0].update(row_var=np.zeros((3, 4))), "must have shape (3, 1)"),
    (lambda s: s["state"][0].update(col_var=np.zeros((1, 4), np.float32)), "dtype float64"),
    (lambda s: s["state"][1].update(variance=np.zeros((4,))), "must have shape (5,)"),
    (lambda s: s["state"][1].update(row_var=np.zeros((5, 1))), "allowed: ['variance']"),
    (lambda s: s["state"][1].update(variance=[0.0] * 5), "must be a numpy.ndarray"),
    (lambda s: s["param_groups"][1].update(d=0.5), "Clipping threshold d should be >= 1 but is: 0.5"),
    (lambda s: s.update(state=[{}]), "one item per entry"),
], ids=["extra-name", "missing-name", "row_var-shape", "col_var-dtype", "variance-shape", "1-d-with-row_var",
        "not-an-array", "bad-override", "wrong-length"])
def test_load_state_dict_refuses_bad_buffers_and_changes_nothing(change, message):
    entries, opt = run([((3, 4), np.float64, {}), ((5,), np.float64, {})], steps=2)
    before = copy.deepcopy(opt.state_dict())
    bad = copy.deepcopy(before)
    change(bad)
    with pytest.raises((ValueError, TypeError), match=None) as error:
        opt.load_state_dict(bad)
    assert message in str(error.value)
    after = opt.state_dict()
    assert after["step"] == before["step"] and after["param_groups"] == before["param_groups"]
    for b, a in zip(before["state"], after["state"]):
        assert b.keys() == a.keys() and all(b[k].tobytes() == a[k].tobytes() for k in b)


def test_an_entry_whose_parameter_changed_dimensions_is_refused_at_step():
    entries, opt = run([((3, 4), np.float64, {})], steps=1)
    entries[0]["params"], entries[0]["grad"] = np.zeros(12), np.zeros(12)
    with pytest.raises(ValueError, match="not 'col_var'|not 'row_var'"):
        opt.step()


# ----- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lr": -1}, ValueError, "Learning rate should be >= 0 but is: -1"),
    ({"beta2_decay": 0.5}, ValueError, "beta2_decay should be <= 0 but is: 0.5"),
    ({"eps": (-1e-3, 1e-3)}, ValueError, "epsilon1 should be >= 0 but is: -0.001"),
    ({"eps": (None, -1.0)}, ValueError, "epsilon2 should be >= 0 but is: -1.0"),
    ({"d": 0.9}, ValueError, "Clipping threshold d should be >= 1 but is: 0.9"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay should be >= 0 but is: -0.1"),
    ({"lr": NAN}, ValueError, "nan"),
    ({"lr": INF}, ValueError, "Invalid lr value: inf"),
    ({"d": INF}, ValueError, "Invalid d value: inf"),
    ({"beta2_decay": -INF}, ValueError, "Invalid beta2_decay value: -inf"),
    ({"weight_decay": NAN}, ValueError, "nan"),
    ({"eps": (NAN, 1e-3)}, ValueError, "nan"),
    ({"eps": (None, INF)}, ValueError, "inf"),
    ({"lr": "0.1"}, TypeError, "'0.1'"),
    ({"d": True}, TypeError, "True"),
    ({"eps": 1e-3}, TypeError, "Invalid eps: 0.001"),
    ({"eps": (None, 1e-3, 1.0)}, TypeError, "Invalid eps"),
    ({"eps": (None, None)}, TypeError, "None"),
    ({"maximize": 1}, TypeError, "Invalid maximize: 1"),
], ids=lambda v: str(v) if not isinstance(v, type) else v.__name__)
def test_validation_messages(kwargs, error, message):
    with pytest.raises(error) as raised:
        Adafactor([{"params": np.zeros(2), "grad": np.zeros(2)}], **kwargs)
    assert message in str(raised.value)


def test_an_entry_override_is_validated_with_its_index():
    x = np.zeros(2)
    with pytest.raises(ValueError, match=r"params\[0\]: Clipping threshold d should be >= 1 but is: 0"):
        Adafactor([{"params": x, "grad": np.zeros(2), "d": 0}])


def test_a_refused_step_changes_nothing():
    entries, opt = run([((3, 4), np.float64, {}), ((5,), np.float64, {})], steps=1)
    before, params = copy.deepcopy(opt.state_dict()), [e["params"].copy() for e in entries]
    entries[1]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"params\[1\]: Learning rate should be >= 0"):
        opt.step()
    assert all(e["params"].tobytes() == p.tobytes() for e, p in zip(entries, params))
    assert opt.state["step"] == before["step"]


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0)])
def test_an_empty_parameter_is_refused_before_any_write(shape):
    # torch raises ZeroDivisionError (it divides by the number of elements) in the middle of
    # the step; here it is refused up front: the first entry is not updated either
    x = np.ones(3)
    opt = Adafactor([{"params": x, "grad": np.ones(3)}, {"params": np.zeros(shape), "grad": np.zeros(shape)}])
    with pytest.raises(ZeroDivisionError, match=r"params\[1\]\['params'\] is empty"):
        opt.step()
    assert x.tobytes() == np.ones(3).tobytes() and opt.state["step"] == 0 and 0 not in opt.state


def test_signature_is_torchs():
    import inspect
    parameters = inspect.signature(Adafactor).parameters
    assert list(parameters) == ["params", "lr", "beta2_decay", "eps", "d", "weight_decay", "maximize"]
    assert parameters["maximize"].kind is inspect.Parameter.KEYWORD_ONLY
    assert [parameters[k].default for k in ("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize")] == \
        [1e-2, -0.8, (None, 1e-3), 1.0, 0.0, False]
