"""Adagrad, Adadelta and RMSprop against torch.optim 2.13 (CPU).

* Fixed configurations, 30 steps, judged by the tolerance model (parity/tolerance.py):
  float64 by its ulp-per-step bound, float32 by its float32 rule against torch's float64
  run, every parameter and every state buffer after every step.
* Why they are not bitwise: torch's ``sqrt`` is MKL's (1 ulp off for some inputs), ours
  ``np.sqrt``. With MKL's ``vsSqrt``/``vdSqrt`` (from libtorch_cpu.so, by ctypes) swapped
  into our NumPy kernels, float32 trajectories are bitwise torch's; float64 ones too once
  every multiply-add is also rounded once (numpy_optim rounds the non-cancelling float64
  ones twice, for speed). That pins the op order, the fused-or-not choices and the scalar
  casts of all three kernels.
* Signature, state buffer names and validation: torch's (messages where ours mirror them).
* torch's quirks: Adagrad ignores a group's ``initial_accumulator_value``; centered
  RMSprop in float64 turns into NaN at the same step on both sides.

Run with ``-s`` to see the ulp distances measured (lines starting with ``WORST``).
"""

from __future__ import annotations

import ctypes
import inspect
import math
import os
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import numpy_optim.adadelta  # noqa: E402
import numpy_optim.adagrad  # noqa: E402
import numpy_optim.rmsprop  # noqa: E402
from numpy_optim import _blocks, _fma, use_backend  # noqa: E402
from numpy_optim.adadelta import Adadelta  # noqa: E402
from numpy_optim.adagrad import Adagrad  # noqa: E402
from numpy_optim.rmsprop import RMSprop  # noqa: E402
from parity import tolerance  # noqa: E402
from parity.registry import OPTIMIZERS  # noqa: E402

SHAPES = [(), (7,), (4, 5), (2, 3, 2)]
STEPS = 30
PAIRS = {Adagrad: torch.optim.Adagrad, Adadelta: torch.optim.Adadelta, RMSprop: torch.optim.RMSprop}
MODULES = {Adagrad: numpy_optim.adagrad, Adadelta: numpy_optim.adadelta, RMSprop: numpy_optim.rmsprop}

