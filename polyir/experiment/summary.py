"""Summarise an experiment: mean and spread over seeds, paired tests against base and monolingual,
the α curve chosen on validation, a Markdown table and charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from polyir.atomic import write_text, write_with
from polyir.evaluation.compare import per_query_values, top1_metrics
from polyir.evaluation.significance import paired_permutation_test
from polyir.runinfo import write_json

TABLE_METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance")
LABELS = {"mo_map": "Mo.", "cr_map": "Cr.", "mul_map": "Mul.", "rank_distance": "Rank dist.",
          "mul_hit@1": "hit@1", "mul_hit@10": "hit@10", "cr_top1": "Cr. top-1",
          "cr_top1_non_en": "top-1 → non-en"}
GUARD_PREFIX, GUARD_VAL_PREFIX = "guard:", "guard-val:"  # labels of a guard set's test and validation halves
LOWER_IS_BETTER = {"rank_distance"}
ROW_ORDER = ("base", "base+debias", "monolingual", "crosslingual", "hybrid")
DEBIASED_BASE = "base+debias"  # the training-free baseline every trained row is also tested against
REFERENCES = (("base", "B"), ("monolingual", "M"), (DEBIASED_BASE, "D"))


def _load(path: Path) -> dict[str, Any]:
    """A result JSON, with the top-1 translation metrics derived from its per-query values."""
    result = json.loads(Path(path).read_text(encoding="utf-8"))
    result["metrics"].update(top1_metrics(result))
    return result


def _metrics_for(label: str, config) -> tuple[str, ...]:
    """Metrics tested and tabulated for one result label: the LAReQA four, plus the guard's extras."""
    if label.startswith((GUARD_PREFIX, GUARD_VAL_PREFIX)):
        return TABLE_METRICS + tuple(m for m in config.guard.metrics if m not in TABLE_METRICS)
    return TABLE_METRICS


