"""The lock handle every backend shares: retry with jitter, validity, fencing, watchdog.

Backends implement only the :class:`~memory_resources.protocols.LockManager` primitives
(``try_acquire`` / ``release`` / ``extend``); this module holds the logic once.
"""

from __future__ import annotations

import random
import secrets
import threading
from types import TracebackType
from typing import Any

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


class LeaseCore:
    """What a lease-lock handle knows and decides, without I/O: settings, the lease held,
    validity (ttl - elapsed - drift), retry delays and errors. :class:`Lock` drives it
    with blocking calls, :class:`~memory_resources.locking_async.AsyncLock` with awaited
    ones, so the lock logic exists once."""

    def __init__(
        self,
        manager: Any,
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

    def _start_acquire(self) -> float | None:
        """Refuse a second acquire on this handle; the monotonic deadline (None: none)."""
        if self.owner is not None:
            raise LockNotHeldError(self.name, "this handle already holds the lock")
        return (None if self.blocking_timeout is None
                else self.clock.monotonic() + self.blocking_timeout)

    def _won(self, owner: str, token: int, started: float) -> bool:
        """Record a lease taken at ``started``; False when its validity is already gone
        (the caller releases it and retries)."""
        validity = self.timeout - (self.clock.monotonic() - started) - self._drift()
        if validity <= 0:
            return False
        self.owner, self.fencing_token = owner, token
        self.valid_until = started + validity
        self._lost.clear()
        _log.info("lock acquired", lock_name=self.name, fencing_token=token,
                  backend=self.manager.backend_name)
        return True

    def _retry_delay(self, attempt: int, deadline: float | None) -> float:
        """The jittered wait before attempt ``attempt + 1``, or LockNotAcquiredError when
        the deadline has passed."""
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
        return delay

    def _extend_args(self, timeout: float | None) -> tuple[str, float]:
        """The owner and the new lease in seconds of an :meth:`extend`."""
        if self.owner is None:
            raise LockNotHeldError(self.name, "extend() on a lock that is not held")
        ttl = require_positive_seconds(timeout, "timeout") if timeout is not None else self.timeout
        return self.owner, ttl

    def _extended(self, ok: bool, started: float, ttl: float) -> None:
        """Record the result of an extension begun at ``started``."""
        if not ok:
            self._lost.set()
            raise LockLostError(self.name, "the lease expired or was taken by another owner")
        self.valid_until = started + ttl - (self.clock.monotonic() - started) - self._drift()

    def _start_release(self) -> str:
        """Forget the lease locally (stop the watchdog first); the owner to release."""
        if self.owner is None:
            raise LockNotHeldError(self.name, "release() on a lock that is not held")
        owner, self.owner = self.owner, None
        self.valid_until = None
        return owner

    def _released(self, released: bool) -> bool:
        if released:
            _log.info("lock released", lock_name=self.name, fencing_token=self.fencing_token)
        else:
            _log.warning("lock had expired before release", lock_name=self.name,
                         fencing_token=self.fencing_token)
        return released

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, "
                f"backend={self.manager.backend_name!r}, held={self.held}, "
                f"fencing_token={self.fencing_token})")


class Lock(LeaseCore):
    """A lease lock on ``name``, used as a context manager or with acquire/release.

    ``timeout`` is the lease TTL in seconds; ``blocking_timeout`` how long ``acquire``
    retries (0: one attempt; None: forever). After acquiring, ``fencing_token`` is a number
    that strictly increases per lock name: pass it to the resource you protect so it can
    refuse writes from a holder whose lease expired. With ``auto_extend=True`` a watchdog
    thread extends the lease every ``timeout/3`` s and sets ``lost`` if extension fails.
    """

    manager: LockManager

    def __init__(self, manager: LockManager, name: str, **options: Any) -> None:
        super().__init__(manager, name, **options)
        self._stop_watchdog = threading.Event()
        self._watchdog: threading.Thread | None = None

    def acquire(self) -> Lock:
        """Acquire or raise :class:`LockNotAcquiredError` after ``blocking_timeout``."""
        deadline = self._start_acquire()
        attempt = 0
        while True:
            owner = secrets.token_hex(16)
            started = self.clock.monotonic()
            token = self.manager.try_acquire(self.name, owner, self.ttl_ms)
            if token is not None:
                if self._won(owner, token, started):
                    if self.auto_extend:
                        self._start_watchdog()
                    return self
                self.manager.release(self.name, owner)
            attempt += 1
            self.clock.sleep(self._retry_delay(attempt, deadline))

    def extend(self, timeout: float | None = None) -> None:
        """Reset the lease to ``timeout`` (default: the lock's) seconds from now."""
        owner, ttl = self._extend_args(timeout)
        started = self.clock.monotonic()
        self._extended(self.manager.extend(self.name, owner, max(1, int(ttl * 1000))),
                       started, ttl)

    def release(self) -> bool:
        """Release the lease. False if it had already expired or been taken over."""
        if self.owner is None:
            raise LockNotHeldError(self.name, "release() on a lock that is not held")
        self._stop_watchdog.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join()
        self._watchdog = None
        owner = self._start_release()
        return self._released(self.manager.release(self.name, owner))

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
