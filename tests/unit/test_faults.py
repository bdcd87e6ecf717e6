"""Faults in the middle of a step (issue 11): a MemoryError at every allocation, a
FloatingPointError under ``np.errstate``, an exception from a subclass, a real SIGINT during
a long threaded step, and two threads stepping one optimizer.

What holds (numpy_optim/optimizer.py, ``Optimizer.step``): every check and every new state
buffer comes before the first write; the step counter and scalar state advance only once
every entry is updated; a failed step drops the buffers it created, so ``state_dict()``
still loads back, and its error carries a note naming the entry; under
``np.errstate(all="raise")`` the arrays are put back too. The oracle is a twin optimizer
that never saw the fault: after the fault, one more step of each must agree bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import numpy_optim
from numpy_optim import _blocks

ELEMENTWISE = [
    (numpy_optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (numpy_optim.Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    (numpy_optim.AdamW, {"lr": 0.01}),
    (numpy_optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01}),
    (numpy_optim.RMSprop, {"lr": 0.01, "centered": True, "momentum": 0.5}),
    (numpy_optim.Adadelta, {}),
    (numpy_optim.Adamax, {}),
    (numpy_optim.NAdam, {}),
    (numpy_optim.RAdam, {}),
    (numpy_optim.ASGD, {}),
    (numpy_optim.Rprop, {}),
]
IDS = [cls.__name__ for cls, _ in ELEMENTWISE]
#: Seconds a thread or a child process may take before the test calls it hung: a guard
#: against hangs, never a timing the test relies on (a loaded machine stays far below it).
HANG_S = 300


def make_entries(seed: int) -> list[dict[str, np.ndarray]]:
    """Small parameters (gathered into batches), a large one (blocks), a non-contiguous one
    (the whole-array path), in float32 and float64: several groups and every path."""
    rng = np.random.default_rng(seed)
    entries = []
    for shape, dtype in [((3,), np.float64), ((7, 5), np.float64), ((70_000,), np.float64), ((40,), np.float32),
                         ((6, 4), np.float32)]:
        entries.append({"params": rng.standard_normal(shape).astype(dtype),
                        "grad": rng.standard_normal(shape).astype(dtype)})
    base = rng.standard_normal((8, 6))
    entries.append({"params": base[:, ::2], "grad": rng.standard_normal((8, 3))})  # strided: whole arrays
    entries[1]["lr"] = 0.003  # one entry with an override
    return entries


def twins(cls, kwargs, seed=0):
    return cls(make_entries(seed), **kwargs), cls(make_entries(seed), **kwargs)


def arrays_of(opt) -> list[tuple[str, bytes]]:
    """Every parameter's and state array's bytes, dtype and shape, and the step counter."""
    out = [(f"params[{i}]", e["params"].dtype.str, e["params"].shape, e["params"].tobytes())
           for i, e in enumerate(opt.param_groups)]
    for index, buffers in sorted((k, v) for k, v in opt.state.items() if k != "step"):
        for name, buffer in sorted(buffers.items()):
            out.append((f"state[{index}][{name}]", buffer.dtype.str, buffer.shape, np.asarray(buffer).tobytes()))
    return [*out, ("step", opt.state["step"])]


def assert_same(opt, twin, what):
    assert arrays_of(opt) == arrays_of(twin), what


class _Allocations:
    """Counts the calls numpy_optim's code makes to NumPy's array-creating functions (the
    allocation points; a ufunc's own result array is not one), and raises
    MemoryError at call number ``fail_at`` (counting only while armed)."""

    NAMES = ("empty", "empty_like", "zeros", "zeros_like", "full", "full_like", "array", "ascontiguousarray")

    def __init__(self, monkeypatch):
        self.calls, self.fail_at, self.armed = 0, None, False
        for name in self.NAMES:
            monkeypatch.setattr(np, name, self._wrap(getattr(np, name)))

    def _wrap(self, function):
        def allocate(*args, **kwargs):
            # numpy_optim's own calls only (NumPy calls np.array inside some of its functions)
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if self.armed and caller.startswith("numpy_optim"):
                self.calls += 1
                if self.calls == self.fail_at:
                    self.failed_in = caller
                    raise MemoryError(f"simulated: allocation {self.calls}")
            return function(*args, **kwargs)
        return allocate

    def step(self, opt, fail_at):
        _blocks._local.__dict__.clear()  # the thread's kept work rows: allocated again, and counted
        self.calls, self.fail_at, self.armed, self.failed_in = 0, fail_at, True, None
        try:
            opt.step()
        finally:
            self.armed = False


@pytest.mark.parametrize("steady", [False, True], ids=["first-step", "steady-step"])
@pytest.mark.parametrize("cls, kwargs", ELEMENTWISE, ids=IDS)
def test_a_memory_error_at_any_allocation_changes_nothing(monkeypatch, cls, kwargs, steady):
    """One thread: every allocation of the step's machinery (buffers, work arrays,
    constants, address tables) comes before its first write, so a MemoryError there changes
    nothing. The exact float64 multiply-add (numpy_optim._fma) takes work arrays inside the
    kernels, after writes began: a MemoryError there leaves the bookkeeping whole (step
    counter, set of buffers), says so in its note, and the state dict loads back."""
    allocations = _Allocations(monkeypatch)
    with _blocks.configured(threads=1):
        opt, twin = twins(cls, kwargs)
        if steady:
            for o in (opt, twin):
                o.step()
                o.step()  # the reused plan from here on
        allocations.step(twins(cls, kwargs)[1], None)  # (once: caches made on a first use are not counted)
        allocations.step(twin, None)
        n = allocations.calls
        assert n > 0, "the count itself must see the step's allocations"
        twin = twins(cls, kwargs)[1]
        if steady:
            twin.step()
            twin.step()
        inside_kernels = 0
        for fail_at in range(1, n + 1):
            with pytest.raises(MemoryError, match=f"allocation {fail_at}") as raised:
                allocations.step(opt, fail_at)
            assert opt.state["step"] == twin.state["step"]
            assert [(k, sorted(v)) for k, v in sorted((k, v) for k, v in opt.state.items() if k != "step")] == \
                [(k, sorted(v)) for k, v in sorted((k, v) for k, v in twin.state.items() if k != "step")]
            opt.load_state_dict(opt.state_dict())  # the state still loads back
            if allocations.failed_in == "numpy_optim._fma":
                inside_kernels += 1
                assert any("partly updated" in note for note in raised.value.__notes__), raised.value.__notes__
                opt = twins(cls, kwargs)[0]  # start again from the twin's state
                opt.load_state_dict(twin.state_dict())
                for mine, theirs in zip(opt.param_groups, twin.param_groups):
                    mine["params"][...] = theirs["params"]
                continue
            assert_same(opt, twin, f"{cls.__name__}: a MemoryError at allocation {fail_at} of {n} "
                                   f"({allocations.failed_in}) changed something")
        assert inside_kernels < n
        opt.step()
        twin.step()
        assert_same(opt, twin, f"{cls.__name__}: the step after {n} refused ones differs from the twin's")


def test_a_memory_error_in_adafactor_leaves_its_bookkeeping_whole(monkeypatch):
    """Adafactor is not elementwise: its reductions allocate as they go, after the first
    writes. What holds: the step counter and the set of buffers are unchanged, the error
    names the entry, and the state dict loads back."""
    allocations = _Allocations(monkeypatch)
    rng = np.random.default_rng(3)
    entries = [{"params": rng.standard_normal(s), "grad": rng.standard_normal(s)} for s in [(5,), (4, 6), (3,)]]
    opt = numpy_optim.Adafactor(entries)
    opt.step()
    for fail_at in range(1, 1000):  # until the step's allocations are all passed and it completes
        keys_before = {i: sorted(b) for i, b in opt.state.items() if i != "step"}
        try:
            allocations.step(opt, fail_at)
        except MemoryError as error:
            assert opt.state["step"] == 1
            assert {i: sorted(b) for i, b in opt.state.items() if i != "step"} == keys_before
            assert any("params[" in note for note in error.__notes__), error.__notes__
            fresh = numpy_optim.Adafactor([{"params": e["params"].copy(), "grad": e["grad"]} for e in entries])
            fresh.load_state_dict(opt.state_dict())
        else:
            break
    assert fail_at > 10 and opt.state["step"] == 2, fail_at


def test_a_memory_error_on_the_first_step_adds_no_buffer(monkeypatch):
    """The third buffer of the first step fails: the two created before it are dropped."""
    allocations = _Allocations(monkeypatch)
    entries = [{"params": np.ones(4), "grad": np.ones(4)} for _ in range(3)]
    opt = numpy_optim.Adam(entries, amsgrad=True)
    with pytest.raises(MemoryError):
        allocations.step(opt, 3)
    assert set(opt.state) == {"step"} and opt.state["step"] == 0
    assert all((e["params"] == 1).all() for e in entries)


# Those whose update overflows on a gradient of 1.7e308 in a plain multiply or add (the
# others square it inside numpy_optim._fma's fused multiply-adds, which ignore errstate,
# or only take its sign).
OVERFLOWING = [config for config in ELEMENTWISE
               if config[0] in (numpy_optim.SGD, numpy_optim.Adam, numpy_optim.AdamW, numpy_optim.Adagrad,
                                numpy_optim.Adadelta)]


@pytest.mark.parametrize("cls, kwargs", OVERFLOWING, ids=[cls.__name__ for cls, _ in OVERFLOWING])
def test_a_floating_point_error_under_errstate_undoes_the_step_and_names_the_entry(cls, kwargs):
    opt, twin = twins(cls, kwargs)
    for o in (opt, twin):
        o.step()
    for o in (opt, twin):  # the large float64 entry overflows
        o.param_groups[2]["grad"][100] = 1.7e308
    with np.errstate(all="raise"), pytest.raises(FloatingPointError) as raised:
        opt.step()
    notes = raised.value.__notes__
    assert any("failed while updating params[2]" in note for note in notes), notes
    assert any("no parameter or state buffer changed" in note for note in notes), notes
    assert_same(opt, twin, f"{cls.__name__}: the undone step changed something")
    with np.errstate(all="ignore"):  # without errstate: the same step as the twin's
        opt.step()
        twin.step()
    assert_same(opt, twin, f"{cls.__name__}: after the undone step")


class _FailingSGD(numpy_optim.SGD):
    """An SGD whose step fails on its float32 group, after the float64 groups were updated."""

    def _scalars(self, hyper, step, first, dtype):
        if dtype == np.float32 and step == 2:
            raise RuntimeError("a subclass fails")
        return super()._scalars(hyper, step, first, dtype)


def test_an_exception_from_a_subclass_keeps_the_bookkeeping_and_names_the_entries():
    opt = _FailingSGD(make_entries(1), lr=0.1, momentum=0.9)
    opt.step()
    saved = opt.state_dict()
    with pytest.raises(RuntimeError, match="a subclass fails") as raised:
        opt.step()
    notes = raised.value.__notes__
    assert any("failed while updating one of params[3, 4]" in note for note in notes), notes
    assert any("no parameter or state buffer changed" in note for note in notes), notes  # (before any write)
    assert opt.state["step"] == 1
    assert sorted(k for k in opt.state if k != "step") == list(range(6))
    fresh = _FailingSGD(make_entries(1), lr=0.1, momentum=0.9)
    fresh.load_state_dict(opt.state_dict())  # loads back
    fresh.load_state_dict(saved)


class _BlockingSGD(numpy_optim.SGD):
    """Its first step waits (inside the step) until released."""

    def __init__(self, *args, **kwargs):
        self.inside, self.release = threading.Event(), threading.Event()
        super().__init__(*args, **kwargs)

    def _scalars(self, hyper, step, first, dtype):
        self.inside.set()
        assert self.release.wait(HANG_S)
        return super()._scalars(hyper, step, first, dtype)


def test_a_second_thread_in_a_call_of_the_same_optimizer_is_refused():
    opt = _BlockingSGD(make_entries(2)[:2], lr=0.1, momentum=0.9)
    twin = numpy_optim.SGD(make_entries(2)[:2], lr=0.1, momentum=0.9)
    stepping = threading.Thread(target=opt.step)
    stepping.start()
    try:
        assert opt.inside.wait(HANG_S), "the stepping thread never got inside its step"
        errors = []
        for call in (opt.step, opt.state_dict, lambda: opt.load_state_dict(twin.state_dict()),
                     lambda: opt.add_param_group({"params": np.ones(2), "grad": np.ones(2)})):
            with pytest.raises(RuntimeError, match="another thread") as raised:
                call()
            errors.append(str(raised.value))
        assert "_BlockingSGD.step()" in errors[0] and "_BlockingSGD.state_dict()" in errors[1]
    finally:
        opt.release.set()
        stepping.join(HANG_S)
    assert not stepping.is_alive(), "the stepping thread hung"
    twin.step()
    assert_same(opt, twin, "the refused calls changed the step of the first thread")
    assert len(opt.param_groups) == 2 and len(opt.initial_lrs) == 2


def test_one_optimizer_per_thread_steps_in_parallel():
    """Different optimizers in different threads do not refuse each other."""
    pairs = [twins(numpy_optim.Adam, {"lr": 0.01}, seed) for seed in range(3)]
    threads = [threading.Thread(target=lambda o=o: [o.step() for _ in range(5)]) for o, _ in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_S)
    assert not any(thread.is_alive() for thread in threads), "a stepping thread hung"
    for opt, twin in pairs:
        for _ in range(5):
            twin.step()
        assert_same(opt, twin, "an optimizer stepped in its own thread")


SIGINT_CHILD = textwrap.dedent("""
    import os, signal, sys, threading, time, traceback
    import numpy as np
    import numpy_optim
    from numpy_optim import _blocks

    _blocks.settings.threads = 2
    rng = np.random.default_rng(0)
    n = 3_000_000
    grad = rng.standard_normal(n).astype(np.float32)
    x, twin_x = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    twin_x[...] = x
    opt = numpy_optim.Adam([{"params": x, "grad": grad}], lr=0.01)
    twin = numpy_optim.Adam([{"params": twin_x, "grad": grad}], lr=0.01)
    opt.step(); twin.step()  # (and the numba backend's compilation)

    armed = [False]
    def on_sigint(signum, frame):  # one KeyboardInterrupt per round: the other presses find it disarmed
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)

    def pool_idle():  # returns once every pool worker is idle: each must take one of these
        # barrier tasks, which it can do only once whatever it was running (a step's part) is done
        workers = _blocks.settings.threads - 1
        barrier = threading.Barrier(workers + 1, timeout=600)
        tasks = [_blocks._executor(workers).submit(barrier.wait) for _ in range(workers)]
        barrier.wait()
        for task in tasks:
            task.result()

    def press_twice(delay):
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.0005)
        os.kill(os.getpid(), signal.SIGINT)

    rounds = held = 0
    while rounds < 12 or (not held and rounds < 200):  # on until a SIGINT has been held by a step
        armed[0] = True
        presser = threading.Thread(target=press_twice, args=(0.001 * (rounds % 6),))
        try:
            presser.start()
            after_presses = 0  # steps begun once both presses were sent
            while True:
                after_presses += not presser.is_alive()
                if after_presses > 2:
                    raise SystemExit("no KeyboardInterrupt in the two steps after both SIGINTs were sent")
                opt.step()
        except KeyboardInterrupt:
            frames = [frame.name for frame in traceback.extract_tb(sys.exc_info()[2])]
            held += "_sigint_held" in frames  # delivered by the step, once it had finished
        presser.join()
        after = x.tobytes()
        pool_idle()  # a worker still writing after step() raised would have changed x by now
        assert x.tobytes() == after, "a worker wrote after step() raised"
        while twin.state["step"] < opt.state["step"]:
            twin.step()
        assert x.tobytes() == twin_x.tobytes(), f"round {rounds}: parameters differ from {opt.state['step']} steps"
        for name in ("exp_avg", "exp_avg_sq"):
            assert opt.state[0][name].tobytes() == twin.state[0][name].tobytes(), name
        rounds += 1
    print("rounds", rounds, "held", held)
