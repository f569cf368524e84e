"""Checkpoints and RNG state: what ``checkpoints/step-N/`` holds, and the checks a resume must pass.

A checkpoint is ``model/`` plus ``trainer_state.pt``: optimizer, scheduler, scaler, the sampler's
state (with its corpus fingerprint), every rank's sampler statistics and RNG states (Python, NumPy,
torch CPU and CUDA), the loop counters and the config. Restoring all of them makes a resumed run
equal to an uninterrupted one bit for bit; a change of anything that steers the trajectory (any
config key but the run-control ones, the number of processes, the planned steps) is refused.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyir.errors import PolyirError

__all__ = [
    "CHECKPOINT_STATE",
    "RUN_CONTROL",
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "latest_checkpoint",
    "resolve_resume",
    "trajectory_changes",
    "write_checkpoint",
    "read_checkpoint",
]

CHECKPOINT_STATE = "trainer_state.pt"

# Keys that may change on resume: they steer the run, not the training trajectory.
RUN_CONTROL = {
    "output_dir", "resume_from", "overwrite", "progress", "log_every", "checkpoint_every",
    "keep_checkpoints", "validation.every", "validation.patience", "model.device", "data.data_dir",
    "data.download",
}


# ---------------------------------------------------------------------------- RNG state


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process' RNG states as plain Python (bytes, lists) so they pickle and gather anywhere."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().numpy().tobytes(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device).numpy().tobytes()
    return state


def _byte_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(_tuplify(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_byte_tensor(state["torch"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(_byte_tensor(state["cuda"]), device)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------- finding checkpoints


def latest_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest complete ``checkpoints/step-N`` folder of a run, if any."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    found = []
    for child in root.iterdir():
        if child.name.startswith("step-") and (child / CHECKPOINT_STATE).is_file():
            try:
                found.append((int(child.name[5:]), child))
            except ValueError:
                continue
    return max(found)[1] if found else None


def resolve_resume(spec: str | None, output_dir: Path) -> Path | None:
    """The checkpoint ``resume_from`` names (a checkpoint, a run folder, or ``latest`` in ``output_dir``)."""
    if spec is None:
        return None
    if spec == "latest":
        found = latest_checkpoint(output_dir)
        if found is None:
            raise PolyirError(
                f"resume_from=latest: {str(output_dir)!r} holds no checkpoint "
                f"(no checkpoints/step-N/{CHECKPOINT_STATE}), so there is nothing to resume; "
                "start the run without --resume"
            )
        return found
    path = Path(spec).expanduser()
    if (path / CHECKPOINT_STATE).is_file():
        return path
    if path.is_dir() and latest_checkpoint(path) is not None:  # a run folder
        return latest_checkpoint(path)
    raise PolyirError(f"resume_from: {spec!r} is not a checkpoint folder (no {CHECKPOINT_STATE}) nor a run folder")


# ---------------------------------------------------------------------------- resume checks


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.update(_flatten(v, key) if isinstance(v, dict) and key != "sampler" else {key: v})
        return out
    return {prefix: d}


def trajectory_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Config keys whose change would make a resumed run differ from an uninterrupted one."""
    if not saved:
        return []
    a, b = _flatten(saved), _flatten(current)
    return [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if k not in RUN_CONTROL and a.get(k) != b.get(k)
    ]


def check_resumable(
    state: dict[str, Any], path: Path, *, world_size: int, config: dict[str, Any], total_steps: int
) -> None:
    """Refuse a resume that could not continue the saved run exactly (each error names the fix)."""
    if state["world_size"] != world_size:
        raise PolyirError(
            f"resume_from: {path} was saved by {state['world_size']} process(es), this run has "
            f"{world_size}; resume with the same number of processes"
        )
    changed = trajectory_changes(state.get("config") or {}, config)
    if changed:
        raise PolyirError(
            f"resume_from: {path} was trained with other settings ({'; '.join(changed)}); resume with "
            "the config in its run folder (config.yaml), changing only run-control keys"
        )
    if state["total_steps"] != total_steps:
        raise PolyirError(
            f"resume_from: {path} belongs to a run of {state['total_steps']} steps, this config plans "
            f"{total_steps}; keep optim.max_steps / epochs / batch_size as they were"
        )


# ---------------------------------------------------------------------------- reading and writing


def write_checkpoint(run_dir: Path, step: int, state: dict[str, Any], encoder: Any, *, keep: int) -> Path:
    """Write ``checkpoints/step-N`` beside and rename it into place; keep the newest ``keep``."""
    root = run_dir / "checkpoints"
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    encoder.save(tmp / "model")
    torch.save(state, tmp / CHECKPOINT_STATE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    kept = sorted(
        (int(p.name[5:]), p) for p in root.iterdir() if p.name.startswith("step-") and p.name[5:].isdigit()
    )
    for _, old in kept[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """The trainer state saved in a checkpoint folder."""
    return torch.load(path / CHECKPOINT_STATE, map_location=device, weights_only=True)
