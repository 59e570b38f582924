"""``memory-resources migrate``, ``maintain`` and ``prune`` for the PostgreSQL backend
(``prune --sqlite PATH``: retention of the embedded SQLite file).

The database comes from ``--dsn`` or ``MEMORY_RESOURCES_POSTGRES_DSN``; the schema from
``--schema`` (default ``public``). A library error exits with code 2 and its message.
``migrate --status`` lists applied and pending migrations; ``prune --dry-run`` shows what
would go and changes nothing. On a terminal, migrate and prune show their progress on stderr
(``--quiet`` turns it off).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import typer

from ..validation import MAX_RETENTION_SECONDS
from . import app
from .guard import exit_on_error, timeout_option
from .progress import QUIET_HELP, working

_ENV_DSN = "MEMORY_RESOURCES_POSTGRES_DSN"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

DSN_OPTION = typer.Option(
    None, "--dsn", help=f"libpq DSN or URL (default: ${_ENV_DSN}).", show_default=False
)
SCHEMA_OPTION = typer.Option("public", "--schema", help="Schema holding the memory tables.")
SQLITE_OPTION = typer.Option(
    None, "--sqlite", help="Prune this embedded SQLite file instead (rows older than "
    "--older-than, then VACUUM so the file shrinks).", show_default=False)


def parse_duration(text: str) -> dt.timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` as a timedelta (> 0)."""
    match = _DURATION.fullmatch(text)
    if not match or int(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r}: use a positive number with s, m, h, d or w, "
                                 "e.g. 90d")
    try:
        age = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        age = dt.timedelta.max
    if age.total_seconds() > MAX_RETENTION_SECONDS:
        raise typer.BadParameter(f"{text!r}: at most {MAX_RETENTION_SECONDS // 86400} days")
    return age


def _config(dsn: str | None, schema: str, timeout: float) -> Any:
    from ..config import PostgresConfig, parse_config

    dsn = dsn or os.environ.get(_ENV_DSN)
    if not dsn:
        typer.echo(f"error: give --dsn or set {_ENV_DSN}", err=True)
        raise typer.Exit(code=2)
    config: PostgresConfig = parse_config(
        PostgresConfig, {"dsn": dsn, "schema": schema, "operation_timeout": timeout},
        "postgres_config")
    return config


