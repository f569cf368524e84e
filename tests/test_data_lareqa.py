"""LAReQA reader: relevance, break repair, duplicates, error messages, and the real XQuAD-R/MLQA-R."""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from polyir.data.lareqa import load_lareqa_corpus, load_lareqa_task
from polyir.errors import DataFormatError, EmptySelectionError, UnknownLanguageError
from polyir.paths import shared_data_dir


def para(sentences: list[str], qas: list[tuple[str, str, int]], sep: str = " ",
         breaks: list[list[int]] | None = None, context: str | None = None) -> dict[str, Any]:
    """A paragraph from its sentences; qas are (id, question, answer_start)."""
    ctx = context if context is not None else sep.join(sentences)
    if breaks is None:
        breaks, pos = [], 0
        for s in sentences:
            start = ctx.index(s, pos)
            breaks.append([start, start + len(s)])
            pos = start + len(s)
    return {
        "context": ctx,
        "sentences": sentences,
        "sentence_breaks": breaks,
        "qas": [
            {"id": qid, "question": q, "answers": [{"answer_start": a, "text": ctx[a:a + 3]}]}
            for qid, q, a in qas
        ],
    }


def squad(*articles: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"version": "1.1", "data": [{"title": t, "paragraphs": ps} for t, ps in articles]}


def write(tmp_path: Path, lang: str, doc: dict[str, Any] | str) -> Path:
    path = tmp_path / f"{lang}.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False),
                    encoding="utf-8")
    return path


@pytest.fixture()
def parallel(tmp_path: Path) -> dict[str, Path]:
    """Two articles in en/de/es; q2 lacks es (like MLQA-R ids missing in some languages)."""
    en = squad(
        ("Cats", [para(["Cats purr.", "They sleep a lot.", "Dogs bark."],
                       [("q1", "Do cats sleep?", 11), ("q2", "Who barks?", 29)])]),
        ("Sun", [para(["The sun is hot.", "It is a star."], [("q3", "What is the sun?", 16)])]),
    )
    de = squad(
        ("Cats", [para(["Katzen schnurren.", "Sie schlafen viel.", "Hunde bellen."],
                       [("q1", "Schlafen Katzen?", 18), ("q2", "Wer bellt?", 37)])]),
        ("Sun", [para(["Die Sonne ist heiss.", "Sie ist ein Stern."],
                      [("q3", "Was ist die Sonne?", 21)])]),
    )
    es = squad(
        ("Cats", [para(["Los gatos ronronean.", "Duermen mucho."], [("q1", "Duermen?", 21)])]),
        ("Sun", [para(["El sol quema.", "Es una estrella."], [("q3", "Que es el sol?", 14)])]),
    )
    return {lang: write(tmp_path, lang, doc) for lang, doc in (("en", en), ("de", de), ("es", es))}


# ----------------------------------------------------------------------------- relevance


def test_relevance_spans_languages_and_follows_question_ids(parallel: dict[str, Path]) -> None:
    task = load_lareqa_task(parallel, "toy")
    assert len(task.queries) == 3 + 3 + 2
    assert len(task.candidates) == 5 + 5 + 4
    assert task.relevant["en:q1"] == {"en:0:0:1", "de:0:0:1", "es:0:0:1"}
    assert task.relevant["de:q1"] == task.relevant["en:q1"] == task.relevant["es:q1"]
    # q2 exists in en and de only: 2 relevant candidates, none Spanish
    assert task.relevant["en:q2"] == {"en:0:0:2", "de:0:0:2"}
    assert task.relevant["en:q3"] == {"en:1:0:1", "de:1:0:1", "es:1:0:1"}
    q = next(q for q in task.queries if q.id == "de:q3")
    assert (q.language, q.pair_id, q.text) == ("de", "q3", "Was ist die Sonne?")
    c = next(c for c in task.candidates if c.id == "es:1:0:1")
    assert c.text == "Es una estrella." and c.group == "es:1:0"
    assert c.context == "El sol quema. Es una estrella."
    ids = [c.id for c in task.candidates]
    assert len(ids) == len(set(ids))


def test_language_selection_shrinks_queries_and_pool(parallel: dict[str, Path]) -> None:
    task = load_lareqa_task(parallel, "toy", languages=["de", "es"])
    assert task.query_languages == ["de", "es"] and task.candidate_languages == ["de", "es"]
    assert task.relevant["de:q1"] == {"de:0:0:1", "es:0:0:1"}
    assert task.relevant["de:q2"] == {"de:0:0:2"}
    task = load_lareqa_task(parallel, "toy", languages="en")
    assert {len(r) for r in task.relevant.values()} == {1}


