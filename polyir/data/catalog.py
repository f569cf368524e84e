"""The built-in datasets: every registered name, its files (sha256 and size from
``polyir/resources/sources.csv``, origins in ``polyir.data.sources``) and the reader of its kind."""

from __future__ import annotations

from pathlib import Path

from polyir.data import afriqa as _afriqa
from polyir.data import lafand as _lafand
from polyir.data import masakhanews as _masakhanews
from polyir.data import miracl as _miracl
from polyir.data import ntrex as _ntrex
from polyir.data import sources as _sources
from polyir.data import squad2fi as _squad2fi
from polyir.data.lareqa import load_lareqa_corpus, load_lareqa_task
from polyir.data.specs import DataFile, DatasetSpec, KindLoader, register, register_kind
from polyir.languages import canonical_code


def _origin(source: _sources.Source) -> dict[str, str]:
    """A spec's licence, source label and homepage, all from its pinned source."""
    return {"license": source.license, "source": source.label, "homepage": source.homepage}


def _from_table(source: _sources.Source, path: str, language: str | None = None, role: str = "") -> DataFile:
    """A ``DataFile`` from a row of ``polyir/resources/sources.csv``."""
    row = _sources.source_file(source, path)
    return DataFile(path=row.path, url=source.url(row.source_path), sha256=row.sha256, language=language,
                    size=row.size, role=role)


register_kind("lareqa", KindLoader(task=load_lareqa_task, corpus=load_lareqa_corpus))

# LAReQA (google-research-datasets/lareqa): one JSON file per language, <folder>/<lang>.json
_XQUAD_R_FILES, _MLQA_R_FILES = (
    tuple(_from_table(source, p, Path(p).stem) for p in _sources.source_files(source))
    for source in (_sources.XQUAD_R, _sources.MLQA_R)
)

register(DatasetSpec(
    name="xquad-r",
    description="XQuAD-R (LAReQA): 1,190 questions x 11 languages, 11-way parallel; "
                "candidates = every sentence of every paragraph in every language",
    kind="lareqa",
    languages=tuple(f.language for f in _XQUAD_R_FILES if f.language),
    files=_XQUAD_R_FILES,
    **_origin(_sources.XQUAD_R),
))

register(DatasetSpec(
    name="mlqa-r",
    description="MLQA-R (LAReQA, from MLQA dev): 1,148 question ids in 2-4 of 7 languages "
                "(4,199 questions)",
    kind="lareqa",
    languages=tuple(f.language for f in _MLQA_R_FILES if f.language),
    files=_MLQA_R_FILES,
    **_origin(_sources.MLQA_R),
))

# MIRACL: dev topics + qrels per language (the passage corpus is brought by the user, see
# polyir/data/miracl.py and README); evaluated by polyir.evaluation.miracl, not through a task view.
register_kind("miracl", KindLoader())
register(DatasetSpec(
    name="miracl",
    description="MIRACL v1.0 dev: monolingual Wikipedia retrieval, 18 languages (topics + qrels;"
                " the passage corpus miracl/miracl-corpus is downloaded separately)",
    kind="miracl",
    languages=_miracl.MIRACL_LANGUAGES,
    files=tuple(
        _from_table(_miracl.SOURCE, f"miracl/{name_of(lang)}", lang, role)
        for lang in _miracl.MIRACL_LANGUAGES
        for role, name_of in (("topics", _miracl.topics_name), ("qrels", _miracl.qrels_name))
    ),
    license=_miracl.SOURCE.license,
    source=_miracl.SOURCE.label,
    homepage="https://github.com/project-miracl/miracl",
))


# NTREX-128 (news): two tasks over the same files, see polyir/data/ntrex.py and README "News domain".
# Every language of the source is listed; a task loads the 11 first-release languages unless others
# are chosen (files of the 23 languages in shared/data are sha256-pinned, the others are not).
register_kind("ntrex-sentences", KindLoader(task=_ntrex.load_ntrex_sentences))
register_kind("ntrex-documents", KindLoader(task=_ntrex.load_ntrex_documents))

