"""Exact ranks of each query's relevant candidates, for any pool of candidate languages.

One pass over the query x candidate score matrix (in chunks of queries, so memory stays bounded
whatever the pool size) records, for every (query, relevant candidate r) and every candidate
language Y, how many NON-relevant candidates of language Y score >= score(r) (ties pessimistic),
and how many of them tie exactly.  The rank of r in a pool restricted to any set of languages
follows from these counts, so Mo., Cr. and Mul. rankings all come from the same single pass.

Scores are dot products accumulated in float64 and rounded to float32.  Plain float32 matrix
products differ in the last bit between chunk shapes (BLAS kernels change with the number of
rows), which would make ties and ranks depend on the chunk size.  float32 inputs multiply exactly
in float64 and the float64 sum is ~1e-16 off, so after rounding to float32 the score is the same
whatever the chunking (unless the float64 value sits within ~1e-16 of a float32 rounding
boundary: a few elements in 1e8, and changing a rank would further need a tie within one float32
ulp), and equal embeddings give bit-identical, hence tied, scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from polyir.errors import PolyirError

#: Default working-memory budget (bytes) for one chunk of the score matrix.
DEFAULT_MEMORY_BUDGET = 1 << 30
# float64 product + float32 copy + a boolean mask per score, rounded up.
_BYTES_PER_SCORE = 16


class EvaluationInputError(PolyirError, ValueError):
    """Evaluation inputs are empty, mis-shaped or inconsistent (a ValueError the CLI reports cleanly)."""


def plan_chunk_size(n_candidates: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Queries scored at once so that one chunk's working set stays within ``memory_budget`` bytes.

    The budget covers the per-chunk score buffers (16 bytes per query x candidate score); the
    float64 copy of the candidate embeddings (n_candidates x d x 8 bytes) comes on top.
    """
    if n_candidates < 1:
        raise EvaluationInputError("n_candidates must be >= 1")
    if memory_budget < 1:
        raise EvaluationInputError(f"memory_budget must be a positive number of bytes, got {memory_budget}")
    return max(1, int(memory_budget) // (_BYTES_PER_SCORE * int(n_candidates)))


@dataclass(frozen=True)
class PoolRanks:
    """Ranks of relevant candidates within one pool (a set of candidate languages).

    Arrays are aligned with the pairs of the parent :class:`RelevantRanks`; pairs whose candidate
    is outside the pool have ``in_pool`` False and ``position == rank == 0``.
    """

    languages: tuple[str, ...]
    in_pool: np.ndarray  # (n_pairs,) bool
    position: np.ndarray  # (n_pairs,) 1-based position among the query's relevant candidates in the pool
    rank: np.ndarray  # (n_pairs,) 1-based rank in the pool (pessimistic on ties with non-relevant)
    n_relevant: np.ndarray  # (n_queries,) relevant candidates in the pool
    offsets: np.ndarray  # (n_queries + 1,) as in RelevantRanks
    query_of_pair: np.ndarray  # (n_pairs,)

    def average_precision(self) -> np.ndarray:
        """AP per query over the full pool ranking; NaN for queries with no relevant candidate in the pool."""
        n_q = len(self.n_relevant)
        prec = np.where(self.in_pool, self.position / np.maximum(self.rank, 1), 0.0)
        total = np.bincount(self.query_of_pair, weights=prec, minlength=n_q)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = total / self.n_relevant
        ap[self.n_relevant == 0] = np.nan
        return ap

    def best_rank(self) -> np.ndarray:
        """Rank of the best-ranked relevant candidate per query (0 when none is in the pool)."""
        big = np.iinfo(np.int64).max
        best = np.minimum.reduceat(np.where(self.in_pool, self.rank, big), self.offsets[:-1])
        return np.where(self.n_relevant > 0, best, 0)

    def worst_rank(self) -> np.ndarray:
        """Rank of the worst-ranked relevant candidate per query (0 when none is in the pool)."""
        return np.maximum.reduceat(self.rank, self.offsets[:-1])


@dataclass(frozen=True)
class RelevantRanks:
    """Per (query, relevant candidate) pair: score and per-language counts of non-relevant candidates.

    Pairs of query ``q`` are ``offsets[q]:offsets[q+1]``, ordered by score descending then candidate
    index ascending (the order in which relevant candidates rank among themselves).
    """

    languages: tuple[str, ...]  # candidate languages, sorted; the columns of ``ge`` and ``ties``
    candidates_per_language: np.ndarray  # (L,)
    offsets: np.ndarray  # (n_queries + 1,)
    candidate: np.ndarray  # (n_pairs,) relevant candidate index
    language: np.ndarray  # (n_pairs,) index of the candidate's language in ``languages``
    score: np.ndarray  # (n_pairs,) float32
    ge: np.ndarray  # (n_pairs, L) non-relevant candidates of language Y with score >= score
    ties: np.ndarray  # (n_pairs, L) non-relevant candidates of language Y with score == score

    @property
    def n_queries(self) -> int:
        """Number of queries."""
        return len(self.offsets) - 1

    @property
    def query_of_pair(self) -> np.ndarray:
        """Query index of every pair."""
        return np.repeat(np.arange(self.n_queries), np.diff(self.offsets))

    def pool_ranks(self, languages: Iterable[str] | None = None) -> PoolRanks:
        """Ranks within the pool of candidates whose language is in ``languages`` (None: all).

        Languages without candidates are ignored.  Rank of a relevant r = (relevant in the pool
        ranked before r, ties among relevant broken by index) + 1 + (non-relevant in the pool
        scoring >= score(r)).
        """
        if languages is None:
            pool = self.languages
        else:
            if isinstance(languages, str):
                languages = [languages]
            wanted = {str(x) for x in languages}
            pool = tuple(x for x in self.languages if x in wanted)
        cols = np.array([self.languages.index(x) for x in pool], dtype=np.int64)
        in_pool = np.isin(self.language, cols)
        counts = np.diff(self.offsets)
        cum = np.cumsum(in_pool)
        before = np.concatenate([[0], cum])[self.offsets[:-1]]
        position = np.where(in_pool, cum - np.repeat(before, counts), 0)
        nonrel = self.ge[:, cols].sum(axis=1) if len(cols) else np.zeros(len(in_pool), dtype=np.int64)
        rank = np.where(in_pool, position + nonrel, 0)
        qp = self.query_of_pair
        n_rel = np.bincount(qp, weights=in_pool, minlength=self.n_queries).astype(np.int64)
        return PoolRanks(
            languages=pool,
            in_pool=in_pool,
            position=position.astype(np.int64),
            rank=rank.astype(np.int64),
            n_relevant=n_rel,
            offsets=self.offsets,
            query_of_pair=qp,
        )


# ----------------------------------------------------------------------------------------------
# input checks shared with lareqa.py


def as_embedding_matrix(x: Any, name: str) -> np.ndarray:
    """Check that ``x`` is a non-empty finite 2-D numeric array and return it as a numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise EvaluationInputError(f"{name} must be a 2-D array (n x d), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise EvaluationInputError(f"{name} is empty (shape {arr.shape})")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise EvaluationInputError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise EvaluationInputError(f"{name} holds NaN or infinite values")
    return arr


def as_codes(values: Sequence[Any], n: int, name: str, what: str) -> list[str]:
    """Language codes as strings, checking there is one per row of ``what``."""
    if isinstance(values, str):
        raise EvaluationInputError(f"{name} must be a sequence of language codes, not a single string")
    codes = [str(v) for v in (values.tolist() if isinstance(values, np.ndarray) else values)]
    if len(codes) != n:
        raise EvaluationInputError(f"{name} has {len(codes)} codes but there are {n} {what}")
    return codes


def flatten_relevant(
    relevant: Sequence[Any], n_queries: int, n_candidates: int, query_ids: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-query relevant sets and return (offsets, flat sorted unique candidate indices)."""
    if isinstance(relevant, np.ndarray) and relevant.dtype != object and relevant.ndim == 2:
        relevant = list(relevant)
    if len(relevant) != n_queries:
        raise EvaluationInputError(f"relevant has {len(relevant)} entries but there are {n_queries} queries")
    parts: list[np.ndarray] = []
    for i, rel in enumerate(relevant):
        label = f"query {i}" + (f" (id {query_ids[i]!r})" if query_ids is not None else "")
        if isinstance(rel, torch.Tensor):
            rel = rel.detach().cpu().numpy()
        arr = np.asarray(rel).reshape(-1)
        if arr.size == 0:
            raise EvaluationInputError(f"{label} has no relevant candidate at all")
        if not np.issubdtype(arr.dtype, np.integer):
            raise EvaluationInputError(f"{label}: relevant indices must be integers, got dtype {arr.dtype}")
        arr = np.unique(arr.astype(np.int64))
        if arr[0] < 0 or arr[-1] >= n_candidates:
            bad = arr[(arr < 0) | (arr >= n_candidates)][0]
            raise EvaluationInputError(
                f"{label}: relevant index {int(bad)} is out of range for {n_candidates} candidates"
            )
        parts.append(arr)
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return offsets, np.concatenate(parts)


def flatten_excluded(
    excluded: Sequence[Any], n_queries: int, n_candidates: int, rel_offsets: np.ndarray, rel_flat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-query excluded sets (may be empty; never relevant to the same query) and return
    (offsets, flat sorted unique candidate indices)."""
    if len(excluded) != n_queries:
        raise EvaluationInputError(f"excluded has {len(excluded)} entries but there are {n_queries} queries")
    parts: list[np.ndarray] = []
    for i, exc in enumerate(excluded):
        if isinstance(exc, torch.Tensor):
            exc = exc.detach().cpu().numpy()
        arr = np.asarray(exc if exc is not None else [], dtype=np.int64).reshape(-1)
        arr = np.unique(arr)
        if arr.size and (arr[0] < 0 or arr[-1] >= n_candidates):
            bad = arr[(arr < 0) | (arr >= n_candidates)][0]
            raise EvaluationInputError(
                f"query {i}: excluded index {int(bad)} is out of range for {n_candidates} candidates"
            )
        if arr.size and np.isin(arr, rel_flat[rel_offsets[i] : rel_offsets[i + 1]]).any():
            raise EvaluationInputError(f"query {i}: a candidate is both relevant and excluded")
        parts.append(arr)
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return offsets, flat.astype(np.int64)


# ----------------------------------------------------------------------------------------------


def rank_relevant(
    query_emb: Any,
    cand_emb: Any,
    cand_lang: Sequence[Any],
    relevant: Sequence[Any],
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    chunk_size: int | None = None,
    query_ids: Sequence[Any] | None = None,
    excluded: Sequence[Any] | None = None,
) -> RelevantRanks:
    """Score all queries against all candidates (dot product) and count, per relevant pair and language,
    the non-relevant candidates scoring >= and == the relevant one.

    ``chunk_size`` (queries per matrix product) overrides the one derived from ``memory_budget``
    (bytes); the result does not depend on it.  ``query_ids`` only label error messages.
    ``excluded[i]`` (optional) holds candidate indices that query ``i`` does not rank at all: their
    score is set to -inf for that query, so they are never counted, exactly as if removed from its pool.
    """
    q = as_embedding_matrix(query_emb, "query embeddings")
    c = as_embedding_matrix(cand_emb, "candidate embeddings")
    if q.shape[1] != c.shape[1]:
        raise EvaluationInputError(
            f"query embeddings have dimension {q.shape[1]} but candidate embeddings have {c.shape[1]}"
        )
    n_q, n_c = q.shape[0], c.shape[0]
    codes = as_codes(cand_lang, n_c, "cand_lang", "candidates")
    offsets, flat = flatten_relevant(relevant, n_q, n_c, query_ids)
    excl = None if excluded is None else flatten_excluded(excluded, n_q, n_c, offsets, flat)
    if chunk_size is None:
        chunk_size = plan_chunk_size(n_c, memory_budget)
    elif chunk_size < 1:
        raise EvaluationInputError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk_size = min(int(chunk_size), n_q)

    languages = tuple(sorted(set(codes)))
    lang_of = {x: i for i, x in enumerate(languages)}
    cand_lang_idx = np.array([lang_of[x] for x in codes], dtype=np.int64)
    n_lang = len(languages)
    per_lang = np.bincount(cand_lang_idx, minlength=n_lang).astype(np.int64)
    # Candidates grouped by language so each language is a contiguous block of score columns.
    perm = np.argsort(cand_lang_idx, kind="stable")
    inv = np.empty(n_c, dtype=np.int64)
    inv[perm] = np.arange(n_c)
    bounds = np.concatenate([[0], np.cumsum(per_lang)])
    blocks = [(int(bounds[i]), int(bounds[i + 1])) for i in range(n_lang)]
    c64 = torch.from_numpy(np.ascontiguousarray(c[perm], dtype=np.float64))

    n_pairs = len(flat)
    n_rel = np.diff(offsets)
    out_score = np.empty(n_pairs, dtype=np.float32)
    out_ge = np.empty((n_pairs, n_lang), dtype=np.int64)
    out_eq = np.empty((n_pairs, n_lang), dtype=np.int64)

    # Queries with similar numbers of relevant candidates go in the same chunk (less padding).
    order = np.argsort(n_rel, kind="stable")
    for start in range(0, n_q, chunk_size):
        rows = order[start : start + chunk_size]
        _score_chunk(q, rows, c64, offsets, flat, inv, n_rel, blocks, out_score, out_ge, out_eq, excl)

    # Within each query: score descending, then candidate index ascending.
    qp = np.repeat(np.arange(n_q), n_rel)
    key = np.lexsort((flat, -out_score.astype(np.float64), qp))
    cand = flat[key]
    return RelevantRanks(
        languages=languages,
        candidates_per_language=per_lang,
        offsets=offsets,
        candidate=cand,
        language=cand_lang_idx[cand],
        score=out_score[key],
        ge=out_ge[key],
        ties=out_eq[key],
    )


def _score_chunk(
    q: np.ndarray,
    rows: np.ndarray,
    c64: torch.Tensor,
    offsets: np.ndarray,
    flat: np.ndarray,
    inv: np.ndarray,
    n_rel: np.ndarray,
    blocks: list[tuple[int, int]],
    out_score: np.ndarray,
    out_ge: np.ndarray,
    out_eq: np.ndarray,
    excluded: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Fill the outputs for the pairs of queries ``rows`` (sorted by number of relevant, ascending)."""
    kr = n_rel[rows]
    kmax = int(kr.max())
    b = len(rows)
    q64 = torch.from_numpy(np.ascontiguousarray(q[rows], dtype=np.float64))
    with torch.inference_mode():
        scores = (q64 @ c64.T).to(torch.float32).numpy()  # b x n_c, columns grouped by language
    if excluded is not None:
        # Excluded candidates score -inf for their query: below every (finite) threshold, never counted.
        e_off, e_flat = excluded
        n_ex = e_off[rows + 1] - e_off[rows]
        if n_ex.sum():
            row_rep = np.repeat(np.arange(b), n_ex)
            within = np.arange(int(n_ex.sum())) - np.repeat(np.cumsum(n_ex) - n_ex, n_ex)
            scores[row_rep, inv[e_flat[np.repeat(e_off[rows], n_ex) + within]]] = -np.inf
    col = np.arange(kmax)
    valid = col[None, :] < kr[:, None]
    pair = np.where(valid, offsets[rows][:, None] + col[None, :], 0)
    pos = inv[flat[pair]]
    thresholds = np.take_along_axis(scores, pos, axis=1)
    thresholds[~valid] = np.inf
    if not np.isfinite(thresholds[valid]).all():
        raise EvaluationInputError("scores overflow float32; are the embeddings normalised?")
    r_idx, c_idx = np.nonzero(valid)
    # Relevant candidates never count as non-relevant: push them below every threshold.
    scores[r_idx, pos[r_idx, c_idx]] = -np.inf
    n_lang = len(blocks)
    ge = np.zeros((b, kmax, n_lang), dtype=np.int64)
    eq = np.zeros((b, kmax, n_lang), dtype=np.int64)
    # numpy releases the GIL in comparisons and reductions: count row slices in parallel threads.
    n_threads = max(1, min(torch.get_num_threads(), b // 64))
    cuts = np.linspace(0, b, n_threads + 1).astype(int)
    parts = [(int(lo), int(hi)) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]
    if len(parts) == 1:
        _count(scores, thresholds, kr, blocks, ge, eq)
    else:
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            jobs = [
                pool.submit(_count, scores[lo:hi], thresholds[lo:hi], kr[lo:hi], blocks, ge[lo:hi], eq[lo:hi])
                for lo, hi in parts
            ]
            for job in jobs:
                job.result()
    dest = pair[valid]
    out_score[dest] = thresholds[valid]
    out_ge[dest] = ge[valid]
    out_eq[dest] = eq[valid]


def _count(
    scores: np.ndarray,
    thresholds: np.ndarray,
    kr: np.ndarray,
    blocks: list[tuple[int, int]],
    ge: np.ndarray,
    eq: np.ndarray,
) -> None:
    """Per row, threshold j and language block: count scores >= and == the threshold (in place)."""
    mask = np.empty(scores.shape, dtype=bool)
    for j in range(thresholds.shape[1]):
        s0 = int(np.searchsorted(kr, j, side="right"))  # rows holding a j-th relevant candidate
        if s0 == len(kr):
            continue
        sub = scores[s0:]
        t = thresholds[s0:, j : j + 1]
        m = mask[s0:]
        np.greater_equal(sub, t, out=m)
        for li, (a, z) in enumerate(blocks):
            ge[s0:, j, li] = np.count_nonzero(m[:, a:z], axis=1)
        np.equal(sub, t, out=m)
        tied = np.flatnonzero(np.count_nonzero(m, axis=1))  # exact ties are rare: count only there
        if len(tied):
            for li, (a, z) in enumerate(blocks):
                eq[s0 + tied, j, li] = np.count_nonzero(m[tied, a:z], axis=1)
