r"""Learning-rate schedules: step decay, cosine annealing, linear warmup then cosine.

A scheduler is a pure function of the step number, :meth:`LRScheduler.get_lr`, plus
:meth:`LRScheduler.step`, which writes that rate into an optimizer::

    schedule = WarmupCosineScheduler(max_lr=1e-3, min_lr=1e-5, warmup_steps=100, total_steps=1000)
    for t in range(1000):
        schedule.step(optimizer, t)      # the lr used by this step
        ...                              # compute gradients
        optimizer.step()

Choices where the specification is silent:

* Past ``total_steps`` the cosine schedules stay at ``min_lr`` (clamped). torch's
  ``CosineAnnealingLR`` instead rises again (it is periodic); within ``total_steps`` the
  two agree.
* :meth:`LRScheduler.step` sets the optimizer-wide rate (``optimizer.lr``). An entry that
  carries its own ``"lr"`` is scaled by the same factor, relative to its rate when the
  optimizer was built (``optimizer.initial_lrs``, saved in state dicts):
  ``entry lr = initial entry lr * get_lr(t) / reference_lr`` with ``reference_lr`` the
  schedule's ``initial_lr`` or ``max_lr``. This is what torch's ``LambdaLR`` does to each
  parameter group (a multiplier on the group's base rate).
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

from .optimizer import Optimizer, as_float, check_nonnegative


def _check_step(name: str, value: Any, minimum: int) -> int:
    """An int (NumPy's too, returned as a Python int) ``>= minimum`` that fits a float (the
    schedules divide by step counts)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Invalid {name}: {value!r} (expected an int, got {type(value).__name__})")
    as_float(name, value)  # a ValueError naming ``name`` for a huge int
    if value < minimum:
        raise ValueError(f"Invalid {name} value: {value!r} (must be >= {minimum})")
    return int(value)


