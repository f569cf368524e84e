"""NTREX tasks (sentences, documents), per-query exclusions in scoring, document splits."""

from __future__ import annotations

import io
import json
import math
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data import ntrex, registry
from polyir.data.ntrex import load_ntrex_documents, load_ntrex_sentences
from polyir.data.load import load_task_or_path
from polyir.data.parallel import build_sentence_task
from polyir.data.registry import load_task, resolve_files, resolve_shared_files
from polyir.data.split import split_by_document
from polyir.data.types import RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError
from polyir.evaluation.lareqa import lareqa_metrics
from polyir.evaluation.run import score_task
from polyir.paths import shared_data_dir

runner = CliRunner()
LOW_RESOURCE = ("ig", "rw", "lo", "mg", "my", "ps", "si", "sn", "ti", "wo", "xh", "gu")  # shared/data README
FILE_NAME = {lang: Path(src).name for lang, (src, _, _) in ntrex.LANGUAGE_FILES.items()}


def write_ntrex(root: Path, docs: list[tuple[str, int]], langs=("en", "de", "es"),
                text=lambda lang, doc, k: f"{lang} {doc} sentence {k} ."):
    """NTREX layout under ``root/ntrex-128`` (CRLF line ends, as the real files): ``docs`` is
    (document id, number of lines); line k of a document is ``text(lang, doc, k)``."""
    folder = root / "ntrex-128"
    folder.mkdir(parents=True, exist_ok=True)
    ids = [doc for doc, n in docs for _ in range(n)]
    (folder / "DOCUMENT_IDS.tsv").write_text("".join(f"{d}\n" for d in ids), encoding="utf-8")
    for lang in langs:
        lines = [text(lang, doc, k) for doc, n in docs for k in range(n)]
        (folder / FILE_NAME[lang]).write_bytes("".join(f"{s}\r\n" for s in lines).encode())
    return folder


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    """Empty cache, no POLYIR_DATA_DIR, and any download attempt fails the test."""
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("POLYIR_DATA_DIR", raising=False)

    def no_network(url, timeout):
        raise urllib.error.URLError("offline test")

    monkeypatch.setattr(registry, "_open_url", no_network)


def _files(folder: Path, langs) -> dict[str, Path]:
    return {lang: folder / FILE_NAME[lang] for lang in langs}


# ----------------------------------------------------------------------------- task structure


def test_sentences_task_queries_pool_relevance_and_exclusion(tmp_path):
    folder = write_ntrex(tmp_path, [("d1", 3), ("d2", 2)], langs=("en", "de", "es"))
    task = load_ntrex_sentences(_files(folder, ("en", "de", "es")), "ntrex-sentences")
    assert len(task.queries) == len(task.candidates) == 3 * 5
    assert len({q.id for q in task.queries}) == 15 and len({c.id for c in task.candidates}) == 15
    q = next(q for q in task.queries if q.id == "ntrex:de:4")
    assert (q.language, q.pair_id, q.text) == ("de", "4", "de d2 sentence 0 .")  # CRLF stripped
    assert task.relevant["ntrex:de:4"] == {"ntrex:en:4", "ntrex:es:4"}
    assert task.excluded["ntrex:de:4"] == {"ntrex:de:4"}
    groups = {c.id: c.group for c in task.candidates}
    assert groups["ntrex:es:2"] == "d1" and groups["ntrex:es:4"] == "d2"
    assert task.notes["lines"] == 5 and task.notes["documents"] == 2


def test_sentences_identical_strings_of_the_query_language_are_excluded_too(tmp_path):
    def text(lang, doc, k):
        return "de same ." if lang == "de" and k in (0, 1) else f"{lang} {doc} {k} ."

    folder = write_ntrex(tmp_path, [("d1", 3)], langs=("en", "de"), text=text)
    task = load_ntrex_sentences(_files(folder, ("en", "de")), "t")
    assert task.excluded["ntrex:de:1"] == task.excluded["ntrex:de:2"] == {"ntrex:de:1", "ntrex:de:2"}
    assert task.excluded["ntrex:en:1"] == {"ntrex:en:1"}
    assert task.notes["same_language_duplicate_lines"] == {"en": 0, "de": 1}
    assert task.notes["queries_with_excluded_duplicates"] == 2


