"""NAdam and RAdam (numpy_optim/nadam.py, numpy_optim/radam.py) without torch.

* Hand-computed steps: the op lists of the reference (torch-optim-rest.md §3.5, §3.6)
  written out in Python floats (float64; a multiply-add torch fuses is rounded once, with
  exact rationals), compared bit for bit; the momentum schedule, NAdam's float32
  ``mu_product`` and RAdam's switch to the rectified step at step 6 as numbers.
* Validation: torch's exception types, messages naming the argument and the value,
  nothing changed by a refused step.
* Per-entry overrides equal separate optimizers, bit for bit.
* state_dict round trips continue bit for bit (``mu_product`` a 0-d float32 array).
* The compiled (numba) kernels and the blocked / threaded NumPy kernels are bitwise the
  NumPy kernel on whole arrays, float32 and float64, for every flag combination.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from test_blocked import SHAPES, SIDES, running  # the sides of tests/unit/test_blocked.py

from numpy_optim import _blocks, use_backend
from numpy_optim.nadam import NAdam, momentum_schedule, nadam_compiled, nadam_step, nadam_update_
from numpy_optim.radam import RAdam, radam_compiled, radam_step, radam_update_

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
#: The backend the hand-computed steps run on (both must give the hand values).
BACKENDS = [pytest.param("numpy", id="numpy"), pytest.param("numba", id="numba", marks=pytest.mark.numba)]


def fma(a: float, b: float, c: float) -> float:
    """a * b + c rounded once to float64 (exact rationals, then one correctly rounded conversion)."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def f32(x: float) -> float:
    """A Python float stored in a float32 0-d tensor (torch's mu_product)."""
    return float(np.float32(x))


def bits(x) -> bytes:
    return np.asarray(x).tobytes()


# --------------------------------------------------------------------------------------
# Hand-computed steps
# --------------------------------------------------------------------------------------


def nadam_by_hand(p, grads, *, lr, b1, b2, eps, wd=0.0, psi=4e-3, decoupled=False, maximize=False):
    """One float64 element through torch's single-tensor NAdam (§3.5), op by op."""
    m = v = 0.0
    mp = 1.0  # state["mu_product"], a float32 0-d tensor
    trace = []
    for t, g in enumerate(grads, start=1):
        step = float(t)
        g = -g if maximize else g
        bc2 = 1 - b2**step
        if wd != 0:
            if decoupled:
                p = p * (1 - lr * wd)
            else:
                g = fma(p, wd, g)  # grad.add(param, alpha=wd): one rounding
        mu = b1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
        mu_next = b1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        mp = f32(mp * f32(mu))  # mu_product *= mu
        w = 1 - b1  # lerp(m, g, w): fma(w, g - m, m) for w < 0.5, else fma(w - 1, g - m, g)
        m = fma(w, g - m, m) if w < 0.5 else fma(w - 1, g - m, g)
        v = fma((1 - b2) * g, g, v * b2)  # mul_(b2).addcmul_(g, g, value=1 - b2): value * g, then one fma
        d = math.sqrt(v / bc2) + eps  # division inside the sqrt
        mpn = mp * mu_next
        p = p + ((-lr * (1.0 - mu) / (1.0 - mp)) * g) / d  # addcdiv: value * g, / d, +
        p = p + (((-lr * mu_next) / (1.0 - mpn)) * m) / d
        trace.append((p, m, v, mp))
    return trace


