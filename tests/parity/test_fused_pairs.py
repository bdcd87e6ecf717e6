"""The fused pairs: numpy_optim's ``fused=True`` against torch's, with zero tolerance.

* numpy_optim's SGD, Adam, AdamW and Adagrad with ``fused=True`` pass their pairs (few cases
  per pair and dtype here; ``nox -s parity`` runs the ``parity`` profile's), every value of
  every step bit for bit: 0 values differing, 0 differing bits.
* The harness has teeth: a stand-in that runs torch's own fused kernel behind the numpy_optim
  interface passes, and the same stand-in with one bit planted in one value is caught, with
  the array, step, index, both bit patterns and the differing bits (1) in the message and
  the report.
* The known torch defect (fused SGD on float16/bfloat16 never updates the vector body) is
  listed in the report, re-measured on the installed torch, and pinned here.
"""

from __future__ import annotations

import functools
import json
import re

import ml_dtypes
import numpy as np
import pytest
import torch

import numpy_optim
from parity import fused, report, tolerance
from parity.__main__ import main
from parity.harness import ParityError, Stats
from parity.registry import FUSED, KNOWN_TORCH_DEFECTS, OPTIMIZERS
from parity.strategies import CaseSpec
from parity.trajectories import numpy_dtype, to_numpy, to_torch

TORCH = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "Adagrad": torch.optim.Adagrad}
PAIR_DTYPES = [(name, dtype) for name, pair in FUSED.items() for dtype in pair.dtypes]


class TorchFused:
    """A stand-in for numpy_optim's side: torch's own fused kernel behind the numpy_optim
    interface (entries in, ``step()``, ``state[i][buffer]`` and ``state["step"]``), so that
    the harness can be tested without numpy_optim's kernels. ``plant`` = (step, array,
    entry): after that step, the lowest bit of that array's last element is flipped, in the
    parameter itself (``"params"``: the run goes on from it) or in the state read by the
    harness (a buffer name: that one recorded value only)."""

    def __init__(self, entries, *, torch_class, plant=None, **hyperparameters):
        self.entries, self.plant, self.steps = entries, plant, 0
        self.tensors = [to_torch(e["params"]).requires_grad_() for e in entries]
        groups = [{"params": [t], **{k: v for k, v in e.items() if k not in ("params", "grad")}}
                  for t, e in zip(self.tensors, entries)]
        self.optimizer = torch_class(groups, fused=True, **hyperparameters)
        self.state = {"step": 0}

    def step(self):
        for t, e in zip(self.tensors, self.entries):
            with torch.no_grad():
                t.copy_(to_torch(e["params"]))
            t.grad = to_torch(e["grad"])
        self.optimizer.step()
        self.steps += 1
        self.state["step"] = self.steps
        for i, (t, e) in enumerate(zip(self.tensors, self.entries)):
            e["params"][...] = to_numpy(t)
            self.state[i] = {k: to_numpy(v) for k, v in self.optimizer.state[t].items() if k != "step"}
        if self.plant is not None and self.plant[0] == self.steps:
            _, name, index = self.plant
            target = self.entries[index]["params"] if name == "params" else self.state[index][name]
            _flip_lowest_bit(target)


def _flip_lowest_bit(a: np.ndarray) -> None:
    bits = a.reshape(-1).view(f"uint{8 * a.dtype.itemsize}")
    bits[-1] ^= 1


def stand_in(optimizer: str, plant=None):
    return functools.partial(TorchFused, torch_class=TORCH[optimizer], plant=plant)


def spec(pair="Adam+fused", dtype="float32", steps=6, shapes=((35,), (3, 5)), **hyperparameters):
    hyper = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1, "amsgrad": True,
             "maximize": False} if pair.startswith("Adam") else {}
    hyper.update(hyperparameters)
    return CaseSpec(pair=pair, dtype=dtype, hyperparameters=hyper, overrides=[{} for _ in shapes],
                    shapes=list(shapes), gradient_kinds=["normal" for _ in shapes], steps=steps, seed=3)


def run(case, ours, stats=None):
    pair = fused.pair_spec(case.pair)
    return fused.run_case(case, ours, pair.theirs, name=case.pair, buffers=pair.buffers,
                          torch_has_step=pair.torch_has_step, stats=stats)


# ----- the registry ----------------------------------------------------------------------


def test_fused_pairs_are_the_four_torch_fused_optimizers_with_their_dtypes():
    assert {p.optimizer for p in FUSED.values()} == {n for n, p in OPTIMIZERS.items() if p.fused}
    assert {n for n, p in OPTIMIZERS.items() if p.fused} == {"SGD", "Adam", "AdamW", "Adagrad"}
    for pair in FUSED.values():
        half = ("float16", "bfloat16")
        expected = ("float64", "float32") if pair.optimizer == "SGD" else ("float64", "float32", *half)
        assert pair.dtypes == expected, pair.name


