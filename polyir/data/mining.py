"""Hard negatives mined with a model: ``polyir data mine``.

For each (pair id, language) entry of a parallel QA corpus the query is encoded, the passage pool
is ranked by cosine score (float64 dot products of L2-normalised embeddings rounded to float32;
ties by pool order), and negatives are taken from a window of that ranking.

The rules:

- The pool is every positive of the corpus in every language (default), or passages the user brings
  (text files named by language, one passage per line). Identical texts are one pool passage, which
  remembers every pair id it is a positive of and every language it was given in.
- An entry never receives a passage of its own pair id (a translation of its positive is a false
  negative), nor its own positive's text, nor any text equal to a positive of its pair in any
  language (this also catches the translations inside a user pool, which carries no pair ids).
- ``source``: ``same`` takes passages in the entry's language, ``other`` passages in another
  language, ``all`` any passage.
- Ranks are counted among the passages an entry may receive (after the two rules above), from 0:
  ``window = (10, 50)`` skips the 10 best-scoring (likely unlabelled positives) and draws from ranks
  10..49. ``pick="top"`` takes the first ``count`` of the window (hardest first); ``pick="random"``
  draws ``count`` of them at random (seeded, per entry), kept in rank order. An entry whose window
  holds fewer than ``count`` passages gets what there is (counted in ``MiningStats.short``).
- The mined negatives replace any negatives the entry had.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from polyir.data.jsonl import read_parallel_jsonl, write_parallel_jsonl
from polyir.data.parallel import language_from_filename, read_text_lines
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import EmptySelectionError, PolyirError
from polyir.models.encoder import Encoder, Precision

Source = Literal["same", "other", "all"]
Pick = Literal["top", "random"]
SOURCES = ("same", "other", "all")
PICKS = ("top", "random")
SCORE_BUDGET = 1 << 27  # bytes of float64 scores held at once


@dataclass(frozen=True)
class MiningOptions:
    """How negatives are chosen (see the module doc) and how texts are encoded."""

    window: tuple[int, int] = (10, 50)
    count: int = 5
    source: Source = "all"
    pick: Pick = "top"
    seed: int = 0
    batch_size: int = 64
    precision: Precision = "fp32"
    show_progress: bool = True

    def check(self) -> None:
        """Raise a PolyirError on a bad window, count, source or pick."""
        start, stop = self.window
        if not 0 <= start < stop:
            raise PolyirError(f"window must be START:STOP with 0 <= START < STOP, not {start}:{stop}")
        if self.count < 1:
            raise PolyirError(f"count must be at least 1, not {self.count}")
        if self.source not in SOURCES:
            raise PolyirError(f"--from must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.pick not in PICKS:
            raise PolyirError(f"--pick must be one of {', '.join(PICKS)}, not {self.pick!r}")


@dataclass(frozen=True)
class PoolPassage:
    """One distinct passage text of the pool, with the pair ids and languages it came with."""

    text: str
    languages: frozenset[str]
    pair_ids: frozenset[str] = frozenset()


@dataclass
class MiningStats:
    """What a mining run did."""

    entries: int = 0
    negatives: int = 0
    short: int = 0  # entries that got fewer than ``count`` negatives
    pool: int = 0
    by_language: dict[str, int] = field(default_factory=dict)  # negatives per entry language


def parse_window(spec: str) -> tuple[int, int]:
    """``"10:50"`` -> (10, 50); anything else (or START >= STOP) is a PolyirError."""
    parts = spec.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = int(parts[0]), int(parts[1])
    except ValueError:
        raise PolyirError(f"--window must be START:STOP (e.g. 10:50), not {spec!r}") from None
    if not 0 <= start < stop:
        raise PolyirError(f"--window {spec}: need 0 <= START < STOP")
    return start, stop


def _merge(items: Sequence[tuple[str, str, str | None]]) -> list[PoolPassage]:
    """(text, language, pair id or None) -> distinct passages in first-seen order."""
    langs: dict[str, set[str]] = {}
    pids: dict[str, set[str]] = {}
    for text, lang, pid in items:
        langs.setdefault(text, set()).add(lang)
        pids.setdefault(text, set())
        if pid is not None:
            pids[text].add(pid)
    return [PoolPassage(t, frozenset(langs[t]), frozenset(pids[t])) for t in langs]


def corpus_pool(corpus: ParallelQACorpus) -> list[PoolPassage]:
    """Every positive of the corpus in every language, identical texts merged."""
    return _merge([(e.positive, lang, p.pair_id) for p in corpus.pairs for lang, e in sorted(p.entries.items())])


def read_pool_files(paths: Sequence[Path | str]) -> list[PoolPassage]:
    """Passages from text files named by language (``wiki.de.txt``: one passage per line)."""
    items: list[tuple[str, str, str | None]] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise PolyirError(f"{path}: no such pool file")
        lang = language_from_filename(path)
        items.extend((line, lang, None) for line in read_text_lines(path))
    if not items:
        raise EmptySelectionError("the passage pool is empty")
    return _merge(items)


def _scores(q: np.ndarray, p64: torch.Tensor) -> np.ndarray:
    """Dot products in float64 rounded to float32 (independent of chunking)."""
    q64 = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float64))
    with torch.inference_mode():
        return (q64 @ p64.T).to(torch.float32).numpy()


def _top_eligible(row: np.ndarray, eligible: np.ndarray, stop: int) -> np.ndarray:
    """Pool indices of the first ``stop`` eligible passages: score descending, then index ascending."""
    idx = np.flatnonzero(eligible)
    if len(idx) > stop:
        s = row[idx]
        cut = np.partition(s, len(s) - stop)[len(s) - stop]  # the stop-th largest score
        idx = idx[s >= cut]
    order = np.lexsort((idx, -row[idx].astype(np.float64)))
    return idx[order][:stop]


def _pick(ranked: np.ndarray, options: MiningOptions, key: str) -> np.ndarray:
    """The negatives of one entry from its ranked eligible passages (window, count, pick)."""
    window = ranked[options.window[0] : options.window[1]]
    if options.pick == "top" or len(window) <= options.count:
        return window[: options.count]
    rng = np.random.default_rng([options.seed, zlib.crc32(key.encode("utf-8"))])
    return window[np.sort(rng.choice(len(window), options.count, replace=False))]


def mine_negatives(encoder: Encoder, corpus: ParallelQACorpus, pool: Sequence[PoolPassage] | None = None,
                   options: MiningOptions | None = None) -> tuple[ParallelQACorpus, MiningStats]:
    """The corpus with every entry's ``negatives`` mined from ``pool`` (default: :func:`corpus_pool`)."""
    options = options or MiningOptions()
    options.check()
    pool = list(pool) if pool is not None else corpus_pool(corpus)
    if not pool:
        raise EmptySelectionError("the passage pool is empty")
    entries = [(p, lang, e) for p in corpus.pairs for lang, e in sorted(p.entries.items())]
    if not entries:
        raise EmptySelectionError(f"{corpus.name}: no entry to mine negatives for")
    texts = [x.text for x in pool]
    p_emb = encoder.encode(texts, "passage", batch_size=options.batch_size, precision=options.precision,
                           show_progress=options.show_progress, desc="mine: passages",
                           languages=[min(x.languages) for x in pool])
    q_emb = encoder.encode([e.query for _, _, e in entries], "query", batch_size=options.batch_size,
                           precision=options.precision, show_progress=options.show_progress,
                           desc="mine: queries", languages=[lang for _, lang, _ in entries])
    position = {t: i for i, t in enumerate(texts)}
    of_pair: dict[str, list[int]] = {}
    for i, x in enumerate(pool):
        for pid in x.pair_ids:
            of_pair.setdefault(pid, []).append(i)
    langs = sorted({lang for x in pool for lang in x.languages} | set(corpus.languages))
    in_lang = {y: np.array([y in x.languages for x in pool]) for y in langs}
    other = {y: np.array([bool(x.languages - {y}) for x in pool]) for y in langs}
    p64 = torch.from_numpy(np.ascontiguousarray(p_emb, dtype=np.float64))
    step = max(1, SCORE_BUDGET // (8 * len(pool)))
    mined: dict[tuple[str, str], tuple[str, ...]] = {}
    stats = MiningStats(entries=len(entries), pool=len(pool))
    bar = tqdm(total=len(entries), desc="mine: ranking", unit="query", disable=not options.show_progress)
    try:
        for start in range(0, len(entries), step):
            rows = _scores(q_emb[start : start + step], p64)
            for (pair, lang, _), row in zip(entries[start : start + step], rows):
                eligible = (in_lang[lang] if options.source == "same" else other[lang]
                            if options.source == "other" else np.ones(len(pool), dtype=bool)).copy()
                eligible[of_pair.get(pair.pair_id, [])] = False
                for e in pair.entries.values():
                    if e.positive in position:
                        eligible[position[e.positive]] = False
                ranked = _top_eligible(row, eligible, options.window[1])
                chosen = _pick(ranked, options, f"{pair.pair_id}\x00{lang}")
                mined[(pair.pair_id, lang)] = tuple(texts[j] for j in chosen)
                stats.negatives += len(chosen)
                stats.short += len(chosen) < options.count
                stats.by_language[lang] = stats.by_language.get(lang, 0) + len(chosen)
            bar.update(len(rows))
    finally:
        bar.close()
    pairs = [ParallelPair(p.pair_id, {lang: QAEntry(e.query, e.positive, e.context, mined[(p.pair_id, lang)])
                                      for lang, e in p.entries.items()}) for p in corpus.pairs]
    return ParallelQACorpus(name=corpus.name, pairs=pairs), stats


def mine_file(encoder: Encoder, source: Path | str, output: Path | str, *,
              pool_files: Sequence[Path | str] = (), languages: Sequence[str] | None = None,
              options: MiningOptions | None = None) -> MiningStats:
    """Read a parallel QA JSONL, mine negatives, write the result (atomically) to ``output``."""
    corpus = read_parallel_jsonl(source, languages)
    pool = read_pool_files(pool_files) if pool_files else None
    mined, stats = mine_negatives(encoder, corpus, pool, options)
    write_parallel_jsonl(mined, output)
    return stats
