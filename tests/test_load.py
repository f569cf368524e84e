"""A bounded loopback load test: 50 concurrent clients for 10 s against a real uvicorn server.

The server runs `polyir serve` (the CLI function) in a subprocess on a free 127.0.0.1 port with a
1,000-passage index from the tiny test model. Every client mixes valid searches with malformed
requests: each valid answer must equal the single-client answer to the same request (ids, ranks,
scores), each malformed one must get its 4xx, and every client sends at least
``MIN_PER_CLIENT`` requests (a count, never a speed). Throughput and latency are printed in the output.
``POLYIR_LOAD_SECONDS`` / ``POLYIR_LOAD_CLIENTS`` change the duration and the number of clients.
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


VALID = [
    {"query": "who was the first emperor of rome", "k": 10},
    {"query": "der hund", "k": 5, "languages": ["de", "es"]},
    {"query": "el gato de madrid", "k": 9, "per_language": 3},
    {"query": "the river", "k": 1},
    {"query": "berlin city", "k": 20, "languages": ["en"]},
]
JSON = {"Content-Type": "application/json"}
# (what, request kwargs, expected status): every one must get exactly this 4xx, under load too.
MALFORMED = [
    ("bad json", {"content": b'{"query": "cat", ', "headers": JSON}, 400),
    ("k true", {"json": {"query": "cat", "k": True}}, 422),
    ("k string", {"json": {"query": "cat", "k": "10"}}, 422),
    ("empty languages", {"json": {"query": "cat", "languages": []}}, 422),
    ("zero-width query", {"json": {"query": "\u200b\u200b"}}, 422),
    ("NUL query", {"json": {"query": "\x00"}}, 422),
    ("language not in index", {"json": {"query": "cat", "languages": ["fr"]}}, 422),
    ("unknown field", {"json": {"query": "cat", "q": 1}}, 422),
    ("too large", {"content": b'{"query": "' + b"x" * 70_000 + b'"}', "headers": JSON}, 413),
    ("text/plain", {"content": b'{"query": "cat"}', "headers": {"Content-Type": "text/plain"}}, 415),
]
MIN_PER_CLIENT = 4  # every client keeps going until it has sent this many, however slow the machine


def _hits(body: dict) -> list[tuple[int, str, float]]:
    return [(h["rank"], h["id"], h["score"]) for h in body["hits"]]


def _same(got: list, want: list) -> bool:
    return [g[:2] for g in got] == [w[:2] for w in want] and all(abs(g[2] - w[2]) <= 1e-5 for g, w in zip(got, want))


def test_concurrent_clients_no_errors(server, capsys):
    with httpx.Client(base_url=server, timeout=30) as c:  # the single-client answers
        expected = [_hits(c.post("/search", json=body).raise_for_status().json()) for body in VALID]
    assert all(expected)
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    malformed: list[list[str]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(CLIENTS + 1)
    stop_at: list[float] = [0.0]

    def fail(message: str) -> None:
        with lock:
            errors.append(message)

    def client(i: int) -> None:
        with httpx.Client(base_url=server, timeout=30) as c:
            start_gate.wait()
            n = 0
            while time.monotonic() < stop_at[0] or n < MIN_PER_CLIENT:  # a count, not a speed
                try:
                    if n % 4 == 1:
                        what, kwargs, status = MALFORMED[(i + len(malformed[i])) % len(MALFORMED)]
                        r = c.post("/search", **kwargs)
                        if r.status_code != status:
                            fail(f"{what}: {r.status_code} (expected {status}): {r.text[:200]}")
                        malformed[i].append(what)
                    else:
                        j = (i + n) % len(VALID)
                        t0 = time.perf_counter()
                        r = c.post("/search", json=VALID[j])
                        latencies[i].append(time.perf_counter() - t0)
                        if r.status_code != 200:
                            fail(f"{VALID[j]}: {r.status_code}: {r.text[:200]}")
                        elif not _same(_hits(r.json()), expected[j]):
                            fail(f"{VALID[j]}: other hits than the single-client answer: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    fail(repr(exc))
                n += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + SECONDS
    t_start = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join(timeout=SECONDS + 300)
    wall = time.perf_counter() - t_start
    assert not any(t.is_alive() for t in threads), "clients did not stop"
    all_lat = np.array([x for lat in latencies for x in lat])
    n_bad = sum(len(m) for m in malformed)
    with capsys.disabled():
        print(
            f"\nload test: {CLIENTS} clients x {SECONDS:.0f} s -> {len(all_lat)} valid + {n_bad} malformed requests, "
            f"{(len(all_lat) + n_bad) / wall:.1f} req/s, valid latency p50 {np.percentile(all_lat, 50) * 1000:.1f} ms, "
            f"p99 {np.percentile(all_lat, 99) * 1000:.1f} ms, errors {len(errors)}"
        )
    assert not errors, f"{len(errors)} failed requests, e.g. {errors[:3]}"
    done = [len(lat) + len(m) for lat, m in zip(latencies, malformed)]
    assert min(done) >= MIN_PER_CLIENT, f"a client got through only {min(done)} requests"  # none starved
    if CLIENTS >= len(MALFORMED):  # client i starts at kind i: every kind was sent
        assert {m for ms in malformed for m in ms} == {what for what, _, _ in MALFORMED}
    health = httpx.get(server + "/health", timeout=5).json()
    assert health["status"] == "ok" and health["passages"] == 1002
