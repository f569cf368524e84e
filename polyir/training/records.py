"""What training reports: a step to the ``on_step`` callback, a whole run to the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyir.errors import PolyirError
from polyir.models.encoder import Encoder
from polyir.sampling import Batch

__all__ = ["StepInfo", "TrainResult", "NonFiniteLossError"]


class NonFiniteLossError(PolyirError):
    """The training loss became NaN or infinite; the message names the step."""


@dataclass
class StepInfo:
    """What one optimizer step did on this rank (given to ``train``'s ``on_step`` callback)."""

    step: int  # 1-based optimizer step just finished
    total_steps: int
    rank: int
    world_size: int
    loss: float  # training loss of the step, mean over micro-batches and ranks
    lr: float
    batches: list[Batch]  # this rank's micro-batches of the step


@dataclass
class TrainResult:
    """The outcome of :func:`~polyir.training.trainer.train` (the same on every rank)."""

    run_dir: Path
    steps: int  # optimizer steps done (including those before a resume)
    total_steps: int  # steps planned
    stopped_early: bool
    best_step: int | None  # step of the best validation metric (None: no validation)
    best_metric: str | None  # e.g. "val_mul_map"
    best_value: float | None
    final_metrics: dict[str, float]  # the last validation row (empty without validation)
    losses: list[float]  # training loss per step of this call (mean over ranks)
    best_dir: Path
    last_dir: Path
    seconds: float  # wall-clock time of this call
    resumed_from: Path | None = None
    validation: list[dict[str, Any]] = field(default_factory=list)  # validation rows of this call
    encoder: Encoder | None = field(default=None, repr=False)  # the trained model (as in last/)
