"""float16 / bfloat16 parameters, ``state_dtype``, ``master_weights`` and ``fused`` as
options: what each combination computes, and every combination that is refused.

The oracles: torch (float32 state and master copies are torch's float32 Adam / SGD on the
widened values, rounded to the parameters' dtype after each step) and hand-derived facts
(a master copy starts as the exact widening of the parameter).
"""

from __future__ import annotations

import numpy as np
import pytest

import numpy_optim
from numpy_optim import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, RMSprop, Rprop

ml_dtypes = pytest.importorskip("ml_dtypes")
torch = pytest.importorskip("torch")

BF16 = np.dtype(ml_dtypes.bfloat16)
HALF = [np.dtype(np.float16), BF16]
TORCH_DTYPE = {np.dtype(np.float16): torch.float16, BF16: torch.bfloat16}
ELEMENTWISE = [SGD, Adam, AdamW, Adagrad, Adadelta, Adamax, NAdam, RAdam, RMSprop, Rprop, numpy_optim.ASGD]
FUSED = [SGD, Adam, AdamW, Adagrad]


def entry(dtype, n=37, seed=0):
    rng = np.random.default_rng(seed)
    return {"params": rng.standard_normal(n).astype(dtype), "grad": (rng.standard_normal(n) * 0.1).astype(dtype)}


def to_torch(array):
    """A torch tensor with exactly the bits of a float16 / bfloat16 / float32 array."""
    if array.dtype == BF16:
        return torch.from_numpy(array.view(np.uint16).astype(np.int16)).view(torch.bfloat16).clone()
    return torch.from_numpy(array.copy())


def to_numpy(tensor, dtype):
    if dtype == BF16:
        return tensor.detach().view(torch.int16).numpy().astype(np.uint16).view(BF16)
    return tensor.detach().numpy().astype(dtype)


def bits(array):
    return np.ascontiguousarray(array).view(f"u{array.dtype.itemsize}")


