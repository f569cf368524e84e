"""`polyir data convert TASK --to beir|flagembedding|sentence-transformers`: written, then read back."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data.formats import read_pairs
from polyir.data.jsonl import read_parallel_jsonl
from polyir.data.load import load_task_or_path
from polyir.index.corpus import corpus_fields, read_corpus
from polyir.testing import write_tiny_lareqa

runner = CliRunner()
LANGS = ["en", "de", "es"]


@pytest.fixture()
def data(tmp_path, monkeypatch):
    write_tiny_lareqa(tmp_path / "data" / "xquad-r", LANGS)
    monkeypatch.setenv("POLYIR_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _convert(*args):
    res = runner.invoke(app, ["data", "convert", *args])
    assert res.exit_code == 0, res.output
    return res.output


def _read_beir(folder):
    corpus = read_corpus(folder / "corpus.jsonl", fields=corpus_fields("beir", language_field="language"))
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    with open(folder / "qrels" / "test.tsv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows[0] == ["query-id", "corpus-id", "score"]
    qrels: dict[str, set[str]] = {}
    for q, d, score in rows[1:]:
        assert score == "1"
        qrels.setdefault(q, set()).add(d)
    return corpus, queries, qrels


def test_a_registered_task_round_trips_through_beir(data, tmp_path):
    out = _convert("xquad-r", "--languages", ",".join(LANGS), "--to", "beir", "--output", str(tmp_path / "beir"))
    assert "BEIR layout" in out
    task = load_task_or_path("xquad-r", languages=LANGS)
    corpus, queries, qrels = _read_beir(tmp_path / "beir")
    assert [(p.id, p.language, p.text) for p in corpus] == [(c.id, c.language, c.text) for c in task.candidates]
    assert [p.metadata["group"] for p in corpus] == [c.group for c in task.candidates]
    assert [(q["_id"], q["language"], q["text"], q["metadata"]["pair_id"]) for q in queries] == [
        (q.id, q.language, q.text, q.pair_id) for q in task.queries]
    assert qrels == {q: set(rel) for q, rel in task.relevant.items()}
    assert not (tmp_path / "beir" / "excluded.tsv").exists()


def test_a_path_task_keeps_its_exclusions_beside_the_beir_files(tmp_path):
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "news.en.txt").write_text("one\ntwo\nsame\n", encoding="utf-8")
    (tmp_path / "news" / "news.de.txt").write_text("eins\nsame\nsame\n", encoding="utf-8")
    _convert(str(tmp_path / "news"), "--to", "beir", "--output", str(tmp_path / "beir"))
    task = load_task_or_path(str(tmp_path / "news"))
    corpus, _, qrels = _read_beir(tmp_path / "beir")
    assert [p.id for p in corpus] == [c.id for c in task.candidates]
    assert qrels == {q: set(rel) for q, rel in task.relevant.items()}
    with open(tmp_path / "beir" / "excluded.tsv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))[1:]
    excluded: dict[str, set[str]] = {}
    for q, d, _ in rows:
        excluded.setdefault(q, set()).add(d)
    assert excluded == {q: set(v) for q, v in task.excluded.items() if v}
    assert excluded["de:2"] == {"de:2", "de:3"}  # the identical German lines exclude each other


@pytest.mark.parametrize(("fmt", "name"), [("flagembedding", "t.jsonl"), ("sentence-transformers", "t.parquet"),
                                           ("sentence-transformers", "saved")])
def test_a_training_corpus_round_trips_through_the_pair_formats(data, tmp_path, fmt, name):
    _convert("xquad-r", "--languages", "en,de", "--output", str(tmp_path / "ref.jsonl"))
    ref = read_parallel_jsonl(tmp_path / "ref.jsonl")
    _convert("xquad-r", "--languages", "en,de", "--to", fmt, "--output", str(tmp_path / name))
    scheme = "hf" if name == "saved" else "pairs"
    back = read_pairs(f"{scheme}:{tmp_path / name}")
    strip = lambda c: {(p.pair_id, lang): (e.query, e.positive, e.negatives)  # noqa: E731 (context is not a pair field)
                       for p in c.pairs for lang, e in p.entries.items()}
    assert strip(back) == strip(ref) and any(e.negatives for p in ref.pairs for e in p.entries.values())


def test_convert_errors(data, tmp_path):
    (tmp_path / "afile").write_text("x")
    for args, message in [
        (["xquad-r", "--to", "beir", "--output", str(tmp_path / "afile")], "is a file"),
        (["xquad-r", "--to", "trec", "--output", str(tmp_path / "o")], "--to must be one of"),
        (["--to", "beir", "--output", str(tmp_path / "o")], "needs a TASK"),
        (["xquad-r", "--dataset", "xquad-r", "--output", str(tmp_path / "o.jsonl")], "give the dataset once"),
        (["no-such-task", "--to", "beir", "--output", str(tmp_path / "o")], "no-such-task"),
    ]:
        res = runner.invoke(app, ["data", "convert", *args])
        assert res.exit_code == 2, (args, res.output)
        assert message in " ".join(res.output.split()), (args, res.output)
