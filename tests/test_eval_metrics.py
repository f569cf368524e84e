"""LAReQA metrics: AP against sklearn, hand-worked Mo./Cr./Mul. cases, ties, chunking, input errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from polyir.evaluation import ranking
from polyir.evaluation.lareqa import lareqa_metrics
from polyir.evaluation.ranking import plan_chunk_size, rank_relevant


def _one_hot_case(scores: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Queries whose dot product with one-hot candidates is exactly the given score matrix."""
    s = np.asarray(scores, dtype=np.float32)
    return s, np.eye(s.shape[1], dtype=np.float32)


def _random_problem(rng, n_q, n_c, d, langs, max_rel):
    q = rng.normal(size=(n_q, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c = rng.normal(size=(n_c, d)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    q_lang = rng.choice(langs, n_q).tolist()
    c_lang = rng.choice(langs, n_c).tolist()
    rel = [rng.choice(n_c, size=rng.integers(1, max_rel + 1), replace=False) for _ in range(n_q)]
    return q, c, q_lang, c_lang, rel


# ----------------------------------------------------------------------------------------------
# AP against sklearn


def test_ap_matches_sklearn_pooled_and_single_language_pools():
    rng = np.random.default_rng(7)
    langs = ["ar", "de", "en"]
    q, c, q_lang, c_lang, rel = _random_problem(rng, 150, 60, 16, langs, 6)
    res = lareqa_metrics(q, c, q_lang, c_lang, rel)
    scores = (q.astype(np.float64) @ c.T.astype(np.float64)).astype(np.float32)
    for row in scores:  # continuous scores: no ties, so sklearn's AP is the same quantity
        assert len(np.unique(row)) == len(row)
    c_lang_arr = np.array(c_lang)
    pq = res.per_query
    n_single = 0
    sk_by = np.full((len(q), len(langs)), np.nan)
    for i in range(len(q)):
        y_true = np.zeros(len(c), dtype=int)
        y_true[rel[i]] = 1
        assert pq.ap_mul[i] == pytest.approx(average_precision_score(y_true, scores[i]), abs=1e-9)
        for j, y in enumerate(res.candidate_languages):
            m = c_lang_arr == y
            if y_true[m].sum() == 0:
                assert math.isnan(pq.ap_by_language[i, j])
                continue
            sk_by[i, j] = average_precision_score(y_true[m], scores[i][m])
            assert pq.ap_by_language[i, j] == pytest.approx(sk_by[i, j], abs=1e-9)
            n_single += 1
    assert n_single >= 100
    # Macro averages rebuilt from the sklearn values.
    q_lang_arr = np.array(q_lang)
    cols = list(res.candidate_languages)
    mo = [np.nanmean(sk_by[q_lang_arr == x, cols.index(x)]) for x in langs]
    cr = [np.nanmean(sk_by[q_lang_arr == x, cols.index(y)]) for x in langs for y in langs if y != x]
    mul = [np.mean(pq.ap_mul[q_lang_arr == x]) for x in langs]
    assert res.mo_map == pytest.approx(np.mean(mo), abs=1e-12)
    assert res.cr_map == pytest.approx(np.mean(cr), abs=1e-12)
    assert res.mul_map == pytest.approx(np.mean(mul), abs=1e-12)
    assert res.cr_pairs == 6 and res.cr_missing_pairs == []


# ----------------------------------------------------------------------------------------------
# hand-worked cases


def test_hand_worked_three_languages():
    # Candidates: c0 en, c1 en, c2 de, c3 de, c4 es, c5 es.  One-hot candidates: score = table entry.
    #       c0    c1    c2    c3    c4    c5
    # q0 en .9    .95   .5    .7    .8    .1    relevant {c0, c2, c4}
    # q1 de .2    .6    .9    .3    .4    .8    relevant {c1, c3}
    # q2 es .1    .2    .3    .4    .5    .6    relevant {c5}
    #
    # q0 pooled: c1 .95, c0 .9, c4 .8, c3 .7, c2 .5, c5 .1 -> relevant ranks 2, 3, 5
    #    AP = (1/2 + 2/3 + 3/5) / 3 = 0.588889 ; rank distance 5 - 2 = 3 ; best rank 2
    #    en pool {c0 .9, c1 .95}: c0 rank 2 -> 1/2 ; de pool {c2 .5, c3 .7}: c2 rank 2 -> 1/2
    #    es pool {c4 .8, c5 .1}: c4 rank 1 -> 1
    # q1 pooled: c2 .9, c5 .8, c1 .6, c4 .4, c3 .3, c0 .2 -> relevant ranks 3, 5
    #    AP = (1/3 + 2/5) / 2 = 0.366667 ; rank distance 2 ; best rank 3
    #    de pool {c2 .9, c3 .3}: c3 rank 2 -> 1/2 ; en pool {c0 .2, c1 .6}: c1 rank 1 -> 1 ; es: none
    # q2 pooled: c5 first -> AP 1, best rank 1, one relevant -> no rank distance ; es pool: 1 ; en, de: none
    #
    # Mo: en .5, de .5, es 1 -> 2/3.  Cr: (en,de) .5, (en,es) 1, (de,en) 1 -> 2.5/3 = 0.833333;
    # (de,es), (es,de), (es,en) have no query.  Mul: (.588889 + .366667 + 1) / 3 = 0.651852.
    # Rank distance: en 3, de 2, es none -> 2.5.  hit@1: en 0, de 0, es 1 -> 1/3.  hit@10: 1.
    q, c = _one_hot_case(
        [[0.9, 0.95, 0.5, 0.7, 0.8, 0.1], [0.2, 0.6, 0.9, 0.3, 0.4, 0.8], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]
    )
    res = lareqa_metrics(
        q, c, ["en", "de", "es"], ["en", "en", "de", "de", "es", "es"], [[0, 2, 4], [1, 3], [5]],
        query_ids=["q0", "q1", "q2"],
    )
    ap_q0 = (1 / 2 + 2 / 3 + 3 / 5) / 3
    ap_q1 = (1 / 3 + 2 / 5) / 2
    assert res.mo_map == pytest.approx(2 / 3)
    assert res.cr_map == pytest.approx(2.5 / 3)
    assert res.mul_map == pytest.approx((ap_q0 + ap_q1 + 1) / 3)
    assert res.rank_distance == pytest.approx(2.5)
    assert res.mul_hit[1] == pytest.approx(1 / 3)
    assert res.mul_hit[10] == pytest.approx(1.0)
    assert res.matrix == {
        "de": {"de": 0.5, "en": 1.0},
        "en": {"de": 0.5, "en": 0.5, "es": 1.0},
        "es": {"es": 1.0},
    }
    assert res.query_languages == ("de", "en", "es") == res.candidate_languages
    np.testing.assert_allclose(
        res.matrix_array, [[0.5, 1.0, np.nan], [0.5, 0.5, 1.0], [np.nan, np.nan, 1.0]], equal_nan=True
    )
    assert res.cr_pairs == 3
    assert sorted(res.cr_missing_pairs) == [("de", "es"), ("es", "de"), ("es", "en")]
    assert res.per_language["en"]["mul"] == pytest.approx(ap_q0)
    assert res.per_language["de"]["rank_distance"] == 2.0
    assert math.isnan(res.per_language["es"]["rank_distance"])
    assert res.per_language["es"]["mul_hit@1"] == 1.0
    pq = res.per_query
    assert pq.best_rank.tolist() == [2, 3, 1]
    np.testing.assert_allclose(pq.rank_distance, [3, 2, np.nan], equal_nan=True)
    np.testing.assert_allclose(pq.ap_mo, [0.5, 0.5, 1.0])
    assert res.ties == {"pairs": 6, "pairs_with_ties": 0, "tied_candidates": 0}
    out = res.to_dict(per_query=True)
    json.dumps(out, allow_nan=False)  # JSON-safe: NaN became None
    assert out["per_language"]["es"]["rank_distance"] is None
    assert out["per_query"]["query_id"] == ["q0", "q1", "q2"]


def test_hand_worked_query_languages_subset_and_macro_not_micro():
    # Candidates: c0 en, c1 de, c2 es, c3 es.  Queries only in en and de.
    #       c0   c1   c2   c3
    # q0 en .4   .9   .8   .1   relevant {c0, c2}
    # q1 en .7   .3   .2   .9   relevant {c1}
    # q2 de .5   .6   .7   .2   relevant {c1, c3}
    #
    # q0 pooled: c1, c2, c0, c3 -> ranks 2, 3 -> AP (1/2 + 2/3)/2 = 7/12; distance 1; best 2
    #    en {c0}: 1 ; de {c1}: no relevant ; es {c2 .8, c3 .1}: rank 1 -> 1
    # q1 pooled: c3, c0, c1, c2 -> rank 3 -> AP 1/3; best 3; one relevant
    #    en {c0}: no relevant (Mo skipped) ; de {c1}: 1 ; es: none
    # q2 pooled: c2, c1, c0, c3 -> ranks 2, 4 -> AP (1/2 + 2/4)/2 = 1/2; distance 2; best 2
    #    de {c1}: 1 ; en {c0}: none ; es {c2 .7, c3 .2}: rank 2 -> 1/2
    #
    # Mo: en 1 (q0 only), de 1 -> 1.  Cr: (en,de) 1, (en,es) 1, (de,es) .5; (de,en) missing -> 2.5/3.
    # Mul: en (7/12 + 1/3)/2 = 11/24, de 1/2 -> macro 23/48 (micro would be 17/36).
    # Rank distance: en 1, de 2 -> 1.5.  hit@2: en 1/2, de 1 -> 3/4.  hit@1: 0.
    q, c = _one_hot_case([[0.4, 0.9, 0.8, 0.1], [0.7, 0.3, 0.2, 0.9], [0.5, 0.6, 0.7, 0.2]])
    res = lareqa_metrics(
        q, c, ["en", "en", "de"], ["en", "de", "es", "es"], [[0, 2], [1], [1, 3]], hit_ks=(1, 2, 10)
    )
    assert res.query_languages == ("de", "en")
    assert res.candidate_languages == ("de", "en", "es")
    assert res.mo_map == pytest.approx(1.0)
    assert res.mo_skipped_queries == 1
    assert res.cr_map == pytest.approx(2.5 / 3)
    assert res.cr_missing_pairs == [("de", "en")]
    assert res.mul_map == pytest.approx(23 / 48)
    assert res.mul_map != pytest.approx(17 / 36)
    assert res.rank_distance == pytest.approx(1.5)
    assert res.mul_hit == pytest.approx({1: 0.0, 2: 0.75, 10: 1.0})
    np.testing.assert_allclose(res.matrix_array, [[1.0, np.nan, 0.5], [1.0, 1.0, 1.0]], equal_nan=True)
    assert res.per_language["en"]["n_queries"] == 2
    assert res.per_language["en"]["cr"] == pytest.approx(1.0)


def test_query_language_without_candidates():
    # Queries in fr, candidates only in en/de: no Mo. for fr, Cr. fr->en and fr->de still defined.
    #       c0 en  c1 de
    # q0 fr  .8    .3    relevant {c1} -> pooled rank 2 -> AP 1/2 ; fr->de: 1 ; fr->en: none
    q, c = _one_hot_case([[0.8, 0.3]])
    res = lareqa_metrics(q, c, ["fr"], ["en", "de"], [[1]])
    assert res.mo_missing_languages == ["fr"]
    assert math.isnan(res.mo_map)
    assert res.cr_map == pytest.approx(1.0)
    assert res.cr_missing_pairs == [("fr", "en")]
    assert res.mul_map == pytest.approx(0.5)
    assert math.isnan(res.rank_distance)


# ----------------------------------------------------------------------------------------------
# ties


def test_ties_are_pessimistic_and_counted():
    # Candidates: c0 en, c1 en, c2 de, c3 de.
    #       c0   c1   c2   c3
    # q0 en .5   .5   .9   .5    relevant {c0}: non-relevant >= .5 are c1, c2, c3 -> rank 4, AP 1/4
    #                            en pool {c0, c1}: tied c1 ranks first -> rank 2 -> Mo 1/2 ; 2 ties
    # q1 en .5   .5   .9   .5    relevant {c0, c1}: tie between relevant broken by index:
    #                            c0 rank 1 + |{c2, c3}| = 3, c1 rank 2 + 2 = 4 -> AP (1/3 + 2/4)/2 = 5/12
    #                            each relevant ties with c3 -> 2 pairs, 2 tied
    row = [0.5, 0.5, 0.9, 0.5]
    q, c = _one_hot_case([row, row])
    for chunk in (1, None):
        res = lareqa_metrics(q, c, ["en", "en"], ["en", "en", "de", "de"], [[0], [0, 1]], chunk_size=chunk)
        np.testing.assert_allclose(res.per_query.ap_mul, [1 / 4, 5 / 12])
        assert res.per_query.best_rank.tolist() == [4, 3]
        assert res.per_query.ap_mo[0] == pytest.approx(0.5)
        assert res.per_query.rank_distance[1] == 1.0
        assert res.ties == {"pairs": 3, "pairs_with_ties": 3, "tied_candidates": 4}


# The tie rule, against independent implementations.
#
# polyir's convention (docs/evaluation.md): PESSIMISTIC. A non-relevant candidate whose score equals
# a relevant one's ranks before it; relevant candidates tied with each other are ordered by index
# (which leaves AP unchanged: the tied relevant ones take the same set of positions either way).
# So a tie group of r relevant and n non-relevant candidates, after A candidates (R of them
# relevant) that score higher, puts its k-th relevant candidate at rank A + n + k:
#     precision = (R + k) / (A + n + k).
# sklearn's average_precision_score treats a tie group as ONE threshold: every relevant candidate
# of the group gets the group's precision (R + r) / (A + n + r). It equals the pessimistic value
# when r = 1 and is larger when r >= 2 (even with n = 0: it is then the AP of no ranking at all).
# An optimistic rule (relevant first within a tie) would give (R + k) / (A + k).
# trec_eval breaks ties by docid (descending): order-dependent, not used here.


def _ap_by_sorting(scores, relevant, relevant_last: bool = True) -> float:
    """AP of one ranking built by sorting (score descending; within a tie, relevant candidates last
    when ``relevant_last``, first otherwise); nan with no relevant candidate. Slow and obvious."""
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], (j in relevant) == relevant_last))
    hits, total = 0, 0.0
    for position, j in enumerate(order, start=1):
        if j in relevant:
            hits += 1
            total += hits / position
    return total / hits if hits else float("nan")


