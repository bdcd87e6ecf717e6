"""Adamax, ASGD and Rprop against torch.optim 2.13 (CPU): bit for bit, float32 and float64.

None of the three takes a square root in torch's single-tensor path, and every multiply-add
torch fuses is rounded once on our side too (float64 through the exact emulation of
numpy_optim/_fma.py), so the claim is bit-identical trajectories: parameters and every
state buffer (ASGD's 0-d float32 ``eta`` and ``mu`` included), after every one of 200
steps, on shapes from 0-d to sizes with a vector body and a scalar tail (torch's loops
take 16 float32 / 8 float64 elements at a time; the rest go through its scalar code), on
both numpy_optim backends. Learning rates changed mid-run reach ASGD one step late and
Rprop not at all, on both sides.

Where bit equality does not hold, a test below shows why:

* torch's ``lerp`` with a weight that rounds to 1 (Adamax with ``beta1`` ~ 0) gives the
  zero of ``0 * d + (-0.0)`` a different sign in its vector body and in its scalar tail;
  numpy_optim computes the vector body's ``fma(w - 1, d, g)`` everywhere.
* ASGD with a negative decay base and a fractional ``alpha``: torch goes on with the real
  part of a complex number; numpy_optim refuses the step.

The FMA claims hold on CPUs where torch fuses multiply-adds (capability AVX2 or AVX512).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from numpy_optim import use_backend  # noqa: E402
from numpy_optim.adamax import Adamax  # noqa: E402
from numpy_optim.asgd import ASGD  # noqa: E402
from numpy_optim.rprop import Rprop  # noqa: E402

CAPABILITY = torch.backends.cpu.get_cpu_capability()
pytestmark = pytest.mark.skipif(
    CAPABILITY not in ("AVX2", "AVX512"),
    reason=f"torch fuses no multiply-adds on this CPU (capability {CAPABILITY}); the bitwise claim is for FMA CPUs",
)

#: 0-d, and sizes 1, 7, 17 (16 + 1), 20 (16 + 4), 40 (32 + 8), 135 (128 + 7) elements.
SHAPES = [(), (1,), (7,), (17,), (4, 5), (40,), (3, 45)]
STEPS = 200
BACKENDS = [pytest.param("numpy", id="numpy"), pytest.param("numba", id="numba", marks=pytest.mark.numba)]
DTYPES = [pytest.param("float32", id="float32"), pytest.param("float64", id="float64")]
BUFFERS = {Adamax: ("exp_avg", "exp_inf"), ASGD: ("ax", "eta", "mu"), Rprop: ("prev", "step_size")}

CONFIGS = [
    pytest.param(Adamax, torch.optim.Adamax, {}, id="Adamax-defaults"),
    pytest.param(Adamax, torch.optim.Adamax, {"lr": 0.01, "betas": (0.3, 0.9), "weight_decay": 0.1, "maximize": True},
                 id="Adamax-lerp-high-weight-wd-maximize"),
    pytest.param(Adamax, torch.optim.Adamax, {"lr": 0.05, "betas": (0.99, 0.5), "eps": 1e-3}, id="Adamax-beta2-0.5"),
    pytest.param(ASGD, torch.optim.ASGD, {}, id="ASGD-defaults"),
    pytest.param(ASGD, torch.optim.ASGD, {"lr": 0.05, "t0": 3.0, "lambd": 0.01, "weight_decay": 0.1, "maximize": True},
                 id="ASGD-averaging-t0=3-wd-maximize"),
    pytest.param(ASGD, torch.optim.ASGD, {"lr": 0.02, "alpha": 1.5, "lambd": 0.5, "t0": 0.5}, id="ASGD-alpha-1.5"),
    pytest.param(ASGD, torch.optim.ASGD, {"lr": 0.01, "lambd": 0.0, "alpha": 0.0, "t0": 10.0}, id="ASGD-lambd-0"),
    pytest.param(Rprop, torch.optim.Rprop, {}, id="Rprop-defaults"),
    pytest.param(Rprop, torch.optim.Rprop, {"lr": 0.1, "etas": (0.3, 1.7), "step_sizes": (1e-3, 0.5), "maximize": True},
                 id="Rprop-etas-bounds-maximize"),
    pytest.param(Rprop, torch.optim.Rprop, {"lr": 0.05, "step_sizes": (0.2, 0.1)}, id="Rprop-min>max"),
]


def problem(seed, shapes=SHAPES, steps=STEPS):
    """Starting values and gradients (float64; made representable in each dtype by the
    caller's cast, the same values on both sides): scales from 1e-3 to 1e3 per entry and
    step, about one gradient element in ten exactly zero (Rprop's "no sign" branch)."""
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s) for s in shapes]
    grads = []
    for _ in range(steps):
        step = []
        for s in shapes:
            g = rng.standard_normal(s) * 10.0 ** rng.integers(-3, 4)
            step.append(np.where(rng.random(s) < 0.1, 0.0, g))
        grads.append(step)
    return inits, grads


