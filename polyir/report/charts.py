"""Report charts drawn with matplotlib and returned as PNG data URIs (the page embeds them: no files)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from polyir.report.views import TestSetView, mean_per_language, metric_label

DPI = 96


def data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _row_colors(view: TestSetView) -> dict[str, Any]:
    """One colour per row of the view, the same in every chart of it."""
    return dict(zip((r.name for r in view.rows), _colors(len(view.rows))))


def heatmap(
    rows: list[str],
    cols: list[str],
    arr: np.ndarray,
    title: str,
    *,
    flagged: set[tuple[str, str]] | None = None,
    vmin: float = 0.0,
    delta: np.ndarray | None = None,
    delta_lim: float | None = None,
    delta_title: str = "",
) -> str:
    """X->Y mAP heatmap (weakest pairs outlined in red), beside the difference to a reference when given.

    ``vmin`` and ``delta_lim`` let one test set's heatmaps share their colour scales.
    """
    panels = 2 if delta is not None else 1
    w = 1.6 + 0.48 * len(cols)
    fig = Figure(figsize=(w * panels, 1.2 + 0.42 * len(rows)), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    size = 6 if len(cols) > 8 else 7

    def draw(ax, values, lo, hi, cmap, fmt, label, ttl, dark):
        im = ax.imshow(values, vmin=lo, vmax=hi, cmap=cmap)
        ax.set_xticks(range(len(cols)), cols, fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("candidate language (Y)", fontsize=8)
        ax.set_ylabel("query language (X)", fontsize=8)
        ax.set_title(ttl, fontsize=9)
        for i in range(len(rows)):
            for j in range(len(cols)):
                v = values[i, j]
                if not np.isnan(v):
                    ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=size,
                            color="white" if dark(v) else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=label)

    finite = arr[~np.isnan(arr)]
    lo = min(vmin, float(finite.min())) if finite.size else vmin
    draw(axes[0], arr, lo, 1.0, "viridis", "{:.2f}", "mAP", title,
         lambda v: (v - lo) / max(1e-9, 1.0 - lo) < 0.55)
    for x, y in flagged or ():
        if x in rows and y in cols:
            axes[0].add_patch(Rectangle((cols.index(y) - 0.5, rows.index(x) - 0.5), 1, 1,
                                        fill=False, edgecolor="red", linewidth=1.8))
    if delta is not None:
        d = delta[~np.isnan(delta)]
        lim = delta_lim or (max(0.02, float(np.abs(d).max())) if d.size else 0.1)
        draw(axes[1], delta, -lim, lim, "RdBu", "{:+.2f}", "Δ mAP", delta_title, lambda v: abs(v) > 0.6 * lim)
    return data_uri(fig)


def headline_bars(view: TestSetView) -> str | None:
    """Mo./Cr./Mul. mAP per row (± spread over seeds)."""
    metrics = [m for m in ("mo_map", "cr_map", "mul_map") if any(r.metrics.get(m) is not None for r in view.rows)]
    if not metrics:
        return None
    rows = view.rows
    fig = Figure(figsize=(1.5 + 1.4 * len(metrics) + 0.25 * len(rows), 3.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(rows))
    colors = _row_colors(view)
    for j, row in enumerate(rows):
        color = colors[row.name]
        vals = [row.metrics.get(m) or 0.0 for m in metrics]
        errs = [row.std.get(m, 0.0) for m in metrics]
        ax.bar(x + j * width, vals, width, yerr=errs, label=row.name, color=color)
    ax.set_xticks(x + width * (len(rows) - 1) / 2, [metric_label(m) for m in metrics])
    ax.set_ylabel("mAP")
    lo = min((r.metrics.get(m) or 0.0) for r in rows for m in metrics)
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.set_title(f"{view.label}: mAP (higher is better)", fontsize=9)
    ax.legend(fontsize=7, ncols=2)
    return data_uri(fig)


def _language_bars(view: TestSetView, rows: list, metric: str, title: str, with_std: bool) -> str | None:
    """``metric`` per query language plus the macro value, one bar per row (errors: the macro's spread)."""
    per = {r.name: mean_per_language(r.results) for r in rows}
    langs = sorted({lang for p in per.values() for lang, v in p.items() if v.get(metric) is not None})
    if not rows or not langs:
        return None
    groups = [*langs, "macro"]
    fig = Figure(figsize=(max(5.5, 2.0 + 0.22 * len(groups) * len(rows)), 3.3), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(groups))
    width = 0.8 / len(rows)
    colors = _row_colors(view)
    for j, row in enumerate(rows):
        vals = [per[row.name].get(lang, {}).get(metric) for lang in langs] + [row.metrics.get(metric)]
        errs = [0.0] * len(langs) + [row.std.get(metric, 0.0)] if with_std else None
        ax.bar(x + j * width, [np.nan if v is None else v for v in vals], width, yerr=errs, label=row.name,
               color=colors[row.name])
    ax.set_xticks(x + width * (len(rows) - 1) / 2, groups, fontsize=8)
    ax.set_ylabel(metric_label(metric) if metric != "rank_distance" else "rank distance")
    ax.set_title(f"{view.label}: {title}", fontsize=9)
    ax.legend(fontsize=7, ncols=2)
    return data_uri(fig)


def rank_distance_bars(view: TestSetView) -> str | None:
    """Rank distance per query language and the macro value, one bar per row (lower is better)."""
    rows = [r for r in view.rows if r.metrics.get("rank_distance") is not None and r.same_as is None]
    return _language_bars(view, rows, "rank_distance", "rank distance by query language (lower is better)", True)


def alpha_curve(summary: dict[str, Any]) -> str | None:
    """Validation metric (left) and test mAP (right) against α; the chosen α marked. None below two α."""
    alpha = summary.get("alpha") or {}
    curve = [c for c in alpha.get("curve") or [] if c.get("alpha") is not None]
    if len(curve) < 2:
        return None
    xs = [c["alpha"] for c in curve]
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    val = [np.nan if c.get("validation_mean") is None else c["validation_mean"] for c in curve]
    err = [c.get("validation_std") or 0.0 for c in curve]
    left.errorbar(xs, val, yerr=err, marker="o", capsize=3)
    left.set_title(f"validation ({summary.get('validation_metric', '?')}): chooses α", fontsize=9)
    labels = sorted({lab for c in curve for lab in (c.get("test") or {})})
    styles = {"mo_map": "s--", "cr_map": "^--", "mul_map": "o-"}
    for lab, color in zip(labels, _colors(len(labels))):
        for m, style in styles.items():
            ys = [(c.get("test") or {}).get(lab, {}).get(m) for c in curve]
            if any(y is not None for y in ys):
                right.plot(xs, [np.nan if y is None else y for y in ys], style, color=color,
                           label=f"{lab} {metric_label(m)}")
    right.set_title("test mAP (shown, never used to choose)", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("α (share of monolingual batches)")
        if alpha.get("chosen") is not None:
            ax.axvline(alpha["chosen"], color="gray", lw=0.8, ls=":")
    if labels:
        right.legend(fontsize=7)
    return data_uri(fig)


def learning_curve(summary: dict[str, Any]) -> str | None:
    """Validation and test mAP of each snapshot against optimizer steps (None without a curve)."""
    points = (summary.get("curve") or {}).get("points") or []
    if not points:
        return None
    from polyir.experiment.curve import plot_curve

    return data_uri(plot_curve(points, summary.get("validation_metric", "validation")))


def per_language_bars(view: TestSetView, metric: str) -> str | None:
    """One figure per other metric (e.g. MIRACL's nDCG@10): its value per query language, a bar per row."""
    rows = [r for r in view.rows if r.same_as is None and r.results]
    return _language_bars(view, rows, metric, f"{metric_label(metric)} by query language", False)
