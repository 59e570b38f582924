"""The durable local outbox: captured records a hook could not write, kept until replayed.

One SQLite file (WAL), separate from the embedded store, default
``$MEMORY_RESOURCES_HOME/outbox.db``. Each row holds one record for one *target* (the
store it was meant for, identified by a fingerprint of its configuration):

* ``history`` rows are keyed by ``(flow_id, run_id)``. A later state of the same run is
  merged into the pending row (non-None fields win, ``data`` merged key by key), so a replay
  writes the run's latest known state once, in order, never an older state over a newer one.
* ``output`` rows are keyed by task run id; the replayer skips an output already stored.

This module does not import Prefect.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ..codec import decode, encode
from ..config import default_home
from ..errors import BackendUnavailableError
from ..records import FlowRunWrite

Kind = Literal["history", "output"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    target_label TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('history', 'output')),
    record_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (target, kind, record_key)
);
CREATE TABLE IF NOT EXISTS outbox_targets (
    target TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    block_name TEXT,
    config TEXT
);
"""


def default_outbox_path() -> Path:
    """``$MEMORY_RESOURCES_OUTBOX``, else ``outbox.db`` next to the embedded store."""
    explicit = os.environ.get("MEMORY_RESOURCES_OUTBOX")
    return Path(explicit).expanduser() if explicit else default_home() / "outbox.db"


@dataclasses.dataclass(frozen=True)
class OutboxEntry:
    """One pending record."""

    id: int
    target: str
    kind: Kind
    record_key: str
    payload: dict[str, Any]
    error: str | None
    attempts: int
    created_at: float


@dataclasses.dataclass(frozen=True)
class OutboxTarget:
    """Where a target's records go: a saved block's name, or a secret-free config to rebuild."""

    target: str
    label: str
    block_name: str | None
    config: dict[str, Any] | None


def history_payload(record: FlowRunWrite) -> dict[str, Any]:
    """The outbox form of a history write."""
    return dataclasses.asdict(record)


def history_record(payload: dict[str, Any]) -> FlowRunWrite:
    """The history write back from its outbox form."""
    return FlowRunWrite(**payload)


def _merge_history(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        if key == "data":
            merged["data"] = {**(old.get("data") or {}), **(value or {})}
        elif key == "created_at":
            merged[key] = old.get(key) or value
        elif value is not None:
            merged[key] = value
    return merged


class Outbox:
    """A process-safe SQLite outbox file (one connection per thread)."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = 30) -> None:
        self.path = Path(path).expanduser() if path else default_outbox_path()
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._initialised = False

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            with self._init_lock:
                if not self._initialised:
                    conn.executescript(_SCHEMA)
                    self._initialised = True
        except sqlite3.Error as exc:
            raise BackendUnavailableError("outbox", f"cannot open {self.path}: {exc}") from exc
        self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def register_target(self, target: OutboxTarget) -> None:
        """Remember how to reach ``target`` (for ``memory-resources outbox replay``)."""
        config = encode(target.config, max_bytes=None) if target.config is not None else None
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO outbox_targets (target, label, block_name, config) VALUES (?,?,?,?)"
                " ON CONFLICT (target) DO UPDATE SET label=excluded.label,"
                " block_name=COALESCE(excluded.block_name, outbox_targets.block_name),"
                " config=COALESCE(excluded.config, outbox_targets.config)",
                (target.target, target.label, target.block_name, config),
            )

    def add(self, target: str, label: str, kind: Kind, record_key: str,
            payload: dict[str, Any], error: str | None = None) -> None:
        """Keep a record; a pending history record of the same run is merged, not duplicated."""
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id, payload FROM outbox WHERE target=? AND kind=? AND record_key=?",
                (target, kind, record_key),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO outbox (target, target_label, kind, record_key, payload, error,"
                    " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                    (target, label, kind, record_key, encode(payload, max_bytes=None), error,
                     now, now),
                )
                return
            merged = _merge_history(decode(row[1]), payload) if kind == "history" else payload
            conn.execute(
                "UPDATE outbox SET payload=?, error=?, updated_at=? WHERE id=?",
                (encode(merged, max_bytes=None), error, now, row[0]),
            )

    def has_pending(self, target: str | None = None) -> bool:
        """True if any record (of ``target``, or of any target) waits."""
        conn = self._connect()
        if target is None:
            row = conn.execute("SELECT 1 FROM outbox LIMIT 1").fetchone()
        else:
            row = conn.execute("SELECT 1 FROM outbox WHERE target=? LIMIT 1", (target,)).fetchone()
        return row is not None

    def pending(self, target: str | None = None, limit: int | None = None) -> list[OutboxEntry]:
        """Pending records, oldest first."""
        sql = ("SELECT id, target, kind, record_key, payload, error, attempts, created_at"
               " FROM outbox")
        args: list[Any] = []
        if target is not None:
            sql += " WHERE target=?"
            args.append(target)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._connect().execute(sql, args).fetchall()
        return [OutboxEntry(r[0], r[1], r[2], r[3], decode(r[4]), r[5], r[6], r[7]) for r in rows]

    def remove(self, entry: OutboxEntry) -> bool:
        """Drop a replayed record, unless it was updated after it was read (then keep it)."""
        with self._tx() as conn:
            row = conn.execute("SELECT payload FROM outbox WHERE id=?", (entry.id,)).fetchone()
            if row is None:
                return False
            if decode(row[0]) != entry.payload:
                return False
            conn.execute("DELETE FROM outbox WHERE id=?", (entry.id,))
            return True

    def mark_failed(self, entry: OutboxEntry, error: str) -> None:
        """Count a failed replay attempt."""
        with self._tx() as conn:
            conn.execute("UPDATE outbox SET attempts=attempts+1, error=?, updated_at=?"
                         " WHERE id=?", (error[:1000], time.time(), entry.id))

    def targets(self) -> list[OutboxTarget]:
        """Every target known to this outbox."""
        rows = self._connect().execute(
            "SELECT target, label, block_name, config FROM outbox_targets ORDER BY label"
        ).fetchall()
        return [OutboxTarget(r[0], r[1], r[2], decode(r[3]) if r[3] else None) for r in rows]

    def counts(self) -> list[tuple[str, str, str, int, float | None]]:
        """``(target, label, kind, pending, oldest created_at)`` per target and kind."""
        rows = self._connect().execute(
            "SELECT target, MAX(target_label), kind, COUNT(*), MIN(created_at) FROM outbox"
            " GROUP BY target, kind ORDER BY 2, 3"
        ).fetchall()
        return [(r[0], r[1], r[2], int(r[3]), r[4]) for r in rows]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


__all__ = [
    "Outbox",
    "OutboxEntry",
    "OutboxTarget",
    "default_outbox_path",
    "history_payload",
    "history_record",
]
