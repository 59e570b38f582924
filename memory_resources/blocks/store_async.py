"""The async handles of a :class:`~memory_resources.blocks.store.MemoryStore`:
``memory.aapi``, ``memory.acontext(...)``, ``memory.alock(...)``."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..api import MemoryAPI
    from ..api_async import AsyncMemoryAPI
    from ..handles_async import AsyncContextHandle
    from ..locking_async import AsyncLock

_ASYNC_APIS: weakref.WeakKeyDictionary[Any, dict[str, AsyncMemoryAPI]] = (
    weakref.WeakKeyDictionary())
"""Per event loop: the AsyncMemoryAPI of each configuration (dropped with its loop)."""
_LOCK = threading.Lock()


class AsyncHandles:
    """Mixed into MemoryStore: the async twins of ``api``, ``context`` and ``lock``."""

    context_ttl: int | None

    @property
    def api(self) -> MemoryAPI:
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    @property
    def aapi(self) -> AsyncMemoryAPI:
        """The :class:`~memory_resources.api_async.AsyncMemoryAPI` of this configuration
        for the running event loop (one per loop: async connections belong to their loop).
        It shares the sync API's SQLite and vector stores (on worker threads);
        ``await memory.aapi.disconnect()`` closes its own Redis / PostgreSQL pools
        (reopened on next use)."""
        from ..api_async import AsyncMemoryAPI

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                "memory.aapi needs a running event loop: use it inside async code "
                "(memory.api is the sync interface)") from None
        key = self.fingerprint()
        with _LOCK:
            apis = _ASYNC_APIS.setdefault(loop, {})
            api = apis.get(key)
        if api is None:
            built = AsyncMemoryAPI.over(self.api)
            with _LOCK:
                api = apis.setdefault(key, built)
        return api

    def acontext(self, session_id: str, *, ttl: int | None = None) -> AsyncContextHandle:
        """``context`` for async code: awaitable ``get``/``set``/``update``/... on the
        running loop's :attr:`aapi`; ``ttl`` defaults to ``context_ttl``."""
        return self.aapi.context(session_id, ttl=ttl if ttl is not None else self.context_ttl)

    def alock(self, name: str, *, timeout: float = 10, blocking_timeout: float | None = 5,
              auto_extend: bool = False) -> AsyncLock:
        """``lock`` for async code: ``async with memory.alock(name) as lock:``."""
        return self.aapi.lock(name, timeout=timeout, blocking_timeout=blocking_timeout,
                              auto_extend=auto_extend)


__all__ = ["AsyncHandles"]
