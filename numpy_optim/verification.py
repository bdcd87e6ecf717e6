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

from collections.abc import Callable
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
