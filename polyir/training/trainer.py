"""The training loop: hybrid-batch sampler → encoder → InfoNCE, with validation, checkpoints and resume.

One function, :func:`train`, runs a whole fine-tuning from a :class:`~polyir.training.config.TrainConfig`:

- data: the training sources are loaded, a seeded share of each corpus' pair ids is held out for
  validation (never trained on), and a :class:`~polyir.sampling.HybridBatchSampler` draws the batches;
- optimisation: AdamW (no decay on biases and norms), linear warm-up then linear decay, gradient
  accumulation, clipping, autocast (bf16 / fp16), optionally frozen word embeddings, and GradCache
  (embeddings without graph in chunks, loss gradients on the cached embeddings, then each chunk
  re-run with its graph and the cached gradient back-propagated; dropout is replayed, so the
  gradients equal the plain path's);
- validation: the same loss on fixed held-out batches, and LAReQA retrieval mAP (Mo./Cr./Mul.) of
  the held-out queries against their positives pooled across languages; the best model by the
  chosen metric is kept in ``best/``; early stopping after ``patience`` evaluations without gain;
- checkpoints (``checkpoints/step-N/``): model, optimizer, scheduler, sampler state, RNG states of
  every rank and the loop counters, so ``resume_from`` continues exactly (same batches, same weights);
- distributed: under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) each rank gets its
  slice of every global batch, gradients are averaged across ranks once per optimizer step, only
  rank 0 writes files, and every rank takes the same number of steps. Plain ``torch.distributed``
  (gloo on CPU, nccl on CUDA): averaging gradients ourselves rather than through DDP keeps
  GradCache's repeated forwards and the two-tower forward (queries, then passages) simple.

Run folder layout: see :func:`train`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from polyir.data.types import ParallelPair, ParallelQACorpus
from polyir.errors import EmptySelectionError, PolyirError
from polyir.models.encoder import Encoder
from polyir.runinfo import Timer, versions, write_json
from polyir.sampling import Batch, HybridBatchSampler, SamplerConfig, normalize_passage
from polyir.training.config import (
    TrainConfig,
    config_to_dict,
    dump_config,
    resolve_freeze,
    resolve_precision,
)
from polyir.training.loss import info_nce_loss
from polyir.training.regularizers import TeacherEmbeddings, alignment_loss, distillation_loss, pick_translations

__all__ = [
    "StepInfo",
    "TrainResult",
    "train",
    "split_pairs",
    "gradcache_backward",
    "latest_checkpoint",
    "CHECKPOINT_STATE",
    "FAILED_MARKER",
    "NonFiniteLossError",
]

CHECKPOINT_STATE = "trainer_state.pt"


class NonFiniteLossError(PolyirError):
    """The training loss became NaN or infinite; the message names the step."""

_BUCKET = 1 << 24  # gradient elements per all-reduce call


# ---------------------------------------------------------------------------- public records


@dataclass
class StepInfo:
    """What one optimizer step did on this rank (given to ``train``'s ``on_step`` callback)."""

    step: int  # 1-based optimizer step just finished
    total_steps: int
    rank: int
    world_size: int
    loss: float  # training loss of the step, mean over micro-batches and ranks
    lr: float
    batches: list[Batch]  # this rank's micro-batches of the step


@dataclass
class TrainResult:
    """The outcome of :func:`train` (the same on every rank)."""

    run_dir: Path
    steps: int  # optimizer steps done (including those before a resume)
    total_steps: int  # steps planned
    stopped_early: bool
    best_step: int | None  # step of the best validation metric (None: no validation)
    best_metric: str | None  # e.g. "val_mul_map"
    best_value: float | None
    final_metrics: dict[str, float]  # the last validation row (empty without validation)
    losses: list[float]  # training loss per step of this call (mean over ranks)
    best_dir: Path
    last_dir: Path
    seconds: float  # wall-clock time of this call
    resumed_from: Path | None = None
    validation: list[dict[str, Any]] = field(default_factory=list)  # validation rows of this call
    encoder: Encoder | None = field(default=None, repr=False)  # the trained model (as in last/)


# ---------------------------------------------------------------------------- distributed helpers


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _init_distributed() -> _Dist:
    """Join the process group torchrun describes (or one already initialised); a no-op otherwise."""
    if dist.is_available() and dist.is_initialized():
        return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    # Destroyed at exit, not at the end of train(): a second train() in the same process then reuses
    # the group, whereas re-creating the default group over torchrun's store can meet the first
    # group's stale rendezvous keys and hang.
    atexit.register(_destroy_group)
    return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def _destroy_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _device_for(spec: str, d: _Dist) -> str:
    if spec == "auto" and d.active and torch.cuda.is_available():
        return f"cuda:{d.local_rank}"
    return spec


def _all_reduce_mean(values: list[float], d: _Dist, device: torch.device) -> list[float]:
    if not d.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / d.world_size).tolist()


def _broadcast_object(obj: Any, d: _Dist) -> Any:
    if not d.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _all_gather_object(obj: Any, d: _Dist) -> list[Any]:
    if not d.active:
        return [obj]
    out: list[Any] = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def _average_gradients(params: Sequence[torch.nn.Parameter], d: _Dist) -> None:
    """Average ``.grad`` across ranks, a few large all-reduce calls at a time."""
    if not d.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0

    def flush() -> None:
        if not bucket:
            return
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat /= d.world_size
        offset = 0
        for g in bucket:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    for g in grads:
        if bucket and (size + g.numel() > _BUCKET or g.dtype != bucket[0].dtype):
            flush()
            bucket, size = [], 0
        bucket.append(g)
        size += g.numel()
    flush()


def _broadcast_parameters(module: torch.nn.Module, d: _Dist) -> None:
    """Start every rank from rank 0's weights."""
    if not d.active:
        return
    with torch.no_grad():
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


