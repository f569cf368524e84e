"""Reader for LAReQA retrieval data (XQuAD-R, MLQA-R).

Format: one SQuAD-style JSON file per language (``{lang}.json``), where every paragraph also holds
``sentences`` (list of str) and ``sentence_breaks`` (list of ``[start, end)`` character offsets into
``context``). Question ids are shared by the translations of one question across the files.

Rules (also in ``docs/data-formats.md``):

* **Queries**: every question of every selected language; ``Query.id = f"{lang}:{qid}"``,
  ``pair_id = qid``.
* **Candidates**: every sentence of every paragraph of every selected language, duplicates included;
  ``Candidate.id = f"{lang}:{article}:{paragraph}:{sentence}"`` (0-based positions in the file),
  ``group = f"{lang}:{article}:{paragraph}"``, ``context`` = the paragraph, ``text`` = the string in
  ``sentences``.
* **Answer sentence**: the sentence whose ``[start, end)`` break holds the question's
  ``answer_start`` (first answer when several are listed). An offset outside every sentence is a
  ``DataFormatError`` (the LAReQA code skipped such questions with a warning; none exist in the
  released files).
* **Relevance**: a query's relevant set is the answer sentence of every question with the same id, in
  every selected language (11 per query on XQuAD-R, 2-4 on MLQA-R). As in the original LAReQA code
  (``google-research/xtreme`` ``third_party/utils_lareqa.py``: it matches the answer by string
  against the sentences of its own paragraph), an identical copy of the answer sentence *in the same
  paragraph* is relevant too; copies elsewhere are ordinary, non-relevant candidates.
* **Duplicate sentence strings** stay in the pool as separate candidates, as in the original code
  (candidates are keyed by paragraph and position there, and the published pool sizes count them).
  ``task.notes["duplicates"]`` counts them.
* **Break repair**: when ``context[start:end]`` differs from the sentence text, the break is
  re-aligned: its start moves to the nearest offset within ``MAX_BREAK_SHIFT`` (8) characters where
  the context starts with the sentence's first ``ANCHOR_CHARS`` (12) characters, its end to the
  nearest offset within the same window where the context ends with the sentence's last
  ``ANCHOR_CHARS`` characters (an anchor that does not match shrinks down to ``MIN_ANCHOR_CHARS``
  (4) characters; the new span's length must stay within 8 of the sentence's). Each repair is
  recorded in ``task.notes["break_repairs"]``; a break that cannot be re-aligned is a
  ``DataFormatError``. The one real case: XQuAD-R ``tr.json``, article 9
  (``Victoria_(Australia)``), paragraph 3, sentences 2 and 3. The context holds the mojibake
  ``"1â\\x81„2"`` (3 characters) where the sentence string holds one character ("1⁞2"); the breaks
  were computed on the sentence strings, so sentence 2 ends 2 characters early and sentence 3
  (including its end) sits 2 characters early: ``[265, 426] -> [265, 428]``,
  ``[427, 604] -> [429, 606]``. No answer changes sentence through the repair.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyir.data.types import (
    Candidate,
    ParallelPair,
    ParallelQACorpus,
    QAEntry,
    Query,
    RetrievalTask,
)
from polyir.errors import DataFormatError, EmptySelectionError
from polyir.languages import parse_languages, select_languages

MAX_BREAK_SHIFT = 8  # how far (characters) a break end point may be moved by the repair
ANCHOR_CHARS = 12  # how many leading / trailing characters of a sentence anchor its re-alignment
MIN_ANCHOR_CHARS = 4  # ... shrinking down to this many when the longer anchor does not match


@dataclass
class _Question:
    qid: str
    text: str
    paragraph: int  # index into _LangFile.paragraphs
    sentence: int  # index of the answer sentence in its paragraph


@dataclass
class _Paragraph:
    article: int
    index: int
    title: str
    context: str
    sentences: list[str]

    def group(self, lang: str) -> str:
        return f"{lang}:{self.article}:{self.index}"


@dataclass
class _LangFile:
    lang: str
    path: Path
    paragraphs: list[_Paragraph] = field(default_factory=list)
    questions: list[_Question] = field(default_factory=list)
    repairs: list[dict[str, Any]] = field(default_factory=list)


def _where(path: Path, article: int, title: str, paragraph: int | None = None,
           question: str | None = None) -> str:
    text = f"{path}: article {article} ({title!r})"
    if paragraph is not None:
        text += f", paragraph {paragraph}"
    if question is not None:
        text += f", question {question!r}"
    return text


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[key]`` with a DataFormatError naming the record when it is missing or mistyped."""
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise DataFormatError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataFormatError(f"{where}: key {key!r} should be {name}, got {type(value).__name__}")
    return value


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg});"
            " the file may be truncated"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: top level should be a JSON object with key 'data'")
    return data