_NTREX_FILES = (
    *(
        DataFile(path=f"{_ntrex.FOLDER}/{Path(src).name}", url=_ntrex.source_url(src), sha256=sha,
                 language=lang, size=size)
        for lang, (src, sha, size) in _ntrex.LANGUAGE_FILES.items()
    ),
    _from_table(_sources.NTREX, f"{_ntrex.FOLDER}/{_ntrex.DOCUMENT_IDS}"),
)

for _name, _what in (
    ("ntrex-sentences", "each sentence retrieves its translations in the other languages (own sentence"
                        " excluded, so Mo. is undefined)"),
    ("ntrex-documents", "each document's headline retrieves the rest of its document in every language"),
):
    register(DatasetSpec(
        name=_name,
        description=f"NTREX-128 news (1,997 sentences, 123 documents, {len(_ntrex.LANGUAGE_FILES)} languages;"
                    f" default: the 11 of the first release): {_what}",
        kind=_name,
        languages=tuple(sorted(_ntrex.LANGUAGE_FILES)),
        files=_NTREX_FILES,
        license=_ntrex.LICENSE,
        source=_sources.NTREX.label,
        homepage=_sources.NTREX.homepage,
        default_languages=_ntrex.DEFAULT_LANGUAGES,
    ))


def _pair_files(kind: str) -> tuple[DataFile, ...]:
    """MAFAND-MT test files of one kind (``json_files``/``doc_level_tsv``), keyed by the African language."""
    out = []
    for path in _sources.source_files(_sources.LAFAND):
        parts = path.split("/")
        if parts[2] == kind:
            out.append(_from_table(_sources.LAFAND, path, canonical_code(parts[3].split("-")[1])))
    return tuple(sorted(out, key=lambda f: f.language or ""))


# MAFAND-MT (news, en/fr <-> 21 African languages): one pair per task, see polyir/data/lafand.py.
register_kind("lafand-sentences", KindLoader(task=_lafand.load_lafand_sentences))
register_kind("lafand-documents", KindLoader(task=_lafand.load_lafand_documents))
for _name, _kind, _what in (
    ("lafand-sentences", "json_files", "21 pairs; a sentence retrieves its translation, both directions,"
                                       " in its pair's pool"),
    ("lafand-documents", "doc_level_tsv", "10 pairs with document boundaries; a headline retrieves the rest"
                                          " of its document on both sides"),
):
    _files = _pair_files(_kind)
    register(DatasetSpec(
        name=_name,
        description=f"MAFAND-MT news test sets, en/fr <-> African languages ({_what}); one pair per task:"
                    " choose its African language",
        kind=_name,
        languages=tuple(f.language for f in _files if f.language),
        files=_files,
        **_origin(_sources.LAFAND),
        pivot_languages=_lafand.PIVOTS,
        languages_per_task=1,
    ))

# MasakhaNEWS (news, 16 languages): headline -> article, see polyir/data/masakhanews.py.
register_kind("masakhanews", KindLoader(task=_masakhanews.load_masakhanews))
_MASAKHANEWS_FILES = tuple(sorted(
    (_from_table(_sources.MASAKHANEWS, p, canonical_code(p.split("/")[2]))
     for p in _sources.source_files(_sources.MASAKHANEWS)),
    key=lambda f: f.language or "",
))
register(DatasetSpec(
    name="masakhanews",
    description="MasakhaNEWS test (16 languages): a headline retrieves its article among its language's"
                " articles (Mo.) and in the mixed pool of all languages (Mul.)",
    kind="masakhanews",
    languages=tuple(f.language for f in _MASAKHANEWS_FILES if f.language),
    files=_MASAKHANEWS_FILES,
    **_origin(_sources.MASAKHANEWS),
))