CONFIGS = [
    pytest.param(Adagrad, {}, id="Adagrad"),
    pytest.param(Adagrad, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}, id="Adagrad-decay-init"),
    pytest.param(Adagrad, {"lr": 0.05, "weight_decay": 0.1, "maximize": True, "eps": 1e-6}, id="Adagrad-wd-max"),
    pytest.param(Adadelta, {}, id="Adadelta"),
    pytest.param(Adadelta, {"lr": 0.5, "rho": 0.5, "weight_decay": 0.01}, id="Adadelta-rho-wd"),
    pytest.param(Adadelta, {"eps": 1e-3, "maximize": True}, id="Adadelta-eps-max"),
    pytest.param(RMSprop, {}, id="RMSprop"),
    pytest.param(RMSprop, {"centered": True}, id="RMSprop-centered"),
    pytest.param(RMSprop, {"momentum": 0.9, "weight_decay": 0.01}, id="RMSprop-momentum-wd"),
    pytest.param(RMSprop, {"alpha": 0.3, "momentum": 0.5, "centered": True, "maximize": True},
                 id="RMSprop-centered-momentum-small-weight-max"),
    pytest.param(RMSprop, {"alpha": 0.9, "centered": True, "weight_decay": 0.1}, id="RMSprop-centered-wd"),
]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def problem(seed=0):
    """Initial values and gradients, all float32-representable (so the float32 runs and the
    float64 reference see the same inputs), of a different scale per parameter."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
    inits = [f32(rng.standard_normal(s)) for s in SHAPES]
    scales = [1.0, 1e-3, 10.0, 0.1]
    grads = [[f32(scale * rng.standard_normal(s)) for s, scale in zip(SHAPES, scales)] for _ in range(STEPS)]
    return inits, grads


def run_ours(cls, kwargs, inits, grads, dtype):
    entries = [{"params": p.astype(dtype), "grad": np.zeros(p.shape, dtype)} for p in inits]
    opt = cls(entries, **kwargs)
    record = {}
    for step_grads in grads:
        for e, g in zip(entries, step_grads):
            e["grad"][...] = g
        with np.errstate(all="ignore"):
            opt.step()
        for i, e in enumerate(entries):
            record.setdefault(f"params[{i}]", []).append(e["params"].copy())
            for name, buf in opt.state[i].items():
                record.setdefault(f"{name}[{i}]", []).append(buf.copy())
    return {k: np.stack(v) for k, v in record.items()}


def run_torch(torch_cls, kwargs, inits, grads, dtype):
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    params = [torch.tensor(p, dtype=tdtype, requires_grad=True) for p in inits]
    opt = torch_cls(params, **kwargs)
    record = {}
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=tdtype)
        opt.step()
        for i, p in enumerate(params):
            record.setdefault(f"params[{i}]", []).append(p.detach().numpy().copy())
            for name, buf in opt.state[p].items():
                if name != "step":
                    record.setdefault(f"{name}[{i}]", []).append(buf.detach().numpy().copy())
    return {k: np.stack(v) for k, v in record.items()}


def ulp_distance(a, b):
    """Max distance in units in the last place between two float arrays (NaN pairs: 0)."""
    signed = np.int32 if a.dtype == np.float32 else np.int64
    ia, ib = (x.view(signed).astype(np.int64) for x in (a, b))
    ia = np.where(ia < 0, np.iinfo(signed).min - ia, ia)  # sign-magnitude -> ordered integers
    ib = np.where(ib < 0, np.iinfo(signed).min - ib, ib)
    both_nan = np.isnan(a) & np.isnan(b)
    return int(np.where(both_nan, 0, np.abs(ia - ib)).max(initial=0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_trajectories_agree_with_torch_within_the_tolerance_model(cls, kwargs, dtype):
    inits, grads = problem()
    ours = run_ours(cls, kwargs, inits, grads, dtype)
    theirs = run_torch(PAIRS[cls], kwargs, inits, grads, dtype)
    assert set(ours) == set(theirs), f"state names differ: ours {sorted(ours)}, torch {sorted(theirs)}"
    reference = run_torch(PAIRS[cls], kwargs, inits, grads, np.float64) if dtype == np.float32 else None
    worst_ulp, worst_ratio = 0, 0.0
    for key in sorted(theirs):
        initial = float(np.abs(inits[int(key.split("[")[1][:-1])]).max()) if key.startswith("params") else 0.0
        if reference is None:
            c = tolerance.compare_float64(key, ours[key], theirs[key], None, initial)
        else:
            c = tolerance.compare_float32(key, ours[key], theirs[key], reference[key], None, initial)
        assert c.violation is None, f"{cls.__name__}({kwargs}) {np.dtype(dtype).name}: {c.violation}"
        assert c.steps == STEPS and c.unjudged == 0
        worst_ratio = max(worst_ratio, c.worst_ratio)
        worst_ulp = max(worst_ulp, ulp_distance(ours[key], theirs[key]))
    print(f"WORST {cls.__name__} {kwargs} {np.dtype(dtype).name}: {worst_ulp} ulp from torch, "
          f"error/bound {worst_ratio:.3f}")


# ----- bitwise once MKL's sqrt is swapped in ---------------------------------------------------

_LIBTORCH = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))


def mkl_sqrt(x, out):
    """torch's Tensor.sqrt: MKL VML vsSqrt / vdSqrt on contiguous arrays."""
    assert x.flags.c_contiguous and out.flags.c_contiguous and x.dtype == out.dtype
    function = _LIBTORCH.vsSqrt if x.dtype == np.float32 else _LIBTORCH.vdSqrt
    function(ctypes.c_int(x.size), ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data))
    return out


