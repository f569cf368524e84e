"""Run an experiment: train each arm and seed from one base model, evaluate everything, summarise.

Finished pieces are reused (a trained run with ``run.json`` and ``best/``, an evaluation JSON), so an
interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from polyir.data.registry import load_task
from polyir.evaluation.report import write_outputs
from polyir.evaluation.run import EvalOptions, evaluate_encoder
from polyir.experiment.config import ExperimentConfig, run_name
from polyir.experiment.summary import summarize, write_summary
from polyir.models.resolve import load_encoder
from polyir.runinfo import Timer, versions, write_json


def _evaluate_into(
    spec: str, name: str, config: ExperimentConfig, tasks: dict[str, Any], out: Path, console: Console,
    progress: bool,
) -> dict[str, Path]:
    """Evaluate one model on every test set, writing ``eval/<name>/<test>.json`` (reused if present)."""
    paths = {}
    encoder = None
    for label, task in tasks.items():
        path = out / "eval" / name / f"{label}.json"
        paths[label] = path
        if path.is_file():
            continue
        if encoder is None:
            encoder = load_encoder(spec)
        console.print(f"evaluate [bold]{name}[/bold] on {escape(label)}")
        options = EvalOptions(
            precision=config.evaluation.precision,
            batch_size=config.evaluation.batch_size,
            use_cache=config.evaluation.cache and name == "base",
            show_progress=progress,
        )
        result = evaluate_encoder(encoder, task, options, dataset=label, extra_config={"row": name})
        write_outputs(result, path)
    return paths


def run_experiment(
    config: ExperimentConfig, *, console: Console | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train, evaluate and summarise; returns the summary dict (also written as summary.json)."""
    from polyir.training.trainer import train

    console = console or Console()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    write_json(out / "experiment.json", {"config": config.model_dump(mode="json"), "versions": versions()})

    with timer("load_test_sets"):
        tasks = {
            ts.label: load_task(ts.dataset, languages=ts.languages) for ts in config.test_sets
        }
    base_spec = config.train_config(config.arms[0], config.seeds[0], config.alphas[0], out).model.spec
    evaluations: dict[str, dict[int | None, dict[str, Path]]] = {}
    validation: dict[str, dict[int, float | None]] = {}
    if config.include_base:
        with timer("evaluate_base"):
            evaluations["base"] = {None: _evaluate_into(base_spec, "base", config, tasks, out, console, progress)}

    for seed in config.seeds:
        for arm, alpha in config.runs():
            name = run_name(arm, alpha, seed)
            row = arm if alpha is None else f"hybrid@{alpha:g}"
            run_dir = out / "runs" / name
            run_json = run_dir / "run.json"
            if not (run_json.is_file() and (run_dir / "best" / "modules.json").is_file()):
                console.print(f"train [bold]{name}[/bold]")
                with timer(f"train_{name}"):
                    train(config.train_config(arm, seed, alpha, run_dir))
            info = json.loads(run_json.read_text(encoding="utf-8"))
            validation.setdefault(row, {})[seed] = (info.get("best") or {}).get("value")
            with timer(f"evaluate_{name}"):
                evaluations.setdefault(row, {})[seed] = _evaluate_into(
                    str(run_dir / "best"), name, config, tasks, out, console, progress
                )

    with timer("summary"):
        summary = summarize(config, evaluations, validation)
    summary["timings"] = timer.seconds
    write_summary(summary, out)
    return summary
