"""parity.interop.entries_from_module and check_entries: a torch model trained by numpy_optim.

* Memory is shared both ways: torch's ``backward()`` writes the entries' gradients
  (hand-computed values), a numpy_optim step writes the module's parameters.
* A real training loop (an MLP, minibatches, MSE) stepped by numpy_optim through the
  entries follows torch.optim's trajectory for the same optimizer: SGD bit for bit in
  float32 (on FMA CPUs, the README's claim), SGD and Adam in float32 and float64 by the
  tolerance model of parity/tolerance.py (Adam cannot be bitwise: torch's MKL sqrt).
* The pitfall: ``zero_grad()`` with torch's default ``set_to_none=True`` makes the next
  ``backward()`` write a new tensor; check_entries catches it (and the other ways the
  memory parts), in-place zeroing passes.
* Refusals: TypeError/ValueError naming the parameter, before anything changes.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import numpy_optim  # noqa: E402
from parity import tolerance  # noqa: E402
from parity.interop import check_entries, entries_from_module  # noqa: E402

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
STEPS = 40
BATCH = 16


def mse(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


# ----- memory sharing -------------------------------------------------------------------


def small_linear():
    """Linear(3, 2) in float64 with values that make every gradient and step exact."""
    model = torch.nn.Linear(3, 2, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]))
        model.bias.copy_(torch.tensor([0.25, -0.5]))
    x = torch.tensor([[1.0, 2.0, 0.0], [-1.0, 0.0, 4.0], [2.0, 1.0, 1.0], [0.0, -3.0, 1.0]], dtype=torch.float64)
    return model, x


def test_backward_writes_the_entries_gradients_and_accumulates():
    model, x = small_linear()
    entries = entries_from_module(model)
    assert [e["params"].shape for e in entries] == [(2, 3), (2,)]
    assert all(np.array_equal(e["grad"], np.zeros_like(e["params"])) for e in entries)  # allocated as zeros
    # loss = sum(x @ W.T + b): dL/dW[j, k] = sum_n x[n, k], dL/db[j] = number of rows
    model(x).sum().backward()
    np.testing.assert_array_equal(entries[0]["grad"], [[2.0, 0.0, 6.0], [2.0, 0.0, 6.0]])
    np.testing.assert_array_equal(entries[1]["grad"], [4.0, 4.0])
    model(x).sum().backward()  # torch accumulates, into the same arrays
    np.testing.assert_array_equal(entries[0]["grad"], [[4.0, 0.0, 12.0], [4.0, 0.0, 12.0]])
    np.testing.assert_array_equal(entries[1]["grad"], [8.0, 8.0])
    check_entries(model, entries)


def test_a_numpy_optim_step_writes_the_modules_parameters():
    model, x = small_linear()
    entries = entries_from_module(model)
    model(x).sum().backward()
    numpy_optim.SGD(entries, lr=0.5).step()  # W - 0.5 * dW, b - 0.5 * db: exact in float64
    expected_w = torch.tensor([[0.0, -2.0, -2.5], [-1.0, 3.0, -4.0]], dtype=torch.float64)
    expected_b = torch.tensor([-1.75, -2.5], dtype=torch.float64)
    assert torch.equal(model.weight.detach(), expected_w)
    assert torch.equal(model.bias.detach(), expected_b)
    assert torch.equal(model(x).detach(), x @ expected_w.T + expected_b)  # the forward pass sees them


def test_an_existing_gradient_is_kept_and_shared():
    model, _ = small_linear()
    model.weight.grad = torch.full((2, 3), 3.0, dtype=torch.float64)
    before = model.weight.grad
    entries = entries_from_module(model)
    assert model.weight.grad is before
    np.testing.assert_array_equal(entries[0]["grad"], np.full((2, 3), 3.0))
    entries[0]["grad"][0, 0] = 7.0
    assert before[0, 0].item() == 7.0
    np.testing.assert_array_equal(entries[1]["grad"], [0.0, 0.0])  # bias had none: zeros


def test_frozen_parameters_get_no_entry_and_no_gradient():
    model, x = small_linear()
    model.bias.requires_grad_(False)
    entries = entries_from_module(model)
    assert len(entries) == 1 and entries[0]["params"].shape == (2, 3)
    assert model.bias.grad is None
    model(x).sum().backward()
    check_entries(model, entries)


def test_tied_parameters_get_one_entry_whose_gradient_sums_both_uses():
    # y = w * (w * x) with a scalar weight used twice: dy/dw = 2 * w * x
    first, second = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    second.weight = first.weight
    model = torch.nn.Sequential(first, second).double()
    with torch.no_grad():
        first.weight.fill_(3.0)
    entries = entries_from_module(model)
    assert len(entries) == 1
    model(torch.tensor([[2.0]], dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(entries[0]["grad"], [[12.0]])


def test_float16_parameters_are_taken():
    entries = entries_from_module(torch.nn.Linear(2, 2, dtype=torch.float16))
    assert [e["params"].dtype for e in entries] == [np.float16, np.float16]
    assert [e["grad"].dtype for e in entries] == [np.float16, np.float16]


# ----- training loops against torch.optim ---------------------------------------------------


def mlp(dtype, tied=False):
    """An MLP 4 -> 8 -> 8 -> 1 (tanh); ``tied``: one more 8 -> 8 layer sharing the middle one's weight."""
    torch.manual_seed(0)
    middle = [torch.nn.Linear(8, 8), torch.nn.Tanh()]
    if tied:
        again = torch.nn.Linear(8, 8)
        again.weight = middle[0].weight
        middle += [again, torch.nn.Tanh()]
    layers = [torch.nn.Linear(4, 8), torch.nn.Tanh(), *middle, torch.nn.Linear(8, 1)]
    return torch.nn.Sequential(*layers).to(TORCH_DTYPES[dtype])


