"""The self-contained HTML page of a study: inline CSS, charts as data URIs, every text escaped.

The HTML is in ``templates/*.html.j2`` (page, experiment, results, testset, macros); the figures
behind it come from :mod:`polyir.report.sections` and :mod:`polyir.report.testset`.
"""

from __future__ import annotations

import datetime as _dt

from polyir.evaluation.pairs import DEFAULT_K, DEFAULT_MARGIN
from polyir.language_groups import LanguageGroups
from polyir.report.format import Ids
from polyir.report.render import render
from polyir.report.sections import experiment_section, language_rows, loose_section, versions_rows
from polyir.report.study import Study


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

    ids = Ids()
    names = list(dict.fromkeys([e.name for e in study.experiments] + (["evaluation results"] if study.loose else [])))
    title = title or "polyir report: " + ", ".join(names)
    toc: list[tuple[str, str, list[tuple[str, str]]]] = []
    sections = []
    for exp in study.experiments:
        anchor, sub, html = experiment_section(exp, groups, ids, k, margin)
        toc.append((anchor, f"Experiment {exp.label}", sub))
        sections.append(html)
    if study.loose:
        anchor, sub, html = loose_section(study, groups, ids, k, margin, resamples)
        toc.append((anchor, "Evaluation results", sub))
        sections.append(html)
    groups_id, versions_id = ids("language-groups"), ids("versions")
    toc += [(groups_id, "Language groups", []), (versions_id, "Versions", [])]
    return str(render(
        "page.html.j2", title=title, version=versions().get("polyir", "?"),
        now=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        inputs=", ".join([str(e.path) for e in study.experiments] + [str(r.path) for r in study.loose]),
        toc=toc, sections=sections, groups=groups, groups_id=groups_id, versions_id=versions_id,
        languages=language_rows(study, groups), versions=versions_rows(study),
    ))
