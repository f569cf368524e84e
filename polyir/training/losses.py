"""Training losses as classes behind one protocol, summed by a weighted objective.

A micro-batch's texts are a :class:`StepTexts`: the queries, the passages (positives, then hard
negatives) and whatever a loss appends (alignment adds translation partners). Each loss may
``prepare`` the texts before the forward (append texts, look up targets) and is then called on the
embeddings of all of them; :class:`WeightedObjective` sums ``weight * loss``. Adding a loss means
writing one class and listing it in :func:`build_objective`; the step, GradCache and DDP need no change.

The tensor maths are the pure functions of :mod:`polyir.training.loss` and
:mod:`polyir.training.regularizers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from polyir.sampling import Batch
from polyir.training.config import TrainConfig
from polyir.training.data import passage_texts
from polyir.training.loss import info_nce_loss
from polyir.training.regularizers import TeacherEmbeddings, alignment_loss, distillation_loss, pick_translations

__all__ = ["StepTexts", "Loss", "InfoNCE", "Matryoshka", "Distillation", "Alignment", "WeightedObjective",
           "build_objective", "truncate_embeddings"]


@dataclass
class StepTexts:
    """The texts of one micro-batch and what the losses prepared for it."""

    batch: Batch
    queries: list[str]
    passages: list[str]  # positives, then hard negatives, then texts a loss appended
    n_q: int  # the batch's own queries
    n_p: int  # the batch's own passages (positives + hard negatives)
    n_pos: int  # positives
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, batch: Batch, hard_negatives: int) -> StepTexts:
        passages, n_pos = passage_texts(batch, hard_negatives)
        return cls(batch, list(batch.queries), passages, len(batch), len(passages), n_pos)


class Loss(Protocol):
    """One term of the training objective."""

    name: str

    def prepare(self, texts: StepTexts) -> None:
        """Add texts or targets before the forward (most losses need nothing)."""

    def __call__(self, q: Tensor, p: Tensor, texts: StepTexts) -> Tensor | None:
        """The term on the embeddings of ``texts.queries`` and ``texts.passages`` (None: no term this batch)."""


class InfoNCE:
    """Contrastive loss of each query against the batch's positives and hard negatives."""

    name = "info_nce"

    def __init__(self, temperature: float, *, symmetric: bool = False, cross_device: bool = False):
        self.temperature = temperature
        self.symmetric = symmetric
        self.cross_device = cross_device

    def prepare(self, texts: StepTexts) -> None:
        return None

    def __call__(self, q: Tensor, p: Tensor, texts: StepTexts) -> Tensor:
        own = p[: texts.n_p]
        negatives = own[texts.n_pos :] if own.shape[0] > texts.n_pos else None
        return info_nce_loss(
            q[: texts.n_q],
            own[: texts.n_pos],
            negatives,
            temperature=self.temperature,
            symmetric=self.symmetric,
            cross_device=self.cross_device,
        )


def truncate_embeddings(x: Tensor, dim: int) -> Tensor:
    """The first ``dim`` dimensions of each row, re-normalised (``x`` itself when ``dim`` covers it all)."""
    if dim >= x.shape[-1]:
        return x
    return F.normalize(x[..., :dim].float(), dim=-1)


class Matryoshka:
    """A loss summed over embeddings cut to leading dimensions (Matryoshka representation learning).

    ``weights[i] * loss(q[:, :dims[i]], p[:, :dims[i]])`` summed over ``dims``, each cut re-normalised; a
    dimension equal to the embedding's is the loss itself. It wraps any loss behind the protocol (the
    trainer wraps InfoNCE) and, like it, sees only embeddings, so GradCache needs nothing more. The
    value of each dimension's term is kept for the log (``loss_<name>@<dim>``).
    """

    def __init__(self, loss: Loss, dims: Sequence[int], weights: Sequence[float] | None = None):
        if not dims:
            raise ValueError("Matryoshka needs at least one dimension")
        if weights is not None and len(weights) != len(dims):
            raise ValueError(f"{len(weights)} weights for {len(dims)} dimensions")
        self.loss = loss
        self.name = loss.name
        self.dims = [int(d) for d in dims]
        self.weights = [float(w) for w in weights] if weights is not None else [1.0] * len(self.dims)
        self.parts: dict[str, list[float]] = {}

    def prepare(self, texts: StepTexts) -> None:
        self.loss.prepare(texts)

    def __call__(self, q: Tensor, p: Tensor, texts: StepTexts) -> Tensor | None:
        full = q.shape[-1]
        too_large = [d for d in self.dims if d > full]
        if too_large:
            raise ValueError(f"matryoshka dimension {too_large[0]} is larger than the embedding's {full}")
        total: Tensor | None = None
        for dim, weight in zip(self.dims, self.weights):
            if weight == 0:
                continue
            value = self.loss(truncate_embeddings(q, dim), truncate_embeddings(p, dim), texts)
            if value is None:
                continue
            self.parts.setdefault(f"{self.name}@{dim}", []).append(float(value.detach()))
            term = value if weight == 1.0 else weight * value
            total = term if total is None else total + term
        return total

    def take_parts(self) -> dict[str, list[float]]:
        parts, self.parts = self.parts, {}
        return parts


