"""Per-entry hyperparameter overrides (torch's parameter groups).

An entry's own hyperparameters must have exactly the effect of running a separate
optimizer built with them: the oracle is that separate optimizer, compared bitwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from numpy_optim import SGD, Adam, AdamW

DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def make(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [{"params": rng.standard_normal(s).astype(dtype), "grad": np.zeros(s, dtype)} for s in shapes]


def run_together_and_apart(cls, defaults, overrides, dtype, steps=5):
    """Run one optimizer over entries with overrides, and one optimizer per entry with
    {**defaults, **override}; return both sets of entries and optimizers."""
    shapes = [(4, 3), (3,), ()][: len(overrides)]
    together = make(shapes, dtype)
    for entry, override in zip(together, overrides):
        entry.update(override)
    apart = [[{"params": e["params"].copy(), "grad": e["grad"].copy()}] for e in together]
    opt = cls(together, **defaults)
    singles = [cls(entries, **{**defaults, **override}) for entries, override in zip(apart, overrides)]
    rng = np.random.default_rng(1)
    for _ in range(steps):
        for entry, single in zip(together, apart):
            entry["grad"][...] = rng.standard_normal(entry["grad"].shape)
            single[0]["grad"][...] = entry["grad"]
        opt.step()
        for single in singles:
            single.step()
    return together, apart, opt, singles


CASES = [
    pytest.param(AdamW, {"lr": 0.01, "weight_decay": 0.1}, [{}, {"weight_decay": 0.0}, {"weight_decay": 0.0}],
                 id="AdamW-no-decay-on-biases"),
    pytest.param(Adam, {"lr": 0.01}, [{"lr": 0.1}, {}, {"lr": 0.0}], id="Adam-own-lr"),
    pytest.param(Adam, {"lr": 0.01}, [{"betas": (0.5, 0.9)}, {"eps": 1e-3}, {"amsgrad": True}],
                 id="Adam-betas-eps-amsgrad"),
    pytest.param(SGD, {"lr": 0.05}, [{"momentum": 0.9}, {"lr": 0.5, "weight_decay": 0.1}, {"maximize": True}],
                 id="SGD-momentum-lr-maximize"),
    pytest.param(SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}, [{}, {"nesterov": False, "dampening": 0.5}, {}],
                 id="SGD-nesterov-off-for-one"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, defaults, overrides", CASES)
def test_entry_override_equals_a_separate_optimizer_with_those_hyperparameters(cls, defaults, overrides, dtype):
    together, apart, opt, singles = run_together_and_apart(cls, defaults, overrides, dtype)
    for index, (entry, single) in enumerate(zip(together, apart)):
        assert entry["params"].tobytes() == single[0]["params"].tobytes(), (
            f"{cls.__name__} {defaults} params[{index}] with override {overrides[index]}"
        )
        own = opt.state.get(index, {})
        other = singles[index].state.get(0, {})
        assert own.keys() == other.keys()
        assert all(own[name].tobytes() == other[name].tobytes() for name in own)


def test_adamw_entry_with_zero_weight_decay_is_not_decayed_while_others_are():
    lr, lam = 0.01, 0.1
    w = np.full(3, 2.0)
    b = np.full(3, 2.0)
    opt = AdamW(
        [{"params": w, "grad": np.zeros(3)}, {"params": b, "grad": np.zeros(3), "weight_decay": 0.0}],
        lr=lr, weight_decay=lam,
    )
    for _ in range(10):
        opt.step()  # zero gradient: only decay can move anything
    np.testing.assert_array_equal(b, 2.0)
    np.testing.assert_allclose(w, 2.0 * (1 - lr * lam) ** 10, rtol=1e-14)


def test_entry_with_its_own_lr_uses_it_hand_computed():
    x, y = np.array([3.0]), np.array([3.0])
    SGD([{"params": x, "grad": np.array([6.0])}, {"params": y, "grad": np.array([6.0]), "lr": 0.01}], lr=0.1).step()
    assert x[0] == pytest.approx(2.4, rel=1e-15)
    assert y[0] == pytest.approx(2.94, rel=1e-15)


def test_override_changed_between_steps_takes_effect_at_the_next_step():
    x = np.array([3.0])
    entry = {"params": x, "grad": np.array([1.0])}
    opt = SGD([entry], lr=0.1)
    opt.step()
    entry["lr"] = 0.5
    opt.step()
    del entry["lr"]
    opt.step()
    assert x[0] == pytest.approx(3.0 - 0.1 - 0.5 - 0.1, rel=1e-15)


def test_changing_optimizer_lr_does_not_touch_entries_with_their_own_lr():
    x, y = np.array([1.0]), np.array([1.0])
    opt = SGD([{"params": x, "grad": np.array([1.0])}, {"params": y, "grad": np.array([1.0]), "lr": 0.01}], lr=0.1)
    opt.lr = 0.2
    opt.step()
    assert x[0] == pytest.approx(0.8, rel=1e-15)
    assert y[0] == pytest.approx(0.99, rel=1e-15)


def test_entries_with_equal_looking_overrides_are_still_told_apart_on_the_reused_plan():
    """The plan resolves entries with the same overrides once; values that compare equal but
    validate or compute differently must not share a resolution."""
    import numpy_optim

    entries = [{"params": np.full(3, -0.0), "grad": np.ones(3), "maximize": True, "lr": 0.1} for _ in range(2)]
    opt = numpy_optim.SGD(entries)
    opt.step()
    opt.step()  # the plan is kept from here on
    entries[1]["maximize"] = 1  # == True, but not a bool
    with pytest.raises(TypeError, match=r"params\[1\]: Invalid maximize: 1"):
        opt.step()
    # lr 0.0 and -0.0 compare equal, but the update -lr * g tells them apart on a -0.0 parameter
    for entry, lr in zip(entries, (0.0, -0.0)):
        entry.update(params=np.full(3, -0.0), lr=lr, maximize=False)
    opt = numpy_optim.SGD(entries)
    opt.step()
    opt.step()
    alone = []
    for lr in (0.0, -0.0):  # each in an optimizer of its own: nothing to share
        single = [{"params": np.full(3, -0.0), "grad": np.ones(3), "lr": lr}]
        numpy_optim.SGD(single).step()
        alone.append(single[0]["params"])
    assert np.signbit(alone[0]).all() and not np.signbit(alone[1]).any()  # the two lrs give different zeros
    assert [e["params"].tobytes() for e in entries] == [a.tobytes() for a in alone]
