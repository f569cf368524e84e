"""HTTP search over a polyir index: ``POST /search``, ``GET /health``, a web page at ``/``, docs at ``/docs``.

``create_app(index_dir)`` opens (and validates) the index and the model it was built with once;
requests then only encode the query and search. Bad requests get a 4xx JSON answer whose ``detail``
says what is wrong (400 for a body that is not JSON or shorter than its Content-Length, 413 for a body
over 64 KiB, chunked or not, 422 for a value out of range or of the wrong type); the server keeps
serving. A body is read with a deadline (``body_timeout``), so a client that stops sending gets a
prompt 400 instead of holding the request open.
Concurrent queries are encoded together: a :class:`~polyir.serve.batching.QueryBatcher` owns the
only thread that runs the model and groups every waiting query into one encoder call (waiting at
most ``max_wait_ms`` for company, up to ``max_batch`` queries). One thread because fast tokenizers
must not be called from two threads at once and torch keeps per-thread buffers (spread over a
40-thread pool, the server's memory grew by ~1 MB every 20 searches; on one thread it stays flat).
The index is opened once and shared read-only: searches run outside the model's thread, on
``search_threads`` threads (one for a Qdrant index, whose local client is not shared across threads).
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from polyir.errors import PolyirError
from polyir.languages import LANGUAGE_NAMES
from polyir.serve.batching import MAX_BATCH, MAX_WAIT_MS, QueryBatcher, check_batching
from polyir.serve.page import MAX_K, MAX_QUERY_CHARS, render_page

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from polyir.models.encoder import Encoder

MAX_BODY_BYTES = 64 * 1024
BODY_TIMEOUT = 5.0  # seconds to receive a whole request body (then 400)
SEARCH_THREADS = 4  # searches of the shared index at once (faiss releases the GIL)


class SearchRequest(BaseModel):
    """A search: the query text, how many hits, and optional language filter / per-language cap."""

    model_config = ConfigDict(extra="forbid", strict=True)  # strict: no true -> 1, no "10" -> 10

    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, description="The query text (1-1000 characters, not blank).")
    k: int = Field(10, ge=1, le=MAX_K, description="Number of hits to return (1-100).")
    languages: list[str] | None = Field(
        None, max_length=len(LANGUAGE_NAMES),
        description="Only passages in these language codes (omit the field for all the index holds; not empty).",
    )
    per_language: int | None = Field(
        None, ge=1, le=MAX_K, description="Up to N hits per language, merged round-robin by score (de-biasing)."
    )

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        from polyir.index.search import query_problem

        problem = query_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("languages")
    @classmethod
    def _known_codes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must not be empty; omit the field to search every language")
        codes = list(dict.fromkeys(c.strip().lower() for c in value))
        unknown = [c for c in codes if c not in LANGUAGE_NAMES]
        if unknown:
            raise ValueError(f"unknown language code(s): {', '.join(unknown)}")
        return codes


class HitOut(BaseModel):
    """One hit: 1-based rank, passage id, cosine score, language and text."""

    rank: int
    id: str
    score: float
    language: str
    text: str
    title: str = ""


class SearchResponse(BaseModel):
    """The hits, how many of them each language has, and the time the server took."""

    query: str
    k: int
    hits: list[HitOut]
    language_counts: dict[str, int] = Field(description="Hits per language among the returned top k.")
    took_ms: float


class HealthResponse(BaseModel):
    status: str
    passages: int
    languages: dict[str, int]
    model: str
    fingerprint: str
    backend: str
    batching: dict[str, int | float] = Field(
        default_factory=dict,
        description="The settings (max_batch, max_wait_ms) and what they did since the server started: encoder "
                    "calls, queries encoded, the largest and the mean batch.")


def _readable(errors: list[dict[str, Any]]) -> str:
    """One line from pydantic errors: ``field: reason; field: reason``."""
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


async def _reply(send: Send, status: int, detail: str) -> None:
    """A JSON error answer that also closes the connection (the body may be unread)."""
    body = json.dumps({"detail": detail}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: read each request body up front, at most ``max_bytes`` within ``timeout`` seconds.

    The limit counts the bytes as they arrive, so a chunked body (no Content-Length) is cut off at the
    limit too; a body shorter than its Content-Length, or one that stops arriving, gets a 400.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            return await _reply(send, 400, "invalid Content-Length header")
        if declared is not None and int(declared) > self.max_bytes:
            return await _reply(send, 413, f"request body too large ({int(declared):,} bytes; the limit is {self.max_bytes:,})")
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                expected = f"of {int(declared):,} " if declared is not None else ""
                return await _reply(send, 400, f"request body incomplete: got {len(body):,} {expected}bytes "
                                               f"within {self.timeout:g} s")
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await _reply(send, 413, f"request body too large (over {self.max_bytes:,} bytes, the limit)")
            if not message.get("more_body", False):
                break
        if declared is not None and len(body) != int(declared):
            return await _reply(send, 400, f"request body has {len(body):,} bytes, Content-Length says {int(declared):,}")
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def create_app(
    index_dir: Path | str,
    encoder: Encoder | None = None,
    *,
    device: str = "cpu",
    body_timeout: float = BODY_TIMEOUT,
    max_batch: int = MAX_BATCH,
    max_wait_ms: float = MAX_WAIT_MS,
    search_threads: int = SEARCH_THREADS,
) -> FastAPI:
    """A FastAPI app serving the index in ``index_dir``; ``encoder`` defaults to the index's own model.

    The index is validated on load (``open_index``): a damaged one raises here, so no server starts on it.
    Queries arriving together are encoded in one call of at most ``max_batch`` (a lone query waits at
    most ``max_wait_ms`` for company); ``max_batch=1`` encodes one query at a time. Both are checked
    (``max_batch >= 1``, ``0 <= max_wait_ms <= 1000``; else a PolyirError) and reported by ``/health``.
    """
    from polyir.index.search import check_languages, language_counts, search_vector
    from polyir.index.store import load_index_encoder, open_index

    check_batching(max_batch, max_wait_ms)  # a PolyirError before the index or the model is opened
    index = open_index(index_dir)
    try:
        if encoder is None:
            encoder = load_index_encoder(index, device=device)
        else:
            index.check_encoder(encoder)
    except PolyirError:
        index.close()
        raise
    if search_threads < 1:
        index.close()
        raise PolyirError(f"search_threads must be at least 1, not {search_threads}")
    batcher = QueryBatcher(encoder, max_batch=max_batch, max_wait_ms=max_wait_ms)
    searcher = ThreadPoolExecutor(max_workers=1 if index.backend_name == "qdrant" else search_threads,
                                  thread_name_prefix="polyir-search")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()
        searcher.shutdown(wait=True)
        index.close()

    app = FastAPI(
        title="polyir search",
        summary="Multilingual dense retrieval over one polyir index.",
        version="1",
        lifespan=lifespan,
    )
    app.state.index = index
    app.state.encoder = encoder
    app.state.batcher = batcher

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, timeout=body_timeout)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=500, content={"detail": f"internal error ({type(exc).__name__}); see the server log"})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        bad_json = [e for e in errors if e.get("type") == "json_invalid"]
        if bad_json:
            ctx = bad_json[0].get("ctx") or {}
            reason = ctx.get("error") or bad_json[0].get("msg", "")
            return JSONResponse(status_code=400, content={"detail": f"malformed JSON body: {reason}"})
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type.lower():
            return JSONResponse(
                status_code=415,
                content={"detail": f"send the body as JSON with Content-Type: application/json (got {content_type or 'none'!r})"},
            )
        # Echo neither the input (it may be long) nor pydantic's internals: location, type and reason.
        slim = [{"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in errors]
        return JSONResponse(status_code=422, content={"detail": _readable(errors), "errors": jsonable_encoder(slim)})

    @app.post("/search", response_model=SearchResponse, summary="Search the index")
    async def search_endpoint(request: SearchRequest) -> Any:
        """Top-k passages for a query, optionally in some languages or capped per language."""
        start = time.perf_counter()
        try:
            codes = check_languages(index, request.languages)
            vector = await batcher.encode_async(request.query)
            run = functools.partial(search_vector, index, vector, k=request.k, languages=codes,
                                    per_language=request.per_language)
            hits = await asyncio.get_running_loop().run_in_executor(searcher, run)
        except PolyirError as exc:
            return JSONResponse(status_code=422, content={"detail": str(exc)})
        return {
            "query": request.query,
            "k": request.k,
            "hits": [h.to_dict() for h in hits],
            "language_counts": language_counts(hits),
            "took_ms": round((time.perf_counter() - start) * 1000, 2),
        }

    @app.head("/health", include_in_schema=False)
    @app.get("/health", response_model=HealthResponse, summary="Is the server up, and what does it serve")
    def health() -> Any:
        return {
            "status": "ok",
            "passages": len(index),
            "languages": index.language_counts,
            "model": index.model_spec,
            "fingerprint": index.fingerprint,
            "backend": index.backend_name,
            "batching": {"max_batch": batcher.max_batch, "max_wait_ms": batcher.max_wait_ms,
                         **batcher.stats.to_dict()},
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(render_page(index.language_counts, len(index), index.model_spec))

    return app


@contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` under uvicorn in a background thread (notebooks, tests); yields the base URL.

    ``port=0`` picks a free port. The server stops when the block exits.
    """
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="polyir-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = port
    for s in server.servers:
        for sock in s.sockets:
            bound = sock.getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
