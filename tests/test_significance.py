"""Paired significance tests: identical runs, clear shifts, seeding, macro averaging, LAReQA pairing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyir.evaluation.lareqa import lareqa_metrics
from polyir.evaluation.significance import (
    compare_lareqa,
    paired_bootstrap,
    paired_permutation_test,
    paired_t_test,
    significance_mark,
)

N = 2000  # resamples: enough for p < 0.01, fast


def _runs(seed=0, n=120, shift=0.0, noise=0.05):
    rng = np.random.default_rng(seed)
    a = rng.random(n)
    b = np.clip(a + shift + rng.normal(0, noise, n), 0, None) if noise else a + shift
    return a, b


ALL_TESTS = [
    lambda a, b, **kw: paired_t_test(a, b),
    lambda a, b, **kw: paired_bootstrap(a, b, n_resamples=N, **kw),
    lambda a, b, **kw: paired_permutation_test(a, b, n_resamples=N, **kw),
]


@pytest.mark.parametrize("test", ALL_TESTS)
def test_identical_runs_give_p_one_and_no_nan(test):
    a, _ = _runs()
    res = test(a, a.copy())
    assert res.p_value == 1.0
    assert res.mean_diff == 0.0
    assert res.ci_low == 0.0 and res.ci_high == 0.0
    assert res.n == len(a)
    assert res.mark() == ""


def test_identical_runs_with_groups_and_2d_values():
    rng = np.random.default_rng(1)
    v = rng.random((50, 3))
    v[rng.random((50, 3)) < 0.3] = np.nan
    groups = rng.choice(["en", "de"], 50)
    for test in (paired_permutation_test, paired_bootstrap):
        res = test(v, v.copy(), groups=groups, n_resamples=N)
        assert res.p_value == 1.0 and not math.isnan(res.ci_low)


@pytest.mark.parametrize("test", ALL_TESTS)
def test_large_constant_shift_is_significant(test):
    a, b = _runs(shift=0.3, noise=0.0)  # b = a + 0.3 exactly up to rounding
    res = test(b, a)
    assert res.p_value < 0.01
    assert res.mean_diff == pytest.approx(0.3)
    assert res.ci_low <= 0.3 + 1e-9 and res.ci_high >= 0.3 - 1e-9
    assert res.mark() == "**"
    if res.n_resamples is not None:  # resampled p-values never reach 0: (extreme + 1) / (B + 1)
        assert res.p_value == pytest.approx(1 / (res.n_resamples + 1))
    res = test(a, b)  # direction: a - b
    assert res.mean_diff == pytest.approx(-0.3)


def test_bootstrap_and_permutation_are_seeded():
    a, b = _runs(shift=0.01, noise=0.1)
    for test in (paired_bootstrap, paired_permutation_test):
        one = test(a, b, n_resamples=N, seed=5)
        two = test(a, b, n_resamples=N, seed=5)
        assert one == two
        other = test(a, b, n_resamples=N, seed=6)
        assert (other.ci_low, other.ci_high, other.p_value) != (one.ci_low, one.ci_high, one.p_value)


@pytest.mark.parametrize("shift", [0.04, -0.04])
def test_permutation_agrees_with_t_test_on_a_clear_case(shift):
    a, b = _runs(seed=3, n=300, shift=shift, noise=0.1)
    t = paired_t_test(b, a)
    perm = paired_permutation_test(b, a, n_resamples=N, groups=np.repeat(["x", "y", "z"], 100))
    boot = paired_bootstrap(b, a, n_resamples=N)
    assert t.p_value < 0.01 and perm.p_value < 0.01 and boot.p_value < 0.01
    assert np.sign(t.mean_diff) == np.sign(perm.mean_diff) == np.sign(boot.mean_diff) == np.sign(shift)
    assert t.ci_low < t.mean_diff < t.ci_high


def test_noise_only_is_not_significant():
    rng = np.random.default_rng(4)
    a = rng.random(200)
    b = a + rng.normal(0, 0.1, 200)
    b = b - (b - a).mean()  # exactly zero mean difference
    tests = (
        paired_t_test(a, b),
        paired_permutation_test(a, b, n_resamples=N),
        paired_bootstrap(a, b, n_resamples=N),
    )
    for res in tests:
        assert res.p_value > 0.5
        assert res.ci_low < 0 < res.ci_high


def test_macro_statistic_weights_groups_equally():
    # Group x: 3 queries with difference 1; group y: 1 query with difference -1.
    # Plain mean (3 - 1)/4 = 0.5; macro over groups (1 + -1)/2 = 0.
    a = np.array([1.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 0.0, 1.0])
    groups = ["x", "x", "x", "y"]
    assert paired_permutation_test(a, b, n_resamples=N).mean_diff == pytest.approx(0.5)
    macro = paired_permutation_test(a, b, groups=groups, n_resamples=N)
    assert macro.mean_diff == pytest.approx(0.0)
    assert macro.n_cells == 2
    assert paired_bootstrap(a, b, groups=groups, n_resamples=N).mean_diff == pytest.approx(0.0)


def test_exact_enumeration_for_few_queries():
    # Differences 1, 2, 3 (mean 2); sign patterns with |sum| >= 6: +++ and --- -> p = 2/8.
    res = paired_permutation_test(np.array([1.0, 2.0, 3.0]), np.zeros(3), n_resamples=N)
    assert res.p_value == pytest.approx(0.25)
    assert res.n_resamples == 8


def test_nan_pairs_are_dropped():
    a = np.array([0.1, np.nan, 0.3, 0.5])
    b = np.array([0.0, 0.2, np.nan, 0.1])
    res = paired_t_test(a, b)
    assert res.n == 2
    assert res.mean_diff == pytest.approx(0.25)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="different"):
        paired_t_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="different"):
        paired_permutation_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="groups"):
        paired_bootstrap(np.zeros(3), np.zeros(3), groups=["a", "b"])


def test_significance_mark():
    assert significance_mark(0.001) == "**"
    assert significance_mark(0.03) == "*"
    assert significance_mark(0.2) == ""
    assert significance_mark(float("nan")) == ""
    assert significance_mark(0.005, alpha=0.001) == ""


def _lareqa_run(q, c, q_lang, c_lang, rel, ids):
    return lareqa_metrics(q, c, q_lang, c_lang, rel, query_ids=ids)


def test_compare_lareqa_pairs_by_query_id_and_matches_macro_differences():
    rng = np.random.default_rng(9)
    n_q, n_c, d = 40, 30, 8
    q = rng.normal(size=(n_q, d)).astype(np.float32)
    c = rng.normal(size=(n_c, d)).astype(np.float32)
    q_lang = rng.choice(["en", "de", "es"], n_q)
    c_lang = rng.choice(["en", "de", "es"], n_c)
    rel = [rng.choice(n_c, size=rng.integers(1, 4), replace=False) for _ in range(n_q)]
    ids = [f"q{i}" for i in range(n_q)]
    run_a = _lareqa_run(q, c, q_lang, c_lang, rel, ids)
    # The same run with queries in another order: pairing by id makes it identical.
    perm = rng.permutation(n_q)
    shuffled = _lareqa_run(q[perm], c, q_lang[perm], c_lang, [rel[i] for i in perm], [ids[i] for i in perm])
    same = compare_lareqa(run_a, shuffled, n_resamples=N)
    assert set(same) == {"mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10"}
    assert all(r.p_value == 1.0 and r.mean_diff == 0.0 for r in same.values())
    # A different model (noisy queries): test statistics equal the macro metric differences.
    run_b = _lareqa_run(q + rng.normal(0, 0.8, q.shape).astype(np.float32), c, q_lang, c_lang, rel, ids)
    diff = compare_lareqa(run_a, run_b, n_resamples=N)
    for metric in ("mo_map", "cr_map", "mul_map", "rank_distance"):
        expected = getattr(run_a, metric) - getattr(run_b, metric)
        assert diff[metric].mean_diff == pytest.approx(expected, abs=1e-12), metric
    assert diff["mul_hit@1"].mean_diff == pytest.approx(run_a.mul_hit[1] - run_b.mul_hit[1], abs=1e-12)
    with pytest.raises(ValueError, match="query ids"):
        other_ids = _lareqa_run(q, c, q_lang, c_lang, rel, [f"x{i}" for i in range(n_q)])
        compare_lareqa(run_a, other_ids)
