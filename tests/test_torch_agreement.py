"""Direct comparisons with torch.optim (torch 2.13.0, CPU): optimizers and schedulers.

Tolerance model (see /work/shared/reference/torch-numerics.md for why bit equality is not
the target for Adam: torch's single-tensor path uses MKL's vector sqrt, which is not
correctly rounded, and fuses multiply-adds on AVX2/AVX512 builds):

* float64: ``max |ours - torch| <= 8 * eps64 * max|param| * sqrt(steps)`` over every
  parameter and every state buffer (each buffer measured against its own scale).
* float32: both sides run the same float32-representable inputs; a float64 torch run is
  the reference. Our float32 error against it must be at most twice torch's own float32
  error, plus a floor of ``4 * eps32 * max|param|`` for the case where torch's error is 0.
* SGD has no sqrt: with ``ATEN_CPU_CAPABILITY=default`` (no fused multiply-adds) it must
  agree bit for bit, float32 and float64 (checked in a subprocess, since the variable
  must be set before torch is imported).
* schedules: relative tolerance 1e-12 (torch's recursive ``step()`` form differs from the
  closed form in the last bits), with an absolute floor of 1e-15 * max_lr.

Run with ``-s`` to see the worst differences measured (lines starting with ``WORST``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from numpy_optim import (  # noqa: E402
    SGD,
    Adam,
    AdamW,
    CosineScheduler,
    StepDecayScheduler,
    WarmupCosineScheduler,
)

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)
SHAPES = [(), (7,), (4, 5), (2, 3, 2)]
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}

CONFIGS = [
    pytest.param(SGD, torch.optim.SGD, {"lr": 0.01}, id="SGD"),
    pytest.param(SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, id="SGD-momentum"),
    pytest.param(SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
                 id="SGD-nesterov-wd"),
    pytest.param(SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "dampening": 0.3, "maximize": True},
                 id="SGD-dampening-maximize"),
    pytest.param(Adam, torch.optim.Adam, {"lr": 0.01}, id="Adam"),
    pytest.param(Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01}, id="Adam-L2"),
    pytest.param(Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True}, id="Adam-amsgrad"),
    pytest.param(Adam, torch.optim.Adam, {"lr": 0.003, "betas": (0.3, 0.99), "eps": 1e-6, "maximize": True},
                 id="Adam-beta1<0.5-maximize"),
    pytest.param(AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}, id="AdamW"),
    pytest.param(AdamW, torch.optim.AdamW, {"lr": 0.01, "amsgrad": True}, id="AdamW-amsgrad-default-wd"),
]


def problem(steps, seed):
    """Initial values and a random gradient sequence, all float32-representable, so that the
    float32 runs and the float64 reference see exactly the same inputs."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
    inits = [f32(rng.standard_normal(s)) for s in SHAPES]
    # gradients of varied scale per parameter, so the adaptive methods have something to adapt to
    scales = [1.0, 1e-3, 10.0, 0.1]
    grads = [[f32(scale * rng.standard_normal(s)) for s, scale in zip(SHAPES, scales)] for _ in range(steps)]
    return inits, grads


def run_ours(cls, kwargs, inits, grads, dtype):
    entries = [{"params": p.astype(dtype), "grad": np.zeros(p.shape, dtype)} for p in inits]
    opt = cls(entries, **kwargs)
    for step_grads in grads:
        for entry, g in zip(entries, step_grads):
            entry["grad"][...] = g
        opt.step()
    state = [opt.state.get(i, {}) for i in range(len(entries))]
    return [e["params"] for e in entries], state


def run_torch(tcls, kwargs, inits, grads, dtype):
    params = [torch.tensor(p.astype(dtype), dtype=TORCH_DTYPE[dtype], requires_grad=True) for p in inits]
    opt = tcls(params, **kwargs)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g.astype(dtype))
        opt.step()
    state = [
        {name: value.detach().numpy().copy() for name, value in opt.state[p].items() if name != "step"}
        for p in params
    ]
    return [p.detach().numpy().copy() for p in params], state


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0))
               for x, y in zip(a, b))


def scale_of(arrays):
    return max(float(np.max(np.abs(np.asarray(a, np.float64)), initial=0.0)) for a in arrays)


