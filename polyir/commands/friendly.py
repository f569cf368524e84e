"""What every ``polyir`` command shares: bad input and disk errors as one red line, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from polyir.errors import PolyirError

console = Console(stderr=True)

DATA_DIR_HELP = "Folder holding the dataset files (default: $POLYIR_DATA_DIR, then the user cache, then download)."


def one_line(exc: BaseException) -> str:
    """The message of a PolyirError, or of an OSError as ``PATH: reason`` (a read-only or full disk)."""
    if isinstance(exc, OSError) and not isinstance(exc, PolyirError):
        where = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or str(exc) or exc.__class__.__name__
        message = f"{where}: {reason}" if where else reason
    else:
        message = str(exc)
    return " ".join(message.split())


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a PolyirError (or an OSError: a disk that is full or read-only) as one red line and exit 2,
    instead of a traceback. Wrapping twice is harmless."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (PolyirError, OSError) as exc:
            console.print(f"[red]error:[/red] {escape(one_line(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def wrap_group(group: typer.Typer) -> None:
    """Wrap every command of a sub-app (``polyir data ...``) with :func:`friendly_errors`."""
    for command in group.registered_commands:
        if command.callback is not None:
            command.callback = friendly_errors(command.callback)
