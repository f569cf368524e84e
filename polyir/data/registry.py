"""Dataset registry: named datasets, where their files come from, and how to load them.

A dataset is a ``DatasetSpec`` (files with public URL and sha256, license, language list) of some
``kind``; a kind names the loader that turns the files into a ``RetrievalTask`` and/or a
``ParallelQACorpus``. New sources (e.g. ``ntrex``, ``miracl``) are added with ``register_kind`` and
``register``.

Where each file is looked for, in order:

1. ``data_dir`` (the CLI's ``--data-dir``) or else ``$POLYIR_DATA_DIR``: ``<dir>/<relative path>``;
2. the user cache ``cache_dir()/"data"/<relative path>``;
3. a download from the public URL into the cache (to a temporary file, sha256 checked, then renamed;
   a mismatch deletes the temporary file and raises ``DataFormatError``).

Local files are checksummed only when asked (``verify=True``); downloads always are, except files
whose sha256 polyir does not know (``DataFile.sha256 == ""``: NTREX-128 languages never copied to
the shared data): they come from a commit-pinned URL and their readers record the sha256 they read.

A dataset may offer more languages than it loads by default (``DatasetSpec.default_languages``),
accept pivot languages that have no file of their own (``pivot_languages``: MAFAND-MT's en/fr), and
hold a fixed number of file languages per task (``languages_per_task``: one MAFAND-MT pair).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from polyir.data import afriqa as _afriqa
from polyir.data import formats as _formats
from polyir.data import lafand as _lafand
from polyir.data import masakhanews as _masakhanews
from polyir.data import miracl as _miracl
from polyir.data import ntrex as _ntrex
from polyir.data import sources as _sources
from polyir.data import squad2fi as _squad2fi
from polyir.data.lareqa import load_lareqa_corpus, load_lareqa_task
from polyir.data.types import ParallelQACorpus, RetrievalTask
from polyir.errors import DataFormatError, DatasetNotFoundError, EmptySelectionError
from polyir.languages import canonical_code, parse_languages, select_languages
from polyir.paths import cache_dir, data_dir_from_env

DOWNLOAD_TIMEOUT = 60.0  # seconds per connection attempt
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its path relative to a data folder, public URL and sha256."""

    path: str
    url: str
    sha256: str  # "" when not pinned (downloaded unchecked from a commit-pinned URL)
    language: str | None = None  # the language a per-language file holds
    size: int | None = None  # bytes, informative
    role: str = ""  # which of a language's files this is, when it has several (e.g. "qrels")

    @property
    def pinned(self) -> bool:
        """True when polyir knows the file's sha256."""
        return bool(self.sha256)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: what it is, which files make it, where they come from."""

    name: str
    description: str
    kind: str  # key into the loader table, e.g. "lareqa"
    languages: tuple[str, ...]
    files: tuple[DataFile, ...]
    license: str
    source: str = ""  # human-readable origin (repository @ commit)
    homepage: str = ""
    default_languages: tuple[str, ...] | None = None  # loaded when none are chosen (None: all)
    pivot_languages: tuple[str, ...] = ()  # may be chosen, but have no file of their own
    languages_per_task: int | None = None  # file languages one task holds (None: any number)

    def file_for(self, language: str) -> DataFile:
        """The file holding ``language`` (per-language datasets)."""
        for f in self.files:
            if f.language == language:
                return f
        raise DatasetNotFoundError(f"dataset {self.name!r} has no file for language {language!r}")

    def files_for(self, language: str) -> tuple[DataFile, ...]:
        """Every file of ``language`` (several when a language has e.g. topics and qrels)."""
        found = tuple(f for f in self.files if f.language == language)
        if not found:
            raise DatasetNotFoundError(f"dataset {self.name!r} has no file for language {language!r}")
        return found


@dataclass(frozen=True)
class KindLoader:
    """How to read the files of one kind. ``task``/``corpus`` take (files by language, name, languages),
    plus ``shared=`` (file name -> path) when the dataset has files that hold no language."""

    task: Callable[..., RetrievalTask] | None = None
    corpus: Callable[..., ParallelQACorpus] | None = None
    file_sets: bool = False  # the loader takes language -> role -> path (several files per language)


SOURCE_SCHEMES = _formats.SCHEMES  # source strings (hf:…, pairs:…) read by polyir.data.formats, not registered


class _Registry(dict[str, DatasetSpec]):
    """Registered datasets by name. A source string (``hf:…``, ``pairs:…``) is a member too, with a
    spec of kind ``source``, so every caller that checks a name here and then calls ``load_task`` /
    ``load_corpus`` (the trainer's ``data.train[].source``, ``evaluate --dataset``) accepts one."""

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (isinstance(key, str) and key.startswith(SOURCE_SCHEMES))

    def __missing__(self, key: str) -> DatasetSpec:
        if isinstance(key, str) and key.startswith(SOURCE_SCHEMES):
            return DatasetSpec(name=key, description="a source string (polyir.data.formats)", kind="source",
                               languages=(), files=(), license="")
        raise KeyError(key)


REGISTRY: dict[str, DatasetSpec] = _Registry()
LOADERS: dict[str, KindLoader] = {}


def register_kind(kind: str, loader: KindLoader) -> None:
    """Declare how datasets of ``kind`` are loaded."""
    LOADERS[kind] = loader


def register(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add a dataset to the registry (its kind must be known)."""
    if spec.kind not in LOADERS:
        raise ValueError(f"dataset {spec.name!r}: no loader registered for kind {spec.kind!r}")
    if spec.name in REGISTRY and not replace:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name``; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise DatasetNotFoundError(f"unknown dataset {name!r}; known datasets: {known}") from None


def list_specs() -> list[DatasetSpec]:
    """All registered datasets, by name."""
    return [REGISTRY[n] for n in sorted(REGISTRY)]


# --------------------------------------------------------------------------- file resolution


def _user_root(data_dir: Path | str | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return data_dir_from_env()


def cache_data_dir() -> Path:
    """The folder downloads go to: ``cache_dir()/"data"``."""
    return cache_dir() / "data"


sha256_of = _sources.sha256_of


def _check(path: Path, expected: str) -> None:
    if not expected:  # not pinned: nothing to compare with (the reader records what it read)
        return
    got = sha256_of(path)
    if got != expected:
        raise DataFormatError(
            f"{path}: sha256 mismatch (expected {expected}, got {got}); the file is not the"
            " published one: replace it or delete it so it is downloaded again"
        )


def _open_url(url: str, timeout: float) -> IO[bytes]:
    """Open ``url`` for reading (the one network call; tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "polyir"})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (https URLs from the registry)


def download_file(url: str, target: Path, sha256: str, *,
                  timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Fetch ``url`` into ``target`` via a temporary file; keep it only if its sha256 matches
    (``sha256 == ""``: a file polyir has no checksum for, kept as fetched).

    Network failures propagate as ``OSError``/``URLError`` (the caller decides what they mean);
    a checksum mismatch deletes the temporary file and raises ``DataFormatError``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    try:
        with _open_url(url, timeout) as response, open(tmp, "xb") as out:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        if sha256 and got != sha256:
            raise DataFormatError(
                f"{url}: sha256 mismatch after download (expected {sha256}, got {got});"
                " the download was discarded"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _locate(f: DataFile, roots: Sequence[Path]) -> tuple[Path, Path] | None:
    """(root, path) of the first root holding ``f``."""
    for root in roots:
        candidate = root / f.path
        if candidate.is_file():
            return root, candidate
    return None


def _select(spec: DatasetSpec, languages: Sequence[str] | str | None) -> list[str]:
    """The file languages a selection loads: the default ones when none is given, pivots left out."""
    source = f"dataset {spec.name}"
    wanted = parse_languages(languages)
    if wanted is None:
        chosen = list(spec.default_languages or spec.languages)
    else:
        select_languages((*spec.languages, *spec.pivot_languages), wanted, source=source)
        chosen = [c for c in wanted if c not in spec.pivot_languages]
        if not chosen:
            raise EmptySelectionError(
                f"{source}: {', '.join(wanted)} only names pivot languages; add one of {', '.join(spec.languages)}"
            )
    per_task = spec.languages_per_task
    if per_task is not None and len(chosen) != per_task:
        count = "one" if per_task == 1 else str(per_task)
        got = "none was chosen" if wanted is None else f"got {', '.join(chosen)}"
        raise EmptySelectionError(
            f"{source}: a task holds {count} of {', '.join(spec.languages)} (each with its own pivot-side"
            f" text), {got}; e.g. --languages {','.join(spec.languages[:per_task])}"
        )
    return select_languages(spec.languages, chosen, source=source)


def _missing_message(spec: DatasetSpec, missing: list[DataFile], user_root: Path | None,
                     reason: str) -> str:
    folder = spec.files[0].path.split("/")[0] if spec.files else spec.name
    looked = [str(p) for p in ([user_root] if user_root else []) + [cache_data_dir()]]
    return (
        f"dataset {spec.name!r}: {len(missing)} file(s) not found locally"
        f" ({', '.join(f.path for f in missing)}; looked in {', '.join(looked)}) and {reason}."
        f" Either set POLYIR_DATA_DIR (or pass --data-dir) to a folder holding {folder}/…,"
        f" or run once with network access so they download into {cache_data_dir()}"
    )


def resolve_files(name: str, data_dir: Path | str | None = None,
                  languages: Sequence[str] | str | None = None, download: bool = True,
                  verify: bool = False) -> dict[str, Path]:
    """Local paths of a dataset's per-language files, downloading missing ones if allowed.

    ``verify`` checks the sha256 of files found locally (downloads are always checked).
    For datasets with several files per language (e.g. MIRACL) see ``resolve_file_sets``.
    """
    spec = get_spec(name)
    sets = resolve_file_sets(name, data_dir, languages, download=download, verify=verify)
    return {lang: roles[spec.file_for(lang).role] for lang, roles in sets.items()}


def _from_table(source: _sources.Source, path: str, language: str | None = None, role: str = "") -> DataFile:
    """A ``DataFile`` from a row of ``polyir/resources/sources.csv``."""
    row = _sources.source_file(source, path)
    return DataFile(path=row.path, url=source.url(row.source_path), sha256=row.sha256, language=language,
                    size=row.size, role=role)


def resolve_file_sets(name: str, data_dir: Path | str | None = None,
                      languages: Sequence[str] | str | None = None, download: bool = True,
                      verify: bool = False) -> dict[str, dict[str, Path]]:
    """Like ``resolve_files``, for every file of each language: language -> role -> local path."""
    spec = get_spec(name)
    selected = _select(spec, languages)
    user_root = _user_root(data_dir)
    roots = ([user_root] if user_root else []) + [cache_data_dir()]
    found: dict[str, dict[str, Path]] = {lang: {} for lang in selected}
    missing: list[tuple[str, DataFile]] = []
    for lang in selected:
        for f in spec.files_for(lang):
            hit = _locate(f, roots)
            if hit is None:
                missing.append((lang, f))
                continue
            path = hit[1]
            if verify:
                _check(path, f.sha256)
            found[lang][f.role] = path
    if missing and not download:
        raise DatasetNotFoundError(
            _missing_message(spec, [f for _, f in missing], user_root, "downloading is turned off")
        )
    for i, (lang, f) in enumerate(missing):
        try:
            found[lang][f.role] = download_file(f.url, cache_data_dir() / f.path, f.sha256)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DatasetNotFoundError(_missing_message(
                spec, [m for _, m in missing[i:]], user_root,
                f"the download of {f.url} failed ({reason})",
            )) from exc
    return found


def resolve_shared_files(name: str, data_dir: Path | str | None = None, download: bool = True,
                         verify: bool = False) -> dict[str, Path]:
    """Local paths of a dataset's files that hold no language (e.g. NTREX's ``DOCUMENT_IDS.tsv``),
    by file name; looked for and downloaded like the per-language files."""
    spec = get_spec(name)
    user_root = _user_root(data_dir)
    roots = ([user_root] if user_root else []) + [cache_data_dir()]
    found: dict[str, Path] = {}
    for f in (f for f in spec.files if f.language is None):
        hit = _locate(f, roots)
        if hit is not None:
            if verify:
                _check(hit[1], f.sha256)
            found[Path(f.path).name] = hit[1]
            continue
        if not download:
            raise DatasetNotFoundError(_missing_message(spec, [f], user_root, "downloading is turned off"))
        try:
            found[Path(f.path).name] = download_file(f.url, cache_data_dir() / f.path, f.sha256)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DatasetNotFoundError(_missing_message(
                spec, [f], user_root, f"the download of {f.url} failed ({reason})")) from exc
    return found


@dataclass
class StatusRow:
    """What ``status`` reports for one dataset."""

    name: str
    languages: list[str]
    present: list[str] = field(default_factory=list)  # relative paths found locally
    missing: list[str] = field(default_factory=list)  # absent files a default load needs
    where: list[str] = field(default_factory=list)  # folders the present files were found in
    source: str = ""
    optional_missing: list[str] = field(default_factory=list)  # absent files of non-default languages


def status(data_dir: Path | str | None = None) -> list[StatusRow]:
    """Which files of every registered dataset are present locally, and where (no download)."""
    user_root = _user_root(data_dir)
    roots = ([user_root] if user_root else []) + [cache_data_dir()]
    rows = []
    for spec in list_specs():
        row = StatusRow(name=spec.name, languages=list(spec.languages), source=spec.source)
        default = set(spec.default_languages or spec.languages)
        for f in spec.files:
            hit = _locate(f, roots)
            if hit is None:
                optional = f.language is not None and f.language not in default
                (row.optional_missing if optional else row.missing).append(f.path)
                continue
            row.present.append(f.path)
            if str(hit[0]) not in row.where:
                row.where.append(str(hit[0]))
        rows.append(row)
    return rows


def _loader(spec: DatasetSpec, what: str) -> Callable[..., object]:
    kind = LOADERS[spec.kind]
    fn = getattr(kind, what)
    if fn is None:
        raise DatasetNotFoundError(f"dataset {spec.name!r} (kind {spec.kind}) has no {what} view")
    return fn


def _load_view(name: str, what: str, data_dir: Path | str | None,
               languages: Sequence[str] | str | None, download: bool, verify: bool) -> object:
    spec = get_spec(name)
    loader = _loader(spec, what)
    selected = _select(spec, languages)
    pivots = [c for c in (parse_languages(languages) or []) if c in spec.pivot_languages]
    files: Mapping[str, object]
    if LOADERS[spec.kind].file_sets:
        files = resolve_file_sets(name, data_dir, selected, download=download, verify=verify)
    else:
        files = resolve_files(name, data_dir, selected, download=download, verify=verify)
    chosen = [*files, *pivots]
    if any(f.language is None for f in spec.files):  # files shared by all languages
        shared = resolve_shared_files(name, data_dir, download=download, verify=verify)
        return loader(files, spec.name, chosen, shared=shared)
    return loader(files, spec.name, chosen)


def load_task(name: str, data_dir: Path | str | None = None,
              languages: Sequence[str] | str | None = None, download: bool = True,
              verify: bool = False) -> RetrievalTask:
    """Resolve a registered dataset's files and read them as a retrieval task."""
    if name.startswith(SOURCE_SCHEMES):
        return _formats.load_source_task(name, languages)
    task = _load_view(name, "task", data_dir, languages, download, verify)
    assert isinstance(task, RetrievalTask)
    return task


def load_corpus(name: str, data_dir: Path | str | None = None,
                languages: Sequence[str] | str | None = None, download: bool = True,
                verify: bool = False) -> ParallelQACorpus:
    """Resolve a registered dataset's files and read them as a parallel QA corpus."""
    if name.startswith(SOURCE_SCHEMES):
        return _formats.load_source_corpus(name, languages)
    corpus = _load_view(name, "corpus", data_dir, languages, download, verify)
    assert isinstance(corpus, ParallelQACorpus)
    return corpus


# --------------------------------------------------------------------------- built-in datasets

register_kind("lareqa", KindLoader(task=load_lareqa_task, corpus=load_lareqa_corpus))

_LAREQA_REPO = "google-research-datasets/lareqa"
_XQUAD_R_COMMIT = "9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c"
_MLQA_R_COMMIT = "354d67d1cd066854cdfbf5ad0e6105528976141d"


def _lareqa_files(folder: str, commit: str,
                  table: Mapping[str, tuple[str, int]]) -> tuple[DataFile, ...]:
    base = f"https://raw.githubusercontent.com/{_LAREQA_REPO}/{commit}/{folder}"
    return tuple(
        DataFile(path=f"{folder}/{lang}.json", url=f"{base}/{lang}.json", sha256=sha, language=lang,
                 size=size)
        for lang, (sha, size) in table.items()
    )


_XQUAD_R_FILES = {
    "ar": ("c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d", 2234875),
    "de": ("16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949", 732156),
    "el": ("163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6", 2810127),
    "en": ("7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe", 628651),
    "es": ("f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de", 746335),
    "hi": ("ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872", 2408404),
    "ru": ("7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1", 2764904),
    "th": ("c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4", 2618544),
    "tr": ("f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94", 827827),
    "vi": ("e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995", 1132303),
    "zh": ("80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed", 959291),
}

_MLQA_R_FILES = {
    "ar": ("2132fbc03208535c0fe01f2e2c5121d06f9c2aa799af93b0a719dbc105bdf137", 3329081),
    "de": ("ce9454dc5aa6f2d85c23cd6e49cb367fbb7c4c6e62d7f71e355c6b5dae4d0886", 887185),
    "en": ("fedd9a5cc0848dda80caf84aa36f482adaae230526a3f6e9e86926a93ef3b1e4", 2251129),
    "es": ("70ecba276b8c96a692b120693a595d076ce94ad21d4b28311538a9fcbfe0f9d7", 819818),
    "hi": ("4dd0fb3c06f737a5481d705bc1dcac7876712a5815c9265908fbb3a0696cb654", 3179023),
    "vi": ("9d3baff6ba03e6793b25594217265ea59a136b9733833dca8a9582a84a78ff85", 1807239),
    "zh": ("57f01d2fff50cf3392805635b01445339f225ad5bf28ba8443b12f8dbd1e69dc", 1360698),
}

register(DatasetSpec(
    name="xquad-r",
    description="XQuAD-R (LAReQA): 1,190 questions x 11 languages, 11-way parallel; "
                "candidates = every sentence of every paragraph in every language",
    kind="lareqa",
    languages=tuple(_XQUAD_R_FILES),
    files=_lareqa_files("xquad-r", _XQUAD_R_COMMIT, _XQUAD_R_FILES),
    license="CC BY-SA 4.0",
    source=f"{_LAREQA_REPO}@{_XQUAD_R_COMMIT[:10]}",
    homepage=f"https://github.com/{_LAREQA_REPO}",
))

register(DatasetSpec(
    name="mlqa-r",
    description="MLQA-R (LAReQA, from MLQA dev): 1,148 question ids in 2-4 of 7 languages "
                "(4,199 questions)",
    kind="lareqa",
    languages=tuple(_MLQA_R_FILES),
    files=_lareqa_files("mlqa-r", _MLQA_R_COMMIT, _MLQA_R_FILES),
    license="CC BY-NC 4.0 (file shipped with the data); MLQA data: CC BY-SA 3.0",
    source=f"{_LAREQA_REPO}@{_MLQA_R_COMMIT[:10]}",
    homepage=f"https://github.com/{_LAREQA_REPO}",
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
        DataFile(path=f"miracl/{name_of(lang)}", url=url_of(lang), sha256=sha, language=lang,
                 size=size, role=role)
        for lang, (t_sha, t_size, q_sha, q_size) in _miracl.DEV_FILES.items()
        for role, name_of, url_of, sha, size in (
            ("topics", _miracl.topics_name, _miracl.topics_url, t_sha, t_size),
            ("qrels", _miracl.qrels_name, _miracl.qrels_url, q_sha, q_size),
        )
    ),
    license="Apache-2.0 (MIRACL); passages are Wikipedia text (CC BY-SA)",
    source="huggingface.co/datasets/miracl/miracl (main)",
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
        license=_sources.LAFAND.license,
        source=_sources.LAFAND.label,
        homepage=_sources.LAFAND.homepage,
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
    license=_sources.MASAKHANEWS.license,
    source=_sources.MASAKHANEWS.label,
    homepage=_sources.MASAKHANEWS.homepage,
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
        license=_sources.AFRIQA.license,
        source=_sources.AFRIQA.label,
        homepage=_sources.AFRIQA.homepage,
        pivot_languages=("en", "fr"),
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
        license=_sources.AFRIQA.license,
        source=_sources.AFRIQA.label,
        homepage=_sources.AFRIQA.homepage,
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
        license=_sources.SQUAD2FI.license,
        source=_sources.SQUAD2FI.label,
        homepage=_sources.SQUAD2FI.homepage,
    ))