def _mean_per_query(results: list[dict[str, Any]], metric: str) -> np.ndarray:
    """Per-query values averaged over seeds (queries are aligned: same test set, same reader)."""
    import warnings

    stack = np.stack([per_query_values(r, metric) for r in results])
    if stack.shape[0] == 1:
        return stack[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN (skipped by the tests)
        return np.nanmean(stack, axis=0)


def _test(row_res: list[dict], ref_res: list[dict], metric: str, resamples: int, seed: int) -> dict[str, Any]:
    a = _mean_per_query(row_res, metric)
    b = _mean_per_query(ref_res, metric)
    groups = np.array(row_res[0]["per_query"]["query_lang"])
    t = paired_permutation_test(a, b, groups=groups, n_resamples=resamples, seed=seed)
    better = (t.mean_diff < 0) if metric in LOWER_IS_BETTER else (t.mean_diff > 0)
    return {"diff": t.mean_diff, "p": t.p_value, "mark": t.mark(), "better": bool(better) if t.mean_diff else None}


def choose_alpha(validation: dict[str, dict[int, float | None]]) -> tuple[float | None, list[dict]]:
    """The α whose hybrid runs have the best mean validation value (higher is better for mAP metrics)."""
    curve = []
    for row, by_seed in validation.items():
        if not row.startswith("hybrid@"):
            continue
        vals = [v for v in by_seed.values() if v is not None]
        curve.append({"alpha": float(row.split("@", 1)[1]),
                      "validation_mean": float(np.mean(vals)) if vals else None,
                      "validation_std": float(np.std(vals)) if len(vals) > 1 else 0.0,
                      "seeds": len(vals)})
    curve.sort(key=lambda c: c["alpha"])
    scored = [c for c in curve if c["validation_mean"] is not None]
    if not scored:
        return (curve[0]["alpha"] if curve else None), curve
    return max(scored, key=lambda c: c["validation_mean"])["alpha"], curve


def summarize(config, evaluations: dict[str, dict], validation: dict[str, dict]) -> dict[str, Any]:
    """Build summary.json's content from the evaluation files of every row and seed."""
    train_cfg = config.train_config(config.arms[0], config.seeds[0], config.alphas[0], Path("."))
    val_metric = train_cfg.validation.metric
    if val_metric == "val_loss":  # lower is better: flip for the choice
        validation = {r: {s: (-v if v is not None else None) for s, v in d.items()} for r, d in validation.items()}
    chosen, curve = choose_alpha(validation)
    if val_metric == "val_loss":
        for c in curve:
            c["validation_mean"] = -c["validation_mean"] if c["validation_mean"] is not None else None
    rows = {r: v for r, v in evaluations.items() if not r.startswith("hybrid@")}
    if chosen is not None:
        rows["hybrid"] = evaluations[f"hybrid@{chosen:g}"]
    sweep = {r: v for r, v in evaluations.items() if r.startswith("hybrid@")} if len(curve) > 1 else {}

    labels = [ts.label for ts in config.test_sets] + [GUARD_PREFIX + ts.label for ts in config.guard.sets]
    all_rows = {**rows, **sweep}
    results = {label: _table(label, all_rows, config) for label in labels}
    for label, table in results.items():
        for c in curve:
            row = f"hybrid@{c['alpha']:g}"
            if row in table:
                c.setdefault("test", {})[label] = {m: table[row].get(m) for m in _metrics_for(label, config)}
    guard_val = {GUARD_VAL_PREFIX + ts.label: _table(GUARD_VAL_PREFIX + ts.label, all_rows, config, refs=("base",))
                 for ts in config.guard.sets}
    return {
        "name": config.name,
        "validation_metric": val_metric,
        "alpha": {"chosen": chosen, "chosen_on": f"{val_metric} (validation split of the training data)",
                  "curve": curve},
        "seeds": list(config.seeds),
        "results": results,
        "conclusions": _conclusions(results),
        "guard": {
            "sets": [GUARD_PREFIX + ts.label for ts in config.guard.sets],
            "metrics": list(config.guard.metrics),
            "split": {"by": "document", "validation_fraction": config.guard.validation_fraction,
                      "seed": config.guard.split_seed},
            "flags": guard_flags(results, config.guard.metrics, config.guard.significance),
            "validation": {label: {row: {m: e.get(m) for m in _metrics_for(label, config)} for row, e in t.items()}
                           for label, t in guard_val.items()},
        },
        "selection": select(config, validation, guard_val, chosen),
        "validation": _validation_means(validation, chosen),
        **({"pair_tests": _pair_tests(config, rows, labels)} if getattr(config, "pair_tests", None) else {}),
        "marks": "vs base (B), vs monolingual (M) and vs base+debias (D): + better / − worse, * p<0.05, ** p<0.01; "
                 "paired randomization test over queries (seed-averaged per-query values), macro as reported",
    }


def _validation_means(validation: dict[str, dict[int, float | None]], chosen: float | None) -> dict[str, Any]:
    """Every row's validation metric (mean over seeds; the chosen ``hybrid@α`` is also ``hybrid``)."""
    out = {}
    for row, by_seed in validation.items():
        vals = [v for v in by_seed.values() if v is not None]
        out[row] = {"mean": float(np.mean(vals)) if vals else None, "seeds": len(vals)}
    if chosen is not None and f"hybrid@{chosen:g}" in out:
        out["hybrid"] = out[f"hybrid@{chosen:g}"]
    return out


def _pair_tests(config, rows: dict[str, dict], labels: list[str]) -> dict[str, Any]:
    """Every pair of every test set and guard test half: the listed rows against the references present
    (polyir.experiment.pairs). Guard test halves count: for a model adapted on a guard set's validation half,
    its other half is the in-domain test."""
    from polyir.experiment.pairs import pair_tests_section

    refs = [r for r in ("base", DEBIASED_BASE, "monolingual", "crosslingual", "hybrid") if r in rows]
    return pair_tests_section(rows, labels, config.pair_tests, refs,
                              resamples=min(config.evaluation.resamples, 2000))


def _table(label: str, rows: dict[str, dict], config,
           refs: tuple[str, ...] = tuple(r for r, _ in REFERENCES)) -> dict[str, Any]:
    """One result label: per row the seed-mean of every metric, the spread, and paired tests vs refs."""
    metrics = _metrics_for(label, config)
    loaded = {row: [_load(paths[label]) for paths in by_seed.values()] for row, by_seed in rows.items()}
    table: dict[str, Any] = {}
    for row, res in loaded.items():
        entry: dict[str, Any] = {}
        for k in res[0]["metrics"]:
            vals = [r["metrics"][k] for r in res if r["metrics"].get(k) is not None]
            entry[k] = float(np.mean(vals)) if vals else None
        entry["std"] = {k: float(np.std([r["metrics"][k] for r in res if r["metrics"].get(k) is not None] or [0.0]))
                        for k in metrics}
        entry["n_seeds"] = len(res)
        for ref in refs:
            if ref in loaded and row != ref and not (ref != "base" and row in ("base", DEBIASED_BASE)):
                entry[f"vs_{ref}"] = {
                    m: _test(res, loaded[ref], m, config.evaluation.resamples, 0)
                    for m in metrics if entry.get(m) is not None
                }
        table[row] = entry
    return table


def _worse(test: dict[str, Any] | None, significance: float) -> bool:
    return bool(test) and test["better"] is False and test["p"] < significance


def guard_flags(results: dict[str, dict[str, Any]], metrics: list[str], significance: float) -> list[dict[str, Any]]:
    """Every (guard set, row, metric) where a model is significantly worse than the base."""
    flags = []
    for label, table in results.items():
        if not label.startswith(GUARD_PREFIX):
            continue
        for row, entry in table.items():
            for m in metrics:
                t = entry.get("vs_base", {}).get(m)
                if _worse(t, significance):
                    flags.append({"set": label, "row": row, "metric": m, "diff": t["diff"], "p": t["p"]})
    return flags


def select(config, validation: dict[str, dict[int, float | None]], guard_val: dict[str, dict[str, Any]],
           chosen_alpha: float | None) -> dict[str, Any]:
    """Pick the shipped configuration among hybrid, the variants and the merges: the best validation
    metric, among candidates with no significant loss against the base on any guard validation half."""
    names = [f"hybrid@{chosen_alpha:g}"] if chosen_alpha is not None else []
    names += [v.name for v in config.variants]
    names += [f"hybrid+merge@{w:g}" for w in config.merge_weights]
    if getattr(config, "debias", None) is not None:
        names += [f"{r}+debias" for r in config.debias.rows]
    candidates = []
    for name in names:
        vals = [v for v in validation.get(name, {}).values() if v is not None]
        losses = [
            {"set": label, "metric": m, "diff": t["diff"], "p": t["p"]}
            for label, table in guard_val.items()
            for m, t in table.get("hybrid" if name.startswith("hybrid@") else name, {}).get("vs_base", {}).items()
            if m in config.guard.metrics and _worse(t, config.guard.significance)
        ]
        candidates.append({"row": "hybrid" if name.startswith("hybrid@") else name,
                           "validation": float(np.mean(vals)) if vals else None,
                           "guard_losses": losses,
                           "eligible": bool(vals) and (not losses or not config.selection.respect_guard)})
    eligible = [c for c in candidates if c["eligible"]]
    best = max(eligible, key=lambda c: c["validation"]) if eligible else None
    scored = [c for c in candidates if c["validation"] is not None]
    unconstrained = max(scored, key=lambda c: c["validation"]) if scored else None
    return {
        "rule": "highest validation metric on the training data's held-out pairs"
                + (f", among candidates with no guard metric significantly below the base (p<{config.guard.significance:g})"
                   f" on the guard sets' validation halves" if config.selection.respect_guard and guard_val else ""),
        "candidates": candidates,
        "chosen": best["row"] if best else None,
        "best_ignoring_guard": unconstrained["row"] if unconstrained else None,
    }


def _conclusions(results: dict[str, dict[str, Any]]) -> list[str]:
    """Plain statements of what the tests say, whichever way they fall."""
    out = []
    for label, table in results.items():
        for row in ("hybrid", "crosslingual", "monolingual", DEBIASED_BASE, "hybrid+debias"):
            if row not in table:
                continue
            for ref in ("monolingual", "base", DEBIASED_BASE):
                tests = table[row].get(f"vs_{ref}")
                if not tests or row == ref:
                    continue
                parts = []
                for m in TABLE_METRICS:
                    t = tests.get(m)
                    if t is None:
                        continue
                    verdict = "significant" if t["p"] < 0.05 else "not significant"
                    fmt = "{:+.1f}" if m == "rank_distance" else "{:+.4f}"
                    p = "p<0.001" if t["p"] < 0.001 else f"p={t['p']:.3f}"
                    parts.append(f"{LABELS[m]} {fmt.format(t['diff'])} ({p}, {verdict})")
                out.append(f"{label}: {row} vs {ref}: " + "; ".join(parts))
    return out


def _cell(entry: dict[str, Any], metric: str) -> str:
    v = entry.get(metric)
    if v is None:
        return "-"
    fmt = "{:.1f}" if metric == "rank_distance" else "{:.4f}"
    text = fmt.format(v)
    if entry.get("n_seeds", 1) > 1:
        text += " ±" + fmt.format(entry["std"][metric])
    marks = []
    for ref, letter in REFERENCES:
        t = entry.get(f"vs_{ref}", {}).get(metric)
        if t and t["mark"]:
            marks.append(f"{letter}{'+' if t['better'] else '−'}{t['mark']}")
    return text + (" " + " ".join(marks) if marks else "")


def markdown_table(summary: dict[str, Any]) -> str:
    lines = [f"# Experiment {summary['name']}", ""]
    for label, table in summary["results"].items():
        metrics = TABLE_METRICS
        if label.startswith(GUARD_PREFIX):
            metrics += tuple(m for m in summary.get("guard", {}).get("metrics", []) if m not in TABLE_METRICS)
        title = f"{label[len(GUARD_PREFIX):]} (guard set, test half)" if label.startswith(GUARD_PREFIX) else label
        lines += [f"## {title}", "", "| row | " + " | ".join(LABELS[m] for m in metrics) + " |",
                  "|---|" + "---:|" * len(metrics)]
        order = [r for r in ROW_ORDER if r in table] + sorted(r for r in table if r not in ROW_ORDER)
        for row in order:
            lines.append(f"| {row} | " + " | ".join(_cell(table[row], m) for m in metrics) + " |")
        lines.append("")
    lines += [f"Marks: {summary['marks']}.", ""]
    alpha = summary["alpha"]
    if alpha["chosen"] is not None:
        lines.append(f"hybrid uses α = {alpha['chosen']:g}, chosen on {alpha['chosen_on']}.")
    if len(alpha["curve"]) > 1:
        lines += ["", "| α | validation | " + " | ".join(
            f"{lab} Mul." for lab in summary["results"]) + " |", "|---:|---:|" + "---:|" * len(summary["results"])]
        for c in alpha["curve"]:
            tests = " | ".join(f"{c.get('test', {}).get(lab, {}).get('mul_map', float('nan')):.4f}"
                               for lab in summary["results"])
            val = c["validation_mean"]
            lines.append(f"| {c['alpha']:g} | {val:.4f} | {tests} |" if val is not None else f"| {c['alpha']:g} | - | {tests} |")
    lines += _guard_lines(summary)
    if (summary.get("curve") or {}).get("points"):
        from polyir.experiment.curve import curve_markdown

        lines += ["", "## Learning curve (snapshots of each run)", "",
                  curve_markdown(summary["curve"]["points"], summary.get("validation_metric", "validation")).rstrip()]
    lines += ["", "## Conclusions", ""] + [f"- {c}" for c in summary["conclusions"]]
    return "\n".join(lines) + "\n"


def _guard_lines(summary: dict[str, Any]) -> list[str]:
    """Guard flags and the selection, as Markdown."""
    guard, sel = summary.get("guard"), summary.get("selection")
    lines: list[str] = []
    if guard and guard["sets"]:
        lines += ["", "## Guard sets", "",
                  f"Split by document ({guard['split']['validation_fraction']:g} of the documents choose, the rest"
                  " report). Rows significantly worse than the base on a guard test half:", ""]
        lines += [f"- {f['set']}: {f['row']} {LABELS.get(f['metric'], f['metric'])} {f['diff']:+.4f} (p={f['p']:.3g})"
                  for f in guard["flags"]] or ["- none"]
    if sel and sel["candidates"]:
        lines += ["", "## Selection", "", f"Rule: {sel['rule']}.", "",
                  "| candidate | validation | guard losses (validation halves) | eligible |", "|---|---:|---|---|"]
        for c in sel["candidates"]:
            losses = "; ".join(f"{x['set'][len(GUARD_VAL_PREFIX):]} {LABELS.get(x['metric'], x['metric'])} "
                               f"{x['diff']:+.4f}" for x in c["guard_losses"]) or "none"
            val = "-" if c["validation"] is None else f"{c['validation']:.4f}"
            lines.append(f"| {c['row']} | {val} | {losses} | {'yes' if c['eligible'] else 'no'} |")
        lines += ["", f"Chosen: **{sel['chosen'] or 'none (no candidate keeps every guard metric)'}**"
                  f" (best on validation ignoring the guard: {sel['best_ignoring_guard']})."]
    return lines


def tradeoff_points(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The merge curve: weight 0 (base), the merges, weight 1 (hybrid), each with its test figures."""
    points = []
    for label, table in summary["results"].items():
        rows = {0.0: table.get("base"), 1.0: table.get("hybrid")}
        rows.update({float(r.split("@", 1)[1]): e for r, e in table.items() if r.startswith("hybrid+merge@")})
        for w, entry in sorted(rows.items()):
            if entry is not None:
                points.append({"set": label, "weight": w, **{m: entry.get(m) for m in (*TABLE_METRICS, "cr_top1_non_en")}})
    return points


def write_charts(summary: dict[str, Any], out: Path) -> list[Path]:
    """A grouped bar chart (mAP and rank distance per row and test set), and the α curve if swept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    labels = list(summary["results"])
    fig, axes = plt.subplots(len(labels), 2, figsize=(11, 3.4 * len(labels)), squeeze=False)
    for i, label in enumerate(labels):
        table = summary["results"][label]
        rows = [r for r in ROW_ORDER if r in table]
        x = np.arange(3)
        width = 0.8 / max(1, len(rows))
        ax = axes[i][0]
        for j, row in enumerate(rows):
            vals = [table[row][m] or 0 for m in ("mo_map", "cr_map", "mul_map")]
            errs = [table[row]["std"][m] for m in ("mo_map", "cr_map", "mul_map")]
            ax.bar(x + j * width, vals, width, yerr=errs, label=row)
        ax.set_xticks(x + width * (len(rows) - 1) / 2, ["Mo.", "Cr.", "Mul."])
        ax.set_ylabel("mAP")
        ax.set_title(f"{label}: mAP")
        lo = min(table[r][m] or 0 for r in rows for m in ("mo_map", "cr_map", "mul_map"))
        ax.set_ylim(max(0.0, lo - 0.1), 1.0)
        ax.legend(fontsize=8)
        ax = axes[i][1]
        ax.bar(rows, [table[r]["rank_distance"] or 0 for r in rows],
               yerr=[table[r]["std"]["rank_distance"] for r in rows], color="tab:gray")
        ax.set_title(f"{label}: rank distance (lower is better)")
    fig.tight_layout()
    path = out / "chart.png"
    write_with(path, lambda fh, fig=fig: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)
    paths.append(path)
    curve = summary["alpha"]["curve"]
    if len(curve) > 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        alphas = [c["alpha"] for c in curve]
        ax.plot(alphas, [c["validation_mean"] for c in curve], "o-", label=f"validation ({summary['validation_metric']})")
        for label in labels:
            ax.plot(alphas, [c.get("test", {}).get(label, {}).get("mul_map") for c in curve], "s--",
                    label=f"{label} Mul. mAP (test; not used to choose)")
        ax.axvline(summary["alpha"]["chosen"], color="gray", lw=0.8)
        ax.set_xlabel("α (share of monolingual batches)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / "alpha_curve.png"
        write_with(path, lambda fh, fig=fig: fig.savefig(fh, format="png", dpi=110))
        plt.close(fig)
        paths.append(path)
    if (summary.get("curve") or {}).get("points"):
        from polyir.experiment.curve import plot_curve

        fig = plot_curve(summary["curve"]["points"], summary.get("validation_metric", "validation"))
        path = out / "learning_curve.png"
        write_with(path, lambda fh, fig=fig: fig.savefig(fh, format="png", dpi=110))
        paths.append(path)
    points = tradeoff_points(summary)
    if any(0.0 < p["weight"] < 1.0 for p in points):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for label in dict.fromkeys(p["set"] for p in points):
            mine = [p for p in points if p["set"] == label]
            ws = [p["weight"] for p in mine]
            ax.plot(ws, [p["mul_map"] for p in mine], "o-", label=f"{label} Mul. mAP")
            if any(p["cr_top1_non_en"] is not None for p in mine):
                ax.plot(ws, [p["cr_top1_non_en"] for p in mine], "s--", label=f"{label} top-1 → non-en")
        ax.set_xlabel("merge weight w (0 = base, 1 = hybrid)")
        ax.legend(fontsize=7)
        ax.set_title("WiSE-FT trade-off (test figures; the choice uses validation data only)")
        fig.tight_layout()
        path = out / "tradeoff.png"
        write_with(path, lambda fh, fig=fig: fig.savefig(fh, format="png", dpi=110))
        plt.close(fig)
        paths.append(path)
    return paths


def write_summary(summary: dict[str, Any], out: Path) -> dict[str, Path]:
    """summary.json, table.md and the charts."""
    out = Path(out)
    write_json(out / "summary.json", summary)
    write_text(out / "table.md", markdown_table(summary))
    if summary.get("pair_tests"):
        from polyir.experiment.pairs import markdown as pairs_markdown

        write_text(out / "pairs.md", pairs_markdown(summary["pair_tests"]))
    charts = write_charts(summary, out)
    return {"summary": out / "summary.json", "table": out / "table.md", **{p.stem: p for p in charts}}
