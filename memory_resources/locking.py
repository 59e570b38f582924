"""The lock handle every backend shares: retry with jitter, validity, fencing, watchdog.

Backends implement only the :class:`~memory_resources.protocols.LockManager` primitives
(``try_acquire`` / ``release`` / ``extend``); this module holds the logic once.
"""

from __future__ import annotations

import random
import secrets
import threading
from types import TracebackType

from .clock import SYSTEM_CLOCK, Clock
from .errors import LockLostError, LockNotAcquiredError, LockNotHeldError
from .log import get_logger
from .protocols import LockManager
from .validation import require_id, require_positive_seconds

_JITTER = random.Random()
"""Private: retry jitter must not draw from (or disturb) the application's global random."""

_log = get_logger(__name__)

CLOCK_DRIFT_FACTOR = 0.01
"""Redlock's allowance for clock drift between nodes, as a share of the TTL (+2 ms)."""


class Lock:
    """A lease lock on ``name``, used as a context manager or with acquire/release.

    ``timeout`` is the lease TTL in seconds; ``blocking_timeout`` how long ``acquire``
    retries (0: one attempt; None: forever). After acquiring, ``fencing_token`` is a number
    that strictly increases per lock name: pass it to the resource you protect so it can
    refuse writes from a holder whose lease expired. With ``auto_extend=True`` a watchdog
    thread extends the lease every ``timeout/3`` s and sets ``lost`` if extension fails.
    """

    def __init__(
        self,
        manager: LockManager,
        name: str,
        *,
        timeout: float = 10,
        blocking_timeout: float | None = 5,
        auto_extend: bool = False,
        retry_delay: float = 0.05,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.manager = manager
        self.name = require_id(name, "lock_name")
        self.timeout = require_positive_seconds(timeout, "timeout")
        self.blocking_timeout = (
            None if blocking_timeout is None
            else require_positive_seconds(blocking_timeout, "blocking_timeout", allow_zero=True)
        )
        self.auto_extend = auto_extend
        self.retry_delay = retry_delay
        self.clock = clock
        self.owner: str | None = None
        self.fencing_token: int | None = None
        self.valid_until: float | None = None
        """Monotonic time until which the lease is certainly held."""
        self._lost = threading.Event()
        self._stop_watchdog = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.timeout * 1000))

    @property
    def held(self) -> bool:
        """True while acquired, not released, not lost and within its validity."""
        return (
            self.owner is not None
            and not self._lost.is_set()
            and self.valid_until is not None
            and self.clock.monotonic() < self.valid_until
        )

    @property
    def lost(self) -> bool:
        """True once the watchdog failed to extend the lease."""
        return self._lost.is_set()

    def _drift(self) -> float:
        return self.timeout * CLOCK_DRIFT_FACTOR + 0.002

    def acquire(self) -> Lock:
        """Acquire or raise :class:`LockNotAcquiredError` after ``blocking_timeout``."""
        if self.owner is not None:
            raise LockNotHeldError(self.name, "this handle already holds the lock")
        deadline = (
            None if self.blocking_timeout is None
            else self.clock.monotonic() + self.blocking_timeout
        )
        attempt = 0
        while True:
            owner = secrets.token_hex(16)
            started = self.clock.monotonic()
            token = self.manager.try_acquire(self.name, owner, self.ttl_ms)
            if token is not None:
                validity = self.timeout - (self.clock.monotonic() - started) - self._drift()
                if validity > 0:
                    self.owner, self.fencing_token = owner, token
                    self.valid_until = started + validity
                    self._lost.clear()
                    if self.auto_extend:
                        self._start_watchdog()
                    _log.debug("lock acquired", lock_name=self.name, fencing_token=token,
                               backend=self.manager.backend_name)
                    return self
                self.manager.release(self.name, owner)
            attempt += 1
            now = self.clock.monotonic()
            if deadline is not None and now >= deadline:
                raise LockNotAcquiredError(
                    self.name,
                    f"not acquired within blocking_timeout={self.blocking_timeout}s "
                    f"({attempt} attempts)",
                )
            delay = self.retry_delay * _JITTER.uniform(0.5, 1.5) * min(8, 1 + attempt // 4)
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - now))
            self.clock.sleep(delay)

    def extend(self, timeout: float | None = None) -> None:
        """Reset the lease to ``timeout`` (default: the lock's) seconds from now."""
        if self.owner is None:
            raise LockNotHeldError(self.name, "extend() on a lock that is not held")
        ttl = require_positive_seconds(timeout, "timeout") if timeout is not None else self.timeout
        started = self.clock.monotonic()
        if not self.manager.extend(self.name, self.owner, max(1, int(ttl * 1000))):
            self._lost.set()
            raise LockLostError(self.name, "the lease expired or was taken by another owner")
        self.valid_until = started + ttl - (self.clock.monotonic() - started) - self._drift()

    def release(self) -> bool:
        """Release the lease. False if it had already expired or been taken over."""
        if self.owner is None:
            raise LockNotHeldError(self.name, "release() on a lock that is not held")
        self._stop_watchdog.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join()
        self._watchdog = None
        owner, self.owner = self.owner, None
        self.valid_until = None
        released = self.manager.release(self.name, owner)
        if not released:
            _log.warning("lock had expired before release", lock_name=self.name,
                         fencing_token=self.fencing_token)
        return released

    def _start_watchdog(self) -> None:
        self._stop_watchdog.clear()
        interval = max(0.01, self.timeout / 3)

        def run() -> None:
            while not self._stop_watchdog.wait(interval):
                try:
                    self.extend()
                except Exception as exc:
                    self._lost.set()
                    _log.warning("lock lost: extension failed", lock_name=self.name,
                                 error=str(exc))
                    return

        self._watchdog = threading.Thread(target=run, name=f"lock-watchdog:{self.name}",
                                          daemon=True)
        self._watchdog.start()

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.owner is not None:
            self.release()

    def __repr__(self) -> str:
        return (f"Lock(name={self.name!r}, backend={self.manager.backend_name!r}, "
                f"held={self.held}, fencing_token={self.fencing_token})")
