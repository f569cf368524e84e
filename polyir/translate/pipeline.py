"""Translate a parallel QA corpus into target languages: resumable in shards, cached, optionally filtered.

The corpus is cut into shards of ``shard_size`` pairs in corpus order. Shard ``i`` is translated into
every target language and written as ``<output>.parts/shard-0000i.json`` (atomically: a shard file
exists only complete) with its records, the sentence translations it made and its counts. A killed run
restarts at the first missing shard; the sentence cache is first refilled from the finished shards,
so the resumed run translates exactly what the uninterrupted one would have and writes the same
file. ``manifest.json`` ties the folder to one model, source, targets, filter and corpus (sha256 of
the source entries): another run's parts are never mixed in. When every shard is done the output
JSONL is written atomically and the parts folder removed.

Output records are the polyir JSONL format plus ``provenance``: for each translated language the
model id, its family, the source language and (when filtering) the cross-lingual similarity::

    {"pair_id": "q1", "languages": {"en": {...}, "de": {...}},
     "provenance": {"de": {"model": "facebook/nllb-200-distilled-600M", "family": "nllb",
                           "source_language": "en", "similarity": 0.91}}}

A pair that already holds a target language keeps its own entry (nothing is translated for it).
Filtering (``min_similarity``) encodes source and translation with a retrieval encoder (queries as
queries, positives as passages) and drops a translated entry whose lower cosine similarity is below
the threshold; the dropped share per language is reported. An entry whose query or positive
translates to an empty string is dropped and counted too.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from polyir.atomic import atomic_open, write_json
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import EmptySelectionError, PolyirError
from polyir.languages import canonical_code
from polyir.translate.engine import Translator
from polyir.translate.segment import assemble, layout

if TYPE_CHECKING:
    from polyir.models.encoder import Encoder

FORMAT = 1
MANIFEST = "manifest.json"
SHARD_SIZE = 256


@dataclass
class TranslateOptions:
    """What to translate into, and how."""

    targets: Sequence[str]
    source: str = "en"
    shard_size: int = SHARD_SIZE
    min_similarity: float | None = None  # None: no filtering
    max_pairs: int | None = None
    show_progress: bool = True


@dataclass
class TranslateReport:
    """Counts of one run, per target language."""

    output: Path
    pairs: int
    shards: int
    resumed_shards: int
    translated: dict[str, int] = field(default_factory=dict)  # entries written
    kept_existing: dict[str, int] = field(default_factory=dict)  # pairs that already held the language
    empty: dict[str, int] = field(default_factory=dict)  # dropped: empty query or positive
    filtered: dict[str, int] = field(default_factory=dict)  # dropped: similarity below the threshold
    sentences: int = 0  # sentences sent to the model (cache misses)
    cache_hits: int = 0

    def dropped_share(self, language: str) -> float:
        """Share of the attempted translations into ``language`` that the filter dropped."""
        tried = self.translated.get(language, 0) + self.filtered.get(language, 0)
        return self.filtered.get(language, 0) / tried if tried else 0.0


def _entry_dict(e: QAEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"query": e.query, "positive": e.positive}
    if e.context is not None:
        out["context"] = e.context
    if e.negatives:
        out["negatives"] = list(e.negatives)
    return out


def _digest(pairs: Sequence[ParallelPair], source: str) -> str:
    h = hashlib.sha256()
    for p in pairs:
        e = p.entries[source]
        h.update(json.dumps([p.pair_id, e.query, e.positive, e.context], ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


def parts_dir(output: Path) -> Path:
    """The folder of a run's shard files, beside ``output``."""
    return output.with_name(output.name + ".parts")


def _check_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    path = folder / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != manifest:
            differs = sorted(k for k in manifest if not isinstance(old, dict) or old.get(k) != manifest[k])
            raise PolyirError(
                f"{folder} holds the parts of another translation run (different {', '.join(differs) or 'format'});"
                f" delete the folder to start over, or choose another --output"
            )
        return
    write_json(path, manifest)


def _similarities(encoder: Encoder, a: Sequence[str], b: Sequence[str], kind: str) -> np.ndarray:
    va = encoder.encode(list(a), kind, show_progress=False)  # type: ignore[arg-type]
    vb = encoder.encode(list(b), kind, show_progress=False)  # type: ignore[arg-type]
    va /= np.maximum(np.linalg.norm(va, axis=1, keepdims=True), 1e-12)
    vb /= np.maximum(np.linalg.norm(vb, axis=1, keepdims=True), 1e-12)
    return (va * vb).sum(axis=1)


