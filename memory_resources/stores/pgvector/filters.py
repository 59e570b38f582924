"""Compile a parsed metadata filter (:mod:`memory_resources.vector_filter`) to SQL on JSONB.

The SQL follows the semantics documented in :mod:`memory_resources.vector_filter` exactly:

* ``$eq`` is ``metadata @> {"key": value}``: for a scalar operand JSONB containment is type-
  strict equality (``1`` matches ``1.0``, ``true`` never matches ``1``, ``null`` matches a
  stored ``null``, an array never matches a scalar) and it can use the GIN index.
* ``$in`` is containment of any of the items; ``$ne``/``$nin`` are their negation, so rows
  without the key match them.
* ``$gt/$gte/$lt/$lte`` compare only stored numbers (``jsonb_typeof = 'number'``; JSONB
  orders numbers by value), never booleans or strings.

Keys and operands are always bound parameters, never SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from psycopg2 import sql

from ...codec import stored_key
from ...errors import MemoryValidationError
from ...vector_filter import Condition

_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _contains(key: str, value: Any) -> str:
    """The JSONB text ``{"key": value}`` used with ``@>``."""
    return json.dumps({key: value}, allow_nan=False, ensure_ascii=False)


def _storable(value: Any) -> bool:
    """False for a string with NUL: no stored value can equal it (JSONB cannot hold NUL)."""
    return not (isinstance(value, str) and "\x00" in value)


def compile_filter(conditions: Sequence[Condition]) -> tuple[sql.Composable | None, list[Any]]:
    """A ``WHERE`` expression (AND of every condition) and its positional parameters, or
    ``(None, [])`` when there are no conditions."""
    if not conditions:
        return None, []
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for key, op, operand in conditions:
        if "\x00" in key:  # stored metadata never holds NUL (JSONB cannot)
            raise MemoryValidationError(
                f"filter[{key!r}]", "no stored vector in this namespace has this metadata key",
                hint="metadata keys cannot contain NUL characters",
            )
        key = stored_key(key)  # a tag-like key is stored escaped (see codec)
        if op in ("$eq", "$ne") and not _storable(operand):
            parts.append(sql.SQL("FALSE" if op == "$eq" else "TRUE"))
            continue
        if op in ("$in", "$nin"):
            operand = tuple(item for item in operand if _storable(item))
        if op == "$eq":
            parts.append(sql.SQL("metadata @> %s::jsonb"))
            params.append(_contains(key, operand))
        elif op == "$ne":
            parts.append(sql.SQL("NOT (metadata @> %s::jsonb)"))
            params.append(_contains(key, operand))
        elif op in ("$in", "$nin"):
            items = [_contains(key, item) for item in operand]
            clause = sql.SQL("metadata @> ANY (%s::jsonb[])")
            parts.append(clause if op == "$in" else sql.SQL("NOT ({})").format(clause))
            params.append(items)
        elif op in _COMPARISONS:
            parts.append(
                sql.SQL("(jsonb_typeof(metadata -> %s) = 'number' AND metadata -> %s {} %s::jsonb)")
                .format(sql.SQL(_COMPARISONS[op]))
            )
            params.extend([key, key, json.dumps(operand, allow_nan=False)])
        else:  # parse_filter only produces the operators above
            raise AssertionError(f"unsupported filter operator {op!r}")
    return sql.SQL(" AND ").join(parts), params


def filter_keys(conditions: Sequence[Condition]) -> list[str]:
    """The distinct metadata keys a filter uses, in first-use order."""
    return list(dict.fromkeys(stored_key(condition.key) for condition in conditions))
