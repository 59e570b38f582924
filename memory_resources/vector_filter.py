"""Metadata filters of vector queries: parsing, validation and evaluation.

A filter is a dict over top-level metadata keys, combined with AND::

    {"type": "document"}                      # equality (same as {"$eq": ...})
    {"lang": {"$in": ["en", "de"]}}           # $eq $ne $in $nin
    {"year": {"$gte": 2020, "$lt": 2025}}     # numeric $gt $gte $lt $lte (several = AND)

:func:`parse_filter` validates a filter and returns its backend-neutral form, a list of
:class:`Condition` ``(key, op, operand)`` with ``op`` one of :data:`OPERATORS` (bare values
become ``$eq``) — a backend compiles that list (SQL for pgvector, a numpy mask here).

Semantics every backend follows:

* Operands of ``$eq``/``$ne`` and the items of ``$in``/``$nin`` are JSON scalars (string,
  number, bool, null). Numbers compare by value (``1 == 1.0``); a bool never equals a
  number; ``null`` matches a stored ``null``.
* ``$ne`` and ``$nin`` also match vectors that lack the key (MongoDB semantics).
* ``$gt/$gte/$lt/$lte`` take a finite number and match only stored numbers (not bools).
* A key that **no stored vector of the namespace carries** is a validation error (a typo
  must not silently return nothing). A query on an empty namespace returns ``[]``.
* An unknown operator, a bad operand, an empty key or a non-dict filter raises
  :class:`~memory_resources.errors.MemoryValidationError` whose ``field`` names the key,
  e.g. ``filter['year']``.

:class:`MetadataColumns` keeps row-aligned columns of the stored metadata so that
:func:`evaluate_mask` builds the boolean row mask with numpy (no Python loop per row).
:func:`matches` evaluates one metadata dict, for backends that filter record by record.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .errors import MemoryValidationError

OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte")
NUMERIC_OPERATORS = ("$gt", "$gte", "$lt", "$lte")

Scalar = str | int | float | bool | None

# Kind codes of a stored metadata value (per row, per key).
MISSING, NULL, BOOL, NUMBER, STRING, OTHER = 0, 1, 2, 3, 4, 5


class Condition(NamedTuple):
    """One parsed condition: ``metadata[key] <op> operand``."""

    key: str
    op: str
    operand: Any
    """A scalar; a tuple of scalars for ``$in``/``$nin``; a float for numeric operators."""


def _field(key: str, field: str) -> str:
    return f"{field}[{key!r}]"


def _require_scalar(value: Any, where: str, op: str) -> Scalar:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise MemoryValidationError(where, f"{op} operand must be finite, got {value!r}")
        return value
    raise MemoryValidationError(
        where, f"{op} operand must be a string, number, bool or null, "
        f"got {type(value).__name__}"
    )


def _parse_operator(key: str, op: Any, operand: Any, where: str) -> Condition:
    if op not in OPERATORS:
        raise MemoryValidationError(
            where, f"unknown operator {op!r}", hint=f"use one of {', '.join(OPERATORS)}"
        )
    if op in ("$eq", "$ne"):
        return Condition(key, op, _require_scalar(operand, where, op))
    if op in ("$in", "$nin"):
        if isinstance(operand, (str, bytes, Mapping)) or not isinstance(
            operand, (list, tuple, set, frozenset)
        ):
            raise MemoryValidationError(
                where, f"{op} operand must be a list of values, got {type(operand).__name__}"
            )
        return Condition(key, op, tuple(_require_scalar(item, where, op) for item in operand))
    if isinstance(operand, bool) or not isinstance(operand, (int, float)) or not math.isfinite(
        operand
    ):
        raise MemoryValidationError(where, f"{op} operand must be a finite number, got {operand!r}")
    return Condition(key, op, operand)


def parse_filter(filter: Mapping[str, Any] | None, field: str = "filter") -> list[Condition]:
    """Validate ``filter`` and return its conditions (``[]`` for None or ``{}``)."""
    if filter is None:
        return []
    if not isinstance(filter, Mapping):
        raise MemoryValidationError(field, f"must be a dict, got {type(filter).__name__}")
    conditions: list[Condition] = []
    for key, spec in filter.items():
        if not isinstance(key, str) or not key:
            raise MemoryValidationError(field, f"keys must be non-empty strings, got {key!r}")
        where = _field(key, field)
        if key.startswith("$"):
            raise MemoryValidationError(
                where, "top-level operators are not supported; keys are metadata keys",
                hint="several keys are combined with AND",
            )
        if isinstance(spec, Mapping):
            if not spec:
                raise MemoryValidationError(where, "operator dict must not be empty")
            for op, operand in spec.items():
                conditions.append(_parse_operator(key, op, operand, where))
        else:
            conditions.append(Condition(key, "$eq", _require_scalar(spec, where, "$eq")))
    return conditions


def kind_of(value: Any) -> int:
    """The kind code of a stored metadata value."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return OTHER


