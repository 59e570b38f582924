"""Result blobs: bytes by path under ``{key_prefix}result:`` (Prefect result storage).

The store's client decodes replies to text; blob reads ask redis-py not to decode
(``NEVER_DECODE``), so any bytes round-trip on the same pooled connections.
"""

from __future__ import annotations

from typing import Any

from redis.client import NEVER_DECODE

from ...validation import require_bytes, require_id


def blob_key(prefix: str, path: str) -> str:
    """The key of ``path`` (hash-tagged by the whole path, so one slot per blob)."""
    return f"{prefix}result:{{{require_id(path, 'path')}}}"


def read_blob(client: Any, prefix: str, path: str) -> bytes | None:
    """``GET`` without decoding."""
    value = client.execute_command("GET", blob_key(prefix, path), **{NEVER_DECODE: True})
    return None if value is None else bytes(value)


def write_blob(client: Any, prefix: str, path: str, content: Any) -> None:
    """``SET`` the bytes."""
    client.set(blob_key(prefix, path), require_bytes(content, "content"))


def delete_blob(client: Any, prefix: str, path: str) -> bool:
    """``DEL``; False if nothing was stored."""
    return bool(client.delete(blob_key(prefix, path)))