def test_documents_task_headlines_query_the_rest_and_headline_only_documents_drop(tmp_path):
    folder = write_ntrex(tmp_path, [("d1", 3), ("solo", 1), ("d3", 2)], langs=("en", "de"))
    task = load_ntrex_documents(_files(folder, ("en", "de")), "ntrex-documents")
    assert [q.id for q in task.queries] == ["ntrex:de:1", "ntrex:de:5", "ntrex:en:1", "ntrex:en:5"]
    assert [q.pair_id for q in task.queries] == ["d1", "d3", "d1", "d3"]
    assert task.queries[2].text == "en d1 sentence 0 ."
    # pool: non-headline lines only (lines 2, 3 of d1 and 6 of d3), in both languages
    assert sorted(c.id for c in task.candidates) == sorted(
        f"ntrex:{lang}:{i}" for lang in ("en", "de") for i in (2, 3, 6))
    assert task.relevant["ntrex:de:1"] == {"ntrex:en:2", "ntrex:en:3", "ntrex:de:2", "ntrex:de:3"}
    assert task.relevant["ntrex:en:5"] == {"ntrex:en:6", "ntrex:de:6"}
    assert {c.group for c in task.candidates} == {"d1", "d3"}
    assert task.notes["dropped_documents"] == ["solo"] and task.notes["documents_used"] == 2
    assert not task.excluded


def test_registry_loads_both_tasks_from_the_data_folder_without_network(tmp_path, offline):
    write_ntrex(tmp_path / "data", [("d1", 3), ("d2", 2)], langs=("en", "de", "zh"))
    task = load_task("ntrex-sentences", data_dir=tmp_path / "data", languages="en,zh")
    assert task.query_languages == ["en", "zh"] and len(task.queries) == 10
    docs = load_task("ntrex-documents", data_dir=tmp_path / "data", languages=["de"])
    assert len(docs.queries) == 2 and docs.candidate_languages == ["de"]
    assert load_task_or_path("ntrex-sentences", data_dir=tmp_path / "data", languages="en,de").name \
        == "ntrex-sentences"


def test_any_code_form_selects_the_same_languages(tmp_path, offline):
    write_ntrex(tmp_path / "data", [("d1", 3), ("d2", 2)], langs=("en", "sn", "ti", "wo", "zh-hant"))
    a = load_task("ntrex-sentences", data_dir=tmp_path / "data", languages="en,sn,ti,wo")
    b = load_task("ntrex-sentences", data_dir=tmp_path / "data", languages="eng,sna-Latn,tir,wol")
    assert a.query_languages == b.query_languages == ["en", "sn", "ti", "wo"]
    assert a.relevant == b.relevant and [q.text for q in a.queries] == [q.text for q in b.queries]
    assert b.notes["ntrex_codes"] == {"en": "eng", "sn": "sna-Latn", "ti": "tir", "wo": "wol"}
    # Traditional Chinese is its own language (zho-TW), never merged into zh (zho-CN)
    t = load_task("ntrex-documents", data_dir=tmp_path / "data", languages="zh-Hant,en")
    assert t.query_languages == ["en", "zh-hant"]


def test_default_selection_is_the_first_release(tmp_path, offline):
    write_ntrex(tmp_path / "data", [("d1", 2)], langs=(*ntrex.DEFAULT_LANGUAGES, "sn"))
    task = load_task("ntrex-sentences", data_dir=tmp_path / "data")
    assert task.query_languages == sorted(ntrex.DEFAULT_LANGUAGES)  # sn is there, but only on request
    row = {r.name: r for r in registry.status(tmp_path / "data")}["ntrex-sentences"]
    assert row.missing == [] and len(row.present) == 13  # 12 texts + DOCUMENT_IDS.tsv
    assert len(row.optional_missing) == 122 - 12