# ---------------------------------------------------------------------------- RNG state


def _rng_state(device: torch.device) -> dict[str, Any]:
    """This process' RNG states as plain Python (bytes, lists) so they pickle and gather anywhere."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().numpy().tobytes(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device).numpy().tobytes()
    return state


def _byte_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(_tuplify(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_byte_tensor(state["torch"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(_byte_tensor(state["cuda"]), device)


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------- data


def _load_sources(config: TrainConfig) -> list[ParallelQACorpus]:
    """The training corpora named by ``data.train`` (distinct names)."""
    from polyir.data.jsonl import read_parallel_jsonl
    from polyir.data.registry import REGISTRY, load_corpus

    corpora = []
    for i, src in enumerate(config.data.train):
        if src.source in REGISTRY and not Path(src.source).exists():
            corpus = load_corpus(
                src.source, data_dir=config.data.data_dir, languages=src.languages, download=config.data.download
            )
        elif src.is_file or Path(src.source).exists():
            path = Path(src.source).expanduser()
            if not path.is_file():
                raise PolyirError(f"data.train[{i}].source: file {src.source!r} does not exist")
            corpus = read_parallel_jsonl(path, languages=src.languages)
        else:
            known = ", ".join(sorted(REGISTRY))
            raise PolyirError(
                f"data.train[{i}].source: {src.source!r} is neither a registered dataset ({known}) "
                "nor an existing .jsonl file"
            )
        if src.name:
            corpus = ParallelQACorpus(name=src.name, pairs=corpus.pairs)
        corpora.append(corpus)
    names = [c.name for c in corpora]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PolyirError(f"data.train: several sources are named {', '.join(dupes)}; give them distinct 'name's")
    return corpora


def split_pairs(
    corpus: ParallelQACorpus, *, fraction: float, count: int | None, seed: int
) -> tuple[ParallelQACorpus, ParallelQACorpus]:
    """(train, held-out) corpora: a seeded choice of pair ids, independent of the file's order."""
    n = len(corpus)
    k = count if count is not None else int(round(fraction * n))
    if k <= 0:
        return corpus, ParallelQACorpus(name=corpus.name, pairs=[])
    if k >= n:
        raise PolyirError(
            f"validation: holding out {k} of the {n} pair ids of {corpus.name!r} leaves nothing to train on"
        )
    ids = sorted(p.pair_id for p in corpus.pairs)
    rank = {ids[i]: j for j, i in enumerate(np.random.default_rng(seed).permutation(n)[:k])}
    train_pairs = [p for p in corpus.pairs if p.pair_id not in rank]
    # Held-out pairs in the seeded order, so a cap (validation.max_pairs) takes a random subset.
    val_pairs = sorted((p for p in corpus.pairs if p.pair_id in rank), key=lambda p: rank[p.pair_id])
    return ParallelQACorpus(corpus.name, train_pairs), ParallelQACorpus(corpus.name, val_pairs)


@dataclass
class _RetrievalSet:
    queries: list[str]
    query_langs: list[str]
    query_ids: list[str]
    candidates: list[str]
    cand_langs: list[str]
    relevant: list[list[int]]


def _paragraph_set(config: TrainConfig, corpora: Sequence[ParallelQACorpus], max_pairs: int | None) -> _RetrievalSet:
    """Held-out queries against every sentence of the paragraphs holding their answers, in every
    language: the LAReQA pool (same-paragraph distractors) restricted to the held-out pair ids."""
    from polyir.data.registry import REGISTRY, load_task

    out = _RetrievalSet([], [], [], [], [], [])
    sources = {s.name or s.source: s for s in config.data.train}  # a registered source's corpus bears its name
    budget = max_pairs
    for corpus in corpora:
        src = sources.get(corpus.name)
        if src is None or src.source not in REGISTRY or REGISTRY[src.source].kind != "lareqa":
            raise PolyirError(
                f"validation.pool=paragraphs: {corpus.name!r} is not a registered LAReQA dataset (its "
                "sentence splits are needed); use validation.pool=answers"
            )
        ids = [p.pair_id for p in corpus.pairs][:budget]
        if budget is not None:
            budget -= len(ids)
        task = load_task(src.source, data_dir=config.data.data_dir, languages=src.languages).select_pairs(ids)
        position = {c.id: i for i, c in enumerate(task.candidates, start=len(out.candidates))}
        out.candidates.extend(c.text for c in task.candidates)
        out.cand_langs.extend(c.language for c in task.candidates)
        for q in task.queries:
            out.queries.append(q.text)
            out.query_langs.append(q.language)
            out.query_ids.append(f"{corpus.name}:{q.pair_id}:{q.language}")
            out.relevant.append(sorted(position[c] for c in task.relevant[q.id] if c in position))
    return out


def _validation_set(config: TrainConfig, corpora: Sequence[ParallelQACorpus]) -> _RetrievalSet:
    v = config.validation
    if v.pool == "paragraphs":
        return _paragraph_set(config, corpora, v.max_pairs)
    return _retrieval_set(corpora, v.max_pairs)


def _retrieval_set(corpora: Sequence[ParallelQACorpus], max_pairs: int | None) -> _RetrievalSet:
    """Held-out queries vs their positives pooled across languages; equal positive texts are merged."""
    pairs: list[tuple[str, ParallelPair]] = [(c.name, p) for c in corpora for p in c.pairs]
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    out = _RetrievalSet([], [], [], [], [], [])
    cand_index: dict[tuple[str, str], int] = {}
    pair_cands: dict[tuple[str, str], set[int]] = {}
    for name, pair in pairs:
        key = (name, pair.pair_id)
        pair_cands[key] = set()
        for lang in pair.languages:
            text = pair.entries[lang].positive
            ck = (lang, normalize_passage(text))
            if ck not in cand_index:
                cand_index[ck] = len(out.candidates)
                out.candidates.append(text)
                out.cand_langs.append(lang)
            pair_cands[key].add(cand_index[ck])
    # Queries sharing a positive with another pair: that positive is relevant to both.
    for name, pair in pairs:
        rel = sorted(pair_cands[(name, pair.pair_id)])
        for lang in pair.languages:
            out.queries.append(pair.entries[lang].query)
            out.query_langs.append(lang)
            out.query_ids.append(f"{name}:{pair.pair_id}:{lang}")
            out.relevant.append(rel)
    return out


