"""Parallel QA JSONL: round trips (plain and gzip) and errors that name file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyir.data.jsonl import read_parallel_jsonl, write_parallel_jsonl
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DataFormatError, UnknownLanguageError


def sample_corpus() -> ParallelQACorpus:
    return ParallelQACorpus(name="sample", pairs=[
        ParallelPair("q1", {
            "en": QAEntry("Who wrote Faust?", "Goethe wrote Faust.", "Faust is a play.",
                          ("Schiller wrote The Robbers.", "Kafka wrote The Trial.")),
            "de": QAEntry("Wer schrieb Faust?", "Goethe schrieb Faust."),
        }),
        ParallelPair("q2", {"zh": QAEntry("谁写了浮士德？", "歌德写了浮士德。", "")}),
        ParallelPair("7", {"el": QAEntry("Ποιος;", "Ο Γκαίτε.", None, ("Όχι.",))}),
    ])


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def rec(pid: object = "p", **langs: dict) -> str:
    return json.dumps({"pair_id": pid, "languages": langs or {"en": {"query": "q", "positive": "a"}}},
                      ensure_ascii=False)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz"])
def test_round_trip_keeps_every_field(tmp_path: Path, name: str) -> None:
    corpus = sample_corpus()
    path = write_parallel_jsonl(corpus, tmp_path / "sub" / name)
    back = read_parallel_jsonl(path)
    assert back.pairs == corpus.pairs
    assert back.name == "c"
    assert back.pairs[1].entries["zh"].context == ""  # empty context differs from a missing one
    assert back.pairs[2].entries["el"].context is None
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left behind


def test_gz_output_is_really_gzip_and_readable_by_others(tmp_path: Path) -> None:
    path = write_parallel_jsonl(sample_corpus(), tmp_path / "c.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first["pair_id"] == "q1" and list(first["languages"]) == ["de", "en"]
    assert "negatives" not in first["languages"]["de"] and "context" not in first["languages"]["de"]
    assert "谁写了浮士德" in lines[1]  # written as UTF-8, not \\u escapes


texts = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
entries = st.builds(
    QAEntry, query=texts, positive=texts, context=st.one_of(st.none(), st.text(max_size=20)),
    negatives=st.lists(texts, max_size=3).map(tuple),
)
pairs_st = st.dictionaries(
    keys=st.text(min_size=1, max_size=8).filter(lambda s: s.strip() != ""),
    values=st.dictionaries(st.sampled_from(["en", "de", "ar", "zh", "th"]), entries,
                           min_size=1, max_size=3),
    min_size=1, max_size=5,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=pairs_st, gz=st.booleans())
def test_round_trip_property(tmp_path: Path, pairs: dict, gz: bool) -> None:
    corpus = ParallelQACorpus("p", [ParallelPair(pid, ents) for pid, ents in pairs.items()])
    path = write_parallel_jsonl(corpus, tmp_path / ("p.jsonl.gz" if gz else "p.jsonl"))
    assert read_parallel_jsonl(path).pairs == corpus.pairs


def test_language_selection(tmp_path: Path) -> None:
    path = write_parallel_jsonl(sample_corpus(), tmp_path / "c.jsonl")
    sub = read_parallel_jsonl(path, languages=["de", "el"])
    assert [p.pair_id for p in sub.pairs] == ["q1", "7"]  # q2 (zh only) dropped
    assert sub.pairs[0].languages == ["de"]
    assert read_parallel_jsonl(path, languages="zh").language_sizes() == {"zh": 1}
    with pytest.raises(UnknownLanguageError, match="fr.*not present"):
        read_parallel_jsonl(path, languages=["fr"])
    with pytest.raises(UnknownLanguageError, match="qq"):
        read_parallel_jsonl(path, languages="en,qq")


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "b.jsonl", [rec("a"), "", "   ", rec("b")])
    assert [p.pair_id for p in read_parallel_jsonl(path).pairs] == ["a", "b"]
    path = write_lines(tmp_path / "b.jsonl", [rec("a"), "", "{oops"])
    with pytest.raises(DataFormatError, match=r"line 3"):
        read_parallel_jsonl(path)


# ----------------------------------------------------------------------------- errors


def expect_error(path: Path, line: int, fragment: str) -> None:
    with pytest.raises(DataFormatError) as err:
        read_parallel_jsonl(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: line {line}"), msg
    assert fragment in msg, msg


def test_bad_json_line_number(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [rec("a"), rec("b"), '{"pair_id": "c", "languages": {'])
    expect_error(path, 3, "not valid JSON")


def test_missing_pair_id(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl",
                       [rec("a"), json.dumps({"languages": {"en": {"query": "q", "positive": "a"}}})])
    expect_error(path, 2, "missing 'pair_id'")


def test_duplicate_pair_id_points_at_first_use(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [rec("a"), rec("b"), rec("a")])
    expect_error(path, 3, "duplicate pair_id 'a' (first on line 1)")


def test_duplicate_pair_id_int_and_string(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [rec(5), rec("5")])
    expect_error(path, 2, "duplicate pair_id '5'")


@pytest.mark.parametrize("field", ["query", "positive"])
def test_empty_query_or_positive(tmp_path: Path, field: str) -> None:
    entry = {"query": "q", "positive": "a", field: "  "}
    path = write_lines(tmp_path / "x.jsonl", [rec("a"), rec("b", de=entry)])
    expect_error(path, 2, f"language 'de': {field!r} is empty")


def test_missing_positive(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [rec("a", en={"query": "q"})])
    expect_error(path, 1, "missing 'positive'")


def test_unknown_language_code_in_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [rec("a"), rec("b", english={"query": "q", "positive": "a"})])
    expect_error(path, 2, "unknown language code 'english'")


def test_misspelt_key_is_rejected(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl",
                       [rec("a", en={"query": "q", "positive": "a", "negative": ["n"]})])
    expect_error(path, 1, "unknown key(s) 'negative'")


def test_negatives_must_be_strings(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [rec("a", en={"query": "q", "positive": "a",
                                                           "negatives": ["ok", 3]})])
    expect_error(path, 1, "negatives[1]")


def test_line_not_an_object(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [rec("a"), "[1, 2]"])
    expect_error(path, 2, "expected a JSON object")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_no_lines(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match="no records") as err:
        read_parallel_jsonl(path)
    assert str(path) in str(err.value)


def test_empty_gz(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8"):
        pass
    with pytest.raises(DataFormatError, match="no records"):
        read_parallel_jsonl(path)


def test_truncated_gz_names_file(tmp_path: Path) -> None:
    path = write_parallel_jsonl(sample_corpus(), tmp_path / "c.jsonl.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 12])
    with pytest.raises(DataFormatError) as err:
        read_parallel_jsonl(path)
    assert str(path) in str(err.value) and "line" in str(err.value)


def test_gz_bad_line_number(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(rec("a") + "\n" + rec("b") + "\n" + "not json\n")
    expect_error(path, 3, "not valid JSON")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes((rec("a") + "\n").encode() + b'{"pair_id": "\xff"}\n')
    expect_error(path, 2, "not UTF-8")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot open"):
        read_parallel_jsonl(tmp_path / "nope.jsonl")


def test_selecting_a_language_no_pair_has(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [rec("a", en={"query": "q", "positive": "a"}),
                                              rec("b", de={"query": "q", "positive": "a"})])
    assert [p.pair_id for p in read_parallel_jsonl(path, languages=["de"]).pairs] == ["b"]
    with pytest.raises(UnknownLanguageError, match=r"el.*not present; available: de, en"):
        read_parallel_jsonl(path, languages=["el"])
