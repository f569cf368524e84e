"""Any parallel corpus as a test set: line-aligned text files and parallel QA JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data.parallel import (
    language_from_filename,
    load_parallel_jsonl_task,
    read_text_lines,
)
from polyir.data.load import load_task_or_path
from polyir.errors import (
    DataFormatError,
    DatasetNotFoundError,
    EmptySelectionError,
    PolyirError,
    UnknownLanguageError,
)
from polyir.evaluation.run import score_task

runner = CliRunner()

LINES = {
    "en": ["the cat sat on the mat .", "the dog ran in the park .", "who was the first emperor of rome ?"],
    "de": ["der katze mat .", "der hund park .", "wer war der erste kaiser von rom ?"],
    "es": ["el gato mat .", "el perro park .", "quien fue el primer emperador de rome ?"],
}


def write_folder(folder: Path, lines=LINES, pattern="news.{lang}.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for lang, rows in lines.items():
        (folder / pattern.format(lang=lang)).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def write_jsonl(path: Path) -> Path:
    records = [
        {"pair_id": "p1", "languages": {
            "en": {"query": "who was the first emperor of rome ?", "positive": "the emperor of rome .",
                   "negatives": ["the cat ."]},
            "de": {"query": "wer war der erste kaiser von rom ?", "positive": "der kaiser von rom ."}}},
        {"pair_id": "p2", "languages": {
            "en": {"query": "where is the cat ?", "positive": "the cat sat on the mat ."},
            "de": {"query": "wo ist die katze ?", "positive": "die katze mat ."},
            "es": {"query": "donde el gato ?", "positive": "el gato mat ."}}},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- text files


def test_folder_becomes_a_sentence_task(tmp_path):
    task = load_task_or_path(str(write_folder(tmp_path / "news")))
    assert task.name == "news" and task.query_languages == ["de", "en", "es"]
    assert len(task.queries) == len(task.candidates) == 9
    assert task.relevant["de:2"] == {"en:2", "es:2"} and task.excluded["de:2"] == {"de:2"}
    assert {q.pair_id for q in task.queries} == {"1", "2", "3"}
    assert {c.group for c in task.candidates} == {"line:1", "line:2", "line:3"}
    assert task.notes["format"] == "parallel-text"
    # scoring works and Mo. is undefined, as for ntrex-sentences
    rng = np.random.default_rng(0)
    r = score_task(task, rng.normal(size=(9, 4)), rng.normal(size=(9, 4)))
    assert np.isnan(r.mo_map) and 0 < r.mul_map <= 1 and r.cr_pairs == 6


def test_list_of_files_with_language_selection(tmp_path):
    folder = write_folder(tmp_path / "f", pattern="{lang}.txt")
    paths = ",".join(str(folder / f"{lang}.txt") for lang in ("en", "de", "es"))
    task = load_task_or_path(paths, languages="en,es")
    assert task.query_languages == ["en", "es"] and task.name == "parallel"
    assert task.relevant["en:3"] == {"es:3"}
    with pytest.raises(UnknownLanguageError, match="not present"):
        load_task_or_path(paths, languages="en,fr")
    with pytest.raises(UnknownLanguageError, match="unknown language code"):
        load_task_or_path(paths, languages="en,xx")


def test_language_from_file_name():
    assert language_from_filename("news.de.txt") == "de"
    assert language_from_filename("/a/b/de.txt") == "de"
    assert language_from_filename("newstest2019-ref.zho-CN.txt") == "zh"
    assert language_from_filename("newstest2019-src.eng.txt") == "en"
    with pytest.raises(UnknownLanguageError, match=r"news\.xx\.txt.*'xx' is not a known language"):
        language_from_filename("news.xx.txt")


def test_crlf_bom_and_missing_final_newline_are_read(tmp_path):
    path = tmp_path / "x.en.txt"
    path.write_bytes("\ufeffone\r\ntwo\u2028half\r\nthree".encode("utf-8"))  # BOM, CRLF, U+2028
    assert read_text_lines(path) == ["one", "two\u2028half", "three"]


def test_mismatched_line_counts_name_both_files(tmp_path):
    folder = write_folder(tmp_path / "f")
    (folder / "news.es.txt").write_text("uno\ndos\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"news\.es\.txt has 2 lines but .*news\.de\.txt has 3"):
        load_task_or_path(str(folder))


def test_empty_line_names_file_and_line(tmp_path):
    folder = write_folder(tmp_path / "f")
    (folder / "news.en.txt").write_text("a\n\nc\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"news\.en\.txt: line 2 is empty"):
        load_task_or_path(str(folder))


def test_unknown_language_in_a_folder_names_the_file(tmp_path):
    folder = write_folder(tmp_path / "f")
    (folder / "README.txt").write_text("notes\n", encoding="utf-8")
    with pytest.raises(UnknownLanguageError, match=r"README\.txt: cannot tell the language"):
        load_task_or_path(str(folder))


@pytest.mark.parametrize("make, error, pattern", [
    (lambda t: str(t / "nope"), DatasetNotFoundError, "no such file or folder"),
    (lambda t: str(t / "nope.de.txt") + "," + str(t / "f" / "news.en.txt"), DatasetNotFoundError,
     r"nope\.de\.txt: no such file"),
    (lambda t: "no-such-dataset", DatasetNotFoundError, "unknown dataset 'no-such-dataset'.*xquad-r.*or give a path"),
    (lambda t: str(t / "f" / "news.en.txt"), EmptySelectionError, "one text file is not a parallel corpus"),
    (lambda t: str(t / "f" / "news.en.txt") + "," + str(t / "g" / "en.txt"), DataFormatError,
     "language 'en' given twice"),
    (lambda t: str(t / "g"), EmptySelectionError, "at least two languages"),
    (lambda t: str(t / "empty"), DataFormatError, r"no \.txt file"),
    (lambda t: str(t / "data.csv"), DataFormatError, "unknown test-set file type"),
])
def test_path_errors_are_polyir_errors_with_clear_messages(tmp_path, make, error, pattern):
    write_folder(tmp_path / "f")
    write_folder(tmp_path / "g", {"en": ["x ."]}, pattern="{lang}.txt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(error, match=pattern) as info:
        load_task_or_path(make(tmp_path))
    assert isinstance(info.value, PolyirError)


# ----------------------------------------------------------------------------- JSONL


def test_jsonl_becomes_a_lareqa_task(tmp_path):
    task = load_task_or_path(str(write_jsonl(tmp_path / "qa.jsonl")))
    assert task.name == "qa" and len(task.queries) == len(task.candidates) == 5
    assert task.relevant["de:p1"] == {"en:p1", "de:p1"}
    assert task.relevant["es:p2"] == {"en:p2", "de:p2", "es:p2"}
    assert {c.text for c in task.candidates if c.group == "p1"} == {"the emperor of rome .", "der kaiser von rom ."}
    assert task.notes["negatives_ignored"] == 1 and not task.excluded
    rng = np.random.default_rng(1)
    r = score_task(task, rng.normal(size=(5, 4)), rng.normal(size=(5, 4)))
    assert not np.isnan(r.mo_map)  # own-language positives are relevant: Mo. is defined
    only = load_parallel_jsonl_task(tmp_path / "qa.jsonl", languages="es")
    assert [q.id for q in only.queries] == ["es:p2"] and only.relevant["es:p2"] == {"es:p2"}


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"pair_id": "p1", "languages": {"xx": {"query": "q", "positive": "p"}}}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl: line 1.*unknown language code 'xx'"):
        load_task_or_path(str(path))


# ----------------------------------------------------------------------------- CLI


def test_cli_evaluates_a_folder_and_a_jsonl(tmp_path, tiny_model_dir):
    folder = write_folder(tmp_path / "news")
    out = tmp_path / "folder.json"
    res = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--dataset", str(folder),
                              "--output", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["dataset"] == str(folder) and result["counts"]["queries"] == 9
    assert result["metrics"]["mo_map"] is None and "—" in res.output

    out2 = tmp_path / "qa.json"
    res = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--dataset",
                              str(write_jsonl(tmp_path / "qa.jsonl")), "--output", str(out2), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads(out2.read_text())["metrics"]["mo_map"] is not None


def test_cli_missing_path_is_one_clear_error(tmp_path):
    res = runner.invoke(app, ["evaluate", "--model", "unused", "--dataset", str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert "no such file or folder" in res.output and "Traceback" not in res.output
