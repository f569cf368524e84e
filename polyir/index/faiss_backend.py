"""FAISS backends: exact inner product, HNSW graph search and IVF-PQ.

- ``flat``: exact search (``faiss.IndexFlatIP``); the default, and the reference for recall.
- ``hnsw``: graph search (``faiss.IndexHNSWFlat``): ``M``, ``efConstruction``, ``efSearch``.
- ``ivfpq``: inverted lists + product quantization (``faiss.IndexIVFPQ``): ``nlist``, ``m``, ``nbits``,
  ``nprobe``; small and fast, lossy. ``refine`` > 0 re-scores ``refine × k`` candidates exactly
  (``faiss.IndexRefineFlat``, which keeps the full vectors in memory).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from polyir.atomic import write_with
from polyir.errors import PolyirError
from polyir.index.backend import Backend, check_vectors, int_param, make_dir, no_results


def _clean(scores: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAISS pads missing results with -1 and -FLT_MAX (or garbage scores): normalise to -inf."""
    scores = scores.astype(np.float32, copy=True)
    scores[positions < 0] = -np.inf
    return scores, positions.astype(np.int64, copy=False)


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
            return no_results(len(queries), k)
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
            pad_s, pad_p = no_results(len(queries), k - kk)
            scores, positions = np.hstack([scores, pad_s]), np.hstack([positions, pad_p])
        return scores, positions

    def save(self, directory: Path) -> None:
        import faiss

        def write(fh: IO[bytes]) -> None:
            writer = faiss.PyCallbackIOWriter(fh.write)
            faiss.write_index(self.index, writer)
            del writer  # flushes

        directory = make_dir(directory)
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

        vectors = check_vectors(vectors)
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

        vectors = check_vectors(vectors)
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
            int_param("hnsw", key, self.params[key], 1)

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

        vectors = check_vectors(vectors)
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
        nlist = auto_nlist(n) if p.get("nlist") is None else int_param("ivfpq", "nlist", p["nlist"], 1)
        if nlist > n:
            raise PolyirError(f"ivfpq: nlist must be between 1 and the number of vectors ({n}), not {nlist}")
        m = auto_pq_m(d) if p.get("m") is None else int_param("ivfpq", "m", p["m"], 1)
        if d % m:
            raise PolyirError(f"ivfpq: m={m} must divide the vector dimension {d} (e.g. m={auto_pq_m(d)})")
        nbits = int_param("ivfpq", "nbits", p["nbits"], 1)
        if nbits > 16:
            raise PolyirError(f"ivfpq: nbits must be between 1 and 16, not {nbits}")
        int_param("ivfpq", "nprobe", p["nprobe"], 1)
        int_param("ivfpq", "refine", p.get("refine") or 0, 0)
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
