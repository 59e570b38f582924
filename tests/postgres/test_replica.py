"""A real streaming replica behind ``read_replica_dsn``: reads are served by the hot standby
(proved with replay paused), read_your_writes waits for replay or reads the primary, and a
replica that is killed, refuses connections or black-holes them never fails a read: it
goes to the primary within the deadline with one ReplicaUnavailableWarning, and back to
the replica once it answers again. Sync (psycopg2 pool) and async (asyncpg) stores both."""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from memory_resources import ReplicaUnavailableWarning
from memory_resources.records import FlowRunWrite
from memory_resources.stores.pgvector import PgVectorIndex
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.postgres.aio import AsyncPostgresStore
from tests.fixtures.aio import LoopThread, SyncView
from tests.fixtures.pgvector import postgres_config, vector_config
from tests.fixtures.postgres import make_postgres_store
from tests.fixtures.services import create_schema, drop_schema
from tests.servers import PostgresServer, free_port
from tests.servers.postgres_replica import PostgresReplica
from tests.servers.proxy import TcpProxy

pytestmark = pytest.mark.topology

KINDS = ("sync", "async")
MakeStore = Callable[..., Any]


@pytest.fixture
def replica_schema(embedded_postgres: PostgresServer, pg_replica: PostgresReplica
                   ) -> Iterator[str]:
    """A migrated schema of this test on the primary, replayed on the replica."""
    schema = create_schema(embedded_postgres.dsn)
    make_postgres_store(embedded_postgres.dsn, schema).close()
    pg_replica.wait_caught_up()
    try:
        yield schema
    finally:
        drop_schema(embedded_postgres.dsn, schema)


@pytest.fixture
def make_store(embedded_postgres: PostgresServer, pg_replica: PostgresReplica,
               replica_schema: str) -> Iterator[MakeStore]:
    """``make(kind, replica_dsn=None, **config)``: a store (``sync``: PostgresStore;
    ``async``: AsyncPostgresStore behind a sync view) writing on the primary, reading on
    the replica; closed after the test."""
    runner = LoopThread()
    made: list[Any] = []

    def make(kind: str, replica_dsn: str | None = None, **config: Any) -> Any:
        settings = {"dsn": embedded_postgres.dsn, "schema": replica_schema,
                    "read_replica_dsn": replica_dsn or pg_replica.dsn, "auto_migrate": False,
                    "max_connections": 4, **config}
        if kind == "sync":
            store: Any = PostgresStore(settings)
            store.connect()
        else:
            store = SyncView(AsyncPostgresStore(settings), runner)
            store.connect()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    runner.stop()


def _flow() -> str:
    return f"flow-{uuid.uuid4().hex[:8]}"


def _run_ids(store: Any, flow_id: str) -> list[str]:
    return sorted(row["run_id"] for row in store.read_flow_runs(flow_id))


def test_pg_basebackup_replica_streams(embedded_postgres: PostgresServer,
                                       pg_replica: PostgresReplica) -> None:
    """The test replica is a hot standby in recovery, streaming from the primary."""
    conn = pg_replica.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), status FROM pg_stat_wal_receiver")
            assert cur.fetchone() == (True, "streaming")
    finally:
        conn.close()
    assert pg_replica.port != embedded_postgres.port


@pytest.mark.parametrize("kind", KINDS)
def test_reads_are_served_by_the_replica(kind: str, make_store: MakeStore,
                                         pg_replica: PostgresReplica) -> None:
    """With replay paused, rows written on the primary are invisible to history, output and
    audit reads (eventual consistency): the reads ran on the replica; once replay resumes
    they appear."""
    store = make_store(kind, replica_consistency="eventual")
    flow_id = _flow()
    pg_replica.pause_replay()
    store.write_flow_run(FlowRunWrite(flow_id, "r1", status="running"))
    store.write_task_output(f"{flow_id}-task", {"answer": 42})
    assert store.read_flow_runs(flow_id) == []
    assert store.read_task_output(f"{flow_id}-task") is None
    assert store.read_audit(limit=10) == []
    pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    assert _run_ids(store, flow_id) == ["r1"]
    output = store.read_task_output(f"{flow_id}-task")
    assert output is not None and output["output"] == {"answer": 42}
    operations = {row["operation"] for row in store.read_audit(limit=10)}
    assert operations == {"history.write", "output.write"}
    status = store.replica_status()
    assert status["replica_reads"] == 6 and status["primary_fallbacks"] == 0


def test_replica_connections_are_in_recovery(make_store: MakeStore) -> None:
    """The connection a read runs on answers pg_is_in_recovery() = true; a write's does not."""
    store = make_store("sync")

    def in_recovery(cur: Any) -> bool:
        cur.execute("SELECT pg_is_in_recovery()")
        return bool(cur.fetchone()[0])

    assert store.pool.run(in_recovery, read_only=True) is True
    assert store.pool.run(in_recovery) is False


