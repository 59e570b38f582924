"""Persistence in the embedded SQLite file: table ``vector_embeddings``.

One row per vector: ``(namespace, id)`` primary key, ``dimension``, ``vector`` (float32
little-endian BLOB), ``metadata`` (JSON text), ``updated_at`` (ISO UTC). A batch of
upserts and deletes is one ``BEGIN IMMEDIATE`` transaction. The connection is our own
(WAL mode), so it shares the file with the embedded store without sharing its connection.

Table ``vector_namespaces (namespace, version)`` counts the write batches of each namespace
(bumped in the same transaction), so :meth:`SqliteVectorPersistence.stale` can tell — with
``PRAGMA data_version`` first, which costs no table read — whether another connection or
process changed a namespace since this one loaded or wrote it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ...clock import SYSTEM_CLOCK, Clock, utc_iso
from ...errors import BackendError, BackendUnavailableError
from .persistence import LoadedVectors, dimension_mismatch

SCHEMA = """
CREATE TABLE IF NOT EXISTS vector_embeddings (
    namespace  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    dimension  INTEGER NOT NULL,
    vector     BLOB    NOT NULL,
    metadata   TEXT    NOT NULL DEFAULT '{}',
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS vector_namespaces (
    namespace TEXT    PRIMARY KEY,
    version   INTEGER NOT NULL
);
"""
_VERSION = "SELECT version FROM vector_namespaces WHERE namespace = ?"


class SqliteVectorPersistence:
    """Vectors of every namespace in one SQLite file (WAL)."""

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 30.0, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}  # namespace -> version this instance has seen
        self._data_version: int | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout, isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(SCHEMA)
            except (sqlite3.Error, OSError) as exc:
                raise BackendUnavailableError(
                    "sqlite", f"cannot open {self.path}: {exc}"
                ) from exc
            self._conn = conn
        return self._conn

    def load(self, namespace: str, dimension: int) -> LoadedVectors:
        """Every row of ``namespace``, in insertion (rowid) order."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN")  # one read snapshot for the version and the rows
                try:
                    rows = self._load_rows(conn, namespace, dimension)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise BackendError("sqlite", f"cannot load vectors: {exc}") from exc
        if not rows:
            return LoadedVectors([], np.empty((0, dimension), dtype=np.float32), [])
        blob = b"".join(row[1] for row in rows)
        vectors = np.frombuffer(blob, dtype="<f4").reshape(len(rows), dimension)
        return LoadedVectors(
            [row[0] for row in rows], vectors.astype(np.float32, copy=False),
            [row[2] for row in rows],
        )

    def _load_rows(
        self, conn: sqlite3.Connection, namespace: str, dimension: int
    ) -> list[tuple[str, bytes, str]]:
        self._data_version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        version = conn.execute(_VERSION, (namespace,)).fetchone()
        self._versions[namespace] = int(version[0]) if version else 0
        dims = [row[0] for row in conn.execute(
            "SELECT DISTINCT dimension FROM vector_embeddings WHERE namespace = ?", (namespace,)
        )]
        if any(stored != dimension for stored in dims):
            stored = next(d for d in dims if d != dimension)
            raise dimension_mismatch(self.location, namespace, stored, dimension)
        return conn.execute(
            "SELECT id, vector, metadata FROM vector_embeddings WHERE namespace = ? "
            "ORDER BY rowid",
            (namespace,),
        ).fetchall()

    def stale(self, namespace: str) -> bool:
        """Whether another connection changed ``namespace`` since this instance loaded or
        wrote it (a cheap ``PRAGMA data_version`` check first)."""
        with self._lock:
            if namespace not in self._versions:
                return False
            try:
                conn = self._connection()
                data_version = int(conn.execute("PRAGMA data_version").fetchone()[0])
                if data_version == self._data_version:
                    return False
                self._data_version = data_version
                row = conn.execute(_VERSION, (namespace,)).fetchone()
            except sqlite3.Error as exc:
                raise BackendError("sqlite", f"cannot check vectors: {exc}") from exc
            return (int(row[0]) if row else 0) != self._versions[namespace]

    def write(
        self,
        namespace: str,
        dimension: int,
        ids: list[str],
        vectors: np.ndarray[Any, Any],
        metadata: list[str],
        deletes: list[str],
    ) -> None:
        """Upsert and delete in one transaction."""
        now = utc_iso(self._clock.time())
        little = np.ascontiguousarray(vectors, dtype="<f4")
        params = [
            (namespace, item, dimension, little[i].tobytes(), metadata[i], now)
            for i, item in enumerate(ids)
        ]
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if deletes:
                        conn.executemany(
                            "DELETE FROM vector_embeddings WHERE namespace = ? AND id = ?",
                            [(namespace, item) for item in deletes],
                        )
                    if params:
                        conn.executemany(
                            "INSERT INTO vector_embeddings "
                            "(namespace, id, dimension, vector, metadata, updated_at) "
                            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, id) DO UPDATE "
                            "SET dimension = excluded.dimension, vector = excluded.vector, "
                            "metadata = excluded.metadata, updated_at = excluded.updated_at",
                            params,
                        )
                    version = conn.execute(
                        "INSERT INTO vector_namespaces (namespace, version) VALUES (?, 1) "
                        "ON CONFLICT (namespace) DO UPDATE SET version = version + 1 "
                        "RETURNING version",
                        (namespace,),
                    ).fetchone()[0]
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                if self._versions.get(namespace, version - 1) == version - 1:
                    self._versions[namespace] = version  # nobody else wrote in between
            except sqlite3.Error as exc:
                raise BackendError("sqlite", f"cannot write vectors: {exc}") from exc

    def namespace_counts(self) -> dict[str, int]:
        """Rows per namespace stored in the file."""
        with self._lock:
            try:
                rows = self._connection().execute(
                    "SELECT namespace, COUNT(*) FROM vector_embeddings GROUP BY namespace"
                ).fetchall()
            except sqlite3.Error as exc:
                raise BackendError("sqlite", f"cannot count vectors: {exc}") from exc
        return {str(name): int(count) for name, count in rows}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only; the connection reopens lazily."""
        state = self.__dict__.copy()
        state["_conn"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def ping(self) -> None:
        """Run ``SELECT 1`` on the connection."""
        with self._lock:
            try:
                self._connection().execute("SELECT 1").fetchone()
            except sqlite3.Error as exc:
                raise BackendUnavailableError("sqlite", f"{self.path}: {exc}") from exc

    def size_bytes(self) -> int:
        """Size of the database file plus its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            candidate = Path(f"{self.path}{suffix}")
            if candidate.exists():
                total += candidate.stat().st_size
        return total

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
