"""What ``polyir translate`` reads: a parallel QA corpus from a JSONL file, a SQuAD file or a dataset name.

* ``.jsonl`` / ``.jsonl.gz``: the polyir training format (``polyir.data.jsonl``);
* ``.json``: a SQuAD v1.1/v2.0 file in the source language. Each answerable question becomes a pair
  whose positive is the sentence holding its first answer (``answer_start``) and whose context is
  the paragraph (the LAReQA layout), or the paragraph itself when the answer position is unknown;
* anything else: a registered dataset (``polyir data list``), read as a training corpus.

Only the entries in the source language are translated; a pair without one is counted and left out.
"""

from __future__ import annotations

from pathlib import Path

from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DatasetNotFoundError, EmptySelectionError
from polyir.translate.segment import split_sentences


def answer_sentence(context: str, start: int | None, language: str) -> str:
    """The sentence of ``context`` that holds character ``start`` (the paragraph when unknown)."""
    if start is None:
        return context
    pos = 0
    for sentence in split_sentences(context, language):
        at = context.find(sentence, pos)
        if at < 0:
            break
        if at <= start < at + len(sentence) or start < at:
            return sentence
        pos = at + len(sentence)
    return context


def read_squad_corpus(path: Path, language: str) -> ParallelQACorpus:
    """A SQuAD file as LAReQA-style pairs (positive = answer sentence, context = paragraph)."""
    from polyir.data.squad import read_squad

    _, questions, _ = read_squad(path)
    pairs = []
    for q in questions:
        sentence = answer_sentence(q.context, q.answer_start, language)
        context = q.context if sentence != q.context else None
        pairs.append(ParallelPair(q.id, {language: QAEntry(query=q.question, positive=sentence, context=context)}))
    return ParallelQACorpus(name=path.stem, pairs=pairs)


def read_input(source: str, language: str, *, data_dir: Path | str | None = None) -> ParallelQACorpus:
    """The corpus ``source`` names (rules in the module docstring); an empty one is an error."""
    from polyir.data.jsonl import read_parallel_jsonl
    from polyir.data.registry import REGISTRY, load_corpus

    path = Path(source).expanduser()
    if source in REGISTRY and not path.exists():
        corpus = load_corpus(source, data_dir=data_dir)
    elif path.name.endswith((".jsonl", ".jsonl.gz")):
        if not path.is_file():
            raise DatasetNotFoundError(f"{source}: no such file")
        corpus = read_parallel_jsonl(path)
    elif path.name.endswith(".json"):
        if not path.is_file():
            raise DatasetNotFoundError(f"{source}: no such file")
        corpus = read_squad_corpus(path, language)
    else:
        known = ", ".join(sorted(REGISTRY))
        raise DatasetNotFoundError(
            f"{source}: neither a .jsonl/.jsonl.gz corpus, a SQuAD .json file, nor a registered dataset ({known})"
        )
    if not any(language in p.entries for p in corpus.pairs):
        have = ", ".join(corpus.languages) or "none"
        raise EmptySelectionError(
            f"{source}: no entry in the source language {language!r} (the corpus has {have}); pass --source"
        )
    return corpus
