"""LAReQA metrics (Roy et al. 2020) for XQuAD-R / MLQA-R: Mo., Cr., Mul. mAP and rank distance.

AP is taken over the full ranking of a pool (never @20, which is XTREME-R's variant).  All pools
(each single language, and all languages together) come from one scoring pass, see ranking.py.
Per-query values are kept so that two runs can be compared with paired tests (significance.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyir.evaluation.values import nanmean, to_json_floats
from polyir.evaluation.ranking import (
    DEFAULT_MEMORY_BUDGET,
    EvaluationInputError,
    RelevantRanks,
    as_codes,
    as_embedding_matrix,
    rank_relevant,
)


@dataclass(frozen=True)
class LareqaPerQuery:
    """Per-query values, aligned by query index; NaN where a value is undefined."""

    query_id: np.ndarray  # (n_q,) ids given by the caller, else 0..n_q-1
    query_lang: np.ndarray  # (n_q,) str
    n_relevant: np.ndarray  # (n_q,) relevant candidates, all languages
    ap_mul: np.ndarray  # (n_q,) AP in the pooled (all languages) ranking
    ap_mo: np.ndarray  # (n_q,) AP against candidates of the query's own language (NaN: none relevant)
    ap_by_language: np.ndarray  # (n_q, n_cand_lang) AP against candidates of each single language Y
    rank_distance: np.ndarray  # (n_q,) max - min pooled rank of relevant candidates (NaN: < 2 relevant)
    best_rank: np.ndarray  # (n_q,) pooled rank of the best-ranked relevant candidate
    candidate_languages: tuple[str, ...]  # columns of ap_by_language
    # (n_q, n_cand_lang) rank of the best relevant candidate within each single language Y (0: none);
    # feeds the per-pair hit@1 (pairs.py); not written per query to keep result files small
    best_rank_by_language: np.ndarray | None = None

    def ap_cr(self) -> np.ndarray:
        """``ap_by_language`` with each query's own language masked (NaN): the Cr. values."""
        out = self.ap_by_language.copy()
        for j, y in enumerate(self.candidate_languages):
            out[self.query_lang == y, j] = np.nan
        return out

    def hit(self, k: int) -> np.ndarray:
        """1.0 where the best-ranked relevant candidate is within the top ``k`` of the pooled ranking."""
        return (self.best_rank <= k).astype(np.float64)

    def values(self, metric: str) -> np.ndarray:
        """Per-query values behind a macro metric: mo_map, cr_map (2-D), mul_map, rank_distance, mul_hit@k."""
        if metric == "mo_map":
            return self.ap_mo
        if metric == "cr_map":
            return self.ap_cr()
        if metric == "mul_map":
            return self.ap_mul
        if metric == "rank_distance":
            return self.rank_distance
        if metric.startswith("mul_hit@"):
            return self.hit(int(metric.split("@", 1)[1]))
        raise ValueError(f"unknown LAReQA metric {metric!r}")

    def to_dict(self) -> dict[str, list[Any]]:
        """JSON-safe lists (NaN becomes None)."""
        return {
            "query_id": [_py(v) for v in self.query_id.tolist()],
            "query_lang": self.query_lang.tolist(),
            "n_relevant": self.n_relevant.tolist(),
            "ap_mul": to_json_floats(self.ap_mul),
            "ap_mo": to_json_floats(self.ap_mo),
            "ap_by_language": {
                y: to_json_floats(self.ap_by_language[:, j]) for j, y in enumerate(self.candidate_languages)
            },
            "rank_distance": to_json_floats(self.rank_distance),
            "best_rank": self.best_rank.tolist(),
        }


