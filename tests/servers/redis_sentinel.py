"""A throwaway Redis Sentinel topology: one primary, replicas and sentinels on loopback.

Every process is a ``redis-server`` (sentinels run it with ``--sentinel`` on a generated
config file). The sentinels know each other and the replica from their config files
(``sentinel myid`` / ``known-sentinel`` / ``known-replica``), so the topology can fail over
as soon as ``start()`` returns, and ``down_after_ms`` / ``failover_timeout_ms`` are short:
a SIGKILLed primary is replaced within a few seconds.

``tls=TlsFiles(...)`` adds a ``tls-port`` on every process, with ``tls-replication yes``
(replicas and sentinels talk TLS to the data nodes) and the sentinels' own ``tls-port``;
the plain ports stay open on loopback for the harness's own probes, while clients are given
the TLS ports (what the sentinels report: a replica announces its TLS port).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers._process import LOOPBACK, ManagedServer, ServerStartError, free_port
from tests.servers.redis import RedisServer, find_redis_server

SERVICE = "mymaster"


@dataclass(frozen=True)
class TlsFiles:
    """Certificate files (PEM) of the TLS topology: the CA, and one key pair for 127.0.0.1
    that every process presents."""

    ca: Path
    cert: Path
    key: Path

    def server_args(self, tls_port: int) -> tuple[str, ...]:
        """redis-server options of a TLS port (client certificates not required)."""
        return ("--tls-port", str(tls_port), "--tls-cert-file", str(self.cert),
                "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.ca),
                "--tls-auth-clients", "no", "--tls-replication", "yes")


class SentinelProcess(RedisServer):
    """One ``redis-server --sentinel`` with a generated config file."""

    def __init__(self, conf_lines: list[str], *, port: int, tls_port: int | None = None,
                 password: str | None = None, tls: TlsFiles | None = None) -> None:
        super().__init__(port=port, password=password)
        self.tls_port = tls_port
        self.tls = tls
        self.conf_lines = conf_lines
        self.conf_path = self.data_dir / "sentinel.conf"

    def _command(self) -> list[str]:
        lines = [f"port {self.port}", f"bind {self.host}", f"dir {self.data_dir}",
                 'logfile ""', *self.conf_lines]
        if self.password:
            lines.append(f"requirepass {self.password}")
        if self.tls is not None and self.tls_port is not None:
            args = self.tls.server_args(self.tls_port)
            lines += [f"{args[i][2:]} {args[i + 1]}" for i in range(0, len(args), 2)]
        if not self.conf_path.exists():  # sentinel rewrites its file: keep what it learnt
            self.conf_path.write_text("\n".join(lines) + "\n")
        return [str(self.binary), str(self.conf_path), "--sentinel"]


class SentinelTopology(ManagedServer):
    """``replicas`` replicas of one primary, watched by ``sentinels`` sentinels (quorum 2).

    ``password`` protects the data nodes (the sentinels get it as ``auth-pass``);
    ``sentinel_password`` protects the sentinels (``requirepass`` plus ``sentinel-pass``
    between them).
    """

    def __init__(self, *, replicas: int = 1, sentinels: int = 3, quorum: int = 2,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 4000,
                 password: str | None = None, sentinel_password: str | None = None,
                 tls: TlsFiles | None = None, service: str = SERVICE,
                 startup_timeout: float = 30.0) -> None:
        self.binary = find_redis_server().path
        self.service = service
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = tls
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.startup_timeout = startup_timeout
        self.tls_ports: dict[int, int] = {}
        self.nodes: list[RedisServer] = []
        self.sentinels: list[SentinelProcess] = []
        self._replica_count = replicas
        self._sentinel_count = sentinels

    # -- addresses ---------------------------------------------------------------------------
    def client_port(self, server: RedisServer) -> int:
        """The port clients use on ``server`` (its TLS port in a TLS topology)."""
        return self.tls_ports.get(server.port, server.port)

    def url(self, *, with_password: bool = True, db: int = 0) -> str:
        """The ``sentinel://`` (``sentinels://`` with TLS) URL of the topology, with the data
        nodes' password when one is set."""
        hosts = ",".join(f"{s.host}:{s.tls_port or s.port}" for s in self.sentinels)
        auth = f":{self.password}@" if self.password and with_password else ""
        scheme = "sentinels" if self.tls else "sentinel"
        return f"{scheme}://{auth}{hosts}/{self.service}/{db}"

    def _node(self, **kwargs: object) -> RedisServer:
        port = free_port()
        args: tuple[str, ...] = ("--repl-diskless-sync", "yes",
                                 "--repl-diskless-sync-delay", "0")
        if self.tls is not None:
            tls_port = free_port()
            self.tls_ports[port] = tls_port
            args += self.tls.server_args(tls_port)
        if self.password:
            args += ("--masterauth", self.password)
        extra = tuple(kwargs.pop("extra_args", ()))  # type: ignore[arg-type]
        server = RedisServer(port=port, password=self.password, binary=self.binary,
                             extra_args=args + extra)
        self.nodes.append(server)
        return server.start()

    def start(self) -> SentinelTopology:
        """Start the primary, its replicas (in sync) and the sentinels; return once every
        sentinel sees the primary, the replicas and the other sentinels."""
        primary = self._node()
        for _ in range(self._replica_count):
            self._node(extra_args=("--replicaof", primary.host,
                                   str(self.client_port(primary))))
        self._wait(self._replicas_in_sync, "replicas in sync")
        ids = [secrets.token_hex(20) for _ in range(self._sentinel_count)]
        ports = [(free_port(), free_port() if self.tls else None) for _ in ids]
        for index, myid in enumerate(ids):
            lines = [f"sentinel myid {myid}",
                     f"sentinel monitor {self.service} {primary.host} "
                     f"{self.client_port(primary)} {self.quorum}",
                     f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                     f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
                     f"sentinel parallel-syncs {self.service} 1"]
            if self.password:
                lines.append(f"sentinel auth-pass {self.service} {self.password}")
            if self.sentinel_password:
                lines.append(f"sentinel sentinel-pass {self.sentinel_password}")
            for replica in self.nodes[1:]:
                lines.append(f"sentinel known-replica {self.service} {replica.host} "
                             f"{self.client_port(replica)}")
            for other, (port, tls_port) in enumerate(ports):
                if other != index:
                    lines.append(f"sentinel known-sentinel {self.service} {LOOPBACK} "
                                 f"{tls_port or port} {ids[other]}")
            sentinel = SentinelProcess(lines, port=ports[index][0], tls_port=ports[index][1],
                                       password=self.sentinel_password, tls=self.tls)
            self.sentinels.append(sentinel)
            sentinel.start()
        self._wait(self._sentinels_agree, "sentinels agree on the topology")
        return self

    # -- probes ------------------------------------------------------------------------------
    def _wait(self, probe: object, what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                if probe():  # type: ignore[operator]
                    return
            if time.monotonic() > deadline:
                raise ServerStartError(f"sentinel topology: no {what} within the timeout")
            time.sleep(0.05)

    def _replicas_in_sync(self) -> bool:
        """Every replica's link is up and it acknowledges a write (a replica that has just
        loaded the primary's snapshot gets the command stream only after its first ACK)."""
        for replica in self.nodes[1:]:
            with replica.admin_client() as conn:
                if conn.info("replication").get("master_link_status") != "up":
                    return False
        with self.nodes[0].admin_client() as conn:
            conn.set("sentinel-topology:probe", "1")
            acked = int(conn.execute_command("WAIT", len(self.nodes) - 1, 1000))
        return acked == len(self.nodes) - 1

    def sentinel_client(self, sentinel: SentinelProcess) -> redis.Redis:
        """A plain admin client of one sentinel (caller closes it)."""
        return redis.Redis(host=sentinel.host, port=sentinel.port,
                           password=self.sentinel_password, socket_timeout=2.0,
                           socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0),
                           decode_responses=True)

    def master_state(self, sentinel: SentinelProcess) -> dict[str, object]:
        """``SENTINEL MASTER <service>`` as one sentinel sees it."""
        with self.sentinel_client(sentinel) as conn:
            state: dict[str, object] = conn.sentinel_master(self.service)
        return state

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            state = self.master_state(sentinel)
            if (state.get("num-other-sentinels") != len(self.sentinels) - 1
                    or state.get("num-slaves") != len(self.nodes) - 1
                    or not state.get("is_master") or state.get("is_sdown")):
                return False
        return True

    def master_port(self) -> int:
        """The (client) port of the primary as the first live sentinel reports it."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError), \
                    self.sentinel_client(sentinel) as conn:
                _, port = conn.sentinel_get_master_addr_by_name(self.service)
                return int(port)
        raise ServerStartError("no sentinel answers")

    def primary(self) -> RedisServer:
        """The data node the sentinels currently call the primary."""
        port = self.master_port()
        for node in self.nodes:
            if self.client_port(node) == port:
                return node
        raise ServerStartError(f"the sentinels name an unknown primary port {port}")

    def wait_promoted(self, old: RedisServer, timeout: float = 30.0) -> RedisServer:
        """Block until every live sentinel names a primary other than ``old`` that answers
        as a master; return it."""
        def promoted() -> bool:
            ports = set()
            for sentinel in self.sentinels:
                with self.sentinel_client(sentinel) as conn:
                    ports.add(int(conn.sentinel_get_master_addr_by_name(self.service)[1]))
            if len(ports) != 1 or ports == {self.client_port(old)}:
                return False
            with self.primary().admin_client() as conn:
                return conn.info("replication").get("role") == "master"
        self._wait(promoted, "promotion", timeout)
        return self.primary()

    def close(self) -> None:
        """Stop every process and delete its data dir."""
        for server in [*self.sentinels, *self.nodes]:
            with contextlib.suppress(Exception):
                server.close()

    stop = close
