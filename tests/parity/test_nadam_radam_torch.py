"""NAdam and RAdam against torch.optim.NAdam / RAdam (torch 2.13.0, CPU, single-tensor path).

* Fixed configurations (defaults, L2, ``decoupled_weight_decay``, maximize, the other lerp
  branch, NAdam's momentum_decay = 0, RAdam never rectified), every parameter and buffer
  after every step, judged by the project's tolerance model (parity/tolerance.py):
  float64 ulp-per-step against torch's float64 run, float32 "no less accurate than torch"
  against torch's float64 run. Long runs: RAdam 60 steps (rectified from step 6), NAdam
  1200 steps, past the step (132 with the defaults) where torch's float32 ``mu_product``
  underflows to 0.
* ``mu_product`` is bit for bit torch's (a 0-d float32 array) at every step, float32 and
  float64 parameters, including the underflow to 0.
* torch's ``sqrt`` is MKL's and not correctly rounded; numpy_optim uses ``np.sqrt``. With
  MKL's sqrt swapped into our NumPy kernels (torch's own ``Tensor.sqrt``, in the test
  only), our trajectories are bit for bit torch's, float32 and float64: every other
  operation (op order, fused multiply-adds, Python-float scalars, the float32
  ``mu_product``) is torch's.

Run with ``-s`` to see the ulp distances to torch measured (lines starting with ``ULP``).
"""

from __future__ import annotations

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from numpy_optim import _blocks, use_backend  # noqa: E402
from numpy_optim import nadam as nadam_module  # noqa: E402
from numpy_optim import radam as radam_module  # noqa: E402
from numpy_optim.nadam import NAdam  # noqa: E402
from numpy_optim.radam import RAdam  # noqa: E402
from parity import tolerance  # noqa: E402

SHAPES = [(), (7,), (4, 5), (2, 3, 2), (33,)]
BUFFERS = {NAdam: ("exp_avg", "exp_avg_sq", "mu_product"), RAdam: ("exp_avg", "exp_avg_sq")}
TORCH = {NAdam: torch.optim.NAdam, RAdam: torch.optim.RAdam}

CONFIGS = [
    pytest.param(NAdam, {}, 40, id="NAdam-defaults"),
    pytest.param(NAdam, {"lr": 0.01, "weight_decay": 0.05}, 40, id="NAdam-L2"),
    pytest.param(NAdam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, 40, id="NAdam-decoupled"),
    pytest.param(NAdam, {"lr": 0.003, "betas": (0.3, 0.99), "eps": 1e-6, "maximize": True}, 40,
                 id="NAdam-beta1<0.5-maximize"),
    pytest.param(NAdam, {"lr": 0.01, "momentum_decay": 0.0, "weight_decay": 0.01}, 40, id="NAdam-psi0"),
    pytest.param(NAdam, {"lr": 0.01, "momentum_decay": 0.2, "decoupled_weight_decay": True, "weight_decay": 0.3},
                 40, id="NAdam-psi0.2-decoupled"),
    pytest.param(NAdam, {"lr": 1e-3, "weight_decay": 0.01, "decoupled_weight_decay": True}, 1200,
                 id="NAdam-long-1200"),
    pytest.param(RAdam, {}, 60, id="RAdam-defaults"),
    pytest.param(RAdam, {"lr": 0.01, "weight_decay": 0.05}, 60, id="RAdam-L2"),
    pytest.param(RAdam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, 60, id="RAdam-decoupled"),
    pytest.param(RAdam, {"lr": 0.003, "betas": (0.3, 0.9), "eps": 1e-6, "maximize": True}, 60,
                 id="RAdam-beta1<0.5-maximize"),
    pytest.param(RAdam, {"lr": 0.01, "betas": (0.9, 0.5)}, 30, id="RAdam-never-rectified"),
    pytest.param(RAdam, {"lr": 1e-3, "weight_decay": 0.01, "decoupled_weight_decay": True}, 600,
                 id="RAdam-long-600"),
]


