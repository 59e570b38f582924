"""A thread-safe psycopg2 connection pool kept for a store's life.

One connection is borrowed per operation and always returned, also on error; a broken
connection is closed and replaced. Borrowers wait (up to ``connection_timeout``) when every
connection is in use instead of failing. Idempotent operations run through :meth:`PostgresPool.run`
are retried with exponential backoff on connection failures.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import psycopg2.pool

from ... import codec
from ...clock import SYSTEM_CLOCK, Clock
from ...config import PostgresConfig
from ...errors import BackendError, BackendUnavailableError
from ...log import get_logger
from ...validation import require_identifier
from .errors import BACKEND, is_connection_failure, is_transient, translate

T = TypeVar("T")
Cursor = psycopg2.extensions.cursor
Connection = psycopg2.extensions.connection

_log = get_logger(__name__)


class _Connection(psycopg2.extensions.connection):
    """A connection that decodes JSON/JSONB with the library codec (tagged types restored)
    and remembers which statements it has prepared."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        psycopg2.extras.register_default_jsonb(self, loads=codec.decode)
        psycopg2.extras.register_default_json(self, loads=codec.decode)
        self.prepared: set[str] = set()


_NAMED = re.compile(r"%\((\w+)\)s")


class _Prepared(NamedTuple):
    """A ``%(name)s`` statement turned into a server-side prepared statement's parts."""

    name: str
    """``mr_<name>_<digest of the text>``: a changed statement gets a new name."""
    text: str
    """The statement with ``$n`` placeholders (what PREPARE takes)."""
    names: tuple[str, ...]
    """The parameter names in ``$n`` order."""
    execute: str
    """``EXECUTE <name> (%s, ...)``."""


_PREPARED: dict[tuple[str, str], _Prepared] = {}


def _prepared(name: str, statement: str) -> _Prepared:
    """The prepared-statement parts of ``statement`` (computed once per name and text)."""
    cached = _PREPARED.get((name, statement))
    if cached is None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        text = _NAMED.sub(number, statement).replace("%%", "%")
        prepared_name = f"mr_{name}_{hashlib.sha1(text.encode()).hexdigest()[:12]}"
        cached = _Prepared(prepared_name, text, tuple(names),
                           f"EXECUTE {prepared_name} ({', '.join(['%s'] * len(names))})")
        _PREPARED[(name, statement)] = cached
    return cached


def execute_prepared(cur: Cursor, name: str, statement: str, params: dict[str, Any], *,
                     enabled: bool = True) -> None:
    """Run a hot ``%(name)s`` statement as a server-side prepared statement: PREPAREd once
    per pooled connection, then only EXECUTEd (no parse/plan per call). Every parameter in
    ``statement`` must have a type the server can infer (cast it otherwise). With
    ``enabled=False`` (``prepared_statements`` off) the statement is sent as is."""
    done: set[str] | None = getattr(cur.connection, "prepared", None)
    if not enabled or done is None:
        cur.execute(statement, params)
        return
    prepared = _prepared(name, statement)
    if prepared.name not in done:
        cur.execute(f"PREPARE {prepared.name} AS {prepared.text}")
        done.add(prepared.name)
    cur.execute(prepared.execute, [params[n] for n in prepared.names])


class Backoff:
    """Exponential backoff with full jitter: ``compute(failures)`` seconds to wait."""

    def __init__(self, base: float = 0.05, cap: float = 2.0) -> None:
        self.base = base
        self.cap = cap
        self._random = random.Random()  # private: never disturbs the global random state

    def compute(self, failures: int) -> float:
        return self._random.uniform(0, min(self.cap, self.base * (2 ** max(0, failures - 1))))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect_kwargs(config: PostgresConfig, *, replica: bool = False) -> tuple[str, dict[str, Any]]:
    """The libpq DSN and keyword arguments for one connection of ``config``."""
    if replica and config.read_replica_dsn is not None:
        dsn = config.read_replica_dsn.get_secret_value()
        kwargs: dict[str, Any] = {}
    elif config.dsn is not None:
        dsn = config.dsn.get_secret_value()
        kwargs = {}
    else:
        dsn = ""
        kwargs = {"host": config.host, "port": config.port, "dbname": config.database,
                  "user": config.user}
        if config.password is not None:
            kwargs["password"] = config.password.get_secret_value()
    schema = require_identifier(config.schema_, "schema")
    search_path = _quote_ident(schema) + ("" if schema == "public" else ",public")
    options = [f"-c search_path={search_path}", "-c TimeZone=UTC"]
    if config.statement_timeout is not None:
        options.append(f"-c statement_timeout={int(config.statement_timeout)}")
    kwargs.update(
        connect_timeout=max(1, math.ceil(config.connection_timeout)),
        application_name=config.application_name + ("[replica]" if replica else ""),
        options=" ".join(options),
        connection_factory=_Connection,
    )
    if config.sslmode:
        kwargs["sslmode"] = config.sslmode
    if config.sslrootcert:
        kwargs["sslrootcert"] = config.sslrootcert
    return dsn, kwargs


