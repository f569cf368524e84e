"""NTREX-128 (news, 1,997 sentences in 123 documents, line-aligned across languages) as two tasks.

Files (``<data_dir>/ntrex-128/``): ``newstest2019-src.eng.txt``, ``newstest2019-ref.<code>.txt`` for the
other languages, and ``DOCUMENT_IDS.tsv`` (one document id per line, line i = the document of sentence
i). Rules (also in the README, "News domain (NTREX)"):

* Validation: every language file has as many lines as ``DOCUMENT_IDS.tsv``, no line is empty, and
  every document is one contiguous run of lines; otherwise ``DataFormatError`` naming file and line.
* ``ntrex-sentences``: every line i of every selected language X is a query (``pair_id`` = i); the
  pool is every line of every selected language; relevant = line i in the *other* selected languages.
  The query's own sentence is excluded from its ranking (``RetrievalTask.excluded``), and so is any
  other line of X holding the identical string (a few short sentences, e.g. "Die Lage ist sehr
  schlimm.", translate two different English lines). Mo. is undefined (no relevant candidate in X).
  Needs at least two languages.
* ``ntrex-documents``: the first line (headline) of each document in X is a query (``pair_id`` = the
  document id); the pool is every non-headline line of every selected language; relevant = the
  non-headline lines of the same document in every selected language, X included (so Mo. is
  defined). Documents holding only a headline are dropped (``notes["dropped_documents"]``).
* Ids: ``ntrex:<lang>:<line>`` (1-based line number) for queries and candidates; ``Candidate.group``
  is the document id (``polyir.data.split.split_by_document`` splits on it).
* Languages: every file of the source (``polyir/resources/sources.csv``), under its canonical code
  (``sna-Latn`` -> ``sn``, ``zho-TW`` -> ``zh-hant``); regional variants that share a code with another
  file are not served (``UNSERVED_TAGS``). With no language chosen a task holds ``DEFAULT_LANGUAGES``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import langcodes

from polyir.data import sources as _sources
from polyir.data.sources import sha256_of
from polyir.data.parallel import build_sentence_task, read_text_lines
from polyir.data.types import Candidate, Query, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError, UnknownLanguageError
from polyir.languages import canonical_code, parse_languages, select_languages

REPOSITORY = _sources.NTREX.repository
COMMIT = _sources.NTREX.commit
FOLDER = _sources.NTREX.folder
DOCUMENT_IDS = "DOCUMENT_IDS.tsv"
LICENSE = _sources.NTREX.license
ID_PREFIX = "ntrex:"
_TEXT_FILE = re.compile(r"newstest2019-(?:src|ref)\.(?P<tag>[A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)\.txt")

#: The languages of the first release (the 11 XQuAD-R ones): what a task holds when none are chosen.
DEFAULT_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")


def ntrex_tag(file_name: str) -> str:
    """The NTREX language tag in a text file's name (``newstest2019-ref.sna-Latn.txt`` -> ``sna-Latn``)."""
    m = _TEXT_FILE.fullmatch(Path(file_name).name)
    if m is None:
        raise DataFormatError(f"{file_name}: not an NTREX text file name (newstest2019-ref.<code>.txt)")
    return m["tag"]


def ntrex_language(tag: str) -> str:
    """Canonical code of an NTREX tag. NTREX writes Zurich German ``gsw-ZH`` (ZH is a canton, no region
    code): a tag that is invalid only by its region falls back to its language subtag."""
    try:
        return canonical_code(tag)
    except UnknownLanguageError:
        lang, _, region = tag.partition("-")
        if len(region) != 2:
            raise
        return canonical_code(lang)


