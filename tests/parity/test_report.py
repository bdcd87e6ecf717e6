"""reports/parity.md tells the truth: a row's worst case comes with its own error and bound,
the largest absolute error is a column of its own, schedules say what they judged."""

from parity import harness, report, tolerance


def comparison(name, error, ratio, at_error, at_bound):
    return tolerance.Comparison(name, steps=3, unjudged=0, worst_error=error, worst_ratio=ratio, violation=None,
                                ratio_error=at_error, ratio_bound=at_bound)


def test_the_worst_case_keeps_its_own_error_and_the_largest_error_is_apart():
    stats = harness.Stats()
    key = ("Adam", "float32", "default")
    # Case 1: exp_avg_sq near 1e12, a large absolute error far inside its bound.
    stats.add(key, 5, [comparison("exp_avg_sq[0]", 1.35e6, 0.01, 1.35e6, 1.35e8)], {"seed": 1})
    # Case 2: a tiny error, but the worst ratio.
    stats.add(key, 7, [comparison("params[0]", 1.5e-213, 0.9, 1.5e-213, 1.0e-213 / 0.6)], {"seed": 2})
    side = stats.sides[key]
    assert side.worst_case == {"seed": 2, "array": "params[0]"}
    assert (side.worst_ratio, side.worst_case_error) == (0.9, 1.5e-213)
    assert side.worst_case_bound == 1.0e-213 / 0.6
    assert side.worst_error == 1.35e6          # the largest absolute error, from case 1
    row = report.markdown_table({"rows": [report._row(key, side)]}).splitlines()[2]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[7:10] == ["0.900", "1.5e-213", "1.67e-213"] and cells[11] == "1.35e+06"


def test_the_judge_reports_the_error_and_bound_where_the_ratio_peaks():
    import numpy as np

    theirs = np.array([[1.0], [1.0], [1.0]])
    ours = theirs + np.array([[0.0], [3e-16], [1e-16]])   # the error peaks at step 2
    c = tolerance.compare_float64("params[0]", ours, theirs)
    bound_at_2 = tolerance.ULPS64 * tolerance.EPS["float64"] * 2 * 1.0
    assert c.ratio_error == abs((1.0 + 3e-16) - 1.0)
    assert c.ratio_bound == bound_at_2
    assert c.worst_ratio == c.ratio_error / c.ratio_bound


def test_schedule_rows_count_learning_rates_and_have_no_not_judged():
    stats = harness.Stats()
    harness.compare_schedule("StepDecayScheduler", {"initial_lr": 0.1, "decay_factor": 0.5, "step_size": 3}, stats)
    side = stats.sides[("StepDecayScheduler", "float64", "schedule")]
    assert side.cases == 1 and side.judged == side.steps == 31   # horizon 10 * step_size, steps 0..30
    row = report.markdown_table({"rows": [report._row(("StepDecayScheduler", "float64", "schedule"), side)]})
    cells = [cell.strip() for cell in row.splitlines()[2].strip("|").split("|")]
    assert cells[5:7] == ["31 lr", "–"]