def test_answer_at_sentence_end_boundary_is_half_open(tmp_path: Path) -> None:
    # "Cats purr." is [0, 10): offset 10 is the space (outside), 11 is the next sentence
    doc = squad(("A", [para(["Cats purr.", "They sleep."], [("q1", "?", 9), ("q2", "?", 11)])]))
    task = load_lareqa_task({"en": write(tmp_path, "en", doc)}, "t")
    assert task.relevant["en:q1"] == {"en:0:0:0"}
    assert task.relevant["en:q2"] == {"en:0:0:1"}


def test_corpus_pairs_hold_question_answer_sentence_and_context(parallel: dict[str, Path]) -> None:
    corpus = load_lareqa_corpus(parallel, "toy")
    assert [p.pair_id for p in corpus.pairs] == ["q1", "q2", "q3"]
    q2 = corpus.pairs[1]
    assert q2.languages == ["de", "en"]
    assert q2.entries["de"].query == "Wer bellt?"
    assert q2.entries["de"].positive == "Hunde bellen."
    assert q2.entries["de"].context == "Katzen schnurren. Sie schlafen viel. Hunde bellen."
    # hard negatives: the paragraph's other sentences, nearest to the answer first
    assert q2.entries["de"].negatives == ("Sie schlafen viel.", "Katzen schnurren.")
    assert corpus.pairs[0].entries["en"].negatives == ("Cats purr.", "Dogs bark.")
    assert corpus.pairs[2].entries["es"].negatives == ("El sol quema.",)
    assert corpus.language_sizes() == {"de": 3, "en": 3, "es": 2}
    assert load_lareqa_corpus(parallel, "toy", languages=["es"]).language_sizes() == {"es": 2}


# ----------------------------------------------------------------------------- quirks


def test_shifted_breaks_are_realigned_and_recorded(tmp_path: Path) -> None:
    """The XQuAD-R tr quirk in miniature: the context holds 3 characters where the sentence
    string holds 1, and the breaks were computed on the sentence strings."""
    sentences = ["Gauge is 4 ft 8 1/2 in here.", "Two tourist lines run on it.", "The end."]
    context = "Gauge is 4 ft 8 1XY/2 in here. Two tourist lines run on it. The end."
    breaks = [[0, 28], [29, 57], [58, 66]]  # right for " ".join(sentences), 2 short for context
    doc = squad(("Rail", [para(sentences, [("q1", "Gauge?", 26), ("q2", "Tourist?", 58),
                                           ("q3", "End?", 61)],
                               breaks=breaks, context=context)]))
    path = write(tmp_path, "tr", doc)
    task = load_lareqa_task({"tr": path}, "t")
    repairs = task.notes["break_repairs"]
    assert [(r["sentence"], r["old"], r["new"], r["shift"]) for r in repairs] == [
        (0, [0, 28], [0, 30], [0, 2]),
        (1, [29, 57], [31, 59], [2, 2]),
        (2, [58, 66], [60, 68], [2, 2]),
    ]
    assert [r["text_matches_context"] for r in repairs] == [False, True, True]
    assert repairs[0]["file"] == str(path) and repairs[0]["paragraph"] == 0
    # answer_start 58 is in sentence 1 only after the repair ([31, 59)); unrepaired it would be 2
    assert task.relevant["tr:q2"] == {"tr:0:0:1"}
    assert task.relevant["tr:q1"] == {"tr:0:0:0"}
    assert task.relevant["tr:q3"] == {"tr:0:0:2"}
    # candidate texts are the `sentences` strings
    assert [c.text for c in task.candidates] == sentences


def test_break_beyond_repair_window_is_an_error(tmp_path: Path) -> None:
    sentences = ["Alpha beta gamma.", "Delta epsilon zeta."]
    context = "Alpha beta gamma." + " " * 20 + "Delta epsilon zeta."
    doc = squad(("Greek", [para(sentences, [("q1", "?", 0)], breaks=[[0, 17], [18, 37]],
                                context=context)]))
    path = write(tmp_path, "el", doc)
    with pytest.raises(DataFormatError) as err:
        load_lareqa_task({"el": path}, "t")
    msg = str(err.value)
    assert str(path) in msg and "article 0 ('Greek')" in msg and "paragraph 0" in msg
    assert "sentence 1" in msg and "[18, 37]" in msg


