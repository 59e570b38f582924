"""The PostgresMemory block: construction, masking, a working store, migrate(), pickling,
and the same dict working in MemoryAPI(postgres_config=...)."""

from __future__ import annotations

import pickle

import pytest

from memory_resources.blocks.postgres import PostgresMemory
from memory_resources.config import PostgresConfig
from memory_resources.records import FlowRunWrite


def test_block_has_the_spec_keys_and_masks_secrets() -> None:
    """The spec's postgres_config keys are fields; password and DSNs never show in repr or
    a JSON dump, and to_config() carries the same values."""
    block = PostgresMemory(host="db.internal", port=6543, database="agent_framework",
                           user="agent", password="pa55-secret", connection_timeout=12,
                           max_connections=7, schema="memory",
                           read_replica_dsn="postgresql://agent:replica-secret@replica/db")
    for key in ("host", "port", "database", "user", "password", "connection_timeout",
                "max_connections", "dsn", "sslmode", "sslrootcert", "application_name",
                "statement_timeout", "min_connections", "read_replica_dsn"):
        assert key in PostgresMemory.model_fields or key == "schema"
    text = repr(block) + block.model_dump_json()
    assert "pa55-secret" not in text
    assert "replica-secret" not in text
    config = block.to_config()
    assert isinstance(config, PostgresConfig)
    assert config.schema_ == "memory"
    assert config.password is not None and config.password.get_secret_value() == "pa55-secret"
    assert PostgresMemory._block_type_name == "Postgres Memory"
    assert 'PostgresMemory.load("BLOCK_NAME")' in (PostgresMemory.__doc__ or "")


def test_block_refuses_unsafe_schema_and_unknown_keys() -> None:
    """A schema that is not a plain identifier, or a misspelt key, is refused."""
    with pytest.raises(ValueError, match="schema"):
        PostgresMemory(schema="public; DROP TABLE x")
    with pytest.raises(ValueError):
        PostgresMemory(hots="typo")


def test_block_migrates_and_builds_a_pooled_store(postgres_dsn: str, pg_schema: str) -> None:
    """migrate() applies the migrations once; get_store() returns one connected store per
    block, which pickling drops and the copy rebuilds."""
    block = PostgresMemory(dsn=postgres_dsn, schema=pg_schema, max_connections=2)
    try:
        assert [m.version for m in block.migrate()][:3] == [1, 2, 3]
        assert block.migrate() == []
        store = block.get_store()
        assert block.get_store() is store
        store.write_flow_run(FlowRunWrite("f", "r", status="completed"))
        copy = pickle.loads(pickle.dumps(block))
        assert copy._store is None
        assert copy.get_store().read_flow_runs("f")[0]["status"] == "completed"
        copy.close()
    finally:
        block.close()


def test_same_dict_configures_memory_api(postgres_dsn: str, pg_schema: str) -> None:
    """MemoryAPI(postgres_config=...) accepts the block's keys and writes run history to
    PostgreSQL (read back through a separate store)."""
    from memory_resources import MemoryAPI
    from memory_resources.stores.postgres import PostgresStore

    api = MemoryAPI(postgres_config={"dsn": postgres_dsn, "schema": pg_schema,
                                     "max_connections": 2})
    try:
        api.connect()
        assert api.write_flow_run_history("agent-flow", "run-42", {"status": "completed"})
        stats = api.get_memory_stats()
        assert stats["adapters"]["postgres"]["active_connections"] >= 1
    finally:
        api.disconnect()
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema})
    try:
        rows = store.read_flow_runs("agent-flow", "run-42")
        assert len(rows) == 1
        assert store.read_audit(operation="history.write", target="run-42")
    finally:
        store.close()
