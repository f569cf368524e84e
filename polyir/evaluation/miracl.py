"""MIRACL evaluation: monolingual dense retrieval per language, nDCG@10 and Recall@100.

Per language: the topics are encoded as queries, the corpus (streamed shard by shard, in chunks) as
passages; an exact scorer keeps every query's top ``k`` (>= 100) passages; the ranked lists are
scored by ranx with trec_eval's definitions:

- ``ndcg@10`` = trec_eval ``ndcg_cut.10``: gain = the graded qrels value (linear, not 2^rel - 1),
  discount log2(rank + 1), ideal ranking from all judged relevant documents of the query;
- ``recall@100`` = trec_eval ``recall.100``: relevant documents in the top 100 / relevant documents;
- a judgment with rel <= 0 is non-relevant; a query without any rel > 0 judgment has no defined
  value and is left out of the averages (its id is recorded under ``notes``; MIRACL dev has none);
- documents are ordered as trec_eval orders a run: score descending, ties by docid descending.

Exact search rather than a FAISS index: the corpus is scored chunk by chunk against all queries
(float64 products rounded to float32, as in ``ranking.py``), so memory stays at one chunk of
passages whatever the corpus size, the result is exact, and nothing has to be built or stored.
With ``use_cache`` every chunk's embeddings go through ``EmbeddingCache``: a killed run over a
large corpus resumes at the first chunk not yet encoded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from polyir.data.miracl import (
    MiraclPassage,
    check_language,
    corpus_shards,
    find_corpus_folder,
    iter_corpus,
    read_qrels,
    read_topics,
)
from polyir.errors import DataFormatError, EmptySelectionError, PolyirError
from polyir.models.cache import EmbeddingCache
from polyir.evaluation.run import EvalOptions
from polyir.evaluation.values import RESULT_FORMAT
from polyir.models.encoder import Encoder
from polyir.runinfo import Timer, versions

METRICS = ("ndcg@10", "recall@100")
DATASET = "miracl"
CHUNK_SIZE = 4096  # passages encoded and scored at once

Run = Mapping[str, Sequence[tuple[str, float]]]  # query id -> (docid, score) pairs


@dataclass(frozen=True)
class MiraclOptions(EvalOptions):
    """Knobs of one MIRACL run (recorded in the result): the LAReQA options plus search depth and chunking."""

    k: int = 100  # depth of each query's ranked list; Recall@100 needs at least 100
    chunk_size: int = CHUNK_SIZE


# --------------------------------------------------------------------------- metrics (ranx)


def trec_order(hits: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """A query's (docid, score) pairs in trec_eval's order: score descending, then docid descending."""
    by_docid = sorted(hits, key=lambda h: h[0], reverse=True)
    return sorted(by_docid, key=lambda h: -h[1])  # stable: ties keep the docid-descending order


def trec_metrics(qrels: Mapping[str, Mapping[str, int]], run: Run,
                 metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    """Per-query ``metrics`` (ranx names, e.g. ``ndcg@10``) of ``run`` against ``qrels``.

    Evaluated queries: those of ``run`` with at least one rel > 0 judgment; a run query missing
    from the qrels or without a positive judgment is skipped. Each list is ordered with
    ``trec_order`` and handed to ranx with rank-based scores, so ranx's own tie handling never
    reorders it. Returns metric -> query id -> value.
    """
    from ranx import Qrels, Run as RanxRun, evaluate

    judged = {q: {d: int(r) for d, r in qrels[q].items()} for q in run
              if q in qrels and any(r > 0 for r in qrels[q].values())}
    if not judged:
        raise EmptySelectionError("no query of the run has a relevant (rel > 0) judgment")
    ranked: dict[str, dict[str, float]] = {}
    for q in judged:
        ordered = trec_order(run[q])
        ranked[q] = {d: float(len(ordered) - i) for i, (d, _) in enumerate(ordered)}
        if not ranked[q]:
            ranked[q] = {"\x00polyir-empty": 0.0}  # ranx needs one entry; it is never relevant
    qids = list(judged)
    values = evaluate(Qrels(judged), RanxRun(ranked), list(metrics), return_mean=False,
                      make_comparable=False)
    if isinstance(values, np.ndarray):  # one metric: ranx returns the bare array
        values = {metrics[0]: values}
    return {m: {q: float(v) for q, v in zip(qids, values[m])} for m in metrics}


# --------------------------------------------------------------------------- exact search


class TopK:
    """Running top-``k`` (score desc, then position asc) of every query over chunks of passages."""

    def __init__(self, queries: np.ndarray, k: int):
        self.q64 = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float64))
        self.k = k
        n = len(queries)
        self.scores = np.full((n, 0), -np.inf, dtype=np.float32)
        self.positions = np.full((n, 0), -1, dtype=np.int64)
        self.seen = 0

    def add(self, passages: np.ndarray) -> None:
        """Score one chunk of passage embeddings (the next ``len(passages)`` positions)."""
        c64 = torch.from_numpy(np.ascontiguousarray(passages, dtype=np.float64))
        with torch.inference_mode():
            scores = (self.q64 @ c64.T).to(torch.float32)
            kk = min(self.k, scores.shape[1])
            top, idx = torch.topk(scores, kk, dim=1)
        cand_s = np.concatenate([self.scores, top.numpy()], axis=1)
        cand_p = np.concatenate([self.positions, idx.numpy().astype(np.int64) + self.seen], axis=1)
        order = np.lexsort((cand_p, -cand_s.astype(np.float64)))[:, : self.k]
        self.scores = np.take_along_axis(cand_s, order, axis=1)
        self.positions = np.take_along_axis(cand_p, order, axis=1)
        self.seen += len(passages)


def _chunks(passages: Iterable[MiraclPassage], size: int) -> Iterator[list[MiraclPassage]]:
    it = iter(passages)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def search_corpus(encoder: Encoder, query_emb: np.ndarray, passages: Iterable[MiraclPassage],
                  options: MiraclOptions, *, fingerprint: str, desc: str = "passages",
                  total: int | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Encode the passages chunk by chunk and keep each query's top ``k``.

    Returns (docids in corpus order, scores [n_q, k'], corpus positions [n_q, k']).
    """
    cache = EmbeddingCache() if options.use_cache else None
    top = TopK(query_emb, options.k)
    docids: list[str] = []
    bar = tqdm(total=total, desc=desc, unit="passage", disable=not options.show_progress)
    try:
        for chunk in _chunks(passages, options.chunk_size):
            texts = [p.content for p in chunk]

            def compute(texts: list[str] = texts) -> np.ndarray:
                return encoder.encode(texts, "passage", batch_size=options.batch_size,
                                      precision=options.precision, show_progress=False)

            if cache is None:
                emb = compute()
            else:
                emb, _ = cache.get_or_compute(fingerprint, "passage", options.precision, texts, compute)
            top.add(emb)
            docids.extend(p.docid for p in chunk)
            bar.update(len(chunk))
    finally:
        bar.close()
    return docids, top.scores, top.positions


