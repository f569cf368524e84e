"""squad2-fi: the TurkuNLP Finnish SQuAD 2.0 + English back-translation, read from the raw HTML."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyir.data import squad2fi
from polyir.data.registry import get_spec, load_corpus
from polyir.data.squad2fi import read_file, read_pairs
from polyir.errors import DataFormatError

FI_HEADINGS = ("Asiakirjan numero", "Tekstin numero", "Kysymys")
EN_HEADINGS = ("Document number", "Text number", "Question")


def _html(headings: tuple[str, str, str], docs: list[tuple[int, list[tuple[int, str, list[str]]]]]) -> str:
    doc_h, par_h, q_h = headings
    blocks = []
    for d, paragraphs in docs:
        blocks.append(f'<p style="margin-bottom: 0.35cm">\n<u><b>{doc_h} {d}</b></u></p>')
        for m, text, questions in paragraphs:
            blocks.append(f"<p><b>{par_h} {m}</b></p>")
            blocks.append(f'<p>{text.replace("Houston", "<font color=#a9a9a9>Houston</font>")}\n</p>')
            for k, q in enumerate(questions):
                blocks.append(f"<p><b>{q_h} {k}</b></p>")
                blocks.append(f"<p>{q}</p>")
    return "<!DOCTYPE html><html><head><title></title></head><body>" + "\n".join(blocks) + "</body></html>"


FI_DOCS = [
    (0, [(0, "Hän kasvoi Houstonissa.", ["Missä hän kasvoi?", "Kuka hän on?"]),
         (1, "Toinen kappale.", ["Mikä tämä on?"])]),
    (441, [(0, "Viimeinen koulutusasiakirja.", ["Mikä on viimeinen?"])]),
    (442, [(0, "Dev-asiakirja (XQuAD).", ["Ei koskaan luettu?"])]),
]
EN_DOCS = [
    (0, [(0, "She grew up in Houston.", ["Where did she grow up?", "Who is she?"]),
         (1, "Second paragraph.", ["What is this?"])]),
    (441, [(0, "Last training document.", ["Which is last?"])]),
    (442, [(0, "Dev document (XQuAD).", ["Never read?"])]),
]


def _write(root: Path, fi_docs=FI_DOCS, en_docs=EN_DOCS, number: int = 0) -> dict[str, dict[str, Path]]:
    fi = root / squad2fi.fi_path(number)
    en = root / squad2fi.en_path(number)
    for path, headings, docs in ((fi, FI_HEADINGS, fi_docs), (en, EN_HEADINGS, en_docs)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_html(headings, docs), encoding="utf-8")
    return {"fi": {f"{number:03d}": fi}, "en": {f"{number:03d}": en}}


def test_made_up_files_are_read_aligned_and_stop_before_dev(tmp_path: Path) -> None:
    corpus = read_pairs(_write(tmp_path))
    ids = [p.pair_id for p in corpus.pairs]
    assert ids == ["squad2-fi:000:0:0:0", "squad2-fi:000:0:0:1", "squad2-fi:000:0:1:0", "squad2-fi:000:441:0:0"]
    first = corpus.pairs[0].entries
    assert first["fi"].query == "Missä hän kasvoi?" and first["fi"].positive == "Hän kasvoi Houstonissa."
    assert first["en"].query == "Where did she grow up?" and first["en"].positive == "She grew up in Houston."
    assert all("XQuAD" not in e.positive for p in corpus.pairs for e in p.entries.values())


def test_documents_can_be_excluded(tmp_path: Path) -> None:
    corpus = read_pairs(_write(tmp_path), exclude_documents=(441,))
    assert [p.pair_id.split(":")[2] for p in corpus.pairs] == ["0", "0", "0"]


def test_misaligned_files_name_file_document_and_paragraph(tmp_path: Path) -> None:
    en = [(0, [(0, "She grew up in Houston.", ["Where did she grow up?", "Who is she?"]),
               (2, "Second paragraph.", ["What is this?"])]), *EN_DOCS[1:]]
    with pytest.raises(DataFormatError) as err:
        read_pairs(_write(tmp_path, en_docs=en))
    message = str(err.value)
    assert "squad2_000 fi.html" in message and "squad2_000 fi en-US.html" in message
    assert "document 0, paragraph 1" in message and "paragraph 2" in message


def test_a_missing_question_is_a_count_mismatch(tmp_path: Path) -> None:
    en = [(0, [(0, "She grew up in Houston.", ["Where did she grow up?"]),
               (1, "Second paragraph.", ["What is this?"])]), *EN_DOCS[1:]]
    with pytest.raises(DataFormatError, match="not aligned at record 2"):
        read_pairs(_write(tmp_path, en_docs=en))


def test_heading_without_text_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.html"
    path.write_text("<html><body><p><b>Document number 3</b></p><p><b>Text number 0</b></p>"
                    "<p><b>Question 0</b></p><p>Why?</p></body></html>", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"x.html: document 3, paragraph 0: paragraph 0 has no text"):
        read_file(path)


def test_registered_files_hold_only_training_documents() -> None:
    spec = get_spec("squad2-fi")
    names = {Path(f.path).name for f in spec.files}
    assert len(spec.files) == 52 and all(f.sha256 and f.size for f in spec.files)
    assert "squad2_026 fi.html" not in names and "squad2_025 fi en-US.html" in names
    assert spec.files[0].url.endswith("squad2-fi-raw/html/squad2_000%20fi.html")
    assert "6034cec31c" in spec.source and "Apache-2.0" in spec.license


@pytest.fixture(scope="module")
def real_corpus(shared_data: Path):
    if not (shared_data / squad2fi.FI_DIR).is_dir():
        pytest.skip(f"{shared_data / squad2fi.FOLDER} absent")
    return load_corpus("squad2-fi", data_dir=shared_data, download=False)


def test_real_counts_equal_the_folder_readme(real_corpus) -> None:
    assert len(real_corpus) == 130_319
    paragraphs = {tuple(p.pair_id.split(":")[1:4]) for p in real_corpus.pairs}
    assert len(paragraphs) == 19_035
    assert max(int(p.pair_id.split(":")[2]) for p in real_corpus.pairs) == 441  # no dev document
    assert real_corpus.language_sizes() == {"en": 130_319, "fi": 130_319}


def test_real_slice_is_aligned(real_corpus) -> None:
    first = real_corpus.pairs[0].entries
    assert first["fi"].positive.startswith("Beyoncé Giselle Knowles-Carter")
    assert first["en"].positive.startswith("Beyoncé Giselle Knowles-Carter")
    assert first["fi"].query == "Milloin Beyoncesta alkoi tulla suosittu?"
    assert first["en"].query == "When did Beyonce start to become popular?"
    for pair in real_corpus.pairs[1000:1200]:  # a slice: same paragraph in both languages, questions differ
        fi, en = pair.entries["fi"], pair.entries["en"]
        assert 0.4 < len(fi.positive) / len(en.positive) < 2.5
        assert fi.query != en.query


def test_real_no_mlqa_drops_documents_293_and_297(shared_data: Path, real_corpus) -> None:
    corpus = load_corpus("squad2-fi-no-mlqa", data_dir=shared_data, download=False)
    docs = {p.pair_id.split(":")[2] for p in corpus.pairs}
    assert "293" not in docs and "297" not in docs and "292" in docs
    dropped = sum(1 for p in real_corpus.pairs if p.pair_id.split(":")[2] in ("293", "297"))
    assert len(corpus) == len(real_corpus) - dropped and dropped > 0
