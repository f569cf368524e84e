"""``polyir report``: one self-contained HTML page of a study (experiments and/or evaluation results)."""

from __future__ import annotations

from pathlib import Path

from polyir.atomic import check_output_path, write_text
from polyir.evaluation.pairs import DEFAULT_K, DEFAULT_MARGIN
from polyir.language_groups import load_language_groups
from polyir.report.page import build_report
from polyir.report.study import Study, load_study

__all__ = ["Study", "build_report", "load_study", "write_report"]


def write_report(
    inputs: list[Path],
    output: Path,
    *,
    groups_file: Path | None = None,
    title: str | None = None,
    k: int = DEFAULT_K,
    margin: float = DEFAULT_MARGIN,
    resamples: int = 2000,
) -> Path:
    """Read the experiment folders / result files, write the HTML page to ``output`` (atomically; the
    path is checked before any work) and return its path."""
    output = check_output_path(output, what="--output")
    groups = load_language_groups(groups_file)
    study = load_study([Path(p) for p in inputs])
    html = build_report(study, groups, title=title, k=k, margin=margin, resamples=resamples)
    return write_text(output, html)
