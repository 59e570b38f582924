"""The embedded file's tables, created idempotently and versioned.

Table names follow the spec (``memory_context``, ``memory_events``, ``flow_run_history``,
``task_outputs``, ``audit_log``) plus ``memory_locks`` / ``memory_lock_fencing`` for leases
and ``memory_schema_version``. Timestamps shown to users are ISO-8601 UTC text with
microseconds (fixed width, so text order is time order); expiry instants are epoch numbers
(seconds for contexts, milliseconds for leases) so comparisons with the clock are cheap.
"""

from __future__ import annotations

import sqlite3
import time

from ...clock import utc_iso
from ...errors import SchemaError
from .connection import BACKEND, raise_backend_error

SCHEMA_VERSION = 2

TABLES = (
    "memory_context",
    "memory_events",
    "memory_locks",
    "memory_lock_fencing",
    "flow_run_history",
    "task_outputs",
    "task_output_keys",
    "audit_log",
)

_DDL_V1 = """
CREATE TABLE IF NOT EXISTS memory_context (
    context_id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    ttl INTEGER,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS memory_context_expires
    ON memory_context (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS memory_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    context_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS memory_events_context ON memory_events (context_id, id);

CREATE TABLE IF NOT EXISTS memory_locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    fencing_token INTEGER NOT NULL,
    acquired_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS memory_lock_fencing (
    name TEXT PRIMARY KEY,
    token INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS flow_run_history (
    flow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    flow_name TEXT,
    status TEXT,
    state_name TEXT,
    started_at TEXT,
    ended_at TEXT,
    duration REAL,
    parameters TEXT,
    tags TEXT,
    error_type TEXT,
    error_message TEXT,
    deployment_id TEXT,
    parent_run_id TEXT,
    run_count INTEGER,
    data TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (flow_id, run_id)
);
CREATE INDEX IF NOT EXISTS flow_run_history_flow_created
    ON flow_run_history (flow_id, created_at);
CREATE INDEX IF NOT EXISTS flow_run_history_created ON flow_run_history (created_at);

CREATE TABLE IF NOT EXISTS task_outputs (
    task_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    output TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    task_run_id TEXT,
    flow_run_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (task_id, version)
);

CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at TEXT NOT NULL,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    flow_run_id TEXT,
    task_run_id TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, id);
CREATE INDEX IF NOT EXISTS audit_log_flow_run ON audit_log (flow_run_id, id)
    WHERE flow_run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_occurred ON audit_log (occurred_at);
"""

_DDL_V2 = """
CREATE TABLE IF NOT EXISTS task_output_keys (
    task_run_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT OR IGNORE INTO task_output_keys (task_run_id, task_id, created_at)
    SELECT task_run_id, task_id, MIN(created_at) FROM task_outputs
    WHERE task_run_id IS NOT NULL GROUP BY task_run_id;
CREATE INDEX IF NOT EXISTS task_outputs_task_run ON task_outputs (task_run_id)
    WHERE task_run_id IS NOT NULL;
"""
"""Exactly-once task outputs: one key per task run id (the first stored output of each
task run becomes its key; rows written before this version are left as they are)."""

MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _DDL_V1), (2, _DDL_V2))
"""(version, DDL) in order; each is idempotent and applied in one transaction."""


def _set_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """Switch the file to WAL (persistent); retry while another process holds a lock."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return str(row[0]).lower()
        except sqlite3.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise_backend_error(exc, "switching to WAL")
            time.sleep(0.01)


def ensure_schema(conn: sqlite3.Connection, *, busy_timeout: float, now: float) -> str:
    """Put the file in WAL mode and apply missing migrations. Returns the journal mode."""
    mode = _set_wal(conn, busy_timeout)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS memory_schema_version ("
            " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        current = conn.execute("SELECT MAX(version) FROM memory_schema_version").fetchone()[0]
        if current is not None and current > SCHEMA_VERSION:
            raise SchemaError(
                BACKEND,
                f"the file was written by a newer memory_resources (schema {current}, "
                f"this one knows {SCHEMA_VERSION})",
            )
        if current == SCHEMA_VERSION:
            return mode
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute(
                "SELECT MAX(version) FROM memory_schema_version"
            ).fetchone()[0] or 0
            for version, ddl in MIGRATIONS:
                if version > current:
                    for statement in ddl.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT INTO memory_schema_version (version, applied_at) VALUES (?, ?)",
                        (version, utc_iso(now)),
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise_backend_error(exc, "creating the schema")
    return mode
