"""The README's low-resource news tables: zero-shot tasks, pair-level tests by task and by script, the
AfriQA translate-the-query ceiling, and news-domain adaptation (rendered from ``docs/results``)."""

from __future__ import annotations

from typing import Any

from polyir.report.cells import MISSING, fixed as _f, markdown_rows, signed as _signed


LOW_RESOURCE_ROWS = (
    ("base", "base"), ("base+debias", "base + projection"), ("monolingual", "monolingual"),
    ("crosslingual", "crosslingual"), ("hybrid", "hybrid α = 0.5"), ("hybrid+debias", "hybrid + projection"),
)


def _columns(summary: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    """(column title, result labels averaged, metric) for the tasks the experiment holds."""
    labels = list(summary["results"])
    cols = []
    for prefix, metric, title in (("ntrex-sentences", "mul_map", "NTREX sent. Mul."),
                                  ("ntrex-documents", "mul_map", "NTREX doc. Mul."),
                                  ("lafand-sentences", "cr_map", "MAFAND sent. Cr."),
                                  ("lafand-documents", "mul_map", "MAFAND doc. Mul."),
                                  ("masakhanews", "mo_map", "MasakhaNEWS Mo."),
                                  ("masakhanews", "mul_map", "MasakhaNEWS Mul."),
                                  ("afriqa[", "cr_map", "AfriQA Cr."), ("afriqa-pivot", "cr_map", "AfriQA pivot Cr.")):
        chosen = [lab for lab in labels if lab.startswith(prefix) or (prefix == "afriqa[" and lab == "afriqa")]
        if chosen:
            n = f" ({len(chosen)} pairs)" if len(chosen) > 1 else ""
            cols.append((title + n, chosen, metric))
    return cols


def low_resource(summary: dict[str, Any]) -> str:
    """Zero-shot low-resource news and QA: one column per task (several MAFAND pairs averaged, unmarked)."""
    from polyir.experiment.summary import _cell

    cols = _columns(summary)
    rows = []
    for key, name in LOW_RESOURCE_ROWS:
        if key not in summary["results"][cols[0][1][0]]:
            continue
        cells = []
        for _, labels, metric in cols:
            entries = [summary["results"][lab][key] for lab in labels]
            if len(entries) == 1:
                cells.append(_cell(entries[0], metric))
            else:
                vals = [e.get(metric) for e in entries if e.get(metric) is not None]
                cells.append(_f(sum(vals) / len(vals) if vals else None, 4))
        rows.append([name, *cells])
    return markdown_rows(["row", *(c[0] for c in cols)], "l" + "r" * len(cols), rows)


PAIR_COMPARISONS = (("hybrid vs base", "hybrid vs base"), ("hybrid vs base+debias", "hybrid vs base + projection"),
                    ("hybrid vs monolingual", "hybrid vs monolingual"),
                    ("hybrid+debias vs hybrid", "hybrid + projection vs hybrid"),
                    ("base+debias vs base", "base + projection vs base"))


def _pair_cell(sections: list[dict[str, Any]]) -> str:
    """``↑a ↓b / n (mean Δ)`` over the cross-lingual pairs (query ≠ candidate language) of the sections, or
    over the same-language pairs of a task that has no other (MasakhaNEWS: a headline finds its article)."""
    every = [p for sec in sections for p in sec["pairs"]]
    pairs = [p for p in every if p["query"] != p["candidate"]] or every
    if not pairs:
        return MISSING
    up = sum(p["p"] < 0.05 and p["diff"] > 0 for p in pairs)
    down = sum(p["p"] < 0.05 and p["diff"] < 0 for p in pairs)
    return f"↑{up} ↓{down} / {len(pairs)} ({_signed(sum(p['diff'] for p in pairs) / len(pairs), 3)})"


def low_resource_pair_counts(summary: dict[str, Any]) -> str:
    """Cross-lingual pairs that gain (↑) or lose (↓) significantly (p < .05, paired randomization test over
    the pair's queries), of all pairs, with the mean change of the pair's mAP; one column per task."""
    tests = summary["pair_tests"]
    tasks: dict[tuple[str, ...], str] = {}  # a task's labels -> its title without the metric (first column wins)
    for title, labels, _ in _columns(summary):
        labs = tuple(lab for lab in labels if lab in tests)
        if labs:
            tasks.setdefault(labs, title.split(" (")[0].rsplit(" ", 1)[0])
    rows = []
    for key, name in PAIR_COMPARISONS:
        if all(key in tests[lab] for labs in tasks for lab in labs):
            rows.append([name, *(_pair_cell([tests[lab][key] for lab in labs]) for labs in tasks)])

    def same_language_only(labs: tuple[str, ...]) -> bool:
        return all(p["query"] == p["candidate"] for lab in labs for p in tests[lab][PAIR_COMPARISONS[0][0]]["pairs"])

    titles = [title + (" (X → X)" if same_language_only(labs) else "") for labs, title in tasks.items()]
    return markdown_rows(["comparison (X → Y pairs)", *titles], "l" + "r" * len(tasks), rows)


def low_resource_by_script(summary: dict[str, Any], label_prefix: str = "ntrex-sentences") -> str:
    """One task's pairs by candidate language (its script and resource level): mean Δ mAP over the pairs
    into that language, and how many of them lose significantly."""
    from polyir.language_groups import load_language_groups

    groups = load_language_groups()
    label = next(lab for lab in summary["pair_tests"] if lab.startswith(label_prefix))
    tests = summary["pair_tests"][label]
    keys = [k for k, _ in PAIR_COMPARISONS[:3] if k in tests]
    langs = sorted({p["candidate"] for p in tests[keys[0]]["pairs"]},
                   key=lambda c: (groups.group(c, "resource") != "high", groups.group(c, "script"), c))
    rows = []
    for y in langs:
        cells = [f"{groups.name(y)} ({y})", groups.group(y, "script"), groups.group(y, "resource")]
        for k in keys:
            into = [p for p in tests[k]["pairs"] if p["candidate"] == y and p["query"] != y]
            worse = sum(p["p"] < 0.05 and p["diff"] < 0 for p in into)
            better = sum(p["p"] < 0.05 and p["diff"] > 0 for p in into)
            cells.append(f"{_signed(sum(p['diff'] for p in into) / len(into), 3)} (↑{better} ↓{worse})")
        rows.append(cells)
    names = dict(PAIR_COMPARISONS)
    return markdown_rows(["candidate language", "script", "resource", *(f"{names[k]}: mean Δ" for k in keys)],
                         "lll" + "r" * len(keys), rows)


def afriqa_pivot(d: dict[str, Any]) -> str:
    """AfriQA's questions as asked against their human en/fr translation (the translate-the-query ceiling)."""
    rows = []
    for name, c in d["comparisons"].items():
        for r in c["rows"]:
            if r["metric"] in ("cr_map", "mul_map"):
                rows.append([name, DISPLAY_METRIC[r["metric"]], f"{r['a']:.4f}", f"{r['b']:.4f}",
                             f"{_signed(r['diff'], 4)} {r['mark']}".strip(),
                             f"[{_f(r['ci'][0], 4)}, {_f(r['ci'][1], 4)}]"])
    return markdown_rows(["model", "metric", "question as asked", "human translation", "Δ", "95% CI"],
                         "llrrrr", rows)


DISPLAY_METRIC = {"cr_map": "Cr.", "mul_map": "Mul.", "mo_map": "Mo."}

NEWS_ADAPT_ROWS = (("base", "base"), ("monolingual", "monolingual, news-adapted"),
                   ("crosslingual", "crosslingual, news-adapted"), ("hybrid", "hybrid α = 0.5, news-adapted"))
NEWS_ADAPT_COLUMNS = (("guard:ntrex-sentences", "cr_map", "NTREX sent. Cr."),
                      ("guard:ntrex-sentences", "mul_map", "NTREX sent. Mul."),
                      ("guard:ntrex-sentences", "cr_top1_non_en", "top-1 non-en"),
                      ("guard:ntrex-documents", "mul_map", "NTREX doc. Mul."),
                      ("xquad-r", "mo_map", "XQuAD-R Mo."), ("xquad-r", "cr_map", "XQuAD-R Cr."),
                      ("xquad-r", "mul_map", "XQuAD-R Mul."))


def news_adapt(summary: dict[str, Any]) -> str:
    """News-domain adaptation: NTREX test halves (documents never trained on) and XQuAD-R, B marks."""
    from polyir.experiment.summary import _cell

    labels = list(summary["results"])
    cols = [(next(lab for lab in labels if lab.startswith(prefix)), metric, title)
            for prefix, metric, title in NEWS_ADAPT_COLUMNS if any(lab.startswith(prefix) for lab in labels)]
    rows = [[name, *(_cell(summary["results"][lab][key], m) for lab, m, _ in cols)]
            for key, name in NEWS_ADAPT_ROWS if key in summary["results"][cols[0][0]]]
    return markdown_rows(["row", *(t for _, _, t in cols)], "l" + "r" * len(cols), rows)


def news_adapt_pairs(summary: dict[str, Any]) -> str:
    """Adapted vs base on the NTREX test halves' pairs, by the resource levels of the two languages."""
    rows = []
    for label, section in summary["pair_tests"].items():
        if not label.startswith("guard:") or "hybrid vs base" not in section:
            continue
        task = "NTREX sent." if "sentences" in label else "NTREX doc."
        for group, g in section["hybrid vs base"]["by_group"].items():
            rows.append([task, group, str(g["pairs"]), str(g["better"]), str(g["worse"]), _signed(g["mean_diff"], 4)])
    return markdown_rows(["test half", "pair group", "pairs", "better (p<.05)", "worse (p<.05)", "mean Δ mAP"],
                         "llrrrr", rows)
