"""Encode a corpus in shards on disk: resumable, and spread over processes.

Texts are cut into shards of ``shard_size`` (2,048 by default) in corpus order. Shard ``i`` is written
as ``shard-0000i.npy`` (float32 vectors), then ``shard-0000i.ids.json`` (its passage ids and the sha256
of the texts it encoded), each through :mod:`polyir.atomic`. The ids file is written last and removed
before a shard is re-encoded: a shard counts as done only when both exist and the ids file matches the
ids *and texts* asked for now. A killed run restarts at the first missing shard; a passage whose text
changed (same id) invalidates only its own shard.

With several processes (``--shard-rank/--num-shards``, or torchrun's ``RANK``/``WORLD_SIZE``),
process ``r`` of ``w`` encodes the shards ``i`` with ``i % w == r``; all of them write into the same
folder. ``manifest.json`` ties the folder to one model (fingerprint, prefix, max length), corpus ids
and precision, so shards of another run are never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from polyir.atomic import OutputError, write_json, write_with
from polyir.errors import PolyirError

if TYPE_CHECKING:
    from polyir.models.encoder import Encoder

SHARD_SIZE = 2048
MANIFEST = "manifest.json"


@dataclass
class EncodeReport:
    """What one call did: shards it encoded, found done, and left to other processes."""

    num_shards: int
    encoded: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # not done yet (other ranks' shards)

    @property
    def complete(self) -> bool:
        return not self.missing


def resolve_rank(shard_rank: int | None = None, num_shards: int | None = None) -> tuple[int, int]:
    """(rank, world size): explicit values win, then torchrun's RANK/WORLD_SIZE, else (0, 1)."""
    if shard_rank is None and num_shards is None:
        try:
            shard_rank = int(os.environ.get("RANK", "0"))
            num_shards = int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            raise PolyirError("RANK and WORLD_SIZE must be integers") from None
    if num_shards is None:
        num_shards = 1
    if shard_rank is None:
        shard_rank = 0
    if num_shards < 1:
        raise PolyirError(f"the number of shard processes (--num-shards / WORLD_SIZE) must be at least 1, not {num_shards}")
    if not 0 <= shard_rank < num_shards:
        raise PolyirError(f"shard rank {shard_rank} is not within 0..{num_shards - 1} (num shards {num_shards})")
    return shard_rank, num_shards


def ids_digest(ids: Sequence[str]) -> str:
    """sha256 of the id list, to recognise the corpus a shard folder was made from."""
    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def texts_digest(ids: Sequence[str], texts: Sequence[str]) -> str:
    """sha256 of (id, text) pairs: what one shard encoded."""
    h = hashlib.sha256()
    for i, t in zip(ids, texts):
        h.update(i.encode("utf-8") + b"\0" + t.encode("utf-8") + b"\0")
    return h.hexdigest()


def shard_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"shard-{index:05d}.npy"


def _ids_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"shard-{index:05d}.ids.json"


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolyirError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot remove {path}: {exc.strerror or exc}") from exc


def _check_manifest(folder: Path, manifest: dict) -> None:
    path = folder / MANIFEST
    if path.is_file():
        old = _read_json(path)
        diff = [k for k in manifest if not isinstance(old, dict) or old.get(k) != manifest[k]]
        if diff:
            raise PolyirError(
                f"{folder} holds shards of another encoding run (different {', '.join(diff)}); "
                "delete that folder or choose another output"
            )
        return
    write_json(path, manifest)


