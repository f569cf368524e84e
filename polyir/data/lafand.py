"""MAFAND-MT (``lafand-mt``): human-translated news between en/fr and 21 African languages, as two tasks.

Files (``<data_dir>/lafand-mt/data/``), test split only:

* ``json_files/<pivot>-<x>/test.json``: JSON Lines ``{"translation": {"en": "...", "hau": "..."}}``,
  one sentence pair per line (21 pairs: en-{amh, hau, ibo, kin, lug, luo, nya, pcm, sna, swa, tsn, twi,
  xho, yor, zul}, fr-{bam, bbj, ewe, fon, mos, wol});
* ``doc_level_tsv/<pivot3>-<x>/test.tsv`` (10 pairs): a header naming the two languages (codes or
  English names: ``eng<TAB>hau``, ``english<TAB>yoruba``), then one pair per line; a blank line (or one
  holding only a tab) ends a document, whose first line is its headline.

Every pair has its own sentences (the English side of en-hau is not that of en-ibo), so a task holds
**one pair**: the selection names its African language (``--languages en,ha`` or ``ha``).

* ``lafand-sentences``: every sentence of both sides is a query and the pool is both sides of the pair
  (``build_sentence_task``: relevant = its translation, own sentence excluded, Mo. undefined). Repeated
  pairs are merged (``merge_identical``): a sentence repeated in the file has all its translations
  relevant. Ids ``lafand:<lang>:<record>`` (1-based record number); ``group`` = ``line:<first record>``.
* ``lafand-documents``: each headline (both languages) finds the non-headline lines of its document in
  both languages (own language included, so Mo. is defined); the pool is every non-headline line of both
  sides. Ids ``lafand:<lang>:<line>`` (1-based line of the TSV); ``pair_id`` and ``group`` are the
  document id ``<pivot>-<x>:<k>`` (k-th document). A document holding only a headline is dropped
  (``notes["dropped_documents"]``); a body line with one side empty (3 in eng-hau) keeps its other side
  (``notes["empty_sides"]``); an empty headline is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import langcodes

from polyir.data.parallel import build_sentence_task
from polyir.data.records import json_lines, read_utf8
from polyir.data.types import Candidate, Query, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError, UnknownLanguageError
from polyir.languages import canonical_code, is_language_code, language_name, parse_languages

PIVOTS = ("en", "fr")
ID_PREFIX = "lafand:"


def pair_language(files: Mapping[str, Path | str], name: str, languages: Sequence[str] | str | None) -> str:
    """The African language of the one pair a task holds; pivots named in ``languages`` are allowed."""
    wanted = parse_languages(languages)
    chosen = [c for c in (wanted if wanted is not None else files) if c not in PIVOTS]
    if len(chosen) != 1:
        got = ", ".join(chosen) or "none"
        raise EmptySelectionError(
            f"{name}: a task holds one pair (each pair has its own en/fr sentences); got {got}:"
            f" choose one of {', '.join(sorted(files))}, e.g. --languages en,{sorted(files)[0]}"
        )
    lang = chosen[0]
    if lang not in files:
        raise UnknownLanguageError(f"{name}: no pair with {lang}; available: {', '.join(sorted(files))}")
    return lang


def _check_pivot(name: str, pivot: str, lang: str, languages: Sequence[str] | str | None) -> None:
    named = [c for c in (parse_languages(languages) or []) if c in PIVOTS and c != pivot]
    if named:
        raise UnknownLanguageError(f"{name}: {lang} is paired with {pivot}, not {', '.join(named)}")


# --------------------------------------------------------------------------- sentences (JSON Lines)


def read_sentence_pairs(path: Path | str, lang: str | None = None) -> tuple[str, str, list[str], list[str]]:
    """(pivot, x, pivot sentences, x sentences) of a ``json_files`` test file (module docstring)."""
    records = json_lines(path)
    pair: tuple[str, str] | None = None
    keys: tuple[str, str] | None = None
    sides: tuple[list[str], list[str]] = ([], [])
    for line, record in records:
        where = f"{path}: line {line}"
        trans = record.get("translation")
        if set(record) != {"translation"} or not isinstance(trans, dict) or len(trans) != 2:
            raise DataFormatError(f'{where}: expected {{"translation": {{"<pivot>": "...", "<x>": "..."}}}}')
        if keys is None:
            keys, pair = _pair_of_keys(tuple(trans), where)
        elif set(trans) != set(keys):
            raise DataFormatError(f"{where}: languages {', '.join(trans)}, but line {records[0][0]} has {', '.join(keys)}")
        for side, key in zip(sides, keys):
            text = trans[key]
            if not isinstance(text, str) or not text.strip():
                raise DataFormatError(f"{where}: empty {key} sentence")
            side.append(text)
    assert pair is not None
    if lang is not None and pair[1] != lang:
        raise DataFormatError(f"{path}: holds {'-'.join(pair)}, expected the pair of {lang}")
    return pair[0], pair[1], sides[0], sides[1]


def _pair_of_keys(keys: tuple[str, ...], where: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """(keys ordered pivot first, (pivot, x) canonical) of a record's two language keys."""
    codes = []
    for k in keys:
        if not is_language_code(k):
            raise DataFormatError(f"{where}: {k!r} is not a language code")
        codes.append(canonical_code(k))
    pivots = [i for i, c in enumerate(codes) if c in PIVOTS]
    if len(pivots) != 1:
        raise DataFormatError(f"{where}: expected one of {', '.join(PIVOTS)} and an African language, got {', '.join(keys)}")
    p = pivots[0]
    return (keys[p], keys[1 - p]), (codes[p], codes[1 - p])


