"""The interface every vector index backend implements, and the helpers they share.

Every backend stores L2-normalised float32 vectors at positions ``0..n-1`` and scores by inner
product (= cosine). ``search`` returns ``(scores, positions)``, each ``[n_queries, k]``, best first,
padded with ``-inf`` / ``-1`` when fewer than ``k`` vectors qualify. A filter is either a boolean
``allowed`` mask over positions or a list of ``languages`` (both may be given: they are combined).
The backends themselves: ``polyir.index.faiss_backend`` and ``polyir.index.qdrant_backend``; find
one by name with ``polyir.index.backends``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

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


def make_dir(directory: Path | str) -> Path:
    """Create ``directory``; an OS failure becomes an OutputError naming it."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {directory}: {exc.strerror or exc}") from exc
    return directory


def int_param(backend: str, key: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, or a PolyirError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise PolyirError(f"{backend}: {key} must be an integer of at least {minimum}, not {value!r}")
    return int(value)


def check_vectors(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as a contiguous float32 ``[n, d]`` matrix (n > 0), else a PolyirError."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise PolyirError(f"expected a non-empty [n, d] vector matrix, got shape {vectors.shape}")
    return vectors


def no_results(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``-inf`` and positions ``-1`` for ``nq`` queries: nothing found."""
    return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
