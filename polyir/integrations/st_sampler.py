"""polyir's hybrid / monolingual / cross-lingual batches as a sentence-transformers batch sampler.

    from polyir.integrations import corpus_to_rows, polyir_batch_sampler
    rows = corpus_to_rows(polyir.load_corpus("mlqa-r"))          # or your own language-pair rows
    args = SentenceTransformerTrainingArguments(..., batch_sampler=polyir_batch_sampler(alpha=0.5))
    SentenceTransformerTrainer(model, args, train_dataset=rows, loss=MultipleNegativesRankingLoss(model))

The batches are drawn by polyir's own :class:`~polyir.sampling.HybridBatchSampler` (one per process
rank, all seeded alike) from the corpora read out of the rows (:mod:`polyir.integrations.st_data`);
this module only maps each drawn example (pair id, query language, passage language) to its row. So
every invariant of ``polyir/sampling.py`` holds: one batch kind per global step on every process, no
pair id and no positive text twice in a global batch, a fixed seed gives the same batches.

Processes: accelerate (which the trainer uses) gives process r the batches r, r + W, r + 2W, ... of
the sampler. So for each global step this sampler yields W batches, rank 0's share first: process r
gets rank r's share of the same global batch. W is ``torch.distributed``'s world size (1 without it)
unless given.

Epochs: ``set_epoch(e)`` (the trainer calls it) makes the next iteration yield polyir's epoch e,
whatever was iterated before: the sampler state at the start of each epoch is kept, so epoch e's
batches depend only on the seed and e (a resumed run skipping into an epoch sees the same batches).

Hard-negative columns go to the loss as they are; polyir's own trainer additionally drops a negative
that equals another example's positive, which a batch sampler cannot do.

The sampler hides its metadata columns (languages, pair id, corpus) from the rows the trainer
collates, with ``dataset.set_format(columns=<text columns>)`` on the dataset it is given (in place):
sentence-transformers would otherwise tokenize them as extra texts. ``dataset.reset_format()`` shows
them again; ``hide_columns=False`` leaves the dataset alone (then bring your own collator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from polyir.integrations.st_data import RowColumns, RowIndex, rows_to_corpora
from polyir.sampling import Batch, HybridBatchSampler, SamplerConfig, SamplerConfigError

try:
    from sentence_transformers.base.sampler import DefaultBatchSampler
except ImportError:  # sentence-transformers < 6
    from sentence_transformers.sampler import DefaultBatchSampler  # type: ignore[no-redef]

__all__ = ["PolyirBatchSampler", "polyir_batch_sampler"]


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class PolyirBatchSampler(DefaultBatchSampler):
    """Batches of dataset row indices drawn by polyir's samplers (see the module docstring).

    ``batch_size``, ``drop_last`` and ``seed`` come from the trainer (per-device batch size,
    ``dataloader_drop_last``, ``seed``); ``sampler`` holds the other :class:`~polyir.sampling.SamplerConfig`
    options (``strategy``, ``alpha``, ``crosslingual_pairing``, ``language_sampling``, ...; a ``seed``
    there wins over the trainer's). ``columns`` names the dataset's columns. ``generator`` is unused:
    polyir's sampler has its own seeded generator.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
        *,
        sampler: Mapping[str, Any] | None = None,
        columns: RowColumns | None = None,
        world_size: int | None = None,
        hide_columns: bool = True,
    ) -> None:
        super().__init__(
            dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
            generator=generator, seed=seed,
        )
        options = dict(sampler or {})
        if "batch_size" in options:
            raise SamplerConfigError(
                "batch_size comes from the trainer (per_device_train_batch_size), not from the sampler options"
            )
        options.setdefault("seed", seed if seed is not None else 0)
        options.setdefault("drop_last", bool(drop_last))
        self.config = SamplerConfig.from_dict({**options, "batch_size": batch_size})
        self.columns = columns or RowColumns()
        self.world_size = int(world_size) if world_size is not None else _world_size()
        self.index: RowIndex = rows_to_corpora(dataset, self.columns)
        self.index.check_complete(
            monolingual=self.config.needs_monolingual, crosslingual=self.config.needs_crosslingual
        )
        self._ranks = [
            HybridBatchSampler(self.index.corpora, self.config, rank=r, world_size=self.world_size)
            for r in range(self.world_size)
        ]
        self._epoch_states: dict[int, list[dict[str, Any]]] = {0: [s.state_dict() for s in self._ranks]}
        self.batches_per_epoch = self._ranks[0].batches_per_epoch
        if hide_columns:
            fmt = dataset.format
            dataset.set_format(
                type=fmt.get("type"), columns=self.columns.text_columns(dataset.column_names),
                **(fmt.get("format_kwargs") or {}),
            )

    # ------------------------------------------------------------------ polyir side
    @property
    def samplers(self) -> list[HybridBatchSampler]:
        """polyir's sampler of each rank (``describe()``, ``stats``)."""
        return self._ranks

    def _seek(self, epoch: int) -> None:
        """Put every rank's sampler at the start of ``epoch`` (replaying epochs not yet seen)."""
        known = max(e for e in self._epoch_states if e <= epoch)
        for s, state in zip(self._ranks, self._epoch_states[known]):
            s.load_state_dict(state)
        for e in range(known, epoch):
            for _ in range(self.batches_per_epoch):
                self._next_global()
            self._epoch_states[e + 1] = [s.state_dict() for s in self._ranks]

    def _next_global(self) -> list[Batch]:
        batches = [s.next_batch() for s in self._ranks]
        kinds = {(b.kind, b.languages, b.corpus, b.step) for b in batches}
        if len(kinds) != 1:  # the samplers of all ranks draw one global batch: never happens
            raise RuntimeError(f"ranks drew different batches at one step: {sorted(kinds)}")
        return batches

    def rows(self, batch: Batch) -> list[int]:
        """The dataset rows of one rank's batch."""
        return [self.index.row(e.corpus, e.pair_id, e.query_language, e.passage_language) for e in batch]

    def global_batches(self, epoch: int) -> Iterator[list[Batch]]:
        """polyir's batches of ``epoch``, one list of the W ranks' shares per global step."""
        self._seek(epoch)
        for _ in range(self.batches_per_epoch):
            yield self._next_global()
        self._epoch_states.setdefault(epoch + 1, [s.state_dict() for s in self._ranks])

    # ------------------------------------------------------------------ torch side
    def __iter__(self) -> Iterator[list[int]]:
        for batches in self.global_batches(self.epoch):
            for b in batches:
                yield self.rows(b)

    def __len__(self) -> int:
        return self.batches_per_epoch * self.world_size


