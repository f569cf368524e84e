"""The training loop: set-up from a config, optimizer steps, validation, checkpoints, the run record.

Each concern lives in its own module; this one wires them: :mod:`~polyir.training.data` (sources,
held-out split), :mod:`~polyir.training.distributed` (process group, DDP),
:mod:`~polyir.training.losses` (the weighted objective), :mod:`~polyir.training.gradcache` (how a
micro-batch's gradient is computed), :mod:`~polyir.training.validation`,
:mod:`~polyir.training.checkpoint` (state and resume checks) and :mod:`~polyir.training.rundir`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyir.data.types import ParallelQACorpus
from polyir.errors import PolyirError
from polyir.runinfo import Timer, versions, write_json
from polyir.sampling import Batch, HybridBatchSampler, SamplerConfig, SamplerStats
from polyir.training import checkpoint as ckpt
from polyir.training import distributed as distr
from polyir.training.config import (
    SamplerSection,
    TrainConfig,
    config_to_dict,
    dump_config,
    resolve_cpu_auto,
    resolve_precision,
)
from polyir.training.data import load_sources, split_pairs
from polyir.training.gradcache import Backward, DirectBackward, GradCache
from polyir.training.losses import StepTexts, build_objective
from polyir.training.optim import build_optimizer, build_scaler, build_scheduler, freeze_parts
from polyir.training.records import NonFiniteLossError, StepInfo, TrainResult
from polyir.training.rundir import FAILED_MARKER, append_log, prepare_run_dir, snapshot_dir, trim_log
from polyir.training.validation import Validator

__all__ = ["Trainer"]


class Trainer:
    """One run: :meth:`setup` builds everything from the config, :meth:`run` trains to the end."""

    def __init__(
        self,
        config: TrainConfig,
        on_step: Callable[[StepInfo], None] | None = None,
        corpora: Sequence[ParallelQACorpus] | None = None,
    ):
        self.config = config
        self.on_step = on_step
        self.given_corpora = list(corpora) if corpora is not None else None
        self.timer = Timer()
        self.d = distr.init_distributed()
        self.run_dir = Path(config.output_dir)
        self.log_path = self.run_dir / "log.jsonl"

    # -------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg, d, o = self.config, self.d, self.config.optim
        self.resume_path = ckpt.resolve_resume(cfg.resume_from, cfg.output_dir)
        prepare_run_dir(self.run_dir, resuming=self.resume_path is not None, overwrite=cfg.overwrite, is_main=d.is_main)
        distr.barrier(d)
        ckpt.seed_everything(cfg.seed + d.rank)
        with self.timer("load_data"):
            self._setup_data()
        if o.max_steps is not None:
            self.total_steps = o.max_steps
        else:
            self.total_steps = max(1, math.ceil((o.epochs or 1.0) * len(self.sampler) / o.grad_accumulation))
        with self.timer("load_model"):
            from polyir.models.resolve import load_encoder

            # with an adapter the base model is loaded as at the start; the adapter's weights come from
            # the checkpoint once the resume checks have passed (_load_checkpoint)
            resume_model = self.resume_path is not None and not cfg.adapter.enabled
            spec = str(self.resume_path / "model") if resume_model else cfg.model.spec
            self.encoder = load_encoder(
                spec,
                device=distr.device_for(cfg.model.device, d),
                query_max_length=cfg.model.query_max_length,
                passage_max_length=cfg.model.passage_max_length,
            )
            self.encoder.spec = cfg.model.spec
            if cfg.adapter.enabled:
                from polyir.models.adapter import attach_lora

                a = cfg.adapter
                attach_lora(self.encoder, r=a.r, alpha=a.alpha, dropout=a.dropout, target_modules=a.target_modules)
        self._check_matryoshka_dims()
        self.device = self.encoder.device
        self.precision = resolve_precision(o.precision, self.device)
        self.freeze = resolve_cpu_auto(o.freeze_word_embeddings, self.device)
        self.params = freeze_parts(self.encoder, word_embeddings=self.freeze, lower_layers=o.freeze_layers)
        self.fast_dropout = resolve_cpu_auto(o.fast_dropout, self.device)
        if self.fast_dropout:
            from polyir.training.fast_dropout import use_fast_dropout

            use_fast_dropout(self.encoder.transformer)
        # under torchrun: DDP, rank 0's weights everywhere. GradCache replays its own chunks' dropout, so
        # it forwards as it cached (no length groups).
        self.model = distr.TrainModel(self.encoder, d, group_overhead=o.length_group_overhead
                                      if o.group_by_length and not o.grad_cache else None)
        self.optimizer = build_optimizer(self.params, o, self.device)
        self.scheduler, self.warmup_steps = build_scheduler(self.optimizer, o, self.total_steps)
        self.scaler = build_scaler(self.precision)
        self.backward: Backward = (
            GradCache(o.grad_cache_chunk_size, self.precision) if o.grad_cache else DirectBackward(self.precision)
        )
        self.validator = Validator(cfg, self.val_corpora, self.sampler_config, d.world_size)
        self.objective = build_objective(
            cfg, cross_device=o.cross_device_negatives and d.active, rank=d.rank, device=self.device,
            teacher=self._teacher(), pair_index=self._pair_index(),
        )
        self.step = 0
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.stopped = False  # a resumed run that had stopped early stays stopped
        self.last_row: dict[str, Any] = {}
        self.elapsed_before = 0.0
        self.resume_rng: dict[str, Any] | None = None
        if self.resume_path is not None:
            self._load_checkpoint(self.resume_path)
        if d.is_main:
            dump_config(cfg, self.run_dir / "config.yaml")
            write_json(self.run_dir / "validation_split.json", self.split_info)
            trim_log(self.log_path, resuming=self.resume_path is not None, step=self.step)

    def _check_matryoshka_dims(self) -> None:
        dims, full = self.config.optim.matryoshka_dims or [], self.encoder.dim
        if any(dim > full for dim in dims):
            raise PolyirError(
                f"optim.matryoshka_dims: {max(dims)} is larger than the model's embedding dimension {full} "
                f"({self.config.model.spec}); give dimensions up to {full}"
            )

    def _save_model(self, path: Path) -> None:
        """best/ and last/: with an adapter, merged or as an adapter folder (adapter.save)."""
        if self.config.adapter.enabled:
            from polyir.models.adapter import save_encoder

            save_encoder(self.encoder, path, self.config.adapter.save)
        else:
            self.encoder.save(path)

    def _save_snapshot(self, step: int) -> None:
        """``snapshots/step-N/``: the model as it is after optimizer step N (written whole or not at all)."""
        from polyir.atomic import atomic_folder

        with atomic_folder(snapshot_dir(self.run_dir, step), overwrite=True) as staging:
            self._save_model(staging)

    def _setup_data(self) -> None:
        """Training and held-out corpora, and this rank's sampler."""
        cfg = self.config
        corpora = self.given_corpora if self.given_corpora is not None else load_sources(cfg)
        self.train_corpora: list[ParallelQACorpus] = []
        self.val_corpora: list[ParallelQACorpus] = []
        self.split_info: dict[str, Any] = {}
        for c in corpora:
            tr, va = split_pairs(c, fraction=cfg.validation.fraction, count=cfg.validation.count, seed=cfg.validation_seed,
                                 group=cfg.validation.group)
            self.train_corpora.append(tr)
            if len(va):
                self.val_corpora.append(va)
            self.split_info[c.name] = {"train_pairs": len(tr), "validation_pairs": len(va),
                                       "validation_pair_ids": [p.pair_id for p in va.pairs]}
        weights = None
        if all(s.weight is not None for s in cfg.data.train):
            weights = {c.name: float(s.weight) for c, s in zip(corpora, cfg.data.train)}  # type: ignore[arg-type]
        self.sampler_config = SamplerConfig.from_dict(
            {**cfg.sampler_options(), "batch_size": cfg.optim.batch_size, "seed": cfg.sampler_seed,
             "corpus_weights": weights}
        )
        self.sampler = HybridBatchSampler(self.train_corpora, self.sampler_config, rank=self.d.rank,
                                          world_size=self.d.world_size)

    def _pair_index(self) -> dict[tuple[str, str], Any]:
        if not self.config.regularization.align:
            return {}
        return {(c.name, p.pair_id): p for c in self.train_corpora for p in c.pairs}

    def _teacher(self) -> Any:
        """The teacher's embeddings for distillation (None without it), precomputed when configured."""
        r, cfg = self.config.regularization, self.config
        if not r.distill:
            return None
        from polyir.models.resolve import load_encoder
        from polyir.training.regularizers import TeacherEmbeddings

        with self.timer("teacher"):
            teacher = load_encoder(r.teacher or cfg.model.spec, device=str(self.device),
                                   query_max_length=cfg.model.query_max_length,
                                   passage_max_length=cfg.model.passage_max_length)
            for p in teacher.st.parameters():
                p.requires_grad_(False)
            embeddings = TeacherEmbeddings(teacher, precision=self.precision, batch_size=64)
            if r.teacher_precompute:
                entries = [e for c in self.train_corpora for p in c.pairs for e in p.entries.values()]
                embeddings.precompute(
                    (e.query for e in entries),
                    (t for e in entries for t in (e.positive, *e.negatives[: cfg.optim.hard_negatives])),
                    show_progress=cfg.progress and self.d.is_main,
                )
        return embeddings

    # -------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, stopped: bool = False) -> None:
        d = self.d
        rng_states = distr.all_gather_object(ckpt.rng_state(self.device), d)
        stats = distr.all_gather_object(self.sampler.stats.to_dict(), d)
        if not d.is_main:
            return
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
        ckpt.write_checkpoint(self.run_dir, self.step, state, self.encoder, keep=self.config.keep_checkpoints)

    def _load_checkpoint(self, path: Path) -> None:
        state = ckpt.read_checkpoint(path, self.device)
        saved = _with_defaults(dict(state.get("config") or {}), config_to_dict(TrainConfig()))
        if isinstance(saved.get("sampler"), dict):  # older checkpoints saved only the options given
            try:
                saved["sampler"] = SamplerSection(**saved["sampler"]).model_dump(mode="json")
            except PolyirError:
                pass  # left as saved: the comparison names the difference
        ckpt.check_resumable({**state, "config": saved}, path, world_size=self.d.world_size,
                             config=config_to_dict(self.config), total_steps=self.total_steps)
        if self.config.adapter.enabled:
            from polyir.models.adapter import load_adapter_weights

            load_adapter_weights(self.encoder, path / "model")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError) as exc:
            raise PolyirError(f"resume_from: {path} does not fit this model / optimizer ({exc})") from exc
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])  # checks the corpus fingerprint and the config
        self.sampler.stats = SamplerStats.from_dict(state["sampler_stats"][self.d.rank])
        self.step = int(state["step"])
        self.best_value = state["best_value"]
        self.best_step = state["best_step"]
        self.bad_evals = int(state["bad_evals"])
        self.stopped = bool(state.get("stopped_early", False))
        self.last_row = dict(state.get("last_validation") or {})
        self.elapsed_before = float(state["elapsed"])
        self.resume_rng = state["rng"][self.d.rank]

    def _log(self, row: dict[str, Any]) -> None:
        if self.d.is_main:
            append_log(self.log_path, row)

    # -------------------------------------------------------------- one optimizer step
    def _micro_step(self, batch: Batch, accum: int, sync: bool) -> float:
        texts = StepTexts.of(batch, self.config.optim.hard_negatives)
        self.objective.prepare(texts)

        def loss_fn(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            return self.objective(q, p, texts) / accum

        scale = self.scaler.scale if self.scaler is not None else None
        return accum * self.backward(self.model, texts.queries, texts.passages, loss_fn, sync=sync, scale=scale)

    def _optimizer_step(self, batches: list[Batch]) -> float:
        """One update; returns the step's loss (mean over micro-batches and ranks, the same on every rank)."""
        o = self.config.optim
        self.encoder.st.train()
        n = len(batches)
        # DDP all-reduces the gradients in the last micro-batch's backward (the others accumulate).
        losses = [self._micro_step(b, n, sync=i == n - 1) for i, b in enumerate(batches)]
        loss = distr.all_reduce_mean([float(np.mean(losses))], self.d, self.device)[0]
        if not math.isfinite(loss):  # every rank sees the same mean, so every rank stops here
            self._fail_non_finite(loss)
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
        last = ckpt.latest_checkpoint(self.run_dir)
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
                row = self.validator.measure(self.encoder, self.precision, self.step)
        row = distr.broadcast_object(row, self.d)
        assert row is not None
        return row

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
                    self._save_model(self.run_dir / "best")
        else:
            self.bad_evals += 1
        row["best"] = improved
        return improved

    # -------------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        cfg, d, o = self.config, self.d, self.config.optim
        self.t_start = time.perf_counter()
        if self.resume_rng is not None:
            ckpt.set_rng_state(self.resume_rng, self.device)
        start_step = self.step
        losses: list[float] = []
        val_rows: list[dict[str, Any]] = []
        stopped_early = self.stopped
        window: list[float] = []
        window_pairs, window_time = 0, 0.0
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step",
                   disable=not (cfg.progress and d.is_main), dynamic_ncols=True)
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
                    parts = self.objective.take_parts()
                    self._log({
                        "type": "train", "step": self.step, "epoch": batches[-1].epoch,
                        "loss": float(np.mean(window)), "lr": lr,
                        "pairs_per_s": window_pairs / window_time if window_time > 0 else None,
                        "kinds": [b.kind for b in batches],
                        **{f"loss_{k}": float(np.mean(v)) for k, v in parts.items() if v},
                    })
                    window, window_pairs, window_time = [], 0, 0.0
                stop = False
                is_last = self.step == self.total_steps
                if self.validator.enabled and (self.step % cfg.eval_every == 0 or is_last):
                    row = self._validate()
                    self._update_best(row)
                    self._log(row)
                    val_rows.append(row)
                    self.last_row = row
                    if cfg.validation.patience is not None and self.bad_evals >= cfg.validation.patience:
                        stop = True
                if self.step in cfg.snapshot_steps and d.is_main:
                    with self.timer("snapshot"):
                        self._save_snapshot(self.step)
                if self.step % cfg.save_every == 0 or is_last or stop:
                    with self.timer("checkpoint"):
                        self._save_checkpoint(stopped=stop)
                if self.on_step is not None:
                    self.on_step(StepInfo(self.step, self.total_steps, d.rank, d.world_size, loss, lr, batches))
                if stop:
                    stopped_early = True
                    break
        finally:
            bar.close()
        return self._finish(start_step, losses, val_rows, stopped_early)

    def _finish(self, start_step: int, losses: list[float], val_rows: list[dict[str, Any]], stopped_early: bool) -> TrainResult:
        cfg, d = self.config, self.d
        stats = distr.all_gather_object(self.sampler.stats.to_dict(), d)
        seconds = time.perf_counter() - self.t_start
        best_dir, last_dir = self.run_dir / "best", self.run_dir / "last"
        final = {k: v for k, v in self.last_row.items() if k.startswith("val_")}
        if d.is_main:
            with self.timer("save"):
                self._save_model(last_dir)
                if not (best_dir / "modules.json").exists():  # no validation, or no value yet
                    self._save_model(best_dir)
            write_json(self.run_dir / "run.json", {
                "seed": cfg.seed, "model": cfg.model.spec, "world_size": d.world_size, "device": str(self.device),
                "precision": self.precision, "freeze_word_embeddings": self.freeze,
                "fast_dropout": self.fast_dropout, "freeze_layers": cfg.optim.freeze_layers,
                "trainable_parameters": sum(p.numel() for p in self.params),
                "steps": self.step, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "resumed_from": str(self.resume_path) if self.resume_path else None,
                "resumed_at_step": start_step if self.resume_path else None,
                "stopped_early": stopped_early,
                "best": {"metric": cfg.validation.metric, "step": self.best_step, "value": self.best_value},
                "final_metrics": final,
                "final_train_loss": losses[-1] if losses else None,
                "split": {name: {k: v for k, v in info.items() if k != "validation_pair_ids"}
                          for name, info in self.split_info.items()},
                "sampler": self.sampler.describe(),
                "sampler_stats": stats if d.active else stats[0],
                "timings": {**self.timer.seconds, "wall_this_call": round(seconds, 3),
                            "wall_total": round(self.elapsed_before + seconds, 3)},
                "versions": versions(),
                "config": config_to_dict(cfg),
            })
        distr.barrier(d)
        return TrainResult(
            run_dir=self.run_dir, steps=self.step, total_steps=self.total_steps, stopped_early=stopped_early,
            best_step=self.best_step, best_metric=cfg.validation.metric if self.validator.enabled else None,
            best_value=self.best_value, final_metrics={k: v for k, v in final.items() if v is not None},
            losses=losses, best_dir=best_dir, last_dir=last_dir, seconds=seconds, resumed_from=self.resume_path,
            validation=val_rows, encoder=self.encoder,
        )


def _with_defaults(saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with the keys added since it was written set to their defaults (which keep
    the old behaviour), so that adding a config key never makes older checkpoints unresumable."""
    if not saved:
        return saved
    out = dict(saved)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif key != "sampler" and isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = _with_defaults(out[key], value)
    return out
