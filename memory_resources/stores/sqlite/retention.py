"""Retention for the embedded SQLite file: delete old history and audit rows, purge expired
contexts, then ``VACUUM`` so the file shrinks.

The PostgreSQL backend drops whole month partitions; SQLite has none, so rows are deleted
by time (``flow_run_history.created_at`` / ``audit_log.occurred_at`` before the cut-off),
the same tables PostgreSQL's retention covers. Task outputs and contexts without a TTL are
kept. Deleting frees pages inside the file only; ``VACUUM`` rewrites it without them and a
``wal_checkpoint(TRUNCATE)`` moves the result into the main file and empties the WAL, so
the bytes on disk go down. ``VACUUM`` needs a moment without other writers (it waits up to
``busy_timeout`` for them, then fails with a typed error and nothing lost).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any

from ...clock import utc_iso
from .connection import Database, raise_backend_error

RETAINED = {"flow_run_history": "created_at", "audit_log": "occurred_at"}
"""Table -> the timestamp column retention compares with the cut-off."""


def file_bytes(path: os.PathLike[str] | str) -> int:
    """Bytes of the database file and its WAL (0 for a missing file)."""
    total = 0
    for name in (str(path), f"{path}-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(name)
    return total


def _expired(conn: sqlite3.Connection, now: float) -> int:
    row = conn.execute("SELECT count(*) FROM memory_context WHERE expires_at IS NOT NULL"
                       " AND expires_at <= ?", (now,)).fetchone()
    return int(row[0])


def preview(db: Database, now: float, age_seconds: float) -> dict[str, Any]:
    """What :func:`prune` would delete, without changing anything."""
    cutoff = utc_iso(now - age_seconds)
    with db.snapshot("prune preview") as conn:
        rows = {table: int(conn.execute(
            f"SELECT count(*) FROM {table} WHERE {column} < ?", (cutoff,)).fetchone()[0])
            for table, column in RETAINED.items()}
        expired = _expired(conn, now)
    return {"cutoff": cutoff, "deleted_rows": rows, "expired_contexts_purged": expired,
            "bytes_before": file_bytes(db.path), "bytes_after": None, "dry_run": True}


def delete_old(db: Database, now: float, age_seconds: float) -> tuple[str, dict[str, int]]:
    """Delete history and audit rows older than ``now - age_seconds`` in one transaction."""
    cutoff = utc_iso(now - age_seconds)
    with db.write("prune") as conn:
        rows = {table: conn.execute(f"DELETE FROM {table} WHERE {column} < ?",
                                    (cutoff,)).rowcount
                for table, column in RETAINED.items()}
    return cutoff, rows


def vacuum(db: Database) -> None:
    """Rewrite the file without its free pages and fold the WAL back into it."""
    conn = db.conn()
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error as exc:
        raise_backend_error(exc, "VACUUM")
