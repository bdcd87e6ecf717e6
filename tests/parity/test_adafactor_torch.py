"""Adafactor against torch.optim.Adafactor (torch 2.13, CPU, single-tensor path): bit for bit.

torch's Adafactor takes no MKL ``sqrt`` (its norms use the IEEE square root, ``rsqrt`` is
``1 / sqrt``), so with torch's reduction orders (numpy_optim/adafactor.py) float32 and
float64 trajectories are identical to torch's, every parameter and every state buffer
after every step: checked with ``tobytes()``. The fused multiply-adds (``lerp``, the final
``add_(alpha=)``, the norm's tail) are torch's only on a CPU where its kernels use FMA
(capability AVX2 or AVX512); elsewhere the trajectory tests are skipped.

Run with ``-s`` to see what was compared (lines starting with ``BITWISE``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from numpy_optim.adafactor import Adafactor, norm_all, norm_columns, norm_rows, torch_sum  # noqa: E402

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]

needs_fma = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason=f"torch uses no FMA on this CPU (capability {torch.backends.cpu.get_cpu_capability()}); "
           "the bitwise claim is for FMA CPUs",
)


@contextlib.contextmanager
def torch_threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def data(rng, shape, dtype):
    return np.asarray(rng.standard_normal(shape) * np.exp(rng.uniform(-3, 3, shape))).astype(dtype)


# ----- the reductions, one by one --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_and_whole_norms_are_torchs(dtype):
    rng = np.random.default_rng(0)
    shapes = [(r, n) for r in (1, 3) for n in range(1, 70)] + [(1, 100003), (3, 40000), (2, 5, 37), (7, 1)]
    for shape in shapes:
        x = data(rng, shape, dtype)
        t = torch.from_numpy(x)
        assert norm_rows(x).tobytes() == torch.norm(t, dim=-1).numpy().tobytes(), f"norm(dim=-1) of {shape}"
        assert norm_all(x) == t.norm(2).item(), f"norm(2) of {shape}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_column_norms_are_torchs(dtype):
    rng = np.random.default_rng(1)
    shapes = [(m, n) for m in (1, 2, 3, 9, 33) for n in (1, 2, 3, 8, 9, 17)]
    shapes += [(40000, 2), (40000, 1), (3, 700, 5), (2, 300, 1), (300, 200)]
    for shape in shapes:
        x = data(rng, shape, dtype)
        assert norm_columns(x).tobytes() == torch.norm(torch.from_numpy(x), dim=-2).numpy().tobytes(), shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_norm_over_one_element_is_its_absolute_value(dtype):
    # torch: no square that could underflow or overflow when one element is reduced
    # (float32 1e-20**2 is subnormal, 1e20**2 overflows); over two elements it squares
    for value in ([1e-20, 1e20] if dtype == np.float32 else [1e-160, 1e160]):
        for shape in [(), (1,), (1, 1), (3, 1), (1, 3), (2, 1, 3), (2, 1, 1)]:
            x = np.full(shape, -value, dtype)
            t = torch.from_numpy(x)
            if x.size == 1:
                assert norm_all(x) == t.norm(2).item() == float(dtype(value)), shape
            if x.ndim >= 2:
                assert norm_rows(x).tobytes() == torch.norm(t, dim=-1).numpy().tobytes(), shape
                assert norm_columns(x).tobytes() == torch.norm(t, dim=-2).numpy().tobytes(), shape
        pair = np.full(2, value, dtype)
        with np.errstate(all="ignore"):
            assert norm_all(pair) == torch.from_numpy(pair).norm(2).item() != float(dtype(value)) * 2**0.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_means_are_torchs_with_one_thread(dtype):
    rng = np.random.default_rng(2)
    rows = list(range(1, 80)) + [127, 128, 129, 511, 512, 513, 4097, 8191, 8192, 8193, 20000, 32768, 32769,
                                 70001, 300000]
    shapes = [(m, 1) for m in rows] + [(b, m, 1) for b in (2, 3) for m in (1, 5, 9, 513, 9000, 40000)]
    with torch_threads(1):
        for shape in shapes:
            x = np.abs(data(rng, shape, dtype))
            m = shape[-2]
            ours = (torch_sum(x.reshape(-1, m)) / dtype(m)).reshape(shape[:-2] + (1, 1))
            theirs = torch.from_numpy(x).mean(dim=-2, keepdim=True).numpy()
            assert ours.tobytes() == theirs.tobytes(), shape


def test_torchs_row_sum_depends_on_its_thread_count():
    # the one thread-dependent result: one sum (the row mean's) over more than 32768 rows is
    # split among threads; torch_sum(threads=) reproduces either
    rng = np.random.default_rng(4)
    x = np.abs(data(rng, (70001, 1), np.float32))
    several = np.abs(data(rng, (2, 40000, 1), np.float32))
    results = {}
    for threads in (1, 2):
        with torch_threads(threads):
            results[threads] = (torch.from_numpy(x).sum(dim=-2).numpy(), torch.from_numpy(x).mean(dim=-2).numpy(),
                                torch.from_numpy(several).sum(dim=-2).numpy())
    rows = x.reshape(1, -1)
    for threads, (total, mean, per_batch) in results.items():
        assert total.tobytes() == torch_sum(rows, threads=threads).tobytes(), threads
        assert mean.tobytes() == (torch_sum(rows, threads=threads) / np.float32(70001)).tobytes(), threads
        assert per_batch.tobytes() == torch_sum(several.reshape(2, -1)).tobytes(), threads  # each whole
    assert results[1][0].tobytes() != results[2][0].tobytes()  # this seed shows the difference


# ----- whole trajectories --------------------------------------------------------------------

SHAPES = [
    (),                       # 0-d: variance
    (1,), (3,), (8,), (12,), (13,), (17,), (35,),    # 1-d: vector body, float32 epilogue (12, 13), FMA tails
    (1, 1), (5, 1), (33, 1),  # one column: the column norm takes the lane algorithm
    (1, 9), (3, 5), (4, 12), (6, 13), (9, 7), (2, 35),  # lanes with tails, the 4-element epilogue
    (700, 3),                 # 700 rows: the cascade sum's first chunk level
    (2, 3, 4), (3, 1, 6), (2, 5, 1), (2, 2, 3, 17),  # leading batch axes
    (300, 200),               # one big matrix
]

CONFIGS = [
    pytest.param({}, id="defaults"),
    pytest.param({"eps": (1e-30, 1e-3)}, id="eps1-given"),
    pytest.param({"lr": 0.1, "weight_decay": 0.1}, id="weight-decay"),
    pytest.param({"maximize": True, "d": 1.3, "beta2_decay": -0.5}, id="maximize-d-beta2_decay"),
    pytest.param({"eps": (1e-8, 0.0), "beta2_decay": 0.0, "lr": 1.0}, id="beta2_decay-0-eps2-0"),
    pytest.param({"lr": 0.05, "beta2_decay": -1.0, "d": 5.0, "weight_decay": 0.5, "eps": (0.0, 1e-2)},
                 id="eps1-0-large-d"),
]
STEPS = 50


def compare_runs(kwargs, dtype, shapes, steps, seed, sum_threads=None, scale=1.0):
    """Run both sides on the same gradients; return the first mismatch, or None."""
    rng = np.random.default_rng(seed)
    inits = [np.asarray(2 * scale * rng.standard_normal(s)) for s in shapes]
    entries = [{"params": np.array(p, dtype), "grad": np.zeros(p.shape, dtype)} for p in inits]
    ours = Adafactor(entries, **kwargs)
    if sum_threads is not None:
        ours._sum_threads = sum_threads
    params = [torch.tensor(np.array(p, dtype), requires_grad=True) for p in inits]
    theirs = torch.optim.Adafactor([{"params": [p]} for p in params], **kwargs)  # an entry is a group
    for step in range(1, steps + 1):
        for e, p in zip(entries, params):
            g = np.asarray(scale * rng.standard_normal(e["params"].shape) * 10.0 ** rng.integers(-3, 3)).astype(dtype)
            e["grad"][...] = g
            p.grad = torch.from_numpy(g.copy())
        ours.step()
        theirs.step()
        for i, (e, p) in enumerate(zip(entries, params)):
            state = theirs.state[p]
            if set(ours.state[i]) != set(state) - {"step"}:
                return f"step {step} params[{i}] {shapes[i]}: buffers {sorted(ours.state[i])} vs {sorted(state)}"
            if state["step"].item() != ours.state["step"]:
                return f"step {step}: step counts {ours.state['step']} vs {state['step'].item()}"
            pairs = [("params", e["params"], p.detach().numpy())]
            pairs += [(name, ours.state[i][name], state[name].numpy()) for name in ours.state[i]]
            for name, a, b in pairs:
                if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
                    worst = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) if a.shape == b.shape else None
                    return (f"step {step} params[{i}] of shape {shapes[i]}: {name} differs "
                            f"(shapes {a.shape} vs {b.shape}, max |diff| {worst}); seed {seed}")
    return None


@needs_fma
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", CONFIGS)
def test_trajectories_are_bitwise_torchs(kwargs, dtype):
    mismatch = compare_runs(kwargs, dtype, SHAPES, STEPS, seed=len(str(kwargs)))
    print(f"BITWISE Adafactor {kwargs} {np.dtype(dtype).name}: {STEPS} steps, {len(SHAPES)} params, "
          f"{'identical' if mismatch is None else mismatch}")
    assert mismatch is None, f"Adafactor({kwargs}) {np.dtype(dtype).name}: {mismatch}"


@needs_fma
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", ["tiny", "huge"])
def test_trajectories_near_underflow_and_overflow_are_bitwise_torchs(dtype, scale):
    # squares that underflow (or overflow) the dtype, eps2 = 0 so that the parameter's own
    # scale sets the step: the one-element norms are |x| in torch, the others square
    value = {"tiny": {np.float32: 1e-19, np.float64: 1e-150}, "huge": {np.float32: 1e18, np.float64: 1e150}}
    kwargs = {"eps": (0.0, 0.0), "lr": 0.5, "weight_decay": 0.3}
    with np.errstate(all="ignore"):
        mismatch = compare_runs(kwargs, dtype, SHAPES[:-1], 30, seed=9, scale=value[scale][dtype])
    assert mismatch is None, f"Adafactor({kwargs}) {np.dtype(dtype).name} {scale}: {mismatch}"


@needs_fma
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_tall_matrix_over_32768_rows_is_bitwise_torchs_given_its_thread_count(dtype):
    # 40000 rows: the row mean is split among torch's threads (numpy_optim sums it whole,
    # as torch does with one thread; `_sum_threads` tells it torch's count)
    with torch_threads(1):
        assert compare_runs({}, dtype, [(40000, 2)], steps=4, seed=5) is None
    with torch_threads(2):
        assert compare_runs({}, dtype, [(40000, 2)], steps=4, seed=5, sum_threads=2) is None


@needs_fma
def test_torch_quirk_eps1_none_is_fixed_by_the_groups_first_parameter():
    # torch assigns eps1 = finfo(first param's dtype).eps to the loop variable: a float64
    # parameter after a float32 one in the same group uses float32's epsilon. numpy_optim's
    # entries are groups of one, so there each takes its own dtype's.
    p32 = torch.zeros(2, dtype=torch.float32, requires_grad=True)
    p64 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    p32.grad = torch.full((2,), 1e-9, dtype=torch.float32)
    p64.grad = torch.full((2,), 1e-9, dtype=torch.float64)
    torch.optim.Adafactor([p32, p64]).step()
    as_torch = np.zeros(2)
    Adafactor([{"params": as_torch, "grad": np.full(2, 1e-9)}], eps=(float(np.finfo(np.float32).eps), 1e-3)).step()
    assert p64.detach().numpy().tobytes() == as_torch.tobytes()
    ours = np.zeros(2)
    Adafactor([{"params": np.zeros(2, np.float32), "grad": np.full(2, 1e-9, np.float32)},
               {"params": ours, "grad": np.full(2, 1e-9)}]).step()
    alone = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    alone.grad = torch.full((2,), 1e-9, dtype=torch.float64)
    torch.optim.Adafactor([alone]).step()
    assert ours.tobytes() == alone.detach().numpy().tobytes()
    assert ours.tobytes() != as_torch.tobytes()


@needs_fma
def test_state_dict_from_torchs_buffers_continues_bitwise():
    # torch's buffers loaded into numpy_optim (same names and shapes) continue torch's run
    rng = np.random.default_rng(6)
    shapes = [(), (5,), (3, 4), (2, 3, 2)]
    inits = [np.asarray(rng.standard_normal(s)) for s in shapes]
    params = [torch.tensor(p, requires_grad=True) for p in inits]
    theirs = torch.optim.Adafactor([{"params": [p]} for p in params], lr=0.05)
    grads = [[np.asarray(rng.standard_normal(s)) for s in shapes] for _ in range(6)]
    for step_grads in grads[:3]:
        for p, g in zip(params, step_grads):
            p.grad = torch.from_numpy(g.copy())
        theirs.step()
    entries = [{"params": p.detach().numpy().copy(), "grad": np.zeros(s)} for p, s in zip(params, shapes)]
    ours = Adafactor(entries, lr=0.05)
    state = ours.state_dict()
    state["step"] = 3
    state["state"] = [{k: v.numpy().copy() for k, v in theirs.state[p].items() if k != "step"} for p in params]
    ours.load_state_dict(state)
    for step_grads in grads[3:]:
        for e, p, g in zip(entries, params, step_grads):
            e["grad"][...] = g
            p.grad = torch.from_numpy(g.copy())
        ours.step()
        theirs.step()
    for e, p in zip(entries, params):
        assert e["params"].tobytes() == p.detach().numpy().tobytes()


# ----- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"lr": -1.0}, {"lr": -1}, {"beta2_decay": 0.5}, {"eps": (-1e-3, 1e-3)}, {"eps": (None, -1.0)},
    {"d": 0.9}, {"d": 0}, {"weight_decay": -0.1}, {"lr": -float("inf")},
], ids=str)
def test_validation_messages_are_torchs(kwargs):
    with pytest.raises(ValueError) as theirs:
        torch.optim.Adafactor([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as ours:
        Adafactor([{"params": np.zeros(2), "grad": np.zeros(2)}], **kwargs)
    assert str(ours.value) == str(theirs.value)
