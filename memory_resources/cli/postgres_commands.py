"""``memory-resources migrate``, ``maintain`` and ``prune`` for the PostgreSQL backend.

The database comes from ``--dsn`` or ``MEMORY_RESOURCES_POSTGRES_DSN``; the schema from
``--schema`` (default ``public``). A library error exits with code 2 and its message.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from typing import Any

import typer

from . import app
from .guard import exit_on_error, timeout_option

_ENV_DSN = "MEMORY_RESOURCES_POSTGRES_DSN"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

DSN_OPTION = typer.Option(
    None, "--dsn", help=f"libpq DSN or URL (default: ${_ENV_DSN}).", show_default=False
)
SCHEMA_OPTION = typer.Option("public", "--schema", help="Schema holding the memory tables.")


def parse_duration(text: str) -> dt.timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` as a timedelta (> 0)."""
    match = _DURATION.fullmatch(text)
    if not match or int(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r}: use a positive number with s, m, h, d or w, "
                                 "e.g. 90d")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


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
    timeout: float = timeout_option(60.0),
) -> None:
    """Apply pending PostgreSQL migrations (recorded in schema_migrations)."""
    from ..stores.postgres import PostgresPool
    from ..stores.postgres import migrate as run_migrations

    def run() -> list[Any]:
        pool = PostgresPool(_config(dsn, schema, timeout))
        try:
            applied = run_migrations(pool)
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


@app.command()
def prune(
    older_than: str = typer.Option(
        ..., "--older-than", help="Drop history/audit partitions older than this, e.g. 90d."
    ),
    dsn: str | None = DSN_OPTION,
    schema: str = SCHEMA_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    timeout: float = timeout_option(60.0),
) -> None:
    """Retention: drop whole month partitions older than --older-than; purge expired context."""
    from ..stores.postgres import PostgresStore

    age = parse_duration(older_than)

    def run() -> dict[str, Any]:
        config = _config(dsn, schema, timeout).model_copy(update={"auto_migrate": False})
        store = PostgresStore(config)
        try:
            return store.prune(age)
        finally:
            store.close()

    result = exit_on_error(run, timeout)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    dropped = result["dropped_partitions"]
    typer.echo(f"cut-off {result['cutoff']}: dropped {len(dropped)} partition(s)"
               + (f": {', '.join(dropped)}" if dropped else ""))
    typer.echo(f"purged {result['expired_contexts_purged']} expired context(s)")


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