# --------------------------------------------------------------------------- one language


@dataclass
class LanguageRun:
    """One language's outcome: ranked lists, per-query metrics and counts."""

    language: str
    run: dict[str, list[tuple[str, float]]]  # query id -> top-k (docid, score), trec order
    per_query: dict[str, dict[str, float]]  # metric -> query id -> value
    counts: dict[str, int]
    notes: dict[str, Any]

    def means(self) -> dict[str, float]:
        return {m: float(np.mean(list(v.values()))) for m, v in self.per_query.items()}


def check_topics_qrels(topics: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                       qrels_path: Path | str) -> None:
    """Every judged query must be a topic (otherwise the qrels belong to another topic set)."""
    stray = [q for q in qrels if q not in topics]
    if stray:
        shown = ", ".join(stray[:5]) + (" …" if len(stray) > 5 else "")
        raise DataFormatError(
            f"{qrels_path}: {len(stray)} judged query id(s) are not in the topics ({shown})"
        )


def evaluate_language(encoder: Encoder, language: str, topics: Mapping[str, str],
                      qrels: Mapping[str, Mapping[str, int]], corpus: Iterable[MiraclPassage],
                      options: MiraclOptions | None = None, *, fingerprint: str | None = None,
                      timer: Timer | None = None) -> LanguageRun:
    """Retrieve the top ``k`` passages of every topic and score the run (see the module doc).

    ``corpus`` is streamed once (e.g. ``iter_corpus(shards)``); it may be larger than memory.
    """
    options = options or MiraclOptions()
    if options.k < 100:
        raise PolyirError(f"k must be at least 100 (Recall@100 needs 100 results), not {options.k}")
    timer = timer or Timer()
    fingerprint = fingerprint or encoder.fingerprint()
    qids = list(topics)
    cache = EmbeddingCache() if options.use_cache else None
    texts = [topics[q] for q in qids]

    def encode_queries() -> np.ndarray:
        return encoder.encode(texts, "query", batch_size=options.batch_size,
                              precision=options.precision, show_progress=options.show_progress,
                              desc=f"miracl-{language} queries")

    with timer(f"{language}.encode_queries"):
        q_emb = (encode_queries() if cache is None else
                 cache.get_or_compute(fingerprint, "query", options.precision, texts, encode_queries)[0])
    with timer(f"{language}.search"):
        docids, scores, positions = search_corpus(
            encoder, q_emb, corpus, options, fingerprint=fingerprint,
            desc=f"miracl-{language} passages",
        )
    if not docids:
        raise DataFormatError(f"MIRACL corpus for {language!r} is empty (no passage lines)")
    run = {
        q: trec_order((docids[p], float(s)) for s, p in zip(scores[i], positions[i]) if p >= 0)
        for i, q in enumerate(qids)
    }
    with timer(f"{language}.metrics"):
        per_query = trec_metrics(qrels, run)
    corpus_ids = set(docids)
    relevant = {d for q in qrels for d, r in qrels[q].items() if r > 0}
    missing = sorted(relevant - corpus_ids)
    no_positive = [q for q in qids if q not in per_query[METRICS[0]]]
    notes: dict[str, Any] = {}
    if no_positive:
        notes["queries_without_relevant"] = no_positive
    if missing:
        notes["relevant_not_in_corpus"] = len(missing)
        notes["relevant_not_in_corpus_examples"] = missing[:10]
    counts = {
        "topics": len(qids),
        "queries": len(per_query[METRICS[0]]),
        "passages": len(docids),
        "judgments": sum(len(v) for v in qrels.values()),
        "relevant": len(relevant),
    }
    return LanguageRun(language, run, per_query, counts, notes)


