"""One entry for a test set given by name or by path: a registered dataset, line-aligned text files, or a
parallel QA JSONL file, each read into a :class:`~polyir.data.types.RetrievalTask`.

It sits above the registry (``polyir.data.registry``) and the readers (``polyir.data.parallel``), which
know nothing of each other through it: readers never import the registry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from polyir.data.parallel import JSONL_SUFFIXES, TEXT_SUFFIXES, load_parallel_jsonl_task, load_parallel_text_task
from polyir.data.registry import REGISTRY, get_spec, load_task
from polyir.data.types import RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError


def _looks_like_path(value: str) -> bool:
    return (os.sep in value or "/" in value or value.startswith(".")
            or value.endswith(TEXT_SUFFIXES + JSONL_SUFFIXES))


def load_task_or_path(dataset: str, data_dir: Path | str | None = None,
                      languages: Sequence[str] | str | None = None) -> RetrievalTask:
    """A registered dataset by name, else a path: a folder or comma-separated list of line-aligned
    ``.txt`` files (sentence retrieval), or a parallel QA ``.jsonl``/``.jsonl.gz`` (LAReQA task)."""
    if dataset in REGISTRY:
        return load_task(dataset, data_dir=data_dir, languages=languages)
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
