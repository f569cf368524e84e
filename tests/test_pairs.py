"""Per language pair figures and the weakest-pair rule (polyir/evaluation/pairs.py)."""

from __future__ import annotations

import numpy as np
import pytest

from polyir.evaluation.lareqa import lareqa_metrics
from polyir.evaluation.pairs import pair_table, pairs_of_lareqa, pairs_of_result, weakest_pairs
from polyir.evaluation.run import result_sections


def _pair(x, y, v):
    return {"query": x, "candidate": y, "map": v, "hit@1": None, "n_queries": 10}


def test_pair_table_means_counts_and_hit1():
    q_lang = ["en", "en", "de"]
    ap = np.array([[1.0, 0.5], [0.5, np.nan], [0.25, 1.0]])
    hit = np.array([[1.0, 0.0], [0.0, np.nan], [0.0, 1.0]])
    table = {(p["query"], p["candidate"]): p for p in pair_table(q_lang, ap, ["de", "en"], hit)}
    assert table[("en", "de")] == {"query": "en", "candidate": "de", "map": 0.75, "hit@1": 0.5, "n_queries": 2}
    assert table[("en", "en")]["n_queries"] == 1 and table[("en", "en")]["map"] == 0.5
    assert table[("de", "de")]["map"] == 0.25 and table[("de", "en")]["hit@1"] == 1.0
    # an unknown hit value (NaN) where AP exists makes the pair's hit@1 unknown
    hit[0, 0] = np.nan
    assert pair_table(q_lang, ap, ["de", "en"], hit)[2]["hit@1"] is None


def test_weakest_pairs_lowest_and_outlier():
    langs = ["a", "b", "c", "d"]
    pairs = [_pair(x, y, 0.9 if x == y else 0.7) for x in langs for y in langs]
    for p in pairs:
        if (p["query"], p["candidate"]) == ("c", "d"):
            p["map"] = 0.5  # far below its row and column
        if (p["query"], p["candidate"]) == ("b", "a"):
            p["map"] = 0.68  # a little low: among the lowest, not an outlier
    weak = weakest_pairs(pairs, k=2, margin=0.05)
    assert [(w["query"], w["candidate"]) for w in weak] == [("c", "d"), ("b", "a")]
    assert weak[0]["reasons"] == ["lowest", "outlier"]
    assert weak[0]["row_mean"] == pytest.approx(0.7) and weak[0]["column_mean"] == pytest.approx(0.7)
    assert weak[1]["reasons"] == ["lowest"]
    # the diagonal (monolingual) is never flagged while cross-lingual pairs exist
    assert all(w["query"] != w["candidate"] for w in weakest_pairs(pairs, k=20, margin=0.0))
    # k=0 and a large margin: nothing flagged
    assert weakest_pairs(pairs, k=0, margin=0.3) == []
    # only one language: the diagonal is all there is
    assert weakest_pairs([_pair("a", "a", 0.4)], k=1)[0]["reasons"] == ["lowest"]


def _tiny_result(seed=0, n_per_lang=6):
    """Random embeddings; each query has one relevant candidate per language (LAReQA layout)."""
    rng = np.random.default_rng(seed)
    langs = ["de", "en", "zh"]
    d = 8
    n_items = n_per_lang
    base = rng.normal(size=(n_items, d))
    cand = np.concatenate([base + rng.normal(scale=0.8, size=base.shape) for _ in langs])
    cand_lang = [lang for lang in langs for _ in range(n_items)]
    queries = np.concatenate([base + rng.normal(scale=0.8, size=base.shape) for _ in langs])
    q_lang = [lang for lang in langs for _ in range(n_items)]
    relevant = [[j * n_items + (i % n_items) for j in range(len(langs))] for i in range(len(queries))]
    return lareqa_metrics(queries, cand, q_lang, cand_lang, relevant, query_ids=[f"q{i}" for i in range(len(queries))])


def test_result_sections_carry_pairs_and_keep_old_keys():
    sections = result_sections(_tiny_result())
    assert {"metrics", "matrix", "per_language", "per_query", "cr_pairs"} <= set(sections)
    pairs = sections["pairs"]
    assert len(pairs["by_pair"]) == 9 and pairs["source"] == "evaluation"
    for p in pairs["by_pair"]:
        assert p["map"] == pytest.approx(sections["matrix"]["by_language"][p["query"]][p["candidate"]])
        assert p["n_queries"] == 6 and 0.0 <= p["hit@1"] <= 1.0
    assert pairs["weakest_rule"]["k"] == 5 and "lowest" in pairs["weakest_rule"]["text"]


def test_rebuilt_pairs_of_an_old_result_match_the_written_ones():
    result = _tiny_result(seed=3)
    written = pairs_of_lareqa(result)
    old = result_sections(result)
    del old["pairs"]  # a result JSON from before the section existed
    rebuilt = pairs_of_result(old)
    assert rebuilt["source"] == "per_query"
    for a, b in zip(written["by_pair"], rebuilt["by_pair"]):
        assert (a["query"], a["candidate"], a["n_queries"]) == (b["query"], b["candidate"], b["n_queries"])
        assert a["map"] == pytest.approx(b["map"]) and a["hit@1"] == pytest.approx(b["hit@1"])
    assert written["weakest_pairs"] == rebuilt["weakest_pairs"]
    # with two relevant candidates in one language, AP no longer tells hit@1: it becomes unknown
    old["per_query"]["n_relevant"][0] += 1
    assert any(p["hit@1"] is None for p in pairs_of_result(old)["by_pair"])
    # without per-query values the matrix still gives mAP per pair
    del old["per_query"]
    from_matrix = pairs_of_result(old)
    assert from_matrix["source"] == "matrix" and len(from_matrix["by_pair"]) == 9
    assert pairs_of_result({"metrics": {}}) is None


def test_hit1_is_exact_with_several_relevant_in_one_language():
    # query 0: relevant are candidates 0 and 1 (both "en"); candidate 1 ranks first, candidate 0 third
    q = np.array([[1.0, 0.0]])
    c = np.array([[0.2, 0.98], [1.0, 0.0], [0.9, 0.44]])
    res = lareqa_metrics(q, c, ["en"], ["en", "en", "en"], [[0, 1]])
    pairs = pairs_of_lareqa(res)["by_pair"]
    assert pairs == [{"query": "en", "candidate": "en", "map": pytest.approx((1 + 2 / 3) / 2), "hit@1": 1.0, "n_queries": 1}]
