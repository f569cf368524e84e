"""Weight averaging of a fine-tuned model with its base (WiSE-FT, Wortsman et al. 2022).

``merged = (1 - w) * base + w * tuned`` for every floating-point tensor. Fine-tuning for one skill
(cross-lingual QA retrieval) can loosen what the base model knew (translation alignment on other
domains); interpolating back towards the base keeps much of both. ``w = 0`` gives the base and
``w = 1`` the fine-tuned model, bit for bit (``torch.lerp`` is exact at both ends).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch

from polyir.errors import PolyirError
from polyir.models.encoder import Encoder


def merge_state_dicts(
    base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """Interpolate two state dicts of the same architecture; integer tensors are taken from ``tuned``."""
    if not 0.0 <= weight <= 1.0:
        raise PolyirError(f"merge weight must lie in [0, 1], got {weight}")
    missing = sorted(set(tuned) - set(base))
    extra = sorted(set(base) - set(tuned))
    if missing or extra:
        raise PolyirError(
            "the two models have different parameters "
            f"(only in tuned: {missing[:3]}{'…' if len(missing) > 3 else ''}; "
            f"only in base: {extra[:3]}{'…' if len(extra) > 3 else ''}); merge needs one architecture"
        )
    out: dict[str, torch.Tensor] = {}
    for name, t in tuned.items():
        b = base[name]
        if b.shape != t.shape:
            raise PolyirError(f"parameter {name!r} has shape {tuple(b.shape)} in base, {tuple(t.shape)} in tuned")
        if not t.is_floating_point():
            out[name] = t.clone()
            continue
        out[name] = torch.lerp(b.to(t.dtype), t, weight)
    return out


def merge_encoders(base: Encoder, tuned: Encoder, weight: float) -> Encoder:
    """A new Encoder with ``tuned``'s modules and settings and the interpolated weights."""
    if base.settings.pooling != tuned.settings.pooling:
        raise PolyirError(
            f"base pools by {base.settings.pooling!r}, tuned by {tuned.settings.pooling!r}: not one architecture"
        )
    if len(base.tokenizer) != len(tuned.tokenizer):
        raise PolyirError(
            f"the tokenizers differ ({len(base.tokenizer)} vs {len(tuned.tokenizer)} tokens); merge needs one vocabulary"
        )
    state = merge_state_dicts(base.st.state_dict(), tuned.st.state_dict(), weight)
    st = copy.deepcopy(tuned.st)
    st.load_state_dict(state)
    return Encoder(st, tuned.settings, spec=f"merge({base.spec}, {tuned.spec}, w={weight:g})", device=str(tuned.device))


def _io_reason(exc: Exception) -> str:
    """The OS message inside a safetensors I/O error (``IoError(Os { ..., message: "No space left" })``)."""
    found = re.search(r'message: "([^"]+)"', str(exc))
    return found.group(1) if found else str(exc)


def merge_models(
    base: str, tuned: str, weight: float, output: Path | str, *, device: str = "cpu", overwrite: bool = False
) -> Path:
    """Load two model specs, merge them, and save a sentence-transformers folder at ``output`` with
    ``merge.json`` (the two specs, the weight, versions) beside the weights.

    The folder is built beside ``output`` and swapped in only when complete (weights, configs and
    ``merge.json``): a full disk or a crash leaves the old folder (or none) and no half model. An
    existing model folder is replaced only with ``overwrite``; a non-empty folder that holds no model is
    refused. Both checks run before any model is loaded."""
    from safetensors import SafetensorError

    from polyir.atomic import OutputError, atomic_folder
    from polyir.models.resolve import load_encoder
    from polyir.runinfo import versions, write_json

    output = Path(output)
    with atomic_folder(output, overwrite=overwrite) as staging:
        merged = merge_encoders(load_encoder(base, device=device), load_encoder(tuned, device=device), weight)
        try:
            merged.save(staging)
        except SafetensorError as exc:  # safetensors reports a failed write (a full disk) as its own error
            raise OutputError(f"cannot write {output}: {_io_reason(exc)}") from exc
        write_json(staging / "merge.json", {"base": base, "tuned": tuned, "weight": weight, "versions": versions()})
    return output
