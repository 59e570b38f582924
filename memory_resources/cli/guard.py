"""The one way a command reports a library error: message on stderr, exit code 2."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from ..errors import MemoryResourcesError

T = TypeVar("T")


def exit_on_error(action: Callable[[], T]) -> T:
    """Run ``action``; a :class:`MemoryResourcesError` exits 2 with its message on stderr."""
    try:
        return action()
    except MemoryResourcesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
