"""Vector index backends behind one small interface: FAISS (flat, HNSW, IVF-PQ) and Qdrant.

Every backend stores L2-normalised float32 vectors at positions ``0..n-1`` and scores by inner
product (= cosine). ``search`` returns ``(scores, positions)``, each ``[n_queries, k]``, best first,
padded with ``-inf`` / ``-1`` when fewer than ``k`` vectors qualify. A filter is either a boolean
``allowed`` mask over positions or a list of ``languages`` (both may be given: they are combined).

- ``flat``: exact search (``faiss.IndexFlatIP``); the default, and the reference for recall.
- ``hnsw``: graph search (``faiss.IndexHNSWFlat``): ``M``, ``efConstruction``, ``efSearch``.
- ``ivfpq``: inverted lists + product quantization (``faiss.IndexIVFPQ``): ``nlist``, ``m``, ``nbits``,
  ``nprobe``; small and fast, lossy. ``refine`` > 0 re-scores ``refine × k`` candidates exactly
  (``faiss.IndexRefineFlat``, which keeps the full vectors in memory).
- ``qdrant``: a Qdrant collection through ``qdrant-client``: embedded local storage inside the index
  folder by default, or a Qdrant server with ``url`` (``QDRANT_API_KEY`` is read from the environment,
  never stored).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from polyir.atomic import OutputError, write_with
from polyir.errors import PolyirError

LANGUAGES_FILE = "languages.npy"


class Backend(ABC):
    """Build, search, save and load one kind of vector index."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    exact: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        unknown = sorted(k for k, v in params.items() if k not in self.defaults)
        if unknown:
            raise PolyirError(
                f"backend {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(self.defaults) or '(none)'}"
            )
        self.params: dict[str, Any] = {**self.defaults, **{k: v for k, v in params.items() if v is not None}}
        self._languages: np.ndarray | None = None
        self.count = 0
        self.dim = 0

    # -------------------------------------------------------------- interface
    def check(self, dim: int, count: int) -> None:
        """Fail on parameters that cannot work for ``count`` vectors of dimension ``dim`` (before encoding)."""

    @abstractmethod
    def build(self, vectors: np.ndarray, ids: Sequence[str], languages: Sequence[str] | None = None) -> None:
        """Index ``vectors`` (float32 ``[n, d]``) at positions 0..n-1; ``ids``/``languages`` per row."""

    @abstractmethod
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        languages: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, positions) per query, restricted to ``allowed`` / ``languages``."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the index into ``directory`` (created if needed)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, params: dict[str, Any]) -> Backend:
        """Read an index ``save`` wrote, with the parameters recorded beside it."""

    def close(self) -> None:
        """Release files and connections (a local Qdrant folder can be open only once)."""

    def __len__(self) -> int:
        return self.count

    # -------------------------------------------------------------- shared helpers
    def _set_languages(self, languages: Sequence[str] | None, n: int) -> None:
        if languages is None:
            self._languages = None
            return
        arr = np.asarray(list(languages), dtype=str)
        if len(arr) != n:
            raise ValueError(f"{len(arr)} languages for {n} vectors")
        self._languages = arr

    def filter_mask(self, allowed: np.ndarray | None, languages: Sequence[str] | None) -> np.ndarray | None:
        """One boolean mask from a position mask and/or a language list (None = no filter)."""
        mask = None
        if allowed is not None:
            mask = np.asarray(allowed, dtype=bool)
            if mask.shape != (self.count,):
                raise ValueError(f"allowed mask has shape {mask.shape}, expected ({self.count},)")
        if languages is not None:
            if self._languages is None:
                raise PolyirError(f"backend {self.name!r} was built without languages; cannot filter by language")
            lang_mask = np.isin(self._languages, list(languages))
            mask = lang_mask if mask is None else (mask & lang_mask)
        return mask

    def _save_languages(self, directory: Path) -> None:
        if self._languages is not None:
            languages = self._languages
            write_with(directory / LANGUAGES_FILE, lambda fh: np.save(fh, languages))

    def _load_languages(self, directory: Path) -> None:
        path = directory / LANGUAGES_FILE
        self._languages = np.load(path) if path.is_file() else None


def _make_dir(directory: Path | str) -> Path:
    """Create ``directory``; an OS failure becomes an OutputError naming it."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {directory}: {exc.strerror or exc}") from exc
    return directory


def _int_param(backend: str, key: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, or a PolyirError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise PolyirError(f"{backend}: {key} must be an integer of at least {minimum}, not {value!r}")
    return int(value)


def _check_vectors(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise PolyirError(f"expected a non-empty [n, d] vector matrix, got shape {vectors.shape}")
    return vectors


def _empty(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)


def _clean(scores: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAISS pads missing results with -1 and -FLT_MAX (or garbage scores): normalise to -inf."""
    scores = scores.astype(np.float32, copy=True)
    scores[positions < 0] = -np.inf
    return scores, positions.astype(np.int64, copy=False)


