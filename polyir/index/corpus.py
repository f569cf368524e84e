"""Search corpora: passages from a JSON Lines file or from a registered dataset's candidate pool.

A corpus file has one passage per line (UTF-8; ``.jsonl`` or ``.jsonl.gz``)::

    {"id": "doc-1", "language": "de", "text": "Goethe schrieb Faust.",
     "title": "optional", "metadata": {"optional": "any JSON object"}}

``id`` is a non-empty string (an integer is accepted and turned into a string), unique in the file;
``language`` is a known code (``polyir.languages``); ``text`` is a non-empty string. Blank lines are
skipped; unknown keys are errors (a typo would otherwise lose data). Every error names the file and
the line.

Other layouts are read with :class:`CorpusFields` (``polyir index --corpus-format/--id-field/...``):
presets ``beir`` (``_id``, ``title``, ``text``, ``metadata``), ``pyserini`` (``id``, ``contents``) and
``miracl`` (``docid``, ``title``, ``text``), or any field names; their other keys are kept in the
passage's metadata, and a corpus without a language field takes a fixed ``--language``. A folder is
read as every ``*.jsonl`` / ``*.jsonl.gz`` in it, by name (as MIRACL ships its corpus).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from polyir.data.jsonl import _lines, json_object, parse_json_record
from polyir.errors import DataFormatError, EmptySelectionError, PolyirError
from polyir.languages import canonical_code, is_language_code, parse_languages, select_languages


def unicode_problem(value: str) -> str | None:
    """Why ``value`` cannot be encoded as UTF-8 (a lone surrogate such as ``\\ud800``), else None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate {value[exc.start]!r} at character {exc.start + 1} (not valid Unicode text)"
    return None


def _check_unicode(where: str, record: dict[str, Any], keys: Sequence[str] = ("id", "text", "title"),
                   metadata: str | None = "metadata") -> None:
    """Refuse strings the tokenizer and the passages file cannot take, naming the field."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and (problem := unicode_problem(value)):
            raise DataFormatError(f"{where}: \"{key}\" holds {problem}")
    meta = record.get(metadata) if metadata else None
    if meta is not None and unicode_problem(json.dumps(meta, ensure_ascii=False)):
        raise DataFormatError(f"{where}: \"{metadata}\" holds a lone surrogate (not valid Unicode text)")


@dataclass(frozen=True)
class Passage:
    """One searchable unit: what the index stores beside its vector."""

    id: str
    language: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "language": self.language, "text": self.text}
        if self.title:
            out["title"] = self.title
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass(frozen=True)
class CorpusFields:
    """Which JSON key holds each passage field. ``strict``: other keys are errors (polyir's own format,
    where a typo would lose data); otherwise they are kept in the passage's metadata (foreign formats
    carry keys such as ``url``). ``language`` None: every passage gets the fixed language given."""

    id: str = "id"
    text: str = "text"
    title: str | None = "title"
    language: str | None = "language"
    metadata: str | None = "metadata"
    strict: bool = True

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.id, self.language, self.text, self.title, self.metadata) if k)


#: Field layouts of common corpus files (``polyir index --corpus-format``). None of BEIR's, pyserini's
#: or MIRACL's corpora carries a language: give ``--language CODE`` (or ``--language-field``).
PRESETS: dict[str, CorpusFields] = {
    "polyir": CorpusFields(),
    "beir": CorpusFields(id="_id", text="text", title="title", strict=False),
    "pyserini": CorpusFields(id="id", text="contents", title=None, metadata=None, strict=False),
    "miracl": CorpusFields(id="docid", text="text", title="title", metadata=None, strict=False),
}


def corpus_fields(preset: str = "polyir", *, id_field: str | None = None, text_field: str | None = None,
                  title_field: str | None = None, language_field: str | None = None) -> CorpusFields:
    """A preset's fields with any field name replaced; an explicit name makes the reader lenient
    (other keys kept as metadata), since the file is not polyir's own format."""
    if preset not in PRESETS:
        raise PolyirError(f"unknown corpus format {preset!r}; use one of {', '.join(PRESETS)}")
    base = PRESETS[preset]
    given = {"id": id_field, "text": text_field, "title": title_field, "language": language_field}
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        return base
    return replace(base, **changes, strict=False)


