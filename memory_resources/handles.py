"""A context handle: one agent session's context and events, bound to a MemoryAPI.

``memory.context("session-1", ttl=3600)`` returns a :class:`ContextHandle`; its writes go
through the MemoryAPI (validated, audited, attributed to the acting flow/task run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .records import ContextRecord, EventRecord, JSONDict
from .validation import require_id, require_ttl

if TYPE_CHECKING:
    from .api import MemoryAPI


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Final = _Unset()
"""Marker for "use the handle's TTL" (``None`` means no expiry)."""


class HandleCore:
    """The session id and TTL rules shared by :class:`ContextHandle` and
    :class:`~memory_resources.handles_async.AsyncContextHandle`."""

    def __init__(self, api: Any, session_id: str, *, ttl: int | None = None) -> None:
        self.api = api
        self.session_id = require_id(session_id, "session_id")
        self.ttl = require_ttl(ttl, "ttl")

    def _ttl(self, ttl: int | _Unset | None) -> int | None:
        return self.ttl if isinstance(ttl, _Unset) else require_ttl(ttl, "ttl")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(session_id={self.session_id!r}, ttl={self.ttl})"


class ContextHandle(HandleCore):
    """The context and event stream of ``session_id``.

    ``ttl`` (seconds, or None for no expiry) applies to every write that does not give its
    own. :meth:`update` is a read-modify-write: it is not atomic across processes — hold
    ``memory.lock(...)`` around it when several writers share a session.
    """

    api: MemoryAPI

    def __init__(self, api: MemoryAPI, session_id: str, *, ttl: int | None = None) -> None:
        super().__init__(api, session_id, ttl=ttl)

    def get(self) -> ContextRecord | None:
        """The stored envelope, or None when absent or expired."""
        return self.api.get_context(self.session_id)

    @property
    def data(self) -> JSONDict:
        """The stored data, or ``{}`` when there is none."""
        record = self.get()
        return dict(record["data"]) if record is not None else {}

    def set(self, data: JSONDict, *, ttl: int | _Unset | None = UNSET) -> ContextRecord:
        """Replace the data; ``ttl`` defaults to the handle's."""
        return self.api.set_context_record(self.session_id, data, self._ttl(ttl))

    def update(self, **changes: Any) -> JSONDict:
        """Merge ``changes`` into the stored data (top-level keys) and return the result."""
        merged = self.data
        merged.update(changes)
        record = self.api.set_context_record(self.session_id, merged, self.ttl)
        return dict(record["data"])

    def append_event(self, event: JSONDict) -> EventRecord:
        """Append ``event`` to the session's stream; returns it with its id and timestamp."""
        return self.api.append_event_record(self.session_id, event)

    def events(self, since: str | None = None, limit: int | None = None) -> list[EventRecord]:
        """The session's events in append order (``since``: exclusive event-id cursor)."""
        return self.api.get_events(self.session_id, since=since, limit=limit)

    def clear(self) -> bool:
        """Remove the context and its events; False if there was nothing to remove."""
        return self.api.clear_context(self.session_id)


__all__ = ["UNSET", "ContextHandle", "HandleCore"]
