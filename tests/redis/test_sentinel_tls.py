"""Redis Sentinel over TLS: every process (primary, replica, three sentinels) has a tls-port,
replication and the sentinels' links to the data nodes are TLS (``tls-replication yes``);
a ``sentinels://`` URL with the CA reaches the primary over TLS on both transports and through
a promotion, and a client trusting another CA is refused, naming the verification failure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory_resources.errors import BackendUnavailableError
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.aio import AsyncRedisStore
from tests.fixtures.redis_sentinel import DATA_PASSWORD, SENTINEL_PASSWORD, sentinel_config
from tests.servers.redis_sentinel import SentinelTopology, TlsFiles
from tests.servers.tls import make_certs

pytestmark = pytest.mark.topology


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    return make_certs(tmp_path_factory.mktemp("sentinel-tls"))


@pytest.fixture(scope="module")
def topology(certs: Path) -> Iterator[SentinelTopology]:
    """Primary + replica + 3 sentinels, clients served on TLS ports only."""
    tls = TlsFiles(ca=certs / "ca.crt", cert=certs / "server.crt", key=certs / "server.key")
    with SentinelTopology(password=DATA_PASSWORD, sentinel_password=SENTINEL_PASSWORD,
                          tls=tls) as topo:
        yield topo


def test_round_trip_and_promotion_over_tls(topology: SentinelTopology, certs: Path) -> None:
    """With the CA, the store asks the sentinels over TLS and writes to the primary's TLS
    port; after SENTINEL FAILOVER (replication over TLS) it writes to the new primary."""
    assert topology.url().startswith("sentinels://")
    store = RedisStore(sentinel_config(topology, "mrtest:tls:",
                                       ssl_ca_certs=str(certs / "ca.crt")))
    durable = RedisStore(sentinel_config(topology, "mrtest:tls:", replica_acks=1,
                                         ssl_ca_certs=str(certs / "ca.crt")))
    try:
        durable.set_context("tls", {"secure": True})  # confirmed by the replica (WAIT 1)
        health = store.health_check()
        old = topology.primary()
        assert health["status"] == "healthy"
        assert health["details"]["primary"] == f"127.0.0.1:{topology.client_port(old)}"
        assert topology.client_port(old) != old.port  # the TLS port, not the plain one
        with topology.sentinel_client(topology.sentinels[0]) as admin:
            admin.execute_command("SENTINEL", "FAILOVER", topology.service)
        new = topology.wait_promoted(old)
        record = store.get_context("tls")
        assert record is not None and record["data"] == {"secure": True}  # replicated
        store.set_context("tls", {"secure": "still"})
        assert store.health_check()["details"]["primary"] == (
            f"127.0.0.1:{topology.client_port(new)}")
    finally:
        store.close()
        durable.close()


def test_async_transport_over_tls(topology: SentinelTopology, certs: Path) -> None:
    """The async transport verifies the same CA and round-trips a context and an event."""
    config = sentinel_config(topology, "mrtest:tls:async:", ssl_ca_certs=str(certs / "ca.crt"))

    async def scenario() -> tuple[object, int]:
        store = AsyncRedisStore(config)
        try:
            await store.set_context("a", {"n": 1})
            await store.append_event("a", {"e": 1})
            return (await store.get_context("a") or {}).get("data"), len(
                await store.get_events("a"))
        finally:
            await store.close()

    assert asyncio.run(scenario()) == ({"n": 1}, 1)


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_wrong_ca_is_refused(topology: SentinelTopology, certs: Path, transport: str) -> None:
    """Trusting an unrelated CA, no sentinel is accepted: BackendUnavailableError naming
    the certificate verification failure."""
    config = sentinel_config(topology, "mrtest:tls:", ssl_ca_certs=str(certs / "other-ca.crt"),
                             retry_attempts=0, operation_timeout=3)
    with pytest.raises(BackendUnavailableError) as info:
        if transport == "sync":
            store = RedisStore(config)
            try:
                store.get_context("x")
            finally:
                store.close()
        else:
            async def attempt() -> None:
                store = AsyncRedisStore(config)
                try:
                    await store.get_context("x")
                finally:
                    await store.close()

            asyncio.run(attempt())
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert DATA_PASSWORD not in str(info.value) and SENTINEL_PASSWORD not in str(info.value)