""")


def test_a_real_sigint_during_a_threaded_step_is_held_until_the_step_is_done(tmp_path):
    """Two quick SIGINTs per round, sent by the process to itself while it steps a 3M-element
    Adam over two threads: every KeyboardInterrupt comes out between steps, no worker writes
    once it is out (checked when every worker is idle), and the parameters and buffers are
    those of exactly ``state["step"]`` steps. At least 12 rounds, and more (up to 200) until
    a SIGINT has landed inside a step: no timing is assumed, however loaded the machine."""
    script = tmp_path / "sigint_child.py"
    script.write_text(SIGINT_CHILD)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=4 * HANG_S,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert result.returncode == 0, result.stdout + result.stderr
    rounds, held = result.stdout.split()[1::2]
    assert int(rounds) >= 12
    assert int(held) >= 1, f"no SIGINT arrived during a step in {rounds} rounds: the hold was never exercised"


def test_the_sigint_handler_is_restored_after_a_step():
    before = signal.getsignal(signal.SIGINT)
    opt = numpy_optim.SGD([{"params": np.ones(3), "grad": np.ones(3)}], lr=0.1)
    opt.step()
    with pytest.raises(ValueError):
        opt.load_state_dict({**opt.state_dict(), "step": -1})
    assert signal.getsignal(signal.SIGINT) is before
