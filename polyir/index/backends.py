"""Vector index backends by name: FAISS (flat, HNSW, IVF-PQ) and Qdrant, behind one interface.

- ``flat``: exact search (``faiss.IndexFlatIP``); the default, and the reference for recall.
- ``hnsw``: graph search (``faiss.IndexHNSWFlat``): ``M``, ``efConstruction``, ``efSearch``.
- ``ivfpq``: inverted lists + product quantization (``faiss.IndexIVFPQ``); lossy, ``refine`` re-scores.
- ``qdrant``: a Qdrant collection through ``qdrant-client`` (local storage or a server).

The interface (:class:`~polyir.index.backend.Backend`: build, search, save, load) is in
``polyir.index.backend``; the implementations in ``faiss_backend`` and ``qdrant_backend``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polyir.errors import PolyirError
from polyir.index.backend import Backend
from polyir.index.faiss_backend import FlatBackend, HNSWBackend, IVFPQBackend
from polyir.index.qdrant_backend import QdrantBackend

__all__ = ["BACKENDS", "Backend", "load_backend", "make_backend"]

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
