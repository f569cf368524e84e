"""The sampler's records: one example, one rank's batch of a step, and what a rank was given."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from polyir.sampling.config import MONOLINGUAL

__all__ = ["Example", "Batch", "SamplerStats"]


@dataclass(frozen=True)
class Example:
    """One training example: a query in one language and its positive passage in another (or the same)."""

    pair_id: str
    corpus: str
    query_language: str
    passage_language: str
    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    context: str | None = None  # the positive's paragraph, when the corpus has one


@dataclass(frozen=True)
class Batch:
    """This rank's share of one training step.

    ``languages`` is ``(L,)`` for a monolingual batch, ``(X, Y)`` (query, passage language) for a
    per-batch crosslingual batch, and ``()`` for per-example pairing (see each example).
    ``kind``, ``languages``, ``corpus``, ``epoch`` and ``step`` are the same on every rank.
    """

    examples: list[Example]
    kind: str
    languages: tuple[str, ...]
    corpus: str
    epoch: int
    step: int  # global step index, counted from 0 over the sampler's life

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @property
    def queries(self) -> list[str]:
        return [e.query for e in self.examples]

    @property
    def positives(self) -> list[str]:
        return [e.positive for e in self.examples]

    @property
    def pair_ids(self) -> list[str]:
        return [e.pair_id for e in self.examples]

    @property
    def language_pairs(self) -> list[tuple[str, str]]:
        return [(e.query_language, e.passage_language) for e in self.examples]


@dataclass
class SamplerStats:
    """What this rank was given: batch kinds, corpora, languages (for the run log)."""

    batches: int = 0
    examples: int = 0
    epochs: int = 0  # epochs started
    kinds: Counter = field(default_factory=Counter)
    corpora: Counter = field(default_factory=Counter)  # batches per corpus
    monolingual_languages: Counter = field(default_factory=Counter)  # monolingual batches per language
    language_pairs: Counter = field(default_factory=Counter)  # (query_lang, passage_lang) -> examples
    query_languages: Counter = field(default_factory=Counter)
    passage_languages: Counter = field(default_factory=Counter)
    reused_examples: int = 0  # examples whose pair was already used earlier in the same epoch
    smaller_batches: int = 0  # batches below batch_size (only with allow_smaller_batches)
    negatives_dropped: int = 0  # hard negatives removed for equalling an in-batch positive

    def record(self, batch: Batch, *, batch_size: int, reused: int = 0, negatives_dropped: int = 0) -> None:
        """Count one batch of this rank."""
        self.batches += 1
        self.examples += len(batch)
        self.kinds[batch.kind] += 1
        self.corpora[batch.corpus] += 1
        if batch.kind == MONOLINGUAL:
            self.monolingual_languages[batch.languages[0]] += 1
        for q, p in batch.language_pairs:
            self.language_pairs[(q, p)] += 1
            self.query_languages[q] += 1
            self.passage_languages[p] += 1
        self.reused_examples += reused
        self.smaller_batches += int(len(batch) < batch_size)
        self.negatives_dropped += negatives_dropped

    @property
    def monolingual_share(self) -> float:
        """Fraction of batches that were monolingual (nan before any batch)."""
        return self.kinds[MONOLINGUAL] / self.batches if self.batches else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary; language pairs are keyed ``"q->p"``."""
        return {
            "batches": self.batches,
            "examples": self.examples,
            "epochs": self.epochs,
            "kinds": dict(sorted(self.kinds.items())),
            "corpora": dict(sorted(self.corpora.items())),
            "monolingual_languages": dict(sorted(self.monolingual_languages.items())),
            "language_pairs": {f"{q}->{p}": n for (q, p), n in sorted(self.language_pairs.items())},
            "query_languages": dict(sorted(self.query_languages.items())),
            "passage_languages": dict(sorted(self.passage_languages.items())),
            "reused_examples": self.reused_examples,
            "smaller_batches": self.smaller_batches,
            "negatives_dropped": self.negatives_dropped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SamplerStats:
        """Inverse of :meth:`to_dict`."""
        pairs = Counter({tuple(k.split("->", 1)): int(v) for k, v in data.get("language_pairs", {}).items()})
        return cls(
            batches=int(data.get("batches", 0)),
            examples=int(data.get("examples", 0)),
            epochs=int(data.get("epochs", 0)),
            kinds=Counter(data.get("kinds", {})),
            corpora=Counter(data.get("corpora", {})),
            monolingual_languages=Counter(data.get("monolingual_languages", {})),
            language_pairs=pairs,
            query_languages=Counter(data.get("query_languages", {})),
            passage_languages=Counter(data.get("passage_languages", {})),
            reused_examples=int(data.get("reused_examples", 0)),
            smaller_batches=int(data.get("smaller_batches", 0)),
            negatives_dropped=int(data.get("negatives_dropped", 0)),
        )
