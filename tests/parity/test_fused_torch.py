"""``fused=True`` through the optimizer classes against torch 2.13's fused CPU kernels, bit for
bit: parameters and every state buffer after every step, 1,000 steps, every option, float64,
float32, float16 and bfloat16, several entries whose sizes straddle the lane counts, on the
active backend (``nox -s tests`` runs both). And torch's defect, pinned.
"""

from __future__ import annotations

import numpy as np
import pytest

import numpy_optim
from numpy_optim._blocks import configured

ml_dtypes = pytest.importorskip("ml_dtypes")
torch = pytest.importorskip("torch")

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16), BF16]
#: Sizes around every lane count (4, 8, 16) and the 64-element alignment, a 0-d one too.
SHAPES = [(), (1,), (7,), (3, 5), (17,), (4, 16), (35,), (131,)]

CONFIGS = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "betas": (0.3, 0.2), "eps": 1e-3, "maximize": True}),
    ("Adam", {"lr": 0.0711, "weight_decay": 0.469, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.0711, "weight_decay": 0.469}),
    ("AdamW", {"lr": 0.01, "betas": (0.5, 0.9), "amsgrad": True, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.1}),
    ("Adagrad", {"lr": 0.05, "eps": 1e-3, "maximize": True}),
]


def to_torch(array):
    if array.dtype == BF16:
        return torch.from_numpy(np.ascontiguousarray(array).view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(array))


def bits(x, dtype):
    """The bit patterns of a numpy array or a torch tensor of ``dtype``."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        x = x.view(torch.int16).numpy() if x.dtype == torch.bfloat16 else x.numpy()
    return np.ascontiguousarray(x).view(f"u{dtype.itemsize}")


def differing_bits(a, b, dtype):
    """The largest number of differing bits between two arrays' elements (0: identical)."""
    xor = np.bitwise_xor(bits(a, dtype), bits(b, dtype)).astype(np.uint64)
    return int(np.unpackbits(xor.view(np.uint8)).reshape(xor.size, -1).sum(axis=1).max(initial=0))


def run_pair(name, kwargs, dtype, steps, seed=0, shapes=SHAPES):
    """Step numpy_optim's and torch's fused optimizers side by side; the first difference
    (step, array, differing bits) or None."""
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    entries = [{"params": x.copy(), "grad": np.zeros_like(x)} for x in inits]
    ours = getattr(numpy_optim, name)(entries, fused=True, **kwargs)
    params = [to_torch(x).requires_grad_(True) for x in inits]
    theirs = getattr(torch.optim, name)(params, fused=True, **kwargs)
    for step in range(1, steps + 1):
        for e, p in zip(entries, params):
            g = (rng.standard_normal(e["params"].shape) * 0.1).astype(dtype)
            e["grad"][...] = g
            p.grad = to_torch(g)
        ours.step()
        theirs.step()
        for i, (e, p) in enumerate(zip(entries, params)):
            if not np.array_equal(bits(e["params"], dtype), bits(p, dtype)):
                return step, f"params[{i}]", differing_bits(e["params"], p, dtype)
            for buffer, value in theirs.state[p].items():
                if buffer == "step":
                    assert float(value) == ours.state["step"] == step
                    continue
                if not np.array_equal(bits(ours.state[i][buffer], dtype), bits(value, dtype)):
                    return step, f"state[{i}][{buffer!r}]", differing_bits(ours.state[i][buffer], value, dtype)
    return None


#: Every configuration in every dtype, but SGD in float16 / bfloat16: refused (torch's defect, below).
CASES = [(name, kwargs, dtype) for name, kwargs in CONFIGS for dtype in DTYPES
         if not (name == "SGD" and dtype.itemsize == 2)]


@pytest.mark.parametrize("name, kwargs, dtype", CASES,
                         ids=[f"{n}-{'-'.join(k)}-{d}" for n, k, d in CASES])
