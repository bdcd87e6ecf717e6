"""The README's figures: every one renders to a real PNG of its size, and the legends say what the code measures.

matplotlib is a test dependency (the `test` extra), so nothing here is skipped. The
figures are measured and drawn once (module fixture, Agg backend, ~35 s); the legend
checks re-run the convergence experiments independently, with the settings of
tests/unit/test_convergence.py, through numpy_optim.problems.run_optimizer.
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from numpy_optim import SGD, Adam, AdamW, demo
from numpy_optim.problems import Rosenbrock, ill_conditioned_quadratic, run_optimizer

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A parity report in the layout of parity/report.py: one failing row, one exact, one infinite ratio.
PARITY_REPORT = {
    "profile": "test",
    "seconds": 1.0,
    "passed": False,
    "failures": ["Adam: Parity failure (synthetic)"],
    "versions": {"python": "3.11", "numpy": "2", "torch": "2.13.0"},
    "rows": [
        {"pair": pair, "dtype": dtype, "torch_side": side, "cases": 10, "steps": 100, "judged": 1000,
         "unjudged": 0, "worst_error": 1e-16, "worst_ratio": ratio, "worst_case": {}}
        for pair, dtype, side, ratio in [
            ("SGD", "float64", "default", 0.24),
            ("SGD", "float32", "fused", 0.0),
            ("Adam", "float32", "default", 13.9),
            ("AdamW", "float64", "fused", math.inf),
            ("CosineScheduler", "float64", "schedule", 0.095),
        ]
    ],
}

# The settings of tests/unit/test_convergence.py (AdamW, not there, with Adam's lr and its default decay).
ROSENBROCK_REFERENCE = {
    "SGD": lambda e: SGD(e, lr=1e-3),
    "SGD + momentum": lambda e: SGD(e, lr=1e-3, momentum=0.9),
    "Nesterov": lambda e: SGD(e, lr=1e-3, momentum=0.9, nesterov=True),
    "Adam": lambda e: Adam(e, lr=1e-2),
    "AdamW": lambda e: AdamW(e, lr=1e-2, weight_decay=0.01),
}
ILL_REFERENCE = {
    "SGD": lambda e: SGD(e, lr=2 / 101),
    "SGD + momentum": lambda e: SGD(e, lr=2 / 101, momentum=0.9),
    "Nesterov": lambda e: SGD(e, lr=0.01, momentum=0.9, nesterov=True),  # diverges at 2 / 101: see below
    "Adam": lambda e: Adam(e, lr=0.05),
    "AdamW": lambda e: AdamW(e, lr=0.05, weight_decay=0.01),
}


@pytest.fixture(scope="module")
def parity_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("reports") / "parity.json"
    path.write_text(json.dumps(PARITY_REPORT))
    return path


@pytest.fixture(scope="module")
def figures(parity_json):
    figs = demo.build_figures(parity_json=parity_json, with_torch=True)
    yield figs
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)


def png_size(path):
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG (starts {head[:8]!r})"
    assert head[12:16] == b"IHDR", f"{path.name}: first chunk is {head[12:16]!r}, not IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def legend_iterations(fig):
    """{optimizer name: iterations (int) or None for "not reached"} from a paths figure's legend."""
    out = {}
    for text in fig.axes[0].get_legend().get_texts():
        first_line = text.get_text().split("\n")[0]
        match = re.fullmatch(r"(.+?): (?:(\d+) iterations|(?:diverged, )?not reached in \d+)", first_line)
        if match:
            out[match[1]] = int(match[2]) if match[2] else None
    return out


# ----- the files -----------------------------------------------------------------------


