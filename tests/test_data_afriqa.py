"""AfriQA tasks: an African-language question (afriqa) or its pivot translation (afriqa-pivot) finds
its en/fr gold passage."""

from __future__ import annotations

import json
import math
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data import registry
from polyir.data.afriqa import load_afriqa, load_afriqa_pivot
from polyir.data.registry import get_spec, load_task, resolve_file_sets
from polyir.errors import DataFormatError, EmptySelectionError, UnknownLanguageError
from polyir.evaluation.run import score_task

QUESTIONS = {
    "hau": [(0, "Ina Kano?", "Where is Kano?"), (1, "Wanene Sarki?", "Who is the king?"),
            (2, "Yaushe?", "When?"), (3, "Me yasa?", "Why?")],
    "fon": [(0, "Fite wɛ?", "Où est-ce ?")],
}
PASSAGES = {  # id -> context (None: the null context of a real bem record)
    "hau": {"0": "Kano is a city in Nigeria.", "1": "The emir is the king.", "3": "Kano is a city in Nigeria.",
            "2": None},
    "fon": {"0": "Cotonou est une ville."},
}
PIVOT = {"hau": "en", "fon": "fr"}


def write_language(root: Path, lang: str, questions=None, passages=None) -> dict[str, Path]:
    """AfriQA's layout under ``root/afriqa/data`` for one language; returns role -> path."""
    pivot = PIVOT[lang]
    q = root / "afriqa/data/queries" / lang / f"queries.afriqa.{lang}.{pivot}.test.json"
    g = root / "afriqa/data/gold_passages" / lang / f"gold_span_passages.afriqa.{lang}.{pivot}.test.json"
    for p in (q, g):
        p.parent.mkdir(parents=True, exist_ok=True)
    q.write_text("".join(json.dumps({"id": i, "question": a, "translated_question": b, "lang": lang,
                                     "split": "test"}) + "\n" for i, a, b in (questions or QUESTIONS[lang])),
                 encoding="utf-8")
    g.write_text("".join(json.dumps({"id": i, "context": c, "title": "T", "answer_pivot": {}}) + "\n"
                         for i, c in (passages or PASSAGES[lang]).items()), encoding="utf-8")
    return {"queries": q, "gold": g}


def test_questions_find_their_gold_passage(tmp_path):
    files = {"ha": write_language(tmp_path, "hau"), "fon": write_language(tmp_path, "fon")}
    task = load_afriqa(files, "afriqa")
    # round-robin over languages; question 2 has a null context: no passage, no query
    assert [q.id for q in task.queries] == ["afriqa:fon:0", "afriqa:ha:0", "afriqa:ha:1", "afriqa:ha:3"]
    assert next(q for q in task.queries if q.id == "afriqa:ha:1").text == "Wanene Sarki?"
    # questions 0 and 3 share one passage: one candidate, relevant to both
    assert [c.id for c in task.candidates] == ["afriqa:fr:fon:0", "afriqa:en:ha:0", "afriqa:en:ha:1"]
    assert task.relevant["afriqa:ha:3"] == task.relevant["afriqa:ha:0"] == {"afriqa:en:ha:0"}
    assert task.candidate_languages == ["en", "fr"] and task.notes["pivots"] == {"fon": "fr", "ha": "en"}
    assert task.notes["empty_passages"] == {"ha": ["2"]}
    assert task.notes["questions_without_passage"] == {"fon": 0, "ha": 1}
    # Mo. undefined (no passage in the question's language), Cr. = X -> pivot
    r = score_task(task, np.eye(4, 3, dtype=np.float32), np.eye(3, dtype=np.float32))
    assert math.isnan(r.mo_map) and r.matrix["ha"].keys() == {"en"} and r.matrix["fon"].keys() == {"fr"}


def test_pivot_task_is_the_same_task_with_translated_queries(tmp_path):
    files = {"ha": write_language(tmp_path, "hau")}
    native, pivot = load_afriqa(files, "afriqa"), load_afriqa_pivot(files, "afriqa-pivot")
    assert [q.id for q in pivot.queries] == [q.id for q in native.queries]
    assert [q.language for q in pivot.queries] == ["ha", "ha", "ha"]  # the asker's language, for pairing
    assert [q.text for q in pivot.queries] == ["Where is Kano?", "Who is the king?", "Why?"]
    assert pivot.relevant == native.relevant and pivot.candidates == native.candidates
    assert pivot.notes["query_text"].startswith("translated_question")


