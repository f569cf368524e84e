"""LoRA adapters (through ``peft``) on an Encoder: attach, save merged or as an adapter, restore.

:func:`attach_lora` wraps the encoder's transformer in a ``peft`` model: LoRA matrices on the chosen
linear layers (``auto``: query, key, value and every ``dense`` of the encoder layers), every other
weight frozen. Saving the encoder as it is (:meth:`Encoder.save`) then writes an *adapter folder*:
the sentence-transformers layout with ``adapter_config.json`` + ``adapter_model.safetensors`` in
place of the transformer's weights. ``SentenceTransformer(folder)`` (and so polyir's
``load_encoder``) detects ``adapter_config.json``, loads the base model it names
(``base_model_name_or_path``, an absolute folder or a hub id) and applies the adapter.
:func:`merged_encoder` is a copy with the adapter merged into the weights (``merge_and_unload``),
which saves as a plain model folder; the encoder being trained is left untouched, so saving mid-run
never perturbs training.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from polyir.errors import PolyirError

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "AUTO_TARGETS",
    "auto_target_modules",
    "attach_lora",
    "peft_model_of",
    "merged_encoder",
    "save_encoder",
    "load_adapter_weights",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
AUTO_TARGETS = ("query", "key", "value", "dense")
_LAYER = re.compile(r"(^|\.)(layer|layers)\.\d+\.")  # a module inside a numbered encoder layer


def auto_target_modules(model: torch.nn.Module) -> list[str]:
    """The linear layers ``target_modules: auto`` means: query, key, value and dense of every encoder
    layer (a BERT's or XLM-R's attention projections, attention output and feed-forward; not the pooler)."""
    return [
        name for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in AUTO_TARGETS and _LAYER.search(name)
    ]


def peft_model_of(encoder: Any) -> Any:
    """The encoder's ``peft`` model (None when it has no adapter attached by :func:`attach_lora`)."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return None
    model = encoder.st[0].auto_model if len(encoder.st) else None
    return model if isinstance(model, PeftModel) else None


def _base_location(model: torch.nn.Module) -> str | None:
    """Where the base weights load from, as an adapter folder should name them (a local folder: absolute)."""
    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    if not name:
        return None
    path = Path(str(name)).expanduser()
    return str(path.resolve()) if path.exists() else str(name)


def attach_lora(
    encoder: Any,
    *,
    r: int,
    alpha: float,
    dropout: float,
    target_modules: Sequence[str] | Literal["auto"] = "auto",
) -> list[str]:
    """Wrap the encoder's transformer with LoRA adapters (in place); only the adapters stay trainable.

    Returns the adapted module names. Errors (no matching layer, a model that already holds an adapter)
    name the ``adapter.*`` key to change."""
    from peft import LoraConfig, get_peft_model

    model = encoder.st[0].auto_model
    if peft_model_of(encoder) is not None or getattr(model, "_hf_peft_config_loaded", False):
        raise PolyirError(
            f"adapter.kind=lora: {encoder.spec} already holds an adapter; train from its base model, or from a "
            "folder saved with adapter.save=merged"
        )
    if target_modules == "auto":
        targets = auto_target_modules(model)
        if not targets:
            raise PolyirError(
                f"adapter.target_modules=auto: {type(model).__name__} has no query/key/value/dense linear layers "
                "in numbered encoder layers; list the module names (e.g. adapter.target_modules=[q_proj,v_proj])"
            )
    else:
        targets = list(target_modules)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers deprecations reached through peft
            peft_model = get_peft_model(model, config)
    except ValueError as exc:  # peft: none of the target modules was found
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PolyirError(f"adapter.target_modules={targets}: {first}") from None
    peft_model.peft_config["default"].base_model_name_or_path = _base_location(model)
    encoder.st[0].model = peft_model
    for name, param in encoder.st.named_parameters():  # the adapters only (peft already froze the transformer)
        param.requires_grad_("lora_" in name)
    return targets


def merged_encoder(encoder: Any) -> Any:
    """A copy of ``encoder`` with its adapter merged into the weights (``encoder`` itself without one)."""
    if peft_model_of(encoder) is None:
        return encoder
    from polyir.models.encoder import Encoder

    st = copy.deepcopy(encoder.st)
    st[0].model = st[0].model.merge_and_unload()
    st.train(False)
    merged = Encoder(st, encoder.settings, spec=encoder.spec, device=str(encoder.device))
    merged.centering = encoder.centering
    return merged


def save_encoder(encoder: Any, path: Path | str, mode: Literal["merged", "adapter"] = "merged") -> Path:
    """Save ``encoder``: merged (a plain model folder) or, with an adapter attached, as an adapter folder."""
    return (merged_encoder(encoder) if mode == "merged" else encoder).save(path)


def load_adapter_weights(encoder: Any, folder: Path | str) -> None:
    """Load the adapter weights of an adapter folder (``adapter_model.safetensors``) into the adapter
    :func:`attach_lora` attached (exactly: a resumed run continues bit for bit)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    model = peft_model_of(encoder)
    folder = Path(folder)
    file = folder / ADAPTER_WEIGHTS
    if model is None:
        raise PolyirError(f"{folder}: the model has no adapter to load weights into (adapter.kind is none)")
    if not file.is_file():
        raise PolyirError(
            f"{folder} holds no LoRA adapter ({ADAPTER_WEIGHTS}); it was not trained with adapter.kind=lora"
        )
    state = load_file(str(file), device=str(encoder.device))
    result = set_peft_model_state_dict(model, state)
    unexpected = list(getattr(result, "unexpected_keys", None) or [])
    missing = sorted(k for k in getattr(result, "missing_keys", None) or [] if "lora_" in k)
    if unexpected or missing:
        raise PolyirError(
            f"{folder}: its adapter does not fit this model (unexpected {unexpected[:3]}, missing "
            f"{missing[:3]}); resume with the adapter.* settings it was trained with"
        )
