"""Training pairs in the common formats, read as polyir's parallel QA corpus (and task).

A *source string* names them wherever a dataset name is accepted (``data.train[].source``,
``polyir evaluate --dataset``, ``polyir data convert``, ``polyir.load_corpus``)::

    hf:NAME[:CONFIG][@SPLIT][?OPTIONS]   a hub dataset or a local datasets folder (polyir.data.hub)
    pairs:PATH[?OPTIONS]                 a file: .jsonl / .jsonl.gz / .csv / .tsv / .parquet

Formats (``format=``, detected from the column names when not given):

* ``flagembedding``: ``{"query": str, "pos": [str, ...], "neg": [str, ...]}`` (FlagEmbedding's
  fine-tuning JSONL; detected by a ``pos`` column);
* ``sentence-transformers``: columns ``anchor`` (or ``query``), ``positive`` and optionally
  ``negative`` or ``negative_1``, ``negative_2``, ... (detected by ``anchor``, or ``query`` with
  ``positive``);
* any other columns through the column map.

OPTIONS (``key=value`` joined by ``&``): ``format``; the column map ``query``, ``positive``,
``negative`` (several comma-separated), ``language``, ``pair_id``; ``lang=CODE``, a fixed language
for sources without a language column. Without ``lang`` and without a ``language`` column, a
selection of exactly one language (``languages: [sw]`` in the source entry) is the fixed language.

Each record is one (pair id, language) entry: the query, its positive and its negatives. The pair id
comes from the ``pair_id`` column (records sharing it are translations of one another, which
cross-lingual batches need); without one, each record is its own pair (1, 2, ... in file order).
A list of positives keeps its first (FlagEmbedding samples one of them per step; polyir's entry
holds one), and how many were left aside is logged. Empty or missing negative cells mean none.
Every malformed record is a ``DataFormatError`` naming the file and line (or dataset and row).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from polyir.data.jsonl import _lines, corpus_name, json_object
from polyir.data.records import read_utf8
from polyir.data.types import Candidate, ParallelPair, ParallelQACorpus, QAEntry, Query, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, PolyirError, UnknownLanguageError
from polyir.languages import canonical_code, parse_languages, select_languages

log = logging.getLogger(__name__)

SCHEMES = ("hf:", "pairs:")
FORMATS = ("flagembedding", "sentence-transformers")
MAP_KEYS = ("query", "positive", "negative", "language", "pair_id")
OPTION_KEYS = ("format", *MAP_KEYS, "lang")
PAIR_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".tsv", ".parquet")
Row = tuple[str, Mapping[str, Any]]  # (where, record)


def is_source(value: object) -> bool:
    """True when ``value`` is a source string (``hf:...`` or ``pairs:...``)."""
    return isinstance(value, str) and value.startswith(SCHEMES)


@dataclass(frozen=True)
class ColumnMap:
    """Which column holds each field (None: the format's default)."""

    query: str | None = None
    positive: str | None = None
    negatives: tuple[str, ...] | None = None
    language: str | None = None
    pair_id: str | None = None


@dataclass(frozen=True)
class PairSource:
    """A parsed source string."""

    text: str
    scheme: str  # "hf" or "pairs"
    target: str  # the hub reference or the file path
    format: str | None = None
    columns: ColumnMap = field(default_factory=ColumnMap)
    language: str | None = None  # lang=CODE


def parse_source(text: str) -> PairSource:
    """Split a source string into scheme, target and options; unknown options are errors."""
    if not is_source(text):
        raise PolyirError(f"{text!r} is not a source string (hf:NAME or pairs:PATH)")
    scheme, rest = text.split(":", 1)
    target, _, query = rest.partition("?")
    if not target.strip():
        raise PolyirError(f"{text}: nothing after '{scheme}:' (e.g. {scheme}:{'org/name@train' if scheme == 'hf' else 'pairs.jsonl'})")
    try:
        options = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise PolyirError(f"{text}: options must read key=value&key=value after '?'") from None
    seen: dict[str, str] = {}
    for key, value in options:
        if key not in OPTION_KEYS:
            raise PolyirError(f"{text}: unknown option {key!r}; allowed: {', '.join(OPTION_KEYS)}")
        if key in seen:
            raise PolyirError(f"{text}: option {key!r} given twice")
        if not value.strip():
            raise PolyirError(f"{text}: option {key!r} is empty")
        seen[key] = value.strip()
    fmt = seen.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise PolyirError(f"{text}: unknown format {fmt!r}; use {' or '.join(FORMATS)} (or a column map)")
    lang = seen.get("lang")
    if lang is not None:
        try:
            lang = canonical_code(lang)
        except UnknownLanguageError as exc:
            raise UnknownLanguageError(f"{text}: lang: {exc}") from None
    negatives = seen.get("negative")
    columns = ColumnMap(
        query=seen.get("query"), positive=seen.get("positive"),
        negatives=tuple(c.strip() for c in negatives.split(",") if c.strip()) if negatives else None,
        language=seen.get("language"), pair_id=seen.get("pair_id"),
    )
    return PairSource(text=text, scheme=scheme, target=target.strip(), format=fmt, columns=columns, language=lang)


# --------------------------------------------------------------------------- rows of files


def _jsonl_rows(path: Path) -> Iterator[Row]:
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}: line {lineno}"
        yield where, json_object(line, where)


