"""TREC qrels and run files, so that ranx / trec_eval can recompute polyir's figures.

Formats (one line per judgment / ranked document, fields separated by one space)::

    qrels:  qid 0 docid rel
    run:    qid Q0 docid rank score tag

A name ending in ``.gz`` is written gzip-compressed (ranx reads it; pipe it through ``zcat`` for
trec_eval). Every file is written atomically (``polyir.atomic``). Ids may not hold whitespace.

LAReQA runs (:func:`task_run`) hold the pooled (Mul.) ranking of every query: all candidates of all
languages, minus that query's ``task.excluded`` candidates; ``by-language/run.Y.txt`` holds each
query's ranking of language Y's candidates alone (:func:`write_task_trec`), from which ranx / trec_eval
recompute the X->Y matrix, Mo. (its diagonal) and Cr. (the rest). Order = polyir's: score descending; on an
exact tie a non-relevant candidate ranks before a relevant one (polyir's pessimistic AP), then
candidate index ascending. trec_eval would instead break ties by docid, so the written scores are
made **strictly decreasing** in polyir's order (:func:`strictly_decreasing`: each tied score is
lowered by the fewest float32 ulps needed), and any tool that sorts by score reads back polyir's
order; the ``rank`` column is that order too. Over the full ranking (``depth=None``, the default),
trec_eval's / ranx's ``map`` of these files equals polyir's per-query ``ap_mul``; with a ``depth``
it is a lower bound (relevant candidates below the cut count as not retrieved).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from polyir.atomic import atomic_text
from polyir.data.types import RetrievalTask
from polyir.errors import PolyirError

Hit = tuple[str, float]  # (docid, score)
RunLike = Mapping[str, Sequence[Hit]] | Iterable[tuple[str, Sequence[Hit]]]
DEFAULT_MEMORY_BUDGET = 1 << 28  # bytes of scores held at once while building a run


open_trec = atomic_text  # a text handle onto a path, written atomically; gzip when the name ends in .gz


def check_id(value: str, what: str) -> str:
    """``value`` as a TREC field: non-empty, no whitespace (a TREC line is split on whitespace)."""
    if not value or any(ch.isspace() for ch in value):
        raise PolyirError(f"{what} {value!r} cannot go in a TREC file (empty or holds whitespace)")
    return value


def _items(run: RunLike) -> Iterable[tuple[str, Sequence[Hit]]]:
    return run.items() if isinstance(run, Mapping) else run


def write_run(run: RunLike, path: Path | str, tag: str = "polyir") -> Path:
    """Write ranked lists (qid -> [(docid, score), ...] in rank order, a mapping or an iterable of
    pairs, streamed) as a TREC run file ``qid Q0 docid rank score tag``; scores printed with 9
    significant digits (enough to tell float32 values apart)."""
    check_id(tag, "run tag")
    path = Path(path)
    with open_trec(path) as out:
        for q, hits in _items(run):
            out.write(_run_lines(q, hits, tag))
    return path


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: Path | str) -> Path:
    """Write judgments (qid -> docid -> rel) as a TREC qrels file ``qid 0 docid rel``."""
    path = Path(path)
    with open_trec(path) as out:
        for q, docs in qrels.items():
            check_id(q, "query id")
            for docid, rel in docs.items():
                out.write(f"{q} 0 {check_id(docid, 'document id')} {int(rel)}\n")
    return path


# --------------------------------------------------------------------------- LAReQA tasks


def strictly_decreasing(scores: np.ndarray) -> np.ndarray:
    """Non-increasing float32 ``scores`` made strictly decreasing: out[i] = min(s[i], out[i-1] - 1 ulp).

    Works on the float32 bit patterns mapped to ordered integers (adjacent integers = adjacent
    floats), where the recurrence is a cumulative minimum: out = cummin(key + i) - i."""
    s = np.ascontiguousarray(scores, dtype=np.float32)
    if s.size and not np.isfinite(s).all():
        raise PolyirError("scores must be finite to be written to a TREC run")
    bits = s.view(np.int32).astype(np.int64)
    key = np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))
    i = np.arange(len(s), dtype=np.int64)
    out = np.minimum.accumulate(key + i) - i
    back = np.where(out >= 0, out, (-out) | 0x80000000).astype(np.uint32)
    return back.view(np.float32)


def polyir_order(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Indices of ``scores`` in polyir's ranking order: score descending, on an exact tie non-relevant
    (``relevant`` False) first, then index ascending."""
    idx = np.arange(len(scores))
    return np.lexsort((idx, relevant.astype(np.int8), -np.asarray(scores, dtype=np.float64)))


