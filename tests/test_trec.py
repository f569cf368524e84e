"""TREC qrels + run files of LAReQA-style tasks: ranx recomputes polyir's per-query Mul. AP from them."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data.load import load_task_or_path
from polyir.data.parallel import load_parallel_text_task
from polyir.errors import PolyirError
from polyir.evaluation.run import score_task
from polyir.evaluation.trec import (
    polyir_order,
    strictly_decreasing,
    task_qrels,
    task_run,
    write_qrels,
    write_run,
    write_task_trec,
)
from polyir.testing import build_tiny_model_dir, full_disk_open, write_tiny_lareqa

runner = CliRunner()
LANGS = ["en", "de", "es"]


def _ranx_ap(folder, run_name="run.txt", qrels_name="qrels.txt"):
    from ranx import Qrels, Run, evaluate

    qrels = Qrels.from_file(str(folder / qrels_name), kind="trec")
    run = Run.from_file(str(folder / run_name))
    evaluate(qrels, run, "map", return_mean=False)
    return {q: float(v) for q, v in run.scores["map"].items()}


def _evaluate(model, data, out, trec, *extra):
    res = runner.invoke(app, ["evaluate", "--model", str(model), "--dataset", "xquad-r",
                              "--data-dir", str(data), "--languages", ",".join(LANGS),
                              "--output", str(out), "--trec", str(trec), "--no-progress", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


@pytest.fixture()
def data(tmp_path, monkeypatch):
    write_tiny_lareqa(tmp_path / "data" / "xquad-r", LANGS)
    monkeypatch.setenv("POLYIR_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture()
def worded_model(tmp_path, data):
    """A tiny model that knows every word of the tiny data: few exact ties."""
    texts = " ".join(p.read_text(encoding="utf-8") for p in sorted(data.rglob("*.json")))
    words = sorted(set(re.findall(r"[a-z0-9]+", texts.lower())))
    return build_tiny_model_dir(tmp_path / "worded", words, seed=3)


# --------------------------------------------------------------------------- ordering rules


def test_strictly_decreasing_lowers_only_ties_by_ulps():
    s = np.array([0.5, 0.5, 0.5, 0.3, 0.0, -0.0, -0.2, -0.2, -0.7], dtype=np.float32)
    out = strictly_decreasing(s)
    assert out.dtype == np.float32
    assert (np.diff(out.astype(np.float64)) < 0).all()
    assert (out <= s).all()
    untied = [0, 3, 4, 6, 8]
    assert out[untied].tolist() == s[untied].tolist()
    assert out[1] == np.nextafter(np.float32(0.5), np.float32(-1))
    assert out[2] == np.nextafter(out[1], np.float32(-1))
    # a tie group's last member may push the next distinct value down too, never up
    crowded = np.array([1.0, 1.0, np.nextafter(np.float32(1.0), np.float32(0))], dtype=np.float32)
    assert (np.diff(strictly_decreasing(crowded).astype(np.float64)) < 0).all()
    # 9 significant digits (the run file's format) keep the adjusted scores apart
    printed = [float(f"{v:.9g}") for v in out.tolist()]
    assert (np.diff(printed) < 0).all()


def test_polyir_order_puts_non_relevant_first_on_a_tie():
    scores = np.array([0.2, 0.9, 0.5, 0.5, 0.5], dtype=np.float32)
    relevant = np.array([False, False, True, False, True])
    assert polyir_order(scores, relevant).tolist() == [1, 3, 2, 4, 0]


def test_score_matrix_run_gives_pessimistic_ap(tmp_path):
    from polyir.data.types import Candidate, Query, RetrievalTask

    task = RetrievalTask(
        name="t",
        queries=[Query("q1", "en", "x", "p1"), Query("q2", "en", "y", "p2")],
        candidates=[Candidate(f"d{i}", "en", f"c{i}") for i in range(4)],
        relevant={"q1": frozenset({"d0"}), "q2": frozenset({"d3", "d1"})},
    )
    # q1: d0 (relevant) ties with d2 and d1 -> rank 3, AP 1/3; q2: d3 first, d1 tied with d2 -> rank 3
    scores = np.array([[0.5, 0.5, 0.5, 0.1], [0.3, 0.2, 0.2, 0.9]], dtype=np.float32)
    paths = write_task_trec(task, tmp_path / "t", scores=scores)
    run_lines = paths["run"].read_text().splitlines()
    assert run_lines[:3] == [l for l in run_lines[:3] if l.startswith("q1 Q0 ")]
    assert [l.split()[2] for l in run_lines[:4]] == ["d1", "d2", "d0", "d3"]
    assert [l.split()[3] for l in run_lines[:4]] == ["1", "2", "3", "4"]
    ap = _ranx_ap(tmp_path / "t")
    assert ap["q1"] == pytest.approx(1 / 3)
    assert ap["q2"] == pytest.approx((1 / 1 + 2 / 4) / 2)
    assert paths["qrels"].read_text().splitlines() == ["q1 0 d0 1", "q2 0 d1 1", "q2 0 d3 1"]


# --------------------------------------------------------------------------- LAReQA tasks


def test_cli_trec_files_give_polyir_per_query_mul_ap_in_ranx(worded_model, data, tmp_path):
    result = _evaluate(worded_model, data, tmp_path / "r.json", tmp_path / "trec")
    pq = result["per_query"]
    ap = _ranx_ap(tmp_path / "trec")
    assert set(ap) == set(pq["query_id"]) and len(ap) == 3 * 4 * 2
    for qid, polyir_ap in zip(pq["query_id"], pq["ap_mul"]):
        assert ap[qid] == pytest.approx(polyir_ap, abs=1e-12), qid
    lines = (tmp_path / "trec" / "run.txt").read_text().splitlines()
    assert len(lines) == result["counts"]["queries"] * result["counts"]["candidates"]  # full ranking
    assert {l.split()[5] for l in lines} == {"polyir"}


def test_trec_files_match_polyir_ap_when_scores_tie(tiny_model_dir, data, tmp_path):
    """The conftest model maps most words of the tiny data to [UNK]: many exact ties, across languages."""
    from polyir.evaluation.run import EvalOptions, evaluate_encoder
    from polyir.models.resolve import load_encoder

    task = load_task_or_path("xquad-r", languages=LANGS)
    enc = load_encoder(str(tiny_model_dir), device="cpu")
    got = {}
    result = evaluate_encoder(enc, task, EvalOptions(show_progress=False),
                              on_embeddings=lambda q, c: got.update(q=q, c=c))
    assert result["ties"]["pairs_with_ties"] > 0  # the tie rule is exercised
    write_task_trec(task, tmp_path / "trec", got["q"], got["c"])
    ap = _ranx_ap(tmp_path / "trec")
    for qid, polyir_ap in zip(result["per_query"]["query_id"], result["per_query"]["ap_mul"]):
        assert ap[qid] == pytest.approx(polyir_ap, abs=1e-12), qid
    # optimistic ties (relevant first) would not give polyir's AP: the tie rule is what makes them agree
    raw = (got["q"].astype(np.float64) @ got["c"].astype(np.float64).T).astype(np.float32)
    cand = [x.id for x in task.candidates]
    optimistic = {}
    for i, query in enumerate(task.queries):
        rel = task.relevant[query.id]
        order = sorted(range(len(cand)), key=lambda j: (-float(raw[i, j]), cand[j] not in rel, j))
        ranks = [k + 1 for k, j in enumerate(order) if cand[j] in rel]
        optimistic[query.id] = sum(n / r for n, r in enumerate(ranks, start=1)) / len(rel)
    assert any(optimistic[q] != pytest.approx(ap[q]) for q in ap)


def test_excluded_candidates_are_left_out_of_the_run(tmp_path):
    (tmp_path / "news.en.txt").write_text("one\ntwo\nsame\nfour\n", encoding="utf-8")
    (tmp_path / "news.de.txt").write_text("eins\nzwei\ndrei\nsame\n", encoding="utf-8")
    task = load_parallel_text_task([tmp_path / "news.en.txt", tmp_path / "news.de.txt"])
    assert task.excluded
    rng = np.random.default_rng(0)
    q = rng.standard_normal((len(task.queries), 8)).astype(np.float32)
    c = rng.standard_normal((len(task.candidates), 8)).astype(np.float32)
    write_task_trec(task, tmp_path / "trec", q, c, compress=True)
    with gzip.open(tmp_path / "trec" / "run.txt.gz", "rt") as fh:
        lines = [l.split() for l in fh]
    for query in task.queries:
        docs = [l[2] for l in lines if l[0] == query.id]
        assert not set(docs) & set(task.excluded.get(query.id, ()))
        assert len(docs) == len(task.candidates) - len(task.excluded.get(query.id, ()))
    ap = _ranx_ap(tmp_path / "trec", "run.txt.gz")
    pq = score_task(task, q, c).per_query
    for qid, polyir_ap in zip(pq.query_id.tolist(), pq.ap_mul.tolist()):
        assert ap[qid] == pytest.approx(polyir_ap, abs=1e-12), qid


def test_depth_cuts_each_ranking_and_gives_a_lower_bound(tmp_path, data):
    task = load_task_or_path("xquad-r", languages=LANGS)
    rng = np.random.default_rng(1)
    q = rng.standard_normal((len(task.queries), 8)).astype(np.float32)
    c = rng.standard_normal((len(task.candidates), 8)).astype(np.float32)
    write_task_trec(task, tmp_path / "full", q, c)
    write_task_trec(task, tmp_path / "cut", q, c, depth=5)
    full, cut = _ranx_ap(tmp_path / "full"), _ranx_ap(tmp_path / "cut")
    lines = (tmp_path / "cut" / "run.txt").read_text().splitlines()
    assert len(lines) == 5 * len(task.queries)
    assert all(cut[qid] <= full[qid] + 1e-12 for qid in full)
    assert any(cut[qid] < full[qid] for qid in full)
    # chunked scoring (a tiny memory budget) writes the same file
    budget = list(task_run(task, q, c, memory_budget=16 * len(task.candidates) * 3))
    assert budget == list(task_run(task, q, c))
    with pytest.raises(PolyirError, match="depth"):
        list(task_run(task, q, c, depth=0))


def test_qrels_hold_every_relevant_candidate_of_the_pool(data):
    task = load_task_or_path("xquad-r", languages=LANGS)
    qrels = task_qrels(task)
    assert set(qrels) == {x.id for x in task.queries}
    assert all(set(qrels[x.id]) == set(task.relevant[x.id]) for x in task.queries)
    assert {len(v) for v in qrels.values()} == {3}  # one answer sentence per language


def test_ids_with_whitespace_and_a_file_as_folder_fail_cleanly(tmp_path, worded_model, data):
    with pytest.raises(PolyirError, match="whitespace"):
        write_run({"q 1": [("d1", 0.5)]}, tmp_path / "run.txt")
    with pytest.raises(PolyirError, match="whitespace"):
        write_qrels({"q1": {"d 1": 1}}, tmp_path / "qrels.txt")
    assert not (tmp_path / "run.txt").exists()
    (tmp_path / "afile").write_text("x")
    res = runner.invoke(app, ["evaluate", "--model", str(worded_model), "--dataset", "xquad-r",
                              "--trec", str(tmp_path / "afile"), "--no-progress"])
    assert res.exit_code == 2 and "is a file" in res.output
    res = runner.invoke(app, ["evaluate", "--model", str(worded_model), "--trec-depth", "5"])
    assert res.exit_code == 2 and "need --trec" in res.output


# --------------------------------------------------------------------------- MIRACL-style runs


def test_miracl_writer_is_the_shared_one_and_ranx_ndcg_matches(tmp_path):
    from polyir.evaluation.miracl import trec_metrics, trec_order, write_trec_run

    qrels = {"q1": {"a": 2, "c": 1, "z": 1}, "q2": {"b": 1, "x": 0}}
    run = {"q1": trec_order([("a", 0.3), ("b", 0.9), ("c", 0.7), ("d", 0.1)]),
           "q2": trec_order([("a", 0.8), ("b", 0.4), ("x", 0.95)])}
    expected = trec_metrics(qrels, run)
    write_trec_run(run, tmp_path / "miracl" / "run.txt.gz")  # gzip through the shared writer
    write_qrels(qrels, tmp_path / "miracl" / "qrels.txt")
    from ranx import Qrels, Run, evaluate

    ranx_run = Run.from_file(str(tmp_path / "miracl" / "run.txt.gz"))
    evaluate(Qrels.from_file(str(tmp_path / "miracl" / "qrels.txt"), kind="trec"), ranx_run,
             ["ndcg@10", "recall@100"], return_mean=False)
    for m in ("ndcg@10", "recall@100"):
        assert dict(ranx_run.scores[m]) == pytest.approx(expected[m])
    # q1: DCG = 1/log2(2) * 0 (b) ... hand check of the ideal: gains 2, 1, 1
    idcg = 2 + 1 / np.log2(3) + 1 / np.log2(4)
    dcg = 1 / np.log2(3) + 2 / np.log2(4)  # c at rank 2, a at rank 3
    assert expected["ndcg@10"]["q1"] == pytest.approx(dcg / idcg)


@pytest.mark.parametrize("name", ["run.txt", "run.txt.gz"])
def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch, name):
    import polyir.atomic
    from polyir.atomic import OutputError

    path = write_run({"q1": [("d1", 0.5), ("d2", 0.25)]}, tmp_path / name)
    old = path.read_bytes()
    monkeypatch.setattr(polyir.atomic, "open", full_disk_open(), raising=False)
    with pytest.raises(OutputError, match="No space left on device"):
        write_run({"q1": [("d9", 0.9)] * 5000}, path)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == [name]
    monkeypatch.undo()
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        assert fh.read().splitlines() == ["q1 Q0 d1 1 0.5 polyir", "q1 Q0 d2 2 0.25 polyir"]


# --------------------------------------------------------------------------- X->Y runs (Mo., Cr.)


def test_by_language_runs_give_polyir_x_to_y_ap_mo_and_cr(worded_model, data, tmp_path):
    import math

    result = _evaluate(worded_model, data, tmp_path / "r.json", tmp_path / "trec")
    pq, m = result["per_query"], result["metrics"]
    langs = sorted(pq["ap_by_language"])
    assert langs == sorted(LANGS)
    by_y = {y: _ranx_ap(tmp_path / "trec", f"by-language/run.{y}.txt", f"by-language/qrels.{y}.txt") for y in langs}
    for i, qid in enumerate(pq["query_id"]):
        for y in langs:
            assert by_y[y][qid] == pytest.approx(pq["ap_by_language"][y][i], abs=1e-12), (qid, y)
    # the macro figures from the files alone: Mo. = mean over X of mAP(X->X); Cr. = mean over X != Y
    lang_of = dict(zip(pq["query_id"], pq["query_lang"]))
    pair_map = {(x, y): np.mean([ap for q, ap in by_y[y].items() if lang_of[q] == x]) for x in langs for y in langs}
    assert np.mean([pair_map[(x, x)] for x in langs]) == pytest.approx(m["mo_map"], abs=1e-12)
    assert np.mean([v for (x, y), v in pair_map.items() if x != y]) == pytest.approx(m["cr_map"], abs=1e-12)
    run_de = (tmp_path / "trec" / "by-language" / "run.de.txt").read_text().splitlines()
    de_pool = sum(1 for c in load_task_or_path("xquad-r", languages=LANGS).candidates if c.language == "de")
    assert len(run_de) == len(pq["query_id"]) * de_pool and not math.isnan(m["cr_map"])


def test_a_pool_without_a_relevant_candidate_is_left_out(tmp_path):
    from polyir.data.types import Candidate, Query, RetrievalTask

    task = RetrievalTask(
        name="t", queries=[Query("q1", "sw", "x", "p1"), Query("q2", "sw", "y", "p2")],
        candidates=[Candidate("e1", "en", "a"), Candidate("e2", "en", "b"), Candidate("f1", "fr", "c")],
        relevant={"q1": frozenset({"e1"}), "q2": frozenset({"f1"})},
    )
    scores = np.array([[0.1, 0.9, 0.5], [0.2, 0.3, 0.4]], dtype=np.float32)
    paths = write_task_trec(task, tmp_path / "t", scores=scores)
    assert sorted(paths) == ["qrels", "qrels.en", "qrels.fr", "run", "run.en", "run.fr"]
    assert [l.split()[:3] for l in paths["run.en"].read_text().splitlines()] == [["q1", "Q0", "e2"], ["q1", "Q0", "e1"]]
    assert paths["qrels.fr"].read_text() == "q2 0 f1 1\n"
    assert _ranx_ap(tmp_path / "t", "by-language/run.en.txt", "by-language/qrels.en.txt") == {"q1": 0.5}
    assert list(task_run(task, scores=scores, language="fr")) == [("q2", [("f1", pytest.approx(0.4))])]
    plain = write_task_trec(task, tmp_path / "plain", scores=scores, by_language=False)
    assert sorted(plain) == ["qrels", "run"] and not (tmp_path / "plain" / "by-language").exists()


# --------------------------------------------------------------------------- MIRACL from its files


def test_miracl_ndcg_from_the_written_run_and_the_qrels_equals_polyir(tmp_path, monkeypatch, tiny_model_dir):
    from ranx import Qrels, Run, evaluate

    import polyir.data.registry as registry
    from test_miracl import SW_PLANT, SW_QRELS, SW_TOPICS, _offline, make_passages, write_miracl

    from polyir.data.miracl import qrels_name

    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "_open_url", _offline)
    write_miracl(tmp_path / "data", "sw", SW_TOPICS, SW_QRELS, make_passages(130, 1, SW_PLANT), [50, 80])
    out = tmp_path / "res" / "miracl.json"
    res = runner.invoke(app, ["evaluate", "--dataset", "miracl", "--no-progress", "--model", str(tiny_model_dir),
                              "--languages", "sw", "--data-dir", str(tmp_path / "data"), "--output", str(out)])
    assert res.exit_code == 0, res.output
    pq = json.loads(out.read_text())["per_query"]
    qrels = Qrels.from_file(str(tmp_path / "data" / "miracl" / qrels_name("sw")), kind="trec")
    run = Run.from_file(str(tmp_path / "res" / "miracl.runs" / "sw.trec"), kind="trec")
    judged = {q: d for q, d in run.to_dict().items() if q in qrels.to_dict()}
    kept = Run(judged)
    evaluate(qrels, kept, ["ndcg@10", "recall@100"], return_mean=False)
    for metric in ("ndcg@10", "recall@100"):
        ours = {qid.split(":", 1)[1]: v for qid, v in zip(pq["query_id"], pq[metric])}
        theirs = {q: float(v) for q, v in kept.scores[metric].items() if q in ours}
        assert set(theirs) == set(ours) and theirs == pytest.approx(ours, abs=1e-12), metric
