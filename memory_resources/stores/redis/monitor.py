"""``health_check()`` and ``stats()`` of the Redis store."""

from __future__ import annotations

from typing import Any

from ...clock import Clock
from ...config import RedisConfig
from ...errors import BackendError
from ...records import HealthReport, JSONDict
from .keys import KeySpace
from .redlock import Redlock
from .retrying import RetryPolicy
from .sentinel import topology

HEALTH_TIMEOUT = 2.5
"""Seconds a store health check may take at most (below MemoryAPI's 3 s cap)."""

SCAN_LIMIT = 100_000
"""At most this many keys are counted by ``stats()``; beyond, the count is marked truncated."""


def _primary_infos(client: Any, cluster: bool, section: str) -> list[dict[str, Any]]:
    """INFO ``section`` of the server, or of every cluster primary."""
    if not cluster:
        return [client.info(section)]
    replies = client.info(section, target_nodes=client.PRIMARIES)
    per_node = isinstance(replies, dict) and bool(replies) and all(
        isinstance(value, dict) for value in replies.values())
    if per_node:
        return list(replies.values())
    return [replies]


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.2f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1024
    return f"{size}B"  # pragma: no cover - loop always returns


def health_report(redlock: Redlock, config: RedisConfig, clock: Clock,
                  policy: RetryPolicy) -> HealthReport:
    """PING the primary (timed), read version and role, PING the extra lock nodes at once;
    with Redis Sentinel, ask every sentinel about the service; all within
    :data:`HEALTH_TIMEOUT` (or ``operation_timeout`` when shorter)."""
    primary = redlock.nodes[0].main
    started = clock.monotonic()

    def probe() -> tuple[float, list[dict[str, Any]], list[dict[str, Any]]]:
        started = clock.monotonic()
        primary.ping()
        latency_ms = (clock.monotonic() - started) * 1000
        return (latency_ms, _primary_infos(primary, config.cluster, "server"),
                _primary_infos(primary, config.cluster, "replication"))

    try:
        latency_ms, infos, roles = policy.call(probe, what="health_check",
                                               timeout=HEALTH_TIMEOUT)
    except BackendError as exc:
        return {"status": "unhealthy", "backend": "redis", "error": str(exc)}
    details: JSONDict = {
        "server_version": infos[0].get("redis_version"),
        "role": roles[0].get("role"),
        "mode": "cluster" if config.cluster else "sentinel" if config.sentinel()
        else "standalone",
        "key_prefix": config.key_prefix,
    }
    if config.cluster:
        details["cluster_primaries"] = len(infos)
    status: Any = "healthy"
    if config.sentinel():
        left = HEALTH_TIMEOUT - (clock.monotonic() - started)
        seen = policy.call(lambda: topology(primary), what="health_check",
                           timeout=max(0.01, left))
        details.update(seen)
        if seen["sentinels_up"] < seen["sentinels"] or not seen.get("replicas"):
            status = "degraded"  # a fail-over would need them
    if len(redlock.nodes) > 1:
        down = redlock.ping_extra()
        details["lock_nodes"] = len(redlock.nodes)
        details["lock_nodes_down"] = down
        if down:
            status = "degraded" if len(redlock.nodes) - len(down) >= redlock.quorum else "unhealthy"
    return {"status": status, "backend": "redis", "latency_ms": round(latency_ms, 3),
            "details": details}


def stats_report(redlock: Redlock, keys: KeySpace, cluster: bool,
                 policy: RetryPolicy) -> JSONDict:
    """Memory, clients, ops/s (summed over cluster primaries) and keys under the prefix."""
    client = redlock.nodes[0].main

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]],
                        int, bool]:
        memory = _primary_infos(client, cluster, "memory")
        clients = _primary_infos(client, cluster, "clients")
        ops = _primary_infos(client, cluster, "stats")
        counted = 0
        truncated = False
        for _ in client.scan_iter(match=keys.pattern(), count=1000):
            counted += 1
            if counted >= SCAN_LIMIT:
                truncated = True
                break
        return memory, clients, ops, counted, truncated

    memory, clients, ops, counted, truncated = policy.call(read, what="stats")
    used = sum(int(info.get("used_memory", 0)) for info in memory)
    return {
        "backend": "redis",
        "used_memory": used,
        "used_memory_human": (memory[0].get("used_memory_human") if len(memory) == 1
                              else _human(used)),
        "connected_clients": sum(int(i.get("connected_clients", 0)) for i in clients),
        "instantaneous_ops_per_sec": sum(int(i.get("instantaneous_ops_per_sec", 0))
                                         for i in ops),
        "keys_under_prefix": counted,
        "keys_under_prefix_truncated": truncated,
        "key_prefix": keys.prefix,
        "lock_nodes": len(redlock.nodes),
        "lock_quorum": redlock.quorum,
    }
