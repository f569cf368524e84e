"""MIRACL (monolingual retrieval over Wikipedia, 18 languages): topics, qrels and passage corpus.

Formats, as MIRACL publishes them (Hugging Face ``miracl/miracl`` and ``miracl/miracl-corpus``):

- topics ``topics.miracl-v1.0-<lang>-dev.tsv``: ``qid<TAB>query``, one query a line;
- qrels ``qrels.miracl-v1.0-<lang>-dev.tsv``: TREC ``qid Q0 docid rel`` (MIRACL separates the
  columns by tabs; any whitespace is accepted, as trec_eval does), ``rel`` an integer (0 or 1 in
  MIRACL: judged non-relevant / relevant);
- corpus ``miracl-corpus-v1.0-<lang>/docs-<n>.jsonl.gz``: one JSON object a line,
  ``{"docid": "39#0", "title": "Albedo", "text": "..."}``, in one or many shards, plain ``.jsonl``
  or gzipped ``.jsonl.gz``; docids are unique across the shards of a language.

A passage is encoded as ``"<title> <text>"`` (one space; just the text when the title is empty):
the "title + space + text" join of Pyserini's and Tevatron's MIRACL dense baselines and of the
multilingual-E5 evaluation (see docs/decisions.md).

Every malformed record raises ``DataFormatError`` naming the file and the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from polyir.data import sources as _sources
from polyir.data.jsonl import _lines, parse_json_record
from polyir.errors import DataFormatError, DatasetNotFoundError, UnknownLanguageError

#: The 18 MIRACL languages (16 "known" + the 2 "surprise" languages de and yo).
MIRACL_LANGUAGES = (
    "ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko", "ru", "sw", "te", "th",
    "yo", "zh",
)

CORPUS_HF = "https://huggingface.co/datasets/miracl/miracl-corpus"

@dataclass(frozen=True)
class HubSource(_sources.Source):
    """A data folder from a Hugging Face dataset repository (``repository``) at a revision (``commit``)."""

    def url(self, source_path: str) -> str:
        """Public download URL of a file of the revision."""
        return f"https://huggingface.co/datasets/{self.repository}/resolve/{self.commit}/{quote(source_path)}"

    @property
    def label(self) -> str:
        """``huggingface.co/datasets/owner/name (revision)`` as shown in ``polyir data list``."""
        return f"huggingface.co/datasets/{self.repository} ({self.commit})"

    @property
    def homepage(self) -> str:
        return f"https://huggingface.co/datasets/{self.repository}"


#: Where the dev topics and qrels come from: ``miracl/miracl`` at revision ``main``. Their sha256 and
#: size are rows of ``polyir/resources/sources.csv`` (path ``miracl/<file name>``, ``source_path`` the
#: file's path in the dataset repository), read by ``polyir.data.catalog``.
SOURCE = HubSource("miracl", "miracl/miracl", "main", "Apache-2.0 (MIRACL); passages are Wikipedia text (CC BY-SA)")


def topics_name(lang: str, split: str = "dev") -> str:
    """File name of a language's topics, e.g. ``topics.miracl-v1.0-sw-dev.tsv``."""
    return f"topics.miracl-v1.0-{lang}-{split}.tsv"


def qrels_name(lang: str, split: str = "dev") -> str:
    """File name of a language's qrels, e.g. ``qrels.miracl-v1.0-sw-dev.tsv``."""
    return f"qrels.miracl-v1.0-{lang}-{split}.tsv"


def topics_source_path(lang: str, split: str = "dev") -> str:
    """Path of a language's topics in the ``miracl/miracl`` dataset repository."""
    return f"miracl-v1.0-{lang}/topics/{topics_name(lang, split)}"


def qrels_source_path(lang: str, split: str = "dev") -> str:
    """Path of a language's qrels in the ``miracl/miracl`` dataset repository."""
    return f"miracl-v1.0-{lang}/qrels/{qrels_name(lang, split)}"


def topics_url(lang: str, split: str = "dev") -> str:
    """Public URL of a language's topics in the ``miracl/miracl`` dataset repository."""
    return SOURCE.url(topics_source_path(lang, split))


