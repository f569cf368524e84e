"""Dataset registry: named datasets, where their files come from, and how to load them.

A dataset is a ``DatasetSpec`` (files with public URL and sha256, license, language list) of some
``kind``; a kind names the loader that turns the files into a ``RetrievalTask`` and/or a
``ParallelQACorpus``. New sources (e.g. ``ntrex``, ``miracl``) are added with ``register_kind`` and
``register``.

Where each file is looked for, in order:

1. ``data_dir`` (the CLI's ``--data-dir``) or else ``$POLYIR_DATA_DIR``: ``<dir>/<relative path>``;
2. the user cache ``cache_dir()/"data"/<relative path>``;
3. a download from the public URL into the cache, fetched by ``pooch`` (to a temporary file, sha256
   checked, then renamed; a mismatch deletes the temporary file and raises ``DataFormatError``).

Local files are checksummed only when asked (``verify=True``); downloads always are, except files
whose sha256 polyir does not know (``DataFile.sha256 == ""``: NTREX-128 languages never copied to
the shared data): they come from a commit-pinned URL and their readers record the sha256 they read.

A dataset may offer more languages than it loads by default (``DatasetSpec.default_languages``),
accept pivot languages that have no file of their own (``pivot_languages``: MAFAND-MT's en/fr), and
hold a fixed number of file languages per task (``languages_per_task``: one MAFAND-MT pair).
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pooch

from polyir.atomic import OutputError
from polyir.data import catalog as _catalog  # noqa: F401  (registers the built-in datasets)
from polyir.data import formats as _formats
from polyir.data import sources as _sources
from polyir.data.specs import (
    LOADERS,
    REGISTRY,
    SOURCE_SCHEMES,
    DataFile,
    DatasetSpec,
    KindLoader,
    get_spec,
    list_specs,
    register,
    register_kind,
)
from polyir.data.types import ParallelQACorpus, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError
from polyir.languages import parse_languages, select_languages
from polyir.paths import cache_dir, data_dir_from_env

__all__ = [
    "LOADERS", "REGISTRY", "SOURCE_SCHEMES", "DataFile", "DatasetSpec", "KindLoader", "cache_data_dir",
    "download_file", "get_spec", "list_specs", "load_corpus", "load_task", "register", "register_kind",
    "resolve_file_sets", "resolve_files", "resolve_shared_files", "status",
]

DOWNLOAD_TIMEOUT = 60.0  # seconds per connection attempt
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- file resolution


def _user_root(data_dir: Path | str | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return data_dir_from_env()


def cache_data_dir() -> Path:
    """The folder downloads go to: ``cache_dir()/"data"``."""
    return cache_dir() / "data"


sha256_of = _sources.sha256_of


def _check(path: Path, expected: str) -> None:
    if not expected:  # not pinned: nothing to compare with (the reader records what it read)
        return
    got = sha256_of(path)
    if got != expected:
        raise DataFormatError(
            f"{path}: sha256 mismatch (expected {expected}, got {got}); the file is not the"
            " published one: replace it or delete it so it is downloaded again"
        )


def _open_url(url: str, timeout: float) -> IO[bytes]:
    """Open ``url`` for reading (the one network call; tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "polyir"})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (https URLs from the registry)


class _NetworkFailed(Exception):
    """Opening or reading the URL failed (carried out of pooch, then re-raised as the original error)."""