def held_out_metrics(encoder: Encoder, config: TrainConfig) -> dict[str, Any]:
    """Validation mAP of any encoder on a training config's held-out pairs (the split the trainer uses).

    Lets models that were not trained by that run (a merge, the base) be scored on the same
    validation data as the trained ones, so a choice among them never looks at a test set.
    """
    v = config.validation
    held_out = [
        split_pairs(c, fraction=v.fraction, count=v.count, seed=config.validation_seed)[1]
        for c in _load_sources(config)
    ]
    vs = _validation_set(config, [c for c in held_out if len(c)])
    if not vs.queries:
        raise PolyirError("validation: no held-out pairs (validation.fraction / validation.count is 0)")
    row = _retrieval_metrics(encoder, vs, resolve_precision(config.optim.precision, encoder.device))
    return {k: (None if isinstance(x, float) and math.isnan(x) else x) for k, x in row.items()}


def _retrieval_metrics(encoder: Encoder, vs: _RetrievalSet, precision: str) -> dict[str, Any]:
    """LAReQA mAP of the held-out queries against their pooled positives, as validation rows name them."""
    from polyir.evaluation.lareqa import lareqa_metrics

    qe = encoder.encode(vs.queries, "query", precision=precision, show_progress=False)  # type: ignore[arg-type]
    ce = encoder.encode(vs.candidates, "passage", precision=precision, show_progress=False)  # type: ignore[arg-type]
    res = lareqa_metrics(qe, ce, vs.query_langs, vs.cand_langs, vs.relevant, query_ids=vs.query_ids)
    return {"val_mo_map": res.mo_map, "val_cr_map": res.cr_map, "val_mul_map": res.mul_map,
            "val_rank_distance": res.rank_distance, "val_queries": res.n_queries,
            "val_candidates": res.n_candidates}


def _passage_texts(batch: Batch, hard_negatives: int) -> tuple[list[str], int]:
    """Positives followed by up to ``hard_negatives`` negatives per example, and the positives' count."""
    texts = list(batch.positives)
    if hard_negatives:
        for e in batch.examples:
            texts.extend(e.negatives[:hard_negatives])
    return texts, len(batch)


# ---------------------------------------------------------------------------- forward / backward


def _autocast(device: torch.device, mode: str):
    if mode == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)


def _loss_from_embeddings(
    q: torch.Tensor, p_all: torch.Tensor, n_pos: int, config: TrainConfig, *, cross_device: bool
) -> torch.Tensor:
    """The configured InfoNCE; rows of ``p_all`` past ``n_pos`` are hard negatives."""
    negatives = p_all[n_pos:] if p_all.shape[0] > n_pos else None
    return info_nce_loss(
        q,
        p_all[:n_pos],
        negatives,
        temperature=config.optim.temperature,
        symmetric=config.optim.symmetric_loss,
        cross_device=cross_device,
    )


@contextlib.contextmanager
def _replay_rng(state: dict[str, Any], device: torch.device) -> Iterator[None]:
    """Run a block with a saved torch RNG state, leaving the global RNG where it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state["cpu"])
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], device)
        yield


def _embed_no_grad(
    encoder: Encoder, texts: list[str], kind: str, chunk: int, mode: str
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Embeddings of ``texts`` in chunks without a graph, and the RNG state before each chunk."""
    device = encoder.device
    outs, states = [], []
    for start in range(0, len(texts), chunk):
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(device)
        states.append(state)
        with torch.no_grad(), _autocast(device, mode):
            outs.append(encoder.embed(texts[start : start + chunk], kind).float())  # type: ignore[arg-type]
    if not outs:
        return torch.zeros((0, encoder.dim), device=device), states
    return torch.cat(outs), states


