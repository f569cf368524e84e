"""`polyir evaluate` and `polyir compare` end to end on a tiny model and a tiny LAReQA dataset."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.testing import build_tiny_model_dir, write_tiny_lareqa

runner = CliRunner()


@pytest.fixture()
def data_dir(tmp_path):
    write_tiny_lareqa(tmp_path / "data" / "xquad-r", ["en", "de", "es"])
    return tmp_path / "data"


def _evaluate(model, data_dir, out, *extra):
    res = runner.invoke(app, ["evaluate", "--model", str(model), "--dataset", "xquad-r",
                              "--data-dir", str(data_dir), "--languages", "en,de,es",
                              "--output", str(out), "--no-progress", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_evaluate_writes_json_heatmap_and_markdown(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "res" / "tiny.json"
    result = _evaluate(tiny_model_dir, data_dir, out)
    for key in ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10"):
        value = result["metrics"][key]
        assert value is not None and value >= 0
    assert 0 <= result["metrics"]["mul_map"] <= 1
    assert result["matrix"]["query_languages"] == ["de", "en", "es"]
    assert len(result["matrix"]["values"]) == 3
    # the matrix diagonal is the per-language Mo.; its mean is mo_map
    diag = [result["matrix"]["values"][i][i] for i in range(3)]
    assert sum(diag) / 3 == pytest.approx(result["metrics"]["mo_map"])
    assert len(result["per_query"]["ap_mul"]) == result["counts"]["queries"] == 3 * 4 * 2
    assert result["counts"]["candidates"] == 3 * 4 * 3
    assert result["config"]["precision"] == "fp32" and "torch" in result["versions"]
    assert "total" in result["timings"]
    assert (tmp_path / "res" / "tiny.heatmap.png").stat().st_size > 1000
    md = (tmp_path / "res" / "tiny.md").read_text()
    assert "Mul. mAP" in md and "tiny.heatmap.png" in md


def test_compare_same_run_shows_no_difference_and_other_model_is_tested(tiny_model_dir, data_dir, tmp_path):
    a = tmp_path / "a.json"
    _evaluate(tiny_model_dir, data_dir, a)
    other = build_tiny_model_dir(tmp_path / "other", ["cat", "dog", "park"], seed=7)
    b = tmp_path / "b.json"
    _evaluate(other, data_dir, b)

    same = runner.invoke(app, ["compare", str(a), str(a), "--output", str(tmp_path / "same.json"),
                               "--resamples", "500"])
    assert same.exit_code == 0, same.output
    rows = json.loads((tmp_path / "same.json").read_text())["rows"]
    assert {r["metric"] for r in rows} >= {"mo_map", "cr_map", "mul_map", "rank_distance"}
    for r in rows:
        assert r["diff"] == 0 and r["p_randomization"] == pytest.approx(1.0)

    diff = runner.invoke(app, ["compare", str(a), str(b), "--output", str(tmp_path / "ab.json"),
                               "--resamples", "500"])
    assert diff.exit_code == 0, diff.output
    rows = {r["metric"]: r for r in json.loads((tmp_path / "ab.json").read_text())["rows"]}
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert rows["mul_map"]["diff"] == pytest.approx(rb["metrics"]["mul_map"] - ra["metrics"]["mul_map"], abs=1e-9)
    assert 0 < rows["mul_map"]["p_randomization"] <= 1


def test_compare_rejects_results_on_different_queries(tiny_model_dir, data_dir, tmp_path):
    a = tmp_path / "a.json"
    _evaluate(tiny_model_dir, data_dir, a)
    b = tmp_path / "b.json"
    res = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--dataset", "xquad-r",
                              "--data-dir", str(data_dir), "--languages", "en,de",
                              "--output", str(b), "--no-progress"])
    assert res.exit_code == 0, res.output
    bad = runner.invoke(app, ["compare", str(a), str(b)])
    assert bad.exit_code == 2
    assert "different queries" in bad.output


def test_compare_rejects_a_file_that_is_not_a_result(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"hello": 1}')
    res = runner.invoke(app, ["compare", str(f), str(f)])
    assert res.exit_code == 2 and "not a polyir evaluation result" in res.output


def test_evaluate_unknown_language_and_bad_precision_are_clear(tiny_model_dir, data_dir, tmp_path):
    res = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--data-dir", str(data_dir),
                              "--languages", "en,xx"])
    assert res.exit_code == 2 and "xx" in res.output
    res = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--data-dir", str(data_dir),
                              "--languages", "en", "--precision", "fp8"])
    assert res.exit_code == 2 and "precision" in res.output


def test_evaluate_cache_reuses_embeddings(tiny_model_dir, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    first = _evaluate(tiny_model_dir, data_dir, tmp_path / "1.json", "--cache")
    second = _evaluate(tiny_model_dir, data_dir, tmp_path / "2.json", "--cache")
    assert first["counts"]["query_cache_hit"] is False and second["counts"]["query_cache_hit"] is True
    assert first["metrics"] == second["metrics"]
