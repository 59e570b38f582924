"""Progress on long commands (migrate, prune, outbox replay), shown only when stderr is a
terminal and ``--quiet`` was not given: the current step as ``name (n of N)`` with a bar once
the number of steps is known, and the elapsed time, erased when the command ends. Scripts,
pipes and cron jobs get the plain output alone.

The command's worker thread reports through :class:`Steps` (rich's display is thread-safe).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class Steps:
    """Where a long command is: ``step(label, index, total)`` before each step. The base
    class shows nothing (not a terminal, or ``--quiet``)."""

    def step(self, label: str, index: int, total: int) -> None:
        """Step ``index`` (1-based) of ``total`` starts: ``label`` names it."""


class _Shown(Steps):
    def __init__(self, progress: Any, task: Any, what: str) -> None:
        self._progress, self._task, self._what = progress, task, what

    def step(self, label: str, index: int, total: int) -> None:
        self._progress.update(self._task, description=f"{self._what}: {label} "
                              f"({index} of {total})", total=max(total, 1),
                              completed=max(index - 1, 0), refresh=True)


@contextlib.contextmanager
def working(what: str, *, quiet: bool = False) -> Iterator[Steps]:
    """Show ``what`` (then each reported step, ``n of N``) on a terminal while the block
    runs; yields the :class:`Steps` to report to."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield Steps()
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(what, total=None)
        yield _Shown(progress, task, what)


QUIET_HELP = "No progress display on stderr (it is shown only on a terminal anyway)."
