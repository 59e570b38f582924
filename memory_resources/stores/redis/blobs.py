"""Result blobs: bytes by path under ``{key_prefix}result:`` (Prefect result storage).

The store's client decodes replies to text; blob reads ask redis-py not to decode
(``NEVER_DECODE``), so any bytes round-trip on the same pooled connections.
"""

from __future__ import annotations

from typing import Any

from redis.client import NEVER_DECODE

from ...validation import require_id


def blob_key(prefix: str, path: str) -> str:
    """The key of ``path`` (hash-tagged by the whole path, so one slot per blob)."""
    return f"{prefix}result:{{{require_id(path, 'path')}}}"


def read_blob(client: Any, key: str) -> bytes | None:
    """``GET`` without decoding."""
    value = client.execute_command("GET", key, **{NEVER_DECODE: True})
    return None if value is None else bytes(value)


def write_blob(client: Any, key: str, content: bytes) -> None:
    """``SET`` the bytes."""
    client.set(key, content)


def delete_blob(client: Any, key: str) -> bool:
    """``DEL``; False if nothing was stored."""
    return bool(client.delete(key))
