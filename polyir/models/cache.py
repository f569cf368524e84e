"""On-disk cache of embeddings for a (model, texts, side, precision) combination."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from polyir.atomic import OutputError, write_with
from polyir.paths import cache_dir


class EmbeddingCache:
    """Stores ``.npy`` files keyed by the model fingerprint and a hash of the exact texts."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"

    def key(self, fingerprint: str, kind: str, precision: str, texts: Sequence[str]) -> Path:
        h = hashlib.sha256()
        for t in texts:
            h.update(t.encode("utf-8"))
            h.update(b"\x00")
        return self.root / fingerprint / f"{kind}-{precision}-{len(texts)}-{h.hexdigest()[:20]}.npy"

    def get_or_compute(
        self,
        fingerprint: str,
        kind: str,
        precision: str,
        texts: Sequence[str],
        compute: Callable[[], np.ndarray],
    ) -> tuple[np.ndarray, bool]:
        """Return (embeddings, was_cached); computes and stores them on a miss."""
        path = self.key(fingerprint, kind, precision, texts)
        if path.is_file():
            arr = np.load(path)
            if arr.shape[0] == len(texts):
                return arr, True
        arr = compute()
        try:
            write_with(path, lambda fh: np.save(fh, arr))
        except OutputError as exc:  # a cache is an optimisation: a full or read-only disk costs a recompute
            warnings.warn(f"embedding cache not stored: {exc}", stacklevel=2)
        return arr, False
