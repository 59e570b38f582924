"""Idle, connected connections to one Redlock master, for requests sent and read by the
caller's own thread.

Redlock's healthy path must cost one round trip, not thread hand-offs: when every master
has an idle connection here, the caller writes the request to each and waits for the
replies with ``select`` (:meth:`Redlock._fanout_inline`). A connection is never opened on
the caller's thread (a hung master would block it): :meth:`Lane.warm` runs on the
master's worker thread, and a master without an idle connection sends the whole request
through the worker threads instead.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

from .errors import CAUGHT


class Lane:
    """Up to ``limit`` idle connections to one master (plain TCP only: TLS may buffer
    decrypted bytes that ``select`` cannot see)."""

    def __init__(self, pool: Any, limit: int) -> None:
        self.pool = pool
        self.limit = limit
        self.usable = not issubclass(pool.connection_class, redis.SSLConnection)
        self._idle: list[Any] = []
        self._guard = threading.Lock()
        self.warming = False

    def take(self) -> Any:
        """An idle connection still open at the other end, or None."""
        while True:
            with self._guard:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            try:
                if conn._sock is not None and not conn.can_read(0):
                    return conn
            except CAUGHT:
                pass
            conn.disconnect()  # closed by the server (restart, idle timeout): drop it

    def give(self, conn: Any) -> None:
        """Keep ``conn`` for a later request (or close it when the lane is full)."""
        with self._guard:
            if len(self._idle) < self.limit:
                self._idle.append(conn)
                return
        conn.disconnect()

    def warm(self) -> None:
        """Open one connection and keep it (runs on the master's worker thread)."""
        try:
            conn = self.pool.connection_class(**self.pool.connection_kwargs)
            conn.connect()
            self.give(conn)
        except CAUGHT:
            pass
        finally:
            self.warming = False

    def close(self) -> None:
        """Close every idle connection."""
        with self._guard:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()