def _secrets_of(config: PostgresConfig) -> tuple[str, ...]:
    """Every secret string of ``config`` (passwords, DSNs and passwords inside DSNs), to be
    masked out of error messages."""
    found: list[str] = []
    for secret in (config.password, config.dsn, config.read_replica_dsn):
        if secret is None:
            continue
        value = secret.get_secret_value()
        found.append(value)
        if secret is not config.password:
            try:
                password = psycopg2.extensions.parse_dsn(value).get("password")
            except psycopg2.Error:
                password = None
            if password:
                found.append(password)
    # Longest first, so a DSN is masked whole before the password inside it.
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


class _Side:
    """One psycopg2 ThreadedConnectionPool, and a condition on which borrowers wait for a
    returned connection when every one is in use (psycopg2's pool would fail instead)."""

    def __init__(self, config: PostgresConfig, replica: bool) -> None:
        self.dsn, self.kwargs = connect_kwargs(config, replica=replica)
        self.maxconn = config.max_connections
        self.minconn = min(config.min_connections, config.max_connections)
        self.returned = threading.Condition(threading.Lock())
        self.waiting = 0
        self.pool = psycopg2.pool.ThreadedConnectionPool(
            0, self.maxconn, self.dsn, **self.kwargs
        )
        # psycopg2 closes a returned connection once ``minconn`` are idle; keep up to
        # ``maxconn`` instead so a busy store does not reconnect per operation.
        self.pool.minconn = self.maxconn

    def warm(self) -> None:
        """Open ``min_connections`` connections now (fails fast when unreachable)."""
        conns: list[Connection] = []
        try:
            for _ in range(self.minconn):
                conns.append(self.pool.getconn())
        finally:
            for conn in conns:
                self.pool.putconn(conn)

    def idle(self) -> int:
        return len(getattr(self.pool, "_pool", []))

    def in_use(self) -> int:
        return len(getattr(self.pool, "_used", {}))