def test_unpinned_language_is_downloaded_and_its_sha256_recorded(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    folder = write_ntrex(tmp_path / "data", [("d1", 2), ("d2", 1)], langs=("en",))
    payload = "Mashiwi 1\r\nMashiwi 2\r\nMashiwi 3\r\n".encode()
    calls = []

    def fake(url, timeout):
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(registry, "_open_url", fake)
    assert not registry.get_spec("ntrex-sentences").file_for("bem").pinned
    task = load_task("ntrex-sentences", data_dir=tmp_path / "data", languages="en,bem")
    assert calls == [ntrex.source_url("NTREX-128/newstest2019-ref.bem.txt")]
    assert task.notes["unpinned_files"] == {"bem": hashlib.sha256(payload).hexdigest()}
    assert task.relevant["ntrex:bem:3"] == {"ntrex:en:3"} and not (folder / "newstest2019-ref.bem.txt").exists()


def test_regional_variants_share_a_code_and_one_file_is_served():
    assert ntrex.UNSERVED_TAGS == {"en": ["eng-GB", "eng-IN", "eng-US"], "fa": ["prs"], "fr": ["fra-CA"],
                                   "gsw": ["gsw-ZH"], "pt": ["por-BR"], "es": ["spa-MX"]}
    assert ntrex.NTREX_TAGS["en"] == "eng" and ntrex.NTREX_TAGS["fa"] == "fas"
    assert ntrex.NTREX_TAGS["sr"] == "srp-Cyrl" and ntrex.NTREX_TAGS["sr-latn"] == "srp-Latn"
    assert ntrex.ntrex_language("gsw-ZH") == "gsw"  # ZH (Zurich) is no region code


def test_registry_missing_document_ids_is_a_clear_error(tmp_path, offline):
    folder = write_ntrex(tmp_path / "data", [("d1", 2)], langs=("en", "de"))
    (folder / "DOCUMENT_IDS.tsv").unlink()
    with pytest.raises(DatasetNotFoundError, match="DOCUMENT_IDS.tsv"):
        load_task("ntrex-sentences", data_dir=tmp_path / "data", languages="en,de")


# ----------------------------------------------------------------------------- validation


def test_line_count_mismatch_names_the_file(tmp_path):
    folder = write_ntrex(tmp_path, [("d1", 3)], langs=("en", "de"))
    (folder / FILE_NAME["de"]).write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"newstest2019-ref\.deu\.txt: 2 lines.* has 3"):
        load_ntrex_sentences(_files(folder, ("en", "de")), "t")


def test_empty_line_names_file_and_line(tmp_path):
    folder = write_ntrex(tmp_path, [("d1", 3)], langs=("en", "de"))
    (folder / FILE_NAME["en"]).write_bytes(b"one\r\n \r\nthree\r\n")
    with pytest.raises(DataFormatError, match=r"newstest2019-src\.eng\.txt: line 2 is empty"):
        load_ntrex_documents(_files(folder, ("en", "de")), "t")


def test_non_contiguous_document_is_rejected(tmp_path):
    folder = write_ntrex(tmp_path, [("d1", 1), ("d2", 1), ("d1", 1)], langs=("en", "de"))
    with pytest.raises(DataFormatError, match=r"line 3: document 'd1' resumes .*started on line 1"):
        load_ntrex_documents(_files(folder, ("en", "de")), "t")


def test_document_ids_with_a_second_column_are_rejected(tmp_path):
    folder = write_ntrex(tmp_path, [("d1", 2)], langs=("en", "de"))
    (folder / "DOCUMENT_IDS.tsv").write_text("d1\nd1\tx\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2: expected one document id per line"):
        load_ntrex_sentences(_files(folder, ("en", "de")), "t")


def test_sentences_need_two_languages(tmp_path):
    folder = write_ntrex(tmp_path, [("d1", 2)], langs=("en",))
    with pytest.raises(EmptySelectionError, match="at least two languages"):
        load_ntrex_sentences(_files(folder, ("en",)), "t")


