"""Weight averaging against torch.optim.swa_utils (torch 2.13, CPU), bit for bit.

AveragedModel: random parameter sequences (float16, float32, float64 and mixed; sizes 1..70
and 0-d), at least 50 updates, every averaged array compared with ``tobytes()`` after every
update, for the default SWA, get_swa_avg_fn, get_swa_multi_avg_fn, get_ema_multi_avg_fn
and get_ema_avg_fn. SWALR: learning-rate sequences compared with ``float.hex`` for
(cos, linear) x anneal_epochs in {0, 1, 3, 10}, an SGD with 2 entries of different lr, and
a resume through state dicts.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.optim import swa_utils as theirs_swa  # noqa: E402

from numpy_optim import SGD  # noqa: E402
from numpy_optim import swa_utils as ours_swa  # noqa: E402

needs_fma = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="torch's lerp is an FMA only on AVX2/AVX512 CPUs; the bitwise claim is for those",
)


class TorchModel(torch.nn.Module):
    def __init__(self, arrays):
        super().__init__()
        self.ps = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays])

    def load(self, arrays):
        with torch.no_grad():
            for p, a in zip(self.ps, arrays):
                p.copy_(torch.from_numpy(a))


def functions(kind, decay):
    """(torch's AveragedModel kwargs, ours) for one averaging kind."""
    if kind == "swa":
        return {}, {}
    side = {"swa_avg": ("avg_fn", "get_swa_avg_fn", ()), "swa_multi": ("multi_avg_fn", "get_swa_multi_avg_fn", ()),
            "ema_multi": ("multi_avg_fn", "get_ema_multi_avg_fn", (decay,)),
            "ema_avg": ("avg_fn", "get_ema_avg_fn", (decay,))}[kind]
    key, maker, args = side
    return {key: getattr(theirs_swa, maker)(*args)}, {key: getattr(ours_swa, maker)(*args)}


def random_arrays(rng, dtypes, scale_range=3):
    shapes = [(), (1,), (int(rng.integers(1, 71)),), (int(rng.integers(1, 6)), int(rng.integers(1, 9)))]
    return [np.asarray(rng.standard_normal(shape) * 10.0 ** rng.uniform(-scale_range, scale_range)).astype(dt)
            for shape in shapes for dt in dtypes]


def run_both(kind, decay, arrays, updates, rng):
    tkw, okw = functions(kind, decay)
    model = TorchModel(arrays)
    theirs = theirs_swa.AveragedModel(model, **tkw)
    current = [a.copy() for a in arrays]
    ours = ours_swa.AveragedModel(current, **okw)
    compared = 0
    for update in range(updates):
        fresh = [np.asarray(rng.standard_normal(a.shape) * 10.0 ** rng.uniform(-3, 3)).astype(a.dtype)
                 for a in arrays]
        model.load(fresh)
        for c, f in zip(current, fresh):
            c[...] = f
        theirs.update_parameters(model)
        ours.update_parameters(current)
        assert ours.n_averaged == int(theirs.n_averaged)
        for index, (p, a) in enumerate(zip(theirs.module.ps, ours.params)):
            t = p.detach().numpy()
            assert a.tobytes() == t.tobytes(), (
                f"{kind} decay={decay}: array {index} ({a.dtype}, shape {a.shape}) differs after update "
                f"{update}: ours {a.ravel()[:3]}, torch {t.ravel()[:3]}")
            compared += a.size
    return compared


KINDS = ["swa", "swa_avg", "swa_multi", "ema_multi", "ema_avg"]
DTYPE_SETS = {"float16": [np.float16], "float32": [np.float32], "float64": [np.float64],
              "mixed": [np.float32, np.float64, np.float16]}


@needs_fma
@pytest.mark.parametrize("dtypes", list(DTYPE_SETS), ids=list(DTYPE_SETS))
@pytest.mark.parametrize("kind", KINDS)
def test_averaged_model_over_60_updates(kind, dtypes):
    rng = np.random.default_rng(KINDS.index(kind) * 10 + list(DTYPE_SETS).index(dtypes))
    compared = 0
    for decay in (0.999, 0.9, 0.5, float(rng.uniform(0.01, 0.99))):
        compared += run_both(kind, decay, random_arrays(rng, DTYPE_SETS[dtypes]), 60, rng)
        if kind in ("swa", "swa_avg", "swa_multi"):
            break                                        # decay does not matter
    print(f"BITWISE AveragedModel {kind} {dtypes}: {compared} values")


@needs_fma
@pytest.mark.parametrize("kind", ["swa", "swa_multi"])
def test_averaged_model_with_a_large_count(kind):
    # n_averaged beyond float16's and float32's exact integers: torch converts n + 1 (and
    # 1 / (n + 1)) to float32 / the dtype; ours too
    rng = np.random.default_rng(3)
    arrays = random_arrays(rng, [np.float16, np.float32, np.float64])
    tkw, okw = functions(kind, 0.9)
    model = TorchModel(arrays)
    theirs = theirs_swa.AveragedModel(model, **tkw)
    ours = ours_swa.AveragedModel(arrays, **okw)
    theirs.update_parameters(model)
    ours.update_parameters(arrays)
    for n in (2049, 3000, 2**24 + 1, 40000001):
        theirs.n_averaged.fill_(n)
        ours.n_averaged = n
        fresh = [np.asarray(rng.standard_normal(a.shape) * 5).astype(a.dtype) for a in arrays]
        model.load(fresh)
        theirs.update_parameters(model)
        ours.update_parameters(fresh)
        for p, a in zip(theirs.module.ps, ours.params):
            assert a.tobytes() == p.detach().numpy().tobytes(), (n, a.dtype)


def test_swa_multi_weight_is_float32_for_float64_in_torch():
    # the quirk reproduced: torch's get_swa_multi_avg_fn in AveragedModel weighs a float64
    # array by float32(1/3), not by the float64 1/3
    model = TorchModel([np.zeros(4)])
    theirs = theirs_swa.AveragedModel(model, multi_avg_fn=theirs_swa.get_swa_multi_avg_fn())
    for value in (0.0, 0.0, 3.0):
        model.load([np.full(4, value)])
        theirs.update_parameters(model)
    got = theirs.module.ps[0].detach().numpy()
    assert got[0] == float(np.float32(1 / 3)) * 3.0 != (1 / 3) * 3.0
    ours = ours_swa.AveragedModel(np.zeros(4), multi_avg_fn=ours_swa.get_swa_multi_avg_fn())
    for value in (0.0, 0.0, 3.0):
        ours.update_parameters(np.full(4, value))
    assert ours.params[0].tobytes() == got.tobytes()


def test_torch_ema_with_decay_zero_gives_zeros_of_two_signs():
    # the quirk not reproduced (swa_utils docstring): lerp weight 1, average +0, model -0.
    # torch's vector body gives -0, its scalar tail +0; numpy_optim -0 everywhere.
    n = 40
    model = TorchModel([np.zeros(n, np.float32)])
    theirs = theirs_swa.AveragedModel(model, multi_avg_fn=theirs_swa.get_ema_multi_avg_fn(0.0))
    theirs.update_parameters(model)
    model.load([-np.zeros(n, np.float32)])
    theirs.update_parameters(model)
    signs = np.signbit(theirs.module.ps[0].detach().numpy())
    assert signs[0] and not signs[-1]
    ours = ours_swa.AveragedModel(np.zeros(n, np.float32), multi_avg_fn=ours_swa.get_ema_multi_avg_fn(0.0))
    ours.update_parameters(np.zeros(n, np.float32))
    ours.update_parameters(-np.zeros(n, np.float32))
    assert np.signbit(ours.params[0]).all()
    assert np.array_equal(ours.params[0], theirs.module.ps[0].detach().numpy())  # equal values


def test_validation_messages_match_torchs():
    for maker in ("get_ema_multi_avg_fn", "get_ema_avg_fn"):
        with pytest.raises(ValueError) as theirs:
            getattr(theirs_swa, maker)(1.5)
        with pytest.raises(ValueError) as ours:
            getattr(ours_swa, maker)(1.5)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(AssertionError) as theirs:
        theirs_swa.AveragedModel(TorchModel([np.zeros(1)]), avg_fn=theirs_swa.get_swa_avg_fn(),
                                 multi_avg_fn=theirs_swa.get_swa_multi_avg_fn())
    with pytest.raises(ValueError) as ours:
        ours_swa.AveragedModel(np.zeros(1), avg_fn=ours_swa.get_swa_avg_fn(),
                               multi_avg_fn=ours_swa.get_swa_multi_avg_fn())
    assert str(ours.value) == str(theirs.value)


# ----- SWALR -------------------------------------------------------------------------------------------------


def optimizers():
    p1, p2 = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    theirs = torch.optim.SGD([{"params": [p1]}, {"params": [p2], "lr": 0.37}], lr=0.1, momentum=0.9)
    entries = [{"params": np.zeros(2, np.float32), "grad": np.zeros(2, np.float32)},
               {"params": np.zeros(3, np.float32), "grad": np.zeros(3, np.float32), "lr": 0.37}]
    return theirs, SGD(entries, lr=0.1, momentum=0.9)


def hexes(lrs):
    return [[float(v).hex() for v in step] for step in lrs]


def run(scheduler, optimizer, steps):
    lrs = [scheduler.get_last_lr()]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return lrs


@pytest.mark.parametrize("anneal_epochs", [0, 1, 3, 10])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("swa_lr", [0.05, [0.05, 0.3]], ids=["one-swa-lr", "two-swa-lrs"])
def test_swalr_sequences(strategy, anneal_epochs, swa_lr):
    topt, oopt = optimizers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        theirs = theirs_swa.SWALR(topt, swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
        ours = ours_swa.SWALR(oopt, swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
        expected, got = run(theirs, topt, 25), run(ours, oopt, 25)
    assert hexes(got) == hexes(expected)
    assert [g["lr"] for g in topt.param_groups] == [e["lr"] for e in oopt.param_groups]
    assert [g["swa_lr"] for g in topt.param_groups] == [e["swa_lr"] for e in oopt.param_groups]
    ours_state = ours.state_dict()
    assert ours_state.pop("class") == "SWALR"  # the one key torch's has not (load_state_dict checks it)
    assert list(ours_state) == list(theirs.state_dict())
    assert ours_state == theirs.state_dict()


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swalr_resume_through_state_dicts_continues_torchs_sequence(strategy):
    topt, _ = optimizers()
    theirs = theirs_swa.SWALR(topt, 0.05, anneal_epochs=6, anneal_strategy=strategy)
    expected = run(theirs, topt, 12)
    _, first_opt = optimizers()
    first = ours_swa.SWALR(first_opt, 0.05, anneal_epochs=6, anneal_strategy=strategy)
    head = run(first, first_opt, 4)
    saved_optimizer, saved = first_opt.state_dict(), first.state_dict()
    _, resumed_opt = optimizers()
    resumed = ours_swa.SWALR(resumed_opt, 0.05, anneal_epochs=6, anneal_strategy=strategy)
    resumed_opt.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved)
    tail = run(resumed, resumed_opt, 8)
    assert hexes(head + tail[1:]) == hexes(expected)


def test_swalr_with_another_scheduler_in_between():
    # SWALR undoes its previous step from the current lr, so a scheduler that changed it in
    # between is folded in; torch's arithmetic, step by step
    topt, oopt = optimizers()
    theirs = theirs_swa.SWALR(topt, 0.05, anneal_epochs=4)
    ours = ours_swa.SWALR(oopt, 0.05, anneal_epochs=4)
    for step in range(8):
        topt.step()
        oopt.step()
        if step % 3 == 1:
            for tg, og in zip(topt.param_groups, oopt.param_groups):
                tg["lr"] *= 0.5
                og["lr"] *= 0.5
        theirs.step()
        ours.step()
        assert hexes([ours.get_last_lr()]) == hexes([theirs.get_last_lr()]), step


def test_swalr_validation_messages_match_torchs():
    for kwargs in (dict(swa_lr=[0.1]), dict(swa_lr=0.1, anneal_strategy="exp"),
                   dict(swa_lr=0.1, anneal_epochs=-1), dict(swa_lr=0.1, anneal_epochs=2.5)):
        topt, oopt = optimizers()
        with pytest.raises(ValueError) as theirs:
            theirs_swa.SWALR(topt, **kwargs)
        with pytest.raises(ValueError) as ours:
            ours_swa.SWALR(oopt, **kwargs)
        assert str(ours.value) == str(theirs.value), kwargs
        assert all("swa_lr" not in e for e in oopt.param_groups), kwargs
        # torch writes swa_lr into its groups before checking the strategy and the epochs
        assert all(("swa_lr" in g) == ("anneal_strategy" in kwargs or "anneal_epochs" in kwargs)
                   for g in topt.param_groups), kwargs
