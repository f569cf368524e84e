"""The run folder: whether an existing one may be trained into, the log, and the failure marker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from polyir.atomic import write_text
from polyir.errors import PolyirError

__all__ = ["FAILED_MARKER", "RUN_FILES", "RUN_DIRS", "prepare_run_dir", "trim_log", "append_log", "snapshot_dir"]

FAILED_MARKER = "failed.json"  # written when a run stops on a non-finite loss; such a folder does not block a rerun
RUN_FILES = ("log.jsonl", "run.json", "config.yaml", "validation_split.json", FAILED_MARKER)
RUN_DIRS = ("checkpoints", "best", "last", "snapshots")


def prepare_run_dir(run_dir: Path, *, resuming: bool, overwrite: bool, is_main: bool) -> None:
    """Resume into, replace or refuse an existing ``run_dir`` (see :func:`polyir.training.trainer.train`)."""
    has_run = any((run_dir / n).exists() for n in (*RUN_FILES, *RUN_DIRS))
    failed = (run_dir / FAILED_MARKER).is_file()
    if not resuming and has_run and not (overwrite or failed):
        raise PolyirError(
            f"output_dir {str(run_dir)!r} already holds a run; resume it (--resume latest), "
            "pick another --output, or --set overwrite=true"
        )
    if not is_main:
        return
    if not resuming and has_run:  # overwrite, or a run that failed: start afresh
        for n in RUN_FILES:
            (run_dir / n).unlink(missing_ok=True)
        for n in RUN_DIRS:
            shutil.rmtree(run_dir / n, ignore_errors=True)
    (run_dir / FAILED_MARKER).unlink(missing_ok=True)  # a resumed run is no longer failed
    run_dir.mkdir(parents=True, exist_ok=True)


def trim_log(log_path: Path, *, resuming: bool, step: int) -> None:
    """A fresh run starts a new log; a resumed one drops the rows after its checkpoint (written again)."""
    if not log_path.exists():
        return
    if not resuming:
        log_path.unlink()
        return
    keep = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(row.get("step", 0)) <= step:
            keep.append(line)
    write_text(log_path, "".join(k + "\n" for k in keep))


def append_log(log_path: Path, row: dict[str, Any]) -> None:
    """One JSON row at the end of ``log.jsonl``."""
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def snapshot_dir(run_dir: Path, step: int) -> Path:
    """Where a run keeps its model after optimizer step ``step`` (``snapshot_steps``)."""
    return Path(run_dir) / "snapshots" / f"step-{step}"