def task_qrels(task: RetrievalTask, language: str | None = None) -> dict[str, dict[str, int]]:
    """The task's judgments (rel 1) restricted to candidates in the pool (of ``language``, when given);
    queries without one left out."""
    in_pool = {c.id for c in task.candidates if language is None or c.language == language}
    out: dict[str, dict[str, int]] = {}
    for q in task.queries:
        rel = sorted(c for c in task.relevant.get(q.id, ()) if c in in_pool)
        if rel:
            out[q.id] = {c: 1 for c in rel}
    return out


def _pooled_scores(q_emb: np.ndarray, c64: torch.Tensor) -> np.ndarray:
    """Dot products accumulated in float64 and rounded to float32, as ``ranking.py`` scores."""
    q64 = torch.from_numpy(np.ascontiguousarray(q_emb, dtype=np.float64))
    with torch.inference_mode():
        return (q64 @ c64.T).to(torch.float32).numpy()


def _score_rows(q_emb: np.ndarray | None, c_emb: np.ndarray | None, scores: np.ndarray | None,
                n_q: int, n_c: int, memory_budget: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first query index, float32 score rows) chunk by chunk, from embeddings or a score matrix."""
    if scores is not None:
        if scores.shape != (n_q, n_c):
            raise PolyirError(f"score matrix has shape {scores.shape}, the task needs {(n_q, n_c)}")
        yield 0, np.asarray(scores, dtype=np.float32)
        return
    if q_emb is None or c_emb is None:
        raise PolyirError("give query and candidate embeddings, or a score matrix")
    if q_emb.shape[0] != n_q or c_emb.shape[0] != n_c:
        raise PolyirError(f"embeddings are {q_emb.shape[0]} x {c_emb.shape[0]}, the task has {n_q} x {n_c}")
    c64 = torch.from_numpy(np.ascontiguousarray(c_emb, dtype=np.float64))
    step = max(1, memory_budget // (16 * max(n_c, 1)))
    for start in range(0, n_q, step):
        yield start, _pooled_scores(q_emb[start : start + step], c64)


def task_rankings(task: RetrievalTask, q_emb: np.ndarray | None = None, c_emb: np.ndarray | None = None,
                  *, scores: np.ndarray | None = None, depth: int | None = None,
                  pools: Sequence[str | None] = (None,),
                  memory_budget: int = DEFAULT_MEMORY_BUDGET) -> Iterator[tuple[str, dict[str | None, list[Hit]]]]:
    """Each query's rankings, one per pool, as (qid, {pool: [(docid, score), ...]}), in query order.

    A pool is None (every candidate: the Mul. ranking) or a language Y (its candidates only: the X->Y
    ranking behind Mo. and Cr.); a query with no relevant candidate in Y has no Y ranking (polyir
    leaves that AP undefined). Scores come from the embeddings (dot product, as polyir scores) or
    from ``scores`` [n_q, n_c]; a query's excluded candidates are left out; order and strictly
    decreasing scores as in the module doc. ``depth`` keeps the top ``depth`` (None: all)."""
    if depth is not None and depth < 1:
        raise PolyirError(f"depth must be at least 1, not {depth}")
    n_q, n_c = len(task.queries), len(task.candidates)
    cand_ids = [check_id(c.id, "candidate id") for c in task.candidates]
    cand_lang = np.array([c.language for c in task.candidates], dtype=object)
    in_pool = {p: np.ones(n_c, dtype=bool) if p is None else cand_lang == p for p in pools}
    pos = {cid: i for i, cid in enumerate(cand_ids)}
    for start, rows in _score_rows(q_emb, c_emb, scores, n_q, n_c, memory_budget):
        for offset, row in enumerate(rows):
            q = task.queries[start + offset]
            keep = np.ones(n_c, dtype=bool)
            keep[[pos[c] for c in task.excluded.get(q.id, ()) if c in pos]] = False
            relevant = np.zeros(n_c, dtype=bool)
            relevant[[pos[c] for c in task.relevant.get(q.id, ()) if c in pos]] = True
            out: dict[str | None, list[Hit]] = {}
            for pool, members in in_pool.items():
                kept = np.flatnonzero(keep & members)
                if pool is not None and not relevant[kept].any():
                    continue
                order = kept[polyir_order(row[kept], relevant[kept])][:depth]
                written = strictly_decreasing(row[order])
                out[pool] = [(cand_ids[j], float(v)) for j, v in zip(order, written)]
            yield q.id, out


def task_run(task: RetrievalTask, q_emb: np.ndarray | None = None, c_emb: np.ndarray | None = None,
             *, scores: np.ndarray | None = None, depth: int | None = None, language: str | None = None,
             memory_budget: int = DEFAULT_MEMORY_BUDGET) -> Iterator[tuple[str, list[Hit]]]:
    """Each query's pooled (Mul.) ranking as (qid, [(docid, score), ...]), streamed in query order;
    with ``language``, its ranking of that language's candidates (see :func:`task_rankings`)."""
    for qid, ranked in task_rankings(task, q_emb, c_emb, scores=scores, depth=depth, pools=(language,),
                                     memory_budget=memory_budget):
        if language in ranked:
            yield qid, ranked[language]


