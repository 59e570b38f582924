"""Connection lifecycle of the stores a MemoryAPI composes: connect each distinct store once
(lazily, thread-safe), close only the ones the API owns."""

from __future__ import annotations

import threading
from typing import Protocol, TypeVar

from .api_build import Composition, distinct_stores
from .api_monitor import backend_name
from .log import get_logger

S = TypeVar("S")


class Ensure(Protocol):
    """Connect a store once and return it, typed as given (``StoreConnections.ensure``)."""

    def __call__(self, store: S, /) -> S: ...

_log = get_logger(__name__)


class StoreConnections:
    """Tracks which stores of a composition are connected."""

    def __init__(self, composition: Composition) -> None:
        self.roles = composition.roles
        self.owned = composition.owned
        self._connected: set[int] = set()
        self._lock = threading.Lock()
        self._store_locks: dict[int, threading.Lock] = {}

    def ensure(self, store: S) -> S:
        """Connect ``store`` once (idempotent, thread-safe) and return it. Each store has
        its own lock, so a backend that hangs while connecting never holds up another."""
        if id(store) in self._connected:
            return store
        with self._lock:
            store_lock = self._store_locks.setdefault(id(store), threading.Lock())
        with store_lock:
            if id(store) not in self._connected:
                connect = getattr(store, "connect", None)
                if connect is not None:
                    connect()
                self._connected.add(id(store))
        return store

    def connect_all(self) -> None:
        """Connect every distinct store, in role order; the first failure propagates."""
        for store in distinct_stores(self.roles):
            self.ensure(store)

    def close_owned(self) -> None:
        """Close every owned store (all of them, even when one fails; the first failure is
        raised afterwards) and forget which are connected, so use reconnects lazily."""
        failure: BaseException | None = None
        with self._lock:
            owned = {id(store) for store in self.owned}
            for store in distinct_stores(self.roles):
                close = getattr(store, "close", None) if id(store) in owned else None
                try:
                    if close is not None:
                        close()
                except Exception as exc:
                    _log.warning("closing a store failed", backend=backend_name(store),
                                 error=str(exc))
                    failure = failure or exc
            self._connected.clear()
        if failure is not None:
            raise failure
