"""Language groups (script, resource level, ...) from an editable CSV table, and group-level means.

The packaged table ``polyir/resources/language_groups.csv`` has columns ``code,name,script,resource``;
every column after ``name`` is a grouping (a user file may add its own, e.g. ``family``).  Lines
starting with ``#`` are comments.  Codes may be written in any standard form (``eng``, ``sna-Latn``);
they are stored canonical (``polyir.languages.canonical_code``), and an unknown code is an error.  Reports use it to ask whether a model is weaker on, say,
non-Latin scripts or low-resource languages than a per-language table makes obvious.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from polyir.errors import DataFormatError, PolyirError, UnknownLanguageError
from polyir.languages import canonical_code, language_name

RESOURCE_LEVELS = ("high", "mid", "low")
UNLISTED = "unlisted"


def default_groups_path() -> Path:
    """The packaged table."""
    return Path(str(resources.files("polyir") / "resources" / "language_groups.csv"))


@dataclass(frozen=True)
class LanguageGroups:
    """A parsed table: ``columns`` are the groupings, ``rows`` map a code to its name and groups."""

    columns: tuple[str, ...]
    rows: dict[str, dict[str, str]]
    source: str

    def name(self, code: str) -> str:
        """English name of a code: the table's, else the standard one (``language_name``)."""
        return self.rows.get(code, {}).get("name") or language_name(code)

    def group(self, code: str, by: str) -> str:
        """The group of ``code`` in column ``by`` (``unlisted`` when the table lacks the code)."""
        if by not in self.columns:
            raise PolyirError(f"{self.source}: no grouping column {by!r}; columns: {', '.join(self.columns)}")
        return self.rows[code][by] if code in self.rows else UNLISTED

    def groups(self, codes: Iterable[str], by: str) -> dict[str, list[str]]:
        """Group -> the given codes in it, groups ordered (resource: high, mid, low; else by name)."""
        out: dict[str, list[str]] = {}
        for code in codes:
            out.setdefault(self.group(code, by), []).append(code)

        def key(g: str) -> tuple[int, int, str]:
            rank = RESOURCE_LEVELS.index(g) if by == "resource" and g in RESOURCE_LEVELS else len(RESOURCE_LEVELS)
            return (g == UNLISTED, rank, g)

        return {g: out[g] for g in sorted(out, key=key)}


def load_language_groups(path: Path | str | None = None) -> LanguageGroups:
    """Read and check a groups table (None: the packaged one); errors name the file and line."""
    packaged = path is None
    path = Path(path) if path is not None else default_groups_path()
    if not path.is_file():
        raise PolyirError(f"{path}: no such language groups file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    return parse_language_groups(text, "polyir/resources/language_groups.csv (packaged)" if packaged else str(path))


def parse_language_groups(text: str, source: str = "<groups>") -> LanguageGroups:
    """Parse the CSV text of a groups table (see the module docstring for the format)."""
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataFormatError(f"{source}: empty (expected a header such as code,name,script,resource)")
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    records = list(reader)
    header = [h.strip().lower() for h in records[0]]
    head_line = lines[0][0]
    if header[:2] != ["code", "name"] or len(header) < 3:
        raise DataFormatError(
            f"{source}, line {head_line}: the header must start with code,name and name at least one "
            f"grouping column (e.g. code,name,script,resource); got {','.join(header)}"
        )
    if len(set(header)) != len(header) or any(not h for h in header):
        raise DataFormatError(f"{source}, line {head_line}: empty or repeated column names in the header")
    rows: dict[str, dict[str, str]] = {}
    for (line_no, _), rec in zip(lines[1:], records[1:]):
        if len(rec) != len(header):
            raise DataFormatError(f"{source}, line {line_no}: {len(rec)} fields, the header has {len(header)}")
        values = {h: v.strip() for h, v in zip(header, rec)}
        empty = [h for h, v in values.items() if not v]
        if empty:
            raise DataFormatError(f"{source}, line {line_no}: empty {', '.join(empty)}")
        try:
            code = canonical_code(values["code"])
        except UnknownLanguageError as exc:
            raise DataFormatError(f"{source}, line {line_no}: {exc}") from None
        if code in rows:
            same = "" if code == values["code"].lower() else f" ({values['code']!r} is written {code!r})"
            raise DataFormatError(f"{source}, line {line_no}: language {code!r} is listed twice{same}")
        if "resource" in values and values["resource"] not in RESOURCE_LEVELS:
            raise DataFormatError(
                f"{source}, line {line_no}: resource must be one of {', '.join(RESOURCE_LEVELS)}, "
                f"not {values['resource']!r}"
            )
        rows[code] = {h: v for h, v in values.items() if h != "code"}
    if not rows:
        raise DataFormatError(f"{source}: a header but no language rows")
    return LanguageGroups(columns=tuple(header[2:]), rows=rows, source=source)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def group_means(pairs: Sequence[dict[str, Any]], groups: LanguageGroups, by: str) -> dict[str, Any]:
    """Group-level means of per-pair mAP (``pairs``: ``by_pair`` entries of a result).

    Per group G: ``mo`` = mean mAP(X->X) over X in G; ``cr_out`` = mean mAP(X->Y), X in G, Y != X;
    ``cr_in`` = mean mAP(X->Y), Y in G, X != Y.  ``cross`` maps G1 -> G2 -> mean mAP(X->Y) over
    X in G1, Y in G2, X != Y (each pair counts once, so big groups do not swamp small ones' cells).
    """
    langs = sorted({p["query"] for p in pairs} | {p["candidate"] for p in pairs})
    order = list(groups.groups(langs, by))
    of = {code: groups.group(code, by) for code in langs}
    per: dict[str, dict[str, list[float]]] = {g: {"mo": [], "cr_out": [], "cr_in": []} for g in order}
    cross: dict[str, dict[str, list[float]]] = {g: {h: [] for h in order} for g in order}
    for p in pairs:
        v = p.get("map")
        if v is None:
            continue
        gx, gy = of[p["query"]], of[p["candidate"]]
        if p["query"] == p["candidate"]:
            per[gx]["mo"].append(v)
            continue
        per[gx]["cr_out"].append(v)
        per[gy]["cr_in"].append(v)
        cross[gx][gy].append(v)
    return {
        "by": by,
        "groups": {g: sorted(c for c in langs if of[c] == g) for g in order},
        "per_group": {g: {k: _mean(v) for k, v in d.items()} for g, d in per.items()},
        "cross": {g: {h: _mean(v) for h, v in row.items()} for g, row in cross.items()},
    }


def group_per_language(
    per_language: dict[str, dict[str, Any]], groups: LanguageGroups, by: str, keys: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """Group -> mean of each per query language figure (e.g. ``mul``, ``ndcg@10``) over its languages."""
    out: dict[str, dict[str, float | None]] = {}
    for g, langs in groups.groups(per_language, by).items():
        out[g] = {}
        for key in keys:
            vals = [per_language[lang].get(key) for lang in langs]
            out[g][key] = _mean([v for v in vals if isinstance(v, (int, float))])
    return out