# AfriQA (questions in 9 African languages, gold passages in en/fr Wikipedia), see polyir/data/afriqa.py.
register_kind("afriqa", KindLoader(task=_afriqa.load_afriqa, file_sets=True))
register_kind("afriqa-pivot", KindLoader(task=_afriqa.load_afriqa_pivot, file_sets=True))
_AFRIQA_FILES = tuple(sorted(
    (_from_table(_sources.AFRIQA, p, canonical_code(p.split("/")[3]),
                 _afriqa.QUERIES if p.split("/")[2] == "queries" else _afriqa.GOLD)
     for p in _sources.source_files(_sources.AFRIQA) if p.endswith(".test.json")),
    key=lambda f: (f.language or "", f.role),
))
for _name, _what in (
    ("afriqa", "an African-language question retrieves its gold passage"),
    ("afriqa-pivot", "the human pivot (en/fr) translation of each question retrieves the same passage:"
                     " the translate-the-query reference"),
):
    register(DatasetSpec(
        name=_name,
        description=f"AfriQA test (9 languages, gold en/fr Wikipedia passages): {_what}",
        kind=_name,
        languages=tuple(sorted({f.language for f in _AFRIQA_FILES if f.language})),
        files=_AFRIQA_FILES,
        **_origin(_sources.AFRIQA),
        pivot_languages=("en", "fr"),
        queries_of="afriqa" if _name == "afriqa-pivot" else None,
    ))


# AfriQA train / dev as training corpora (question in x and its human pivot translation -> gold passage).
register_kind("afriqa-training", KindLoader(corpus=_afriqa.load_afriqa_training, file_sets=True))
for _split in ("train", "dev"):
    _files = tuple(sorted(
        (_from_table(_sources.AFRIQA, p, canonical_code(p.split("/")[3]),
                     _afriqa.QUERIES if p.split("/")[2] == "queries" else _afriqa.GOLD)
         for p in _sources.source_files(_sources.AFRIQA) if p.endswith(f".{_split}.json")),
        key=lambda f: (f.language or "", f.role),
    ))
    register(DatasetSpec(
        name=f"afriqa-{_split}",
        description=f"AfriQA {_split} as training pairs: a question in an African language and its human"
                    " en/fr translation, both with the gold en/fr passage (questions with a gold passage only)",
        kind="afriqa-training",
        languages=tuple(sorted({f.language for f in _files if f.language})),
        files=_files,
        **_origin(_sources.AFRIQA),
        pivot_languages=("en", "fr"),
    ))

# squad2-fi (SQuAD 2.0 train in Finnish + English back-translation, raw HTML), see polyir/data/squad2fi.py.
# Only the files holding training documents (< 442) are listed; the reader stops at document 442.
_SQUAD2FI_FILES = tuple(
    _from_table(_sources.SQUAD2FI, path(n), lang, f"{n:03d}")
    for lang, path in (("fi", _squad2fi.fi_path), ("en", _squad2fi.en_path))
    for n in range(_squad2fi.TRAIN_FILES)
)
for _name, _kind, _loader_fn, _what in (
    ("squad2-fi", "squad2-fi", _squad2fi.load_squad2fi_corpus, "SQuAD 2.0 train documents 0-441"),
    ("squad2-fi-no-mlqa", "squad2-fi-no-mlqa", _squad2fi.load_squad2fi_no_mlqa_corpus,
     "documents 0-441 without 293 and 297 (they share paragraphs with MLQA-R: use when MLQA-R is a test set)"),
):
    register_kind(_kind, KindLoader(corpus=_loader_fn, file_sets=True))
    register(DatasetSpec(
        name=_name,
        description=f"TurkuNLP SQuAD 2.0 machine-translated to Finnish + its English back-translation, aligned"
                    f" by position (training only; {_what}): question -> its paragraph",
        kind=_kind,
        languages=("en", "fi"),
        files=_SQUAD2FI_FILES,
        **_origin(_sources.SQUAD2FI),
    ))