def _polyir_ap(rows, c_lang, relevant):
    """polyir's pooled AP and AP per candidate language for exact score rows (one-hot candidates)."""
    q, c = _one_hot_case(rows)
    res = lareqa_metrics(q, c, ["a"] * len(rows), c_lang, relevant)
    return res.per_query.ap_mul, res.per_query.ap_by_language, res.candidate_languages


@pytest.mark.parametrize(
    ("scores", "relevant", "pessimistic", "sklearn", "optimistic"),
    [
        # two relevant tied with one non-relevant: ranks 2, 3
        ([0.5, 0.5, 0.5], {0, 1}, (1 / 2 + 2 / 3) / 2, 2 / 3, 1.0),
        # two relevant tied with each other only, below a non-relevant: ranks 2, 3 whatever the order
        ([0.9, 0.5, 0.5], {1, 2}, (1 / 2 + 2 / 3) / 2, 2 / 3, (1 / 2 + 2 / 3) / 2),
        # one relevant tied with two non-relevant, then a relevant alone below: ranks 3, 4
        ([0.7, 0.7, 0.7, 0.2], {1, 3}, (1 / 3 + 2 / 4) / 2, (1 / 3 + 2 / 4) / 2, (1 + 2 / 4) / 2),
        # a relevant above, then 2 relevant + 2 non-relevant tied: ranks 1, 4, 5
        ([0.9, 0.4, 0.4, 0.4, 0.4], {0, 2, 4}, (1 + 2 / 4 + 3 / 5) / 3, (1 + 3 / 5 + 3 / 5) / 3, 1.0),
    ],
)
def test_tie_rule_is_pessimistic_where_conventions_differ(scores, relevant, pessimistic, sklearn, optimistic):
    y_true = [int(j in relevant) for j in range(len(scores))]
    # the three conventions, computed independently, differ on these cases ...
    assert _ap_by_sorting(scores, relevant) == pytest.approx(pessimistic, abs=1e-12)
    assert _ap_by_sorting(scores, relevant, relevant_last=False) == pytest.approx(optimistic, abs=1e-12)
    assert average_precision_score(y_true, scores) == pytest.approx(sklearn, abs=1e-12)
    assert len({round(pessimistic, 9), round(sklearn, 9), round(optimistic, 9)}) >= 2
    # ... and polyir gives the pessimistic one
    ap_mul, _, _ = _polyir_ap([scores], ["a"] * len(scores), [sorted(relevant)])
    assert ap_mul[0] == pytest.approx(pessimistic, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_q=st.integers(1, 6),
    n_c=st.integers(1, 14),
    levels=st.integers(1, 6),
)
def test_ap_with_ties_matches_brute_force_pessimistic_ap(seed, n_q, n_c, levels):
    """Scores on a few levels (many ties): polyir's AP, pooled and per candidate language, equals the
    AP of the ranking that sorts tied relevant candidates after tied non-relevant ones; where a row
    has no tie at all, it also equals sklearn's (the conventions agree there)."""
    rng = np.random.default_rng(seed)
    rows = (rng.integers(0, levels, size=(n_q, n_c)) / 8).astype(np.float32).tolist()  # exact in float32
    c_lang = rng.choice(["a", "b"], n_c).tolist()
    relevant = [sorted(rng.choice(n_c, size=rng.integers(1, n_c + 1), replace=False).tolist()) for _ in range(n_q)]
    ap_mul, ap_by, langs = _polyir_ap(rows, c_lang, relevant)
    for i, row in enumerate(rows):
        rel = set(relevant[i])
        assert ap_mul[i] == pytest.approx(_ap_by_sorting(row, rel), abs=1e-12)
        for j, y in enumerate(langs):
            cols = [k for k in range(n_c) if c_lang[k] == y]
            sub_rel = {cols.index(k) for k in rel if k in cols}
            expected = _ap_by_sorting([row[k] for k in cols], sub_rel)
            if math.isnan(expected):
                assert math.isnan(ap_by[i, j])
            else:
                assert ap_by[i, j] == pytest.approx(expected, abs=1e-12)
        if len(set(row)) == len(row) and 0 < len(rel) < n_c:
            y_true = [int(k in rel) for k in range(n_c)]
            assert ap_mul[i] == pytest.approx(average_precision_score(y_true, row), abs=1e-12)
        # pessimistic never exceeds sklearn's tie-averaged value
        if 0 < len(rel) < n_c:
            y_true = [int(k in rel) for k in range(n_c)]
            assert ap_mul[i] <= average_precision_score(y_true, row) + 1e-12