def torch_state(optimizer, p):
    return {name: value.detach().numpy() for name, value in optimizer.state[p].items() if name != "step"}


def run_in_lockstep(cls, tcls, kwargs, dtype, backend, *, seed=0, shapes=SHAPES, steps=STEPS, group_lrs=None,
                    new_lr=None, nan_equal=False):
    """Both optimizers on the same inputs; assert byte equality of every parameter and
    buffer after every step. ``group_lrs``: one entry (torch: one group) each, with its own
    lr; ``new_lr``: ``(step, factor)``, every lr multiplied by ``factor`` before that step."""
    inits, grads = problem(seed, shapes, steps)
    overrides = [{} if group_lrs is None else {"lr": lr} for lr in (group_lrs or [None] * len(shapes))]
    entries = [{"params": x.astype(dtype), "grad": np.zeros(x.shape, dtype), **o} for x, o in zip(inits, overrides)]
    ours = cls(entries, **kwargs)
    params = [torch.tensor(x.astype(dtype), requires_grad=True) for x in inits]
    theirs = tcls([{"params": [p], **o} for p, o in zip(params, overrides)], **kwargs)
    where = f"{cls.__name__}({kwargs}) {dtype} backend={backend} lrs={group_lrs} new_lr={new_lr}"
    compared = 0
    for step, step_grads in enumerate(grads, start=1):
        if new_lr is not None and step == new_lr[0]:
            ours.defaults["lr"] *= new_lr[1]
            for entry, group in zip(entries, theirs.param_groups):
                group["lr"] *= new_lr[1]
                if "lr" in entry:
                    entry["lr"] *= new_lr[1]
                assert entry.get("lr", ours.defaults["lr"]) == group["lr"]
        for entry, p, g in zip(entries, params, step_grads):
            entry["grad"][...] = g
            p.grad = torch.from_numpy(g.astype(dtype))
        with use_backend(backend), np.errstate(all="ignore"):
            ours.step()
        theirs.step()
        for index, (entry, p) in enumerate(zip(entries, params)):
            pairs = [("params", entry["params"], p.detach().numpy())]
            mine, its = ours.state[index], torch_state(theirs, p)
            assert sorted(mine) == sorted(its), f"{where}: buffers {sorted(mine)} vs torch {sorted(its)}"
            pairs += [(name, mine[name], its[name]) for name in sorted(its)]
            assert float(theirs.state[p]["step"]) == ours.state["step"] == step
            for name, x, y in pairs:
                compared += 1
                assert x.shape == y.shape and x.dtype == y.dtype, f"{where}: {name}[{index}] {x.dtype} vs {y.dtype}"
                if x.tobytes() == y.tobytes():
                    continue
                if nan_equal and np.array_equal(x, y, equal_nan=True):
                    continue
                ints = {4: np.uint32, 8: np.uint64}[x.dtype.itemsize]
                flat = int(np.flatnonzero(x.reshape(-1).view(ints) != y.reshape(-1).view(ints))[0])
                pytest.fail(f"{where}: step {step}, {name}[{index}] flat index {flat}: "
                            f"ours {x.reshape(-1)[flat]!r} vs torch {y.reshape(-1)[flat]!r}")
    return compared


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, tcls, kwargs", CONFIGS)
def test_trajectories_are_bitwise_torchs_single_tensor_path(cls, tcls, kwargs, dtype, backend):
    compared = run_in_lockstep(cls, tcls, kwargs, dtype, backend)
    assert compared == STEPS * len(SHAPES) * (1 + len(BUFFERS[cls]))  # params and every buffer, every step


