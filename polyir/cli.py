"""The ``polyir`` command line: one Typer app; every command lives in a module of ``polyir/commands/``."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Optional

import typer

from polyir.commands.friendly import friendly_errors, wrap_group

__all__ = ["app", "friendly_errors"]

app = typer.Typer(
    help="Train and evaluate multilingual dense retrievers with hybrid (monolingual + cross-lingual) batches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _module(name: str) -> ModuleType:
    """Import ``polyir.commands.<name>``. A command module that does not import stops the CLI with an
    error naming the module, rather than the command silently vanishing from ``--help``."""
    module = f"polyir.commands.{name}"
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"polyir command module {module} does not import: {exc}") from exc


def _command(name: str, module: str, function: str, help: Optional[str] = None) -> None:  # noqa: A002
    """Register ``polyir.commands.<module>.<function>`` as ``polyir <name>`` (help: its docstring if None)."""
    app.command(name, help=help)(friendly_errors(getattr(_module(module), function)))


def _group(name: str, module: str, help: str) -> None:  # noqa: A002
    """Register the Typer sub-app ``polyir.commands.<module>.app`` as ``polyir <name> ...``."""
    group: typer.Typer = _module(module).app
    wrap_group(group)
    app.add_typer(group, name=name, help=help)


def _register_subapps() -> None:
    _command("evaluate", "evaluate", "evaluate_command")
    _command("compare", "compare", "compare_command")
    _command("models", "models", "models_command")
    _group("data", "data", "List, locate and convert datasets.")
    _command("train", "train", "train_command",
             "Fine-tune an encoder from a YAML config (hybrid batches by default).")
    _command("index", "index", "index_command",
             "Encode a corpus or a dataset's candidates into a searchable index folder.")
    _command("search", "index", "search_command", "Search an index with one query.")
    _command("serve", "index", "serve_command", "Serve an index over HTTP: JSON API, a search page, OpenAPI docs.")
    _command("merge", "merge", "merge_command",
             "Average a fine-tuned model with its base (WiSE-FT): keeps what the base knew.")
    _command("debias", "debias", "debias_command",
             "Remove the language subspace from a model's embeddings: training-free de-biasing.")
    _command("export", "export", "export_command",
             "Export a model to ONNX Runtime or OpenVINO (optionally int8) for fast encoding.")
    _command("push", "push", "push_command",
             "Upload a model folder (a run's best/ model) with a generated model card to the Hugging Face hub.")
    _command("translate", "translate", "translate_command",
             "Make a parallel QA corpus by machine translation (NLLB-200, M2M100, MarianMT, MADLAD-400).")
    _command("experiment", "experiment", "experiment_command",
             "Train monolingual, cross-lingual and hybrid models from one base and compare them.")
    _command("report", "report", "report_command",
             "One self-contained HTML report of experiments and evaluation results.")


@app.callback()
def main(
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch, at least 1 (default: all cores)."),
) -> None:
    """polyir: multilingual dense retrieval with hybrid batch training."""
    if threads is not None and threads < 1:
        raise typer.BadParameter(f"must be at least 1 (CPU threads for torch), not {threads}", param_hint="'--threads'")
    if threads:
        import torch

        torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


_register_subapps()

if __name__ == "__main__":  # pragma: no cover
    app()