def test_fused_pair_builds_numpy_optim_with_fused_true():
    optimizer = fused.pair_spec("Adagrad+fused").ours(
        [{"params": np.zeros(3), "grad": np.zeros(3)}], lr=0.1)
    assert isinstance(optimizer, numpy_optim.Adagrad) and optimizer.defaults["fused"] is True


# ----- exact dtype conversions ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_arrays_cross_to_torch_and_back_with_every_bit_pattern(dtype):
    bits = np.arange(2**16, dtype=np.uint16)
    values = bits.view(numpy_dtype(dtype))
    tensor = to_torch(values)
    assert tensor.dtype == getattr(torch, dtype)
    assert np.array_equal(tensor.view(torch.uint16).numpy(), bits)     # torch holds the same bits
    back = to_numpy(tensor)
    assert back.dtype == values.dtype and np.array_equal(back.view(np.uint16), bits)
    assert to_torch(np.array(1.5, numpy_dtype(dtype))).shape == ()        # 0-d stays 0-d


def test_bfloat16_is_ml_dtypes_bfloat16():
    assert numpy_dtype("bfloat16") == np.dtype(ml_dtypes.bfloat16)


# ----- the zero-tolerance comparison -----------------------------------------------------------


def test_compare_bits_counts_bits_and_ulps():
    theirs = np.array([[1.0, 0.0, 2.0, np.nan]], np.float32)
    ours = theirs.copy()
    assert tolerance.compare_bits("p", ours, theirs).differing == 0
    ours[0, 0] = np.nextafter(np.float32(1), np.float32(0))   # 0x3f7fffff vs 0x3f800000: 1 ulp, 24 bits
    ours[0, 1] = -0.0                                          # the sign bit: 1 bit, 0 ulps
    c = tolerance.compare_bits("p", ours, theirs)
    assert (c.compared, c.differing, c.bits, c.ulps) == (4, 2, 24, 1.0)
    assert (c.first.step, c.first.index, c.first.ours_bits, c.first.theirs_bits) == (1, (0,), "0x3f7fffff",
                                                                                    "0x3f800000")
    ours[0, 3] = 1.0
    assert tolerance.compare_bits("p", ours, theirs).ulps == np.inf       # a number against a NaN
    nan = np.array([[np.nan]], np.float32)
    other_nan = nan.copy()
    other_nan.view(np.uint32)[...] ^= 0x80000001                           # another sign and payload: a NaN still
    assert tolerance.compare_bits("p", other_nan, nan).differing == 0
    assert tolerance.compare_bits("p", theirs.astype(np.float64), theirs).differing == 4   # dtype


# ----- teeth: torch against itself, and a planted bit ------------------------------------------


@pytest.mark.parametrize("name", list(FUSED))
def test_torch_against_itself_passes_with_zero_differing_bits(name):
    stats = fused.check(name, ours=stand_in(FUSED[name].optimizer), max_examples=8, seed=1)
    rows = [side for (pair, _, _), side in stats.sides.items() if pair == name]
    assert rows and all(side.bitwise for side in rows)
    assert sum(side.compared for side in rows) > 0
    assert all((side.differing, side.bits, side.ulps) == (0, 0, 0.0) for side in rows)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "float64"])
def test_one_planted_bit_in_a_buffer_is_one_differing_value_of_one_bit(dtype):
    stats = Stats()
    with pytest.raises(ParityError) as caught:
        run(spec(dtype=dtype), stand_in("Adam", plant=(4, "exp_avg_sq", 1)), stats)
    message = str(caught.value)
    assert f"Adam+fused vs torch (fused=True), {dtype}, zero tolerance: 1 of " in message
    assert re.search(r"exp_avg_sq\[1\]: 1 of \d+ differ, at most 1 bit\(s\) and 1 ulp\(s\); first after step 4, "
                     r"index \(2, 4\)", message), message
    assert "reproduce:" in message
    side = stats.sides[("Adam+fused", dtype, "bitwise")]
    assert (side.differing, side.bits, side.ulps) == (1, 1, 1.0)
    assert side.worst_case["array"] == "exp_avg_sq[1]"
    data = {"rows": [report._row(("Adam+fused", dtype, "bitwise"), side)]}
    cells = [cell.strip() for cell in report.markdown_table(data).splitlines()[2].strip("|").split("|")]
    assert cells[0] == "Adam+fused" and cells[5:8] == ["1", "1", "1"]


def test_a_planted_bit_in_a_parameter_is_caught_where_it_was_planted_and_spreads():
    with pytest.raises(ParityError) as caught:
        run(spec(pair="SGD+fused", dtype="float64", lr=0.1, momentum=0.9), stand_in("SGD", plant=(2, "params", 0)))
    first = re.search(r"params\[0\]: (\d+) of \d+ differ.*first after step 2, index \(34,\).*1 bit\(s\), 1 ulp\(s\)",
                      str(caught.value))
    assert first and int(first.group(1)) > 1, str(caught.value)   # the run goes on from the planted bit


