"""`polyir experiment` end to end on a tiny model and tiny data: rows, tests, α choice, reuse."""

from __future__ import annotations

import json

import pytest
import torch
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
        "guard.sets=[]",
        "debias=null",
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
    with pytest.raises(PolyirError, match="merge_weights"):
        load_experiment(None, ["merge_weights=[1.0]"])
    with pytest.raises(PolyirError, match="guard.metrics"):
        load_experiment(None, ["guard.metrics=[ndcg]"])
    with pytest.raises(PolyirError, match="regularization.bogus"):
        load_experiment(None, ["variants=[{name: v, set: [regularization.bogus=1]}]"])
    with pytest.raises(PolyirError, match="taken"):
        load_experiment(None, ["variants=[{name: hybrid}]"])
    # the training config's override parser: unknown keys list the known ones, lists need an index
    with pytest.raises(PolyirError, match=r"unknown key 'guard\.bogus' \(known: "):
        load_experiment(None, ["guard.bogus=1"])
    with pytest.raises(PolyirError, match=r"'seeds' is a list; use an index"):
        load_experiment(None, ["seeds.x=1"])
    assert load_experiment(None, ["seeds.0=7", "train.optim.lr=1e-5"]).seeds[0] == 7


def _guard_texts(folder, n: int = 12) -> str:
    """Line-aligned en/de/es files: line i names the same made-up fact in three languages."""
    folder.mkdir(parents=True)
    words = {"en": "the", "de": "die", "es": "la"}
    for lang, w in words.items():
        lines = [f"{w} {'alpha beta gamma delta'.split()[i % 4]} {i} {w} end" for i in range(n)]
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(folder)


def test_guard_sets_variants_merges_and_selection(setup, tmp_path):
    out, sets = setup
    guard = _guard_texts(tmp_path / "guard")
    _run([*sets, "arms=[hybrid]", "guard.sets=[{dataset: " + guard + "}]", "merge_weights=[0.5]",
          "train.validation.pool=paragraphs",
          "variants=[{name: hybrid+distill, set: [regularization.distill_weight=1.0]}]"])
    summary = json.loads((out / "summary.json").read_text())
    label = "guard:" + guard
    rows = {"base", "hybrid", "hybrid+distill", "hybrid+merge@0.5"}
    assert rows <= set(summary["results"][label]) and rows <= set(summary["results"]["xquad-r[en,de,es]"])
    for row in rows:
        entry = summary["results"][label][row]
        assert 0.0 <= entry["cr_top1_non_en"] <= 1.0 and entry["mo_map"] is None  # no same-language relevant
        if row != "base":
            assert set(entry["vs_base"]) == {"cr_map", "mul_map", "rank_distance", "cr_top1_non_en"}
    # the halves: validation figures exist for every row, and are not the test half's
    val = summary["guard"]["validation"]["guard-val:" + guard]
    assert rows <= set(val)
    test_eval = json.loads((out / "eval" / "base" / f"guard--{guard.replace('/', '_')}.json").read_text())
    val_eval = json.loads((out / "eval" / "base" / f"guard-val--{guard.replace('/', '_')}.json").read_text())
    assert not set(test_eval["per_query"]["query_id"]) & set(val_eval["per_query"]["query_id"])
    # the merge is a real model halfway between base and hybrid, scored on the training validation split
    assert (out / "merges" / "merge-w0.5-s0" / "modules.json").is_file()
    merged_val = json.loads((out / "validation" / "merge-w0.5-s0.json").read_text())
    assert merged_val["val_mul_map"] is not None
    # the paragraph pool: every sentence of the held-out answers' paragraphs, more than one per query
    assert merged_val["val_candidates"] > merged_val["val_queries"]
    hybrid_val = json.loads((out / "validation" / "hybrid-a0.5-s0.json").read_text())
    assert hybrid_val["val_candidates"] == merged_val["val_candidates"]
    distill_log = (out / "runs" / "hybrid+distill-s0" / "log.jsonl").read_text()
    assert "loss_distill" in distill_log
    # selection: the best validation value among the eligible candidates
    sel = summary["selection"]
    assert [c["row"] for c in sel["candidates"]] == ["hybrid", "hybrid+distill", "hybrid+merge@0.5"]
    eligible = [c for c in sel["candidates"] if c["eligible"]]
    assert all(not c["guard_losses"] for c in eligible)
    if eligible:
        assert sel["chosen"] == max(eligible, key=lambda c: c["validation"])["row"]
    else:
        assert sel["chosen"] is None
    md = (out / "table.md").read_text()
    assert "## Selection" in md and "(guard set, test half)" in md
    assert (out / "tradeoff.png").stat().st_size > 1000