class _Run:
    """One call of :func:`translate_corpus`: cache, counts and the shard loop."""

    def __init__(self, translator: Translator, options: TranslateOptions, encoder: Encoder | None,
                 report: TranslateReport) -> None:
        self.translator, self.options, self.encoder, self.report = translator, options, encoder, report
        self.cache: dict[str, dict[str, str]] = {t: {} for t in options.targets}

    def translate_segments(self, segments: Sequence[str], target: str) -> list[str]:
        cache = self.cache[target]
        todo = list(dict.fromkeys(s for s in segments if s not in cache))
        self.report.cache_hits += len(segments) - len(todo)
        self.report.sentences += len(todo)
        if todo:
            out = self.translator.translate(todo, self.options.source, target)
            cache.update(zip(todo, out))
        return [cache[s] for s in segments]

    def shard(self, pairs: Sequence[ParallelPair]) -> dict[str, Any]:
        source = self.options.source
        records = [{"pair_id": p.pair_id, "languages": {k: _entry_dict(v) for k, v in p.entries.items()},
                    "provenance": {}} for p in pairs]
        stats: dict[str, dict[str, int]] = {}
        made: dict[str, dict[str, str]] = {}
        for target in self.options.targets:
            count = stats[target] = {"translated": 0, "kept_existing": 0, "empty": 0, "filtered": 0}
            todo = [i for i, p in enumerate(pairs) if target not in p.entries]
            count["kept_existing"] = len(pairs) - len(todo)
            layouts = [layout(pairs[i].entries[source], source) for i in todo]
            flat = [s for lay in layouts for s in lay.segments]
            before = set(self.cache[target])
            translated = self.translate_segments(flat, target)
            made[target] = {s: self.cache[target][s] for s in dict.fromkeys(flat) if s not in before}
            entries: list[tuple[int, QAEntry]] = []
            at = 0
            for i, lay in zip(todo, layouts):
                entry = assemble(lay, translated[at:at + len(lay.segments)], target)
                at += len(lay.segments)
                if entry is None:
                    count["empty"] += 1
                else:
                    entries.append((i, entry))
            sims: list[float | None] = [None] * len(entries)
            if self.encoder is not None and entries:
                src = [pairs[i].entries[source] for i, _ in entries]
                q = _similarities(self.encoder, [e.query for e in src], [e.query for _, e in entries], "query")
                d = _similarities(self.encoder, [e.positive for e in src], [e.positive for _, e in entries], "passage")
                sims = [round(float(x), 4) for x in np.minimum(q, d)]
            for (i, entry), sim in zip(entries, sims):
                if sim is not None and self.options.min_similarity is not None and sim < self.options.min_similarity:
                    count["filtered"] += 1
                    continue
                count["translated"] += 1
                records[i]["languages"][target] = _entry_dict(entry)
                prov: dict[str, Any] = {"model": self.translator.model_id, "family": self.translator.family,
                                        "source_language": source}
                if sim is not None:
                    prov["similarity"] = sim
                records[i]["provenance"][target] = prov
        for r in records:
            r["languages"] = dict(sorted(r["languages"].items()))
            if not r["provenance"]:
                del r["provenance"]
        return {"records": records, "translations": made, "stats": stats}


def translate_corpus(corpus: ParallelQACorpus, translator: Translator, output: Path | str,
                     options: TranslateOptions, *, encoder: Encoder | None = None,
                     filter_model: str | None = None) -> TranslateReport:
    """Translate ``corpus``'s ``options.source`` entries into ``options.targets``; write JSONL at ``output``."""
    output = Path(output)
    source = canonical_code(options.source)
    targets = list(dict.fromkeys(canonical_code(t) for t in options.targets))
    if not targets:
        raise EmptySelectionError("--to: name at least one target language")
    if source in targets:
        raise PolyirError(f"--to: {source} is the source language")
    options = TranslateOptions(targets=targets, source=source, shard_size=options.shard_size,
                               min_similarity=options.min_similarity, max_pairs=options.max_pairs,
                               show_progress=options.show_progress)
    if options.shard_size < 1:
        raise PolyirError(f"--shard-size must be at least 1, not {options.shard_size}")
    if options.min_similarity is not None and encoder is None:
        raise PolyirError("--min-similarity needs an encoder to compare source and translation (--filter-model)")
    translator.check_language(source, target=False)
    for lang in targets:
        translator.check_language(lang)
    pairs = [p for p in corpus.pairs if source in p.entries]
    if options.max_pairs is not None:
        pairs = pairs[:options.max_pairs]
    if not pairs:
        raise EmptySelectionError(f"{corpus.name}: no pair holds the source language {source!r}")
    folder = parts_dir(output)
    folder.mkdir(parents=True, exist_ok=True)
    _check_manifest(folder, {
        "format": FORMAT, "model": translator.model_id, "family": translator.family, "source": source,
        "targets": targets, "shard_size": options.shard_size, "count": len(pairs),
        "corpus_sha256": _digest(pairs, source), "min_similarity": options.min_similarity,
        "filter_model": filter_model if encoder is not None else None,
    })
    n = (len(pairs) + options.shard_size - 1) // options.shard_size
    report = TranslateReport(output=output, pairs=len(pairs), shards=n, resumed_shards=0)
    for key in ("translated", "kept_existing", "empty", "filtered"):
        setattr(report, key, dict.fromkeys(targets, 0))
    run = _Run(translator, options, encoder, report)
    bar = tqdm(total=len(pairs), desc=f"translate {source} -> {','.join(targets)}", unit="pair",
               disable=not options.show_progress)
    shards: list[dict[str, Any]] = []
    try:
        for i in range(n):
            path = folder / f"shard-{i:05d}.json"
            chunk = pairs[i * options.shard_size:(i + 1) * options.shard_size]
            done = None
            if path.is_file():
                try:
                    done = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    done = None  # a damaged part is translated again
            if done is not None and [r["pair_id"] for r in done["records"]] == [p.pair_id for p in chunk]:
                report.resumed_shards += 1
                for target, made in done["translations"].items():
                    run.cache[target].update(made)
            else:
                done = run.shard(chunk)
                write_json(path, done)
            shards.append(done)
            bar.update(len(chunk))
    finally:
        bar.close()
    for done in shards:
        for target, count in done["stats"].items():
            for key, value in count.items():
                getattr(report, key)[target] += value
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for done in shards for r in done["records"])
    with atomic_open(output, "wb") as fh:
        data = lines.encode("utf-8")
        fh.write(gzip.compress(data, mtime=0) if output.name.endswith(".gz") else data)
    shutil.rmtree(folder, ignore_errors=True)
    return report
