"""The durable local outbox: captured records a hook could not write, kept until replayed.

One SQLite file (WAL), separate from the embedded store, default
``$MEMORY_RESOURCES_HOME/outbox.db``. Each row holds one record for one *target* (the
store it was meant for, identified by a fingerprint of its configuration):

* ``history`` rows are keyed by ``(flow_id, run_id)``. A later state of the same run is
  merged into the pending row (non-None fields win, ``data`` merged key by key), so a replay
  writes the run's latest known state once, in order, never an older state over a newer one.
* ``output`` rows are keyed by task run id; the store keeps one output per task run id,
  so replaying one twice stores it once.

Replayers in any number of processes **claim** records before writing them: one
``BEGIN IMMEDIATE`` transaction marks a batch as theirs until a lease expires
(``claim_until``). A replayer that dies (SIGKILL, OOM) leaves its claim behind; the records
are claimable again once the lease has passed. A record that cannot be decoded, or that the
store rejects for good (a validation error), is **set aside**: kept in the file with the
reason, reported by ``memory-resources outbox status``, never retried and never in the way
of the others.

This module does not import Prefect.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
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
    claimed_by TEXT,
    claim_until REAL,
    set_aside_at REAL,
    flow_run_id TEXT,
    UNIQUE (target, kind, record_key)
);
CREATE TABLE IF NOT EXISTS outbox_targets (
    target TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    block_name TEXT,
    config TEXT
);
"""

_ADDED_COLUMNS = {"claimed_by": "TEXT", "claim_until": "REAL", "set_aside_at": "REAL",
                  "flow_run_id": "TEXT"}
"""Columns newer than the first outbox files (added on open when missing)."""

DEFAULT_LEASE = 60.0
"""Seconds a claim lasts; a replayer that dies leaves its records for this long."""

_LIVE = "set_aside_at IS NULL"


def default_outbox_path() -> Path:
    """``$MEMORY_RESOURCES_OUTBOX``, else ``outbox.db`` next to the embedded store."""
    explicit = os.environ.get("MEMORY_RESOURCES_OUTBOX")
    return Path(explicit).expanduser() if explicit else default_home() / "outbox.db"


