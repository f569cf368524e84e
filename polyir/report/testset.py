"""What the report shows of one test set: the figures behind ``templates/testset.html.j2``.

Summary table with significance marks, every paired test, bar charts, one X→Y heatmap per row, the
weakest language pairs, means by language group and per-language figures (means over seeds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from markupsafe import Markup

from polyir.language_groups import LanguageGroups, group_means, group_per_language
from polyir.report import charts
from polyir.report.format import Ids, fmt, p_value, signed
from polyir.report.render import render
from polyir.report.views import (
    KNOWN_METRICS,
    RowView,
    TestSetView,
    mean_matrix,
    mean_pairs,
    mean_per_language,
    metric_label,
    ref_letter,
)

_PAIR_FIGURES = (("mo", "Mo."), ("cr_out", "Cr. out"), ("cr_in", "Cr. in"))
# counts, what the pairs give already, and hit@k (in the per-language table)
_SKIP_PER_LANGUAGE = {"n_queries", "queries", "passages", "candidates", "mo", "cr", "mul_hit@1", "mul_hit@10"}
_PER_LANGUAGE_LABELS = {"mul": "Mul.", "rank_distance": "Rank dist."}
_LOWER = {"rank_distance"}


def figure(uri: str | None, alt: str, caption: str) -> dict[str, Any] | None:
    """A chart (a PNG data URI) with its alt text and caption; None when there is no chart."""
    return {"uri": Markup(uri), "alt": alt, "caption": caption} if uri else None


def _marks(row: RowView, metric: str) -> list[dict[str, str]]:
    out = []
    for ref, tests in row.tests.items():
        t = tests.get(metric)
        if not t or not t.get("mark"):
            continue
        p = t.get("p")
        title = f"vs {ref}: {signed(metric, t.get('diff'))}" + (f" (p={p:.4g})" if isinstance(p, (int, float)) else "")
        sign, cls = ("+", "better") if t.get("better") else ("−", "worse")
        out.append({"cls": cls, "title": title, "text": f"{ref_letter(ref)}{sign}{t['mark']}"})
    return out


def summary_table(view: TestSetView) -> dict[str, Any]:
    """Rows x metrics: mean over seeds, ± spread, and significance marks in aligned columns."""
    keys = view.metric_keys()
    spread = {k for k in keys if any(r.n_seeds > 1 and k in r.std for r in view.rows)}
    refs = {k: max((sum(1 for t in r.tests.values() if (t.get(k) or {}).get("mark")) for r in view.rows), default=0)
            for k in keys}
    rows = []
    for r in view.rows:
        cells = [{"value": fmt(k, r.metrics.get(k)),
                  "sd": (f"±{fmt(k, r.std[k])}" if r.n_seeds > 1 and k in r.std else "") if k in spread else None,
                  "marks": _marks(r, k), "marks_width": f"{2.9 * refs[k]:.1f}" if refs[k] else None}
                 for k in keys]
        rows.append({"name": r.name, "same_as": r.same_as, "cls": "ref" if r.name == view.reference else "",
                     "cells": cells, "seeds": r.n_seeds})
    return {"headers": [metric_label(k) for k in keys], "rows": rows}


def tests_rows(view: TestSetView) -> list[list[str]]:
    """One row per paired test: row, reference, metric, difference, p, mark, direction."""
    return [[r.name, ref, metric_label(metric), signed(metric, t.get("diff")), p_value(t.get("p")), t.get("mark") or "",
             {True: "better", False: "worse"}.get(t.get("better"), "same")]
            for r in view.rows for ref, tests in r.tests.items() for metric, t in tests.items()]


def heatmaps(view: TestSetView, pairs: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """One figure per row: its X->Y matrix and its difference to the reference row, scales shared."""
    mats = {r.name: mean_matrix(r.results) for r in view.rows if not r.same_as and r.results}
    mats = {k: v for k, v in mats.items() if v is not None}
    if not mats:
        return []
    ref = mats.get(view.reference or "")
    deltas = {}
    for name, (rows, cols, arr) in mats.items():
        if ref is not None and name != view.reference and ref[0] == rows and ref[1] == cols:
            deltas[name] = arr - ref[2]
    lows = [float(np.nanmin(a)) for _, _, a in mats.values() if np.isfinite(a).any()]
    vmin = max(0.0, np.floor(min(lows) * 10 - 0.5) / 10) if lows else 0.0
    spans = [float(np.nanmax(np.abs(d))) for d in deltas.values() if np.isfinite(d).any()]
    lim = max(0.02, max(spans)) if spans else None
    out = []
    for r in view.rows:
        if r.name not in mats:
            continue
        rows, cols, arr = mats[r.name]
        flagged = {(w["query"], w["candidate"]) for w in (pairs.get(r.name) or {}).get("weakest_pairs", [])}
        seeds = f"mean over {len(r.results)} seeds" if len(r.results) > 1 else "one run"
        aliases = [o.name for o in view.rows if o.same_as == r.name]
        name = r.name + (f" (= {', '.join(aliases)})" if aliases else "")
        delta = deltas.get(r.name)
        uri = charts.heatmap(rows, cols, arr, f"{view.label} · {name}: X→Y mAP ({seeds})", flagged=flagged,
                             vmin=vmin, delta=delta, delta_lim=lim, delta_title=f"{r.name} − {view.reference}")
        cap = (f"{name}: mAP of queries in X against candidates in Y only ({seeds}); the diagonal is Mo.; "
               "red outlines mark the weakest pairs"
               + (f"; right: difference to {view.reference} (blue: better)" if delta is not None else ""))
        fig = figure(uri, f"X→Y heatmap of {name} on {view.label}", cap)
        if fig:
            out.append(fig)
    return out


def weakest(view: TestSetView, pairs: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    """The flagged pairs of every row, with the rule that flagged them (None when there is none)."""
    ref_pairs = pairs.get(view.reference or "") or {}
    ref_map = {(p["query"], p["candidate"]): p["map"] for p in ref_pairs.get("by_pair", [])}
    rows = []
    for r in view.rows:
        sec = pairs.get(r.name)
        if r.same_as or not sec:
            continue
        hits = {(p["query"], p["candidate"]): p for p in sec["by_pair"]}
        for w in sec["weakest_pairs"]:
            key = (w["query"], w["candidate"])
            d = w["map"] - ref_map[key] if key in ref_map and r.name != view.reference else None
            rows.append({"cells": [r.name, f"{w['query']}→{w['candidate']}", fmt("map", w["map"]),
                                   fmt("hit", hits.get(key, {}).get("hit@1")), fmt("map", w["row_mean"]),
                                   fmt("map", w["column_mean"]), "–" if d is None else f"{d:+.4f}",
                                   fmt("n_queries", hits.get(key, {}).get("n_queries"))],
                         "reasons": list(w["reasons"])})
    if not rows:
        return None
    first = next((p for p in pairs.values() if p), {})
    headers = ["row", "pair X→Y", "mAP", "hit@1", "row mean", "column mean", f"Δ vs {view.reference or '–'}",
               "queries", "why"]
    return {"rule": (first.get("weakest_rule") or {}).get("text", ""), "headers": headers, "rows": rows}


def _per_language_keys(per: dict[str, dict[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(k for v in per.values() for k in v))
    return [k for k in keys if k not in _SKIP_PER_LANGUAGE and any(isinstance(v.get(k), (int, float)) for v in per.values())]


def group_tables(view: TestSetView, pairs: dict[str, dict[str, Any] | None], groups: LanguageGroups) -> dict[str, Any] | None:
    """Per grouping column: groups x figures against the rows, the best row in bold.

    Figures: Mo., Cr. out, Cr. in from the per-pair mAP; every other per query language figure
    (Mul., rank distance, nDCG@10, ...) as the mean over the group's query languages.
    """
    shown = [r for r in view.rows if not r.same_as and r.results]
    per = {r.name: mean_per_language(r.results) for r in shown}
    shown = [r for r in shown if pairs.get(r.name) or per[r.name]]
    if not shown:
        return None
    keys = _per_language_keys(per[shown[0].name])
    tables = []
    for by in groups.columns:
        by_pairs = {r.name: group_means(pairs[r.name]["by_pair"], groups, by) for r in shown if pairs.get(r.name)}
        by_lang = {r.name: group_per_language(per[r.name], groups, by, keys) for r in shown}
        all_langs = {c for r in shown for c in per[r.name]}
        all_langs |= {c for m in by_pairs.values() for v in m["groups"].values() for c in v}
        members = groups.groups(sorted(all_langs), by)
        figures = ([(k, label, "pair") for k, label in _PAIR_FIGURES] if by_pairs else []) + \
                  [(k, _PER_LANGUAGE_LABELS.get(k, k), "lang") for k in keys]
        body = []
        for g, langs in members.items():
            lines = []
            for key, label, src in figures:
                if src == "pair":
                    vals = [by_pairs[r.name]["per_group"].get(g, {}).get(key) if r.name in by_pairs else None for r in shown]
                else:
                    vals = [by_lang[r.name].get(g, {}).get(key) for r in shown]
                have = [v for v in vals if v is not None]
                best = (min(have) if key in _LOWER else max(have)) if have else None
                lines.append({"label": label, "cells": [
                    {"text": fmt(key, v), "best": v is not None and v == best and len(have) > 1} for v in vals]})
            body.append({"group": g, "languages": ", ".join(langs), "lines": lines})
        cross = []
        if by_pairs:
            names = list(next(iter(by_pairs.values()))["groups"])
            for name, means in by_pairs.items():
                cm = means["cross"]
                cross.append({"name": name, "headers": [f"{by}: X \\ Y", *names],
                              "rows": [[g, *[fmt("map", cm[g][h]) for h in names]] for g in names]})
        tables.append({"by": by, "body": body, "cross": cross})
    return {"pair_note": any(pairs.get(r.name) for r in shown), "source": groups.source,
            "rows": [r.name for r in shown], "tables": tables}


def per_language(view: TestSetView, groups: LanguageGroups) -> list[dict[str, Any]]:
    """Per row: each query language's figures (mean over seeds)."""
    parts = []
    for r in view.rows:
        if r.same_as or not r.results:
            continue
        per = mean_per_language(r.results)
        if not per:
            continue
        keys = list(dict.fromkeys(k for v in per.values() for k in v))
        parts.append({"name": r.name, "headers": ["lang", "name", *keys],
                      "rows": [[lang, groups.name(lang), *[fmt(k, v.get(k)) for k in keys]] for lang, v in per.items()]})
    return parts


