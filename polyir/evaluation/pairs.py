"""Per language pair (X -> Y) figures and the pairs where a model is weakest.

Every result JSON carries a ``pairs`` section built here: for each ordered pair of query language X
and candidate language Y, the mAP of X's queries against Y's candidates only, the share of them whose
best relevant Y candidate ranks first in Y's pool (hit@1), and the number of queries that have a
relevant candidate in Y.  Results written before this section existed get the same figures from their
per-query values (:func:`pairs_of_result`).

Weakest pairs (the rule is recorded in the section, see :func:`weakest_pairs`): among the cross-lingual
pairs (X != Y; all pairs when there is none), a pair is flagged when it is one of the ``k`` lowest by
mAP (``lowest``), or when its mAP is more than ``margin`` below the mean of the other pairs of its row
(same query language) AND below the mean of the other pairs of its column (same candidate language)
(``outlier``: weak beyond what its two languages explain).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from polyir.evaluation.values import from_json_floats

DEFAULT_K = 5
DEFAULT_MARGIN = 0.05


def pair_table(
    query_lang: Sequence[str],
    ap_by_language: np.ndarray,
    candidate_languages: Sequence[str],
    hit1: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One entry per (X, Y) with at least one query: ``query``, ``candidate``, ``map``, ``hit@1``, ``n_queries``.

    ``ap_by_language`` is (queries x candidate languages), NaN where a query has no relevant candidate
    in Y; ``hit1`` (same shape, 1.0/0.0, NaN where unknown) gives hit@1, which is None for a pair
    with any unknown value.
    """
    q_lang = np.asarray(list(query_lang), dtype=object)
    ap = np.asarray(ap_by_language, dtype=np.float64)
    out = []
    for x in sorted(set(q_lang.tolist())):
        rows = q_lang == x
        for j, y in enumerate(candidate_languages):
            vals = ap[rows, j]
            have = ~np.isnan(vals)
            n = int(have.sum())
            if n == 0:
                continue
            hit: float | None = None
            if hit1 is not None:
                h = np.asarray(hit1, dtype=np.float64)[rows, j][have]
                hit = None if np.isnan(h).any() else float(h.mean())
            out.append({"query": str(x), "candidate": str(y), "map": float(vals[have].mean()),
                        "hit@1": hit, "n_queries": n})
    return out


def weakest_pairs(
    pairs: Sequence[dict[str, Any]], *, k: int = DEFAULT_K, margin: float = DEFAULT_MARGIN
) -> list[dict[str, Any]]:
    """The flagged pairs, weakest first, each with its ``reasons``, ``row_mean`` and ``column_mean``."""
    pool = [p for p in pairs if p["query"] != p["candidate"] and p.get("map") is not None]
    if not pool:
        pool = [p for p in pairs if p.get("map") is not None]
    ordered = sorted(pool, key=lambda p: (p["map"], p["query"], p["candidate"]))
    lowest = {(p["query"], p["candidate"]) for p in ordered[: max(0, k)]}
    out = []
    for p in ordered:
        row = [o["map"] for o in pool if o["query"] == p["query"] and o is not p]
        col = [o["map"] for o in pool if o["candidate"] == p["candidate"] and o is not p]
        row_mean = float(np.mean(row)) if row else None
        col_mean = float(np.mean(col)) if col else None
        reasons = []
        if (p["query"], p["candidate"]) in lowest:
            reasons.append("lowest")
        if row_mean is not None and col_mean is not None and p["map"] < min(row_mean, col_mean) - margin:
            reasons.append("outlier")
        if reasons:
            out.append({"query": p["query"], "candidate": p["candidate"], "map": p["map"],
                        "row_mean": row_mean, "column_mean": col_mean, "reasons": reasons})
    return out


def pairs_section(
    query_lang: Sequence[str],
    ap_by_language: np.ndarray,
    candidate_languages: Sequence[str],
    hit1: np.ndarray | None = None,
    *,
    k: int = DEFAULT_K,
    margin: float = DEFAULT_MARGIN,
    source: str = "evaluation",
) -> dict[str, Any]:
    """The ``pairs`` section of a result: ``by_pair``, ``weakest_pairs`` and the rule that chose them."""
    table = pair_table(query_lang, ap_by_language, candidate_languages, hit1)
    return {
        "by_pair": table,
        "weakest_pairs": weakest_pairs(table, k=k, margin=margin),
        "weakest_rule": {
            "k": k,
            "margin": margin,
            "text": f"cross-lingual pairs (all pairs if none) that are among the {k} lowest by mAP "
                    f"('lowest'), or more than {margin:g} mAP below the mean of the other pairs of their "
                    "row and of their column ('outlier')",
        },
        "hit@1": "share of X's queries whose best relevant candidate in Y ranks first among Y's candidates",
        "source": source,
    }


