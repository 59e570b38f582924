"""Automatic pipelining for ``redis.asyncio``: the commands that coroutines issue in one
event-loop iteration travel as one pipeline.

With 64 coroutines each awaiting a ``GET``, ``redis.asyncio`` borrows up to 64 connections
and makes 64 writes and 64 reads; here the first command of an iteration schedules a flush
for the next iteration, the others join it, and the flush writes all of them in one packed
request on one pooled connection and reads the replies in order. Each caller gets its own
reply or error (a Redis error reply fails only its command). A failure to connect or send
is marked as "not sent" (:func:`~.retrying.mark_unsent`), a failure while reading fails the
commands not answered yet; the connection is dropped. Retrying is the caller's decision
(:class:`~.retrying.RetryPolicy`: a command that was not sent is retried, one that may have
run only when idempotent). Replies are raw (no response callbacks): callers parse them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions as rex

from .retrying import mark_unsent

_Item = tuple[tuple[Any, ...], "asyncio.Future[Any]"]

MAX_BATCH = 512
"""Commands per packed write; a larger burst is split into several round trips."""
MAX_IN_FLIGHT = 2
"""Batches awaiting their replies at once; commands issued meanwhile wait for the next."""


class AutoPipeline:
    """Batches the commands of one loop iteration onto one connection of ``client``."""

    def __init__(self, client: Any, *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.client = client
        self.pool = client.connection_pool
        self.max_in_flight = max_in_flight
        self._pending: list[_Item] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command; the future resolves with its raw reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, future))
        self._schedule(loop)
        return future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush in the next loop iteration, unless one is due or enough batches are out
        (then the next batch is sent when one of them is answered, with all that queued)."""
        if self._pending and not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), MAX_BATCH):
            self._in_flight += 1
            task = asyncio.ensure_future(self._send(batch[start:start + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        self._schedule(task.get_loop())

    async def _send(self, batch: list[_Item]) -> None:
        conn = None
        try:
            conn = await self.pool.get_connection()
            items = [item for item in batch if not item[1].done()]
            if items:
                await self._roundtrip(conn, items)
        except BaseException as exc:
            if conn is not None:
                await conn.disconnect()
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if conn is not None:
                await self.pool.release(conn)

    @staticmethod
    async def _roundtrip(conn: Any, items: list[_Item]) -> None:
        try:
            await conn.send_packed_command(
                conn.pack_commands([args for args, _ in items]), check_health=False)
        except (rex.ConnectionError, rex.TimeoutError, OSError) as exc:
            raise mark_unsent(exc) from None
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
