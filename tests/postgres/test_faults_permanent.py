"""Permanent errors (missing database or role, wrong password, permission denied, missing
schema) are raised at once, never retried, with a message saying what is wrong and how to
fix it. The server's log proves each was tried exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from memory_resources.config import PostgresConfig
from memory_resources.errors import (
    BackendAuthenticationError,
    BackendConfigurationError,
    BackendError,
    BackendPermissionError,
    SchemaError,
)
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresPool, PostgresStore
from tests.servers import PostgresServer

PASSWORD = "right-horse-battery"
FAST = 1.0  # seconds: no retries (the server log counts the attempts)


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """A throwaway server with a password role ``mr_pw`` (scram), a privilege-less role
    ``mr_app``, and trust for everyone else."""
    with PostgresServer(fsync=False) as pg:
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE mr_pw LOGIN PASSWORD '{PASSWORD}'")
            cur.execute("CREATE ROLE mr_app LOGIN")
            cur.execute("CREATE ROLE mr_nologin NOLOGIN")
        hba = pg.data_dir / "pg_hba.conf"
        hba.write_text("host all mr_pw 127.0.0.1/32 scram-sha-256\n"
                       "host all all 127.0.0.1/32 trust\n")
        if pg.user is not None:
            import shutil

            shutil.chown(hba, pg.user)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
        conn.close()
        time.sleep(0.2)  # the postmaster rereads pg_hba.conf on SIGHUP
        yield pg


def _log_count(server: PostgresServer, fragment: str) -> int:
    return server.log_path.read_text(errors="replace").count(fragment)


def _config(server: PostgresServer, **values: object) -> PostgresConfig:
    base: dict[str, object] = {"host": "127.0.0.1", "port": server.port,
                               "database": "postgres", "user": "postgres",
                               "retry_attempts": 3, "operation_timeout": 10}
    base.update(values)
    return PostgresConfig.model_validate(base)


def _refused(server: PostgresServer, config: PostgresConfig, fragment: str
             ) -> tuple[BackendError, int]:
    """Open a pool with ``config``; return the typed error and how many times the server
    logged ``fragment`` for it."""
    before = _log_count(server, fragment)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        PostgresPool(config)
    assert time.monotonic() - started < FAST
    time.sleep(0.05)  # the log line is written by the backend as it exits
    return info.value, _log_count(server, fragment) - before


def test_wrong_password_is_reported_once_without_the_password(server: PostgresServer) -> None:
    """A wrong password raises BackendAuthenticationError naming the user, tried once."""
    error, tries = _refused(server, _config(server, user="mr_pw", password="wrong-pw"),
                            'password authentication failed for user "mr_pw"')
    assert type(error) is BackendAuthenticationError
    assert "wrong password for user 'mr_pw'" in str(error)
    assert "wrong-pw" not in str(error)
    assert tries == 1


def test_missing_role_is_named_as_missing(server: PostgresServer) -> None:
    """A role that does not exist is reported as such (not as "check user and password")."""
    error, tries = _refused(server, _config(server, user="mr_ghost"),
                            'role "mr_ghost" does not exist')
    assert type(error) is BackendAuthenticationError
    assert "role 'mr_ghost' does not exist" in str(error)
    assert "CREATE ROLE" in str(error)
    assert tries == 1


def test_missing_database_is_a_configuration_error(server: PostgresServer) -> None:
    """A database that does not exist raises BackendConfigurationError (a
    ConfigurationError too) naming it, tried once."""
    error, tries = _refused(server, _config(server, database="mr_nodb"),
                            'database "mr_nodb" does not exist')
    assert type(error) is BackendConfigurationError
    assert "database 'mr_nodb' does not exist" in str(error)
    assert "CREATE DATABASE" in str(error)
    assert tries == 1


def test_role_that_may_not_log_in_is_named(server: PostgresServer) -> None:
    """A NOLOGIN role is reported as not permitted to log in, tried once."""
    error, tries = _refused(server, _config(server, user="mr_nologin"),
                            'role "mr_nologin" is not permitted to log in')
    assert type(error) is BackendAuthenticationError
    assert "may not log in" in str(error)
    assert tries == 1


def test_missing_privilege_is_a_permission_error_not_retried(server: PostgresServer) -> None:
    """An idempotent write by a role without the INSERT privilege raises
    BackendPermissionError at once (SQLSTATE 42501): one failed statement on the server."""
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS perm_test")
        cur.execute("CREATE TABLE IF NOT EXISTS perm_test.t (x int)")
        cur.execute("GRANT USAGE ON SCHEMA perm_test TO mr_app")
        cur.execute("GRANT SELECT ON perm_test.t TO mr_app")
    conn.close()
    pool = PostgresPool(_config(server, user="mr_app", schema="perm_test"))
    fragment = "permission denied for table t"
    try:
        before = _log_count(server, fragment)
        started = time.monotonic()
        with pytest.raises(BackendPermissionError) as info:
            pool.run(lambda cur: cur.execute("INSERT INTO perm_test.t VALUES (1)"),
                     idempotent=True)
        assert time.monotonic() - started < FAST
        assert "SQLSTATE 42501" in str(info.value)
        assert "GRANT" in str(info.value)
        time.sleep(0.05)
        assert _log_count(server, fragment) - before == 1
    finally:
        pool.close()


def test_schema_dropped_under_a_running_store_says_run_migrate(server: PostgresServer) -> None:
    """Tables gone after connect (schema dropped) raise SchemaError telling to migrate."""
    store = PostgresStore(_config(server, schema="gone_test"))
    try:
        store.write_flow_run(FlowRunWrite("f", "r", status="running"))
        conn = server.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA gone_test CASCADE")
        conn.close()
        with pytest.raises(SchemaError, match="memory-resources migrate"):
            store.read_flow_runs("f")
    finally:
        store.close()


@pytest.mark.parametrize(("values", "expected", "words"), [
    ({"user": "mr_pw", "password": "wrong-pw"}, BackendAuthenticationError, "wrong or missing"),
    ({"user": "mr_ghost"}, BackendAuthenticationError, 'role "mr_ghost" does not exist'),
    ({"database": "mr_nodb"}, BackendConfigurationError, "CREATE DATABASE"),
])
def test_async_driver_classifies_login_failures_by_sqlstate(
    server: PostgresServer, values: dict[str, str], expected: type[BackendError], words: str
) -> None:
    """asyncpg (the async store's driver) reports login failures with a SQLSTATE; the
    shared classification turns them into the same typed, permanent errors."""
    import asyncio

    import asyncpg

    from memory_resources.stores.postgres.aio_driver import (
        CAUGHT,
        connect_options,
        is_transient,
        translate,
    )

    async def attempt() -> BaseException:
        try:
            conn = await asyncpg.connect(**connect_options(_config(server, **values)))
        except CAUGHT as exc:
            return exc
        await conn.close()
        raise AssertionError("the login was accepted")

    failure = asyncio.run(attempt())
    error = translate(failure)
    assert type(error) is expected
    assert words in str(error)
    assert "wrong-pw" not in str(error)
    assert not is_transient(failure)
