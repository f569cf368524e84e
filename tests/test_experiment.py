"""`polyir experiment` end to end on a tiny model and tiny data: rows, tests, α choice, reuse."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.errors import PolyirError
from polyir.experiment.config import load_experiment
from polyir.testing import write_tiny_lareqa

runner = CliRunner()
ROWS = ("base", "monolingual", "crosslingual", "hybrid")


@pytest.fixture()
def setup(tmp_path, tiny_model_dir, monkeypatch):
    data = tmp_path / "data"
    write_tiny_lareqa(data / "mlqa-r", ["en", "de", "es"], n_paragraphs=8)
    write_tiny_lareqa(data / "xquad-r", ["en", "de", "es"], n_paragraphs=3)
    monkeypatch.setenv("POLYIR_DATA_DIR", str(data))
    sets = [
        f"train.model.spec={tiny_model_dir}",
        "train.optim.max_steps=3",
        "train.optim.batch_size=4",
        "train.validation.every=3",
        "train.validation.count=4",
        "train.validation.max_loss_batches=1",
        "train.progress=false",
        "test_sets=[{dataset: xquad-r, languages: [en, de, es]}]",
        "train.data.train=[{source: mlqa-r, languages: [en, de, es]}]",
        "evaluation.precision=fp32",
        "evaluation.resamples=200",
        f"output_dir={tmp_path / 'exp'}",
    ]
    return tmp_path / "exp", sets


def _run(sets):
    args = ["experiment", "--no-progress"]
    for s in sets:
        args += ["--set", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def test_experiment_writes_rows_tests_table_and_chart(setup):
    out, sets = setup
    _run(sets)
    summary = json.loads((out / "summary.json").read_text())
    table = summary["results"]["xquad-r[en,de,es]"]
    assert set(ROWS) <= set(table)
    for row in ROWS:
        for key in ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10"):
            assert table[row][key] is not None
    assert set(table["hybrid"]["vs_base"]) == {"mo_map", "cr_map", "mul_map", "rank_distance"}
    assert "vs_monolingual" in table["hybrid"] and "vs_monolingual" not in table["base"]
    assert 0 < table["hybrid"]["vs_base"]["mul_map"]["p"] <= 1
    # the base row is the untouched model: same numbers as evaluating it directly
    base_eval = json.loads((out / "eval" / "base" / "xquad-r[en,de,es].json").read_text())
    assert table["base"]["mul_map"] == pytest.approx(base_eval["metrics"]["mul_map"])
    md = (out / "table.md").read_text()
    assert "| hybrid |" in md and "Conclusions" in md
    assert (out / "chart.png").stat().st_size > 1000
    for name in ("monolingual-s0", "crosslingual-s0", "hybrid-a0.5-s0"):
        assert (out / "runs" / name / "best" / "modules.json").is_file()
    strategies = {json.loads((out / "runs" / n / "run.json").read_text())["config"]["sampler"]["strategy"]
                  for n in ("monolingual-s0", "crosslingual-s0", "hybrid-a0.5-s0")}
    assert strategies == {"monolingual", "crosslingual", "hybrid"}

    # a second run reuses what is finished: nothing is trained again
    before = (out / "runs" / "hybrid-a0.5-s0" / "run.json").stat().st_mtime_ns
    _run(sets)
    assert (out / "runs" / "hybrid-a0.5-s0" / "run.json").stat().st_mtime_ns == before


def test_alpha_sweep_and_seeds_choose_alpha_on_validation(setup):
    out, sets = setup
    _run([*sets, "arms=[monolingual, hybrid]", "alphas=[0.0, 1.0]", "seeds=[0, 1]"])
    summary = json.loads((out / "summary.json").read_text())
    curve = summary["alpha"]["curve"]
    assert [c["alpha"] for c in curve] == [0.0, 1.0]
    best = max(curve, key=lambda c: c["validation_mean"])
    assert summary["alpha"]["chosen"] == best["alpha"]
    table = summary["results"]["xquad-r[en,de,es]"]
    assert table["hybrid"]["n_seeds"] == 2 and "hybrid@0" in table and "hybrid@1" in table
    chosen_row = table[f"hybrid@{best['alpha']:g}"]
    assert table["hybrid"]["mul_map"] == pytest.approx(chosen_row["mul_map"])
    assert (out / "alpha_curve.png").is_file()


def test_bad_experiment_configs_name_the_key(tmp_path):
    with pytest.raises(PolyirError, match="alphas"):
        load_experiment(None, ["alphas=[1.5]"])
    with pytest.raises(PolyirError, match="bogus"):
        load_experiment(None, ["bogus=1"])
    with pytest.raises(PolyirError, match="optim.lr"):
        load_experiment(None, ["train.optim.lr=-1"])
    with pytest.raises(PolyirError, match="arms"):
        load_experiment(None, ["arms=[sideways]"])