def test_duplicates_stay_in_pool_and_only_same_paragraph_copies_are_relevant(
        tmp_path: Path) -> None:
    doc = squad(
        ("A", [para(["I.", "Rome fell.", "I."], [("q1", "?", 0)])]),  # copy in the same paragraph
        ("B", [para(["Start.", "I.", "Done."], [("q2", "?", 0)])]),   # copy elsewhere
    )
    task = load_lareqa_task({"en": write(tmp_path, "en", doc)}, "t")
    assert len(task.candidates) == 6  # nothing deduplicated
    assert task.relevant["en:q1"] == {"en:0:0:0", "en:0:0:2"}  # same paragraph: both, as LAReQA
    assert "en:1:0:1" not in task.relevant["en:q1"]
    dup = task.notes["duplicates"]
    assert dup["pool_extra_copies"] == 2 and dup["repeated_texts"] == 1
    assert dup["within_language_extra_copies"] == {"en": 2}
    assert dup["nonrelevant_copies_of_answers"] == 1  # "I." in article B for q1
    assert task.notes["answer_copies_in_paragraph"] == 1


def test_cross_language_duplicates_are_counted(tmp_path: Path) -> None:
    en = squad(("A", [para(["Smith, J.", "Text."], [("q1", "?", 0)])]))
    de = squad(("A", [para(["Smith, J.", "Text auf Deutsch."], [("q1", "?", 0)])]))
    files = {"en": write(tmp_path, "en", en), "de": write(tmp_path, "de", de)}
    dup = load_lareqa_task(files, "t").notes["duplicates"]
    assert dup["cross_language_extra_copies"] == 1
    assert dup["within_language_extra_copies"] == {"de": 0, "en": 0}
    assert dup["nonrelevant_copies_of_answers"] == 0  # both copies are relevant to q1


# ----------------------------------------------------------------------------- broken input


