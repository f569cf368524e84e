"""What every result file shares: its format tag, and NaN (an undefined value) as JSON's ``null``.

Per-query values are undefined where a query has nothing relevant (e.g. Mo. with no same-language
answer): NaN in arrays, ``null`` in a result JSON, skipped by every mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

RESULT_FORMAT = "polyir.evaluation/1"  # the "format" of every result JSON `polyir evaluate` writes


def nanmean(a: Any) -> float:
    """Mean over the defined (non-NaN) values; NaN when there is none (numpy would warn)."""
    a = np.asarray(a, dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else float("nan")


def to_json_floats(a: np.ndarray) -> list[float | None]:
    """An array as JSON numbers, NaN as ``None`` (``null``)."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(a).tolist()]


def from_json_floats(values: Sequence[Any]) -> np.ndarray:
    """JSON numbers back into a float64 array, ``None`` as NaN (the inverse of :func:`to_json_floats`)."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
