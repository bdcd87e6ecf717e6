"""Adam (with coupled L2 weight decay, "Adam + L2") and AdamW (decoupled weight decay)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, check_betas, check_bool, check_nonnegative


def adam_update_(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    max_exp_avg_sq: np.ndarray | None,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    r"""One Adam / AdamW step on one array, in place (``param`` and the moment buffers).

    Notes
    -----
    In the order of the code, as torch's single-tensor path computes it (``step`` is
    :math:`t`, already incremented, so the first step has :math:`t = 1`):

    .. math::

        g &\leftarrow -g \ \text{if maximize} \\
        \theta &\leftarrow (1 - \alpha\lambda)\,\theta \ \text{(AdamW: decoupled decay, before the moments)} \\
        g &\leftarrow g + \lambda \theta \ \text{(Adam: L2 folded into the gradient)} \\
        m_t &\leftarrow m_{t-1} + (1 - \beta_1)(g - m_{t-1})
              \quad (= \beta_1 m_{t-1} + (1 - \beta_1) g) \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        \hat v_t &\leftarrow \max(\hat v_{t-1}, v_t) \ \text{if amsgrad, else } v_t \\
        d &\leftarrow \sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon \\
        \theta &\leftarrow \theta - \frac{\alpha}{1 - \beta_1^t} \, m_t / d

    which is the specification's
    :math:`\theta \leftarrow \theta - \alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon)` with
    :math:`\hat m_t = m_t / (1 - \beta_1^t)`, :math:`\hat v_t = v_t / (1 - \beta_2^t)`.
    ``max_exp_avg_sq`` is ignored (may be None) unless ``amsgrad``.
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            # AdamW: torch shrinks the parameter first, before the moments are updated.
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    # m_t: torch's lerp(m, g, w) = m + w (g - m) for w < 0.5, else g - (1 - w)(g - m).
    weight = 1 - beta1
    if weight < 0.5:
        exp_avg += weight * (grad - exp_avg)
    else:
        exp_avg[...] = grad - (grad - exp_avg) * (1 - weight)
    # v_t
    exp_avg_sq *= beta2
    exp_avg_sq += ((1 - beta2) * grad) * grad
    # Bias corrections, in Python floats with Python's ** (libm pow), as torch does.
    bias_correction1 = 1 - beta1 ** float(step)
    bias_correction2 = 1 - beta2 ** float(step)
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    if amsgrad:
        assert max_exp_avg_sq is not None
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second_moment = max_exp_avg_sq
    else:
        second_moment = exp_avg_sq
    # torch adds eps AFTER the bias correction: sqrt(v) / sqrt(bc2) + eps.
    denom = np.sqrt(second_moment) / bias_correction2_sqrt + eps
    param += (-step_size * exp_avg) / denom


class Adam(Optimizer):
    r"""Adam, with optional L2 weight decay folded into the gradient ("Adam + L2").

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself.
    lr : float, default 0.001
        Learning rate :math:`\alpha`.
    betas : (float, float), default (0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)` of the first and second moments.
    eps : float, default 1e-8
        :math:`\epsilon`, added to :math:`\sqrt{\hat v_t}` (after the bias correction).
    weight_decay : float, default 0.0
        L2 coefficient :math:`\lambda`, added to the gradient *before* the moments, so it
        is scaled by the adaptive step: the coupling AdamW removes.
    amsgrad : bool, default False
        Use the running maximum of :math:`v_t` (AMSGrad).
    maximize : bool, default False
        Maximize the objective instead of minimizing it.

    Notes
    -----
    .. math::

        g_t &= \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t), \quad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &= \theta_{t-1} - \alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    The kernel is :func:`adam_update_`. State: ``state[i]["exp_avg"]``,
    ``state[i]["exp_avg_sq"]`` (and ``"max_exp_avg_sq"`` with amsgrad) per entry, and
    the optimizer-level ``state["step"]`` (:math:`t`).

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization" (2015); Reddi et al.,
    "On the Convergence of Adam and Beyond" (2018). Mirrors ``torch.optim.Adam``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = Adam([{"params": x, "grad": g}])
    >>> opt.step(); x.round(12)
    array([2.999])
    """

    _decoupled = False
    _validators = {
        "lr": check_nonnegative,
        "betas": lambda name, value: check_betas(value),
        "eps": check_nonnegative,
        "weight_decay": check_nonnegative,
        "amsgrad": check_bool,
        "maximize": check_bool,
    }

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _buffer_names(self, hyper: dict[str, Any]) -> set[str]:
        return {"exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if hyper["amsgrad"] else set())

    def _update(self, index: int, param: np.ndarray, grad: np.ndarray, hyper: dict[str, Any], step: int) -> None:
        exp_avg, _ = self._buffer(index, "exp_avg", param)
        exp_avg_sq, _ = self._buffer(index, "exp_avg_sq", param)
        max_exp_avg_sq = self._buffer(index, "max_exp_avg_sq", param)[0] if hyper["amsgrad"] else None
        beta1, beta2 = hyper["betas"]
        adam_update_(
            param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
            step=step, lr=hyper["lr"], beta1=beta1, beta2=beta2, eps=hyper["eps"],
            weight_decay=hyper["weight_decay"], amsgrad=hyper["amsgrad"],
            maximize=hyper["maximize"], decoupled_weight_decay=self._decoupled,
        )


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay.

    Parameters
    ----------
    params : list of dict
        ``[{"params": ndarray, "grad": ndarray}, ...]``; an entry may override any
        hyperparameter below for itself (the everyday use: ``"weight_decay": 0.0`` on
        biases and norms).
    lr : float, default 0.001
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0.01
        Decoupled decay :math:`\lambda`: the parameter shrinks by :math:`(1 - \alpha\lambda)`
        each step, independently of the gradient statistics.
    amsgrad : bool, default False
    maximize : bool, default False

    Notes
    -----
    .. math::

        \theta &\leftarrow (1 - \alpha \lambda)\, \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &= \theta - \alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    equal to the specification's
    :math:`\theta_t = \theta_{t-1} - \alpha(\hat m_t / (\sqrt{\hat v_t} + \epsilon) + \lambda\theta_{t-1})`.
    The moments see the data gradient only. Kernel: :func:`adam_update_` with
    ``decoupled_weight_decay=True``.

    References
    ----------
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (2019). Mirrors
    ``torch.optim.AdamW``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0]); g = np.array([6.0])
    >>> opt = AdamW([{"params": x, "grad": g}], weight_decay=0.1)
    >>> opt.step(); x.round(12)                         # 3 - 0.0003 (decay) - 0.001 (Adam)
    array([2.9987])
    """

    _decoupled = True

    def __init__(
        self,
        params: list[dict[str, Any]],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
