"""How one micro-batch's gradient is computed: directly, or with GradCache.

Both are a :class:`Backward`: called with the model, the texts and the loss on their embeddings,
they accumulate the loss' gradient into ``.grad`` and return the loss value. The trainer picks one
at set-up, so the step has no GradCache branch.

- :class:`DirectBackward`: one forward per tower with its graph, one backward.
- :class:`GradCache`: embeddings without a graph, in chunks; the loss' gradient on those cached
  embeddings; then each chunk re-run with its graph and the cached gradient back-propagated. Memory
  grows with the chunk, not the batch. Dropout masks of the no-graph pass are replayed, so the
  gradients equal the direct path's.

Under DDP, ``sync=False`` (every micro-batch but a step's last) runs every backward under
``no_sync``; with ``sync=True`` only the last backward (GradCache: the last chunk's) all-reduces, which
covers the gradients accumulated before it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch

from polyir.training.distributed import DistContext, TrainModel

__all__ = ["autocast", "Backward", "DirectBackward", "GradCache", "gradcache_backward"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Scale = Callable[[torch.Tensor], torch.Tensor]


def autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager:
    """Autocast for a precision mode (``fp32``: none)."""
    if mode == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)


class Backward(Protocol):
    """Accumulate the gradient of ``loss_fn(q_emb, p_emb)`` into ``.grad``; return the loss value."""

    def __call__(
        self, model: TrainModel, queries: list[str], passages: list[str], loss_fn: LossFn, *,
        sync: bool = True, scale: Scale | None = None,
    ) -> float: ...


class DirectBackward:
    """Both towers forward with their graph, one backward."""

    def __init__(self, precision: str = "fp32"):
        self.precision = precision

    def __call__(
        self, model: TrainModel, queries: list[str], passages: list[str], loss_fn: LossFn, *,
        sync: bool = True, scale: Scale | None = None,
    ) -> float:
        device = model.encoder.device
        with model.sync(sync):
            with autocast(device, self.precision):
                q = model.embed(queries, "query")
                p = model.embed(passages, "passage")
            loss = loss_fn(q, p)
            (scale(loss) if scale is not None else loss).backward()
        return float(loss.detach())


@contextlib.contextmanager
def _replay_rng(state: dict[str, Any], device: torch.device) -> Iterator[None]:
    """Run a block with a saved torch RNG state, leaving the global RNG where it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state["cpu"])
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], device)
        yield


class GradCache:
    """Large batches in little memory: cached embeddings, then chunk-wise re-runs with their graph."""

    def __init__(self, chunk_size: int, precision: str = "fp32"):
        self.chunk_size = chunk_size
        self.precision = precision

    def _embed_no_grad(self, model: TrainModel, texts: list[str], kind: str) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Embeddings of ``texts`` in chunks without a graph, and the RNG state before each chunk."""
        encoder, chunk = model.encoder, self.chunk_size
        device = encoder.device
        outs, states = [], []
        for start in range(0, len(texts), chunk):
            state: dict[str, Any] = {"cpu": torch.get_rng_state()}
            if device.type == "cuda":
                state["cuda"] = torch.cuda.get_rng_state(device)
            states.append(state)
            with torch.no_grad(), autocast(device, self.precision):
                outs.append(encoder.embed(texts[start : start + chunk], kind).float())
        if not outs:
            return torch.zeros((0, encoder.dim), device=device), states
        return torch.cat(outs), states

    def __call__(
        self, model: TrainModel, queries: list[str], passages: list[str], loss_fn: LossFn, *,
        sync: bool = True, scale: Scale | None = None,
    ) -> float:
        device, chunk = model.encoder.device, self.chunk_size
        q, q_states = self._embed_no_grad(model, queries, "query")
        p, p_states = self._embed_no_grad(model, passages, "passage")
        q = q.detach().requires_grad_(True)
        p = p.detach().requires_grad_(True)
        loss = loss_fn(q, p)
        (scale(loss) if scale is not None else loss).backward()  # reaches the cached embeddings only
        assert q.grad is not None and p.grad is not None
        runs = [
            (texts, kind, grads, states[i], start)
            for texts, kind, grads, states in ((queries, "query", q.grad, q_states), (passages, "passage", p.grad, p_states))
            for i, start in enumerate(range(0, len(texts), chunk))
        ]
        for n, (texts, kind, grads, state, start) in enumerate(runs):
            with model.sync(sync and n == len(runs) - 1), _replay_rng(state, device):
                with autocast(device, self.precision):
                    emb = model.embed(texts[start : start + chunk], kind).float()
                emb.backward(grads[start : start + chunk])
        return float(loss.detach())


def gradcache_backward(
    encoder: Any,
    queries: list[str],
    passages: list[str],
    loss_fn: LossFn,
    *,
    chunk_size: int,
    precision: str = "fp32",
    scale: Scale | None = None,
) -> float:
    """GradCache on one process: accumulate into ``.grad`` the gradient of ``loss_fn(q_emb, p_emb)``.

    ``scale`` (e.g. a GradScaler's ``scale``) is applied to the loss before its backward. Returns the
    (unscaled) loss value.
    """
    model = TrainModel(encoder, DistContext())
    return GradCache(chunk_size, precision)(model, queries, passages, loss_fn, scale=scale)