def test_duplicate_embeddings_tie_exactly_whatever_the_chunk():
    rng = np.random.default_rng(3)
    q, c, q_lang, c_lang, rel = _random_problem(rng, 9, 30, 24, ["en", "de"], 1)
    rel = [np.array([5])] * len(q)
    c[17] = c[5]  # a non-relevant duplicate of the relevant candidate
    c[23] = c[5]
    for chunk in (1, 4, None):
        rr = rank_relevant(q, c, c_lang, rel, chunk_size=chunk)
        assert rr.ties.sum(axis=1).tolist() == [2] * len(q)
        pooled = rr.pool_ranks()
        scores = (q.astype(np.float64) @ c.T.astype(np.float64))
        higher = (scores > scores[:, [5]]).sum(axis=1)
        assert pooled.rank.tolist() == (higher + 3).tolist()  # both duplicates rank before it


# ----------------------------------------------------------------------------------------------
# chunking and exactness against a brute-force reference


def _reference_ranks(scores, rel, c_lang, pool):
    """Rank of every relevant candidate in the pool, by counting (slow, obviously right)."""
    out = {}
    for i, row in enumerate(scores):
        members = [j for j in range(len(row)) if c_lang[j] in pool]
        rset = set(int(r) for r in rel[i])
        for r in rset:
            if c_lang[r] not in pool:
                continue
            s = row[r]
            before_rel = sum(1 for j in members if j in rset and (row[j] > s or (row[j] == s and j < r)))
            before_non = sum(1 for j in members if j not in rset and row[j] >= s)
            out[(i, r)] = before_rel + before_non + 1
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_q=st.integers(1, 12),
    n_c=st.integers(1, 25),
    chunk=st.integers(1, 13),
)
def test_integer_embeddings_match_brute_force_for_every_chunk(seed, n_q, n_c, chunk):
    # Small integer embeddings: exact scores and many ties.
    rng = np.random.default_rng(seed)
    q = rng.integers(-2, 3, size=(n_q, 3)).astype(np.float32)
    c = rng.integers(-2, 3, size=(n_c, 3)).astype(np.float32)
    c_lang = rng.choice(["a", "b", "c"], n_c).tolist()
    rel = [rng.choice(n_c, size=rng.integers(1, min(n_c, 4) + 1), replace=False) for _ in range(n_q)]
    scores = q.astype(np.float64) @ c.T.astype(np.float64)
    rr = rank_relevant(q, c, c_lang, rel, chunk_size=chunk)
    whole = rank_relevant(q, c, c_lang, rel)
    for name in ("candidate", "language", "score", "ge", "ties", "offsets"):
        np.testing.assert_array_equal(getattr(rr, name), getattr(whole, name))
    for pool in ({"a"}, {"b", "c"}, {"a", "b", "c"}):
        pr = rr.pool_ranks(pool)
        got = {
            (int(i), int(r)): int(k)
            for i, r, k, m in zip(pr.query_of_pair, rr.candidate, pr.rank, pr.in_pool)
            if m
        }
        assert got == _reference_ranks(scores, rel, c_lang, pool)