# ====================================================================== FAISS


class _FaissBackend(Backend):
    """Shared code of the FAISS backends: a ``faiss.Index`` plus per-position languages."""

    index_file: ClassVar[str] = "faiss.index"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.index = None

    def _search_params(self, selector: Any) -> Any:  # pragma: no cover - overridden
        import faiss

        return faiss.SearchParameters(sel=selector)

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               languages: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if k < 1:
            raise ValueError("k must be at least 1")
        mask = self.filter_mask(allowed, languages)
        if mask is not None and not mask.any():
            return _empty(len(queries), k)
        kk = min(k, self.count)
        bitmap = None
        selector = None
        if mask is not None and not mask.all():
            bitmap = np.packbits(mask, bitorder="little")  # kept alive until the search returns
            selector = faiss.IDSelectorBitmap(self.count, faiss.swig_ptr(bitmap))
        scores, positions = self.index.search(queries, kk, params=self._search_params(selector))
        del bitmap
        scores, positions = _clean(scores, positions)
        if kk < k:
            pad_s, pad_p = _empty(len(queries), k - kk)
            scores, positions = np.hstack([scores, pad_s]), np.hstack([positions, pad_p])
        return scores, positions

    def save(self, directory: Path) -> None:
        import faiss

        def write(fh: IO[bytes]) -> None:
            writer = faiss.PyCallbackIOWriter(fh.write)
            faiss.write_index(self.index, writer)
            del writer  # flushes

        directory = _make_dir(directory)
        write_with(directory / self.index_file, write)
        self._save_languages(directory)

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any]) -> Backend:
        import faiss

        directory = Path(directory)
        path = directory / cls.index_file
        if not path.is_file():
            raise PolyirError(f"{directory}: no {cls.index_file}; the index folder is incomplete")
        backend = cls(**params)
        backend.index = faiss.read_index(str(path))
        backend.count, backend.dim = int(backend.index.ntotal), int(backend.index.d)
        backend._after_load()
        backend._load_languages(directory)
        return backend

    def _after_load(self) -> None:
        """Re-apply search-time parameters that FAISS does not serialise."""


class FlatBackend(_FaissBackend):
    """Exact inner-product search: every query is scored against every vector."""

    name = "flat"
    exact = True
    defaults: ClassVar[dict[str, Any]] = {}

    def build(self, vectors: np.ndarray, ids: Sequence[str], languages: Sequence[str] | None = None) -> None:
        import faiss

        vectors = _check_vectors(vectors)
        self.count, self.dim = vectors.shape
        self.index = faiss.IndexFlatIP(self.dim)
        self.index.add(vectors)
        self._set_languages(languages, self.count)

    def _search_params(self, selector: Any) -> Any:
        import faiss

        return faiss.SearchParameters(sel=selector) if selector is not None else None


