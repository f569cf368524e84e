"""``polyir push RUN_OR_MODEL --repo ID``: upload a model folder, with a fresh model card, to the Hugging Face hub.

A run folder (holding ``run.json`` / ``config.yaml`` and ``best/``) resolves to its ``best/`` model. The
folder is copied to a staging folder, its card is written there from everything known (the run's
config and log, ``--results`` files for test metrics), and the staging folder is what is uploaded
(``HfApi.create_repo`` then ``upload_folder``). ``--dry-run`` stops before the network: it lists what
would be uploaded (``--stage DIR`` keeps the staged folder to look at).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import typer

from polyir.errors import PolyirError

SKIP_PREFIXES = (".",)  # hidden and temporary files (atomic writes' leftovers) stay home


def resolve_model_folder(path: Path | str) -> Path:
    """The model folder ``path`` names: itself, or a run folder's ``best/``."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise PolyirError(f"{path}: no such folder; give a model folder or a training run folder")
    if (path / "modules.json").is_file():
        return path
    if (path / "best" / "modules.json").is_file():
        return path / "best"
    raise PolyirError(
        f"{path}: neither a model folder (modules.json) nor a training run with a best/ model; "
        "give e.g. runs/hybrid or runs/hybrid/best"
    )


def _read_results(paths: Sequence[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        try:
            data = json.loads(Path(p).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PolyirError(f"--results {p}: no such file") from None
        except json.JSONDecodeError as exc:
            raise PolyirError(f"--results {p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            raise PolyirError(f"--results {p}: not a polyir evaluate result (no 'metrics'); write one with polyir evaluate --output")
        out.append(data)
    return out


def stage(model: Path, staging: Path, *, repo: str, results: Sequence[dict[str, Any]] = ()) -> list[Path]:
    """Copy the model folder into ``staging`` and write its card there; return the staged files."""
    from polyir.models.card import gather_facts, write_model_card

    for src in sorted(model.rglob("*")):
        rel = src.relative_to(model)
        if any(part.startswith(SKIP_PREFIXES) for part in rel.parts) or not src.is_file():
            continue
        dst = staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    facts = gather_facts(model, results=results, model_name=repo.split("/")[-1])
    write_model_card(staging, facts)
    return sorted(p for p in staging.rglob("*") if p.is_file())


def upload(staging: Path, repo: str, *, private: bool, token: str | None = None) -> str:
    """Create the repository (kept if it exists) and upload the staged folder; return its URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo, folder_path=str(staging), repo_type="model",
                      commit_message="Upload model trained with polyir")
    return str(url)


def push_command(
    source: Path = typer.Argument(..., help="A model folder, or a training run folder (its best/ model is pushed)."),
    repo: str = typer.Option(..., "--repo", help="Hub repository id, e.g. your-name/e5-small-hybrid."),
    private: bool = typer.Option(False, "--private", help="Create the repository as private."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Stage and list what would be uploaded; no network."),
    results: Optional[list[Path]] = typer.Option(
        None, "--results", help="polyir evaluate result JSON(s) whose metrics go in the card as test results."
    ),
    stage_dir: Optional[Path] = typer.Option(
        None, "--stage", help="Stage into this (new or empty) folder and keep it (default: a temporary folder)."
    ),
) -> None:
    """Upload a model folder with a generated model card (model-index metrics) to the Hugging Face hub."""
    from rich.console import Console

    console = Console()
    if repo.count("/") > 1 or not repo.strip("/") or " " in repo:
        raise PolyirError(f"--repo {repo!r}: give a hub id like name/model or model")
    model = resolve_model_folder(source)
    loaded = _read_results(results or [])
    if stage_dir is not None:
        if stage_dir.exists() and any(stage_dir.iterdir()):
            raise PolyirError(f"--stage {stage_dir}: folder is not empty; give a new or empty folder")
        stage_dir.mkdir(parents=True, exist_ok=True)
        holder = None
        staging = stage_dir
    else:
        holder = tempfile.TemporaryDirectory(prefix="polyir-push-")
        staging = Path(holder.name)
    try:
        files = stage(model, staging, repo=repo, results=loaded)
        console.print(f"{'would upload' if dry_run else 'uploading'} {model} to {repo}"
                      f"{' (private)' if private else ''}: {len(files)} files")
        for f in files:
            console.print(f"  {f.relative_to(staging)}  {f.stat().st_size:,} bytes", highlight=False)
        if dry_run:
            if stage_dir is not None:
                console.print(f"staged in {staging}")
            return
        url = upload(staging, repo, private=private)
        console.print(f"pushed: {url}")
    finally:
        if holder is not None:
            holder.cleanup()
