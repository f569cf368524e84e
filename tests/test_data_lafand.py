"""MAFAND-MT tasks: lafand-sentences (JSON Lines pairs) and lafand-documents (TSV with document breaks)."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from polyir.data import registry
from polyir.data.lafand import load_lafand_documents, load_lafand_sentences, read_documents
from polyir.data.registry import get_spec, load_task, resolve_files
from polyir.data.split import split_by_document
from polyir.errors import DataFormatError, EmptySelectionError, UnknownLanguageError
from polyir.evaluation.run import score_task


def write_json(path: Path, pairs: list[tuple[str, str]], keys=("en", "hau")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"translation": dict(zip(keys, p))}) + "\n" for p in pairs),
                    encoding="utf-8")
    return path


def write_tsv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("POLYIR_DATA_DIR", raising=False)
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: (_ for _ in ()).throw(urllib.error.URLError("offline")))


# ----------------------------------------------------------------------------- sentences


def test_sentences_both_directions_in_the_pairs_pool(tmp_path):
    path = write_json(tmp_path / "en-hau" / "test.json", [("One.", "Daya."), ("Two.", "Biyu."), ("Three.", "Uku.")])
    task = load_lafand_sentences({"ha": path}, "lafand-sentences")
    assert task.query_languages == task.candidate_languages == ["en", "ha"]  # hau is written ha
    assert len(task.queries) == len(task.candidates) == 6
    assert task.relevant["lafand:en:2"] == {"lafand:ha:2"} and task.relevant["lafand:ha:3"] == {"lafand:en:3"}
    assert task.excluded["lafand:ha:1"] == {"lafand:ha:1"}
    assert task.notes["pair"] == "en-ha" and task.notes["merged_lines"] == 0


def test_repeated_sentences_merge_their_translations(tmp_path):
    # line 1 and 3 repeat the English sentence with two translations; line 4 repeats line 2 exactly
    pairs = [("Hello.", "Sannu."), ("Yes.", "I."), ("Hello.", "Barka."), ("Yes.", "I."), ("Other.", "Wani.")]
    task = load_lafand_sentences({"ha": write_json(tmp_path / "t.json", pairs)}, "t")
    assert task.relevant["lafand:en:1"] == {"lafand:ha:1", "lafand:ha:3"}
    assert task.excluded["lafand:en:1"] == {"lafand:en:1", "lafand:en:3"}
    # Sannu. and Barka. both translate Hello.: each finds both English copies, and ranks not the other
    assert task.relevant["lafand:ha:3"] == {"lafand:en:1", "lafand:en:3"}
    assert task.excluded["lafand:ha:3"] == {"lafand:ha:1", "lafand:ha:3"}
    assert task.relevant["lafand:ha:4"] == {"lafand:en:2", "lafand:en:4"}
    groups = {c.id: c.group for c in task.candidates}
    assert groups["lafand:ha:3"] == groups["lafand:en:1"] == "line:1" and groups["lafand:en:5"] == "line:5"
    assert task.notes["merged_lines"] == 4
    a, b = split_by_document(task, 0.5, seed=0)  # a cluster stays on one side
    assert {c.group for c in a.candidates}.isdisjoint({c.group for c in b.candidates})


def test_french_pivot_and_key_order(tmp_path):
    path = write_json(tmp_path / "t.json", [("Ala.", "Un."), ("Fila.", "Deux.")], keys=("bam", "fr"))
    task = load_lafand_sentences({"bm": path}, "t", languages=["fr", "bm"])
    assert task.query_languages == ["bm", "fr"] and task.relevant["lafand:fr:2"] == {"lafand:bm:2"}
    with pytest.raises(UnknownLanguageError, match="bm is paired with fr, not en"):
        load_lafand_sentences({"bm": path}, "t", languages=["en", "bm"])


@pytest.mark.parametrize(("content", "message"), [
    ('{"translation": {"en": "a", "hau": "b"}}\n{"translation": {"en": "c", "hau"\n', r"t\.json: line 2: not JSON"),
    ('{"translation": {"en": "a", "hau": "b"}}\n["en", "a"]\n', r"t\.json: line 2: expected a JSON object"),
    ('{"translation": {"en": "a", "hau": "b"}, "id": 1}\n', r"t\.json: line 1: expected \{\"translation\""),
    ('{"translation": {"en": "a", "hau": "b"}}\n\n{"translation": {"en": "c", "ibo": "d"}}\n',
     r"t\.json: line 3: languages en, ibo, but line 1 has en, hau"),
    ('{"translation": {"en": "a", "hau": " "}}\n', r"t\.json: line 1: empty hau sentence"),
    ('{"translation": {"en": "a", "fr": "b"}}\n', r"t\.json: line 1: expected one of en, fr and an African"),
    ('{"translation": {"en": "a", "xq": "b"}}\n', r"t\.json: line 1: 'xq' is not a language code"),
    ("", r"t\.json: no records"),
])
def test_malformed_sentence_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        load_lafand_sentences({"ha": path}, "t")


def test_a_file_of_another_pair_is_rejected(tmp_path):
    path = write_json(tmp_path / "t.json", [("a", "b")], keys=("en", "ibo"))
    with pytest.raises(DataFormatError, match=r"t\.json: holds en-ig, expected the pair of ha"):
        load_lafand_sentences({"ha": path}, "t")


# ----------------------------------------------------------------------------- documents

DOCS = (
    "eng\thau\n"
    "Headline one\tKanun daya\n"
    "Body 1a\tJiki 1a\n"
    "Body 1b\t\n"  # an untranslated line: its English side stays in the pool
    "\t\n"  # a tab-only line ends a document, as in eng-hau
    "Lonely headline\tKanu kadai\n"
    "\n"
    "Headline three\tKanu uku\n"
    "Body 3a\tJiki 3a\n"
)


def test_documents_headlines_find_their_document_on_both_sides(tmp_path):
    task = load_lafand_documents({"ha": write_tsv(tmp_path / "test.tsv", DOCS)}, "lafand-documents")
    assert [q.id for q in task.queries] == ["lafand:en:2", "lafand:ha:2", "lafand:en:8", "lafand:ha:8"]
    assert [q.pair_id for q in task.queries] == ["en-ha:1", "en-ha:1", "en-ha:3", "en-ha:3"]
    assert task.relevant["lafand:ha:2"] == {"lafand:en:3", "lafand:ha:3", "lafand:en:4"}
    assert task.relevant["lafand:en:8"] == {"lafand:en:9", "lafand:ha:9"}
    assert sorted(c.id for c in task.candidates) == sorted(
        ["lafand:en:3", "lafand:ha:3", "lafand:en:4", "lafand:en:9", "lafand:ha:9"])
    assert {c.group for c in task.candidates} == {"en-ha:1", "en-ha:3"}
    assert task.notes["documents"] == 3 and task.notes["dropped_documents"] == ["en-ha:2"]
    assert task.notes["empty_sides"] == [{"line": 4, "language": "ha"}]
    r = score_task(task, np.eye(4, 5, dtype=np.float32), np.eye(5, dtype=np.float32))
    assert not np.isnan(r.mo_map)  # own-language body lines are relevant: Mo. is defined


def test_header_may_name_the_languages(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", "english\tyoruba\n\nA\tB\nC\tD\n")
    (pivot, x), docs = read_documents(path)
    assert (pivot, x) == ("en", "yo") and docs == [[(3, "A", "B"), (4, "C", "D")]]


@pytest.mark.parametrize(("content", "message"), [
    ("eng\thau\nHeadline\tKanu\nBody\tJiki\textra\n", r"t\.tsv: line 3: expected 2 tab-separated fields \(eng, hau\), got 3"),
    ("eng\thau\nHeadline\tKanu\nno tab here\n", r"t\.tsv: line 3: expected 2 tab-separated fields"),
    ("eng\thau\nA\tB\nC\tD\n\n\tKanu\nE\tF\n", r"t\.tsv: line 5: empty eng headline"),
    ("eng\thau\nA\tB\n\nKanu\t \nE\tF\n", r"t\.tsv: line 4: empty hau headline"),
    ("hau\teng\nA\tB\n", r"t\.tsv: line 1: expected a header naming the pivot"),
    ("A sentence\tJimla\n", r"t\.tsv: line 1: expected a header"),
    ("eng\thau\n\n", r"t\.tsv: a header but no sentence"),
])
def test_malformed_document_files_name_file_and_line(tmp_path, content, message):
    with pytest.raises(DataFormatError, match=message):
        load_lafand_documents({"ha": write_tsv(tmp_path / "t.tsv", content)}, "t")


def test_only_headlines_is_an_empty_selection(tmp_path):
    with pytest.raises(EmptySelectionError, match="only a headline"):
        load_lafand_documents({"ha": write_tsv(tmp_path / "t.tsv", "eng\thau\nA\tB\n\nC\tD\n")}, "t")


# ----------------------------------------------------------------------------- registry


def test_registry_one_pair_per_task(tmp_path, offline):
    data = tmp_path / "data"
    write_json(data / "lafand-mt/data/json_files/en-hau/test.json", [("One.", "Daya."), ("Two.", "Biyu.")])
    for langs in ("en,ha", "hau", ["ha", "eng"]):
        task = load_task("lafand-sentences", data_dir=data, languages=langs)
        assert task.query_languages == ["en", "ha"] and len(task.queries) == 4
    for langs, message in ((None, "holds one of .* none was chosen"), ("ha,ig", "got ha, ig"),
                           ("en", "only names pivot languages")):
        with pytest.raises(EmptySelectionError, match=message):
            load_task("lafand-sentences", data_dir=data, languages=langs)
    with pytest.raises(UnknownLanguageError, match="ha is paired with en, not fr"):
        load_task("lafand-sentences", data_dir=data, languages="fr,ha")
    with pytest.raises(UnknownLanguageError, match="de.*not present"):
        load_task("lafand-sentences", data_dir=data, languages="de")


def test_registered_pairs_and_pinned_urls():
    s, d = get_spec("lafand-sentences"), get_spec("lafand-documents")
    assert len(s.languages) == 21 and s.pivot_languages == ("en", "fr")
    assert d.languages == ("ee", "fon", "ha", "ny", "pcm", "rw", "sn", "sw", "xh", "yo")
    assert s.file_for("tw").url == ("https://raw.githubusercontent.com/masakhane-io/lafand-mt/"
                                    "d441f8b063d63e95eafb72e84317359e27abf95e/data/json_files/en-twi/test.json")
    assert d.file_for("ee").path == "lafand-mt/data/doc_level_tsv/fra-ewe/test.tsv"
    assert all(f.pinned for f in (*s.files, *d.files))


# ----------------------------------------------------------------------------- real data

# test documents per pair (lafand-mt/README.md); eng-yor: the README's 47 counts the blank line right
# after the header as an (empty) document; the file holds 46
TEST_DOCUMENTS = {"ha": 43, "rw": 53, "ny": 74, "pcm": 80, "sn": 52, "sw": 40, "xh": 49, "yo": 46,
                  "ee": 650, "fon": 100}


@pytest.fixture(scope="module")
def lafand_data(shared_data):
    if not (shared_data / "lafand-mt").is_dir():
        pytest.skip(f"lafand-mt/ absent from {shared_data}: set POLYIR_DATA_DIR to a folder holding it")
    return shared_data


@pytest.mark.integration
def test_real_sentence_pairs(lafand_data, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: pytest.fail("no download"))
    sizes = {}
    for lang in get_spec("lafand-sentences").languages:
        resolve_files("lafand-sentences", data_dir=lafand_data, languages=lang, verify=True)
        task = load_task("lafand-sentences", data_dir=lafand_data, languages=lang)
        sizes[lang] = len(task.queries) // 2
        assert len(task.candidates) == len(task.queries) and len(task.query_languages) == 2
    assert min(sizes.values()) == 998 and max(sizes.values()) == 1835  # README: test 998-1,835 pairs
    assert sizes["sw"] == 1835 and sizes["zu"] == 998


@pytest.mark.integration
def test_real_documents(lafand_data, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: pytest.fail("no download"))
    for lang, n in TEST_DOCUMENTS.items():
        resolve_files("lafand-documents", data_dir=lafand_data, languages=lang, verify=True)
        task = load_task("lafand-documents", data_dir=lafand_data, languages=lang)
        assert task.notes["documents"] == n, lang
        used = task.notes["documents_used"]
        assert len(task.queries) == 2 * used and used == n - len(task.notes["dropped_documents"])
    hau = load_task("lafand-documents", data_dir=lafand_data, languages="en,ha")
    assert len(hau.candidates) + len(hau.queries) + len(hau.notes["empty_sides"]) == 2 * 1929  # 1,930 lines - header
    assert [e["line"] for e in hau.notes["empty_sides"]] == [487, 1001, 1570]