# ----------------------------------------------------------------------------- exclusion in scoring

# Three languages x two lines; candidates (and queries) in the order en1 en2 de1 de2 fr1 fr2.
# Candidate embeddings are the identity, so query row i of S is its score for every candidate.
S = np.array([
    [0.99, 0.8, 0.7, 0.75, 0.6, 0.1],   # en1: rel de1 fr1; excluded en1 (0.99, would rank first)
    [0.3, 0.9, 0.2, 0.8, 0.5, 0.4],     # en2: rel de2 fr2
    [0.7, 0.1, 0.95, 0.2, 0.6, 0.3],    # de1: rel en1 fr1
    [0.5, 0.4, 0.6, 0.9, 0.1, 0.3],     # de2: rel en2 fr2
    [0.8, 0.2, 0.1, 0.3, 0.99, 0.4],    # fr1: rel en1 de1
    [0.1, 0.6, 0.2, 0.5, 0.3, 0.9],     # fr2: rel en2 de2
], dtype=np.float32)


def _tiny_sentence_task() -> RetrievalTask:
    texts = {"en": ["a1", "a2"], "de": ["b1", "b2"], "fr": ["c1", "c2"]}
    return build_sentence_task("t", texts, id_prefix="x:")


def test_exclusion_hand_worked_metrics():
    task = _tiny_sentence_task()
    assert [c.id for c in task.candidates] == ["x:en:1", "x:en:2", "x:de:1", "x:de:2", "x:fr:1", "x:fr:2"]
    r = score_task(task, S, np.eye(6, dtype=np.float32))
    # Pooled rankings without the excluded own sentence (R = relevant):
    #   en1: en2 .8, de2 .75, de1 .7 R, fr1 .6 R, fr2 -> ranks 3, 4: AP (1/3 + 2/4)/2, distance 1
    #   en2: de2 .8 R, fr1 .5, fr2 .4 R             -> ranks 1, 3: AP (1 + 2/3)/2,   distance 2
    #   de1: en1 .7 R, fr1 .6 R                      -> ranks 1, 2: AP 1,             distance 1
    #   de2: de1 .6, en1 .5, en2 .4 R, fr2 .3 R      -> ranks 3, 4: AP (1/3 + 2/4)/2, distance 1
    #   fr1: en1 .8 R, fr2 .4, de2 .3, en2 .2, de1 R -> ranks 1, 5: AP (1 + 2/5)/2,   distance 4
    #   fr2: en2 .6 R, de2 .5 R                      -> ranks 1, 2: AP 1,             distance 1
    ap = [(1 / 3 + 2 / 4) / 2, (1 + 2 / 3) / 2, 1.0, (1 / 3 + 2 / 4) / 2, (1 + 2 / 5) / 2, 1.0]
    np.testing.assert_allclose(r.per_query.ap_mul, ap)
    np.testing.assert_allclose(r.per_query.rank_distance, [1, 2, 1, 1, 4, 1])
    assert r.per_query.best_rank.tolist() == [3, 1, 1, 3, 1, 1]
    mul = {"en": (ap[0] + ap[1]) / 2, "de": (ap[2] + ap[3]) / 2, "fr": (ap[4] + ap[5]) / 2}
    assert r.mul_map == pytest.approx(sum(mul.values()) / 3)
    # single-language pools: en->de (.5 + 1)/2, en->fr (1 + .5)/2, de->en (1 + .5)/2, de->fr 1,
    # fr->en 1, fr->de (.5 + 1)/2
    assert r.matrix["en"] == pytest.approx({"de": 0.75, "fr": 0.75})
    assert r.matrix["de"] == pytest.approx({"en": 0.75, "fr": 1.0})
    assert r.matrix["fr"] == pytest.approx({"en": 1.0, "de": 0.75})
    assert r.cr_map == pytest.approx(5 / 6) and r.cr_pairs == 6
    assert r.rank_distance == pytest.approx(((1 + 2) / 2 + (1 + 1) / 2 + (4 + 1) / 2) / 3)
    assert r.mul_hit[1] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # Mo. is undefined (no relevant candidate in the query's own language): NaN, not a crash
    assert math.isnan(r.mo_map) and r.mo_missing_languages == ["de", "en", "fr"]
    assert r.mo_skipped_queries == 6 and r.to_dict()["mo_map"] is None
    # without the exclusion the own sentence (scored .99) would push en1's relevant down one rank
    plain = RetrievalTask(task.name, task.queries, task.candidates, task.relevant)
    assert score_task(plain, S, np.eye(6, dtype=np.float32)).per_query.ap_mul[0] == pytest.approx(
        (1 / 4 + 2 / 5) / 2)