def qrels_url(lang: str, split: str = "dev") -> str:
    """Public URL of a language's qrels in the ``miracl/miracl`` dataset repository."""
    return SOURCE.url(qrels_source_path(lang, split))


def corpus_folder_name(lang: str) -> str:
    """Folder of a language's passage shards, as in ``miracl/miracl-corpus``."""
    return f"miracl-corpus-v1.0-{lang}"


def corpus_url(lang: str) -> str:
    """Where a language's corpus shards are browsed and downloaded."""
    return f"{CORPUS_HF}/tree/main/{corpus_folder_name(lang)}"


def check_language(lang: str) -> str:
    """``lang`` if MIRACL has it, else ``UnknownLanguageError`` listing the 18 languages."""
    if lang not in MIRACL_LANGUAGES:
        raise UnknownLanguageError(
            f"MIRACL has no language {lang!r}; it has {', '.join(MIRACL_LANGUAGES)}"
        )
    return lang


# --------------------------------------------------------------------------- topics and qrels


def read_topics(path: Path | str) -> dict[str, str]:
    """Query id -> query text from a ``qid<TAB>query`` file (blank lines skipped, ids unique)."""
    path = Path(path)
    topics: dict[str, str] = {}
    first: dict[str, int] = {}
    for lineno, line in _lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        where = f"{path}: line {lineno}"
        qid, sep, text = line.partition("\t")
        qid, text = qid.strip(), text.strip()
        if not sep:
            raise DataFormatError(f"{where}: expected 'qid<TAB>query', found no tab")
        if not qid:
            raise DataFormatError(f"{where}: empty query id")
        if not text:
            raise DataFormatError(f"{where}: query {qid!r} has no text")
        if qid in first:
            raise DataFormatError(f"{where}: duplicate query id {qid!r} (first on line {first[qid]})")
        first[qid] = lineno
        topics[qid] = text
    if not topics:
        raise DataFormatError(f"{path}: no topics (the file is empty)")
    return topics


def read_qrels(path: Path | str) -> dict[str, dict[str, int]]:
    """Query id -> {docid: relevance} from a TREC qrels file (``qid iter docid rel``).

    The iteration column is ignored (trec_eval does the same); ``rel`` must be an integer.
    A (qid, docid) pair given twice is an error, since trec_eval would keep only one of them.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    first: dict[tuple[str, str], int] = {}
    for lineno, line in _lines(path):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}: line {lineno}"
        if len(fields) != 4:
            raise DataFormatError(
                f"{where}: expected 4 columns 'qid Q0 docid rel', found {len(fields)}"
            )
        qid, _, docid, rel_text = fields
        try:
            rel = int(rel_text)
        except ValueError:
            raise DataFormatError(f"{where}: relevance {rel_text!r} is not an integer") from None
        if (qid, docid) in first:
            raise DataFormatError(
                f"{where}: ({qid}, {docid}) judged twice (first on line {first[qid, docid]})"
            )
        first[qid, docid] = lineno
        qrels.setdefault(qid, {})[docid] = rel
    if not qrels:
        raise DataFormatError(f"{path}: no judgments (the file is empty)")
    return qrels


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class MiraclPassage:
    """One passage of a MIRACL corpus (``docid`` = ``<article id>#<passage index>``)."""

    docid: str
    title: str
    text: str

    @property
    def content(self) -> str:
        """What the encoder sees: ``"<title> <text>"`` (just the text when there is no title)."""
        return passage_text(self.title, self.text)


def passage_text(title: str, text: str) -> str:
    """Join a title and a passage the way MIRACL's dense baselines do: one space between them."""
    title, text = title.strip(), text.strip()
    return f"{title} {text}" if title and text else (title or text)


_SHARD = re.compile(r"\.jsonl(\.gz)?$")


def _natural_key(path: Path) -> list[object]:
    """docs-2 before docs-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def corpus_shards(folder: Path | str) -> list[Path]:
    """The ``*.jsonl`` / ``*.jsonl.gz`` files of a corpus folder, in natural order (docs-2 < docs-10)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder}: no such corpus folder")
    shards = sorted((p for p in folder.iterdir() if p.is_file() and _SHARD.search(p.name)),
                    key=_natural_key)
    if not shards:
        raise DataFormatError(
            f"{folder}: no corpus shard (*.jsonl or *.jsonl.gz, e.g. docs-0.jsonl.gz) in this folder"
        )
    return shards


