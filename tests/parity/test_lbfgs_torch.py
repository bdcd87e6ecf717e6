"""LBFGS against torch.optim.LBFGS: the port op for op, closeness, state, validation, the harness.

* With torch's three reduction primitives swapped in (``torch.dot`` for ``np.dot``, the
  0-d ``Tensor.sqrt`` for ``np.sqrt``, ``Tensor.sum`` for ``np.sum``), numpy_optim's LBFGS
  is bit for bit torch's: parameters and every state value, after every step, on the
  parity harness's closure cases, Rosenbrock and a quadratic. That pins the port: every
  other operation, its rounding and its float-vs-0-d-tensor typing, is torch's.
* As shipped (``np.dot``/``np.sqrt``/``np.sum``) it agrees with torch to rounding; in
  float64 on Rosenbrock and a quadratic it takes the same branches (equal ``func_evals``
  and ``n_iter``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import parity
from numpy_optim import lbfgs
from numpy_optim.lbfgs import LBFGS
from numpy_optim.problems import Rosenbrock
from parity import harness
from parity.strategies import HYPERPARAMETERS

CONFIGS = [
    pytest.param({"lr": 0.1}, id="fixed-lr0.1"),
    pytest.param({"lr": 1, "max_iter": 5, "history_size": 2}, id="fixed-history2"),
    pytest.param({"line_search_fn": "strong_wolfe"}, id="strong-wolfe"),
    pytest.param({"line_search_fn": "strong_wolfe", "max_iter": 7, "history_size": 3, "max_eval": 9},
                 id="strong-wolfe-history3"),
    pytest.param({"line_search_fn": "strong_wolfe", "lr": 0.3, "tolerance_change": 1e-12}, id="strong-wolfe-lr0.3"),
]
DTYPES = ["float64", "float32"]


def patch_torch_primitives(monkeypatch):
    """Swap torch's dot, 0-d sqrt and sum into numpy_optim.lbfgs."""
    def dot(a, b):
        return a.dtype.type(torch.dot(torch.from_numpy(np.ascontiguousarray(a)),
                                      torch.from_numpy(np.ascontiguousarray(b))).item())

    monkeypatch.setattr(lbfgs, "_dot", dot)
    monkeypatch.setattr(lbfgs, "_sqrt", lambda x: x.dtype.type(torch.tensor(x).sqrt().item()))
    monkeypatch.setattr(lbfgs, "_sum", lambda v: v.dtype.type(torch.from_numpy(v).sum().item()))


@pytest.fixture
def torch_primitives(monkeypatch):
    patch_torch_primitives(monkeypatch)


# ----- problems: the same NumPy code computes both sides' losses and gradients -------------


def rosenbrock_problem():
    problem = Rosenbrock()
    return [np.array([-1.5, 2.0])], lambda xs: problem.value(xs[0]), lambda xs: [problem.gradient(xs[0])]


def quadratic_problem(seed=0):
    """sum(c * (x - m)**2) / 2 over entries of shapes (5,), (2, 3), () (12 elements)."""
    rng = np.random.default_rng(seed)
    shapes = [(5,), (2, 3), ()]
    c = [rng.uniform(0.1, 1.0, s) for s in shapes]
    m = [rng.standard_normal(s) for s in shapes]
    x0 = [rng.standard_normal(s) for s in shapes]

    def value(xs):
        return sum(float(np.sum(ci.astype(x.dtype) * (x - mi.astype(x.dtype)) ** 2)) / 2 for x, ci, mi in zip(xs, c, m))

    def gradient(xs):
        return [ci.astype(x.dtype) * (x - mi.astype(x.dtype)) for x, ci, mi in zip(xs, c, m)]

    return x0, value, gradient