class NumPyWithMKLSqrt(types.ModuleType):
    """NumPy, but for ``sqrt``: what a kernel module sees as ``np`` in these tests."""

    def __init__(self):
        super().__init__("numpy_with_mkl_sqrt")

    def __getattr__(self, name):
        return getattr(np, name)

    sqrt = staticmethod(mkl_sqrt)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_with_mkl_sqrt_and_single_rounding_the_numpy_kernels_are_bitwise_torch(cls, kwargs, dtype, monkeypatch):
    module = MODULES[cls]
    monkeypatch.setattr(module, "np", NumPyWithMKLSqrt())
    if dtype == np.float64:  # torch's FMA rounds once; numpy_optim rounds some float64 ones twice
        monkeypatch.setattr(module, "fma", lambda *args, exact=False, **kw: _fma.fma(*args, exact=True, **kw))
    inits, grads = problem(seed=1)
    with use_backend("numpy"), _blocks.configured(enabled=False):  # whole (contiguous) arrays
        ours = run_ours(cls, kwargs, inits, grads, dtype)
    theirs = run_torch(PAIRS[cls], kwargs, inits, grads, dtype)
    for key in sorted(theirs):
        for t in range(STEPS):
            assert ours[key][t].tobytes() == theirs[key][t].tobytes(), (
                f"{cls.__name__}({kwargs}) {np.dtype(dtype).name}: {key} differs after step {t + 1}: "
                f"{ulp_distance(ours[key][t], theirs[key][t])} ulp"
            )


# ----- signature, state names, validation --------------------------------------------------------

TORCH_SWITCHES = {"foreach", "fused", "capturable", "differentiable"}


@pytest.mark.parametrize("cls", list(PAIRS), ids=lambda c: c.__name__)
def test_signature_is_torchs_without_the_torch_only_switches(cls):
    # numpy_optim's own keywords (the registry's beyond_torch: state_dtype, master_weights)
    # are left out on our side; torch's switches on its side, but for fused where we have
    # it too (Adagrad), whose default differs as the registry documents (False vs None).
    pair = OPTIMIZERS[cls.__name__]
    ours_all = inspect.signature(cls).parameters
    assert set(pair.beyond_torch) == {"state_dtype", "master_weights"} and set(pair.beyond_torch) <= set(ours_all)
    torch_only = TORCH_SWITCHES - set(ours_all)
    theirs = [(p.name, p.default, p.kind) for p in inspect.signature(PAIRS[cls]).parameters.values()
              if p.name not in torch_only]
    ours = [(p.name, p.default, p.kind) for p in ours_all.values() if p.name not in pair.beyond_torch]
    differ = pair.default_differences
    assert [(n, differ[n][1] if n in differ else d) for n, d, _ in ours] == [(n, d) for n, d, _ in theirs]
    assert {n: d for n, d, _ in ours if n in differ} == {n: ours_value for n, (ours_value, _) in differ.items()}
    keyword_only = lambda params: [n for n, _, k in params if k is inspect.Parameter.KEYWORD_ONLY]
    assert keyword_only(ours) == keyword_only(theirs)  # maximize (+ fused: Adagrad), maximize (Adadelta), none


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_state_buffer_names_are_torchs(cls, kwargs):
    x, g = np.ones(3), np.full(3, 0.5)
    ours = cls([{"params": x, "grad": g}], **kwargs)
    ours.step()
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    theirs = PAIRS[cls]([p], **kwargs)
    p.grad = torch.full((3,), 0.5, dtype=torch.float64)
    theirs.step()
    assert set(ours.state[0]) == set(theirs.state[p]) - {"step"}


