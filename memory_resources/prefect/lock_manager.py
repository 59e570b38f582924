"""``MemoryLockManager``: Prefect's lock-manager protocol on our lease locks.

Prefect transactions with ``isolation_level=SERIALIZABLE`` lock their key through a
``prefect.locking.protocol.LockManager`` set on the ``ResultStore``. This one serves it from
a memory store's lock backend (Redis Redlock, PostgreSQL or SQLite leases), so two flows
in different processes or on different machines serialise on one key, and each acquisition
carries a fencing token.

Prefect's ``hold_timeout=None`` ("hold until released") becomes a lease of
``lease_seconds`` kept alive by a watchdog thread, so a holder that dies frees the key after
one lease instead of never.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
import time
from typing import Any

from prefect.locking.protocol import LockManager as PrefectLockManager

from ..errors import (
    ConfigurationError,
    LockNotAcquiredError,
    LockNotHeldError,
    MemoryValidationError,
)
from ..locking import Lock
from ..log import get_logger
from ..protocols import LockInspector, LockManager
from ..validation import MAX_ID_LENGTH, require_id, require_positive_seconds

_log = get_logger(__name__)

DEFAULT_PREFIX = "prefect-txn:"
DEFAULT_LEASE_SECONDS = 30.0
_POLL_MIN, _POLL_MAX = 0.02, 0.5
"""``wait_for_lock`` polls the backend from every 20 ms up to every 500 ms."""


@dataclasses.dataclass
class _Held:
    holder: str
    lock: Lock


def _primitives(memory: Any) -> Any:
    """The lock store behind ``memory`` (MemoryStore, MemoryAPI, a backend block or a store)."""
    if isinstance(memory, LockManager) and isinstance(memory, LockInspector):
        return memory
    get_store = getattr(memory, "get_store", None)
    if callable(get_store):  # RedisMemory / PostgresMemory blocks
        return get_store()
    api = getattr(memory, "api", memory)  # MemoryStore -> its MemoryAPI
    store = getattr(api, "store", None)
    if callable(store):
        return store("locks")
    raise ConfigurationError(
        f"MemoryLockManager needs a MemoryStore, MemoryAPI, RedisMemory or PostgresMemory; "
        f"got {type(memory).__name__}. Write MemoryLockManager(MemoryStore.load('<name>'))."
    )


class MemoryLockManager(PrefectLockManager):
    """Prefect's ``LockManager`` on the lock backend of ``memory``.

    ``memory`` is a :class:`~memory_resources.blocks.MemoryStore`, a ``MemoryAPI``, a
    ``RedisMemory`` / ``PostgresMemory`` block or a store. Keys become lock names
    ``prefix + key`` (hashed when longer than a lock name may be, or not ASCII). Use it on a
    ``ResultStore`` (``ResultStore(lock_manager=MemoryLockManager(memory))``) or a cache
    policy (``INPUTS.configure(lock_manager=...)``).

    Examples:
        ```python
        from prefect.results import ResultStore
        from prefect.transactions import IsolationLevel, transaction
        from memory_resources import MemoryStore
        from memory_resources.prefect import MemoryLockManager

        store = ResultStore(lock_manager=MemoryLockManager(MemoryStore.load("agent-memory")))
        with transaction(key="nightly-report", store=store,
                         isolation_level=IsolationLevel.SERIALIZABLE) as txn:
            ...
        ```
    """

    def __init__(self, memory: Any, *, prefix: str = DEFAULT_PREFIX,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 retry_delay: float = 0.05) -> None:
        self.memory = memory
        self.prefix = require_id(prefix, "prefix")
        self.lease_seconds = require_positive_seconds(lease_seconds, "lease_seconds")
        self.retry_delay = require_positive_seconds(retry_delay, "retry_delay")
        self._store: Any = None
        self._held: dict[str, _Held] = {}
        self._guard = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------

    def _locks(self) -> Any:
        store = self._store
        if store is None:
            store = self._store = _primitives(self.memory)
        return store

    def lock_name(self, key: str) -> str:
        """The lock name that serialises ``key``."""
        if not isinstance(key, str) or not key:
            raise MemoryValidationError("key", "must be a non-empty string",
                                        hint="Prefect transaction keys are strings")
        name = self.prefix + key
        if len(name) > MAX_ID_LENGTH or "\x00" in name or not name.isascii():
            digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
            name = self.prefix + "sha256:" + digest
        return name

    def fencing_token(self, key: str) -> int | None:
        """The fencing token of this process's lease on ``key`` (None when not held here)."""
        held = self._held.get(key)
        return held.lock.fencing_token if held is not None and held.lock.held else None

    # -- the protocol ----------------------------------------------------------------------

    def acquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                     hold_timeout: float | None = None) -> bool:
        """Take ``key`` for ``holder``; False when not acquired within ``acquire_timeout``
        seconds (None: wait indefinitely; 0: one attempt)."""
        holder = require_id(holder, "holder")
        with self._guard:
            held = self._held.get(key)
        if held is not None and held.holder == holder and held.lock.held:
            return True
        lock = Lock(
            self._locks(), self.lock_name(key),
            timeout=hold_timeout if hold_timeout is not None else self.lease_seconds,
            blocking_timeout=acquire_timeout, auto_extend=hold_timeout is None,
            retry_delay=self.retry_delay,
        )
        try:
            lock.acquire()
        except LockNotAcquiredError:
            return False
        with self._guard:
            self._held[key] = _Held(holder, lock)
        _log.debug("transaction lock acquired", key=key, fencing_token=lock.fencing_token)
        return True

    def release_lock(self, key: str, holder: str) -> None:
        """Release ``key``; :class:`LockNotHeldError` when ``holder`` does not hold it."""
        with self._guard:
            held = self._held.get(key)
            if held is None or held.holder != holder:
                raise LockNotHeldError(
                    self.lock_name(key),
                    f"release_lock: {holder!r} holds no lock on {key!r} in this process")
            del self._held[key]
        held.lock.release()

    def is_locked(self, key: str) -> bool:
        """True while any holder, in any process, has an unexpired lease on ``key``."""
        return bool(self._locks().is_held(self.lock_name(key)))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """True when ``holder`` holds ``key`` through this manager and the lease is valid."""
        held = self._held.get(key)
        return held is not None and held.holder == holder and held.lock.held

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is free; False if still locked after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _POLL_MIN
        while self.is_locked(key):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            pause = delay if deadline is None else min(delay, deadline - now)
            time.sleep(pause)
            delay = min(_POLL_MAX, delay * 1.5)
        return True

    async def aacquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                            hold_timeout: float | None = None) -> bool:
        """:meth:`acquire_lock` off the event loop (in a worker thread)."""
        return await asyncio.to_thread(self.acquire_lock, key, holder, acquire_timeout,
                                       hold_timeout)

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """:meth:`wait_for_lock` off the event loop (in a worker thread)."""
        return await asyncio.to_thread(self.wait_for_lock, key, timeout)

    # -- pickling: held leases belong to this process ----------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_store=None, _held={})
        state.pop("_guard", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return (f"MemoryLockManager(memory={type(self.memory).__name__}, "
                f"prefix={self.prefix!r}, lease_seconds={self.lease_seconds})")


__all__ = ["MemoryLockManager"]