class HNSWBackend(_FaissBackend):
    """Approximate search on a navigable small-world graph; recall grows with ``efSearch``."""

    name = "hnsw"
    defaults: ClassVar[dict[str, Any]] = {"M": 32, "efConstruction": 100, "efSearch": 64}

    def build(self, vectors: np.ndarray, ids: Sequence[str], languages: Sequence[str] | None = None) -> None:
        import faiss

        vectors = _check_vectors(vectors)
        self.count, self.dim = vectors.shape
        self.check(self.dim, self.count)
        p = self.params
        self.index = faiss.IndexHNSWFlat(self.dim, int(p["M"]), faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = int(p["efConstruction"])
        self.index.add(vectors)
        self._after_load()
        self._set_languages(languages, self.count)

    def check(self, dim: int, count: int) -> None:
        for key in ("M", "efConstruction", "efSearch"):
            _int_param("hnsw", key, self.params[key], 1)

    def _after_load(self) -> None:
        self.index.hnsw.efSearch = int(self.params["efSearch"])

    def _search_params(self, selector: Any) -> Any:
        import faiss

        return faiss.SearchParametersHNSW(sel=selector, efSearch=int(self.params["efSearch"]))


def auto_nlist(n: int) -> int:
    """About 4·√n inverted lists, with at least 39 training points per list (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def auto_pq_m(dim: int) -> int:
    """The largest divisor of ``dim`` that is at most min(64, dim/4): ≥ 4 dimensions per sub-quantizer."""
    limit = max(1, min(64, dim // 4))
    return max(m for m in range(1, limit + 1) if dim % m == 0)


class IVFPQBackend(_FaissBackend):
    """Inverted lists + product quantization: compact codes, approximate scores (``refine`` rescores)."""

    name = "ivfpq"
    defaults: ClassVar[dict[str, Any]] = {"nlist": None, "m": None, "nbits": 8, "nprobe": 16, "refine": 0}

    def build(self, vectors: np.ndarray, ids: Sequence[str], languages: Sequence[str] | None = None) -> None:
        import faiss

        vectors = _check_vectors(vectors)
        n, d = vectors.shape
        self.count, self.dim = n, d
        nlist, m, nbits = self._resolved(d, n)
        p = self.params
        # PQ training needs at least 2**nbits points per sub-quantizer: shrink the codebooks on tiny corpora.
        nbits = min(nbits, max(1, int(math.floor(math.log2(n)))))
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.min_points_per_centroid = 1  # no warning spam on small corpora
        ivf.pq.cp.min_points_per_centroid = 1
        ivf.train(vectors)
        refine = int(p.get("refine") or 0)
        index = faiss.IndexRefineFlat(ivf) if refine > 0 else ivf
        if refine > 0:
            index.k_factor = float(refine)
        index.add(vectors)
        self.index = index
        self.params.update({"nlist": nlist, "m": m, "nbits": nbits, "refine": refine})
        self._quantizer = quantizer  # the IVF index does not own it
        self._after_load()
        self._set_languages(languages, self.count)

    def check(self, dim: int, count: int) -> None:
        self._resolved(dim, count)

    def _resolved(self, d: int, n: int) -> tuple[int, int, int]:
        """(nlist, m, nbits) for ``n`` vectors of dimension ``d``; a clear error for impossible values."""
        p = self.params
        nlist = auto_nlist(n) if p.get("nlist") is None else _int_param("ivfpq", "nlist", p["nlist"], 1)
        if nlist > n:
            raise PolyirError(f"ivfpq: nlist must be between 1 and the number of vectors ({n}), not {nlist}")
        m = auto_pq_m(d) if p.get("m") is None else _int_param("ivfpq", "m", p["m"], 1)
        if d % m:
            raise PolyirError(f"ivfpq: m={m} must divide the vector dimension {d} (e.g. m={auto_pq_m(d)})")
        nbits = _int_param("ivfpq", "nbits", p["nbits"], 1)
        if nbits > 16:
            raise PolyirError(f"ivfpq: nbits must be between 1 and 16, not {nbits}")
        _int_param("ivfpq", "nprobe", p["nprobe"], 1)
        _int_param("ivfpq", "refine", p.get("refine") or 0, 0)
        return nlist, m, nbits

    def _ivf(self) -> Any:
        import faiss

        return faiss.extract_index_ivf(self.index)

    def _after_load(self) -> None:
        self._ivf().nprobe = int(self.params["nprobe"])

    def _search_params(self, selector: Any) -> Any:
        import faiss

        ivf_params = faiss.SearchParametersIVF(sel=selector, nprobe=int(self.params["nprobe"]))
        if int(self.params.get("refine") or 0) > 0:
            return faiss.IndexRefineSearchParameters(k_factor=float(self.params["refine"]), base_index_params=ivf_params)
        return ivf_params


# ====================================================================== Qdrant


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
                _int_param("qdrant", key, self.params[key], minimum)
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

        vectors = _check_vectors(vectors)
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
            return _empty(len(queries), k)
        query_filter = self._filter(allowed, languages)
        params = models.SearchParams(hnsw_ef=int(self.params["hnsw_ef"])) if self.params.get("hnsw_ef") else None
        requests = [
            models.QueryRequest(query=q.tolist(), limit=k, filter=query_filter, params=params, with_payload=False)
            for q in queries
        ]
        responses = self.client.query_batch_points(self.collection, requests=requests)
        scores, positions = _empty(len(queries), k)
        for row, response in enumerate(responses):
            for col, point in enumerate(response.points[:k]):
                scores[row, col] = point.score
                positions[row, col] = int(point.id)
        return scores, positions

    def save(self, directory: Path) -> None:
        directory = _make_dir(directory)
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


BACKENDS: dict[str, type[Backend]] = {
    b.name: b for b in (FlatBackend, HNSWBackend, IVFPQBackend, QdrantBackend)
}


def make_backend(name: str, **params: Any) -> Backend:
    """A new, empty backend of kind ``name`` (flat, hnsw, ivfpq, qdrant) with its parameters."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise PolyirError(f"unknown index backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
    return cls(**params)


def load_backend(name: str, directory: Path, params: dict[str, Any]) -> Backend:
    """Read a saved backend of kind ``name`` from ``directory``."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise PolyirError(f"index uses unknown backend {name!r}; known: {', '.join(BACKENDS)}") from None
    return cls.load(Path(directory), params)
