"""Atomic output: every file polyir writes goes through here (temporary file, fsync, rename).

A crash, a kill, a full or read-only disk never leaves half a file under the final name and never
destroys the file being replaced: the old content stays until the new content is complete on disk.
OS failures become a :class:`OutputError` naming the path and the OS reason, which the CLI prints as
one line instead of a traceback.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from polyir.errors import PolyirError


class OutputError(PolyirError):
    """An output could not be written (disk full, read-only folder, a directory where a file goes)."""


def _reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def check_output_path(path: Path | str, *, what: str = "output") -> Path:
    """Fail before any work when ``path`` cannot become a file: a directory there, or an unwritable folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file name (e.g. {path / 'result.json'})")
    parent = path.parent
    probe = parent
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"{what} {path}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: cannot write in {probe} (permission denied)")
    return path


@contextmanager
def atomic_open(path: Path | str, mode: str = "w", *, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {path.parent}: {_reason(exc)}") from exc
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    tmp = _tmp_name(path)
    try:
        try:
            raw = open(tmp, "xb")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc
        with raw:
            fh: IO[Any] = raw if mode == "wb" else io.TextIOWrapper(raw, encoding=encoding, newline="\n")
            yield fh
            try:
                fh.flush()
                os.fsync(raw.fileno())
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc
            if fh is not raw:
                fh.detach()
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc
        _fsync_dir(path.parent)
    except OSError as exc:  # a write inside the block failed (ENOSPC, EIO, ...)
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; returns the path."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` atomically; returns the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_with(path: Path | str, writer: Callable[[IO[bytes]], Any]) -> Path:
    """Let ``writer(fh)`` fill a binary temporary file (``np.save``, ``savefig``...), then rename it."""
    with atomic_open(path, "wb") as fh:
        writer(fh)
    return Path(path)


def write_json(path: Path | str, data: Any, *, default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``data`` as indented UTF-8 JSON atomically; returns the path."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=default)
    return write_text(path, text)
