"""The Qdrant backend: a collection through ``qdrant-client``, in embedded local storage inside the
index folder by default, or on a Qdrant server with ``url`` (``QDRANT_API_KEY`` is read from the
environment, never stored).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from polyir.atomic import OutputError
from polyir.errors import PolyirError
from polyir.index.backend import Backend, check_vectors, int_param, make_dir, no_results


def _ram_tmp_dir() -> str | None:
    """A RAM-backed temporary folder (``/dev/shm``) when there is one, else the default tmp dir."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


class QdrantBackend(Backend):
    """A Qdrant collection: local embedded storage (``QdrantClient(path=...)``) or a server (``url``)."""

    name = "qdrant"
    defaults: ClassVar[dict[str, Any]] = {
        "url": None,
        "collection": "polyir",
        "m": None,  # server only: HNSW graph degree
        "ef_construct": None,  # server only
        "hnsw_ef": None,  # server only: search-time beam width
    }
    local_dir: ClassVar[str] = "qdrant"
    upload_batch: ClassVar[int] = 1024

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.client = None
        self._tmp: str | None = None

    @property
    def exact(self) -> bool:  # type: ignore[override]
        """Local mode scores every point; a server searches its HNSW graph."""
        return not self.params.get("url")

    def check(self, dim: int, count: int) -> None:
        for key, minimum in (("m", 0), ("ef_construct", 1), ("hnsw_ef", 1)):
            if self.params.get(key) is not None:
                int_param("qdrant", key, self.params[key], minimum)
        if not isinstance(self.params["collection"], str) or not self.params["collection"].strip():
            raise PolyirError("qdrant: the collection name must be a non-empty string")

    @property
    def collection(self) -> str:
        return str(self.params["collection"])

    def _connect(self, path: str | None = None) -> Any:
        try:
            from qdrant_client import QdrantClient
        except ImportError as exc:  # pragma: no cover - it is a dependency
            raise PolyirError("the qdrant backend needs qdrant-client: pip install qdrant-client") from exc
        if self.params.get("url"):
            client = QdrantClient(url=self.params["url"], api_key=os.environ.get("QDRANT_API_KEY"))
            try:
                client.get_collections()
            except Exception as exc:  # noqa: BLE001 - connection errors come in several types
                raise PolyirError(f"qdrant: cannot reach the server at {self.params['url']} ({exc})") from exc
            return client
        try:
            return QdrantClient(path=path)
        except RuntimeError as exc:  # the folder is locked by another client
            raise PolyirError(
                f"qdrant: the local storage {path} is open in another process (a running `polyir serve`?); "
                "local mode allows one process at a time: stop it, or use a Qdrant server (--qdrant-url)"
            ) from exc

    def build(self, vectors: np.ndarray, ids: Sequence[str], languages: Sequence[str] | None = None) -> None:
        from qdrant_client import models

        vectors = check_vectors(vectors)
        self.count, self.dim = vectors.shape
        self.check(self.dim, self.count)
        ids = list(ids)
        if len(ids) != self.count:
            raise ValueError(f"{len(ids)} ids for {self.count} vectors")
        self._set_languages(languages, self.count)
        if self.params.get("url"):
            self.client = self._connect()
            if self.client.collection_exists(self.collection):
                raise PolyirError(
                    f"qdrant: collection {self.collection!r} already exists on {self.params['url']}; "
                    "choose another name (--qdrant-collection) or delete it on the server"
                )
        else:
            # Local mode commits every point to SQLite: building in RAM (/dev/shm) and moving the
            # folder into the index afterwards is ~50x faster than building on disk.
            self._tmp = tempfile.mkdtemp(prefix="polyir-qdrant-", dir=_ram_tmp_dir())
            self.client = self._connect(self._tmp)
        hnsw = None
        if self.params.get("m") or self.params.get("ef_construct"):
            hnsw = models.HnswConfigDiff(m=self.params.get("m"), ef_construct=self.params.get("ef_construct"))
        self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.DOT),
            hnsw_config=hnsw,
        )
        if self.params.get("url") and languages is not None:
            self.client.create_payload_index(self.collection, "language", models.PayloadSchemaType.KEYWORD)
        # Column batches: several times faster than per-point uploads in local mode.
        for lo in range(0, self.count, self.upload_batch):
            hi = min(self.count, lo + self.upload_batch)
            payloads = [
                {"id": ids[i], **({"language": str(self._languages[i])} if self._languages is not None else {})}
                for i in range(lo, hi)
            ]
            self.client.upsert(
                self.collection,
                points=models.Batch(ids=list(range(lo, hi)), vectors=vectors[lo:hi].tolist(), payloads=payloads),
                wait=True,
            )

    def _filter(self, allowed: np.ndarray | None, languages: Sequence[str] | None) -> Any:
        """Qdrant's own filter: a payload match on ``language`` and/or the allowed point ids."""
        from qdrant_client import models

        must: list[Any] = []
        if languages is not None:
            must.append(models.FieldCondition(key="language", match=models.MatchAny(any=list(languages))))
        if allowed is not None and not np.asarray(allowed, dtype=bool).all():
            must.append(models.HasIdCondition(has_id=[int(i) for i in np.flatnonzero(allowed)]))
        return models.Filter(must=must) if must else None

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               languages: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        from qdrant_client import models

        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if k < 1:
            raise ValueError("k must be at least 1")
        mask = self.filter_mask(allowed, languages)
        if mask is not None and not mask.any():
            return no_results(len(queries), k)
        query_filter = self._filter(allowed, languages)
        params = models.SearchParams(hnsw_ef=int(self.params["hnsw_ef"])) if self.params.get("hnsw_ef") else None
        requests = [
            models.QueryRequest(query=q.tolist(), limit=k, filter=query_filter, params=params, with_payload=False)
            for q in queries
        ]
        responses = self.client.query_batch_points(self.collection, requests=requests)
        scores, positions = no_results(len(queries), k)
        for row, response in enumerate(responses):
            for col, point in enumerate(response.points[:k]):
                scores[row, col] = point.score
                positions[row, col] = int(point.id)
        return scores, positions

    def save(self, directory: Path) -> None:
        directory = make_dir(directory)
        self._save_languages(directory)
        if self.params.get("url") or self._tmp is None:
            return  # a server keeps the data; only the parameters (index.json) are needed
        self.client.close()
        target = directory / self.local_dir
        try:
            if target.exists():
                shutil.rmtree(target)
            shutil.move(self._tmp, target)
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        self._tmp = None
        self.client = self._connect(str(target))

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any]) -> Backend:
        directory = Path(directory)
        backend = cls(**params)
        if backend.params.get("url"):
            backend.client = backend._connect()
        else:
            path = directory / cls.local_dir
            if not path.is_dir():
                raise PolyirError(f"{directory}: no {cls.local_dir}/ folder; the index folder is incomplete")
            backend.client = backend._connect(str(path))
        if not backend.client.collection_exists(backend.collection):
            raise PolyirError(f"qdrant: collection {backend.collection!r} not found")
        info = backend.client.get_collection(backend.collection)
        backend.count = int(backend.client.count(backend.collection, exact=True).count)
        vectors = info.config.params.vectors
        backend.dim = int(getattr(vectors, "size", 0) or 0)
        backend._load_languages(directory)
        return backend

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
