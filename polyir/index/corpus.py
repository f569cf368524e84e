"""Search corpora: passages from a JSON Lines file or from a registered dataset's candidate pool.

A corpus file has one passage per line (UTF-8; ``.jsonl`` or ``.jsonl.gz``)::

    {"id": "doc-1", "language": "de", "text": "Goethe schrieb Faust.",
     "title": "optional", "metadata": {"optional": "any JSON object"}}

``id`` is a non-empty string (an integer is accepted and turned into a string), unique in the file;
``language`` is a known code (``polyir.languages``); ``text`` is a non-empty string. Blank lines are
skipped; unknown keys are errors (a typo would otherwise lose data). Every error names the file and
the line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyir.data.jsonl import _lines, parse_json_record
from polyir.errors import DataFormatError, EmptySelectionError
from polyir.languages import LANGUAGE_NAMES, parse_languages, select_languages


def unicode_problem(value: str) -> str | None:
    """Why ``value`` cannot be encoded as UTF-8 (a lone surrogate such as ``\\ud800``), else None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate {value[exc.start]!r} at character {exc.start + 1} (not valid Unicode text)"
    return None


def _check_unicode(where: str, record: dict[str, Any]) -> None:
    """Refuse strings the tokenizer and the passages file cannot take, naming the field."""
    for key in ("id", "text", "title"):
        value = record.get(key)
        if isinstance(value, str) and (problem := unicode_problem(value)):
            raise DataFormatError(f"{where}: \"{key}\" holds {problem}")
    metadata = record.get("metadata")
    if metadata is not None and unicode_problem(json.dumps(metadata, ensure_ascii=False)):
        raise DataFormatError(f"{where}: \"metadata\" holds a lone surrogate (not valid Unicode text)")


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


def _parse_line(path: Path, lineno: int, line: str) -> Passage:
    where = f"{path}: line {lineno}"
    record = parse_json_record(line, where, ("id", "language", "text", "title", "metadata"))
    _check_unicode(where, record)
    pid = record.get("id")
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid.strip():
        raise DataFormatError(f"{where}: missing or empty \"id\" (a non-empty string)")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DataFormatError(f"{where}: passage {pid!r}: missing or empty \"text\" (a non-empty string)")
    lang = record.get("language")
    if not isinstance(lang, str) or not lang.strip():
        raise DataFormatError(f"{where}: passage {pid!r}: missing \"language\" (a code such as en, de, zh)")
    lang = lang.strip().lower()
    if lang not in LANGUAGE_NAMES:
        raise DataFormatError(
            f"{where}: passage {pid!r}: unknown language code {record['language']!r}; use ISO 639-1 codes such as en, de, zh"
        )
    title = record.get("title", "")
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise DataFormatError(f"{where}: passage {pid!r}: \"title\" must be a string")
    metadata = record.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise DataFormatError(f"{where}: passage {pid!r}: \"metadata\" must be a JSON object")
    return Passage(id=pid, language=lang, text=text, title=title, metadata=metadata)


def read_corpus_jsonl(path: Path | str, languages: Sequence[str] | str | None = None) -> list[Passage]:
    """Read and validate a corpus file; ``languages`` keeps only those codes (all must be present)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: corpus file not found")
    passages: list[Passage] = []
    first_line: dict[str, int] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        passage = _parse_line(path, lineno, line)
        if passage.id in first_line:
            raise DataFormatError(
                f"{path}: line {lineno}: duplicate id {passage.id!r} (first seen on line {first_line[passage.id]})"
            )
        first_line[passage.id] = lineno
        passages.append(passage)
    if not passages:
        raise DataFormatError(f"{path}: the corpus file is empty (no passage lines)")
    return _select(passages, languages, source=str(path))


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
