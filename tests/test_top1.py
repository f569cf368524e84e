"""Top-1 translation retrieval from per-query AP by language: defined only with one relevant per language."""

from __future__ import annotations

import math

import numpy as np

from polyir.evaluation.compare import per_query_values, top1_metrics


def _result(query_lang, ap_by_language, n_relevant):
    return {"metrics": {}, "per_query": {"query_lang": query_lang, "ap_by_language": ap_by_language,
                                         "n_relevant": n_relevant}}


def test_sentence_like_queries_count_first_places_into_non_english_targets():
    # three queries (en, de, zh), one relevant sentence in each other language; own language: none
    r = _result(["en", "de", "zh"],
                {"de": [1.0, None, 0.5], "en": [None, 1.0, 1.0], "zh": [0.5, 1.0, None]},
                [2, 2, 2])
    # en query: targets de (hit), zh (miss) -> 0.5; de query: zh only (en skipped) -> 1; zh query: de -> 0
    np.testing.assert_allclose(per_query_values(r, "cr_top1_non_en"), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(per_query_values(r, "cr_top1"), [0.5, 1.0, 0.5])
    m = top1_metrics(r)
    assert m["cr_top1_non_en"] == (0.5 + 1.0 + 0.0) / 3  # macro over the three query languages
    assert math.isclose(m["cr_top1"], 2 / 3)


def test_document_like_queries_with_several_relevant_per_language_are_undefined():
    r = _result(["en", "de"], {"de": [1.0, 0.8], "en": [0.7, 1.0]}, [5, 5])  # 5 relevant over 2 languages
    assert np.isnan(per_query_values(r, "cr_top1_non_en")).all()
    assert top1_metrics(r) == {"cr_top1": None, "cr_top1_non_en": None}
