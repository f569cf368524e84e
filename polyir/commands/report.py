"""``polyir report``: one self-contained HTML page of experiments and evaluation results."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from polyir.errors import PolyirError


def report_command(
    inputs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR...",
        help="Experiment folders (holding summary.json), result JSONs from `polyir evaluate`, or folders of them.",
    ),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="The HTML file to write."),
    groups: Optional[Path] = typer.Option(
        None, "--groups", help="Language groups CSV (code,name,<grouping columns...>); default: the packaged table."
    ),
    title: Optional[str] = typer.Option(None, "--title", help="Page title (default: the experiment names)."),
    weakest: int = typer.Option(5, "--weakest", min=0, help="Flag this many lowest cross-lingual pairs per model."),
    margin: float = typer.Option(
        0.05, "--margin", min=0.0, help="Also flag pairs this much mAP below their row's and column's means."
    ),
    resamples: int = typer.Option(
        2000, "--resamples", min=100, help="Sign flips of the paired tests between loose result files."
    ),
) -> None:
    """Write one self-contained HTML report: tables with significance marks, X->Y heatmaps, rank-distance
    bars, the α curve, weakest language pairs, language-group means, configs and versions."""
    from polyir.report import write_report

    err = Console(stderr=True, soft_wrap=True)
    try:
        path = write_report(inputs, output, groups_file=groups, title=title, k=weakest, margin=margin,
                            resamples=resamples)
    except PolyirError as exc:
        err.print(f"[bold red]error:[/bold red] [red]{escape(' '.join(str(exc).split()))}[/red]", highlight=False)
        raise typer.Exit(code=2) from None
    size = path.stat().st_size
    Console(soft_wrap=True).print(f"wrote {escape(str(path))} ({size / 1024:.0f} KiB)")
