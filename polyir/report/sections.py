"""The report's sections above the test sets: an experiment (α curve, guard sets and selection,
conclusions, configuration), loose evaluation results, the language groups and the versions."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from polyir.language_groups import LanguageGroups
from polyir.report import charts
from polyir.report.format import Ids, fmt, p_value, signed
from polyir.report.render import render
from polyir.report.study import Experiment, Study
from polyir.report.testset import figure, test_set_section
from polyir.report.views import experiment_views, loose_views, metric_label

Toc = list[tuple[str, str]]  # (anchor, label) of the sub-sections


def _alpha_curve(exp: Experiment) -> dict[str, Any] | None:
    """The α curve figure and its table (None unless several α were run)."""
    uri = charts.alpha_curve(exp.summary)
    if not uri:
        return None
    labels = list(exp.summary["results"])
    metrics = ("mo_map", "cr_map", "mul_map")
    rows = [[f"{c['alpha']:g}", fmt("map", c.get("validation_mean")), fmt("map", c.get("validation_std")),
             str(c.get("seeds", "")),
             *[fmt(m, (c.get("test") or {}).get(lab, {}).get(m)) for lab in labels for m in metrics]]
            for c in (exp.summary.get("alpha") or {}).get("curve") or []]
    headers = ["α", "validation", "± seeds", "seeds", *[f"{lab} {metric_label(m)}" for lab in labels for m in metrics]]
    return {"figure": figure(uri, "alpha curve", "left: the validation metric that chooses α (split of the training "
                             "data); right: test mAP at each α, for reading only"),
            "headers": headers, "rows": rows}


def _learning_curve(exp: Experiment) -> dict[str, Any] | None:
    """The learning-curve figure and its table (None unless the experiment has a ``curve``)."""
    uri = charts.learning_curve(exp.summary)
    if not uri:
        return None
    from polyir.experiment.curve import curve_grid

    headers, rows = curve_grid(exp.summary["curve"]["points"], cell=fmt, label=metric_label)
    return {"figure": figure(uri, "learning curve", "each run's snapshots (one learning-rate schedule over the "
                             "whole budget): left validation, right test mAP, for reading only"),
            "headers": headers, "rows": rows}


def guard_and_selection(summary: dict[str, Any]) -> dict[str, Any] | None:
    """summary.json's guard flags (significant losses against the base) and the selection of the shipped row."""
    guard = summary.get("guard") or {}
    selection = summary.get("selection") or {}
    out: dict[str, Any] = {"guard": None, "selection": None}
    if guard.get("sets"):
        flags = guard.get("flags") or []
        out["guard"] = {"sets": ", ".join(guard["sets"]), "metrics": ", ".join(guard.get("metrics") or []),
                        "n_flags": len(flags),
                        "flags": [[f["set"], f["row"], metric_label(f["metric"]), signed(f["metric"], f.get("diff")),
                                   p_value(f.get("p"))] for f in flags]}
    if selection.get("candidates"):
        out["selection"] = {
            "rule": selection.get("rule"), "chosen": selection.get("chosen") or "none",
            "best_ignoring_guard": selection.get("best_ignoring_guard") or "none",
            "rows": [[c.get("row"), fmt("map", c.get("validation")), "yes" if c.get("eligible") else "no",
                      "; ".join(f"{g.get('set')} {metric_label(g.get('metric', ''))} {signed(g.get('metric', ''), g.get('diff'))}"
                                for g in c.get("guard_losses") or []) or "–"]
                     for c in selection["candidates"]]}
    return out if out["guard"] or out["selection"] else None


def _runs(exp: Experiment) -> list[dict[str, Any]]:
    """Each training run's main run.json fields and its config.yaml."""
    runs = []
    for name, info in exp.runs.items():
        run = info.get("run") or {}
        brief = {k: run.get(k) for k in ("model", "seed", "steps", "stopped_early", "best", "final_metrics",
                                          "final_train_loss", "timings") if k in run}
        runs.append({"name": name, "brief": brief, "config": info.get("config"), "has_config": "config" in info})
    return runs


