"""``memory-resources prune --sqlite PATH``: retention of the embedded SQLite file (see
:mod:`memory_resources.stores.sqlite.retention`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import typer

from .guard import exit_on_error
from .progress import working


def prune_sqlite(path: Path, age: dt.timedelta, *, dry_run: bool, as_json: bool,
                 timeout: float, quiet: bool = False) -> None:
    """Delete history/audit rows older than ``age`` and expired contexts, then VACUUM;
    ``dry_run`` counts only. A missing file exits 2 (it would otherwise be created)."""
    from ..config import EmbeddedConfig
    from ..stores.sqlite import SQLiteStore

    if not path.is_file():
        typer.echo(f"error: {path} is not a SQLite file of memory_resources", err=True)
        raise typer.Exit(code=2)

    with working(f"pruning {path}" + (" (dry run)" if dry_run else ""),
                 quiet=quiet) as steps:
        def run() -> dict[str, Any]:
            store = SQLiteStore(EmbeddedConfig(path=str(path)))
            try:
                return store.prune(age, dry_run=dry_run, on_step=steps.step)
            finally:
                store.close()

        result = exit_on_error(run, timeout)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    for table, rows in result["deleted_rows"].items():
        typer.echo(f"cut-off {result['cutoff']}: {verb} {rows} row(s) from {table}")
    typer.echo(f"{'would purge' if dry_run else 'purged'} "
               f"{result['expired_contexts_purged']} expired context(s)")
    if not dry_run:
        typer.echo(f"file: {result['bytes_before']} -> {result['bytes_after']} bytes")
