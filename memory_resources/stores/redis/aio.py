"""``AsyncRedisStore``: the Redis backend on ``redis.asyncio``, a second transport of
:class:`~memory_resources.stores.redis.store.RedisStore`.

Everything but the I/O is the sync store's: key layout (:class:`KeySpace`), the Lua scripts'
text, input validation and encoding (:func:`prepare_context`, :func:`prepare_event`,
:func:`event_range`), script arguments, record building and error translation. Commands
issued by many coroutines in one loop iteration go out as one pipeline
(:class:`~memory_resources.stores.redis.autopipe.AutoPipeline`). Multi-master Redlock
(``lock_nodes``), ``health_check`` and ``stats`` run the sync store's code on a worker
thread (:class:`~memory_resources.stores.offload.ThreadOffload`), so they too stay off the
event loop without a second implementation.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis.asyncio as aredis
import redis.exceptions as rex
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff

from ...clock import SYSTEM_CLOCK, Clock
from ...config import RedisConfig, parse_config
from ...errors import ConfigurationError, MemoryValidationError
from ...records import ContextRecord, EventRecord, HealthReport, JSONDict
from ...validation import require_id, require_positive_int
from ..offload import ThreadOffload
from . import client as clients
from . import scripts as lua
from .autopipe import AutoPipeline
from .errors import CAUGHT, translate
from .keys import KeySpace
from .retrying import retryable
from .store import (
    RedisStore,
    _context_record,
    _event_args,
    _event_record,
    _parse_envelope,
    _parse_event,
    _scrub_url,
    _set_args,
    event_range,
    prepare_context,
    prepare_event,
)
from .timefmt import iso_utc, iso_utc_and_later


def _backoff(config: RedisConfig) -> ExponentialBackoff:
    """The sync store's backoff (:class:`~.retrying.RetryPolicy`): capped at
    ``min(1 s, socket_timeout)``."""
    cap = min(1.0, config.socket_timeout)
    return ExponentialBackoff(cap=cap, base=min(0.05, cap))


def _async_kwargs(config: RedisConfig) -> dict[str, Any]:
    """The sync client's connection options with an asyncio ``Retry`` (same policy)."""
    kwargs = clients.connection_kwargs(config)
    kwargs["retry"] = AsyncRetry(_backoff(config), config.retry_attempts,
                                 is_retryable=retryable)  # never auth/NOPERM
    return kwargs


def build_async_client(config: RedisConfig) -> Any:
    """A pooled ``redis.asyncio.Redis`` (or ``RedisCluster`` when ``cluster=True``)."""
    kwargs = _async_kwargs(config)
    url = config.url or f"{'rediss' if config.ssl else 'redis'}://{config.host}:{config.port}"
    if config.ssl and url.startswith("redis://"):
        url = "rediss://" + url[len("redis://"):]
    if not url.startswith("rediss://"):
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ssl_")}
    if config.cluster:
        return AsyncRedisCluster.from_url(url, require_full_coverage=True, **kwargs)
    if config.url is None:
        kwargs["db"] = config.db
    pool = aredis.BlockingConnectionPool.from_url(
        url, max_connections=config.max_connections, timeout=config.connection_timeout,
        **kwargs)
    return aredis.Redis(connection_pool=pool)


