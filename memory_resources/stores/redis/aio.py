"""``AsyncRedisStore``: the Redis backend on ``redis.asyncio``, a second transport of
:class:`~memory_resources.stores.redis.store.RedisStore`.

Everything but the I/O is shared with the sync store: key layout (:class:`KeySpace`), the
Lua scripts' text, from :mod:`.wire` input validation and encoding, script arguments and
record building, and the deadline, retry decision and error translation. Commands issued by
many coroutines in one loop iteration go out as one pipeline
(:class:`~memory_resources.stores.redis.autopipe.AutoPipeline`; 64 coroutines: 3.2x the
throughput of one command per connection, docs/async.md);
``auto_pipeline=False`` sends each command on its own pooled connection. Multi-master Redlock
(``lock_nodes``), ``health_check`` and ``stats`` run the sync store's code on a worker
thread (:class:`~memory_resources.stores.offload.ThreadOffload`), so they too stay off the
event loop without a second implementation.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aredis
import redis.exceptions as rex
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from ...batching import batch_list, context_pairs, id_list, prepare_each
from ...clock import SYSTEM_CLOCK, Clock
from ...codec import encode
from ...config import RedisConfig, parse_config
from ...errors import ConfigurationError
from ...records import ContextRecord, EventRecord, HealthReport, JSONDict
from ...validation import require_dict, require_id, require_positive_int, require_ttl
from ..offload import ThreadOffload, within
from . import acks as replica
from . import client as clients
from . import scripts as lua
from .autopipe import AutoPipeline
from .errors import CAUGHT
from .keys import KeySpace
from .retrying import AckShortfall
from .sentinel import (
    AsyncBlockingSentinelPool,
    AsyncMasterConnection,
    AsyncMasterSSLConnection,
    AsyncSentinels,
    Recheck,
    node_kwargs,
    sentinel_kwargs,
    sentinel_target,
    uses_tls,
)
from .store import RedisStore
from .timefmt import iso_utc, iso_utc_and_later
from .wire import (
    context_record,
    event_args,
    event_range,
    event_record,
    parse_envelope,
    parse_envelopes,
    parse_events,
    prepare_context,
    prepare_event,
    scrub_url,
    set_args,
)

T = TypeVar("T")


def _async_kwargs(config: RedisConfig) -> dict[str, Any]:
    """The sync client's connection options (timeouts, credentials, TLS); redis-py's own
    retries off (the store's :class:`~.retrying.RetryPolicy` decides, as in the sync store)."""
    kwargs = clients.connection_kwargs(config)
    kwargs["retry"] = AsyncRetry(NoBackoff(), 0)
    return kwargs


def build_async_sentinel(config: RedisConfig) -> aredis.Redis:
    """:func:`.client.build_sentinel` on redis.asyncio: a pooled client on the primary the
    sentinels of the ``sentinel://`` url name (each sentinel asked within
    ``sentinel_timeout``; the store's call deadline bounds the whole)."""
    target = sentinel_target(config)
    tls = clients.tls_kwargs(config) if uses_tls(config, target) else {}
    manager = AsyncSentinels(list(target.sentinels), sentinel_kwargs=sentinel_kwargs(
        config, target, tls, AsyncRetry(NoBackoff(), 0)))
    pool = AsyncBlockingSentinelPool(  # type: ignore[no-untyped-call]
        target.service, manager,
        connection_class=AsyncMasterSSLConnection if tls else AsyncMasterConnection,
        max_connections=config.max_connections, timeout=config.connection_timeout,
        **node_kwargs(_async_kwargs(config), target, tls))
    pool.recheck = Recheck(config.sentinel_check_interval)
    return aredis.Redis(connection_pool=pool)


def build_async_client(config: RedisConfig) -> Any:
    """A pooled ``redis.asyncio.Redis`` (``RedisCluster`` when ``cluster=True``; on the
    sentinels' primary for a ``sentinel://`` url)."""
    if config.sentinel():
        return build_async_sentinel(config)
    kwargs = _async_kwargs(config)
    url = config.url_value() or (
        f"{'rediss' if config.ssl else 'redis'}://{config.host}:{config.port}")
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
        self._secrets = self.config.secret_values()
        self._policy = clients.make_policy(self.config, self._secrets)
        self._acks = replica.from_config(self.config)
        self._stale = False
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
                raise ConfigurationError(f"redis_config['url']: {scrub_url(str(exc))}"
                                         ) from None
            self._client = client
            self._pipe = None if self.config.cluster else AutoPipeline(client)
        return client

    @property
    def client(self) -> Any:
        """The ``redis.asyncio`` client, built on demand."""
        return self._open()

    async def connect(self) -> None:
        """Build the pool and PING the server. Idempotent."""
        client = self._open()
        await self._call("connect", client.ping)

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
                    manager = getattr(pool, "sentinel_manager", None)
                    if manager is not None:
                        await manager.aclose()
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
        if pipe is not None and self.auto_pipeline:
            return await pipe.execute(*args)
        return await client.execute_command(*args)

    async def _call(self, what: str, make: Callable[[], Awaitable[T]], *,
                    idempotent: bool = True) -> T:
        """``make()`` under the sync store's policy: one ``operation_timeout`` deadline for
        every attempt, retries and typed errors decided by :meth:`RetryPolicy.next_delay`."""
        policy = self._policy
        start = time.monotonic()
        limit = start + policy.timeout
        attempts = 0
        while True:
            attempts += 1
            try:
                return await within(make(), limit - time.monotonic())
            except CAUGHT as exc:
                error: BaseException = exc
            await asyncio.sleep(policy.next_delay(
                error, what=what, idempotent=idempotent, attempts=attempts, start=start,
                limit=limit, budget=policy.timeout))

    async def _command(self, what: str, *args: Any, idempotent: bool = True) -> Any:
        return await self._call(what, lambda: self._send(*args), idempotent=idempotent)

    async def _acked(self, what: str, args: tuple[Any, ...], key: str, *,
                     idempotent: bool) -> Any:
        """One write then ``WAIT`` in the same round trip (``replica_acks``, :mod:`.acks`)."""
        assert self._acks is not None
        acks, cluster = self._acks, self.config.cluster

        async def once() -> Any:
            client = self._open()
            if self._stale:
                await replica.refresh_async(client)
                self._stale = False
            try:
                return (await replica.attempt_async(client, cluster, acks, [args], key))[0]
            except CAUGHT as exc:
                self._stale = cluster and not isinstance(exc, AckShortfall)
                raise

        return await self._call(what, once, idempotent=idempotent)

    async def _script(self, what: str, source: str, keys: tuple[str, ...],
                      args: Sequence[Any], *, idempotent: bool = True) -> Any:
        """``EVALSHA`` of ``source``; ``EVAL`` when the server lost it (``NOSCRIPT``: the
        script did not run)."""
        sha = _sha(source)
        if self._acks is not None:
            try:
                return await self._acked(what, ("EVALSHA", sha, len(keys), *keys, *args),
                                         keys[0], idempotent=idempotent)
            except rex.NoScriptError:
                return await self._acked(what, ("EVAL", source, len(keys), *keys, *args),
                                         keys[0], idempotent=idempotent)
        try:
            return await self._command(what, "EVALSHA", sha, len(keys), *keys, *args,
                                       idempotent=idempotent)
        except rex.NoScriptError:
            return await self._command(what, "EVAL", source, len(keys), *keys, *args,
                                       idempotent=idempotent)

    # -- context ---------------------------------------------------------------------------

    async def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                          ) -> ContextRecord:
        """See :meth:`RedisStore.set_context`."""
        keys, payload, seconds = prepare_context(self.keys, self.config, context_id, data, ttl)
        updated_at, expires_at = iso_utc_and_later(self.clock.time(), seconds)
        reply = await self._script("set_context", lua.SET_CONTEXT, keys,
                                   set_args(context_id, payload, seconds, updated_at,
                                             expires_at))
        return context_record(context_id, payload, seconds, updated_at, expires_at, reply)

    async def get_context(self, context_id: str) -> ContextRecord | None:
        """See :meth:`RedisStore.get_context`."""
        key = self.keys.checked_pair(context_id, "context_id")[0]
        raw = await self._command("get_context", "GET", key)
        return None if raw is None else parse_envelope(context_id, raw)

    async def clear_context(self, context_id: str) -> bool:
        """See :meth:`RedisStore.clear_context`."""
        keys = self.keys.checked_pair(context_id, "context_id")
        return int(await self._script("clear_context", lua.CLEAR_CONTEXT, keys, ())) > 0

    async def set_contexts(self, items: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
                           ttl: int | None = None) -> list[ContextRecord]:
        """See :meth:`RedisStore.set_contexts` (validated first; the scripts of one call
        travel in one pipeline on a single server; items naming the same context are sent
        one after the other, in order)."""
        pairs = context_pairs(items)
        require_ttl(ttl)
        prepared = prepare_each(pairs, lambda pair: (pair[0], *prepare_context(
            self.keys, self.config, pair[0], pair[1], ttl)), "items")
        if not prepared:
            return []
        seconds = prepared[0][3]
        updated_at, expires_at = iso_utc_and_later(self.clock.time(), seconds)
        replies: list[Any] = [None] * len(prepared)
        chains: dict[str, list[int]] = {}
        for index, (cid, *_rest) in enumerate(prepared):
            chains.setdefault(cid, []).append(index)

        async def chain(indexes: list[int]) -> None:
            # one context's items in order (they may travel on different connections)
            for index in indexes:
                cid, keys, payload, _ = prepared[index]
                replies[index] = await self._script(
                    "set_contexts", lua.SET_CONTEXT, keys,
                    set_args(cid, payload, seconds, updated_at, expires_at))

        await asyncio.gather(*(chain(indexes) for indexes in chains.values()))
        return [context_record(cid, payload, seconds, updated_at, expires_at, reply)
                for (cid, _, payload, _), reply in zip(prepared, replies, strict=True)]

    async def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """See :meth:`RedisStore.get_contexts`."""
        ids = id_list(context_ids, "context_ids")
        keys = [self.keys.context(cid) for cid in ids]
        raws = await asyncio.gather(*(self._command("get_contexts", "GET", key)
                                      for key in keys))
        return parse_envelopes(ids, raws)

    # -- events ----------------------------------------------------------------------------

    async def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        """See :meth:`RedisStore.append_event`."""
        keys, payload = prepare_event(self.keys, self.config, context_id, event)
        timestamp = iso_utc(self.clock.time())
        event_id = await self._script("append_event", lua.APPEND_EVENT, keys,
                                      event_args(self.config, payload, timestamp),
                                      idempotent=False)
        return event_record(context_id, event_id, timestamp, payload)

    async def append_events(self, context_id: str, events: Sequence[JSONDict]
                            ) -> list[EventRecord]:
        """See :meth:`RedisStore.append_events` (one atomic script)."""
        keys = self.keys.checked_pair(context_id, "context_id")
        max_bytes = self.config.max_payload_bytes
        payloads = prepare_each(batch_list(events, "events"), lambda event: encode(
            require_dict(event, ""), field="", max_bytes=max_bytes), "events")
        if not payloads:
            return []
        timestamp = iso_utc(self.clock.time())
        maxlen = self.config.events_maxlen
        ids = await self._script("append_events", lua.APPEND_EVENTS, keys,
                                 (timestamp, "" if maxlen is None else str(maxlen), *payloads),
                                 idempotent=False)
        return [event_record(context_id, event_id, timestamp, payload)
                for event_id, payload in zip(ids, payloads, strict=True)]

    async def get_events(self, context_id: str, since: str | None = None,
                         limit: int | None = None) -> list[EventRecord]:
        """See :meth:`RedisStore.get_events`."""
        cid, start, count = event_range(context_id, since, limit)
        args: tuple[Any, ...] = ("XRANGE", self.keys.events(cid), start, "+")
        if count is not None:
            args += ("COUNT", count)
        entries = await self._command("get_events", *args)
        return parse_events(cid, [(entry_id, _fields(flat)) for entry_id, flat in entries])

    # -- lock primitives -------------------------------------------------------------------

    async def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """See :meth:`RedisStore.try_acquire`."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        require_positive_int(ttl_ms, "ttl_ms")
        if self.config.lock_nodes:
            return await self._sync().try_acquire(name, owner, ttl_ms)
        token = await self._script("lock acquire", lua.ACQUIRE, self.keys.lock_pair(name),
                                  (owner, ttl_ms), idempotent=False)
        return None if token is None else int(token)

    async def release(self, name: str, owner: str) -> bool:
        """See :meth:`RedisStore.release`."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        if self.config.lock_nodes:
            return await self._sync().release(name, owner)
        return bool(await self._script("lock release", lua.RELEASE,
                                       self.keys.lock_pair(name)[:1], (owner,)))

    async def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """See :meth:`RedisStore.extend`."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        require_positive_int(ttl_ms, "ttl_ms")
        if self.config.lock_nodes:
            return await self._sync().extend(name, owner, ttl_ms)
        return bool(await self._script("lock extend", lua.EXTEND, self.keys.lock_pair(name)[:1],
                                       (owner, ttl_ms)))

    async def is_held(self, name: str) -> bool:
        """See :meth:`RedisStore.is_held`."""
        require_id(name, "lock_name")
        if self.config.lock_nodes:
            return bool(await self._sync().is_held(name))
        return bool(await self._command("lock is_held", "EXISTS", self.keys.lock_pair(name)[0]))

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