def _served() -> tuple[dict[str, tuple[str, str, int | None]], dict[str, str], dict[str, list[str]]]:
    """(language -> (source path, sha256 or "", bytes), language -> NTREX tag, language -> tags not served).

    Every NTREX file whose tag has a canonical code of its own is served under it. Tags that share
    one (regional variants: eng-GB, eng-IN, eng-US, fra-CA, gsw-*, por-BR, prs = fa-AF, spa-MX) give
    one file: the English source for ``en``, else the tag without a region, else the first listed.
    """
    by_code: dict[str, list[tuple[str, _sources.SourceFile]]] = {}
    for path, row in _sources.source_files(_sources.NTREX).items():
        if not _TEXT_FILE.fullmatch(Path(path).name):
            continue
        tag = ntrex_tag(path)
        by_code.setdefault(ntrex_language(tag), []).append((tag, row))

    def rank(item: tuple[str, _sources.SourceFile]) -> int:
        tag, row = item
        if "-src." in row.path:
            return 0
        return 1 if langcodes.Language.get(tag).territory is None else 2

    files: dict[str, tuple[str, str, int | None]] = {}
    tags: dict[str, str] = {}
    unserved: dict[str, list[str]] = {}
    for code, items in by_code.items():
        best = min(items, key=rank)  # min is stable: the first listed among equals
        files[code] = (best[1].source_path, best[1].sha256, best[1].size)
        tags[code] = best[0]
        rest = [tag for tag, _ in items if tag != best[0]]
        if rest:
            unserved[code] = rest
    return dict(sorted(files.items())), tags, unserved


#: language -> (path in the source repository, sha256 ("" when not pinned), bytes); local name = file name.
#: All of NTREX-128 (one file per canonical code); the 23 languages copied to shared/data are pinned.
LANGUAGE_FILES, NTREX_TAGS, UNSERVED_TAGS = _served()

#: Files that hold no language (the repository root): path -> (sha256, bytes).
SHARED_FILES: dict[str, tuple[str, int]] = {
    name: (row.sha256, row.size or 0)
    for name in (DOCUMENT_IDS, "LANGUAGES.tsv", "LICENSE.md")
    for row in [_sources.source_file(_sources.NTREX, f"{FOLDER}/{name}")]
}


def source_url(repo_path: str) -> str:
    """Public raw URL of a file of the pinned NTREX commit."""
    return _sources.NTREX.url(repo_path)


def read_document_ids(path: Path | str) -> list[str]:
    """``DOCUMENT_IDS.tsv``: one document id per line (no empty line, no second column)."""
    ids = read_text_lines(path)
    for i, doc in enumerate(ids, start=1):
        if "\t" in doc or doc != doc.strip():
            raise DataFormatError(f"{path}: line {i}: expected one document id per line, got {doc!r}")
    return ids


def document_spans(doc_ids: Sequence[str], where: str = DOCUMENT_IDS) -> list[tuple[str, int, int]]:
    """(document id, first line index, end line index) per document, in file order.

    Documents must be contiguous runs of lines; a document id that comes back after another one is a
    ``DataFormatError`` naming both line numbers.
    """
    spans: list[tuple[str, int, int]] = []
    first_line: dict[str, int] = {}
    for i, doc in enumerate(doc_ids):
        if spans and spans[-1][0] == doc:
            spans[-1] = (doc, spans[-1][1], i + 1)
            continue
        if doc in first_line:
            raise DataFormatError(
                f"{where}: line {i + 1}: document {doc!r} resumes after another document (it started on"
                f" line {first_line[doc] + 1}); documents must be contiguous runs of lines"
            )
        first_line[doc] = i
        spans.append((doc, i, i + 1))
    return spans


def _document_ids_path(files: Mapping[str, Path | str], shared: Mapping[str, Path | str] | None) -> Path:
    if shared and DOCUMENT_IDS in shared:
        return Path(shared[DOCUMENT_IDS])
    beside = Path(next(iter(files.values()))).parent / DOCUMENT_IDS
    if not beside.is_file():
        raise DatasetNotFoundError(f"{beside}: not found; NTREX needs {DOCUMENT_IDS} beside the text files")
    return beside


