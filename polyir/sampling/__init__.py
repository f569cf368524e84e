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

from polyir.sampling.config import (
    CROSSLINGUAL,
    LANGUAGE_SAMPLINGS,
    MONOLINGUAL,
    PAIRINGS,
    STRATEGIES,
    SamplerConfig,
    SamplerConfigError,
    SamplerOptions,
    normalize_passage,
)
from polyir.sampling.records import Batch, Example, SamplerStats
from polyir.sampling.sampler import HybridBatchSampler

__all__ = [
    "MONOLINGUAL",
    "CROSSLINGUAL",
    "SamplerConfigError",
    "SamplerConfig",
    "SamplerOptions",
    "Example",
    "Batch",
    "SamplerStats",
    "HybridBatchSampler",
    "normalize_passage",
]
