"""Where a read goes when ``read_replica_dsn`` is set: the replica, or the primary when the
replica is down or has not replayed this store's own writes yet. One state machine for the
sync pool (psycopg2) and the async store (asyncpg); each transport only runs the SQL below.

Read-your-writes (``replica_consistency="read_your_writes"``, the default) works on WAL
positions, as PostgreSQL's own synchronous replication does: a write costs nothing extra
(a counter is bumped after it ends); the first replica read after this store wrote asks the
primary for ``pg_current_wal_lsn()`` (at or past the commit of every write that ended
before), then waits, polling ``pg_last_wal_replay_lsn()`` on the replica connection it
reads with, until the replica has replayed that far, at most ``replica_max_wait``; past it
the read goes to the primary. Reads that follow no new write skip both steps. The
guarantee covers this store's (this process's) writes; a write made elsewhere is seen once
the replica replays it. ``read_replica_dsn`` must name one standby: replay is confirmed
once per primary position, not per server behind a load balancer.

Replica failures (connect refused or timed out, a query past ``replica_timeout``, a login
refused) never fail a read: it goes to the primary, a :class:`ReplicaUnavailableWarning`
and a structlog warning are issued (once per outage, at most every :data:`WARN_EVERY`
seconds), and reads stay on the primary for ``replica_retry_interval`` seconds before the
replica is tried again.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from ...config import PostgresConfig
from ...errors import BackendTimeoutError, ReplicaUnavailableWarning
from ...log import get_logger
from .errors import BACKEND

PRIMARY_LSN = "SELECT pg_current_wal_lsn()::text"
"""On the primary: a WAL position at or past every commit that ended before it ran."""
REPLAYED = ("SELECT COALESCE(pg_last_wal_replay_lsn() >= %s::pg_lsn, NOT pg_is_in_recovery())")
"""On the replica: has it replayed up to the position (a promoted server has everything)?"""
REPLAYED_ASYNC = REPLAYED.replace("%s", "$1::text")
POLL_INTERVAL = 0.005
"""Seconds between two replay checks while waiting for the replica."""
WARN_EVERY = 60.0
"""At most one replica warning per this many seconds (flapping replicas stay quiet)."""

_log = get_logger(__name__)


class ReplicaLagging(Exception):
    """The replica did not replay this store's writes within ``replica_max_wait``."""


class ReplicaRouter:
    """Thread-safe routing state of one store: its writes, the primary position that covers
    them, whether the replica confirmed it, and whether the replica is down."""

    def __init__(self, config: PostgresConfig) -> None:
        self.read_your_writes = config.replica_consistency == "read_your_writes"
        self.max_wait = config.replica_max_wait
        self.timeout = config.replica_timeout
        self.retry_interval = config.replica_retry_interval
        self._lock = threading.Lock()
        self._writes = 0
        self._covered = 0
        self._target: str | None = None
        self._confirmed: str | None = None
        self._down_until = 0.0
        self._down = False
        self._warned_at = -WARN_EVERY
        self.counts = {"replica_reads": 0, "primary_fallbacks": 0, "lag_fallbacks": 0}

    # -- writes and positions ---------------------------------------------------------------

    def note_write(self) -> None:
        """A statement that may have written on the primary has ended (committed or not)."""
        if self.read_your_writes:
            with self._lock:
                self._writes += 1

    def uncovered(self) -> int | None:
        """The write count to cover with a fresh primary position, or None when the known
        position already covers every write of this store."""
        with self._lock:
            return self._writes if self._writes > self._covered else None

    def cover(self, writes: int, lsn: str) -> None:
        """``lsn`` (read on the primary after ``writes`` writes ended) covers them."""
        with self._lock:
            if writes > self._covered:
                self._covered, self._target = writes, lsn

    def target(self) -> str | None:
        """The position the replica must have replayed before this read, or None."""
        with self._lock:
            return None if self._target == self._confirmed else self._target

    def confirmed(self, lsn: str) -> None:
        """The replica has replayed ``lsn``: later reads need no check until a new write."""
        with self._lock:
            self._confirmed = lsn

    def deadline(self, call_deadline: float | None) -> float:
        """When a replica attempt starting now must end (``replica_timeout``, within the call
        when it has a deadline)."""
        own = time.monotonic() + self.timeout
        return own if call_deadline is None else min(call_deadline, own)

    # -- health -----------------------------------------------------------------------------

    def use_replica(self) -> bool:
        """False while the replica is considered down (reads go straight to the primary)."""
        return time.monotonic() >= self._down_until

    def succeeded(self) -> None:
        with self._lock:
            self.counts["replica_reads"] += 1
            back, self._down = self._down, False
        if back:
            _log.info("postgres read replica is back; reads go to it again")

    def lagged(self) -> None:
        with self._lock:
            self.counts["lag_fallbacks"] += 1
        _log.debug("postgres read replica behind this store's writes; reading the primary",
                   max_wait_s=self.max_wait)

    def failed(self, error: BaseException) -> None:
        """The replica failed this read: primary for ``retry_interval`` s, warn (limited)."""
        now = time.monotonic()
        message = str(error).removeprefix(f"[{BACKEND}] ")
        if isinstance(error, (BackendTimeoutError, TimeoutError)):
            message = f"no answer within replica_timeout={self.timeout:g}s"
        with self._lock:
            self.counts["primary_fallbacks"] += 1
            self._down_until = now + self.retry_interval
            first = not self._down
            self._down = True
            warn = first and now - self._warned_at >= WARN_EVERY
            if warn:
                self._warned_at = now
        if warn:
            _log.warning("postgres read replica unavailable; reading from the primary",
                         error=message, retry_in_s=self.retry_interval)
            warnings.warn(ReplicaUnavailableWarning(BACKEND, message), stacklevel=2)
        else:
            _log.debug("postgres read replica still unavailable", error=message)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counts, "down": self._down}


def wait_replayed(check: Callable[[str], bool], target: str, router: ReplicaRouter,
                  deadline: float) -> None:
    """Poll ``check(target)`` (True once replayed) until it holds, ``replica_max_wait`` passed
    (:class:`ReplicaLagging`) or ``deadline`` is near. Sync transport."""
    started = time.monotonic()
    limit = min(started + router.max_wait, deadline)
    while not check(target):
        if time.monotonic() + POLL_INTERVAL >= limit:
            raise ReplicaLagging()
        time.sleep(POLL_INTERVAL)
    router.confirmed(target)


async def await_replayed(check: Callable[[str], Awaitable[bool]], target: str,
                         router: ReplicaRouter, deadline: float) -> None:
    """:func:`wait_replayed` for the async transport (``check`` is awaited)."""
    started = time.monotonic()
    limit = min(started + router.max_wait, deadline)
    while not await check(target):
        if time.monotonic() + POLL_INTERVAL >= limit:
            raise ReplicaLagging()
        await asyncio.sleep(POLL_INTERVAL)
    router.confirmed(target)


__all__ = ["POLL_INTERVAL", "PRIMARY_LSN", "REPLAYED", "REPLAYED_ASYNC", "ReplicaLagging",
           "ReplicaRouter", "await_replayed", "wait_replayed"]
