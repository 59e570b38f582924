"""A throwaway Redis Cluster: N masters with ``cluster-enabled yes`` on free loopback ports."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient

from tests.servers._process import ManagedServer, ServerStartError
from tests.servers.redis import RedisServer, find_redis_cli, find_redis_server

HASH_SLOTS = 16384


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Split the 16384 hash slots into ``masters`` contiguous inclusive ranges."""
    if masters < 1:
        raise ValueError("masters must be >= 1")
    bounds = [round(i * HASH_SLOTS / masters) for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


class RedisCluster(ManagedServer):
    """``masters`` cluster-enabled redis-servers joined into one cluster, replicas 0.

    Creation uses ``redis-cli --cluster create`` when redis-cli exists (or ``use_redis_cli`` is
    True), else assigns slots and introduces the nodes directly with ``CLUSTER ADDSLOTS`` /
    ``CLUSTER MEET``. ``start()`` returns once every node reports ``cluster_state:ok``.
    """

    def __init__(
        self,
        masters: int = 3,
        *,
        binary: Path | None = None,
        use_redis_cli: bool | None = None,
        node_timeout_ms: int = 2000,
        startup_timeout: float = 30.0,
    ) -> None:
        self.binary = binary if binary is not None else find_redis_server().path
        self.redis_cli = find_redis_cli(self.binary)
        if use_redis_cli and self.redis_cli is None:
            raise ServerStartError("use_redis_cli=True but no redis-cli binary was found")
        self.use_redis_cli = self.redis_cli is not None if use_redis_cli is None else use_redis_cli
        self.startup_timeout = startup_timeout
        self.nodes = [
            RedisServer(cluster=True, cluster_node_timeout_ms=node_timeout_ms, binary=self.binary)
            for _ in range(masters)
        ]
        self._created = False

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        """``ClusterNode`` list for ``redis.cluster.RedisCluster(startup_nodes=...)``."""
        return [
            ClusterNode(node.host, node.port)  # type: ignore[no-untyped-call]
            for node in self.nodes
        ]

    @property
    def urls(self) -> list[str]:
        """One ``redis://`` URL per master."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """URL of the first master (enough for ``RedisCluster.from_url``)."""
        return self.urls[0]

    def client(self, **kwargs: object) -> ClusterClient:
        """A new cluster-aware redis-py client (caller closes it)."""
        return ClusterClient(startup_nodes=self.startup_nodes, **kwargs)  # type: ignore[arg-type]

    def start(self) -> RedisCluster:
        """Start every node, create the cluster once, and wait for ``cluster_state:ok``."""
        for node in self.nodes:
            node.start()
        if not self._created:
            if self.use_redis_cli:
                self._create_with_cli()
            else:
                self._create_directly()
            self._created = True
        self.wait_ok()
        return self

    def _create_with_cli(self) -> None:
        assert self.redis_cli is not None
        addresses = [f"{node.host}:{node.port}" for node in self.nodes]
        result = subprocess.run(
            [str(self.redis_cli), "--cluster", "create", *addresses,
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
            timeout=self.startup_timeout,
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )

    def _create_directly(self) -> None:
        for epoch, (node, (first, last)) in enumerate(
            zip(self.nodes, slot_ranges(len(self.nodes)), strict=True), start=1
        ):
            with node.client() as conn:
                conn.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
                conn.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        with self.nodes[0].client() as conn:
            for other in self.nodes[1:]:
                conn.execute_command("CLUSTER", "MEET", other.host, other.port)

    def _node_ok(self, node: RedisServer) -> bool:
        try:
            with node.admin_client() as conn:
                raw = conn.execute_command("CLUSTER", "INFO")
        except (redis.RedisError, OSError):
            return False
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        info = dict(
            line.split(":", 1) for line in text.splitlines() if ":" in line
        )
        return (
            info.get("cluster_state") == "ok"
            and info.get("cluster_known_nodes") == str(len(self.nodes))
            and info.get("cluster_slots_assigned") == str(HASH_SLOTS)
        )

    def wait_ok(self, timeout: float | None = None) -> None:
        """Block until every node reports ``cluster_state:ok`` with all nodes and slots."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.startup_timeout)
        while not all(self._node_ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise ServerStartError(f"cluster not ok within the timeout: {self.nodes}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node and delete their data dirs."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.close()

    close = stop