def run_both(problem, kwargs, dtype, steps):
    """Run ours and torch's ``steps`` times; return per-step (params, state) of each."""
    x0, value, gradient = problem
    params = [np.array(x, dtype) for x in x0]
    entries = [{"params": p, "grad": np.zeros_like(p)} for p in params]
    ours = LBFGS(entries, **kwargs)

    def closure():
        for e, g in zip(entries, gradient(params)):
            e["grad"][...] = g
        return value(params)

    tparams = [torch.tensor(x, dtype=getattr(torch, dtype), requires_grad=True) for x in x0]
    theirs = torch.optim.LBFGS(tparams, **kwargs)

    def tclosure():
        xs = [p.detach().numpy() for p in tparams]
        for p, g in zip(tparams, gradient(xs)):
            p.grad = torch.from_numpy(np.array(g, dtype=dtype))
        return value(xs)

    record, losses = [], []
    for _ in range(steps):
        losses.append((ours.step(closure), theirs.step(tclosure)))  # each step's first loss
        record.append((
            [p.copy() for p in params], lbfgs.LBFGS._copy_state(ours.state[0]),
            [p.detach().numpy().copy() for p in tparams], _snapshot(theirs.state[tparams[0]]),
        ))
    return record, losses


def _snapshot(value):
    """torch's state as it is now (torch writes into prev_flat_grad and al later)."""
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snapshot(v) for v in value]
    return value.clone() if isinstance(value, torch.Tensor) else value


def assert_same_value(ours, theirs, where):
    """Bit for bit, and typed alike: a 0-d tensor is a NumPy scalar of its dtype, a tensor an
    array, a Python number the same Python number, a list item by item."""
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), where
        for k, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_value(a, b, f"{where}[{k}]")
    elif isinstance(theirs, torch.Tensor) and theirs.dim() == 0:
        assert isinstance(ours, np.generic), (where, type(ours))
        b = theirs.numpy()
        assert ours.dtype == b.dtype and np.asarray(ours).tobytes() == b.tobytes(), (where, ours, theirs)
    elif isinstance(theirs, torch.Tensor):
        b = theirs.numpy()
        assert isinstance(ours, np.ndarray) and ours.dtype == b.dtype and ours.tobytes() == b.tobytes(), where
    elif theirs is None:
        assert ours is None, where
    else:
        assert not isinstance(ours, np.generic), (where, type(ours), type(theirs))
        assert float(ours) == float(theirs) or (ours != ours and theirs != theirs), (where, ours, theirs)


def assert_bitwise(run):
    record, losses = run
    for step, (a, b) in enumerate(losses, start=1):
        assert type(a) is type(b) is float and (a == b or a != a and b != b), f"step {step}: loss {a} vs {b}"
    for step, (p, s, tp, ts) in enumerate(record, start=1):
        for i, (a, b) in enumerate(zip(p, tp)):
            assert a.tobytes() == b.tobytes(), f"step {step}: params[{i}] ours={a} torch={b}"
        assert set(s) == set(ts), f"step {step}: state keys {sorted(s)} vs torch {sorted(ts)}"
        for name in ts:
            assert_same_value(s[name], ts[name], f"step {step}: state[{name!r}]")


# ----- bit for bit with torch's primitives ---------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", CONFIGS)
@pytest.mark.parametrize("problem", [rosenbrock_problem, quadratic_problem], ids=["rosenbrock", "quadratic"])
def test_bitwise_with_torch_primitives(torch_primitives, problem, kwargs, dtype):
    assert_bitwise(run_both(problem(), kwargs, dtype, steps=4))


@settings(max_examples=25)
@given(spec=harness.closure_case_specs("LBFGS", HYPERPARAMETERS["LBFGS"], max_steps=8))
def test_bitwise_with_torch_primitives_on_harness_cases(spec):
    # (Hypothesis refuses function-scoped fixtures: patch by hand)
    with pytest.MonkeyPatch.context() as mp:
        patch_torch_primitives(mp)
        case = harness.build_case(spec)

        def value(xs):
            return parity.trajectories.closed_loop_loss(case, xs)

        def gradient(xs):
            return [parity.trajectories.closed_loop_gradient(case, i, x) for i, x in enumerate(xs)]

        with np.errstate(all="ignore"):
            assert_bitwise(run_both((case.x0, value, gradient), spec.hyperparameters, spec.dtype, spec.steps))