# ----- optimizers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 100], ids=lambda n: f"{n}-steps")
@pytest.mark.parametrize("cls, tcls, kwargs", CONFIGS)
def test_float64_agrees_with_torch_within_a_few_ulp(cls, tcls, kwargs, steps):
    inits, grads = problem(steps, seed=steps)
    ours, our_state = run_ours(cls, kwargs, inits, grads, np.float64)
    theirs, their_state = run_torch(tcls, kwargs, inits, grads, np.float64)
    bound_factor = 8 * EPS64 * math.sqrt(steps)
    diff, scale = max_diff(ours, theirs), scale_of(theirs)
    buffer_ulps = max(
        (max_diff([mine[name]], [its[name]]) / (EPS64 * max(scale_of([its[name]]), 1e-300))
         for mine, its in zip(our_state, their_state) for name in mine.keys() & its.keys()),
        default=0.0,
    )
    print(f"WORST float64 {cls.__name__} {kwargs} steps={steps}: params {diff:.3g} = "
          f"{diff / (EPS64 * scale):.2f} eps64 * max|param|; buffers {buffer_ulps:.2f} eps64 * max|buffer|")
    assert diff <= bound_factor * scale, (
        f"{cls.__name__}({kwargs}) float64 after {steps} steps: max|ours - torch| = {diff:.3g} "
        f"> {bound_factor * scale:.3g}; reproduce with problem({steps}, seed={steps})"
    )
    for index, (mine, its) in enumerate(zip(our_state, their_state)):
        assert set(mine) == set(its), f"params[{index}]: buffers {sorted(mine)} vs torch {sorted(its)}"
        for name in mine:
            d, s = max_diff([mine[name]], [its[name]]), scale_of([its[name]])
            assert d <= bound_factor * s, f"{cls.__name__} state[{index}][{name!r}]: {d:.3g} > {bound_factor * s:.3g}"


@pytest.mark.parametrize("cls, tcls, kwargs", CONFIGS)
def test_float32_error_is_no_worse_than_twice_torchs_own(cls, tcls, kwargs):
    steps = 100
    inits, grads = problem(steps, seed=7)
    reference, _ = run_torch(tcls, kwargs, inits, grads, np.float64)
    ours, our_state = run_ours(cls, kwargs, inits, grads, np.float32)
    theirs, _ = run_torch(tcls, kwargs, inits, grads, np.float32)
    assert all(p.dtype == np.float32 for p in ours)
    assert all(b.dtype == np.float32 for s in our_state for b in s.values())
    our_error, torch_error = max_diff(ours, reference), max_diff(theirs, reference)
    floor = 4 * EPS32 * scale_of(reference)
    print(f"WORST float32 {cls.__name__} {kwargs}: ours vs f64 ref {our_error:.3g}, torch f32 vs ref "
          f"{torch_error:.3g}, ours vs torch f32 {max_diff(ours, theirs):.3g}")
    assert our_error <= 2 * torch_error + floor, (
        f"{cls.__name__}({kwargs}) float32: our error {our_error:.3g} vs torch's {torch_error:.3g}"
    )


