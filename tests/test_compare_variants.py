"""`polyir compare` pairs a task with its query variant (afriqa vs afriqa-pivot) query by query, and still
refuses two unrelated tasks."""

from __future__ import annotations

import json
import urllib.error

from typer.testing import CliRunner

from polyir.cli import app
from polyir.data import registry
from test_data_afriqa import write_language

runner = CliRunner()


def _evaluate(model, dataset, data, out, languages="hau,fon"):
    res = runner.invoke(app, ["evaluate", "--model", str(model), "--dataset", dataset, "--data-dir", str(data),
                              "--languages", languages, "--output", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_afriqa_and_its_pivot_compare_by_query(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "_open_url",
                        lambda url, timeout: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    write_language(data, "hau"), write_language(data, "fon")
    native = _evaluate(tiny_model_dir, "afriqa", data, tmp_path / "native.json")
    pivot = _evaluate(tiny_model_dir, "afriqa-pivot", data, tmp_path / "pivot.json")
    assert native["dataset_fingerprint"] != pivot["dataset_fingerprint"]  # other query texts

    res = runner.invoke(app, ["compare", "native.json", "pivot.json", "--resamples", "200", "--output", "cmp.json"])
    assert res.exit_code == 0, res.output
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    cr = next(r for r in cmp["rows"] if r["metric"] == "cr_map")
    assert cr["n_queries"] == len(native["per_query"]["query_id"])
    assert abs(cr["diff"] - (pivot["metrics"]["cr_map"] - native["metrics"]["cr_map"])) < 1e-9
    assert "same queries and pool" in cmp["note"]

    # an unrelated task is still refused, whichever side it is on
    (tmp_path / "news").mkdir()
    for lang in ("en", "ha"):
        (tmp_path / "news" / f"news.{lang}.txt").write_text("a\nb\nc\n", encoding="utf-8")
    _evaluate(tiny_model_dir, str(tmp_path / "news"), data, tmp_path / "news.json", languages="en,ha")
    bad = runner.invoke(app, ["compare", "pivot.json", "news.json"])
    assert bad.exit_code == 2 and ("different datasets" in bad.output or "different queries" in bad.output)
