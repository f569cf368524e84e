"""What one test set's part of a report shows, built alike from an experiment or from loose results.

A :class:`TestSetView` is a list of rows (models); each row has its headline figures (mean over seeds,
spread, paired tests against reference rows) and the result files behind it, from which the matrix,
per-pair and per-language figures are averaged over seeds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyir.evaluation.pairs import DEFAULT_K, DEFAULT_MARGIN, pairs_of_result, weakest_pairs
from polyir.report.study import Experiment, ResultFile

KNOWN_METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10")
LABELS = {"mo_map": "Mo.", "cr_map": "Cr.", "mul_map": "Mul.", "rank_distance": "Rank dist.",
          "mul_hit@1": "hit@1", "mul_hit@10": "hit@10"}
LOWER_IS_BETTER = {"rank_distance"}
ROW_ORDER = ("base", "base+debias", "monolingual", "crosslingual", "hybrid")
REF_LETTERS = {"base": "B", "monolingual": "M", "base+debias": "D"}
_NOT_METRICS = {"std", "n_seeds"}


@dataclass
class RowView:
    """One model row of a test set's table."""

    name: str
    metrics: dict[str, float | None]
    std: dict[str, float] = field(default_factory=dict)
    n_seeds: int = 1
    tests: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # ref -> metric -> test
    results: list[ResultFile] = field(default_factory=list)
    same_as: str | None = None  # another row shows the same result files (e.g. hybrid = hybrid@0.5)


@dataclass
class TestSetView:
    """One test set: the rows, the reference row for differences, and the marks legend."""

    label: str
    rows: list[RowView]
    reference: str | None
    marks: str

    def metric_keys(self) -> list[str]:
        """Metric columns: the LAReQA ones in their usual order, then any other numeric key."""
        keys: set[str] = set()
        for r in self.rows:
            keys |= {k for k, v in r.metrics.items() if isinstance(v, (int, float)) or v is None}
        known = [k for k in KNOWN_METRICS if k in keys]
        return known + sorted(keys - set(known) - _NOT_METRICS)

    def row(self, name: str) -> RowView | None:
        return next((r for r in self.rows if r.name == name), None)


def metric_label(key: str) -> str:
    """Short column label: the experiment table's own labels first (they follow new metrics)."""
    from polyir.experiment.summary import LABELS as SUMMARY_LABELS

    return SUMMARY_LABELS.get(key) or LABELS.get(key, key)


def file_stem(label: str) -> str:
    """The eval file name of a result label, as polyir/experiment/runner.py writes it (``:`` and ``/`` replaced)."""
    return label.replace(":", "--").replace("/", "_")


def _hidden(stem: str) -> bool:
    """Evaluation files the experiment never reports (a guard set's validation half, used to choose)."""
    from polyir.experiment.summary import GUARD_VAL_PREFIX

    return stem.startswith(file_stem(GUARD_VAL_PREFIX))


def ref_letter(ref: str) -> str:
    return REF_LETTERS.get(ref, ref)


def order_rows(names: list[str]) -> list[str]:
    """The usual rows first (base, monolingual, crosslingual, hybrid), then the others by name."""
    return [r for r in ROW_ORDER if r in names] + sorted(r for r in names if r not in ROW_ORDER)


# ---------------------------------------------------------------------------------------------
# experiments


def _match_results(row: str, by_row: dict[str, list[ResultFile]], chosen: float | None) -> list[ResultFile]:
    """Result files behind a summary row: same name, else ``row@chosen α``, else the only ``row@…``."""
    if row in by_row:
        return by_row[row]
    if chosen is not None and f"{row}@{chosen:g}" in by_row:
        return by_row[f"{row}@{chosen:g}"]
    prefixed = [k for k in by_row if k.startswith(f"{row}@")]
    return by_row[prefixed[0]] if len(prefixed) == 1 else []


def experiment_views(exp: Experiment) -> list[TestSetView]:
    """One view per test set of an experiment's ``summary.json``, with its evaluation files attached."""
    chosen = (exp.summary.get("alpha") or {}).get("chosen")
    views = []
    labels = list(exp.summary["results"])
    stems = {file_stem(label) for label in labels} | set(labels)
    extra = sorted({r.test_set for r in exp.results if not _hidden(r.test_set)} - stems)
    for label in labels + extra:
        table = exp.summary["results"].get(label, {})
        by_row: dict[str, list[ResultFile]] = {}
        for r in exp.results:
            if r.test_set in (label, file_stem(label)):
                by_row.setdefault(r.row, []).append(r)
        for files in by_row.values():
            files.sort(key=lambda f: -1 if f.seed is None else f.seed)
        rows = []
        names = order_rows(list(table)) if table else order_rows(list(by_row))
        shown: dict[tuple[str, ...], str] = {}
        for name in names:
            entry = table.get(name)
            files = _match_results(name, by_row, chosen)
            if entry is None:
                entry = _entry_from_results(files)
            view = RowView(
                name=name,
                metrics={k: v for k, v in entry.items() if k not in _NOT_METRICS and not k.startswith("vs_")
                         and (v is None or isinstance(v, (int, float)))},
                std=dict(entry.get("std") or {}),
                n_seeds=int(entry.get("n_seeds") or max(1, len(files))),
                tests={k[3:]: v for k, v in entry.items() if k.startswith("vs_") and isinstance(v, dict)},
                results=files,
            )
            key = tuple(sorted(str(f.path) for f in files))
            if files and key in shown:
                view.same_as = shown[key]
            elif files:
                shown[key] = name
            rows.append(view)
        used = {str(f.path) for r in rows for f in r.results}
        for name in order_rows([k for k, files in by_row.items() if not {str(f.path) for f in files} & used]):
            # evaluated but not (yet) in summary.json, e.g. an α sweep still running: shown without tests
            files = by_row[name]
            entry = _entry_from_results(files)
            rows.append(RowView(name=name, metrics={k: v for k, v in entry.items() if k not in _NOT_METRICS},
                                std=dict(entry.get("std") or {}), n_seeds=len(files), results=files))
        reference = "base" if any(r.name == "base" for r in rows) else None
        views.append(TestSetView(label, rows, reference, str(exp.summary.get("marks") or "")))
    return views