@dataclass(frozen=True)
class LareqaResult:
    """Macro-averaged LAReQA figures, the X->Y matrix, per-language and per-query values."""

    mo_map: float  # macro over query languages X of mAP(X -> X)
    cr_map: float  # macro over ordered pairs (X, Y != X) that have at least one query
    mul_map: float  # macro over X of mAP(X -> all languages pooled)
    rank_distance: float  # macro over X of the mean per-query pooled (max rank - min rank); lower is better
    mul_hit: dict[int, float]  # k -> macro over X of the share of queries with a relevant in the pooled top k
    query_languages: tuple[str, ...]  # sorted; rows of matrix_array
    candidate_languages: tuple[str, ...]  # sorted; columns of matrix_array
    matrix: dict[str, dict[str, float]]  # X -> Y -> mAP; (X, Y) with no query left out
    matrix_array: np.ndarray  # (len(query_languages), len(candidate_languages)); NaN where no query
    per_language: dict[str, dict[str, float]]  # X -> {n_queries, mo, cr, mul, rank_distance, mul_hit@k}
    cr_pairs: int  # pairs averaged into cr_map
    cr_missing_pairs: list[tuple[str, str]]  # (X, Y != X) without any query having a relevant in Y
    mo_missing_languages: list[str]  # query languages with no Mo. value
    mo_skipped_queries: int  # queries with no relevant candidate in their own language
    ties: dict[str, int]  # pooled: pairs (query, relevant) with a tied non-relevant, and tied candidates
    n_queries: int
    n_candidates: int
    per_query: LareqaPerQuery = field(repr=False)

    def to_dict(self, per_query: bool = False) -> dict[str, Any]:
        """JSON-safe summary (NaN becomes None); ``per_query=True`` adds the per-query values."""
        out: dict[str, Any] = {
            "mo_map": _py(self.mo_map),
            "cr_map": _py(self.cr_map),
            "mul_map": _py(self.mul_map),
            "rank_distance": _py(self.rank_distance),
        }
        for k, v in self.mul_hit.items():
            out[f"mul_hit@{k}"] = _py(v)
        out.update(
            {
                "n_queries": self.n_queries,
                "n_candidates": self.n_candidates,
                "query_languages": list(self.query_languages),
                "candidate_languages": list(self.candidate_languages),
                "matrix": {x: {y: _py(v) for y, v in row.items()} for x, row in self.matrix.items()},
                "per_language": {x: {k: _py(v) for k, v in d.items()} for x, d in self.per_language.items()},
                "cr_pairs": self.cr_pairs,
                "cr_missing_pairs": [list(p) for p in self.cr_missing_pairs],
                "mo_missing_languages": list(self.mo_missing_languages),
                "mo_skipped_queries": self.mo_skipped_queries,
                "ties": dict(self.ties),
            }
        )
        if per_query:
            out["per_query"] = self.per_query.to_dict()
        return out


