r"""The tolerance model: when does a numpy_optim trajectory "agree" with torch's?

Every recorded array (a parameter or a state buffer of one entry) is compared after
every step ``t = 1, 2, ...`` of a free-running trajectory (no re-synchronisation: errors
accumulate as they would in training). Errors are maximum absolute differences over the
array's elements; "running" means the maximum over steps ``1..t``; ``scale_t`` is the
running maximum of ``|value|`` over the array, starting from the parameter's initial
value, so an error is judged against the size the values have had (a parameter that a
step brings near zero by cancellation keeps the absolute rounding error of its inputs).

**float64: a few ulp per step.** Against torch's float64 run (default path, and fused)::

    |ours_t - torch_t| <= max(ULPS64 * eps64 * t * scale_t,  SENSITIVITY * D_t)

``D_t`` is torch's own spread: the running divergence between torch's default run and
(a) its fused run, which rounds differently, and (b) a probe run whose starting values
and gradients at every step are moved by one ulp (``trajectories.perturbed``, ``nudge``),
as a rounding difference at any step would move them. It matters only where the dynamics
amplify rounding differences; elsewhere it is about one ulp and the ulp term decides.

**float32: no less accurate than torch's own float32 run.** Let ``ref`` be torch's
float64 run on the same (float32-representable) inputs. Our float32 error against it may
exceed torch's float32 error against it by at most a small factor::

    E_ours(t) <= FACTOR32 * E_torch(t) + FLOOR32 * eps32 * t * scale_t

with ``E`` the running error against ``ref``. ``E_torch`` is the largest error among
torch's float32 runs of the case that differ only in rounding: the default path, the
fused path and the one-ulp probe. One run's error is a single sample: where a case
amplifies rounding, equally valid float32 runs land at errors a few times apart (on
such cases we measured our error over torch's default-path error: median 1.00, 90th
percentile 1.16, 99th 1.57, a few above 2), so a single sample is not a fair yardstick.
The floor covers steps on which torch's float32 run happens to be exact (its error is 0)
while ours is one rounding away. The rule is applied once per torch side (default,
fused), each time with the other runs as further samples.

**Where torch disagrees with itself, nothing is judged.** Some valid configurations are
chaotic: with ``beta2 = 0`` the Adam step is ``lr * g / |g|``, and with an L2 term or a
closed loop a one-ulp difference doubles every few steps. Once torch's spread ``D_t``
exceeds ``CHAOS_ULPS`` ulp per step (relative to the scale), the remaining steps of that
array are counted as *not judged* (the report shows how many) rather than compared:
torch's own answer there depends on the last bit of its inputs, so there is no single
answer left to match. Before that point every step is judged with the bounds above.

Non-finite values must agree exactly: the same positions, the same infinities, on every
judged step. Where torch's own runs (default, fused, probes) differ in which values are
finite, torch disagrees with itself as much as it can: that counts as an infinite spread,
so from that step on the array is not judged (centered RMSprop with ``alpha = 0`` takes a
square root of ``v - m**2``, pure rounding error, that is NaN or not by its last bit).

torch's spread is sampled by its fused run and one probe where torch has a fused CPU
path, and by two probes (the second nudging every value the other way round) where it
has none, so that every pair has two samples of it.

No bound here is ever widened to make a failing case pass: a failure is a difference to
explain and fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ULPS64 = 4.0          # ulp of float64 per step, relative to the values' running scale
SENSITIVITY = 4.0     # multiple of torch's default-vs-fused divergence allowed
FACTOR32 = 2.0        # our float32 error may be at most twice torch's own float32 error...
FLOOR32 = 2.0         # ...plus 2 ulp of float32 per step, relative to the running scale
CHAOS_ULPS = 64.0     # torch's two paths further apart than this per step: stop judging

EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}


@dataclass
class Violation:
    """The first step at which a recorded array leaves its bound."""

    name: str           # e.g. "params[1]"
    step: int           # 1-based
    index: tuple[int, ...]
    ours: float
    theirs: float
    reference: float | None
    error: float
    bound: float


@dataclass
class Comparison:
    """Result of comparing one recorded array over a whole trajectory."""

    name: str
    steps: int                  # steps judged
    unjudged: int               # steps not judged (torch's own paths disagree)
    worst_error: float          # max over judged steps of the error (any step)
    worst_ratio: float          # max over judged steps of error / bound (<= 1 passes)
    violation: Violation | None
    ratio_error: float = 0.0    # the error at the step of the worst ratio
    ratio_bound: float = 0.0    # and its bound


def _running_max(values: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(values) if values.size else values


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, 0.0).astype(np.float64)


def divergence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-step max |a - b| over elements finite in both (stacked over steps)."""
    both = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(np.where(both, a, 0.0).astype(np.float64) - np.where(both, b, 0.0)).reshape(len(a), -1)
    return diff.max(axis=1) if diff.shape[1] else np.zeros(len(a))


