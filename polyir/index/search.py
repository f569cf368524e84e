"""Search an index with a query string: language filter and per-language merging.

A pooled multilingual ranking often favours some languages (usually the query's own): the top 10
for an English question may be all English although good answers exist in other languages.
``per_language=N`` is a simple de-biasing: each language is searched on its own for its top N,
and the lists are merged round-robin by score (every language's best hit first, ordered by score,
then every language's second hit, …), so each language gets up to N of the top results.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from polyir.errors import PolyirError, UnknownLanguageError
from polyir.index.corpus import unicode_problem
from polyir.index.store import SearchIndex
from polyir.languages import parse_languages

if TYPE_CHECKING:
    from polyir.models.encoder import Encoder

MAX_K = 10_000


@dataclass(frozen=True)
class Hit:
    """One search result; ``rank`` is 1-based."""

    rank: int
    id: str
    score: float
    language: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rank": self.rank, "id": self.id, "score": round(float(self.score), 6),
            "language": self.language, "text": self.text,
        }
        if self.title:
            out["title"] = self.title
        if self.metadata:
            out["metadata"] = self.metadata
        return out


_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}  # controls (NUL), format chars (zero-width space), spaces


def query_problem(query: str) -> str | None:
    """Why ``query`` cannot be searched (blank, only invisible characters, a lone surrogate), else None."""
    if not query.strip() or all(c.isspace() or unicodedata.category(c) in _INVISIBLE for c in query):
        return "query must not be blank (it holds no visible character)"
    return unicode_problem(query)


def check_languages(index: SearchIndex, languages: Sequence[str] | str | None) -> list[str] | None:
    """Validate a language filter: known codes that the index holds (None = all languages)."""
    codes = parse_languages(languages)
    if codes is None:
        return None
    have = index.language_counts
    missing = [c for c in codes if c not in have]
    if missing:
        raise UnknownLanguageError(
            f"language(s) {', '.join(missing)} not in this index; it holds {', '.join(sorted(have))}"
        )
    return codes


def merge_per_language(
    lists: dict[str, list[tuple[float, int]]], per_language: int, k: int
) -> list[tuple[float, int]]:
    """Round-robin merge of per-language (score, position) lists, each sorted best first.

    Round r takes the r-th hit of every language that has one, ordered by score; rounds are
    concatenated and cut at ``k``, and no language contributes more than ``per_language``.
    """
    merged: list[tuple[float, int]] = []
    for r in range(per_language):
        round_hits = [hits[r] for hits in lists.values() if r < len(hits)]
        if not round_hits:
            break
        round_hits.sort(key=lambda h: (-h[0], h[1]))
        merged.extend(round_hits)
        if len(merged) >= k:
            break
    return merged[:k]


def search_vector(
    index: SearchIndex,
    vector: np.ndarray,
    k: int = 10,
    languages: Sequence[str] | None = None,
    per_language: int | None = None,
) -> list[Hit]:
    """Search with an already encoded query vector (see ``search``)."""
    if not 1 <= k <= MAX_K:
        raise PolyirError(f"k must be between 1 and {MAX_K}, not {k}")
    if per_language is not None and per_language < 1:
        raise PolyirError(f"per_language must be at least 1, not {per_language}")
    vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    if per_language is None:
        scores, positions = index.search_vectors(vector, k, languages=languages)
        pairs = [(float(s), int(p)) for s, p in zip(scores[0], positions[0]) if p >= 0]
    else:
        wanted = list(languages) if languages is not None else sorted(index.language_counts)
        lists = {}
        for lang in wanted:
            scores, positions = index.search_vectors(vector, min(per_language, k), languages=[lang])
            lists[lang] = [(float(s), int(p)) for s, p in zip(scores[0], positions[0]) if p >= 0]
        pairs = merge_per_language(lists, per_language, k)
    hits = []
    for rank, (score, pos) in enumerate(pairs, start=1):
        p = index.passages[pos]
        hits.append(Hit(rank, p.id, score, p.language, p.text, p.title, p.metadata))
    return hits


def search(
    index: SearchIndex,
    encoder: Encoder,
    query: str,
    k: int = 10,
    languages: Sequence[str] | str | None = None,
    per_language: int | None = None,
) -> list[Hit]:
    """Encode ``query`` and return its top ``k`` hits, optionally only in ``languages``.

    ``per_language=N`` merges per-language top-N lists round-robin by score (see the module doc).
    The encoder must be the model the index was built with (checked by fingerprint).
    """
    if not isinstance(query, str) or not query.strip():
        raise PolyirError("the query is empty")
    if problem := query_problem(query):
        raise PolyirError(problem)
    codes = check_languages(index, languages)
    index.check_encoder(encoder)
    vector = encoder.encode([query], "query", show_progress=False)
    return search_vector(index, vector[0], k=k, languages=codes, per_language=per_language)


def language_counts(hits: Sequence[Hit]) -> dict[str, int]:
    """How many hits each language has, most first (ties by code)."""
    counts: dict[str, int] = {}
    for h in hits:
        counts[h.language] = counts.get(h.language, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
