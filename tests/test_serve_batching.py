"""The server batches concurrent queries: one encoder call for the queries that arrive together, over
real HTTP, with the same hits as unbatched searches; ``polyir serve --max-batch/--max-wait-ms`` set the
batching (checked, shown in --help, reported by /health)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

from polyir.errors import PolyirError  # noqa: E402
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
    _, responses = _gated_run(app, gated, QUERIES, k=5)
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


# ---------------------------------------------------------------------------- polyir serve --max-batch / --max-wait-ms


def _cli_app(folder, monkeypatch, gated, *args):
    """The app ``polyir serve FOLDER ARGS`` would run, with its encoder wrapped in ``gated`` (uvicorn not started)."""
    import typer
    import uvicorn
    from typer.testing import CliRunner

    import polyir.index.store as store
    from polyir.commands.index import serve_command

    made = {}
    real_load = store.load_index_encoder

    def load_wrapped(index, model=None, *, device="cpu"):
        gated.encoder = real_load(index, model, device=device)
        return gated

    monkeypatch.setattr(store, "load_index_encoder", load_wrapped)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: made.update(app=app, **kw))
    cli = typer.Typer()
    cli.command()(serve_command)
    res = CliRunner().invoke(cli, [str(folder), "--port", "0", *args])
    assert res.exit_code == 0, res.output
    return made["app"], res.output


def _gated_run(app, gated, queries, k: int = 3):
    """The first query held inside the encoder until all the others wait in the queue, then released;
    returns the /health answer and the responses (all checked to be 200)."""
    batcher: QueryBatcher = app.state.batcher
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client, \
            ThreadPoolExecutor(len(queries)) as pool:
        first = pool.submit(client.post, "/search", json={"query": queries[0], "k": k})
        assert gated.entered.wait(60), "the first query never reached the encoder"
        rest = [pool.submit(client.post, "/search", json={"query": q, "k": k}) for q in queries[1:]]
        assert batcher.wait_for_waiting(len(queries) - 1, timeout=60), "the requests did not all arrive"
        gated.gate.set()
        responses = [first.result(), *(f.result() for f in rest)]
        health = client.get("/health").json()
    assert [r.status_code for r in responses] == [200] * len(queries)
    return health, responses


@pytest.mark.parametrize(
    ("max_batch", "sizes"),
    [
        (1, [1] * len(QUERIES)),  # one query per encoder call, however many wait
        (3, [1, 3, 3, 1]),  # the seven that queued behind the first, three at a time
        (32, [1, len(QUERIES) - 1]),  # all seven in one call
    ],
)
def test_serve_max_batch_sets_how_many_queries_share_an_encoder_call(folder, tiny_model_dir, monkeypatch, max_batch, sizes):
    gated = GatedEncoder(None)
    app, output = _cli_app(folder, monkeypatch, gated, "--max-batch", str(max_batch), "--max-wait-ms", "0")
    assert f"batching up to {max_batch} queries, waiting at most 0 ms" in output
    health, _ = _gated_run(app, gated, QUERIES)
    assert [len(c) for c in gated.calls] == sizes
    assert sorted(t for c in gated.calls for t in c) == sorted(QUERIES)
    b = health["batching"]
    assert b["max_batch"] == max_batch and b["max_wait_ms"] == 0
    assert b["encoder_calls"] == len(sizes) and b["queries"] == len(QUERIES) and b["largest_batch"] == max(sizes)


def test_serve_defaults_are_reported_by_health(folder, monkeypatch):
    gated = GatedEncoder(None)
    gated.gate.set()
    app, _ = _cli_app(folder, monkeypatch, gated)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/search", json={"query": "der hund"}).status_code == 200
        b = client.get("/health").json()["batching"]
    assert (b["max_batch"], b["max_wait_ms"]) == (32, 5.0)
    assert b["encoder_calls"] == 1 and b["queries"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-batch", "0"], "error: --max-batch must be an integer of at least 1 (queries per encoder call), not 0"),
        (["--max-batch", "-4"], "error: --max-batch must be an integer of at least 1 (queries per encoder call), not -4"),
        (["--max-wait-ms", "-1"], "error: --max-wait-ms must be between 0 and 1000 (milliseconds), not -1"),
        (["--max-wait-ms", "1000.5"], "error: --max-wait-ms must be between 0 and 1000 (milliseconds), not 1000.5"),
        (["--max-wait-ms", "nan"], "error: --max-wait-ms must be between 0 and 1000 (milliseconds), not nan"),
    ],
)
def test_serve_refuses_bad_batching_in_one_line_before_loading(tmp_path, monkeypatch, args, message):
    import typer
    import uvicorn
    from typer.testing import CliRunner

    from polyir.commands.index import serve_command

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("the server must not start"))
    cli = typer.Typer()
    cli.command()(serve_command)
    # the index folder does not exist: the options are checked before it is opened
    res = CliRunner().invoke(cli, [str(tmp_path / "no-index"), *args])
    assert res.exit_code == 2
    assert res.output.strip() == message and "Traceback" not in res.output


def test_serve_help_shows_the_batching_options():
    from typer.testing import CliRunner

    from polyir.cli import app

    res = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "--max-batch" in text and "[default: 32]" in text
    assert "--max-wait-ms" in text and "0-1000 ms" in text and "[default: 5.0]" in text


def test_create_app_checks_batching_before_opening_the_index(tmp_path):
    with pytest.raises(PolyirError, match="max_batch must be an integer of at least 1"):
        create_app(tmp_path / "no-index", max_batch=0)
    with pytest.raises(PolyirError, match="max_wait_ms must be between 0 and 1000"):
        create_app(tmp_path / "no-index", max_wait_ms=1001)
    with pytest.raises(ValueError, match="max_wait_ms"):
        QueryBatcher(object(), max_wait_ms=float("inf"))
