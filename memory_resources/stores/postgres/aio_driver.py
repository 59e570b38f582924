"""The asyncpg side of the async PostgreSQL store: connection options (TLS included),
error classification, and the statement plumbing (``$n`` placeholders, JSON codecs,
fetching a result).

The options come from the same :class:`~memory_resources.config.PostgresConfig` as the
psycopg2 pool's (DSN or host/port/..., ``search_path`` to the schema, ``TimeZone=UTC``,
``application_name``, ``statement_timeout``, TLS). Errors are classified by SQLSTATE like
the sync store's (:mod:`.errors`): connection failures and shutdowns are transient,
serialization failures and deadlocks retryable, rejected credentials permanent; each
becomes the same typed error, with secrets masked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import ssl as ssl_module
from collections.abc import Sequence
from typing import Any

import asyncpg
import psycopg2.extensions

from ...config import PostgresConfig
from ...decoding import decode_or_mark
from ...errors import BackendConfigurationError, BackendError, BackendUnavailableError
from ...validation import require_identifier
from .errors import (
    BACKEND,
    PERMANENT_SQLSTATES,
    RETRYABLE_SQLSTATES,
    SHUTDOWN_SQLSTATES,
    sqlstate_error,
    tls_login_problem,
)
from .prepared import _prepared

_CONNECTION_CLASSES = ("08",)


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier in double quotes (what ``psycopg2.sql.Identifier`` makes)."""
    return '"' + name.replace('"', '""') + '"'


_TLS_FIELDS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
_VERIFY = ("verify-ca", "verify-full")


def tls_option(tls: dict[str, str]) -> Any:
    """asyncpg's ``ssl`` argument for libpq-style TLS settings (``sslmode``, ``sslrootcert``,
    ``sslcert``, ``sslkey``): None (asyncpg's default, ``prefer``), a mode string, or an
    :class:`ssl.SSLContext` that verifies like libpq (``verify-ca``: the chain against
    ``sslrootcert``; ``verify-full``: also the host name; ``require``: encryption only,
    unless a root certificate is given, then the chain as libpq does) and presents the
    client certificate."""
    mode = tls.get("sslmode")
    root, cert, key = tls.get("sslrootcert"), tls.get("sslcert"), tls.get("sslkey")
    if mode in ("disable", "allow") or (mode in (None, "prefer") and not cert):
        return mode
    if mode in _VERIFY and not root:
        return mode  # asyncpg looks for ~/.postgresql/root.crt as libpq does
    context = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl_module.CERT_NONE
    field = "sslrootcert"
    try:
        if root and mode in ("require", *_VERIFY):
            context.load_verify_locations(cafile=root)
            context.verify_mode = ssl_module.CERT_REQUIRED
            context.check_hostname = mode == "verify-full"
        field = "sslcert' / 'sslkey"
        if cert:
            context.load_cert_chain(cert, keyfile=key)
    except OSError as exc:  # missing / unreadable / malformed file
        raise BackendConfigurationError(
            BACKEND, f"TLS: cannot load postgres_config['{field}'] "
            f"({type(exc).__name__}: {exc}); check the file's path and permissions") from None
    return context


