"""Shapes of batch inputs, shared by the facade and every store.

A batch call validates every item before it writes anything; an error names the item,
e.g. ``items[3].data: must be a dict`` (the single call's message, prefixed by the item).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import MemoryValidationError, PayloadTooLargeError, SerializationError
from .records import TaskOutputWrite
from .validation import require_id

MAX_BATCH = 100_000
"""Most items one batch call accepts (split larger batches)."""

T = TypeVar("T")
_OUTPUT_KEYS = frozenset(("task_id", "output", "metadata", "task_run_id", "flow_run_id"))


def requalify(exc: MemoryValidationError, field: str) -> MemoryValidationError:
    """``exc`` (same class, problem and hint) reported for ``field``; a serialisation
    error's ``path`` follows when it started with the old field."""
    old = exc.field
    if isinstance(exc, PayloadTooLargeError):
        return PayloadTooLargeError(field, exc.size, exc.limit)
    if isinstance(exc, SerializationError):
        path = exc.path
        if path == old or path.startswith((old + "[", old + ".")):
            path = field + path[len(old):]
        return SerializationError(field, path, exc.problem, hint=exc.hint)
    clone = type(exc).__new__(type(exc))
    clone.__dict__.update(exc.__dict__)
    MemoryValidationError.__init__(clone, field, exc.problem, hint=exc.hint)
    return clone


def prepare_each(items: Sequence[Any], prepare: Callable[[Any], T], field: str) -> list[T]:
    """``prepare(item)`` for every item; the first validation error is re-raised naming
    the item (``field[i].<its field>``, or
    ``field[i]`` for an error about the whole item, raised with an empty field)."""
    prepared: list[T] = []
    try:
        for item in items:
            prepared.append(prepare(item))
    except MemoryValidationError as exc:
        where = f"{field}[{len(prepared)}]"
        raise requalify(exc, f"{where}.{exc.field}" if exc.field else where) from None
    return prepared


def batch_list(value: Any, field: str) -> list[Any]:
    """A list, tuple or other sequence (not a string, bytes or mapping) of at most
    :data:`MAX_BATCH` items, as a list."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, Iterable)):
        raise MemoryValidationError(field, f"must be a list, got {type(value).__name__}")
    items = list(value)
    if len(items) > MAX_BATCH:
        raise MemoryValidationError(field, f"has {len(items)} items; at most {MAX_BATCH}",
                                    hint="split it into several calls")
    return items


def context_pairs(items: Any, field: str = "items") -> list[tuple[Any, Any]]:
    """``{context_id: data}`` or an iterable of ``(context_id, data)`` pairs, as pairs
    (ids and data are checked by the single write's validation)."""
    if isinstance(items, Mapping):
        pairs = list(items.items())
        if len(pairs) > MAX_BATCH:
            batch_list(pairs, field)
        return pairs
    pairs = batch_list(items, field)
    for index, pair in enumerate(pairs):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise MemoryValidationError(f"{field}[{index}]",
                                        "must be a (context_id, data) pair")
    return pairs


def id_list(values: Any, field: str) -> list[str]:
    """A list of ids, each as :func:`~memory_resources.validation.require_id` accepts it."""
    return [require_id(value, f"{field}[{index}]")
            for index, value in enumerate(batch_list(values, field))]


def output_write(item: Any) -> TaskOutputWrite:
    """One task-output item: a :class:`TaskOutputWrite`, or a mapping with the keys of
    ``write_task_output``'s arguments (``task_id`` and ``output`` required)."""
    if isinstance(item, TaskOutputWrite):
        return item
    if not isinstance(item, Mapping):
        raise MemoryValidationError(
            "", f"must be a dict with task_id and output, got {type(item).__name__}")
    unknown = set(item) - _OUTPUT_KEYS
    if unknown:
        raise MemoryValidationError(
            "", f"unknown keys {sorted(map(str, unknown))}",
            hint="use task_id, output, metadata, task_run_id, flow_run_id")
    for key in ("task_id", "output"):
        if key not in item:
            raise MemoryValidationError(key, "is required")
    return TaskOutputWrite(**item)


def output_writes(items: Any, field: str = "items") -> list[TaskOutputWrite]:
    """A batch of task-output items (see :func:`output_write`)."""
    return prepare_each(batch_list(items, field), output_write, field)


__all__ = ["MAX_BATCH", "batch_list", "context_pairs", "id_list", "output_write",
           "output_writes", "prepare_each", "requalify"]