def _parse_passage(line: str, where: str) -> MiraclPassage:
    record = parse_json_record(line, where, ("docid", "title", "text"))
    docid = record.get("docid")
    if not isinstance(docid, str) or not docid.strip():
        raise DataFormatError(f'{where}: missing or empty "docid" (a non-empty string)')
    title = record.get("title", "")
    text = record.get("text")
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise DataFormatError(f'{where}: passage {docid!r}: "title" must be a string')
    if not isinstance(text, str):
        raise DataFormatError(f'{where}: passage {docid!r}: missing "text" (a string)')
    if not title.strip() and not text.strip():
        raise DataFormatError(f"{where}: passage {docid!r} has neither title nor text")
    return MiraclPassage(docid=docid, title=title, text=text)


def iter_corpus(paths: Sequence[Path | str]) -> Iterator[MiraclPassage]:
    """Stream the passages of one or more shard files, checking docids are unique across them."""
    seen: set[str] = set()
    for path in map(Path, paths):
        for lineno, line in _lines(path):
            if not line.strip():
                continue
            where = f"{path}: line {lineno}"
            passage = _parse_passage(line, where)
            if passage.docid in seen:
                raise DataFormatError(f"{where}: duplicate docid {passage.docid!r} (seen earlier)")
            seen.add(passage.docid)
            yield passage


def read_corpus(source: Path | str | Sequence[Path | str]) -> list[MiraclPassage]:
    """All passages of a corpus folder (every shard in it) or of the given shard file(s).

    An empty corpus (no passage at all) is an error: nothing could be retrieved.
    """
    if isinstance(source, (str, Path)):
        source = Path(source)
        paths: Sequence[Path | str] = corpus_shards(source) if source.is_dir() else [source]
    else:
        paths = list(source)
    for p in map(Path, paths):
        if not p.is_file():
            raise DatasetNotFoundError(f"{p}: no such corpus file")
    passages = list(iter_corpus(paths))
    if not passages:
        shown = ", ".join(str(p) for p in paths[:3]) + (" …" if len(paths) > 3 else "")
        raise DataFormatError(f"{shown}: the corpus is empty (no passage lines)")
    return passages


def find_corpus_folder(lang: str, corpus_dir: Path | str | None,
                       roots: Sequence[Path]) -> Path:
    """The folder holding ``lang``'s shards.

    With ``corpus_dir``: ``corpus_dir`` itself when it is named ``miracl-corpus-v1.0-<lang>``, else
    ``corpus_dir/miracl-corpus-v1.0-<lang>/`` or ``corpus_dir/miracl-corpus/miracl-corpus-v1.0-<lang>/``.
    Without it: ``<root>/miracl-corpus/miracl-corpus-v1.0-<lang>/`` for each data root
    (``--data-dir``/``$POLYIR_DATA_DIR``, then the user cache).
    """
    check_language(lang)
    name = corpus_folder_name(lang)
    if corpus_dir is not None:
        base = Path(corpus_dir).expanduser()
        candidates = [base, base / name, base / "miracl-corpus" / name]
        candidates = [c for c in candidates if c.name == name]
    else:
        candidates = [Path(r) / "miracl-corpus" / name for r in roots]
    for cand in candidates:
        if cand.is_dir():
            return cand
    looked = ", ".join(str(c) for c in candidates) or "(no data folder set)"
    raise DatasetNotFoundError(
        f"MIRACL corpus for {lang!r} not found (looked in {looked}). Download the folder {name}/"
        f" (docs-*.jsonl.gz) from {corpus_url(lang)} and pass its parent folder with --corpus,"
        f" or put it under <data dir>/miracl-corpus/"
    )
