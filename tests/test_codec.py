"""The codec: what round-trips, what is stored one way, what is refused and where."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from pydantic import BaseModel

from memory_resources import codec
from memory_resources.errors import DepthLimitError, PayloadTooLargeError, SerializationError
from tests.json_strategies import json_values, same

ROUND_TRIPS: list[Any] = [
    {"plain": [1, 2.5, "x", True, None]},
    dt.datetime(2026, 1, 31, 12, 0, 1, 5, tzinfo=dt.timezone.utc),
    dt.date(2026, 2, 1),
    dt.time(7, 30),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Decimal("1.10"),
    b"\x00\xffbytes",
    {1, 2, 3},
    frozenset({"a"}),
    {"nested": {"when": dt.date(2025, 5, 5), "tags": {"x"}}},
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_supported_values_round_trip(value: Any) -> None:
    """Each supported type decodes back to an equal value of the same type."""
    decoded = codec.decode(codec.encode(value))
    assert decoded == value and type(decoded) is type(value)


def test_numpy_arrays_round_trip_with_dtype_and_shape() -> None:
    """numpy arrays come back with their dtype, shape and values."""
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    decoded = codec.decode(codec.encode({"a": array}))["a"]
    assert decoded.dtype == np.float32 and decoded.shape == (3, 4)
    assert np.array_equal(decoded, array)


def test_one_way_types_are_stored_as_plain_json() -> None:
    """numpy scalars, tuples, pydantic models and dataclasses decode as plain JSON."""

    class Model(BaseModel):
        name: str

    @dataclasses.dataclass
    class Point:
        x: int

    value = {"n": np.int64(3), "f": np.float32(0.5), "t": (1, 2), "m": Model(name="a"),
             "p": Point(4)}
    assert codec.decode(codec.encode(value)) == {"n": 3, "f": 0.5, "t": [1, 2],
                                                 "m": {"name": "a"}, "p": {"x": 4}}


def test_unsupported_value_is_refused_with_its_path() -> None:
    """A non-serialisable value names the argument and where it sits."""
    with socket.socket() as sock, pytest.raises(SerializationError) as info:
        codec.encode({"items": [1, 2, 3, sock]}, field="output")
    assert info.value.field == "output"
    assert str(info.value).startswith("output['items'][3]: object of type socket")


def test_nan_and_circular_values_are_refused() -> None:
    """NaN and a reference cycle are refused with their path."""
    with pytest.raises(SerializationError, match=r"data\['x'\]: non-finite float nan"):
        codec.encode({"x": float("nan")}, field="data")
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="circular reference"):
        codec.encode({"loop": loop}, field="data")


def test_payload_limit_counts_utf8_bytes() -> None:
    """The limit applies to the encoded UTF-8 size; just under it passes."""
    text = "é" * 100  # 200 bytes in UTF-8, 202 with the quotes
    assert codec.encode(text, max_bytes=202)
    with pytest.raises(PayloadTooLargeError) as info:
        codec.encode(text, field="data", max_bytes=201)
    assert info.value.size == 202 and info.value.limit == 201


def test_nul_characters_are_refused_only_when_asked() -> None:
    """reject_nul refuses NUL in keys or values (naming the path); by default NUL is kept."""
    assert codec.decode(codec.encode({"a": "x\x00y"})) == {"a": "x\x00y"}
    with pytest.raises(SerializationError, match=r"data\['a'\]\[1\]"):
        codec.encode({"a": ["ok", "x\x00y"]}, field="data", reject_nul=True)


@pytest.mark.parametrize("text", [
    '{"a":1}',
    ' {"a": [1, 2]} ',
    '{"k":{"__type__":"set","value":[1]}}',
    '{"k":{"\\u005f_type__":"set","value":[1]}}',
    '"plain string"',
    "[]",
])
def test_decode_matches_json_with_the_tag_hook(text: str) -> None:
    """decode (with its fast path for untagged text) equals json.loads with the tag hook."""
    assert codec.decode(text) == json.loads(text, object_hook=codec._object_hook)


@pytest.mark.parametrize("text", ['{"a":1} trailing', '{"a":', ""])
def test_invalid_json_raises_like_json(text: str) -> None:
    """Invalid or trailing text raises ValueError as json.loads does."""
    with pytest.raises(ValueError):
        codec.decode(text)


def test_bytes_input_is_decoded() -> None:
    """decode accepts bytes as stored by drivers."""
    assert codec.decode(b'{"a":{"__type__":"uuid","value":"12345678-1234-5678-1234-567812345678"}}'
                        ) == {"a": uuid.UUID("12345678-1234-5678-1234-567812345678")}


def test_lone_surrogate_is_a_serialization_error_naming_its_path() -> None:
    """A string no backend can store as UTF-8 (a lone surrogate) is refused with the path
    of the first offending key or value; valid non-ASCII text passes and is sized in
    UTF-8 bytes."""
    with pytest.raises(SerializationError) as info:
        codec.encode({"a": ["fine ü", "bad \ud800"]}, field="output")
    assert info.value.path == "output['a'][1]" and info.value.field == "output"
    with pytest.raises(SerializationError) as info:
        codec.encode({"k\udfff": 1}, field="data")
    assert info.value.path.startswith("data[")
    assert codec.encode({"ü": "€"}, field="data", max_bytes=16) == '{"ü":"€"}'
    with pytest.raises(PayloadTooLargeError):
        codec.encode({"ü": "€" * 5}, field="data", max_bytes=16)


TAG_SHAPED: list[Any] = [
    {"__type__": "datetime", "value": "zzz"},
    {"__type__": "set", "value": [1, 2]},
    {"__type__": "ndarray", "value": {"dtype": "<f8", "shape": [2], "data": "AAAA"}},
    {"__type__": "uuid", "value": "12345678-1234-5678-1234-567812345678"},
    {"__type__": "nope"},
    {"~__type__": "set", "value": [1]},
    {"__type__": 1, "~__type__": 2, "~~__type__": 3, "value": 4},
    {"outer": [{"__type__": "bytes", "value": "AA=="}, {"x": {1, 2}}]},
]


@pytest.mark.parametrize("value", TAG_SHAPED, ids=range(len(TAG_SHAPED)))
def test_tag_shaped_user_dicts_read_back_as_written(value: Any) -> None:
    """A user dict shaped like a codec tag (any tag name, well- or malformed, escaped-looking
    keys) decodes to exactly the dict written, never to the tagged type."""
    decoded = codec.decode(codec.encode(value))
    assert decoded == value
    assert codec.from_jsonable(json.loads(codec.encode(value))) == value


def test_escaping_is_visible_only_in_the_stored_text() -> None:
    """The stored text escapes the user's key with one ``~`` and leaves real tags alone."""
    text = codec.encode({"u": {"__type__": "set", "value": [1]}, "t": {1}})
    assert json.loads(text) == {"u": {"~__type__": "set", "value": [1]},
                                "t": {"__type__": "set", "value": [1]}}


