"""Typed results of the public API (:mod:`polyir.api`): an evaluation, a comparison, a training run.

Each wraps the plain dict the CLI writes (``raw`` / ``to_dict()``), so files and objects never disagree:
``EvalResult.save`` writes exactly what ``polyir evaluate --output`` writes, ``EvalResult.load`` reads
such a file back.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyir.errors import DataFormatError, PolyirError

if TYPE_CHECKING:
    from polyir.models.encoder import Encoder
    from polyir.training.trainer import TrainResult

__all__ = ["EvalResult", "MetricDiff", "Comparison", "TrainRun"]


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as JSON types (what a saved file loads back as), without the loader's ``_path``."""
    from polyir.runinfo import json_text

    out = json.loads(json_text({k: v for k, v in data.items() if k != "_path"}))
    assert isinstance(out, dict)
    return out


@dataclass(frozen=True)
class EvalResult:
    """One evaluation (format ``polyir.evaluation/1``): headline metrics as attributes, details as dicts.

    ``hits`` maps k to Mul. hit@k; ``matrix`` maps query language X to candidate language Y to mAP;
    ``per_language`` and ``per_query`` (columns: ``query_id``, ``query_lang``, ``ap_mul``, ...) are the
    JSON sections of the same names; ``raw`` is the whole result dict.
    """

    model: str
    dataset: str
    mo_map: float | None
    cr_map: float | None
    mul_map: float | None
    rank_distance: float | None
    hits: dict[int, float | None]
    matrix: dict[str, dict[str, float | None]]
    per_language: dict[str, dict[str, Any]]
    per_query: dict[str, list[Any]]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """Wrap a result dict (from ``evaluate_encoder`` or a result JSON)."""
        if not isinstance(data, dict) or "metrics" not in data or "per_query" not in data:
            raise DataFormatError("not a polyir evaluation result (no 'metrics'/'per_query')")
        raw = _plain(data)
        m = raw["metrics"]
        hits = {int(k.split("@", 1)[1]): v for k, v in m.items() if k.startswith("mul_hit@")}
        return cls(
            model=str(raw.get("model") or ""),
            dataset=str(raw.get("dataset") or raw.get("task") or ""),
            mo_map=m.get("mo_map"),
            cr_map=m.get("cr_map"),
            mul_map=m.get("mul_map"),
            rank_distance=m.get("rank_distance"),
            hits=dict(sorted(hits.items())),
            matrix=(raw.get("matrix") or {}).get("by_language", {}),
            per_language=raw.get("per_language", {}),
            per_query=raw["per_query"],
            raw=raw,
        )

    @property
    def metrics(self) -> dict[str, float | None]:
        """Every headline metric by its JSON name (``mo_map``, ``mul_hit@10``, ...)."""
        return dict(self.raw["metrics"])

    def to_dict(self) -> dict[str, Any]:
        """The result dict (a copy), as ``polyir evaluate --output`` writes it."""
        return copy.deepcopy(self.raw)

    def save(self, path: Path | str) -> Path:
        """Write ``path`` (JSON) with ``NAME.heatmap.png`` and ``NAME.md`` beside it, as the CLI does."""
        from polyir.evaluation.report import write_outputs

        return write_outputs(self.raw, Path(path))["json"]

    @classmethod
    def load(cls, path: Path | str) -> EvalResult:
        """Read a result JSON written by :meth:`save` or ``polyir evaluate --output``."""
        from polyir.evaluation.compare import load_result

        return cls.from_dict(load_result(Path(path)))


@dataclass(frozen=True)
class MetricDiff:
    """B − A for one metric: the paired randomization test's p-value, its 95% bootstrap interval, the t-test."""

    metric: str
    a: float
    b: float
    diff: float
    ci: tuple[float, float]
    p_value: float  # paired randomization test over queries (the macro average recomputed)
    p_ttest: float
    mark: str  # "*" p < 0.05, "**" p < 0.01, "" otherwise
    b_better: bool | None  # None: no difference
    n_queries: int


@dataclass(frozen=True)
class Comparison:
    """Differences B − A in every metric both results hold; ``comparison["mul_map"]`` is one row."""

    a_model: str
    b_model: str
    rows: tuple[MetricDiff, ...]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """Wrap the dict of :func:`polyir.evaluation.compare.compare_results`."""
        rows = tuple(
            MetricDiff(
                metric=r["metric"], a=r["a"], b=r["b"], diff=r["diff"], ci=(r["ci"][0], r["ci"][1]),
                p_value=r["p_randomization"], p_ttest=r["p_ttest"], mark=r["mark"], b_better=r["b_better"],
                n_queries=int(r["n_queries"]),
            )
            for r in data["rows"]
        )
        return cls(str(data["a"].get("model") or "A"), str(data["b"].get("model") or "B"), rows, _plain(data))

    @property
    def metrics(self) -> list[str]:
        return [r.metric for r in self.rows]

    def __getitem__(self, metric: str) -> MetricDiff:
        for r in self.rows:
            if r.metric == metric:
                return r
        raise KeyError(f"{metric!r} is not compared; compared: {', '.join(self.metrics)}")

    def to_dict(self) -> dict[str, Any]:
        """The comparison dict (a copy), as ``polyir compare --output`` writes it."""
        return copy.deepcopy(self.raw)

    def to_table(self) -> str:
        """A plain-text table: metric, A, B, B − A, 95% CI, both p-values, significance mark."""
        head = ["metric", "A", "B", "B-A", "95% CI", "p (rand.)", "p (t)", ""]
        body = []
        for r in self.rows:
            f = "{:.1f}" if r.metric == "rank_distance" else "{:.4f}"
            d = "{:+.1f}" if r.metric == "rank_distance" else "{:+.4f}"
            body.append([r.metric, f.format(r.a), f.format(r.b), d.format(r.diff),
                         f"[{f.format(r.ci[0])}, {f.format(r.ci[1])}]", f"{r.p_value:.4f}", f"{r.p_ttest:.4f}", r.mark])
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        lines = [f"B - A   (A: {self.a_model}, B: {self.b_model})"]
        for row in [head, *body]:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])] + [row[-1]]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_table()


@dataclass(frozen=True)
class TrainRun:
    """A finished training run: its folder, the best and last model folders (absolute paths), the final
    validation figures (``metrics``) and the trainer's own record (``result``)."""

    output_dir: Path
    best_model: Path
    last_model: Path
    metrics: dict[str, float]  # the last validation row (val_loss, val_mul_map, ...); empty without validation
    best_metric: str | None
    best_value: float | None
    best_step: int | None
    steps: int
    stopped_early: bool
    losses: tuple[float, ...]
    result: TrainResult | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_result(cls, result: TrainResult) -> TrainRun:
        return cls(
            output_dir=Path(result.run_dir).resolve(), best_model=Path(result.best_dir).resolve(),
            last_model=Path(result.last_dir).resolve(),
            metrics=dict(result.final_metrics), best_metric=result.best_metric, best_value=result.best_value,
            best_step=result.best_step, steps=result.steps, stopped_early=result.stopped_early,
            losses=tuple(result.losses), result=result,
        )

    def encoder(self, which: str = "best", *, device: str = "auto") -> Encoder:
        """Load the ``best`` (by the validation metric) or ``last`` model of the run."""
        from polyir.models.resolve import load_encoder

        if which not in ("best", "last"):
            raise PolyirError(f"which must be 'best' or 'last', not {which!r}")
        return load_encoder(str(self.best_model if which == "best" else self.last_model), device=device)
