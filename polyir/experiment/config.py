"""The experiment config: one base model, one step budget, several batch strategies, seeds and test sets."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from polyir.errors import PolyirError
from polyir.languages import parse_languages
from polyir.training.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    default_config_path,
    positive_steps,
    read_yaml,
)
from polyir.training.overrides import apply_overrides as apply_overrides_for

Arm = Literal["monolingual", "crosslingual", "hybrid"]
DEFAULT_EXPERIMENT = "experiment-default.yaml"

# The --quick preset: a first look in about a quarter of an hour on a 2-core CPU.
QUICK_OVERRIDES = [
    "train.optim.max_steps=24",
    "train.optim.batch_size=16",
    "train.validation.every=24",
    "train.validation.max_pairs=150",
    "train.validation.max_loss_batches=4",
    "test_sets=[{dataset: xquad-r, languages: [en, de, ru, th, zh]}]",
    "evaluation.precision=auto",
    "seeds=[0]",
    "alphas=[0.5]",
    "guard.sets=[{dataset: ntrex-sentences, languages: [de, sn, zh]}, {dataset: ntrex-documents, languages: [de, sn, zh]}]",
    "debias.max_per_language=300",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # inf/nan: "Input should be a finite number"


class TestSet(_Strict):
    """A registered LAReQA-style dataset to evaluate every model on."""

    dataset: str = "xquad-r"
    languages: list[str] | None = None

    @field_validator("languages", mode="before")
    @classmethod
    def _langs(cls, value: Any) -> Any:
        try:
            return parse_languages(value)
        except PolyirError as exc:
            raise ValueError(str(exc)) from None

    @property
    def label(self) -> str:
        return self.dataset if not self.languages else f"{self.dataset}[{','.join(self.languages)}]"


class EvaluationSection(_Strict):
    precision: Literal["fp32", "bf16", "fp16", "int8", "auto"] = Field(
        "fp32", description="auto: bf16 where the hardware has bf16 units (GPU, AMX/AVX-512 BF16 CPU), else fp32")

    @property
    def resolved_precision(self) -> str:
        """The precision ``auto`` means on this machine (recorded in every result's config)."""
        from polyir.models.encoder import inference_precision

        return inference_precision(self.precision)
    batch_size: int = Field(64, gt=0)
    resamples: int = Field(10_000, gt=0, description="sign flips per paired test")
    cache: bool = Field(True, description="cache every model's embeddings on disk (the base's across experiments; "
                        "a +debias row reuses its model's)")


GUARD_METRICS = ("mul_map", "cr_map", "cr_top1_non_en")
RESERVED_ROWS = ("base", "monolingual", "crosslingual", "hybrid")


class GuardSection(_Strict):
    """Guard sets from other domains: does fine-tuning cost what the base model could already do?

    Each set is split by document into a validation half (used to choose settings) and a test half
    (reported); a model significantly worse than the base on a guard metric is flagged.
    """

    sets: list[TestSet] = Field(default_factory=list, description="registered datasets or parallel files")
    validation_fraction: float = Field(0.5, gt=0, lt=1, description="share of documents for the validation half")
    split_seed: int = 0
    metrics: list[str] = Field(default_factory=lambda: list(GUARD_METRICS))
    significance: float = Field(0.05, gt=0, lt=1, description="p below which a loss against the base counts")

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        bad = [m for m in value if m not in GUARD_METRICS]
        if bad:
            raise ValueError(f"unknown guard metrics {bad}; choose from {list(GUARD_METRICS)}")
        return value


class VariantSection(_Strict):
    """One more trained row: an arm with training-config overrides (a regulariser, a learning rate...)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$", description="row name, e.g. hybrid+distill")
    arm: Arm = "hybrid"
    alpha: float | None = Field(None, ge=0, le=1, description="hybrid α (default: the α chosen on validation)")
    set: list[str] = Field(default_factory=list, description="training overrides, e.g. regularization.distill_weight=1")
    init: Literal["base", "base+debias"] = Field(
        "base", description="start from the base model, or from its de-biased copy (needs debias.rows to hold base)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value in RESERVED_ROWS or "@" in value:
            raise ValueError(f"variant name {value!r} is taken by a built-in row or holds '@'")
        return value


class SelectionSection(_Strict):
    """How the shipped configuration is picked among hybrid, the variants and the merges."""

    respect_guard: bool = Field(True, description="only candidates with no significant loss on guard validation halves")


class DebiasSection(_Strict):
    """The training-free baseline (polyir debias): a language-subspace projection fitted on each listed
    row's own model, evaluated as the row ``<row>+debias``. The fitting text must not be a test set."""

    fit: TestSet = Field(description="unlabeled text of each language, e.g. {dataset: ntrex-sentences, languages: [...]}")
    rows: list[str] = Field(default_factory=lambda: ["base", "hybrid"], description="rows to de-bias (base, arms, variants, merges)")
    method: Literal["subspace", "center"] = "subspace"
    rank: int | None = Field(None, ge=1, description="directions removed (default: languages - 1)")
    side: Literal["passage", "query", "both"] = "passage"
    max_per_language: int = Field(1000, ge=10)
    seed: int = 0


class CurveSection(_Strict):
    """A learning curve: each listed arm's run also saves its model at these steps (``snapshot_steps``), and
    every snapshot is scored on the validation split and the test sets (never used to choose anything)."""

    steps: list[int] = Field(min_length=1, description="optimizer steps, e.g. [120, 480, 960] (at most max_steps)")
    arms: list[Arm] | None = Field(None, description="arms with a curve (default: every arm)")
    test_sets: list[str] | None = Field(
        None, description="datasets the snapshots are tested on (default: every test set; the budget may say fewer)"
    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        return positive_steps(value)


class ExperimentConfig(_Strict):
    """What ``polyir experiment`` runs; the ``train`` section is a training config (same keys)."""

    name: str = "experiment"
    train: dict[str, Any] = Field(default_factory=dict, description="training config overrides")
    arms: list[Arm] = Field(default_factory=lambda: ["monolingual", "crosslingual", "hybrid"])
    alphas: list[float] = Field(default_factory=lambda: [0.5], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    test_sets: list[TestSet] = Field(default_factory=lambda: [TestSet()], min_length=1)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    include_base: bool = True
    guard: GuardSection = Field(default_factory=GuardSection)
    variants: list[VariantSection] = Field(default_factory=list)
    merge_weights: list[float] = Field(
        default_factory=list, description="WiSE-FT: share of the hybrid weights merged with the base"
    )
    selection: SelectionSection = Field(default_factory=SelectionSection)
    debias: DebiasSection | None = Field(None, description="the training-free baseline rows (<row>+debias)")
    pair_tests: list[str] = Field(
        default_factory=list,
        description="rows whose every X -> Y pair is tested against base, base+debias and the other arms "
        "(summary.json pair_tests, pairs.md), grouped by the languages' resource levels",
    )
    reuse_from: list[Path] = Field(
        default_factory=list,
        description="experiment folders whose finished models (runs/, merges/, debias/ of the same names) are "
        "evaluated here instead of training again, e.g. to test the default experiment's models on other tasks",
    )
    curve: CurveSection | None = Field(None, description="learning curve from each run's snapshots")
    output_dir: Path = Path("runs/experiment")

    @model_validator(mode="after")
    def _curve_test_sets(self) -> ExperimentConfig:
        if self.curve is not None and self.curve.test_sets is not None:
            known = {ts.dataset for ts in self.test_sets} | {ts.label for ts in self.test_sets}
            bad = [t for t in self.curve.test_sets if t not in known]
            if bad:
                raise ValueError(f"curve.test_sets {bad} are not test sets of this experiment (test_sets: {sorted(known)})")
        return self

    @model_validator(mode="after")
    def _debias_not_on_test(self) -> ExperimentConfig:
        needs = [v.name for v in self.variants if v.init == "base+debias"]
        if needs and (self.debias is None or "base" not in self.debias.rows):
            raise ValueError(f"variants {needs} start from base+debias: add a debias section whose rows hold base")
        if self.debias is not None:
            tests = {ts.dataset for ts in self.test_sets}
            if self.debias.fit.dataset in tests:
                raise ValueError(
                    f"debias.fit.dataset {self.debias.fit.dataset!r} is a test set; fit on other text (e.g. ntrex-sentences)"
                )
        return self

    @field_validator("merge_weights")
    @classmethod
    def _weights(cls, value: list[float]) -> list[float]:
        bad = [w for w in value if not 0.0 < w < 1.0]
        if bad:
            raise ValueError(f"merge_weights must lie strictly between 0 and 1 (0 is the base, 1 the hybrid), got {bad}")
        return sorted(dict.fromkeys(value))

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: list[VariantSection]) -> list[VariantSection]:
        names = [v.name for v in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be distinct: {dupes}")
        return value

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, value: list[float]) -> list[float]:
        bad = [a for a in value if not 0.0 <= a <= 1.0]
        if bad:
            raise ValueError(f"alphas must lie in [0, 1], got {bad}")
        return sorted(dict.fromkeys(value))

    @field_validator("arms")
    @classmethod
    def _arms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one of monolingual, crosslingual, hybrid")
        return list(dict.fromkeys(value))

    def train_config(self, arm: str, seed: int, alpha: float | None, output_dir: Path) -> TrainConfig:
        """The training config of one arm and seed (base defaults + ``train`` + the arm's settings)."""
        data = read_yaml(default_config_path())
        _deep_update(data, copy.deepcopy(self.train))
        data.setdefault("sampler", {})
        data["sampler"]["strategy"] = arm
        if alpha is not None:
            data["sampler"]["alpha"] = alpha
        data["seed"] = seed
        data["output_dir"] = str(output_dir)
        data["overwrite"] = True
        if self.curve is not None and arm in self.curve_arms:
            data["snapshot_steps"] = list(self.curve.steps)
        return config_from_dict(data)

    @property
    def curve_arms(self) -> list[str]:
        """Arms whose runs save snapshots for the learning curve."""
        if self.curve is None:
            return []
        return list(self.curve.arms) if self.curve.arms is not None else list(self.arms)

    def variant_config(
        self, variant: VariantSection, seed: int, alpha: float | None, output_dir: Path, *, init: str | None = None
    ) -> TrainConfig:
        """A variant's training config: its arm's config with the variant's overrides (``init``: the
        model folder to start from instead of the base, e.g. the base's de-biased copy)."""
        base = self.train_config(variant.arm, seed, alpha if variant.arm == "hybrid" else None, output_dir)
        sets = [*variant.set, *([f"model.spec={init}"] if init else [])]
        if not sets:
            return base
        data, origins = apply_overrides(base.model_dump(mode="json"), sets)
        return config_from_dict(data, origins=origins)

    def runs(self) -> list[tuple[str, float | None]]:
        """(arm, alpha) pairs to train; the hybrid arm once per alpha."""
        out: list[tuple[str, float | None]] = []
        for arm in self.arms:
            if arm == "hybrid":
                out.extend(("hybrid", a) for a in self.alphas)
            else:
                out.append((arm, None))
        return out


def run_name(arm: str, alpha: float | None, seed: int) -> str:
    """Folder name of one trained model: ``hybrid-a0.5-s0``, ``monolingual-s1``."""
    return f"{arm}-a{alpha:g}-s{seed}" if alpha is not None else f"{arm}-s{seed}"


def _deep_update(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def default_experiment_path() -> Path:
    return Path(str(resources.files("polyir") / "configs" / DEFAULT_EXPERIMENT))


def load_experiment(
    path: Path | str | None, overrides: Sequence[str] = (), *, quick: bool = False
) -> ExperimentConfig:
    """Read an experiment YAML (``None``: the packaged default), apply the quick preset and overrides."""
    data = read_yaml(path if path is not None else default_experiment_path())
    all_overrides = [*(QUICK_OVERRIDES if quick else []), *overrides]
    data = _apply(data, all_overrides)
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise PolyirError("invalid experiment config: " + "; ".join(lines)) from None
    # Validate the train section and every variant now, so a typo fails before hours of work.
    first = config.train_config(config.arms[0], config.seeds[0], config.alphas[0], config.output_dir / "check")
    if config.curve is not None and first.optim.max_steps is not None and max(config.curve.steps) > first.optim.max_steps:
        raise PolyirError(
            f"curve.steps: {max(config.curve.steps)} is past train.optim.max_steps={first.optim.max_steps}; "
            "give steps up to the budget"
        )
    for variant in config.variants:
        try:
            config.variant_config(variant, config.seeds[0], config.alphas[0], config.output_dir / "check")
        except PolyirError as exc:
            raise PolyirError(f"variants[{variant.name}]: {exc}") from None
    return config


def _apply(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``key.sub=value`` overrides through the shared parser; keys under ``train.`` are checked against
    the training config's schema (the ``train`` section is a training config)."""
    train_overrides = []
    own = []
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key.startswith("train.") and "=" in text:
            train_overrides.append(text.strip()[len("train."):])
        else:
            own.append(text)
    data, _ = apply_overrides_for(data, own, root=ExperimentConfig)
    if train_overrides:
        train = copy.deepcopy(data.get("train") or {})
        base = read_yaml(default_config_path())
        _deep_update(base, train)
        merged, _ = apply_overrides(base, train_overrides)
        data["train"] = merged
    return data
