"""Redis Cluster over TLS only (tls-port, tls-cluster, tls-replication; a throwaway CA):
the store verifies the nodes, replicas confirm writes over TLS, and a node whose
certificate the client cannot verify is refused at once with a typed error saying so.
The context, event and lock contracts also run on this cluster (``redis_cluster_tls``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from memory_resources.config import RedisConfig
from memory_resources.errors import BackendUnavailableError
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.aio import AsyncRedisStore
from tests.servers import RedisCluster

pytestmark = pytest.mark.topology


def _config(cluster: RedisCluster, ca: str | None, **extra: Any) -> RedisConfig:
    assert cluster.tls_dir is not None
    fields: dict[str, Any] = {"url": cluster.url, "cluster": True,
                              "key_prefix": f"mrtest:{uuid.uuid4().hex[:8]}:", **extra}
    if ca is not None:
        fields["ssl_ca_certs"] = str(cluster.tls_dir / ca)
    return RedisConfig.model_validate(fields)


def test_nodes_speak_only_tls(redis_cluster_tls: RedisCluster) -> None:
    """Every node has no plain port and gossips and replicates over TLS; every master
    has its replica online (so WAIT is answered over TLS)."""
    for node in redis_cluster_tls.nodes:
        with node.admin_client() as conn:
            config = conn.config_get("port", "tls-cluster", "tls-replication")
        assert config == {"port": "0", "tls-cluster": "yes", "tls-replication": "yes"}
    masters = redis_cluster_tls.masters()
    assert len(masters) == 3
    assert [redis_cluster_tls.replicas_online(m) for m in masters] == [1, 1, 1]


def test_verified_store_writes_with_replica_acks(redis_cluster_tls: RedisCluster) -> None:
    """ssl_ca_certs = the test CA, ssl_cert_reqs required (the default): writes confirmed
    by a replica over TLS, sync and async, on contexts of every master."""
    config = _config(redis_cluster_tls, "ca.crt", replica_acks=1, replica_ack_timeout=2.0)
    assert config.ssl_cert_reqs == "required"
    store = RedisStore(config)
    try:
        for i in range(12):
            store.set_context(f"c{i}", {"i": i})
        assert store.get_contexts([f"c{i}" for i in range(12)])[11] is not None
        assert store.health_check()["status"] == "healthy"
    finally:
        store.close()

    async def scenario() -> None:
        aio = AsyncRedisStore(config)
        try:
            event = await aio.append_event("c0", {"e": 1})
            assert [e["id"] for e in await aio.get_events("c0")] == [event["id"]]
        finally:
            await aio.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("ca", ["other-ca.crt", None])
def test_unverifiable_nodes_are_refused_at_once(redis_cluster_tls: RedisCluster,
                                                ca: str | None) -> None:
    """A CA that did not sign the nodes' certificates (or none: the system CAs) is refused
    without retries (default retry_attempts) by a BackendUnavailableError naming
    ssl_ca_certs and the verification failure; the async store says the same."""
    config = _config(redis_cluster_tls, ca)
    store = RedisStore(config)
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailableError) as info:
            store.get_context("x")
    finally:
        store.close()
    assert time.monotonic() - started < 2.0
    message = str(info.value)
    assert "ssl_ca_certs" in message and "CERTIFICATE_VERIFY_FAILED" in message
    assert "not retried" in message

    async def scenario() -> str:
        aio = AsyncRedisStore(config)
        try:
            with pytest.raises(BackendUnavailableError) as failed:
                await aio.get_context("x")
            return str(failed.value)
        finally:
            await aio.close()

    assert "ssl_ca_certs" in asyncio.run(scenario())


def test_plain_connection_to_a_tls_node_fails_typed(redis_cluster_tls: RedisCluster) -> None:
    """A redis:// URL (no TLS) to a TLS-only node fails with BackendUnavailableError within
    operation_timeout."""
    config = RedisConfig(url=redis_cluster_tls.url.replace("rediss://", "redis://"),
                         cluster=True, operation_timeout=1.5, key_prefix="mrtest:plain:")
    store = RedisStore(config)
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailableError):
            store.get_context("x")
    finally:
        store.close()
    assert time.monotonic() - started < 2.5