def _nearest(positions: list[int], target: int) -> int | None:
    return min(positions, key=lambda p: (abs(p - target), p)) if positions else None


def _anchor(context: str, sentence: str, target: int, *, at_start: bool) -> int | None:
    """Offset nearest ``target`` (within MAX_BREAK_SHIFT) where the sentence's head (or tail)
    sits in the context; the anchor shrinks from ANCHOR_CHARS to MIN_ANCHOR_CHARS characters
    when the longer one does not match (a changed character close to the sentence's edge)."""
    longest = min(ANCHOR_CHARS, len(sentence))
    for k in range(longest, min(MIN_ANCHOR_CHARS, longest) - 1, -1):
        lo, hi = max(0, target - MAX_BREAK_SHIFT), min(len(context), target + MAX_BREAK_SHIFT)
        if at_start:
            head = sentence[:k]
            hits = [p for p in range(lo, hi + 1) if context.startswith(head, p)]
        else:
            tail = sentence[-k:]
            hits = [q for q in range(max(lo, k), hi + 1) if context[q - k:q] == tail]
        if hits:
            return min(hits, key=lambda p: (abs(p - target), p))
    return None


def _realign(context: str, sentence: str, start: int, end: int) -> tuple[int, int] | None:
    """Re-align a break whose slice differs from its sentence (see the module docstring)."""
    if not sentence:
        return None
    new_start = _anchor(context, sentence, start, at_start=True)
    new_end = _anchor(context, sentence, end, at_start=False)
    if new_start is None or new_end is None or new_end <= new_start:
        return None
    if abs((new_end - new_start) - len(sentence)) > MAX_BREAK_SHIFT:
        return None
    return new_start, new_end


def _parse_breaks(raw: list[Any], context: str, sentences: list[str], where: str,
                  lang_file: _LangFile, paragraph: _Paragraph) -> list[tuple[int, int]]:
    """Validate ``sentence_breaks`` against ``sentences`` and repair shifted ones."""
    if len(raw) != len(sentences):
        raise DataFormatError(
            f"{where}: {len(raw)} sentence_breaks but {len(sentences)} sentences"
        )
    spans: list[tuple[int, int]] = []
    for i, (brk, sent) in enumerate(zip(raw, sentences)):
        if (not isinstance(brk, (list, tuple)) or len(brk) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in brk)):
            raise DataFormatError(
                f"{where}, sentence {i}: break {brk!r} is not a [start, end] pair"
            )
        start, end = brk
        if not isinstance(sent, str) or not sent.strip():
            raise DataFormatError(f"{where}, sentence {i}: empty or non-string sentence {sent!r}")
        if 0 <= start <= end <= len(context) and context[start:end] == sent:
            spans.append((start, end))
            continue
        fixed = _realign(context, sent, start, end)
        if fixed is None:
            raise DataFormatError(
                f"{where}, sentence {i}: break [{start}, {end}] does not match the sentence text"
                f" and no re-alignment within {MAX_BREAK_SHIFT} characters was found"
                f" (sentence starts {sent[:30]!r})"
            )
        lang_file.repairs.append({
            "file": str(lang_file.path),
            "language": lang_file.lang,
            "article": paragraph.article,
            "title": paragraph.title,
            "paragraph": paragraph.index,
            "sentence": i,
            "old": [start, end],
            "new": list(fixed),
            "shift": [fixed[0] - start, fixed[1] - end],
            "text_matches_context": context[fixed[0]:fixed[1]] == sent,
        })
        spans.append(fixed)
    for i in range(1, len(spans)):
        if spans[i][0] < spans[i - 1][1]:
            raise DataFormatError(
                f"{where}: sentence_breaks {i - 1} {list(spans[i - 1])} and {i} {list(spans[i])}"
                " overlap"
            )
    return spans


