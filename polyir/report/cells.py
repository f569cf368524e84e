"""Cells and rows of the published Markdown tables: number formats shared by every table renderer."""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "?"  # a cell whose figure is in no stored file
MINUS = "−"  # the README writes negative differences with U+2212


def markdown_rows(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (``align``: ``l`` or ``r`` per column), lines joined with newlines, no trailing one."""
    sep = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    lines = ["| " + " | ".join(header) + " |", sep]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def fixed(value: float | None, digits: int) -> str:
    """``value`` with ``digits`` decimals, or :data:`MISSING`."""
    return MISSING if value is None else f"{value:.{digits}f}"


def signed(value: float, digits: int) -> str:
    """``value`` with its sign, negative with U+2212."""
    return f"{value:+.{digits}f}".replace("-", MINUS)


def thousands(value: float | None, digits: int = 0) -> str:
    """``value`` with thousands separators, or :data:`MISSING`."""
    return MISSING if value is None else f"{value:,.{digits}f}"
