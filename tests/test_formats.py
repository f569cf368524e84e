"""Input formats: FlagEmbedding / sentence-transformers pairs in files and `datasets` folders (hf:, pairs:
sources), and corpus files with BEIR / pyserini / MIRACL field names. Each is written, read back and
compared; malformed records name their file and line."""

from __future__ import annotations

import gzip
import json

import pytest

from polyir.data.formats import parse_source, read_pairs, write_pairs
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DataFormatError, PolyirError, UnknownLanguageError
from polyir.index.corpus import Passage, corpus_fields, read_corpus

CORPUS = ParallelQACorpus("toy", [
    ParallelPair("p1", {"en": QAEntry("who wrote faust?", "Goethe wrote Faust.", negatives=("Schiller wrote plays.",)),
                        "de": QAEntry("wer schrieb faust?", "Goethe schrieb Faust.")}),
    ParallelPair("p2", {"en": QAEntry("capital of france?", "Paris is the capital.",
                                      negatives=("Lyon is large.", "Nice, is \"sunny\"\tand\nwarm"))}),
    ParallelPair("7", {"sw": QAEntry("mji mkuu wa kenya?", "Nairobi ni mji mkuu.")}),
])


def _entries(corpus: ParallelQACorpus) -> dict[tuple[str, str], QAEntry]:
    return {(p.pair_id, lang): e for p in corpus.pairs for lang, e in p.entries.items()}


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["flagembedding", "sentence-transformers"])
@pytest.mark.parametrize("name", ["pairs.jsonl", "pairs.jsonl.gz", "pairs.csv", "pairs.tsv", "pairs.parquet"])
def test_pair_files_round_trip(tmp_path, fmt, name):
    path = write_pairs(CORPUS, tmp_path / name, fmt)
    back = read_pairs(f"pairs:{path}")
    assert back.name == "pairs"
    assert _entries(back) == _entries(CORPUS)
    assert [p.pair_id for p in back.pairs] == ["p1", "p2", "7"]


@pytest.mark.parametrize("fmt", ["flagembedding", "sentence-transformers"])
def test_datasets_folder_round_trips_through_an_hf_source(tmp_path, fmt):
    folder = write_pairs(CORPUS, tmp_path / "saved", fmt)  # Dataset.save_to_disk
    assert (folder / "dataset_info.json").is_file()
    back = read_pairs(f"hf:{folder}")
    assert _entries(back) == _entries(CORPUS) and back.name == "saved"
    assert _entries(read_pairs(f"hf:{folder}", languages="en")) == {
        k: v for k, v in _entries(CORPUS).items() if k[1] == "en"}


def test_dataset_dict_split_and_a_folder_of_data_files(tmp_path):
    import datasets

    rows = [{"question": "q one", "answer": "a one", "lang": "de", "id": 1},
            {"question": "q two", "answer": "a two", "lang": "deu", "id": 2}]
    ddict = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                                  "dev": datasets.Dataset.from_list(rows[:1])})
    ddict.save_to_disk(str(tmp_path / "dd"))
    spec = "?query=question&positive=answer&language=lang&pair_id=id"
    dev = read_pairs(f"hf:{tmp_path / 'dd'}@dev{spec}")
    assert _entries(dev) == {("1", "de"): QAEntry("q one", "a one")}
    train = read_pairs(f"hf:{tmp_path / 'dd'}{spec}")  # default split: train; deu -> de
    assert sorted(_entries(train)) == [("1", "de"), ("2", "de")]
    with pytest.raises(PolyirError, match=r"no split 'test'; the folder holds train, dev"):
        read_pairs(f"hf:{tmp_path / 'dd'}@test{spec}")
    # a folder of plain data files goes through datasets.load_dataset's packaged builders (no network)
    plain = tmp_path / "plain"
    plain.mkdir()
    _write_jsonl(plain / "train.jsonl", [{"query": "q", "pos": ["p"], "neg": ["n"]}])
    got = read_pairs(f"hf:{plain}@train?lang=fi")
    assert _entries(got) == {("1", "fi"): QAEntry("q", "p", negatives=("n",))}


