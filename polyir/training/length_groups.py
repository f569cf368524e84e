"""One tower's forward in groups of similar length: the same embeddings, less padding.

A batch of texts padded to its longest one wastes compute on padding: for MLQA-R's hybrid batches of
32, about 57% of the passage tokens and 44% of the query tokens are padding. Cutting the batch into
groups of similar length and padding each group only to its own longest text removes most of it,
while the batch, its in-batch negatives and the loss stay exactly what the sampler drew (the groups'
embeddings are put back in the batch's order before the loss). Dropout draws differ from an
ungrouped forward, as they differ between any two runs of the same step.

Only right padding is grouped: with left padding a model's absolute positions move with the amount
of padding, so regrouping would change the embeddings; such a batch is forwarded whole.

The groups minimise ``padded tokens + overhead × groups`` (a dynamic programme over the sorted
lengths): ``overhead`` is the fixed cost of one more forward, in tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = ["GROUP_OVERHEAD_TOKENS", "length_groups", "forward_by_length"]

# What one more forward costs, in padded tokens: the default of optim.length_group_overhead (chosen with
# bench/train_speed.py on a 2-core CPU; see docs/performance.md).
GROUP_OVERHEAD_TOKENS = 256


def length_groups(lengths: Sequence[int], overhead: int | None = None) -> list[np.ndarray]:
    """Indices into ``lengths`` in groups of similar length (shortest group first), covering each once.

    ``overhead``: the cost of one more group in tokens (default :data:`GROUP_OVERHEAD_TOKENS`)."""
    overhead = GROUP_OVERHEAD_TOKENS if overhead is None else overhead
    if overhead < 0:
        raise ValueError(f"overhead must be >= 0, got {overhead}")
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    sorted_len = np.asarray(lengths, dtype=np.int64)[order]
    n = len(order)
    if n == 0:
        return []
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    start = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):  # best[j]: cheapest split of the j shortest texts; a group ends at j-1
        widths = np.arange(j, 0, -1)  # group sizes for starts 0..j-1
        costs = best[:j] + widths * sorted_len[j - 1] + overhead
        i = int(np.argmin(costs))
        best[j], start[j] = costs[i], i
    groups, j = [], n
    while j > 0:
        groups.append(order[start[j]:j])
        j = int(start[j])
    return groups[::-1]


def forward_by_length(
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    features: Mapping[str, torch.Tensor],
    *,
    padding_side: str = "right",
    overhead: int | None = None,
) -> torch.Tensor:
    """``forward(features)`` for a right-padded batch, computed group by group; rows in the batch's order."""
    mask = features["attention_mask"]
    lengths = mask.sum(dim=1).tolist()
    groups = length_groups(lengths, overhead) if padding_side == "right" else []
    if len(groups) <= 1:
        return forward(dict(features))
    device = mask.device
    outs = []
    for group in groups:
        width = int(max(lengths[i] for i in group))
        rows = torch.as_tensor(group, device=device)
        outs.append(forward({k: v[rows][:, :width] if v.dim() == 2 else v[rows] for k, v in features.items()}))
    order = torch.as_tensor(np.concatenate(groups), device=device)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=device)
    return torch.cat(outs)[inverse]