# ----- as shipped: close, same control flow -----------------------------------------------


@pytest.mark.parametrize("kwargs", CONFIGS)
@pytest.mark.parametrize("problem", [rosenbrock_problem, quadratic_problem], ids=["rosenbrock", "quadratic"])
def test_float64_close_to_torch_with_the_same_evaluations(problem, kwargs):
    record, losses = run_both(problem(), kwargs, "float64", steps=5)
    for a, b in losses:
        assert a == pytest.approx(b, rel=1e-7, abs=1e-12)
    for step, (p, s, tp, ts) in enumerate(record, start=1):
        for i, (a, b) in enumerate(zip(p, tp)):
            # (Rosenbrock's valley amplifies the last-bit differences of the dot products
            # to ~1e-10 relative over 5 steps of up to 20 iterations)
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=f"step {step}, params[{i}], {kwargs}")
        assert (s["func_evals"], s["n_iter"]) == (ts["func_evals"], ts["n_iter"]), f"step {step}, {kwargs}"
        assert len(s["old_dirs"]) == len(ts["old_dirs"])


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_float32_close_to_torch(kwargs):
    for step, (p, _, tp, _) in enumerate(run_both(quadratic_problem(), kwargs, "float32", steps=3)[0], start=1):
        for i, (a, b) in enumerate(zip(p, tp)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"step {step}, params[{i}], {kwargs}")


def test_state_is_typed_as_torch_types_it():
    # t after the first iteration ever: min(1.0, 1/|g|_1) * lr is a 0-d tensor when |g|_1 > 1
    # (Rosenbrock at (-1.5, 2): |g|_1 = 2*2.5 + 4*100*1.5*0.25 + 2*100*0.25 = 205); ro and
    # H_diag are 0-d tensors; func_evals, n_iter ints; prev_loss a float.
    (_, s, _, ts), = run_both(rosenbrock_problem(), {"max_iter": 1}, "float64", steps=1)[0]
    assert isinstance(ts["t"], torch.Tensor) and type(s["t"]) is np.float64
    assert ts["H_diag"] == 1 and s["H_diag"] == 1 and type(s["H_diag"]) is type(ts["H_diag"]) is int
    (_, s, _, ts), (_, s2, _, ts2) = run_both(rosenbrock_problem(), {"max_iter": 2}, "float32", steps=2)[0]
    assert isinstance(ts2["H_diag"], torch.Tensor) and type(s2["H_diag"]) is np.float32
    assert type(ts2["t"]) in (int, float) and type(s2["t"]) is float  # t = lr after the first iteration
    assert all(type(r) is np.float32 for r in s2["ro"]) and all(isinstance(r, torch.Tensor) for r in ts2["ro"])
    assert type(s2["prev_loss"]) is type(ts2["prev_loss"]) is float
    assert len(s2["al"]) == len(ts2["al"]) == 100


# ----- validation as torch's ---------------------------------------------------------------


def test_validation_messages_match_torch():
    p = torch.zeros(2, requires_grad=True)
    entries = [{"params": np.zeros(2), "grad": np.zeros(2)}]
    with pytest.raises(ValueError) as theirs:
        torch.optim.LBFGS([p], lr=-0.5)
    with pytest.raises(ValueError) as ours:
        LBFGS(entries, lr=-0.5)
    assert str(theirs.value) == "Invalid learning rate: -0.5"
    assert str(ours.value) == "Invalid learning rate: -0.5 (lr must be >= 0)"  # torch's words, naming lr
    with pytest.raises(ValueError) as theirs:
        torch.optim.LBFGS([{"params": [p]}, {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1}])
    with pytest.raises(ValueError) as ours:
        LBFGS(entries + [{"params": np.zeros(1), "grad": np.zeros(1), "lr": 0.1}])
    assert str(ours.value).startswith(str(theirs.value))
    with pytest.raises(TypeError) as theirs:
        torch.optim.LBFGS([p]).step()
    with pytest.raises(TypeError) as ours:
        LBFGS(entries).step()
    assert str(ours.value) == str(theirs.value)