class LRScheduler:
    """Base class: ``get_lr(step) -> float`` and ``step(optimizer, current_step)``."""

    #: The schedule's peak (or starting) rate; entries with their own lr scale by get_lr / this.
    reference_lr: float = 1.0

    def __repr__(self) -> str:
        """The constructor call, its arguments read from the attributes of the same names
        (a schedule is a pure function of the step: it has no position to show).

        >>> CosineScheduler(max_lr=0.1, min_lr=0.0, total_steps=100)
        CosineScheduler(max_lr=0.1, min_lr=0.0, total_steps=100)
        """
        names = [p.name for p in inspect.signature(type(self).__init__).parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in names if hasattr(self, name))
        return f"{type(self).__name__}({arguments})"

    def get_lr(self, step: int) -> float:
        """The learning rate for step ``step`` (0-based, ``step >= 0``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr")

    def step(self, optimizer: Optimizer, current_step: int) -> float:
        """Set ``optimizer``'s learning rate to ``get_lr(current_step)`` and return it.

        Entries carrying their own ``"lr"`` are scaled by the same factor relative to
        their rate when the optimizer was built (see the module docstring).
        """
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a numpy_optim Optimizer, got {type(optimizer).__name__}")
        lr = self.get_lr(current_step)
        factor = lr / self.reference_lr if self.reference_lr > 0 else 0.0
        optimizer.lr = lr
        for entry, initial in zip(optimizer.param_groups, optimizer.initial_lrs):
            if "lr" in entry:
                entry["lr"] = initial * factor
        return lr


class StepDecayScheduler(LRScheduler):
    r"""Multiply the rate by ``decay_factor`` every ``step_size`` steps.

    .. math:: \alpha_t = \alpha_0 \, \gamma^{\lfloor t / S \rfloor}

    Mirrors ``torch.optim.lr_scheduler.StepLR(step_size=S, gamma=gamma)``.

    Examples
    --------
    >>> s = StepDecayScheduler(initial_lr=0.1, decay_factor=0.5, step_size=10)
    >>> s.get_lr(0), s.get_lr(9), s.get_lr(10), s.get_lr(25)
    (0.1, 0.1, 0.05, 0.025)
    """

    def __init__(self, initial_lr: float, decay_factor: float, step_size: int) -> None:
        self.initial_lr = check_nonnegative("initial_lr", initial_lr)
        self.decay_factor = check_nonnegative("decay_factor", decay_factor)
        self.step_size = _check_step("step_size", step_size, 1)
        self.reference_lr = self.initial_lr

    def get_lr(self, step: int) -> float:
        step = _check_step("step", step, 0)
        return self.initial_lr * self.decay_factor ** (step // self.step_size)


def _cosine(max_lr: float, min_lr: float, fraction: float) -> float:
    r""":math:`\alpha_{\min} + \tfrac12 (\alpha_{\max} - \alpha_{\min})(1 + \cos(\pi f))`."""
    if fraction == 0:
        # exactly max_lr at the start: min + (max - min) can round away from max (e.g. max 6.827727701296745,
        # min 0.375 * max), and the schedule must start (and the warmup end) at max_lr itself.
        return max_lr
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * fraction))


def _check_lr_range(max_lr: Any, min_lr: Any) -> tuple[float, float]:
    max_lr = check_nonnegative("max_lr", max_lr)
    min_lr = check_nonnegative("min_lr", min_lr)
    if min_lr > max_lr:
        raise ValueError(f"Invalid min_lr value: {min_lr!r} (must be <= max_lr = {max_lr!r})")
    return max_lr, min_lr


class CosineScheduler(LRScheduler):
    r"""Cosine annealing from ``max_lr`` at step 0 to ``min_lr`` at ``total_steps``.

    .. math:: \alpha_t = \alpha_{\min} + \tfrac12(\alpha_{\max} - \alpha_{\min})
              \left(1 + \cos\frac{\pi t}{T}\right), \qquad \alpha_t = \alpha_{\min} \ (t > T)

    Mirrors ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=min_lr)`` for
    ``t <= T``; past ``T`` this schedule stays at ``min_lr``.

    Examples
    --------
    >>> s = CosineScheduler(max_lr=1.0, min_lr=0.0, total_steps=100)
    >>> s.get_lr(0), round(s.get_lr(50), 12), s.get_lr(100), s.get_lr(150)
    (1.0, 0.5, 0.0, 0.0)
    """

    def __init__(self, max_lr: float, min_lr: float, total_steps: int) -> None:
        self.max_lr, self.min_lr = _check_lr_range(max_lr, min_lr)
        self.total_steps = _check_step("total_steps", total_steps, 1)
        self.reference_lr = self.max_lr

    def get_lr(self, step: int) -> float:
        step = _check_step("step", step, 0)
        if step >= self.total_steps:
            return self.min_lr
        return _cosine(self.max_lr, self.min_lr, step / self.total_steps)


class WarmupCosineScheduler(LRScheduler):
    r"""Linear warmup from 0 to ``max_lr``, then cosine annealing to ``min_lr``.

    .. math::

        \alpha_t = \begin{cases}
            \alpha_{\max} \, t / t_w & t < t_w \\
            \alpha_{\min} + \tfrac12(\alpha_{\max} - \alpha_{\min})
                \left(1 + \cos\frac{\pi (t - t_w)}{T - t_w}\right) & t_w \le t \le T \\
            \alpha_{\min} & t > T
        \end{cases}

    ``warmup_steps`` may be 0 (plain cosine) and must be below ``total_steps``. Mirrors
    torch's ``LambdaLR`` with this function (torch's ``LinearLR`` cannot start at 0).

    Examples
    --------
    >>> s = WarmupCosineScheduler(max_lr=1.0, min_lr=0.0, warmup_steps=10, total_steps=110)
    >>> s.get_lr(0), s.get_lr(5), s.get_lr(10), round(s.get_lr(60), 12), s.get_lr(110)
    (0.0, 0.5, 1.0, 0.5, 0.0)
    """

    def __init__(self, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> None:
        self.max_lr, self.min_lr = _check_lr_range(max_lr, min_lr)
        self.warmup_steps = _check_step("warmup_steps", warmup_steps, 0)
        self.total_steps = _check_step("total_steps", total_steps, 1)
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"Invalid warmup_steps value: {warmup_steps!r} (must be < total_steps = {total_steps!r})"
            )
        self.reference_lr = self.max_lr

    def get_lr(self, step: int) -> float:
        step = _check_step("step", step, 0)
        if step < self.warmup_steps:
            return self.max_lr * step / self.warmup_steps
        if step >= self.total_steps:
            return self.min_lr
        fraction = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return _cosine(self.max_lr, self.min_lr, fraction)
