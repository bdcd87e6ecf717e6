"""repr of the optimizers, the schedulers and AveragedModel: one line, the class, the
hyperparameters or constructor arguments, and where it is (entries and step; last_epoch
and last lr). The expected strings are written out by hand from the documented defaults
(torch's), and the loop over every optimizer reads the defaults from the constructor's
signature, not from the optimizer.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest

import numpy_optim
from numpy_optim import lr_scheduler as L
from numpy_optim import swa_utils


def entry(n=2, **overrides):
    return {"params": np.ones(n), "grad": np.full(n, 0.5), **overrides}


def sgd(*entries_, **kwargs):
    return numpy_optim.SGD(list(entries_) or [entry()], **{"lr": 0.1, **kwargs})


OPTIMIZERS = [getattr(numpy_optim, name) for name in numpy_optim.__all__
              if isinstance(getattr(numpy_optim, name), type) and issubclass(getattr(numpy_optim, name),
                                                                            numpy_optim.Optimizer)
              and getattr(numpy_optim, name) is not numpy_optim.Optimizer]


def floats(value):
    """An int default of a float hyperparameter as the float the optimizer keeps (LBFGS's lr=1,
    Rprop's step_sizes=(1e-6, 50))."""
    if isinstance(value, tuple):
        return tuple(map(floats, value))
    return float(value) if type(value) is int else value


def one_step(optimizer):
    if isinstance(optimizer, numpy_optim.LBFGS):
        def closure():  # f = sum(x^2) / 2
            for e in optimizer.param_groups:
                e["grad"][...] = e["params"]
            return float(sum((e["params"] ** 2).sum() for e in optimizer.param_groups) / 2)

        optimizer.step(closure)
    else:
        optimizer.step()


# ----- optimizers ------------------------------------------------------------------------


def test_sgd_repr_exact():
    assert repr(sgd(momentum=0.9)) == (
        "SGD(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False; 1 entry, step 0)"
    )


def test_adam_repr_exact_counts_entries_overrides_and_steps():
    optimizer = numpy_optim.Adam([entry(), entry(3, weight_decay=0.1), entry(4)], lr=1e-3)
    head = ("Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, maximize=False, "
            "decoupled_weight_decay=False; 3 entries (1 with overrides), ")
    assert repr(optimizer) == head + "step 0)"
    optimizer.step()
    optimizer.step()
    assert repr(optimizer) == head + "step 2)"
    assert str(optimizer) == repr(optimizer)


def test_lbfgs_repr_exact_and_its_step_counts_step_calls():
    optimizer = numpy_optim.LBFGS([entry(3)])
    head = ("LBFGS(lr=1.0, max_iter=20, max_eval=25, tolerance_grad=1e-07, tolerance_change=1e-09, "
            "history_size=100, line_search_fn=None; 1 entry, ")
    assert repr(optimizer) == head + "step 0)"
    one_step(optimizer)
    assert repr(optimizer) == head + "step 1)"


def test_empty_optimizer_and_numpy_values():
    assert repr(numpy_optim.Rprop([], lr=np.float32(0.5))) == (
        "Rprop(lr=0.5, etas=(0.5, 1.2), step_sizes=(1e-06, 50.0), maximize=False; 0 entries, step 0)"
    )


def test_arrays_are_never_printed():
    optimizer = sgd(entry(1000), entry(5))
    optimizer.defaults["momentum"] = np.arange(3.0)  # (refused by the next step; a repr still shows it)
    text = repr(optimizer)
    assert "momentum=<ndarray (3,) float64>" in text
    assert "array(" not in text and "1." not in text.split(";")[1]
    assert text.endswith("; 2 entries, step 0)")


def test_scheduler_keys_are_not_overrides_but_an_own_lr_is():
    optimizer = sgd(entry(), entry(initial_lr=0.1), entry(lr=0.2))
    assert repr(optimizer).endswith("; 3 entries (1 with overrides), step 0)")


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_every_optimizer_shows_its_class_defaults_entries_and_step(cls):
    optimizer = cls([entry(3), entry(2)])
    text = repr(optimizer)
    assert "\n" not in text and text.startswith(f"{cls.__name__}(") and text.endswith(")")
    for name, parameter in inspect.signature(cls).parameters.items():
        if name == "params":
            continue
        value = parameter.default
        if name in ("fused", "state_dtype", "master_weights"):  # left out at their defaults (torch's arithmetic)
            assert value in (False, None) and f"{name}=" not in text, (name, text)
            continue
        if cls is numpy_optim.LBFGS and name == "max_eval":
            value = 20 * 5 // 4  # None: max_iter * 5 // 4, as in torch
        assert f"{name}={value!r}" in text or f"{name}={floats(value)!r}" in text, (name, text)
    for name in optimizer.defaults:  # AdamW's decoupled_weight_decay=True too
        assert f"{name}=" in text or name in ("fused", "state_dtype", "master_weights")
    assert text.endswith("; 2 entries, step 0)")
    one_step(optimizer)
    one_step(optimizer)
    assert text.replace("step 0)", "step 2)") == repr(optimizer)


def test_every_optimizer_class_is_covered():
    assert len(OPTIMIZERS) == 13
    assert {c.__name__ for c in OPTIMIZERS} == {
        "SGD", "Adam", "AdamW", "Adadelta", "Adafactor", "Adagrad", "Adamax", "ASGD", "LBFGS", "NAdam", "RAdam",
        "RMSprop", "Rprop"}


# ----- torch's schedulers (numpy_optim.lr_scheduler, swa_utils.SWALR) ----------------------


def warmup(epoch):
    return min(1.0, (epoch + 1) / 4)


def test_step_lr_repr_exact_follows_the_schedule():
    optimizer = sgd()
    scheduler = L.StepLR(optimizer, step_size=1, gamma=0.5)
    assert repr(scheduler) == "StepLR(optimizer=SGD, step_size=1, gamma=0.5; last_epoch 0, last_lr [0.1])"
    optimizer.step()
    scheduler.step()
    assert repr(scheduler) == "StepLR(optimizer=SGD, step_size=1, gamma=0.5; last_epoch 1, last_lr [0.05])"


def test_functions_by_name_lists_and_numpy_values():
    optimizer = sgd(entry(), entry(), lr=0.5)
    scheduler = L.LambdaLR(optimizer, [warmup, lambda epoch: 1.0])  # 0.5 * 1/4, 0.5 * 1
    assert repr(scheduler) == (
        "LambdaLR(optimizer=SGD, lr_lambda=[warmup, <lambda>]; last_epoch 0, last_lr [0.125, 0.5])")
    scheduler = L.MultiStepLR(sgd(), milestones=np.array([2, 4]), gamma=np.float64(0.5))
    assert repr(scheduler) == (
        "MultiStepLR(optimizer=SGD, milestones=<ndarray (2,) int64>, gamma=0.5; last_epoch 0, last_lr [0.1])")


def test_an_iterator_argument_is_not_shown_by_its_address():
    scheduler = L.MultiStepLR(sgd(), milestones=iter([2, 4]))
    assert repr(scheduler) == (
        "MultiStepLR(optimizer=SGD, milestones=<list_iterator object>, gamma=0.1; last_epoch 0, last_lr [0.1])")


def test_a_long_list_is_cut_short():
    optimizer = sgd(*[entry() for _ in range(6)])
    scheduler = L.ExponentialLR(optimizer, gamma=0.9)
    assert repr(scheduler) == (
        "ExponentialLR(optimizer=SGD, gamma=0.9; last_epoch 0, last_lr [0.1, 0.1, 0.1, 0.1, ... 6 items])")


def test_reduce_lr_on_plateau_repr_exact_shows_its_counters():
    optimizer = sgd(lr=0.5)
    scheduler = L.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    head = ("ReduceLROnPlateau(optimizer=SGD, mode='min', factor=0.5, patience=0, threshold=0.0001, "
            "threshold_mode='rel', cooldown=0, min_lr=0, eps=1e-08; ")
    assert repr(scheduler) == head + "last_epoch 0, last_lr [0.5], best inf, num_bad_epochs 0, cooldown_counter 0)"
    scheduler.step(2.0)
    scheduler.step(3.0)  # worse: one bad epoch > patience 0, the lr is halved and the count reset
    assert repr(scheduler) == head + "last_epoch 2, last_lr [0.25], best 2.0, num_bad_epochs 0, cooldown_counter 0)"


def test_sequential_lr_shows_its_members_as_they_are_now():
    optimizer = sgd()
    first = L.ConstantLR(optimizer, factor=0.5, total_iters=2)
    second = L.ExponentialLR(optimizer, gamma=0.5)
    scheduler = L.SequentialLR(optimizer, [first, second], milestones=[2])
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    # epoch 3: ExponentialLR restarted at the milestone (epoch 2: 0.1) and stepped once: 0.05
    assert repr(scheduler) == (
        "SequentialLR(optimizer=SGD, schedulers=[ConstantLR(optimizer=SGD, factor=0.5, total_iters=2; "
        "last_epoch 1, last_lr [0.05]), ExponentialLR(optimizer=SGD, gamma=0.5; last_epoch 1, last_lr [0.05])], "
        "milestones=[2]; last_epoch 3, last_lr [0.05])"
    )


def test_chained_scheduler_shows_its_members():
    optimizer = sgd()
    scheduler = L.ChainedScheduler([L.ConstantLR(optimizer, factor=0.5, total_iters=1),
                                    L.ExponentialLR(optimizer, gamma=0.5)])
    assert repr(scheduler) == (
        "ChainedScheduler(schedulers=[ConstantLR(optimizer=SGD, factor=0.5, total_iters=1; last_epoch 0, "
        "last_lr [0.05]), ExponentialLR(optimizer=SGD, gamma=0.5; last_epoch 0, last_lr [0.05])], "
        "optimizer=None; last_lr [0.05])"
    )


def test_swalr_repr_exact():
    scheduler = swa_utils.SWALR(sgd(), swa_lr=0.05, anneal_epochs=2, anneal_strategy="linear")
    assert repr(scheduler) == (
        "SWALR(optimizer=SGD, swa_lr=0.05, anneal_epochs=2, anneal_strategy='linear'; last_epoch 0, last_lr [0.1])")


def test_cyclic_lr_names_its_scale_fn_and_momentum_optimizer():
    def halving(x):
        return 0.5 ** x

    optimizer = numpy_optim.SGD([entry()], lr=0.1, momentum=0.9)
    text = repr(L.CyclicLR(optimizer, base_lr=0.01, max_lr=0.1, step_size_up=4, scale_fn=halving))
    assert text == ("CyclicLR(optimizer=SGD, base_lr=0.01, max_lr=0.1, step_size_up=4, step_size_down=None, "
                    "mode='triangular', gamma=1.0, scale_fn=halving, scale_mode='cycle', cycle_momentum=True, "
                    "base_momentum=0.8, max_momentum=0.9; last_epoch 0, last_lr [0.01])")


SCHEDULERS = {
    "LambdaLR": lambda o: L.LambdaLR(o, warmup),
    "MultiplicativeLR": lambda o: L.MultiplicativeLR(o, lambda e: 0.9),
    "StepLR": lambda o: L.StepLR(o, 3),
    "MultiStepLR": lambda o: L.MultiStepLR(o, (m for m in [2, 5])),  # a generator: consumed by __init__
    "ConstantLR": lambda o: L.ConstantLR(o),
    "LinearLR": lambda o: L.LinearLR(o),
    "ExponentialLR": lambda o: L.ExponentialLR(o, 0.9),
    "SequentialLR": lambda o: L.SequentialLR(o, [L.StepLR(o, 2), L.ExponentialLR(o, 0.9)], [2]),
    "PolynomialLR": lambda o: L.PolynomialLR(o),
    "CosineAnnealingLR": lambda o: L.CosineAnnealingLR(o, 10),
    "ChainedScheduler": lambda o: L.ChainedScheduler([L.StepLR(o, 2), L.ExponentialLR(o, 0.9)]),
    "ReduceLROnPlateau": lambda o: L.ReduceLROnPlateau(o),
    "CyclicLR": lambda o: L.CyclicLR(o, 0.01, 0.1),
    "OneCycleLR": lambda o: L.OneCycleLR(o, 0.1, total_steps=10),
    "CosineAnnealingWarmRestarts": lambda o: L.CosineAnnealingWarmRestarts(o, 5),
}


def test_every_scheduler_class_is_covered():
    assert sorted(SCHEDULERS) == sorted(set(L.__all__) - {"LRScheduler"})


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_repr_and_its_state_dict_unchanged(name):
    optimizer = numpy_optim.SGD([entry(), entry()], lr=0.1, momentum=0.9)
    scheduler = SCHEDULERS[name](optimizer)
    text = repr(scheduler)
    assert text.startswith(f"{name}(") and text.endswith(")") and "\n" not in text
    assert " at 0x" not in text and "array(" not in text  # no addresses, no arrays
    assert "last_lr [0.1" in text or "last_lr [0.0" in text
    if name != "ChainedScheduler":
        assert "optimizer=SGD" in text.split("(", 1)[1][:len("optimizer=SGD")]
        assert "last_epoch" in text.rsplit(";", 1)[1]
    # The recorded arguments are no part of the state dict, and copies keep them.
    state = scheduler.state_dict()
    assert "_arguments" not in state and all("_arguments" not in s for s in state.get("_schedulers", []))
    scheduler.load_state_dict(state)
    assert repr(copy.deepcopy(scheduler)) == text


def test_a_scheduler_signature_is_still_its_constructor():
    assert list(inspect.signature(L.LRScheduler).parameters) == ["optimizer", "last_epoch"]
    assert list(inspect.signature(L.StepLR).parameters) == ["optimizer", "step_size", "gamma", "last_epoch"]


# ----- the specification's schedules and AveragedModel -------------------------------------


def test_spec_schedules_repr_is_their_constructor_call():
    cases = {
        "StepDecayScheduler(initial_lr=0.1, decay_factor=0.5, step_size=10)":
            numpy_optim.StepDecayScheduler(initial_lr=0.1, decay_factor=0.5, step_size=10),
        "CosineScheduler(max_lr=1.0, min_lr=0.0, total_steps=100)":
            numpy_optim.CosineScheduler(max_lr=1, min_lr=0, total_steps=100),
        "WarmupCosineScheduler(max_lr=0.001, min_lr=1e-05, warmup_steps=10, total_steps=110)":
            numpy_optim.WarmupCosineScheduler(max_lr=1e-3, min_lr=1e-5, warmup_steps=10, total_steps=110),
    }
    for expected, schedule in cases.items():
        assert repr(schedule) == expected
        rebuilt = eval(expected, vars(numpy_optim))
        assert [rebuilt.get_lr(t) for t in range(0, 150, 7)] == [schedule.get_lr(t) for t in range(0, 150, 7)]


def test_averaged_model_repr_exact():
    averaged = swa_utils.AveragedModel([np.zeros(2), np.zeros(3)], avg_fn=swa_utils.get_ema_avg_fn(0.9))
    assert repr(averaged) == "AveragedModel(avg_fn=ema_update, multi_avg_fn=None; 2 arrays, n_averaged 0)"
    averaged.update_parameters([np.ones(2), np.ones(3)])
    assert repr(averaged).endswith("; 2 arrays, n_averaged 1)")