SGD_BITWISE_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, torch
    from numpy_optim import SGD
    dtypes = {"float64": (np.float64, torch.float64), "float32": (np.float32, torch.float32)}
    dtype, tdtype = dtypes[sys.argv[1]]
    print("capability", torch.backends.cpu.get_cpu_capability())
    rng = np.random.default_rng(0)
    shapes = [(), (7,), (4, 5), (17,), (3, 45)]  # sizes with and without a vector tail
    inits = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(100)]
    configs = [dict(lr=0.01), dict(lr=0.01, momentum=0.9),
               dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01),
               dict(lr=0.01, momentum=0.9, dampening=0.3, maximize=True, weight_decay=0.1)]
    for kwargs in configs:
        entries = [{"params": p.astype(dtype), "grad": np.zeros(p.shape, dtype)} for p in inits]
        ours = SGD(entries, **kwargs)
        params = [torch.tensor(p.astype(dtype), dtype=tdtype, requires_grad=True) for p in inits]
        theirs = torch.optim.SGD(params, **kwargs)
        for step, gs in enumerate(grads):
            for e, p, g in zip(entries, params, gs):
                e["grad"][...] = g
                p.grad = torch.tensor(g.astype(dtype))
            ours.step()
            theirs.step()
            for i, (e, p) in enumerate(zip(entries, params)):
                if e["params"].tobytes() != p.detach().numpy().tobytes():
                    raise SystemExit(f"MISMATCH {kwargs} {dtype.__name__} step {step} params[{i}]")
    print("BITWISE OK")
    """
)


def run_bitwise_script(dtype: str, **env: str) -> subprocess.CompletedProcess:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", SGD_BITWISE_SCRIPT, dtype], env=env, capture_output=True,
                          text=True, timeout=300)


def test_sgd_float32_trajectories_are_bitwise_identical_to_torch_default_path():
    # float32 multiply-adds are rounded once (numpy_optim/_fma.py), as torch's FMA rounds them.
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        pytest.skip(f"torch uses no FMA on this CPU (capability {capability}); the claim is for FMA CPUs")
    result = run_bitwise_script("float32")
    assert result.returncode == 0 and "BITWISE OK" in result.stdout, result.stdout + result.stderr


def test_sgd_float64_trajectories_are_bitwise_identical_to_torch_without_fma():
    # float64 multiply-adds in SGD are rounded twice, as torch rounds them without FMA.
    result = run_bitwise_script("float64", ATEN_CPU_CAPABILITY="default")
    assert "capability DEFAULT" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0 and "BITWISE OK" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_sgd_trajectories_agree_closely_with_torch_default_build(dtype):
    # with fused multiply-adds on the torch side: 100 steps stay within 2 ulp of the scale
    inits, grads = problem(100, seed=3)
    kwargs = {"lr": 0.05, "momentum": 0.9, "nesterov": True}
    ours, _ = run_ours(SGD, kwargs, inits, grads, dtype)
    theirs, _ = run_torch(torch.optim.SGD, kwargs, inits, grads, dtype)
    eps = float(np.finfo(dtype).eps)
    diff, scale = max_diff(ours, theirs), scale_of(theirs)
    print(f"WORST SGD {np.dtype(dtype).name} default torch build: {diff:.3g} = {diff / (eps * scale):.2f} eps*scale")
    assert diff <= 2 * eps * scale


def test_update_through_tensor_numpy_view_is_seen_by_torch():
    p = torch.zeros(3, 2, dtype=torch.float64)
    view = p.numpy()  # shares memory with the tensor
    grad = np.ones((3, 2))
    Adam([{"params": view, "grad": grad}], lr=0.01).step()
    assert torch.all(p == view.item(0))
    assert float(p[0, 0]) == pytest.approx(-0.01 * 1.0 / (1.0 + 1e-8), rel=1e-12)  # first Adam step
    # a 0-d tensor too
    s = torch.tensor(1.0, dtype=torch.float32)
    SGD([{"params": s.numpy(), "grad": np.array(2.0, dtype=np.float32)}], lr=0.25).step()
    assert float(s) == 0.5


# ----- schedulers -------------------------------------------------------------------------------------


def torch_lrs(make_scheduler, base_lr, steps):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    scheduler = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(lrs)


def assert_schedules_close(ours, theirs, max_lr, what):
    diff = np.abs(ours - theirs)
    rel = float(np.max(diff / np.maximum(np.abs(theirs), 1e-300)))
    print(f"WORST schedule {what}: max abs {float(diff.max()):.3g}, max rel {rel:.3g}")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15 * max_lr, err_msg=what)


@pytest.mark.parametrize("gamma, step_size", [(0.1, 10), (0.5, 3), (0.97, 1)], ids=str)
def test_step_decay_matches_torch_steplr(gamma, step_size):
    steps = 200
    ours = np.array([StepDecayScheduler(0.1, gamma, step_size).get_lr(t) for t in range(steps)])
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=step_size, gamma=gamma), 0.1, steps)
    assert_schedules_close(ours, theirs, 0.1, f"StepLR gamma={gamma} step_size={step_size}")


@pytest.mark.parametrize("min_lr, total", [(0.0, 100), (1e-5, 1000), (0.05, 7)], ids=str)
def test_cosine_matches_torch_cosine_annealing_within_total_steps(min_lr, total):
    max_lr = 0.1
    ours = np.array([CosineScheduler(max_lr, min_lr, total).get_lr(t) for t in range(total + 1)])
    theirs = torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=min_lr), max_lr, total + 1
    )
    assert_schedules_close(ours, theirs, max_lr, f"CosineAnnealingLR eta_min={min_lr} T_max={total}")


@pytest.mark.parametrize("warmup, total, min_lr", [(10, 100, 1e-4), (1, 50, 0.0), (100, 1000, 3e-5)], ids=str)
def test_warmup_cosine_matches_torch_lambdalr(warmup, total, min_lr):
    max_lr = 3e-3

    def factor(t):  # the specification's formula, written out independently, as a multiplier
        if t < warmup:
            return t / warmup
        if t > total:
            return min_lr / max_lr
        progress = (t - warmup) / (total - warmup)
        return (min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))) / max_lr

    steps = total + 20
    ours = np.array([WarmupCosineScheduler(max_lr, min_lr, warmup, total).get_lr(t) for t in range(steps)])
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor), max_lr, steps)
    assert_schedules_close(ours, theirs, max_lr, f"LambdaLR warmup={warmup} total={total} min_lr={min_lr}")


def test_adam_with_warmup_cosine_matches_torch_adam_with_lambdalr():
    warmup, total, max_lr, min_lr = 5, 60, 0.01, 1e-4
    schedule = WarmupCosineScheduler(max_lr, min_lr, warmup, total)
    inits, grads = problem(total, seed=11)
    entries = [{"params": p.copy(), "grad": np.zeros(p.shape)} for p in inits]
    ours = AdamW(entries, lr=max_lr)
    params = [torch.tensor(p, requires_grad=True) for p in inits]
    theirs = torch.optim.AdamW(params, lr=max_lr)
    lambda_lr = torch.optim.lr_scheduler.LambdaLR(theirs, lambda t: schedule.get_lr(t) / max_lr)
    for t, step_grads in enumerate(grads):
        schedule.step(ours, t)
        for entry, p, g in zip(entries, params, step_grads):
            entry["grad"][...] = g
            p.grad = torch.tensor(g)
        assert ours.lr == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-15, abs=1e-300)
        ours.step()
        theirs.step()
        lambda_lr.step()
    diff = max_diff([e["params"] for e in entries], [p.detach().numpy() for p in params])
    scale = scale_of([p.detach().numpy() for p in params])
    print(f"WORST AdamW+warmup-cosine float64 {total} steps: {diff:.3g} = {diff / (EPS64 * scale):.2f} eps*scale")
    assert diff <= 8 * EPS64 * scale * math.sqrt(total)