def shard_done(folder: Path, index: int, ids: Sequence[str], texts: Sequence[str] | None = None) -> bool:
    """True when shard ``index`` exists on disk with exactly these ids (and, given, these texts)."""
    npy, idf = shard_path(folder, index), _ids_path(folder, index)
    if not (npy.is_file() and idf.is_file()):
        return False
    try:
        record = json.loads(idf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(record, dict) or record.get("ids") != list(ids):
        return False  # also a shard of the older format (a bare id list): its texts are unknown
    return texts is None or record.get("texts_sha256") == texts_digest(ids, texts)


def encode_shards(
    encoder: Encoder,
    texts: Sequence[str],
    ids: Sequence[str],
    folder: Path | str,
    *,
    kind: str = "passage",
    shard_size: int = SHARD_SIZE,
    rank: int = 0,
    world_size: int = 1,
    batch_size: int = 64,
    precision: str = "fp32",
    show_progress: bool = True,
) -> EncodeReport:
    """Encode this process's missing shards of ``texts`` into ``folder``; report what is still missing."""
    folder = Path(folder)
    if len(texts) != len(ids):
        raise ValueError(f"{len(texts)} texts but {len(ids)} ids")
    if not texts:
        raise PolyirError("nothing to encode: the corpus is empty")
    if shard_size < 1:
        raise PolyirError(f"shard size must be at least 1, not {shard_size}")
    rank, world_size = resolve_rank(rank, world_size)
    settings = encoder.settings
    manifest = {
        "model": encoder.spec,
        "fingerprint": encoder.fingerprint(),
        "kind": kind,
        "prefix": settings.prefix(kind),
        "max_length": settings.max_length(kind),
        "precision": precision,
        "count": len(texts),
        "shard_size": shard_size,
        "ids_sha256": ids_digest(ids),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {folder}: {exc.strerror or exc}") from exc
    _check_manifest(folder, manifest)
    num_shards = (len(texts) + shard_size - 1) // shard_size
    report = EncodeReport(num_shards=num_shards)

    def bounds(i: int) -> tuple[int, int]:
        return i * shard_size, min(len(texts), (i + 1) * shard_size)

    def done(i: int) -> bool:
        lo, hi = bounds(i)
        return shard_done(folder, i, ids[lo:hi], texts[lo:hi])

    todo = []
    for i in range(rank, num_shards, world_size):
        (report.skipped if done(i) else todo).append(i)
    chunk = max(batch_size * 4, 256)  # progress granularity; each chunk is still sorted by length
    bar = tqdm(
        total=sum(bounds(i)[1] - bounds(i)[0] for i in todo),
        desc=f"encode shards (rank {rank}/{world_size})" if world_size > 1 else "encode passages",
        unit="text",
        disable=not show_progress,
    )
    try:
        for i in todo:
            lo, hi = bounds(i)
            parts = []
            for start in range(lo, hi, chunk):
                part = list(texts[start : min(hi, start + chunk)])
                parts.append(
                    encoder.encode(part, kind, batch_size=batch_size, precision=precision, show_progress=False)
                )
                bar.update(len(part))
            vectors = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
            record = {"ids": list(ids[lo:hi]), "texts_sha256": texts_digest(ids[lo:hi], texts[lo:hi])}
            _remove(_ids_path(folder, i))  # a stale shard is not done while it is rewritten
            write_with(shard_path(folder, i), lambda fh: np.save(fh, vectors))
            write_json(_ids_path(folder, i), record)  # last: it marks the shard done
            report.encoded.append(i)
    finally:
        bar.close()
    report.missing = [i for i in range(num_shards) if not done(i)]
    return report


def load_shards(folder: Path | str, ids: Sequence[str] | None = None, texts: Sequence[str] | None = None) -> np.ndarray:
    """All shards of ``folder`` in order as one matrix; fails if any is missing, stale or malformed."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise PolyirError(f"{folder}: no {MANIFEST}; not a shard folder")
    manifest = _read_json(manifest_path)
    assert isinstance(manifest, dict)
    count, size = int(manifest["count"]), int(manifest["shard_size"])
    num_shards = (count + size - 1) // size
    if ids is not None and ids_digest(ids) != manifest["ids_sha256"]:
        raise PolyirError(f"{folder}: the shards were made from another corpus")
    missing = [i for i in range(num_shards) if not shard_path(folder, i).is_file()]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise PolyirError(f"{folder}: {len(missing)} of {num_shards} shard(s) missing ({shown}); run the encoding again")
    parts = []
    for i in range(num_shards):
        lo, hi = i * size, min(count, (i + 1) * size)
        if ids is not None and texts is not None and not shard_done(folder, i, ids[lo:hi], texts[lo:hi]):
            raise PolyirError(f"{shard_path(folder, i)}: encoded from other texts; run the encoding again")
        parts.append(_load_shard(shard_path(folder, i), hi - lo))
    dims = {p.shape[1] for p in parts}
    if len(dims) != 1:
        raise PolyirError(f"{folder}: shards of different dimensions ({', '.join(map(str, sorted(dims)))})")
    return np.concatenate(parts)


def _load_shard(path: Path, rows: int) -> np.ndarray:
    """One shard, checked: float32, ``rows`` rows, finite."""
    try:
        vectors = np.load(path)
    except (OSError, ValueError) as exc:
        raise PolyirError(f"{path}: not a readable .npy file ({exc}); delete it and run the encoding again") from None
    if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != rows or not np.isfinite(vectors).all():
        raise PolyirError(
            f"{path}: expected {rows} finite float32 vectors, got {vectors.dtype} {vectors.shape}; "
            "delete it and run the encoding again"
        )
    return vectors