def dataset(dtype):
    """float32-representable inputs (the float64 reference run reads the same values)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)
    batches = [rng.integers(0, 64, BATCH) for _ in range(STEPS)]
    as_tensor = lambda a: torch.from_numpy(a).to(TORCH_DTYPES[dtype])  # noqa: E731
    return as_tensor(x), as_tensor(y), batches


def train_with_torch(model, make_optimizer, data):
    """The torch loop, as a torch user writes it; every parameter's values after every step."""
    x, y, batches = data
    optimizer = make_optimizer(model.parameters())
    record = []
    for batch in batches:
        optimizer.zero_grad()
        mse(model, x[batch], y[batch]).backward()
        optimizer.step()
        record.append([p.detach().numpy().copy() for p in model.parameters()])
    return [np.stack(arrays) for arrays in zip(*record)]


def train_with_numpy_optim(model, make_optimizer, data):
    """The same loop stepped by numpy_optim through entries_from_module."""
    x, y, batches = data
    entries = entries_from_module(model)
    optimizer = make_optimizer(entries)
    record = []
    for batch in batches:
        optimizer.zero_grad()
        mse(model, x[batch], y[batch]).backward()
        check_entries(model, entries)
        optimizer.step()
        record.append([e["params"].copy() for e in entries])
    return [np.stack(arrays) for arrays in zip(*record)]


SGD_KWARGS = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}
OPTIMIZERS = {
    "SGD": (numpy_optim.SGD, torch.optim.SGD, SGD_KWARGS),
    "Adam": (numpy_optim.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 1e-3}),
}


@pytest.mark.parametrize("tied", [False, True], ids=["mlp", "mlp-tied"])
def test_sgd_float32_training_loop_is_bitwise_torchs(tied):
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        pytest.skip(f"torch uses no FMA on this CPU (capability {capability}); the bitwise claim is for FMA CPUs")
    data = dataset("float32")
    model = mlp("float32", tied)
    theirs = train_with_torch(copy.deepcopy(model), lambda p: torch.optim.SGD(p, **SGD_KWARGS), data)
    ours = train_with_numpy_optim(model, lambda e: numpy_optim.SGD(e, **SGD_KWARGS), data)
    assert len(ours) == len(theirs) == len(list(model.parameters()))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        for t in range(STEPS):
            assert a[t].tobytes() == b[t].tobytes(), f"params[{i}] differs after step {t + 1}"
    assert not np.array_equal(ours[0][0], ours[0][-1])  # it trained


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_loop_tracks_torch_by_the_tolerance_model(name, dtype):
    ours_cls, theirs_cls, kwargs = OPTIMIZERS[name]
    model = mlp(dtype)
    initial = [float(np.abs(p.detach().numpy()).max()) for p in model.parameters()]
    theirs = train_with_torch(copy.deepcopy(model), lambda p: theirs_cls(p, **kwargs), dataset(dtype))
    reference = (train_with_torch(copy.deepcopy(model).double(), lambda p: theirs_cls(p, **kwargs),
                                  dataset("float64")) if dtype == "float32" else None)
    ours = train_with_numpy_optim(model, lambda e: ours_cls(e, **kwargs), dataset(dtype))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if dtype == "float64":
            c = tolerance.compare_float64(f"params[{i}]", a, b, None, initial[i])
        else:
            c = tolerance.compare_float32(f"params[{i}]", a, b, reference[i], None, initial[i])
        assert c.violation is None, f"{name} {dtype}: {c.violation}"
        assert c.steps == STEPS
    assert not np.array_equal(ours[0][0], ours[0][-1])  # it trained


