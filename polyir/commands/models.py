"""``polyir models``: the models that work offline."""

from __future__ import annotations

from rich.console import Console


def models_command() -> None:
    """Models that work offline (shipped inside PyPI packages)."""
    from polyir.models.packaged import PACKAGED_MODELS

    for name, desc in PACKAGED_MODELS.items():
        Console().print(f"[bold]{name}[/bold]  {desc}")