# --------------------------------------------------------------------------- all languages


@dataclass(frozen=True)
class LanguageFiles:
    """Where one language's topics, qrels and corpus shards are."""

    topics: Path
    qrels: Path
    shards: tuple[Path, ...]


def locate_languages(languages: Sequence[str], *, data_dir: Path | str | None = None,
                     corpus_dir: Path | str | None = None, download: bool = True,
                     dataset: str = DATASET) -> dict[str, LanguageFiles]:
    """Resolve topics + qrels through the registry and find each language's corpus shards.

    Every corpus is looked up before anything is encoded, so a missing one fails at once.
    """
    from polyir.data.registry import cache_data_dir, resolve_file_sets
    from polyir.paths import data_dir_from_env

    for lang in languages:
        check_language(lang)
    files = resolve_file_sets(dataset, data_dir, list(languages), download=download)
    root = Path(data_dir).expanduser() if data_dir is not None else data_dir_from_env()
    roots = ([root] if root else []) + [cache_data_dir()]
    out = {}
    for lang in languages:
        folder = find_corpus_folder(lang, corpus_dir, roots)
        out[lang] = LanguageFiles(files[lang]["topics"], files[lang]["qrels"],
                                  tuple(corpus_shards(folder)))
    return out


def evaluate_miracl(encoder: Encoder, languages: Sequence[str] | None = None, *,
                    data_dir: Path | str | None = None, corpus_dir: Path | str | None = None,
                    options: MiraclOptions | None = None, download: bool = True,
                    runs_dir: Path | str | None = None, dataset: str = DATASET) -> dict[str, Any]:
    """Evaluate ``encoder`` on MIRACL dev, one language at a time; returns the result dict.

    ``metrics`` holds the macro mean over languages; ``per_language`` each language's means;
    ``per_query`` the values behind them (query ids ``<lang>:<qid>``), for ``polyir compare``.
    With ``runs_dir`` each language's ranked lists are written as TREC run files
    (``<lang>.trec``), which trec_eval reads. ``dataset`` is a registered dataset of kind miracl.
    """
    from polyir.data.miracl import MIRACL_LANGUAGES

    options = options or MiraclOptions()
    langs = list(languages) if languages else list(MIRACL_LANGUAGES)
    timer = Timer()
    with timer("total"):
        located = locate_languages(langs, data_dir=data_dir, corpus_dir=corpus_dir,
                                   download=download, dataset=dataset)
        fingerprint = encoder.fingerprint()
        results: dict[str, LanguageRun] = {}
        for lang in langs:
            f = located[lang]
            topics, qrels = read_topics(f.topics), read_qrels(f.qrels)
            check_topics_qrels(topics, qrels, f.qrels)
            results[lang] = evaluate_language(encoder, lang, topics, qrels, iter_corpus(f.shards), options,
                                              fingerprint=fingerprint, timer=timer)
            if runs_dir is not None:
                write_trec_run(results[lang].run, Path(runs_dir) / f"{lang}.trec")
    per_language = {lang: {**r.means(), "queries": r.counts["queries"],
                           "passages": r.counts["passages"]} for lang, r in results.items()}
    metrics = {m: float(np.mean([per_language[lang][m] for lang in langs])) for m in METRICS}
    per_query: dict[str, list[Any]] = {"query_id": [], "query_lang": [], **{m: [] for m in METRICS}}
    for lang, r in results.items():
        for q in r.per_query[METRICS[0]]:
            per_query["query_id"].append(f"{lang}:{q}")
            per_query["query_lang"].append(lang)
            for m in METRICS:
                per_query[m].append(r.per_query[m][q])
    return {
        "format": RESULT_FORMAT,
        "task": "miracl-dev",
        "dataset": dataset,
        "model": encoder.spec,
        "fingerprint": fingerprint,
        "config": {
            **asdict(options),
            "encoder": asdict(encoder.settings),
            "device": str(encoder.device),
            "languages": langs,
            "corpus_shards": {lang: [str(p) for p in located[lang].shards] for lang in langs},
        },
        "counts": {lang: r.counts for lang, r in results.items()},
        "notes": {lang: r.notes for lang, r in results.items() if r.notes},
        "versions": versions(),
        "timings": timer.seconds,
        "metrics": metrics,
        "per_language": per_language,
        "per_query": per_query,
    }


