"""Input checks shared by every store and the facade. Each raises
:class:`~memory_resources.errors.MemoryValidationError` naming the argument."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import MemoryValidationError, UnsafeIdentifierError

MAX_ID_LENGTH = 512
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600
"""Longest context TTL: 100 years (longer ones overflow timestamps on some backends)."""
MAX_LOCK_SECONDS = 365 * 24 * 3600
"""Longest lock lease and blocking timeout: one year."""
MAX_LOCK_TTL_MS = MAX_LOCK_SECONDS * 1000
MAX_RETENTION_SECONDS = 1000 * 365 * 24 * 3600
"""Longest retention age (``prune``'s ``older_than``): 1000 years, so the cut-off stays a
date every backend can hold."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:\-/]{0,128}")


def require_id(value: Any, field: str) -> str:
    """A non-empty string id of at most 512 characters without NUL. Any other character
    (spaces, ``*``, ``{}``, quotes, unicode) is allowed: ids are data, never syntax."""
    if not isinstance(value, str):
        raise MemoryValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise MemoryValidationError(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise MemoryValidationError(field, f"is {len(value)} characters; at most {MAX_ID_LENGTH}")
    if "\x00" in value:
        raise MemoryValidationError(field, "must not contain NUL characters")
    return require_utf8(value, field)


def require_utf8(value: str, field: str) -> str:
    """``value`` unless it holds a lone surrogate, which no backend can store as UTF-8 text
    (checked only for non-ASCII text, so the common case costs one C scan)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MemoryValidationError(
                field, "must be valid UTF-8 text (it contains a lone surrogate)") from None
    return value


def optional_text(value: Any, field: str) -> str | None:
    """None, or a string without NUL (SQL text cannot hold it) that is valid UTF-8."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MemoryValidationError(field, f"must be a string or None, got {type(value).__name__}")
    if "\x00" in value:
        raise MemoryValidationError(field, "must not contain NUL characters",
                                    hint="SQL text columns cannot store \\u0000")
    return require_utf8(value, field)


def optional_id(value: Any, field: str) -> str | None:
    """None, or an id as :func:`require_id` accepts it."""
    return None if value is None else require_id(value, field)


def require_dict(value: Any, field: str) -> dict[str, Any]:
    """A mapping with string keys (returned as a new dict). A plain ``dict`` with plain
    ``str`` keys, the common case, is checked without the ``Mapping`` ABC lookup."""
    if type(value) is dict:
        for key in value:
            if type(key) is not str:
                break
        else:
            return value.copy()
    if not isinstance(value, Mapping):
        raise MemoryValidationError(field, f"must be a dict, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise MemoryValidationError(
                field, f"keys must be strings, got {type(key).__name__} key {key!r}"
            )
    return dict(value)


def optional_dict(value: Any, field: str) -> dict[str, Any]:
    """None (→ ``{}``) or a mapping with string keys."""
    return {} if value is None else require_dict(value, field)


def require_ttl(value: Any, field: str = "ttl") -> int | None:
    """None (no expiry) or a whole number of seconds from 1 to :data:`MAX_TTL_SECONDS`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise MemoryValidationError(
                field, f"must be a whole number of seconds or None, got {value!r}"
            )
    if value <= 0:
        raise MemoryValidationError(field, f"must be > 0 seconds, got {value}",
                                    hint="use None for no expiry")
    if value > MAX_TTL_SECONDS:
        raise MemoryValidationError(field, f"must be <= {MAX_TTL_SECONDS} seconds (100 years), "
                                    f"got {value}", hint="use None for no expiry")
    return int(value)


def require_positive_int(value: Any, field: str, *, maximum: int | None = None) -> int:
    """A whole number >= 1 (and <= ``maximum``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MemoryValidationError(field, f"must be an integer >= 1, got {value!r}")
    if value <= 0:
        raise MemoryValidationError(field, f"must be >= 1, got {value}")
    if maximum is not None and value > maximum:
        raise MemoryValidationError(field, f"must be <= {maximum}, got {value}")
    return value


def require_bytes(value: Any, field: str) -> bytes:
    """Bytes (``bytes``, ``bytearray`` or ``memoryview``), returned as ``bytes``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise MemoryValidationError(field, f"must be bytes, got {type(value).__name__}")


def require_positive_seconds(value: Any, field: str, *, allow_zero: bool = False,
                             maximum: float = MAX_LOCK_SECONDS) -> float:
    """A finite number of seconds > 0 (or >= 0 with ``allow_zero``), at most ``maximum``
    (default one year)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MemoryValidationError(field, f"must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise MemoryValidationError(field, f"must be {'>=' if allow_zero else '>'} 0, got {value}")
    if value > maximum:
        raise MemoryValidationError(field, f"must be <= {maximum:g} seconds, got {value}")
    return float(value)


def require_age(value: Any, field: str = "older_than") -> float:
    """A retention age (a timedelta or seconds) as seconds: finite, > 0, at most
    ``MAX_RETENTION_SECONDS``."""
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MemoryValidationError(field, f"must be a timedelta or seconds, got "
                                    f"{type(value).__name__}")
    return require_positive_seconds(value, field, maximum=MAX_RETENTION_SECONDS)


def require_identifier(value: Any, field: str) -> str:
    """A SQL identifier (schema, table prefix, namespace): letters, digits and ``_``,
    starting with a letter or ``_``, at most 63 characters."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise UnsafeIdentifierError(
            field,
            f"{value!r} is not a safe identifier",
            hint="use letters, digits and _ only, starting with a letter or _, max 63 chars",
        )
    return value


def require_key_prefix(value: Any, field: str = "key_prefix") -> str:
    """A Redis key prefix: letters, digits and ``_ . : - /``, at most 128 characters."""
    if not isinstance(value, str) or not _KEY_PREFIX.fullmatch(value):
        raise UnsafeIdentifierError(
            field,
            f"{value!r} is not a safe key prefix",
            hint="use letters, digits and _ . : - / only, at most 128 characters",
        )
    return value


def require_schema(value: Any, field: str = "schema") -> str:
    """A PostgreSQL schema name: a safe identifier that is not a system schema
    (``information_schema``, ``pg_catalog``, ``pg_toast`` or any other ``pg_*``)."""
    name = require_identifier(value, field)
    lowered = name.lower()
    if lowered == "information_schema" or lowered.startswith("pg_"):
        raise UnsafeIdentifierError(
            field, f"{name!r} is a PostgreSQL system schema",
            hint="use a schema of your own, e.g. public or memory_resources")
    return name