def _csv_rows(path: Path, delimiter: str) -> tuple[list[str], Iterator[Row]]:
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataFormatError(f"{path}: the file is empty (expected a header line)") from None
    except csv.Error as exc:
        raise DataFormatError(f"{path}: line 1: {exc}") from None

    def rows() -> Iterator[Row]:
        start = reader.line_num + 1
        try:
            for fields in reader:
                if fields and any(f.strip() for f in fields):
                    if len(fields) != len(header):
                        raise DataFormatError(
                            f"{path}: line {start}: {len(fields)} fields, the header has {len(header)}"
                            f" ({', '.join(header)})")
                    yield f"{path}: line {start}", dict(zip(header, fields))
                start = reader.line_num + 1
        except csv.Error as exc:
            raise DataFormatError(f"{path}: line {reader.line_num}: {exc}") from None

    return header, rows()


def _parquet_rows(path: Path) -> tuple[list[str], Iterator[Row]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise DataFormatError(f"{path}: cannot read as Parquet ({exc})") from exc
    return list(table.column_names), ((f"{path}: row {i}", r) for i, r in enumerate(table.to_pylist()))


def file_rows(path: Path) -> tuple[list[str] | None, Iterator[Row]]:
    """The columns (None for JSONL: each line has its own keys) and ``(where, record)`` of a file."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        return None, _jsonl_rows(path)
    if name.endswith((".csv", ".tsv")):
        return _csv_rows(path, "\t" if name.endswith(".tsv") else ",")
    if name.endswith(".parquet"):
        return _parquet_rows(path)
    raise DataFormatError(f"{path}: unknown pair-file type; use {', '.join(PAIR_SUFFIXES)}")


def source_rows(source: PairSource) -> tuple[list[str] | None, Iterator[Row]]:
    """Columns and rows of a parsed source (a file, or a ``datasets`` dataset)."""
    if source.scheme == "hf":
        from polyir.data.hub import hub_rows, parse_hub_ref

        return hub_rows(parse_hub_ref(source.target))
    return file_rows(Path(source.target).expanduser())


# --------------------------------------------------------------------------- columns -> fields


def detect_format(columns: Sequence[str]) -> str | None:
    """``flagembedding`` (a ``pos`` column), ``sentence-transformers`` (``anchor``, or ``query`` with
    ``positive``), else None."""
    cols = set(columns)
    if "pos" in cols:
        return "flagembedding"
    if "anchor" in cols or {"query", "positive"} <= cols:
        return "sentence-transformers"
    return None


def _negative_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """``negative`` and ``negative_1``, ``negative_2``, ... in numeric order."""
    numbered = [c for c in columns if c.startswith("negative_") and c[len("negative_"):].isdigit()]
    numbered.sort(key=lambda c: int(c[len("negative_"):]))
    return (*(["negative"] if "negative" in columns else []), *numbered)


def resolve_columns(source: PairSource, columns: Sequence[str], where: str) -> ColumnMap:
    """The column map of ``source`` completed by its format's defaults; every named column checked."""
    fmt = source.format or detect_format(columns)
    given = source.columns
    if fmt == "flagembedding":
        default = ColumnMap(query="query", positive="pos", negatives=("neg",) if "neg" in columns else ())
    elif fmt == "sentence-transformers":
        default = ColumnMap(query="anchor" if "anchor" in columns else "query", positive="positive",
                            negatives=_negative_columns(columns))
    else:
        default = ColumnMap(negatives=())
        if given.query is None or given.positive is None:
            raise DataFormatError(
                f"{where}: cannot tell the format from the columns {', '.join(columns) or '(none)'};"
                f" add format=flagembedding or format=sentence-transformers, or map them:"
                f" {source.text.split('?')[0]}?query=COLUMN&positive=COLUMN"
            )
    cmap = ColumnMap(
        query=given.query or default.query, positive=given.positive or default.positive,
        negatives=given.negatives if given.negatives is not None else default.negatives,
        language=given.language or ("language" if "language" in columns and source.language is None else None),
        pair_id=given.pair_id or ("pair_id" if "pair_id" in columns else None),
    )
    required = [cmap.query, cmap.positive, *(c for c in (given.language, given.pair_id) if c)]
    missing = [c for c in (*required, *(given.negatives or ())) if c not in columns]
    if missing:
        raise DataFormatError(
            f"{where}: no column {', '.join(map(repr, missing))}; the columns are {', '.join(columns)}"
        )
    return cmap


def _text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str):
        raise DataFormatError(f"{where}: {what} should be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataFormatError(f"{where}: {what} is empty")
    return value


def _strings(value: Any, where: str, what: str) -> list[str]:
    """A string or a list of strings (a JSON list in a CSV cell included); None and '' are none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise DataFormatError(f"{where}: {what} should be a string or a list of strings, got {type(value).__name__}")
    return [_text(v, where, f"{what}[{i}]") for i, v in enumerate(value)]


@dataclass
class _Builder:
    """Entries by pair id and language, in first-seen order, with duplicate checks."""

    label: str
    entries: dict[str, dict[str, QAEntry]] = field(default_factory=dict)
    first: dict[tuple[str, str], str] = field(default_factory=dict)
    extra_positives: int = 0

    def add(self, where: str, pair_id: str, lang: str, entry: QAEntry) -> None:
        if (pair_id, lang) in self.first:
            raise DataFormatError(
                f"{where}: pair id {pair_id!r} already has a {lang!r} entry ({self.first[(pair_id, lang)]});"
                " one record per (pair id, language)"
            )
        self.first[(pair_id, lang)] = where
        self.entries.setdefault(pair_id, {})[lang] = entry


def _fixed_language(source: PairSource, cmap: ColumnMap, wanted: list[str] | None, where: str) -> str | None:
    if source.language is not None or cmap.language is not None:
        return source.language
    if wanted is not None and len(wanted) == 1:
        return wanted[0]
    raise DataFormatError(
        f"{where}: the records hold no language; add lang=CODE to the source ({source.text.split('?')[0]}"
        "?lang=sw), map a language column (language=COLUMN), or select one language in the source entry"
    )


def read_pairs(text: str | PairSource, languages: Sequence[str] | str | None = None,
               name: str | None = None) -> ParallelQACorpus:
    """The parallel QA corpus a source string names (rules in the module doc)."""
    source = text if isinstance(text, PairSource) else parse_source(text)
    wanted = parse_languages(languages)
    columns, rows = source_rows(source)
    builder = _Builder(source.text)
    cmap: ColumnMap | None = None
    fixed: str | None = None
    for n, (where, row) in enumerate(rows, start=1):
        if cmap is None:
            cmap = resolve_columns(source, columns if columns is not None else list(row), where)
            fixed = _fixed_language(source, cmap, wanted, where)
        for col in (cmap.query, cmap.positive, cmap.language, cmap.pair_id):
            if col is not None and col not in row:
                raise DataFormatError(f"{where}: missing {col!r}")
        assert cmap.query is not None and cmap.positive is not None
        query = _text(row[cmap.query], where, repr(cmap.query))
        positives = _strings(row[cmap.positive], where, repr(cmap.positive))
        if not positives:
            raise DataFormatError(f"{where}: {cmap.positive!r} is empty (each record needs a positive)")
        builder.extra_positives += len(positives) - 1
        negatives = [s for col in (cmap.negatives or ()) for s in _strings(row.get(col), where, repr(col))]
        if fixed is not None:
            lang = fixed
        else:
            assert cmap.language is not None
            raw = _text(row[cmap.language], where, repr(cmap.language))
            try:
                lang = canonical_code(raw)
            except UnknownLanguageError as exc:
                raise UnknownLanguageError(f"{where}: {exc}") from None
        if cmap.pair_id is not None:
            pid = row[cmap.pair_id]
            if isinstance(pid, bool) or not isinstance(pid, (str, int)) or not str(pid).strip():
                raise DataFormatError(f"{where}: {cmap.pair_id!r} should be a non-empty string or integer")
            pair_id = str(pid).strip()
        else:
            pair_id = str(n)
        builder.add(where, pair_id, lang, QAEntry(query=query, positive=positives[0], negatives=tuple(negatives)))
    if not builder.entries:
        raise DataFormatError(f"{source.text}: no records (the source is empty)")
    if builder.extra_positives:
        log.warning("%s: %d further positive(s) left aside (each entry keeps its first)",
                    source.text, builder.extra_positives)
    have = {lang for langs in builder.entries.values() for lang in langs}
    keep = set(select_languages(have, wanted, source=source.text))
    pairs = [ParallelPair(pid, {k: v for k, v in langs.items() if k in keep}) for pid, langs in builder.entries.items()]
    return ParallelQACorpus(name=name or source_name(source), pairs=[p for p in pairs if p.entries])


def source_name(source: PairSource) -> str:
    """A corpus name for a source: the file or dataset name (and config)."""
    if source.scheme == "pairs":
        name = Path(source.target).name
        return next((name[: -len(x)] for x in PAIR_SUFFIXES if name.lower().endswith(x)), corpus_name(name))
    from polyir.data.hub import parse_hub_ref

    ref = parse_hub_ref(source.target)
    base = Path(ref.name.rstrip("/")).name or ref.name
    return f"{base}-{ref.config}" if ref.config else base


def corpus_task(corpus: ParallelQACorpus, notes: Mapping[str, object] | None = None) -> RetrievalTask:
    """A corpus as a retrieval task, as ``polyir.data.parallel`` builds one from a parallel QA JSONL:
    each entry's query is a query, every positive is in the pool, a query's relevant candidates are
    its pair's positives in every language (negatives are not put in the pool)."""
    queries, candidates, members = [], [], {}
    for pair in corpus.pairs:
        for lang in pair.languages:
            e, item = pair.entries[lang], f"{lang}:{pair.pair_id}"
            queries.append(Query(id=item, language=lang, text=e.query, pair_id=pair.pair_id))
            candidates.append(Candidate(id=item, language=lang, text=e.positive, context=e.context or "",
                                        group=pair.pair_id))
            members.setdefault(pair.pair_id, []).append(item)
    relevant = {q.id: frozenset(members[q.pair_id]) for q in queries}
    return RetrievalTask(name=corpus.name, queries=queries, candidates=candidates, relevant=relevant,
                         notes={**(notes or {}), "languages": corpus.languages, "pairs": len(corpus.pairs)})


def load_source_corpus(text: str, languages: Sequence[str] | str | None = None) -> ParallelQACorpus:
    """Training view of a source string (what ``registry.load_corpus`` returns for one)."""
    return read_pairs(text, languages)


def load_source_task(text: str, languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """Evaluation view of a source string (what ``registry.load_task`` returns for one)."""
    return corpus_task(read_pairs(text, languages), notes={"format": "pairs", "source": text})


# --------------------------------------------------------------------------- writing


def pair_records(corpus: ParallelQACorpus, fmt: str) -> list[dict[str, Any]]:
    """One record per (pair id, language) in ``fmt``, with ``language`` and ``pair_id`` columns.
    sentence-transformers records get ``negative_1..k`` up to the corpus' largest k ('' when fewer)."""
    if fmt not in FORMATS:
        raise PolyirError(f"unknown pair format {fmt!r}; use {' or '.join(FORMATS)}")
    most = max((len(e.negatives) for p in corpus.pairs for e in p.entries.values()), default=0)
    out = []
    for pair in corpus.pairs:
        for lang in pair.languages:
            e = pair.entries[lang]
            if fmt == "flagembedding":
                rec: dict[str, Any] = {"query": e.query, "pos": [e.positive], "neg": list(e.negatives)}
            else:
                rec = {"anchor": e.query, "positive": e.positive,
                       **{f"negative_{i + 1}": (e.negatives[i] if i < len(e.negatives) else "") for i in range(most)}}
            out.append({**rec, "language": lang, "pair_id": pair.pair_id})
    return out


def write_pairs(corpus: ParallelQACorpus, path: Path | str, fmt: str) -> Path:
    """Write ``corpus`` in ``fmt`` to a .jsonl(.gz)/.csv/.tsv/.parquet file, or a ``datasets`` folder
    (``save_to_disk``) when ``path`` has none of those suffixes; atomically."""
    from polyir.atomic import atomic_folder, atomic_open, atomic_text

    path = Path(path)
    records = pair_records(corpus, fmt)
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        with atomic_text(path) as out:
            for rec in records:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    elif name.endswith((".csv", ".tsv")):
        with atomic_open(path, "w") as out:
            writer = csv.DictWriter(out, fieldnames=list(records[0]), delimiter="\t" if name.endswith(".tsv") else ",",
                                    lineterminator="\n")
            writer.writeheader()
            writer.writerows([{k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v
                               for k, v in rec.items()} for rec in records])
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(records)
        with atomic_open(path, "wb") as out:
            pq.write_table(table, out)
    else:
        import datasets

        with atomic_folder(path, overwrite=True, marker="dataset_info.json") as staging:
            datasets.Dataset.from_list(records).save_to_disk(str(staging))
    return path
