"""Batch samplers for hybrid-batch contrastive training (arXiv 2408.10536).

A sampler turns one or several :class:`~polyir.data.types.ParallelQACorpus` objects into a
deterministic stream of :class:`Batch` objects, each a list of :class:`Example` (query, positive
passage, hard negatives, with their languages). See ``docs/sampling.md`` for a config example.

Batch kinds (one kind per *global* batch, i.e. per training step across all ranks):

- ``monolingual``: one language L is drawn; every query and passage is in L; only pairs holding L
  are used.
- ``crosslingual``: every example has query language != passage language; a pair is only used
  for languages it holds. ``crosslingual_pairing="per_batch"`` draws one ordered (X, Y), X != Y,
  for the whole batch (only pairs holding both X and Y are used); ``"per_example"`` uses any pair
  holding >= 2 languages and draws (X, Y) per example among that pair's languages (Y first, then X).
- ``hybrid``: per batch, monolingual with probability ``alpha``, else crosslingual.

Language sampling (within the corpus the batch comes from; weights w_L):
``uniform`` w_L = 1; ``size`` w_L = n_L (pairs holding L); ``temperature`` w_L = n_L ** t.
Monolingual: P(L) ∝ w_L. Crosslingual per_batch: P(X, Y) ∝ w_X * w_Y over ordered X != Y.
Crosslingual per_example: P(Y) ∝ w_Y over the pair's languages, then P(X | Y) ∝ w_X over the rest.

Several corpora: every batch comes from ONE corpus (we do not mix within a batch). This keeps each
batch's language pool consistent (a monolingual batch in L needs L in its corpus) and keeps pair-id
de-duplication meaningful (ids from different corpora are unrelated). Per step the batch kind is
drawn first (so the share of monolingual batches is exactly governed by ``alpha``), then the corpus
among the corpora that can serve that kind, with probability ∝ ``corpus_weights`` (default: the
number of usable pairs, i.e. "by size"), then the language(s).

Within a global batch there is never the same pair id twice, nor two positives with the same text
after whitespace normalisation (``" ".join(text.split())``): different questions can share an
answer sentence, and a shared positive would be a false negative. Hard negatives equal to any
positive of the global batch are dropped from the example (they would be false negatives too).

Too-small languages (deterministic rule): the *capacity* of a language L (or of an ordered pair
(X, Y)) is the number of distinct positive texts among the pairs that can serve it. If capacity <
global batch size, that option is skipped (never drawn; listed in :meth:`HybridBatchSampler.describe`)
unless ``allow_smaller_batches`` is set, in which case it is drawn and its batches hold
``min(global, capacity)`` examples rounded down to a multiple of ``world_size``. If a kind the
strategy needs has no option left in any corpus, construction raises :class:`EmptySelectionError`.

Epochs: ``batches_per_epoch = floor(P / G)`` (``drop_last=True``) or ``ceil(P / G)``
(``drop_last=False``), with P the usable pairs of all corpora with a positive weight and
G = ``batch_size * world_size``. At the start of an epoch each corpus is reshuffled; batches take
pairs not used yet in this epoch first (in shuffled order) and only when those run short do they
re-use already used pairs (in a fresh random order). So with ``drop_last=True`` the leftover
< G pairs wait for the next epoch; with ``drop_last=False`` the last batch is topped up with re-used
pairs. Batches are always full-size (except under ``allow_smaller_batches``). Iterating the
sampler yields the rest of the current epoch; :meth:`HybridBatchSampler.take` yields any number
of steps across epochs.

Distributed: every rank builds the same sampler (same corpora, config and seed) with its own
``rank``; each step draws one global batch of ``world_size * batch_size`` examples and rank r gets
slice r. Pair ids and positive texts are therefore disjoint across ranks at each step (safe with
cross-device negatives), every rank has the same batches per epoch, and the sampler state is
identical on all ranks (apart from the per-rank :class:`SamplerStats`).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from polyir.data.types import ParallelPair, ParallelQACorpus
from polyir.errors import DataFormatError, EmptySelectionError, PolyirError, UnknownLanguageError

__all__ = [
    "MONOLINGUAL",
    "CROSSLINGUAL",
    "SamplerConfigError",
    "SamplerConfig",
    "Example",
    "Batch",
    "SamplerStats",
    "HybridBatchSampler",
    "normalize_passage",
]

MONOLINGUAL = "monolingual"
CROSSLINGUAL = "crosslingual"
STRATEGIES = (MONOLINGUAL, CROSSLINGUAL, "hybrid")
PAIRINGS = ("per_batch", "per_example")
LANGUAGE_SAMPLINGS = ("uniform", "size", "temperature")
_STATE_FORMAT = "polyir.sampler/1"


class SamplerConfigError(PolyirError, ValueError):
    """A sampler option is invalid (wrong type, out of range, unknown choice)."""


def normalize_passage(text: str) -> str:
    """Whitespace-normalised text used to detect duplicate passages in a batch."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- config


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplerConfig:
    """What batches to draw; shared by all ranks (rank and world size are sampler arguments).

    - ``strategy``: ``"monolingual"`` | ``"crosslingual"`` | ``"hybrid"``.
    - ``alpha``: probability of a monolingual batch under ``hybrid`` (ignored otherwise); [0, 1].
    - ``batch_size``: examples per rank per step (>= 1).
    - ``crosslingual_pairing``: ``"per_batch"`` (one (X, Y) per batch) | ``"per_example"``.
    - ``language_sampling``: ``"uniform"`` | ``"size"`` | ``"temperature"`` (p ∝ n ** temperature).
    - ``temperature``: exponent t >= 0 for ``"temperature"`` (0 = uniform, 1 = size).
    - ``corpus_weights``: corpus name -> weight >= 0 naming every corpus; ``None`` = by size.
    - ``languages``: restrict training to these language codes; ``None`` = all.
    - ``seed``: all randomness comes from one ``numpy`` PCG64 generator seeded with it.
    - ``drop_last``: epoch length rounds down (True) or up with re-used pairs (False).
    - ``allow_smaller_batches``: draw languages whose capacity is below the global batch size
      (their batches are smaller) instead of skipping them.
    """

    strategy: Literal["monolingual", "crosslingual", "hybrid"] = "hybrid"
    alpha: float = 0.5
    batch_size: int = 32
    crosslingual_pairing: Literal["per_batch", "per_example"] = "per_batch"
    language_sampling: Literal["uniform", "size", "temperature"] = "uniform"
    temperature: float = 0.5
    corpus_weights: dict[str, float] | None = None
    languages: tuple[str, ...] | None = None
    seed: int = 0
    drop_last: bool = True
    allow_smaller_batches: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise SamplerConfigError(
                f"unknown sampling strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}"
            )
        if not _is_real(self.alpha) or not (0.0 <= float(self.alpha) <= 1.0):
            raise SamplerConfigError(f"alpha must be a number in [0, 1], got {self.alpha!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise SamplerConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        object.__setattr__(self, "batch_size", int(self.batch_size))
        if self.crosslingual_pairing not in PAIRINGS:
            raise SamplerConfigError(
                f"unknown crosslingual_pairing {self.crosslingual_pairing!r}; "
                f"choose one of {', '.join(PAIRINGS)}"
            )
        if self.language_sampling not in LANGUAGE_SAMPLINGS:
            raise SamplerConfigError(
                f"unknown language_sampling {self.language_sampling!r}; "
                f"choose one of {', '.join(LANGUAGE_SAMPLINGS)}"
            )
        if not _is_real(self.temperature) or not (0.0 <= float(self.temperature) < math.inf):
            raise SamplerConfigError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        object.__setattr__(self, "temperature", float(self.temperature))
        if self.corpus_weights is not None:
            if not isinstance(self.corpus_weights, Mapping) or not self.corpus_weights:
                raise SamplerConfigError("corpus_weights must be a non-empty mapping name -> weight, or None")
            weights: dict[str, float] = {}
            for name, w in self.corpus_weights.items():
                if not isinstance(name, str) or not _is_real(w) or not (0.0 <= float(w) < math.inf):
                    raise SamplerConfigError(f"corpus weight for {name!r} must be a finite number >= 0, got {w!r}")
                weights[name] = float(w)
            if sum(weights.values()) <= 0:
                raise SamplerConfigError("corpus_weights must have at least one positive weight")
            object.__setattr__(self, "corpus_weights", dict(sorted(weights.items())))
        if self.languages is not None:
            langs = [self.languages] if isinstance(self.languages, str) else list(self.languages)
            if not langs or not all(isinstance(x, str) and x.strip() for x in langs):
                raise SamplerConfigError("languages must be a non-empty list of language codes, or None")
            object.__setattr__(self, "languages", tuple(sorted({x.strip() for x in langs})))
        if not _is_int(self.seed):
            raise SamplerConfigError(f"seed must be an integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        for name in ("drop_last", "allow_smaller_batches"):
            if not isinstance(getattr(self, name), bool):
                raise SamplerConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def needs_monolingual(self) -> bool:
        """Whether this strategy can draw monolingual batches."""
        return self.strategy == MONOLINGUAL or (self.strategy == "hybrid" and self.alpha > 0)

    @property
    def needs_crosslingual(self) -> bool:
        """Whether this strategy can draw crosslingual batches."""
        return self.strategy == CROSSLINGUAL or (self.strategy == "hybrid" and self.alpha < 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for run logs and sampler state)."""
        d = asdict(self)
        d["languages"] = list(self.languages) if self.languages is not None else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SamplerConfig:
        """Build from a dict (e.g. a YAML section); unknown keys are an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SamplerConfigError(
                f"unknown sampler option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))


# --------------------------------------------------------------------------- records


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


# --------------------------------------------------------------------------- per-corpus pool


def _weighted_index(rng: np.random.Generator, weights: np.ndarray) -> int:
    """Index drawn with probability ∝ weights (one uniform draw; weights > 0 somewhere)."""
    cum = np.cumsum(weights, dtype=np.float64)
    k = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return min(k, len(weights) - 1)


class _Pool:
    """One corpus, indexed for fast constrained draws (internal)."""

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


class HybridBatchSampler:
    """Deterministic, resumable, rank-aware stream of monolingual / crosslingual / hybrid batches.

    ``corpora``: one corpus or several (distinct names). ``rank`` / ``world_size``: this process
    and the number of processes; all ranks must use the same corpora and config.
    """

    def __init__(
        self,
        corpora: ParallelQACorpus | Sequence[ParallelQACorpus],
        config: SamplerConfig | None = None,
        *,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.config = config if config is not None else SamplerConfig()
        if not isinstance(self.config, SamplerConfig):
            raise SamplerConfigError("config must be a SamplerConfig (use SamplerConfig.from_dict for dicts)")
        if not _is_int(world_size) or world_size < 1:
            raise SamplerConfigError(f"world_size must be an integer >= 1, got {world_size!r}")
        if not _is_int(rank) or not (0 <= rank < world_size):
            raise SamplerConfigError(f"rank must be an integer in [0, {world_size}), got {rank!r}")
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.global_batch_size = self.config.batch_size * self.world_size
        corpus_list = [corpora] if isinstance(corpora, ParallelQACorpus) else list(corpora)
        if not corpus_list:
            raise EmptySelectionError("no training corpus given to the sampler")
        names = [c.name for c in corpus_list]
        if len(set(names)) != len(names):
            raise SamplerConfigError(f"corpus names must be distinct, got {names}")
        weights = self.config.corpus_weights
        if weights is not None and set(weights) != set(names):
            raise SamplerConfigError(
                f"corpus_weights must name exactly the corpora {sorted(names)}, got {sorted(weights)}"
            )
        for c in corpus_list:
            if len(c) == 0:
                raise EmptySelectionError(f"training corpus {c.name!r} is empty")
        if self.config.languages is not None:
            present = {lang for c in corpus_list for lang in c.languages}
            missing = [lang for lang in self.config.languages if lang not in present]
            if missing:
                raise UnknownLanguageError(
                    f"language(s) {', '.join(missing)} not in the training corpora (they hold {', '.join(sorted(present))})"
                )
        pools = [_Pool(c, self.config, self.global_batch_size, self.world_size) for c in corpus_list]
        for p in pools:
            if p.n == 0:
                raise EmptySelectionError(f"training corpus {p.name!r} has no pair in the selected languages")
        self._pools = [p for p in pools if weights is None or weights[p.name] > 0]
        self._corpus_weight = np.array(
            [float(p.n) if weights is None else weights[p.name] for p in self._pools], dtype=np.float64
        )
        self._check_feasible()
        total = sum(p.n for p in self._pools)
        g = self.global_batch_size
        self.batches_per_epoch = total // g if self.config.drop_last else -(-total // g)
        if self.batches_per_epoch == 0:
            raise EmptySelectionError(
                f"the training corpora hold {total} usable pairs, fewer than one global batch of {g} "
                f"(batch_size {self.config.batch_size} x world_size {self.world_size}); "
                "lower batch_size or set drop_last=False"
            )
        h = hashlib.sha256()
        for p in self._pools:
            p.fingerprint(h)
        self._fingerprint = h.hexdigest()
        self._rng = np.random.default_rng(self.config.seed)
        self.stats = SamplerStats()
        self.epoch = -1
        self.step_in_epoch = 0
        self.global_step = 0
        self._start_epoch()

    # ---------------------------------------------------------------- setup

    def _check_feasible(self) -> None:
        cfg = self.config
        hint = " (or set allow_smaller_batches=True)" if not cfg.allow_smaller_batches else ""
        g = self.global_batch_size
        if cfg.needs_monolingual and not any(p.can_mono for p in self._pools):
            detail = "; ".join(f"{p.name}: {p.mono_capacity}" for p in self._pools)
            raise EmptySelectionError(
                f"monolingual batches of {g} examples are impossible: no language has {g} pairs with "
                f"distinct positives (capacity per language: {detail}); lower batch_size{hint}"
            )
        if cfg.needs_crosslingual and not any(p.can_cross for p in self._pools):
            if not any(p.multi.any() for p in self._pools):
                raise EmptySelectionError(
                    "crosslingual batches are impossible: no pair holds two languages "
                    "(use strategy='monolingual' or a parallel corpus)"
                )
            raise EmptySelectionError(
                f"crosslingual batches of {g} examples are impossible: no language pair has {g} "
                f"parallel pairs with distinct positives; lower batch_size{hint}"
            )
        for p in self._pools:
            if not ((cfg.needs_monolingual and p.can_mono) or (cfg.needs_crosslingual and p.can_cross)):
                raise EmptySelectionError(
                    f"corpus {p.name!r} can serve no batch of this strategy ({cfg.strategy}); "
                    f"give it weight 0 or lower batch_size{hint}"
                )

    def _start_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = 0
        for p in self._pools:
            p.order = self._rng.permutation(p.n).astype(np.int64)
            p.used = np.zeros(p.n, dtype=bool)
        self.stats.epochs += 1

    # ---------------------------------------------------------------- public API

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[Batch]:
        """Yield the rest of the current epoch (a whole new epoch if the current one is finished)."""
        if self.step_in_epoch >= self.batches_per_epoch:
            self._start_epoch()
        while self.step_in_epoch < self.batches_per_epoch:
            yield self.next_batch()

    def take(self, steps: int) -> Iterator[Batch]:
        """Yield exactly ``steps`` batches, crossing epoch boundaries as needed."""
        for _ in range(steps):
            yield self.next_batch()

    def next_batch(self) -> Batch:
        """Draw the next global batch and return this rank's share of it."""
        if self.step_in_epoch >= self.batches_per_epoch:
            self._start_epoch()
        cfg = self.config
        rng = self._rng
        if cfg.strategy == "hybrid":
            kind = MONOLINGUAL if rng.random() < cfg.alpha else CROSSLINGUAL
        else:
            kind = cfg.strategy
        capable = [
            i for i, p in enumerate(self._pools) if (p.can_mono if kind == MONOLINGUAL else p.can_cross)
        ]
        pool = self._pools[capable[_weighted_index(rng, self._corpus_weight[capable])]]
        g = self.global_batch_size

        if kind == MONOLINGUAL:
            lang = pool.mono_options[_weighted_index(rng, pool.mono_probs)]
            chosen, reused = self._pick(pool, pool.has[lang], pool.tid[lang], g)
            pairs = [(i, lang, lang) for i in chosen]
            languages: tuple[str, ...] = (pool.langs[lang],)
        elif cfg.crosslingual_pairing == "per_batch":
            x, y = pool.cross_options[_weighted_index(rng, pool.cross_probs)]
            chosen, reused = self._pick(pool, pool.has[x] & pool.has[y], pool.tid[y], g)
            pairs = [(i, x, y) for i in chosen]
            languages = (pool.langs[x], pool.langs[y])
        else:
            pairs, reused = self._pick_per_example(pool, g)
            languages = ()

        n = len(pairs)
        if n < g:
            if not cfg.allow_smaller_batches or n < self.world_size:
                raise EmptySelectionError(
                    f"corpus {pool.name!r}: could only find {n} of {g} pairs with distinct positives for a "
                    f"{kind} batch {languages or ''}; lower batch_size or set allow_smaller_batches=True"
                )
            n = (n // self.world_size) * self.world_size
            pairs, reused = pairs[:n], reused[:n]
        for i, _, _ in pairs:
            pool.used[i] = True

        examples, dropped = self._build_examples(pool, pairs)
        b = n // self.world_size
        lo, hi = self.rank * b, (self.rank + 1) * b
        batch = Batch(
            examples=examples[lo:hi],
            kind=kind,
            languages=languages,
            corpus=pool.name,
            epoch=self.epoch,
            step=self.global_step,
        )
        self.stats.record(
            batch, batch_size=cfg.batch_size, reused=sum(reused[lo:hi]), negatives_dropped=sum(dropped[lo:hi])
        )
        self.step_in_epoch += 1
        self.global_step += 1
        return batch

    def describe(self) -> dict[str, Any]:
        """What the sampler will draw from: options, skipped languages, weights (for the run log)."""
        out: dict[str, Any] = {
            "config": self.config.to_dict(),
            "rank": self.rank,
            "world_size": self.world_size,
            "global_batch_size": self.global_batch_size,
            "batches_per_epoch": self.batches_per_epoch,
            "corpora": {},
        }
        total_w = float(self._corpus_weight.sum())
        for p, w in zip(self._pools, self._corpus_weight):
            mono_p = p.mono_probs / p.mono_probs.sum() if p.mono_options else []
            cross_p = p.cross_probs / p.cross_probs.sum() if p.cross_options else []
            out["corpora"][p.name] = {
                "pairs": p.n,
                "weight": float(w) / total_w,
                "language_sizes": {lang: int(s) for lang, s in zip(p.langs, p.sizes)},
                "monolingual_languages": {p.langs[j]: float(q) for j, q in zip(p.mono_options, mono_p)},
                "monolingual_skipped": dict(p.mono_skipped),
                "crosslingual_pairs": {
                    f"{p.langs[x]}->{p.langs[y]}": float(q) for (x, y), q in zip(p.cross_options, cross_p)
                },
                "crosslingual_skipped": dict(p.cross_skipped),
                "per_example_capacity": p.per_example_capacity,
                "can_monolingual": p.can_mono,
                "can_crosslingual": p.can_cross,
            }
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: RNG state, epoch position, per-corpus order and used pairs.

        Plain Python types only (JSON- and ``torch.save``-able). The state is rank-independent
        except ``stats``; any rank's state resumes any rank.
        """
        return {
            "format": _STATE_FORMAT,
            "config": self.config.to_dict(),
            "world_size": self.world_size,
            "fingerprint": self._fingerprint,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "rng": copy.deepcopy(self._rng.bit_generator.state),
            "pools": {
                p.name: {"order": p.order.tolist(), "used": np.flatnonzero(p.used).tolist()} for p in self._pools
            },
            "stats": self.stats.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next batches equal those of an uninterrupted run."""
        if state.get("format") != _STATE_FORMAT:
            raise PolyirError(f"not a polyir sampler state (format {state.get('format')!r})")
        if state["config"] != self.config.to_dict():
            raise SamplerConfigError("sampler state was saved with a different sampler config")
        if state["world_size"] != self.world_size:
            raise SamplerConfigError(
                f"sampler state was saved with world_size {state['world_size']}, this run has {self.world_size}"
            )
        if state["fingerprint"] != self._fingerprint:
            raise PolyirError("sampler state was saved for different training corpora")
        pools = state["pools"]
        if set(pools) != {p.name for p in self._pools}:
            raise PolyirError("sampler state names different corpora")
        for p in self._pools:
            order = np.asarray(pools[p.name]["order"], dtype=np.int64)
            if order.shape != (p.n,) or not np.array_equal(np.sort(order), np.arange(p.n)):
                raise PolyirError(f"sampler state for corpus {p.name!r} is corrupt")
            used = np.zeros(p.n, dtype=bool)
            used[np.asarray(pools[p.name]["used"], dtype=np.int64)] = True
            p.order, p.used = order, used
        rng = np.random.default_rng()
        rng.bit_generator.state = copy.deepcopy(state["rng"])
        self._rng = rng
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.stats = SamplerStats.from_dict(state["stats"])

    # ---------------------------------------------------------------- drawing

    def _candidates(self, pool: _Pool, eligible: np.ndarray) -> Iterator[tuple[int, int]]:
        """Eligible pair indices: unused ones in epoch order, then used ones in a fresh random order.

        Yields (index, reused flag). The random order for re-use is drawn only when reached.
        """
        for i in pool.order[(eligible & ~pool.used)[pool.order]]:
            yield int(i), 0
        rest = np.flatnonzero(eligible & pool.used)
        if rest.size:
            for i in self._rng.permutation(rest):
                yield int(i), 1

    def _pick(
        self, pool: _Pool, eligible: np.ndarray, text_ids: np.ndarray, target: int
    ) -> tuple[list[int], list[int]]:
        chosen: list[int] = []
        reused: list[int] = []
        taken: set[int] = set()
        for i, r in self._candidates(pool, eligible):
            t = int(text_ids[i])
            if t in taken:
                continue
            taken.add(t)
            chosen.append(i)
            reused.append(r)
            if len(chosen) == target:
                break
        return chosen, reused

    def _pick_per_example(self, pool: _Pool, target: int) -> tuple[list[tuple[int, int, int]], list[int]]:
        chosen: list[tuple[int, int, int]] = []
        reused: list[int] = []
        taken: set[int] = set()
        w = pool.lang_weights
        for i, r in self._candidates(pool, pool.multi):
            langs = pool.pair_langs[i]
            free = [j for j in langs if int(pool.tid[j, i]) not in taken]
            if not free:
                continue
            y = free[_weighted_index(self._rng, w[free])]
            others = [j for j in langs if j != y]
            x = others[_weighted_index(self._rng, w[others])]
            taken.add(int(pool.tid[y, i]))
            chosen.append((i, int(x), int(y)))
            reused.append(r)
            if len(chosen) == target:
                break
        return chosen, reused

    def _build_examples(
        self, pool: _Pool, pairs: list[tuple[int, int, int]]
    ) -> tuple[list[Example], list[int]]:
        positives = {normalize_passage(pool.pairs[i].entries[pool.langs[y]].positive) for i, _, y in pairs}
        examples: list[Example] = []
        dropped: list[int] = []
        for i, x, y in pairs:
            pair = pool.pairs[i]
            q_lang, p_lang = pool.langs[x], pool.langs[y]
            pe = pair.entries[p_lang]
            negs = tuple(n for n in pe.negatives if normalize_passage(n) not in positives)
            dropped.append(len(pe.negatives) - len(negs))
            examples.append(
                Example(
                    pair_id=pair.pair_id,
                    corpus=pool.name,
                    query_language=q_lang,
                    passage_language=p_lang,
                    query=pair.entries[q_lang].query,
                    positive=pe.positive,
                    negatives=negs,
                    context=pe.context,
                )
            )
        return examples, dropped
