"""Splitting a task by document."""

from __future__ import annotations


def test_split_by_document_ignores_an_excluded_copy_in_another_document():
    """A sentence repeated verbatim in a second document excludes that copy, yet belongs to its own."""
    from polyir.data.parallel import build_sentence_task
    from polyir.data.split import split_by_document

    texts = {"en": ["a", "b", "c", "d"], "sn": ["w", "x", "y", "w"]}  # sn line 4 repeats line 1
    task = build_sentence_task("t", texts, documents=["d1", "d1", "d2", "d2"])
    assert "sn:4" in task.excluded["sn:1"]
    first, second = split_by_document(task, 0.5, 0)
    assert {q.id for q in first.queries} | {q.id for q in second.queries} == {q.id for q in task.queries}