def write_trec_run(run: Run, path: Path | str, tag: str = "polyir") -> Path:
    """Write ranked lists as a TREC run file: ``qid Q0 docid rank score tag`` (atomically; gzip when
    the name ends in ``.gz``). The one writer is :func:`polyir.evaluation.trec.write_run`."""
    from polyir.evaluation.trec import write_run

    return write_run(run, path, tag)


def print_miracl_summary(result: dict[str, Any], console: Any = None) -> None:
    """A table of nDCG@10 and Recall@100 per language, with the macro mean."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{result['model']} on MIRACL dev")
    for col in ("lang", "queries", "passages", "nDCG@10", "Recall@100"):
        table.add_column(col, justify="left" if col == "lang" else "right")
    for lang, v in result["per_language"].items():
        table.add_row(lang, str(v["queries"]), f"{v['passages']:,}", f"{v['ndcg@10']:.4f}",
                      f"{v['recall@100']:.4f}")
    m = result["metrics"]
    table.add_row("macro", "", "", f"{m['ndcg@10']:.4f}", f"{m['recall@100']:.4f}", style="bold")
    console.print(table)
    for lang, notes in result.get("notes", {}).items():
        n = notes.get("relevant_not_in_corpus")
        if n:
            console.print(f"[yellow]warning:[/yellow] {lang}: {n} relevant passage(s) are not in the"
                          " corpus (incomplete download?); recall cannot reach 1", highlight=False)
