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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from polyir.data.parallel import build_sentence_task, read_text_lines
from polyir.data.types import Candidate, Query, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError
from polyir.languages import parse_languages, select_languages

REPOSITORY = "MicrosoftTranslator/NTREX"
COMMIT = "8561f6a622db9edad1217683e5c83daefd8bb2bf"
FOLDER = "ntrex-128"
DOCUMENT_IDS = "DOCUMENT_IDS.tsv"
LICENSE = "CC BY-SA 4.0"
ID_PREFIX = "ntrex:"

#: language -> (path in the source repository, sha256, bytes); the local name is the file name.
LANGUAGE_FILES: dict[str, tuple[str, str, int]] = {
    "ar": ("NTREX-128/newstest2019-ref.arb.txt",
           "d271c8645933421f760eba8ed8cc1ceaaa052f917d9c2839b8abb27e0ded71e6", 423901),
    "de": ("NTREX-128/newstest2019-ref.deu.txt",
           "259d7406a07b63e6b5b9c4a22fb76b85e2578a3fa0a4e541a50f4f7348e5c1b2", 306436),
    "el": ("NTREX-128/newstest2019-ref.ell.txt",
           "cd9c8eda1b54f4b504b33769db7e56e26ba9ae768a64e13e0eef02a9ee9867fc", 544996),
    "en": ("NTREX-128/newstest2019-src.eng.txt",
           "389e8f5796c66db4f646dfad33e1ec622d74767af5ef112b42a1f2cd814df3cc", 251739),
    "es": ("NTREX-128/newstest2019-ref.spa.txt",
           "0ad8129e5ce0bea86ba7e0ea0db0504d6626b8a4d2a7cf4c44b7791c70e99b84", 299333),
    "hi": ("NTREX-128/newstest2019-ref.hin.txt",
           "10d612b3960dc1f90d297aff7e3c6d39e6eb7221b912cef0c053d9f510e41bbc", 674699),
    "ru": ("NTREX-128/newstest2019-ref.rus.txt",
           "a7e3601298b0368659a5c006c52809cf6792e02eb94bde9b9693333278d85732", 505414),
    "th": ("NTREX-128/newstest2019-ref.tha.txt",
           "45a57c4f9fdbae282eb2c94821535ae3c88b09186a23c5506eb0907ba429d6a5", 658582),
    "tr": ("NTREX-128/newstest2019-ref.tur.txt",
           "bd0c3978cb7d283ee5f8834d90a32fe2ffd0c71e4b133c677cff259d07a70ea9", 293653),
    "vi": ("NTREX-128/newstest2019-ref.vie.txt",
           "dd5d16cf246da57f5ccb7490ae13b8df428e7cb53e17fa04552406d657abfe3c", 359879),
    "zh": ("NTREX-128/newstest2019-ref.zho-CN.txt",
           "8bcd6f0868d33f26c8da12f55a82f66088a7b60a5f7b0b1a99dcec51daa8054a", 241603),
}

#: Files that hold no language (the repository root): path -> (sha256, bytes).
SHARED_FILES: dict[str, tuple[str, int]] = {
    DOCUMENT_IDS: ("88a8b0ff1eae47e83f60dcde01075b8c87d75ced59ca09e0af1eb539958e05d5", 30754),
    "LANGUAGES.tsv": ("06b295e71976aa7adfef358d7c24a91b61212ca7aafb244c199619661f808158", 1862),
    "LICENSE.md": ("5e436ff8ffbb77d8607220e9bce20c8915d860010feeb6c1ebef5a85688e9b39", 20137),
}


def source_url(repo_path: str) -> str:
    """Public raw URL of a file of the pinned NTREX commit."""
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{repo_path}"


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
        "document_ids": str(ids_path),
        "documents": len(set(doc_ids)),
    }
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
