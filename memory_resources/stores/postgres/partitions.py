"""Month partitions of ``flow_run_history`` / ``audit_log``: coverage, creation, maintenance.

The application never needs DDL: migrations create a ``<table>_default`` partition that
takes any row whose month has no partition, and the owner creates months ahead with
``memory-resources migrate`` / ``memory-resources maintain`` (the SQL function
``memory_maintain_partitions`` of migration 007). :func:`coverage` is the store's read-only
check; only a store allowed to migrate (``auto_migrate`` and the owner's privileges) creates
missing months itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from ...errors import BackendError, MemoryValidationError, SchemaError, SchemaPermissionError
from ...log import get_logger
from .errors import BACKEND
from .migrate import _privilege_cause
from .pool import Cursor, PostgresPool
from .support import render

_log = get_logger(__name__)

PARENTS = ("flow_run_history", "audit_log")
"""The month-partitioned tables."""

MAX_MONTHS_AHEAD = 240

_COVERAGE = (
    "SELECT (SELECT coalesce(array_agg(c.relname::text), '{}') FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %(schema)s AND c.relname = ANY(%(names)s)),"
    " has_schema_privilege(%(schema)s, 'CREATE') AND (SELECT coalesce(bool_and("
    "pg_has_role(c.relowner, 'USAGE')), false) FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %(schema)s AND c.relname = ANY(%(parents)s))"
)


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Which expected partitions are missing, and whether the role could create them."""

    missing: list[str]
    current_missing: bool
    can_create: bool


@dataclasses.dataclass(frozen=True)
class MaintenanceReport:
    """What :func:`maintain` did: partitions created empty, partitions created by moving
    rows out of a default partition (rows moved), and rows left in each default."""

    schema: str
    created: list[str]
    moved: dict[str, int]
    remaining: dict[str, int]
    months_ahead: int
    until: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form (for ``--json``)."""
        return dataclasses.asdict(self)


def month_start(now: dt.datetime, offset: int = 0) -> dt.date:
    """The first day of the UTC month ``offset`` months after ``now``'s."""
    utc = now.astimezone(dt.timezone.utc)
    index = utc.year * 12 + utc.month - 1 + offset
    return dt.date(index // 12, index % 12 + 1, 1)


def expected_names(now: dt.datetime, months_ahead: int) -> list[str]:
    """The month partitions, from ``now``'s month to ``months_ahead`` later, of both tables."""
    months = [month_start(now, i) for i in range(months_ahead + 1)]
    return [f"{parent}_p{m:%Y_%m}" for parent in PARENTS for m in months]


def coverage(pool: PostgresPool, schema: str, now: dt.datetime, months_ahead: int
             ) -> Coverage:
    """One catalog read: missing month partitions and whether this role could add them
    (``CREATE`` on the schema and membership in the owner of both tables)."""
    names = expected_names(now, months_ahead)

    def read(cur: Cursor) -> Any:
        cur.execute(_COVERAGE, {"schema": schema, "names": names, "parents": list(PARENTS)})
        return cur.fetchone()

    present, can_create = pool.run(read)
    missing = [name for name in names if name not in set(present)]
    current = {f"{parent}_p{month_start(now):%Y_%m}" for parent in PARENTS}
    return Coverage(missing, bool(current.intersection(missing)), bool(can_create))


def keep_partitions(pool: PostgresPool, now: dt.datetime, months_ahead: int, *,
                    may_create: bool, create: Callable[[dt.datetime, int], int]) -> Coverage:
    """The store's monthly check: when months are missing, ``create`` them if the store
    ``may_create`` (``auto_migrate``) and the role could; else, when the current month is
    missing, log a warning naming ``memory-resources maintain``."""
    found = coverage(pool, pool.schema, now, months_ahead)
    if found.missing and may_create and found.can_create:
        create(now, months_ahead)
    elif found.current_missing:
        _log.warning("no partition for this month; rows go to the default partition",
                     schema=pool.schema, month=f"{now:%Y-%m}",
                     fix="run `memory-resources maintain` as the schema owner "
                         "(cron or the scheduled Prefect deployment)")
    return found


def check_months_ahead(months_ahead: Any) -> int:
    """``months_ahead`` as an int in 0..240, else :class:`MemoryValidationError`."""
    if (isinstance(months_ahead, bool) or not isinstance(months_ahead, int)
            or not 0 <= months_ahead <= MAX_MONTHS_AHEAD):
        raise MemoryValidationError(
            "months_ahead", f"must be an integer from 0 to {MAX_MONTHS_AHEAD}, "
            f"got {months_ahead!r}")
    return months_ahead


def maintain(pool: PostgresPool, now: dt.datetime, months_ahead: int,
             max_moves: int = 120) -> MaintenanceReport:
    """Create the default partitions and the months ``now``..``now + months_ahead``, then
    move rows out of the default partitions into partitions of their own month (at most
    ``max_moves`` such months per call). Needs the owner's privileges."""
    check_months_ahead(months_ahead)
    schema = pool.schema

    def run(cur: Cursor) -> list[tuple[Any, ...]]:
        cur.execute("SELECT to_regprocedure(%s)",
                    (f'"{schema}".memory_maintain_partitions(timestamptz, integer, integer)',))
        row = cur.fetchone()
        if row is None or row[0] is None:
            raise SchemaError(
                BACKEND, f"schema {schema!r} has no memory_maintain_partitions function "
                "(migration 007); run `memory-resources migrate` first")
        cur.execute("SET LOCAL statement_timeout = 0")
        cur.execute(render("SELECT * FROM {s}.memory_maintain_partitions(%s, %s, %s)",
                           schema, cur.connection), (now, months_ahead, max_moves))
        return [tuple(r) for r in cur.fetchall()]

    try:
        rows = pool.run(run, idempotent=False)
    except BackendError as exc:
        cause = _privilege_cause(exc)
        if cause is None:
            raise
        raise SchemaPermissionError(
            BACKEND, f"the connected role may not create partitions in schema {schema!r} "
            f"({' '.join(str(cause.pgerror or cause).split())}); run `memory-resources "
            "maintain` as the schema owner (docs/postgres.md, Roles)", pending=[],
        ) from exc
    created: list[str] = []
    moved: dict[str, int] = {}
    remaining: dict[str, int] = {}
    for _parent, name, action, count in rows:
        if action == "created":
            created.append(name)
        elif action == "moved":
            moved[name] = int(count)
        else:
            remaining[name] = int(count)
    until = month_start(now, months_ahead + 1).isoformat()
    return MaintenanceReport(schema, created, moved, remaining, months_ahead, until)
