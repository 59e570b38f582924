"""SQLite-specific behaviour of SQLiteStore: file location, WAL, lazy purge, threads,
busy and broken files, schema versioning, health and stats."""

from __future__ import annotations

import pickle
import sqlite3
import threading
from pathlib import Path

import pytest

from memory_resources.clock import ManualClock
from memory_resources.config import EmbeddedConfig
from memory_resources.errors import (
    BackendError,
    BackendUnavailableError,
    MemoryValidationError,
    SchemaError,
)
from memory_resources.protocols import (
    AuditLog,
    ContextStore,
    EventLog,
    Lifecycle,
    LockManager,
    RunHistory,
    TaskOutputs,
)
from memory_resources.records import FlowRunWrite
from memory_resources.stores.sqlite import SQLiteStore
from memory_resources.stores.sqlite.schema import SCHEMA_VERSION, TABLES


def _count(path: Path, sql: str, *params: object) -> int:
    raw = sqlite3.connect(str(path))
    try:
        return int(raw.execute(sql, params).fetchone()[0])
    finally:
        raw.close()


def test_default_path_is_under_memory_resources_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no path the file is $MEMORY_RESOURCES_HOME/memory.db, folders created on connect."""
    home = tmp_path / "nested" / "home"
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(home))
    store = SQLiteStore()
    try:
        assert store.path == home / "memory.db"
        store.set_context("c", {"a": 1})
        assert (home / "memory.db").is_file()
    finally:
        store.close()


def test_default_path_falls_back_to_prefect_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without MEMORY_RESOURCES_HOME the file lives in $PREFECT_HOME/memory_resources."""
    monkeypatch.delenv("MEMORY_RESOURCES_HOME", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    assert SQLiteStore().path == tmp_path / "prefect" / "memory_resources" / "memory.db"


def test_file_is_in_wal_mode_with_the_spec_tables(sqlite_store: SQLiteStore) -> None:
    """The file's journal mode is WAL (persistent) and every table of the schema exists."""
    raw = sqlite3.connect(str(sqlite_store.path))
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(TABLES) | {"memory_schema_version"} <= names
        assert raw.execute("SELECT MAX(version) FROM memory_schema_version").fetchone()[0] == (
            SCHEMA_VERSION)
    finally:
        raw.close()
    health = sqlite_store.health_check()
    assert health["status"] == "healthy" and health["backend"] == "sqlite"
    assert health["details"] == {"path": str(sqlite_store.path), "journal_mode": "wal"}


def test_connect_is_idempotent_and_close_reopens(tmp_path: Path) -> None:
    """connect() twice is harmless, and a closed store reconnects lazily on its next call."""
    store = SQLiteStore(EmbeddedConfig(path=str(tmp_path / "m.db")))
    store.connect()
    store.connect()
    store.set_context("c", {"v": 1})
    store.close()
    store.close()
    assert store.stats()["active_connections"] == 1
    record = store.get_context("c")
    assert record is not None and record["data"] == {"v": 1}
    store.close()


def test_expired_rows_are_purged_lazily(tmp_path: Path) -> None:
    """An expired context is invisible at once but its rows stay until a write after the
    purge interval sweeps them (or purge_expired is called)."""
    clock = ManualClock()
    path = tmp_path / "purge.db"
    store = SQLiteStore(EmbeddedConfig(path=str(path)), clock=clock, purge_interval=60)
    try:
        store.set_context("gone", {"a": 1}, ttl=1)
        store.append_event("gone", {"e": 1})
        store.set_context("kept", {"b": 1})
        clock.advance(2)
        assert store.get_context("gone") is None
        assert store.get_events("gone") == []
        assert _count(path, "SELECT COUNT(*) FROM memory_context WHERE context_id='gone'") == 1
        assert store.stats()["expired_contexts_pending_purge"] == 1
        store.set_context("kept", {"b": 2})  # a write before the interval: no sweep yet
        assert _count(path, "SELECT COUNT(*) FROM memory_events WHERE context_id='gone'") == 1
        clock.advance(60)
        store.set_context("kept", {"b": 3})  # a write after the interval sweeps
        assert _count(path, "SELECT COUNT(*) FROM memory_context WHERE context_id='gone'") == 0
        assert _count(path, "SELECT COUNT(*) FROM memory_events WHERE context_id='gone'") == 0
        assert store.get_context("kept") is not None
    finally:
        store.close()


def test_purge_expired_and_rewrite_drop_old_rows(tmp_path: Path) -> None:
    """purge_expired removes every expired context now; re-setting an expired context drops
    its old events at once."""
    clock = ManualClock()
    path = tmp_path / "purge.db"
    store = SQLiteStore(EmbeddedConfig(path=str(path)), clock=clock)
    try:
        for n in range(3):
            store.set_context(f"c{n}", {"n": n}, ttl=5)
        store.append_event("c0", {"old": True})
        clock.advance(10)
        record = store.set_context("c0", {"new": True})
        assert record["version"] == 1
        assert _count(path, "SELECT COUNT(*) FROM memory_events WHERE context_id='c0'") == 0
        assert store.purge_expired() == 2
        assert _count(path, "SELECT COUNT(*) FROM memory_context") == 1
    finally:
        store.close()


def test_ttl_expiry_follows_the_injected_clock(tmp_path: Path) -> None:
    """Expiry compares with the store's clock, so it is exact to the second."""
    clock = ManualClock()
    store = SQLiteStore(EmbeddedConfig(path=str(tmp_path / "c.db")), clock=clock)
    try:
        store.set_context("c", {"a": 1}, ttl=10)
        clock.advance(9.999)
        assert store.get_context("c") is not None
        clock.advance(0.001)
        assert store.get_context("c") is None
    finally:
        store.close()


def test_lease_expiry_follows_the_injected_clock(tmp_path: Path) -> None:
    """A lease is held until exactly ttl_ms has passed on the store's clock."""
    clock = ManualClock()
    store = SQLiteStore(EmbeddedConfig(path=str(tmp_path / "l.db")), clock=clock)
    try:
        first = store.try_acquire("L", "a", 1000)
        clock.advance(0.999)
        assert store.try_acquire("L", "b", 1000) is None
        clock.advance(0.001)
        second = store.try_acquire("L", "b", 1000)
        assert first is not None and second is not None and second > first
    finally:
        store.close()


def test_threads_share_a_store_safely(sqlite_store: SQLiteStore) -> None:
    """Eight threads writing through one store lose no write and each get a connection."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)
    ready = threading.Barrier(9)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(25):
                sqlite_store.append_event("shared", {"t": n, "i": i})
                sqlite_store.write_task_output("task", i)
            ready.wait()  # stay alive until the connection count is read
            ready.wait()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    ready.wait()
    assert sqlite_store.stats()["active_connections"] == 9  # 8 workers + this thread
    ready.wait()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sqlite_store.get_events("shared")) == 200
    versions = [o["version"] for o in sqlite_store.list_task_outputs("task", limit=500)]
    assert sorted(versions) == list(range(1, 201))
    assert sqlite_store.stats()["active_connections"] == 1, "ended threads' connections close"


def test_a_held_write_lock_times_out_as_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    """When another connection holds the write lock past busy_timeout the write raises
    BackendUnavailableError and nothing is written."""
    path = tmp_path / "busy.db"
    store = SQLiteStore(EmbeddedConfig(path=str(path), busy_timeout=0.2))
    store.connect()
    blocker = sqlite3.connect(str(path), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(BackendUnavailableError) as info:
            store.set_context("c", {"a": 1})
        assert info.value.backend == "sqlite"
        blocker.execute("ROLLBACK")
        assert store.get_context("c") is None
        assert store.read_audit() == []
        store.set_context("c", {"a": 2})  # the store recovers once the lock is free
    finally:
        blocker.close()
        store.close()


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file whose schema version is newer than this library raises SchemaError."""
    path = tmp_path / "newer.db"
    SQLiteStore(EmbeddedConfig(path=str(path))).connect()
    raw = sqlite3.connect(str(path))
    raw.execute("INSERT INTO memory_schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(SchemaError):
        SQLiteStore(EmbeddedConfig(path=str(path))).connect()


def test_an_unusable_path_is_reported(tmp_path: Path) -> None:
    """A path whose parent is a regular file raises BackendUnavailableError on use and shows
    unhealthy in health_check (which never raises)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = SQLiteStore(EmbeddedConfig(path=str(blocker / "memory.db")))
    with pytest.raises(BackendUnavailableError):
        store.set_context("c", {"a": 1})
    health = store.health_check()
    assert health["status"] == "unhealthy" and "error" in health


def test_stats_report_sizes_connections_and_counts(sqlite_store: SQLiteStore) -> None:
    """stats() has used_memory (db + wal bytes), active_connections, path and row counts."""
    sqlite_store.set_context("c", {"a": 1})
    sqlite_store.append_event("c", {"e": 1})
    sqlite_store.write_flow_run(FlowRunWrite(flow_id="f", run_id="r"))
    stats = sqlite_store.stats()
    assert stats["path"] == str(sqlite_store.path)
    assert stats["used_memory"] == stats["db_bytes"] + stats["wal_bytes"] > 0
    assert stats["active_connections"] == 1
    assert stats["tables"]["memory_context"] == 1
    assert stats["tables"]["memory_events"] == 1
    assert stats["tables"]["flow_run_history"] == 1
    assert stats["tables"]["audit_log"] == 3


def test_event_cursor_must_be_an_event_id(sqlite_store: SQLiteStore) -> None:
    """get_events refuses a since cursor that is not one of this backend's event ids."""
    with pytest.raises(MemoryValidationError) as info:
        sqlite_store.get_events("c", since="1700000000000-0")
    assert info.value.field == "since"


def test_config_must_be_an_embedded_config() -> None:
    """Passing something else than an EmbeddedConfig is refused naming config."""
    with pytest.raises(MemoryValidationError) as info:
        SQLiteStore({"path": "x.db"})  # type: ignore[arg-type]
    assert info.value.field == "config"


def test_a_failed_sweep_does_not_fail_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the periodic purge fails (e.g. the file is busy) the committed write still returns."""
    clock = ManualClock()
    store = SQLiteStore(EmbeddedConfig(path=str(tmp_path / "p.db")), clock=clock,
                        purge_interval=1)
    calls: list[int] = []

    def failing_purge() -> int:
        calls.append(1)
        raise BackendUnavailableError("sqlite", "busy")

    try:
        store.set_context("c", {"v": 1})
        monkeypatch.setattr(store._purger, "purge", failing_purge)
        clock.advance(2)
        record = store.set_context("c", {"v": 2})
        assert record["version"] == 2 and calls == [1]
        stored = store.get_context("c")
        assert stored is not None and stored["data"] == {"v": 2}
    finally:
        store.close()


def test_store_pickles_as_configuration(sqlite_store: SQLiteStore) -> None:
    """A pickled store carries its configuration, not its connections, and works after."""
    sqlite_store.set_context("c", {"v": 1})
    copy = pickle.loads(pickle.dumps(sqlite_store))
    try:
        assert copy.path == sqlite_store.path and copy is not sqlite_store
        record = copy.get_context("c")
        assert record is not None and record["data"] == {"v": 1}
    finally:
        copy.close()


def test_a_file_that_is_not_a_database_is_a_backend_error(tmp_path: Path) -> None:
    """A path holding something else than SQLite raises BackendError; health says unhealthy."""
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an sqlite file" * 200)
    store = SQLiteStore(EmbeddedConfig(path=str(path)))
    with pytest.raises(BackendError) as info:
        store.get_context("c")
    assert info.value.backend == "sqlite"
    assert store.health_check()["status"] == "unhealthy"
    store.close()


def test_timestamps_keep_microseconds(sqlite_store: SQLiteStore) -> None:
    """History timestamps given with microseconds and offsets are stored exactly in UTC."""
    written = sqlite_store.write_flow_run(FlowRunWrite(
        flow_id="f", run_id="r", started_at="2026-01-31T12:00:00.123457+02:00",
        ended_at="2026-01-31T10:00:00.999999Z"))
    assert written["started_at"] == "2026-01-31T10:00:00.123457+00:00"
    assert written["ended_at"] == "2026-01-31T10:00:00.999999+00:00"


def test_store_implements_every_embedded_protocol(sqlite_store: SQLiteStore) -> None:
    """SQLiteStore is a Lifecycle, ContextStore, EventLog, LockManager, RunHistory,
    TaskOutputs and AuditLog named "sqlite"."""
    for protocol in (Lifecycle, ContextStore, EventLog, LockManager, RunHistory, TaskOutputs,
                     AuditLog):
        assert isinstance(sqlite_store, protocol), protocol.__name__
    assert sqlite_store.backend_name == "sqlite"
