"""Build the redis-py clients of a store from a :class:`RedisConfig`.

One connection pool per client, kept for the store's life: a ``BlockingConnectionPool``
(callers wait up to ``connection_timeout`` for a free connection, so ``max_connections`` is
a hard cap), no redis-py retries (:mod:`.retrying` is the only retry loop, under the call's
deadline), socket timeouts capped at ``operation_timeout``, ``health_check_interval``, TLS
and ACL credentials. ``cluster=True`` gives a
``redis.cluster.RedisCluster`` (one blocking pool per node); a ``sentinel://`` url a
``Redis`` whose pool asks the sentinels for the primary (:mod:`.sentinel`).
"""

from __future__ import annotations

import ssl as ssl_module
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry
from redis.sentinel import SentinelManagedConnection

from ...config import RedisConfig
from ...sentinel_url import is_sentinel_url
from .retrying import RetryPolicy, deadline
from .sentinel import (
    BlockingSentinelPool,
    MasterConnection,
    MasterSSLConnection,
    Recheck,
    SyncSentinels,
    node_kwargs,
    sentinel_kwargs,
    sentinel_target,
    uses_tls,
)

_CERT_REQS = {
    "required": ssl_module.CERT_REQUIRED,
    "optional": ssl_module.CERT_OPTIONAL,
    "none": ssl_module.CERT_NONE,
}

Client = Any
"""``redis.Redis`` or ``redis.cluster.RedisCluster``."""


_SINGLE_CONNECT: dict[type[Any], type[Any]] = {}


def _establish(conn: Any) -> None:
    """One connect attempt (a sentinel-managed connection asks the sentinels first)."""
    if isinstance(conn, SentinelManagedConnection):
        conn._connect_retry()  # type: ignore[no-untyped-call]  # the primary's address from the sentinels, then connect
    else:
        conn.connect_check_health(check_health=True, retry_socket_connect=False)

NO_RETRY = Retry(NoBackoff(), 0)
"""redis-py never retries on its own: :class:`.retrying.RetryPolicy` is the only loop."""


def single_connect(cls: type[Any]) -> type[Any]:
    """``cls`` whose ``connect()`` makes one attempt and whose waits respect the deadline.

    redis-py 8 retries the connect inside every command attempt, so retries nest; here the
    store's :class:`~.retrying.RetryPolicy` is the only loop. Inside a call with a deadline
    (:func:`.retrying.deadline`), the connect timeout, the handshake and every read wait at
    most for what is left of it.
    """
    sub = _SINGLE_CONNECT.get(cls)
    if sub is None:
        def connect(self: Any) -> None:
            if self._sock:
                return
            limit = deadline()
            if limit is None:
                _establish(self)
                return
            saved = self.socket_connect_timeout, self.socket_timeout
            left = max(0.001, limit - time.monotonic())
            self.socket_connect_timeout = min(saved[0] or left, left)
            self.socket_timeout = min(saved[1] or left, left)
            try:
                _establish(self)
            finally:
                self.socket_connect_timeout, self.socket_timeout = saved
                if self._sock is not None:
                    self._sock.settimeout(saved[1])

        def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
            limit = deadline()
            if limit is not None and "timeout" not in kwargs:
                kwargs["timeout"] = max(0.001, min(self.socket_timeout or 1e9,
                                                   limit - time.monotonic()))
            return cls.read_response(self, *args, **kwargs)

        sub = type(f"SingleConnect{cls.__name__}", (cls,),
                   {"connect": connect, "read_response": read_response})
        _SINGLE_CONNECT[cls] = sub
    return sub


def make_policy(config: RedisConfig, secrets: tuple[str, ...]) -> RetryPolicy:
    """The store's deadline and retry policy: ``operation_timeout``, ``retry_attempts``,
    exponential backoff with jitter capped at ``min(1 s, socket_timeout)``."""
    return RetryPolicy(config.operation_timeout, config.retry_attempts, config.socket_timeout,
                       secrets)