def test_malformed_tag_written_by_hand_decodes_as_the_plain_dict() -> None:
    """A tag whose value cannot be decoded (an older version's user dict, or a hand edit)
    reads back as the dict it is instead of raising."""
    for text in ('{"__type__":"datetime","value":"zzz"}',
                 '{"a":{"__type__":"decimal","value":"x"}}',
                 '{"__type__":"ndarray","value":{"dtype":"<f8","shape":[5],"data":"AA=="}}'):
        assert codec.decode(text) == json.loads(text)


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for index in range(depth):
        value = [value] if index % 2 else {"k": value}
    return value


def test_depth_limit_is_a_typed_error_naming_the_field() -> None:
    """Values deeper than MAX_DEPTH (including ~1,000 and 100,000 levels, which overflow the
    C encoder) raise DepthLimitError, a SerializationError; MAX_DEPTH itself passes."""
    assert codec.decode(codec.encode(_nested(codec.MAX_DEPTH))) == _nested(codec.MAX_DEPTH)
    for depth in (codec.MAX_DEPTH + 1, 1_000, 100_000):
        with pytest.raises(DepthLimitError) as info:
            codec.encode({"deep": _nested(depth)}, field="data")
        assert info.value.field == "data" and info.value.limit == codec.MAX_DEPTH
        assert isinstance(info.value, SerializationError)


def test_wide_values_are_not_mistaken_for_deep_ones() -> None:
    """Thousands of sibling containers (more openers than MAX_DEPTH) are fine."""
    wide = {"items": [{"i": i, "tags": [str(i)]} for i in range(2_000)]}
    assert codec.decode(codec.encode(wide, max_bytes=None)) == wide


def test_text_too_deep_to_parse_raises_value_error_not_recursion_error() -> None:
    """Hand-written JSON nested beyond Python's recursion raises ValueError (stores turn it
    into CorruptRecordError), never RecursionError."""
    for text in ("[" * 100_000 + "]" * 100_000,
                 '{"__type__":' + "[" * 100_000 + "]" * 100_000 + "}"):
        with pytest.raises(ValueError, match="nested too deeply"):
            codec.decode(text)


@pytest.mark.parametrize("number", [1e16, 1.5e16, -2.5e20, 1e308, 5e-324, 1e-300, 0.1])
def test_jsonb_text_keeps_big_floats_floats(number: float) -> None:
    """With jsonb=True, floats >= 1e16 are written positionally (JSONB's numeric would turn
    ``1e+16`` into the integer 10000000000000000); every float decodes back exactly."""
    text = codec.encode({"x": number, "s": "1e+16"}, jsonb=True)
    assert "e+" not in text.replace('"1e+16"', "")
    decoded = codec.decode(text)
    assert decoded == {"x": number, "s": "1e+16"} and type(decoded["x"]) is float


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_value_round_trips_exactly(value: Any) -> None:
    """Property: any JSON value (tag-shaped dicts, escaped-looking keys, big ints, every
    float) decodes to the same value with the same types, also from JSONB-ready text."""
    assert same(codec.decode(codec.encode(value, max_bytes=None)), value)
    assert same(codec.decode(codec.encode(value, max_bytes=None, jsonb=True)), value)


def test_models_and_dataclasses_with_tag_like_fields_stay_plain_dicts() -> None:
    """A dataclass whose fields spell a tag is user data: it decodes as the plain dict of its
    fields, not as the tagged type; a set holding the string "__type__" stays a set."""

    @dataclasses.dataclass
    class Shaped:
        __type__: str
        value: Any

    value = {"d": Shaped("set", [1]), "s": {"__type__", "x"}}
    assert codec.decode(codec.encode(value)) == {"d": {"__type__": "set", "value": [1]},
                                                 "s": {"__type__", "x"}}
