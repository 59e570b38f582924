"""Connect-time behaviour of the pgvector backend: extension, tables, indexes, dimension
checks, migrations, audit rows and health reporting."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg2
import pytest

from memory_resources.config import PostgresConfig
from memory_resources.errors import ConfigurationError, SchemaError
from memory_resources.runinfo import acting_as
from memory_resources.stores.pgvector import PgVectorIndex, table_name
from memory_resources.stores.postgres.migrate import migrate
from memory_resources.stores.postgres.pool import PostgresPool
from tests.fixtures.pgvector import postgres_config, vector_config


def fetch(dsn: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``statement`` on a separate autocommit connection."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def tables(dsn: str, schema: str) -> list[str]:
    """Names of the ordinary tables in ``schema``."""
    return [row[0] for row in fetch(
        dsn, "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,))]


def indexes(dsn: str, schema: str, table: str) -> list[str]:
    """Names of the indexes on ``schema.table``."""
    return [row[0] for row in fetch(
        dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
        "ORDER BY 1", (schema, table))]


def test_connect_creates_table_and_indexes_in_schema(
    make_pgvector_index: Callable[..., PgVectorIndex], pgvector_dsn: str, pgvector_schema: str
) -> None:
    """connect() creates pgvector_<namespace> with a vector(d) column, an HNSW index with
    the metric's operator class, a GIN index on metadata, and the extension in public."""
    make_pgvector_index(12, "euclidean", namespace="docs")
    assert tables(pgvector_dsn, pgvector_schema) == ["pgvector_docs"]
    definitions = [row[0] for row in fetch(
        pgvector_dsn, "SELECT indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY 1",
        (pgvector_schema,))]
    assert any(re.search(r"USING hnsw \(embedding (public\.)?vector_l2_ops\)", d)
               and "m='16'" in d for d in definitions), definitions
    assert any("USING gin (metadata)" in d for d in definitions)
    column = fetch(pgvector_dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                   "WHERE attrelid = %s::regclass AND attname = 'embedding'",
                   (f"{pgvector_schema}.pgvector_docs",))
    assert column == [("vector(12)",)]
    assert fetch(pgvector_dsn, "SELECT extnamespace::regnamespace::text FROM pg_extension "
                 "WHERE extname = 'vector'") == [("public",)]


def test_dimension_mismatch_is_detected_at_connect(
    make_pgvector_index: Callable[..., PgVectorIndex], pgvector_postgres_config: PostgresConfig
) -> None:
    """Connecting to an existing namespace with another dimension raises a
    ConfigurationError naming both dimensions, and leaves the stored data alone."""
    first = make_pgvector_index(8, "cosine", namespace="shared")
    first.upsert(["a"], [[1, 0, 0, 0, 0, 0, 0, 0]])
    other = PgVectorIndex.from_config(vector_config(16, "cosine", "shared"),
                                      pgvector_postgres_config)
    with pytest.raises(ConfigurationError) as info:
        other.connect()
    message = str(info.value)
    assert "dimension mismatch" in message and "8" in message and "dimension=16" in message
    assert first.count() == 1


def test_foreign_table_with_the_namespace_name_is_a_schema_error(
    make_pgvector_index: Callable[..., PgVectorIndex], pgvector_dsn: str, pgvector_schema: str
) -> None:
    """A table named like the namespace but without a vector column is refused, not used."""
    fetch(pgvector_dsn, f'CREATE TABLE "{pgvector_schema}".pgvector_taken (id text)')
    with pytest.raises(SchemaError, match="was not created by this backend"):
        make_pgvector_index(4, "cosine", namespace="taken")