class _Downloader:
    """pooch's ``downloader``: streams :func:`_open_url` into the temporary file pooch names, fsyncs it,
    and keeps the sha256 it read (for the mismatch message). Write errors are an ``OutputError`` naming
    the final ``target``, network errors a ``_NetworkFailed``."""

    def __init__(self, target: Path, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.sha256: str | None = None  # set once the whole file is written

    def __call__(self, url: str, output_file: str, pooch_instance: object) -> None:
        digest = hashlib.sha256()
        try:
            response = _open_url(url, self.timeout)
        except OSError as exc:
            raise _NetworkFailed from exc
        with response:
            try:  # pooch's temporary file is private (0600): make it anew, so the file gets the
                os.unlink(output_file)  # permissions of any file polyir writes (0666 less the umask)
                out = open(output_file, "xb")
            except OSError as exc:
                raise _write_error(self.target, exc) from exc
            with out:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except OSError as exc:
                        raise _NetworkFailed from exc
                    if not chunk:
                        break
                    digest.update(chunk)
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _write_error(self.target, exc) from exc
                try:  # on disk before pooch renames it onto the target (as polyir.atomic does)
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise _write_error(self.target, exc) from exc
        self.sha256 = digest.hexdigest()


def _write_error(target: Path, exc: OSError) -> OutputError:
    """``OutputError`` for a failed write of ``target`` (the OS reason, as ``polyir.atomic`` words it)."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else None
    reason = exc.strerror or (cause.strerror if cause is not None else None) or exc.__class__.__name__
    return OutputError(f"cannot write {target}: {reason}")


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch logs every download to stderr at INFO level; polyir's downloads stay silent, as before."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def download_file(url: str, target: Path, sha256: str, *,
                  timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Fetch ``url`` into ``target`` with ``pooch.retrieve``: the bytes go to a temporary file beside
    ``target`` (written by :class:`_Downloader`, fsynced), pooch checks its sha256 and renames it onto
    ``target`` only when it matches (``sha256 == ""``: a file polyir has no checksum for, kept as
    fetched). A ``target`` already there and matching (any, when unpinned) is kept without a download.

    Network failures propagate as ``OSError``/``URLError`` (the caller decides what they mean); a full
    or read-only disk is an ``OutputError``; a checksum mismatch discards the download and raises
    ``DataFormatError``. In every failure ``target`` is left as it was.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {target.parent}: {exc.strerror or exc.__class__.__name__}") from exc
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a directory")
    fetch = _Downloader(target, timeout)
    try:
        with _quiet_pooch():
            pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None, fname=target.name,
                           path=target.parent, downloader=fetch)
    except _NetworkFailed as failed:
        raise failed.__cause__ from None  # type: ignore[misc]
    except ValueError as exc:
        if fetch.sha256 is None or fetch.sha256 == sha256:
            raise  # not pooch's checksum verdict
        raise DataFormatError(
            f"{url}: sha256 mismatch after download (expected {sha256}, got {fetch.sha256});"
            " the download was discarded"
        ) from None
    except OutputError:
        raise
    except OSError as exc:  # pooch's temporary file or rename (permissions, disk)
        raise _write_error(target, exc) from exc
    return target


def _locate(f: DataFile, roots: Sequence[Path]) -> tuple[Path, Path] | None:
    """(root, path) of the first root holding ``f``."""
    for root in roots:
        candidate = root / f.path
        if candidate.is_file():
            return root, candidate
    return None


def _select(spec: DatasetSpec, languages: Sequence[str] | str | None) -> list[str]:
    """The file languages a selection loads: the default ones when none is given, pivots left out."""
    source = f"dataset {spec.name}"
    wanted = parse_languages(languages)
    if wanted is None:
        chosen = list(spec.default_languages or spec.languages)
    else:
        select_languages((*spec.languages, *spec.pivot_languages), wanted, source=source)
        chosen = [c for c in wanted if c not in spec.pivot_languages]
        if not chosen:
            raise EmptySelectionError(
                f"{source}: {', '.join(wanted)} only names pivot languages; add one of {', '.join(spec.languages)}"
            )
    per_task = spec.languages_per_task
    if per_task is not None and len(chosen) != per_task:
        count = "one" if per_task == 1 else str(per_task)
        got = "none was chosen" if wanted is None else f"got {', '.join(chosen)}"
        raise EmptySelectionError(
            f"{source}: a task holds {count} of {', '.join(spec.languages)} (each with its own pivot-side"
            f" text), {got}; e.g. --languages {','.join(spec.languages[:per_task])}"
        )
    return select_languages(spec.languages, chosen, source=source)


def _missing_message(spec: DatasetSpec, missing: list[DataFile], user_root: Path | None,
                     reason: str) -> str:
    folder = spec.files[0].path.split("/")[0] if spec.files else spec.name
    looked = [str(p) for p in ([user_root] if user_root else []) + [cache_data_dir()]]
    return (
        f"dataset {spec.name!r}: {len(missing)} file(s) not found locally"
        f" ({', '.join(f.path for f in missing)}; looked in {', '.join(looked)}) and {reason}."
        f" Either set POLYIR_DATA_DIR (or pass --data-dir) to a folder holding {folder}/…,"
        f" or run once with network access so they download into {cache_data_dir()}"
    )


def resolve_files(name: str, data_dir: Path | str | None = None,
                  languages: Sequence[str] | str | None = None, download: bool = True,
                  verify: bool = False) -> dict[str, Path]:
    """Local paths of a dataset's per-language files, downloading missing ones if allowed.

    ``verify`` checks the sha256 of files found locally (downloads are always checked).
    For datasets with several files per language (e.g. MIRACL) see ``resolve_file_sets``.
    """
    spec = get_spec(name)
    sets = resolve_file_sets(name, data_dir, languages, download=download, verify=verify)
    return {lang: roles[spec.file_for(lang).role] for lang, roles in sets.items()}


def resolve_file_sets(name: str, data_dir: Path | str | None = None,
                      languages: Sequence[str] | str | None = None, download: bool = True,
                      verify: bool = False) -> dict[str, dict[str, Path]]:
    """Like ``resolve_files``, for every file of each language: language -> role -> local path."""
    spec = get_spec(name)
    selected = _select(spec, languages)
    user_root = _user_root(data_dir)
    roots = ([user_root] if user_root else []) + [cache_data_dir()]
    found: dict[str, dict[str, Path]] = {lang: {} for lang in selected}
    missing: list[tuple[str, DataFile]] = []
    for lang in selected:
        for f in spec.files_for(lang):
            hit = _locate(f, roots)
            if hit is None:
                missing.append((lang, f))
                continue
            path = hit[1]
            if verify:
                _check(path, f.sha256)
            found[lang][f.role] = path
    if missing and not download:
        raise DatasetNotFoundError(
            _missing_message(spec, [f for _, f in missing], user_root, "downloading is turned off")
        )
    for i, (lang, f) in enumerate(missing):
        try:
            found[lang][f.role] = download_file(f.url, cache_data_dir() / f.path, f.sha256)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DatasetNotFoundError(_missing_message(
                spec, [m for _, m in missing[i:]], user_root,
                f"the download of {f.url} failed ({reason})",
            )) from exc
    return found


def resolve_shared_files(name: str, data_dir: Path | str | None = None, download: bool = True,
                         verify: bool = False) -> dict[str, Path]:
    """Local paths of a dataset's files that hold no language (e.g. NTREX's ``DOCUMENT_IDS.tsv``),
    by file name; looked for and downloaded like the per-language files."""
    spec = get_spec(name)
    user_root = _user_root(data_dir)
    roots = ([user_root] if user_root else []) + [cache_data_dir()]
    found: dict[str, Path] = {}
    for f in (f for f in spec.files if f.language is None):
        hit = _locate(f, roots)
        if hit is not None:
            if verify:
                _check(hit[1], f.sha256)
            found[Path(f.path).name] = hit[1]
            continue
        if not download:
            raise DatasetNotFoundError(_missing_message(spec, [f], user_root, "downloading is turned off"))
        try:
            found[Path(f.path).name] = download_file(f.url, cache_data_dir() / f.path, f.sha256)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DatasetNotFoundError(_missing_message(
                spec, [f], user_root, f"the download of {f.url} failed ({reason})")) from exc
    return found


@dataclass
class StatusRow:
    """What ``status`` reports for one dataset."""

    name: str
    languages: list[str]
    present: list[str] = field(default_factory=list)  # relative paths found locally
    missing: list[str] = field(default_factory=list)  # absent files a default load needs
    where: list[str] = field(default_factory=list)  # folders the present files were found in
    source: str = ""
    optional_missing: list[str] = field(default_factory=list)  # absent files of non-default languages


def status(data_dir: Path | str | None = None) -> list[StatusRow]:
    """Which files of every registered dataset are present locally, and where (no download)."""
    user_root = _user_root(data_dir)
    roots = ([user_root] if user_root else []) + [cache_data_dir()]
    rows = []
    for spec in list_specs():
        row = StatusRow(name=spec.name, languages=list(spec.languages), source=spec.source)
        default = set(spec.default_languages or spec.languages)
        for f in spec.files:
            hit = _locate(f, roots)
            if hit is None:
                optional = f.language is not None and f.language not in default
                (row.optional_missing if optional else row.missing).append(f.path)
                continue
            row.present.append(f.path)
            if str(hit[0]) not in row.where:
                row.where.append(str(hit[0]))
        rows.append(row)
    return rows


def _loader(spec: DatasetSpec, what: str) -> Callable[..., object]:
    kind = LOADERS[spec.kind]
    fn = getattr(kind, what)
    if fn is None:
        raise DatasetNotFoundError(f"dataset {spec.name!r} (kind {spec.kind}) has no {what} view")
    return fn


def _load_view(name: str, what: str, data_dir: Path | str | None,
               languages: Sequence[str] | str | None, download: bool, verify: bool) -> object:
    spec = get_spec(name)
    loader = _loader(spec, what)
    selected = _select(spec, languages)
    pivots = [c for c in (parse_languages(languages) or []) if c in spec.pivot_languages]
    files: Mapping[str, object]
    if LOADERS[spec.kind].file_sets:
        files = resolve_file_sets(name, data_dir, selected, download=download, verify=verify)
    else:
        files = resolve_files(name, data_dir, selected, download=download, verify=verify)
    chosen = [*files, *pivots]
    if any(f.language is None for f in spec.files):  # files shared by all languages
        shared = resolve_shared_files(name, data_dir, download=download, verify=verify)
        return loader(files, spec.name, chosen, shared=shared)
    return loader(files, spec.name, chosen)


def load_task(name: str, data_dir: Path | str | None = None,
              languages: Sequence[str] | str | None = None, download: bool = True,
              verify: bool = False) -> RetrievalTask:
    """Resolve a registered dataset's files and read them as a retrieval task."""
    if name.startswith(SOURCE_SCHEMES):
        return _formats.load_source_task(name, languages)
    task = _load_view(name, "task", data_dir, languages, download, verify)
    assert isinstance(task, RetrievalTask)
    return task


def load_corpus(name: str, data_dir: Path | str | None = None,
                languages: Sequence[str] | str | None = None, download: bool = True,
                verify: bool = False) -> ParallelQACorpus:
    """Resolve a registered dataset's files and read them as a parallel QA corpus."""
    if name.startswith(SOURCE_SCHEMES):
        return _formats.load_source_corpus(name, languages)
    corpus = _load_view(name, "corpus", data_dir, languages, download, verify)
    assert isinstance(corpus, ParallelQACorpus)
    return corpus
