r"""Test problems with analytic gradients, and a loop that runs an optimizer on one.

Every problem has ``value(x) -> float``, ``gradient(x) -> ndarray`` (the shape and dtype
of ``x``), ``minimizer`` (an ndarray) and ``name``:

* :class:`Quadratic` :math:`f(x) = \tfrac12 x^\top A x`, minimum 0 at :math:`x^* = 0`,
  built by :func:`quadratic_bowl` (well conditioned) and
  :func:`ill_conditioned_quadratic` (condition number :math:`\kappa`, 100 by default);
* :class:`Rosenbrock` :math:`f(x, y) = (a - x)^2 + b (y - x^2)^2`, minimum 0 at
  :math:`(a, a^2) = (1, 1)` for the classic :math:`a = 1, b = 100`.

:func:`run_optimizer` runs any numpy_optim optimizer on a problem and records the
trajectory, the losses and the first iteration within ``tol`` of the minimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .optimizer import Optimizer


class Problem(Protocol):
    """What :func:`run_optimizer` and :mod:`numpy_optim.verification` need from a problem."""

    name: str
    minimizer: np.ndarray

    def value(self, x: np.ndarray) -> float: ...

    def gradient(self, x: np.ndarray) -> np.ndarray: ...


class Quadratic:
    r"""The quadratic :math:`f(x) = \tfrac12 x^\top A x` with :math:`A` symmetric positive definite.

    .. math::

        f(x) = \tfrac12 x^\top A x, \qquad \nabla f(x) = A x, \qquad x^* = 0, \ f(x^*) = 0

    Parameters
    ----------
    A : array_like, shape (d, d)
        Symmetric positive definite (checked: symmetric to 1e-12 relative, smallest
        eigenvalue > 0).
    name : str, default "quadratic"

    Attributes
    ----------
    A : ndarray, shape (d, d), float64
    eigenvalues : ndarray, shape (d,)
        Ascending.
    eigenvectors : ndarray, shape (d, d)
        Column ``k`` belongs to ``eigenvalues[k]``; the last column is the direction of
        highest curvature.
    minimizer : ndarray, shape (d,)
        Zeros.

    Examples
    --------
    >>> q = Quadratic([[2.0, 0.0], [0.0, 4.0]])
    >>> q.value(np.array([1.0, 1.0])), q.gradient(np.array([1.0, 1.0]))
    (3.0, array([2., 4.]))
    """

    def __init__(self, A: Any, name: str = "quadratic") -> None:
        A = np.array(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"Invalid A: expected a non-empty square matrix, got shape {A.shape}")
        if not np.all(np.isfinite(A)):
            raise ValueError("Invalid A: contains NaN or infinity")
        if not np.allclose(A, A.T, rtol=1e-12, atol=1e-12 * np.abs(A).max()):
            raise ValueError("Invalid A: not symmetric")
        eigenvalues, eigenvectors = np.linalg.eigh(A)
        if eigenvalues[0] <= 0:
            raise ValueError(f"Invalid A: not positive definite (smallest eigenvalue {eigenvalues[0]!r})")
        self.A = A
        self.eigenvalues = eigenvalues
        self.eigenvectors = eigenvectors
        self.minimizer = np.zeros(A.shape[0])
        self.name = name

    @property
    def dim(self) -> int:
        """The dimension :math:`d`."""
        return int(self.A.shape[0])

    @property
    def condition_number(self) -> float:
        r""":math:`\kappa = \lambda_{\max} / \lambda_{\min}`."""
        return float(self.eigenvalues[-1] / self.eigenvalues[0])

    def value(self, x: np.ndarray) -> float:
        r""":math:`\tfrac12 x^\top A x` (computed in float64)."""
        x = np.asarray(x, dtype=np.float64)
        return float(0.5 * x @ self.A @ x)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        r""":math:`A x`, in the dtype of ``x``."""
        x = np.asarray(x)
        return (self.A @ x.astype(np.float64)).astype(x.dtype)

    def __repr__(self) -> str:
        return f"Quadratic(name={self.name!r}, dim={self.dim}, condition_number={self.condition_number:.6g})"


def _rotation(dim: int, seed: int) -> np.ndarray:
    """A random orthogonal matrix (QR of a Gaussian matrix, signs fixed so it is unique)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def quadratic_bowl(dim: int = 2) -> Quadratic:
    r"""A well-conditioned bowl: :math:`A = \mathrm{diag}(\lambda)` with :math:`\lambda` evenly spaced in [1, 2].

    Condition number 2 (1 when ``dim == 1``); axis aligned. Plain gradient descent with
    :math:`\alpha \le 2/\lambda_{\max} = 1` converges on it.

    Examples
    --------
    >>> quadratic_bowl(3).eigenvalues
    array([1. , 1.5, 2. ])
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"Invalid dim: {dim!r} (expected an int >= 1)")
    return Quadratic(np.diag(np.linspace(1.0, 2.0, dim)), name=f"quadratic_bowl(dim={dim})")


def ill_conditioned_quadratic(
    dim: int = 2, condition_number: float = 100.0, rotation_seed: int | None = None
) -> Quadratic:
    r"""A quadratic whose eigenvalues run geometrically from exactly 1 to exactly ``condition_number``.

    .. math::

        A = Q \, \mathrm{diag}(1, \kappa^{1/(d-1)}, \ldots, \kappa) \, Q^\top

    By default (``rotation_seed=None``) :math:`Q = I`: the axes are the eigenvectors, the
    *last* coordinate is the high-curvature direction and the first the low-curvature
    one. That axis-aligned case is the one in which Adam's per-coordinate scaling can
    undo the conditioning. With an integer ``rotation_seed``, :math:`Q` is a random
    orthogonal matrix from that seed, so no axis is an eigenvector (use
    ``q.eigenvectors[:, -1]`` for the high-curvature direction).

    Examples
    --------
    >>> q = ill_conditioned_quadratic()
    >>> q.eigenvalues, q.condition_number
    (array([  1., 100.]), 100.0)
    >>> round(ill_conditioned_quadratic(rotation_seed=0).condition_number, 9)
    100.0
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"Invalid dim: {dim!r} (expected an int >= 2)")
    if not np.isfinite(condition_number) or condition_number < 1:
        raise ValueError(f"Invalid condition_number: {condition_number!r} (must be >= 1)")
    eigenvalues = np.geomspace(1.0, float(condition_number), dim)
    eigenvalues[0], eigenvalues[-1] = 1.0, float(condition_number)  # exact ends
    A = np.diag(eigenvalues)
    name = f"ill_conditioned_quadratic(dim={dim}, condition_number={condition_number:g})"
    if rotation_seed is not None:
        Q = _rotation(dim, rotation_seed)
        A = Q @ A @ Q.T
        A = 0.5 * (A + A.T)
        name = f"{name[:-1]}, rotation_seed={rotation_seed})"
    return Quadratic(A, name=name)