def _equal(stored: Any, operand: Scalar) -> bool:
    kind = kind_of(operand)
    return kind_of(stored) == kind and (kind == NULL or bool(stored == operand))


def matches(conditions: Iterable[Condition], metadata: Mapping[str, Any]) -> bool:
    """Whether one metadata dict satisfies every condition."""
    for key, op, operand in conditions:
        present = key in metadata
        value = metadata.get(key)
        if op == "$eq":
            ok = present and _equal(value, operand)
        elif op == "$ne":
            ok = not (present and _equal(value, operand))
        elif op == "$in":
            ok = present and any(_equal(value, item) for item in operand)
        elif op == "$nin":
            ok = not (present and any(_equal(value, item) for item in operand))
        else:
            if not present or kind_of(value) != NUMBER:
                return False
            ok = {"$gt": value > operand, "$gte": value >= operand,
                  "$lt": value < operand, "$lte": value <= operand}[op]
        if not ok:
            return False
    return True


class _Column:
    """Row-aligned values of one metadata key."""

    __slots__ = ("count", "kinds", "numbers", "values")

    def __init__(self, capacity: int) -> None:
        self.values = np.empty(capacity, dtype=object)
        self.kinds = np.zeros(capacity, dtype=np.int8)
        self.numbers = np.full(capacity, np.nan, dtype=np.float64)
        self.count = 0

    def grow(self, capacity: int, rows: int) -> None:
        values = np.empty(capacity, dtype=object)
        values[:rows] = self.values[:rows]
        kinds = np.zeros(capacity, dtype=np.int8)
        kinds[:rows] = self.kinds[:rows]
        numbers = np.full(capacity, np.nan, dtype=np.float64)
        numbers[:rows] = self.numbers[:rows]
        self.values, self.kinds, self.numbers = values, kinds, numbers


