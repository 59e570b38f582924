"""The JSON codec for stored values.

Plain JSON values (dict, list, str, int, float, bool, None) are stored as they are, so a
stored context or output reads naturally in ``psql`` or ``redis-cli``. Other common types
are stored as a tagged object ``{"__type__": NAME, "value": ...}`` and decoded back to the
same type: ``datetime``, ``date``, ``time``, ``UUID``, ``Decimal``, ``bytes``, ``set``,
``frozenset`` and numpy arrays. Some types are stored one way only (decoded as plain JSON):
numpy scalars (as numbers), tuples (as lists), pydantic models and dataclasses (as dicts),
enums (as their value), paths (as strings).

Anything else is refused with :class:`~memory_resources.errors.SerializationError` naming
where the bad value sits, e.g. ``output["items"][3]: object of type socket``.

**Any JSON value reads back as written.** A user dict cannot be mistaken for a tag: in
user dicts a key made of zero or more ``~`` followed by ``__type__`` is stored with one
more ``~`` (``{"__type__": "set", "value": [1]}`` is stored as
``{"~__type__": "set", "value": [1]}``) and the ``~`` is removed again on decode. Values
are limited to :data:`MAX_DEPTH` levels of nesting (:class:`~memory_resources.errors.
DepthLimitError`), so whatever was written can be decoded in any call stack.

Decoding is lenient about tags: a tagged object whose value does not decode (e.g.
``{"__type__": "datetime", "value": "zzz"}`` written by hand or, as a user dict, by a
version before the escaping) is returned as the plain dict it is. Text that is not JSON
(or nested too deeply for Python to parse) raises ``ValueError``; the stores turn that into
:class:`~memory_resources.errors.CorruptRecordError` naming the row.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
import pathlib
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from json.encoder import (  # type: ignore[attr-defined]
    _make_iterencode,
    c_make_encoder,
    encode_basestring,
)
from json.scanner import make_scanner
from typing import Any

import numpy as np

from .errors import DepthLimitError, PayloadTooLargeError, SerializationError

TAG = "__type__"
ESCAPE = "~"
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
"""Default limit of one encoded value: 1 MiB."""
MAX_DEPTH = 256
"""Most levels of nesting (dicts and lists) one value may have; the top level counts 1."""


class _Tags(threading.local):
    """How many tags :func:`_default` made during this thread's current encode."""

    made = 0


_TAGS = _Tags()


def _tag(name: str, value: Any) -> dict[str, Any]:
    _TAGS.made += 1
    return {TAG: name, "value": value}


def _is_tag_key(key: Any) -> bool:
    """``__type__`` behind zero or more ``~``: the user keys that are escaped."""
    return isinstance(key, str) and key.endswith(TAG) and not key[:-len(TAG)].strip(ESCAPE)


def _encode_ndarray(array: np.ndarray[Any, Any]) -> dict[str, Any]:
    if array.dtype.kind not in "biufc" or array.dtype.hasobject:
        raise TypeError(f"numpy array of dtype {array.dtype}")
    contiguous = np.ascontiguousarray(array)
    return _tag(
        "ndarray",
        {
            "dtype": contiguous.dtype.str,
            "shape": list(contiguous.shape),
            "data": base64.b64encode(contiguous.tobytes()).decode("ascii"),
        },
    )


