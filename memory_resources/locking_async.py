"""The lock handle of :class:`~memory_resources.api_async.AsyncMemoryAPI`.

:class:`AsyncLock` is :class:`~memory_resources.locking.Lock` with awaited backend calls:
the decisions (validity, fencing, jittered retries, errors) are :class:`LeaseCore`'s, shared
with the sync handle. Waiting between attempts is ``asyncio.sleep`` and the auto-extend
watchdog is an asyncio task, so holding or waiting for a lock never blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from types import TracebackType
from typing import Any

from .clock import SystemClock
from .errors import LockNotHeldError
from .locking import LeaseCore
from .log import get_logger

_log = get_logger(__name__)


class AsyncLock(LeaseCore):
    """A lease lock on ``name`` for coroutines: ``async with api.acquire_lock(name) as lock``.

    Same arguments and attributes as :class:`~memory_resources.locking.Lock`; ``manager`` is
    an async store (``try_acquire`` / ``release`` / ``extend`` are coroutines). With
    ``auto_extend=True`` a task extends the lease every ``timeout/3`` s and sets ``lost``
    when an extension fails.
    """

    def __init__(self, manager: Any, name: str, **options: Any) -> None:
        super().__init__(manager, name, **options)
        self._watchdog: asyncio.Task[None] | None = None

    async def _sleep(self, seconds: float) -> None:
        if isinstance(self.clock, SystemClock):
            await asyncio.sleep(seconds)
        else:  # an injected clock decides what waiting means (tests advance it)
            self.clock.sleep(seconds)
            await asyncio.sleep(0)

    async def acquire(self) -> AsyncLock:
        """Acquire or raise :class:`~memory_resources.errors.LockNotAcquiredError` after
        ``blocking_timeout``."""
        deadline = self._start_acquire()
        attempt = 0
        while True:
            owner = secrets.token_hex(16)
            started = self.clock.monotonic()
            token = await self.manager.try_acquire(self.name, owner, self.ttl_ms)
            if token is not None:
                if self._won(owner, token, started):
                    if self.auto_extend:
                        self._watchdog = asyncio.create_task(
                            self._keep_alive(), name=f"lock-watchdog:{self.name}")
                    return self
                await self.manager.release(self.name, owner)
            attempt += 1
            await self._sleep(self._retry_delay(attempt, deadline))

    async def extend(self, timeout: float | None = None) -> None:
        """Reset the lease to ``timeout`` (default: the lock's) seconds from now."""
        owner, ttl = self._extend_args(timeout)
        started = self.clock.monotonic()
        ok = await self.manager.extend(self.name, owner, max(1, int(ttl * 1000)))
        self._extended(bool(ok), started, ttl)

    async def release(self) -> bool:
        """Release the lease. False if it had already expired or been taken over."""
        if self.owner is None:
            raise LockNotHeldError(self.name, "release() on a lock that is not held")
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        owner = self._start_release()
        return self._released(bool(await self.manager.release(self.name, owner)))

    async def _keep_alive(self) -> None:
        interval = max(0.01, self.timeout / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.extend()
            except Exception as exc:
                self._lost.set()
                _log.warning("lock lost: extension failed", lock_name=self.name,
                             error=str(exc))
                return

    async def __aenter__(self) -> AsyncLock:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.owner is not None:
            await self.release()


__all__ = ["AsyncLock"]
