"""The LAReQA protocol as a sentence-transformers evaluator.

    evaluator = LareqaEvaluator("xquad-r", data_dir="../shared/data", precision="bf16")
    evaluator(model)            # {"xquad-r_mo_map": ..., "xquad-r_cr_map": ..., "xquad-r_mul_map": ..., ...}
    SentenceTransformerTrainer(..., evaluator=evaluator)

Every figure is computed by polyir's own evaluation (:func:`polyir.evaluation.run.evaluate_encoder`) on
the sentence-transformers model wrapped as a polyir :class:`~polyir.models.encoder.Encoder`, so the
values equal ``polyir evaluate`` on the same model folder. Queries and passages are encoded with the
model's ``query`` / ``document`` prompts and its query / document lengths (what polyir saves), unless
``settings`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from polyir.data.types import RetrievalTask
from polyir.models.encoder import Encoder, EncoderSettings, Precision

try:
    from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator
except ImportError:  # sentence-transformers < 6
    from sentence_transformers.evaluation import SentenceEvaluator  # type: ignore[no-redef]

__all__ = ["LareqaEvaluator", "METRICS", "settings_of"]

METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10")
LOWER_IS_BETTER = {"rank_distance"}


def settings_of(model: Any) -> EncoderSettings:
    """polyir's encoder settings of a sentence-transformers model: prompts ``query`` and ``document``
    (``passage`` for older folders), the query / document lengths of its first module (its maximum
    sequence length where none is set)."""
    prompts = dict(getattr(model, "prompts", None) or {})
    first = model[0]
    max_len = int(getattr(first, "max_seq_length", None) or 512)
    query_len = getattr(first, "query_length", None) or max_len
    doc_len = getattr(first, "document_length", None) or max_len
    return EncoderSettings(
        query_prefix=prompts.get("query", ""),
        passage_prefix=prompts.get("document", prompts.get("passage", "")),
        query_max_length=int(query_len),
        passage_max_length=int(doc_len),
    )


class LareqaEvaluator(SentenceEvaluator):
    """Mo./Cr./Mul. mAP, rank distance and Mul. hit@k of a model on a polyir task.

    ``task``: a registered name (``xquad-r``), a path (what ``polyir evaluate --dataset`` takes) or a
    :class:`~polyir.data.types.RetrievalTask`; ``languages``, ``data_dir``, ``max_pairs`` select from a
    name or path. ``primary_metric`` (default ``mul_map``) is what the trainer's
    ``metric_for_best_model`` sees (prefixed with ``name``); ``rank_distance`` is lower-better.
    ``output_path`` (given by the trainer) receives polyir's full result JSON
    (``lareqa_<name>_results.json``: per-language figures, the X->Y matrix, per-query values).
    """

    def __init__(
        self,
        task: RetrievalTask | str | Path,
        *,
        languages: Sequence[str] | str | None = None,
        data_dir: str | Path | None = None,
        max_pairs: int | None = None,
        precision: Precision = "fp32",
        batch_size: int = 64,
        settings: EncoderSettings | None = None,
        name: str | None = None,
        primary_metric: str = "mul_map",
    ) -> None:
        super().__init__()
        from polyir.api import load_task

        if primary_metric not in METRICS:
            raise ValueError(f"primary_metric must be one of {', '.join(METRICS)}, not {primary_metric!r}")
        self.task = load_task(task, languages=languages, data_dir=data_dir, max_pairs=max_pairs)
        self.dataset = str(task) if isinstance(task, (str, Path)) else self.task.name
        self.name = name if name is not None else Path(self.dataset).name
        self.precision = precision
        self.batch_size = batch_size
        self.settings = settings
        self.primary_metric = primary_metric
        self.greater_is_better = primary_metric not in LOWER_IS_BETTER
        self.last_result: dict[str, Any] | None = None

    def encoder_for(self, model: Any) -> Encoder:
        """The model as a polyir Encoder (shares its weights and device)."""
        settings = self.settings or settings_of(model)
        device = str(getattr(model, "device", "cpu"))
        return Encoder(model, replace(settings), spec=self.name or "sentence-transformers", device=device)

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        from polyir.evaluation.run import EvalOptions, evaluate_encoder
        from polyir.runinfo import write_json

        options = EvalOptions(precision=self.precision, batch_size=self.batch_size, show_progress=False)
        result = evaluate_encoder(self.encoder_for(model), self.task, options, dataset=self.dataset)
        self.last_result = result
        if output_path is not None:
            write_json(Path(output_path) / f"lareqa_{self.name or 'task'}_results.json", result)
        metrics = {m: float("nan") if result["metrics"].get(m) is None else float(result["metrics"][m]) for m in METRICS}
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def get_config_dict(self) -> dict[str, Any]:
        return {"task": self.dataset, "precision": self.precision, "queries": len(self.task.queries)}
