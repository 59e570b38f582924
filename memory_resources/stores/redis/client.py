"""Build the redis-py clients of a store from a :class:`RedisConfig`.

One connection pool per client, kept for the store's life: a ``BlockingConnectionPool``
(callers wait up to ``connection_timeout`` for a free connection, so ``max_connections`` is
a hard cap), redis-py ``Retry`` with exponential backoff on connection and timeout errors,
``health_check_interval``, TLS and ACL credentials. ``cluster=True`` gives a
``redis.cluster.RedisCluster`` (one blocking pool per node).
"""

from __future__ import annotations

import ssl as ssl_module
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from ...config import RedisConfig

_CERT_REQS = {
    "required": ssl_module.CERT_REQUIRED,
    "optional": ssl_module.CERT_OPTIONAL,
    "none": ssl_module.CERT_NONE,
}

Client = Any
"""``redis.Redis`` or ``redis.cluster.RedisCluster``."""


_SINGLE_CONNECT: dict[type[Any], type[Any]] = {}


def single_connect(cls: type[Any]) -> type[Any]:
    """``cls`` whose ``connect()`` makes one attempt (socket plus handshake).

    redis-py 8 retries the connect inside every command attempt, so retries nest
    (attempts x attempts x timeout). With this class the command-level ``Retry`` is the
    only loop and a call against a dead or silent server is bounded by about
    ``(retry_attempts + 1) x timeout`` plus backoff.
    """
    sub = _SINGLE_CONNECT.get(cls)
    if sub is None:
        def connect(self: Any) -> None:
            once = getattr(self, "connect_check_health", None)
            if once is None:  # older redis-py: connect was not nested
                cls.connect(self)
            else:
                once(check_health=True, retry_socket_connect=False)

        sub = type(f"SingleConnect{cls.__name__}", (cls,), {"connect": connect})
        _SINGLE_CONNECT[cls] = sub
    return sub


def make_retry(config: RedisConfig) -> Retry:
    """``retry_attempts`` retries on connection/timeout errors, exponential backoff capped
    at ``min(1 s, socket_timeout)`` so the whole call stays bounded."""
    cap = min(1.0, config.socket_timeout)
    return Retry(ExponentialBackoff(cap=cap, base=min(0.05, cap)), config.retry_attempts)


def connection_kwargs(config: RedisConfig) -> dict[str, Any]:
    """Keyword arguments shared by every connection (timeouts, retry, credentials, TLS)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.connection_timeout,
        "retry": make_retry(config),
        "health_check_interval": config.health_check_interval,
        "decode_responses": True,
        "client_name": "memory_resources",
    }
    if config.username is not None:
        kwargs["username"] = config.username
    if config.password is not None:
        kwargs["password"] = config.password.get_secret_value()
    if config.ssl or (config.url or "").startswith("rediss://"):
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


def build_pool(config: RedisConfig, url: str | None) -> redis.BlockingConnectionPool:
    """A blocking pool for one standalone server (``url`` or host/port/db)."""
    kwargs = connection_kwargs(config)
    common = {"max_connections": config.max_connections, "timeout": config.connection_timeout}
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


def build_primary(config: RedisConfig) -> Client:
    """The primary client: a pooled ``Redis``, or ``RedisCluster`` when ``cluster=True``."""
    if config.cluster:
        kwargs = connection_kwargs(config)
        url = config.url or f"{'rediss' if config.ssl else 'redis'}://{config.host}:{config.port}"
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
    return redis.Redis(connection_pool=build_pool(config, config.url))


def build_lock_node(config: RedisConfig, url: str) -> redis.Redis:
    """A pooled client for one extra Redlock master given by URL."""
    return redis.Redis(connection_pool=build_pool(config, url))


def close_client(client: Client) -> None:
    """Close a client and disconnect its pool(s)."""
    client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.disconnect()
