"""Encode a corpus in shards on disk: resumable, and spread over processes.

Texts are cut into shards of ``shard_size`` (2,048 by default) in corpus order. Shard ``i`` is written
as ``shard-0000i.npy`` (float32 vectors) and ``shard-0000i.ids.json`` (its passage ids), each to a
temporary file renamed into place, the ``.npy`` last: a shard file either is complete or does not
exist. A killed run therefore restarts at the first missing shard and loses nothing.

With several processes (``--shard-rank/--num-shards``, or torchrun's ``RANK``/``WORLD_SIZE``),
process ``r`` of ``w`` encodes the shards ``i`` with ``i % w == r``; all of them write into the same
folder. ``manifest.json`` ties the folder to one model, corpus and precision, so shards of another
run are never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

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
    if num_shards < 1 or not 0 <= shard_rank < num_shards:
        raise PolyirError(f"shard rank {shard_rank} is not within 0..{num_shards - 1} (num shards {num_shards})")
    return shard_rank, num_shards


def ids_digest(ids: Sequence[str]) -> str:
    """sha256 of the id list, to recognise the corpus a shard folder was made from."""
    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def shard_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"shard-{index:05d}.npy"


def _ids_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"shard-{index:05d}.ids.json"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_manifest(folder: Path, manifest: dict) -> None:
    path = folder / MANIFEST
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in manifest if old.get(k) != manifest[k]]
        if diff:
            raise PolyirError(
                f"{folder} holds shards of another encoding run (different {', '.join(diff)}); "
                "delete that folder or choose another output"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda fh: fh.write(json.dumps(manifest, indent=2).encode("utf-8")))


def shard_done(folder: Path, index: int, ids: Sequence[str]) -> bool:
    """True when shard ``index`` exists on disk with exactly these ids."""
    npy, idf = shard_path(folder, index), _ids_path(folder, index)
    if not (npy.is_file() and idf.is_file()):
        return False
    try:
        return json.loads(idf.read_text(encoding="utf-8")) == list(ids)
    except (OSError, json.JSONDecodeError):
        return False


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
    manifest = {
        "model": encoder.spec,
        "fingerprint": encoder.fingerprint(),
        "kind": kind,
        "precision": precision,
        "count": len(texts),
        "shard_size": shard_size,
        "ids_sha256": ids_digest(ids),
    }
    _check_manifest(folder, manifest)
    num_shards = (len(texts) + shard_size - 1) // shard_size
    report = EncodeReport(num_shards=num_shards)

    def bounds(i: int) -> tuple[int, int]:
        return i * shard_size, min(len(texts), (i + 1) * shard_size)

    todo = []
    for i in range(rank, num_shards, world_size):
        lo, hi = bounds(i)
        (report.skipped if shard_done(folder, i, ids[lo:hi]) else todo).append(i)
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
            shard_ids = list(ids[lo:hi])
            _atomic_write(_ids_path(folder, i), lambda fh: fh.write(json.dumps(shard_ids).encode("utf-8")))
            _atomic_write(shard_path(folder, i), lambda fh: np.save(fh, vectors))
            report.encoded.append(i)
    finally:
        bar.close()
    report.missing = [
        i for i in range(num_shards) if not shard_path(folder, i).is_file() or not _ids_path(folder, i).is_file()
    ]
    return report


def load_shards(folder: Path | str, ids: Sequence[str] | None = None) -> np.ndarray:
    """All shards of ``folder`` in order as one matrix; fails if any is missing (or ids differ)."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise PolyirError(f"{folder}: no {MANIFEST}; not a shard folder")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    count, size = int(manifest["count"]), int(manifest["shard_size"])
    num_shards = (count + size - 1) // size
    if ids is not None and ids_digest(ids) != manifest["ids_sha256"]:
        raise PolyirError(f"{folder}: the shards were made from another corpus")
    missing = [i for i in range(num_shards) if not shard_path(folder, i).is_file()]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise PolyirError(f"{folder}: {len(missing)} of {num_shards} shard(s) missing ({shown}); run the encoding again")
    parts = [np.load(shard_path(folder, i)) for i in range(num_shards)]
    vectors = np.concatenate(parts)
    if len(vectors) != count:
        raise PolyirError(f"{folder}: shards hold {len(vectors)} vectors, the manifest says {count}")
    return vectors