class Distillation:
    """Keep the student's embeddings (or in-batch similarities) close to a frozen teacher's."""

    name = "distill"

    def __init__(self, teacher: TeacherEmbeddings, *, kind: str, temperature: float, device: torch.device):
        self.teacher = teacher
        self.kind = kind
        self.temperature = temperature
        self.device = device

    def prepare(self, texts: StepTexts) -> None:
        texts.extras[self.name] = (
            self.teacher.lookup(texts.queries[: texts.n_q], "query", self.device),
            self.teacher.lookup(texts.passages[: texts.n_p], "passage", self.device),
        )

    def __call__(self, q: Tensor, p: Tensor, texts: StepTexts) -> Tensor:
        teacher_q, teacher_p = texts.extras[self.name]
        return distillation_loss(
            q[: texts.n_q], p[: texts.n_p], teacher_q, teacher_p, kind=self.kind, temperature=self.temperature  # type: ignore[arg-type]
        )


class Alignment:
    """Pull each text and a translation of it together; the translations are appended to the texts."""

    name = "align"

    def __init__(self, pair_index: dict[tuple[str, str], Any], *, on: str, seed: int, rank: int):
        self.pair_index = pair_index
        self.sides = [s for s in ("query", "passage") if on in (s, "both")]
        self.seed = seed
        self.rank = rank

    def prepare(self, texts: StepTexts) -> None:
        seed = (self.seed, texts.batch.step, self.rank)
        rows: dict[str, tuple[list[int], int]] = {}
        for side in self.sides:
            salt = 0 if side == "query" else 1
            picked, extra = pick_translations(texts.batch.examples, self.pair_index, (*seed, salt), side)
            target = texts.queries if side == "query" else texts.passages
            rows[side] = (picked, len(target))
            target.extend(extra)
        texts.extras[self.name] = rows

    def __call__(self, q: Tensor, p: Tensor, texts: StepTexts) -> Tensor | None:
        terms = []
        for side, (picked, start) in texts.extras[self.name].items():
            if picked:
                emb = q if side == "query" else p
                terms.append(alignment_loss(emb[picked], emb[start : start + len(picked)]))
        return torch.stack(terms).mean() if terms else None


class WeightedObjective:
    """The sum of ``weight * loss`` over its terms; with several terms, each term's value is kept for the log."""

    def __init__(self, terms: Sequence[tuple[float, Loss]]):
        if not terms:
            raise ValueError("an objective needs at least one loss")
        self.terms = list(terms)
        self.parts: dict[str, list[float]] = {}

    def prepare(self, texts: StepTexts) -> None:
        for _, loss in self.terms:
            loss.prepare(texts)

    def __call__(self, q: Tensor, p: Tensor, texts: StepTexts) -> Tensor:
        total: Tensor | None = None
        for weight, loss in self.terms:
            value = loss(q, p, texts)
            if value is None:
                continue
            if len(self.terms) > 1:
                self.parts.setdefault(loss.name, []).append(float(value.detach()))
            term = value if weight == 1.0 else weight * value
            total = term if total is None else total + term
        assert total is not None, "the first term (InfoNCE) is always defined"
        return total

    def take_parts(self) -> dict[str, list[float]]:
        """The recorded term values since the last call (for a log row), with those of wrapped losses."""
        parts, self.parts = self.parts, {}
        for _, loss in self.terms:
            take = getattr(loss, "take_parts", None)
            if take is not None:
                parts.update(take())
        return parts


def build_objective(
    config: TrainConfig,
    *,
    cross_device: bool,
    rank: int,
    device: torch.device,
    teacher: TeacherEmbeddings | None = None,
    pair_index: dict[tuple[str, str], Any] | None = None,
) -> WeightedObjective:
    """The configured objective: InfoNCE (summed over ``optim.matryoshka_dims`` when set), plus
    distillation and alignment when their weights are > 0."""
    o, r = config.optim, config.regularization
    contrastive: Loss = InfoNCE(o.temperature, symmetric=o.symmetric_loss, cross_device=cross_device)
    if o.matryoshka_dims:
        contrastive = Matryoshka(contrastive, o.matryoshka_dims, o.matryoshka_weights)
    terms: list[tuple[float, Loss]] = [(1.0, contrastive)]
    if r.distill:
        if teacher is None:
            raise ValueError("distillation needs the teacher's embeddings")
        terms.append(
            (r.distill_weight, Distillation(teacher, kind=r.distill_loss, temperature=r.distill_temperature, device=device))
        )
    if r.align:
        terms.append((r.align_weight, Alignment(pair_index or {}, on=r.align_on, seed=config.seed, rank=rank)))
    return WeightedObjective(terms)