@dataclasses.dataclass(frozen=True)
class OutboxEntry:
    """One pending record (``raw``: its payload as stored, to see a later change)."""

    id: int
    target: str
    kind: Kind
    record_key: str
    payload: dict[str, Any]
    error: str | None
    attempts: int
    created_at: float
    raw: str = dataclasses.field(default="", repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class SetAside:
    """A record set aside: undecodable or rejected by the store for good."""

    id: int
    target: str
    label: str
    kind: str
    record_key: str
    reason: str
    created_at: float
    set_aside_at: float


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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring an outbox file written by an older version up to date (idempotent)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(outbox)").fetchall()}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in have:
            try:
                conn.execute(f"ALTER TABLE outbox ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise


class Outbox:
    """A process-safe SQLite outbox file (one connection per thread)."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = 30,
                 lease: float = DEFAULT_LEASE) -> None:
        self.path = Path(path).expanduser() if path else default_outbox_path()
        self.busy_timeout = busy_timeout
        self.lease = lease
        """Seconds a claim lasts (see :meth:`claim`)."""
        self.owner = f"{os.getpid()}-{secrets.token_hex(6)}"
        """This object's claim token."""
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
                    _add_missing_columns(conn)
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
        """Keep a record; a pending history record of the same run is merged, not duplicated.

        Merging into a record a replayer has claimed is safe: the replayer sees the change
        and leaves the merged record for the next claim instead of deleting it."""
        now = time.time()
        text = encode(payload, max_bytes=None)
        run = payload.get("run_id") if kind == "history" else payload.get("flow_run_id")
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT id, payload FROM outbox WHERE target=? AND kind=? AND record_key=?"
                f" AND {_LIVE}", (target, kind, record_key),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO outbox (target, target_label, kind, record_key, payload, error,"
                    " created_at, updated_at, flow_run_id) VALUES (?,?,?,?,?,?,?,?,?)",
                    (target, label, kind, record_key, text, error, now, now,
                     str(run) if run else None),
                )
                return
            if kind == "history":
                # an undecodable old state: the new one replaces it
                with contextlib.suppress(Exception):
                    text = encode(_merge_history(decode(row[1]), payload), max_bytes=None)
            conn.execute("UPDATE outbox SET payload=?, error=?, updated_at=? WHERE id=?",
                         (text, error, now, row[0]))

    def has_pending(self, target: str | None = None) -> bool:
        """True if any record (of ``target``, or of any target) waits (claimed or not;
        set-aside records do not count)."""
        conn = self._connect()
        if target is None:
            row = conn.execute(f"SELECT 1 FROM outbox WHERE {_LIVE} LIMIT 1").fetchone()
        else:
            row = conn.execute(f"SELECT 1 FROM outbox WHERE target=? AND {_LIVE} LIMIT 1",
                               (target,)).fetchone()
        return row is not None

    def has_record(self, target: str, kind: Kind, record_key: str) -> bool:
        """True if a record of this key waits (a later write of it must queue behind)."""
        row = self._connect().execute(
            f"SELECT 1 FROM outbox WHERE target=? AND kind=? AND record_key=? AND {_LIVE}",
            (target, kind, record_key),
        ).fetchone()
        return row is not None

    def waiting(self, target: str | None = None) -> tuple[int, int]:
        """``(unclaimed, in flight)``: records waiting for a replayer, and records another
        replayer holds under a live lease."""
        sql = ("SELECT COALESCE(SUM(claim_until IS NULL OR claim_until <= ?), 0),"
               f" COALESCE(SUM(claim_until > ?), 0) FROM outbox WHERE {_LIVE}")
        now = time.time()
        args: list[Any] = [now, now]
        if target is not None:
            sql += " AND target=?"
            args.append(target)
        row = self._connect().execute(sql, args).fetchone()
        return int(row[0]), int(row[1])

    def left_by_flow_run(self, flow_run_id: str) -> dict[str, int]:
        """``{kind: count}`` of the records of ``flow_run_id`` still waiting or set aside
        (``set_aside`` counted apart)."""
        rows = self._connect().execute(
            "SELECT CASE WHEN set_aside_at IS NULL THEN kind ELSE 'set_aside' END, COUNT(*)"
            " FROM outbox WHERE flow_run_id=? GROUP BY 1", (flow_run_id,),
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def pending(self, target: str | None = None, limit: int | None = None) -> list[OutboxEntry]:
        """Pending records, oldest first (claimed ones included; undecodable ones left out:
        :meth:`claim` sets them aside)."""
        sql = ("SELECT id, target, kind, record_key, payload, error, attempts, created_at"
               f" FROM outbox WHERE {_LIVE}")
        args: list[Any] = []
        if target is not None:
            sql += " AND target=?"
            args.append(target)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        entries = []
        for r in self._connect().execute(sql, args).fetchall():
            try:
                payload = decode(r[4])
            except Exception:  # reported once set aside
                continue
            entries.append(OutboxEntry(r[0], r[1], r[2], r[3], payload, r[5], r[6], r[7], r[4]))
        return entries

    def claim(self, target: str | None = None, limit: int = 100,
              lease: float | None = None, *, set_aside: list[str] | None = None,
              ) -> list[OutboxEntry]:
        """Claim up to ``limit`` unclaimed records (or records whose claim expired), oldest
        first, for ``lease`` seconds, atomically across processes. Records that cannot be
        decoded are set aside instead (their reasons appended to ``set_aside``)."""
        now = time.time()
        until = now + (self.lease if lease is None else lease)
        sql = ("SELECT id, target, kind, record_key, payload, error, attempts, created_at"
               f" FROM outbox WHERE {_LIVE} AND (claim_until IS NULL OR claim_until <= ?)")
        args: list[Any] = [now]
        if target is not None:
            sql += " AND target=?"
            args.append(target)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)
        claimed: list[OutboxEntry] = []
        with self._tx() as conn:
            for r in conn.execute(sql, args).fetchall():
                try:
                    payload = decode(r[4])
                    if not isinstance(payload, dict):
                        raise TypeError(f"payload is a {type(payload).__name__}, not an object")
                except Exception as exc:
                    reason = f"cannot decode: {_describe(exc)}"
                    self._set_aside(conn, r[0], reason, now)
                    if set_aside is not None:
                        set_aside.append(f"{r[2]} {r[3]}: {reason}")
                    continue
                conn.execute("UPDATE outbox SET claimed_by=?, claim_until=? WHERE id=?",
                             (self.owner, until, r[0]))
                claimed.append(
                    OutboxEntry(r[0], r[1], r[2], r[3], payload, r[5], r[6], r[7], r[4]))
        return claimed

    def remove(self, entry: OutboxEntry) -> bool:
        """Drop a replayed record, unless it was updated after it was read: then keep it and
        release the claim, so the newer state is replayed too."""
        with self._tx() as conn:
            row = conn.execute("SELECT payload FROM outbox WHERE id=?", (entry.id,)).fetchone()
            if row is None:
                return False
            if row[0] != entry.raw and (entry.raw or decode(row[0]) != entry.payload):
                conn.execute("UPDATE outbox SET claimed_by=NULL, claim_until=NULL WHERE id=?"
                             " AND claimed_by=?", (entry.id, self.owner))
                return False
            conn.execute("DELETE FROM outbox WHERE id=?", (entry.id,))
            return True

    def release(self, entries: list[OutboxEntry]) -> None:
        """Give claimed records back unwritten (claimable again at once)."""
        with self._tx() as conn:
            conn.executemany("UPDATE outbox SET claimed_by=NULL, claim_until=NULL WHERE id=?"
                             " AND claimed_by=?", [(e.id, self.owner) for e in entries])

    def mark_failed(self, entry: OutboxEntry, error: str) -> None:
        """Count a failed replay attempt and release the claim."""
        with self._tx() as conn:
            conn.execute("UPDATE outbox SET attempts=attempts+1, error=?, updated_at=?,"
                         " claimed_by=NULL, claim_until=NULL WHERE id=?",
                         (error[:1000], time.time(), entry.id))

    def set_aside(self, entry: OutboxEntry, reason: str) -> None:
        """Set a record aside for good (the store rejected it): reported, never retried."""
        with self._tx() as conn:
            self._set_aside(conn, entry.id, reason, time.time())

    @staticmethod
    def _set_aside(conn: sqlite3.Connection, row_id: int, reason: str, now: float) -> None:
        # the key gets a suffix so a later record of the same run/task run is kept apart
        conn.execute(
            "UPDATE outbox SET set_aside_at=?, error=?, claimed_by=NULL, claim_until=NULL,"
            " attempts=attempts+1, record_key=record_key || '#set-aside-' || id WHERE id=?",
            (now, reason[:1000], row_id),
        )

    def set_aside_records(self) -> list[SetAside]:
        """Every set-aside record, oldest first."""
        rows = self._connect().execute(
            "SELECT id, target, target_label, kind, record_key, error, created_at, set_aside_at"
            " FROM outbox WHERE set_aside_at IS NOT NULL ORDER BY id"
        ).fetchall()
        return [SetAside(r[0], r[1], r[2], r[3], r[4], r[5] or "", r[6], r[7]) for r in rows]

    def targets(self) -> list[OutboxTarget]:
        """Every target known to this outbox."""
        rows = self._connect().execute(
            "SELECT target, label, block_name, config FROM outbox_targets ORDER BY label"
        ).fetchall()
        return [OutboxTarget(r[0], r[1], r[2], decode(r[3]) if r[3] else None) for r in rows]

    def counts(self) -> list[tuple[str, str, str, int, float | None]]:
        """``(target, label, kind, pending, oldest created_at)`` per target and kind
        (set-aside records not included: see :meth:`set_aside_records`)."""
        rows = self._connect().execute(
            "SELECT target, MAX(target_label), kind, COUNT(*), MIN(created_at) FROM outbox"
            f" WHERE {_LIVE} GROUP BY target, kind ORDER BY 2, 3"
        ).fetchall()
        return [(r[0], r[1], r[2], int(r[3]), r[4]) for r in rows]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


__all__ = [
    "DEFAULT_LEASE",
    "Outbox",
    "OutboxEntry",
    "OutboxTarget",
    "SetAside",
    "default_outbox_path",
    "history_payload",
    "history_record",
]
