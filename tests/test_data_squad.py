"""SQuAD-format files (v1.1, v2.0) aligned by question id; AfriQA train/dev as training corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data.jsonl import read_parallel_jsonl
from polyir.data.registry import get_spec, list_specs, load_corpus
from polyir.data.squad import parse_squad_spec, read_squad, read_squad_files
from polyir.errors import DataFormatError, UnknownLanguageError


def squad_file(path: Path, qas: list[tuple[str, str, bool]], context: str, version: str = "v2.0") -> Path:
    """A one-paragraph SQuAD file; ``qas`` are (id, question, is_impossible)."""
    questions = []
    for qid, text, impossible in qas:
        item = {"id": qid, "question": text,
                "answers": [] if impossible else [{"text": context.split()[0], "answer_start": 0}]}
        if version == "v2.0":
            item["is_impossible"] = impossible
        questions.append(item)
    doc = {"version": version, "data": [{"title": "T", "paragraphs": [{"context": context, "qas": questions}]}]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_translated_copies_align_by_question_id(tmp_path: Path) -> None:
    en = squad_file(tmp_path / "en.json", [("a", "Who?", False), ("b", "When?", False), ("c", "Why not?", True)],
                    "Goethe wrote Faust. It was 1808.", version="1.1")
    es = squad_file(tmp_path / "es.json", [("b", "¿Cuándo?", False), ("a", "¿Quién?", False), ("d", "¿Qué?", False)],
                    "Goethe escribió Fausto. Fue en 1808.")
    read = read_squad_files(parse_squad_spec(f"en={en},es={es}"))
    pairs = {p.pair_id: p for p in read.corpus.pairs}
    assert list(pairs) == ["a", "b", "c", "d"]  # v1.1 has no is_impossible: c is answerable (en only)
    assert pairs["a"].entries["es"].query == "¿Quién?" and pairs["a"].entries["en"].query == "Who?"
    assert pairs["b"].entries["es"].positive == "Goethe escribió Fausto. Fue en 1808."
    assert pairs["d"].languages == ["es"] and pairs["c"].languages == ["en"]
    assert read.only_in == {"en": 1, "es": 1} and read.unanswerable == {"en": 0, "es": 0}


def test_unanswerable_questions_are_skipped_and_counted(tmp_path: Path) -> None:
    path = squad_file(tmp_path / "train-v2.0.json", [("a", "Who?", False), ("x", "Nobody?", True)], "Goethe wrote it.")
    version, questions, skipped = read_squad(path)
    assert version == "v2.0" and [q.id for q in questions] == ["a"] and skipped == 1
    assert questions[0].answer_start == 0 and questions[0].answer_text == "Goethe"


def test_bad_squad_input_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.json: data\[0\].paragraphs\[0\]: missing 'context'"):
        read_squad(bad)
    with pytest.raises(UnknownLanguageError, match="'xx1'"):
        parse_squad_spec(f"xx1={bad}")
    with pytest.raises(DataFormatError, match="LANG=FILE"):
        parse_squad_spec(str(bad))


def test_data_squad_command_writes_a_training_file(tmp_path: Path) -> None:
    en = squad_file(tmp_path / "en.json", [("a", "Who?", False), ("x", "No?", True)], "Goethe wrote Faust.")
    de = squad_file(tmp_path / "de.json", [("a", "Wer?", False)], "Goethe schrieb Faust.")
    out = tmp_path / "squad.jsonl"
    result = CliRunner().invoke(app, ["data", "squad", "--squad", f"en={en},de={de}", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "unanswerable skipped: en 1, de 0" in " ".join(result.output.split())
    corpus = read_parallel_jsonl(out)
    assert len(corpus) == 1 and corpus.pairs[0].entries["de"].query == "Wer?"


def test_afriqa_training_specs_are_registered() -> None:
    names = {s.name for s in list_specs()}
    assert {"squad2-fi", "squad2-fi-no-mlqa", "afriqa", "afriqa-train", "afriqa-dev"} <= names
    train = get_spec("afriqa-train")
    assert all(".train.json" in f.path and f.sha256 for f in train.files)
    assert "sw" not in train.languages and "yo" in train.languages  # swa has no train gold passages
    assert "yo" not in get_spec("afriqa-dev").languages
    assert all(".test.json" in f.path for f in get_spec("afriqa").files)


def test_afriqa_train_real(shared_data: Path) -> None:
    if not (shared_data / "afriqa").is_dir():
        pytest.skip(f"{shared_data / 'afriqa'} absent")
    corpus = load_corpus("afriqa-train", data_dir=shared_data, download=False)
    sizes = corpus.language_sizes()
    assert sizes["ha"] == 223 and sizes["fon"] == sizes["fr"] == 282  # gold passages minus empty contexts
    pair = next(p for p in corpus.pairs if p.pair_id == "ha:train:0")
    assert pair.entries["en"].query == "In what year did a woman first become the vice to the US president?"
    assert pair.entries["ha"].positive == pair.entries["en"].positive
    dev = load_corpus("afriqa-dev", data_dir=shared_data, languages="tw", download=False)
    assert set(dev.languages) == {"tw", "en"} and len(dev) == 348  # one blank question left out
