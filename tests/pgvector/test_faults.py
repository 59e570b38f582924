"""Failure behaviour of the pgvector backend: a writer killed mid-upsert, a role that may
not create the extension, and concurrent use from several threads."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from psycopg2 import sql

from memory_resources.errors import ConfigurationError
from memory_resources.stores.pgvector import PgVectorIndex
from tests.concurrency import run_in_threads
from tests.fixtures.pgvector import postgres_config, vector_config

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import logging
    import sys

    import numpy as np
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from memory_resources.config import PostgresConfig, VectorConfig
    from memory_resources.stores.pgvector import PgVectorIndex

    dsn, schema, name = sys.argv[1], sys.argv[2], sys.argv[3]
    index = PgVectorIndex.from_config(
        VectorConfig(backend="pgvector", dimension=64, namespace="killed"),
        PostgresConfig(dsn=dsn, schema=schema, auto_migrate=False, application_name=name))
    index.connect()
    rng = np.random.default_rng(0)
    index.upsert([f"a{i}" for i in range(100)], rng.standard_normal((100, 64)))
    print("first batch committed", flush=True)
    while True:  # large batches until killed; each is one transaction
        index.upsert([f"b{i}" for i in range(50_000)], rng.standard_normal((50_000, 64)))
        print("a large batch committed", flush=True)
""")


def autocommit(dsn: str, statement: sql.Composable | str) -> list[tuple[object, ...]]:
    """Run one statement on its own autocommit connection; its rows, if any."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def test_writer_killed_mid_upsert_leaves_only_committed_batches(
    pgvector_dsn: str, pgvector_schema: str, make_pgvector_index: Callable[..., PgVectorIndex]
) -> None:
    """SIGKILL of a process while its large upsert is running leaves every committed batch
    and nothing of the interrupted one; the namespace stays usable."""
    name = f"mrtest-writer-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, pgvector_dsn, pgvector_schema, name],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "first batch committed"
        table = f"{pgvector_schema}.pgvector_killed"
        probe = psycopg2.connect(pgvector_dsn)
        probe.autocommit = True
        with probe.cursor() as cur:
            while True:  # wait until the large batch is being written by the server
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                            "AND application_name = %s "
                            "AND (query LIKE 'COPY%%' OR query LIKE 'INSERT%%')", (name,))
                row = cur.fetchone()
                if row is not None and row[0] > 0:
                    break
                assert child.poll() is None, "the writer exited before its large batch"
        probe.close()
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    counts = autocommit(pgvector_dsn, f"SELECT count(*) FILTER (WHERE id LIKE 'a%%'), "
                        f"count(*) FILTER (WHERE id LIKE 'b%%') FROM {table}")
    a_rows, b_rows = counts[0]
    assert a_rows == 100 and b_rows in (0, 50_000)
    index = make_pgvector_index(64, "cosine", namespace="killed")
    index.upsert(["after"], [np.ones(64)])
    assert index.count() == 100 + b_rows + 1


@pytest.fixture
def unprivileged_database(pgvector_dsn: str) -> Iterator[str]:
    """A fresh database without pgvector, owned by a fresh non-superuser role; its DSN.
    Both are dropped afterwards."""
    name = f"mrtest_{uuid.uuid4().hex[:8]}"
    autocommit(pgvector_dsn, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    autocommit(pgvector_dsn, sql.SQL("CREATE DATABASE {} OWNER {}").format(
        sql.Identifier(name), sql.Identifier(name)))
    base = psycopg2.extensions.parse_dsn(pgvector_dsn)
    dsn = psycopg2.extensions.make_dsn(**{**base, "dbname": name, "user": name})
    try:
        yield dsn
    finally:
        autocommit(pgvector_dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        autocommit(pgvector_dsn, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_role_that_may_not_create_the_extension_gets_a_clear_error(
    unprivileged_database: str,
) -> None:
    """When pgvector is available but the role may not create it, connect raises a
    ConfigurationError asking a superuser to run CREATE EXTENSION, and creates nothing."""
    index = PgVectorIndex.from_config(vector_config(4, "cosine", "docs"),
                                      postgres_config(unprivileged_database, "public"))
    with pytest.raises(ConfigurationError, match="may not create it") as info:
        index.connect()
    assert "CREATE EXTENSION vector" in str(info.value)
    assert autocommit(unprivileged_database,
                      "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_concurrent_threads_share_one_index(
    make_pgvector_index: Callable[..., PgVectorIndex],
) -> None:
    """Four threads upserting, querying and deleting through one index instance (one pool)
    all succeed and leave exactly their surviving rows."""
    index = make_pgvector_index(8, "euclidean")

    def work(worker: int) -> None:
        rng = np.random.default_rng(worker)
        for round_ in range(5):
            ids = [f"w{worker}-{round_}-{i}" for i in range(40)]
            index.upsert(ids, rng.standard_normal((40, 8)), [{"w": worker}] * 40)
            found = index.query(rng.standard_normal(8), top_k=5, filter={"w": worker})
            assert len(found) == 5 and {m["metadata"]["w"] for m in found} == {worker}
            assert index.delete(ids[:10]) == 10

    errors = run_in_threads(*(functools.partial(work, worker) for worker in range(4)))
    assert errors == []
    assert index.count() == 4 * 5 * 30
