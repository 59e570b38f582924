"""Store operations as data, so the sync pool (psycopg2) and the async driver (asyncpg) run
the same logic.

A repository method validates and encodes its input and returns an :class:`Op`: a generator
factory that yields the statements to run (:class:`Stmt`) and receives each one's result,
plus how to run it (retried or not, replica or primary, autocommit or one transaction,
partition upkeep first, expiry sweep after). :func:`run_sync` drives an Op on
:class:`~memory_resources.stores.postgres.store.PostgresStore`;
:class:`~memory_resources.stores.postgres.aio.AsyncPostgresStore` drives the same Op on
asyncpg. Validation, SQL text, control flow between statements and record building live
once, in the repositories (DESIGN decision 14).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Generator
from typing import Any, Generic, Literal, Protocol, TypeVar

from ...clock import Clock
from ...config import PostgresConfig
from ...errors import BackendError
from .errors import BACKEND
from .pool import Cursor, PostgresPool, execute_prepared

T = TypeVar("T")

Fetch = Literal["one", "all", "rowcount", "none"]


@dataclasses.dataclass(frozen=True)
class Stmt:
    """One statement: the rendered template ``name`` plus ``suffix`` (dynamic WHERE /
    ORDER text), its ``%(name)s`` parameters and what to send back (a row, all rows,
    the row count or nothing)."""

    name: str
    params: dict[str, Any]
    fetch: Fetch = "one"
    suffix: str = ""

    @property
    def prepared_name(self) -> str:
        return self.name.replace(".", "_")


Steps = Generator[Stmt, Any, T]


@dataclasses.dataclass(frozen=True)
class Op(Generic[T]):
    """An operation: ``steps()`` makes a fresh generator per attempt (a retry starts over)."""

    steps: Callable[[], Steps[T]]
    idempotent: bool = True
    read_only: bool = False
    autocommit: bool = True
    """Each statement is its own transaction (one round trip); False: all in ONE."""
    partitions_at: dt.datetime | None = None
    """Create this month's partitions first (once per month) when set."""
    purge_after: bool = False
    """Sweep expired contexts afterwards (at most every ``PURGE_INTERVAL``)."""


def single(stmt: Stmt, decode: Callable[[Any], T], **options: Any) -> Op[T]:
    """An Op of one statement whose result ``decode`` turns into the record."""
    def steps() -> Steps[T]:
        return decode((yield stmt))

    return Op(steps, **options)


def need_row(row: Any) -> tuple[Any, ...]:
    """The single row a statement must return."""
    if row is None:
        raise BackendError(BACKEND, "the statement returned no row")
    return tuple(row)


class PlanHost(Protocol):
    """What a repository reads while planning an Op, on either transport."""

    @property
    def clock(self) -> Clock: ...

    @property
    def max_payload_bytes(self) -> int: ...


class SyncHost(PlanHost, Protocol):
    """What :func:`run_sync` drives an Op on: the sync
    :class:`~memory_resources.stores.postgres.store.PostgresStore`."""

    @property
    def config(self) -> PostgresConfig: ...

    @property
    def pool(self) -> PostgresPool: ...

    def statement(self, name: str) -> str:
        """The rendered SQL of template ``name``."""
        ...

    def ensure_partitions(self, now: dt.datetime, months_ahead: int | None = None) -> None:
        """Create the partitions of ``now``'s month (once per month)."""
        ...

    def maybe_purge(self) -> None:
        """Sweep expired contexts when the purge interval has passed."""
        ...


@dataclasses.dataclass
class Repo:
    """A repository: plans Ops for ``store`` (either transport); ``sync``, the sync store,
    also runs them (None on the async store, which drives the plans itself)."""

    store: PlanHost
    sync: SyncHost | None = None

    def run(self, op: Op[T]) -> T:
        """Run ``op`` on the sync store."""
        if self.sync is None:
            raise TypeError(f"{type(self).__name__} has no sync store to run on")
        return run_sync(self.sync, op)


def run_sync(store: SyncHost, op: Op[T]) -> T:
    """Execute ``op`` on a sync PostgresStore (its pool, retries, prepared statements)."""
    if op.partitions_at is not None:
        store.ensure_partitions(op.partitions_at)
    enabled = store.config.prepared_statements

    def run(cur: Cursor) -> T:
        steps = op.steps()
        reply: Any = None
        try:
            while True:
                stmt = steps.send(reply)
                execute_prepared(cur, stmt.prepared_name, store.statement(stmt.name)
                                 + stmt.suffix, stmt.params, enabled=enabled)
                if stmt.fetch == "one":
                    reply = cur.fetchone()
                elif stmt.fetch == "all":
                    reply = cur.fetchall()
                elif stmt.fetch == "rowcount":
                    reply = cur.rowcount
                else:
                    reply = None
        except StopIteration as done:
            value: T = done.value
            return value

    result: T = store.pool.run(run, idempotent=op.idempotent, read_only=op.read_only,
                               single_statement=op.autocommit)
    if op.purge_after:
        store.maybe_purge()
    return result


__all__ = ["Fetch", "Op", "PlanHost", "Repo", "Steps", "Stmt", "SyncHost", "need_row",
           "run_sync", "single"]
