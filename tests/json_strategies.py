"""Hypothesis strategies for hostile JSON values: nested dicts/lists, big ints, every float,
unicode text and dicts shaped like the codec's tags (``{"__type__": ..., "value": ...}``)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

TAG_NAMES = ["datetime", "date", "time", "uuid", "decimal", "bytes", "set", "frozenset",
             "ndarray", "dict", "unknown", ""]
TAG_KEYS = ["__type__", "~__type__", "~~__type__", "value", "__type", "type"]

text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
               max_size=12)
"""Text every backend stores: no lone surrogates, no NUL (PostgreSQL JSONB refuses both)."""

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(),                      # unbounded: well past 64 bits
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
keys = st.one_of(text, st.sampled_from(TAG_KEYS))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.builds(lambda name, value: {"__type__": name, "value": value},
                  st.sampled_from(TAG_NAMES), children),
        st.builds(lambda name, value, extra: {"__type__": name, "value": value, **extra},
                  st.sampled_from(TAG_NAMES), children,
                  st.dictionaries(st.sampled_from(TAG_KEYS[1:]), children, max_size=2)),
    )


json_values = st.recursive(scalars, _containers, max_leaves=16)
json_objects = st.dictionaries(keys, json_values, max_size=5)
"""What a context, an event or history data can be: a dict at the top."""


def same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (``1 == 1.0`` is not enough);
    ``-0.0`` and ``0.0`` count as the same (PostgreSQL's numeric has no negative zero)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)
