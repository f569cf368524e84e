"""Training data: the corpora a config names, the held-out split, and the texts of one batch.

``load_sources`` reads ``data.train`` (registered datasets or JSONL files); ``memory_sources``
describes in-memory corpora by a content fingerprint so a run folder records what it trained on;
``split_pairs`` holds out a seeded share of each corpus' pair ids for validation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyir.data.types import ParallelPair, ParallelQACorpus
from polyir.errors import PolyirError
from polyir.sampling import Batch
from polyir.training.config import SourceSection, TrainConfig

__all__ = ["load_sources", "memory_sources", "split_pairs", "passage_texts"]


def load_sources(config: TrainConfig) -> list[ParallelQACorpus]:
    """The training corpora named by ``data.train`` (distinct names)."""
    from polyir.data.jsonl import read_parallel_jsonl
    from polyir.data.registry import REGISTRY, load_corpus

    corpora = []
    for i, src in enumerate(config.data.train):
        if src.source in REGISTRY and not Path(src.source).exists():
            corpus = load_corpus(
                src.source, data_dir=config.data.data_dir, languages=src.languages, download=config.data.download
            )
        elif src.is_file or Path(src.source).exists():
            path = Path(src.source).expanduser()
            if not path.is_file():
                raise PolyirError(f"data.train[{i}].source: file {src.source!r} does not exist")
            corpus = read_parallel_jsonl(path, languages=src.languages)
        else:
            known = ", ".join(sorted(REGISTRY))
            raise PolyirError(
                f"data.train[{i}].source: {src.source!r} is neither a registered dataset ({known}) "
                "nor an existing .jsonl file"
            )
        if src.name:
            corpus = ParallelQACorpus(name=src.name, pairs=corpus.pairs)
        corpora.append(corpus)
    names = [c.name for c in corpora]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PolyirError(f"data.train: several sources are named {', '.join(dupes)}; give them distinct 'name's")
    return corpora


def memory_sources(corpora: Sequence[ParallelQACorpus]) -> list[SourceSection]:
    """One ``memory:NAME:sha256:…`` source per in-memory corpus (a fingerprint of its content)."""
    given = list(corpora)
    if not given or not all(isinstance(c, ParallelQACorpus) for c in given):
        raise PolyirError("corpora: give one or more ParallelQACorpus objects")
    names = [c.name for c in given]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PolyirError(f"corpora: several corpora are named {', '.join(dupes)}; give them distinct names")
    sources = []
    for c in given:
        rows = [
            [p.pair_id, [[lang, e.query, e.positive, e.context, list(e.negatives)]
                         for lang, e in sorted(p.entries.items())]]
            for p in c.pairs
        ]
        digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]
        sources.append(SourceSection(source=f"memory:{c.name}:sha256:{digest}", name=c.name))
    return sources


def passage_group(pair: ParallelPair) -> str:
    """The key that keeps pairs sharing a passage together: the positive of the pair's first language."""
    return pair.entries[min(pair.entries)].positive


def split_pairs(
    corpus: ParallelQACorpus, *, fraction: float, count: int | None, seed: int, group: str = "pair"
) -> tuple[ParallelQACorpus, ParallelQACorpus]:
    """(train, held-out) corpora: a seeded choice of pair ids, independent of the file's order.

    ``group="passage"`` holds out whole groups of pairs with the same positive (SQuAD-style paragraphs,
    where several questions share one), so no held-out passage was a training positive; groups are drawn
    in a seeded order until at least ``k`` pairs are held out."""
    n = len(corpus)
    k = count if count is not None else int(round(fraction * n))
    if k <= 0:
        return corpus, ParallelQACorpus(name=corpus.name, pairs=[])
    if k >= n:
        raise PolyirError(
            f"validation: holding out {k} of the {n} pair ids of {corpus.name!r} leaves nothing to train on"
        )
    ids = sorted(p.pair_id for p in corpus.pairs)
    if group == "passage":
        members: dict[str, list[str]] = {}
        for p in sorted(corpus.pairs, key=lambda p: p.pair_id):
            members.setdefault(passage_group(p), []).append(p.pair_id)
        keys = sorted(members)
        chosen: list[str] = []
        for i in np.random.default_rng(seed).permutation(len(keys)):
            if len(chosen) >= k:
                break
            chosen.extend(members[keys[i]])
        if len(chosen) >= n:
            raise PolyirError(
                f"validation: holding out {k} of the {n} pair ids of {corpus.name!r} by passage leaves nothing to train on"
            )
        rank = {pid: j for j, pid in enumerate(chosen)}
    else:
        rank = {ids[i]: j for j, i in enumerate(np.random.default_rng(seed).permutation(n)[:k])}
    train_pairs = [p for p in corpus.pairs if p.pair_id not in rank]
    # Held-out pairs in the seeded order, so a cap (validation.max_pairs) takes a random subset.
    val_pairs = sorted((p for p in corpus.pairs if p.pair_id in rank), key=lambda p: rank[p.pair_id])
    return ParallelQACorpus(corpus.name, train_pairs), ParallelQACorpus(corpus.name, val_pairs)


def passage_texts(batch: Batch, hard_negatives: int) -> tuple[list[str], int]:
    """Positives followed by up to ``hard_negatives`` negatives per example, and the positives' count."""
    texts = list(batch.positives)
    if hard_negatives:
        for e in batch.examples:
            texts.extend(e.negatives[:hard_negatives])
    return texts, len(batch)
