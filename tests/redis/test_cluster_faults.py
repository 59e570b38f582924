"""Redis Cluster node loss: a master SIGKILLed and restarted while calls run.

A private 3-master cluster (no replicas) with a 500 ms cluster node timeout, so the other
masters mark the lost one failed and the cluster refuses commands (``CLUSTERDOWN``)
until it is back: the store retries within ``operation_timeout``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisCluster


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    """A throwaway 3-master cluster this test may kill nodes of."""
    servers = RedisCluster(3, node_timeout_ms=500).start()
    try:
        yield servers
    finally:
        servers.stop()


def test_master_restart_loses_no_call(cluster: RedisCluster,
                                      make_redis_store: MakeRedisStore) -> None:
    """set_context / get_context over keys on every master, looping while one master is
    SIGKILLed and restarted 0.5 s later: no call fails (default config)."""
    store = make_redis_store(url=cluster.url, cluster=True)
    ids = [f"c{i}" for i in range(30)]
    for cid in ids:
        store.set_context(cid, {"v": 0})
    failures: list[BaseException] = []
    calls = [0]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            cid = ids[calls[0] % len(ids)]
            try:
                store.set_context(cid, {"v": calls[0]})
                store.get_context(cid)
            except Exception as exc:  # counted, the assertion below shows them
                failures.append(exc)
            calls[0] += 1

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        time.sleep(0.2)
        cluster.nodes[1].kill()
        time.sleep(0.5)
        cluster.nodes[1].start()
        after = calls[0]
        limit = time.monotonic() + 15
        while calls[0] < after + len(ids) and time.monotonic() < limit:
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert failures == []
    assert calls[0] >= after + len(ids)  # every key, on every master, answered again
