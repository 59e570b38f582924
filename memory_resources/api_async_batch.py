"""Batch calls of :class:`~memory_resources.api_async.AsyncMemoryAPI`: the methods of
:class:`~memory_resources.api_batch.BatchCalls`, awaitable, with the same checks
(:mod:`memory_resources.api_batch`'s ``*_args`` functions) and store calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from .api_batch import (
    CONTEXTS_NAMES,
    EMBEDDINGS_NAMES,
    OUTPUTS_NAMES,
    RUNS_NAMES,
    contexts_args,
    embeddings_args,
    events_args,
    outputs_args,
    runs_args,
)
from .batching import id_list
from .records import ContextRecord, EventRecord, JSONDict, TaskOutputRecord, TaskOutputWrite


class AsyncBatchCalls:
    """The batch methods; :class:`AsyncMemoryAPI` inherits them."""

    _ensure: Callable[[Any], Awaitable[Any]]
    _context: Any
    _events: Any
    _history: Any
    _outputs: Any
    _vectors: Any

    async def set_contexts(
            self, contexts: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
            ttl: int | None = None) -> list[ContextRecord]:
        """See :meth:`MemoryAPI.set_contexts`."""
        pairs, ttl = contexts_args(contexts, ttl)
        store = await self._ensure(self._context)
        with CONTEXTS_NAMES:
            return list(await store.set_contexts(pairs, ttl))

    async def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """See :meth:`MemoryAPI.get_contexts`."""
        ids = id_list(context_ids, "context_ids")
        if not ids:
            return []
        store = await self._ensure(self._context)
        return list(await store.get_contexts(ids))

    async def append_events(self, context_id: str, events: Sequence[JSONDict]
                            ) -> list[EventRecord]:
        """See :meth:`MemoryAPI.append_events`."""
        context_id, items = events_args(context_id, events)
        store = await self._ensure(self._events)
        return list(await store.append_events(context_id, items))

    async def write_task_outputs(
        self, outputs: Sequence[Mapping[str, Any] | TaskOutputWrite]
    ) -> list[TaskOutputRecord]:
        """See :meth:`MemoryAPI.write_task_outputs`."""
        items = outputs_args(outputs)
        store = await self._ensure(self._outputs)
        with OUTPUTS_NAMES:
            return list(await store.write_task_outputs(items))

    async def write_flow_run_histories(self, runs: Sequence[Mapping[str, Any]]) -> int:
        """See :meth:`MemoryAPI.write_flow_run_histories`."""
        writes = runs_args(runs)
        if not writes:
            return 0
        store = await self._ensure(self._history)
        with RUNS_NAMES:
            return int(await store.write_flow_runs(writes))

    async def index_embeddings(self, ids: Sequence[str], embeddings: Any,
                               metadata: Sequence[JSONDict | None] | None = None) -> int:
        """See :meth:`MemoryAPI.index_embeddings`."""
        args = embeddings_args(self._vectors, ids, embeddings, metadata)
        if args is None:
            return 0
        store = await self._ensure(self._vectors)
        with EMBEDDINGS_NAMES:
            return int(await store.upsert(*args))


__all__ = ["AsyncBatchCalls"]
