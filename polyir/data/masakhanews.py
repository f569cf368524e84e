"""MasakhaNEWS (``masakhane-news``): news headline -> its article, in 16 languages, as one task.

Files (``<data_dir>/masakhane-news/data/<code>/test.tsv``, ISO 639-3 folder names): TSV with the header
``category<TAB>headline<TAB>text<TAB>url``; quoted fields may span lines.

``masakhanews``: every headline of every selected language is a query; the pool is every article body
(``text``) of every selected language; a headline's relevant candidate is its own article. So Mo. is
the monolingual task (a headline against its language's articles), Cr. is undefined (no relevant
article in another language), and Mul. ranks the mixed pool of all selected languages, showing whether
other languages' articles crowd in. Rows repeating a headline or an article of their language (a few
in amh, eng, ibo) are one cluster: every article of the cluster is relevant to each of its headlines.
Ids ``masakhanews:<lang>:<row>`` (1-based data row) for the headline and the article of a row;
``Candidate.group`` (the document, for ``split_by_document``) is ``<lang>:<first row of the cluster>``.
Queries go round-robin over the languages (so ``--max-pairs`` keeps every language). A row with an
empty headline or text, or the wrong number of fields, is an error naming file and line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from polyir.data.parallel import identical_clusters, interleave
from polyir.data.records import text_field, tsv_records
from polyir.data.types import Candidate, Query, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError
from polyir.languages import parse_languages, select_languages

COLUMNS = ("category", "headline", "text", "url")
ID_PREFIX = "masakhanews:"


def read_articles(path: Path | str) -> list[tuple[int, str, str]]:
    """(line, headline, text) per row of a MasakhaNEWS TSV (errors name file and line)."""
    out = []
    for line, row in tsv_records(path, COLUMNS):
        where = f"{path}: line {line}"
        out.append((line, text_field(row, "headline", where, what="headline"),
                    text_field(row, "text", where, what="text (article body)")))
    if not out:
        raise DataFormatError(f"{path}: a header but no article")
    return out


def load_masakhanews(files: Mapping[str, Path | str], name: str,
                     languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """``masakhanews``: headlines retrieve their articles, per language and in a mixed pool."""
    if not files:
        raise DatasetNotFoundError(f"{name}: no file given")
    selected = select_languages(files, parse_languages(languages), source=name)
    per_language: list[list[Query]] = []
    candidates: list[Candidate] = []
    relevant: dict[str, frozenset[str]] = {}
    rows: dict[str, int] = {}
    merged: dict[str, int] = {}
    for lang in selected:
        articles = read_articles(files[lang])
        rows[lang] = len(articles)
        cluster = identical_clusters({"headline": [h for _, h, _ in articles], "text": [t for _, _, t in articles]})
        members: dict[int, list[int]] = {}
        for i, c in enumerate(cluster):
            members.setdefault(c, []).append(i)
        merged[lang] = sum(len(m) for m in members.values() if len(m) > 1)

        def item(i: int, lang: str = lang) -> str:
            return f"{ID_PREFIX}{lang}:{i + 1}"

        queries: list[Query] = []
        per_language.append(queries)
        for i, (_, headline, text) in enumerate(articles):
            group = f"{lang}:{cluster[i] + 1}"
            candidates.append(Candidate(id=item(i), language=lang, text=text, group=group))
            queries.append(Query(id=item(i), language=lang, text=headline, pair_id=group))
            relevant[item(i)] = frozenset(item(j) for j in members[cluster[i]])
    notes: dict[str, object] = {
        "format": "masakhanews", "files": {lang: str(files[lang]) for lang in selected},
        "languages": selected, "rows": rows, "merged_rows": merged,
    }
    return RetrievalTask(name=name, queries=interleave(per_language), candidates=candidates,
                         relevant=relevant, notes=notes)
