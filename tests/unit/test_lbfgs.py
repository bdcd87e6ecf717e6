"""LBFGS without torch: hand-computed iterations, convergence, validation, state dicts, history.

The comparisons with torch.optim.LBFGS are in tests/parity/test_lbfgs_torch.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from numpy_optim.lbfgs import LBFGS, _cubic_interpolate, _div
from numpy_optim.mlp import MLP, make_classification_data
from numpy_optim.problems import Rosenbrock

DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]
LINE_SEARCHES = [pytest.param(None, id="fixed-step"), pytest.param("strong_wolfe", id="strong-wolfe")]


def quadratic_1d(x0, a, dtype=np.float64):
    """f(x) = a x**2 on a 1-element parameter: (entries, closure, x, calls)."""
    x = np.array([x0], dtype)
    g = np.zeros(1, dtype)
    calls = []

    def closure():
        calls.append(float(x[0]))
        g[...] = 2 * a * x
        return float(a * x[0] ** 2)

    return [{"params": x, "grad": g}], closure, x, calls


def rosenbrock(dtype=np.float64, start=(-1.5, 2.0)):
    problem = Rosenbrock()
    x = np.array(start, dtype)
    g = np.zeros_like(x)

    def closure():
        g[...] = problem.gradient(x)
        return problem.value(x)

    return [{"params": x, "grad": g}], closure, x


def separable_quadratic(n=10, dtype=np.float64, seed=0):
    """f(x) = sum(c * (x - m)**2) / 2 over three entries (shapes (4,), (2, 2), (n - 8,))."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.1, 1.0, n)
    m = rng.standard_normal(n)
    shapes = [(4,), (2, 2), (n - 8,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    entries = [{"params": p, "grad": np.zeros_like(p)} for p in params]
    cuts = np.cumsum([0] + [p.size for p in params])

    def closure():
        x = np.concatenate([p.ravel() for p in params]).astype(np.float64)
        grad = c * (x - m)
        for e, lo, hi in zip(entries, cuts[:-1], cuts[1:]):
            e["grad"][...] = grad[lo:hi].reshape(e["params"].shape)
        return float(np.sum(c * (x - m) ** 2) / 2)

    return entries, closure, params


# ----- hand-computed iterations ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_first_iteration_without_line_search_hand_computed(dtype):
    # f = x**2, x0 = 3: g = 6, d = -6, t = min(1, 1/|g|_1) * lr = (1/6) * 0.5 = 1/12, and
    # x1 = x0 + t d = 3 - 6/12 = 2.5. With one rounding of the fused x0 + t*d the error of
    # rn(1/6) (below 2**-55 relative) is far below half an ulp of 2.5: exactly 2.5.
    entries, closure, x, calls = quadratic_1d(3.0, 1.0, dtype)
    opt = LBFGS(entries, lr=0.5, max_iter=1)
    assert opt.step(closure) == 9.0  # the first loss, as torch returns it
    assert x[0] == 2.5
    assert calls == [3.0]  # the last of max_iter iterations does not re-evaluate
    state = opt.state[0]
    assert (state["func_evals"], state["n_iter"], opt.state["step"]) == (1, 1, 1)
    # t = (1/6) * 0.5 is a 0-d value of the parameters' dtype, as torch's 0-d tensor
    assert type(state["t"]) is np.dtype(dtype).type
    assert state["t"] == np.dtype(dtype).type(np.dtype(dtype).type(1) / 6) * np.dtype(dtype).type(0.5)
    assert state["H_diag"] == 1 and type(state["H_diag"]) is int  # torch: the int 1
    assert state["old_dirs"] == [] and state["ro"] == []
    np.testing.assert_array_equal(state["d"], [-6.0])
    np.testing.assert_array_equal(state["prev_flat_grad"], [6.0])
    assert state["prev_loss"] == 9.0


def test_first_iteration_with_small_gradient_takes_lr_as_a_python_number():
    # f = x**2, x0 = 0.25: g = 0.5, so 1/|g|_1 = 2 > 1 and t = min(1.0, 2) * lr = 1.0 * 0.5
    # (a Python float, as in torch); x1 = 0.25 + 0.5 * (-0.5) = 0.
    entries, closure, x, _ = quadratic_1d(0.25, 1.0)
    opt = LBFGS(entries, lr=0.5, max_iter=1)
    opt.step(closure)
    assert x[0] == 0.0
    assert type(opt.state[0]["t"]) is float and opt.state[0]["t"] == 0.5


@pytest.mark.parametrize("line_search_fn", LINE_SEARCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_two_iterations_on_a_1d_quadratic_hand_computed(dtype, line_search_fn):
    # f = 2 x**2 (f' = 4x), x0 = 2, lr = 1:
    # iteration 1: g = 8, d = -8, t = min(1, 1/8) = 0.125, x = 2 - 1 = 1, f = 2, g = 4.
    #   (strong Wolfe accepts t = 0.125 at once: f(1) = 2 <= 8 + 1e-4 * 0.125 * (-64) and
    #   |g(1) d| = 32 <= 0.9 * 64.)
    # iteration 2: y = 4 - 8 = -4, s = t d = -1, ys = 4 > 1e-10: ro = 1/4, H_diag = 4/16 = 1/4;
    #   q = -4; al = ro * s.q = 1; q = q - al y = 0; r = H_diag q = 0; be = ro * y.r = 0;
    #   r = r + (al - be) s = -1 = d; t = lr = 1; x = 1 - 1 = 0, f = 0, g = 0: optimal, stop.
    # (the strong-Wolfe search at x = 1 accepts t = 1 at once: f(0) = 0 <= 2 - 4e-4, g(0) = 0.)
    entries, closure, x, calls = quadratic_1d(2.0, 2.0, dtype)
    opt = LBFGS(entries, line_search_fn=line_search_fn)
    assert opt.step(closure) == 8.0
    assert x[0] == 0.0
    assert calls == [2.0, 1.0, 0.0]
    s = opt.state[0]
    assert (s["func_evals"], s["n_iter"]) == (3, 2)
    np.testing.assert_array_equal(s["d"], [-1.0])
    assert s["t"] == 1.0 and type(s["t"]) is float
    np.testing.assert_array_equal(s["old_dirs"][0], [-4.0])
    np.testing.assert_array_equal(s["old_stps"][0], [-1.0])
    assert s["ro"] == [0.25] and type(s["ro"][0]) is np.dtype(dtype).type
    assert s["H_diag"] == 0.25 and type(s["H_diag"]) is np.dtype(dtype).type
    np.testing.assert_array_equal(s["prev_flat_grad"], [4.0])
    assert s["prev_loss"] == 2.0
    assert s["al"][0] == 1.0 and len(s["al"]) == 100 and s["al"][1:] == [None] * 99
    # A further step finds g = 0 <= tolerance_grad at once: one evaluation, no iteration.
    assert opt.step(closure) == 0.0
    assert (opt.state[0]["func_evals"], opt.state[0]["n_iter"], opt.state["step"]) == (4, 2, 2)


def test_cubic_interpolate_hand_computed():
    # f(x) = x**3 - 3x through x1 = 0 (f = 0, f' = -3) and x2 = 2 (f = 2, f' = 9):
    # d1 = -3 + 9 - 3 (0 - 2) / (0 - 2) = 3, d2 = sqrt(9 + 27) = 6,
    # min_pos = 2 - 2 (9 + 6 - 3) / (9 + 3 + 12) = 1: the cubic's own minimizer.
    t = _cubic_interpolate(0, 0.0, np.float64(-3.0), 2.0, 2.0, np.float64(9.0))
    assert t == 1.0 and type(t) is np.float64
    # clamped to the bounds
    assert _cubic_interpolate(0, 0.0, np.float64(-3.0), 2.0, 2.0, np.float64(9.0), bounds=(1.5, 3.0)) == 1.5
    # no real minimizer: x1 = 0 (f = 0, g = 2), x2 = 1 (f = 1.5, g = 2):
    # d1 = 2 + 2 - 3 (0 - 1.5) / (0 - 1) = -0.5, d1**2 - g1 g2 = 0.25 - 4 < 0: the midpoint 0.5.
    mid = _cubic_interpolate(0.0, 0.0, np.float64(2.0), 1.0, 1.5, np.float64(2.0))
    assert mid == 0.5


def test_python_number_over_a_0d_value_is_reciprocal_times_number():
    # torch: float / tensor = tensor.reciprocal() * float, two roundings. For 3 / 7 in float32
    # that is rn(rn(1/7) * 3) = 0.42857146..., not the correctly rounded 3/7 = 0.42857143...
    seven = np.float32(7.0)
    assert _div(3.0, seven) == np.float32(np.float32(1) / seven) * np.float32(3)
    assert _div(3.0, seven) != np.float32(3) / seven
    assert _div(np.float32(3.0), seven) == np.float32(3) / seven  # tensor / tensor: one division
    with pytest.raises(ZeroDivisionError):  # Python numbers stay Python numbers, as in torch
        _div(1.0, 0.0)


# ----- convergence -----------------------------------------------------------------------


@pytest.mark.parametrize("line_search_fn,lr", [(None, 1), (None, 0.5), ("strong_wolfe", 1)],
                         ids=["fixed-lr1", "fixed-lr0.5", "strong-wolfe"])
def test_rosenbrock_converges(line_search_fn, lr):
    entries, closure, x = rosenbrock()
    opt = LBFGS(entries, lr=lr, max_iter=100, line_search_fn=line_search_fn)
    start = closure()
    for _ in range(10):
        opt.step(closure)
    assert Rosenbrock().value(x) < 1e-9 < start
    assert np.abs(x - 1.0).max() < 1e-4


@pytest.mark.parametrize("line_search_fn,lr", [(None, 0.2), ("strong_wolfe", 1)], ids=["fixed-lr0.2", "strong-wolfe"])
def test_mlp_trains_with_full_batch_lbfgs(line_search_fn, lr):
    # Full-batch L-BFGS on the spirals: the closure is the model's loss_and_gradients
    # (it writes the gradients in place and returns the loss). Without a line search the
    # fixed step needs a smaller lr here (lr = 1 diverges).
    X, y = make_classification_data(150, seed=0)
    model = MLP([2, 12, 12, 3], seed=0)
    opt = LBFGS(model.parameters(), lr=lr, max_iter=20, history_size=10, line_search_fn=line_search_fn)
    start = model.loss(X, y)  # about log(3) = 1.1
    for _ in range(8):
        opt.step(lambda: model.loss_and_gradients(X, y))
    assert start > 1.0
    assert model.loss(X, y) < 0.1
    assert model.accuracy(X, y) > 0.95
    assert opt.state[0]["func_evals"] >= 160  # 8 steps of 20 iterations (and more with the line search)


@pytest.mark.parametrize("dtype", DTYPES)
def test_separable_quadratic_converges_over_several_entries(dtype):
    entries, closure, params = separable_quadratic(n=12, dtype=dtype)
    opt = LBFGS(entries, line_search_fn="strong_wolfe", tolerance_change=0.0)
    for _ in range(3):
        opt.step(closure)
    assert closure() < (1e-12 if dtype == np.float64 else 1e-10)  # stopped by max|g| <= tolerance_grad = 1e-7
    assert all(p.dtype == dtype for p in params)


# ----- history ---------------------------------------------------------------------------


@pytest.mark.parametrize("line_search_fn", LINE_SEARCHES)
def test_history_size_is_respected(line_search_fn):
    entries, closure, _ = separable_quadratic(n=20)
    opt = LBFGS(entries, history_size=3, max_iter=1, lr=0.5, line_search_fn=line_search_fn)
    lengths = []
    for _ in range(12):
        opt.step(closure)
        lengths.append(len(opt.state[0]["old_dirs"]))
        assert len(opt.state[0]["old_stps"]) == len(opt.state[0]["ro"]) == lengths[-1]
    assert max(lengths) == 3 and lengths[-1] == 3  # full, never more
    assert lengths[:4] == [0, 1, 2, 3]  # one pair per iteration (ys > 0 on a convex quadratic)
    assert len(opt.state[0]["al"]) == 3


def test_history_keeps_the_newest_pairs():
    entries, closure, _ = separable_quadratic(n=20)
    opt = LBFGS(entries, history_size=2, max_iter=1, lr=0.5)
    steps = []
    for _ in range(6):
        opt.step(closure)
        steps.append(opt.state[0]["t"] * opt.state[0]["d"])  # s of the iteration just run
    # the pair stored by iteration k is s_{k-1} (the step of the previous iteration)
    np.testing.assert_array_equal(opt.state[0]["old_stps"][-1], steps[-2])
    np.testing.assert_array_equal(opt.state[0]["old_stps"][0], steps[-3])


def test_lowering_history_size_between_steps_trims_the_oldest_pairs():
    entries, closure, _ = separable_quadratic(n=20)
    opt = LBFGS(entries, history_size=5, max_iter=1, lr=0.5)
    for _ in range(8):
        opt.step(closure)
    kept = [a.copy() for a in opt.state[0]["old_dirs"][-2:]]
    assert len(opt.state[0]["old_dirs"]) == 5
    opt.defaults["history_size"] = 2
    opt.step(closure)
    assert len(opt.state[0]["old_dirs"]) == 2 and len(opt.state[0]["al"]) == 2
    np.testing.assert_array_equal(opt.state[0]["old_dirs"][0], kept[1])  # oldest dropped, newest appended


# ----- validation --------------------------------------------------------------------------


def _entries():
    return [{"params": np.ones(3), "grad": np.zeros(3)}]


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"lr": -1.0}, ValueError, r"^Invalid learning rate: -1.0 \(lr must be >= 0\)$"),
        ({"lr": float("nan")}, ValueError, r"Invalid learning rate: nan"),
        ({"lr": float("inf")}, ValueError, r"Invalid learning rate: inf \(lr must be finite\)"),
        ({"lr": "0.1"}, TypeError, r"Invalid learning rate: '0.1'"),
        ({"max_iter": 0}, ValueError, r"Invalid max_iter: 0"),
        ({"max_iter": 2.5}, TypeError, r"Invalid max_iter: 2.5"),
        ({"max_iter": True}, TypeError, r"Invalid max_iter: True"),
        ({"max_eval": 0}, ValueError, r"Invalid max_eval: 0"),
        ({"history_size": 0}, ValueError, r"Invalid history_size: 0"),
        ({"history_size": 3.0}, TypeError, r"Invalid history_size: 3.0"),
        ({"tolerance_grad": -1e-7}, ValueError, r"Invalid tolerance_grad value: -1e-07"),
        ({"tolerance_change": float("nan")}, ValueError, r"Invalid tolerance_change value: nan"),
        ({"line_search_fn": "backtracking"}, ValueError, r"Invalid line_search_fn: 'backtracking'"),
        ({"line_search_fn": 1}, TypeError, r"Invalid line_search_fn: 1"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_invalid_hyperparameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        LBFGS(_entries(), **kwargs)


def test_max_eval_defaults_to_max_iter_times_5_over_4():
    assert LBFGS(_entries()).defaults["max_eval"] == 25  # 20 * 5 // 4
    assert LBFGS(_entries(), max_iter=3).defaults["max_eval"] == 3  # 15 // 4
    assert LBFGS(_entries(), max_iter=3, max_eval=7).defaults["max_eval"] == 7


def test_per_entry_options_are_refused():
    entries = [{"params": np.ones(2), "grad": np.zeros(2)}, {"params": np.ones(2), "grad": np.zeros(2), "lr": 0.1}]
    with pytest.raises(ValueError, match=r"^LBFGS doesn't support per-parameter options \(parameter groups\): "
                                         r"params\[1\] sets \['lr'\]"):
        LBFGS(entries)


def test_mixed_dtypes_and_empty_lists_are_refused():
    entries = [{"params": np.ones(2), "grad": np.zeros(2)},
               {"params": np.ones(2, np.float32), "grad": np.zeros(2, np.float32)}]
    with pytest.raises(TypeError, match=r"one dtype .* params\[0\] is float64, params\[1\] is float32"):
        LBFGS(entries)
    with pytest.raises(ValueError, match="empty parameter list"):
        LBFGS([])


def test_step_needs_a_closure():
    opt = LBFGS(_entries())
    with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'closure'"):
        opt.step()
    with pytest.raises(TypeError, match=r"needs a closure .* got None"):
        opt.step(None)
    assert opt.state == {"step": 0}


def test_a_refused_step_changes_nothing():
    entries, closure, x = rosenbrock()
    opt = LBFGS(entries, line_search_fn="strong_wolfe")
    opt.step(closure)
    before_x, before = x.copy(), copy.deepcopy(opt.state_dict())
    calls = []

    def bad_closure():  # the third evaluation puts a wrong-shaped gradient in the entry
        calls.append(1)
        if len(calls) == 3:
            entries[0]["grad"] = np.zeros(3)
        return closure()

    with pytest.raises(ValueError, match=r"params\[0\]\['grad'\] has shape \(3,\)"):
        opt.step(bad_closure)
    assert len(calls) == 3
    np.testing.assert_array_equal(x, before_x)
    _assert_state_dicts_equal(opt.state_dict(), before)
    entries[0]["grad"] = np.zeros(2)

    with pytest.raises(TypeError, match="must return the loss as a real number, got None"):
        opt.step(lambda: (closure(), None)[1])
    np.testing.assert_array_equal(x, before_x)
    _assert_state_dicts_equal(opt.state_dict(), before)

    def raising():
        closure()
        x[...] = 123.0  # a closure that moves the parameters, then fails
        raise KeyError("boom")

    with pytest.raises(KeyError):
        opt.step(raising)
    np.testing.assert_array_equal(x, before_x)
    _assert_state_dicts_equal(opt.state_dict(), before)


def test_the_closure_may_put_new_gradient_arrays_in_the_entries():
    entries, closure, x = rosenbrock()
    problem = Rosenbrock()

    def replacing():
        entries[0]["grad"] = problem.gradient(x)  # a new array each call
        return problem.value(x)

    reference_entries, reference_closure, reference_x = rosenbrock()
    a, b = LBFGS(entries, line_search_fn="strong_wolfe"), LBFGS(reference_entries, line_search_fn="strong_wolfe")
    for _ in range(3):
        a.step(replacing)
        b.step(reference_closure)
    assert x.tobytes() == reference_x.tobytes()


# ----- state dicts ------------------------------------------------------------------------


def _assert_state_dicts_equal(a, b):
    assert a.keys() == b.keys()
    assert a["step"] == b["step"] and a["defaults"] == b["defaults"] and a["param_groups"] == b["param_groups"]
    assert a["initial_lrs"] == b["initial_lrs"] and len(a["state"]) == len(b["state"])
    for sa, sb in zip(a["state"], b["state"]):
        assert sa.keys() == sb.keys()
        for name in sa:
            _assert_values_equal(sa[name], sb[name], name)


def _assert_values_equal(a, b, name):
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), name
        for u, v in zip(a, b):
            _assert_values_equal(u, v, name)
        return
    assert type(a) is type(b), (name, type(a), type(b))
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes(), name
    else:
        assert a == b or (a != a and b != b), name


@pytest.mark.parametrize("line_search_fn", LINE_SEARCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_round_trip_continues_bitwise(dtype, line_search_fn):
    entries, closure, params = separable_quadratic(n=14, dtype=dtype)
    opt = LBFGS(entries, lr=0.7, max_iter=3, history_size=4, line_search_fn=line_search_fn)
    for _ in range(3):
        opt.step(closure)
    snapshot = opt.state_dict()
    saved_params = [p.copy() for p in params]
    assert set(snapshot["state"][0]) == {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
                                         "prev_flat_grad", "prev_loss", "al"}
    assert snapshot["state"][1:] == [{}, {}]

    for _ in range(3):
        opt.step(closure)

    entries2, closure2, params2 = separable_quadratic(n=14, dtype=dtype)
    for p, s in zip(params2, saved_params):
        p[...] = s
    resumed = LBFGS(entries2)  # other hyperparameters: the state dict brings them
    resumed.load_state_dict(snapshot)
    for _ in range(3):
        resumed.step(closure2)
    for p, q in zip(params, params2):
        assert p.tobytes() == q.tobytes()
    _assert_state_dicts_equal(resumed.state_dict(), opt.state_dict())


def test_state_dict_is_a_deep_copy():
    entries, closure, _ = separable_quadratic()
    opt = LBFGS(entries, max_iter=4)
    opt.step(closure)
    opt.step(closure)
    snapshot = opt.state_dict()
    kept = copy.deepcopy(snapshot)
    snapshot["state"][0]["d"][...] = 7.0
    snapshot["state"][0]["old_dirs"][0][...] = 7.0
    snapshot["state"][0]["ro"].append(np.float64(1.0))
    _assert_state_dicts_equal(opt.state_dict(), kept)
    opt.load_state_dict(kept)
    kept["state"][0]["prev_flat_grad"][...] = 7.0
    assert not np.any(opt.state[0]["prev_flat_grad"] == 7.0)


def test_state_dict_before_any_iteration_holds_the_counters_only():
    entries, _, x = rosenbrock(start=(1.0, 1.0))  # the minimum: the gradient is 0
    opt = LBFGS(entries)
    problem = Rosenbrock()
    opt.step(lambda: (entries[0]["grad"].__setitem__(Ellipsis, problem.gradient(x)), problem.value(x))[1])
    assert opt.state_dict()["state"] == [{"func_evals": 1, "n_iter": 0}]
    other = LBFGS(rosenbrock(start=(1.0, 1.0))[0])
    other.load_state_dict(opt.state_dict())
    assert other.state[0] == {"func_evals": 1, "n_iter": 0} and other.state["step"] == 1


def _mutations():
    def set_(key, value):
        return lambda sd: sd["state"][0].__setitem__(key, value)

    return [
        pytest.param(set_("d", np.zeros(13)), ValueError, r"\['d'\] must be a flat ndarray of shape \(14,\)",
                     id="d-shape"),
        pytest.param(set_("prev_flat_grad", np.zeros(14, np.float32)), ValueError, r"dtype float64", id="grad-dtype"),
        pytest.param(lambda sd: sd["state"][0]["ro"].pop(), ValueError, r"one length", id="ro-length"),
        pytest.param(lambda sd: sd["state"][0]["ro"].__setitem__(0, 0.5), ValueError,
                     r"\['ro'\]\[0\] must be a NumPy float64", id="ro-python-float"),
        pytest.param(lambda sd: sd["state"][0]["old_stps"].__setitem__(0, np.zeros(14, np.float32)), ValueError,
                     r"\['old_stps'\]\[0\]", id="old-stps-dtype"),
        pytest.param(lambda sd: sd["state"][0]["al"].pop(), ValueError, r"\['al'\] must have history_size=4 items",
                     id="al-length"),
        pytest.param(lambda sd: sd["defaults"].__setitem__("history_size", 2), ValueError,
                     r"4 history pairs, more than history_size=2", id="history-too-long"),
        pytest.param(set_("t", "1"), ValueError, r"\['t'\] must be a Python number or a NumPy float64", id="t-type"),
        pytest.param(set_("n_iter", -1), ValueError, r"\['n_iter'\] must be an int >= 0", id="n-iter"),
        pytest.param(set_("momentum_buffer", np.zeros(14)), ValueError, r"unexpected keys \['momentum_buffer'\]",
                     id="unknown-key"),
        pytest.param(lambda sd: sd["state"][0].pop("H_diag"), ValueError, r"lacks \['H_diag'\]", id="missing"),
        pytest.param(lambda sd: sd["state"][1].__setitem__("d", np.zeros(14)), ValueError,
                     r"state'\]\[1\] must be empty", id="state-1"),
        pytest.param(lambda sd: sd["param_groups"][0].__setitem__("lr", 0.1), ValueError,
                     r"doesn't support per-parameter options", id="override"),
        pytest.param(lambda sd: sd["defaults"].__setitem__("lr", -1.0), ValueError, r"Invalid learning rate: -1.0",
                     id="bad-lr"),
        pytest.param(lambda sd: sd["state"].pop(), ValueError, r"one item per entry", id="entry-count"),
    ]


@pytest.mark.parametrize("mutate,error,match", _mutations())
def test_refused_load_state_dict_changes_nothing(mutate, error, match):
    entries, closure, _ = separable_quadratic(n=14)
    source = LBFGS(entries, max_iter=3, history_size=4)
    for _ in range(3):
        source.step(closure)
    snapshot = source.state_dict()
    assert len(snapshot["state"][0]["old_dirs"]) == 4
    mutate(snapshot)
    target_entries, target_closure, _ = separable_quadratic(n=14, seed=0)
    target = LBFGS(target_entries, max_iter=2, history_size=4)
    target.step(target_closure)
    before = target.state_dict()
    with pytest.raises(error, match=match):
        target.load_state_dict(snapshot)
    _assert_state_dicts_equal(target.state_dict(), before)


def test_a_state_that_no_longer_fits_the_parameters_is_refused_at_step():
    entries, closure, _ = separable_quadratic(n=14)
    opt = LBFGS(entries)
    opt.step(closure)
    entries[2]["params"] = np.zeros(3)  # 4 + 4 + 3: the flat vector is now 11 long, not 14
    entries[2]["grad"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"state\[0\]\['d'\] must be a flat ndarray of shape \(11,\)"):
        opt.step(closure)