# ----- the zero_grad(set_to_none=True) pitfall ---------------------------------------------


def trained_once():
    model, x = small_linear()
    entries = entries_from_module(model)
    optimizer = numpy_optim.SGD(entries, lr=0.5)
    model(x).sum().backward()
    optimizer.step()
    return model, x, entries, optimizer


@pytest.mark.parametrize("zero_grad", [
    pytest.param(lambda model: model.zero_grad(), id="module.zero_grad()"),
    pytest.param(lambda model: torch.optim.SGD(model.parameters()).zero_grad(), id="torch-optimizer.zero_grad()"),
])
def test_set_to_none_is_caught_before_and_after_backward(zero_grad):
    model, x, entries, _ = trained_once()
    stale = [e["grad"].copy() for e in entries]
    zero_grad(model)  # torch's default: set_to_none=True
    with pytest.raises(ValueError, match=r"'weight' \(params\[0\]\) has grad None.*set_to_none=True"):
        check_entries(model, entries)
    (2 * model(x).sum()).backward()  # a new gradient tensor, which the entries do not see
    assert torch.equal(model.weight.grad, torch.tensor([[4.0, 0.0, 12.0], [4.0, 0.0, 12.0]], dtype=torch.float64))
    np.testing.assert_array_equal(entries[0]["grad"], stale[0])  # numpy_optim would step with this
    with pytest.raises(ValueError, match=r"entries\[0\]\['grad'\] no longer shares memory .*stale gradient"):
        check_entries(model, entries)


def test_the_recovery_the_message_names_relinks_the_gradient():
    model, x, entries, _ = trained_once()
    model.zero_grad()
    model(x).sum().backward()
    for entry, param in zip(entries, model.parameters()):
        entry["grad"][...] = param.grad.numpy()
        param.grad = torch.from_numpy(entry["grad"])
    check_entries(model, entries)
    model(x).sum().backward()
    np.testing.assert_array_equal(entries[0]["grad"], [[4.0, 0.0, 12.0], [4.0, 0.0, 12.0]])


@pytest.mark.parametrize("zero_grad", [
    pytest.param(lambda model, optimizer: model.zero_grad(set_to_none=False), id="set_to_none=False"),
    pytest.param(lambda model, optimizer: optimizer.zero_grad(), id="numpy_optim-zero_grad"),
])
def test_zeroing_in_place_keeps_the_entries_linked(zero_grad):
    model, x, entries, optimizer = trained_once()
    zero_grad(model, optimizer)
    check_entries(model, entries)
    assert all(not e["grad"].any() for e in entries)
    model(x).sum().backward()
    np.testing.assert_array_equal(entries[1]["grad"], [4.0, 4.0])


def test_create_graph_backward_is_caught():
    model, x, entries, _ = trained_once()
    model.zero_grad(set_to_none=False)
    with pytest.warns(UserWarning, match="create_graph=True"):
        model(x).sum().backward(create_graph=True)  # torch replaces the gradient tensor then
    with pytest.raises(ValueError, match=r"entries\[0\]\['grad'\] no longer shares memory"):
        check_entries(model, entries)


def test_replaced_parameter_data_is_caught():
    model = torch.nn.Linear(3, 2)
    entries = entries_from_module(model)
    model.double()  # param.data = param.data.double(): new memory
    with pytest.raises(ValueError, match=r"entries\[0\]\['params'\] no longer shares memory .*'weight'"):
        check_entries(model, entries)


