"""Any parallel corpus as a test set: line-aligned text files, or a parallel QA JSONL.

Two inputs, both turned into a ``RetrievalTask`` scored with the LAReQA measures:

* **Line-aligned text files**, one per language (a folder of them, or a list of files): line i of every
  file is the same sentence. The language comes from the file name: the last dot-separated part
  before the extension (``news.de.txt``, ``de.txt``; any standard form such as NTREX's ``deu``,
  ``sna-Latn`` or ``zho-CN`` is read as its canonical code, ``polyir.languages.canonical_code``). The task is built like ``ntrex-sentences`` (:func:`build_sentence_task`):
  every line of every language is a query, the pool is every line of every language, a query's
  relevant candidates are its line in the *other* languages, and its own sentence (plus any identical
  string in its own language) is excluded from its ranking.
* **Parallel QA JSONL** (``polyir.data.jsonl``): every (pair id, language) question is a query, the pool
  is every ``positive`` of every pair in every selected language, and a query's relevant candidates
  are the positives of its pair id in every selected language, its own language included (so Mo. is
  defined). ``negatives`` are not put in the pool (counted in ``notes["negatives_ignored"]``).

``polyir.data.load.load_task_or_path`` is what ``polyir evaluate --dataset`` calls: a registered name, else
a path read here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from polyir.data.jsonl import corpus_name, read_parallel_jsonl
from polyir.data.types import Candidate, Query, RetrievalTask
from polyir.data.records import read_utf8
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError, UnknownLanguageError
from polyir.languages import canonical_code, is_language_code, parse_languages, select_languages

T = TypeVar("T")
TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")


# --------------------------------------------------------------------------- reading text files


def read_text_lines(path: Path | str) -> list[str]:
    """The lines of a UTF-8 text file (``\\n`` or ``\\r\\n``; a BOM and a final newline are allowed).

    Only ``\\n`` separates lines (``str.splitlines`` would also split on U+2028 and friends and break
    the alignment). An empty or whitespace-only line is a ``DataFormatError`` naming file and line.
    """
    path = Path(path)
    text = read_utf8(path)
    if not text:
        raise DataFormatError(f"{path}: the file is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataFormatError(
                f"{path}: line {i} is empty; every line must hold a sentence (lines are aligned"
                " across languages, so a missing sentence cannot simply be dropped)"
            )
    return lines


def language_from_filename(path: Path | str) -> str:
    """``news.de.txt`` / ``de.txt`` / ``newstest2019-ref.deu.txt`` / ``x.sna-Latn.txt`` -> canonical code."""
    name = Path(path).name
    for suffix in TEXT_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    token = name.rsplit(".", 1)[-1].strip()
    if is_language_code(token):
        return canonical_code(token)
    raise UnknownLanguageError(
        f"{path}: cannot tell the language from the file name ({token.lower()!r} is not a known language"
        " code); name the files like news.de.txt or de.txt (ISO 639-1/639-3 codes or BCP-47 tags such"
        " as en, deu, sna-Latn)"
    )


def text_files_by_language(paths: Sequence[Path | str]) -> dict[str, Path]:
    """Language -> file, from folders (every ``*.txt`` in them) and/or files; a language given
    twice, a missing path or fewer than two languages are errors."""
    files: dict[str, Path] = {}
    for item in map(Path, paths):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.name.endswith(TEXT_SUFFIXES))
            if not found:
                raise DataFormatError(f"{item}: no .txt file in this folder (expected e.g. news.en.txt, news.de.txt)")
        elif item.is_file():
            found = [item]
        else:
            raise DatasetNotFoundError(f"{item}: no such file or folder")
        for p in found:
            lang = language_from_filename(p)
            if lang in files:
                raise DataFormatError(f"language {lang!r} given twice: {files[lang]} and {p}")
            files[lang] = p
    if len(files) < 2:
        raise EmptySelectionError(
            f"{', '.join(map(str, paths))}: a parallel test set needs files in at least two languages,"
            f" found {', '.join(sorted(files)) or 'none'}"
        )
    return dict(sorted(files.items()))


def read_aligned(files: Mapping[str, Path]) -> dict[str, list[str]]:
    """Read line-aligned files; all must have the same number of lines (the error names both)."""
    texts = {lang: read_text_lines(path) for lang, path in files.items()}
    first = next(iter(texts))
    for lang, lines in texts.items():
        if len(lines) != len(texts[first]):
            raise DataFormatError(
                f"{files[lang]} has {len(lines)} lines but {files[first]} has {len(texts[first])};"
                " line-aligned files must have the same number of lines"
            )
    return texts


# --------------------------------------------------------------------------- building tasks


def identical_clusters(texts: Mapping[str, Sequence[str]]) -> list[int]:
    """Per line, the first line of its cluster: lines are joined when some language holds the
    identical string on both (so a repeated source sentence and its translations form one cluster)."""
    n = len(next(iter(texts.values()))) if texts else 0
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for lines in texts.values():
        first: dict[str, int] = {}
        for i, text in enumerate(lines):
            j = first.setdefault(text, i)
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(n)]


def interleave(groups: Sequence[Sequence[T]]) -> list[T]:
    """Round-robin over the groups (first of each, then second of each, ...): a task whose pair ids
    differ between languages puts its queries in this order so that ``RetrievalTask.limit`` keeps
    every language."""
    out: list[T] = []
    for k in range(max((len(g) for g in groups), default=0)):
        out.extend(g[k] for g in groups if k < len(g))
    return out


def build_sentence_task(
    name: str,
    texts: Mapping[str, Sequence[str]],
    *,
    documents: Sequence[str] | None = None,
    id_prefix: str = "",
    notes: Mapping[str, object] | None = None,
    merge_identical: bool = False,
) -> RetrievalTask:
    """Sentence retrieval over line-aligned texts (language -> lines).

    Query and candidate ids are ``{prefix}{lang}:{line}`` (1-based line number), ``pair_id`` is the
    line number, ``group`` the line's document (``documents[i]``) or ``line:{n}`` without documents.
    Relevant: the same line in every other language. Excluded from a query's ranking: its own
    sentence and any other line of its language holding the identical string.

    ``merge_identical`` (for corpora with repeated sentence pairs, e.g. MAFAND-MT): lines joined by
    :func:`identical_clusters` count as one sentence: relevant = every line of the cluster in the
    other languages, excluded = every line of the cluster in the query's language, and without
    documents ``group`` is ``line:{first line of the cluster}`` (so a document split keeps a cluster whole).
    """
    langs = list(texts)
    if len(langs) < 2:
        raise EmptySelectionError(
            f"{name}: sentence retrieval needs at least two languages (a query's relevant sentences"
            f" are its translations); got {', '.join(langs) or 'none'}"
        )
    n = len(texts[langs[0]])
    if any(len(texts[lang]) != n for lang in langs) or (documents is not None and len(documents) != n):
        raise DataFormatError(f"{name}: the texts are not line-aligned (different numbers of lines)")
    if n == 0:
        raise EmptySelectionError(f"{name}: no lines")

    def cid(lang: str, i: int) -> str:
        return f"{id_prefix}{lang}:{i + 1}"

    cluster = identical_clusters(texts) if merge_identical else list(range(n))
    members: dict[int, list[int]] = {}
    for i, c in enumerate(cluster):
        members.setdefault(c, []).append(i)
    queries: list[Query] = []
    candidates: list[Candidate] = []
    relevant: dict[str, frozenset[str]] = {}
    excluded: dict[str, frozenset[str]] = {}
    duplicates: dict[str, int] = {}
    for lang in langs:
        lines_of: dict[str, list[int]] = {}
        for i, text in enumerate(texts[lang]):
            lines_of.setdefault(text, []).append(i)
        duplicates[lang] = sum(len(v) - 1 for v in lines_of.values())
        for i, text in enumerate(texts[lang]):
            group = documents[i] if documents is not None else f"line:{cluster[i] + 1}"
            candidates.append(Candidate(id=cid(lang, i), language=lang, text=text, group=group))
            qid = cid(lang, i)
            queries.append(Query(id=qid, language=lang, text=text, pair_id=str(i + 1)))
            same = members[cluster[i]]
            relevant[qid] = frozenset(cid(other, j) for other in langs if other != lang for j in same)
            excluded[qid] = frozenset(cid(lang, j) for j in {*lines_of[text], *same})
    task_notes: dict[str, object] = {
        **(notes or {}),
        "task": "sentences",
        "languages": langs,
        "lines": n,
        "same_language_duplicate_lines": duplicates,
        "queries_with_excluded_duplicates": sum(1 for v in excluded.values() if len(v) > 1),
    }
    if merge_identical:
        task_notes["merged_lines"] = sum(len(v) for v in members.values() if len(v) > 1)
    return RetrievalTask(name=name, queries=queries, candidates=candidates, relevant=relevant,
                         notes=task_notes, excluded=excluded)


def load_parallel_text_task(paths: Sequence[Path | str], languages: Sequence[str] | str | None = None,
                            name: str | None = None) -> RetrievalTask:
    """Sentence-retrieval task from line-aligned text files (folders and/or files)."""
    files = text_files_by_language(paths)
    wanted = parse_languages(languages)
    selected = select_languages(files, wanted, source=", ".join(map(str, paths)))
    files = {lang: files[lang] for lang in selected}
    texts = read_aligned(files)
    if name is None:
        first = Path(paths[0])
        name = first.name if len(paths) == 1 and first.is_dir() else "parallel"
    return build_sentence_task(name, texts, notes={
        "format": "parallel-text", "files": {lang: str(p) for lang, p in files.items()},
    })


def load_parallel_jsonl_task(path: Path | str, languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """LAReQA-style task from a parallel QA JSONL (rules in the module docstring)."""
    path = Path(path)
    corpus = read_parallel_jsonl(path, languages)
    queries: list[Query] = []
    candidates: list[Candidate] = []
    members: dict[str, list[str]] = {}
    negatives = 0
    for pair in corpus.pairs:
        for lang in pair.languages:
            e = pair.entries[lang]
            item_id = f"{lang}:{pair.pair_id}"
            queries.append(Query(id=item_id, language=lang, text=e.query, pair_id=pair.pair_id))
            candidates.append(Candidate(id=item_id, language=lang, text=e.positive,
                                        context=e.context or "", group=pair.pair_id))
            members.setdefault(pair.pair_id, []).append(item_id)
            negatives += len(e.negatives)
    relevant = {q.id: frozenset(members[q.pair_id]) for q in queries}
    copies = Counter((c.language, c.text) for c in candidates)
    notes: dict[str, object] = {
        "format": "parallel-jsonl",
        "file": str(path),
        "languages": corpus.languages,
        "pairs": len(corpus.pairs),
        "negatives_ignored": negatives,
        "same_language_duplicate_positives": sum(n - 1 for n in copies.values() if n > 1),
    }
    return RetrievalTask(name=corpus_name(path), queries=queries, candidates=candidates,
                         relevant=relevant, notes=notes)