def gradcache_backward(
    encoder: Encoder,
    queries: list[str],
    passages: list[str],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    chunk_size: int,
    precision: str = "fp32",
    scale: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """GradCache: accumulate into ``.grad`` the gradient of ``loss_fn(q_emb, p_emb)``, chunk by chunk.

    Memory grows with ``chunk_size``, not with the batch. Dropout masks of the no-graph pass are
    replayed in the re-run, so the gradients equal those of one forward over the whole batch.
    ``scale`` (e.g. a GradScaler's ``scale``) is applied to the loss before its backward.
    Returns the (unscaled) loss value.
    """
    device = encoder.device
    q, q_states = _embed_no_grad(encoder, queries, "query", chunk_size, precision)
    p, p_states = _embed_no_grad(encoder, passages, "passage", chunk_size, precision)
    q = q.detach().requires_grad_(True)
    p = p.detach().requires_grad_(True)
    loss = loss_fn(q, p)
    (scale(loss) if scale is not None else loss).backward()
    assert q.grad is not None and p.grad is not None
    for texts, kind, grads, states in ((queries, "query", q.grad, q_states), (passages, "passage", p.grad, p_states)):
        for i, start in enumerate(range(0, len(texts), chunk_size)):
            with _replay_rng(states[i], device), _autocast(device, precision):
                emb = encoder.embed(texts[start : start + chunk_size], kind).float()  # type: ignore[arg-type]
            emb.backward(grads[start : start + chunk_size])
    return float(loss.detach())


# ---------------------------------------------------------------------------- checkpoints


def latest_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest complete ``checkpoints/step-N`` folder of a run, if any."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    found = []
    for child in root.iterdir():
        if child.name.startswith("step-") and (child / CHECKPOINT_STATE).is_file():
            try:
                found.append((int(child.name[5:]), child))
            except ValueError:
                continue
    return max(found)[1] if found else None


def _resolve_resume(config: TrainConfig) -> Path | None:
    spec = config.resume_from
    if spec is None:
        return None
    if spec == "latest":
        found = latest_checkpoint(config.output_dir)
        if found is None:
            raise PolyirError(
                f"resume_from=latest: {str(config.output_dir)!r} holds no checkpoint "
                f"(no checkpoints/step-N/{CHECKPOINT_STATE}), so there is nothing to resume; "
                "start the run without --resume"
            )
        return found
    path = Path(spec).expanduser()
    if (path / CHECKPOINT_STATE).is_file():
        return path
    if path.is_dir() and latest_checkpoint(path) is not None:  # a run folder
        return latest_checkpoint(path)
    raise PolyirError(f"resume_from: {spec!r} is not a checkpoint folder (no {CHECKPOINT_STATE}) nor a run folder")


# ---------------------------------------------------------------------------- the trainer


# Keys that may change on resume: they steer the run, not the training trajectory.
_RUN_CONTROL = {
    "output_dir", "resume_from", "overwrite", "progress", "log_every", "checkpoint_every",
    "keep_checkpoints", "validation.every", "validation.patience", "model.device", "data.data_dir",
    "data.download",
}


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.update(_flatten(v, key) if isinstance(v, dict) and key != "sampler" else {key: v})
        return out
    return {prefix: d}


def _trajectory_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Config keys whose change would make a resumed run differ from an uninterrupted one."""
    if not saved:
        return []
    a, b = _flatten(saved), _flatten(current)
    return [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if k not in _RUN_CONTROL and a.get(k) != b.get(k)
    ]


FAILED_MARKER = "failed.json"  # written when a run stops on a non-finite loss; such a folder does not block a rerun
_RUN_FILES = ("log.jsonl", "run.json", "config.yaml", "validation_split.json", FAILED_MARKER)
_RUN_DIRS = ("checkpoints", "best", "last")


class _Trainer:
    def __init__(self, config: TrainConfig, on_step: Callable[[StepInfo], None] | None):
        self.config = config
        self.on_step = on_step
        self.timer = Timer()
        self.d = _init_distributed()
        self.run_dir = Path(config.output_dir)
        self.log_path = self.run_dir / "log.jsonl"

    # -------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg, d = self.config, self.d
        self.resume_path = _resolve_resume(cfg)
        self._prepare_run_dir()
        _seed_everything(cfg.seed + d.rank)

        with self.timer("load_data"):
            given = getattr(self, "given_corpora", None)  # in-memory corpora, set by train(corpora=...)
            corpora = list(given) if given is not None else _load_sources(cfg)
            self.train_corpora, self.val_corpora = [], []
            self.split_info: dict[str, Any] = {}
            for c in corpora:
                tr, va = split_pairs(
                    c, fraction=cfg.validation.fraction, count=cfg.validation.count, seed=cfg.validation_seed
                )
                self.train_corpora.append(tr)
                if len(va):
                    self.val_corpora.append(va)
                self.split_info[c.name] = {
                    "train_pairs": len(tr),
                    "validation_pairs": len(va),
                    "validation_pair_ids": [p.pair_id for p in va.pairs],
                }
            weights = None
            if all(s.weight is not None for s in cfg.data.train):
                weights = {c.name: float(s.weight) for c, s in zip(corpora, cfg.data.train)}  # type: ignore[arg-type]
            self.sampler_config = SamplerConfig.from_dict(
                {
                    **cfg.sampler,
                    "batch_size": cfg.optim.batch_size,
                    "seed": cfg.sampler_seed,
                    "corpus_weights": weights,
                }
            )
            self.sampler = HybridBatchSampler(
                self.train_corpora, self.sampler_config, rank=d.rank, world_size=d.world_size
            )
        o = cfg.optim
        if o.max_steps is not None:
            self.total_steps = o.max_steps
        else:
            self.total_steps = max(1, math.ceil((o.epochs or 1.0) * len(self.sampler) / o.grad_accumulation))

        with self.timer("load_model"):
            from polyir.models.resolve import load_encoder

            device = _device_for(cfg.model.device, d)
            spec = str(self.resume_path / "model") if self.resume_path else cfg.model.spec
            self.encoder = load_encoder(
                spec,
                device=device,
                query_max_length=cfg.model.query_max_length,
                passage_max_length=cfg.model.passage_max_length,
            )
            self.encoder.spec = cfg.model.spec
        self.device = self.encoder.device
        self.precision = resolve_precision(o.precision, self.device)
        self.freeze = resolve_freeze(o.freeze_word_embeddings, self.device)
        model = self.encoder.st
        if self.freeze:
            emb = self.encoder.transformer.get_input_embeddings()
            if emb is None:
                raise PolyirError("optim.freeze_word_embeddings: this model has no input embedding matrix")
            emb.weight.requires_grad_(False)
        for module in model:  # a model de-biased by polyir debias: the projection stays fixed, the loss sees it
            if getattr(module, "_polyir_debias", False):
                module.requires_grad_(False)
        _broadcast_parameters(model, d)
        self.params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in self.params if p.ndim >= 2]
        no_decay = [p for p in self.params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        try:  # the fused kernel is ~6x faster a step on CPU (a 250k x 384 embedding matrix dominates)
            self.optimizer = torch.optim.AdamW(groups, lr=o.lr, fused=self.device.type in ("cpu", "cuda"))
        except (RuntimeError, TypeError):  # devices or torch builds without the fused kernel
            self.optimizer = torch.optim.AdamW(groups, lr=o.lr)
        from transformers import get_linear_schedule_with_warmup

        warmup = o.warmup_steps if o.warmup_steps is not None else int(round(o.warmup_ratio * self.total_steps))
        self.warmup_steps = min(warmup, self.total_steps)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, self.warmup_steps, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

        self._setup_validation()
        self._setup_regularization()

        self.step = 0
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.stopped = False  # a resumed run that had stopped early stays stopped
        self.last_row: dict[str, Any] = {}
        self.elapsed_before = 0.0
        if self.resume_path is not None:
            self._load_checkpoint(self.resume_path)
        if d.is_main:
            dump_config(self.config, self.run_dir / "config.yaml")
            write_json(self.run_dir / "validation_split.json", self.split_info)
            self._trim_log()

    def _prepare_run_dir(self) -> None:
        """Rules for an existing output_dir (see :func:`train`): resume, replace or refuse."""
        cfg, d = self.config, self.d
        has_run = any((self.run_dir / n).exists() for n in (*_RUN_FILES, *_RUN_DIRS))
        failed = (self.run_dir / FAILED_MARKER).is_file()
        if self.resume_path is None and has_run and not (cfg.overwrite or failed):
            raise PolyirError(
                f"output_dir {str(self.run_dir)!r} already holds a run; resume it (--resume latest), "
                "pick another --output, or --set overwrite=true"
            )
        if d.is_main:
            if self.resume_path is None and has_run:  # overwrite, or a run that failed: start afresh
                for n in _RUN_FILES:
                    (self.run_dir / n).unlink(missing_ok=True)
                for n in _RUN_DIRS:
                    shutil.rmtree(self.run_dir / n, ignore_errors=True)
            (self.run_dir / FAILED_MARKER).unlink(missing_ok=True)  # a resumed run is no longer failed
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if d.active:
            dist.barrier()

    def _setup_validation(self) -> None:
        cfg = self.config
        self.val_batches: list[Batch] = []
        self.val_set: _RetrievalSet | None = None
        self.validate_enabled = bool(self.val_corpora) and cfg.validation.enabled
        if not self.validate_enabled:
            return
        # Built on every rank (cheap) so a bad split fails everywhere at once; rank 0 measures.
        v = cfg.validation
        weights = self.sampler_config.corpus_weights
        if weights is not None:
            weights = {c.name: weights[c.name] for c in self.val_corpora}
            if sum(weights.values()) <= 0:
                weights = None
        # By default a validation batch is what a training query is scored against: the global batch
        # with cross-device negatives (so val_loss does not depend on how many ranks share it).
        o = cfg.optim
        global_batch = o.batch_size * (self.d.world_size if o.cross_device_negatives else 1)
        val_cfg = SamplerConfig.from_dict(
            {
                **self.sampler_config.to_dict(),
                "batch_size": v.batch_size or global_batch,
                "seed": cfg.validation_seed,
                "corpus_weights": weights,
                "drop_last": False,
                "allow_smaller_batches": True,
            }
        )
        try:
            sampler = HybridBatchSampler(self.val_corpora, val_cfg)
        except EmptySelectionError as exc:
            raise PolyirError(
                f"validation: the held-out pairs cannot form validation batches ({exc}); "
                "hold out more pairs (validation.fraction / validation.count) or lower validation.batch_size"
            ) from exc
        self.val_batches = list(sampler.take(min(v.max_loss_batches, len(sampler))))
        self.val_set = _validation_set(cfg, self.val_corpora)

    def _setup_regularization(self) -> None:
        """The teacher's embeddings (distillation) and the pair index (alignment), when configured."""
        r = self.config.regularization
        self.loss_parts: dict[str, list[float]] = {}
        self.pair_index = {(c.name, p.pair_id): p for c in self.train_corpora for p in c.pairs} if r.align else {}
        self.teacher: TeacherEmbeddings | None = None
        if not r.distill:
            return
        from polyir.models.resolve import load_encoder

        cfg = self.config
        with self.timer("teacher"):
            teacher = load_encoder(
                r.teacher or cfg.model.spec,
                device=str(self.device),
                query_max_length=cfg.model.query_max_length,
                passage_max_length=cfg.model.passage_max_length,
            )
            for p in teacher.st.parameters():
                p.requires_grad_(False)
            self.teacher = TeacherEmbeddings(teacher, precision=self.precision, batch_size=64)
            if r.teacher_precompute:
                entries = [e for c in self.train_corpora for p in c.pairs for e in p.entries.values()]
                self.teacher.precompute(
                    (e.query for e in entries),
                    (t for e in entries for t in (e.positive, *e.negatives[: cfg.optim.hard_negatives])),
                    show_progress=cfg.progress and self.d.is_main,
                )

    def _regularization_terms(
        self, batch: Batch, queries: list[str], passages: list[str]
    ) -> tuple[list[str], list[str], Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None]:
        """Translation partners appended to the texts, and the extra loss on (all q, all p) embeddings."""
        r = self.config.regularization
        if not (r.distill or r.align):
            return queries, passages, None
        n_q, n_p = len(queries), len(passages)
        teacher_q = teacher_p = None
        if self.teacher is not None:
            teacher_q = self.teacher.lookup(queries, "query", self.device)
            teacher_p = self.teacher.lookup(passages, "passage", self.device)
        rows_q: list[int] = []
        rows_p: list[int] = []
        if r.align:
            seed = (self.config.seed, batch.step, self.d.rank)
            if r.align_on in ("query", "both"):
                rows_q, extra = pick_translations(batch.examples, self.pair_index, (*seed, 0), "query")
                queries = queries + extra
            if r.align_on in ("passage", "both"):
                rows_p, extra = pick_translations(batch.examples, self.pair_index, (*seed, 1), "passage")
                passages = passages + extra

        def extra_loss(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            total = q.new_zeros((), dtype=torch.float32)
            if teacher_q is not None and teacher_p is not None:
                d = distillation_loss(
                    q[:n_q], p[:n_p], teacher_q, teacher_p, kind=r.distill_loss, temperature=r.distill_temperature
                )
                self.loss_parts.setdefault("distill", []).append(float(d.detach()))
                total = total + r.distill_weight * d
            terms = []
            if rows_q:
                terms.append(alignment_loss(q[rows_q], q[n_q:]))
            if rows_p:
                terms.append(alignment_loss(p[rows_p], p[n_p:]))
            if terms:
                a = torch.stack(terms).mean()
                self.loss_parts.setdefault("align", []).append(float(a.detach()))
                total = total + r.align_weight * a
            return total

        return queries, passages, extra_loss

    # -------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, stopped: bool = False) -> None:
        d = self.d
        rng_states = _all_gather_object(_rng_state(self.device), d)
        stats = _all_gather_object(self.sampler.stats.to_dict(), d)
        if not d.is_main:
            return
        root = self.run_dir / "checkpoints"
        final = root / f"step-{self.step}"
        tmp = root / f".step-{self.step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.encoder.save(tmp / "model")
        state = {
            "step": self.step,
            "total_steps": self.total_steps,
            "world_size": d.world_size,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "sampler": self.sampler.state_dict(),
            "sampler_stats": stats,
            "rng": rng_states,
            "best_value": self.best_value,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "stopped_early": stopped,
            "last_validation": self.last_row,
            "config": config_to_dict(self.config),
            "elapsed": self.elapsed_before + (time.perf_counter() - self.t_start),
        }
        torch.save(state, tmp / CHECKPOINT_STATE)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        kept = sorted(
            (int(p.name[5:]), p) for p in root.iterdir() if p.name.startswith("step-") and p.name[5:].isdigit()
        )
        for _, old in kept[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path / CHECKPOINT_STATE, map_location=self.device, weights_only=True)
        if state["world_size"] != self.d.world_size:
            raise PolyirError(
                f"resume_from: {path} was saved by {state['world_size']} process(es), this run has "
                f"{self.d.world_size}; resume with the same number of processes"
            )
        changed = _trajectory_changes(state.get("config") or {}, config_to_dict(self.config))
        if changed:
            raise PolyirError(
                f"resume_from: {path} was trained with other settings ({'; '.join(changed)}); resume with "
                "the config in its run folder (config.yaml), changing only run-control keys"
            )
        if state["total_steps"] != self.total_steps:
            raise PolyirError(
                f"resume_from: {path} belongs to a run of {state['total_steps']} steps, this config plans "
                f"{self.total_steps}; keep optim.max_steps / epochs / batch_size as they were"
            )
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError) as exc:
            raise PolyirError(f"resume_from: {path} does not fit this model / optimizer ({exc})") from exc
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        from polyir.sampling import SamplerStats

        self.sampler.stats = SamplerStats.from_dict(state["sampler_stats"][self.d.rank])
        self.step = int(state["step"])
        self.best_value = state["best_value"]
        self.best_step = state["best_step"]
        self.bad_evals = int(state["bad_evals"])
        self.stopped = bool(state.get("stopped_early", False))
        self.last_row = dict(state.get("last_validation") or {})
        self.elapsed_before = float(state["elapsed"])
        self._resume_rng = state["rng"][self.d.rank]

    def _trim_log(self) -> None:
        """On resume, drop log rows written after the checkpoint (they will be written again)."""
        if not self.log_path.exists():
            return
        if self.resume_path is None:
            self.log_path.unlink()
            return
        keep = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(row.get("step", 0)) <= self.step:
                keep.append(line)
        self.log_path.write_text("".join(k + "\n" for k in keep), encoding="utf-8")

    def _log(self, row: dict[str, Any]) -> None:
        if self.d.is_main:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    # -------------------------------------------------------------- one optimizer step
    def _micro_step(self, batch: Batch, accum: int) -> float:
        cfg = self.config
        o = cfg.optim
        passages, n_pos = _passage_texts(batch, o.hard_negatives)
        n_q, n_p = len(batch), len(passages)
        cross = o.cross_device_negatives and self.d.active
        queries, passages, extra_loss = self._regularization_terms(batch, batch.queries, passages)

        def loss_fn(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            loss = _loss_from_embeddings(q[:n_q], p[:n_p], n_pos, cfg, cross_device=cross)
            if extra_loss is not None:
                loss = loss + extra_loss(q, p)
            return loss / accum

        if o.grad_cache:
            scale = self.scaler.scale if self.scaler is not None else None
            return accum * gradcache_backward(
                self.encoder,
                queries,
                passages,
                loss_fn,
                chunk_size=o.grad_cache_chunk_size,
                precision=self.precision,
                scale=scale,
            )
        with _autocast(self.device, self.precision):
            q = self.encoder.embed(queries, "query")
            p = self.encoder.embed(passages, "passage")
        loss = loss_fn(q, p)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        return accum * float(loss.detach())

    def _optimizer_step(self, batches: list[Batch]) -> float:
        """One update; returns the step's loss (mean over micro-batches and ranks, the same on every rank)."""
        o = self.config.optim
        self.encoder.st.train()
        losses = [self._micro_step(b, len(batches)) for b in batches]
        loss = _all_reduce_mean([float(np.mean(losses))], self.d, self.device)[0]
        if not math.isfinite(loss):  # every rank sees the same mean, so every rank stops here
            self._fail_non_finite(loss)
        _average_gradients(self.params, self.d)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if o.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, o.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def _fail_non_finite(self, loss: float) -> None:
        """Stop on a NaN/inf loss (before the update), marking the run folder as failed."""
        step = self.step + 1
        last = latest_checkpoint(self.run_dir)
        msg = (
            f"training loss is {loss} at step {step} of {self.total_steps}: the run diverged (lower optim.lr, "
            "keep optim.max_grad_norm set, or use optim.precision=fp32); nothing was saved for this step "
            f"(last checkpoint: {last.name if last else 'none'}); {str(self.run_dir)!r} is marked failed "
            f"({FAILED_MARKER}), so the same command (or --set overwrite=true) starts it afresh"
        )
        if self.d.is_main:
            write_json(self.run_dir / FAILED_MARKER, {"error": msg, "step": step, "loss": str(loss),
                                                      "last_checkpoint": str(last) if last else None})
        raise NonFiniteLossError(msg)

    # -------------------------------------------------------------- validation
    def _validate(self) -> dict[str, Any]:
        """Rank 0 measures; every rank receives the same row."""
        row: dict[str, Any] | None = None
        if self.d.is_main:
            with self.timer("validation"):
                row = self._measure()
        row = _broadcast_object(row, self.d)
        assert row is not None
        return row

    def _measure(self) -> dict[str, Any]:
        cfg = self.config
        enc = self.encoder
        was_training = enc.st.training
        enc.st.eval()
        row: dict[str, Any] = {"type": "validation", "step": self.step}
        try:
            if self.val_batches:
                total, n = 0.0, 0
                with torch.no_grad(), _autocast(self.device, self.precision):
                    for b in self.val_batches:
                        passages, n_pos = _passage_texts(b, cfg.optim.hard_negatives)
                        q = enc.embed(b.queries, "query")
                        p = enc.embed(passages, "passage")
                        loss = _loss_from_embeddings(q.float(), p.float(), n_pos, cfg, cross_device=False)
                        total += float(loss) * len(b)
                        n += len(b)
                row["val_loss"] = total / n
            vs = self.val_set
            if vs is not None and vs.queries:
                row.update(_retrieval_metrics(enc, vs, self.precision))
        finally:
            enc.st.train(was_training)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}

    def _update_best(self, row: dict[str, Any]) -> bool:
        v = self.config.validation
        value = row.get(v.metric)
        if value is None:
            raise PolyirError(
                f"validation.metric: {v.metric} is undefined on the held-out pairs (e.g. val_cr_map needs "
                "pairs in two languages); choose another metric"
            )
        if self.best_value is None:
            improved = True
        else:
            improved = value > self.best_value if v.higher_is_better else value < self.best_value
        if improved:
            self.best_value, self.best_step, self.bad_evals = float(value), self.step, 0
            if self.d.is_main:
                with self.timer("save"):
                    self.encoder.save(self.run_dir / "best")
        else:
            self.bad_evals += 1
        row["best"] = improved
        return improved

    # -------------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        cfg, d = self.config, self.d
        o = cfg.optim
        self.t_start = time.perf_counter()
        if getattr(self, "_resume_rng", None) is not None:
            _set_rng_state(self._resume_rng, self.device)
        start_step = self.step
        losses: list[float] = []
        val_rows: list[dict[str, Any]] = []
        stopped_early = self.stopped
        window: list[float] = []
        window_pairs, window_time = 0, 0.0
        from tqdm.auto import tqdm

        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="train",
            unit="step",
            disable=not (cfg.progress and d.is_main),
            dynamic_ncols=True,
        )
        try:
            while self.step < self.total_steps and not stopped_early:
                t0 = time.perf_counter()
                with self.timer("train"):
                    batches = [self.sampler.next_batch() for _ in range(o.grad_accumulation)]
                    loss = self._optimizer_step(batches)
                self.step += 1
                dt = time.perf_counter() - t0
                global_pairs = sum(len(b) for b in batches) * d.world_size
                losses.append(loss)
                window.append(loss)
                window_pairs += global_pairs
                window_time += dt
                lr = float(self.scheduler.get_last_lr()[0])
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", pairs_s=f"{global_pairs / dt:.1f}")
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    self._log(
                        {
                            "type": "train",
                            "step": self.step,
                            "epoch": batches[-1].epoch,
                            "loss": float(np.mean(window)),
                            "lr": lr,
                            "pairs_per_s": window_pairs / window_time if window_time > 0 else None,
                            "kinds": [b.kind for b in batches],
                            **{f"loss_{k}": float(np.mean(v)) for k, v in self.loss_parts.items() if v},
                        }
                    )
                    self.loss_parts = {}
                    window, window_pairs, window_time = [], 0, 0.0
                stop = False
                is_last = self.step == self.total_steps
                if self.validate_enabled and (self.step % cfg.eval_every == 0 or is_last):
                    row = self._validate()
                    self._update_best(row)
                    self._log(row)
                    val_rows.append(row)
                    self.last_row = row
                    if cfg.validation.patience is not None and self.bad_evals >= cfg.validation.patience:
                        stop = True
                if self.step % cfg.save_every == 0 or is_last or stop:
                    with self.timer("checkpoint"):
                        self._save_checkpoint(stopped=stop)
                if self.on_step is not None:
                    self.on_step(
                        StepInfo(self.step, self.total_steps, d.rank, d.world_size, loss, lr, batches)
                    )
                if stop:
                    stopped_early = True
                    break
        finally:
            bar.close()
        return self._finish(start_step, losses, val_rows, self.last_row, stopped_early)

    def _finish(
        self,
        start_step: int,
        losses: list[float],
        val_rows: list[dict[str, Any]],
        last_row: dict[str, Any],
        stopped_early: bool,
    ) -> TrainResult:
        cfg, d = self.config, self.d
        stats = _all_gather_object(self.sampler.stats.to_dict(), d)
        seconds = time.perf_counter() - self.t_start
        best_dir, last_dir = self.run_dir / "best", self.run_dir / "last"
        if d.is_main:
            with self.timer("save"):
                self.encoder.save(last_dir)
                if not (best_dir / "modules.json").exists():  # no validation, or no value yet
                    self.encoder.save(best_dir)
            final = {k: v for k, v in last_row.items() if k.startswith("val_")}
            write_json(
                self.run_dir / "run.json",
                {
                    "seed": cfg.seed,
                    "model": cfg.model.spec,
                    "world_size": d.world_size,
                    "device": str(self.device),
                    "precision": self.precision,
                    "freeze_word_embeddings": self.freeze,
                    "steps": self.step,
                    "total_steps": self.total_steps,
                    "warmup_steps": self.warmup_steps,
                    "resumed_from": str(self.resume_path) if self.resume_path else None,
                    "resumed_at_step": start_step if self.resume_path else None,
                    "stopped_early": stopped_early,
                    "best": {"metric": cfg.validation.metric, "step": self.best_step, "value": self.best_value},
                    "final_metrics": final,
                    "final_train_loss": losses[-1] if losses else None,
                    "split": {
                        name: {k: v for k, v in info.items() if k != "validation_pair_ids"}
                        for name, info in self.split_info.items()
                    },
                    "sampler": self.sampler.describe(),
                    "sampler_stats": stats if d.active else stats[0],
                    "timings": {**self.timer.seconds, "wall_this_call": round(seconds, 3),
                                "wall_total": round(self.elapsed_before + seconds, 3)},
                    "versions": versions(),
                    "config": config_to_dict(cfg),
                },
            )
        if d.active:
            dist.barrier()
        final_metrics = {k: v for k, v in last_row.items() if k.startswith("val_") and v is not None}
        return TrainResult(
            run_dir=self.run_dir,
            steps=self.step,
            total_steps=self.total_steps,
            stopped_early=stopped_early,
            best_step=self.best_step,
            best_metric=cfg.validation.metric if self.validate_enabled else None,
            best_value=self.best_value,
            final_metrics=final_metrics,
            losses=losses,
            best_dir=best_dir,
            last_dir=last_dir,
            seconds=seconds,
            resumed_from=self.resume_path,
            validation=val_rows,
            encoder=self.encoder,
        )

    def close(self) -> None:
        """Nothing to release: a process group this run created lives until the process exits."""