def read_ntrex(
    files: Mapping[str, Path | str],
    name: str,
    languages: Sequence[str] | str | None = None,
    shared: Mapping[str, Path | str] | None = None,
) -> tuple[dict[str, list[str]], list[str], dict[str, object]]:
    """Validated (language -> lines, document id per line, notes) for the selected languages."""
    if not files:
        raise DatasetNotFoundError(f"{name}: no language file given")
    selected = select_languages(files, parse_languages(languages), source=name)
    ids_path = _document_ids_path(files, shared)
    doc_ids = read_document_ids(ids_path)
    document_spans(doc_ids, str(ids_path))
    texts: dict[str, list[str]] = {}
    for lang in selected:
        path = Path(files[lang])
        lines = read_text_lines(path)
        if len(lines) != len(doc_ids):
            raise DataFormatError(
                f"{path}: {len(lines)} lines, but {ids_path} has {len(doc_ids)}; the files must be"
                " line-aligned (line i = sentence i in every language)"
            )
        texts[lang] = lines
    notes: dict[str, object] = {
        "format": "ntrex",
        "files": {lang: str(files[lang]) for lang in selected},
        "ntrex_codes": {lang: NTREX_TAGS.get(lang, lang) for lang in selected},
        "document_ids": str(ids_path),
        "documents": len(set(doc_ids)),
    }
    unpinned = {lang: sha256_of(files[lang]) for lang in selected if lang in LANGUAGE_FILES
                and not LANGUAGE_FILES[lang][1]}
    if unpinned:  # files polyir has no checksum for: record what was read
        notes["unpinned_files"] = unpinned
    return texts, doc_ids, notes


def load_ntrex_sentences(
    files: Mapping[str, Path | str],
    name: str,
    languages: Sequence[str] | str | None = None,
    *,
    shared: Mapping[str, Path | str] | None = None,
) -> RetrievalTask:
    """``ntrex-sentences``: each sentence retrieves its translations in the other languages."""
    texts, doc_ids, notes = read_ntrex(files, name, languages, shared)
    return build_sentence_task(name, texts, documents=doc_ids, id_prefix=ID_PREFIX, notes=notes)


def load_ntrex_documents(
    files: Mapping[str, Path | str],
    name: str,
    languages: Sequence[str] | str | None = None,
    *,
    shared: Mapping[str, Path | str] | None = None,
) -> RetrievalTask:
    """``ntrex-documents``: each headline retrieves the rest of its document, in every language."""
    texts, doc_ids, notes = read_ntrex(files, name, languages, shared)
    spans = document_spans(doc_ids)
    kept = [(doc, a, z) for doc, a, z in spans if z - a >= 2]
    dropped = [doc for doc, a, z in spans if z - a < 2]
    if not kept:
        raise EmptySelectionError(f"{name}: every document holds only a headline; nothing to retrieve")

    def item_id(lang: str, i: int) -> str:
        return f"{ID_PREFIX}{lang}:{i + 1}"

    queries: list[Query] = []
    candidates: list[Candidate] = []
    for lang, lines in texts.items():
        for doc, a, z in kept:
            queries.append(Query(id=item_id(lang, a), language=lang, text=lines[a], pair_id=doc))
            candidates.extend(
                Candidate(id=item_id(lang, i), language=lang, text=lines[i], group=doc) for i in range(a + 1, z)
            )
    body = {doc: frozenset(item_id(lang, i) for lang in texts for i in range(a + 1, z)) for doc, a, z in kept}
    relevant = {q.id: body[q.pair_id] for q in queries}
    notes.update({
        "task": "documents",
        "languages": list(texts),
        "documents_used": len(kept),
        "dropped_documents": dropped,  # documents holding only a headline
    })
    return RetrievalTask(name=name, queries=queries, candidates=candidates, relevant=relevant, notes=notes)
