"""Evaluate one encoder on one retrieval task: texts -> embeddings -> LAReQA metrics -> result dict.

The result dict is what ``polyir evaluate`` writes as JSON and what ``polyir compare`` reads back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from polyir.data.types import RetrievalTask
from polyir.debias.model import apply_matrix, split_projection
from polyir.evaluation.lareqa import lareqa_metrics
from polyir.evaluation.pairs import pairs_of_lareqa
from polyir.errors import PolyirError
from polyir.evaluation.values import RESULT_FORMAT
from polyir.models.cache import EmbeddingCache
from polyir.models.encoder import Encoder, Precision
from polyir.runinfo import Timer, versions

@dataclass(frozen=True)
class EvalOptions:
    """Knobs of one evaluation run (recorded in the result for reproduction)."""

    precision: Precision = "fp32"
    batch_size: int = 64
    use_cache: bool = False
    show_progress: bool = True
    truncate_dim: int | None = None  # score the first N dimensions, re-normalised (Matryoshka); None = all


def check_truncate_dim(dim: int | None, model_dim: int, *, name: str = "truncate_dim") -> None:
    """Refuse a truncation the model cannot give: ≤ 0, or more dimensions than it has (one line, both numbers)."""
    if dim is None:
        return
    if dim <= 0:
        raise PolyirError(f"{name} {dim}: keep at least 1 dimension (the model has {model_dim})")
    if dim > model_dim:
        raise PolyirError(f"{name} {dim} is larger than the model's embedding dimension {model_dim}")


def truncate_embeddings(x: np.ndarray, dim: int | None) -> np.ndarray:
    """The first ``dim`` dimensions of each row, re-normalised to unit length (``x`` as is for None)."""
    if dim is None:
        return x
    cut = np.array(x[:, :dim], dtype=np.float32)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.maximum(norms, np.float32(1e-12))


def embed_task(
    encoder: Encoder,
    task: RetrievalTask,
    options: EvalOptions,
    timer: Timer | None = None,
    fingerprint: str | None = None,
    memo: dict[tuple[str, str], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Encode the task's queries and candidates; repeated candidate texts are encoded once.

    ``memo`` ((kind, text) -> embedding), shared across calls with one encoder and precision, lets
    tasks that share texts (e.g. NTREX sentences and documents) encode each text only once."""
    timer = timer or Timer()
    split = split_projection(encoder)
    if split is not None:  # encode (and cache, memo) with the model underneath, then project
        raw, matrix = split
        q_raw, c_raw, info = embed_task(raw, task, options, timer, None, memo)
        return apply_matrix(q_raw, matrix), apply_matrix(c_raw, matrix), {**info, "projection": "applied after encoding"}
    if encoder.centering is not None:  # encode (and cache, memo) raw, then centre by the task's languages
        q_raw, c_raw, info = embed_task(encoder.without_centering(), task, options, timer, None, memo)
        q = encoder.centering.apply(q_raw, [x.language for x in task.queries])
        return q, encoder.centering.apply(c_raw, [c.language for c in task.candidates]), info
    cache = EmbeddingCache() if options.use_cache else None
    if cache is not None and fingerprint is None:
        fingerprint = encoder.fingerprint()
    info: dict[str, Any] = {}

    def run(kind: str, texts: list[str]) -> np.ndarray:
        if memo is None:
            return encode(kind, texts)
        missing = [t for t in dict.fromkeys(texts) if (kind, t) not in memo]
        if missing:
            memo.update(((kind, t), row) for t, row in zip(missing, encode(kind, missing)))
        info[f"{kind}_memo_hits"] = len(texts) - len(missing)
        return np.stack([memo[(kind, t)] for t in texts]) if texts else np.zeros((0, encoder.dim), np.float32)

    def encode(kind: str, texts: list[str]) -> np.ndarray:
        def compute() -> np.ndarray:
            return encoder.encode(
                texts,
                kind,  # type: ignore[arg-type]
                batch_size=options.batch_size,
                precision=options.precision,
                show_progress=options.show_progress,
                desc=f"{task.name} {'queries' if kind == 'query' else 'passages'}",
            )

        if cache is None:
            return compute()
        arr, hit = cache.get_or_compute(fingerprint or "", kind, options.precision, texts, compute)
        info[f"{kind}_cache_hit"] = hit
        return arr

    with timer("encode_queries"):
        q_emb = run("query", [q.text for q in task.queries])
    unique_texts: dict[str, int] = {}
    index = np.empty(len(task.candidates), dtype=np.int64)
    for i, c in enumerate(task.candidates):
        index[i] = unique_texts.setdefault(c.text, len(unique_texts))
    with timer("encode_candidates"):
        c_unique = run("passage", list(unique_texts))
    info["unique_candidate_texts"] = len(unique_texts)
    return q_emb, c_unique[index], info


