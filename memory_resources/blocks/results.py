"""Prefect result storage on a memory block: ``read_path`` / ``write_path`` on our stores.

``RedisMemory`` and ``PostgresMemory`` are ``WritableFileSystem`` blocks, so a task or
flow takes them as ``result_storage`` (and so as cache storage): each result record is one
blob (a Redis key under ``{key_prefix}result:``, a ``memory_results`` row), written and
read on the block's pooled store, where prefect-redis's ``RedisDatabase`` opens a client
per call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import NotFoundError


class ResultStorageMixin:
    """``read_path`` / ``write_path`` (sync and async) over the block's store blobs."""

    def get_store(self) -> Any:  # provided by StoreFactoryMixin
        raise NotImplementedError

    def read_path(self, path: str, _sync: bool = True) -> bytes:
        """The bytes stored at ``path``; :class:`NotFoundError` when there are none."""
        content: bytes | None = self.get_store().read_blob(path)
        if content is None:
            raise NotFoundError(f"no result stored at path {path!r}")
        return content

    def write_path(self, path: str, content: bytes, _sync: bool = True) -> str:
        """Store ``content`` at ``path`` (replacing it); returns ``path``."""
        self.get_store().write_blob(path, content)
        return path

    def delete_path(self, path: str) -> bool:
        """Remove ``path``; False if nothing was stored there."""
        return bool(self.get_store().delete_blob(path))

    async def aread_path(self, path: str) -> bytes:
        """:meth:`read_path` off the event loop."""
        return await asyncio.to_thread(self.read_path, path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        """:meth:`write_path` off the event loop."""
        return await asyncio.to_thread(self.write_path, path, content)


__all__ = ["ResultStorageMixin"]
