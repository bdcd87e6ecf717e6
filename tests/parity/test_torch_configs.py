"""torch's own optimizer test configurations, run against numpy_optim.

``torch.testing._internal.common_optimizers`` lists, per optimizer, the configurations
torch's test suite runs (``optim_inputs_func_<name>``) and the inputs it must refuse
(``optim_error_inputs_func_<name>``). Every registry pair runs all of them here
(importing that module needs ``expecttest``):

* **Configurations**: each one's kwargs drive both sides through the parity harness
  (:func:`parity.run_case`: every parameter and buffer after every step, judged by the
  tolerance model of parity/tolerance.py), in float32 and float64, open loop (recorded
  gradients) and closed loop (a quadratic), on parameters of several shapes. Translation:
  torch-only switches (``foreach``, ``fused``, ``capturable``, ``differentiable``) are
  not numpy_optim arguments and are dropped; a 1-element tensor ``lr`` becomes its value
  (numpy_optim takes Python numbers), on both sides; where numpy_optim's default differs
  on purpose (SGD's lr, parity/registry.py), torch's is passed to both.
* **Errors**: each refused input must be refused by numpy_optim too, before anything
  changes, with the same exception type and a message matching torch's pattern, except
  for the translations in :func:`expected_refusal` (torch-only input forms, and two
  places where numpy_optim is stricter), each with its reason.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
common = pytest.importorskip("torch.testing._internal.common_optimizers")  # needs expecttest

import parity  # noqa: E402
from parity.registry import OPTIMIZERS  # noqa: E402
from parity.strategies import CaseSpec  # noqa: E402

TORCH_ONLY = {"foreach", "fused", "capturable", "differentiable"}
SHAPES = [(3, 4), (7,), (), (2, 3, 5)]
STEPS = 30


def torch_inputs(pair: str) -> list[Any]:
    return getattr(common, f"optim_inputs_func_{pair.lower()}")("cpu", torch.float32)


def torch_error_inputs(pair: str) -> list[Any]:
    return getattr(common, f"optim_error_inputs_func_{pair.lower()}")("cpu", torch.float32)


def ours_kwargs(pair: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A torch configuration's kwargs as numpy_optim takes them (see the module docstring).
    Where a default differs on purpose (SGD's lr), torch's default is passed explicitly."""
    result = {name: theirs for name, (_, theirs) in pair.default_differences.items()
              if name not in kwargs and name not in TORCH_ONLY}   # fused=None: torch's "not fused"
    for key, value in kwargs.items():
        if key in TORCH_ONLY:
            continue
        if isinstance(value, torch.Tensor):
            assert key == "lr" and value.numel() == 1, f"untranslated tensor argument {key}={value!r}"
            value = value.item()
        result[key] = value
    return result


CONFIGS = [
    pytest.param(name, index, dtype, closed_loop,
                 id=f"{name}-{config.desc.replace(' ', '_')}-{dtype}-{'closed' if closed_loop else 'open'}")
    for name in OPTIMIZERS
    for index, config in enumerate(torch_inputs(name))
    for dtype in ("float32", "float64")
    # a closure optimizer (LBFGS) has no open loop: its closure computes the gradients
    for closed_loop in ((True,) if OPTIMIZERS[name].closure else (False, True))
]


@pytest.mark.parametrize("name, index, dtype, closed_loop", CONFIGS)
def test_torch_configuration_tracks_torch(name, index, dtype, closed_loop):
    pair = OPTIMIZERS[name]
    config = torch_inputs(name)[index]
    assert config.params is None, f"{name} {config.desc}: a configuration with its own params needs translating"
    spec = CaseSpec(
        pair=name, dtype=dtype, hyperparameters=ours_kwargs(pair, config.kwargs), overrides=[{} for _ in SHAPES],
        shapes=SHAPES, gradient_kinds=["normal", "mixed", "normal", "sparse"], steps=STEPS, seed=index,
        closed_loop=closed_loop,
    )
    results = parity.run_case(spec, pair.ours, pair.theirs, name=name, buffers=pair.buffers, fused=pair.fused,
                              torch_has_step=pair.torch_has_step, **({"closure": True} if pair.closure else {}))
    judged = sum(c.steps for comparisons in results.values() for c in comparisons)
    assert judged > 0, f"{name} {config.desc}: nothing was compared"
    for comparisons in results.values():
        assert all(c.violation is None and c.worst_ratio <= 1.0 for c in comparisons)


# ----- refused inputs ------------------------------------------------------------------