class MetadataColumns:
    """Columns of the stored metadata, aligned with the rows of a vector matrix.

    The owner calls :meth:`set_row` when a row is written, :meth:`move_row` when it moves
    a row (swap-with-last delete) and :meth:`clear_row` when a row is vacated.
    """

    def __init__(self, capacity: int = 0) -> None:
        self._capacity = capacity
        self._columns: dict[str, _Column] = {}

    def keys(self) -> set[str]:
        """Keys carried by at least one stored row."""
        return set(self._columns)

    def reserve(self, capacity: int, rows: int) -> None:
        """Make room for ``capacity`` rows, keeping the first ``rows``."""
        if capacity > self._capacity:
            for column in self._columns.values():
                column.grow(capacity, rows)
            self._capacity = capacity

    def clear_row(self, row: int) -> None:
        """Forget every value of ``row``."""
        for key in list(self._columns):
            column = self._columns[key]
            if column.kinds[row] != MISSING:
                column.kinds[row] = MISSING
                column.values[row] = None
                column.numbers[row] = np.nan
                column.count -= 1
                if column.count == 0:
                    del self._columns[key]

    def set_row(self, row: int, metadata: Mapping[str, Any], *, fresh: bool = False) -> None:
        """Replace ``row``'s values by ``metadata`` (``fresh``: the row is known empty)."""
        if not fresh:
            self.clear_row(row)
        for key, value in metadata.items():
            column = self._columns.get(key)
            if column is None:
                column = self._columns[key] = _Column(self._capacity)
            kind = kind_of(value)
            if kind == STRING:
                value = sys.intern(value)  # repeated values (tags, types) share one object
            column.kinds[row] = kind
            column.values[row] = value
            if kind == NUMBER:
                try:
                    column.numbers[row] = float(value)
                except OverflowError:  # an int beyond float64: compare as +-inf
                    column.numbers[row] = math.inf if value > 0 else -math.inf
            column.count += 1

    def move_row(self, source: int, target: int) -> None:
        """Move ``source``'s values onto ``target`` (which must be cleared first)."""
        for column in self._columns.values():
            column.kinds[target] = column.kinds[source]
            column.values[target] = column.values[source]
            column.numbers[target] = column.numbers[source]
            column.kinds[source] = MISSING
            column.values[source] = None
            column.numbers[source] = np.nan

    def column(self, key: str) -> _Column | None:
        """The column of ``key``, or None if no row carries it."""
        return self._columns.get(key)


def _equal_mask(column: _Column, rows: int, operand: Scalar) -> np.ndarray[Any, Any]:
    kinds = column.kinds[:rows]
    kind = kind_of(operand)
    if kind == NULL:
        return np.asarray(kinds == NULL)
    mask = np.asarray(kinds == kind)
    index = np.flatnonzero(mask)
    if index.size:
        mask[index] = column.values[index] == operand
    return mask


def _member_mask(column: _Column, rows: int, items: tuple[Scalar, ...]) -> np.ndarray[Any, Any]:
    if len(items) <= 4:
        mask = np.zeros(rows, dtype=bool)
        for item in items:
            mask |= _equal_mask(column, rows, item)
        return mask
    kinds = column.kinds[:rows]
    mask = np.zeros(rows, dtype=bool)
    by_kind: dict[int, set[Any]] = {}
    for item in items:
        by_kind.setdefault(kind_of(item), set()).add(item)
    for kind, wanted in by_kind.items():
        index = np.flatnonzero(kinds == kind)
        if kind == NULL:
            mask[index] = True
        elif index.size:
            values = column.values[index]
            mask[index] = np.fromiter((v in wanted for v in values), dtype=bool,
                                      count=index.size)
    return mask


def evaluate_mask(
    conditions: Iterable[Condition], columns: MetadataColumns, rows: int, *,
    field: str = "filter",
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """The boolean mask of the first ``rows`` rows that satisfy every condition.

    Raises :class:`MemoryValidationError` for a key no stored row carries (see the module
    docstring); callers skip the call when ``rows == 0``.
    """
    mask = np.ones(rows, dtype=bool)
    for key, op, operand in conditions:
        column = columns.column(key)
        if column is None:
            raise MemoryValidationError(
                _field(key, field), "no stored vector in this namespace has this metadata key",
                hint="check the key's spelling",
            )
        if op == "$eq":
            mask &= _equal_mask(column, rows, operand)
        elif op == "$ne":
            mask &= ~_equal_mask(column, rows, operand)
        elif op == "$in":
            mask &= _member_mask(column, rows, operand)
        elif op == "$nin":
            mask &= ~_member_mask(column, rows, operand)
        else:
            numbers = column.numbers[:rows]
            with np.errstate(invalid="ignore"):
                if op == "$gt":
                    mask &= numbers > operand
                elif op == "$gte":
                    mask &= numbers >= operand
                elif op == "$lt":
                    mask &= numbers < operand
                else:
                    mask &= numbers <= operand
    return mask


__all__ = [
    "NUMERIC_OPERATORS",
    "OPERATORS",
    "Condition",
    "MetadataColumns",
    "evaluate_mask",
    "kind_of",
    "matches",
    "parse_filter",
]
