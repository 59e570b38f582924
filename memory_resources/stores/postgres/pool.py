"""A thread-safe psycopg2 connection pool kept for a store's life, with one deadline per call.

Every call (:meth:`PostgresPool.run`, :meth:`PostgresPool.connection`) has one time budget,
``operation_timeout``: waiting for a free connection, connecting, retries with backoff and
the statement all end by it (a :func:`call_budget` block can shorten it for every call
inside). A connection is checked before each use (closed by the server, cut, idle longer
than ``max_idle``, older than ``max_lifetime`` -> closed and replaced before anything is
sent). Transient failures of idempotent calls are retried with exponential backoff and
jitter; permanent ones (login refused, missing database, permission denied) are raised at
once with a precise message (see :mod:`.errors`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import psycopg2
import psycopg2.extensions

from ...clock import SYSTEM_CLOCK, Clock
from ...config import PostgresConfig
from ...errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    CorruptRecordError,
)
from ...log import get_logger
from ...validation import require_schema
from .budget import HEALTH_TIMEOUT, NO_DEADLINE, Backoff, call_budget, scoped_deadline, secrets_of
from .connection import (
    WATCHDOG,
    ConnectTimeout,
    PooledConnection,
    connect_kwargs,
    open_connection,
)
from .errors import BACKEND, is_connection_failure, is_transient, translate
from .prepared import execute_prepared
from .replica import PRIMARY_LSN, REPLAYED, ReplicaLagging, ReplicaRouter, wait_replayed

T = TypeVar("T")
Before = Callable[["Cursor"], None] | None
"""Run on the borrowed connection before the call's statements (the replica's replay wait)."""
Attempt = Callable[[Callable[["Cursor"], Any], "_Side", float, Before], Any]
"""One attempt of a call on one side: ``attempt(fn, side, deadline, before)``."""
Cursor = psycopg2.extensions.cursor
Connection = psycopg2.extensions.connection

_log = get_logger(__name__)
_MIN_ATTEMPT = 0.05
"""No retry is started with less than this left before the deadline."""

__all__ = ["HEALTH_TIMEOUT", "NO_DEADLINE", "Backoff", "Connection", "Cursor", "PostgresPool",
           "call_budget", "connect_kwargs", "execute_prepared", "secrets_of"]


def _replay_wait(target: str, router: ReplicaRouter, limit: float) -> Before:
    """The ``before`` step of a replica read: wait until the replica replayed ``target``."""
    def before(cur: Cursor) -> None:
        def replayed(position: str) -> bool:
            cur.execute(REPLAYED, (position,))
            row = cur.fetchone()
            return bool(row and row[0])
        wait_replayed(replayed, target, router, limit)
    return before


class _Side:
    """The connections to one server (primary or replica): a LIFO stack of idle ones, a
    count of open ones (idle + borrowed) bounded by ``max_connections``, and a condition
    on which borrowers wait when every connection is in use."""

    def __init__(self, config: PostgresConfig, replica: bool) -> None:
        self.dsn, self.kwargs = connect_kwargs(config, replica=replica)
        self.maxconn = config.max_connections
        self.minconn = min(config.min_connections, config.max_connections)
        self.idle: list[PooledConnection] = []
        self.every: set[PooledConnection] = set()
        self.reserved = 0
        """Slots taken by connects in progress (count against ``maxconn``)."""
        self.returned = threading.Condition(threading.Lock())
        self.waiting = 0

    def open_count(self) -> int:
        return len(self.every) + self.reserved


class PostgresPool:
    """Pooled connections to the primary (and the read replica when configured).

    ``run(read_only=True)`` reads from the replica when ``read_replica_dsn`` is set, and from
    the primary when the replica fails or lags behind this pool's writes (:mod:`.replica`);
    ``connection(read_only=True)`` borrows from the replica as it is.
    """

    def __init__(self, config: PostgresConfig, *, clock: Clock = SYSTEM_CLOCK,
                 backoff: Backoff | None = None) -> None:
        self.config = config
        self.schema = require_schema(config.schema_, "schema")
        self.clock = clock
        self.backoff = backoff or Backoff()
        self._secrets = secrets_of(config)
        self._closed = False
        self._primary = _Side(config, replica=False)
        self._replica = _Side(config, replica=True) if config.read_replica_dsn else None
        self._router = ReplicaRouter(config) if self._replica is not None else None
        deadline = self.deadline()
        self._call_with_retries(lambda: self._warm(self._primary, deadline), idempotent=True,
                                context="connect", deadline=deadline)

    # -- deadlines -------------------------------------------------------------------

    def deadline(self, timeout: float | None = None) -> float:
        """The monotonic time by which a call starting now must end: ``timeout`` (default
        ``operation_timeout``) from now, or an enclosing :func:`call_budget`'s end."""
        deadline = time.monotonic() + (self.config.operation_timeout if timeout is None
                                       else timeout)
        outer = scoped_deadline()
        return outer if outer is not None and outer < deadline else deadline

    def _cut_error(self) -> BackendError:
        """The error of a call whose connection was cut: by :meth:`close`, or by the
        watchdog at the call's deadline (the statement may or may not have run)."""
        if self._closed:
            return BackendUnavailableError(BACKEND, "the connection pool was closed")
        return BackendTimeoutError(
            BACKEND, f"no reply within the call's deadline (operation_timeout="
            f"{self.config.operation_timeout:g}s): the server or the network does not "
            "answer; the connection was closed")

    # -- borrowing -------------------------------------------------------------------

    def _side(self, read_only: bool) -> _Side:
        if self._closed:
            raise BackendUnavailableError(BACKEND, "the connection pool is closed")
        return self._replica if (read_only and self._replica is not None) else self._primary

    def _borrow(self, side: _Side, deadline: float) -> PooledConnection:
        """A connection checked before use (stale ones are closed and replaced, nothing is
        sent on them), armed with ``deadline`` for the watchdog."""
        while True:
            conn = self._take(side, deadline)
            if conn is None:
                conn = self._open(side, deadline)
            elif not self._usable(conn):
                self._discard(side, conn)
                continue
            conn.deadline = deadline
            return conn

    def _usable(self, conn: PooledConnection) -> bool:
        now = time.monotonic()
        return (now - conn.returned_at <= self.config.max_idle
                and now - conn.opened_at <= self.config.max_lifetime and not conn.stale())

    def _take(self, side: _Side, deadline: float) -> PooledConnection | None:
        """An idle connection, or None with a slot reserved for a new one; waits (up to
        ``connection_timeout`` and the deadline) while every connection is in use."""
        with side.returned:
            if side.idle:
                return side.idle.pop()
            if side.open_count() < side.maxconn:
                side.reserved += 1
                return None
            wait = min(self.config.connection_timeout, self.config.operation_timeout)
            limit = min(deadline, time.monotonic() + wait)
            side.waiting += 1
            try:
                while True:
                    if self._closed:
                        raise BackendUnavailableError(BACKEND, "the connection pool is closed")
                    if side.idle:
                        return side.idle.pop()
                    if side.open_count() < side.maxconn:
                        side.reserved += 1
                        return None
                    remaining = limit - time.monotonic()
                    if remaining <= 0:
                        raise BackendUnavailableError(
                            BACKEND, f"no free connection within {wait:g}s "
                            f"(max_connections={side.maxconn} all in use)")
                    side.returned.wait(remaining)
            finally:
                side.waiting -= 1

    def _open(self, side: _Side, deadline: float) -> PooledConnection:
        """A new connection in the slot :meth:`_take` reserved (freed again on failure)."""
        remaining = min(deadline - time.monotonic(), self.config.connection_timeout)
        try:
            conn = open_connection(side.dsn, side.kwargs, remaining)
        except BaseException as exc:
            self._release_slot(side)
            if isinstance(exc, ConnectTimeout):
                raise BackendUnavailableError(
                    BACKEND, f"connect: no answer within {max(0.0, remaining):.2g}s") from None
            if isinstance(exc, psycopg2.Error):
                raise translate(exc, secrets=self._secrets, context="connect") from None
            raise
        with side.returned:
            side.reserved -= 1
            side.every.add(conn)
            closed = self._closed
        if closed:
            self._discard(side, conn)
            raise BackendUnavailableError(BACKEND, "the connection pool is closed")
        WATCHDOG.register(conn)
        return conn

    def _release_slot(self, side: _Side) -> None:
        with side.returned:
            side.reserved -= 1
            side.returned.notify()

    def _discard(self, side: _Side, conn: PooledConnection) -> None:
        conn.deadline = 0.0
        WATCHDOG.forget(conn)
        with contextlib.suppress(psycopg2.Error):
            conn.close()
        with side.returned:
            side.every.discard(conn)
            side.returned.notify()

    def _give_back(self, side: _Side, conn: PooledConnection, *, broken: bool) -> None:
        conn.deadline = 0.0
        if broken or self._closed or conn.closed or conn.cut:
            self._discard(side, conn)
            return
        conn.returned_at = time.monotonic()
        with side.returned:
            side.idle.append(conn)
            if side.waiting:
                side.returned.notify()

    def _warm(self, side: _Side, deadline: float) -> None:
        """Open ``min_connections`` connections now (fails fast when unreachable)."""
        conns: list[PooledConnection] = []
        try:
            for _ in range(side.minconn):
                conns.append(self._borrow(side, deadline))
        finally:
            for conn in conns:
                self._give_back(side, conn, broken=False)

    @contextlib.contextmanager
    def connection(self, *, read_only: bool = False,
                   timeout: float | None = None) -> Iterator[Connection]:
        """Borrow a connection for one transaction: committed on success, rolled back on
        error, always returned (closed and replaced when broken). The whole block must end
        within ``timeout`` (default ``operation_timeout``), or the connection is cut and
        :class:`BackendTimeoutError` raised. psycopg2 errors raised inside the block leave
        it as :class:`BackendError` subclasses."""
        deadline = self.deadline(timeout)
        try:
            with self._transaction(self._side(read_only), deadline) as conn:
                yield conn
        except psycopg2.Error as exc:
            raise translate(exc, secrets=self._secrets) from exc

    @contextlib.contextmanager
    def _transaction(self, side: _Side, deadline: float) -> Iterator[PooledConnection]:
        if self._closed:
            raise BackendUnavailableError(BACKEND, "the connection pool is closed")
        conn = self._borrow(side, deadline)
        broken = False
        try:
            yield conn
            if conn.cut:
                raise self._cut_error()
            conn.commit()
        except BaseException as exc:
            broken = bool(conn.closed) or conn.cut or is_connection_failure(exc)
            if not broken:
                try:
                    conn.rollback()
                except psycopg2.Error:
                    broken = True
            if conn.cut and isinstance(exc, psycopg2.Error):
                raise self._cut_error() from None
            raise
        finally:
            self._give_back(side, conn, broken=broken)

    # -- running ---------------------------------------------------------------------

    def run(self, fn: Callable[[Cursor], T], *, read_only: bool = False,
            idempotent: bool = True, single_statement: bool = False,
            timeout: float | None = None) -> T:
        """Call ``fn(cursor)`` in one transaction within ``timeout`` (default
        ``operation_timeout``); retry transient faults when idempotent.

        ``single_statement=True`` is for an ``fn`` that sends exactly one statement (plus,
        once per connection, its ``PREPARE``): it runs in autocommit mode, so the statement is
        its own transaction and the call is one round trip. A failure to *connect* is
        retried for any operation (nothing was sent yet); a stale pooled connection is
        replaced before anything is sent on it. The first attempt runs outside the retry
        loop (the common case pays nothing for it).
        """
        deadline = self.deadline(timeout)
        attempt: Attempt = (self._autocommit_attempt if single_statement
                            else self._transaction_attempt)
        router = self._router
        if read_only and router is not None and router.use_replica() and not self._closed:
            done, value = self._replica_read(attempt, fn, router, deadline)
            if done:
                return cast(T, value)
        try:
            return self._on_primary(attempt, fn, idempotent, deadline)
        finally:
            if not read_only and router is not None:
                router.note_write()

    def _on_primary(self, attempt: Attempt, fn: Callable[[Cursor], T],
                    idempotent: bool, deadline: float) -> T:
        try:
            return cast(T, attempt(fn, self._primary, deadline, None))
        except (BackendUnavailableError, psycopg2.Error) as first_failure:
            return self._call_with_retries(
                lambda: cast(T, attempt(fn, self._primary, deadline, None)),
                idempotent=idempotent, context="", first_failure=first_failure,
                deadline=deadline)

    def _replica_read(self, attempt: Attempt, fn: Callable[[Cursor], Any],
                      router: ReplicaRouter, deadline: float) -> tuple[bool, Any]:
        """One attempt on the replica within ``replica_timeout``, after waiting for it to
        replay this pool's writes (read_your_writes): ``(True, value)``, or ``(False,
        None)`` when the read must go to the primary (lag, or the replica failed)."""
        target = None
        if router.read_your_writes:
            writes = router.uncovered()
            if writes is not None:
                def position(cur: Cursor) -> str:
                    cur.execute(PRIMARY_LSN)
                    row = cur.fetchone()
                    return str(row[0]) if row else "0/0"
                router.cover(writes, self._on_primary(self._autocommit_attempt, position,
                                                      True, deadline))
            target = router.target()
        limit = router.deadline(deadline)
        before = None if target is None else _replay_wait(target, router, limit)
        replica = self._replica
        assert replica is not None
        try:
            value = attempt(fn, replica, limit, before)
        except ReplicaLagging:
            router.lagged()
            return False, None
        except CorruptRecordError:
            raise
        except (BackendError, psycopg2.Error) as exc:
            if self._closed:
                raise
            router.failed(translate(exc, secrets=self._secrets)
                          if isinstance(exc, psycopg2.Error) else exc)
            return False, None
        router.succeeded()
        return True, value

    def _transaction_attempt(self, fn: Callable[[Cursor], T], side: _Side,
                             deadline: float, before: Before = None) -> T:
        with self._transaction(side, deadline) as conn, conn.cursor() as cur:
            if before is not None:
                before(cur)
            return fn(cur)

    def _autocommit_attempt(self, fn: Callable[[Cursor], T], side: _Side,
                            deadline: float, before: Before = None) -> T:
        if self._closed:
            raise BackendUnavailableError(BACKEND, "the connection pool is closed")
        conn = self._borrow(side, deadline)
        broken = False
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                if before is not None:
                    before(cur)
                return fn(cur)
        except BaseException as exc:
            broken = bool(conn.closed) or conn.cut or is_connection_failure(exc)
            if conn.cut and isinstance(exc, psycopg2.Error):
                raise self._cut_error() from None
            raise
        finally:
            if not conn.closed:
                try:
                    conn.autocommit = False
                except psycopg2.Error:
                    broken = True
            self._give_back(side, conn, broken=broken)

    def _call_with_retries(self, fn: Callable[[], T], *, idempotent: bool, context: str,
                           deadline: float, first_failure: BaseException | None = None) -> T:
        failures = 0
        pending = first_failure
        while True:
            try:
                if pending is not None:
                    failed, pending = pending, None
                    raise failed
                return fn()
            except BackendUnavailableError as exc:  # connecting failed: nothing was sent
                failures += 1
                last: BackendError = exc
                if failures > self.config.retry_attempts or self._closed:
                    raise BackendUnavailableError(
                        BACKEND, f"unreachable after {failures} attempts: {exc}") from None
            except psycopg2.Error as exc:
                failures += 1
                last = translate(exc, secrets=self._secrets, context=context)
                retry = idempotent and is_transient(exc) and not self._closed
                if not retry or failures > self.config.retry_attempts:
                    if isinstance(last, BackendUnavailableError) and failures > 1:
                        last = BackendUnavailableError(
                            BACKEND, f"unreachable after {failures} attempts: {last}")
                    raise last from None
            delay = self.backoff.compute(failures)
            if time.monotonic() + delay + _MIN_ATTEMPT >= deadline:
                raise type(last)(BACKEND, f"unreachable after {failures} attempts within "
                                 f"the call's deadline (operation_timeout="
                                 f"{self.config.operation_timeout:g}s): "
                                 + str(last).removeprefix(f"[{BACKEND}] ")) from None
            _log.warning("postgres operation failed; retrying", attempt=failures,
                         delay_s=round(delay, 3))
            self.clock.sleep(delay)

    # -- lifecycle -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Connections in use / idle per side and the configured bounds."""
        def side_stats(side: _Side) -> dict[str, int]:
            free = len(side.idle)
            return {"in_use": len(side.every) - free, "free": free, "max": side.maxconn,
                    "min": side.minconn}

        primary = side_stats(self._primary)
        result: dict[str, Any] = {"primary": primary, "in_use": primary["in_use"],
                                  "free": primary["free"]}
        if self._replica is not None and self._router is not None:
            result["replica"] = {**side_stats(self._replica), **self._router.stats()}
        return result

    def replica_status(self) -> dict[str, Any] | None:
        """Where reads went (``replica_reads``, ``primary_fallbacks`` after a replica failure,
        ``lag_fallbacks`` under read_your_writes) and whether the replica is considered
        ``down``; None without ``read_replica_dsn``."""
        return None if self._router is None else self._router.stats()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every idle connection, cut borrowed ones (their calls fail at once and
        close them) and wake callers waiting for one (they raise). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for side in (self._primary, self._replica):
            if side is None:
                continue
            with side.returned:
                idle, side.idle = side.idle, []
                busy = [conn for conn in side.every if conn not in idle]
                side.returned.notify_all()
            for conn in idle:
                self._discard(side, conn)
            for conn in busy:
                conn.cut_socket()

    def __repr__(self) -> str:
        return f"PostgresPool(schema={self.schema!r}, closed={self._closed})"
