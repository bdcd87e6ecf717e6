"""Symmetric per-tensor quantization, hand-computed, and what AdamW's weight decay does to it (measured).

The specification claims that stronger weight decay gives weights a smaller dynamic range and
so a lower quantization error. The tests at the end pin what the measured runs show instead of
assuming the claim: for the default seed the range (max |w|) and the absolute error do fall
monotonically in lambda, but the error relative to the weights' own size rises (decay
lengthens the distribution's tail: the crest factor max|w| / RMS(w) grows), and int4 costs no
less accuracy at strong decay. Over the five seeds of the figure, the range falls at every step
for two seeds only.
"""

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numpy_optim import demo, quantization
from numpy_optim.quantization import (
    WEIGHT_DECAYS,
    dequantize,
    qmax,
    quantization_error,
    quantize,
    weight_decay_quantization,
)

# ----- quantize / dequantize, by hand -------------------------------------------------------


@pytest.mark.parametrize(
    "w, bits, codes, scale",
    [
        # max|w| = 7 = qmax(4): scale 1, so the codes are round(w), ties to even (3.5 -> 4, -2.5 -> -2)
        ([7.0, 3.5, -2.5, 0.4, -7.0], 4, [7, 4, -2, 0, -7], 1.0),
        # 31.75 / 127 = 0.25 exactly: w / s = 127, -40, 0.4, 0.5, 1.5 -> 127, -40, 0, 0 (tie), 2 (tie)
        ([31.75, -10.0, 0.1, 0.125, 0.375], 8, [127, -40, 0, 0, 2], 0.25),
        # the largest magnitude is negative: it maps to -127 (the grid is symmetric, -128 is unused)
        ([-63.5, 20.0], 8, [-127, 40], 0.5),
        # one element: it is the whole range
        ([-3.0], 4, [-7], 3.0 / 7.0),
        # 2 bits: the codes -1, 0, 1; 0.5 / 1 = 0.5 -> 0 (tie to even), -0.75 -> -1
        ([[1.0, 0.5], [-0.75, 0.2]], 2, [[1, 0], [-1, 0]], 1.0),
    ],
    ids=["int4-ties", "int8-ties", "int8-negative-max", "int4-single", "int2-2d"],
)
def test_quantize_hand_computed_codes_and_scale(w, bits, codes, scale):
    got_codes, got_scale = quantize(w, bits)
    assert got_codes.dtype == np.int8 and got_codes.shape == np.shape(w)
    assert got_codes.tolist() == codes
    assert got_scale == scale
    assert dequantize(got_codes, got_scale).tolist() == (np.asarray(codes, dtype=np.float64) * scale).tolist()


def test_qmax_is_the_symmetric_grid_edge():
    assert [qmax(b) for b in (2, 4, 8)] == [1, 7, 127]


def test_int4_codes_span_minus_7_to_7_and_never_minus_8():
    w = np.linspace(-1.0, 1.0, 1001)
    codes, scale = quantize(w, bits=4)
    assert scale == 1.0 / 7.0
    assert sorted(set(codes.tolist())) == list(range(-7, 8))
    codes8, _ = quantize(w, bits=8)
    assert codes8.min() == -127 and codes8.max() == 127


@pytest.mark.parametrize("shape", [(5,), (2, 3), (0,)], ids=["zeros-5", "zeros-2x3", "empty"])
def test_a_zero_tensor_has_scale_0_and_codes_0(shape):
    codes, scale = quantize(np.zeros(shape), bits=4)
    assert scale == 0.0 and codes.dtype == np.int8 and codes.shape == shape and not codes.any()
    assert dequantize(codes, scale).tolist() == np.zeros(shape).tolist()
    if shape != (0,):
        error = quantization_error(np.zeros(shape), bits=8)
        assert (error.rms, error.max, error.rms_relative, error.max_relative) == (0.0, 0.0, 0.0, 0.0)


def test_quantization_error_hand_computed():
    # int4, scale 1: the round trip gives 7, 4, -2, 0, -7; errors 0, 0.5, 0.5, 0.4, 0
    w = [7.0, 3.5, -2.5, 0.4, -7.0]
    error = quantization_error(w, bits=4)
    rms = math.sqrt((0.25 + 0.25 + 0.16) / 5)
    assert error.max == 0.5 and error.max_relative == 0.5 / 7
    assert error.rms == pytest.approx(rms, rel=1e-15)
    assert error.rms_relative == pytest.approx(rms / math.sqrt((49 + 12.25 + 6.25 + 0.16 + 49) / 5), rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, ml_dtypes.bfloat16, np.int32], ids=str)