# ----- what the options compute -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("master", [False, True], ids=["state_dtype", "master_weights"])
@pytest.mark.parametrize("cls, kwargs", [
    (Adam, {"lr": 1e-2, "weight_decay": 0.1}), (AdamW, {"lr": 1e-2, "amsgrad": True}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}), (Adagrad, {"lr": 0.1, "lr_decay": 0.01}),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_float32_state_and_master_weights_are_torchs_float32_step_rounded(cls, kwargs, master, dtype):
    """With ``state_dtype=np.float32`` a step is torch's float32 step on the widened parameter,
    rounded to the parameter's dtype; with ``master_weights=True`` the master copy is float32
    training itself (numpy_optim's float32 path, whose parity with torch is the parity
    harness's; here within 1e-6 of torch's), and the parameter is it rounded."""
    e = entry(dtype)
    x, g = e["params"], e["grad"]
    option = {"master_weights": True} if master else {"state_dtype": np.float32}
    ours = cls([e], **kwargs, **option)
    wide = {"params": x.astype(np.float32), "grad": g.astype(np.float32)}
    float32_run = cls([wide], **kwargs)
    p = torch.tensor(x.astype(np.float32), requires_grad=True)
    theirs = getattr(torch.optim, cls.__name__)([p], **kwargs, foreach=False)
    for step in range(30):
        g[...] = (np.random.default_rng(step).standard_normal(x.size) * 0.1).astype(dtype)
        ours.step()
        wide["grad"][...] = g
        float32_run.step()
        p.grad = torch.from_numpy(g.astype(np.float32))
        theirs.step()
        if master:
            assert np.array_equal(ours.state[0]["master_param"], wide["params"])
            assert np.array_equal(bits(x), bits(wide["params"].astype(dtype)))
            assert np.allclose(wide["params"], p.detach().numpy(), rtol=1e-6, atol=1e-7)
            continue
        if not master:
            with torch.no_grad():  # the float32 state, the parameter rounded at the end of the step
                p.copy_(to_torch(to_numpy(p.to(TORCH_DTYPE[dtype]), dtype)).float())
        expected = to_numpy(p.to(TORCH_DTYPE[dtype]), dtype)
        assert np.array_equal(bits(x), bits(expected)), f"step {step + 1}"
        for name, buffer in theirs.state[p].items():
            if name != "step":
                assert ours.state[0][name].dtype == np.float32
                assert np.array_equal(ours.state[0][name], buffer.numpy()), (step, name)


@pytest.mark.parametrize("cls", ELEMENTWISE, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_every_elementwise_optimizer_takes_half_parameters_and_float32_state(cls, dtype):
    e = entry(dtype, seed=1)
    kwargs = {"momentum": 0.9} if cls is SGD else {}
    opt = cls([e], state_dtype="float32", **kwargs)
    opt.step()
    buffers = [b for name, b in opt.state[0].items() if b.shape == e["params"].shape]
    assert buffers and all(b.dtype == np.float32 for b in buffers)
    assert all(np.any(b != 0) for b in buffers) and e["params"].dtype == dtype


def test_a_master_copy_starts_as_the_exact_widening_and_is_in_state_dicts_and_checkpoints(tmp_path):
    e = entry(np.float16)
    start = e["params"].astype(np.float32)
    opt = Adam([e], lr=1e-3, master_weights=True)
    e["grad"][...] = 0  # a zero gradient: the master copy and the parameter stay where they were
    opt.step()
    assert np.array_equal(opt.state[0]["master_param"], start)
    e["grad"][...] = np.float16(1e-3)
    for _ in range(3):
        opt.step()
    master = opt.state[0]["master_param"]
    assert master.dtype == np.float32 and np.array_equal(bits(e["params"]), bits(master.astype(np.float16)))
    saved = opt.state_dict()
    assert np.array_equal(saved["state"][0]["master_param"], master)
    assert saved["defaults"]["master_weights"] is True and saved["defaults"]["state_dtype"] is None
    numpy_optim.save(opt.state_dict(), tmp_path / "c.npz")
    x2 = e["params"].copy()
    twin = Adam([{"params": x2, "grad": e["grad"].copy()}], lr=1e-3, master_weights=True)
    twin.load_state_dict(numpy_optim.load(tmp_path / "c.npz"))
    assert np.array_equal(twin.state[0]["master_param"], master)
    opt.step()
    twin.step()
    assert np.array_equal(bits(x2), bits(e["params"]))
    assert np.array_equal(twin.state[0]["master_param"], opt.state[0]["master_param"])


def test_the_master_copy_carries_updates_too_small_for_the_parameter():
    """lr * step below half a float16 ulp of 1: a float16 parameter never moves, its master
    copy does, and after enough steps the parameter moves with it."""
    plain = {"params": np.ones(4, np.float16), "grad": np.ones(4, np.float16)}
    kept = {"params": np.ones(4, np.float16), "grad": np.ones(4, np.float16)}
    SGD([plain], lr=1e-4).step()
    assert np.all(plain["params"] == 1)  # 1 - 1e-4 rounds back to 1 (ulp below 1 is 2**-11 = 4.9e-4)
    opt = SGD([kept], lr=1e-4, master_weights=True)
    for _ in range(10):
        opt.step()
    assert np.all(kept["params"] < 1)
    assert np.allclose(opt.state[0]["master_param"], 1 - 10 * np.float32(1e-4), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, BF16, np.float32], ids=str)
def test_state_dtype_float64(dtype):
    e = entry(dtype)
    opt = RMSprop([e], state_dtype=np.float64)
    opt.step()
    assert opt.state[0]["square_avg"].dtype == np.float64 and e["params"].dtype == dtype


def test_state_dtype_none_is_the_parameters_dtype():
    for dtype in [np.float16, BF16, np.float32, np.float64]:
        e = entry(dtype)
        opt = Adam([e])
        with np.errstate(all="ignore"):
            opt.step()
        assert opt.state[0]["exp_avg"].dtype == dtype


# ----- refused combinations: a clear error, nothing changed ---------------------------------------

REFUSED = [
    (Adam, np.float32, {"master_weights": True}, "master_weights=True keeps a float32 master copy"),
    (Adam, np.float64, {"master_weights": True}, "these are float64"),
    (SGD, np.float16, {"master_weights": True, "state_dtype": np.float64}, "state_dtype='float64' does not fit"),
    (Adam, np.float64, {"state_dtype": np.float32}, "narrower than the parameters"),
    (SGD, np.float16, {"fused": True}, "never updates the vector body"),
    (SGD, BF16, {"fused": True, "momentum": 0.9}, "never updates the vector body"),
]


@pytest.mark.parametrize("cls, dtype, kwargs, message", REFUSED)
def test_a_combination_that_does_not_fit_is_refused_before_anything_changes(cls, dtype, kwargs, message):
    e = entry(dtype)
    with pytest.raises(ValueError, match=message):
        cls([e], **kwargs)
    ok = {k: v for k, v in kwargs.items() if k not in ("master_weights", "state_dtype", "fused")}
    opt = cls([e], **ok)
    before = e["params"].copy()
    e.update(kwargs)  # as an entry's own override: refused at the step, nothing written
    with pytest.raises(ValueError, match=message):
        opt.step()
    assert np.array_equal(bits(e["params"]), bits(before)) and 0 not in opt.state


@pytest.mark.parametrize("value, error", [
    (np.float16, ValueError), ("bfloat16", ValueError), (np.int32, ValueError), ("float128", ValueError),
    (3, TypeError), ("banana", TypeError), (np.dtype(">f4"), ValueError),
])
def test_bad_state_dtypes_are_refused_naming_the_argument(value, error):
    with pytest.raises(error, match="state_dtype"):
        Adam([entry(np.float16)], state_dtype=value)


@pytest.mark.parametrize("cls", FUSED, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", ["fused", "master_weights"])
def test_the_switches_are_bools(cls, name):
    with pytest.raises(TypeError, match=name):
        cls([entry(np.float32)], **{name: 1})


@pytest.mark.parametrize("cls", FUSED, ids=lambda c: c.__name__)
def test_fused_none_means_false_as_in_torch(cls):
    assert cls([entry(np.float32)], fused=None).defaults["fused"] is False


def test_sgd_fused_on_half_with_a_master_copy_is_the_float32_fused_step():
    """The refusal is about torch's half kernel; on a float32 master copy the fused arithmetic
    is torch's float32 fused SGD (oracle), and the parameter is it rounded."""
    e = entry(np.float16)
    x = e["params"]
    p = torch.tensor(x.astype(np.float32), requires_grad=True)
    ours = SGD([e], lr=0.1, momentum=0.9, fused=True, master_weights=True)
    theirs = torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True)
    for _ in range(5):
        ours.step()
        p.grad = torch.from_numpy(e["grad"].astype(np.float32))
        theirs.step()
    assert np.array_equal(ours.state[0]["master_param"], p.detach().numpy())
    assert np.array_equal(bits(x), bits(p.detach().numpy().astype(np.float16)))


def test_state_dicts_keep_the_options_and_a_load_checks_the_buffer_dtypes():
    e = entry(np.float16)
    opt = Adam([e], state_dtype=np.float32)
    opt.step()
    saved = opt.state_dict()
    assert saved["defaults"]["state_dtype"] == "float32"
    saved["state"][0]["exp_avg"] = saved["state"][0]["exp_avg"].astype(np.float16)
    with pytest.raises(ValueError, match="dtype float32"):
        opt.load_state_dict(saved)


def test_repr_shows_the_options_only_when_set():
    assert "fused" not in repr(Adam([entry(np.float32)]))
    assert "fused=True" in repr(Adam([entry(np.float32)], fused=True))
    assert "state_dtype='float32'" in repr(Adam([entry(np.float16)], state_dtype=np.float32))