def test_import_numpy_optim_imports_neither_matplotlib_nor_torch():
    code = "import numpy_optim, numpy_optim.demo, sys; assert not {'matplotlib', 'torch'} & set(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_import_numpy_optim_does_not_import_the_demo():
    code = "import numpy_optim, sys; print(sorted(m for m in sys.modules if m.startswith('numpy_optim.demo')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_cli_without_matplotlib_says_what_to_install_and_exits_with_2(tmp_path):
    # None in sys.modules makes `import matplotlib` raise ImportError, as if it were not installed.
    code = ("import sys; sys.modules['matplotlib'] = None; sys.argv = ['demo', '--out', sys.argv[1]]; import runpy; "
            "runpy.run_module('numpy_optim.demo', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "figs")], capture_output=True, text=True)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert 'pip install "numpy_optim[demo]"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "figs").exists(), "nothing is written (nor measured) without matplotlib"


def test_every_figure_is_a_png_of_its_declared_size(figures, tmp_path):
    assert list(figures) == list(demo.FIGURES), "a figure is missing (or the parity report was not read)"
    for name, fig in figures.items():
        path = demo.save(fig, tmp_path / name)
        width, height = demo.FIGURES[name]
        assert path.stat().st_size > 10_000, f"{name}: only {path.stat().st_size} bytes"
        assert png_size(path) == (round(width * demo.DPI), round(height * demo.DPI)), name
        image = matplotlib.image.imread(path)
        assert image.shape[:2] == (round(height * demo.DPI), round(width * demo.DPI))
        assert np.ptp(image[..., :3]) > 0.5, f"{name} is blank"


def test_every_figure_has_a_title_labelled_axes_and_readable_text(figures):
    for name, fig in figures.items():
        titled = fig.get_suptitle() or any(ax.get_title() for ax in fig.axes) or fig.texts
        assert titled, f"{name} has no title"
        for ax in fig.axes:
            if ax.axison:  # an axes drawn without axes (one that only holds a legend) needs no label
                assert ax.get_xlabel(), f"{name}: an axes has no x label"
        assert any(ax.get_ylabel() for ax in fig.axes), f"{name}: no y label"
        assert fig.legends or any(ax.get_legend() for ax in fig.axes), f"{name} has no legend"
        small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(matplotlib.text.Text)
                 if t.get_visible() and t.get_text().strip() and t.get_fontsize() < 9]
        assert not small, f"{name}: text below 9 pt: {small[:5]}"


