"""News-domain training pairs: a sentence and its document context, from one half of a document split."""

from __future__ import annotations

from typer.testing import CliRunner

from polyir.data.jsonl import read_parallel_jsonl
from polyir.data.news_pairs import news_context_pairs
from polyir.data.parallel import build_sentence_task
from polyir.data.split import split_by_document


def _task():
    en = ["e1", "e2", "e3", "e4", "e5", "e6"]
    de = ["d1", "d2", "d3", "d4", "d5", "d6"]
    return build_sentence_task("news", {"en": en, "de": de}, documents=["A", "A", "A", "B", "B", "C"])


def test_each_sentence_pairs_with_its_own_documents_window_in_every_language():
    corpus = news_context_pairs(_task(), window=1)
    by_id = {p.pair_id: p for p in corpus.pairs}
    assert set(by_id) == {"news:1", "news:2", "news:3", "news:4", "news:5"}  # line 6 is a one-line document
    assert by_id["news:2"].entries["en"].query == "e2" and by_id["news:2"].entries["en"].positive == "e1 e3"
    assert by_id["news:2"].entries["de"].positive == "d1 d3"
    assert by_id["news:3"].entries["de"].positive == "d2"  # the window never crosses into document B
    assert by_id["news:4"].entries["en"].positive == "e5"


def test_the_validation_half_holds_no_line_of_the_test_half():
    task = _task()
    val, test = split_by_document(task, 0.5, 0)
    train = news_context_pairs(val)
    test_lines = {c.id.rsplit(":", 1)[1] for c in test.candidates}
    assert train.pairs and not {p.pair_id.split(":")[1] for p in train.pairs} & test_lines


def test_cli_writes_a_training_file(tmp_path):
    from polyir.cli import app

    folder = tmp_path / "news"
    folder.mkdir()
    for lang in ("en", "de"):
        (folder / f"n.{lang}.txt").write_text("\n".join(f"{lang} line {i}" for i in range(8)) + "\n")
    out = tmp_path / "train.jsonl"
    res = CliRunner().invoke(app, ["data", "news-pairs", "--dataset", str(folder), "--part", "all", "-o", str(out)])
    # parallel text folders have no documents: every line is its own document, so nothing to pair
    assert res.exit_code == 2 and "no line with document context" in res.output
    assert not out.exists()