def _parse_file(lang: str, path: Path) -> _LangFile:
    """Parse and validate one language file."""
    data = _read_json(path)
    articles = _get(data, "data", list, str(path))
    out = _LangFile(lang=lang, path=path)
    seen_ids: dict[str, str] = {}
    for a_idx, article in enumerate(articles):
        title = article.get("title", "") if isinstance(article, dict) else ""
        title = title if isinstance(title, str) else str(title)
        a_where = _where(path, a_idx, title)
        paragraphs = _get(article, "paragraphs", list, a_where)
        for p_idx, para in enumerate(paragraphs):
            p_where = _where(path, a_idx, title, p_idx)
            context = _get(para, "context", str, p_where)
            sentences = _get(para, "sentences", list, p_where)
            raw_breaks = _get(para, "sentence_breaks", list, p_where)
            qas = _get(para, "qas", list, p_where)
            paragraph = _Paragraph(a_idx, p_idx, title, context, sentences)
            spans = _parse_breaks(raw_breaks, context, sentences, p_where, out, paragraph)
            para_pos = len(out.paragraphs)
            out.paragraphs.append(paragraph)
            for q_pos, qa in enumerate(qas):
                qid_where = f"{p_where}, question #{q_pos}"
                qid = _get(qa, "id", (str, int), qid_where)
                qid = str(qid)
                q_where = _where(path, a_idx, title, p_idx, qid)
                if qid in seen_ids:
                    raise DataFormatError(
                        f"{q_where}: duplicate question id (first seen at {seen_ids[qid]})"
                    )
                seen_ids[qid] = f"article {a_idx}, paragraph {p_idx}"
                text = _get(qa, "question", str, q_where)
                if not text.strip():
                    raise DataFormatError(f"{q_where}: empty question text")
                answers = _get(qa, "answers", list, q_where)
                if not answers:
                    raise DataFormatError(f"{q_where}: 'answers' is empty")
                answer_start = _get(answers[0], "answer_start", int, f"{q_where}, answer 0")
                hit = next((i for i, (s, e) in enumerate(spans) if s <= answer_start < e), None)
                if hit is None:
                    raise DataFormatError(
                        f"{q_where}: answer_start {answer_start} lies outside every sentence"
                        f" (context length {len(context)}, {len(spans)} sentence breaks)"
                    )
                out.questions.append(_Question(qid, text, para_pos, hit))
    return out


@dataclass
class _Loaded:
    languages: list[str]
    files: list[_LangFile]


def _load(files: Mapping[str, Path | str], name: str,
          languages: Sequence[str] | str | None) -> _Loaded:
    by_code = {str(k).strip().lower(): Path(v) for k, v in files.items()}
    codes = parse_languages(list(by_code)) or []  # validates the file keys as language codes
    wanted = parse_languages(languages)
    selected = select_languages(codes, wanted, source=name)
    parsed = [_parse_file(lang, by_code[lang]) for lang in selected]
    if not any(f.questions for f in parsed):
        raise EmptySelectionError(f"{name}: no question in language(s) {', '.join(selected)}")
    return _Loaded(selected, parsed)


