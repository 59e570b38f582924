"""The one way a command reports a library error (message on stderr, exit code 2) and
keeps its ``--timeout``.

``--timeout`` is the command's time budget: PostgreSQL calls made by the command share it
(:func:`~memory_resources.stores.postgres.pool.call_budget`), so they end in a typed error
before it; and whatever else blocks, the command gives up once it is spent (plus
:data:`GRACE`) with "timed out" on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..errors import MemoryResourcesError

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
GRACE = 0.5
"""Seconds past ``--timeout`` before a command that did not end is abandoned."""

_STANDALONE = False
"""True in the console script: an abandoned command then exits the process at once (its
blocked worker thread could hold locks that exit-time cleanup would wait for)."""


def timeout_option(default: float = DEFAULT_TIMEOUT) -> Any:
    """The ``--timeout SECONDS`` option every command takes."""
    return typer.Option(default, "--timeout", min=0.1, help="Give up after this many "
                        "seconds (exit code 2); backend calls share this budget.")


def set_standalone() -> None:
    """Mark this process as the console script (see :data:`_STANDALONE`)."""
    global _STANDALONE
    _STANDALONE = True


def exit_on_error(action: Callable[[], T], timeout: float | None = None) -> T:
    """Run ``action``; a :class:`MemoryResourcesError` exits 2 with its message on stderr.
    With ``timeout``, ``action`` runs within that budget (see the module docstring)."""
    try:
        if timeout is None:
            return action()
        return _within(action, timeout)
    except MemoryResourcesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


def _within(action: Callable[[], T], timeout: float) -> T:
    from ..stores.postgres.pool import call_budget

    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with call_budget(timeout):
                outcome["value"] = action()
        except BaseException as exc:  # handed to the waiting command
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="memory-resources-command", daemon=True)
    worker.start()
    worker.join(timeout + GRACE)
    if worker.is_alive():
        typer.echo(f"error: timed out after {timeout:g}s (--timeout); a backend does not "
                   "answer", err=True)
        if _STANDALONE:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        raise typer.Exit(code=2)
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
