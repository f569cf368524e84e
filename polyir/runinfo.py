"""What a run records so it can be reproduced: library versions, machine, and timings."""

from __future__ import annotations

import json
import platform
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from polyir.atomic import write_json as atomic_write_json

_PACKAGES = ("polyir", "torch", "transformers", "sentence-transformers", "numpy", "faiss-cpu", "ranx")


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the libraries that shape results."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


class Timer:
    """Named wall-clock timings, collected into a dict for the run's JSON."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def read_json_file(path: Path | str) -> Any | None:
    """A JSON file's content (None when the file is absent); invalid JSON is a ``PolyirError`` naming the
    file and the line."""
    from polyir.errors import PolyirError

    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PolyirError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (temp file, then rename) so a crash never leaves half a file."""
    return atomic_write_json(path, data, default=_jsonable)


def json_text(data: Any) -> str:
    """``data`` as the indented JSON text ``write_json`` writes (numpy values and paths converted)."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable)


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
