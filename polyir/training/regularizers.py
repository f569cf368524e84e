"""Regularisers that keep what the base model knew while it learns a new skill.

- ``distillation_loss``: keep the student's embeddings (``mse``) or its in-batch similarity
  distributions (``kl``) close to a frozen teacher's (by default the base model itself).
- ``alignment_loss``: pull the embeddings of translations of one text together (1 - cosine).
- ``TeacherEmbeddings``: the teacher's embeddings of training texts, computed once (and cached on disk
  for a static corpus), so distillation costs no teacher forward pass per step.

All are zero when the student already agrees with its target, and pure functions of tensors so they
can be checked on hand-built vectors and reused under GradCache.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DistillKind = Literal["mse", "kl"]


def distillation_loss(
    student_q: Tensor,
    student_p: Tensor,
    teacher_q: Tensor,
    teacher_p: Tensor,
    *,
    kind: DistillKind = "mse",
    temperature: float = 0.05,
) -> Tensor:
    """Distance of the student from the teacher on one batch.

    ``mse``: mean squared distance between unit-normalised student and teacher embeddings (queries and
    passages alike; equals ``2 - 2 cos``). ``kl``: KL(teacher || student) between the softmax
    distributions of each query over the batch's passages (cosine / temperature); it constrains only
    the geometry retrieval uses, leaving the student free elsewhere.
    """
    if student_q.shape != teacher_q.shape or student_p.shape != teacher_p.shape:
        raise ValueError("student and teacher embeddings differ in shape")
    sq, sp = F.normalize(student_q.float(), dim=-1), F.normalize(student_p.float(), dim=-1)
    tq, tp = F.normalize(teacher_q.float(), dim=-1), F.normalize(teacher_p.float(), dim=-1)
    if kind == "mse":
        both_s, both_t = torch.cat([sq, sp]), torch.cat([tq, tp])
        return ((both_s - both_t) ** 2).sum(dim=-1).mean()
    if kind == "kl":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        log_s = F.log_softmax(sq @ sp.T / temperature, dim=-1)
        log_t = F.log_softmax(tq @ tp.T / temperature, dim=-1)
        return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
    raise ValueError(f"unknown distillation kind {kind!r}")


def alignment_loss(a: Tensor, b: Tensor) -> Tensor:
    """Mean ``1 - cos(a_i, b_i)`` over rows: zero when each text and its translation coincide."""
    if a.shape != b.shape:
        raise ValueError(f"aligned rows differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.shape[0] == 0:
        return a.sum() * 0.0
    return (1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1)).mean()


class TeacherEmbeddings:
    """A frozen teacher's embeddings of texts, looked up by (kind, text).

    ``precompute`` encodes a static corpus once (through ``EmbeddingCache`` when ``cache`` is true, so
    later runs with the same teacher and texts skip it); ``lookup`` serves a batch and encodes only texts
    it has not seen (e.g. after a change of corpus).
    """

    def __init__(self, teacher, *, precision: str = "fp32", batch_size: int = 64, cache: bool = True):
        self.teacher = teacher
        self.precision = precision
        self.batch_size = batch_size
        self.cache = cache
        self._rows: dict[str, dict[str, int]] = {"query": {}, "passage": {}}
        self._blocks: dict[str, list[np.ndarray]] = {"query": [], "passage": []}
        self._matrix: dict[str, np.ndarray | None] = {"query": None, "passage": None}
        self._fingerprint: str | None = None

    def _encode(self, texts: list[str], kind: str, show_progress: bool) -> np.ndarray:
        def compute() -> np.ndarray:
            was = self.teacher.st.training
            self.teacher.st.eval()
            try:
                return self.teacher.encode(
                    texts, kind, batch_size=self.batch_size, precision=self.precision,
                    show_progress=show_progress, desc=f"teacher {kind}s",
                )
            finally:
                self.teacher.st.train(was)

        if not self.cache:
            return compute()
        from polyir.models.cache import EmbeddingCache

        if self._fingerprint is None:
            self._fingerprint = self.teacher.fingerprint()
        arr, _ = EmbeddingCache().get_or_compute(self._fingerprint, kind, self.precision, texts, compute)
        return arr

    def _add(self, kind: str, texts: Iterable[str], show_progress: bool = False) -> None:
        rows = self._rows[kind]
        new = list(dict.fromkeys(t for t in texts if t not in rows))
        if not new:
            return
        emb = self._encode(new, kind, show_progress).astype(np.float32)
        rows.update((t, i) for i, t in enumerate(new, start=len(rows)))
        self._blocks[kind].append(emb)
        self._matrix[kind] = None

    def precompute(self, queries: Iterable[str], passages: Iterable[str], *, show_progress: bool = True) -> None:
        """Encode every text of a static corpus once."""
        self._add("query", sorted(set(queries)), show_progress)
        self._add("passage", sorted(set(passages)), show_progress)

    def lookup(self, texts: Sequence[str], kind: str, device: torch.device | str = "cpu") -> Tensor:
        """The teacher's embeddings of ``texts`` as a ``(len(texts), d)`` float tensor (no gradient)."""
        self._add(kind, texts)
        if self._matrix[kind] is None:
            self._matrix[kind] = np.concatenate(self._blocks[kind])
            self._blocks[kind] = [self._matrix[kind]]  # type: ignore[list-item]
        idx = np.fromiter((self._rows[kind][t] for t in texts), dtype=np.int64, count=len(texts))
        return torch.from_numpy(self._matrix[kind][idx]).to(device)  # type: ignore[index]

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())


def pick_translations(
    examples: Sequence, pairs: dict[tuple[str, str], object], seed: Sequence[int], side: str
) -> tuple[list[int], list[str]]:
    """For each example, a translation of its query (``side="query"``) or positive (``"passage"``).

    The translation's language is drawn (seeded by ``seed``, e.g. (run seed, step, rank)) among the
    pair's other languages; examples whose pair has no other language are skipped. Returns the
    example indices that got one and the translated texts.
    """
    rng = np.random.default_rng(list(seed))
    rows, texts = [], []
    for i, e in enumerate(examples):
        pair = pairs.get((e.corpus, e.pair_id))
        if pair is None:
            continue
        own = e.query_language if side == "query" else e.passage_language
        others = [lang for lang in sorted(pair.entries) if lang != own]  # type: ignore[attr-defined]
        if not others:
            continue
        entry = pair.entries[others[int(rng.integers(len(others)))]]  # type: ignore[attr-defined]
        rows.append(i)
        texts.append(entry.query if side == "query" else entry.positive)
    return rows, texts
