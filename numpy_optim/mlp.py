r"""A small NumPy multilayer perceptron that trains with any numpy_optim optimizer.

The model exposes its parameters in the optimizer contract,
``[{"params": W, "grad": dW}, ...]``, and :meth:`MLP.loss_and_gradients` writes the
gradients *in place* into those grad arrays, so an optimizer built once from
:meth:`MLP.parameters` sees fresh gradients at every step::

    model = MLP([2, 32, 32, 3], seed=0)
    optimizer = AdamW(model.parameters(), lr=1e-2)
    for X_batch, y_batch in batches:
        model.loss_and_gradients(X_batch, y_batch)
        optimizer.step()

:func:`make_classification_data` makes three interleaved spirals (not linearly
separable) and :func:`train` runs mini-batch training and records loss and accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .optimizer import Optimizer
from .schedulers import LRScheduler

_ACTIVATIONS = ("tanh", "relu")


class MLP:
    r"""Fully connected network: tanh or ReLU hidden layers, softmax output, cross-entropy loss.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_inputs, hidden_1, ..., n_classes]``, at least two sizes (two sizes is
        multinomial logistic regression, a linear classifier).
    seed : int
        Seed of the initialisation (Glorot-uniform weights for tanh, He-normal for ReLU;
        zero biases).
    activation : {"tanh", "relu"}, default "tanh"
    dtype : numpy dtype, default float64

    Notes
    -----
    With :math:`a_0 = X` (batch of :math:`N` rows), :math:`\sigma` the activation and
    :math:`Y` the one-hot labels:

    .. math::

        z_l &= a_{l-1} W_l + b_l, \quad a_l = \sigma(z_l) \ (l < L), \quad
        P = \mathrm{softmax}(z_L) \\
        \mathcal{L} &= -\frac1N \sum_n \log P_{n, y_n} \\
        \delta_L &= (P - Y) / N, \quad
        \partial W_l = a_{l-1}^\top \delta_l, \quad \partial b_l = \textstyle\sum_n \delta_l \\
        \delta_{l-1} &= (\delta_l W_l^\top) \odot \sigma'(z_{l-1}), \quad
        \tanh' = 1 - a^2, \ \mathrm{relu}' = [z > 0]

    Attributes
    ----------
    weights, biases : list of ndarray
        :math:`W_l` of shape ``(n_{l-1}, n_l)`` and :math:`b_l` of shape ``(n_l,)``.
    parameter_names : list of str
        ``["W1", "b1", "W2", ...]``, in the order of :meth:`parameters`.

    Examples
    --------
    >>> model = MLP([2, 8, 3], seed=0)
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0]]); y = np.array([0, 2])
    >>> model.forward(X).shape, bool(np.allclose(model.forward(X).sum(axis=1), 1.0))
    ((2, 3), True)
    >>> loss = model.loss_and_gradients(X, y)
    >>> [e["grad"].shape for e in model.parameters()]
    [(2, 8), (8,), (8, 3), (3,)]
    """

    def __init__(
        self, layer_sizes: Sequence[int], seed: int, activation: str = "tanh", dtype: Any = np.float64
    ) -> None:
        sizes = list(layer_sizes)
        if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
            raise ValueError(f"Invalid layer_sizes: {layer_sizes!r} (expected at least two positive ints)")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Invalid activation: {activation!r} (expected one of {_ACTIVATIONS})")
        self.layer_sizes = [int(n) for n in sizes]
        self.activation = activation
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            if activation == "relu":
                W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                W = rng.uniform(-limit, limit, (fan_in, fan_out))
            self.weights.append(W.astype(self.dtype))
            self.biases.append(np.zeros(fan_out, dtype=self.dtype))
        self._entries: list[dict[str, Any]] = []
        self.parameter_names: list[str] = []
        for layer, (W, b) in enumerate(zip(self.weights, self.biases), start=1):
            self._entries.append({"params": W, "grad": np.zeros_like(W)})
            self._entries.append({"params": b, "grad": np.zeros_like(b)})
            self.parameter_names += [f"W{layer}", f"b{layer}"]
        self._cache: tuple[list[np.ndarray], list[np.ndarray], np.ndarray] | None = None

    # ----- the optimizer contract --------------------------------------------------------

    def parameters(self) -> list[dict[str, Any]]:
        """The optimizer entries ``[{"params": W1, "grad": dW1}, {"params": b1, ...}, ...]``.

        The same dict objects (and arrays) at every call: an optimizer built from them
        stays connected to the model.
        """
        return list(self._entries)

    # ----- forward ---------------------------------------------------------------------

    def _hidden(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z) if self.activation == "tanh" else np.maximum(z, 0)

    def _forward(self, X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Activations ``[X, a_1, ..., a_{L-1}]``, pre-activations ``[z_1, ..., z_L]`` and logits."""
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"X must have shape (n, {self.layer_sizes[0]}), got {X.shape}")
        activations, pre = [X], []
        for layer, (W, b) in enumerate(zip(self.weights, self.biases), start=1):
            z = activations[-1] @ W + b
            pre.append(z)
            if layer < len(self.weights):
                activations.append(self._hidden(z))
        return activations, pre, pre[-1]

    @staticmethod
    def _log_softmax(logits: np.ndarray) -> np.ndarray:
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)`` (softmax of the last layer)."""
        return np.exp(self._log_softmax(self._forward(X)[2]))

    def _check_labels(self, y: Any, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,) or y.dtype.kind not in "iu":
            raise ValueError(f"y must be an integer array of shape ({n},), got {y.dtype} of shape {y.shape}")
        if n and (y.min() < 0 or y.max() >= self.layer_sizes[-1]):
            raise ValueError(f"labels must lie in [0, {self.layer_sizes[-1]}), got range [{y.min()}, {y.max()}]")
        return y

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        r"""Mean cross-entropy :math:`-\frac1N \sum_n \log P_{n, y_n}` (no gradients)."""
        logp = self._log_softmax(self._forward(X)[2])
        y = self._check_labels(y, logp.shape[0])
        return float(-logp[np.arange(len(y)), y].mean())

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Fraction of rows whose most probable class is the label."""
        logits = self._forward(X)[2]
        y = self._check_labels(y, logits.shape[0])
        return float(np.mean(logits.argmax(axis=1) == y))

    # ----- backward --------------------------------------------------------------------

    def loss_and_gradients(self, X: np.ndarray, y: np.ndarray) -> float:
        """The mean cross-entropy; writes its gradients in place into the grad arrays.

        Returns the loss; afterwards ``parameters()[k]["grad"]`` holds
        :math:`\\partial \\mathcal{L} / \\partial` ``parameters()[k]["params"]``.
        """
        activations, pre, logits = self._forward(X)
        n = logits.shape[0]
        y = self._check_labels(y, n)
        if n == 0:
            raise ValueError("loss_and_gradients needs a non-empty batch")
        logp = self._log_softmax(logits)
        loss = float(-logp[np.arange(n), y].mean())
        delta = np.exp(logp)
        delta[np.arange(n), y] -= 1.0
        delta /= n
        for layer in range(len(self.weights) - 1, -1, -1):
            dW = self._entries[2 * layer]["grad"]
            db = self._entries[2 * layer + 1]["grad"]
            np.matmul(activations[layer].T, delta, out=dW)
            np.sum(delta, axis=0, out=db)
            if layer > 0:
                upstream = delta @ self.weights[layer].T
                if self.activation == "tanh":
                    delta = upstream * (1.0 - activations[layer] ** 2)
                else:
                    delta = upstream * (pre[layer - 1] > 0)
        return loss


