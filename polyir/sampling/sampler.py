"""The hybrid-batch sampler: a deterministic, resumable, rank-aware stream of batches (see the package docstring)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from polyir.data.types import ParallelQACorpus
from polyir.errors import EmptySelectionError, PolyirError, UnknownLanguageError
from polyir.sampling.config import (
    CROSSLINGUAL,
    MONOLINGUAL,
    SamplerConfig,
    SamplerConfigError,
    is_int,
    normalize_passage,
)
from polyir.sampling.pool import CorpusPool, weighted_index
from polyir.sampling.records import Batch, Example, SamplerStats

__all__ = ["HybridBatchSampler"]

_STATE_FORMAT = "polyir.sampler/1"


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
        if not is_int(world_size) or world_size < 1:
            raise SamplerConfigError(f"world_size must be an integer >= 1, got {world_size!r}")
        if not is_int(rank) or not (0 <= rank < world_size):
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
        pools = [CorpusPool(c, self.config, self.global_batch_size, self.world_size) for c in corpus_list]
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
        pool = self._pools[capable[weighted_index(rng, self._corpus_weight[capable])]]
        g = self.global_batch_size

        if kind == MONOLINGUAL:
            lang = pool.mono_options[weighted_index(rng, pool.mono_probs)]
            chosen, reused = self._pick(pool, pool.has[lang], pool.tid[lang], g)
            pairs = [(i, lang, lang) for i in chosen]
            languages: tuple[str, ...] = (pool.langs[lang],)
        elif cfg.crosslingual_pairing == "per_batch":
            x, y = pool.cross_options[weighted_index(rng, pool.cross_probs)]
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

    def _candidates(self, pool: CorpusPool, eligible: np.ndarray) -> Iterator[tuple[int, int]]:
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
        self, pool: CorpusPool, eligible: np.ndarray, text_ids: np.ndarray, target: int
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

    def _pick_per_example(self, pool: CorpusPool, target: int) -> tuple[list[tuple[int, int, int]], list[int]]:
        chosen: list[tuple[int, int, int]] = []
        reused: list[int] = []
        taken: set[int] = set()
        w = pool.lang_weights
        for i, r in self._candidates(pool, pool.multi):
            langs = pool.pair_langs[i]
            free = [j for j in langs if int(pool.tid[j, i]) not in taken]
            if not free:
                continue
            y = free[weighted_index(self._rng, w[free])]
            others = [j for j in langs if j != y]
            x = others[weighted_index(self._rng, w[others])]
            taken.add(int(pool.tid[y, i]))
            chosen.append((i, int(x), int(y)))
            reused.append(r)
            if len(chosen) == target:
                break
        return chosen, reused

    def _build_examples(
        self, pool: CorpusPool, pairs: list[tuple[int, int, int]]
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
