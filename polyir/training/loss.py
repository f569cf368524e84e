"""InfoNCE over in-batch (and hard) negatives, with an optional symmetric term and cross-device negatives.

Pure functions over embedding tensors, so the loss can be tested on hand-built vectors and reused by
GradCache (which calls it on detached embeddings). Scores are cosine similarities divided by a
temperature; row ``i`` of ``positives`` is the positive of query ``i``; every other positive of the
batch, and every hard negative of the batch, is a negative for every query.

Cross-device negatives: with ``cross_device=True`` in a ``torch.distributed`` run, each rank scores its
own queries against the positives (and hard negatives) of *all* ranks. The gather keeps the autograd
graph for the local slice, and its backward sums, into that slice, the gradients every rank computed
for it; with gradients averaged across ranks afterwards (as the trainer does), the update equals that of
one device holding the whole global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

__all__ = ["info_nce_loss", "gather_with_grad", "distributed_world_size", "scores"]


def distributed_world_size() -> int:
    """Number of processes in the default group (1 when torch.distributed is not initialised)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _row_counts(x: Tensor) -> list[int]:
    """Rows of ``x`` on every rank (one small all-gather)."""
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    counts = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, n)
    return [int(c.item()) for c in counts]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather rows of every rank (sizes may differ); backward returns this rank's summed gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: tuple[int, ...]) -> Tensor:  # type: ignore[override]
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return torch.cat([p[:s] for p, s in zip(parts, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        # Every rank holds gradients for every slice (its queries scored all of them): sum them, then
        # keep the rows of this rank. all_reduce works on gloo and nccl alike (gloo lacks reduce_scatter).
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """Rows of ``x`` from every rank, concatenated in rank order, and where this rank's rows start.

    Outside a distributed run (or with one process) this is ``(x, 0)``.
    """
    if distributed_world_size() == 1:
        return x, 0
    sizes = tuple(_row_counts(x))
    offset = sum(sizes[: dist.get_rank()])
    if max(sizes) == 0:
        return x, offset
    return _GatherWithGrad.apply(x, sizes), offset


def scores(queries: Tensor, candidates: Tensor, temperature: float) -> Tensor:
    """Cosine similarity matrix (queries × candidates) divided by the temperature, in float32."""
    q = F.normalize(queries.float(), dim=-1)
    c = F.normalize(candidates.float(), dim=-1)
    return q @ c.T / temperature


def info_nce_loss(
    queries: Tensor,
    positives: Tensor,
    negatives: Tensor | None = None,
    *,
    temperature: float = 0.05,
    symmetric: bool = False,
    cross_device: bool = False,
) -> Tensor:
    """Mean InfoNCE loss of a batch: each query against all positives and all hard negatives.

    ``queries`` and ``positives`` are ``(B, d)`` with row ``i`` a matching pair; ``negatives`` is
    ``(N, d)``: hard negatives of any example, each one a candidate for every query. With
    ``symmetric`` the passage→query loss (each positive against all queries) is added and the two
    terms averaged. With ``cross_device`` candidates (and, for the symmetric term, queries) are
    gathered from all ranks; the loss stays the mean over this rank's queries.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if queries.shape != positives.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and positives {tuple(positives.shape)} differ")
    b = queries.shape[0]
    if b == 0:
        raise ValueError("empty batch")
    gather = cross_device and distributed_world_size() > 1
    q = queries.float()
    p = positives.float()
    if gather:
        all_p, offset = gather_with_grad(p)
    else:
        all_p, offset = p, 0
    candidates = all_p
    if negatives is not None and negatives.shape[0] > 0:
        n = negatives.float()
        all_n = gather_with_grad(n)[0] if gather else n
        candidates = torch.cat([all_p, all_n], dim=0)
    elif gather:
        # Ranks must issue the same collectives, forward and backward: gather an empty block that
        # is part of the graph (a slice of p) to stay in step with ranks that have hard negatives.
        all_n = gather_with_grad(p[:0])[0]
        if all_n.shape[0]:
            candidates = torch.cat([all_p, all_n], dim=0)
    labels = torch.arange(b, device=q.device) + offset
    loss = F.cross_entropy(scores(q, candidates, temperature), labels)
    if symmetric:
        all_q = gather_with_grad(q)[0] if gather else q
        loss = 0.5 * (loss + F.cross_entropy(scores(p, all_q, temperature), labels))
    return loss