class PostgresPool:
    """Pooled connections to the primary (and the read replica when configured).

    ``connection(read_only=True)`` borrows from the replica when ``read_replica_dsn`` is set.
    """

    def __init__(self, config: PostgresConfig, *, clock: Clock = SYSTEM_CLOCK,
                 backoff: Backoff | None = None) -> None:
        self.config = config
        self.schema = require_identifier(config.schema_, "schema")
        self.clock = clock
        self.backoff = backoff or Backoff()
        self._secrets = _secrets_of(config)
        self._closed = False
        self._primary = _Side(config, replica=False)
        self._replica = _Side(config, replica=True) if config.read_replica_dsn else None
        self._call_with_retries(self._primary.warm, idempotent=True, context="connect")

    # -- borrowing -------------------------------------------------------------------

    def _side(self, read_only: bool) -> _Side:
        if self._closed:
            raise BackendUnavailableError(BACKEND, "the connection pool is closed")
        return self._replica if (read_only and self._replica is not None) else self._primary

    def _borrow(self, side: _Side) -> Connection:
        """A live connection: straight from the pool, else after waiting up to
        ``connection_timeout`` for one to be returned. A failure to connect is translated."""
        try:
            while True:
                try:
                    conn: Connection = side.pool.getconn()
                except psycopg2.pool.PoolError:  # every connection in use
                    conn = self._wait_for_return(side)
                if not conn.closed:
                    return conn
                side.pool.putconn(conn, close=True)
        except psycopg2.Error as exc:
            raise translate(exc, secrets=self._secrets, context="connect") from None

    def _wait_for_return(self, side: _Side) -> Connection:
        timeout = self.config.connection_timeout
        deadline = time.monotonic() + timeout  # real waiting: not the store's clock
        with side.returned:
            side.waiting += 1
            try:
                while True:
                    try:
                        return side.pool.getconn()
                    except psycopg2.pool.PoolError:
                        remaining = deadline - time.monotonic()
                        if self._closed or remaining <= 0:
                            raise BackendUnavailableError(
                                BACKEND, "the connection pool is closed" if self._closed else
                                f"no free connection within {timeout}s "
                                f"(max_connections={side.maxconn} all in use)") from None
                        side.returned.wait(remaining)
            finally:
                side.waiting -= 1

    def _give_back(self, side: _Side, conn: Connection, *, broken: bool) -> None:
        try:
            if self._closed:
                conn.close()
            else:
                side.pool.putconn(conn, close=broken or bool(conn.closed))
        except psycopg2.pool.PoolError:
            conn.close()
        finally:
            if side.waiting:  # a borrower counts itself under the lock before it retries
                with side.returned:
                    side.returned.notify()

    @contextlib.contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[Connection]:
        """Borrow a connection for one transaction: committed on success, rolled back on
        error, always returned (closed and replaced when broken). psycopg2 errors raised
        inside the block leave it as :class:`BackendError` subclasses."""
        try:
            with self._transaction(read_only) as conn:
                yield conn
        except psycopg2.Error as exc:
            raise translate(exc, secrets=self._secrets) from exc

    @contextlib.contextmanager
    def _transaction(self, read_only: bool) -> Iterator[Connection]:
        side = self._side(read_only)
        conn = self._borrow(side)
        broken = False
        try:
            yield conn
            conn.commit()
        except BaseException as exc:
            broken = bool(conn.closed) or is_connection_failure(exc)
            if not broken:
                try:
                    conn.rollback()
                except psycopg2.Error:
                    broken = True
            raise
        finally:
            self._give_back(side, conn, broken=broken)

    # -- running ---------------------------------------------------------------------

    def run(self, fn: Callable[[Cursor], T], *, read_only: bool = False,
            idempotent: bool = True, single_statement: bool = False) -> T:
        """Call ``fn(cursor)`` in one transaction; retry transient faults when idempotent.

        ``single_statement=True`` is for an ``fn`` that sends exactly one statement (plus,
        once per connection, its ``PREPARE``): it runs in autocommit mode, so the statement is
        its own transaction and the call is one round trip (no ``BEGIN`` before it, no
        ``COMMIT`` after). A failure to *connect* is retried for any operation (nothing was
        sent yet). The first attempt runs outside the retry loop (the common case pays
        nothing for it); a failure continues in the loop as its first failure.
        """
        attempt = self._autocommit_attempt if single_statement else self._transaction_attempt
        try:
            return attempt(fn, read_only)
        except (BackendUnavailableError, psycopg2.Error) as first_failure:
            return self._call_with_retries(lambda: attempt(fn, read_only),
                                           idempotent=idempotent, context="",
                                           first_failure=first_failure)

    def _transaction_attempt(self, fn: Callable[[Cursor], T], read_only: bool) -> T:
        with self._transaction(read_only) as conn, conn.cursor() as cur:
            return fn(cur)

    def _autocommit_attempt(self, fn: Callable[[Cursor], T], read_only: bool) -> T:
        side = self._side(read_only)
        conn = self._borrow(side)
        broken = False
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                return fn(cur)
        except BaseException as exc:
            broken = bool(conn.closed) or is_connection_failure(exc)
            raise
        finally:
            if not conn.closed:
                try:
                    conn.autocommit = False
                except psycopg2.Error:
                    broken = True
            self._give_back(side, conn, broken=broken)

    def _call_with_retries(self, fn: Callable[[], T], *, idempotent: bool, context: str,
                           first_failure: BaseException | None = None) -> T:
        failures = 0
        pending = first_failure
        while True:
            try:
                if pending is not None:
                    failed, pending = pending, None
                    raise failed
                return fn()
            except BackendUnavailableError as exc:
                failures += 1
                if failures > self.config.retry_attempts or self._closed:
                    raise BackendUnavailableError(
                        BACKEND, f"unreachable after {failures} attempts: {exc}"
                    ) from None
            except psycopg2.Error as exc:
                failures += 1
                retry = idempotent and is_transient(exc) and not self._closed
                if not retry or failures > self.config.retry_attempts:
                    error = translate(exc, secrets=self._secrets, context=context)
                    if isinstance(error, BackendUnavailableError) and failures > 1:
                        error = BackendUnavailableError(
                            BACKEND, f"unreachable after {failures} attempts: {error}"
                        )
                    raise error from None
            delay = self.backoff.compute(failures)
            _log.warning("postgres operation failed; retrying", attempt=failures,
                         delay_s=round(delay, 3))
            self.clock.sleep(delay)

    # -- lifecycle -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Connections in use / idle per side and the configured bounds."""
        def side_stats(side: _Side) -> dict[str, int]:
            return {"in_use": side.in_use(), "free": side.idle(), "max": side.maxconn,
                    "min": side.minconn}

        result: dict[str, Any] = {"primary": side_stats(self._primary),
                                  "in_use": self._primary.in_use(),
                                  "free": self._primary.idle()}
        if self._replica is not None:
            result["replica"] = side_stats(self._replica)
        return result

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every pooled connection (borrowed ones close when given back) and wake
        callers waiting for one (they raise). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for side in (self._primary, self._replica):
            if side is not None:
                with contextlib.suppress(psycopg2.pool.PoolError):
                    side.pool.closeall()
                with side.returned:
                    side.returned.notify_all()

    def __repr__(self) -> str:
        return f"PostgresPool(schema={self.schema!r}, closed={self._closed})"


def translate_error(exc: BaseException, pool: PostgresPool | None = None) -> BackendError:
    """Public helper for other engines sharing the pool (e.g. pgvector)."""
    secrets = pool._secrets if pool is not None else ()
    return translate(exc, secrets=secrets)