LR_CHANGES = [
    # ASGD: the new lr enters eta at the end of the step, so it acts one step late
    pytest.param(ASGD, torch.optim.ASGD, {"lr": 0.05, "t0": 5.0, "lambd": 0.05, "weight_decay": 0.01}, id="ASGD"),
    # Rprop: lr only fills the step sizes at the first step; the change has no effect
    pytest.param(Rprop, torch.optim.Rprop, {"lr": 0.05}, id="Rprop"),
    pytest.param(Adamax, torch.optim.Adamax, {"lr": 0.01}, id="Adamax"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, tcls, kwargs", LR_CHANGES)
def test_a_learning_rate_changed_mid_run_stays_bitwise(cls, tcls, kwargs, dtype, backend):
    run_in_lockstep(cls, tcls, kwargs, dtype, backend, new_lr=(100, 7.0))
    # and entries with their own lr (torch: one group each), changed mid-run too
    run_in_lockstep(cls, tcls, kwargs, dtype, backend, group_lrs=[0.3, 0.01, 0.001, 0.05, 0.2, 0.02, 0.07],
                    new_lr=(60, 0.25), steps=120)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rprop_nan_gradients_freeze_their_elements_as_torchs_sign_of_nan_is_zero(dtype, backend):
    # torch.sign(NaN) == 0: an element whose gradient (or previous gradient) is NaN keeps
    # its step size (factor 1) and does not move; numpy_optim reproduces it
    assert torch.sign(torch.tensor([float("nan")] * 20)).tolist() == [0.0] * 20
    shapes = [(7,), (40,)]
    inits, grads = problem(3, shapes, 30)
    for step in (5, 6, 12):
        for g in grads[step]:
            g.reshape(-1)[::3] = np.nan
    entries = [{"params": x.astype(dtype), "grad": np.zeros(x.shape, dtype)} for x in inits]
    ours = Rprop(entries, lr=0.1)
    params = [torch.tensor(x.astype(dtype), requires_grad=True) for x in inits]
    theirs = torch.optim.Rprop(params, lr=0.1)
    for step_grads in grads:
        for entry, p, g in zip(entries, params, step_grads):
            entry["grad"][...] = g
            p.grad = torch.from_numpy(g.astype(dtype))
        with use_backend(backend), np.errstate(all="ignore"):
            ours.step()
        theirs.step()
        for index, (entry, p) in enumerate(zip(entries, params)):
            assert entry["params"].tobytes() == p.detach().numpy().tobytes(), f"params[{index}]"
            assert np.isfinite(entry["params"]).all()
            for name, value in torch_state(theirs, p).items():
                assert np.array_equal(ours.state[index][name], value, equal_nan=True), f"{name}[{index}]"


def test_torch_lerp_gives_zeros_different_signs_in_its_vector_body_and_scalar_tail():
    # lerp(m, g, w) with w rounding to 1 (Adamax/Adam with beta1 = 0) and m = +0, g = -0:
    # torch's vector body computes fma(w - 1, g - m, g) = 0 * -0 + -0 = -0, its scalar tail
    # g - (g - m) * (1 - w) = +0. Element 0 of a 20-element float32 tensor is in the body,
    # element 19 in the tail (16 elements a vector iteration). numpy_optim gives the body's -0.
    m, g = torch.zeros(20), -torch.zeros(20)
    m.lerp_(g, 1.0)
    assert torch.signbit(m[0]) and not torch.signbit(m[19])
    entry = {"params": np.ones(20, np.float32), "grad": np.zeros(20, np.float32)}
    ours = Adamax([entry], betas=(0.0, 0.9), maximize=True)  # maximize: the gradient is -0
    ours.step()
    assert np.signbit(ours.state[0]["exp_avg"]).all()
    # the values are equal (0 == -0), and so are the parameters:
    p = torch.ones(20, requires_grad=True)
    p.grad = torch.zeros(20)
    theirs = torch.optim.Adamax([p], betas=(0.0, 0.9), maximize=True)
    theirs.step()
    assert np.array_equal(ours.state[0]["exp_avg"], theirs.state[p]["exp_avg"].numpy())
    assert entry["params"].tobytes() == p.detach().numpy().tobytes()


def test_torch_asgd_keeps_the_real_part_of_a_complex_decay_where_numpy_optim_refuses():
    # lambd = -0.75, lr = 1: the decay base at the end of step 2 is 1 - 0.75 * 2 = -0.5, and
    # (-0.5) ** 0.75 is complex. torch warns and stores its real part as a negative eta.
    p = torch.ones(3, requires_grad=True)
    theirs = torch.optim.ASGD([p], lr=1.0, lambd=-0.75, alpha=0.75)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            p.grad = torch.full((3,), 0.1)
            theirs.step()
    assert any("discards the imaginary part" in str(w.message) for w in caught)
    assert float(theirs.state[p]["eta"]) == np.float32((1.0 / (-0.5) ** 0.75).real)
    entry = {"params": np.ones(3, np.float32), "grad": np.full(3, 0.1, np.float32)}
    ours = ASGD([entry], lr=1.0, lambd=-0.75, alpha=0.75)
    ours.step()
    after_one = entry["params"].copy()
    with pytest.raises(ValueError, match="complex"):
        ours.step()
    assert entry["params"].tobytes() == after_one.tobytes() and ours.state["step"] == 1