def test_quantize_accepts_low_precision_and_integer_input(dtype):
    codes, scale = quantize(np.array([7, 3.5, -2.5, -7]).astype(dtype), bits=4)
    expected = [7, 3, -2, -7] if dtype == np.int32 else [7, 4, -2, -7]  # int32 truncates: 3.5 -> 3, -2.5 -> -2
    assert (codes.tolist(), scale) == (expected, 1.0)


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


@given(w=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=finite),
       bits=st.sampled_from([2, 4, 8]))
def test_quantize_is_round_half_even_of_w_over_scale_within_the_grid(w, bits):
    codes, scale = quantize(w, bits)
    top = 2 ** (bits - 1) - 1
    amax = float(np.max(np.abs(w)))
    assert scale == amax / top
    if amax == 0:
        assert not codes.any()
        return
    # Python's round() is round-half-even: an independent transcription, element by element
    expected = [max(-top, min(top, round(float(x) / scale))) for x in w.ravel()]
    assert codes.ravel().tolist() == expected
    assert np.abs(codes).max() == top  # the largest magnitude lands on the edge of the grid
    # rounding to the nearest grid point: at most half a step (plus the last bit of the product)
    assert np.all(np.abs(dequantize(codes, scale) - w) <= scale / 2 * (1 + 1e-12))


# ----- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bits, error, match",
    [(1, ValueError, "Invalid bits value: 1"), (9, ValueError, "Invalid bits value: 9"),
     (4.0, TypeError, "Invalid bits: 4.0"), (True, TypeError, "Invalid bits: True"),
     ("8", TypeError, "Invalid bits: '8'")],
    ids=["1", "9", "float", "bool", "str"],
)
def test_quantize_refuses_bad_bits(bits, error, match):
    with pytest.raises(error, match=match):
        quantize([1.0, 2.0], bits)


@pytest.mark.parametrize(
    "w, error, match",
    [([1.0, np.nan], ValueError, "w contains NaN or infinity"),
     ([np.inf], ValueError, "w contains NaN or infinity"),
     ([1 + 2j], TypeError, "w must be a real array .* complex128"),
     ([True, False], TypeError, "w must be a real array .* bool"),
     (["a"], TypeError, "w must be a real array")],
    ids=["nan", "inf", "complex", "bool", "str"],
)
def test_quantize_refuses_bad_values(w, error, match):
    with pytest.raises(error, match=match):
        quantize(w, 8)
    with pytest.raises(error, match=match):
        quantization_error(w, 8)


def test_dequantize_and_quantization_error_refuse_bad_input():
    with pytest.raises(TypeError, match="codes must be an integer array, got dtype float64"):
        dequantize(np.array([1.0]), 0.5)
    with pytest.raises(ValueError, match=r"Invalid scale value: -0.5 \(must be >= 0\)"):
        dequantize(np.array([1], dtype=np.int8), -0.5)
    with pytest.raises(TypeError, match="Invalid scale"):
        dequantize(np.array([1], dtype=np.int8), "0.5")
    with pytest.raises(ValueError, match="w is empty"):
        quantization_error(np.zeros(0), 8)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"weight_decays": [0.0, -0.1]}, ValueError, r"Invalid weight_decay value: -0.1"),
     ({"weight_decays": [math.nan]}, ValueError, "Invalid weight_decay value: nan"),
     ({"weight_decays": []}, ValueError, "weight_decays is empty"),
     ({"bits": [8, 1]}, ValueError, "Invalid bits value: 1"),
     ({"bits": [4, 4]}, ValueError, r"Invalid bits: \[4, 4\] \(a width given twice\)"),
     ({"epochs": 0}, ValueError, "Invalid epochs: 0"),
     ({"batch_size": 2.5}, ValueError, "Invalid batch_size: 2.5"),
     ({"lr": 0.0}, ValueError, "Invalid learning rate: 0.0"),
     ({"lr": math.inf}, ValueError, "Invalid learning rate: inf")],
    ids=["negative-decay", "nan-decay", "no-decays", "bits-1", "bits-twice", "epochs-0", "batch-float", "lr-0",
         "lr-inf"],
)
def test_weight_decay_quantization_refuses_bad_arguments_before_training(kwargs, error, match, monkeypatch):
    def no_training(*args, **kw):
        raise AssertionError("trained before the arguments were checked")

    monkeypatch.setattr(quantization, "train", no_training)
    with pytest.raises(error, match=match):
        weight_decay_quantization(**kwargs)


