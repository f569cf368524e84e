"""Per-pair paired tests between two results of one task."""

from __future__ import annotations

import pytest

from polyir.evaluation.pairs import pair_tests


def _result(ap_de, ap_en, langs=("en", "en", "en", "de", "de", "de")):
    return {"per_query": {"query_id": [f"q{i}" for i in range(len(langs))], "query_lang": list(langs),
                          "ap_by_language": {"de": ap_de, "en": ap_en}}}


def test_pair_tests_compare_each_pair_on_its_own_queries():
    a = _result([1.0, 1.0, 1.0, None, None, None], [None, None, None, 0.5, 0.5, 0.5])
    b = _result([0.5, 0.5, 0.5, None, None, None], [None, None, None, 0.5, 0.5, 0.5])
    rows = {(r["query"], r["candidate"]): r for r in pair_tests(a, b, resamples=100)}
    assert set(rows) == {("en", "de"), ("de", "en")}
    assert rows[("en", "de")]["diff"] == pytest.approx(0.5) and rows[("en", "de")]["n_queries"] == 3
    assert rows[("de", "en")]["diff"] == 0.0 and rows[("de", "en")]["p"] == 1.0
    # 3 queries: 8 sign patterns, enumerated; the observed +0.5 is matched only by itself and its mirror
    assert rows[("en", "de")]["p"] == pytest.approx(2 / 8)


def test_pair_tests_refuse_results_of_different_queries():
    a = _result([1.0] * 6, [1.0] * 6)
    b = _result([1.0] * 6, [1.0] * 6)
    b["per_query"]["query_id"][0] = "other"
    with pytest.raises(ValueError, match="same queries"):
        pair_tests(a, b)



def test_pair_groups_count_significant_gains_by_resource_level():
    from polyir.experiment.pairs import compare_pairs
    from polyir.language_groups import load_language_groups

    n = 12
    langs = ["en"] * n + ["sn"] * n
    row = {"per_query": {"query_id": [f"q{i}" for i in range(2 * n)], "query_lang": langs,
                         "ap_by_language": {"sn": [1.0] * n + [None] * n, "en": [None] * n + [0.5] * n}}}
    ref = {"per_query": {"query_id": [f"q{i}" for i in range(2 * n)], "query_lang": langs,
                         "ap_by_language": {"sn": [0.2] * n + [None] * n, "en": [None] * n + [0.5] * n}}}
    out = compare_pairs(row, ref, resamples=500, groups=load_language_groups())
    groups = out["by_group"]
    assert groups["high → low"] == {"pairs": 1, "better": 1, "worse": 0, "mean_diff": pytest.approx(0.8)}
    assert groups["low → high"]["better"] == 0 and groups["low → high"]["mean_diff"] == 0.0