def test_fixed_language_from_the_source_or_a_single_selection(tmp_path):
    path = _write_jsonl(tmp_path / "st.jsonl", [
        {"anchor": "a1", "positive": "p1", "negative": "n1"},
        {"anchor": "a2", "positive": "p2", "negative_1": "n2", "negative_2": "m2"},
    ])
    sw = read_pairs(f"pairs:{path}?lang=swa")
    assert _entries(sw) == {("1", "sw"): QAEntry("a1", "p1", negatives=("n1",)),
                            ("2", "sw"): QAEntry("a2", "p2", negatives=())}  # columns come from line 1
    assert sw.languages == ["sw"]
    assert read_pairs(f"pairs:{path}", languages=["yo"]).languages == ["yo"]
    with pytest.raises(DataFormatError, match=r"st\.jsonl: line 1: the records hold no language; add lang=CODE"):
        read_pairs(f"pairs:{path}")
    with pytest.raises(UnknownLanguageError, match="lang"):
        parse_source(f"pairs:{path}?lang=xx")


def test_flagembedding_keeps_the_first_positive_and_every_negative(tmp_path, caplog):
    path = _write_jsonl(tmp_path / "flag.jsonl", [
        {"query": "q", "pos": ["p1", "p2"], "neg": ["n1", "n2"], "language": "en"},
        {"query": "r", "pos": "single", "language": "EN"},
    ])
    got = _entries(read_pairs(f"pairs:{path}"))
    assert got == {("1", "en"): QAEntry("q", "p1", negatives=("n1", "n2")), ("2", "en"): QAEntry("r", "single")}
    assert "1 further positive(s) left aside" in caplog.text


def test_every_loader_that_takes_a_name_takes_a_source(tmp_path):
    """Training sources, evaluation datasets and the public API go through the registry's loaders."""
    from polyir.api import load_corpus as api_load_corpus
    from polyir.data.load import load_task_or_path
    from polyir.data.registry import REGISTRY, get_spec, load_corpus

    path = write_pairs(CORPUS, tmp_path / "train.parquet", "sentence-transformers")
    source = f"pairs:{path}"
    assert source in REGISTRY and "hf:org/name" in REGISTRY and "nope" not in REGISTRY
    assert get_spec(source).kind == "source" and REGISTRY.get(source) is None
    assert sorted(REGISTRY) == sorted(s for s in REGISTRY if not s.startswith(("hf:", "pairs:")))
    assert _entries(load_corpus(source)) == _entries(CORPUS)
    assert _entries(api_load_corpus(source, languages="de")) == {("p1", "de"): CORPUS.pairs[0].entries["de"]}
    task = load_task_or_path(source, languages="en,de")
    assert [q.id for q in task.queries] == ["de:p1", "en:p1", "en:p2"]
    assert task.relevant["de:p1"] == {"de:p1", "en:p1"}  # its pair's positive in every language
    assert [c.text for c in task.candidates] == ["Goethe schrieb Faust.", "Goethe wrote Faust.", "Paris is the capital."]


