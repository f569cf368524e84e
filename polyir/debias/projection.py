"""The de-biasing maps themselves: a language-subspace projection, and per-language centring.

Much of a multilingual encoder's language bias lives in a low-rank subspace spanned by the
per-language mean embeddings (Libovický et al. 2020; Xie et al. 2022). ``subspace`` removes the span
of the centred means with one matrix ``P = I - V_k V_kᵀ`` that applies to every text whatever its
language; ``center`` subtracts each text's own language mean, which needs the language at encode time.
Both are followed by re-normalisation. Pure numpy: fitting and applying cost milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from polyir.errors import PolyirError

METHODS = ("subspace", "center")
MIN_TEXTS_PER_LANGUAGE = 10


def language_means(embeddings: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Sorted languages and their mean embeddings (one row per language)."""
    langs = sorted(embeddings)
    return langs, np.stack([np.asarray(embeddings[lang], dtype=np.float64).mean(axis=0) for lang in langs])


def check_fit_input(counts: Mapping[str, int], rank: int | None, method: str) -> int:
    """Validate languages, text counts and rank; returns the rank to use (default L - 1)."""
    if method not in METHODS:
        raise PolyirError(f"unknown de-biasing method {method!r}; use one of {', '.join(METHODS)}")
    if len(counts) < 2:
        have = ", ".join(counts) or "none"
        raise PolyirError(f"de-biasing needs texts in at least 2 languages; the fitting source has {have}")
    few = {lang: n for lang, n in counts.items() if n < MIN_TEXTS_PER_LANGUAGE}
    if few:
        listed = ", ".join(f"{lang} ({n})" for lang, n in sorted(few.items()))
        raise PolyirError(
            f"too few texts to estimate a language mean: {listed}; need at least {MIN_TEXTS_PER_LANGUAGE} per language"
        )
    max_rank = len(counts) - 1
    if rank is None:
        return max_rank
    if not 1 <= rank <= max_rank:
        raise PolyirError(
            f"--rank {rank} is out of range: with {len(counts)} languages the centred means span at most "
            f"{max_rank} dimensions (1..{max_rank})"
        )
    return rank


@dataclass(frozen=True)
class SubspaceProjection:
    """``P = I - V Vᵀ`` where V (d × k) spans the top-k directions of the centred language means."""

    basis: np.ndarray  # d × k, orthonormal columns
    singular_values: np.ndarray  # all of them, largest first (k of them are removed)

    @property
    def matrix(self) -> np.ndarray:
        d = self.basis.shape[0]
        return np.eye(d, dtype=np.float64) - self.basis @ self.basis.T

    def apply(self, emb: np.ndarray) -> np.ndarray:
        """Project rows and re-normalise them."""
        out = emb - (emb @ self.basis) @ self.basis.T
        return _normalize(out).astype(np.float32)


def fit_subspace(means: np.ndarray, rank: int) -> SubspaceProjection:
    """The projection removing the top-``rank`` left singular directions of the centred means (L × d)."""
    centred = means - means.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred.T, full_matrices=False)  # centred.T is d × L
    return SubspaceProjection(basis=u[:, :rank].copy(), singular_values=s)


@dataclass(frozen=True)
class LanguageCentering:
    """Each text minus its language's mean embedding, then re-normalised (the language must be known)."""

    languages: tuple[str, ...]
    means: np.ndarray  # L × d

    def apply(self, emb: np.ndarray, languages: Sequence[str]) -> np.ndarray:
        if len(languages) != len(emb):
            raise ValueError(f"{len(emb)} embeddings but {len(languages)} languages")
        row = {lang: i for i, lang in enumerate(self.languages)}
        unknown = sorted(set(languages) - set(row))
        if unknown:
            raise PolyirError(
                f"this model centres per language and has no mean for {', '.join(unknown)} "
                f"(fitted on {', '.join(self.languages)}); refit with those languages or use --method subspace"
            )
        idx = np.fromiter((row[lang] for lang in languages), dtype=np.int64, count=len(languages))
        return _normalize(emb - self.means[idx]).astype(np.float32)


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
