"""``polyir experiment``: train the batch strategies from one base model, evaluate, compare, chart."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from polyir.errors import PolyirError


def experiment_command(
    config: Optional[Path] = typer.Option(
        None, "--config", "-c",
        help="Experiment YAML (default: the packaged one: train MLQA-R, test XQuAD-R).",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A first look in about 15 minutes on a 2-core CPU: few steps, 5 test languages, bf16."
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output folder (overrides output_dir)."),
    set: list[str] = typer.Option(  # noqa: A002
        [], "--set", help="Override a field, e.g. --set seeds=[0,1,2] --set train.optim.max_steps=100."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train monolingual, cross-lingual and hybrid batches from one base model and seed budget, evaluate each
    and the base on the test sets, and write table.md, summary.json and chart.png with paired tests."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        from polyir.experiment.config import load_experiment
        from polyir.experiment.runner import run_experiment
        from polyir.experiment.summary import markdown_table

        overrides = list(set)
        if output is not None:
            overrides.append(f"output_dir={output}")
        cfg = load_experiment(config, overrides, quick=quick)
        if not progress:
            cfg.train["progress"] = False
        summary = run_experiment(cfg, progress=progress)
    except PolyirError as exc:
        err.print(f"[bold red]error:[/bold red] [red]{escape(' '.join(str(exc).split()))}[/red]", highlight=False)
        raise typer.Exit(code=2) from None
    out = Console(soft_wrap=True)
    out.print(escape(markdown_table(summary)))
    out.print(f"wrote {escape(str(cfg.output_dir))}/summary.json, table.md, chart.png")
