"""The index folder: vectors, passages, the model they came from, and a backend to search them.

Layout of an index folder::

    index.json        format, model spec + fingerprint + encoder settings, backend + parameters,
                      dimension, counts per language, corpus source, precision, timings, versions
    passages.jsonl    one passage per vector position: id, language, text (title, metadata)
    vectors.npy       float32 [n, d], L2-normalised (memory-mapped on load)
    backend/          the backend's own files (faiss.index, or a local Qdrant folder)
    shards/           encoding shards while the index is being built (removed when done)
    .staging-PID/     the new index while it is written; swapped in only once complete and loadable,
                      so ``--overwrite`` never loses the old index to a failed build

``open_index`` validates what it loads (counts, languages, the vectors' shape and dtype, finite
unit-norm rows, the backend's size) and refuses a damaged folder with a message naming the file.

An index answers only queries encoded by the model that encoded its passages: ``open_index`` (and
``search``) compare the encoder's fingerprint with the one recorded and refuse a different model.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyir.atomic import OutputError, atomic_open, check_output_path, write_with
from polyir.errors import PolyirError
from polyir.index.backend import make_dir
from polyir.index.backends import Backend, load_backend, make_backend
from polyir.index.corpus import Passage, unicode_problem
from polyir.index.encode import SHARD_SIZE, EncodeReport, encode_shards, load_shards
from polyir.runinfo import versions, write_json

if TYPE_CHECKING:
    from polyir.models.encoder import Encoder

INDEX_FILE = "index.json"
PASSAGES_FILE = "passages.jsonl"
VECTORS_FILE = "vectors.npy"
BACKEND_DIR = "backend"
SHARDS_DIR = "shards"
STAGING_PREFIX = ".staging-"  # a new index being written, swapped in when complete
TRASH_PREFIX = ".replaced-"  # the index it replaces, removed after the swap
FORMAT = 1
# A filter that leaves at most this many passages is searched exactly over their vectors: cheap, and
# approximate backends can miss results under a selective filter.
EXACT_FILTER_MAX = 20_000
NORM_TOLERANCE = 0.01  # |‖v‖ − 1| allowed for stored vectors (bf16 encoding stays well within)


class FingerprintMismatchError(PolyirError):
    """The encoder is not the model the index was built with."""


class SearchIndex:
    """An opened index folder: passages, vectors (memory-mapped) and a loaded backend."""

    def __init__(self, path: Path, info: dict[str, Any], passages: list[Passage], vectors: np.ndarray,
                 backend: Backend) -> None:
        self.path = Path(path)
        self.info = info
        self.passages = passages
        self.vectors = vectors
        self.backend = backend
        self.languages = np.asarray([p.language for p in passages], dtype=str)
        self.exact_filter_max = EXACT_FILTER_MAX
        self._checked: weakref.WeakSet = weakref.WeakSet()

    # ---------------------------------------------------------------- facts
    def __len__(self) -> int:
        return len(self.passages)

    @property
    def model_spec(self) -> str:
        return str(self.info["model"]["spec"])

    @property
    def fingerprint(self) -> str:
        return str(self.info["model"]["fingerprint"])

    @property
    def backend_name(self) -> str:
        return str(self.info["backend"]["name"])

    @property
    def language_counts(self) -> dict[str, int]:
        """Passages per language, by code."""
        return dict(self.info.get("languages") or {})

    # ---------------------------------------------------------------- model check
    def check_encoder(self, encoder: Encoder) -> None:
        """Refuse an encoder whose fingerprint differs from the one the passages were encoded with."""
        if encoder in self._checked:
            return
        got = encoder.fingerprint()
        if got != self.fingerprint:
            raise FingerprintMismatchError(
                f"index {self.path} was built with model {self.model_spec!r} (fingerprint {self.fingerprint}), "
                f"but the model given ({encoder.spec or 'unnamed'!r}) has fingerprint {got}: its vectors are not "
                f"comparable. Search with the model the index was built with, or rebuild the index with "
                f"`polyir index --model {encoder.spec or 'SPEC'}`."
            )
        self._checked.add(encoder)

    # ---------------------------------------------------------------- vector search
    def search_vectors(
        self,
        queries: np.ndarray,
        k: int,
        *,
        languages: Sequence[str] | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, positions) of query vectors, optionally restricted to ``languages``.

        A filter leaving at most ``exact_filter_max`` passages is searched exactly over their vectors;
        otherwise the backend filters, and if an approximate backend returns fewer results than exist,
        the query is redone exactly over the allowed vectors.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        mask = None
        if languages is not None:
            mask = np.isin(self.languages, list(languages))
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            mask = allowed if mask is None else (mask & allowed)
        if mask is None or mask.all():
            return self.backend.search(queries, k)
        n_allowed = int(mask.sum())
        if n_allowed <= self.exact_filter_max:
            return self._exact(queries, k, mask)
        scores, positions = self.backend.search(queries, k, allowed=mask)
        if not self.backend.exact:
            short = (positions >= 0).sum(axis=1) < min(k, n_allowed)
            if short.any():
                s2, p2 = self._exact(queries[short], k, mask)
                scores[short], positions[short] = s2, p2
        return scores, positions

    def _exact(self, queries: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the masked vectors (float32 dot products)."""
        subset = np.flatnonzero(mask)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        positions = np.full((len(queries), k), -1, dtype=np.int64)
        if len(subset) == 0:
            return scores, positions
        sims = queries @ np.asarray(self.vectors[subset], dtype=np.float32).T
        kk = min(k, len(subset))
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        for row in range(len(queries)):
            order = top[row][np.argsort(-sims[row, top[row]], kind="stable")]
            scores[row, :kk] = sims[row, order]
            positions[row, :kk] = subset[order]
        return scores, positions

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class BuildResult:
    """What ``build_index`` did; ``index`` is None when other processes still have shards to write."""

    path: Path
    index: SearchIndex | None
    encoding: EncodeReport
    seconds: dict[str, float] = field(default_factory=dict)