def make_classification_data(
    n_samples: int, seed: int, n_classes: int = 3, noise: float = 0.2, turns: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Interleaved spirals in the plane: a classification problem no linear model solves.

    Class :math:`c` of :math:`C` arms: for :math:`r` evenly spaced in [0, 1],

    .. math::

        \phi = 2\pi \left(\frac{c}{C} + \text{turns} \cdot r\right) + \text{noise} \cdot \xi,
        \qquad x = r (\cos\phi, \sin\phi), \quad \xi \sim \mathcal N(0, 1)

    Parameters
    ----------
    n_samples : int
        Total number of points (split as evenly as possible between the classes).
    seed : int
        Seed of the angular noise and of the row shuffle.
    n_classes : int, default 3
    noise : float, default 0.2
        Standard deviation of the angular jitter, in radians.
    turns : float, default 1.0
        How many turns each arm makes.

    Returns
    -------
    X : ndarray, shape (n_samples, 2), float64
    y : ndarray, shape (n_samples,), int64

    Examples
    --------
    >>> X, y = make_classification_data(300, seed=0)
    >>> X.shape, np.bincount(y).tolist(), bool(np.abs(X).max() <= 1.0)
    ((300, 2), [100, 100, 100], True)
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < n_classes:
        raise ValueError(f"Invalid n_samples: {n_samples!r} (expected an int >= n_classes = {n_classes})")
    if n_classes < 2:
        raise ValueError(f"Invalid n_classes: {n_classes!r} (expected >= 2)")
    rng = np.random.default_rng(seed)
    counts = [n_samples // n_classes + (c < n_samples % n_classes) for c in range(n_classes)]
    Xs, ys = [], []
    for c, count in enumerate(counts):
        r = np.linspace(0.0, 1.0, count)
        phi = 2 * np.pi * (c / n_classes + turns * r) + noise * rng.standard_normal(count)
        Xs.append(np.column_stack([r * np.cos(phi), r * np.sin(phi)]))
        ys.append(np.full(count, c, dtype=np.int64))
    order = rng.permutation(n_samples)
    return np.concatenate(Xs)[order], np.concatenate(ys)[order]


@dataclass
class History:
    """Loss and accuracy on the full training set, after each epoch.

    Index ``k`` is the state after ``k`` epochs: ``losses[0]`` and ``accuracies[0]`` are
    measured before training, so both lists have ``epochs + 1`` items.
    """

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    batch_losses: list[float] = field(default_factory=list)

    def epochs_to_reach(self, *, accuracy: float | None = None, loss: float | None = None) -> int | None:
        """The first epoch count ``k`` with ``accuracies[k] >= accuracy`` (or ``losses[k] <= loss``); None if never."""
        if accuracy is not None and loss is None:
            return next((k for k, a in enumerate(self.accuracies) if a >= accuracy), None)
        if loss is not None and accuracy is None:
            return next((k for k, v in enumerate(self.losses) if v <= loss), None)
        raise ValueError("give exactly one of accuracy= or loss=")


def train(
    mlp: MLP,
    optimizer: Optimizer,
    X: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    seed: int,
    scheduler: LRScheduler | None = None,
) -> History:
    """Mini-batch training: shuffle each epoch, then per batch gradients in place and ``optimizer.step()``.

    Parameters
    ----------
    mlp : MLP
    optimizer : Optimizer
        Built from ``mlp.parameters()``.
    X, y : ndarray
        Training data (``y`` integer labels).
    epochs, batch_size : int
        The last batch of an epoch may be smaller.
    seed : int
        Seed of the per-epoch shuffles.
    scheduler : LRScheduler, optional
        Called as ``scheduler.step(optimizer, t)`` before optimizer step ``t`` (counted
        from 0 across epochs): the schedule runs per step, not per epoch.

    Returns
    -------
    History
        Full-set loss and accuracy before training and after each epoch, and every batch loss.

    Examples
    --------
    >>> from numpy_optim import Adam
    >>> X, y = make_classification_data(150, seed=0)
    >>> model = MLP([2, 16, 3], seed=0)
    >>> history = train(model, Adam(model.parameters(), lr=0.01), X, y, epochs=5, batch_size=32, seed=0)
    >>> len(history.losses), history.losses[-1] < history.losses[0]
    (6, True)
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"Invalid epochs: {epochs!r} (expected an int >= 0)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid batch_size: {batch_size!r} (expected an int >= 1)")
    X = np.asarray(X, dtype=mlp.dtype)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    history = History([mlp.loss(X, y)], [mlp.accuracy(X, y)])
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = order[start : start + batch_size]
            if scheduler is not None:
                scheduler.step(optimizer, t)
            history.batch_losses.append(mlp.loss_and_gradients(X[batch], y[batch]))
            optimizer.step()
            t += 1
        history.losses.append(mlp.loss(X, y))
        history.accuracies.append(mlp.accuracy(X, y))
    return history
