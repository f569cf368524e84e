"""Where polyir looks for data and keeps its caches (settable through environment variables)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """User cache root: ``$POLYIR_CACHE_DIR`` or ``~/.cache/polyir``."""
    env = os.environ.get("POLYIR_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "polyir"
    return root


def data_dir_from_env() -> Path | None:
    """The data folder a user or CI points at with ``$POLYIR_DATA_DIR`` (None when unset)."""
    env = os.environ.get("POLYIR_DATA_DIR")
    return Path(env).expanduser() if env else None


def shared_data_dir() -> Path | None:
    """The read-only ``shared/data`` folder next to a checkout, if present (development machines)."""
    env = data_dir_from_env()
    if env is not None and env.is_dir():
        return env
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "shared" / "data", here.parent.parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return None
