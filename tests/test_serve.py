"""The HTTP service (FastAPI TestClient): search, every kind of bad request, health, docs, the page."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from polyir.models.resolve import load_encoder  # noqa: E402
from polyir.serve.app import create_app  # noqa: E402
from polyir.testing import build_tiny_index  # noqa: E402

TEXTS = {
    "en": ["the cat sat on the mat", "the dog ran in the park", "who was the first emperor of rome", "berlin is a big city"],
    "de": ["der hund", "wer war der erste kaiser von rom", "katze", "berlin"],
    "es": ["el gato", "el perro", "quien fue el primer emperador de rome", "madrid"],
}


@pytest.fixture(scope="module")
def client(tiny_model_dir, tmp_path_factory):
    encoder = load_encoder(str(tiny_model_dir), device="cpu")
    folder = build_tiny_index(tmp_path_factory.mktemp("serve") / "idx", encoder, TEXTS)
    with TestClient(create_app(folder)) as c:  # the app loads the model recorded in the index itself
        yield c


def test_search_ok(client):
    r = client.post("/search", json={"query": "who was the first emperor of rome", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["hits"][0]["id"] == "en-2" and body["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
    assert sum(body["language_counts"].values()) == 5
    assert set(body["hits"][0]) >= {"rank", "id", "score", "language", "text"}
    r = client.post("/search", json={"query": "el gato", "k": 3, "languages": ["ES", "de"]})
    assert r.status_code == 200 and {h["language"] for h in r.json()["hits"]} <= {"es", "de"}
    r = client.post("/search", json={"query": "berlin", "k": 6, "per_language": 2})
    assert r.status_code == 200 and r.json()["language_counts"] == {"de": 2, "en": 2, "es": 2}


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"query": ""}, 422, "query: String should have at least 1 character"),
        ({"query": "   \n"}, 422, "query: query must not be blank"),
        ({"query": "x" * 1001}, 422, "query: String should have at most 1000 characters"),
        ({"query": "cat", "languages": ["xx"]}, 422, "languages: unknown language code(s): xx"),
        ({"query": "cat", "languages": ["fr"]}, 422, "language(s) fr not in this index; it holds de, en, es"),
        ({"query": "cat", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"query": "cat", "k": 101}, 422, "k: Input should be less than or equal to 100"),
        ({"query": "cat", "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({"query": "cat", "per_language": 0}, 422, "per_language: Input should be greater than or equal to 1"),
        ({"k": 3}, 422, "query: Field required"),
        ({"query": "cat", "q": 1}, 422, "q: Extra inputs are not permitted"),
    ],
)
def test_bad_requests_say_why(client, body, status, detail):
    r = client.post("/search", json=body)
    assert r.status_code == status
    assert r.json()["detail"].startswith(detail)
    assert "x" * 1001 not in r.text  # the input is not echoed back


def test_malformed_json_and_content_type(client):
    r = client.post("/search", content=b'{"query": "cat", ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"].startswith("malformed JSON body")
    r = client.post("/search", content=b'["cat"]', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    r = client.post("/search", content=b'{"query": "cat"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["detail"]
    r = client.post("/search", content=b'{"query": "' + b"x" * 100_000 + b'"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    # ... and the server still answers afterwards.
    assert client.post("/search", json={"query": "cat"}).status_code == 200


def test_health_docs_and_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["passages"] == 12
    assert health["languages"] == {"de": 4, "en": 4, "es": 4} and health["backend"] == "flat"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = client.get("/openapi.json").json()
    assert "/search" in schema["paths"] and "SearchRequest" in schema["components"]["schemas"]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for needle in ('<form id="search-form"', 'id="query"', 'id="language-filter"', 'id="language-bar"', 'id="results"'):
        assert needle in html
    assert "http://" not in html and "https://" not in html  # self-contained: no CDN
    assert '"code": "de"' in html  # the index's languages are embedded for the filter
    assert client.get("/nope").status_code == 404
