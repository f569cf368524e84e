"""Split a retrieval task into two disjoint halves by document (``Candidate.group``).

Why: a validation half to choose settings on and a test half to report, with no document (and so no
sentence or translation of it) on both sides. Both the queries and the candidate pool are split.
"""

from __future__ import annotations

import random

from polyir.data.types import RetrievalTask
from polyir.errors import DataFormatError, EmptySelectionError


def query_documents(task: RetrievalTask) -> dict[str, str]:
    """Query id -> its document: the one group shared by its relevant candidates (by its excluded ones,
    e.g. its own sentence, when it has no relevant candidate).

    Exclusions do not decide: a sentence whose identical string recurs in another document excludes
    that copy too, but it still belongs to the document of its translations. A query whose relevant
    candidates lie in several groups has no single document: ``DataFormatError``.
    """
    group_of = {c.id: c.group for c in task.candidates}
    out: dict[str, str] = {}
    for q in task.queries:
        ids = task.relevant.get(q.id, frozenset()) or task.excluded.get(q.id, frozenset())
        groups = {group_of[c] for c in ids if c in group_of}
        if len(groups) != 1 or "" in groups:
            raise DataFormatError(
                f"{task.name}: query {q.id!r} has candidates in {len(groups)} groups"
                f" ({', '.join(sorted(groups)[:3]) or 'none'}); a split by document needs exactly one"
            )
        out[q.id] = groups.pop()
    return out


def _subset(task: RetrievalTask, docs: set[str], doc_of_query: dict[str, str], part: str,
            info: dict[str, object]) -> RetrievalTask:
    queries = [q for q in task.queries if doc_of_query[q.id] in docs]
    candidates = [c for c in task.candidates if c.group in docs]
    qids = {q.id for q in queries}
    return RetrievalTask(
        name=task.name,
        queries=queries,
        candidates=candidates,
        relevant={k: v for k, v in task.relevant.items() if k in qids},
        notes={**task.notes, "split": {**info, "part": part, "documents": sorted(docs)}},
        excluded={k: v for k, v in task.excluded.items() if k in qids},
    )


def split_by_document(task: RetrievalTask, fraction: float = 0.5,
                      seed: int = 0) -> tuple[RetrievalTask, RetrievalTask]:
    """(first, second): ``round(fraction * n)`` documents (at least 1, at most n - 1) drawn at random
    (``random.Random(seed)`` over the sorted document ids) go to ``first``, the rest to ``second``.

    A document is a ``Candidate.group`` (NTREX: the document id); a query belongs to the document of
    its relevant candidates. Queries, pool, relevance and exclusions are all split, so the halves are
    two independent test sets. The same (task documents, fraction, seed) always give the same split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}")
    doc_of_query = query_documents(task)
    docs = sorted({c.group for c in task.candidates} | set(doc_of_query.values()))
    if len(docs) < 2:
        raise EmptySelectionError(f"{task.name}: {len(docs)} document(s); a split needs at least two")
    order = list(docs)
    random.Random(seed).shuffle(order)
    k = min(len(docs) - 1, max(1, round(fraction * len(docs))))
    info: dict[str, object] = {"by": "document", "fraction": fraction, "seed": seed,
                               "documents_total": len(docs)}
    first, second = set(order[:k]), set(order[k:])
    return (_subset(task, first, doc_of_query, "first", info),
            _subset(task, second, doc_of_query, "second", info))
