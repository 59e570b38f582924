"""``memory-resources outbox status`` / ``outbox replay``: records the capture hooks kept.

(``history`` and ``outputs`` commands are added here by the capture CLI.)
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import typer

from . import app

outbox_app = typer.Typer(
    help="Records a capture hook could not write, kept until replayed.", no_args_is_help=True
)
app.add_typer(outbox_app, name="outbox")

_OUTBOX_OPTION = typer.Option(
    None, "--outbox", help="Outbox file (default: $MEMORY_RESOURCES_OUTBOX, else "
    "outbox.db in $MEMORY_RESOURCES_HOME).")


def _open(path: Path | None) -> Any:
    from ..prefect.outbox import Outbox

    return Outbox(path)


@outbox_app.command("status")
def outbox_status(
    path: Path | None = _OUTBOX_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Pending records per target and kind; exit code 1 when any record waits."""
    from rich.console import Console
    from rich.table import Table

    outbox = _open(path)
    rows = outbox.counts()
    outbox.close()
    if as_json:
        typer.echo(json.dumps({"outbox": str(outbox.path), "pending": [
            {"target": t, "label": label, "kind": kind, "count": n, "oldest": oldest}
            for t, label, kind, n, oldest in rows]}, indent=2))
    else:
        console = Console()
        if not rows:
            console.print(f"outbox {outbox.path}: empty")
        else:
            table = Table(title=f"outbox {outbox.path}")
            for column in ("target", "kind", "pending", "oldest"):
                table.add_column(column)
            for _target, label, kind, count, oldest in rows:
                when = dt.datetime.fromtimestamp(oldest, dt.timezone.utc).isoformat(
                    timespec="seconds") if oldest else ""
                table.add_row(label, kind, str(count), when)
            console.print(table)
    if rows:
        raise typer.Exit(code=1)


@outbox_app.command("replay")
def outbox_replay(
    path: Path | None = _OUTBOX_OPTION,
    block: str | None = typer.Option(
        None, "--block", help="Name of a saved MemoryStore block to replay into."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write the kept records to their stores (idempotent); exit code 1 if any remain."""
    from rich.console import Console
    from rich.table import Table

    from ..prefect.replay import replay_outbox

    memory = None
    if block is not None:
        from ..blocks.store import MemoryStore

        try:
            loader: Any = MemoryStore.load
            memory = loader(block, _sync=True)
        except Exception as exc:
            typer.echo(f"error: cannot load MemoryStore block {block!r}: {exc}", err=True)
            raise typer.Exit(code=2) from None
    outbox = _open(path)
    results = replay_outbox(outbox, memory=memory)
    outbox.close()
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        table = Table(title=f"outbox replay {outbox.path}")
        for column in ("target", "written", "skipped", "remaining", "error"):
            table.add_column(column)
        for r in results:
            table.add_row(r.label, str(r.written), str(r.skipped), str(r.remaining),
                          r.error or "")
        Console().print(table if results else f"outbox {outbox.path}: nothing to replay")
    if any(r.remaining for r in results):
        raise typer.Exit(code=1)
