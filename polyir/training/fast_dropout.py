"""Dropout with cheaper random masks on CPU: the same dropout (drop probability ``p``, survivors
scaled by ``1 / (1 - p)``), drawn from a quarter of the random numbers.

PyTorch's CPU dropout draws one Mersenne-Twister number per element (``bernoulli_``): on a 2-core CPU
that was 231 ms of a 1,303 ms training step of multilingual-e5-small in bf16, more than all the
attention matmuls (``bench/step_profile.py --top-ops``). Here each 64-bit draw of the seeded generator
gives four 16-bit uniforms, and an element survives when its uniform is at or above ``round(p * 2^16)``:
the drop probability is ``p`` to within 2^-17, the masks follow ``torch.manual_seed`` and differ from
``torch.nn.Dropout``'s draws, so a run with it is not bit-identical to one without.

``use_fast_dropout(model)`` swaps every ``nn.Dropout`` of a transformers model for :class:`FastDropout`
and points its attention at ``polyir_sdpa``: PyTorch's SDPA (the model's default) when nothing is dropped
(evaluation), and with attention dropout the same softmax attention, masked by the same attention
mask, with the cheap masks. GPUs keep PyTorch's own fused dropout (``optim.fast_dropout: auto``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["fast_dropout", "FastDropout", "use_fast_dropout", "ATTENTION_NAME"]

ATTENTION_NAME = "polyir_sdpa"
_INT16_LOW = -(1 << 15)
_INT64_LOW, _INT64_HIGH = -(1 << 63), (1 << 63) - 1


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | None = None) -> torch.Tensor:
    """A bool tensor of ``shape``, each element True with probability ``1 - p`` (to within 2^-17)."""
    n = math.prod(shape)
    words = torch.randint(_INT64_LOW, _INT64_HIGH, ((n + 3) // 4,), dtype=torch.int64, device=device)
    uniforms = words.view(torch.int16)[:n].view(shape)
    return uniforms >= _INT16_LOW + round(p * 65536)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``nn.functional.dropout(x, p, training)`` with :func:`keep_mask`'s masks."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    return x * keep_mask(x.shape, p, x.device) * (1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` (same ``p``, same ``train()`` / ``eval()`` behaviour) drawing :func:`keep_mask` masks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def _attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
               **kwargs: Any) -> tuple[torch.Tensor, None]:
    """SDPA without dropout; with it, softmax attention (the same mask, scale and layout) and cheap masks."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or not module.training:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=scaling, **kwargs)
    if key.shape[1] != query.shape[1]:  # grouped-query attention: repeat the key/value heads
        repeat = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(repeat, dim=1), value.repeat_interleave(repeat, dim=1)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probs = fast_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, _attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def use_fast_dropout(model: nn.Module) -> int:
    """Swap ``model``'s dropouts for :class:`FastDropout` and its attention for ``polyir_sdpa`` where the
    model uses SDPA; returns how many dropout modules were swapped."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p, inplace=child.inplace))
                swapped += 1
    _register()  # idempotent: the name maps to the same function each time
    for sub in model.modules():
        config = getattr(sub, "config", None)
        if getattr(config, "_attn_implementation", None) == "sdpa" and hasattr(sub, "set_attn_implementation"):
            sub.set_attn_implementation(ATTENTION_NAME)
    return swapped
