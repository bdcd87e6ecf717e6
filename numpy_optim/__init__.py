"""numpy_optim: NumPy optimizers that match torch.optim, updating parameters in place."""

from . import lr_scheduler, mlp, problems, swa_utils, verification
from ._backend import backend, use_backend
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW, adam_update_
from .adamax import Adamax
from .asgd import ASGD
from .checkpoint import load, save
from .clip_grad import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .lbfgs import LBFGS
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedulers import CosineScheduler, LRScheduler, StepDecayScheduler, WarmupCosineScheduler
from .sgd import SGD, sgd_update_

__all__ = [
    "load",
    "save",
    "SGD",
    "Adam",
    "AdamW",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adamax",
    "ASGD",
    "LBFGS",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
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
    "lr_scheduler",
    "swa_utils",
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "get_total_norm",
    "memory",
    "estimate_training_memory",
    "memory_table",
    "state_bytes",
    "quantization",
]

#: Names imported on first use (PEP 562), so that ``python -m numpy_optim.memory`` runs the
#: module once, not after ``import numpy_optim`` has already imported it.
_LAZY = {"memory": ("memory", None), "quantization": ("quantization", None),
         "estimate_training_memory": ("memory", "estimate_training_memory"),
         "memory_table": ("memory", "memory_table"), "state_bytes": ("memory", "state_bytes")}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'numpy_optim' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(f".{module_name}", __name__)
    return module if attribute is None else getattr(module, attribute)
__version__ = "0.1.0"