class AsyncRedisStore:
    """Context, events and lock primitives on Redis for coroutines (``backend_name``
    ``"redis"``): every method of :class:`RedisStore` that touches Redis, awaitable, with
    the same arguments, records and typed errors."""

    backend_name = "redis"

    def __init__(self, config: RedisConfig | Mapping[str, Any], *,
                 clock: Clock = SYSTEM_CLOCK, auto_pipeline: bool = True) -> None:
        self.config: RedisConfig = parse_config(RedisConfig, config if isinstance(
            config, RedisConfig) else dict(config), "redis_config")
        self.clock = clock
        self.keys = KeySpace(self.config.key_prefix)
        self.auto_pipeline = auto_pipeline and not self.config.cluster
        password = self.config.password.get_secret_value() if self.config.password else ""
        self._secrets = (password,) if password else ()
        self._client: Any = None
        self._pipe: AutoPipeline | None = None
        self._companion: ThreadOffload | None = None
        self._open_lock: asyncio.Lock | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def _sync(self) -> ThreadOffload:
        """The sync store on worker threads (monitoring, multi-node Redlock)."""
        if self._companion is None:
            self._companion = ThreadOffload(RedisStore(self.config, clock=self.clock),
                                            max_workers=2)
        return self._companion

    def _open(self) -> Any:
        client = self._client
        if client is None:
            try:
                client = build_async_client(self.config)
            except ValueError as exc:  # redis-py refusing a URL
                raise ConfigurationError(f"redis_config['url']: {_scrub_url(str(exc))}"
                                         ) from None
            self._client = client
            self._pipe = AutoPipeline(client, retries=self.config.retry_attempts,
                                      backoff=_backoff(self.config)
                                      ) if self.auto_pipeline else None
        return client

    @property
    def client(self) -> Any:
        """The ``redis.asyncio`` client, built on demand."""
        return self._open()

    async def connect(self) -> None:
        """Build the pool and PING the server. Idempotent."""
        client = self._open()
        try:
            await client.ping()
        except CAUGHT as exc:
            raise translate(exc, self._secrets, where="connect") from exc

    async def close(self) -> None:
        """Close the pool (and the monitoring companion). Idempotent; reconnects on use."""
        client, self._client, self._pipe = self._client, None, None
        companion, self._companion = self._companion, None
        if client is not None:
            try:
                await client.aclose()
                pool = getattr(client, "connection_pool", None)
                if pool is not None:
                    await pool.disconnect()
            except CAUGHT:
                pass  # closing must not fail on a dead server
        if companion is not None:
            await companion.close()

    async def health_check(self) -> HealthReport:
        """The sync store's report (PING, version, role, lock nodes), off the loop."""
        return await self._sync().health_check()

    async def stats(self) -> JSONDict:
        """The sync store's statistics, off the loop."""
        return await self._sync().stats()

    async def __aenter__(self) -> AsyncRedisStore:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- commands --------------------------------------------------------------------------

    async def _send(self, *args: Any) -> Any:
        """One command, pipelined with the others of this loop iteration when enabled."""
        client = self._open()
        pipe = self._pipe
        if pipe is not None:
            return await pipe.execute(*args)
        return await client.execute_command(*args)

    async def _command(self, *args: Any) -> Any:
        try:
            return await self._send(*args)
        except CAUGHT as exc:
            raise translate(exc, self._secrets) from exc

    async def _script(self, source: str, keys: tuple[str, ...], args: Sequence[Any]) -> Any:
        """``EVALSHA`` of ``source``; ``EVAL`` once when the server lost it (``NOSCRIPT``)."""
        try:
            try:
                return await self._send("EVALSHA", _sha(source), len(keys), *keys, *args)
            except rex.NoScriptError:
                return await self._send("EVAL", source, len(keys), *keys, *args)
        except CAUGHT as exc:
            raise translate(exc, self._secrets) from exc

    # -- context ---------------------------------------------------------------------------

    async def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                          ) -> ContextRecord:
        """See :meth:`RedisStore.set_context`."""
        keys, payload, seconds = prepare_context(self.keys, self.config, context_id, data, ttl)
        updated_at, expires_at = iso_utc_and_later(self.clock.time(), seconds)
        reply = await self._script(lua.SET_CONTEXT, keys,
                                   _set_args(context_id, payload, seconds, updated_at,
                                             expires_at))
        return _context_record(context_id, payload, seconds, updated_at, expires_at, reply)

    async def get_context(self, context_id: str) -> ContextRecord | None:
        """See :meth:`RedisStore.get_context`."""
        key = self.keys.checked_pair(context_id, "context_id")[0]
        raw = await self._command("GET", key)
        return None if raw is None else _parse_envelope(raw)

    async def clear_context(self, context_id: str) -> bool:
        """See :meth:`RedisStore.clear_context`."""
        keys = self.keys.checked_pair(context_id, "context_id")
        return int(await self._script(lua.CLEAR_CONTEXT, keys, ())) > 0

    async def set_contexts(self, items: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
                           ttl: int | None = None) -> list[ContextRecord]:
        """See :meth:`RedisStore.set_contexts` (validated first; one pipelined batch)."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        prepared = []
        seconds = None
        for index, pair in enumerate(pairs):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise MemoryValidationError(f"items[{index}]", "must be a (context_id, data) pair")
            keys, payload, seconds = prepare_context(self.keys, self.config, pair[0], pair[1],
                                                     ttl)
            prepared.append((pair[0], keys, payload))
        updated_at, expires_at = iso_utc_and_later(self.clock.time(), seconds)
        replies = await asyncio.gather(*(
            self._script(lua.SET_CONTEXT, keys,
                         _set_args(cid, payload, seconds, updated_at, expires_at))
            for cid, keys, payload in prepared))
        return [_context_record(cid, payload, seconds, updated_at, expires_at, reply)
                for (cid, _, payload), reply in zip(prepared, replies, strict=True)]

    async def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """See :meth:`RedisStore.get_contexts`."""
        if isinstance(context_ids, str) or not isinstance(context_ids, Sequence):
            raise MemoryValidationError("context_ids", "must be a sequence of context ids")
        keys = [self.keys.context(require_id(cid, f"context_ids[{i}]"))
                for i, cid in enumerate(context_ids)]
        raws = await asyncio.gather(*(self._command("GET", key) for key in keys))
        return [None if raw is None else _parse_envelope(raw) for raw in raws]

    # -- events ----------------------------------------------------------------------------

    async def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        """See :meth:`RedisStore.append_event`."""
        keys, payload = prepare_event(self.keys, self.config, context_id, event)
        timestamp = iso_utc(self.clock.time())
        event_id = await self._script(lua.APPEND_EVENT, keys,
                                      _event_args(self.config, payload, timestamp))
        return _event_record(context_id, event_id, timestamp, payload)

    async def get_events(self, context_id: str, since: str | None = None,
                         limit: int | None = None) -> list[EventRecord]:
        """See :meth:`RedisStore.get_events`."""
        cid, start, count = event_range(context_id, since, limit)
        args: tuple[Any, ...] = ("XRANGE", self.keys.events(cid), start, "+")
        if count is not None:
            args += ("COUNT", count)
        entries = await self._command(*args)
        return [_parse_event(cid, entry_id, _fields(flat)) for entry_id, flat in entries]

    # -- lock primitives -------------------------------------------------------------------

    async def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """See :meth:`RedisStore.try_acquire`."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        require_positive_int(ttl_ms, "ttl_ms")
        if self.config.lock_nodes:
            return await self._sync().try_acquire(name, owner, ttl_ms)
        token = await self._script(lua.ACQUIRE, self.keys.lock_pair(name), (owner, ttl_ms))
        return None if token is None else int(token)

    async def release(self, name: str, owner: str) -> bool:
        """See :meth:`RedisStore.release`."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        if self.config.lock_nodes:
            return await self._sync().release(name, owner)
        return bool(await self._script(lua.RELEASE, self.keys.lock_pair(name)[:1], (owner,)))

    async def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """See :meth:`RedisStore.extend`."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        require_positive_int(ttl_ms, "ttl_ms")
        if self.config.lock_nodes:
            return await self._sync().extend(name, owner, ttl_ms)
        return bool(await self._script(lua.EXTEND, self.keys.lock_pair(name)[:1],
                                       (owner, ttl_ms)))

    def __repr__(self) -> str:
        return "Async" + repr(RedisStore(self.config))


_SHAS: dict[str, str] = {}


def _sha(source: str) -> str:
    sha = _SHAS.get(source)
    if sha is None:
        sha = _SHAS[source] = hashlib.sha1(source.encode("utf-8")).hexdigest()
    return sha


def _fields(flat: Any) -> Mapping[str, str]:
    """A stream entry's fields from a raw ``XRANGE`` reply (a flat list or a dict)."""
    if isinstance(flat, Mapping):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


__all__ = ["AsyncRedisStore", "build_async_client"]


def from_sync(store: RedisStore, clock: Clock) -> AsyncRedisStore:
    """The async transport of a sync :class:`RedisStore` (same config and clock)."""
    return AsyncRedisStore(store.config, clock=clock)
