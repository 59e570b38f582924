"""SQLiteStore: every capability in one SQLite file — the embedded default."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...clock import SYSTEM_CLOCK, Clock
from ...config import EmbeddedConfig
from ...errors import MemoryResourcesError, MemoryValidationError
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
from ...validation import require_age, require_positive_seconds
from . import retention
from .audit import AuditReader
from .connection import BACKEND, Database
from .context import ContextRepo, Purger
from .events import EventRepo
from .history import HistoryRepo
from .locks import LockRepo
from .outputs import OutputRepo
from .schema import SCHEMA_VERSION, TABLES, ensure_schema

_log = get_logger(__name__)

DEFAULT_PURGE_INTERVAL = 60.0
"""Seconds between sweeps of expired contexts (run after a write, never on reads)."""


class SQLiteStore:
    """The embedded store: context, events, locks, run history, task outputs and audit.

    One SQLite file (``config.resolved_path()``, parent folders created) in WAL mode, with a
    connection per thread; safe for several threads and processes on one machine. The file
    is opened and its schema created on :meth:`connect` or on first use.

    Example::

        from memory_resources.stores.sqlite import SQLiteStore

        store = SQLiteStore()                      # $MEMORY_RESOURCES_HOME/memory.db
        store.set_context("session-1", {"user": "ada"}, ttl=3600)
        store.get_context("session-1")["data"]     # {"user": "ada"}
    """

    backend_name = BACKEND

    def __init__(
        self,
        config: EmbeddedConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        purge_interval: float = DEFAULT_PURGE_INTERVAL,
    ) -> None:
        if config is not None and not isinstance(config, EmbeddedConfig):
            raise MemoryValidationError(
                "config", f"must be an EmbeddedConfig, got {type(config).__name__}")
        self.config = config if config is not None else EmbeddedConfig.model_validate({})
        self.clock = clock
        self.path = self.config.resolved_path()
        self._db = Database(self.path, busy_timeout=self.config.busy_timeout)
        self._purger = Purger(self._db, clock, require_positive_seconds(
            purge_interval, "purge_interval"))
        max_bytes = self.config.max_payload_bytes
        self._contexts = ContextRepo(self._db, clock, self._purger, max_bytes)
        self._events = EventRepo(self._db, clock, self._purger, max_bytes)
        self._locks = LockRepo(self._db, clock)
        self._history = HistoryRepo(self._db, clock, max_bytes)
        self._outputs = OutputRepo(self._db, clock, max_bytes)
        self._audit = AuditReader(self._db)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._journal_mode = "unknown"

    # -- lifecycle -----------------------------------------------------------------------
    def connect(self) -> None:
        """Open the file, switch it to WAL and create the schema. Idempotent."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            conn = self._db.conn()
            self._journal_mode = ensure_schema(
                conn, busy_timeout=self.config.busy_timeout, now=self.clock.time())
            self._ready = True
            _log.debug("sqlite store connected", path=str(self.path),
                       journal_mode=self._journal_mode)

    def close(self) -> None:
        """Close every connection; the store reconnects on next use. Idempotent."""
        with self._ready_lock:
            self._ready = False
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health_check(self) -> HealthReport:
        """A round trip to the file; reports failures instead of raising."""
        started = self.clock.monotonic()
        try:
            self.connect()
            with self._db.read("health_check") as conn:
                conn.execute("SELECT 1").fetchone()
                mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        except (MemoryResourcesError, OSError) as exc:
            return HealthReport(
                status="unhealthy", backend=BACKEND,
                latency_ms=(self.clock.monotonic() - started) * 1000, error=str(exc),
                details={"path": str(self.path)},
            )
        return HealthReport(
            status="healthy" if mode == "wal" else "degraded", backend=BACKEND,
            latency_ms=(self.clock.monotonic() - started) * 1000,
            details={"path": str(self.path), "journal_mode": mode},
        )

    def stats(self) -> JSONDict:
        """File sizes, open connections and row counts per table."""
        self.connect()
        with self._db.snapshot("stats") as conn:
            counts = {
                table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in TABLES
            }
            expired = conn.execute(
                "SELECT COUNT(*) FROM memory_context WHERE expires_at IS NOT NULL"
                " AND expires_at <= ?", (self.clock.time(),)).fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
        db_bytes = _size(str(self.path))
        wal_bytes = _size(f"{self.path}-wal")
        return {
            "backend": BACKEND,
            "path": str(self.path),
            "used_memory": db_bytes + wal_bytes,
            "db_bytes": db_bytes,
            "wal_bytes": wal_bytes,
            "free_bytes": page_size * free_pages,
            "active_connections": self._db.open_connections(),
            "journal_mode": self._journal_mode,
            "schema_version": SCHEMA_VERSION,
            "tables": counts,
            "expired_contexts_pending_purge": expired,
        }

    def purge_expired(self) -> int:
        """Delete expired contexts and their events now; returns contexts removed."""
        self.connect()
        return self._purger.purge()

    def prune(self, older_than: dt.timedelta | float, *, dry_run: bool = False,
              vacuum: bool = True, on_step: StepReport | None = None) -> dict[str, Any]:
        """Retention: delete history and audit rows older than ``older_than`` (a timedelta
        or seconds), purge expired contexts, then ``VACUUM`` so the file shrinks.
        ``dry_run`` only counts what would go. ``on_step(label, n, N)`` is called before
        each step (the CLI's progress display). See :mod:`.retention`."""
        seconds = require_age(older_than)
        self.connect()
        now = self.clock.time()
        if dry_run:
            return retention.preview(self._db, now, seconds)
        report = on_step or (lambda label, index, total: None)
        total = 3 if vacuum else 2
        before = retention.file_bytes(self.path)
        report("deleting old history and audit rows", 1, total)
        cutoff, rows = retention.delete_old(self._db, now, seconds)
        report("purging expired contexts", 2, total)
        purged = self._purger.purge()
        if vacuum:
            report("VACUUM", 3, total)
            retention.vacuum(self._db)
        after = retention.file_bytes(self.path)
        _log.info("pruned", cutoff=cutoff, deleted=rows, contexts_purged=purged,
                  bytes_before=before, bytes_after=after)
        return {"cutoff": cutoff, "deleted_rows": rows, "expired_contexts_purged": purged,
                "bytes_before": before, "bytes_after": after, "dry_run": False}

    # -- ContextStore --------------------------------------------------------------------
    def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                    ) -> ContextRecord:
        """Store ``data`` under ``context_id`` with an optional TTL (seconds)."""
        if not self._ready:
            self.connect()
        return self._contexts.set_context(context_id, data, ttl)

    def get_context(self, context_id: str) -> ContextRecord | None:
        """The context, or None when absent or expired."""
        if not self._ready:
            self.connect()
        return self._contexts.get_context(context_id)

    def clear_context(self, context_id: str) -> bool:
        """Remove the context and its events atomically; True if anything was removed."""
        if not self._ready:
            self.connect()
        return self._contexts.clear_context(context_id)

    def set_contexts(self, items: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
                     ttl: int | None = None) -> list[ContextRecord]:
        """Store many contexts in one transaction (all or nothing)."""
        if not self._ready:
            self.connect()
        return self._contexts.set_contexts(items, ttl)

    def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """Many contexts, in order, from one read snapshot."""
        if not self._ready:
            self.connect()
        return self._contexts.get_contexts(context_ids)

    # -- EventLog ------------------------------------------------------------------------
    def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        """Append ``event`` to the context's stream."""
        if not self._ready:
            self.connect()
        return self._events.append_event(context_id, event)

    def append_events(self, context_id: str, events: Sequence[JSONDict]) -> list[EventRecord]:
        """Append many events in order, in one transaction (all or nothing)."""
        if not self._ready:
            self.connect()
        return self._events.append_events(context_id, events)

    def get_events(self, context_id: str, since: str | None = None,
                   limit: int | None = None) -> list[EventRecord]:
        """Events in append order after the exclusive cursor ``since``."""
        if not self._ready:
            self.connect()
        return self._events.get_events(context_id, since, limit)

    # -- LockManager ---------------------------------------------------------------------
    def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """Take the lease if free or expired; a fencing token, or None."""
        if not self._ready:
            self.connect()
        return self._locks.try_acquire(name, owner, ttl_ms)

    def release(self, name: str, owner: str) -> bool:
        """Release the lease if ``owner`` holds it."""
        if not self._ready:
            self.connect()
        return self._locks.release(name, owner)

    def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Extend the lease to ``ttl_ms`` from now if ``owner`` holds it."""
        if not self._ready:
            self.connect()
        return self._locks.extend(name, owner, ttl_ms)

    def is_held(self, name: str) -> bool:
        """True while some owner holds an unexpired lease on ``name``."""
        if not self._ready:
            self.connect()
        return self._locks.is_held(name)

    # -- RunHistory ----------------------------------------------------------------------
    def write_flow_run(self, record: FlowRunWrite) -> FlowRunRecord:
        """Upsert one run's history row."""
        if not self._ready:
            self.connect()
        return self._history.write_flow_run(record)

    def write_flow_runs(self, records: Sequence[FlowRunWrite]) -> int:
        """Upsert many rows in one transaction; returns rows written."""
        if not self._ready:
            self.connect()
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
        """History rows newest first, filtered."""
        if not self._ready:
            self.connect()
        return self._history.read_flow_runs(flow_id, run_id, limit, status=status,
                                            since=since, until=until, flow_name=flow_name)

    # -- TaskOutputs ---------------------------------------------------------------------
    def write_task_output(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> TaskOutputRecord:
        """Store a new version of ``task_id``'s output; once per ``task_run_id``."""
        if not self._ready:
            self.connect()
        return self._outputs.write_task_output(task_id, output, metadata,
                                               task_run_id=task_run_id, flow_run_id=flow_run_id)

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
        if not self._ready:
            self.connect()
        return self._outputs.write_task_output_once(task_id, output, metadata,
                                                    task_run_id=task_run_id,
                                                    flow_run_id=flow_run_id)

    def write_task_outputs(self, items: Sequence[TaskOutputWrite]) -> list[TaskOutputRecord]:
        """Store many outputs in one transaction (all or nothing)."""
        if not self._ready:
            self.connect()
        return self._outputs.write_task_outputs(items)

    def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        """The latest output of ``task_id``, or None."""
        if not self._ready:
            self.connect()
        return self._outputs.read_task_output(task_id)

    def list_task_outputs(self, task_id: str, limit: int = 100) -> list[TaskOutputRecord]:
        """Output versions newest first."""
        if not self._ready:
            self.connect()
        return self._outputs.list_task_outputs(task_id, limit)

    # -- AuditLog ------------------------------------------------------------------------
    def read_audit(
        self,
        *,
        operation: str | None = None,
        target: str | None = None,
        flow_run_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit rows newest first, filtered."""
        if not self._ready:
            self.connect()
        return self._audit.read_audit(operation=operation, target=target,
                                      flow_run_id=flow_run_id, since=since, limit=limit)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as configuration only; connections are reopened lazily after unpickling."""
        return (_rebuild, (self.config, self.clock, self._purger.interval))

    def __repr__(self) -> str:
        return f"SQLiteStore(path={str(self.path)!r})"


def _rebuild(config: EmbeddedConfig, clock: Clock, purge_interval: float) -> SQLiteStore:
    return SQLiteStore(config, clock=clock, purge_interval=purge_interval)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