def test_set_section(view: TestSetView, groups: LanguageGroups, ids: Ids, prefix: str, k: int, margin: float) -> tuple[str, Markup]:
    """(anchor id, HTML) of one test set."""
    from polyir.experiment.summary import GUARD_PREFIX

    anchor = ids(prefix, view.label)
    pairs = {r.name: (mean_pairs(r.results, k=k, margin=margin) if r.results and not r.same_as else None)
             for r in view.rows}
    bars = [figure(charts.headline_bars(view), f"mAP bars on {view.label}",
                   "Mo./Cr./Mul. mAP per row; error bars: spread over seeds"),
            figure(charts.rank_distance_bars(view), f"rank distance bars on {view.label}",
                   "rank distance (max − min pooled rank of a query's relevant candidates) per query language "
                   "and macro; lower means less language bias")]
    bars += [figure(charts.per_language_bars(view, metric), f"{metric} bars on {view.label}",
                    f"{metric} per query language and macro")
             for metric in view.metric_keys() if metric not in KNOWN_METRICS]
    html = render(
        "testset.html.j2", anchor=anchor, label=view.label, marks=view.marks,
        kind=" (guard set, test half)" if view.label.startswith(GUARD_PREFIX) else "",
        summary=summary_table(view), tests=tests_rows(view), bars=[b for b in bars if b],
        heatmaps=heatmaps(view, pairs), weakest=weakest(view, pairs), groups=group_tables(view, pairs, groups),
        per_language=per_language(view, groups),
    )
    return anchor, html