def spread(default: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """torch's own per-step spread: the largest :func:`divergence` of its default run from
    its other runs (fused, probes), and infinite from the first step at which they differ
    in which values are finite (one run overflows or turns NaN where another does not:
    torch then disagrees with itself about that step, as much as it can)."""
    result = np.zeros(len(default))
    for other in others:
        result = np.maximum(result, divergence(default, other))
        finite = np.isfinite(default) != np.isfinite(other)
        finite |= ~np.isfinite(default) & ~np.isnan(default) & (default != other)  # different infinities
        differs = finite.reshape(len(default), -1).any(axis=1)
        result[differs] = np.inf
    return result


def _scale(values: np.ndarray, initial: float) -> np.ndarray:
    per_step = np.abs(_finite(values)).reshape(len(values), -1).max(axis=1, initial=0.0)
    return _running_max(np.maximum(per_step, initial))


def _nonfinite_violation(name: str, ours: np.ndarray, theirs: np.ndarray) -> Violation | None:
    bad = ~np.isfinite(ours) | ~np.isfinite(theirs)
    mismatch = bad & ~((ours == theirs) | (np.isnan(ours) & np.isnan(theirs)))
    if not mismatch.any():
        return None
    where = tuple(int(i) for i in np.argwhere(mismatch)[0])
    return Violation(name, where[0] + 1, where[1:], float(ours[where]), float(theirs[where]), None,
                     float("inf"), 0.0)


def _judge(name: str, ours: np.ndarray, theirs: np.ndarray, reference: np.ndarray | None,
           error: np.ndarray, bound: np.ndarray, judged: np.ndarray) -> Comparison:
    violation = _nonfinite_violation(name, ours[judged], theirs[judged])
    if violation is not None:  # its step counted among the judged steps: the real step number
        violation.step = int(np.nonzero(judged)[0][violation.step - 1]) + 1
    over = np.nonzero(judged & (error > bound))[0]
    if violation is None and len(over):
        t = int(over[0])
        target = reference if reference is not None else theirs
        diff = np.abs(_finite(ours[t]) - _finite(target[t]))
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.ndim else ()
        violation = Violation(
            name, t + 1, index, float(ours[t][index]), float(theirs[t][index]),
            None if reference is None else float(reference[t][index]), float(error[t]), float(bound[t]),
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bound > 0, error / bound, np.where(error > 0, np.inf, 0.0))
    ratio = np.where(judged, ratio, 0.0)
    at = int(np.argmax(ratio)) if ratio.size else 0
    return Comparison(name, int(judged.sum()), int((~judged).sum()),
                      float(np.where(judged, error, 0.0).max(initial=0.0)), float(ratio.max(initial=0.0)), violation,
                      float(error[at]) if ratio.size and judged[at] else 0.0,
                      float(bound[at]) if ratio.size and judged[at] else 0.0)


def _judged(spread: np.ndarray | None, dtype: str, steps: np.ndarray, scale: np.ndarray) -> np.ndarray:
    if spread is None:
        return np.ones(len(steps), dtype=bool)
    return _running_max(spread) <= CHAOS_ULPS * EPS[dtype] * steps * scale


def compare_float64(name: str, ours: np.ndarray, theirs: np.ndarray, spread: np.ndarray | None = None,
                    initial: float = 0.0) -> Comparison:
    """float64 rule: a few ulp per step, or a multiple of torch's own spread.

    ``spread`` is torch's per-step spread (:func:`divergence` of its default run from its
    fused and probe runs; None: judge every step with the ulp term alone);
    ``initial`` the array's initial max |value| (the parameter's starting values; 0 for buffers).
    """
    steps = np.arange(1, len(ours) + 1)
    scale = _scale(theirs, initial)
    error = divergence(ours, theirs)
    bound = ULPS64 * EPS["float64"] * steps * scale
    if spread is not None:
        bound = np.maximum(bound, SENSITIVITY * _running_max(spread))
    return _judge(name, ours, theirs, None, error, bound, _judged(spread, "float64", steps, scale))


def compare_float32(name: str, ours: np.ndarray, theirs: np.ndarray, reference: np.ndarray,
                    spread: np.ndarray | None = None, initial: float = 0.0,
                    others: tuple[np.ndarray, ...] = ()) -> Comparison:
    """float32 rule: our running error against the float64 reference is at most FACTOR32
    times torch's float32 running error, plus a floor.

    Torch's float32 error is the largest among ``theirs`` and ``others``: torch's float32
    runs that differ from it only in rounding (its other CPU path, the one-ulp probe).
    ``spread`` decides which steps are judged, as in :func:`compare_float64`.
    """
    steps = np.arange(1, len(ours) + 1)
    scale = _scale(reference, initial)
    ours_error = _running_max(divergence(ours, reference))
    torch_error = _running_max(np.max([divergence(run, reference) for run in (theirs, *others)], axis=0))
    bound = FACTOR32 * torch_error + FLOOR32 * EPS["float32"] * steps * scale
    return _judge(name, ours, theirs, reference, ours_error, bound, _judged(spread, "float32", steps, scale))


#: Learning-rate schedules: torch steps its schedulers recursively (lr_t from lr_{t-1}),
#: numpy_optim uses the closed form, so they part by rounding that grows with t.
SCHEDULE_ULPS = 4.0


def schedule_bound(step: int, peak_lr: float) -> float:
    """``SCHEDULE_ULPS * eps64 * (step + 1) * peak_lr``: the closed-vs-recursive allowance."""
    return SCHEDULE_ULPS * EPS["float64"] * (step + 1) * peak_lr


# ----- zero tolerance: torch's fused kernels --------------------------------------------
#
# numpy_optim's ``fused=True`` reproduces torch's fused CPU arithmetic exactly, so its pairs
# (parity/registry.py FUSED) have no bound at all: every value of every step, parameters and
# state buffers, must have torch's bits. NaNs included: two NaNs agree only with the same
# bit pattern (payload and sign). The report shows how far apart differing values are, in
# bits (popcount of the XOR of the two bit patterns) and in ulps (1: neighbours; -0 and +0
# are 0 ulps apart, but their bits differ).


@dataclass
class BitDifference:
    """The first value (step, then flat index) whose bits differ from torch's."""

    name: str           # e.g. "exp_avg[1]"
    step: int           # 1-based
    index: tuple[int, ...]
    ours: float
    theirs: float
    ours_bits: str      # hexadecimal bit patterns
    theirs_bits: str
    bits: int           # popcount of their XOR
    ulps: float


@dataclass
class BitComparison:
    """One recorded array over a whole trajectory, compared bit for bit."""

    name: str
    compared: int       # values compared: elements x steps (a 0-d or empty array counts 1 a step)
    differing: int      # values whose bits differ
    bits: int           # the most bits in which one value differs (0: bit for bit)
    ulps: float         # the largest distance in ulps (inf: a NaN against a number)
    first: BitDifference | None


def _ordered(bits: np.ndarray, width: int) -> np.ndarray:
    """Bit patterns (unsigned ints of ``width`` bits) as signed ints ordered as the floats
    they encode: -0 and +0 both 0, adjacent floats adjacent ints."""
    magnitude = (bits & ((1 << (width - 1)) - 1)).astype(np.int64)
    return np.where(bits >> (width - 1) == 1, -magnitude, magnitude)


def compare_bits(name: str, ours: np.ndarray, theirs: np.ndarray) -> BitComparison:
    """Compare two trajectories of one array (stacked over steps) to the bit.

    Different dtypes or shapes differ in every value, in every bit (``bits`` the width of
    torch's dtype, ``ulps`` inf). Two NaNs are equal whatever their sign and payload bits:
    torch's own vector body and scalar tail store different NaN patterns (a bfloat16 NaN is
    0xffff in one, 0x7fc0 in the other), as NumPy's vector and scalar loops do
    (numpy_optim/_backend.py); that a value is NaN is compared."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    compared = len(theirs) * max(int(np.prod(theirs.shape[1:])), 1)
    width = 8 * theirs.dtype.itemsize
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        first = BitDifference(name, 1, (), math.nan, math.nan, f"ours {ours.dtype}{list(ours.shape)}",
                              f"torch {theirs.dtype}{list(theirs.shape)}", width, math.inf)
        return BitComparison(name, compared, compared, width, math.inf, first)
    unsigned = np.dtype(f"uint{width}")
    a, b = ours.view(unsigned), theirs.view(unsigned)
    differ = a != b
    if differ.any():
        differ &= ~(np.isnan(ours.astype(np.float64)) & np.isnan(theirs.astype(np.float64)))
    count = int(differ.sum())
    if count == 0:
        return BitComparison(name, compared, 0, 0, 0.0, None)
    xa, xb = a[differ], b[differ]
    bits = np.unpackbits((xa ^ xb).view(np.uint8)).reshape(count, -1).sum(axis=1)   # popcount
    oa, ob = _ordered(xa, width), _ordered(xb, width)
    same_sign = (oa >= 0) == (ob >= 0)
    ulps = np.where(same_sign, np.abs(oa - ob).astype(np.float64),   # no overflow: same sign
                    np.abs(oa).astype(np.float64) + np.abs(ob).astype(np.float64))
    nan = np.isnan(ours[differ].astype(np.float64)) | np.isnan(theirs[differ].astype(np.float64))
    ulps[nan] = math.inf
    where = tuple(int(i) for i in np.argwhere(differ)[0])
    flat = where[1:]
    first = BitDifference(
        name, where[0] + 1, flat, float(ours[where]), float(theirs[where]),
        f"0x{int(a[where]):0{width // 4}x}", f"0x{int(b[where]):0{width // 4}x}", int(bits[0]), float(ulps[0]),
    )
    return BitComparison(name, compared, count, int(bits.max()), float(ulps.max()), first)