@app.command()
def migrate(
    dsn: str | None = DSN_OPTION,
    schema: str = SCHEMA_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print what was applied as JSON."),
    status: bool = typer.Option(
        False, "--status", help="List applied and pending migrations; apply nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    timeout: float = timeout_option(60.0),
) -> None:
    """Apply pending PostgreSQL migrations (recorded in schema_migrations)."""
    from ..stores.postgres import PostgresPool
    from ..stores.postgres import migrate as run_migrations

    if status:
        _migration_status(dsn, schema, as_json, timeout)
        return

    with working(f"migrating schema {schema!r}", quiet=quiet) as steps:
        def run() -> list[Any]:
            pool = PostgresPool(_config(dsn, schema, timeout))
            try:
                applied = run_migrations(
                    pool, on_apply=lambda m, index, total: steps.step(m.name, index, total))
                _top_up_partitions(pool)
                return applied
            finally:
                pool.close()

        applied = exit_on_error(run, timeout)
    if as_json:
        typer.echo(json.dumps([vars(m) for m in applied], indent=2))
        return
    if not applied:
        typer.echo(f"schema {schema!r} is up to date; nothing applied")
    for migration in applied:
        typer.echo(f"applied {migration.name} (version {migration.version}, "
                   f"checksum {migration.checksum[:12]}) at {migration.applied_at}")


def _migration_status(dsn: str | None, schema: str, as_json: bool, timeout: float) -> None:
    """Print the applied migrations (with when) and the pending ones; change nothing."""
    from ..stores.postgres import PostgresPool
    from ..stores.postgres.migrate import applied_migrations, load_migrations

    def run() -> list[Any]:
        pool = PostgresPool(_config(dsn, schema, timeout))
        try:
            return applied_migrations(pool)
        finally:
            pool.close()

    applied = exit_on_error(run, timeout)
    files = {m.version: m for m in load_migrations()}
    pending = [m for v, m in sorted(files.items()) if v not in {a.version for a in applied}]
    changed = [a.name for a in applied
               if a.version in files and files[a.version].checksum != a.checksum]
    if as_json:
        typer.echo(json.dumps({"applied": [vars(m) for m in applied],
                               "pending": [{"version": m.version, "name": m.name}
                                           for m in pending],
                               "changed_after_applied": changed}, indent=2))
        return
    for m in applied:
        mark = "  (file changed since!)" if m.name in changed else ""
        typer.echo(f"applied  {m.version:>4} {m.name} at {m.applied_at}{mark}")
    for m in pending:
        typer.echo(f"pending  {m.version:>4} {m.name}")
    typer.echo(f"schema {schema!r}: {len(applied)} applied, {len(pending)} pending")


@app.command()
def prune(
    older_than: str = typer.Option(
        ..., "--older-than", help="Drop history/audit partitions older than this, e.g. 90d."
    ),
    dsn: str | None = DSN_OPTION,
    schema: str = SCHEMA_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be dropped or deleted; change nothing."),
    sqlite: Path | None = SQLITE_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    timeout: float = timeout_option(60.0),
) -> None:
    """Retention: drop whole month partitions older than --older-than; purge expired context
    (with --sqlite: delete old history/audit rows of that file, then VACUUM it)."""
    from ..stores.postgres import PostgresStore

    age = parse_duration(older_than)
    if sqlite is not None:
        from .sqlite_retention import prune_sqlite

        prune_sqlite(sqlite, age, dry_run=dry_run, as_json=as_json, timeout=timeout,
                     quiet=quiet)
        return

    with working(f"pruning schema {schema!r}" + (" (dry run)" if dry_run else ""),
                 quiet=quiet) as steps:
        def run() -> dict[str, Any]:
            config = _config(dsn, schema, timeout).model_copy(update={"auto_migrate": False})
            store = PostgresStore(config)
            try:
                if dry_run:
                    from ..stores.postgres.retention import preview

                    now = dt.datetime.fromtimestamp(store.clock.time(), dt.timezone.utc)
                    return preview(store.pool, schema, now - age)
                return store.prune(age, on_step=steps.step)
            finally:
                store.close()

        result = exit_on_error(run, timeout)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    dropped = result["dropped_partitions"]
    verb = "would drop" if dry_run else "dropped"
    typer.echo(f"cut-off {result['cutoff']}: {verb} {len(dropped)} partition(s)"
               + (f": {', '.join(dropped)}" if dropped else ""))
    for table, rows in result.get("default_partition_rows", {}).items():
        typer.echo(f"would delete {rows} row(s) from {table}")
    typer.echo(f"{'would purge' if dry_run else 'purged'} "
               f"{result['expired_contexts_purged']} expired context(s)")


def _top_up_partitions(pool: Any) -> Any:
    """After migrating: create the months ahead that are missing (``maintain``'s first step)."""
    from ..stores.postgres.partitions import maintain as maintain_partitions

    now = dt.datetime.now(dt.timezone.utc)
    return maintain_partitions(pool, now, pool.config.partition_months_ahead)


@app.command()
def maintain(
    months_ahead: int = typer.Option(
        6, "--months-ahead", min=0, max=240,
        help="Month partitions to keep ahead of the current month."),
    dsn: str | None = DSN_OPTION,
    schema: str = SCHEMA_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    timeout: float = timeout_option(300.0),
) -> None:
    """Create month partitions ahead and move rows out of the default partitions (run it
    as the schema owner from cron or the scheduled Prefect deployment; monthly is enough)."""
    from ..stores.postgres import PostgresPool
    from ..stores.postgres.partitions import maintain as maintain_partitions

    def run() -> Any:
        pool = PostgresPool(_config(dsn, schema, timeout))
        try:
            return maintain_partitions(pool, dt.datetime.now(dt.timezone.utc), months_ahead)
        finally:
            pool.close()

    report = exit_on_error(run, timeout)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    typer.echo(f"schema {schema!r}: partitions cover every month before {report.until}")
    typer.echo(f"created {len(report.created)} partition(s)"
               + (f": {', '.join(report.created)}" if report.created else ""))
    for name, rows in report.moved.items():
        typer.echo(f"moved {rows} row(s) out of the default partition into {name}")
    for name, rows in report.remaining.items():
        typer.echo(f"{name}: {rows} row(s) left")