def _removed(task: RetrievalTask, q_emb, c_emb, i: int):
    """Per-query values of query i with its excluded candidates physically removed from the pool."""
    q = task.queries[i]
    gone = task.excluded.get(q.id, frozenset())
    keep = [k for k, c in enumerate(task.candidates) if c.id not in gone]
    pos = {task.candidates[k].id: n for n, k in enumerate(keep)}
    return lareqa_metrics(
        q_emb[i : i + 1], c_emb[keep], [q.language], [task.candidates[k].language for k in keep],
        [np.array(sorted(pos[c] for c in task.relevant[q.id]))],
    ).per_query


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_exclusion_equals_physical_removal(chunk_size, monkeypatch):
    rng = np.random.default_rng(3)
    texts = {lang: [f"{lang}{i}" for i in range(7)] for lang in ("en", "de", "fr")}
    texts["de"][4] = texts["de"][1]  # a same-language duplicate: two excluded candidates
    task = build_sentence_task("t", texts, documents=["a"] * 3 + ["b"] * 4)
    q_emb = rng.normal(size=(len(task.queries), 5)).astype(np.float32)
    c_emb = rng.normal(size=(len(task.candidates), 5)).astype(np.float32)
    if chunk_size:
        import polyir.evaluation.ranking as ranking

        real = ranking.rank_relevant
        monkeypatch.setattr("polyir.evaluation.lareqa.rank_relevant",
                            lambda *a, **k: real(*a, **{**k, "chunk_size": chunk_size}))
    r = score_task(task, q_emb, c_emb)
    for i in range(len(task.queries)):
        ref = _removed(task, q_emb, c_emb, i)
        assert r.per_query.ap_mul[i] == pytest.approx(ref.ap_mul[0])
        assert r.per_query.best_rank[i] == ref.best_rank[0]
        assert r.per_query.rank_distance[i] == pytest.approx(ref.rank_distance[0])
        cols = list(r.per_query.candidate_languages)
        for j, y in enumerate(ref.candidate_languages):
            got, want = r.per_query.ap_by_language[i, cols.index(y)], ref.ap_by_language[0, j]
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


def test_relevant_and_excluded_overlap_is_an_input_error():
    from polyir.evaluation.ranking import EvaluationInputError

    with pytest.raises(EvaluationInputError, match="both relevant and excluded"):
        lareqa_metrics(np.eye(2), np.eye(2), ["en", "de"], ["en", "de"], [[1], [0]], excluded=[[1], []])


def test_limit_keeps_exclusions_of_kept_queries_and_candidates(tmp_path):
    folder = write_ntrex(tmp_path, [("d1", 2), ("d2", 3)], langs=("en", "de"))
    task = load_ntrex_sentences(_files(folder, ("en", "de")), "t")
    small = task.limit(1)  # line 1 -> its document d1 is the pool
    assert sorted(q.id for q in small.queries) == ["ntrex:de:1", "ntrex:en:1"]
    assert {c.group for c in small.candidates} == {"d1"} and len(small.candidates) == 4
    assert small.excluded == {"ntrex:en:1": {"ntrex:en:1"}, "ntrex:de:1": {"ntrex:de:1"}}
    r = score_task(small, np.eye(2, 4, dtype=np.float32), np.eye(4, dtype=np.float32))
    assert r.n_queries == 2 and r.n_candidates == 4


# ----------------------------------------------------------------------------- document split