def _py(v: Any) -> Any:
    """Python scalar, NaN -> None (JSON has no NaN)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def lareqa_metrics(
    query_emb: Any,
    cand_emb: Any,
    query_lang: Sequence[Any],
    cand_lang: Sequence[Any],
    relevant: Sequence[Any],
    *,
    query_ids: Sequence[Any] | None = None,
    hit_ks: Sequence[int] = (1, 10),
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    chunk_size: int | None = None,
    excluded: Sequence[Any] | None = None,
) -> LareqaResult:
    """LAReQA metrics from embeddings (score = dot product).

    ``relevant[i]`` holds the indices of the candidates (any language) relevant to query ``i``;
    every query needs at least one.  ``excluded[i]`` (optional) holds candidates query ``i`` does not
    rank (e.g. its own sentence): every figure is that of a pool without them, for that query.
    ``memory_budget`` (bytes) bounds the score chunk; ``chunk_size`` forces the number of queries
    per chunk.  ``query_ids`` (unique) label per-query values so two runs can be paired.
    """
    q = as_embedding_matrix(query_emb, "query embeddings")
    n_q = q.shape[0]
    q_codes = as_codes(query_lang, n_q, "query_lang", "queries")
    ids = _query_ids(query_ids, n_q)
    ranks = rank_relevant(
        q,
        cand_emb,
        cand_lang,
        relevant,
        memory_budget=memory_budget,
        chunk_size=chunk_size,
        query_ids=None if query_ids is None else list(ids),
        excluded=excluded,
    )
    return lareqa_from_ranks(ranks, q_codes, query_ids=ids, hit_ks=hit_ks)


def _query_ids(query_ids: Sequence[Any] | None, n_q: int) -> np.ndarray:
    if query_ids is None:
        return np.arange(n_q)
    ids = np.asarray(list(query_ids), dtype=object)
    if len(ids) != n_q:
        raise EvaluationInputError(f"query_ids has {len(ids)} ids but there are {n_q} queries")
    if len(set(ids.tolist())) != n_q:
        raise EvaluationInputError("query_ids are not unique")
    return ids


def lareqa_from_ranks(
    ranks: RelevantRanks,
    query_lang: Sequence[Any],
    *,
    query_ids: Sequence[Any] | None = None,
    hit_ks: Sequence[int] = (1, 10),
) -> LareqaResult:
    """LAReQA metrics from a precomputed :func:`rank_relevant` result (reuse one scoring pass)."""
    n_q = ranks.n_queries
    q_lang = np.array(as_codes(query_lang, n_q, "query_lang", "queries"), dtype=object)
    ids = _query_ids(query_ids, n_q)
    hit_ks = tuple(int(k) for k in hit_ks)
    if any(k < 1 for k in hit_ks):
        raise EvaluationInputError(f"hit_ks must be >= 1, got {hit_ks}")
    q_langs = tuple(sorted(set(q_lang.tolist())))
    c_langs = ranks.languages

    pooled = ranks.pool_ranks(None)
    ap_mul = pooled.average_precision()
    best = pooled.best_rank()
    worst = pooled.worst_rank()
    n_rel = np.diff(ranks.offsets)
    rank_dist = np.where(n_rel >= 2, (worst - best).astype(np.float64), np.nan)

    ap_by = np.empty((n_q, len(c_langs)), dtype=np.float64)
    best_by = np.zeros((n_q, len(c_langs)), dtype=np.int64)
    for j, y in enumerate(c_langs):
        pool_y = ranks.pool_ranks([y])
        ap_by[:, j] = pool_y.average_precision()
        best_by[:, j] = pool_y.best_rank()
    ap_mo = np.full(n_q, np.nan)
    for j, y in enumerate(c_langs):
        own = q_lang == y
        ap_mo[own] = ap_by[own, j]

    masks = {x: q_lang == x for x in q_langs}
    mat = np.full((len(q_langs), len(c_langs)), np.nan)
    for i, x in enumerate(q_langs):
        for j in range(len(c_langs)):
            mat[i, j] = nanmean(ap_by[masks[x], j])
    matrix = {
        x: {y: float(mat[i, j]) for j, y in enumerate(c_langs) if not np.isnan(mat[i, j])}
        for i, x in enumerate(q_langs)
    }

    mo = {x: (matrix[x].get(x, float("nan"))) for x in q_langs}
    cr_vals: list[float] = []
    cr_missing: list[tuple[str, str]] = []
    cr_by_x: dict[str, list[float]] = {x: [] for x in q_langs}
    for x in q_langs:
        for y in c_langs:
            if y == x:
                continue
            if y in matrix[x]:
                cr_vals.append(matrix[x][y])
                cr_by_x[x].append(matrix[x][y])
            else:
                cr_missing.append((x, y))

    per_language: dict[str, dict[str, float]] = {}
    for x in q_langs:
        m = masks[x]
        d: dict[str, float] = {
            "n_queries": int(m.sum()),
            "mo": mo[x],
            "cr": float(np.mean(cr_by_x[x])) if cr_by_x[x] else float("nan"),
            "mul": nanmean(ap_mul[m]),
            "rank_distance": nanmean(rank_dist[m]),
        }
        for k in hit_ks:
            d[f"mul_hit@{k}"] = float((best[m] <= k).mean())
        per_language[x] = d

    per_query = LareqaPerQuery(
        query_id=ids,
        query_lang=q_lang.astype(str),
        n_relevant=n_rel.astype(np.int64),
        ap_mul=ap_mul,
        ap_mo=ap_mo,
        ap_by_language=ap_by,
        rank_distance=rank_dist,
        best_rank=best,
        candidate_languages=c_langs,
        best_rank_by_language=best_by,
    )
    tied_per_pair = ranks.ties.sum(axis=1)
    return LareqaResult(
        mo_map=nanmean(np.array([mo[x] for x in q_langs])),
        cr_map=float(np.mean(cr_vals)) if cr_vals else float("nan"),
        mul_map=nanmean(np.array([per_language[x]["mul"] for x in q_langs])),
        rank_distance=nanmean(np.array([per_language[x]["rank_distance"] for x in q_langs])),
        mul_hit={k: nanmean(np.array([per_language[x][f"mul_hit@{k}"] for x in q_langs])) for k in hit_ks},
        query_languages=q_langs,
        candidate_languages=c_langs,
        matrix=matrix,
        matrix_array=mat,
        per_language=per_language,
        cr_pairs=len(cr_vals),
        cr_missing_pairs=cr_missing,
        mo_missing_languages=[x for x in q_langs if math.isnan(mo[x])],
        mo_skipped_queries=int(np.isnan(ap_mo).sum()),
        ties={
            "pairs": int(len(tied_per_pair)),
            "pairs_with_ties": int((tied_per_pair > 0).sum()),
            "tied_candidates": int(tied_per_pair.sum()),
        },
        n_queries=n_q,
        n_candidates=int(ranks.candidates_per_language.sum()),
        per_query=per_query,
    )
