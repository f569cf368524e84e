"""`polyir evaluate` and `polyir compare` end to end on a tiny model and a tiny LAReQA dataset."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.errors import PolyirError
from polyir.testing import build_tiny_model_dir, full_disk_open, write_tiny_lareqa

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


def test_evaluate_truncate_dim(tiny_model_dir, data_dir, tmp_path):
    """--truncate-dim N scores the first N dimensions re-normalised; N = the model's is no change."""
    plain = _evaluate(tiny_model_dir, data_dir, tmp_path / "plain.json")
    full = _evaluate(tiny_model_dir, data_dir, tmp_path / "full.json", "--truncate-dim", "32")  # the tiny BERT's width
    small = _evaluate(tiny_model_dir, data_dir, tmp_path / "small.json", "--truncate-dim", "4")
    assert plain["config"]["truncate_dim"] is None
    assert (full["config"]["truncate_dim"], small["config"]["truncate_dim"]) == (32, 4)
    assert full["metrics"] == pytest.approx(plain["metrics"], abs=1e-6)
    assert full["per_query"]["ap_mul"] == pytest.approx(plain["per_query"]["ap_mul"], abs=1e-6)
    assert small["per_query"]["ap_mul"] != pytest.approx(plain["per_query"]["ap_mul"], abs=1e-6)
    for bad, words in (("64", ["64", "32"]), ("0", ["0", "32"]), ("-3", ["-3", "32"])):
        res = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--data-dir", str(data_dir),
                                  "--languages", "en", "--truncate-dim", bad, "--no-progress"])
        assert res.exit_code == 2, res.output
        line = " ".join(res.output.split())
        assert "--truncate-dim" in line and all(w in line for w in words), line
    res = runner.invoke(app, ["evaluate", "--dataset", "miracl", "--truncate-dim", "8"])
    assert res.exit_code == 2 and "--truncate-dim is for LAReQA-style tasks" in " ".join(res.output.split())


def test_truncated_embeddings_are_unit_length_prefixes():
    import numpy as np

    from polyir.evaluation.run import check_truncate_dim, truncate_embeddings

    x = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    cut = truncate_embeddings(x, 2)
    np.testing.assert_allclose(cut, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)  # an all-zero prefix stays zero
    assert truncate_embeddings(x, None) is x
    with pytest.raises(PolyirError, match=r"^truncate_dim 4 is larger than the model's embedding dimension 3$"):
        check_truncate_dim(4, 3)
    with pytest.raises(PolyirError, match=r"truncate_dim 0: keep at least 1 dimension \(the model has 3\)"):
        check_truncate_dim(0, 3)
    check_truncate_dim(3, 3)


def test_evaluate_cache_reuses_embeddings(tiny_model_dir, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    first = _evaluate(tiny_model_dir, data_dir, tmp_path / "1.json", "--cache")
    second = _evaluate(tiny_model_dir, data_dir, tmp_path / "2.json", "--cache")
    assert first["counts"]["query_cache_hit"] is False and second["counts"]["query_cache_hit"] is True
    assert first["metrics"] == second["metrics"]


def _news(folder, words):
    folder.mkdir(parents=True)
    for lang in ("en", "de"):
        lines = [f"{lang} {w} {i}" for i, w in enumerate(words)]
        (folder / f"news.{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_compare_uses_the_dataset_fingerprint(tiny_model_dir, tmp_path, monkeypatch):
    """Results record a fingerprint of the task's contents: one folder named two ways compares, two
    folders whose query ids coincide do not, nor one folder whose files changed between the runs."""
    from polyir.evaluation.compare import compare_results, load_result

    monkeypatch.chdir(tmp_path)
    news = _news(tmp_path / "news", ["cat", "dog", "park", "rome"])
    rel = _evaluate_path(tiny_model_dir, "news", tmp_path / "rel.json")
    absolute = _evaluate_path(tiny_model_dir, str(news), tmp_path / "abs.json")
    assert rel["dataset_fingerprint"].startswith("sha256:")
    assert rel["dataset_fingerprint"] == absolute["dataset_fingerprint"] and rel["dataset"] != absolute["dataset"]
    ok = runner.invoke(app, ["compare", "rel.json", "abs.json", "--resamples", "200"])
    assert ok.exit_code == 0, ok.output

    (news / "news.de.txt").write_text("de river 0\nde city 1\nde paris 2\nde rome 3\n", encoding="utf-8")
    changed = tmp_path / "changed.json"
    _evaluate_path(tiny_model_dir, "news", changed)
    bad = runner.invoke(app, ["compare", "rel.json", "changed.json"])
    assert bad.exit_code == 2
    assert "different datasets: news and news (same name, different contents" in bad.output

    # files without a fingerprint (written before it existed) fall back to the recorded names
    a, b = load_result(tmp_path / "rel.json"), load_result(tmp_path / "abs.json")
    for r in (a, b):
        del r["dataset_fingerprint"]
    with pytest.raises(PolyirError, match=r"different datasets: news and /"):
        compare_results(a, b, resamples=100)
    assert compare_results(a, a, resamples=100)["rows"]
    with pytest.raises(PolyirError, match="resamples must be at least 1"):
        compare_results(a, a, resamples=0)


def _evaluate_path(model, dataset, out):
    res = runner.invoke(app, ["evaluate", "--model", str(model), "--dataset", dataset, "--output", str(out),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_write_outputs_is_all_or_nothing(tiny_model_dir, data_dir, tmp_path, monkeypatch):
    """A full disk on the Markdown leaves the old JSON, heatmap and Markdown, and no temporary file."""
    import polyir.atomic
    from polyir.atomic import OutputError
    from polyir.evaluation.report import write_outputs

    out = tmp_path / "res" / "tiny.json"
    result = _evaluate(tiny_model_dir, data_dir, out)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert sorted(before) == ["tiny.heatmap.png", "tiny.json", "tiny.md"]
    monkeypatch.setattr(polyir.atomic, "open", full_disk_open(".tiny.md."), raising=False)
    result["metrics"]["mul_map"] = 0.123  # a different result, which must not land half-way
    with pytest.raises(OutputError, match=r"cannot write .*tiny\.md: No space left on device"):
        write_outputs(result, out)
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_embedding_cache_on_a_full_disk_warns_and_keeps_the_embeddings(tmp_path, monkeypatch):
    import errno

    import numpy as np

    import polyir.atomic
    from polyir.models.cache import EmbeddingCache

    def full(file, mode="r", *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(polyir.atomic, "open", full, raising=False)
    cache = EmbeddingCache(tmp_path)
    with pytest.warns(UserWarning, match=r"embedding cache not stored: cannot write .*\.npy: No space left"):
        arr, hit = cache.get_or_compute("fp", "query", "fp32", ["a"], lambda: np.ones((1, 2), np.float32))
    assert hit is False and arr.shape == (1, 2)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_trec_run_files_are_written_atomically(tmp_path, monkeypatch):
    import polyir.atomic
    from polyir.atomic import OutputError
    from polyir.evaluation.miracl import write_trec_run

    path = write_trec_run({"q1": [("d1", 0.5), ("d2", 0.25)]}, tmp_path / "runs" / "sw.trec")
    old = path.read_text()
    assert old.splitlines()[0] == "q1 Q0 d1 1 0.5 polyir"

    monkeypatch.setattr(polyir.atomic, "open", full_disk_open(), raising=False)
    with pytest.raises(OutputError, match=r"sw\.trec: No space left on device"):
        write_trec_run({"q1": [("d9", 0.9)]}, path)
    assert path.read_text() == old and [p.name for p in path.parent.iterdir()] == ["sw.trec"]
