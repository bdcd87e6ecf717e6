"""Write the parity report: reports/parity.md (a table) and reports/parity.json (everything)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

import numpy_optim

from . import tolerance
from .harness import Stats
from .registry import FUSED, KNOWN_TORCH_DEFECTS


def _row(key: tuple[str, str, str], side: Any) -> dict[str, Any]:
    pair, dtype, which = key
    return {
        "pair": pair, "dtype": dtype, "torch_side": which, "cases": side.cases, "steps": side.steps,
        "judged": side.judged, "unjudged": side.unjudged, "worst_error": side.worst_error,
        "worst_ratio": side.worst_ratio, "worst_case": side.worst_case,
        "worst_case_error": side.worst_case_error, "worst_case_bound": side.worst_case_bound,
        "bitwise": side.bitwise, "compared": side.compared, "differing": side.differing,
        "bits": side.bits, "ulps": side.ulps,
    }


def to_json(stats: Stats, profile: str, seconds: float, seed: int | None = None) -> dict[str, Any]:
    return {
        "profile": profile,
        "seed": seed,
        "seconds": round(seconds, 1),
        "passed": not stats.failures,
        "failures": stats.failures,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__},
        "backend": _backend(),
        "tolerance": {name: getattr(tolerance, name) for name in
                      ("ULPS64", "SENSITIVITY", "FACTOR32", "FLOOR32", "CHAOS_ULPS", "SCHEDULE_ULPS")},
        "rows": [_row(k, v) for k, v in sorted(stats.sides.items())],
        "known_torch_defects": known_torch_defects(),
    }


def known_torch_defects() -> list[dict[str, Any]]:
    """registry.KNOWN_TORCH_DEFECTS, each with its probe's measurement on the installed torch
    (``present``: whether torch still has it)."""
    defects = []
    for defect in KNOWN_TORCH_DEFECTS:
        measured = defect.probe()
        defects.append({"name": defect.name, "torch": defect.torch, "numpy_optim": defect.numpy_optim,
                        "pinned_by": defect.pinned_by, "present": bool(measured["present"]), "measured": measured})
    return defects


def _backend() -> str:
    """The numpy_optim backend the run used, with numba's version when it is numba."""
    name = numpy_optim.backend()
    if name == "numba":
        import numba

        return f"numba {numba.__version__}"
    return name


def _case_summary(case: dict[str, Any]) -> str:
    if "hyperparameters" not in case:
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in case.items())
    hyper = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in case["hyperparameters"].items()
    )
    loop = "closed" if case["closed_loop"] else "open"
    return f"{case.get('array', '')}: {hyper}; {case['steps']} steps, {loop} loop"


def markdown_table(report: dict[str, Any]) -> str:
    """The tolerance rows (optimizers, the specification's schedules), then the fused rows
    (zero tolerance), then the other bitwise rows (torch's schedulers, clipping, averaging)."""
    rows = [r for r in report["rows"] if not r.get("bitwise")]
    fused = [r for r in report["rows"] if r.get("bitwise") and r["pair"] in FUSED]
    bitwise = [r for r in report["rows"] if r.get("bitwise") and r["pair"] not in FUSED]
    parts = [_tolerance_table(rows)] if rows else []
    if fused:
        parts.append(_fused_table(fused))
    if bitwise:
        parts.append(_bitwise_table(bitwise))
    return "\n\n".join(parts)


def _fused_table(rows: list[dict[str, Any]]) -> str:
    order = {name: i for i, name in enumerate(FUSED)}
    dtypes = {name: i for i, name in enumerate(("float64", "float32", "float16", "bfloat16"))}
    lines = [
        "| pair (fused=True, zero tolerance) | dtype | cases | steps | values compared | values differing | "
        "differing bits (most in a value) | largest difference (ulps) | case of the largest difference |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: (order.get(r["pair"], 99), dtypes.get(r["dtype"], 99))):
        lines.append(
            f"| {r['pair']} | {r['dtype']} | {r['cases']} | {r['steps']} | {r['compared']} | {r['differing']} | "
            f"{r.get('bits', 0)} | {r.get('ulps', 0.0):g} | "
            f"{_case_summary(r['worst_case']) if r['differing'] else '–'} |"
        )
    return "\n".join(lines)


def defects_section(report: dict[str, Any]) -> str:
    """The "Known torch defects" section: each defect, what numpy_optim does instead, and
    whether the installed torch still has it (its probe's measurement)."""
    lines = ["## Known torch defects", ""]
    for d in report.get("known_torch_defects", []):
        still = "**still present**" if d["present"] else "**not reproduced** (fixed? see the test that pins it)"
        lines += [
            f"- **{d['name']}**: {d['torch']}.",
            f"  - numpy_optim: {d['numpy_optim']}.",
            f"  - Measured when this report was written, torch {report['versions']['torch']}: {still}. "
            f"{d['measured']['summary']}.",
            f"  - Pinned by `{d['pinned_by']}`.",
        ]
    return "\n".join(lines)


def _bitwise_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| pair (bitwise) | dtype | cases | steps | values compared | differing from torch | "
        "largest difference | case of the largest difference |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['dtype']} | {r['cases']} | {r['steps']} | {r['compared']} | {r['differing']} | "
            f"{r['worst_error']:.3g} | {_case_summary(r['worst_case']) if r['differing'] else '–'} |"
        )
    return "\n".join(lines)


