"""The server batches concurrent queries: one encoder call for the queries that arrive together, over
real HTTP, with the same hits as unbatched searches."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

from polyir.index.search import search  # noqa: E402
from polyir.index.store import open_index  # noqa: E402
from polyir.models.resolve import load_encoder  # noqa: E402
from polyir.serve.app import background_server, create_app  # noqa: E402
from polyir.serve.batching import QueryBatcher  # noqa: E402
from polyir.testing import build_tiny_index  # noqa: E402

TEXTS = {
    "en": ["the cat sat on the mat", "the dog ran in the park", "who was the first emperor of rome", "berlin is a big city"],
    "de": ["der hund", "wer war der erste kaiser von rom", "katze", "berlin"],
    "es": ["el gato", "el perro", "quien fue el primer emperador de rome", "madrid"],
}
QUERIES = ["who was the first emperor of rome", "der hund", "el gato", "the cat sat on the mat",
           "berlin is a big city", "wer war der erste kaiser von rom", "madrid", "the dog ran in the park"]


class GatedEncoder:
    """The real encoder, counting its calls; the first call waits until the test opens the gate,
    so the other requests are known to queue up meanwhile (no sleeps, no timing)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.calls: list[list[str]] = []
        self.entered = threading.Event()  # set when the first call is inside the encoder
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode(self, texts, kind, **kw):
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return self.encoder.encode(texts, kind, **kw)


@pytest.fixture(scope="module")
def folder(tiny_model_dir, tmp_path_factory):
    encoder = load_encoder(str(tiny_model_dir), device="cpu")
    return build_tiny_index(tmp_path_factory.mktemp("batch") / "idx", encoder, TEXTS)


def _expected(folder, tiny_model_dir, query, **kw):
    encoder = load_encoder(str(tiny_model_dir), device="cpu")
    with open_index(folder) as index:
        return [h.to_dict() for h in search(index, encoder, query, **kw)]


def test_concurrent_requests_share_one_encoder_call(folder, tiny_model_dir):
    gated = GatedEncoder(load_encoder(str(tiny_model_dir), device="cpu"))
    app = create_app(folder, encoder=gated, max_batch=len(QUERIES), max_wait_ms=0)
    batcher: QueryBatcher = app.state.batcher
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client, \
            ThreadPoolExecutor(len(QUERIES)) as pool:
        first = pool.submit(client.post, "/search", json={"query": QUERIES[0], "k": 5})
        assert gated.entered.wait(60), "the first query never reached the encoder"
        rest = [pool.submit(client.post, "/search", json={"query": q, "k": 5}) for q in QUERIES[1:]]
        assert batcher.wait_for_waiting(len(QUERIES) - 1, timeout=60), "the requests did not all arrive"
        gated.gate.set()
        responses = [first.result(), *(f.result() for f in rest)]
    assert [r.status_code for r in responses] == [200] * len(QUERIES)
    # two encoder calls for eight requests: the first alone, the seven that queued behind it together
    assert [len(c) for c in gated.calls] == [1, len(QUERIES) - 1]
    assert sorted(gated.calls[1]) == sorted(QUERIES[1:])
    assert batcher.stats.calls == 2 and batcher.stats.queries == len(QUERIES)
    for query, r in zip(QUERIES, responses):
        got, want = r.json()["hits"], _expected(folder, tiny_model_dir, query, k=5)
        assert [h["id"] for h in got] == [h["id"] for h in want]
        np.testing.assert_allclose([h["score"] for h in got], [h["score"] for h in want], atol=1e-5)


def test_filters_and_per_language_are_per_request_in_a_batch(folder, tiny_model_dir):
    gated = GatedEncoder(load_encoder(str(tiny_model_dir), device="cpu"))
    gated.gate.set()
    app = create_app(folder, encoder=gated, max_batch=16, max_wait_ms=5)
    bodies = [{"query": "berlin", "k": 6, "per_language": 2}, {"query": "el gato", "k": 3, "languages": ["es", "de"]},
              {"query": "der hund", "k": 4}, {"query": "cat", "languages": ["fr"]}]
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda b: client.post("/search", json=b), bodies))
    assert [r.status_code for r in responses] == [200, 200, 200, 422]
    assert "fr not in this index" in responses[3].json()["detail"]
    for body, r in zip(bodies[:3], responses[:3]):
        kw = {k: v for k, v in body.items() if k != "query"}
        assert [h["id"] for h in r.json()["hits"]] == [h["id"] for h in _expected(folder, tiny_model_dir, body["query"], **kw)]
    assert responses[0].json()["language_counts"] == {"de": 2, "en": 2, "es": 2}
    assert sum(len(c) for c in gated.calls) == 3  # the refused request never reached the encoder


def test_batcher_hands_errors_to_each_caller_and_closes(tiny_model_dir):
    class Failing:
        def encode(self, texts, kind, **kw):
            raise ValueError(f"cannot encode {len(texts)}")

    batcher = QueryBatcher(Failing(), max_batch=4, max_wait_ms=0)
    with pytest.raises(ValueError, match="cannot encode 1"):
        batcher.encode("x")
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit("y")
    with pytest.raises(ValueError, match="max_batch"):
        QueryBatcher(Failing(), max_batch=0)
