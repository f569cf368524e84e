"""Typed records shared by readers, samplers and evaluation.

Two views of a multilingual QA dataset:
- a ``RetrievalTask`` (queries, a candidate pool, relevance) for evaluation;
- a ``ParallelQACorpus`` (pair id -> language -> question/answer) for training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Query:
    """One question. ``pair_id`` is shared by its translations in other languages."""

    id: str
    language: str
    text: str
    pair_id: str


@dataclass(frozen=True)
class Candidate:
    """One retrievable unit (a sentence), with the paragraph it came from as context."""

    id: str
    language: str
    text: str
    context: str = ""
    group: str = ""  # e.g. the paragraph id: candidates of one group share a context


@dataclass
class RetrievalTask:
    """Queries, a multilingual candidate pool, and each query's relevant candidate ids."""

    name: str
    queries: list[Query]
    candidates: list[Candidate]
    relevant: dict[str, frozenset[str]]  # query id -> relevant candidate ids
    notes: dict[str, object] = field(default_factory=dict)  # reader facts (repairs, dedups, ...)
    # query id -> candidate ids left out of that query's ranking (e.g. the query's own sentence when
    # the pool holds it): scored as if physically removed from the pool for that query only
    excluded: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def query_languages(self) -> list[str]:
        return sorted({q.language for q in self.queries})

    @property
    def candidate_languages(self) -> list[str]:
        return sorted({c.language for c in self.candidates})

    def limit(self, max_pairs: int) -> RetrievalTask:
        """The first ``max_pairs`` pair ids, with a pool cut to the groups (paragraphs) that hold
        their relevant candidates: a small, still multilingual task for quick looks and tests."""
        if max_pairs < 1:
            raise ValueError("max_pairs must be at least 1")
        keep_ids = list(dict.fromkeys(q.pair_id for q in self.queries))[:max_pairs]
        task = self.select_pairs(keep_ids)
        task.notes = {**self.notes, "limited_to_pairs": len(keep_ids)}
        return task

    def select_pairs(self, pair_ids: Iterable[str]) -> RetrievalTask:
        """The queries of ``pair_ids``, with a pool cut to the groups (paragraphs) that hold their
        relevant candidates (LAReQA's pool for those questions: answers plus same-paragraph distractors)."""
        kept = set(pair_ids)
        queries = [q for q in self.queries if q.pair_id in kept]
        group_of = {c.id: c.group for c in self.candidates}
        groups = {group_of[cid] for q in queries for cid in self.relevant[q.id]}
        candidates = [c for c in self.candidates if c.group in groups]
        kept_ids = {c.id for c in candidates}
        excluded = {q.id: self.excluded[q.id] & kept_ids for q in queries if q.id in self.excluded}
        return RetrievalTask(
            name=self.name,
            queries=queries,
            candidates=candidates,
            relevant={q.id: self.relevant[q.id] for q in queries},
            notes=dict(self.notes),
            excluded={k: v for k, v in excluded.items() if v},
        )


@dataclass(frozen=True)
class QAEntry:
    """A question and its positive passage in one language, with optional hard negatives."""

    query: str
    positive: str
    context: str | None = None
    negatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParallelPair:
    """One pair id with its per-language entries (translations of the same QA instance)."""

    pair_id: str
    entries: dict[str, QAEntry]

    @property
    def languages(self) -> list[str]:
        return sorted(self.entries)


@dataclass
class ParallelQACorpus:
    """Training corpus: pair id -> language -> (query, positive, negatives)."""

    name: str
    pairs: list[ParallelPair]

    @property
    def languages(self) -> list[str]:
        return sorted({lang for p in self.pairs for lang in p.entries})

    def __len__(self) -> int:
        return len(self.pairs)

    def language_sizes(self) -> dict[str, int]:
        """How many pairs hold each language."""
        sizes: dict[str, int] = {}
        for p in self.pairs:
            for lang in p.entries:
                sizes[lang] = sizes.get(lang, 0) + 1
        return dict(sorted(sizes.items()))
