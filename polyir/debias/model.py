"""Fit a de-biasing map on an encoder's embeddings and save the result as a model folder.

``subspace`` becomes a sentence-transformers ``Dense`` module (no bias, identity activation, weight
``P``) placed before ``Normalize``: ``SentenceTransformer(DIR)`` and every polyir command apply it
unchanged. ``center`` needs each text's language, so it is kept beside the weights
(``language_means.npy``) and applied by polyir's encoder where languages are known (evaluation tasks);
commands that cannot know a query's language (index, search, serve) refuse such a model clearly.
The folder's ``polyir_debias.json`` records the fitting source, languages, counts, rank, side, the
base model's fingerprint and the singular values (read by ``polyir.debias_record.read_debias_record``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyir.debias.projection import (
    LanguageCentering,
    SubspaceProjection,
    check_fit_input,
    fit_subspace,
    language_means,
)
from polyir.debias.source import FitTexts
from polyir.debias_record import DEBIAS_FILE, MEANS_FILE, read_debias_record
from polyir.errors import PolyirError
from polyir.models.encoder import Encoder, Precision, _st_modules


@dataclass(frozen=True)
class DebiasFit:
    """A fitted map and what it was fitted on."""

    method: str
    rank: int | None
    languages: list[str]
    means: np.ndarray  # L × d, raw (pre-projection) mean embeddings of the fitting texts
    counts: dict[str, int]
    source: str
    side: str
    base_fingerprint: str
    singular_values: list[float] = field(default_factory=list)
    projection: SubspaceProjection | None = None

    @property
    def centering(self) -> LanguageCentering:
        return LanguageCentering(tuple(self.languages), self.means)

    def record(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "rank": self.rank,
            "languages": self.languages,
            "counts": self.counts,
            "source": self.source,
            "side": self.side,
            "base_fingerprint": self.base_fingerprint,
            "singular_values": self.singular_values,
        }


def embed_fit_texts(
    encoder: Encoder, texts: FitTexts, *, precision: Precision = "fp32", batch_size: int = 64, show_progress: bool = True
) -> dict[str, np.ndarray]:
    """Embeddings by language (both sides pooled per language when ``texts`` holds both)."""
    out: dict[str, list[np.ndarray]] = {}
    for side, by_lang in texts.texts.items():
        for lang, items in by_lang.items():
            emb = encoder.encode(
                items, side, batch_size=batch_size, precision=precision,  # type: ignore[arg-type]
                show_progress=show_progress, desc=f"fit {lang} {side}s",
            )
            out.setdefault(lang, []).append(emb)
    return {lang: np.concatenate(parts) for lang, parts in out.items()}


def fit_from_embeddings(
    embeddings: dict[str, np.ndarray], *, method: str = "subspace", rank: int | None = None,
    source: str = "", side: str = "passage", base_fingerprint: str = "",
) -> DebiasFit:
    """Fit ``method`` on embeddings by language (the numpy core, shared by the command and the studies)."""
    counts = {lang: int(len(e)) for lang, e in sorted(embeddings.items())}
    rank = check_fit_input(counts, rank, method)
    langs, means = language_means(embeddings)
    projection = fit_subspace(means, rank) if method == "subspace" else None
    sv = projection.singular_values if projection is not None else np.linalg.svd(
        (means - means.mean(0)).T, compute_uv=False
    )
    return DebiasFit(
        method=method, rank=rank if method == "subspace" else None, languages=langs, means=means, counts=counts,
        source=source, side=side, base_fingerprint=base_fingerprint,
        singular_values=[float(v) for v in sv], projection=projection,
    )


def fit_debias(
    encoder: Encoder, texts: FitTexts, *, method: str = "subspace", rank: int | None = None,
    precision: Precision = "fp32", batch_size: int = 64, show_progress: bool = True,
) -> DebiasFit:
    """Embed the fitting texts with ``encoder`` and fit the map."""
    check_fit_input(texts.counts(), rank, method)  # fail before encoding
    if getattr(encoder, "centering", None) is not None or has_projection(encoder):
        raise PolyirError(f"{encoder.spec} already has a de-biasing map; fit on its base model instead")
    embeddings = embed_fit_texts(encoder, texts, precision=precision, batch_size=batch_size, show_progress=show_progress)
    side = "both" if len(texts.texts) == 2 else next(iter(texts.texts))
    return fit_from_embeddings(
        embeddings, method=method, rank=rank, source=texts.source, side=side, base_fingerprint=encoder.fingerprint()
    )


def has_projection(encoder: Encoder) -> bool:
    """True when the encoder's module list already holds polyir's projection."""
    return any(getattr(m, "_polyir_debias", False) for m in encoder.st)


def split_projection(encoder: Encoder) -> tuple[Encoder, np.ndarray] | None:
    """(the encoder without its projection, the projection matrix), or None when it has none.

    The projection is linear and sits after pooling, so an evaluation can encode with the model
    underneath (sharing its embedding cache) and apply the matrix in numpy: the same vectors after
    re-normalisation, at no extra encoding cost."""
    from sentence_transformers import SentenceTransformer

    modules = list(encoder.st)
    at = [i for i, m in enumerate(modules) if getattr(m, "_polyir_debias", False)]
    if len(at) != 1:
        return None
    dense = modules[at[0]]
    rest = modules[: at[0]] + modules[at[0] + 1 :]
    if not any(type(m).__name__ == "Normalize" for m in rest):
        return None  # the projection was the last step before an added Normalize: keep the model whole
    raw = Encoder.__new__(Encoder)
    raw.__dict__.update(encoder.__dict__)
    raw.st = SentenceTransformer(modules=rest, device="cpu", prompts=dict(encoder.st.prompts or {}))
    raw.st.to(encoder.device)
    raw._int8 = None
    matrix = dense.linear.weight.detach().float().cpu().numpy().astype(np.float64)
    return raw, matrix


def apply_matrix(emb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Rows times a projection matrix (Dense computes ``W x``), re-normalised, as float32."""
    out = emb.astype(np.float64) @ matrix.T
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def projection_module(projection: SubspaceProjection):
    """The projection as a bias-free, identity-activation sentence-transformers Dense module."""
    modules = _st_modules()
    matrix = torch.tensor(projection.matrix, dtype=torch.float32)
    d = matrix.shape[0]
    dense = modules.Dense(d, d, bias=False, activation_function=torch.nn.Identity(), init_weight=matrix)
    dense._polyir_debias = True
    return dense


