"""SQuAD-format JSON (v1.1 and v2.0) as a parallel QA corpus: translated copies aligned by question id.

A user gives one file per language (``en=train-v1.1.json,es=squad-es.json``): the English original and
its translations (SQuAD-es, Arabic-SQuAD, translate-train files, their own). Every file is the usual
``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers",
"is_impossible"?}]}]}]}``. Questions with the same ``id`` in several files are one pair id; a question
id found in one file only is a one-language pair. The query is the question, the positive its
paragraph (``context``); ``answers[0].answer_start`` is kept so callers can find the answer sentence
(:func:`read_squad` returns it; ``polyir translate`` uses it).

SQuAD 2.0's unanswerable questions (``is_impossible: true``) are skipped and counted
(``SquadRead.unanswerable``): they have no passage that answers them. Malformed files, questions
without an id or text, and ids repeated within a file are errors naming the file and the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyir.data.records import read_utf8
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError, UnknownLanguageError
from polyir.languages import canonical_code, is_language_code


@dataclass(frozen=True)
class SquadQuestion:
    """One answerable question of a SQuAD file, with its paragraph."""

    id: str
    question: str
    context: str
    title: str
    answer_start: int | None  # of the first answer, None when the file gives none (e.g. test files)
    answer_text: str | None


@dataclass
class SquadRead:
    """A parallel corpus read from SQuAD files, with what was skipped."""

    corpus: ParallelQACorpus
    version: dict[str, str]  # language -> the file's "version" field ("" when absent)
    unanswerable: dict[str, int] = field(default_factory=dict)  # language -> skipped v2.0 questions
    only_in: dict[str, int] = field(default_factory=dict)  # language -> ids found in that file alone


def parse_squad_spec(spec: str) -> dict[str, Path]:
    """``en=a.json,es=b.json`` -> language -> path; an unknown code or a repeated language is an error."""
    files: dict[str, Path] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        lang, sep, path = part.partition("=")
        if not sep or not lang.strip() or not path.strip():
            raise DataFormatError(f"--squad {spec!r}: expected LANG=FILE pairs, e.g. en=train-v1.1.json,es=squad-es.json")
        if not is_language_code(lang.strip()):
            raise UnknownLanguageError(f"--squad: {lang.strip()!r} is not a known language code (e.g. en, es, ar)")
        code = canonical_code(lang.strip())
        if code in files:
            raise DataFormatError(f"--squad: language {code!r} given twice")
        files[code] = Path(path.strip()).expanduser()
    if not files:
        raise EmptySelectionError(f"--squad {spec!r}: no LANG=FILE pair")
    return files


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DataFormatError(f"{where}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataFormatError(f"{where}: {key!r} should be a {kind.__name__}, got {type(value).__name__}")
    return value


def read_squad(path: Path | str) -> tuple[str, list[SquadQuestion], int]:
    """(version, answerable questions in file order, number of unanswerable ones skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such SQuAD file")
    try:
        doc = json.loads(read_utf8(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise DataFormatError(f"{path}: a SQuAD file is a JSON object with 'data'")
    version = str(doc.get("version", ""))
    out: list[SquadQuestion] = []
    seen: set[str] = set()
    skipped = 0
    for a, article in enumerate(_field(doc, "data", list, str(path))):
        where_a = f"{path}: data[{a}]"
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_field(article, "paragraphs", list, where_a)):
            where_p = f"{where_a}.paragraphs[{p}]"
            context = _field(paragraph, "context", str, where_p)
            for q, qa in enumerate(_field(paragraph, "qas", list, where_p)):
                where = f"{where_p}.qas[{q}]"
                qid = qa.get("id") if isinstance(qa, dict) else None
                if isinstance(qid, int) and not isinstance(qid, bool):
                    qid = str(qid)
                if not isinstance(qid, str) or not qid.strip():
                    raise DataFormatError(f"{where}: 'id' should be a non-empty string")
                if qid in seen:
                    raise DataFormatError(f"{where}: question id {qid!r} repeated in the file")
                seen.add(qid)
                if qa.get("is_impossible") is True:
                    skipped += 1
                    continue
                question = _field(qa, "question", str, where)
                if not question.strip() or not context.strip():
                    raise DataFormatError(f"{where}: empty {'question' if context.strip() else 'context'}")
                answers = qa.get("answers") or []
                first = answers[0] if isinstance(answers, list) and answers and isinstance(answers[0], dict) else {}
                start = first.get("answer_start")
                text = first.get("text")
                out.append(SquadQuestion(
                    id=qid, question=question, context=context, title=str(title or ""),
                    answer_start=start if isinstance(start, int) and 0 <= start < len(context) else None,
                    answer_text=text if isinstance(text, str) else None,
                ))
    return version, out, skipped


def read_squad_files(files: Mapping[str, Path | str], name: str = "squad") -> SquadRead:
    """Language -> SQuAD file, aligned by question id into one parallel corpus (order: the first file's)."""
    if not files:
        raise DatasetNotFoundError(f"{name}: no SQuAD file given")
    versions: dict[str, str] = {}
    unanswerable: dict[str, int] = {}
    by_id: dict[str, dict[str, QAEntry]] = {}
    for lang, path in files.items():
        version, questions, skipped = read_squad(path)
        versions[lang], unanswerable[lang] = version, skipped
        for item in questions:
            by_id.setdefault(item.id, {})[lang] = QAEntry(query=item.question, positive=item.context)
    pairs = [ParallelPair(pair_id=qid, entries=entries) for qid, entries in by_id.items()]
    if not pairs:
        raise EmptySelectionError(f"{name}: no answerable question in {', '.join(map(str, files.values()))}")
    only_in = {lang: sum(1 for p in pairs if list(p.entries) == [lang]) for lang in files} if len(files) > 1 else {}
    return SquadRead(corpus=ParallelQACorpus(name=name, pairs=pairs), version=versions,
                     unanswerable=unanswerable, only_in=only_in)
