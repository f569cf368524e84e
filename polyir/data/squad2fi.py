"""``squad2-fi``: TurkuNLP's SQuAD 2.0 in Finnish with its English back-translation, from the raw HTML.

Files (``<data_dir>/squad2-fi/``): ``squad2-fi-raw/html/squad2_NNN fi.html`` (Finnish) and
``squad2-en-translated-raw/html/squad2_NNN fi en-US.html`` (English back-translation), 28 of each.
Each is a LibreOffice HTML export: a sequence of ``<p>`` blocks where a bold heading
``Asiakirjan numero N`` / ``Document number N`` opens document N, ``Tekstin numero M`` /
``Text number M`` opens paragraph M (its text is the next ``<p>``), and ``Kysymys K`` / ``Question K``
opens one question (the next ``<p>``).

The unit is (question, its paragraph), one training pair per question: the query is the question,
the positive its paragraph, ``fi`` and ``en`` aligned **by position**. Every record's (file, document,
paragraph, question) must be the same in both languages; any difference is a ``DataFormatError``
naming the file, document and paragraph. Pair ids are ``squad2-fi:<file>:<document>:<paragraph>:<question>``.

Documents 0-441 are SQuAD 2.0 train; documents >= 442 are SQuAD 2.0 dev, the source of XQuAD, and are
never returned: the registered dataset lists only the 26 files that hold training documents, and the
reader stops a file at its first document >= 442. ``exclude_documents`` drops more (documents 293 and
297 share paragraphs with MLQA-R: ``squad2-fi-no-mlqa`` drops them).
Answer spans are not recoverable from the HTML, and SQuAD 2.0's unanswerable questions cannot be told
apart from answerable ones: both are kept (their paragraph is still the passage they were asked about).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

import lxml.etree
import lxml.html

from polyir.atomic import write_bytes
from polyir.data.sources import sha256_of
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError
from polyir.paths import cache_dir

FOLDER = "squad2-fi"
FI_DIR = f"{FOLDER}/squad2-fi-raw/html"
EN_DIR = f"{FOLDER}/squad2-en-translated-raw/html"
FIRST_DEV_DOCUMENT = 442  # documents from here on are SQuAD 2.0 dev (XQuAD's source): never read
TRAIN_FILES = 26  # squad2_000 .. squad2_025 hold every training document (025 also holds dev 442-451)
MLQA_OVERLAP = (293, 297)  # documents sharing paragraphs with MLQA-R
ID_PREFIX = "squad2-fi:"
CACHE_VERSION = 1  # bump when read_file's output changes

_HEADING = re.compile(
    r"(?P<kind>Asiakirjan numero|Asiakirja numero|Document number|Tekstin numero|Teksti numero|Text number"
    r"|Kysymys|Question) (?P<n>\d+)"
)
_KIND = {"Asiakirjan numero": "document", "Asiakirja numero": "document", "Document number": "document",
         "Tekstin numero": "paragraph", "Teksti numero": "paragraph", "Text number": "paragraph",
         "Kysymys": "question", "Question": "question"}


_PARSER = lxml.html.HTMLParser(encoding="utf-8")  # the exports are UTF-8 (and say so); never guess


def fi_path(number: int) -> str:
    """Path (under the data folder) of Finnish file ``number``."""
    return f"{FI_DIR}/squad2_{number:03d} fi.html"


def en_path(number: int) -> str:
    """Path (under the data folder) of the English back-translation of file ``number``."""
    return f"{EN_DIR}/squad2_{number:03d} fi en-US.html"


@dataclass(frozen=True)
class Record:
    """One question with its paragraph, and where it sits in its file."""

    document: int
    paragraph: int
    question: int
    paragraph_text: str
    question_text: str


def _blocks(path: Path) -> Iterator[tuple[str, bool]]:
    """(whitespace-normalised text, is bold heading) of every ``<p>`` of an HTML file."""
    try:
        root = lxml.html.parse(str(path), _PARSER).getroot()
    except (OSError, lxml.etree.ParserError) as exc:
        raise DataFormatError(f"{path}: cannot read as HTML ({exc})") from exc
    if root is None:
        raise DataFormatError(f"{path}: empty HTML file")
    for p in root.iter("p"):
        text = " ".join(p.text_content().split())
        if text:
            yield text, p.find(".//b") is not None


def read_file(path: Path | str, *, stop_at_document: int = FIRST_DEV_DOCUMENT) -> list[Record]:
    """The records of one HTML file, in order, up to (not including) document ``stop_at_document``.

    A paragraph or question heading with no text after it, a question before any paragraph, or
    text where no heading expects it is a ``DataFormatError`` naming the file and position.
    """
    path = Path(path)
    out: list[Record] = []
    document = paragraph = None
    paragraph_text: str | None = None
    expect: tuple[str, int] | None = None  # heading whose text is the next block
    for text, bold in _blocks(path):
        m = _HEADING.fullmatch(text) if bold else None
        where = f"{path}: document {document}, paragraph {paragraph}"
        if m is not None:
            if expect is not None:
                raise DataFormatError(f"{where}: {expect[0]} {expect[1]} has no text before {text!r}")
            kind, n = _KIND[m["kind"]], int(m["n"])
            if kind == "document":
                if n >= stop_at_document:
                    break
                document, paragraph, paragraph_text = n, None, None
            elif document is None:
                raise DataFormatError(f"{path}: {text!r} before the first document heading")
            elif kind == "paragraph":
                paragraph, paragraph_text = n, None
                expect = (kind, n)
            else:
                if paragraph_text is None:
                    raise DataFormatError(f"{where}: question {n} before any paragraph text")
                expect = (kind, n)
            continue
        if expect is None:
            raise DataFormatError(f"{where}: text without a heading: {text[:60]!r}")
        kind, n = expect
        expect = None
        if kind == "paragraph":
            paragraph_text = text
        else:
            assert document is not None and paragraph is not None and paragraph_text is not None
            out.append(Record(document, paragraph, n, paragraph_text, text))
    if expect is not None and (document is None or document < stop_at_document):
        raise DataFormatError(f"{path}: the file ends after the {expect[0]} {expect[1]} heading")
    return out


def read_file_cached(path: Path | str) -> list[Record]:
    """:func:`read_file` through a cache of parsed records (parsing all 52 files takes 15 s or more):
    ``cache_dir()/parsed/squad2-fi/<sha256 of the file>-v<CACHE_VERSION>.json.gz``. A changed file has
    another sha256, so it is parsed again; an unreadable cache entry is parsed again and rewritten."""
    path = Path(path)
    target = cache_dir() / "parsed" / FOLDER / f"{sha256_of(path)}-v{CACHE_VERSION}.json.gz"
    try:
        with gzip.open(target, "rt", encoding="utf-8") as fh:
            return [Record(*row) for row in json.load(fh)]
    except (OSError, ValueError, TypeError):
        pass
    records = read_file(path)
    data = gzip.compress(json.dumps([astuple(r) for r in records], ensure_ascii=False).encode("utf-8"), mtime=0)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(target, data)
    except OSError:  # a read-only cache only costs the parse next time
        pass
    return records


def check_aligned(fi: Sequence[Record], en: Sequence[Record], fi_file: Path | str, en_file: Path | str) -> None:
    """Raise ``DataFormatError`` at the first position whose (document, paragraph, question) differs."""
    for i, (a, b) in enumerate(zip(fi, en)):
        if (a.document, a.paragraph, a.question) != (b.document, b.paragraph, b.question):
            raise DataFormatError(
                f"{fi_file} and {en_file} are not aligned at record {i + 1}: fi has document {a.document},"
                f" paragraph {a.paragraph}, question {a.question}; en has document {b.document},"
                f" paragraph {b.paragraph}, question {b.question}"
            )
    if len(fi) != len(en):
        longer, last = (fi_file, fi[len(en)]) if len(fi) > len(en) else (en_file, en[len(fi)])
        raise DataFormatError(
            f"{fi_file} has {len(fi)} questions but {en_file} has {len(en)}; {longer} goes on at document"
            f" {last.document}, paragraph {last.paragraph}, question {last.question}"
        )


def _number(role: str) -> int:
    if not role.isdigit():
        raise DataFormatError(f"squad2-fi: file role {role!r} should be the file number (e.g. 000)")
    return int(role)


def read_pairs(files: Mapping[str, Mapping[str, Path | str]], *,
               exclude_documents: Collection[int] = (), name: str = FOLDER) -> ParallelQACorpus:
    """Parallel (fi, en) training pairs from language -> file number -> path (either language alone
    gives a one-language corpus). Documents >= 442 are never read; ``exclude_documents`` drops more."""
    langs = [lang for lang in ("fi", "en") if lang in files]
    unknown = sorted(set(files) - {"fi", "en"})
    if unknown:
        raise DataFormatError(f"{name}: only fi and en files exist, got {', '.join(unknown)}")
    if not langs:
        raise DatasetNotFoundError(f"{name}: no file given")
    numbers = sorted({_number(r) for lang in langs for r in files[lang]})
    dropped = set(exclude_documents)
    pairs: list[ParallelPair] = []
    seen: dict[str, str] = {}
    for number in numbers:
        paths = {lang: files[lang].get(f"{number:03d}") for lang in langs}
        absent = [lang for lang, p in paths.items() if p is None]
        if absent:
            raise DatasetNotFoundError(f"{name}: file {number:03d} has no {' or '.join(absent)} copy")
        records = {lang: read_file_cached(Path(p)) for lang, p in paths.items()}  # type: ignore[arg-type]
        if len(langs) == 2:
            check_aligned(records["fi"], records["en"], paths["fi"], paths["en"])  # type: ignore[arg-type]
        for i, rec in enumerate(records[langs[0]]):
            if rec.document in dropped:
                continue
            pid = f"{ID_PREFIX}{number:03d}:{rec.document}:{rec.paragraph}:{rec.question}"
            if pid in seen:
                raise DataFormatError(f"{paths[langs[0]]}: document {rec.document}, paragraph {rec.paragraph}:"
                                      f" question {rec.question} appears twice")
            seen[pid] = pid
            entries = {lang: QAEntry(query=records[lang][i].question_text,
                                     positive=records[lang][i].paragraph_text) for lang in langs}
            pairs.append(ParallelPair(pair_id=pid, entries=entries))
    if not pairs:
        raise EmptySelectionError(f"{name}: no training question in the files given")
    return ParallelQACorpus(name=name, pairs=pairs)


def load_squad2fi_corpus(files: Mapping[str, Mapping[str, Path | str]], name: str,
                         languages: Sequence[str] | str | None = None) -> ParallelQACorpus:
    """Registry loader of ``squad2-fi``: every training document."""
    return read_pairs(files, name=name)


def load_squad2fi_no_mlqa_corpus(files: Mapping[str, Mapping[str, Path | str]], name: str,
                                 languages: Sequence[str] | str | None = None) -> ParallelQACorpus:
    """Registry loader of ``squad2-fi-no-mlqa``: the training documents but 293 and 297 (MLQA-R overlap)."""
    return read_pairs(files, exclude_documents=MLQA_OVERLAP, name=name)
