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

from polyir.data.jsonl import _lines, parse_json_record
from polyir.errors import DataFormatError, DatasetNotFoundError, UnknownLanguageError

#: The 18 MIRACL languages (16 "known" + the 2 "surprise" languages de and yo).
MIRACL_LANGUAGES = (
    "ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko", "ru", "sw", "te", "th",
    "yo", "zh",
)

TOPICS_HF = "https://huggingface.co/datasets/miracl/miracl"
CORPUS_HF = "https://huggingface.co/datasets/miracl/miracl-corpus"

#: sha256 and size in bytes of the dev topics and qrels, per language:
#: (topics sha256, topics bytes, qrels sha256, qrels bytes). Computed from the copies in
#: ../shared/data/miracl (castorini/anserini-tools @ 5b819c1a, byte-identical to miracl/miracl).
DEV_FILES: dict[str, tuple[str, int, str, int]] = {
    "ar": ("10b534b889ec46e23df478eee09410ef2880d90d419644dfed5d05d39b57ece0", 174692,
           "3670a7804dedd5a602dad0661f6adb1e65b197829d5571f428e0af7fc46aa313", 572724),
    "bn": ("46fbf50f1f3972b6908543bad6b6dfc60a75eec80d54aae603efd884ba608d2f", 53473,
           "0aab3bcb0bbc5d3e5ed1566a9e3965800239438b5b5f68d5b6bb4acb7f0fec0e", 75970),
    "de": ("6b66ec2cfb4af383e6fe18a08899bfa3a0deeb5e6010758743fa93ab598321c9", 17620,
           "5d4a0d7ac42c7839a0513ba6deb6b27fc62803f318be8a7c411e10dbbde7578c", 77351),
    "en": ("25d9e6d17656674fd7aa3b67ee912c71545e664a842b147bfc17e9ff391db3da", 36782,
           "a0af836c300e85088c4d73449492e2378280f967cac032853c9e11f3bc8a8d81", 167817),
    "es": ("5e93b5a1cea22a44912e6ad242147c58719dd8ce4bb6304264a53876b70e65ac", 39616,
           "2d9441de1e25d7d2faf54f757db618ad5a2927337862a367f1a60e87ef7e40b2", 157701),
    "fa": ("df0ece36ab8048f765aa0bb2dde948f5c764cc25bdfc09fb1f5317ef24ff8b49", 54322,
           "3cec8ea8fb1f056110e5282df3aa37e14fb5f44c6f885528b6072c0243c1efc4", 157653),
    "fi": ("71766986e9bef80118d60b989bdbd3ed965a845db6986847cbfd791fa00990b3", 58112,
           "4e534e96878729bd2566233d7499c991463052d91d34738dfe84d79f110255cd", 226188),
    "fr": ("dd471f3a0a594d212b30495f8b1d9759451aea399b44e02de6ca9c5550930106", 19375,
           "823e8f6fd297064d67efe37991cd3953414dc040c290f249b0895925f03509ad", 84975),
    "hi": ("94bed8e649806246f59edfb6434ea0c59920a44f2f60a56e01d205c6bf58ef60", 52022,
           "4cec99e7012ffca7fd129eeea01f37984bb21702706a8398208e8fba1c14e963", 79771),
    "id": ("c5d9d5de2913beeb003ee0ef63e4537c2f632940ed077bfb2e9e8a3b5943096d", 42043,
           "6270863499b1be946be0883e8815b52ffb21e56181e9dc67596eaeb61494a61c", 176946),
    "ja": ("1904b9bf0fc52e1b684daa7539b2bcfdd90122e603ffbcf6b5065a0e210525b0", 50019,
           "1e2a60ba96b889bd076adea950e7e83a2d083f671955a5ab3e9bdc332b492e5f", 160882),
    "ko": ("a365552cfc997a8915e948a3b5994883f641e7c3f12b6af87bbfaf89729e32a8", 12597,
           "88827ccc5b64e531b25f70eef30202d33daa9bfa3ac8cceadf5cdbd5ca5034df", 55675),
    "ru": ("91a7c3b6d21f79a12b5330f0a62811962f9370a0bf539cba8b3fecaa095f0616", 108525,
           "f877b43c7f53b76aab25e406e5a607ef1c5adba4ffaa11e1b252a4326735a19b", 255921),
    "sw": ("15cde3f614cb75b3106fb4606a16162140ee157da22c4a57aae756571788b722", 21465,
           "a1e6438ac732dabd9a24fd5c8dfc0c64168aea81ff477d8b1986fde5ad193a63", 89581),
    "te": ("3ac8a9a20bdf93ffcc36d554a5fff76ec4435131ae995010814df5881fff07d6", 90134,
           "576a7ded402697a7bb521b4b8bb1a27806b927556001450405d3a5b85590a0c9", 28814),
    "th": ("6ef23316d1224d9fef9e3f8bc2fdf527dad1a3bba98657617398c226503f5a46", 94299,
           "81097e891775f67a9b98d41309f9c452dc4e09572b0cbf4952d4107ed0fe1407", 139845),
    "yo": ("b24558e43e1965d5cfe7440a5bf3bf66d70529474ff76e64bfa72026129b2d2e", 5983,
           "39a219ef0b593f6056e4ad1d65b9c03345730efa5107f0abd4a4a44ef2f6f0d2", 24820),
    "zh": ("5b284a9aabf08bb2d1c88ed7ea276025c9d23846457c5350dc8d391b5e0d0a13", 16903,
           "5546474d3dc8139014e6571e9f4041848bb0a314ca6d2d4bac708174d71c59eb", 94140),
}


def topics_name(lang: str, split: str = "dev") -> str:
    """File name of a language's topics, e.g. ``topics.miracl-v1.0-sw-dev.tsv``."""
    return f"topics.miracl-v1.0-{lang}-{split}.tsv"


def qrels_name(lang: str, split: str = "dev") -> str:
    """File name of a language's qrels, e.g. ``qrels.miracl-v1.0-sw-dev.tsv``."""
    return f"qrels.miracl-v1.0-{lang}-{split}.tsv"


def topics_url(lang: str, split: str = "dev") -> str:
    """Public URL of a language's topics in the ``miracl/miracl`` dataset repository."""
    return f"{TOPICS_HF}/resolve/main/miracl-v1.0-{lang}/topics/{topics_name(lang, split)}"


def qrels_url(lang: str, split: str = "dev") -> str:
    """Public URL of a language's qrels in the ``miracl/miracl`` dataset repository."""
    return f"{TOPICS_HF}/resolve/main/miracl-v1.0-{lang}/qrels/{qrels_name(lang, split)}"


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