def _write_passages(path: Path, passages: Sequence[Passage]) -> None:
    with atomic_open(path, "w") as fh:
        for p in passages:
            fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")


def _read_passages(path: Path) -> list[Passage]:
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    out.append(Passage(str(r["id"]), str(r["language"]), str(r["text"]), r.get("title", ""),
                                       r.get("metadata", {})))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise PolyirError(f"{path}: line {lineno}: not a passage record ({exc}); rebuild the index") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolyirError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return out


def check_output(output: Path | str, overwrite: bool = False) -> Path:
    """Fail before any work when ``output`` cannot take an index (or holds one and not ``overwrite``)."""
    output = Path(output)
    if (output / INDEX_FILE).is_file() and not overwrite:
        raise PolyirError(f"{output} already holds an index; choose another --output or pass --overwrite")
    check_output_path(output / INDEX_FILE, what="index")
    return output


def _check_passages(passages: Sequence[Passage]) -> None:
    if not passages:
        raise PolyirError("the corpus is empty: nothing to index")
    seen: set[str] = set()
    for p in passages:
        if p.id in seen:
            raise PolyirError(f"duplicate passage id {p.id!r}: ids must be unique in an index")
        seen.add(p.id)
        for key in ("id", "text", "title"):
            if problem := unicode_problem(getattr(p, key)):
                raise PolyirError(f"passage {p.id!r}: {key} holds {problem}")


