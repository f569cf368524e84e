"""Hugging Face ``datasets`` as a row source: a hub dataset, or a dataset folder on disk.

A reference reads ``NAME[:CONFIG][@SPLIT]`` (the part of an ``hf:`` source before its options, see
``polyir.data.formats``):

* ``NAME`` a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (it holds
  ``dataset_info.json`` or ``dataset_dict.json``): read with ``datasets.load_from_disk``;
* ``NAME`` any other folder (data files such as ``train.jsonl`` or ``*.parquet``): read with
  ``datasets.load_dataset(NAME, split=SPLIT)``, which picks its packaged json/csv/parquet builder
  and needs no network;
* otherwise ``NAME`` is a hub id (``org/name``): ``datasets.load_dataset(NAME, CONFIG, split=SPLIT)``,
  downloaded once into datasets' own cache (``HF_HOME``); ``HF_DATASETS_OFFLINE=1`` reads that cache only.

``SPLIT`` defaults to ``train``. A folder holding a single ``Dataset`` has no splits: ``@SPLIT`` must
then be left out (or be ``train``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyir.errors import DataFormatError, DatasetNotFoundError, PolyirError

DEFAULT_SPLIT = "train"


@dataclass(frozen=True)
class HubRef:
    """Which ``datasets`` dataset to read: a hub id or a local folder, its config and split."""

    name: str
    config: str | None = None
    split: str = DEFAULT_SPLIT
    split_given: bool = False

    @property
    def label(self) -> str:
        """``hf:NAME[:CONFIG]@SPLIT``: how errors name the source."""
        return f"hf:{self.name}{':' + self.config if self.config else ''}@{self.split}"

    @property
    def local(self) -> Path | None:
        """The folder ``name`` names, if it is one."""
        path = Path(self.name).expanduser()
        return path if path.is_dir() else None


def parse_hub_ref(text: str) -> HubRef:
    """``NAME[:CONFIG][@SPLIT]`` -> ``HubRef``; an existing folder is taken whole as NAME."""
    body = text.strip()
    split, split_given = DEFAULT_SPLIT, False
    if "@" in body and not Path(body).expanduser().exists():
        body, split = body.rsplit("@", 1)
        split_given = True
        if not split:
            raise PolyirError(f"hf:{text}: empty split after '@' (e.g. hf:{body}@train)")
    config = None
    if ":" in body and not Path(body).expanduser().exists():
        body, config = body.split(":", 1)
        if not config:
            raise PolyirError(f"hf:{text}: empty config after ':'")
    if not body:
        raise PolyirError(f"hf:{text}: no dataset name (e.g. hf:org/name:config@train or hf:./my-dataset)")
    return HubRef(name=body, config=config, split=split, split_given=split_given)


def is_saved_dataset(folder: Path) -> bool:
    """True when ``folder`` was written by ``save_to_disk`` (a Dataset or a DatasetDict)."""
    dataset = (folder / "dataset_info.json").is_file() and (folder / "state.json").is_file()
    return dataset or (folder / "dataset_dict.json").is_file()


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a run-time dependency
        raise PolyirError("hf: sources need the `datasets` package: pip install datasets") from exc
    return datasets


def _from_disk(ref: HubRef, folder: Path) -> Any:
    datasets = _datasets()
    if ref.config:
        raise PolyirError(f"{ref.label}: a dataset folder has no config; drop ':{ref.config}'")
    try:
        loaded = datasets.load_from_disk(str(folder))
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{folder}: cannot read the dataset folder ({exc})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if ref.split not in loaded:
            raise DatasetNotFoundError(
                f"{folder}: no split {ref.split!r}; the folder holds {', '.join(loaded) or 'none'}"
                f" (choose one with hf:{folder}@SPLIT)"
            )
        return loaded[ref.split]
    if ref.split_given and ref.split != DEFAULT_SPLIT:
        raise DatasetNotFoundError(f"{folder}: holds one dataset without splits; drop '@{ref.split}'")
    return loaded


def load_hub_dataset(ref: HubRef) -> Any:
    """The ``datasets.Dataset`` a reference names (rules in the module doc)."""
    folder = ref.local
    if folder is not None and is_saved_dataset(folder):
        return _from_disk(ref, folder)
    datasets = _datasets()
    try:
        return datasets.load_dataset(str(folder) if folder else ref.name, ref.config, split=ref.split)
    except ValueError as exc:  # e.g. an unknown split or config
        raise DatasetNotFoundError(f"{ref.label}: {exc}".split("\n")[0]) from exc
    except Exception as exc:  # network, unknown repository, gated dataset: datasets' own exception types
        where = "the folder's data files" if folder else "the Hugging Face hub (needs a network or its cache)"
        raise DatasetNotFoundError(
            f"{ref.label}: cannot load it from {where}: {type(exc).__name__}: {exc}".split("\n")[0]
        ) from exc


def hub_rows(ref: HubRef) -> tuple[list[str], Iterator[tuple[str, dict[str, Any]]]]:
    """The dataset's column names, and ``(where, row)`` for every row (``where`` names the row)."""
    ds = load_hub_dataset(ref)
    if len(ds) == 0:
        raise DataFormatError(f"{ref.label}: the dataset is empty (no rows)")

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for i, row in enumerate(ds):
            yield f"{ref.label}: row {i}", row

    return list(ds.column_names), rows()