class Rosenbrock:
    r"""The Rosenbrock function, a narrow curved valley.

    .. math::

        f(x, y) &= (a - x)^2 + b\,(y - x^2)^2 \\
        \nabla f(x, y) &= \bigl(-2(a - x) - 4 b x (y - x^2), \ 2 b (y - x^2)\bigr)

    Minimum :math:`f = 0` at :math:`(a, a^2)`; the classic :math:`a = 1, b = 100` has it at
    (1, 1).

    Examples
    --------
    >>> r = Rosenbrock()
    >>> r.value(np.array([1.0, 1.0])), r.gradient(np.array([0.0, 0.0]))
    (0.0, array([-2.,  0.]))
    """

    def __init__(self, a: float = 1.0, b: float = 100.0) -> None:
        self.a = float(a)
        self.b = float(b)
        self.minimizer = np.array([self.a, self.a**2])
        self.name = "rosenbrock" if (self.a, self.b) == (1.0, 100.0) else f"rosenbrock(a={a:g}, b={b:g})"

    @staticmethod
    def _check(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.shape != (2,):
            raise ValueError(f"Rosenbrock takes a point of shape (2,), got shape {x.shape}")
        return x

    def value(self, x: np.ndarray) -> float:
        r""":math:`(a - x)^2 + b (y - x^2)^2` (computed in Python floats)."""
        x0, x1 = (float(v) for v in self._check(x))
        d, r = self.a - x0, x1 - x0 * x0  # products, not **, so overflow gives inf, not OverflowError
        return d * d + self.b * r * r

    def gradient(self, x: np.ndarray) -> np.ndarray:
        r""":math:`(-2(a - x) - 4bx(y - x^2), \ 2b(y - x^2))`, in the dtype of ``x``."""
        x = self._check(x)
        x0, x1 = (float(v) for v in x)
        r = x1 - x0 * x0
        return np.array([-2.0 * (self.a - x0) - 4.0 * self.b * x0 * r, 2.0 * self.b * r], dtype=x.dtype)

    def __repr__(self) -> str:
        return f"Rosenbrock(a={self.a!r}, b={self.b!r})"


@dataclass
class Run:
    """The record of :func:`run_optimizer`.

    Attributes
    ----------
    trajectory : ndarray, shape (steps + 1, dim)
        ``trajectory[k]`` is the point after ``k`` steps (``trajectory[0]`` is ``x0``).
        If the iterate became non-finite, the rows from then on are NaN.
    losses : ndarray, shape (steps + 1,)
        ``problem.value(trajectory[k])``.
    iterations_to_converge : int or None
        The first ``k`` with :math:`\\|x_k - x^*\\| < tol`, or None if no iterate got there.
    distances : ndarray, shape (steps + 1,)
        :math:`\\|x_k - x^*\\|`.
    tol : float
    diverged : bool
        True if the iterate overflowed to infinity or NaN.
    """

    trajectory: np.ndarray
    losses: np.ndarray
    iterations_to_converge: int | None
    distances: np.ndarray
    tol: float
    diverged: bool

    @property
    def final_distance(self) -> float:
        """:math:`\\|x_{steps} - x^*\\|` (NaN if the run diverged)."""
        return float(self.distances[-1])


def run_optimizer(
    make_optimizer: Callable[[list[dict[str, Any]]], Optimizer],
    problem: Problem,
    x0: Any,
    steps: int,
    tol: float = 1e-2,
) -> Run:
    r"""Run ``steps`` optimizer steps on ``problem`` from ``x0`` and record what happened.

    At each step the gradient is written in place into the entry's grad array, then
    ``optimizer.step()`` updates the point in place:

    .. math:: g \leftarrow \nabla f(x_k), \qquad x_{k+1} \leftarrow \mathrm{step}(x_k, g)

    Parameters
    ----------
    make_optimizer : callable
        Takes the entries list ``[{"params": x, "grad": g}]`` and returns an optimizer,
        e.g. ``lambda entries: SGD(entries, lr=0.01, momentum=0.9)``.
    problem : Problem
        Anything with ``value``, ``gradient`` and ``minimizer``.
    x0 : array_like
        Starting point (copied, as float64).
    steps : int
        Number of optimizer steps; the run never stops early, so the trajectory always
        has ``steps + 1`` rows.
    tol : float, default 1e-2
        Convergence radius for ``iterations_to_converge``.

    Returns
    -------
    Run

    Examples
    --------
    >>> from numpy_optim import SGD
    >>> run = run_optimizer(lambda e: SGD(e, lr=0.5), quadratic_bowl(2), [1.0, 1.0], steps=20)
    >>> run.trajectory.shape, run.iterations_to_converge, run.final_distance < 1e-6
    ((21, 2), 7, True)
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"Invalid steps: {steps!r} (expected an int >= 0)")
    if not tol > 0:
        raise ValueError(f"Invalid tol: {tol!r} (must be > 0)")
    x = np.array(x0, dtype=np.float64)
    minimizer = np.asarray(problem.minimizer, dtype=np.float64)
    if x.shape != minimizer.shape:
        raise ValueError(f"x0 has shape {x.shape}, but {problem.name}'s minimizer has shape {minimizer.shape}")
    grad = np.zeros_like(x)
    optimizer = make_optimizer([{"params": x, "grad": grad}])
    trajectory = np.full((steps + 1, *x.shape), np.nan)
    losses = np.full(steps + 1, np.nan)
    trajectory[0] = x
    losses[0] = problem.value(x)
    diverged = False
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            grad[...] = problem.gradient(x)
            optimizer.step()
            if not np.all(np.isfinite(x)):
                diverged = True
                break
            trajectory[k] = x
            losses[k] = problem.value(x)
            if not np.isfinite(losses[k]):
                diverged = True
                break
        distances = np.linalg.norm((trajectory - minimizer).reshape(steps + 1, -1), axis=1)
    inside = np.flatnonzero(distances < tol)
    iterations = int(inside[0]) if inside.size else None
    return Run(trajectory, losses, iterations, distances, float(tol), diverged)
