r"""Verification helpers: hand-written reference steps, finite differences, Adam+L2 vs AdamW.

* :func:`sgd_reference_step` and :func:`adam_reference_step` transcribe the
  specification's update formulas literally, on float64 copies, without calling the
  library's kernels, so a test can check one library step against them.
* :func:`numerical_gradient`, :func:`relative_error` and :func:`gradient_check` check an
  analytic gradient against central differences.
* :func:`compare_adam_l2_and_adamw` runs :class:`~numpy_optim.Adam` with L2 weight decay
  and :class:`~numpy_optim.AdamW` from the same start and returns both trajectories.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .adam import Adam, AdamW
from .problems import Problem


def _float64(name: str, value: Any) -> np.ndarray:
    array = np.array(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity")
    return array


# --------------------------------------------------------------------------------------
# (a) Single-step references, written from the specification's formulas
# --------------------------------------------------------------------------------------


def sgd_reference_step(
    x: Any, g: Any, lr: float, momentum: float = 0.0, velocity: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""One SGD (with momentum) step, straight from the specification.

    .. math::

        v_t &= \beta \, v_{t-1} + g_t \qquad (v_0 = 0) \\
        \theta_t &= \theta_{t-1} - \alpha \, v_t

    With :math:`\beta = 0` this is plain SGD, :math:`\theta_t = \theta_{t-1} - \alpha g_t`
    (and :math:`v_t = g_t`). The first step with momentum gives :math:`v_1 = g_1`, which
    is torch's "copy the gradient into the buffer" convention.

    Parameters
    ----------
    x, g : array_like
        Parameters :math:`\theta_{t-1}` and gradient :math:`g_t` (same shape).
    lr : float
        :math:`\alpha`.
    momentum : float, default 0.0
        :math:`\beta`.
    velocity : array_like, optional
        :math:`v_{t-1}`; None means :math:`v_0 = 0` (the first step).

    Returns
    -------
    (x_new, v_new) : tuple of float64 ndarrays
        New arrays; the inputs are not modified.

    Examples
    --------
    The specification's two momentum steps on :math:`f(x) = x^2` from 3:

    >>> x1, v1 = sgd_reference_step(3.0, 6.0, lr=0.1, momentum=0.9)
    >>> float(x1), float(v1)
    (2.4, 6.0)
    >>> x2, v2 = sgd_reference_step(x1, 2 * x1, lr=0.1, momentum=0.9, velocity=v1)
    >>> round(float(v2), 12), round(float(x2), 12)
    (10.2, 1.38)
    """
    x = _float64("x", x)
    g = _float64("g", g)
    if g.shape != x.shape:
        raise ValueError(f"g has shape {g.shape}, but x has shape {x.shape}")
    v_prev = np.zeros_like(x) if velocity is None else _float64("velocity", velocity)
    if v_prev.shape != x.shape:
        raise ValueError(f"velocity has shape {v_prev.shape}, but x has shape {x.shape}")
    v_new = momentum * v_prev + g
    x_new = x - lr * v_new
    return x_new, v_new


