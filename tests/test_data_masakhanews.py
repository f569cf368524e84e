"""MasakhaNEWS task: a headline finds its article, per language (Mo.) and in a mixed pool (Mul.)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from polyir.data import registry
from polyir.data.masakhanews import load_masakhanews, read_articles
from polyir.data.registry import get_spec, load_task, resolve_files
from polyir.data.split import split_by_document
from polyir.errors import DataFormatError
from polyir.evaluation.run import score_task

HEADER = "category\theadline\ttext\turl\n"


def write(path: Path, rows: list[tuple[str, str]], raw: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = raw if raw is not None else "".join(f"politics\t{h}\t{t}\t/news/{i}\n" for i, (h, t) in enumerate(rows))
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_headlines_find_their_articles_in_every_language(tmp_path):
    files = {
        "ha": write(tmp_path / "hau.tsv", [("Labari daya", "Jiki na daya."), ("Labari biyu", "Jiki na biyu.")]),
        "en": write(tmp_path / "eng.tsv", [("Story one", "Body one.")]),
    }
    task = load_masakhanews(files, "masakhanews")
    assert [q.id for q in task.queries] == ["masakhanews:en:1", "masakhanews:ha:1", "masakhanews:ha:2"]  # round-robin
    assert task.relevant["masakhanews:ha:2"] == {"masakhanews:ha:2"}
    q = next(q for q in task.queries if q.id == "masakhanews:ha:2")
    assert (q.language, q.text) == ("ha", "Labari biyu")
    c = next(c for c in task.candidates if c.id == "masakhanews:ha:2")
    assert (c.language, c.text, c.group) == ("ha", "Jiki na biyu.", "ha:2")
    assert task.notes["rows"] == {"en": 1, "ha": 2}
    # identity embeddings (query i == candidate i): per-language Mo. and the mixed pool are defined,
    # Cr. is not (no relevant article in another language)
    assert [c.id for c in task.candidates] == ["masakhanews:en:1", "masakhanews:ha:1", "masakhanews:ha:2"]
    r = score_task(task, np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32))
    assert r.mo_map == pytest.approx(1.0) and r.mul_map == pytest.approx(1.0)
    assert math.isnan(r.cr_map) and r.cr_pairs == 0


def test_articles_of_another_language_crowding_in_lower_mul_only():
    """Mul. sees the other language's article, Mo. does not: the bias the mixed pool shows."""
    from polyir.data.types import Candidate, Query, RetrievalTask

    task = RetrievalTask("t", [Query("h", "ha", "q", "p")],
                         [Candidate("h", "ha", "a"), Candidate("e", "en", "b")], {"h": frozenset({"h"})})
    r = score_task(task, np.array([[1.0, 0.0]], np.float32), np.array([[0.5, 0.0], [0.9, 0.0]], np.float32))
    assert r.mo_map == pytest.approx(1.0) and r.mul_map == pytest.approx(0.5)


def test_repeated_headlines_or_articles_are_one_cluster(tmp_path):
    rows = [("Same", "Body A."), ("Other", "Body B."), ("Same", "Body C."), ("Third", "Body B.")]
    task = load_masakhanews({"am": write(tmp_path / "amh.tsv", rows)}, "t")
    assert task.relevant["masakhanews:am:1"] == task.relevant["masakhanews:am:3"] == {
        "masakhanews:am:1", "masakhanews:am:3"}
    assert task.relevant["masakhanews:am:4"] == {"masakhanews:am:2", "masakhanews:am:4"}
    assert {c.id: c.group for c in task.candidates}["masakhanews:am:4"] == "am:2"
    assert task.notes["merged_rows"] == {"am": 4}
    a, b = split_by_document(task, 0.5, seed=0)
    assert len(a.queries) + len(b.queries) == 4


def test_quoted_multi_line_fields_and_line_numbers(tmp_path):
    raw = 'sports\tOne\t"Body\nover two lines"\t/a\nsports\tTwo\tBody two\t/b\n'
    path = write(tmp_path / "eng.tsv", [], raw=raw)
    assert read_articles(path) == [(2, "One", "Body\nover two lines"), (4, "Two", "Body two")]


@pytest.mark.parametrize(("raw", "message"), [
    ("sports\tOne\tBody\t/a\nsports\tTwo\tBody two\n", r"eng\.tsv: line 3: 3 tab-separated fields, the header has 4"),
    ('sports\tOne\t"Body\nover two"\t/a\nsports\t \tBody\t/b\n', r"eng\.tsv: line 4: empty headline"),
    ("sports\tOne\t\t/a\n", r"eng\.tsv: line 2: empty text \(article body\)"),
    ("", r"eng\.tsv: a header but no article"),
])
def test_malformed_rows_name_file_and_line(tmp_path, raw, message):
    path = write(tmp_path / "eng.tsv", [], raw=raw)
    with pytest.raises(DataFormatError, match=message):
        load_masakhanews({"en": path}, "masakhanews")


def test_header_without_the_columns_is_an_error(tmp_path):
    path = tmp_path / "eng.tsv"
    path.write_text("label\ttitle\tbody\nx\ty\tz\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"eng\.tsv: line 1: the header lacks category, headline, text, url"):
        load_masakhanews({"en": path}, "t")


def test_registered_languages_and_files():
    spec = get_spec("masakhanews")
    assert spec.languages == tuple(sorted(
        "am en fr ha ig lg ln om pcm rn sn so sw ti xh yo".split()))
    assert spec.file_for("rn").path == "masakhane-news/data/run/test.tsv"
    assert spec.file_for("rn").url.endswith("/819be052e79e0a600e0ed4a7356594681cb5c4f3/data/run/test.tsv")


# ----------------------------------------------------------------------------- real data

# test rows per language (masakhane-news/README.md)
TEST_ROWS = {"amh": 376, "eng": 948, "fra": 422, "hau": 637, "ibo": 390, "lin": 175, "lug": 223, "orm": 325,
             "pcm": 305, "run": 322, "sna": 369, "som": 294, "swa": 476, "tir": 272, "xho": 297, "yor": 411}


@pytest.mark.integration
def test_real_counts(shared_data, tmp_path, monkeypatch):
    if not (shared_data / "masakhane-news").is_dir():
        pytest.skip(f"masakhane-news/ absent from {shared_data}: set POLYIR_DATA_DIR to a folder holding it")
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: pytest.fail("no download"))
    resolve_files("masakhanews", data_dir=shared_data, verify=True)
    task = load_task("masakhanews", data_dir=shared_data)
    from polyir.languages import canonical_code

    assert task.notes["rows"] == {canonical_code(k): v for k, v in TEST_ROWS.items()}
    assert len(task.queries) == len(task.candidates) == sum(TEST_ROWS.values())
    sub = load_task("masakhanews", data_dir=shared_data, languages="hau,yor,eng")
    assert len(sub.queries) == 637 + 411 + 948 and sub.query_languages == ["en", "ha", "yo"]
    assert len(sub.limit(30).query_languages) == 3  # round-robin: --max-pairs keeps every language