def problem(steps, seed=0):
    """Starting values and gradients of varied scale, float32-representable (so the float32
    runs and the float64 reference see the same inputs)."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731
    x0 = [f32(rng.standard_normal(s)) for s in SHAPES]
    scales = [1.0, 1e-3, 10.0, 0.1, 1e-6]
    grads = [[f32(c * rng.standard_normal(s)) for s, c in zip(SHAPES, scales)] for _ in range(steps)]
    return x0, grads


def run_ours(cls, kwargs, x0, grads, dtype):
    entries = [{"params": x.astype(dtype), "grad": np.zeros(x.shape, dtype)} for x in x0]
    opt = cls(entries, **kwargs)
    record = {}
    for step_grads in grads:
        for e, g in zip(entries, step_grads):
            e["grad"][...] = g
        opt.step()
        for i, e in enumerate(entries):
            record.setdefault(f"params[{i}]", []).append(e["params"].copy())
            for name in BUFFERS[cls]:
                record.setdefault(f"{name}[{i}]", []).append(np.array(opt.state[i][name], copy=True))
    return {k: np.stack(v) for k, v in record.items()}


def run_torch(cls, kwargs, x0, grads, dtype):
    params = [torch.tensor(x, dtype=getattr(torch, dtype), requires_grad=True) for x in x0]
    opt = TORCH[cls](params, **kwargs)
    record = {}
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.from_numpy(np.array(g, dtype=dtype))
        opt.step()
        for i, p in enumerate(params):
            record.setdefault(f"params[{i}]", []).append(p.detach().numpy().copy())
            for name in BUFFERS[cls]:
                record.setdefault(f"{name}[{i}]", []).append(opt.state[p][name].detach().numpy().copy())
    return {k: np.stack(v) for k, v in record.items()}


def ulp_distance(a, b):
    """Max distance in units in the last place (ordered integer representations)."""
    a, b = np.asarray(a), np.asarray(b)
    ints = {4: np.int32, 8: np.int64}[a.dtype.itemsize]
    ai, bi = a.view(ints).astype(np.int64), b.view(ints).astype(np.int64)
    low = np.int64(np.iinfo(ints).min)
    ai, bi = np.where(ai < 0, low - ai, ai), np.where(bi < 0, low - bi, bi)
    both = np.isfinite(a) & np.isfinite(b)
    return int(np.abs(ai - bi)[both].max(initial=0))


@pytest.mark.parametrize("cls, kwargs, steps", CONFIGS)
def test_float64_within_ulps_per_step_of_torch(cls, kwargs, steps):
    x0, grads = problem(steps)
    ours = run_ours(cls, kwargs, x0, grads, np.float64)
    theirs = run_torch(cls, kwargs, x0, grads, "float64")
    worst = 0.0
    for key in theirs:
        initial = float(np.abs(x0[int(key.split("[")[1][:-1])]).max(initial=0.0)) if key.startswith("params") else 0.0
        c = tolerance.compare_float64(key, ours[key], theirs[key], None, initial)  # the ulp term alone
        assert c.violation is None, c.violation
        worst = max(worst, c.worst_ratio)
    params = [k for k in theirs if k.startswith("params")]
    print(f"ULP float64 {cls.__name__} {kwargs} {steps} steps: worst error/bound {worst:.3f}, "
          f"max ulp to torch (params) {max(ulp_distance(ours[k], theirs[k]) for k in params)}")


@pytest.mark.parametrize("cls, kwargs, steps", CONFIGS)
def test_float32_no_less_accurate_than_torch(cls, kwargs, steps):
    x0, grads = problem(steps)
    ours = run_ours(cls, kwargs, x0, grads, np.float32)
    theirs = run_torch(cls, kwargs, x0, grads, "float32")
    reference = run_torch(cls, kwargs, x0, grads, "float64")
    worst, ulps = 0.0, {}
    for key in theirs:
        initial = float(np.abs(x0[int(key.split("[")[1][:-1])]).max(initial=0.0)) if key.startswith("params") else 0.0
        c = tolerance.compare_float32(key, ours[key], theirs[key], reference[key], None, initial)
        assert c.violation is None, c.violation
        worst = max(worst, c.worst_ratio)
        ulps[key] = ulp_distance(ours[key], theirs[key])
    params = [k for k in theirs if k.startswith("params")]
    differing = sum(int((ours[k] != theirs[k]).sum()) for k in params)
    total = sum(ours[k].size for k in params)
    print(f"ULP float32 {cls.__name__} {kwargs} {steps} steps: worst error/bound {worst:.3f}, max ulp to torch "
          f"params {max(ulps[k] for k in params)}, buffers {max(v for k, v in ulps.items() if k not in params)}; "
          f"{differing} of {total} parameter element-steps differ from torch")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kwargs", [{}, {"betas": (0.5, 0.999), "momentum_decay": 0.05}])
def test_mu_product_is_torchs_bit_for_bit_through_its_underflow(kwargs, dtype):
    steps = 1200
    x0, grads = problem(steps)
    ours = run_ours(NAdam, kwargs, x0, grads, np.dtype(dtype))
    theirs = run_torch(NAdam, kwargs, x0, grads, dtype)
    for i in range(len(SHAPES)):
        mine, torchs = ours[f"mu_product[{i}]"], theirs[f"mu_product[{i}]"]
        assert mine.dtype == torchs.dtype == np.float32 and mine.shape == torchs.shape == (steps,)
        assert mine.tobytes() == torchs.tobytes()
    assert torchs[-1] == 0.0 and torchs[0] > 0.0  # it did underflow within the run
    for key in theirs:
        assert np.isfinite(ours[key]).all() and np.isfinite(theirs[key]).all(), key


# --------------------------------------------------------------------------------------
# With torch's sqrt, float32 is bitwise torch
# --------------------------------------------------------------------------------------


def _mkl_sqrt(x, out=None):
    """torch's Tensor.sqrt (MKL vsSqrt/vdSqrt), with np.sqrt's (x, out) signature."""
    result = torch.from_numpy(np.ascontiguousarray(x)).sqrt().numpy()
    if out is None:
        return result
    out[...] = result
    return out


@pytest.fixture
def torch_sqrt(monkeypatch):
    """Our NumPy kernels with torch's sqrt: ``np`` in nadam.py / radam.py becomes NumPy with
    that one function replaced (the compiled kernels are not used: NumPy backend)."""
    patched = types.SimpleNamespace(**{name: getattr(np, name) for name in dir(np) if not name.startswith("__")})
    patched.sqrt = _mkl_sqrt
    for module in (nadam_module, radam_module):
        monkeypatch.setattr(module, "np", patched)
    with use_backend("numpy"), _blocks.configured(enabled=False):
        yield


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls, kwargs, steps", CONFIGS)
def test_with_torchs_sqrt_we_are_bitwise_torch(cls, kwargs, steps, dtype, torch_sqrt):
    steps = min(steps, 300)
    x0, grads = problem(steps, seed=1)
    ours = run_ours(cls, kwargs, x0, grads, np.dtype(dtype))
    theirs = run_torch(cls, kwargs, x0, grads, dtype)
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype, key
        if ours[key].tobytes() != theirs[key].tobytes():
            step = int(np.argmax([a.tobytes() != b.tobytes() for a, b in zip(ours[key], theirs[key])]))
            pytest.fail(f"{key} differs from torch first at step {step + 1}: "
                        f"{ulp_distance(ours[key][step], theirs[key][step])} ulp")
