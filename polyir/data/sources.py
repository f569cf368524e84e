"""Pinned public sources: repository and commit of each data folder, and every file's sha256.

The file table is data, not code: ``polyir/resources/sources.csv`` has one row per downloadable file
(``path`` under the data folder, ``source_path`` in the repository, ``sha256``, ``bytes``). A row with
an empty sha256 is a file of the pinned commit whose checksum polyir does not know (NTREX-128 languages
that were never copied here): it is downloaded from the commit-pinned URL, and the reader records the
sha256 it computed (``notes["unpinned_files"]``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from polyir.errors import DataFormatError

TABLE = "sources.csv"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


def sha256_of(path: Path | str) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Source:
    """A data folder's origin: a public repository at a pinned commit."""

    folder: str  # top folder under the data directory, e.g. "lafand-mt"
    repository: str  # GitHub owner/name
    commit: str
    license: str

    def url(self, source_path: str) -> str:
        """Public raw URL of a file of the pinned commit."""
        return f"https://raw.githubusercontent.com/{self.repository}/{self.commit}/{quote(source_path)}"

    @property
    def label(self) -> str:
        """``owner/name@commit10`` as shown in ``polyir data list``."""
        return f"{self.repository}@{self.commit[:10]}"

    @property
    def homepage(self) -> str:
        return f"https://github.com/{self.repository}"


@dataclass(frozen=True)
class SourceFile:
    """One row of the table."""

    path: str  # relative to the data folder, starts with the source's folder
    source_path: str  # path in the source repository
    sha256: str  # "" when not pinned
    size: int | None


NTREX = Source("ntrex-128", "MicrosoftTranslator/NTREX", "8561f6a622db9edad1217683e5c83daefd8bb2bf",
               "CC BY-SA 4.0")
LAFAND = Source("lafand-mt", "masakhane-io/lafand-mt", "d441f8b063d63e95eafb72e84317359e27abf95e",
                "CC BY-NC 4.0 (data, research only; code GPL-3.0)")
MASAKHANEWS = Source("masakhane-news", "masakhane-io/masakhane-news", "819be052e79e0a600e0ed4a7356594681cb5c4f3",
                     "AFL-3.0 (Hugging Face dataset card; the repository has no license file)")
AFRIQA = Source("afriqa", "masakhane-io/afriqa", "5c29933753692c28773c34ac1f68482007f1d2bb", "CC BY 4.0")
SQUAD2FI = Source("squad2-fi", "TurkuNLP/squad2-fi", "6034cec31c4261b3f5e4f92ddee871ff874d7473",
                  "Apache-2.0 (repository); SQuAD 2.0 text: CC BY-SA 4.0")
XQUAD_R = Source("xquad-r", "google-research-datasets/lareqa", "9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c",
                 "CC BY-SA 4.0")
MLQA_R = Source("mlqa-r", "google-research-datasets/lareqa", "354d67d1cd066854cdfbf5ad0e6105528976141d",
                "CC BY-NC 4.0 (file shipped with the data); MLQA data: CC BY-SA 3.0")  # the last commit that had it


def parse_sources(text: str, where: str = TABLE) -> dict[str, SourceFile]:
    """Rows of a sources table by path; a malformed row is a ``DataFormatError`` naming its line."""
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.startswith("#")]
    records = list(csv.reader(io.StringIO("\n".join(ln for _, ln in lines))))
    if not records or records[0] != ["path", "source_path", "sha256", "bytes"]:
        raise DataFormatError(f"{where}: the header must be path,source_path,sha256,bytes")
    out: dict[str, SourceFile] = {}
    for (line, _), rec in zip(lines[1:], records[1:]):
        if len(rec) != 4 or not rec[0] or not rec[1]:
            raise DataFormatError(f"{where}: line {line}: expected path,source_path,sha256,bytes")
        path, source_path, sha, size = rec
        if sha and not _SHA256.fullmatch(sha):
            raise DataFormatError(f"{where}: line {line}: sha256 must be 64 lower-case hex digits or empty")
        if size and not size.isdigit():
            raise DataFormatError(f"{where}: line {line}: bytes must be a whole number or empty")
        if path in out:
            raise DataFormatError(f"{where}: line {line}: {path} is listed twice")
        out[path] = SourceFile(path, source_path, sha, int(size) if size else None)
    return out


@lru_cache(maxsize=1)
def _table() -> dict[str, SourceFile]:
    text = (resources.files("polyir") / "resources" / TABLE).read_text(encoding="utf-8")
    return parse_sources(text, f"polyir/resources/{TABLE}")


def source_files(source: Source) -> dict[str, SourceFile]:
    """The table's rows under ``source.folder``, by path, in table order."""
    prefix = source.folder + "/"
    return {p: f for p, f in _table().items() if p.startswith(prefix)}


def source_file(source: Source, path: str) -> SourceFile:
    """One row (``path`` relative to the data folder); a missing row is a ``KeyError`` naming it."""
    try:
        return source_files(source)[path]
    except KeyError:
        raise KeyError(f"{path}: not in polyir/resources/{TABLE}") from None
