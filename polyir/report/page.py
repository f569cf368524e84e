"""The self-contained HTML page of a study: inline CSS, charts as data URIs, every text escaped."""

from __future__ import annotations

import datetime as _dt
import json
import re
from html import escape
from typing import Any

import numpy as np

from polyir.evaluation.pairs import DEFAULT_K, DEFAULT_MARGIN
from polyir.language_groups import LanguageGroups, group_means, group_per_language
from polyir.report import charts
from polyir.report.study import Experiment, Study
from polyir.report.views import (
    KNOWN_METRICS,
    RowView,
    TestSetView,
    experiment_views,
    loose_views,
    mean_matrix,
    mean_pairs,
    mean_per_language,
    metric_label,
    ref_letter,
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
 padding:0 18px 40px;color:#1d232a;background:#fff}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{font-size:1.3em;border-bottom:2px solid #d8dee4;padding-bottom:.2em;
 margin-top:1.8em}h3{font-size:1.1em;margin-top:1.5em}h4{font-size:1em;margin:1.2em 0 .4em}
.meta,.legend,figcaption,.note{color:#57606a;font-size:.9em}
nav ul{margin:.3em 0;padding-left:1.2em}nav li{margin:.1em 0}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:3px 8px;vertical-align:top}
th{background:#f3f5f7;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.ref td:first-child{font-weight:600}td.best{font-weight:700}
td.group{background:#fafbfc;font-weight:600}
.sd{display:inline-block;min-width:4.4em;text-align:left;padding-left:.35em;color:#6e7781;font-size:.85em}
.v{display:inline-block;min-width:4.3em;text-align:right}.marks{display:inline-block;text-align:left}
.mark{font-size:.82em;margin-left:.35em;padding:0 .25em;border-radius:3px;white-space:nowrap}
.mark.better{background:#dafbe1;color:#116329}.mark.worse{background:#ffebe9;color:#a40e26}
.spread{color:#6e7781;font-size:.85em}
.reason{font-size:.82em;background:#fff1e5;color:#953800;padding:0 .3em;border-radius:3px;margin-right:.2em}
figure{margin:.8em 0 1.2em}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
details{margin:.4em 0 .8em;border:1px solid #d8dee4;border-radius:6px;padding:.3em .7em}
details>summary{cursor:pointer;font-weight:600}
.grid>figure{min-width:0;max-width:100%}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:.85em;max-height:32em}
.warn{color:#9a6700;font-weight:600}.grid{display:flex;flex-wrap:wrap;gap:12px}
"""


def esc(value: Any) -> str:
    """Escaped text of any value (None -> empty)."""
    return "" if value is None else escape(str(value), quote=True)


def fmt(key: str, value: Any) -> str:
    """A figure as text: rank distance with 1 decimal, counts as integers, other figures with 4."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if key.startswith("n_") or key in ("queries", "candidates", "passages"):
        return str(int(value))
    if not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.1f}" if key == "rank_distance" else f"{value:.4f}"


def signed(key: str, value: Any) -> str:
    """A difference with its sign (+0.0123, −4.5)."""
    if not isinstance(value, (int, float)) or np.isnan(value):
        return "–"
    text = fmt(key, abs(value))
    return ("−" if value < 0 else "+") + text


_NUMBER = re.compile(r"[-+−]?\d+(?:\.\d+)?|–")


def table(
    headers: list[str],
    rows: list[list[str]],
    cls: str,
    *,
    raw: bool = False,
    row_classes: list[str] | None = None,
    num_cols: set[int] | None = None,
) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then they are already HTML).  Number cells
    (``num_cols``, else cells that are one number) are right-aligned."""
    head = "".join(f"<th>{h if raw else esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        rc = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = []
        for j, c in enumerate(row):
            text = c if raw else esc(c)
            num = j in num_cols if num_cols is not None else bool(_NUMBER.fullmatch(c.strip()))
            cells.append(f'<td class="num">{text}</td>' if num else f"<td>{text}</td>")
        body.append(f"<tr{rc}>{''.join(cells)}</tr>")
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def figure(uri: str | None, alt: str, caption: str) -> str:
    if not uri:
        return ""
    return (f'<figure><img src="{uri}" alt="{esc(alt)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def details(summary: str, body: str, cls: str = "") -> str:
    c = f' class="{esc(cls)}"' if cls else ""
    return f"<details{c}><summary>{esc(summary)}</summary>{body}</details>"


def pre(obj: Any) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    return f"<pre>{esc(text)}</pre>"


class _Ids:
    """Unique, readable element ids."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-") or "section"
        name, i = base, 2
        while name in self.used:
            name, i = f"{base}-{i}", i + 1
        self.used.add(name)
        return name


# ---------------------------------------------------------------------------------------------


def _marks(row: RowView, metric: str) -> str:
    out = []
    for ref, tests in row.tests.items():
        t = tests.get(metric)
        if not t or not t.get("mark"):
            continue
        p = t.get("p")
        title = f"vs {ref}: {signed(metric, t.get('diff'))}" + (f" (p={p:.4g})" if isinstance(p, (int, float)) else "")
        sign, cls = ("+", "better") if t.get("better") else ("−", "worse")
        out.append(f'<span class="mark {cls}" title="{esc(title)}">{esc(ref_letter(ref))}{sign}{esc(t["mark"])}</span>')
    return "".join(out)


def summary_table(view: TestSetView) -> str:
    """Rows x metrics: mean over seeds, ± spread, and significance marks in aligned columns."""
    keys = view.metric_keys()
    spread = {k for k in keys if any(r.n_seeds > 1 and k in r.std for r in view.rows)}
    refs = {k: max((sum(1 for t in r.tests.values() if (t.get(k) or {}).get("mark")) for r in view.rows), default=0)
            for k in keys}
    rows, classes = [], []
    for r in view.rows:
        cells = [esc(r.name) + (f' <span class="spread">(= {esc(r.same_as)})</span>' if r.same_as else "")]
        for k in keys:
            text = f'<span class="v">{esc(fmt(k, r.metrics.get(k)))}</span>'
            if k in spread:
                sd = f"±{fmt(k, r.std[k])}" if r.n_seeds > 1 and k in r.std else ""
                text += f'<span class="sd">{esc(sd)}</span>'
            if refs[k]:
                text += f'<span class="marks" style="min-width:{2.9 * refs[k]:.1f}em">{_marks(r, k)}</span>'
            cells.append(text)
        cells.append(str(r.n_seeds))
        rows.append(cells)
        classes.append("ref" if r.name == view.reference else "")
    headers = ["row", *[esc(metric_label(k)) for k in keys], "seeds"]
    return table(headers, rows, "summary", raw=True, row_classes=classes, num_cols=set(range(1, len(keys) + 2)))


def tests_table(view: TestSetView) -> str:
    rows = []
    for r in view.rows:
        for ref, tests in r.tests.items():
            for metric, t in tests.items():
                p = t.get("p")
                rows.append([r.name, ref, metric_label(metric), signed(metric, t.get("diff")),
                             f"{p:.4g}" if isinstance(p, (int, float)) else "–", t.get("mark") or "",
                             {True: "better", False: "worse"}.get(t.get("better"), "same")])
    if not rows:
        return ""
    return details("Every paired test (difference, p-value)",
                   table(["row", "vs", "metric", "difference", "p", "mark", "direction"], rows, "tests"))


def _heatmaps(view: TestSetView, pairs: dict[str, dict[str, Any] | None]) -> str:
    """One figure per row: its X->Y matrix and its difference to the reference row, scales shared."""
    mats = {r.name: mean_matrix(r.results) for r in view.rows if not r.same_as and r.results}
    mats = {k: v for k, v in mats.items() if v is not None}
    if not mats:
        return ""
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
        out.append(figure(uri, f"X→Y heatmap of {name} on {view.label}", cap))
    return "".join(out)


def _weakest_table(view: TestSetView, pairs: dict[str, dict[str, Any] | None]) -> str:
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
            reasons = "".join(f'<span class="reason">{esc(x)}</span>' for x in w["reasons"])
            rows.append([esc(r.name), esc(f"{w['query']}→{w['candidate']}"), esc(fmt("map", w["map"])),
                         esc(fmt("hit", hits.get(key, {}).get("hit@1"))),
                         esc(fmt("map", w["row_mean"])), esc(fmt("map", w["column_mean"])),
                         esc("–" if d is None else f"{d:+.4f}"), esc(fmt("n_queries", hits.get(key, {}).get("n_queries"))),
                         reasons])
    if not rows:
        return ""
    first = next((p for p in pairs.values() if p), {})
    rule = (first.get("weakest_rule") or {}).get("text", "")
    headers = ["row", "pair X→Y", "mAP", "hit@1", "row mean", "column mean", f"Δ vs {view.reference or '–'}",
               "queries", "why"]
    return (f'<h4>Weakest language pairs</h4><p class="note">Flagged: {esc(rule)}. Row/column means are '
            "over the other cross-lingual pairs of the same query / candidate language.</p>"
            + table(headers, rows, "weakest", raw=True))


_PAIR_FIGURES = (("mo", "Mo."), ("cr_out", "Cr. out"), ("cr_in", "Cr. in"))
# counts, what the pairs give already, and hit@k (in the per-language table)
_SKIP_PER_LANGUAGE = {"n_queries", "queries", "passages", "candidates", "mo", "cr", "mul_hit@1", "mul_hit@10"}
_PER_LANGUAGE_LABELS = {"mul": "Mul.", "rank_distance": "Rank dist."}
_LOWER = {"rank_distance"}


def _per_language_keys(per: dict[str, dict[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(k for v in per.values() for k in v))
    return [k for k in keys if k not in _SKIP_PER_LANGUAGE and any(isinstance(v.get(k), (int, float)) for v in per.values())]


def _group_tables(view: TestSetView, pairs: dict[str, dict[str, Any] | None], groups: LanguageGroups) -> str:
    """Per grouping column: groups x figures against the rows, the best row in bold.

    Figures: Mo., Cr. out, Cr. in from the per-pair mAP; every other per query language figure
    (Mul., rank distance, nDCG@10, ...) as the mean over the group's query languages.
    """
    shown = [r for r in view.rows if not r.same_as and r.results]
    per = {r.name: mean_per_language(r.results) for r in shown}
    shown = [r for r in shown if pairs.get(r.name) or per[r.name]]
    if not shown:
        return ""
    keys = _per_language_keys(per[shown[0].name])
    pair_note = ("Mo.: mean mAP(X→X) over X in the group; Cr. out: mean mAP(X→Y), X in the group, Y ≠ X; "
                 "Cr. in: mean mAP(X→Y), Y in the group, X ≠ Y; other figures: ") if any(pairs.get(r.name) for r in shown) else "Figures: "
    out = [f'<h4>By language group</h4><p class="note">{pair_note}mean over the group\'s query languages. '
           f"The best row in bold. Groups from {esc(groups.source)}.</p>"]
    for by in groups.columns:
        by_pairs = {r.name: group_means(pairs[r.name]["by_pair"], groups, by) for r in shown if pairs.get(r.name)}
        by_lang = {r.name: group_per_language(per[r.name], groups, by, keys) for r in shown}
        all_langs = {c for r in shown for c in per[r.name]}
        all_langs |= {c for m in by_pairs.values() for v in m["groups"].values() for c in v}
        members = groups.groups(sorted(all_langs), by)
        figures = ([(k, label, "pair") for k, label in _PAIR_FIGURES] if by_pairs else []) + \
                  [(k, _PER_LANGUAGE_LABELS.get(k, k), "lang") for k in keys]
        head = "".join(f"<th>{esc(r.name)}</th>" for r in shown)
        body = []
        for g, langs in members.items():
            for i, (key, label, src) in enumerate(figures):
                if src == "pair":
                    vals = [by_pairs[r.name]["per_group"].get(g, {}).get(key) if r.name in by_pairs else None for r in shown]
                else:
                    vals = [by_lang[r.name].get(g, {}).get(key) for r in shown]
                have = [v for v in vals if v is not None]
                best = (min(have) if key in _LOWER else max(have)) if have else None
                cells = "".join(
                    f'<td class="num{" best" if v is not None and v == best and len(have) > 1 else ""}">{esc(fmt(key, v))}</td>'
                    for v in vals)
                first = (f'<td class="group" rowspan="{len(figures)}">{esc(g)}<br>'
                         f'<span class="spread">{esc(", ".join(langs))}</span></td>') if i == 0 else ""
                body.append(f"<tr>{first}<td>{esc(label)}</td>{cells}</tr>")
        out.append(f'<p><b>by {esc(by)}</b></p><table class="groups groups-{esc(by)}"><thead><tr>'
                   f'<th>{esc(by)}</th><th>figure</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
        if by_pairs:
            names = list(next(iter(by_pairs.values()))["groups"])
            cross = []
            for name, means in by_pairs.items():
                cm = means["cross"]
                cross.append(f"<p>{esc(name)}: mean mAP(X→Y) over language pairs with X in the row's group, "
                             "Y in the column's group, X ≠ Y</p>"
                             + table([f"{by}: X \\ Y", *names],
                                     [[g, *[fmt("map", cm[g][h]) for h in names]] for g in names], "cross-groups"))
            out.append(details(f"Cross-group means by {by}", "".join(cross)))
    return "".join(out)


def _per_language(view: TestSetView, groups: LanguageGroups) -> str:
    parts = []
    for r in view.rows:
        if r.same_as or not r.results:
            continue
        per = mean_per_language(r.results)
        if not per:
            continue
        keys = list(dict.fromkeys(k for v in per.values() for k in v))
        rows = [[lang, groups.name(lang), *[fmt(k, v.get(k)) for k in keys]] for lang, v in per.items()]
        parts.append(f"<p>{esc(r.name)}</p>" + table(["lang", "name", *keys], rows, "per-language"))
    return details("Per query language (mean over seeds)", "".join(parts)) if parts else ""


def test_set_section(view: TestSetView, groups: LanguageGroups, ids: _Ids, prefix: str, k: int, margin: float) -> tuple[str, str]:
    """(anchor id, HTML) of one test set."""
    anchor = ids(prefix, view.label)
    pairs = {r.name: (mean_pairs(r.results, k=k, margin=margin) if r.results and not r.same_as else None)
             for r in view.rows}
    from polyir.experiment.summary import GUARD_PREFIX

    kind = " (guard set, test half)" if view.label.startswith(GUARD_PREFIX) else ""
    parts = [f'<section class="testset" id="{anchor}"><h3>Test set {esc(view.label)}{esc(kind)}</h3>',
             summary_table(view)]
    if view.marks:
        parts.append(f'<p class="legend">Marks: {esc(view.marks)}. Hover a mark for the difference and p.</p>')
    parts.append(tests_table(view))
    parts.append('<div class="grid">')
    parts.append(figure(charts.headline_bars(view), f"mAP bars on {view.label}",
                        "Mo./Cr./Mul. mAP per row; error bars: spread over seeds"))
    parts.append(figure(charts.rank_distance_bars(view), f"rank distance bars on {view.label}",
                        "rank distance (max − min pooled rank of a query's relevant candidates) per query language "
                        "and macro; lower means less language bias"))
    for metric in view.metric_keys():
        if metric not in KNOWN_METRICS:
            parts.append(figure(charts.per_language_bars(view, metric), f"{metric} bars on {view.label}",
                                f"{metric} per query language and macro"))
    parts.append("</div>")
    heat = _heatmaps(view, pairs)
    if heat:
        parts.append("<h4>X→Y matrices</h4>" + heat)
    parts.append(_weakest_table(view, pairs))
    parts.append(_group_tables(view, pairs, groups))
    parts.append(_per_language(view, groups))
    parts.append("</section>")
    return anchor, "".join(parts)


def _guard_and_selection(summary: dict[str, Any]) -> str:
    """summary.json's guard flags (significant losses against the base) and the selection of the shipped row."""
    parts = []
    guard = summary.get("guard") or {}
    if guard.get("sets"):
        flags = guard.get("flags") or []
        parts.append(f"<p>Guard sets: {esc(', '.join(guard['sets']))}; metrics {esc(', '.join(guard.get('metrics') or []))}. "
                     f"{len(flags)} significant loss{'es' if len(flags) != 1 else ''} against the base:</p>")
        if flags:
            parts.append(table(["set", "row", "metric", "difference", "p"],
                               [[f["set"], f["row"], metric_label(f["metric"]), signed(f["metric"], f.get("diff")),
                                 f"{f['p']:.4g}" if isinstance(f.get("p"), (int, float)) else "–"] for f in flags],
                               "guard-flags"))
    selection = summary.get("selection") or {}
    if selection.get("candidates"):
        parts.append(f"<p>Selection: {esc(selection.get('rule'))}. Chosen: <b>{esc(selection.get('chosen') or 'none')}</b>"
                     f" (best ignoring the guard: {esc(selection.get('best_ignoring_guard') or 'none')}).</p>")
        rows = [[c.get("row"), fmt("map", c.get("validation")), "yes" if c.get("eligible") else "no",
                 "; ".join(f"{g.get('set')} {metric_label(g.get('metric', ''))} {signed(g.get('metric', ''), g.get('diff'))}"
                           for g in c.get("guard_losses") or []) or "–"]
                for c in selection["candidates"]]
        parts.append(table(["candidate", "validation", "eligible", "guard losses"], rows, "selection"))
    return "".join(parts)


def _run_details(exp: Experiment) -> str:
    parts = []
    for name, info in exp.runs.items():
        run = info.get("run") or {}
        brief = {k: run.get(k) for k in ("model", "seed", "steps", "stopped_early", "best", "final_metrics",
                                          "final_train_loss", "timings") if k in run}
        body = ""
        if brief:
            body += "<p>run.json (main fields)</p>" + pre(brief)
        if "config" in info:
            body += "<p>config.yaml</p>" + pre(info["config"])
        parts.append(details(name, body))
    return details(f"Training runs ({len(exp.runs)}): config.yaml and run.json", "".join(parts)) if parts else ""


def experiment_section(exp: Experiment, groups: LanguageGroups, ids: _Ids, k: int, margin: float) -> tuple[str, list[tuple[str, str]], str]:
    """(anchor, [(sub-anchor, label)], HTML) of one experiment."""
    anchor = ids("experiment", exp.label)
    toc = []
    parts = [f'<section class="experiment" id="{anchor}"><h2>Experiment {esc(exp.label)}</h2>',
             f'<p class="meta">folder {esc(exp.path)}; seeds {esc(exp.summary.get("seeds"))}; '
             f'{len(exp.results)} result files, {len(exp.runs)} training runs</p>']
    if not exp.results:
        parts.append('<p class="note">This folder holds no <code>eval/&lt;run&gt;/&lt;test set&gt;.json</code> result '
                     "files, so the page shows summary.json only: heatmaps, per-pair, per-language and group "
                     "figures need the result files <code>polyir experiment</code> writes.</p>")
    alpha = exp.summary.get("alpha") or {}
    if alpha.get("chosen") is not None:
        chosen = f"{alpha['chosen']:g}"
        parts.append(f"<p>hybrid uses α = {esc(chosen)}, chosen on {esc(alpha.get('chosen_on'))}.</p>")
    for view in experiment_views(exp):
        sub, html = test_set_section(view, groups, ids, anchor, k, margin)
        toc.append((sub, f"test set {view.label}"))
        parts.append(html)
    uri = charts.alpha_curve(exp.summary)
    if uri:
        sub = ids(anchor, "alpha")
        toc.append((sub, "α curve"))
        curve = alpha.get("curve") or []
        rows = [[f"{c['alpha']:g}", fmt("map", c.get("validation_mean")), fmt("map", c.get("validation_std")),
                 str(c.get("seeds", "")),
                 *[fmt(m, (c.get("test") or {}).get(lab, {}).get(m)) for lab in exp.summary["results"]
                   for m in ("mo_map", "cr_map", "mul_map")]] for c in curve]
        headers = ["α", "validation", "± seeds", "seeds",
                   *[f"{lab} {metric_label(m)}" for lab in exp.summary["results"] for m in ("mo_map", "cr_map", "mul_map")]]
        parts.append(f'<section id="{sub}"><h3>α curve</h3>'
                     + figure(uri, "alpha curve", "left: the validation metric that chooses α (split of the training "
                              "data); right: test mAP at each α, for reading only")
                     + table(headers, rows, "alpha") + "</section>")
    guard_html = _guard_and_selection(exp.summary)
    if guard_html:
        sub = ids(anchor, "guard")
        toc.append((sub, "guard sets and selection"))
        parts.append(f'<section id="{sub}"><h3>Guard sets and selection</h3>{guard_html}</section>')
    if exp.summary.get("conclusions"):
        sub = ids(anchor, "conclusions")
        toc.append((sub, "conclusions"))
        items = "".join(f"<li>{esc(c)}</li>" for c in exp.summary["conclusions"])
        parts.append(f'<section id="{sub}"><h3>Conclusions (paired tests, as summary.json states them)</h3><ul>{items}</ul></section>')
    sub = ids(anchor, "config")
    toc.append((sub, "configuration"))
    cfg = (exp.experiment or {}).get("config")
    parts.append(f'<section id="{sub}"><h3>Configuration</h3>'
                 + (details("experiment.json: config", pre(cfg)) if cfg else "<p class='note'>no experiment.json</p>")
                 + _run_details(exp)
                 + (details("Evaluation settings of each result file",
                            pre({str(r.path.relative_to(exp.path)): r.data.get("config") for r in exp.results}))
                    if exp.results else "")
                 + "</section>")
    parts.append("</section>")
    return anchor, toc, "".join(parts)


def loose_section(study: Study, groups: LanguageGroups, ids: _Ids, k: int, margin: float, resamples: int) -> tuple[str, list[tuple[str, str]], str]:
    anchor = ids("results")
    toc = []
    parts = [f'<section class="results" id="{anchor}"><h2>Evaluation results</h2>'
             f'<p class="meta">{len(study.loose)} result files from <code>polyir evaluate</code></p>']
    for view in loose_views(study.loose, resamples=resamples):
        sub, html = test_set_section(view, groups, ids, anchor, k, margin)
        toc.append((sub, f"test set {view.label}"))
        parts.append(html)
    body = "".join(details(f"{r.row} ({r.path})", pre({"model": r.data.get("model"), "fingerprint": r.data.get("fingerprint"),
                                                        "config": r.data.get("config"), "counts": r.data.get("counts"),
                                                        "timings": r.data.get("timings")})) for r in study.loose)
    parts.append(details("Configuration of each result file", body))
    parts.append("</section>")
    return anchor, toc, "".join(parts)


def _versions(study: Study) -> str:
    seen: dict[str, dict[str, list[str]]] = {}

    def add(versions: Any, where: str) -> None:
        if isinstance(versions, dict):
            for pkg, v in versions.items():
                seen.setdefault(str(pkg), {}).setdefault(str(v), []).append(where)

    for exp in study.experiments:
        add((exp.experiment or {}).get("versions"), f"{exp.name}/experiment.json")
        for name, info in exp.runs.items():
            add((info.get("run") or {}).get("versions"), f"{exp.name}/runs/{name}")
        for r in exp.results:
            add(r.data.get("versions"), f"{exp.name}/{r.path.parent.name}/{r.path.name}")
    for r in study.loose:
        add(r.data.get("versions"), str(r.path))
    rows = []
    for pkg, versions in seen.items():
        multi = len(versions) > 1
        text = "; ".join(f"{v} ({len(w)} file{'s' if len(w) > 1 else ''})" for v, w in versions.items())
        rows.append([esc(pkg), (f'<span class="warn">{esc(text)}</span>' if multi else esc(text))])
    if not rows:
        return "<p class='note'>no versions recorded</p>"
    return table(["package", "version (files recording it)"], rows, "versions", raw=True)


def _groups_table(study: Study, groups: LanguageGroups) -> str:
    langs: set[str] = set()
    for r in [*study.loose, *(x for e in study.experiments for x in e.results)]:
        m = r.data.get("matrix") or {}
        langs |= set(m.get("query_languages") or []) | set(m.get("candidate_languages") or [])
        langs |= set((r.data.get("per_language") or {}).keys())
    if not langs:
        return "<p class='note'>No result file here names its languages.</p>"
    rows = [[c, groups.name(c), *[groups.group(c, by) for by in groups.columns]] for c in sorted(langs)]
    return table(["code", "name", *groups.columns], rows, "language-groups")


def build_report(
    study: Study,
    groups: LanguageGroups,
    *,
    title: str | None = None,
    k: int = DEFAULT_K,
    margin: float = DEFAULT_MARGIN,
    resamples: int = 2000,
) -> str:
    """The whole HTML page of a study."""
    from polyir.runinfo import versions

    ids = _Ids()
    names = list(dict.fromkeys([e.name for e in study.experiments] + (["evaluation results"] if study.loose else [])))
    title = title or "polyir report: " + ", ".join(names)
    toc: list[tuple[str, str, list[tuple[str, str]]]] = []
    body = []
    for exp in study.experiments:
        anchor, sub, html = experiment_section(exp, groups, ids, k, margin)
        toc.append((anchor, f"Experiment {exp.label}", sub))
        body.append(html)
    if study.loose:
        anchor, sub, html = loose_section(study, groups, ids, k, margin, resamples)
        toc.append((anchor, "Evaluation results", sub))
        body.append(html)
    g_anchor, v_anchor = ids("language-groups"), ids("versions")
    body.append(f'<section id="{g_anchor}"><h2>Language groups</h2><p class="note">From {esc(groups.source)}; '
                "edit a copy and pass it with <code>--groups FILE</code>.</p>" + _groups_table(study, groups) + "</section>")
    body.append(f'<section id="{v_anchor}"><h2>Versions</h2><p class="note">Library versions recorded by the '
                "experiment, its training runs and its result files; a version in amber differs between files.</p>"
                + _versions(study) + "</section>")
    toc += [(g_anchor, "Language groups", []), (v_anchor, "Versions", [])]
    nav = "".join(
        f'<li><a href="#{a}">{esc(label)}</a>'
        + ("<ul>" + "".join(f'<li><a href="#{s}">{esc(t)}</a></li>' for s, t in sub) + "</ul>" if sub else "")
        + "</li>"
        for a, label, sub in toc
    )
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    inputs = [str(e.path) for e in study.experiments] + [str(r.path) for r in study.loose]
    defs = ("Mo.: queries in X against candidates in X; Cr.: queries in X against candidates in Y ≠ X (macro over "
            "pairs); Mul.: queries in X against the pooled candidates of all languages; mAP over the full ranking "
            "(LAReQA). Rank distance: per query, max − min pooled rank of its relevant candidates, mean per query "
            "language, then over languages (lower is better).")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p class=\"meta\">made by polyir {esc(versions().get('polyir', '?'))} "
        f"on {esc(now)} from {esc(', '.join(inputs))}</p><p class=\"note\">{esc(defs)}</p>"
        f"<nav><b>Contents</b><ul>{nav}</ul></nav></header>"
        + "".join(body)
        + "</body></html>\n"
    )
