"""Pair-level claims with their tests: every X -> Y pair of every test set, row against reference.

For each test set, each compared row and each reference row, every (query language, candidate language)
pair gets its mAP in both and a paired randomization test over that pair's queries (seed-averaged
per-query AP when there are several seeds). The pairs are then grouped by the resource levels of their
two languages (``polyir/resources/language_groups.csv``): how many gain or lose significantly, and the
mean change per group, so "hybrid helps low-resource pairs" is a statement with its tests behind it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyir.evaluation.pairs import pair_tests
from polyir.language_groups import load_language_groups

ALPHA = 0.05


def _mean_result(paths: Sequence[Path]) -> dict[str, Any]:
    """One result whose per-query AP by language is the mean over seeds (results of one task)."""
    results = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    first = results[0]
    if len(results) == 1:
        return first
    pq = dict(first["per_query"])
    by_lang = {}
    for y in pq["ap_by_language"]:
        stack = np.array([[np.nan if v is None else v for v in r["per_query"]["ap_by_language"][y]] for r in results])
        with np.errstate(all="ignore"):
            by_lang[y] = [None if np.isnan(v) else float(v) for v in np.nanmean(stack, axis=0)]
    pq["ap_by_language"] = by_lang
    return {**first, "per_query": pq}


def pair_group(x: str, y: str, groups: Any) -> str:
    """``low → high`` etc.: the resource levels of the query and the candidate language."""
    return f"{groups.group(x, 'resource')} → {groups.group(y, 'resource')}"


def compare_pairs(row: dict[str, Any], ref: dict[str, Any], *, resamples: int, groups: Any) -> dict[str, Any]:
    """Every pair's test, and the per-group counts and mean changes."""
    pairs = pair_tests(row, ref, resamples=resamples)
    by_group: dict[str, dict[str, Any]] = {}
    for p in pairs:
        p["group"] = pair_group(p["query"], p["candidate"], groups)
        g = by_group.setdefault(p["group"], {"pairs": 0, "better": 0, "worse": 0, "diffs": []})
        g["pairs"] += 1
        g["better"] += int(p["p"] < ALPHA and p["diff"] > 0)
        g["worse"] += int(p["p"] < ALPHA and p["diff"] < 0)
        g["diffs"].append(p["diff"])
    for g in by_group.values():
        g["mean_diff"] = float(np.mean(g.pop("diffs")))
    return {"pairs": pairs, "by_group": dict(sorted(by_group.items()))}


def pair_tests_section(
    evaluations: dict[str, dict[Any, dict[str, Path]]], labels: Sequence[str],
    rows: Sequence[str], refs: Sequence[str], *, resamples: int,
) -> dict[str, Any]:
    """``label -> "row vs ref" -> compare_pairs(...)`` for every listed row and reference present."""
    groups = load_language_groups()
    out: dict[str, Any] = {}
    for label in labels:
        mean = {r: _mean_result([paths[label] for paths in by_seed.values()])
                for r, by_seed in evaluations.items() if r in set(rows) | set(refs)}
        section = {}
        for row in rows:
            for ref in refs:
                if row in mean and ref in mean and row != ref and f"{ref} vs {row}" not in section:
                    section[f"{row} vs {ref}"] = compare_pairs(mean[row], mean[ref], resamples=resamples, groups=groups)
        out[label] = section
    return out


def markdown(section: dict[str, Any]) -> str:
    """Per test set and comparison: significant gains / losses and the mean change, by resource group."""
    lines = ["# Pair-level tests", "",
             f"Paired randomization test per X → Y pair over its queries; a gain or loss counts at p < {ALPHA}.", ""]
    for label, comparisons in section.items():
        lines += [f"## {label}", "", "| comparison | pair group | pairs | better | worse | mean Δ mAP |",
                  "|---|---|---:|---:|---:|---:|"]
        for name, c in comparisons.items():
            for group, g in c["by_group"].items():
                lines.append(f"| {name} | {group} | {g['pairs']} | {g['better']} | {g['worse']} | {g['mean_diff']:+.4f} |")
        lines.append("")
    return "\n".join(lines)