def test_torch_accepts_an_unknown_line_search_until_the_first_iteration():
    # numpy_optim refuses it at construction (test_lbfgs.py); torch builds the optimizer,
    # then raises RuntimeError inside step(), after one closure call.
    p = torch.ones(2, requires_grad=True)
    opt = torch.optim.LBFGS([p], line_search_fn="backtracking")
    calls = []

    def closure():
        calls.append(1)
        p.grad = 2 * p.detach().clone()
        return float((p.detach() ** 2).sum())

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt.step(closure)
    assert calls == [1]
    with pytest.raises(ValueError, match="Invalid line_search_fn: 'backtracking'"):
        LBFGS([{"params": np.ones(2), "grad": np.zeros(2)}], line_search_fn="backtracking")


def test_torch_fails_after_history_size_is_lowered():
    # torch pops the oldest pair only when len(old_dirs) == history_size: lowered between
    # steps, the history grows past it, and past its list al (made once, of the old
    # history_size): IndexError. numpy_optim trims the history instead (test_lbfgs.py).
    x0, value, gradient = quadratic_problem()
    tparams = [torch.tensor(x, requires_grad=True, dtype=torch.float64) for x in x0]
    opt = torch.optim.LBFGS(tparams, history_size=5, max_iter=1, lr=0.5)

    def closure():
        xs = [p.detach().numpy() for p in tparams]
        for p, g in zip(tparams, gradient(xs)):
            p.grad = torch.from_numpy(np.array(g))
        return value(xs)

    for _ in range(8):
        opt.step(closure)
    assert len(opt.state[tparams[0]]["old_dirs"]) == 5
    opt.param_groups[0]["history_size"] = 2
    with pytest.raises(IndexError):
        opt.step(closure)
    assert len(opt.state[tparams[0]]["old_dirs"]) == 6


# ----- the parity harness runs closure optimizers --------------------------------------------


def test_harness_knows_which_steps_take_a_closure():
    assert harness.takes_closure(torch.optim.LBFGS)
    assert not harness.takes_closure(torch.optim.SGD)
    assert not harness.takes_closure(torch.optim.Adam)


@settings(max_examples=20)
@given(spec=harness.closure_case_specs("LBFGS", HYPERPARAMETERS["LBFGS"]))
def test_closure_cases_are_closed_loop_without_overrides_or_schedules(spec):
    assert spec.closed_loop and spec.schedule is None and spec.overrides == [{}] * len(spec.shapes)
    assert 1 <= spec.steps <= 30
    assert parity.CaseSpec.from_json(spec.to_json()) == spec


def test_run_case_on_a_closure_case():
    spec = parity.CaseSpec(
        pair="LBFGS", dtype="float64", hyperparameters={"lr": 1, "max_iter": 6, "max_eval": None,
        "tolerance_grad": 1e-7, "tolerance_change": 1e-9, "history_size": 3, "line_search_fn": "strong_wolfe"},
        overrides=[{}, {}], shapes=[(3,), (2, 2)], gradient_kinds=["normal", "normal"], steps=4, seed=7,
        closed_loop=True)
    results = harness.run_case(spec, LBFGS, torch.optim.LBFGS, name="LBFGS", buffers=("d", "t", "n_iter"),
                               fused=False, torch_has_step=False)
    names = {c.name for c in results["default"]}
    assert names == {"params[0]", "params[1]", "d[0]", "t[0]", "n_iter[0]"}  # state lives with entry 0
    assert all(c.violation is None and c.steps > 0 for c in results["default"])
    with pytest.raises(ValueError, match="closed loop only"):
        harness.run_case(parity.CaseSpec(**{**spec.__dict__, "closed_loop": False}), LBFGS, torch.optim.LBFGS,
                         name="LBFGS", buffers=(), fused=False, torch_has_step=False)
