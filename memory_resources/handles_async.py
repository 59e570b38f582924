"""The async context handle: ``api.context("session-1")`` of an AsyncMemoryAPI.

Same methods as :class:`~memory_resources.handles.ContextHandle`, awaitable; the session id
and TTL rules are :class:`~memory_resources.handles.HandleCore`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .handles import UNSET, HandleCore, _Unset
from .records import ContextRecord, EventRecord, JSONDict

if TYPE_CHECKING:
    from .api_async import AsyncMemoryAPI


class AsyncContextHandle(HandleCore):
    """The context and event stream of ``session_id`` for coroutines. :meth:`update` is
    a read-modify-write: hold ``api.acquire_lock(...)`` around it when several writers
    share a session."""

    api: AsyncMemoryAPI

    async def get(self) -> ContextRecord | None:
        """The stored envelope, or None when absent or expired."""
        return await self.api.get_context(self.session_id)

    async def data(self) -> JSONDict:
        """The stored data, or ``{}`` when there is none."""
        record = await self.get()
        return dict(record["data"]) if record is not None else {}

    async def set(self, data: JSONDict, *, ttl: int | _Unset | None = UNSET) -> ContextRecord:
        """Replace the data; ``ttl`` defaults to the handle's."""
        return await self.api.set_context_record(self.session_id, data, self._ttl(ttl))

    async def update(self, **changes: Any) -> JSONDict:
        """Merge ``changes`` into the stored data (top-level keys) and return the result."""
        merged = await self.data()
        merged.update(changes)
        record = await self.api.set_context_record(self.session_id, merged, self.ttl)
        return dict(record["data"])

    async def append_event(self, event: JSONDict) -> EventRecord:
        """Append ``event`` to the session's stream; returns it with its id and timestamp."""
        return await self.api.append_event_record(self.session_id, event)

    async def events(self, since: str | None = None, limit: int | None = None
                     ) -> list[EventRecord]:
        """The session's events in append order (``since``: exclusive event-id cursor)."""
        return await self.api.get_events(self.session_id, since=since, limit=limit)

    async def clear(self) -> bool:
        """Remove the context and its events; False if there was nothing to remove."""
        return await self.api.clear_context(self.session_id)


__all__ = ["AsyncContextHandle"]