def test_the_trainer_loads_source_strings_as_training_corpora(tmp_path):
    from polyir.training.config import TrainConfig
    from polyir.training.data import load_sources

    flag = write_pairs(CORPUS, tmp_path / "train.jsonl", "flagembedding")
    saved = write_pairs(CORPUS, tmp_path / "saved", "sentence-transformers")
    cfg = TrainConfig.model_validate({"data": {"train": [
        f"pairs:{flag}", {"source": f"hf:{saved}", "languages": ["en", "de"], "name": "st"}]}})
    flag_corpus, st_corpus = load_sources(cfg)
    assert flag_corpus.name == "train" and _entries(flag_corpus) == _entries(CORPUS)
    assert st_corpus.name == "st" and st_corpus.languages == ["de", "en"]
    assert _entries(st_corpus) == {k: v for k, v in _entries(CORPUS).items() if k[1] != "sw"}


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(("records", "source_suffix", "message"), [
    (['{"query": "q", "pos": ["p"], "language": "en"}', '{"query": "q", "pos": '], "",
     r"f\.jsonl: line 2: not valid JSON"),
    (['{"query": "q", "pos": ["p"], "language": "en"}', '{"pos": ["p"], "language": "en"}'], "",
     r"f\.jsonl: line 2: missing 'query'"),
    (['{"query": "q", "pos": [], "language": "en"}'], "", r"line 1: 'pos' is empty \(each record needs a positive\)"),
    (['{"query": "q", "pos": [3], "language": "en"}'], "", r"line 1: 'pos'\[0\] should be a string, got int"),
    (['{"query": "  ", "pos": ["p"], "language": "en"}'], "", r"line 1: 'query' is empty"),
    (['{"query": "q", "pos": ["p"], "language": "xx"}'], "", r"line 1: unknown language code 'xx'"),
    (['{"query": "q", "pos": ["p"], "language": "en", "pair_id": "a"}',
      '{"query": "r", "pos": ["s"], "language": "en", "pair_id": "a"}'], "",
     r"line 2: pair id 'a' already has a 'en' entry \(.*f\.jsonl: line 1\)"),
    (['{"text": "q", "answer": "p"}'], "?lang=en", r"line 1: cannot tell the format from the columns text, answer"),
    (['{"text": "q", "answer": "p"}'], "?lang=en&query=text&positive=answr", r"line 1: no column 'answr'"),
    (['["q", "p"]'], "?lang=en", r"line 1: expected a JSON object, got list"),
    ([], "?lang=en", r"no records \(the source is empty\)"),
])
def test_malformed_pair_records_name_file_and_line(tmp_path, records, source_suffix, message):
    path = tmp_path / "f.jsonl"
    path.write_text("\n".join(records) + "\n", encoding="utf-8")
    with pytest.raises(PolyirError, match=message):
        read_pairs(f"pairs:{path}{source_suffix}")


def test_malformed_csv_parquet_and_sources(tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("anchor,positive\nq1,p1\nq2,p2,extra\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"p\.csv: line 3: 3 fields, the header has 2"):
        read_pairs(f"pairs:{csv_path}?lang=en")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"anchor": "q", "positive": "p"}, {"anchor": "q", "positive": None}]),
                   tmp_path / "p.parquet")
    with pytest.raises(DataFormatError, match=r"p\.parquet: row 1: 'positive' is empty"):
        read_pairs(f"pairs:{tmp_path / 'p.parquet'}?lang=en")
    for bad, message in [
        (f"pairs:{csv_path}?langs=en", r"unknown option 'langs'; allowed: format, query"),
        (f"pairs:{csv_path}?format=tevatron", r"unknown format 'tevatron'"),
        (f"pairs:{csv_path}?lang=", r"option 'lang' is empty"),
        (f"pairs:{csv_path}?lang", r"options must read key=value&key=value after '\?'"),
        ("pairs:", r"nothing after 'pairs:'"),
        (f"pairs:{tmp_path / 'none.jsonl'}", r"none\.jsonl: no such file"),
        (f"pairs:{tmp_path / 'p.txt'}", r"unknown pair-file type"),
        (f"hf:{tmp_path}/nothing-here:cfg@", r"empty split after '@'"),
    ]:
        if bad.endswith("p.txt"):
            (tmp_path / "p.txt").write_text("x\n")
        with pytest.raises(PolyirError, match=message):
            read_pairs(bad)


def test_a_hub_name_without_network_fails_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(PolyirError, match=r"hf:someorg/not-cached:cfg@train: cannot load it from the Hugging Face hub") as err:
        read_pairs("hf:someorg/not-cached:cfg?lang=en")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- corpus files


PASSAGES = [Passage("d1", "en", "Goethe wrote Faust.", "Faust"), Passage("d2", "de", "Goethe schrieb Faust."),
            Passage("3", "sw", "Nairobi ni mji mkuu.", "Kenya")]


def _foreign(p: Passage, preset: str) -> dict:
    if preset == "beir":
        return {"_id": p.id, "title": p.title, "text": p.text, "lang": p.language, "metadata": {"url": "u"}}
    if preset == "pyserini":
        return {"id": p.id, "contents": p.text, "lang": p.language}
    return {"docid": p.id, "title": p.title, "text": p.text, "lang": p.language}


