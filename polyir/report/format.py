"""How the report writes a figure (``0.1234``, ``1210.0``, ``–``), a difference, and element ids."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_NUMBER = re.compile(r"[-+−]?\d+(?:\.\d+)?|–")


def fmt(key: str, value: Any) -> str:
    """A figure as text: rank distance with 1 decimal, counts as integers, other figures with 4."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if key.startswith("n_") or key in ("queries", "candidates", "passages"):
        return str(int(value))
    if not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.1f}" if key == "rank_distance" else f"{value:.4f}"


def signed(key: str, value: Any) -> str:
    """A difference with its sign (+0.0123, −4.5)."""
    if not isinstance(value, (int, float)) or np.isnan(value):
        return "–"
    text = fmt(key, abs(value))
    return ("−" if value < 0 else "+") + text


def p_value(p: Any) -> str:
    """A p-value with 4 significant digits, ``–`` when there is none."""
    return f"{p:.4g}" if isinstance(p, (int, float)) else "–"


def is_number(text: Any) -> bool:
    """True when a table cell is one number (or ``–``): such cells are right-aligned."""
    return bool(_NUMBER.fullmatch(str(text).strip()))


class Ids:
    """Unique, readable element ids."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-") or "section"
        name, i = base, 2
        while name in self.used:
            name, i = f"{base}-{i}", i + 1
        self.used.add(name)
        return name