def _parse_line(path: Path, lineno: int, line: str, fields: CorpusFields = CorpusFields(),
                language: str | None = None) -> Passage:
    where = f"{path}: line {lineno}"
    f = fields
    if f.strict:
        record = parse_json_record(line, where, f.keys)
    else:
        record = json_object(line, where)
    _check_unicode(where, record, tuple(k for k in (f.id, f.text, f.title) if k), f.metadata)
    pid = record.get(f.id)
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid.strip():
        raise DataFormatError(f"{where}: missing or empty \"{f.id}\" (a non-empty string)")
    text = record.get(f.text)
    if not isinstance(text, str) or not text.strip():
        raise DataFormatError(f"{where}: passage {pid!r}: missing or empty \"{f.text}\" (a non-empty string)")
    lang = language
    if lang is None:
        raw = record.get(f.language) if f.language else None
        if not isinstance(raw, str) or not raw.strip():
            hint = "" if f.strict else "; or give the corpus' language with --language CODE"
            raise DataFormatError(
                f"{where}: passage {pid!r}: missing \"{f.language}\" (a code such as en, de, zh){hint}")
        if not is_language_code(raw):
            raise DataFormatError(
                f"{where}: passage {pid!r}: unknown language code {raw!r}; use ISO 639-1 codes such as en, de, zh"
            )
        lang = canonical_code(raw)
    title = record.get(f.title, "") if f.title else ""
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise DataFormatError(f"{where}: passage {pid!r}: \"{f.title}\" must be a string")
    metadata = record.get(f.metadata, {}) if f.metadata else {}
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise DataFormatError(f"{where}: passage {pid!r}: \"{f.metadata}\" must be a JSON object")
    if not f.strict:
        used = {k for k in (f.id, f.text, f.title, f.metadata, f.language if language is None else None) if k}
        metadata = {**{k: v for k, v in record.items() if k not in used}, **metadata}
    return Passage(id=pid, language=lang, text=text, title=title, metadata=metadata)


def corpus_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.jsonl`` / ``*.jsonl.gz`` in a folder (by name: MIRACL's shards)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz")))
        if not found:
            raise DataFormatError(f"{path}: no .jsonl or .jsonl.gz file in this folder")
        return found
    raise DataFormatError(f"{path}: corpus file not found")


def read_corpus(path: Path | str, languages: Sequence[str] | str | None = None, *,
                fields: CorpusFields = CorpusFields(), language: str | None = None) -> list[Passage]:
    """Read and validate a corpus file (or a folder of them) with the given field names; ``language``
    is every passage's language (for corpora without a language field); ``languages`` keeps only
    those codes (all must be present)."""
    path = Path(path)
    fixed = canonical_code(language) if language is not None else None
    if fixed is None and fields.language is None:
        raise PolyirError(f"{path}: the corpus has no language field; give its language (--language CODE)")
    passages: list[Passage] = []
    first_seen: dict[str, str] = {}
    for file in corpus_files(path):
        for lineno, line in _lines(file):
            if not line.strip():
                continue
            passage = _parse_line(file, lineno, line, fields, fixed)
            if passage.id in first_seen:
                raise DataFormatError(
                    f"{file}: line {lineno}: duplicate id {passage.id!r} (first seen on {first_seen[passage.id]})"
                )
            first_seen[passage.id] = f"line {lineno}" if file == path else f"{file.name} line {lineno}"
            passages.append(passage)
    if not passages:
        raise DataFormatError(f"{path}: the corpus file is empty (no passage lines)")
    return _select(passages, languages, source=str(path))


def read_corpus_jsonl(path: Path | str, languages: Sequence[str] | str | None = None) -> list[Passage]:
    """Read and validate a corpus file in polyir's own format (module doc)."""
    return read_corpus(path, languages)


def corpus_from_dataset(
    name: str, data_dir: Path | str | None = None, languages: Sequence[str] | str | None = None
) -> list[Passage]:
    """The candidate pool of a registered dataset (e.g. every XQuAD-R sentence) as passages."""
    from polyir.data.registry import load_task

    task = load_task(name, data_dir=data_dir, languages=parse_languages(languages))
    return [
        Passage(id=c.id, language=c.language, text=c.text, metadata={"group": c.group} if c.group else {})
        for c in task.candidates
    ]


def _select(passages: list[Passage], languages: Sequence[str] | str | None, *, source: str) -> list[Passage]:
    wanted = parse_languages(languages)
    if wanted is None:
        return passages
    keep = set(select_languages({p.language for p in passages}, wanted, source=source))
    out = [p for p in passages if p.language in keep]
    if not out:  # pragma: no cover - select_languages already failed
        raise EmptySelectionError(f"{source}: no passage in {', '.join(wanted)}")
    return out
