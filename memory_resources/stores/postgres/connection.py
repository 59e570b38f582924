"""One pooled psycopg2 connection: how it is opened (within a deadline), checked before
use, and cut when a call overruns its deadline.

psycopg2 is blocking and libpq waits in ``poll()`` with no limit once a statement is sent,
so a server (or proxy) that stops answering would block the caller forever; TCP keepalives
and ``tcp_user_timeout`` do not fire while the peer's kernel still acknowledges packets
(a hung postmaster, a stuck proxy). The :class:`Watchdog` therefore shuts down the socket
of a connection whose call passed its deadline: libpq's wait returns at once with a
connection error, and the caller raises a typed timeout.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import threading
import time
import weakref
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from ...config import PostgresConfig
from ...decoding import decode_or_mark
from ...validation import require_schema

KEEPALIVES_INTERVAL = 10
"""Seconds between TCP keepalive probes once ``keepalives_idle`` passed."""
KEEPALIVES_COUNT = 3
"""Unanswered keepalive probes after which the kernel declares the peer dead."""
WATCHDOG_TICK = 0.05
"""How often the watchdog looks for calls past their deadline (its precision)."""


class ConnectTimeout(Exception):
    """Opening a connection did not finish within the time left to the call."""


class PooledConnection(psycopg2.extensions.connection):
    """A connection that decodes JSON/JSONB with the library codec (tagged types restored),
    remembers which statements it prepared, and carries what the pool needs: when it was
    opened and last returned, the deadline of the call using it, and a duplicate of its
    socket (so the watchdog can cut it without racing a close that reuses the fd)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        psycopg2.extras.register_default_jsonb(self, loads=decode_or_mark)
        psycopg2.extras.register_default_json(self, loads=decode_or_mark)
        self.prepared: set[str] = set()
        self.opened_at = time.monotonic()
        self.returned_at = self.opened_at
        self.deadline = 0.0
        """Monotonic time past which the watchdog cuts the socket; 0 while idle."""
        self.cut = False
        """True once the watchdog shut the socket down."""
        self.sock: socket.socket | None = socket.socket(fileno=os.dup(self.fileno()))
        self._poller = select.poll()
        self._poller.register(self.sock, select.POLLIN | select.POLLERR | select.POLLHUP)

    def cut_socket(self) -> None:
        """Shut the socket down both ways (libpq's pending wait fails at once)."""
        sock = self.sock
        if sock is None:
            return
        self.cut = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def stale(self) -> bool:
        """True when the connection must not be used: closed, cut, or readable while idle
        (the server sent its "terminating connection" error and closed, or the kernel
        reported the peer dead). An idle connection has nothing to read otherwise."""
        if self.closed or self.cut or self.sock is None:
            return True
        return bool(self._poller.poll(0))

    def close(self) -> None:
        """Close the connection and the duplicate of its socket."""
        try:
            super().close()
        finally:
            sock, self.sock = self.sock, None
            if sock is not None:
                sock.close()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect_kwargs(config: PostgresConfig, *, replica: bool = False) -> tuple[str, dict[str, Any]]:
    """The libpq DSN and keyword arguments for one connection of ``config`` (TCP keepalives
    on; ``tcp_user_timeout`` bounds unacknowledged writes to ``operation_timeout``)."""
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
    schema = require_schema(config.schema_, "schema")
    search_path = _quote_ident(schema) + ("" if schema == "public" else ",public")
    options = [f"-c search_path={search_path}", "-c TimeZone=UTC"]
    if config.statement_timeout is not None:
        options.append(f"-c statement_timeout={int(config.statement_timeout)}")
    kwargs.update(
        application_name=config.application_name + ("[replica]" if replica else ""),
        options=" ".join(options),
        connection_factory=PooledConnection,
        keepalives=1,
        keepalives_idle=config.keepalives_idle,
        keepalives_interval=KEEPALIVES_INTERVAL,
        keepalives_count=KEEPALIVES_COUNT,
        tcp_user_timeout=max(1000, int(config.operation_timeout * 1000)),
    )
    for name in ("sslmode", "sslrootcert", "sslcert", "sslkey"):  # override the DSN's
        value = getattr(config, name)
        if value:
            kwargs[name] = value
    return dsn, kwargs


def open_connection(dsn: str, kwargs: dict[str, Any], timeout: float) -> PooledConnection:
    """Connect within ``timeout`` seconds, or raise :class:`ConnectTimeout`.

    libpq's ``connect_timeout`` has whole-second granularity, a 2 s minimum, and applies
    per address of a host name; so the connect runs in a helper thread and the caller
    waits exactly ``timeout``. An abandoned attempt still ends by ``connect_timeout`` and
    closes what it opened. psycopg2 errors are raised as they are (the caller translates).
    """
    if timeout <= 0:
        raise ConnectTimeout()
    connect_timeout = max(2, math.ceil(timeout))
    done = threading.Event()
    lock = threading.Lock()
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        conn: Any = None
        try:
            conn = psycopg2.connect(dsn, connect_timeout=connect_timeout, **kwargs)
        except BaseException as exc:  # handed to the waiting caller
            outcome["error"] = exc
        with lock:
            outcome["conn"] = conn
            abandoned = outcome.get("abandoned", False)
            done.set()
        if abandoned and conn is not None:
            conn.close()

    threading.Thread(target=attempt, name="memory-resources-pg-connect", daemon=True).start()
    if not done.wait(timeout):
        with lock:
            if not done.is_set():
                outcome["abandoned"] = True
                raise ConnectTimeout()
    if "error" in outcome:
        raise outcome["error"]
    conn: PooledConnection = outcome["conn"]
    return conn


class Watchdog:
    """One daemon thread per process that cuts the socket of every registered connection
    whose ``deadline`` passed. Arming a call is one attribute write (``conn.deadline``);
    the thread runs only while some connection is registered."""

    def __init__(self, tick: float = WATCHDOG_TICK) -> None:
        self.tick = tick
        self._conns: weakref.WeakSet[PooledConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._running = False

    def after_fork(self) -> None:
        """In a forked child: no watchdog thread runs there (threads do not survive fork)
        and the parent's connections are not the child's to cut; start afresh."""
        self._conns = weakref.WeakSet()
        self._lock = threading.Lock()
        self._running = False

    def register(self, conn: PooledConnection) -> None:
        """Watch ``conn`` for as long as it lives (or until :meth:`forget`)."""
        with self._lock:
            self._conns.add(conn)
            if not self._running:
                self._running = True
                threading.Thread(target=self._loop, name="memory-resources-pg-watchdog",
                                 daemon=True).start()

    def forget(self, conn: PooledConnection) -> None:
        """Stop watching ``conn`` (it is being closed)."""
        with self._lock:
            self._conns.discard(conn)

    def _loop(self) -> None:
        while True:
            time.sleep(self.tick)
            with self._lock:
                conns = list(self._conns)
                if not conns:
                    self._running = False
                    return
            now = time.monotonic()
            for conn in conns:
                deadline = conn.deadline
                if deadline and now >= deadline and not conn.cut:
                    conn.cut_socket()


WATCHDOG = Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=WATCHDOG.after_fork)
