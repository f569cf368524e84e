"""The learning curve of an experiment: every snapshot of a run (``snapshots/step-N``) scored on the
validation split of the training data and on the test sets, averaged over seeds.

The curve answers "does more data change the picture" from one run per arm and seed: a snapshot at step
N is the model after N optimizer steps of a run whose schedule (warm-up, decay) spans the full budget,
so it is not the same model as a run trained for N steps only. Nothing is chosen on the test columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TEST_METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance")

# row -> step -> seed -> (validation value, {test label: result path})
CurveData = dict[str, dict[int, dict[int, tuple[float | None, dict[str, Path]]]]]


def snapshot_name(run: str, step: int) -> str:
    """Name of one snapshot's evaluation and validation files: ``hybrid-a0.5-s0@step480``."""
    return f"{run}@step{step}"


def _mean(values: list[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _std(values: list[float | None]) -> float:
    vals = [float(v) for v in values if v is not None]
    return float(np.std(vals)) if len(vals) > 1 else 0.0


def summarize_curve(data: CurveData) -> list[dict[str, Any]]:
    """One point per (row, step): seeds, validation mean and spread, each test set's mean metrics."""
    points = []
    for row, by_step in data.items():
        for step in sorted(by_step):
            by_seed = by_step[step]
            vals = [v for v, _ in by_seed.values()]
            tests: dict[str, dict[str, float | None]] = {}
            labels = sorted({label for _, paths in by_seed.values() for label in paths})
            for label in labels:
                metrics = [json.loads(Path(paths[label]).read_text(encoding="utf-8"))["metrics"]
                           for _, paths in by_seed.values() if label in paths]
                tests[label] = {m: _mean([r.get(m) for r in metrics]) for m in TEST_METRICS}
            points.append({"row": row, "step": step, "seeds": len(by_seed), "validation_mean": _mean(vals),
                           "validation_std": _std(vals), "test": tests})
    return points


def row_title(row: str) -> str:
    """``hybrid@0.5`` -> ``hybrid α = 0.5``; other rows as they are."""
    if row.startswith("hybrid@"):
        return f"hybrid α = {row.split('@', 1)[1]}"
    return row


SHORT_LABELS = {"mo_map": "Mo.", "cr_map": "Cr.", "mul_map": "Mul.", "rank_distance": "rank dist."}


def _fixed(metric: str, value: float | None) -> str:
    return "–" if value is None else f"{value:.{1 if metric == 'rank_distance' else 4}f}"


def curve_grid(points: list[dict[str, Any]], first: str = "row", validation: str = "validation",
               cell: Callable[[str, float | None], str] = _fixed,
               label: Callable[[str], str] = SHORT_LABELS.__getitem__) -> tuple[list[str], list[list[str]]]:
    """The learning curve as a header and rows of text, one row per (row, step): validation, then each
    test set's Mo./Cr./Mul./rank distance. ``cell(metric, value)`` formats a number (validation uses
    ``mul_map``'s format), ``label(metric)`` names a column; the Markdown and HTML tables share this."""
    labels = sorted({lab for p in points for lab in p["test"]})
    head = [first, "step", validation, *[f"{lab} {label(m)}" for lab in labels for m in TEST_METRICS]]
    rows = [[row_title(p["row"]), str(p["step"]), cell("mul_map", p.get("validation_mean")),
             *[cell(m, p["test"].get(lab, {}).get(m)) for lab in labels for m in TEST_METRICS]] for p in points]
    return head, rows


def curve_markdown(points: list[dict[str, Any]], validation_metric: str, first: str = "row") -> str:
    """The learning curve as a Markdown table: one line per (row, step)."""
    if not points:
        return ""
    head, rows = curve_grid(points, first, f"validation {validation_metric}")
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_curve(points: list[dict[str, Any]], validation_metric: str):
    """A matplotlib Figure: validation (left) and each test set's Mo./Mul. mAP (right) against steps."""
    from matplotlib.figure import Figure

    rows = list(dict.fromkeys(p["row"] for p in points))
    labels = sorted({label for p in points for label in p["test"]})
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    colors = [f"C{i}" for i in range(len(rows))]
    for row, color in zip(rows, colors):
        mine = [p for p in points if p["row"] == row]
        steps = [p["step"] for p in mine]
        left.errorbar(steps, [np.nan if p["validation_mean"] is None else p["validation_mean"] for p in mine],
                      yerr=[p["validation_std"] for p in mine], marker="o", capsize=3, color=color,
                      label=row_title(row))
        for label, style in zip(labels, ("-", "--", ":", "-.")):
            for metric, marker in (("mul_map", "o"), ("mo_map", "s")):
                ys = [p["test"].get(label, {}).get(metric) for p in mine]
                right.plot(steps, [np.nan if y is None else y for y in ys], ls=style, marker=marker, color=color,
                           label=f"{row_title(row)} · {label} {'Mul.' if metric == 'mul_map' else 'Mo.'}")
    left.set_title(f"validation ({validation_metric})", fontsize=9)
    right.set_title("test mAP (Mul. circles, Mo. squares; shown, never used to choose)", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("optimizer steps")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=6)
    return fig