def test_a_planted_bit_is_found_by_the_property_and_replays():
    with pytest.raises(ParityError) as caught:
        fused.check("Adagrad+fused", ours=stand_in("Adagrad", plant=(1, "sum", 0)), max_examples=20, seed=0)
    message = str(caught.value)
    assert "Adagrad+fused vs torch (fused=True)" in message and "sum[0]: 1 of" in message
    case = re.search(r"parity\.fused\.replay\((.*), ours=", message).group(1)
    with pytest.raises(ParityError):
        fused.replay(eval(case), ours=stand_in("Adagrad", plant=(1, "sum", 0)))   # the repr of a str
    assert all(c.differing == 0 for c in fused.replay(eval(case), ours=stand_in("Adagrad")))


# ----- numpy_optim's fused=True: bit for bit ---------------------------------------------------


@pytest.mark.parametrize(("name", "dtype"), PAIR_DTYPES, ids=[f"{n}-{d}" for n, d in PAIR_DTYPES])
def test_fused_pair_is_bitwise_torch(name, dtype):
    stats = fused.check(name, dtypes=(dtype,), seed=0)     # the loaded profile's cases (dev 15, ci 40)
    side = stats.sides[(name, dtype, "bitwise")]
    assert side.cases > 0 and side.compared > 0
    assert (side.differing, side.bits, side.ulps) == (0, 0, 0.0)


def test_a_fused_case_replays_from_the_command_line(capsys):
    case = spec(pair="AdamW+fused", dtype="bfloat16", steps=30, shapes=((), (17,), (1030,)), amsgrad=False)
    assert main(["--replay", case.to_json()]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"fused +params\[2\] +30900 values compared, 0 differing, most differing bits 0", printed)
    assert "exp_avg_sq[1]" in printed and "step[0]" in printed


def test_the_report_has_fused_rows_and_the_known_defects(tmp_path, capsys):
    assert main(["--pairs", "SGD+fused,Adagrad+fused", "--profile", "dev", "--max-examples", "3",
                 "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "parity.json").read_text())
    rows = [r for r in data["rows"] if r["pair"] in ("SGD+fused", "Adagrad+fused")]
    assert rows and all(r["bitwise"] and r["differing"] == 0 and r["bits"] == 0 for r in rows)
    markdown = (tmp_path / "parity.md").read_text()
    assert "| pair (fused=True, zero tolerance) |" in markdown
    assert "most differing bits 0" in capsys.readouterr().out


# ----- the known torch defect ---------------------------------------------------------------------


def test_the_report_lists_every_known_torch_defect_with_its_measurement():
    data = report.to_json(Stats(), "dev", 0.0)
    listed = data["known_torch_defects"]
    assert [d["name"] for d in listed] == [d.name for d in KNOWN_TORCH_DEFECTS]
    assert listed[0]["name"] == "fused SGD on float16/bfloat16 never updates the parameters' vector body"
    assert listed[0]["present"] is True and "float16" in listed[0]["measured"]["changed"].__repr__()
    markdown = report.to_markdown(data)
    section = markdown[markdown.index("## Known torch defects"):]
    assert KNOWN_TORCH_DEFECTS[0].name in section and "**still present**" in section
    assert "numpy_optim.SGD(fused=True) refuses float16 and bfloat16" in section


def test_every_known_defect_is_pinned_by_a_test_of_this_file():
    for defect in KNOWN_TORCH_DEFECTS:
        path, test = defect.pinned_by.split("::")
        assert path == "tests/parity/test_fused_pairs.py" and callable(globals()[test])


def test_torch_fused_sgd_half_defect_is_still_present():
    """Fails the day torch fixes its fused SGD on half parameters: then numpy_optim can
    drop its refusal and the SGD+fused pair can draw float16 and bfloat16."""
    measured = KNOWN_TORCH_DEFECTS[0].probe()
    assert measured["changed"] == {f"{d}, momentum {m}": [32, 33, 34] for d in ("float16", "bfloat16")
                                   for m in (0.0, 0.9)}
    assert measured["present"] is True
    for dtype in ("float16", "bfloat16"):     # numpy_optim does not copy it: a clear refusal
        x = np.ones(35, numpy_dtype(dtype))
        with pytest.raises(ValueError, match=f"SGD\\(fused=True\\).*{dtype}"):
            numpy_optim.SGD([{"params": x, "grad": np.ones_like(x)}], lr=0.5, fused=True)
        assert measured["numpy_optim"][dtype].startswith("ValueError")


def test_a_rows_case_is_one_that_differs_once_one_does():
    stats = Stats()
    run(spec(steps=2), stand_in("Adam"), stats)                                   # passes: the row's case, for now
    with pytest.raises(ParityError):
        run(spec(steps=3), stand_in("Adam", plant=(3, "exp_avg", 0)), stats)      # differs: now the row's case
    run(spec(steps=4), stand_in("Adam"), stats)
    side = stats.sides[("Adam+fused", "float32", "bitwise")]
    assert (side.cases, side.differing, side.worst_case["steps"], side.worst_case["array"]) == (3, 1, 3, "exp_avg[0]")
