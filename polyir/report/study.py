"""Find and read what a report covers: experiment folders (``summary.json``) and plain result JSONs.

An experiment folder holds ``summary.json``, ``experiment.json``, ``eval/<run>/<test set>.json`` and
``runs/<run>/`` (``run.json``, ``config.yaml``).  Anything else given (a result JSON from
``polyir evaluate``, or a folder of them) is a *loose* result.  A folder without ``summary.json`` is
searched for experiment folders and result JSONs below it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyir.errors import DataFormatError, PolyirError

# eval/<name>: "base", "monolingual-s0", "hybrid-a0.5-s1", "merged-a0.5" ...
_RUN_NAME = re.compile(r"^(?P<arm>.+?)(?:-a(?P<alpha>\d+(?:\.\d+)?))?(?:-s(?P<seed>\d+))?$")


@dataclass
class ResultFile:
    """One evaluation result JSON and where it belongs."""

    path: Path
    data: dict[str, Any]
    test_set: str
    row: str
    seed: int | None = None
    languages: tuple[str, ...] = ()  # query languages (labels loose results of one dataset apart)


@dataclass
class Experiment:
    """An experiment folder: its summary, config, evaluation results and training runs."""

    path: Path
    summary: dict[str, Any]
    experiment: dict[str, Any] | None
    results: list[ResultFile]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"run": {...}, "config": "yaml text"}

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.path.name)

    @property
    def label(self) -> str:
        """The name, with the folder's name when they differ (a copy, or two runs of one config)."""
        return self.name if self.path.name == self.name else f"{self.name} ({self.path.name})"


@dataclass
class Study:
    """Everything one report shows."""

    experiments: list[Experiment]
    loose: list[ResultFile]


def read_json(path: Path) -> Any:
    """Parse a JSON file, naming the file in the error."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def is_result(data: Any) -> bool:
    """A polyir evaluation result: a dict with a ``metrics`` dict (and a task or dataset name)."""
    return isinstance(data, dict) and isinstance(data.get("metrics"), dict) and bool(data.get("task") or data.get("dataset"))


_MERGE_NAME = re.compile(r"^merge-w(?P<w>\d+(?:\.\d+)?)-s(?P<seed>\d+)$")


def parse_run_name(name: str) -> tuple[str, int | None]:
    """Row and seed of an ``eval/<name>`` folder: ``hybrid-a0.5-s1`` -> (``hybrid@0.5``, 1),
    ``merge-w0.5-s0`` -> (``hybrid+merge@0.5``, 0), ``hybrid+distill-s0`` -> (``hybrid+distill``, 0)."""
    m = _MERGE_NAME.match(name)
    if m:
        return f"hybrid+merge@{float(m['w']):g}", int(m["seed"])
    m = _RUN_NAME.match(name)
    if not m:
        return name, None
    row = m["arm"] if m["alpha"] is None else f"{m['arm']}@{float(m['alpha']):g}"
    return row, None if m["seed"] is None else int(m["seed"])


def run_rows(config: dict[str, Any]) -> dict[str, tuple[str, int | None]]:
    """``eval/<name>`` -> (row, seed) as polyir/experiment/runner.py names them, from experiment.json's config."""
    out: dict[str, tuple[str, int | None]] = {"base": ("base", None)}
    try:
        for seed in config.get("seeds") or []:
            for arm in config.get("arms") or []:
                if arm == "hybrid":
                    for a in config.get("alphas") or []:
                        out[f"hybrid-a{float(a):g}-s{seed}"] = (f"hybrid@{float(a):g}", int(seed))
                else:
                    out[f"{arm}-s{seed}"] = (str(arm), int(seed))
            for v in config.get("variants") or []:
                out[f"{v['name']}-s{seed}"] = (str(v["name"]), int(seed))
            for w in config.get("merge_weights") or []:
                out[f"merge-w{float(w):g}-s{seed}"] = (f"hybrid+merge@{float(w):g}", int(seed))
    except (TypeError, ValueError, KeyError):  # an unexpected shape: fall back on the names alone
        return {}
    return out


