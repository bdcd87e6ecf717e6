"""Meta-tests: every public numpy_optim optimizer and scheduler has a torch pair, and the
paired constructors agree on names and defaults except where the registry documents why."""

import inspect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_optim
from parity.harness import scheduler_kwargs
from parity.registry import OPTIMIZERS, SCHEDULERS


def _public(base: type) -> set[type]:
    return {
        obj for name in numpy_optim.__all__
        if inspect.isclass(obj := getattr(numpy_optim, name)) and issubclass(obj, base) and obj is not base
    }


def test_every_public_optimizer_has_a_torch_pair():
    paired = {p.ours for p in OPTIMIZERS.values()}
    missing = _public(numpy_optim.Optimizer) - paired
    assert not missing, f"public optimizers without a parity pair in parity/registry.py: {missing}"


def test_every_public_scheduler_has_a_torch_pair():
    paired = {p.ours for p in SCHEDULERS.values()}
    missing = _public(numpy_optim.LRScheduler) - paired
    assert not missing, f"public schedulers without a parity pair in parity/registry.py: {missing}"


def _constructor(cls: type) -> dict[str, object]:
    parameters = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name not in ("self", "params")}


# torch-only switches that select torch's implementation, not the algorithm (numpy_optim
# has torch's ``fused`` where torch has fused CPU kernels: the FUSED pairs)
TORCH_ONLY = {"foreach", "capturable", "differentiable"}


@pytest.mark.parametrize("pair", OPTIMIZERS.values(), ids=list(OPTIMIZERS))
def test_paired_constructor_names_match_torch(pair):
    ours, theirs = _constructor(pair.ours), _constructor(pair.theirs)
    ours = {k: v for k, v in ours.items() if k not in pair.beyond_torch}
    theirs = {pair.translate.get(k, k): v for k, v in theirs.items() if k not in TORCH_ONLY}
    assert set(ours) == set(theirs), f"{pair.name}: ours {sorted(ours)} vs torch {sorted(theirs)}"


@pytest.mark.parametrize("pair", OPTIMIZERS.values(), ids=list(OPTIMIZERS))
def test_paired_constructor_defaults_match_torch_except_documented(pair):
    ours, theirs = _constructor(pair.ours), _constructor(pair.theirs)
    for name, default in ours.items():
        if name in pair.beyond_torch:
            continue
        expected = theirs[pair.translate.get(name, name)]
        if name in pair.default_differences:
            documented_ours, documented_torch = pair.default_differences[name]
            assert (default, expected) == (documented_ours, documented_torch), (
                f"{pair.name}.{name}: the documented difference {pair.default_differences[name]} is stale: "
                f"ours {default!r}, torch {expected!r}"
            )
        else:
            assert default == expected, f"{pair.name}.{name}: default {default!r}, torch's {expected!r}"


def test_only_sgd_lr_and_fused_defaults_differ_from_torch():
    differences = {(name, key) for name, p in OPTIMIZERS.items() for key in p.default_differences}
    assert differences == {("SGD", "lr")} | {(name, "fused") for name in ("SGD", "Adam", "AdamW", "Adagrad")}


@pytest.mark.parametrize("pair", OPTIMIZERS.values(), ids=list(OPTIMIZERS))
def test_strategies_draw_every_hyperparameter_of_the_constructor(pair):
    # fused=True is drawn as pairs of its own (registry.FUSED); numpy_optim's own keywords have no torch side
    fused = {"fused"} if pair.fused else set()
    assert set(pair.hyperparameters) | set(pair.beyond_torch) | fused == set(_constructor(pair.ours))


@pytest.mark.parametrize("pair", SCHEDULERS.values(), ids=list(SCHEDULERS))
@given(data=st.data())
@settings(max_examples=5)
def test_scheduler_strategy_draws_exactly_the_constructor_arguments(pair, data):
    kwargs = data.draw(scheduler_kwargs(pair.name), label="kwargs")
    assert set(kwargs) == set(_constructor(pair.ours))
    pair.ours(**kwargs)  # and they are valid