def test_split_by_document_is_disjoint_complete_and_seeded(tmp_path):
    folder = write_ntrex(tmp_path, [(f"d{i}", 2 + i % 3) for i in range(10)], langs=("en", "de"))
    task = load_ntrex_sentences(_files(folder, ("en", "de")), "t")
    a, b = split_by_document(task, fraction=0.3, seed=1)
    docs_a, docs_b = set(a.notes["split"]["documents"]), set(b.notes["split"]["documents"])
    assert len(docs_a) == 3 and len(docs_b) == 7 and not docs_a & docs_b
    assert {c.group for c in a.candidates} == docs_a and {c.group for c in b.candidates} == docs_b
    assert len(a.queries) + len(b.queries) == len(task.queries)
    for part in (a, b):
        ids = {c.id for c in part.candidates}
        assert all(part.relevant[q.id] <= ids and part.excluded[q.id] <= ids for q in part.queries)
    again, _ = split_by_document(task, fraction=0.3, seed=1)
    assert again.notes["split"]["documents"] == a.notes["split"]["documents"]
    others = [split_by_document(task, fraction=0.3, seed=s)[0].notes["split"]["documents"] for s in range(2, 6)]
    assert any(o != sorted(docs_a) for o in others)
    docs = load_ntrex_documents(_files(folder, ("en", "de")), "t")
    da, db = split_by_document(docs, 0.5, seed=1)
    assert {q.pair_id for q in da.queries} == set(da.notes["split"]["documents"])
    with pytest.raises(ValueError):
        split_by_document(task, fraction=1.0)


# ----------------------------------------------------------------------------- CLI


def test_cli_evaluate_ntrex_sentences_shows_undefined_mo(tmp_path, tiny_model_dir, offline):
    write_ntrex(tmp_path / "data", [("d1", 3), ("d2", 2)], langs=("en", "de", "es"),
                text=lambda lang, doc, k: f"{lang} the cat sat on the mat {doc} {k} .")
    out = tmp_path / "res" / "s.json"
    res = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--dataset", "ntrex-sentences",
                              "--data-dir", str(tmp_path / "data"), "--languages", "en,de,es",
                              "--output", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["metrics"]["mo_map"] is None and result["metrics"]["mul_map"] is not None
    assert (result["counts"]["queries"], result["counts"]["candidates"]) == (15, 15)
    assert "—" in res.output  # the printed Mo. column
    md = (tmp_path / "res" / "s.md").read_text()
    assert "| — |" in md.splitlines()[4]
    assert (tmp_path / "res" / "s.heatmap.png").stat().st_size > 1000
    # comparing two such runs skips the undefined Mo. instead of failing on it
    cmp = runner.invoke(app, ["compare", str(out), str(out), "--resamples", "200",
                              "--output", str(tmp_path / "cmp.json")])
    assert cmp.exit_code == 0, cmp.output
    metrics = [row["metric"] for row in json.loads((tmp_path / "cmp.json").read_text())["rows"]]
    assert "mo_map" not in metrics and "mul_map" in metrics and "cr_map" in metrics


# ----------------------------------------------------------------------------- real data


REAL = shared_data_dir()


@pytest.mark.integration
@pytest.mark.skipif(REAL is None or not (REAL / "ntrex-128").is_dir(),
                    reason="real NTREX-128 folder absent: set POLYIR_DATA_DIR to a folder holding ntrex-128/")
