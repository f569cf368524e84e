"""What a registered dataset is (its files, with URL and sha256; its kind's loader) and the table of them.

``REGISTRY`` maps names to :class:`DatasetSpec`; ``LOADERS`` maps a kind to the :class:`KindLoader` that
reads its files. The built-in datasets are registered by ``polyir.data.catalog`` (imported by
``polyir.data.registry``, which finds, downloads and loads their files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from polyir.data import formats as _formats
from polyir.data.types import ParallelQACorpus, RetrievalTask
from polyir.errors import DatasetNotFoundError


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
    queries_of: str | None = None  # the dataset whose queries (ids, pool, relevance) this one holds, in other texts

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