def _made_up_table(diffs: dict[str, tuple[float, float]]) -> dict:
    return {"base": {}, **{row: {"vs_base": {"mul_map": {"diff": d, "p": p, "better": d > 0}}}
                           for row, (d, p) in diffs.items()}}


def test_guard_flags_and_selection_on_made_up_results():
    from polyir.experiment.config import ExperimentConfig
    from polyir.experiment.summary import guard_flags, select

    results = {
        "xquad-r": _made_up_table({"hybrid": (-0.2, 0.001)}),  # not a guard set: never flagged
        "guard:news": _made_up_table({"hybrid": (-0.05, 0.001), "hybrid+merge@0.5": (-0.01, 0.3),
                                      "hybrid+distill": (0.02, 0.01)}),
    }
    flags = guard_flags(results, ["mul_map"], 0.05)
    assert [(f["set"], f["row"]) for f in flags] == [("guard:news", "hybrid")]

    config = ExperimentConfig.model_validate({
        "merge_weights": [0.5], "variants": [{"name": "hybrid+distill"}],
        "guard": {"sets": [{"dataset": "news"}], "metrics": ["mul_map"]},
    })
    guard_val = {"guard-val:news": results["guard:news"]}
    validation = {"hybrid@0.5": {0: 0.9, 1: 0.8}, "hybrid+distill": {0: 0.7}, "hybrid+merge@0.5": {0: 0.8}}
    sel = select(config, validation, guard_val, 0.5)
    assert sel["best_ignoring_guard"] == "hybrid"  # mean 0.85, but it loses on the guard
    assert sel["chosen"] == "hybrid+merge@0.5"  # 0.8 > 0.7, and no significant guard loss
    assert [c["eligible"] for c in sel["candidates"]] == [False, True, True]
    config.selection.respect_guard = False
    assert select(config, validation, guard_val, 0.5)["chosen"] == "hybrid"


def test_debias_rows_fit_on_the_guard_validation_half_and_are_tested(setup, tmp_path):
    out, sets = setup
    guard = _guard_texts(tmp_path / "guard", n=24)
    # the fitting text may not be a test set
    with pytest.raises(PolyirError, match="is a test set"):
        load_experiment(None, [*sets, "debias={fit: {dataset: xquad-r}}"])
    _run([*sets, "arms=[monolingual, hybrid]", "guard.sets=[{dataset: " + guard + "}]",
          "debias={fit: {dataset: " + guard + "}, rows: [base, hybrid], max_per_language: 100}",
          "variants=[{name: hybrid-from-debiased, init: base+debias}]"])
    summary = json.loads((out / "summary.json").read_text())
    table = summary["results"]["xquad-r[en,de,es]"]
    assert {"base+debias", "hybrid+debias"} <= set(table)
    # every trained row is tested against the training-free baseline; the baseline against base only
    assert "vs_base+debias" in table["hybrid"] and "vs_base+debias" in table["monolingual"]
    assert "vs_base" in table["base+debias"] and "vs_monolingual" not in table["base+debias"]
    # the projection was fitted on each row's own model, on the guard's validation half only
    fit = json.loads((out / "debias" / "fit.json").read_text())
    assert "validation half" in fit["part"] and set(fit["counts"]) == {"en", "de", "es"}
    val_docs = json.loads((out / "eval" / "base" / f"guard-val--{guard.replace('/', '_')}.json").read_text())
    assert fit["counts"]["en"] == val_docs["counts"]["queries"] // 3
    for name in ("base", "hybrid-a0.5-s0"):
        record = json.loads((out / "debias" / name / "polyir_debias.json").read_text())
        assert record["rank"] == 2
    base_fp = json.loads((out / "debias" / "base" / "polyir_debias.json").read_text())["base_fingerprint"]
    hybrid_fp = json.loads((out / "debias" / "hybrid-a0.5-s0" / "polyir_debias.json").read_text())["base_fingerprint"]
    assert base_fp != hybrid_fp
    assert [c["row"] for c in summary["selection"]["candidates"]] == [
        "hybrid", "hybrid-from-debiased", "base+debias", "hybrid+debias"]
    # the variant trained from the de-biased base: the projection came along and stayed fixed
    from polyir.models.resolve import load_encoder

    start = load_encoder(str(out / "debias" / "base"), device="cpu")
    trained = load_encoder(str(out / "runs" / "hybrid-from-debiased-s0" / "best"), device="cpu")
    dense = [k for k in trained.st.state_dict() if "linear.weight" in k]
    assert dense and all(torch.equal(trained.st.state_dict()[k], start.st.state_dict()[k]) for k in dense)
    assert not torch.equal(trained.transformer.encoder.layer[0].attention.self.query.weight,
                           start.transformer.encoder.layer[0].attention.self.query.weight)
    assert summary["debias"]["fitted_on"]["dataset"] == guard
    assert "D" in summary["marks"] and "| base+debias |" in (out / "table.md").read_text()


