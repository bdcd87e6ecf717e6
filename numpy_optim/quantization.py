r"""Weight decay and quantization: symmetric per-tensor int8 / int4, and what decay does to it.

The specification ("Why it matters", 1) claims that models trained with stronger weight
decay quantize better, because their weights have a smaller dynamic range. This module
measures that claim on the library's own MLP:

* :func:`quantize` and :func:`dequantize`: symmetric ("absmax") per-tensor quantization,
  :math:`s = \max|w| / (2^{b-1} - 1)`, :math:`q = \mathrm{clip}(\mathrm{round}(w / s))`;
* :func:`quantization_error`: RMS and largest error of one round trip, absolute and relative;
* :func:`weight_decay_quantization`: trains :class:`~numpy_optim.mlp.MLP` with
  :class:`~numpy_optim.AdamW` at several :math:`\lambda` (same data, seed and steps), and
  reports per :math:`\lambda` the weights' range, the quantization errors per layer and
  overall, and loss and accuracy in float and after int8 / int4 quantization.

Why the range alone does not settle the error: rounding to a grid of step :math:`s`
leaves an error of about :math:`s / \sqrt{12}` per weight (uniform on
:math:`[-s/2, s/2]`), so the error *relative to the weights' RMS* is about

.. math::

    \frac{\mathrm{RMS}(\hat w - w)}{\mathrm{RMS}(w)} \approx
    \frac{1}{(2^{b-1} - 1)\sqrt{12}} \cdot \frac{\max|w|}{\mathrm{RMS}(w)},

the crest factor :math:`\max|w| / \mathrm{RMS}(w)` over the number of levels. Shrinking
every weight by one factor lowers the absolute error and leaves the relative one as it
was; only a change of the distribution's *shape* changes it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .adam import AdamW
from .mlp import MLP, make_classification_data, train
from .optimizer import check_nonnegative

#: The bit widths :func:`quantize` accepts: codes are stored in int8.
MIN_BITS, MAX_BITS = 2, 8


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"Invalid bits: {bits!r} (expected an int, got {type(bits).__name__})")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"Invalid bits value: {bits!r} (expected {MIN_BITS} <= bits <= {MAX_BITS})")
    return int(bits)


def _real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array: real (int, float or bfloat16) and finite."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" and array.dtype.name != "bfloat16":
        raise TypeError(f"{name} must be a real array (int or float), got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def qmax(bits: int) -> int:
    """The largest code of a symmetric ``bits``-bit grid, :math:`2^{b-1} - 1` (127 for int8, 7 for int4)."""
    return 2 ** (_check_bits(bits) - 1) - 1


def quantize(w: Any, bits: int = 8) -> tuple[np.ndarray, float]:
    r"""Symmetric per-tensor quantization: integer codes in :math:`[-q_{max}, q_{max}]` and one scale.

    .. math::

        q_{max} = 2^{b-1} - 1, \quad s = \max_i |w_i| / q_{max}, \quad
        q_i = \mathrm{clip}(\mathrm{round}(w_i / s), -q_{max}, q_{max})

    The grid is symmetric and restricted (int8 uses -127..127, not -128; int4 -7..7), so
    zero is exact and the largest :math:`|w_i|` maps to :math:`\pm q_{max}`. Rounding is to
    the nearest code, ties to even (``np.rint``, as torch's ``quantize_per_tensor``). The
    clip only guards the last bit of :math:`w_i / s`. A tensor of zeros (or an empty one)
    has :math:`s = 0` and codes 0.

    Parameters
    ----------
    w : array_like
        Real values (int, float, or ml_dtypes bfloat16), finite; computed in float64.
    bits : int, default 8
        From 2 to 8 (4: int4).

    Returns
    -------
    (codes, scale) : (ndarray of int8, float)
        :math:`q` with the shape of ``w``, and :math:`s`; ``dequantize(codes, scale)``
        is :math:`\hat w = s q`.

    Examples
    --------
    >>> codes, scale = quantize([7.0, 3.5, -2.5, 0.4, -7.0], bits=4)
    >>> codes.tolist(), scale
    ([7, 4, -2, 0, -7], 1.0)
    """
    bits = _check_bits(bits)
    w = _real_array("w", w)
    top = qmax(bits)
    scale = float(np.max(np.abs(w), initial=0.0)) / top
    if scale == 0.0:  # nothing but zeros: nothing to divide
        return np.zeros(w.shape, dtype=np.int8), 0.0
    codes = np.clip(np.rint(w / scale), -top, top)
    return codes.astype(np.int8), scale


def dequantize(codes: Any, scale: float) -> np.ndarray:
    r"""The values the codes stand for, :math:`\hat w = s q`, in float64.

    Examples
    --------
    >>> dequantize(np.array([7, 4, -2], dtype=np.int8), 0.5).tolist()
    [3.5, 2.0, -1.0]
    """
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array, got dtype {codes.dtype}")
    scale = check_nonnegative("scale", scale)
    return codes.astype(np.float64) * scale


@dataclass(frozen=True)
class QuantizationError:
    r"""The error of one quantization round trip :math:`\hat w = s\,q(w)` of a tensor (or of several, pooled).

    ``rms`` is :math:`\sqrt{\mathrm{mean}(\hat w - w)^2}` and ``max`` is
    :math:`\max|\hat w - w|`; ``rms_relative`` divides ``rms`` by :math:`\mathrm{RMS}(w)`,
    ``max_relative`` divides ``max`` by :math:`\max|w|` (at most :math:`1 / (2 q_{max})`:
    half a step of the grid). Both are 0 for a tensor of zeros.
    """

    rms: float
    max: float
    rms_relative: float
    max_relative: float


def _error(w: np.ndarray, w_hat: np.ndarray) -> QuantizationError:
    diff = np.abs(w_hat - w)
    rms, top = float(np.sqrt(np.mean(diff**2))), float(np.max(diff, initial=0.0))
    w_rms, w_max = float(np.sqrt(np.mean(w**2))), float(np.max(np.abs(w), initial=0.0))
    return QuantizationError(rms, top, rms / w_rms if w_rms else 0.0, top / w_max if w_max else 0.0)


def quantization_error(w: Any, bits: int = 8) -> QuantizationError:
    r"""RMS and largest error of quantizing ``w`` to ``bits`` bits and back (:func:`quantize`).

    Examples
    --------
    >>> e = quantization_error([7.0, 3.5, -2.5, 0.4, -7.0], bits=4)  # errors 0, 0.5, 0.5, 0.4, 0
    >>> e.max, round(e.max_relative, 6), round(e.rms, 6)
    (0.5, 0.071429, 0.363318)
    """
    w = _real_array("w", w)
    if w.size == 0:
        raise ValueError("w is empty: there is no error to measure")
    return _error(w, dequantize(*quantize(w, bits)))


# --------------------------------------------------------------------------------------
# Weight decay against quantization, on the MLP
# --------------------------------------------------------------------------------------

#: The spiral problem and network of tests/unit/test_mlp.py (numpy_optim.demo's MLP_*
#: settings): 300 training points, another 300 from another seed held out.
DATA_ARGS: dict[str, Any] = {"n_samples": 300, "turns": 0.75, "noise": 0.2}
TRAIN_DATA_SEED, TEST_DATA_SEED = 0, 1
LAYER_SIZES = (2, 32, 32, 3)
#: The weight decays swept: none, the usual 0.01 to 0.1, and 1 (too strong: accuracy falls).
WEIGHT_DECAYS = (0.0, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


@dataclass(frozen=True)
class TensorReport:
    """One weight tensor (or all of them pooled, ``name == "all"``): its range and its quantization errors.

    ``errors`` maps a bit width to the :class:`QuantizationError` of that width; for
    ``"all"`` each tensor is quantized with its own scale and the errors are pooled.
    """

    name: str
    size: int
    max_abs: float
    rms: float
    errors: dict[int, QuantizationError]

    @property
    def crest(self) -> float:
        r"""The crest factor :math:`\max|w| / \mathrm{RMS}(w)`: the range in units of the typical weight."""
        return self.max_abs / self.rms if self.rms else 0.0


@dataclass(frozen=True)
class Evaluation:
    """Cross-entropy and accuracy of one network, on the training set and on the held-out set."""

    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float


@dataclass(frozen=True)
class DecayReport:
    """One weight decay's trained network: per-layer and overall range and errors, and how it scores.

    ``evaluations`` maps ``"float"`` (as trained), and ``"int8"``, ``"int4"`` (every
    weight matrix quantized per tensor, biases kept in float64) to an :class:`Evaluation`.
    """

    weight_decay: float
    layers: list[TensorReport]
    overall: TensorReport
    evaluations: dict[str, Evaluation]


def _tensor_report(name: str, tensors: Sequence[np.ndarray], bits: Sequence[int]) -> TensorReport:
    flat = np.concatenate([t.ravel() for t in tensors])
    errors = {}
    for b in bits:
        w_hat = np.concatenate([dequantize(*quantize(t, b)).ravel() for t in tensors])
        errors[b] = _error(flat, w_hat)
    return TensorReport(name, int(flat.size), float(np.max(np.abs(flat))), float(np.sqrt(np.mean(flat**2))), errors)


def _evaluate(model: MLP, data: tuple[np.ndarray, np.ndarray], held_out: tuple[np.ndarray, np.ndarray]) -> Evaluation:
    return Evaluation(model.loss(*data), model.accuracy(*data), model.loss(*held_out), model.accuracy(*held_out))


def weight_decay_quantization(
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    bits: Sequence[int] = (8, 4),
    *,
    lr: float = 0.01,
    epochs: int = 100,
    batch_size: int = 32,
    seed: int = 0,
) -> list[DecayReport]:
    r"""Train the spiral MLP with AdamW at each weight decay, quantize its weights, and measure.

    For each :math:`\lambda` the same network (``LAYER_SIZES``, tanh, initialised from
    ``seed``) trains on the same 300 spiral points (``DATA_ARGS``, seed
    ``TRAIN_DATA_SEED``) with the same batches (shuffled from ``seed``):
    ``AdamW(lr=lr, weight_decay=λ)`` on every parameter, biases included (torch's
    default, one group). The settings are those of tests/unit/test_mlp.py; each λ trains in
    about 0.15 s (1,000 steps). Then each weight matrix is quantized per tensor
    (:func:`quantize`) at each width of ``bits``; biases stay in float (as int8
    weight-only schemes keep them).

    Parameters
    ----------
    weight_decays : sequence of float, default ``WEIGHT_DECAYS``
        The :math:`\lambda` to train with, each >= 0.
    bits : sequence of int, default (8, 4)
    lr : float, default 0.01
    epochs, batch_size : int, default 100, 32
    seed : int, default 0

    Returns
    -------
    list of DecayReport
        One per weight decay, in the order given.

    Examples
    --------
    >>> none, strong = weight_decay_quantization([0.0, 1.0], bits=[4], epochs=5)
    >>> strong.overall.max_abs < none.overall.max_abs
    True
    >>> sorted(none.evaluations), [layer.name for layer in none.layers]
    (['float', 'int4'], ['W1', 'W2', 'W3'])
    """
    decays = [check_nonnegative("weight_decay", value) for value in weight_decays]
    if not decays:
        raise ValueError("weight_decays is empty")
    widths = [_check_bits(b) for b in bits]
    if len(set(widths)) != len(widths):
        raise ValueError(f"Invalid bits: {list(bits)!r} (a width given twice)")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Invalid {name}: {value!r} (expected an int >= 1)")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"Invalid learning rate: {lr!r} (expected a finite float > 0)")
    data = make_classification_data(seed=TRAIN_DATA_SEED, **DATA_ARGS)
    held_out = make_classification_data(seed=TEST_DATA_SEED, **DATA_ARGS)
    reports = []
    for weight_decay in decays:
        model = MLP(LAYER_SIZES, seed=seed)
        train(model, AdamW(model.parameters(), lr=lr, weight_decay=weight_decay), *data, epochs, batch_size, seed)
        names = [f"W{layer}" for layer in range(1, len(model.weights) + 1)]
        layers = [_tensor_report(name, [W], widths) for name, W in zip(names, model.weights)]
        evaluations = {"float": _evaluate(model, data, held_out)}
        for b in widths:
            quantized = copy.deepcopy(model)
            for W in quantized.weights:
                W[...] = dequantize(*quantize(W, b))
            evaluations[f"int{b}"] = _evaluate(quantized, data, held_out)
        reports.append(DecayReport(weight_decay, layers, _tensor_report("all", model.weights, widths), evaluations))
    return reports
