"""Distributed set-up: the process group torchrun describes, the device of each rank, small collectives,
and the model wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`.

Gradient synchronisation is PyTorch's own: DDP buckets the gradients and overlaps their all-reduce
with the backward pass. A step may run several forwards and backwards (two towers, gradient
accumulation, GradCache chunks): every backward but the step's last runs under
:meth:`TrainModel.no_sync`, so the gradients are all-reduced once per optimizer step.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistContext",
    "init_distributed",
    "device_for",
    "all_reduce_mean",
    "broadcast_object",
    "all_gather_object",
    "barrier",
    "TrainModel",
]


@dataclass
class DistContext:
    """This process' place in the run (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistContext:
    """Join the process group torchrun describes (or one already initialised); a no-op otherwise."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    # Destroyed at exit, not at the end of train(): a second train() in the same process then reuses
    # the group, whereas re-creating the default group over torchrun's store can meet the first
    # group's stale rendezvous keys and hang.
    atexit.register(_destroy_group)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def _destroy_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(spec: str, d: DistContext) -> str:
    """The device a ``model.device`` setting means on this rank (``auto`` under torchrun: its GPU)."""
    if spec == "auto" and d.active and torch.cuda.is_available():
        return f"cuda:{d.local_rank}"
    return spec


def all_reduce_mean(values: list[float], d: DistContext, device: torch.device) -> list[float]:
    """The mean of each value over ranks (the values themselves with one process)."""
    if not d.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / d.world_size).tolist()


def broadcast_object(obj: Any, d: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not d.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any, d: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    if not d.active:
        return [obj]
    out: list[Any] = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(d: DistContext) -> None:
    """Wait for every rank (a no-op with one process)."""
    if d.active:
        dist.barrier()


class TrainModel:
    """The encoder's module as training calls it: through DDP under torchrun, directly otherwise.

    DDP starts every rank from rank 0's weights (it broadcasts them once, at construction) and
    averages gradients in the backward of a synchronised pass. ``find_unused_parameters``: a
    transformer's pooler (and any head the embedding does not use) gets no gradient; buffers are not
    re-broadcast before every forward (a BERT's buffers are constant ids).
    """

    def __init__(self, encoder: Any, d: DistContext, *, group_overhead: int | None = None):
        self.encoder = encoder
        self.group_overhead = group_overhead  # None: one forward per tower
        self.module: torch.nn.Module = encoder.st
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        if d.active:
            device_ids = [encoder.device.index] if encoder.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.module,
                device_ids=device_ids,
                broadcast_buffers=False,
                find_unused_parameters=True,
                gradient_as_bucket_view=True,
            )

    def embed(self, texts: Sequence[str], kind: str) -> torch.Tensor:
        """Embeddings with a graph, through DDP when distributed (so its backward hooks fire); with
        ``group_overhead``, forwarded in groups of similar length (:mod:`polyir.training.length_groups`)."""
        features = self.encoder.tokenize(texts, kind)
        model = self.ddp if self.ddp is not None else self.module

        def forward(f: dict[str, torch.Tensor]) -> torch.Tensor:
            return model(f)["sentence_embedding"]

        if self.group_overhead is None:
            return forward(features)
        from polyir.training.length_groups import forward_by_length

        return forward_by_length(forward, features, padding_side=self.encoder.tokenizer.padding_side,
                                 overhead=self.group_overhead)

    @contextlib.contextmanager
    def sync(self, enabled: bool) -> Iterator[None]:
        """A forward + backward whose gradients are all-reduced (``enabled``) or only accumulated."""
        if self.ddp is None or enabled:
            yield
            return
        with self.ddp.no_sync():
            yield
