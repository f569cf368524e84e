"""Training pairs from parallel news: a sentence finds its surrounding document text, in every language.

For news-domain adaptation with hybrid batches: a line-aligned news task (NTREX sentences: candidates
grouped by document) becomes a :class:`ParallelQACorpus` whose pair id is the line, whose query in
language L is the sentence and whose positive in L is the window of the document's other sentences
around it (``window`` lines before and after). Monolingual batches then pair a sentence with its own
language's context; cross-lingual batches with another language's. Only one half of a document split
is used (``part``), the same split the experiment's guard sets use, so the other half stays a test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from polyir.data.split import split_by_document
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry, RetrievalTask
from polyir.errors import DataFormatError, EmptySelectionError

DEFAULT_WINDOW = 3


def _line_of(candidate_id: str) -> int:
    try:
        return int(candidate_id.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        raise DataFormatError(f"candidate id {candidate_id!r} does not end in :<line>; expected a line-aligned news task") from None


def news_context_pairs(task: RetrievalTask, *, window: int = DEFAULT_WINDOW, name: str = "news") -> ParallelQACorpus:
    """One pair per line: query = the sentence, positive = up to ``window`` document lines each side."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    docs: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for c in task.candidates:
        docs.setdefault((c.language, c.group), []).append((_line_of(c.id), c.text))
    entries: dict[int, dict[str, QAEntry]] = {}
    for (lang, _doc), lines in docs.items():
        lines.sort()
        for i, (line, text) in enumerate(lines):
            context = [t for _, t in lines[max(0, i - window) : i] + lines[i + 1 : i + 1 + window]]
            if not context:  # a one-line document has nothing to find
                continue
            entries.setdefault(line, {})[lang] = QAEntry(query=text, positive=" ".join(context))
    pairs = [ParallelPair(pair_id=f"{name}:{line}", entries=by_lang) for line, by_lang in sorted(entries.items())
             if len(by_lang) >= 2]
    if not pairs:
        raise EmptySelectionError(f"{task.name}: no line with document context in two or more languages")
    return ParallelQACorpus(name=name, pairs=pairs)


def news_training_corpus(
    dataset: str,
    languages: Sequence[str] | None,
    *,
    part: str = "validation",
    fraction: float = 0.5,
    seed: int = 0,
    window: int = DEFAULT_WINDOW,
    data_dir: Path | str | None = None,
) -> ParallelQACorpus:
    """Load a line-aligned news task, keep one half of its document split, and build the pairs."""
    from polyir.data.load import load_task_or_path

    if part not in ("validation", "test", "all"):
        raise ValueError(f"part must be validation, test or all, not {part!r}")
    task = load_task_or_path(dataset, data_dir=data_dir, languages=languages)
    if part != "all":
        first, second = split_by_document(task, fraction, seed)
        task = first if part == "validation" else second
    return news_context_pairs(task, window=window, name=f"{dataset}-{part}")
