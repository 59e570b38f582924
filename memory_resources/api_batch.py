"""Batch calls of :class:`~memory_resources.api.MemoryAPI`: many items per round trip.

Each batch method takes the items its single call takes, validates every item with the
same checks before anything is written (an error names the item, e.g.
``contexts[3].data: must be a dict``), writes them in one store call and audits each item
like the single call. Atomicity per backend is in docs/batch.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .api_inputs import argument_names, flow_run_write
from .api_lifecycle import Ensure
from .batching import batch_list, context_pairs, id_list, output_writes, prepare_each
from .embedding import as_matrix, require_ids
from .errors import MemoryValidationError
from .protocols import ContextStore, EventLog, RunHistory, TaskOutputs, VectorIndex
from .records import (
    ContextRecord,
    EventRecord,
    FlowRunWrite,
    JSONDict,
    TaskOutputRecord,
    TaskOutputWrite,
)
from .validation import optional_dict, optional_id, require_dict, require_id, require_ttl

CONTEXTS_NAMES = argument_names(items="contexts")
OUTPUTS_NAMES = argument_names(items="outputs")
RUNS_NAMES = argument_names(records="runs")
EMBEDDINGS_NAMES = argument_names(vectors="embeddings")
_RUN_KEYS = frozenset(("flow_id", "run_id", "data"))


def _context_item(pair: tuple[Any, Any]) -> tuple[str, JSONDict]:
    return require_id(pair[0], "context_id"), require_dict(pair[1], "data")


def _event_item(event: Any) -> JSONDict:
    return require_dict(event, "")


def _output_item(item: TaskOutputWrite) -> TaskOutputWrite:
    return TaskOutputWrite(
        task_id=require_id(item.task_id, "task_id"), output=item.output,
        metadata=optional_dict(item.metadata, "metadata"),
        task_run_id=optional_id(item.task_run_id, "task_run_id"),
        flow_run_id=optional_id(item.flow_run_id, "flow_run_id"))


def _run_item(item: Any) -> FlowRunWrite:
    if not isinstance(item, Mapping):
        raise MemoryValidationError(
            "", f"must be a dict with flow_id, run_id and data, got {type(item).__name__}")
    unknown = set(item) - _RUN_KEYS
    if unknown:
        raise MemoryValidationError("", f"unknown keys {sorted(map(str, unknown))}",
                                    hint="use flow_id, run_id and data")
    return flow_run_write(item.get("flow_id"), item.get("run_id"), item.get("data"))


def contexts_args(contexts: Any, ttl: Any) -> tuple[list[tuple[str, JSONDict]], int | None]:
    """The checked ``(pairs, ttl)`` of ``set_contexts``."""
    pairs = prepare_each(context_pairs(contexts, "contexts"), _context_item, "contexts")
    return pairs, require_ttl(ttl, "ttl")


def events_args(context_id: Any, events: Any) -> tuple[str, list[JSONDict]]:
    """The checked ``(context_id, events)`` of ``append_events``."""
    context_id = require_id(context_id, "context_id")
    return context_id, prepare_each(batch_list(events, "events"), _event_item, "events")


def outputs_args(outputs: Any) -> list[TaskOutputWrite]:
    """The checked items of ``write_task_outputs``."""
    return prepare_each(output_writes(outputs, "outputs"), _output_item, "outputs")


def runs_args(runs: Any) -> list[FlowRunWrite]:
    """The checked writes of ``write_flow_run_histories``."""
    return prepare_each(batch_list(runs, "runs"), _run_item, "runs")


def embeddings_args(vectors: Any, ids: Any, embeddings: Any, metadata: Any
                    ) -> tuple[list[str], Any, list[JSONDict | None] | None] | None:
    """The checked ``(ids, matrix, metadata)`` of ``index_embeddings`` for the index
    ``vectors`` (its dimension and metric); None when there is nothing to write."""
    id_values = require_ids(batch_list(ids, "ids"), "ids")
    dimension = int(vectors.dimension)
    matrix = as_matrix(embeddings, dimension, vectors.metric, field="embeddings",
                       allow_empty=not id_values)
    if metadata is not None:
        metadata = [optional_dict(item, f"metadata[{index}]")
                    for index, item in enumerate(batch_list(metadata, "metadata"))]
    if not id_values and matrix.shape[0] == 0:
        return None
    return id_values, matrix, metadata


class BatchCalls:
    """The batch methods; :class:`MemoryAPI` inherits them (the async API has the same
    methods, awaitable, over the same ``*_args`` checks)."""

    _ensure: Ensure
    _context: ContextStore
    _events: EventLog
    _history: RunHistory
    _outputs: TaskOutputs
    _vectors: VectorIndex

    def set_contexts(self, contexts: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
                     ttl: int | None = None) -> list[ContextRecord]:
        """:meth:`set_context` for many contexts (``{context_id: data}`` or
        ``(context_id, data)`` pairs) with one ``ttl``; the stored envelopes, in order."""
        pairs, ttl = contexts_args(contexts, ttl)
        with CONTEXTS_NAMES:
            return list(self._ensure(self._context).set_contexts(pairs, ttl))

    def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """:meth:`get_context` for many ids: envelopes in order, None where absent."""
        ids = id_list(context_ids, "context_ids")
        return list(self._ensure(self._context).get_contexts(ids)) if ids else []

    def append_events(self, context_id: str, events: Sequence[JSONDict]) -> list[EventRecord]:
        """Append ``events`` to the context's stream in order; the stored events (ids,
        timestamps), in order."""
        context_id, items = events_args(context_id, events)
        return list(self._ensure(self._events).append_events(context_id, items))

    def write_task_outputs(
        self, outputs: Sequence[Mapping[str, Any] | TaskOutputWrite]
    ) -> list[TaskOutputRecord]:
        """:meth:`write_task_output` for many items, each a dict with the single call's
        argument names (``task_id``, ``output``, optional ``metadata``, ``task_run_id``,
        ``flow_run_id``) or a :class:`TaskOutputWrite`; the stored versions, in order."""
        items = outputs_args(outputs)
        with OUTPUTS_NAMES:
            return list(self._ensure(self._outputs).write_task_outputs(items))

    def write_flow_run_histories(self, runs: Sequence[Mapping[str, Any]]) -> int:
        """:meth:`write_flow_run_history` for many runs, each ``{"flow_id", "run_id",
        "data"}``; two writes of one run merge as if made in order. Returns the count."""
        writes = runs_args(runs)
        if not writes:
            return 0
        with RUNS_NAMES:
            return int(self._ensure(self._history).write_flow_runs(writes))

    def index_embeddings(self, ids: Sequence[str], embeddings: Any,
                         metadata: Sequence[JSONDict | None] | None = None) -> int:
        """:meth:`index_embedding` for many ids at once: ``embeddings`` is a list of
        vectors or an ``(n, dimension)`` array; ``metadata`` one dict (or None) per id.
        Ids must be distinct. Returns the count written."""
        args = embeddings_args(self._vectors, ids, embeddings, metadata)
        if args is None:
            return 0
        with EMBEDDINGS_NAMES:
            return int(self._ensure(self._vectors).upsert(*args))


__all__ = ["BatchCalls"]