@pytest.mark.parametrize(("role", "content", "message"), [
    ("queries", '{"id": 0, "question": "a", "translated_question": "b"}\n{"id": 1, "question": \n',
     r"queries\.afriqa\.hau\.en\.test\.json: line 2: not JSON"),
    ("queries", '{"id": 0, "question": "a", "translated_question": "b"}\n{"id": 0, "question": "c", '
                '"translated_question": "d"}\n', r"line 2: id '0' repeated \(first on line 1\)"),
    ("queries", '{"id": 0, "translated_question": "b"}\n', r"line 1: missing 'question'"),
    ("queries", '{"id": 0, "question": " ", "translated_question": "b"}\n', r"line 1: empty 'question'"),
    ("queries", '{"id": null, "question": "a", "translated_question": "b"}\n', r"line 1: 'id' should be"),
    ("gold", '{"id": "0", "context": "x"}\n{"id": "9", "context": "y"}\n',
     r"gold_span_passages\.afriqa\.hau\.en\.test\.json: line 2: gold passage for id '9', which has no question"),
    ("gold", '{"id": "0", "context": 5}\n', r"line 1: 'context' should be a string"),
    ("gold", '{"id": "0"}\n', r"line 1: missing 'context'"),
])
def test_malformed_records_name_file_and_line(tmp_path, role, content, message):
    files = write_language(tmp_path, "hau")
    files[role].write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        load_afriqa({"ha": files}, "afriqa")


def test_no_passage_at_all_is_an_empty_selection(tmp_path):
    files = write_language(tmp_path, "hau", passages={"0": ""})
    with pytest.raises(EmptySelectionError, match="no question of ha has a gold passage"):
        load_afriqa({"ha": files}, "afriqa")


def test_registry_selection_and_pivots(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    data = tmp_path / "data"
    write_language(data, "hau"), write_language(data, "fon")
    assert len(load_task("afriqa", data_dir=data, languages="hau,en").queries) == 3
    assert load_task("afriqa-pivot", data_dir=data, languages="fon").queries[0].text == "Où est-ce ?"
    with pytest.raises(UnknownLanguageError, match="fr is no pivot of ha"):
        load_task("afriqa", data_dir=data, languages="ha,fr")
    with pytest.raises(UnknownLanguageError, match="wo not present"):  # Wolof has no gold passages
        load_task("afriqa", data_dir=data, languages="wol")
    spec = get_spec("afriqa")
    assert spec.languages == ("bem", "fon", "ha", "ig", "rw", "sw", "tw", "yo", "zu")
    assert {f.role for f in spec.files_for("fon")} == {"queries", "gold"}
    assert spec.files_for("fon")[0].url.startswith(
        "https://raw.githubusercontent.com/masakhane-io/afriqa/5c29933753692c28773c34ac1f68482007f1d2bb/data/")


def test_cli_evaluate_afriqa_with_a_tiny_model(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    write_language(data, "hau")
    out = tmp_path / "res" / "a.json"
    res = CliRunner().invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--dataset", "afriqa",
                                   "--data-dir", str(data), "--languages", "hau", "--output", str(out),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["metrics"]["mo_map"] is None and result["metrics"]["cr_map"] is not None
    assert (result["counts"]["queries"], result["counts"]["candidates"]) == (3, 2)


# ----------------------------------------------------------------------------- real data

# AfriQA README: test queries and gold passages per language (wol: no gold passages)
QUERIES_TEST = {"bem": 314, "fon": 386, "hau": 300, "ibo": 409, "kin": 347, "swa": 302, "twi": 490,
                "yor": 332, "zul": 325}
GOLD_TEST = {"bem": 309, "fon": 386, "hau": 300, "ibo": 409, "kin": 347, "swa": 295, "twi": 486,
             "yor": 254, "zul": 325}
EMPTY_CONTEXTS = {"bem": 1, "kin": 2, "yor": 1}  # null or blank "context" in the gold file


@pytest.mark.integration
def test_real_counts(shared_data, tmp_path, monkeypatch):
    if not (shared_data / "afriqa").is_dir():
        pytest.skip(f"afriqa/ absent from {shared_data}: set POLYIR_DATA_DIR to a folder holding it")
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: pytest.fail("no download"))
    from polyir.data.records import json_lines
    from polyir.languages import canonical_code

    sets = resolve_file_sets("afriqa", data_dir=shared_data, verify=True)
    for tag in QUERIES_TEST:
        roles = sets[canonical_code(tag)]
        assert len(json_lines(roles["queries"])) == QUERIES_TEST[tag], tag
        assert len(json_lines(roles["gold"])) == GOLD_TEST[tag], tag
    task = load_task("afriqa", data_dir=shared_data)
    per_language = {lang: sum(q.language == lang for q in task.queries) for lang in task.query_languages}
    assert per_language == {canonical_code(t): GOLD_TEST[t] - EMPTY_CONTEXTS.get(t, 0) for t in GOLD_TEST}
    assert task.candidate_languages == ["en", "fr"]
    pivot = load_task("afriqa-pivot", data_dir=shared_data, languages="fon")
    assert len(pivot.queries) == 386 and pivot.candidate_languages == ["fr"]
