"""The README's tables of the experiments at scale (``docs/results/scale-*``): the rows on each test set
with their validation metric and paired-test marks, and the learning curve of the snapshots."""

from __future__ import annotations

from typing import Any

from polyir.report.cells import fixed, markdown_rows

SCALE_ROWS = (
    ("base", "base"), ("base+debias", "base + projection (no training)"),
    ("monolingual", "monolingual"), ("monolingual+debias", "monolingual + projection"),
    ("crosslingual", "crosslingual"), ("crosslingual+debias", "crosslingual + projection"),
    ("hybrid", "hybrid α = 0.5"), ("hybrid+debias", "hybrid + projection"),
)


def scale_rows(summary: dict[str, Any], label: str) -> str:
    """One test set's rows: validation Mul. (held-out pairs of the training data), Mo./Cr./Mul./rank distance
    with B (base), M (monolingual) and D (base + projection) marks."""
    from polyir.experiment.summary import LABELS, TABLE_METRICS, _cell

    table = summary["results"][label]
    validation = summary.get("validation") or {}
    rows = [[name, fixed((validation.get(key) or {}).get("mean"), 4) if key != "base" or key in validation else "—",
             *(_cell(table[key], m) for m in TABLE_METRICS)] for key, name in SCALE_ROWS if key in table]
    return markdown_rows([f"{summary['name']} on {label}", "validation Mul.", *(LABELS[m] for m in TABLE_METRICS)],
                         "lr" + "r" * len(TABLE_METRICS), rows)


def scale_curve(summary: dict[str, Any]) -> str:
    """The learning curve: each snapshot's validation Mul. and its test mAPs and rank distance."""
    from polyir.experiment.curve import curve_markdown

    return curve_markdown((summary.get("curve") or {}).get("points") or [], "Mul.",
                          first=f"{summary['name']}: snapshot").rstrip("\n")