def radam_by_hand(p, grads, *, lr, b1, b2, eps, wd=0.0, decoupled=False, maximize=False):
    """One float64 element through torch's single-tensor RAdam (§3.6), op by op."""
    m = v = 0.0
    trace = []
    for t, g in enumerate(grads, start=1):
        step = float(t)
        g = -g if maximize else g
        if wd != 0:
            if decoupled:
                p = p * (1 - lr * wd)
            else:
                g = fma(p, wd, g)
        w = 1 - b1
        m = fma(w, g - m, m) if w < 0.5 else fma(w - 1, g - m, g)
        v = fma((1 - b2) * g, g, v * b2)
        bc1, bc2 = 1 - b1**step, 1 - b2**step
        mhat = m / bc1
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * (b2**step) / bc2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            s = math.sqrt(v) + eps
            adaptive = (1 / s) * (bc2**0.5)  # Python float / tensor: reciprocal, then multiply
            u = ((mhat * lr) * adaptive) * rect
        else:
            u = mhat * lr
        p = p - u  # add_(u, alpha=-1)
        trace.append((p, m, v, rho_t))
    return trace


# 96 elements of mixed sign and magnitude (rounding differences between op orders are rare
# per element: enough elements that a wrong order shows), 7 steps of gradients.
_RNG = np.random.default_rng(2024)
X0 = list(_RNG.standard_normal(96) * 10.0 ** _RNG.integers(-3, 2, 96))
GRADS = [list(_RNG.standard_normal(96) * 10.0 ** _RNG.integers(-4, 3, 96)) for _ in range(7)]


def run(cls, kwargs, steps, dtype=np.float64, x0=X0, grads=GRADS, backend="numpy"):
    x = np.array(x0, dtype)
    g = np.zeros_like(x)
    opt = cls([{"params": x, "grad": g}], **kwargs)
    out = []
    for t in range(steps):
        g[...] = np.array(grads[t], dtype)
        with use_backend(backend):
            opt.step()
        out.append((x.copy(), {k: np.array(b, copy=True) for k, b in opt.state[0].items()}))
    return opt, out


@pytest.mark.parametrize("backend", BACKENDS)
def test_nadam_momentum_schedule_and_mu_product_at_steps_1_and_2(backend):
    # mu_t = 0.9 * (1 - 0.5 * 0.96 ** (0.004 t)); 0.96 ** 0.004 = exp(0.004 ln 0.96) = 0.9998367254
    mu1 = momentum_schedule(0.9, 4e-3, 1.0)
    mu2 = momentum_schedule(0.9, 4e-3, 2.0)
    assert mu1 == 0.9 * (1.0 - 0.5 * (0.96 ** (1.0 * 4e-3)))
    assert mu1 == pytest.approx(0.4500734736, rel=1e-9)  # 0.9 * (1 - 0.5 * 0.9998367254)
    assert mu2 == pytest.approx(0.4501469352, rel=1e-9)  # 0.9 * (1 - 0.5 * 0.9996734774)
    _, out = run(NAdam, {"lr": 0.01}, 2, backend=backend)
    mp1, mp2 = out[0][1]["mu_product"], out[1][1]["mu_product"]
    assert mp1.shape == () and mp1.dtype == np.float32 and mp2.dtype == np.float32
    assert float(mp1) == f32(mu1)                        # 1.0 * f32(mu_1), rounded to float32
    assert float(mp2) == f32(f32(mu1) * f32(mu2))        # f32(mp_1 * f32(mu_2))
    assert float(mp2) == pytest.approx(0.2025992, rel=1e-6)  # 0.450073 * 0.450147
    assert float(mp2) != mu1 * mu2                       # not the float64 product