def build_index(
    output: Path | str,
    passages: Sequence[Passage],
    encoder: Encoder,
    *,
    backend: str = "flat",
    backend_params: dict[str, Any] | None = None,
    batch_size: int = 64,
    precision: str = "fp32",
    shard_size: int = SHARD_SIZE,
    rank: int | None = None,
    world_size: int | None = None,
    source: dict[str, Any] | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> BuildResult:
    """Encode ``passages`` (resumably, in shards) and write a searchable index folder at ``output``.

    Every process encodes its own shards; the process that finds all shards present builds the
    backend and writes the folder (the others return ``index=None``). Rerunning after a crash
    resumes at the first missing shard. The new index is built in a staging folder and swapped in
    at the end: until then (and after any failure) an index already in ``output`` stays as it was.
    """
    from polyir.index.encode import resolve_rank

    output = check_output(output, overwrite)
    _check_passages(passages)
    params = backend_params or {}
    probe = make_backend(backend, **params)  # fail on bad parameters before encoding
    probe.check(encoder.dim, len(passages))
    probe.close()
    rank, world_size = resolve_rank(rank, world_size)
    ids = [p.id for p in passages]
    texts = [p.text for p in passages]
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    report = encode_shards(
        encoder, texts, ids, output / SHARDS_DIR, kind="passage",
        shard_size=shard_size, rank=rank, world_size=world_size, batch_size=batch_size,
        precision=precision, show_progress=show_progress,
    )
    seconds["encode"] = round(time.perf_counter() - t0, 3)
    if not report.complete:
        return BuildResult(output, None, report, seconds)
    lock = output / ".build.lock"
    if not _acquire(lock):
        return BuildResult(output, None, report, seconds)  # another process is building it
    try:
        _remove_leftovers(output)
        staging = output / f"{STAGING_PREFIX}{os.getpid()}"
        try:
            make_dir(staging)
            vectors = load_shards(output / SHARDS_DIR, ids, texts)
            t1 = time.perf_counter()
            index_backend = make_backend(backend, **params)
            try:
                index_backend.build(vectors, ids, [p.language for p in passages])
                index_backend.save(staging / BACKEND_DIR)
                backend_params_used = index_backend.params
            finally:
                index_backend.close()
            seconds["build"] = round(time.perf_counter() - t1, 3)
            write_with(staging / VECTORS_FILE, lambda fh: np.save(fh, vectors))
            _write_passages(staging / PASSAGES_FILE, passages)
            counts: dict[str, int] = {}
            for p in passages:
                counts[p.language] = counts.get(p.language, 0) + 1
            info = {
                "format": FORMAT,
                "model": {
                    "spec": encoder.spec,
                    "fingerprint": encoder.fingerprint(),
                    "settings": asdict(encoder.settings),
                },
                "backend": {"name": backend, "params": backend_params_used},
                "dim": int(vectors.shape[1]),
                "count": len(passages),
                "languages": dict(sorted(counts.items())),
                "precision": precision,
                "source": source or {},
                "seconds": seconds,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "versions": versions(),
            }
            write_json(staging / INDEX_FILE, info)
            open_index(staging).close()  # the new index must load before it replaces anything
            _swap_in(staging, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(output / SHARDS_DIR, ignore_errors=True)
    finally:
        lock.unlink(missing_ok=True)
    return BuildResult(output, open_index(output, encoder), report, seconds)


def _remove_leftovers(output: Path) -> None:
    """Staging and trash folders of builds that died (the caller holds the build lock)."""
    for entry in output.iterdir():
        if entry.name.startswith((STAGING_PREFIX, TRASH_PREFIX)) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _swap_in(staging: Path, output: Path) -> None:
    """Move the staged index into ``output``, the old one out; on any failure put the old one back.

    ``index.json`` goes first out and last in, so a reader never sees an index.json beside files of
    another build (the old index vanishes for the few renames between).
    """
    trash = output / f"{TRASH_PREFIX}{os.getpid()}"
    names = (INDEX_FILE, PASSAGES_FILE, VECTORS_FILE, BACKEND_DIR)
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        trash.mkdir(exist_ok=True)
        for name in names:
            if (output / name).exists():
                os.replace(output / name, trash / name)
                moved_out.append(name)
        for name in reversed(names):
            os.replace(staging / name, output / name)
            moved_in.append(name)
    except BaseException as exc:
        for name in reversed(moved_in):
            os.replace(output / name, staging / name)
        for name in reversed(moved_out):
            os.replace(trash / name, output / name)
        trash.rmdir()  # empty again; if a rename back failed, the old index stays in it
        if isinstance(exc, OSError):
            raise OutputError(f"cannot move the new index into {output}: {exc.strerror or exc}") from exc
        raise
    shutil.rmtree(trash, ignore_errors=True)


def _acquire(lock: Path) -> bool:
    """Create ``lock`` holding our pid; a lock left by a dead process (same host) is taken over."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
                os.kill(pid, 0)
                return False  # alive: it is building
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # stale
                continue
            except PermissionError:
                return False
        except OSError as exc:
            raise OutputError(f"cannot write {lock}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return True
    return False


def read_info(path: Path | str) -> dict[str, Any]:
    """The ``index.json`` of an index folder (a clear error if it is not one)."""
    path = Path(path)
    info_file = path / INDEX_FILE
    if not info_file.is_file():
        hint = " (its shards are there: the build did not finish; rerun `polyir index`)" if (path / SHARDS_DIR).is_dir() else ""
        replaced = sorted(path.glob(f"{TRASH_PREFIX}*/{INDEX_FILE}"))
        if replaced:
            hint = f" (a build was interrupted while swapping indexes: the previous one is in {replaced[0].parent})"
        raise PolyirError(f"{path} is not a polyir index: no {INDEX_FILE}{hint}")
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PolyirError(f"{info_file}: not valid JSON ({exc.msg})") from None
    if info.get("format") != FORMAT:
        raise PolyirError(f"{info_file}: index format {info.get('format')!r} is not supported (expected {FORMAT})")
    return info


def open_index(path: Path | str, encoder: Encoder | None = None) -> SearchIndex:
    """Load and validate an index folder; with ``encoder``, check that it is the model the index was built with."""
    path = Path(path)
    info = read_info(path)
    passages = _read_passages(path / PASSAGES_FILE)
    vectors = _load_vectors(path / VECTORS_FILE)
    validate_index(path, info, passages, vectors)
    try:
        backend = load_backend(info["backend"]["name"], path / BACKEND_DIR, info["backend"]["params"])
    except (OSError, RuntimeError) as exc:  # faiss raises RuntimeError for a damaged file
        raise PolyirError(f"{path / BACKEND_DIR}: cannot load the {info['backend']['name']} backend ({exc})") from None
    if len(backend) != len(passages) or (backend.dim and backend.dim != vectors.shape[1]):
        backend.close()
        raise PolyirError(
            f"{path / BACKEND_DIR}: the backend holds {len(backend)} vectors of dimension {backend.dim}, "
            f"{INDEX_FILE} says {len(passages)} of dimension {vectors.shape[1]}; rebuild the index with --overwrite"
        )
    index = SearchIndex(path, info, passages, vectors, backend)
    if encoder is not None:
        try:
            index.check_encoder(encoder)
        except PolyirError:
            index.close()
            raise
    return index


def _load_vectors(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise PolyirError(f"{path}: missing; the index folder is incomplete (rebuild it with --overwrite)") from None
    except (OSError, ValueError) as exc:
        raise PolyirError(f"{path}: not a readable .npy file ({exc}); rebuild the index with --overwrite") from None


def validate_index(path: Path, info: dict[str, Any], passages: Sequence[Passage], vectors: np.ndarray) -> None:
    """Refuse an index whose files disagree: counts, languages, shape, dtype, finite unit-norm rows."""
    fix = "rebuild the index with `polyir index --overwrite`"
    where = path / VECTORS_FILE
    count, dim = info.get("count"), info.get("dim")
    if len(passages) != count:
        raise PolyirError(f"{path / PASSAGES_FILE}: {len(passages)} passages, {INDEX_FILE} says {count}; {fix}")
    counts: dict[str, int] = {}
    for p in passages:
        counts[p.language] = counts.get(p.language, 0) + 1
    if counts != dict(info.get("languages") or {}):
        raise PolyirError(f"{path / PASSAGES_FILE}: passages per language {counts} differ from {INDEX_FILE}; {fix}")
    if vectors.dtype != np.float32 or vectors.shape != (count, dim):
        raise PolyirError(
            f"{where}: {vectors.dtype} vectors of shape {vectors.shape}, expected float32 of shape ({count}, {dim}); {fix}"
        )
    normalized = bool((info.get("model", {}).get("settings") or {}).get("normalize", True))
    first, reason, total = -1, "", 0
    for lo in range(0, len(vectors), 65_536):
        chunk = np.asarray(vectors[lo : lo + 65_536], dtype=np.float32)
        finite = np.isfinite(chunk).all(axis=1)
        norms = np.linalg.norm(np.where(finite[:, None], chunk, 0), axis=1)
        bad = ~finite | ((np.abs(norms - 1) > NORM_TOLERANCE) if normalized else (norms == 0))
        if bad.any() and first < 0:
            j = int(np.flatnonzero(bad)[0])
            first, reason = lo + j, ("non-finite values" if not finite[j] else f"norm {norms[j]:.4f}")
        total += int(bad.sum())
    if total:
        expected = "finite vectors of norm 1" if normalized else "finite non-zero vectors"
        raise PolyirError(
            f"{where}: {total} bad row(s), first row {first} (passage {passages[first].id!r}) with {reason} "
            f"(expected {expected}); {fix}"
        )


def load_index_encoder(index: SearchIndex, model: str | None = None, *, device: str = "cpu") -> Encoder:
    """The encoder an index was built with (or ``model`` instead), checked against its fingerprint.

    The encoder settings recorded in the index (prefixes, max lengths, pooling) are applied, so the
    queries are encoded exactly as the passages were.
    """
    from polyir.models.resolve import load_encoder

    spec = model or index.model_spec
    settings = dict(index.info["model"].get("settings") or {})
    encoder = load_encoder(spec, device=device, **settings)
    index.check_encoder(encoder)
    return encoder