def test_missing_extension_is_a_clear_configuration_error(
    postgres_dsn: str, make_schema: Callable[[str], str]
) -> None:
    """On a server without pgvector, connect raises a ConfigurationError naming the missing
    extension and the fixes, and creates nothing."""
    if fetch(postgres_dsn, "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"):
        pytest.skip("the postgres_dsn server has pgvector; this test needs one without it")
    schema = make_schema(postgres_dsn)
    index = PgVectorIndex.from_config(vector_config(4, "cosine", "docs"),
                                      postgres_config(postgres_dsn, schema))
    with pytest.raises(ConfigurationError) as info:
        index.connect()
    message = str(info.value)
    assert "'vector' extension" in message and "does not provide it" in message
    assert "pgvector" in message and "'backend': 'numpy'" in message
    assert tables(postgres_dsn, schema) == []
    assert index.health_check()["status"] == "unhealthy"


def test_migration_004_runs_with_and_without_pgvector(
    pgvector_dsn: str, postgres_dsn: str, make_schema: Callable[[str], str]
) -> None:
    """The migration runner applies 004 on a server without pgvector (a no-op) and on one
    with it (the extension exists afterwards)."""
    for dsn in (postgres_dsn, pgvector_dsn):
        pool = PostgresPool(postgres_config(dsn, make_schema(dsn)))
        try:
            applied = migrate(pool)
            assert 4 in {migration.version for migration in applied}
        finally:
            pool.close()
    assert fetch(pgvector_dsn, "SELECT 1 FROM pg_extension WHERE extname = 'vector'") == [(1,)]


def test_writes_are_audited_with_run_ids(
    make_pgvector_index: Callable[..., PgVectorIndex], pgvector_dsn: str, pgvector_schema: str
) -> None:
    """With migrations applied, upsert and delete write audit rows in the same transaction,
    attributed to the acting flow and task run."""
    index = make_pgvector_index(
        4, "cosine", namespace="audited",
        postgres=postgres_config(pgvector_dsn, pgvector_schema, auto_migrate=True))
    with acting_as("flow-run-1", "task-run-1"):
        index.upsert(["x", "y"], [[1, 0, 0, 0], [0, 1, 0, 0]])
        index.delete(["x", "nope"])
        index.delete(["nope"])
    rows = fetch(pgvector_dsn, "SELECT operation, target, flow_run_id, task_run_id, details "
                 f'FROM "{pgvector_schema}".audit_log ORDER BY id')
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("vector.upsert", "namespace:audited", "flow-run-1", "task-run-1"),
        ("vector.delete", "namespace:audited", "flow-run-1", "task-run-1"),
    ]
    assert rows[0][4]["ids"] == ["x", "y"] and rows[1][4]["count"] == 2


def test_long_namespaces_get_distinct_bounded_tables(
    make_pgvector_index: Callable[..., PgVectorIndex], pgvector_dsn: str, pgvector_schema: str
) -> None:
    """63-character namespaces that differ only at the end map to distinct tables of at most
    63 bytes (PostgreSQL would otherwise truncate them into one)."""
    one, two = "n" * 62 + "1", "n" * 62 + "2"
    first = make_pgvector_index(4, "cosine", namespace=one)
    second = make_pgvector_index(4, "cosine", namespace=two)
    first.upsert(["a"], [[1, 0, 0, 0]])
    assert table_name(one) != table_name(two)
    assert all(len(name) <= 63 for name in (table_name(one), table_name(two)))
    assert sorted(tables(pgvector_dsn, pgvector_schema)) == sorted(
        [table_name(one), table_name(two)])
    assert (first.count(), second.count()) == (1, 0)
    assert first.stats()["namespaces"] == {one: 1, two: 0}


