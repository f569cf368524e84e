"""Paired significance tests over queries between two runs on the same queries.

Reviewers faulted small gains reported without tests, so every comparison polyir prints between
two runs carries one of these.  ``a`` and ``b`` are per-query values of the two runs, aligned by
query; the reported difference is always ``a - b``.  Pairs where either value is NaN (e.g. a
query skipped by a metric) are dropped.

For macro-averaged metrics (mean over languages, or over language pairs, of a per-query mean),
:func:`paired_permutation_test` and :func:`paired_bootstrap` with ``groups`` recompute exactly that
macro average on every resample.  Values may then be 2-D (queries x columns, e.g. the Cr. AP of
each query against each candidate language): the macro is taken over the non-empty
(group, column) cells, and a query's whole row flips or is resampled together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from polyir.evaluation.lareqa import LareqaResult

# Elements (resamples x queries x columns) materialised at once.
_BATCH_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class PairedTestResult:
    """Outcome of one paired test; ``mean_diff`` is the (macro) mean of ``a - b``."""

    test: str
    n: int  # paired queries used
    mean_diff: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    n_resamples: int | None = None
    seed: int | None = None
    n_cells: int | None = None  # cells (group x column) in the macro average, for macro tests

    def mark(self, alpha: float = 0.05) -> str:
        """``"**"``, ``"*"`` or ``""``, see :func:`significance_mark`."""
        return significance_mark(self.p_value, alpha)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def significance_mark(p: float, alpha: float = 0.05) -> str:
    """``"**"`` if p < min(alpha, 0.01), ``"*"`` if p < alpha, else ``""`` (also for NaN)."""
    if p is None or math.isnan(p):
        return ""
    if p < min(alpha, 0.01):
        return "**"
    if p < alpha:
        return "*"
    return ""


# ----------------------------------------------------------------------------------------------


def _pair_1d(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"expected 1-D per-query values, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"runs have different numbers of queries: {a.shape[0]} and {b.shape[0]}")
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.any():
        raise ValueError("no query has a value in both runs")
    return a[keep], b[keep]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def paired_t_test(a: Any, b: Any, *, confidence: float = 0.95) -> PairedTestResult:
    """Two-sided paired t-test (scipy.stats.ttest_rel) of per-query values; zero variance gives p = 1
    when the runs agree (and p = 0 for a constant non-zero difference) instead of NaN."""
    _check_confidence(confidence)
    x, y = _pair_1d(a, b)
    n = len(x)
    if n < 2:
        raise ValueError("a paired t-test needs at least 2 queries with values in both runs")
    d = x - y
    mean = float(d.mean())
    # Zero variance (up to rounding, e.g. a + c - a): scipy would give NaN or warn.
    scale = max(float(np.abs(x).max()), float(np.abs(y).max()), 1e-300)
    if float(np.ptp(d)) <= 1e-12 * scale:
        p = 1.0 if abs(mean) <= 1e-12 * scale else 0.0
        return PairedTestResult("paired t-test", n, mean, mean, mean, confidence, p)
    res = stats.ttest_rel(x, y)
    ci = res.confidence_interval(confidence_level=confidence)
    return PairedTestResult(
        "paired t-test", n, mean, float(ci.low), float(ci.high), confidence, float(res.pvalue)
    )


class _Macro:
    """Per-query differences with the weights that turn a sum over queries into the macro mean."""

    def __init__(self, a: Any, b: Any, groups: Sequence[Any] | None) -> None:
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"runs have different shapes of per-query values: {a.shape} and {b.shape}")
        if a.ndim not in (1, 2) or a.shape[0] == 0:
            raise ValueError(f"expected non-empty 1-D or 2-D per-query values, got shape {a.shape}")
        n_all = a.shape[0]
        if a.ndim == 1:
            a, b = a[:, None], b[:, None]
        if groups is None:
            g = np.zeros(n_all, dtype=np.int64)
        else:
            labels = np.asarray([str(v) for v in groups], dtype=object)
            if len(labels) != n_all:
                raise ValueError(f"groups has {len(labels)} labels but there are {n_all} queries")
            _, g = np.unique(labels.astype(str), return_inverse=True)
        finite = ~(np.isnan(a) | np.isnan(b))
        rows = finite.any(axis=1)
        if not rows.any():
            raise ValueError("no query has a value in both runs")
        d = np.where(finite, a - b, 0.0)[rows]
        finite = finite[rows]
        g = g[rows]
        self.n = int(rows.sum())
        self.groups = [np.flatnonzero(g == k) for k in np.unique(g)]
        counts = np.zeros((len(self.groups), d.shape[1]))
        for k, idx in enumerate(self.groups):
            counts[k] = finite[idx].sum(axis=0)
        self.n_cells = int((counts > 0).sum())
        weights = np.zeros_like(d)
        for k, idx in enumerate(self.groups):
            with np.errstate(divide="ignore"):
                weights[idx] = np.where(finite[idx], 1.0 / (self.n_cells * counts[k]), 0.0)
        self.d = d
        self.finite = finite
        self.contribution = (weights * d).sum(axis=1)  # macro mean = sum of contributions
        self.observed = float(self.contribution.sum())

    def bootstrap(self, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
        """Macro mean of ``a - b`` on stratified resamples of queries (within each group)."""
        out = np.empty(n_resamples)
        m = self.d.shape[1]
        n_groups = len(self.groups)
        biggest = max(len(idx) for idx in self.groups)
        done = 0
        while done < n_resamples:
            batch = min(n_resamples - done, max(1, _BATCH_ELEMENTS // biggest))
            cell_sum = np.zeros((batch, n_groups, m))
            cell_cnt = np.zeros((batch, n_groups, m))
            for k, idx in enumerate(self.groups):
                n_g = len(idx)
                # How many times each query of the group is drawn, per resample.
                draws = rng.integers(0, n_g, size=(batch, n_g)) + (np.arange(batch) * n_g)[:, None]
                times = np.bincount(draws.ravel(), minlength=batch * n_g).reshape(batch, n_g)
                times = times.astype(np.float64)
                cell_sum[:, k] = times @ self.d[idx]
                cell_cnt[:, k] = times @ self.finite[idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                cell_mean = (cell_sum / cell_cnt).reshape(batch, -1)
            # A cell left without any finite value in a resample drops out of that macro average.
            present = ~np.isnan(cell_mean)
            out[done : done + batch] = np.where(present, cell_mean, 0.0).sum(axis=1) / present.sum(axis=1)
            done += batch
        return out

    def sign_flips(self, n_resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
        """Macro mean under random sign flips of each query's difference; exact enumeration when small."""
        n = len(self.contribution)
        if n <= 16 and 2**n <= n_resamples:
            codes = np.arange(2**n, dtype=np.int64)[:, None]
            signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
            return signs @ self.contribution, True
        total = float(self.contribution.sum())
        out = np.empty(n_resamples)
        done = 0
        while done < n_resamples:
            batch = min(n_resamples - done, max(1, _BATCH_ELEMENTS // n))
            raw = rng.integers(0, 256, size=(batch, (n + 7) // 8), dtype=np.uint8)
            flipped = np.unpackbits(raw, axis=1, count=n).astype(np.float64)
            out[done : done + batch] = total - 2.0 * (flipped @ self.contribution)
            done += batch
        return out, False

    def tolerance(self) -> float:
        """Slack for comparing resampled statistics with the observed one (floating-point noise)."""
        return 1e-9 * max(float(np.abs(self.contribution).sum()), 1e-300)


def _percentile_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def paired_bootstrap(
    a: Any,
    b: Any,
    *,
    groups: Sequence[Any] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedTestResult:
    """Paired bootstrap of the mean (``groups``: stratified, macro over groups) of ``a - b``.

    Returns the percentile CI and a two-sided p-value from the bootstrap distribution shifted to
    mean zero: (#{|t* - t| >= |t|} + 1) / (n_resamples + 1).
    """
    _check_confidence(confidence)
    _check_resamples(n_resamples)
    macro = _Macro(a, b, groups)
    boot = macro.bootstrap(n_resamples, np.random.default_rng(seed))
    obs = macro.observed
    extreme = int((np.abs(boot - obs) >= abs(obs) - macro.tolerance()).sum())
    lo, hi = _percentile_ci(boot, confidence)
    name = "paired bootstrap" if groups is None else "paired stratified bootstrap (macro)"
    return PairedTestResult(
        name, macro.n, obs, lo, hi, confidence, (extreme + 1) / (n_resamples + 1), n_resamples, seed,
        macro.n_cells if groups is not None else None,
    )


def paired_permutation_test(
    a: Any,
    b: Any,
    *,
    groups: Sequence[Any] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedTestResult:
    """Paired randomization test: each query's difference flips sign at random and the (macro) mean
    is recomputed, so the test respects the averaging of the reported metric.

    ``a``/``b`` may be 2-D (queries x columns); ``groups`` labels queries (e.g. query language).
    The CI is the percentile interval of a stratified paired bootstrap (same seed).  When
    2**n <= n_resamples all sign patterns are enumerated (exact p-value).
    """
    _check_confidence(confidence)
    _check_resamples(n_resamples)
    macro = _Macro(a, b, groups)
    rng = np.random.default_rng(seed)
    flipped, exact = macro.sign_flips(n_resamples, rng)
    obs = macro.observed
    extreme = int((np.abs(flipped) >= abs(obs) - macro.tolerance()).sum())
    p = extreme / len(flipped) if exact else (extreme + 1) / (n_resamples + 1)
    lo, hi = _percentile_ci(macro.bootstrap(n_resamples, rng), confidence)
    name = "paired permutation (macro)" if groups is not None else "paired permutation"
    return PairedTestResult(
        name, macro.n, obs, lo, hi, confidence, float(min(p, 1.0)), len(flipped) if exact else n_resamples,
        seed, macro.n_cells,
    )


def compare_lareqa(
    a: LareqaResult,
    b: LareqaResult,
    *,
    metrics: Sequence[str] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, PairedTestResult]:
    """Macro-respecting paired permutation tests of LAReQA metrics between two runs (``a - b``).

    Queries are paired by query id (both runs must hold the same ids and languages); groups are
    query languages, and Cr. cells are (query language, candidate language) pairs.  Default
    metrics: mo_map, cr_map, mul_map, rank_distance and mul_hit@k for each k of run ``a``.
    """
    pa, pb = a.per_query, b.per_query
    ids_a = [str(v) for v in pa.query_id.tolist()]
    ids_b = [str(v) for v in pb.query_id.tolist()]
    if len(set(ids_a)) != len(ids_a) or set(ids_a) != set(ids_b):
        raise ValueError("the two runs do not hold the same query ids; compare runs on the same queries")
    where_b = {q: i for i, q in enumerate(ids_b)}
    order_b = np.array([where_b[q] for q in ids_a], dtype=np.int64)
    if not np.array_equal(pa.query_lang, pb.query_lang[order_b]):
        raise ValueError("the two runs give different languages to the same query ids")
    if metrics is None:
        metrics = ["mo_map", "cr_map", "mul_map", "rank_distance"] + [f"mul_hit@{k}" for k in a.mul_hit]
    if "cr_map" in metrics and pa.candidate_languages != pb.candidate_languages:
        raise ValueError("the two runs have different candidate languages; Cr. cannot be paired")
    out: dict[str, PairedTestResult] = {}
    for metric in metrics:
        va = pa.values(metric)
        vb = pb.values(metric)[order_b]
        out[metric] = paired_permutation_test(
            va, vb, groups=pa.query_lang, n_resamples=n_resamples, seed=seed, confidence=confidence
        )
    return out
