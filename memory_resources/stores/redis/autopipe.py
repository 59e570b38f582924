"""Automatic pipelining for ``redis.asyncio``: the commands that coroutines issue in one
event-loop iteration travel as one pipeline.

With 64 coroutines each awaiting a ``GET``, ``redis.asyncio`` borrows up to 64 connections
and makes 64 writes and 64 reads; here the first command of an iteration schedules a flush
for the next iteration, the others join it, and the flush writes all of them in one packed
request on one pooled connection and reads the replies in order. Each caller gets its own
reply or error (a Redis error reply fails only its command). A connection or timeout error
is retried (``retries`` times with ``backoff``, the store's policy for single commands) for
the commands not answered yet, on a fresh connection; what still fails is raised to each
of their callers. Replies are raw (no response callbacks): callers parse them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions as rex

_Item = tuple[tuple[Any, ...], "asyncio.Future[Any]"]

MAX_BATCH = 512
"""Commands per packed write; a larger burst is split into several round trips."""


class AutoPipeline:
    """Batches the commands of one loop iteration onto one connection of ``client``."""

    def __init__(self, client: Any, *, retries: int = 0, backoff: Any = None) -> None:
        self.client = client
        self.pool = client.connection_pool
        self.retries = retries
        self.backoff = backoff
        self._pending: list[_Item] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command; the future resolves with its raw reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((args, future))
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), MAX_BATCH):
            task = asyncio.ensure_future(self._send(batch[start:start + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Item]) -> None:
        try:
            conn = await self.pool.get_connection()
        except BaseException as exc:
            _fail(batch, exc)
            return
        try:
            left = [item for item in batch if not item[1].done()]
            if not left:
                return
            failures = 0
            while True:
                try:
                    await self._roundtrip(conn, left)
                    return
                except (rex.ConnectionError, rex.TimeoutError, OSError) as exc:
                    await conn.disconnect()
                    left = [item for item in left if not item[1].done()]
                    failures += 1
                    if failures > self.retries or not left:
                        _fail(left, exc)
                        return
                    if self.backoff is not None:
                        await asyncio.sleep(self.backoff.compute(failures))
        except BaseException as exc:
            await conn.disconnect()
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            await self.pool.release(conn)

    @staticmethod
    async def _roundtrip(conn: Any, items: list[_Item]) -> None:
        await conn.send_packed_command(conn.pack_commands([args for args, _ in items]),
                                       check_health=False)
        for _, future in items:
            try:
                reply = await conn.read_response()
            except rex.ResponseError as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(reply)


def _fail(items: list[_Item], exc: BaseException) -> None:
    for _, future in items:
        if future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)


__all__ = ["MAX_BATCH", "AutoPipeline"]