def debiased_encoder(encoder: Encoder, fit: DebiasFit) -> Encoder:
    """An Encoder applying ``fit`` after ``encoder`` (shares its weights)."""
    from sentence_transformers import SentenceTransformer

    if fit.method == "center":
        enc = encoder.with_settings()
        enc.centering = fit.centering
        enc.spec = f"{encoder.spec}+center"
        return enc
    assert fit.projection is not None
    modules = list(encoder.st)
    names = [type(m).__name__ for m in modules]
    dense = projection_module(fit.projection)
    if "Normalize" in names:
        at = names.index("Normalize")
        modules = modules[:at] + [dense] + modules[at:]
    else:
        modules = modules + [dense, _st_modules().Normalize()]
    st = SentenceTransformer(modules=modules, device="cpu", prompts=dict(encoder.st.prompts or {}))
    enc = Encoder(st, encoder.settings, spec=f"{encoder.spec}+debias", device=str(encoder.device))
    return enc


def save_debiased(encoder: Encoder, fit: DebiasFit, output: Path | str, *, overwrite: bool = False) -> Path:
    """Write the de-biased model folder (built beside ``output``, swapped in when complete)."""
    from polyir.atomic import atomic_folder, write_json, write_with
    from polyir.runinfo import versions

    with atomic_folder(output, overwrite=overwrite) as staging:
        # the record first: the model card Encoder.save writes names the fitting source and languages from it
        write_json(staging / DEBIAS_FILE, {**fit.record(), "base_model": encoder.spec, "versions": versions()})
        debiased_encoder(encoder, fit).save(staging)
        if fit.method == "center":
            write_with(staging / MEANS_FILE, lambda fh: np.save(fh, fit.means.astype(np.float32)))
    return Path(output)


def attach_centering(encoder: Encoder, folder: Path | str) -> Encoder:
    """Give a loaded encoder its folder's per-language centring (no-op for other models)."""
    record = read_debias_record(folder)
    if record is None:
        return encoder
    for module in encoder.st:  # mark the loaded projection so it is not fitted twice
        if type(module).__name__ == "Dense" and record.get("method") == "subspace":
            module._polyir_debias = True
    if record.get("method") != "center":
        return encoder
    means_path = Path(folder) / MEANS_FILE
    if not means_path.is_file():
        raise PolyirError(f"{folder}: {DEBIAS_FILE} says method center but {MEANS_FILE} is missing")
    means = np.load(means_path)
    languages = tuple(record.get("languages") or ())
    if means.shape != (len(languages), encoder.dim):
        raise PolyirError(
            f"{means_path}: shape {means.shape} does not match {len(languages)} languages × dimension {encoder.dim}"
        )
    encoder.centering = LanguageCentering(languages, means.astype(np.float64))
    return encoder