def test_cli_renders_the_chosen_figures_and_notes_a_missing_parity_report(tmp_path):
    missing = tmp_path / "absent.json"
    result = subprocess.run(
        [sys.executable, "-m", "numpy_optim.demo", "--out", str(tmp_path / "figs"), "--parity-json", str(missing),
         "--only", "schedules.png", "parity.png", "--no-torch"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"no parity report at {missing}" in result.stdout
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["schedules.png"]
    assert png_size(tmp_path / "figs" / "schedules.png") == (960, 480)


def png_chunks(data):
    """[(type, payload)] of a PNG file's bytes."""
    assert data[:8] == PNG_SIGNATURE
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        chunks.append((data[at + 4:at + 8], data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def test_a_figure_rendered_twice_is_the_same_file_and_holds_no_run_time(tmp_path):
    # Two reports of runs that differ in nothing but their duration: the same bytes, written twice.
    slower = {**PARITY_REPORT, "seconds": 1467.9}
    first = demo.save(demo.plot_parity(PARITY_REPORT), tmp_path / "first.png").read_bytes()
    second = demo.save(demo.plot_parity(slower), tmp_path / "second.png").read_bytes()
    assert first == second
    # No text chunk (matplotlib writes "Software: Matplotlib version ..." unless told not to).
    kinds = [kind for kind, _ in png_chunks(first)]
    assert not {b"tEXt", b"zTXt", b"iTXt", b"tIME"} & set(kinds), kinds
    fig = demo.plot_parity(slower)
    assert "1467.9" not in fig.axes[0].get_title() and " s)" not in fig.axes[0].get_title()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_cli_rerun_writes_byte_identical_pngs(tmp_path, parity_json):
    # As `nox -s demo` run twice: separate processes (with different hash seeds, so no set or dict
    # order that depends on them can leak into a figure).
    outputs = []
    for seed in ("0", "12345"):
        out = tmp_path / f"run{seed}"
        result = subprocess.run(
            [sys.executable, "-m", "numpy_optim.demo", "--out", str(out), "--parity-json", str(parity_json),
             "--only", "parity.png", "schedules.png", "--no-torch"],
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert sorted(outputs[0]) == ["parity.png", "schedules.png"]
    assert outputs[0] == outputs[1]


def test_parity_report_is_read_from_reports_else_from_docs_results(tmp_path, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    assert demo.PARITY_JSONS == (Path("reports/parity.json"), Path("docs/results/parity.json"))

    def title():
        figures = demo.build_figures(only=["parity.png"])
        assert list(figures) == ["parity.png"]
        text = figures["parity.png"].axes[0].get_title()
        plt.close(figures["parity.png"])
        return text

    assert demo.build_figures(only=["parity.png"]) == {}
    assert "no parity report at reports/parity.json or docs/results/parity.json" in capsys.readouterr().out
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "parity.json").write_text(json.dumps({**PARITY_REPORT, "profile": "committed"}))
    assert "(profile committed)" in title()
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "parity.json").write_text(json.dumps({**PARITY_REPORT, "profile": "latest"}))
    assert "(profile latest)" in title()
    # an explicit path is the only one tried
    assert demo.build_figures(parity_json=tmp_path / "absent.json", only=["parity.png"]) == {}


# ----- the numbers in the figures ------------------------------------------------------


def test_rosenbrock_legend_gives_the_iterations_run_optimizer_measures(figures):
    shown = legend_iterations(figures["rosenbrock_paths.png"])
    measured = {
        name: run_optimizer(make, Rosenbrock(), (-1.5, 2.0), 15000, tol=1e-2).iterations_to_converge
        for name, make in ROSENBROCK_REFERENCE.items()
    }
    assert shown == measured
    # As tests/unit/test_convergence.py measured them: sgd 11942, momentum 1125, nesterov 1018, adam 2987.
    assert [shown[k] for k in ("SGD", "SGD + momentum", "Nesterov", "Adam")] == [11942, 1125, 1018, 2987]


def test_ill_conditioned_legend_gives_the_iterations_run_optimizer_measures(figures):
    fig = figures["ill_conditioned_paths.png"]
    shown = legend_iterations(fig)
    problem = ill_conditioned_quadratic(2, 100.0)
    measured = {
        name: run_optimizer(make, problem, [1.0, 1.0], 2000, tol=1e-3).iterations_to_converge
        for name, make in ILL_REFERENCE.items()
    }
    assert shown == measured
    assert [shown[k] for k in ("SGD", "SGD + momentum", "Adam")] == [363, 127, 82]  # test_convergence.py
    # The note under the figure: Nesterov at SGD's lr 2 / (1 + kappa) overflows.
    nesterov_at_sgd_lr = lambda e: SGD(e, lr=2 / 101, momentum=0.9, nesterov=True)
    diverged = run_optimizer(nesterov_at_sgd_lr, problem, [1.0, 1.0], 2000, tol=1e-3)
    assert diverged.diverged
    assert any("overflows at step" in t.get_text() for t in fig.texts)


def test_legend_says_not_reached_when_the_tolerance_is_never_met():
    run = run_optimizer(lambda e: SGD(e, lr=1e-3), Rosenbrock(), (-1.5, 2.0), 50)
    label = demo.convergence_label("sgd", "lr 1e-3", run)
    assert label.split("\n")[0] == "SGD: not reached in 50"
    diverged = run_optimizer(lambda e: SGD(e, lr=1e-2), Rosenbrock(), (-1.5, 2.0), 50)
    assert demo.convergence_label("sgd", "lr 1e-2", diverged).startswith("SGD: diverged, not reached in 50")


def test_schedules_overlay_torch_and_agree_with_it(figures):
    curves = demo.schedule_curves()
    assert curves["torch"] is not None, "torch is a test dependency: the overlay must be drawn"
    for name, ours in curves["ours"].items():
        np.testing.assert_allclose(curves["torch"][name], ours, rtol=0, atol=1e-15, err_msg=name)
    fig = figures["schedules.png"]
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes), "each panel: ours and torch's curve"
    assert "torch.optim.lr_scheduler" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_schedules_figure_without_torch_says_so():
    fig = demo.plot_schedules(demo.schedule_curves(with_torch=False))
    assert "torch not installed" in fig.get_suptitle()
    assert all(len(ax.get_lines()) == 1 for ax in fig.axes)


def test_weight_distribution_shows_the_measured_uniformity_and_correlation(figures):
    data = demo.weight_distribution()
    # tests/unit/test_adam_vs_adamw.py measured CV 0.761 vs 0.051 and Spearman -0.977 vs -0.120.
    assert data["adam_l2"]["cv"] == pytest.approx(0.761, abs=5e-4)
    assert data["adamw"]["cv"] == pytest.approx(0.051, abs=5e-4)
    assert data["adam_l2"]["spearman"] == pytest.approx(-0.977, abs=5e-4)
    assert data["adamw"]["spearman"] == pytest.approx(-0.120, abs=5e-4)
    hist_ax, decay_ax = figures["adam_l2_vs_adamw.png"].axes
    assert [t.get_text() for t in hist_ax.get_legend().get_texts()][:2] == [
        "Adam + L2: CV = 0.761", "AdamW: CV = 0.051"]
    assert [t.get_text() for t in decay_ax.get_legend().get_texts()][:2] == [
        "Adam + L2: ρ = -0.98", "AdamW: ρ = -0.12"]
    # every parameter is drawn, including the 12 whose noise left them above |w| = 1 (negative decay)
    assert all(len(c.get_offsets()) == 200 for c in decay_ax.collections)


def test_parity_figure_has_one_bar_per_row_and_marks_the_failures(figures):
    ax = figures["parity.png"].axes[0]
    assert len(ax.patches) == len(PARITY_REPORT["rows"])
    labels = [t.get_text() for t in ax.texts]
    assert set(labels) == {"0.24", "0 (exact)", "13.9", "∞", "0.095"}
    red = [t.get_text() for t in ax.texts if t.get_color() == "red"]
    assert red == ["13.9"]
    assert "FAILED (1 pair(s))" in ax.get_title()


# ----- the rest of torch.optim -----------------------------------------------------------

# Measured (tests/unit/test_convergence.py, the REST_* settings): iterations to tolerance on
# Rosenbrock and on diag(1, 100) (LBFGS: closure evaluations), final MLP loss ("—": not run).
REST_SHOWN = {
    "Adam": ("2987", "82", "0.030"),
    "Adagrad": ("12032", "215", "0.068"),
    "Adadelta": ("11107", "388", "0.262"),
    "RMSprop": ("4752", "149", "0.023"),
    "Adamax": ("6113", "1489", "0.176"),
    "ASGD": ("12026", "688", "0.331"),
    "Rprop": ("2792", "32", "0.011"),
    "NAdam": ("7179", "1562", "0.329"),
    "RAdam": ("10207", "1874", "0.069"),
    "Adafactor": ("not reached", "1031", "0.146"),
    "LBFGS": ("86", "7", "—"),
    "LBFGS, strong Wolfe": ("46", "7", "0.011"),
}


def rest_legend(fig):
    """{name: ((rosenbrock, quadratic, mlp), settings line)} from the legend of rest_of_torch_optim.png."""
    legend = fig.axes[3].get_legend()
    out = {}
    for text in legend.get_texts():
        first, second = text.get_text().split("\n")
        name, numbers = first.split(": ")
        out[name] = (tuple(numbers.split(" · ")), second)
    return out


def test_rest_of_torch_optim_legend_gives_the_measured_numbers(figures):
    from numpy_optim.adadelta import Adadelta
    from numpy_optim.adafactor import Adafactor
    from numpy_optim.adagrad import Adagrad
    from numpy_optim.adamax import Adamax
    from numpy_optim.asgd import ASGD
    from numpy_optim.nadam import NAdam
    from numpy_optim.radam import RAdam
    from numpy_optim.rmsprop import RMSprop
    from numpy_optim.rprop import Rprop

    shown = rest_legend(figures["rest_of_torch_optim.png"])
    assert {name: numbers for name, (numbers, _) in shown.items()} == REST_SHOWN
    # the quadratic's column, re-measured through run_optimizer (Rosenbrock's is too slow to redo here)
    quadratic = {
        "Adam": lambda e: Adam(e, lr=0.05), "Adagrad": lambda e: Adagrad(e, lr=0.1),
        "Adadelta": lambda e: Adadelta(e), "RMSprop": lambda e: RMSprop(e), "Adamax": lambda e: Adamax(e),
        "ASGD": lambda e: ASGD(e), "Rprop": lambda e: Rprop(e), "NAdam": lambda e: NAdam(e),
        "RAdam": lambda e: RAdam(e, lr=3e-3), "Adafactor": lambda e: Adafactor(e, lr=0.03),
    }
    problem = ill_conditioned_quadratic(2, 100.0)
    for name, make in quadratic.items():
        run = run_optimizer(make, problem, [1.0, 1.0], 2000, tol=1e-3)
        assert shown[name][0][1] == str(run.iterations_to_converge), name
    # the settings line names each tuned lr, per problem where they differ
    assert shown["RMSprop"][1] == "(lr 3e-3 · default · default)"
    assert shown["Adagrad"][1] == "(lr 0.1)"
    assert shown["Rprop"][1] == "(default · default · default, full batch)"


def test_rest_of_torch_optim_panels_axes_and_legend(figures):
    fig = figures["rest_of_torch_optim.png"]
    ros_ax, ill_ax, mlp_ax, legend_ax = fig.axes
    for ax in (ros_ax, ill_ax):
        assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
        assert len(ax.get_lines()) == 12 + 1  # Adam, nine optimizers, two LBFGS; the tolerance line
        assert "LBFGS: closure evaluation" in ax.get_xlabel()
    assert mlp_ax.get_yscale() == "log"
    assert len(mlp_ax.get_lines()) == 11  # no LBFGS without line search on the MLP
    assert not legend_ax.axison and not legend_ax.get_lines()  # the legend has an axes of its own: it covers no line
    legend = legend_ax.get_legend()
    assert "(LBFGS: evaluations)" in legend.get_title().get_text()
    # the MLP's curves span the 100 epochs; LBFGS's is one closure call (one pass over the data) per epoch
    assert all(len(line.get_xdata()) == 101 for line in mlp_ax.get_lines())


def test_lbfgs_run_rows_are_the_points_after_k_closure_calls():
    from numpy_optim.lbfgs import LBFGS
    from numpy_optim.problems import Quadratic

    # f(x) = 2 x^2 from x = 2, torch's defaults (lr 1, no line search): call 1 at 2 (g = 8); the first
    # step is min(1, 1/|g|_1) lr = 1/8 along -g: x = 1; call 2 at 1 (g = 4); H0 = y.s / y.y =
    # (-4)(-1) / 16 = 1/4, d = -g H0 = -1, t = lr = 1: x = 0; call 3 at 0 (g = 0: done); the next
    # step's call 4 at 0 finds max|g| <= 1e-7 and returns: the loop stops.
    problem = Quadratic([[4.0]])
    run = demo.lbfgs_run(lambda e: LBFGS(e), problem, [2.0], 100, tol=1e-3)
    assert run.trajectory[:, 0].tolist() == [2.0, 1.0, 0.0, 0.0, 0.0]
    assert run.losses.tolist() == [8.0, 2.0, 0.0, 0.0, 0.0]
    assert run.iterations_to_converge == 2 and not run.diverged
    cut = demo.lbfgs_run(lambda e: LBFGS(e), problem, [2.0], 2, tol=1e-3)  # cut after 2 calls
    assert cut.trajectory[:, 0].tolist() == [2.0, 1.0, 0.0]


def test_lr_schedulers_figure_overlays_torch_bit_for_bit(figures):
    curves = demo.lr_scheduler_curves()
    assert curves["torch"] is not None, "torch is a test dependency: the overlay must be drawn"
    assert len(demo.LR_SCHEDULERS) == 16 and list(curves["ours"]) == list(demo.LR_SCHEDULERS)
    for name, ours in curves["ours"].items():
        assert ours.tobytes() == curves["torch"][name].tobytes(), f"{name}: not bit for bit torch's"
        assert np.ptp(ours) > 0, f"{name}: a flat curve shows nothing"
    texts = [t.get_text() for t in figures["lr_schedulers.png"].findobj(matplotlib.text.Text)]
    assert texts.count(f"0 of {demo.LR_SCHEDULER_STEPS} differ") == 16