def test_chunk_sizes_give_identical_results_on_random_data():
    rng = np.random.default_rng(11)
    # 140 queries at once: the counting is split over threads (>= 64 rows per thread).
    q, c, q_lang, c_lang, rel = _random_problem(rng, 140, 90, 32, ["en", "de", "zh", "ar"], 5)
    results = [lareqa_metrics(q, c, q_lang, c_lang, rel, chunk_size=k) for k in (1, 7, None)]
    ref = results[0]
    for other in results[1:]:
        assert other.to_dict(per_query=True) == ref.to_dict(per_query=True)
    rrs = [rank_relevant(q, c, c_lang, rel, chunk_size=k) for k in (1, 7, 140)]
    for other in rrs[1:]:
        np.testing.assert_array_equal(other.score, rrs[0].score)
        np.testing.assert_array_equal(other.ge, rrs[0].ge)


def test_chunk_size_follows_memory_budget(monkeypatch):
    assert plan_chunk_size(100_000, 1 << 30) * 100_000 * 16 <= 1 << 30
    assert plan_chunk_size(100_000, 1 << 30) < plan_chunk_size(10_000, 1 << 30)
    assert plan_chunk_size(100_000, 1 << 28) < plan_chunk_size(100_000, 1 << 30)
    assert plan_chunk_size(100_000, 1) == 1
    seen: list[int] = []
    real = ranking._score_chunk

    def spy(q, rows, *args):
        seen.append(len(rows))
        return real(q, rows, *args)

    monkeypatch.setattr(ranking, "_score_chunk", spy)
    rng = np.random.default_rng(0)
    q, c, _, c_lang, rel = _random_problem(rng, 40, 50, 8, ["en", "de"], 3)
    budget = 16 * 50 * 6  # room for 6 queries of 50 candidates
    small = rank_relevant(q, c, c_lang, rel, memory_budget=budget)
    assert max(seen) == 6 and sum(seen) == 40
    seen.clear()
    big = rank_relevant(q, c, c_lang, rel)
    assert seen == [40]
    np.testing.assert_array_equal(small.ge, big.ge)