def connection_kwargs(config: RedisConfig) -> dict[str, Any]:
    """Keyword arguments shared by every connection (timeouts, retry, credentials, TLS)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": min(config.socket_timeout, config.operation_timeout),
        "socket_connect_timeout": min(config.connection_timeout, config.operation_timeout),
        "retry": NO_RETRY,
        "health_check_interval": config.health_check_interval,
        "decode_responses": True,
        "client_name": "memory_resources",
    }
    if config.username is not None:
        kwargs["username"] = config.username
    if config.password is not None:
        kwargs["password"] = config.password.get_secret_value()
    if config.ssl or (config.url_value() or "").startswith("rediss://"):
        kwargs.update(tls_kwargs(config))
    return kwargs


def tls_kwargs(config: RedisConfig) -> dict[str, Any]:
    """The ``ssl_*`` options as redis-py expects them."""
    kwargs: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[config.ssl_cert_reqs]}
    if config.ssl_cert_reqs == "none":
        kwargs["ssl_check_hostname"] = False
    if config.ssl_ca_certs:
        kwargs["ssl_ca_certs"] = config.ssl_ca_certs
    if config.ssl_certfile:
        kwargs["ssl_certfile"] = config.ssl_certfile
    if config.ssl_keyfile:
        kwargs["ssl_keyfile"] = config.ssl_keyfile
    return kwargs


def build_pool(config: RedisConfig, url: str | None, *, timeout: float | None = None
               ) -> redis.BlockingConnectionPool:
    """A blocking pool for one standalone server (``url`` or host/port/db); ``timeout``
    replaces the connect and socket timeouts (Redlock's ``lock_node_timeout``)."""
    kwargs = connection_kwargs(config)
    if timeout is not None:
        kwargs["socket_timeout"] = kwargs["socket_connect_timeout"] = timeout
    common = {"max_connections": config.max_connections,
              "timeout": min(config.connection_timeout, config.operation_timeout)}
    if url is not None:
        if url.startswith("redis://") and config.ssl:
            url = "rediss://" + url[len("redis://"):]
        if not url.startswith("rediss://"):
            for key in list(kwargs):
                if key.startswith("ssl_"):
                    del kwargs[key]
        pool = redis.BlockingConnectionPool.from_url(url, **common, **kwargs)
    else:
        kwargs["connection_class"] = redis.SSLConnection if config.ssl else redis.Connection
        pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
            host=config.host, port=config.port, db=config.db, **common, **kwargs
        )
    pool.connection_class = single_connect(pool.connection_class)
    return pool


def build_sentinel(config: RedisConfig, url: str | None, *, timeout: float | None = None
                   ) -> redis.Redis:
    """A pooled ``Redis`` on the primary that the sentinels of ``url`` (a ``sentinel://``
    URL; None: the config's) name, found again after every fail-over; ``timeout`` as in
    :func:`build_pool`. The sentinel lookups, too, wait at most for what is left of the
    call's deadline."""
    target = sentinel_target(config, url)
    tls = tls_kwargs(config) if uses_tls(config, target) else {}
    kwargs = node_kwargs(connection_kwargs(config), target, tls)
    if timeout is not None:
        kwargs["socket_timeout"] = kwargs["socket_connect_timeout"] = timeout
    manager = SyncSentinels(list(target.sentinels),
                            sentinel_kwargs=sentinel_kwargs(config, target, tls, NO_RETRY))
    for sentinel in manager.sentinels:
        pool = sentinel.connection_pool
        pool.connection_class = single_connect(pool.connection_class)
    connection = MasterSSLConnection if tls else MasterConnection
    pool = BlockingSentinelPool(  # type: ignore[no-untyped-call]
        target.service, manager, connection_class=single_connect(connection),
        max_connections=config.max_connections,
        timeout=min(config.connection_timeout, config.operation_timeout), **kwargs)
    pool.recheck = Recheck(config.sentinel_check_interval)
    return redis.Redis(connection_pool=pool)


def build_primary(config: RedisConfig) -> Client:
    """The primary client: a pooled ``Redis``, ``RedisCluster`` when ``cluster=True``, or
    a sentinel-managed ``Redis`` for a ``sentinel://`` url."""
    if config.sentinel():
        return build_sentinel(config, None)
    if config.cluster:
        kwargs = connection_kwargs(config)
        url = config.url_value() or (
            f"{'rediss' if config.ssl else 'redis'}://{config.host}:{config.port}")
        if config.ssl and url.startswith("redis://"):
            url = "rediss://" + url[len("redis://"):]
        if not url.startswith("rediss://"):
            kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ssl_")}
        # From a URL, redis-py builds each node's pool with connection_pool_class; node
        # clients do not retry, the cluster client's Retry covers the whole command.
        return RedisCluster(
            url=url,
            max_connections=config.max_connections,
            connection_pool_class=redis.BlockingConnectionPool,
            timeout=config.connection_timeout,
            require_full_coverage=True,
            **kwargs,
        )
    return redis.Redis(connection_pool=build_pool(config, config.url_value()))


def build_lock_node(config: RedisConfig, url: str | None) -> redis.Redis:
    """A pooled client for one Redlock master (``url``; None: the primary's host/port/db;
    a ``sentinel://`` URL: the primary its sentinels name) whose connect and reads give up
    after ``lock_node_timeout``."""
    timeout = min(config.lock_node_timeout, config.operation_timeout)
    if is_sentinel_url(url):
        return build_sentinel(config, url, timeout=timeout)
    return redis.Redis(connection_pool=build_pool(config, url, timeout=timeout))


def close_client(client: Client) -> None:
    """Close a client and disconnect its pool(s)."""
    client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.disconnect()
        manager = getattr(pool, "sentinel_manager", None)
        if manager is not None:
            manager.close()
