"""``RedisStore``: context, event streams and Redlock locks on Redis, Redis Cluster or Sentinel."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...batching import batch_list, context_pairs, id_list, prepare_each
from ...clock import SYSTEM_CLOCK, Clock
from ...codec import encode
from ...config import RedisConfig, parse_config
from ...errors import (
    ConfigurationError,
)
from ...log import get_logger
from ...records import ContextRecord, EventRecord, HealthReport, JSONDict
from ...validation import (
    MAX_LOCK_TTL_MS,
    require_bytes,
    require_dict,
    require_id,
    require_positive_int,
    require_ttl,
)
from . import acks as replica
from . import blobs
from . import client as clients
from .batch import ScriptBatcher
from .direct import execute
from .errors import CAUGHT
from .keys import KeySpace
from .monitor import health_report, stats_report
from .nodes import LockNode
from .redlock import Redlock
from .scripts import Scripts
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

if TYPE_CHECKING:
    from .aio import AsyncRedisStore

_log = get_logger(__name__)


_BUILD_ERRORS: tuple[type[BaseException], ...] = (*CAUGHT, ValueError)


class RedisStore:
    """Context, events and lock primitives on Redis (``backend_name`` ``"redis"``).

    Implements :class:`Lifecycle`, :class:`ContextStore`, :class:`EventLog` and
    :class:`LockManager` (see :mod:`memory_resources.protocols`), plus the pipelined batch
    forms :meth:`set_contexts` / :meth:`get_contexts`. One connection pool per client is
    opened on :meth:`connect` (or first use) and kept until :meth:`close`.
    """

    backend_name = "redis"

    def __init__(self, config: RedisConfig | Mapping[str, Any], *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.config: RedisConfig = parse_config(RedisConfig, config if isinstance(
            config, RedisConfig) else dict(config), "redis_config")
        self.clock = clock
        self.keys = KeySpace(self.config.key_prefix)
        self._secrets = self.config.secret_values()
        self._client: Any = None
        self._scripts: Scripts | None = None
        self._redlock: Redlock | None = None
        self._batch: ScriptBatcher | None = None
        self._guard = threading.Lock()
        self._policy = clients.make_policy(self.config, self._secrets)
        self._acks = replica.from_config(self.config)

    # -- lifecycle -------------------------------------------------------------------------

    def _open(self) -> tuple[Any, Scripts]:
        client, scripts = self._client, self._scripts
        if client is not None and scripts is not None:
            return client, scripts
        with self._guard:
            if self._client is None or self._scripts is None:
                nodes = self._policy.call(self._build_nodes, what="connect")
                self._redlock = Redlock(nodes, self.keys, self._policy,
                                        self.config.lock_node_timeout,
                                        self.config.max_connections, acks=self._acks)
                self._scripts = nodes[0].main_scripts
                self._batch = ScriptBatcher(nodes[0].main, nodes[0].main_scripts,
                                            self.config.cluster, self._acks)
                self._client = nodes[0].main
            return self._client, self._scripts

    def _build_nodes(self) -> list[LockNode]:
        """The primary client and one client per lock node (closed again on failure)."""
        nodes: list[LockNode] = []
        field = "url"
        try:
            primary = clients.build_primary(self.config)
            nodes.append(LockNode(primary, "primary"))
            if self.config.lock_nodes and not self.config.cluster:
                # Redlock asks the primary through a pool of its own, with short timeouts
                url = self.config.url_value()
                nodes[0] = LockNode(clients.build_lock_node(self.config, url),
                                    "primary", main=primary)
            for i, url in enumerate(self.config.lock_node_urls()):
                field = f"lock_nodes[{i}]"
                nodes.append(LockNode(clients.build_lock_node(self.config, url), f"#{i + 1}"))
        except _BUILD_ERRORS as exc:
            for node in nodes:
                node.close()
            if isinstance(exc, ValueError) and not isinstance(exc, CAUGHT):
                raise ConfigurationError(  # redis-py refusing a URL
                    f"redis_config[{field!r}]: {scrub_url(str(exc))}") from None
            raise
        return nodes

    @property
    def _batcher(self) -> ScriptBatcher:
        self._open()
        assert self._batch is not None
        return self._batch

    @property
    def client(self) -> Any:
        """The primary redis-py client (``Redis`` or ``RedisCluster``), opened on demand."""
        return self._open()[0]

    def connect(self) -> None:
        """Open the pools and PING the primary. Idempotent."""
        client, _ = self._open()
        self._policy.call(client.ping, what="connect")

    def close(self) -> None:
        """Close every pool. Idempotent; the store reconnects on next use."""
        with self._guard:
            redlock, self._redlock = self._redlock, None
            self._client = self._scripts = self._batch = None
        if redlock is not None:
            redlock.close()

    def async_transport(self, clock: Clock) -> AsyncRedisStore:
        """The ``redis.asyncio`` twin of this store (same config; pools of its own)."""
        from .aio import AsyncRedisStore

        return AsyncRedisStore(self.config, clock=clock)

    def health_check(self) -> HealthReport:
        """PING round trip, server version and role; never raises."""
        try:
            self._open()
        except Exception as exc:
            return {"status": "unhealthy", "backend": self.backend_name, "error": str(exc)}
        assert self._redlock is not None
        return health_report(self._redlock, self.config, self.clock, self._policy)

    def stats(self) -> JSONDict:
        """``used_memory`` and friends, keys under the prefix (bounded SCAN), lock nodes."""
        self._open()
        assert self._redlock is not None
        return stats_report(self._redlock, self.keys, self.config.cluster, self._policy)

    def __enter__(self) -> RedisStore:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- context ---------------------------------------------------------------------------

    def _write(self, script: Any, client: Any, keys: tuple[str, ...], args: tuple[Any, ...],
               *, what: str, idempotent: bool = True) -> Any:
        """A write script under the call's deadline, followed by ``WAIT`` in the same round
        trip when ``replica_acks`` is set (:mod:`.acks`)."""
        return replica.write(script, client, keys, args, cluster=self.config.cluster,
                             acks=self._acks, policy=self._policy, what=what,
                             idempotent=idempotent)

    def _prepare_context(self, context_id: Any, data: Any, ttl: Any
                         ) -> tuple[tuple[str, str], str, int | None]:
        """The keys, encoded data and TTL (``default_ttl`` when None) of one write."""
        return prepare_context(self.keys, self.config, context_id, data, ttl)

    def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                    ) -> ContextRecord:
        """Store ``data`` (one atomic script: new version, ``SET`` with ``PX``, the event
        stream given the same expiry, or none when ``ttl`` is None)."""
        keys, payload, seconds = self._prepare_context(context_id, data, ttl)
        client, scripts = self._open()
        updated_at, expires_at = iso_utc_and_later(self.clock.time(), seconds)
        reply = self._write(scripts.set_context, client, keys,
                            set_args(context_id, payload, seconds, updated_at, expires_at),
                            what="set_context")
        return context_record(context_id, payload, seconds, updated_at, expires_at, reply)

    def get_context(self, context_id: str) -> ContextRecord | None:
        """The stored envelope, or None when absent or expired."""
        key = self.keys.checked_pair(context_id, "context_id")[0]
        client = self._open()[0]
        raw = execute(client, self._policy, "get_context", "GET", key)
        return None if raw is None else parse_envelope(context_id, raw)

    def clear_context(self, context_id: str) -> bool:
        """Delete the context and its event stream in one atomic script."""
        keys = self.keys.checked_pair(context_id, "context_id")
        client, scripts = self._open()
        return int(self._write(scripts.clear_context, client, keys, (),
                               what="clear_context")) > 0

    # -- batch -----------------------------------------------------------------------------

    def set_contexts(self, items: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
                     ttl: int | None = None) -> list[ContextRecord]:
        """:meth:`set_context` for many contexts in one pipelined round trip.

        Every item is validated and encoded first: on bad input nothing is written. Each
        context is set atomically; the batch as a whole is not a transaction.
        """
        pairs = context_pairs(items)
        require_ttl(ttl)
        prepared = prepare_each(pairs, lambda pair: (pair[0], *self._prepare_context(
            pair[0], pair[1], ttl)), "items")
        if not prepared:
            return []
        seconds = prepared[0][3]
        updated_at, expires_at = iso_utc_and_later(self.clock.time(), seconds)
        calls = [(keys, set_args(cid, payload, seconds, updated_at, expires_at))
                 for cid, keys, payload, _ in prepared]
        batcher = self._batcher
        replies = self._policy.call(lambda: batcher.run(lambda s: s.set_context, calls),
                                    what="set_contexts")
        return [context_record(cid, payload, seconds, updated_at, expires_at, reply)
                for (cid, _, payload, _), reply in zip(prepared, replies, strict=True)]

    def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """:meth:`get_context` for many ids in one pipelined round trip, in order."""
        ids = id_list(context_ids, "context_ids")
        keys = [self.keys.context(cid) for cid in ids]
        if not keys:
            return []
        client, _ = self._open()

        def read_all() -> list[Any]:
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                return list(pipe.execute())

        raws = self._policy.call(read_all, what="get_contexts")
        return parse_envelopes(ids, raws)

    # -- events ----------------------------------------------------------------------------

    def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        """``XADD`` (``MAXLEN ~ events_maxlen`` when set); the stream keeps the context's TTL."""
        keys, payload = prepare_event(self.keys, self.config, context_id, event)
        client, scripts = self._open()
        timestamp = iso_utc(self.clock.time())
        event_id = self._write(scripts.append_event, client, keys,
                               event_args(self.config, payload, timestamp),
                               what="append_event", idempotent=False)
        return event_record(context_id, event_id, timestamp, payload)

    def append_events(self, context_id: str, events: Sequence[JSONDict]) -> list[EventRecord]:
        """``XADD`` of every event, in order, in one atomic script (one round trip)."""
        keys = self.keys.checked_pair(context_id, "context_id")
        max_bytes = self.config.max_payload_bytes
        payloads = prepare_each(batch_list(events, "events"), lambda event: encode(
            require_dict(event, ""), field="", max_bytes=max_bytes), "events")
        if not payloads:
            return []
        client, scripts = self._open()
        timestamp = iso_utc(self.clock.time())
        maxlen = self.config.events_maxlen
        ids = self._write(scripts.append_events, client, keys,
                          (timestamp, "" if maxlen is None else str(maxlen), *payloads),
                          what="append_events", idempotent=False)
        return [event_record(context_id, event_id, timestamp, payload)
                for event_id, payload in zip(ids, payloads, strict=True)]

    def get_events(self, context_id: str, since: str | None = None,
                   limit: int | None = None) -> list[EventRecord]:
        """Events in append order via ``XRANGE``; ``since`` is an exclusive stream id."""
        cid, start, count = event_range(context_id, since, limit)
        client, _ = self._open()
        entries = self._policy.call(
            lambda: client.xrange(self.keys.events(cid), min=start, count=count),
            what="get_events")
        return parse_events(cid, entries)

    # -- lock primitives (driven by memory_resources.locking.Lock) ---------------------------

    def _lock_manager(self) -> Redlock:
        self._open()
        assert self._redlock is not None
        return self._redlock

    def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """Redlock acquire on the quorum; the fencing token, or None if held elsewhere."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        require_positive_int(ttl_ms, "ttl_ms", maximum=MAX_LOCK_TTL_MS)
        return self._lock_manager().try_acquire(name, owner, ttl_ms)

    def release(self, name: str, owner: str) -> bool:
        """Compare-and-delete on every lock node; True when a quorum released it."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        return self._lock_manager().release(name, owner)

    def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Compare-and-pexpire on every lock node; True when a quorum still held it."""
        require_id(name, "lock_name")
        require_id(owner, "owner")
        require_positive_int(ttl_ms, "ttl_ms", maximum=MAX_LOCK_TTL_MS)
        return self._lock_manager().extend(name, owner, ttl_ms)

    def is_held(self, name: str) -> bool:
        """True while a quorum of lock nodes holds a lease on ``name``."""
        require_id(name, "lock_name")
        return self._lock_manager().is_held(name)

    # -- ResultBlobs (Prefect result storage) ---------------------------------------------

    def read_blob(self, path: str) -> bytes | None:
        """The bytes stored at ``path``, or None."""
        key, client = blobs.blob_key(self.keys.prefix, path), self._open()[0]
        return self._policy.call(lambda: blobs.read_blob(client, key), what="read_blob",
                                 idempotent=True)

    def write_blob(self, path: str, content: bytes) -> None:
        """Store ``content`` at ``path``, replacing what was there (retry-safe: a ``SET``)."""
        key, client = blobs.blob_key(self.keys.prefix, path), self._open()[0]
        content = require_bytes(content, "content")
        if self._acks is not None:
            replica.call(client, self.config.cluster, self._acks, self._policy, "write_blob",
                         [("SET", key, content)], key, idempotent=True)
            return
        self._policy.call(lambda: blobs.write_blob(client, key, content), what="write_blob",
                          idempotent=True)

    def delete_blob(self, path: str) -> bool:
        """Remove ``path``; False if nothing was stored there."""
        key, client = blobs.blob_key(self.keys.prefix, path), self._open()[0]
        if self._acks is not None:
            return bool(replica.call(client, self.config.cluster, self._acks, self._policy,
                                     "delete_blob", [("DEL", key)], key, idempotent=True)[0])
        return bool(self._policy.call(lambda: blobs.delete_blob(client, key),
                                      what="delete_blob", idempotent=True))

    def __repr__(self) -> str:
        target = "cluster" if self.config.cluster else "server"
        where = self.config.url_value() or f"{self.config.host}:{self.config.port}"
        if "@" in where:
            where = where.split("://", 1)[0] + "://***@" + where.rsplit("@", 1)[1]
        return (f"RedisStore({target}={where!r}, key_prefix={self.config.key_prefix!r}, "
                f"lock_nodes={len(self.config.lock_nodes)})")
