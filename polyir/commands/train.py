"""``polyir train``: fine-tune an encoder from a YAML config, with ``--set key=value`` overrides.

Under ``torchrun --nproc_per_node N -m polyir.cli train ...`` every process runs this command; only
rank 0 prints and writes files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from polyir.errors import PolyirError


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def train_command(
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="Training config (YAML); default: the packaged polyir/configs/train-default.yaml."
    ),
    set: list[str] = typer.Option(  # noqa: A002 - the option is called --set
        [], "--set", help="override a config field, e.g. --set optim.lr=1e-5 (repeatable; values are YAML)"
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Run folder (overrides output_dir)."
    ),
    resume: Optional[str] = typer.Option(
        None, "--resume", help="Resume from a checkpoint folder, or 'latest' (newest in the run folder)."
    ),
) -> None:
    """Fine-tune an encoder with hybrid (monolingual + cross-lingual) batches; writes a run folder."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        from polyir.training.config import load_config
        from polyir.training.trainer import train

        cfg = load_config(config, list(set))
        if output is not None:
            cfg = cfg.model_copy(update={"output_dir": Path(output)})
        if resume is not None:
            cfg = cfg.model_copy(update={"resume_from": resume})
        result = train(cfg)
    except PolyirError as exc:
        message = " ".join(str(exc).split())
        err.print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]", highlight=False)
        raise typer.Exit(code=2) from None
    if not _is_main_process():
        return
    out = Console()
    out.print(f"run folder: [bold]{escape(str(result.run_dir))}[/bold] ({result.steps}/{result.total_steps} steps"
              + (", stopped early" if result.stopped_early else "") + ")")
    if result.best_metric is not None and result.best_value is not None:
        out.print(f"best {result.best_metric} = {result.best_value:.4f} at step {result.best_step} -> "
                  f"{escape(str(result.best_dir))}")
    if result.final_metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in result.final_metrics.items() if isinstance(v, float))
        out.print(f"final: {shown}")
    out.print(f"last model: {escape(str(result.last_dir))}")
