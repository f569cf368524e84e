"""One corpus indexed for the sampler's constrained draws: languages, positive-text ids, capacities."""

from __future__ import annotations

from typing import Any

import numpy as np

from polyir.data.types import ParallelPair, ParallelQACorpus
from polyir.errors import DataFormatError
from polyir.sampling.config import SamplerConfig, normalize_passage

__all__ = ["CorpusPool", "weighted_index"]


def weighted_index(rng: np.random.Generator, weights: np.ndarray) -> int:
    """Index drawn with probability ∝ weights (one uniform draw; weights > 0 somewhere)."""
    cum = np.cumsum(weights, dtype=np.float64)
    k = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return min(k, len(weights) - 1)


class CorpusPool:
    """One corpus, indexed for fast constrained draws."""

    def __init__(self, corpus: ParallelQACorpus, config: SamplerConfig, global_size: int, world_size: int):
        self.name = corpus.name
        allowed = set(config.languages) if config.languages is not None else None
        seen_ids: set[str] = set()
        pairs: list[ParallelPair] = []
        for pair in corpus.pairs:
            if pair.pair_id in seen_ids:
                raise DataFormatError(
                    f"corpus {corpus.name!r}: pair id {pair.pair_id!r} occurs twice; pair ids must be unique"
                )
            seen_ids.add(pair.pair_id)
            if any(allowed is None or lang in allowed for lang in pair.entries):
                pairs.append(pair)
        self.pairs = pairs
        self.n = len(pairs)
        self.langs = sorted({lang for p in pairs for lang in p.entries if allowed is None or lang in allowed})
        k = len(self.langs)
        lang_index = {lang: j for j, lang in enumerate(self.langs)}
        text_ids: dict[str, int] = {}
        self.tid = np.full((k, self.n), -1, dtype=np.int64)
        for i, pair in enumerate(pairs):
            for lang, entry in pair.entries.items():
                j = lang_index.get(lang)
                if j is not None:
                    self.tid[j, i] = text_ids.setdefault(normalize_passage(entry.positive), len(text_ids))
        self.has = self.tid >= 0
        self.sizes = self.has.sum(axis=1)
        if config.language_sampling == "uniform":
            self.lang_weights = np.ones(k, dtype=np.float64)
        elif config.language_sampling == "size":
            self.lang_weights = self.sizes.astype(np.float64)
        else:
            self.lang_weights = self.sizes.astype(np.float64) ** config.temperature
        self.pair_langs = [np.flatnonzero(self.has[:, i]) for i in range(self.n)]
        self.multi = self.has.sum(axis=0) >= 2
        minimum = global_size if not config.allow_smaller_batches else world_size

        n_texts = max(len(text_ids), 1)

        def capacity(mask: np.ndarray, passage_lang: int) -> int:
            """Distinct positive texts in passage_lang among the masked pairs."""
            seen = np.zeros(n_texts, dtype=bool)
            seen[self.tid[passage_lang, mask]] = True
            return int(seen.sum())

        self.mono_options: list[int] = []
        self.mono_capacity: dict[str, int] = {}
        self.mono_skipped: dict[str, int] = {}
        for j, lang in enumerate(self.langs):
            cap = capacity(self.has[j], j)
            self.mono_capacity[lang] = cap
            if cap >= minimum:
                self.mono_options.append(j)
            else:
                self.mono_skipped[lang] = cap
        self.cross_options: list[tuple[int, int]] = []
        self.cross_skipped: dict[str, int] = {}
        if config.crosslingual_pairing == "per_batch":
            for x in range(k):
                for y in range(k):
                    if x == y:
                        continue
                    both = self.has[x] & self.has[y]
                    if not both.any():
                        continue
                    cap = capacity(both, y)
                    if cap >= minimum:
                        self.cross_options.append((x, y))
                    else:
                        self.cross_skipped[f"{self.langs[x]}->{self.langs[y]}"] = cap
            self.can_cross = bool(self.cross_options)
            self.per_example_capacity = 0
        else:
            ids = self.tid[:, self.multi]
            distinct = int(np.unique(ids[ids >= 0]).size)
            self.per_example_capacity = min(int(self.multi.sum()), distinct)
            self.can_cross = self.per_example_capacity >= minimum
        self.can_mono = bool(self.mono_options)
        self.mono_probs = self.lang_weights[self.mono_options] if self.mono_options else np.zeros(0)
        self.cross_probs = np.array(
            [self.lang_weights[x] * self.lang_weights[y] for x, y in self.cross_options], dtype=np.float64
        )
        self.order = np.arange(self.n, dtype=np.int64)
        self.used = np.zeros(self.n, dtype=bool)

    def fingerprint(self, h: Any) -> None:
        h.update(f"corpus\0{self.name}\0{self.n}\0".encode())
        for p in self.pairs:
            h.update(f"{p.pair_id}\0{','.join(sorted(p.entries))}\0".encode())


# --------------------------------------------------------------------------- sampler
