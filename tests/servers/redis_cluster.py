"""A throwaway Redis Cluster on free loopback ports: N masters, each with R replicas.

``RedisCluster(3, replicas=1)`` is the 3 + 3 topology of docs/scaling.md; ``tls_dir``
(``tests/servers/tls.make_certs``) makes every node TLS-only, gossiping and replicating over
TLS (``tls-cluster``, ``tls-replication``). A short ``node_timeout_ms`` makes fail-over take
about two node timeouts after a master is lost.
"""

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


def _info(conn: redis.Redis, *args: str) -> dict[str, str]:
    """``CLUSTER INFO``'s ``key:value`` lines."""
    raw = conn.execute_command(*args)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


class RedisCluster(ManagedServer):
    """``masters`` cluster-enabled redis-servers, each with ``replicas`` replicas.

    Creation uses ``redis-cli --cluster create`` when redis-cli exists (or ``use_redis_cli`` is
    True; required with replicas), else assigns slots and introduces the nodes directly with
    ``CLUSTER ADDSLOTS`` / ``CLUSTER MEET``. ``start()`` returns once every node reports
    ``cluster_state:ok`` and every replica is in sync with its master.
    """

    def __init__(
        self,
        masters: int = 3,
        *,
        replicas: int = 0,
        binary: Path | None = None,
        use_redis_cli: bool | None = None,
        node_timeout_ms: int = 2000,
        startup_timeout: float = 30.0,
        tls_dir: Path | None = None,
    ) -> None:
        self.binary = binary if binary is not None else find_redis_server().path
        self.redis_cli = find_redis_cli(self.binary)
        if (use_redis_cli or replicas) and self.redis_cli is None:
            raise ServerStartError("replicas or use_redis_cli=True need a redis-cli binary")
        self.use_redis_cli = self.redis_cli is not None if use_redis_cli is None else use_redis_cli
        self.startup_timeout = startup_timeout
        self.masters_count = masters
        self.replicas = replicas
        self.tls_dir = tls_dir
        self.nodes = [
            RedisServer(cluster=True, cluster_node_timeout_ms=node_timeout_ms, binary=self.binary,
                        tls_dir=tls_dir)
            for _ in range(masters * (1 + replicas))
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
        """One URL per node (``rediss://`` with TLS)."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """URL of the first node (enough for ``RedisCluster.from_url``)."""
        return self.urls[0]

    def client(self, **kwargs: object) -> ClusterClient:
        """A new cluster-aware redis-py client (caller closes it)."""
        if self.tls_dir is not None:
            kwargs = {"ssl": True, "ssl_ca_certs": str(self.tls_dir / "ca.crt"), **kwargs}
        return ClusterClient(startup_nodes=self.startup_nodes, **kwargs)  # type: ignore[arg-type]

    def start(self) -> RedisCluster:
        """Start every node, create the cluster once, and wait until it is ok and in sync."""
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

    def _cli_tls(self) -> list[str]:
        if self.tls_dir is None:
            return []
        return ["--tls", "--cacert", str(self.tls_dir / "ca.crt")]

    def _create_with_cli(self) -> None:
        assert self.redis_cli is not None
        addresses = [f"{node.host}:{node.port}" for node in self.nodes]
        result = subprocess.run(
            [str(self.redis_cli), *self._cli_tls(), "--cluster", "create", *addresses,
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
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
        """Cluster ok as seen by ``node``; a replica also linked to its master, in sync."""
        try:
            with node.admin_client() as conn:
                info = _info(conn, "CLUSTER", "INFO")
                repl = conn.info("replication")
        except (redis.RedisError, OSError):
            return False
        if not (info.get("cluster_state") == "ok"
                and info.get("cluster_known_nodes") == str(len(self.nodes))
                and info.get("cluster_slots_assigned") == str(HASH_SLOTS)):
            return False
        if repl.get("role") == "slave":
            return (repl.get("master_link_status") == "up"
                    and repl.get("master_sync_in_progress") == 0)
        return True

    def wait_ok(self, timeout: float | None = None) -> None:
        """Block until every running node reports ``cluster_state:ok`` with all nodes and
        slots, each running replica is in sync and each master has ``replicas`` online."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.startup_timeout)
        while not self._all_ok():
            if time.monotonic() > deadline:
                raise ServerStartError(f"cluster not ok within the timeout: {self.nodes}")
            time.sleep(0.1)

    def _all_ok(self) -> bool:
        running = [node for node in self.nodes if node.running]
        if not all(self._node_ok(node) for node in running):
            return False
        if len(running) < len(self.nodes):
            return True
        return len(self.masters()) == self.masters_count and all(
            self.replicas_online(node) == self.replicas for node in self.masters())

    def role(self, node: RedisServer) -> str:
        """``master`` or ``slave`` (``ROLE``), ``down`` when it does not answer."""
        try:
            with node.admin_client() as conn:
                reply = conn.execute_command("ROLE")
        except (redis.RedisError, OSError):
            return "down"
        role = reply[0]
        return role.decode() if isinstance(role, bytes) else str(role)

    def masters(self) -> list[RedisServer]:
        """The running nodes that are masters now (they change on fail-over)."""
        return [node for node in self.nodes if node.running and self.role(node) == "master"]

    def replicas_online(self, master: RedisServer) -> int:
        """Replicas of ``master`` that are online and acknowledge its replication stream."""
        with master.admin_client() as conn:
            repl = conn.info("replication")
            online = sum(1 for key, value in repl.items() if key.startswith("slave")
                         and key[5:].isdigit() and value.get("state") == "online")
            acked = int(conn.execute_command("WAIT", online, 100)) if online else 0
        return min(online, acked)

    def master_of(self, key: str) -> RedisServer:
        """The node serving ``key``'s slot now (asked to a running node)."""
        with self.client() as client:
            node = client.get_node_from_key(key)
        return next(n for n in self.nodes if n.port == node.port)

    def stop(self) -> None:
        """Stop every node and delete their data dirs."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.close()

    close = stop
