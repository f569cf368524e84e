"""``polyir compare A.json B.json``: B - A in every metric, each with a paired test over queries."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from polyir.errors import PolyirError

MIN_RESAMPLES = 100  # as `polyir report`: fewer sign flips cannot give p < 0.01


def compare_command(
    a: Path = typer.Argument(..., help="Result JSON of run A (the reference), from `polyir evaluate`."),
    b: Path = typer.Argument(..., help="Result JSON of run B."),
    seed: int = typer.Option(0, help="Seed of the randomization test and the bootstrap."),
    resamples: int = typer.Option(10000, help=f"Sign flips / bootstrap resamples (at least {MIN_RESAMPLES})."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the comparison as JSON."),
) -> None:
    """Differences B - A in every metric, each with a paired test over queries."""
    from polyir.atomic import check_output_path
    from polyir.evaluation.compare import compare_results, load_result, print_comparison
    from polyir.runinfo import write_json

    if resamples < MIN_RESAMPLES:
        raise PolyirError(f"--resamples must be at least {MIN_RESAMPLES} (got {resamples}): "
                          "fewer sign flips cannot show p < 0.01")
    if output is not None:
        check_output_path(output, what="--output")
    comparison = compare_results(load_result(a), load_result(b), seed=seed, resamples=resamples)
    print_comparison(comparison, Console())
    if output is not None:
        write_json(output, comparison)
