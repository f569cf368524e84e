"""Parallel QA corpora as JSON Lines: the format users bring their own training data in.

One pair id per line (UTF-8; ``.jsonl`` or gzip-compressed ``.jsonl.gz``)::

    {"pair_id": "q1",
     "languages": {"en": {"query": "Who wrote Faust?", "positive": "Goethe wrote Faust.",
                          "context": "optional paragraph", "negatives": ["optional", "..."]},
                   "de": {"query": "Wer schrieb Faust?", "positive": "Goethe schrieb Faust."}}}

Rules: ``pair_id`` is a non-empty string (an integer is accepted and turned into a string) and unique
in the file; ``languages`` maps known language codes (see ``polyir.languages``) to entries; every
entry needs a non-empty ``query`` and ``positive``; ``context`` (string) and ``negatives`` (list of
non-empty strings) are optional. Unknown keys are errors (a typo such as ``"negative"`` would
otherwise drop data silently). Blank lines are skipped. Every error names the file and line number.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from polyir.atomic import atomic_text
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DataFormatError, EmptySelectionError
from polyir.languages import LANGUAGE_NAMES, parse_languages, select_languages

_ENTRY_KEYS = {"query", "positive", "context", "negatives"}


def _is_gz(path: Path) -> bool:
    return path.name.endswith(".gz")


def corpus_name(path: Path | str) -> str:
    """The corpus name a file gives: its name without ``.jsonl`` / ``.jsonl.gz``."""
    name = Path(path).name
    for suffix in (".gz", ".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if _is_gz(path) else open(path, "rb")  # type: ignore[return-value]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines, turning decode / gzip failures into DataFormatError with the line number."""
    try:
        handle = _open_binary(path)
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot open file ({exc.strerror or exc})") from exc
    lineno = 0
    with handle:
        while True:
            try:
                raw = handle.readline()
            except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
                raise DataFormatError(
                    f"{path}: line {lineno + 1}: cannot read ({exc}); truncated or not a .gz file?"
                ) from exc
            if not raw:
                return
            lineno += 1
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte-order mark
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    f"{path}: line {lineno}: not UTF-8 text ({exc.reason} at byte {exc.start})"
                ) from exc
            yield lineno, text


def _text(value: Any, where: str, key: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise DataFormatError(f"{where}: {key!r} should be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataFormatError(f"{where}: {key!r} is empty")
    return value


def _parse_entry(raw: Any, where: str) -> QAEntry:
    if not isinstance(raw, dict):
        raise DataFormatError(f"{where}: entry should be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise DataFormatError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))};"
            f" allowed: {', '.join(sorted(_ENTRY_KEYS))}"
        )
    for key in ("query", "positive"):
        if key not in raw:
            raise DataFormatError(f"{where}: missing {key!r}")
    query = _text(raw["query"], where, "query", required=True)
    positive = _text(raw["positive"], where, "positive", required=True)
    context = _text(raw.get("context"), where, "context", required=False)
    negatives_raw = raw.get("negatives", [])
    if negatives_raw is None:
        negatives_raw = []
    if not isinstance(negatives_raw, list):
        raise DataFormatError(f"{where}: 'negatives' should be a list of strings")
    negatives = []
    for i, neg in enumerate(negatives_raw):
        if not isinstance(neg, str) or not neg.strip():
            raise DataFormatError(f"{where}: negatives[{i}] should be a non-empty string")
        negatives.append(neg)
    assert query is not None and positive is not None
    return QAEntry(query=query, positive=positive, context=context, negatives=tuple(negatives))


def json_object(text: str, where: str) -> dict[str, Any]:
    """One JSONL line as a JSON object (any keys); errors name ``where``."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def parse_json_record(text: str, where: str, allowed: Iterable[str]) -> dict[str, Any]:
    """One JSONL line as a JSON object with only ``allowed`` keys; errors name ``where``."""
    record = json_object(text, where)
    allowed = list(allowed)
    unknown = sorted(set(record) - set(allowed))
    if unknown:
        raise DataFormatError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )
    return record


def _parse_line(text: str, where: str) -> ParallelPair:
    record = parse_json_record(text, where, ("pair_id", "languages", "provenance"))  # provenance: polyir translate
    if "pair_id" not in record:
        raise DataFormatError(f"{where}: missing 'pair_id'")
    pid = record["pair_id"]
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid.strip():
        raise DataFormatError(f"{where}: 'pair_id' should be a non-empty string, got {pid!r}")
    where = f"{where} (pair_id {pid!r})"
    langs = record.get("languages")
    if not isinstance(langs, dict) or not langs:
        raise DataFormatError(f"{where}: 'languages' should be a non-empty object lang -> entry")
    entries: dict[str, QAEntry] = {}
    for code, raw in langs.items():
        if code not in LANGUAGE_NAMES:
            raise DataFormatError(
                f"{where}: unknown language code {code!r}; use ISO 639-1 codes such as en, de, zh"
            )
        entries[code] = _parse_entry(raw, f"{where}, language {code!r}")
    return ParallelPair(pair_id=pid, entries=entries)


def read_parallel_jsonl(path: Path | str,
                        languages: Sequence[str] | str | None = None) -> ParallelQACorpus:
    """Read a parallel QA corpus; ``languages`` keeps only those entries (pairs left empty drop)."""
    path = Path(path)
    wanted = parse_languages(languages)
    pairs: list[ParallelPair] = []
    first_line: dict[str, int] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}: line {lineno}"
        pair = _parse_line(line, where)
        if pair.pair_id in first_line:
            raise DataFormatError(
                f"{where}: duplicate pair_id {pair.pair_id!r} (first on line"
                f" {first_line[pair.pair_id]})"
            )
        first_line[pair.pair_id] = lineno
        pairs.append(pair)
    if not pairs:
        raise DataFormatError(f"{path}: no records (the file is empty or holds only blank lines)")
    have = {lang for p in pairs for lang in p.entries}
    selected = select_languages(have, wanted, source=str(path))
    if wanted is not None:
        keep = set(selected)
        pairs = [
            ParallelPair(p.pair_id, {k: v for k, v in p.entries.items() if k in keep})
            for p in pairs
        ]
        pairs = [p for p in pairs if p.entries]
    if not pairs:
        raise EmptySelectionError(f"{path}: no pair holds language(s) {', '.join(selected)}")
    return ParallelQACorpus(name=corpus_name(path), pairs=pairs)


def _record(pair: ParallelPair) -> dict[str, Any]:
    langs: dict[str, Any] = {}
    for code in pair.languages:
        e = pair.entries[code]
        item: dict[str, Any] = {"query": e.query, "positive": e.positive}
        if e.context is not None:
            item["context"] = e.context
        if e.negatives:
            item["negatives"] = list(e.negatives)
        langs[code] = item
    return {"pair_id": pair.pair_id, "languages": langs}


def write_parallel_jsonl(corpus: ParallelQACorpus, path: Path | str) -> Path:
    """Write ``corpus`` as JSONL (gzip when the name ends in ``.gz``), atomically; returns the path.

    Languages are written in sorted order; empty ``negatives`` and a ``None`` context are left out.
    """
    path = Path(path)
    with atomic_text(path) as out:
        for pair in corpus.pairs:
            out.write(json.dumps(_record(pair), ensure_ascii=False))
            out.write("\n")
    return path