def test_second_metric_on_a_namespace_gets_its_own_index(
    make_pgvector_index: Callable[..., PgVectorIndex], pgvector_dsn: str, pgvector_schema: str
) -> None:
    """Opening a namespace with another metric adds that metric's HNSW index; both metrics
    then rank the same stored vectors by their own scores."""
    cosine = make_pgvector_index(4, "cosine", namespace="multi")
    cosine.upsert(["long", "unit"], [[10, 1, 0, 0], [0, 1, 0, 0]])
    dot = make_pgvector_index(4, "dotproduct", namespace="multi")
    assert indexes(pgvector_dsn, pgvector_schema, "pgvector_multi") == [
        "pgvector_multi_hnsw_cosine", "pgvector_multi_hnsw_dotproduct",
        "pgvector_multi_metadata_gin", "pgvector_multi_pkey",
    ]
    assert [m["id"] for m in cosine.query([0, 1, 0, 0], top_k=2)] == ["unit", "long"]
    assert [m["id"] for m in dot.query([0, 1, 0, 0], top_k=2)] == ["long", "unit"]


def test_bulk_load_rebuilds_the_index_and_stays_exact_meanwhile(
    make_pgvector_index: Callable[..., PgVectorIndex], pgvector_dsn: str, pgvector_schema: str
) -> None:
    """bulk_load() drops the HNSW index, answers exactly while loading and rebuilds the
    index afterwards, also when the load raises."""
    index = make_pgvector_index(4, "euclidean", namespace="bulk")
    hnsw = "pgvector_bulk_hnsw_euclidean"
    with pytest.raises(RuntimeError), index.bulk_load():
        index.upsert(["a", "b"], [[0, 0, 0, 0], [3, 4, 0, 0]])
        assert hnsw not in indexes(pgvector_dsn, pgvector_schema, "pgvector_bulk")
        assert [m["score"] for m in index.query([0, 0, 0, 0], top_k=5)] == [0.0, 5.0]
        raise RuntimeError("load failed half way")
    assert hnsw in indexes(pgvector_dsn, pgvector_schema, "pgvector_bulk")
    assert index.stats()["hnsw_index"] is True and index.count() == 2


def test_dimensions_above_the_hnsw_limit_are_searched_exactly(
    make_pgvector_index: Callable[..., PgVectorIndex], pgvector_dsn: str, pgvector_schema: str
) -> None:
    """A 2001-dimensional namespace has no HNSW index (pgvector's limit is 2000) and still
    answers queries exactly."""
    index = make_pgvector_index(2001, "cosine", namespace="wide")
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((20, 2001)).astype(np.float32)
    index.upsert([f"w{i}" for i in range(20)], vectors)
    assert not any("hnsw" in name for name in indexes(pgvector_dsn, pgvector_schema,
                                                      "pgvector_wide"))
    assert [m["id"] for m in index.query(vectors[7], top_k=1)] == ["w7"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"hnsw_m": 40, "hnsw_ef_construction": 64}, "must be >= 2 * hnsw_m"),
        ({"hnsw_m": 101, "hnsw_ef_construction": 400}, "hnsw_m must be between 2 and 100"),
        ({"ef_search": 1001}, "ef_search must be between 1 and 1000"),
    ],
)
def test_bad_hnsw_options_are_refused_before_connecting(
    fields: dict[str, Any], words: str
) -> None:
    """HNSW options outside pgvector's bounds raise a ConfigurationError at construction."""
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        PgVectorIndex.from_config(vector_config(4, "cosine", "x", **fields),
                                  postgres_config("postgresql://127.0.0.1:1/none", "public"))


def test_pgvector_without_a_connection_is_a_configuration_error() -> None:
    """from_config without any PostgreSQL connection says how to give one."""
    with pytest.raises(ConfigurationError, match="needs a PostgreSQL connection"):
        PgVectorIndex.from_config(vector_config(4, "cosine", "x"))


def test_health_check_reports_an_unreachable_server() -> None:
    """health_check never raises: an unreachable server is reported as unhealthy."""
    config = PostgresConfig.model_validate({
        "host": "127.0.0.1", "port": 1, "connection_timeout": 1, "retry_attempts": 0,
        "auto_migrate": False})
    index = PgVectorIndex.from_config(vector_config(4, "cosine", "x"), config)
    report = index.health_check()
    assert report["status"] == "unhealthy" and report["backend"] == "pgvector"
    assert report["error"]