def expected_refusal(error_input: Any) -> tuple[Any, str | None, str]:
    """What numpy_optim must raise for one of torch's refused inputs: (type, pattern or None,
    the reason when it differs from torch's)."""
    config = error_input.optimizer_error_input
    if any(isinstance(v, torch.Tensor) for v in config.kwargs.values()) or any(
        isinstance(v, (tuple, list)) and any(isinstance(x, torch.Tensor) for x in v) for v in config.kwargs.values()
    ):
        return TypeError, None, "numpy_optim takes Python numbers: a tensor hyperparameter is a TypeError"
    if error_input.error_type is UserWarning:  # torch warns about a group with duplicate parameters
        return ValueError, None, "numpy_optim refuses an array listed twice; torch only warns"
    if "names" in config.desc:  # (LBFGS may first refuse the other group's own lr: ValueError)
        return (TypeError, ValueError), None, "numpy_optim entries are dicts: a (name, param) tuple is a TypeError"
    if "complex" in config.desc:
        return TypeError, None, "numpy_optim refuses complex parameters when it is built, torch at step()"
    if config.desc in BASE_CLASS_CHECKS:
        return error_input.error_type, None, "the contract is a list of dicts: numpy_optim words it its own way"
    return error_input.error_type, error_input.error_regex, ""


#: The refusals torch's base class makes for every optimizer (the params argument itself).
BASE_CLASS_CHECKS = {e.optimizer_error_input.desc for e in common.get_error_inputs_for_all_optims("cpu", torch.float32)}


def ours_params(params: Any) -> Any:
    """torch's ``params`` argument of an error input, in numpy_optim's contract (one tensor
    given twice becomes one array given twice)."""
    arrays: dict[int, np.ndarray] = {}

    def entry(p: torch.Tensor, **overrides: Any) -> dict[str, Any]:
        array = arrays.setdefault(id(p), p.detach().numpy().copy())
        return {"params": array, "grad": np.zeros_like(array), **overrides}

    if params is None:
        return [entry(torch.randn(2, 3)), entry(torch.randn(4))]
    if isinstance(params, torch.Tensor):
        return params.detach().numpy().copy()  # a bare array instead of a list of entries
    result: list[Any] = []
    for item in params:
        if isinstance(item, dict):
            group = item["params"] if isinstance(item["params"], (list, tuple)) else [item["params"]]
            overrides = {k: v for k, v in item.items() if k != "params"}
            result.extend((p[0], entry(p[1])) if isinstance(p, tuple) else entry(p, **overrides) for p in group)
        elif isinstance(item, tuple):
            result.append((item[0], entry(item[1])))
        else:
            result.append(entry(item))
    return result


ERRORS = [
    pytest.param(name, index, id=f"{name}-{e.optimizer_error_input.desc.replace(' ', '_')}")
    for name in OPTIMIZERS
    for index, e in enumerate(torch_error_inputs(name))
]


@pytest.mark.parametrize("name, index", ERRORS)
def test_torch_refused_input_is_refused(name, index):
    pair = OPTIMIZERS[name]
    error_input = torch_error_inputs(name)[index]
    config = error_input.optimizer_error_input
    params = ours_params(config.params)  # before torch sees them: torch fills its group dicts in place
    # torch itself refuses it (or, for UserWarning, warns) as its test suite says
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error_input.error_type, match=error_input.error_regex or None):
            theirs = config.params if config.params is not None else [torch.nn.Parameter(torch.randn(2, 3))]
            optimizer = pair.theirs(theirs, **config.kwargs)
            if error_input.error_on == common.OptimizerErrorEnum.STEP_ERROR:
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        p.grad = torch.zeros_like(p)
                optimizer.step(*((lambda: 0.0,) if pair.closure else ()))
    error_type, pattern, reason = expected_refusal(error_input)
    if "complex" in config.desc:
        params = [{"params": np.zeros(3, np.complex128), "grad": np.zeros(3, np.complex128)}]
    snapshot = [e["params"].copy() for e in params if isinstance(e, dict)] if isinstance(params, list) else None
    with pytest.raises(error_type) as raised:
        pair.ours(params, **{k: v for k, v in config.kwargs.items() if k not in TORCH_ONLY})
    message = str(raised.value)
    if pattern:
        assert re.search(pattern, message), f"ours: {message!r}; torch's pattern: {pattern!r}"
    else:  # numpy_optim's own wording: it names what it refused
        assert message and ("params" in message or "lr" in message or "beta" in message), (reason, message)
    if snapshot is not None:  # nothing was changed
        assert all(np.array_equal(e["params"], s) for e, s in zip((e for e in params if isinstance(e, dict)),
                                                                    snapshot))
