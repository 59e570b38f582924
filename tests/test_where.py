"""The WHERE-clause builder shared by the SQLite and PostgreSQL read methods."""

from __future__ import annotations

from typing import Any

import pytest

from memory_resources.errors import MemoryValidationError
from memory_resources.stores.where import Where
from memory_resources.validation import require_id


def _upper(value: Any, field: str) -> str:
    return f"{field}:{str(value).upper()}"


def test_no_filter_is_no_where() -> None:
    """With every value None nothing is added: no clause, no parameter."""
    where = Where(named=True)
    where.add("a", None, require_id)
    assert (where.sql(), where.sql("AND"), where.params, where.values) == ("", "", {}, [])


def test_qmark_clauses_in_order_with_checked_values() -> None:
    """``?`` placeholders, AND-ed in the order added, values converted by their check."""
    where = Where(named=False)
    where.add("flow_id", "f", _upper)
    where.add("skipped", None, _upper)
    where.add("since", "t", _upper, column="created_at", op=">=")
    assert where.sql() == " WHERE flow_id = ? AND created_at >= ?"
    assert where.values == ["flow_id:F", "since:T"]


def test_named_clauses_continue_an_existing_where() -> None:
    """``%(name)s`` placeholders keyed by name; ``lead="AND"`` extends a WHERE."""
    where = Where(named=True)
    where.add("status", "ok", require_id, column="h.status")
    where.add("until", "x", _upper, column="h.created_at", op="<")
    assert where.sql("AND") == " AND h.status = %(status)s AND h.created_at < %(until)s"
    assert where.params == {"status": "ok", "until": "until:X"}


def test_text_depends_only_on_which_filters_are_set() -> None:
    """Different values give the same SQL text (prepared statements are keyed by it)."""
    texts = set()
    for value in ("a", "b'; DROP TABLE x; --", "ü"):
        where = Where(named=True)
        where.add("target", value, require_id)
        texts.add(where.sql())
    assert texts == {" WHERE target = %(target)s"}


def test_check_errors_propagate_naming_the_field() -> None:
    """A value the check refuses raises its error, naming the filter."""
    with pytest.raises(MemoryValidationError) as info:
        Where(named=False).add("operation", "", require_id)
    assert info.value.field == "operation"
