"""MemoryAPI on the real Redis and PostgreSQL servers (and pgvector)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis
from psycopg2 import sql

from memory_resources.api import MemoryAPI
from memory_resources.config import PostgresConfig
from memory_resources.errors import MemoryValidationError
from memory_resources.stores.postgres import PostgresStore

from .conftest import DIMENSION, unit
from .test_bad_input import CASES

SQL_TABLES = ("flow_run_history", "task_outputs", "audit_log", "memory_context",
              "memory_events")


def redis_keys(url: str, prefix: str) -> list[bytes]:
    """Every key under ``prefix`` on the server."""
    with redis.Redis.from_url(url) as client:
        return list(client.scan_iter(match=prefix + "*", count=500))


def row_counts(dsn: str, schema: str) -> dict[str, int]:
    """Rows per memory table in ``schema``."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            counts = {}
            for table in SQL_TABLES:
                cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)))
                row = cur.fetchone()
                assert row is not None
                counts[table] = int(row[0])
            return counts
    finally:
        conn.close()


@pytest.fixture
def services(redis_url: str, redis_prefix: str, postgres_dsn: str, pg_schema: str,
             tmp_path: Path) -> Iterator[tuple[MemoryAPI, dict[str, str]]]:
    """A MemoryAPI with context/events/locks on Redis and history/outputs/audit on PostgreSQL."""
    api = MemoryAPI(
        redis_config={"url": redis_url, "key_prefix": redis_prefix},
        postgres_config={"dsn": postgres_dsn, "schema": pg_schema},
        vector_config={"dimension": DIMENSION},
        embedded_config={"path": str(tmp_path / "vectors.db")},
    )
    api.connect()
    yield api, {"redis_url": redis_url, "prefix": redis_prefix, "dsn": postgres_dsn,
                "schema": pg_schema}
    api.disconnect()


def test_roles_are_served_by_redis_and_postgres(
    services: tuple[MemoryAPI, dict[str, str]]
) -> None:
    """With both configs, context/events/locks use Redis and history/outputs/audit PostgreSQL."""
    api, _ = services
    backends = api.backends
    assert [backends[r] for r in ("context", "events", "locks")] == ["redis"] * 3
    assert [backends[r] for r in ("history", "outputs", "audit")] == ["postgres"] * 3
    assert backends["vectors"] == "numpy"


def test_round_trip_lands_in_the_servers(services: tuple[MemoryAPI, dict[str, str]]) -> None:
    """Every write goes to its server (keys under the prefix, rows in the schema) and reads back."""
    api, where = services
    assert api.set_context("s-1", {"user_id": "u"}, ttl=600) is True
    assert api.append_event("s-1", {"type": "login"}) is True
    assert api.write_flow_run_history("flow", "run", {"status": "completed",
                                                      "duration": 3}) is True
    assert api.write_task_output("task", {"result": [1, 2]}, {"m": 1}) is True
    record = api.get_context("s-1")
    assert record is not None and record["data"] == {"user_id": "u"} and record["ttl"] == 600
    assert [e["data"] for e in api.get_events("s-1")] == [{"type": "login"}]
    history = api.read_flow_run_history("flow")
    assert [(h["run_id"], h["status"], h["duration"]) for h in history] == [
        ("run", "completed", 3.0)]
    output = api.read_task_output("task")
    assert output is not None and output["output"] == {"result": [1, 2]}
    assert {row["operation"] for row in api.read_audit_log()} >= {"history.write",
                                                                  "output.write"}
    keys = redis_keys(where["redis_url"], where["prefix"])
    assert keys and all(key.decode().startswith(where["prefix"]) for key in keys)
    counts = row_counts(where["dsn"], where["schema"])
    assert counts["flow_run_history"] == 1 and counts["task_outputs"] == 1
    with api.acquire_lock("shared", blocking_timeout=1) as lock:
        assert lock.fencing_token is not None
    assert api.clear_context("s-1") is True
    assert api.get_context("s-1") is None and api.get_events("s-1") == []


def test_health_and_stats_report_the_servers(services: tuple[MemoryAPI, dict[str, str]]
                                             ) -> None:
    """health_check is healthy with redis/postgres backends; stats carry the spec's keys."""
    api, _ = services
    health = api.health_check()
    assert health["overall_status"] == "healthy"
    assert health["adapters"]["redis"]["backend"] == "redis"
    assert health["adapters"]["postgres"]["backend"] == "postgres"
    stats = api.get_memory_stats()["adapters"]
    assert stats["redis"]["used_memory"] > 0
    assert stats["postgres"]["active_connections"] >= 1
    assert stats["vector"]["total_embeddings"] == 0