@pytest.mark.parametrize("kwargs", [
    {"lr": 0.01},
    {"lr": 0.01, "weight_decay": 0.3},
    {"lr": 0.01, "weight_decay": 0.3, "decoupled_weight_decay": True},
    {"lr": 0.1, "betas": (0.3, 0.99), "eps": 1e-3, "momentum_decay": 0.05, "maximize": True},
    {"lr": 0.1, "betas": (0.0, 0.9), "momentum_decay": 0.0},
], ids=["defaults", "L2", "decoupled", "beta1<0.5-maximize", "beta1=0-psi=0"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_nadam_one_and_two_steps_by_hand(kwargs, backend):
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    _, out = run(NAdam, kwargs, 2, backend=backend)
    for i, (x0, *g) in enumerate(zip(X0, *GRADS[:2])):
        trace = nadam_by_hand(x0, g, lr=kwargs["lr"], b1=b1, b2=b2, eps=kwargs.get("eps", 1e-8),
                              wd=kwargs.get("weight_decay", 0.0), psi=kwargs.get("momentum_decay", 4e-3),
                              decoupled=kwargs.get("decoupled_weight_decay", False),
                              maximize=kwargs.get("maximize", False))
        for step, (p, m, v, mp) in enumerate(trace):
            x, state = out[step]
            assert bits(x[i]) == bits(np.float64(p)), (step + 1, i, x[i], p)
            assert bits(state["exp_avg"][i]) == bits(np.float64(m))
            assert bits(state["exp_avg_sq"][i]) == bits(np.float64(v))
            assert bits(state["mu_product"]) == bits(np.float32(mp))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nadam_first_step_in_closed_form(backend):
    # Step 1 from m = v = 0: m = 0.1 g, v = 0.001 g^2, d = sqrt(v / 0.001) + eps = |g| + eps, mu_product = mu_1:
    # x -= lr (1 - mu_1)/(1 - mu_1) g/d + lr mu_2/(1 - mu_1 mu_2) 0.1 g/d = 0.002 + 0.002 * 0.45015 / 0.79740 / 10
    _, out = run(NAdam, {}, 1, x0=[3.0], grads=[[6.0]], backend=backend)
    assert out[0][0][0] == pytest.approx(3 - 0.002 - 0.002 * 0.4501469352 / (1 - 0.4500734736 * 0.4501469352) / 10,
                                         rel=1e-12, abs=1e-9)


def test_radam_switches_to_the_rectified_step_at_step_6():
    # rho_inf = 2 / 0.001 - 1 = 1999; rho_t = 1999 - 2 t 0.999^t / (1 - 0.999^t):
    # rho_5 = 4.99600 (<= 5: plain momentum), rho_6 = 5.99416 (> 5: rectified).
    rho = {}
    for t in range(1, 8):
        k = radam_step(step=t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False,
                       decoupled_weight_decay=False, dtype=np.dtype(np.float64))
        rho[t] = 1999 - 2 * t * 0.999**t / (1 - 0.999**t)
        assert k.rectified == (t >= 6)
    assert rho[5] == pytest.approx(4.995998, abs=1e-6) and rho[6] == pytest.approx(5.994164, abs=1e-6)
    k6 = radam_step(step=6, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False,
                    decoupled_weight_decay=False, dtype=np.dtype(np.float64))
    # r_6 = sqrt(1.99416 * 3.99416 * 1999 / (1995 * 1997 * 5.99416)) = sqrt(6.6673e-4)
    assert k6.rect == pytest.approx(0.0258211128, rel=1e-8)
    # beta2 = 0.9 and 0.99 switch at step 6 as well; beta2 <= 2/3 (rho_inf <= 5) never does.
    for beta2, switch in ((0.9, 6), (0.99, 6), (2 / 3, None), (0.5, None), (0.0, None)):
        flags = [radam_step(step=t, lr=1e-3, beta1=0.9, beta2=beta2, eps=1e-8, weight_decay=0.0, maximize=False,
                            decoupled_weight_decay=False, dtype=np.dtype(np.float64)).rectified
                 for t in range(1, 2001)]
        assert flags == [switch is not None and t >= switch for t in range(1, 2001)], beta2


@pytest.mark.parametrize("kwargs", [
    {"lr": 0.01},
    {"lr": 0.01, "weight_decay": 0.3},
    {"lr": 0.01, "weight_decay": 0.3, "decoupled_weight_decay": True, "maximize": True},
    {"lr": 0.1, "betas": (0.3, 0.99), "eps": 1e-3},
    {"lr": 0.1, "betas": (0.9, 0.5)},
], ids=["defaults", "L2", "decoupled-maximize", "beta1<0.5", "never-rectified"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_radam_seven_steps_by_hand(kwargs, backend):
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    _, out = run(RAdam, kwargs, 7, backend=backend)
    for i, (x0, *g) in enumerate(zip(X0, *GRADS)):
        trace = radam_by_hand(x0, g, lr=kwargs["lr"], b1=b1, b2=b2, eps=kwargs.get("eps", 1e-8),
                              wd=kwargs.get("weight_decay", 0.0),
                              decoupled=kwargs.get("decoupled_weight_decay", False),
                              maximize=kwargs.get("maximize", False))
        for step, (p, m, v, _) in enumerate(trace):
            x, state = out[step]
            assert bits(x[i]) == bits(np.float64(p)), (step + 1, i, x[i], p)
            assert bits(state["exp_avg"][i]) == bits(np.float64(m))
            assert bits(state["exp_avg_sq"][i]) == bits(np.float64(v))


@pytest.mark.parametrize("backend", BACKENDS)
def test_radam_unrectified_steps_are_plain_bias_corrected_momentum(backend):
    # Steps 1..5 (beta2 = 0.999): x_t = x_{t-1} - lr * m_t / (1 - 0.9^t), no second moment at all.
    x0, g = 3.0, [6.0, -2.0, 1.5, 0.5, -1.0]
    _, out = run(RAdam, {"lr": 0.01}, 5, x0=[x0], grads=[[v] for v in g], backend=backend)
    m, x = 0.0, x0
    for t in range(1, 6):
        m = 0.9 * m + 0.1 * g[t - 1]
        x = x - 0.01 * m / (1 - 0.9**t)
        assert out[t - 1][0][0] == pytest.approx(x, rel=1e-14)
    assert out[0][0][0] == 3.0 - 0.01 * 6.0  # step 1: m_1 / (1 - 0.9) = g_1 (0.6 / 0.1, exact here)


def test_nadam_mu_product_underflows_to_zero_and_steps_stay_finite():
    # mu_t < 0.52 for t < 1000, so prod mu_t < 0.52^t falls below float32's 1.4e-45 by step ~150.
    opt, out = run(NAdam, {}, 1, x0=[1.0], grads=[[0.5]])
    g = opt.param_groups[0]["grad"]
    for _ in range(299):
        opt.step()
    assert float(opt.state[0]["mu_product"]) == 0.0 and opt.state[0]["mu_product"].dtype == np.float32
    assert np.isfinite(opt.param_groups[0]["params"]).all() and g[0] == 0.5


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def entries(dtype=np.float64):
    return [{"params": np.ones(3, dtype), "grad": np.ones(3, dtype)}]


@pytest.mark.parametrize("cls", [NAdam, RAdam])
@pytest.mark.parametrize("name, value, error, text", [
    ("lr", -1e-3, ValueError, "Invalid lr value: -0.001"),
    ("eps", -1.0, ValueError, "Invalid eps value: -1.0"),
    ("weight_decay", -0.5, ValueError, "Invalid weight_decay value: -0.5"),
    ("betas", (1.0, 0.999), ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("betas", (0.9, -0.1), ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("betas", (0.9,), TypeError, "Invalid betas: (0.9,)"),
    ("lr", float("nan"), ValueError, "Invalid lr value: nan"),
    ("eps", float("inf"), ValueError, "Invalid eps value: inf"),
    ("lr", "0.1", TypeError, "Invalid lr: '0.1'"),
    ("maximize", 1, TypeError, "Invalid maximize: 1"),
    ("decoupled_weight_decay", "yes", TypeError, "Invalid decoupled_weight_decay: 'yes'"),
])
def test_validation(cls, name, value, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        cls(entries(), **{name: value})


@pytest.mark.parametrize("value, error", [(-4e-3, ValueError), (float("nan"), ValueError), (True, TypeError)])
def test_nadam_momentum_decay_validation(value, error):
    with pytest.raises(error, match=f"Invalid momentum_decay{' value' if error is ValueError else ''}: {value!r}"):
        NAdam(entries(), momentum_decay=value)


def test_radam_has_no_momentum_decay_and_maximize_is_keyword_only():
    with pytest.raises(ValueError, match="Unknown hyperparameter 'momentum_decay'"):
        RAdam([{**entries()[0], "momentum_decay": 0.1}])
    with pytest.raises(TypeError):
        RAdam(entries(), 1e-3, (0.9, 0.999), 1e-8, 0.0, False, True)  # maximize positionally
    with pytest.raises(TypeError):
        NAdam(entries(), 1e-3, (0.9, 0.999), 1e-8, 0.0, 4e-3, False, True)


@pytest.mark.parametrize("cls", [NAdam, RAdam])
def test_refused_step_changes_nothing(cls):
    items = entries() + [{"params": np.full(2, 2.0), "grad": np.ones(2)}]
    opt = cls(items)
    opt.step()
    before = [e["params"].copy() for e in items], {i: {k: b.copy() for k, b in s.items()}
                                                     for i, s in opt.state.items() if i != "step"}
    items[1]["weight_decay"] = -1.0
    with pytest.raises(ValueError, match=r"params\[1\]: Invalid weight_decay value: -1.0"):
        opt.step()
    assert opt.state["step"] == 1
    for e, x in zip(items, before[0]):
        assert e["params"].tobytes() == x.tobytes()
    for i, buffers in before[1].items():
        for k, b in buffers.items():
            assert opt.state[i][k].tobytes() == b.tobytes(), (i, k)


# --------------------------------------------------------------------------------------
# Per-entry overrides, state dicts
# --------------------------------------------------------------------------------------


OVERRIDES = {
    NAdam: [{"weight_decay": 0.0}, {"betas": (0.5, 0.99)}, {"momentum_decay": 0.1, "lr": 0.02},
            {"decoupled_weight_decay": True}, {"maximize": True}, {}],
    RAdam: [{"weight_decay": 0.0}, {"betas": (0.5, 0.9)}, {"lr": 0.02, "eps": 1e-4},
            {"decoupled_weight_decay": True}, {"maximize": True}, {}],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [NAdam, RAdam])
def test_per_entry_overrides_equal_separate_optimizers(cls, dtype):
    base = {"lr": 0.01, "weight_decay": 0.1}
    rng = np.random.default_rng(5)
    shapes = [(7,), (3, 4), (), (5,), (2, 2), (9,)]
    x0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    together = [{"params": x.copy(), "grad": np.zeros_like(x), **o} for x, o in zip(x0, OVERRIDES[cls])]
    opt = cls(together, **base)
    alone = [cls([{"params": x.copy(), "grad": np.zeros_like(x)}], **{**base, **o}) for x, o in zip(x0, OVERRIDES[cls])]
    for _ in range(8):
        for e, a in zip(together, alone):
            g = rng.standard_normal(e["params"].shape).astype(dtype)
            e["grad"][...] = g
            a.param_groups[0]["grad"][...] = g
            a.step()
        opt.step()
        for i, (e, a) in enumerate(zip(together, alone)):
            assert e["params"].tobytes() == a.param_groups[0]["params"].tobytes(), i
            for name, buf in opt.state[i].items():
                assert buf.tobytes() == a.state[0][name].tobytes(), (i, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", [(NAdam, {"weight_decay": 0.1}), (RAdam, {"weight_decay": 0.1})])
def test_state_dict_round_trip_continues_bitwise(cls, kwargs, dtype):
    rng = np.random.default_rng(7)
    x0 = [rng.standard_normal(s).astype(dtype) for s in [(6,), (2, 3), ()]]
    grads = [[rng.standard_normal(x.shape).astype(dtype) for x in x0] for _ in range(12)]

    def make():
        items = [{"params": x.copy(), "grad": np.zeros_like(x)} for x in x0]
        items[1]["betas"] = (0.8, 0.99)
        return cls(items, **kwargs)

    def steps(opt, gs):
        for step_grads in gs:
            for e, g in zip(opt.param_groups, step_grads):
                e["grad"][...] = g
            opt.step()

    straight, first = make(), make()
    steps(straight, grads)
    steps(first, grads[:5])  # 5 steps: RAdam's next step is its first rectified one
    saved = first.state_dict()
    if cls is NAdam:
        mp = saved["state"][0]["mu_product"]
        assert isinstance(mp, np.ndarray) and mp.shape == () and mp.dtype == np.float32
        assert set(saved["state"][0]) == {"exp_avg", "exp_avg_sq", "mu_product"}
    else:
        assert set(saved["state"][0]) == {"exp_avg", "exp_avg_sq"}
    resumed = make()
    for e, f in zip(resumed.param_groups, first.param_groups):
        e["params"][...] = f["params"]
    resumed.load_state_dict(saved)
    steps(first, grads[5:])  # the snapshot is independent of the optimizer it came from
    steps(resumed, grads[5:])
    for opt in (first, resumed):
        assert opt.state["step"] == straight.state["step"] == 12
        for i, e in enumerate(opt.param_groups):
            assert e["params"].tobytes() == straight.param_groups[i]["params"].tobytes()
            assert sorted(opt.state[i]) == sorted(straight.state[i])
            for name, buf in opt.state[i].items():
                assert buf.tobytes() == straight.state[i][name].tobytes() and buf.dtype == straight.state[i][name].dtype


def test_nadam_state_dict_refuses_a_float64_mu_product():
    opt = NAdam(entries())
    opt.step()
    saved = opt.state_dict()
    saved["state"][0]["mu_product"] = np.array(0.5)  # float64: torch keeps float32
    with pytest.raises(ValueError, match="mu_product"):
        opt.load_state_dict(saved)


# --------------------------------------------------------------------------------------
# Compiled and blocked kernels are bitwise the NumPy kernel on whole arrays
# --------------------------------------------------------------------------------------


def snapshot(opt):
    out = []
    for i, e in enumerate(opt.param_groups):
        out.append((f"params[{i}]", e["params"].tobytes()))
        for name, buf in sorted(opt.state.get(i, {}).items()):
            out.append((f"state[{i}][{name}]", buf.dtype.str + buf.tobytes().hex()))
    return out


def run_sides(cls, kwargs, shapes, dtype, side, *, steps=8, overrides=None, settings=None, scale=3.0):
    rng = np.random.default_rng(11)
    x0 = [rng.standard_normal(s).astype(dtype) for s in shapes]

    def make():
        return cls([{"params": x.copy(), "grad": np.zeros_like(x), **(overrides or {}).get(i, {})}
                    for i, x in enumerate(x0)], **kwargs)

    reference, other = make(), make()
    for step in range(steps):
        for a, b in zip(reference.param_groups, other.param_groups):
            g = (rng.standard_normal(a["grad"].shape) * scale).astype(dtype)
            a["grad"][...] = g
            b["grad"][...] = g
        with np.errstate(all="ignore"):
            with running("whole"):
                reference.step()
            with running(side, settings):
                other.step()
        for (where, x), (_, y) in zip(snapshot(reference), snapshot(other)):
            assert x == y, f"{side}: {cls.__name__}({kwargs}) {np.dtype(dtype)} step {step + 1}: {where} differs"


FLAG_CONFIGS = [
    pytest.param(cls, {"lr": 0.01, "weight_decay": wd, "decoupled_weight_decay": dec, "maximize": mx,
                       "betas": betas}, id=f"{cls.__name__}-wd{wd}-dec{dec}-max{mx}-b{betas[0]}")
    for cls in (NAdam, RAdam)
    for wd, dec in ((0.0, False), (0.1, False), (0.1, True))
    for mx in (False, True)
    for betas in ((0.9, 0.999), (0.3, 0.9))
]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", FLAG_CONFIGS)
def test_blocked_threaded_and_compiled_are_bitwise_the_reference(cls, kwargs, dtype, side):
    run_sides(cls, kwargs, SHAPES, dtype, side)  # RAdam: steps 1-5 plain, 6-8 rectified


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [NAdam, RAdam])
def test_default_blocks_one_thread_ragged_large_parameter(cls, dtype, side):
    block = _blocks.settings.block_bytes // np.dtype(dtype).itemsize
    run_sides(cls, {"weight_decay": 0.01}, [(2 * block + 12_345,), (5,), (40, 3), ()], dtype, side, steps=7,
              settings={"threads": 1})


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("cls", [NAdam, RAdam])
def test_many_small_parameters_with_overrides_are_bitwise_the_reference(cls, side):
    shapes = [(int(n),) for n in np.random.default_rng(3).integers(1, 90, size=40)] + [(4, 4), ()]
    per_entry = OVERRIDES[cls]
    overrides = {i: per_entry[i % len(per_entry)] for i in range(0, len(shapes), 2)}
    run_sides(cls, {"lr": 0.01, "weight_decay": 0.1}, shapes, np.float32, side, steps=7, overrides=overrides)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_are_bitwise_the_reference(dtype, side):
    # zeros (0/0 with eps = 0), huge and tiny gradients, through both optimizers.
    for cls in (NAdam, RAdam):
        for kwargs in ({"eps": 0.0}, {"eps": 1e-12, "weight_decay": 1.0}, {"betas": (0.0, 0.0)}):
            for scale in (0.0, 1e-30, 1e30):
                run_sides(cls, kwargs, [(7,), (33,), ()], dtype, side, steps=7, scale=scale)


@pytest.mark.numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_compiled_flag_combination_is_bitwise_the_numpy_kernel(dtype):
    # Each factory's kernel, compiled, on one array against the NumPy kernel, over all 2^n flag tuples.
    from numpy_optim import _compiled

    rng = np.random.default_rng(0)
    n = 37
    for step_fn, update, factory, extra in ((nadam_step, nadam_update_, nadam_compiled, {"momentum_decay": 4e-3,
                                                                                         "mu_product": 0.2}),
                                            (radam_step, radam_update_, radam_compiled, {})):
        for step, beta1, wd, decoupled, maximize in itertools.product((1, 6), (0.9, 0.2), (0.0, 0.3), (False, True),
                                                                      (False, True)):
            k = step_fn(step=step, lr=0.01, beta1=beta1, beta2=0.999, eps=1e-8, weight_decay=wd, maximize=maximize,
                        decoupled_weight_decay=decoupled, dtype=np.dtype(dtype), **extra)
            arrays = [rng.standard_normal(n).astype(dtype) for _ in range(2)] + [
                (rng.standard_normal(n) * 0.1).astype(dtype), (rng.random(n) * 0.01).astype(dtype)]
            mine = [a.copy() for a in arrays]
            scratch = [np.empty(n, dtype) for _ in range(3)] + ([np.empty(n)] if dtype == np.float32 else [])
            update(mine, scratch, k)
            flags = tuple(v for v in k if isinstance(v, bool))
            constants = np.array([v for v in k if not isinstance(v, bool)], dtype)
            table = np.array([[n] + [a.ctypes.data for a in arrays]], np.int64)
            _compiled.kernel(factory, flags)(table, constants)
            for a, b in zip(arrays, mine):
                assert a.tobytes() == b.tobytes(), (factory.__name__, flags)


def test_float64_step_sizes_use_the_float32_mu_product():
    # Like torch: even for float64 parameters mu_product is a float32 0-d array.
    opt, _ = run(NAdam, {}, 3)
    assert opt.state[0]["mu_product"].dtype == np.float32
    with use_backend("numpy"):
        opt.step()
    assert opt.state[0]["mu_product"].dtype == np.float32
