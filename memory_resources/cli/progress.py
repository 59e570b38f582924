"""Progress on long commands (migrate, prune, outbox replay), shown only when stderr is a
terminal: a spinner with the step and the elapsed time, erased when the command ends.
Scripts, pipes and cron jobs get the plain output alone."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """Show ``what`` with a spinner and elapsed time on a terminal while the block runs."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(what, total=None)
        yield