def adam_reference_step(
    x: Any,
    g: Any,
    m: Any,
    v: Any,
    t: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""One Adam step (Adam + L2 or AdamW), straight from the specification.

    Adam + L2 (``decoupled=False``): the penalty is folded into the gradient first,

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t), \quad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &= \theta_{t-1} - \alpha \, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    AdamW (``decoupled=True``): the moments see the data gradient only, and

    .. math::

        \theta_t = \theta_{t-1} - \alpha \left( \hat m_t / (\sqrt{\hat v_t} + \epsilon)
                   + \lambda \theta_{t-1} \right)

    Parameters
    ----------
    x, g, m, v : array_like
        :math:`\theta_{t-1}`, :math:`g_t` (data gradient), :math:`m_{t-1}`, :math:`v_{t-1}`.
    t : int
        The step number of this step, starting at 1.
    lr, beta1, beta2, eps, weight_decay : float
        :math:`\alpha, \beta_1, \beta_2, \epsilon, \lambda`.
    decoupled : bool, default False
        AdamW's decoupled decay instead of L2.

    Returns
    -------
    (x_new, m_new, v_new) : tuple of float64 ndarrays

    Examples
    --------
    The specification's single Adam step, and its AdamW variant with :math:`\lambda = 0.1`:

    >>> x1, m1, v1 = adam_reference_step(3.0, 6.0, 0.0, 0.0, t=1, lr=0.001)
    >>> round(float(x1), 9), round(float(m1), 12), round(float(v1), 12)
    (2.999, 0.6, 0.036)
    >>> round(float(adam_reference_step(3.0, 6.0, 0.0, 0.0, 1, 0.001, weight_decay=0.1, decoupled=True)[0]), 9)
    2.9987
    """
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
        raise ValueError(f"Invalid t: {t!r} (the step number, an int >= 1)")
    x = _float64("x", x)
    g = _float64("g", g)
    m, v = _float64("m", m), _float64("v", v)
    m = np.full_like(x, m) if m.ndim == 0 else m  # a scalar (0 at t = 1) stands for a full array
    v = np.full_like(x, v) if v.ndim == 0 else v
    for name, array in (("g", g), ("m", m), ("v", v)):
        if array.shape != x.shape:
            raise ValueError(f"{name} has shape {array.shape}, but x has shape {x.shape}")
    if not decoupled:
        g = g + weight_decay * x
    m_new = beta1 * m + (1 - beta1) * g
    v_new = beta2 * v + (1 - beta2) * g**2
    m_hat = m_new / (1 - beta1**t)
    v_hat = v_new / (1 - beta2**t)
    adam_direction = m_hat / (np.sqrt(v_hat) + eps)
    if decoupled:
        x_new = x - lr * (adam_direction + weight_decay * x)
    else:
        x_new = x - lr * adam_direction
    return x_new, m_new, v_new


# --------------------------------------------------------------------------------------
# (b) Finite differences
# --------------------------------------------------------------------------------------


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    r"""Central-difference gradient of a scalar function, one coordinate at a time.

    .. math::

        \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h}

    (truncation error :math:`O(h^2)`, rounding error about :math:`\epsilon_{mach} |f| / h`).

    ``x`` is perturbed *in place* and each coordinate is restored to its exact original
    value before moving on, so ``f`` may either use its argument or read ``x`` through
    some other reference (a model's parameter array, say). ``x`` must be a writeable
    float64 array.

    Examples
    --------
    >>> x = np.array([1.0, -2.0])
    >>> np.round(numerical_gradient(lambda z: float(np.sum(z**3)), x), 6)
    array([ 3., 12.])
    >>> x
    array([ 1., -2.])
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64 or not x.flags.writeable:
        raise TypeError("x must be a writeable float64 numpy.ndarray (it is perturbed in place)")
    if not h > 0:
        raise ValueError(f"Invalid h: {h!r} (must be > 0)")
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous (numerical_gradient perturbs it through a flat view)")
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)  # a view, since x is C-contiguous
    flat_grad = grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + h
        f_plus = float(f(x))
        flat_x[i] = original - h
        f_minus = float(f(x))
        flat_x[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(analytic: Any, numeric: Any, floor: float = 1e-8) -> float:
    r"""Largest elementwise relative difference :math:`\max_i |a_i - n_i| / \max(|a_i|, |n_i|, \text{floor})`.

    ``floor`` keeps coordinates where both gradients are (nearly) zero from dividing
    rounding noise by zero; there the measure becomes an absolute error scaled by
    ``1 / floor``.

    Examples
    --------
    >>> relative_error([1.0, 2.0], [1.0, 2.5])
    0.2
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic has shape {a.shape}, numeric has shape {n.shape}")
    if a.size == 0:
        return 0.0
    scale = np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
    return float(np.max(np.abs(a - n) / scale))


def gradient_check(problem: Problem, x: Any, h: float = 1e-6) -> float:
    """Relative error between ``problem.gradient(x)`` and central differences of ``problem.value``.

    Returns :func:`relative_error` of the two; about 1e-9 or less for a correct gradient
    of a smooth float64 function with values of order 1.

    Examples
    --------
    >>> from numpy_optim.problems import Rosenbrock
    >>> gradient_check(Rosenbrock(), [-1.5, 2.0]) < 1e-8
    True
    """
    point = _float64("x", x)
    analytic = np.asarray(problem.gradient(point.copy()), dtype=np.float64)
    numeric = numerical_gradient(problem.value, point.copy(), h=h)
    return relative_error(analytic, numeric)


# --------------------------------------------------------------------------------------
# (c) Adam + L2 versus AdamW
# --------------------------------------------------------------------------------------


def compare_adam_l2_and_adamw(
    problem_or_loss_and_grad: Problem | Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: Any,
    lr: float,
    weight_decay: float,
    steps: int,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> dict[str, Any]:
    r"""Run Adam with L2 decay and AdamW with the same :math:`\lambda` from the same start.

    Both see the same data gradient :math:`\nabla f`; they differ only in where
    :math:`\lambda\theta` enters. Adam + L2 adds it to the gradient, so it is divided by
    :math:`\sqrt{\hat v_t} + \epsilon` like the data gradient; AdamW subtracts
    :math:`\alpha\lambda\theta` from the parameter directly. With ``weight_decay == 0``
    the two are the same algorithm and the trajectories are identical.

    Parameters
    ----------
    problem_or_loss_and_grad : Problem or callable
        A problem (anything with ``value`` and ``gradient``) or a function
        ``x -> (loss, gradient)``.
    x0 : array_like
        Common starting point (copied, float64).
    lr, weight_decay : float
        :math:`\alpha` and :math:`\lambda`, the same for both.
    steps : int
    betas, eps
        As for :class:`~numpy_optim.Adam`.

    Returns
    -------
    dict
        ``"adam_l2"`` and ``"adamw"``: trajectories, shape ``(steps + 1, *x0.shape)``;
        ``"adam_l2_losses"``, ``"adamw_losses"``: data losses, shape ``(steps + 1,)``;
        ``"distances"``: :math:`\|\theta^{L2}_k - \theta^{W}_k\|`, shape ``(steps + 1,)``;
        ``"max_distance"``: its maximum (a float).

    Examples
    --------
    >>> from numpy_optim.problems import quadratic_bowl
    >>> out = compare_adam_l2_and_adamw(quadratic_bowl(2), [1.0, 1.0], lr=0.01, weight_decay=0.1, steps=50)
    >>> out["adamw"].shape, out["max_distance"] > 0
    ((51, 2), True)
    >>> compare_adam_l2_and_adamw(quadratic_bowl(2), [1.0, 1.0], 0.01, 0.0, 50)["max_distance"]
    0.0
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"Invalid steps: {steps!r} (expected an int >= 0)")
    target = problem_or_loss_and_grad
    loss_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]]
    if hasattr(target, "gradient") and hasattr(target, "value"):
        problem = target

        def loss_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
            return problem.value(x), problem.gradient(x)

    elif callable(target):
        loss_and_grad = target
    else:
        raise TypeError(
            "problem_or_loss_and_grad must be a problem (value, gradient) or a callable x -> (loss, grad), "
            f"got {type(target).__name__}"
        )
    start = _float64("x0", x0)
    results: dict[str, Any] = {}
    for key, cls in (("adam_l2", Adam), ("adamw", AdamW)):
        x = start.copy()
        g = np.zeros_like(x)
        optimizer = cls([{"params": x, "grad": g}], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        trajectory = np.empty((steps + 1, *x.shape))
        losses = np.empty(steps + 1)
        trajectory[0] = x
        for k in range(1, steps + 1):
            losses[k - 1], g[...] = loss_and_grad(x)
            optimizer.step()
            trajectory[k] = x
        losses[steps] = loss_and_grad(x)[0]
        results[key] = trajectory
        results[f"{key}_losses"] = losses
    distances = np.linalg.norm((results["adam_l2"] - results["adamw"]).reshape(steps + 1, -1), axis=1)
    results["distances"] = distances
    results["max_distance"] = float(distances.max())
    return results


def train_on_gradient_noise(
    optimizer_class: type, sigmas: Any, *, lr: float, weight_decay: float, steps: int, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The weight-distribution experiment: train on pure gradient noise, return weights and variances.

    Every parameter starts at 1 and receives a data gradient :math:`\sigma_i \xi` with
    :math:`\xi \sim N(0, 1)` fresh at every step: a flat direction of the data loss that
    sees only mini-batch noise. The noise has mean zero, so whatever systematic shrinking
    happens is the weight decay's doing: uniform, :math:`(1 - \alpha\lambda)^T`, under
    AdamW; tied to each parameter's gradient variance under Adam + L2. The draws come
    from ``seed``, so two optimizers see the same noise.

    Returns
    -------
    (ndarray, ndarray)
        The final weights and each parameter's measured gradient variance.

    Examples
    --------
    >>> from numpy_optim import AdamW
    >>> w, variance = train_on_gradient_noise(AdamW, [0.1, 1.0], lr=1e-3, weight_decay=0.1, steps=10)
    >>> w.shape, variance.shape
    ((2,), (2,))
    """
    sigmas = np.asarray(sigmas, dtype=np.float64)
    rng = np.random.default_rng(seed)
    w = np.ones_like(sigmas)
    g = np.zeros_like(w)
    optimizer = optimizer_class([{"params": w, "grad": g}], lr=lr, weight_decay=weight_decay)
    total, total_sq = np.zeros_like(w), np.zeros_like(w)
    for _ in range(steps):
        g[...] = sigmas * rng.standard_normal(w.shape)
        total += g
        total_sq += g * g
        optimizer.step()
    return w, total_sq / steps - (total / steps) ** 2


# --------------------------------------------------------------------------------------
# (d) Adam's moments in float16: where they underflow, and what that does to training
# --------------------------------------------------------------------------------------

#: float16's smallest positive value, a subnormal: 2^-24 = 5.96e-8. Below 2^-14 (6.10e-5, its
#: smallest normal) the float16 values are the multiples of it, so a result of magnitude at
#: most 2^-25 (half of it; 2^-25 itself is a tie, which goes to the even 0) is stored as 0.
FLOAT16_TINY = 2.0**-24
FLOAT16_MIN_NORMAL = 2.0**-14

#: The float16 training problem: f(x) = 1/2 sum_i s_i (x_i - 1)^2 from x = 0, whose gradients
#: s_i (x_i - 1) start at -s_i for 31 scales s_i, ten a decade from 1e-4 down to 1e-7.
FLOAT16_SCALES = np.logspace(-4, -7, 31)

#: The configurations compared: name -> (parameter dtype, Adam keyword arguments).
#: ``float16_state`` is torch's default on float16 parameters (eps 1e-8 is 0 in float16);
#: ``float16_state_tiny_eps`` the same with the smallest eps float16 holds, 2^-24.
FLOAT16_CONFIGS: dict[str, tuple[type, dict[str, Any]]] = {
    "float16_state": (np.float16, {}),
    "float16_state_tiny_eps": (np.float16, {"eps": FLOAT16_TINY}),
    "float32_state": (np.float16, {"state_dtype": np.float32}),
    "master_weights": (np.float16, {"master_weights": True}),
    "float32": (np.float32, {}),
}


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"Invalid steps: {steps!r} (expected an int >= 1)")
    return int(steps)


def _check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"Invalid betas: {betas!r} (expected a pair (beta1, beta2))")
    for index, beta in enumerate(betas):
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)):
            raise TypeError(f"Invalid beta parameter at index {index}: {beta!r} (expected a float)")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta!r} (must be 0 <= beta < 1)")
    return float(betas[0]), float(betas[1])


def float16_underflow_thresholds(betas: tuple[float, float] = (0.9, 0.999)) -> dict[str, float]:
    r"""The gradient magnitudes at or below which Adam's float16 moments, started at 0, stay 0.

    Stored in float16, each step's moments are rounded to float16:
    :math:`m_t = m_{t-1} + (1 - \beta_1)(g - m_{t-1})` and
    :math:`v_t = \beta_2 v_{t-1} + (1 - \beta_2) g^2`. From :math:`m = v = 0` the first
    increments are :math:`(1 - \beta_1) g` and :math:`(1 - \beta_2) g^2`. An increment of
    magnitude at most :math:`2^{-25}`, half of float16's smallest subnormal, rounds to 0. The
    moment is then 0 again, and stays 0 for as long as the gradient stays that small:

    .. math::

        m \equiv 0 &\iff (1 - \beta_1)|g| \le 2^{-25} \iff |g| \le 2^{-25} / (1 - \beta_1)
            \quad (2.98 \times 10^{-7} \text{ for } \beta_1 = 0.9) \\
        v \equiv 0 &\iff (1 - \beta_2) g^2 \le 2^{-25} \iff |g| \le 2^{-12.5} / \sqrt{1 - \beta_2}
            \quad (5.46 \times 10^{-3} \text{ for } \beta_2 = 0.999)

    With :math:`v = 0` the denominator :math:`\sqrt{\hat v} + \epsilon` is :math:`\epsilon`,
    and torch's default :math:`\epsilon = 10^{-8}` is itself 0 in float16. The step
    :math:`\hat m / 0` is then :math:`\pm\infty`, or NaN where :math:`m` is 0 too.

    Returns
    -------
    dict
        ``"exp_avg"`` and ``"exp_avg_sq"``: the two thresholds above;
        ``"squared_gradient"``: :math:`2^{-12.5} = 1.73 \times 10^{-4}`, at or below which
        :math:`g^2`, the limit of :math:`v`, rounds to 0 itself;
        ``"exp_avg_subnormal"`` (:math:`2^{-14}`) and ``"exp_avg_sq_subnormal"``
        (:math:`2^{-7}`, where :math:`g^2 = 2^{-14}`): below these, the limits
        :math:`|g|` and :math:`g^2` are subnormal. They are then held to a multiple of
        :math:`2^{-24}`, a relative error of up to :math:`2^{-25} / |m|`.

    Examples
    --------
    >>> t = float16_underflow_thresholds()
    >>> f"{t['exp_avg']:.3g} {t['exp_avg_sq']:.3g} {t['squared_gradient']:.3g}"
    '2.98e-07 0.00546 0.000173'
    """
    beta1, beta2 = _check_betas(betas)
    half_tiny = FLOAT16_TINY / 2
    return {
        "exp_avg": half_tiny / (1 - beta1),
        "exp_avg_sq": math.sqrt(half_tiny / (1 - beta2)),
        "squared_gradient": math.sqrt(half_tiny),
        "exp_avg_subnormal": FLOAT16_MIN_NORMAL,
        "exp_avg_sq_subnormal": math.sqrt(FLOAT16_MIN_NORMAL),
    }


@contextmanager
def _float16_arithmetic_expected() -> Iterator[None]:
    """No RuntimeWarning that eps rounds to 0 in float16, and none of NumPy's about inf or NaN:
    within these experiments they are the point, not an accident."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.filterwarnings("ignore", message=r".*rounds to 0 in float16", category=RuntimeWarning)
        yield


def adam_moments_in_float16(
    gradient: Any, steps: int = 1000, *, betas: tuple[float, float] = (0.9, 0.999), state_dtype: Any = None,
) -> dict[str, np.ndarray]:
    r"""Adam's stored moments after ``steps`` steps of one constant float16 gradient, and their exact values.

    Adam (default lr and eps) runs on float16 parameters, with the state in float16
    (``state_dtype=None``, torch's behaviour) or in ``state_dtype``. The gradient is
    ``gradient`` rounded to float16, the same at every step. Without weight decay the
    moments do not depend on the parameters: that the parameters go to :math:`\pm\infty`
    with float16 state does not change them. The exact moments of a constant :math:`g` are
    :math:`m_T = (1 - \beta_1^T) g` and :math:`v_T = (1 - \beta_2^T) g^2`. They are
    computed in float64 from the rounded :math:`g`, so that what the stored ones lack is
    the state's rounding alone.

    Returns
    -------
    dict of float64 ndarrays, the shape of ``gradient``
        ``"gradient"`` (the float16 value used), ``"exp_avg"`` and ``"exp_avg_sq"``
        (stored), ``"exact_exp_avg"`` and ``"exact_exp_avg_sq"``.

    Examples
    --------
    >>> out = adam_moments_in_float16([1e-2, 1e-5, 1e-7], steps=10)
    >>> out["exp_avg_sq"] > 0                   # (1 - 0.999) * 1e-5**2 = 1e-13 is far below 2**-25
    array([ True, False, False])
    >>> out["exp_avg"] > 0                      # (1 - 0.9) * 1e-7 = 1e-8 too
    array([ True,  True, False])
    """
    steps = _check_steps(steps)
    beta1, beta2 = _check_betas(betas)
    g16 = np.array(gradient, dtype=np.float64)
    if not np.all(np.isfinite(g16)):
        raise ValueError("gradient contains NaN or infinity")
    g16 = g16.astype(np.float16)
    param, grad = np.zeros_like(g16), g16.copy()
    kwargs = {} if state_dtype is None else {"state_dtype": state_dtype}
    with _float16_arithmetic_expected():  # the parameters go to +-inf or NaN with float16 state
        optimizer = Adam([{"params": param, "grad": grad}], betas=(beta1, beta2), **kwargs)
        for _ in range(steps):
            optimizer.step()
    g = g16.astype(np.float64)
    state = optimizer.state[0]
    return {
        "gradient": g,
        "exp_avg": state["exp_avg"].astype(np.float64),
        "exp_avg_sq": state["exp_avg_sq"].astype(np.float64),
        "exact_exp_avg": (1 - beta1**steps) * g,
        "exact_exp_avg_sq": (1 - beta2**steps) * g * g,
    }


def adam_float16_training(
    scales: Any = FLOAT16_SCALES,
    *,
    lr: float = 1e-3,
    steps: int = 3000,
    configs: dict[str, tuple[type, dict[str, Any]]] | None = None,
) -> dict[str, dict[str, Any]]:
    r"""Adam on :math:`f(x) = \tfrac12 \sum_i s_i (x_i - 1)^2` from :math:`x = 0`, per low-precision configuration.

    Coordinate :math:`i`'s gradient :math:`s_i (x_i - 1)` starts at :math:`-s_i`
    (``scales``, by default 1e-4 down to 1e-7) and shrinks as :math:`x_i` nears 1. It is
    computed in float64 from the parameters and rounded to their dtype, as a float16
    model's backward pass would hand it over. Adam is scale invariant: in exact arithmetic
    every coordinate moves by about ``lr`` a step, whatever its :math:`s_i`, until it
    nears 1. Each of ``configs`` (by default :data:`FLOAT16_CONFIGS`: float16 state,
    float16 state with eps :math:`2^{-24}`, ``state_dtype=np.float32``,
    ``master_weights=True``, float32 parameters) runs ``steps`` steps of Adam at ``lr``.

    Returns
    -------
    dict
        Per configuration:

        * ``"losses"``: :math:`f` before each step and after the last, shape ``(steps + 1,)``
          (inf or NaN once a parameter is);
        * ``"distances"``: :math:`|x_i - 1|`, shape ``(steps + 1, len(scales))``;
        * ``"step1"``: the effective step of the first step, :math:`|x_{1,i} - x_{0,i}| / \alpha`
          (1 for a coordinate that moves by the learning rate; inf for one sent to infinity);
        * ``"first_nonfinite"``: the first step after which some parameter is inf or NaN, or None;
        * ``"zero_exp_avg"``, ``"zero_exp_avg_sq"``: after each step, the fraction of the
          moments' entries that are exactly 0, shape ``(steps,)``.

    Examples
    --------
    >>> out = adam_float16_training([1e-4, 1e-6], steps=2, configs={"float32": FLOAT16_CONFIGS["float32"]})
    >>> [round(float(step), 2) for step in out["float32"]["step1"]], out["float32"]["first_nonfinite"]
    ([1.0, 0.99], None)
    """
    steps = _check_steps(steps)
    s = np.array(scales, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"Invalid scales: expected a non-empty 1-d array of positive finite numbers, got {scales!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"Invalid lr: {lr!r} (expected a finite float > 0)")
    configs = FLOAT16_CONFIGS if configs is None else configs
    out: dict[str, dict[str, Any]] = {}
    for name, (dtype, kwargs) in configs.items():
        x: np.ndarray = np.zeros(s.shape, dtype=dtype)
        grad = np.zeros_like(x)
        distances = np.empty((steps + 1, s.size))
        zero_m, zero_v = np.empty(steps), np.empty(steps)
        first_nonfinite, x1 = None, x.astype(np.float64)
        with _float16_arithmetic_expected():  # float16 state sends the parameters to +-inf, and then NaN
            optimizer = Adam([{"params": x, "grad": grad}], lr=lr, **kwargs)
            for t in range(steps):
                x64 = x.astype(np.float64)
                distances[t] = np.abs(x64 - 1)
                grad[...] = s * (x64 - 1)  # rounded to the parameters' dtype
                optimizer.step()
                state = optimizer.state[0]
                zero_m[t] = np.mean(state["exp_avg"] == 0)
                zero_v[t] = np.mean(state["exp_avg_sq"] == 0)
                if t == 0:
                    x1 = x.astype(np.float64)
                if first_nonfinite is None and not np.all(np.isfinite(x)):
                    first_nonfinite = t + 1
            distances[steps] = np.abs(x.astype(np.float64) - 1)
            losses = 0.5 * (distances**2 @ s)
        out[name] = {
            "losses": losses,
            "distances": distances,
            "step1": np.abs(x1) / lr,  # x_0 = 0
            "first_nonfinite": first_nonfinite,
            "zero_exp_avg": zero_m,
            "zero_exp_avg_sq": zero_v,
        }
    return out
