"""numpy_optim: NumPy optimizers that match torch.optim, updating parameters in place."""

from . import mlp, problems, verification
from ._backend import backend, use_backend
from .adam import Adam, AdamW, adam_update_
from .optimizer import Optimizer
from .schedulers import CosineScheduler, LRScheduler, StepDecayScheduler, WarmupCosineScheduler
from .sgd import SGD, sgd_update_

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "LRScheduler",
    "StepDecayScheduler",
    "CosineScheduler",
    "WarmupCosineScheduler",
    "sgd_update_",
    "adam_update_",
    "backend",
    "use_backend",
    "problems",
    "verification",
    "mlp",
]
__version__ = "0.1.0"