def score_task(
    task: RetrievalTask, q_emb: np.ndarray, c_emb: np.ndarray
) -> Any:
    """LAReQA metrics of precomputed embeddings on a task (``task.excluded`` left out per query)."""
    cand_pos = {c.id: i for i, c in enumerate(task.candidates)}
    relevant = [
        np.fromiter((cand_pos[cid] for cid in sorted(task.relevant[q.id]) if cid in cand_pos), dtype=np.int64)
        for q in task.queries
    ]
    excluded = None
    if task.excluded:
        excluded = [
            np.fromiter((cand_pos[c] for c in sorted(task.excluded.get(q.id, ())) if c in cand_pos), dtype=np.int64)
            for q in task.queries
        ]
    return lareqa_metrics(
        q_emb,
        c_emb,
        [q.language for q in task.queries],
        [c.language for c in task.candidates],
        relevant,
        query_ids=[q.id for q in task.queries],
        excluded=excluded,
    )


def task_fingerprint(task: RetrievalTask) -> str:
    """A sha256 of what a task holds (query and candidate ids, languages, texts; relevance; exclusions):
    ``polyir compare`` refuses two results whose tasks differ although their query ids coincide."""
    h = hashlib.sha256()

    def add(*parts: str) -> None:
        for part in parts:
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        h.update(b"\x01")

    for q in task.queries:
        add("q", q.id, q.language, q.text)
    for c in task.candidates:
        add("c", c.id, c.language, c.text)
    for qid in sorted(task.relevant):
        add("r", qid, *sorted(task.relevant[qid]))
    for qid in sorted(task.excluded):
        add("x", qid, *sorted(task.excluded[qid]))
    return "sha256:" + h.hexdigest()


HEADLINE_KEYS = ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10")


def result_sections(result: Any) -> dict[str, Any]:
    """Split a LareqaResult into the JSON sections: metrics, matrix, pairs, per_language, per_query, ..."""
    flat = result.to_dict(per_query=True)
    metrics = {k: flat.pop(k) for k in list(flat) if k in HEADLINE_KEYS or k.startswith("mul_hit@")}
    matrix = {
        "query_languages": flat.pop("query_languages"),
        "candidate_languages": flat.pop("candidate_languages"),
        "by_language": flat.pop("matrix"),
    }
    matrix["values"] = [
        [matrix["by_language"].get(x, {}).get(y) for y in matrix["candidate_languages"]]
        for x in matrix["query_languages"]
    ]
    return {"metrics": metrics, "matrix": matrix, "pairs": pairs_of_lareqa(result), **flat}


def evaluate_encoder(
    encoder: Encoder,
    task: RetrievalTask,
    options: EvalOptions | None = None,
    *,
    dataset: str | None = None,
    extra_config: dict[str, Any] | None = None,
    memo: dict[tuple[str, str], np.ndarray] | None = None,
    on_embeddings: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation and return the result dict (metrics, matrix, per-query values, run info);
    ``memo`` is passed to :func:`embed_task`; ``on_embeddings(q_emb, c_emb)``, when given, receives the
    task's query and candidate embeddings after scoring (e.g. to write TREC files, ``trec.py``).
    ``options.truncate_dim`` cuts both to their first N dimensions and re-normalises them before scoring
    (a Matryoshka-trained model keeps working so); it is recorded in the result's ``config``."""
    options = options or EvalOptions()
    check_truncate_dim(options.truncate_dim, encoder.dim)
    timer = Timer()
    with timer("total"):
        fingerprint = encoder.fingerprint()
        q_emb, c_emb, info = embed_task(encoder, task, options, timer, fingerprint, memo)
        if options.truncate_dim is not None:  # after the cache and memo, which hold full embeddings
            q_emb = truncate_embeddings(q_emb, options.truncate_dim)
            c_emb = truncate_embeddings(c_emb, options.truncate_dim)
        with timer("scoring"):
            result = score_task(task, q_emb, c_emb)
    if on_embeddings is not None:
        on_embeddings(q_emb, c_emb)
    data = result_sections(result)
    return {
        "format": RESULT_FORMAT,
        "task": task.name,
        "dataset": dataset or task.name,
        "dataset_fingerprint": task_fingerprint(task),
        "model": encoder.spec,
        "fingerprint": fingerprint,
        "config": {
            **asdict(options),
            "encoder": asdict(encoder.settings),
            "device": str(encoder.device),
            "languages": task.query_languages,
            **(extra_config or {}),
        },
        "counts": {
            "queries": len(task.queries),
            "candidates": len(task.candidates),
            **info,
        },
        "notes": task.notes,
        "versions": versions(),
        "timings": timer.seconds,
        **data,
    }
