"""Human-readable outputs of an evaluation result: a terminal table, a heatmap PNG, a Markdown summary."""

from __future__ import annotations

import io
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from polyir.atomic import OutputError, atomic_open, check_output_path, write_bytes

HEADLINE = [
    ("mo_map", "Mo. mAP"),
    ("cr_map", "Cr. mAP"),
    ("mul_map", "Mul. mAP"),
    ("rank_distance", "Rank dist."),
    ("mul_hit@1", "Mul. hit@1"),
    ("mul_hit@10", "Mul. hit@10"),
]


def _fmt(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"  # undefined, e.g. Mo. when no query has a relevant candidate in its own language
    if key.startswith("n_"):
        return str(int(value))
    return f"{value:.1f}" if key == "rank_distance" else f"{value:.4f}"


def matrix_array(result: dict[str, Any]) -> tuple[list[str], list[str], np.ndarray]:
    """The X->Y mAP matrix as (query languages, candidate languages, array)."""
    m = result["matrix"]
    rows = list(m["query_languages"])
    cols = list(m["candidate_languages"])
    arr = np.array([[np.nan if v is None else v for v in row] for row in m["values"]], dtype=float)
    return rows, cols, arr


def print_summary(result: dict[str, Any], console=None) -> None:
    """Print the headline metrics and the per-language figures."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    metrics = result["metrics"]
    head = Table(title=f"{result['model']} on {result['task']}", show_lines=False)
    for _, label in HEADLINE:
        head.add_column(label, justify="right")
    head.add_row(*[_fmt(k, metrics.get(k)) for k, _ in HEADLINE])
    console.print(head)

    per = result.get("per_language", {})
    if per:
        table = Table(title="per query language")
        table.add_column("lang")
        keys = [k for k in ("n_queries", "mo", "cr", "mul", "rank_distance", "mul_hit@1", "mul_hit@10")
                if any(k in v for v in per.values())]
        for k in keys:
            table.add_column(k, justify="right")
        for lang, vals in per.items():
            table.add_row(lang, *[_fmt(k, vals.get(k)) for k in keys])
        console.print(table)
    ties = result.get("ties", {})
    counts = result.get("counts", {})
    console.print(
        f"queries {counts.get('queries', '?')}, candidates {counts.get('candidates', '?')}, "
        f"tied relevant scores {ties.get('pairs_with_ties', 0)}; "
        f"time {result.get('timings', {}).get('total', float('nan')):.1f} s"
    )


def heatmap_figure(result: dict[str, Any]) -> Any:
    """The X->Y mAP matrix as a matplotlib figure (rows: query language, columns: candidate language)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols, arr = matrix_array(result)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(cols), 1.0 + 0.5 * len(rows)))
    im = ax.imshow(arr, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("candidate language")
    ax.set_ylabel("query language")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if not np.isnan(arr[i, j]):
                ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if arr[i, j] < 0.6 else "black")
    m = result["metrics"]
    ax.set_title(
        f"{result['task']}: Mo {_fmt('map', m.get('mo_map'))}  Cr {_fmt('map', m.get('cr_map'))}"
        f"  Mul {_fmt('map', m.get('mul_map'))}",
        fontsize=9,
    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mAP")
    fig.tight_layout()
    return fig


def heatmap_png(result: dict[str, Any]) -> bytes:
    """The heatmap as PNG bytes."""
    import matplotlib.pyplot as plt

    fig = heatmap_figure(result)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=120)
    finally:
        plt.close(fig)
    return buf.getvalue()


def write_heatmap(result: dict[str, Any], path: Path) -> Path:
    """Write the heatmap PNG atomically (a full disk never leaves a truncated image)."""
    return write_bytes(path, heatmap_png(result))


def markdown_summary(result: dict[str, Any], heatmap_name: str | None = None) -> str:
    """A Markdown page with the headline metrics, per-language figures and the matrix."""
    m = result["metrics"]
    lines = [
        f"# {result['model']} on {result['task']}",
        "",
        "| " + " | ".join(label for _, label in HEADLINE) + " |",
        "|" + "---:|" * len(HEADLINE),
        "| " + " | ".join(_fmt(k, m.get(k)) for k, _ in HEADLINE) + " |",
        "",
    ]
    rows, cols, arr = matrix_array(result)
    lines += ["## X→Y mAP (rows: query language, columns: candidate language)", ""]
    lines.append("| | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for i, r in enumerate(rows):
        lines.append(f"| {r} | " + " | ".join(_fmt("map", arr[i, j]) for j in range(len(cols))) + " |")
    if heatmap_name:
        lines += ["", f"![X→Y mAP heatmap]({heatmap_name})"]
    counts = result.get("counts", {})
    lines += [
        "",
        f"Queries: {counts.get('queries')}; candidates: {counts.get('candidates')}; "
        f"precision: {result['config'].get('precision')}; "
        f"wall time: {result.get('timings', {}).get('total', 0):.1f} s.",
        "",
        "mAP over the full ranking (LAReQA); rank distance = mean over query languages of the mean "
        "(max rank − min rank) of a query's relevant candidates in the pooled ranking (lower is better).",
    ]
    return "\n".join(lines) + "\n"


def output_paths(json_path: Path | str) -> dict[str, Path]:
    """The files ``write_outputs`` writes for ``NAME.json``: the JSON, ``NAME.heatmap.png``, ``NAME.md``."""
    json_path = Path(json_path)
    stem = json_path.with_suffix("")
    return {"json": json_path, "heatmap": stem.with_name(stem.name + ".heatmap.png"),
            "markdown": stem.with_name(stem.name + ".md")}


def check_outputs(json_path: Path | str) -> dict[str, Path]:
    """Fail before any work when one of the outputs cannot be written (a directory there, no write access)."""
    paths = output_paths(json_path)
    for path in paths.values():
        check_output_path(path, what="--output" if path == paths["json"] else "output")
    return paths


def write_outputs(result: dict[str, Any], json_path: Path) -> dict[str, Path]:
    """Write the JSON result with a heatmap PNG and a Markdown summary beside it.

    All three are rendered first and written into temporary files that are renamed only when all three
    are complete: a failure (a full disk) leaves the previous outputs, if any, and no partial file."""
    from polyir.runinfo import json_text

    paths = check_outputs(json_path)
    contents = {  # the JSON is renamed last: its presence marks a complete set (the experiment reuses it)
        "json": json_text(result).encode("utf-8"),
        "markdown": markdown_summary(result, paths["heatmap"].name).encode("utf-8"),
        "heatmap": heatmap_png(result),
    }
    with ExitStack() as stack:
        files = {key: stack.enter_context(atomic_open(paths[key], "wb")) for key in contents}
        for key, data in contents.items():
            try:
                files[key].write(data)
            except OSError as exc:
                raise OutputError(f"cannot write {paths[key]}: {exc.strerror or exc.__class__.__name__}") from exc
    return paths