def test_truncated_json_names_file_and_position(tmp_path: Path) -> None:
    text = json.dumps(squad(("A", [para(["One.", "Two."], [("q1", "?", 0)])])))
    path = write(tmp_path, "en", text[: len(text) // 2])
    with pytest.raises(DataFormatError) as err:
        load_lareqa_task({"en": path}, "t")
    assert str(path) in str(err.value) and "not valid JSON" in str(err.value)
    assert "line 1" in str(err.value)


@pytest.mark.parametrize(
    ("where", "key", "expect"),
    [
        ("paragraph", "sentences", "paragraph 0: missing key 'sentences'"),
        ("paragraph", "sentence_breaks", "paragraph 0: missing key 'sentence_breaks'"),
        ("paragraph", "context", "paragraph 0: missing key 'context'"),
        ("question", "answers", "question 'q7': missing key 'answers'"),
        ("article", "paragraphs", "article 0 ('A'): missing key 'paragraphs'"),
    ],
)
def test_missing_key_names_file_and_record(tmp_path: Path, where: str, key: str,
                                           expect: str) -> None:
    doc = squad(("A", [para(["One.", "Two."], [("q7", "?", 0)])]))
    target = {"article": doc["data"][0], "paragraph": doc["data"][0]["paragraphs"][0],
              "question": doc["data"][0]["paragraphs"][0]["qas"][0]}[where]
    del target[key]
    path = write(tmp_path, "en", doc)
    with pytest.raises(DataFormatError) as err:
        load_lareqa_task({"en": path}, "t")
    assert str(path) in str(err.value) and expect in str(err.value)


def test_answer_offset_outside_every_sentence(tmp_path: Path) -> None:
    doc = squad(("A", [para(["One.", "Two."], [("q1", "?", 0), ("q9", "?", 4)])]))  # 4 = space
    path = write(tmp_path, "en", doc)
    with pytest.raises(DataFormatError) as err:
        load_lareqa_task({"en": path}, "t")
    msg = str(err.value)
    assert str(path) in msg and "question 'q9'" in msg and "paragraph 0" in msg
    assert "answer_start 4 lies outside every sentence" in msg


def test_breaks_and_sentences_count_mismatch(tmp_path: Path) -> None:
    doc = squad(("A", []), ("B", [para(["One.", "Two."], [("q1", "?", 0)])]))
    doc["data"][1]["paragraphs"][0]["sentence_breaks"].append([9, 9])
    path = write(tmp_path, "en", doc)
    with pytest.raises(DataFormatError) as err:
        load_lareqa_task({"en": path}, "t")
    msg = str(err.value)
    assert str(path) in msg and "article 1 ('B'), paragraph 0" in msg
    assert "3 sentence_breaks but 2 sentences" in msg


def test_duplicate_question_id_in_one_file(tmp_path: Path) -> None:
    doc = squad(("A", [para(["One.", "Two."], [("q1", "?", 0), ("q1", "??", 5)])]))
    path = write(tmp_path, "en", doc)
    with pytest.raises(DataFormatError, match="duplicate question id") as err:
        load_lareqa_task({"en": path}, "t")
    assert str(path) in str(err.value)


def test_unknown_language_code(parallel: dict[str, Path]) -> None:
    with pytest.raises(UnknownLanguageError, match="xx"):
        load_lareqa_task(parallel, "toy", languages=["en", "xx"])
    with pytest.raises(UnknownLanguageError, match="fr.*not present.*de, en, es"):
        load_lareqa_task(parallel, "toy", languages=["fr"])  # a real code the files lack
    bad = dict(parallel)
    bad["zz"] = bad.pop("es")
    with pytest.raises(UnknownLanguageError, match="zz"):
        load_lareqa_task(bad, "toy")


def test_empty_selection(tmp_path: Path) -> None:
    with pytest.raises(EmptySelectionError):
        load_lareqa_task({}, "nothing")
    path = write(tmp_path, "en", squad(("A", [para(["One."], [])])))  # no question at all
    with pytest.raises(EmptySelectionError, match="no question"):
        load_lareqa_task({"en": path}, "t")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot read") as err:
        load_lareqa_task({"en": tmp_path / "en.json"}, "t")
    assert str(tmp_path / "en.json") in str(err.value)


# ----------------------------------------------------------------------------- real files

REAL = shared_data_dir()
needs_data = pytest.mark.skipif(
    REAL is None or not (REAL / "xquad-r").is_dir(),
    reason="shared data folder not found (set POLYIR_DATA_DIR to a folder holding xquad-r/, mlqa-r/)",
)
XQUAD_LANGS = "ar de el en es hi ru th tr vi zh".split()
MLQA_LANGS = "ar de en es hi vi zh".split()


@pytest.mark.integration
@needs_data
def test_real_xquad_r_loads_fast_with_11_relevant_each() -> None:
    assert REAL is not None
    files = {lang: REAL / "xquad-r" / f"{lang}.json" for lang in XQUAD_LANGS}
    start = time.perf_counter()
    task = load_lareqa_task(files, "xquad-r")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"loading took {elapsed:.2f} s"
    assert len(task.queries) == 13_090
    assert len(task.candidates) == 13_014  # the LAReQA README's per-language counts summed
    per_lang = Counter(c.language for c in task.candidates)
    assert per_lang["ar"] == 1222 and per_lang["th"] == 852 and per_lang["en"] == 1180
    assert {len(r) for r in task.relevant.values()} == {11}
    for q in task.queries[:50]:
        assert sorted(cid.split(":")[0] for cid in task.relevant[q.id]) == sorted(XQUAD_LANGS)
    repairs = task.notes["break_repairs"]
    assert [(r["language"], r["title"], r["paragraph"], r["sentence"], r["old"], r["new"])
            for r in repairs] == [
        ("tr", "Victoria_(Australia)", 3, 2, [265, 426], [265, 428]),
        ("tr", "Victoria_(Australia)", 3, 3, [427, 604], [429, 606]),
    ]
    assert task.notes["duplicates"]["pool_extra_copies"] == 14
    assert task.notes["duplicates"]["nonrelevant_copies_of_answers"] == 1


@pytest.mark.integration
@needs_data
def test_real_mlqa_r_has_2_to_4_relevant() -> None:
    assert REAL is not None
    files = {lang: REAL / "mlqa-r" / f"{lang}.json" for lang in MLQA_LANGS}
    task = load_lareqa_task(files, "mlqa-r")
    assert len(task.queries) == 4_199
    assert len(task.candidates) == 20_534
    sizes = Counter(len(r) for r in task.relevant.values())
    assert set(sizes) == {2, 3, 4}
    # ids by language count (README): 820 ids in 4 languages, 263 in 3, 65 in 2
    assert sizes == {4: 820 * 4, 3: 263 * 3, 2: 65 * 2}
    assert task.notes["break_repairs"] == []
    corpus = load_lareqa_corpus(files, "mlqa-r")
    assert len(corpus) == 1148 and corpus.language_sizes()["en"] == 1148


def _mutated_copy(tmp_path: Path, mutate: Any) -> dict[str, Path]:
    assert REAL is not None
    doc = json.loads((REAL / "xquad-r" / "tr.json").read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    mutate(doc)
    return {"tr": write(tmp_path, "tr", doc)}


@pytest.mark.integration
@needs_data
def test_real_file_with_broken_offset_names_the_question(tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        qa = doc["data"][5]["paragraphs"][1]["qas"][0]
        qa["answers"][0]["answer_start"] = 10**6
        doc["_qid"] = qa["id"]

    files = _mutated_copy(tmp_path, mutate)
    qid = json.loads(files["tr"].read_text(encoding="utf-8"))["_qid"]
    with pytest.raises(DataFormatError) as err:
        load_lareqa_task(files, "t")
    assert f"question {qid!r}" in str(err.value) and "article 5" in str(err.value)
