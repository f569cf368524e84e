"""Weight averaging of a fine-tuned model with its base (WiSE-FT, Wortsman et al. 2022).

``merged = (1 - w) * base + w * tuned`` for every floating-point tensor. Fine-tuning for one skill
(cross-lingual QA retrieval) can loosen what the base model knew (translation alignment on other
domains); interpolating back towards the base keeps much of both. ``w = 0`` gives the base and
``w = 1`` the fine-tuned model, bit for bit (``torch.lerp`` is exact at both ends).
"""

from __future__ import annotations

import copy
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


def merge_models(base: str, tuned: str, weight: float, output: Path | str, *, device: str = "cpu") -> Path:
    """Load two model specs, merge them, and save a sentence-transformers folder at ``output`` with
    ``merge.json`` (the two specs, the weight, versions) beside the weights."""
    from polyir.models.resolve import load_encoder
    from polyir.runinfo import versions, write_json

    merged = merge_encoders(load_encoder(base, device=device), load_encoder(tuned, device=device), weight)
    path = merged.save(output)
    write_json(path / "merge.json", {"base": base, "tuned": tuned, "weight": weight, "versions": versions()})
    return path
