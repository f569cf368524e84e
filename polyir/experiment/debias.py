"""The experiment's training-free baseline rows: each listed row's model plus its own projection.

For every row in ``debias.rows`` (``base``, an arm, a variant or a merge) and every seed, a projection
is fitted on that model's embeddings of the fitting text and saved under ``debias/<name>/`` (reused
when present); the row ``<row>+debias`` is then validated and evaluated like any other. When the fitting
dataset is also a guard set, only the guard's validation half is used, so its reported test half
stays unseen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from polyir.debias.model import fit_debias, save_debiased
from polyir.debias.source import FitTexts, fit_texts
from polyir.errors import PolyirError

SUFFIX = "+debias"


def debias_fit_texts(config: Any) -> tuple[FitTexts, dict[str, Any]]:
    """The fitting texts of an experiment, and a record of where they came from."""
    from polyir.data.load import load_task_or_path
    from polyir.data.split import split_by_document

    d = config.debias
    task = load_task_or_path(d.fit.dataset, languages=d.fit.languages)
    info: dict[str, Any] = {"dataset": d.fit.dataset, "languages": d.fit.languages, "part": _fit_part(config)}
    if info["part"] != "all":
        task, _ = split_by_document(task, config.guard.validation_fraction, config.guard.split_seed)
    texts = fit_texts(d.fit.label, side=d.side, max_per_language=d.max_per_language, seed=d.seed, task=task)
    info["counts"] = texts.counts()
    return texts, info


def _model_row(row: str, chosen_alpha: float | None) -> str:
    return f"hybrid@{chosen_alpha:g}" if row == "hybrid" and chosen_alpha is not None else row


def debias_rows(
    config: Any, row: str, models: dict[str, dict[int | None, tuple[str, str]]], chosen_alpha: float | None,
    out: Path, console: Console, progress: bool, timer: Any,
) -> Iterator[tuple[str, int | None, str, str]]:
    """Fit (or reuse) the projection of each seed's model of ``row``; yields (row+debias, seed, folder, name)."""
    from polyir.models.resolve import load_encoder
    from polyir.runinfo import write_json

    d = config.debias
    source_row = _model_row(row, chosen_alpha)
    if source_row not in models:
        raise PolyirError(f"debias.rows: no row {row!r} in this experiment; rows: {', '.join(models)}")
    texts: FitTexts | None = None
    for seed, (spec, name) in models[source_row].items():
        folder = next((debiased_folder(f, name) for f in config.reuse_from if _same_fit(config, Path(f), name)),
                      debiased_folder(out, name))
        if not (folder / "polyir_debias.json").is_file():
            if texts is None:
                texts, info = debias_fit_texts(config)
                write_json(out / "debias" / "fit.json", info)
            console.print(f"debias [bold]{escape(name)}[/bold] (fit on {escape(texts.source)})")
            with timer(f"debias_{name}"):
                encoder = load_encoder(spec)
                fit = fit_debias(
                    encoder, texts, method=d.method, rank=d.rank, precision=config.evaluation.resolved_precision,
                    batch_size=config.evaluation.batch_size, show_progress=progress,
                )
                save_debiased(encoder, fit, folder, overwrite=True)
        yield row + SUFFIX, seed, str(folder), name + SUFFIX


def _fit_part(config: Any) -> str:
    if config.debias.fit.dataset in {ts.dataset for ts in config.guard.sets}:
        return "guard validation half (the reported test half is never used to fit)"
    return "all"


def _same_fit(config: Any, other: Path, name: str) -> bool:
    """Whether another experiment's de-biased copy of ``name`` was fitted as this config asks."""
    fit_file, record_file = other / "debias" / "fit.json", debiased_folder(other, name) / "polyir_debias.json"
    if not (fit_file.is_file() and record_file.is_file()):
        return False
    d, fit = config.debias, json.loads(fit_file.read_text(encoding="utf-8"))
    record = json.loads(record_file.read_text(encoding="utf-8"))
    same_text = (fit.get("dataset"), fit.get("languages"), fit.get("part")) == (d.fit.dataset, d.fit.languages, _fit_part(config))
    same_map = (record.get("method"), record.get("rank") if d.rank is not None else None, record.get("side")) == (
        d.method, d.rank, d.side)
    return same_text and same_map and sum(record.get("counts", {}).values()) > 0


def debiased_folder(out: Path, name: str) -> Path:
    """Where the experiment keeps the de-biased copy of the model ``name`` (``base``, a run name)."""
    return Path(out) / "debias" / name