def test_bad_input_writes_nothing_to_the_servers(
    services: tuple[MemoryAPI, dict[str, str]]
) -> None:
    """Every bad-input case is refused naming its argument; no key and no row is written."""
    api, where = services
    for case_id, method, kwargs, field in CASES:
        if method in ("acquire_lock", "lock", "context") or "oversized" in case_id:
            continue  # no write involved / limits are per-backend config (tested below)
        with pytest.raises(MemoryValidationError) as caught:
            getattr(api, method)(**kwargs)
        assert caught.value.field.startswith(field), (case_id, caught.value.field)
    assert redis_keys(where["redis_url"], where["prefix"]) == []
    assert set(row_counts(where["dsn"], where["schema"]).values()) == {0}


def test_oversized_payloads_are_refused_by_the_server_backends(
    redis_url: str, redis_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    """max_payload_bytes of each config is enforced before anything reaches the server."""
    big = {"b": "x" * 5000}
    with MemoryAPI(
        redis_config={"url": redis_url, "key_prefix": redis_prefix, "max_payload_bytes": 4096},
        postgres_config={"dsn": postgres_dsn, "schema": pg_schema, "max_payload_bytes": 4096},
        vector_config={"dimension": DIMENSION},
        embedded_config={"path": str(tmp_path / "v.db")},
    ) as api:
        calls: list[tuple[str, dict[str, Any], str]] = [
            ("set_context", {"context_id": "c", "context_data": big}, "context_data"),
            ("append_event", {"context_id": "c", "event": big}, "event"),
            ("write_flow_run_history", {"flow_id": "f", "run_id": "r", "data": big}, "data"),
            ("write_task_output", {"task_id": "t", "output": big}, "output"),
        ]
        for method, kwargs, field in calls:
            with pytest.raises(MemoryValidationError) as caught:
                getattr(api, method)(**kwargs)
            assert caught.value.field == field and "4096" in str(caught.value)
    assert redis_keys(redis_url, redis_prefix) == []
    assert set(row_counts(postgres_dsn, pg_schema).values()) == {0}


def test_redis_config_alone_keeps_history_embedded(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """MemoryAPI(redis_config=...) alone: context on Redis, history on the embedded file."""
    with MemoryAPI(redis_config={"url": redis_url, "key_prefix": redis_prefix},
                   vector_config={"dimension": DIMENSION},
                   embedded_config={"path": str(tmp_path / "m.db")}) as api:
        assert api.backends["context"] == "redis" and api.backends["history"] == "sqlite"
        api.set_context("only-redis", {"v": 1})
        api.write_flow_run_history("f", "r", {"status": "running"})
        assert api.read_flow_run_history("f")[0]["status"] == "running"
    assert redis_keys(redis_url, redis_prefix)
    assert (tmp_path / "m.db").exists()


def test_postgres_only_deployment_through_from_stores(
    postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    """from_stores puts context, events and locks on PostgreSQL too (the spec's alternative)."""
    store = PostgresStore(PostgresConfig.model_validate({"dsn": postgres_dsn,
                                                         "schema": pg_schema}))
    with MemoryAPI.from_stores(
        context=store, events=store, locks=store, history=store, outputs=store, audit=store,
        vector_config={"dimension": DIMENSION},
        embedded_config={"path": str(tmp_path / "v.db")},
    ) as api:
        assert set(api.backends[r] for r in ("context", "events", "locks", "history")) == {
            "postgres"}
        api.set_context("pg-ctx", {"v": 1})
        api.append_event("pg-ctx", {"type": "e"})
        with api.acquire_lock("pg-lock", blocking_timeout=1) as lock:
            assert lock.fencing_token is not None
        assert api.get_events("pg-ctx")[0]["data"] == {"type": "e"}
    counts = row_counts(postgres_dsn, pg_schema)
    assert counts["memory_context"] == 1 and counts["memory_events"] == 1


def test_pgvector_backend_through_postgres_config(
    pgvector_dsn: str, pgvector_schema: str, tmp_path: Path
) -> None:
    """vector_config backend "pgvector" stores and queries embeddings on postgres_config."""
    with MemoryAPI(
        postgres_config={"dsn": pgvector_dsn, "schema": pgvector_schema},
        vector_config={"backend": "pgvector", "dimension": DIMENSION},
        embedded_config={"path": str(tmp_path / "m.db")},
    ) as api:
        assert api.backends["vectors"] == "pgvector"
        api.index_embedding("a", unit(1, 0), {"type": "doc"})
        api.index_embedding("b", unit(0, 1), {"type": "note"})
        hits = api.query_embeddings(unit(1, 0.1), top_k=2)
        assert [hit["id"] for hit in hits] == ["a", "b"]
        assert [h["id"] for h in api.query_embeddings(unit(1, 0), top_k=5,
                                                      filter_metadata={"type": "note"})] == ["b"]
        assert api.delete_embedding("a") is True and api.delete_embedding("a") is False
        assert api.get_memory_stats()["adapters"]["vector"]["total_embeddings"] == 1
        assert api.health_check()["adapters"]["vector"]["backend"] == "pgvector"