def _entry_from_results(files: list[ResultFile]) -> dict[str, Any]:
    """A table entry (mean and spread over seeds) for a row that summary.json lacks."""
    if not files:
        return {}
    keys = list(files[0].data["metrics"])
    entry: dict[str, Any] = {}
    for k in keys:
        vals = [f.data["metrics"].get(k) for f in files]
        vals = [v for v in vals if isinstance(v, (int, float))]
        entry[k] = float(np.mean(vals)) if vals else None
        if len(vals) > 1:
            entry.setdefault("std", {})[k] = float(np.std(vals))
    entry["n_seeds"] = len(files)
    return entry


# ---------------------------------------------------------------------------------------------
# loose results


def loose_views(loose: list[ResultFile], *, resamples: int = 2000) -> list[TestSetView]:
    """One view per test set of loose results; rows are tested against the first file given."""
    from polyir.evaluation.compare import compare_results
    from polyir.errors import PolyirError

    views = []
    labels = list(dict.fromkeys(r.test_set for r in loose))
    for label in labels:
        files = [r for r in loose if r.test_set == label]
        ref = files[0]
        rows = []
        for i, f in enumerate(files):
            view = RowView(name=f.row, metrics=dict(f.data["metrics"]), results=[f])
            if i and "per_query" in f.data and "per_query" in ref.data:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        cmp = compare_results(ref.data, f.data, resamples=resamples)
                except (PolyirError, ValueError, KeyError):
                    cmp = None
                if cmp:
                    view.tests[ref.row] = {
                        t["metric"]: {"diff": t["diff"], "p": t["p_randomization"], "mark": t["mark"],
                                      "better": t["b_better"]}
                        for t in cmp["rows"]
                    }
            rows.append(view)
        marks = (f"vs {ref.row} (the first file given): + better / − worse, * p<0.05, ** p<0.01; paired "
                 f"randomization test over queries ({resamples} sign flips), macro as reported")
        views.append(TestSetView(label, rows, ref.row, marks))
    return views


# ---------------------------------------------------------------------------------------------
# seed means of the figures behind a row


def _nanmean_stack(arrays: list[np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(arrays), axis=0)


def mean_matrix(files: list[ResultFile]) -> tuple[list[str], list[str], np.ndarray] | None:
    """The X->Y mAP matrix averaged over seeds (None when the results have no matrix)."""
    mats = [f.data.get("matrix") for f in files]
    if not mats or not all(isinstance(m, dict) and "values" in m for m in mats):
        return None
    rows = list(mats[0]["query_languages"])
    cols = list(mats[0]["candidate_languages"])
    arrays = []
    for m in mats:
        if list(m["query_languages"]) != rows or list(m["candidate_languages"]) != cols:
            return None
        arrays.append(np.array([[np.nan if v is None else v for v in r] for r in m["values"]], dtype=float))
    return rows, cols, _nanmean_stack(arrays)


def mean_pairs(files: list[ResultFile], *, k: int = DEFAULT_K, margin: float = DEFAULT_MARGIN) -> dict[str, Any] | None:
    """Per-pair figures averaged over seeds, with the weakest pairs of the mean (None: no pair data)."""
    sections = [pairs_of_result(f.data, k=k, margin=margin) for f in files]
    if not sections or any(s is None for s in sections):
        return None
    if len(sections) == 1:
        return sections[0]
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for s in sections:
        for p in s["by_pair"]:
            a = acc.setdefault((p["query"], p["candidate"]), {"map": [], "hit@1": [], "n_queries": p["n_queries"]})
            a["map"].append(p["map"])
            a["hit@1"].append(p.get("hit@1"))
    table = [
        {"query": x, "candidate": y, "map": float(np.mean(a["map"])),
         "hit@1": None if any(h is None for h in a["hit@1"]) else float(np.mean(a["hit@1"])),
         "n_queries": a["n_queries"]}
        for (x, y), a in sorted(acc.items())
        if len(a["map"]) == len(sections)
    ]
    return {**sections[0], "by_pair": table, "weakest_pairs": weakest_pairs(table, k=k, margin=margin),
            "source": f"mean over {len(sections)} seeds"}


def mean_per_language(files: list[ResultFile]) -> dict[str, dict[str, float | None]]:
    """Per query language figures (n_queries, mo, cr, mul, rank_distance, hit@k) averaged over seeds."""
    per = [f.data.get("per_language") or {} for f in files]
    if not per:
        return {}
    out: dict[str, dict[str, float | None]] = {}
    for lang in per[0]:
        keys = list(per[0][lang])
        entry: dict[str, float | None] = {}
        for key in keys:
            vals = [p.get(lang, {}).get(key) for p in per]
            vals = [v for v in vals if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))]
            entry[key] = float(np.mean(vals)) if vals else None
        out[lang] = entry
    return out
