"""The async stores of an :class:`~memory_resources.api_async.AsyncMemoryAPI`.

The composition is the sync API's (:mod:`memory_resources.api_build`: same config parsing,
roles and defaults); each sync store is then given its async transport: a store with an
``async_transport(clock)`` method (:class:`~memory_resources.protocols.AsyncTransport`)
builds its own — Redis ``redis.asyncio``, PostgreSQL asyncpg — and everything else
(SQLite, the numpy index, pgvector, third-party stores) runs on worker threads
(:class:`~memory_resources.stores.offload.ThreadOffload`). A backend may also build its
async store itself (``Backend.build_async``).
A store that is already async (its ``set_context`` / ``upsert`` ... are coroutines) is
used as given.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from .api_build import Composition, distinct_stores
from .clock import Clock
from .protocols import AsyncTransport
from .stores.offload import ThreadOffload

_PROBES = ("set_context", "append_event", "try_acquire", "write_flow_run",
           "write_task_output", "read_audit", "upsert", "query")


def is_async_store(store: Any) -> bool:
    """True when ``store``'s methods are coroutines (it needs no wrapping)."""
    if isinstance(store, ThreadOffload):
        return True
    for name in _PROBES:
        method = getattr(type(store), name, None)
        if method is not None:
            return inspect.iscoroutinefunction(method)
    return False


def to_async(store: Any, clock: Clock) -> Any:
    """The async transport of one sync store (see the module docstring)."""
    if is_async_store(store):
        return store
    if isinstance(store, AsyncTransport):
        return store.async_transport(clock)
    return ThreadOffload(store)


def async_composition(composition: Composition, clock: Clock, *,
                      shared: bool = False) -> Composition:
    """The same roles with async stores; a store shared by roles stays shared.

    ``shared``: the sync stores stay in use by their sync API, so only the native
    transports built here (their own pools) are owned, never a worker-thread wrapper,
    whose close would close the sync store."""
    originals = distinct_stores(composition.roles)
    converted = {id(store): to_async(store, clock) for store in originals}
    roles = {role: converted[id(store)] for role, store in composition.roles.items()}
    if shared:
        owned = [converted[id(store)] for store in originals
                 if converted[id(store)] is not store
                 and not isinstance(converted[id(store)], ThreadOffload)]
    else:
        owned = [converted.get(id(store), store) for store in composition.owned]
    return Composition(roles=roles, owned=owned)


class AsyncStoreConnections:
    """Connects each distinct async store once (concurrent callers wait for the same
    connect) and closes the owned ones."""

    def __init__(self, composition: Composition) -> None:
        self.roles = composition.roles
        self.owned = composition.owned
        self._connected: set[int] = set()
        self._lock: asyncio.Lock | None = None

    async def ensure(self, store: Any) -> Any:
        """Connect ``store`` once and return it."""
        if id(store) in self._connected:
            return store
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if id(store) not in self._connected:
                connect = getattr(store, "connect", None)
                if connect is not None:
                    await connect()
                self._connected.add(id(store))
        return store

    async def connect_all(self) -> None:
        """Connect every distinct store, in role order; the first failure propagates."""
        for store in distinct_stores(self.roles):
            await self.ensure(store)

    async def close_owned(self) -> None:
        """Close every owned store (all of them; the first failure is raised after)."""
        failure: BaseException | None = None
        owned = {id(store) for store in self.owned}
        for store in distinct_stores(self.roles):
            close = getattr(store, "close", None) if id(store) in owned else None
            try:
                if close is not None:
                    await close()
            except Exception as exc:
                failure = failure or exc
        self._connected.clear()
        self._lock = None
        if failure is not None:
            raise failure


__all__ = ["AsyncStoreConnections", "async_composition", "is_async_store", "to_async"]
