"""MemoryAPI.health_check() is bounded whatever the servers do.

Redis and PostgreSQL sit behind loopback TCP proxies that black-hole them (connections
accepted, nothing answered), before the first connection or after it. The bounds are the
documented caps plus scheduling slack, not benchmarks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest

from memory_resources import MemoryAPI
from memory_resources.api_async import AsyncMemoryAPI
from tests.servers.proxy import TcpProxy

SLACK = 0.4
"""Thread start-up and scheduling on a loaded 2-core machine."""


@pytest.fixture
def proxies(redis_url: str, postgres_dsn: str) -> Iterator[tuple[TcpProxy, TcpProxy]]:
    """A proxy in front of the test Redis and one in front of the test PostgreSQL."""
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    pg_port = int(psycopg2.extensions.parse_dsn(postgres_dsn).get("port", 5432))
    with TcpProxy("127.0.0.1", redis_port) as to_redis, TcpProxy("127.0.0.1", pg_port) as to_pg:
        yield to_redis, to_pg


def _configs(proxies: tuple[TcpProxy, TcpProxy], postgres_dsn: str, schema: str,
             redis_prefix: str, tmp_path: Path) -> dict[str, Any]:
    to_redis, to_pg = proxies
    params = psycopg2.extensions.parse_dsn(postgres_dsn)
    params.update(host="127.0.0.1", port=str(to_pg.port))
    return {
        "redis_config": {"url": f"redis://127.0.0.1:{to_redis.port}/0",
                         "key_prefix": redis_prefix},
        "postgres_config": {"dsn": psycopg2.extensions.make_dsn(**params), "schema": schema},
        "vector_config": {"dimension": 4, "path": str(tmp_path / "vectors")},
    }


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {name: entry["status"] for name, entry in report["adapters"].items()}


def test_health_check_returns_in_3_s_when_redis_and_postgres_hang_after_connecting(
    proxies: tuple[TcpProxy, TcpProxy], postgres_dsn: str, pg_schema: str, redis_prefix: str,
    tmp_path: Path,
) -> None:
    """Connected, then both servers black-holed: health_check() returns within its 3 s
    default cap, Redis and PostgreSQL unhealthy with a reason, the local vector index
    healthy, overall degraded."""
    api = MemoryAPI(**_configs(proxies, postgres_dsn, pg_schema, redis_prefix, tmp_path))
    try:
        api.connect()
        assert api.health_check()["overall_status"] == "healthy"
        for proxy in proxies:
            proxy.blackhole()
        started = time.monotonic()
        report = api.health_check()
        assert time.monotonic() - started <= 3.0 + SLACK
        assert _statuses(report) == {"redis": "unhealthy", "postgres": "unhealthy",
                                     "vector": "healthy"}
        assert report["overall_status"] == "degraded"
        assert report["adapters"]["postgres"]["error"]
        assert report["adapters"]["redis"]["error"]
    finally:
        for proxy in proxies:
            proxy.close()  # the hung probes fail fast once their sockets are reset
        api.disconnect()


def test_health_check_cap_is_configurable_before_the_first_connection(
    proxies: tuple[TcpProxy, TcpProxy], postgres_dsn: str, pg_schema: str, redis_prefix: str,
    tmp_path: Path,
) -> None:
    """Black-holed before anything connected (connects hang): health_check(timeout=0.5)
    returns within 0.5 s, naming the timeout as the reason for each hung backend."""
    for proxy in proxies:
        proxy.blackhole()
    api = MemoryAPI(**_configs(proxies, postgres_dsn, pg_schema, redis_prefix, tmp_path))
    try:
        started = time.monotonic()
        report = api.health_check(timeout=0.5)
        assert time.monotonic() - started <= 0.5 + SLACK
        assert _statuses(report)["redis"] == "unhealthy"
        assert "timeout=0.5" in str(report["adapters"]["postgres"]["error"])
    finally:
        for proxy in proxies:
            proxy.close()
        api.disconnect()


def test_async_health_check_is_capped_too(
    proxies: tuple[TcpProxy, TcpProxy], postgres_dsn: str, pg_schema: str, redis_prefix: str,
    tmp_path: Path,
) -> None:
    """AsyncMemoryAPI.health_check(timeout=0.5) with both servers black-holed returns
    within the cap and reports them unhealthy."""
    for proxy in proxies:
        proxy.blackhole()
    api = AsyncMemoryAPI(**_configs(proxies, postgres_dsn, pg_schema, redis_prefix, tmp_path))

    async def check() -> tuple[float, dict[str, Any]]:
        started = time.monotonic()
        report = await api.health_check(timeout=0.5)
        return time.monotonic() - started, report

    try:
        elapsed, report = asyncio.run(check())
        assert elapsed <= 0.5 + SLACK
        assert _statuses(report)["redis"] == "unhealthy"
        assert _statuses(report)["postgres"] == "unhealthy"
    finally:
        for proxy in proxies:
            proxy.close()


def test_health_check_rejects_a_bad_timeout(tmp_path: Path) -> None:
    """A timeout that is not a positive number is a MemoryValidationError naming it."""
    api = MemoryAPI(embedded_config={"path": str(tmp_path / "m.db")})
    with pytest.raises(ValueError, match="timeout"):
        api.health_check(timeout=0)
