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
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
import pathlib
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from json.scanner import make_scanner
from typing import Any

import numpy as np

from .errors import PayloadTooLargeError, SerializationError

TAG = "__type__"
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
"""Default limit of one encoded value: 1 MiB."""


def _tag(name: str, value: Any) -> dict[str, Any]:
    return {TAG: name, "value": value}


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
            return decoder(obj["value"])
    return obj


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
) -> str:
    """Encode ``value`` to JSON text, or raise naming ``field`` and the bad path.

    ``max_bytes`` bounds the UTF-8 size of the result (``None``: no limit). ``reject_nul``
    refuses NUL characters in strings (PostgreSQL's JSONB cannot store ``\\u0000``).
    """
    try:
        text = _to_text(value)
    except (TypeError, ValueError, RecursionError) as exc:
        found = _find_bad_path(value, field, set())
        path, problem = found if found else (field, str(exc))
        raise SerializationError(
            field, path, problem, hint="store JSON-compatible data or a supported type"
        ) from None
    if reject_nul and "\\u0000" in text:
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

_SCAN_PLAIN: Callable[[str, int], tuple[Any, int]] = make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]  # typeshed types the argument oddly
"""The C scanner without the tag hook, for text that cannot hold a tagged value."""


def decode(text: str | bytes | bytearray) -> Any:
    """Decode JSON text written by :func:`encode`, restoring tagged types.

    Text that cannot contain a tagged object (no ``"__type__"`` literal and no ``\\u``
    escape that could spell one) is scanned without the per-object hook; anything else
    (tags, whitespace around the value, invalid JSON) takes the full decoder, which returns
    or raises exactly as ``json.loads`` would.
    """
    if not isinstance(text, str):
        return json.loads(text, object_hook=_object_hook)
    if TAG not in text and "\\u" not in text:
        try:
            value, end = _SCAN_PLAIN(text, 0)
        except (StopIteration, ValueError):
            return _DECODER.decode(text)
        if end == len(text):
            return value
    return _DECODER.decode(text)


def to_jsonable(value: Any, *, field: str = "value", max_bytes: int | None = None) -> Any:
    """Return the plain-JSON form of ``value`` (tagged types stay tagged)."""
    return json.loads(encode(value, field=field, max_bytes=max_bytes))


def from_jsonable(value: Any) -> Any:
    """Restore tagged types inside an already parsed JSON value (e.g. from psycopg2's JSONB)."""
    if isinstance(value, dict):
        restored = {key: from_jsonable(item) for key, item in value.items()}
        return _object_hook(restored)
    if isinstance(value, list):
        return [from_jsonable(item) for item in value]
    return value


__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "decode",
    "encode",
    "from_jsonable",
    "to_jsonable",
]
