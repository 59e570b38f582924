"""Turning stored rows into records without letting one bad row break a read.

Every store decodes its rows through :func:`build_records`. The common case costs one
list comprehension; only when a row fails to decode does it walk the rows one by one and
raise :class:`~memory_resources.errors.CorruptRecordError` naming the bad row (table, key
and column). A listing keeps its other rows: the error's ``records`` holds every row that
decoded, in order, and ``corrupt`` one error per bad row.

Drivers that decode JSON themselves (psycopg2's JSONB typecaster) use
:func:`decode_or_mark`, which never raises inside the driver: an undecodable value becomes
an :class:`Undecodable` marker, and :func:`build_records` reports its row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .codec import decode
from .errors import CorruptRecordError

RecordT = TypeVar("RecordT")
Row = Sequence[Any]


class Undecodable:
    """Stands in for a stored JSON value that could not be decoded."""

    __slots__ = ("counted", "problem", "text")

    def __init__(self, text: str, problem: str) -> None:
        self.text = text
        self.problem = problem
        self.counted = True

    def __repr__(self) -> str:
        return f"<undecodable stored value: {self.problem}>"


class _Seen(threading.local):
    """Markers made in this thread that no :func:`build_records` has reported yet (asyncpg
    decodes in the event loop's thread, psycopg2 in the caller's: the build that follows
    runs in the same thread, so a count of zero means no row can hold a marker)."""

    pending = 0


_SEEN = _Seen()


def decode_or_mark(text: str | bytes | bytearray) -> Any:
    """:func:`~memory_resources.codec.decode`, or an :class:`Undecodable` marker (for a
    driver's typecaster, which must not raise in the middle of a result set)."""
    try:
        return decode(text)
    except ValueError as exc:
        _SEEN.pending += 1
        shown = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
        return Undecodable(shown[:200], str(exc)[:200])


def build_records(
    rows: Sequence[Row],
    build: Callable[[Row], RecordT],
    *,
    backend: str,
    table: str,
    key: Callable[[Row], str],
    columns: Mapping[str, int],
) -> list[RecordT]:
    """``[build(row) for row in rows]``, or :class:`CorruptRecordError` naming the bad rows.

    ``key`` names a row (e.g. its id); ``columns`` maps the JSON column names to their
    index in the row, to tell which column is bad.
    """
    if _SEEN.pending <= 0:
        try:
            return [build(row) for row in rows]
        except (ValueError, TypeError, KeyError):
            pass
    good: list[RecordT] = []
    bad: list[CorruptRecordError] = []
    for row in rows:
        problem = _marked(row, columns)
        if problem is None:
            try:
                good.append(build(row))
                continue
            except CorruptRecordError as exc:  # ``build`` named the row itself
                bad.append(exc)
                continue
            except (ValueError, TypeError, KeyError) as exc:
                problem = _find_problem(row, columns) or ("row", f"{type(exc).__name__}: {exc}")
        bad.append(CorruptRecordError(backend, table, _safe_key(key, row), *problem))
    if not bad:
        return good
    if len(rows) == 1:
        raise bad[0]
    raise CorruptRecordError.listing(bad, good)


def _marked(row: Row, columns: Mapping[str, int]) -> tuple[str, str] | None:
    """The first marked column of ``row``; every marker in it is counted as reported."""
    found = None
    for field, index in columns.items():
        value = row[index]
        if isinstance(value, Undecodable):
            if value.counted:
                value.counted = False
                _SEEN.pending -= 1
            found = found or (field, value.problem)
    return found


def _find_problem(row: Row, columns: Mapping[str, int]) -> tuple[str, str] | None:
    for field, index in columns.items():
        value = row[index]
        if isinstance(value, (str, bytes, bytearray)):
            try:
                decode(value)
            except ValueError as exc:
                return field, str(exc)[:200]
    return None


def _safe_key(key: Callable[[Row], str], row: Row) -> str:
    try:
        return key(row)
    except Exception:  # naming the row must not hide the error itself
        return "?"


__all__ = ["Undecodable", "build_records", "decode_or_mark"]
