"""Reading the records of source files (JSON Lines, TSV) with errors that name the file and line."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polyir.errors import DataFormatError


def read_utf8(path: Path | str) -> str:
    """A UTF-8 text file's content (a leading BOM dropped); undecodable bytes name their line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{path}: line {line}: not UTF-8 text ({exc.reason})") from exc


def json_lines(path: Path | str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a line that is not a JSON object is an error."""
    out: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(read_utf8(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}: line {i}: not JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{path}: line {i}: expected a JSON object, got {type(record).__name__}")
        out.append((i, record))
    if not out:
        raise DataFormatError(f"{path}: no records (the file is empty or holds only blank lines)")
    return out


def text_field(record: Mapping[str, Any], key: str, where: str, *, what: str | None = None) -> str:
    """``record[key]`` as a non-empty string; missing, not a string or blank is a ``DataFormatError``."""
    label = what or repr(key)
    if key not in record:
        raise DataFormatError(f"{where}: missing {label}")
    value = record[key]
    if not isinstance(value, str):
        raise DataFormatError(f"{where}: {label} should be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataFormatError(f"{where}: empty {label}")
    return value


def tsv_records(path: Path | str, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(first line number, row) per record of a TSV with a header (quoted fields may span lines).

    The header must name every one of ``columns`` (others are kept too); a record with a different
    number of fields than the header is an error naming its line.
    """
    text = read_utf8(path)
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # article bodies exceed csv's 128 KiB default
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(f"{path}: the file is empty (expected a header: {', '.join(columns)})") from None
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataFormatError(
                f"{path}: line 1: the header lacks {', '.join(missing)} (expected {', '.join(columns)},"
                f" got {', '.join(header) or 'nothing'})"
            )
        out: list[tuple[int, dict[str, str]]] = []
        start = reader.line_num + 1
        for fields in reader:
            if fields:
                if len(fields) != len(header):
                    raise DataFormatError(
                        f"{path}: line {start}: {len(fields)} tab-separated fields, the header has"
                        f" {len(header)} ({', '.join(header)})"
                    )
                out.append((start, dict(zip(header, fields))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataFormatError(f"{path}: line {reader.line_num}: {exc}") from None
    finally:
        csv.field_size_limit(limit)
    return out