@pytest.mark.parametrize("kind", KINDS)
def test_read_your_writes_waits_for_replay_or_reads_the_primary(
    kind: str, make_store: MakeStore, pg_replica: PostgresReplica
) -> None:
    """read_your_writes (the default): with replay paused, a read after this store's write
    waits replica_max_wait, then reads the primary and sees the write; with replay running
    the replica serves it once it has replayed the write; reads with no new write skip the
    check."""
    store = make_store(kind, replica_max_wait=0.2)
    flow_id = _flow()
    pg_replica.pause_replay()
    store.write_flow_run(FlowRunWrite(flow_id, "r1", status="running"))
    assert _run_ids(store, flow_id) == ["r1"]
    assert store.replica_status()["lag_fallbacks"] == 1
    assert store.replica_status()["replica_reads"] == 0
    pg_replica.resume_replay()
    store.write_flow_run(FlowRunWrite(flow_id, "r2", status="running"))
    assert _run_ids(store, flow_id) == ["r1", "r2"]
    assert _run_ids(store, flow_id) == ["r1", "r2"]
    status = store.replica_status()
    assert status["replica_reads"] == 2 and status["lag_fallbacks"] == 1


@pytest.mark.parametrize("fault", ["killed", "refused", "blackholed"])
def test_replica_down_reads_fall_back_to_the_primary(
    fault: str, make_store: MakeStore, pg_replica: PostgresReplica,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A replica killed, refusing (connections reset, new ones closed) or black-holed: each
    read still returns the primary's rows within operation_timeout, with one
    ReplicaUnavailableWarning and one logged warning per store for the outage; reads stay on
    the primary meanwhile and return to the replica once it answers."""
    config = {"replica_timeout": 1.0, "replica_retry_interval": 0.3, "operation_timeout": 5.0,
              "connection_timeout": 2.0, "replica_consistency": "eventual"}
    with TcpProxy(pg_replica.host, pg_replica.port) as proxy:
        dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
        stores = [make_store(kind, replica_dsn=dsn, **config) for kind in KINDS]
        flow_id = _flow()
        stores[0].write_flow_run(FlowRunWrite(flow_id, "r1", status="running"))
        pg_replica.wait_caught_up()
        for store in stores:
            assert _run_ids(store, flow_id) == ["r1"]
            assert store.replica_status()["replica_reads"] == 1
        if fault == "killed":
            pg_replica.kill()
        elif fault == "refused":
            proxy.cut()
            proxy.reject()
        else:
            proxy.blackhole()
        caplog.set_level(logging.WARNING, logger="memory_resources")
        for store in stores:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                started = time.monotonic()
                assert _run_ids(store, flow_id) == ["r1"]
                assert time.monotonic() - started < config["operation_timeout"]
                time.sleep(2 * config["replica_retry_interval"])  # margin on a busy box
                assert _run_ids(store, flow_id) == ["r1"]  # probes again, still down
                assert _run_ids(store, flow_id) == ["r1"]  # primary, no probe
            replica_warnings = [w for w in caught
                                if issubclass(w.category, ReplicaUnavailableWarning)]
            assert len(replica_warnings) == 1, [str(w.message) for w in caught]
            assert dsn not in str(replica_warnings[0].message)
            status = store.replica_status()
            assert status["down"] is True and status["primary_fallbacks"] == 2
        logged = [r for r in caplog.records
                  if "read replica unavailable" in r.getMessage()]
        assert len(logged) == len(stores)
        if fault == "killed":
            pg_replica.start()
            pg_replica.wait_streaming()
        else:
            proxy.pass_through()
        for store in stores:  # back on the replica at the next probe (a few on a busy box)
            deadline = time.monotonic() + 10
            while True:
                time.sleep(config["replica_retry_interval"])
                assert _run_ids(store, flow_id) == ["r1"]
                status = store.replica_status()
                if not status["down"] or time.monotonic() > deadline:
                    break
            assert status["down"] is False and status["replica_reads"] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_replica_warning_carries_no_secret(kind: str, make_store: MakeStore) -> None:
    """A replica DSN with a password pointing at a closed port: the read succeeds on the
    primary and the warning names the failure without the DSN or its password."""
    dsn = f"postgresql://postgres:replica-pw-123@127.0.0.1:{free_port()}/postgres"
    store = make_store(kind, replica_dsn=dsn, replica_consistency="eventual")
    with pytest.warns(ReplicaUnavailableWarning) as caught:
        assert store.read_flow_runs(_flow()) == []
    message = str(caught[0].message)
    assert "replica-pw-123" not in message and dsn not in message


@pytest.mark.parametrize("consistency", ["eventual", "read_your_writes"])
def test_pgvector_searches_read_the_replica(
    consistency: str, embedded_postgres: PostgresServer, pg_replica: PostgresReplica,
    replica_schema: str,
) -> None:
    """The pgvector index shares the pool: with replay paused, vectors upserted on the
    primary are invisible to count/query under eventual (the replica answered) and visible
    under read_your_writes (the lagging replica was skipped for the primary)."""
    config = postgres_config(embedded_postgres.dsn, replica_schema,
                             read_replica_dsn=pg_replica.dsn, replica_consistency=consistency,
                             replica_max_wait=0.2)
    index = PgVectorIndex.from_config(vector_config(4, "cosine", f"r_{uuid.uuid4().hex[:8]}"),
                                      config)
    try:
        index.connect()
        pg_replica.wait_caught_up()
        pg_replica.pause_replay()
        vectors = np.eye(4, dtype=np.float32)
        index.upsert([f"v{i}" for i in range(4)], vectors, [{"i": i} for i in range(4)])
        expected = 0 if consistency == "eventual" else 4
        assert index.count() == expected
        assert len(index.query(vectors[0], top_k=2)) == min(expected, 2)
        pg_replica.resume_replay()
        pg_replica.wait_caught_up()
        assert index.count() == 4
    finally:
        index.close()
