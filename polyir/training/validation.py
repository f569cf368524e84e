"""Validation: the held-out loss batches, the retrieval pool, and the metrics of a model on them.

The pool is LAReQA's: held-out queries against their positives pooled across languages
(``validation.pool=answers``), or against every sentence of their paragraphs (``paragraphs``, for
registered LAReQA sources). :func:`held_out_metrics` scores any encoder on a training config's
held-out pairs (the split the trainer uses), so models a run did not train (a merge, the base) are
chosen on validation data, never on a test set. Data flows one way: training data → this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from polyir.data.types import ParallelPair, ParallelQACorpus
from polyir.errors import EmptySelectionError, PolyirError
from polyir.models.encoder import Encoder
from polyir.sampling import Batch, HybridBatchSampler, SamplerConfig, normalize_passage
from polyir.training.config import TrainConfig, resolve_precision
from polyir.training.data import load_sources, split_pairs
from polyir.training.gradcache import autocast
from polyir.training.losses import InfoNCE, StepTexts

__all__ = ["RetrievalSet", "answer_pool", "paragraph_pool", "validation_pool", "retrieval_metrics",
           "held_out_metrics", "Validator"]


@dataclass
class RetrievalSet:
    """Held-out queries, the candidate pool, and the relevant candidates of each query."""

    queries: list[str]
    query_langs: list[str]
    query_ids: list[str]
    candidates: list[str]
    cand_langs: list[str]
    relevant: list[list[int]]


def paragraph_pool(config: TrainConfig, corpora: Sequence[ParallelQACorpus], max_pairs: int | None) -> RetrievalSet:
    """Held-out queries against every sentence of the paragraphs holding their answers, in every
    language: the LAReQA pool (same-paragraph distractors) restricted to the held-out pair ids."""
    from polyir.data.registry import REGISTRY, load_task

    out = RetrievalSet([], [], [], [], [], [])
    sources = {s.name or s.source: s for s in config.data.train}  # a registered source's corpus bears its name
    for corpus in corpora:
        src = sources.get(corpus.name)
        if src is None or src.source not in REGISTRY or REGISTRY[src.source].kind != "lareqa":
            raise PolyirError(
                f"validation.pool=paragraphs: {corpus.name!r} is not a registered LAReQA dataset (its "
                "sentence splits are needed); use validation.pool=answers"
            )
        ids = [p.pair_id for p in corpus.pairs][:max_pairs]
        task = load_task(src.source, data_dir=config.data.data_dir, languages=src.languages).select_pairs(ids)
        position = {c.id: i for i, c in enumerate(task.candidates, start=len(out.candidates))}
        out.candidates.extend(c.text for c in task.candidates)
        out.cand_langs.extend(c.language for c in task.candidates)
        for q in task.queries:
            out.queries.append(q.text)
            out.query_langs.append(q.language)
            out.query_ids.append(f"{corpus.name}:{q.pair_id}:{q.language}")
            out.relevant.append(sorted(position[c] for c in task.relevant[q.id] if c in position))
    return out


def validation_pool(config: TrainConfig, corpora: Sequence[ParallelQACorpus]) -> RetrievalSet:
    v = config.validation
    if v.pool == "paragraphs":
        return paragraph_pool(config, corpora, v.max_pairs)
    return answer_pool(corpora, v.max_pairs)


def answer_pool(corpora: Sequence[ParallelQACorpus], max_pairs: int | None) -> RetrievalSet:
    """Held-out queries vs their positives pooled across languages; equal positive texts are merged.
    ``max_pairs`` caps each corpus (held-out pairs come in a seeded order), so every corpus is scored."""
    pairs: list[tuple[str, ParallelPair]] = [(c.name, p) for c in corpora for p in c.pairs[:max_pairs]]
    out = RetrievalSet([], [], [], [], [], [])
    cand_index: dict[tuple[str, str], int] = {}
    pair_cands: dict[tuple[str, str], set[int]] = {}
    for name, pair in pairs:
        key = (name, pair.pair_id)
        pair_cands[key] = set()
        for lang in pair.languages:
            text = pair.entries[lang].positive
            ck = (lang, normalize_passage(text))
            if ck not in cand_index:
                cand_index[ck] = len(out.candidates)
                out.candidates.append(text)
                out.cand_langs.append(lang)
            pair_cands[key].add(cand_index[ck])
    # Queries sharing a positive with another pair: that positive is relevant to both.
    for name, pair in pairs:
        rel = sorted(pair_cands[(name, pair.pair_id)])
        for lang in pair.languages:
            out.queries.append(pair.entries[lang].query)
            out.query_langs.append(lang)
            out.query_ids.append(f"{name}:{pair.pair_id}:{lang}")
            out.relevant.append(rel)
    return out


def held_out_metrics(encoder: Encoder, config: TrainConfig, dims: Sequence[int] | None = None) -> dict[str, Any]:
    """Validation mAP of any encoder on a training config's held-out pairs (the split the trainer uses).

    Lets models that were not trained by that run (a merge, the base) be scored on the same
    validation data as the trained ones, so a choice among them never looks at a test set. ``dims``
    (default: the config's ``optim.matryoshka_dims``) adds the metrics of embeddings cut to those
    dimensions (``val_mul_map@128``...), so a model trained without Matryoshka is compared there too.
    """
    v = config.validation
    held_out = [
        split_pairs(c, fraction=v.fraction, count=v.count, seed=config.validation_seed, group=v.group)[1]
        for c in load_sources(config)
    ]
    vs = validation_pool(config, [c for c in held_out if len(c)])
    if not vs.queries:
        raise PolyirError("validation: no held-out pairs (validation.fraction / validation.count is 0)")
    dims = config.optim.matryoshka_dims if dims is None else dims
    row = retrieval_metrics(encoder, vs, resolve_precision(config.optim.precision, encoder.device), dims or ())
    return {k: (None if isinstance(x, float) and math.isnan(x) else x) for k, x in row.items()}


def retrieval_metrics(
    encoder: Encoder, vs: RetrievalSet, precision: str, dims: Sequence[int] = ()
) -> dict[str, Any]:
    """LAReQA mAP of the held-out queries against their pooled positives, as validation rows name them;
    for each of ``dims`` below the model's width, the mAPs of the embeddings cut there (``val_mul_map@N``)."""
    from polyir.evaluation.lareqa import lareqa_metrics
    from polyir.evaluation.run import truncate_embeddings

    qe = encoder.encode(vs.queries, "query", precision=precision, show_progress=False)  # type: ignore[arg-type]
    ce = encoder.encode(vs.candidates, "passage", precision=precision, show_progress=False)  # type: ignore[arg-type]
    res = lareqa_metrics(qe, ce, vs.query_langs, vs.cand_langs, vs.relevant, query_ids=vs.query_ids)
    row = {"val_mo_map": res.mo_map, "val_cr_map": res.cr_map, "val_mul_map": res.mul_map,
           "val_rank_distance": res.rank_distance, "val_queries": res.n_queries,
           "val_candidates": res.n_candidates}
    for d in sorted({int(d) for d in dims if 0 < d < qe.shape[1]}, reverse=True):
        cut = lareqa_metrics(truncate_embeddings(qe, d), truncate_embeddings(ce, d), vs.query_langs, vs.cand_langs,
                             vs.relevant, query_ids=vs.query_ids)
        row.update({f"val_mo_map@{d}": cut.mo_map, f"val_cr_map@{d}": cut.cr_map, f"val_mul_map@{d}": cut.mul_map})
    return row


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


class Validator:
    """Fixed held-out loss batches and the retrieval pool of a run; :meth:`measure` scores a model."""

    def __init__(
        self, config: TrainConfig, corpora: Sequence[ParallelQACorpus], sampler_config: SamplerConfig, world_size: int
    ):
        self.config = config
        self.batches: list[Batch] = []
        self.pool: RetrievalSet | None = None
        self.enabled = bool(corpora) and config.validation.enabled
        o = config.optim
        self.loss = InfoNCE(o.temperature, symmetric=o.symmetric_loss, cross_device=False)
        if not self.enabled:
            return
        # Built on every rank (cheap) so a bad split fails everywhere at once; rank 0 measures.
        v = config.validation
        weights = sampler_config.corpus_weights
        if weights is not None:
            weights = {c.name: weights[c.name] for c in corpora}
            if sum(weights.values()) <= 0:
                weights = None
        # By default a validation batch is what a training query is scored against: the global batch
        # with cross-device negatives (so val_loss does not depend on how many ranks share it).
        global_batch = o.batch_size * (world_size if o.cross_device_negatives else 1)
        val_cfg = SamplerConfig.from_dict(
            {
                **sampler_config.to_dict(),
                "batch_size": v.batch_size or global_batch,
                "seed": config.validation_seed,
                "corpus_weights": weights,
                "drop_last": False,
                "allow_smaller_batches": True,
            }
        )
        try:
            sampler = HybridBatchSampler(list(corpora), val_cfg)
        except EmptySelectionError as exc:
            raise PolyirError(
                f"validation: the held-out pairs cannot form validation batches ({exc}); "
                "hold out more pairs (validation.fraction / validation.count) or lower validation.batch_size"
            ) from exc
        self.batches = list(sampler.take(min(v.max_loss_batches, len(sampler))))
        self.pool = validation_pool(config, corpora)

    def measure(self, encoder: Encoder, precision: str, step: int) -> dict[str, Any]:
        """The validation row of ``encoder`` at ``step``: val_loss and the retrieval metrics."""
        hard_negatives = self.config.optim.hard_negatives
        was_training = encoder.st.training
        encoder.st.eval()
        row: dict[str, Any] = {"type": "validation", "step": step}
        try:
            if self.batches:
                total, n = 0.0, 0
                with torch.no_grad(), autocast(encoder.device, precision):
                    for b in self.batches:
                        texts = StepTexts.of(b, hard_negatives)
                        q = encoder.embed(texts.queries, "query")
                        p = encoder.embed(texts.passages, "passage")
                        loss = self.loss(q.float(), p.float(), texts)
                        total += float(loss) * len(b)
                        n += len(b)
                row["val_loss"] = total / n
            if self.pool is not None and self.pool.queries:
                row.update(retrieval_metrics(encoder, self.pool, precision, self.config.optim.matryoshka_dims or ()))
        finally:
            encoder.st.train(was_training)
        return _finite(row)
