"""PostgresStore: every capability except vectors on one PostgreSQL schema.

Implements Lifecycle, RunHistory, TaskOutputs, AuditLog, ContextStore, EventLog and
LockManager (see :mod:`memory_resources.protocols`). Each write and its audit row are one
statement. Connecting needs only row privileges when the schema is current: migrations run
only when some are pending, and month partitions of ``flow_run_history`` / ``audit_log`` are
created by the owner (``migrate`` / ``maintain``); a row whose month has no partition goes
to the default partition. A store that may migrate (``auto_migrate`` and an owner role) also
creates missing months itself, on connect and when its clock enters a new month.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...clock import SYSTEM_CLOCK, Clock
from ...config import PostgresConfig, parse_config
from ...errors import BackendError, SchemaError
from ...log import get_logger
from ...protocols import StepReport
from ...records import (
    AuditRecord,
    ContextRecord,
    EventRecord,
    FlowRunRecord,
    FlowRunWrite,
    HealthReport,
    JSONDict,
    TaskOutputRecord,
    TaskOutputWrite,
)
from ...validation import require_age
from . import audit, blobs, context, history, locks, outputs
from .errors import BACKEND
from .local import start_local_server
from .migrate import AppliedMigration, migrate
from .partitions import MaintenanceReport, check_months_ahead, keep_partitions, maintain
from .pool import HEALTH_TIMEOUT, Cursor, PostgresPool, call_budget
from .stats import TABLES, collect_stats
from .support import one, render

if TYPE_CHECKING:
    from .aio import AsyncPostgresStore

_log = get_logger(__name__)

PARTITIONS_AHEAD = 6
"""Month partitions kept ahead of the current month (``partition_months_ahead``'s default)."""

PURGE_INTERVAL = 300.0
"""Seconds between sweeps of expired contexts, run after a context write (no cron)."""

_TEMPLATES: dict[str, str] = {
    **history.TEMPLATES, **outputs.TEMPLATES, **audit.TEMPLATES, **context.TEMPLATES,
    **locks.TEMPLATES, **blobs.TEMPLATES,
    "partitions.create": "SELECT count(*) FROM {s}.memory_create_partitions(%s, %s)",
    "partitions.drop": "SELECT * FROM {s}.memory_drop_partitions(%s)",
}

class PostgresStore:
    """The PostgreSQL engine. ``connect()`` opens the pool (and applies migrations when
    ``auto_migrate``); methods connect lazily when it was not called."""

    backend_name = "postgres"

    def __init__(self, config: PostgresConfig | dict[str, Any], *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.config: PostgresConfig = parse_config(PostgresConfig, config, "postgres_config")
        self.clock = clock
        self.max_payload_bytes = self.config.max_payload_bytes
        self.schema = self.config.schema_
        self._pool: PostgresPool | None = None
        self._statements: dict[str, str] = {}
        self._rendered: dict[str, str] = {}
        self._schema_sql = ""
        self._partition_month: tuple[int, int] | None = None
        self._next_purge = clock.monotonic() + PURGE_INTERVAL
        self._lock = threading.RLock()
        self._history = history.HistoryRepo(self, self)
        self._outputs = outputs.OutputRepo(self, self)
        self._audit = audit.AuditReader(self, self)
        self._context = context.ContextRepo(self, self)
        self._locks = locks.LockRepo(self, self)
        self._blobs = blobs.BlobRepo(self)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def pool(self) -> PostgresPool:
        """The connection pool (opened on first use)."""
        pool = self._pool
        if pool is None:
            self.connect()
            pool = self._pool
            assert pool is not None
        return pool

    def connect(self) -> None:
        """Open the pool and apply pending migrations (``auto_migrate``; no DDL when none
        are pending); check this month's partitions (see :meth:`ensure_partitions`); all
        within one ``operation_timeout``."""
        with call_budget(self.config.operation_timeout):
            self._connect()

    def _connect(self) -> None:
        with self._lock:
            if self._pool is not None:
                return
            config = self.config
            if config.local_server:
                config = start_local_server(config)
            pool = PostgresPool(config, clock=self.clock)
            try:
                if self.config.auto_migrate:
                    migrate(pool)
                else:
                    self._require_schema(pool)
                with pool.connection() as conn:
                    self._statements = {name: render(template, self.schema, conn)
                                        for name, template in _TEMPLATES.items()}
                    self._schema_sql = render("{s}", self.schema, conn)
            except BaseException:
                pool.close()
                raise
            self._pool = pool
            self._partition_month = None
        self.ensure_partitions(dt.datetime.fromtimestamp(self.clock.time(), dt.timezone.utc))

    def _require_schema(self, pool: PostgresPool) -> None:
        def check(cur: Cursor) -> Any:
            cur.execute("SELECT to_regclass(%s), to_regprocedure(%s)",
                        (f'"{self.schema}".flow_run_history',
                         f'"{self.schema}".memory_create_partitions(timestamptz, integer)'))
            return cur.fetchone()

        table, function = pool.run(check, read_only=False)
        if table is None or function is None:
            raise SchemaError(
                BACKEND,
                f"schema {self.schema!r} has no memory tables and auto_migrate is off; "
                "run `memory-resources migrate` or set auto_migrate=True",
            )

    def close(self) -> None:
        """Close the pool. Idempotent; the store may be connected again."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def async_transport(self, clock: Clock) -> AsyncPostgresStore:
        """The asyncpg twin of this store (same config; pools of its own)."""
        from .aio import AsyncPostgresStore

        return AsyncPostgresStore(self.config, clock=clock)

    def __enter__(self) -> PostgresStore:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statement(self, name: str) -> str:
        """The rendered SQL statement ``name`` (schema-qualified)."""
        if self._pool is None:
            self.connect()
        return self._statements[name]

    def render(self, template: str) -> str:
        """A statement built at run time, with ``{s}`` as the quoted schema (cached)."""
        if self._pool is None:
            self.connect()
        rendered = self._rendered.get(template)
        if rendered is None:
            rendered = template.replace("{s}", self._schema_sql)
            if len(self._rendered) < 256:
                self._rendered[template] = rendered
        return rendered

    def migrate(self) -> list[AppliedMigration]:
        """Apply pending migrations now; returns what was applied."""
        return migrate(self.pool)

    # -- partitions and retention ------------------------------------------------------

    def ensure_partitions(self, now: dt.datetime, months_ahead: int | None = None) -> None:
        """Once per month of ``now``: :func:`~.partitions.keep_partitions` (a read-only
        check; creates months only when the store may migrate, else warns)."""
        month = (now.year, now.month)
        if self._partition_month == month:
            return
        ahead = self.config.partition_months_ahead if months_ahead is None else months_ahead
        keep_partitions(self.pool, now, ahead, may_create=self.config.auto_migrate,
                        create=self.create_partitions)
        self._partition_month = month

    def create_partitions(self, start: dt.datetime, months_ahead: int = PARTITIONS_AHEAD
                          ) -> int:
        """Create the month partitions from ``start``'s month on; returns how many were new.
        Needs the owner's privileges."""
        check_months_ahead(months_ahead)
        statement = self.statement("partitions.create")

        def run(cur: Cursor) -> int:
            cur.execute(statement, (start, months_ahead))
            return int(one(cur)[0])

        return int(self.pool.run(run))

    def maintain(self, months_ahead: int | None = None) -> MaintenanceReport:
        """What ``memory-resources maintain`` runs: create the default partitions and the
        months from now to ``months_ahead`` later (default ``partition_months_ahead``), move
        rows out of the default partitions into their month, report. Needs the owner."""
        ahead = self.config.partition_months_ahead if months_ahead is None else months_ahead
        now = dt.datetime.fromtimestamp(self.clock.time(), dt.timezone.utc)
        report = maintain(self.pool, now, ahead)
        _log.info("partitions maintained", schema=self.schema, created=report.created,
                  moved=report.moved, remaining=report.remaining)
        return report

    def prune(self, older_than: dt.timedelta | float, *,
              on_step: StepReport | None = None) -> dict[str, Any]:
        """Retention: drop month partitions entirely older than ``now - older_than``, delete
        outliers from the default partitions, and purge expired contexts. ``on_step(label,
        n, N)`` is called before each step (the CLI's progress display)."""
        cutoff = dt.datetime.fromtimestamp(self.clock.time() - require_age(older_than),
                                           dt.timezone.utc)
        statement = self.statement("partitions.drop")

        def run(cur: Cursor) -> list[str]:
            cur.execute(statement, (cutoff,))
            return [row[0] for row in cur.fetchall()]

        report = on_step or (lambda label, index, total: None)
        report("dropping old partitions", 1, 2)
        dropped = self.pool.run(run)
        report("purging expired contexts", 2, 2)
        purged = self._context.purge_expired()
        _log.info("pruned", cutoff=cutoff.isoformat(), dropped=dropped, contexts_purged=purged)
        return {"cutoff": cutoff.isoformat(timespec="microseconds"),
                "dropped_partitions": dropped, "expired_contexts_purged": purged}

    def purge_expired(self) -> int:
        """Delete every expired context and its events now; returns contexts removed."""
        return self._context.purge_expired()

    def maybe_purge(self) -> None:
        """Sweep expired contexts if ``PURGE_INTERVAL`` has passed since the last sweep."""
        now = self.clock.monotonic()
        with self._lock:
            if now < self._next_purge:
                return
            self._next_purge = now + PURGE_INTERVAL
        self._context.purge_expired()

    # -- monitoring ----------------------------------------------------------------------

    def health_check(self) -> HealthReport:
        """Round-trip and server version within ``HEALTH_TIMEOUT`` (connecting included);
        reports (never raises) a backend fault."""
        started = time.perf_counter()

        def ping(cur: Cursor) -> Any:
            cur.execute("SELECT current_setting('server_version'), current_database()")
            return cur.fetchone()

        try:
            with call_budget(min(HEALTH_TIMEOUT, self.config.operation_timeout)):
                version, database = self.pool.run(ping)
        except BackendError as exc:
            return HealthReport(status="unhealthy", backend=BACKEND, error=str(exc),
                                latency_ms=round((time.perf_counter() - started) * 1000, 3))
        latency = (time.perf_counter() - started) * 1000
        return HealthReport(
            status="healthy", backend=BACKEND, latency_ms=round(latency, 3),
            details={"server_version": version, "database": database, "schema": self.schema,
                     "pool": self.pool.stats()},
        )

    def replica_status(self) -> JSONDict | None:
        """Where reads went and whether the read replica is down (None without one); see
        :meth:`PostgresPool.replica_status`."""
        return self.pool.replica_status()

    def stats(self) -> JSONDict:
        """Connections, pool usage, database size, per-table rows/sizes and partitions."""
        result = self.pool.run(lambda cur: collect_stats(cur, self.schema, TABLES),
                               read_only=False)
        result.update(backend=BACKEND, schema=self.schema, pool=self.pool.stats())
        return result

    # -- ContextStore / EventLog ---------------------------------------------------------

    def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                    ) -> ContextRecord:
        """See :meth:`memory_resources.protocols.ContextStore.set_context`."""
        return self._context.set_context(context_id, data, ttl)

    def get_context(self, context_id: str) -> ContextRecord | None:
        """See :meth:`memory_resources.protocols.ContextStore.get_context`."""
        return self._context.get_context(context_id)

    def clear_context(self, context_id: str) -> bool:
        """See :meth:`memory_resources.protocols.ContextStore.clear_context`."""
        return self._context.clear_context(context_id)

    def set_contexts(self, items: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
                     ttl: int | None = None) -> list[ContextRecord]:
        """Many contexts in one transaction (all or nothing)."""
        return self._context.set_contexts(items, ttl)

    def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """Many contexts, in order, in one statement."""
        return self._context.get_contexts(context_ids)

    def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        """See :meth:`memory_resources.protocols.EventLog.append_event`."""
        return self._context.append_event(context_id, event)

    def append_events(self, context_id: str, events: Sequence[JSONDict]) -> list[EventRecord]:
        """Many events, in order, in one transaction (all or nothing)."""
        return self._context.append_events(context_id, events)

    def get_events(self, context_id: str, since: str | None = None,
                   limit: int | None = None) -> list[EventRecord]:
        """See :meth:`memory_resources.protocols.EventLog.get_events`."""
        return self._context.get_events(context_id, since, limit)

    # -- LockManager ---------------------------------------------------------------------

    def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """See :meth:`memory_resources.protocols.LockManager.try_acquire`."""
        return self._locks.try_acquire(name, owner, ttl_ms)

    def release(self, name: str, owner: str) -> bool:
        """See :meth:`memory_resources.protocols.LockManager.release`."""
        return self._locks.release(name, owner)

    def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """See :meth:`memory_resources.protocols.LockManager.extend`."""
        return self._locks.extend(name, owner, ttl_ms)

    def is_held(self, name: str) -> bool:
        """See :meth:`memory_resources.protocols.LockInspector.is_held`."""
        return self._locks.is_held(name)

    # -- ResultBlobs (Prefect result storage) ---------------------------------------------

    def read_blob(self, path: str) -> bytes | None:
        """See :meth:`memory_resources.protocols.ResultBlobs.read_blob`."""
        return self._blobs.read_blob(path)

    def write_blob(self, path: str, content: bytes) -> None:
        """See :meth:`memory_resources.protocols.ResultBlobs.write_blob`."""
        self._blobs.write_blob(path, content)

    def delete_blob(self, path: str) -> bool:
        """See :meth:`memory_resources.protocols.ResultBlobs.delete_blob`."""
        return self._blobs.delete_blob(path)

    # -- RunHistory / TaskOutputs / AuditLog ----------------------------------------------

    def write_flow_run(self, record: FlowRunWrite) -> FlowRunRecord:
        """See :meth:`memory_resources.protocols.RunHistory.write_flow_run`."""
        return self._history.write_flow_run(record)

    def write_flow_runs(self, records: Sequence[FlowRunWrite]) -> int:
        """See :meth:`memory_resources.protocols.RunHistory.write_flow_runs`."""
        return self._history.write_flow_runs(records)

    def read_flow_runs(
        self,
        flow_id: str | None,
        run_id: str | None = None,
        limit: int = 100,
        *,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        flow_name: str | None = None,
    ) -> list[FlowRunRecord]:
        """See :meth:`memory_resources.protocols.RunHistory.read_flow_runs`."""
        return self._history.read_flow_runs(flow_id, run_id, limit, status=status,
                                            since=since, until=until, flow_name=flow_name)

    def write_task_output(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> TaskOutputRecord:
        """See :meth:`memory_resources.protocols.TaskOutputs.write_task_output`."""
        return self._outputs.write_task_output(task_id, output, metadata,
                                               task_run_id=task_run_id,
                                               flow_run_id=flow_run_id)

    def write_task_output_once(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> tuple[TaskOutputRecord, bool]:
        """:meth:`write_task_output` plus whether this call stored it (False: the output of
        ``task_run_id`` was already stored; that record is returned)."""
        return self._outputs.write_task_output_once(task_id, output, metadata,
                                                    task_run_id=task_run_id,
                                                    flow_run_id=flow_run_id)

    def write_task_outputs(self, items: Sequence[TaskOutputWrite]) -> list[TaskOutputRecord]:
        """Many outputs in one transaction (all or nothing)."""
        return self._outputs.write_task_outputs(items)

    def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        """See :meth:`memory_resources.protocols.TaskOutputs.read_task_output`."""
        return self._outputs.read_task_output(task_id)

    def list_task_outputs(self, task_id: str, limit: int = 100) -> list[TaskOutputRecord]:
        """See :meth:`memory_resources.protocols.TaskOutputs.list_task_outputs`."""
        return self._outputs.list_task_outputs(task_id, limit)

    def read_audit(
        self,
        *,
        operation: str | None = None,
        target: str | None = None,
        flow_run_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """See :meth:`memory_resources.protocols.AuditLog.read_audit`."""
        return self._audit.read_audit(operation=operation, target=target,
                                      flow_run_id=flow_run_id, since=since, limit=limit)

    def __repr__(self) -> str:
        return (f"PostgresStore(schema={self.schema!r}, "
                f"connected={self._pool is not None})")


__all__ = ["PostgresStore"]
