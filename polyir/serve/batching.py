"""Group concurrent queries into one encoder call: the model runs on one thread, search on others.

One forward pass over 16 short queries costs little more than over one (the matrix products are
wider, not more), so under load the server encodes every query that is waiting in one call. The
:class:`QueryBatcher` owns the only thread that touches the model (fast tokenizers must not be
called from two threads at once, and torch keeps per-thread buffers): it takes the first waiting
query, then everything else already queued, then waits at most ``max_wait_ms`` for more while the
batch is below ``max_batch``, encodes the batch once and hands each caller its vector. So a lone
query waits at most ``max_wait_ms``; under load a batch builds up while the previous one encodes,
and the wait is not needed at all.

Searching the (read-only, shared) index runs on a separate pool of threads, so the next batch
encodes while the previous one's queries are searched.
"""

from __future__ import annotations

import asyncio
import numbers
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from polyir.errors import PolyirError

if TYPE_CHECKING:
    import numpy as np

    from polyir.models.encoder import Encoder

MAX_BATCH = 32  # queries in one encoder call (the default of `polyir serve --max-batch`)
MAX_WAIT_MS = 5.0  # how long a lone query waits for company (`--max-wait-ms`)
MAX_WAIT_LIMIT_MS = 1000.0  # the longest wait allowed: beyond it, every lone query is visibly slow


def check_batching(max_batch: object, max_wait_ms: object, *, names: tuple[str, str] = ("max_batch", "max_wait_ms")) -> None:
    """A PolyirError naming the setting unless ``max_batch`` is an integer >= 1 and ``max_wait_ms`` a
    number in [0, MAX_WAIT_LIMIT_MS]; ``names`` are what the message calls them (CLI flags, say)."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, numbers.Integral) or max_batch < 1:
        raise PolyirError(f"{names[0]} must be an integer of at least 1 (queries per encoder call), not {max_batch!r}")
    if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, numbers.Real) \
            or not 0 <= max_wait_ms <= MAX_WAIT_LIMIT_MS:  # also refuses NaN
        shown = f"{max_wait_ms:g}" if isinstance(max_wait_ms, float) else repr(max_wait_ms)
        raise PolyirError(f"{names[1]} must be between 0 and {MAX_WAIT_LIMIT_MS:g} (milliseconds), not {shown}")


@dataclass
class BatchStats:
    """What the batcher did: encoder calls, queries, and the largest batch."""

    calls: int = 0
    queries: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)  # the most recent batch sizes (bounded)

    def record(self, size: int) -> None:
        self.calls += 1
        self.queries += size
        self.largest = max(self.largest, size)
        self.sizes.append(size)
        del self.sizes[:-1000]

    def to_dict(self) -> dict[str, float]:
        return {"encoder_calls": self.calls, "queries": self.queries, "largest_batch": self.largest,
                "mean_batch": round(self.queries / self.calls, 2) if self.calls else 0.0}


class QueryBatcher:
    """Encode queries from many callers in shared batches on one dedicated thread.

    ``encode(text)`` (blocking) and ``encode_async(text)`` return the query's float32 vector;
    ``close()`` finishes the queued work and stops the thread.
    """

    def __init__(self, encoder: Encoder, *, max_batch: int = MAX_BATCH, max_wait_ms: float = MAX_WAIT_MS) -> None:
        try:
            check_batching(max_batch, max_wait_ms)
        except PolyirError as exc:
            raise ValueError(str(exc)) from None
        self.encoder = encoder
        self.max_batch = int(max_batch)
        self.max_wait_ms = float(max_wait_ms)
        self.max_wait = max_wait_ms / 1000.0  # seconds
        self.stats = BatchStats()
        self._queue: queue.Queue[tuple[str, Future] | None] = queue.Queue()
        self._waiting = 0
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="polyir-encoder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ callers
    def submit(self, text: str) -> Future:
        """Queue one query; the future's result is its vector (or the encoder's exception)."""
        future: Future = Future()
        with self._changed:
            if self._closed:
                raise RuntimeError("the query batcher is closed")
            self._waiting += 1
            self._queue.put((text, future))
            self._changed.notify_all()
        return future

    def encode(self, text: str) -> np.ndarray:
        return self.submit(text).result()

    async def encode_async(self, text: str) -> np.ndarray:
        return await asyncio.wrap_future(self.submit(text))

    @property
    def waiting(self) -> int:
        """Queries submitted and not yet taken into a batch."""
        with self._changed:
            return self._waiting

    def wait_for_waiting(self, count: int, timeout: float = 30.0) -> bool:
        """Block until at least ``count`` queries wait to be batched (for tests and benchmarks)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._waiting >= count, timeout)

    def close(self) -> None:
        """Encode what is queued, then stop the encoder thread."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    # ------------------------------------------------------------------ the encoder thread
    def _take(self, block: bool, timeout: float | None = None) -> tuple[str, Future] | None:
        item = self._queue.get(block, timeout)
        if item is not None:
            with self._changed:
                self._waiting -= 1
                self._changed.notify_all()
        return item

    def _collect(self) -> tuple[list[tuple[str, Future]], bool]:
        """One batch: the first query (waiting for it), what is queued, then a bounded wait for more."""
        first = self._take(block=True)
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        stop = False
        while len(batch) < self.max_batch:
            try:
                item = self._take(block=False)
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._take(block=True, timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._collect()
            if not batch:
                continue
            live = [(t, f) for t, f in batch if f.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                vectors = self.encoder.encode([t for t, _ in live], "query", batch_size=len(live), show_progress=False)
            except BaseException as exc:  # hand the error to every caller of this batch
                for _, f in live:
                    f.set_exception(exc)
                continue
            self.stats.record(len(live))
            for row, (_, f) in enumerate(live):
                f.set_result(vectors[row])
