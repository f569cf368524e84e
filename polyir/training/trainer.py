"""Fine-tuning: :func:`train` runs a whole run from a :class:`~polyir.training.config.TrainConfig`.

The run is assembled from modules with one job each (this one is the entry point and keeps the
public names other modules import):

- :mod:`polyir.training.data`: training sources, the seeded held-out split;
- :mod:`polyir.training.distributed`: torchrun's process group, DDP (gradients all-reduced by
  PyTorch, bucketed and overlapped with the backward pass), small collectives;
- :mod:`polyir.training.losses`: InfoNCE, distillation and alignment behind one protocol, summed by a
  weighted objective;
- :mod:`polyir.training.gradcache`: a micro-batch's gradient, directly or with GradCache;
- :mod:`polyir.training.validation`: the held-out loss batches, the retrieval pool, ``held_out_metrics``;
- :mod:`polyir.training.checkpoint`: checkpoints, RNG states, resume checks;
- :mod:`polyir.training.rundir`: the run folder's rules and log;
- :mod:`polyir.training.loop`: the set-up and the loop that wire them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from polyir.data.types import ParallelQACorpus
from polyir.training.checkpoint import CHECKPOINT_STATE, latest_checkpoint
from polyir.training.config import TrainConfig
from polyir.training.data import memory_sources, split_pairs
from polyir.training.gradcache import gradcache_backward
from polyir.training.loop import Trainer
from polyir.training.records import NonFiniteLossError, StepInfo, TrainResult
from polyir.training.rundir import FAILED_MARKER
from polyir.training.validation import held_out_metrics

__all__ = [
    "StepInfo",
    "TrainResult",
    "train",
    "split_pairs",
    "gradcache_backward",
    "held_out_metrics",
    "latest_checkpoint",
    "CHECKPOINT_STATE",
    "FAILED_MARKER",
    "NonFiniteLossError",
]


def train(
    config: TrainConfig,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    corpora: Sequence[ParallelQACorpus] | None = None,
) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data`` and write a run folder at ``config.output_dir``.

    Run folder (written by rank 0 only)::

        config.yaml              the resolved config
        run.json                 seed, versions, timings, final metrics, best step, sampler stats
        log.jsonl                {"type": "train", step, epoch, loss, lr, pairs_per_s, kinds} every
                                 ``log_every`` steps; {"type": "validation", step, val_loss,
                                 val_mo_map, val_cr_map, val_mul_map, val_rank_distance, best}
        validation_split.json    held-out pair ids per corpus
        best/  last/             sentence-transformers folders (best by validation.metric; final)
        checkpoints/step-N/      model/ + trainer_state.pt (optimizer, scheduler, sampler, RNG, step)

    An existing ``output_dir``:

    - ``resume_from`` (a checkpoint, a run folder, or ``latest``) continues from that checkpoint; the
      log rows after it are dropped and written again. ``latest`` with no checkpoint in
      ``output_dir`` is an error naming the folder (never a silent fresh start);
    - otherwise a folder that holds a run is refused, unless ``overwrite`` is set or the run there
      stopped on a non-finite loss (``failed.json``): then its run files, checkpoints, ``best/`` and
      ``last/`` are deleted and training starts afresh (other files in the folder are left alone).

    A NaN or infinite training loss stops the run before that step's update with a
    :class:`NonFiniteLossError` naming the step; ``failed.json`` records it, the folder keeps what was
    written before (log, checkpoints), and rerunning the same command (or with ``overwrite``) starts
    afresh, while ``--resume latest`` continues from the last checkpoint (a deterministic run reaches
    the same loss again: change the config and start afresh instead).

    ``corpora`` trains on these in-memory corpora instead of loading ``config.data.train``: the config's
    sources are replaced by one ``memory:NAME:sha256:…`` entry per corpus (a content fingerprint, by
    size, no weights), so ``config.yaml`` records what was trained on and a resume with other corpora
    is refused like any other change of the training data.

    ``on_step`` is called on every rank after each optimizer step (after validation and checkpoint).
    Under ``torchrun`` the process group is created here on first use (and destroyed when the process
    exits, so several ``train`` calls in one process share it); an existing one is reused.
    """
    given: list[ParallelQACorpus] | None = None
    if corpora is not None:
        given = list(corpora)
        sources = memory_sources(given)
        config = config.model_copy(update={"data": config.data.model_copy(update={"train": sources})})
    trainer = Trainer(config, on_step, given)
    trainer.setup()
    return trainer.run()
