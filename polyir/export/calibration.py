"""Calibration texts for static int8: a seeded sample of a dataset's queries and passages.

Static activation quantization fixes each activation's scale at export from the values a sample of
texts produces. The sample should look like what the model will encode (both kinds, every language)
and must not be a test set one reports on: pick a training or validation set (``mlqa-r``, say).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from polyir.errors import PolyirError

CALIBRATION_SIZE = 350  # texts; NNCF's statistics settle well before this on BERT-size encoders
CALIBRATION_SEED = 0


@dataclass(frozen=True)
class CalibrationSet:
    """Texts by kind, and where they came from (recorded in the export's manifest)."""

    source: str
    queries: list[str]
    passages: list[str]

    @property
    def size(self) -> int:
        return len(self.queries) + len(self.passages)

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "queries": len(self.queries), "passages": len(self.passages),
                "seed": CALIBRATION_SEED}


def _spread(items_by_language: dict[str, list[str]], total: int, rng: random.Random) -> list[str]:
    """About ``total`` texts, as evenly over the languages as their counts allow."""
    languages = sorted(items_by_language)
    picked: list[str] = []
    left = total
    for i, lang in enumerate(languages):
        share = left // (len(languages) - i)
        pool = items_by_language[lang]
        chosen = rng.sample(pool, min(share, len(pool)))
        picked.extend(chosen)
        left -= len(chosen)
    return picked


def calibration_texts(dataset: str, *, size: int = CALIBRATION_SIZE, data_dir: Path | str | None = None,
                      languages: str | None = None) -> CalibrationSet:
    """Half queries, half passages of ``dataset`` (a registered name or a test-set path), spread over
    its languages, sampled with a fixed seed."""
    from polyir.data.load import load_task

    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise PolyirError(f"--calibration-size must be an integer of at least 2 (texts), not {size!r}")
    task = load_task(dataset, data_dir=data_dir, languages=languages)
    queries: dict[str, list[str]] = defaultdict(list)
    passages: dict[str, list[str]] = defaultdict(list)
    for q in task.queries:
        queries[q.language].append(q.text)
    for c in dict((c.text, c) for c in task.candidates).values():  # each distinct passage once
        passages[c.language].append(c.text)
    if not queries or not passages:
        raise PolyirError(f"{dataset}: no queries or no passages to calibrate with")
    rng = random.Random(CALIBRATION_SEED)
    return CalibrationSet(str(dataset), _spread(queries, size // 2, rng), _spread(passages, size - size // 2, rng))
