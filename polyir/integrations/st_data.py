"""polyir corpora as sentence-transformers training rows, and those rows back as a polyir corpus.

sentence-transformers trains on a ``datasets.Dataset`` whose rows are (anchor, positive[, negative...]);
its batch sampler can only choose rows. A cross-lingual batch needs rows whose anchor is in one language
and whose positive is in another, so the rows polyir's samplers draw from are *language-pair rows*: one
row per pair id, query language X and passage language Y, with

- the text columns (``anchor``: the question in X, ``positive``: its answer in Y, then hard negatives),
- ``query_language`` and ``passage_language`` (one ``language`` column is enough when every row has
  X == Y: monolingual training only),
- ``pair_id`` (translations of one QA instance share it: never twice in a batch),
- optionally a corpus column (pair ids of different corpora are unrelated; a batch comes from one).

:func:`corpus_to_rows` builds such a dataset from polyir corpora; :func:`rows_to_corpora` reads one back
as :class:`~polyir.data.types.ParallelQACorpus` objects plus the row of every (pair, X, Y), which is what
:mod:`polyir.integrations.st_sampler` hands to polyir's own :class:`~polyir.sampling.HybridBatchSampler`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DataFormatError, EmptySelectionError

__all__ = ["RowColumns", "RowIndex", "corpus_to_rows", "rows_to_corpora"]

DEFAULT_CORPUS = "train"


@dataclass(frozen=True)
class RowColumns:
    """Which dataset columns hold what (all names configurable).

    ``language`` is one column name (query and passage share it: monolingual rows) or a pair
    ``(query_language, passage_language)``. ``query``/``positive`` default to the first two columns that
    are not metadata (sentence-transformers' own convention: column order decides the roles).
    """

    language: str | tuple[str, str] = ("query_language", "passage_language")
    pair_id: str = "pair_id"
    corpus: str | None = None
    query: str | None = None
    positive: str | None = None

    @property
    def language_columns(self) -> tuple[str, str]:
        if isinstance(self.language, str):
            return self.language, self.language
        if len(self.language) != 2 or not all(isinstance(c, str) and c for c in self.language):
            raise ValueError(
                f"language columns must be one name or (query_language, passage_language), got {self.language!r}"
            )
        return self.language[0], self.language[1]

    @property
    def metadata(self) -> list[str]:
        """The columns the sampler reads and sentence-transformers must not see as texts."""
        cols = list(dict.fromkeys([*self.language_columns, self.pair_id]))
        return cols + ([self.corpus] if self.corpus else [])

    def text_columns(self, column_names: Sequence[str]) -> list[str]:
        """The dataset's text columns, in order (every column that is not metadata)."""
        meta = set(self.metadata)
        return [c for c in column_names if c not in meta]

    def roles(self, column_names: Sequence[str]) -> tuple[str, str]:
        """(query column, positive column), checked against the dataset's columns."""
        missing = [c for c in self.metadata if c not in column_names]
        if missing:
            raise DataFormatError(
                f"training dataset has no column(s) {', '.join(map(repr, missing))} (it has "
                f"{', '.join(map(repr, column_names))}); name them with language=/pair_id=/corpus_column=, "
                "or build the rows with polyir.integrations.corpus_to_rows"
            )
        texts = self.text_columns(column_names)
        query = self.query or (texts[0] if texts else None)
        positive = self.positive or (texts[1] if len(texts) > 1 else None)
        for role, col in (("query", query), ("positive", positive)):
            if col is None or col not in column_names:
                raise DataFormatError(
                    f"training dataset: no {role} column (text columns: {', '.join(map(repr, texts)) or 'none'}); "
                    f"give {role}=<column>"
                )
        return query, positive  # type: ignore[return-value]


@dataclass
class RowIndex:
    """The corpora read from a rows dataset, and which row holds each (corpus, pair id, X, Y)."""

    corpora: list[ParallelQACorpus]
    rows: dict[tuple[str, str, str, str], int]

    def row(self, corpus: str, pair_id: str, query_language: str, passage_language: str) -> int:
        key = (corpus, pair_id, query_language, passage_language)
        try:
            return self.rows[key]
        except KeyError:
            raise DataFormatError(
                f"training dataset has no row for pair id {pair_id!r} with query language "
                f"{query_language!r} and passage language {passage_language!r}"
                + (f" (corpus {corpus!r})" if corpus != DEFAULT_CORPUS else "")
                + "; build every language pair with polyir.integrations.corpus_to_rows"
            ) from None

    def check_complete(self, *, monolingual: bool, crosslingual: bool) -> None:
        """Every (pair, X, Y) the sampler may draw must be a row: (L, L) for monolingual batches, every
        X != Y of the pair's languages for cross-lingual ones. A missing one fails now, naming it."""
        for corpus in self.corpora:
            for pair in corpus.pairs:
                langs = pair.languages
                for x in langs:
                    for y in langs:
                        if (x == y and monolingual) or (x != y and crosslingual):
                            self.row(corpus.name, pair.pair_id, x, y)


def corpus_to_rows(
    corpora: ParallelQACorpus | Sequence[ParallelQACorpus],
    *,
    pairs: str = "all",
    columns: RowColumns | None = None,
    negatives: int = 0,
) -> Any:
    """A ``datasets.Dataset`` of language-pair rows for polyir corpora.

    ``pairs``: ``"all"`` (every ordered (X, Y) of each pair's languages, X == Y included: what hybrid
    batches need), ``"monolingual"`` (X == Y only) or ``"crosslingual"`` (X != Y only). ``negatives``:
    hard-negative columns ``negative_1..k`` taken from the passage language's entry (rows with fewer
    negatives are refused: a column cannot be empty). With several corpora a ``corpus`` column is added
    (``columns.corpus``, default ``"corpus"``).
    """
    from datasets import Dataset

    corpus_list = [corpora] if isinstance(corpora, ParallelQACorpus) else list(corpora)
    if not corpus_list:
        raise EmptySelectionError("corpus_to_rows: no corpus given")
    if pairs not in ("all", "monolingual", "crosslingual"):
        raise ValueError(f"pairs must be 'all', 'monolingual' or 'crosslingual', not {pairs!r}")
    cols = columns or RowColumns(corpus="corpus" if len(corpus_list) > 1 else None)
    if len(corpus_list) > 1 and not cols.corpus:
        raise ValueError("several corpora need a corpus column (RowColumns(corpus='corpus'))")
    ql, pl = cols.language_columns
    if ql == pl and pairs != "monolingual":
        raise ValueError("one language column holds monolingual rows only; use pairs='monolingual'")
    query_col, pos_col = cols.query or "anchor", cols.positive or "positive"
    data: dict[str, list[Any]] = {query_col: [], pos_col: []}
    for k in range(negatives):
        data[f"negative_{k + 1}"] = []
    for c in dict.fromkeys([ql, pl, cols.pair_id, *([cols.corpus] if cols.corpus else [])]):
        data[c] = []
    for corpus in corpus_list:
        for pair in corpus.pairs:
            for x, y in _language_pairs(pair.languages, pairs):
                entry = pair.entries[y]
                if len(entry.negatives) < negatives:
                    raise DataFormatError(
                        f"corpus {corpus.name!r}, pair id {pair.pair_id!r}, language {y}: "
                        f"{len(entry.negatives)} hard negatives, {negatives} asked; lower negatives="
                    )
                data[query_col].append(pair.entries[x].query)
                data[pos_col].append(entry.positive)
                for k in range(negatives):
                    data[f"negative_{k + 1}"].append(entry.negatives[k])
                data[ql].append(x)
                data[pl].append(y)
                data[cols.pair_id].append(pair.pair_id)
                if cols.corpus:
                    data[cols.corpus].append(corpus.name)
    if not data[query_col]:
        raise EmptySelectionError(f"corpus_to_rows: no {pairs} language pair in the corpora")
    return Dataset.from_dict(data)


def _language_pairs(langs: Iterable[str], pairs: str) -> Iterable[tuple[str, str]]:
    langs = list(langs)
    for x in langs:
        for y in langs:
            if (pairs == "all") or (pairs == "monolingual") == (x == y):
                yield x, y


def rows_to_corpora(dataset: Any, columns: RowColumns) -> RowIndex:
    """Read language-pair rows back as polyir corpora (one per value of the corpus column).

    A language L of a pair takes its question from the rows with query language L and its answer from
    the rows with passage language L; rows that disagree, a language seen on one side only, an empty
    value or a repeated (pair, X, Y) are errors naming the row.
    """
    plain = dataset.with_format(None)
    names = list(plain.column_names)
    query_col, pos_col = columns.roles(names)
    ql, pl = columns.language_columns
    wanted = list(dict.fromkeys([query_col, pos_col, *columns.metadata]))
    table = {c: plain[c] for c in wanted}
    n = len(plain)
    if n == 0:
        raise EmptySelectionError("training dataset is empty")
    rows: dict[tuple[str, str, str, str], int] = {}
    queries: dict[tuple[str, str, str], tuple[str, int]] = {}
    positives: dict[tuple[str, str, str], tuple[str, int]] = {}
    order: dict[str, dict[str, None]] = {}
    for i in range(n):
        corpus = str(table[columns.corpus][i]) if columns.corpus else DEFAULT_CORPUS
        pid, x, y = table[columns.pair_id][i], table[ql][i], table[pl][i]
        for col, value in ((columns.pair_id, pid), (ql, x), (pl, y)):
            if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).strip() == "":
                raise DataFormatError(f"training dataset row {i}: column {col!r} is empty or not a string ({value!r})")
        pid, x, y = str(pid), str(x), str(y)
        key = (corpus, pid, x, y)
        if key in rows:
            raise DataFormatError(
                f"training dataset rows {rows[key]} and {i}: both hold pair id {pid!r} with languages {x}->{y}"
            )
        rows[key] = i
        order.setdefault(corpus, {})[pid] = None
        for side, store, lang, text in (("query", queries, x, table[query_col][i]), ("positive", positives, y, table[pos_col][i])):
            if not isinstance(text, str) or not text.strip():
                raise DataFormatError(f"training dataset row {i}: the {side} text is empty or not a string")
            seen = store.setdefault((corpus, pid, lang), (text, i))
            if seen[0] != text:
                raise DataFormatError(
                    f"training dataset rows {seen[1]} and {i}: pair id {pid!r} has two different {side} texts "
                    f"in {lang}; one pair id must hold one question and one answer per language"
                )
    # entries: every language seen on both sides of a pair
    by_pair: dict[tuple[str, str], dict[str, QAEntry]] = {}
    for (corpus, pid, lang), (qtext, qrow) in queries.items():
        ptext = positives.get((corpus, pid, lang))
        if ptext is None:
            raise DataFormatError(
                f"training dataset row {qrow}: pair id {pid!r} has a question in {lang} but no row with an answer "
                f"in {lang} (passage language); every language of a pair needs both"
            )
        by_pair.setdefault((corpus, pid), {})[lang] = QAEntry(query=qtext, positive=ptext[0])
    for (corpus, pid, lang), (_, prow) in positives.items():
        if (corpus, pid, lang) not in queries:
            raise DataFormatError(
                f"training dataset row {prow}: pair id {pid!r} has an answer in {lang} but no row with a question "
                f"in {lang} (query language); every language of a pair needs both"
            )
    out = [
        ParallelQACorpus(corpus, [ParallelPair(pid, dict(sorted(by_pair[(corpus, pid)].items()))) for pid in pids])
        for corpus, pids in order.items()
    ]
    return RowIndex(corpora=out, rows=rows)