def train(
    config: TrainConfig,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    corpora: Sequence[ParallelQACorpus] | None = None,
) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data`` and write a run folder at ``config.output_dir``.

    Run folder (written by rank 0 only)::

        config.yaml              the resolved config
        run.json                 seed, versions, timings, final metrics, best step, sampler stats
        log.jsonl                {"type": "train", step, epoch, loss, lr, pairs_per_s, kinds} every
                                 ``log_every`` steps; {"type": "validation", step, val_loss,
                                 val_mo_map, val_cr_map, val_mul_map, val_rank_distance, best}
        validation_split.json    held-out pair ids per corpus
        best/  last/             sentence-transformers folders (best by validation.metric; final)
        checkpoints/step-N/      model/ + trainer_state.pt (optimizer, scheduler, sampler, RNG, step)

    An existing ``output_dir``:

    - ``resume_from`` (a checkpoint, a run folder, or ``latest``) continues from that checkpoint; the
      log rows after it are dropped and written again. ``latest`` with no checkpoint in
      ``output_dir`` is an error naming the folder (never a silent fresh start);
    - otherwise a folder that holds a run is refused, unless ``overwrite`` is set or the run there
      stopped on a non-finite loss (``failed.json``): then its run files, checkpoints, ``best/`` and
      ``last/`` are deleted and training starts afresh (other files in the folder are left alone).

    A NaN or infinite training loss stops the run before that step's update with a
    :class:`NonFiniteLossError` naming the step; ``failed.json`` records it, the folder keeps what was
    written before (log, checkpoints), and rerunning the same command (or with ``overwrite``) starts
    afresh, while ``--resume latest`` continues from the last checkpoint (a deterministic run reaches
    the same loss again: change the config and start afresh instead).

    ``corpora`` trains on these in-memory corpora instead of loading ``config.data.train``: the config's
    sources are replaced by one ``memory:NAME:sha256:…`` entry per corpus (a content fingerprint, by
    size, no weights), so ``config.yaml`` records what was trained on and a resume with other corpora
    is refused like any other change of the training data.

    ``on_step`` is called on every rank after each optimizer step (after validation and checkpoint).
    Under ``torchrun`` the process group is created here on first use (and destroyed when the process
    exits, so several ``train`` calls in one process share it); an existing one is reused.
    """
    given: list[ParallelQACorpus] | None = None
    if corpora is not None:
        import hashlib

        from polyir.training.config import SourceSection

        given = list(corpora)
        if not given or not all(isinstance(c, ParallelQACorpus) for c in given):
            raise PolyirError("corpora: give one or more ParallelQACorpus objects")
        names = [c.name for c in given]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PolyirError(f"corpora: several corpora are named {', '.join(dupes)}; give them distinct names")
        sources = []
        for c in given:
            rows = [
                [p.pair_id, [[lang, e.query, e.positive, e.context, list(e.negatives)]
                             for lang, e in sorted(p.entries.items())]]
                for p in c.pairs
            ]
            digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]
            sources.append(SourceSection(source=f"memory:{c.name}:sha256:{digest}", name=c.name))
        config = config.model_copy(update={"data": config.data.model_copy(update={"train": sources})})
    trainer = _Trainer(config, on_step)
    trainer.given_corpora = given
    try:
        trainer.setup()
        return trainer.run()
    finally:
        trainer.close()