def pairs_of_lareqa(result: Any) -> dict[str, Any]:
    """The ``pairs`` section of a :class:`~polyir.evaluation.lareqa.LareqaResult` (exact hit@1)."""
    pq = result.per_query
    hit1 = None
    if pq.best_rank_by_language is not None:
        best = np.asarray(pq.best_rank_by_language)
        hit1 = np.where(best > 0, (best == 1).astype(np.float64), np.nan)
    return pairs_section(pq.query_lang.tolist(), pq.ap_by_language, pq.candidate_languages, hit1)


def pairs_of_result(result: dict[str, Any], *, k: int = DEFAULT_K, margin: float = DEFAULT_MARGIN) -> dict[str, Any] | None:
    """The ``pairs`` section of a result JSON: as written, else rebuilt from its per-query values.

    Rebuilt hit@1 is exact only where each query has a single relevant candidate per language (then
    hit@1 <=> AP == 1): a query counts as such when its relevant total equals the number of languages
    in which it has one.  Otherwise hit@1 is None.  Without per-query values, mAP comes from
    ``matrix`` (n_queries and hit@1 unknown).  None when the result has neither (not a LAReQA result).
    """
    if isinstance(result.get("pairs"), dict) and "by_pair" in result["pairs"]:
        section = result["pairs"]
        if section.get("weakest_rule", {}).get("k") == k and section.get("weakest_rule", {}).get("margin") == margin:
            return section
        return {**section, "weakest_pairs": weakest_pairs(section["by_pair"], k=k, margin=margin)}
    pq = result.get("per_query")
    if isinstance(pq, dict) and isinstance(pq.get("ap_by_language"), dict) and "query_lang" in pq:
        langs = list(pq["ap_by_language"])
        ap = np.stack([from_json_floats(pq["ap_by_language"][y]) for y in langs], axis=1)
        hit1 = None
        if "n_relevant" in pq:
            n_rel = np.asarray(pq["n_relevant"], dtype=np.float64)
            single = (~np.isnan(ap)).sum(axis=1) == n_rel
            hit1 = np.where(single[:, None] & ~np.isnan(ap), (ap == 1.0).astype(np.float64), np.nan)
        return pairs_section(pq["query_lang"], ap, langs, hit1, k=k, margin=margin, source="per_query")
    matrix = result.get("matrix")
    if isinstance(matrix, dict) and isinstance(matrix.get("by_language"), dict):
        table = [
            {"query": x, "candidate": y, "map": v, "hit@1": None, "n_queries": None}
            for x, row in sorted(matrix["by_language"].items())
            for y, v in sorted(row.items())
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        ]
        section = pairs_section([], np.zeros((0, 0)), [], k=k, margin=margin, source="matrix")
        section["by_pair"] = table
        section["weakest_pairs"] = weakest_pairs(table, k=k, margin=margin)
        return section
    return None


def pair_tests(
    row: dict[str, Any], ref: dict[str, Any], *, resamples: int = 10_000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per (X, Y) pair: mAP of ``row`` and ``ref`` and a paired randomization test over the X queries
    that have a relevant candidate in Y (results of one task; per-query values aligned by query id)."""
    from polyir.evaluation.significance import paired_permutation_test

    pa, pb = row.get("per_query"), ref.get("per_query")
    if not (isinstance(pa, dict) and isinstance(pb, dict)) or pa.get("query_id") != pb.get("query_id"):
        raise ValueError("pair tests need per-query values of the same queries in both results")
    q_lang = np.asarray(pa["query_lang"], dtype=object)
    out = []
    for y in sorted(set(pa["ap_by_language"]) & set(pb["ap_by_language"])):
        a_all, b_all = from_json_floats(pa["ap_by_language"][y]), from_json_floats(pb["ap_by_language"][y])
        for x in sorted(set(q_lang.tolist())):
            keep = (q_lang == x) & ~np.isnan(a_all) & ~np.isnan(b_all)
            if not keep.any():
                continue
            t = paired_permutation_test(a_all[keep], b_all[keep], n_resamples=resamples, seed=seed)
            out.append({"query": str(x), "candidate": str(y), "n_queries": int(keep.sum()),
                        "map": float(a_all[keep].mean()), "ref_map": float(b_all[keep].mean()),
                        "diff": float(t.mean_diff), "p": float(t.p_value)})
    return out