def test_fused_trajectories_are_torchs_bit_for_bit(name, kwargs, dtype):
    steps = 1000 if dtype.itemsize == 2 or kwargs == CONFIGS[[c[0] for c in CONFIGS].index(name)][1] else 300
    assert run_pair(name, kwargs, dtype, steps) is None


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adagrad"])
def test_large_parameters_through_blocks_and_threads_are_torchs_bit_for_bit(name, dtype):
    """Above a block (and the compiled backend's threading threshold): every cut lands on a
    multiple of 64 elements from the parameter's start, so only the last part has a tail."""
    with configured(block_bytes=4096, compiled_parallel_min_bytes=0, threads=2):
        assert run_pair(name, {"lr": 0.01}, dtype, 5, shapes=[(20_011,), (5, 1000), (3,)]) is None


def test_a_changing_learning_rate_and_mixed_entries_are_torchs():
    """lr set between steps (a scheduler), and a group of fused entries beside unfused ones."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(37).astype(np.float32)
    e = {"params": x.copy(), "grad": np.zeros_like(x)}
    other = {"params": x.copy(), "grad": np.zeros_like(x), "fused": False}
    ours = numpy_optim.Adam([e, other], lr=0.01, fused=True)
    alone = {"params": x.copy(), "grad": other["grad"]}
    unfused = numpy_optim.Adam([alone], lr=0.01)  # what the override asks for: the single-tensor path
    p = to_torch(x).requires_grad_(True)
    theirs = torch.optim.Adam([p], lr=0.01, fused=True)
    for step in range(50):
        g = (rng.standard_normal(37) * 0.1).astype(np.float32)
        e["grad"][...] = other["grad"][...] = g
        p.grad = to_torch(g)
        ours.lr = theirs.param_groups[0]["lr"] = unfused.lr = 0.01 * 0.95**step
        ours.step()
        theirs.step()
        unfused.step()
        assert np.array_equal(bits(e["params"], x.dtype), bits(p, x.dtype)), step
        assert np.array_equal(bits(other["params"], x.dtype), bits(alone["params"], x.dtype)), step


def test_a_non_contiguous_parameter_is_computed_in_its_logical_order():
    x = np.random.default_rng(2).standard_normal((7, 5)).astype(np.float32)
    t = x.T  # a view: not C-contiguous
    e = {"params": t, "grad": np.full_like(t, 0.1)}
    ours = numpy_optim.Adam([e], lr=0.1, fused=True)
    p = torch.from_numpy(x).t().clone().requires_grad_(True)
    theirs = torch.optim.Adam([p], lr=0.1, fused=True)
    for _ in range(20):
        ours.step()
        p.grad = torch.full_like(p, 0.1)
        theirs.step()
    assert np.array_equal(t, p.detach().numpy()) and e["params"] is t and np.shares_memory(t, x)


# ----- torch's defect, pinned -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("n", [16, 17, 35, 1027])
def test_torchs_fused_sgd_on_half_parameters_updates_only_the_scalar_tail(n, dtype):
    """torch 2.13's fused CPU SGD never writes the vector body of a float16 / bfloat16
    parameter: of n elements, only the last n % 16 change. The day this fails, torch has
    fixed it: then drop numpy_optim's refusal (sgd.py, SGD._check_dtype) and this pin."""
    p = torch.zeros(n, dtype=dtype, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True)
    for _ in range(3):
        p.grad = torch.ones(n, dtype=dtype)
        opt.step()
    changed = (p.detach() != 0).numpy()
    tail = n % 16
    assert not changed[: n - tail].any() and changed[n - tail:].all()


@pytest.mark.parametrize("dtype", [np.float16, BF16], ids=str)
def test_numpy_optim_refuses_that_defect(dtype):
    x = np.zeros(35, dtype)
    with pytest.raises(ValueError, match="never updates the vector body"):
        numpy_optim.SGD([{"params": x, "grad": np.ones_like(x)}], fused=True)
