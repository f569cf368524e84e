"""Compare two evaluation results (JSON from ``polyir evaluate``) with paired tests over queries.

For each headline metric the difference B - A is reported with a paired randomization test that
recomputes the macro average over query languages (so the test matches the metric as reported) and,
as a second opinion, a paired t-test over the per-query values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from polyir.errors import DataFormatError, PolyirError
from polyir.evaluation.significance import paired_permutation_test, paired_t_test

METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10",
           "ndcg@10", "recall@100")  # the last two: MIRACL, whose per_query holds them by name
LOWER_IS_BETTER = {"rank_distance"}
TOP1_METRICS = ("cr_top1", "cr_top1_non_en")  # derived from per-query AP by language, see _top1_per_query


def load_result(path: Path) -> dict[str, Any]:
    """Read a result JSON, checking it carries per-query values."""
    path = Path(path)
    if not path.is_file():
        raise PolyirError(f"{path}: no such result file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or "per_query" not in data or "metrics" not in data:
        raise DataFormatError(f"{path}: not a polyir evaluation result (no 'metrics'/'per_query')")
    data["_path"] = str(path)
    return data


def per_query_values(result: dict[str, Any], metric: str) -> np.ndarray:
    """The per-query values behind one macro metric (2-D for Cr.: queries x candidate language)."""
    pq = result["per_query"]

    def arr(key: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in pq[key]], dtype=float)

    if metric == "mo_map":
        return arr("ap_mo")
    if metric == "mul_map":
        return arr("ap_mul")
    if metric == "rank_distance":
        return arr("rank_distance")
    if metric.startswith("mul_hit@"):
        k = int(metric.split("@", 1)[1])
        return (arr("best_rank") <= k).astype(float)
    if metric == "cr_map":
        return _cross_language_ap(pq)[1]
    if metric in TOP1_METRICS:
        return _top1_per_query(pq, skip_english=metric == "cr_top1_non_en")
    if metric in pq:
        return arr(metric)
    raise ValueError(f"unknown metric {metric!r}")


def _cross_language_ap(pq: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """(candidate languages, queries x languages AP with each query's own language masked)."""
    langs = list(pq["ap_by_language"])
    mat = _ap_matrix(pq, langs)
    own = np.array(pq["query_lang"])
    for j, y in enumerate(langs):
        mat[own == y, j] = np.nan
    return langs, mat


def _ap_matrix(pq: dict[str, Any], langs: list[str]) -> np.ndarray:
    """Queries x candidate languages AP (NaN where a query has no relevant candidate in that language)."""
    return np.array(
        [[np.nan if v is None else v for v in pq["ap_by_language"][y]] for y in langs], dtype=float
    ).T.reshape(len(pq["query_lang"]), len(langs))


def _top1_per_query(pq: dict[str, Any], *, skip_english: bool) -> np.ndarray:
    """Per query, the share of other target languages Y whose relevant candidate ranks first in Y's
    pool: top-1 translation retrieval. Defined only for queries with exactly one relevant candidate in
    each language that has one (sentence retrieval, XQuAD-R), where it equals AP = 1; NaN otherwise
    (e.g. NTREX documents). ``skip_english`` leaves English targets out."""
    import warnings

    langs, ap = _cross_language_ap(pq)
    all_ap = _ap_matrix(pq, langs)
    one_each = np.asarray(pq["n_relevant"], dtype=float) == (~np.isnan(all_ap)).sum(axis=1)
    hit = np.where(np.isnan(ap), np.nan, (ap >= 1.0 - 1e-12).astype(float))
    hit[~one_each] = np.nan
    if skip_english and "en" in langs:
        hit[:, langs.index("en")] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without any target stay NaN
        return np.nanmean(hit, axis=1)


def top1_metrics(result: dict[str, Any]) -> dict[str, float | None]:
    """``cr_top1`` and ``cr_top1_non_en``: macro means (over query languages) of the per-query shares."""
    out: dict[str, float | None] = {}
    langs = np.array(result["per_query"]["query_lang"])
    for metric in TOP1_METRICS:
        values = _top1_per_query(result["per_query"], skip_english=metric == "cr_top1_non_en")
        means = [float(np.nanmean(values[langs == x])) for x in sorted(set(langs.tolist()))
                 if (~np.isnan(values[langs == x])).any()]
        out[metric] = float(np.mean(means)) if means else None
    return out


def _aligned_order(a: dict[str, Any], b: dict[str, Any]) -> np.ndarray:
    ids_a = [str(x) for x in a["per_query"]["query_id"]]
    ids_b = [str(x) for x in b["per_query"]["query_id"]]
    if set(ids_a) != set(ids_b) or len(ids_a) != len(ids_b):
        raise PolyirError(
            f"{a.get('_path', 'A')} and {b.get('_path', 'B')} hold different queries "
            f"({len(ids_a)} vs {len(ids_b)}); compare runs on the same dataset and languages"
        )
    where = {q: i for i, q in enumerate(ids_b)}
    return np.array([where[q] for q in ids_a], dtype=np.int64)


def _dataset_name(result: dict[str, Any]) -> str:
    """The dataset a result records (registered name or path as given), without a ``[languages]`` suffix."""
    name = str(result.get("dataset") or result.get("task") or "?")
    return re.sub(r"\[[^\[\]]*\]$", "", name)


def _queries_of(name: str) -> str:
    """The dataset whose queries a registered dataset holds in other texts (its spec's ``queries_of``,
    e.g. afriqa-pivot -> afriqa), else the name itself (also for a path)."""
    from polyir.data.registry import get_spec
    from polyir.errors import DatasetNotFoundError

    try:
        return get_spec(name).queries_of or name
    except DatasetNotFoundError:
        return name


def query_variants(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether the two results' tasks hold the same queries, pool and relevance with other query texts:
    such results pair query by query."""
    na, nb = _dataset_name(a), _dataset_name(b)
    return na != nb and _queries_of(na) == _queries_of(nb)


def check_same_dataset(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Refuse two results of different datasets, even when their query ids coincide (two parallel
    folders with the same languages and line count). The content fingerprints decide when both files
    record one (a dataset named two ways is one dataset); otherwise the recorded names must agree."""
    fa, fb = a.get("dataset_fingerprint"), b.get("dataset_fingerprint")
    na, nb = _dataset_name(a), _dataset_name(b)
    pa, pb = a.get("_path", "A"), b.get("_path", "B")
    if fa and fb:
        if fa != fb:
            same = " (same name, different contents: the files changed, or other languages or --max-pairs)"
            raise PolyirError(
                f"{pa} and {pb} are results on different datasets: {na} and {nb}"
                + (same if na == nb else "") + "; compare runs on the same dataset"
            )
    elif na != nb:
        raise PolyirError(f"{pa} and {pb} are results on different datasets: {na} and {nb}; "
                          "compare runs on the same dataset")


def compare_results(
    a: dict[str, Any], b: dict[str, Any], *, seed: int = 0, resamples: int = 10_000
) -> dict[str, Any]:
    """Differences B - A per metric, each with the randomization test and the t-test."""
    if resamples < 1:
        raise PolyirError(f"resamples must be at least 1, got {resamples}")
    same_name = _dataset_name(a) == _dataset_name(b)
    variants = query_variants(a, b)  # same queries and pool, other query texts: paired by query id
    if not same_name and not variants:
        check_same_dataset(a, b)
    order = _aligned_order(a, b)  # one dataset, other languages or --max-pairs: "different queries"
    if same_name:
        check_same_dataset(a, b)
    groups = np.array(a["per_query"]["query_lang"])
    if "ap_by_language" in a["per_query"] and list(a["per_query"]["ap_by_language"]) != list(b["per_query"]["ap_by_language"]):
        raise PolyirError("the two runs have different candidate languages; compare like with like")
    rows = []
    for metric in METRICS:
        if metric not in a["metrics"] or metric not in b["metrics"]:
            continue
        if a["metrics"][metric] is None or b["metrics"][metric] is None:
            continue  # undefined on this task (e.g. Mo. on ntrex-sentences: no same-language relevant)
        va = per_query_values(a, metric)
        vb = per_query_values(b, metric)[order]
        perm = paired_permutation_test(vb, va, groups=groups, n_resamples=resamples, seed=seed)
        flat_a = np.nanmean(va, axis=1) if va.ndim == 2 else va
        flat_b = np.nanmean(vb, axis=1) if vb.ndim == 2 else vb
        ttest = paired_t_test(flat_b, flat_a)
        better = perm.mean_diff < 0 if metric in LOWER_IS_BETTER else perm.mean_diff > 0
        rows.append(
            {
                "metric": metric,
                "a": a["metrics"][metric],
                "b": b["metrics"][metric],
                "diff": perm.mean_diff,
                "ci": [perm.ci_low, perm.ci_high],
                "p_randomization": perm.p_value,
                "p_ttest": ttest.p_value,
                "mark": perm.mark(),
                "b_better": bool(better) if perm.mean_diff != 0 else None,
                "n_queries": perm.n,
            }
        )
    return {
        "a": {"path": a.get("_path"), "model": a.get("model"), "task": a.get("task")},
        "b": {"path": b.get("_path"), "model": b.get("model"), "task": b.get("task")},
        "tests": {
            "p_randomization": "paired randomization (sign-flip) test over queries, recomputing the "
            "macro average over query languages (Cr.: over language pairs); two-sided",
            "p_ttest": "paired two-sided t-test over per-query values (Cr.: a query's mean over "
            "candidate languages)",
            "ci": "95% percentile interval of a stratified paired bootstrap of the macro difference",
            "mark": "* p < 0.05, ** p < 0.01 (randomization test)",
            "resamples": resamples,
            "seed": seed,
        },
        "rows": rows,
        **({"note": f"{_dataset_name(b)} vs {_dataset_name(a)}: the same queries and pool with other query "
                    "texts, paired by query id"} if variants else {}),
    }


def print_comparison(comparison: dict[str, Any], console=None) -> None:
    """A table of B - A with significance marks."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=f"B − A   (A: {comparison['a']['model']}, B: {comparison['b']['model']})")
    for col in ("metric", "A", "B", "B − A", "95% CI", "p (rand.)", "p (t)", ""):
        t.add_column(col, justify="right" if col not in ("metric", "") else "left")
    for r in comparison["rows"]:
        fmt = "{:.1f}" if r["metric"] == "rank_distance" else "{:.4f}"
        t.add_row(
            r["metric"],
            fmt.format(r["a"]),
            fmt.format(r["b"]),
            ("{:+.1f}" if r["metric"] == "rank_distance" else "{:+.4f}").format(r["diff"]),
            f"[{fmt.format(r['ci'][0])}, {fmt.format(r['ci'][1])}]",
            f"{r['p_randomization']:.4f}",
            f"{r['p_ttest']:.4f}",
            r["mark"],
        )
    console.print(t)
    console.print(comparison["tests"]["p_randomization"] + ".", style="dim")
