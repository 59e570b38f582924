"""Connections to the SQLite file: one per thread (and per process), transactions, error mapping.

SQLite connections must not be shared by threads that use them at the same time, so each
thread lazily opens its own; all of them are tracked so :meth:`Database.close` can close
them. A forked child never reuses its parent's connections (they are keyed by pid).

Writes run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken up front, so a
read-modify-write never fails half-way with ``SQLITE_BUSY``; waiting for the lock is bounded
by ``busy_timeout``, after which :class:`~memory_resources.errors.BackendUnavailableError`
is raised. Every driver error is mapped to a :class:`~memory_resources.errors.BackendError`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from ...errors import BackendError, BackendUnavailableError, SchemaError

BACKEND = "sqlite"
WAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes the WAL file is truncated to after a checkpoint (it grows while readers pin it)."""

_UNAVAILABLE_CODES = frozenset(
    getattr(sqlite3, name)
    for name in (
        "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL",
        "SQLITE_READONLY", "SQLITE_PROTOCOL", "SQLITE_NOLFS", "SQLITE_PERM",
    )
    if hasattr(sqlite3, name)
)
_SCHEMA_CODES = frozenset(
    getattr(sqlite3, name) for name in ("SQLITE_SCHEMA",) if hasattr(sqlite3, name)
)


def raise_backend_error(exc: sqlite3.Error, action: str) -> NoReturn:
    """Re-raise a driver error as the matching :class:`BackendError` subclass."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = f"{action} failed: {exc}"
    if primary in _UNAVAILABLE_CODES or (primary is None and isinstance(
            exc, sqlite3.OperationalError)):
        raise BackendUnavailableError(BACKEND, message) from exc
    if primary in _SCHEMA_CODES:
        raise SchemaError(BACKEND, message) from exc
    raise BackendError(BACKEND, message) from exc


class _Slot:
    """The connection of one thread, remembered with the generation it was opened in."""

    __slots__ = ("conn", "generation", "pid")

    def __init__(self, conn: sqlite3.Connection, generation: int, pid: int) -> None:
        self.conn = conn
        self.generation = generation
        self.pid = pid


class Database:
    """The connections of one store to one SQLite file."""

    def __init__(self, path: Path, *, busy_timeout: float, cached_statements: int = 256) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._cached_statements = cached_statements
        self._local = threading.local()
        self._registry_lock = threading.Lock()
        # thread (weakly) -> its connection, to close them all and to count open ones
        self._open: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection, int]] = []
        self._generation = 0

    # -- connections ---------------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is not None and slot.generation == self._generation and slot.pid == os.getpid():
            return slot.conn
        return self._open_for_thread()

    def _open_for_thread(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(
                BACKEND, f"cannot create the directory of {self.path}: {exc}"
            ) from exc
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # only close() from another thread touches it
                cached_statements=self._cached_statements,
            )
        except sqlite3.Error as exc:
            raise_backend_error(exc, f"opening {self.path}")
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # after a checkpoint, truncate the WAL back to at most this size
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        except sqlite3.Error as exc:
            conn.close()
            raise_backend_error(exc, f"configuring {self.path}")
        pid = os.getpid()
        with self._registry_lock:
            self._prune_locked()
            self._open.append((weakref.ref(threading.current_thread()), conn, pid))
            self._local.slot = _Slot(conn, self._generation, pid)
        return conn

    def _prune_locked(self) -> None:
        """Close connections of threads that ended (and forget a parent process's ones)."""
        pid = os.getpid()
        alive: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection, int]] = []
        for ref, conn, owner_pid in self._open:
            thread = ref()
            if owner_pid != pid:
                continue  # inherited through fork: the parent owns it, never touch it
            if thread is None or not thread.is_alive():
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                continue
            alive.append((ref, conn, owner_pid))
        self._open = alive

    def open_connections(self) -> int:
        """How many connections this store has open now (in this process)."""
        with self._registry_lock:
            self._prune_locked()
            return len(self._open)

    def close(self) -> None:
        """Close every connection; threads reopen lazily on their next call."""
        with self._registry_lock:
            self._generation += 1
            pid = os.getpid()
            for _ref, conn, owner_pid in self._open:
                if owner_pid == pid:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
            self._open = []
            self._local = threading.local()

    # -- transactions --------------------------------------------------------------------
    def write(self, action: str) -> WriteTransaction:
        """A ``BEGIN IMMEDIATE`` transaction, committed on success, rolled back on error."""
        return WriteTransaction(self, action)

    @contextlib.contextmanager
    def read(self, action: str) -> Iterator[sqlite3.Connection]:
        """This thread's connection for autocommit reads, with driver errors mapped."""
        conn = self.conn()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise_backend_error(exc, action)

    @contextlib.contextmanager
    def snapshot(self, action: str) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs see one consistent state."""
        conn = self.conn()
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise_backend_error(exc, action)
            raise


class WriteTransaction:
    """Context manager of one write transaction (a class: cheaper than a generator)."""

    __slots__ = ("_action", "_conn", "_db")

    def __init__(self, db: Database, action: str) -> None:
        self._db = db
        self._action = action
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        conn = self._db.conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise_backend_error(exc, self._action)
        self._conn = conn
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn
        assert conn is not None
        self._conn = None
        if exc_type is None:
            try:
                conn.execute("COMMIT")
                return
            except sqlite3.Error as commit_error:
                _rollback(conn)
                raise_backend_error(commit_error, self._action)
        _rollback(conn)
        if isinstance(exc, sqlite3.Error):
            raise_backend_error(exc, self._action)


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
