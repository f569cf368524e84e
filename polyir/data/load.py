"""One entry for data given by name, by path or as an object: :func:`load_task` (a test set) and
:func:`load_corpus` (training pairs).

A name is a registered dataset (or a ``hf:``/``pairs:`` source string); a path is line-aligned text
files or a parallel QA JSONL file; an already-loaded task or corpus is returned as is. This module sits
above the registry (``polyir.data.registry``) and the readers (``polyir.data.parallel``, ``jsonl``):
readers never import the registry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from polyir.data.jsonl import read_parallel_jsonl
from polyir.data.parallel import JSONL_SUFFIXES, TEXT_SUFFIXES, load_parallel_jsonl_task, load_parallel_text_task
from polyir.data.registry import REGISTRY, get_spec
from polyir.data.registry import load_corpus as load_registered_corpus
from polyir.data.registry import load_task as load_registered_task
from polyir.data.types import ParallelQACorpus, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError, PolyirError


def _looks_like_path(value: str) -> bool:
    return (os.sep in value or "/" in value or value.startswith(".")
            or value.endswith(TEXT_SUFFIXES + JSONL_SUFFIXES))


def load_task_or_path(dataset: str, data_dir: Path | str | None = None,
                      languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """A registered dataset by name, else a path: a folder or comma-separated list of line-aligned
    ``.txt`` files (sentence retrieval), or a parallel QA ``.jsonl``/``.jsonl.gz`` (LAReQA task)."""
    if dataset in REGISTRY:
        return load_registered_task(dataset, data_dir=data_dir, languages=languages)
    parts = [p.strip() for p in dataset.split(",") if p.strip()]
    paths = [Path(p).expanduser() for p in parts]
    if len(paths) == 1 and not paths[0].exists():
        if not _looks_like_path(dataset):
            try:
                get_spec(dataset)
            except DatasetNotFoundError as exc:
                raise DatasetNotFoundError(
                    f"{exc}; or give a path: a folder of line-aligned .txt files, a comma-separated"
                    " list of them, or a parallel QA .jsonl"
                ) from None
        raise DatasetNotFoundError(f"{dataset}: no such file or folder (nor a registered dataset name)")
    for p in paths:
        if not p.exists():
            raise DatasetNotFoundError(f"{p}: no such file or folder")
    if len(paths) == 1 and paths[0].is_file():
        p = paths[0]
        if p.name.endswith(JSONL_SUFFIXES):
            return load_parallel_jsonl_task(p, languages)
        if p.name.endswith(TEXT_SUFFIXES):
            raise EmptySelectionError(
                f"{p}: one text file is not a parallel corpus; give a folder of line-aligned files or"
                " a comma-separated list of them (news.en.txt,news.de.txt)"
            )
        raise DataFormatError(
            f"{p}: unknown test-set file type; expected a parallel QA .jsonl/.jsonl.gz, a folder of"
            " line-aligned .txt files, or a comma-separated list of .txt files"
        )
    return load_parallel_text_task(paths, languages)


def load_task(task: RetrievalTask | str | Path, *, languages: Sequence[str] | str | None = None,
              data_dir: Path | str | None = None) -> RetrievalTask:
    """A test set from a registered name, a path (see :func:`load_task_or_path`) or a RetrievalTask (as is)."""
    if isinstance(task, RetrievalTask):
        if languages is not None:
            raise PolyirError("languages: select languages when loading by name or path, not on a loaded task")
        return task
    if not isinstance(task, (str, Path)):
        raise PolyirError(f"task: expected a dataset name, a path or a RetrievalTask, got {type(task).__name__}")
    return load_task_or_path(str(task), data_dir=data_dir, languages=languages)


def load_corpus(corpus: ParallelQACorpus | str | Path, *, languages: Sequence[str] | str | None = None,
                data_dir: Path | str | None = None, download: bool = True) -> ParallelQACorpus:
    """Training pairs from a registered name (``mlqa-r``), a parallel QA ``.jsonl[.gz]`` file, or a
    ParallelQACorpus (as is)."""
    if isinstance(corpus, ParallelQACorpus):
        if languages is not None:
            raise PolyirError("languages: select languages when loading by name or path, not on a loaded corpus")
        return corpus
    if not isinstance(corpus, (str, Path)):
        raise PolyirError(f"corpus: expected a dataset name, a path or a ParallelQACorpus, got {type(corpus).__name__}")
    path = Path(corpus).expanduser()
    if path.is_file():
        return read_parallel_jsonl(path, languages=languages)
    if str(corpus) in REGISTRY:
        return load_registered_corpus(str(corpus), data_dir=data_dir, languages=languages, download=download)
    raise PolyirError(
        f"{corpus}: neither a registered dataset ({', '.join(sorted(REGISTRY))}) nor an existing .jsonl file"
    )