def polyir_batch_sampler(
    strategy: str = "hybrid",
    alpha: float = 0.5,
    *,
    language: str | tuple[str, str] = ("query_language", "passage_language"),
    pair_id: str = "pair_id",
    corpus_column: str | None = None,
    query: str | None = None,
    positive: str | None = None,
    world_size: int | None = None,
    hide_columns: bool = True,
    **sampler_options: Any,
) -> Callable[..., PolyirBatchSampler]:
    """A ``batch_sampler`` for ``SentenceTransformerTrainingArguments``: the trainer calls it with its
    dataset, batch size, drop_last and seed. ``sampler_options`` are further SamplerConfig keys
    (``crosslingual_pairing``, ``language_sampling``, ``temperature``, ``languages``, ...)."""
    options = {"strategy": strategy, "alpha": alpha, **sampler_options}
    SamplerConfig.from_dict({**options, "batch_size": 1})  # a bad option fails here, not mid-setup
    columns = RowColumns(language=language, pair_id=pair_id, corpus=corpus_column, query=query, positive=positive)
    columns.language_columns  # noqa: B018 - validates the language column names

    def build(
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
    ) -> PolyirBatchSampler:
        return PolyirBatchSampler(
            dataset, batch_size, drop_last, valid_label_columns, generator, seed,
            sampler=options, columns=columns, world_size=world_size, hide_columns=hide_columns,
        )

    return build
