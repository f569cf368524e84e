"""AfriQA (``afriqa``): questions in African languages, gold passages in English or French Wikipedia.

Files (``<data_dir>/afriqa/data/``), test split, per language ``<x>`` with pivot ``<p>`` (fr for fon,
en otherwise): ``queries/<x>/queries.afriqa.<x>.<p>.test.json`` (records ``id``, ``question``,
``translated_question``, ...) and ``gold_passages/<x>/gold_span_passages.afriqa.<x>.<p>.test.json``
(records ``id``, ``context``, ``title``, ...), both JSON Lines, joined by ``id`` (an integer in the
queries, a string in the passages). Wolof has no gold passages and is not offered.

* ``afriqa``: every question that has a gold passage is a query (language ``x``, text ``question``);
  the pool is the gold passages of every selected language, one candidate per distinct
  (pivot, passage text) (questions sharing a passage share the candidate); relevant = its passage.
  Mo. is undefined (no passage in the question's language); Cr. is X -> en (fr for fon); Mul. ranks
  the whole en + fr pool.
* ``afriqa-pivot``: the same queries, pool and relevance, with the human pivot translation
  (``translated_question``) as query text: the reference row of a perfect translate-the-query system.
  Queries keep the question's language label and id, so every figure (Cr. X -> en, Mul., per language)
  lines up with ``afriqa`` and the per-query values of the two runs pair by query id.

Ids: query ``afriqa:<x>:<id>`` (``pair_id`` = ``<x>:<id>``); passage ``afriqa:<p>:<x>:<id>`` after the
first question holding it, whose id is also the passage's ``group`` (its document). A gold record with
an empty or null ``context`` (1 in bem, 2 in kin, 1 in yor) leaves its question without a passage
(``notes["empty_passages"]``); questions without gold passages are counted in
``notes["questions_without_passage"]``. Queries go round-robin over the languages (so ``--max-pairs``
keeps every language). Malformed records, repeated ids and passages whose id has no
question are errors naming file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from polyir.data.parallel import interleave
from polyir.data.records import json_lines, text_field
from polyir.data.types import Candidate, ParallelPair, ParallelQACorpus, QAEntry, Query, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError, UnknownLanguageError
from polyir.languages import canonical_code, parse_languages, select_languages

ID_PREFIX = "afriqa:"
QUERIES, GOLD = "queries", "gold"
_NAME = re.compile(r"(?:queries|gold_span_passages)\.afriqa\.(?P<x>[a-z]{2,3})\.(?P<pivot>[a-z]{2,3})\.(?P<split>\w+)\.json")


def pivot_of(path: Path | str) -> str:
    """The pivot language in an AfriQA file name (``queries.afriqa.fon.fr.test.json`` -> ``fr``)."""
    m = _NAME.fullmatch(Path(path).name)
    if m is None:
        raise DataFormatError(f"{path}: not an AfriQA file name (queries.afriqa.<lang>.<pivot>.<split>.json)")
    return canonical_code(m["pivot"])


def _record_id(record: Mapping[str, object], where: str) -> str:
    rid = record.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (int, str)) or not str(rid).strip():
        raise DataFormatError(f"{where}: 'id' should be an integer or a non-empty string, got {rid!r}")
    return str(rid)


def read_questions(path: Path | str, empty: list[str] | None = None) -> dict[str, tuple[int, str, str]]:
    """id -> (line, question, translated question) of a queries file. An empty question or translation
    is an error, unless ``empty`` is given: then its id is appended there and the record left out."""
    out: dict[str, tuple[int, str, str]] = {}
    for line, record in json_lines(path):
        where = f"{path}: line {line}"
        rid = _record_id(record, where)
        if rid in out:
            raise DataFormatError(f"{where}: id {rid!r} repeated (first on line {out[rid][0]})")
        if empty is not None and any(isinstance(record.get(k), str) and not record[k].strip()
                                     for k in ("question", "translated_question")):
            empty.append(rid)
            continue
        out[rid] = (line, text_field(record, "question", where), text_field(record, "translated_question", where))
    return out


def read_passages(path: Path | str, questions: Mapping[str, object]) -> tuple[dict[str, str], list[str]]:
    """(id -> gold passage text, ids whose passage is empty) of a gold-passages file."""
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    empty: list[str] = []
    for line, record in json_lines(path):
        where = f"{path}: line {line}"
        rid = _record_id(record, where)
        if rid in first:
            raise DataFormatError(f"{where}: id {rid!r} repeated (first on line {first[rid]})")
        first[rid] = line
        if rid not in questions:
            raise DataFormatError(f"{where}: gold passage for id {rid!r}, which has no question in the queries file")
        if "context" not in record:
            raise DataFormatError(f"{where}: missing 'context'")
        context = record["context"]
        if context is not None and not isinstance(context, str):
            raise DataFormatError(f"{where}: 'context' should be a string, got {type(context).__name__}")
        if context and context.strip():
            out[rid] = context
        else:
            empty.append(rid)
    return out, empty


def _load(files: Mapping[str, Mapping[str, Path | str]], name: str,
          languages: Sequence[str] | str | None, query_field: int) -> RetrievalTask:
    if not files:
        raise DatasetNotFoundError(f"{name}: no file given")
    wanted = parse_languages(languages)
    pivots_named = [c for c in (wanted or []) if c in ("en", "fr") and c not in files]
    selected = select_languages(files, [c for c in wanted if c not in pivots_named] if wanted else None, source=name)
    if not selected:
        raise EmptySelectionError(f"{name}: name at least one question language ({', '.join(sorted(files))})")
    per_language: list[list[Query]] = []
    candidates: dict[tuple[str, str], Candidate] = {}
    relevant: dict[str, frozenset[str]] = {}
    pivots: dict[str, str] = {}
    without: dict[str, int] = {}
    empty: dict[str, list[str]] = {}
    for lang in selected:
        roles = files[lang]
        missing = [r for r in (QUERIES, GOLD) if r not in roles]
        if missing:
            raise DatasetNotFoundError(f"{name}: no {' or '.join(missing)} file for {lang}")
        pivot = pivots[lang] = pivot_of(roles[QUERIES])
        if pivot_of(roles[GOLD]) != pivot:
            raise DataFormatError(f"{roles[GOLD]}: pivot {pivot_of(roles[GOLD])}, but the queries file has {pivot}")
        questions = read_questions(roles[QUERIES])
        passages, empty[lang] = read_passages(roles[GOLD], questions)
        without[lang] = len(questions) - len(passages)
        queries: list[Query] = []
        per_language.append(queries)
        for rid, (_, question, translated) in questions.items():
            if rid not in passages:
                continue
            key = (pivot, passages[rid])
            if key not in candidates:
                cid = f"{ID_PREFIX}{pivot}:{lang}:{rid}"
                candidates[key] = Candidate(id=cid, language=pivot, text=passages[rid], group=cid)
            qid = f"{ID_PREFIX}{lang}:{rid}"
            queries.append(Query(id=qid, language=lang, text=(question, translated)[query_field], pair_id=f"{lang}:{rid}"))
            relevant[qid] = frozenset({candidates[key].id})
    stray = [p for p in pivots_named if p not in pivots.values()]
    if stray:
        raise UnknownLanguageError(f"{name}: {', '.join(stray)} is no pivot of {', '.join(selected)}")
    queries = interleave(per_language)
    if not queries:
        raise EmptySelectionError(f"{name}: no question of {', '.join(selected)} has a gold passage")
    notes: dict[str, object] = {
        "format": "afriqa", "split": "test", "languages": selected, "pivots": pivots,
        "query_text": ("question", "translated_question (human pivot translation)")[query_field],
        "files": {lang: {r: str(p) for r, p in files[lang].items()} for lang in selected},
        "questions_without_passage": without, "empty_passages": {k: v for k, v in empty.items() if v},
        "distinct_passages": len(candidates),
    }
    return RetrievalTask(name=name, queries=queries, candidates=list(candidates.values()),
                         relevant=relevant, notes=notes)


def load_afriqa(files: Mapping[str, Mapping[str, Path | str]], name: str,
                languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """``afriqa``: an African-language question retrieves its en/fr gold passage."""
    return _load(files, name, languages, 0)


def load_afriqa_pivot(files: Mapping[str, Mapping[str, Path | str]], name: str,
                      languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """``afriqa-pivot``: the human pivot translation of each question retrieves the same passage."""
    return _load(files, name, languages, 1)


def load_afriqa_training(files: Mapping[str, Mapping[str, Path | str]], name: str,
                         languages: Sequence[str] | str | None = None) -> ParallelQACorpus:
    """``afriqa-train`` / ``afriqa-dev`` as a training corpus: one pair per question with a gold passage,
    ``pair_id`` ``<x>:<split>:<id>``, entries ``x`` (the African-language question) and its pivot (the
    human en/fr translation), both with the gold pivot-language passage as positive (so the ``x``
    entry is cross-lingual: its positive is not in ``x``). ``languages`` selects question languages
    (the registry resolves only their files); every pair keeps its pivot entry."""
    if not files:
        raise DatasetNotFoundError(f"{name}: no file given")
    per_language: list[list[ParallelPair]] = []
    for lang in sorted(files):
        roles = files[lang]
        missing = [r for r in (QUERIES, GOLD) if r not in roles]
        if missing:
            raise DatasetNotFoundError(f"{name}: no {' or '.join(missing)} file for {lang}")
        pivot = pivot_of(roles[QUERIES])
        split = _NAME.fullmatch(Path(roles[QUERIES]).name)["split"]  # type: ignore[index]
        blank: list[str] = []  # training tolerates (and leaves out) a blank question, e.g. twi dev line 109
        questions = read_questions(roles[QUERIES], blank)
        passages, _ = read_passages(roles[GOLD], {**questions, **dict.fromkeys(blank)})
        pairs = []
        for rid, (_, question, translated) in questions.items():
            if rid in passages:
                entries = {lang: QAEntry(query=question, positive=passages[rid]),
                           pivot: QAEntry(query=translated, positive=passages[rid])}
                pairs.append(ParallelPair(pair_id=f"{lang}:{split}:{rid}", entries=entries))
        per_language.append(pairs)
    pairs = interleave(per_language)
    if not pairs:
        raise EmptySelectionError(f"{name}: no question of {', '.join(sorted(files))} has a gold passage")
    return ParallelQACorpus(name=name, pairs=pairs)
