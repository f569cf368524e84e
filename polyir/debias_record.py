"""The record a de-biased model folder keeps beside its weights: ``polyir_debias.json``.

``polyir.debias.model`` writes it (fitting method, rank, languages, counts, source, side, base model and
its fingerprint, singular values); the model card (``polyir.models.card``) and the loader of a
de-biased encoder read it. The reader lives here, below both ``polyir.debias`` and ``polyir.models``,
because ``polyir.debias`` imports ``polyir.models`` (the encoder it fits on): reading the record from
``polyir.models.card`` through ``polyir.debias`` would close an import circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polyir.runinfo import read_json_file

__all__ = ["DEBIAS_FILE", "MEANS_FILE", "read_debias_record"]

DEBIAS_FILE = "polyir_debias.json"
MEANS_FILE = "language_means.npy"  # the per-language means of a ``center`` map, beside the record


def read_debias_record(folder: Path | str) -> dict[str, Any] | None:
    """The folder's ``polyir_debias.json`` (None when the model has no de-biasing map); invalid JSON is a
    ``PolyirError`` naming the file and the line."""
    return read_json_file(Path(folder) / DEBIAS_FILE)