def test_real_ntrex_counts_and_checksums(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: pytest.fail("no download"))
    files = resolve_files("ntrex-sentences", data_dir=REAL, verify=True)
    shared = resolve_shared_files("ntrex-sentences", data_dir=REAL, verify=True)
    assert len(files) == 11 and set(shared) == {"DOCUMENT_IDS.tsv"}
    low = resolve_files("ntrex-sentences", data_dir=REAL, languages=LOW_RESOURCE, verify=True)
    assert len(low) == 12  # the 12 low-resource files of the README, sha256-checked
    task = load_task("ntrex-sentences", data_dir=REAL)
    assert task.notes["lines"] == 1997 and task.notes["documents"] == 123
    assert len(task.query_languages) == 11 and len(task.queries) == len(task.candidates) == 11 * 1997
    assert {len(v) for v in task.relevant.values()} == {10}
    docs = load_task("ntrex-documents", data_dir=REAL, languages="en,de,zh")
    assert len(docs.queries) == 3 * 123 and len(docs.candidates) == 3 * (1997 - 123)
    assert docs.notes["dropped_documents"] == []
    four = load_task("ntrex-sentences", data_dir=REAL, languages="eng,sna-Latn,tir,wol")
    assert len(four.queries) == len(four.candidates) == 4 * 1997 and four.query_languages == ["en", "sn", "ti", "wo"]
    low_docs = load_task("ntrex-documents", data_dir=REAL, languages=LOW_RESOURCE)
    assert len(low_docs.queries) == 12 * 123 and "unpinned_files" not in low_docs.notes
    # the same files read as a plain parallel folder give the same sentence task (groups aside)
    plain = load_task_or_path(str(REAL / "ntrex-128"), languages="en,de,zh")
    sub = load_task("ntrex-sentences", data_dir=REAL, languages="de,en,zh")
    strip = len(ntrex.ID_PREFIX)
    assert {k[strip:]: {c[strip:] for c in v} for k, v in sub.relevant.items()} == plain.relevant
    assert {k[strip:]: {c[strip:] for c in v} for k, v in sub.excluded.items()} == plain.excluded


def test_download_urls_point_at_the_pinned_commit():
    spec = registry.get_spec("ntrex-documents")
    urls = {f.path: f.url for f in spec.files}
    base = "https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/8561f6a622db9edad1217683e5c83daefd8bb2bf/"
    assert urls["ntrex-128/DOCUMENT_IDS.tsv"] == base + "DOCUMENT_IDS.tsv"
    assert urls["ntrex-128/newstest2019-ref.zho-CN.txt"] == base + "NTREX-128/newstest2019-ref.zho-CN.txt"
    assert spec.file_for("en").path == "ntrex-128/newstest2019-src.eng.txt"
    assert spec.file_for("sn").path == "ntrex-128/newstest2019-ref.sna-Latn.txt"
    assert spec.file_for("zh-hant").path == "ntrex-128/newstest2019-ref.zho-TW.txt"
    assert urls["ntrex-128/newstest2019-ref.bem.txt"] == base + "NTREX-128/newstest2019-ref.bem.txt"
    # every language of the source, one file per canonical code (8 regional variants left out)
    assert len(spec.languages) == 122 and len(spec.files) == 123
    assert spec.default_languages == ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
    pinned = {f.language for f in spec.files if f.pinned}
    assert pinned == {*spec.default_languages, *LOW_RESOURCE, None}  # the 23 in shared/data + DOCUMENT_IDS
    assert all(len(f.sha256) == 64 for f in spec.files if f.pinned)


def test_downloaded_document_ids_are_used(tmp_path, monkeypatch):
    """A data folder without DOCUMENT_IDS.tsv: it is downloaded (checked) into the cache and used."""
    import hashlib

    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    folder = write_ntrex(tmp_path / "data", [("d1", 2), ("d2", 2)], langs=("en", "de"))
    payload = (folder / "DOCUMENT_IDS.tsv").read_bytes()
    (folder / "DOCUMENT_IDS.tsv").unlink()
    spec = registry.get_spec("ntrex-documents")
    files = tuple(
        registry.DataFile(f.path, f.url, hashlib.sha256(payload).hexdigest()) if f.language is None else f
        for f in spec.files
    )
    monkeypatch.setitem(registry.REGISTRY, "ntrex-documents",
                        registry.DatasetSpec(**{**spec.__dict__, "files": files}))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: io.BytesIO(payload))
    task = load_task("ntrex-documents", data_dir=tmp_path / "data", languages="en,de")
    assert len(task.queries) == 4
    assert Path(task.notes["document_ids"]).is_relative_to(tmp_path / "cache")
