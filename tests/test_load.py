"""A bounded loopback load test: 50 concurrent clients for 10 s against a real uvicorn server.

The server runs `polyir serve` (the CLI function) in a subprocess on a free 127.0.0.1 port with a
1,000-passage index from the tiny test model; every request must succeed. The throughput and
latency are printed in the test output. ``POLYIR_LOAD_SECONDS`` / ``POLYIR_LOAD_CLIENTS`` change
the duration and the number of clients.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="httpx is not installed")
pytest.importorskip("uvicorn", reason="uvicorn is not installed")

SECONDS = float(os.environ.get("POLYIR_LOAD_SECONDS", "10"))
CLIENTS = int(os.environ.get("POLYIR_LOAD_CLIENTS", "50"))
WORDS = {
    "en": "the cat dog sat on mat ran in park who was first emperor of rome city river".split(),
    "de": "der hund katze wer war erste kaiser von rom berlin".split(),
    "es": "el gato perro quien fue primer emperador de madrid".split(),
}

pytestmark = pytest.mark.timeout(SECONDS + 90)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    from polyir.index.corpus import Passage
    from polyir.index.store import build_index
    from polyir.models.resolve import load_encoder

    rng = np.random.default_rng(0)
    passages = [
        Passage(f"{lang}-{i}", lang, " ".join(rng.choice(words, size=int(rng.integers(3, 9)))))
        for lang, words in WORDS.items() for i in range(334)
    ]
    folder = tmp_path_factory.mktemp("load") / "idx"
    encoder = load_encoder(str(tiny_model_dir), device="cpu")
    build_index(folder, passages, encoder, show_progress=False).index.close()
    port = _free_port()
    code = "import typer; from polyir.commands.index import serve_command; typer.run(serve_command)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}: {proc.stdout.read()}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the server did not answer /health within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_concurrent_clients_no_errors(server, capsys):
    queries = ["who was the first emperor of rome", "der hund", "el gato de madrid", "the river", "berlin city"]
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(CLIENTS + 1)
    stop_at: list[float] = [0.0]

    def client(i: int) -> None:
        with httpx.Client(base_url=server, timeout=30) as c:
            start_gate.wait()
            n = 0
            while time.monotonic() < stop_at[0]:
                body = {"query": queries[(i + n) % len(queries)], "k": 10}
                if n % 4 == 3:
                    body["languages"] = ["de", "es"]
                if n % 5 == 4:
                    body["per_language"] = 3
                t0 = time.perf_counter()
                try:
                    r = c.post("/search", json=body)
                    ok = r.status_code == 200 and len(r.json()["hits"]) > 0
                    if not ok:
                        with lock:
                            errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(repr(exc))
                latencies[i].append(time.perf_counter() - t0)
                n += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + SECONDS
    t_start = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    wall = time.perf_counter() - t_start
    assert not any(t.is_alive() for t in threads), "clients did not stop"
    all_lat = np.array([x for lat in latencies for x in lat])
    assert len(all_lat) > 0
    with capsys.disabled():
        print(
            f"\nload test: {CLIENTS} clients x {SECONDS:.0f} s -> {len(all_lat)} requests, "
            f"{len(all_lat) / wall:.1f} req/s, latency p50 {np.percentile(all_lat, 50) * 1000:.1f} ms, "
            f"p99 {np.percentile(all_lat, 99) * 1000:.1f} ms, errors {len(errors)}"
        )
    assert not errors, f"{len(errors)} failed requests, e.g. {errors[:3]}"
    assert httpx.get(server + "/health", timeout=5).json()["status"] == "ok"