def _run_lines(qid: str, hits: Sequence[Hit], tag: str) -> str:
    check_id(qid, "query id")
    return "".join(f"{qid} Q0 {check_id(d, 'document id')} {rank} {score:.9g} {tag}\n"
                   for rank, (d, score) in enumerate(hits, start=1))


def write_task_trec(task: RetrievalTask, folder: Path | str, q_emb: np.ndarray | None = None,
                    c_emb: np.ndarray | None = None, *, scores: np.ndarray | None = None,
                    depth: int | None = None, compress: bool = False, tag: str = "polyir",
                    by_language: bool = True) -> dict[str, Path]:
    """Write ``folder/qrels.txt`` and ``folder/run.txt`` (``run.txt.gz`` with ``compress``) for the
    task's pooled (Mul.) ranking and, with ``by_language``, ``folder/by-language/qrels.Y.txt`` and
    ``run.Y.txt`` for every candidate language Y (each query's ranking of Y's candidates: ranx's AP
    there is polyir's X->Y value, whose diagonal gives Mo. and the rest Cr.). One scoring pass; every
    file atomic. Returns {"qrels": path, "run": path, "qrels.Y": path, "run.Y": path, ...}."""
    from contextlib import ExitStack

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PolyirError(f"TREC output {folder} is a file; give a folder")
    check_id(tag, "run tag")
    langs = task.candidate_languages if by_language else []
    suffix = ".txt.gz" if compress else ".txt"
    paths = {"qrels": write_qrels(task_qrels(task), folder / "qrels.txt")}
    for y in langs:
        paths[f"qrels.{y}"] = write_qrels(task_qrels(task, y), folder / "by-language" / f"qrels.{check_id(y, 'language')}.txt")
    runs: dict[str | None, Path] = {None: folder / f"run{suffix}"}
    runs.update({y: folder / "by-language" / f"run.{y}{suffix}" for y in langs})
    with ExitStack() as stack:
        handles = {pool: stack.enter_context(open_trec(path)) for pool, path in runs.items()}
        for qid, ranked in task_rankings(task, q_emb, c_emb, scores=scores, depth=depth, pools=list(runs)):
            for pool, hits in ranked.items():
                handles[pool].write(_run_lines(qid, hits, tag))
    paths["run"] = runs[None]
    paths.update({f"run.{y}": runs[y] for y in langs})
    return paths