@pytest.mark.parametrize("preset", ["beir", "pyserini", "miracl"])
def test_corpus_presets_round_trip(tmp_path, preset):
    path = _write_jsonl(tmp_path / "corpus.jsonl", [_foreign(p, preset) for p in PASSAGES])
    got = read_corpus(path, fields=corpus_fields(preset, language_field="lang"))
    assert [(p.id, p.language, p.text) for p in got] == [(p.id, p.language, p.text) for p in PASSAGES]
    if preset != "pyserini":
        assert [p.title for p in got] == [p.title for p in PASSAGES]
    if preset == "beir":
        assert got[0].metadata == {"url": "u"}
    # one language for all (BEIR and MIRACL corpora carry none); unknown keys kept in metadata
    fixed = read_corpus(path, fields=corpus_fields(preset), language="en")
    assert {p.language for p in fixed} == {"en"} and fixed[0].metadata.get("lang") == "en"


def test_a_miracl_style_folder_of_gzip_shards_and_explicit_fields(tmp_path):
    folder = tmp_path / "miracl-corpus-v1.0-sw"
    folder.mkdir()
    for i, chunk in enumerate([PASSAGES[:2], PASSAGES[2:]]):
        with gzip.open(folder / f"docs-{i}.jsonl.gz", "wt", encoding="utf-8") as fh:
            for p in chunk:
                fh.write(json.dumps({"docid": p.id, "title": p.title, "text": p.text}) + "\n")
    got = read_corpus(folder, fields=corpus_fields("miracl"), language="sw")
    assert [p.id for p in got] == ["d1", "d2", "3"] and {p.language for p in got} == {"sw"}
    explicit = _write_jsonl(tmp_path / "x.jsonl", [{"pid": "a", "body": "text a", "head": "A", "code": "de"}])
    got = read_corpus(explicit, fields=corpus_fields(id_field="pid", text_field="body", title_field="head",
                                                     language_field="code"))
    assert got == [Passage("a", "de", "text a", "A")]
    with gzip.open(folder / "docs-2.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"docid": "d1", "text": "again"}) + "\n")
    with pytest.raises(DataFormatError, match=r"docs-2\.jsonl\.gz: line 1: duplicate id 'd1' \(first seen on docs-0\.jsonl\.gz line 1\)"):
        read_corpus(folder, fields=corpus_fields("miracl"), language="sw")


@pytest.mark.parametrize(("record", "kwargs", "message"), [
    ({"_id": "a", "text": "x"}, {}, r"c\.jsonl: line 1: passage 'a': missing \"language\".*--language CODE"),
    ({"_id": "a", "text": ""}, {"language": "en"}, r"line 1: passage 'a': missing or empty \"text\""),
    ({"id": "a", "text": "x"}, {"language": "en"}, r"line 1: missing or empty \"_id\""),
    ({"_id": "a", "text": "x", "lang": "zz"}, {"language_field": "lang"}, r"unknown language code 'zz'"),
])
def test_corpus_preset_errors_name_file_and_line(tmp_path, record, kwargs, message):
    path = _write_jsonl(tmp_path / "c.jsonl", [record])
    language = kwargs.pop("language", None)
    with pytest.raises(PolyirError, match=message):
        read_corpus(path, fields=corpus_fields("beir", **kwargs), language=language)


def test_unknown_corpus_format():
    with pytest.raises(PolyirError, match="unknown corpus format 'trec'; use one of polyir, beir"):
        corpus_fields("trec")


def test_index_cli_reads_a_beir_corpus(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from polyir.cli import app

    path = _write_jsonl(tmp_path / "corpus.jsonl", [_foreign(p, "beir") for p in PASSAGES])
    runner = CliRunner()
    res = runner.invoke(app, ["index", "--model", str(tiny_model_dir), "--corpus", str(path), "--corpus-format",
                              "beir", "--language", "en", "--output", str(tmp_path / "idx"), "--no-progress"])
    assert res.exit_code == 0, res.output
    stored = [json.loads(line) for line in (tmp_path / "idx" / "passages.jsonl").read_text().splitlines()]
    assert [(r["id"], r["language"], r.get("title", "")) for r in stored] == [
        ("d1", "en", "Faust"), ("d2", "en", ""), ("3", "en", "Kenya")]
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["source"]["corpus_format"] == "beir"
    res = runner.invoke(app, ["index", "--model", str(tiny_model_dir), "--corpus", str(path), "--corpus-format",
                              "beir", "--output", str(tmp_path / "idx2"), "--no-progress"])
    assert res.exit_code == 2 and "line 1" in res.output and "--language CODE" in " ".join(res.output.split())