def connect_options(config: PostgresConfig, *, replica: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``asyncpg.create_pool`` for ``config`` (primary or replica).

    TLS settings come from the DSN (``?sslmode=...&sslrootcert=...`` or ``sslmode=...``),
    overridden by the config's fields when set, as for psycopg2 (keywords beat the DSN)."""
    schema = require_identifier(config.schema_, "schema")
    settings = {
        "search_path": quote_ident(schema) + ("" if schema == "public" else ",public"),
        "TimeZone": "UTC",
        "application_name": config.application_name + ("[replica]" if replica else ""),
    }
    if config.statement_timeout is not None:
        settings["statement_timeout"] = str(int(config.statement_timeout))
    options: dict[str, Any] = {"server_settings": settings,
                               "timeout": config.connection_timeout}
    secret = config.read_replica_dsn if replica and config.read_replica_dsn else config.dsn
    tls: dict[str, str] = {}
    if secret is not None:
        dsn = secret.get_secret_value()
        parsed = psycopg2.extensions.parse_dsn(dsn)
        tls.update({name: parsed[name] for name in _TLS_FIELDS if parsed.get(name)})
        if dsn.startswith(("postgres://", "postgresql://")):
            options["dsn"] = dsn
        else:  # libpq key=value form
            for key, target in (("host", "host"), ("port", "port"), ("user", "user"),
                                ("password", "password"), ("dbname", "database")):
                if parsed.get(key):
                    options[target] = int(parsed[key]) if key == "port" else parsed[key]
    else:
        options.update(host=config.host, port=config.port, database=config.database,
                       user=config.user)
        if config.password is not None:
            options["password"] = config.password.get_secret_value()
    tls.update({name: getattr(config, name) for name in _TLS_FIELDS if getattr(config, name)})
    option = tls_option(tls)
    if option is not None:
        options["ssl"] = option
    return options


def sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_connection_failure(exc: BaseException) -> bool:
    """True when ``exc`` means the connection (not the statement) failed."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError,
                        asyncpg.exceptions.ConnectionDoesNotExistError)):
        return not isinstance(exc, asyncpg.exceptions.InterfaceWarning)
    code = sqlstate(exc)
    return code is not None and (code.startswith(_CONNECTION_CLASSES) or code in SHUTDOWN_SQLSTATES)


def is_transient(exc: BaseException) -> bool:
    """True when retrying ``exc`` on a fresh connection may succeed."""
    if sqlstate(exc) in PERMANENT_SQLSTATES:
        return False
    if isinstance(exc, OSError | asyncpg.InterfaceError) and \
            tls_login_problem(str(exc)) is not None:
        return False  # a TLS failure: the configuration must change
    return is_connection_failure(exc) or sqlstate(exc) in RETRYABLE_SQLSTATES


def translate(exc: BaseException, secrets: tuple[str, ...] = ()) -> BackendError:
    """The typed error for an asyncpg / socket error (``secrets`` masked)."""
    code = sqlstate(exc)
    message = " ".join((str(exc) or type(exc).__name__).split())
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    tls = tls_login_problem(message)
    if tls is not None:  # TLS handshake / setup, or a certificate login refused
        return tls
    if code:
        message += f" (SQLSTATE {code})"
    if code == "57014" or not is_connection_failure(exc):
        typed = sqlstate_error(code, message)  # one classification, shared with psycopg2
        if typed is not None:
            return typed
    if is_connection_failure(exc):
        return BackendUnavailableError(BACKEND, f"{type(exc).__name__}: {message}")
    return BackendError(BACKEND, message)


CAUGHT: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError,
                                           OSError, asyncio.TimeoutError)
"""What the async store catches and passes to :func:`translate`."""


_POSITIONAL = re.compile(r"%s")


def dollar_text(name: str, statement: str) -> tuple[str, tuple[str, ...]]:
    """``statement`` with ``$n`` placeholders, and the parameter names in ``$n`` order
    (positional ``%s`` statements get names ``0``, ``1``, ...)."""
    if "%(" in statement:
        prepared = _prepared(name, statement)
        return prepared.text, prepared.names
    count = iter(range(1, 1000))
    text = _POSITIONAL.sub(lambda _: f"${next(count)}", statement).replace("%%", "%")
    return text, tuple(str(i) for i in range(statement.count("%s")))


@dataclasses.dataclass(frozen=True)
class RawStatement:
    """A statement outside the repositories (the health check's ping)."""

    text: str
    args: tuple[Any, ...]


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond asyncpg's own rollback of an open
    transaction. The store never changes session state (no SET, LISTEN, advisory lock or
    cursor), so asyncpg's default ``RESET ALL; UNLISTEN *; ...`` would be a second round
    trip per call for nothing."""


async def init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=str, decoder=decode_or_mark,
                                  schema="pg_catalog", format="text")


async def fetch_result(conn: Any, text: str, args: Sequence[Any], fetch: str) -> Any:
    if fetch == "one":
        return await conn.fetchrow(text, *args)
    if fetch == "all":
        return await conn.fetch(text, *args)
    status = await conn.execute(text, *args)
    if fetch == "rowcount":
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else -1
    return None


__all__ = [
    "CAUGHT",
    "RawStatement",
    "connect_options",
    "dollar_text",
    "fetch_result",
    "init_connection",
    "is_transient",
    "keep_session",
    "quote_ident",
    "tls_option",
    "translate",
]
