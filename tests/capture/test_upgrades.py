"""Files and databases written before exactly-once capture keep working after upgrade: the
task-run key is added even where duplicate outputs already exist, and an old outbox file
gets the claim columns."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path

import psycopg2

from memory_resources.capture.outbox import Outbox
from memory_resources.config import EmbeddedConfig, PostgresConfig
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresPool, PostgresStore, migrate
from memory_resources.stores.postgres.migrate import MIGRATIONS_DIR
from memory_resources.stores.sqlite import SQLiteStore
from memory_resources.stores.sqlite.schema import _DDL_V1

DUPLICATES = [("t", 1, "tr-1"), ("t", 2, "tr-1"), ("t", 3, "tr-2")]
"""Rows a pre-upgrade store held: task run tr-1 stored twice (the bug this fixes)."""


def test_sqlite_v1_file_with_duplicates_upgrades_and_keeps_the_first(tmp_path: Path) -> None:
    """A schema-1 file holding two outputs of one task run upgrades to version 2; the
    first output becomes the task run's key, and writing it again stores nothing."""
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    raw.executescript(_DDL_V1 + "CREATE TABLE memory_schema_version (version INTEGER"
                      " PRIMARY KEY, applied_at TEXT NOT NULL);"
                      "INSERT INTO memory_schema_version VALUES (1, '2026-01-01');")
    raw.executemany("INSERT INTO task_outputs (task_id, version, output, metadata,"
                    " task_run_id, created_at) VALUES (?, ?, '1', '{}', ?, ?)",
                    [(t, v, r, f"2026-01-0{v}T00:00:00Z") for t, v, r in DUPLICATES])
    raw.commit()
    raw.close()
    store = SQLiteStore(EmbeddedConfig(path=str(path)))
    try:
        record, created = store.write_task_output_once("t", 2, task_run_id="tr-1")
        assert (record["version"], created) == (1, False)
        record, created = store.write_task_output_once("t", 3, task_run_id="tr-3")
        assert (record["version"], created) == (4, True)
    finally:
        store.close()


def test_postgres_006_migrates_a_schema_holding_duplicates(postgres_dsn: str,
                                                           pg_schema: str,
                                                           tmp_path: Path) -> None:
    """Migration 006 applies on a schema whose task_outputs already hold two rows of one
    task run: the first becomes the key; a later write of that task run stores nothing."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("00[1-5]_*.sql")):
        shutil.copy(path, folder / path.name)
    pool = PostgresPool(PostgresConfig.model_validate(
        {"dsn": postgres_dsn, "schema": pg_schema, "max_connections": 2}))
    try:
        migrate(pool, folder)
        conn = psycopg2.connect(postgres_dsn)
        with conn, conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "{pg_schema}".task_outputs (task_id, version, output,'
                " task_run_id, created_at) VALUES (%s, %s, '1', %s, now())", DUPLICATES)
            cur.execute(f'INSERT INTO "{pg_schema}".task_output_heads VALUES (%s, 3)', ("t",))
        conn.close()
        migrate(pool)  # 006 onwards
        migrate(pool)  # and again: nothing to do
    finally:
        pool.close()
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "max_connections": 2})
    try:
        record, created = store.write_task_output_once("t", 2, task_run_id="tr-1")
        assert (record["version"], created) == (1, False)
        record, created = store.write_task_output_once("t", 3, task_run_id="tr-3")
        assert (record["version"], created) == (4, True)
    finally:
        store.close()


def test_an_old_outbox_file_gets_the_claim_columns(tmp_path: Path) -> None:
    """An outbox file written before claims existed is opened, its records claimed and
    replayable, and its flow run is reported for new records."""
    path = tmp_path / "outbox.db"
    raw = sqlite3.connect(path)
    raw.executescript("""
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL,
            target_label TEXT NOT NULL, kind TEXT NOT NULL, record_key TEXT NOT NULL,
            payload TEXT NOT NULL, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL, updated_at REAL NOT NULL,
            UNIQUE (target, kind, record_key));
        CREATE TABLE outbox_targets (target TEXT PRIMARY KEY, label TEXT NOT NULL,
            block_name TEXT, config TEXT);
    """)
    raw.execute("INSERT INTO outbox (target, target_label, kind, record_key, payload,"
                " created_at, updated_at) VALUES ('t', 't', 'output', 'tr-1',"
                " '{\"task_id\": \"tr-1\"}', 1, 1)")
    raw.commit()
    raw.close()
    box = Outbox(path)
    (entry,) = box.claim("t")
    assert entry.record_key == "tr-1" and box.claim("t") == []
    record = FlowRunWrite(flow_id="f", run_id="r", status="running")
    box.add("t", "t", "history", "f/r", dataclasses.asdict(record))
    assert box.left_by_flow_run("r") == {"history": 1}
    assert box.remove(entry) and box.waiting("t") == (1, 0)
    box.close()