def experiment_section(exp: Experiment, groups: LanguageGroups, ids: Ids, k: int, margin: float) -> tuple[str, Toc, Markup]:
    """(anchor, [(sub-anchor, label)], HTML) of one experiment."""
    anchor = ids("experiment", exp.label)
    toc: Toc = []
    testsets = []
    for view in experiment_views(exp):
        sub, html = test_set_section(view, groups, ids, anchor, k, margin)
        toc.append((sub, f"test set {view.label}"))
        testsets.append(html)
    alpha = exp.summary.get("alpha") or {}
    sections: dict[str, Any] = {"alpha": None, "curve": None, "guard": None, "conclusions": None}
    curve = _alpha_curve(exp)
    if curve:
        sections["alpha"] = {"id": ids(anchor, "alpha"), **curve}
        toc.append((sections["alpha"]["id"], "α curve"))
    learning = _learning_curve(exp)
    if learning:
        sections["curve"] = {"id": ids(anchor, "curve"), **learning}
        toc.append((sections["curve"]["id"], "learning curve"))
    guard = guard_and_selection(exp.summary)
    if guard:
        sections["guard"] = {"id": ids(anchor, "guard"), **guard}
        toc.append((sections["guard"]["id"], "guard sets and selection"))
    if exp.summary.get("conclusions"):
        sections["conclusions"] = {"id": ids(anchor, "conclusions"), "lines": exp.summary["conclusions"]}
        toc.append((sections["conclusions"]["id"], "conclusions"))
    config_id = ids(anchor, "config")
    toc.append((config_id, "configuration"))
    html = render(
        "experiment.html.j2", anchor=anchor, exp=exp, testsets=testsets, config_id=config_id,
        chosen_alpha=f"{alpha['chosen']:g}" if alpha.get("chosen") is not None else None,
        chosen_on=alpha.get("chosen_on"), sections=sections,
        experiment_config=(exp.experiment or {}).get("config"), runs=_runs(exp),
        eval_settings={str(r.path.relative_to(exp.path)): r.data.get("config") for r in exp.results},
    )
    return anchor, toc, html


def loose_section(study: Study, groups: LanguageGroups, ids: Ids, k: int, margin: float, resamples: int) -> tuple[str, Toc, Markup]:
    """(anchor, [(sub-anchor, label)], HTML) of the result files given on their own."""
    anchor = ids("results")
    toc: Toc = []
    testsets = []
    for view in loose_views(study.loose, resamples=resamples):
        sub, html = test_set_section(view, groups, ids, anchor, k, margin)
        toc.append((sub, f"test set {view.label}"))
        testsets.append(html)
    files = [{"title": f"{r.row} ({r.path})",
              "info": {"model": r.data.get("model"), "fingerprint": r.data.get("fingerprint"),
                       "config": r.data.get("config"), "counts": r.data.get("counts"), "timings": r.data.get("timings")}}
             for r in study.loose]
    return anchor, toc, render("results.html.j2", anchor=anchor, n_files=len(study.loose), testsets=testsets, files=files)


def versions_rows(study: Study) -> list[dict[str, Any]]:
    """Per package: every version the files record, with how many files record it (``multi``: they differ)."""
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
    return [{"package": pkg, "multi": len(versions) > 1,
             "text": "; ".join(f"{v} ({len(w)} file{'s' if len(w) > 1 else ''})" for v, w in versions.items())}
            for pkg, versions in seen.items()]


def language_rows(study: Study, groups: LanguageGroups) -> list[list[str]]:
    """Every language a result file names: code, name and its group in each grouping column."""
    langs: set[str] = set()
    for r in [*study.loose, *(x for e in study.experiments for x in e.results)]:
        m = r.data.get("matrix") or {}
        langs |= set(m.get("query_languages") or []) | set(m.get("candidate_languages") or [])
        langs |= set((r.data.get("per_language") or {}).keys())
    return [[c, groups.name(c), *[groups.group(c, by) for by in groups.columns]] for c in sorted(langs)]