def load_lafand_sentences(files: Mapping[str, Path | str], name: str,
                          languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """``lafand-sentences``: each sentence of one pair retrieves its translation (module docstring)."""
    if not files:
        raise DatasetNotFoundError(f"{name}: no file given")
    lang = pair_language(files, name, languages)
    pivot, x, left, right = read_sentence_pairs(files[lang], lang)
    _check_pivot(name, pivot, lang, languages)
    notes: dict[str, object] = {"format": "lafand-json", "pair": f"{pivot}-{x}", "file": str(files[lang])}
    return build_sentence_task(name, {pivot: left, x: right}, id_prefix=ID_PREFIX, notes=notes,
                               merge_identical=True)


# --------------------------------------------------------------------------- documents (TSV)


def _header_language(field: str) -> str | None:
    """A header field as a canonical code: a code (``eng``) or an English name (``english``)."""
    if is_language_code(field):
        return canonical_code(field)
    try:
        found = canonical_code(langcodes.find(field).to_tag())
    except (LookupError, UnknownLanguageError):
        return None
    return found if language_name(found).lower() == field.lower() else None


def read_documents(path: Path | str) -> tuple[tuple[str, str], list[list[tuple[int, str, str]]]]:
    """((pivot, x), documents); a document is its lines as (line number, pivot text, x text)."""
    lines = read_utf8(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if not lines:
        raise DataFormatError(f"{path}: the file is empty (expected a header such as eng<TAB>hau)")
    head = lines[0].split("\t")
    codes = [_header_language(h.strip()) for h in head]
    if len(head) != 2 or None in codes or sum(c in PIVOTS for c in codes) != 1 or codes[0] not in PIVOTS:
        raise DataFormatError(
            f"{path}: line 1: expected a header naming the pivot (en/fr) and the African language,"
            f" e.g. eng<TAB>hau; got {lines[0]!r}"
        )
    docs: list[list[tuple[int, str, str]]] = [[]]
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            if docs[-1]:
                docs.append([])
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataFormatError(
                f"{path}: line {i}: expected 2 tab-separated fields ({head[0]}, {head[1]}), got {len(fields)}"
            )
        docs[-1].append((i, fields[0].strip(), fields[1].strip()))
    docs = [d for d in docs if d]
    if not docs:
        raise DataFormatError(f"{path}: a header but no sentence")
    for d in docs:
        i, a, b = d[0]
        for text, side in ((a, head[0]), (b, head[1])):
            if not text:
                raise DataFormatError(f"{path}: line {i}: empty {side} headline (the first line of a document)")
    return (str(codes[0]), str(codes[1])), docs


def load_lafand_documents(files: Mapping[str, Path | str], name: str,
                          languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """``lafand-documents``: each headline retrieves the rest of its document in both languages."""
    if not files:
        raise DatasetNotFoundError(f"{name}: no file given")
    lang = pair_language(files, name, languages)
    (pivot, x), docs = read_documents(files[lang])
    if x != lang:
        raise DataFormatError(f"{files[lang]}: holds {pivot}-{x}, expected the pair of {lang}")
    _check_pivot(name, pivot, lang, languages)

    def item(code: str, line: int) -> str:
        return f"{ID_PREFIX}{code}:{line}"

    queries: list[Query] = []
    candidates: list[Candidate] = []
    relevant: dict[str, frozenset[str]] = {}
    dropped: list[str] = []
    empty_sides: list[dict[str, object]] = []
    for k, doc in enumerate(docs, start=1):
        doc_id = f"{pivot}-{x}:{k}"
        body: list[Candidate] = []
        for line, a, b in doc[1:]:
            for code, text in ((pivot, a), (x, b)):
                if text:
                    body.append(Candidate(id=item(code, line), language=code, text=text, group=doc_id))
                else:
                    empty_sides.append({"line": line, "language": code})
        if not body:
            dropped.append(doc_id)
            continue
        candidates.extend(body)
        ids = frozenset(c.id for c in body)
        line, a, b = doc[0]
        for code, text in ((pivot, a), (x, b)):
            queries.append(Query(id=item(code, line), language=code, text=text, pair_id=doc_id))
            relevant[queries[-1].id] = ids
    if not queries:
        raise EmptySelectionError(f"{name}: every document holds only a headline; nothing to retrieve")
    notes: dict[str, object] = {
        "format": "lafand-tsv", "task": "documents", "pair": f"{pivot}-{x}", "file": str(files[lang]),
        "languages": [pivot, x], "documents": len(docs), "documents_used": len(docs) - len(dropped),
        "dropped_documents": dropped, "empty_sides": empty_sides,
    }
    return RetrievalTask(name=name, queries=queries, candidates=candidates, relevant=relevant, notes=notes)