def _duplicate_counts(parsed: list[_LangFile], candidates: list[Candidate],
                      answers: Mapping[str, set[str]]) -> dict[str, Any]:
    """Count repeated sentence strings in the pool, and identical copies of answer sentences."""
    pool = Counter(c.text for c in candidates)
    within = {}
    for f in parsed:
        counts = Counter(s for p in f.paragraphs for s in p.sentences)
        within[f.lang] = sum(n - 1 for n in counts.values() if n > 1)
    by_text: dict[str, list[str]] = {}
    for c in candidates:
        if pool[c.text] > 1:
            by_text.setdefault(c.text, []).append(c.id)
    text_of = {c.id: c.text for c in candidates}
    twins, pairs_hit = 0, 0
    for ids in answers.values():
        extra = {o for i in ids for o in by_text.get(text_of[i], ()) if o not in ids}
        twins += len(extra)
        pairs_hit += bool(extra)
    extra_total = sum(n - 1 for n in pool.values() if n > 1)
    return {
        "pool_extra_copies": extra_total,
        "repeated_texts": sum(1 for n in pool.values() if n > 1),
        "within_language_extra_copies": within,
        "cross_language_extra_copies": extra_total - sum(within.values()),
        # per pair id: non-relevant candidates whose text equals one of its relevant sentences
        "nonrelevant_copies_of_answers": twins,
        "pair_ids_with_nonrelevant_copies": pairs_hit,
    }


def load_lareqa_task(files: Mapping[str, Path | str], name: str,
                     languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """Build the LAReQA retrieval task (queries, multilingual sentence pool, relevance).

    ``files`` maps language code -> ``{lang}.json``; ``languages`` selects a subset (None = all).
    The rules (relevance, break repair, duplicates) are in the module docstring.
    """
    loaded = _load(files, name, languages)
    queries: list[Query] = []
    candidates: list[Candidate] = []
    answers: dict[str, set[str]] = {}
    answer_copies = 0
    for f in loaded.files:
        lang = f.lang
        for para in f.paragraphs:
            group = para.group(lang)
            for s_idx, sent in enumerate(para.sentences):
                candidates.append(Candidate(
                    id=f"{group}:{s_idx}", language=lang, text=sent,
                    context=para.context, group=group,
                ))
        for q in f.questions:
            para = f.paragraphs[q.paragraph]
            group = para.group(lang)
            queries.append(Query(id=f"{lang}:{q.qid}", language=lang, text=q.text, pair_id=q.qid))
            target = para.sentences[q.sentence]
            hits = answers.setdefault(q.qid, set())
            for s_idx, sent in enumerate(para.sentences):
                if s_idx == q.sentence or sent == target:
                    hits.add(f"{group}:{s_idx}")
                    answer_copies += s_idx != q.sentence
    relevant = {q.id: frozenset(answers[q.pair_id]) for q in queries}
    repairs = [r for f in loaded.files for r in f.repairs]
    notes: dict[str, object] = {
        "format": "lareqa",
        "files": {f.lang: str(f.path) for f in loaded.files},
        "languages": loaded.languages,
        "break_repairs": repairs,
        "duplicates": _duplicate_counts(loaded.files, candidates, answers),
        "answer_copies_in_paragraph": answer_copies,
    }
    return RetrievalTask(name=name, queries=queries, candidates=candidates, relevant=relevant,
                         notes=notes)


def load_lareqa_corpus(files: Mapping[str, Path | str], name: str,
                       languages: Sequence[str] | str | None = None) -> ParallelQACorpus:
    """The same files as a parallel QA corpus: pair id -> language -> (question, answer sentence).

    Pairs come in first-seen order (languages in selection order); a pair holds only the languages
    in which its question exists (2-4 on MLQA-R). Each entry's hard negatives are the other sentences
    of the answer's paragraph, nearest to the answer first (LAReQA's pools are full of them; training
    uses the first ``optim.hard_negatives``).
    """
    loaded = _load(files, name, languages)
    entries: dict[str, dict[str, QAEntry]] = {}
    for f in loaded.files:
        for q in f.questions:
            para = f.paragraphs[q.paragraph]
            positive = para.sentences[q.sentence]
            others = sorted((i for i in range(len(para.sentences)) if i != q.sentence),
                            key=lambda i: (abs(i - q.sentence), i))
            negatives = tuple(dict.fromkeys(para.sentences[i] for i in others if para.sentences[i] != positive))
            entries.setdefault(q.qid, {})[f.lang] = QAEntry(
                query=q.text, positive=positive, context=para.context, negatives=negatives,
            )
    pairs = [ParallelPair(pair_id=pid, entries=ents) for pid, ents in entries.items()]
    return ParallelQACorpus(name=name, pairs=pairs)