def test_a_changed_set_of_trainable_parameters_is_caught():
    model, _, entries, _ = trained_once()
    model.bias.requires_grad_(False)
    with pytest.raises(ValueError, match="module has 1 parameters with requires_grad=True but entries has 2"):
        check_entries(model, entries)


def test_check_entries_refuses_bad_arguments():
    model, _, entries, optimizer = trained_once()
    check_entries(model, optimizer.param_groups)  # the optimizer's param_groups are the entries
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got list"):
        check_entries(entries, entries)
    with pytest.raises(TypeError, match="entries must be a list of dicts.*got SGD"):
        check_entries(model, optimizer)
    with pytest.raises(ValueError, match=r"entries\[1\]\['grad'\] no longer shares memory"):
        check_entries(model, [entries[0], {"params": entries[1]["params"], "grad": entries[1]["grad"].copy()}])


# ----- refusals ---------------------------------------------------------------------------


def module_with(**params):
    module = torch.nn.Module()
    for name, param in params.items():
        setattr(module, name, param)
    return module


def test_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got Tensor"):
        entries_from_module(torch.zeros(3, requires_grad=True))
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got list"):
        entries_from_module([torch.nn.Parameter(torch.zeros(3))])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.complex64])
def test_refuses_dtypes_numpy_optim_cannot_take(dtype):
    with pytest.raises(TypeError, match=rf"'weight' \(params\[0\]\) has dtype {dtype}.*float16, float32 and float64"):
        entries_from_module(torch.nn.Linear(2, 2, dtype=dtype))


def test_refuses_a_parameter_not_on_the_cpu():
    with pytest.raises(ValueError, match=r"'weight' \(params\[0\]\) is on device meta"):
        entries_from_module(torch.nn.Linear(2, 2, device="meta"))


def test_refuses_a_non_contiguous_parameter_or_gradient():
    with pytest.raises(ValueError, match=r"'w' \(params\[0\]\) is not contiguous \(shape \(2, 3\), strides \(1, 2\)\)"):
        entries_from_module(module_with(w=torch.nn.Parameter(torch.zeros(3, 2).T)))
    model = torch.nn.Linear(3, 2)
    model.weight.grad = torch.zeros(3, 2).T
    with pytest.raises(ValueError, match=r"'weight' \(params\[0\]\)\.grad is not contiguous.*param.grad = None"):
        entries_from_module(model)


def test_refuses_a_sparse_parameter():
    sparse = torch.sparse_coo_tensor([[0]], [1.0], (3,), check_invariants=True)
    with pytest.raises(ValueError, match=r"'w' \(params\[0\]\) has layout torch.sparse_coo"):
        entries_from_module(module_with(w=torch.nn.Parameter(sparse)))


def test_refuses_a_lazy_module_before_its_first_forward_pass():
    model = torch.nn.LazyLinear(2)
    with pytest.raises(ValueError, match=r"'weight' \(params\[0\]\) is not initialized yet.*forward pass"):
        entries_from_module(model)
    model(torch.zeros(1, 3))
    assert [e["params"].shape for e in entries_from_module(model)] == [(2, 3), (2,)]


@pytest.mark.parametrize("module", [
    pytest.param(torch.nn.ReLU(), id="no-parameters"),
    pytest.param(torch.nn.Linear(2, 2).requires_grad_(False), id="all-frozen"),
])
def test_refuses_a_module_with_nothing_to_train(module):
    with pytest.raises(ValueError, match=r"module \((ReLU|Linear)\) has no parameter with requires_grad=True"):
        entries_from_module(module)


def test_a_refusal_changes_nothing():
    module = module_with(a=torch.nn.Parameter(torch.zeros(3)),
                         b=torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16)))
    with pytest.raises(TypeError, match=r"'b' \(params\[1\]\) has dtype torch.bfloat16"):
        entries_from_module(module)
    assert module.a.grad is None and module.b.grad is None


def test_overlapping_distinct_parameters_are_refused_by_the_optimizer():
    base = torch.zeros(4)
    entries = entries_from_module(module_with(a=torch.nn.Parameter(base[:3]), b=torch.nn.Parameter(base[1:])))
    with pytest.raises(ValueError, match=r"params\[1\]\['params'\] shares memory with params\[0\]\['params'\]"):
        numpy_optim.SGD(entries)