# ----------------------------------------------------------------------------------------------
# input errors


def _ok():
    q, c = _one_hot_case([[0.9, 0.1], [0.2, 0.8]])
    return q, c, ["en", "de"], ["en", "de"], [[0], [1]]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.__setitem__(0, np.zeros((0, 2), np.float32)), "empty"),
        (lambda a: a.__setitem__(1, np.zeros((0, 2), np.float32)), "empty"),
        (lambda a: a.__setitem__(1, np.eye(3, dtype=np.float32)), "dimension"),
        (lambda a: a.__setitem__(0, np.zeros(2, np.float32)), "2-D"),
        (lambda a: a.__setitem__(2, ["en"]), "query_lang"),
        (lambda a: a.__setitem__(3, ["en", "de", "es"]), "cand_lang"),
        (lambda a: a.__setitem__(4, [[0]]), "relevant has 1"),
        (lambda a: a.__setitem__(4, [[0], []]), "query 1 has no relevant"),
        (lambda a: a.__setitem__(4, [[0], [2]]), "out of range"),
        (lambda a: a.__setitem__(4, [[0], [0.5]]), "integers"),
        (lambda a: a[0].__setitem__((0, 0), np.nan), "NaN"),
    ],
)
def test_bad_inputs_raise_value_error(change, message):
    args = list(_ok())
    args[0] = args[0].copy()
    change(args)
    with pytest.raises(ValueError, match=message):
        lareqa_metrics(*args)


def test_duplicate_relevant_indices_count_once():
    q, c, ql, cl, _ = _ok()
    a = lareqa_metrics(q, c, ql, cl, [[0, 0], [1]])
    b = lareqa_metrics(q, c, ql, cl, [[0], [1]])
    assert a.to_dict() == b.to_dict()