def _default(value: Any) -> Any:
    """Map a non-JSON value to a JSON one (``json.dumps``'s ``default`` hook)."""
    if isinstance(value, dt.datetime):
        return _tag("datetime", value.isoformat())
    if isinstance(value, dt.date):
        return _tag("date", value.isoformat())
    if isinstance(value, dt.time):
        return _tag("time", value.isoformat())
    if isinstance(value, uuid.UUID):
        return _tag("uuid", str(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite Decimal {value}")
        return _tag("decimal", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _tag("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, frozenset):
        return _tag("frozenset", _sorted_if_possible(value))
    if isinstance(value, set):
        return _tag("set", _sorted_if_possible(value))
    if isinstance(value, np.ndarray):
        return _encode_ndarray(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, pathlib.PurePath):
        return str(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return model_dump(mode="python")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"object of type {type(value).__name__}")


def _sorted_if_possible(items: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        return list(items)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "bytes": lambda v: base64.b64decode(v),
    "set": set,
    "frozenset": frozenset,
    "ndarray": lambda v: np.frombuffer(base64.b64decode(v["data"]), dtype=np.dtype(v["dtype"]))
    .reshape(v["shape"])
    .copy(),
}


def _object_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 2 and TAG in obj and "value" in obj:
        decoder = _DECODERS.get(obj[TAG])
        if decoder is not None:
            try:
                return decoder(obj["value"])
            except Exception:  # a malformed tag is data as written (see the module doc)
                return obj
    return obj


def _unescaping_hook(obj: dict[str, Any]) -> Any:
    """:func:`_object_hook` for text holding escaped keys: ``~__type__`` -> ``__type__``."""
    if TAG in obj:
        return _object_hook(obj)
    if any(_is_tag_key(key) for key in obj):
        return {key[1:] if _is_tag_key(key) else key: item for key, item in obj.items()}
    return obj


def stored_key(key: str) -> str:
    """How a user dict key is spelled in stored JSON (``__type__`` -> ``~__type__``), for
    queries that look inside stored objects (e.g. JSONB containment filters)."""
    return ESCAPE + key if _is_tag_key(key) else key


def _escape(value: Any) -> Any:
    """A copy of ``value`` with the tag-like keys of user dicts escaped (see the module doc);
    objects the codec converts are converted here, so the tags it makes stay tags."""
    if isinstance(value, (str, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {ESCAPE + key if _is_tag_key(key) else key: _escape(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape(item) for item in value]
    converted = _default(value)
    if isinstance(value, _TAGGED_TYPES):
        return converted  # a codec tag (set/frozenset members are hashable: no dict inside)
    return _escape(converted)  # a model, dataclass, enum...: user data, escaped too


_TAGGED_TYPES = (dt.date, dt.time, uuid.UUID, Decimal, bytes, bytearray, memoryview, set,
                 frozenset, np.ndarray)
"""Types :func:`_default` stores as a tag (``datetime`` is a ``date``)."""


def _find_bad_path(value: Any, path: str, seen: set[int]) -> tuple[str, str] | None:
    """Walk ``value`` the way the encoder does and return (path, problem) of the first bad part."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"non-finite float {value}")
    if id(value) in seen:
        return (path, "circular reference")
    if isinstance(value, Mapping):
        seen.add(id(value))
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return (path, f"dict key of type {type(key).__name__} (keys must be strings)")
            found = _find_bad_path(item, f"{path}[{key!r}]", seen)
            if found:
                return found
        seen.discard(id(value))
        return None
    if isinstance(value, (list, tuple)):
        seen.add(id(value))
        for index, item in enumerate(value):
            found = _find_bad_path(item, f"{path}[{index}]", seen)
            if found:
                return found
        seen.discard(id(value))
        return None
    try:
        converted = _default(value)
    except (TypeError, ValueError) as exc:
        return (path, str(exc))
    if isinstance(converted, dict) and converted.get(TAG) in ("set", "frozenset"):
        return _find_bad_path(converted["value"], path, seen)
    if isinstance(converted, dict) and TAG not in converted:
        return _find_bad_path(converted, path, seen)
    return None


_ENCODER = json.JSONEncoder(default=_default, allow_nan=False, ensure_ascii=False,
                            separators=(",", ":"))
"""Built once (``json.dumps`` with these options builds an encoder on every call)."""


def _make_c_encoder() -> Callable[[Any, int], Any] | None:
    """The C encoder ``_ENCODER.encode`` builds on every call, built once. Without a
    markers dict it keeps no state between calls (thread-safe); a circular value then
    ends in RecursionError, which :func:`encode` reports as a circular reference."""
    if c_make_encoder is None:  # no C accelerator (e.g. PyPy)
        return None
    try:
        return c_make_encoder(  # type: ignore[no-any-return]
            None, _default, encode_basestring, None, ":", ",", False, False, False)
    except TypeError:  # a Python whose C encoder takes other arguments
        return None


_C_ENCODE = _make_c_encoder()


def _to_text(value: Any) -> str:
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


def encode(
    value: Any,
    *,
    field: str = "value",
    max_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    reject_nul: bool = False,
    jsonb: bool = False,
) -> str:
    """Encode ``value`` to JSON text, or raise naming ``field`` and the bad path.

    ``max_bytes`` bounds the UTF-8 size of the result (``None``: no limit). ``reject_nul``
    refuses NUL characters in strings (PostgreSQL's JSONB cannot store ``\\u0000``).
    ``jsonb`` prepares text for a PostgreSQL JSONB column: NUL refused, and floats of 1e16
    and more written positionally (``1e+16`` -> ``10000000000000000.0``) so that JSONB's
    numeric type gives them back as floats, not ints.
    """
    _TAGS.made = 0
    try:
        text = _to_text(value)
    except RecursionError:
        raise _nesting_error(value, field) from None
    except (TypeError, ValueError) as exc:
        try:
            found = _find_bad_path(value, field, set())
        except RecursionError:
            raise _nesting_error(value, field) from None
        path, problem = found if found else (field, str(exc))
        raise SerializationError(
            field, path, problem, hint="store JSON-compatible data or a supported type"
        ) from None
    if len(text) > MAX_DEPTH and text.count("{") + text.count("[") > MAX_DEPTH and (
            _deeper_than(value, MAX_DEPTH)):
        raise _nesting_error(value, field)
    if TAG in text and text.count(TAG) != _TAGS.made:
        value = _escape(value)  # a user dict has a tag-like key (or a string mentions one)
        text = _to_text(value)
    if jsonb:
        reject_nul = True
        if "e+" in text and _BIG_FLOAT.search(text):
            text = _positional_text(value)
    if reject_nul and "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise SerializationError(
            field, _find_text_path(value, field, _has_nul) or field,
            "contains a NUL character (\\u0000), which PostgreSQL JSONB cannot store",
            hint="remove NUL characters or store the text as bytes",
        )
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise SerializationError(
                field, _find_text_path(value, field, _not_utf8) or field,
                "contains a string that is not valid UTF-8 (a lone surrogate)",
                hint="decode bytes with errors='replace' or store them as bytes",
            ) from None
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLargeError(field, size, max_bytes)
    return text


_BIG_FLOAT = re.compile(r"[0-9]e\+[0-9]")
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""A JSON ``\\u0000`` escape (an even run of backslashes before it: ``\\\\u0000`` is the
text backslash-u0000, not a NUL)."""
_CONTAINERS = frozenset((dict, list, tuple))


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value``'s dicts/lists nest more than ``limit`` levels (breadth first, one
    comprehension per level: the walk costs ~30 ns per item and runs only for values with
    more than ``limit`` containers)."""
    level = [value]
    for _ in range(limit):
        level = [item for container in level
                 for item in (container.values() if type(container) is dict else container)
                 if type(item) in _CONTAINERS]
        if not level:
            return False
    return True


def _nesting_error(value: Any, field: str) -> SerializationError:
    """The error of a value the encoder could not descend: too deep, or circular."""
    stack: list[tuple[Any, str, int]] = [(value, field, 1)]
    on_path: list[int] = []
    while stack:
        item, path, depth = stack.pop()
        del on_path[depth - 1:]
        if isinstance(item, Mapping):
            children: Any = ((f"{path}[{k!r}]", v) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            children = ((f"{path}[{i}]", v) for i, v in enumerate(item))
        else:
            continue
        if id(item) in on_path:
            return SerializationError(field, path, "circular reference",
                                      hint="store JSON-compatible data or a supported type")
        if depth > MAX_DEPTH:
            shown = path if len(path) <= 80 else f"{path[:50]}...{path[-24:]}"
            return DepthLimitError(field, shown, MAX_DEPTH)
        on_path.append(id(item))
        stack.extend((child, child_path, depth + 1) for child_path, child in children)
    return DepthLimitError(field, field, MAX_DEPTH)


def _positional_float(number: float) -> str:
    if number != number or number in (math.inf, -math.inf):
        raise ValueError(f"non-finite float {number}")
    text = float.__repr__(number)
    if "e+" not in text:
        return text
    return format(Decimal(text), "f") + ".0"


_POSITIONAL_ITERENCODE = _make_iterencode(
    None, _default, encode_basestring, None, _positional_float, ":", ",", False, False, True)


def _positional_text(value: Any) -> str:
    """``value`` encoded with big floats written positionally (pure Python: rare path)."""
    return "".join(_POSITIONAL_ITERENCODE(value, 0))


def raw_text(value: Any, *, jsonb: bool = False) -> str:
    """Plain JSON text of an already encoded-then-parsed value (no escaping, no tags
    made): for code that merges stored JSON objects key by key. ``jsonb`` as in
    :func:`encode`."""
    text = _to_text(value)
    if jsonb and "e+" in text and _BIG_FLOAT.search(text):
        text = _positional_text(value)
    return text


def _has_nul(text: str) -> bool:
    return "\x00" in text


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _find_text_path(value: Any, path: str, bad: Callable[[str], bool]) -> str | None:
    """The path of the first string (key or value) in ``value`` for which ``bad`` holds."""
    if isinstance(value, str):
        return path if bad(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and bad(key):
                return f"{path}[{key!r}]"
            found = _find_text_path(item, f"{path}[{key!r}]", bad)
            if found:
                return found
    if isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            found = _find_text_path(item, f"{path}[{index}]", bad)
            if found:
                return found
    return None


_DECODER = json.JSONDecoder(object_hook=_object_hook)
"""Built once: ``json.loads(..., object_hook=...)`` would build a decoder on every call."""
_UNESCAPING_DECODER = json.JSONDecoder(object_hook=_unescaping_hook)
_ESCAPED_KEY = ESCAPE + TAG

_SCAN_PLAIN: Callable[[str, int], tuple[Any, int]] = make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]  # typeshed types the argument oddly
"""The C scanner without the tag hook, for text that cannot hold a tagged value."""


def decode(text: str | bytes | bytearray) -> Any:
    """Decode JSON text written by :func:`encode`, restoring tagged types and escaped keys.

    Text that cannot contain a tagged object (no ``"__type__"`` literal and no ``\\u``
    escape that could spell one) is scanned without the per-object hook; anything else
    (tags, whitespace around the value, invalid JSON) takes the full decoder, which returns
    or raises exactly as ``json.loads`` would. Text nested too deeply for Python to parse
    raises ``ValueError`` too (never ``RecursionError``).
    """
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8")
    if TAG not in text and "\\u" not in text:
        try:
            value, end = _SCAN_PLAIN(text, 0)
        except StopIteration:
            return _DECODER.decode(text)  # raises the JSONDecodeError json.loads would
        except RecursionError:
            raise ValueError("JSON nested too deeply to decode") from None
        except ValueError:
            return _DECODER.decode(text)
        if end == len(text):
            return value
    decoder = _UNESCAPING_DECODER if _ESCAPED_KEY in text or "\\u" in text else _DECODER
    try:
        return decoder.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None


def to_jsonable(value: Any, *, field: str = "value", max_bytes: int | None = None) -> Any:
    """Return the plain-JSON form of ``value`` (tagged types stay tagged)."""
    return json.loads(encode(value, field=field, max_bytes=max_bytes))


def from_jsonable(value: Any) -> Any:
    """Restore tagged types and escaped keys inside an already parsed JSON value."""
    if isinstance(value, dict):
        restored = {key: from_jsonable(item) for key, item in value.items()}
        return _unescaping_hook(restored)
    if isinstance(value, list):
        return [from_jsonable(item) for item in value]
    return value


__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_DEPTH",
    "decode",
    "encode",
    "from_jsonable",
    "raw_text",
    "stored_key",
    "to_jsonable",
]
