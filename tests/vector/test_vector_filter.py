"""vector_filter.py: parsing, the per-record evaluator and the numpy mask agree."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_resources.errors import MemoryValidationError
from memory_resources.vector_filter import (
    Condition,
    MetadataColumns,
    evaluate_mask,
    matches,
    parse_filter,
)


def test_parse_returns_conditions_in_order() -> None:
    """Bare values become $eq; operator dicts become one condition per operator."""
    assert parse_filter({"a": 1, "b": {"$gte": 2, "$lt": 5}, "c": {"$in": ["x", None]}}) == [
        Condition("a", "$eq", 1), Condition("b", "$gte", 2), Condition("b", "$lt", 5),
        Condition("c", "$in", ("x", None)),
    ]
    assert parse_filter(None) == [] and parse_filter({}) == []


@pytest.mark.parametrize(
    ("flt", "field", "words"),
    [
        ({"k": {"$like": "x"}}, "filter['k']", "unknown operator '$like'"),
        ({"k": {"$gt": True}}, "filter['k']", "finite number"),
        ({"k": {"$gte": float("inf")}}, "filter['k']", "finite number"),
        ({"k": {"$in": "abc"}}, "filter['k']", "list of values"),
        ({"k": {"$nin": [{"x": 1}]}}, "filter['k']", "string, number, bool or null"),
        ({"k": {"$ne": float("nan")}}, "filter['k']", "finite"),
        ({"k": {"a": 1}}, "filter['k']", "unknown operator 'a'"),
        ({"": 1}, "filter", "non-empty"),
        ({1: 1}, "filter", "non-empty strings"),
        ({"$and": []}, "filter['$and']", "top-level operators"),
        ([("k", 1)], "filter", "must be a dict"),
    ],
)
def test_parse_errors_name_the_key(flt: Any, field: str, words: str) -> None:
    """Unknown operators and bad operands raise MemoryValidationError naming the key."""
    with pytest.raises(MemoryValidationError) as info:
        parse_filter(flt)
    assert info.value.field == field and words in str(info.value)


def test_missing_key_is_an_error_only_for_the_mask() -> None:
    """evaluate_mask refuses a key no row carries; matches() just returns False for $eq."""
    columns = MetadataColumns(4)
    columns.set_row(0, {"a": 1})
    with pytest.raises(MemoryValidationError, match="no stored vector"):
        evaluate_mask(parse_filter({"b": 1}), columns, 1)
    assert not matches(parse_filter({"b": 1}), {"a": 1})
    assert matches(parse_filter({"b": {"$ne": 1}}), {"a": 1})


def test_columns_follow_moves_and_clears() -> None:
    """move_row/clear_row keep the columns aligned and drop keys no row carries."""
    columns = MetadataColumns(3)
    columns.set_row(0, {"a": "x"})
    columns.set_row(1, {"a": "y", "b": 2})
    columns.clear_row(0)
    columns.move_row(1, 0)
    assert evaluate_mask(parse_filter({"a": "y", "b": 2}), columns, 1).tolist() == [True]
    columns.clear_row(0)
    assert columns.keys() == set()


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([0.5, 1.0, -2.5]),
    st.sampled_from(["a", "b", "c"]),
)
VALUES = st.one_of(SCALARS, st.lists(st.integers(0, 2), max_size=2))
METADATA = st.dictionaries(st.sampled_from(["k", "m", "n"]), VALUES, max_size=3)
OPERATIONS = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), SCALARS),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(SCALARS, max_size=6)),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
              st.one_of(st.integers(-5, 5), st.floats(-5, 5))),
)
FILTERS = st.dictionaries(
    st.sampled_from(["k", "m", "n"]),
    st.one_of(SCALARS, OPERATIONS.map(lambda op: {op[0]: op[1]})),
    min_size=1, max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(METADATA, min_size=1, max_size=12), flt=FILTERS)
def test_mask_agrees_with_per_record_evaluation(rows: list[dict[str, Any]],
                                                flt: dict[str, Any]) -> None:
    """For random metadata and filters, the numpy mask equals matches() row by row."""
    conditions = parse_filter(flt)
    columns = MetadataColumns(len(rows))
    for i, meta in enumerate(rows):
        columns.set_row(i, meta)
    carried = {key for meta in rows for key in meta}
    if any(c.key not in carried for c in conditions):
        with pytest.raises(MemoryValidationError):
            evaluate_mask(conditions, columns, len(rows))
        return
    mask = evaluate_mask(conditions, columns, len(rows))
    assert mask.tolist() == [matches(conditions, meta) for meta in rows]
    assert mask.dtype == np.bool_
