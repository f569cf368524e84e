"""Texts per language from a fitting source: a registered dataset, a parallel folder, a corpus or QA JSONL.

The projection only needs unlabeled text of each language. ``side`` says which texts of a source are
used: ``passage`` (candidates / passages, the default), ``query`` (questions) or ``both``. Sampling is
seeded, so the same source, languages, size and seed give the same texts.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from polyir.data.types import RetrievalTask
from polyir.errors import EmptySelectionError, PolyirError
from polyir.languages import select_languages

Side = Literal["passage", "query", "both"]
SIDES = ("passage", "query", "both")


@dataclass(frozen=True)
class FitTexts:
    """The texts chosen for fitting, by language and side (``passage`` / ``query``)."""

    source: str
    texts: dict[str, dict[str, list[str]]]  # side -> language -> texts

    @property
    def languages(self) -> list[str]:
        return sorted({lang for by_lang in self.texts.values() for lang in by_lang})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for by_lang in self.texts.values():
            for lang, texts in by_lang.items():
                out[lang] = out.get(lang, 0) + len(texts)
        return dict(sorted(out.items()))


def _first_record(path: Path) -> dict:
    from polyir.data.jsonl import _lines

    for _, line in _lines(path):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return {}
            return record if isinstance(record, dict) else {}
    raise EmptySelectionError(f"{path}: the file holds no record")


def _by_language(items: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lang, text in items:
        out.setdefault(lang, []).append(text)
    return {lang: list(dict.fromkeys(texts)) for lang, texts in out.items()}  # unique, first-seen order


def task_texts(task: RetrievalTask) -> dict[str, dict[str, list[str]]]:
    """A retrieval task's texts: candidates as ``passage``, questions as ``query``."""
    return {
        "passage": _by_language([(c.language, c.text) for c in task.candidates]),
        "query": _by_language([(q.language, q.text) for q in task.queries]),
    }


def _source_texts(source: str, languages: Sequence[str] | None, data_dir: Path | str | None) -> dict[str, dict[str, list[str]]]:
    path = Path(source).expanduser()
    if path.is_file() and path.name.endswith((".jsonl", ".jsonl.gz")) and "pair_id" not in _first_record(path):
        from polyir.index.corpus import read_corpus_jsonl

        passages = read_corpus_jsonl(path, languages)
        return {"passage": _by_language([(p.language, p.text) for p in passages])}
    from polyir.data.load import load_task_or_path

    return task_texts(load_task_or_path(source, data_dir=data_dir, languages=languages))


def fit_texts(
    source: str,
    *,
    languages: Sequence[str] | None = None,
    side: Side = "passage",
    max_per_language: int | None = 1000,
    seed: int = 0,
    data_dir: Path | str | None = None,
    task: RetrievalTask | None = None,
) -> FitTexts:
    """Load ``source`` (or take the already-loaded ``task``, e.g. a guard set's validation half, named
    ``source``) and keep up to ``max_per_language`` unique texts per language and side (seeded sample)."""
    if side not in SIDES:
        raise PolyirError(f"unknown side {side!r}; use one of {', '.join(SIDES)}")
    if max_per_language is not None and max_per_language < 1:
        raise PolyirError(f"--max-per-language must be at least 1, not {max_per_language}")
    available = task_texts(task) if task is not None else _source_texts(source, languages, data_dir)
    wanted_sides = ("passage", "query") if side == "both" else (side,)
    texts: dict[str, dict[str, list[str]]] = {}
    for s in wanted_sides:
        by_lang = available.get(s)
        if not by_lang:
            raise PolyirError(f"{source}: has no {s} texts; use --side passage")
        chosen = select_languages(by_lang, languages, source=source)
        rng = random.Random(f"{seed}:{s}")
        texts[s] = {}
        for lang in chosen:
            items = by_lang[lang]
            if max_per_language is not None and len(items) > max_per_language:
                keep = sorted(rng.sample(range(len(items)), max_per_language))
                items = [items[i] for i in keep]
            texts[s][lang] = items
    return FitTexts(source=source, texts=texts)
