"""Atomic output: every file polyir writes goes through here (temporary file, fsync, rename).

A crash, a kill, a full or read-only disk never leaves half a file under the final name and never
destroys the file being replaced: the old content stays until the new content is complete on disk.
OS failures become a :class:`OutputError` naming the path and the OS reason, which the CLI prints as
one line instead of a traceback.
"""

from __future__ import annotations

import gzip
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


@contextmanager
def atomic_text(path: Path | str) -> Iterator[IO[str]]:
    """A UTF-8 text handle (``\n`` line ends) onto ``path``, written atomically as :func:`atomic_open`;
    gzip-compressed when the name ends in ``.gz`` (no timestamp, so equal content gives equal bytes)."""
    path = Path(path)
    if not path.name.endswith(".gz"):
        with atomic_open(path, "w") as out:
            yield out
        return
    with atomic_open(path, "wb") as raw, \
            gzip.GzipFile(filename=path.name, fileobj=raw, mode="wb", mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as out:
        yield out


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


@contextmanager
def atomic_folder(path: Path | str, *, overwrite: bool = False, marker: str = "modules.json") -> Iterator[Path]:
    """Build a folder beside ``path`` and swap it in only when the block completes.

    An existing ``path`` is replaced only with ``overwrite`` and only when it holds ``marker`` (a folder of
    the same kind) or is empty, so an unrelated folder is never mixed with or destroyed. Until the swap
    the old folder stays whole; on an exception the half-built folder is removed.
    """
    import shutil

    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{path} exists and is a file; give a folder name")
        if any(path.iterdir()):
            if not (path / marker).exists():
                raise OutputError(f"{path} is a non-empty folder that holds no {marker}; refusing to write into it")
            if not overwrite:
                raise OutputError(f"{path} already holds a model; pass --overwrite to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
        staging.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create a folder beside {path}: {_reason(exc)}") from exc
    old = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.old")
    try:
        yield staging
        try:
            if path.exists():
                os.replace(path, old)
            os.replace(staging, path)
        except OSError as exc:
            if old.exists() and not path.exists():
                os.replace(old, path)
            raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc
        _fsync_dir(path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
