"""Server reliability (#13): body limits enforced while reading, a short body answered promptly,
strict request types, empty filters and invisible queries refused, HEAD /health, no server on a
damaged index."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from polyir.errors import PolyirError  # noqa: E402
from polyir.models.resolve import load_encoder  # noqa: E402
from polyir.serve.app import background_server, create_app  # noqa: E402
from polyir.testing import build_tiny_index  # noqa: E402

TEXTS = {"en": ["the cat sat on the mat", "berlin is a big city"], "de": ["der hund", "berlin"], "es": ["el gato", "madrid"]}


@pytest.fixture(scope="module")
def folder(tiny_model_dir, tmp_path_factory):
    encoder = load_encoder(str(tiny_model_dir), device="cpu")
    return build_tiny_index(tmp_path_factory.mktemp("serve-rel") / "idx", encoder, TEXTS)


@pytest.fixture(scope="module")
def client(folder):
    with TestClient(create_app(folder)) as c:
        yield c


@pytest.fixture(scope="module")
def server(folder):
    """A real uvicorn server (raw HTTP framing matters here) with a 0.5 s body deadline."""
    with background_server(create_app(folder, body_timeout=0.5)) as url:
        yield int(url.rsplit(":", 1)[1])


def raw_request(port: int, data: bytes) -> tuple[int, dict]:
    """Send raw bytes, read the answer until the server closes; (status, JSON body)."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:  # 30 s: a safety net, not a measure
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything: read its answer
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:  # closed with our unread bytes pending: the answer came first
            pass
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


HEAD = b"POST /search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


def test_chunked_body_over_the_limit_is_cut_off_while_reading(server):
    chunk = b"x" * 8192
    # 160 KiB sent and the body never terminated: only a limit counted while reading can answer.
    data = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(b"2000\r\n" + chunk + b"\r\n" for _ in range(20))
    status, body = raw_request(server, data)
    assert status == 413 and "too large" in body["detail"]


def test_content_length_larger_than_the_body_gets_a_prompt_400(server):
    status, body = raw_request(server, HEAD + b"Content-Length: 100\r\n\r\n" + b'{"query": "cat"}')
    assert status == 400 and body["detail"] == "request body incomplete: got 16 of 100 bytes within 0.5 s"


def test_chunked_body_within_the_limit_is_served(server):
    payload = b'{"query": "der hund", "k": 2}'
    data = HEAD + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    status, body = raw_request(server, data)
    assert status == 200 and body["hits"][0]["id"] == "de-0"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"query": "cat", "k": True}, "k: Input should be a valid integer"),
        ({"query": "cat", "k": "10"}, "k: Input should be a valid integer"),
        ({"query": "cat", "per_language": True}, "per_language: Input should be a valid integer"),
        ({"query": 5}, "query: Input should be a valid string"),
        ({"query": "cat", "languages": []}, "languages: must not be empty; omit the field to search every language"),
        ({"query": "cat", "languages": "en"}, "languages: Input should be a valid list"),
        ({"query": "\u200b\u200b\ufeff"}, "query: query must not be blank"),
        ({"query": "\x00\x00"}, "query: query must not be blank"),
        ({"query": " \u2060\u200d "}, "query: query must not be blank"),
    ],
)
def test_strict_types_and_visible_queries(client, body, detail):
    r = client.post("/search", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith(detail)


def test_invisible_characters_inside_a_real_query_are_fine(client):
    r = client.post("/search", json={"query": "der\u200b hund", "k": 1})
    assert r.status_code == 200


def test_head_health(client):
    r = client.head("/health")
    assert r.status_code == 200 and r.content == b""


def test_no_server_on_a_damaged_index(folder, tmp_path, tiny_model_dir):
    import shutil

    import typer
    from typer.testing import CliRunner

    from polyir.commands.index import serve_command

    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    vectors = np.load(bad / "vectors.npy")
    np.save(bad / "vectors.npy", vectors[:-1])
    with pytest.raises(PolyirError, match=r"vectors\.npy: float32 vectors of shape \(5, 32\)"):
        create_app(bad)
    app = typer.Typer()
    app.command()(serve_command)
    res = CliRunner().invoke(app, [str(bad), "--port", "0"])
    assert res.exit_code == 2 and "vectors.npy" in res.output and "Traceback" not in res.output