def _tolerance_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| pair | dtype | torch path | cases | steps | values judged | not judged | worst error / bound | "
        "its error | its bound | worst case | largest error (any case) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        schedule = r["torch_side"] == "schedule"
        judged = f"{r['judged']} lr" if schedule else str(r["judged"])
        unjudged = "–" if schedule else str(r["unjudged"])
        largest = f"{r['worst_error']:.3g}"
        if r["worst_error"] == 0 and r["dtype"] == "float64":
            largest = "0 (bit for bit)"
        lines.append(
            f"| {r['pair']} | {r['dtype']} | {r['torch_side']} | {r['cases']} | {r['steps']} | {judged} | "
            f"{unjudged} | {r['worst_ratio']:.3f} | {r.get('worst_case_error', 0.0):.3g} | "
            f"{r.get('worst_case_bound', 0.0):.3g} | {_case_summary(r['worst_case'])} | {largest} |"
        )
    return "\n".join(lines)


def to_markdown(report: dict[str, Any]) -> str:
    status = "PASSED" if report["passed"] else f"FAILED ({len(report['failures'])} pair(s))"
    v = report["versions"]
    parts = [
        "# Parity report: numpy_optim vs torch.optim",
        "",
        f"{status}. Hypothesis profile `{report['profile']}`, seed {report.get('seed')}, {report['seconds']} s; "
        "numpy_optim backend: "
        f"**{report.get('backend', 'numpy')}**; Python {v['python']}, NumPy {v['numpy']}, torch {v['torch']}. "
        "Tolerance constants: "
        + ", ".join(f"{k}={val}" for k, val in report["tolerance"].items()) + " (parity/tolerance.py).",
        "",
        "Each optimizer row compares every array (parameters and state buffers) after every step: 'values "
        "judged' counts those (array, step) comparisons, 'not judged' those skipped after torch's own runs "
        "parted by more than CHAOS_ULPS ulp per step. 'Worst error / bound' must stay <= 1; 'its error' and "
        "'its bound' are that worst case's own, at the array and step where the ratio peaked (the error is "
        "against torch in float64, against torch's float64 reference in float32). 'Largest error (any case)' "
        "is the largest absolute error judged in any case of the row, usually another case's (values such "
        "as exp_avg_sq reach 1e12, where a large absolute error is well inside the bound); 0 in float64 "
        "means every value equalled torch's bit for bit. The specification's schedules judge the learning "
        "rate at every step of the horizon ('lr'). "
        "The fused rows run numpy_optim's SGD, Adam, AdamW and Adagrad with fused=True against "
        "torch's fused=True (float64, float32, float16, bfloat16; SGD float64 and float32, see the known "
        "torch defects): every value of every step (parameters, state buffers, the step count) must have "
        "torch's bits, so 'values differing' and 'differing bits' (the most bits in which one value "
        "differs, the popcount of the XOR of the two bit patterns) are 0 when they pass. "
        "The other bitwise rows (torch's schedulers, clipping, averaging) compare every value (learning "
        "rates and momenta, norms and gradients, averaged parameters) with torch's bit for bit; any "
        "difference fails.",
        "",
        markdown_table(report),
    ]
    if report.get("known_torch_defects"):
        parts += ["", defects_section(report)]
    if report["failures"]:
        parts += ["", "## Failures", ""] + [f"```\n{f}\n```" for f in report["failures"]]
    return "\n".join(parts) + "\n"


def write(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md, js = directory / "parity.md", directory / "parity.json"
    md.write_text(to_markdown(report))
    js.write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
    return md, js