def load_experiment_folder(path: Path) -> Experiment:
    """Read an experiment folder; its result files are ``eval/<run>/<test set>.json``."""
    path = Path(path)
    summary = read_json(path / "summary.json")
    if not isinstance(summary, dict) or not isinstance(summary.get("results"), dict):
        raise DataFormatError(f"{path / 'summary.json'}: not a polyir experiment summary (no 'results')")
    exp_file = path / "experiment.json"
    experiment = read_json(exp_file) if exp_file.is_file() else None
    results = []
    eval_dir = path / "eval"
    known = run_rows((experiment or {}).get("config") or {}) if isinstance(experiment, dict) else {}
    if eval_dir.is_dir():
        for run_dir in sorted(p for p in eval_dir.iterdir() if p.is_dir()):
            row, seed = known.get(run_dir.name) or parse_run_name(run_dir.name)
            for f in sorted(run_dir.glob("*.json")):
                data = read_json(f)
                if is_result(data):
                    results.append(ResultFile(f, data, f.stem, row, seed))
    runs: dict[str, dict[str, Any]] = {}
    runs_dir = path / "runs"
    if runs_dir.is_dir():
        for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
            info: dict[str, Any] = {}
            if (run_dir / "run.json").is_file():
                info["run"] = read_json(run_dir / "run.json")
            if (run_dir / "config.yaml").is_file():
                info["config"] = (run_dir / "config.yaml").read_text(encoding="utf-8", errors="replace")
            if info:
                runs[run_dir.name] = info
    return Experiment(path, summary, experiment, results, runs)


def _loose_result(path: Path, data: dict[str, Any]) -> ResultFile:
    langs = (data.get("matrix") or {}).get("query_languages") or (data.get("config") or {}).get("languages")
    label = str(data.get("dataset") or data.get("task"))
    return ResultFile(path, data, label, path.stem, languages=tuple(langs or ()))


def _label_loose(loose: list[ResultFile]) -> None:
    """Test-set labels: the dataset name, plus the languages when one dataset appears with several sets;
    row labels: the file stem, prefixed by its folder when two files share a stem."""
    by_ds: dict[str, set[tuple[str, ...]]] = {}
    for r in loose:
        by_ds.setdefault(r.test_set, set()).add(r.languages)
    for r in loose:
        if len(by_ds[r.test_set]) > 1:
            r.test_set = f"{r.test_set}[{','.join(r.languages)}]"
    stems: dict[tuple[str, str], int] = {}
    for r in loose:
        stems[(r.test_set, r.row)] = stems.get((r.test_set, r.row), 0) + 1
    for r in loose:
        if stems[(r.test_set, r.row)] > 1:
            r.row = f"{r.path.parent.name}/{r.path.stem}"


_MODEL_FILES = ("modules.json", "model.safetensors", "pytorch_model.bin")


def _may_be_result(path: Path, root: Path) -> bool:
    """Cheap filter while searching ``root``: not inside a model or checkpoint folder, and the file's
    start names ``format`` or ``metrics`` (results are written with ``format`` first)."""
    if "checkpoints" in path.relative_to(root).parts or any((path.parent / m).exists() for m in _MODEL_FILES):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b'"format"' in head or b'"metrics"' in head


def load_study(paths: list[Path]) -> Study:
    """Read every experiment folder and result JSON named (or found below a named folder)."""
    if not paths:
        raise PolyirError("name at least one experiment folder or result JSON")
    experiments: list[Experiment] = []
    loose: list[ResultFile] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise PolyirError(f"{path}: no such file or folder")
        if path.is_file():
            data = read_json(path)
            if not is_result(data):
                raise DataFormatError(f"{path}: not a polyir evaluation result (no 'metrics')")
            if path.resolve() not in seen:
                seen.add(path.resolve())
                loose.append(_loose_result(path, data))
            continue
        if (path / "summary.json").is_file():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                experiments.append(load_experiment_folder(path))
            continue
        found_exp = sorted({p.parent for p in path.rglob("summary.json")})
        found = 0
        for exp in found_exp:
            if exp.resolve() not in seen:
                seen.add(exp.resolve())
                experiments.append(load_experiment_folder(exp))
            found += 1
        for f in sorted(path.rglob("*.json")):
            if any(exp in f.parents for exp in found_exp) or f.resolve() in seen or not _may_be_result(f, path):
                continue
            try:
                data = read_json(f)
            except DataFormatError:
                continue
            if is_result(data):
                seen.add(f.resolve())
                loose.append(_loose_result(f, data))
                found += 1
        if not found:
            raise PolyirError(
                f"{path}: holds no summary.json and no polyir result JSON; give an experiment folder "
                "(from `polyir experiment`) or result files (from `polyir evaluate --output`)"
            )
    _label_loose(loose)
    return Study(experiments, loose)