# (class, argument, bad value, whether our message starts with torch's)
BAD = [
    (Adagrad, "lr", -1.0, False), (Adagrad, "lr_decay", -0.5, True), (Adagrad, "weight_decay", -0.1, True),
    (Adagrad, "initial_accumulator_value", -1.0, True), (Adagrad, "eps", -1e-10, False),
    (Adagrad, "lr", math.nan, False),
    (Adadelta, "lr", -1.0, False), (Adadelta, "rho", 1.5, True), (Adadelta, "rho", -0.1, True),
    (Adadelta, "rho", math.nan, True), (Adadelta, "eps", -1.0, False), (Adadelta, "weight_decay", -1.0, True),
    (RMSprop, "lr", -1.0, False), (RMSprop, "eps", -1.0, False), (RMSprop, "momentum", -0.5, True),
    (RMSprop, "weight_decay", -0.1, True), (RMSprop, "alpha", -0.1, True),
]


@pytest.mark.parametrize("cls, name, value, mirrored", BAD,
                         ids=[f"{c.__name__}-{n}={v!r}" for c, n, v, _ in BAD])
def test_validation_refuses_what_torch_refuses_with_torchs_message(cls, name, value, mirrored):
    with pytest.raises(ValueError) as theirs:
        PAIRS[cls]([torch.zeros(2, requires_grad=True)], **{name: value})
    with pytest.raises(ValueError) as ours:
        cls([{"params": np.zeros(2), "grad": np.zeros(2)}], **{name: value})
    if mirrored:  # torch: "Invalid rho value: 1.5"; ours adds why: "... (must be 0 <= rho <= 1)"
        assert str(ours.value).startswith(str(theirs.value)), (str(ours.value), str(theirs.value))
    else:  # torch says "learning rate" / "epsilon"; ours names the argument (lr, eps)
        assert f"Invalid {name} value: {value!r}" in str(ours.value)


@pytest.mark.parametrize("cls, kwargs", [(Adadelta, {"rho": 1.0}), (Adadelta, {"rho": 0.0}),
                                         (RMSprop, {"alpha": 5.0}), (Adagrad, {"eps": 0.0, "lr": 0.0})],
                         ids=["rho=1", "rho=0", "alpha=5", "eps=lr=0"])
def test_boundary_values_torch_accepts_are_accepted(cls, kwargs):
    PAIRS[cls]([torch.zeros(2, requires_grad=True)], **kwargs)
    cls([{"params": np.zeros(2), "grad": np.zeros(2)}], **kwargs)


# ----- torch's quirks --------------------------------------------------------------------------


def test_torch_adagrad_still_ignores_a_groups_initial_accumulator_value():
    a, b = torch.ones(1, requires_grad=True), torch.ones(1, requires_grad=True)
    theirs = torch.optim.Adagrad([{"params": [a]}, {"params": [b], "initial_accumulator_value": 5.0}],
                                 initial_accumulator_value=0.5)
    assert theirs.state[b]["sum"].item() == 0.5  # the constructor's value, not the group's 5.0
    x, y = np.ones(1), np.ones(1)
    ours = Adagrad([{"params": x, "grad": np.full(1, 2.0)},
                    {"params": y, "grad": np.full(1, 2.0), "initial_accumulator_value": 5.0}],
                   initial_accumulator_value=0.5)
    a.grad, b.grad = torch.full((1,), 2.0), torch.full((1,), 2.0)
    theirs.step()
    ours.step()
    assert ours.state[1]["sum"][0] == theirs.state[b]["sum"].item() == 4.5


def test_rmsprop_centered_float64_nan_appears_at_the_same_step_as_torchs():
    x = np.zeros(1)
    ours = RMSprop([{"params": x, "grad": np.full(1, 1e-3)}], centered=True)
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    theirs = torch.optim.RMSprop([p], centered=True)
    first = {"ours": None, "torch": None}
    for t in range(1, 3201):
        with np.errstate(invalid="ignore"):
            ours.step()
        p.grad = torch.full((1,), 1e-3, dtype=torch.float64)
        theirs.step()
        if first["ours"] is None and np.isnan(x[0]):
            first["ours"] = t
        if first["torch"] is None and torch.isnan(p).item():
            first["torch"] = t
    assert first == {"ours": 3187, "torch": 3187}
