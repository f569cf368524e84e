"""The sampler's options: a typed, frozen pydantic model validated at construction.

:class:`SamplerOptions` are what a user chooses (a training config's ``sampler`` section is one);
:class:`SamplerConfig` adds what the trainer sets (``batch_size``, ``corpus_weights``). Every bad value
raises :class:`SamplerConfigError` (a :class:`~polyir.errors.PolyirError` and a ``ValueError``) naming
the option, also when the model is built directly in Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from polyir.errors import PolyirError

__all__ = [
    "MONOLINGUAL",
    "CROSSLINGUAL",
    "STRATEGIES",
    "PAIRINGS",
    "LANGUAGE_SAMPLINGS",
    "SamplerConfigError",
    "SamplerOptions",
    "SamplerConfig",
    "normalize_passage",
    "is_int",
]

MONOLINGUAL = "monolingual"
CROSSLINGUAL = "crosslingual"
STRATEGIES = (MONOLINGUAL, CROSSLINGUAL, "hybrid")
PAIRINGS = ("per_batch", "per_example")
LANGUAGE_SAMPLINGS = ("uniform", "size", "temperature")


class SamplerConfigError(PolyirError, ValueError):
    """A sampler option is invalid (wrong type, out of range, unknown choice)."""


def normalize_passage(text: str) -> str:
    """Whitespace-normalised text used to detect duplicate passages in a batch."""
    return " ".join(text.split())


def is_int(value: object) -> bool:
    """An integer (NumPy's too), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _choice(value: Any, choices: tuple[str, ...], what: str) -> Any:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


def _message(exc: ValidationError, cls: type[BaseModel]) -> str:
    """One line for pydantic's errors, in the sampler's own words (the option, the allowed values)."""
    unknown = sorted(str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden")
    if unknown:
        return f"unknown sampler option(s): {', '.join(unknown)}; known: {', '.join(sorted(cls.model_fields))}"
    parts = []
    for e in exc.errors():
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(msg if e["type"] == "value_error" else f"{'.'.join(str(x) for x in e['loc'])}: {msg}")
    return "; ".join(parts)


class SamplerOptions(BaseModel):
    """What batches to draw; shared by all ranks (rank and world size are sampler arguments).

    - ``strategy``: ``"monolingual"`` | ``"crosslingual"`` | ``"hybrid"``.
    - ``alpha``: probability of a monolingual batch under ``hybrid`` (ignored otherwise); [0, 1].
    - ``crosslingual_pairing``: ``"per_batch"`` (one (X, Y) per batch) | ``"per_example"``.
    - ``language_sampling``: ``"uniform"`` | ``"size"`` | ``"temperature"`` (p ∝ n ** temperature).
    - ``temperature``: exponent t >= 0 for ``"temperature"`` (0 = uniform, 1 = size).
    - ``languages``: restrict training to these language codes; ``None`` = all.
    - ``seed``: all randomness comes from one ``numpy`` PCG64 generator seeded with it.
    - ``drop_last``: epoch length rounds down (True) or up with re-used pairs (False).
    - ``allow_smaller_batches``: draw languages whose capacity is below the global batch size
      (their batches are smaller) instead of skipping them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Literal["monolingual", "crosslingual", "hybrid"] = "hybrid"
    alpha: float = 0.5
    crosslingual_pairing: Literal["per_batch", "per_example"] = "per_batch"
    language_sampling: Literal["uniform", "size", "temperature"] = "uniform"
    temperature: float = 0.5
    languages: tuple[str, ...] | None = None
    seed: int = 0
    drop_last: bool = True
    allow_smaller_batches: bool = False

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SamplerConfigError(_message(exc, type(self))) from None

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> Any:
        return _choice(value, STRATEGIES, "sampling strategy")

    @field_validator("crosslingual_pairing", mode="before")
    @classmethod
    def _pairing(cls, value: Any) -> Any:
        return _choice(value, PAIRINGS, "crosslingual_pairing")

    @field_validator("language_sampling", mode="before")
    @classmethod
    def _language_sampling(cls, value: Any) -> Any:
        return _choice(value, LANGUAGE_SAMPLINGS, "language_sampling")

    @field_validator("alpha", mode="before")
    @classmethod
    def _alpha(cls, value: Any) -> float:
        if not _is_real(value) or not (0.0 <= float(value) <= 1.0):
            raise ValueError(f"alpha must be a number in [0, 1], got {value!r}")
        return float(value)

    @field_validator("temperature", mode="before")
    @classmethod
    def _temperature(cls, value: Any) -> float:
        if not _is_real(value) or not (0.0 <= float(value) < math.inf):
            raise ValueError(f"temperature must be a finite number >= 0, got {value!r}")
        return float(value)

    @field_validator("languages", mode="before")
    @classmethod
    def _languages(cls, value: Any) -> Any:
        if value is None:
            return None
        langs = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
        if not langs or not all(isinstance(x, str) and x.strip() for x in langs):
            raise ValueError("languages must be a non-empty list of language codes, or None")
        return tuple(sorted({x.strip() for x in langs}))

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: Any) -> int:
        if not is_int(value):
            raise ValueError(f"seed must be an integer, got {value!r}")
        return int(value)

    @field_validator("drop_last", "allow_smaller_batches", mode="before")
    @classmethod
    def _flag(cls, value: Any, info: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{info.field_name} must be true or false, got {value!r}")
        return value

    @property
    def needs_monolingual(self) -> bool:
        """Whether this strategy can draw monolingual batches."""
        return self.strategy == MONOLINGUAL or (self.strategy == "hybrid" and self.alpha > 0)

    @property
    def needs_crosslingual(self) -> bool:
        """Whether this strategy can draw crosslingual batches."""
        return self.strategy == CROSSLINGUAL or (self.strategy == "hybrid" and self.alpha < 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for run logs and sampler state)."""
        d = self.model_dump()
        d["languages"] = list(self.languages) if self.languages is not None else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a dict (e.g. a YAML section); unknown keys are an error, not ignored."""
        return cls(**dict(data))


class SamplerConfig(SamplerOptions):
    """The sampler's options plus what the trainer sets.

    - ``batch_size``: examples per rank per step (>= 1).
    - ``corpus_weights``: corpus name -> weight >= 0 naming every corpus; ``None`` = by size.
    """

    batch_size: int = 32
    corpus_weights: dict[str, float] | None = None

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> int:
        if not is_int(value) or value < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {value!r}")
        return int(value)

    @field_validator("corpus_weights", mode="before")
    @classmethod
    def _corpus_weights(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping) or not value:
            raise ValueError("corpus_weights must be a non-empty mapping name -> weight, or None")
        weights: dict[str, float] = {}
        for name, w in value.items():
            if not isinstance(name, str) or not _is_real(w) or not (0.0 <= float(w) < math.inf):
                raise ValueError(f"corpus weight for {name!r} must be a finite number >= 0, got {w!r}")
            weights[name] = float(w)
        if sum(weights.values()) <= 0:
            raise ValueError("corpus_weights must have at least one positive weight")
        return dict(sorted(weights.items()))
