"""Adam (with coupled L2 weight decay, "Adam + L2") and AdamW (decoupled weight decay)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _blocks
from ._fma import as_dtype_scalar, fma
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
    ``max_exp_avg_sq`` is ignored (may be None) unless ``amsgrad``. The multiply-adds
    torch fuses (the L2 ``add`` with ``alpha``, ``lerp``, ``addcmul``) are rounded once in
    float32, as torch's FMA rounds them, and so are the L2 term and the ``lerp`` in
    float64, where a near cancellation would otherwise be amplified by the division
    (:mod:`numpy_optim._fma`).

    This is the plain reference, one whole-array NumPy expression per line (each
    allocates a temporary). The optimizer classes run the very same operations through
    :func:`_adam_block_` instead: block by block into reused scratch buffers, small parameters
    batched, large ones over threads (``numpy_optim/_blocks.py``), with bitwise the same
    results; ``numpy_optim._blocks.settings.enabled = False`` makes them call this
    function.
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            # AdamW: torch shrinks the parameter first, before the moments are updated.
            param *= 1 - lr * weight_decay
        else:
            grad = fma(param, weight_decay, grad, exact=True)  # torch: grad.add(param, alpha=weight_decay)
    # m_t: torch's lerp(m, g, w) = fma(w, g - m, m) for w < 0.5, else fma(w - 1, g - m, g),
    # with w (a float32 for float32 arrays) minus 1 exact.
    weight = 1 - beta1
    if weight < 0.5:
        fma(grad - exp_avg, weight, exp_avg, out=exp_avg, exact=True)
    else:
        fma(grad - exp_avg, as_dtype_scalar(weight, exp_avg.dtype) - 1, grad, out=exp_avg, exact=True)
    # v_t: torch's exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    exp_avg_sq *= beta2
    fma((1 - beta2) * grad, grad, exp_avg_sq, out=exp_avg_sq)
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


# --------------------------------------------------------------------------------------
# The same update, block by block, without temporaries (see numpy_optim/_blocks.py).
# --------------------------------------------------------------------------------------


class _AdamScalars(NamedTuple):
    """The Python-float scalars of one step of :func:`adam_update_`, computed once."""

    maximize: bool
    weight_decay: float
    decoupled_weight_decay: bool
    decay: float  # 1 - lr * weight_decay
    weight: float  # 1 - beta1
    weight_minus_one: float  # w - 1, with w rounded to the arrays' dtype first (exact)
    beta2: float
    one_minus_beta2: float  # 1 - beta2
    amsgrad: bool
    bias_correction2_sqrt: float
    eps: float
    neg_step_size: float  # -lr / bias_correction1


def _adam_scalars(
    *, step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
    amsgrad: bool, maximize: bool, decoupled_weight_decay: bool, dtype: np.dtype,
) -> _AdamScalars:
    """Every scalar :func:`adam_update_` uses, by the very same Python expressions."""
    weight = 1 - beta1
    bias_correction1 = 1 - beta1 ** float(step)
    bias_correction2 = 1 - beta2 ** float(step)
    step_size = lr / bias_correction1
    return _AdamScalars(
        maximize=maximize, weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
        decay=1 - lr * weight_decay, weight=weight, weight_minus_one=as_dtype_scalar(weight, dtype) - 1, beta2=beta2,
        one_minus_beta2=1 - beta2, amsgrad=amsgrad, bias_correction2_sqrt=bias_correction2**0.5,
        eps=eps, neg_step_size=-step_size,
    )


def _adam_block_(arrays: list[np.ndarray], scratch: list[np.ndarray], k: _AdamScalars) -> None:
    """:func:`adam_update_` on one block of 1-d arrays, writing into ``scratch`` (``out=``).

    The same ufuncs with the same operands in the same order as :func:`adam_update_`
    (each line below names the expression it replaces), so every element is bitwise the
    same. ``arrays`` is ``[param, grad, exp_avg, exp_avg_sq(, max_exp_avg_sq)]``;
    ``scratch`` holds three work arrays ``t``, ``d``, ``u`` (and, for float32 blocks, a
    float64 row for :func:`numpy_optim._fma.fma`).
    """
    param, grad, exp_avg, exp_avg_sq = arrays[:4]
    t, d, u = scratch[:3]
    w = scratch[3] if len(scratch) > 3 else t  # fma's work row: float64 for float32 blocks
    if k.maximize:
        grad = np.negative(grad, u)  # grad = -grad
    if k.weight_decay != 0:
        if k.decoupled_weight_decay:
            np.multiply(param, k.decay, param)  # param *= 1 - lr * weight_decay
        else:
            grad = fma(param, k.weight_decay, grad, u, work=w, exact=True)  # grad = fma(param, weight_decay, grad, ...)
    np.subtract(grad, exp_avg, t)  # (grad - exp_avg)
    if k.weight < 0.5:
        fma(t, k.weight, exp_avg, exp_avg, work=w, exact=True)  # fma(grad - exp_avg, weight, exp_avg, out=exp_avg)
    else:
        fma(t, k.weight_minus_one, grad, exp_avg, work=w, exact=True)  # fma(grad - exp_avg, w - 1, grad, out=exp_avg)
    np.multiply(exp_avg_sq, k.beta2, exp_avg_sq)  # exp_avg_sq *= beta2
    np.multiply(k.one_minus_beta2, grad, t)  # fma((1 - beta2) * grad, grad, exp_avg_sq, out=exp_avg_sq)
    fma(t, grad, exp_avg_sq, exp_avg_sq, work=w)
    second_moment = exp_avg_sq
    if k.amsgrad:
        # np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second_moment = np.maximum(arrays[4], exp_avg_sq, out=arrays[4])
    np.sqrt(second_moment, d)  # denom = np.sqrt(second_moment) / bias_correction2_sqrt + eps
    np.divide(d, k.bias_correction2_sqrt, d)
    np.add(d, k.eps, d)
    np.multiply(k.neg_step_size, exp_avg, t)  # param += (-step_size * exp_avg) / denom
    np.divide(t, d, t)
    np.add(param, t, param)


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

    def _update_entries(self, hyperparameters: list[dict[str, Any]], step: int) -> None:
        """All entries at once: those with equal hyperparameters and dtype go through
        :func:`_adam_block_` together (blocked, batched, threaded); the rest, and everything
        when ``_blocks.settings.enabled`` is False or a subclass overrides :meth:`_update`,
        through :meth:`_update`."""
        if not _blocks.settings.enabled or type(self)._update is not Adam._update:
            # A subclass that overrides the per-entry _update gets exactly that, entry by entry.
            super()._update_entries(hyperparameters, step)
            return
        groups: dict[tuple[Any, ...], tuple[dict[str, Any], list[tuple[np.ndarray, ...]]]] = {}
        for index, (entry, hyper) in enumerate(zip(self.param_groups, hyperparameters)):
            param, grad = entry["params"], entry["grad"]
            arrays: tuple[np.ndarray, ...] = (
                param, grad, self._buffer(index, "exp_avg", param)[0], self._buffer(index, "exp_avg_sq", param)[0],
            )
            if hyper["amsgrad"]:
                arrays += (self._buffer(index, "max_exp_avg_sq", param)[0],)
            if _blocks.blockable(arrays):
                groups.setdefault(_blocks.group_key(entry, hyper), (hyper, []))[1].append(arrays)
            else:
                self._update(index, param, grad, hyper, step)
        for hyper, items in groups.values():
            beta1, beta2 = hyper["betas"]
            scalars = _adam_scalars(
                step=step, lr=hyper["lr"], beta1=beta1, beta2=beta2, eps=hyper["eps"],
                weight_decay=hyper["weight_decay"], amsgrad=hyper["amsgrad"],
                maximize=hyper["maximize"], decoupled_weight_decay=self._decoupled, dtype=items[0][0].dtype,
            )
            written = (0, 2, 3, 4) if hyper["amsgrad"] else (0, 2, 3)
            _blocks.run(_adam_block_, items, scalars, written=written, n_scratch=3)


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