def test_reuse_from_evaluates_another_experiments_models_without_training(setup, tmp_path):
    out, sets = setup
    _run([*sets, "arms=[hybrid]"])
    other = tmp_path / "other"
    _run([*sets, "arms=[hybrid]", f"output_dir={other}", f"reuse_from=[{out}]"])
    assert not (other / "runs").exists()  # nothing trained here
    summary = json.loads((other / "summary.json").read_text())
    mine = summary["results"]["xquad-r[en,de,es]"]["hybrid"]["mul_map"]
    theirs = json.loads((out / "summary.json").read_text())["results"]["xquad-r[en,de,es]"]["hybrid"]["mul_map"]
    assert mine == pytest.approx(theirs)


def test_learning_curve_scores_each_snapshot_on_validation_and_tests(setup):
    """curve.steps: the hybrid run saves snapshots; each is validated and tested, the last one equals the
    final model, and the other arms (not listed) save none."""
    out, sets = setup
    sets = [s for s in sets if not s.startswith(("train.optim.max_steps", "train.validation.every"))]
    _run([*sets, "train.optim.max_steps=4", "train.validation.every=2", "curve={steps: [2, 4], arms: [hybrid]}"])
    summary = json.loads((out / "summary.json").read_text())
    points = summary["curve"]["points"]
    assert [(p["row"], p["step"]) for p in points] == [("hybrid@0.5", 2), ("hybrid@0.5", 4)]
    run = out / "runs" / "hybrid-a0.5-s0"
    assert (run / "snapshots" / "step-2" / "modules.json").is_file()
    assert not (out / "runs" / "monolingual-s0" / "snapshots").exists()
    # step 4 is the end of the run: its snapshot holds the same weights as last/
    from safetensors.torch import load_file

    last = load_file(run / "last" / "model.safetensors")
    final = load_file(run / "snapshots" / "step-4" / "model.safetensors")
    early = load_file(run / "snapshots" / "step-2" / "model.safetensors")
    assert all(torch.equal(last[k], final[k]) for k in last)
    assert any(not torch.equal(last[k], early[k]) for k in last)
    for p in points:
        test = p["test"]["xquad-r[en,de,es]"]
        assert p["validation_mean"] is not None and test["mul_map"] is not None
        # the point is the mean over the seeds' snapshots
        paths = sorted((out / "curve").glob(f"hybrid-a0.5-s*@step{p['step']}/xquad-r[[]en,de,es].json"))
        assert len(paths) == p["seeds"] > 1, paths
        seed_values = [json.loads(path.read_text())["metrics"]["mul_map"] for path in paths]
        assert test["mul_map"] == pytest.approx(sum(seed_values) / len(seed_values))
    assert not any("@step" in p.name for p in (out / "eval").iterdir())  # the table's rows are untouched
    assert "Learning curve" in (out / "table.md").read_text()
    assert (out / "learning_curve.png").stat().st_size > 1000
    html = out / "report.html"
    res = runner.invoke(app, ["report", str(out), "--output", str(html)])
    assert res.exit_code == 0, res.output
    page = html.read_text()
    assert "<h3>Learning curve</h3>" in page and "hybrid α = 0.5" in page
    # every row of the summary, with its validation value, for the README's scale tables
    assert set(summary["validation"]) >= {"monolingual", "crosslingual", "hybrid", "hybrid@0.5"}


def test_curve_steps_past_the_budget_and_unknown_curve_test_sets_are_refused(tmp_path):
    with pytest.raises(PolyirError, match="curve.steps: 999 is past train.optim.max_steps=120"):
        load_experiment(None, ["curve={steps: [120, 999]}", f"output_dir={tmp_path}"])
    with pytest.raises(PolyirError, match=r"curve.test_sets \['mlqa-r'\] are not test sets"):
        load_experiment(None, ["curve={steps: [60], test_sets: [mlqa-r]}", f"output_dir={tmp_path}"])