# ----- weight decay against quantization: measured ---------------------------------------------


@pytest.fixture(scope="module")
def runs():
    """The figure's runs: {seed: [DecayReport per lambda in WEIGHT_DECAYS]} for seeds 0..4 (~6 s)."""
    return demo.weight_decay_quantization_runs()


@pytest.fixture(scope="module")
def reports(runs):
    """The default seed's (0) reports, as ``weight_decay_quantization()`` gives them."""
    return runs[0]


def series(reports, get):
    return np.array([get(r) for r in reports])


def strictly_decreasing(values):
    return bool(np.all(np.diff(values) < 0))


def test_runs_cover_the_decays_layers_and_widths(runs, reports):
    assert sorted(runs) == list(demo.QUANT_SEEDS) == [0, 1, 2, 3, 4]
    assert [r.weight_decay for r in reports] == list(WEIGHT_DECAYS) == [0.0, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
    for r in reports:
        assert [(t.name, t.size) for t in r.layers] == [("W1", 64), ("W2", 1024), ("W3", 96)]
        assert (r.overall.name, r.overall.size) == ("all", 64 + 1024 + 96)
        assert sorted(r.evaluations) == ["float", "int4", "int8"]
        assert r.overall.max_abs == max(t.max_abs for t in r.layers)
        # the largest error is at most half a step of the grid: max|w| / (2 qmax)
        for t in [*r.layers, r.overall]:
            assert t.errors[8].max_relative <= 1 / 254 * (1 + 1e-12)
            assert t.errors[4].max_relative <= 1 / 14 * (1 + 1e-12)


def test_default_seed_is_the_first_of_the_figure(reports):
    again = weight_decay_quantization(WEIGHT_DECAYS[:2], bits=(8, 4))  # seed 0 by default
    assert again == reports[:2]


def test_range_and_absolute_error_fall_monotonically_in_lambda_for_the_default_seed(reports):
    # Measured (seed 0), max|w| over all weights: 2.317, 2.309, 2.282, 2.180, 2.091, 1.977, 1.245.
    max_abs = series(reports, lambda r: r.overall.max_abs)
    assert strictly_decreasing(max_abs), max_abs
    assert max_abs[-1] < 0.6 * max_abs[0]
    # The output layer's too; the first layer's not: its max |w| rises again from lambda 0.03 to 0.1.
    assert strictly_decreasing(series(reports, lambda r: r.layers[2].max_abs))
    first = series(reports, lambda r: r.layers[0].max_abs)
    assert not strictly_decreasing(first) and first[4] > first[3]
    # The absolute RMS error follows the range (its step is max|w| / qmax): int8 5.19e-3 -> 2.67e-3.
    for bits in (8, 4):
        assert strictly_decreasing(series(reports, lambda r, b=bits: r.overall.errors[b].rms)), bits


def test_relative_error_rises_with_lambda_because_the_tail_lengthens(reports):
    # The error relative to RMS(w), the crest factor max|w| / RMS(w): both higher at every
    # lambda >= 0.01 than without decay (seed 0, int4: 0.157 -> 0.162 ... 0.215; crest 3.77 -> 5.73).
    crest = series(reports, lambda r: r.overall.crest)
    assert np.all(crest[2:] > crest[0]), crest
    for bits in (8, 4):
        relative = series(reports, lambda r, b=bits: r.overall.errors[b].rms_relative)
        assert np.all(relative[2:] > relative[0]), (bits, relative)
        assert relative[-1] > 1.3 * relative[0]
    # ... but not monotonically: int4 dips from lambda 0.01 to 0.03, int8 from 0 to 1e-3.
    int4 = series(reports, lambda r: r.overall.errors[4].rms_relative)
    int8 = series(reports, lambda r: r.overall.errors[8].rms_relative)
    assert int4[3] < int4[2] and int8[1] < int8[0]


def test_relative_error_per_layer_is_the_uniform_rounding_model(reports):
    # Rounding to a grid of step s leaves ~U(-s/2, s/2): RMS s / sqrt(12), with s = max|w| / qmax, so
    # RMS error / RMS(w) ~ crest / (qmax sqrt(12)). Measured within 15% per layer (W1 has 64 weights).
    for r in reports:
        for t in r.layers:
            for bits in (8, 4):
                model = t.crest / ((2 ** (bits - 1) - 1) * math.sqrt(12))
                assert 0.85 <= t.errors[bits].rms_relative / model <= 1.15, (r.weight_decay, t.name, bits)


def test_int8_keeps_the_accuracy_and_int4_costs_no_less_at_strong_decay(reports):
    for r in reports:
        e = r.evaluations
        assert abs(e["int8"].test_accuracy - e["float"].test_accuracy) <= 0.01, r.weight_decay
        assert abs(e["int8"].test_loss - e["float"].test_loss) <= 0.002, r.weight_decay
    drop = series(reports, lambda r: r.evaluations["float"].test_accuracy - r.evaluations["int4"].test_accuracy)
    # held-out accuracy lost to int4 (seed 0): 0.003, 0.003, 0.003, 0.013, 0.020, 0.023 at lambda 0 ... 0.3
    assert drop[5] > drop[0] and drop[4] > drop[0]
    # lambda = 1 is too strong: the float network itself falls to ~61% (from 98.7%) on 3 classes
    assert reports[-1].evaluations["float"].test_accuracy < 0.7 < 0.95 < reports[0].evaluations["float"].test_accuracy


def test_over_five_seeds_strong_decay_shrinks_the_range_but_not_the_relative_error(runs):
    monotone = {seed: strictly_decreasing(series(reps, lambda r: r.overall.max_abs)) for seed, reps in runs.items()}
    # Measured: the range falls at every step of lambda for seeds 0 and 4 only; in seeds 1-3 it
    # rises again at lambda 0.03-0.3 (the first layer's weights grow as the decay prunes the others).
    assert {seed for seed, down in monotone.items() if down} == {0, 4}
    for seed, reps in runs.items():
        max_abs = series(reps, lambda r: r.overall.max_abs)
        assert max_abs[-1] < 0.6 * max_abs[0], seed  # lambda 1: 0.31-0.54 of lambda 0's range
        assert strictly_decreasing(series(reps, lambda r: r.layers[2].max_abs)), seed  # output layer: always
        # lambda 0.3: the crest factor, the int4 relative error and its accuracy cost all above lambda 0's
        for get in (lambda r: r.overall.crest, lambda r: r.overall.errors[4].rms_relative,
                    lambda r: r.evaluations["float"].test_accuracy - r.evaluations["int4"].test_accuracy):
            values = series(reps, get)
            assert values[5] > values[0], seed


def test_figure_draws_the_seed_medians(runs):
    import matplotlib.pyplot as plt

    fig = demo.plot_weight_decay_quantization(runs)
    try:
        range_ax, crest_ax, accuracy_ax, absolute_ax, relative_ax, lost_ax = fig.axes

        def median(get):
            return np.median([series(reps, get) for reps in runs.values()], axis=0)

        def line(ax, label):
            return next(line for line in ax.get_lines() if line.get_label() == label).get_ydata()

        np.testing.assert_array_equal(line(range_ax, "max |w|"), median(lambda r: r.overall.max_abs))
        np.testing.assert_array_equal(line(relative_ax, "int4"), median(lambda r: r.overall.errors[4].rms_relative))
        lost = median(lambda r: 100 * (r.evaluations["float"].test_accuracy - r.evaluations["int4"].test_accuracy))
        np.testing.assert_array_equal(line(lost_ax, "int4"), lost)
        # the medians over seeds 0-4: int4 loses most accuracy at lambda 0.3 (4 points; 0.3-1 point elsewhere)
        assert int(np.argmax(lost)) == 5 and 3.5 < lost[5] < 4.5 and np.all(np.delete(lost, 5) <= 1.01)
        assert [t.get_text() for t in range_ax.get_xticklabels()] == ["0", "0.001", "0.01", "0.03", "0.1", "0.3", "1"]
        assert absolute_ax.get_yscale() == relative_ax.get_yscale() == "log"
        assert [line.get_label() for line in accuracy_ax.get_lines()] == ["float", "int8", "int4"]
        assert "5 seeds" in fig.get_suptitle()
    finally:
        plt.close(fig)
