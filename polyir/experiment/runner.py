"""Run an experiment: train each arm and seed from one base model, evaluate everything, summarise.

Order: the plain arms (every seed), then the α choice on validation, then the variants (extra trained
rows) and the WiSE-FT merges of the chosen hybrid runs with the base. Every model is evaluated on
the test sets and on both halves of each guard set (validation half: for choosing; test half:
reported). Finished pieces are reused (a trained run with ``run.json`` and ``best/``, a merged model,
an evaluation or validation JSON), so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from polyir.data.load import load_task_or_path
from polyir.data.split import split_by_document
from polyir.evaluation.report import write_outputs
from polyir.evaluation.run import EvalOptions, evaluate_encoder
from polyir.experiment.config import ExperimentConfig, run_name
from polyir.experiment.curve import CurveData, snapshot_name, summarize_curve
from polyir.experiment.debias import debiased_folder
from polyir.experiment.summary import GUARD_PREFIX, GUARD_VAL_PREFIX, choose_alpha, summarize, write_summary
from polyir.models.resolve import load_encoder
from polyir.runinfo import Timer, versions, write_json
from polyir.training.rundir import snapshot_dir

def _evaluate_into(
    spec: str, name: str, config: ExperimentConfig, tasks: dict[str, Any], out: Path, console: Console,
    progress: bool, folder: str = "eval",
) -> dict[str, Path]:
    """Evaluate one model on every task, writing ``<folder>/<name>/<label>.json`` (reused if present;
    ``eval/`` holds the table's rows, ``curve/`` the learning curve's snapshots).

    Texts shared by several tasks (NTREX sentences and documents, the two halves' pools) are encoded
    once per model through an in-memory memo."""
    paths = {}
    encoder = None
    memo: dict[tuple[str, str], Any] = {}
    for label, task in tasks.items():
        path = out / folder / name / f"{_file_label(label)}.json"
        paths[label] = path
        if path.is_file():
            continue
        if encoder is None:
            encoder = load_encoder(spec)
        console.print(f"evaluate [bold]{escape(name)}[/bold] on {escape(label)}")
        options = EvalOptions(
            precision=config.evaluation.resolved_precision,
            batch_size=config.evaluation.batch_size,
            use_cache=config.evaluation.cache,
            show_progress=progress,
        )
        result = evaluate_encoder(encoder, task, options, dataset=label, extra_config={"row": name}, memo=memo)
        write_outputs(result, path)
    return paths


def _file_label(label: str) -> str:
    return label.replace(":", "--").replace("/", "_")


def _load_tasks(config: ExperimentConfig) -> dict[str, Any]:
    """Test sets by label, then each guard set's test and validation halves (split by document)."""
    tasks: dict[str, Any] = {ts.label: load_task_or_path(ts.dataset, languages=ts.languages) for ts in config.test_sets}
    g = config.guard
    for ts in g.sets:
        task = load_task_or_path(ts.dataset, languages=ts.languages)
        val, test = split_by_document(task, g.validation_fraction, g.split_seed)
        tasks[GUARD_PREFIX + ts.label] = test  # reported
        tasks[GUARD_VAL_PREFIX + ts.label] = val  # only for choosing
    return tasks


def _validate_into(spec: str, name: str, config: ExperimentConfig, seed: int, out: Path) -> float | None:
    """The validation metric of any model (trained run, merge) on the training data's held-out pairs,
    measured the same way for all of them (``validation/<name>.json``): α and the shipped
    configuration are chosen on these values, never on a test set."""
    from polyir.training.trainer import held_out_metrics

    path = out / "validation" / f"{name}.json"
    reused = _reused(config, "validation", f"{name}.json", lambda p: p.is_file())
    if reused is not None and json.loads(reused.read_text(encoding="utf-8")).get("model") == spec:
        path = reused  # the same model scored on the same held-out pairs by the experiment it came from
    train_cfg = config.train_config(config.arms[0], seed, config.alphas[0], out / "check")
    metric = train_cfg.validation.metric
    if not path.is_file():
        row = held_out_metrics(load_encoder(spec), train_cfg)
        write_json(path, {"model": spec, **row})
    value = json.loads(path.read_text(encoding="utf-8")).get(metric)
    return None if value is None else float(value)


def _reused(config: ExperimentConfig, kind: str, name: str, done) -> Path | None:
    """A finished model of the same name in one of ``config.reuse_from``'s experiment folders."""
    for folder in config.reuse_from:
        candidate = Path(folder) / kind / name
        if done(candidate):
            return candidate
    return None


def _trained(run_dir: Path) -> bool:
    return (run_dir / "run.json").is_file() and (run_dir / "best" / "modules.json").is_file()


def run_experiment(
    config: ExperimentConfig, *, console: Console | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train, merge, evaluate and summarise; returns the summary dict (also written as summary.json)."""
    from polyir.training.trainer import train

    console = console or Console()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    write_json(out / "experiment.json", {"config": config.model_dump(mode="json"), "versions": versions()})

    with timer("load_test_sets"):
        tasks = _load_tasks(config)
    base_spec = config.train_config(config.arms[0], config.seeds[0], config.alphas[0], out).model.spec
    evaluations: dict[str, dict[int | None, dict[str, Path]]] = {}
    validation: dict[str, dict[int, float | None]] = {}

    models: dict[str, dict[int | None, tuple[str, str]]] = {}  # row -> seed -> (spec, name)

    def evaluate(spec: str, name: str, row: str, seed: int | None) -> None:
        models.setdefault(row, {})[seed] = (spec, name)
        with timer(f"evaluate_{name}"):
            evaluations.setdefault(row, {})[seed] = _evaluate_into(spec, name, config, tasks, out, console, progress)

    if config.include_base:
        evaluate(base_spec, "base", "base", None)

    def debias_row(row: str) -> None:
        """``<row>+debias``: each seed's model of ``row`` with its own projection (polyir.experiment.debias)."""
        from polyir.experiment.debias import debias_rows

        for name_row, seed, spec, name in debias_rows(config, row, models, chosen, out, console, progress, timer):
            with timer(f"validate_{name}"):
                validation.setdefault(name_row, {})[seed if seed is not None else config.seeds[0]] = _validate_into(
                    spec, name, config, seed if seed is not None else config.seeds[0], out)
            evaluate(spec, name, name_row, seed)

    chosen = None
    if config.debias is not None and "base" in config.debias.rows:  # first: variants may start from it
        debias_row("base")

    curve: CurveData = {}
    wanted = config.curve.test_sets if config.curve is not None else None
    test_tasks = {ts.label: tasks[ts.label] for ts in config.test_sets
                  if wanted is None or ts.dataset in wanted or ts.label in wanted}

    def score_snapshots(run_dir: Path, name: str, row: str, seed: int) -> None:
        """The learning curve: each snapshot on the validation split and the test sets (not the guards)."""
        for step in config.curve.steps:
            snapshot = snapshot_dir(run_dir, step)
            if not (snapshot / "modules.json").is_file():
                console.print(f"[yellow]no snapshot at step {step} in {escape(str(run_dir))}: left out of the curve")
                continue
            snap = snapshot_name(name, step)
            with timer(f"curve_{snap}"):
                val = _validate_into(str(snapshot), snap, config, seed, out)
                paths = _evaluate_into(str(snapshot), snap, config, test_tasks, out, console, progress, "curve")
            curve.setdefault(row, {}).setdefault(step, {})[seed] = (val, paths)

    def train_and_evaluate(name: str, row: str, seed: int, make_config, with_curve: bool = False) -> Path:
        run_dir = _reused(config, "runs", name, _trained) or out / "runs" / name
        if not _trained(run_dir):
            console.print(f"train [bold]{escape(name)}[/bold]")
            with timer(f"train_{name}"):
                train(make_config(run_dir))
        with timer(f"validate_{name}"):
            validation.setdefault(row, {})[seed] = _validate_into(str(run_dir / "best"), name, config, seed, out)
        evaluate(str(run_dir / "best"), name, row, seed)
        if with_curve:
            score_snapshots(run_dir, name, row, seed)
        return run_dir

    for seed in config.seeds:
        for arm, alpha in config.runs():
            row = arm if alpha is None else f"hybrid@{alpha:g}"
            train_and_evaluate(run_name(arm, alpha, seed), row, seed,
                               lambda d, a=arm, s=seed, al=alpha: config.train_config(a, s, al, d),
                               with_curve=arm in config.curve_arms)

    chosen, _ = choose_alpha(validation)
    for variant in config.variants:
        alpha = variant.alpha if variant.alpha is not None else chosen
        for seed in config.seeds:
            init = str(debiased_folder(out, "base")) if variant.init == "base+debias" else None
            train_and_evaluate(f"{variant.name}-s{seed}", variant.name, seed,
                               lambda d, v=variant, s=seed, a=alpha, i=init: config.variant_config(v, s, a, d, init=i))

    if config.merge_weights and chosen is not None:
        from polyir.models.merge import merge_models

        for seed in config.seeds:
            tuned = out / "runs" / run_name("hybrid", chosen, seed) / "best"
            for w in config.merge_weights:
                name = f"merge-w{w:g}-s{seed}"
                row = f"hybrid+merge@{w:g}"
                folder = _reused(config, "merges", name, lambda f: (f / "modules.json").is_file()) or out / "merges" / name
                if not (folder / "modules.json").is_file():
                    console.print(f"merge [bold]{escape(name)}[/bold] ({w:g} of {escape(str(tuned))})")
                    with timer(f"merge_{name}"):
                        merge_models(base_spec, str(tuned), w, folder, overwrite=True)
                with timer(f"validate_{name}"):
                    validation.setdefault(row, {})[seed] = _validate_into(str(folder), name, config, seed, out)
                evaluate(str(folder), name, row, seed)

    for row in [r for r in (config.debias.rows if config.debias else []) if r != "base"]:
        debias_row(row)

    with timer("summary"):
        summary = summarize(config, evaluations, validation)
        if curve:
            summary["curve"] = {"steps": list(config.curve.steps), "points": summarize_curve(curve),
                                "note": "snapshots of each run (one schedule over the full budget); test columns "
                                        "are shown, never used to choose"}
    fit_info = out / "debias" / "fit.json"
    if config.debias is not None and fit_info.is_file():
        summary["debias"] = {**config.debias.model_dump(mode="json"),
                             "fitted_on": json.loads(fit_info.read_text(encoding="utf-8"))}
    summary["timings"] = timer.seconds
    write_summary(summary, out)
    return summary
